"""``robo/stack`` and ``robo/pick_place`` (issue 19): success on hand-placed states, staged rewards
against NumPy transcriptions of robosuite's code, placements, scripted controllers, arguments.

References are independent of the code under test: MuJoCo's C ``mj_forward`` (positions and
contacts of hand-placed states) and NumPy transcriptions of robosuite's ``Stack.staged_rewards``
and ``PickPlace.staged_rewards``/``not_in_bin`` (written loop by loop like robosuite's).
Compiled functions are shared through module-scoped fixtures; rollouts are marked slow.
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
from test_manipulation import Compiled, c_data, c_touching, run_eval

from vasa.envs.scenes import bins, robots, table
from vasa.envs.tasks.manipulation import pick_place as pp
from vasa.envs.tasks.manipulation import scripted_pick
from vasa.envs.tasks.manipulation.pick_place import PickPlace
from vasa.envs.tasks.manipulation.stack import Stack

TOP = table.TABLE_TOP


@pytest.fixture(scope="module")
def stack():
    return Compiled(Stack())


@pytest.fixture(scope="module")
def can():
    """Single-object pick_place (robosuite's mode 2): the cheapest scene for hand-placed states."""
    return Compiled(PickPlace(num_objects=1, object_type="can"))


STACK_PARAMS = {"half_size": jnp.array([0.02, 0.025], jnp.float32), "mass": jnp.array([0.1, 0.1], jnp.float32),
                "friction": jnp.array([1.0, 1.0], jnp.float32)}


def pose(x, y, z, yaw=0.0):
    return np.array([x, y, z, math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)])


# --------------------------------------------------------------------------- NumPy references
def stack_reference(grip, a, b, grasping, touching_ab):
    """robosuite ``Stack.staged_rewards`` and ``reward`` (shaped, unnormalised), line by line."""
    r_reach = (1 - np.tanh(10.0 * np.linalg.norm(grip - a))) * 0.25
    if grasping:
        r_reach += 0.25
    lifted = a[2] > TOP + 0.04
    r_lift = 1.0 if lifted else 0.0
    if lifted:
        r_lift += 0.5 * (1 - np.tanh(np.linalg.norm(a[:2] - b[:2])))
    r_stack = 2.0 if (not grasping and r_lift > 0 and touching_ab) else 0.0
    return max(r_reach, r_lift, r_stack), r_stack > 0


def not_in_bin(obj_pos, bin_id):
    """robosuite ``PickPlace.not_in_bin`` with vasa's bin2 position and size."""
    x_low, y_low = pp.BIN2_POS[0], pp.BIN2_POS[1]
    if bin_id == 0 or bin_id == 2:
        x_low -= pp.BIN_SIZE[0] / 2
    if bin_id < 2:
        y_low -= pp.BIN_SIZE[1] / 2
    x_high, y_high = x_low + pp.BIN_SIZE[0] / 2, y_low + pp.BIN_SIZE[1] / 2
    inside = x_low < obj_pos[0] < x_high and y_low < obj_pos[1] < y_high and TOP < obj_pos[2] < TOP + 0.1
    return not inside


