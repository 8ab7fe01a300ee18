"""Ray casting against a MuJoCo scene's geoms, for the ray-cast sensors of
:mod:`vasa.envs.render` (camera and LiDAR): the geom poses of a physics state, closed-form
ray intersections with the analytic primitives (plane, sphere, capsule, ellipsoid,
cylinder, box) and with mesh triangles (Moeller-Trumbore), their surface normals, and the
scene-wide closest hit of a batch of rays (:func:`closest_hit`, which
:meth:`vasa.envs.render.Renderer.cast` runs) among the candidates: the drawn geoms
(:func:`drawn_geoms`, by geom group and transparency) and the triangles of drawn meshes.

No acceleration structure: every ray is tested against every candidate, ``rays x geoms``
closed-form tests for primitives plus ``rays x triangles`` for meshes. Conventions are
``mj_ray``'s: ``distance`` is the length along the unit ray, ``inf`` for a miss; planes are
one-sided (seen only from their ``+z`` side) and finite when their size is positive; a ray
starting inside a solid reports its exit point.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

# geom types (mujoco.mjtGeom)
PLANE, HFIELD, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX, MESH, SDF = (
    int(mujoco.mjtGeom.mjGEOM_PLANE), int(mujoco.mjtGeom.mjGEOM_HFIELD), int(mujoco.mjtGeom.mjGEOM_SPHERE),
    int(mujoco.mjtGeom.mjGEOM_CAPSULE), int(mujoco.mjtGeom.mjGEOM_ELLIPSOID), int(mujoco.mjtGeom.mjGEOM_CYLINDER),
    int(mujoco.mjtGeom.mjGEOM_BOX), int(mujoco.mjtGeom.mjGEOM_MESH), int(mujoco.mjtGeom.mjGEOM_SDF),
)
PRIMITIVES = (PLANE, SPHERE, CAPSULE, ELLIPSOID, CYLINDER, BOX)
_FAR = 1e10  # larger than any scene; "no hit" is reported as inf
_EPS = 1e-12


# ----------------------------------------------------------------------------------------
# hits and the geom poses of a physics state
# ----------------------------------------------------------------------------------------


@struct.dataclass
class Hits:
    """Result of :func:`closest_hit` (:meth:`vasa.envs.render.Renderer.cast`) for ``R`` rays.

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


def optional_geom_id(m: mujoco.MjModel, geom: str | int) -> int:
    """The id of an appearance-only geom (see ``Renderer(optional_geoms=...)``): a primitive."""
    i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, geom) if isinstance(geom, str) else int(geom)
    if not 0 <= i < m.ngeom or m.geom_type[i] not in PRIMITIVES:
        raise ValueError(f"Renderer optional_geoms entry {geom!r} is not allowed: it must name a primitive geom.")
    return i


def posed_data(data, geom_offset: jax.Array, geom_shown: jax.Array) -> dict:
    """The pose fields a render reads from ``data`` as a dict, geoms moved by ``geom_offset
    [G, 3]`` (world metres) and ``geom_shown [G] bool`` added (appearance-only geoms)."""
    get = (lambda k: data.get(k)) if isinstance(data, dict) else (lambda k: getattr(data, k, None))
    out = {k: get(k) for k in ("geom_xmat", "cam_xpos", "cam_xmat", "light_xpos", "light_xdir")}
    out = {k: v for k, v in out.items() if v is not None}
    return {**out, "geom_xpos": _get(data, "geom_xpos") + geom_offset, "geom_shown": geom_shown}


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

# ----------------------------------------------------------------------------------------
# the candidates: which geoms rays can hit, and the triangles of meshes
# ----------------------------------------------------------------------------------------


def mesh_triangles(m: mujoco.MjModel, geoms) -> tuple[np.ndarray | None, np.ndarray]:
    """Every triangle of the mesh geoms ``geoms`` (ids) of ``m``, in its geom's frame:
    vertices ``[T, 3, 3]`` (``None`` when there are none) and the ``int32 [T]`` geom that
    owns each triangle."""
    tris, owner = [], []
    for g in geoms:
        mid = m.geom_dataid[g]
        va, fa = m.mesh_vertadr[mid], m.mesh_faceadr[mid]
        verts = m.mesh_vert[va:va + m.mesh_vertnum[mid]]
        faces = m.mesh_face[fa:fa + m.mesh_facenum[mid]]
        tris.append(verts[faces])
        owner.append(np.full(len(faces), g))
    return (np.concatenate(tris) if tris else None,
            np.concatenate(owner).astype(np.int32) if owner else np.zeros(0, np.int32))


