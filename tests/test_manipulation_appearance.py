"""Appearance levels of the table-top scenes (vasa.envs.randomize_scene): every level changes
the pixels, by increasing amounts; distractors appear only at ``extreme``, where a pinhole
projection of their drawn positions says; held-out colours and texture cells never meet the
training ones (hues and cells recomputed with colorsys/NumPy); appearance never touches the
physics; bad names fail naming the field and what is allowed."""

import colorsys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from vasa.envs import make_raw
from vasa.envs.randomize import AppearanceSampler, appearance_problem, suite
from vasa.envs.randomize_scene import (
    CELL_RANGE,
    NUM_CELL_BANDS,
    NUM_HUE_SECTORS,
    SCENE_LEVELS,
    SceneLevel,
    TableScene,
    colors_from,
)
from vasa.envs.render import TEX_CHECKER, Renderer, data_dict
from vasa.envs.render_textures import TEX_NONE
from vasa.envs.scenes import robots, table

SIZE = 32
LEVELS = ("easy", "hard", "extreme")


@pytest.fixture(scope="module")
def scene():
    """``robo/lift`` at the arm's home posture (MuJoCo C), a 32x32 renderer and one jitted
    batched render of appearances (rgb and geom ids)."""
    task = make_raw("robo/lift")
    m = task.mj_model
    d = mujoco.MjData(m)
    d.qpos[task.arm.qpos] = robots.HOME_QPOS
    d.qpos[task.arm.finger_qpos] = robots.FINGER_TRAVEL
    mujoco.mj_forward(m, d)
    renderer = Renderer(m, SIZE, SIZE, shading="mujoco", optional_geoms=task.optional_geoms)
    data = data_dict(d)
    draw = jax.jit(jax.vmap(lambda app: renderer.render(data, "agentview", app, outputs=("rgb", "geom_id"))))
    return SimpleNamespace(task=task, m=m, d=d, renderer=renderer, draw=draw, tab=TableScene.from_model(m), samplers={})


KEYS = jax.random.split(jax.random.PRNGKey(1), 8)  # one batch size everywhere: each level compiles once


def looks(scene, level, keys=KEYS):
    if level not in scene.samplers:
        scene.samplers[level] = jax.jit(jax.vmap(AppearanceSampler(scene.renderer, level)))
    return scene.samplers[level](keys)


def images(scene, level, keys=KEYS):
    out = scene.draw(looks(scene, level, keys))
    return np.asarray(out["rgb"]).astype(np.float64), np.asarray(out["geom_id"])


def test_backdrop_is_visual_only(scene):
    m = scene.m
    for name in table.WALLS + table.DISTRACTORS:
        g = m.geom(name).id
        assert (m.geom_contype[g], m.geom_conaffinity[g], m.geom_bodyid[g]) == (0, 0, 0), name
    assert all(m.geom(n).rgba[3] == 0 for n in table.DISTRACTORS)  # hidden from MuJoCo's renderer too
    assert scene.task.optional_geoms == table.DISTRACTORS


def test_levels_change_pixels_by_increasing_amounts(scene):
    train, _ = images(scene, "train")
    assert np.array_equal(train[0], train[-1])  # train is the scene's own look, whatever the key
    change = {lv: np.abs(images(scene, lv)[0] - train).mean(axis=(1, 2, 3)) for lv in LEVELS}
    for lv in LEVELS:
        assert (change[lv] > 2.0).all(), (lv, change[lv])  # every draw of every level changes the image
    means = [change[lv].mean() for lv in LEVELS]
    assert means[0] < means[1] < means[2], means


def project(scene, points):
    """Pixel (row, col) of world ``points [N, 3]`` in the agentview camera (pinhole, MuJoCo's
    camera axes: looking along -z, +y up), an independent transcription."""
    cid = scene.m.camera("agentview").id
    pos, mat = scene.d.cam_xpos[cid], scene.d.cam_xmat[cid].reshape(3, 3)
    local = (points - pos) @ mat
    half = np.tan(np.deg2rad(scene.m.cam_fovy[cid]) / 2)
    x, y = local[:, 0] / -local[:, 2], local[:, 1] / -local[:, 2]
    col = ((x / half) + 1) * SIZE / 2 - 0.5
    row = (1 - y / half) * SIZE / 2 - 0.5
    return np.round(row).astype(int), np.round(col).astype(int)


