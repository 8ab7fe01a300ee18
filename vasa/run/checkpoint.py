"""Full-state checkpoints with orbax: whatever pytree the algorithm keeps (params, optimiser
state, normaliser statistics, RNG key, counters, environment states, replay buffers).

orbax writes each checkpoint to a temporary directory (``<step>.orbax-checkpoint-tmp*``) and
renames it when complete, so a crash mid-save never touches the previous checkpoints; the last
``keep`` are kept. Once a save is complete its files get SHA-256 sums (see
:mod:`vasa.run.integrity`), checked before every restore. Saves are synchronous: a save that
fails raises here (the manager is closed first) instead of leaving orbax threads waiting.

With several processes (``jax.distributed``) every process calls :meth:`Checkpointer.save`
and :meth:`Checkpointer.restore` together: orbax writes each process's shards and process 0
the metadata (and here the SHA-256 sums); a restore reads each process's shards into the
target's shardings.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil
import sys
from typing import Any

import jax
import numpy as np

from vasa.dist.distributed import barrier
from vasa.run.integrity import IntegrityError, check_step_dir, write_checksums

PARTIAL = ".orbax-checkpoint-tmp"  # orbax's suffix of a save in progress


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, could not be written, or does not match the run
    being restored."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint's files are damaged or incomplete (as opposed to a config mismatch)."""


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
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=int(keep), create=True, enable_async_checkpointing=False),
            item_handlers={"state": ocp.StandardCheckpointHandler(), "config": ocp.JsonCheckpointHandler()})
        self._checked: dict[int, str] = {}  # step -> "verified" / "unverified", this process's checks

    def path(self, step: int) -> str:
        return os.path.join(self.directory, str(int(step)))

    def steps(self) -> list[int]:
        """Iterations that have a checkpoint directory, ascending (intact or not: see :meth:`check`)."""
        return sorted(self._open().all_steps())

    def save(self, step: int, state: Any, config: dict | None = None) -> None:
        """Write ``state`` (and the JSON-ready ``config`` it was trained with) as checkpoint
        ``step``, wait until it is on disk, then write its SHA-256 sums.

        Raises :class:`CheckpointError` (after closing this checkpointer) when it cannot be written.
        """
        args = {"state": self._ocp.args.StandardSave(_by_path(state))}
        if config is not None:
            args["config"] = self._ocp.args.JsonSave(config)
        try:
            self._open().save(int(step), args=self._ocp.args.Composite(**args), force=True)
            self._open().wait_until_finished()
            if jax.process_index() == 0:
                write_checksums(self.path(step))
        except Exception as e:
            self.close()
            raise CheckpointError(f"could not write checkpoint {self.path(step)}: {type(e).__name__}: "
                                  f"{_first_line(e)}") from e
        self._checked[int(step)] = "verified"

    def check(self, step: int) -> str:
        """``"verified"`` (its SHA-256 sums match) or ``"unverified"`` (written without sums,
        its files look complete). Raises :class:`CorruptCheckpointError` otherwise."""
        step = int(step)
        if step not in self._checked:
            try:
                self._checked[step] = check_step_dir(self.path(step))
            except IntegrityError as e:
                raise CorruptCheckpointError(f"corrupt or incomplete checkpoint at {self.path(step)}: {e}") from None
        return self._checked[step]

    def config(self, step: int | None = None) -> dict | None:
        """The config saved with checkpoint ``step`` (default: the latest), or ``None``."""
        step = self._check_step(step)
        if not os.path.isdir(os.path.join(self.path(step), "config")):
            return None
        self.check(step)
        _quiet_abandoned_reads()
        try:
            return self._open().restore(step, args=self._ocp.args.Composite(
                config=self._ocp.args.JsonRestore())).config
        except Exception as e:
            raise CorruptCheckpointError(f"corrupt or incomplete checkpoint at {self.path(step)}: its config "
                                         f"could not be read ({type(e).__name__}: {_first_line(e)})") from e

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

        Returns ``(step, state)``. Raises :class:`CheckpointError` when there is no such
        checkpoint or it does not match ``target`` (naming each differing array), and
        :class:`CorruptCheckpointError` when its files are damaged or incomplete.
        """
        step = self._check_step(step)
        self.check(step)
        abstract = _by_path(jax.tree.map(_abstract, target))
        _quiet_abandoned_reads()
        self._check_shapes(step, abstract)
        try:
            saved = self._open().restore(
                step, args=self._ocp.args.Composite(state=self._ocp.args.StandardRestore(abstract))).state
        except Exception as e:  # shapes matched, so a failure here is a damaged file
            gc.collect()  # asyncio reports the abandoned reads now (quietly), not after this error
            raise CorruptCheckpointError(f"corrupt or incomplete checkpoint at {self.path(step)}: orbax could not "
                                         f"read it ({type(e).__name__}: {_first_line(e)})") from e
        leaves, treedef = jax.tree_util.tree_flatten_with_path(target)
        state = [saved[_name(path)] if _name(path) in saved else _empty_like(leaf) for path, leaf in leaves]
        return step, jax.tree_util.tree_unflatten(treedef, state)

    def _check_shapes(self, step: int, abstract: dict) -> None:
        """Compare the saved arrays' names, shapes and dtypes with ``abstract`` (orbax's own
        message names neither and suggests ``strict=False``, which would hide the mismatch)."""
        try:
            meta = self._open().item_metadata(step)["state"]
            saved = {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in meta.items()}
        except Exception as e:
            gc.collect()
            raise CorruptCheckpointError(f"corrupt or incomplete checkpoint at {self.path(step)}: its array metadata "
                                         f"could not be read ({type(e).__name__}: {_first_line(e)})") from e
        expected = {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in abstract.items()}
        problems = [f"{k}: saved {_fmt(saved[k])}, expected {_fmt(expected[k])}"
                    for k in sorted(expected) if k in saved and saved[k] != expected[k]]
        missing = sorted(set(expected) - set(saved))
        extra = sorted(set(saved) - set(expected))
        problems += [f"{k}: not in the checkpoint (expected {_fmt(expected[k])})" for k in missing]
        problems += [f"{k}: saved {_fmt(saved[k])}, not in this run's state" for k in extra]
        if problems:
            shown = problems[:12] + ([f"... and {len(problems) - 12} more"] if len(problems) > 12 else [])
            raise CheckpointError(
                f"checkpoint {self.path(step)} does not match this run's training state ({len(problems)} of "
                f"{len(set(expected) | set(saved))} arrays differ; was it written with a different config or vasa "
                "version?):\n  " + "\n  ".join(shown))

    def remove_partial_saves(self) -> list[str]:
        """Delete the temporary directories of saves that never completed (left by a killed
        run; orbax ignores them but never removes them) and return their names."""
        names = sorted(n for n in os.listdir(self.directory) if PARTIAL in n) if os.path.isdir(self.directory) else []
        for name in names:
            path = os.path.join(self.directory, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        return names

    def move(self, step: int, destination: str) -> str:
        """Move checkpoint ``step`` to ``destination/<step>`` (out of this run's checkpoints).
        With several processes all call it together and process 0 moves the files."""
        barrier("vasa.run: before moving a checkpoint")
        target = os.path.join(destination, str(int(step)))
        suffix = 1
        while os.path.exists(target):
            target, suffix = os.path.join(destination, f"{int(step)}.{suffix}"), suffix + 1
        if jax.process_index() == 0:
            os.makedirs(destination, exist_ok=True)
            shutil.move(self.path(step), target)
        barrier("vasa.run: checkpoint moved")
        self._checked.pop(int(step), None)
        self._open().reload()
        return target

    def _open(self):
        if self._manager is None:
            raise CheckpointError(f"the checkpointer of {self.directory} is closed (a save failed or the run ended)")
        return self._manager

    def close(self) -> None:
        """Close the orbax manager (idempotent)."""
        manager, self._manager = self._manager, None
        if manager is not None:
            manager.close()



def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:500] if text else type(e).__name__


def _fmt(shape_dtype) -> str:
    shape, dtype = shape_dtype
    return f"{dtype}[{', '.join(map(str, shape))}]"


class _OrbaxReadNoise(logging.Filter):
    """Drops asyncio's reports about the reads orbax abandoned after one failed."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Task exception was never retrieved", "Task was destroyed but it is"))


def _quiet_abandoned_reads() -> None:
    """Keep the reports of reads orbax abandons from burying a read error.

    orbax reads arrays with many concurrent tensorstore reads inside a private asyncio loop;
    when one read fails, ``asyncio.gather`` returns at once and orbax closes the loop. Each
    read still in flight then reports an unraisable "RuntimeError: Event loop is closed" from
    its done-callback (``loop.call_soon_threadsafe`` on the closed loop), and asyncio logs each
    failed or pending task it garbage-collects: dozens of tracebacks, printed after the real
    error. Installed before orbax reads (once per process), this drops exactly those reports;
    anything else still reaches the previous hook and asyncio's logger.
    """
    if getattr(sys.unraisablehook, "drops_closed_loop_callbacks", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        exc, tb = unraisable.exc_value, unraisable.exc_traceback
        frames = []
        while tb is not None:
            frames.append(tb.tb_frame.f_code.co_name)
            tb = tb.tb_next
        if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed" and "call_soon_threadsafe" in frames:
            return
        previous(unraisable)

    hook.drops_closed_loop_callbacks = True
    sys.unraisablehook = hook
    logging.getLogger("asyncio").addFilter(_OrbaxReadNoise())


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
