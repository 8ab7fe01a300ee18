"""Robotics Suite on MJX (issue 19, phase 1): arm kinematics, OSC, lift/door success and rewards,
scripted controllers, seeds and argument errors.

References are independent of the code under test: a NumPy transcription of Franka's DH table,
MuJoCo's C ``mj_forward`` (positions, contacts) and NumPy transcriptions of robosuite's rewards.
Compiled functions are shared through module-scoped fixtures (the arm's MJX step is the
expensive compile); environments are few and horizons short.
"""

from __future__ import annotations

import math
import os

# MJX kinematics of a deep tree needs XLA:CPU's legacy fusion (see vasa.envs.tasks.manipulation);
# effective only when this module is the first to start JAX's backend.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false").strip()

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from vasa.envs import physics
from vasa.envs.scenes import robots, table
from vasa.envs.tasks.manipulation import control as ctl
from vasa.envs.tasks.manipulation import scripted
from vasa.envs.tasks.manipulation.door import Door
from vasa.envs.tasks.manipulation.lift import Lift


# --------------------------------------------------------------------------- helpers
class Compiled:
    """A task with its jitted batched reset/step and an unbatched ``evaluate(qpos, mocap, params)``."""

    def __init__(self, env):
        self.env = env
        self.reset = jax.jit(jax.vmap(env.reset))
        self.step = jax.jit(jax.vmap(env.step))

        def evaluate(qpos, mocap_pos, mocap_quat, params):
            d = env._data0.replace(qpos=qpos, mocap_pos=mocap_pos, mocap_quat=mocap_quat)
            d = mjx.forward(env._model_for(params), d)
            reward, success = env.reward_and_success(d, params)
            return reward, success, env.observe(d, params)

        self.evaluate = jax.jit(evaluate)

    def rollout(self, policy, keys, steps):
        """Run ``policy(obs [N, K]) -> [N, A]`` for ``steps``; returns the final state and
        per-step success ``[steps, N]``."""
        state = self.reset(keys)
        batched = jax.jit(jax.vmap(policy))
        successes = []
        for _ in range(steps):
            state = self.step(state, batched(state.obs))
            successes.append(np.asarray(state.metrics["success"]))
        return state, np.stack(successes)


@pytest.fixture(scope="module")
def lift():
    return Compiled(Lift())


@pytest.fixture(scope="module")
def door():
    return Compiled(Door())


def c_data(env, q_arm=robots.HOME_QPOS, fingers=robots.FINGER_TRAVEL, extra=None, mocap=None):
    """MuJoCo C data after ``mj_forward`` with the arm at ``q_arm`` and ``extra`` ``{qpos addr: value}``."""
    m = env.mj_model
    d = mujoco.MjData(m)
    d.qpos[env.arm.qpos] = q_arm
    d.qpos[env.arm.finger_qpos] = fingers
    for adr, value in (extra or {}).items():
        d.qpos[adr:adr + np.size(value)] = value
    if mocap is not None:
        d.mocap_pos[0], d.mocap_quat[0] = mocap
    mujoco.mj_forward(m, d)
    return d


def c_touching(m, d, g1, g2) -> bool:
    for c in d.contact[:d.ncon]:
        if {int(c.geom1), int(c.geom2)} == {g1, g2} and c.dist <= 0:
            return True
    return False


def run_eval(compiled, d, params):
    return compiled.evaluate(jnp.asarray(d.qpos, jnp.float32), jnp.asarray(d.mocap_pos, jnp.float32),
                             jnp.asarray(d.mocap_quat, jnp.float32), params)


LIFT_PARAMS = {"half_size": jnp.float32(0.021), "mass": jnp.float32(0.1), "friction": jnp.float32(1.0)}


