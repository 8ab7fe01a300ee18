"""The ray-cast renderer and LiDAR (vasa.envs.render) against MuJoCo's C ray caster
``mj_ray``, closed-form images and hand-computed scans.

Every jitted function is compiled once per module (images are small); the MuJoCo C calls
are cheap. Small hand-written models declare an unused ``<material>``: a model without any
material is covered separately by ``test_model_without_materials``.
"""

from __future__ import annotations

import copy
import warnings

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from vasa.envs import render as R

GROUPS = np.array([1, 1, 1, 0, 0, 0], np.uint8)  # MuJoCo's default visible geom groups
GRAZING = 1e-2  # |cos(angle between ray and surface normal)| below this: a grazing ray
DIST_TOL = 1e-4  # metres


def pose_dict(d: mujoco.MjData) -> dict:
    return dict(geom_xpos=d.geom_xpos.copy(), geom_xmat=d.geom_xmat.copy(),
                cam_xpos=d.cam_xpos.copy(), cam_xmat=d.cam_xmat.copy())


def mj_cast(m, d, origins, dirs, bodyexclude=-1, geomgroup=GROUPS):
    """``mj_ray`` per ray: distance (inf: miss), geom id (-1: miss), surface normal."""
    origins, dirs = np.asarray(origins, np.float64), np.asarray(dirs, np.float64)
    n = len(origins)
    dist, ids, normals = np.full(n, np.inf), np.full(n, -1), np.zeros((n, 3))
    gid, normal = np.zeros(1, np.int32), np.zeros(3)
    for i in range(n):
        x = mujoco.mj_ray(m, d, origins[i], dirs[i], geomgroup, 1, bodyexclude, gid, normal)
        if x >= 0:
            dist[i], ids[i], normals[i] = x, gid[0], normal
    return dist, ids, normals


def assert_matches_mj_ray(dist, ids, normals, dirs, mj_dist, mj_ids, mj_normals, min_hit_fraction=0.2):
    """Identical geom ids and distances within DIST_TOL on every non-grazing ray.

    A ray is grazing where the surface it hits -- in the renderer's or in mj_ray's answer --
    makes |cos| < GRAZING with it (silhouettes: the float32 and float64 casters may then
    disagree on hit/miss). At most 10% of the rays may be set aside that way.
    """
    dist = np.asarray(dist, np.float64).reshape(-1)
    ids = np.asarray(ids).reshape(-1).astype(int)
    normals = np.asarray(normals, np.float64).reshape(-1, 3)
    dirs = np.asarray(dirs, np.float64).reshape(-1, 3)
    graze = ((ids >= 0) & (np.abs(np.sum(normals * dirs, -1)) < GRAZING)) | (
        (mj_ids >= 0) & (np.abs(np.sum(mj_normals * dirs, -1)) < GRAZING))
    keep = ~graze
    assert keep.mean() > 0.9, f"{graze.sum()} of {len(keep)} rays are grazing"
    bad = keep & (ids != mj_ids)
    assert not bad.any(), (f"{bad.sum()} rays hit other geoms than mj_ray: renderer {ids[bad][:10]}, "
                           f"mj_ray {mj_ids[bad][:10]}, distances {dist[bad][:10]} vs {mj_dist[bad][:10]}")
    hit = keep & (mj_ids >= 0)
    assert hit.mean() >= min_hit_fraction, f"only {hit.mean():.0%} of the rays hit a geom"
    assert np.all(np.isinf(dist[keep & (mj_ids < 0)]))
    # float32 against mj_ray's float64: 0.1 mm, plus 1e-5 relative for far hits (a plane
    # 189 m away came out 1 mm off with XLA:CPU's legacy fusion, which tests/conftest.py selects)
    err = np.abs(dist[hit] - mj_dist[hit]) - 1e-5 * mj_dist[hit]
    assert err.max() < DIST_TOL, f"distance error {err.max():.2e} m beyond 1e-5 relative (mj_ray {mj_dist[hit][err.argmax()]:.4f} m)"
    # normals: unit, facing the ray's origin, and the same as mj_ray's (up to orientation)
    n = normals[hit]
    np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-5)
    assert np.all(np.sum(n * dirs[hit], -1) < 0)
    assert np.all(np.abs(np.sum(n * mj_normals[hit], -1)) > 1 - 1e-4)
    return hit


def pinhole_rays(pos, target, fovy, width, height, up=(0.0, 0.0, 1.0)):
    """MuJoCo's pinhole camera in NumPy: unit ray directions [H*W, 3] through the pixel
    centres (row 0 at the top), vertical field of view ``fovy`` degrees; and the forward axis."""
    pos, target, up = (np.asarray(x, np.float64) for x in (pos, target, up))
    back = (pos - target) / np.linalg.norm(pos - target)
    right = np.cross(up, back)
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    half = np.tan(np.deg2rad(fovy) / 2)
    y = (1 - 2 * (np.arange(height) + 0.5) / height) * half
    x = (2 * (np.arange(width) + 0.5) / width - 1) * half * width / height
    yy, xx = np.meshgrid(y, x, indexing="ij")
    dirs = xx[..., None] * right + yy[..., None] * cam_up - back
    dirs = dirs.reshape(-1, 3)
    return dirs / np.linalg.norm(dirs, axis=-1, keepdims=True), -back


def lambert(rgb, normal, light_dir, ambient, intensity):
    """Expected uint8 colour of a diffuse surface."""
    light = np.asarray(light_dir, np.float64) / np.linalg.norm(light_dir)
    shade = ambient + intensity * np.maximum(normal @ -light, 0.0)
    return np.round(np.clip(np.asarray(rgb)[None] * shade[:, None], 0, 1) * 255)


# ----------------------------------------------------------------------------------------
# (1a) every primitive type and a mesh, random poses, against mj_ray
# ----------------------------------------------------------------------------------------

