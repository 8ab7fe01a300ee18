"""RubiksShift (learnable spatiotemporal shift, RubiksNet, ECCV 2020) and the shift baselines.

Everything here is a pure JAX function (jit, vmap and grad work); tensors are laid out
``[N, T, C, H, W]`` (2-D ops: ``[N, C, H, W]``) and shifts are ``[3, C]`` rows (temporal,
vertical, horizontal) or ``[2, C]`` rows (vertical, horizontal), one shift per channel.

**Sign convention (all ops in this module).** A shift ``s`` *reads* from ``index + s``:
``out[t] = x[t + s]``, so a positive shift moves content towards smaller indices. Positions
outside the input read zero.

Contents:

* ``rubiks_shift_3d`` / ``rubiks_shift_2d``: the interpolated shift of dissertation equations
  6.5-6.6 (RubiksShift) with an exact custom VJP, strided/padded spatial output, and the
  quantized variant RubiksShift-IQ (section 6.3.2, ``quantize=True``).
* ``rubiks_shift_pointwise``: the shift and a 1x1 convolution, one Pallas kernel with
  ``impl="pallas"``.
* ``temporal_shift``: TSM's fixed temporal shift; ``fixed_spatial_shift`` and
  ``fixed_shift_table``: ShiftNet-style fixed spatial shifts.
* RubiksShift-AQ (equations 6.7-6.8) lives in :mod:`vasa.video.shift_aq`.
* Scaled gradient normalisation (equations 6.9-6.10) as optax transformations:
  ``normalize_shift_gradients`` and ``shift_optimizer``.

Implementations (``impl=``, :func:`resolve_impl`): ``"xla"`` is this module's separable passes
(banded matrix products for inference, per-channel gathers under autodiff); ``"pallas"`` is
:mod:`pallas_kernels.rubiks_shift` (Triton on a GPU, interpret mode elsewhere); ``"auto"``, the
default, is Pallas on a GPU and XLA elsewhere. Both give the same values and gradients.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

IMPLS = ("auto", "xla", "pallas")
NORMALIZE_VARIANTS = ("equation", "released")
INTEGER_SHIFT_GRADS = ("central", "one_sided")


# --------------------------------------------------------------------------------------------
# Interpolated shift: separable 1-D passes
# --------------------------------------------------------------------------------------------
# A pass along one axis (axis, stride, offset, out_len) maps z to
#   out[o] = (1 - a) * z[o * stride + offset + f] + a * z[o * stride + offset + f + 1]
# with f = floor(shift), a = shift - f per channel (zeros outside z). Trilinear interpolation
# with per-channel shifts (eq. 6.6 is a product of three 1-D weights) is the composition of the
# three passes, which reads 2 + 2 + 2 values per output instead of the 8 corners.


def _gather(z: jax.Array, idx: jax.Array, axis: int) -> jax.Array:
    """``z`` (channels on axis 2) gathered along ``axis`` at per-channel ``idx [C, L]``; zero outside."""
    length = z.shape[axis]
    valid = (idx >= 0) & (idx < length)
    safe = jnp.clip(idx, 0, length - 1)
    if axis < 2:
        safe, valid = safe.T, valid.T
    shape = [1] * z.ndim
    shape[2], shape[axis] = idx.shape[0], idx.shape[1]
    out = jnp.take_along_axis(z, safe.reshape(shape), axis=axis, mode="promise_in_bounds")
    return jnp.where(valid.reshape(shape), out, jnp.zeros((), z.dtype))


def _per_channel(v: jax.Array, ndim: int, dtype) -> jax.Array:
    return v.astype(dtype).reshape((1, 1, -1) + (1,) * (ndim - 3))


# Two formulations of a forward pass:
# * a per-channel banded matrix product (``_band``): out = z contracted with M_c [in, out],
#   M_c[i, o] = (1 - a_c) [i == lo] + a_c [i == lo + 1] (stride and padding are in lo). Used by
#   the primal (no autodiff: inference) for axes up to MATMUL_MAX_LEN long: on a CPU it halves
#   the forward time at the paper shape (152 vs 292 ms for (8, 8, 72, 56, 56)).
# * per-channel gathers (``_gather``), two reads per output: for the forward under autodiff and
#   the backward, where the gathers measured faster in total (fwd+bwd 343 ms vs 502 ms with
#   products, whose backward needs the derivative matrices too), and for long axes.
MATMUL_MAX_LEN = 256


def _band(f, a, spec, in_len: int, dtype):
    """``[C, in_len, out_len]`` interpolation matrices of a pass (``a=None``: integer shift)."""
    _, stride, offset, out_len = spec
    lo = ((jnp.arange(out_len) * stride + offset)[None, :] + f[:, None])[:, None, :]
    i = jnp.arange(in_len)[None, :, None]
    e0, e1 = (i == lo).astype(dtype), (i == lo + 1).astype(dtype)
    if a is None:
        return e0
    a = a.astype(dtype)[:, None, None]
    return (1 - a) * e0 + a * e1


def _contract(z, m, axis: int):
    """``z`` (channels on axis 2) contracted along ``axis`` with per-channel ``m [C, in, out]``."""
    letters = "abcde"[: z.ndim]
    spec_in = letters[:axis] + "x" + letters[axis + 1:]
    spec_out = letters[:axis] + "y" + letters[axis + 1:]
    out = jnp.einsum(f"{spec_in},cxy->{spec_out}", z, m, precision=jax.lax.Precision.HIGHEST,
                     preferred_element_type=jnp.promote_types(z.dtype, jnp.float32))
    return out.astype(z.dtype)


def _pass(z, f, a, spec, matmul: bool = False):
    """One forward pass; returns ``(out, upper - lower)`` (``a=None``: integer shift, no diff).
    ``matmul`` (axes up to ``MATMUL_MAX_LEN``): the banded product, without the difference."""
    axis, stride, offset, out_len = spec
    if matmul and max(z.shape[axis], out_len) <= MATMUL_MAX_LEN:
        return _contract(z, _band(f, a, spec, z.shape[axis], z.dtype), axis), None
    lo = (jnp.arange(out_len) * stride + offset)[None, :] + f[:, None]
    g0 = _gather(z, lo, axis)
    if a is None:
        return g0, None
    diff = _gather(z, lo + 1, axis) - g0
    return g0 + _per_channel(a, z.ndim, z.dtype) * diff, diff


def _pass_derivative(z, f, a, spec, integer_shift_grad: str):
    """Derivative of ``_pass`` w.r.t. the shift, per output: ``z[lo + 1] - z[lo]`` (``lo`` the
    floor sample); at an exact integer shift (``a == 0``) with ``"central"`` instead
    ``0.5 * (z[lo + 1] - z[lo - 1])`` (see :func:`rubiks_shift_3d`). Two gathers either way."""
    axis, stride, offset, out_len = spec
    lo = (jnp.arange(out_len) * stride + offset)[None, :] + f[:, None]
    upper = _gather(z, lo + 1, axis)
    if integer_shift_grad == "one_sided":
        return upper - _gather(z, lo, axis)
    at_integer = a == 0
    lower = _gather(z, lo - at_integer.astype(lo.dtype)[:, None], axis)
    scale = _per_channel(jnp.where(at_integer, 0.5, 1.0), z.ndim, z.dtype)
    return scale * (upper - lower)


def _pass_adjoint(ybar, f, a, spec, in_len):
    """Transpose of ``_pass`` in its input: ``zbar[i] = (1-a) ybar[o0] + a ybar[o1]`` where
    ``o0 * stride = i - offset - f`` and ``o1 * stride = i - 1 - offset - f`` (when divisible).

    A gather, not a scatter-add: each input position has at most two output positions reading it.
    """
    axis, stride, offset, _ = spec
    n0 = jnp.arange(in_len)[None, :] - offset - f[:, None]

    def pick(n):
        if stride == 1:
            return _gather(ybar, n, axis)
        return _gather(ybar, jnp.where(n % stride == 0, n // stride, -1), axis)

    g0 = pick(n0)
    if a is None:
        return g0
    return g0 + _per_channel(a, ybar.ndim, ybar.dtype) * (pick(n0 - 1) - g0)


def _out_size(n: int, stride: int, padding: int) -> int:
    return (n + 2 * padding - 1) // stride + 1


def _specs(shape, rows: int, stride: int, padding: int):
    """Pass specs for a ``[3, C]`` (t, h, w) or ``[2, C]`` (h, w) shift on ``[N, T, C, H, W]``."""
    _, t, _, h, w = shape
    spatial = [(3, stride, -padding, _out_size(h, stride, padding)),
               (4, stride, -padding, _out_size(w, stride, padding))]
    return ([(1, 1, 0, t)] if rows == 3 else []) + spatial


def _compute_dtype(shift: jax.Array):
    return jnp.promote_types(shift.dtype, jnp.float32)


def _split(shift: jax.Array):
    s = shift.astype(_compute_dtype(shift))
    f = jnp.floor(s)
    return f.astype(jnp.int32), s - f


def _quantized(shift: jax.Array) -> jax.Array:
    # round half up, as the released CUDA kernel (remainder < 0.5 -> floor, else ceil)
    return jnp.floor(shift.astype(_compute_dtype(shift)) + 0.5).astype(jnp.int32)


def _forward(x, shift, stride, padding, quantize, matmul: bool = False):
    specs = _specs(x.shape, shift.shape[0], stride, padding)
    if quantize:
        f, a = _quantized(shift), [None] * len(specs)
    else:
        f, a = _split(shift)
    z = x
    for k, spec in enumerate(specs):
        z, _ = _pass(z, f[k], a[k], spec, matmul)
    return z


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4, 5))
def _rubiks_shift(x, shift, stride, padding, quantize, integer_shift_grad):
    # the primal runs only without autodiff (inference): banded products
    return _forward(x, shift, stride, padding, quantize, matmul=True)


def _rubiks_shift_fwd(x, shift, stride, padding, quantize, integer_shift_grad):
    return _forward(x, shift, stride, padding, quantize), (x, shift)


def _rubiks_shift_bwd(stride, padding, quantize, integer_shift_grad, res, ybar):
    x, shift = res
    specs = _specs(x.shape, shift.shape[0], stride, padding)
    f, a = _split(shift)
    # inputs of each pass at the continuous shift (the shift gradient is always taken there)
    zs = [x]
    for k in range(len(specs) - 1):
        zs.append(_pass(zs[-1], f[k], a[k], specs[k])[0])
    gbar, grads = ybar, [None] * len(specs)
    for k in reversed(range(len(specs))):
        diff = _pass_derivative(zs[k], f[k], a[k], specs[k], integer_shift_grad)
        grads[k] = jnp.sum(gbar * diff, axis=(0, 1, 3, 4), dtype=_compute_dtype(shift))
        if k > 0 or not quantize:
            gbar = _pass_adjoint(gbar, f[k], a[k], specs[k], x.shape[specs[k][0]])
    if quantize:
        fq = _quantized(shift)
        gbar = ybar
        for k in reversed(range(len(specs))):
            gbar = _pass_adjoint(gbar, fq[k], None, specs[k], x.shape[specs[k][0]])
    return gbar.astype(x.dtype), jnp.stack(grads).astype(shift.dtype)


_rubiks_shift.defvjp(_rubiks_shift_fwd, _rubiks_shift_bwd)
# one compiled program per configuration, also when called eagerly (many small gathers otherwise)
_rubiks_shift_jit = jax.jit(_rubiks_shift, static_argnums=(2, 3, 4, 5))


def resolve_impl(impl: str, name: str = "rubiks_shift") -> str:
    """``"auto"`` -> ``"pallas"`` when JAX's default backend is a GPU, else ``"xla"``;
    ``"xla"`` / ``"pallas"`` unchanged; anything else raises ``ValueError`` listing :data:`IMPLS`.

    ``"pallas"`` without a GPU runs the kernels of :mod:`pallas_kernels.rubiks_shift` in interpret
    mode (correct, slow) with a one-time ``InterpretModeWarning``; it never falls back to XLA.
    """
    if impl not in IMPLS:
        raise ValueError(f"{name}: impl={impl!r} is not one of {list(IMPLS)}")
    if impl == "auto":
        return "pallas" if jax.default_backend() == "gpu" else "xla"
    return impl


def _dispatch(x, shift, stride, padding, quantize, impl, integer_shift_grad):
    """``x [N, T, C, H, W]`` with a ``[3, C]`` or ``[2, C]`` shift through the resolved ``impl``."""
    if impl == "pallas":
        import pallas_kernels.rubiks_shift as pk

        kw = {"stride": stride, "padding": padding, "quantize": quantize, "integer_shift_grad": integer_shift_grad}
        if shift.shape[0] == 3:
            return pk.rubiks_shift_3d(x, shift, **kw)
        n, t = x.shape[:2]
        y = pk.rubiks_shift_2d(x.reshape((n * t,) + x.shape[2:]), shift, **kw)
        return y.reshape((n, t) + y.shape[1:])
    return _rubiks_shift_jit(x, shift, stride, padding, bool(quantize), integer_shift_grad)


def _check_common(x, shift, rows: int, stride, padding, x_desc: str, name: str, integer_shift_grad: str):
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"{name}: x must be a float array, got dtype {x.dtype}")
    if shift.ndim != 2 or shift.shape[0] != rows or shift.shape[1] != x.shape[-3]:
        raise ValueError(
            f"{name}: shift must be [{rows}, C] with C = x.shape[-3] = {x.shape[-3]} "
            f"for x {x_desc}, got shift shape {tuple(shift.shape)}"
        )
    if not jnp.issubdtype(shift.dtype, jnp.floating):
        raise ValueError(f"{name}: shift must be a float array, got dtype {shift.dtype}")
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise ValueError(f"{name}: stride={stride!r} must be an int >= 1")
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise ValueError(f"{name}: padding={padding!r} must be an int >= 0")
    if integer_shift_grad not in INTEGER_SHIFT_GRADS:
        raise ValueError(f"{name}: integer_shift_grad={integer_shift_grad!r} is not one of {list(INTEGER_SHIFT_GRADS)}")


def rubiks_shift_3d(
    x: jax.Array,
    shift: jax.Array,
    *,
    stride: int = 1,
    padding: int = 0,
    quantize: bool = False,
    impl: str = "auto",
    integer_shift_grad: str = "central",
) -> jax.Array:
    """RubiksShift: per-channel interpolated spatiotemporal shift (dissertation eqs. 6.5-6.6).

    Args:
      x: ``[N, T, C, H, W]`` float (any float dtype; the output has the same dtype).
      shift: ``[3, C]`` float, rows (temporal, vertical, horizontal) = (gamma_c, alpha_c, beta_c).
      stride: spatial stride (H and W; time is never strided).
      padding: spatial zero padding on each side of H and W.
      quantize: RubiksShift-IQ (section 6.3.2): the forward pass uses ``round(shift)`` (half up,
        ``floor(s + 0.5)``) and the input gradient is the adjoint of that quantized forward; the
        shift gradient is the interpolated one evaluated at the continuous shift
        (straight-through), exactly what ``quantize=False`` returns.
      impl: ``"xla"`` (gathers, any backend), ``"pallas"`` (the Triton kernels of
        :mod:`pallas_kernels.rubiks_shift`: float32/bfloat16 only; interpret mode with a one-time
        notice where there is no GPU) or ``"auto"`` (Pallas on a GPU, XLA elsewhere; see
        :func:`resolve_impl`). Both give the same values and gradients.
      integer_shift_grad: the shift gradient along an axis whose shift is an exact integer,
        where the output (piecewise linear in each shift) has a kink and no derivative:
        ``"central"`` (default) ``0.5 * (x(s + 1) - x(s - 1))``, the mean of the left and right
        derivatives; ``"one_sided"`` the right derivative ``x(s + 1) - x(s)``. Non-integer
        shifts are unaffected. See *Gradients* below.

    Returns:
      ``[N, T, C, H_out, W_out]`` with ``H_out = (H + 2*padding - 1) // stride + 1`` (same for W).
      Output ``(t, i, j)`` of channel ``c`` is the trilinear interpolation of ``x[:, :, c]`` at
      ``(t + s_t[c], i*stride - padding + s_v[c], j*stride - padding + s_h[c])`` over its 8
      integer neighbours, zeros outside the input. A positive shift reads from a larger index,
      so content moves towards smaller indices.

    Gradients (custom VJP): the input gradient is the exact adjoint of the forward (a gather). The
    shift gradient for each axis is ``sum_{N,T,H_out,W_out} grad_out * (x_hi - x_lo)``, where
    ``x_hi`` / ``x_lo`` are x interpolated in the other two axes and sampled at the upper
    (``floor(s)+1``) / lower (``floor(s)``) neighbour plane of this axis, i.e. the derivative
    w.r.t. the fractional part. At an exact integer shift (``floor(s) = s``) that would be the
    right derivative; ``integer_shift_grad="central"`` (the default) uses
    ``0.5 * (x_hi - x_lo)`` with ``x_hi`` / ``x_lo`` sampled at ``s + 1`` / ``s - 1`` instead,
    still interpolated in the other two axes at their own shifts.

    Why central by default: every channel of a TSM-style initialisation (and every fixed or
    freshly inflated shift) sits exactly on a kink. The right derivative sees only the ``s + 1``
    neighbour, so a channel at temporal shift 0 is pulled by the next frame's content and never
    by the previous one: it breaks the past/future symmetry such an initialisation is built on.
    The mean of the two one-sided derivatives is the symmetric element of the subdifferential
    (it flips sign exactly when the axis is mirrored), and it is what the released code uses:
    its 2-D kernel computes ``0.5 * (x[s+1] - x[s-1])``. Its 3-D kernel computes
    ``x[s+1] - x[s-1]`` (no 0.5, twice the scale of the non-integer gradient next to it) and,
    at an integer shift, also reads the *other* axes' gradients one plane back (``s - 1``
    instead of ``s``); both are defects there and are not reproduced.

    Raises:
      ValueError: unknown ``impl`` or ``integer_shift_grad``; ``x`` not 5-D float; ``shift``
        not ``[3, C]`` float; ``stride < 1`` or ``padding < 0``.
    """
    impl = resolve_impl(impl, "rubiks_shift_3d")
    x, shift = jnp.asarray(x), jnp.asarray(shift)
    if x.ndim != 5:
        raise ValueError(f"rubiks_shift_3d: x must be [N, T, C, H, W], got shape {tuple(x.shape)}")
    _check_common(x, shift, 3, stride, padding, "[N, T, C, H, W]", "rubiks_shift_3d", integer_shift_grad)
    return _dispatch(x, shift, stride, padding, quantize, impl, integer_shift_grad)


def rubiks_shift_2d(
    x: jax.Array,
    shift: jax.Array,
    *,
    stride: int = 1,
    padding: int = 0,
    quantize: bool = False,
    impl: str = "auto",
    integer_shift_grad: str = "central",
) -> jax.Array:
    """Spatial-only RubiksShift (for image pretraining): ``rubiks_shift_3d`` without time.

    Args:
      x: ``[N, C, H, W]`` float.
      shift: ``[2, C]`` float, rows (vertical, horizontal).
      stride, padding, quantize, impl, integer_shift_grad: as in ``rubiks_shift_3d``.

    Returns:
      ``[N, C, H_out, W_out]``, equal to ``rubiks_shift_3d(x[:, None], [0; shift])[:, 0]``
      (the temporal pass is skipped, not run with a zero shift).
    """
    x, shift = jnp.asarray(x), jnp.asarray(shift)
    if x.ndim != 4:
        raise ValueError(f"rubiks_shift_2d: x must be [N, C, H, W], got shape {tuple(x.shape)}")
    impl = resolve_impl(impl, "rubiks_shift_2d")
    _check_common(x, shift, 2, stride, padding, "[N, C, H, W]", "rubiks_shift_2d", integer_shift_grad)
    return _dispatch(x[:, None], shift, stride, padding, quantize, impl, integer_shift_grad)[:, 0]


def rubiks_shift_pointwise(
    x: jax.Array,
    shift: jax.Array,
    weight: jax.Array,
    *,
    stride: int = 1,
    padding: int = 0,
    quantize: bool = False,
    impl: str = "auto",
    integer_shift_grad: str = "central",
) -> jax.Array:
    """RubiksShift then a pointwise (1x1) convolution: ``out[:, :, d] = sum_c weight[c, d] *
    rubiks_shift_3d(x, shift)[:, :, c]`` (dissertation eqs. 6.2-6.3).

    Args:
      x: ``[N, T, C, H, W]`` float; shift: ``[3, C]``; weight: ``[C, D]``.
      stride, padding, quantize, impl, integer_shift_grad: as :func:`rubiks_shift_3d`. With
        ``"pallas"`` the two are one kernel
        (:func:`pallas_kernels.rubiks_shift.rubiks_shift_pointwise`: the shifted activations never
        reach memory); with ``"xla"`` the shift is followed by an einsum.

    Returns:
      ``[N, T, D, H_out, W_out]`` of ``x.dtype`` (products accumulated in float32).
    """
    impl = resolve_impl(impl, "rubiks_shift_pointwise")
    x, shift, weight = jnp.asarray(x), jnp.asarray(shift), jnp.asarray(weight)
    if x.ndim != 5:
        raise ValueError(f"rubiks_shift_pointwise: x must be [N, T, C, H, W], got shape {tuple(x.shape)}")
    _check_common(x, shift, 3, stride, padding, "[N, T, C, H, W]", "rubiks_shift_pointwise", integer_shift_grad)
    if weight.ndim != 2 or weight.shape[0] != x.shape[2]:
        raise ValueError(f"rubiks_shift_pointwise: weight must be [C, D] with C = x.shape[2] = {x.shape[2]}, "
                         f"got shape {tuple(weight.shape)}")
    if impl == "pallas":
        import pallas_kernels.rubiks_shift as pk

        return pk.rubiks_shift_pointwise(x, shift, weight, stride=stride, padding=padding, quantize=quantize,
                                         integer_shift_grad=integer_shift_grad)
    y = _rubiks_shift_jit(x, shift, stride, padding, bool(quantize), integer_shift_grad)
    return jnp.einsum("ntchw,cd->ntdhw", y, weight.astype(y.dtype), preferred_element_type=jnp.float32).astype(x.dtype)


# --------------------------------------------------------------------------------------------
# Fixed shifts: TSM and ShiftNet
# --------------------------------------------------------------------------------------------


def _roll_zero(x: jax.Array, d: int, axis: int) -> jax.Array:
    """``out[i] = x[i + d]`` along ``axis``, zeros where ``i + d`` is outside (``d`` a Python int)."""
    n = x.shape[axis]
    if d == 0:
        return x
    if abs(d) >= n:
        return jnp.zeros_like(x)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, d) if d > 0 else (-d, 0)
    start = d if d > 0 else 0
    return jax.lax.slice_in_dim(jnp.pad(x, pad), start, start + n, axis=axis)


def temporal_shift(x: jax.Array, fold_div: int = 8) -> jax.Array:
    """TSM's fixed temporal shift on ``x [N, T, C, H, W]`` -> same shape and dtype.

    With ``fold = C // fold_div``: channels ``[0, fold)`` read frame ``t + 1`` (the last frame
    reads zero), channels ``[fold, 2*fold)`` read frame ``t - 1`` (the first frame reads zero),
    the rest are unchanged.
    """
    x = jnp.asarray(x)
    if x.ndim != 5:
        raise ValueError(f"temporal_shift: x must be [N, T, C, H, W], got shape {tuple(x.shape)}")
    if not isinstance(fold_div, int) or fold_div < 1:
        raise ValueError(f"temporal_shift: fold_div={fold_div!r} must be an int >= 1")
    return _temporal_shift(x, fold_div)


@functools.partial(jax.jit, static_argnums=1)
def _temporal_shift(x: jax.Array, fold_div: int) -> jax.Array:
    fold = x.shape[2] // fold_div
    return jnp.concatenate(
        [
            _roll_zero(x[:, :, :fold], 1, axis=1),
            _roll_zero(x[:, :, fold : 2 * fold], -1, axis=1),
            x[:, :, 2 * fold :],
        ],
        axis=2,
    )


def _check_kernel_size(kernel_size, name: str) -> None:
    if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{name}: kernel_size={kernel_size!r} must be an odd int >= 1")


def _fixed_groups(channels: int, kernel_size: int) -> list[tuple[int, int, int, int]]:
    """``(start, stop, dv, dh)`` per group: channel ``c`` is in group ``c * k**2 // C`` (sizes
    differ by at most one); group ``g`` reads offset ``(g // k - k//2, g % k - k//2)``."""
    k2, r = kernel_size**2, kernel_size // 2
    groups = []
    for g in range(k2):
        start, stop = -(-g * channels // k2), -(-(g + 1) * channels // k2)
        if stop > start:
            groups.append((start, stop, g // kernel_size - r, g % kernel_size - r))
    return groups


def fixed_shift_table(channels: int, kernel_size: int = 3) -> jax.Array:
    """Shifts ``[2, C] float32`` (vertical, horizontal) of ``fixed_spatial_shift``.

    Channels are split into ``kernel_size**2`` contiguous groups (channel ``c`` is in group
    ``c * k**2 // C``); group ``g`` gets the ``g``-th offset of the k x k grid in row-major order,
    ``(g // k - k//2, g % k - k//2)``, so the centre group is unshifted.
    ``rubiks_shift_2d(x, fixed_shift_table(C, k))`` equals ``fixed_spatial_shift(x, k)``.
    """
    _check_kernel_size(kernel_size, "fixed_shift_table")
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"fixed_shift_table: channels={channels!r} must be an int >= 1")
    table = [[0.0] * channels, [0.0] * channels]
    for start, stop, dv, dh in _fixed_groups(channels, kernel_size):
        for c in range(start, stop):
            table[0][c], table[1][c] = float(dv), float(dh)
    return jnp.asarray(table, jnp.float32)


def fixed_spatial_shift(x: jax.Array, kernel_size: int = 3) -> jax.Array:
    """ShiftNet-style fixed integer spatial shift of ``x [N, T, C, H, W]`` or ``[N, C, H, W]``.

    Channel groups and offsets as in ``fixed_shift_table``; group ``(dv, dh)`` reads
    ``x[..., i + dv, j + dh]``, zero outside. Same shape and dtype as ``x``.
    """
    x = jnp.asarray(x)
    _check_kernel_size(kernel_size, "fixed_spatial_shift")
    if x.ndim not in (4, 5):
        raise ValueError(
            f"fixed_spatial_shift: x must be [N, T, C, H, W] or [N, C, H, W], got shape {tuple(x.shape)}"
        )
    return _fixed_spatial_shift(x, kernel_size)


@functools.partial(jax.jit, static_argnums=1)
def _fixed_spatial_shift(x: jax.Array, kernel_size: int) -> jax.Array:
    parts = []
    for start, stop, dv, dh in _fixed_groups(x.shape[-3], kernel_size):
        part = jax.lax.slice_in_dim(x, start, stop, axis=x.ndim - 3)
        parts.append(_roll_zero(_roll_zero(part, dv, x.ndim - 2), dh, x.ndim - 1))
    return jnp.concatenate(parts, axis=x.ndim - 3)


# --------------------------------------------------------------------------------------------
# Scaled gradient normalisation (eqs. 6.9-6.10) and the shift optimiser
# --------------------------------------------------------------------------------------------


def _normalize_leaf(g: jax.Array, lam: float, variant: str, eps: float) -> jax.Array:
    if g.ndim != 2 or g.shape[0] not in (2, 3):
        raise ValueError(
            f"normalize_shift_gradients: shift gradients must be [3, C] or [2, C], got shape {tuple(g.shape)}"
        )
    if g.shape[0] == 2:
        z = jnp.sqrt(jnp.sum(g * g, axis=0))
        return g / jnp.maximum(z, eps)
    gt, gs = g[0], g[1:]
    spatial = jnp.sum(gs * gs, axis=0)
    weight = lam if variant == "equation" else lam * lam
    z = jnp.maximum(jnp.sqrt(spatial + weight * gt * gt), eps)
    return jnp.concatenate([(lam * gt / z)[None], gs / z], axis=0)


def normalize_shift_gradients(
    temporal_lambda: float = 1.0, variant: str = "equation", eps: float = 1e-12
) -> optax.GradientTransformation:
    """Scaled gradient normalisation of shift gradients (equations 6.9-6.10), stateless.

    Each leaf is a shift gradient ``[3, C]`` (rows t, v, h) or ``[2, C]`` (rows v, h); each
    channel's gradient vector is rescaled to a direction:

    * ``variant="equation"`` (eqs. 6.9-6.10):
      ``Z = sqrt(g_v^2 + g_h^2 + lambda * g_t^2)``, ``(g_t, g_v, g_h) -> (lambda g_t, g_v, g_h) / Z``.
    * ``variant="released"`` (the released CUDA kernel, ``normalize_t_factor = lambda``):
      ``Z = sqrt(g_v^2 + g_h^2 + lambda^2 g_t^2)``, same numerator: the unit vector along
      ``(lambda g_t, g_v, g_h)``.
    * ``[2, C]`` leaves: ``(g_v, g_h) / sqrt(g_v^2 + g_h^2)`` (no lambda).

    ``Z`` is floored at ``eps`` so an all-zero gradient stays zero. The released code offers
    ``lambda = T / H`` ("auto") among its settings.
    """
    if variant not in NORMALIZE_VARIANTS:
        raise ValueError(f"normalize_shift_gradients: variant={variant!r} is not one of {list(NORMALIZE_VARIANTS)}")
    if temporal_lambda < 0:
        raise ValueError(f"normalize_shift_gradients: temporal_lambda={temporal_lambda!r} must be >= 0")

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: _normalize_leaf(g, temporal_lambda, variant, eps), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def _key_name(entry: Any) -> Any:
    for attr in ("key", "name", "idx"):
        if hasattr(entry, attr):
            return getattr(entry, attr)
    return entry


def is_shift_param(path: tuple, leaf: Any) -> bool:
    """Default shift-parameter predicate: the leaf's own name (last path entry) is ``"shift"``."""
    del leaf
    return len(path) > 0 and _key_name(path[-1]) == "shift"


def shift_optimizer(
    base: optax.GradientTransformation,
    shift_lr_multiplier: float = 0.01,
    *,
    temporal_lambda: float = 1.0,
    variant: str = "equation",
    is_shift: Callable[[tuple, Any], bool] = is_shift_param,
) -> optax.GradientTransformation:
    """``optax.multi_transform`` giving shift parameters their own update rule.

    Shift leaves (``is_shift(path, leaf)`` true; ``path`` is a ``jax.tree_util`` key path, and the
    default ``is_shift_param`` selects leaves whose name is ``"shift"``) get
    ``normalize_shift_gradients(temporal_lambda, variant)``, then ``base``, then a scale by
    ``shift_lr_multiplier`` (0.01 in the original training recipe). All other leaves get
    ``base`` unchanged. ``base`` keeps separate state for the two groups.
    """
    if shift_lr_multiplier < 0:
        raise ValueError(f"shift_optimizer: shift_lr_multiplier={shift_lr_multiplier!r} must be >= 0")
    shift_tx = optax.chain(
        normalize_shift_gradients(temporal_lambda, variant), base, optax.scale(shift_lr_multiplier)
    )

    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, leaf: "shift" if is_shift(path, leaf) else "base", params
        )

    return optax.multi_transform({"shift": shift_tx, "base": base}, labels)
