"""A 2-D VALID convolution whose gradient stays fast inside loops on XLA:CPU.

XLA's CPU backend runs a convolution's *gradient* 10-16x slower when it sits inside a loop
body (``lax.scan``, ``fori_loop``) than outside one (jax-ml/jax#12868, still open): measured
here, 8 DrQ-encoder gradients on 40 images of 32x32 take 4.3 s in a ``scan`` and 0.27 s
unrolled. Every learner in vasa takes its gradient steps inside a ``scan`` (PPO's epochs and
minibatches, SAC's updates, DAgger's student steps), so on a CPU pixel learning was bound by
this. :func:`conv2d` keeps XLA's convolution for the forward pass and, on the CPU only,
computes the backward pass without XLA's gradient convolutions: for a strided layer from the
same convolution written as shifted strided slices and a matrix product (``k*k`` slices
concatenated into patches ``[N, H', W', k*k*C]`` times the kernel ``[k*k*C, F]``), whose
gradient is slices, pads and matrix products, as fast in a loop as outside; for a stride-1
layer as two *forward* convolutions (:func:`input_gradient`, :func:`kernel_gradient`), which
XLA runs as fast in a loop as outside too, and 1.2-1.6x faster than the slices on DrQ's
encoder (``benchmarks/conv_gradient.py``). On GPUs and TPUs it is XLA's convolution both ways.

:class:`Conv2D` is a drop-in for ``flax.linen.Conv`` with VALID padding: the same parameters
(``kernel [k, k, C, F]``, ``bias [F]``), so checkpoints are interchangeable.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

_DIMS = ("NHWC", "HWIO", "NHWC")


def conv_by_slices(x: jax.Array, kernel: jax.Array, stride: int) -> jax.Array:
    """VALID convolution ``x [N, H, W, C]`` * ``kernel [k, k, C, F]`` with ``stride``, as
    ``k*k`` strided slices and one matrix product: ``[N, H', W', F]``, ``H' = (H - k) //
    stride + 1``. Equal to ``lax.conv_general_dilated`` up to float rounding."""
    k, _, c, f = kernel.shape
    n, h, w, _ = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    span_h, span_w = stride * (ho - 1) + 1, stride * (wo - 1) + 1
    cols = [x[:, i:i + span_h:stride, j:j + span_w:stride, :] for i in range(k) for j in range(k)]
    patches = jnp.concatenate(cols, axis=-1)  # [N, H', W', k*k*C], ordered (i, j, c) like the kernel
    return patches @ kernel.reshape(k * k * c, f)


def _xla_conv(x, kernel, stride):
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "VALID", dimension_numbers=_DIMS)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_cpu(x, kernel, stride):
    return _xla_conv(x, kernel, stride)


def _conv_cpu_fwd(x, kernel, stride):
    return _xla_conv(x, kernel, stride), (x, kernel)


def input_gradient(g: jax.Array, kernel: jax.Array) -> jax.Array:
    """The gradient of a stride-1 VALID convolution with respect to its input, ``g [N, H', W',
    F]`` -> ``[N, H' + k - 1, W' + k - 1, C]``, as a forward convolution: ``g`` padded by
    ``k - 1`` on each side, correlated with the kernel flipped in space and transposed
    (``[k, k, F, C]``)."""
    k = kernel.shape[0]
    padded = jnp.pad(g, ((0, 0), (k - 1, k - 1), (k - 1, k - 1), (0, 0)))
    return _xla_conv(padded, jnp.flip(kernel, (0, 1)).swapaxes(2, 3), 1)


def kernel_gradient(x: jax.Array, g: jax.Array, k: int) -> jax.Array:
    """The gradient of a stride-1 VALID convolution with respect to its ``[k, k, C, F]``
    kernel, ``x [N, H, W, C]``, ``g [N, H', W', F]``, as a forward convolution in which the
    channels play the batch and the images the input features: ``x`` as ``[C, H, W, N]``
    correlated with ``g`` as an ``[H', W', N, F]`` kernel gives ``[C, k, k, F]``."""
    out = _xla_conv(jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3)), 1)
    return jnp.transpose(out[:, :k, :k, :], (1, 2, 0, 3))


def _conv_cpu_bwd(stride, residuals, g):
    x, kernel = residuals
    if stride == 1:  # both gradients as forward convolutions (1.2-1.6x faster in a scan than the slices)
        return input_gradient(g, kernel), kernel_gradient(x, g, kernel.shape[0])
    _, vjp = jax.vjp(lambda a, b: conv_by_slices(a, b, stride), x, kernel)
    return vjp(g)


_conv_cpu.defvjp(_conv_cpu_fwd, _conv_cpu_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, backend: str | None = None) -> jax.Array:
    """VALID 2-D convolution, NHWC: ``x [N, H, W, C] float``, ``kernel [k, k, C, F]`` ->
    ``[N, H', W', F]``. On the CPU (``backend``, default ``jax.default_backend()``) the
    gradient is computed by :func:`conv_by_slices` (see the module docstring); elsewhere by
    XLA. The forward values are XLA's convolution everywhere."""
    if (backend or jax.default_backend()) == "cpu":
        return _conv_cpu(x, kernel, int(stride))
    return _xla_conv(x, kernel, int(stride))


class Conv2D(nn.Module):
    """``flax.linen.Conv(features, (k, k), strides=(s, s), padding="VALID")`` with
    :func:`conv2d`: inputs ``[..., H, W, C]`` (any leading dimensions), outputs
    ``[..., H', W', features]``; parameters ``kernel [k, k, C, features]`` and ``bias
    [features]`` as Flax's."""

    features: int
    kernel_size: int
    stride: int = 1
    kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
    bias_init: nn.initializers.Initializer = nn.initializers.zeros

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        k, c = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (k, k, c, self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
        lead = x.shape[:-3]
        y = conv2d(x.reshape((-1,) + x.shape[-3:]), kernel, self.stride)
        return (y + bias).reshape(lead + y.shape[1:])


__all__ = ["Conv2D", "conv2d", "conv_by_slices", "input_gradient", "kernel_gradient"]