PRIMITIVES_XML = """
<mujoco>
  <option><flag contact="disable"/></option>  <!-- MJX has no ellipsoid-box collisions -->
  <asset>
    <mesh name="tet" vertex="0 0 0  .35 0 0  0 .35 0  0 0 .35"/>
    <material name="ghost" rgba="1 1 1 0"/>
  </asset>
  <worldbody>
    <light dir="0 0 -1" pos="0 0 3"/>
    <camera name="overview" pos="0 -3.2 2.6" xyaxes="1 0 0 0 .63 .77" fovy="55"/>
    <geom name="floor" type="plane" size="0 0 1"/>
    <geom name="pad" type="plane" size=".35 .25 .1" pos="1.1 -.2 .02" euler="0 0 25" rgba=".2 .6 .2 1"/>
    <!-- in front of the camera but not drawn: group 3, transparent, transparent material -->
    <geom name="hidden_group" type="box" size=".3 .3 .3" pos="0 -2.4 2" group="3"/>
    <geom name="hidden_alpha" type="sphere" size=".3" pos="-.4 -2.4 1.6" rgba="1 0 0 0"/>
    <geom name="hidden_material" type="sphere" size=".3" pos=".4 -2.4 1.6" material="ghost"/>
    <body name="b_sphere"><freejoint/><geom type="sphere" size=".22" rgba=".9 .2 .2 1"/></body>
    <body name="b_capsule"><freejoint/><geom type="capsule" size=".12 .2" rgba=".2 .9 .2 1"/></body>
    <body name="b_ellipsoid"><freejoint/><geom type="ellipsoid" size=".25 .15 .1" rgba=".2 .2 .9 1"/></body>
    <body name="b_cylinder"><freejoint/><geom type="cylinder" size=".15 .18" rgba=".9 .9 .2 1"/></body>
    <body name="b_box"><freejoint/><geom type="box" size=".2 .12 .08" rgba=".9 .2 .9 1"/></body>
    <body name="b_mesh"><freejoint/><geom type="mesh" mesh="tet" rgba=".2 .9 .9 1"/></body>
  </worldbody>
</mujoco>
"""
LAYOUT = [(-0.8, -0.4), (0.0, -0.4), (0.8, -0.5), (-0.8, 0.5), (0.0, 0.5), (0.8, 0.5)]
SEEDS = (0, 1, 2)
W, H = 32, 24


def random_pose_data(m, seed):
    d = mujoco.MjData(m)
    rng = np.random.default_rng(seed)
    for j, (x, y) in enumerate(LAYOUT):
        a = m.jnt_qposadr[j]
        d.qpos[a:a + 3] = [x + rng.uniform(-0.1, 0.1), y + rng.uniform(-0.1, 0.1), rng.uniform(0.2, 0.6)]
        q = rng.normal(size=4)
        d.qpos[a + 3:a + 7] = q / np.linalg.norm(q)
    mujoco.mj_forward(m, d)
    return d


@pytest.fixture(scope="module")
def prim():
    m = mujoco.MjModel.from_xml_string(PRIMITIVES_XML)
    r = R.Renderer(m, W, H)
    render = jax.jit(lambda data, cam, app: r.render(data, cam, app, outputs=R.OUTPUTS))
    cast = jax.jit(r.cast)
    datas = {s: random_pose_data(m, s) for s in SEEDS}
    return dict(m=m, r=r, render=render, cast=cast, datas=datas,
                mjx={s: mjx.put_data(m, d) for s, d in datas.items()})


def prim_cameras(r, data):
    return {"model": r.model_camera(data, "overview"),
            "look_at": R.look_at((2.6, -2.2, 1.9), (0.0, 0.0, 0.3), fovy=60.0)}


@pytest.mark.parametrize("seed", SEEDS)
def test_primitives_and_mesh_match_mj_ray(prim, seed):
    m, r, d, data = prim["m"], prim["r"], prim["datas"][seed], prim["mjx"][seed]
    app = r.default_appearance()
    seen = set()
    for name, cam in prim_cameras(r, data).items():
        out = jax.device_get(prim["render"](data, cam, app))
        origins, dirs, _ = map(np.asarray, r.camera_rays(cam))
        mj = mj_cast(m, d, origins, dirs)
        hit = assert_matches_mj_ray(out["distance"], out["geom_id"], out["normals"], dirs, *mj)
        seen |= set(mj[1][hit])
        # the hidden geoms do lie in front of the model camera: mj_ray sees them once visible
        if name == "model":
            m_all = copy.deepcopy(m)
            m_all.geom_group[:] = 0
            m_all.geom_rgba[:, 3] = 1
            m_all.mat_rgba[:, 3] = 1
            _, ids_all, _ = mj_cast(m_all, d, origins, dirs)
            for g in ("hidden_group", "hidden_alpha", "hidden_material"):
                assert (ids_all == m.geom(g).id).sum() > 3, g
    # random rays from all around (the lower half from below the floor, which planes hide)
    rng = np.random.default_rng(100 + seed)
    n = 300
    u = rng.normal(size=(n, 3))
    origins = np.array([0, 0, 0.5]) + 3.0 * u / np.linalg.norm(u, axis=1, keepdims=True)
    targets = d.xpos[1 + rng.integers(0, len(LAYOUT), n)] + rng.uniform(-0.3, 0.3, (n, 3))
    dirs = (targets - origins) / np.linalg.norm(targets - origins, axis=1, keepdims=True)
    origins, dirs = origins.astype(np.float32), dirs.astype(np.float32)
    hits = jax.device_get(prim["cast"](data, origins, dirs))
    mj = mj_cast(m, d, origins, dirs)
    hit = assert_matches_mj_ray(hits.distance, hits.geom_id, hits.normal, dirs, *mj, min_hit_fraction=0.5)
    np.testing.assert_allclose(hits.point[hit], origins[hit] + hits.distance[hit, None] * dirs[hit], atol=1e-5)
    seen |= set(mj[1][hit])
    types = {int(m.geom_type[g]) for g in seen}
    assert types == {R.PLANE, R.SPHERE, R.CAPSULE, R.ELLIPSOID, R.CYLINDER, R.BOX, R.MESH}
    assert m.geom("pad").id in seen  # the finite plane