# --------------------------------------------------------------------------- arm
def test_forward_kinematics_matches_dh_table():
    spec = mujoco.MjSpec()
    base, yaw = (0.1, -0.2, 0.5), 0.3
    robots.add_arm(spec, base_pos=base, base_yaw=yaw)
    m = spec.compile()
    d = mujoco.MjData(m)
    site = m.site("robot0_grip_site").id
    flange = m.site("robot0_flange").id
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(robots.JOINT_LOW, robots.JOINT_HIGH)
        d.qpos[:7] = q
        mujoco.mj_kinematics(m, d)
        ref = robots.dh_forward(q, base, yaw)
        np.testing.assert_allclose(d.site_xpos[site], ref[:3, 3], atol=1e-9)
        np.testing.assert_allclose(d.site_xmat[site].reshape(3, 3), ref[:3, :3], atol=1e-9)
        np.testing.assert_allclose(d.site_xpos[flange], robots.dh_forward(q, base, yaw, grip=False)[:3, 3], atol=1e-9)
    # the published zero pose: flange at x = 0.088, z = 0.333 + 0.316 + 0.384 - 0.107 above the base
    d.qpos[:7] = 0.0
    spec0 = mujoco.MjSpec()
    robots.add_arm(spec0)
    m0 = spec0.compile()
    d0 = mujoco.MjData(m0)
    mujoco.mj_kinematics(m0, d0)
    np.testing.assert_allclose(d0.site_xpos[m0.site("robot0_flange").id], [0.088, 0.0, 0.333 + 0.316 + 0.384 - 0.107],
                               atol=1e-9)
    np.testing.assert_allclose(m0.jnt_range[:7], np.stack([robots.JOINT_LOW, robots.JOINT_HIGH], 1))


def test_two_arms_and_bad_arguments():
    spec = mujoco.MjSpec()
    names = robots.add_arms(spec, [((0, -0.5, 0), 0.0), ((0, 0.5, 0), math.pi)])
    m = spec.compile()
    assert m.nu == 18 and names[1]["grip_site"] == "robot1_grip_site"
    with pytest.raises(ValueError, match=r"actuation='speed'.*'torque', 'position'"):
        robots.add_arm(mujoco.MjSpec(), actuation="speed")
    with pytest.raises(ValueError, match=r"control='cartesian'.*osc_pose.*joint_velocity.*joint_position.*joint_torque"):
        Lift(control="cartesian")
    with pytest.raises(ValueError, match=r"use_latch='yes'.*True, False"):
        Door(use_latch="yes")
    with pytest.raises(ValueError, match=r"timestep=0.003"):
        Lift(timestep=0.003)
    with pytest.raises(ValueError, match=r"reward_scale=-1"):
        Lift(reward_scale=-1)
    with pytest.raises(ValueError, match=r"solver_iterations\[0\]=0 .*integer in \[1, 100\]"):
        Lift(solver_iterations=(0, 8))
    with pytest.raises(ValueError, match=r"solver_iterations=5 .*\(Newton iterations, line-search iterations\)"):
        Lift(solver_iterations=5)
    tight = Door(solver_iterations=(6, 8)).mj_model.opt  # the door's own is (3, 4): see its latch test
    assert (tight.iterations, tight.ls_iterations) == (6, 8)
    import vasa.envs

    with pytest.raises(ValueError, match=r"control='x'"):
        vasa.envs.make("robo/lift", control="x")


def test_control_math_against_numpy():
    rng = np.random.default_rng(1)
    v = rng.normal(size=3)
    theta = np.linalg.norm(v)
    k = v / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    ref = np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx
    np.testing.assert_allclose(ctl.axis_angle_to_matrix(jnp.asarray(v, jnp.float32)), ref, atol=1e-5)
    # small rotation: the OSC orientation error is the axis-angle of goal * current^T
    cur = ref
    delta = np.array([0.01, -0.02, 0.015])
    goal = np.asarray(ctl.axis_angle_to_matrix(jnp.asarray(delta, jnp.float32))) @ cur
    np.testing.assert_allclose(ctl.orientation_error(jnp.asarray(goal), jnp.asarray(cur)), delta, atol=2e-4)


