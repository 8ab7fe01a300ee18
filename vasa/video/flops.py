"""Analytic operation and parameter counts for RubiksNet tiers and the TSM-ResNet baselines.

Counts follow the default rules of thop (``pytorch-OpCounter``, version 0.1.1), whose count
of the released PyTorch models reproduces the published figures, applied to the architecture
table in ``vasa.video.rubiksnet`` (not by tracing a model):

- convolution: ``k_h * k_w * C_in / groups`` per output element (a multiply-add is one
  operation; bias adds are not counted, and these models have no convolution bias);
- dense layer: ``in_features`` per output element (bias not counted);
- BatchNorm: 4 per *input* element (thop's 2 for the normalisation, doubled for the affine
  scale and shift), counted although an inference graph would fold it into the convolution;
- adaptive average pooling (squeeze-excitation and the final global pool): ``window + 1`` per
  output element (the adds and one division); max pooling: 0;
- ReLU, sigmoid, the squeeze-excitation rescaling, residual adds: 0 (thop charges nothing for
  them: ReLU is a zero-op rule, the others have no rule or are not modules);
- the shift itself: 0 (thop has no rule for it; the paper's convention: an indexing pattern
  fused into the next 1x1 convolution).

Returned keys (all per clip of ``num_frames`` frames at ``image_size``^2, integers):

- ``conv``, ``linear`` (classifier and squeeze-excitation), ``norm`` (BatchNorm), ``pool``:
  the terms above;
- ``total``: ``conv + linear + norm + pool`` -- the figure compared with Table 6.1;
- ``shift``: 0, the convention for the shift;
- ``shift_interp``: what the learnable shift's interpolation costs on top, reported apart:
  8 multiply-adds per output element for the trilinear 3-D shift, 4 for the bilinear 2-D
  shift, 0 once quantized (integer shifts are pure indexing), and for RubiksShift-AQ the
  bilinear spatial part plus one multiply-add per temporal attention tap (3) per element of
  the block input, where the attention acts;
- ``shift_elements``: number of shifted output elements (to re-cost with another rule).

Against Table 6.1 (174 classes, 8x224x224): tiny 3.865G (published 3.9G), small 6.752G (6.8G),
medium 11.214G (11.2G), large 15.712G (15.8G): 0.1-0.9% from the published figures, and the
same, to the digits reported, as thop run on the released PyTorch models (3.865 / 6.752 /
11.214 / 15.712G). Convolutions and dense layers alone give 3.69 / 6.51 / 10.93 / 15.35G; the
rest is BatchNorm (4 x 0.043 / 0.057 / 0.072 / 0.091G elements) and pooling (0.0002 / 0.020 /
0.0002 / 0.0002G). TSM-ResNet-18 / 34 / 50 under the same rules: 14.6 / 29.4 / 33.1G
(published 14.6 / 29.4 / 33G).
"""

from __future__ import annotations

import math
from typing import Any

import jax

from vasa.video.rubiksnet import AQ_KERNEL, TIERS, TSM_LAYOUTS, VARIANTS, RubiksNetConfig

TSM_ARCHS = {f"tsm-resnet{d}": d for d in TSM_LAYOUTS}

# interpolation multiply-adds per shifted output element (AQ: its bilinear spatial part; its
# temporal attention adds AQ_KERNEL per element of the block input)
_INTERP = {"rubiks3d": 8, "rubiks2d": 4, "rubiks3d-aq": 4}
_BN = 4  # thop: 2 per element for the normalisation, x2 for the affine scale and shift


def _adaptive_pool(window: int, outputs: int) -> int:
    """thop's adaptive average pool: ``window`` adds and one division per output element."""
    return (window + 1) * outputs


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
    """Operations of one clip ``[num_frames, image_size, image_size, 3]`` (thop's rules, see the
    module docstring).

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
    conv = linear = norm = pool = shifted = aq_inputs = 0
    s = _strided(image_size, 2)
    conv += 27 * cfg.width * s * s
    c_in = cfg.width
    for c_out, blocks, first_stride in cfg.stages():
        mid = int(c_out * cfg.expansion)
        for b in range(blocks):
            stride = first_stride if b == 0 else 1
            so = _strided(s, stride)
            norm += _BN * (c_in * s * s + mid * s * s)  # bn1, bn2
            conv += c_in * mid * s * s + mid * c_out * so * so  # conv1 at input size, conv2 after shift
            shifted += mid * so * so
            aq_inputs += c_in * s * s  # AQ's temporal attention acts on the block input
            if stride != 1 or c_in != c_out:
                conv += c_in * c_out * so * so
            if cfg.use_se:
                linear += 2 * mid * (mid // cfg.se_reduction)
                pool += _adaptive_pool(so * so, mid)
            c_in, s = c_out, so
    norm += _BN * c_in * s * s  # final BN
    pool += _adaptive_pool(s * s, c_in)
    linear += c_in * num_classes
    per_frame = {"conv": conv, "linear": linear, "norm": norm, "pool": pool}
    out = {k: v * num_frames for k, v in per_frame.items()}
    out["total"] = sum(out[k] for k in per_frame)
    out["shift"] = 0
    out["shift_elements"] = shifted * num_frames
    if variant == "rubiks3d-aq":
        out["shift_interp"] = (_INTERP[variant] * shifted + AQ_KERNEL * aq_inputs) * num_frames
    else:
        out["shift_interp"] = 0 if quantize else _INTERP[variant] * out["shift_elements"]
    return out


def _tsm_flops(depth: int, num_frames: int, image_size: int, num_classes: int) -> dict[str, int]:
    """TSM-ResNet under the same rules: every convolution, a BatchNorm after each, the
    max-pool (0), the global pool and the classifier; the temporal shift is free."""
    kind, repeats = TSM_LAYOUTS[depth]
    expansion = 1 if kind == "basic" else 4
    s = _strided(image_size, 2)
    conv = 3 * 49 * 64 * s * s
    norm = _BN * 64 * s * s
    s = _strided(s, 2)  # max-pool
    c_in = 64
    for stage, (width, blocks) in enumerate(zip((64, 128, 256, 512), repeats)):
        c_out = width * expansion
        for b in range(blocks):
            stride = 2 if (b == 0 and stage > 0) else 1
            so = _strided(s, stride)
            if kind == "basic":
                conv += 9 * c_in * width * so * so + 9 * width * width * so * so
                norm += _BN * 2 * width * so * so
            else:
                conv += c_in * width * s * s + 9 * width * width * so * so + width * c_out * so * so
                norm += _BN * (width * s * s + width * so * so + c_out * so * so)
            if stride != 1 or c_in != c_out:
                conv += c_in * c_out * so * so
                norm += _BN * c_out * so * so
            c_in, s = c_out, so
    per_frame = {"conv": conv, "linear": c_in * num_classes, "norm": norm, "pool": _adaptive_pool(s * s, c_in)}
    out = {k: v * num_frames for k, v in per_frame.items()}
    out["total"] = sum(out[k] for k in per_frame)
    out.update(shift=0, shift_elements=0, shift_interp=0)
    return out
