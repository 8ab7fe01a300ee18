"""GAE against a plain NumPy loop, with terminations and truncations mid-unroll."""

import jax.numpy as jnp
import numpy as np
import pytest

from vasa.algos.returns import gae_advantages


def numpy_gae(rewards, values, next_values, terms, dones, gamma, lam):
    T = len(rewards)
    adv = np.zeros_like(rewards)
    last = np.zeros_like(rewards[0])
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * (1 - terms[t]) * next_values[t] - values[t]
        last = delta + gamma * lam * (1 - dones[t]) * last
        adv[t] = last
    return adv, adv + values


@pytest.mark.parametrize("seed", range(5))
def test_gae_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    T, B = 17, 6
    r, v, nv = (rng.normal(size=(T, B)).astype(np.float32) for _ in range(3))
    dones = (rng.random((T, B)) < 0.2).astype(np.float32)
    # half of the episode ends are truncations (not terminal), half terminations
    trunc = dones * (rng.random((T, B)) < 0.5)
    terms = dones - trunc
    gamma, lam = 0.97, 0.9
    adv, ret = gae_advantages(*(jnp.asarray(x) for x in (r, v, nv, terms, dones)), gamma, lam)
    adv_ref, ret_ref = numpy_gae(r, v, nv, terms, dones, gamma, lam)
    np.testing.assert_allclose(adv, adv_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, ret_ref, rtol=1e-5, atol=1e-5)


def test_truncation_bootstraps_and_termination_does_not():
    # one step, episode ends: bootstrap value 10 only counts when truncated
    r, v, nv = jnp.ones((1, 2)), jnp.zeros((1, 2)), jnp.full((1, 2), 10.0)
    dones = jnp.ones((1, 2))
    terms = jnp.array([[1.0, 0.0]])  # env 0 terminated, env 1 truncated
    adv, _ = gae_advantages(r, v, nv, terms, dones, 0.5, 0.95)
    np.testing.assert_allclose(adv, [[1.0, 1.0 + 0.5 * 10.0]])


def test_episode_end_cuts_the_recursion():
    T = 4
    r = jnp.zeros((T, 1)).at[3, 0].set(1.0)
    z = jnp.zeros((T, 1))
    dones = z.at[1, 0].set(1.0)  # episode boundary after step 1
    adv, _ = gae_advantages(r, z, z, dones, dones, 1.0, 1.0)
    np.testing.assert_allclose(adv[:, 0], [0.0, 0.0, 1.0, 1.0])
