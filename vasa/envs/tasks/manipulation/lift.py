"""``robo/lift``: pick a cube up from the table (robosuite's Lift on MJX).

Success: the cube's centre is more than 0.04 m above the table top. Rewards (robosuite v1.5):
sparse 2.25 on success; staged shaping ``1 - tanh(10 d)`` (``d``: grasp site to cube centre)
``+ 0.25`` while both finger pads touch the cube; 2.25 on success. Rewards are normalised by
2.25 and multiplied by ``reward_scale`` (``reward_scale=None``: raw values).

Per-environment draws at every reset (pure JAX): cube position ``x, y ~ U[-0.03, 0.03]``
and yaw ``~ U[0, 2 pi)`` (robosuite's sampler), half-size ``~ U[0.020, 0.022]`` m, mass
``~ U[0.05, 0.15]`` kg (inertia follows), sliding friction ``~ U[0.8, 1.2]``. Size, mass and
friction live in ``info["object"]`` and are swapped into the MJX model for each environment.
The cube's colour is drawn once per scene from ``seed`` (pixels show the nominal 0.021 m size).

``obs``: 32 proprioceptive values (see :class:`~vasa.envs.tasks.manipulation.base.ArmTask`)
then cube position ``[3]``, quaternion ``[4]`` (w, x, y, z; robosuite's is x, y, z, w) and cube
minus grasp-site position ``[3]``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa.envs.scenes import table
from vasa.envs.tasks.manipulation.base import ArmTask

HALF_SIZE = (0.020, 0.022)
MASS = (0.05, 0.15)
FRICTION = (0.8, 1.2)
XY_RANGE = (-0.03, 0.03)
LIFT_HEIGHT = 0.04


def lift_reward(grip_pos, cube_pos, grasping, table_top: float = table.TABLE_TOP):
    """Unnormalised robosuite Lift reward: ``(shaped [], success [] bool)``."""
    success = cube_pos[2] > table_top + LIFT_HEIGHT
    dist = jnp.linalg.norm(grip_pos - cube_pos)
    shaped = 1.0 - jnp.tanh(10.0 * dist) + 0.25 * grasping.astype(jnp.float32)
    return shaped, success


class Lift(ArmTask):
    """See the module docstring."""

    object_obs_size = 10
    max_reward = 2.25

    def _build_objects(self, spec, rng):
        rgba = (*rng.uniform(0.15, 0.95, 3).round(3).tolist(), 1.0)
        return {"cube": table.add_cube(spec, "cube", half_size=0.021, rgba=rgba)}

    def _setup(self):
        m = self.mj_model
        self.cube_body = m.body("cube").id
        self.cube_geom = m.geom("cube_geom").id
        self.cube_qpos = int(m.jnt_qposadr[m.joint("cube_joint").id])

    def _init_objects(self, key, d):
        k_xy, k_yaw, k_size, k_mass, k_fric = jax.random.split(key, 5)
        xy = jax.random.uniform(k_xy, (2,), minval=XY_RANGE[0], maxval=XY_RANGE[1])
        yaw = jax.random.uniform(k_yaw, (), maxval=2 * jnp.pi)
        half = jax.random.uniform(k_size, (), minval=HALF_SIZE[0], maxval=HALF_SIZE[1])
        mass = jax.random.uniform(k_mass, (), minval=MASS[0], maxval=MASS[1])
        friction = jax.random.uniform(k_fric, (), minval=FRICTION[0], maxval=FRICTION[1])
        pose = jnp.concatenate([xy, table.TABLE_TOP + half[None], jnp.stack([jnp.cos(yaw / 2), 0.0, 0.0,
                                                                              jnp.sin(yaw / 2)])])
        d = d.replace(qpos=d.qpos.at[self.cube_qpos:self.cube_qpos + 7].set(pose))
        return d, {"half_size": half, "mass": mass, "friction": friction}

    def _model_for(self, params):
        m = self._mjx_model
        g, b = self.cube_geom, self.cube_body
        half, mass = params["half_size"], params["mass"]
        inertia = jnp.full((3,), mass * (2 * half) ** 2 / 6.0)
        return m.replace(geom_size=m.geom_size.at[g].set(jnp.full((3,), half)),
                         geom_rbound=m.geom_rbound.at[g].set(half * jnp.sqrt(3.0)),
                         geom_friction=m.geom_friction.at[g, 0].set(params["friction"]),
                         body_mass=m.body_mass.at[b].set(mass), body_inertia=m.body_inertia.at[b].set(inertia))

    def cube_pos(self, d):
        return d.xpos[self.cube_body]

    def _object_obs(self, d, params):
        pos = d.xpos[self.cube_body]
        return jnp.concatenate([pos, d.xquat[self.cube_body], pos - d.site_xpos[self.arm.site]])

    def _reward(self, d, params):
        grasp = self.grasping(d, self.cube_geom)
        return lift_reward(d.site_xpos[self.arm.site], d.xpos[self.cube_body], grasp)


def lift(control: str = "osc_pose", **kwargs) -> Lift:
    """Build ``robo/lift`` (``kwargs``: ``reward_shaping``, ``reward_scale``, ``control_freq``,
    ``timestep``, ``seed``; see :class:`~vasa.envs.tasks.manipulation.base.ArmTask`)."""
    return Lift(control, **kwargs)
