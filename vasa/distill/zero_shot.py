"""Zero-shot evaluation under visual shift: returns of fixed policies on the five appearance
suites (DMControl-GB's protocol, as the dissertation's table 5.1 reports them), written as a
CSV table and a bar chart.

No reward, fine-tuning or extra trials at test time: each policy runs deterministic episodes
in pixel environments whose look is drawn from ``train``, ``color_easy``, ``color_hard``,
``video_easy`` or ``video_hard``. One program is compiled per suite and re-used for every
policy that shares a network (parameters are arguments, not constants).
"""

from __future__ import annotations

import csv
import os
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np

from vasa.envs.randomize import SCENE_LEVEL_NAMES, SUITES
from vasa.envs.rollout import episode_returns

SUITE_NAMES = tuple(SUITES)
"""DMControl-GB's suites (table 5.1), the default evaluation."""
SCENE_SUITE_NAMES = ("train", "easy", "hard", "extreme")
"""SECANT's robosuite levels (table 5.5) for ``robo/*`` tasks (``_heldout`` variants allowed too)."""


def make_suite_evaluator(make_env: Callable[[str], Any], act: Callable[[Any, Any], jax.Array],
                         suites: Sequence[str] = SUITE_NAMES, episodes: int = 10):
    """``evaluate(params, suite, seed) -> float32 [episodes]``: first-episode returns of the
    deterministic policy ``act(params, obs) -> actions`` (batched obs, e.g. ``{"pixels":
    uint8 [E, H, W, C], "proprio": ...}``) in ``make_env(suite)``, reset with
    ``PRNGKey(seed)``. The appearance of each environment is drawn from its reset key, so
    seeds give different looks within a suite.

    Raises:
      ValueError: an unknown suite name (the table-top levels ``easy``, ``hard``, ``extreme``
        and their ``_heldout`` variants are known too: ``make_env`` refuses them off ``robo/*``).
    """
    known = (*SUITES, *SCENE_LEVEL_NAMES)
    unknown = [s for s in suites if s not in known]
    if unknown:
        raise ValueError(f"unknown appearance suite(s) {unknown}: choose from {list(known)}")
    programs = {}
    for suite in suites:
        env = make_env(suite)
        programs[suite] = jax.jit(lambda params, key, env=env: episode_returns(
            env, lambda obs: act(params, obs), key, episodes))

    def evaluate(params, suite: str, seed: int) -> np.ndarray:
        if suite not in programs:
            raise ValueError(f"suite={suite!r} was not prepared; prepared: {list(programs)}")
        return np.asarray(programs[suite](params, jax.random.PRNGKey(seed)))

    return evaluate


def summarize(returns: Mapping[str, Mapping[str, Sequence[np.ndarray]]]) -> list[dict]:
    """Rows ``{"policy", "suite", "mean", "std", "episodes", "seeds", "seed_means"}`` from
    ``returns[policy][suite] = [per-seed arrays of episode returns]``: mean and std over all
    episodes of all seeds (table 5.1's mean +- std), and each seed's mean."""
    rows = []
    for policy, by_suite in returns.items():
        for suite, per_seed in by_suite.items():
            flat = np.concatenate([np.ravel(r) for r in per_seed])
            rows.append({"policy": policy, "suite": suite, "mean": float(flat.mean()), "std": float(flat.std()),
                         "episodes": int(flat.size), "seeds": len(per_seed),
                         "seed_means": " ".join(f"{float(np.mean(r)):.1f}" for r in per_seed)})
    return rows


def write_table(rows: Sequence[dict], run_dir: str, name: str = "zero_shot") -> tuple[str, str]:
    """Write ``<run_dir>/<name>.csv`` (one row per policy and suite) and ``<name>.png`` (a
    grouped bar chart, mean +- std per suite). Returns both paths."""
    os.makedirs(run_dir, exist_ok=True)
    csv_path = os.path.join(run_dir, f"{name}.csv")
    fields = ["policy", "suite", "mean", "std", "episodes", "seeds", "seed_means"]
    with open(csv_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(dict.fromkeys(r["policy"] for r in rows))
    suites = list(dict.fromkeys(r["suite"] for r in rows))
    by = {(r["policy"], r["suite"]): r for r in rows}
    width = 0.8 / max(len(policies), 1)
    fig, ax = plt.subplots(figsize=(1.6 * len(suites) + 2, 3.6), dpi=100)
    for i, p in enumerate(policies):
        xs = [j + (i - (len(policies) - 1) / 2) * width for j in range(len(suites))]
        means = [by[p, s]["mean"] if (p, s) in by else np.nan for s in suites]
        stds = [by[p, s]["std"] if (p, s) in by else 0.0 for s in suites]
        ax.bar(xs, means, width, yerr=stds, capsize=2, label=p)
    ax.set_xticks(range(len(suites)), suites)
    ax.set_ylabel("episode return")
    ax.set_title("zero-shot returns under visual shift")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    png_path = os.path.join(run_dir, f"{name}.png")
    fig.savefig(png_path)
    plt.close(fig)
    return csv_path, png_path


__all__ = ["SCENE_SUITE_NAMES", "SUITE_NAMES", "make_suite_evaluator", "summarize", "write_table"]
