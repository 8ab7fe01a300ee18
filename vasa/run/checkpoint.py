"""Full-state checkpoints with orbax: whatever pytree the algorithm keeps (params, optimiser
state, normaliser statistics, RNG key, counters, environment states, replay buffers).

orbax writes each checkpoint to a temporary directory and renames it when complete, so a
crash mid-save never touches the previous checkpoints; the last ``keep`` are kept.
"""

from __future__ import annotations

import os
from typing import Any

import jax


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or does not match the run being restored."""


class Checkpointer:
    """Save and restore whole training states under ``<run_dir>/checkpoints/<step>``.

    Args:
      run_dir: the run directory.
      keep: how many most recent checkpoints to keep (>= 1).
    """

    def __init__(self, run_dir: str, keep: int = 3):
        if int(keep) < 1:
            raise ValueError(f"keep_checkpoints={keep!r} is not allowed: it must be >= 1.")
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = os.path.abspath(os.path.join(run_dir, "checkpoints"))
        self._manager = ocp.CheckpointManager(
            self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=int(keep), create=True))

    def steps(self) -> list[int]:
        """Iterations that have a complete checkpoint, ascending."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, config: dict | None = None) -> None:
        """Write ``state`` (and the JSON-ready ``config`` it was trained with) as checkpoint
        ``step``, and wait until it is safely on disk."""
        args = {"state": self._ocp.args.StandardSave(_by_path(state))}
        if config is not None:
            args["config"] = self._ocp.args.JsonSave(config)
        self._manager.save(int(step), args=self._ocp.args.Composite(**args), force=True)
        self._manager.wait_until_finished()

    def config(self, step: int | None = None) -> dict | None:
        """The config saved with checkpoint ``step`` (default: the latest), or ``None``."""
        step = self._check_step(step)
        if not os.path.isdir(os.path.join(self.directory, str(step), "config")):
            return None
        return self._manager.restore(step, args=self._ocp.args.Composite(config=self._ocp.args.JsonRestore())).config

    def _check_step(self, step: int | None) -> int:
        steps = self.steps()
        if not steps:
            raise CheckpointError(f"no checkpoint found under {self.directory}: nothing to resume from.")
        step = steps[-1] if step is None else int(step)
        if step not in steps:
            raise CheckpointError(f"checkpoint step {step} not found under {self.directory}; available: {steps}.")
        return step

    def restore(self, target: Any, step: int | None = None) -> tuple[int, Any]:
        """Restore checkpoint ``step`` (default: the latest) into the structure, shapes,
        dtypes and shardings of ``target`` (a pytree of arrays or ``jax.ShapeDtypeStruct``).

        Returns ``(step, state)``. Raises :class:`CheckpointError` with the reason when there
        is no checkpoint, it cannot be read, or it does not match ``target``.
        """
        step = self._check_step(step)
        abstract = _by_path(jax.tree.map(_abstract, target))
        try:
            saved = self._manager.restore(
                step, args=self._ocp.args.Composite(state=self._ocp.args.StandardRestore(abstract))).state
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"checkpoint {self.directory}/{step} does not match this run's training state "
                f"(was it written with a different config or vasa version?): {e}") from e
        except Exception as e:  # orbax/tensorstore raise many types on unreadable files
            raise CheckpointError(f"checkpoint {self.directory}/{step} could not be read (corrupt or "
                                  f"incomplete): {type(e).__name__}: {e}") from e
        leaves, treedef = jax.tree_util.tree_flatten_with_path(target)
        state = [saved[_name(path)] if _name(path) in saved else _empty_like(leaf) for path, leaf in leaves]
        return step, jax.tree_util.tree_unflatten(treedef, state)

    def close(self) -> None:
        self._manager.close()


def _abstract(x):
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))


def _name(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator=".")


def _by_path(tree) -> dict:
    """Flat ``{"params.policy.Dense_0.kernel": leaf}`` of the non-empty leaves: orbax cannot
    store zero-size arrays (MJX ``Data`` has several), and names make mismatches readable."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {_name(path): leaf for path, leaf in leaves if 0 not in leaf.shape}


def _empty_like(leaf):
    import jax.numpy as jnp

    out = jnp.zeros(leaf.shape, leaf.dtype)
    sharding = getattr(leaf, "sharding", None)
    return jax.device_put(out, sharding) if sharding is not None else out
