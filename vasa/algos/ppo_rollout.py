"""PPO's data collection: the rollout ``scan`` and the values of what it collected.

:func:`make_rollout` steps the environments with the reference policy (carrying a recurrent
policy's memory and zeroing it where episodes start); :func:`successor_values` computes a
feed-forward value function's ``V(s_t)`` and ``V(s'_t)`` over the unroll in one batch
(:func:`vasa.algos.ppo_recurrent.recurrent_values` is its recurrent counterpart).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from flax import struct

from vasa.algos.ppo_config import PPOConfig
from vasa.algos.ppo_networks import Networks
from vasa.dist.mesh import global_row_ids
from vasa.envs import batch_step


@struct.dataclass
class Transition:
    """One rollout step of every environment (time-major ``[T, E, ...]`` after the scan):
    ``obs`` and ``next_obs`` (the episode's true last observation where ``done``), the raw
    Gaussian sample and its log-probability, mean and log-std under the reference policy,
    the (scaled) ``reward``, ``done``/``termination`` flags, the return of an episode that
    ended here, ``start`` (``[E] bool``: this step began an episode) and, with
    ``demo_separate_advantages``, ``demo`` (``[E] float32``: 1 where this step's episode began
    from a demonstration state, the curriculum's ``info["demo"]["used"]``; else ``None``)."""

    obs: jax.Array
    raw_action: jax.Array
    log_prob: jax.Array
    mean: jax.Array
    log_std: jax.Array
    reward: jax.Array
    done: jax.Array
    termination: jax.Array
    next_obs: jax.Array
    final_return: jax.Array
    start: jax.Array | None = None
    demo: jax.Array | None = None


def successor_values(value_fn: Callable, tr: Transition) -> tuple[jax.Array, jax.Array]:
    """``V(s_t)`` and ``V(s'_t)`` of an unroll with ``T * E + E`` value rows, not ``2 T E``.

    The successor of step ``t`` is step ``t + 1``'s observation while the episode goes on,
    so its value is re-used; the unroll's last step is bootstrapped from its true next
    observation; a truncated step (time limit, ``done`` without ``termination``) needs the
    value of the episode's last observation (``tr.next_obs``, kept before auto-reset), which
    is computed only for the steps where some environment was truncated (a ``lax.cond`` per
    step; under ``vmap`` over seeds both branches run, which costs what ``2 T E`` rows do).
    A terminated step's successor value is 0; GAE does not use it.

    Args:
      value_fn: ``obs [N, D] -> values [N]`` (observation normalisation included; ``obs``
        may be a pytree of ``[N, ...]`` leaves, e.g. pixels and proprioception).
      tr: the unroll, time-major: ``obs``/``next_obs`` ``[T, E, D]`` (or pytrees of
        ``[T, E, ...]``), ``done`` and
        ``termination`` ``[T, E] float32``.

    Returns:
      ``(values, next_values)``, both ``[T, E] float32``.
    """
    T, E = tr.done.shape
    flat = jax.tree.map(lambda o, last: jnp.concatenate([o.reshape((T * E,) + o.shape[2:]), last]),
                        tr.obs, jax.tree.map(lambda x: x[-1], tr.next_obs))
    both = value_fn(flat)
    values, boot = both[: T * E].reshape(T, E), both[T * E:]
    truncated = (tr.done > 0) & (tr.termination == 0)

    def truncated_step(args):
        any_truncated, next_obs = args
        return jax.lax.cond(any_truncated, value_fn, lambda o: jnp.zeros(E, values.dtype), next_obs)

    at_limit = jax.lax.map(truncated_step, (truncated[:-1].any(axis=1), jax.tree.map(lambda x: x[:-1], tr.next_obs)))
    next_values = jnp.where(truncated[:-1], at_limit, values[1:])
    next_values = jnp.concatenate([next_values, boot[None]])
    return values, jnp.where(tr.termination > 0, 0.0, next_values)


def make_rollout(config: PPOConfig, env, nets: Networks, local_envs: int) -> Callable:
    """The data-collection half of an iteration, ``rollout(state, key) -> (env_state,
    policy_carry, starts, transitions)``: ``unroll_length`` steps of this device's
    ``local_envs`` environments by the reference policy, as a ``lax.scan`` (inside the
    ``"data"`` shard_map: sampling keys are folded from global environment ids).

    With a recurrent policy the core's state is carried through the scan and zeroed exactly
    at the steps that begin an episode (``transitions.start``, the previous step's ``done``);
    ``policy_carry`` and ``starts [local_envs] bool`` are the state and the flags after the
    last step (``None`` and zeros for feed-forward policies). ``transitions`` leaves are
    time-major ``[T, local_envs, ...]``.
    """
    T, dist, normalize = config.unroll_length, nets.dist, nets.inputs

    def rollout(state, key):
        env_ids = global_row_ids(local_envs)

        def env_step(carry, t):
            env_state, h, start = carry
            obs = env_state.obs
            inputs = normalize(state.normalizer, obs)
            if nets.recurrent:
                h, (mean, log_std) = nets.policy_seq(state.ref_policy, h, jax.tree.map(lambda x: x[None], inputs),
                                                     start[None])
                mean, log_std = mean[0], log_std[0]
            else:
                mean, log_std = nets.policy.apply(state.ref_policy, inputs)
            keys = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.fold_in(key, t), env_ids)
            u = jax.vmap(dist.sample)(keys, mean, log_std)
            nxt = batch_step(env, env_state, dist.to_action(u))
            tr = Transition(
                obs=obs, raw_action=u, log_prob=dist.log_prob(u, mean, log_std), mean=mean, log_std=log_std,
                reward=nxt.reward * config.reward_scaling, done=nxt.done, termination=nxt.termination,
                next_obs=nxt.info["final_obs"], final_return=nxt.info["final_return"], start=start,
                demo=env_state.info["demo"]["used"] if config.demo_separate_advantages else None)
            return (nxt, h, nxt.done > 0), tr

        if nets.recurrent:
            h, start = state.core["policy"], state.core["start"]
        else:
            h, start = None, jnp.zeros((local_envs,), bool)
        (env_state, h, start), tr = jax.lax.scan(env_step, (state.env_state, h, start), jnp.arange(T))
        return env_state, h, start, tr

    return rollout


__all__ = ["Transition", "make_rollout", "successor_values"]
