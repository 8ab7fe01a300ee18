"""Image augmentations for pixel-based RL: DrQ's weak random shift and SECANT's strong pool.

``random_shift`` is DrQ's weak augmentation (Kostrikov et al., 2020): replicate-pad each image
by ``pad`` pixels on every spatial side and crop it back to its original size at an integer
offset drawn uniformly and independently per sample, i.e. translate it by up to ``pad`` pixels
in each direction with the border pixels repeated (DrQ's code, ``nn.ReplicationPad2d``; the
dissertation's section 5.5.1 describes it as reflection padding). All functions are pure and
jit-able with ``pad`` static.

The strong augmentations are those of SECANT (Fan et al., ICML 2021; dissertation section 5.4
and table 5.2), each a function ``op(key, images, config, bank=None) -> images``:

=================  =====================================================================
``cutout_color``   Cc: a rectangle of one random colour (uniform per channel) at a random
                   place; sides uniform in ``cutout_side`` x the image side (RAD: 10..29 px
                   at 84 px), each side drawn independently, the rectangle inside the image.
``conv``           Cv as NetRand's layer: a random 3x3 convolution, 3 -> 3 channels, no
                   bias, zero 'same' padding. Weights i.i.d. ``N(0, conv_weight_std^2)``;
                   the default is NetRand's Xavier-normal: ``sqrt(2 / (fan_in + fan_out)) =
                   sqrt(2 / (27 + 27))``. The result is clipped to the pixel range.
``rad_conv``       Cv as RAD's, DMControl-GB's and SVEA's code (``random_conv``): weights
                   i.i.d. ``N(0, rad_conv_weight_std^2)`` (``torch.randn``: 1) on the image
                   scaled to [0, 1], replicate padding, then a sigmoid back to the pixel
                   range: saturated, often inverted colours and bright edges where ``conv``
                   mostly tints and darkens. Which of the two SECANT's Cv was, the thesis
                   does not say; ``COMBOS`` use ``conv``.
``color_map``      Cf (vasa's, not in the thesis): a random smooth function of each pixel's
                   colour, one per observation: ``u = x / range``, ``out = range *
                   sigmoid(color_map_gain * sin(u W + phi) A / sqrt(K / 2) + b)`` with
                   ``K = 16`` random features, ``W [3, K] ~ N(0, color_map_freq^2)``,
                   ``phi ~ U(0, 2 pi)``, ``A [K, 3]`` and ``b [3] ~ N(0, 1)``. Unlike a
                   convolution (one linear colour map for the whole image), colours further
                   apart than ~1 / ``color_map_freq`` go to nearly independent colours, so
                   the agent, the floor and the sky each change colour on their own, as
                   under DMControl-GB's ``color_hard``; shapes and edges stay.
``gaussian``       G: additive ``N(0, sigma^2)`` noise, ``sigma ~ U(gaussian_sigma)`` per
                   observation, in units of the pixel range (ImageNet-C severities 1-5:
                   0.08 .. 0.38); clipped.
``impulse``        I: colour salt-and-pepper (ImageNet-C / skimage ``s&p``): each
                   pixel-channel is hit with probability ``p ~ U(impulse_amount)``
                   (ImageNet-C amounts 0.03 .. 0.27) and set to 0 or to the maximum with
                   probability 1/2 each.
``mixup``          M: ``alpha * o + (1 - alpha) * I`` with ``alpha ~ U(mixup_alpha)``
                   (SECANT: U(0.2, 0.6)) and ``I`` a uniformly drawn bank image.
``cutmix``         Cm: a rectangle (sizes as ``cutmix_side``, SECANT: "like cutout-colour")
                   replaced by the same rectangle of a uniformly drawn bank image (same
                   place in both, as in CutMix).
``crop``           DrQ's random shift with ``crop_pad`` (the weak augmentation).
``none``           the identity (allowed in user pools).
=================  =====================================================================

Conventions shared by every operator:

* ``images``: ``[B, H, W, 3k]`` stacks of ``k`` RGB frames concatenated on channels, frame
  major (channels ``[0:3]`` are frame 0, ``[3:6]`` frame 1, ...), or a dict whose ``"pixels"``
  entry is such a batch (only ``"pixels"`` changes).
* Per-sample randomness and time consistency: each observation gets its own draw, and that
  one draw (colour, rectangle, kernel, noise pattern, impulse mask, bank image, offset) is
  applied to every frame of its stack, so frame-identical input stays frame-identical (for
  ``gaussian`` up to float rounding: a value at an exact half level may round differently in
  another frame, measured at 8 of 10.8M values for 512 84x84 stacks). The
  noise of ``gaussian`` and ``impulse`` is therefore a static ``[H, W, 3]`` pattern over the
  stack (like a dirty lens), not independent per frame.
* dtype: ``uint8`` images (the pixel environments' output) are augmented in ``[0, 255]``
  and rounded and clipped back to ``uint8``; floating images are taken to be in ``[0, 1]``
  and come back in their own dtype in that scale (operators that can leave the range, conv
  and gaussian, clip to it; the others keep in-range input in range). Shape is preserved.
* The distractor ``bank`` (mixup, cutmix) is ``uint8 [N, H, W, 3]`` (or floating in
  ``[0, 1]``) at the image size; :func:`resize_bank` resizes a bank of another size once.

``strong_augment(key, images, config, bank)`` draws one operator per observation, uniformly
from ``config.ops`` (``COMBOS["combo1"]`` by default: Cc + Cv + M + crop, the recipe of every
SECANT headline result), stratified over the batch (:func:`operator_choices`) so that each
operator runs only on its own observations. Listing an operator twice in ``ops`` doubles its
probability.

Random draws are reproducible: ``draw_params(op, key, images, config, bank)`` returns the
per-sample draws ``op(key, images, config, bank)`` applies (sample ``i`` from
``jax.random.split(key, B)[i]``; integers from one ``U[0, 1)`` each, ``floor(u * n)``), and
``strong_augment(key, ...)[i]`` is ``OPERATORS[config.ops[c[i]]](k, ...)[i]`` with
``c = operator_choices(key, B, config)`` and ``k = jax.random.split(key)[1]``.

Everything is pure and jit-able with the config static (it is a hashable frozen dataclass):
``jax.jit(strong_augment, static_argnames="config")`` or a config closed over. Called
eagerly, the draws and the image operations run as separate cached programs, so a new
dtype, range or pool does not recompile the random draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from functools import partial
from typing import Annotated, Any, Callable, Literal, get_args

import jax
import jax.numpy as jnp

from vasa.run.fields import Length, NonNegFloat, NonNegInt, PosFloat, UnitFloat, check_fields, ordered_pair


def _check_pad(pad: int) -> int:
    if isinstance(pad, bool) or int(pad) != pad or pad < 0:
        raise ValueError(f"pad={pad!r} must be a non-negative integer")
    return int(pad)


def shift_offsets(key: jax.Array, batch: int, pad: int) -> jax.Array:
    """Per-sample crop offsets ``int32 [batch, 2]`` as ``(dy, dx)``, each uniform in ``[0, 2 * pad]``.

    ``(dy, dx) = (pad, pad)`` is the identity; row ``i`` is the offset ``random_shift(key, ...)``
    uses for sample ``i``.
    """
    pad = _check_pad(pad)
    return jax.random.randint(key, (batch, 2), 0, 2 * pad + 1, dtype=jnp.int32)


def random_shift(key: jax.Array, images: jax.Array, pad: int = 4) -> jax.Array:
    """DrQ random shift of ``images [B, H, W, C]`` (any dtype) -> same shape and dtype.

    Output ``i`` is ``edge_pad(images[i], pad)[dy:dy + H, dx:dx + W]`` with
    ``(dy, dx) = shift_offsets(key, B, pad)[i]``. ``pad=0`` returns ``images`` unchanged.
    """
    pad = _check_pad(pad)
    if images.ndim != 4:
        raise ValueError(f"random_shift expects images [B, H, W, C], got shape {images.shape}")
    if pad == 0:
        return images
    b, h, w, c = images.shape
    offsets = shift_offsets(key, b, pad)
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")

    def crop(img: jax.Array, off: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(img, (off[0], off[1], jnp.int32(0)), (h, w, c))

    return jax.vmap(crop)(padded, offsets)


def _shift_obs(key: jax.Array, obs: Any, pad: int) -> Any:
    if isinstance(obs, dict):
        if "pixels" not in obs:
            raise ValueError(f"dict observation has no 'pixels' entry to shift; keys: {sorted(obs)}")
        return {**obs, "pixels": random_shift(key, obs["pixels"], pad)}
    return random_shift(key, obs, pad)


def random_shift_pair(key: jax.Array, obs: Any, next_obs: Any, pad: int = 4) -> tuple[Any, Any]:
    """Shift ``obs`` and ``next_obs`` with independent offsets (as DrQ does) -> ``(obs, next_obs)``.

    Each is either an image batch ``[B, H, W, C]`` or a dict whose ``"pixels"`` entry is one;
    other dict entries (e.g. ``"proprio": float32 [B, P]``) are passed through untouched. With
    ``k_obs, k_next = jax.random.split(key)``, the result is ``random_shift(k_obs, ...)`` and
    ``random_shift(k_next, ...)`` applied to the pixels.
    """
    k_obs, k_next = jax.random.split(key)
    return _shift_obs(k_obs, obs, pad), _shift_obs(k_next, next_obs, pad)


# ============================================================================ strong augmentations

Op = Literal["none", "crop", "cutout_color", "conv", "rad_conv", "color_map", "gaussian", "impulse", "mixup", "cutmix"]
OPS: tuple[str, ...] = get_args(Op)
"""Every operator name, in the order of ``Op``."""

COMBOS: dict[str, tuple[Op, ...]] = {
    "combo1": ("cutout_color", "conv", "mixup", "crop"),
    "combo2": ("cutout_color", "conv", "mixup", "cutmix", "crop"),
    "combo3": ("cutout_color", "conv", "mixup"),
}
"""SECANT's recipes (dissertation table 5.2); combo1 is used for all its headline results."""

