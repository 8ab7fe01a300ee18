"""Return and advantage estimators shared by the learners."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def gae_advantages(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminations: jax.Array,
    dones: jax.Array,
    gamma: float,
    lam: float,
) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation (Schulman et al. 2016) over a time-major unroll.

    Each transition carries the value of its *own* successor state, so truncation is handled
    exactly: at a time-limit the successor is the true last observation (before auto-reset)
    and is bootstrapped; at a termination it is not.

      delta_t = r_t + gamma * (1 - term_t) * V(s'_t) - V(s_t)
      A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}

    Args:
      rewards, values, next_values, terminations, dones: ``[T, ...] float32``; ``dones`` is
        1 where the episode ended for any reason (termination or truncation), which cuts
        the recursion; ``terminations`` is 1 only for terminal successor states.
      gamma, lam: discount and GAE lambda (scalars or arrays broadcastable to ``[...]``).

    Returns:
      ``(advantages, returns)``, both ``[T, ...] float32``; ``returns = advantages + values``.
    """
    deltas = rewards + gamma * (1.0 - terminations) * next_values - values

    def backward(carry, xs):
        delta, done = xs
        adv = delta + gamma * lam * (1.0 - done) * carry
        return adv, adv

    _, advantages = jax.lax.scan(backward, jnp.zeros_like(deltas[0]), (deltas, dones), reverse=True)
    return advantages, advantages + values


def advantage_stats(advantage: jax.Array, demo: jax.Array | None = None,
                    mean: Callable[[jax.Array], jax.Array] = lambda x: x) -> tuple[jax.Array, jax.Array]:
    """Mean and std that standardise each minibatch's advantages.

    Args:
      advantage: ``[M, ...] float32``, one row per minibatch.
      demo: optional ``[M, ...]`` float 0/1 like ``advantage``: 1 where the sample's episode
        began from a demonstration state. Given, each minibatch's two start types get their
        own statistics.
      mean: the cross-device mean of a per-device statistic (``pmean`` over the data axis
        inside ``shard_map``; the identity on one device).

    Returns:
      ``(mean, std)``: ``[M]`` each, or, with ``demo``, per sample (shaped like
      ``advantage``), each sample's group's statistics (a group empty in a minibatch gets 0).
    """
    M = advantage.shape[0]
    adv = advantage.reshape(M, -1)
    if demo is None:
        mu = mean(adv.mean(axis=1))
        return mu, jnp.sqrt(mean(jnp.mean((adv - mu[:, None]) ** 2, axis=1)))
    demo = demo.reshape(M, -1)
    groups = jnp.stack([1.0 - demo, demo])  # [2, M, n]: task starts, demonstration starts

    def group_mean(x):  # [2, M]: the mean of x [M, n] over each group
        sums = mean(jnp.stack([(x * groups).sum(-1), groups.sum(-1)]))
        return sums[0] / jnp.maximum(sums[1], 1e-8)

    def per_sample(stat):  # [2, M] -> [M, n]
        return jnp.where(demo > 0, stat[1][:, None], stat[0][:, None])

    mu = per_sample(group_mean(adv))
    std = per_sample(jnp.sqrt(group_mean((adv - mu) ** 2)))
    return mu.reshape(advantage.shape), std.reshape(advantage.shape)
