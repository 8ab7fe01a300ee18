"""Two-arm Robotics Suite tasks (issue 19): ``robo/two_arm_lift`` and ``robo/two_arm_peg_in_hole``.

References are independent of the code under test: MuJoCo's C ``mj_forward`` (poses,
contacts) on hand-placed states, and NumPy transcriptions of robosuite's TwoArmLift reward and
TwoArmPegInHole ``_compute_orientation``/reward. Environments are few (2) and horizons short;
compiled functions are shared through module-scoped fixtures.
"""

from __future__ import annotations

import math
import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false").strip()

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from vasa.envs.scenes import robots, table
from vasa.envs.tasks.manipulation import control as ctl
from vasa.envs.tasks.manipulation import scripted_two_arm
from vasa.envs.tasks.manipulation.two_arm_lift import TwoArmLift
from vasa.envs.tasks.manipulation.two_arm_peg_in_hole import (
    TwoArmPegInHole,
    peg_orientation,
)


class Compiled:
    """A task with jitted batched reset/step and an unbatched ``evaluate(qpos, params)``."""

    def __init__(self, env):
        self.env = env
        self.reset = jax.jit(jax.vmap(env.reset))
        self.step = jax.jit(jax.vmap(env.step))

        def evaluate(qpos, params):
            d = mjx.forward(env._model_for(params), env._data0.replace(qpos=qpos))
            reward, success = env.reward_and_success(d, params)
            return reward, success, env.observe(d, params), d

        self.evaluate = jax.jit(evaluate)

    def run(self, d, params):
        """``(reward, success, obs)`` of the C state ``d``'s ``qpos``."""
        return self.evaluate(jnp.asarray(d.qpos, jnp.float32), params)[:3]


@pytest.fixture(scope="module")
def lift2():
    return Compiled(TwoArmLift())


@pytest.fixture(scope="module")
def peg():
    return Compiled(TwoArmPegInHole())


def c_data(env, qs, fingers=robots.FINGER_TRAVEL, extra=None):
    """MuJoCo C data after ``mj_forward``: arm ``i`` at ``qs[i]``, ``extra`` ``{qpos addr: value}``."""
    m = env.mj_model
    d = mujoco.MjData(m)
    for arm, q in zip(env.arms, qs):
        d.qpos[arm.qpos] = q
        d.qpos[arm.finger_qpos] = fingers
    for adr, value in (extra or {}).items():
        d.qpos[adr:adr + np.size(value)] = value
    mujoco.mj_forward(m, d)
    return d


def c_touching(d, g1, g2) -> bool:
    return any({int(c.geom1), int(c.geom2)} == {g1, g2} and c.dist <= 0 for c in d.contact[:d.ncon])


def c_grasp(env, d, arm, geoms) -> bool:
    return all(any(c_touching(d, int(p), int(g)) for p in side for g in geoms) for side in env.arm_pads[arm])


def quat_z(yaw):
    return np.array([math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)])


POT_PARAMS = {"mass": jnp.float32(0.9)}
HOME = np.array(robots.HOME_QPOS)


# --------------------------------------------------------------------------- layout
def test_sizes_cameras_and_registry():
    import vasa.envs

    lift, peg = TwoArmLift(), TwoArmPegInHole()
    assert lift.action_spec.shape == (14,) and lift.observation_spec.shape == (83,)
    assert peg.action_spec.shape == (14,) and peg.observation_spec.shape == (81,)
    jv = TwoArmLift(control="joint_velocity")
    assert jv.action_spec.shape == (16,)
    # joint_velocity's PID memory: one block per arm in d.userdata (none in the other modes)
    assert jv.mj_model.nuserdata == 2 * ctl.PID_STATE_SIZE and lift.mj_model.nuserdata == 0
    assert [arm.state_adr for arm in jv.arms] == [0, ctl.PID_STATE_SIZE]
    for env in (lift, peg):
        cams = {env.mj_model.camera(i).name for i in range(env.mj_model.ncam)}
        assert {"agentview", "eye_in_hand", "robot1_eye_in_hand"} <= cams
        assert env.mj_model.nu == 18 and len(env.arms) == 2
        # opposed: the arm bases sit on either side of the table, facing each other
        base = [env.mj_model.body(f"robot{i}_link0") for i in range(2)]
        assert base[0].pos[1] < -0.5 and base[1].pos[1] > 0.5
    with pytest.raises(ValueError, match=r"control='x'"):
        TwoArmLift(control="x")
    env = vasa.envs.make("robo/two_arm_lift", pixels=True, camera="robot1_eye_in_hand", image_size=32)
    assert env.action_spec.shape == (14,)
    assert env.observation_spec["proprio"].shape == (83,)
    env = vasa.envs.make("robo/two_arm_peg_in_hole", pixels=True, camera="agentview", image_size=32)
    assert env.observation_spec["proprio"].shape == (81,)