NEEDS_BANK = frozenset({"mixup", "cutmix"})
"""Operators that blend in a distractor image and so need a ``bank``."""

XAVIER_STD_3X3 = math.sqrt(2.0 / (27 + 27))
"""Xavier-normal std of a 3x3 conv with 3 input and 3 output channels (fan in = fan out = 27)."""

COLOR_MAP_FEATURES = 16
"""Random sinusoidal features ``K`` of ``color_map``'s colour function (static: it fixes the draws' shapes)."""

_RAD_SIDE = (10 / 84, 29 / 84)  # RAD's cutout_color box sides, np.random.randint(10, 30): 10..29 px at 84 px


@dataclass(frozen=True)
class StrongAugConfig:
    """SECANT's strong augmentations: the operator pool and every operator's parameter ranges.

    Ranges are ``(low, high)`` pairs sampled uniformly per observation. Pixel amounts
    (colours, noise) are in units of the pixel range (1 = 255 for uint8).
    """

    ops: Annotated[tuple[Op, ...], Length(min=1)] = COMBOS["combo1"]
    """operator pool, one drawn uniformly per observation (SECANT combo1: cutout_color conv mixup crop)"""
    cutout_side: ordered_pair(UnitFloat) = _RAD_SIDE
    """cutout_color rectangle side as a fraction of the image side, both ends included (RAD: 10..29 px at
    84 px, its ``np.random.randint(10, 30)``)"""
    conv_weight_std: PosFloat = XAVIER_STD_3X3
    """std of the random 3x3 conv weights of ``conv`` (NetRand's Xavier-normal: sqrt(2/54))"""
    rad_conv_weight_std: PosFloat = 1.0
    """std of the random 3x3 conv weights of ``rad_conv`` (RAD / DMControl-GB's code: torch.randn, 1)"""
    color_map_freq: PosFloat = 3.0
    """std of ``color_map``'s random frequencies, per unit of the pixel range (colours ~1/freq apart
    change independently)"""
    color_map_gain: PosFloat = 2.0
    """scale of ``color_map``'s random colour function before its sigmoid (larger: more saturated)"""
    gaussian_sigma: ordered_pair(NonNegFloat) = (0.08, 0.38)
    """Gaussian noise std range, fraction of the pixel range (ImageNet-C severities 1-5)"""
    impulse_amount: ordered_pair(UnitFloat) = (0.03, 0.27)
    """probability range that a pixel-channel becomes salt or pepper (ImageNet-C severities 1-5)"""
    mixup_alpha: ordered_pair(UnitFloat) = (0.2, 0.6)
    """weight of the observation in mixup, alpha*o + (1-alpha)*I (SECANT: U(0.2, 0.6))"""
    cutmix_side: ordered_pair(UnitFloat) = _RAD_SIDE
    """cutmix rectangle side as a fraction of the image side (SECANT: like cutout_color)"""
    crop_pad: NonNegInt = 4
    """random shift (crop) padding in pixels (DrQ: 4; 0 makes crop the identity)"""

    def validate(self) -> None:
        """Check every field against its annotation; messages name the field, the value and
        what is allowed. (The ranges are checked field by field; no two fields constrain
        each other.)"""
        check_fields(self)

    @classmethod
    def recipe(cls, name: str, **changes: Any) -> StrongAugConfig:
        """The config whose pool is ``COMBOS[name]`` (``"combo1"``, ``"combo2"``, ``"combo3"``)."""
        if name not in COMBOS:
            raise ValueError(f"unknown augmentation recipe {name!r}; valid: {', '.join(COMBOS)}")
        return replace(cls(ops=COMBOS[name]), **changes)


