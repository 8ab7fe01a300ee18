"""PPO from pixels against PPO from the state, same task, same budget, one process.

Brax's vision PPO (``brax.training.agents.ppo`` with ``networks_vision``) trains on MuJoCo
Playground's vision tasks, which render through MuJoCo Warp (``mjx.create_render_context`` /
``mjx.render``). Checked here (2026-12-01): ``CartpoleBalance`` with ``vision=True`` loads and
resets on this CPU through Warp's CPU device, as one batch of 1,024 worlds at 64x64 (its
vision config fixes the batch). Running Brax's vision PPO side by side is not wired up yet, so
this script compares vasa's pixel PPO with vasa's state PPO learning the same task, as the
issue allows in that case: environment steps per second (action repeats counted, compilation
excluded) and the deterministic evaluation return after the same number of environment steps.

    python benchmarks/ppo_pixels.py                                  # dmc/cartpole_balance, 32x32, 1M steps
    python benchmarks/ppo_pixels.py --image-size 64 --env-steps 4000000 --num-envs 256   # GPU-scale
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))

import numpy as np  # noqa: E402

from benchmarks._common import vasa_revision  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="dmc/cartpole_balance")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--encoder", default="drq", choices=["drq", "nature"])
    p.add_argument("--env-steps", type=int, default=1_000_000)
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--augment", default="none", choices=["none", "crop"])
    p.add_argument("--out", default="runs/bench-ppo-pixels")
    args = p.parse_args()
    revision = vasa_revision()  # of the code this run loads (later commits do not change it)

    import jax

    from vasa.algos import ppo
    from vasa.run import RunConfig

    state = ppo.PPOConfig(env=args.env, num_envs=args.num_envs, total_env_steps=args.env_steps)
    pixels = dataclasses.replace(state, pixels=True, image_size=args.image_size, encoder=args.encoder,
                                 augment=args.augment, augment_pad=max(1, args.image_size // 21))
    results = {}
    for name, config in (("state", state), ("pixels", pixels)):
        run = RunConfig(run_dir=os.path.join(args.out, name), overwrite=True, progress=False, eval_every=0)
        _, _, rows = ppo.train(config, run)
        sps = [r["sps"] for r in rows[1:]] or [rows[0]["sps"]]
        results[name] = {"sps": float(np.median(sps)), "return": float(rows[-1]["eval_return"]),
                         "env_steps": int(rows[-1]["env_steps"]), "wall_s": float(rows[-1]["wall_time"])}
        print(f"{name:>7s}: {results[name]['sps']:10,.0f} env steps/s, eval return {results[name]['return']:7.1f} "
              f"after {results[name]['env_steps']:,} steps ({results[name]['wall_s']:.0f} s)", flush=True)
    print(f"pixels / state: steps/s x{results['pixels']['sps'] / results['state']['sps']:.3f}, return "
          f"{results['pixels']['return']:.1f} vs {results['state']['return']:.1f}")
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"revision": revision, "device": jax.devices()[0].device_kind, "args": vars(args),
                   "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
