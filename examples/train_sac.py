"""Train SAC on a vasa environment, from states or from pixels (DrQ), everything on device.

    python examples/train_sac.py                                   # dmc/cartpole_swingup from states
    python examples/train_sac.py --pixels                          # from 84x84 pixels (DrQ defaults)
    python examples/train_sac.py --pixels --appearance color_hard  # evaluate under a shifted look
    python examples/train_sac.py --env toy/pendulum --hidden-layers 64 64 --total-env-steps 12000 \\
        --num-envs 8 --batch-size 128 --learning-starts 500 --replay-ratio 0.5   # ~20 s on a CPU
    python examples/train_sac.py --resume runs/<dir>               # continue from the newest intact checkpoint

Writes a run directory with config.json, metrics.csv, checkpoints/ (replay buffer included)
and learning_curve.png. Training always sees --train-appearance (default: the original look);
evaluation uses --appearance. Started by `vasa launch` (or srun, mpirun, a Kubernetes Indexed
Job) it joins the other processes first (vasa.dist.initialize_if_launched); process 0 writes the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))

import tyro

import vasa.dist
from vasa.algos import offpolicy, sac
from vasa.run import RunConfig


@dataclass(frozen=True)
class Args:
    sac: sac.SACConfig = field(default_factory=sac.SACConfig)
    run: RunConfig = field(default_factory=lambda: offpolicy.DEFAULT_RUN)


def main(args: Args) -> None:
    # sac.train validates both configs before anything is compiled
    sac.train(args.sac, args.run)


def parse(argv: list[str] | None = None) -> Args:
    """The command line (default: ``sys.argv``) as ``Args``; booleans are ``--flag`` / ``--no-flag``."""
    return tyro.cli(Args, args=argv, config=(tyro.conf.OmitArgPrefixes,), description=__doc__)


if __name__ == "__main__":
    args = parse()
    # started by `vasa launch`, srun, mpirun or a Kubernetes Indexed Job: join the other processes before JAX starts
    vasa.dist.initialize_if_launched()
    main(args)
