"""SAC and DDPG: the tanh-Gaussian density, learning the tiny task, pixel updates (the encoder
trained by the critic only), OU noise, resume from a checkpoint with the replay buffer, the
4-device mesh, and configuration errors."""

import dataclasses

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from vasa.algos import ddpg, offpolicy, sac
from vasa.envs import ArraySpec, AutoReset, EpisodeLimit
from vasa.envs.tasks.pendulum import Pendulum
from vasa.nn import ActionDistribution
from vasa.run import RunConfig

SAC_TINY = sac.SACConfig(env="toy/pendulum", num_envs=8, total_env_steps=12_000, learning_starts=500, batch_size=128,
                         buffer_size=20_000, hidden_layers=(64, 64), replay_ratio=0.5)
DDPG_TINY = ddpg.DDPGConfig(env="toy/pendulum", num_envs=8, total_env_steps=12_000, learning_starts=500,
                            batch_size=128, buffer_size=20_000, hidden_layers=(64, 64), replay_ratio=0.5)
QUIET = dict(progress=False, checkpoint_every=0)


# --------------------------------------------------------------------------- distributions


@pytest.mark.parametrize("low,high", [(-1.0, 1.0), (-2.0, 0.5)])
def test_tanh_gaussian_log_prob_matches_change_of_variables(low, high):
    rng = np.random.default_rng(0)
    dist = ActionDistribution(jnp.full(3, low), jnp.full(3, high), "tanh")
    mean, log_std = rng.normal(size=(50, 3)), rng.normal(size=(50, 3)) * 0.5 - 0.5
    u = rng.normal(size=(50, 3)) * 3
    got = np.asarray(dist.action_log_prob(jnp.asarray(u), jnp.asarray(mean), jnp.asarray(log_std)))
    std = np.exp(log_std)
    gauss = -0.5 * ((u - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
    jac = (1 - np.tanh(u) ** 2) * (high - low) / 2
    np.testing.assert_allclose(got, (gauss - np.log(jac)).sum(-1), rtol=1e-4, atol=1e-3)


def test_tanh_gaussian_density_integrates_to_one():
    low, high = -2.0, 0.5
    dist = ActionDistribution(jnp.full(1, low), jnp.full(1, high), "tanh")
    a = np.linspace(low, high, 200_001)[1:-1]
    u = np.arctanh(2 * (a - low) / (high - low) - 1)
    logp = np.asarray(dist.action_log_prob(jnp.asarray(u[:, None]), jnp.full((1, 1), 0.3), jnp.full((1, 1), 0.2)))
    assert abs(np.trapezoid(np.exp(logp), a) - 1.0) < 1e-3


# --------------------------------------------------------------------------- learning


def _initial_return(config, make_learner):
    env = offpolicy.make_env(config)
    learner = make_learner(config, env)
    state = offpolicy.init(config, learner, env)
    return float(offpolicy.make_evaluate(config, learner, offpolicy.make_env(config, True))(state.learner,
                                                                                           jax.random.PRNGKey(1)))


@pytest.mark.parametrize("algo,config", [(sac, SAC_TINY), (ddpg, DDPG_TINY)], ids=["sac", "ddpg"])
def test_learns_the_pendulum_within_a_cpu_minute(tmp_path, algo, config):
    before = _initial_return(config, algo.make_learner)
    _, state, rows = algo.train(config, RunConfig(run_dir=str(tmp_path), eval_every=10_000, **QUIET))
    after = rows[-1]["eval_return"]
    # random/initial policies score about -1200 on 200-step episodes; swing-up and hold > -200
    assert after > -400 and after - before > 500, (before, after)
    assert rows[-1]["buffer_size"] == min(config.buffer_size, 12_504)
    assert (tmp_path / "metrics.csv").exists() and (tmp_path / "learning_curve.png").exists()


def _leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_resume_continues_exactly_with_the_replay_buffer(tmp_path):
    config = dataclasses.replace(SAC_TINY, num_envs=4, total_env_steps=320, learning_starts=40, batch_size=32,
                                 buffer_size=400, replay_ratio=0.5)
    _, whole, _ = sac.train(config, RunConfig(run_dir=str(tmp_path / "a"), eval_every=0, **QUIET))
    sac.train(config, RunConfig(run_dir=str(tmp_path / "b"), eval_every=0, max_iterations=30, **QUIET))
    _, resumed, rows = sac.train(config, RunConfig(resume=str(tmp_path / "b"), eval_every=0, **QUIET))
    assert rows[0]["iteration"] == 31 and rows[-1]["iteration"] == config.warmup_iterations + config.num_iterations
    _leaves_equal(whole.buffer, resumed.buffer)
    _leaves_equal(whole.learner, resumed.learner)
    _leaves_equal(whole.key, resumed.key)


def test_chunked_step_crosses_the_warm_up_like_single_iterations():
    # one train_chunk call of 6 iterations, from the warm-up into learning: the same learner,
    # buffer and metrics as 6 single-iteration calls; rows past `count` are NaN
    config = dataclasses.replace(SAC_TINY, num_envs=4, learning_starts=16, batch_size=32, buffer_size=200,
                                 replay_ratio=0.5)
    assert config.warmup_iterations == 4
    env = offpolicy.make_env(config)
    learner = sac.make_learner(config, env)
    single = offpolicy.make_train_step(config, learner, env)
    state = offpolicy.init(config, learner, env)
    expected = []
    for _ in range(6):
        state, metrics = single(state)
        expected.append(jax.device_get(metrics))
    reference = jax.device_get((state.learner, state.buffer))

    chunked = offpolicy.make_train_step(config, learner, env, chunk=8)
    state = offpolicy.init(config, learner, env)
    state, metrics = chunked(state, 6)
    for a, b in zip(jax.tree.leaves(jax.device_get((state.learner, state.buffer))), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(state.iteration) == 6
    metrics = jax.device_get(metrics)
    for k, v in metrics.items():
        assert v.shape == (8,), (k, v.shape)
        np.testing.assert_allclose(v[:6], [m[k] for m in expected], rtol=1e-4, atol=1e-5, err_msg=k)
        assert np.isnan(v[6:]).all(), k
    assert np.isnan(metrics["critic_loss"][:4]).all() and np.isfinite(metrics["critic_loss"][4:6]).all()


# --------------------------------------------------------------------------- pixels


class PixelPendulum(Pendulum):
    """The toy pendulum observed as a 16x16 RGB blob at the tip, frame-stacked (k = 3), with
    ``PixelObservation``'s conventions: reset fills the stack, newest frame last."""

    size, k = 16, 3

    @property
    def observation_spec(self):
        return {"pixels": ArraySpec((self.size, self.size, 3 * self.k), jnp.uint8), "proprio": ArraySpec((3,))}

    def _frame(self, physics):
        c = (self.size - 1) / 2
        y, x = c - 6 * jnp.cos(physics[0]), c + 6 * jnp.sin(physics[0])
        yy, xx = jnp.mgrid[: self.size, : self.size]
        blob = 255 * jnp.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 4.0)
        return jnp.repeat(blob[..., None], 3, -1).astype(jnp.uint8)

    def reset(self, key):
        s = super().reset(key)
        return s.replace(obs={"pixels": jnp.tile(self._frame(s.physics), (1, 1, self.k)), "proprio": s.obs})

    def step(self, state, action):
        s = super().step(state.replace(obs=state.obs["proprio"]), action)
        pixels = jnp.concatenate([state.obs["pixels"][..., 3:], self._frame(s.physics)], -1)
        return s.replace(obs={"pixels": pixels, "proprio": s.obs})


PIXEL_CONFIG = sac.SACConfig(env="toy/pendulum", pixels=True, image_size=16, num_envs=4, learning_starts=16,
                             batch_size=8, buffer_size=400, hidden_layers=(32,), feature_dim=8, replay_ratio=0.5,
                             target_update_freq=1, actor_update_freq=1, action_repeat=1)


def test_one_sac_pixel_update_trains_encoder_through_the_critic_only():
    env = AutoReset(EpisodeLimit(PixelPendulum(), 50))
    learner = sac.make_learner(PIXEL_CONFIG, env)
    state = offpolicy.init(PIXEL_CONFIG, learner, env)
    before = jax.tree.map(np.asarray, state.learner)
    warm = offpolicy.make_train_step(PIXEL_CONFIG, learner, env, warmup=True)
    for _ in range(PIXEL_CONFIG.warmup_iterations):
        state, _ = warm(state)
    assert state.buffer.obs["pixels"].shape == (100, 4, 16, 16, 3)  # one frame per slot
    state, metrics = offpolicy.make_train_step(PIXEL_CONFIG, learner, env)(state)
    after = state.learner
    assert all(np.isfinite(float(v)) for k, v in metrics.items() if k != "episode_return"), metrics
    for part in ("critic", "actor"):
        for x, y in zip(jax.tree.leaves(before[part]), jax.tree.leaves(after[part])):
            assert not np.array_equal(x, np.asarray(y))
    # the EMA target moved by tau towards the updated critic (target_update_freq=1, 2 updates)
    tau = PIXEL_CONFIG.tau
    w0 = before["target"]["encoder"]["params"]["conv0"]["kernel"]
    w2 = np.asarray(after["target"]["encoder"]["params"]["conv0"]["kernel"])
    assert 0 < np.abs(w2 - w0).max() < 4 * tau * np.abs(np.asarray(after["critic"]["encoder"]["params"]["conv0"]["kernel"]) - w0).max() + 1e-9

    # gradients: the actor's features carry none into the shared conv encoder
    trunk, params = learner.trunk, state.learner
    x = state.buffer.obs["pixels"][0, :, :, :, :].repeat(3, -1)

    def through_actor(critic):
        return jnp.sum(trunk.actor_features(params["actor"], critic, x))

    def through_critic(critic):
        return jnp.sum(trunk.critic_features(critic, x))

    g_actor = jax.grad(through_actor)(params["critic"])
    g_critic = jax.grad(through_critic)(params["critic"])
    assert all(float(jnp.abs(g).max()) == 0 for g in jax.tree.leaves(g_actor))
    assert float(jnp.abs(g_critic["encoder"]["params"]["conv0"]["kernel"]).max()) > 0


def test_ddpg_pixel_update_runs():
    cfg = ddpg.DDPGConfig(**{f.name: getattr(PIXEL_CONFIG, f.name) for f in dataclasses.fields(offpolicy.OffPolicyConfig)})
    env = AutoReset(EpisodeLimit(PixelPendulum(), 50))
    learner = ddpg.make_learner(cfg, env)
    state = offpolicy.init(cfg, learner, env)
    for warmup in (True, False):
        state, metrics = offpolicy.make_train_step(cfg, learner, env, warmup=warmup)(state)
    assert np.isfinite(float(metrics["critic_loss"]))


# --------------------------------------------------------------------------- DDPG noise


def test_ou_noise_mean_reversion_and_stationary_variance():
    theta = 0.15
    sigma = jnp.array([0.0, 0.2, 0.4])
    white = jax.random.normal(jax.random.PRNGKey(0), (20_000, 3, 1))

    def body(x, w):
        x = ddpg.ou_step(x, w, theta, sigma)
        return x, x

    _, xs = jax.lax.scan(body, jnp.zeros((3, 1)), white)
    xs = np.asarray(xs[1000:, :, 0])
    assert np.all(xs[:, 0] == 0)  # sigma 0: no noise
    stationary = sigma[1:] ** 2 / (1 - (1 - theta) ** 2)
    np.testing.assert_allclose(xs[:, 1:].var(0), stationary, rtol=0.1)
    lag1 = [np.corrcoef(xs[:-1, i], xs[1:, i])[0, 1] for i in (1, 2)]
    np.testing.assert_allclose(lag1, 1 - theta, atol=0.02)
    # without noise, a displaced state decays geometrically towards 0
    x = jnp.full((3, 1), 5.0)
    for _ in range(10):
        x = ddpg.ou_step(x, jnp.zeros((3, 1)), theta, sigma)
    np.testing.assert_allclose(np.asarray(x), 5.0 * (1 - theta) ** 10, rtol=1e-5)


def test_per_env_sigma_spreads_linearly_and_acts():
    np.testing.assert_allclose(np.asarray(ddpg.exploration_sigma(0.4, jnp.arange(5), 5)), [0, 0.1, 0.2, 0.3, 0.4])
    cfg = dataclasses.replace(DDPG_TINY, num_envs=4, noise="gaussian")
    env = offpolicy.make_env(cfg)
    learner = ddpg.make_learner(cfg, env)
    state = offpolicy.init(cfg, learner, env)
    obs = jnp.tile(state.env_state.obs[:1], (4, 1))
    greedy = learner.policy(state.learner, obs)
    act = jax.jit(jax.vmap(lambda k: learner.act(state.learner, obs, k, state.explore, jnp.arange(4))[0]))
    acts = act(jax.random.split(jax.random.PRNGKey(0), 400))
    spread = np.asarray(jnp.std(acts - greedy, axis=0))[:, 0]
    np.testing.assert_allclose(np.asarray(acts[:, 0]), np.asarray(jnp.broadcast_to(greedy[0], acts[:, 0].shape)), atol=1e-6)
    assert np.all(np.diff(spread) > 0) and spread[3] > 0.2
    # OU noise persists between steps and is reset at episode starts
    cfg = dataclasses.replace(cfg, noise="ou")
    learner = ddpg.make_learner(cfg, env)
    _, x = learner.act(state.learner, obs, jax.random.PRNGKey(0), state.explore, jnp.arange(4))
    assert float(jnp.abs(x[3]).max()) > 0 and float(jnp.abs(x[0]).max()) == 0
    x = learner.reset_explore(x, jnp.array([0.0, 0.0, 0.0, 1.0]), jnp.arange(4))
    assert float(jnp.abs(x[3]).max()) == 0


# --------------------------------------------------------------------------- mesh and errors

MESH = r"""
import jax, numpy as np
from vasa.algos import offpolicy, sac
from vasa.dist.mesh import make_mesh
cfg = sac.SACConfig(env="toy/pendulum", num_envs=8, learning_starts=16, batch_size=16, buffer_size=400,
                    hidden_layers=(32,), replay_ratio=0.25)
mesh = make_mesh(4)
env = offpolicy.make_env(cfg)
learner = sac.make_learner(cfg, env)
state = offpolicy.init(cfg, learner, env, mesh)
step = offpolicy.make_train_step(cfg, learner, env, mesh)  # one program: warm-up, then updates under lax.cond
for _ in range(cfg.warmup_iterations):
    state, m = step(state)
assert int(state.updates) == 0 and np.isnan(float(m["critic_loss"]))
for _ in range(3):
    state, m = step(state)
assert np.isfinite(float(m["critic_loss"])), m
assert len(state.buffer.reward.sharding.device_set) == 4
assert state.buffer.reward.addressable_shards[0].data.shape == (50, 2)  # 2 envs per device
for leaf in jax.tree.leaves(state.learner):  # pmean kept every device's copy identical
    shards = [np.asarray(s.data) for s in leaf.addressable_shards]
    assert len(shards) == 4 and all(np.array_equal(shards[0], s) for s in shards[1:])
print("OK", int(state.updates))
"""


def test_sac_on_four_devices_keeps_replicas_identical(run_python):
    assert "OK 6" in run_python(MESH, devices=4)


@pytest.mark.parametrize("change,message", [
    (dict(batch_size=30_000), "batch_size=30000 is not allowed: it must not exceed buffer_size"),
    (dict(replay_ratio=0.0), "replay_ratio=0.0 is not allowed"),
    (dict(replay_ratio=0.3), "must be a whole number"),
    (dict(learning_starts=50_000), "learning_starts=50000 is not allowed"),
    (dict(buffer_size=40), "buffer_size=40 is not allowed"),
    (dict(appearance="colour_hard"), "appearance='colour_hard' is not allowed: it must be one of train"),
    (dict(pixels=True, env="dmc/cartpole_swingup", image_size=8), "too small"),
    (dict(replay_ratio=0.125), "fewer than actor_update_freq=2"),
    (dict(tau=0.0), "SACConfig.tau=0.0"),
    (dict(env="dmc/cartpole_swingupp"), "Closest matches: dmc/cartpole_swingup"),
])
def test_config_errors_name_the_field(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        dataclasses.replace(SAC_TINY, **change).validate()


def test_ddpg_config_errors():
    with pytest.raises(ValueError, match="DDPGConfig.sigma_max=-0.1"):
        dataclasses.replace(DDPG_TINY, sigma_max=-0.1).validate()
    with pytest.raises(ValueError, match="num_envs=8 is not allowed: it must be divisible by the 3 devices"):
        DDPG_TINY.validate(num_devices=3)


class NanPendulum(Pendulum):
    """The pendulum with a NaN reward: the critic loss becomes NaN at the first update."""

    def step(self, state, action):
        s = super().step(state, action)
        return s.replace(reward=s.reward * jnp.nan)


def test_nan_loss_stops_training_and_keeps_checkpoints(tmp_path):
    from vasa.envs import register
    from vasa.run import TrainingDiverged

    register("test/nan_pendulum", NanPendulum)
    config = dataclasses.replace(SAC_TINY, env="test/nan_pendulum", num_envs=4, learning_starts=40, batch_size=16,
                                 buffer_size=400, total_env_steps=400)
    with pytest.raises(TrainingDiverged, match=f"critic_loss.* at iteration {config.warmup_iterations + 1}"):
        sac.train(config, RunConfig(run_dir=str(tmp_path), eval_every=0, progress=False, checkpoint_every=5))
    assert (tmp_path / "checkpoints" / "10").exists()
