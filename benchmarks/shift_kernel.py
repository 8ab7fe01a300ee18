"""RubiksShift kernel benchmark: Pallas (Triton) vs the XLA reference vs a depthwise 3x3x3 conv.

The op is the interpolated per-channel 3-D shift ``rubiks_shift_3d`` on ``x [N, T, C, H, W]``
with a ``[3, C]`` shift (stride 1 or 2, no padding). It is timed at the paper's shape
``(N, T, C, H, W) = (8, 8, 72, 56, 56)`` (Table 6.6) and at every distinct shift-layer shape of
RubiksNet-small for ``N = 8`` clips of ``8 x 224 x 224``. The layer shapes are derived from
``vasa.video.rubiksnet.TIERS["small"].stages()`` (3x3 stride-2 stem: stage 0 sees 112x112; the
first block of a stage shifts the block's input resolution with the stage's stride, the others
the reduced resolution with stride 1; the shift acts on ``features * expansion`` channels) and
cross-checked against a shape-only trace of the model; the list is printed with the number of
the model's 17 shift layers that have each shape (the paper shape is also stage 1's later
blocks).

Implementations, each on its natural layout (any transpose happens outside the timed function):

* ``pallas``: ``pallas_kernels.rubiks_shift.rubiks_shift_3d(interpret=False)`` (``--block``,
  ``--tile``, ``--num-warps`` passed on; default: the kernel's own ``choose_block``);
* ``xla``: ``vasa.video.shift.rubiks_shift_3d(impl="xla")``, the separable-gather reference;
* ``conv3d-dw``: a depthwise 3x3x3 ``lax.conv_general_dilated`` (``feature_group_count=C``,
  padding SAME, spatial stride as the shift) on ``[N, C, T, H, W]`` with an ``[C, 1, 3, 3, 3]``
  kernel (cuDNN on a GPU): the dense alternative a shift replaces, for scale.

Shifts are drawn from U[-1, 1], so every channel is fractionally shifted in all three axes (8
corners per output). For each implementation two jitted functions are timed: ``fwd`` (the
output) and ``fwd+bwd``: ``jax.vjp`` at a fixed random cotangent ``ct``, returning the output
and the gradients with respect to the input and the shift (conv: the kernel), i.e. the gradient
of ``sum(y * ct)`` plus ``y`` itself (returning ``y`` keeps the forward pass from being
dead-code eliminated, as it would be under ``jax.grad``). Each function is compiled ahead of
time (``jit(...).lower(...).compile()``, the ``compile s`` column), called ``--warmup`` times
untimed (each ended by ``jax.block_until_ready``), then timed as ``--repeats`` samples; a
sample is ``K`` calls dispatched back to back and blocked on once, divided by ``K`` (the
``calls`` column; ``K`` is chosen from the warm-up calls for ~2 ms per sample, at most 50, so a
~35 us kernel is not dominated by a host round trip per call; ``--calls-per-sample 1`` times
every call on its own). Tables give the median and the 10th/90th percentiles of the samples in
ms per call (the JSON also has every sample, mean and std). The training step is timed one
blocked call per sample.

Bytes-moved model (the compulsory traffic of a shift; the same for every implementation, so
GB/s is a rescaled time): ``fwd = |x| + |y|`` (read the input once, write the output once);
``fwd+bwd = 3|x| + 2|y|``: the forward's ``|x| + |y|``, then the backward reads the cotangent
``|y|``, writes the input gradient ``|x|`` and re-reads ``x`` (``|x|``) for the shift gradient
(a ``[3, C]`` reduction). ``|.|`` is in bytes of ``--dtype``; the ``[3, C]`` parameters are
negligible. The Pallas backward is two kernels that each read the cotangent, so its real
traffic is ``3|x| + 3|y|``; the model is what an ideal fused kernel would move. ``% BW`` is the
achieved bytes per second over the device's memory bandwidth, detected from
``jax.devices()[0].device_kind`` (H100 SXM 3.35 TB/s, H100 PCIe 2.0, H100 NVL 3.9, H200 4.8,
A100 80GB 2.0, A100 40GB 1.555; ``--bandwidth-tbs`` overrides; "n/a" otherwise, e.g. on a CPU).
At the paper shape in float32 ``fwd`` moves 2 x 57.8 MB, so the floor on an H100 is ~35 us.

Targets (issue): Pallas ``fwd`` >= 70% of the memory bandwidth; ``fwd+bwd`` >= 3x faster than
the XLA reference (``xla / pallas``); a RubiksNet-small training step faster with Pallas than
with XLA. The ratio lines also give ``conv3d-dw / pallas`` (> 1: the shift is faster) and the
sum over the model's 17 shift layers (each layer shape times its count).

Training step: RubiksNet-small (``rubiksnet("small", 174, impl=...)``), forward + backward +
SGD-momentum update (optax, lr 0.01, momentum 0.9; softmax cross-entropy; BatchNorm in train
mode), one jitted program with the state donated, on ``--train-batch`` clips of
``8 x 224 x 224`` float32, ``impl="xla"`` vs ``impl="pallas"`` from the same initial parameters;
median step time and ``xla / pallas``. The Pallas model uses the kernel's default tiles.

Without a GPU the Pallas kernels only run in Pallas's interpret mode (correct, very slow), so
full-size Pallas rows are skipped with a notice. ``--quick`` is a CPU smoke run: shapes
``(1, 4, 16, 14, 14)`` stride 1 and 2, 5 repeats, and a tiny training step (``RubiksNet(width
16, repeats (1, 1, 1, 1))`` on 1 x 4 x 32 x 32); on a CPU it times the interpret path, labels
those rows ``pallas (interpret)`` and leaves them out of every ratio and target. Each timed
Pallas output is also compared with the XLA reference (max abs difference of ``y``, the input
gradient and the shift gradient).

``--sweep`` (GPU only) times the paper shape for ``choose_block`` tiles 1024/2048/4096 x
``num_warps`` 2/4/8 and prints the best; ``--lower-only`` (debug, any machine) exports the
non-interpret Pallas ``fwd`` and ``fwd+bwd`` of every shape and a Pallas RubiksNet-small
training step for ``platforms=["cuda"]`` with ``jax.export`` and exits, so a CPU session can
check that the GPU path traces and lowers.

Usage::

    python benchmarks/shift_kernel.py                          # GPU: all shapes + training step
    python benchmarks/shift_kernel.py --quick                  # CPU smoke (interpret-mode Pallas)
    python benchmarks/shift_kernel.py --sweep --paper-only --no-train-step
    python benchmarks/shift_kernel.py --dtype bfloat16 --json out.json
    python benchmarks/shift_kernel.py --block 1,16,64 --num-warps 8 --paper-only
    python benchmarks/shift_kernel.py --lower-only             # check the Triton lowering on a CPU
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import tyro

import pallas_kernels.rubiks_shift as pk
import vasa.video.rubiksnet as rn
from vasa.video import shift as vshift

try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.<name>
    from _common import vasa_revision
except ImportError:
    from benchmarks._common import vasa_revision

PAPER_SHAPE = (8, 8, 72, 56, 56)  # (N, T, C, H, W), Table 6.6
QUICK_SHAPES = ((1, 4, 16, 14, 14, 1), (1, 4, 16, 14, 14, 2))  # (N, T, C, H, W, stride)
IMPLS = ("pallas", "xla", "conv3d-dw")
TARGET_FWD_BW = 0.70  # Pallas forward, fraction of the memory bandwidth
TARGET_FWDBWD_SPEEDUP = 3.0  # xla / pallas, forward+backward
SWEEP_TILES = (1024, 2048, 4096)
SWEEP_WARPS = (2, 4, 8)
TRITON_CALL = "__gpu$xla.gpu.triton"
SAMPLE_TARGET_S = 2e-3  # auto --calls-per-sample: back-to-back calls per timed sample, up to
MAX_CALLS = 50  # this many (bounds the outputs in flight)


@dataclass(frozen=True)
class Args:
    """RubiksShift kernel benchmark settings."""

    dtype: Literal["float32", "bfloat16"] = "float32"
    """dtype of x (and of the conv kernel); shifts stay float32"""
    repeats: int | None = None
    """timed calls per measurement (default 20, or 5 with --quick)"""
    warmup: int = 3
    """untimed calls after compilation, before the timed ones"""
    calls_per_sample: int | None = None
    """kernel timings: calls dispatched back to back per timed sample, blocked on once (sample = time / calls);
    default: enough for ~2 ms per sample, at most 50; 1 = a host round trip per call. Training step: always 1"""
    quick: bool = False
    """CPU smoke run: two tiny shapes, 5 repeats, a tiny training step; times interpret-mode Pallas on a CPU"""
    impls: tuple[Literal["pallas", "xla", "conv3d-dw"], ...] = IMPLS
    """implementations to time"""
    backward: bool = True
    """also time forward+backward (--no-backward: forward only)"""
    paper_only: bool = False
    """only the paper shape (8, 8, 72, 56, 56), not the RubiksNet-small layer shapes"""
    tier: Literal["tiny", "small", "medium", "large"] = "small"
    """RubiksNet tier whose shift-layer shapes (and training step) are benchmarked"""
    clips: int = 8
    """N of the layer shapes (clips of the training batch they come from)"""
    frames: int = 8
    """T: frames per clip (layer shapes and training step)"""
    resolution: int = 224
    """input height = width of the clips the layer shapes come from"""
    train_step: bool = True
    """time a RubiksNet training step, impl='xla' vs 'pallas' (--no-train-step: skip)"""
    train_batch: int | None = None
    """clips per training step (default 8, or 1 with --quick)"""
    num_classes: int = 174
    """classes of the training step's classifier (Something-Something-v2)"""
    block: str | None = None
    """Pallas tile override "BC,BH,BW" (powers of two), for every shape and all three kernels"""
    tile: int | None = None
    """Pallas tile size in elements: block = choose_block(C, H_out, W_out, tile), used by all three kernels
    (the adjoint then tiles the input plane with it too); ignored with --block"""
    num_warps: int = 4
    """Triton warps per Pallas program"""
    sweep: bool = False
    """GPU: time the paper shape for tiles 1024/2048/4096 x num_warps 2/4/8 and print the best"""
    bandwidth_tbs: float | None = None
    """device memory bandwidth in TB/s (default: detected from the device kind)"""
    seed: int = 0
    """random seed of the inputs, shifts, cotangents and parameters"""
    json: Path | None = None
    """write the results as JSON here"""
    out_dir: Path | None = None
    """also write shift_kernel.json here (default: $OUT when that is set)"""
    lower_only: bool = False
    """debug: export the non-interpret Pallas functions of every shape for CUDA (no run) and exit"""


