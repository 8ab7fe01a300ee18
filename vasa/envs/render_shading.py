"""Lighting for the ray-cast camera (:mod:`vasa.envs.render`): the model's lights
(:class:`ModelLights`), the lights of one frame (:func:`scene_lights`: the headlight, then
the model's), MuJoCo's lighting of surface points by them (:func:`light_terms`) and its
passes, shadows included, over the hits of a frame (:func:`shade_mujoco`).

Two models:

* ``fast``: one directional light, ``colour = albedo * (ambient + intensity * max(n.l, 0))``
  (the camera's original model; cheap, and what the closed-form tests check).
* ``mujoco``: the lighting of MuJoCo's OpenGL renderer (``src/render/classic``), which uses
  OpenGL's fixed-function (Blinn-Phong) lighting with ``GL_LIGHT_MODEL_LOCAL_VIEWER`` and
  the material colour tracking ambient and diffuse. Per light ``l``::

      term_l = att_l * spot_l * (ambient_l * rgb + max(n.L, 0) * diffuse_l * rgb
                                 + [n.L > 0] * max(n.H, 0) ** (128 * shininess) * specular_l * specular)
      colour = clip(emission * rgb + sum_l term_l, 0, 1) * texel

  with ``L`` the unit vector to the light (``-dir`` for directional lights), ``H`` the
  unit half vector of ``L`` and the direction to the eye, ``att = 1 / (a0 + a1 d + a2 d^2)``
  and ``spot = (cos angle to the spot axis) ** exponent`` inside the cut-off, 0 outside
  (both 1 for directional lights). The lights are MuJoCo's: the headlight (directional,
  along the camera's forward axis, colours ``model.vis.headlight``) and every active
  directional or spot light of the model at its pose in the data; with no light at all,
  MuJoCo adds a global ambient of 0.3. Lights with ``castshadow`` are drawn by MuJoCo in a
  second, additive pass through a shadow map; here a shadow ray per such light decides
  (when the renderer's ``shadows`` is on), and the pass is clipped separately as OpenGL does.

Known differences from MuJoCo: lighting is evaluated per pixel where OpenGL lights the
vertices of its tessellated geoms and interpolates (smoother highlights here); shadows are
exact where MuJoCo's shadow map is limited to a frustum; no haze at the horizon.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from vasa.envs.render_geometry import Hits

_EPS = 1e-12
SPOT, DIRECTIONAL = int(mujoco.mjtLightType.mjLIGHT_SPOT), int(mujoco.mjtLightType.mjLIGHT_DIRECTIONAL)


class ModelLights:
    """The model's lights that MuJoCo's OpenGL renderer draws (active, directional or spot),
    as static arrays (``K`` lights): ``ids [K]`` model light ids, ``directional [K] bool``,
    ``castshadow [K] bool``, ``attenuation [K, 3]``, ``cos_cutoff [K]``, ``exponent [K]``,
    colours ``ambient``/``diffuse``/``specular [K, 3]``, and the poses at ``qpos0``
    (``pos0``/``dir0 [K, 3]``, used when the data holds no ``light_xpos``/``light_xdir``)."""

    def __init__(self, m: mujoco.MjModel):
        ok = [i for i in range(m.nlight) if m.light_active[i] and int(m.light_type[i]) in (SPOT, DIRECTIONAL)]
        self.ids = np.asarray(ok, np.int32)
        self.count = len(ok)
        self.directional = np.asarray([int(m.light_type[i]) == DIRECTIONAL for i in ok], bool)
        self.castshadow = np.asarray([bool(m.light_castshadow[i]) for i in ok], bool)
        f = lambda x: np.asarray(x, np.float32).reshape(-1, 3)  # noqa: E731
        self.attenuation = f([m.light_attenuation[i] for i in ok])
        self.cos_cutoff = np.cos(np.deg2rad(np.asarray([m.light_cutoff[i] for i in ok], np.float32)))
        self.exponent = np.asarray([m.light_exponent[i] for i in ok], np.float32)
        self.ambient, self.diffuse, self.specular = (f([getattr(m, a)[i] for i in ok]) for a in
                                                     ("light_ambient", "light_diffuse", "light_specular"))
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)
        self.pos0, self.dir0 = f(d.light_xpos[ok]), f(d.light_xdir[ok])
        h = m.vis.headlight
        self.headlight = np.stack([h.ambient, h.diffuse, h.specular]).astype(np.float32) * (1.0 if h.active else 0.0)
        self.global_ambient = 0.0 if (self.count or h.active) else 0.3

    def poses(self, data) -> tuple[jax.Array, jax.Array]:
        """Light positions and unit directions ``[K, 3]`` in ``data`` (an ``mjx.Data``,
        ``MjData`` or dict), or the ``qpos0`` poses where the data has no light fields."""
        get = (lambda k: data.get(k)) if isinstance(data, dict) else (lambda k: getattr(data, k, None))
        xpos, xdir = get("light_xpos"), get("light_xdir")
        if xpos is None or xdir is None:
            return jnp.asarray(self.pos0), jnp.asarray(self.dir0)
        xpos = jnp.asarray(xpos, jnp.float32).reshape(-1, 3)[self.ids]
        xdir = jnp.asarray(xdir, jnp.float32).reshape(-1, 3)[self.ids]
        return xpos, xdir / jnp.maximum(jnp.linalg.norm(xdir, axis=-1, keepdims=True), _EPS)


def rotation_between(a: jax.Array, b: jax.Array) -> jax.Array:
    """The rotation ``[3, 3]`` taking unit vector ``a [3]`` to unit vector ``b [3]`` along
    the great circle (identity for ``a == b``; undefined only for ``a == -b``)."""
    v = jnp.cross(a, b)
    c = jnp.dot(a, b)
    vx = jnp.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    return jnp.eye(3) + vx + (vx @ vx) / jnp.maximum(1.0 + c, 1e-6)


def scene_lights(ml: ModelLights, light0: np.ndarray, data, app, cam_pos: jax.Array, cam_forward: jax.Array) -> dict:
    """MuJoCo's lights in this frame: the headlight (at ``cam_pos``, along ``cam_forward``),
    then the model's drawn lights ``ml`` at their poses in ``data``, as arrays ``[1 + K, ...]``
    for :func:`light_terms`, their colours scaled by ``app`` (a
    :class:`vasa.envs.render.Appearance`). ``light0 [3]``: the unit direction of the first
    model light at ``qpos0``, which ``app.light_dir`` replaces."""
    pos, direction = ml.poses(data)
    if ml.count:  # Appearance.light_dir turns every model light by one rotation
        a = jnp.asarray(light0)
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


def light_terms(points, normals, to_eye, light_pos, light_dir, directional, attenuation, cos_cutoff, exponent,
                ambient, diffuse, specular, shininess):
    """Fixed-function OpenGL lighting of ``R`` surface points by ``K`` lights.

    Args:
      points, normals, to_eye: ``[R, 3]`` world points, unit normals (facing the eye) and
        unit directions to the eye.
      light_pos, light_dir: ``[K, 3]`` positions and unit directions the lights shine in.
      directional: ``[K] bool``; attenuation ``[K, 3]``; cos_cutoff, exponent ``[K]``.
      ambient, diffuse, specular: ``[K, 3]`` light colours.
      shininess: ``[R]`` OpenGL exponent (``128 * MuJoCo shininess``).

    Returns:
      ``(coloured [R, K, 3], specular [R, K, 3])``: per light, what multiplies the
      material colour (ambient + diffuse) and what multiplies the material's specular.
    """
    to_light = light_pos[None] - points[:, None]  # [R, K, 3]
    dist = jnp.linalg.norm(to_light, axis=-1)
    unit = to_light / jnp.maximum(dist, _EPS)[..., None]
    dirl = jnp.where(directional[None, :, None], -light_dir[None], unit)
    att = 1.0 / jnp.maximum(attenuation[:, 0] + attenuation[:, 1] * dist + attenuation[:, 2] * dist * dist, _EPS)
    cos_spot = jnp.sum(-unit * light_dir[None], -1)
    spot = jnp.where(cos_spot >= cos_cutoff, jnp.maximum(cos_spot, 0.0) ** exponent, 0.0)
    scale = jnp.where(directional[None], 1.0, att * spot)[..., None]  # [R, K, 1]
    n_l = jnp.sum(normals[:, None] * dirl, -1)
    half = dirl + to_eye[:, None]
    half = half / jnp.maximum(jnp.linalg.norm(half, axis=-1, keepdims=True), _EPS)
    n_h = jnp.maximum(jnp.sum(normals[:, None] * half, -1), 0.0)
    # 0 ** 0 is 1 in OpenGL too; where n.l <= 0 there is no highlight
    spec = jnp.where(n_l > 0, jnp.exp(shininess[:, None] * jnp.log(jnp.maximum(n_h, 1e-30))), 0.0)
    spec = jnp.where((n_l > 0) & (shininess[:, None] <= 0), 1.0, spec)
    coloured = scale * (ambient[None] + jnp.maximum(n_l, 0.0)[..., None] * diffuse[None])
    return coloured, scale * spec[..., None] * specular[None]


def shade_mujoco(app, lights: dict, hits: Hits, dirs: jax.Array, colour: jax.Array, texel: jax.Array,
                 global_ambient: float, *, shadow=None, shadow_passes: bool = True) -> jax.Array:
    """MuJoCo's fixed-function lighting of the hits ``[R, 3]`` seen along ``dirs``, of
    material ``colour`` and ``texel [R, 3]``, by the frame's ``lights``
    (:func:`scene_lights`), with the material terms of ``app`` (a
    :class:`vasa.envs.render.Appearance`): the main pass plus one pass per shadow-casting
    light (clipped on its own, as MuJoCo blends it on). ``shadow(k) -> [R] bool``
    (optional; the renderer's ``shadows``): where light ``k`` reaches the hits (a shadow
    ray), where its pass applies; without it the pass applies everywhere.
    ``shadow_passes=False``: every light in one pass, as MuJoCo lights its mirror image."""
    g = jnp.maximum(hits.geom_id, 0)
    coloured, specular = light_terms(
        hits.point, hits.normal, -dirs, lights["pos"], lights["dir"], jnp.asarray(lights["directional"]),
        lights["attenuation"], lights["cos_cutoff"], lights["exponent"], lights["ambient"], lights["diffuse"],
        lights["specular"], 128.0 * app.geom_shininess[g])
    per_light = coloured * colour[:, None] + specular * app.geom_specular[g][:, None, None]  # [R, K, 3]
    passes = lights["castshadow"] & shadow_passes
    main = colour * (app.geom_emission[g][:, None] + global_ambient)
    main = main + jnp.sum(per_light[:, np.nonzero(~passes)[0]], 1)
    out = jnp.clip(main, 0.0, 1.0) * texel
    for k in np.nonzero(passes)[0]:
        term = jnp.clip(per_light[:, k], 0.0, 1.0) * texel
        if shadow is not None:
            term = jnp.where(shadow(k)[:, None], term, 0.0)
        out = out + term
    return out
