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

SAC and DDPG (``OffPolicyConfig.demo_bc_*``) add the same term to the actor's loss, weighted per
iteration of learning, optionally with Nair et al.'s Q-filter ("Overcoming exploration in
reinforcement learning with demonstrations", ICRA 2018): a pair is cloned only where the critic
prefers the demonstrated action to the policy's (``demo_bc_q_filter``), so the demonstrations
stop pulling once the policy does better. With ``demo_bc_normalize`` the actor's RL term is first
divided by the batch's mean ``|Q|`` (:func:`q_scale`, TD3+BC's normalisation), so one coefficient
serves tasks whose rewards differ in scale.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vasa.dist.mesh import DATA_AXIS, pmean
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


def bc_term(act, obs: jax.Array, action: jax.Array, key: jax.Array, batch: int, q=None) -> tuple[jax.Array, jax.Array]:
    """The behaviour-cloning error on ``batch`` pairs drawn uniformly (with replacement, by ``key``):
    ``(error [] float32, kept [] float32)``, ``error`` the mean over the drawn pairs of
    ``keep_i * || act(obs_i) - action_i ||^2`` (summed over the action axis).

    ``act``: ``[B, O] -> [B, A]`` deterministic actions (the caller normalises the input);
    ``obs [N, O]``, ``action [N, A]``: :func:`demo_pairs`. Without ``q`` every pair is kept
    (``kept = 1``). With ``q`` (``(obs [B, O], actions [B, A]) -> [B]``, the critic's value),
    Nair et al. 2018's Q-filter: a pair is kept only where the critic values the demonstrated
    action above the policy's, ``q(o_i, action_i) > q(o_i, act(o_i))`` (no gradient through the
    test); ``kept`` is the kept fraction."""
    idx = jax.random.randint(key, (batch,), 0, obs.shape[0])
    o, a = obs[idx], action[idx]
    pi = act(o)
    error = jnp.sum((pi - a) ** 2, axis=-1)
    if q is None:
        return error.mean(), jnp.ones((), jnp.float32)
    keep = jax.lax.stop_gradient((q(o, a) > q(o, pi)).astype(jnp.float32))
    return (keep * error).mean(), keep.mean()


def q_scale(q: jax.Array, floor: float = 1e-6) -> jax.Array:
    """TD3+BC's normaliser (Fujimoto & Gu, "A minimalist approach to offline reinforcement learning",
    NeurIPS 2021): ``1 / max(mean |q|, floor)`` as ``[] float32``, without gradient, ``q [B]`` the critic's
    value of the actor's actions. Inside ``shard_map`` over ``"data"`` the mean runs over every device's
    equal batch, so the factor does not depend on the number of devices. The actor's RL term times this
    factor has unit scale whatever the reward's; ``floor`` only guards a critic that outputs zeros."""
    mean_abs = pmean(jnp.mean(jnp.abs(jax.lax.stop_gradient(q).astype(jnp.float32))), DATA_AXIS)
    return 1.0 / jnp.maximum(mean_abs, floor)


def load_pairs(config, low, high) -> tuple[jax.Array, jax.Array]:
    """:func:`demo_pairs` of ``config.demo_path`` (checked against ``config.env``), actions clipped to
    ``[low, high]``, as device arrays (``config.demo_until_success`` decides where episodes end)."""
    from vasa.envs.demos import Demos

    demos = Demos.load(config.demo_path, env_id=config.env)
    return tuple(map(jnp.asarray, demo_pairs(demos, config.demo_until_success, np.asarray(low), np.asarray(high))))


def check_bc_fields(config) -> None:
    """Validate a PPO or off-policy config's ``demo_bc_*`` fields (messages name the field, the value
    and what is allowed): the term needs ``demo_path`` and state observations (and PPO's
    ``core='none'``: the pairs are single steps); its other fields need the term."""
    from vasa.run import require

    core = getattr(config, "core", None)  # PPO's configs have one
    if config.demo_bc_coef > 0:
        require(config, config.demo_path is not None, "demo_bc_coef", "it clones demonstrations: set demo_path")
        require(config, not config.pixels and core in (None, "none"), "demo_bc_coef",
                "demonstrations record state observations" + (": set pixels=False" if core is None else
                                                               " and single steps: set pixels=False and core='none'"))
    else:
        require(config, config.demo_bc_decay == 1.0, "demo_bc_decay",
                "it decays the behaviour-cloning term: set demo_bc_coef > 0")
        require(config, config.demo_bc_batch == 256, "demo_bc_batch",
                "it sizes the behaviour-cloning term: set demo_bc_coef > 0")
        require(config, not getattr(config, "demo_bc_q_filter", False), "demo_bc_q_filter",
                "it filters the behaviour-cloning term: set demo_bc_coef > 0")
        require(config, not getattr(config, "demo_bc_normalize", False), "demo_bc_normalize",
                "it scales the RL term against the behaviour-cloning term: set demo_bc_coef > 0")


__all__ = ["bc_term", "bc_weight", "check_bc_fields", "demo_pairs", "load_pairs", "q_scale"]
