"""Record scripted demonstrations of a ``robo/*`` task to an ``.npz``.

    python examples/record_demos.py --out demos/lift.npz                       # 32 lift episodes x 100 steps
    python examples/record_demos.py --env robo/door --out demos/door.npz --num-episodes 16 --episode-length 150
    python examples/record_demos.py --env robo/stack --out demos/stack.npz --num-episodes 64 --episode-length 150
    python examples/record_demos.py --env robo/nut_assembly --env-options nut_type=square --out demos/nut.npz --episode-length 300
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

TASKS = Literal["robo/lift", "robo/door", "robo/stack", "robo/pick_place", "robo/nut_assembly",
                "robo/two_arm_lift", "robo/two_arm_peg_in_hole"]


@dataclass(frozen=True)
class Args:
    out: str
    """the .npz to write"""
    env: TASKS = "robo/lift"
    """task with a scripted controller"""
    env_options: tuple[str, ...] = ()
    """task builder arguments as name=value (e.g. nut_type=square, num_objects=1); training
    with these demonstrations must build the task the same way"""
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

    from vasa.envs import demos, parse_env_options
    from vasa.envs.tasks.manipulation.scripted_registry import scripted_policy

    if os.path.exists(args.out if args.out.endswith(".npz") else args.out + ".npz") and not args.overwrite:
        raise SystemExit(f"{args.out!r} exists: pass --overwrite to replace it.")
    options = parse_env_options(args.env_options)
    policy = scripted_policy(args.env, **options)
    recorded = demos.record(args.env, policy, jax.random.PRNGKey(args.seed), args.num_episodes, args.episode_length,
                            successful_only=args.successful_only, **options)
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