# --------------------------------------------------------------------------- joint velocity
class RobosuiteJointVelocity:
    """NumPy transcription of robosuite 1.5.1 ``JointVelocityController`` (``controllers/parts/
    generic/joint_vel.py``: ``__init__`` with a scalar kp, ``run_controller``) and its
    ``utils/buffers.py`` ``RingBuffer``, on robosuite's Panda motor ranges (``robot.xml``: +-80
    N m on joints 1-5, +-12 on 6-7), numbers typed in. One line is vasa's documented departure:
    the PID torque enters as ``M (M + dt K)^-1 pid`` (robosuite: ``pid``) before the compensation."""

    def __init__(self):
        low, high = -np.array([80.0] * 5 + [12.0] * 2), np.array([80.0] * 5 + [12.0] * 2)
        self.kp = 3.0 * (high - low)
        self.ki, self.kd = self.kp * 0.005, self.kp * 0.001
        self.last_err, self.summed_err, self.saturated = np.zeros(7), np.zeros(7), False
        self.buf, self.ptr, self.size = np.zeros((5, 7)), 4, 0  # RingBuffer(dim=7, length=5)

    def run(self, goal_vel, joint_vel, compensation, limit, mass, dt):
        err = goal_vel - joint_vel
        derr = err - self.last_err
        self.last_err = err
        self.ptr = (self.ptr + 1) % 5  # RingBuffer.push
        self.buf[self.ptr] = derr
        self.size = min(self.size + 1, 5)
        if not self.saturated:
            self.summed_err += err
        pid = self.kp * err + self.ki * self.summed_err + self.kd * np.mean(self.buf[:self.size], axis=0)
        torques = mass @ np.linalg.solve(mass + dt * np.diag(self.kp), pid) + compensation
        clipped = np.clip(torques, -limit, limit)
        self.saturated = np.sum(np.abs(clipped - torques)) != 0
        return pid, clipped


def bare_arm(state_size: int):
    """A lone arm (no table, no objects) with the tasks' physics options: C model, MJX model, Arm."""
    spec = table.new_spec(0.005)
    names = robots.add_arms(spec, [((-0.56, 0.0, 0.912), 0.0)], actuation="torque")[0]
    spec.nuserdata = state_size
    mm = spec.compile()
    return mm, mjx.put_model(mm, impl="jax"), ctl.Arm.from_model(mm, names)


def test_joint_velocity_pid_matches_robosuite_numpy():
    """joint_velocity torques and PID memory over 24 sub-steps of random states (MuJoCo C's
    mass matrix and bias forces), goals changing every 4 sub-steps, against the NumPy
    transcription of robosuite's controller; the states alternate between slow joints (torques
    within the limits) and fast ones (clipped: robosuite's anti-windup freezes the sum)."""
    mm, m, arm = bare_arm(ctl.PID_STATE_SIZE)
    assert ctl.JOINT_VEL_KP == (480.0,) * 5 + (72.0,) * 2 and ctl.JOINT_VEL_SCALE == 0.5
    torques = jax.jit(lambda d, qdot: ctl.joint_velocity_torques(arm, m, d, qdot))
    pid_only = jax.jit(ctl.joint_velocity_pid)
    ref = RobosuiteJointVelocity()
    limit = np.array(robots.TORQUE_LIMIT)
    rng = np.random.default_rng(4)
    d = mujoco.MjData(mm)
    memory = jnp.zeros(ctl.PID_STATE_SIZE, jnp.float32)
    saturated = []
    for k in range(24):
        if k % 4 == 0:  # a control step: a new action, its goal held for the sub-steps
            action = rng.uniform(-1.2, 1.2, 8)
            goal = np.asarray(ctl.set_goal("joint_velocity", arm, m, d, jnp.asarray(action, jnp.float32))["qdot"])
            np.testing.assert_allclose(goal, 0.5 * np.clip(action[:7], -1, 1), rtol=1e-6)
        d.qpos[arm.qpos] = rng.uniform(robots.JOINT_LOW, robots.JOINT_HIGH)
        d.qvel[arm.dof] = rng.normal(0.0, 0.02 if k % 3 else 1.0, 7)
        mujoco.mj_forward(mm, d)
        mass = np.zeros((mm.nv, mm.nv))
        mujoco.mj_fullM(mm, d, mass)
        want_pid, want = ref.run(goal, d.qvel[arm.dof], d.qfrc_bias[arm.dof], limit, mass[np.ix_(arm.dof, arm.dof)],
                                 0.005)
        dj = mjx.put_data(mm, d, impl="jax").replace(userdata=memory)
        pid, _ = pid_only(jnp.asarray(goal - d.qvel[arm.dof], jnp.float32), memory)
        tau, memory = torques(dj, jnp.asarray(goal, jnp.float32))
        np.testing.assert_allclose(pid, want_pid, rtol=1e-4, atol=2e-3, err_msg=str(k))
        np.testing.assert_allclose(tau, want, rtol=1e-4, atol=2e-3, err_msg=str(k))
        np.testing.assert_allclose(memory[0:7], ref.summed_err, rtol=1e-4, atol=1e-4, err_msg=str(k))
        np.testing.assert_allclose(memory[7:14], ref.last_err, rtol=1e-5, atol=1e-5, err_msg=str(k))
        assert bool(memory[-1]) == ref.saturated, k
        saturated.append(ref.saturated)
    assert any(saturated) and not all(saturated)  # both branches of the anti-windup were exercised


