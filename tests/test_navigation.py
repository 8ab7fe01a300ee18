"""Indoor navigation (issue 20, phase 1): apartments, the robot, PointGoal, evaluation.

References are independent of the code under test: a deque BFS and a heap Dijkstra in
NumPy, closed-form kinematics, ``mujoco.mj_ray`` (MuJoCo's C ray caster), MuJoCo's C
physics, and hand-computed ranges and SPL. One small env and its jitted functions are
shared by the module (compilation dominates the cost on a CPU).
"""

from __future__ import annotations

import collections
import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from vasa.envs.scenes import apartment as apt
from vasa.envs.scenes import locobot
from vasa.envs.tasks.navigation import (
    PointGoalNav,
    dijkstra_numpy,
    evaluate,
    geodesic_oracle,
)
from vasa.envs.tasks.navigation.geodesic import distance_field, geodesic_at

RES = 0.1
B = 4  # one batch size for every MJX test, so they share compiled programs


# ------------------------------------------------------------------------------ helpers


def bfs_reach(free: np.ndarray, starts) -> np.ndarray:
    """4-neighbour BFS reachability from ``starts`` (a list of (i, j))."""
    seen = np.zeros_like(free)
    q = collections.deque()
    for s in starts:
        seen[s] = True
        q.append(s)
    while q:
        i, j = q.popleft()
        for a, b in ((i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)):
            if 0 <= a < free.shape[0] and 0 <= b < free.shape[1] and free[a, b] and not seen[a, b]:
                seen[a, b] = True
                q.append((a, b))
    return seen


def room_cells(fam, lay, cell):
    x0, x1, y0, y1 = apt._cell_rect(fam, cell)
    ii, jj = np.nonzero(lay.free)
    cx, cy = lay.origin[0] + (jj + 0.5) * RES, lay.origin[1] + (ii + 0.5) * RES
    inside = (cx > x0) & (cx < x1) & (cy > y0) & (cy < y1)
    return list(zip(ii[inside], jj[inside]))


def mj_data_for(env, layout: int, qpos_robot=None):
    """A MuJoCo C ``MjData`` of ``env``'s model standing in ``layout`` (mj_forward done)."""
    m = env.mj_model
    d = mujoco.MjData(m)
    lay = env.layouts[layout]
    d.mocap_pos[:] = lay.mocap_pos
    d.mocap_quat[:] = lay.mocap_quat
    for i, adr in enumerate(env.push_qpos):
        d.qpos[adr:adr + 7] = np.concatenate([lay.push_pos[i], [1, 0, 0, 0]])
    if qpos_robot is not None:
        d.qpos[env.robot_qpos:env.robot_qpos + 3] = qpos_robot
    mujoco.mj_forward(m, d)
    return d


def observe_c(env, d, goal):
    """``env``'s observation of MuJoCo C data ``d`` (jitted: poses passed as arrays)."""
    from types import SimpleNamespace

    fn = env.__dict__.setdefault("_test_observe", jax.jit(
        lambda q, gx, gm, g: env._observe(SimpleNamespace(qpos=q, geom_xpos=gx, geom_xmat=gm), g)))
    return fn(jnp.asarray(d.qpos, jnp.float32), jnp.asarray(d.geom_xpos, jnp.float32),
              jnp.asarray(d.geom_xmat, jnp.float32), jnp.asarray(goal, jnp.float32))


def mj_ray_dist(env, d, origin, direction):
    m = env.mj_model
    robot = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "robot")
    gid = np.zeros(1, np.int32)
    dist = mujoco.mj_ray(m, d, np.asarray(origin, float), np.asarray(direction, float), None, 1, robot, gid)
    return np.inf if dist < 0 else dist


def clearance(free: np.ndarray) -> np.ndarray:
    """Chebyshev distance (cells) to the nearest blocked cell, by repeated erosion."""
    out = np.zeros(free.shape, int)
    cur = free.copy()
    k = 0
    while cur.any():
        out[cur] = k
        pad = np.pad(cur, 1, constant_values=False)
        cur = np.logical_and.reduce([pad[1 + a:1 + a + cur.shape[0], 1 + b:1 + b + cur.shape[1]]
                                     for a in (-1, 0, 1) for b in (-1, 0, 1)])
        k += 1
    return out


