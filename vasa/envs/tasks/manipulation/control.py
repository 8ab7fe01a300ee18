"""Arm controllers in JAX: operational-space control (robosuite's OSC_POSE), joint velocity
(robosuite's JOINT_VELOCITY PID), joint position deltas and joint torque, plus a parallel-jaw
gripper command.

A control step (20 Hz by default) is split in two pure functions:

* :func:`set_goal` ``(control, arm, m, d, action) -> goal``: read the policy's action once per
  control step and turn it into a goal (an end-effector pose, joint angles, velocities or
  torques);
* :func:`arm_torques` ``(control, arm, m, d, goal) -> [7] float32``: evaluated at every physics
  sub-step, torques that drive the arm toward the goal (clipped to the torque limits);
  :func:`apply` writes them to ``d.ctrl`` (and, for joint_velocity, the controller's memory to
  ``d.userdata``, see below).

``action`` is ``float32`` in ``[-1, 1]``: for ``osc_pose`` ``[7]`` = ``(dx, dy, dz, ax, ay,
az, gripper)`` (position delta scaled to +-0.05 m, axis-angle delta to +-0.5 rad); for the
joint modes ``[8]`` = 7 joint values plus the gripper. :func:`action_size` gives the size per
mode. Every mode adds MuJoCo's ``qfrc_bias`` (gravity and Coriolis compensation, robosuite's
``torque_compensation``) and clips the torques to vasa's datasheet limits (87 N m on joints
1-4, 12 on 5-7; robosuite's Panda motors: 80 on 1-5, 12 on 6-7).

* ``joint_position``: deltas of +-0.05 rad from the current angles, kp 50, critical damping,
  ``M (kp (q* - q) - kd qdot) + bias`` (robosuite's JOINT_POSITION, ``joint_pos.py``).
* ``joint_velocity``: target velocities of +-0.5 rad/s (robosuite's ``joint_velocity.json``
  ``output_max``; its ``velocity_limits`` of +-1 rad/s never bind), held for the whole control
  step (no interpolator), and robosuite's PID of ``controllers/parts/generic/joint_vel.py``:
  ``kp = 3 x`` the ctrl-range width of robosuite's Panda motors (``robot.xml``: +-80 N m on
  joints 1-5, +-12 on 6-7, so kp = 480 and 72 N m s/rad; robosuite's gains, not vasa's 87/12
  limits), ``ki = 0.005 kp``, ``kd = 0.001 kp``, ``pid = kp e + ki sum(e) + kd mean(de)`` with
  ``e = qdot* - qdot`` at each physics sub-step, ``sum(e)`` over the sub-steps of the episode,
  frozen while the previous sub-step's torques were clipped (robosuite's anti-windup), ``de``
  the change of ``e`` since the previous sub-step (``e`` itself at the first), averaged over the
  last 5 sub-steps; no mass matrix. The memory (``sum(e)``, the last ``e``, the last 5 ``de``,
  their count and the saturation flag: :data:`PID_STATE_SIZE` values per arm) lives in
  ``d.userdata``, so it follows the physics state across sub-steps and control steps and is
  zero after a reset (robosuite builds new controllers at every reset) and in a state restored
  with ``state_from`` (a demonstration's). One departure: the torque is
  ``M (M + dt K)^-1 pid + bias`` (``K = diag(kp)``, ``dt`` the physics step), i.e. the P term
  acts on the velocity at the end of the sub-step (backward Euler, as MuJoCo integrates its own
  velocity servos). robosuite's explicit law is stable on its Panda thanks to a joint armature
  of ``5 / i`` kg m^2 on joint ``i`` (``models/robots/robot_model.py``): its ``M_ii`` are
  0.8-7.1 kg m^2 at the rest posture and ``dt kp / M_ii <= 0.7`` at its 2 ms step. vasa's arm
  (armature 0.1 and 0.05, ``M_ii`` 0.05-1.5 kg m^2) gives ``dt kp / M_ii`` up to 7 at 5 ms, and
  the explicit loop oscillates at the torque limits (in MuJoCo C, at 2 ms as well). Where
  ``M >> dt K`` the two laws agree. The sums run per sub-step as in robosuite, so with
  vasa's 5 ms step (robosuite: 2 ms) the integral gain per second is 2.5x smaller.
* ``joint_torque``: ``a x`` the datasheet torque limits (+-87 / +-12 N m) plus the bias.
  robosuite's JOINT_TORQUE scales actions to +-0.1 N m (``joint_torque.json``), nearly inert
  on a Panda; vasa uses the full range instead.

Gripper (the last action value): vasa sets an absolute finger target each control step,
``0.04 (1 - a) / 2`` m per finger (-1 fully open, +1 closed, values between partly open), and
an episode starts fully open. robosuite's Panda gripper (``models/grippers/panda_gripper.py``)
is rate-based: only the sign of ``a`` counts (+1 closes), each control step moves its target
by 0.2 of the [-1, 1] range (10 steps from open to closed), and it starts half open (fingers at
0.0208 m, target in the middle).

OSC follows robosuite's ``OSC_POSE`` defaults: kp 150, damping ratio 1 (kd = 2 sqrt(kp)),
decoupled position/orientation operational-space inertias ``Lambda = (J M^-1 J^T)^-1``,
a nullspace posture term (kp 10, critical damping) through ``N = I - Jbar J`` with
``Jbar = M^-1 J^T Lambda``, and compensation of gravity and Coriolis forces (MuJoCo's
``qfrc_bias``). Jacobians come from ``mjx.jac`` at the grasp site; the mass matrix from
``mjx.full_m``. Departures: the nullspace target is the noise-free rest posture
(``robots.HOME_QPOS``; robosuite's is the episode's noisy initial posture,
``controller.py`` ``initial_joint``), and the deltas are in the world frame for every arm:
robosuite 1.5's default Panda config (``default_panda.json``) reads them in the robot's base
frame (``input_ref_frame: base``; robosuite 1.4 used the world frame). The two coincide for
the single-arm tasks (base yaw 0); for the two-arm tasks, whose bases are turned +-pi/2, vasa
reads robot0's ``dx`` as world x where robosuite 1.5 reads it as the arm's forward direction.

Timing: :meth:`~vasa.envs.tasks.manipulation.base.ArmTask.step` calls :func:`apply` before each
``mjx.step``, whose forward pass precedes the integration, so the controllers read ``qpos`` and
``qvel`` of the current sub-step but the grasp-site pose, Jacobian, mass matrix and
``qfrc_bias`` of the previous one (5 ms old; the OSC goal of a control step is likewise built
from a pose one sub-step old). robosuite runs forward kinematics before its controllers
(``environments/base.py``: ``sim.step1()`` or ``sim.forward()``). For OSC (kp 150, natural
frequency ~12 rad/s) the 5 ms delay is ~3-4 deg of phase lag. Every measured result of vasa's
manipulation tasks used this stepping.
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
# robosuite JOINT_VELOCITY (controllers/config/default/parts/joint_velocity.json, parts/generic/joint_vel.py)
JOINT_VEL_SCALE = 0.5  # output_max: rad/s at action 1
ROBOSUITE_PANDA_CTRL = (80.0, 80.0, 80.0, 80.0, 80.0, 12.0, 12.0)  # robot.xml motor ctrlrange +-, N m
JOINT_VEL_KP = tuple(3.0 * 2.0 * c for c in ROBOSUITE_PANDA_CTRL)  # "kp": 3.0 x ctrl-range width
JOINT_VEL_KI, JOINT_VEL_KD = 0.005, 0.001  # x kp
DERR_WINDOW = 5  # RingBuffer(length=5) of error differences
PID_STATE_SIZE = 7 + 7 + DERR_WINDOW * 7 + 2  # sum(e), last e, last 5 de (newest first), count, saturated


def check_control(control) -> str:
    """Return ``control`` or raise ``ValueError`` naming it and the allowed modes."""
    if control not in CONTROL_MODES:
        raise ValueError(f"control={control!r} is not allowed: choose from {CONTROL_MODES}.")
    return control


def action_size(control: str) -> int:
    """Action size for a control mode: 7 (osc_pose: 6 + gripper) or 8 (joint modes: 7 + gripper)."""
    return 7 if check_control(control) == "osc_pose" else 8


def state_size(control: str) -> int:
    """Controller memory per arm in ``d.userdata``: :data:`PID_STATE_SIZE` for joint_velocity, else 0."""
    return PID_STATE_SIZE if check_control(control) == "joint_velocity" else 0


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
    state_adr: int = 0  # first index of this arm's controller memory in d.userdata (see state_size)

    @staticmethod
    def from_model(mj_model, names: dict, state_adr: int = 0) -> "Arm":
        """Indices of the arm ``names`` (from :func:`vasa.envs.scenes.robots.add_arm`); its
        controller memory starts at ``d.userdata[state_adr]``."""
        jnt = [mj_model.joint(n).id for n in names["joints"]]
        fng = [mj_model.joint(n).id for n in names["fingers"]]
        return Arm(
            qpos=np.array([mj_model.jnt_qposadr[j] for j in jnt]), dof=np.array([mj_model.jnt_dofadr[j] for j in jnt]),
            finger_qpos=np.array([mj_model.jnt_qposadr[j] for j in fng]),
            finger_dof=np.array([mj_model.jnt_dofadr[j] for j in fng]),
            act=np.array([mj_model.actuator(n).id for n in names["actuators"]]),
            grip_act=np.array([mj_model.actuator(n).id for n in names["gripper_actuators"]]),
            site=int(mj_model.site(names["grip_site"]).id), hand_body=int(mj_model.body(names["hand"]).id),
            rest=np.array(robots.HOME_QPOS), torque_limit=np.array(robots.TORQUE_LIMIT), state_adr=int(state_adr))


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


def joint_velocity_pid(err: jax.Array, state: jax.Array) -> tuple[jax.Array, jax.Array]:
    """robosuite's ``JointVelocityController.run_controller`` up to the compensation: ``err [7]``
    (target minus joint velocity) and the memory ``state [PID_STATE_SIZE]`` -> ``(pid [7], state)``
    with ``pid = kp err + ki sum(err) + kd mean(derr)``. The returned state has ``sum``, last
    ``err``, the ``derr`` window and its count updated; its saturation flag is set by
    :func:`joint_velocity_torques` once the torques are clipped."""
    kp = jnp.asarray(JOINT_VEL_KP, err.dtype)
    summed, last = state[0:7], state[7:14]
    window = state[14:14 + 7 * DERR_WINDOW].reshape(DERR_WINDOW, 7)
    count, saturated = state[-2], state[-1]
    derr = err - last
    window = jnp.concatenate([derr[None], window[:-1]])  # push (newest first)
    count = jnp.minimum(count + 1.0, DERR_WINDOW)
    summed = jnp.where(saturated > 0, summed, summed + err)  # anti-windup: only when not saturated
    pid = kp * err + JOINT_VEL_KI * kp * summed + JOINT_VEL_KD * kp * jnp.sum(window, axis=0) / count
    state = jnp.concatenate([summed, err, window.reshape(-1), count[None], saturated[None]])
    return pid, state


def joint_velocity_torques(arm: Arm, m, d, qdot: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(torques [7] clipped, memory [PID_STATE_SIZE])`` of the joint_velocity controller toward
    the joint velocities ``qdot [7]`` for this sub-step: ``M (M + dt K)^-1 pid + bias`` (see the
    module docstring), the memory read from and meant for ``d.userdata``."""
    state = d.userdata[arm.state_adr:arm.state_adr + PID_STATE_SIZE]
    pid, state = joint_velocity_pid(qdot - d.qvel[arm.dof], state)
    mass = mjx.full_m(m, d)[arm.dof][:, arm.dof]
    gain = jnp.diag(jnp.asarray(JOINT_VEL_KP, mass.dtype))
    tau = mass @ (physics.spd_inverse(mass + m.opt.timestep * gain) @ pid) + d.qfrc_bias[arm.dof]
    limit = jnp.asarray(arm.torque_limit)
    clipped = jnp.clip(tau, -limit, limit)
    saturated = jnp.any(clipped != tau).astype(state.dtype)
    return clipped, state.at[-1].set(saturated)