# ---------------------------------------------------------------------------- per-image draws

def _numbers(config: StrongAugConfig) -> dict[str, jax.Array]:
    """Every parameter of ``config`` but the pool as float32 arrays: the compiled draws and
    operators take them as arguments, so a changed range does not recompile."""
    return {f.name: jnp.asarray(getattr(config, f.name), jnp.float32) for f in fields(config) if f.name != "ops"}


def _side_bounds(fraction: jax.Array, n: int) -> jax.Array:
    """``int32 [2]`` pixel bounds of a rectangle side: fractions of ``n`` rounded half up."""
    return jnp.floor(fraction * n + 0.5).astype(jnp.int32)


def _uniform_int(u: jax.Array, low: Any, high: Any) -> jax.Array:
    """Integers uniform on ``low..high`` (inclusive) from ``u ~ U[0, 1)``; one uniform per
    integer keeps the compiled draw small (``jax.random.randint`` with a traced bound is not)."""
    return jnp.minimum(low + jnp.floor(u * (high - low + 1)).astype(jnp.int32), high)


def _in_range(u: jax.Array, bounds: jax.Array) -> jax.Array:
    return bounds[0] + u * (bounds[1] - bounds[0])


def _box(u: jax.Array, h: int, w: int, side: jax.Array) -> jax.Array:
    """``int32 [4]`` = ``(y, x, height, width)`` from ``u [4]``: sides uniform (inclusive) in the
    rounded pixel bounds, drawn independently; top-left corner uniform such that the box lies
    inside the image."""
    (h_lo, h_hi), (w_lo, w_hi) = _side_bounds(side, h), _side_bounds(side, w)
    bh, bw = _uniform_int(u[0], h_lo, h_hi), _uniform_int(u[1], w_lo, w_hi)
    return jnp.stack([_uniform_int(u[2], 0, h - bh), _uniform_int(u[3], 0, w - bw), bh, bw])


