"""``vasa.envs.batch_step``: the same states as ``jax.vmap(env.step)``, leaf for leaf, with the
next episodes' initial states computed only in steps where an environment of the batch ended."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vasa.envs as E
from vasa.envs.core import EnvState
from vasa.envs.wrappers import AutoReset, EpisodeLimit

RESETS = []


class Drift:
    """A toy task: the state drifts by the action plus noise drawn at reset; it terminates when
    it leaves [-1, 1]; each executed reset is counted on the host (``RESETS``)."""

    observation_spec = None
    action_spec = None

    def reset(self, key):
        x = jax.random.uniform(key, (), minval=-0.5, maxval=0.5)
        jax.debug.callback(lambda x: RESETS.append(np.size(x)), x)
        return EnvState(physics=x, obs=jnp.stack([x, 0.0]), reward=jnp.zeros(()), done=jnp.zeros(()),
                        truncation=jnp.zeros(()), info={}, metrics={})

    def step(self, state, action):
        x = state.physics + action
        done = (jnp.abs(x) > 1.0).astype(jnp.float32)
        return state.replace(physics=x, obs=jnp.stack([x, action]), reward=-x ** 2, done=done)


def _same(a, b):
    """Integer leaves exactly; float leaves to one float32 rounding (XLA may fuse ``a * b + c``
    into one multiply-add in one program and not in the other)."""
    a, b = np.asarray(a), np.asarray(b)
    if np.issubdtype(a.dtype, np.floating):
        np.testing.assert_allclose(a, b, rtol=2e-7, atol=1e-7)
    else:
        np.testing.assert_array_equal(a, b)


def _rollout(step, state, actions):
    out = []
    for a in actions:
        state = step(state, a)
        out.append(state)
    return out


@pytest.mark.parametrize("mode", ["fresh", "cached"])
def test_batch_step_equals_vmap_and_skips_unused_resets(mode):
    env = AutoReset(EpisodeLimit(Drift(), episode_length=6), mode=mode)
    n = 5
    state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(1), n))
    state = state.replace(info={**state.info, "steps": jnp.arange(n, dtype=jnp.int32)})  # staggered time limits
    rng = np.random.default_rng(0)
    # a quiet stretch (small actions, no termination) where only time limits end episodes
    actions = [jnp.asarray(rng.uniform(-0.05, 0.05, n), jnp.float32) for _ in range(14)]
    actions[9] = actions[9].at[2].set(3.0)  # one termination mid-episode
    RESETS.clear()
    expected = _rollout(jax.jit(jax.vmap(env.step)), state, actions)
    jax.effects_barrier()
    vmap_resets = len(RESETS)
    RESETS.clear()
    got = _rollout(jax.jit(lambda s, a: E.batch_step(env, s, a)), state, actions)
    jax.effects_barrier()
    for e, g in zip(expected, got):
        jax.tree.map(_same, e, g)  # every leaf, every step
    ended = [bool(np.any(np.asarray(e.done) > 0)) for e in expected]
    assert 0 < sum(ended) < len(ended)
    if mode == "fresh":  # one reset per environment per step under vmap; here only in steps where one ended
        assert vmap_resets == n * len(actions)
        assert len(RESETS) == n * sum(ended)
    else:
        assert vmap_resets == len(RESETS) == 0


@pytest.mark.slow  # ~90 s on 2 cores (two cartpole pixel programs); the logic is covered by the toy task above
def test_batch_step_pixels_match_vmap():
    env = E.make("dmc/cartpole_balance", pixels=True, image_size=16, episode_length=8, action_repeat=4)
    state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(0), 3))
    actions = [jnp.full((3, 1), 0.3 * (-1) ** i, jnp.float32) for i in range(3)]
    expected = _rollout(jax.jit(jax.vmap(env.step)), state, actions)
    got = _rollout(jax.jit(lambda s, a: E.batch_step(env, s, a)), state, actions)
    assert [float(e.done[0]) for e in expected] == [0.0, 1.0, 0.0]
    for e, g in zip(expected, got):
        jax.tree.map(_same, e, g)
    np.testing.assert_array_equal(got[-1].obs["pixels"], expected[-1].obs["pixels"])


def test_batch_step_of_a_wrapped_auto_reset_uses_the_outer_step():
    class Outer(E.Wrapper):
        def step(self, state, action):
            return self.env.step(state, action).replace(reward=jnp.full((), 7.0))

    env = Outer(AutoReset(EpisodeLimit(Drift(), episode_length=4)))
    state = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(2), 2))
    out = E.batch_step(env, state, jnp.zeros(2))
    np.testing.assert_array_equal(out.reward, [7.0, 7.0])