@dataclass(frozen=True)
class Shape:
    n: int
    t: int
    c: int
    h: int
    w: int
    stride: int

    @property
    def x(self) -> tuple[int, int, int, int, int]:
        return (self.n, self.t, self.c, self.h, self.w)

    @property
    def out_hw(self) -> tuple[int, int]:
        return (self.h - 1) // self.stride + 1, (self.w - 1) // self.stride + 1

    @property
    def y(self) -> tuple[int, int, int, int, int]:
        return (self.n, self.t, self.c) + self.out_hw

    def __str__(self) -> str:
        return f"({self.n}, {self.t}, {self.c}, {self.h}, {self.w}) s{self.stride}"


# --------------------------------------------------------------------------- shapes


def layer_shapes(cfg: rn.RubiksNetConfig, n: int, t: int, resolution: int) -> list[tuple[str, Shape]]:
    """``(name, shape)`` of every shift layer of a RubiksNet with config ``cfg``, in order."""
    h = (resolution + 2 - 3) // 2 + 1  # 3x3 stride-2 stem, padding 1
    out = []
    for s, (features, blocks, first_stride) in enumerate(cfg.stages()):
        mid = int(features * cfg.expansion)
        for b in range(blocks):
            stride = first_stride if b == 0 else 1
            out.append((f"stage{s}_block{b}", Shape(n, t, mid, h, h, stride)))
            h = (h - 1) // stride + 1
    return out


