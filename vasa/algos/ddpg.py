"""SURREAL-DDPG: deterministic policy gradients with n-step targets, per-environment exploration
noise and a sharded replay buffer, from states or pixels.

What SURREAL-DDPG (Fan et al., CoRL 2018; dissertation section 2.5.2) prescribes, and vasa does:

* **n-step targets** ``y = sum_m gamma^m r_{t+m} + gamma^n Q'(s_{t+n}, mu'(s_{t+n}))`` (default
  ``n_step=3``), cut at episode ends (:func:`vasa.replay.sample`);
* **per-actor exploration**: environment ``i`` of ``N`` (global index) explores with its own
  constant scale ``sigma_i = sigma_max * i / (N - 1)``, spread linearly over ``[0, sigma_max]``
  (SURREAL gives each actor process its own sigma); the noise is Ornstein-Uhlenbeck
  ``x <- x - theta * x + sigma_i * N(0, 1)``, reset to 0 at episode starts, or Gaussian
  (``noise="gaussian"``), in units of half the action range;
* optional **LayerNorm** in actor and critic; **weight decay** on the critic (decoupled,
  ``optax.adamw``); **soft** (``tau``) or **hard** (every ``hard_update_interval`` updates)
  target updates;
* **pixel mode**: the shared conv encoder is trained by the critic loss only; the actor sees its
  stop-gradient output through its own projection (as SAC's pixel mode, DrQ's weak random
  shift included when ``augment_pad > 0``, or the ``augment`` chosen: crop, conv, none);
* **demonstrations** (state observations): ``demo_bc_coef`` adds a behaviour-cloning term on their
  (observation, action) pairs to the actor's loss, with Nair et al.'s Q-filter on request
  (``demo_bc_q_filter``; :class:`vasa.algos.offpolicy.DemoCloning`), the combination DDPG from
  demonstrations was introduced with; ``demo_bc_normalize`` divides the RL term by the batch's mean
  ``|Q|`` first, which makes the actor's loss TD3+BC's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import jax
import jax.numpy as jnp
import optax

from vasa.algos import offpolicy
from vasa.algos.offpolicy import OffPolicyConfig, PixelTrunk, apply_gradients, example_input, network_input, soft_update
from vasa.dist.mesh import DATA_AXIS, pmean
from vasa.nn import MLP, ActionDistribution
from vasa.run import RunConfig
from vasa.run.fields import NonNegFloat, PosFloat, PosInt, Range, UnitFloat

NAME = "ddpg"


@dataclass(frozen=True)
class DDPGConfig(OffPolicyConfig):
    """SURREAL-DDPG hyperparameters on top of the shared off-policy options."""

    n_step: PosInt = 3
    """n-step returns (SURREAL: 3)"""
    hidden_layers: tuple[PosInt, ...] = (400, 300)
    """actor and critic MLP hidden sizes (DDPG's 400-300)"""
    actor_learning_rate: PosFloat = 1e-4
    """actor Adam learning rate (the critic uses learning_rate)"""
    noise: Literal["ou", "gaussian"] = "ou"
    """exploration noise: Ornstein-Uhlenbeck or Gaussian"""
    sigma_max: NonNegFloat = 0.4
    """environment i of N explores with sigma = sigma_max * i / (N - 1)"""
    ou_theta: UnitFloat = 0.15
    """OU mean-reversion rate per step"""
    layer_norm: bool = False
    """LayerNorm after each hidden layer of actor and critic"""
    weight_decay: NonNegFloat = 0.0
    """decoupled weight decay on the critic (adamw)"""
    target_update: Literal["soft", "hard"] = "soft"
    """EMA targets (tau), or copies every hard_update_interval updates"""
    tau: Annotated[float, Range(gt=0, le=1)] = 0.005
    """EMA rate for target_update=soft"""
    hard_update_interval: PosInt = 500
    """updates between target copies for target_update=hard"""



def exploration_sigma(sigma_max: float, env_ids: jax.Array, num_envs: int) -> jax.Array:
    """SURREAL's per-actor noise scale: ``[E] float32``, ``sigma_max * id / (num_envs - 1)``
    for global env ids (0 for a single env)."""
    return sigma_max * env_ids.astype(jnp.float32) / max(num_envs - 1, 1)


def ou_step(x: jax.Array, white: jax.Array, theta: float, sigma: jax.Array) -> jax.Array:
    """One Ornstein-Uhlenbeck step towards 0: ``x - theta * x + sigma * white``.
    ``x, white: [E, A]`` (``white`` standard normal), ``sigma: [E]``."""
    return x - theta * x + sigma[:, None] * white


class DDPGLearner:
    """DDPG as the pure functions of :class:`vasa.algos.offpolicy.Learner`.

    Learner state (a dict): ``critic`` (trunk + ``"q"``), ``actor`` (``"proj"`` + ``"mu"``),
    ``target`` (``{"critic", "actor"}``), ``opt`` (Adam/AdamW states).
    """

    def __init__(self, config: DDPGConfig, env):
        from vasa.nn.encoders import DoubleQ

        self.config = config
        spec = env.action_spec
        self.action_size = spec.shape[0]
        self.dist = ActionDistribution(jnp.asarray(spec.low, jnp.float32), jnp.asarray(spec.high, jnp.float32), "tanh")
        self.trunk = PixelTrunk(config, example_input(config, env))
        layers = tuple(config.hidden_layers)
        self.q = DoubleQ(layers, "relu", layer_norm=config.layer_norm, num_critics=1)
        self.mu = MLP(layers, self.action_size, "relu", layer_norm=config.layer_norm)
        self.tx_critic = (optax.adamw(config.learning_rate, weight_decay=config.weight_decay)
                          if config.weight_decay > 0 else optax.adam(config.learning_rate))
        self.tx_actor = optax.adam(config.actor_learning_rate)
        self.cloning = offpolicy.DemoCloning(config, spec.low, spec.high)

    def _action(self, actor, critic, x=None, h=None):
        return self.dist.to_action(self.mu.apply(actor["mu"], self.trunk.actor_features(actor, critic, x, h)))

    # ---------------------------------------------------------------- contract

    def init(self, key):
        k_trunk, k_q, k_mu = jax.random.split(key, 3)
        critic_trunk, actor_trunk, feat = self.trunk.init(k_trunk)
        critic = {**critic_trunk, "q": self.q.init(k_q, feat, jnp.zeros((1, self.action_size)))}
        actor = {**actor_trunk, "mu": self.mu.init(k_mu, feat)}
        return {"critic": critic, "actor": actor, "target": {"critic": critic, "actor": actor},
                "opt": {"critic": self.tx_critic.init(critic), "actor": self.tx_actor.init(actor)}}

    def init_explore(self, env_ids):
        return jnp.zeros((env_ids.shape[0], self.action_size))

    def reset_explore(self, explore, done, env_ids):
        return jnp.where(done[:, None] > 0, 0.0, explore)

    def act(self, state, obs, key, explore, env_ids):
        cfg = self.config
        action = self._action(state["actor"], state["critic"], network_input(cfg, obs))
        sigma = exploration_sigma(cfg.sigma_max, env_ids, cfg.num_envs)
        keys = jax.vmap(jax.random.fold_in, (None, 0))(key, env_ids)
        white = jax.vmap(lambda k: jax.random.normal(k, (self.action_size,)))(keys)
        if cfg.noise == "ou":
            explore = noise = ou_step(explore, white, cfg.ou_theta, sigma)
        else:
            noise = sigma[:, None] * white
        half_range = 0.5 * (self.dist.high - self.dist.low)
        return jnp.clip(action + noise * half_range, self.dist.low, self.dist.high), explore

    def policy(self, state, obs):
        return self.trunk.on_batch(lambda x: self._action(state["actor"], state["critic"], x),
                                   network_input(self.config, obs))

    def update(self, state, batch, key, step):
        cfg = self.config
        obs, nxt = network_input(cfg, batch.obs), network_input(cfg, batch.next_obs)
        obs, nxt = offpolicy.augment_transition(cfg, key, obs, nxt)
        critic, actor, target = state["critic"], state["actor"], state["target"]

        next_action = self._action(target["actor"], target["critic"], nxt)
        target_q = self.q.apply(target["critic"]["q"], self.trunk.critic_features(target["critic"], nxt), next_action)[0]
        y = jax.lax.stop_gradient(batch.reward + batch.discount * target_q)

        def critic_loss(c):
            q = self.q.apply(c["q"], self.trunk.critic_features(c, obs), batch.action)[0]
            return jnp.mean((q - y) ** 2), q.mean()

        (c_loss, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(critic)
        # one all-reduce per phase: gradients and the losses logged with them travel together
        grads, c_loss, q_mean = pmean((grads, c_loss, q_mean), DATA_AXIS)
        critic, opt_c = apply_gradients(self.tx_critic, grads, state["opt"]["critic"], critic)

        h = jax.lax.stop_gradient(self.trunk.conv_out(critic, obs))
        feat = self.trunk.critic_features(critic, h=h)

        def actor_loss(a):
            q = self.q.apply(critic["q"], feat, self._action(a, critic, h=h))[0]
            loss, cloned = -jnp.mean(q), ()
            if self.cloning.enabled:  # behaviour cloning on the demonstrations (state observations)
                loss = self.cloning.scale_rl(loss, q)  # demo_bc_normalize: TD3+BC's 1 / mean |Q|

                def q_value(o, act):
                    return self.q.apply(critic["q"], self.trunk.critic_features(critic, o), act)[0]

                bc, cloned = self.cloning.term(lambda o: self._action(a, critic, o), q_value, key, step)
                loss = loss + bc
            return loss, cloned

        (a_loss, cloned), g = jax.value_and_grad(actor_loss, has_aux=True)(actor)
        g, a_loss, cloned = pmean((g, a_loss, cloned), DATA_AXIS)
        actor, opt_a = apply_gradients(self.tx_actor, g, state["opt"]["actor"], actor)

        online = {"critic": critic, "actor": actor}
        if cfg.target_update == "soft":
            target = soft_update(target, online, cfg.tau)
        else:
            copy = (step + 1) % cfg.hard_update_interval == 0
            target = jax.tree.map(lambda new, old: jnp.where(copy, new, old), online, target)
        metrics = {"critic_loss": c_loss, "actor_loss": a_loss, "q_mean": q_mean}
        if self.cloning.enabled:
            metrics.update(demo_bc=cloned[0], demo_bc_kept=cloned[1])
        return {"critic": critic, "actor": actor, "target": target, "opt": {"critic": opt_c, "actor": opt_a}}, metrics


LOGGED = ("critic_loss", "actor_loss", "q_mean")


def make_learner(config: DDPGConfig, env) -> DDPGLearner:
    return DDPGLearner(config, env)


def train(config: DDPGConfig = DDPGConfig(), run: RunConfig = offpolicy.DEFAULT_RUN):
    """Train DDPG (see :func:`vasa.algos.offpolicy.train`): returns ``(policy, state, rows)``."""
    return offpolicy.train(config, make_learner, NAME, run, LOGGED)


__all__ = ["DDPGConfig", "DDPGLearner", "exploration_sigma", "make_learner", "ou_step", "train"]