def test_distractors_only_at_extreme_where_drawn(scene):
    dist = scene.tab.distractors
    for lv in ("train", "easy", "hard"):
        assert not np.isin(images(scene, lv)[1], dist).any(), lv
    apps = looks(scene, "extreme")
    ids = np.asarray(scene.draw(apps)["geom_id"])
    assert all(np.isin(ids[i], dist).any() for i in range(len(KEYS)))
    # without its camera jitter, each distractor's centre projects onto its own pixels
    zero = jnp.zeros_like
    apps = apps.replace(cam_pos_offset=zero(apps.cam_pos_offset), cam_rot_offset=zero(apps.cam_rot_offset),
                        fovy_offset=zero(apps.fovy_offset))
    ids = np.asarray(scene.draw(apps)["geom_id"])
    offsets = np.asarray(apps.geom_offset)[:, dist]  # [K, D, 3]
    radius = np.linalg.norm(offsets[..., :2], axis=-1)
    assert (radius >= 0.12 - 1e-6).all() and (radius <= 0.32 + 1e-6).all() and (offsets[..., 2] == 0).all()
    hits = []
    for k in range(len(KEYS)):
        rows, cols = project(scene, scene.m.geom_pos[dist] + offsets[k])
        hits += [ids[k, r, c] == g for r, c, g in zip(rows, cols, dist) if 0 <= r < SIZE and 0 <= c < SIZE]
    assert len(hits) >= 32 and np.mean(hits) >= 0.8, hits


def hue_band(rgb):
    """Sector index of each colour's hue (colorsys), ``[N]``."""
    return np.array([int(colorsys.rgb_to_hsv(*c)[0] * NUM_HUE_SECTORS) for c in rgb])


def test_held_out_draws_are_disjoint_from_training_draws(scene):
    tab = scene.tab
    for level in (SCENE_LEVELS["extreme"], SCENE_LEVELS["extreme_heldout"]):  # every kind of colour and cell
        held = level.held_out
        app = looks(scene, level.name)
        rgb = np.asarray(app.geom_rgb)[:, tab.surface_geoms].reshape(-1, 3).astype(np.float64)
        colours = [rgb, np.asarray(app.geom_rgb2)[:, tab.surface_geoms].reshape(-1, 3)]
        if level.distractors:
            colours.append(np.asarray(app.geom_rgb)[:, tab.distractors].reshape(-1, 3))
        if level.object_colors:  # the robot's and the cube's geoms
            colours.append(np.asarray(app.geom_rgb)[:, scene.m.geom_bodyid > 0].reshape(-1, 3))
        bands = hue_band(np.concatenate(colours).astype(np.float64))
        assert (bands % 2 == int(held)).all(), (level.name, np.unique(bands))
        hsv = np.array([colorsys.rgb_to_hsv(*c) for c in rgb])
        assert (hsv[:, 1] >= level.saturation[0] - 1e-4).all() and (hsv[:, 1] <= level.saturation[1] + 1e-4).all()
        assert (hsv[:, 2] >= level.value[0] - 1e-4).all() and (hsv[:, 2] <= level.value[1] + 1e-4).all()
        tex = np.asarray(app.geom_texture)[:, tab.surface_geoms]
        if level.texture_prob > 0:  # surfaces whose kind differs from the plain look (none; floor: checker)
            textured = tex != np.array([TEX_NONE, TEX_CHECKER, TEX_NONE])[tab.surface_of]
            cells = np.asarray(app.geom_texture_scale)[:, tab.surface_geoms][textured]
            assert cells.size >= 16
            u = (np.log(cells) - np.log(CELL_RANGE[0])) / (np.log(CELL_RANGE[1]) - np.log(CELL_RANGE[0]))
            assert ((u * NUM_CELL_BANDS).astype(int) % 2 == int(held)).all(), level.name