def test_joint_velocity_tracks_commanded_velocities_in_mjx():
    """MJX dynamics of the lone arm at the rest posture: 0.2 s (4 control steps, 40 sub-steps) of
    one joint_velocity action; every joint is within 10% of its target (+-0.5 rad/s x action),
    held ones within 0.02 rad/s, and the PID memory in ``d.userdata`` is what the sub-steps
    summed. The previous law, ``M 3 (qdot* - qdot)``, reached about half the target by then."""
    mm, m, arm = bare_arm(ctl.PID_STATE_SIZE)
    d = mujoco.MjData(mm)
    d.qpos[arm.qpos] = robots.HOME_QPOS
    d.qpos[arm.finger_qpos] = robots.FINGER_TRAVEL
    mujoco.mj_forward(mm, d)
    action = jnp.array([0.6, -0.4, 0.0, -0.6, 0.8, 1.0, -1.0, -1.0])

    @jax.jit
    def run(d):
        goal = ctl.set_goal("joint_velocity", arm, m, d, action)

        def sub(d, _):
            d = physics.step(m, ctl.apply("joint_velocity", arm, m, d, goal))
            return d, goal["qdot"] - d.qvel[arm.dof]

        return jax.lax.scan(sub, d, None, length=40)

    d, errs = run(mjx.put_data(mm, d, impl="jax"))
    target = 0.5 * np.asarray(action[:7])
    qvel = np.asarray(d.qvel[arm.dof])
    assert np.all(np.abs(qvel - target) <= 0.1 * np.abs(target) + 0.02), (qvel, target)
    assert np.all(np.abs(qvel[target != 0] / target[target != 0] - 1) < 0.1), (qvel, target)
    # the memory carried in d.userdata: the errors the controller saw before each sub-step (the
    # target itself at the first, the arm starting at rest; none of these torques saturates)
    seen = np.concatenate([target[None], np.asarray(errs[:-1])])
    memory = np.asarray(d.userdata)
    np.testing.assert_allclose(memory[0:7], seen.sum(0), atol=1e-4)
    np.testing.assert_allclose(memory[7:14], seen[-1], atol=1e-6)
    np.testing.assert_allclose(memory[14:14 + 35].reshape(5, 7), np.diff(seen[-6:], axis=0)[::-1], atol=1e-6)
    assert memory[-2] == 5 and memory[-1] == 0


# --------------------------------------------------------------------------- scenes
def test_scene_reproducible_by_seed_and_placements():
    a, b, c = Lift(seed=3), Lift(seed=3), Lift(seed=4)
    g = a.mj_model.geom("cube_geom").id
    np.testing.assert_array_equal(a.mj_model.geom_rgba, b.mj_model.geom_rgba)
    assert not np.allclose(a.mj_model.geom_rgba[g], c.mj_model.geom_rgba[g])
    assert a.spec.to_xml() == b.spec.to_xml()
    xy = jax.vmap(lambda k: table.sample_placements(k, 4, (-0.2, 0.2), (-0.2, 0.2), [0.05, 0.05, 0.04, 0.03]))(
        jax.random.split(jax.random.PRNGKey(0), 64))
    xy = np.asarray(xy)
    radii = np.array([0.05, 0.05, 0.04, 0.03])
    for i in range(4):
        for j in range(i):
            assert np.all(np.linalg.norm(xy[:, i] - xy[:, j], axis=-1) >= radii[i] + radii[j] - 1e-6)
    assert np.all(np.abs(xy) <= 0.2)


def test_resets_are_per_env_and_reproducible(lift):
    keys = jax.random.split(jax.random.PRNGKey(5), 3)
    s1, s2 = lift.reset(keys), lift.reset(keys)
    np.testing.assert_array_equal(np.asarray(s1.obs), np.asarray(s2.obs))
    cube = np.asarray(s1.obs[:, 32:35])
    assert len({tuple(c.round(5)) for c in cube}) == 3  # each env draws its own cube
    assert np.all(np.abs(cube[:, :2]) <= 0.03 + 1e-6)
    half = np.asarray(s1.info["object"]["half_size"])
    assert np.all((half >= 0.02) & (half <= 0.022))
    np.testing.assert_allclose(cube[:, 2], table.TABLE_TOP + half, atol=1e-5)


