"""nav/objectnav (lamp ObjectNav, RGB only), SECANT's navigation protocol and make()'s
image_size forwarding to tasks that own their cameras. Tiny images (32x32), one-room
apartments without furniture, 2 episodes per room."""

import csv

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import vasa.envs
from vasa.envs.scenes.apartment import HELDOUT_SEED_OFFSET
from vasa.envs.tasks.navigation.objectnav import (
    ObjectNav,
    approach_lamp_policy,
    spin_policy,
    success_counter,
)
from vasa.envs.tasks.navigation.protocol import (
    COLUMNS,
    protocol_env,
    room_appearance,
    secant_protocol,
)

TINY = {"rows": 1, "cols": 1, "furniture_per_room": 0, "image_size": 32}
STEPS = 120


def numpy_counter(fractions, threshold=0.05, needed=10):
    """Reference: consecutive steps above the threshold, and the first step (1-based) at
    which they reach ``needed`` (None if never)."""
    counts, run, first = [], 0, None
    for i, f in enumerate(fractions):
        run = run + 1 if f > threshold else 0
        counts.append(run)
        if first is None and run >= needed:
            first = i + 1
    return np.array(counts), first


def test_success_counter_hand_worked_sequence():
    fractions = jnp.array([0.06] * 9 + [0.01] + [0.06] * 10 + [0.05, 0.07], jnp.float32)

    def body(count, f):
        count, success = success_counter(count, f)
        return count, (count, success)

    _, (counts, success) = jax.lax.scan(body, jnp.zeros((), jnp.int32), fractions)
    want = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0] + list(range(1, 11)) + [0, 1]  # 0.05 is not > 5%
    np.testing.assert_array_equal(np.asarray(counts), want)
    success = np.asarray(success)
    assert np.flatnonzero(success).tolist() == [19]  # exactly at the 20th step, not at the 9th
    assert numpy_counter(np.asarray(fractions))[1] == 20


@pytest.fixture(scope="module")
def proto():
    """The protocol's env (1 train + 1 easy + 1 hard room) and an oracle run of it."""
    env, rooms = protocol_env(num_easy=1, num_hard=1, **TINY)
    res = secant_protocol(approach_lamp_policy, jax.random.PRNGKey(0), episodes=2, max_steps=STEPS,
                          policy_needs_env=True, env=env, rooms=rooms)
    return env, rooms, res


def test_fraction_is_numpy_count_on_the_same_render(proto):
    env, rooms, _ = proto
    m = env.mj_model
    lamp = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "lamp0")
    lamp_geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] == lamp]
    assert len(lamp_geoms) == 3  # base, pole, shade
    lamp_xy = np.asarray(env.lamp_pos[0, 0])
    app = room_appearance(env, rooms[0])
    centre = np.array([env.family.xs[-1], env.family.ys[-1]]) / 2  # the lamp stands in a corner of the room
    u = (centre - lamp_xy) / np.linalg.norm(centre - lamp_xy)
    dist = np.array([0.7, 1.5, 1.5])  # close and facing, oblique, facing away
    yaw_off = np.array([0.0, 0.3, np.pi])
    start = jnp.asarray(lamp_xy + dist[:, None] * u, jnp.float32)
    yaw = jnp.asarray(np.arctan2(-u[1], -u[0]) + yaw_off, jnp.float32)

    def one(p, y):
        state = env.reset_to(0, p, y, app)
        return state, env.render(state.physics, app)

    states, views = jax.jit(jax.vmap(one))(start, yaw)
    ids = np.asarray(views["geom_id"])  # [3, H, W]
    want = np.isin(ids, lamp_geoms).mean(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(views["fraction"]), want, atol=1e-7)
    np.testing.assert_allclose(np.asarray(states.metrics["fraction"]), want, atol=1e-7)
    np.testing.assert_array_equal(np.asarray(states.obs["rgb"]), np.asarray(views["rgb"]))  # the same render
    assert want[0] > 0.05 and 0.0 < want[1] and want[2] == 0.0


