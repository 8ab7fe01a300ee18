"""Return and advantage estimators shared by the learners."""

from __future__ import annotations

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
