"""Train SURREAL-ES / OpenAI-ES on a vasa environment (state observations).

    python examples/train_es.py                        # toy/pendulum, CPU-friendly defaults
    python examples/train_es.py --env brax/swimmer --action-bins 10 --population 1024   # SURREAL's Swimmer setting
    python examples/train_es.py --fitness-shaping z_score --rollouts-per-member 2
    python examples/train_es.py --num-devices 4        # the population split over 4 devices
    python examples/train_es.py --resume runs/<dir>    # continue a run from its newest intact checkpoint
    python examples/train_es.py --no-progress          # no progress bar

Writes a run directory with config.json, metrics.csv (population fitness, the centre's
evaluation return), checkpoints/ and learning_curve.png; --resume continues with the run's
saved config and run settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Reuse compiled programs across runs (cheap on CPU, large savings for MJX tasks).
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))

import tyro

from vasa.algos import es
from vasa.run import RunConfig


@dataclass(frozen=True)
class Args:
    es: es.ESConfig = field(default_factory=es.ESConfig)
    run: RunConfig = field(default_factory=lambda: es.DEFAULT_RUN)


def main(args: Args) -> None:
    # es.train validates both configs before anything is compiled
    es.train(args.es, args.run)


def parse(argv: list[str] | None = None) -> Args:
    """The command line (default: ``sys.argv``) as ``Args``; booleans are ``--flag`` / ``--no-flag``."""
    return tyro.cli(Args, args=argv, config=(tyro.conf.OmitArgPrefixes,), description=__doc__)


if __name__ == "__main__":
    main(parse())
