"""Appearance suites, dynamics randomisation, video loading and the pixel wrapper."""

import os

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

import vasa.envs as E
from vasa.envs import randomize as Z
from vasa.envs import render as R


@pytest.fixture(scope="module")
def cartpole():
    """Cartpole's MjModel in a non-trivial pose, its pose data and a renderer."""
    m = E.make_raw("dmc/cartpole_swingup").mj_model
    d = mujoco.MjData(m)
    d.qpos[:] = [0.3, 2.5]
    mujoco.mj_forward(m, d)
    return m, R.data_dict(d), R.Renderer(m, 48, 40)


@pytest.fixture(scope="module")
def render_fn(cartpole):
    _, data, r = cartpole
    return jax.jit(lambda app, t: r.render(data, 0, app, t=t, outputs=("rgb", "depth", "geom_id")))


def _looks(r, name, n=4, seed=0):
    return jax.vmap(Z.AppearanceSampler(r, name))(jax.random.split(jax.random.PRNGKey(seed), n))


def test_suites_change_only_what_they_should(cartpole, render_fn):
    m, _, r = cartpole
    base = render_fn(r.default_appearance(), 0)
    groups = Z.SceneGroups.from_model(m)
    seg = np.asarray(base["geom_id"])
    bg = seg < 0
    floor = np.isin(seg, np.nonzero(groups.floor)[0])
    agent = np.isin(seg, np.nonzero(groups.agent_group >= 0)[0])
    assert bg.any() and floor.any() and agent.any()
    rgb0 = np.asarray(base["rgb"]).astype(int)
    for name in Z.SUITES:
        looks = _looks(r, name)
        for i in range(4):
            out = render_fn(jax.tree.map(lambda x: x[i], looks), 3)
            # geometry, depth and segmentation never change
            np.testing.assert_array_equal(np.asarray(out["geom_id"]), seg)
            np.testing.assert_array_equal(np.asarray(out["depth"]), np.asarray(base["depth"]))
            rgb = np.asarray(out["rgb"]).astype(int)
            changed = np.any(rgb != rgb0, -1)
            if name == "train":
                assert not changed.any()
            elif name == "video_easy":  # background only
                assert not changed[~bg].any() and changed[bg].mean() > 0.5
            elif name == "video_hard":  # background and floor, never the agent
                assert not changed[agent].any() and changed[bg | floor].mean() > 0.5
            else:  # colour suites move agent, floor and sky
                for region in (agent, floor, bg):
                    assert changed[region].mean() > 0.5, (name, i)


def test_randomisation_per_env_and_reproducible(cartpole):
    _, _, r = cartpole
    a = _looks(r, "color_hard", n=8, seed=3)
    b = _looks(r, "color_hard", n=8, seed=3)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    colors = np.asarray(a.geom_rgb)  # [8, G, 3]
    for i in range(8):
        for j in range(i + 1, 8):
            assert np.abs(colors[i] - colors[j]).max() > 0.05
    c = _looks(r, "color_hard", n=8, seed=4)
    assert np.abs(np.asarray(c.geom_rgb) - colors).max() > 0.05
    # one colour per group: geoms sharing a material keep sharing a colour
    groups = Z.SceneGroups.from_model(r.model)
    for k in range(groups.num_agent_groups):
        ids = np.nonzero(groups.agent_group == k)[0]
        np.testing.assert_array_equal(colors[:, ids], np.repeat(colors[:, ids[:1]], len(ids), 1))
    # jitter stays within its range of the original colour
    spec = Z.AppearanceRandomization(agent_color="jitter", color_jitter=0.2)
    easy = jax.vmap(lambda k: Z.randomize_appearance(k, r.default_appearance(), spec, groups))(
        jax.random.split(jax.random.PRNGKey(0), 16))
    agent = groups.agent_group >= 0
    delta = np.abs(np.asarray(easy.geom_rgb)[:, agent] - np.asarray(r.default_appearance().geom_rgb)[agent])
    assert delta.max() <= 0.2 + 1e-6 and delta.max() > 0.05


