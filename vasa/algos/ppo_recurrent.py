"""The two pieces recurrent PPO changes: values over an unroll with the right hidden state,
and minibatches of whole environment sequences.

A recurrent network's output at step ``t`` depends on everything its episode showed before,
so (i) the values of an unroll are computed by running the value network's core through it
from the state it had at the unroll's start, resetting it where episodes start, and (ii) the
update replays whole sequences from their stored initial states (truncated back-propagation
through time over the unroll), so a minibatch is a set of environments, not of steps.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def recurrent_values(value_step: Callable, carry: Any, obs: Any, next_obs: Any, starts: jax.Array,
                     done: jax.Array, termination: jax.Array) -> tuple[jax.Array, jax.Array, Any]:
    """``V(s_t)``, ``V(s'_t)`` and the core's final state for one unroll of a recurrent value
    function.

    Step ``t``'s value reads the core's state after steps ``0..t-1`` of the same episode
    (zeroed where ``starts``). The successor value of a step that ends the unroll or is
    truncated by a time limit reads its true next observation (``next_obs``, the episode's
    last observation for a truncated step) with the state carried on, not reset; computed
    only at such steps (a ``lax.cond`` per step). Otherwise the successor value is step
    ``t + 1``'s value; a terminated step's is 0.

    Args:
      value_step: ``(carry, obs [E, ...], starts [E] bool) -> (carry, values [E])``, one
        step of the value network (observation normalisation included).
      carry: the core's state before step 0 (pytree of ``[E, n]``).
      obs, next_obs: ``[T, E, ...]`` (or pytrees of them).
      starts: ``[T, E] bool``, step ``t`` begins an episode.
      done, termination: ``[T, E] float32``.

    Returns:
      ``(values [T, E], next_values [T, E], carry)``: ``carry`` is the state after step
      ``T - 1`` (before any reset; the next unroll's first ``starts`` applies it).
    """
    T, E = done.shape
    truncated = (done > 0) & (termination == 0)
    last = jnp.arange(T) == T - 1
    need = truncated.any(axis=1) | last
    no_start = jnp.zeros((E,), bool)

    def body(c, xs):
        o, s, o_next, needed = xs
        c, v = value_step(c, o, s)
        succ = jax.lax.cond(needed, lambda: value_step(c, o_next, no_start)[1], lambda: jnp.zeros_like(v))
        return c, (v, succ)

    carry, (values, succ) = jax.lax.scan(body, carry, (obs, starts, next_obs, need))
    following = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])])
    next_values = jnp.where(truncated | last[:, None], succ, following)
    return values, jnp.where(termination > 0, 0.0, next_values), carry


def sequence_minibatches(data: Any, carry: Any, key: jax.Array, num_minibatches: int,
                         first_group: jax.Array | int = 0) -> tuple[Any, Any]:
    """Split ``L`` environments' sequences into ``num_minibatches`` minibatches of whole
    sequences.

    Environments go in groups of ``M = num_minibatches`` consecutive ids; each group gives
    one environment to each minibatch, in an order drawn from ``key`` folded with the
    group's *global* index (``first_group`` + local index), so minibatches do not depend on
    how many devices share the environments.

    Args:
      data: pytree of time-major ``[T, L, ...]`` arrays (``L`` a multiple of ``M``).
      carry: pytree of ``[L, ...]`` per-environment arrays (the cores' initial states).

    Returns:
      ``(data [M, T, L / M, ...], carry [M, L / M, ...])``: minibatch ``m``'s column ``g`` is
      one environment's whole unroll, in time order, with that environment's initial state.
    """
    L = jax.tree.leaves(carry)[0].shape[0]
    M = num_minibatches
    G = L // M
    perms = jax.vmap(lambda g: jax.random.permutation(jax.random.fold_in(key, g), M))(first_group + jnp.arange(G))
    idx = (jnp.arange(G)[:, None] * M + perms).T  # [M, G] local environment ids
    data = jax.tree.map(lambda x: jnp.moveaxis(x[:, idx], 0, 1), data)
    return data, jax.tree.map(lambda c: c[idx], carry)


__all__ = ["recurrent_values", "sequence_minibatches"]