def _draw(op: str, key: jax.Array, h: int, w: int, config: dict, bank_size: int) -> dict:
    """One observation's random draws for ``op`` (a dict of arrays; ``{}`` for ``none``);
    ``config`` is ``_numbers(StrongAugConfig)``."""
    if op == "none":
        return {}
    if op == "crop":
        return {"offset": _uniform_int(jax.random.uniform(key, (2,)), 0, 2 * config["crop_pad"].astype(jnp.int32))}
    if op == "cutout_color":
        u = jax.random.uniform(key, (7,))
        return {"box": _box(u[:4], h, w, config["cutout_side"]), "color": u[4:]}
    if op in ("conv", "rad_conv"):
        return {"kernel": config[f"{op}_weight_std"] * jax.random.normal(key, (3, 3, 3, 3), jnp.float32)}
    if op == "color_map":
        k_w, k_phase, k_a, k_b = jax.random.split(key, 4)
        mix_std = config["color_map_gain"] / math.sqrt(COLOR_MAP_FEATURES / 2)  # the sines have variance 1/2
        return {"freq": config["color_map_freq"] * jax.random.normal(k_w, (3, COLOR_MAP_FEATURES), jnp.float32),
                "phase": 2 * jnp.pi * jax.random.uniform(k_phase, (COLOR_MAP_FEATURES,)),
                "mix": mix_std * jax.random.normal(k_a, (COLOR_MAP_FEATURES, 3), jnp.float32),
                "bias": jax.random.normal(k_b, (3,), jnp.float32)}
    if op == "gaussian":
        k_sigma, k_noise = jax.random.split(key)
        return {"sigma": _in_range(jax.random.uniform(k_sigma), config["gaussian_sigma"]),
                "noise": jax.random.normal(k_noise, (h, w, 3), jnp.float32)}
    if op == "impulse":
        u = jax.random.uniform(key, (1 + 2 * h * w * 3,))
        return {"amount": _in_range(u[0], config["impulse_amount"]),
                "hit": u[1:1 + h * w * 3].reshape(h, w, 3), "salt": u[1 + h * w * 3:].reshape(h, w, 3)}
    if op == "mixup":
        u = jax.random.uniform(key, (2,))
        return {"alpha": _in_range(u[0], config["mixup_alpha"]), "index": _uniform_int(u[1], 0, bank_size - 1)}
    if op == "cutmix":
        u = jax.random.uniform(key, (5,))
        return {"box": _box(u[:4], h, w, config["cutmix_side"]), "index": _uniform_int(u[4], 0, bank_size - 1)}
    raise ValueError(f"unknown augmentation {op!r}; valid: {', '.join(OPS)}")


# ---------------------------------------------------------------------------- per-image cores
# x: float32 [H, W, k, 3] in the image's scale (0..scale); each returns the same shape.