# DMControl-GB's src/env/data/color_{easy,hard}.pt (100 draws each), measured: mean and standard
# deviation per channel of self_rgb, grid_rgb1 and skybox_rgb (grid_rgb2 = grid_rgb1 + 0.1 in all 200)
DMCGB_STATS = {
    "color_easy": {"self": ([.700, .498, .312], [.101, .091, .107]), "grid": ([.106, .207, .276], [.076, .100, .098]),
                   "sky": ([.408, .615, .790], [.094, .107, .110])},
    "color_hard": {"self": ([.708, .478, .301], [.181, .198, .176]), "grid": ([.123, .248, .296], [.150, .194, .164]),
                   "sky": ([.422, .554, .784], [.198, .183, .184])},
}


@pytest.mark.parametrize("name", ["color_easy", "color_hard"])
def test_colour_suites_draw_dmcgb_colours(name):
    """vasa's colour suites against DMControl-GB's stored draws (its ``.pt`` files, 100 each):
    per-channel mean and spread of the agent's ``self`` colour, the floor grid's first colour
    and the skybox's top colour within three standard errors of DMControl-GB's 100 (a uniform
    draw, vasa's suite before session 38, is 0.29 apart in spread); the floor's second colour
    is the first plus 0.1 and the sky's bottom stays."""
    m = E.make_raw("dmc/walker_stand").mj_model
    r = R.Renderer(m, 8, 8)
    groups = Z.SceneGroups.from_model(m)
    base = r.default_appearance()
    looks = jax.vmap(lambda k: Z.randomize_appearance(k, base, Z.SUITES[name], groups))(
        jax.random.split(jax.random.PRNGKey(11), 4000))
    rgb, rgb2 = np.asarray(looks.geom_rgb), np.asarray(looks.geom_rgb2)
    agent = int(np.flatnonzero(groups.agent_group >= 0)[0])
    floor = int(np.flatnonzero(groups.floor)[0])
    np.testing.assert_allclose(np.asarray(base.geom_rgb)[floor], [.1, .2, .3], atol=0.005)  # DMControl's grid
    np.testing.assert_allclose(np.asarray(base.bg_top), [.4, .6, .8], atol=0.005)  # and skybox rgb1
    drawn = {"self": rgb[:, agent], "grid": rgb[:, floor], "sky": np.asarray(looks.bg_top)}
    for part, (mean, std) in DMCGB_STATS[name].items():
        se_mean, se_std = np.asarray(std) / np.sqrt(100), np.asarray(std) / np.sqrt(200)
        assert np.all(np.abs(drawn[part].mean(0) - mean) <= 3 * se_mean + 0.005), (part, drawn[part].mean(0), mean)
        assert np.all(np.abs(drawn[part].std(0) - std) <= 3 * se_std + 0.005), (part, drawn[part].std(0), std)
    np.testing.assert_allclose(rgb2[:, floor], np.minimum(rgb[:, floor] + 0.1, 1.0), atol=2e-3)
    np.testing.assert_array_equal(np.asarray(looks.bg_bottom), np.broadcast_to(base.bg_bottom, (4000, 3)))
    assert (np.asarray(looks.background) == R.BG_SKYBOX).all()  # the model's sky, recoloured


@pytest.mark.parametrize("task, kept", [("dmc/reacher_easy", ("target", "finger")),
                                         ("dmc/ball_in_cup_catch", ("ball",)),
                                         ("dmc/finger_spin", ("fingertip", "proximal_decoration"))])
def test_colour_suites_recolour_only_dmc_self_material(task, kept):
    """DMControl-GB's colour suites rewrite the ``self`` material's rgba and nothing else
    (its ``reload_physics`` edits ``materials['mujoco']['asset']['material'][1]``, asserted to be
    ``self``): the reacher's target and finger, the ball, the fingertip keep their colours."""
    m = E.make_raw(task).mj_model
    r = R.Renderer(m, 16, 16)
    base = np.asarray(r.default_appearance().geom_rgb)
    self_id = next(i for i in range(m.nmat) if m.material(i).name == "self")
    is_self = (m.geom_matid == self_id) & (m.geom_bodyid != 0)
    kept_ids = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, name) for name in kept]
    assert min(kept_ids) >= 0 and not is_self[kept_ids].any()
    for name in ("color_easy", "color_hard"):
        rgb = np.asarray(_looks(r, name, n=8).geom_rgb)  # [8, G, 3]
        moved = np.abs(rgb - base).max(axis=(0, 2)) > 1e-6
        assert moved[is_self].all(), name
        # every non-world geom that is not ``self`` (target, effector, decoration) keeps its colour
        other = (m.geom_bodyid != 0) & ~is_self
        np.testing.assert_array_equal(rgb[:, other], np.broadcast_to(base[other], rgb[:, other].shape))
        assert not moved[kept_ids].any(), name


