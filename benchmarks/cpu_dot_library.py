"""XLA:CPU's matrix products and convolutions through YNNPACK against its default (Eigen).

``import vasa`` asks XLA:CPU to hand its dot and convolution fusions to YNNPACK
(``--xla_cpu_experimental_ynn_fusion_type=dot``, :mod:`vasa.xla_flags`); this measures what that
buys and what it costs, in two child processes that differ only in that flag (XLA flags are fixed
when a process starts its backend, so the two sides cannot share one process). Each case is jitted,
run once, then timed as the median of ``--repeats`` calls:

* ``drq48`` / ``drq84``: the DrQ encoder's convolution stack (:func:`vasa.nn.conv.conv2d`, ReLU, a
  sum of squares), three gradient steps in a ``lax.scan`` (as every vasa learner takes them), on
  64 images of 48x48x9 / 128 of 84x84x9; ms per gradient step;
* ``mlp``: a PPO-sized MLP (64 -> 256 -> 256 -> 16, tanh) on 4,096 rows, three gradient steps in
  a scan; ms per step;
* ``walker`` / ``lift``: ``batch_step`` of ``dmc/walker_stand`` (256 environments, 10 steps in a
  scan) and ``robo/lift`` (OSC, 256 environments, 5 steps); ms per step;
* ``dagger48``: one SECANT/DAgger iteration of the walker benchmark's student (48x48, frame stack
  3, 16 environments rendered, batch 64, Combo1 + colour map, drq encoder, priority 0.6) with an
  untrained state-SAC expert (its weights do not change the cost); ms per iteration.

Each child also writes the drq48 gradient and the walker state after its steps; the parent
prints their largest differences between the two sides (float rounding, not a different result).

    python benchmarks/cpu_dot_library.py                 # ~6 min on 2 cores
    python benchmarks/cpu_dot_library.py --cases drq48 mlp
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CASES = ("drq48", "drq84", "mlp", "walker", "lift", "dagger48")
YNN = "--xla_cpu_experimental_ynn_fusion_type=dot"
OFF = "--xla_cpu_experimental_ynn_fusion_type=-dot"  # XLA's own kernels (bitwise equal to no flag); vasa adds nothing


def _conv_case(batch: int, size: int):
    import jax
    import jax.numpy as jnp

    from vasa.nn.conv import conv2d

    key = jax.random.PRNGKey(0)
    specs = ((9, 2),) + ((32, 1),) * 3
    kernels = [0.1 * jax.random.normal(jax.random.fold_in(key, i), (3, 3, c, 32)) for i, (c, _) in enumerate(specs)]
    images = jax.random.uniform(key, (batch, size, size, 9))

    def loss(ws, x):
        for w, (_, s) in zip(ws, specs):
            x = jax.nn.relu(conv2d(x, w, s))
        return jnp.sum(x ** 2)

    grad = jax.grad(loss)

    @jax.jit
    def steps(ws, x):
        def body(x, _):
            g = grad(ws, x)
            return x + 1e-6 * g[0].sum(), g

        return jax.lax.scan(body, x, None, length=3)[1]

    return steps, (kernels, images), 3


def _mlp_case():
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    sizes = (64, 256, 256, 16)
    ws = [jax.random.normal(jax.random.fold_in(key, i), (a, b)) / a ** 0.5 for i, (a, b) in enumerate(zip(sizes, sizes[1:]))]
    x = jax.random.normal(key, (4096, 64))

    def loss(ws, x):
        for w in ws[:-1]:
            x = jnp.tanh(x @ w)
        return jnp.mean((x @ ws[-1]) ** 2)

    @jax.jit
    def steps(ws, x):
        def body(ws, _):
            g = jax.grad(loss)(ws, x)
            return [w - 1e-3 * gw for w, gw in zip(ws, g)], None

        return jax.lax.scan(body, ws, None, length=3)[0]

    return steps, (ws, x), 3


def _env_case(env_id: str, num_envs: int, length: int):
    import jax
    import jax.numpy as jnp

    from vasa.envs import batch_step, make

    env = make(env_id)
    state = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), num_envs))
    action = 0.3 * jnp.ones((num_envs,) + tuple(env.action_spec.shape))

    @jax.jit
    def steps(state):
        return jax.lax.scan(lambda s, _: (batch_step(env, s, action), None), state, None, length=length)[0]

    return steps, (state,), length


def _dagger_case():
    import jax

    from vasa.algos import offpolicy, sac
    from vasa.distill import dagger, experts
    from vasa.distill.augment import StrongAugConfig

    sac_config = sac.SACConfig(env="dmc/walker_stand", action_repeat=4, hidden_layers=(256, 256))
    env = offpolicy.make_env(sac_config)
    params = sac.make_learner(sac_config, env).init(jax.random.PRNGKey(0))
    expert = experts.expert_from_sac(sac_config, params, env)
    config = dagger.DAggerConfig(env="dmc/walker_stand", image_size=48, action_repeat=4, num_envs=16, expert_steps=8,
                                 student_steps=100, dataset_size=2_000, batch_size=64, hidden_layers=(256, 256),
                                 encoder="drq", priority_exponent=0.6,
                                 augment=StrongAugConfig(ops=("cutout_color", "rad_conv", "color_map", "mixup", "crop"),
                                                         crop_pad=2))
    state = dagger.init(config, expert)
    state, _ = dagger.make_seed(config, expert)(state)
    step = dagger.make_train_step(config, expert)
    holder = [state]

    def one():  # the iteration donates its state: carry it along
        holder[0], metrics = step(holder[0])
        return metrics

    return one, (), 1


def child(cases: list[str], repeats: int, dump: str) -> None:
    import numpy as np

    from benchmarks._common import median_ms, vasa_revision

    revision = vasa_revision()  # imports vasa before JAX starts its backend
    import jax

    out = {"revision": revision, "flags": os.environ.get("XLA_FLAGS", ""), "ms": {}}
    arrays = {}
    for name in cases:
        if name == "drq48":
            fn, args, per = _conv_case(64, 48)
            arrays["drq48_grad"] = np.asarray(fn(*args)[0][-1])
        elif name == "drq84":
            fn, args, per = _conv_case(128, 84)
        elif name == "mlp":
            fn, args, per = _mlp_case()
        elif name == "walker":
            fn, args, per = _env_case("dmc/walker_stand", 256, 10)
            arrays["walker_qpos"] = np.asarray(jax.tree.leaves(fn(*args).obs)[0])
        elif name == "lift":
            fn, args, per = _env_case("robo/lift", 256, 5)
        else:
            fn, args, per = _dagger_case()
        out["ms"][name] = median_ms(fn, *args, repeats=repeats) / per
        print(f"  {name}: {out['ms'][name]:.2f} ms", file=sys.stderr, flush=True)
    np.savez(dump, **arrays)
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--child", nargs=2, metavar=("SIDE", "DUMP"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args.cases, args.repeats, args.child[1])

    import numpy as np

    results, dumps = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for side, flag in (("xla", OFF), ("ynn", YNN)):
            dumps[side] = os.path.join(tmp, f"{side}.npz")
            env = {**os.environ, "XLA_FLAGS": f"--xla_cpu_use_fusion_emitters=false {flag}"}
            print(f"{side}: XLA_FLAGS={env['XLA_FLAGS']}", flush=True)
            proc = subprocess.run([sys.executable, __file__, "--child", side, dumps[side], "--cases", *args.cases,
                                   "--repeats", str(args.repeats)], env=env, stdout=subprocess.PIPE, text=True, check=True)
            results[side] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"\nvasa {results['ynn']['revision']}; ms per step (median of {args.repeats}); ratio = XLA's / YNNPACK's\n")
        print("| case | XLA:CPU default (Eigen) | YNNPACK dot fusions | ratio |\n| --- | --- | --- | --- |")
        for name in args.cases:
            a, b = results["xla"]["ms"][name], results["ynn"]["ms"][name]
            print(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
        a, b = np.load(dumps["xla"]), np.load(dumps["ynn"])
        for key in a.files:
            diff, scale = np.abs(a[key] - b[key]).max(), np.abs(a[key]).max()
            print(f"\n{key}: largest |difference| {diff:.3g}, {diff / scale:.2g} of the largest |value| {scale:.3g}")


if __name__ == "__main__":
    main()