def test_colour_ranges_and_sectors_of_every_level():
    u = jax.random.uniform(jax.random.PRNGKey(8), (256, 4))
    for level in SCENE_LEVELS.values():
        rgb = np.asarray(colors_from(u, level.saturation, level.value, level.held_out), np.float64)
        hsv = np.array([colorsys.rgb_to_hsv(*c) for c in rgb])
        assert (hue_band(rgb) % 2 == int(level.held_out)).all(), level.name
        assert hsv[:, 1].min() >= level.saturation[0] - 1e-4 and hsv[:, 1].max() <= level.saturation[1] + 1e-4
        assert hsv[:, 2].min() >= level.value[0] - 1e-4 and hsv[:, 2].max() <= level.value[1] + 1e-4
        assert len(np.unique(hue_band(rgb))) == NUM_HUE_SECTORS // 2  # every sector of its half is used


def tainted_outputs(jaxpr, tainted):
    """Which outputs of ``jaxpr`` may depend on the inputs flagged in ``tainted`` (a
    conservative data-flow pass: an equation with any tainted input taints all its outputs)."""
    from jax.extend.core import Literal

    env = dict(zip(jaxpr.invars, tainted))
    for eqn in jaxpr.eqns:
        t = any(env.get(v, False) for v in eqn.invars if not isinstance(v, Literal))
        env.update({o: t for o in eqn.outvars})
    return [not isinstance(v, Literal) and env.get(v, False) for v in jaxpr.outvars]


def test_physics_never_reads_the_appearance(scene):
    """Data flow of ``PixelObservation.step`` under ``extreme`` (traced, not compiled): the
    physics and the proprioception cannot depend on ``info["appearance"]``; the pixels do."""
    from vasa.envs.wrappers import PixelObservation

    env = PixelObservation(scene.task, width=SIZE, height=SIZE, camera="agentview", frame_stack=1,
                           appearance="extreme")
    state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    action = jax.ShapeDtypeStruct((7,), jnp.float32)
    closed, out_shape = jax.make_jaxpr(env.step, return_shape=True)(state, action)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path((state, action))[0]]
    taint = tainted_outputs(closed.jaxpr, ["'appearance'" in p for p in paths])
    out_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(out_shape)[0]]
    assert sum("'appearance'" in p for p in paths) == len(jax.tree.leaves(state.info["appearance"]))
    physics = [t for p, t in zip(out_paths, taint) if p.startswith(".physics") or "'proprio'" in p]
    assert len(physics) > 20 and not any(physics)
    assert [t for p, t in zip(out_paths, taint) if "'pixels'" in p] == [True]


@pytest.mark.slow
def test_appearance_never_changes_physics(scene):
    """Two envs, same physics key and actions, one under ``train`` and one under ``extreme``
    (the look ``PixelObservation(appearance="extreme").reset`` draws): qpos and proprio stay
    bitwise equal, pixels differ."""
    from vasa.envs.wrappers import PixelObservation

    kw = {"width": SIZE, "height": SIZE, "camera": "agentview", "frame_stack": 1}
    env_t = PixelObservation(scene.task, appearance="train", **kw)
    env_x = PixelObservation(scene.task, appearance="extreme", **kw)
    keys = jnp.stack([jax.random.PRNGKey(4)] * 2)
    s = jax.jit(jax.vmap(env_t.reset))(keys)
    _, draw = jax.random.split(keys[1])  # as PixelObservation.reset splits its key
    look = env_x.sampler(draw)
    s = s.replace(info={**s.info, "appearance": jax.tree.map(lambda a, b: a.at[1].set(b), s.info["appearance"], look)})
    step = jax.jit(jax.vmap(env_x.step))
    q0 = np.asarray(s.physics.qpos[0])
    for a in jax.random.uniform(jax.random.PRNGKey(5), (3, 7), minval=-1, maxval=1):
        s = step(s, jnp.stack([a, a]))
    qpos = np.asarray(s.physics.qpos)
    assert np.array_equal(qpos[0], qpos[1]) and not np.array_equal(qpos[0], q0)
    assert np.array_equal(np.asarray(s.obs["proprio"][0]), np.asarray(s.obs["proprio"][1]))
    assert np.array_equal(np.asarray(s.physics.qvel[0]), np.asarray(s.physics.qvel[1]))
    px = np.asarray(s.obs["pixels"]).astype(int)
    assert np.abs(px[0] - px[1]).mean() > 2.0


