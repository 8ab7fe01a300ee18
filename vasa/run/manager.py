"""``vasa runs``: the experiment manager. It reads run directories (``config.json``,
``metrics.csv``, and the ``heartbeat.json`` / ``finished.json`` / ``command.json`` a run's
session writes, see :mod:`vasa.run.status`) and writes nothing in them.

    vasa runs list [ROOT]                      # a table: run, env, algorithm, status, steps, returns, wall time
    vasa runs show RUN                         # status, command, config and the last metrics row
    vasa runs compare RUN RUN ... -o curves.png [--metric eval_return]
    vasa runs resume RUN [--dry-run]           # continue RUN from its newest intact checkpoint

``resume`` re-runs the script that started the run (``command.json``) with ``--resume RUN``,
or, for a run started from Python, calls the algorithm's ``train`` with
``RunConfig(resume=RUN)``; a run of several processes is restarted as as many processes on this
machine (``vasa launch local``), or ``--dry-run`` prints the command to resubmit through a cluster.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import importlib
import inspect
import json
import math
import os
import subprocess
import sys
import time

from vasa.run.status import COMMAND, read_json, run_status

# config.json section -> (module, config class) whose ``train(config, run)`` resumes it in-process
TRAINERS = {"ppo": ("vasa.algos.ppo", "PPOConfig"), "sac": ("vasa.algos.sac", "SACConfig"),
            "ddpg": ("vasa.algos.ddpg", "DDPGConfig"), "es": ("vasa.algos.es", "ESConfig"),
            "video": ("vasa.video.train", "VideoTrainConfig")}
COLUMNS = ("run", "env", "algorithm", "status", "env steps", "last eval", "best eval", "wall time")


class RunsError(ValueError):
    """``vasa runs`` cannot do what was asked; the message names the run or argument."""


def find_runs(root: str, max_depth: int = 4) -> list[str]:
    """Run directories (holding ``config.json``) at or under ``root``, sorted by path."""
    if not os.path.isdir(root):
        raise RunsError(f"{root!r} is not a directory.")
    found = []
    base = root.rstrip(os.sep).count(os.sep)
    for dirpath, dirnames, filenames in os.walk(root):
        if "config.json" in filenames:
            found.append(dirpath)
            dirnames[:] = []  # a run's own subdirectories (checkpoints, ...) hold no runs
        elif dirpath.count(os.sep) - base >= max_depth:
            dirnames[:] = []
        dirnames.sort()
    return sorted(found)


def read_metrics(run_dir: str) -> list[dict]:
    """``metrics.csv``'s complete rows (a row cut short by a kill is left out)."""
    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if None not in r.values()]


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _algorithm(config: dict) -> str:
    keys = [k for k in config if k != "run"]
    return keys[0] if keys else "?"


def _env(section) -> str:
    if isinstance(section, dict):
        if isinstance(section.get("env"), str):
            return section["env"]
        for value in section.values():
            found = _env(value)
            if found != "-":
                return found
    return "-"


def summarize(run_dir: str, now: float | None = None) -> dict:
    """One row of ``vasa runs list`` for ``run_dir`` (values, not yet formatted)."""
    config = read_json(os.path.join(run_dir, "config.json")) or {}
    algorithm = _algorithm(config)
    rows = read_metrics(run_dir)
    status, detail = run_status(run_dir, now)
    evals = [_float(r.get("eval_return")) for r in rows]
    evals = [v for v in evals if math.isfinite(v)]
    last = rows[-1] if rows else {}
    return {"run": run_dir, "env": _env(config.get(algorithm)), "algorithm": algorithm, "status": status,
            "detail": detail, "iteration": last.get("iteration"), "env_steps": _float(last.get("env_steps")),
            "last_eval": evals[-1] if evals else math.nan, "best_eval": max(evals) if evals else math.nan,
            "wall_time": _float(last.get("wall_time"))}


def _fmt_number(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}" if math.isfinite(x) else "-"