def traced_layer_shapes(model: rn.RubiksNet, video_shape: tuple[int, ...]) -> list[Shape]:
    """The shapes ``model``'s shift calls see, from a shape-only trace (``jax.eval_shape``)."""
    seen = []
    original = rn.rubiks_shift_3d

    def spy(x, shift, *, stride=1, padding=0, **kw):
        seen.append(Shape(*x.shape, stride))
        return original(x, shift, stride=stride, padding=padding, **kw)

    rn.rubiks_shift_3d = spy
    try:
        jax.eval_shape(lambda v: model.init(jax.random.PRNGKey(0), v), jax.ShapeDtypeStruct(video_shape, jnp.float32))
    finally:
        rn.rubiks_shift_3d = original
    return seen


def benchmark_shapes(args: Args) -> list[dict]:
    """Distinct shapes with their labels and layer counts (paper shape first)."""
    if args.quick:
        return [dict(shape=Shape(*s), labels=["quick"], layers=0) for s in QUICK_SHAPES]
    entries: dict[Shape, dict] = {}
    paper = Shape(*PAPER_SHAPE, 1)
    entries[paper] = dict(shape=paper, labels=["paper"], layers=0)
    if args.paper_only:
        return list(entries.values())
    cfg = rn.tier_config(args.tier)
    layers = layer_shapes(cfg, args.clips, args.frames, args.resolution)
    model = rn.rubiksnet(args.tier, args.num_classes, num_frames=args.frames, impl="xla")
    traced = traced_layer_shapes(model, (args.clips, args.frames, args.resolution, args.resolution, 3))
    if traced != [s for _, s in layers]:
        print(f"WARNING: shapes derived from TIERS[{args.tier!r}].stages() differ from a trace of the model:\n"
              f"  derived {[str(s) for _, s in layers]}\n  traced  {[str(s) for s in traced]}")
    else:
        print(f"({len(layers)} shift layers derived from TIERS[{args.tier!r}].stages(); "
              "they match a trace of the model)")
    for name, shape in layers:
        e = entries.setdefault(shape, dict(shape=shape, labels=[], layers=0))
        e["labels"].append(name)
        e["layers"] += 1
    return list(entries.values())


def _compact_labels(labels: list[str]) -> str:
    """``stage1_block1, stage1_block2`` -> ``stage1 b1-2``."""
    out, groups = [], {}
    for lab in labels:
        m = re.fullmatch(r"stage(\d+)_block(\d+)", lab)
        if m:
            groups.setdefault(int(m[1]), []).append(int(m[2]))
        else:
            out.append(lab)
    for s, bs in groups.items():
        out.append(f"stage{s} b{bs[0]}" + (f"-{bs[-1]}" if len(bs) > 1 else ""))
    return ", ".join(out)


# --------------------------------------------------------------------------- device


def device_bandwidth(kind: str) -> float | None:
    """Memory bandwidth in bytes/s of a device kind (None when unknown)."""
    k = kind.upper()
    if "H200" in k:
        return 4.8e12
    if "H100" in k:
        return 2.0e12 if "PCIE" in k else 3.9e12 if "NVL" in k else 3.35e12
    if "A100" in k:
        return 2.0e12 if "80GB" in k else 1.555e12
    return None


# --------------------------------------------------------------------------- timing


def _stats(times_s: list[float]) -> dict:
    ms = sorted(1e3 * s for s in times_s)
    deciles = statistics.quantiles(ms, n=10, method="inclusive") if len(ms) > 1 else [ms[0]] * 9
    return dict(median_ms=statistics.median(ms), p10_ms=deciles[0], p90_ms=deciles[-1],
                mean_ms=statistics.fmean(ms), std_ms=statistics.stdev(ms) if len(ms) > 1 else 0.0,
                min_ms=ms[0], times_ms=[1e3 * s for s in times_s])


def time_calls(call: Callable[[], object], *, repeats: int, warmup: int, calls: int | None = 1) -> dict:
    """Time ``call()`` (already compiled) after ``warmup`` untimed calls: ``repeats`` samples, each
    ``calls`` calls dispatched back to back and blocked on once, divided by ``calls``.

    ``calls=None`` picks enough calls for ~``SAMPLE_TARGET_S`` per sample (at most ``MAX_CALLS``)
    from the warm-up calls, so that short kernels are timed back to back on the device rather than
    with a host round trip per call.
    """
    single = []
    for _ in range(max(warmup, 1 if calls is None else 0)):
        start = time.perf_counter()
        jax.block_until_ready(call())
        single.append(time.perf_counter() - start)
    if calls is None:
        calls = max(1, min(MAX_CALLS, math.ceil(SAMPLE_TARGET_S / max(statistics.median(single), 1e-9))))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = None
        for _ in range(calls):
            out = call()
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / calls)
    return dict(_stats(times), calls_per_sample=calls)