@pytest.mark.slow
def test_arms_move_independently(lift2):
    """An OSC action for one arm moves that arm's grasp site, not the other's; the observation
    holds robot0's then robot1's proprioception (checked against the physics state)."""
    state = lift2.reset(jax.random.split(jax.random.PRNGKey(0), 2))
    start = np.asarray(state.obs)
    action = np.zeros((2, 14), np.float32)
    action[:, [6, 13]] = -1.0  # grippers open
    action[0, 0] = 1.0  # env 0: robot0 +x
    action[1, 7 + 2] = 1.0  # env 1: robot1 +z
    for _ in range(3):
        state = lift2.step(state, jnp.asarray(action))
    obs = np.asarray(state.obs)
    moved = obs - start
    assert moved[0, 21] > 0.02 and np.linalg.norm(moved[0, 32 + 21:32 + 24]) < 0.004, moved[0, [21, 53, 54, 55]]
    assert moved[1, 32 + 23] > 0.02 and np.linalg.norm(moved[1, 21:24]) < 0.004, moved[1, [55, 21, 22, 23]]
    d = state.physics
    for i, arm in enumerate(lift2.env.arms):
        np.testing.assert_allclose(obs[:, 32 * i + 21:32 * i + 24], np.asarray(d.site_xpos[:, arm.site]), atol=1e-5)
        np.testing.assert_allclose(obs[:, 32 * i + 28:32 * i + 30], np.asarray(d.qpos[:, arm.finger_qpos]), atol=1e-6)


# --------------------------------------------------------------------------- two_arm_lift
def tilt_quat(yaw, tilt):
    """Yaw about z, then a tilt about the world x axis."""
    qx = np.array([math.cos(tilt / 2), math.sin(tilt / 2), 0, 0])
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, qx, quat_z(yaw))
    return out


def test_two_arm_lift_success_on_hand_placed_states(lift2):
    env = lift2.env
    rest = table.TABLE_TOP + 0.07  # pot centre resting on the table
    for dz, tilt, want in ((0.15, 0.0, True), (0.11, 0.0, True), (0.09, 0.0, False), (0.15, 0.2, True),
                           (0.15, 0.6, False), (0.05, 0.0, False)):
        pose = np.concatenate([[0.01, -0.02, rest + dz], tilt_quat(math.pi, tilt)])
        d = c_data(env, [HOME, HOME], extra={env.pot_qpos: pose})
        reward, success, _ = lift2.run(d, POT_PARAMS)
        assert bool(success) == want, (dz, tilt)
        if want:
            assert float(reward) == pytest.approx(1.0)  # 3.0 normalised by 3.0
        elif dz > 0.1:  # lifted but tilted: robosuite pays 3.0 * 0
            assert float(reward) == pytest.approx(0.0)


def lift_reference(env, d) -> float:
    """NumPy transcription of robosuite's TwoArmLift reward (shaped, normalised) from C data."""
    m = env.mj_model
    body = m.body("pot").id
    z = d.xmat[body].reshape(3, 3) @ np.array([0, 0, 1.0])
    coef = 1.0 if z[2] >= np.cos(np.pi / 6) else 0.0
    bottom = d.site_xpos[m.site("pot_center").id][2] - 0.07
    if bottom > table.TABLE_TOP + 0.10:
        return 3.0 * coef / 3.0
    reward = 10.0 * coef * min(max(bottom - table.TABLE_TOP - 0.05, 0), 0.15)
    for i in range(2):
        grip = d.site_xpos[m.site(f"robot{i}_grip_site").id]
        handle = d.site_xpos[m.site(f"pot_handle{i}_site").id]
        reward += 0.25 * c_grasp(env, d, i, [m.geom(f"pot_handle{i}").id])
        reward += 0.5 * (1 - np.tanh(10.0 * np.linalg.norm(grip - handle)))
    return reward / 3.0


