"""Whether a run is running, finished or crashed, from the files its session writes (process 0
only), and its optional TensorBoard event files.

* ``heartbeat.json``: rewritten every ``RunConfig.heartbeat_every`` seconds by a background
  thread while the run's session is open (compiling, training, evaluating, saving), with the
  last logged iteration; it ends with ``"error"`` set when the session closes on an exception.
* ``finished.json``: written when the session closes normally: the last iteration, the
  run's total, and whether it got there (``complete``; a run stopped by ``max_iterations``
  is resumable).
* ``command.json``: how the run was started (argv, working directory, Python, number of
  processes, launcher), for ``vasa runs resume``.

:func:`run_status` reads them: ``finished`` (complete), ``stopped`` (ended normally before its
total: continue it with ``--resume``), ``crashed`` (ended on an error, or a heartbeat older
than ``STALE_AFTER`` heartbeat periods: the process died without closing), ``running`` (a
fresh heartbeat), ``unknown`` (a run written before heartbeats existed).
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import threading
import time
from collections.abc import Mapping

HEARTBEAT, FINISHED, COMMAND = "heartbeat.json", "finished.json", "command.json"
TENSORBOARD = "tensorboard"
STALE_AFTER = 3  # heartbeat periods without a heartbeat: the run is dead
MIN_STALE_S = 10.0


def write_json(path: str, data: Mapping) -> None:
    """Write ``data`` atomically (a kill leaves the old file or the new one)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def read_json(path: str) -> dict | None:
    """The JSON object in ``path``, or ``None`` when it is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class Heartbeat:
    """Rewrites ``<run_dir>/heartbeat.json`` every ``every_s`` seconds from a daemon thread
    (which dies with the process, so a killed run's heartbeat goes stale). The trainer's
    thread only sets attributes (:meth:`update`); the file is written off its path."""

    def __init__(self, run_dir: str, every_s: float, processes: int = 1):
        self.path = os.path.join(run_dir, HEARTBEAT)
        self.every_s = float(every_s)
        self.info = {"started": time.time(), "pid": os.getpid(), "host": socket.gethostname(),
                     "every_s": self.every_s, "processes": int(processes), "iteration": None, "total": None}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.beat()
        self._thread = threading.Thread(target=self._loop, name="vasa-heartbeat", daemon=True)
        self._thread.start()

    def update(self, **fields) -> None:
        """Set fields of the next heartbeat (the iteration logged last, the total)."""
        self.info.update(fields)

    def beat(self, **fields) -> None:
        """Write the heartbeat now."""
        with self._lock:
            self.info.update(fields)
            try:
                write_json(self.path, {**self.info, "time": time.time()})
            except OSError:
                pass  # a full disk must not stop training; the run then looks stale

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.beat()

    def close(self, error: BaseException | None = None) -> None:
        """Stop the thread; the last heartbeat records ``error`` (type and first line) if given."""
        self._stop.set()
        self._thread.join(timeout=5.0)
        fields = {"ended": time.time()}
        if error is not None:
            text = str(error).strip().splitlines()
            fields["error"] = f"{type(error).__name__}: {text[0][:300] if text else ''}".rstrip(": ")
        self.beat(**fields)


def write_finished(run_dir: str, iteration: int | None, total: int | None) -> None:
    """``finished.json``: the session closed normally at ``iteration`` of ``total``."""
    complete = iteration is not None and total is not None and iteration >= total
    write_json(os.path.join(run_dir, FINISHED), {"time": time.time(), "iteration": iteration, "total": total,
                                                 "complete": bool(complete)})


def write_command(run_dir: str, processes: int, devices: int, launcher: str | None) -> None:
    """``command.json``: how this process was started (for ``vasa runs resume``): argv, working
    directory, Python, the number of processes and of global devices, the launcher."""
    write_json(os.path.join(run_dir, COMMAND), {
        "argv": list(sys.argv), "cwd": os.getcwd(), "executable": sys.executable, "processes": int(processes),
        "devices": int(devices), "launcher": launcher, "time": time.time()})


def layout_note(run_dir: str, processes: int, devices: int) -> str | None:
    """A note when a run resumes on another number of processes or devices than it started
    with (``command.json``), else ``None``. orbax reshards the checkpoint either way (each
    array has the same global shape), so the run continues; with the same number of devices
    it continues bitwise as if uninterrupted, with another it follows another (equally valid)
    random stream wherever draws depend on the device index (e.g. replay sampling)."""
    saved = read_json(os.path.join(run_dir, COMMAND)) or {}
    p, d = saved.get("processes"), saved.get("devices")
    if p is None or (p == processes and (d is None or d == devices)):
        return None
    same = d is None or d == devices
    return (f"note: {run_dir} was saved by {p} process(es) with {d if d is not None else '?'} device(s); resuming "
            f"with {processes} process(es) and {devices} device(s). orbax reshards the checkpoint; "
            + ("the device count is the same, so the run continues exactly." if same else
               "with another device count the run continues, but not bitwise as it would have on the same count."))


def run_status(run_dir: str, now: float | None = None) -> tuple[str, str]:
    """``(status, detail)`` of the run in ``run_dir`` (see the module docstring)."""
    now = time.time() if now is None else now
    beat = read_json(os.path.join(run_dir, HEARTBEAT))
    done = read_json(os.path.join(run_dir, FINISHED))
    if done is not None and (beat is None or done.get("time", 0) >= beat.get("started", 0)):
        where = f"iteration {done.get('iteration')} of {done.get('total')}"
        return ("finished", where) if done.get("complete") else ("stopped", f"{where}; continue with --resume")
    if beat is None:
        return "unknown", "no heartbeat.json (written by an older vasa?)"
    if beat.get("error"):
        return "crashed", beat["error"]
    if beat.get("ended"):
        return "crashed", "its session closed without finishing"
    age = now - float(beat.get("time", 0))
    stale = max(STALE_AFTER * float(beat.get("every_s", 30)), MIN_STALE_S)
    if age > stale:
        return "crashed", f"no heartbeat for {_duration(age)} (pid {beat.get('pid')} on {beat.get('host')})"
    return "running", f"heartbeat {_duration(age)} ago, iteration {beat.get('iteration')} of {beat.get('total')}"


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class TensorBoardLog:
    """TensorBoard event files under ``<run_dir>/tensorboard/`` with every numeric metric of
    each logged row, at ``env_steps`` (tensorboardX's writer; ``pip install tensorboardX``)."""

    def __init__(self, run_dir: str):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError("RunConfig.tensorboard=True needs the tensorboardX package: pip install tensorboardX "
                              "(or vasa[tensorboard]).") from e
        self.directory = os.path.join(run_dir, TENSORBOARD)
        self._writer = SummaryWriter(self.directory, flush_secs=30)

    def log(self, row: Mapping) -> None:
        step = int(row.get("env_steps", row.get("iteration", 0)))
        for k, v in row.items():
            if k in ("env_steps",) or isinstance(v, (str, bool)):
                continue
            try:
                value = float(v)
            except (TypeError, ValueError):
                continue
            if math.isfinite(value):
                self._writer.add_scalar(k, value, step)

    def close(self) -> None:
        self._writer.close()