def drawn_geoms(m: mujoco.MjModel, rgba: np.ndarray, geom_groups: Sequence[int], visibility: str,
                skip_unsupported: bool) -> np.ndarray:
    """The geoms rays can hit, ``[G] bool``: those of ``geom_groups`` that are not fully
    transparent, by ``visibility`` (``"renderer"``: the alpha of ``rgba [G, 4]``, MuJoCo's
    effective colour; ``"mj_ray"``: the material's alpha whenever the geom has a material,
    else the geom's), and that can be cast against. Visible geoms of other types (height
    fields, SDFs) raise a ``ValueError`` naming them, or with ``skip_unsupported`` are left
    out with a warning naming them."""
    has_mat = m.geom_matid >= 0
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
        warnings.warn(msg + " They are left out of every image.", stacklevel=3)
        visible &= supported
    return visible


# ----------------------------------------------------------------------------------------
# the scene-wide closest hit
# ----------------------------------------------------------------------------------------


def closest_hit(gpos: jax.Array, gmat: jax.Array, origins: jax.Array, dirs: jax.Array, *,
                groups: dict[int, np.ndarray], geom_type: jax.Array, geom_size: jax.Array,
                tris: jax.Array | None, tri_owner: np.ndarray, cand_geom: jax.Array,
                geom_mask: jax.Array | np.ndarray | None = None) -> Hits:
    """The nearest hit of each ray ``origins [R, 3]``, unit ``dirs [R, 3]``, with the geoms
    posed at ``gpos [G, 3]``, ``gmat [G, 3, 3]`` (world).

    The candidates are the primitives of ``groups`` (``{geom type: geom ids}``, in that
    order), then the mesh triangles ``tris [T, 3, 3]`` (``None``: no mesh) in the frames of
    their geoms ``tri_owner [T]``; ``cand_geom`` is the geom id of each candidate in that
    order. ``geom_type [G]`` and ``geom_size [G, 3]`` are the model's; ``geom_mask [G]
    bool`` (optional) further restricts the geoms hit. Equivalent to ``mj_ray`` per ray.
    """
    origins = jnp.asarray(origins, jnp.float32)
    dirs = jnp.asarray(dirs, jnp.float32)
    r = origins.shape[0]
    if cand_geom.shape[0] == 0:  # nothing to draw
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

    for t, ids in groups.items():
        p, mt, sz = gpos[ids], gmat[ids], geom_size[ids]
        lp = _rotate_into(origins[:, None, :] - p[None], mt[None])  # [R, g, 3]
        lv = _rotate_into(dirs[:, None, :], mt[None])
        tg = _HIT[t](lp, lv, sz[None])
        if mask is not None:
            tg = jnp.where(mask[ids][None], tg, jnp.inf)
        dist, best = merge(dist, best, tg, offset)
        offset += len(ids)
    n_prim = offset  # candidates before the triangles
    tri_n = None
    if tris is not None:
        own = tri_owner
        world = jnp.einsum("tvk,tjk->tvj", tris, gmat[own]) + gpos[own][:, None, :]
        v0, e1, e2 = world[:, 0], world[:, 1] - world[:, 0], world[:, 2] - world[:, 0]
        tt = _hit_triangles(origins, dirs, v0, e1, e2)
        if mask is not None:
            tt = jnp.where(mask[own][None], tt, jnp.inf)
        dist, best = merge(dist, best, tt, offset)
        tri_n = jnp.cross(e1, e2)
    hit = jnp.isfinite(dist)
    geom = jnp.where(hit, cand_geom[best], -1)
    g = jnp.maximum(geom, 0)
    point = origins + jnp.where(hit, dist, 0.0)[:, None] * dirs
    local = _rotate_into(point - gpos[g], gmat[g])
    n_local = _local_normal(geom_type[g], local, geom_size[g])
    normal = jnp.einsum("rjk,rk->rj", gmat[g], n_local)
    if tri_n is not None:
        is_tri = best >= n_prim
        tn = tri_n[jnp.clip(best - n_prim, 0, tri_n.shape[0] - 1)]
        tn = tn / jnp.maximum(jnp.linalg.norm(tn, axis=-1, keepdims=True), _EPS)
        normal = jnp.where(is_tri[:, None], tn, normal)
    # face the viewer (planes are one-sided; rays from inside a solid see its inside)
    normal = jnp.where(jnp.sum(normal * dirs, -1, keepdims=True) > 0, -normal, normal)
    normal = jnp.where(hit[:, None], normal, 0.0)
    return Hits(distance=dist, geom_id=geom.astype(jnp.int32), normal=normal, point=point, local=local)
