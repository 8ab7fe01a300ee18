"""Scripted Cartesian controllers for the two-arm tasks (``control="osc_pose"``).

Pure JAX functions ``policy(obs) -> action [14] float32`` of the state observation alone
(memoryless: each arm's phase is read off the observation), so they vmap over environments and
run inside ``lax.scan``.

* :func:`two_arm_lift_policy` (``robo/two_arm_lift``, ``obs [83]``): each arm turns its hand so
  that the fingers close across its own handle bar (robot0 on handle0, robot1 on handle1),
  hovers above the bar, descends and closes; once both hands hold their bars (fingers closed
  and still, grasp sites on the bars) both lift at the same speed to 0.18 m above the handles'
  resting height. Measured: 32/32 random initial states lifted by step 50 (80 steps, seed 7).
* :func:`peg_in_hole_policy` (``robo/two_arm_peg_in_hole``, ``obs [81]``, optional in the
  issue): robot1 holds the plate upright-ish at a fixed place, robot0 lines the peg up with the
  hole's axis and pushes it through. Measured: 20/24 random initial states (7/8 seed 2, 13/16
  seed 3, 80 steps); in the failures robot0's wrist ends near its joint limit, unaligned.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vasa.envs.scenes import table
from vasa.envs.tasks.manipulation.scripted import (
    DOWN,
    _move,
    _rot_z,
    _turn,
    quat_to_mat,
)
from vasa.envs.tasks.manipulation.two_arm_lift import HANDLE_Z, POT_HALF

PROPRIO = 32  # per arm (see ArmTask)
POT_POS, POT_QUAT, HANDLES = slice(64, 67), slice(67, 71), (slice(71, 74), slice(74, 77))
REST_HANDLE_Z = table.TABLE_TOP + POT_HALF + HANDLE_Z  # handle height with the pot on the table
LIFT_TO = REST_HANDLE_Z + 0.18


def _arm(obs: jax.Array, i: int):
    """Arm ``i``'s grasp position ``[3]``, rotation ``[3, 3]``, finger opening sum ``[]`` and
    finger speed ``[]`` from the observation."""
    p = obs[PROPRIO * i:PROPRIO * (i + 1)]
    return p[21:24], quat_to_mat(p[24:28]), p[28:30].sum(), jnp.abs(p[30:32]).sum()


def two_arm_lift_policy(obs: jax.Array) -> jax.Array:
    """Scripted ``robo/two_arm_lift``: ``obs [83] float32`` -> ``action [14] float32`` (robot0's
    7 OSC values, then robot1's)."""
    pot, pot_quat = obs[POT_POS], obs[POT_QUAT]
    pot_yaw = 2.0 * jnp.arctan2(pot_quat[3], pot_quat[0])
    lifted = pot[2] > table.TABLE_TOP + POT_HALF + 0.03
    arms = [_arm(obs, i) for i in range(2)]
    handles = [obs[HANDLES[i]] for i in range(2)]
    held, still = [], []
    for (grip, _, fingers, speed), handle in zip(arms, handles):
        held.append((fingers < 0.03) & (jnp.linalg.norm(handle - grip) < 0.02))
        still.append(speed < 0.02)
    both = held[0] & held[1] & still[0] & still[1]
    actions = []
    for (grip, rot, _, _), handle, hold in zip(arms, handles, held):
        grip_yaw = jnp.arctan2(rot[1, 0], rot[0, 0])
        # the hand's x axis along the bar (the pot's x axis), the nearer of the two ways
        err = jnp.mod(pot_yaw - grip_yaw + jnp.pi / 2, jnp.pi) - jnp.pi / 2
        goal_rot = _rot_z(grip_yaw + err) @ DOWN
        rel = handle - grip
        xy_err = jnp.linalg.norm(rel[:2])
        aligned = (xy_err < jnp.where(rel[2] > -0.05, 0.01, 0.006)) & (jnp.abs(err) < 0.08)
        at_handle = aligned & (jnp.abs(rel[2]) < 0.008)
        hover = handle + jnp.array([0.0, 0.0, 0.08])
        target = jnp.where(aligned, handle, jnp.where(rel[2] > -0.03, hover.at[:2].set(handle[:2]), hover))
        target = jnp.where(hold & ~both & ~lifted, grip, target)  # hold on until the other hand holds too
        target = jnp.where(both | lifted, jnp.concatenate([handle[:2], jnp.array([LIFT_TO])]), target)
        gripper = jnp.where(at_handle | hold | lifted, 1.0, -1.0)
        actions.append(jnp.concatenate([_move(target - grip, 1.5), _turn(goal_rot, rot), gripper[None]]))
    return jnp.concatenate(actions).astype(jnp.float32)


HOLE_AT = jnp.array([0.0, 0.05, 1.0])  # where robot1 holds the hole's centre
PRE_INSERT = 0.25  # peg centre this far in front of the hole before going through
PEG_TILT = math.radians(30.0)  # the peg's axis, from straight down toward robot1
_S, _C = math.sin(PEG_TILT), math.cos(PEG_TILT)
# robot0's hand z (the peg's axis) and robot1's hand y (the plate's normal) both along
# +-(0, sin, -cos) of the tilt; columns are the hands' x, y, z axes
PEG_ROT = jnp.array([[0.0, 1.0, 0.0], [_C, 0.0, _S], [_S, 0.0, -_C]])
PLATE_ROT = jnp.array([[1.0, 0.0, 0.0], [0.0, -_S, -_C], [0.0, _C, -_S]])


def peg_in_hole_policy(obs: jax.Array) -> jax.Array:
    """Scripted ``robo/two_arm_peg_in_hole``: robot0 tilts the peg's axis :data:`PEG_TILT` from
    straight down toward robot1, robot1 turns the plate's normal along it and holds the hole's centre at
    :data:`HOLE_AT`, robot0 brings the peg onto the hole's axis :data:`PRE_INSERT` m in front of
    it, then pushes it through. ``obs [81] float32`` -> ``action [14] float32``."""
    hole, hole_rot = obs[64:67], quat_to_mat(obs[67:71])
    peg = hole - obs[71:74]
    center = hole + hole_rot @ jnp.array([0.1, 0.0, 0.0])
    normal = hole_rot[:, 2]
    normal = jnp.where(jnp.dot(peg - center, normal) >= 0.0, normal, -normal)  # towards the peg
    r0, r1 = _arm(obs, 0)[1], _arm(obs, 1)[1]
    placed = jnp.linalg.norm(center - HOLE_AT) < 0.03
    rel = peg - center
    perp = jnp.linalg.norm(rel - jnp.dot(rel, normal) * normal)
    aligned = placed & (perp < 0.03) & (obs[78] > 0.97)
    peg_goal = jnp.where(aligned, center - 0.02 * normal, center + PRE_INSERT * normal)
    a0 = jnp.concatenate([_move(peg_goal - peg, 1.5), _turn(PEG_ROT, r0), jnp.ones(1)])
    a1 = jnp.concatenate([_move(HOLE_AT - center, 1.5), _turn(PLATE_ROT, r1), jnp.ones(1)])
    return jnp.concatenate([a0, a1]).astype(jnp.float32)
