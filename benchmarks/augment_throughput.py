"""SECANT's Combo1 strong augmentation: vasa (jitted JAX) against the same operators in NumPy.

Both sides augment the same ``uint8 [B, H, W, 3k]`` batch (default 256 x 84 x 84 x 9: DMC
frames, stacks of 3) with Combo1 = cutout-colour + random conv + mixup + crop, one operator
drawn uniformly per observation, the same draw for every frame of its stack, with the same
distributions (RAD cutout sides 10..30 px at 84 px; Xavier-normal 3x3 conv weights, zero
'same' padding, clipped; mixup ``alpha ~ U(0.2, 0.6)`` with one of ``--bank`` distractor images;
DrQ crop with pad 4), and return ``uint8`` of the same shape.

* ``vasa``: ``jax.jit(strong_augment)`` with ``StrongAugConfig()`` (Combo1), a new key per
  call. Under ``vmap`` the per-observation ``lax.switch`` evaluates every operator of the pool
  for every observation and selects, so the random conv runs on the whole batch.
* ``NumPy``: written as the authors' PyTorch code is (RAD's ``random_cutout_color`` and
  ``random_convolution`` loop over samples; mixup and crop are vectorised), in float32, each
  operator only on the observations that drew it.

Timing: the first call (compile) is not counted; ``--repeats`` rounds alternate the two sides
(vasa ended by ``block_until_ready``), medians are reported as batches/s and images/s, and
the ratio is vasa / NumPy (> 1: vasa is faster). ``--per-op`` also times each operator alone
on the whole batch.

Usage::

    python benchmarks/augment_throughput.py                  # 256 x 84 x 84 x 9, 10 rounds
    python benchmarks/augment_throughput.py --per-op --repeats 5
"""

from __future__ import annotations

import datetime
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import vasa_revision  # noqa: E402

from vasa.distill.augment import OPERATORS, StrongAugConfig, strong_augment  # noqa: E402

PAD = 4
SIDE = (10 / 84, 30 / 84)
ALPHA = (0.2, 0.6)
CONV_STD = math.sqrt(2 / (27 + 27))


@dataclass(frozen=True)
class Args:
    """Augmentation-throughput benchmark settings."""

    batch: int = 256
    """observations per batch"""
    size: int = 84
    """image height and width in pixels"""
    frames: int = 3
    """RGB frames per observation (channels = 3 x frames)"""
    bank: int = 100
    """distractor images in the mixup bank"""
    repeats: int = 10
    """timed rounds per side (medians reported)"""
    per_op: bool = False
    """also time each Combo1 operator alone on the whole batch"""
    seed: int = 0
    """random seed of the images, the bank and the draws"""
    json: str | None = None
    """write the figures to this JSON file"""


# ----------------------------------------------------------------------------- NumPy operators
# x: float32 [n, H, W, k, 3] in 0..255 (a view of the observations that drew the operator).


def np_cutout_color(rng, x):
    """RAD's random_cutout_color: a per-sample loop, one colour per channel, every frame."""
    n, h, w = x.shape[:3]
    for i in range(n):
        bh, bw = (rng.integers(int(SIDE[0] * s + 0.5), int(SIDE[1] * s + 0.5) + 1) for s in (h, w))
        y0, x0 = rng.integers(0, h - bh + 1), rng.integers(0, w - bw + 1)
        x[i, y0:y0 + bh, x0:x0 + bw] = rng.random(3, dtype=np.float32) * 255
    return x


def np_random_conv(rng, x):
    """RAD's random_convolution: a per-sample loop, one Xavier-normal 3x3 kernel per sample
    applied to every frame (im2col + matmul per sample), zero padding, clipped."""
    n, h, w = x.shape[:3]
    out = np.empty_like(x)
    for i in range(n):
        kernel = rng.normal(0, CONV_STD, (27, 3)).astype(np.float32)
        p = np.pad(x[i], ((1, 1), (1, 1), (0, 0), (0, 0)))
        taps = np.concatenate([p[a:a + h, b:b + w] for a in range(3) for b in range(3)], axis=-1)
        out[i] = np.clip(taps @ kernel, 0, 255)
    return out


def np_mixup(rng, x, bank):
    """Vectorised: alpha * o + (1 - alpha) * bank[j], one alpha and j per sample."""
    n = x.shape[0]
    alpha = rng.uniform(*ALPHA, n).astype(np.float32)[:, None, None, None, None]
    return alpha * x + (1 - alpha) * bank[rng.integers(0, len(bank), n)][:, :, :, None, :]