def pick_place_reference(grip, objs, ids, active, left, right):
    """robosuite ``PickPlace._check_success`` + ``staged_rewards`` + ``reward`` (shaped, unnormalised)."""
    in_bins = []
    for p, i, on in zip(objs, ids, active):
        r_reach = 1 - np.tanh(10.0 * np.linalg.norm(grip - p))
        in_bins.append(bool(on and not not_in_bin(p, i) and r_reach < 0.6))
    act = [k for k in range(len(objs)) if active[k] and not in_bins[k]]
    r_reach = 0.0
    if act:
        r_reach = (1 - np.tanh(10.0 * min(np.linalg.norm(grip - objs[k]) for k in act))) * 0.1
    r_grasp = int(any(left[k] for k in act) and any(right[k] for k in act)) * 0.35
    r_lift = 0.0
    if act and r_grasp > 0:
        z_dists = [max(TOP + 0.25 - objs[k][2], 0.0) for k in act]
        r_lift = 0.35 + (1 - np.tanh(15.0 * min(z_dists))) * (0.5 - 0.35)
    r_hover = 0.0
    if act:
        x0, y0 = pp.BIN2_POS[0], pp.BIN2_POS[1]
        target = {i: (x0 + (-1 if i in (0, 2) else 1) * pp.BIN_SIZE[0] / 4, y0 + (-1 if i < 2 else 1) * pp.BIN_SIZE[1] / 4)
                  for i in range(4)}
        hovers = []
        for k in act:
            t = np.array(target[ids[k]])
            above = abs(objs[k][0] - t[0]) < pp.BIN_SIZE[0] / 4 and abs(objs[k][1] - t[1]) < pp.BIN_SIZE[1] / 4
            d = np.linalg.norm(t - objs[k][:2])
            hovers.append((0.5 if above else r_lift) + (1 - np.tanh(10.0 * d)) * (0.7 - 0.5))
        r_hover = max(hovers)
    return sum(in_bins) + max(r_reach, r_grasp, r_lift, r_hover), sum(in_bins)


# --------------------------------------------------------------------------- arguments
def test_bad_arguments_name_the_field():
    for bad in (0, 5, 2.5, True):
        with pytest.raises(ValueError, match=rf"num_objects={bad!r} .*in \[1, 4\]"):
            PickPlace(num_objects=bad)
    with pytest.raises(ValueError, match=r"object_type='soup'.*'milk', 'bread', 'cereal', 'can'"):
        PickPlace(num_objects=1, object_type="soup")
    with pytest.raises(ValueError, match=r"object_type='milk' with num_objects=2"):
        PickPlace(num_objects=2, object_type="milk")
    import vasa.envs

    with pytest.raises(ValueError, match=r"num_objects=5"):
        vasa.envs.make("robo/pick_place", num_objects=5)
    with pytest.raises(ValueError, match=r"control='x'"):
        vasa.envs.make("robo/stack", control="x")


# --------------------------------------------------------------------------- pure reward functions
def test_stack_stages_match_numpy_on_random_inputs():
    from vasa.envs.tasks.manipulation.stack import stack_reward

    fn = jax.jit(stack_reward)
    rng = np.random.default_rng(0)
    for k in range(40):
        grip, a, b = (np.array([*rng.uniform(-0.1, 0.1, 2), TOP + rng.uniform(0.0, 0.12)]) for _ in range(3))
        if k % 4 == 0:
            a[2] = TOP + 0.04 + rng.choice([-1, 1]) * 1e-3  # either side of the lift threshold
        grasp, touch = bool(rng.integers(2)), bool(rng.integers(2))
        stages = fn(*(jnp.asarray(v, jnp.float32) for v in (grip, a, b)), jnp.bool_(grasp), jnp.bool_(touch))
        ref, ref_success = stack_reference(grip, a, b, grasp, touch)
        assert float(max(stages)) == pytest.approx(ref, abs=1e-5), k
        assert bool(stages[2] > 0) == ref_success


def test_pick_place_stages_match_numpy_on_random_inputs():
    fn = jax.jit(pp.pick_place_reward)
    centres = pp.compartment_centres()
    rng = np.random.default_rng(1)
    placed_seen = hover_seen = 0
    for k in range(60):
        ids = rng.permutation(4)
        active = rng.random(4) < 0.8
        objs = np.stack([np.array([*rng.uniform([-0.15, -0.35], [0.15, 0.35]), TOP + rng.uniform(0.0, 0.3)])
                         for _ in range(4)])
        for j in range(4):  # drop some objects in (or just outside) their compartments
            if rng.random() < 0.4:
                objs[j, :2] = centres[ids[j]] + rng.uniform(-0.08, 0.08, 2)
                objs[j, 2] = TOP + rng.uniform(0.01, 0.12)
        grip = objs[rng.integers(4)] + rng.normal(0, 0.03, 3) if k % 2 else np.array([0.0, 0.0, 1.0])
        left, right = rng.random(4) < 0.4, rng.random(4) < 0.4
        placed, stages = fn(*(jnp.asarray(v) for v in (grip.astype(np.float32), objs.astype(np.float32), ids, active,
                                                       left, right)))
        ref, count = pick_place_reference(grip, objs, ids, active, left, right)
        assert int(placed.sum()) == count, k
        assert float(placed.sum() + stages.max()) == pytest.approx(ref, abs=2e-5), k
        placed_seen += count
        hover_seen += float(stages[3]) > 0.5
    assert placed_seen > 5 and hover_seen > 5  # both branches exercised


