"""RubiksShift-AQ (dissertation section 6.3.3, equations 6.7-6.8): the attention-quantized
temporal shift, its temperature schedule and its shift budget.

Each channel attends over the integer temporal shifts ``aq_shift_values(K)`` with a softmax
of its std-normalised weights at an annealed temperature; at the end of training the argmax
gives integer shifts (``aq_hard_attention``). ``budget_loss`` keeps the attention mass on
non-zero shifts near a target fraction. Same sign convention and layout as
:mod:`vasa.video.shift` (``[N, T, C, H, W]``; a shift ``s`` reads from ``t + s``).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

from vasa.video.shift import _check_common, _check_kernel_size, _dispatch, _per_channel, _roll_zero, resolve_impl


def aq_shift_values(kernel_size: int) -> tuple[int, ...]:
    """Integer temporal shifts ``(-(k//2), ..., k//2)`` that the ``k`` attention rows stand for."""
    return tuple(range(-(kernel_size // 2), kernel_size // 2 + 1))


AQ_INITS = {"released": (0.0, 1.0), "dissertation": (1.0, 1.05)}
"""Ranges of the AQ attention weights' uniform initialisation: the released code's
``torch.rand`` and the dissertation's section 6.4.1."""


def aq_init(key: jax.Array, channels: int, kernel_size: int = 3, scheme: str = "released") -> jax.Array:
    """Attention weights ``[kernel_size, channels] float32`` over the shifts
    ``aq_shift_values(kernel_size)``: U[0, 1) as the released code (``torch.rand(C, K)``,
    ``scheme="released"``), or U[1, 1.05] as the dissertation's section 6.4.1
    (``scheme="dissertation"``).

    The per-channel std normalisation of :func:`aq_attention` removes any offset and scale of
    the weights, so both give the same initial attention (in distribution), but the gradient
    with respect to the raw weights scales as ``1 / std``: U[1, 1.05] (std 0.014 against 0.29)
    starts with 20x larger raw-weight gradients, and under SGD the normalised logits move
    ``(0.29 / 0.014)^2`` ~ 400x faster at the same learning rate. In vasa's AQ benchmark
    (BENCHMARKS.md) only the dissertation's range lets the budget loss reach its target before
    the annealed temperature freezes the attention."""
    _check_kernel_size(kernel_size, "aq_init")
    if kernel_size < 3:
        raise ValueError(f"aq_init: kernel_size={kernel_size!r} must be an odd int >= 3")
    if scheme not in AQ_INITS:
        raise ValueError(f"aq_init: scheme={scheme!r} is not one of {list(AQ_INITS)}")
    low, high = AQ_INITS[scheme]
    return jax.random.uniform(key, (kernel_size, channels), jnp.float32, low, high)


def aq_attention(weights: jax.Array, temperature, eps: float = 1e-6) -> jax.Array:
    """Equation 6.7: ``softmax_K(weights / (std_K(weights) + eps) / temperature)`` -> ``[K, C]``.

    Args:
      weights: ``[K, C]`` float attention weights (K odd >= 3).
      temperature: scalar > 0 (float or traced), annealed from 2 to 1e-3 during training.

    The standard deviation is taken per channel over the K shift positions (sample std,
    ``ddof=1``), as the released code does (``torch.std(weight, dim=1)`` on its ``[C, K]``
    weights). The equation writes ``std(W_attn)``, which could also mean the whole tensor; the
    per-channel choice makes each channel's logits scale-free, so every channel sharpens at the
    same rate as the temperature falls, whatever the spread of its weights. The temperature
    *divides* the logits (the equation writes ``tau_a * W``, but the text says high tau_a gives
    near-uniform attention, which is division, and the released code divides).
    """
    weights = jnp.asarray(weights)
    if weights.ndim != 2 or weights.shape[0] < 2:
        raise ValueError(f"aq_attention: weights must be [K, C] with K >= 2, got shape {tuple(weights.shape)}")
    logits = weights / (jnp.std(weights, axis=0, ddof=1, keepdims=True) + eps)
    return jax.nn.softmax(logits / temperature, axis=0)


def aq_hard_attention(weights: jax.Array) -> jax.Array:
    """The attention's zero-temperature limit: one-hot ``[K, C]`` at the argmax over K of
    ``weights`` (the same argmax at every temperature, since the per-channel std normalisation
    and the temperature are positive rescalings; ties go to the first). With it
    :func:`aq_temporal_shift` is an integer temporal shift per channel (pure indexing)."""
    weights = jnp.asarray(weights)
    if weights.ndim != 2:
        raise ValueError(f"aq_hard_attention: weights must be [K, C], got shape {tuple(weights.shape)}")
    return jax.nn.one_hot(jnp.argmax(weights, axis=0), weights.shape[0], dtype=weights.dtype).T


def aq_temporal_shift(x: jax.Array, attention: jax.Array) -> jax.Array:
    """``out[:, t, c] = sum_k attention[k, c] * x[:, t + shift_k, c]`` (zero outside) -> ``[N, T, C, H, W]``.

    ``x``: ``[N, T, C, H, W]`` float; ``attention``: ``[K, C]`` with ``shift_k = k - K//2``.
    """
    x, attention = jnp.asarray(x), jnp.asarray(attention)
    if x.ndim != 5:
        raise ValueError(f"aq_temporal_shift: x must be [N, T, C, H, W], got shape {tuple(x.shape)}")
    if attention.ndim != 2 or attention.shape[1] != x.shape[2] or attention.shape[0] % 2 == 0:
        raise ValueError(
            f"aq_temporal_shift: attention must be [K, C] with K odd and C = {x.shape[2]}, "
            f"got shape {tuple(attention.shape)}"
        )
    return _aq_temporal_shift(x, attention)


@jax.jit
def _aq_temporal_shift(x: jax.Array, attention: jax.Array) -> jax.Array:
    out = jnp.zeros_like(x)
    for k, d in enumerate(aq_shift_values(attention.shape[0])):
        out = out + _per_channel(attention[k], x.ndim, x.dtype) * _roll_zero(x, d, axis=1)
    return out


def rubiks_shift_aq(
    x: jax.Array,
    spatial_shift: jax.Array,
    weights: jax.Array,
    temperature,
    *,
    stride: int = 1,
    padding: int = 0,
    impl: str = "auto",
    integer_shift_grad: str = "central",
) -> jax.Array:
    """RubiksShift-AQ as one op: attention-quantized temporal shift, then interpolated spatial
    shift of the same channels (RubiksNet's AQ blocks apply the two at different places: the
    temporal part on the block input, the spatial one at the shift, see
    :class:`vasa.video.rubiksnet.RubiksBlock`).

    Args:
      x: ``[N, T, C, H, W]`` float.
      spatial_shift: ``[2, C]`` float (vertical, horizontal), interpolated as in ``rubiks_shift_3d``.
      weights: ``[K, C]`` attention weights (``aq_init``); temperature: scalar softmax temperature.
      stride, padding, impl, integer_shift_grad: spatial, as in ``rubiks_shift_3d`` (``impl``
        picks the spatial shift's implementation; the temporal mix is XLA).

    Returns:
      ``[N, T, C, H_out, W_out]``. At low temperature this approaches
      ``rubiks_shift_3d(x, aq_to_hard_shift(weights, spatial_shift))``.
    """
    x = jnp.asarray(x)
    if x.ndim != 5:
        raise ValueError(f"rubiks_shift_aq: x must be [N, T, C, H, W], got shape {tuple(x.shape)}")
    spatial_shift = jnp.asarray(spatial_shift)
    impl = resolve_impl(impl, "rubiks_shift_aq")
    _check_common(x, spatial_shift, 2, stride, padding, "[N, T, C, H, W]", "rubiks_shift_aq", integer_shift_grad)
    y = aq_temporal_shift(x, aq_attention(weights, temperature))
    return _dispatch(y, spatial_shift, stride, padding, False, impl, integer_shift_grad)


def anneal_temperature(step, total_steps, start: float = 2.0, end: float = 1e-3) -> jax.Array:
    """Exponential schedule ``start * (end / start) ** (step / total_steps)``, step clipped to
    ``[0, total_steps]``; ``step`` may be traced. Returns a float32 scalar."""
    if isinstance(total_steps, (int, float)) and total_steps <= 0:
        raise ValueError(f"anneal_temperature: total_steps={total_steps!r} must be > 0")
    if start <= 0 or end <= 0:
        raise ValueError(f"anneal_temperature: start={start!r} and end={end!r} must be > 0")
    frac = jnp.clip(jnp.asarray(step, jnp.float32) / total_steps, 0.0, 1.0)
    return start * (end / start) ** frac


def aq_to_hard_shift(weights: jax.Array, spatial_shift: jax.Array) -> jax.Array:
    """``[3, C]`` shift for inference with ``rubiks_shift_3d``: temporal row = the integer shift
    at the attention's argmax over K (the same at every temperature, since the per-channel std
    normalisation and the temperature are positive rescalings), then ``spatial_shift [2, C]``."""
    weights, spatial_shift = jnp.asarray(weights), jnp.asarray(spatial_shift)
    if weights.ndim != 2 or spatial_shift.shape != (2, weights.shape[1]):
        raise ValueError(
            f"aq_to_hard_shift: need weights [K, C] and spatial_shift [2, C], got "
            f"{tuple(weights.shape)} and {tuple(spatial_shift.shape)}"
        )
    temporal = jnp.argmax(weights, axis=0) - weights.shape[0] // 2
    return jnp.concatenate([temporal[None].astype(spatial_shift.dtype), spatial_shift], axis=0)


def nonzero_fraction(attentions: Sequence[jax.Array]) -> jax.Array:
    """Mean over layers of the attention mass on non-zero shifts, averaged over channels:
    ``1/N_L sum_l 1/C_l sum_{c, k != K//2} A_l[k, c]`` (inside equation 6.8)."""
    if len(attentions) == 0:
        raise ValueError("nonzero_fraction: attentions is empty; pass one [K, C] array per layer")
    fracs = []
    for a in attentions:
        k = a.shape[0]
        fracs.append(jnp.mean(jnp.sum(a, axis=0) - a[k // 2]))
    return jnp.mean(jnp.stack(fracs))


def budget_loss(attentions: Sequence[jax.Array], budget) -> jax.Array:
    """Shift budget constraint, equation 6.8: ``| nonzero_fraction(attentions) - budget |``.

    ``attentions``: one ``[K, C]`` attention (``aq_attention``) per layer; ``budget`` in [0, 1].
    """
    return jnp.abs(nonzero_fraction(attentions) - budget)


__all__ = ["AQ_INITS", "anneal_temperature", "aq_attention", "aq_hard_attention", "aq_init", "aq_shift_values", "aq_temporal_shift", "aq_to_hard_shift", "budget_loss", "nonzero_fraction", "rubiks_shift_aq"]
