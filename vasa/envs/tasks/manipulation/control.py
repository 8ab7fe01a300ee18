"""Arm controllers in JAX: operational-space control (robosuite's OSC_POSE), joint velocity,
joint position deltas and joint torque, plus a parallel-jaw gripper command.

A control step (20 Hz by default) is split in two pure functions:

* :func:`set_goal` ``(control, arm, m, d, action) -> goal``: read the policy's action once per
  control step and turn it into a goal (an end-effector pose, joint angles, velocities or
  torques);
* :func:`arm_torques` ``(control, arm, m, d, goal) -> [7] float32``: evaluated at every physics
  sub-step, torques that drive the arm toward the goal (clipped to the torque limits).

``action`` is ``float32`` in ``[-1, 1]``: for ``osc_pose`` ``[7]`` = ``(dx, dy, dz, ax, ay,
az, gripper)`` (position delta scaled to +-0.05 m, axis-angle delta to +-0.5 rad, in the world
frame); for the joint modes ``[8]`` = 7 joint values plus the gripper (joint_position: deltas
of +-0.05 rad, kp 50, critical damping; joint_velocity: +-0.5 rad/s, kp 3; joint_torque:
fractions of the datasheet torque limits; all with gravity compensation and the joint-space
mass matrix as in robosuite). :func:`action_size` gives the size per mode. The gripper value
is -1 (open) ... +1 (closed), as in robosuite.

OSC follows robosuite's ``OSC_POSE`` defaults: kp 150, damping ratio 1 (kd = 2 sqrt(kp)),
decoupled position/orientation operational-space inertias ``Lambda = (J M^-1 J^T)^-1``,
a nullspace posture term (kp 10, critical damping, toward the rest posture) through
``N = I - Jbar J`` with ``Jbar = M^-1 J^T Lambda``, and compensation of gravity and Coriolis
forces (MuJoCo's ``qfrc_bias``). Jacobians come from ``mjx.jac`` at the grasp site; the
mass matrix from ``mjx.full_m``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from vasa.envs import physics
from vasa.envs.scenes import robots

CONTROL_MODES = ("osc_pose", "joint_velocity", "joint_position", "joint_torque")
OSC_POS_SCALE, OSC_ROT_SCALE = 0.05, 0.5  # robosuite OSC_POSE output limits per control step
OSC_KP = 150.0
NULL_KP = 10.0
JOINT_POS_SCALE, JOINT_POS_KP = 0.05, 50.0  # robosuite JOINT_POSITION
JOINT_VEL_SCALE, JOINT_VEL_KP = 0.5, 3.0  # robosuite JOINT_VELOCITY


def check_control(control) -> str:
    """Return ``control`` or raise ``ValueError`` naming it and the allowed modes."""
    if control not in CONTROL_MODES:
        raise ValueError(f"control={control!r} is not allowed: choose from {CONTROL_MODES}.")
    return control


def action_size(control: str) -> int:
    """Action size for a control mode: 7 (osc_pose: 6 + gripper) or 8 (joint modes: 7 + gripper)."""
    return 7 if check_control(control) == "osc_pose" else 8


class Arm(NamedTuple):
    """Static indices of one arm in a compiled model (NumPy ints; closed over, not traced)."""

    qpos: np.ndarray  # [7] qpos addresses of the arm joints
    dof: np.ndarray  # [7] dof addresses of the arm joints
    finger_qpos: np.ndarray  # [2]
    finger_dof: np.ndarray  # [2]
    act: np.ndarray  # [7] arm actuator ids
    grip_act: np.ndarray  # [2] gripper actuator ids
    site: int  # grasp site id
    hand_body: int  # body holding the grasp site
    rest: np.ndarray  # [7] rest posture for the nullspace term
    torque_limit: np.ndarray  # [7]

    @staticmethod
    def from_model(mj_model, names: dict) -> "Arm":
        """Indices of the arm ``names`` (from :func:`vasa.envs.scenes.robots.add_arm`)."""
        jnt = [mj_model.joint(n).id for n in names["joints"]]
        fng = [mj_model.joint(n).id for n in names["fingers"]]
        return Arm(
            qpos=np.array([mj_model.jnt_qposadr[j] for j in jnt]), dof=np.array([mj_model.jnt_dofadr[j] for j in jnt]),
            finger_qpos=np.array([mj_model.jnt_qposadr[j] for j in fng]),
            finger_dof=np.array([mj_model.jnt_dofadr[j] for j in fng]),
            act=np.array([mj_model.actuator(n).id for n in names["actuators"]]),
            grip_act=np.array([mj_model.actuator(n).id for n in names["gripper_actuators"]]),
            site=int(mj_model.site(names["grip_site"]).id), hand_body=int(mj_model.body(names["hand"]).id),
            rest=np.array(robots.HOME_QPOS), torque_limit=np.array(robots.TORQUE_LIMIT))


def axis_angle_to_matrix(v: jax.Array) -> jax.Array:
    """Rodrigues: ``[3]`` axis-angle -> ``[3, 3]`` rotation matrix (safe at 0)."""
    theta = jnp.sqrt(jnp.sum(v * v) + 1e-12)
    k = v / theta
    kx = jnp.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return jnp.eye(3) + jnp.sin(theta) * kx + (1.0 - jnp.cos(theta)) * kx @ kx


def orientation_error(goal: jax.Array, current: jax.Array) -> jax.Array:
    """``[3]`` rotation error between two ``[3, 3]`` matrices, ``0.5 sum_i c_i x g_i`` over
    columns (robosuite's OSC error; ~ the axis-angle of ``goal current^T`` for small errors)."""
    return 0.5 * jnp.sum(jnp.cross(current.T, goal.T), axis=0)


def ee_pose(arm: Arm, d) -> tuple[jax.Array, jax.Array]:
    """Grasp-site position ``[3]`` and rotation matrix ``[3, 3]``."""
    return d.site_xpos[arm.site], d.site_xmat[arm.site].reshape(3, 3)


def site_jacobian(arm: Arm, m, d) -> jax.Array:
    """``[6, 7]`` Jacobian (linear rows, then angular) of the grasp site w.r.t. the arm joints."""
    jacp, jacr = mjx.jac(m, d, d.site_xpos[arm.site], jnp.asarray(arm.hand_body))
    return jnp.concatenate([jacp.T, jacr.T], axis=0)[:, arm.dof]


def osc_torques(arm: Arm, m, d, goal_pos: jax.Array, goal_rot: jax.Array, kp: float = OSC_KP) -> jax.Array:
    """Operational-space torques ``[7]`` toward a grasp-site pose (before clipping)."""
    kd = 2.0 * jnp.sqrt(kp)
    pos, rot = ee_pose(arm, d)
    jac = site_jacobian(arm, m, d)
    qvel = d.qvel[arm.dof]
    mass = mjx.full_m(m, d)[arm.dof][:, arm.dof]
    mass_inv = physics.spd_inverse(mass)
    vel = jac @ qvel
    force = kp * (goal_pos - pos) - kd * vel[:3]
    torque = kp * orientation_error(goal_rot, rot) - kd * vel[3:]
    jp, jr = jac[:3], jac[3:]
    lam_pos = physics.spd_inverse(jp @ mass_inv @ jp.T)
    lam_rot = physics.spd_inverse(jr @ mass_inv @ jr.T)
    lam = physics.spd_inverse(jac @ mass_inv @ jac.T)
    tau = jp.T @ (lam_pos @ force) + jr.T @ (lam_rot @ torque)
    jbar = mass_inv @ jac.T @ lam
    null = jnp.eye(7) - jbar @ jac
    posture = mass @ (NULL_KP * (jnp.asarray(arm.rest) - d.qpos[arm.qpos]) - 2.0 * jnp.sqrt(NULL_KP) * qvel)
    return tau + null.T @ posture + d.qfrc_bias[arm.dof]


def set_goal(control: str, arm: Arm, m, d, action: jax.Array) -> dict:
    """Turn a ``[action_size]`` action in ``[-1, 1]`` into this control step's goal (a dict of arrays)."""
    a = jnp.clip(action, -1.0, 1.0)
    grip = robots.FINGER_TRAVEL * 0.5 * (1.0 - a[-1])  # -1 open (0.04 per finger), +1 closed (0)
    q = d.qpos[arm.qpos]
    if control == "osc_pose":
        pos, rot = ee_pose(arm, d)
        goal = {"pos": pos + OSC_POS_SCALE * a[:3], "rot": axis_angle_to_matrix(OSC_ROT_SCALE * a[3:6]) @ rot}
    elif control == "joint_position":
        low, high = jnp.asarray(robots.JOINT_LOW), jnp.asarray(robots.JOINT_HIGH)
        goal = {"q": jnp.clip(q + JOINT_POS_SCALE * a[:7], low, high)}
    elif control == "joint_velocity":
        goal = {"qdot": JOINT_VEL_SCALE * a[:7]}
    else:
        goal = {"tau": jnp.asarray(arm.torque_limit) * a[:7]}
    return {**goal, "grip": grip}


def arm_torques(control: str, arm: Arm, m, d, goal: dict) -> jax.Array:
    """``[7] float32`` arm torques for this physics sub-step (clipped to the torque limits)."""
    if control == "osc_pose":
        tau = osc_torques(arm, m, d, goal["pos"], goal["rot"])
    else:
        bias = d.qfrc_bias[arm.dof]
        if control == "joint_torque":
            tau = goal["tau"] + bias
        else:
            mass = mjx.full_m(m, d)[arm.dof][:, arm.dof]
            qvel = d.qvel[arm.dof]
            if control == "joint_position":
                acc = JOINT_POS_KP * (goal["q"] - d.qpos[arm.qpos]) - 2.0 * jnp.sqrt(JOINT_POS_KP) * qvel
            else:
                acc = JOINT_VEL_KP * (goal["qdot"] - qvel)
            tau = mass @ acc + bias
    limit = jnp.asarray(arm.torque_limit)
    return jnp.clip(tau, -limit, limit)


def apply(control: str, arm: Arm, m, d, goal: dict):
    """``d`` with ``ctrl`` set for this sub-step (arm torques and gripper targets)."""
    ctrl = d.ctrl.at[arm.act].set(arm_torques(control, arm, m, d, goal))
    ctrl = ctrl.at[arm.grip_act].set(goal["grip"])
    return d.replace(ctrl=ctrl)