def measure(fn: Callable, *inputs, repeats: int, warmup: int, calls: int | None) -> tuple[dict, object]:
    """AOT-compile ``jit(fn)`` for ``inputs``, then time it; returns ``(stats, first output)``."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*inputs).compile()
    compile_s = time.perf_counter() - start
    out = jax.block_until_ready(compiled(*inputs))
    stats = time_calls(lambda: compiled(*inputs), repeats=repeats, warmup=warmup, calls=calls)
    return dict(stats, compile_s=compile_s), out


# --------------------------------------------------------------------------- implementations


def parse_block(text: str | None) -> pk.Block | None:
    if text is None:
        return None
    try:
        bc, bh, bw = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--block={text!r} must be three integers 'BC,BH,BW'") from None
    return pk.Block(bc, bh, bw)


def pallas_block(args: Args, shape: Shape) -> pk.Block | None:
    """``--block``, else ``choose_block`` of the output plane at ``--tile``, else None (kernel default)."""
    if args.block is not None:
        return parse_block(args.block)
    if args.tile is not None:
        return pk.choose_block(shape.c, *shape.out_hw, tile=args.tile)
    return None


def make_impl(name: str, shape: Shape, *, interpret: bool, block: pk.Block | None, num_warps: int):
    """``(f(x, param), x layout transform, param maker)`` of one implementation."""
    s = shape.stride
    if name == "pallas":
        def f(x, p):
            return pk.rubiks_shift_3d(x, p, stride=s, interpret=interpret, block=block, num_warps=num_warps)
    elif name == "xla":
        def f(x, p):
            return vshift.rubiks_shift_3d(x, p, stride=s, impl="xla")
    elif name == "conv3d-dw":
        def f(x, k):  # x [N, C, T, H, W], k [C, 1, 3, 3, 3]
            return jax.lax.conv_general_dilated(x, k, window_strides=(1, s, s), padding="SAME",
                                                dimension_numbers=("NCDHW", "OIDHW", "NCDHW"),
                                                feature_group_count=x.shape[1])
    else:
        raise ValueError(f"unknown implementation {name!r}; one of {list(IMPLS)}")
    return f


def fwd_bwd_of(f: Callable) -> Callable:
    """``(x, p, ct) -> (y, dx, dp)``: the gradient of ``sum(f(x, p) * ct)`` plus ``y``."""
    def fb(x, p, ct):
        y, vjp = jax.vjp(f, x, p)
        dx, dp = vjp(ct)
        return y, dx, dp
    return fb


def make_inputs(name: str, shape: Shape, dtype, key) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``(x, param, cotangent)`` in the implementation's layout (transposed here, not timed)."""
    kx, kp, kc = jax.random.split(key, 3)
    x = jax.random.normal(kx, shape.x, jnp.float32).astype(dtype)
    ct = jax.random.normal(kc, shape.y, jnp.float32).astype(dtype)
    if name == "conv3d-dw":
        k = (jax.random.normal(kp, (shape.c, 1, 3, 3, 3), jnp.float32) / np.sqrt(27)).astype(dtype)
        return x.transpose(0, 2, 1, 3, 4), k, ct.transpose(0, 2, 1, 3, 4)
    shift = jax.random.uniform(kp, (3, shape.c), jnp.float32, -1.0, 1.0)
    return x, shift, ct


def nbytes(shape: Shape, dtype) -> dict[str, int]:
    item = jnp.dtype(dtype).itemsize
    x, y = int(np.prod(shape.x)) * item, int(np.prod(shape.y)) * item
    return dict(x=x, y=y, fwd=x + y, fwd_bwd=3 * x + 2 * y)


def _rate(stats: dict, nbytes_: int, bandwidth: float | None) -> None:
    gbps = nbytes_ / (stats["median_ms"] * 1e-3) / 1e9
    stats["gb_per_s"] = gbps
    stats["bandwidth_fraction"] = gbps * 1e9 / bandwidth if bandwidth else None


def _diff(a, b) -> dict:
    """Max abs difference of ``a`` from the reference ``b``, absolute and relative to ``max |b|``."""
    a, b = a.astype(jnp.float32), b.astype(jnp.float32)
    d = float(jnp.max(jnp.abs(a - b)))
    return dict(max_abs=d, max_rel=d / max(float(jnp.max(jnp.abs(b))), 1e-30))


def run_shape(entry: dict, args: Args, key, *, bandwidth: float | None, gpu: bool) -> dict:
    shape: Shape = entry["shape"]
    dtype = jnp.dtype(args.dtype)
    b = nbytes(shape, dtype)
    block = pallas_block(args, shape)
    row = dict(shape_ntchw=list(shape.x), stride=shape.stride, out_hw=list(shape.out_hw), labels=entry["labels"],
               layers=entry["layers"], bytes=b, pallas_block=dataclasses.asdict(block) if block else None,
               impls={}, check={})
    outputs = {}
    for name in args.impls:
        interpret = False
        label = name
        if name == "pallas" and not gpu:
            if not args.quick:
                print(f"  [{shape}] pallas: skipped -- Pallas timing needs a GPU (only interpret mode runs here)")
                row["impls"][name] = dict(label=name, skipped="needs a GPU")
                continue
            interpret, label = True, "pallas (interpret)"
        f = make_impl(name, shape, interpret=interpret, block=block, num_warps=args.num_warps)
        x, p, ct = make_inputs(name, shape, dtype, key)
        res = dict(label=label, interpret=interpret)
        print(f"  [{shape}] {label} fwd ...", flush=True)
        res["fwd"], y = measure(f, x, p, repeats=args.repeats, warmup=args.warmup, calls=args.calls_per_sample)
        _rate(res["fwd"], b["fwd"], bandwidth)
        outs = dict(y=y)
        if args.backward:
            print(f"  [{shape}] {label} fwd+bwd ...", flush=True)
            res["fwd_bwd"], (_, dx, dp) = measure(fwd_bwd_of(f), x, p, ct, repeats=args.repeats,
                                                  warmup=args.warmup, calls=args.calls_per_sample)
            _rate(res["fwd_bwd"], b["fwd_bwd"], bandwidth)
            outs.update(dx=dx, dp=dp)
        row["impls"][name] = res
        if name in ("pallas", "xla"):
            outputs[name] = outs
        del x, p, ct, y
    if "pallas" in outputs and "xla" in outputs:
        row["check"] = {k: _diff(outputs["pallas"][k], outputs["xla"][k]) for k in outputs["pallas"]
                        if k in outputs["xla"]}
    row["ratios"] = shape_ratios(row, gpu)
    return row


