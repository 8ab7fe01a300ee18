"""What a run logs: ``metrics.csv``, ``learning_curve.png``, a progress bar, the NaN stop and
the summary line (the run directory itself is :mod:`vasa.run.rundir`'s)."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from collections.abc import Mapping
from typing import Any


class TrainingDiverged(FloatingPointError):
    """A loss became NaN/inf; the message names the metric and the iteration."""


def check_finite(metrics: Mapping[str, float], iteration: int, names=None, checkpoint: int | None = None,
                 checkpoint_dir: str | None = None) -> None:
    """Raise :class:`TrainingDiverged` if any of ``names`` (default: every key containing
    ``"loss"``) is not finite. The message says which checkpoint is kept: ``checkpoint``
    (the run's newest good one, or ``None`` when none has been written) in ``checkpoint_dir``."""
    names = names or [k for k in metrics if "loss" in k]
    bad = [k for k in names if not math.isfinite(float(metrics[k]))]
    if bad:
        if checkpoint_dir is None:
            kept = "training stopped."
        elif checkpoint is None:
            kept = "training stopped; no checkpoint had been written yet."
        else:
            kept = f"training stopped; the last good checkpoint (iteration {checkpoint}) is kept in {checkpoint_dir}."
        raise TrainingDiverged(f"non-finite {', '.join(bad)} at iteration {iteration}; {kept}")


def config_to_dict(config: Any) -> dict:
    """A JSON-ready dict of a (possibly nested) config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=list))


class RunLogger:
    """Writes a run's ``metrics.csv`` and learning curve, and shows progress (``config.json``
    is written by :mod:`vasa.run.rundir` before anything compiles).

    Args:
      run_dir: created if needed.
      total: iterations in the whole run (for the progress bar's ETA).
      start: iterations already done (when resuming; rows are appended to metrics.csv).
      progress: show a tqdm progress bar with ETA and the latest return.
    """

    RETURNS = {"series": (("episode_return", "training episodes"), ("eval_return", "deterministic evaluation")),
               "xlabel": "environment steps", "ylabel": "episode return"}

    def __init__(self, run_dir: str, total: int, start: int = 0, progress: bool = True,
                 curve: Mapping[str, Any] | None = None):
        os.makedirs(run_dir, exist_ok=True)
        self.run_dir = run_dir
        self.curve = {**self.RETURNS, **(curve or {})}
        self.csv_path = os.path.join(run_dir, "metrics.csv")
        self._fields: list[str] | None = None
        if start > 0 and os.path.exists(self.csv_path):
            self._truncate_after(start)
        elif os.path.exists(self.csv_path):
            os.remove(self.csv_path)
        self._bar, self._post = None, {}
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=start, unit="it", dynamic_ncols=True)

    def _truncate_after(self, iteration: int) -> None:
        """Drop rows logged after the checkpoint we resume from (they will be redone), and a
        last row cut short by a kill."""
        with open(self.csv_path) as f:
            rows = list(csv.DictReader(f))
        if not rows:
            return
        self._fields = list(rows[0].keys())
        keep = [r for r in rows if None not in r.values() and int(r["iteration"]) <= iteration]
        with open(self.csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self._fields)
            w.writeheader()
            w.writerows(keep)

    def last_value(self, field: str, default: float = 0.0) -> float:
        """The last logged value of ``field`` (e.g. ``wall_time`` when resuming)."""
        if not os.path.exists(self.csv_path):
            return default
        with open(self.csv_path) as f:
            rows = list(csv.DictReader(f))
        return float(rows[-1][field]) if rows and rows[-1].get(field) not in (None, "") else default

    def last_finite(self, field: str) -> tuple[int, float] | None:
        """``(iteration, value)`` of the last row of metrics.csv with a finite ``field``."""
        if not os.path.exists(self.csv_path):
            return None
        with open(self.csv_path) as f:
            rows = [r for r in csv.DictReader(f) if r.get(field) not in (None, "")]
        finite = [(int(r["iteration"]), float(r[field])) for r in rows if math.isfinite(float(r[field]))]
        return finite[-1] if finite else None

    def log(self, row: Mapping[str, Any]) -> None:
        """Append one row (one iteration) to metrics.csv and update the progress bar."""
        row = {k: (float(v) if not isinstance(v, (int, str)) else v) for k, v in row.items()}
        new_file = self._fields is None
        if new_file:
            self._fields = list(row.keys())
        with open(self.csv_path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self._fields, extrasaction="ignore")
            if new_file:
                w.writeheader()
            w.writerow(row)
        if self._bar is not None:
            self._bar.update(1)
            # keep the latest finite returns on display (episodes do not end every iteration)
            self._post.update({k: f"{row[k]:.1f}" for k in ("episode_return", "eval_return") if k in row
                               and isinstance(row[k], float) and math.isfinite(row[k])})
            self._post["sps"] = f"{row.get('sps', 0):.0f}"
            self._bar.set_postfix(self._post, refresh=False)

    def plot(self, filename: str = "learning_curve.png") -> str:
        """Plot training and evaluation returns against environment steps; returns the path."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        with open(self.csv_path) as f:
            rows = list(csv.DictReader(f))
        fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
        for key, label in self.curve["series"]:
            pts = [(float(r["env_steps"]), float(r[key])) for r in rows if r.get(key) not in (None, "", "nan")]
            pts = [(s, v) for s, v in pts if math.isfinite(v)]
            if not pts:
                continue
            xs, ys = zip(*pts)
            if key == "episode_return" and f"{key}_std" in rows[0]:
                std = [float(r[f"{key}_std"]) for r in rows if r.get(key) not in (None, "", "nan")
                       and math.isfinite(float(r[key]))]
                ax.fill_between(xs, [y - s for y, s in zip(ys, std)], [y + s for y, s in zip(ys, std)], alpha=0.2)
            ax.plot(xs, ys, label=label, marker="o" if len(xs) < 100 or key == "eval_return" else None, markersize=3)
        ax.set_xlabel(self.curve["xlabel"])
        ax.set_ylabel(self.curve["ylabel"])
        ax.set_title(os.path.basename(os.path.normpath(self.run_dir)))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
        fig.tight_layout()
        path = os.path.join(self.run_dir, filename)
        fig.savefig(path)
        plt.close(fig)
        return path

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def finish_run(logger: RunLogger | None, checkpointer, rows: list, run_dir: str, compile_s: float,
               wall: float) -> None:
    """Close the logger and checkpointer, draw the learning curve and print a summary line
    naming the last finite evaluation and its iteration (called when a run ends, also on an
    error; ``logger`` is ``None`` when the run stopped before logging began)."""
    try:
        if logger is not None:
            logger.close()
    finally:
        checkpointer.close()
    if logger is None or not rows:
        return
    logger.plot()
    field, label, unit = (("eval_return", "eval return", "") if "eval_return" in rows[-1]
                          else ("val_top1", "validation top-1", "%"))
    last = logger.last_finite(field)
    evaluation = f"last {label} {last[1]:.1f}{unit} (iteration {last[0]})" if last else "no evaluation yet"
    print(f"run directory: {run_dir} (compile {compile_s:.1f} s, {evaluation}, {rows[-1]['env_steps']} steps in "
          f"{wall:.0f} s)")
