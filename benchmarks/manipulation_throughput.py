"""Steps per second of the ``robo/*`` tasks (osc_pose; state observations, or 84x84 pixels with
``--pixels``) on this machine.

One jitted program runs ``steps`` control steps of ``num_envs`` vmapped environments under
``lax.scan`` with uniform random actions in [-1, 1] (as the robosuite figure was taken), through
:func:`vasa.envs.make`'s standard wrappers (episode limit 500, auto-reset in ``fresh`` mode,
so a reset is evaluated every step as in training). One control step is 20 Hz, i.e. 10
physics sub-steps of 5 ms.

robosuite cannot be installed next to vasa's mujoco 4.x (robosuite 1.5.2 needs mujoco 3.3.7;
``../shared/REFERENCE.md``), so the peer figures are the ones recorded on this 2-core CPU in
its own virtual environment (2026-12-01; Panda, OSC_POSE, state observations, random actions,
one process): Lift 177 steps/s, Door 258 steps/s. The printed ratio is against those.

    python benchmarks/manipulation_throughput.py [--num-envs 256 1024] [--steps 100] [--tasks lift door] [--timestep 0.01]
    python benchmarks/manipulation_throughput.py --tasks stack pick_place nut_assembly two_arm_lift --pixels

Tasks without a recorded robosuite figure print ``-`` as peer and ratio.
"""

from __future__ import annotations

import argparse
import os
import time

# before JAX starts its backend: MJX kinematics of the 9-deep arm needs XLA:CPU's legacy
# fusion (see vasa.envs.tasks.manipulation; 200x slower without on this CPU).
# The CPU deadlock of jaxlib 0.10.2 (two batched LAPACK Cholesky calls in flight on a 2-thread
# pool) that stalled this benchmark at 256 environments is avoided by vasa.envs.physics.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false").strip()

import jax

ROBOSUITE_STEPS_PER_S = {"lift": 177.0, "door": 258.0}
TASKS = ("lift", "door", "stack", "pick_place", "nut_assembly", "two_arm_lift", "two_arm_peg_in_hole")


def measure(task: str, num_envs: int, steps: int, repeats: int = 2, pixels: bool = False,
            timestep: float = 0.005) -> tuple[float, float]:
    """``(compile seconds, steps/s)`` of ``num_envs`` envs for ``steps`` control steps (best of
    ``repeats``); with ``pixels``, 84x84 RGB from ``agentview`` (frame stack 3) every step;
    ``timestep``: the physics step (20 Hz control: 0.005 s is 10 sub-steps, vasa's default)."""
    import vasa.envs

    extra = {"pixels": True, "image_size": 84, "camera": "agentview"} if pixels else {}
    env = vasa.envs.make(f"robo/{task}", timestep=timestep, **extra)
    size = env.action_spec.shape[0]

    @jax.jit
    def run(key):
        state = jax.vmap(env.reset)(jax.random.split(key, num_envs))

        def body(carry, _):
            s, k = carry
            k, sub = jax.random.split(k)
            a = jax.random.uniform(sub, (num_envs, size), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            return (s, k), s.reward.mean()

        (state, _), rewards = jax.lax.scan(body, (state, key), None, length=steps)
        return rewards.sum() + sum(x.astype(jax.numpy.float32).sum() for x in jax.tree.leaves(state.obs))

    t0 = time.perf_counter()
    run(jax.random.PRNGKey(0)).block_until_ready()
    compile_s = time.perf_counter() - t0
    best = 0.0
    for r in range(repeats):
        t0 = time.perf_counter()
        run(jax.random.PRNGKey(r + 1)).block_until_ready()
        best = max(best, num_envs * steps / (time.perf_counter() - t0))
    return compile_s, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--tasks", nargs="+", default=["lift", "door"], choices=TASKS)
    parser.add_argument("--pixels", action="store_true", help="observe 84x84 agentview pixels (rendered every step)")
    parser.add_argument("--timestep", type=float, default=0.005,
                        help="physics step in s (default 0.005: 10 sub-steps per 20 Hz control step; robosuite: 0.002)")
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, jax {jax.__version__}, {jax.devices()[0].platform}; "
          "robosuite figures recorded 2026-12-01 on this CPU in a separate venv (mujoco 3.3.7), not run here")
    obs = "pixels 84x84" if args.pixels else "state"
    print(f"{'task':20s} {'obs':>12s} {'dt':>6s} {'envs':>6s} {'compile s':>10s} {'steps/s':>10s} {'robosuite':>10s} {'ratio':>7s}")
    for task in args.tasks:
        for n in args.num_envs:
            compile_s, sps = measure(task, n, args.steps, pixels=args.pixels, timestep=args.timestep)
            peer = ROBOSUITE_STEPS_PER_S.get(task) if not args.pixels else None
            ratio = f"{sps / peer:6.1f}x" if peer else "      -"
            print(f"{task:20s} {obs:>12s} {args.timestep:6.3f} {n:6d} {compile_s:10.1f} {sps:10.0f} {peer or '-':>10} {ratio}", flush=True)


if __name__ == "__main__":
    main()
