"""The CPU gradient of vasa's pixel encoders: XLA's own, vasa's before session 29 (slices for
every layer), and vasa's now (:func:`vasa.nn.conv.conv2d`: slices for strided layers, two
forward convolutions for stride-1 layers).

Each case is an encoder's convolution stack (ReLU after each layer, a sum of squares on top)
on a batch of random images; the timed program is a ``lax.scan`` of three gradient steps that
carries the images (so nothing is loop-invariant), as every vasa learner takes its steps in a
scan. Jitted, the first call not counted, then the median of ``--repeats`` calls; ms per
gradient step. Ratios are the other / now (> 1: now is faster).

    python benchmarks/conv_gradient.py        # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks._common import vasa_revision  # noqa: E402

# name -> (batch shape, ((in, out, kernel, stride), ...))
DRQ = lambda c: ((c, 32, 3, 2), (32, 32, 3, 1), (32, 32, 3, 1), (32, 32, 3, 1))  # noqa: E731
CASES = {
    "drq 32x32 b64": ((64, 32, 32, 9), DRQ(9)),
    "drq 48x48 b64": ((64, 48, 48, 9), DRQ(9)),
    "drq 84x84 b128": ((128, 84, 84, 9), DRQ(9)),
    "drq_small 48x48 b64": ((64, 48, 48, 9), ((9, 32, 3, 2), (32, 32, 3, 2), (32, 32, 3, 1))),
    "nature 84x84 b256": ((256, 84, 84, 9), ((9, 16, 8, 4), (16, 32, 4, 2))),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()

    import jax
    import jax.numpy as jnp

    from vasa.nn import conv as C

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
    def slices_only(x, kernel, stride):
        return C._xla_conv(x, kernel, stride)

    def fwd(x, kernel, stride):
        return slices_only(x, kernel, stride), (x, kernel)

    def bwd(stride, residuals, g):
        _, vjp = jax.vjp(lambda a, b: C.conv_by_slices(a, b, stride), *residuals)
        return vjp(g)

    slices_only.defvjp(fwd, bwd)
    contenders = {"xla": lambda x, k, s: C._xla_conv(x, k, s), "slices (before)": slices_only,
                  "now": lambda x, k, s: C.conv2d(x, k, s)}

    print(f"vasa {vasa_revision()}, jax {jax.__version__}, {jax.devices()[0].device_kind}; "
          "ms per gradient step in a scan")
    print(f"{'case':>20s} " + " ".join(f"{n:>15s}" for n in contenders) + "   xla/now  before/now")
    key = jax.random.PRNGKey(0)
    for name in args.cases:
        shape, layers = CASES[name]
        x = jax.random.uniform(key, shape)
        kernels = [0.1 * jax.random.normal(jax.random.fold_in(key, i), (k, k, a, b))
                   for i, (a, b, k, _) in enumerate(layers)]
        ms = {}
        for label, conv in contenders.items():
            def loss(ks, h, conv=conv):
                for kernel, (_, _, _, stride) in zip(ks, layers):
                    h = jax.nn.relu(conv(h, kernel, stride))
                return jnp.sum(h ** 2)

            def steps(ks, images, loss=loss):
                def body(h, _):
                    grads = jax.grad(loss)(ks, h)
                    return h + 1e-3 * grads[0].sum(), None
                return jax.lax.scan(body, images, None, length=3)[0]

            f = jax.jit(steps)
            jax.block_until_ready(f(kernels, x))
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                jax.block_until_ready(f(kernels, x))
                times.append((time.perf_counter() - t) / 3)
            ms[label] = 1e3 * statistics.median(times)
        print(f"{name:>20s} " + " ".join(f"{v:15.1f}" for v in ms.values())
              + f"   {ms['xla'] / ms['now']:7.2f}  {ms['slices (before)'] / ms['now']:10.2f}", flush=True)


if __name__ == "__main__":
    main()
