"""GAE against a plain NumPy loop, with terminations and truncations mid-unroll; successor
values; minibatch advantage statistics (shared and per start type) against NumPy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa.algos.returns import advantage_stats, gae_advantages


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


def _unroll(rng, T, E, D, p_end=0.15):
    """A time-major unroll obeying auto-reset: ``next_obs[t] == obs[t + 1]`` unless the
    episode ended at ``t`` (then ``next_obs[t]`` is the true last observation)."""
    from vasa.algos.ppo import Transition

    obs = rng.normal(size=(T + 1, E, D)).astype(np.float32)
    dones = (rng.random((T, E)) < p_end).astype(np.float32)
    terms = dones * (rng.random((T, E)) < 0.5)
    next_obs = np.where(dones[..., None] > 0, rng.normal(size=(T, E, D)).astype(np.float32), obs[1:])
    z = jnp.zeros((T, E))
    tr = Transition(obs=jnp.asarray(obs[:-1]), raw_action=z, log_prob=z, mean=z, log_std=z, reward=z,
                    done=jnp.asarray(dones), termination=jnp.asarray(terms), next_obs=jnp.asarray(next_obs),
                    final_return=z)
    return tr, obs, next_obs, dones, terms


@pytest.mark.parametrize("seed", range(4))
def test_successor_values_match_values_of_every_next_observation(seed):
    """Against the plain ``V(next_obs)`` of every step (2 T E rows, NumPy): equal wherever
    GAE uses the successor (not at terminations, where it is 0). Half the seeds put no
    truncation before the last step, so the ``lax.cond`` takes its cheap branch."""
    import jax

    from vasa.algos.ppo import successor_values

    rng = np.random.default_rng(seed)
    T, E, D = 9, 5, 3
    tr, obs, next_obs, dones, terms = _unroll(rng, T, E, D, p_end=0.15 if seed % 2 else 0.0)
    w = rng.normal(size=(D, 4)).astype(np.float32)
    np_value = lambda o: np.tanh(o @ w).sum(-1)  # noqa: E731
    rows = []

    def value_fn(o):  # counts the rows actually evaluated
        def host(x):
            rows.append(x.shape[0])
            return np_value(np.asarray(x)).astype(np.float32)

        return jax.pure_callback(host, jax.ShapeDtypeStruct(o.shape[:1], jnp.float32), o)

    values, next_values = jax.jit(lambda tr: successor_values(value_fn, tr))(tr)
    np.testing.assert_allclose(values, np_value(obs[:-1]), rtol=1e-5, atol=1e-5)
    want = np.where(terms > 0, 0.0, np_value(next_obs))
    np.testing.assert_allclose(next_values, want, rtol=1e-5, atol=1e-5)
    truncated_steps = int(((dones > 0) & (terms == 0))[:-1].any(axis=1).sum())
    assert sorted(rows) == sorted([T * E + E] + [E] * truncated_steps)
    # and GAE from them equals GAE from the plain successor values
    r = rng.normal(size=(T, E)).astype(np.float32)
    adv, _ = gae_advantages(jnp.asarray(r), values, next_values, tr.termination, tr.done, 0.97, 0.95)
    adv_ref, _ = numpy_gae(r, np_value(obs[:-1]), np_value(next_obs), terms, dones, 0.97, 0.95)
    np.testing.assert_allclose(adv, adv_ref, rtol=1e-4, atol=1e-4)


def test_successor_values_under_vmap_over_seeds():
    import jax

    from vasa.algos.ppo import successor_values

    rng = np.random.default_rng(7)
    T, E, D = 6, 4, 3
    unrolls = [_unroll(rng, T, E, D, p_end=0.3) for _ in range(3)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *[u[0] for u in unrolls])
    w = jnp.asarray(rng.normal(size=(D,)).astype(np.float32))
    value_fn = lambda o: jnp.sin(o @ w)  # noqa: E731
    _, next_values = jax.jit(jax.vmap(lambda tr: successor_values(value_fn, tr)))(stacked)
    for k, (_, _, next_obs, _, terms) in enumerate(unrolls):
        want = np.where(terms > 0, 0.0, np.sin(next_obs @ np.asarray(w)))
        np.testing.assert_allclose(next_values[k], want, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- advantage standardisation
def numpy_advantage_stats(adv, demo=None):
    """Per minibatch (row) mean and population std; with ``demo``, per row and start type."""
    M = adv.shape[0]
    adv = adv.reshape(M, -1)
    if demo is None:
        return adv.mean(1), adv.std(1)
    demo = demo.reshape(M, -1)
    mu, sd = np.zeros_like(adv), np.zeros_like(adv)
    for m in range(M):
        for g in (0, 1):
            sel = demo[m] == g
            if sel.any():
                mu[m, sel], sd[m, sel] = adv[m, sel].mean(), adv[m, sel].std()
    return mu, sd


@pytest.mark.parametrize("seed", range(3))
def test_advantage_stats_match_numpy_per_minibatch_and_per_start_type(seed):
    rng = np.random.default_rng(seed)
    M, T, G = 4, 6, 5  # a recurrent minibatch layout [M, T, G]; the flat one is [M, T * G]
    demo = (rng.random((M, T, G)) < 0.3).astype(np.float32)
    demo[1] = 0.0  # a minibatch without demonstration starts
    demo[2] = 1.0  # and one with nothing else
    # demonstration starts' advantages on a 5x larger scale, as on robo/stack
    adv = (rng.normal(size=(M, T, G)) * np.where(demo > 0, 5.0, 1.0) + 0.3).astype(np.float32)

    mu, sd = advantage_stats(jnp.asarray(adv))
    ref_mu, ref_sd = numpy_advantage_stats(adv)
    assert mu.shape == sd.shape == (M,)
    np.testing.assert_allclose(mu, ref_mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sd, ref_sd, rtol=1e-5)

    mu, sd = advantage_stats(jnp.asarray(adv), jnp.asarray(demo))
    ref_mu, ref_sd = numpy_advantage_stats(adv, demo)
    assert mu.shape == sd.shape == adv.shape
    np.testing.assert_allclose(np.asarray(mu).reshape(M, -1), ref_mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(sd).reshape(M, -1), ref_sd, rtol=1e-5)
    z = (adv - np.asarray(mu)) / np.asarray(sd)
    for m in range(M):  # each start type standardised on its own within its minibatch
        for g in (0, 1):
            sel = demo[m] == g
            if sel.any():
                assert abs(z[m][sel].mean()) < 1e-4 and abs(z[m][sel].std() - 1) < 1e-4
    # shared statistics let the larger scale set the std: the task starts' signal shrinks
    shared = np.asarray(advantage_stats(jnp.asarray(adv))[1])
    for m in (0, 3):
        assert shared[m] > 1.5 * ref_sd[m][demo[m].reshape(-1) == 0][0]


def test_advantage_stats_reduce_across_devices_like_one_batch():
    """``mean`` (pmean on a mesh) combines per-device sums: two halves reduced by a mean give
    the statistics of the whole minibatch, per start type."""
    rng = np.random.default_rng(7)
    M = 2
    adv = rng.normal(size=(2, M, 12)).astype(np.float32) * 3
    demo = (rng.random((2, M, 12)) < 0.4).astype(np.float32)
    whole = advantage_stats(jnp.asarray(np.concatenate(adv, 1)), jnp.asarray(np.concatenate(demo, 1)))

    out = jax.vmap(lambda a, d: advantage_stats(a, d, mean=lambda x: jax.lax.pmean(x, "i")),
                   axis_name="i")(jnp.asarray(adv), jnp.asarray(demo))
    for k in range(2):
        np.testing.assert_allclose(np.asarray(out[k]), np.split(np.asarray(whole[k]), 2, axis=1), rtol=1e-5, atol=1e-6)
