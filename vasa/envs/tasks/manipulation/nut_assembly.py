"""``robo/nut_assembly``: put each nut around its peg (robosuite's NutAssembly on MJX).

Scene (:mod:`vasa.envs.scenes.pegs`): a square peg at ``(0.23, 0.10)`` and a round peg at
``(0.23, -0.10)``; a square nut and a round nut made of boxes (rings with a handle).
``nut_type``: ``"both"`` (robosuite's NutAssembly), ``"square"`` (NutAssemblySquare) or
``"round"`` (NutAssemblyRound); the single variants build only their nut (both pegs stay).
robosuite's NutAssemblySingle (a random nut type per reset, with a nut-id observation) is not
offered: the nut kind is a scene constant here, so no one-hot is observed.

Facts transcribed from robosuite v1.5 ``environments/manipulation/nut_assembly.py``:

* placement at reset: ``x ~ U[-0.115, -0.11]``, square nut ``y ~ U[0.11, 0.225]``, round nut
  ``y ~ U[-0.225, -0.11]``, yaw ``~ U[0, 2 pi)``; the nuts rest on the table here (robosuite
  drops them from 0.02 m above its placement height). The two ranges are 0.22 m apart and the
  nuts' footprints (handle included) sum to 0.168 m, so they never overlap;
* ``on_peg``: ``|x - x_peg| < 0.03``, ``|y - y_peg| < 0.03`` and ``z < table_top + 0.05`` (nut
  centre); a nut counts as placed when it is on its own peg and the grasp site is not near its
  centre: ``1 - tanh(10 d) < 0.6``;
* success: every nut placed (``"both"``), the nut placed (single variants);
* sparse reward: 1 per placed nut; staged (``reward_shaping=True``) adds the largest of
  ``reach = 0.1 (1 - tanh(10 min_i |grip - handle_i|))``, ``grasp = 0.35`` while both finger
  pads touch an unplaced nut, ``lift = 0.35 + 0.15 (1 - tanh(15 min_i max(z_t - z_i, 0)))``
  while grasping (``z_t``: the table body's centre + 0.2 = table top + 0.175) and
  ``hover = max_i lift + 0.2 (1 - tanh(10 |peg_i - nut_i|_xy))`` over the unplaced nuts
  (the grasp site is compared with the handle sites, lift and hover with the nut centres);
* normalisation: the reward is multiplied by ``reward_scale / 2`` for both nuts and by
  ``reward_scale`` for a single nut (``reward_scale=None``: raw values). robosuite's single
  variants move the removed nut to ``(10, 10, 10)`` at reset (``clear_objects``,
  ``environments/base.py``) and keep it in these sums as an unplaced nut: it falls (MuJoCo's
  floor plane is infinite for collisions) and, until it drops below the lift target (~1.35 s,
  the first ~27 control steps), makes ``r_lift`` 0.5 whenever something is grasped; once on
  the floor it changes nothing. Here only the nuts in the scene count.

Heights: vasa's table top is at 0.8 in every task, robosuite's NutAssembly raises its table to
0.82 (``table_offset``) and keeps the robot base where it is, so its base is 0.092 m above the
table top, vasa's 0.112 m. The pegs stand on vasa's table as on robosuite's (centre 0.03 m
above the top, :mod:`vasa.envs.scenes.pegs`), and ``on_peg`` and the lift target are measured
from the table top as robosuite's are.

``obs``: 32 proprioceptive values (see :class:`~vasa.envs.tasks.manipulation.base.ArmTask`),
then per nut (square first): centre ``[3]``, quaternion ``[4]`` (w, x, y, z), centre minus
grasp site ``[3]`` and handle site minus grasp site ``[3]`` (13 values per nut), all in the
world frame. robosuite observes each nut's position, quaternion (x, y, z, w) and its pose in
the gripper frame (``{nut}_to_eef_pos``/``_quat``, ``manipulation_env.py``
``_get_rel_obj_eef_sensor``), as vasa's :mod:`.pick_place` does; the handle offset is vasa's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vasa.envs.scenes import pegs, table
from vasa.envs.tasks.manipulation.base import ArmTask, _check_choice, touching

NUT_TYPES = ("both", "square", "round")
X_RANGE = (-0.115, -0.11)
Y_RANGES = {"square": (0.11, 0.225), "round": (-0.225, -0.11)}
ON_PEG_XY, ON_PEG_Z = 0.03, 0.05
RELEASE_REACH = 0.6  # a nut counts once 1 - tanh(10 d) < 0.6 (grasp site away from its centre)
REACH_MULT, GRASP_MULT, LIFT_MULT, HOVER_MULT = 0.1, 0.35, 0.5, 0.7
TABLE_HALF_THICKNESS = 0.025  # vasa's table, as robosuite's: its body centre is this far below the top
OBS_PER_NUT = 13


def nuts_for(nut_type: str) -> tuple[str, ...]:
    """The nut kinds in the scene, in observation order."""
    return pegs.NUT_KINDS if nut_type == "both" else (nut_type,)


def on_peg(nut_pos: jax.Array, peg_xy: jax.Array, table_top: float = table.TABLE_TOP) -> jax.Array:
    """robosuite's ``on_peg``: ``[..., 3]`` nut centres and ``[..., 2]`` peg positions -> ``[...] bool``."""
    dx = jnp.abs(nut_pos[..., :2] - peg_xy)
    return (dx[..., 0] < ON_PEG_XY) & (dx[..., 1] < ON_PEG_XY) & (nut_pos[..., 2] < table_top + ON_PEG_Z)