def test_bad_levels_fail_naming_field_and_choices():
    with pytest.raises(ValueError, match=r"appearance='medium' is not allowed: choose one of .*'extreme'"):
        suite("medium")
    with pytest.raises(ValueError, match=r"SceneLevel.saturation=\(0.0, 0.5\) is not allowed"):
        SceneLevel(saturation=(0.0, 0.5)).validate()
    with pytest.raises(ValueError, match=r"texture_prob"):
        SceneLevel(texture_prob=1.5).validate()
    # a scene without a table (DM Control-like): the table-top levels are refused, listing the suites
    m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom type="plane" size="1 1 .1"/><camera name="c"/>'
                                       '</worldbody></mujoco>')
    with pytest.raises(ValueError, match=r"appearance='extreme' is not allowed for this scene.*robo/\*.*color_easy"):
        AppearanceSampler(Renderer(m, 8, 8), "extreme")
    AppearanceSampler(Renderer(m, 8, 8), "color_easy")  # DM Control suites still work there
    assert appearance_problem("robo/lift", "extreme") is None
    assert "robo/*" in appearance_problem("dmc/cartpole_balance", "easy")
    assert "evaluation only" in appearance_problem("robo/door", "hard_heldout", training=True)
    assert appearance_problem("robo/door", "hard_heldout") is None


def test_configs_validate_levels_against_the_env():
    from vasa.algos.ppo_config import PPOConfig
    from vasa.algos.sac import SACConfig

    PPOConfig(env="robo/lift", pixels=True, appearance="extreme").validate()
    SACConfig(env="robo/door", pixels=True, train_appearance="hard", appearance="hard_heldout").validate()
    with pytest.raises(ValueError, match=r"PPOConfig.appearance='extreme' is not allowed: .*robo/\*.*color_easy"):
        PPOConfig(env="dmc/cartpole_balance", pixels=True, appearance="extreme").validate()
    with pytest.raises(ValueError, match=r"SACConfig.train_appearance='easy_heldout' is not allowed: .*evaluation"):
        SACConfig(env="robo/lift", pixels=True, train_appearance="easy_heldout").validate()
    with pytest.raises(ValueError, match=r"appearance='medium'.*extreme"):
        PPOConfig(env="robo/lift", pixels=True, appearance="medium").validate()


def test_secant_configs_take_the_levels_for_robo_tasks_only():
    """SECANT's robosuite table (train/easy/hard/extreme) is a config away; the same levels on a
    DM Control task, or a held-out level to train under, fail before compiling, naming the field."""
    import dataclasses

    from vasa.distill import secant
    from vasa.distill.zero_shot import SCENE_SUITE_NAMES, make_suite_evaluator

    student = dataclasses.replace(secant.SecantConfig().distill, env="robo/lift", train_appearance="hard")
    ok = secant.SecantConfig(ppo=dataclasses.replace(secant.SecantConfig().ppo, env="robo/lift",
                                                     action_repeat=student.resolved_action_repeat()),
                             distill=student, suites=SCENE_SUITE_NAMES + ("extreme_heldout",))
    ok.validate()
    with pytest.raises(ValueError, match=r"SecantConfig.suites=.*robo/\* table-top tasks only.*color_easy"):
        secant.SecantConfig(suites=("train", "extreme")).validate()
    with pytest.raises(ValueError, match=r"DAggerConfig.train_appearance='hard_heldout'.*evaluation only"):
        dataclasses.replace(student, train_appearance="hard_heldout").validate()
    with pytest.raises(ValueError, match=r"unknown appearance suite\(s\) \['medium'\]"):
        make_suite_evaluator(lambda s: None, None, suites=("train", "medium"))
