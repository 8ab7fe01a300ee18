"""``robo/two_arm_peg_in_hole``: one arm holds a peg, the other a plate with a square hole; put
the peg through the hole (robosuite's TwoArmPegInHole on MJX).

Arms: robosuite's ``opposed`` configuration (as :mod:`.two_arm_lift`, but 0.66 m either side
of the table's centre line so that peg and plate start clear of each other). robosuite's task
has no table and no grippers; here the table stays (nothing of this task touches it) and the
grippers stay too: their action element moves the fingers, which collide with nothing here.
The action is ``[14]`` (``osc_pose``: robot0's 7 values, then robot1's); ``obs`` starts with
robot0's then robot1's 32 proprioceptive values. ``osc_pose`` deltas are in the world frame for
both arms (as robosuite 1.4); robosuite 1.5 reads them in each robot's base frame
(``input_ref_frame: base``), turned +-pi/2 here (see :mod:`.control`).

Objects, welded to the hands as robosuite attaches them (no joints):

* the peg (robot0): a capsule along its body's z axis, half-length 0.13 m, radius drawn per
  environment ``~ U[0.015, 0.03]`` m (robosuite's ``peg_radius`` range; robosuite uses a
  cylinder), its centre 0.13 m along the hand's z axis (beyond the flange);
* the plate (robot1): robosuite's ``plate-with-hole`` layout, four 0.02 m thick boxes around a
  0.10 x 0.10 m square hole centred at ``(0.11, 0, 0)`` in the plate frame, the plate frame at
  ``(0.11, 0, 0.17)`` in the hand frame turned by the quaternion ``(0, 0, 0.707, 0.707)``.

Contacts: the peg touches the plate's four boxes only (contype/conaffinity bit 8, a bit the
table scenes leave free; see :mod:`vasa.envs.scenes.table`).

Success and rewards (robosuite ``two_arm_peg_in_hole.py``, ``_compute_orientation``): with the
peg's axis ``v`` (its body z axis), the hole's centre ``c = hole_pos + R_hole (0.1, 0, 0)`` and
normal ``n = R_hole z``: ``t = (c - peg_pos) . v`` (offset along the peg axis), ``d = |v x
(peg_pos - c)|`` (distance of the centre from the peg's axis), ``cos = |n . v|``. Success:
``d < 0.06`` and ``-0.12 <= t <= 0.14`` and ``cos > 0.95``. Shaped (unnormalised): ``1.0`` on
success plus reaching ``1 - tanh(|peg_pos - hole_pos|)``, ``1 - tanh(d)``, ``1 - tanh(|t|)``
and ``cos`` (robosuite adds these to the success bonus, so shaped rewards reach 5 without a
cap); sparse: 5.0 on success. Normalised by 5.0 and multiplied by ``reward_scale``.

``obs``: 64 proprioceptive values, then hole position ``[3]`` and quaternion ``[4]`` (w, x, y,
z), hole minus peg position ``[3]``, peg quaternion ``[4]``, ``cos``, ``t``, ``d``: ``[81]
float32`` (robosuite's object observables, quaternions in MuJoCo's order).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

from vasa.envs.tasks.manipulation.base import ROBOT_BASE, ArmTask

ARM_GAP = 0.66  # each arm base's distance from the table's centre line (y)
PEG_ARMS = (((0.0, -ARM_GAP, ROBOT_BASE[2]), math.pi / 2), ((0.0, ARM_GAP, ROBOT_BASE[2]), -math.pi / 2))
PEG_RADIUS = (0.015, 0.03)
PEG_HALF_LENGTH = 0.13
PEG_IN_HAND = (0.0, 0.0, PEG_HALF_LENGTH)
PLATE_IN_HAND = (0.11, 0.0, 0.17)
PLATE_QUAT = (0.0, 0.0, math.sqrt(0.5), math.sqrt(0.5))
# robosuite's plate-with-hole: (position, half sizes) of the four boxes, plate frame
PLATE_BOXES = (((0.0, 0.0, 0.0), (0.06, 0.17, 0.01)), ((0.22, 0.0, 0.0), (0.06, 0.17, 0.01)),
               ((0.11, 0.11, 0.0), (0.05, 0.06, 0.01)), ((0.11, -0.11, 0.0), (0.05, 0.06, 0.01)))
HOLE_CENTER = (0.1, 0.0, 0.0)  # robosuite's _compute_orientation offset (plate frame)
PEG_BITS, PLATE_BITS = (8, 0), (0, 8)


def add_peg_and_plate(spec: mujoco.MjSpec, peg_hand: str, plate_hand: str) -> dict:
    """Weld a peg body (``peg``, capsule geom ``peg_geom``) to the body ``peg_hand`` and a plate
    body (``hole``, box geoms ``hole_box0-3``) to ``plate_hand`` (see the module docstring).
    Returns ``{"peg", "peg_geom", "hole", "plate_geoms"}`` names."""
    peg = spec.body(peg_hand).add_body(name="peg", pos=list(PEG_IN_HAND))
    r = 0.5 * (PEG_RADIUS[0] + PEG_RADIUS[1])
    peg.add_geom(name="peg_geom", type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[r, PEG_HALF_LENGTH, 0],
                 rgba=[0.2, 0.7, 0.25, 1.0], mass=0.2, condim=3, group=1, contype=PEG_BITS[0],
                 conaffinity=PEG_BITS[1])
    plate = spec.body(plate_hand).add_body(name="hole", pos=list(PLATE_IN_HAND), quat=list(PLATE_QUAT))
    boxes = []
    for i, (pos, size) in enumerate(PLATE_BOXES):
        plate.add_geom(name=f"hole_box{i}", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(size), pos=list(pos),
                       rgba=[0.65, 0.3, 0.2, 1.0], mass=0.05, condim=3, group=1, contype=PLATE_BITS[0],
                       conaffinity=PLATE_BITS[1])
        boxes.append(f"hole_box{i}")
    plate.add_site(name="hole_center", pos=list(HOLE_CENTER), size=[0.005, 0, 0], group=3)
    return {"peg": "peg", "peg_geom": "peg_geom", "hole": "hole", "plate_geoms": boxes}


def peg_orientation(peg_pos, peg_mat, hole_pos, hole_mat):
    """robosuite's ``_compute_orientation``: ``(t, d, cos)`` float32 scalars from the peg's and
    the hole's body positions ``[3]`` and rotation matrices ``[3, 3]``."""
    v = peg_mat[:, 2]
    v = v / jnp.linalg.norm(v)
    center = hole_pos + hole_mat @ jnp.asarray(HOLE_CENTER)
    t = jnp.dot(center - peg_pos, v) / jnp.sum(v * v)
    d = jnp.linalg.norm(jnp.cross(v, peg_pos - center)) / jnp.linalg.norm(v)
    normal = hole_mat[:, 2]
    cos = jnp.abs(jnp.dot(normal, v) / jnp.linalg.norm(normal) / jnp.linalg.norm(v))
    return t, d, cos