def nut_assembly_reward(grip_pos, nut_pos, handle_pos, peg_xy, grasping, shaping: bool,
                        table_top: float = table.TABLE_TOP):
    """Unnormalised robosuite NutAssembly reward.

    Args:
      grip_pos: ``[3]`` grasp site; nut_pos, handle_pos: ``[N, 3]`` nut centres and handle sites;
      peg_xy: ``[N, 2]`` each nut's own peg; grasping: ``[] bool``, both pads touch an unplaced
      nut; shaping: add the largest staged reward.

    Returns ``(reward [] float32, placed [N] bool)``.
    """
    centre_dist = jnp.linalg.norm(nut_pos - grip_pos, axis=-1)
    placed = on_peg(nut_pos, peg_xy, table_top) & (1.0 - jnp.tanh(10.0 * centre_dist) < RELEASE_REACH)
    reward = jnp.sum(placed.astype(jnp.float32))
    if not shaping:
        return reward, placed
    active = ~placed
    any_active = jnp.any(active)
    big = jnp.float32(1e6)
    reach_d = jnp.min(jnp.where(active, jnp.linalg.norm(handle_pos - grip_pos, axis=-1), big))
    r_reach = jnp.where(any_active, (1.0 - jnp.tanh(10.0 * reach_d)) * REACH_MULT, 0.0)
    grasp = grasping & any_active
    r_grasp = jnp.where(grasp, GRASP_MULT, 0.0)
    z_target = table_top - TABLE_HALF_THICKNESS + 0.2
    z_dist = jnp.min(jnp.where(active, jnp.maximum(z_target - nut_pos[:, 2], 0.0), big))
    r_lift = jnp.where(grasp, GRASP_MULT + (1.0 - jnp.tanh(15.0 * z_dist)) * (LIFT_MULT - GRASP_MULT), 0.0)
    hover_d = jnp.linalg.norm(peg_xy - nut_pos[:, :2], axis=-1)
    r_hovers = r_lift + (1.0 - jnp.tanh(10.0 * hover_d)) * (HOVER_MULT - LIFT_MULT)
    r_hover = jnp.max(jnp.where(active, r_hovers, -big))
    r_hover = jnp.where(any_active, r_hover, 0.0)
    staged = jnp.max(jnp.stack([r_reach, r_grasp, r_lift, r_hover]))
    return reward + staged, placed