def centre(origin, i, j):
    return np.array([origin[0] + (j + 0.5) * RES, origin[1] + (i + 0.5) * RES])


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def env():
    return PointGoalNav(rows=1, cols=2, corridor=True, furniture_per_room=1, num_layouts=2, goals_per_layout=16)


@pytest.fixture(scope="module")
def fns(env):
    return {"reset": jax.jit(jax.vmap(env.reset)), "reset_to": jax.jit(jax.vmap(env.reset_to)),
            "step": jax.jit(jax.vmap(env.step))}


# ------------------------------------------------------------------------------ layouts


@pytest.mark.parametrize("rows,cols,corridor", [(2, 2, True), (3, 3, False)])
def test_every_room_reachable_and_doors_wide(rows, cols, corridor):
    fam = apt.make_family(apt.ApartmentConfig(rows=rows, cols=cols, corridor=corridor, furniture_per_room=2))
    ncell = len(fam.ys[:-1]) * cols
    for seed in range(3):
        lay = apt.generate_layout(fam, seed)
        rooms = [room_cells(fam, lay, c) for c in range(ncell)]
        assert all(len(r) > 20 for r in rooms), "every room keeps free floor"
        for a in range(ncell):
            seen = bfs_reach(lay.free, rooms[a][:1])
            for b in range(ncell):
                assert all(seen[c] for c in rooms[b]), f"room {b} unreachable from room {a} (seed {seed})"
        # doors: the gap between the two wall segments is door_width >= 0.8 m, and the
        # doorway's centre cell is free on the robot-inflated map
        for e, state in zip(fam.edges, lay.edge_state):
            if state != apt.DOOR:
                continue
            (ca, ha), (cb, hb), _ = apt._edge_segments(fam, e)
            axis = 1 if e[0] == 0 else 0
            gap = (cb[axis] - hb[axis]) - (ca[axis] + ha[axis])
            assert gap >= 0.8 - 1e-9 and gap > 2 * locobot.RADIUS + 0.3
            for p in apt.door_probes(fam, e):  # the doorway and 0.45 m either side stay free
                j, i = np.floor((p - lay.origin) / RES).astype(int)
                assert lay.free[i, j]