def _box_mask(box: jax.Array, h: int, w: int) -> jax.Array:
    rows, cols = jnp.arange(h), jnp.arange(w)
    in_y = (rows >= box[0]) & (rows < box[0] + box[2])
    in_x = (cols >= box[1]) & (cols < box[1] + box[3])
    return (in_y[:, None] & in_x[None, :])[:, :, None, None]


def _bank_image(bank: jax.Array, index: jax.Array, scale: float) -> jax.Array:
    """Bank image ``index`` as float32 ``[H, W, 1, 3]`` in the observation's scale."""
    img = bank[index].astype(jnp.float32)
    bank_max = 255.0 if bank.dtype == jnp.uint8 else 1.0
    return (img * (scale / bank_max))[:, :, None, :]


def _apply(op: str, x: jax.Array, p: dict, pad: jax.Array, scale: float, bank: jax.Array | None) -> jax.Array:
    h, w = x.shape[:2]
    if op == "none":
        return x
    if op == "crop":
        # edge_pad(x, pad)[dy:dy + h, dx:dx + w] as a gather of clipped rows and columns
        rows = jnp.clip(jnp.arange(h) + p["offset"][0] - pad, 0, h - 1)
        cols = jnp.clip(jnp.arange(w) + p["offset"][1] - pad, 0, w - 1)
        return jnp.take(jnp.take(x, rows, axis=0), cols, axis=1)
    if op == "cutout_color":
        return jnp.where(_box_mask(p["box"], h, w), p["color"] * scale, x)
    if op in ("conv", "rad_conv"):
        # cross-correlation out[i, j, o] = sum_{a, b, c} x_pad[i + a, j + b, c] * kernel[a, b, c, o] as 27
        # fused multiply-adds: on a CPU this is ~3x faster than an im2col matmul with 27 x 3 weights.
        # conv (NetRand): zero padding, clipped to the pixel range; rad_conv (RAD, DMControl-GB, SVEA): replicate
        # padding of x / scale, then scale * sigmoid
        rad = op == "rad_conv"
        padded = jnp.pad(x / scale if rad else x, ((1, 1), (1, 1), (0, 0), (0, 0)), mode="edge" if rad else "constant")
        out = jnp.zeros_like(x)
        for a in range(3):
            for b in range(3):
                window = padded[a:a + h, b:b + w]
                for c in range(3):
                    out = out + window[..., c:c + 1] * p["kernel"][a, b, c]
        return scale * jax.nn.sigmoid(out) if rad else jnp.clip(out, 0.0, scale)
    if op == "color_map":
        features = jnp.sin((x / scale) @ p["freq"] + p["phase"])  # [H, W, k, K]
        return scale * jax.nn.sigmoid(features @ p["mix"] + p["bias"])
    if op == "gaussian":
        return jnp.clip(x + (p["sigma"] * scale) * p["noise"][:, :, None, :], 0.0, scale)
    if op == "impulse":
        hit = (p["hit"] < p["amount"])[:, :, None, :]
        salt = (p["salt"] < 0.5)[:, :, None, :]
        return jnp.where(hit, jnp.where(salt, scale, 0.0), x)
    if op == "mixup":
        return p["alpha"] * x + (1.0 - p["alpha"]) * _bank_image(bank, p["index"], scale)
    if op == "cutmix":
        return jnp.where(_box_mask(p["box"], h, w), _bank_image(bank, p["index"], scale), x)
    raise ValueError(f"unknown augmentation {op!r}; valid: {', '.join(OPS)}")


# ---------------------------------------------------------------------------- batch plumbing

def _scale(dtype) -> float:
    if dtype == jnp.uint8:
        return 255.0
    if jnp.issubdtype(dtype, jnp.floating):
        return 1.0
    raise ValueError(f"strong augmentations take uint8 or floating images, got dtype {dtype}")


def _check_images(images: jax.Array) -> None:
    if images.ndim != 4 or images.shape[-1] % 3:
        raise ValueError(f"augmentations expect images [B, H, W, 3k] (k stacked RGB frames), got shape {images.shape}")
    _scale(images.dtype)


def _check_bank(ops: tuple[str, ...], images: jax.Array, bank: jax.Array | None) -> None:
    need = sorted(set(ops) & NEEDS_BANK)
    if not need:
        return
    h, w = images.shape[1:3]
    if bank is None:
        raise ValueError(f"augmentations {need} blend in distractor images: pass bank=uint8 [N, {h}, {w}, 3], "
                         "distractor images at the observation size (resize_bank resizes a bank of another size)")
    if bank.ndim != 4 or bank.shape[-1] != 3 or bank.shape[0] < 1:
        raise ValueError(f"bank must be uint8 [N, H, W, 3] with N >= 1, got shape {bank.shape}")
    if tuple(bank.shape[1:3]) != (h, w):
        raise ValueError(f"bank images are {bank.shape[1]}x{bank.shape[2]} but the observations are {h}x{w}; "
                         f"resize the bank once with resize_bank(bank, ({h}, {w}))")
    _scale(bank.dtype)


