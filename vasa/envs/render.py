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

Layout: this module holds :class:`Renderer`, :class:`Appearance` and :class:`Lidar` (a range
sensor casting with a renderer) and re-exports the public names of the modules it builds on,
none of which imports it: :mod:`vasa.envs.render_geometry` (ray casting: intersections, the
scene-wide closest hit, :class:`Hits`), :mod:`vasa.envs.render_camera` (cameras and their
rays), :mod:`vasa.envs.render_textures`, :mod:`vasa.envs.render_shading` and
:mod:`vasa.envs.lidar` (LiDAR scan patterns, dropout noise, occupancy grids).
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from vasa.envs import render_camera as _camera
from vasa.envs import render_geometry as _geometry
from vasa.envs import render_shading as _shading
from vasa.envs import render_textures as _textures
from vasa.envs.lidar import LidarConfig
from vasa.envs.render_camera import Camera
from vasa.envs.render_geometry import _EPS, BOX, MESH, PLANE, PRIMITIVES, Hits, _get, _poses
from vasa.envs.render_shading import ModelLights
from vasa.envs.render_textures import (BG_GRADIENT, BG_SKYBOX, TEX_BACKGROUND, TEX_MODEL, TEX_NONE, skybox_faces,
                                       skybox_gradient_colours, skybox_recolour_basis)

# re-exported: the rest of this module's API, which lives in the modules above
from vasa.envs.lidar import (OCC_FREE as OCC_FREE, OCC_OCCUPIED as OCC_OCCUPIED, OCC_UNKNOWN as OCC_UNKNOWN,
                             lidar_dropout as lidar_dropout, occupancy_grid as occupancy_grid)
from vasa.envs.render_camera import look_at as look_at
from vasa.envs.render_geometry import (CAPSULE as CAPSULE, CYLINDER as CYLINDER, ELLIPSOID as ELLIPSOID,
                                       HFIELD as HFIELD, SDF as SDF, SPHERE as SPHERE, data_dict as data_dict)
from vasa.envs.render_textures import (BG_VIDEO as BG_VIDEO, BG_WAVES as BG_WAVES, TEX_CHECKER as TEX_CHECKER,
                                       TEX_GRID as TEX_GRID, TEX_MODEL_RECOLOUR as TEX_MODEL_RECOLOUR,
                                       TEX_NOISE as TEX_NOISE, TEXTURE_KINDS as TEXTURE_KINDS)

# also re-exported, though not API: names importable from here before the split only because
# this module imported them, kept so that its public names did not change
import dataclasses as dataclasses
import warnings as warnings
from typing import Annotated as Annotated

from vasa.envs.render_shading import light_terms as light_terms, rotation_between as rotation_between
from vasa.envs.render_textures import (MipTextures as MipTextures, cell_noise as cell_noise,
                                       plane_uv_maps as plane_uv_maps, skybox_lookup as skybox_lookup,
                                       texture_image as texture_image)
from vasa.run.fields import (NonNegFloat as NonNegFloat, PosFloat as PosFloat, PosInt as PosInt, Range as Range,
                             check_fields as check_fields, ordered_pair as ordered_pair)

SHADING = ("fast", "mujoco")
VISIBILITY = ("renderer", "mj_ray")

OUTPUTS = ("rgb", "depth", "distance", "geom_id", "body_id", "normals")