def test_layouts_reproducible_and_heldout_disjoint():
    cfg = apt.ApartmentConfig()
    a = apt.generate_layout(apt.make_family(cfg), 5)
    b = apt.generate_layout(apt.make_family(cfg), 5)
    for f in ("edge_state", "mocap_pos", "mocap_quat", "free", "occupied"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    train = apt.layout_seeds("train", 50)
    held = apt.layout_seeds("heldout", 50)
    assert not set(train) & set(held)
    assert max(train) < apt.HELDOUT_SEED_OFFSET <= min(held)
    fam = apt.make_family(cfg)
    maps_t = [apt.generate_layout(fam, s).free for s in train[:6]]
    maps_h = [apt.generate_layout(fam, s).free for s in held[:6]]
    assert all(not np.array_equal(x, y) for x in maps_t for y in maps_h)
    with pytest.raises(ValueError, match="start"):
        apt.layout_seeds("train", 10, start=apt.HELDOUT_SEED_OFFSET - 5)


def test_looks_never_change_physics():
    kw = {"rows": 1, "cols": 2, "num_layouts": 1, "goals_per_layout": 2}
    tr, ho = PointGoalNav(look="train", **kw), PointGoalNav(look="heldout", look_seed=3, **kw)
    for f in ("geom_size", "geom_pos", "geom_type", "body_mass", "geom_friction", "geom_contype",
              "geom_conaffinity", "actuator_gainprm", "opt.timestep"):
        obj_a, obj_b = tr.mj_model, ho.mj_model
        for part in f.split("."):
            obj_a, obj_b = getattr(obj_a, part), getattr(obj_b, part)
        np.testing.assert_array_equal(obj_a, obj_b)
    np.testing.assert_array_equal(np.asarray(tr.mocap_pos), np.asarray(ho.mocap_pos))
    assert not np.array_equal(tr.mj_model.geom_rgba, ho.mj_model.geom_rgba)


def test_collision_pairs_only_robot_static_pushable():
    env = PointGoalNav(rows=1, cols=2, pushables=2, num_layouts=1, goals_per_layout=2)
    m = env.mj_model
    kinds = {}
    for g in range(m.ngeom):
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or ""
        kinds[g] = ("robot" if name == "robot" else "push" if name.startswith("pushable") else
                    "floor" if name == "floor" else "static")
    pairs = set()
    for a in range(m.ngeom):
        for b in range(a + 1, m.ngeom):
            if (m.geom_contype[a] & m.geom_conaffinity[b]) or (m.geom_contype[b] & m.geom_conaffinity[a]):
                pairs.add(tuple(sorted((kinds[a], kinds[b]))))
    assert pairs == {("robot", "static"), ("push", "robot"), ("push", "static"), ("floor", "push")}


# ------------------------------------------------------------------------------ geodesic


def test_device_distance_fields_match_dijkstra(env):
    fields = np.asarray(env.fields)
    for li, lay in enumerate(env.layouts):
        for k in range(4):
            goal = np.zeros_like(lay.free)
            goal[tuple(np.asarray(env.goal_cells[li, k]))] = True
            ref = dijkstra_numpy(lay.free, goal, RES)
            np.testing.assert_array_equal(np.isfinite(fields[li, k]), np.isfinite(ref))
            fin = np.isfinite(ref)
            np.testing.assert_allclose(fields[li, k][fin], ref[fin], atol=1e-4)
    # a hand-made map: a wall with one gap; BFS-style counts by hand
    free = np.ones((5, 7), bool)
    free[2, :6] = False  # gap at column 6
    goal = np.zeros_like(free)
    goal[0, 0] = True
    d = np.asarray(distance_field(jnp.asarray(free), jnp.asarray(goal), 1.0))
    assert d[0, 6] == pytest.approx(6.0)
    # to (1, 6): 1 diagonal + 5 straight; through the gap (2, 6) to (3, 6): 2 straight (no
    # diagonal past the wall's corner); to (4, 0): 1 diagonal + 5 straight
    assert d[4, 0] == pytest.approx(2 * (math.sqrt(2) + 5) + 2, abs=1e-5)
    assert np.isinf(d[2, 0])


def test_geodesic_lookup_at_cell_centres(env):
    field = np.asarray(env.fields[0, 0])
    free = np.asarray(env.free[0])
    cells = np.argwhere(free)
    got = np.asarray(jax.jit(jax.vmap(lambda p: geodesic_at(jnp.asarray(field), p, env.origin, RES)))(
        jnp.asarray([centre(env.layouts[0].origin, i, j) for i, j in cells], jnp.float32)))
    want = field[cells[:, 0], cells[:, 1]]
    open_ = clearance(free)[cells[:, 0], cells[:, 1]] >= 1  # all 8 neighbours free
    np.testing.assert_allclose(got[open_], want[open_], atol=1e-5)
    assert np.all(got <= want + 1e-5) and np.all(got >= want - (2 - math.sqrt(2)) * RES - 1e-5)


# ------------------------------------------------------------------------------ the robot


def _rollout(fns, state, actions):
    """``actions [T, B, 2]`` -> list of states after each step."""
    out = []
    for a in actions:
        state = fns["step"](state, jnp.asarray(a, jnp.float32))
        out.append(state)
    return out


def _open_spot(env, layout, need_cells):
    clear = clearance(env.layouts[layout].free)
    i, j = np.argwhere(clear >= need_cells)[0]
    return centre(env.layouts[layout].origin, i, j)


def _wall_spot(env, layout):
    """A pose facing +x with a wall 0.6-1.2 m ahead (mj_ray from the sphere's centre)."""
    lay = env.layouts[layout]
    clear = clearance(lay.free)
    d = mj_data_for(env, layout)
    for i, j in np.argwhere(clear >= 3):
        p = centre(lay.origin, i, j)
        dist = mj_ray_dist(env, d, [p[0], p[1], locobot.RADIUS], [1, 0, 0])
        if 0.6 < dist < 1.2:
            side = [mj_ray_dist(env, d, [p[0] + s * 0.3, p[1] + o, locobot.RADIUS], [1, 0, 0])
                    for s in (0,) for o in (-0.17, 0.17)]
            if all(abs(x - dist) < 1e-6 for x in side):  # a flat face ahead
                return p, dist
    raise AssertionError("no wall spot")


def test_kinematics_and_wall_stop(env, fns):
    spot = _open_spot(env, 0, 9)
    wall, wall_dist = _wall_spot(env, 0)
    yaw0 = 0.3
    starts = np.array([spot, spot, spot, wall], np.float32)
    yaws = np.array([yaw0, yaw0, yaw0, 0.0], np.float32)
    state = fns["reset_to"](jnp.zeros(4, jnp.int32), jnp.zeros(4, jnp.int32), jnp.asarray(starts), jnp.asarray(yaws))
    act = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.5], [1.0, 0.0]], np.float32)
    traj = _rollout(fns, state, np.broadcast_to(act, (30, 4, 2)))
    q10 = np.asarray(traj[9].physics.qpos)[:, :3]
    t = 1.0  # 10 steps of 0.1 s
    # straight line: 0.5 m/s along the heading
    np.testing.assert_allclose(q10[0, :2], spot + 0.5 * t * np.array([math.cos(yaw0), math.sin(yaw0)]), atol=0.01)
    assert q10[0, 2] == pytest.approx(yaw0, abs=1e-3)
    # turn in place: 1.57 rad/s, no translation
    assert q10[1, 2] == pytest.approx(yaw0 + 1.57 * t, abs=0.025)  # the servo lags 0.01 s
    np.testing.assert_allclose(q10[1, :2], spot, atol=0.005)
    # an arc: v = 0.5, w = 0.785 -> x = x0 + v/w (sin(th0 + wt) - sin th0), y = y0 - v/w (cos(...) - cos th0)
    v, w = 0.5, 1.57 * 0.5
    arc = spot + v / w * np.array([math.sin(yaw0 + w * t) - math.sin(yaw0), -(math.cos(yaw0 + w * t) - math.cos(yaw0))])
    np.testing.assert_allclose(q10[2, :2], arc, atol=0.02)
    assert q10[2, 2] == pytest.approx(yaw0 + w * t, abs=0.02)
    # the wall: 30 steps at 0.5 m/s would cover 1.5 m; the sphere stops at the face
    xs = np.array([np.asarray(s.physics.qpos)[3, 0] for s in traj]) - wall[0]
    stop = wall_dist - locobot.RADIUS
    assert xs.max() <= stop + 0.02, (xs.max(), stop)  # 1.4 cm at impact (soft contact), never through
    assert abs(xs[-1] - stop) < 0.005  # pushing at rest: a few mm
    assert float(traj[-1].info["collisions"][3]) >= 10
    assert float(traj[-1].reward[3]) < -0.05  # -0.1 collision, no progress
    np.testing.assert_array_equal(np.asarray(traj[9].info["collisions"][:3]), 0)  # open floor: no contact


