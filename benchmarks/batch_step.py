"""``vasa.envs.batch_step`` against ``jax.vmap(env.step)``: one batched environment step.

Under ``jax.vmap`` the auto-reset's per-environment branch becomes a select, so every batched
step also draws (and, in a pixel environment, renders) a fresh initial state for every
environment, whether or not its episode ended; ``batch_step`` puts the batch's resets under one
``lax.cond`` on ``any(done)``. Both are timed on the same batch of states (``reset`` with
distinct keys, then a few random steps, so no episode ends in the timed step), jitted, the
first call not counted, then the median of ``--repeats`` calls each ended by
``block_until_ready``. Ratios are vmap / batch_step (> 1: batch_step is faster). The same
states come out of both, up to float rounding (``tests/test_batch_step.py``). ``batch_step`` is
timed with ``lazy_reset=True`` on any device (its default uses the ``cond`` on the CPU only:
on an accelerator the ``cond``'s predicate is read on the host, which this script measures).

    python benchmarks/batch_step.py                       # the default cases, ~2 min on 2 cores
    python benchmarks/batch_step.py --cases dmc/walker_stand:48:16 brax/ant:0:256
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import median_ms, vasa_revision  # noqa: E402

DEFAULT_CASES = ("dmc/walker_stand:0:16", "dmc/walker_stand:32:16", "dmc/walker_stand:48:16",
                 "dmc/walker_stand:84:16", "brax/ant:0:256")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES),
                   help="ENV:IMAGE_SIZE:NUM_ENVS each (image size 0: state observations); action repeat 4 for dmc/*")
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()

    import jax
    import jax.numpy as jnp

    import vasa.envs as E

    print(f"vasa {vasa_revision()}, jax {jax.__version__}, {jax.devices()[0].device_kind}")
    print(f"{'env':>18s} {'pixels':>6s} {'envs':>5s} {'vmap ms':>8s} {'batch_step ms':>13s} {'ratio':>6s}")
    for case in args.cases:
        env_id, size, n = case.split(":")
        size, n = int(size), int(n)
        kwargs = {"pixels": True, "image_size": size} if size else {}
        if env_id.startswith("dmc/"):
            kwargs["action_repeat"] = 4
        env = E.make(env_id, **kwargs)
        key = jax.random.PRNGKey(0)
        state = jax.jit(jax.vmap(env.reset))(jax.random.split(key, n))
        shape = (n,) + tuple(env.action_spec.shape)
        step_vmap = jax.jit(jax.vmap(env.step))
        step_batch = jax.jit(lambda s, a, env=env: E.batch_step(env, s, a, lazy_reset=True))
        for _ in range(3):
            key, sub = jax.random.split(key)
            state = step_vmap(state, jax.random.uniform(sub, shape, minval=-1.0, maxval=1.0))
        action = jnp.zeros(shape)
        a = median_ms(step_vmap, state, action, repeats=args.repeats)
        b = median_ms(step_batch, state, action, repeats=args.repeats)
        print(f"{env_id:>18s} {size or '-':>6} {n:>5d} {a:8.2f} {b:13.2f} {a / b:6.2f}", flush=True)


if __name__ == "__main__":
    main()
