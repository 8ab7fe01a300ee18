"""The DAgger dataset: a flat on-device ring of labelled observations, sharded over ``"data"``.

Each entry is a whole stacked observation ``uint8 [H, W, C*k]`` and the expert's action for
it, ``float32 [A]`` (the label, computed once when the observation is added, on the
*unaugmented* observation). Entries are added for any subset of the environments at each
step, in environment order, and sampled uniformly (or by priority, below).

Why not :mod:`vasa.replay`: the replay buffer keeps one stream per environment, stores each
frame once and rebuilds frame stacks from the slots behind a sample, which needs every
environment to write every step. SafeDAgger adds only the observations on which the expert
was queried, so a stream would have gaps where the stack's earlier frames were never
written; a flat ring of whole stacks (``k`` times the bytes per observation) takes any
subset at no extra cost. It also has no rewards, actions taken or successors to keep.

Optional pieces: ``extra`` keeps a second observation per entry (SECANT-Parallel stores the
privileged expert's state observation there, so the labels can be recomputed by the current
expert at sampling time), and ``holdout=k`` in :func:`sample` splits the ring by slot: every
``k``-th slot (0, k, 2k, ...) is *held out* (SafeDAgger's ``D_safe``, which trains the safety
head on observations the policy never fitted) and the rest is the training split.

Prioritised sampling (``create(prioritised=True)``, Schaul et al.'s proportional prioritised
replay, without importance weights): each entry keeps a ``priority``, the student's latest error
on it (:func:`set_priority` after a gradient step); new entries get the largest priority stored
(so each is likely drawn soon), and :func:`prioritised_slots` draws slot ``i`` of the training
split with probability ``p_i^alpha / sum_j p_j^alpha``. The held-out split is always uniform.

Layout and sharding. Leaves are ``obs: [N, H, W, C]``, ``label: [N, A]`` and ``count: [S]``
with ``S`` shards (devices), plus ``extra: [N, ...]`` and ``priority: [N]`` when kept. Inside
``jax.shard_map`` over ``"data"`` (every leaf split on its first axis) every function works on
the local shard: each device adds its own environments' observations to its own ring of
``N / S`` entries and samples from it, as the replay buffer does. ``count`` holds the entries
ever added to each shard (not capped), so the shard's ring position is ``count % (N / S)`` and
it holds ``min(count, N / S)`` entries.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class Dataset:
    """Labelled observations (see the module docstring).

    Attributes:
      obs: ``uint8 [N, H, W, C]`` stacked observations (local shard: ``[N / S, ...]``).
      label: ``float32 [N, A]`` the expert's action on each observation.
      count: ``int32 [S]`` entries ever added per shard (local shard: ``[1]``).
      extra: ``None``, or a second observation per entry ``[N, ...]`` (e.g. ``float32 [N, P]``).
      priority: ``None``, or ``float32 [N]`` each entry's sampling priority (prioritised sampling).
    """

    obs: jax.Array
    label: jax.Array
    count: jax.Array
    extra: Any = None
    priority: Any = None

    @property
    def capacity(self) -> int:
        """Entries this (local) ring holds."""
        return self.obs.shape[0]

    def size(self) -> jax.Array:
        """``[] int32`` entries stored, summed over the shards present."""
        per_shard = self.capacity // self.count.shape[0]
        return jnp.sum(jnp.minimum(self.count, per_shard))


def create(obs_shape: tuple, obs_dtype, action_size: int, capacity: int, num_shards: int = 1,
           extra: jax.ShapeDtypeStruct | None = None, prioritised: bool = False) -> Dataset:
    """An empty dataset of ``capacity`` entries (global; ``capacity / num_shards`` per shard),
    with an ``extra`` observation of that shape and dtype per entry if given, and a sampling
    priority per entry if ``prioritised``.

    Raises:
      ValueError: ``capacity`` is not a positive multiple of ``num_shards``.
    """
    if capacity < 1 or capacity % num_shards:
        raise ValueError(f"capacity={capacity!r} is not allowed: it must be a positive multiple of the "
                         f"{num_shards} shards.")
    return Dataset(obs=jnp.zeros((capacity,) + tuple(obs_shape), obs_dtype),
                   label=jnp.zeros((capacity, int(action_size)), jnp.float32),
                   count=jnp.zeros((num_shards,), jnp.int32),
                   extra=None if extra is None else jnp.zeros((capacity,) + tuple(extra.shape), extra.dtype),
                   priority=jnp.zeros((capacity,), jnp.float32) if prioritised else None)


def add(data: Dataset, obs: jax.Array, label: jax.Array, mask: jax.Array | None = None,
        extra: jax.Array | None = None) -> Dataset:
    """Append the observations ``obs: [E, ...]`` with their labels ``label: [E, A]`` (and
    ``extra: [E, ...]`` if the dataset keeps one) where ``mask: [E] bool`` (default: all), in
    order, to a single shard's ring (the local shard inside ``shard_map``), overwriting the
    oldest entries once it is full. ``E`` must not exceed the ring's capacity."""
    e, n = obs.shape[0], data.capacity
    if e > n:
        raise ValueError(f"cannot add {e} observations at once to a ring of {n}")
    mask = jnp.ones((e,), bool) if mask is None else mask.astype(bool)
    rank = jnp.cumsum(mask.astype(jnp.int32)) - 1
    where = jnp.where(mask, (data.count[0] + rank) % n, n)  # n is out of range: dropped
    if (extra is None) != (data.extra is None):
        raise ValueError("pass extra= exactly when the dataset was created with one")
    if extra is not None:
        data = data.replace(extra=data.extra.at[where].set(extra.astype(data.extra.dtype), mode="drop"))
    if data.priority is not None:  # new entries: the largest priority stored (1 in an empty ring)
        top = jnp.where(data.count[0] > 0, jnp.max(data.priority), 1.0)
        data = data.replace(priority=data.priority.at[where].set(top, mode="drop"))
    return data.replace(obs=data.obs.at[where].set(obs.astype(data.obs.dtype), mode="drop"),
                        label=data.label.at[where].set(label.astype(jnp.float32), mode="drop"),
                        count=data.count + jnp.sum(mask.astype(jnp.int32)))