def test_light_camera_and_texture_jitter(cartpole, render_fn):
    _, _, r = cartpole
    spec = Z.AppearanceRandomization(light_dir_jitter_deg=30, light_intensity=(0.5, 1.5), camera_pos_jitter=0.05,
                                     camera_rot_jitter_deg=3, fovy_jitter_deg=5, agent_texture_prob=1.0,
                                     floor_texture="random")
    looks = jax.vmap(lambda k: Z.randomize_appearance(k, r.default_appearance(), spec, Z.SceneGroups.from_model(r.model)))(
        jax.random.split(jax.random.PRNGKey(0), 6))
    base_dir = np.asarray(r.default_appearance().light_dir)
    dirs = np.asarray(looks.light_dir)
    angles = np.degrees(np.arccos(np.clip(dirs @ base_dir / np.linalg.norm(dirs, axis=1), -1, 1)))
    assert angles.max() <= 30 + 1e-3 and angles.max() > 1
    assert np.all(np.abs(np.asarray(looks.fovy_offset)) <= 5) and np.ptp(np.asarray(looks.fovy_offset)) > 0.5
    assert set(np.unique(np.asarray(looks.geom_texture))) & {R.TEX_CHECKER, R.TEX_GRID, R.TEX_NOISE}
    # camera jitter moves the image; it changes depth (it is a different view), colours alone do not
    out = render_fn(jax.tree.map(lambda x: x[0], looks), 0)
    assert np.any(np.asarray(out["depth"]) != np.asarray(render_fn(r.default_appearance(), 0)["depth"]))


def test_invalid_specs_name_the_field():
    with pytest.raises(ValueError, match="agent_color='rainbow'"):
        Z.suite(Z.AppearanceRandomization(agent_color="rainbow"))
    with pytest.raises(ValueError, match="appearance='colour_hard'.*color_hard"):
        Z.suite("colour_hard")
    with pytest.raises(ValueError, match="DynamicsRandomization.mass"):
        Z.DynamicsRandomization(mass=(1.2, 0.8)).validate()


# ----------------------------------------------------------------------------------------
# videos
# ----------------------------------------------------------------------------------------


def _frames(f=5, h=12, w=16):
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (4, 3), dtype=np.uint8)  # few colours: GIF stays lossless
    return palette[rng.integers(0, 4, (f, h, w))]


def test_load_video_formats(tmp_path):
    from PIL import Image

    frames = _frames()
    np.save(tmp_path / "v.npy", frames)
    np.savez(tmp_path / "v.npz", frames=frames)
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(tmp_path / "v.gif", save_all=True, append_images=imgs[1:], duration=40, loop=0)
    (tmp_path / "dir").mkdir()
    for i, img in enumerate(imgs):
        img.save(tmp_path / "dir" / f"{i:03d}.png")
    for name in ("v.npy", "v.npz", "v.gif", "dir"):
        got = Z.load_video(tmp_path / name, size=None)
        assert got.dtype == np.uint8 and got.shape == frames.shape, name
        np.testing.assert_array_equal(got, frames, err_msg=name)
    small = Z.load_video(tmp_path / "v.npy", size=(6, 8), max_frames=3)
    np.testing.assert_array_equal(small, frames[:3, ::2, ::2])
    both = Z.load_videos([tmp_path / "v.npy", tmp_path / "v.gif"], size=(12, 16), max_frames=4)
    assert both.shape == (2, 4, 12, 16, 3)
    np.save(tmp_path / "grey.npy", np.linspace(0, 1, 2 * 12 * 16).reshape(2, 12, 16))  # float grey in [0, 1]
    grey = Z.load_video(tmp_path / "grey.npy", size=None)
    assert grey.shape == (2, 12, 16, 3) and grey.max() == 255
    with pytest.raises(FileNotFoundError, match="nope.npy"):
        Z.load_video(tmp_path / "nope.npy")
    np.save(tmp_path / "bad.npy", np.zeros((3, 4)))
    with pytest.raises(ValueError, match="shape"):
        Z.load_video(tmp_path / "bad.npy")