def shape_ratios(row: dict, gpu: bool) -> dict:
    """``xla/pallas``, ``conv3d-dw/pallas`` per phase and Pallas's bandwidth fraction (None off a GPU)."""
    def med(name, phase):
        r = row["impls"].get(name, {})
        if name == "pallas" and (r.get("interpret") or not gpu):
            return None
        return r.get(phase, {}).get("median_ms")

    out = {}
    for phase in ("fwd", "fwd_bwd"):
        pal, xla, conv = med("pallas", phase), med("xla", phase), med("conv3d-dw", phase)
        out[f"xla_over_pallas_{phase}"] = xla / pal if xla and pal else None
        out[f"conv3d_dw_over_pallas_{phase}"] = conv / pal if conv and pal else None
        out[f"xla_over_conv3d_dw_{phase}"] = xla / conv if xla and conv else None
        pr = row["impls"].get("pallas", {}).get(phase)
        out[f"pallas_bandwidth_fraction_{phase}"] = pr.get("bandwidth_fraction") if pr and pal else None
    return out


# --------------------------------------------------------------------------- training step


def make_train_model(args: Args, impl: str) -> rn.RubiksNet:
    if args.quick:
        return rn.RubiksNet(width=16, repeats=(1, 1, 1, 1), num_classes=args.num_classes, num_frames=args.frames,
                            use_se=True, impl=impl)
    return rn.rubiksnet(args.tier, args.num_classes, num_frames=args.frames, impl=impl)


def run_train_step(args: Args, key, *, gpu: bool) -> dict:
    res_hw = 32 if args.quick else args.resolution
    batch = args.train_batch
    kx, ky, kp = jax.random.split(key, 3)
    video = jax.random.normal(kx, (batch, args.frames, res_hw, res_hw, 3), jnp.float32)
    labels = jax.random.randint(ky, (batch,), 0, args.num_classes)
    init_model = make_train_model(args, "xla")
    # initial parameters, shared by both implementations; the init program is not timed, so on a CPU it
    # is compiled without backend optimisation (~2.5x faster to compile; values equal to within 1 ulp)
    options = {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None
    variables = jax.jit(init_model.init).lower(kp, video).compile(options)(kp, video)
    tx = optax.sgd(0.01, momentum=0.9)
    n_params = int(sum(v.size for v in jax.tree.leaves(variables["params"])))
    out = dict(model="RubiksNet(width=16, repeats=(1,1,1,1), SE)" if args.quick else f"rubiksnet({args.tier!r})",
               video_shape=list(video.shape), num_classes=args.num_classes, params=n_params,
               optimizer="optax.sgd(0.01, momentum=0.9)", impls={})
    for impl in ("xla", "pallas"):
        label = impl
        if impl == "pallas" and not gpu:
            if not args.quick:
                print("  [train step] pallas: skipped -- Pallas timing needs a GPU")
                out["impls"][impl] = dict(label=impl, skipped="needs a GPU")
                continue
            label = "pallas (interpret)"
        model = make_train_model(args, impl)

        def step(state, x, y, model=model):
            params, stats, opt = state

            def loss_fn(p):
                logits, upd = model.apply({"params": p, "batch_stats": stats}, x, train=True,
                                          mutable=["batch_stats"])
                return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), upd["batch_stats"]

            (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
            updates, opt = tx.update(grads, opt, params)
            return (optax.apply_updates(params, updates), stats, opt), loss

        # a fresh copy per implementation (the step donates its state)
        state = jax.tree.map(jnp.copy, (variables["params"], variables["batch_stats"], tx.init(variables["params"])))
        print(f"  [train step] {label}: compile ...", flush=True)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pk.InterpretModeWarning)
            compiled = jax.jit(step, donate_argnums=0).lower(state, video, labels).compile()
        compile_s = time.perf_counter() - start
        holder = [state]
        losses = []

        def call():
            holder[0], loss = compiled(holder[0], video, labels)
            losses.append(loss)
            return holder[0], loss

        print(f"  [train step] {label}: timing ...", flush=True)
        stats = time_calls(call, repeats=args.repeats, warmup=args.warmup, calls=1)
        stats.update(compile_s=compile_s, clips_per_s=batch / (stats["median_ms"] * 1e-3),
                     first_loss=float(losses[0]), last_loss=float(losses[-1]))
        out["impls"][impl] = dict(label=label, interpret=impl == "pallas" and not gpu, step=stats)
        holder[0] = state = None  # free the donated state before the next model
    x_ms = out["impls"].get("xla", {}).get("step", {}).get("median_ms")
    p = out["impls"].get("pallas", {})
    p_ms = p.get("step", {}).get("median_ms") if gpu and not p.get("interpret") else None
    out["xla_over_pallas"] = x_ms / p_ms if x_ms and p_ms else None
    return out


# --------------------------------------------------------------------------- sweep


def run_sweep(args: Args, key, *, bandwidth: float | None) -> dict:
    shape = Shape(*PAPER_SHAPE, 1)
    dtype = jnp.dtype(args.dtype)
    b = nbytes(shape, dtype)
    x, p, ct = make_inputs("pallas", shape, dtype, key)
    rows = []
    for tile in SWEEP_TILES:
        block = pk.choose_block(shape.c, *shape.out_hw, tile=tile)
        for warps in SWEEP_WARPS:
            f = make_impl("pallas", shape, interpret=False, block=block, num_warps=warps)
            row = dict(tile=tile, num_warps=warps, block=dataclasses.asdict(block))
            try:
                row["fwd"], _ = measure(f, x, p, repeats=args.repeats, warmup=args.warmup,
                                        calls=args.calls_per_sample)
                _rate(row["fwd"], b["fwd"], bandwidth)
                if args.backward:
                    row["fwd_bwd"], _ = measure(fwd_bwd_of(f), x, p, ct, repeats=args.repeats,
                                                warmup=args.warmup, calls=args.calls_per_sample)
                    _rate(row["fwd_bwd"], b["fwd_bwd"], bandwidth)
            except Exception as e:  # a tile/warps combination Triton cannot compile is a result too
                row["error"] = f"{type(e).__name__}: {str(e)[:200]}"
            print(f"  sweep tile {tile:5d} warps {warps}: block {block.channels}x{block.rows}x{block.cols}: "
                  + (row["error"] if "error" in row else
                     f"fwd {row['fwd']['median_ms']:.4f} ms" + (f", fwd+bwd {row['fwd_bwd']['median_ms']:.4f} ms"
                                                              if "fwd_bwd" in row else "")), flush=True)
            rows.append(row)
    best = {}
    for phase in ("fwd", "fwd_bwd"):
        ok = [r for r in rows if phase in r]
        if ok:
            r = min(ok, key=lambda r: r[phase]["median_ms"])
            best[phase] = dict(tile=r["tile"], num_warps=r["num_warps"], block=r["block"],
                               median_ms=r[phase]["median_ms"], bandwidth_fraction=r[phase]["bandwidth_fraction"])
    return dict(shape_ntchw=list(shape.x), rows=rows, best=best)