def peg_in_hole_reward(peg_pos, peg_mat, hole_pos, hole_mat):
    """Unnormalised robosuite TwoArmPegInHole reward: ``(shaped [], success [] bool)``; ``shaped``
    includes the 1.0 success bonus (robosuite's shaped reward)."""
    t, d, cos = peg_orientation(peg_pos, peg_mat, hole_pos, hole_mat)
    success = (d < 0.06) & (t >= -0.12) & (t <= 0.14) & (cos > 0.95)
    reach = 1.0 - jnp.tanh(jnp.linalg.norm(peg_pos - hole_pos))
    shaped = success.astype(jnp.float32) + reach + (1.0 - jnp.tanh(d)) + (1.0 - jnp.tanh(jnp.abs(t))) + cos
    return shaped.astype(jnp.float32), success


class TwoArmPegInHole(ArmTask):
    """See the module docstring."""

    arm_poses = PEG_ARMS
    object_obs_size = 17
    max_reward = 5.0

    def _build_objects(self, spec, rng):
        hands = [a["hand"] for a in self.arm_names]
        return {"peg_in_hole": add_peg_and_plate(spec, hands[0], hands[1])}

    def _setup(self):
        m, names = self.mj_model, self.names["peg_in_hole"]
        self.peg_body = m.body(names["peg"]).id
        self.hole_body = m.body(names["hole"]).id
        self.peg_geom = m.geom(names["peg_geom"]).id
        self.plate_geoms = np.array([m.geom(g).id for g in names["plate_geoms"]])

    def _init_objects(self, key, d):
        radius = jax.random.uniform(key, (), minval=PEG_RADIUS[0], maxval=PEG_RADIUS[1])
        return d, {"peg_radius": radius}

    def _model_for(self, params):
        m, g = self._mjx_model, self.peg_geom
        r = params["peg_radius"]
        return m.replace(geom_size=m.geom_size.at[g, 0].set(r), geom_rbound=m.geom_rbound.at[g].set(PEG_HALF_LENGTH + r))

    def poses(self, d):
        """``(peg_pos [3], peg_mat [3, 3], hole_pos [3], hole_mat [3, 3])`` body poses."""
        return (d.xpos[self.peg_body], d.xmat[self.peg_body].reshape(3, 3), d.xpos[self.hole_body],
                d.xmat[self.hole_body].reshape(3, 3))

    def orientation(self, d):
        """``(t, d, cos)`` of the state (see the module docstring)."""
        return peg_orientation(*self.poses(d))

    def _object_obs(self, d, params):
        t, dist, cos = self.orientation(d)
        peg, hole = d.xpos[self.peg_body], d.xpos[self.hole_body]
        return jnp.concatenate([hole, d.xquat[self.hole_body], hole - peg, d.xquat[self.peg_body],
                                jnp.stack([cos, t, dist])])

    def _reward(self, d, params):
        return peg_in_hole_reward(*self.poses(d))

    def reward_and_success(self, d, params):
        """robosuite's combination: the shaped reward already holds the success bonus (no
        replacement by ``max_reward`` on success); sparse 5.0 on success; then normalised."""
        shaped, success = self._reward(d, params)
        reward = shaped if self.reward_shaping else jnp.where(success, self.max_reward, 0.0)
        if self.reward_scale is not None:
            reward = reward * (self.reward_scale / self.max_reward)
        return reward.astype(jnp.float32), success.astype(jnp.float32)


def two_arm_peg_in_hole(control: str = "osc_pose", **kwargs) -> TwoArmPegInHole:
    """Build ``robo/two_arm_peg_in_hole`` (``kwargs``: ``reward_shaping``, ``reward_scale``,
    ``control_freq``, ``timestep``, ``seed``; see :class:`~vasa.envs.tasks.manipulation.base.ArmTask`)."""
    return TwoArmPegInHole(control, **kwargs)
