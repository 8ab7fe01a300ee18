"""PPO's policy and value networks: MLPs on the state vector, or a convolutional encoder on
rendered pixels (SURREAL's Nature-style or DrQ's, :class:`vasa.nn.ConvEncoder`) followed by a
projection, with the proprioceptive (task-state) vector optionally concatenated.

With a recurrent ``core`` (``"lstm"`` or ``"gru"``) each network is trunk -> core -> head
over time-major sequences (:class:`RecurrentNetwork`); the trunk is the pixel encoder, or
nothing for state observations (the core reads the z-filtered state).

In pixel mode the policy and the value function each have their own encoder (so the value
loss does not shape the policy's features, and the reference policy of SURREAL's target
network is the whole policy network). The observation z-filter applies to the proprioceptive
part only; pixels enter as ``uint8`` and are scaled inside the encoder.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vasa.nn import MLP, ActionDistribution, ConvEncoder, GaussianPolicyHead, Projection, RunningStats


class PixelTrunk(nn.Module):
    """``{"pixels": uint8 [..., H, W, C], "proprio"?: [..., P]}`` -> features ``[..., F (+ P)]``."""

    encoder: str = "nature"
    feature_dim: int = 50

    @nn.compact
    def __call__(self, obs):
        h = Projection(self.feature_dim, name="proj")(ConvEncoder(self.encoder, name="encoder")(obs["pixels"]))
        return jnp.concatenate([h, obs["proprio"]], axis=-1) if "proprio" in obs else h


class PixelNetwork(nn.Module):
    """:class:`PixelTrunk` -> ``head``: the policy (a :class:`vasa.nn.GaussianPolicyHead`,
    giving ``(mean, log_std)``) or the value function (an MLP to ``[..., 1]``)."""

    head: nn.Module
    encoder: str = "nature"
    feature_dim: int = 50

    @nn.compact
    def __call__(self, obs):
        return self.head(PixelTrunk(self.encoder, self.feature_dim, name="trunk")(obs))


def reset_carry(carry, starts: jax.Array):
    """Zero the recurrent state of the rows where ``starts [B] bool`` is set (a new episode);
    ``carry`` is a pytree of ``[B, n]`` arrays."""
    return jax.tree.map(lambda c: jnp.where(starts[:, None], jnp.zeros_like(c), c), carry)


def _core_step(cell, carry, xs):
    x, start = xs
    return cell(reset_carry(carry, start), x)


class RecurrentNetwork(nn.Module):
    """``trunk -> core -> head`` over time-major sequences.

    ``__call__(carry, inputs, starts) -> (carry, outputs)``: ``inputs`` a pytree of
    ``[T, B, ...]`` leaves (the z-filtered state, or pixels and proprioception), ``starts``
    ``[T, B] bool`` (step ``t`` begins an episode: the core's state is zeroed before it
    reads that step), ``carry`` the core's state before step 0 (:meth:`zero_carry`; an LSTM's
    is ``(c, h)``, a GRU's ``h``, each ``[B, core_size] float32``). Returns the core's state
    after step ``T - 1`` and ``head`` applied to every step's core output (``[T, B, ...]``).
    """

    head: nn.Module
    core: str = "lstm"
    core_size: int = 100
    trunk: nn.Module | None = None

    @nn.compact
    def __call__(self, carry, inputs, starts):
        x = inputs if self.trunk is None else self.trunk(inputs)
        cell = (nn.OptimizedLSTMCell if self.core == "lstm" else nn.GRUCell)(self.core_size, name="core")
        scan = nn.scan(_core_step, variable_broadcast="params", split_rngs={"params": False})
        carry, y = scan(cell, carry, (x, starts))
        return carry, self.head(y)

    def zero_carry(self, batch: int):
        """The core's initial state for ``batch`` sequences (zeros)."""
        h = jnp.zeros((batch, self.core_size), jnp.float32)
        return (h, h) if self.core == "lstm" else h