# --------------------------------------------------------------------------- lower-only


def lower_only(args: Args, shapes: list[dict]) -> dict:
    """Export the non-interpret Pallas functions for CUDA (lowering only, nothing runs)."""
    dtype = jnp.dtype(args.dtype)
    checks = [jax.export.DisabledSafetyCheck.custom_call(TRITON_CALL)]
    result = {}

    def export(fn, *avals):
        start = time.perf_counter()
        exp = jax.export.export(jax.jit(fn), platforms=["cuda"], disabled_checks=checks)(*avals)
        text = exp.mlir_module()
        return dict(triton_calls=text.count(TRITON_CALL), mlir_chars=len(text),
                    out_shapes=[list(a.shape) for a in exp.out_avals], seconds=time.perf_counter() - start)

    ok = True
    for entry in shapes:
        shape = entry["shape"]
        f = make_impl("pallas", shape, interpret=False, block=pallas_block(args, shape), num_warps=args.num_warps)
        x = jax.ShapeDtypeStruct(shape.x, dtype)
        p = jax.ShapeDtypeStruct((3, shape.c), jnp.float32)
        ct = jax.ShapeDtypeStruct(shape.y, dtype)
        r = {}
        for phase, fn, avals, want in (("fwd", f, (x, p), 1), ("fwd_bwd", fwd_bwd_of(f), (x, p, ct), 3)):
            try:
                r[phase] = export(fn, *avals)
                r[phase]["ok"] = r[phase]["triton_calls"] == want
            except Exception as e:
                r[phase] = dict(ok=False, error=f"{type(e).__name__}: {e}")
            ok &= r[phase]["ok"]
        result[str(shape)] = r
        print(f"  {str(shape):34s} out {shape.out_hw}: " + "; ".join(
            f"{ph} " + (f"{v['triton_calls']} triton call(s), {v['seconds']:.1f} s" if "error" not in v else v["error"])
            + ("" if v["ok"] else " (UNEXPECTED)") for ph, v in r.items()), flush=True)
    if args.train_step:
        # the model reaches the kernels through vasa.video.shift with interpret=None, which picks
        # interpret mode off a GPU: pretend a GPU is there while tracing, so the Triton path lowers
        batch = args.train_batch
        res_hw = 32 if args.quick else args.resolution
        model = make_train_model(args, "pallas")
        video = jax.ShapeDtypeStruct((batch, args.frames, res_hw, res_hw, 3), jnp.float32)
        labels = jax.ShapeDtypeStruct((batch,), jnp.int32)
        variables = jax.eval_shape(make_train_model(args, "xla").init, jax.random.PRNGKey(0), video)

        def step(params, stats, x, y):
            def loss_fn(p):
                logits, upd = model.apply({"params": p, "batch_stats": stats}, x, train=True, mutable=["batch_stats"])
                return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), upd
            return jax.value_and_grad(loss_fn, has_aux=True)(params)

        original = pk.gpu_available
        pk.gpu_available = lambda: True
        try:
            r = export(step, variables["params"], variables["batch_stats"], video, labels)
            n_layers = sum(b for _, b, _ in rn.RubiksNetConfig(16, (1, 1, 1, 1)).stages()) if args.quick else \
                sum(b for _, b, _ in rn.tier_config(args.tier).stages())
            r["ok"] = r["triton_calls"] == 3 * n_layers
            r["expected_triton_calls"] = 3 * n_layers
        except Exception as e:
            r = dict(ok=False, error=f"{type(e).__name__}: {e}")
        finally:
            pk.gpu_available = original
        ok &= r["ok"]
        result["train_step"] = r
        print(f"  train step {tuple(video.shape)}: " + (
            f"{r['triton_calls']} triton call(s) (expected {r['expected_triton_calls']}: 3 per shift layer), "
            f"{r['seconds']:.1f} s" if "error" not in r else r["error"]) + ("" if r["ok"] else " (UNEXPECTED)"))
    result["ok"] = bool(ok)
    print("lower-only: " + ("all Pallas functions export for CUDA with the expected Triton calls" if ok
                            else "SOME EXPORTS FAILED or had unexpected Triton call counts"))
    return result


# --------------------------------------------------------------------------- report


def _cell(r: dict | None) -> str:
    if not r:
        return "-"
    return f"{r['median_ms']:.4f} [{r['p10_ms']:.4f}, {r['p90_ms']:.4f}]"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def _gbps(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.3f}"


def _x(v: float | None, na: str = "n/a") -> str:
    return na if v is None else f"{v:.2f}x"


