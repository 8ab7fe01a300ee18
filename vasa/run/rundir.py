"""Run directories, and the rules that keep a run's data safe. Every trainer goes through here.

A run directory holds ``config.json`` (written before anything compiles), ``metrics.csv``,
``checkpoints/<step>/`` and ``learning_curve.png``. A trainer calls :func:`prepare_run` first
(which config and run settings the run uses, and may it use its directory), validates the
config, then enters :meth:`RunPlan.open` (take the directory over, choose the checkpoint), and
restores, logs and checkpoints through the :class:`RunSession` it yields::

    plan = prepare_run(config, run, "ppo", defaults=RunConfig())
    config, run = plan.config, plan.run
    config.validate()
    with plan.open() as session:
        start, state = session.restore(init(config))
        session.begin(total, start)
        for it, row in ...:
            session.check_finite(row, it)
            session.log(row)
            session.save(it, state)

The rules:

* A new run never replaces an existing run (``config.json``, ``metrics.csv`` or checkpoints
  in its directory) unless ``RunConfig.overwrite``. The directory and its ``checkpoints/``
  must be writable; both are checked before anything compiles.
* ``--resume DIR`` continues with the run's saved config and its saved run settings; run
  settings given explicitly (different from the trainer's default ``RunConfig``) override
  the saved ones, with a note. Per-invocation fields (:data:`PER_INVOCATION`) are never
  taken from the saved run.
* It continues from the newest intact checkpoint (or ``--resume-step N``). Damaged checkpoints
  newer than that are reported and moved to ``<run_dir>/damaged/``, intact newer ones (passed
  over by ``--resume-step``) to ``<run_dir>/superseded/``: nothing is deleted, and the run's
  own saves never meet an old step directory. A run stopped before its first checkpoint starts
  over from its saved config. The config in ``config.json`` must equal the checkpoint's.
* Partial saves left by a killed run are removed when a run starts or resumes.
* With several processes (:func:`vasa.dist.initialize`) every process opens the session and
  checkpoints its part of the state (orbax), and process 0 alone writes the directory's other
  files (``config.json``, ``metrics.csv``, checksums, the learning curve, the progress bar).
* While the session is open process 0 keeps ``heartbeat.json`` fresh, and writes
  ``finished.json`` when it closes normally and ``command.json`` (how the run was started) when
  it begins; ``vasa runs`` (:mod:`vasa.run.manager`) reads them (:mod:`vasa.run.status`).
  ``RunConfig.tensorboard`` adds TensorBoard event files of the logged rows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from collections.abc import Mapping
from typing import Any, Self

import jax
import numpy as np

from vasa.dist.distributed import barrier, cluster_environment, is_primary
from vasa.run.checkpoint import Checkpointer, CheckpointError, CorruptCheckpointError
from vasa.run.config import RunConfig, dataclass_from_dict
from vasa.run.logger import RunLogger, check_finite, config_to_dict, finish_run
from vasa.run.status import (
    COMMAND,
    FINISHED,
    Heartbeat,
    TensorBoardLog,
    layout_note,
    write_command,
    write_finished,
)

# RunConfig fields that belong to one invocation, never restored from a saved run
PER_INVOCATION = ("run_dir", "resume", "resume_step", "max_iterations", "num_devices", "progress", "overwrite")
# what a run writes into its directory (removed by --overwrite)
RUN_FILES = ("config.json", "metrics.csv", "checkpoints", "learning_curve.png", "superseded", "damaged",
             "heartbeat.json", "finished.json", "command.json", "tensorboard")


class RunDirectoryError(ValueError):
    """A run directory cannot be used as asked; the message says why and what to do instead."""


def run_data(run_dir: str) -> list[str]:
    """What of a run ``run_dir`` holds: ``config.json``, ``metrics.csv``, ``checkpoints/``
    (only when it holds something)."""
    out = [f for f in ("config.json", "metrics.csv") if os.path.exists(os.path.join(run_dir, f))]
    ck = os.path.join(run_dir, "checkpoints")
    if os.path.isdir(ck) and os.listdir(ck):
        out.append("checkpoints/")
    return out


def read_config_json(run_dir: str) -> dict:
    """``<run_dir>/config.json`` as a dict; the error says precisely what is missing or wrong."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        present = run_data(run_dir)
        if present:
            raise RunDirectoryError(
                f"cannot resume {run_dir}: its config.json is missing, although it holds {' and '.join(present)} of "
                f"a run (was config.json deleted or moved?).{_saved_config_hint(run_dir)}")
        raise FileNotFoundError(f"cannot resume: {path} does not exist (is {run_dir!r} a vasa run directory?).")
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunDirectoryError(f"cannot resume: {path} is not valid JSON/UTF-8 ({e}).{_saved_config_hint(run_dir)}") from e
    if not isinstance(saved, dict):
        raise RunDirectoryError(f"cannot resume: {path} holds a JSON {type(saved).__name__}, not the object of "
                                f"config sections vasa writes.{_saved_config_hint(run_dir)}")
    return saved