def test_video_background_shows_the_right_frame(cartpole):
    m, data, _ = cartpole
    frames = _frames(f=5, h=40, w=48)
    r = R.Renderer(m, 48, 40, video=frames)
    app = r.default_appearance().replace(background=jnp.asarray(R.BG_VIDEO), video_offset=jnp.asarray(3))
    out = jax.jit(lambda t: r.render(data, 0, app, t=t, outputs=("rgb", "geom_id")))(4)
    bg = np.asarray(out["geom_id"]) < 0
    expect = frames[(3 + 4) % 5]
    np.testing.assert_array_equal(np.asarray(out["rgb"])[bg], expect[bg])
    sampler = Z.AppearanceSampler(r, "video_hard")
    looks = jax.vmap(sampler)(jax.random.split(jax.random.PRNGKey(0), 16))
    assert np.all(np.asarray(looks.background) == R.BG_VIDEO)
    assert 0 <= np.asarray(looks.video_offset).min() and np.asarray(looks.video_offset).max() < 5
    with pytest.raises(ValueError, match="uint8"):
        R.Renderer(m, 8, 8, video=frames.astype(np.float32))


# ----------------------------------------------------------------------------------------
# dynamics
# ----------------------------------------------------------------------------------------


def test_randomize_dynamics_ranges_and_keys():
    from mujoco import mjx

    m = E.make_raw("dmc/cartpole_swingup").mj_model
    model = mjx.put_model(m)
    spec = Z.DynamicsRandomization(mass=(0.5, 2.0), friction=(0.1, 0.2), damping=(3.0, 4.0), actuator_gain=(0.9, 1.1))
    draws = jax.vmap(lambda k: Z.randomize_dynamics(k, model, spec))(jax.random.split(jax.random.PRNGKey(0), 32))
    ratio = np.asarray(draws["body_mass"])[:, 1:] / m.body_mass[1:]
    assert ratio.min() >= 0.5 and ratio.max() <= 2.0 and ratio.std() > 0.1
    np.testing.assert_allclose(np.asarray(draws["body_inertia"])[:, 1:] / m.body_inertia[1:], ratio[..., None].repeat(3, -1), rtol=1e-5)
    fr = np.asarray(draws["geom_friction"])[:, :, 0] / m.geom_friction[:, 0]
    assert fr.min() >= 0.1 - 1e-6 and fr.max() <= 0.2 + 1e-6
    np.testing.assert_allclose(np.asarray(draws["geom_friction"])[:, :, 1:], np.broadcast_to(m.geom_friction[:, 1:], (32,) + m.geom_friction[:, 1:].shape), rtol=1e-6)
    damped = m.dof_damping > 0
    dr = np.asarray(draws["dof_damping"])[:, damped] / m.dof_damping[damped]
    assert dr.min() >= 3 - 1e-5 and dr.max() <= 4 + 1e-5
    g = np.asarray(draws["actuator_gainprm"])[:, :, 0] / m.actuator_gainprm[:, 0]
    assert g.min() >= 0.9 - 1e-6 and g.max() <= 1.1 + 1e-6
    again = Z.randomize_dynamics(jax.random.split(jax.random.PRNGKey(0), 32)[5], model, spec)
    np.testing.assert_array_equal(np.asarray(again["body_mass"]), np.asarray(draws["body_mass"])[5])


