"""The behaviour-cloning term on demonstrations (``demo_bc_coef``; :mod:`vasa.algos.demo_bc`) in
PPO's loss and in SAC's and DDPG's actor loss: the pairs it clones, its weight schedule, the
Q-filter's mask against NumPy, TD3+BC's normalisation of the actor's RL term, that it pulls the policy's deterministic action onto the
demonstrated one (measured with NumPy outside the trainer), and its config validation."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_demos import Toy, toy_demos  # noqa: E402

from vasa.algos import ppo  # noqa: E402
from vasa.algos import ddpg, offpolicy, sac  # noqa: E402
from vasa.algos.demo_bc import bc_term, bc_weight, demo_pairs, q_scale  # noqa: E402
from vasa.algos.ppo_config import PPOConfig  # noqa: E402
from vasa.envs.core import register  # noqa: E402


def sine_demos(first_success=(39, 9, 25)):
    """Toy demonstrations whose action is ``0.8 sin(t / 5)`` (1.3 at t = 0 before clipping) and
    whose episode ``e`` first succeeds after the action of step ``first_success[e]``."""
    d = toy_demos(episodes=len(first_success), length=40)
    t = d.obs[..., 1]
    action = np.where(t == 0, 1.3, 0.8 * np.sin(t / 5.0))[..., None].astype(np.float32)
    success = np.zeros_like(d.success)
    for e, s in enumerate(first_success):
        success[e, s:] = 1.0
    return dataclasses.replace(d, action=action, success=success)


def test_pairs_are_the_states_up_to_first_success_with_actions_clipped():
    d = sine_demos()
    obs, action = demo_pairs(d, low=-1.0, high=1.0)
    want_obs, want_action = [], []
    for e, s in enumerate((39, 9, 25)):  # states 0..s: the demonstration proper
        for t in range(s + 1):
            want_obs.append(d.obs[e, t])
            want_action.append(min(max(float(d.action[e, t, 0]), -1.0), 1.0))
    np.testing.assert_array_equal(obs, np.array(want_obs))
    np.testing.assert_allclose(action[:, 0], want_action, rtol=0, atol=1e-7)
    assert obs.dtype == action.dtype == np.float32
    every_obs, every_action = demo_pairs(d, until_success=False)
    assert every_obs.shape == (3 * 40, 3) and every_action.max() == pytest.approx(1.3)


def test_weight_decays_geometrically_and_error_is_the_mean_squared_distance():
    for k in (0, 1, 7, 500):
        assert float(bc_weight(2.0, 0.99, k)) == pytest.approx(2.0 * 0.99**k, rel=1e-5)
    obs = jnp.arange(12.0).reshape(6, 2)
    action = jnp.stack([jnp.arange(6.0), -jnp.arange(6.0)], -1)
    key = jax.random.PRNGKey(3)
    idx = np.asarray(jax.random.randint(key, (50,), 0, 6))
    act = lambda o: 0.5 * o  # noqa: E731
    err = ((0.5 * np.asarray(obs)[idx] - np.asarray(action)[idx]) ** 2).sum(-1)
    error, kept = bc_term(act, obs, action, key, 50)
    assert float(error) == pytest.approx(err.mean(), rel=1e-6) and float(kept) == 1.0
    # Nair et al.'s Q-filter: only pairs whose demonstrated action the critic values above the policy's
    q = lambda o, a: -(a[:, 1] - (o[:, 0] - 5.0)) ** 2  # noqa: E731  the best second action: o_0 - 5
    o, a = np.asarray(obs)[idx], np.asarray(action)[idx]
    keep = np.abs(a[:, 1] - (o[:, 0] - 5)) < np.abs(0.5 * o[:, 1] - (o[:, 0] - 5))
    assert 0 < keep.mean() < 1  # the draw holds pairs of both kinds
    error, kept = bc_term(act, obs, action, key, 50, q)
    assert float(error) == pytest.approx((keep * err).mean(), rel=1e-6)
    assert float(kept) == pytest.approx(keep.mean(), rel=1e-6)
    grad = jax.grad(lambda w: bc_term(lambda o: w * o, obs, action, key, 50, q)[0])(0.5)
    want = (keep[:, None] * 2 * (0.5 * o - a) * o).sum(-1).mean()  # no gradient through the mask
    assert float(grad) == pytest.approx(want, rel=1e-5)


def _config(path, **kw):
    register("toy/demo", lambda **_: Toy())  # the curriculum tests' pure-JAX task, as an env id PPO builds
    fields = dict(env="toy/demo", num_envs=4, unroll_length=8, num_minibatches=2, num_epochs=2, episode_length=16,
                  action_repeat=1, total_env_steps=100 * 32, policy_layers=(32,), value_layers=(16,), demo_path=path,
                  demo_ratio=0.0, learning_rate=3e-3, entropy_coef=0.0, normalize_observations=False)
    return PPOConfig(**{**fields, **kw})


def test_ppo_with_the_term_imitates_the_demonstrations(tmp_path):
    """The toy task pays ``action`` (PPO alone drives it to +1); with a large coefficient the
    policy's deterministic action on the demonstration states comes to match ``0.8 sin(t / 5)``."""
    d = sine_demos()
    path = d.save(tmp_path / "toy.npz")
    obs, action = demo_pairs(d, low=-1.0, high=1.0)

    def error(config, iterations):
        state, step = ppo.init(config), ppo.make_train_step(config)
        policy = ppo.make_policy(config, ppo.make_env(config))
        first = ((np.asarray(policy(state, jnp.asarray(obs))) - action) ** 2).sum(-1).mean()
        logged = []
        for _ in range(iterations):
            state, metrics = step(state)
            logged.append(float(np.asarray(metrics.get("demo_bc", np.nan)).mean()))
        last = ((np.asarray(policy(state, jnp.asarray(obs))) - action) ** 2).sum(-1).mean()
        return first, last, logged

    first, last, logged = error(_config(path, demo_bc_coef=100.0), 30)
    assert first > 0.15 and last < 0.1 * first, (first, last)
    assert logged[-1] == pytest.approx(last, rel=0.5, abs=0.01)  # the logged term: the same error on a sample
    first0, last0, logged0 = error(_config(path), 30)
    assert last0 > 0.5 * first0 and np.isnan(logged0).all()  # without the term nothing pulls it there


