"""Pallas kernels for the interpolated per-channel 3-D shift (RubiksShift, RubiksNet ECCV 2020).

Layout ``x [N, T, C, H, W]`` with a ``[3, C]`` shift (rows: temporal, vertical, horizontal;
the 2-D variant: ``x [N, C, H, W]`` with a ``[2, C]`` shift). A shift ``s`` *reads* from
``index + s`` (``out[t] = x[t + s]``); positions outside the input read zero. Output
``(t, i, j)`` of channel ``c`` is the trilinear interpolation of ``x[:, :, c]`` at
``(t + s_t, i*stride - padding + s_v, j*stride - padding + s_h)`` over its 8 integer
neighbours. The spatial output size is ``(H + 2*padding - 1) // stride + 1`` (same for W).

The kernels share one shape: each program owns an output tile ``[BC, BH, BW]`` (a block of
channels x a block of rows x a block of columns, by default whole rows, of one ``(n, t)``
frame) and reads its inputs through per-channel index arithmetic, because the shift differs
per channel.

* forward: the sum of 8 weighted neighbour loads (1 load with ``quantize=True``);
* input gradient: the exact adjoint of the forward, itself a gather (each input position is
  read by at most 2 output positions per axis, so no scatter and no atomics);
* fused shift + pointwise (1x1) convolution (:func:`rubiks_shift_pointwise`, forward): the
  shifted tile is multiplied into the output channels in registers;
* shift gradient: per tile, ``sum grad_out * d out / d frac`` for each axis, written as
  partial sums ``[N*T, tiles, rows, C]`` and reduced by XLA in a fixed order:
  deterministic, no atomics. Along an axis whose shift is an exact integer it is, by default
  (``integer_shift_grad="central"``), the central difference ``0.5 * (x[s+1] - x[s-1])``
  (the other axes still interpolated at their own shifts); ``"one_sided"`` keeps
  ``x[s+1] - x[s]``. The ``s - 1`` planes are extra loads masked off for channels whose
  shift is not an integer, so non-integer shifts cost no extra memory traffic.

All kernels accumulate in float32 for float32 and bfloat16 inputs; float16 and float64 are
refused (``x`` named in the message). Flat int32 indexing: ``x`` must have fewer than 2**31
elements.

Lowering. On a GPU the kernels lower through Pallas's Triton backend (selected explicitly
with ``triton.CompilerParams``, as newer JAX defaults to Mosaic GPU). Triton tensors must
have power-of-two sizes, so tiles are padded (a 56-wide row is a 64-lane row) and the
padding lanes are masked on load and store; masked lanes are additionally pointed past the
end of the buffer so they can never alias a neighbour even in interpret mode. There is no
Mosaic GPU (Hopper TMA/WGMMA) variant: the per-channel gather does not map onto TMA's
rectangular tile copies, and the fused kernel's products are small (16-32-channel chunks);
whether a Hopper-specific path pays is left to GPU measurements (see BENCHMARKS.md).

On a backend without a GPU the same kernels run in Pallas's interpret mode (correct, slow):
``interpret=None`` does so with a one-time :class:`InterpretModeWarning`, so a CPU
benchmark can never silently time the interpreter. Pass ``interpret=True`` to ask for it
without the notice.

This package knows nothing of vasa; ``vasa.video.shift`` dispatches here with
``impl="pallas"`` (or ``"auto"`` on a GPU).
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

__all__ = ["InterpretModeWarning", "Block", "INTEGER_SHIFT_GRADS", "choose_block", "choose_fused_block", "gpu_available",
           "rubiks_shift_2d", "rubiks_shift_3d", "rubiks_shift_pointwise", "SUPPORTED_DTYPES"]

SUPPORTED_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16))
INTEGER_SHIFT_GRADS = ("central", "one_sided")  # shift gradient at an exact integer shift
_MAX_ELEMENTS = 2**31 - 1
_TILE_ELEMENTS = 2048  # default tile size (elements per program)


class InterpretModeWarning(UserWarning):
    """Pallas kernels requested on a backend without a GPU: they run in interpret mode."""


_NOTIFIED = False


def gpu_available() -> bool:
    """True when JAX's default backend is a GPU (where the Triton lowering runs)."""
    return jax.default_backend() == "gpu"