def _fmt_time(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"


def format_table(summaries: list[dict], root: str | None = None) -> str:
    """The ``vasa runs list`` table (run names relative to ``root``)."""
    lines = [list(COLUMNS)]
    for s in summaries:
        name = os.path.relpath(s["run"], root) if root else s["run"]
        lines.append([name, s["env"], s["algorithm"], s["status"], _fmt_number(s["env_steps"], 0),
                      _fmt_number(s["last_eval"]), _fmt_number(s["best_eval"]), _fmt_time(s["wall_time"])])
    widths = [max(len(row[i]) for row in lines) for i in range(len(COLUMNS))]
    right = {4, 5, 6, 7}
    return "\n".join("  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     .rstrip() for row in lines)


def show(run_dir: str) -> str:
    """``vasa runs show``: status, command, config and the last metrics row of ``run_dir``."""
    _require_run(run_dir)
    s = summarize(run_dir)
    out = [f"run:       {run_dir}", f"status:    {s['status']} ({s['detail']})"]
    command = read_json(os.path.join(run_dir, COMMAND))
    if command:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(command.get("time", 0)))
        out.append(f"command:   {' '.join(command.get('argv', []))}  (in {command.get('cwd')}, "
                   f"{command.get('processes', 1)} process(es), {command.get('launcher') or 'started directly'}, "
                   f"{started})")
    ck = os.path.join(run_dir, "checkpoints")
    steps = sorted(int(n) for n in os.listdir(ck) if n.isdigit()) if os.path.isdir(ck) else []
    out.append(f"checkpoints: {', '.join(map(str, steps)) or 'none'}")
    out.append("config:")
    out += ["  " + line for line in json.dumps(read_json(os.path.join(run_dir, "config.json")) or {}, indent=2,
                                               sort_keys=True).splitlines()]
    rows = read_metrics(run_dir)
    if rows:
        out.append(f"last metrics (iteration {rows[-1].get('iteration')} of {len(rows)} logged):")
        width = max(len(k) for k in rows[-1])
        out += [f"  {k.ljust(width)}  {v}" for k, v in rows[-1].items()]
    else:
        out.append("last metrics: none logged yet")
    return "\n".join(out)


def compare(run_dirs: list[str], output: str, metric: str = "eval_return", x: str = "env_steps",
            force: bool = False) -> str:
    """Overlay ``metric`` against ``x`` of each run (finite values) in one PNG; returns its path."""
    if not run_dirs:
        raise RunsError("compare needs at least one RUN.")
    if os.path.exists(output) and not force:
        raise RunsError(f"{output} already exists; pass --force to replace it, or choose another -o.")
    series = []
    for run_dir in run_dirs:
        _require_run(run_dir)
        rows = read_metrics(run_dir)
        if rows and metric not in rows[0]:
            raise RunsError(f"--metric={metric!r} is not allowed for {run_dir}: its metrics.csv has "
                            f"{', '.join(rows[0])}.")
        pts = [(_float(r.get(x)), _float(r.get(metric))) for r in rows]
        series.append((run_dir, [(a, b) for a, b in pts if math.isfinite(a) and math.isfinite(b)]))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    names = _short_names(run_dirs)
    for (run_dir, pts), name in zip(series, names):
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=name, marker="o" if len(xs) < 50 else None, markersize=3)
        else:
            ax.plot([], [], label=f"{name} (no {metric} yet)")
    ax.set_xlabel(x.replace("_", " "))
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output)
    plt.close(fig)
    return os.path.abspath(output)


def _short_names(run_dirs: list[str]) -> list[str]:
    paths = [os.path.abspath(d) for d in run_dirs]
    common = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    return [os.path.relpath(p, common) if p != common else os.path.basename(p) for p in paths]


def _require_run(run_dir: str) -> None:
    if not os.path.isfile(os.path.join(run_dir, "config.json")):
        raise RunsError(f"{run_dir!r} is not a vasa run directory (no config.json).")