class Networks:
    """The policy and value networks of a :class:`~vasa.algos.ppo.PPOConfig` as pure apply
    functions.

    ``observation``: the environment's observation spec (an ``ArraySpec``, or with
    ``config.pixels`` a dict with ``"pixels"`` and ``"proprio"``), or the state size as an int.
    ``obs_size`` is what the z-filter sees: the state size, or the proprioceptive size.
    """

    def __init__(self, config, observation: Any, action_spec):
        self.pixels = bool(getattr(config, "pixels", False))
        self.proprio = self.pixels and bool(getattr(config, "proprio", False))
        self.normalize_observations = config.normalize_observations
        head = GaussianPolicyHead(layers=tuple(config.policy_layers), action_size=action_spec.shape[0],
                                  activation=config.activation, state_dependent_std=config.state_dependent_std,
                                  init_log_std=config.init_log_std)
        value = MLP(tuple(config.value_layers), 1, config.activation)
        self.recurrent = getattr(config, "core", "none") != "none"
        if self.pixels:
            self.pixel_shape = tuple(observation["pixels"].shape)
            self.obs_size = int(observation["proprio"].size)
            self.policy = PixelNetwork(head, config.encoder, config.feature_dim)
            self.value = PixelNetwork(value, config.encoder, config.feature_dim)
        else:
            self.obs_size = int(observation) if isinstance(observation, int) else int(observation.size)
            self.policy, self.value = head, value
        if self.recurrent:
            trunk = (lambda: PixelTrunk(config.encoder, config.feature_dim, name="trunk")) if self.pixels else lambda: None
            self.policy = RecurrentNetwork(head, config.core, config.core_size, trunk())
            self.value = RecurrentNetwork(value, config.core, config.core_size, trunk())
        self.dist = ActionDistribution(jnp.asarray(action_spec.low, jnp.float32),
                                       jnp.asarray(action_spec.high, jnp.float32), config.action_squash)

    def example(self):
        """A batch of one zero observation as the networks take it."""
        if not self.pixels:
            return jnp.zeros((1, self.obs_size))
        x = {"pixels": jnp.zeros((1,) + self.pixel_shape, jnp.uint8)}
        return {**x, "proprio": jnp.zeros((1, self.obs_size))} if self.proprio else x

    def init(self, key):
        k1, k2 = jax.random.split(key)
        dummy = self.example()
        if self.recurrent:  # a sequence of one step
            args = (self.policy.zero_carry(1), jax.tree.map(lambda x: x[None], dummy), jnp.ones((1, 1), bool))
            return {"policy": self.policy.init(k1, *args), "value": self.value.init(k2, *args)}
        return {"policy": self.policy.init(k1, dummy), "value": self.value.init(k2, dummy)}

    def zero_carry(self, batch: int):
        """Recurrent state of both networks for ``batch`` environments:
        ``{"policy": carry, "value": carry}`` (see :class:`RecurrentNetwork`)."""
        return {"policy": self.policy.zero_carry(batch), "value": self.value.zero_carry(batch)}

    def policy_seq(self, params, carry, inputs, starts):
        """Recurrent policy over ``[T, B]`` sequences: ``(carry, (mean, log_std))``."""
        return self.policy.apply(params, carry, inputs, starts)

    def value_seq(self, params, carry, inputs, starts):
        """Recurrent value function over ``[T, B]`` sequences: ``(carry, values [T, B])``."""
        carry, v = self.value.apply(params, carry, inputs, starts)
        return carry, v[..., 0]

    def inputs(self, normalizer: RunningStats, obs):
        """The networks' input for environment observations ``obs`` (batched or not): the
        z-filtered state; or the pixels with the z-filtered proprioception if used."""
        if not self.pixels:
            return normalizer.normalize(obs) if self.normalize_observations else obs
        if not self.proprio:
            return {"pixels": obs["pixels"]}
        p = obs["proprio"]
        return {"pixels": obs["pixels"], "proprio": normalizer.normalize(p) if self.normalize_observations else p}

    def stats_input(self, obs):
        """What the z-filter's statistics are merged from: the state, or the proprioception."""
        return obs["proprio"] if self.pixels else obs

    def value_fn(self, params, inputs):
        return self.value.apply(params, inputs)[..., 0]


__all__ = ["Networks", "PixelNetwork", "PixelTrunk", "RecurrentNetwork", "reset_carry"]
