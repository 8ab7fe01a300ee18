"""A Franka-Panda-like 7-DoF arm with a parallel-jaw gripper, built with ``mujoco.MjSpec``
from primitive geoms (capsules and boxes: cheap in MJX and closed-form in vasa's ray caster).

Kinematics follow Franka's published modified Denavit-Hartenberg table (Craig's
convention: frame ``i`` is ``RotX(alpha_{i-1}) TransX(a_{i-1}) RotZ(theta_i) TransZ(d_i)`` from
frame ``i-1``), the flange sits 0.107 m along the last joint axis, and the hand is turned
-45 deg about that axis as on the real robot. The grasp point (site ``<prefix>grip_site``)
lies 0.1034 m beyond the flange, between the finger pads. Joint position and torque limits
are Franka's datasheet values. Link masses are Franka's published estimates; inertias follow
from the capsules.

Differences from robosuite's Panda (``models/assets/robots/panda/robot.xml``,
``models/assets/grippers/panda_gripper.xml``, ``models/robots/robot_model.py``): its
``grip_site`` is 0.1065 + 0.097 = 0.2035 m beyond link 7 and turned -90 deg about z from the
hand (``right_gripper``), vasa's 0.107 + 0.1034 = 0.2104 m with the hand's orientation, so
the grasp-site quaternion in the proprioception is yawed 90 deg from robosuite's ``eef_quat``;
its motors are limited to +-80 N m on joints 1-5 and +-12 on 6-7 (vasa: 87 on 1-4, 12 on 5-7);
its joints carry an armature of ``5 / i`` kg m^2 on joint ``i``, vasa's 0.1 (joints 1-4) and
0.05 (5-7), so vasa's arm has far less reflected inertia (this is why the joint_velocity
controller of :mod:`vasa.envs.tasks.manipulation.control` integrates its P term implicitly).

Collisions are kept to what manipulation needs: only the finger pads collide (with objects,
``contype 1``; see :mod:`vasa.envs.scenes.table`), each pad as two small spheres flush with its
inner face (one contact per sphere, where a box-box pair costs MJX up to eight); the palm and
the rest of the arm are visual only. That keeps MJX's constraint count small.

Actuators: ``actuation="torque"`` gives seven motors (ctrl = joint torque in N m, clipped to
the datasheet limits), which every controller in :mod:`vasa.envs.tasks.manipulation.control`
drives (OSC, joint velocity, joint position and raw torque are all computed in JAX as
torques); ``"position"`` gives seven joint position servos instead (ctrl = target angle).
The gripper is one position servo per finger (ctrl = finger opening in metres, 0-0.04).
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

# Franka Emika Panda, modified DH (Craig): a_{i-1}, d_i, alpha_{i-1} for joints 1-7.
DH_A = (0.0, 0.0, 0.0, 0.0825, -0.0825, 0.0, 0.088)
DH_D = (0.333, 0.0, 0.316, 0.0, 0.384, 0.0, 0.0)
DH_ALPHA = (0.0, -math.pi / 2, math.pi / 2, math.pi / 2, -math.pi / 2, math.pi / 2, math.pi / 2)
FLANGE_D = 0.107
HAND_YAW = -math.pi / 4  # the hand is mounted turned -45 deg about the flange z axis
GRIP_OFFSET = 0.1034  # flange -> grasp point (between the finger pads), metres
# Datasheet joint limits (rad) and torque limits (N m).
JOINT_LOW = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
JOINT_HIGH = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)
TORQUE_LIMIT = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)
VELOCITY_LIMIT = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
LINK_MASS = (4.97, 0.65, 3.23, 3.59, 1.23, 1.67, 0.74)  # links 1-7 (kg); hand 0.73
HAND_MASS = 0.73
FINGER_TRAVEL = 0.04  # each finger opens 0-0.04 m
# robosuite's Panda rest posture
HOME_QPOS = (0.0, math.pi / 16, 0.0, -math.pi / 2 - math.pi / 3, 0.0, math.pi - 0.2, math.pi / 4)

ARM_COLOR = (0.92, 0.92, 0.94, 1.0)
JOINT_COLOR = (0.25, 0.25, 0.28, 1.0)
PAD_FRICTION = (2.0, 0.05, 0.001)  # high sliding friction rubber pads (robosuite's pads use 2)
PAD_RADIUS = 0.006
# Stiff pad contacts (the pads have priority, so their parameters rule their contacts): a
# soft MuJoCo contact lets a held object creep under gravity at a speed proportional to the
# constraint's softness; impedance near 1 and the shortest stable time constant (2 steps of
# 5 ms) keep the creep of a grasped cube small (measured in the tests).
PAD_SOLREF = (0.01, 1.0)
PAD_SOLIMP = (0.99, 0.999, 0.001, 0.5, 2.0)
PAD_BITS = (1, 0)  # contype/conaffinity of the finger pads (see vasa.envs.scenes.table)


def _quat_x(angle: float) -> list[float]:
    return [math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0]


def _quat_z(angle: float) -> list[float]:
    return [math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]


def dh_child_pose(a: float, d: float, alpha: float) -> tuple[np.ndarray, list[float]]:
    """Pose of frame ``i`` in frame ``i-1`` at ``theta_i = 0`` (modified DH): position
    ``[3]`` and quaternion ``[4]`` (w, x, y, z). ``RotZ(theta)`` then acts about the child's z."""
    pos = np.array([a, -math.sin(alpha) * d, math.cos(alpha) * d])
    return pos, _quat_x(alpha)


