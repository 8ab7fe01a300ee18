"""Diagonal Gaussian action distributions, squashed by tanh or clipped to the action bounds.

PPO keeps the *pre-squash* sample ``u`` and evaluates densities there: the tanh Jacobian is
the same for the behaviour and the current policy, so it cancels in the likelihood ratio, and
KL divergence is invariant under the (bijective) squash. The entropy, which does change, is
that of the *action* distribution: for tanh, the Gaussian entropy plus the expected
log-Jacobian, estimated at a reparameterised sample (as Brax does); without it an entropy bonus
would widen the Gaussian without bound while the squashed actions pile up at the bounds.
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
    def gaussian_entropy(log_std: jax.Array) -> jax.Array:
        """Entropy of the pre-squash Gaussian, ``[...]``."""
        return jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)

    def log_det_jacobian(self, u: jax.Array) -> jax.Array:
        """``log |d action / d u|`` summed over the action axis, ``[...]`` (0 for clip)."""
        if self.squash != "tanh":
            return jnp.zeros(u.shape[:-1], u.dtype)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        log_dtanh = 2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u))
        return jnp.sum(log_dtanh + jnp.log(0.5 * (self.high - self.low)), axis=-1)

    def action_log_prob(self, u: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
        """Log-density of the *action* ``to_action(u)`` (change of variables through the squash
        and the scaling to the bounds; SAC's tanh-Gaussian log-prob), ``[...]``."""
        return self.log_prob(u, mean, log_std) - self.log_det_jacobian(u)

    def entropy(self, mean: jax.Array, log_std: jax.Array, noise: jax.Array) -> jax.Array:
        """Entropy of the action distribution, ``[...]``: exact for clip (the Gaussian's, as
        is conventional), and a one-sample estimate for tanh at ``u = mean + std * noise``
        (``noise``: standard normal ``[..., A]``), differentiable in ``mean`` and ``log_std``."""
        u = mean + jnp.exp(log_std) * noise
        return self.gaussian_entropy(log_std) + self.log_det_jacobian(u)

    @staticmethod
    def kl(mean_p: jax.Array, log_std_p: jax.Array, mean_q: jax.Array, log_std_q: jax.Array) -> jax.Array:
        """``KL(p || q)`` of diagonal Gaussians, summed over the action axis: ``[...]``."""
        var_ratio = jnp.exp(2 * (log_std_p - log_std_q))
        diff = (mean_p - mean_q) * jnp.exp(-log_std_q)
        return jnp.sum(0.5 * (var_ratio + diff**2 - 1.0) - (log_std_p - log_std_q), axis=-1)
