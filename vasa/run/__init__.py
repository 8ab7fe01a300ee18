"""Run infrastructure: checkpoints (orbax), metrics logging, progress display, learning curves."""

from vasa.run.checkpoint import CheckpointError, Checkpointer
from vasa.run.config import RunConfig, load_saved_config
from vasa.run.logger import RunLogger, TrainingDiverged, check_finite

__all__ = ["CheckpointError", "Checkpointer", "RunConfig", "load_saved_config", "RunLogger", "TrainingDiverged", "check_finite"]