def _to_frames(images: jax.Array) -> jax.Array:
    """``[B, H, W, 3k]`` -> float32 ``[B, H, W, k, 3]``."""
    b, h, w, c = images.shape
    return images.astype(jnp.float32).reshape(b, h, w, c // 3, 3)


def _from_frames(x: jax.Array, like: jax.Array) -> jax.Array:
    """float32 ``[B, H, W, k, 3]`` -> ``like``'s shape and dtype (uint8: rounded and clipped)."""
    x = x.reshape(like.shape)
    if like.dtype == jnp.uint8:
        return jnp.clip(jnp.round(x), 0, 255).astype(jnp.uint8)
    return x.astype(like.dtype)


def _on_pixels(fn: Callable[[jax.Array], jax.Array], obs: Any) -> Any:
    if isinstance(obs, dict):
        if "pixels" not in obs:
            raise ValueError(f"dict observation has no 'pixels' entry to augment; keys: {sorted(obs)}")
        return {**obs, "pixels": fn(obs["pixels"])}
    return fn(obs)


def draw_params(op: Op, key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
                bank: jax.Array | None = None) -> dict:
    """The per-sample draws ``OPERATORS[op](key, images, config, bank)`` applies: a dict of
    arrays with leading axis ``B`` (sample ``i`` uses ``jax.random.split(key, B)[i]``).

    Keys by operator: crop ``offset int32 [B, 2]`` (dy, dx in ``[0, 2 pad]``); cutout_color
    ``box int32 [B, 4]`` (y, x, height, width) and ``color float32 [B, 3]`` in ``[0, 1)``; conv
    ``kernel float32 [B, 3, 3, 3, 3]`` (dy, dx, c_in, c_out); color_map ``freq [B, 3, K]``,
    ``phase [B, K]``, ``mix [B, K, 3]`` (``color_map_gain / sqrt(K / 2) * N(0, 1)``) and ``bias [B, 3]``
    (``K = COLOR_MAP_FEATURES``);
    gaussian ``sigma [B]`` and ``noise [B, H, W, 3]`` (standard normal); impulse ``amount [B]``, ``hit``
    and ``salt`` ``[B, H, W, 3]`` uniforms (hit where ``hit < amount``, salt where ``salt < 0.5``); mixup
    ``alpha [B]`` and ``index int32 [B]``; cutmix ``box`` and ``index``.
    """
    config.validate()
    if op not in OPS:
        raise ValueError(f"unknown augmentation {op!r}; valid: {', '.join(OPS)}")
    pixels = images["pixels"] if isinstance(images, dict) else images
    _check_images(pixels)
    _check_bank((op,), pixels, bank)
    b, h, w = pixels.shape[:3]
    bank_size = bank.shape[0] if op in NEEDS_BANK and bank is not None else 0
    return _draw_batch(key, _numbers(config), b, h, w, bank_size, op)


@partial(jax.jit, static_argnums=(2, 3, 4, 5, 6))
def _draw_batch(key: jax.Array, numbers: dict, b: int, h: int, w: int, bank_size: int, op: str) -> dict:
    return jax.vmap(lambda k: _draw(op, k, h, w, numbers, bank_size))(jax.random.split(key, b))


# Draws and their application are separate programs: the random draws (threefry) dominate the
# compile time on a CPU, and one compiled draw then serves every image dtype and the combination.

@partial(jax.jit, static_argnames=("op",))
def _apply_batch(pixels: jax.Array, params: dict, bank: jax.Array | None, pad: jax.Array, op: str) -> jax.Array:
    scale = _scale(pixels.dtype)
    out = jax.vmap(lambda x, p: _apply(op, x, p, pad, scale, bank))(_to_frames(pixels), params)
    return _from_frames(out, pixels)


def _run(op: str, key: jax.Array, images: Any, config: StrongAugConfig, bank: jax.Array | None) -> Any:
    """Apply ``op`` to every observation with its own draw (``draw_params``)."""
    config.validate()

    def run(pixels):
        _check_images(pixels)
        _check_bank((op,), pixels, bank)
        bank_used = bank if op in NEEDS_BANK else None
        params = draw_params(op, key, pixels, config, bank_used)
        return _apply_batch(pixels, params, bank_used, jnp.int32(config.crop_pad), op)

    return _on_pixels(run, images)


# Every operator: (key, images [B, H, W, 3k] uint8 | float in [0, 1] (or {"pixels": ...}), config,
# bank=None) -> images of the same shape and dtype, with the draws of draw_params(op, key, ...).

def cutout_color(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
                 bank: jax.Array | None = None) -> Any:
    """Cc: per observation, a rectangle (sides ~ ``cutout_side``) of one colour ~ U[0, 1)^3."""
    return _run("cutout_color", key, images, config, bank)


def random_conv(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
                bank: jax.Array | None = None) -> Any:
    """Cv: per observation, a 3x3 3->3 conv with ``conv_weight_std * N(0, 1)`` weights, zero
    'same' padding, no bias, clipped to the pixel range."""
    return _run("conv", key, images, config, bank)


def rad_random_conv(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
                    bank: jax.Array | None = None) -> Any:
    """Cv as RAD's, DMControl-GB's and SVEA's code draw it: per observation, a 3x3 3->3 conv with
    ``rad_conv_weight_std * N(0, 1)`` weights (1: ``torch.randn``) on the image in [0, 1], replicate
    'same' padding, no bias, then a sigmoid back to the pixel range: saturated, often inverted colours
    and bright edges, where ``conv`` (NetRand's Xavier weights) mostly tints and darkens."""
    return _run("rad_conv", key, images, config, bank)


def color_map(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
              bank: jax.Array | None = None) -> Any:
    """Cf: per observation, one random smooth colour function (``COLOR_MAP_FEATURES`` sinusoids of
    the pixel's RGB with frequencies ``color_map_freq * N(0, 1)``, mixed by ``N(0, 1)`` weights, gain
    ``color_map_gain``, then a sigmoid) applied to every pixel of every frame: distinct colours map
    to nearly independent new colours, edges and shapes stay."""
    return _run("color_map", key, images, config, bank)


def gaussian_noise(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
                   bank: jax.Array | None = None) -> Any:
    """G: per observation, ``sigma ~ U(gaussian_sigma)`` times one ``N(0, 1) [H, W, 3]`` pattern
    (in units of the pixel range) added to every frame, clipped."""
    return _run("gaussian", key, images, config, bank)


def impulse_noise(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
                  bank: jax.Array | None = None) -> Any:
    """I: per observation, each pixel-channel of one ``[H, W, 3]`` mask is hit with probability
    ``p ~ U(impulse_amount)`` and set to 0 or the maximum (1/2 each), in every frame."""
    return _run("impulse", key, images, config, bank)


def mixup(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
          bank: jax.Array | None = None) -> Any:
    """M: per observation, ``alpha * o + (1 - alpha) * bank[j]`` with ``alpha ~ U(mixup_alpha)``
    and ``j`` uniform; ``bank`` is required."""
    return _run("mixup", key, images, config, bank)


def cutmix(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
           bank: jax.Array | None = None) -> Any:
    """Cm: per observation, a rectangle (sides ~ ``cutmix_side``) replaced by the same rectangle
    of ``bank[j]``, ``j`` uniform; ``bank`` is required."""
    return _run("cutmix", key, images, config, bank)


def crop(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
         bank: jax.Array | None = None) -> Any:
    """Weak: per observation, DrQ's random shift by up to ``crop_pad`` pixels (edge padding)."""
    return _run("crop", key, images, config, bank)


def identity(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
             bank: jax.Array | None = None) -> Any:
    """``none``: the images unchanged (after the same checks as the other operators)."""
    return _run("none", key, images, config, bank)


OPERATORS: dict[str, Callable] = {"none": identity, "crop": crop, "cutout_color": cutout_color, "conv": random_conv,
                                  "rad_conv": rad_random_conv, "color_map": color_map, "gaussian": gaussian_noise,
                                  "impulse": impulse_noise, "mixup": mixup, "cutmix": cutmix}
"""Operator name -> its batch function ``(key, images, config, bank=None) -> images``."""


def operator_choices(key: jax.Array, batch: int, config: StrongAugConfig = StrongAugConfig()) -> jax.Array:
    """``int32 [batch]``: the index into ``config.ops`` that ``strong_augment(key, ...)`` uses
    for each observation.

    Each observation's operator is uniform over the pool, drawn *stratified*: a random
    permutation ``perm`` of the batch gives observation ``perm[j]`` the operator ``j mod n``, so
    every operator gets ``floor(B/n)`` or ``ceil(B/n)`` observations. Fixed group sizes let each
    operator run only on its own observations (``switch`` under ``vmap`` would run every branch
    on every observation: Combo1's random convolution on all of them)."""
    perm = _permutation(key, batch)
    return jnp.zeros((batch,), jnp.int32).at[perm].set(jnp.arange(batch, dtype=jnp.int32) % len(config.ops))


@partial(jax.jit, static_argnums=(1,))
def _permutation(key: jax.Array, batch: int) -> jax.Array:
    return jax.random.permutation(jax.random.split(key)[0], batch)


def strong_augment(key: jax.Array, images: Any, config: StrongAugConfig = StrongAugConfig(),
                   bank: jax.Array | None = None) -> Any:
    """SECANT's strong augmentation: one operator per observation, uniform from ``config.ops``.

    Args:
      key: PRNG key.
      images: ``uint8 | float [B, H, W, 3k]`` (float in ``[0, 1]``), or a dict whose
        ``"pixels"`` entry is one (the other entries are returned untouched).
      config: the pool and parameter ranges (validated here, at trace time).
      bank: distractor images ``uint8 [N, H, W, 3]`` for mixup/cutmix; required iff the pool
        holds one of them (ignored otherwise).

    Returns:
      Images of the same shape and dtype. Observation ``i`` is
      ``OPERATORS[config.ops[c[i]]](jax.random.split(key)[1], images, config, bank)[i]`` with
      ``c = operator_choices(key, B, config)`` (uniform per observation, stratified over the
      batch); every frame of its stack gets the same draw.
    """
    config.validate()

    def run(pixels):
        _check_images(pixels)
        _check_bank(config.ops, pixels, bank)
        bank_used = bank if NEEDS_BANK & set(config.ops) else None
        k_params = jax.random.split(key)[1]
        # every operator's draws for every sample (cheap next to the operators; keeps draws per sample fixed)
        params = {op: draw_params(op, k_params, pixels, config, bank_used) for op in dict.fromkeys(config.ops)}
        perm = _permutation(key, pixels.shape[0])
        return _grouped_batch(perm, pixels, params, bank_used, jnp.int32(config.crop_pad), config.ops)

    return _on_pixels(run, images)


@partial(jax.jit, static_argnames=("ops",))
def _grouped_batch(perm: jax.Array, pixels: jax.Array, params: dict, bank: jax.Array | None, pad: jax.Array,
                   ops: tuple[str, ...]) -> jax.Array:
    """Operator ``k`` on the observations ``perm[k::n]`` (static group sizes), scattered back."""
    scale = _scale(pixels.dtype)
    frames = _to_frames(pixels)
    out = frames
    for k, op in enumerate(ops):
        idx = perm[k::len(ops)]
        group = jax.tree.map(lambda a: a[idx], params[op])
        out = out.at[idx].set(jax.vmap(lambda x, p: _apply(op, x, p, pad, scale, bank))(frames[idx], group))
    return _from_frames(out, pixels)


def resize_bank(bank: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Resize distractor images ``[N, Hb, Wb, 3]`` to ``[N, *size, 3]`` (bilinear, antialiased
    when shrinking) in the bank's dtype; do it once, outside the training step."""
    if bank.ndim != 4 or bank.shape[-1] != 3:
        raise ValueError(f"bank must be [N, H, W, 3], got shape {bank.shape}")
    out = jax.image.resize(bank.astype(jnp.float32), (bank.shape[0], *size, 3), "linear", antialias=True)
    if bank.dtype == jnp.uint8:
        return jnp.clip(jnp.round(out), 0, 255).astype(jnp.uint8)
    return out.astype(bank.dtype)


# ---------------------------------------------------------------------------- SAC/DDPG choice

def random_conv_pair(key: jax.Array, obs: Any, next_obs: Any, std: float = XAVIER_STD_3X3) -> tuple[Any, Any]:
    """NetRand-style random convolution of a transition -> ``(obs, next_obs)``.

    Sample ``i`` draws one kernel (``std * N(0, 1)`` weights, 3x3, 3 -> 3, sample ``i`` of
    ``draw_params("conv", key, ...)``) and applies it to every frame of both ``obs[i]`` and
    ``next_obs[i]``: the random layer stands for one randomised appearance, so the state and
    its successor look alike, as within one NetRand iteration (RAD instead draws separate
    kernels for the two). Same shapes, dtypes and dict handling as :func:`random_shift_pair`.
    """
    config = StrongAugConfig(ops=("conv",), conv_weight_std=float(std))
    return random_conv(key, obs, config), random_conv(key, next_obs, config)


__all__ = ["COLOR_MAP_FEATURES", "COMBOS", "NEEDS_BANK", "OPERATORS", "OPS", "Op", "StrongAugConfig", "XAVIER_STD_3X3",
           "color_map", "crop", "cutmix", "cutout_color", "draw_params", "gaussian_noise", "identity", "impulse_noise",
           "mixup", "operator_choices", "rad_random_conv", "random_conv", "random_conv_pair", "random_shift",
           "random_shift_pair", "resize_bank", "shift_offsets", "strong_augment"]