def _push_setup(env):
    """Robot 0.65 m from the first pushable box, facing it, with free floor beyond the box:
    ``(robot xy, yaw, unit push direction)``."""
    lay = env.layouts[0]
    box = lay.push_pos[0][:2]
    free_at = lambda p: lay.free[tuple(np.floor((p - lay.origin) / RES).astype(int)[::-1])]
    for u in (np.array([1.0, 0]), np.array([-1.0, 0]), np.array([0, 1.0]), np.array([0, -1.0])):
        if all(free_at(box - f * u) for f in (0.65, 0.45)) and free_at(box + 0.45 * u):
            return box - 0.65 * u, math.atan2(u[1], u[0]), u
    raise AssertionError("no room to push")


@pytest.fixture(scope="module")
def push_env():
    return PointGoalNav(rows=1, cols=2, pushables=1, furniture_per_room=0, num_layouts=1, goals_per_layout=2)


def test_pushable_moves_when_pushed_c_physics(push_env):
    """MuJoCo C physics on the same model and drive law: the robot pushes a box."""
    env = push_env
    start, yaw, u = _push_setup(env)
    box = env.layouts[0].push_pos[0][:2]
    d = mj_data_for(env, 0, np.array([start[0], start[1], yaw]))
    adr = env.push_qpos[0]
    for _ in range(20 * locobot.SUBSTEPS):
        d.ctrl[:] = np.asarray(locobot.drive_targets(d.qpos[env.robot_qpos + 2], np.array([1.0, 0.0])))
        mujoco.mj_step(env.mj_model, d)
    moved = d.qpos[adr:adr + 2] - box
    assert moved @ u > 0.2 and abs(moved @ np.array([-u[1], u[0]])) < 0.1