def test_two_arm_lift_staged_reward_matches_numpy(lift2):
    env = lift2.env
    rng = np.random.default_rng(4)
    grasps = [0, 0]
    handle_in_pot = ((0.0, 0.16, 0.06), (0.0, -0.16, 0.06))
    for i in range(9):
        qs = [HOME + rng.uniform(-0.3, 0.3, 7) for _ in range(2)]
        arm = i % 3
        if arm < 2:  # arm ``arm``'s handle bar between its fingers, along the hand's x axis, squeezed 1 mm
            d0 = c_data(env, qs)
            a = env.arms[arm]
            grip, hand = d0.site_xpos[a.site].copy(), d0.site_xmat[a.site].reshape(3, 3)
            rot = np.stack([hand[:, 0], -hand[:, 1], -hand[:, 2]], axis=1)  # pot x, y, z
            quat = np.zeros(4)
            mujoco.mju_mat2Quat(quat, rot.reshape(-1))
            pos = grip - rot @ np.array(handle_in_pot[arm])
            d = c_data(env, qs, fingers=0.009, extra={env.pot_qpos: np.concatenate([pos, quat])})
        else:
            pos = [*rng.uniform(-0.03, 0.03, 2), table.TABLE_TOP + 0.07 + rng.uniform(0.0, 0.12)]
            d = c_data(env, qs, extra={env.pot_qpos: np.concatenate([pos, tilt_quat(rng.uniform(2.5, 3.8),
                                                                                     rng.uniform(-0.7, 0.7))])})
        for k in range(2):
            grasps[k] += c_grasp(env, d, k, [env.mj_model.geom(f"pot_handle{k}").id])
        reward, _, obs = lift2.run(d, POT_PARAMS)
        assert float(reward) == pytest.approx(lift_reference(env, d), abs=1e-4), i
        m = env.mj_model
        np.testing.assert_allclose(np.asarray(obs[64:67]), d.xpos[m.body("pot").id], atol=1e-5)
        h0 = d.site_xpos[m.site("pot_handle0_site").id]
        np.testing.assert_allclose(np.asarray(obs[77:80]), h0 - d.site_xpos[env.arms[0].site], atol=1e-5)
    assert grasps[0] >= 3 and grasps[1] >= 3, grasps  # the grasp bonus of each arm was exercised


def test_resets_draw_pot_per_env(lift2):
    """The pot's per-environment draws (the reset's object part, without the arm's forward pass)."""
    env = lift2.env
    d, params = jax.jit(jax.vmap(lambda k: env._init_objects(k, env._data0)))(jax.random.split(jax.random.PRNGKey(3), 8))
    pot = np.asarray(d.qpos[:, env.pot_qpos:env.pot_qpos + 7])
    assert np.all(np.abs(pot[:, :2]) <= 0.03 + 1e-6) and len({tuple(p.round(6)) for p in pot}) == 8
    np.testing.assert_allclose(pot[:, 2], table.TABLE_TOP + 0.07, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pot[:, 3:], axis=1), 1.0, atol=1e-6)
    yaw = 2 * np.arctan2(pot[:, 6], pot[:, 3])
    assert np.all(np.abs(np.mod(yaw, 2 * np.pi) - np.pi) <= 0.3 + 1e-5)
    mass = np.asarray(params["mass"])
    assert np.all((mass >= 0.6) & (mass <= 1.2)) and len(set(mass.tolist())) == 8
    m = env._model_for({"mass": jnp.float32(1.2)})
    assert float(m.body_mass[env.pot_body]) == pytest.approx(1.2)
    np.testing.assert_allclose(np.asarray(m.body_inertia[env.pot_body]),
                               env.mj_model.body_inertia[env.pot_body] * 1.2 / env.nominal_mass, rtol=1e-5)


