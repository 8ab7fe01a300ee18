"""Textures for the ray-cast camera (:mod:`vasa.envs.render`): the model's 2D textures as
MuJoCo maps them on planes (with mipmaps), its skybox looked up by ray direction, and the
procedural textures (checker, grid, noise) that appearance randomisation draws.

MuJoCo's conventions, as its OpenGL renderer (``src/render/classic``) applies them and as
checked pixel by pixel against ``mujoco.Renderer``:

* plane texture coordinates: a finite plane of half-sizes ``(sx, sy)`` has ``u`` running
  from 0 at its ``-x`` edge to 1 at its ``+x`` edge and ``v`` from 0 at its ``+y`` edge to
  1 at its ``-y`` edge; an infinite plane (size 0) has ``u = x / 2 - 1/2`` and
  ``v = -y / 2 - 1/2``. Both are scaled by ``texrepeat`` and, for ``texuniform``
  materials, by the plane's size as well, so a uniform texture repeats every
  ``2 / texrepeat`` metres (a builtin checker, two cells a repeat, has ``1 / texrepeat``
  metre cells) counted from the ``-x`` and ``+y`` edges. Row 0 of the image is ``v = 0``.
* the skybox is a cube map (six stacked faces ``+x -x +y -y +z -z``, or one image for all
  six) looked up with the world direction ``(x, y, z)`` as the cube coordinate
  ``(x, z, -y)``: world up is face 2, world down face 3.
* textures are filtered (trilinear mipmaps); here the skybox is box-filtered once to the
  camera's pixel size and plane textures pick a mipmap level per ray from its footprint.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np


def texture_image(m: mujoco.MjModel, tid: int) -> np.ndarray:
    """Texture ``tid`` of ``m`` as ``float32 [h, w, 3]`` in [0, 1] (grey repeated; alpha dropped)."""
    w, h, c = int(m.tex_width[tid]), int(m.tex_height[tid]), int(m.tex_nchannel[tid])
    img = m.tex_data[m.tex_adr[tid]:m.tex_adr[tid] + w * h * c].reshape(h, w, c)
    if c == 1:
        img = np.repeat(img, 3, axis=-1)
    return img[..., :3].astype(np.float32) / 255.0


def _halve(img: np.ndarray) -> np.ndarray:
    """2x2 box filter (an odd last row or column is dropped)."""
    h, w = max(img.shape[0] // 2, 1), max(img.shape[1] // 2, 1)
    if img.shape[0] == 1:
        img = np.repeat(img, 2, 0)
    if img.shape[1] == 1:
        img = np.repeat(img, 2, 1)
    img = img[:2 * h, :2 * w]
    return img.reshape(h, 2, w, 2, 3).mean((1, 3))


# ----------------------------------------------------------------------------------------
# 2D textures with mipmaps, packed into one texel buffer
# ----------------------------------------------------------------------------------------


class MipTextures:
    """Several 2D images and their mipmap pyramids packed into one ``[N, 3]`` texel buffer,
    so a lookup is two gathers whatever the image and the level.

    Static (numpy) level tables: ``offset [I, L]``, ``height``/``width [I, L]`` per image
    ``I`` and level ``L`` (levels past an image's smallest repeat its 1x1 level).
    """

    def __init__(self, images: list[np.ndarray]):
        pyramids = []
        for img in images or [np.zeros((1, 1, 3), np.float32)]:
            levels = [np.asarray(img, np.float32)]
            while levels[-1].shape[0] > 1 or levels[-1].shape[1] > 1:
                levels.append(_halve(levels[-1]))
            pyramids.append(levels)
        n_levels = max(len(p) for p in pyramids)
        offset = np.zeros((len(pyramids), n_levels), np.int32)
        height = np.ones((len(pyramids), n_levels), np.int32)
        width = np.ones((len(pyramids), n_levels), np.int32)
        chunks, pos = [], 0
        for i, levels in enumerate(pyramids):
            for k in range(n_levels):
                lv = levels[min(k, len(levels) - 1)]
                if k < len(levels):
                    offset[i, k] = pos
                    chunks.append(lv.reshape(-1, 3))
                    pos += lv.shape[0] * lv.shape[1]
                else:
                    offset[i, k] = offset[i, len(levels) - 1]
                height[i, k], width[i, k] = lv.shape[:2]
        self.texels = jnp.asarray(np.concatenate(chunks), jnp.float32)
        self.offset, self.height, self.width = (jnp.asarray(a) for a in (offset, height, width))
        self.num_levels = n_levels
        self.base_size = np.array([[p[0].shape[0], p[0].shape[1]] for p in pyramids], np.float32)  # [I, 2]

    def sample(self, image: jax.Array, u: jax.Array, v: jax.Array, level: jax.Array) -> jax.Array:
        """Colour ``[R, 3]`` of image ``image [R]`` at texture coordinates ``u, v [R]``
        (repeating; row 0 at ``v = 0``), trilinear between the nearest texels of mipmap
        levels ``floor(level)`` and ``floor(level) + 1`` (``level [R]`` >= 0, 0 = full size)."""
        # computed once, not re-derived inside each gather's fused index computation
        image, u, v, level = jax.lax.optimization_barrier((image, u, v, jnp.clip(level, 0.0, self.num_levels - 1.0)))
        lo = jnp.floor(level).astype(jnp.int32)
        hi = jnp.minimum(lo + 1, self.num_levels - 1)
        fu, fv = u - jnp.floor(u), v - jnp.floor(v)

        def at(k):
            h, w = self.height[image, k], self.width[image, k]
            row = jnp.minimum(jnp.floor(fv * h).astype(jnp.int32), h - 1)
            col = jnp.minimum(jnp.floor(fu * w).astype(jnp.int32), w - 1)
            return self.texels[self.offset[image, k] + row * w + col]

        t = (level - lo)[:, None]
        return at(lo) * (1.0 - t) + at(hi) * t


def plane_uv_maps(m: mujoco.MjModel, geoms: np.ndarray, materials: np.ndarray) -> np.ndarray:
    """Per geom ``[G, 4]`` float32 ``(a_u, b_u, a_v, b_v)``: MuJoCo's texture coordinates of
    a plane are ``u = a_u x + b_u``, ``v = a_v y + b_v`` in the plane's frame (see the
    module docstring). ``geoms``: ids to fill; ``materials``: their material ids."""
    maps = np.zeros((m.ngeom, 4), np.float32)
    for g, mid in zip(geoms, materials, strict=True):
        sx, sy = float(m.geom_size[g, 0]), float(m.geom_size[g, 1])
        rep = [float(r) if r > 0 else 1.0 for r in m.mat_texrepeat[mid]]
        uniform = bool(m.mat_texuniform[mid])
        off = -0.5 if (sx <= 0 or sy <= 0) else 0.0
        scl = [rep[0] * (sx if uniform and sx > 0 else 1.0), rep[1] * (sy if uniform and sy > 0 else 1.0)]
        # u0 = (x + sx) / (2 sx) or x / 2; v0 = 1 - (y + sy) / (2 sy) or -y / 2
        a_u0, b_u0 = (1 / (2 * sx), 0.5) if sx > 0 else (0.5, 0.0)
        a_v0, b_v0 = (-1 / (2 * sy), 0.5) if sy > 0 else (-0.5, 0.0)
        maps[g] = [scl[0] * a_u0, scl[0] * b_u0 + off, scl[1] * a_v0, scl[1] * b_v0 + off]
    return maps


# ----------------------------------------------------------------------------------------
# skybox
# ----------------------------------------------------------------------------------------


def skybox_faces(m: mujoco.MjModel, pixel_angle: float) -> np.ndarray | None:
    """The model's first skybox as ``float32 [6, S, S, 3]`` cube faces, box-filtered so a
    texel spans about ``pixel_angle`` radians at a face's centre (what a mipmap lookup for
    one pixel averages); None without a skybox."""
    sky = [t for t in range(m.ntex) if m.tex_type[t] == int(mujoco.mjtTexture.mjTEXTURE_SKYBOX)]
    if not sky:
        return None
    img = texture_image(m, sky[0])
    w = img.shape[1]
    faces = img.reshape(6, w, w, 3) if img.shape[0] == 6 * w else np.broadcast_to(img[:w, :w], (6, w, w, 3))
    # a face spans tan in [-1, 1]: w / 2 texels per radian near its centre
    k = 2 ** max(round(math.log2(max(pixel_angle * w / 2, 1.0))), 0)
    s = w // k
    faces = faces[:, :s * k, :s * k].reshape(6, s, k, s, k, 3).mean((2, 4))
    return np.ascontiguousarray(faces, np.float32)


def skybox_lookup(faces: jax.Array, dirs: jax.Array) -> jax.Array:
    """Colour ``[R, 3]`` of the cube map ``faces [6, S, S, 3]`` in world directions
    ``dirs [R, 3]`` (OpenGL's cube-map face selection, MuJoCo's skybox orientation)."""
    dirs = jax.lax.optimization_barrier(dirs)  # not re-derived inside the gather
    s, t, r = dirs[:, 0], dirs[:, 2], -dirs[:, 1]
    a = jnp.stack([jnp.abs(s), jnp.abs(t), jnp.abs(r)], -1)
    axis = jnp.argmax(a, -1)
    ma = jnp.maximum(jnp.max(a, -1), 1e-12)
    pos = jnp.take_along_axis(jnp.stack([s, t, r], -1), axis[:, None], -1)[:, 0] >= 0
    face = 2 * axis + jnp.where(pos, 0, 1)
    # (sc, tc) per face, OpenGL table 3.19: +x (-r,-t) -x (r,-t) +y (s,r) -y (s,-r) +z (s,-t) -z (-s,-t)
    sc = jnp.select([face == 0, face == 1, face == 5], [-r, r, -s], s)
    tc = jnp.select([face == 2, face == 3], [r, -r], -t)
    n = faces.shape[1]
    col = jnp.clip(jnp.floor((sc / ma + 1.0) * 0.5 * n).astype(jnp.int32), 0, n - 1)
    row = jnp.clip(jnp.floor((tc / ma + 1.0) * 0.5 * n).astype(jnp.int32), 0, n - 1)
    return faces[face, row, col]


# ----------------------------------------------------------------------------------------
# procedural textures
# ----------------------------------------------------------------------------------------


def lattice_hash(cell, seed):
    """Deterministic hash of integer lattice cells ``[..., 3]`` (float32 holding integers)
    and a float seed ``[...]`` -> ``[...]`` in [0, 1): integer mixing (cheap on every
    backend, unlike the classic ``fract(sin(x) * 43758)``)."""
    c = cell.astype(jnp.int32).astype(jnp.uint32)
    h = (c[..., 0] * jnp.uint32(73856093)) ^ (c[..., 1] * jnp.uint32(19349663)) ^ (c[..., 2] * jnp.uint32(83492791))
    h = h ^ jax.lax.bitcast_convert_type(seed.astype(jnp.float32), jnp.uint32)
    h = (h ^ (h >> 16)) * jnp.uint32(0x7FEB352D)
    h = (h ^ (h >> 15)) * jnp.uint32(0x846CA68B)
    h = h ^ (h >> 16)
    return (h >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def cell_noise(p, seed):
    """Two-octave cell noise at points ``p [..., 3]`` -> ``[...]`` in [0, 1): a random
    value per unit cell blended with one per half cell (two hashes per point; smooth
    trilinear value noise would cost eight)."""
    return 0.65 * lattice_hash(jnp.floor(p), seed) + 0.35 * lattice_hash(jnp.floor(2.0 * p) + 1e4, seed)