def add_arm(spec: mujoco.MjSpec, prefix: str = "robot0_", base_pos=(0.0, 0.0, 0.0), base_yaw: float = 0.0,
            actuation: str = "torque", eye_in_hand: bool = True) -> dict:
    """Add one arm + gripper to ``spec`` at ``base_pos`` (metres), turned ``base_yaw`` (rad).

    Sets ``spec.compiler.degree = False`` (angles in radians). Names (all prefixed): bodies ``link0``-``link7``, ``hand``, ``left_finger``,
    ``right_finger``; joints ``joint1``-``joint7``, ``finger_left``, ``finger_right``; geoms
    ``palm``, ``left_pad0/1``, ``right_pad0/1`` (collision spheres); sites ``flange``, ``grip_site``; camera
    ``eye_in_hand`` (looking along the gripper); actuators ``torque1``-``7`` (or ``pos1``-``7``)
    and ``gripper_left``/``gripper_right``.

    Returns a dict of those names (``"joints"``, ``"fingers"``, ``"actuators"``,
    ``"gripper_actuators"``, ``"grip_site"``, ``"pads"``, ``"palm"``, ``"hand"``).

    Raises:
      ValueError: ``actuation`` is not ``"torque"`` or ``"position"``.
    """
    if actuation not in ("torque", "position"):
        raise ValueError(f"actuation={actuation!r} is not allowed: choose from ('torque', 'position').")
    spec.compiler.degree = False  # joint ranges below are radians
    visual = dict(contype=0, conaffinity=0, group=1)
    cap = mujoco.mjtGeom.mjGEOM_CAPSULE
    box = mujoco.mjtGeom.mjGEOM_BOX
    base = spec.worldbody.add_body(name=f"{prefix}link0", pos=list(base_pos), quat=_quat_z(base_yaw))
    base.add_geom(type=mujoco.mjtGeom.mjGEOM_CYLINDER, size=[0.09, 0.03, 0], pos=[0, 0, 0.03], rgba=JOINT_COLOR,
                  mass=2.0, **visual)
    base.add_geom(type=cap, size=[0.06, 0, 0], fromto=[0, 0, 0.06, 0, 0, DH_D[0] - 0.06], rgba=ARM_COLOR, mass=1.0,
                  **visual)
    parent = base
    joints = []
    for i in range(7):
        pos, quat = dh_child_pose(DH_A[i], DH_D[i], DH_ALPHA[i])
        body = parent.add_body(name=f"{prefix}link{i + 1}", pos=pos.tolist(), quat=quat)
        name = f"{prefix}joint{i + 1}"
        body.add_joint(name=name, type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1], range=[JOINT_LOW[i], JOINT_HIGH[i]],
                       limited=mujoco.mjtLimited.mjLIMITED_TRUE, damping=0.1, armature=0.1 if i < 4 else 0.05,
                       frictionloss=0.0)
        joints.append(name)
        radius = 0.06 if i < 4 else 0.045
        # joint housing along the joint axis, then a segment to the next joint's origin
        body.add_geom(type=cap, size=[radius, 0, 0], fromto=[0, 0, -0.06, 0, 0, 0.06], rgba=JOINT_COLOR,
                      mass=LINK_MASS[i] * 0.3, **visual)
        if i < 6:
            nxt, _ = dh_child_pose(DH_A[i + 1], DH_D[i + 1], DH_ALPHA[i + 1])
        else:
            nxt = np.array([0.0, 0.0, FLANGE_D])
        if np.linalg.norm(nxt) > 1e-6:
            body.add_geom(type=cap, size=[radius * 0.9, 0, 0], fromto=[0, 0, 0, *nxt.tolist()], rgba=ARM_COLOR,
                          mass=LINK_MASS[i] * 0.7, **visual)
        else:
            body.add_geom(type=cap, size=[radius * 0.9, 0, 0], fromto=[0, 0, 0, 0, 0.08, 0], rgba=ARM_COLOR,
                          mass=LINK_MASS[i] * 0.7, **visual)
        parent = body
    link7 = parent
    link7.add_site(name=f"{prefix}flange", pos=[0, 0, FLANGE_D], size=[0.005, 0, 0], group=3)
    hand = link7.add_body(name=f"{prefix}hand", pos=[0, 0, FLANGE_D], quat=_quat_z(HAND_YAW))
    hand.add_geom(name=f"{prefix}palm", type=box, size=[0.02, 0.09, 0.025], pos=[0, 0, 0.035], rgba=ARM_COLOR,
                  mass=HAND_MASS, contype=0, conaffinity=0, group=1)
    hand.add_site(name=f"{prefix}grip_site", pos=[0, 0, GRIP_OFFSET], size=[0.004, 0, 0], rgba=[1, 0, 0, 0.5], group=3)
    if eye_in_hand:
        # looks along the hand's +z (towards the fingers): camera -z = hand +z
        hand.add_camera(name=f"{prefix}eye_in_hand" if prefix != "robot0_" else "eye_in_hand",
                        pos=[0.05, 0, 0.0], quat=[0.0, 0.0, 1.0, 0.0], fovy=75)
    fingers, pads = [], []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        finger = hand.add_body(name=f"{prefix}{side}_finger", pos=[0, 0, 0.0584])
        jname = f"{prefix}finger_{side}"
        finger.add_joint(name=jname, type=mujoco.mjtJoint.mjJNT_SLIDE, axis=[0, sign, 0], range=[0, FINGER_TRAVEL],
                         limited=mujoco.mjtLimited.mjLIMITED_TRUE, damping=2.0, armature=0.05)
        fingers.append(jname)
        finger.add_geom(type=box, size=[0.009, 0.006, 0.02], pos=[0, sign * 0.012, 0.02], rgba=ARM_COLOR, mass=0.02,
                        **visual)
        finger.add_geom(type=box, size=[0.009, 0.004, 0.017], pos=[0, sign * 0.004, GRIP_OFFSET - 0.0584],
                        rgba=JOINT_COLOR, mass=0.01, **visual)
        # collision: two spheres flush with the pad's inner face (sphere-box and sphere-plane
        # pairs give one contact each, where box-box gives up to eight: MJX's cost is per contact)
        side_pads = []
        for k, dz in enumerate((-0.008, 0.008)):
            pad = f"{prefix}{side}_pad{k}"
            finger.add_geom(name=pad, type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[PAD_RADIUS, 0, 0],
                            pos=[0, sign * PAD_RADIUS, GRIP_OFFSET - 0.0584 + dz], rgba=JOINT_COLOR, mass=0.001,
                            friction=list(PAD_FRICTION), contype=PAD_BITS[0], conaffinity=PAD_BITS[1], condim=3,
                            priority=1, group=3, solref=list(PAD_SOLREF), solimp=list(PAD_SOLIMP))
            side_pads.append(pad)
        pads.append(side_pads)
    actuators = []
    for i, name in enumerate(joints):
        if actuation == "torque":
            act = spec.add_actuator(name=f"{prefix}torque{i + 1}", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            act.set_to_motor()
            act.ctrlrange = [-TORQUE_LIMIT[i], TORQUE_LIMIT[i]]
        else:
            act = spec.add_actuator(name=f"{prefix}pos{i + 1}", target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
            act.set_to_position(kp=400.0 if i < 4 else 100.0, kv=40.0 if i < 4 else 10.0)
            act.ctrlrange = [JOINT_LOW[i], JOINT_HIGH[i]]
            act.forcerange = [-TORQUE_LIMIT[i], TORQUE_LIMIT[i]]
            act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        actuators.append(act.name)
    gripper_actuators = []
    for jname, side in zip(fingers, ("left", "right")):
        act = spec.add_actuator(name=f"{prefix}gripper_{side}", target=jname, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_position(kp=1500.0, kv=30.0)
        act.ctrlrange = [0.0, FINGER_TRAVEL]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = [-20.0, 20.0]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        gripper_actuators.append(act.name)
    return {"joints": joints, "fingers": fingers, "actuators": actuators, "gripper_actuators": gripper_actuators,
            "grip_site": f"{prefix}grip_site", "pads": pads, "palm": f"{prefix}palm", "hand": f"{prefix}hand",
            "prefix": prefix}


def add_arms(spec: mujoco.MjSpec, poses, actuation: str = "torque") -> list[dict]:
    """Add one arm per ``(base_pos, base_yaw)`` in ``poses`` (one or two for bimanual tasks),
    prefixed ``robot0_``, ``robot1_``. Returns :func:`add_arm`'s dicts, in order."""
    poses = list(poses)
    if not 1 <= len(poses) <= 2:
        raise ValueError(f"len(poses)={len(poses)} is not allowed: it must be 1 or 2 arms.")
    return [add_arm(spec, f"robot{i}_", base_pos=p, base_yaw=y, actuation=actuation) for i, (p, y) in enumerate(poses)]


def dh_forward(q: np.ndarray, base_pos=(0.0, 0.0, 0.0), base_yaw: float = 0.0, grip: bool = True) -> np.ndarray:
    """NumPy forward kinematics straight from the DH table (an independent reference for tests).

    ``q``: ``[7]`` joint angles. Returns the ``[4, 4]`` world pose of the grasp point (or of
    the flange when ``grip=False``), hand yaw included.
    """

    def rot_x(a):
        c, s = math.cos(a), math.sin(a)
        return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])

    def rot_z(a):
        c, s = math.cos(a), math.sin(a)
        return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])

    def trans(x, y, z):
        t = np.eye(4)
        t[:3, 3] = (x, y, z)
        return t

    pose = trans(*base_pos) @ rot_z(base_yaw)
    for i in range(7):
        pose = pose @ rot_x(DH_ALPHA[i]) @ trans(DH_A[i], 0, 0) @ rot_z(float(q[i])) @ trans(0, 0, DH_D[i])
    pose = pose @ trans(0, 0, FLANGE_D)
    if grip:
        pose = pose @ rot_z(HAND_YAW) @ trans(0, 0, GRIP_OFFSET)
    return pose
