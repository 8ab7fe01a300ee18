"""Steps per second of the ``robo/*`` tasks (osc_pose; state observations, or 84x84 pixels with
``--pixels``) on this machine.

One jitted program runs ``steps`` control steps of ``num_envs`` vmapped environments under
``lax.scan`` with uniform random actions in [-1, 1] (as the robosuite figure was taken), through
:func:`vasa.envs.make`'s standard wrappers (episode limit 500, auto-reset in ``fresh`` mode,
so a reset is evaluated every step as in training). One control step is 20 Hz, i.e. 10
physics sub-steps of 5 ms.

``--devices 2`` splits the environments over two host CPU devices (one per core) on vasa's
mesh (``shard_map``), as vasa's trainers run on a CPU; with one device XLA:CPU keeps only ~1.45
of the two cores busy.

robosuite cannot be installed next to vasa's mujoco 4.x (robosuite 1.5.2 needs mujoco 3.3.7;
``../shared/REFERENCE.md``), so it runs in its own virtual environment through
``benchmarks/robosuite_steps.py`` (``--robosuite-python /tmp/rsvenv/bin/python`` runs it now, in a
subprocess, before vasa is timed); the peer is robosuite's best of 1 and 2 processes (Panda,
OSC_POSE, state observations, random actions, resets counted). Without that flag the figures
recorded on this 2-core CPU on 2026-12-03 are used: Lift 263.5 and Door 260.2 steps/s (both
with 2 processes; 1 process: 163 and 122-146).

    python benchmarks/manipulation_throughput.py [--num-envs 256 1024] [--steps 100] [--tasks lift door] [--timestep 0.01]
    python benchmarks/manipulation_throughput.py --devices 2 --num-envs 1024 4096 --robosuite-python /tmp/rsvenv/bin/python
    python benchmarks/manipulation_throughput.py --tasks stack pick_place nut_assembly two_arm_lift --pixels

Tasks without a recorded robosuite figure print ``-`` as peer and ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

# before JAX starts its backend: MJX kinematics of the 9-deep arm needs XLA:CPU's legacy
# fusion (see vasa.envs.tasks.manipulation; 200x slower without on this CPU).
# The CPU deadlock of jaxlib 0.10.2 (two batched LAPACK Cholesky calls in flight on a 2-thread
# pool) that stalled this benchmark at 256 environments is avoided by vasa.envs.physics.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false").strip()
# --devices N (read before JAX starts): N host CPU devices, one per core, the environments split
# over them by shard_map on vasa's mesh, as vasa's trainers run on a CPU
_DEVICES = next((int(a.split("=", 1)[1]) if "=" in a else int(sys.argv[i + 1])
                 for i, a in enumerate(sys.argv) if a.startswith("--devices")), 1)
if _DEVICES > 1:
    os.environ["XLA_FLAGS"] += f" --xla_force_host_platform_device_count={_DEVICES}"

import jax
from jax.sharding import PartitionSpec

ROBOSUITE_STEPS_PER_S = {"lift": 263.5, "door": 260.2}  # best of 1 and 2 processes, 2026-12-03
TASKS = ("lift", "door", "stack", "pick_place", "nut_assembly", "two_arm_lift", "two_arm_peg_in_hole")


def measure(task: str, num_envs: int, steps: int, repeats: int = 2, pixels: bool = False,
            timestep: float = 0.005, devices: int = 1) -> tuple[float, float]:
    """``(compile seconds, steps/s)`` of ``num_envs`` envs for ``steps`` control steps (best of
    ``repeats``); with ``pixels``, 84x84 RGB from ``agentview`` (frame stack 3) every step;
    ``timestep``: the physics step (20 Hz control: 0.005 s is 10 sub-steps, vasa's default);
    ``devices``: the environments split evenly over a mesh of that many devices
    (:func:`vasa.dist.make_mesh`, ``shard_map``); ``num_envs`` must divide by it."""
    import vasa.envs
    from vasa.dist.mesh import DATA_AXIS, make_mesh

    if num_envs % devices:
        raise ValueError(f"num_envs={num_envs} is not allowed with devices={devices}: it must divide evenly.")

    extra = {"pixels": True, "image_size": 84, "camera": "agentview"} if pixels else {}
    env = vasa.envs.make(f"robo/{task}", timestep=timestep, **extra)
    size = env.action_spec.shape[0]

    local = num_envs // devices

    def rollout(key):
        key = jax.random.fold_in(key[0], jax.lax.axis_index(DATA_AXIS))
        state = jax.vmap(env.reset)(jax.random.split(key, local))

        def body(carry, _):
            s, k = carry
            k, sub = jax.random.split(k)
            a = jax.random.uniform(sub, (local, size), minval=-1.0, maxval=1.0)
            s = jax.vmap(env.step)(s, a)
            return (s, k), s.reward.mean()

        (state, _), rewards = jax.lax.scan(body, (state, key), None, length=steps)
        total = rewards.sum() + sum(x.astype(jax.numpy.float32).sum() for x in jax.tree.leaves(state.obs))
        return total[None]

    # MJX's solver mixes device-varying and replicated values in lax.cond: no VMA check
    run = jax.jit(lambda key: jax.shard_map(rollout, mesh=make_mesh(devices), in_specs=PartitionSpec(),
                                            out_specs=PartitionSpec(DATA_AXIS), check_vma=False)(key[None]))
    t0 = time.perf_counter()
    run(jax.random.PRNGKey(0)).block_until_ready()
    compile_s = time.perf_counter() - t0
    best = 0.0
    for r in range(repeats + (devices > 1)):  # on a mesh the first timed call is still slow (dropped)
        t0 = time.perf_counter()
        run(jax.random.PRNGKey(r + 1)).block_until_ready()
        if devices > 1 and r == 0:
            continue
        best = max(best, num_envs * steps / (time.perf_counter() - t0))
    return compile_s, best


def robosuite_peer(python: str, tasks, processes=(1, 2), seconds: float = 20.0) -> dict[str, float]:
    """Run ``benchmarks/robosuite_steps.py`` under robosuite's own interpreter ``python``; return
    ``{vasa task: robosuite's best steps/s over 1 and 2 processes}``."""
    names = {"lift": "Lift", "door": "Door"}
    wanted = [names[t] for t in tasks if t in names]
    if not wanted:
        return {}
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "robosuite_steps.py")
    out = subprocess.run([python, script, "--tasks", *wanted, "--processes", *map(str, processes), "--seconds",
                          str(seconds)], check=True, capture_output=True, text=True).stdout
    best: dict[str, float] = {}
    for task, n, rate in re.findall(r"^RESULT (\w+) (\d+) ([\d.]+)", out, flags=re.MULTILINE):
        key = task.lower()
        print(f"# robosuite {task}, {n} process(es): {float(rate):.0f} steps/s", flush=True)
        best[key] = max(best.get(key, 0.0), float(rate))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--num-envs", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--tasks", nargs="+", default=["lift", "door"], choices=TASKS)
    parser.add_argument("--pixels", action="store_true", help="observe 84x84 agentview pixels (rendered every step)")
    parser.add_argument("--timestep", type=float, default=0.005,
                        help="physics step in s (default 0.005: 10 sub-steps per 20 Hz control step; robosuite: 0.002)")
    parser.add_argument("--devices", type=int, default=1,
                        help="split the environments over this many host devices (2 = one per core on this CPU)")
    parser.add_argument("--robosuite-python", default=None,
                        help="robosuite's venv interpreter: measure the peer now (best of 1 and 2 processes)")
    args = parser.parse_args()
    if args.devices != _DEVICES or args.devices > jax.device_count():
        raise ValueError(f"--devices={args.devices} is not allowed: {jax.device_count()} devices started.")
    peers, source = dict(ROBOSUITE_STEPS_PER_S), "recorded 2026-12-03 on this CPU (best of 1 and 2 processes)"
    if args.robosuite_python and not args.pixels:
        peers.update(robosuite_peer(args.robosuite_python, args.tasks))
        source = "measured now (best of 1 and 2 processes)"
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, jax {jax.__version__}, {jax.devices()[0].platform} "
          f"x {args.devices}; robosuite figures {source}")
    obs = "pixels 84x84" if args.pixels else "state"
    print(f"{'task':20s} {'obs':>12s} {'dt':>6s} {'dev':>4s} {'envs':>6s} {'compile s':>10s} {'steps/s':>10s} "
          f"{'robosuite':>10s} {'ratio':>7s}")
    for task in args.tasks:
        for n in args.num_envs:
            compile_s, sps = measure(task, n, args.steps, pixels=args.pixels, timestep=args.timestep,
                                     devices=args.devices)
            peer = peers.get(task) if not args.pixels else None
            ratio = f"{sps / peer:6.1f}x" if peer else "      -"
            print(f"{task:20s} {obs:>12s} {args.timestep:6.3f} {args.devices:4d} {n:6d} {compile_s:10.1f} {sps:10.0f} "
                  f"{round(peer) if peer else '-':>10} {ratio}", flush=True)


if __name__ == "__main__":
    main()