def test_randomized_dynamics_changes_the_motion():
    env = E.make("dmc/cartpole_swingup", episode_length=50, auto_reset=False,
                 dynamics=Z.DynamicsRandomization(mass=(0.3, 3.0), damping=(1, 1), friction=(1, 1), actuator_gain=(0.3, 3.0)))
    keys = jax.random.split(jax.random.PRNGKey(0), 4)

    @jax.jit
    def run(keys):
        s = jax.vmap(env.reset)(keys)
        # identical start states, so only the dynamics differ
        s = s.replace(physics=jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), s.physics))
        s, _ = jax.lax.scan(lambda s, _: (jax.vmap(env.step)(s, jnp.ones((4, 1))), None), s, None, length=5)
        return s

    s = run(keys)
    qpos = np.asarray(s.physics.qpos)
    assert np.abs(qpos[0] - qpos[1:]).max() > 1e-3
    mass = np.asarray(s.info["dynamics"]["body_mass"])
    assert np.abs(mass[0] - mass[1]).max() > 0  # per-env draws, carried in the state


# ----------------------------------------------------------------------------------------
# the pixel wrapper
# ----------------------------------------------------------------------------------------


def _find(env, cls):
    while not isinstance(env, cls):
        env = env.env
    return env


def test_pixel_env_shapes_stack_order_and_reset_fill():
    env = E.make("dmc/cartpole_balance", pixels=True, image_size=(24, 32), frame_stack=3, appearance="color_hard")
    spec = env.observation_spec
    assert spec["pixels"].shape == (24, 32, 9) and spec["pixels"].dtype == jnp.uint8
    assert _find(env, E.ActionRepeat).repeat == 8  # PAD: cartpole 8
    n = 2
    reset = jax.jit(jax.vmap(env.reset))
    step = jax.jit(jax.vmap(env.step))
    s0 = reset(jax.random.split(jax.random.PRNGKey(0), n))
    px0 = np.asarray(s0.obs["pixels"])
    assert px0.shape == (n, 24, 32, 9) and px0.dtype == np.uint8
    np.testing.assert_array_equal(px0[..., 0:3], px0[..., 3:6])  # reset fills the stack with the first frame
    np.testing.assert_array_equal(px0[..., 3:6], px0[..., 6:9])
    assert s0.obs["proprio"].shape == (n,) + env.observation_spec["proprio"].shape
    s1 = step(s0, jnp.ones((n, 1)))
    s2 = step(s1, -jnp.ones((n, 1)))
    px1, px2 = np.asarray(s1.obs["pixels"]), np.asarray(s2.obs["pixels"])
    np.testing.assert_array_equal(px2[..., :6], px1[..., 3:])  # oldest dropped, newest appended last
    assert np.any(px2[..., 6:] != px1[..., 6:])
    # the newest frame is the render of the current physics with the env's own look
    pix = _find(env, E.PixelObservation)
    frame = jax.jit(jax.vmap(pix.render_frame))(s2.physics, s2.info["appearance"], s2.info["frame"])
    np.testing.assert_array_equal(np.asarray(frame), px2[..., 6:])
    np.testing.assert_array_equal(np.asarray(s2.info["frame"]), [2, 2])
    # each env draws its own look
    assert np.abs(np.asarray(s0.info["appearance"].geom_rgb[0] - s0.info["appearance"].geom_rgb[1])).max() > 0.05


def test_pixel_channels_grey_and_rgbd(cartpole):
    env_grey = E.make("dmc/cartpole_balance", pixels=True, image_size=16, frame_stack=2, channels="grey", auto_reset=False)
    env_rgbd = E.make("dmc/cartpole_balance", pixels=True, image_size=16, frame_stack=1, channels="rgbd", auto_reset=False)
    assert env_grey.observation_spec["pixels"].shape == (16, 16, 2)
    assert env_rgbd.observation_spec["pixels"].shape == (16, 16, 4)
    key = jax.random.PRNGKey(1)
    g = jax.jit(env_grey.reset)(key)
    d = jax.jit(env_rgbd.reset)(key)
    rgb = np.asarray(d.obs["pixels"][..., :3]).astype(float)
    luma = np.round(rgb @ [0.299, 0.587, 0.114])
    np.testing.assert_allclose(np.asarray(g.obs["pixels"][..., 0]), luma, atol=1)
    depth = np.asarray(d.obs["pixels"][..., 3])
    assert depth.max() == 255 and depth.min() < 255  # background saturates, the scene does not