def slots(stored: jax.Array, key: jax.Array, batch_size: int, holdout: int = 0,
          held_out: bool = False) -> jax.Array:
    """``int32 [batch_size]`` slot indices drawn uniformly with replacement among the first
    ``stored`` slots: all of them (``holdout=0``), or with ``holdout=k >= 2`` only the
    held-out slots ``0, k, 2k, ...`` (``held_out=True``) or only the others."""
    if not holdout:
        return jax.random.randint(key, (batch_size,), 0, jnp.maximum(stored, 1))
    held = (stored + holdout - 1) // holdout  # multiples of k below stored
    if held_out:
        return jax.random.randint(key, (batch_size,), 0, jnp.maximum(held, 1)) * holdout
    j = jax.random.randint(key, (batch_size,), 0, jnp.maximum(stored - held, 1))
    return j + j // (holdout - 1) + 1  # the j-th slot that is not a multiple of k


def prioritised_slots(data: Dataset, key: jax.Array, batch_size: int, alpha: float, holdout: int = 0) -> jax.Array:
    """``int32 [batch_size]`` slots of a single shard's training split (all stored slots, or with
    ``holdout=k`` those that are not multiples of ``k``), drawn with replacement with probability
    proportional to ``priority ** alpha`` (``alpha = 0``: uniform over the split)."""
    n = data.capacity
    slot = jnp.arange(n)
    eligible = slot < jnp.minimum(data.count[0], n)
    if holdout:
        eligible &= slot % holdout != 0
    weight = jnp.where(eligible, jnp.maximum(data.priority, 1e-12) ** alpha, 0.0)
    cdf = jnp.cumsum(weight)
    u = jax.random.uniform(key, (batch_size,)) * cdf[-1]
    return jnp.minimum(jnp.searchsorted(cdf, u, side="right"), n - 1).astype(jnp.int32)


def set_priority(data: Dataset, index: jax.Array, value: jax.Array, eps: float = 1e-3) -> Dataset:
    """The entries ``index [B]`` of a single shard get priority ``value [B] + eps`` (the student's
    error on them; ``eps`` keeps every entry drawable). A slot drawn twice keeps one of its values."""
    return data.replace(priority=data.priority.at[index].set(value.astype(jnp.float32) + eps))


def gather(data: Dataset, index: jax.Array):
    """``(obs [B, ...], label [B, A], extra [B, ...] or None)`` of the slots ``index [B]``."""
    return data.obs[index], data.label[index], None if data.extra is None else data.extra[index]


def sample_slots(data: Dataset, key: jax.Array, batch_size: int, holdout: int = 0, held_out: bool = False,
                 alpha: float = 0.0) -> jax.Array:
    """``int32 [batch_size]`` slots of a single shard's stored entries, from the split
    :func:`slots` describes: uniformly, or with ``alpha > 0`` the training split by priority
    (:func:`prioritised_slots`; the held-out split stays uniform)."""
    if alpha > 0 and not held_out:
        return prioritised_slots(data, key, batch_size, alpha, holdout)
    return slots(jnp.minimum(data.count[0], data.capacity), key, batch_size, holdout, held_out)


def sample(data: Dataset, key: jax.Array, batch_size: int, holdout: int = 0, held_out: bool = False):
    """``(obs [B, ...], label [B, A], extra [B, ...] or None)`` drawn uniformly with
    replacement from a single shard's stored entries (it must hold at least one; with
    ``holdout`` one of each split), from the split :func:`slots` describes."""
    return gather(data, sample_slots(data, key, batch_size, holdout, held_out))


__all__ = ["Dataset", "add", "create", "gather", "prioritised_slots", "sample", "sample_slots", "set_priority",
           "slots"]