def np_crop(rng, x):
    """Vectorised edge-padded random shift (fancy indexing of clipped rows and columns)."""
    n, h, w = x.shape[:3]
    off = rng.integers(0, 2 * PAD + 1, (n, 2))
    rows = np.clip(np.arange(h)[None] + off[:, :1] - PAD, 0, h - 1)
    cols = np.clip(np.arange(w)[None] + off[:, 1:] - PAD, 0, w - 1)
    return x[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def np_combo1(rng, images, bank):
    """Combo1 on ``uint8 [B, H, W, 3k]`` -> same, one operator per observation."""
    b, h, w, c = images.shape
    x = images.astype(np.float32).reshape(b, h, w, c // 3, 3)
    choice = rng.integers(0, 4, b)
    for op, fn in enumerate((np_cutout_color, np_random_conv, lambda r, v: np_mixup(r, v, bank), np_crop)):
        idx = np.flatnonzero(choice == op)
        if len(idx):
            x[idx] = fn(rng, x[idx])
    return np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(images.shape)


def np_single(op, rng, images, bank):
    b, h, w, c = images.shape
    x = images.astype(np.float32).reshape(b, h, w, c // 3, 3)
    fn = {"cutout_color": np_cutout_color, "conv": np_random_conv, "mixup": lambda r, v: np_mixup(r, v, bank),
          "crop": np_crop}[op]
    return np.clip(np.round(fn(rng, x)), 0, 255).astype(np.uint8).reshape(images.shape)


# ----------------------------------------------------------------------------- timing


def race(vasa_fn, numpy_fn, repeats: int) -> tuple[float, float]:
    """Median seconds per call of each, rounds alternating; the first vasa call compiles."""
    vasa_fn(0).block_until_ready()
    numpy_fn(0)
    t_vasa, t_numpy = [], []
    for r in range(1, repeats + 1):
        t = time.perf_counter()
        vasa_fn(r).block_until_ready()
        t_vasa.append(time.perf_counter() - t)
        t = time.perf_counter()
        numpy_fn(r)
        t_numpy.append(time.perf_counter() - t)
    return statistics.median(t_vasa), statistics.median(t_numpy)


def main(args: Args) -> dict:
    rng = np.random.default_rng(args.seed)
    shape = (args.batch, args.size, args.size, 3 * args.frames)
    images_np = rng.integers(0, 256, shape, dtype=np.uint8)
    bank_np = rng.integers(0, 256, (args.bank, args.size, args.size, 3), dtype=np.uint8)
    images, bank = jnp.asarray(images_np), jnp.asarray(bank_np)
    bank_f32 = bank_np.astype(np.float32)
    config = StrongAugConfig()
    key = jax.random.key(args.seed)

    print(f"SECANT Combo1 {config.ops}: batch {shape} uint8, bank {args.bank}, {jax.devices()[0].device_kind}, "
          f"jax {jax.__version__}, numpy {np.__version__}, vasa {vasa_revision()}")
    combo = jax.jit(lambda k, x, b: strong_augment(k, x, config, b))
    rows = []

    def report(name, t_vasa, t_numpy):
        row = {"name": name, "vasa_batches_per_s": 1 / t_vasa, "numpy_batches_per_s": 1 / t_numpy,
               "vasa_images_per_s": args.batch / t_vasa, "numpy_images_per_s": args.batch / t_numpy,
               "ratio": t_numpy / t_vasa}
        rows.append(row)
        print(f"{name:14s} vasa {row['vasa_batches_per_s']:8.2f} batches/s ({row['vasa_images_per_s']:9.0f} images/s)"
              f"   NumPy {row['numpy_batches_per_s']:8.2f} batches/s ({row['numpy_images_per_s']:9.0f} images/s)"
              f"   vasa/NumPy {row['ratio']:.2f}")

    report("combo1", *race(lambda r: combo(jax.random.fold_in(key, r), images, bank),
                           lambda r: np_combo1(np.random.default_rng(r), images_np, bank_f32), args.repeats))
    if args.per_op:
        for op in config.ops:
            fn = jax.jit(lambda k, x, b, op=op: OPERATORS[op](k, x, config, b))
            report(op, *race(lambda r: fn(jax.random.fold_in(key, r), images, bank),
                             lambda r: np_single(op, np.random.default_rng(r), images_np, bank_f32), args.repeats))
    result = {"date": datetime.date.today().isoformat(), "device": jax.devices()[0].device_kind,
              "vasa": vasa_revision(), "args": asdict(args), "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(tyro.cli(Args))