def _offpolicy_config(algo, path, **kw):
    register("toy/demo", lambda **_: Toy())
    cls = {"sac": sac.SACConfig, "ddpg": ddpg.DDPGConfig}[algo]
    fields = dict(env="toy/demo", num_envs=4, episode_length=16, action_repeat=1, total_env_steps=10_000,
                  hidden_layers=(32, 32), batch_size=64, buffer_size=2_000, learning_starts=64, demo_path=path,
                  demo_ratio=0.0, learning_rate=3e-3)
    if algo == "sac":
        fields.update(actor_update_freq=1)
    else:
        fields.update(actor_learning_rate=3e-3, sigma_max=0.3)
    return cls(**{**fields, **kw})


@pytest.mark.parametrize("algo", ["sac", "ddpg"])
def test_offpolicy_actor_with_the_term_imitates_the_demonstrations(tmp_path, algo):
    """The toy task pays ``action``; training never visits the demonstration states (``demo_ratio=0``),
    where RL alone leaves the actor's deterministic action far from ``0.8 sin(t / 5)`` (SAC ~0.5, DDPG
    -1 on average). The term pulls it onto the sine (error below a tenth), and the logged error is that
    error on a sample. With the Q-filter the critic, which values a larger action more, keeps only the
    pairs whose demonstrated action beats the actor's: a few percent once the actor sits near +1, so the
    error stays large (measured: kept 4%, actions ~+1, error ~0.97 against ~0.002 unfiltered)."""
    d = sine_demos()
    path = d.save(tmp_path / "toy.npz")
    obs, action = demo_pairs(d, low=-1.0, high=1.0)
    module = {"sac": sac, "ddpg": ddpg}[algo]

    def error(config, iterations=150):
        env = offpolicy.make_env(config)
        learner = module.make_learner(config, env)
        state = offpolicy.init(config, learner, env)
        step = offpolicy.make_train_step(config, learner, env, chunk=iterations)
        state, metrics = step(state, iterations)
        actions = np.asarray(learner.policy(state.learner, jnp.asarray(obs)))
        last = ((actions - action) ** 2).sum(-1).mean()
        return last, {k: np.asarray(metrics[k])[-10:].mean() for k in ("demo_bc", "demo_bc_kept") if k in metrics}

    plain, none = error(_offpolicy_config(algo, path))
    assert not none and plain > 0.25, plain  # RL alone: far from the sine
    cloned, logged = error(_offpolicy_config(algo, path, demo_bc_coef=30.0))
    assert cloned < 0.1 * plain, (cloned, plain)
    assert logged["demo_bc"] == pytest.approx(cloned, rel=0.5, abs=0.01) and logged["demo_bc_kept"] == 1.0
    filtered, logged_q = error(_offpolicy_config(algo, path, demo_bc_coef=30.0, demo_bc_q_filter=True))
    assert logged_q["demo_bc_kept"] < 0.9 and filtered > 2 * cloned, (logged_q, filtered, cloned)