class NutAssembly(ArmTask):
    """See the module docstring."""

    def __init__(self, control: str = "osc_pose", *, nut_type: str = "both", **kwargs):
        _check_choice("nut_type", nut_type, NUT_TYPES)
        self.nut_type = nut_type
        self.kinds = nuts_for(nut_type)
        self.object_obs_size = OBS_PER_NUT * len(self.kinds)
        self.max_reward = float(len(self.kinds))
        super().__init__(control, **kwargs)

    def _build_objects(self, spec, rng):
        names = {"pegs": pegs.add_pegs(spec)}
        for kind in self.kinds:
            x, y = np.mean(X_RANGE), np.mean(Y_RANGES[kind])
            names[f"{kind}_nut"] = pegs.add_nut(spec, kind, pos=(x, y))
        return names

    def _setup(self):
        m = self.mj_model
        self.nut_body = np.array([m.body(f"{k}_nut").id for k in self.kinds])
        self.handle_site = np.array([m.site(f"{k}_nut_handle").id for k in self.kinds])
        self.nut_qpos = [int(m.jnt_qposadr[m.joint(f"{k}_nut_joint").id]) for k in self.kinds]
        self.nut_geoms = np.array([m.geom(g).id for k in self.kinds for g in self.names[f"{k}_nut"]["geoms"]])
        self.nut_of_geom = np.array([i for i, k in enumerate(self.kinds) for _ in self.names[f"{k}_nut"]["geoms"]])
        self.peg_xy = np.array([pegs.PEG_XY[k] for k in self.kinds], np.float32)

    def _init_objects(self, key, d):
        keys = jax.random.split(key, 2 * len(self.kinds))
        qpos = d.qpos
        xys, yaws = [], []
        for i, kind in enumerate(self.kinds):
            xy = table.sample_placements(keys[2 * i], 1, X_RANGE, Y_RANGES[kind], pegs.nut_radius(kind))[0]
            yaw = jax.random.uniform(keys[2 * i + 1], (), maxval=2 * jnp.pi)
            pose = jnp.concatenate([xy, jnp.array([table.TABLE_TOP + pegs.NUT_HALF_HEIGHT]),
                                    jnp.stack([jnp.cos(yaw / 2), 0.0, 0.0, jnp.sin(yaw / 2)])])
            qpos = qpos.at[self.nut_qpos[i]:self.nut_qpos[i] + 7].set(pose)
            xys.append(xy)
            yaws.append(yaw)
        return d.replace(qpos=qpos), {"xy": jnp.stack(xys), "yaw": jnp.stack(yaws)}

    def nut_pos(self, d) -> jax.Array:
        """``[N, 3]`` nut centres."""
        return d.xpos[self.nut_body]

    def _object_obs(self, d, params):
        grip = d.site_xpos[self.arm.site]
        pos, quat, handle = d.xpos[self.nut_body], d.xquat[self.nut_body], d.site_xpos[self.handle_site]
        return jnp.concatenate([pos, quat, pos - grip, handle - grip], axis=-1).reshape(-1)

    def _unplaced_grasp(self, d, placed) -> jax.Array:
        """``[] bool``: both pads touch geoms of nuts not yet placed (robosuite's ``_check_grasp``
        over the active nuts' contact geoms)."""
        left, right = [], []
        for i in range(len(self.kinds)):
            geoms = self.nut_geoms[self.nut_of_geom == i]
            left.append(touching(d, self.pads[0], geoms))
            right.append(touching(d, self.pads[1], geoms))
        active = ~placed
        return jnp.any(jnp.stack(left) & active) & jnp.any(jnp.stack(right) & active)

    def _reward(self, d, params):
        grip = d.site_xpos[self.arm.site]
        nut, handle = d.xpos[self.nut_body], d.site_xpos[self.handle_site]
        peg = jnp.asarray(self.peg_xy)
        _, placed = nut_assembly_reward(grip, nut, handle, peg, jnp.zeros((), bool), shaping=False)
        grasp = self._unplaced_grasp(d, placed)
        reward, placed = nut_assembly_reward(grip, nut, handle, peg, grasp, shaping=self.reward_shaping)
        success = jnp.all(placed) if self.nut_type == "both" else jnp.any(placed)
        return reward, success

    def reward_and_success(self, d, params):
        """``([] float32 reward, [] float32 success)``: robosuite's sum (1 per placed nut, plus the
        largest staged reward with shaping), scaled by ``reward_scale / number of nuts``."""
        reward, success = self._reward(d, params)
        if self.reward_scale is not None:
            reward = reward * (self.reward_scale / self.max_reward)
        return reward.astype(jnp.float32), success.astype(jnp.float32)


def nut_assembly(control: str = "osc_pose", **kwargs) -> NutAssembly:
    """Build ``robo/nut_assembly`` (``kwargs``: ``nut_type`` in ``("both", "square", "round")``,
    ``reward_shaping``, ``reward_scale``, ``control_freq``, ``timestep``, ``seed``)."""
    return NutAssembly(control, **kwargs)
