"""Run infrastructure: checkpoints (orbax), metrics logging, progress display, learning curves."""

from vasa.run.checkpoint import CheckpointError, Checkpointer
from vasa.run.config import RunConfig, chunk_plan, chunked_iterations, load_saved_config, require, resolve_run
from vasa.run.logger import RunLogger, TrainingDiverged, check_finite, finish_run

__all__ = ["CheckpointError", "Checkpointer", "RunConfig", "chunk_plan", "chunked_iterations", "load_saved_config", "require", "resolve_run", "RunLogger", "TrainingDiverged", "check_finite", "finish_run"]
