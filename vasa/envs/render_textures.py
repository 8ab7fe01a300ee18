"""Textures for the ray-cast camera (:mod:`vasa.envs.render`): the model's 2D textures as
MuJoCo maps them on planes (with mipmaps), its skybox looked up by ray direction, and the
procedural textures (checker, grid, noise) that appearance randomisation draws; with them,
the colour of a surface before lighting (:class:`GeomTextures`, per geom texture kind
:data:`TEXTURE_KINDS`) and of the background (:func:`background`, kinds ``BG_*``).

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

from vasa.envs.render_geometry import PLANE, Hits

# texture kinds, per geom (Appearance.geom_texture)
TEX_NONE, TEX_CHECKER, TEX_GRID, TEX_NOISE, TEX_MODEL, TEX_BACKGROUND, TEX_MODEL_RECOLOUR = 0, 1, 2, 3, 4, 5, 6
TEXTURE_KINDS = {"none": TEX_NONE, "checker": TEX_CHECKER, "grid": TEX_GRID, "noise": TEX_NOISE,
                 "model": TEX_MODEL, "background": TEX_BACKGROUND, "model_recolour": TEX_MODEL_RECOLOUR}
# background kinds (Appearance.background)
BG_GRADIENT, BG_WAVES, BG_VIDEO, BG_SKYBOX = 0, 1, 2, 3


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
# a model's geoms: texture tables and surface colour
# ----------------------------------------------------------------------------------------


class GeomTextures:
    """The textures of a model's drawn geoms, and the colour of ray hits before lighting.

    Built from the model ``m``, its drawn geoms ``drawn [G] bool`` and MuJoCo's colour per
    geom ``rgb [G, 3]`` (the material's or the geom's rgba: a texture's tint). The model's
    own look, as numpy arrays: ``base_rgb``, ``base_rgb2 [G, 3]`` the two colours of each
    geom (``rgb`` and ``0.6 rgb``; for a geom drawn with the model's 2D texture, the
    texture's two main colours, tinted), ``base_cell [G]`` the procedural cell size in
    metres, ``has_model_texture [G] bool`` the geoms drawn with the model's 2D texture.
    """

    def __init__(self, m: mujoco.MjModel, drawn: np.ndarray, rgb: np.ndarray):
        self._geom_type = jnp.asarray(m.geom_type, jnp.int32)
        self.base_rgb = rgb.copy()
        self.base_rgb2 = self.base_rgb * 0.6
        self.base_cell = np.full(m.ngeom, 0.25, np.float32)
        mat_tex = m.mat_texid if m.mat_texid.ndim == 2 else m.mat_texid[:, None]
        role_rgb = int(mujoco.mjtTextureRole.mjTEXROLE_RGB) if mat_tex.shape[1] > 1 else 0
        texture_c1, texture_c2 = np.zeros((m.ngeom, 3), np.float32), np.zeros((m.ngeom, 3), np.float32)
        images, geom_img, cache = [], np.full(m.ngeom, -1, np.int32), {}
        textured, materials = [], []
        for g in range(m.ngeom):
            mid = m.geom_matid[g]
            if mid < 0 or not drawn[g]:
                continue
            tid = mat_tex[mid, role_rgb]
            if tid < 0 or m.tex_type[tid] != int(mujoco.mjtTexture.mjTEXTURE_2D):
                continue
            if tid not in cache:
                cache[tid] = len(images)
                images.append(texture_image(m, tid))
            geom_img[g] = cache[tid]
            textured.append(g)
            materials.append(mid)
            # the texture's two main colours (a checker's two cells), tinted, become the geom's
            # colours, so recolouring (randomisation) starts from the look of the model
            img = images[cache[tid]]
            h, w = img.shape[:2]
            texture_c1[g], texture_c2[g] = img[h // 4, w // 4], img[h // 4, 3 * w // 4]
            self.base_rgb[g] = texture_c1[g] * rgb[g]
            self.base_rgb2[g] = texture_c2[g] * rgb[g]
            rep = max(float(m.mat_texrepeat[mid, 0]), 1e-6)
            self.base_cell[g] = (1.0 if m.mat_texuniform[mid] else m.geom_size[g, 0]) / rep
        self._tex = MipTextures(images)
        self._geom_img = jnp.asarray(geom_img)
        # numpy until stored: a Renderer may be built inside a traced function, where jnp
        # arrays are tracers that numpy cannot read
        maps = np.asarray(plane_uv_maps(m, np.asarray(textured, int), np.asarray(materials, int)))
        self._uv_maps = jnp.asarray(maps)
        # texels per metre along u and v at full size, for the mipmap level of a ray
        density = np.zeros(m.ngeom, np.float32)
        for g in textured:
            th, tw = self._tex.base_size[geom_img[g]]
            density[g] = max(abs(maps[g, 0]) * tw, abs(maps[g, 2]) * th)
        self._tex_density = jnp.asarray(density)
        self._tint = jnp.asarray(rgb)
        self._texture_c1, self._texture_c2 = jnp.asarray(texture_c1), jnp.asarray(texture_c2)
        self.has_model_texture = geom_img >= 0

    def surface(self, app, hits: Hits, dirs: jax.Array, travelled: jax.Array,
                pixel_angle: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Material colour ``[R, 3]`` and texel ``[R, 3]`` of the hits (the lit colour is
        ``light(colour) * texel``, as OpenGL's ``GL_MODULATE``).

        Procedural textures give the colour and a texel of 1. The model's 2D texture gives
        MuJoCo's colour (material or geom rgba: the texture's tint) and the texel, sampled
        with a mipmap level from the ray's footprint (``travelled + distance`` metres from
        the eye, ``pixel_angle`` radians a ray). Recolouring a model-textured geom (moving
        ``geom_rgb`` away from the texture's main colour) moves the tint by the same amount.
        ``app`` is the :class:`vasa.envs.render.Appearance` drawn.
        """
        geom, local = hits.geom_id, hits.local
        g = jnp.maximum(geom, 0)
        c1, c2 = app.geom_rgb[g], app.geom_rgb2[g]
        kind = app.geom_texture[g]
        scale = jnp.maximum(app.geom_texture_scale[g], 1e-6)[:, None]
        is_plane = (self._geom_type[g] == PLANE)[:, None]
        q = jnp.where(is_plane, local * jnp.array([1.0, 1.0, 0.0]), local) / scale
        cell = jnp.floor(q)
        checker = jnp.mod(jnp.sum(cell, -1), 2.0) > 0.5
        frac = q - cell
        line = jnp.any((frac < 0.08) & jnp.where(is_plane, jnp.array([True, True, False]), True), -1)
        noise = cell_noise(q * 2.0, app.geom_texture_seed[g])[:, None]
        colour = jnp.select(
            [kind[:, None] == TEX_CHECKER, kind[:, None] == TEX_GRID, kind[:, None] == TEX_NOISE],
            [jnp.where(checker[:, None], c1, c2), jnp.where(line[:, None], c2, c1), c1 + (c2 - c1) * noise], c1)
        if not self.has_model_texture.any():
            return colour, jnp.ones_like(colour)
        # the model's texture, mapped as MuJoCo maps it on planes (other shapes: the same
        # map of their local x, y)
        maps = self._uv_maps[g]
        u = maps[:, 0] * local[:, 0] + maps[:, 1]
        v = maps[:, 2] * local[:, 1] + maps[:, 3]
        cos = jnp.abs(jnp.sum(dirs * hits.normal, -1))
        footprint = (travelled + jnp.where(jnp.isfinite(hits.distance), hits.distance, 0.0)) * pixel_angle
        level = jnp.log2(jnp.maximum(footprint / jnp.maximum(cos, 0.05) * self._tex_density[g], 1.0))
        texel = self._tex.sample(jnp.maximum(self._geom_img[g], 0), u, v, level)
        model = (kind == TEX_MODEL)[:, None]
        tint = self._tint[g] + (c1 - jnp.asarray(self.base_rgb)[g])
        t1, t2 = self._texture_c1[g], self._texture_c2[g]
        axis = t2 - t1
        s = jnp.sum((texel - t1) * axis, -1, keepdims=True) / jnp.maximum(jnp.sum(axis * axis, -1, keepdims=True), 1e-6)
        # lit as MuJoCo lights a texture: the tint is the material colour, the texel modulates
        recoloured = (c1 + (c2 - c1) * jnp.clip(s, 0.0, 1.0)) / jnp.maximum(self._tint[g], 1e-3)
        recolour = (kind == TEX_MODEL_RECOLOUR)[:, None]
        colour = jnp.where(model, tint, jnp.where(recolour, self._tint[g], colour))
        return colour, jnp.where(model, texel, jnp.where(recolour, recoloured, 1.0))


# ----------------------------------------------------------------------------------------
# skybox
# ----------------------------------------------------------------------------------------


def _skybox_full(m: mujoco.MjModel) -> np.ndarray | None:
    """The model's first skybox at full resolution, ``float32 [6, w, w, 3]``; None without one."""
    sky = [t for t in range(m.ntex) if m.tex_type[t] == int(mujoco.mjtTexture.mjTEXTURE_SKYBOX)]
    if not sky:
        return None
    img = texture_image(m, sky[0])
    w = img.shape[1]
    return img.reshape(6, w, w, 3) if img.shape[0] == 6 * w else np.broadcast_to(img[:w, :w], (6, w, w, 3))


def skybox_faces(m: mujoco.MjModel, pixel_angle: float) -> np.ndarray | None:
    """The model's first skybox as ``float32 [6, S, S, 3]`` cube faces, box-filtered so a
    texel spans about ``pixel_angle`` radians at a face's centre (what a mipmap lookup for
    one pixel averages); None without a skybox."""
    faces = _skybox_full(m)
    if faces is None:
        return None
    w = faces.shape[1]
    # a face spans tan in [-1, 1]: w / 2 texels per radian near its centre
    k = 2 ** max(round(math.log2(max(pixel_angle * w / 2, 1.0))), 0)
    s = w // k
    faces = faces[:, :s * k, :s * k].reshape(6, s, k, s, k, 3).mean((2, 4))
    return np.ascontiguousarray(faces, np.float32)


def skybox_gradient_colours(m: mujoco.MjModel) -> tuple[np.ndarray, np.ndarray] | None:
    """The skybox's zenith and nadir colours, ``float32 [3]`` each (a gradient skybox's
    ``rgb1`` and ``rgb2``): medians of the full-resolution texels around the centres of the
    up and down faces, so a mark there does not count; None without a skybox."""
    full = _skybox_full(m)
    if full is None:
        return None
    c, k = full.shape[1] // 2, max(full.shape[1] // 64, 1)
    patch = full[:, c - k:c + k + 1, c - k:c + k + 1].reshape(6, -1, 3)
    return np.median(patch[2], 0).astype(np.float32), np.median(patch[3], 0).astype(np.float32)


def skybox_recolour_basis(m: mujoco.MjModel, faces: np.ndarray, top: np.ndarray, bottom: np.ndarray,
                          min_mark: float = 0.05) -> np.ndarray:
    """Split the skybox ``faces [6, S, S, 3]`` (:func:`skybox_faces`) so its gradient colours
    can be redrawn: ``float32 [6, S, S, 5]`` = ``(fixed [3], a, b)`` per texel with
    ``texel = fixed + a * top + b * bottom``.

    MuJoCo's builtin ``gradient`` skybox mixes ``rgb1`` (``top``, the zenith) and ``rgb2``
    (``bottom``, the nadir) by elevation and paints random marks in ``markrgb`` (DMControl's
    stars, white); a box filter keeps every texel a linear mix of the three. Each texel is
    solved for its weights of ``top - bottom`` and ``mark - bottom`` (least squares); the mark
    colour is the full-resolution texel furthest from the ``bottom -> top`` segment (no marks
    when that is under ``min_mark``). ``fixed + a * top' + b * bottom'`` is then the skybox
    MuJoCo builds with ``rgb1 = top'`` and ``rgb2 = bottom'``, marks unchanged, which is what
    DMControl-GB's colour suites do (they rewrite ``skybox_rgb``, the gradient's ``rgb1``);
    at ``top' = top, bottom' = bottom`` it returns ``faces``.
    """
    top, bottom = np.asarray(top, np.float64), np.asarray(bottom, np.float64)
    rel = _skybox_full(m).reshape(-1, 3) - bottom.astype(np.float32)  # float32: 6 w^2 texels
    axis = top - bottom
    t = np.clip(rel @ axis.astype(np.float32) / max(axis @ axis, 1e-12), 0.0, 1.0)
    rel -= t[:, None] * axis.astype(np.float32)
    dist2 = np.einsum("ij,ij->i", rel, rel)
    basis = [axis]
    if dist2.max() >= min_mark ** 2:
        i = int(np.argmax(dist2))
        basis.append(rel[i] + t[i] * axis)  # that texel minus bottom
    basis = np.stack(basis, -1)  # [3, 1 or 2]
    x = faces.reshape(-1, 3).astype(np.float64) - bottom
    coef = np.linalg.lstsq(basis, x.T, rcond=None)[0].T  # [N, 1 or 2]
    a = coef[:, 0]
    b = 1.0 - coef.sum(-1)  # the weight of rgb2 in the gradient part of each texel
    fixed = x + bottom - a[:, None] * top - b[:, None] * bottom
    out = np.concatenate([fixed, a[:, None], b[:, None]], -1).reshape(faces.shape[:3] + (5,))
    return np.ascontiguousarray(out, np.float32)


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
# backgrounds
# ----------------------------------------------------------------------------------------


def background(app, dirs: jax.Array, t: jax.Array, h: int, w: int, *, video: jax.Array | None = None,
               skybox: jax.Array | None = None) -> jax.Array:
    """Background colour ``[h*w, 3]`` for the camera's rays ``dirs`` (an ``h x w`` grid)
    at frame ``t``, of the kind ``app.background`` (``app``: a
    :class:`vasa.envs.render.Appearance`): a vertical gradient, moving waves, a frame of
    ``video [V, F, h, w, 3] uint8`` or the ``skybox`` cube map, as
    :func:`skybox_recolour_basis` splits it, in the gradient colours ``app.bg_top`` and
    ``app.bg_bottom``."""
    s = 0.5 + 0.5 * dirs[:, 2:3]
    grad = app.bg_bottom + (app.bg_top - app.bg_bottom) * s
    v, u = jnp.meshgrid(jnp.linspace(0.0, 1.0, h), jnp.linspace(0.0, 1.0, w), indexing="ij")
    uv = jnp.stack([u.reshape(-1), v.reshape(-1)], -1)  # [H*W, 2]
    phase = uv @ app.wave_freq.T * (2 * jnp.pi) + app.wave_speed * t + app.wave_phase  # [P, 3]
    waves = (0.5 + 0.5 * jnp.sin(phase)) @ app.wave_rgb / 1.5
    out = jnp.where(app.background == BG_WAVES, jnp.clip(waves, 0, 1), grad)
    if video is not None:
        vid = video[jnp.clip(app.video_index, 0, video.shape[0] - 1)]
        f, vh, vw = vid.shape[:3]
        frame = vid[(app.video_offset + t) % f]
        rows = jnp.arange(h) * vh // h
        cols = jnp.arange(w) * vw // w
        img = frame[rows][:, cols].reshape(-1, 3).astype(jnp.float32) / 255.0
        out = jnp.where(app.background == BG_VIDEO, img, out)
    if skybox is not None:
        sky = skybox_lookup(skybox, dirs)
        sky = sky[:, :3] + sky[:, 3:4] * app.bg_top + sky[:, 4:5] * app.bg_bottom
        out = jnp.where(app.background == BG_SKYBOX, jnp.clip(sky, 0.0, 1.0), out)
    return out


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
