"""A behaviour-cloning term on recorded demonstrations, added to an RL loss (DAPG).

Rajeswaran et al., "Learning complex dexterous manipulation with deep reinforcement learning
and demonstrations" (RSS 2018), augment the policy gradient with the demonstrations' likelihood,
weighted ``lambda0 * lambda1^k`` at iteration ``k`` so that it guides early and fades. vasa's
form (PPO's ``demo_bc_coef``, ``demo_bc_decay``, ``demo_bc_batch``) is the squared error between
the policy's *deterministic* action (its squashed mean) and the demonstrated action, averaged over
``demo_bc_batch`` (observation, action) pairs drawn uniformly per minibatch:

    loss += demo_bc_coef * demo_bc_decay ** k * mean_i || to_action(mean(o_i)) - a_i ||^2

A squared error rather than the log-likelihood: demonstrated actions sit at the bounds (a
scripted controller saturates its commands at +-1), where a tanh-Gaussian's density needs an
infinite pre-squash mean, and the error leaves the policy's spread to the RL loss (exploration
stays the entropy bonus's business).

The pairs are the demonstration proper: each episode's states up to the one whose action first
led to success (:meth:`vasa.envs.demos.Demos.steps_to_success`), or the whole recording with
``until_success=False``, as the curriculum samples its starts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vasa.envs.demos import Demos


def demo_pairs(demos: Demos, until_success: bool = True, low=None, high=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``(obs [N, O] float32, action [N, A] float32)`` pairs of ``demos``, episode by episode
    and step by step (``N``: the sum of each episode's length up to its first success, or of all
    ``E * T`` steps with ``until_success=False``); actions clipped to ``[low, high]`` when given."""
    keep = np.arange(demos.length)[None, :] < demos.lengths(until_success)[:, None]  # [E, T]
    obs = demos.obs[keep].astype(np.float32)
    action = demos.action[keep].astype(np.float32)
    if low is not None or high is not None:
        action = np.clip(action, low, high).astype(np.float32)
    return obs, action


def bc_weight(coef: float, decay: float, iteration: jax.Array) -> jax.Array:
    """``coef * decay ** iteration`` as ``[] float32`` (``iteration``: completed iterations)."""
    return jnp.asarray(coef, jnp.float32) * jnp.asarray(decay, jnp.float32) ** jnp.asarray(iteration, jnp.float32)


def bc_error(act, obs: jax.Array, action: jax.Array, key: jax.Array, batch: int) -> jax.Array:
    """Mean over ``batch`` pairs drawn uniformly (with replacement, by ``key``) of the squared
    error ``|| act(obs_i) - action_i ||^2`` summed over the action axis: ``[] float32``.

    ``act``: ``[B, O] -> [B, A]`` deterministic actions (the caller normalises the input);
    ``obs [N, O]``, ``action [N, A]``: :func:`demo_pairs`."""
    idx = jax.random.randint(key, (batch,), 0, obs.shape[0])
    return jnp.sum((act(obs[idx]) - action[idx]) ** 2, axis=-1).mean()


__all__ = ["bc_error", "bc_weight", "demo_pairs"]
