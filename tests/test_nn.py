"""Normaliser, distributions and policy heads against NumPy formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa.nn import ActionDistribution, GaussianPolicyHead, RunningStats


@pytest.mark.parametrize("seed", range(3))
def test_running_stats_match_numpy_over_everything_seen(seed):
    rng = np.random.default_rng(seed)
    stats = RunningStats.create(4)
    seen = []
    for _ in range(6):
        n = int(rng.integers(1, 50))
        x = rng.normal(loc=rng.normal(size=4) * 5, scale=rng.random(4) * 3 + 0.1, size=(n, 4)).astype(np.float32)
        seen.append(x)
        stats = jax.jit(RunningStats.update)(stats, jnp.asarray(x))
        all_x = np.concatenate(seen)
        np.testing.assert_allclose(stats.mean, all_x.mean(0), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(stats.var, all_x.var(0), rtol=1e-3, atol=1e-4)
        assert float(stats.count) == len(all_x)
    z = stats.normalize(jnp.asarray(all_x))
    np.testing.assert_allclose(z, np.clip((all_x - all_x.mean(0)) / np.sqrt(all_x.var(0) + 1e-8), -10, 10), atol=1e-3)


def test_gaussian_log_prob_entropy_kl_match_formulas():
    rng = np.random.default_rng(0)
    mu_p, mu_q, u = (rng.normal(size=(5, 3)) for _ in range(3))
    ls_p, ls_q = (rng.normal(size=(5, 3)) * 0.5 for _ in range(2))
    sp, sq = np.exp(ls_p), np.exp(ls_q)
    logp_ref = (-0.5 * ((u - mu_p) / sp) ** 2 - np.log(sp) - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(ActionDistribution.log_prob(u, mu_p, ls_p), logp_ref, rtol=1e-5)
    ent_ref = (0.5 * np.log(2 * np.pi * np.e * sp**2)).sum(-1)
    np.testing.assert_allclose(ActionDistribution.gaussian_entropy(ls_p), ent_ref, rtol=1e-5)
    clip = ActionDistribution(-jnp.ones(3), jnp.ones(3), "clip")
    np.testing.assert_allclose(clip.entropy(mu_p, ls_p, rng.normal(size=(5, 3))), ent_ref, rtol=1e-5)
    kl_ref = (np.log(sq / sp) + (sp**2 + (mu_p - mu_q) ** 2) / (2 * sq**2) - 0.5).sum(-1)
    np.testing.assert_allclose(ActionDistribution.kl(mu_p, ls_p, mu_q, ls_q), kl_ref, rtol=1e-5, atol=1e-6)
    # Monte-Carlo check of KL(p||q) = E_p[log p - log q]
    x = mu_p[0] + sp[0] * rng.normal(size=(200_000, 3))
    mc = (ActionDistribution.log_prob(x, mu_p[0], ls_p[0]) - ActionDistribution.log_prob(x, mu_q[0], ls_q[0])).mean()
    np.testing.assert_allclose(mc, kl_ref[0], rtol=0.05, atol=0.01)


@pytest.mark.parametrize("squash", ["tanh", "clip"])
def test_actions_respect_bounds(squash):
    low, high = jnp.array([-2.0, 0.0]), jnp.array([1.0, 5.0])
    dist = ActionDistribution(low, high, squash)
    u = jax.random.normal(jax.random.PRNGKey(0), (1000, 2)) * 10
    a = dist.to_action(u)
    assert bool(jnp.all(a >= low)) and bool(jnp.all(a <= high))
    if squash == "tanh":  # zero maps to the middle of the range
        np.testing.assert_allclose(dist.to_action(jnp.zeros(2)), (low + high) / 2)


@pytest.mark.parametrize("state_dependent", [False, True])
def test_policy_head_initial_log_std(state_dependent):
    head = GaussianPolicyHead(layers=(8,), action_size=3, state_dependent_std=state_dependent, init_log_std=-1.0)
    obs = jax.random.normal(jax.random.PRNGKey(1), (4, 5))
    params = head.init(jax.random.PRNGKey(0), obs)
    mean, log_std = head.apply(params, obs)
    assert mean.shape == log_std.shape == (4, 3)
    np.testing.assert_allclose(log_std, -1.0, atol=0.05)


def test_tanh_entropy_matches_change_of_variables_on_a_histogram():
    # entropy of a = 3 * tanh(u), u ~ N(0.5, 0.8^2), in one dimension: compare the averaged
    # one-sample estimator with -E[log p_a(a)] from a fine histogram of samples
    dist = ActionDistribution(jnp.array([-3.0]), jnp.array([3.0]), "tanh")
    mean, log_std = jnp.array([0.5]), jnp.log(jnp.array([0.8]))
    noise = jax.random.normal(jax.random.PRNGKey(0), (400_000, 1))
    est = float(dist.entropy(mean, log_std, noise).mean())
    a = np.asarray(dist.to_action(mean + jnp.exp(log_std) * noise))[:, 0]
    hist, edges = np.histogram(a, bins=4000, range=(-3, 3), density=True)
    width = edges[1] - edges[0]
    nz = hist > 0
    ref = -np.sum(hist[nz] * np.log(hist[nz]) * width)
    np.testing.assert_allclose(est, ref, atol=0.02)
    # the bounded entropy can never exceed the uniform distribution's, log(6)
    wide = float(dist.entropy(mean, jnp.log(jnp.array([50.0])), noise).mean())
    assert wide < np.log(6.0)


def test_spatial_softmax_matches_numpy_and_finds_a_bright_spot():
    from vasa.nn.encoders import SpatialSoftmax

    rng = np.random.default_rng(0)
    f = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
    module = SpatialSoftmax()
    params = {"params": {"log_temperature": jnp.float32(np.log(0.5))}}  # the module's only parameter
    out = np.asarray(module.apply(params, f))
    # NumPy: softmax over the 35 positions per channel at temperature 0.5, expected (x, y) on [-1, 1] grids
    z = f.reshape(2, 35, 3) / 0.5
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ys, xs = np.meshgrid(np.linspace(-1, 1, 5), np.linspace(-1, 1, 7), indexing="ij")
    ref = np.concatenate([np.einsum("bpc,p->bc", p, xs.ravel()), np.einsum("bpc,p->bc", p, ys.ravel())], -1)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    # one bright spot per channel: the keypoint is its position
    spot = np.zeros((1, 5, 7, 2), np.float32)
    spot[0, 1, 6, 0], spot[0, 4, 0, 1] = 50.0, 50.0
    k = np.asarray(module.apply(module.init(jax.random.PRNGKey(0), spot), spot))[0]
    np.testing.assert_allclose(k, [1.0, -1.0, -0.5, 1.0], atol=1e-4)
