"""Success rate of every checkpoint of one or more PPO, SAC or DDPG runs, as a table, a CSV and one plot.

    python examples/evaluate_success.py runs/lift                                  # all checkpoints, 64 episodes each
    python examples/evaluate_success.py runs/stack-demos runs/stack --labels "reverse curriculum" "no demonstrations" \\
        --plot docs/stack_curriculum.png --csv runs/stack_success.csv
    python examples/evaluate_success.py runs/stack-warm --previous runs/stack_success.csv --plot docs/both.png

Each checkpoint's deterministic policy (PPO's Gaussian mean, SAC's squashed mean, DDPG's
actor) runs one full episode of the run's own environment from the same ``--num-episodes``
fresh initial states (never from demonstration states, whatever the run trained with); an
episode succeeds if the task reported success at any step (robosuite's convention). Files are
never overwritten.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import tyro

from vasa.algos import ppo_eval


@dataclasses.dataclass(frozen=True)
class Args:
    run_dirs: tyro.conf.Positional[tuple[str, ...]]
    """PPO (feed-forward or recurrent policies), SAC or DDPG run directories"""
    labels: tuple[str, ...] = ()
    """legend labels, one per run (default: the directories)"""
    steps: tuple[int, ...] = ()
    """checkpoint iterations to evaluate (default: every checkpoint of each run)"""
    num_episodes: int = 64
    """episodes per checkpoint"""
    seed: int = 0
    """key of the initial states (the same for every checkpoint)"""
    csv: str | None = None
    """write all rows here (with a run column)"""
    plot: str | None = None
    """write one PNG with every run's success rate against environment steps and training time"""
    title: str = ""
    """plot title"""
    previous: tuple[str, ...] = ()
    """CSVs this script wrote before (--csv): their runs join the table and the plot, not evaluated again"""


def check(args: Args) -> None:
    """Refuse bad arguments before anything compiles (names the argument and what is allowed)."""
    if not args.run_dirs and not args.previous:
        raise SystemExit("name at least one run directory (or a --previous CSV).")
    for path in args.previous:
        if not os.path.isfile(path):
            raise SystemExit(f"previous={path!r} is not allowed: it must be an existing CSV written by --csv.")
    if args.labels and len(args.labels) != len(args.run_dirs):
        raise SystemExit(f"labels has {len(args.labels)} entries, run_dirs {len(args.run_dirs)}: give one label per run.")
    for name in ("csv", "plot"):
        path = getattr(args, name)
        if path and os.path.exists(path):
            raise SystemExit(f"{name}={path!r} exists: choose another path (evaluate_success never overwrites).")
    if args.plot and not args.plot.endswith(".png"):
        raise SystemExit(f"plot={args.plot!r} is not allowed: a .png path.")


def plot(curves: dict[str, list[dict]], path: str, title: str = "") -> None:
    """Success rate (+- binomial standard error) against environment steps and training time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, rows in curves.items():
        x = np.array([r["env_steps"] for r in rows], float)
        t = np.array([r["time_s"] for r in rows], float) / 60
        y = np.array([r["success"] for r in rows], float)
        n = np.array([r["episodes"] for r in rows], float)
        err = np.sqrt(y * (1 - y) / n)
        for ax, xs in ((axes[0], x), (axes[1], t)):
            ok = np.isfinite(xs)
            (line,) = ax.plot(xs[ok], y[ok], marker="o", ms=3, label=label)
            ax.fill_between(xs[ok], (y - err)[ok], (y + err)[ok], color=line.get_color(), alpha=0.2)
    from matplotlib.ticker import EngFormatter, MaxNLocator

    axes[0].xaxis.set_major_formatter(EngFormatter(sep=""))  # 400k, 1.2M: no overlapping long labels
    axes[0].xaxis.set_major_locator(MaxNLocator(6))
    axes[0].set_xlabel("environment steps")
    axes[1].set_xlabel("training time (min, excluding compilation)")
    for ax in axes:
        ax.set_ylabel("success rate")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def read_csv(path: str) -> dict[str, list[dict]]:
    """Rows of an earlier ``--csv`` grouped by their ``run`` column, numbers parsed back."""
    ints = ("episodes", "iteration", "env_steps")
    curves: dict[str, list[dict]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            parsed = {k: (v if k == "run" else int(v) if k in ints else float(v)) for k, v in row.items()}
            curves.setdefault(parsed["run"], []).append(parsed)
    return curves


def main(args: Args) -> dict[str, list[dict]]:
    check(args)
    labels = args.labels or args.run_dirs
    curves = {}
    for path in args.previous:
        curves.update(read_csv(path))
    for run_dir, label in zip(args.run_dirs, labels):
        rows = ppo_eval.success_curve(run_dir, args.steps or None, args.num_episodes, args.seed)
        curves[label] = [{"run": label, "episodes": args.num_episodes, **r} for r in rows]
    print(f"{'run':28s} {'iteration':>9s} {'env steps':>11s} {'minutes':>8s} {'success':>8s} {'return':>16s}")
    for rows in curves.values():
        for r in rows:
            print(f"{r['run'][:28]:28s} {r['iteration']:9d} {r['env_steps']:11,d} {r['time_s'] / 60:8.1f} "
                  f"{r['success']:8.3f} {r['return']:7.1f} +- {r['return_std']:.1f}")
    if args.csv:
        with open(args.csv, "x", newline="") as f:
            fields = list(next(iter(curves.values()))[0])
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            for rows in curves.values():
                writer.writerows(rows)
    if args.plot:
        plot(curves, args.plot, args.title)
        print(f"wrote {args.plot}")
    return curves


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