def _torques(control: str, arm: Arm, m, d, goal: dict) -> tuple[jax.Array, jax.Array | None]:
    if control == "osc_pose":
        tau = osc_torques(arm, m, d, goal["pos"], goal["rot"])
    elif control == "joint_velocity":
        return joint_velocity_torques(arm, m, d, goal["qdot"])
    elif control == "joint_torque":
        tau = goal["tau"] + d.qfrc_bias[arm.dof]
    else:
        mass = mjx.full_m(m, d)[arm.dof][:, arm.dof]
        qvel = d.qvel[arm.dof]
        acc = JOINT_POS_KP * (goal["q"] - d.qpos[arm.qpos]) - 2.0 * jnp.sqrt(JOINT_POS_KP) * qvel
        tau = mass @ acc + d.qfrc_bias[arm.dof]
    limit = jnp.asarray(arm.torque_limit)
    return jnp.clip(tau, -limit, limit), None


def arm_torques(control: str, arm: Arm, m, d, goal: dict) -> jax.Array:
    """``[7] float32`` arm torques for this physics sub-step (clipped to the torque limits);
    joint_velocity reads its memory from ``d.userdata`` (:func:`apply` also updates it)."""
    return _torques(control, arm, m, d, goal)[0]


def apply(control: str, arm: Arm, m, d, goal: dict):
    """``d`` with ``ctrl`` set for this sub-step (arm torques and gripper targets) and, for
    joint_velocity, the controller memory in ``d.userdata`` updated."""
    tau, state = _torques(control, arm, m, d, goal)
    ctrl = d.ctrl.at[arm.act].set(tau)
    ctrl = ctrl.at[arm.grip_act].set(goal["grip"])
    d = d.replace(ctrl=ctrl)
    if state is not None:
        d = d.replace(userdata=d.userdata.at[arm.state_adr:arm.state_adr + PID_STATE_SIZE].set(state))
    return d
