"""Image augmentations for pixel-based RL.

``random_shift`` is DrQ's weak augmentation (Kostrikov et al., 2020): replicate-pad each image
by ``pad`` pixels on every spatial side and crop it back to its original size at an integer
offset drawn uniformly and independently per sample, i.e. translate it by up to ``pad`` pixels
in each direction with the border pixels repeated. All functions are pure and jit-able with
``pad`` static.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


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