# --------------------------------------------------------------------------- peg in hole
def orientation_reference(peg_pos, peg_mat, hole_pos, hole_mat):
    """NumPy transcription of robosuite's ``_compute_orientation``."""
    v = peg_mat @ np.array([0, 0, 1.0])
    v = v / np.linalg.norm(v)
    center = hole_pos + hole_mat @ np.array([0.1, 0, 0])
    t = (center - peg_pos) @ v / (np.linalg.norm(v) ** 2)
    d = np.linalg.norm(np.cross(v, peg_pos - center)) / np.linalg.norm(v)
    normal = hole_mat @ np.array([0, 0, 1.0])
    return t, d, abs(np.dot(normal, v) / np.linalg.norm(normal) / np.linalg.norm(v))


def peg_reward_reference(peg_pos, peg_mat, hole_pos, hole_mat, shaping=True):
    t, d, cos = orientation_reference(peg_pos, peg_mat, hole_pos, hole_mat)
    success = d < 0.06 and -0.12 <= t <= 0.14 and cos > 0.95
    reward = 1.0 if success else 0.0
    if shaping:
        reward += 1 - np.tanh(np.linalg.norm(peg_pos - hole_pos)) + 1 - np.tanh(d) + 1 - np.tanh(abs(t)) + cos
    else:
        reward *= 5.0
    return reward / 5.0, success


def random_rotation(rng):
    q = rng.normal(size=4)
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, q / np.linalg.norm(q))
    return m.reshape(3, 3)


def test_peg_orientation_and_success_against_numpy():
    rng = np.random.default_rng(5)
    successes = 0
    f = jax.jit(peg_orientation)
    for i in range(40):
        hole_pos, hole_mat = rng.normal(size=3) * 0.3, random_rotation(rng)
        center = hole_pos + hole_mat @ np.array([0.1, 0, 0])
        if i % 2:  # near the hole, nearly along its normal: both sides of every threshold
            axis = hole_mat[:, 2] * rng.choice([-1, 1]) + rng.normal(size=3) * 0.25
            axis /= np.linalg.norm(axis)
            perp = np.cross(axis, rng.normal(size=3))
            perp /= np.linalg.norm(perp)
            peg_pos = center - axis * rng.uniform(-0.2, 0.2) + perp * rng.uniform(0, 0.09)
            z = np.array([0, 0, 1.0])
            r = np.cross(z, axis)
            angle = math.atan2(np.linalg.norm(r), z @ axis)
            q = np.zeros(4)
            mujoco.mju_axisAngle2Quat(q, r / (np.linalg.norm(r) + 1e-12), angle)
            m = np.zeros(9)
            mujoco.mju_quat2Mat(m, q)
            spin = np.zeros(9)
            mujoco.mju_quat2Mat(spin, quat_z(rng.uniform(0, 2 * np.pi)))
            peg_mat = m.reshape(3, 3) @ spin.reshape(3, 3)  # any turn about the peg's own axis
        else:
            peg_pos, peg_mat = rng.normal(size=3) * 0.3, random_rotation(rng)
        ref = orientation_reference(peg_pos, peg_mat, hole_pos, hole_mat)
        got = f(*(jnp.asarray(x, jnp.float32) for x in (peg_pos, peg_mat, hole_pos, hole_mat)))
        np.testing.assert_allclose(np.array(got, np.float64), ref, atol=2e-5)
        ok = ref[1] < 0.06 and -0.12 <= ref[0] <= 0.14 and ref[2] > 0.95
        successes += ok
    assert 3 <= successes <= 17, successes  # success and failure near the hole were both exercised


def peg_poses(env, d):
    m = env.mj_model
    peg, hole = m.body("peg").id, m.body("hole").id
    return d.xpos[peg], d.xmat[peg].reshape(3, 3), d.xpos[hole], d.xmat[hole].reshape(3, 3)


