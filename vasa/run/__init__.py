"""Run infrastructure: run directories, checkpoints (orbax), metrics logging, progress display, learning curves."""

from vasa.run.checkpoint import Checkpointer, CheckpointError, CorruptCheckpointError
from vasa.run.config import RunConfig, chunk_plan, chunked_iterations, require
from vasa.run.logger import RunLogger, TrainingDiverged, check_finite, finish_run
from vasa.run.rundir import RunDirectoryError, RunPlan, RunSession, prepare_run, read_config_json

__all__ = ["CheckpointError", "Checkpointer", "CorruptCheckpointError", "RunConfig", "RunDirectoryError", "RunLogger",
           "RunPlan", "RunSession", "TrainingDiverged", "check_finite", "chunk_plan", "chunked_iterations",
           "finish_run", "prepare_run", "read_config_json", "require"]
