"""Navigation throughput: robot control steps per second of ``nav/pointgoal`` at batch size.

One control step = 5 MJX physics steps (0.1 s at 0.02 s) of the LoCoBot-like robot in its
own apartment layout (mocap walls and furniture), the reward's geodesic lookup, and its
sensors: the 228-ray LiDAR (``lidar``), plus a 128x128 depth image from the head camera
through vasa's ray-cast renderer (``lidar+depth``). Steps are ``jit(vmap(env.step))`` with
random actions under a ``lax.scan`` of ``--horizon`` steps (no auto-reset: an episode ends
only by success, which random actions rarely reach; the step still runs).

Anchor: Habitat-Sim renders ~4,093 RGB frames/s at 128x128 in one process (its published
single-process figure, **on a GPU**, with no physics); iGibson runs one scene per process
on PyBullet. The ratio printed is ours / 4,093. On this CPU it is a floor, not a
like-for-like comparison: the anchor is a GPU figure and we also step physics and LiDAR.

    python benchmarks/navigation_throughput.py --envs 256 1024 4096 --sensors lidar --horizon 10
    python benchmarks/navigation_throughput.py --envs 256 1024 --sensors lidar+depth --horizon 2 --repeats 1

Measured on the 2-core CPU (2026-12-02, shared with other jobs, load ~6): LiDAR only 1,008 /
905 / 1,136 steps/s at 256 / 1,024 / 4,096 envs (0.25 / 0.22 / 0.28 of the GPU anchor);
with 128x128 depth 9 steps/s at 256 envs (before depth was cast in row chunks; 1,024 envs
then ran out of memory) and 18 steps/s at 1,024 envs (chunked, one timed rollout).
"""

from __future__ import annotations

import argparse
import platform
import time

import jax

HABITAT_FPS = 4093.0


def measure(env, num_envs: int, horizon: int, repeats: int) -> tuple[float, float]:
    """``(steps per second, compile seconds)`` for ``num_envs`` environments."""
    reset = jax.jit(jax.vmap(env.reset))
    step = jax.vmap(env.step)

    @jax.jit
    def rollout(state, key):
        def body(s, k):
            a = jax.random.uniform(k, (num_envs, 2), minval=-1.0, maxval=1.0)
            return step(s, a), None

        state, _ = jax.lax.scan(body, state, jax.random.split(key, horizon))
        return state

    state = reset(jax.random.split(jax.random.PRNGKey(0), num_envs))
    t0 = time.perf_counter()
    jax.block_until_ready(rollout(state, jax.random.PRNGKey(1)))
    first = time.perf_counter() - t0
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        state = rollout(state, jax.random.PRNGKey(2 + r))
        jax.block_until_ready(state)
        times.append(time.perf_counter() - t0)
    best = sorted(times)[len(times) // 2]
    return num_envs * horizon / best, first - best


def main():
    from vasa.envs.tasks.navigation import PointGoalNav

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--sensors", nargs="+", default=["lidar", "lidar+depth"], choices=["lidar", "lidar+depth"])
    args = p.parse_args()
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), {platform.processor() or platform.machine()}, "
          f"jax {jax.__version__}")
    print(f"anchor: Habitat-Sim ~{HABITAT_FPS:,.0f} RGB frames/s at 128x128, one process, on a GPU (no physics)")
    for sensors in args.sensors:
        env = PointGoalNav(num_layouts=4, sensors=tuple(sensors.split("+")), image_size=args.image_size)
        for n in args.envs:
            sps, compile_s = measure(env, n, args.horizon, args.repeats)
            print(f"{sensors:12s} envs={n:5d}  {sps:10,.0f} steps/s  ratio vs Habitat-Sim GPU anchor "
                  f"{sps / HABITAT_FPS:6.3f}  (compile {compile_s:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