def test_peg_in_hole_env_matches_numpy():
    """The task's observation, shaped and sparse rewards of MuJoCo C states (the task's pure
    JAX functions read ``xpos``/``xmat``/``site_xpos`` alike from C and MJX data)."""
    env, sparse = TwoArmPegInHole(), TwoArmPegInHole(reward_shaping=False, reward_scale=2.0)
    m = env.mj_model
    rng = np.random.default_rng(6)
    params = {"peg_radius": jnp.float32(0.02)}
    for _ in range(6):
        d = c_data(env, [HOME + rng.uniform(-0.6, 0.6, 7) for _ in range(2)])
        poses = peg_poses(env, d)
        t, dist, cos = orientation_reference(*poses)
        obs = np.asarray(env.observe(d, params))
        assert obs.shape == (81,)
        np.testing.assert_allclose(obs[-3:], [cos, t, dist], atol=2e-5)
        np.testing.assert_allclose(obs[64:67], poses[2], atol=1e-6)
        np.testing.assert_allclose(obs[71:74], poses[2] - poses[0], atol=1e-6)
        np.testing.assert_allclose(obs[32 + 21:32 + 24], d.site_xpos[env.arms[1].site], atol=1e-6)
        reward, success = env.reward_and_success(d, params)
        ref, ok = peg_reward_reference(*poses)
        assert float(reward) == pytest.approx(ref, abs=1e-5) and bool(success) == ok
        assert float(sparse.reward_and_success(d, params)[0]) == pytest.approx(2.0 * ok)
    # the peg rides in robot0's hand, the plate in robot1's (welded, as robosuite attaches them)
    assert m.body_parentid[m.body("peg").id] == m.body("robot0_hand").id
    assert m.body_parentid[m.body("hole").id] == m.body("robot1_hand").id
    # only the peg and the plate's boxes collide with each other (bit 8)
    for g in [m.geom("peg_geom").id] + [m.geom(f"hole_box{i}").id for i in range(4)]:
        others = [h for h in range(m.ngeom) if h != g and (m.geom_contype[g] & m.geom_conaffinity[h] or
                                                            m.geom_contype[h] & m.geom_conaffinity[g])]
        assert {m.geom(h).name for h in others} <= {"peg_geom", "hole_box0", "hole_box1", "hole_box2", "hole_box3"}


@pytest.mark.slow
def test_peg_in_hole_mjx_matches_c(peg):
    """MJX's forward pass of the welded peg and plate (per-env peg radius swapped into the model)."""
    env = peg.env
    rng = np.random.default_rng(7)
    for radius in (0.015, 0.03):
        d = c_data(env, [HOME + rng.uniform(-0.6, 0.6, 7) for _ in range(2)])
        params = {"peg_radius": jnp.float32(radius)}
        reward, _, obs = peg.run(d, params)
        np.testing.assert_allclose(np.asarray(obs), np.asarray(env.observe(d, params)), atol=1e-4)
        assert float(reward) == pytest.approx(peg_reward_reference(*peg_poses(env, d))[0], abs=1e-4)
        assert float(env._model_for(params).geom_size[env.peg_geom, 0]) == pytest.approx(radius)


# --------------------------------------------------------------------------- scripted
@pytest.mark.slow
def test_scripted_two_arm_lift_succeeds(lift2):
    state = lift2.reset(jax.random.split(jax.random.PRNGKey(21), 2))
    policy = jax.jit(jax.vmap(scripted_two_arm.two_arm_lift_policy))
    for _ in range(70):
        state = lift2.step(state, policy(state.obs))
    assert np.all(np.asarray(state.metrics["success"]) == 1), np.asarray(state.obs[:, 64:67])


@pytest.mark.slow
def test_scripted_peg_in_hole_mostly_succeeds(peg):
    """The optional peg-in-hole script: measured 20/24 on random initial states (see
    :mod:`vasa.envs.tasks.manipulation.scripted_two_arm`); at least 3 of 4 here."""
    state = peg.reset(jax.random.split(jax.random.PRNGKey(2), 4))
    policy = jax.jit(jax.vmap(scripted_two_arm.peg_in_hole_policy))
    for _ in range(80):
        state = peg.step(state, policy(state.obs))
    assert np.asarray(state.metrics["success"]).sum() >= 3, np.asarray(state.obs[:, 78:81])

