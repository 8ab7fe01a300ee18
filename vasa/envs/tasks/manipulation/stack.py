"""``robo/stack``: stack a small cube (A) on a larger one (B) (robosuite's Stack on MJX).

Success (robosuite's ``_check_success``, i.e. its stacking stage): cube A's centre is more than
0.04 m above the table top, A touches B (an active contact between their geoms) and the gripper
is not grasping A (not both finger pads touching it).

Rewards (robosuite's ``Stack.staged_rewards``, ``d``: grasp site to A's centre):

* reach ``0.25 (1 - tanh(10 d))``, plus 0.25 while A is grasped;
* lift ``1.0`` once A is lifted (A's centre > table + 0.04), plus ``0.5 (1 - tanh(d_xy))``
  (``d_xy``: horizontal distance from A to B) while lifted;
* stack 2.0 when A is lifted, touches B and is not grasped.

Shaped reward: the maximum of the three stages; sparse: 2.0 on success. Normalised by 2.0 and
multiplied by ``reward_scale`` (``reward_scale=None``: raw values).

Per-environment draws at every reset (pure JAX): both cubes' ``x, y ~ U[-0.08, 0.08]`` (robosuite's
sampler range), kept apart by :func:`vasa.envs.scenes.table.sample_placements` (footprint radius:
half-diagonal), yaws ``~ U[0, 2 pi)``; half-sizes A ``~ U[0.019, 0.021]`` and B ``~ U[0.024,
0.026]`` m (robosuite: 0.02 and 0.025), masses ``~ U[0.05, 0.15]`` kg (inertia follows),
sliding friction ``~ U[0.8, 1.2]`` (as :mod:`.lift`). These live in ``info["object"]`` and are
swapped into the MJX model per environment by :func:`with_object_params`. Colours are drawn once
per scene from ``seed`` (A reddish, B greenish, as robosuite's red/green wood).

``obs``: 32 proprioceptive values (see :class:`~vasa.envs.tasks.manipulation.base.ArmTask`)
then robosuite's object observables: A position ``[3]`` and quaternion ``[4]``, B position
``[3]`` and quaternion ``[4]`` (w, x, y, z: MuJoCo's order, where robosuite uses x, y, z, w),
A minus grasp site ``[3]``, B minus grasp site ``[3]`` and B minus A ``[3]`` (23 values).

Source: ARISE-Initiative/robosuite ``robosuite/environments/manipulation/stack.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vasa.envs.scenes import table
from vasa.envs.tasks.manipulation.base import ArmTask, touching

HALF_A, HALF_B = (0.019, 0.021), (0.024, 0.026)
MASS = (0.05, 0.15)
FRICTION = (0.8, 1.2)
XY_RANGE = (-0.08, 0.08)
LIFT_HEIGHT = 0.04
STACK_REWARD = 2.0


def stack_reward(grip_pos, a_pos, b_pos, grasping_a, a_touches_b, table_top: float = table.TABLE_TOP):
    """Unnormalised robosuite Stack stages: ``(reach [], lift [], stack [])`` float32.

    ``grip_pos``, ``a_pos``, ``b_pos``: ``[3]`` world positions of the grasp site and the cube
    centres; ``grasping_a``, ``a_touches_b``: ``[] bool``. Success is ``stack > 0``.
    """
    dist = jnp.linalg.norm(grip_pos - a_pos)
    r_reach = 0.25 * (1.0 - jnp.tanh(10.0 * dist)) + 0.25 * grasping_a.astype(jnp.float32)
    lifted = a_pos[2] > table_top + LIFT_HEIGHT
    horiz = jnp.linalg.norm(a_pos[:2] - b_pos[:2])
    r_lift = jnp.where(lifted, 1.0 + 0.5 * (1.0 - jnp.tanh(horiz)), 0.0)
    r_stack = jnp.where(~grasping_a & lifted & a_touches_b, STACK_REWARD, 0.0)
    return r_reach, r_lift, r_stack


def with_object_params(m, geoms, bodies, size0, rbound0, mass0, inertia0, scale, mass, friction):
    """The MJX model ``m`` with ``N`` objects resized, reweighted and re-frictioned (uniform density).

    ``geoms``, ``bodies``: static ``[N]`` ints (one geom per body); ``size0 [N, 3]``,
    ``rbound0 [N]``, ``mass0 [N]``, ``inertia0 [N, 3]``: the compiled model's nominal values
    (NumPy); ``scale``, ``mass``, ``friction``: ``[N] float32`` draws. Sizes and bounding radii
    scale by ``scale``; the diagonal inertia by ``(mass / mass0) scale^2``.
    """
    scale, mass = jnp.asarray(scale), jnp.asarray(mass)
    inertia = jnp.asarray(inertia0) * (mass / jnp.asarray(mass0) * scale ** 2)[:, None]
    return m.replace(geom_size=m.geom_size.at[geoms].set(jnp.asarray(size0) * scale[:, None]),
                     geom_rbound=m.geom_rbound.at[geoms].set(jnp.asarray(rbound0) * scale),
                     geom_friction=m.geom_friction.at[geoms, 0].set(friction),
                     body_mass=m.body_mass.at[bodies].set(mass), body_inertia=m.body_inertia.at[bodies].set(inertia))


def yaw_quat(yaw: jax.Array) -> jax.Array:
    """``[...]`` yaw angles (rad) -> ``[..., 4]`` quaternions (w, x, y, z) about +z."""
    zero = jnp.zeros_like(yaw)
    return jnp.stack([jnp.cos(yaw / 2), zero, zero, jnp.sin(yaw / 2)], axis=-1)


class Stack(ArmTask):
    """See the module docstring."""

    object_obs_size = 23
    max_reward = STACK_REWARD

    def _build_objects(self, spec, rng):
        red = (*rng.uniform([0.75, 0.05, 0.05], [0.95, 0.3, 0.3]).round(3).tolist(), 1.0)
        green = (*rng.uniform([0.05, 0.6, 0.05], [0.3, 0.9, 0.3]).round(3).tolist(), 1.0)
        # nominal poses (pixels, model defaults); every reset draws its own
        a = table.add_cube(spec, "cubeA", half_size=sum(HALF_A) / 2, pos=(-0.04, -0.04), rgba=red)
        b = table.add_cube(spec, "cubeB", half_size=sum(HALF_B) / 2, pos=(0.04, 0.04), rgba=green)
        return {"cubeA": a, "cubeB": b}

    def _setup(self):
        m = self.mj_model
        self.bodies = np.array([m.body("cubeA").id, m.body("cubeB").id])
        self.geoms = np.array([m.geom("cubeA_geom").id, m.geom("cubeB_geom").id])
        self.qpos_adr = [int(m.jnt_qposadr[m.joint(n).id]) for n in ("cubeA_joint", "cubeB_joint")]
        self._nominal = (m.geom_size[self.geoms].copy(), m.geom_rbound[self.geoms].copy(),
                         m.body_mass[self.bodies].copy(), m.body_inertia[self.bodies].copy())

    def _init_objects(self, key, d):
        k_xy, k_yaw, k_a, k_b, k_mass, k_fric = jax.random.split(key, 6)
        half = jnp.stack([jax.random.uniform(k_a, (), minval=HALF_A[0], maxval=HALF_A[1]),
                          jax.random.uniform(k_b, (), minval=HALF_B[0], maxval=HALF_B[1])])
        xy = table.sample_placements(k_xy, 2, XY_RANGE, XY_RANGE, half * jnp.sqrt(2.0))
        yaw = jax.random.uniform(k_yaw, (2,), maxval=2 * jnp.pi)
        pose = jnp.concatenate([xy, table.TABLE_TOP + half[:, None], yaw_quat(yaw)], axis=1)  # [2, 7]
        qpos = d.qpos
        for i, adr in enumerate(self.qpos_adr):
            qpos = qpos.at[adr:adr + 7].set(pose[i])
        params = {"half_size": half, "mass": jax.random.uniform(k_mass, (2,), minval=MASS[0], maxval=MASS[1]),
                  "friction": jax.random.uniform(k_fric, (2,), minval=FRICTION[0], maxval=FRICTION[1])}
        return d.replace(qpos=qpos), params

    def _model_for(self, params):
        size0, rbound0, mass0, inertia0 = self._nominal
        scale = params["half_size"] / jnp.asarray(size0[:, 0])
        return with_object_params(self._mjx_model, self.geoms, self.bodies, size0, rbound0, mass0, inertia0, scale,
                                  params["mass"], params["friction"])

    def _object_obs(self, d, params):
        grip = d.site_xpos[self.arm.site]
        a, b = d.xpos[self.bodies[0]], d.xpos[self.bodies[1]]
        return jnp.concatenate([a, d.xquat[self.bodies[0]], b, d.xquat[self.bodies[1]], a - grip, b - grip, b - a])

    def stages(self, d):
        """robosuite's ``(reach, lift, stack)`` stages ``[]`` float32 of the state ``d``."""
        grasp = self.grasping(d, self.geoms[0])
        contact = touching(d, self.geoms[0], self.geoms[1])
        return stack_reward(d.site_xpos[self.arm.site], d.xpos[self.bodies[0]], d.xpos[self.bodies[1]], grasp, contact)

    def _reward(self, d, params):
        r_reach, r_lift, r_stack = self.stages(d)
        return jnp.maximum(jnp.maximum(r_reach, r_lift), r_stack), r_stack > 0


def stack(control: str = "osc_pose", **kwargs) -> Stack:
    """Build ``robo/stack`` (``kwargs``: ``reward_shaping``, ``reward_scale``, ``control_freq``,
    ``timestep``, ``seed``; see :class:`~vasa.envs.tasks.manipulation.base.ArmTask`)."""
    return Stack(control, **kwargs)
