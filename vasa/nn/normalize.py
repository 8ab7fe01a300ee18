"""Running mean/variance of observations (SURREAL's z-filter), as a pytree."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from vasa.dist.mesh import psum


@struct.dataclass
class RunningStats:
    """Mean and variance of everything seen so far, merged batch by batch (Chan et al.).

    Attributes:
      mean: ``[D] float32``; m2: ``[D] float32`` sum of squared deviations; count: ``[] float32``.
    """

    mean: jax.Array
    m2: jax.Array
    count: jax.Array

    @classmethod
    def create(cls, size: int) -> "RunningStats":
        return cls(mean=jnp.zeros(size), m2=jnp.zeros(size), count=jnp.zeros(()))

    @property
    def var(self) -> jax.Array:
        """Population variance ``[D]`` (1 before any data)."""
        return jnp.where(self.count > 0, self.m2 / jnp.maximum(self.count, 1.0), 1.0)

    def update(self, x: jax.Array, axis_name: str | None = None) -> "RunningStats":
        """Merge a batch ``x: [..., D]``. Inside ``shard_map``, ``axis_name`` merges the
        batches of all devices, so every device holds the same statistics."""
        x = x.reshape(-1, x.shape[-1]).astype(jnp.float32)
        n = jnp.asarray(x.shape[0], jnp.float32)
        total = x.sum(0)
        if axis_name is not None:
            n, total = psum((n, total), axis_name)
        batch_mean = total / n
        sq = jnp.sum((x - batch_mean) ** 2, axis=0)
        if axis_name is not None:
            sq = psum(sq, axis_name)
        count = self.count + n
        delta = batch_mean - self.mean
        mean = self.mean + delta * (n / count)
        m2 = self.m2 + sq + delta**2 * (self.count * n / count)
        return RunningStats(mean=mean, m2=m2, count=count)

    def update_from_sums(self, n: jax.Array, s1: jax.Array, s2: jax.Array) -> "RunningStats":
        """Merge a batch given by its moments about the current mean: ``n`` samples (``[]``),
        ``s1 = sum(x - mean)`` and ``s2 = sum((x - mean)**2)`` (``[D]`` each; sums over every
        device already taken). For batches accumulated step by step, e.g. with a mask, without
        keeping the samples. ``n = 0`` leaves the statistics unchanged."""
        safe_n = jnp.maximum(n, 1.0)
        delta = s1 / safe_n  # batch mean minus the current mean
        sq = s2 - s1 * delta  # the batch's sum of squared deviations from its own mean
        count = self.count + n
        frac = jnp.where(count > 0, n / jnp.maximum(count, 1.0), 0.0)
        mean = self.mean + delta * frac
        m2 = self.m2 + jnp.where(n > 0, jnp.maximum(sq, 0.0) + delta**2 * self.count * frac, 0.0)
        return RunningStats(mean=mean, m2=m2, count=count)

    def normalize(self, x: jax.Array, clip: float = 10.0, eps: float = 1e-8) -> jax.Array:
        """``(x - mean) / sqrt(var + eps)``, clipped to ``[-clip, clip]``; same shape as ``x``."""
        return jnp.clip((x - self.mean) / jnp.sqrt(self.var + eps), -clip, clip)