def test_reward_is_fraction_and_success_follows_counter(proto):
    _, _, res = proto
    for out in res.episodes.values():
        tr = {k: np.asarray(v) for k, v in out["trace"].items()}
        for e in range(tr["reward"].shape[1]):
            live = tr["live"][:, e] > 0
            np.testing.assert_array_equal(tr["reward"][live, e], tr["fraction"][live, e])
            counts, first = numpy_counter(tr["fraction"][live, e])
            np.testing.assert_array_equal(tr["count"][live, e], counts)
            assert first is not None and live.sum() == first == out["length"][e]  # success ends the episode
            assert tr["success"][live, e].tolist() == [0.0] * (first - 1) + [1.0]
            np.testing.assert_allclose(out["return"][e], tr["fraction"][live, e].sum(), rtol=1e-5)


def test_protocol_tiny_oracle_table_and_csv(proto, tmp_path):
    env, rooms, res = proto
    assert [(r.level, r.layout_seed) for r in rooms] == [("train", 0), ("easy", HELDOUT_SEED_OFFSET),
                                                         ("hard", HELDOUT_SEED_OFFSET + 1)]
    # looks: easy changes colours only; hard also textures and lighting
    base, easy, hard = (room_appearance(env, r) for r in rooms)
    assert not np.allclose(easy.geom_rgb, base.geom_rgb)
    floor = mujoco.mj_name2id(env.mj_model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
    others = np.arange(env.mj_model.ngeom) != floor
    np.testing.assert_array_equal(easy.geom_texture[others], base.geom_texture[others])  # the floor: a recoloured checker
    np.testing.assert_array_equal(easy.light_dir, base.light_dir)
    assert float(easy.ambient) == float(base.ambient) and float(easy.light_intensity) == float(base.light_intensity)
    assert not np.array_equal(hard.geom_texture, base.geom_texture)
    assert not np.allclose(hard.light_dir, base.light_dir) and float(hard.ambient) != float(base.ambient)
    # the oracle (straight at the lamp in an empty room) succeeds in every episode of every room
    assert [r["level"] for r in res.rows] == ["train", "easy", "hard"]
    for r in res.rows:
        assert r["episodes"] == 2 and r["success_mean"] == 1.0 and r["success_std"] == 0.0
        assert np.isnan(r["spl_mean"])  # SPL does not apply to ObjectNav
        assert 10 <= r["length_mean"] < STEPS and r["return_mean"] > 0.5  # >= 10 steps above 5%
        ep = res.episodes[(r["level"], r["room"])]
        np.testing.assert_allclose(r["return_mean"], ep["return"].mean())
        np.testing.assert_allclose(r["return_std"], ep["return"].std())
    assert res.summary["easy"]["success"] == (1.0, 0.0)
    path = tmp_path / "protocol.csv"
    res.to_csv(path)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 6
    assert [r["room"] for r in rows] == ["0", "0", "0", "all", "all", "all"]
    np.testing.assert_allclose(float(rows[2]["return_mean"]), res.rows[2]["return_mean"])
    assert "success" in str(res) and "hard" in str(res)


def test_make_forwards_image_size_to_own_camera():
    """``make(pixels=True)`` stacks the task's own camera frames (no second render) at the
    given size; the task's proprioception is the ``proprio`` part."""
    kw = dict(num_layouts=1, **{k: v for k, v in TINY.items() if k != "image_size"})
    env = vasa.envs.make("nav/objectnav", pixels=True, camera="head", image_size=(24, 40), frame_stack=2,
                         auto_reset=False, **kw)
    assert (env.unwrapped.camera.height, env.unwrapped.camera.width) == (24, 40)
    assert env.observation_spec["pixels"].shape == (24, 40, 6) and env.observation_spec["proprio"].shape == (4,)
    raw = vasa.envs.make("nav/objectnav", image_size=(24, 40), auto_reset=False, **kw)
    key, action = jax.random.PRNGKey(3), jnp.array([1.0, 0.3])
    state, own = jax.jit(env.reset)(key), jax.jit(raw.reset)(key)
    nxt, own_nxt = jax.jit(env.step)(state, action), jax.jit(raw.step)(own, action)
    np.testing.assert_array_equal(state.obs["pixels"], np.concatenate([own.obs["rgb"]] * 2, axis=-1))  # reset fill
    np.testing.assert_array_equal(nxt.obs["pixels"], np.concatenate([own.obs["rgb"], own_nxt.obs["rgb"]], axis=-1))
    np.testing.assert_array_equal(nxt.obs["proprio"], own_nxt.obs["proprio"])
    assert float(nxt.reward) == float(own_nxt.reward)
    with pytest.raises(ValueError, match=r"appearance='color_hard' is not allowed for nav/objectnav: it renders itself"):
        vasa.envs.make("nav/objectnav", pixels=True, appearance="color_hard", **kw)
    # without the pixel wrapper, a given size still reaches the task
    own = vasa.envs.make("nav/objectnav", image_size=20, auto_reset=False, **kw)
    assert own.observation_spec["rgb"].shape == (20, 20, 3) and own.unwrapped.camera.height == 20


def test_bad_arguments_name_the_field():
    with pytest.raises(ValueError, match=r"rows=7 .*\[1, 4\]"):
        vasa.envs.make("nav/objectnav", rows=7)
    with pytest.raises(ValueError, match=r"cols=0 "):
        ObjectNav(cols=0)
    with pytest.raises(ValueError, match=r"sensors=\('rgb', 'depth'\) .*RGB only"):
        vasa.envs.make("nav/objectnav", sensors=("rgb", "depth"))
    with pytest.raises(ValueError, match=r"sensors=\('proprio',\) .*including 'rgb'"):
        ObjectNav(sensors=("proprio",))
    with pytest.raises(ValueError, match=r"image_size=0 .*1024"):
        vasa.envs.make("nav/objectnav", image_size=0)
    with pytest.raises(ValueError, match=r"image_size=\(24,\) "):
        vasa.envs.make("nav/objectnav", pixels=True, image_size=(24,))
    with pytest.raises(ValueError, match=r"image_size=\(24, 2000\) "):
        ObjectNav(image_size=(24, 2000))
    with pytest.raises(ValueError, match=r"image_size=-3 "):
        vasa.envs.make("toy/pendulum", pixels=True, image_size=-3)
    with pytest.raises(ValueError, match=r"num_easy=-1 .*\[0, 100\]"):
        protocol_env(num_easy=-1)
    with pytest.raises(ValueError, match=r"num_hard=200 "):
        secant_protocol(spin_policy, jax.random.PRNGKey(0), num_hard=200)
    with pytest.raises(ValueError, match=r"episodes=0 "):
        secant_protocol(spin_policy, jax.random.PRNGKey(0), episodes=0)
    with pytest.raises(ValueError, match=r"layout_seeds=.*not allowed here"):
        protocol_env(layout_seeds=[1])
    with pytest.raises(ValueError, match=r"randomize='colour' .*color_hard"):
        vasa.envs.make("nav/objectnav", randomize="colour")
    with pytest.raises(ValueError, match=r"success_fraction=1.5 "):
        ObjectNav(success_fraction=1.5)


@pytest.mark.slow
def test_protocol_spin_policy_never_succeeds():
    """Turning in place (9 degrees a step, 60-degree view) keeps the lamp in view for fewer
    than 10 consecutive steps: success 0 in every room, whatever the start."""
    res = secant_protocol(spin_policy, jax.random.PRNGKey(1), num_easy=1, num_hard=1, episodes=4, max_steps=80, **TINY)
    for r in res.rows:
        assert r["success_mean"] == 0.0 and r["length_mean"] == 80


def test_hinged_door_pushed_open_by_the_robot_c_physics():
    """MuJoCo C on the family's model: a door leaf fills the opening of a ``DOOR`` edge (its
    frame is parked under the floor on other edges); driving straight at it swings it open
    and the robot passes into the next room; a robot at rest leaves it closed."""
    from vasa.envs.scenes import apartment as apt
    from vasa.envs.scenes import locobot

    fam = apt.make_family(apt.ApartmentConfig(rows=1, cols=2, corridor=False, furniture_per_room=0,
                                              hinged_doors=True))
    lay = next(lay for lay in (apt.generate_layout(fam, s) for s in range(20)) if lay.edge_state[0] == apt.DOOR)
    shut = apt.generate_layout(fam, next(s for s in range(20) if apt.generate_layout(fam, s).edge_state[0] != apt.DOOR))
    m = locobot.build_spec(fam).compile()
    d = mujoco.MjData(m)
    assert m.nmocap == len(lay.mocap_pos) == len(shut.mocap_pos)
    assert lay.door_pos[0, 2] == 0.0 and shut.door_pos[0, 2] == apt.PARK_Z  # the door: placed / parked
    body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "door0")
    jnt = lambda name: m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, name)]
    robot, door = jnt("slide_x"), jnt("door0")
    gap = apt._edge_segments(fam, fam.edges[0])[2][0]  # the opening's centre (a vertical edge: x = const)

    def drive(action, seconds=4.0):
        mujoco.mj_resetData(m, d)
        d.mocap_pos[:], d.mocap_quat[:] = lay.mocap_pos, lay.mocap_quat
        m.body_pos[body] = lay.door_pos[0]
        d.qpos[robot:robot + 3] = [gap[0] - 0.8, gap[1], 0.0]
        mujoco.mj_forward(m, d)
        leaf = d.geom_xpos[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "door0")].copy()
        for _ in range(int(seconds / m.opt.timestep)):
            d.ctrl[:] = np.asarray(locobot.drive_targets(d.qpos[robot + 2], np.asarray(action)))
            mujoco.mj_step(m, d)
        return leaf, d.qpos[robot], d.qpos[door]

    leaf, x, angle = drive([0.0, 0.0])
    np.testing.assert_allclose(leaf[:2], gap[:2], atol=0.02)  # closed: the leaf fills the opening
    assert angle == 0.0 and x == pytest.approx(gap[0] - 0.8)
    _, x, angle = drive([1.0, 0.0])
    assert abs(angle) > 1.0  # swung open by more than 57 degrees
    assert x > gap[0] + 0.5  # and the robot went through


