"""Episode returns of a policy: the deterministic evaluation loop every algorithm shares."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from vasa.envs.wrappers import batch_step


def episode_returns(env, policy: Callable[..., Any], key: jax.Array, num_envs: int,
                    steps: int | None = None, carry: Any = None) -> jax.Array:
    """Undiscounted return of the first episode of each of ``num_envs`` environments.

    Args:
      env: a (batched with ``vmap`` here) vasa environment; auto-reset is harmless, since
        rewards after an environment's first ``done`` are not counted.
      policy: ``policy(obs) -> actions [num_envs, A]`` for batched observations (pure; close
        over parameters); with ``carry``, a policy with memory:
        ``policy(obs, carry) -> (actions, carry)``.
      key: PRNG key for the resets (``jax.random.split(key, num_envs)``).
      steps: agent steps to run (default: one full episode, ``ceil(episode_length /
        action_repeat)`` from the :class:`~vasa.envs.wrappers.EpisodeLimit` inside ``env``).
      carry: the memory's initial state (e.g. zero LSTM states), threaded through the
        episode; it is not reset, since steps after an environment's first ``done`` do not
        count.

    Returns:
      ``float32 [num_envs]``. Pure and jit-able (a ``lax.scan``), vmappable over keys.
    """
    return episode_metrics(env, policy, key, num_envs, steps, carry, metrics=())["return"]


def episode_metrics(env, policy: Callable[..., Any], key: jax.Array, num_envs: int, steps: int | None = None,
                    carry: Any = None, metrics: tuple[str, ...] = ("success",)) -> dict[str, jax.Array]:
    """:func:`episode_returns` plus, for each name in ``metrics``, the largest value of
    ``state.metrics[name]`` during the first episode (e.g. ``"success"``: 1 if the episode
    ever succeeded): ``{"return": float32 [num_envs], name: float32 [num_envs], ...}``."""
    if steps is None:
        steps = -(-int(env.episode_length) // int(getattr(env, "steps_per_action", 1)))
    state = jax.vmap(env.reset)(jax.random.split(key, num_envs))

    def body(loop, _):
        s, total, alive, memory, best = loop
        if carry is None:
            action = policy(s.obs)
        else:
            action, memory = policy(s.obs, memory)
        s = batch_step(env, s, action)
        best = {k: jnp.maximum(v, jnp.where(alive > 0, s.metrics[k].astype(jnp.float32), -jnp.inf))
                for k, v in best.items()}
        return (s, total + alive * s.reward, alive * (1.0 - s.done), memory, best), None

    ones = jnp.ones(num_envs)
    best0 = {k: jnp.full(num_envs, -jnp.inf, jnp.float32) for k in metrics}
    (_, total, _, _, best), _ = jax.lax.scan(body, (state, 0.0 * ones, ones, carry, best0), None, length=steps)
    return {"return": total, **best}