@pytest.mark.slow
def test_interactive_env_push_and_effort(push_env):
    env = push_env
    start, yaw, u = _push_setup(env)
    box = env.layouts[0].push_pos[0][:2]
    reset_to, step = jax.jit(env.reset_to), jax.jit(env.step)
    s = reset_to(0, 0, jnp.asarray(start, jnp.float32), jnp.float32(yaw))
    for _ in range(20):
        s = step(s, jnp.array([1.0, 0.0]))
    moved = np.asarray(s.physics.qpos[env.push_qpos[0]:env.push_qpos[0] + 2]) - box
    assert moved @ u > 0.2
    assert float(s.metrics["effort"]) == pytest.approx(locobot.PUSH_MASS * np.linalg.norm(moved), rel=1e-3)
    assert float(s.info["collisions"]) > 0  # touching the box counts as a collision


# ------------------------------------------------------------------------------ sensors


def test_lidar_in_known_room_matches_hand_ranges():
    env = PointGoalNav(rows=1, cols=1, corridor=False, furniture_per_room=0, num_layouts=1, goals_per_layout=2)
    fam = env.family
    W, H = fam.xs[-1], fam.ys[-1]
    lamp = env.layouts[0].lamp_pos[0]
    p, yaw = np.array([W * 0.4, H * 0.55]), 0.7
    d = mj_data_for(env, 0, np.array([p[0], p[1], yaw]))
    obs = np.asarray(observe_c(env, d, p + [1.0, 0.0]))
    scan = obs[3:] * 5.6
    angles = yaw + np.deg2rad(np.linspace(-120, 120, 228))
    hand = []
    for a in angles:
        c, s = math.cos(a), math.sin(a)
        ts = [t for t in ((W - p[0]) / c if c > 1e-9 else np.inf, -p[0] / c if c < -1e-9 else np.inf,
                          (H - p[1]) / s if s > 1e-9 else np.inf, -p[1] / s if s < -1e-9 else np.inf)]
        # the lamp's pole: a disc of radius 0.025 at the LiDAR's height
        f = p - lamp
        b, cc = f[0] * c + f[1] * s, f @ f - 0.025 ** 2
        disc = b * b - cc
        if disc >= 0 and -b - math.sqrt(disc) > 0:
            ts.append(-b - math.sqrt(disc))
        hand.append(min(min(ts), 5.6))
    np.testing.assert_allclose(scan, np.array(hand), atol=1e-3)
    assert obs[0] == pytest.approx(1.0, abs=1e-5)
    assert math.atan2(obs[2], obs[1]) == pytest.approx(-yaw, abs=1e-5)
    # and MuJoCo's own C ray caster agrees
    ref = [min(mj_ray_dist(env, d, [p[0], p[1], locobot.LIDAR_HEIGHT], [math.cos(a), math.sin(a), 0]), 5.6)
           for a in angles[::19]]
    np.testing.assert_allclose(scan[::19], ref, atol=1e-4)


def test_depth_camera_centre_matches_mj_ray():
    env = PointGoalNav(rows=1, cols=2, num_layouts=1, goals_per_layout=2, sensors=("lidar", "depth"), image_size=9)
    spot = _open_spot(env, 0, 5)
    yaw = 0.4
    d = mj_data_for(env, 0, np.array([spot[0], spot[1], yaw]))
    obs = observe_c(env, d, spot)
    assert obs["depth"].shape == (9, 9, 1) and obs["state"].shape == (231,)
    head = [spot[0] + 0.05 * math.cos(yaw), spot[1] + 0.05 * math.sin(yaw), locobot.HEAD_HEIGHT]
    ref = min(mj_ray_dist(env, d, head, [math.cos(yaw), math.sin(yaw), 0.0]), 5.6) / 5.6
    assert float(obs["depth"][4, 4, 0]) == pytest.approx(ref, abs=1e-3)