# --------------------------------------------------------------------------- OSC
def test_osc_moves_grasp_site_to_target(lift):
    """OSC_POSE: a 0.1-0.15 m position target and a 0.4 rad turn about z; commanding
    ``(target - x) / 0.05`` each 20 Hz step shrinks the position error >= 10x and the rotation
    error >= 5x within 30 steps (1.5 s)."""
    env = lift.env
    state = lift.reset(jax.random.split(jax.random.PRNGKey(0), 2))
    start = np.asarray(state.obs[:, scripted.POS])
    target = start + np.array([[0.1, -0.1, -0.05], [-0.05, 0.1, 0.08]])
    rot0 = np.asarray(jax.vmap(scripted.quat_to_mat)(state.obs[:, scripted.QUAT]))
    turn = np.asarray(ctl.axis_angle_to_matrix(jnp.array([0.0, 0.0, 0.4])))
    goal_rot = turn @ rot0
    pos_err0 = np.linalg.norm(target - start, axis=-1)
    for _ in range(30):
        pos = np.asarray(state.obs[:, scripted.POS])
        rot = np.asarray(jax.vmap(scripted.quat_to_mat)(state.obs[:, scripted.QUAT]))
        ori = np.stack([np.asarray(ctl.orientation_error(jnp.asarray(g), jnp.asarray(r))) for g, r in zip(goal_rot, rot)])
        action = np.concatenate([np.clip((target - pos) / 0.05, -1, 1), np.clip(ori / 0.5, -1, 1), -np.ones((2, 1))], 1)
        state = lift.step(state, jnp.asarray(action, jnp.float32))
    pos = np.asarray(state.obs[:, scripted.POS])
    rot = np.asarray(jax.vmap(scripted.quat_to_mat)(state.obs[:, scripted.QUAT]))
    assert np.all(np.linalg.norm(target - pos, axis=-1) < pos_err0 / 10), (target - pos, pos_err0)
    angle = [np.arccos(np.clip((np.trace(g @ r.T) - 1) / 2, -1, 1)) for g, r in zip(goal_rot, rot)]
    assert np.all(np.array(angle) < 0.4 / 5), angle
    assert env.dt == pytest.approx(0.05)


# --------------------------------------------------------------------------- lift
def test_lift_success_on_hand_placed_states(lift):
    env = lift.env
    adr = env.cube_qpos
    for dz, want in ((0.045, True), (0.035, False), (0.041, True), (0.039, False)):
        pose = np.array([0.0, 0.0, table.TABLE_TOP + dz, 1, 0, 0, 0])
        d = c_data(env, extra={adr: pose})
        reward, success, _ = run_eval(lift, d, LIFT_PARAMS)
        assert bool(success) == want, dz
        if want:
            assert float(reward) == pytest.approx(1.0)  # 2.25 normalised by 2.25


def lift_reference(env, d) -> float:
    """NumPy transcription of robosuite's Lift reward (shaped, normalised), from C data."""
    m = env.mj_model
    cube = d.xpos[m.body("cube").id]
    if cube[2] > table.TABLE_TOP + 0.04:
        return 1.0
    grip = d.site_xpos[m.site("robot0_grip_site").id]
    g = m.geom("cube_geom").id
    grasp = all(any(c_touching(m, d, int(p), g) for p in side) for side in env.pads)
    return (1 - np.tanh(10 * np.linalg.norm(grip - cube)) + 0.25 * grasp) / 2.25


