"""Run infrastructure: run directories, checkpoints (orbax), metrics logging, progress display, learning curves.

Names load on first use (PEP 562), so ``vasa.run.fields`` (config validation, used by modules
that stay free of JAX at import, such as ``vasa.video.data``) does not pull in JAX and orbax.
"""

import importlib

_WHERE = {
    "Checkpointer": "checkpoint", "CheckpointError": "checkpoint", "CorruptCheckpointError": "checkpoint",
    "RunConfig": "config", "chunk_plan": "config", "chunked_iterations": "config", "require": "config",
    "RunLogger": "logger", "TrainingDiverged": "logger", "check_finite": "logger", "finish_run": "logger",
    "RunDirectoryError": "rundir", "RunPlan": "rundir", "RunSession": "rundir", "prepare_run": "rundir",
    "read_config_json": "rundir",
}

__all__ = sorted(_WHERE)


def __getattr__(name):
    if name not in _WHERE:
        raise AttributeError(f"module 'vasa.run' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"vasa.run.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_WHERE))
