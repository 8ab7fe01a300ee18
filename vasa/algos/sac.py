"""Soft actor-critic, from states or from pixels (DrQ), with environments, renderer, replay
buffer and learner all on the accelerator.

* Twin Q critics with an EMA target (``tau``), the minimum of the two in the target; learned
  temperature ``alpha`` with target entropy ``-|A|``; tanh-squashed Gaussian actor whose
  log-std is bounded to ``[log_std_min, log_std_max]`` (DrQ's parameterisation).
* Pixel mode (DrQ, Kostrikov et al. 2020): one convolutional encoder (``encoder="drq"``:
  4 x 32 filters 3x3, the first with stride 2) is shared by actor and critic and trained only
  by the critic loss; the actor sees its stop-gradient output through its own
  Linear -> LayerNorm -> tanh projection to ``feature_dim``, as in DrQ's code. The target
  critic, encoder included, is an EMA of the critic. Observation and next observation are
  augmented with DrQ's random shift (replicate-pad 4, random crop back, independently per
  sample; :func:`vasa.distill.augment.random_shift`), or with ``augment="conv"`` by NetRand's
  random convolution (one kernel per transition), or not at all (``augment="none"``).
* ``actor_update_freq``/``target_update_freq``: the actor and temperature, and the targets,
  are updated on every k-th gradient update (DrQ: 2 and 2).
* Demonstrations (state observations): ``demo_bc_coef`` adds a behaviour-cloning term on their
  (observation, action) pairs to the actor's loss, optionally Q-filtered (``demo_bc_q_filter``;
  :class:`vasa.algos.offpolicy.DemoCloning`, :mod:`vasa.algos.demo_bc`), and with
  ``demo_bc_normalize`` the RL term divided by the batch's mean ``|Q|`` first (TD3+BC's form).
* Many parallel environments with an explicit ``replay_ratio`` (gradient updates per
  collected transition); see :mod:`vasa.algos.offpolicy` for collection, sharded replay and
  the outer loop. Defaults follow DrQ: lr 1e-3, batch 512, tau 0.01, initial temperature
  0.1, frame stack 3, action repeat per task (PAD's), 1024-unit MLPs, 50-d features.

Usage::

    from vasa.algos import sac
    policy, state, rows = sac.train(sac.SACConfig(env="dmc/cartpole_swingup", pixels=True))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import jax
import jax.numpy as jnp
import optax

from vasa.algos import offpolicy
from vasa.algos.offpolicy import OffPolicyConfig, PixelTrunk, apply_gradients, example_input, network_input, soft_update
from vasa.dist.mesh import DATA_AXIS, pmean
from vasa.nn import ActionDistribution, GaussianPolicyHead
from vasa.run import RunConfig, require
from vasa.run.fields import PosFloat, PosInt, Range

NAME = "sac"


@dataclass(frozen=True)
class SACConfig(OffPolicyConfig):
    """SAC hyperparameters (DrQ's defaults) on top of the shared off-policy options."""

    tau: Annotated[float, Range(gt=0, le=1)] = 0.01
    """EMA rate of the target critic (and target encoder)"""
    init_temperature: PosFloat = 0.1
    """initial entropy temperature alpha"""
    target_entropy: float | None = None
    """target policy entropy (None: -|A|)"""
    actor_update_freq: PosInt = 2
    """update actor and temperature every this many gradient updates"""
    target_update_freq: PosInt = 2
    """update the targets every this many gradient updates"""
    log_std_min: Annotated[float, Range(ge=-20, le=5)] = -10.0
    """lower bound of the actor's log-std"""
    log_std_max: Annotated[float, Range(ge=-20, le=5)] = 2.0
    """upper bound of the actor's log-std"""

    def validate(self, num_devices: int = 1) -> None:
        super().validate(num_devices)

        def need(ok, field, allowed):
            require(self, ok, field, allowed)

        need(self.log_std_min < self.log_std_max, "log_std_min", f"it must be below log_std_max={self.log_std_max}")
        need(self.updates_per_iteration >= self.actor_update_freq, "replay_ratio",
             f"it gives {self.updates_per_iteration} updates per iteration, fewer than actor_update_freq="
             f"{self.actor_update_freq}; raise replay_ratio, num_envs or steps_per_iteration")


class SACLearner:
    """SAC as the pure functions of :class:`vasa.algos.offpolicy.Learner`.

    Learner state (a dict): ``critic`` (trunk + ``"q"``), ``target`` (same structure),
    ``actor`` (``"proj"`` + ``"head"``), ``log_alpha`` ``[] float32``, ``opt`` (Adam states).
    """

    def __init__(self, config: SACConfig, env):
        from vasa.nn.encoders import DoubleQ

        self.config = config
        spec = env.action_spec
        self.action_size = spec.shape[0]
        self.dist = ActionDistribution(jnp.asarray(spec.low, jnp.float32), jnp.asarray(spec.high, jnp.float32), "tanh")
        self.trunk = PixelTrunk(config, example_input(config, env))
        self.q = DoubleQ(tuple(config.hidden_layers), "relu")
        self.head = GaussianPolicyHead(tuple(config.hidden_layers), self.action_size, activation="relu",
                                       state_dependent_std=True, init_log_std=0.0,
                                       min_log_std=config.log_std_min, max_log_std=config.log_std_max)
        self.tx = optax.adam(config.learning_rate)
        self.cloning = offpolicy.DemoCloning(config, spec.low, spec.high)
        self.target_entropy = (-float(self.action_size) if config.target_entropy is None
                               else float(config.target_entropy))

    # ---------------------------------------------------------------- contract

    def init(self, key):
        k_trunk, k_q, k_head = jax.random.split(key, 3)
        critic_trunk, actor_trunk, feat = self.trunk.init(k_trunk)
        critic = {**critic_trunk, "q": self.q.init(k_q, feat, jnp.zeros((1, self.action_size)))}
        actor = {**actor_trunk, "head": self.head.init(k_head, feat)}
        log_alpha = jnp.asarray(math.log(self.config.init_temperature), jnp.float32)
        return {"critic": critic, "target": critic, "actor": actor, "log_alpha": log_alpha,
                "opt": {"critic": self.tx.init(critic), "actor": self.tx.init(actor), "alpha": self.tx.init(log_alpha)}}

    def init_explore(self, env_ids):
        return jnp.zeros((env_ids.shape[0], 0))

    def reset_explore(self, explore, done, env_ids):
        return explore

    def act(self, state, obs, key, explore, env_ids):
        x = network_input(self.config, obs)
        mean, log_std = self.head.apply(state["actor"]["head"], self.trunk.actor_features(state["actor"], state["critic"], x))
        keys = jax.vmap(jax.random.fold_in, (None, 0))(key, env_ids)
        u = jax.vmap(self.dist.sample)(keys, mean, log_std)
        return self.dist.to_action(u), explore

    def policy(self, state, obs):
        return self.trunk.on_batch(lambda x: self._greedy(state["actor"], state["critic"], x),
                                   network_input(self.config, obs))

    def update(self, state, batch, key, step):
        cfg = self.config
        k_aug, k_next, k_pi = jax.random.split(key, 3)
        obs, nxt = network_input(cfg, batch.obs), network_input(cfg, batch.next_obs)
        obs, nxt = offpolicy.augment_transition(cfg, k_aug, obs, nxt)
        critic, actor, target = state["critic"], state["actor"], state["target"]
        alpha = jnp.exp(state["log_alpha"])

        # critic: soft Bellman target from the target critic and the current actor
        u_next, logp_next = self._sample(actor, k_next, self.trunk.actor_features(actor, critic, nxt))
        target_q = self.q.apply(target["q"], self.trunk.critic_features(target, nxt), self.dist.to_action(u_next))
        y = jax.lax.stop_gradient(batch.reward + batch.discount * (target_q.min(0) - alpha * logp_next))

        def critic_loss(c):
            q = self.q.apply(c["q"], self.trunk.critic_features(c, obs), batch.action)
            return jnp.sum(jnp.mean((q - y) ** 2, axis=-1)), q.mean()

        (c_loss, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(critic)
        # one all-reduce per phase: gradients and the losses logged with them travel together
        grads, c_loss, q_mean = pmean((grads, c_loss, q_mean), DATA_AXIS)
        critic, opt_critic = apply_gradients(self.tx, grads, state["opt"]["critic"], critic)

        # actor and temperature (every actor_update_freq updates), on the updated encoder
        h = jax.lax.stop_gradient(self.trunk.conv_out(critic, obs))

        def actor_step(operand):
            actor, log_alpha, opt_a, opt_al = operand

            def actor_loss(a):
                u, logp = self._sample(a, k_pi, self.trunk.actor_features(a, critic, h=h))
                q = self.q.apply(critic["q"], self.trunk.critic_features(critic, h=h), self.dist.to_action(u)).min(0)
                loss, cloned = jnp.mean(jnp.exp(log_alpha) * logp - q), ()
                if self.cloning.enabled:  # behaviour cloning on the demonstrations (state observations)
                    loss = self.cloning.scale_rl(loss, q)  # demo_bc_normalize: TD3+BC's 1 / mean |Q|

                    def q_min(o, act):
                        return self.q.apply(critic["q"], self.trunk.critic_features(critic, o), act).min(0)

                    bc, cloned = self.cloning.term(lambda o: self._greedy(a, critic, o), q_min, k_pi, step)
                    loss = loss + bc
                return loss, (logp, cloned)

            (a_loss, (logp, cloned)), g = jax.value_and_grad(actor_loss, has_aux=True)(actor)
            # the temperature's gradient uses the same (pre-update) log-probs
            slack = jax.lax.stop_gradient(-logp - self.target_entropy)
            al_loss, g_al = jax.value_and_grad(lambda la: jnp.mean(jnp.exp(la) * slack))(log_alpha)
            g, g_al, aux = pmean((g, g_al, jnp.stack([a_loss, al_loss, -logp.mean(), *cloned])), DATA_AXIS)
            actor, opt_a = apply_gradients(self.tx, g, opt_a, actor)
            log_alpha, opt_al = apply_gradients(self.tx, g_al, opt_al, log_alpha)
            return (actor, log_alpha, opt_a, opt_al), aux

        def skip(operand):
            return operand, jnp.full((5 if self.cloning.enabled else 3,), jnp.nan)

        operand = (actor, state["log_alpha"], state["opt"]["actor"], state["opt"]["alpha"])
        if cfg.actor_update_freq == 1:
            (actor, log_alpha, opt_a, opt_al), actor_aux = actor_step(operand)
        else:
            (actor, log_alpha, opt_a, opt_al), actor_aux = jax.lax.cond(
                step % cfg.actor_update_freq == 0, actor_step, skip, operand)

        target_new = soft_update(target, critic, cfg.tau)
        if cfg.target_update_freq > 1:
            refresh = step % cfg.target_update_freq == 0
            target_new = jax.tree.map(lambda new, old: jnp.where(refresh, new, old), target_new, target)
        target = target_new
        new_state = {"critic": critic, "target": target, "actor": actor, "log_alpha": log_alpha,
                     "opt": {"critic": opt_critic, "actor": opt_a, "alpha": opt_al}}
        metrics = {"critic_loss": c_loss, "q_mean": q_mean,
                   "actor_loss": actor_aux[0], "alpha_loss": actor_aux[1], "entropy": actor_aux[2],
                   "alpha": jnp.exp(log_alpha)}
        if self.cloning.enabled:
            metrics.update(demo_bc=actor_aux[3], demo_bc_kept=actor_aux[4])
        return new_state, metrics

    # ---------------------------------------------------------------- helpers

    def _greedy(self, actor, critic, x):
        """The deterministic action ``[B, A]`` (the squashed mean) on network inputs ``x``."""
        return self.dist.to_action(self.head.apply(actor["head"], self.trunk.actor_features(actor, critic, x))[0])

    def _sample(self, actor, key, features):
        """Reparameterised pre-squash sample ``[B, A]`` and the action log-prob ``[B]``."""
        mean, log_std = self.head.apply(actor["head"], features)
        u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape)
        return u, self.dist.action_log_prob(u, mean, log_std)


LOGGED = ("critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_mean")


def make_learner(config: SACConfig, env) -> SACLearner:
    return SACLearner(config, env)


def train(config: SACConfig = SACConfig(), run: RunConfig = offpolicy.DEFAULT_RUN):
    """Train SAC (see :func:`vasa.algos.offpolicy.train`): returns ``(policy, state, rows)``."""
    return offpolicy.train(config, make_learner, NAME, run, LOGGED)


__all__ = ["SACConfig", "SACLearner", "make_learner", "train"]
