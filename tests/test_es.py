"""Evolution strategies: fitness shaping and the gradient estimate against NumPy, a whole
update against a NumPy replay on a one-step task, learning on toy/reach2d, the same update on
1 and 4 devices, discretised actions, resume, and config errors before compiling."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa.algos import es
from vasa.envs.core import ArraySpec, EnvState
from vasa.nn import RunningStats
from vasa.run import RunConfig

QUIET = dict(progress=False, num_eval_envs=8)


def _np_centered_ranks(x):
    """OpenAI-ES's compute_centered_ranks (es_distributed/es.py), written in NumPy."""
    ranks = np.empty(x.size, dtype=np.float32)
    ranks[x.ravel().argsort(kind="stable")] = np.arange(x.size)
    return ranks.reshape(x.shape) / (x.size - 1) - 0.5


@pytest.mark.parametrize("seed", range(4))
def test_centered_ranks_match_openai(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=int(rng.integers(2, 300))).astype(np.float32)
    if seed == 3:
        x[::3] = x[0]  # ties: broken by position, as a stable argsort does
    np.testing.assert_allclose(np.asarray(es.centered_ranks(jnp.asarray(x))), _np_centered_ranks(x), atol=1e-7)
    ranks = np.asarray(es.centered_ranks(jnp.asarray(x)))
    assert ranks.min() == pytest.approx(-0.5) and ranks.max() == pytest.approx(0.5)


