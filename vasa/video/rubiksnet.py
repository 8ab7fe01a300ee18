"""RubiksNet (Fan et al., ECCV 2020): a ResNet-like video network whose every spatial and
spatiotemporal convolution is replaced by a learnable 3-D shift plus 1x1 convolutions.

Layout. Videos are ``[N, T, H, W, 3]`` float32 (channels last, as flax convolutions are);
the 2-D parts process the ``N*T`` frames as one batch of images, and the shift op, which
works on ``[N, T, C, H, W]``, is wrapped in a transpose. Logits are computed per frame and
averaged over the ``T`` frames: ``[N, num_classes]``.

Architecture (the dissertation, section 6.3.5, fixes the residual-shift position, the
pre-activation ResNet shape, the tier depths/widths and the published size; the rest is
chosen to reproduce Table 6.1's parameter counts and FLOPs, see ``vasa.video.flops``, and
agrees with the authors' released PyTorch code: inner width, where the stride happens, the
stage-0 block after the stem, the SE design and the shortcut):

- stem: 3x3 stride-2 convolution, 3 -> w channels, no bias (224 -> 112);
- stage 0: one block at width w, stride 1 (112x112) -- a shift block, not pooling;
- stages 1-4: ``repeats`` blocks at widths w, 2w, 4w, 8w, the first of each with stride 2
  (56, 28, 14, 7);
- final BN -> ReLU -> global average pool -> dense classifier (with bias) per frame;
- ``RubiksBlock`` (pre-activation): BN -> ReLU -> 1x1 conv (c_in -> c_mid) -> BN -> ReLU ->
  RubiksShift (stride s, no padding, so H_out = ceil(H / s)) -> optional squeeze-excitation
  -> 1x1 conv (c_mid -> c_out), plus the shortcut: identity, or -- when the stride or the
  width changes -- a strided 1x1 conv (no BN) applied to the *pre-activated* input.
  The inner width c_mid equals c_out (expansion 1); the stride happens in the shift, so the
  first 1x1 conv runs at the input resolution.
- squeeze-excitation (small tier only): global average pool -> dense c/12 (no bias) ->
  ReLU -> dense c (no bias) -> sigmoid, scaling the shifted features.

Tiers: tiny = width 54, blocks 3-4-6-3; small = 72, 3-4-6-3 with SE; medium = 72, 3-4-23-3;
large = 72, 3-8-36-3. At 174 classes they have 1.899M / 3.597M / 6.186M / 8.538M parameters
(published: 1.9M / 3.6M / 6.2M / 8.5M); FLOPs are in ``vasa.video.flops``.

Variants: ``"rubiks3d"`` has one ``"shift"`` parameter ``[3, C]`` per block (rows: temporal,
vertical, horizontal; interpolated, or rounded with ``quantize=True``); ``"rubiks3d-aq"``
(RubiksShift-AQ, the softmax temperature given at call time) has, as the released code,
temporal attention logits ``"aq_weights"`` ``[3, C_in]`` (initialised U[0, 1)) applied to the
pre-activated block input before the first 1x1 conv (the shortcut branches off before it),
and a spatial ``"shift"`` ``[2, C]`` at the shift position. At 174 classes the AQ tiers have
1.904M / 3.604M / 6.203M / 8.564M parameters, the released AQ models' trainable count (their
``parameters()`` add one frozen temperature scalar per block). ``"rubiks2d"`` is the image
network (``[N, H, W, 3]`` -> ``[N, num_classes]``, ``"shift"`` ``[2, C]``) used for ImageNet
spatial pretraining, which ``inflate_2d_to_3d`` turns into ``"rubiks3d"`` parameters.

Baselines: ``tsm_resnet`` (TSM, Lin et al. 2019: ResNet-18/34/50 with a residual temporal
shift of 1/8 + 1/8 channels before each residual branch) and, for the efficiency study of
section 6.5.3 (Table 6.6), three layers at matching channels: ``Conv3DBlock`` (3x3x3 conv),
``TSMBlock`` (temporal shift + 3x3 conv) and ``RubiksShiftLayer`` (3-D shift + 1x1 conv).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vasa.run.fields import PosFloat, PosInt, check_fields
from vasa.video.shift import (
    resolve_impl,
    rubiks_shift_2d,
    rubiks_shift_3d,
    rubiks_shift_pointwise,
    temporal_shift,
)
from vasa.video.shift_aq import aq_attention, aq_hard_attention, aq_init, aq_temporal_shift

VARIANTS = ("rubiks3d", "rubiks3d-aq", "rubiks2d")
TEMPORAL_INITS = ("tsm", "uniform")
TSM_DEPTHS = (18, 34, 50)
AQ_KERNEL = 3  # temporal attention over shifts {-1, 0, +1}


@dataclasses.dataclass(frozen=True)
class RubiksNetConfig:
    """One row of the architecture table: stem/stage-0 width ``w``, blocks per stage 1-4."""

    width: PosInt
    repeats: tuple[PosInt, PosInt, PosInt, PosInt]
    use_se: bool = False
    se_reduction: PosInt = 12
    expansion: PosFloat = 1.0

    def validate(self) -> RubiksNetConfig:
        """Check every field (type, finiteness, range); returns ``self``."""
        check_fields(self)
        return self

    def stages(self) -> tuple[tuple[int, int, int], ...]:
        """``(out_channels, blocks, first_stride)`` for stages 0-4."""
        w = self.width
        return ((w, 1, 1),) + tuple((m * w, r, 2) for m, r in zip((1, 2, 4, 8), self.repeats))


TIERS: dict[str, RubiksNetConfig] = {
    "tiny": RubiksNetConfig(width=54, repeats=(3, 4, 6, 3)),
    "small": RubiksNetConfig(width=72, repeats=(3, 4, 6, 3), use_se=True),
    "medium": RubiksNetConfig(width=72, repeats=(3, 4, 23, 3)),
    "large": RubiksNetConfig(width=72, repeats=(3, 8, 36, 3)),
}

# Table 6.1 (Something-Something-v2, 174 classes, one 8x224x224 clip)
PUBLISHED = {
    "tiny": {"params": 1.9e6, "flops": 3.9e9},
    "small": {"params": 3.6e6, "flops": 6.8e9},
    "medium": {"params": 6.2e6, "flops": 11.2e9},
    "large": {"params": 8.5e6, "flops": 15.8e9},
}


def tier_config(tier: str) -> RubiksNetConfig:
    if tier not in TIERS:
        raise ValueError(f"RubiksNet tier={tier!r} is not one of {list(TIERS)}")
    return TIERS[tier]


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"RubiksNet variant={variant!r} is not one of {list(VARIANTS)}")


def _batch_norm(train: bool, name: str) -> nn.BatchNorm:
    # PyTorch defaults (momentum 0.1, eps 1e-5), as the published models were trained with.
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, name=name)


# He-normal over fan-out, the published initialisation of every convolution.
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def _frames_to_video(x: jax.Array, num_frames: int) -> jax.Array:
    """``[N*T, H, W, C]`` -> ``[N, T, C, H, W]`` (the shift ops' layout)."""
    nt, h, w, c = x.shape
    return x.reshape(nt // num_frames, num_frames, h, w, c).transpose(0, 1, 4, 2, 3)


def _video_to_frames(x: jax.Array) -> jax.Array:
    """``[N, T, C, H, W]`` -> ``[N*T, H, W, C]``."""
    n, t, c, h, w = x.shape
    return x.transpose(0, 1, 3, 4, 2).reshape(n * t, h, w, c)


class SqueezeExcite(nn.Module):
    """``[B, H, W, C]`` -> same: channels scaled by sigmoid(W2 relu(W1 mean_hw(x))), no biases."""

    reduction: int = 12

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c = x.shape[-1]
        y = jnp.mean(x, axis=(1, 2))
        y = nn.relu(nn.Dense(c // self.reduction, use_bias=False, name="reduce")(y))
        y = nn.sigmoid(nn.Dense(c, use_bias=False, name="expand")(y))
        return x * y[:, None, None, :]


class RubiksBlock(nn.Module):
    """Pre-activation RubiksShift residual block on frames ``[N*T, H, W, C_in]`` float32.

    Returns ``[N*T, ceil(H/stride), ceil(W/stride), features]``. ``variant="rubiks2d"`` takes
    images ``[N, H, W, C_in]`` and ignores ``num_frames``. ``"rubiks3d-aq"`` puts the temporal
    attention shift (``"aq_weights"`` ``[3, C_in]``) on the pre-activated block input, after the
    shortcut has branched off and before ``conv1``, as the released code does
    (``conv2 = Sequential(AttentionShift, conv2)`` there), and shifts spatially at the shift
    position (``"shift"`` ``[2, C_mid]``, interpolated).
    ``integer_shift_grad``: the shift gradient at exact integer shifts, see
    :func:`vasa.video.shift.rubiks_shift_3d`. ``aq_init``: the attention weights' initial range,
    ``"released"`` U[0, 1) or ``"dissertation"`` U[1, 1.05] (:func:`vasa.video.shift_aq.aq_init`).
    """

    features: int
    stride: int = 1
    expansion: float = 1.0
    se_reduction: int | None = None
    variant: str = "rubiks3d"
    num_frames: int = 8
    impl: str = "auto"
    integer_shift_grad: str = "central"
    aq_init: str = "released"

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        *,
        train: bool = False,
        quantize: bool = False,
        temperature: float | jax.Array | None = None,
    ) -> jax.Array:
        _check_variant(self.variant)
        c_in = x.shape[-1]
        mid = int(self.features * self.expansion)
        out = nn.relu(_batch_norm(train, "bn1")(x))
        if self.stride != 1 or c_in != self.features:
            shortcut = nn.Conv(self.features, (1, 1), strides=self.stride, use_bias=False,
                               kernel_init=_conv_init, name="shortcut")(out)
        else:
            shortcut = x
        if self.variant == "rubiks3d-aq":
            out = self._temporal_attention(out, quantize, temperature)
        out = nn.Conv(mid, (1, 1), use_bias=False, kernel_init=_conv_init, name="conv1")(out)
        out = nn.relu(_batch_norm(train, "bn2")(out))
        out = self._shift(out, quantize)
        if self.se_reduction:
            out = SqueezeExcite(self.se_reduction, name="se")(out)
        out = nn.Conv(self.features, (1, 1), use_bias=False, kernel_init=_conv_init,
                      name="conv2")(out)
        return out + shortcut

    def _temporal_attention(self, x: jax.Array, quantize: bool, temperature) -> jax.Array:
        """RubiksShift-AQ's temporal part on frames ``[N*T, H, W, C]``: the softmax attention over
        shifts {-1, 0, +1} at ``temperature``, or its argmax (integer shifts) with ``quantize``."""
        weights = self.param("aq_weights", lambda key: aq_init(key, x.shape[-1], AQ_KERNEL, self.aq_init))
        if quantize:
            attention = aq_hard_attention(weights)
        elif temperature is None:
            raise ValueError("variant='rubiks3d-aq' needs temperature= (a positive float), "
                             "or quantize=True for the argmax attention")
        else:
            attention = aq_attention(weights, temperature)
        y = aq_temporal_shift(_frames_to_video(x, self.num_frames), attention.astype(x.dtype))
        return _video_to_frames(y)

    def _shift(self, x: jax.Array, quantize: bool) -> jax.Array:
        c = x.shape[-1]
        uniform = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)
        kw = {"stride": self.stride, "impl": self.impl, "integer_shift_grad": self.integer_shift_grad}
        if self.variant == "rubiks3d":
            shift = self.param("shift", uniform, (3, c))
            y = rubiks_shift_3d(_frames_to_video(x, self.num_frames), shift, quantize=quantize, **kw)
            return _video_to_frames(y)
        # spatial only, frame by frame; AQ's quantize is its argmax attention, its spatial shift
        # stays interpolated (the released AQ model has no quantized spatial shift)
        shift = self.param("shift", uniform, (2, c))
        y = rubiks_shift_2d(x.transpose(0, 3, 1, 2), shift, quantize=quantize and self.variant == "rubiks2d", **kw)
        return y.transpose(0, 2, 3, 1)


class RubiksNet(nn.Module):
    """Video ``[N, T, H, W, 3]`` float32 -> logits ``[N, num_classes]`` float32 (mean over T).

    ``variant="rubiks2d"`` is the image network: ``[N, H, W, 3]`` -> ``[N, num_classes]``.
    ``T`` must equal ``num_frames``. BatchNorm uses batch statistics when ``train=True``
    (apply with ``mutable=["batch_stats"]``) and running averages otherwise. ``impl`` picks the
    shift implementation of every block (``"auto"``: the Pallas kernels on a GPU, XLA
    elsewhere; ``"xla"``; ``"pallas"``), see :func:`vasa.video.shift.resolve_impl`;
    ``integer_shift_grad`` the shift gradient at exact integer shifts (``"central"`` or
    ``"one_sided"``, see :func:`vasa.video.shift.rubiks_shift_3d`); ``aq_init`` the AQ
    attention weights' initialisation (``"released"`` or ``"dissertation"``, see
    :func:`vasa.video.shift_aq.aq_init`).

    ``quantize=True`` runs the variant's quantized shifts: RubiksShift-IQ (rounded shifts) for
    ``"rubiks3d"`` / ``"rubiks2d"``; for ``"rubiks3d-aq"`` the temporal attention's argmax
    (integer temporal shifts, no ``temperature`` needed), the spatial shift interpolated.
    ``"rubiks3d-aq"`` without ``quantize`` needs ``temperature``.
    """

    width: int
    repeats: Sequence[int]
    num_classes: int
    num_frames: int = 8
    variant: str = "rubiks3d"
    use_se: bool = False
    se_reduction: int = 12
    expansion: float = 1.0
    impl: str = "auto"
    integer_shift_grad: str = "central"
    aq_init: str = "released"

    @nn.compact
    def __call__(
        self,
        x: jax.Array,
        *,
        train: bool = False,
        quantize: bool = False,
        temperature: float | jax.Array | None = None,
    ) -> jax.Array:
        _check_variant(self.variant)
        resolve_impl(self.impl, "RubiksNet")
        image = self.variant == "rubiks2d"
        if image:
            if x.ndim != 4:
                raise ValueError(f"variant='rubiks2d' takes images [N, H, W, 3], got shape {x.shape}")
            n, t = x.shape[0], 1
            frames = x
        else:
            if x.ndim != 5 or x.shape[1] != self.num_frames:
                raise ValueError(
                    f"RubiksNet takes videos [N, T={self.num_frames}, H, W, 3] "
                    f"(num_frames={self.num_frames}), got shape {x.shape}"
                )
            n, t = x.shape[:2]
            frames = x.reshape((n * t,) + x.shape[2:])
        cfg = RubiksNetConfig(self.width, tuple(self.repeats), self.use_se, self.se_reduction,
                              self.expansion)
        h = nn.Conv(self.width, (3, 3), strides=2, padding=((1, 1), (1, 1)), use_bias=False,
                    kernel_init=_conv_init, name="stem")(frames)
        for s, (features, blocks, first_stride) in enumerate(cfg.stages()):
            for b in range(blocks):
                h = RubiksBlock(
                    features,
                    stride=first_stride if b == 0 else 1,
                    expansion=self.expansion,
                    se_reduction=self.se_reduction if self.use_se else None,
                    variant=self.variant,
                    num_frames=self.num_frames,
                    impl=self.impl,
                    integer_shift_grad=self.integer_shift_grad,
                    aq_init=self.aq_init,
                    name=f"stage{s}_block{b}",
                )(h, train=train, quantize=quantize, temperature=temperature)
        h = nn.relu(_batch_norm(train, "bn_final")(h))
        h = jnp.mean(h, axis=(1, 2))
        logits = nn.Dense(self.num_classes, kernel_init=nn.initializers.normal(0.01), name="head")(h)
        return logits.reshape(n, t, self.num_classes).mean(axis=1)


def rubiksnet(tier: str, num_classes: int, num_frames: int = 8, variant: str = "rubiks3d",
              impl: str = "auto", integer_shift_grad: str = "central", aq_init: str = "released") -> RubiksNet:
    """The published RubiksNet tier ``"tiny" | "small" | "medium" | "large"`` (``impl``: the
    shift implementation; ``integer_shift_grad``: the shift gradient at integer shifts;
    ``aq_init``: the AQ attention's initialisation; see :class:`RubiksNet`).

    Raises:
      ValueError: unknown ``tier`` or ``variant`` (the message lists the valid names).
    """
    cfg = tier_config(tier)
    _check_variant(variant)
    return RubiksNet(
        width=cfg.width,
        repeats=cfg.repeats,
        num_classes=num_classes,
        num_frames=num_frames,
        variant=variant,
        use_se=cfg.use_se,
        se_reduction=cfg.se_reduction,
        expansion=cfg.expansion,
        impl=impl,
        integer_shift_grad=integer_shift_grad,
        aq_init=aq_init,
    )


def inflate_2d_to_3d(params_2d: Any, temporal_init: str = "tsm", key: jax.Array | None = None) -> Any:
    """Parameters of a ``variant="rubiks2d"`` network -> the same network as ``"rubiks3d"``.

    Every ``"shift"`` leaf ``[2, C]`` (vertical, horizontal) becomes ``[3, C]`` with the
    spatial rows copied below a new temporal row 0: ``"tsm"`` sets the first ``C // 8``
    channels to +1, the next ``C // 8`` to -1 and the rest to 0 (TSM's fixed shift);
    ``"uniform"`` draws it from U[-1, 1] (needs ``key``). All other leaves are copied, the
    classifier included (replace ``"head"`` for a different class count). Works on a
    ``params`` tree or a whole variables dict (``batch_stats`` pass through).

    Raises:
      ValueError: unknown ``temporal_init``, or ``"uniform"`` without ``key``.
    """
    if temporal_init not in TEMPORAL_INITS:
        raise ValueError(f"temporal_init={temporal_init!r} is not one of {list(TEMPORAL_INITS)}")
    if temporal_init == "uniform" and key is None:
        raise ValueError("temporal_init='uniform' needs key= (a jax.random key)")
    flat = jax.tree_util.tree_flatten_with_path(params_2d)[0]
    shift_paths = [p for p, leaf in flat if _is_shift(p, leaf)]
    keys = {}
    if key is not None:  # one independent draw per shift layer
        keys = dict(zip(map(tuple, shift_paths), jax.random.split(key, len(shift_paths))))

    def inflate(path, leaf):
        if not _is_shift(path, leaf):
            return leaf
        c = leaf.shape[1]
        if temporal_init == "tsm":
            fold = c // 8
            t = jnp.zeros((c,), leaf.dtype).at[:fold].set(1.0).at[fold:2 * fold].set(-1.0)
        else:
            t = jax.random.uniform(keys[tuple(path)], (c,), leaf.dtype, -1.0, 1.0)
        return jnp.concatenate([t[None], leaf], axis=0)

    return jax.tree_util.tree_map_with_path(inflate, params_2d)


def _is_shift(path, leaf) -> bool:
    last = path[-1]
    name = getattr(last, "key", getattr(last, "name", None))
    return name == "shift" and getattr(leaf, "ndim", 0) == 2 and leaf.shape[0] == 2


# ----------------------------------------------------------------------------- baselines


def _shift_frames(x: jax.Array, num_frames: int, fold_div: int) -> jax.Array:
    """TSM temporal shift on frames ``[N*T, H, W, C]``."""
    return _video_to_frames(temporal_shift(_frames_to_video(x, num_frames), fold_div=fold_div))


class _TSMBasic(nn.Module):
    features: int
    stride: int
    num_frames: int
    fold_div: int = 8

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        out = _shift_frames(x, self.num_frames, self.fold_div)  # residual shift
        out = nn.Conv(self.features, (3, 3), self.stride, padding=1, use_bias=False,
                      kernel_init=_conv_init, name="conv1")(out)
        out = nn.relu(_batch_norm(train, "bn1")(out))
        out = nn.Conv(self.features, (3, 3), padding=1, use_bias=False, kernel_init=_conv_init,
                      name="conv2")(out)
        out = _batch_norm(train, "bn2")(out)
        return nn.relu(out + _tsm_shortcut(x, self.features, self.stride, train))


class _TSMBottleneck(nn.Module):
    features: int
    stride: int
    num_frames: int
    fold_div: int = 8

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        out = _shift_frames(x, self.num_frames, self.fold_div)
        out = nn.Conv(self.features, (1, 1), use_bias=False, kernel_init=_conv_init, name="conv1")(out)
        out = nn.relu(_batch_norm(train, "bn1")(out))
        out = nn.Conv(self.features, (3, 3), self.stride, padding=1, use_bias=False,
                      kernel_init=_conv_init, name="conv2")(out)
        out = nn.relu(_batch_norm(train, "bn2")(out))
        out = nn.Conv(4 * self.features, (1, 1), use_bias=False, kernel_init=_conv_init,
                      name="conv3")(out)
        out = _batch_norm(train, "bn3")(out)
        return nn.relu(out + _tsm_shortcut(x, 4 * self.features, self.stride, train))


def _tsm_shortcut(x: jax.Array, features: int, stride: int, train: bool) -> jax.Array:
    if stride == 1 and x.shape[-1] == features:
        return x
    # called inside the block's compact method, so these submodules belong to the block
    y = nn.Conv(features, (1, 1), stride, use_bias=False, kernel_init=_conv_init, name="downsample")(x)
    return _batch_norm(train, "downsample_bn")(y)


TSM_LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}


class TSMResNet(nn.Module):
    """TSM baseline: video ``[N, T, H, W, 3]`` -> logits ``[N, num_classes]`` (mean over T).

    A torchvision-layout ResNet (7x7/2 stem, 3x3/2 max-pool, stages 64-128-256-512 x block
    expansion) with a residual temporal shift (``fold_div``: 1/8 of the channels one frame
    back, 1/8 one frame forward) at the start of every residual branch.
    """

    depth: int
    num_classes: int
    num_frames: int = 8
    fold_div: int = 8

    @nn.compact
    def __call__(self, x: jax.Array, *, train: bool = False) -> jax.Array:
        if self.depth not in TSM_LAYOUTS:
            raise ValueError(f"TSMResNet.depth={self.depth!r} is not one of {list(TSM_LAYOUTS)}")
        if x.ndim != 5 or x.shape[1] != self.num_frames:
            raise ValueError(
                f"TSMResNet takes videos [N, T={self.num_frames}, H, W, 3], got shape {x.shape}"
            )
        kind, repeats = TSM_LAYOUTS[self.depth]
        block = _TSMBasic if kind == "basic" else _TSMBottleneck
        n, t = x.shape[:2]
        h = x.reshape((n * t,) + x.shape[2:])
        h = nn.Conv(64, (7, 7), 2, padding=3, use_bias=False, kernel_init=_conv_init, name="stem")(h)
        h = nn.relu(_batch_norm(train, "stem_bn")(h))
        h = nn.max_pool(h, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        for s, (features, blocks) in enumerate(zip((64, 128, 256, 512), repeats)):
            for b in range(blocks):
                stride = 2 if (b == 0 and s > 0) else 1
                h = block(features, stride, self.num_frames, self.fold_div,
                          name=f"stage{s}_block{b}")(h, train)
        h = jnp.mean(h, axis=(1, 2))
        logits = nn.Dense(self.num_classes, name="head")(h)
        return logits.reshape(n, t, self.num_classes).mean(axis=1)


def tsm_resnet(depth: int, num_classes: int, num_frames: int = 8) -> TSMResNet:
    """TSM-ResNet-``depth`` (18, 34 or 50) with residual temporal shift.

    Raises:
      ValueError: ``depth`` not in (18, 34, 50).
    """
    if depth not in TSM_LAYOUTS:
        raise ValueError(f"tsm_resnet depth={depth!r} is not one of {list(TSM_LAYOUTS)}")
    return TSMResNet(depth=depth, num_classes=num_classes, num_frames=num_frames)


# ------------------------------------------------- efficiency-study layers (Table 6.6)


class Conv3DBlock(nn.Module):
    """3x3x3 convolution, ``channels`` -> ``channels``: ``[N, T, H, W, C]`` -> same shape."""

    channels: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        return nn.Conv(self.channels, (3, 3, 3), padding=1, use_bias=False,
                       kernel_init=_conv_init, name="conv")(x)


class TSMBlock(nn.Module):
    """TSM temporal shift + 3x3 2-D convolution: ``[N, T, H, W, C]`` -> same shape."""

    channels: int
    fold_div: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n, t = x.shape[:2]
        frames = _shift_frames(x.reshape((n * t,) + x.shape[2:]), t, self.fold_div)
        y = nn.Conv(self.channels, (3, 3), padding=1, use_bias=False, kernel_init=_conv_init,
                    name="conv")(frames)
        return y.reshape((n, t) + y.shape[1:])


class _PointwiseKernel(nn.Module):
    """The kernel ``[1, 1, 1, C, D]`` of a bias-free 1x1x1 ``nn.Conv``, same name, shape and
    initialisation, for the fused shift + pointwise path."""

    features: int

    @nn.compact
    def __call__(self, channels: int) -> jax.Array:
        return self.param("kernel", _conv_init, (1, 1, 1, channels, self.features))


class RubiksShiftLayer(nn.Module):
    """Learnable 3-D shift + 1x1 convolution (Eq. 6.2-6.3): ``[N, T, H, W, C]`` -> same shape.

    ``fused=True`` computes both with :func:`vasa.video.shift.rubiks_shift_pointwise` (one Pallas
    kernel when ``impl`` resolves to Pallas) on the same parameters as the unfused layer.
    """

    channels: int
    impl: str = "auto"
    fused: bool = False
    integer_shift_grad: str = "central"
    aq_init: str = "released"

    @nn.compact
    def __call__(self, x: jax.Array, *, quantize: bool = False) -> jax.Array:
        uniform = lambda key, shape: jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)
        c = x.shape[-1]
        shift = self.param("shift", uniform, (3, c))
        video = x.transpose(0, 1, 4, 2, 3)
        if self.fused:
            kernel = _PointwiseKernel(self.channels, name="conv")(c).reshape(c, self.channels)
            y = rubiks_shift_pointwise(video, shift, kernel.astype(x.dtype), quantize=quantize, impl=self.impl,
                                       integer_shift_grad=self.integer_shift_grad)
            return y.transpose(0, 1, 3, 4, 2)
        y = rubiks_shift_3d(video, shift, quantize=quantize, impl=self.impl,
                            integer_shift_grad=self.integer_shift_grad).transpose(0, 1, 3, 4, 2)
        return nn.Conv(self.channels, (1, 1, 1), use_bias=False, kernel_init=_conv_init, name="conv")(y)
