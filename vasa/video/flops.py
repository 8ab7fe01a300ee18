"""Analytic multiply-add and parameter counts for RubiksNet tiers and the TSM-ResNet baselines.

Counts follow the paper's protocol (section 6.5.3, after TSM): one multiply-add per weight
per output position for convolutions and dense layers, and the shift itself costs nothing
(it is an indexing pattern fused into the next 1x1 convolution). Computed from the
architecture table in ``vasa.video.rubiksnet``, not by tracing a model.

Returned keys (all per clip of ``num_frames`` frames at ``image_size``^2, integers):

- ``conv``: stem, 1x1 and shortcut convolutions (for TSM: every convolution);
- ``linear``: the classifier and the squeeze-excitation dense layers;
- ``elementwise``: one multiply-add per element for every BatchNorm (its fused scale and
  shift) and one multiply per element for the squeeze-excitation rescaling;
- ``total``: ``conv + linear + elementwise`` -- the figure compared with Table 6.1;
- ``shift``: 0, the paper's convention for the shift;
- ``shift_interp``: what the learnable shift's interpolation costs on top, reported apart:
  8 multiply-adds per output element for the trilinear 3-D shift, 4 for the bilinear 2-D
  shift, 0 once quantized (integer shifts are pure indexing), and for RubiksShift-AQ the
  bilinear spatial part plus one multiply-add per temporal attention tap (3) per
  input element;
- ``shift_elements``: number of shifted output elements (to re-cost with another rule).

Against Table 6.1 (174 classes, 8x224x224): tiny 3.74G (published 3.9G), small 6.58G
(6.8G), medium 11.00G (11.2G), large 15.44G (15.8G) -- 1.8-4.2% below. Convolutions and dense
layers alone give 3.70 / 6.51 / 10.93 / 15.35G. The published figures are reproduced to within
1.3% if every BatchNorm element is charged 5 operations (a training-mode normalisation count,
as some FLOP counters do); which counter the authors used is not stated, so the inference
convention above is kept.
"""

from __future__ import annotations

import math
from typing import Any

import jax

from vasa.video.rubiksnet import AQ_KERNEL, TIERS, TSM_LAYOUTS, VARIANTS, RubiksNetConfig

TSM_ARCHS = {f"tsm-resnet{d}": d for d in TSM_LAYOUTS}

# interpolation multiply-adds per shifted output element (AQ: its bilinear spatial part; its
# temporal attention adds AQ_KERNEL per *input* element, before the spatial stride)
_INTERP = {"rubiks3d": 8, "rubiks2d": 4, "rubiks3d-aq": 4}


def count_params(params: Any) -> int:
    """Number of scalars in a pytree of arrays or ``jax.ShapeDtypeStruct`` (e.g. from
    ``jax.eval_shape(model.init, ...)``); pass ``variables["params"]`` to leave out BatchNorm
    running statistics."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params))


def _strided(n: int, stride: int) -> int:
    return (n - 1) // stride + 1


def count_flops(
    arch: str | RubiksNetConfig,
    num_frames: int = 8,
    image_size: int = 224,
    num_classes: int = 174,
    variant: str = "rubiks3d",
    quantize: bool = False,
) -> dict[str, int]:
    """Multiply-adds of one clip ``[num_frames, image_size, image_size, 3]``.

    ``arch`` is a RubiksNet tier name (``"tiny"`` ... ``"large"``), a ``RubiksNetConfig``, or
    a baseline ``"tsm-resnet18" | "tsm-resnet34" | "tsm-resnet50"``. ``variant="rubiks2d"``
    counts the image network (``num_frames`` is then the number of images).

    Raises:
      ValueError: unknown ``arch`` or ``variant``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"count_flops variant={variant!r} is not one of {list(VARIANTS)}")
    if isinstance(arch, str):
        if arch in TSM_ARCHS:
            return _tsm_flops(TSM_ARCHS[arch], num_frames, image_size, num_classes)
        if arch not in TIERS:
            raise ValueError(f"count_flops arch={arch!r} is not one of {list(TIERS) + list(TSM_ARCHS)}")
        arch = TIERS[arch]
    cfg = arch
    conv = linear = elementwise = shifted = shift_inputs = 0
    s = _strided(image_size, 2)
    conv += 27 * cfg.width * s * s
    c_in = cfg.width
    for c_out, blocks, first_stride in cfg.stages():
        mid = int(c_out * cfg.expansion)
        for b in range(blocks):
            stride = first_stride if b == 0 else 1
            so = _strided(s, stride)
            elementwise += c_in * s * s + mid * s * s  # bn1, bn2
            conv += c_in * mid * s * s + mid * c_out * so * so  # conv1 at input size, conv2 after shift
            shifted += mid * so * so
            shift_inputs += mid * s * s
            if stride != 1 or c_in != c_out:
                conv += c_in * c_out * so * so
            if cfg.use_se:
                linear += 2 * mid * (mid // cfg.se_reduction)
                elementwise += mid * so * so
            c_in, s = c_out, so
    elementwise += c_in * s * s  # final BN
    linear += c_in * num_classes + num_classes
    per_frame = {"conv": conv, "linear": linear, "elementwise": elementwise}
    out = {k: v * num_frames for k, v in per_frame.items()}
    out["total"] = out["conv"] + out["linear"] + out["elementwise"]
    out["shift"] = 0
    out["shift_elements"] = shifted * num_frames
    if variant == "rubiks3d-aq":
        out["shift_interp"] = (_INTERP[variant] * shifted + AQ_KERNEL * shift_inputs) * num_frames
    else:
        out["shift_interp"] = 0 if quantize else _INTERP[variant] * out["shift_elements"]
    return out


def _tsm_flops(depth: int, num_frames: int, image_size: int, num_classes: int) -> dict[str, int]:
    """TSM-ResNet: every convolution and the classifier; post-conv BatchNorm folds into the
    convolution at inference, so ``elementwise`` is 0, and the temporal shift is free."""
    kind, repeats = TSM_LAYOUTS[depth]
    expansion = 1 if kind == "basic" else 4
    s = _strided(image_size, 2)
    conv = 3 * 49 * 64 * s * s
    s = _strided(s, 2)  # max-pool
    c_in = 64
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), repeats)):
        c_out = width * expansion
        for b in range(blocks):
            stride = 2 if (b == 0 and stage > 0) else 1
            so = _strided(s, stride)
            if kind == "basic":
                conv += 9 * c_in * width * so * so + 9 * width * width * so * so
            else:
                conv += c_in * width * s * s + 9 * width * width * so * so + width * c_out * so * so
            if stride != 1 or c_in != c_out:
                conv += c_in * c_out * so * so
            c_in, s = c_out, so
    linear = c_in * num_classes + num_classes
    out = {"conv": conv * num_frames, "linear": linear * num_frames, "elementwise": 0}
    out["total"] = out["conv"] + out["linear"]
    out.update(shift=0, shift_elements=0, shift_interp=0)
    return out
