"""Pure-JAX ray-cast sensors for MuJoCo/MJX scenes: camera (RGB, depth, segmentation,
normals) and LiDAR, batched with ``jax.vmap`` and run where the physics runs.

Why ray casting: DM Control and locomotion scenes hold a handful of analytic primitives, so
casting one ray per pixel against every geom (closed-form intersections, no BVH) is cheap
and fully vectorised; it needs neither OpenGL nor Warp, and it is exact: distances and geom
ids match MuJoCo's C ray caster ``mj_ray`` (tested to 1e-4 m).

Cost: ``rays x geoms`` closed-form tests for primitives, plus ``rays x triangles``
Moeller-Trumbore tests for meshes (brute force, no acceleration structure: a 1,000-triangle
mesh costs about as much as 150 primitives, so prefer primitive collision geoms or low-poly
visual meshes). Optional terms cast more: a shadow ray per pixel and shadow-casting light,
a mirrored ray per pixel for reflections, ``s^2`` rays per pixel for supersampling; the
``mujoco`` lighting itself costs little over ``fast`` (``benchmarks/render_throughput.py``).

Conventions (MuJoCo's):
  * a camera looks along its local ``-z`` with ``+y`` up and ``+x`` right; ``fovy`` is the
    vertical field of view in degrees;
  * ``distance`` is the length along the (unit) ray, as ``mj_ray`` returns; ``depth`` is the
    distance along the camera's optical axis (what a depth camera and MuJoCo's depth
    buffer report), both in metres, ``inf`` for background;
  * segmentation gives geom and body ids, ``-1`` for background;
  * planes are one-sided (seen only from their ``+z`` side) and finite when their size is
    positive, as in ``mj_ray``; rays starting inside a solid report its exit point.

Which geoms are drawn: those in the visible geom groups (default 0, 1, 2, MuJoCo's default
visualisation) that are not fully transparent. The camera follows MuJoCo's renderer
(``visibility="renderer"``): a geom is hidden when its *effective* rgba has alpha 0 (the
geom's rgba, or its material's when the geom has a material and its own rgba is left at
MuJoCo's default), so images and segmentation match ``mujoco.Renderer``'s. LiDAR
(:class:`Lidar`) keeps ``mj_ray``'s rule (``visibility="mj_ray"``: the material's alpha when
the geom has a material, else the geom's): a range sensor should see what MuJoCo's own
ray-cast sensors (rangefinders, ``mj_ray``) see, and the two rules differ only for a geom
with a material whose own rgba is set to alpha 0 (or the reverse). Partly transparent geoms
are drawn opaque.

The look: textures, skybox and the two lighting models (``shading="fast"`` or
``"mujoco"``, which reproduces MuJoCo's OpenGL renderer: headlight, every model light,
specular, emission, shadows, one mirror bounce for reflective floors, supersampling) live in
:mod:`vasa.envs.render_textures` and :mod:`vasa.envs.render_shading`. Appearance is data:
:class:`Appearance` is a pytree of per-geom colours, textures and material terms, lights,
background and camera jitter, so each of thousands of vmapped environments can draw its own
(see :mod:`vasa.envs.randomize`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Annotated, Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from vasa.envs.render_shading import ModelLights, light_terms, rotation_between
from vasa.envs.render_textures import MipTextures, cell_noise, plane_uv_maps, skybox_faces, skybox_lookup, texture_image
from vasa.run.fields import NonNegFloat, PosFloat, PosInt, Range, check_fields, ordered_pair

# geom types (mujoco.mjtGeom)
PLANE, HFIELD, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX, MESH, SDF = (
    int(mujoco.mjtGeom.mjGEOM_PLANE), int(mujoco.mjtGeom.mjGEOM_HFIELD), int(mujoco.mjtGeom.mjGEOM_SPHERE),
    int(mujoco.mjtGeom.mjGEOM_CAPSULE), int(mujoco.mjtGeom.mjGEOM_ELLIPSOID), int(mujoco.mjtGeom.mjGEOM_CYLINDER),
    int(mujoco.mjtGeom.mjGEOM_BOX), int(mujoco.mjtGeom.mjGEOM_MESH), int(mujoco.mjtGeom.mjGEOM_SDF),
)
PRIMITIVES = (PLANE, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX)

# texture kinds, per geom (Appearance.geom_texture)
TEX_NONE, TEX_CHECKER, TEX_GRID, TEX_NOISE, TEX_MODEL, TEX_BACKGROUND = 0, 1, 2, 3, 4, 5
TEXTURE_KINDS = {"none": TEX_NONE, "checker": TEX_CHECKER, "grid": TEX_GRID, "noise": TEX_NOISE,
                 "model": TEX_MODEL, "background": TEX_BACKGROUND}
# background kinds (Appearance.background)
BG_GRADIENT, BG_WAVES, BG_VIDEO, BG_SKYBOX = 0, 1, 2, 3
SHADING = ("fast", "mujoco")
VISIBILITY = ("renderer", "mj_ray")

OUTPUTS = ("rgb", "depth", "distance", "geom_id", "body_id", "normals")
_FAR = 1e10  # larger than any scene; "no hit" is reported as inf
_EPS = 1e-12


# ----------------------------------------------------------------------------------------
# data types
# ----------------------------------------------------------------------------------------


@struct.dataclass
class Camera:
    """A camera pose: ``pos [3]`` (world), ``mat [3, 3]`` whose columns are the camera's
    x (right), y (up) and z (backwards) axes in world coordinates, and ``fovy []`` in
    degrees. All float32 leaves; batch them with ``vmap``."""

    pos: jax.Array
    mat: jax.Array
    fovy: jax.Array


def look_at(pos, target, up=(0.0, 0.0, 1.0), fovy: float = 45.0) -> Camera:
    """A free camera at ``pos [3]`` looking at ``target [3]`` with world ``up [3]``."""
    pos = jnp.asarray(pos, jnp.float32)
    back = pos - jnp.asarray(target, jnp.float32)
    back = back / jnp.linalg.norm(back)
    right = jnp.cross(jnp.asarray(up, jnp.float32), back)
    right = right / jnp.maximum(jnp.linalg.norm(right), _EPS)
    cam_up = jnp.cross(back, right)
    return Camera(pos=pos, mat=jnp.stack([right, cam_up, back], axis=1), fovy=jnp.asarray(fovy, jnp.float32))


@struct.dataclass
class Appearance:
    """Everything about how a scene looks, as arrays (G = number of geoms in the model).

    geom_rgb: ``[G, 3] float32`` in [0, 1], base colour per geom (for a geom drawn with the
      model's texture: the texture's main colour times MuJoCo's tint; moving it moves the
      tint by as much, which recolours every texel without zeroing any channel).
    geom_rgb2: ``[G, 3] float32``, second colour of procedural textures.
    geom_texture: ``[G] int32``, one of :data:`TEXTURE_KINDS` (``model`` samples the
      model's own 2D texture; ``background`` shows the background through the geom, as
      DMControl-GB's video_hard does with the floor; depth and segmentation still see it).
    geom_texture_scale: ``[G] float32``, procedural texture cell size in metres.
    geom_texture_seed: ``[G] float32``, offsets the noise texture.
    geom_specular, geom_shininess, geom_emission, geom_reflectance: ``[G] float32``,
      MuJoCo's material terms (``shading="mujoco"``; reflectance also needs the renderer's
      ``reflections``).
    light_dir: ``[3] float32``. ``fast``: the direction the one directional light travels
      (world). ``mujoco``: the first model light's direction at ``qpos0``; moving it
      rotates every model light's direction by the same rotation.
    light_intensity, ambient: ``[] float32``. ``fast``: diffuse and ambient strength.
      ``mujoco``: multipliers (default 1) of every light's diffuse and specular, and of
      its ambient colour.
    headlight: ``[3, 3] float32``, MuJoCo's headlight ambient, diffuse and specular rows
      (``mujoco``; follows the camera).
    light_ambient, light_diffuse, light_specular: ``[K, 3] float32``, colours of the
      model's K drawn lights (``mujoco``).
    background: ``[] int32``: 0 vertical gradient ``bg_bottom -> bg_top`` (by ray
      elevation), 1 procedural moving waves, 2 frames of the renderer's video, 3 the
      model's skybox (by ray direction; the default when the model has one).
    bg_top, bg_bottom: ``[3] float32`` gradient colours.
    wave_rgb ``[3, 3]``, wave_freq ``[3, 2]``, wave_speed ``[3]``, wave_phase ``[3]``:
      three travelling colour waves over screen coordinates (background 1).
    video_index, video_offset: ``[] int32``, which video and which start frame (background 2).
    cam_pos_offset: ``[3]`` metres in the camera frame; cam_rot_offset: ``[3]`` radians
      (rotation vector in the camera frame); fovy_offset: ``[]`` degrees. Camera jitter.
    """

    geom_rgb: jax.Array
    geom_rgb2: jax.Array
    geom_texture: jax.Array
    geom_texture_scale: jax.Array
    geom_texture_seed: jax.Array
    geom_specular: jax.Array
    geom_shininess: jax.Array
    geom_emission: jax.Array
    geom_reflectance: jax.Array
    light_dir: jax.Array
    light_intensity: jax.Array
    ambient: jax.Array
    headlight: jax.Array
    light_ambient: jax.Array
    light_diffuse: jax.Array
    light_specular: jax.Array
    background: jax.Array
    bg_top: jax.Array
    bg_bottom: jax.Array
    wave_rgb: jax.Array
    wave_freq: jax.Array
    wave_speed: jax.Array
    wave_phase: jax.Array
    video_index: jax.Array
    video_offset: jax.Array
    cam_pos_offset: jax.Array
    cam_rot_offset: jax.Array
    fovy_offset: jax.Array


@struct.dataclass
class Hits:
    """Result of :meth:`Renderer.cast` for ``R`` rays.

    distance ``[R] float32`` (inf: no hit), geom_id ``[R] int32`` (-1: no hit), normal
    ``[R, 3] float32`` (world, unit, facing the ray's origin; zero for no hit), point
    ``[R, 3]`` world hit point, local ``[R, 3]`` hit point in the geom's frame.
    """

    distance: jax.Array
    geom_id: jax.Array
    normal: jax.Array
    point: jax.Array
    local: jax.Array


def _get(data, name: str) -> jax.Array:
    """Field ``name`` of an ``mjx.Data``, a ``mujoco.MjData`` or a dict, as float32."""
    return jnp.asarray(data[name] if isinstance(data, dict) else getattr(data, name), jnp.float32)


def data_dict(data, fields: Sequence[str] = ("geom_xpos", "geom_xmat", "cam_xpos", "cam_xmat", "site_xpos",
                                              "site_xmat", "xpos", "xmat", "light_xpos", "light_xdir")
              ) -> dict[str, np.ndarray]:
    """The pose fields of a ``mujoco.MjData`` as a dict of arrays, which every sensor here
    accepts in place of an ``mjx.Data`` (for scenes MJX cannot simulate)."""
    return {f: np.asarray(getattr(data, f), np.float32) for f in fields}


def _poses(data) -> tuple[jax.Array, jax.Array]:
    """``geom_xpos [G, 3]`` and ``geom_xmat [G, 3, 3]`` of an ``mjx.Data``, ``MjData`` or dict."""
    pos = _get(data, "geom_xpos")
    return pos, _get(data, "geom_xmat").reshape(pos.shape[0], 3, 3)


# ----------------------------------------------------------------------------------------
# closed-form intersections in the geom's local frame. lp, lv: [..., 3] (lv unit length);
# size: [..., 3]. Return the nearest t >= 0 along the ray, inf for a miss.
# ----------------------------------------------------------------------------------------


def _nearest(*ts):
    out = jnp.full(ts[0].shape, jnp.inf, ts[0].dtype)
    for t in ts:
        out = jnp.minimum(out, jnp.where(t >= 0, t, jnp.inf))
    return out


def _sphere_roots(p, v, r2):
    """Where ``p + t v`` meets the sphere ``|x|^2 = r2`` (vectors on the last axis, any
    dimension): both roots, inf where there is none, NaN-free.

    Uses the closest approach to the centre (Ray Tracing Gems, ch. 7) rather than the
    textbook discriminant ``b^2 - ac``, which cancels catastrophically in float32 when the
    ray starts far from a small geom (1e-4 m errors at a few metres)."""
    a = jnp.sum(v * v, -1)
    ok_a = a > _EPS
    a_safe = jnp.where(ok_a, a, 1.0)
    tc = -jnp.sum(p * v, -1) / a_safe
    q = p + tc[..., None] * v
    h = (r2 - jnp.sum(q * q, -1)) / a_safe
    ok = ok_a & (h >= 0)
    sq = jnp.sqrt(jnp.where(ok, h, 0.0))
    return jnp.where(ok, tc - sq, jnp.inf), jnp.where(ok, tc + sq, jnp.inf)


def _rotate_into(v, mat):
    """``v @ mat`` for ``v [..., 3]`` and ``mat [..., 3, 3]`` (world -> local when ``mat``
    is a geom's ``xmat``), written elementwise so XLA fuses it with the intersection math
    instead of materialising ``[rays, geoms, 3]`` products through a matmul."""
    return v[..., 0:1] * mat[..., 0, :] + v[..., 1:2] * mat[..., 1, :] + v[..., 2:3] * mat[..., 2, :]


def _hit_plane(lp, lv, size):
    front = lv[..., 2] < -_EPS
    t = -lp[..., 2] / jnp.where(front, lv[..., 2], -1.0)
    x, y = lp[..., 0] + t * lv[..., 0], lp[..., 1] + t * lv[..., 1]
    inside = ((size[..., 0] <= 0) | (jnp.abs(x) <= size[..., 0])) & ((size[..., 1] <= 0) | (jnp.abs(y) <= size[..., 1]))
    return jnp.where(front & inside & (t >= 0), t, jnp.inf)


def _hit_sphere(lp, lv, size):
    return _nearest(*_sphere_roots(lp, lv, size[..., 0] ** 2))


def _hit_ellipsoid(lp, lv, size):
    s = jnp.maximum(size, _EPS)
    return _nearest(*_sphere_roots(lp / s, lv / s, 1.0))


def _side(lp, lv, r, h):
    """Infinite cylinder of radius r around z, kept where |z| <= h."""
    t0, t1 = _sphere_roots(lp[..., :2], lv[..., :2], r * r)
    keep = lambda t: jnp.where(jnp.abs(lp[..., 2] + t * lv[..., 2]) <= h, t, jnp.inf)  # noqa: E731
    return keep(t0), keep(t1)


def _hit_capsule(lp, lv, size):
    r, h = size[..., 0], size[..., 1]
    ts = list(_side(lp, lv, r, h))
    for sign in (-1.0, 1.0):
        q = lp - jnp.stack([jnp.zeros_like(h), jnp.zeros_like(h), sign * h], -1)
        # only the cap's outer hemisphere belongs to the surface
        for t in _sphere_roots(q, lv, r * r):
            ts.append(jnp.where(sign * (q[..., 2] + t * lv[..., 2]) >= 0, t, jnp.inf))
    return _nearest(*ts)


def _hit_cylinder(lp, lv, size):
    r, h = size[..., 0], size[..., 1]
    ts = list(_side(lp, lv, r, h))
    vz = jnp.where(jnp.abs(lv[..., 2]) > _EPS, lv[..., 2], _EPS)
    for sign in (-1.0, 1.0):
        t = (sign * h - lp[..., 2]) / vz
        x, y = lp[..., 0] + t * lv[..., 0], lp[..., 1] + t * lv[..., 1]
        ts.append(jnp.where((jnp.abs(lv[..., 2]) > _EPS) & (x * x + y * y <= r * r), t, jnp.inf))
    return _nearest(*ts)


def _hit_box(lp, lv, size):
    v = jnp.where(jnp.abs(lv) > _EPS, lv, jnp.where(lv >= 0, _EPS, -_EPS))
    t1, t2 = (-size - lp) / v, (size - lp) / v
    near = jnp.max(jnp.minimum(t1, t2), -1)
    far = jnp.min(jnp.maximum(t1, t2), -1)
    hit = (near <= far) & (far >= 0) & (far < _FAR)
    return jnp.where(hit, jnp.where(near >= 0, near, far), jnp.inf)


_HIT = {PLANE: _hit_plane, SPHERE: _hit_sphere, CAPSULE: _hit_capsule, ELLIPSOID: _hit_ellipsoid,
        CYLINDER: _hit_cylinder, BOX: _hit_box}


def _local_normal(gtype, lp, size):
    """Outward normal at local hit point ``lp [R, 3]`` of geoms of type ``gtype [R]``."""
    z = jnp.zeros_like(lp[..., 0])
    plane = jnp.stack([z, z, jnp.ones_like(z)], -1)
    sphere = lp
    h = size[..., 1]
    capsule = lp - jnp.stack([z, z, jnp.clip(lp[..., 2], -h, h)], -1)
    ellipsoid = lp / jnp.maximum(size, _EPS) ** 2
    on_cap = jnp.abs(jnp.abs(lp[..., 2]) - h) < 1e-5 * jnp.maximum(1.0, h)
    rad_xy = lp[..., 0] ** 2 + lp[..., 1] ** 2
    side_closer = jnp.abs(jnp.sqrt(rad_xy) - size[..., 0]) < jnp.abs(jnp.abs(lp[..., 2]) - h)
    cylinder = jnp.where((on_cap & ~side_closer)[..., None], jnp.stack([z, z, jnp.sign(lp[..., 2])], -1),
                         jnp.stack([lp[..., 0], lp[..., 1], z], -1))
    rel = jnp.abs(lp) / jnp.maximum(size, _EPS)
    axis = jnp.argmax(rel, -1)
    box = jax.nn.one_hot(axis, 3, dtype=lp.dtype) * jnp.sign(jnp.take_along_axis(lp, axis[..., None], -1))
    n = jnp.select(
        [gtype[..., None] == t for t in (PLANE, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX)],
        [plane, sphere, capsule, ellipsoid, cylinder, box], plane)
    return n / jnp.maximum(jnp.linalg.norm(n, axis=-1, keepdims=True), _EPS)


def _hit_triangles(o, d, v0, e1, e2):
    """Moeller-Trumbore, double-sided. o, d: [R, 3]; v0, e1, e2: [T, 3] -> t [R, T]."""
    pvec = jnp.cross(d[:, None, :], e2[None])
    det = jnp.sum(e1[None] * pvec, -1)
    ok = jnp.abs(det) > 1e-12
    inv = 1.0 / jnp.where(ok, det, 1.0)
    tvec = o[:, None, :] - v0[None]
    u = jnp.sum(tvec * pvec, -1) * inv
    qvec = jnp.cross(tvec, e1[None])
    v = jnp.sum(d[:, None, :] * qvec, -1) * inv
    t = jnp.sum(e2[None] * qvec, -1) * inv
    hit = ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t >= 0)
    return jnp.where(hit, t, jnp.inf)


def _rotation(rotvec):
    """Rodrigues: rotation vector ``[3]`` -> matrix ``[3, 3]`` (smooth at zero)."""
    theta2 = jnp.sum(rotvec * rotvec)
    theta = jnp.sqrt(theta2 + 1e-24)
    k = rotvec / theta
    kx = jnp.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return jnp.eye(3) + jnp.sin(theta) * kx + (1.0 - jnp.cos(theta)) * (kx @ kx)


# ----------------------------------------------------------------------------------------
# the renderer
# ----------------------------------------------------------------------------------------


class Renderer:
    """A ray-cast camera for one MuJoCo model; every method is pure and vmappable.

    Args:
      mj_model: the ``mujoco.MjModel`` (for an env: ``env.mj_model``).
      width, height: image size in pixels (> 0).
      geom_groups: geom groups drawn (MuJoCo shows 0, 1, 2 by default).
      shading: ``"fast"`` (one directional light: ambient + Lambert; the default here, and
        what closed-form checks use) or ``"mujoco"`` (MuJoCo's OpenGL lighting: headlight,
        the model's lights, specular, emission; see :mod:`vasa.envs.render_shading`; the
        pixel environments' default, :class:`~vasa.envs.wrappers.PixelObservation`).
      shadows: cast a shadow ray per pixel (``fast``: from the one light; ``mujoco``: from
        each light with ``castshadow``, as MuJoCo draws shadows by default). One more cast
        per shadow light.
      reflections: ``mujoco`` only: one mirror bounce on the model's reflective plane
        (material ``reflectance`` > 0; MuJoCo reflects the first such plane or box top),
        added to its colour as MuJoCo's renderer does. One more cast.
      supersample: rays per pixel side (1: one ray through each pixel centre; 2: a 2x2
        grid, averaged, like MuJoCo's 4x multisampling). RGB costs ``supersample ** 2``
        times more; depth and ids still come from the pixel centres.
      visibility: ``"renderer"`` (hide geoms whose effective rgba alpha is 0, as
        ``mujoco.Renderer``) or ``"mj_ray"`` (material alpha first, as ``mj_ray``; LiDAR).
      skip_unsupported: geoms the renderer cannot draw (height fields, SDFs) raise a
        ``ValueError`` naming them; with ``True`` they are left out with a single warning
        that names them instead.
      video: optional ``uint8 [V, F, h, w, 3]`` (or ``[F, h, w, 3]``) background frames for
        ``Appearance.background == 2`` (see :func:`vasa.envs.randomize.load_video`).

    The model's cameras are available by name or id (:meth:`model_camera`); free cameras by
    :func:`look_at` or any :class:`Camera`.
    """

    def __init__(self, mj_model: mujoco.MjModel, width: int = 84, height: int = 84, *,
                 geom_groups: Sequence[int] = (0, 1, 2), shading: str = "fast", shadows: bool = False,
                 reflections: bool = False, supersample: int = 1, visibility: str = "renderer",
                 skip_unsupported: bool = False, video: np.ndarray | None = None):
        for field, value in (("width", width), ("height", height), ("supersample", supersample)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Renderer {field}={value!r} is not allowed: it must be a positive integer.")
        for field, value, allowed in (("shading", shading, SHADING), ("visibility", visibility, VISIBILITY)):
            if value not in allowed:
                raise ValueError(f"Renderer {field}={value!r} is not allowed: choose one of {allowed}.")
        if reflections and shading != "mujoco":
            raise ValueError("Renderer reflections=True is not allowed with shading='fast': reflections are "
                             "part of shading='mujoco'.")
        self.model = mj_model
        self.width, self.height = int(width), int(height)
        self.shading, self.shadows, self.reflections = shading, bool(shadows), bool(reflections)
        self.supersample, self.visibility = int(supersample), visibility
        m = mj_model

        # the colour MuJoCo draws: the material's, unless the geom sets its own rgba
        rgba = m.geom_rgba.copy()
        has_mat = m.geom_matid >= 0
        default_rgba = np.all(m.geom_rgba == np.float32([0.5, 0.5, 0.5, 1.0]), axis=1)
        use_mat = has_mat & default_rgba
        rgba[use_mat] = m.mat_rgba[m.geom_matid[use_mat]]
        if visibility == "renderer":
            alpha = rgba[:, 3]
        else:  # mj_ray: the material's alpha whenever the geom has a material
            mat_alpha = m.mat_rgba[np.maximum(m.geom_matid, 0), 3] if m.nmat else np.zeros(m.ngeom)
            alpha = np.where(has_mat, mat_alpha, m.geom_rgba[:, 3])
        visible = (alpha > 0) & np.isin(m.geom_group, np.asarray(geom_groups))
        supported = np.isin(m.geom_type, PRIMITIVES + (MESH,))
        bad = [i for i in range(m.ngeom) if visible[i] and not supported[i]]
        if bad:
            names = ", ".join(f"{m.geom(i).name or f'geom {i}'} ({mujoco.mjtGeom(int(m.geom_type[i])).name[7:].lower()})" for i in bad)
            msg = f"Renderer cannot draw these geoms: {names}. Supported: plane, sphere, capsule, ellipsoid, cylinder, box, mesh."
            if not skip_unsupported:
                raise ValueError(msg + " Pass skip_unsupported=True to leave them out.")
            warnings.warn(msg + " They are left out of every image.", stacklevel=2)
            visible &= supported
        self.drawn = visible  # [G] bool
        self.geom_groups = tuple(int(g) for g in geom_groups)

        self.ngeom = m.ngeom
        self._geom_type = jnp.asarray(m.geom_type, jnp.int32)
        self._geom_size = jnp.asarray(m.geom_size, jnp.float32)
        self._geom_body = jnp.asarray(m.geom_bodyid, jnp.int32)
        self.geom_body = np.asarray(m.geom_bodyid)
        # primitive geoms grouped by type: {type: np.array of geom ids}
        self._groups = {t: np.nonzero(visible & (m.geom_type == t))[0] for t in PRIMITIVES}
        self._groups = {t: ids for t, ids in self._groups.items() if len(ids)}
        self._prim_order = np.concatenate([ids for ids in self._groups.values()] or [np.zeros(0, int)]).astype(np.int32)

        # meshes: every triangle of every drawn mesh geom, in the geom's frame
        tris, owner = [], []
        for g in np.nonzero(visible & (m.geom_type == MESH))[0]:
            mid = m.geom_dataid[g]
            va, fa = m.mesh_vertadr[mid], m.mesh_faceadr[mid]
            verts = m.mesh_vert[va:va + m.mesh_vertnum[mid]]
            faces = m.mesh_face[fa:fa + m.mesh_facenum[mid]]
            tris.append(verts[faces])
            owner.append(np.full(len(faces), g))
        self.num_triangles = int(sum(len(t) for t in tris))
        self._tris = jnp.asarray(np.concatenate(tris), jnp.float32) if tris else None  # [T, 3, 3]
        self._tri_owner = np.concatenate(owner).astype(np.int32) if owner else np.zeros(0, np.int32)
        self._cand_geom = jnp.asarray(np.concatenate([self._prim_order, self._tri_owner]), jnp.int32)

        # the model's own look: colours, material terms, 2D textures, skybox, lights
        self._rgb = np.clip(rgba[:, :3], 0, 1).astype(np.float32)  # MuJoCo's colour (a texture's tint)
        self._base_rgb = self._rgb.copy()
        self._base_rgb2 = self._base_rgb * 0.6
        self._base_cell = np.full(m.ngeom, 0.25, np.float32)
        mat = np.maximum(m.geom_matid, 0)
        pick = lambda field, default: np.where(has_mat, getattr(m, field)[mat] if m.nmat else default,  # noqa: E731
                                               default).astype(np.float32)
        self._material = {k: pick(f"mat_{k}", d) for k, d in
                          (("specular", 0.5), ("shininess", 0.5), ("emission", 0.0), ("reflectance", 0.0))}
        # MuJoCo mirrors only the first opaque reflective plane or box (its top face)
        reflective = [g for g in range(m.ngeom) if visible[g] and m.geom_type[g] in (PLANE, BOX)
                      and self._material["reflectance"][g] > 0 and rgba[g, 3] >= 0.995]
        self._mirror = np.zeros(m.ngeom, bool)
        self._mirror[reflective[:1]] = True
        self._lights = ModelLights(m)
        self._init_textures(m)
        self._init_video(video)

    # -- model appearance ---------------------------------------------------------------

    def _pixel_angle(self, fovy: float) -> float:
        """Angle in radians spanned by one ray's share of a pixel at the image centre."""
        return 2.0 * math.tan(math.radians(fovy) / 2) / self.height / self.supersample

    def _init_textures(self, m):
        mat_tex = m.mat_texid if m.mat_texid.ndim == 2 else m.mat_texid[:, None]
        role_rgb = int(mujoco.mjtTextureRole.mjTEXROLE_RGB) if mat_tex.shape[1] > 1 else 0
        images, geom_img, cache = [], np.full(m.ngeom, -1, np.int32), {}
        textured, materials = [], []
        for g in range(m.ngeom):
            mid = m.geom_matid[g]
            if mid < 0 or not self.drawn[g]:
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
            self._base_rgb[g] = img[h // 4, w // 4] * self._rgb[g]
            self._base_rgb2[g] = img[h // 4, 3 * w // 4] * self._rgb[g]
            rep = max(float(m.mat_texrepeat[mid, 0]), 1e-6)
            self._base_cell[g] = (1.0 if m.mat_texuniform[mid] else m.geom_size[g, 0]) / rep
        self._tex = MipTextures(images)
        self._geom_img = jnp.asarray(geom_img)
        self._uv_maps = jnp.asarray(plane_uv_maps(m, np.asarray(textured, int), np.asarray(materials, int)))
        # texels per metre along u and v at full size, for the mipmap level of a ray
        density = np.zeros(m.ngeom, np.float32)
        maps = np.asarray(self._uv_maps)
        for g in textured:
            th, tw = self._tex.base_size[geom_img[g]]
            density[g] = max(abs(maps[g, 0]) * tw, abs(maps[g, 2]) * th)
        self._tex_density = jnp.asarray(density)
        self._tint = jnp.asarray(self._rgb)
        self.has_model_texture = geom_img >= 0

        # background: the skybox, box-filtered to the camera's pixel size; its zenith and
        # nadir colours seed the gradient background that colour suites recolour
        fovy = float(np.max(m.cam_fovy)) if m.ncam else 45.0
        faces = skybox_faces(m, self._pixel_angle(fovy))
        self._skybox = None if faces is None else jnp.asarray(faces)
        if faces is None:
            top = bottom = np.zeros(3, np.float32)  # MuJoCo's default: black
        else:
            c = faces.shape[1] // 2
            top, bottom = faces[2, c, c], faces[3, c, c]
        self._sky = (np.asarray(top, np.float32), np.asarray(bottom, np.float32))
        light = np.array([0.0, 0.0, -1.0], np.float32)
        if self._lights.count:
            light = self._lights.dir0[0] / max(np.linalg.norm(self._lights.dir0[0]), 1e-9)
        elif m.nlight:
            d = mujoco.MjData(m)
            mujoco.mj_forward(m, d)
            light = d.light_xdir[0].astype(np.float32)
            light /= max(np.linalg.norm(light), 1e-9)
        self._light = light.astype(np.float32)

    def _init_video(self, video):
        if video is None:
            self.video = None
            return
        v = np.asarray(video)
        if v.ndim == 4:
            v = v[None]
        if v.ndim != 5 or v.shape[-1] != 3 or v.dtype != np.uint8:
            raise ValueError(f"Renderer video with shape {v.shape} and dtype {v.dtype} is not allowed: "
                             "it must be uint8 [V, F, h, w, 3] or [F, h, w, 3].")
        self.video = jnp.asarray(v)

    def default_appearance(self) -> Appearance:
        """The model's own look (DMControl-GB's ``train`` appearance): geom/material
        colours and terms, the model's 2D textures, its skybox and its lights."""
        g = self.ngeom
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        mujoco_shading = self.shading == "mujoco"
        lights = self._lights
        return Appearance(
            geom_rgb=f(self._base_rgb),
            geom_rgb2=f(self._base_rgb2),
            geom_texture=jnp.where(jnp.asarray(self.has_model_texture), TEX_MODEL, TEX_NONE).astype(jnp.int32),
            geom_texture_scale=f(self._base_cell),
            geom_texture_seed=jnp.zeros((g,), jnp.float32),
            geom_specular=f(self._material["specular"]),
            geom_shininess=f(self._material["shininess"]),
            geom_emission=f(self._material["emission"]),
            geom_reflectance=f(self._material["reflectance"]),
            light_dir=f(self._light),
            light_intensity=f(1.0 if mujoco_shading else 0.7),
            ambient=f(1.0 if mujoco_shading else 0.35),
            headlight=f(lights.headlight),
            light_ambient=f(lights.ambient),
            light_diffuse=f(lights.diffuse),
            light_specular=f(lights.specular),
            background=jnp.asarray(BG_GRADIENT if self._skybox is None else BG_SKYBOX, jnp.int32),
            bg_top=f(self._sky[0]),
            bg_bottom=f(self._sky[1]),
            wave_rgb=f(np.tile(self._sky[0], (3, 1))),
            wave_freq=f(np.ones((3, 2))),
            wave_speed=jnp.zeros((3,), jnp.float32),
            wave_phase=jnp.zeros((3,), jnp.float32),
            video_index=jnp.zeros((), jnp.int32),
            video_offset=jnp.zeros((), jnp.int32),
            cam_pos_offset=jnp.zeros((3,), jnp.float32),
            cam_rot_offset=jnp.zeros((3,), jnp.float32),
            fovy_offset=jnp.zeros((), jnp.float32),
        )

    # -- cameras ------------------------------------------------------------------------

    def camera_id(self, camera: str | int) -> int:
        """Resolve a model camera by name or id; unknown ones list the model's cameras."""
        m = self.model
        names = [m.camera(i).name or f"<unnamed {i}>" for i in range(m.ncam)]
        if isinstance(camera, (int, np.integer)):
            if 0 <= camera < m.ncam:
                return int(camera)
        elif isinstance(camera, str):
            cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, camera)
            if cid >= 0:
                return int(cid)
        listing = ", ".join(f"{i}: {n!r}" for i, n in enumerate(names)) or "none"
        raise ValueError(f"camera={camera!r} is not allowed: this model's cameras are {listing} "
                         "(or pass a free Camera, e.g. vasa.envs.render.look_at(pos, target)).")

    def model_camera(self, data, camera: str | int = 0) -> Camera:
        """The pose of model camera ``camera`` (name or id) in ``data`` (its ``cam_xpos``/
        ``cam_xmat``, so fixed, tracking and body-mounted cameras all follow the physics)."""
        cid = self.camera_id(camera)
        pos = _get(data, "cam_xpos")[cid]
        mat = _get(data, "cam_xmat").reshape(-1, 3, 3)[cid]
        return Camera(pos=pos, mat=mat, fovy=jnp.asarray(self.model.cam_fovy[cid], jnp.float32))

    def camera_rays(self, camera: Camera, appearance: Appearance | None = None, *,
                    supersample: int = 1) -> tuple[jax.Array, jax.Array, jax.Array]:
        """World ray origins ``[N, 3]``, unit directions ``[N, 3]`` and the camera's forward
        axis ``[3]``, with the appearance's camera jitter applied. ``supersample = 1``: one
        ray through each pixel centre, ``N = H*W`` row-major (row 0 at the top); ``s > 1``:
        an ``s x s`` grid of rays in each pixel, row-major over the ``sH x sW`` grid."""
        pos, mat, fovy = camera.pos, camera.mat, camera.fovy
        if appearance is not None:
            mat = mat @ _rotation(appearance.cam_rot_offset)
            pos = pos + mat @ appearance.cam_pos_offset
            fovy = fovy + appearance.fovy_offset
        half = jnp.tan(jnp.deg2rad(fovy) / 2)
        h, w = self.height * supersample, self.width * supersample
        y = (1.0 - 2.0 * (jnp.arange(h, dtype=jnp.float32) + 0.5) / h) * half
        x = (2.0 * (jnp.arange(w, dtype=jnp.float32) + 0.5) / w - 1.0) * half * (w / h)
        yy, xx = jnp.meshgrid(y, x, indexing="ij")
        local = jnp.stack([xx, yy, -jnp.ones_like(xx)], -1).reshape(-1, 3)
        dirs = local @ mat.T
        dirs = dirs / jnp.linalg.norm(dirs, axis=-1, keepdims=True)
        return jnp.broadcast_to(pos, dirs.shape), dirs, -mat[:, 2]

    # -- casting ------------------------------------------------------------------------

    def cast(self, data, origins: jax.Array, dirs: jax.Array, *, geom_mask: jax.Array | np.ndarray | None = None) -> Hits:
        """Cast rays ``origins [R, 3]``, unit ``dirs [R, 3]`` against the drawn geoms of
        ``data`` (an ``mjx.Data`` or anything with ``geom_xpos``/``geom_xmat``).

        ``geom_mask [G] bool`` (optional) further restricts the geoms hit (e.g. to exclude
        a robot's own body from its LiDAR). Equivalent to ``mj_ray`` per ray.
        """
        gpos, gmat = _poses(data)
        origins = jnp.asarray(origins, jnp.float32)
        dirs = jnp.asarray(dirs, jnp.float32)
        r = origins.shape[0]
        if self._cand_geom.shape[0] == 0:  # nothing to draw
            z = jnp.zeros((r, 3), jnp.float32)
            return Hits(jnp.full((r,), jnp.inf), jnp.full((r,), -1, jnp.int32), z, z, z)
        mask = None if geom_mask is None else jnp.asarray(geom_mask)
        # running nearest hit over groups of candidates (one group per geom type, then the
        # mesh triangles): each group's min/argmin fuses with its intersection math, so
        # no [rays, candidates] array is ever stored
        dist = jnp.full((r,), jnp.inf, jnp.float32)
        best = jnp.zeros((r,), jnp.int32)
        offset = 0

        def merge(dist, best, t, offset):
            i = jnp.argmin(t, axis=1)
            ti = jnp.min(t, axis=1)
            closer = ti < dist
            return jnp.where(closer, ti, dist), jnp.where(closer, i.astype(jnp.int32) + offset, best)

        for t, ids in self._groups.items():
            p, mt, sz = gpos[ids], gmat[ids], self._geom_size[ids]
            lp = _rotate_into(origins[:, None, :] - p[None], mt[None])  # [R, g, 3]
            lv = _rotate_into(dirs[:, None, :], mt[None])
            tg = _HIT[t](lp, lv, sz[None])
            if mask is not None:
                tg = jnp.where(mask[ids][None], tg, jnp.inf)
            dist, best = merge(dist, best, tg, offset)
            offset += len(ids)
        tri_n = None
        if self._tris is not None:
            own = self._tri_owner
            world = jnp.einsum("tvk,tjk->tvj", self._tris, gmat[own]) + gpos[own][:, None, :]
            v0, e1, e2 = world[:, 0], world[:, 1] - world[:, 0], world[:, 2] - world[:, 0]
            tt = _hit_triangles(origins, dirs, v0, e1, e2)
            if mask is not None:
                tt = jnp.where(mask[own][None], tt, jnp.inf)
            dist, best = merge(dist, best, tt, offset)
            tri_n = jnp.cross(e1, e2)
        hit = jnp.isfinite(dist)
        geom = jnp.where(hit, self._cand_geom[best], -1)
        g = jnp.maximum(geom, 0)
        point = origins + jnp.where(hit, dist, 0.0)[:, None] * dirs
        local = _rotate_into(point - gpos[g], gmat[g])
        n_local = _local_normal(self._geom_type[g], local, self._geom_size[g])
        normal = jnp.einsum("rjk,rk->rj", gmat[g], n_local)
        if tri_n is not None:
            n_prim = len(self._prim_order)
            is_tri = best >= n_prim
            tn = tri_n[jnp.clip(best - n_prim, 0, tri_n.shape[0] - 1)]
            tn = tn / jnp.maximum(jnp.linalg.norm(tn, axis=-1, keepdims=True), _EPS)
            normal = jnp.where(is_tri[:, None], tn, normal)
        # face the viewer (planes are one-sided; rays from inside a solid see its inside)
        normal = jnp.where(jnp.sum(normal * dirs, -1, keepdims=True) > 0, -normal, normal)
        normal = jnp.where(hit[:, None], normal, 0.0)
        return Hits(distance=dist, geom_id=geom.astype(jnp.int32), normal=normal, point=point, local=local)

    # -- shading ------------------------------------------------------------------------

    def _background(self, app: Appearance, dirs: jax.Array, t: jax.Array, h: int, w: int) -> jax.Array:
        """Background colour ``[h*w, 3]`` for the camera's rays ``dirs`` (an ``h x w`` grid)
        at frame ``t``."""
        s = 0.5 + 0.5 * dirs[:, 2:3]
        grad = app.bg_bottom + (app.bg_top - app.bg_bottom) * s
        v, u = jnp.meshgrid(jnp.linspace(0.0, 1.0, h), jnp.linspace(0.0, 1.0, w), indexing="ij")
        uv = jnp.stack([u.reshape(-1), v.reshape(-1)], -1)  # [H*W, 2]
        phase = uv @ app.wave_freq.T * (2 * jnp.pi) + app.wave_speed * t + app.wave_phase  # [P, 3]
        waves = (0.5 + 0.5 * jnp.sin(phase)) @ app.wave_rgb / 1.5
        out = jnp.where(app.background == BG_WAVES, jnp.clip(waves, 0, 1), grad)
        if self.video is not None:
            vid = self.video[jnp.clip(app.video_index, 0, self.video.shape[0] - 1)]
            f, vh, vw = vid.shape[:3]
            frame = vid[(app.video_offset + t) % f]
            rows = jnp.arange(h) * vh // h
            cols = jnp.arange(w) * vw // w
            img = frame[rows][:, cols].reshape(-1, 3).astype(jnp.float32) / 255.0
            out = jnp.where(app.background == BG_VIDEO, img, out)
        if self._skybox is not None:
            out = jnp.where(app.background == BG_SKYBOX, skybox_lookup(self._skybox, dirs), out)
        return out

    def _surface(self, app: Appearance, hits: Hits, dirs: jax.Array, travelled: jax.Array,
                 pixel_angle: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Material colour ``[R, 3]`` and texel ``[R, 3]`` of the hits (the lit colour is
        ``light(colour) * texel``, as OpenGL's ``GL_MODULATE``).

        Procedural textures give the colour and a texel of 1. The model's 2D texture gives
        MuJoCo's colour (material or geom rgba: the texture's tint) and the texel, sampled
        with a mipmap level from the ray's footprint (``travelled + distance`` metres from
        the eye, ``pixel_angle`` radians a ray). Recolouring a model-textured geom (moving
        ``geom_rgb`` away from the texture's main colour) moves the tint by the same amount.
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
        tint = self._tint[g] + (c1 - jnp.asarray(self._base_rgb)[g])
        return jnp.where(model, tint, colour), jnp.where(model, texel, 1.0)

    def _visible_from(self, data, points, normals, light_pos, light_dir, directional: bool) -> jax.Array:
        """``[R] bool``: nothing lies between each point and the light (a shadow ray)."""
        start = points + normals * 1e-4
        if directional:
            return ~jnp.isfinite(self.cast(data, start, jnp.broadcast_to(-light_dir, start.shape)).distance)
        to = light_pos - start
        dist = jnp.linalg.norm(to, axis=-1)
        return self.cast(data, start, to / jnp.maximum(dist, _EPS)[:, None]).distance >= dist

    def _scene_lights(self, data, app: Appearance, cam_pos: jax.Array, cam_forward: jax.Array) -> dict:
        """MuJoCo's lights in this frame: the headlight, then the model's drawn lights."""
        ml = self._lights
        pos, direction = ml.poses(data)
        if ml.count:  # Appearance.light_dir turns every model light by one rotation
            a = jnp.asarray(self._light)
            b = app.light_dir / jnp.maximum(jnp.linalg.norm(app.light_dir), _EPS)
            direction = direction @ rotation_between(a, b).T
        cat = lambda head, rest: jnp.concatenate([jnp.asarray(head, jnp.float32)[None], jnp.asarray(rest, jnp.float32)])  # noqa: E731
        return dict(
            pos=cat(cam_pos, pos), dir=cat(cam_forward, direction),
            directional=np.concatenate([[True], ml.directional]),
            attenuation=cat([1.0, 0.0, 0.0], ml.attenuation), cos_cutoff=cat(-1.0, ml.cos_cutoff),
            exponent=cat(0.0, ml.exponent),
            ambient=cat(app.headlight[0], app.light_ambient) * app.ambient,
            diffuse=cat(app.headlight[1], app.light_diffuse) * app.light_intensity,
            specular=cat(app.headlight[2], app.light_specular) * app.light_intensity,
            castshadow=np.concatenate([[False], ml.castshadow]))

    def _shade_mujoco(self, data, app: Appearance, lights: dict, hits: Hits, dirs: jax.Array, colour: jax.Array,
                      texel: jax.Array, shadow_passes: bool = True) -> jax.Array:
        """MuJoCo's fixed-function lighting of the hits (see :mod:`vasa.envs.render_shading`):
        ``[R, 3]``: the main pass plus one pass per shadow-casting light (clipped on its
        own, as MuJoCo blends it on; with the renderer's ``shadows`` a shadow ray decides
        where the pass applies, else it applies everywhere). ``shadow_passes=False``: every
        light in one pass, as MuJoCo lights its mirror image."""
        g = jnp.maximum(hits.geom_id, 0)
        coloured, specular = light_terms(
            hits.point, hits.normal, -dirs, lights["pos"], lights["dir"], jnp.asarray(lights["directional"]),
            lights["attenuation"], lights["cos_cutoff"], lights["exponent"], lights["ambient"], lights["diffuse"],
            lights["specular"], 128.0 * app.geom_shininess[g])
        per_light = coloured * colour[:, None] + specular * app.geom_specular[g][:, None, None]  # [R, K, 3]
        passes = lights["castshadow"] & shadow_passes
        main = colour * (app.geom_emission[g][:, None] + self._lights.global_ambient)
        main = main + jnp.sum(per_light[:, np.nonzero(~passes)[0]], 1)
        out = jnp.clip(main, 0.0, 1.0) * texel
        for k in np.nonzero(passes)[0]:
            term = jnp.clip(per_light[:, k], 0.0, 1.0) * texel
            if self.shadows:
                lit = self._visible_from(data, hits.point, hits.normal, lights["pos"][k], lights["dir"][k],
                                         bool(lights["directional"][k]))
                term = jnp.where(lit[:, None], term, 0.0)
            out = out + term
        return out

    def _reflection(self, data, app: Appearance, lights: dict, hits: Hits, dirs: jax.Array,
                    pixel_angle: jax.Array) -> jax.Array:
        """What MuJoCo's mirror pass adds to the reflective plane's pixels ``[R, 3]``: the
        scene seen along the mirrored ray, lit without shadows, its colour (and emission)
        scaled by the plane's reflectance; black where the mirrored ray meets nothing."""
        _, gmat = _poses(data)
        g = jnp.maximum(hits.geom_id, 0)
        up = gmat[g][:, :, 2]  # the plane's normal (a box's top face)
        on = (hits.geom_id >= 0) & jnp.asarray(self._mirror)[g] & (jnp.sum(hits.normal * up, -1) > 0.99)
        on &= app.geom_texture[g] != TEX_BACKGROUND
        rdir = dirs - 2.0 * jnp.sum(dirs * up, -1, keepdims=True) * up
        second = self.cast(data, hits.point + up * 1e-4, rdir)
        colour, texel = self._surface(app, second, rdir, hits.distance, pixel_angle)
        colour = colour * app.geom_reflectance[g][:, None]
        shade = self._shade_mujoco(data, app, lights, second, rdir, colour, texel, shadow_passes=False)
        seen = on & (second.geom_id >= 0) & (app.geom_texture[jnp.maximum(second.geom_id, 0)] != TEX_BACKGROUND)
        return jnp.where(seen[:, None], shade, 0.0)

    def _colour(self, data, app: Appearance, cam: Camera, t: jax.Array, origins, dirs, forward, hits: Hits,
                supersample: int) -> jax.Array:
        """Linear RGB ``[N, 3]`` in [0, 1] of the rays (an ``sH x sW`` grid)."""
        h, w = self.height * supersample, self.width * supersample
        hit = hits.geom_id >= 0
        fovy = cam.fovy + app.fovy_offset
        pixel_angle = 2.0 * jnp.tan(jnp.deg2rad(fovy) / 2) / h
        bg = self._background(app, dirs, t, h, w)
        colour, texel = self._surface(app, hits, dirs, jnp.zeros_like(hits.distance), pixel_angle)
        if self.shading == "fast":
            light = app.light_dir / jnp.maximum(jnp.linalg.norm(app.light_dir), _EPS)
            lambert = jnp.maximum(jnp.sum(hits.normal * -light, -1), 0.0)
            if self.shadows:
                lambert = jnp.where(self._visible_from(data, hits.point, hits.normal, None, light, True), lambert, 0.0)
            shade = app.ambient + app.light_intensity * lambert
            lit = jnp.clip(colour, 0.0, 1.0) * texel * shade[:, None]
        else:
            lights = self._scene_lights(data, app, origins[0], forward)
            lit = self._shade_mujoco(data, app, lights, hits, dirs, colour, texel)
            if self.reflections and self._mirror.any():
                lit = lit + self._reflection(data, app, lights, hits, dirs, pixel_angle)
        see_through = app.geom_texture[jnp.maximum(hits.geom_id, 0)] == TEX_BACKGROUND
        return jnp.clip(jnp.where((hit & ~see_through)[:, None], lit, bg), 0.0, 1.0)

    def render(self, data, camera: Camera | str | int = 0, appearance: Appearance | None = None, *,
               t: jax.Array | int = 0, outputs: Sequence[str] = ("rgb",)) -> dict[str, jax.Array]:
        """Render one image of ``data`` (an ``mjx.Data``; vmap for batches).

        Args:
          camera: a model camera (name or id) or a :class:`Camera`.
          appearance: the look (default: the model's own, :meth:`default_appearance`).
          t: frame counter for moving backgrounds.
          outputs: any of ``"rgb"`` (``uint8 [H, W, 3]``), ``"depth"`` (``float32 [H, W]``,
            metres along the optical axis, inf for background), ``"distance"`` (metres
            along each ray), ``"geom_id"``/``"body_id"`` (``int32 [H, W]``, -1 for
            background), ``"normals"`` (``float32 [H, W, 3]`` world, zero for background).
            All but ``rgb`` come from the ray through each pixel's centre.

        Returns:
          ``{name: image}`` for the requested outputs.
        """
        unknown = [o for o in outputs if o not in OUTPUTS]
        if unknown:
            raise ValueError(f"outputs={tuple(outputs)!r} is not allowed: {unknown} unknown; choose from {OUTPUTS}.")
        app = self.default_appearance() if appearance is None else appearance
        cam = camera if isinstance(camera, Camera) else self.model_camera(data, camera)
        h, w, s = self.height, self.width, self.supersample
        geometry = [o for o in outputs if o != "rgb"]
        origins, dirs, forward = self.camera_rays(cam, app)
        hits = self.cast(data, origins, dirs) if (geometry or s == 1) else None
        out = {}
        if "rgb" in outputs:
            t = jnp.asarray(t, jnp.int32)
            if s == 1:
                colour = self._colour(data, app, cam, t, origins, dirs, forward, hits, 1)
            else:
                o_s, d_s, _ = self.camera_rays(cam, app, supersample=s)
                colour = self._colour(data, app, cam, t, o_s, d_s, forward, self.cast(data, o_s, d_s), s)
                colour = colour.reshape(h, s, w, s, 3).mean((1, 3))
            out["rgb"] = jnp.round(colour * 255.0).astype(jnp.uint8).reshape(h, w, 3)
        if not geometry:
            return out
        hit = hits.geom_id >= 0
        if "depth" in outputs:
            out["depth"] = (hits.distance * (dirs @ forward)).reshape(h, w)
        if "distance" in outputs:
            out["distance"] = hits.distance.reshape(h, w)
        if "geom_id" in outputs:
            out["geom_id"] = hits.geom_id.reshape(h, w)
        if "body_id" in outputs:
            out["body_id"] = jnp.where(hit, self._geom_body[jnp.maximum(hits.geom_id, 0)], -1).reshape(h, w)
        if "normals" in outputs:
            out["normals"] = hits.normal.reshape(h, w, 3)
        return out


def refresh_kinematics(mjx_model, data):
    """Recompute positions, orientations and camera poses of ``data`` from its ``qpos``.

    After ``mjx.step`` the stored ``geom_xpos``/``cam_xpos`` describe the state *before*
    the last integration (as in MuJoCo); rendering calls this first so images show the
    current ``qpos``. Costs one forward-kinematics pass.
    """
    from mujoco.mjx._src import smooth

    d = smooth.kinematics(mjx_model, data)
    d = smooth.com_pos(mjx_model, d)
    return smooth.camlight(mjx_model, d)


# ----------------------------------------------------------------------------------------
# LiDAR (iGibson's virtual LiDAR)
# ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LidarConfig:
    """A scanning LiDAR.

    num_rays: rays per beam over ``fov_deg`` (iGibson's default 128; Turtlebot 228 over 240).
    fov_deg: horizontal field of view in degrees, centred on the sensor's +x axis.
    min_range, max_range: metres; readings are clipped to ``[min_range, max_range]`` and a
      ray that hits nothing within ``max_range`` reads ``max_range``.
    beams: 1 (a planar scan) or more (a vertical fan, e.g. 16 beams).
    vertical_fov_deg: (lowest, highest) beam elevation in degrees for ``beams > 1``.
    """

    num_rays: PosInt = 128
    fov_deg: Annotated[float, Range(gt=0, le=360)] = 240.0
    min_range: NonNegFloat = 0.05
    max_range: PosFloat = 5.6
    beams: PosInt = 1
    vertical_fov_deg: ordered_pair(Annotated[float, Range(ge=-90, le=90)]) = (-15.0, 15.0)

    def validate(self):
        """Raise ``ValueError`` naming the field, its value and what is allowed."""
        check_fields(self)
        if not self.min_range < self.max_range:
            raise ValueError(f"LidarConfig.min_range={self.min_range!r} is not allowed: it must be below "
                             f"max_range={self.max_range!r}.")

    def angles(self) -> np.ndarray:
        """Horizontal ray angles ``[num_rays]`` in radians (-fov/2 .. +fov/2; a full 360
        degree scan does not repeat its first ray)."""
        half = math.radians(self.fov_deg) / 2
        if self.fov_deg >= 360:
            return np.linspace(-half, half, self.num_rays, endpoint=False, dtype=np.float32)
        return np.linspace(-half, half, self.num_rays, dtype=np.float32)

    def elevations(self) -> np.ndarray:
        """Beam elevations ``[beams]`` in radians (0 for a single beam)."""
        if self.beams == 1:
            return np.zeros(1, np.float32)
        return np.deg2rad(np.linspace(*self.vertical_fov_deg, self.beams)).astype(np.float32)


class Lidar:
    """A LiDAR mounted on a site or body of a model (or posed explicitly).

    ``scan(data)`` returns ranges ``float32 [num_rays]`` for one beam or
    ``[beams, num_rays]`` for a fan, in metres. Rays are cast in the sensor frame
    (x forward, y left, z up), rotated by the mount's orientation. Geoms of
    ``exclude_bodies`` (default: the mount's body) are invisible to it, like ``mj_ray``'s
    ``bodyexclude``. Transparency follows ``mj_ray`` (a geom with a material is seen when
    the material is not fully transparent, whatever the geom's own rgba), as MuJoCo's
    range sensors do; the camera follows the renderer instead (see the module docstring).
    A ``renderer`` passed in brings its own rule (make it with ``visibility="mj_ray"``).
    """

    def __init__(self, mj_model, config: LidarConfig = LidarConfig(), *, site: str | None = None,
                 body: str | None = None, exclude_bodies: Sequence[str | int] | None = None,
                 renderer: Renderer | None = None):
        config.validate()
        self.config = config
        self.renderer = renderer or Renderer(mj_model, 1, 1, visibility="mj_ray")
        m = mj_model
        self.site = self.body = None
        if site is not None:
            self.site = self._resolve(m, mujoco.mjtObj.mjOBJ_SITE, site, "site")
            mount_body = int(m.site_bodyid[self.site])
        elif body is not None:
            self.body = self._resolve(m, mujoco.mjtObj.mjOBJ_BODY, body, "body")
            mount_body = self.body
        else:
            mount_body = 0
        excl = [mount_body] if exclude_bodies is None and mount_body > 0 else []
        for b in exclude_bodies or ():
            excl.append(self._resolve(m, mujoco.mjtObj.mjOBJ_BODY, b, "exclude_bodies"))
        self.geom_mask = ~np.isin(m.geom_bodyid, excl)
        az, el = config.angles(), config.elevations()
        ce, se = np.cos(el)[:, None], np.sin(el)[:, None]
        self._dirs_local = jnp.asarray(np.stack([ce * np.cos(az), ce * np.sin(az), np.broadcast_to(se, (len(el), len(az)))], -1))

    @staticmethod
    def _resolve(m, kind, name, field) -> int:
        n = {mujoco.mjtObj.mjOBJ_SITE: m.nsite, mujoco.mjtObj.mjOBJ_BODY: m.nbody}[kind]
        if isinstance(name, (int, np.integer)) and 0 <= name < n:
            return int(name)
        i = mujoco.mj_name2id(m, kind, name) if isinstance(name, str) else -1
        if i < 0:
            names = [mujoco.mj_id2name(m, kind, j) for j in range(n)]
            raise ValueError(f"{field}={name!r} is not allowed: this model's {field.rstrip('s')}s are {names}.")
        return i

    def pose(self, data) -> tuple[jax.Array, jax.Array]:
        """Mount position ``[3]`` and orientation ``[3, 3]`` in ``data``."""
        if self.site is not None:
            return _get(data, "site_xpos")[self.site], _get(data, "site_xmat").reshape(-1, 3, 3)[self.site]
        if self.body is not None:
            return _get(data, "xpos")[self.body], _get(data, "xmat").reshape(-1, 3, 3)[self.body]
        return jnp.zeros(3), jnp.eye(3)

    def scan(self, data, pos: jax.Array | None = None, mat: jax.Array | None = None) -> jax.Array:
        """Ranges in metres: ``[num_rays]`` (1 beam) or ``[beams, num_rays]``; ``pos [3]``/
        ``mat [3, 3]`` override the mount pose."""
        mp, mm = self.pose(data)
        pos = mp if pos is None else jnp.asarray(pos, jnp.float32)
        mat = mm if mat is None else jnp.asarray(mat, jnp.float32)
        dirs = self._dirs_local.reshape(-1, 3) @ mat.T
        hits = self.renderer.cast(data, jnp.broadcast_to(pos, dirs.shape), dirs, geom_mask=self.geom_mask)
        c = self.config
        ranges = jnp.clip(jnp.where(hits.distance <= c.max_range, hits.distance, c.max_range), c.min_range, c.max_range)
        ranges = ranges.reshape(c.beams, c.num_rays)
        return ranges[0] if c.beams == 1 else ranges


def lidar_dropout(key: jax.Array, ranges: jax.Array, p: float, max_range: float) -> jax.Array:
    """iGibson's dropout noise: each reading independently becomes ``max_range`` with
    probability ``p``. ``ranges``: any shape, float32."""
    drop = jax.random.bernoulli(key, p, ranges.shape)
    return jnp.where(drop, jnp.asarray(max_range, ranges.dtype), ranges)


OCC_UNKNOWN, OCC_FREE, OCC_OCCUPIED = 0, 1, 2


def occupancy_grid(ranges: jax.Array, angles: jax.Array, max_range: float, *, grid_size: int = 128,
                   extent: float = 5.0, footprint_radius: float = 0.2) -> jax.Array:
    """Local occupancy grid from a 1-beam scan, centred on the sensor (iGibson's default:
    128 x 128 cells over 5 m).

    Args:
      ranges: ``float32 [N]`` readings (metres); ``max_range`` means nothing was hit.
      angles: ``float32 [N]`` ray angles in the sensor frame (radians, increasing).
      extent: side of the square grid in metres.
      footprint_radius: cells within this radius of the sensor are marked free.

    Returns:
      ``uint8 [grid_size, grid_size]`` with :data:`OCC_UNKNOWN` (0), :data:`OCC_FREE` (1),
      :data:`OCC_OCCUPIED` (2). Row 0 is the sensor's +x (forward) edge, column 0 its +y
      (left) edge, so the grid reads like a map with the robot facing up.

    A cell is free if it lies inside the scanned fan closer than its beam's reading,
    occupied if it contains a beam's hit point (a reading below ``max_range``), and
    unknown otherwise (behind obstacles, beyond the range, outside the field of view).
    """
    cell = extent / grid_size
    centres = (jnp.arange(grid_size, dtype=jnp.float32) + 0.5) * cell - extent / 2
    x = -centres[:, None] * jnp.ones((1, grid_size))  # forward decreases with row
    y = -centres[None, :] * jnp.ones((grid_size, 1))  # left decreases with column
    r = jnp.sqrt(x * x + y * y)
    theta = jnp.arctan2(y, x)
    n = angles.shape[0]
    step = (angles[-1] - angles[0]) / jnp.maximum(n - 1, 1)
    idx = jnp.round((theta - angles[0]) / jnp.where(step > 0, step, 1.0)).astype(jnp.int32)
    # wrap for full-circle scans
    idx = jnp.where((idx >= n) & (n * step >= 2 * jnp.pi - 1e-3), idx - n, idx)
    in_fov = (idx >= 0) & (idx < n)
    reading = ranges[jnp.clip(idx, 0, n - 1)]
    free = in_fov & (r < reading - cell / 2)
    grid = jnp.where(free, OCC_FREE, OCC_UNKNOWN)
    # hit points: scatter each reading below max_range into its cell
    hit = ranges < max_range - 1e-6
    hx, hy = ranges * jnp.cos(angles), ranges * jnp.sin(angles)
    row = jnp.floor((-hx + extent / 2) / cell).astype(jnp.int32)
    col = jnp.floor((-hy + extent / 2) / cell).astype(jnp.int32)
    ok = hit & (row >= 0) & (row < grid_size) & (col >= 0) & (col < grid_size)
    occ = jnp.zeros((grid_size, grid_size), bool).at[jnp.where(ok, row, grid_size), jnp.where(ok, col, grid_size)].set(True, mode="drop")
    grid = jnp.where(occ, OCC_OCCUPIED, grid)
    grid = jnp.where(r <= footprint_radius, OCC_FREE, grid)
    return grid.astype(jnp.uint8)