def test_compartments_match_not_in_bin_at_the_edges():
    centres = pp.compartment_centres()
    for i in range(4):
        for dx, dy, dz in [(0, 0, 0.05), (0.079, 0, 0.05), (0.081, 0, 0.05), (0, -0.094, 0.05), (0, -0.096, 0.05),
                           (0, 0, 0.099), (0, 0, 0.101), (0, 0, -0.001)]:
            p = np.array([centres[i, 0] + dx, centres[i, 1] + dy, TOP + dz])
            got = bool(pp.in_compartment(jnp.asarray(p), jnp.asarray(i)))
            assert got == (not not_in_bin(p, i)), (i, dx, dy, dz)


# --------------------------------------------------------------------------- placements and scenes
def test_placements_non_overlapping_and_reproducible():
    env = PickPlace()
    init = jax.jit(jax.vmap(env._init_objects, in_axes=(0, None)))
    keys = jax.random.split(jax.random.PRNGKey(3), 128)
    d1, p1 = init(keys, env._data0)
    d2, _ = init(keys, env._data0)
    np.testing.assert_array_equal(np.asarray(d1.qpos), np.asarray(d2.qpos))
    xyz = np.stack([np.asarray(d1.qpos[:, a:a + 3]) for a in env.qpos_adr], 1)  # [128, 4, 3]
    radii = env.radii[None] * np.asarray(p1["scale"])
    for i in range(4):
        for j in range(i):
            gap = np.linalg.norm(xyz[:, i, :2] - xyz[:, j, :2], axis=-1) - (radii[:, i] + radii[:, j])
            assert np.all(gap >= 0.0), gap.min()  # footprints never overlap
    inner = np.array(pp.BIN_SIZE) / 2 - pp.WALL
    assert np.all(np.abs(xyz[..., :2] - np.array(pp.BIN1_POS[:2])) + radii[..., None] <= inner + 1e-6)
    half = np.array([pp.CLASS_BOX[c][2] for c in range(4)])
    np.testing.assert_allclose(xyz[..., 2], TOP + half * np.asarray(p1["scale"]), atol=1e-6)
    # the per-scene shapes are reproducible by seed and differ between some seeds
    assert PickPlace(seed=5).spec.to_xml() == PickPlace(seed=5).spec.to_xml()
    assert len({tuple(PickPlace(seed=s).shapes) for s in range(6)}) > 1
    # num_objects < 4: k objects drawn per environment, the others parked off the table
    few = PickPlace(num_objects=2)
    _, p = jax.jit(jax.vmap(few._init_objects, in_axes=(0, None)))(keys[:32], few._data0)
    active = np.asarray(p["active"])
    assert np.all(active.sum(1) == 2) and len({tuple(a) for a in active}) > 2