def _saved_config_hint(run_dir: str) -> str:
    ck = os.path.join(run_dir, "checkpoints")
    steps = sorted((int(n) for n in (os.listdir(ck) if os.path.isdir(ck) else []) if n.isdigit()
                    and os.path.isfile(os.path.join(ck, n, "config", "metadata"))), reverse=True)
    if not steps:
        return ""
    return (f" Each checkpoint keeps the config it was trained with: copy {ck}/{steps[0]}/config/metadata to "
            f"{run_dir}/config.json to resume.")


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What :func:`prepare_run` decided: the config and run settings to train with, the
    directory, and whether the run resumes (or replaces an existing run's data)."""

    config: Any
    run: RunConfig
    run_dir: str
    key: str
    resuming: bool
    replaces: tuple[str, ...] = ()

    def open(self) -> RunSession:
        """Take the run directory over (call it after validating the config, before compiling):
        check it is writable, (overwriting) delete the old run, remove partial saves,
        (resuming) choose the checkpoint and check config.json against it, write config.json."""
        return RunSession(self)


def prepare_run(config, run: RunConfig, key: str, defaults: RunConfig, prefix: str = "") -> RunPlan:
    """Decide which config and run settings a run uses and whether its directory may be used
    (see the module docstring for the rules), without writing anything.

    Args:
      config: the algorithm config given (ignored when resuming, with a note naming the
        fields that differ from the saved ones).
      run: the run settings given; ``run.validate()`` must have passed.
      key: the config's section in ``config.json`` (``"ppo"``, ``"sac"``, ``"video"``).
      defaults: the trainer's default ``RunConfig``: a field of ``run`` that differs from it
        was given explicitly and overrides the saved run setting when resuming.
      prefix: prefix of the default directory name ``runs/<prefix><env>-<time>``.
    """
    if run.resume:
        config, run = _saved_settings(config, run, key, defaults)
        return RunPlan(config, run, run.resume, key, resuming=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = run.run_dir or os.path.join("runs", f"{prefix}{config.env.replace('/', '-')}-{stamp}")
    present = tuple(run_data(run_dir))
    if present and not run.overwrite:
        raise RunDirectoryError(
            f"{run_dir} already holds a run ({', '.join(present)}); a new run would destroy it. Continue it with "
            f"--resume {run_dir} (RunConfig.resume), or pass --overwrite (RunConfig.overwrite=True) to replace it "
            "deliberately, or choose another --run-dir.")
    return RunPlan(config, run, run_dir, key, resuming=False, replaces=present)


def _saved_settings(config, run: RunConfig, key: str, defaults: RunConfig):
    """The saved algorithm config and the saved run settings (explicit ones override) of ``run.resume``."""
    run_dir = run.resume
    saved = read_config_json(run_dir)
    path = os.path.join(run_dir, "config.json")
    if key not in saved:
        raise RunDirectoryError(f"cannot resume: {path} holds no {key!r} section (written by another algorithm?).")
    cls = type(config)
    try:
        saved_config = dataclass_from_dict(cls, saved[key])
        saved_run = dataclass_from_dict(RunConfig, {k: v for k, v in saved.get("run", {}).items()
                                                    if k not in PER_INVOCATION})
    except (TypeError, ValueError) as e:
        raise RunDirectoryError(f"cannot resume: {path} does not hold a valid config: {e}") from e
    default = cls()
    ignored = [f.name for f in dataclasses.fields(cls) if getattr(saved_config, f.name) != getattr(config, f.name)
               and getattr(config, f.name) != getattr(default, f.name)]
    if ignored:
        print(f"resuming {run_dir} with its saved config; ignoring: {', '.join(ignored)}")
    if "run" not in saved:
        return saved_config, run
    kept, overridden = {}, []
    for f in dataclasses.fields(RunConfig):
        if f.name in PER_INVOCATION:
            continue
        given, old = getattr(run, f.name), getattr(saved_run, f.name)
        if given != getattr(defaults, f.name) and given != old:
            overridden.append(f"{f.name} {old!r} -> {given!r}")
        else:
            kept[f.name] = old
    if overridden:
        print(f"resuming {run_dir} with its saved run settings, except those given here: {', '.join(overridden)}")
    run = dataclasses.replace(run, **kept)
    run.validate()
    return saved_config, run


def _check_writable(run_dir: str) -> None:
    """Create ``run_dir`` and ``run_dir/checkpoints`` if needed and write a file in each."""
    for d in (run_dir, os.path.join(run_dir, "checkpoints")):
        if os.path.exists(d) and not os.path.isdir(d):
            raise RunDirectoryError(f"cannot write the run to {d}: it exists but is not a directory.")
        try:
            os.makedirs(d, exist_ok=True)
            probe = os.path.join(d, f".vasa-write-test-{os.getpid()}")
            with open(probe, "w") as f:
                f.write("ok")
            os.remove(probe)
        except OSError as e:
            raise RunDirectoryError(f"cannot write the run to {d}: {e.strerror or e} ({type(e).__name__}); fix its "
                                    "permissions or choose another --run-dir.") from e


def _write_json(path: str, data: dict) -> None:
    """Write ``data`` to ``path`` atomically (a kill leaves the old file or the new one)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunSession:
    """An open run directory: restore, log, check, checkpoint; closing it (the ``with``
    block's end, also on an error) closes the checkpointer and the logger, draws the learning
    curve and prints a summary line. Trainers set ``compile_s`` and add to ``wall``.

    With several processes every process opens it at the same point of the program; process
    0 (``primary``) writes the files, the others keep their rows in memory only."""

    def __init__(self, plan: RunPlan):
        # every process has judged the directory (prepare_run) before process 0 changes it
        barrier("vasa.run: directory checked")
        self.primary = is_primary()
        if self.primary:
            _check_writable(plan.run_dir)
        self.plan, self.config, self.run, self.run_dir = plan, plan.config, plan.run, plan.run_dir
        self.saved_config = {plan.key: config_to_dict(plan.config), "run": config_to_dict(plan.run)}
        self.logger: RunLogger | None = None
        self.rows: list[dict] = []
        self.compile_s, self.wall = 0.0, 0.0
        self.last_checkpoint: int | None = None  # the newest good checkpoint of this run
        self._step: int | None = None  # the checkpoint to restore
        self.heartbeat: Heartbeat | None = None  # (process 0)
        self.tensorboard: TensorBoardLog | None = None
        self.total: int | None = None
        self.iteration: int | None = None  # the last logged
        if plan.replaces and self.primary:
            for name in RUN_FILES:
                path = os.path.join(plan.run_dir, name)
                if os.path.isdir(path):
                    shutil.rmtree(path)
                elif os.path.exists(path):
                    os.remove(path)
            print(f"--overwrite: replaced the run in {plan.run_dir} (deleted its {', '.join(plan.replaces)})")
        barrier("vasa.run: directory ready")
        self.checkpointer = Checkpointer(plan.run_dir, keep=plan.run.keep_checkpoints)
        try:
            if self.primary:
                for name in self.checkpointer.remove_partial_saves():
                    print(f"removed the partial checkpoint {os.path.join(self.checkpointer.directory, name)} "
                          "(a save that never completed: the run was killed while saving)")
            if plan.resuming:  # every process makes the same choice (process 0 moves the files)
                self._choose()
            if self.primary:
                _write_json(os.path.join(plan.run_dir, "config.json"), self.saved_config)
                self._start_status()
        except BaseException:
            self.checkpointer.close()
            raise

    def _start_status(self) -> None:
        """(process 0) command.json, the heartbeat, the TensorBoard writer; a finished.json of
        an earlier invocation no longer holds once the run continues."""
        run_dir = self.run_dir
        finished = os.path.join(run_dir, FINISHED)
        if os.path.exists(finished):
            os.remove(finished)
        devices = self.run.num_devices or jax.device_count()  # the data mesh's size
        if self.plan.resuming:
            note = layout_note(run_dir, jax.process_count(), devices)
            if note:
                print(note)
        if not self.plan.resuming or not os.path.exists(os.path.join(run_dir, COMMAND)):
            write_command(run_dir, jax.process_count(), devices, cluster_environment())
        self.heartbeat = Heartbeat(run_dir, self.run.heartbeat_every, jax.process_count())
        self.tensorboard = TensorBoardLog(run_dir) if self.run.tensorboard else None

    # ------------------------------------------------------------------ choosing the checkpoint

    def _choose(self) -> None:
        ck, wanted = self.checkpointer, self.run.resume_step
        steps = ck.steps()
        if wanted is not None:
            if wanted not in steps:
                raise CheckpointError(f"--resume-step {wanted}: there is no checkpoint {wanted} under {ck.directory}; "
                                      f"available: {steps or 'none'}.")
            try:
                ck.check(wanted)  # an explicit choice fails when damaged
            except CorruptCheckpointError as e:
                raise self._explicit(e) from None
            self._step = wanted
        elif not steps:
            print(f"no checkpoint under {ck.directory} yet (the run stopped before its first checkpoint): starting "
                  f"{self.run_dir} over from its saved config")
            return
        else:
            self._step = self._newest_intact(below=None)
        self._check_config(self._step)
        for step in [s for s in ck.steps() if s > self._step]:  # (the automatic choice left none)
            try:
                ck.check(step)
            except CorruptCheckpointError as e:
                self._set_aside(step, e)
                continue
            moved = ck.move(step, os.path.join(self.run_dir, "superseded"))
            print(f"moved checkpoint {step} (newer than --resume-step {wanted}) to {moved}; the run continues "
                  f"from {wanted}")

    def _set_aside(self, step: int, error: CorruptCheckpointError) -> None:
        moved = self.checkpointer.move(step, os.path.join(self.run_dir, "damaged"))
        print(f"skipping checkpoint {step} (moved to {moved}): {error}")

    def _explicit(self, error: CorruptCheckpointError) -> CorruptCheckpointError:
        """``error`` for a checkpoint chosen with --resume-step: no fallback, but say what else there is."""
        wanted = self.run.resume_step
        others = [s for s in self.checkpointer.steps() if s != wanted]
        return CorruptCheckpointError(f"--resume-step {wanted} (other checkpoints: {others or 'none'}; without "
                                      f"--resume-step the newest intact one is used): {error}")

    def _newest_intact(self, below: int | None, damaged: tuple = ()) -> int:
        """The newest intact checkpoint (below ``below``). The damaged ones newer than it (and
        ``damaged``: ``(step, error)`` pairs found earlier) are set aside once one is found; a
        run with none keeps its files where they are and this raises, naming each problem."""
        ck, damaged = self.checkpointer, list(damaged)
        for step in reversed([s for s in ck.steps() if below is None or s < below]):
            try:
                ck.check(step)
            except CorruptCheckpointError as e:
                damaged.append((step, e))
                continue
            for bad, error in damaged:
                self._set_aside(bad, error)
            return step
        raise CheckpointError(f"no intact checkpoint under {ck.directory} to resume from (to train from scratch "
                              f"instead, start a new run with --run-dir {self.run_dir} --overwrite):\n  "
                              + "\n  ".join(str(e) for _, e in damaged))

    def _check_config(self, step: int) -> None:
        """config.json must hold the config the checkpoint was trained with."""
        key = self.plan.key
        saved = (self.checkpointer.config(step) or {}).get(key)
        if saved is None:
            return  # written before checkpoints carried their config
        here = self.saved_config[key]
        diff = [f"{key}.{f}: config.json {here.get(f, '<absent>')!r}, checkpoint {saved.get(f, '<absent>')!r}"
                for f in sorted(set(here) | set(saved)) if here.get(f, "<absent>") != saved.get(f, "<absent>")]
        if diff:
            raise CheckpointError(
                f"{self.run_dir}/config.json differs from the config saved with checkpoint {step} "
                f"({self.checkpointer.path(step)}/config), which its state was trained with. To resume, set these "
                "fields in config.json back to the checkpoint's values; to train with the edited values, start a new "
                "run (--run-dir <new directory>) instead:\n  " + "\n  ".join(diff))

    # ------------------------------------------------------------------ the trainer's calls

    def restore(self, state: Any) -> tuple[int, Any]:
        """``(start, state)``: the chosen checkpoint restored into the structure of ``state``,
        or ``(0, state)`` for a new run. A checkpoint that turns out damaged while being read
        is set aside and the next older intact one restored (unless --resume-step chose it)."""
        ck = self.checkpointer
        while self._step is not None:
            try:
                step, state = ck.restore(state, self._step)
            except CorruptCheckpointError as e:
                if self.run.resume_step is not None:
                    raise self._explicit(e) from e
                self._step = self._newest_intact(below=self._step, damaged=((self._step, e),))
                self._check_config(self._step)
                continue
            status = ck.check(step)
            how = "its SHA-256 sums match" if status == "verified" else "unverified: written without SHA-256 sums"
            print(f"resuming {self.run_dir} from checkpoint {step} ({how})")
            self.last_checkpoint = step
            return step, state
        return 0, state

    def begin(self, total: int, start: int, curve: Mapping[str, Any] | None = None) -> None:
        """Start logging (after compiling): metrics.csv continues after ``start``."""
        self.total, self.iteration = int(total), int(start)
        if self.heartbeat is not None:
            self.heartbeat.beat(total=self.total, iteration=self.iteration)
        if self.primary:
            self.logger = RunLogger(self.run_dir, total, start, self.run.progress, curve=curve)
            self.wall = self.logger.last_value("wall_time") if start else 0.0
        if start and jax.process_count() > 1:  # process 0 read it from metrics.csv (all take part)
            from jax.experimental import multihost_utils

            wall = float(multihost_utils.broadcast_one_to_all(np.float32(self.wall)))
            self.wall = self.wall if self.primary else wall

    def check_finite(self, metrics: Mapping[str, float], iteration: int, names=None) -> None:
        check_finite(metrics, iteration, names, checkpoint=self.last_checkpoint,
                     checkpoint_dir=self.checkpointer.directory)

    def log(self, row: dict) -> None:
        if self.logger is not None:
            self.logger.log(row)
            if self.tensorboard is not None:
                self.tensorboard.log(row)
        if "iteration" in row:
            self.iteration = int(row["iteration"])
            if self.heartbeat is not None:
                self.heartbeat.update(iteration=self.iteration)  # written by the heartbeat's thread
        self.rows.append(row)

    def save(self, iteration: int, state: Any) -> None:
        self.checkpointer.save(iteration, state, self.saved_config)
        self.last_checkpoint = iteration

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            finish_run(self.logger, self.checkpointer, self.rows, self.run_dir, self.compile_s, self.wall)
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
            if self.heartbeat is not None:
                if exc is None:
                    write_finished(self.run_dir, self.iteration, self.total)
                self.heartbeat.close(error=exc)
