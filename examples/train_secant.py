"""SECANT: train (or load) an expert, distil it into a pixel student under strong
augmentations, and evaluate both zero-shot under the five appearance suites.

    python examples/train_secant.py                                  # dmc/cartpole_balance, privileged PPO expert, 32x32 student
    python examples/train_secant.py --distill.safe                   # SafeDAgger instead of DAgger
    python examples/train_secant.py --distill.parallel               # SECANT-Parallel: the PPO expert learns meanwhile
    python examples/train_secant.py --distill.augment.ops crop       # the weak-augmentation student (ablation)
    python examples/train_secant.py --expert-run runs/<ppo or sac run>   # distil an expert you trained before
    python examples/train_secant.py --expert sac_pixels --distill.image-size 84   # the thesis's DrQ expert (GPU-scale)
    python examples/train_secant.py --run.resume runs/<secant dir>   # continue whichever stage was interrupted

Writes runs/secant-<env>-<time>/ with secant.json, expert/ and student/ run directories
(config.json, metrics.csv, checkpoints, learning curves) and zero_shot.csv / zero_shot.png.
The expert's and the student's environments must agree (task, action repeat); the config is
checked before anything is compiled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))

import tyro

from vasa.distill import secant
from vasa.run import RunConfig


@dataclass(frozen=True)
class Args(secant.SecantConfig):
    run: RunConfig = field(default_factory=RunConfig)
    """run directory, resume, progress (each stage keeps its trainer's logging intervals)"""


def main(args: Args) -> None:
    # secant.train validates every stage's config before anything is compiled
    config = secant.SecantConfig(**{f.name: getattr(args, f.name) for f in fields(secant.SecantConfig)})
    secant.train(config, args.run)


def parse(argv: list[str] | None = None) -> Args:
    """The command line (default: ``sys.argv``) as ``Args``: SECANT's own options unprefixed,
    the stages' configs as ``--ppo.*``, ``--sac.*``, ``--distill.*``, the run's as ``--run.*``."""
    return tyro.cli(Args, args=argv, description=__doc__)


if __name__ == "__main__":
    main(parse())