def print_report(result: dict) -> None:
    args = result["args"]
    gpu = result["gpu"]
    bw = result["bandwidth_bytes_per_s"]
    print(f"\nRubiksShift kernel benchmark, {args['dtype']}, ms per call: median [p10, p90] of {args['repeats']} "
          f"samples after {args['warmup']} warm-up calls; a sample = 'calls' back-to-back calls / calls\n"
          f"{result['device']}; memory bandwidth "
          f"{'n/a' if bw is None else f'{bw / 1e12:.2f} TB/s'}; vasa {result['vasa_revision']}; {result['date']}")
    print("bytes model: fwd = |x| + |y|, fwd+bwd = 3|x| + 2|y|; GB/s = bytes / median; % BW = GB/s / bandwidth")
    cols = [("impl", 18), ("fwd ms", 30), ("GB/s", 7), ("% BW", 6), ("fwd+bwd ms", 30), ("GB/s", 7), ("% BW", 6),
            ("calls", 7), ("compile s", 11)]

    def fmt(cells) -> str:
        return "  ".join(f"{c:>{w}}" if i else f"{c:<{w}}" for i, (c, (_, w)) in enumerate(zip(cells, cols)))

    header = fmt([c for c, _ in cols])
    line = "-" * len(header)
    for row in result["rows"]:
        shape = Shape(*row["shape_ntchw"], row["stride"])
        mb = row["bytes"]
        where = _compact_labels(row["labels"]) + (f"; {row['layers']} layer(s)" if row["layers"] else "")
        print(f"\n{shape} -> out {tuple(row['out_hw'])}  [{where}]  |x| {mb['x'] / 1e6:.2f} MB, |y| "
              f"{mb['y'] / 1e6:.2f} MB" + (f", pallas block {tuple(row['pallas_block'].values())}"
                                          if row["pallas_block"] else ""))
        print(line)
        print(header)
        print(line)
        for name, r in row["impls"].items():
            if "skipped" in r:
                print(fmt([r["label"], f"skipped: {r['skipped']}", "", "", "", "", "", "", ""]))
                continue
            fwd, fb = r.get("fwd"), r.get("fwd_bwd")
            cells = [r["label"], _cell(fwd), _gbps(fwd['gb_per_s']), _pct(fwd["bandwidth_fraction"]), _cell(fb),
                     _gbps(fb['gb_per_s']) if fb else "-", _pct(fb["bandwidth_fraction"]) if fb else "-",
                     f"{fwd['calls_per_sample']}" + (f"/{fb['calls_per_sample']}" if fb else ""),
                     f"{fwd['compile_s']:.1f}" + (f" / {fb['compile_s']:.1f}" if fb else "")]
            print(fmt(cells))
        print(line)
        rt = row["ratios"]
        na = "n/a on CPU" if not gpu else "n/a"
        print(f"  pallas fwd % BW: {_pct(rt['pallas_bandwidth_fraction_fwd']) if gpu else na} "
              f"(target >= {100 * TARGET_FWD_BW:.0f}%)")
        print(f"  xla / pallas:       fwd {_x(rt['xla_over_pallas_fwd'], na)}, fwd+bwd "
              f"{_x(rt['xla_over_pallas_fwd_bwd'], na)} (target >= {TARGET_FWDBWD_SPEEDUP:.0f}x)")
        print(f"  conv3d-dw / pallas: fwd {_x(rt['conv3d_dw_over_pallas_fwd'], na)}, fwd+bwd "
              f"{_x(rt['conv3d_dw_over_pallas_fwd_bwd'], na)}   (xla / conv3d-dw: fwd "
              f"{_x(rt['xla_over_conv3d_dw_fwd'])}, fwd+bwd {_x(rt['xla_over_conv3d_dw_fwd_bwd'])})")
        if row["check"]:
            print("  check, max |pallas - xla| / max |xla|: "
                  + ", ".join(f"{k} {v['max_rel']:.1e}" for k, v in row["check"].items())
                  + ("  (the XLA reference rounds to bfloat16 between its passes; Pallas accumulates in float32)"
                     if args["dtype"] == "bfloat16" else ""))
    totals = result.get("model_totals")
    if totals:
        print(f"\nAll {totals['layers']} shift layers of RubiksNet-{args['tier']} (N={args['clips']}, "
              f"T={args['frames']}, {args['resolution']}x{args['resolution']}), sum of medians x layer count:")
        for phase in ("fwd", "fwd_bwd"):
            per = totals[phase]
            if not per:
                continue
            pal, xla, conv = per.get("pallas"), per.get("xla"), per.get("conv3d-dw")
            print(f"  {phase.replace('_', '+'):8s}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in per.items())
                  + (f"; xla/pallas {xla / pal:.2f}x" if pal and xla else "")
                  + (f"; conv3d-dw/pallas {conv / pal:.2f}x" if pal and conv else ""))
    sweep = result.get("sweep")
    if sweep and sweep.get("best"):
        for phase, bst in sweep["best"].items():
            print(f"sweep best {phase.replace('_', '+')} at the paper shape: tile {bst['tile']}, num_warps "
                  f"{bst['num_warps']} (block {tuple(bst['block'].values())}): {bst['median_ms']:.4f} ms, "
                  f"{_pct(bst['bandwidth_fraction'])} BW")
    ts = result.get("train_step")
    if ts:
        print(f"\nTraining step: {ts['model']}, {ts['params']:,} params, video {tuple(ts['video_shape'])}, "
              f"{ts['num_classes']} classes, {ts['optimizer']}, state donated")
        for impl, r in ts["impls"].items():
            if "skipped" in r:
                print(f"  {r['label']:20s} skipped: {r['skipped']}")
                continue
            s = r["step"]
            print(f"  {r['label']:20s} {_cell(s)} ms, {s['clips_per_s']:.1f} clips/s, compile {s['compile_s']:.1f} s,"
                  f" loss {s['first_loss']:.3f} -> {s['last_loss']:.3f}")
        print(f"  xla / pallas step time: {_x(ts['xla_over_pallas'], 'n/a on CPU' if not gpu else 'n/a')} "
              f"(target > 1)")
    tg = result["targets"]
    print("\nTargets" + (" (paper shape)" if tg["shape"] else "") + ":")
    if not gpu:
        print("  all n/a on CPU: Pallas timing needs a GPU (interpret-mode rows are correctness smoke only)")
        return
    verdict = lambda ok: "-" if ok is None else ("PASS" if ok else "FAIL")  # noqa: E731
    print(f"  Pallas fwd >= {100 * TARGET_FWD_BW:.0f}% of bandwidth: {_pct(tg['pallas_fwd_bandwidth_fraction'])} "
          f"{verdict(tg['fwd_bandwidth_ok'])}")
    print(f"  fwd+bwd xla/pallas >= {TARGET_FWDBWD_SPEEDUP:.0f}x: {_x(tg['xla_over_pallas_fwd_bwd'])} "
          f"{verdict(tg['fwd_bwd_speedup_ok'])}")
    print(f"  training step pallas faster than xla: {_x(tg['train_xla_over_pallas'])} {verdict(tg['train_ok'])}")


