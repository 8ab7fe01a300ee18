"""A 1-D device mesh with a ``"data"`` axis, and helpers for code inside ``jax.shard_map``.

One device is a mesh of size one; many local devices (or many hosts after
``jax.distributed.initialize()``) use the same code.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

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