def resume_command(run_dir: str) -> tuple[list[str], str, str]:
    """The command that continues ``run_dir``, the directory to run it in (the original
    one when it still exists) and a note on how it was chosen."""
    _require_run(run_dir)
    run_abs = os.path.abspath(run_dir)
    config = read_json(os.path.join(run_dir, "config.json")) or {}
    algorithm = _algorithm(config)
    command = read_json(os.path.join(run_dir, COMMAND)) or {}
    argv, cwd = command.get("argv") or [], command.get("cwd") or os.getcwd()
    cwd = cwd if os.path.isdir(cwd) else os.getcwd()
    script = os.path.join(cwd, argv[0]) if argv else ""
    if argv and argv[0].endswith(".py") and os.path.isfile(script) and "--resume" in _read(script):
        base, note = [sys.executable, script, "--resume", run_abs], f"the run's script {script} with --resume"
    elif algorithm in TRAINERS:
        base = [sys.executable, "-m", "vasa", "runs", "resume", run_abs, "--in-process"]
        note = f"{TRAINERS[algorithm][0]}.train with RunConfig(resume=...)"
    else:
        raise RunsError(f"cannot resume {run_dir}: it was not started by a script that takes --resume (command.json: "
                        f"{argv or 'absent'}) and its algorithm {algorithm!r} is none of {', '.join(TRAINERS)} "
                        "(resume it with the script that trains it, passing --resume).")
    processes = int(command.get("processes", 1) or 1)
    if processes > 1:
        base = [sys.executable, "-m", "vasa", "launch", "local", "--processes", str(processes), "--", *base]
        note += (f"; {processes} processes as saved (started by {command.get('launcher')}), here on this machine: "
                 "use --dry-run and resubmit through the cluster instead if they do not fit")
    return base, cwd, note


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def resume_in_process(run_dir: str) -> None:
    """Continue ``run_dir`` in this process: ``<algorithm>.train(Config(), run)`` where ``run`` is
    the trainer's default run settings with ``resume=run_dir`` (the saved config and run settings apply)."""
    import vasa.dist

    vasa.dist.initialize_if_launched()
    algorithm = _algorithm(read_json(os.path.join(run_dir, "config.json")) or {})
    if algorithm not in TRAINERS:
        raise RunsError(f"cannot resume {run_dir} in-process: its algorithm {algorithm!r} is none of "
                        f"{', '.join(TRAINERS)}.")
    module_name, config_name = TRAINERS[algorithm]
    module = importlib.import_module(module_name)
    default_run = inspect.signature(module.train).parameters["run"].default
    module.train(getattr(module, config_name)(), dataclasses.replace(default_run, resume=run_dir))


def main(argv: list[str] | None = None) -> int:
    """``vasa runs``'s command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="vasa runs", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="a table of the runs under ROOT")
    p.add_argument("root", nargs="?", default="runs", help="directory holding run directories (default runs)")
    p = sub.add_parser("show", help="status, command, config and last metrics of RUN")
    p.add_argument("run")
    p = sub.add_parser("compare", help="learning curves of several runs in one PNG")
    p.add_argument("runs", nargs="+")
    p.add_argument("--output", "-o", default="curves.png", help="PNG path (default curves.png)")
    p.add_argument("--metric", "-m", default="eval_return", help="metrics.csv column (default eval_return)")
    p.add_argument("--x", default="env_steps", help="x axis column (default env_steps)")
    p.add_argument("--force", action="store_true", help="replace an existing PNG")
    p = sub.add_parser("resume", help="continue RUN from its newest intact checkpoint")
    p.add_argument("run")
    p.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.command == "list":
            runs = find_runs(args.root)
            if not runs:
                print(f"no runs under {args.root}")
                return 0
            now = time.time()
            print(format_table([summarize(r, now) for r in runs], root=args.root))
        elif args.command == "show":
            print(show(args.run))
        elif args.command == "compare":
            path = compare(args.runs, args.output, args.metric, args.x, args.force)
            print(f"wrote {path}")
        elif args.in_process:
            resume_in_process(args.run)
        else:
            command, cwd, note = resume_command(args.run)
            print(f"resuming with {note}:\n  (cd {cwd} && {' '.join(command)})", flush=True)
            if args.dry_run:
                return 0
            return subprocess.call(command, cwd=cwd)
    except RunsError as e:
        print(f"vasa runs {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0
