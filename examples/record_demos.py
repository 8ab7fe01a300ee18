"""Record scripted demonstrations of ``robo/lift`` or ``robo/door`` to an ``.npz``.

    python examples/record_demos.py --out demos/lift.npz                       # 32 lift episodes x 100 steps
    python examples/record_demos.py --env robo/door --out demos/door.npz --num-episodes 16 --episode-length 150
    python examples/train_ppo.py --env robo/lift --demo-path demos/lift.npz --demo-curriculum reverse

The scripted controllers (vasa.envs.tasks.manipulation.scripted) run in one jitted scan over
vmapped environments; episodes that never succeed are dropped (--no-successful-only keeps
them). An existing file is never replaced unless --overwrite. The file feeds SURREAL's
demonstration curriculum (vasa.envs.curriculum) through --demo-path of the PPO/SAC/DDPG examples.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))

import tyro

POLICIES = {"robo/lift": "lift_policy", "robo/door": "door_policy"}


@dataclass(frozen=True)
class Args:
    out: str
    """the .npz to write"""
    env: Literal["robo/lift", "robo/door"] = "robo/lift"
    """task with a scripted controller"""
    num_episodes: int = 32
    """episodes recorded in parallel"""
    episode_length: int = 100
    """steps per episode (20 Hz control: 5 s)"""
    seed: int = 0
    """PRNG seed of the initial states"""
    successful_only: bool = True
    """keep only episodes that succeed at some step"""
    overwrite: bool = False
    """replace an existing file"""


def main(args: Args) -> str:
    import jax

    from vasa.envs import demos
    from vasa.envs.tasks.manipulation import scripted

    if os.path.exists(args.out if args.out.endswith(".npz") else args.out + ".npz") and not args.overwrite:
        raise SystemExit(f"{args.out!r} exists: pass --overwrite to replace it.")
    policy = getattr(scripted, POLICIES[args.env])
    recorded = demos.record(args.env, policy, jax.random.PRNGKey(args.seed), args.num_episodes, args.episode_length,
                            successful_only=args.successful_only)
    kept = recorded.num_episodes
    successes = int(recorded.success.max(axis=1).sum()) if kept else 0
    total = kept + recorded.num_dropped
    print(f"{args.env}: {successes}/{total} episodes successful; "
          f"kept {kept}, dropped {recorded.num_dropped}")
    path = recorded.save(args.out, overwrite=args.overwrite)
    print(f"wrote {path}: {recorded.summary()}")
    return path


def parse(argv: list[str] | None = None) -> Args:
    """The command line (default: ``sys.argv``) as ``Args``; booleans are ``--flag`` / ``--no-flag``."""
    return tyro.cli(Args, args=argv, description=__doc__)


if __name__ == "__main__":
    main(parse())