def test_q_scale_is_td3bc_normaliser_over_all_devices():
    """``q_scale(q) = 1 / mean |q|`` (TD3+BC's lambda / alpha) against NumPy, without gradient, and under a
    two-way named axis (two devices' batches) the mean over both batches; zeros hit the floor."""
    q = jax.random.normal(jax.random.PRNGKey(0), (2, 32)) * 7.0 - 3.0
    q_np = np.asarray(q, np.float64)
    one = jax.vmap(q_scale, axis_name="data")(q[:1])  # one device
    assert float(one[0]) == pytest.approx(1.0 / np.abs(q_np[0]).mean(), rel=1e-6)
    both = jax.vmap(q_scale, axis_name="data")(q)  # two devices: one factor from both batches
    np.testing.assert_allclose(np.asarray(both), 1.0 / np.abs(q_np).mean(), rtol=1e-6)
    grad = jax.grad(lambda x: jax.vmap(q_scale, axis_name="data")(x).sum())(q)
    assert not np.asarray(grad).any()  # a constant factor: the gradient flows through the RL term only
    assert float(jax.vmap(q_scale, axis_name="data")(jnp.zeros((1, 8)))[0]) == pytest.approx(1e6)


@pytest.mark.parametrize("algo", ["sac", "ddpg"])
def test_normalised_actor_loss_divides_the_rl_term_by_mean_abs_q(tmp_path, algo):
    """With ``demo_bc_normalize`` the actor's loss is ``RL / mean |Q| + C * error`` (TD3+BC): in these 40
    iterations of the toy task the critic values every action below 0 (its logged ``q_mean`` stays under
    -5), so ``-mean(Q) / mean |Q| = 1`` exactly and the logged ``actor_loss - C * demo_bc`` is 1 (SAC with a
    temperature of 1e-6, whose entropy term then weighs nothing), where unnormalised it is ``-mean Q``
    (~14). And the normalised RL term still moves the actor: with a small coefficient the SAC actor,
    cloning -0.5 on the very states it trains on, follows the reward upward (measured -0.28)."""
    path = sine_demos().save(tmp_path / "toy.npz")
    module = {"sac": sac, "ddpg": ddpg}[algo]
    extra = dict(init_temperature=1e-6) if algo == "sac" else {}

    def train(config, iterations=40):
        env = offpolicy.make_env(config)
        learner = module.make_learner(config, env)
        state = offpolicy.init(config, learner, env)
        state, metrics = offpolicy.make_train_step(config, learner, env, chunk=iterations)(state, iterations)
        return learner, state, {k: np.asarray(v) for k, v in metrics.items()}

    for normalize in (True, False):
        _, _, m = train(_offpolicy_config(algo, path, demo_bc_coef=3.0, demo_bc_normalize=normalize, **extra))
        learning = ~np.isnan(m["actor_loss"])  # iterations after learning_starts
        assert learning.sum() >= 20
        rl = (m["actor_loss"] - 3.0 * m["demo_bc"])[learning]
        assert (m["q_mean"][learning] < -5).all()
        if normalize:
            np.testing.assert_allclose(rl, 1.0, rtol=0, atol=1e-4)
        else:
            assert (rl > 5).all(), rl
    if algo == "sac":
        d = toy_demos()
        obs = d.obs.copy()
        obs[..., :2], obs[..., 2] = -1.0, 100.0 + np.linspace(0, 1, obs[..., 2].size).reshape(obs.shape[:2])
        on = dataclasses.replace(d, obs=obs.astype(np.float32), action=np.full_like(d.action, -0.5))
        config = _offpolicy_config(algo, on.save(tmp_path / "on.npz"), demo_bc_coef=0.05, demo_bc_normalize=True)
        learner, state, _ = train(config, 150)
        actions = np.asarray(learner.policy(state.learner, jnp.asarray(demo_pairs(on)[0])))
        assert actions.mean() > -0.45, actions.mean()


