"""PPO throughput as 1 process x 2 devices vs 2 processes x 1 device (this CPU), and what
crosses between the devices each iteration.

    python benchmarks/multiprocess_scaling.py                    # toy/pendulum, prints the ratio
    python benchmarks/multiprocess_scaling.py --env dmc/cartpole_balance --iterations 20

Both layouts run the same PPOConfig on a 2-device ``"data"`` mesh, so they do the same work
and (as tests/test_multiprocess.py checks) compute the same numbers; only the all-reduces
differ: XLA's in-process CPU collective vs gloo over TCP between the two processes. Each
layout runs in fresh processes: compile, one warm-up call, then ``--repeats`` timed calls of
``--chunk`` iterations (one device call each); the figure is the median.

The collectives are counted from the training step's jaxpr: every ``psum`` (``pmean``,
``all_gather``, ...) and its operands' bytes, multiplied by the trip counts of the ``scan``s
around it (epochs x minibatches), per iteration and per device. ``--expected`` turns these
into the weak-scaling efficiency expected on 8 GPUs per node (NVLink within a node,
InfiniBand between nodes; a ring all-reduce sends ``2 (n-1)/n`` x the bytes per device).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIVES = ("psum", "pmax", "pmin", "all_gather", "all_to_all", "ppermute", "reduce_scatter", "psum_scatter")


def _config(args):
    from vasa.algos import ppo

    return ppo.PPOConfig(env=args.env, num_envs=args.num_envs, unroll_length=args.unroll_length,
                         num_minibatches=args.num_minibatches, num_epochs=args.num_epochs, action_repeat=1,
                         policy_layers=tuple(args.layers), value_layers=tuple(args.layers),
                         total_env_steps=args.num_envs * args.unroll_length * 1000)


def count_collectives(jaxpr, multiplier: int = 1) -> dict:
    """``{"calls": n, "operands": m, "bytes": b, "by_primitive": {name: (operands, bytes)}}``
    of the cross-device collectives in a (closed) jaxpr, each counted as often as the enclosing
    ``scan``s run it (a ``while`` loop's body counts once; a ``cond`` counts its most expensive
    branch). XLA:CPU issues one gloo all-reduce per operand."""
    out = {"calls": 0, "operands": 0, "bytes": 0, "by_primitive": {}}

    def add(other, k=1):
        out["calls"] += other["calls"] * k
        out["operands"] += other["operands"] * k
        out["bytes"] += other["bytes"] * k
        for name, (c, b) in other["by_primitive"].items():
            c0, b0 = out["by_primitive"].get(name, (0, 0))
            out["by_primitive"][name] = (c0 + c * k, b0 + b * k)

    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if any(name.startswith(c) for c in COLLECTIVES):
            size = sum(v.aval.size * v.aval.dtype.itemsize for v in eqn.invars if hasattr(v.aval, "size"))
            add({"calls": 1, "operands": len(eqn.invars), "bytes": size,
                 "by_primitive": {name: (len(eqn.invars), size)}}, multiplier)
            continue
        subs = []
        for key, value in eqn.params.items():
            values = value if isinstance(value, (tuple, list)) else (value,)
            subs += [(key, v) for v in values if hasattr(v, "eqns") or hasattr(v, "jaxpr")]
        if not subs:
            continue
        if name == "cond":
            branches = [count_collectives(v) for _, v in subs]
            add(max(branches, key=lambda c: c["bytes"]), multiplier)
            continue
        k = int(eqn.params.get("length", 1)) if name == "scan" else 1
        for _, v in subs:
            add(count_collectives(v), multiplier * k)
    return out


def worker(args) -> None:
    """One layout's measurement, in this process (after vasa.dist.initialize_if_launched)."""
    import vasa.dist

    vasa.dist.initialize_if_launched(verbose=False)
    import jax
    import numpy as np

    from vasa.algos import ppo
    from vasa.dist import make_mesh

    config = _config(args)
    mesh = make_mesh()
    config.validate(mesh.size)
    env = ppo.make_env(config)
    state = ppo.init(config, env, mesh)
    comm = count_collectives(jax.make_jaxpr(ppo.make_train_step(config, env, mesh))(state))
    leaves = jax.tree.leaves(jax.tree.map(lambda x: x.addressable_data(0), state.params))
    result = {"processes": jax.process_count(), "devices": jax.device_count(),
              "env_steps_per_iteration": config.env_steps_per_iteration,
              "param_bytes": int(sum(x.size * x.dtype.itemsize for x in leaves)), "param_leaves": len(leaves),
              "updates_per_iteration": config.num_epochs * config.num_minibatches,
              "collective_calls": comm["calls"], "collective_operands": comm["operands"],
              "collective_bytes": comm["bytes"], "by_primitive": comm["by_primitive"]}
    if args.count_only:
        print("RESULT " + json.dumps(result), flush=True)
        return
    run = ppo.make_train_step(config, env, mesh, chunk=args.chunk)
    t = time.perf_counter()
    compiled = run.lower(state, args.chunk).compile()
    compile_s = time.perf_counter() - t
    state, m = compiled(state, args.chunk)  # warm-up
    jax.block_until_ready(m)
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        state, m = compiled(state, args.chunk)
        jax.block_until_ready(m)
        times.append((time.perf_counter() - t) / args.chunk)
    result.update(collective_s=_collective_latency(mesh, result["param_bytes"] // 4))
    result.update(compile_s=compile_s, s_per_iteration=statistics.median(times), times=times,
                  sps=config.env_steps_per_iteration / statistics.median(times),
                  loss=float(np.asarray(m["loss"])[-1]))
    if jax.process_index() == 0:
        print("RESULT " + json.dumps(result), flush=True)


def _collective_latency(mesh, size: int, rounds: int = 100) -> float:
    """Median seconds of one all-reduce of ``size`` float32 per device (the fused gradient's
    size), from ``rounds`` dependent all-reduces in one device call."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    sharding = NamedSharding(mesh, P("data"))
    local = np.ones((len(mesh.local_devices), size), np.float32)
    x = jax.make_array_from_process_local_data(sharding, local)
    body = lambda x: jax.lax.fori_loop(0, rounds, lambda i, y: jax.lax.psum(y, "data") * 0.5, x)  # noqa: E731
    f = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=P("data"), out_specs=P("data"), check_vma=False))
    f(x).block_until_ready()
    times = []
    for _ in range(5):
        t = time.perf_counter()
        f(x).block_until_ready()
        times.append((time.perf_counter() - t) / rounds)
    return statistics.median(times)


def _measure(args, processes: int) -> dict:
    flags = [a for a in sys.argv[1:] if a != "--expected" and not a.startswith("--xla-flags")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VASA_", "SLURM_", "OMPI_"))}
    env.update(JAX_PLATFORMS="cpu", PYTHONUNBUFFERED="1",
               XLA_FLAGS=f"--xla_force_host_platform_device_count={2 // processes} {args.xla_flags}".strip())
    command = [sys.executable, os.path.abspath(__file__), "--worker", *flags]
    if processes > 1:
        command = [sys.executable, "-m", "vasa", "launch", "local", "--processes", str(processes), "--", *command]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    lines = [line for line in proc.stdout.splitlines() if "RESULT " in line]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{processes}-process run failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return json.loads(lines[0].split("RESULT ", 1)[1])


def expected_efficiency(bytes_per_iteration: float, compute_s: float, nvlink_gbs: float = 900.0,
                        ib_gbits: float = 400.0, gpus_per_node: int = 8, latency_s: float = 10e-6,
                        calls: int = 0) -> dict:
    """Weak-scaling efficiency ``compute / (compute + all-reduce time)`` (no overlap assumed):
    a ring all-reduce moves ``2 (n-1)/n`` x the bytes through each device's link; within a node
    at NVLink speed, across nodes at each node's InfiniBand NIC shared by its GPUs (a
    hierarchical all-reduce sends each byte across the NIC once per node). Plus ``latency_s``
    per collective call."""
    out = {}
    for nodes in (1, 2, 8, 32):
        n = nodes * gpus_per_node
        intra = 2 * (gpus_per_node - 1) / gpus_per_node * bytes_per_iteration / (nvlink_gbs * 1e9)
        inter = 0.0 if nodes == 1 else 2 * (nodes - 1) / nodes * bytes_per_iteration / (ib_gbits / 8 * 1e9)
        comm = intra + inter + calls * latency_s * (1 if nodes == 1 else 2)
        out[n] = {"nodes": nodes, "comm_s": comm, "efficiency": compute_s / (compute_s + comm)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="toy/pendulum")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--unroll-length", type=int, default=32)
    parser.add_argument("--num-minibatches", type=int, default=8)
    parser.add_argument("--num-epochs", type=int, default=4)
    parser.add_argument("--layers", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--chunk", type=int, default=10, help="iterations per device call")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per layout")
    parser.add_argument("--expected", action="store_true", help="also print the expected 8-GPU/node efficiency")
    parser.add_argument("--xla-flags", default="", help="extra XLA_FLAGS for both layouts (write --xla-flags=...)")
    parser.add_argument("--count-only", action="store_true",
                        help="only count the collectives (one process, two devices; no timing)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"PPO on {args.env}: {args.num_envs} envs x {args.unroll_length} steps, {args.num_epochs} epochs x "
          f"{args.num_minibatches} minibatches, layers {args.layers}; {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{os.cpu_count()} CPUs")
    one = _measure(args, 1)
    if args.count_only:
        _print_counts(one)
        _print_expected(one, compute_s=None)
        return
    two = _measure(args, 2)
    for r in (one, two):
        print(f"  {r['processes']} process(es) x {r['devices'] // r['processes']} device(s): "
              f"{r['s_per_iteration'] * 1e3:7.1f} ms/iteration, {r['sps']:9.0f} env steps/s "
              f"(compile {r['compile_s']:.1f} s; calls {', '.join(f'{t * 1e3:.1f}' for t in r['times'])} ms/it)")
    print(f"  two processes / one process throughput: {two['sps'] / one['sps']:.3f} median, "
          f"{min(one['times']) / min(two['times']):.3f} best call (target >= 0.90)")
    print(f"  back-to-back all-reduces of the gradient's size: {one['collective_s'] * 1e6:.0f} us each in one "
          f"process, {two['collective_s'] * 1e6:.0f} us across two (gloo over TCP; erratic on a loaded CPU); "
          f"two processes took {(two['s_per_iteration'] - one['s_per_iteration']) * 1e3:.1f} ms/iteration longer "
          f"for {one['collective_operands']} all-reduces")
    _print_counts(one)
    if args.expected:
        _print_expected(one, compute_s=one["s_per_iteration"])


def _print_counts(r: dict) -> None:
    print(f"  per iteration and device: {r['collective_calls']} collectives of {r['collective_operands']} "
          f"arrays, {r['collective_bytes'] / 1e3:.1f} kB (parameters {r['param_bytes'] / 1e3:.1f} kB in "
          f"{r['param_leaves']} arrays x {r['updates_per_iteration']} updates = "
          f"{r['param_bytes'] * r['updates_per_iteration'] / 1e3:.1f} kB of gradients; the rest: losses, advantage "
          "statistics, normaliser, episode metrics)")
    print(f"  by primitive: {json.dumps(r['by_primitive'])}")


def _print_expected(r: dict, compute_s: float | None) -> None:
    """Expected weak-scaling efficiency at 8 GPUs per node for a few per-iteration compute times."""
    computes = ([compute_s] if compute_s else []) + [0.005, 0.02, 0.1]
    for n, e in expected_efficiency(r["collective_bytes"], 1.0, calls=r["collective_operands"]).items():
        effs = ", ".join(f"{c * 1e3:.0f} ms: {c / (c + e['comm_s']):.3f}" for c in computes)
        print(f"  expected on {n:3d} GPUs ({e['nodes']:2d} node(s)): all-reduce {e['comm_s'] * 1e6:6.0f} us/iteration "
              f"(NVLink 900 GB/s, IB 400 Gb/s per node, 10 us per call); efficiency for compute/iteration {effs}")


if __name__ == "__main__":
    main()
