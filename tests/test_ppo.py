"""PPO: learning, SURREAL's adaptive beta and target network, seeds, configuration errors."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa.algos import ppo

TINY = ppo.PPOConfig(env="toy/pendulum", num_envs=32, unroll_length=16, num_minibatches=4, num_epochs=2,
                     action_repeat=1, total_env_steps=32 * 16 * 50, policy_layers=(32, 32), value_layers=(32, 32))


def run_iterations(config, n):
    state = ppo.init(config)
    step = ppo.make_train_step(config)
    history = []
    for _ in range(n):
        before = jax.tree.map(jnp.copy, (state.params, state.ref_policy, state.beta))
        state, metrics = step(state)
        history.append((before, jax.device_get(metrics)))
    return state, history


def test_ppo_learns_pendulum_within_a_minute():
    # ~ 20 s on a 2-core CPU: the deterministic return improves by more than 500
    config = dataclasses.replace(TINY, num_envs=64, unroll_length=32, num_minibatches=8, num_epochs=4,
                                 total_env_steps=600_000, reward_scaling=0.1, policy_layers=(64, 64),
                                 value_layers=(64, 64))
    state = ppo.init(config)
    evaluate = ppo.make_evaluate(config, num_envs=32)
    before = float(evaluate(state, jax.random.PRNGKey(1)))
    step = ppo.make_train_step(config)
    for _ in range(config.num_iterations):
        state, metrics = step(state)
    after = float(evaluate(state, jax.random.PRNGKey(1)))
    assert after - before > 500, (before, after)
    assert after > -700


@pytest.mark.parametrize("beta,kl,expected", [
    (1.0, 0.05, 1.5),        # KL > 2 target: raise
    (1.0, 0.031, 1.5),
    (1.0, 0.029, 1.0),       # inside [target/2, 2 target]: keep
    (1.0, 0.008, 1.0),
    (1.0, 0.007, 1 / 1.5),   # KL < target/2: lower
    (34.0, 1.0, 35.0),       # bounded above
    (0.03, 0.0, 1 / 35),     # bounded below
])
def test_adaptive_beta_rule(beta, kl, expected):
    config = ppo.PPOConfig(kl_target=0.015)
    np.testing.assert_allclose(float(ppo.adapt_beta(jnp.float32(beta), jnp.float32(kl), config)), expected, rtol=1e-6)


def test_kl_surrogate_adapts_beta_from_measured_kl_and_ref_lags_k_iterations():
    config = dataclasses.replace(TINY, surrogate="kl", target_update_interval=3, kl_target=0.002, beta_init=1.0)
    state, history = run_iterations(config, 7)
    for i, ((params, ref, beta), metrics) in enumerate(history):
        # beta after the iteration follows the rule applied to the reported KL
        expected = ppo.adapt_beta(beta, jnp.float32(metrics["kl"]), config)
        np.testing.assert_allclose(metrics["beta"], expected, rtol=1e-6)
        # the reference (behaviour) policy equals the learner only right after a refresh
        in_sync = all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params["policy"], ref)))
        assert in_sync == (i % 3 == 0), (i, in_sync)
    betas = [m["beta"] for _, m in history]
    assert len(set(np.round(betas, 6))) > 1  # the penalty actually adapted


def test_clip_surrogate_with_k1_is_ordinary_ppo():
    state, history = run_iterations(TINY, 2)
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)),
                                            state.params["policy"], state.ref_policy)))
    assert all(np.isfinite(m["loss"]) for _, m in history)


def test_vmap_over_seeds_gives_different_valid_runs_matching_single_runs():
    seeded = dataclasses.replace(TINY, num_seeds=2, seed=3)
    state, _ = run_iterations(seeded, 3)
    kernel = state.params["policy"]["params"]["mean"]["kernel"]
    assert kernel.shape[0] == 2 and not np.allclose(kernel[0], kernel[1])
    single, _ = run_iterations(dataclasses.replace(TINY, seed=4), 3)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[1], b, rtol=2e-5, atol=2e-6), state.params, single.params)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))


def test_policy_outputs_bounded_actions():
    state, _ = run_iterations(TINY, 1)
    policy = ppo.make_policy(TINY)
    obs = jax.random.normal(jax.random.PRNGKey(0), (10, 3)) * 5
    a = policy(state, obs)
    assert a.shape == (10, 1) and bool(jnp.all(jnp.abs(a) <= 1))
    b = ppo.make_policy(TINY, deterministic=False)(state, obs, jax.random.PRNGKey(1))
    assert not np.allclose(a, b)


@pytest.mark.parametrize("field,value,devices", [
    ("num_envs", 30, 4),              # not divisible by the number of devices
    ("num_minibatches", 7, 1),        # does not divide the batch 32 * 16
    ("learning_rate", 0.0, 1),
    ("learning_rate", -1e-3, 1),
    ("unroll_length", 0, 1),          # the horizon
    ("action_repeat", 0, 1),
    ("env", "toy/pendulm", 1),
    ("gamma", 1.5, 1),
    ("surrogate", "trpo", 1),
])
def test_config_errors_name_field_and_value(field, value, devices):
    config = dataclasses.replace(TINY, **{field: value})
    with pytest.raises(ValueError) as err:
        config.validate(devices)
    assert field in str(err.value) and repr(value) in str(err.value)


def test_config_errors_come_before_compilation(monkeypatch):
    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before validating")

    monkeypatch.setattr(jax, "jit", no_compile)
    with pytest.raises(ValueError, match="learning_rate"):
        ppo.init(dataclasses.replace(TINY, learning_rate=0.0))
    with pytest.raises(ValueError, match="env"):
        ppo.make_train_step(dataclasses.replace(TINY, env="nope"))


def test_kl_early_stop_skips_the_rest_of_the_iteration():
    # at the first minibatch the learner equals the behaviour policy (KL = 0), so exactly one
    # update is applied before any KL exceeds the tiny threshold
    config = dataclasses.replace(TINY, kl_early_stop=1e-9)
    _, history = run_iterations(config, 2)
    steps = config.num_epochs * config.num_minibatches
    for _, metrics in history:
        np.testing.assert_allclose(metrics["updates_skipped"], (steps - 1) / steps)
    _, free = run_iterations(TINY, 1)
    assert free[0][1]["updates_skipped"] == 0


def test_normalizer_order_changes_learning_not_statistics():
    after, _ = run_iterations(TINY, 1)
    first, _ = run_iterations(dataclasses.replace(TINY, normalizer_first=True), 1)
    # the statistics hold the same batch either way (one rollout from the same initial state)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), after.normalizer, first.normalizer)
    assert float(after.normalizer.count) == TINY.num_envs * TINY.unroll_length
    # but the learner saw differently normalised inputs
    assert not np.allclose(after.params["value"]["params"]["Dense_0"]["kernel"],
                           first.params["value"]["params"]["Dense_0"]["kernel"])


def test_chunked_step_matches_single_iterations():
    # train_chunk(state, count) runs `count` iterations in one call: same states and metrics
    # as `count` single calls; rows past `count` are NaN; one executable serves every count
    config = dataclasses.replace(TINY, num_seeds=2)
    single = ppo.make_train_step(config)
    state = ppo.init(config)
    expected = []
    for _ in range(3):
        state, metrics = single(state)
        expected.append(jax.device_get(metrics))
    reference = jax.device_get(state.params)

    chunked = ppo.make_train_step(config, chunk=4)
    state = ppo.init(config)
    compiled = chunked.lower(state, 4).compile()
    state, metrics = compiled(state, 3)
    metrics = jax.device_get(metrics)
    for a, b in zip(jax.tree.leaves(jax.device_get(state.params)), jax.tree.leaves(reference)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert int(state.iteration[0]) == 3
    for k, v in metrics.items():
        assert v.shape == (4, 2), (k, v.shape)
        np.testing.assert_allclose(v[:3], np.stack([m[k] for m in expected]), rtol=1e-4, atol=1e-5, err_msg=k)
        assert np.isnan(v[3]).all(), k
    state, metrics = compiled(state, 2)  # the same executable, another count
    assert int(state.iteration[0]) == 5 and np.isnan(metrics["loss"][2:]).all()
    with pytest.raises(ValueError, match="chunk=0"):
        ppo.make_train_step(config, chunk=0)


def test_chunk_plan_ends_calls_at_events():
    from vasa.run import chunk_plan

    assert chunk_plan(0, 25, 10, (10, 0)) == [10, 10, 5]
    assert chunk_plan(3, 25, 10, (4,)) == [1, 4, 4, 4, 4, 4, 1]
    assert chunk_plan(0, 7, 1, (3,)) == [1] * 7
    assert chunk_plan(5, 5, 10) == []
    assert chunk_plan(0, 12, 10, ((5, 1),)) == [1, 5, 5, 1]  # (period, phase): ends at 1, 6, 11
    rng = np.random.default_rng(0)
    for _ in range(300):  # property: sums to the span, each <= chunk, crosses no event
        start, span, chunk = (int(x) for x in rng.integers(0, 40, 3))
        chunk += 1
        every = [int(x) for x in rng.integers(0, 12, 2)]
        every[1] = (every[1], int(rng.integers(0, 30)))  # the second with a phase
        plan = chunk_plan(start, start + span, chunk, tuple(every))
        assert sum(plan) == span and all(1 <= n <= chunk for n in plan)
        ends = np.cumsum([start] + plan)
        for e in every:
            period, phase = e if isinstance(e, tuple) else (e, 0)
            if period:
                events = [k for k in range(start + 1, start + span + 1) if (k - phase) % period == 0]
                assert set(events) <= set(ends[1:].tolist()), (start, span, chunk, every, plan)


def test_caps_terms_match_numpy():
    # CAPS's temporal and spatial terms for a linear-tanh policy, against NumPy with the same noise
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    obs, nxt = (rng.normal(size=(16, 4)).astype(np.float32) for _ in range(2))
    key, sigma = jax.random.PRNGKey(3), 0.3
    act = lambda x: jnp.tanh(x @ w + b)  # noqa: E731
    temporal, spatial = ppo.caps_terms(act, jnp.asarray(obs), jnp.asarray(nxt), key, sigma)
    noise = np.asarray(jax.random.normal(key, obs.shape, jnp.float32))
    ref = lambda x: np.tanh(x @ w + b)  # noqa: E731
    np.testing.assert_allclose(temporal, np.linalg.norm(ref(obs) - ref(nxt), axis=-1).mean(), rtol=1e-5)
    np.testing.assert_allclose(spatial, np.linalg.norm(ref(obs) - ref(obs + sigma * noise), axis=-1).mean(),
                               rtol=1e-5)
    none = ppo.caps_terms(act, jnp.asarray(obs), None, None, sigma)
    assert float(none[0]) == 0.0 and float(none[1]) == 0.0


def test_caps_smoothness_is_logged_and_makes_the_policy_smoother():
    # a heavy temporal + spatial weight: the deterministic action changes far less from step to step
    smooth = dataclasses.replace(TINY, smooth_temporal=5.0, smooth_spatial=5.0, smooth_sigma=0.2, learning_rate=3e-3)
    plain = dataclasses.replace(smooth, smooth_temporal=0.0, smooth_spatial=0.0)

    def dither(config):  # mean ||a_t+1 - a_t|| of the trained deterministic policy over 16 x 100 steps
        state, history = run_iterations(config, 12)
        env = ppo.make_env(config)
        policy = ppo.make_policy(config, env)

        def body(s, _):
            a = policy(state, s.obs)
            return jax.vmap(env.step)(s, a), a

        s0 = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 16))
        actions = jax.lax.scan(body, s0, None, length=100)[1]
        return float(jnp.linalg.norm(jnp.diff(actions, axis=0), axis=-1).mean()), history

    smooth_dither, hs = dither(smooth)
    plain_dither, hp = dither(plain)
    assert all(np.isfinite(m["smooth_temporal"]) and np.isfinite(m["smooth_spatial"]) for _, m in hs)
    assert "smooth_temporal" not in hp[0][1]
    assert hs[-1][1]["smooth_temporal"] < 0.5 * hs[0][1]["smooth_temporal"]
    assert smooth_dither < 0.25 * plain_dither, (smooth_dither, plain_dither)


@pytest.mark.parametrize("changes", [dict(core="lstm"), dict(pixels=True, env="dmc/reacher_easy")])
def test_caps_smoothness_needs_a_feed_forward_state_policy(changes):
    config = dataclasses.replace(TINY, smooth_temporal=0.1, **changes)
    with pytest.raises(ValueError, match="smooth_temporal"):
        config.validate()
