"""robosuite's steps per second on this machine, in 1 or more processes (the peer figure of
``benchmarks/manipulation_throughput.py``).

robosuite 1.5.2 needs ``mujoco==3.3.7`` and vasa needs mujoco 4.x, so this script runs in
robosuite's own virtual environment and imports nothing from vasa::

    python -m venv /tmp/rsvenv && /tmp/rsvenv/bin/pip install robosuite==1.5.2 mujoco==3.3.7
    /tmp/rsvenv/bin/python benchmarks/robosuite_steps.py --tasks Lift Door --processes 1 2

Setting: Panda, the default BASIC composite controller (OSC_POSE arm + gripper), state
observations (no cameras, no renderer), 20 Hz control, robosuite's 2 ms physics step,
horizon 500 with resets counted in the time (``hard_reset=False`` by default, robosuite's fast
reset; ``--hard-reset`` rebuilds the model at each reset as robosuite does by default), uniform
random actions in [-1, 1]. With ``P``
processes each one runs its own environment for ``--seconds`` after a warm-up; the figure is
the sum of their steps per second (the processes start together and are timed over the same
window). Prints one ``RESULT task processes steps_per_s`` line per measurement, which
``manipulation_throughput.py --robosuite-python`` parses.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time


def _worker(task: str, seconds: float, seed: int, hard_reset: bool, start, queue) -> None:
    import numpy as np
    import robosuite

    env = robosuite.make(task, robots="Panda", has_renderer=False, has_offscreen_renderer=False,
                         use_camera_obs=False, control_freq=20, horizon=500, reward_shaping=True,
                         hard_reset=hard_reset)
    rng = np.random.default_rng(seed)
    low, high = env.action_spec
    env.reset()
    for _ in range(50):  # warm-up: first steps allocate
        env.step(rng.uniform(low, high))
    start.wait()
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _, _, done, _ = env.step(rng.uniform(low, high))
        steps += 1
        if done:
            env.reset()
    queue.put(steps / (time.perf_counter() - t0))


def measure(task: str, processes: int, seconds: float, hard_reset: bool = False) -> float:
    """Summed steps/s of ``processes`` robosuite processes of ``task`` (``"Lift"``, ``"Door"``, ...);
    ``hard_reset``: robosuite's default, which rebuilds the simulation at every reset."""
    ctx = mp.get_context("spawn")
    start, queue = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(task, seconds, i, hard_reset, start, queue)) for i in range(processes)]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return float(sum(rates))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["Lift", "Door"])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--hard-reset", action="store_true", help="robosuite's default reset (rebuilds the model; slower)")
    args = parser.parse_args()
    for task in args.tasks:
        for n in args.processes:
            rate = measure(task, n, args.seconds, args.hard_reset)
            print(f"RESULT {task} {n} {rate:.1f} hard_reset={args.hard_reset}", flush=True)


if __name__ == "__main__":
    main()