def test_model_camera_pose(prim):
    r, data, d = prim["r"], prim["mjx"][0], prim["datas"][0]
    cam = r.model_camera(data, "overview")
    assert r.camera_id(0) == r.camera_id("overview") == 0
    np.testing.assert_allclose(cam.pos, d.cam_xpos[0], atol=1e-6)
    np.testing.assert_allclose(cam.fovy, 55.0)
    origins, dirs, forward = map(np.asarray, r.camera_rays(cam))
    np.testing.assert_allclose(origins, np.broadcast_to(d.cam_xpos[0], origins.shape), atol=1e-6)
    np.testing.assert_allclose(forward, -d.cam_xmat[0].reshape(3, 3)[:, 2], atol=1e-6)
    img = dirs.reshape(H, W, 3)
    centre = img[H // 2 - 1:H // 2 + 1, W // 2 - 1:W // 2 + 1].reshape(4, 3).mean(0)
    np.testing.assert_allclose(centre / np.linalg.norm(centre), forward, atol=1e-6)
    right, up = d.cam_xmat[0].reshape(3, 3)[:, 0], d.cam_xmat[0].reshape(3, 3)[:, 1]
    assert img[0, W // 2] @ up > 0 > img[-1, W // 2] @ up  # row 0 at the top
    assert img[H // 2, -1] @ right > 0 > img[H // 2, 0] @ right  # column 0 on the left


def test_rays_from_inside_solids_report_the_exit_point(prim):
    """The module promises the exit point for rays that start inside a solid, as mj_ray."""
    m, d, data = prim["m"], prim["datas"][0], prim["mjx"][0]
    rng = np.random.default_rng(7)
    solids = np.nonzero(m.geom_bodyid > 0)[0]  # the six free bodies' geoms
    origins = np.repeat(d.geom_xpos[solids], 50, axis=0)  # geom centres: inside every solid
    dirs = rng.normal(size=origins.shape)
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origins, dirs = origins.astype(np.float32), dirs.astype(np.float32)  # 300 rays, as compiled
    hits = jax.device_get(prim["cast"](data, origins, dirs))
    mj_dist, mj_ids, _ = mj_cast(m, d, origins, dirs)
    own = mj_ids == np.repeat(solids, 50)
    assert own.mean() > 0.9  # (a few leave through the floor first)
    np.testing.assert_array_equal(hits.geom_id, mj_ids)
    wrong = sorted({mujoco.mjtGeom(int(m.geom_type[g])).name[7:].lower()
                    for g, a, b in zip(mj_ids, hits.distance, mj_dist) if abs(a - b) > DIST_TOL})
    assert not wrong, f"rays starting inside these geoms do not report the exit point: {wrong}"


# ----------------------------------------------------------------------------------------
# (1b) DM Control models from MuJoCo Playground against mj_ray
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["cartpole_swingup", "walker_walk", "finger_spin", "cheetah_run"])
def test_dm_control_models_match_mj_ray(task):
    from vasa.envs import make_raw

    m = make_raw(f"dmc/{task}").mj_model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(sum(map(ord, task)))
    d.qpos[:] = m.qpos0 + rng.uniform(-0.6, 0.6, m.nq)
    mujoco.mj_forward(m, d)
    r = R.Renderer(m, W, H)
    render = jax.jit(lambda data, cam: r.render(data, cam, outputs=("distance", "geom_id", "normals")))
    data = pose_dict(d)
    com = d.subtree_com[0]
    free = R.look_at(com + m.stat.extent * np.array([0.5, -1.0, 0.4]), com, fovy=50.0)
    seen = set()
    for cam in (r.model_camera(data, 0), free):
        out = jax.device_get(render(data, cam))
        origins, dirs, _ = map(np.asarray, r.camera_rays(cam))
        mj = mj_cast(m, d, origins, dirs)
        hit = assert_matches_mj_ray(out["distance"], out["geom_id"], out["normals"], dirs, *mj, min_hit_fraction=0.15)
        seen |= set(mj[1][hit])
    assert len(seen) >= min(m.ngeom, 5), f"only geoms {seen} are in view"
    if task == "finger_spin":
        assert R.CYLINDER in {int(m.geom_type[g]) for g in seen}


# ----------------------------------------------------------------------------------------
# (2) a closed-form image of a lit sphere
# ----------------------------------------------------------------------------------------

SPHERE_XML = """
<mujoco>
  <asset><material name="unused"/></asset>
  <worldbody>
    <geom name="ball" type="sphere" size=".5" pos=".3 .2 .1" rgba=".8 .4 .2 1"/>
  </worldbody>
</mujoco>
"""


def test_lit_sphere_matches_closed_form():
    m = mujoco.MjModel.from_xml_string(SPHERE_XML)
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    w, h = 40, 30
    r = R.Renderer(m, w, h)
    pos, target, fovy = np.array([0.5, -3.0, 1.0]), np.zeros(3), 30.0
    cam = R.look_at(pos, target, fovy=fovy)
    light, ambient, intensity, bg = np.array([-1.0, 2.0, -1.5]), 0.15, 0.8, np.array([0.1, 0.3, 0.6])
    app = r.default_appearance().replace(
        light_dir=jnp.asarray(light, jnp.float32), ambient=jnp.float32(ambient), light_intensity=jnp.float32(intensity),
        background=jnp.int32(R.BG_GRADIENT), bg_top=jnp.asarray(bg, jnp.float32), bg_bottom=jnp.asarray(bg, jnp.float32))
    out = jax.device_get(jax.jit(lambda c, a: r.render({"geom_xpos": d.geom_xpos, "geom_xmat": d.geom_xmat}, c, a,
                                                       outputs=("rgb", "depth", "distance", "geom_id")))(cam, app))
    assert out["rgb"].shape == (h, w, 3) and out["rgb"].dtype == np.uint8
    assert out["depth"].shape == (h, w) and out["depth"].dtype == np.float32
    assert out["geom_id"].dtype == np.int32

    # the camera's rays, from MuJoCo's pinhole model
    dirs, forward = pinhole_rays(pos, target, fovy, w, h)
    np.testing.assert_allclose(np.asarray(r.camera_rays(cam)[1]), dirs, atol=1e-6)
    # ray / sphere in float64
    centre, radius = np.array([0.3, 0.2, 0.1]), 0.5
    oc = pos - centre
    b = dirs @ oc
    disc = b * b - (oc @ oc - radius**2)
    on = disc > 1e-3 * radius**2
    silhouette = np.abs(disc) <= 1e-3 * radius**2
    assert silhouette.sum() < 0.1 * on.sum()
    t = -b - np.sqrt(np.maximum(disc, 0))
    normal = (pos + t[:, None] * dirs - centre) / radius

    rgb = out["rgb"].reshape(-1, 3).astype(int)
    gid, dist, depth = out["geom_id"].reshape(-1), out["distance"].reshape(-1), out["depth"].reshape(-1)
    assert 0.15 < on.mean() < 0.6
    np.testing.assert_array_equal(gid[on], 0)
    np.testing.assert_array_equal(gid[~on & ~silhouette], -1)
    np.testing.assert_allclose(dist[on], t[on], atol=DIST_TOL)
    np.testing.assert_allclose(depth[on], t[on] * (dirs[on] @ forward), atol=DIST_TOL)
    assert np.all(np.isinf(depth[gid < 0])) and np.all(np.isinf(dist[gid < 0]))
    expected = lambert([0.8, 0.4, 0.2], normal[on], light, ambient, intensity)
    assert np.abs(rgb[on] - expected).max() <= 1
    lit = normal[on] @ -(light / np.linalg.norm(light)) > 0.2
    assert 0.2 < lit.mean() < 0.95  # both the lit and the dark side are in view
    np.testing.assert_array_equal(rgb[~on & ~silhouette], np.broadcast_to(np.round(bg * 255), rgb[~on & ~silhouette].shape))
    # the sphere lies right of and above the image centre (+x world is right, as seen from -y)
    rows, cols = np.nonzero(on.reshape(h, w))
    assert cols.mean() > w / 2 and rows.mean() < h / 2


# ----------------------------------------------------------------------------------------
# (3) the outputs agree with each other
# ----------------------------------------------------------------------------------------


def test_outputs_are_consistent(prim):
    m, r, data = prim["m"], prim["r"], prim["mjx"][1]
    app = r.default_appearance()
    app = app.replace(bg_top=jnp.array([0.9, 0.8, 0.7]), bg_bottom=jnp.array([0.1, 0.2, 0.3]))
    sky = R.look_at((0.0, -3.0, 0.6), (0.0, 0.0, 1.2), fovy=60.0)  # two thirds background
    n_bg = 0
    for cam in [*prim_cameras(r, data).values(), sky]:
        out = jax.device_get(prim["render"](data, cam, app))
        assert set(out) == set(R.OUTPUTS)
        gid, bid = out["geom_id"], out["body_id"]
        assert gid.shape == bid.shape == out["depth"].shape == out["distance"].shape == (H, W)
        assert out["normals"].shape == out["rgb"].shape == (H, W, 3)
        bg = gid == -1
        n_bg += bg.sum()
        assert bg.mean() < 0.9
        assert np.all(np.isinf(out["depth"][bg])) and np.all(np.isinf(out["distance"][bg]))
        assert np.all(np.isfinite(out["depth"][~bg])) and np.all(out["depth"][~bg] > 0)
        np.testing.assert_array_equal(bid[bg], -1)
        np.testing.assert_array_equal(bid[~bg], m.geom_bodyid[gid[~bg]])
        np.testing.assert_allclose(np.linalg.norm(out["normals"][~bg], axis=-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(out["normals"][bg], 0.0)
        _, dirs, forward = map(np.asarray, r.camera_rays(cam))
        dirs = dirs.reshape(H, W, 3)
        np.testing.assert_allclose(out["depth"][~bg], out["distance"][~bg] * (dirs[~bg] @ forward), rtol=1e-5)
        # the background is the vertical gradient by ray elevation
        s = 0.5 + 0.5 * dirs[..., 2:]
        grad = np.array([0.1, 0.2, 0.3]) + np.array([0.8, 0.6, 0.4]) * s
        assert np.abs(out["rgb"][bg].astype(int) - np.round(grad[bg] * 255)).max(initial=0) <= 1
    assert n_bg > 300
    with pytest.raises(ValueError, match="colour"):
        r.render(data, 0, outputs=("rgb", "colour"))


# ----------------------------------------------------------------------------------------
# (4) textures and (5) shadows, on a floor with a ball and a crate
# ----------------------------------------------------------------------------------------

TABLETOP_XML = """
<mujoco>
  <asset><material name="unused"/></asset>
  <worldbody>
    <geom name="floor" type="plane" size="0 0 1" pos=".1 -.2 0" euler="0 0 30" rgba=".6 .6 .6 1"/>
    <geom name="ball" type="sphere" size=".3" pos="0 0 .6" rgba=".8 .4 .2 1"/>
    <geom name="crate" type="box" size=".15 .15 .15" pos=".6 .5 .15" rgba=".3 .5 .7 1"/>
  </worldbody>
</mujoco>
"""
TW, TH = 48, 36
TABLE_CAM = dict(pos=(1.3, -1.1, 1.3), target=(-0.1, 0.1, 0.1), fovy=60.0)


@pytest.fixture(scope="module")
def tabletop():
    m = mujoco.MjModel.from_xml_string(TABLETOP_XML)
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    data = pose_dict(d)
    cam = R.look_at(TABLE_CAM["pos"], TABLE_CAM["target"], fovy=TABLE_CAM["fovy"])
    outputs = ("rgb", "distance", "depth", "geom_id")
    renders = {}
    for shadows in (False, True):
        r = R.Renderer(m, TW, TH, shadows=shadows)
        renders[shadows] = (r, jax.jit(lambda app, r=r: r.render(data, cam, app, outputs=outputs)))
    _, dirs, _ = map(np.asarray, renders[False][0].camera_rays(cam))
    return dict(m=m, d=d, renders=renders, dirs=dirs.reshape(TH, TW, 3), cam_pos=np.asarray(TABLE_CAM["pos"]))


def top_light(app, ambient=0.3, intensity=0.7):
    return app.replace(light_dir=jnp.array([0.0, 0.0, -1.0]), ambient=jnp.float32(ambient),
                       light_intensity=jnp.float32(intensity))


def test_checker_texture_follows_the_geom_frame(tabletop):
    m, d = tabletop["m"], tabletop["d"]
    r, render = tabletop["renders"][False]
    floor = m.geom("floor").id
    scale = 0.25
    c1, c2 = np.array([0.9, 0.1, 0.1]), np.array([0.1, 0.1, 0.9])
    app = top_light(r.default_appearance())  # shade 1 on the floor: pixels show c1 or c2
    app = app.replace(geom_texture=app.geom_texture.at[floor].set(R.TEX_CHECKER),
                      geom_texture_scale=app.geom_texture_scale.at[floor].set(scale),
                      geom_rgb=app.geom_rgb.at[floor].set(c1), geom_rgb2=app.geom_rgb2.at[floor].set(c2))
    out = jax.device_get(render(app))
    on_floor = out["geom_id"] == floor
    assert on_floor.mean() > 0.4
    point = tabletop["cam_pos"] + out["distance"][..., None].astype(np.float64) * tabletop["dirs"]
    local = (point - d.geom_xpos[floor]) @ d.geom_xmat[floor].reshape(3, 3)  # the floor's frame (rotated 30 deg)
    q = local[..., :2] / scale
    frac = q - np.floor(q)
    clear = on_floor & np.all((frac > 0.01) & (frac < 0.99), -1)
    odd = (np.floor(q).sum(-1) % 2) == 1
    rgb = out["rgb"].astype(int)
    assert np.abs(rgb[clear & odd] - np.round(c1 * 255)).max() <= 1
    assert np.abs(rgb[clear & ~odd] - np.round(c2 * 255)).max() <= 1
    assert (clear & odd).sum() > 50 and (clear & ~odd).sum() > 50
    assert clear.sum() > 0.8 * on_floor.sum()


def test_background_texture_shows_background_but_keeps_geometry(tabletop):
    m = tabletop["m"]
    r, render = tabletop["renders"][False]
    crate = m.geom("crate").id
    top, bottom = np.array([0.9, 0.9, 1.0]), np.array([0.2, 0.1, 0.0])
    app = top_light(r.default_appearance()).replace(bg_top=jnp.asarray(top, jnp.float32),
                                                    bg_bottom=jnp.asarray(bottom, jnp.float32))
    see_through = app.replace(geom_texture=app.geom_texture.at[crate].set(R.TEX_BACKGROUND))
    a, b = jax.device_get(render(app)), jax.device_get(render(see_through))
    on_crate = a["geom_id"] == crate
    assert on_crate.sum() > 10
    for k in ("geom_id", "depth", "distance"):
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_array_equal(a["rgb"][~on_crate], b["rgb"][~on_crate])
    s = 0.5 + 0.5 * tabletop["dirs"][..., 2:]
    expected = np.round((bottom + (top - bottom) * s) * 255)
    assert np.abs(b["rgb"][on_crate].astype(int) - expected[on_crate]).max() <= 1
    assert np.abs(a["rgb"][on_crate].astype(int) - expected[on_crate]).max() > 20  # it was drawn before


def test_shadow_of_ball_on_floor(tabletop):
    m = tabletop["m"]
    floor, ball, crate = (m.geom(n).id for n in ("floor", "ball", "crate"))
    ambient, intensity = 0.3, 0.6
    outs = {}
    for shadows, (r, render) in tabletop["renders"].items():
        outs[shadows] = jax.device_get(render(top_light(r.default_appearance(), ambient, intensity)))
    lit, shaded = outs[False], outs[True]
    np.testing.assert_array_equal(lit["geom_id"], shaded["geom_id"])
    point = tabletop["cam_pos"] + lit["distance"][..., None].astype(np.float64) * tabletop["dirs"]
    radius = 0.3  # the ball is straight above the origin, the light straight down
    rho = np.linalg.norm(point[..., :2], axis=-1)
    on_floor = lit["geom_id"] == floor
    umbra = on_floor & (rho < radius - 0.02)
    assert umbra.sum() >= 5, "the shadow is not in view"
    grey = np.array([0.6, 0.6, 0.6])
    assert np.abs(lit["rgb"][umbra].astype(int) - np.round(grey * (ambient + intensity) * 255)).max() <= 1
    assert np.abs(shaded["rgb"][umbra].astype(int) - np.round(grey * ambient * 255)).max() <= 1
    # nothing else changes: floor away from the shadow (and the crate's footprint), ball, crate
    near_crate = np.all(np.abs(point[..., :2] - [0.6, 0.5]) < 0.15 + 0.02, -1)
    elsewhere = ~(on_floor & ((rho < radius + 0.02) | near_crate))
    assert (on_floor & elsewhere).sum() > 100 and (lit["geom_id"] == ball).sum() > 10
    np.testing.assert_array_equal(lit["rgb"][elsewhere], shaded["rgb"][elsewhere])
    assert (lit["geom_id"] == crate).any()


# ----------------------------------------------------------------------------------------
# textures of the model itself
# ----------------------------------------------------------------------------------------

SHARED_TEXTURE_XML = """
<mujoco>
  <asset>
    <texture name="chk" type="2d" builtin="checker" rgb1="1 1 1" rgb2="0 0 0" width="64" height="64"/>
    <material name="grey_checker" texture="chk" rgba=".5 .5 .5 1"/>
  </asset>
  <worldbody>
    <geom name="a" type="plane" size="1 1 1" pos="-1.05 0 0" material="grey_checker"/>
    <geom name="b" type="plane" size="1 1 1" pos="1.05 0 0" material="grey_checker"/>
  </worldbody>
</mujoco>
"""


def test_model_texture_shared_by_two_geoms():
    """Two geoms with one textured material look the same: texture x material colour."""
    m = mujoco.MjModel.from_xml_string(SHARED_TEXTURE_XML)
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    r = R.Renderer(m, 32, 16)
    app = top_light(r.default_appearance())
    np.testing.assert_array_equal(np.asarray(app.geom_texture), [R.TEX_MODEL, R.TEX_MODEL])
    cam = R.look_at((0.0, -0.01, 3.0), (0.0, 0.0, 0.0), fovy=60.0)
    out = jax.device_get(jax.jit(lambda a: r.render(pose_dict(d), cam, a, outputs=("rgb", "geom_id")))(app))
    for g in (0, 1):
        values = out["rgb"][out["geom_id"] == g].astype(int)
        assert len(values) > 50
        # white cells x 0.5 and black cells; nothing else
        assert np.all((np.abs(values - 128) <= 1).all(-1) | (values == 0).all(-1)), np.unique(values, axis=0)
        assert (values > 100).all(-1).sum() > 10 and (values == 0).all(-1).sum() > 10


def test_renderer_built_inside_a_traced_function():
    """A Renderer of a textured model can be built inside ``jit`` (as examples/show_observations.py
    does) and draws what one built outside draws."""
    m = mujoco.MjModel.from_xml_string(SHARED_TEXTURE_XML)
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    cam = R.look_at((0.0, -0.01, 3.0), (0.0, 0.0, 0.0), fovy=60.0)
    inside = jax.jit(lambda pose: R.Renderer(m, 32, 16).render(pose, cam)["rgb"])(pose_dict(d))
    r = R.Renderer(m, 32, 16)
    outside = jax.jit(lambda pose: r.render(pose, cam)["rgb"])(pose_dict(d))
    np.testing.assert_array_equal(np.asarray(inside), np.asarray(outside))
    assert np.asarray(inside).std() > 10  # the checker, not a blank frame


def test_model_without_materials():
    m = mujoco.MjModel.from_xml_string(SPHERE_XML.replace('<asset><material name="unused"/></asset>', ""))
    assert m.nmat == 0
    r = R.Renderer(m, 8, 6)
    np.testing.assert_allclose(np.asarray(r.default_appearance().geom_rgb), [[0.8, 0.4, 0.2]])


# ----------------------------------------------------------------------------------------
# (6) errors
# ----------------------------------------------------------------------------------------

HFIELD_XML = """
<mujoco>
  <asset>
    <hfield name="bumps" nrow="4" ncol="4" size="1 1 .2 .1"/>
    <material name="unused"/>
  </asset>
  <worldbody>
    <camera name="front" pos="0 -3 1" xyaxes="1 0 0 0 .3 1"/>
    <camera name="top" pos="0 0 4"/>
    <geom name="terrain" type="hfield" hfield="bumps"/>
    <geom name="rock" type="sphere" size=".3" pos="0 0 .5" group="1"/>
  </worldbody>
</mujoco>
"""


def test_unsupported_geoms_and_bad_arguments():
    m = mujoco.MjModel.from_xml_string(HFIELD_XML)
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    with pytest.raises(ValueError, match=r"terrain \(hfield\).*skip_unsupported"):
        R.Renderer(m, 16, 12)
    R.Renderer(m, 16, 12, geom_groups=(1,))  # the height field is not drawn: fine
    with pytest.warns(UserWarning, match="terrain") as record:
        r = R.Renderer(m, 16, 12, skip_unsupported=True)
    assert len([w for w in record if "terrain" in str(w.message)]) == 1
    data = pose_dict(d)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once, at construction
        out = jax.device_get(jax.jit(lambda data: r.render(data, "front", outputs=("rgb", "geom_id")))(data))
    assert out["rgb"].shape == (12, 16, 3)
    assert (out["geom_id"] == m.geom("rock").id).sum() > 5
    assert not (out["geom_id"] == m.geom("terrain").id).any()

    for camera in ("back", 2, -1):
        with pytest.raises(ValueError) as err:
            r.render(data, camera)
        msg = str(err.value)
        assert repr(camera) in msg and "'front'" in msg and "'top'" in msg
    with pytest.raises(ValueError, match="'front'"):
        r.model_camera(data, "nope")


@pytest.mark.parametrize("width,height,field", [(0, 24, "width"), (32, 0, "height"), (-4, 24, "width"),
                                                (32, -1, "height"), (2.5, 24, "width")])
def test_bad_image_size(width, height, field):
    m = mujoco.MjModel.from_xml_string(SPHERE_XML)
    with pytest.raises(ValueError, match=field):
        R.Renderer(m, width, height)


# ----------------------------------------------------------------------------------------
# (7) a batch of appearances under vmap
# ----------------------------------------------------------------------------------------


def test_vmap_over_appearances(prim):
    r, data = prim["r"], prim["mjx"][0]
    cam = r.model_camera(data, 0)
    base = r.default_appearance()
    rng = np.random.default_rng(0)
    apps = [base.replace(geom_rgb=jnp.asarray(rng.uniform(0, 1, base.geom_rgb.shape), jnp.float32)) for _ in range(3)]
    batch = jax.tree.map(lambda *xs: jnp.stack(xs), *apps)
    images = np.asarray(jax.jit(jax.vmap(lambda app: r.render(data, cam, app)["rgb"]))(batch))
    assert images.shape == (3, H, W, 3)
    gid = np.asarray(prim["render"](data, cam, apps[0])["geom_id"])
    for i, app in enumerate(apps):
        single = np.asarray(prim["render"](data, cam, app)["rgb"])
        assert np.abs(images[i].astype(int) - single).max() <= 1
        assert (images[i] == single).mean() > 0.99
        for j in range(i):
            assert np.abs(images[i].astype(int) - images[j])[gid >= 0].mean() > 10
            np.testing.assert_array_equal(images[i][gid < 0], images[j][gid < 0])


# ----------------------------------------------------------------------------------------
# (8-10) LiDAR, dropout and occupancy grids in a rectangular room
# ----------------------------------------------------------------------------------------

ROOM_XML = """
<mujoco>
  <asset><material name="unused"/></asset>
  <worldbody>
    <geom name="floor" type="plane" size="0 0 1"/>
    <body name="wall_px" pos="2.1 0 1"><geom type="box" size=".1 2 1"/></body>
    <body name="wall_nx" pos="-2.1 0 1"><geom type="box" size=".1 2 1"/></body>
    <body name="wall_py" pos="0 1.6 1"><geom type="box" size="2.2 .1 1"/></body>
    <body name="wall_ny" pos="0 -1.6 1"><geom type="box" size="2.2 .1 1"/></body>
    <body name="robot" pos=".3 -.2 .3" euler="0 0 30">
      <geom name="chassis" type="sphere" size=".12"/>
      <site name="lidar"/>
    </body>
  </worldbody>
</mujoco>
"""
HALF_X, HALF_Y, SENSOR_Z = 2.0, 1.5, 0.3  # inner faces of the walls at x = +-2, y = +-1.5


def room_distance(pos, azimuth, elevation=0.0):
    """Distance from ``pos`` along world azimuth / elevation to the room's walls or floor."""
    c, s = np.cos(azimuth), np.sin(azimuth)
    with np.errstate(divide="ignore"):
        tx = np.where(c > 0, (HALF_X - pos[0]) / c, (-HALF_X - pos[0]) / c)
        ty = np.where(s > 0, (HALF_Y - pos[1]) / s, (-HALF_Y - pos[1]) / s)
    horizontal = np.minimum(np.where(np.abs(c) > 1e-9, tx, np.inf), np.where(np.abs(s) > 1e-9, ty, np.inf))
    wall = horizontal / np.cos(elevation)
    with np.errstate(divide="ignore"):
        floor = np.where(elevation < 0, pos[2] / np.sin(-elevation), np.inf)
    return np.minimum(wall, floor), floor < wall


@pytest.fixture(scope="module")
def room():
    m = mujoco.MjModel.from_xml_string(ROOM_XML)
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    return m, d, mjx.put_data(m, d)


def test_lidar_in_a_room(room):
    m, d, data = room
    yaw = np.deg2rad(30.0)
    pos = d.site_xpos[0]
    full = R.LidarConfig(num_rays=181, fov_deg=360.0, min_range=0.05, max_range=10.0)
    short = R.LidarConfig(num_rays=181, fov_deg=360.0, max_range=1.8)
    fan = R.LidarConfig(num_rays=24, fov_deg=360.0, max_range=10.0, beams=16, vertical_fov_deg=(-45.0, 30.0))
    lidars = dict(
        planar=R.Lidar(m, full, site="lidar"),
        blind=R.Lidar(m, R.LidarConfig(num_rays=181, fov_deg=360.0, min_range=0.2), site="lidar", exclude_bodies=[]),
        short=R.Lidar(m, short, body="robot"),
        fan=R.Lidar(m, fan, site="lidar"),
    )
    scans = jax.device_get(jax.jit(lambda data: {k: l.scan(data) for k, l in lidars.items()})(data))

    az = full.angles().astype(np.float64)
    assert scans["planar"].shape == (181,) and scans["planar"].dtype == np.float32
    expected, _ = room_distance(pos, az + yaw)
    np.testing.assert_allclose(scans["planar"], expected, atol=DIST_TOL)
    # and mj_ray per ray, with the robot's body excluded
    world_dirs = np.stack([np.cos(az + yaw), np.sin(az + yaw), np.zeros_like(az)], -1)
    mj_dist, mj_ids, _ = mj_cast(m, d, np.broadcast_to(pos, world_dirs.shape), world_dirs, bodyexclude=m.body("robot").id)
    assert np.all(mj_ids >= 0)
    np.testing.assert_allclose(scans["planar"], mj_dist, atol=DIST_TOL)
    # without excluding its own body, the sensor sees the chassis around it (0.12 m, clipped to 0.2)
    np.testing.assert_allclose(scans["blind"], 0.2)
    # beyond max_range: max_range
    far = expected > 1.8
    assert 20 < far.sum() < 160
    np.testing.assert_allclose(scans["short"][far], 1.8)
    np.testing.assert_allclose(scans["short"][~far], expected[~far], atol=DIST_TOL)
    # a 16-beam fan: the lower beams hit the floor at h / sin(-elevation)
    el = fan.elevations().astype(np.float64)
    np.testing.assert_allclose(el, np.deg2rad(np.linspace(-45, 30, 16)), atol=1e-6)
    assert scans["fan"].shape == (16, 24)
    exp_fan, on_floor = room_distance(pos, fan.angles().astype(np.float64)[None] + yaw, el[:, None])
    np.testing.assert_allclose(scans["fan"], exp_fan, rtol=1e-5, atol=DIST_TOL)
    down = el < np.deg2rad(-14.0)
    assert down.sum() >= 6 and on_floor[down].all()
    np.testing.assert_allclose(scans["fan"][down], np.broadcast_to(SENSOR_Z / np.sin(-el[down])[:, None], (down.sum(), 24)),
                               rtol=1e-5)


def test_lidar_config_validation():
    with pytest.raises(ValueError, match="fov_deg"):
        R.Lidar(mujoco.MjModel.from_xml_string(ROOM_XML), R.LidarConfig(fov_deg=0.0))
    with pytest.raises(ValueError, match="min_range"):
        R.LidarConfig(min_range=6.0, max_range=5.0).validate()
    with pytest.raises(ValueError, match="'robot'"):
        R.Lidar(mujoco.MjModel.from_xml_string(ROOM_XML), body="rover")


def test_lidar_dropout():
    max_range = 5.6
    ranges = jnp.full((100_000,), 1.5, jnp.float32)
    key = jax.random.PRNGKey(0)
    out = np.asarray(R.lidar_dropout(key, ranges, 0.3, max_range))
    dropped = out == np.float32(max_range)
    assert abs(dropped.mean() - 0.3) < 0.01
    np.testing.assert_array_equal(out[~dropped], 1.5)
    np.testing.assert_array_equal(out, np.asarray(R.lidar_dropout(key, ranges, 0.3, max_range)))
    assert (out != np.asarray(R.lidar_dropout(jax.random.PRNGKey(1), ranges, 0.3, max_range))).any()
    np.testing.assert_array_equal(np.asarray(R.lidar_dropout(key, ranges, 0.0, max_range)), ranges)
    fan = R.lidar_dropout(key, ranges.reshape(16, -1), 0.3, max_range)
    assert fan.shape == (16, 6250)


def yaw_matrix(deg):
    c, s = np.cos(np.deg2rad(deg)), np.sin(np.deg2rad(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], np.float32)


def test_occupancy_grid_in_a_room(room):
    m, d, data = room
    n_grid, extent = 64, 5.0
    cell = extent / n_grid
    centre = np.array([0.0, 0.0, SENSOR_Z], np.float32)
    cfg = R.LidarConfig(num_rays=720, fov_deg=360.0, max_range=5.6)
    others = {"front": ["wall_nx", "wall_py", "wall_ny"], "left": ["wall_px", "wall_nx", "wall_ny"]}
    lidars = {"room": R.Lidar(m, cfg, site="lidar"),
              **{k: R.Lidar(m, cfg, site="lidar", exclude_bodies=["robot", *v]) for k, v in others.items()}}
    angles = jnp.asarray(cfg.angles())
    grid = jax.jit(lambda r: R.occupancy_grid(r, angles, cfg.max_range, grid_size=n_grid, extent=extent))

    def scan_and_grid(mat):
        return {k: (l.scan(data, centre, mat), grid(l.scan(data, centre, mat))) for k, l in lidars.items()}

    run = jax.jit(scan_and_grid)
    res = jax.device_get(run(np.eye(3, dtype=np.float32)))
    ranges, g = res["room"]
    assert g.shape == (n_grid, n_grid) and g.dtype == np.uint8
    np.testing.assert_allclose(ranges, room_distance(centre, cfg.angles().astype(np.float64))[0], atol=DIST_TOL)

    # cell centres in the sensor frame: row 0 at +x (forward), column 0 at +y (left)
    x = (extent / 2 - (np.arange(n_grid) + 0.5) * cell)[:, None] * np.ones((1, n_grid))
    y = (extent / 2 - (np.arange(n_grid) + 0.5) * cell)[None, :] * np.ones((n_grid, 1))
    outside = (np.abs(x) > HALF_X + cell) | (np.abs(y) > HALF_Y + cell)
    inside = (np.abs(x) < HALF_X - cell) & (np.abs(y) < HALF_Y - cell)
    assert outside.sum() > 500 and inside.sum() > 1000
    np.testing.assert_array_equal(g[outside], R.OCC_UNKNOWN)
    np.testing.assert_array_equal(g[inside], R.OCC_FREE)
    # occupied: exactly the cells holding the hit points, all on the walls
    hx, hy = ranges * np.cos(cfg.angles()), ranges * np.sin(cfg.angles())
    rows = np.floor((extent / 2 - hx) / cell).astype(int)
    cols = np.floor((extent / 2 - hy) / cell).astype(int)
    expected = np.zeros_like(g, bool)
    expected[rows, cols] = True
    np.testing.assert_array_equal(g == R.OCC_OCCUPIED, expected)
    front, back = int((extent / 2 - HALF_X) / cell), int((extent / 2 + HALF_X) / cell)  # rows 6, 57
    left, right = int((extent / 2 - HALF_Y) / cell), int((extent / 2 + HALF_Y) / cell)  # columns 12, 51
    assert np.all(g[front, left:right + 1] == R.OCC_OCCUPIED) and np.all(g[back, left:right + 1] == R.OCC_OCCUPIED)
    assert np.all(g[front:back + 1, left] == R.OCC_OCCUPIED) and np.all(g[front:back + 1, right] == R.OCC_OCCUPIED)
    np.testing.assert_array_equal(g[np.hypot(x, y) <= 0.2], R.OCC_FREE)

    # orientation: a wall only in front shows up in the top rows, one only on the left in
    # the left columns; turned 90 degrees left, the front wall is on the sensor's right
    _, g_front = res["front"]
    occ_rows, _ = np.nonzero(g_front == R.OCC_OCCUPIED)
    assert len(occ_rows) > 40 and set(occ_rows) == {front}
    _, g_left = res["left"]
    _, occ_cols = np.nonzero(g_left == R.OCC_OCCUPIED)
    assert len(occ_cols) > 30 and set(occ_cols) == {left}
    _, g_turned = jax.device_get(run(yaw_matrix(90.0)))["front"]
    _, occ_cols = np.nonzero(g_turned == R.OCC_OCCUPIED)
    assert len(occ_cols) > 40 and set(occ_cols) == {int((extent / 2 + HALF_X) / cell)}


def test_occupancy_grid_fov_and_footprint():
    n, max_range = 241, 4.0
    angles = jnp.asarray(R.LidarConfig(num_rays=n, fov_deg=240.0).angles())
    grid = jax.jit(lambda r, a: R.occupancy_grid(r, a, max_range, grid_size=32, extent=5.0, footprint_radius=0.3))
    # nothing within range: free inside the 240 degree fan, unknown behind the sensor
    g = np.asarray(grid(jnp.full((n,), max_range), angles))
    cell = 5.0 / 32
    c = 2.5 - (np.arange(32) + 0.5) * cell
    x, y = c[:, None] * np.ones((1, 32)), c[None, :] * np.ones((32, 1))
    r, theta = np.hypot(x, y), np.abs(np.arctan2(y, x))
    assert not (g == R.OCC_OCCUPIED).any()
    np.testing.assert_array_equal(g[(theta < np.deg2rad(115)) & (r < 2.4)], R.OCC_FREE)
    np.testing.assert_array_equal(g[(theta > np.deg2rad(125)) & (r > 0.3)], R.OCC_UNKNOWN)
    # an obstacle all around, closer than the footprint: the footprint stays free
    g = np.asarray(grid(jnp.full((n,), 0.15), angles))
    np.testing.assert_array_equal(g[r <= 0.3], R.OCC_FREE)
    np.testing.assert_array_equal(g[r > 0.4], R.OCC_UNKNOWN)
