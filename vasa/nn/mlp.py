"""Multi-layer perceptrons and the Gaussian policy head."""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "swish": nn.swish, "elu": nn.elu, "gelu": nn.gelu}


class MLP(nn.Module):
    """``[..., D] -> [..., out_size]`` with hidden ``layers`` and ``activation`` between them.

    ``final_scale`` scales the last layer's initial weights (0.01 for policy means, as is
    standard for PPO, so the initial policy is close to zero-mean).
    """

    layers: Sequence[int]
    out_size: int
    activation: str = "tanh"
    layer_norm: bool = False
    final_scale: float = 1.0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = ACTIVATIONS[self.activation]
        for width in self.layers:
            x = nn.Dense(width, kernel_init=nn.initializers.lecun_uniform())(x)
            if self.layer_norm:
                x = nn.LayerNorm()(x)
            x = act(x)
        init = nn.initializers.variance_scaling(self.final_scale, "fan_in", "uniform")
        return nn.Dense(self.out_size, kernel_init=init)(x)


class GaussianPolicyHead(nn.Module):
    """Observation ``[..., D]`` -> (mean ``[..., A]``, log_std ``[..., A]``), float32.

    ``state_dependent_std=False`` learns one log-std vector (initialised to ``init_log_std``);
    ``True`` predicts it from the observation, bounded softly to ``[min_log_std, max_log_std]``.
    """

    layers: Sequence[int]
    action_size: int
    activation: str = "tanh"
    state_dependent_std: bool = False
    init_log_std: float = -0.5
    min_log_std: float = -5.0
    max_log_std: float = 2.0

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        a = self.action_size
        x = obs
        for width in self.layers:
            x = ACTIVATIONS[self.activation](nn.Dense(width, kernel_init=nn.initializers.lecun_uniform())(x))
        small = nn.initializers.variance_scaling(0.01, "fan_in", "uniform")
        mean = nn.Dense(a, kernel_init=small, name="mean")(x)
        if self.state_dependent_std:
            # zero-initialised, so every state starts at init_log_std; the tanh bound keeps
            # gradients alive near the limits
            raw = nn.Dense(a, kernel_init=nn.initializers.zeros, name="log_std")(x)
            lo, hi = self.min_log_std, self.max_log_std
            centre = jnp.arctanh(2 * (self.init_log_std - lo) / (hi - lo) - 1)
            log_std = lo + 0.5 * (hi - lo) * (jnp.tanh(raw + centre) + 1)
        else:
            param = self.param("log_std", nn.initializers.constant(self.init_log_std), (a,))
            log_std = jnp.broadcast_to(param, mean.shape)
        return mean, log_std