# ----------------------------------------------------------------------------------------
# data types
# ----------------------------------------------------------------------------------------


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
    bg_top, bg_bottom: ``[3] float32`` gradient colours; on the skybox (background 3) its
      gradient's ``rgb1`` and ``rgb2`` (the zenith and nadir colours at the model's own look;
      marks keep their colour).
    wave_rgb ``[3, 3]``, wave_freq ``[3, 2]``, wave_speed ``[3]``, wave_phase ``[3]``:
      three travelling colour waves over screen coordinates (background 1).
    video_index, video_offset: ``[] int32``, which video and which start frame (background 2).
    cam_pos_offset: ``[3]`` metres in the camera frame; cam_rot_offset: ``[3]`` radians
      (rotation vector in the camera frame); fovy_offset: ``[]`` degrees. Camera jitter.
    geom_shown: ``[G] bool``, geom_offset: ``[G, 3] float32`` (world metres): whether the
      renderer's ``optional_geoms`` (hidden in the model: distractors) are drawn, and where
      (added to their ``geom_xpos``); ignored for other geoms.
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
    geom_shown: jax.Array
    geom_offset: jax.Array


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
      optional_geoms: names or ids of appearance-only geoms (e.g. table-top distractors,
        alpha 0 in the model): cast against, but hit only where ``Appearance.geom_shown``
        (default: hidden), at ``geom_xpos + Appearance.geom_offset``.

    The model's cameras are available by name or id (:meth:`model_camera`); free cameras by
    :func:`look_at` or any :class:`Camera`.
    """

    def __init__(self, mj_model: mujoco.MjModel, width: int = 84, height: int = 84, *,
                 geom_groups: Sequence[int] = (0, 1, 2), shading: str = "fast", shadows: bool = False,
                 reflections: bool = False, supersample: int = 1, visibility: str = "renderer",
                 skip_unsupported: bool = False, video: np.ndarray | None = None,
                 optional_geoms: Sequence[str | int] = ()):
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
        self.optional = np.zeros(m.ngeom, bool)  # [G]: appearance-only geoms
        self.optional[[_geometry.optional_geom_id(m, g) for g in optional_geoms]] = True
        visible = _geometry.drawn_geoms(m, rgba, geom_groups, visibility, skip_unsupported) | self.optional
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
        tris, self._tri_owner = _geometry.mesh_triangles(m, np.nonzero(visible & (m.geom_type == MESH))[0])
        self.num_triangles = 0 if tris is None else len(tris)
        self._tris = None if tris is None else jnp.asarray(tris, jnp.float32)  # [T, 3, 3]
        self._cand_geom = jnp.asarray(np.concatenate([self._prim_order, self._tri_owner]), jnp.int32)

        # the model's own look: colours, material terms, 2D textures, skybox, lights
        self._rgb = np.clip(rgba[:, :3], 0, 1).astype(np.float32)  # MuJoCo's colour (a texture's tint)
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
        # the model's 2D textures on the drawn geoms, and the colours recolouring starts from
        self._textures = _textures.GeomTextures(m, self.drawn, self._rgb)
        self._base_rgb, self._base_rgb2 = self._textures.base_rgb, self._textures.base_rgb2
        self._base_cell = self._textures.base_cell
        self.has_model_texture = self._textures.has_model_texture

        # background: the skybox, box-filtered to the camera's pixel size; its zenith and
        # nadir colours seed the gradient background that colour suites recolour
        fovy = float(np.max(m.cam_fovy)) if m.ncam else 45.0
        faces = skybox_faces(m, self._pixel_angle(fovy))
        if faces is None:
            top = bottom = np.zeros(3, np.float32)  # MuJoCo's default: black
        else:
            top, bottom = skybox_gradient_colours(m)
        self._sky = (np.asarray(top, np.float32), np.asarray(bottom, np.float32))
        # the skybox as fixed part + weights of its gradient colours (recoloured by bg_top/bg_bottom)
        self._skybox = None if faces is None else jnp.asarray(skybox_recolour_basis(m, faces, *self._sky))
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
            geom_shown=jnp.asarray(~self.optional),
            geom_offset=jnp.zeros((g, 3), jnp.float32),
        )

    # -- cameras ------------------------------------------------------------------------

    def camera_id(self, camera: str | int) -> int:
        """Resolve a model camera by name or id; unknown ones list the model's cameras."""
        return _camera.camera_id(self.model, camera)

    def model_camera(self, data, camera: str | int = 0) -> Camera:
        """The pose of model camera ``camera`` (name or id) in ``data`` (its ``cam_xpos``/
        ``cam_xmat``, so fixed, tracking and body-mounted cameras all follow the physics)."""
        return _camera.model_camera(self.model, data, self.camera_id(camera))

    def camera_rays(self, camera: Camera, appearance: Appearance | None = None, *,
                    supersample: int = 1) -> tuple[jax.Array, jax.Array, jax.Array]:
        """World ray origins ``[N, 3]``, unit directions ``[N, 3]`` and the camera's forward
        axis ``[3]``, with the appearance's camera jitter applied. ``supersample = 1``: one
        ray through each pixel centre, ``N = H*W`` row-major (row 0 at the top); ``s > 1``:
        an ``s x s`` grid of rays in each pixel, row-major over the ``sH x sW`` grid."""
        return _camera.camera_rays(camera, appearance, width=self.width, height=self.height,
                                   supersample=supersample)

    # -- casting ------------------------------------------------------------------------

    def cast(self, data, origins: jax.Array, dirs: jax.Array, *, geom_mask: jax.Array | np.ndarray | None = None) -> Hits:
        """Cast rays ``origins [R, 3]``, unit ``dirs [R, 3]`` against the drawn geoms of
        ``data`` (an ``mjx.Data`` or anything with ``geom_xpos``/``geom_xmat``).

        ``geom_mask [G] bool`` (optional) further restricts the geoms hit (e.g. to exclude
        a robot's own body from its LiDAR). Equivalent to ``mj_ray`` per ray.
        """
        if self.optional.any():  # appearance-only geoms: hidden unless the posed data shows them
            shown = data["geom_shown"] if isinstance(data, dict) and "geom_shown" in data else ~self.optional
            geom_mask = shown if geom_mask is None else jnp.asarray(geom_mask) & shown
        gpos, gmat = _poses(data)
        return _geometry.closest_hit(gpos, gmat, origins, dirs, groups=self._groups, geom_type=self._geom_type,
                                     geom_size=self._geom_size, tris=self._tris, tri_owner=self._tri_owner,
                                     cand_geom=self._cand_geom, geom_mask=geom_mask)

    # -- shading ------------------------------------------------------------------------

    def _visible_from(self, data, points, normals, light_pos, light_dir, directional: bool) -> jax.Array:
        """``[R] bool``: nothing lies between each point and the light (a shadow ray)."""
        start = points + normals * 1e-4
        if directional:
            return ~jnp.isfinite(self.cast(data, start, jnp.broadcast_to(-light_dir, start.shape)).distance)
        to = light_pos - start
        dist = jnp.linalg.norm(to, axis=-1)
        return self.cast(data, start, to / jnp.maximum(dist, _EPS)[:, None]).distance >= dist

    def _shade_mujoco(self, data, app: Appearance, lights: dict, hits: Hits, dirs: jax.Array, colour: jax.Array,
                      texel: jax.Array, shadow_passes: bool = True) -> jax.Array:
        """MuJoCo's fixed-function lighting of the hits (see :mod:`vasa.envs.render_shading`):
        ``[R, 3]``: the main pass plus one pass per shadow-casting light (clipped on its
        own, as MuJoCo blends it on; with the renderer's ``shadows`` a shadow ray decides
        where the pass applies, else it applies everywhere). ``shadow_passes=False``: every
        light in one pass, as MuJoCo lights its mirror image."""
        shadow = None
        if self.shadows:  # a shadow ray per shadow-casting light
            def shadow(k):
                return self._visible_from(data, hits.point, hits.normal, lights["pos"][k], lights["dir"][k],
                                          bool(lights["directional"][k]))
        return _shading.shade_mujoco(app, lights, hits, dirs, colour, texel, self._lights.global_ambient,
                                     shadow=shadow, shadow_passes=shadow_passes)

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
        colour, texel = self._textures.surface(app, second, rdir, hits.distance, pixel_angle)
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
        bg = _textures.background(app, dirs, t, h, w, video=self.video, skybox=self._skybox)
        colour, texel = self._textures.surface(app, hits, dirs, jnp.zeros_like(hits.distance), pixel_angle)
        if self.shading == "fast":
            light = app.light_dir / jnp.maximum(jnp.linalg.norm(app.light_dir), _EPS)
            lambert = jnp.maximum(jnp.sum(hits.normal * -light, -1), 0.0)
            if self.shadows:
                lambert = jnp.where(self._visible_from(data, hits.point, hits.normal, None, light, True), lambert, 0.0)
            shade = app.ambient + app.light_intensity * lambert
            lit = jnp.clip(colour, 0.0, 1.0) * texel * shade[:, None]
        else:
            lights = _shading.scene_lights(self._lights, self._light, data, app, origins[0], forward)
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
        if self.optional.any():
            data = _geometry.posed_data(data, app.geom_offset, app.geom_shown)
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
# (the sensor; its scan pattern, noise and occupancy grids are in vasa.envs.lidar)
# ----------------------------------------------------------------------------------------


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
