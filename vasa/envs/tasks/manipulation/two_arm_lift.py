"""``robo/two_arm_lift``: two arms lift a pot by its two handles (robosuite's TwoArmLift on MJX).

Arms: robosuite's ``single-arm-opposed`` configuration, two Panda-like arms facing each other
across the table (``robot0_`` at ``y = -0.56`` facing +y, ``robot1_`` at ``y = +0.56`` facing
-y, both on 0.912 m mounts as in ``robo/lift``). The action is ``[14]`` (``osc_pose``: robot0's
7 values then robot1's) or ``[16]`` for the joint modes; ``obs`` starts with robot0's then
robot1's 32 proprioceptive values (:class:`~vasa.envs.tasks.manipulation.base.ArmTask`).
``osc_pose`` deltas are in the world frame for both arms (as robosuite 1.4); robosuite 1.5
reads them in each robot's base frame (``input_ref_frame: base``), turned +-pi/2 here, so its
robot0 ``dx`` moves along world +y (see :mod:`.control`).

The pot (robosuite's ``PotWithHandlesObject`` layout): a 0.14 m cube-shaped pot (walls 0.01 m)
with a bar handle on each side, ``handle0`` on the pot's +y side and ``handle1`` on its -y side,
each a 0.11 x 0.02 x 0.02 m bar 0.16 m from the centre at 0.06 m above it. The pot is placed
turned by about pi, so ``handle0`` faces robot0 and ``handle1`` robot1 (robosuite's
convention: each arm grasps its own handle). Contacts: only the pot's bottom touches the table
(``contype 2``, as the objects of :mod:`vasa.envs.scenes.table`) and only the handle bars touch
the finger pads (``conaffinity 1``, as the door's handle); walls and the handles' side bars are
visual only, which keeps MJX's contact count small.

Success and rewards (robosuite ``two_arm_lift.py``): the pot's bottom (centre minus 0.07 m) is
more than 0.10 m above the table and the pot is tilted by at most 30 deg (``cos`` of the angle
between its z axis and the world's ``>= cos(pi / 6)``; robosuite pays its 3.0 only then, so a
tilted lift scores 0; robosuite's ``_check_success`` tests the height alone and counts a tilted
lift as a success, vasa does not). Staged shaping (unnormalised): lifting
``10 * level * clip(elevation - 0.05, 0, 0.15)`` (``elevation``: pot bottom above the table,
``level``: the tilt test above), plus per arm ``0.25`` while both its finger pads touch its
handle and reaching ``0.5 (1 - tanh(10 d))`` (``d``: its grasp site to its handle's site).
Sparse: 3.0 on success. Normalised by 3.0 and multiplied by ``reward_scale``.

Per-environment draws at every reset (pure JAX): pot position ``x, y ~ U[-0.03, 0.03]`` m
(robosuite's sampler), yaw ``pi + U[-0.3, 0.3]`` rad (robosuite draws ``pi +- pi/3``; narrower
here so that both handles stay in front of their arms), mass ``~ U[0.6, 1.2]`` kg (inertia
scaled with it; robosuite's pot is about 1 kg). The mass lives in ``info["object"]`` and is
swapped into the MJX model per environment.

``obs``: 64 proprioceptive values, then pot position ``[3]``, quaternion ``[4]`` (w, x, y, z),
handle0 and handle1 positions ``[3]`` each, handle0 minus robot0's grasp site ``[3]`` and
handle1 minus robot1's grasp site ``[3]``: ``[83] float32`` (robosuite's object observables).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from vasa.envs.scenes import table
from vasa.envs.tasks.manipulation.base import ROBOT_BASE, ArmTask

# robosuite single-arm-opposed: the one-arm base offset turned by +-pi/2 about z
OPPOSED_ARMS = (((0.0, ROBOT_BASE[0], ROBOT_BASE[2]), math.pi / 2), ((0.0, -ROBOT_BASE[0], ROBOT_BASE[2]), -math.pi / 2))
POT_HALF = 0.07  # body half size (a cube)
WALL = 0.01  # wall thickness
HANDLE_RADIUS, HANDLE_LENGTH, HANDLE_WIDTH = 0.01, 0.09, 0.09
HANDLE_Y = POT_HALF + HANDLE_LENGTH  # handle bar centre, pot frame (on +-y)
HANDLE_Z = POT_HALF - HANDLE_RADIUS
POT_MASS = (0.6, 1.2)
NOMINAL_MASS = 0.9
XY_RANGE = (-0.03, 0.03)
YAW_NOISE = 0.3
LIFT_MARGIN = 0.10
POT_BITS = (2, 0)  # pot bottom: the table plane only
HANDLE_BITS = table.DOOR_BITS  # handle bars: the finger pads only


def add_pot(spec: mujoco.MjSpec, name: str = "pot", rgba=(0.75, 0.2, 0.15, 1.0)) -> dict:
    """A free pot with two bar handles (see the module docstring) resting on the table at the
    origin, with sites ``<name>_center``, ``<name>_handle0`` and ``<name>_handle1``. Masses sum to
    :data:`NOMINAL_MASS`. Returns ``{"body", "joint", "bottom", "handles": [[geom], [geom]],
    "center", "handle_sites"}`` names."""
    box = mujoco.mjtGeom.mjGEOM_BOX
    visual = {"contype": 0, "conaffinity": 0, "group": 1}
    body = spec.worldbody.add_body(name=name, pos=[0.0, 0.0, table.TABLE_TOP + POT_HALF])
    body.add_freejoint(name=f"{name}_joint")
    wall_mass = 0.15
    body.add_geom(name=f"{name}_bottom", type=box, size=[POT_HALF, POT_HALF, WALL / 2],
                  pos=[0, 0, -POT_HALF + WALL / 2], rgba=list(rgba), mass=NOMINAL_MASS - 4 * wall_mass - 0.1, condim=3,
                  group=1, friction=[1.0, 0.005, 0.0001], contype=POT_BITS[0], conaffinity=POT_BITS[1])
    off = POT_HALF - WALL / 2
    for i, (x, y, sx, sy) in enumerate([(off, 0, WALL / 2, POT_HALF), (-off, 0, WALL / 2, POT_HALF),
                                        (0, off, POT_HALF, WALL / 2), (0, -off, POT_HALF, WALL / 2)]):
        body.add_geom(name=f"{name}_wall{i}", type=box, size=[sx, sy, POT_HALF], pos=[x, y, 0], rgba=list(rgba),
                      mass=wall_mass, **visual)
    handles, sites = [], []
    colours = ([0.2, 0.7, 0.25, 1.0], [0.2, 0.35, 0.8, 1.0])  # robosuite: handle0 green, handle1 blue
    for i, side in enumerate((1.0, -1.0)):
        bar = f"{name}_handle{i}"
        body.add_geom(name=bar, type=box, size=[HANDLE_WIDTH / 2 + HANDLE_RADIUS, HANDLE_RADIUS, HANDLE_RADIUS],
                      pos=[0, side * HANDLE_Y, HANDLE_Z], rgba=colours[i], mass=0.03, condim=3, group=1,
                      friction=[1.0, 0.005, 0.0001], contype=HANDLE_BITS[0], conaffinity=HANDLE_BITS[1])
        for k, sx in enumerate((-1.0, 1.0)):
            body.add_geom(name=f"{bar}_side{k}", type=box, size=[HANDLE_RADIUS, HANDLE_LENGTH / 2, HANDLE_RADIUS],
                          pos=[sx * HANDLE_WIDTH / 2, side * (POT_HALF + HANDLE_LENGTH / 2), HANDLE_Z],
                          rgba=colours[i], mass=0.01, **visual)
        site = f"{name}_handle{i}_site"
        body.add_site(name=site, pos=[0, side * (HANDLE_Y - 0.005), HANDLE_Z], size=[0.005, 0, 0], group=3)
        handles.append([bar])
        sites.append(site)
    body.add_site(name=f"{name}_center", size=[0.005, 0, 0], group=3)
    return {"body": name, "joint": f"{name}_joint", "bottom": f"{name}_bottom", "handles": handles,
            "center": f"{name}_center", "handle_sites": sites}


def two_arm_lift_reward(grip0, grip1, handle0, handle1, pot_center, pot_zaxis, grasp0, grasp1,
                        table_top: float = table.TABLE_TOP):
    """Unnormalised robosuite TwoArmLift reward of one state: ``(shaped [] float32, success []
    bool)``. ``grip*``, ``handle*``, ``pot_center``: ``[3]`` positions; ``pot_zaxis``: ``[3]``
    the pot's z axis in the world; ``grasp*``: ``[] bool``. ``shaped`` is 3.0 x level when lifted
    (robosuite's value), so ``where(success, 3, shaped)`` is robosuite's shaped reward."""
    level = pot_zaxis[2] >= jnp.cos(jnp.pi / 6)
    elevation = pot_center[2] - POT_HALF - table_top
    lifted = elevation > LIFT_MARGIN
    r_lift = jnp.clip(elevation - 0.05, 0.0, 0.15)
    reach = 0.5 * (1.0 - jnp.tanh(10.0 * jnp.linalg.norm(handle0 - grip0))) + \
        0.5 * (1.0 - jnp.tanh(10.0 * jnp.linalg.norm(handle1 - grip1)))
    shaped = 10.0 * level * r_lift + 0.25 * grasp0.astype(jnp.float32) + 0.25 * grasp1.astype(jnp.float32) + reach
    shaped = jnp.where(lifted, 3.0 * level, shaped)
    return shaped.astype(jnp.float32), lifted & level


class TwoArmLift(ArmTask):
    """See the module docstring."""

    arm_poses = OPPOSED_ARMS
    object_obs_size = 19
    max_reward = 3.0

    def _build_objects(self, spec, rng):
        return {"pot": add_pot(spec)}

    def _setup(self):
        m, pot = self.mj_model, self.names["pot"]
        self.pot_body = m.body(pot["body"]).id
        self.pot_qpos = int(m.jnt_qposadr[m.joint(pot["joint"]).id])
        self.pot_center = m.site(pot["center"]).id
        self.handle_sites = np.array([m.site(s).id for s in pot["handle_sites"]])
        self.handle_geoms = [np.array([m.geom(g).id for g in h]) for h in pot["handles"]]
        self.nominal_mass = float(m.body_mass[self.pot_body])

    def _init_objects(self, key, d):
        k_xy, k_yaw, k_mass = jax.random.split(key, 3)
        xy = jax.random.uniform(k_xy, (2,), minval=XY_RANGE[0], maxval=XY_RANGE[1])
        yaw = jnp.pi + jax.random.uniform(k_yaw, (), minval=-YAW_NOISE, maxval=YAW_NOISE)
        mass = jax.random.uniform(k_mass, (), minval=POT_MASS[0], maxval=POT_MASS[1])
        pose = jnp.concatenate([xy, jnp.array([table.TABLE_TOP + POT_HALF]),
                                jnp.stack([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)])])
        d = d.replace(qpos=d.qpos.at[self.pot_qpos:self.pot_qpos + 7].set(pose))
        return d, {"mass": mass}

    def _model_for(self, params):
        m, b = self._mjx_model, self.pot_body
        scale = params["mass"] / self.nominal_mass
        return m.replace(body_mass=m.body_mass.at[b].set(params["mass"]),
                         body_inertia=m.body_inertia.at[b].mul(scale))

    def handles(self, d) -> jax.Array:
        """``[2, 3]`` handle site positions (handle0, handle1)."""
        return d.site_xpos[self.handle_sites]

    def grips(self, d) -> jax.Array:
        """``[2, 3]`` grasp site positions (robot0, robot1)."""
        return jnp.stack([d.site_xpos[arm.site] for arm in self.arms])

    def _object_obs(self, d, params):
        h, g = self.handles(d), self.grips(d)
        return jnp.concatenate([d.xpos[self.pot_body], d.xquat[self.pot_body], h[0], h[1], h[0] - g[0], h[1] - g[1]])

    def _reward(self, d, params):
        h, g = self.handles(d), self.grips(d)
        zaxis = d.xmat[self.pot_body].reshape(3, 3)[:, 2]
        grasp0 = self.grasping(d, self.handle_geoms[0], arm=0)
        grasp1 = self.grasping(d, self.handle_geoms[1], arm=1)
        return two_arm_lift_reward(g[0], g[1], h[0], h[1], d.site_xpos[self.pot_center], zaxis, grasp0, grasp1)


def two_arm_lift(control: str = "osc_pose", **kwargs) -> TwoArmLift:
    """Build ``robo/two_arm_lift`` (``kwargs``: ``reward_shaping``, ``reward_scale``,
    ``control_freq``, ``timestep``, ``seed``; see :class:`~vasa.envs.tasks.manipulation.base.ArmTask`)."""
    return TwoArmLift(control, **kwargs)
