"""Diagonal Gaussian action distributions, squashed by tanh or clipped to the action bounds.

PPO keeps the *pre-squash* sample ``u`` and evaluates densities there: the tanh Jacobian is
the same for the behaviour and the current policy, so it cancels in the likelihood ratio, and
KL divergence is invariant under the (bijective) squash. The entropy reported is that of the
pre-squash Gaussian.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

_LOG_2PI = math.log(2 * math.pi)


@struct.dataclass
class ActionDistribution:
    """Maps pre-squash Gaussian samples to bounded env actions.

    Attributes:
      low, high: ``[A] float32`` action bounds.
      squash: ``"tanh"`` (a = low + (tanh(u) + 1)(high - low)/2) or ``"clip"`` (a = clip(u)).
    """

    low: jax.Array
    high: jax.Array
    squash: str = struct.field(pytree_node=False, default="tanh")

    def to_action(self, u: jax.Array) -> jax.Array:
        """``u: [..., A]`` pre-squash sample -> env action ``[..., A]`` within bounds."""
        if self.squash == "tanh":
            return self.low + (jnp.tanh(u) + 1.0) * 0.5 * (self.high - self.low)
        return jnp.clip(u, self.low, self.high)

    @staticmethod
    def sample(key: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
        return mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)

    @staticmethod
    def log_prob(u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
        """Gaussian log-density of ``u``, summed over the action axis: ``[...]``."""
        z = (u - mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * z**2 - log_std - 0.5 * _LOG_2PI, axis=-1)

    @staticmethod
    def entropy(log_std: jax.Array) -> jax.Array:
        """Entropy of the pre-squash Gaussian, ``[...]``."""
        return jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)

    @staticmethod
    def kl(mean_p: jax.Array, log_std_p: jax.Array, mean_q: jax.Array, log_std_q: jax.Array) -> jax.Array:
        """``KL(p || q)`` of diagonal Gaussians, summed over the action axis: ``[...]``."""
        var_ratio = jnp.exp(2 * (log_std_p - log_std_q))
        diff = (mean_p - mean_q) * jnp.exp(-log_std_q)
        return jnp.sum(0.5 * (var_ratio + diff**2 - 1.0) - (log_std_p - log_std_q), axis=-1)