def test_mjx_observation_matches_mj_ray(env, fns):
    state = fns["reset"](jax.random.split(jax.random.PRNGKey(1), B))
    for b in range(B):
        q = np.asarray(state.physics.qpos[b, :3])
        d = mj_data_for(env, int(state.info["layout"][b]), q)
        angles = q[2] + np.deg2rad(np.linspace(-120, 120, 228))
        ref = [min(mj_ray_dist(env, d, [q[0], q[1], locobot.LIDAR_HEIGHT], [math.cos(a), math.sin(a), 0]), 5.6)
               for a in angles[::23]]
        np.testing.assert_allclose(np.asarray(state.obs[b, 3:])[::23] * 5.6, ref, atol=1e-3)
        # the start is on a free cell, 1-10 m from the goal by geodesic distance
        assert 1.0 <= float(state.info["shortest"][b]) <= 10.0 + 0.2


# ------------------------------------------------------------------------------ SPL


def _straight_goal(env):
    """A goal cell with 2.5 m of open floor behind it along an axis: (layout, goal, direction)."""
    for li, lay in enumerate(env.layouts):
        clear = clearance(lay.free)
        for k, (i, j) in enumerate(np.asarray(env.goal_cells[li])):
            for di, dj in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                cells = [(i - n * di, j - n * dj) for n in range(26)]
                if all(0 <= a < lay.free.shape[0] and 0 <= b < lay.free.shape[1] and clear[a, b] >= 1 for a, b in cells):
                    return li, k, np.array([dj, di], float)
    raise AssertionError("no straight approach")


def test_spl_hand_computed_episode(env, fns):
    li, k, direction = _straight_goal(env)
    goal = centre(env.layouts[li].origin, *np.asarray(env.goal_cells[li, k]))
    start = goal - 2.0 * direction
    yaw = math.atan2(direction[1], direction[0])
    rep = lambda x, dtype: jnp.asarray(np.repeat(np.asarray(x)[None], B, 0), dtype)
    state = fns["reset_to"](rep(li, jnp.int32), rep(k, jnp.int32), rep(start, jnp.float32), rep(yaw, jnp.float32))
    assert float(state.info["shortest"][0]) == pytest.approx(2.0, abs=1e-5)  # 20 cells along an axis
    actions = [[-1.0, 0.0]] * 10 + [[1.0, 0.0]] * 50
    ret, done_at = 0.0, None
    for t, a in enumerate(actions):
        state = fns["step"](state, jnp.asarray([a] * B, jnp.float32))
        ret += float(state.reward[0])
        if state.done[0] > 0:
            done_at = t + 1
            break
    # by hand: 0.5 m back (10 steps), then forward 0.05 m a step until < 0.36 m from the goal:
    # 2.5 - 0.05 n < 0.36 -> n = 43 steps; path 0.5 + 2.15 = 2.65 m; SPL = 2.0 / 2.65
    assert done_at == 53
    assert float(state.metrics["success"][0]) == 1.0
    assert float(state.metrics["path_length"][0]) == pytest.approx(2.65, abs=0.02)
    assert float(state.metrics["spl"][0]) == pytest.approx(2.0 / 2.65, abs=0.006)
    # return = geodesic decrease (2.0 -> ~0.35) + 10 for success, no collision
    assert ret == pytest.approx(2.0 - float(state.metrics["geodesic"][0]) + 10.0, abs=1e-4)
    assert float(state.metrics["geodesic"][0]) == pytest.approx(0.35, abs=0.02)


# ------------------------------------------------------------------------------ evaluation


@pytest.mark.slow
def test_evaluate_heldout_oracle_and_random():
    from vasa.envs.tasks.navigation import evaluate_heldout, random_policy

    kw = {"rows": 1, "cols": 2, "num_layouts": 2, "goals_per_layout": 8}
    res = evaluate_heldout(geodesic_oracle, jax.random.PRNGKey(0), num_episodes=8, max_steps=250,
                           policy_needs_env=True, **kw)
    assert min(res["env"].seeds) >= apt.HELDOUT_SEED_OFFSET
    assert res["summary"]["success"][0] >= 0.75
    ok = res["success"] > 0
    assert np.all(res["spl"][ok] > 0.3) and np.all(res["spl"] <= 1.0) and np.all(res["spl"][~ok] == 0)
    rnd = evaluate(res["env"], random_policy, jax.random.PRNGKey(1), num_episodes=8, max_steps=100)
    assert rnd["summary"]["success"][0] <= res["summary"]["success"][0]


