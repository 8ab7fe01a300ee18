"""A 1-D device mesh with a ``"data"`` axis, and helpers for code inside ``jax.shard_map``.

One device is a mesh of size one; many local devices (or many hosts after
``jax.distributed.initialize()``) use the same code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_mesh(num_devices: int | None = None) -> Mesh:
    """A mesh over the first ``num_devices`` devices (default: all) with axis ``"data"``.

    Raises:
      ValueError: ``num_devices`` is < 1 or more than ``jax.device_count()``.
    """
    devices = jax.devices()
    n = len(devices) if num_devices is None else int(num_devices)
    if not 1 <= n <= len(devices):
        raise ValueError(f"num_devices={num_devices!r} is not allowed: choose 1..{len(devices)} (jax.device_count()).")
    return Mesh(np.asarray(devices[:n]), (DATA_AXIS,))


def global_row_ids(local_rows: int) -> jax.Array:
    """Inside ``shard_map`` over ``"data"``: the global indices ``[local_rows] int32`` of this
    device's rows of an array sharded along its first axis. Keys folded with these ids make
    random draws independent of the number of devices."""
    return jax.lax.axis_index(DATA_AXIS) * local_rows + jnp.arange(local_rows, dtype=jnp.int32)


def jit_sharded_step(step, mesh: Mesh, state_specs):
    """``jax.jit(step, donate_argnums=0)`` for ``step(state) -> (state, metrics)`` with the
    state's shardings pinned to ``NamedSharding(mesh, state_specs)`` on the way in and out
    (metrics replicated).

    Pinning matters for ahead-of-time compiled steps (``.lower(state).compile()``): without
    it XLA is free to report a zero-size leaf (MJX's empty ``act``, ``mocap_pos``, ...) as
    replicated on output, and the next call then fails its sharding check on any mesh of
    more than one device.
    """
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), state_specs,
                             is_leaf=lambda x: isinstance(x, PartitionSpec))
    return jax.jit(step, donate_argnums=0, in_shardings=(shardings,),
                   out_shardings=(shardings, NamedSharding(mesh, PartitionSpec())))