def _resolve_interpret(interpret: bool | None) -> bool:
    global _NOTIFIED
    if interpret is not None:
        return bool(interpret)
    if gpu_available():
        return False
    if not _NOTIFIED:
        _NOTIFIED = True
        warnings.warn(
            f"pallas_kernels.rubiks_shift: no GPU (default backend {jax.default_backend()!r}); the Pallas kernels "
            "run in interpret mode, which is correct but slow. Use impl='xla' for speed on this backend, or "
            "interpret=True to silence this notice.", InterpretModeWarning, stacklevel=3)
    return True


# --------------------------------------------------------------------------------------------
# tiles
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """Tile of one program: ``channels x rows x cols`` (each a power of two)."""

    channels: int
    rows: int
    cols: int

    def __post_init__(self):
        for name in ("channels", "rows", "cols"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1 or v & (v - 1):
                raise ValueError(f"Block.{name}={v!r} must be a power of two >= 1 (Triton tile sizes)")


def _pow2(n: int) -> int:
    return 1 << max(0, math.ceil(math.log2(max(n, 1))))


def choose_block(channels: int, height: int, width: int, tile: int = _TILE_ELEMENTS) -> Block:
    """Tile for an output plane ``height x width`` with ``channels`` channels.

    All columns of a row (``cols = next_pow2(width)``, capped at ``tile``: rows stay
    contiguous in memory), the
    most rows (a power of two, at most ``tile // cols``) that pad ``height`` by at most 1/7,
    and then as many channels as fit ``tile`` elements (at most ``next_pow2(channels)``).
    """
    cols = min(_pow2(width), _pow2(tile))
    cap = max(1, tile // cols)
    rows = 1
    for cand in (1 << k for k in range(int(math.log2(_pow2(height))) + 1)):
        if cand <= cap and -(-height // cand) * cand <= height * 8 / 7:
            rows = cand
    chans = max(1, min(_pow2(channels), tile // (rows * cols)))
    return Block(chans, rows, cols)


# --------------------------------------------------------------------------------------------
# the kernels
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Geometry:
    """Static description of one gather: ``src [NT, C, Hs, Ws]`` -> ``out [NT, C, Ho, Wo]``."""

    n: int
    t: int
    c: int
    src_hw: tuple[int, int]
    out_hw: tuple[int, int]
    stride: int
    padding: int
    adjoint: bool  # False: forward pass; True: the forward's transpose (input gradient)
    temporal: bool  # rows = 3 (t, v, h) or 2 (v, h)
    corners: int  # 2: interpolate; 1: integer shifts only (quantized)
    block: Block
    central: bool = False  # shift gradient: central difference along axes at an exact integer shift


def _axis_sources(g: _Geometry, q, f, d: int, src_len: int):
    """Source index and validity along one spatial axis for output positions ``q``.

    Forward: ``src = q*stride - padding + f + d``. Adjoint: the forward output ``o`` that read
    input ``q`` through corner ``d``: ``o*stride = q + padding - f - d`` when divisible.
    """
    if not g.adjoint:
        src = q * g.stride - g.padding + f + d
        return src, (src >= 0) & (src < src_len)
    m = q + g.padding - f - d
    if g.stride == 1:
        return m, (m >= 0) & (m < src_len)
    mm = jnp.maximum(m, 0)
    src = jax.lax.div(mm, g.stride)
    ok = (m >= 0) & (jax.lax.rem(mm, g.stride) == 0) & (src < src_len)
    return src, ok


def _channel_parts(g: _Geometry, f_ref, a_ref, c):
    """For channels ``c [BC]``: validity, clamped ids, and per-axis (t, v, h) floor ``[BC]`` int32
    and fraction ``[BC]`` float32 lists (zero temporal parts for the 2-D variant)."""
    c_ok = c < g.c
    cc = jnp.where(c_ok, c, 0)
    rows = 3 if g.temporal else 2
    f = [pltriton.load(f_ref.at[k * g.c + cc]) for k in range(rows)]
    a = [pltriton.load(a_ref.at[k * g.c + cc]) for k in range(rows)]
    if not g.temporal:
        f = [jnp.zeros_like(f[0])] + f
        a = [jnp.zeros_like(a[0])] + a
    return c_ok, cc, f, a


def _sources(g: _Geometry, t, f, i, j):
    """Per-corner ``(index, valid)`` along t ``[BC]``, rows ``[BC, BH]`` and columns ``[BC, BW]``."""
    tcorners = g.corners if g.temporal else 1
    taxis = []
    for d in range(tcorners):
        ts = t - f[0] - d if g.adjoint else t + f[0] + d
        taxis.append((ts, (ts >= 0) & (ts < g.t)))
    vaxis = [_axis_sources(g, i[None, :], f[1][:, None], d, g.src_hw[0]) for d in range(g.corners)]
    haxis = [_axis_sources(g, j[None, :], f[2][:, None], d, g.src_hw[1]) for d in range(g.corners)]
    return taxis, vaxis, haxis


def _tile_coords(g: _Geometry, hwb):
    """Output rows ``[BH]`` and columns ``[BW]`` of row-and-column block ``hwb``."""
    b = g.block
    ncol = -(-g.out_hw[1] // b.cols)
    hb, wb = hwb // ncol, hwb % ncol
    return hb * b.rows + jnp.arange(b.rows, dtype=jnp.int32), wb * b.cols + jnp.arange(b.cols, dtype=jnp.int32)


def _tile_setup(g: _Geometry, f_ref, a_ref):
    """Program coordinates, per-channel shift parts and per-axis source indices of the tile."""
    nt, cb = pl.program_id(0), pl.program_id(1)
    i, j = _tile_coords(g, pl.program_id(2))
    t = nt % g.t
    c_ok, cc, f, a = _channel_parts(g, f_ref, a_ref, cb * g.block.channels + jnp.arange(g.block.channels,
                                                                                         dtype=jnp.int32))
    taxis, vaxis, haxis = _sources(g, t, f, i, j)
    weights = [[1.0 - a[k], a[k]] for k in range(3)]
    ho, wo = g.out_hw
    out_ok = c_ok[:, None, None] & (i < ho)[None, :, None] & (j < wo)[None, None, :]
    return nt, t, c_ok, cc, i, j, taxis, vaxis, haxis, weights, out_ok


def _load_corner(g: _Geometry, src_ref, nt, t, cc, c_ok, tax, vax, hax):
    """``[BC, BH, BW]`` float32 values of ``src`` at one corner (zero outside)."""
    (ts, t_ok), (vs, v_ok), (hs_, h_ok) = tax, vax, hax
    hs, ws = g.src_hw
    plane = ((nt - t + ts) * g.c + cc) * (hs * ws)
    idx = plane[:, None, None] + vs[:, :, None] * ws + hs_[:, None, :]
    ok = (c_ok & t_ok)[:, None, None] & v_ok[:, :, None] & h_ok[:, None, :]
    # masked lanes are never dereferenced (GPU) / are replaced by 0 (interpret): no clamp needed,
    # which keeps the column offsets contiguous for Triton's coalescing analysis
    val = pltriton.load(src_ref.at[idx], mask=ok, other=0)
    return val.astype(jnp.float32)


def _interpolate(g: _Geometry, src_ref, nt, t, cc, c_ok, taxis, vaxis, haxis, w):
    """The weighted sum of the corners: the shifted tile ``[BC, BH, BW]`` float32."""
    acc = None
    for dt, tax in enumerate(taxis):
        for dv, vax in enumerate(vaxis):
            for dh, hax in enumerate(haxis):
                val = _load_corner(g, src_ref, nt, t, cc, c_ok, tax, vax, hax)
                if g.corners == 2:
                    val = (w[0][dt] * w[1][dv] * w[2][dh])[:, None, None] * val
                acc = val if acc is None else acc + val
    return acc


def _gather_kernel(f_ref, a_ref, src_ref, out_ref, *, g: _Geometry, out_base: int):
    nt, t, c_ok, cc, i, j, taxis, vaxis, haxis, w, out_ok = _tile_setup(g, f_ref, a_ref)
    acc = _interpolate(g, src_ref, nt, t, cc, c_ok, taxis, vaxis, haxis, w)
    ho, wo = g.out_hw
    idx = out_base + ((nt * g.c + cc) * (ho * wo))[:, None, None] + i[None, :, None] * wo + j[None, None, :]
    past_end = out_base + g.n * g.t * g.c * ho * wo  # masked lanes point past the data (never written)
    pltriton.store(out_ref.at[jnp.where(out_ok, idx, past_end)], acc.astype(out_ref.dtype), mask=out_ok)


def _fused_kernel(f_ref, a_ref, x_ref, w_ref, out_ref, *, g: _Geometry, d_out: int, bd: int):
    """Shift + pointwise convolution for one ``(n, t)``, ``bd`` output channels and one pixel
    tile: the shifted input is built ``g.block.channels`` channels at a time and multiplied into
    a ``[bd, BH*BW]`` float32 accumulator, so it never goes to memory."""
    b = g.block
    nt, db = pl.program_id(0), pl.program_id(1)
    i, j = _tile_coords(g, pl.program_id(2))
    t = nt % g.t
    d = db * bd + jnp.arange(bd, dtype=jnp.int32)
    d_ok = d < d_out
    low_precision = x_ref.dtype != jnp.float32

    def chunk(k, acc):
        c = k * b.channels + jnp.arange(b.channels, dtype=jnp.int32)
        c_ok, cc, f, a = _channel_parts(g, f_ref, a_ref, c)
        taxis, vaxis, haxis = _sources(g, t, f, i, j)
        w = [[1.0 - a[m], a[m]] for m in range(3)]
        shifted = _interpolate(g, x_ref, nt, t, cc, c_ok, taxis, vaxis, haxis, w)
        shifted = shifted.reshape(b.channels, b.rows * b.cols)
        wt = pltriton.load(w_ref.at[cc[None, :] * d_out + jnp.where(d_ok, d, 0)[:, None]],
                           mask=d_ok[:, None] & c_ok[None, :], other=0)
        if low_precision:  # bfloat16 operands, float32 accumulation
            return acc + jnp.dot(wt.astype(x_ref.dtype), shifted.astype(x_ref.dtype),
                                 preferred_element_type=jnp.float32)
        return acc + jnp.dot(wt.astype(jnp.float32), shifted, preferred_element_type=jnp.float32)

    acc = jax.lax.fori_loop(0, -(-g.c // b.channels), chunk, jnp.zeros((bd, b.rows * b.cols), jnp.float32))
    ho, wo = g.out_hw
    ok = d_ok[:, None, None] & (i < ho)[None, :, None] & (j < wo)[None, None, :]
    idx = ((nt * d_out + d) * (ho * wo))[:, None, None] + i[None, :, None] * wo + j[None, None, :]
    past_end = g.n * g.t * d_out * ho * wo
    pltriton.store(out_ref.at[jnp.where(ok, idx, past_end)], acc.reshape(bd, b.rows, b.cols).astype(out_ref.dtype),
                   mask=ok)


def _shift_grad_kernel(f_ref, a_ref, x_ref, ybar_ref, out_ref, *, g: _Geometry):
    nt, t, c_ok, cc, i, j, taxis, vaxis, haxis, w, out_ok = _tile_setup(g, f_ref, a_ref)
    ho, wo = g.out_hw
    yidx = ((nt * g.c + cc) * (ho * wo))[:, None, None] + i[None, :, None] * wo + j[None, None, :]
    ybar = pltriton.load(ybar_ref.at[yidx], mask=out_ok, other=0).astype(jnp.float32)
    wt = w[0] if g.temporal else [jnp.ones_like(w[0][0])]
    axes = ([0] if g.temporal else []) + [1, 2]
    # d out / d frac_axis, accumulated corner by corner: the other axes' weights times the
    # lower / upper coefficient of this axis, (-1, +1); 3 running tiles instead of 8 live corners
    coefs = {axis: (-1.0, 1.0) for axis in axes}
    if g.central:
        # at an exact integer shift: 0.5 * (upper - plane s-1), the lower corner (plane s) drops out
        _, _, f, a = _channel_parts(g, f_ref, a_ref, cc)
        at_int = {axis: a[axis] == 0 for axis in axes}
        coefs = {axis: (jnp.where(at_int[axis], 0.0, -1.0), jnp.where(at_int[axis], 0.5, 1.0)) for axis in axes}
    partials = {axis: jnp.zeros_like(ybar) for axis in axes}
    lists, weights = [taxis, vaxis, haxis], [wt, w[1], w[2]]
    for corner in itertools.product(*(range(len(lst)) for lst in lists)):
        val = _load_corner(g, x_ref, nt, t, cc, c_ok, *(lst[d] for lst, d in zip(lists, corner)))
        for axis in axes:
            others = math.prod(weights[k][d] for k, d in enumerate(corner) if k != axis)
            coef = coefs[axis][corner[axis]] * others
            partials[axis] = partials[axis] + coef[:, None, None] * val
    if g.central:
        # plane s-1 of each integer axis, the other axes at their usual corners; masked (never
        # read) for channels whose shift along that axis is not an integer
        for axis in axes:
            below = list(lists)
            if axis == 0:
                ts = t + f[0] - 1
                below[0] = [(ts, (ts >= 0) & (ts < g.t) & at_int[0])]
            else:
                q, n = (i, g.src_hw[0]) if axis == 1 else (j, g.src_hw[1])
                src, ok = _axis_sources(g, q[None, :], f[axis][:, None], -1, n)
                below[axis] = [(src, ok & at_int[axis][:, None])]
            for corner in itertools.product(*(range(len(lst)) for lst in below)):
                val = _load_corner(g, x_ref, nt, t, cc, c_ok, *(lst[d] for lst, d in zip(below, corner)))
                others = math.prod(weights[k][d] for k, d in enumerate(corner) if k != axis)
                partials[axis] = partials[axis] - (0.5 * others)[:, None, None] * val
    hwb, nhwb = pl.program_id(2), _grid(g)[2]
    for r, axis in enumerate(axes):
        part = jnp.sum(ybar * partials[axis], axis=(1, 2))
        idx = ((nt * nhwb + hwb) * len(axes) + r) * g.c + cc
        pltriton.store(out_ref.at[jnp.where(c_ok, idx, g.n * g.t * nhwb * len(axes) * g.c)], part, mask=c_ok)


def _grid(g: _Geometry) -> tuple[int, int, int]:
    """(frames, channel blocks, row blocks x column blocks)."""
    (ho, wo), b = g.out_hw, g.block
    return g.n * g.t, -(-g.c // b.channels), -(-ho // b.rows) * -(-wo // b.cols)


def _compiler_params(num_warps: int):
    return pltriton.CompilerParams(num_warps=num_warps, num_stages=1)


def _gather(src: jax.Array, f: jax.Array, a: jax.Array, g: _Geometry, *, interpret: bool, num_warps: int,
            out_dtype, guard: int = 0, fill=None) -> jax.Array:
    """Run the forward/adjoint gather: ``src`` flat -> flat output (``guard`` extra elements on
    each side, pre-filled with ``fill``, for tests that check masked lanes write nothing)."""
    size = g.n * g.t * g.c * g.out_hw[0] * g.out_hw[1]
    kernel = functools.partial(_gather_kernel, g=g, out_base=guard)
    out_shape = jax.ShapeDtypeStruct((size + 2 * guard,), out_dtype)
    args = [f, a, src]
    aliases = {}
    if guard:
        args.append(jnp.full(out_shape.shape, fill, out_dtype))
        aliases = {3: 0}
        kernel = functools.partial(lambda *refs, _k: _k(*refs[:3], refs[4]), _k=kernel)
    return pl.pallas_call(kernel, out_shape=out_shape, grid=_grid(g), interpret=interpret,
                          input_output_aliases=aliases, compiler_params=_compiler_params(num_warps),
                          name="rubiks_shift_adjoint" if g.adjoint else "rubiks_shift_forward")(*args)


def _shift_grad(x: jax.Array, ybar: jax.Array, f: jax.Array, a: jax.Array, g: _Geometry, *, interpret: bool,
                num_warps: int) -> jax.Array:
    rows = 3 if g.temporal else 2
    nblocks = _grid(g)[2]
    parts = pl.pallas_call(
        functools.partial(_shift_grad_kernel, g=g),
        out_shape=jax.ShapeDtypeStruct((g.n * g.t * nblocks * rows * g.c,), jnp.float32),
        grid=_grid(g), interpret=interpret, compiler_params=_compiler_params(num_warps),
        name="rubiks_shift_shift_grad")(f, a, x, ybar)
    return parts.reshape(g.n * g.t * nblocks, rows, g.c).sum(0)


# --------------------------------------------------------------------------------------------
# custom VJP
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Config:
    shape: tuple[int, int, int, int, int]  # N, T, C, H, W of x
    rows: int
    stride: int
    padding: int
    quantize: bool
    block: Block | None
    num_warps: int
    interpret: bool
    integer_shift_grad: str = "central"

    @property
    def out_hw(self) -> tuple[int, int]:
        _, _, _, h, w = self.shape
        size = lambda n: (n + 2 * self.padding - 1) // self.stride + 1
        return size(h), size(w)

    def geometry(self, adjoint: bool, corners: int, central: bool = False) -> _Geometry:
        n, t, c, h, w = self.shape
        src_hw, out_hw = ((h, w), self.out_hw) if not adjoint else (self.out_hw, (h, w))
        block = self.block or choose_block(c, *out_hw)
        return _Geometry(n, t, c, src_hw, out_hw, self.stride, self.padding, adjoint, self.rows == 3, corners, block,
                         central)


def _parts(shift: jax.Array, quantize: bool) -> tuple[jax.Array, jax.Array]:
    """Flat ``[rows*C]`` int32 floor (or round-half-up) and float32 fraction (0 when quantized)."""
    s = shift.astype(jnp.float32)
    if quantize:
        f = jnp.floor(s + 0.5)
        return f.astype(jnp.int32).reshape(-1), jnp.zeros(s.size, jnp.float32)
    f = jnp.floor(s)
    return f.astype(jnp.int32).reshape(-1), (s - f).reshape(-1)


def _forward(x, shift, cfg: _Config):
    f, a = _parts(shift, cfg.quantize)
    g = cfg.geometry(False, 1 if cfg.quantize else 2)
    out = _gather(x.reshape(-1), f, a, g, interpret=cfg.interpret, num_warps=cfg.num_warps, out_dtype=x.dtype)
    n, t, c, _, _ = cfg.shape
    return out.reshape(n, t, c, *cfg.out_hw)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _shift(x, shift, cfg: _Config):
    return _forward(x, shift, cfg)


def _shift_fwd(x, shift, cfg):
    return _forward(x, shift, cfg), (x, shift)


def _shift_bwd(cfg: _Config, res, ybar):
    x, shift = res
    f, a = _parts(shift, cfg.quantize)
    g_adj = cfg.geometry(True, 1 if cfg.quantize else 2)
    xbar = _gather(ybar.reshape(-1), f, a, g_adj, interpret=cfg.interpret, num_warps=cfg.num_warps,
                   out_dtype=x.dtype).reshape(x.shape)
    # the shift gradient is always the interpolated one at the continuous shift (straight-through for IQ)
    fc, ac = _parts(shift, False) if cfg.quantize else (f, a)
    g_grad = cfg.geometry(False, 2, central=cfg.integer_shift_grad == "central")
    sbar = _shift_grad(x.reshape(-1), ybar.reshape(-1), fc, ac, g_grad, interpret=cfg.interpret,
                       num_warps=cfg.num_warps)
    return xbar, sbar.astype(shift.dtype)


_shift.defvjp(_shift_fwd, _shift_bwd)


def _check(x, shift, rows: int, stride, padding, block, num_warps, name: str, layout: str,
           integer_shift_grad: str) -> None:
    ndim = 5 if rows == 3 else 4
    if x.ndim != ndim:
        raise ValueError(f"{name}: x must be {layout}, got shape {tuple(x.shape)}")
    if jnp.dtype(x.dtype) not in SUPPORTED_DTYPES:
        raise ValueError(f"{name}: x has dtype {jnp.dtype(x.dtype).name}, which the Pallas kernels do not support; "
                         f"use one of {[d.name for d in SUPPORTED_DTYPES]} (or the XLA implementation)")
    channels = x.shape[-3]
    if shift.ndim != 2 or shift.shape != (rows, channels):
        raise ValueError(f"{name}: shift must be [{rows}, C] with C = x.shape[-3] = {channels} for x {layout}, "
                         f"got shift shape {tuple(shift.shape)}")
    if jnp.dtype(shift.dtype) not in SUPPORTED_DTYPES:
        raise ValueError(f"{name}: shift has dtype {jnp.dtype(shift.dtype).name}; use one of "
                         f"{[d.name for d in SUPPORTED_DTYPES]}")
    if not isinstance(stride, int) or isinstance(stride, bool) or stride < 1:
        raise ValueError(f"{name}: stride={stride!r} must be an int >= 1")
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise ValueError(f"{name}: padding={padding!r} must be an int >= 0")
    out_size = math.prod(x.shape[:-2]) * math.prod((n + 2 * padding - 1) // stride + 1 for n in x.shape[-2:])
    if max(x.size, out_size) > _MAX_ELEMENTS:
        raise ValueError(f"{name}: x has {x.size} elements (output {out_size}); the kernels index with int32 and "
                         f"take at most {_MAX_ELEMENTS} (split the batch)")
    if block is not None and not isinstance(block, Block):
        raise ValueError(f"{name}: block={block!r} must be a pallas_kernels.rubiks_shift.Block or None")
    if not isinstance(num_warps, int) or num_warps < 1 or num_warps & (num_warps - 1):
        raise ValueError(f"{name}: num_warps={num_warps!r} must be a power of two >= 1")
    if integer_shift_grad not in INTEGER_SHIFT_GRADS:
        raise ValueError(f"{name}: integer_shift_grad={integer_shift_grad!r} is not one of {list(INTEGER_SHIFT_GRADS)}")


def rubiks_shift_3d(x: jax.Array, shift: jax.Array, *, stride: int = 1, padding: int = 0, quantize: bool = False,
                    interpret: bool | None = None, block: Block | None = None, num_warps: int = 4,
                    integer_shift_grad: str = "central") -> jax.Array:
    """Interpolated per-channel 3-D shift (RubiksShift), as Pallas kernels with a custom VJP.

    Args:
      x: ``[N, T, C, H, W]`` float32 or bfloat16.
      shift: ``[3, C]`` float32 or bfloat16, rows (temporal, vertical, horizontal).
      stride: spatial stride (H and W). padding: spatial zero padding on each side.
      quantize: RubiksShift-IQ: forward and input gradient at ``floor(shift + 0.5)``; the shift
        gradient stays the interpolated one at the continuous shift (straight-through).
      interpret: ``None``: compiled (Triton) on a GPU, interpret mode elsewhere with a one-time
        :class:`InterpretModeWarning`; ``True``/``False`` force it.
      block: tile override (default :func:`choose_block` of the output plane).
      num_warps: Triton warps per program.
      integer_shift_grad: the shift gradient along an axis whose shift is an exact integer (where
        the output has a kink): ``"central"`` ``0.5 * (x[s+1] - x[s-1])``, the mean of the left
        and right derivatives (the released 2-D kernel's rule), or ``"one_sided"``
        ``x[s+1] - x[s]``. The released 3-D kernel's variant (no 0.5, and the other axes read
        at plane ``s - 1``) is a defect and is not offered.

    Returns:
      ``[N, T, C, H_out, W_out]`` of ``x.dtype`` (float32 accumulation), ``H_out = (H +
      2*padding - 1) // stride + 1``. Gradients: input gradient = the forward's adjoint; shift
      gradient ``[3, C]`` = ``sum grad_out * (x_hi - x_lo)`` per axis (at integer shifts as
      ``integer_shift_grad`` says), reduced deterministically.

    Raises:
      ValueError: naming ``x`` (rank, dtype, size), ``shift`` (shape, dtype), ``stride``,
        ``padding``, ``block``, ``num_warps`` or ``integer_shift_grad``.
    """
    x, shift = jnp.asarray(x), jnp.asarray(shift)
    _check(x, shift, 3, stride, padding, block, num_warps, "rubiks_shift_3d", "[N, T, C, H, W]", integer_shift_grad)
    cfg = _Config(tuple(x.shape), 3, stride, padding, bool(quantize), block, num_warps,
                  _resolve_interpret(interpret), integer_shift_grad)
    return _shift(x, shift, cfg)


def rubiks_shift_2d(x: jax.Array, shift: jax.Array, *, stride: int = 1, padding: int = 0, quantize: bool = False,
                    interpret: bool | None = None, block: Block | None = None, num_warps: int = 4,
                    integer_shift_grad: str = "central") -> jax.Array:
    """Spatial-only RubiksShift: ``x [N, C, H, W]``, ``shift [2, C]`` (vertical, horizontal) ->
    ``[N, C, H_out, W_out]``; otherwise as :func:`rubiks_shift_3d` (no temporal corner is read)."""
    x, shift = jnp.asarray(x), jnp.asarray(shift)
    _check(x, shift, 2, stride, padding, block, num_warps, "rubiks_shift_2d", "[N, C, H, W]", integer_shift_grad)
    cfg = _Config((x.shape[0], 1) + tuple(x.shape[1:]), 2, stride, padding, bool(quantize), block, num_warps,
                  _resolve_interpret(interpret), integer_shift_grad)
    return _shift(x[:, None], shift, cfg)[:, 0]



# --------------------------------------------------------------------------------------------
# fused shift + pointwise (1x1) convolution
# --------------------------------------------------------------------------------------------


def choose_fused_block(channels: int, out_channels: int, height: int, width: int) -> tuple[Block, int]:
    """``(Block(channel chunk, rows, cols), output-channel block)`` for :func:`rubiks_shift_pointwise`.

    Triton's matrix multiply needs every dimension >= 16: the channel chunk (the product's
    inner dimension) is 16 or 32, the pixel tile ``rows x cols`` holds 64 to 128 positions
    (whole rows where they fit), and output channels go 16 to 64 per program.
    """
    cols = min(_pow2(width), 64)
    rows = max(1, min(_pow2(height), 128 // cols), 16 // cols)
    chunk = 32 if channels >= 32 else 16
    return Block(chunk, rows, cols), min(64, max(16, _pow2(out_channels)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _fused(x, shift, weight, cfg: _Config, block: Block, bd: int):
    n, t, c, _, _ = cfg.shape
    d_out = weight.shape[1]
    ho, wo = cfg.out_hw
    f, a = _parts(shift, cfg.quantize)
    g = _Geometry(n, t, c, cfg.shape[3:], cfg.out_hw, cfg.stride, cfg.padding, False, cfg.rows == 3,
                  1 if cfg.quantize else 2, block)
    grid = (n * t, -(-d_out // bd), -(-ho // block.rows) * -(-wo // block.cols))
    out = pl.pallas_call(
        functools.partial(_fused_kernel, g=g, d_out=d_out, bd=bd),
        out_shape=jax.ShapeDtypeStruct((n * t * d_out * ho * wo,), x.dtype), grid=grid,
        interpret=cfg.interpret, compiler_params=_compiler_params(cfg.num_warps),
        name="rubiks_shift_pointwise")(f, a, x.reshape(-1), weight.reshape(-1))
    return out.reshape(n, t, d_out, ho, wo)


def _unfused(x, shift, weight, cfg: _Config):
    y = _shift(x, shift, cfg)
    return jnp.einsum("ntchw,cd->ntdhw", y, weight.astype(y.dtype), preferred_element_type=jnp.float32,
                      precision=jax.lax.Precision.HIGHEST).astype(x.dtype)


def _fused_fwd(x, shift, weight, cfg, block, bd):
    return _fused(x, shift, weight, cfg, block, bd), (x, shift, weight)


def _fused_bwd(cfg, block, bd, res, ybar):
    # the backward runs the separate kernels (the shift's custom VJP) and XLA's matrix products
    _, vjp = jax.vjp(lambda x, s, w: _unfused(x, s, w, cfg), *res)
    return vjp(ybar)


_fused.defvjp(_fused_fwd, _fused_bwd)


def rubiks_shift_pointwise(x: jax.Array, shift: jax.Array, weight: jax.Array, *, stride: int = 1, padding: int = 0,
                           quantize: bool = False, interpret: bool | None = None, block: Block | None = None,
                           out_block: int | None = None, num_warps: int = 4,
                           integer_shift_grad: str = "central") -> jax.Array:
    """RubiksShift followed by a pointwise (1x1) convolution, fused into one kernel (eqs. 6.2-6.3).

    ``out[n, t, d] = sum_c weight[c, d] * rubiks_shift_3d(x, shift)[n, t, c]``: the shifted
    activations are built in registers channel chunk by channel chunk and multiplied into the
    output tile, so they are never written to memory (the paper notes the two can be one
    kernel call). The backward pass runs the separate shift kernels and XLA's products.

    Args:
      x: ``[N, T, C, H, W]`` float32 or bfloat16. shift: ``[3, C]``. weight: ``[C, D]`` (float32
        products in IEEE precision; bfloat16 inputs multiply in bfloat16 with float32 accumulation).
      stride, padding, quantize, interpret, num_warps, integer_shift_grad: as :func:`rubiks_shift_3d`.
      block: ``Block(channel chunk >= 16, rows, cols)`` with ``rows * cols >= 16``; out_block:
        output channels per program (>= 16, a power of two). Defaults: :func:`choose_fused_block`.

    Returns:
      ``[N, T, D, H_out, W_out]`` of ``x.dtype``.
    """
    x, shift, weight = jnp.asarray(x), jnp.asarray(shift), jnp.asarray(weight)
    _check(x, shift, 3, stride, padding, block, num_warps, "rubiks_shift_pointwise", "[N, T, C, H, W]",
           integer_shift_grad)
    if weight.ndim != 2 or weight.shape[0] != x.shape[2] or jnp.dtype(weight.dtype) not in SUPPORTED_DTYPES:
        raise ValueError(f"rubiks_shift_pointwise: weight must be [C, D] float32/bfloat16 with C = x.shape[2] = "
                         f"{x.shape[2]}, got shape {tuple(weight.shape)} dtype {jnp.dtype(weight.dtype).name}")
    cfg = _Config(tuple(x.shape), 3, stride, padding, bool(quantize), None, num_warps, _resolve_interpret(interpret),
                  integer_shift_grad)
    default_block, default_bd = choose_fused_block(x.shape[2], weight.shape[1], *cfg.out_hw)
    block, bd = block or default_block, out_block or default_bd
    if block.channels < 16 or block.rows * block.cols < 16:
        raise ValueError(f"rubiks_shift_pointwise: block={block} needs channels >= 16 and rows * cols >= 16 "
                         "(Triton's matrix multiply)")
    if not isinstance(bd, int) or bd < 16 or bd & (bd - 1):
        raise ValueError(f"rubiks_shift_pointwise: out_block={bd!r} must be a power of two >= 16")
    return _fused(x, shift, weight, cfg, block, bd)