def test_lift_shaped_reward_matches_numpy(lift):
    env = lift.env
    rng = np.random.default_rng(2)
    home = np.array(robots.HOME_QPOS)
    grasps = 0
    for i in range(8):
        q = home + rng.uniform(-0.3, 0.3, 7)
        d0 = c_data(env, q)
        grip = d0.site_xpos[env.arm.site].copy()
        hand_quat = np.zeros(4)
        mujoco.mju_mat2Quat(hand_quat, d0.site_xmat[env.arm.site])
        if i % 2 == 0:  # the cube between the fingers, aligned with the hand, squeezed by 1 mm: a grasp
            pose = np.concatenate([grip, hand_quat])
            d = c_data(env, q, fingers=0.02, extra={env.cube_qpos: pose})
        else:
            pos = np.array([*rng.uniform(-0.1, 0.1, 2), table.TABLE_TOP + 0.021])
            d = c_data(env, q, extra={env.cube_qpos: np.concatenate([pos, [1, 0, 0, 0]])})
        ref = lift_reference(env, d)
        grasps += all(any(c_touching(env.mj_model, d, int(p), env.cube_geom) for p in side) for side in env.pads)
        reward, _, obs = run_eval(lift, d, LIFT_PARAMS)
        assert float(reward) == pytest.approx(ref, abs=1e-4), i
        np.testing.assert_allclose(np.asarray(obs[21:24]), d.site_xpos[env.arm.site], atol=1e-5)
    assert grasps == 4  # the grasp bonus was exercised
    sparse = Lift(reward_shaping=False)
    assert sparse.max_reward == 2.25


# --------------------------------------------------------------------------- door
def door_state(env, hinge=0.0, handle=0.0, q=robots.HOME_QPOS):
    """C data with the door frame moved (in a copy of the model) and the matching params."""
    pos = np.array([0.07, -0.14, table.TABLE_TOP])
    yaw = -0.1
    quat = np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)])
    model = env.mj_model
    saved = model.body_pos[env.frame_body].copy(), model.body_quat[env.frame_body].copy()
    model.body_pos[env.frame_body], model.body_quat[env.frame_body] = pos, quat
    try:
        d = c_data(env, q, extra={env.hinge_qpos: hinge, env.handle_qpos: handle})
    finally:
        model.body_pos[env.frame_body], model.body_quat[env.frame_body] = saved
    return d, {"pos": jnp.asarray(pos, jnp.float32), "quat": jnp.asarray(quat, jnp.float32)}


def door_reference(env, d) -> float:
    m = env.mj_model
    hinge, handle = d.qpos[env.hinge_qpos], d.qpos[env.handle_qpos]
    if hinge > 0.3:
        return 1.0
    dist = np.linalg.norm(d.site_xpos[m.site("robot0_grip_site").id] - d.site_xpos[m.site("door_handle").id])
    return 0.25 * (1 - np.tanh(10 * dist)) + np.clip(0.25 * abs(handle / (np.pi / 2)), -0.25, 0.25)


def test_door_success_and_shaped_reward(door):
    env = door.env
    for hinge, want in ((0.31, True), (0.29, False), (0.6, True), (0.0, False)):
        d, params = door_state(env, hinge)
        reward, success, _ = run_eval(door, d, params)
        assert bool(success) == want
        assert float(reward) == pytest.approx(door_reference(env, d), abs=1e-5)
    rng = np.random.default_rng(3)
    for _ in range(6):
        q = np.array(robots.HOME_QPOS) + rng.uniform(-0.4, 0.4, 7)
        d, params = door_state(env, rng.uniform(0, 0.29), rng.uniform(0, 1.5), q)
        reward, _, obs = run_eval(door, d, params)
        assert float(reward) == pytest.approx(door_reference(env, d), abs=1e-5)
        np.testing.assert_allclose(np.asarray(obs[35:38]), d.site_xpos[env.handle_site], atol=1e-5)


def test_reset_without_the_solver_steps_like_a_full_forward(lift, monkeypatch):
    """``reset`` runs only ``physics.forward_positions``; the first step from it matches the
    first step from the same state after a full ``mjx.forward`` (float32 rounding)."""
    from vasa.envs.tasks.manipulation import base

    keys = jax.random.split(jax.random.PRNGKey(21), 4)
    cheap = lift.reset(keys)
    monkeypatch.setattr(base.physics, "forward_positions", base.physics.forward)
    full = jax.jit(jax.vmap(lift.env.reset))(keys)
    np.testing.assert_array_equal(np.asarray(cheap.obs), np.asarray(full.obs))
    action = jax.random.uniform(jax.random.PRNGKey(22), (4, lift.env.action_spec.shape[0]), minval=-1, maxval=1)
    a, b = lift.step(cheap, action), lift.step(full, action)
    np.testing.assert_allclose(np.asarray(a.obs), np.asarray(b.obs), atol=1e-5)
    np.testing.assert_allclose(np.asarray(a.physics.qvel), np.asarray(b.physics.qvel), atol=1e-4)
    assert np.abs(np.asarray(a.obs) - np.asarray(cheap.obs)).max() > 1e-3  # the step moved things


