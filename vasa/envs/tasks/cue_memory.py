"""Cue memory: a task only an agent with memory can solve, in pure JAX (for recurrent PPO).

At the first step of an episode the observation shows a cue ``c`` drawn uniformly from
``{-1, +1}``; from the second step on the observation is all zeros. Every step rewards
acting out the cue: ``r_t = -(a_t - c)^2`` with the action clipped to ``[-1, 1]``.

* observation ``[2] float32``: ``(c, 1)`` at the first step, ``(0, 0)`` afterwards (the
  second entry says "the cue is showing");
* action ``[1]`` in ``[-1, 1]``; episodes never terminate (:func:`vasa.envs.make` truncates
  them after 10 steps).

Returns over a 10-step episode: 0 for an agent that remembers the cue; a memoryless
(feed-forward) policy sees the same zero observation after the first step whatever the cue,
so its best action there is ``a = 0`` and its best return is ``-9`` (``E[(0 - c)^2] = 1``
for each of the nine blind steps); a policy that always plays 0 scores ``-10``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vasa.envs.core import ArraySpec, EnvState


class CueMemory:
    """``physics``: ``[2] float32`` (cue, steps taken); ``obs``: ``[2]``; ``action``: ``[1]``."""

    default_episode_length = 10
    default_action_repeat = 1

    @property
    def observation_spec(self) -> ArraySpec:
        return ArraySpec((2,), jnp.float32, low=-np.ones(2, np.float32), high=np.ones(2, np.float32))

    @property
    def action_spec(self) -> ArraySpec:
        return ArraySpec((1,), jnp.float32, low=-np.ones(1, np.float32), high=np.ones(1, np.float32))

    @staticmethod
    def _obs(physics):
        showing = (physics[1] == 0).astype(jnp.float32)
        return jnp.stack([physics[0] * showing, showing])

    def reset(self, key: jax.Array) -> EnvState:
        cue = jnp.where(jax.random.bernoulli(key), 1.0, -1.0).astype(jnp.float32)
        physics = jnp.stack([cue, jnp.zeros((), jnp.float32)])
        zero = jnp.zeros((), jnp.float32)
        return EnvState(physics=physics, obs=self._obs(physics), reward=zero, done=zero, truncation=zero)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        cue, t = state.physics[0], state.physics[1]
        reward = -(jnp.clip(action[0], -1.0, 1.0) - cue) ** 2
        physics = jnp.stack([cue, t + 1])
        return state.replace(physics=physics, obs=self._obs(physics), reward=reward, done=jnp.zeros_like(reward))


def cue_memory() -> CueMemory:
    """Build the cue-memory task."""
    return CueMemory()
