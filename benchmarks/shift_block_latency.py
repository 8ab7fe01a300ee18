"""Latency of the efficiency-study blocks of RubiksNet (dissertation Table 6.6, section 6.5.3).

Three blocks with the same input and output channels, on one input of shape
``(N, T, C, H, W) = (8, 8, 72, 56, 56)`` (the paper's; vasa's blocks are channels last, so
the array is ``[N, T, H, W, C] = [8, 8, 56, 56, 72]``), all on the same device:

* ``3D conv``: :class:`vasa.video.rubiksnet.Conv3DBlock`, a 3x3x3 convolution C -> C, no bias.
* ``TSM``: :class:`vasa.video.rubiksnet.TSMBlock`, TSM's fixed temporal shift (1/8 of the
  channels one frame back, 1/8 one frame forward) + a 3x3 2-D convolution C -> C per frame.
* ``RubiksShift``: :class:`vasa.video.rubiksnet.RubiksShiftLayer`, the interpolated
  (trilinear) per-channel 3-D shift ``rubiks_shift_3d(impl=--impl)`` + a 1x1 convolution
  C -> C. The shifts are drawn from U[-1, 1] (the layer's initialiser), so every channel is
  fractionally shifted in all three axes. Its cost includes the two transposes between the
  layer's channels-last layout and the shift op's ``[N, T, C, H, W]``.
* ``RubiksShift-IQ`` (extra row): the same layer with ``quantize=True`` (integer shifts in
  the forward pass, straight-through shift gradient).

For each block two jitted functions are timed: ``fwd`` (``apply``, the output) and
``fwd+bwd`` (the gradient of ``sum(output)`` with respect to the parameters and the input,
as one program). Each is compiled ahead of time (``jit(...).lower(...).compile()``; the
``compile s`` column), called ``--warmup`` times untimed, then ``--repeats`` times, each
call ended by ``jax.block_until_ready``; the table gives the median and the 10th/90th
percentiles of those calls in ms (the JSON also has mean and standard deviation, the
statistic of Table 6.6, which reports mean +- std over 100 trials on a Titan Xp).

Ratios are RubiksShift / TSM and RubiksShift / 3D conv on this device; the targets are
<= 0.25 and <= 0.12, and the Titan Xp anchors (7.98 / 3.59 / 0.90 ms, i.e. 0.25 and 0.11)
are printed beside them. The dissertation does not say whether its figures are forward only;
as "runtime latency" of a layer they are compared here with the forward column.

``--impl`` picks the shift implementation of the RubiksShift rows (``auto``: the Pallas kernels
of :mod:`pallas_kernels.rubiks_shift` on a GPU, the XLA gathers elsewhere); when it resolves to
Pallas two rows are added: ``RubiksShift+1x1 fused`` (shift and 1x1 convolution in one kernel,
``RubiksShiftLayer(fused=True)``, same parameters) and ``RubiksShift+1x1 (xla)`` (the XLA
reference, in the same process).

``--dtype bfloat16`` casts the input and the convolution kernels to bfloat16; the shift
parameters stay float32 (``rubiks_shift_3d`` computes its interpolation weights in float32
anyway). The loss of ``fwd+bwd`` is summed in float32.

Usage::

    python benchmarks/shift_block_latency.py                       # paper shape, 20 repeats
    python benchmarks/shift_block_latency.py --quick               # CPU smoke: (2, 8, 72, 28, 28)
    python benchmarks/shift_block_latency.py --dtype bfloat16 --json out.json
    python benchmarks/shift_block_latency.py --n 4 --h 112 --w 112 --repeats 5 --no-backward
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import tyro

from vasa.video.rubiksnet import Conv3DBlock, RubiksShiftLayer, TSMBlock

PAPER_SHAPE = (8, 8, 72, 56, 56)  # (N, T, C, H, W), Table 6.6
QUICK_SHAPE = (2, 8, 72, 28, 28)
# Table 6.6, Titan Xp, mean over 100 trials
ANCHOR_MS = {"conv3d": 7.98, "tsm": 3.59, "rubiks": 0.90}
TARGET_VS_TSM = 0.25
TARGET_VS_CONV3D = 0.12
BLOCKS = ("conv3d", "tsm", "rubiks", "rubiks_iq", "rubiks_fused", "rubiks_xla")
LABELS = {"conv3d": "3D conv 3x3x3", "tsm": "TSM shift+3x3", "rubiks": "RubiksShift+1x1",
          "rubiks_iq": "RubiksShift-IQ+1x1", "rubiks_fused": "RubiksShift+1x1 fused",
          "rubiks_xla": "RubiksShift+1x1 (xla)"}
KERNEL_TAPS = {"conv3d": 27, "tsm": 9, "rubiks": 1, "rubiks_iq": 1, "rubiks_fused": 1,
               "rubiks_xla": 1}  # multiply-adds per C^2 per voxel
PALLAS_ONLY = ("rubiks_fused", "rubiks_xla")  # rows added when the shift runs on the Pallas kernels


@dataclass(frozen=True)
class Args:
    """Shift-block latency benchmark settings."""

    n: int | None = None
    """batch size N (default 8, or 2 with --quick)"""
    t: int | None = None
    """frames T (default 8)"""
    c: int | None = None
    """channels C, input and output of every block (default 72)"""
    h: int | None = None
    """height H (default 56, or 28 with --quick)"""
    w: int | None = None
    """width W (default 56, or 28 with --quick)"""
    impl: Literal["auto", "xla", "pallas"] = "auto"
    """shift implementation of the RubiksShift rows (auto: Pallas on a GPU, XLA elsewhere)"""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """input and convolution-kernel dtype"""
    repeats: int | None = None
    """timed calls per measurement (default 20, or 5 with --quick)"""
    warmup: int = 3
    """untimed calls after compilation, before the timed ones"""
    backward: bool = True
    """also time forward+backward (--no-backward: forward only)"""
    quick: bool = False
    """CPU smoke run: shape (2, 8, 72, 28, 28) and 5 repeats unless given explicitly"""
    seed: int = 0
    """random seed of the input and the parameters"""
    json: Path | None = None
    """write the results as JSON here"""


# --------------------------------------------------------------------------- timing


def _percentile(sorted_xs: list[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` in [0, 100] of an ascending list."""
    if len(sorted_xs) == 1:
        return sorted_xs[0]
    pos = (len(sorted_xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def measure(fn: Callable, *args, repeats: int, warmup: int) -> dict:
    """Compile ``fn`` for ``args`` ahead of time, warm up, then time ``repeats`` calls."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(*args))
    first_call_s = time.perf_counter() - start
    for _ in range(warmup):
        jax.block_until_ready(compiled(*args))
    times = []
    cpu_start = time.process_time()
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    cores = (time.process_time() - cpu_start) / sum(times)
    ms = sorted(1e3 * s for s in times)
    return dict(
        median_ms=statistics.median(ms), p10_ms=_percentile(ms, 10), p90_ms=_percentile(ms, 90),
        mean_ms=statistics.fmean(ms), std_ms=statistics.stdev(ms) if len(ms) > 1 else 0.0,
        min_ms=ms[0], times_ms=[1e3 * s for s in times], compile_s=compile_s, first_call_s=first_call_s,
        cores_busy=cores,
    ), out


# --------------------------------------------------------------------------- blocks


def make_block(name: str, channels: int, impl: str = "auto"):
    """``(module, apply kwargs)`` of a block (``impl``: the RubiksShift rows' implementation)."""
    if name == "conv3d":
        return Conv3DBlock(channels), {}
    if name == "tsm":
        return TSMBlock(channels), {}
    if name == "rubiks":
        return RubiksShiftLayer(channels, impl=impl), dict(quantize=False)
    if name == "rubiks_iq":
        return RubiksShiftLayer(channels, impl=impl), dict(quantize=True)
    if name == "rubiks_fused":
        return RubiksShiftLayer(channels, impl=impl, fused=True), dict(quantize=False)
    if name == "rubiks_xla":
        return RubiksShiftLayer(channels, impl="xla"), dict(quantize=False)
    raise ValueError(f"unknown block {name!r}; one of {list(BLOCKS)}")


def cast_params(params: Any, dtype) -> Any:
    """Convolution kernels to ``dtype``; ``"shift"`` leaves stay float32."""
    def cast(path, leaf):
        name = getattr(path[-1], "key", None)
        return leaf if name == "shift" else leaf.astype(dtype)
    return jax.tree_util.tree_map_with_path(cast, params)


def run_block(name: str, x: jax.Array, key: jax.Array, args: Args) -> dict:
    module, kwargs = make_block(name, x.shape[-1], args.impl)
    params = jax.jit(module.init)(key, x.astype(jnp.float32))["params"]
    params = cast_params(params, x.dtype)

    def forward(p, inp):
        return module.apply({"params": p}, inp, **kwargs)

    def loss(p, inp):
        return jnp.sum(forward(p, inp).astype(jnp.float32))

    fwd_bwd = jax.grad(loss, argnums=(0, 1))
    out: dict = dict(block=name, label=LABELS[name],
                     params=int(sum(v.size for v in jax.tree.leaves(params))))
    print(f"[{name}] forward ...", flush=True)
    res, y = measure(forward, params, x, repeats=args.repeats, warmup=args.warmup)
    assert y.shape == x.shape and y.dtype == x.dtype, (name, y.shape, y.dtype)
    out["fwd"] = res
    if args.backward:
        print(f"[{name}] forward+backward ...", flush=True)
        res, (_, gx) = measure(fwd_bwd, params, x, repeats=args.repeats, warmup=args.warmup)
        assert gx.shape == x.shape, (name, gx.shape)
        out["fwd_bwd"] = res
    print(f"[{name}] fwd {out['fwd']['median_ms']:.2f} ms"
          + (f", fwd+bwd {out['fwd_bwd']['median_ms']:.2f} ms" if args.backward else ""), flush=True)
    return out


def conv_gflop(name: str, shape: tuple[int, int, int, int, int]) -> float:
    """Analytic convolution FLOPs (2 per multiply-add) of the forward pass; shifts count zero."""
    n, t, c, h, w = shape
    return 2.0 * n * t * h * w * c * c * KERNEL_TAPS[name] / 1e9


# --------------------------------------------------------------------------- report


def _ratios(rows: dict[str, dict], phase: str) -> dict[str, float | None]:
    def med(b):
        return rows[b][phase]["median_ms"] if b in rows and phase in rows[b] else None

    rs, tsm, c3 = med("rubiks"), med("tsm"), med("conv3d")
    iq = med("rubiks_iq")
    return dict(
        rubiks_over_tsm=rs / tsm if rs and tsm else None,
        rubiks_over_conv3d=rs / c3 if rs and c3 else None,
        rubiks_iq_over_tsm=iq / tsm if iq and tsm else None,
        rubiks_iq_over_conv3d=iq / c3 if iq and c3 else None,
        tsm_over_conv3d=tsm / c3 if tsm and c3 else None,
    )


def _cell(r: dict | None) -> str:
    if r is None:
        return "-"
    return f"{r['median_ms']:.2f} [{r['p10_ms']:.2f}, {r['p90_ms']:.2f}]"


def _f(x: float | None, fmt: str = ".3f") -> str:
    return "-" if x is None else format(x, fmt)


def print_report(result: dict) -> None:
    args, rows = result["args"], {r["block"]: r for r in result["rows"]}
    shape = tuple(result["shape_ntchw"])
    print(f"\nShift-block latency, (N, T, C, H, W) = {shape}, {args['dtype']}, ms per call: median "
          f"[p10, p90] of {args['repeats']} after {args['warmup']} warm-up calls\n{result['device']}; "
          f"vasa {result['vasa_revision']}")
    cols = [("block", max(map(len, LABELS.values()))), ("fwd ms", 26), ("/TSM", 6), ("/3D", 6), ("fwd+bwd ms", 26), ("/TSM", 6),
            ("/3D", 6), ("compile s", 10), ("GFLOP", 7), ("Titan Xp ms", 11)]

    def fmt_row(cells) -> str:  # columns two spaces apart, so a wide cell never runs into its neighbour
        return "  ".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, (_, w)) in enumerate(zip(cells, cols)))

    header = fmt_row([name for name, _ in cols])
    line = "-" * len(header)
    print(line)
    print(header)
    print(line)
    for name in BLOCKS:
        if name not in rows:
            continue
        r = rows[name]
        cells = [r["label"]]
        for phase in ("fwd", "fwd_bwd"):
            p = r.get(phase)
            cells.append(_cell(p))
            tsm = rows.get("tsm", {}).get(phase)
            c3 = rows.get("conv3d", {}).get(phase)
            cells.append(_f(p["median_ms"] / tsm["median_ms"], ".3f") if p and tsm else "-")
            cells.append(_f(p["median_ms"] / c3["median_ms"], ".3f") if p and c3 else "-")
        comp = f"{r['fwd']['compile_s']:.1f}" + (f" / {r['fwd_bwd']['compile_s']:.1f}" if "fwd_bwd" in r else "")
        cells += [comp, f"{conv_gflop(name, shape):.2f}", _f(ANCHOR_MS.get(name), ".2f")]
        print(fmt_row(cells))
    print(line)
    print("/TSM, /3D: this row's median over the TSM / 3D-conv block's median in the same column. compile s: "
          "ahead-of-time\ncompile of fwd / fwd+bwd. GFLOP: the convolution's forward FLOPs (2 per multiply-add; "
          "shifts count zero).\nfwd+bwd: gradient of sum(output) w.r.t. parameters and input.")
    a = ANCHOR_MS
    anchor_tsm, anchor_c3 = a["rubiks"] / a["tsm"], a["rubiks"] / a["conv3d"]
    for phase, label in (("fwd", "forward"), ("fwd_bwd", "forward+backward")):
        rt = result["ratios"].get(phase)
        if not rt or rt["rubiks_over_tsm"] is None:
            continue
        verdict = lambda v, tgt: "PASS" if v <= tgt else "FAIL"  # noqa: E731
        print(f"RubiksShift / TSM     {label:>17}: {rt['rubiks_over_tsm']:.3f}  (target <= {TARGET_VS_TSM}: "
              f"{verdict(rt['rubiks_over_tsm'], TARGET_VS_TSM)}; Titan Xp anchor {anchor_tsm:.3f})")
        print(f"RubiksShift / 3D conv {label:>17}: {rt['rubiks_over_conv3d']:.3f}  (target <= {TARGET_VS_CONV3D}: "
              f"{verdict(rt['rubiks_over_conv3d'], TARGET_VS_CONV3D)}; Titan Xp anchor {anchor_c3:.3f})")
    print(f"Titan Xp anchors (Table 6.6, mean of 100 trials): 3D conv {a['conv3d']} ms, TSM {a['tsm']} ms, "
          f"RubiksShift {a['rubiks']} ms; TSM / 3D conv {a['tsm'] / a['conv3d']:.3f}. This run's TSM / 3D conv: "
          + ", ".join(f"{phase.replace('_', '+')} {_f(rt['tsm_over_conv3d'])}" for phase, rt in result["ratios"].items()))
    if result["platform"] == "cpu":
        busy = [r[p]["cores_busy"] for r in result["rows"] for p in ("fwd", "fwd_bwd") if p in r]
        print(f"cores busy while timed (process CPU time / wall time): {min(busy):.2f}-{max(busy):.2f}")


try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.<name>
    from _common import vasa_revision
except ImportError:
    from benchmarks._common import vasa_revision


def main(args: Args) -> dict:
    base = QUICK_SHAPE if args.quick else PAPER_SHAPE
    shape = tuple(v if v is not None else d for v, d in zip((args.n, args.t, args.c, args.h, args.w), base))
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 20)
    args = dataclasses.replace(args, n=shape[0], t=shape[1], c=shape[2], h=shape[3], w=shape[4], repeats=repeats)
    checks = [(f, getattr(args, f) >= 1, "an integer >= 1") for f in ("n", "t", "c", "h", "w", "repeats")]
    checks.append(("warmup", args.warmup >= 0, "an integer >= 0"))
    for field, ok, allowed in checks:
        if not ok:
            raise ValueError(f"{field}={getattr(args, field)!r} is not allowed: it must be {allowed}.")
    dev = jax.devices()[0]
    device = (f"{jax.device_count()} x {dev.platform}:{dev.device_kind}, {os.cpu_count()} CPU cores, "
              f"jax {jax.__version__}")
    revision = vasa_revision()
    dtype = jnp.dtype(args.dtype)
    n, t, c, h, w = shape
    key_x, key_p = jax.random.split(jax.random.PRNGKey(args.seed))
    x = jax.random.normal(key_x, (n, t, h, w, c), jnp.float32).astype(dtype)  # channels last
    start = time.perf_counter()
    from vasa.video.shift import resolve_impl

    blocks = [b for b in BLOCKS if b not in PALLAS_ONLY or resolve_impl(args.impl) == "pallas"]
    rows = [run_block(name, x, jax.random.fold_in(key_p, i), args) for i, name in enumerate(blocks)]
    by_name = {r["block"]: r for r in rows}
    ratios = {"fwd": _ratios(by_name, "fwd")}
    if args.backward:
        ratios["fwd_bwd"] = _ratios(by_name, "fwd_bwd")
    result = dict(
        date=datetime.date.today().isoformat(), device=device, platform=dev.platform,
        device_kind=dev.device_kind, vasa_revision=revision, shape_ntchw=list(shape),
        args={k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(args).items()},
        anchors_ms=ANCHOR_MS, targets=dict(rubiks_over_tsm=TARGET_VS_TSM, rubiks_over_conv3d=TARGET_VS_CONV3D),
        rows=rows, ratios=ratios,
    )
    print_report(result)
    print(f"total benchmark time {time.perf_counter() - start:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