def test_door_latch_holds_until_the_handle_turns(door):
    """MuJoCo C geometry: with the handle up the bolt meets the strike within a few hundredths
    of a radian of opening; turned by 0.5 rad it clears for the whole 0-0.4 rad sweep (robosuite's
    latch: the handle must be pushed down before the door swings)."""
    m = door.env.mj_model
    d = mujoco.MjData(m)
    bolt, strike = m.geom("door_bolt").id, m.geom("door_strike").id
    handle, hinge = (m.jnt_qposadr[m.joint(n).id] for n in ("door_handle", "door_hinge"))

    def first_blocked(turn):
        for angle in np.linspace(0.0, 0.4, 81):
            d.qpos[:] = m.qpos0
            d.qpos[handle], d.qpos[hinge] = turn, angle
            mujoco.mj_forward(m, d)
            if mujoco.mj_geomDistance(m, d, bolt, strike, 0.1, np.zeros(6)) < 0:
                return angle
        return None

    for turn in (0.0, 0.2, 0.4):
        assert first_blocked(turn) is not None and first_blocked(turn) < 0.1, turn
    for turn in (0.5, 0.8, 1.5):
        assert first_blocked(turn) is None, turn


def test_door_latch_holds_under_the_doors_own_solver(door):
    """The same rule in MJX dynamics with the door's lighter solve (3 Newton, 4 line-search
    iterations): pulled open by 5 or 10 N m at the hinge for 1 s (gravity off, so only the
    applied torques act), the door stays within the bolt's play (< 0.06 rad, far below the
    0.3 rad of success) with the handle up, and swings to its 1.2 rad stop with the handle held
    turned (1 N m against its 1 N m/rad spring)."""
    env = door.env
    assert env.mj_model.opt.iterations == 3 and env.mj_model.opt.ls_iterations == 4
    mj = env.mj_model
    m = env.mjx_model.replace(opt=env.mjx_model.opt.replace(gravity=jnp.zeros(3)))
    dof = {n: int(mj.jnt_dofadr[mj.joint(n).id]) for n in ("door_hinge", "door_handle")}
    adr = {n: int(mj.jnt_qposadr[mj.joint(n).id]) for n in ("door_hinge", "door_handle")}

    @jax.jit
    @jax.vmap
    def hinge_after(pull, turn):
        f = jnp.zeros(mj.nv).at[dof["door_hinge"]].set(pull).at[dof["door_handle"]].set(turn)
        d = env._data0.replace(qfrc_applied=f)
        d, hinge = jax.lax.scan(lambda d, _: (physics.step(m, d), d.qpos[adr["door_hinge"]]), d, None, length=200)
        return hinge.max(), d.qpos[adr["door_hinge"]], d.qpos[adr["door_handle"]]

    peak, final, handle = map(np.asarray, hinge_after(jnp.array([5.0, 10.0, 5.0]), jnp.array([0.0, 0.0, 1.0])))
    assert (peak[:2] < 0.06).all() and (handle[:2] < 0.3).all(), (peak, handle)
    assert final[2] > 1.1 and handle[2] > 0.5, (final, handle)


# --------------------------------------------------------------------------- scripted controllers
def test_scripted_lift_succeeds(lift):
    _, success = lift.rollout(scripted.lift_policy, jax.random.split(jax.random.PRNGKey(11), 4), 80)
    assert success[-1].all(), success.sum(0)


@pytest.mark.slow
def test_scripted_door_succeeds(door):
    # 120 control steps (6 s; robosuite's horizon is 500): 32/32 draws of this key succeed by then,
    # 21/32 by step 80 (MJX's LAPACK and pure-JAX Cholesky alike)
    _, success = door.rollout(scripted.door_policy, jax.random.split(jax.random.PRNGKey(12), 4), 120)
    assert success[-1].all(), success.sum(0)


def test_pixels_wrapper_builds():
    import vasa.envs

    env = vasa.envs.make("robo/lift", pixels=True, camera="agentview", image_size=32)
    assert env.observation_spec["pixels"].shape == (32, 32, 9)
    assert env.observation_spec["proprio"].shape == (42,)
    env = vasa.envs.make("robo/door", pixels=True, camera="eye_in_hand", image_size=32)
    assert env.action_spec.shape == (7,)