def model_totals(rows: list[dict], impls) -> dict | None:
    """Per phase and implementation: sum over layer shapes of median x layer count."""
    counted = [r for r in rows if r["layers"]]
    if not counted:
        return None
    out = dict(layers=sum(r["layers"] for r in counted))
    for phase in ("fwd", "fwd_bwd"):
        per = {}
        for name in impls:
            meds = [r["impls"].get(name, {}).get(phase, {}).get("median_ms") for r in counted]
            if all(m is not None for m in meds) and not any(r["impls"][name].get("interpret") for r in counted):
                per[name] = sum(m * r["layers"] for m, r in zip(meds, counted))
        out[phase] = per
    return out


def targets(rows: list[dict], train: dict | None, gpu: bool) -> dict:
    paper = next((r for r in rows if "paper" in r["labels"]), None)
    rt = paper["ratios"] if paper and gpu else {}
    frac = rt.get("pallas_bandwidth_fraction_fwd")
    speed = rt.get("xla_over_pallas_fwd_bwd")
    tr = train.get("xla_over_pallas") if train and gpu else None
    return dict(shape=PAPER_SHAPE if paper else None, pallas_fwd_bandwidth_fraction=frac,
                fwd_bandwidth_ok=None if frac is None else frac >= TARGET_FWD_BW,
                xla_over_pallas_fwd_bwd=speed,
                fwd_bwd_speedup_ok=None if speed is None else speed >= TARGET_FWDBWD_SPEEDUP,
                train_xla_over_pallas=tr, train_ok=None if tr is None else tr > 1.0)


# --------------------------------------------------------------------------- main


def main(args: Args) -> dict:
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 20)
    train_batch = args.train_batch if args.train_batch is not None else (1 if args.quick else 8)
    frames = 4 if args.quick and args.frames == 8 else args.frames
    args = dataclasses.replace(args, repeats=repeats, train_batch=train_batch, frames=frames)
    for field, ok, allowed in (("repeats", args.repeats >= 1, ">= 1"), ("warmup", args.warmup >= 0, ">= 0"),
                               ("train_batch", args.train_batch >= 1, ">= 1"), ("frames", args.frames >= 1, ">= 1"),
                               ("clips", args.clips >= 1, ">= 1"), ("num_warps", args.num_warps >= 1, ">= 1")):
        if not ok:
            raise ValueError(f"{field}={getattr(args, field)!r} is not allowed: it must be an integer {allowed}.")
    parse_block(args.block)  # fail early on a malformed --block
    dev = jax.devices()[0]
    gpu = pk.gpu_available()
    device = (f"{jax.device_count()} x {dev.platform}:{dev.device_kind}, {os.cpu_count()} CPU cores, "
              f"jax {jax.__version__}")
    bandwidth = args.bandwidth_tbs * 1e12 if args.bandwidth_tbs else device_bandwidth(dev.device_kind)
    print(f"{device}; memory bandwidth {'n/a' if bandwidth is None else f'{bandwidth / 1e12:.2f} TB/s'}")
    shapes = benchmark_shapes(args)
    print(f"{len(shapes)} distinct shapes (N, T, C, H, W) stride:")
    for e in shapes:
        s = e["shape"]
        print(f"  {str(s):34s} -> out {s.out_hw}  " + _compact_labels(e["labels"])
              + (f"  ({e['layers']} layer(s))" if e["layers"] else ""))
    if args.lower_only:
        return dict(lower_only=lower_only(args, shapes))
    if not gpu:
        print("NOTE: no GPU -- Pallas timing needs a GPU; "
              + ("Pallas rows run in interpret mode (correctness smoke, not timings) and are left out of the ratios"
                 if args.quick else
                 "Pallas rows and the Pallas training step are skipped (use --quick for a CPU smoke)"))
    key = jax.random.PRNGKey(args.seed)
    start = time.perf_counter()
    sweep = None
    if args.sweep:
        if gpu:
            print("sweep at the paper shape ...", flush=True)
            sweep = run_sweep(args, jax.random.fold_in(key, 1000), bandwidth=bandwidth)
        else:
            print("sweep: skipped -- Pallas timing needs a GPU")
    rows = []
    for i, e in enumerate(shapes):
        rows.append(run_shape(e, args, jax.random.fold_in(key, i), bandwidth=bandwidth, gpu=gpu))
    train = run_train_step(args, jax.random.fold_in(key, 2000), gpu=gpu) if args.train_step else None
    result = dict(
        date=datetime.date.today().isoformat(), device=device, platform=dev.platform, device_kind=dev.device_kind,
        jax_version=jax.__version__, vasa_revision=vasa_revision(), gpu=gpu, bandwidth_bytes_per_s=bandwidth,
        args={k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(args).items()},
        bytes_model=dict(fwd="|x| + |y|", fwd_bwd="3|x| + 2|y|"),
        targets_spec=dict(pallas_fwd_bandwidth_fraction=TARGET_FWD_BW, xla_over_pallas_fwd_bwd=TARGET_FWDBWD_SPEEDUP,
                          train_xla_over_pallas="> 1"),
        rows=rows, model_totals=None if args.quick else model_totals(rows, args.impls), sweep=sweep,
        train_step=train, targets=targets(rows, train, gpu),
    )
    print_report(result)
    print(f"total benchmark time {time.perf_counter() - start:.0f} s")
    paths = [args.json] if args.json else []
    out_dir = args.out_dir or (Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths.append(out_dir / "shift_kernel.json")
    for path in paths:
        path.write_text(json.dumps(result, indent=2))
        print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
