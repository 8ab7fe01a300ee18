"""PPO's behaviour-cloning term on demonstrations (``demo_bc_coef``; :mod:`vasa.algos.demo_bc`):
the pairs it clones, its weight schedule, that it pulls the policy's deterministic action onto
the demonstrated one (measured with NumPy outside the trainer), and its config validation."""

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
from vasa.algos.demo_bc import bc_error, bc_weight, demo_pairs  # noqa: E402
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
    want = ((0.5 * np.asarray(obs)[idx] - np.asarray(action)[idx]) ** 2).sum(-1).mean()
    assert float(bc_error(act, obs, action, key, 50)) == pytest.approx(want, rel=1e-6)


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
