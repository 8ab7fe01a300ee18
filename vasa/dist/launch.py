"""``vasa launch local --processes N -- COMMAND...``: N processes of one program on this machine
(``vasa launch slurm | mpi | k8s``: :mod:`vasa.dist.launchers`).

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

    slurm = where.add_parser("slurm", help="write (and --submit) an sbatch script",
                             description="Write an sbatch script that runs COMMAND with srun as one task per GPU; "
                                         "JAX's SLURM detection connects the tasks.")
    slurm.add_argument("--nodes", "-N", type=int, default=1, help="machines (default 1)")
    slurm.add_argument("--gpus-per-node", type=int, default=8, help="GPUs per node, one task each (default 8; 0: CPU)")
    slurm.add_argument("--tasks-per-node", type=int, default=None, help="processes per node (default: GPUs per node)")
    slurm.add_argument("--time", "-t", default="01:00:00", help="wall-clock limit [D-]HH:MM:SS (default 01:00:00)")
    slurm.add_argument("--partition", "-p", default=None, help="SLURM partition (default: the cluster's)")
    slurm.add_argument("--account", "-A", default=None, help="SLURM account (optional)")
    slurm.add_argument("--job-name", "-J", default="vasa", help="job name (default vasa)")
    slurm.add_argument("--cpus-per-task", type=int, default=None, help="CPUs per task (optional)")
    slurm.add_argument("--setup", action="append", default=[],
                       help="a shell line run before srun (repeatable), e.g. 'source .venv/bin/activate'")
    slurm.add_argument("--output", "-o", default="vasa-job.sbatch", help="script path (default vasa-job.sbatch)")
    slurm.add_argument("--force", action="store_true", help="replace an existing script")
    slurm.add_argument("--submit", action="store_true", help="submit it with sbatch")
    slurm.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")

    mpi = where.add_parser("mpi", help="run under Open MPI's mpirun",
                           description="Run COMMAND under Open MPI's mpirun -np N; JAX's Open MPI detection connects "
                                       "the ranks.")
    mpi.add_argument("--processes", "-n", type=int, required=True, help="how many ranks")
    mpi.add_argument("--hostfile", default=None, help="Open MPI hostfile (default: this machine)")
    mpi.add_argument("--oversubscribe", action="store_true", help="allow more ranks than cores/slots")
    mpi.add_argument("--allow-run-as-root", action="store_true", help="pass --allow-run-as-root to mpirun")
    mpi.add_argument("--env", "-x", action="append", default=[], help="export this variable to every rank (repeatable)")
    mpi.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")

    k8s = where.add_parser("k8s", help="write a Kubernetes Indexed Job manifest",
                           description="Write a Kubernetes manifest (Indexed Job, headless Service, ServiceAccount "
                                       "with pod/job read access) that runs COMMAND as one process per pod; JAX's "
                                       "Kubernetes detection connects them. Apply it with kubectl apply -f.")
    k8s.add_argument("--image", required=True, help="container image with vasa and the kubernetes package")
    k8s.add_argument("--pods", type=int, required=True, help="processes, one per pod")
    k8s.add_argument("--gpus-per-pod", type=int, default=8, help="nvidia.com/gpu per pod (default 8)")
    k8s.add_argument("--name", default="vasa", help="Job name (default vasa)")
    k8s.add_argument("--namespace", default=None, help="namespace (default: kubectl's current one)")
    k8s.add_argument("--cpu", default=None, help="CPU request per pod")
    k8s.add_argument("--memory", default=None, help="memory request per pod")
    k8s.add_argument("--env", "-e", action="append", default=[], help="NAME=VALUE in the container (repeatable)")
    k8s.add_argument("--output", "-o", default="vasa-job.yaml", help="manifest path (default vasa-job.yaml)")
    k8s.add_argument("--force", action="store_true", help="replace an existing manifest")
    k8s.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")

    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    from vasa.dist import launchers

    try:
        if args.where == "local":
            return launch_local(command, args.processes, args.grace)
        if args.where == "mpi":
            return launchers.launch_mpi(command, args.processes, hostfile=args.hostfile,
                                        oversubscribe=args.oversubscribe, allow_run_as_root=args.allow_run_as_root,
                                        env=tuple(args.env))
        if args.where == "slurm":
            text = launchers.slurm_script(command, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                                          tasks_per_node=args.tasks_per_node, time=args.time,
                                          partition=args.partition, account=args.account, job_name=args.job_name,
                                          cpus_per_task=args.cpus_per_task, setup=tuple(args.setup))
            path = launchers.write_new_file(args.output, text, force=args.force, mode=0o755)
            print(f"wrote the sbatch script {path}")
            if args.submit:
                print(launchers.submit_slurm(path))
            else:
                print(f"submit it with: sbatch {path}")
            return 0
        env = {}
        for item in args.env:
            name, eq, value = item.partition("=")
            if not eq or not name:
                raise launchers.LauncherError(f"--env={item!r} is not allowed: write NAME=VALUE.")
            env[name] = value
        docs = launchers.k8s_manifest(command, image=args.image, pods=args.pods, gpus_per_pod=args.gpus_per_pod,
                                      name=args.name, namespace=args.namespace, cpu=args.cpu, memory=args.memory,
                                      env=env)
        path = launchers.write_new_file(args.output, launchers.to_yaml(docs), force=args.force)
        print(f"wrote the Kubernetes manifest {path} ({len(docs)} objects); start it with: kubectl apply -f {path}")
        return 0
    except launchers.LauncherError as e:
        print(f"vasa launch {args.where}: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        parser.error(str(e))
