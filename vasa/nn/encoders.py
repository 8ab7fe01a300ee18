"""Pixel encoders, the feature projection and twin Q critics for off-policy visual RL.

``ConvEncoder`` maps uint8 images to flat features: ``kind="drq"`` is the DrQ / RAD / SAC-AE
encoder (4 x [32 filters, 3x3], first stride 2, VALID, ReLU; 84x84 -> 35*35*32 = 39200) and
``kind="nature"`` the Nature-DQN-style encoder SURREAL uses (16 filters 8x8 stride 4, 32 filters
4x4 stride 2, VALID, ReLU; 84x84 -> 9*9*32 = 2592). ``kind="drq_small"`` is DrQ's encoder for
small images (24-48 px): the second layer strided too and the fourth dropped (3 x [32 filters,
3x3], strides 2, 2, 1; 32x32 -> 5*5*32 = 800), a quarter of DrQ's FLOPs at 32x32. Conv kernels
are orthogonal with gain sqrt(2) and biases zero, as in DrQ. ``Projection`` (Dense -> LayerNorm -> tanh) compresses the
conv features to a small latent, and ``DoubleQ`` holds ``num_critics`` independent Q MLPs over
``concat(features, action)``.

Features are flattened in (height, width, channel) order. The convolutions are
:class:`vasa.nn.conv.Conv2D` (Flax's parameters; a gradient that stays fast inside
``lax.scan`` on the CPU).
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vasa.nn.conv import Conv2D
from vasa.nn.mlp import ACTIVATIONS, MLP

# kind -> ((filters, kernel size, stride), ...), all VALID padding, ReLU after each layer
CONV_SPECS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "drq": ((32, 3, 2), (32, 3, 1), (32, 3, 1), (32, 3, 1)),
    "nature": ((16, 8, 4), (32, 4, 2)),
    "drq_small": ((32, 3, 2), (32, 3, 2), (32, 3, 1)),
}


def _conv_spec(kind: str) -> tuple[tuple[int, int, int], ...]:
    if kind not in CONV_SPECS:
        raise ValueError(f"ConvEncoder.kind={kind!r} is not one of {sorted(CONV_SPECS)}")
    return CONV_SPECS[kind]


def _valid_out(n: int, kernel: int, stride: int) -> int:
    """Output length of a VALID convolution along one axis (<= 0 when the input is too short)."""
    return (n - kernel) // stride + 1 if n >= kernel else 0


def _spatial_out(kind: str, n: int) -> int:
    for _, k, s in _conv_spec(kind):
        n = _valid_out(n, k, s)
        if n < 1:
            return 0
    return n


def _min_size(kind: str) -> int:
    """Smallest side length for which every layer of ``kind`` has a non-empty output."""
    n = 1
    for _, k, s in reversed(_conv_spec(kind)):
        n = (n - 1) * s + k
    return n


def conv_output_size(kind: str, height: int, width: int) -> int:
    """Flattened feature size ``F`` of ``ConvEncoder(kind)`` on ``[height, width, C]`` images.

    Raises:
      ValueError: unknown ``kind``, or an image too small for the encoder's receptive field.
    """
    spec = _conv_spec(kind)
    h, w = _spatial_out(kind, int(height)), _spatial_out(kind, int(width))
    if h < 1 or w < 1:
        m = _min_size(kind)
        raise ValueError(
            f"image size {height}x{width} is too small for ConvEncoder kind={kind!r} "
            f"(needs at least {m}x{m})"
        )
    return h * w * spec[-1][0]


class ConvEncoder(nn.Module):
    """Pixels ``[..., H, W, C]`` -> flat features ``[..., F] float32``, ``F = conv_output_size``.

    ``pixels`` is uint8 in [0, 255] (divided by 255 in float32) or a float array already in
    [0, 1]. Any number of leading batch dimensions (including none) is accepted.
    """

    kind: str = "drq"
    flatten: bool = True
    """False: return the last feature map ``[..., h, w, filters]`` (e.g. for :class:`SpatialSoftmax`)"""

    @nn.compact
    def __call__(self, pixels: jax.Array) -> jax.Array:
        spec = _conv_spec(self.kind)
        if pixels.ndim < 3:
            raise ValueError(f"ConvEncoder expects pixels [..., H, W, C], got shape {pixels.shape}")
        *lead, h, w, c = pixels.shape
        size = conv_output_size(self.kind, h, w)
        if pixels.dtype == jnp.uint8:
            x = pixels.astype(jnp.float32) / 255.0
        else:
            x = pixels.astype(jnp.float32)
        x = x.reshape(-1, h, w, c)
        for i, (filters, k, s) in enumerate(spec):
            x = Conv2D(filters, k, s, kernel_init=nn.initializers.orthogonal(math.sqrt(2.0)),
                       bias_init=nn.initializers.zeros, name=f"conv{i}")(x)
            x = nn.relu(x)
        if not self.flatten:
            return x.reshape(*lead, *x.shape[1:])
        return x.reshape(*lead, size)


class SpatialSoftmax(nn.Module):
    """Feature map ``[..., h, w, C]`` -> keypoints ``[..., 2C] float32`` in [-1, 1] (Levine et al. 2016,
    "End-to-end training of deep visuomotor policies"): per channel, the expected image position
    ``sum_ij softmax(f / T)_ij * (x_j, y_i)`` with ``x``, ``y`` spanning [-1, 1] over the map, and a
    learned temperature ``T`` (initially 1). Output order: all channels' ``x``, then all ``y``."""

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        *lead, h, w, c = features.shape
        log_t = self.param("log_temperature", nn.initializers.zeros, ())
        logits = features.astype(jnp.float32).reshape(*lead, h * w, c) * jnp.exp(-log_t)
        prob = jax.nn.softmax(logits, axis=-2)  # over positions, per channel
        ys, xs = jnp.meshgrid(jnp.linspace(-1.0, 1.0, h), jnp.linspace(-1.0, 1.0, w), indexing="ij")
        ex = jnp.einsum("...pc,p->...c", prob, xs.reshape(-1))
        ey = jnp.einsum("...pc,p->...c", prob, ys.reshape(-1))
        return jnp.concatenate([ex, ey], axis=-1)


