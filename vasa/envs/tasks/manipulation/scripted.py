"""Scripted Cartesian controllers for ``robo/lift`` and ``robo/door`` (``control="osc_pose"``).

Each is a pure JAX function ``policy(obs) -> action [7] float32`` of the task's state
observation alone (no memory: the phase is read off the observation), so it vmaps over
environments and runs inside ``lax.scan``. Success rates on random initial states are
measured in the tests (a few seeds) and in :func:`success_rate`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa.envs.scenes import robots
from vasa.envs.tasks.manipulation import control as ctl

# proprioception layout (see ArmTask): cos q [0:7], sin q [7:14], qdot [14:21], grip pos [21:24],
# grip quat [24:28], fingers [28:30], finger velocities [30:32]
POS, QUAT, FINGERS = slice(21, 24), slice(24, 28), slice(28, 30)
DOWN = jnp.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # gripper pointing down, fingers along y


def quat_to_mat(q: jax.Array) -> jax.Array:
    """``[4]`` (w, x, y, z) -> ``[3, 3]``."""
    w, x, y, z = q / jnp.linalg.norm(q)
    return jnp.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _rot_z(a):
    c, s = jnp.cos(a), jnp.sin(a)
    return jnp.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _move(delta: jax.Array, gain: float = 1.0) -> jax.Array:
    """OSC position action for a wanted displacement (m): ``delta / 0.05`` clipped to [-1, 1]."""
    return jnp.clip(gain * delta / ctl.OSC_POS_SCALE, -1.0, 1.0)


def _turn(goal_rot: jax.Array, rot: jax.Array) -> jax.Array:
    return jnp.clip(ctl.orientation_error(goal_rot, rot) / ctl.OSC_ROT_SCALE, -1.0, 1.0)


def _squeeze(fingers: jax.Array, inside: float) -> jax.Array:
    """Gripper action whose finger targets sit ``inside`` m within the present opening (``fingers``:
    ``[]`` the two fingers' summed opening, m): at most ``inside`` of closing per finger and step,
    then a grip of ~kp ``inside`` (the finger servos' kp is 1500 N/m). The inverse of
    :func:`~vasa.envs.tasks.manipulation.control.set_goal`'s gripper mapping."""
    target = jnp.maximum(0.5 * fingers - inside, 0.0)
    return 1.0 - 2.0 * target / robots.FINGER_TRAVEL


def lift_policy(obs: jax.Array) -> jax.Array:
    """Scripted ``robo/lift``: hover over the cube with the fingers square to its faces, descend,
    close, lift. ``obs``: ``[42] float32`` -> ``[7] float32`` action."""
    grip, rot = obs[POS], quat_to_mat(obs[QUAT])
    cube, cube_quat = obs[32:35], obs[35:39]
    fingers = obs[FINGERS].sum()
    cube_yaw = 2.0 * jnp.arctan2(cube_quat[3], cube_quat[0])
    grip_yaw = jnp.arctan2(rot[1, 0], rot[0, 0])
    # the fingers can close on either pair of faces: aim for the nearest multiple of pi/2
    err = jnp.mod(cube_yaw - grip_yaw + jnp.pi / 4, jnp.pi / 2) - jnp.pi / 4
    goal_rot = _rot_z(grip_yaw + err) @ DOWN
    rel = cube - grip
    xy_err = jnp.linalg.norm(rel[:2])
    lifted = cube[2] > 0.8 + 0.03
    closed_on_cube = (fingers < 0.05) & (jnp.linalg.norm(rel) < 0.02)
    aligned = (xy_err < jnp.where(rel[2] > -0.05, 0.012, 0.006)) & (jnp.abs(err) < 0.08)
    at_cube = aligned & (jnp.abs(rel[2]) < 0.008)
    # phase targets
    hover = cube + jnp.array([0.0, 0.0, 0.08])
    target = jnp.where(aligned, cube, jnp.where(rel[2] > -0.03, jnp.concatenate([cube[:2], hover[2:]]), hover))
    target = jnp.where(closed_on_cube | lifted, jnp.concatenate([cube[:2], jnp.array([0.8 + 0.15])]), target)
    close = at_cube | closed_on_cube | lifted
    # wait for the fingers to close before lifting
    squeezed = closed_on_cube & (obs[30:32].__abs__().sum() < 0.02)
    target = jnp.where(closed_on_cube & ~squeezed & ~lifted, grip, target)
    gripper = jnp.where(close, 1.0, -1.0)
    return jnp.concatenate([_move(target - grip, 1.5), _turn(goal_rot, rot), gripper[None]]).astype(jnp.float32)


HANDLE_IN_DOOR = (-0.09, 0.25)  # the handle site in the door body's frame at hinge 0 (x, y)


def door_policy(obs: jax.Array) -> jax.Array:
    """Scripted ``robo/door``: grasp the lever from above (fingers closing across it), push it
    down to free the latch, then pull the handle along the door's arc. ``obs``: ``[46]
    float32`` -> ``[7] float32`` action."""
    grip, rot = obs[POS], quat_to_mat(obs[QUAT])
    door, handle = obs[32:35], obs[35:38]
    handle_angle = obs[45]
    fingers = obs[FINGERS].sum()
    v = handle[:2] - door[:2]
    door_yaw = jnp.arctan2(v[1], v[0]) - jnp.arctan2(HANDLE_IN_DOOR[1], HANDLE_IN_DOOR[0])
    grip_yaw = jnp.arctan2(rot[1, 0], rot[0, 0])
    want = door_yaw + jnp.pi / 2
    err = jnp.mod(want - grip_yaw + jnp.pi / 2, jnp.pi) - jnp.pi / 2
    goal_rot = _rot_z(grip_yaw + err) @ DOWN
    rel = handle - grip
    dist = jnp.linalg.norm(rel)
    xy_err = jnp.linalg.norm(rel[:2])
    holding = (fingers < 0.035) & (dist < 0.025)
    aligned = (xy_err < 0.008) & (jnp.abs(err) < 0.1)
    at_handle = aligned & (jnp.abs(rel[2]) < 0.01)
    hover = handle + jnp.array([0.0, 0.0, 0.07])
    approach = jnp.where(aligned, handle, jnp.where(rel[2] > -0.03, hover.at[:2].set(handle[:2]), hover))
    # pull along the opening arc (rotation about +z through the hinge), keeping the lever down
    tangent = jnp.array([-v[1], v[0], 0.0]) / (jnp.linalg.norm(v) + 1e-6)
    unlatched = (handle_angle > 0.5) | (obs[44] > 0.05)
    press = handle + jnp.array([0.0, 0.0, -0.05])
    pull = handle + 0.06 * tangent + jnp.array([0.0, 0.0, -0.03])
    target = jnp.where(holding, jnp.where(unlatched, pull, press), approach)
    gripper = jnp.where(at_handle | holding, 1.0, -1.0)
    return jnp.concatenate([_move(target - grip, 1.5), _turn(goal_rot, rot), gripper[None]]).astype(jnp.float32)