@pytest.mark.parametrize("antithetic,shards", [(True, 1), (True, 4), (False, 2)])
def test_gradient_estimate_matches_numpy(antithetic, shards):
    P, n = 16, 7
    key = jax.random.PRNGKey(3)
    index, sign = es.member_layout(P, shards, antithetic)
    eps = np.stack([np.asarray(es.noise_vector(key, j, n)) for j in range(index.max() + 1)])
    fitness = np.random.default_rng(0).normal(size=P).astype(np.float32)
    g = np.asarray(es.gradient_estimate(jnp.asarray(fitness), key, n, index, sign))
    if antithetic:  # pairs: each noise index used once with + and once with -
        assert sorted(np.bincount(index).tolist()) == [2] * (P // 2)
        plus = {int(i): f for i, s, f in zip(index, sign, fitness) if s > 0}
        minus = {int(i): f for i, s, f in zip(index, sign, fitness) if s < 0}
        expect = sum((plus[j] - minus[j]) * eps[j] for j in range(P // 2)) / P
    else:
        expect = sum(f * eps[m] for m, f in enumerate(fitness)) / P
    np.testing.assert_allclose(g, expect, rtol=1e-5, atol=1e-6)


class OneStep:
    """A one-step task: observation ``c`` (fixed), reward ``-(a - 0.3)^2``; done after one step."""

    episode_length, steps_per_action = 1, 1
    observation_spec = ArraySpec((2,), jnp.float32)
    action_spec = ArraySpec((1,), jnp.float32, low=-np.ones(1, np.float32), high=np.ones(1, np.float32))

    def reset(self, key):
        z = jnp.zeros((), jnp.float32)
        return EnvState(physics=z, obs=jnp.array([0.5, -1.0]), reward=z, done=z, truncation=z)

    def step(self, state, action):
        return state.replace(reward=-jnp.sum((action - 0.3) ** 2), done=jnp.ones((), jnp.float32))


def _np_adam(theta, grad, lr, b1=0.9, b2=0.999, eps=1e-8):
    m, v = (1 - b1) * grad, (1 - b2) * grad**2
    return theta - lr * (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + eps)


@pytest.mark.parametrize("shaping", ["centered_rank", "z_score"])
def test_one_update_matches_a_numpy_replay(shaping):
    # every member's fitness is computable in NumPy: -(pi_theta_m(c) - 0.3)^2 with theta_m = theta + sigma s_m eps_m
    config = es.ESConfig(env="toy/pendulum", population=8, action_noise=0.0, hidden_layers=(4,), noise_std=0.1,
                         normalize_observations=False, fitness_shaping=shaping, l2_coef=0.01)
    env = OneStep()
    state = es.init(config, env)
    theta0, key = np.asarray(state.theta), jnp.asarray(np.asarray(state.key))  # the step donates the state
    state, metrics = es.make_train_step(config, env)(state)
    _, k_noise, _ = jax.random.split(key, 3)
    policy = es.Policy(config, env)
    index, sign = es.member_layout(8, 1, True)
    eps = np.stack([np.asarray(es.noise_vector(k_noise, j, theta0.size)) for j in range(4)])
    stats = RunningStats.create(2)
    fitness = []
    for m in range(8):
        th = theta0 + 0.1 * sign[m] * eps[index[m]]
        a = np.asarray(policy.act(jnp.asarray(th), stats, jnp.array([0.5, -1.0])))
        fitness.append(-float(np.sum((a - 0.3) ** 2)))
    fitness = np.array(fitness, np.float32)
    shaped = _np_centered_ranks(fitness) if shaping == "centered_rank" else (fitness - fitness.mean()) / (
        fitness.std() + 1e-8)
    g = sum((shaped[m] * sign[m]) * eps[index[m]] for m in range(8)) / 8
    expect = _np_adam(theta0, -g + 0.01 * theta0, config.learning_rate)
    np.testing.assert_allclose(np.asarray(state.theta), expect, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(metrics["fitness_mean"]), fitness.mean(), rtol=1e-5)
    assert float(metrics["episode_steps"]) == 1.0


def test_discretised_actions_take_only_bin_values():
    config = es.ESConfig(env="toy/reach2d", action_bins=5, action_noise=0.5, hidden_layers=(8,))
    env = es.make_env(config)
    policy = es.Policy(config, env)
    theta = policy.init(jax.random.PRNGKey(0)) * 10
    obs = jax.random.normal(jax.random.PRNGKey(1), (256, 2))
    noise = jax.random.normal(jax.random.PRNGKey(2), (256, policy.output_size))
    actions = np.asarray(policy.act(theta, RunningStats.create(2), obs, 0.5 * noise))
    values = np.linspace(-1, 1, 5)
    assert np.all(np.min(np.abs(actions[..., None] - values), axis=-1) < 1e-6)
    assert len(np.unique(actions)) >= 3  # it does use several bins


REACH = es.ESConfig(env="toy/reach2d", population=32, hidden_layers=(16,), noise_std=0.05, learning_rate=0.03,
                    total_env_steps=32 * 50 * 30)


def test_es_learns_reach2d_within_seconds(tmp_path):
    # 30 iterations of 32 members (48K steps, ~5 s with compilation): from the initial policy's -65 to
    # -5.3 (measured; the linear expert scores -0.8, staying put about -38)
    _, _, rows = es.train(REACH, RunConfig(run_dir=str(tmp_path), eval_every=1, **QUIET))
    first, last = rows[0]["eval_return"], rows[-1]["eval_return"]
    assert last > -8 and last > first + 10, (first, last)
    assert rows[-1]["env_steps"] == 30 * 32 * 50 and rows[-1]["fitness_max"] > rows[0]["fitness_max"]


def test_resume_continues_bit_for_bit(tmp_path):
    config = dataclasses.replace(REACH, total_env_steps=32 * 50 * 8, rollouts_per_member=2, population=16)
    _, whole, _ = es.train(config, RunConfig(run_dir=str(tmp_path / "a"), eval_every=4, checkpoint_every=0, **QUIET))
    es.train(config, RunConfig(run_dir=str(tmp_path / "b"), eval_every=4, checkpoint_every=0, max_iterations=3,
                               **QUIET))
    _, resumed, rows = es.train(config, RunConfig(resume=str(tmp_path / "b"), **QUIET))
    assert [r["iteration"] for r in rows] == [4, 5, 6, 7, 8]
    for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.mark.parametrize("change,message", [
    (dict(population=7), "ESConfig.population=7 is not allowed: antithetic sampling needs an even number"),
    (dict(noise_std=0.0), "ESConfig.noise_std=0.0 is not allowed"),
    (dict(noise_std=-0.1), "ESConfig.noise_std=-0.1 is not allowed"),
    (dict(action_bins=1), "ESConfig.action_bins=1 is not allowed"),
    (dict(fitness_shaping="rank"), "ESConfig.fitness_shaping='rank' is not allowed"),
])
def test_bad_configs_fail_before_compiling(change, message, compiles, tmp_path):
    before = compiles[0]
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        es.train(dataclasses.replace(REACH, **change), RunConfig(run_dir=str(tmp_path / "r"), **QUIET))
    assert compiles[0] == before and not (tmp_path / "r").exists()


DEVICES = """
import jax, numpy as np
from vasa.algos import es
from vasa.dist import make_mesh
config = es.ESConfig(env="toy/reach2d", population=16, hidden_layers=(8,), rollouts_per_member=2,
                     obs_stats_fraction=0.2)
thetas, norms = [], []
for d in (1, 4):
    mesh = make_mesh(d)
    state = es.init(config, mesh=mesh)
    step = es.make_train_step(config, mesh=mesh)
    for _ in range(2):
        state, metrics = step(state)
    thetas.append(np.asarray(state.theta)); norms.append(np.asarray(state.normalizer.mean))
np.testing.assert_allclose(thetas[0], thetas[1], rtol=1e-5, atol=1e-6)
np.testing.assert_allclose(norms[0], norms[1], rtol=1e-5, atol=1e-6)
print("OK", float(np.abs(thetas[0] - thetas[1]).max()))
"""


def test_one_and_four_devices_make_the_same_update(run_python):
    assert "OK" in run_python(DEVICES, devices=4)
