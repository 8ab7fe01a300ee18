"""The pixel student of SECANT's distillation: a convolutional policy with SafeDAgger's safety head."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vasa.nn import MLP, ConvEncoder, Projection
from vasa.nn.encoders import SpatialSoftmax


class StudentNetwork(nn.Module):
    """Pixels ``uint8 [..., H, W, C]`` -> (``tanh`` action ``[..., A]`` in (-1, 1), unsafe
    logit ``[...]``): ConvEncoder -> Projection (or, with ``features="keypoints"``, a spatial
    softmax) -> MLP policy; the safety MLP reads the stop-gradient features."""

    action_size: int
    encoder: str = "drq"
    feature_dim: int = 50
    hidden_layers: tuple = (1024, 1024)
    safety_layers: tuple = (256,)
    features: str = "projection"

    @nn.compact
    def __call__(self, pixels):
        if self.features == "keypoints":  # spatial softmax over the last conv map: 2 x filters coordinates
            features = SpatialSoftmax(name="keypoints")(ConvEncoder(self.encoder, flatten=False, name="encoder")(pixels))
        else:
            features = Projection(self.feature_dim, name="proj")(ConvEncoder(self.encoder, name="encoder")(pixels))
        u = MLP(self.hidden_layers, self.action_size, "relu", name="policy")(features)
        logit = MLP(self.safety_layers, 1, "relu", name="safety")(jax.lax.stop_gradient(features))
        return jnp.tanh(u), logit[..., 0]


class Student:
    """The student as pure functions: ``apply(params, pixels) -> (action, unsafe_logit)`` with
    actions within the environment's bounds, and ``policy(params, obs) -> action``.
    ``config``: a :class:`~vasa.distill.dagger.DAggerConfig` (its network fields)."""

    def __init__(self, config, env):
        spec = env.action_spec
        self.net = StudentNetwork(spec.shape[0], config.encoder, config.feature_dim, tuple(config.hidden_layers),
                                  tuple(config.safety_layers), getattr(config, "features", "projection"))
        self.low, self.high = jnp.asarray(spec.low, jnp.float32), jnp.asarray(spec.high, jnp.float32)
        self.example = np.zeros((1,) + tuple(env.observation_spec["pixels"].shape), np.uint8)

    def init(self, key):
        return self.net.init(key, self.example)

    def apply(self, params, pixels):
        squashed, logit = self.net.apply(params, pixels)
        return self.low + (squashed + 1.0) * 0.5 * (self.high - self.low), logit

    def policy(self, params, obs):
        """Deterministic actions ``[..., A]`` for observations (a dict with ``"pixels"``, or pixels)."""
        return self.apply(params, obs["pixels"] if isinstance(obs, dict) else obs)[0]


def needs_expert(unsafe_logit: jax.Array, threshold: jax.Array | float = 0.0) -> jax.Array:
    """SafeDAgger's switch ``[E] bool``: the safety head says unsafe, ``logit >= threshold``
    (the default 0: ``sigmoid(logit) >= 0.5``)."""
    return unsafe_logit >= threshold


__all__ = ["Student", "StudentNetwork", "needs_expert"]