def test_stack_placements_and_resets(stack):
    env = stack.env
    keys = jax.random.split(jax.random.PRNGKey(4), 64)
    d, params = jax.jit(jax.vmap(env._init_objects, in_axes=(0, None)))(keys, env._data0)
    half = np.asarray(params["half_size"])
    a, b = (np.asarray(d.qpos[:, adr:adr + 3]) for adr in env.qpos_adr)
    assert np.all(np.linalg.norm(a[:, :2] - b[:, :2], axis=-1) >= np.sqrt(2) * half.sum(1) - 1e-6)
    assert np.all(np.abs(np.concatenate([a[:, :2], b[:, :2]])) <= 0.08 + 1e-6)
    assert np.all((half[:, 0] >= 0.019) & (half[:, 0] <= 0.021) & (half[:, 1] >= 0.024) & (half[:, 1] <= 0.026))
    np.testing.assert_allclose(np.stack([a[:, 2], b[:, 2]], 1), TOP + half, atol=1e-6)
    # the per-environment model: cube sizes as drawn, a solid cube's inertia m (2h)^2 / 6
    m = env._model_for(jax.tree.map(lambda x: x[0], params))
    mass = np.asarray(params["mass"][0])
    np.testing.assert_allclose(np.asarray(m.geom_size[env.geoms]), np.repeat(half[0][:, None], 3, 1), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(m.body_mass[env.bodies]), mass, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(m.body_inertia[env.bodies]),
                               np.repeat((mass * (2 * half[0]) ** 2 / 6)[:, None], 3, 1), rtol=1e-4)


# --------------------------------------------------------------------------- stack on hand-placed states
def test_stack_success_on_hand_placed_states(stack):
    env = stack.env
    ia, ib = env.qpos_adr
    b = pose(0.05, -0.03, TOP + 0.025, 0.3)
    on_b = TOP + 0.05 + 0.02
    far = np.array(robots.HOME_QPOS)
    cases = [  # (A pose, want success): A resting on B (0.2 mm overlap), 2 mm above it, beside it
        (pose(0.05, -0.03, on_b - 2e-4, 1.0), True),
        (pose(0.06, -0.02, on_b - 2e-4), True),
        (pose(0.05, -0.03, on_b + 2e-3), False),
        (pose(0.05 + 0.045 - 2e-4, -0.03, TOP + 0.02), False),  # touching B's side on the table: not lifted
    ]
    for a, want in cases:
        d = c_data(env, far, extra={ia: a, ib: b})
        touch = c_touching(env.mj_model, d, int(env.geoms[0]), int(env.geoms[1]))
        assert touch == (a[2] < on_b + 1e-3)  # MuJoCo C agrees about the contact
        reward, success, obs = run_eval(stack, d, STACK_PARAMS)
        assert bool(success) == want, a
        grasp = False
        ref, _ = stack_reference(d.site_xpos[env.arm.site], d.xpos[env.bodies[0]], d.xpos[env.bodies[1]], grasp, touch)
        assert float(reward) == pytest.approx(ref / 2.0, abs=1e-5)
        np.testing.assert_allclose(np.asarray(obs[32:35]), d.xpos[env.bodies[0]], atol=1e-5)
        np.testing.assert_allclose(np.asarray(obs[52:55]), d.xpos[env.bodies[1]] - d.xpos[env.bodies[0]], atol=1e-5)
    # A on B but squeezed between the finger pads: grasped, so not stacked (lift + align stage)
    q = np.array(robots.HOME_QPOS)
    d0 = c_data(env, q)
    grip = d0.site_xpos[env.arm.site].copy()
    hand_quat = np.zeros(4)
    mujoco.mju_mat2Quat(hand_quat, d0.site_xmat[env.arm.site])
    b_under = pose(grip[0], grip[1], grip[2] - 0.02 - 0.025 + 2e-4)
    d = c_data(env, q, fingers=0.019, extra={ia: np.concatenate([grip, hand_quat]), ib: b_under})
    grasp = all(any(c_touching(env.mj_model, d, int(p), int(env.geoms[0])) for p in side) for side in env.pads)
    touch = c_touching(env.mj_model, d, int(env.geoms[0]), int(env.geoms[1]))
    assert grasp and touch
    reward, success, _ = run_eval(stack, d, STACK_PARAMS)
    ref, ref_success = stack_reference(grip, d.xpos[env.bodies[0]], d.xpos[env.bodies[1]], True, True)
    assert not bool(success) and not ref_success
    assert float(reward) == pytest.approx(ref / 2.0, abs=1e-5)