def test_evaluate_carries_a_policys_memory(env, fns):
    """A policy with memory (a step counter: forward on even steps, turn on odd ones) gets
    its memory carried through the episode: returns equal a Python-loop rollout of the same
    action sequence from the same starts, and differ from always driving forward."""
    n, steps, key = 4, 8, jax.random.PRNGKey(5)

    def alternate(obs, count):
        fwd = (count % 2 == 0)[:, None]
        return jnp.where(fwd, jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0])), count + 1

    alternate.zero_carry = lambda batch: jnp.zeros(batch, jnp.int32)
    got = evaluate(env, alternate, key, num_episodes=n, max_steps=steps)["return"]
    state = fns["reset"](jax.random.split(jax.random.split(key)[0], n))
    actions = [[[1.0, 0.0] if t % 2 == 0 else [0.0, 1.0]] * n for t in range(steps)]
    want = sum(np.asarray(s.reward) for s in _rollout(fns, state, actions))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    straight = evaluate(env, lambda obs, k, s: jnp.array([1.0, 0.0]), key, num_episodes=n, max_steps=steps)["return"]
    assert not np.allclose(got, straight)


# ------------------------------------------------------------------------------ errors


def test_bad_arguments_name_the_field():
    import vasa.envs

    with pytest.raises(ValueError, match=r"rows=0 .*\[1, 4\]"):
        PointGoalNav(rows=0)
    with pytest.raises(ValueError, match=r"cols=7"):
        vasa.envs.make("nav/pointgoal", cols=7)
    with pytest.raises(ValueError, match=r"sensors=\('lidar', 'sonar'\).*'depth'"):
        PointGoalNav(sensors=("lidar", "sonar"))
    with pytest.raises(ValueError, match=r"image_size=0 .*1024"):
        PointGoalNav(sensors=("lidar", "depth"), image_size=0)
    with pytest.raises(ValueError, match=r"image_size=\(64,\)"):
        PointGoalNav(image_size=(64,))
    with pytest.raises(ValueError, match=r"split='test'.*'heldout'"):
        PointGoalNav(split="test")
    with pytest.raises(ValueError, match=r"furniture_per_room=9"):
        PointGoalNav(furniture_per_room=9)
    with pytest.raises(ValueError, match=r"pushables=0"):
        vasa.envs.make("nav/interactive_pointgoal", pushables=0)
    with pytest.raises(ValueError, match=r"door_width=0.5"):
        apt.ApartmentConfig(door_width=0.5).validate()


def test_registry_and_specs():
    import vasa.envs

    env = vasa.envs.make("nav/pointgoal", num_layouts=1, goals_per_layout=2, lidar_rays=512)
    assert env.observation_spec.shape == (3 + 512,)
    assert env.action_spec.shape == (2,)
    assert env.episode_length == 500
    assert "nav/interactive_pointgoal" in vasa.envs.registered_ids()
    # the pixel wrapper finds the MJX model and the head camera
    px = vasa.envs.make("nav/pointgoal", num_layouts=1, goals_per_layout=2, pixels=True, camera="head",
                        channels="rgbd", image_size=16, frame_stack=1)
    assert px.observation_spec["pixels"].shape == (16, 16, 4)
    assert px.observation_spec["proprio"].shape == (231,)


@pytest.mark.slow
def test_pixel_wrapper_renders_head_camera():
    import vasa.envs

    env = vasa.envs.make("nav/pointgoal", num_layouts=1, goals_per_layout=2, pixels=True, camera="head",
                         channels="rgbd", image_size=16, frame_stack=1, auto_reset=False)
    s = jax.jit(env.reset)(jax.random.PRNGKey(0))
    s = jax.jit(env.step)(s, jnp.array([0.0, 1.0]))
    depth = np.asarray(s.obs["pixels"][..., 3], float) / 255 * 6.0  # PixelObservation: 0..255 over 6 m
    inner = env.unwrapped
    q = np.asarray(s.physics.qpos[:3])
    d = mj_data_for(inner, int(s.info["layout"]), q)
    cam = d.cam_xpos[mujoco.mj_name2id(inner.mj_model, mujoco.mjtObj.mjOBJ_CAMERA, "head")]
    ref = min(mj_ray_dist(inner, d, cam, [math.cos(q[2]), math.sin(q[2]), 0.0]), 6.0)
    # the centre of a 16x16 image lies between pixels: compare with the 2x2 centre block
    assert np.min(np.abs(depth[7:9, 7:9] - ref)) < 0.1
