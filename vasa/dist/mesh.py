"""A 1-D device mesh with a ``"data"`` axis, and helpers for code inside ``jax.shard_map``.

One device is a mesh of size one; many local devices (or many hosts after
``jax.distributed.initialize()``) use the same code.
"""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A mesh over the first ``num_devices`` devices (default: all) with axis ``"data"``.

    After ``jax.distributed`` initialisation (:func:`vasa.dist.initialize`) ``jax.devices()``
    lists every process's devices, process by process, so the default mesh spans all of them
    and rows ``[p * n / P, (p + 1) * n / P)`` of an array split over ``"data"`` live in process ``p``.

    Raises:
      ValueError: ``num_devices`` is < 1 or more than ``jax.device_count()``, or, with more
        than one process, not all global devices (every process must hold part of the mesh).
    """
    devices = jax.devices()
    n = len(devices) if num_devices is None else int(num_devices)
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices={num_devices!r} is not allowed: choose 1..{len(devices)} (jax.device_count()).")
    if jax.process_count() > 1 and n != len(devices):
        raise ValueError(f"num_devices={num_devices!r} is not allowed with {jax.process_count()} processes: the mesh "
                         f"must span all {len(devices)} global devices (leave it unset).")
    return Mesh(np.asarray(devices[:n]), (DATA_AXIS,))


def global_row_ids(local_rows: int) -> jax.Array:
    """Inside ``shard_map`` over ``"data"``: the global indices ``[local_rows] int32`` of this
    device's rows of an array sharded along its first axis. Keys folded with these ids make
    random draws independent of the number of devices."""
    return jax.lax.axis_index(DATA_AXIS) * local_rows + jnp.arange(local_rows, dtype=jnp.int32)


def pmean(x, axis_name: str = DATA_AXIS):
    """``lax.pmean`` over ``axis_name`` inside ``shard_map``, skipped on an axis of size one,
    as one all-reduce per dtype however many arrays ``x`` holds (:func:`fused`).

    XLA keeps a one-participant all-reduce as a copy (about 0.1 ms for PPO's gradient tree
    on a CPU core, once per minibatch); skipping it leaves results bitwise unchanged."""
    return x if jax.lax.axis_size(axis_name) == 1 else fused(jax.lax.pmean, x, axis_name)


def psum(x, axis_name: str = DATA_AXIS):
    """``lax.psum`` over ``axis_name`` inside ``shard_map``, skipped on an axis of size one,
    as one all-reduce per dtype (:func:`fused`)."""
    return x if jax.lax.axis_size(axis_name) == 1 else fused(jax.lax.psum, x, axis_name)


def fused(reduce, x, axis_name: str):
    """``reduce(x, axis_name)`` (an element-wise collective: ``lax.psum``, ``lax.pmean``) on a
    pytree as one collective per dtype: the leaves of each dtype are flattened and
    concatenated, reduced together, and split back.

    Each element is reduced by the same participants with the same operation; what changes
    is the number of collectives. XLA:CPU issues one cross-process (gloo) all-reduce per
    array, and each costs a round trip (~0.1-1 ms between processes on one machine), so PPO's
    13-array gradient tree and its 6 losses made 19 round trips per minibatch instead of 1
    (622 instead of 44 per iteration of benchmarks/multiprocess_scaling.py). XLA then fuses
    the computations around the collective differently, so results on a mesh of several
    devices differ from per-array collectives by float32 rounding (~1 ulp); they remain
    deterministic and the same for every layout of the same number of devices (processes x
    devices per process). A mesh of one device skips collectives and is unchanged. Weakly
    typed leaves (Python scalars) are reduced on their own, keeping their type."""
    leaves, treedef = jax.tree.flatten(x)
    if len(leaves) <= 1:
        return reduce(x, axis_name)
    leaves = [jnp.asarray(v) for v in leaves]
    groups: dict = {}
    for i, v in enumerate(leaves):
        key = ("weak", i) if getattr(v, "weak_type", False) else jnp.dtype(v.dtype)
        groups.setdefault(key, []).append(i)
    out = list(leaves)
    for key, idx in groups.items():
        if len(idx) == 1:
            out[idx[0]] = reduce(leaves[idx[0]], axis_name)
            continue
        flat = reduce(jnp.concatenate([leaves[i].reshape(-1) for i in idx]), axis_name)
        offset = 0
        for i in idx:
            n = leaves[i].size
            out[i] = flat[offset:offset + n].reshape(leaves[i].shape)
            offset += n
    return jax.tree.unflatten(treedef, out)


def jit_sharded_step(step, mesh: Mesh, state_specs, chunk: int | None = None):
    """Jit ``step(state) -> (state, metrics)`` with the state donated and its shardings pinned
    to ``NamedSharding(mesh, state_specs)`` on the way in and out (metrics replicated).

    Pinning matters for ahead-of-time compiled steps (``.lower(state).compile()``): without
    it XLA is free to report a zero-size leaf (MJX's empty ``act``, ``mocap_pos``, ...) as
    replicated on output, and the next call then fails its sharding check on any mesh of
    more than one device.

    Args:
      chunk: ``None`` returns the jitted ``step``. An integer ``K >= 1`` returns
        ``run(state, count) -> (state, metrics)``, which runs ``min(count, K)`` steps in one
        loop (one device call, no host round trip between steps; ``count`` is a
        traced ``int32``, so one compilation serves every count). Metrics come back stacked,
        ``[K, ...]``, with NaN (zero for non-float leaves) in the rows past ``count``.
    """
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), state_specs,
                             is_leaf=lambda x: isinstance(x, PartitionSpec))
    replicated = NamedSharding(mesh, PartitionSpec())
    if chunk is None:
        return jax.jit(step, donate_argnums=0, in_shardings=(shardings,), out_shardings=(shardings, replicated))
    if int(chunk) < 1:
        raise ValueError(f"chunk={chunk!r} is not allowed: it must be an integer >= 1 (or None).")

    k = int(chunk)

    def run(state, count):
        # A while loop with a traced trip count; iteration i writes its metrics into row i of
        # [K, ...] buffers. The step is traced once, into a jaxpr that gives the metrics'
        # shapes and is replayed as the loop body: tracing an MJX step takes seconds, and
        # eval_shape followed by a second trace doubled that.
        closed, (_, shapes) = jax.make_jaxpr(step, return_shape=True)(state)
        replay = jax.extend.core.jaxpr_as_fun(closed)
        out_tree = jax.tree.structure((state, shapes))
        blank = lambda x: jnp.full((k,) + x.shape, jnp.nan if jnp.issubdtype(x.dtype, jnp.floating) else 0, x.dtype)  # noqa: E731
        rows = jax.tree.map(blank, shapes)

        def body(i, carry):
            s, out = carry
            s, metrics = jax.tree.unflatten(out_tree, replay(*jax.tree.leaves(s)))
            return s, jax.tree.map(lambda o, m: o.at[i].set(m), out, metrics)

        return jax.lax.fori_loop(0, jnp.clip(count, 0, k), body, (state, rows))

    return jax.jit(run, donate_argnums=0, in_shardings=(shardings, replicated), out_shardings=(shardings, replicated))