@pytest.mark.slow
def test_hinged_door_opens_in_mjx_objectnav():
    """The same push on MJX, through ``ObjectNav(hinged_doors=True)``'s own step."""
    from vasa.envs.scenes import apartment as apt

    fam = apt.make_family(apt.ApartmentConfig(rows=1, cols=2, corridor=False, furniture_per_room=0, hinged_doors=True))
    seed = next(s for s in range(20) if apt.generate_layout(fam, s).edge_state[0] == apt.DOOR)
    env = ObjectNav(rows=1, cols=2, furniture_per_room=0, hinged_doors=True, layout_seeds=[seed], image_size=8,
                    min_start_distance=0.0)
    gap = apt._edge_segments(env.family, env.family.edges[0])[2][0]
    door = env.mj_model.jnt_qposadr[mujoco.mj_name2id(env.mj_model, mujoco.mjtObj.mjOBJ_JOINT, "door0")]

    def run(start):
        state = env.reset_to(0, start, jnp.float32(0.0))
        state, _ = jax.lax.scan(lambda s, _: (env.step(s, jnp.array([1.0, 0.0])), None), state, None, length=40)
        return state.physics.qpos

    qpos = jax.jit(run)(jnp.asarray([gap[0] - 0.8, gap[1]], jnp.float32))
    assert abs(float(qpos[door])) > 1.0 and float(qpos[env.robot_qpos]) > gap[0] + 0.5