def test_stack_reward_matches_numpy_on_random_states(stack):
    """Random arm postures; A between the fingers (a grasp), on B, or anywhere on the table."""
    env = stack.env
    ia, ib = env.qpos_adr
    rng = np.random.default_rng(4)
    kinds = set()
    for k in range(9):
        q = np.array(robots.HOME_QPOS) + rng.uniform(-0.3, 0.3, 7)
        d0 = c_data(env, q)
        grip = d0.site_xpos[env.arm.site].copy()
        b = pose(*rng.uniform(-0.08, 0.08, 2), TOP + 0.025, rng.uniform(0, 6.3))
        fingers = robots.FINGER_TRAVEL
        if k % 3 == 0:  # A squeezed by 1 mm between the pads, aligned with the hand
            hand_quat = np.zeros(4)
            mujoco.mju_mat2Quat(hand_quat, d0.site_xmat[env.arm.site])
            a, fingers = np.concatenate([grip, hand_quat]), 0.019
        elif k % 3 == 1:  # A resting on B
            a = pose(b[0] + rng.uniform(-0.01, 0.01), b[1] + rng.uniform(-0.01, 0.01), TOP + 0.07 - 2e-4)
        else:
            a = pose(*rng.uniform(-0.1, 0.1, 2), TOP + rng.uniform(0.02, 0.1), rng.uniform(0, 6.3))
        d = c_data(env, q, fingers=fingers, extra={ia: a, ib: b})
        m, ga, gb = env.mj_model, int(env.geoms[0]), int(env.geoms[1])
        grasp = all(any(c_touching(m, d, int(p), ga) for p in side) for side in env.pads)
        touch = c_touching(m, d, ga, gb)
        kinds.add((grasp, touch))
        ref, ref_success = stack_reference(d.site_xpos[env.arm.site], d.xpos[env.bodies[0]], d.xpos[env.bodies[1]],
                                           grasp, touch)
        reward, success, _ = run_eval(stack, d, STACK_PARAMS)
        assert bool(success) == ref_success, k
        assert float(reward) == pytest.approx(ref / 2.0, abs=1e-5), k
    assert (True, False) in kinds and (False, True) in kinds  # grasps and stacks were both exercised