def test_pixel_supersample_averages_the_finer_grid():
    """``supersample=2`` at 8x8 casts the rays of a 16x16 frame's pixel centres and averages each 2x2
    block (MuJoCo's multisampling, as DMControl's frames are antialiased): the 16x16 render, mean-pooled."""
    kw = dict(pixels=True, frame_stack=1, auto_reset=False)
    fine = E.make("dmc/cartpole_balance", image_size=16, **kw)
    coarse = E.make("dmc/cartpole_balance", image_size=8, supersample=2, **kw)
    assert _find(coarse, E.PixelObservation).renderer.supersample == 2
    key = jax.random.PRNGKey(4)
    a = np.asarray(jax.jit(fine.reset)(key).obs["pixels"]).astype(float)
    b = np.asarray(jax.jit(coarse.reset)(key).obs["pixels"]).astype(float)
    pooled = a.reshape(8, 2, 8, 2, 3).mean((1, 3))
    assert np.abs(b - pooled).max() <= 1.0  # the fine frame is quantised before pooling, the coarse one after
    assert np.abs(b - a[::2, ::2]).max() > 10  # not a subsample: edges are blended
    with pytest.raises(ValueError, match=r"supersample=2 is not allowed for toy/reach2d: it renders itself"):
        E.make("toy/reach2d", pixels=True, supersample=2)


def test_pixel_errors():
    with pytest.raises(ValueError, match="frame_stack=0"):
        E.make("dmc/cartpole_balance", pixels=True, frame_stack=0)
    with pytest.raises(ValueError, match=r"image_size=\(5, 0\) is not allowed: it must be an integer in \[1, 1024\]"):
        E.make("dmc/cartpole_balance", pixels=True, image_size=(5, 0))
    with pytest.raises(ValueError, match="camera='nope'.*'fixed'.*'lookatcart'"):
        E.make("dmc/cartpole_balance", pixels=True, camera="nope")
    with pytest.raises(ValueError, match="channels='rgba'"):
        E.make("dmc/cartpole_balance", pixels=True, channels="rgba")
    with pytest.raises(ValueError, match="not an MJX-backed"):
        E.make("toy/pendulum", pixels=True)


def test_secant_tasks_build_with_pixels():
    """All eight SECANT tasks accept pixels=True and a shifted suite; PAD action repeats."""
    for task in E.SECANT_TASKS:
        env = E.make(f"dmc/{task}", pixels=True, appearance="color_hard")
        assert env.observation_spec["pixels"].shape == (84, 84, 9)
        expect = {"cartpole": 8, "finger": 2}.get(task.split("_")[0], 4)
        assert _find(env, E.ActionRepeat).repeat == expect, task


@pytest.mark.slow
@pytest.mark.parametrize("task", ["walker_walk", "cheetah_run", "ball_in_cup_catch", "finger_spin", "reacher_easy", "walker_stand"])
def test_secant_tasks_step_with_pixels(task):
    env = E.make(f"dmc/{task}", pixels=True, appearance="video_hard", image_size=32)
    s = jax.jit(jax.vmap(env.reset))(jax.random.split(jax.random.PRNGKey(0), 2))
    s = jax.jit(jax.vmap(env.step))(s, jnp.zeros((2,) + env.action_spec.shape))
    px = np.asarray(s.obs["pixels"])
    assert px.shape == (2, 32, 32, 9) and px.dtype == np.uint8 and px.std() > 1


@pytest.mark.slow
def test_show_observations_example(tmp_path, run_python):
    """The example writes its picture (small settings)."""
    out = tmp_path / "obs.png"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    run_python(f"""
import sys; sys.argv = ["show_observations.py", "--env", "dmc/cartpole_balance", "--num-envs", "2", "--image-size", "24",
                        "--steps", "2", "--out", r"{out}"]
import runpy; runpy.run_path(r"{root}/examples/show_observations.py", run_name="__main__")
""")
    assert out.stat().st_size > 10_000
