"""A planar (1-beam, horizontal) LiDAR specialised to apartment scenes.

A horizontal scan at height ``h`` only meets the cross-sections of the scene's geoms at
that height. In an apartment every geom that can reach the LiDAR's height is an upright box
(walls, furniture parts, pushable boxes: cross-section a rotated rectangle) or an upright
capsule/cylinder (the lamp's pole: a disc), so each ray-geom test is a 2-D slab or
ray-circle test instead of vasa's general 3-D caster (:class:`vasa.envs.render.Lidar`):
about 10x fewer operations, which is what a scan at every control step of thousands of
robots needs. Geoms whose vertical extent excludes ``h`` at that moment (table tops, lamp
shades, anything parked under the floor) are skipped by a per-geom height test on the
current pose, so mocap layouts and moving objects are handled. The result equals
``mujoco.mj_ray`` along horizontal rays for upright geoms (tested).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

_BIG = 1e9


class PlanarLidar:
    """Horizontal scan of a MuJoCo/MJX scene made of upright boxes and upright capsules.

    Args:
      mj_model: the model.
      angles: ``[R]`` ray angles in the sensor frame (radians, 0 = the robot's heading).
      height: the scan's height above the floor (m). max_range: readings are clipped to it.
      exclude_body: a body whose geoms are invisible (the robot's own).

    Raises ``ValueError`` naming a geom that could reach ``height`` but is neither an
    upright box nor an upright capsule/cylinder.
    """

    def __init__(self, mj_model: mujoco.MjModel, angles: np.ndarray, height: float, max_range: float,
                 min_range: float = 0.0, exclude_body: int | None = None):
        m = mj_model
        self.angles = jnp.asarray(angles, jnp.float32)
        self.height, self.max_range, self.min_range = float(height), float(max_range), float(min_range)
        boxes, discs = [], []
        for g in range(m.ngeom):
            if exclude_body is not None and m.geom_bodyid[g] == exclude_body:
                continue
            if m.geom_contype[g] == 0 and m.geom_conaffinity[g] == 0 and m.geom_rgba[g, 3] == 0:
                continue
            t = int(m.geom_type[g])
            if t == mujoco.mjtGeom.mjGEOM_PLANE:
                continue  # the floor: a horizontal scan never meets it
            quat = m.geom_quat[g]
            upright = abs(abs(quat[0]) - 1.0) < 1e-6 or (abs(quat[1]) < 1e-6 and abs(quat[2]) < 1e-6)
            size = m.geom_size[g]
            if t == mujoco.mjtGeom.mjGEOM_BOX and upright:
                boxes.append(g)
            elif t in (mujoco.mjtGeom.mjGEOM_CAPSULE, mujoco.mjtGeom.mjGEOM_CYLINDER) and upright:
                discs.append(g)
            else:
                body = m.geom_bodyid[g]
                static = body == 0 or m.body_mocapid[body] >= 0
                mat = np.zeros(9)
                mujoco.mju_quat2Mat(mat, quat)
                rz = np.abs(mat.reshape(3, 3)[2])
                if t == mujoco.mjtGeom.mjGEOM_CAPSULE:
                    extent = size[0] + size[1] * rz[2]
                elif t == mujoco.mjtGeom.mjGEOM_BOX:
                    extent = float(rz @ size)
                else:
                    extent = float(m.geom_rbound[g])
                if static and abs(m.geom_pos[g, 2] - height) > extent:
                    continue  # never at the scan height (static geoms only move in the plane)
                name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g)
                raise ValueError(f"geom {name or g!r} is not allowed in a planar LiDAR scene: only upright boxes and "
                                 "capsules/cylinders may cross the scan height.")
        self.box_ids = np.asarray(boxes, np.int32)
        self.box_half = jnp.asarray(m.geom_size[boxes], jnp.float32).reshape(-1, 3)
        self.disc_ids = np.asarray(discs, np.int32)
        ds = m.geom_size[discs].reshape(-1, 3)
        types = m.geom_type[discs].astype(int)
        self.disc_r = jnp.asarray(ds[:, 0], jnp.float32)
        self.disc_halfz = jnp.asarray(np.where(types == mujoco.mjtGeom.mjGEOM_CAPSULE, ds[:, 1] + ds[:, 0], ds[:, 1]),
                                      jnp.float32)

    def scan(self, geom_xpos: jax.Array, geom_xmat: jax.Array, pos: jax.Array, yaw: jax.Array) -> jax.Array:
        """Ranges ``float32 [R]`` (m) from sensor ``pos [2]`` (x, y) at heading ``yaw []``,
        with the geoms posed at ``geom_xpos [G, 3]``, ``geom_xmat [G, 9]`` or ``[G, 3, 3]``."""
        gpos = jnp.asarray(geom_xpos, jnp.float32)
        gmat = jnp.asarray(geom_xmat, jnp.float32).reshape(-1, 3, 3)
        ang = self.angles + yaw
        d = jnp.stack([jnp.cos(ang), jnp.sin(ang)], -1)  # [R, 2]
        best = jnp.full(ang.shape, jnp.inf, jnp.float32)
        if len(self.box_ids):
            p, mt = gpos[self.box_ids], gmat[self.box_ids]
            ex, ey = mt[:, :2, 0], mt[:, :2, 1]  # local x / y axes in the world plane
            rel = pos[None, :] - p[:, :2]
            ox, oy = jnp.sum(rel * ex, -1), jnp.sum(rel * ey, -1)  # [B]
            dx, dy = d @ ex.T, d @ ey.T  # [R, B]
            hx, hy = self.box_half[:, 0], self.box_half[:, 1]

            def slab(o, v, half):
                safe = jnp.where(jnp.abs(v) < 1e-9, 1e-9, v)
                t1, t2 = (-half - o) / safe, (half - o) / safe
                return jnp.minimum(t1, t2), jnp.maximum(t1, t2)

            lo_x, hi_x = slab(ox, dx, hx)
            lo_y, hi_y = slab(oy, dy, hy)
            near, far = jnp.maximum(lo_x, lo_y), jnp.minimum(hi_x, hi_y)
            at_height = jnp.abs(self.height - p[:, 2]) <= self.box_half[:, 2]
            hit = (near <= far) & (far > 0) & at_height[None]
            t = jnp.where(near > 0, near, far)
            best = jnp.minimum(best, jnp.min(jnp.where(hit, t, jnp.inf), axis=1))
        if len(self.disc_ids):
            p = gpos[self.disc_ids]
            f = pos[None, :] - p[:, :2]  # [D, 2]
            b = d @ f.T  # [R, D]
            c = jnp.sum(f * f, -1) - self.disc_r ** 2
            disc = b * b - c[None]
            sq = jnp.sqrt(jnp.maximum(disc, 0.0))
            t0, t1 = -b - sq, -b + sq
            t = jnp.where(t0 > 0, t0, t1)
            at_height = jnp.abs(self.height - p[:, 2]) <= self.disc_halfz
            hit = (disc >= 0) & (t > 0) & at_height[None]
            best = jnp.minimum(best, jnp.min(jnp.where(hit, t, jnp.inf), axis=1))
        return jnp.clip(jnp.where(best <= self.max_range, best, self.max_range), self.min_range, self.max_range)