# --------------------------------------------------------------------------- pick_place on hand-placed states
def test_pick_place_success_on_hand_placed_states(can):
    env = can.env
    adr = env.qpos_adr[0]
    c = pp.compartment_centres()[3]
    h = pp.CLASS_BOX[3][2]
    params = {"active": jnp.ones(1, bool), "scale": jnp.ones(1), "mass": jnp.full(1, 0.1), "friction": jnp.ones(1)}
    far = np.array(robots.HOME_QPOS)  # the grasp site is ~0.5 m from bin2
    cases = [
        (pose(c[0], c[1], TOP + h), far, True),
        (pose(c[0] + 0.079, c[1], TOP + h), far, True),
        (pose(c[0] + 0.081, c[1], TOP + h), far, False),  # past the quadrant's edge
        (pose(c[0], c[1] - 0.096, TOP + h), far, False),  # in the neighbouring quadrant
        (pose(c[0], c[1], TOP + 0.101), far, False),  # too high above the floor
        (pose(*pp.BIN1_POS[:2], TOP + h), far, False),  # still in bin1
    ]
    for obj, q, want in cases:
        d = c_data(env, q, extra={adr: obj})
        reward, success, obs = run_eval(can, d, params)
        assert bool(success) == want, obj
        ref, count = pick_place_reference(d.site_xpos[env.arm.site], d.xpos[env.bodies], [3], [True], [False], [False])
        assert count == int(want)
        assert float(reward) == pytest.approx(ref, abs=1e-5)  # normalised by num_objects = 1
        np.testing.assert_allclose(np.asarray(obs[32:35]), d.xpos[env.bodies[0]], atol=1e-5)
        rel = d.site_xmat[env.arm.site].reshape(3, 3).T @ (d.xpos[env.bodies[0]] - d.site_xpos[env.arm.site])
        np.testing.assert_allclose(np.asarray(obs[39:42]), rel, atol=1e-5)
    # the can squeezed between the pads (1 mm each side) at the home pose: grasp and lift stages from C contacts
    d0 = c_data(env, far)
    grip = d0.site_xpos[env.arm.site].copy()
    hand_quat = np.zeros(4)
    mujoco.mju_mat2Quat(hand_quat, d0.site_xmat[env.arm.site])
    width = pp.CLASS_BOX[3][1]
    d = c_data(env, far, fingers=width - 0.001, extra={adr: np.concatenate([grip, hand_quat])})
    left, right = ([any(c_touching(env.mj_model, d, int(p), int(env.geoms[0])) for p in side)] for side in env.pads)
    assert left[0] and right[0]
    reward, success, _ = run_eval(can, d, params)
    ref, count = pick_place_reference(grip, d.xpos[env.bodies], [3], [True], left, right)
    assert not bool(success) and count == 0 and ref > 0.35
    assert float(reward) == pytest.approx(ref, abs=1e-5)
    # in the compartment with the grasp site closer than atanh(0.4) / 10 = 0.04236 m: not yet placed
    inside = np.array([c[0], c[1], TOP + h])
    for offset, want in ((0.042, False), (0.043, True)):
        placed, _ = jax.jit(pp.pick_place_reward)(jnp.asarray(inside + [0, 0, offset], jnp.float32),
                                                  jnp.asarray(inside[None], jnp.float32), jnp.array([3]),
                                                  jnp.array([True]), jnp.array([False]), jnp.array([False]))
        assert bool(placed[0]) == want, offset


# --------------------------------------------------------------------------- scripted controllers
@pytest.mark.slow
def test_scripted_stack_succeeds(stack):
    _, success = stack.rollout(scripted_pick.stack_policy, jax.random.split(jax.random.PRNGKey(21), 4), 120)
    assert success[-1].all(), success.sum(0)


@pytest.mark.slow
def test_scripted_pick_place_single_object_succeeds():
    env = Compiled(PickPlace(num_objects=1, object_type="milk"))  # an upright cylinder with seed 0: the tippiest
    assert env.env.shapes == ["cylinder"]
    _, success = env.rollout(scripted_pick.pick_place_policy, jax.random.split(jax.random.PRNGKey(22), 4), 200)
    assert success[-1].all(), success.sum(0)


@pytest.mark.slow
def test_scripted_pick_place_four_objects_succeeds():
    """All four objects into their compartments: the first 3 of the 32 draws (reset key 23) whose
    rate :mod:`scripted_pick` quotes (31/32 within 600 steps), success at any step."""
    env = Compiled(PickPlace())
    _, success = env.rollout(scripted_pick.pick_place_policy, jax.random.split(jax.random.PRNGKey(23), 32)[:3], 600)
    assert np.asarray(success).any(axis=0).all(), np.asarray(success).sum(0)


def test_bins_collide_with_objects_not_fingers():
    m = PickPlace(num_objects=1, object_type="bread").mj_model
    wall = m.geom("bin2_wall0").id
    obj = m.geom("bread_geom").id
    pad = m.geom("robot0_left_pad0").id

    def collide(a, b):
        return bool((m.geom_contype[a] & m.geom_conaffinity[b]) | (m.geom_contype[b] & m.geom_conaffinity[a]))

    assert collide(wall, obj) and collide(pad, obj) and not collide(pad, wall)
    assert m.geom_type[wall] == mujoco.mjtGeom.mjGEOM_CAPSULE
    assert bins.shape_size("capsule", (0.04, 0.022, 0.015))[1] == pytest.approx(0.015)
