"""``vasa launch local --processes N -- COMMAND...``: N processes of one program on this machine.

Each process gets ``VASA_COORDINATOR`` (``127.0.0.1:<free port>``), ``VASA_NUM_PROCESSES`` and
``VASA_PROCESS_ID``, which :func:`vasa.dist.initialize` reads. Their output is merged line by
line, each line prefixed with ``[i]``. When a process fails the others are stopped (SIGTERM,
then SIGKILL after ``--grace`` seconds) and the launcher exits with the failed process's
status; it exits 0 when all succeed.

    vasa launch local --processes 2 -- python examples/train_ppo.py --env toy/pendulum
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from vasa.dist.distributed import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_local(command: list[str], processes: int, grace_s: float = 5.0, out=None) -> int:
    """Run ``command`` as ``processes`` connected processes; return the exit status
    (0 when all succeed, else the first failure's: ``128 + signal`` for a killed process)."""
    if processes < 1:
        raise ValueError(f"--processes={processes!r} is not allowed: it must be >= 1.")
    if not command:
        raise ValueError("no command given: vasa launch local --processes N -- COMMAND [ARGS...]")
    out = out or sys.stdout
    coordinator = f"127.0.0.1:{free_port()}"
    lock = threading.Lock()
    procs: list[subprocess.Popen] = []
    readers = []

    def pump(i: int, stream) -> None:
        for line in iter(stream.readline, b""):
            with lock:
                out.write(f"[{i}] {line.decode(errors='replace')}")
                if not line.endswith(b"\n"):
                    out.write("\n")
                out.flush()
        stream.close()

    # (all started before the output threads: preexec_fn is unsafe once threads run)
    for i in range(processes):
        env = {**os.environ, ENV_COORDINATOR: coordinator, ENV_NUM_PROCESSES: str(processes),
               ENV_PROCESS_ID: str(i), "PYTHONUNBUFFERED": "1"}
        # own process group: stopping a process also stops whatever it started
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      start_new_session=True, preexec_fn=_die_with_parent))
    for i, p in enumerate(procs):
        t = threading.Thread(target=pump, args=(i, p.stdout), daemon=True)
        t.start()
        readers.append(t)

    status = 0
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                status = 128 - code if code < 0 else code
                how = f"signal {-code}" if code < 0 else f"status {code}"
                with lock:
                    out.write(f"vasa launch: process {i} exited with {how}; stopping the others\n")
                    out.flush()
                break
            if all(c == 0 for c in codes):
                break
            time.sleep(0.1)
    except KeyboardInterrupt:
        status = 130
    finally:
        _stop(procs, grace_s)
        for t in readers:
            t.join(timeout=2.0)
        signal.signal(signal.SIGTERM, previous)
    return status


def _terminated(signum, frame):
    raise KeyboardInterrupt  # SIGTERM to the launcher stops its processes too


def _die_with_parent() -> None:
    """In the child: SIGTERM when the launcher dies, however it dies (Linux ``PR_SET_PDEATHSIG``)."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def _stop(procs: list[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM each live process group, SIGKILL what is left after ``grace_s``."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        _signal_group(p, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in live:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _signal_group(p, signal.SIGKILL)
            p.wait()


def _signal_group(p: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> int:
    """``vasa launch``'s command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="vasa launch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_subparsers(dest="where", required=True)
    local = where.add_parser("local", help="N processes on this machine",
                             description="Start N processes of COMMAND on this machine, connected through "
                                         "jax.distributed (vasa.dist.initialize reads the VASA_* variables).")
    local.add_argument("--processes", "-n", type=int, required=True, help="how many processes")
    local.add_argument("--grace", type=float, default=5.0,
                       help="seconds between SIGTERM and SIGKILL when stopping the others (default 5)")
    local.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        return launch_local(command, args.processes, args.grace)
    except ValueError as e:
        parser.error(str(e))