class Projection(nn.Module):
    """Features ``[..., F]`` -> ``[..., feature_dim] float32`` in (-1, 1): Dense -> LayerNorm -> tanh.

    The Dense kernel is orthogonal (gain 1) with zero bias, as in DrQ.
    """

    feature_dim: int = 50

    @nn.compact
    def __call__(self, features: jax.Array) -> jax.Array:
        x = nn.Dense(
            self.feature_dim,
            kernel_init=nn.initializers.orthogonal(),
            bias_init=nn.initializers.zeros,
        )(features.astype(jnp.float32))
        return jnp.tanh(nn.LayerNorm()(x))


class DoubleQ(nn.Module):
    """``num_critics`` independent Q MLPs: (features ``[..., D]``, action ``[..., A]``) ->
    ``[num_critics, ...] float32``.

    The critics are one ``MLP(layers, 1, activation, layer_norm)`` vmapped over a parameter
    axis, so every parameter has a leading ``[num_critics]`` axis (under ``"critics"``); each
    critic sees ``concat(features, action)``. ``features`` and ``action`` must share their
    leading dimensions.
    """

    layers: Sequence[int] = (1024, 1024)
    activation: str = "relu"
    layer_norm: bool = False
    num_critics: int = 2

    @nn.compact
    def __call__(self, features: jax.Array, action: jax.Array) -> jax.Array:
        if self.num_critics < 1:
            raise ValueError(f"DoubleQ.num_critics={self.num_critics} must be >= 1")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"DoubleQ.activation={self.activation!r} is not one of {sorted(ACTIVATIONS)}")
        x = jnp.concatenate([features.astype(jnp.float32), action.astype(jnp.float32)], axis=-1)
        critics = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        q = critics(tuple(self.layers), 1, self.activation, self.layer_norm, name="critics")(x)
        return q[..., 0]
