"""Train SURREAL-PPO on a vasa environment.

    python examples/train_ppo.py                       # dmc/cartpole_balance, CPU-friendly defaults
    python examples/train_ppo.py --env brax/hopper --num-envs 2048 --total-env-steps 50_000_000
    python examples/train_ppo.py --surrogate kl --target-update-interval 4   # SURREAL's variant
    python examples/train_ppo.py --num-seeds 4         # four seeds at once with jax.vmap
    python examples/train_ppo.py --pixels --image-size 64 --augment crop   # PPO from pixels (Nature-style encoder)
    python examples/train_ppo.py --resume runs/<dir>   # continue a run from its newest intact checkpoint
    python examples/train_ppo.py --resume runs/<dir> --resume-step 100   # ... from checkpoint 100
    python examples/train_ppo.py --run-dir runs/x --overwrite   # replace the run in runs/x deliberately
    python examples/train_ppo.py --no-progress         # no progress bar
    vasa launch local --processes 2 -- python examples/train_ppo.py --env toy/pendulum   # two connected processes

Writes a run directory with config.json, metrics.csv, checkpoints/ and learning_curve.png; --resume
continues with the run's saved config and run settings (settings given on the command line
override them, with a note). Started by `vasa launch`, it joins the other processes first
(vasa.dist.initialize); process 0 writes the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Reuse compiled programs across runs (cheap on CPU, large savings for MJX tasks).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))

import tyro

import vasa.dist
from vasa.algos import ppo
from vasa.run import RunConfig


@dataclass(frozen=True)
class Args:
    ppo: ppo.PPOConfig = field(default_factory=ppo.PPOConfig)
    run: RunConfig = field(default_factory=RunConfig)


def main(args: Args) -> None:
    # ppo.train validates both configs before anything is compiled
    ppo.train(args.ppo, args.run)


def parse(argv: list[str] | None = None) -> Args:
    """The command line (default: ``sys.argv``) as ``Args``; booleans are ``--flag`` / ``--no-flag``."""
    return tyro.cli(Args, args=argv, config=(tyro.conf.OmitArgPrefixes,), description=__doc__)


if __name__ == "__main__":
    args = parse()
    # started by `vasa launch`, srun, mpirun or a Kubernetes Indexed Job: join the other processes before JAX starts
    vasa.dist.initialize_if_launched()
    main(args)
