"""PPO from pixels, side by side in one process: vasa (feed-forward and LSTM) against Brax's
vision PPO, and against vasa's PPO from the state, on DM Control's cartpole balance.

* **Brax**: ``brax.training.agents.ppo.train(vision=True)`` with
  ``networks_vision.make_ppo_networks_vision`` on MuJoCo Playground's ``CartpoleBalance``
  with ``vision=True``, whose frames come from MJX's Warp batch renderer (running on the CPU
  here through warp-lang's CPU device; the render batch ``vision_config.nworld`` is set to
  the number of environments, and evaluation uses as many). Playground's vision PPO settings
  (``brax_vision_ppo_config``): 250-step episodes, action repeat 1, one RGB frame, no
  observation normalisation, CNN (16, 32 channels, 5x5 / 3x3, stride 2, max-pool).
* **vasa**: ``dmc/cartpole_balance`` from its own ray-cast camera at the same size, one frame
  (``frame_stack=1``), 250-step episodes, action repeat 1; DrQ's encoder (or Nature's) with a
  50-d projection; once feed-forward and once with an LSTM core (``--core-size``), which can
  recover the velocity a single frame hides.
* **state**: vasa's PPO on the state vector, same budget (what the pixels should approach).

Equal settings: environments, unroll 20, 8 minibatches (Brax ``batch_size = num_envs / 8``),
``--epochs`` updates per batch, learning rate, clip 0.2, entropy cost, gradient clip 1.0,
policy and value MLPs (64, 64). Reported: environment steps per second over training
(compilation and evaluation excluded; Brax's ``training/sps``, vasa's median logged rate) and
the deterministic evaluation return at the end of the same number of steps.

    python benchmarks/ppo_pixels.py                         # 32x32, 128 envs, 100K steps (CPU)
    python benchmarks/ppo_pixels.py --image-size 64 --num-envs 1024 --env-steps 5000000   # GPU
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))

import numpy as np  # noqa: E402

from benchmarks._common import vasa_revision  # noqa: E402

EPISODE = 250  # Playground's vision PPO episode length for CartpoleBalance


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--encoder", default="drq", choices=["drq", "nature"])
    p.add_argument("--env-steps", type=int, default=100_000)
    p.add_argument("--num-envs", type=int, default=128)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--core-size", type=int, default=64)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--entropy-cost", type=float, default=0.01)
    p.add_argument("--sides", default="brax,pixels,lstm,state",
                   help="comma-separated subset of brax, pixels, lstm, state")
    p.add_argument("--out", default="runs/bench-ppo-pixels")
    return p.parse_args()


def vasa_side(args, name: str) -> dict:
    from vasa.algos import ppo
    from vasa.run import RunConfig

    config = ppo.PPOConfig(
        env="dmc/cartpole_balance", num_envs=args.num_envs, unroll_length=20, num_minibatches=8,
        num_epochs=args.epochs, total_env_steps=args.env_steps, episode_length=EPISODE, action_repeat=1,
        learning_rate=args.learning_rate, lr_schedule="constant", entropy_coef=args.entropy_cost,
        max_grad_norm=1.0, clip_epsilon=0.2, policy_layers=(64, 64), value_layers=(64, 64))
    if name != "state":
        config = dataclasses.replace(config, pixels=True, image_size=args.image_size, frame_stack=1,
                                     encoder=args.encoder, normalize_observations=False)
    if name == "lstm":
        config = dataclasses.replace(config, core="lstm", core_size=args.core_size)
    run = RunConfig(run_dir=os.path.join(args.out, name), overwrite=True, progress=False, eval_every=0,
                    num_eval_envs=min(args.num_envs, 64))
    _, _, rows = ppo.train(config, run)
    sps = [r["sps"] for r in rows[1:]] or [rows[0]["sps"]]
    return {"sps": float(np.median(sps)), "return": float(rows[-1]["eval_return"]),
            "env_steps": int(rows[-1]["env_steps"]), "wall_s": float(rows[-1]["wall_time"])}


def brax_side(args) -> dict:
    from brax.training.agents.ppo import networks_vision
    from brax.training.agents.ppo import train as brax_ppo
    from mujoco_playground import registry, wrapper

    from benchmarks._brax_shim import shim_removed_jax_apis

    shim_removed_jax_apis(brax_ppo._PMAP_AXIS_NAME)
    size = args.image_size
    env = registry.load("CartpoleBalance", config_overrides={
        "vision": True, "vision_config.nworld": args.num_envs, "vision_config.cam_res": (size, size)})
    network = functools.partial(
        networks_vision.make_ppo_networks_vision, policy_hidden_layer_sizes=(64, 64),
        value_hidden_layer_sizes=(64, 64), cnn_output_channels=(16, 32), cnn_kernel_size=(5, 3), cnn_stride=(2, 2),
        cnn_padding="zeros", cnn_activation="elu", cnn_max_pool=True, cnn_global_pool="none")
    metrics_log: list[tuple[int, dict]] = []
    t0 = time.perf_counter()
    brax_ppo.train(
        environment=env, wrap_env_fn=wrapper.wrap_for_brax_training, num_timesteps=args.env_steps, vision=True,
        num_envs=args.num_envs, num_eval_envs=args.num_envs, episode_length=EPISODE, action_repeat=1,
        normalize_observations=False, unroll_length=20, num_minibatches=8, batch_size=args.num_envs // 8,
        num_updates_per_batch=args.epochs, discounting=0.99, learning_rate=args.learning_rate,
        entropy_cost=args.entropy_cost, max_grad_norm=1.0, clipping_epsilon=0.2, num_evals=2,
        network_factory=network, seed=0, progress_fn=lambda step, m: metrics_log.append((int(step), dict(m))))
    step, last = metrics_log[-1]
    sps = [float(m["training/sps"]) for _, m in metrics_log if "training/sps" in m]
    return {"sps": float(np.median(sps)) if sps else float("nan"), "return": float(last["eval/episode_reward"]),
            "env_steps": step, "wall_s": time.perf_counter() - t0}


def main() -> None:
    args = parse()
    revision = vasa_revision()  # of the code this run loads (later commits do not change it)
    import jax

    results = {}
    for name in args.sides.split(","):
        results[name] = brax_side(args) if name == "brax" else vasa_side(args, name)
        r = results[name]
        print(f"{name:>7s}: {r['sps']:10,.0f} env steps/s, eval return {r['return']:7.1f} after "
              f"{r['env_steps']:,} steps ({r['wall_s']:.0f} s incl. compile)", flush=True)
    if "brax" in results:
        for name in ("pixels", "lstm"):
            if name in results:
                print(f"vasa {name} / brax vision: steps/s x{results[name]['sps'] / results['brax']['sps']:.2f}, "
                      f"return {results[name]['return']:.1f} vs {results['brax']['return']:.1f}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"revision": revision, "device": jax.devices()[0].device_kind, "args": vars(args),
                   "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
