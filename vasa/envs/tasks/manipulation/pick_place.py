"""``robo/pick_place``: move household objects from one bin into their compartments of another
(robosuite's PickPlace on MJX, with primitive stand-ins for its meshes).

Scene: two bins (:func:`vasa.envs.scenes.bins.add_bin`) on the table, ``bin1`` (the objects'
start) at ``(-0.02, -0.2)`` and ``bin2`` (the goal) at ``(-0.02, 0.2)``, each 0.32 x 0.38 m with
0.03 m walls; robosuite's bins (0.39 x 0.49 m at y = -0.25 and 0.28) are scaled down so that
vasa's arm (fixed at robosuite's table-top base) reaches every compartment. bin2 is divided
into four quadrants, one per object class (robosuite's ids): milk 0 (-x, -y), bread 1 (+x, -y),
cereal 2 (-x, +y), can 3 (+x, +y).

Objects: one primitive per class standing in for robosuite's meshes, inside the class's bounding
box :data:`CLASS_BOX` (half-extents): milk a box, bread a flat box, cereal a tall box, can a
cylinder. Instance randomisation: the shape inside each class's box is drawn once per scene from
``seed`` among :data:`CLASS_SHAPES` (e.g. a can is a cylinder or a square box, a bread a flat box
or a lying capsule); at every reset each environment draws each object's scale ``~ U[0.9, 1.0]``
(sizes, inertia follows), mass ``~ U[0.05, 0.15]`` kg, sliding friction ``~ U[0.8, 1.2]`` and yaw
``~ U[0, 2 pi)``, and places the objects in bin1 without overlaps
(:func:`vasa.envs.scenes.table.sample_placements`, footprint radius + 0.005 m, wholly inside
the walls).

Options: ``num_objects`` in 1..4 (robosuite's ``single_object_mode``): 4 is the full task
(mode 0); with ``object_type`` (``"milk"``, ``"bread"``, ``"cereal"``, ``"can"``; needs
``num_objects=1``) only that object is built (mode 2); otherwise ``num_objects=k < 4`` draws k of
the four classes per environment at every reset (mode 1 generalised) and parks the others on
the table plane out of reach (at x = 0.75 m, behind the agentview camera).

Success (robosuite's ``_check_success``/``not_in_bin``): every active object is in its
compartment (strictly inside the quadrant in x and y, centre between z = 0.8 and 0.9) with the
grasp site more than ``atanh(0.4) / 10 ~ 0.042`` m from its centre (robosuite's
``1 - tanh(10 d) < 0.6``). Heights: robosuite tests ``bin2_pos[2] = 0.8 < z < 0.9`` and lifts
toward ``0.8 + 0.25``, but its bin floor is a box whose top is at 0.82 (``bins_arena.xml``), so
relative to the floor its window is [-0.02, 0.08] m and its lift target 0.23 m. vasa's bin floor
is the table plane at 0.8 (:mod:`vasa.envs.scenes.bins`) and the same absolute numbers give
[0, 0.10] m and 0.25 m: the window and the target sit 2 cm higher above the floor here.

Rewards (robosuite ``PickPlace.reward``/``staged_rewards``, over the active objects not yet in
place): sparse = number of objects in place; shaped = that plus the largest stage: reach
``0.1 (1 - tanh(10 d_min))``, grasp 0.35 (both pads touch such objects), lift (while grasping)
``0.35 + 0.15 (1 - tanh(15 max(z_t - z, 0)_min))`` with ``z_t = 0.8 + 0.25`` (see Heights), hover
(per object, ``d``: horizontal distance to its compartment centre) ``0.5 + 0.2 (1 - tanh(10 d))``
when above its quadrant (within a quarter bin size) else ``r_lift + 0.2 (1 - tanh(10 d))``.
Normalised by ``num_objects`` (robosuite: 4 or 1) times ``reward_scale``. Deviation: objects that
are parked (not drawn this episode) are ignored, where robosuite keeps cleared objects in its
sums as objects not yet in place: ``clear_objects`` moves them to ``(10, 10, 10)`` at reset and
they fall to the floor (``environments/base.py``); until they drop below the lift target
(~1.35 s, the first ~27 control steps) they make ``r_lift`` 0.5 whenever something is
grasped, and once on the floor (far from the gripper and the bins) they change nothing.

``obs``: 32 proprioceptive values, then per built object (4, or 1 with ``object_type``) 16
values: position ``[3]``, quaternion ``[4]`` (w, x, y, z), position ``[3]`` and quaternion
``[4]`` in the grasp-site frame (robosuite's ``obj_to_eef_pos``/``_quat``), active flag ``[1]``
and class id ``[1]`` (robosuite's ``obj_id``).

Source: ARISE-Initiative/robosuite ``robosuite/environments/manipulation/pick_place.py``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vasa.envs.scenes import bins, table
from vasa.envs.tasks.manipulation.base import (
    ArmTask,
    _check_choice,
    _check_number,
    mat_to_quat,
    touching,
)
from vasa.envs.tasks.manipulation.stack import (
    FRICTION,
    MASS,
    with_object_params,
    yaw_quat,
)

CLASSES = ("milk", "bread", "cereal", "can")
CLASS_BOX = ((0.025, 0.025, 0.045), (0.04, 0.022, 0.015), (0.035, 0.018, 0.055), (0.024, 0.024, 0.04))
CLASS_SHAPES = (("box", "cylinder"), ("box", "capsule"), ("box",), ("cylinder", "box"))
CLASS_RGBA = ((0.92, 0.92, 0.95, 1.0), (0.8, 0.6, 0.3, 1.0), (0.85, 0.2, 0.15, 1.0), (0.6, 0.65, 0.7, 1.0))
# yaw symmetry of each class's grasp (fingers across local y): pi for all, since a cylinder lying on its side
# (a tipped milk or can) must be grasped across its axis, not along it
GRASP_PERIOD = (np.pi, np.pi, np.pi, np.pi)
BIN1_POS, BIN2_POS = (-0.02, -0.2, table.TABLE_TOP), (-0.02, 0.2, table.TABLE_TOP)
BIN_SIZE = (0.32, 0.38)
WALL = 0.03
SCALE = (0.9, 1.0)
CLEARANCE = 0.005
PARK_X = 0.75
REACH_MULT, GRASP_MULT, LIFT_MULT, HOVER_MULT = 0.1, 0.35, 0.5, 0.7


def compartment_centres() -> np.ndarray:
    """``[4, 2]`` (x, y) centres of bin2's quadrants in robosuite's id order."""
    x0, y0 = BIN2_POS[0], BIN2_POS[1]
    sx, sy = BIN_SIZE
    return np.array([[x0 + (-1 if i in (0, 2) else 1) * sx / 4, y0 + (-1 if i < 2 else 1) * sy / 4] for i in range(4)])


def in_compartment(pos: jax.Array, class_id: jax.Array) -> jax.Array:
    """robosuite's ``not not_in_bin``: ``pos [..., 3]`` strictly inside quadrant ``class_id [...]`` of bin2
    and less than 0.1 m above its floor. Returns ``[...] bool``."""
    cx = jnp.asarray(BIN2_POS[0]) - jnp.where((class_id == 0) | (class_id == 2), BIN_SIZE[0] / 2, 0.0)
    cy = jnp.asarray(BIN2_POS[1]) - jnp.where(class_id < 2, BIN_SIZE[1] / 2, 0.0)
    x, y, z = pos[..., 0], pos[..., 1], pos[..., 2]
    return ((cx < x) & (x < cx + BIN_SIZE[0] / 2) & (cy < y) & (y < cy + BIN_SIZE[1] / 2)
            & (BIN2_POS[2] < z) & (z < BIN2_POS[2] + 0.1))


def pick_place_reward(grip_pos, obj_pos, class_id, active, touch_left, touch_right):
    """Unnormalised robosuite PickPlace reward terms for ``N`` objects.

    ``grip_pos [3]``; ``obj_pos [N, 3]``; ``class_id [N] int``; ``active``, ``touch_left``,
    ``touch_right``: ``[N] bool`` (object drawn this episode; a left / right pad touches it).
    Returns ``(placed [N] bool, stages [4] float32)``: objects in place and robosuite's
    ``(r_reach, r_grasp, r_lift, r_hover)``.
    """
    dist = jnp.linalg.norm(obj_pos - grip_pos, axis=-1)
    placed = active & in_compartment(obj_pos, class_id) & (1.0 - jnp.tanh(10.0 * dist) < 0.6)
    todo = active & ~placed
    any_todo = jnp.any(todo)
    big = 1e6
    r_reach = jnp.where(any_todo, (1.0 - jnp.tanh(10.0 * jnp.min(jnp.where(todo, dist, big)))) * REACH_MULT, 0.0)
    grasp = jnp.any(todo & touch_left) & jnp.any(todo & touch_right)
    r_grasp = jnp.where(grasp, GRASP_MULT, 0.0)
    z_dist = jnp.maximum(BIN2_POS[2] + 0.25 - obj_pos[:, 2], 0.0)
    r_lift = jnp.where(any_todo & grasp, GRASP_MULT + (1.0 - jnp.tanh(15.0 * jnp.min(jnp.where(todo, z_dist, big))))
                       * (LIFT_MULT - GRASP_MULT), 0.0)
    target = jnp.asarray(compartment_centres(), jnp.float32)[class_id]  # [N, 2]
    above = ((jnp.abs(obj_pos[:, 0] - target[:, 0]) < BIN_SIZE[0] / 4)
             & (jnp.abs(obj_pos[:, 1] - target[:, 1]) < BIN_SIZE[1] / 4))
    d_xy = jnp.linalg.norm(target - obj_pos[:, :2], axis=-1)
    near = (1.0 - jnp.tanh(10.0 * d_xy)) * (HOVER_MULT - LIFT_MULT)
    r_hover_all = jnp.where(above, LIFT_MULT + near, r_lift + near)
    r_hover = jnp.where(any_todo, jnp.max(jnp.where(todo, r_hover_all, -big)), 0.0)
    return placed, jnp.stack([r_reach, r_grasp, r_lift, r_hover]).astype(jnp.float32)


class PickPlace(ArmTask):
    """See the module docstring."""

    per_object_obs = 16

    def __init__(self, control: str = "osc_pose", *, num_objects: int = 4, object_type: str | None = None, **kwargs):
        _check_number("num_objects", num_objects, 1, 4, integer=True)
        if object_type is not None:
            _check_choice("object_type", object_type, CLASSES)
            if num_objects != 1:
                raise ValueError(f"object_type={object_type!r} with num_objects={num_objects!r} is not allowed: "
                                 "a fixed object_type needs num_objects=1.")
        self.num_objects = int(num_objects)
        self.object_type = object_type
        self.classes = np.array([CLASSES.index(object_type)] if object_type else range(4))
        self.max_reward = float(self.num_objects)
        self.object_obs_size = self.per_object_obs * len(self.classes)
        super().__init__(control, **kwargs)

    def _build_objects(self, spec, rng):
        bins.add_bin(spec, "bin1", BIN1_POS[:2], BIN_SIZE, WALL)
        bins.add_bin(spec, "bin2", BIN2_POS[:2], BIN_SIZE, WALL, rgba=(0.3, 0.35, 0.45, 1.0))
        drawn = [str(rng.choice(CLASS_SHAPES[c])) for c in range(4)]  # one draw per class, whatever is built
        self.shapes = [drawn[c] for c in self.classes]
        names, self.half_heights = [], []
        for k, (c, shape) in enumerate(zip(self.classes, self.shapes)):
            x, y = BIN1_POS[0] + 0.07 * (k % 2 * 2 - 1), BIN1_POS[1] + 0.09 * (k // 2 * 2 - 1)
            obj = bins.add_object(spec, CLASSES[c], shape, CLASS_BOX[c], pos=(x, y), rgba=CLASS_RGBA[c])
            names.append(obj["geom"])
            self.half_heights.append(obj["half_height"])
        bins.add_object_pairs(spec, names, self.shapes)
        return {"objects": [CLASSES[c] for c in self.classes]}

    def _setup(self):
        m = self.mj_model
        names = [CLASSES[c] for c in self.classes]
        self.bodies = np.array([m.body(n).id for n in names])
        self.geoms = np.array([m.geom(f"{n}_geom").id for n in names])
        self.qpos_adr = [int(m.jnt_qposadr[m.joint(f"{n}_joint").id]) for n in names]
        self._nominal = (m.geom_size[self.geoms].copy(), m.geom_rbound[self.geoms].copy(),
                         m.body_mass[self.bodies].copy(), m.body_inertia[self.bodies].copy())
        self.radii = np.array([bins.footprint_radius(s, CLASS_BOX[c]) for c, s in zip(self.classes, self.shapes)])

    def _init_objects(self, key, d):
        n = len(self.classes)
        k_act, k_xy, k_yaw, k_scale, k_mass, k_fric = jax.random.split(key, 6)
        if self.num_objects == n:
            active = jnp.ones((n,), bool)
        else:
            chosen = jax.random.permutation(k_act, n)[:self.num_objects]
            active = jnp.zeros((n,), bool).at[chosen].set(True)
        scale = jax.random.uniform(k_scale, (n,), minval=SCALE[0], maxval=SCALE[1])
        half_x = BIN_SIZE[0] / 2 - WALL
        half_y = BIN_SIZE[1] / 2 - WALL
        radii = jnp.asarray(self.radii) * scale
        r_max = float(self.radii.max())
        xy = table.sample_placements(k_xy, n, (BIN1_POS[0] - half_x + r_max, BIN1_POS[0] + half_x - r_max),
                                     (BIN1_POS[1] - half_y + r_max, BIN1_POS[1] + half_y - r_max),
                                     radii + CLEARANCE, tries=128)
        parked = jnp.stack([jnp.full((n,), PARK_X), -0.3 + 0.2 * jnp.arange(n)], axis=1)
        xy = jnp.where(active[:, None], xy, parked)
        z = table.TABLE_TOP + jnp.asarray(self.half_heights) * scale
        yaw = jax.random.uniform(k_yaw, (n,), maxval=2 * jnp.pi)
        pose = jnp.concatenate([xy, z[:, None], yaw_quat(yaw)], axis=1)
        qpos = d.qpos
        for i, adr in enumerate(self.qpos_adr):
            qpos = qpos.at[adr:adr + 7].set(pose[i])
        params = {"active": active, "scale": scale,
                  "mass": jax.random.uniform(k_mass, (n,), minval=MASS[0], maxval=MASS[1]),
                  "friction": jax.random.uniform(k_fric, (n,), minval=FRICTION[0], maxval=FRICTION[1])}
        return d.replace(qpos=qpos), params

    def _model_for(self, params):
        size0, rbound0, mass0, inertia0 = self._nominal
        return with_object_params(self._mjx_model, self.geoms, self.bodies, size0, rbound0, mass0, inertia0,
                                  params["scale"], params["mass"], params["friction"])

    def _object_obs(self, d, params):
        grip = d.site_xpos[self.arm.site]
        grip_rot = d.site_xmat[self.arm.site].reshape(3, 3)
        pos, quat = d.xpos[self.bodies], d.xquat[self.bodies]
        rel_pos = (pos - grip) @ grip_rot  # in the grasp-site frame: R^T (p - g)
        rel_rot = jnp.einsum("ji,njk->nik", grip_rot, d.xmat[self.bodies].reshape(-1, 3, 3))
        rel_quat = jax.vmap(mat_to_quat)(rel_rot)
        flags = jnp.stack([params["active"].astype(jnp.float32), jnp.asarray(self.classes, jnp.float32)], axis=1)
        return jnp.concatenate([pos, quat, rel_pos, rel_quat, flags], axis=1).reshape(-1)

    def terms(self, d, params):
        """``(placed [N] bool, stages [4] float32)`` of :func:`pick_place_reward` for the state ``d``."""
        left = jnp.stack([touching(d, self.pads[0], g) for g in self.geoms])
        right = jnp.stack([touching(d, self.pads[1], g) for g in self.geoms])
        return pick_place_reward(d.site_xpos[self.arm.site], d.xpos[self.bodies], jnp.asarray(self.classes),
                                 params["active"], left, right)

    def _reward(self, d, params):
        placed, stages = self.terms(d, params)
        count = placed.sum().astype(jnp.float32)
        return count + jnp.max(stages), count >= self.num_objects

    def reward_and_success(self, d, params):
        """robosuite's PickPlace reward: ``(reward [] float32, success [] float32)``; sparse = objects in
        place, shaped adds the largest stage; both scaled by ``reward_scale / num_objects``."""
        placed, stages = self.terms(d, params)
        count = placed.sum().astype(jnp.float32)
        reward = count + jnp.max(stages) if self.reward_shaping else count
        if self.reward_scale is not None:
            reward = reward * (self.reward_scale / self.max_reward)
        return reward.astype(jnp.float32), (count >= self.num_objects).astype(jnp.float32)


def pick_place(control: str = "osc_pose", **kwargs) -> PickPlace:
    """Build ``robo/pick_place`` (``kwargs``: ``num_objects``, ``object_type``, ``reward_shaping``,
    ``reward_scale``, ``control_freq``, ``timestep``, ``seed``)."""
    return PickPlace(control, **kwargs)
