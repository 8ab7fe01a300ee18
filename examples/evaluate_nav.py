"""Evaluate a trained PPO run on ``nav/pointgoal``: success, SPL and return (mean +- std) on
the training layouts and on held-out layouts and looks, as iGibson reports them.

    python examples/train_ppo.py --env nav/pointgoal --env-options num_layouts=64 --action-repeat 1 --run-dir runs/nav
    python examples/evaluate_nav.py runs/nav                       # newest checkpoint, 64 episodes each
    python examples/evaluate_nav.py runs/nav --step 200 --num-episodes 256 --csv runs/nav/heldout.csv

The policy acts with its Gaussian mean (deterministic), on observations z-filtered with the
run's statistics. Held-out layouts come from seeds >= 1,000,000 (never seen in training) and
held-out looks from their own seed range (:func:`vasa.envs.tasks.navigation.evaluate_heldout`).
"""

from __future__ import annotations

import csv
import dataclasses
import os

import jax
import tyro

from vasa.algos import ppo_eval
from vasa.envs import parse_env_options


@dataclasses.dataclass(frozen=True)
class Args:
    run_dir: tyro.conf.Positional[str]
    """a PPO run directory trained on nav/pointgoal (or nav/interactive_pointgoal)"""
    step: int | None = None
    """checkpoint to evaluate (default: the newest intact one)"""
    num_episodes: int = 64
    """episodes per split"""
    num_heldout_layouts: int = 4
    """held-out layouts (seeds from 1,000,000)"""
    seed: int = 0
    """evaluation key"""
    csv: str | None = None
    """also write the table here (never over an existing file)"""


def load_policy(run_dir: str, step: int | None = None):
    """``(config, env, step, act)``: the run's PPO config, its training environment and a
    deterministic ``act(obs [231], key, state) -> action [2]`` from the checkpoint (with a
    recurrent core, the batched ``act(obs, memory) -> (action, memory)``)."""
    config = ppo_eval.read_ppo_config(run_dir)
    if not config.env.startswith("nav/") or config.pixels:
        raise ValueError(f"{run_dir}: env={config.env!r}, pixels={config.pixels} is not allowed: "
                         "evaluate_nav takes state PPO runs (feed-forward or recurrent) on nav/pointgoal.")
    return ppo_eval.load_policy(run_dir, step)


def main(args: Args) -> list[dict]:
    from vasa.envs.tasks.navigation import PointGoalNav, evaluate, evaluate_heldout

    if args.csv and os.path.exists(args.csv):
        raise FileExistsError(f"csv={args.csv!r} exists: choose another path (evaluate_nav never overwrites).")
    config, _, step, act = load_policy(args.run_dir, args.step)
    key = jax.random.PRNGKey(args.seed)
    rows = []
    options = parse_env_options(config.env_options)  # the training family (rooms, sensors, layouts...)
    family = {k: v for k, v in options.items() if k not in ("split", "num_layouts", "layout_start", "look", "look_seed")}
    train_env = PointGoalNav(split="train", **options)
    for split, res in (("train layouts", evaluate(train_env, act, key, args.num_episodes)),
                       ("held-out layouts + looks", evaluate_heldout(act, key, num_layouts=args.num_heldout_layouts,
                                                                     num_episodes=args.num_episodes, **family))):
        s = res["summary"]
        rows.append({"split": split, "episodes": args.num_episodes,
                     **{f"{m}_{k}": v for m in ("success", "spl", "return") for k, v in zip(("mean", "std"), s[m])}})
    print(f"{args.run_dir} (checkpoint {step}, {config.env}):")
    print(f"{'split':26s} {'success':>15s} {'SPL':>15s} {'return':>17s}")
    for r in rows:
        cells = [f"{r[f'{m}_mean']:.3f} +- {r[f'{m}_std']:.3f}" for m in ("success", "spl")]
        print(f"{r['split']:26s} {cells[0]:>15s} {cells[1]:>15s} {r['return_mean']:8.2f} +- {r['return_std']:.2f}")
    if args.csv:
        with open(args.csv, "x", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return rows


if __name__ == "__main__":
    main(tyro.cli(Args, description=__doc__))