def test_config_refuses_the_term_where_it_cannot_apply(tmp_path):
    path = sine_demos().save(tmp_path / "toy.npz")
    _config(path, demo_bc_coef=1.0, demo_bc_decay=0.99, demo_bc_batch=64).validate()
    cases = [
        (dict(demo_path=None, demo_ratio=0.5, demo_bc_coef=1.0), "demo_bc_coef=1.0 is not allowed: it clones"),
        (dict(demo_bc_coef=1.0, core="lstm", num_envs=4, num_minibatches=2), "demo_bc_coef=1.0 is not allowed: demo"),
        (dict(demo_bc_decay=0.5), "demo_bc_decay=0.5 is not allowed: it decays"),
        (dict(demo_bc_batch=32), "demo_bc_batch=32 is not allowed: it sizes"),
        (dict(demo_bc_coef=1.0, demo_bc_decay=0.0), "demo_bc_decay=0.0 is not allowed"),
        (dict(demo_bc_coef=1.0, demo_bc_decay=1.5), "demo_bc_decay=1.5 is not allowed"),
        (dict(demo_bc_coef=-1.0), "demo_bc_coef=-1.0 is not allowed"),
        (dict(demo_bc_coef=float("nan")), "demo_bc_coef=nan is not allowed"),
    ]
    for kw, message in cases:
        with pytest.raises(ValueError, match=message):
            _config(path, **kw).validate()
    _offpolicy_config("sac", path, demo_bc_coef=1.0, demo_bc_decay=0.99, demo_bc_batch=64,
                      demo_bc_q_filter=True).validate()
    offpolicy_cases = [
        (dict(demo_path=None, demo_ratio=0.5, demo_bc_coef=1.0), "demo_bc_coef=1.0 is not allowed: it clones"),
        (dict(demo_bc_coef=1.0, pixels=True), "demo_bc_coef=1.0 is not allowed: demonstrations record state "
                                              "observations: set pixels=False"),
        (dict(demo_bc_q_filter=True), "demo_bc_q_filter=True is not allowed: it filters"),
        (dict(demo_bc_normalize=True), "demo_bc_normalize=True is not allowed: it scales the RL term"),
        (dict(demo_bc_decay=0.5), "demo_bc_decay=0.5 is not allowed: it decays"),
        (dict(demo_bc_coef=1.0, demo_bc_batch=0), "demo_bc_batch=0 is not allowed"),
    ]
    for algo in ("sac", "ddpg"):
        for kw, message in offpolicy_cases:
            with pytest.raises(ValueError, match=message):
                _offpolicy_config(algo, path, **kw).validate()
