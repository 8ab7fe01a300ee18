"""Device meshes and ``shard_map`` helpers (one ``"data"`` axis), many processes through
``jax.distributed`` (:func:`initialize`, :func:`initialize_if_launched`, :func:`cluster_environment`),
and ``vasa launch local | slurm | mpi | k8s`` (:mod:`vasa.dist.launch`, :mod:`vasa.dist.launchers`).

Names load on first use (PEP 562), so ``vasa launch`` starts its processes without importing JAX.
"""

import importlib

_WHERE = {
    "DATA_AXIS": "mesh", "global_row_ids": "mesh", "jit_sharded_step": "mesh", "make_mesh": "mesh",
    "pmean": "mesh", "psum": "mesh",
    "barrier": "distributed", "cluster_environment": "distributed", "initialize": "distributed",
    "initialize_if_launched": "distributed", "is_primary": "distributed", "launched": "distributed",
    "summary": "distributed",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'vasa.dist' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"vasa.dist.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
