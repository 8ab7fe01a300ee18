"""Options of a training run that do not change the algorithm's results."""

from __future__ import annotations

import dataclasses
import time
import types
import typing
from dataclasses import dataclass

from vasa.run.fields import NonNegInt, PosInt, check_fields


@dataclass(frozen=True)
class RunConfig:
    """Where and how a run logs, evaluates and checkpoints."""

    run_dir: str | None = None
    """run directory (default: runs/<env>-<time>)"""
    resume: str | None = None
    """continue the run in this directory from its newest intact checkpoint, with its saved config and run settings
    (run settings given explicitly here override the saved ones)"""
    resume_step: NonNegInt | None = None
    """with --resume: continue from this checkpoint step instead of the newest intact one"""
    overwrite: bool = False
    """let a new run replace an existing run in run_dir (its checkpoints and metrics are deleted)"""
    eval_every: NonNegInt = 10
    """iterations between deterministic evaluations (0: only at the end)"""
    num_eval_envs: PosInt = 16
    """episodes per evaluation"""
    checkpoint_every: NonNegInt = 50
    """iterations between checkpoints (0: only at the end)"""
    keep_checkpoints: PosInt = 3
    """most recent checkpoints kept"""
    max_iterations: PosInt | None = None
    """stop after this many iterations in this invocation and checkpoint (continue with --resume)"""
    num_devices: PosInt | None = None
    """devices on the data mesh (default: all local devices)"""
    progress: bool = True
    """show a progress bar"""
    chunk: PosInt = 10
    """iterations per device call (one jitted loop, no host round trip between them);
    metrics, the progress bar and the NaN check update after each call, and calls end at
    evaluations, checkpoints and the end of the off-policy warm-up. 1: one iteration per
    call. (Off-policy pixel runs on a CPU always make one call per iteration.)"""
    heartbeat_every: PosInt = 30
    """seconds between rewrites of the run directory's heartbeat.json (from a background thread of
    process 0): `vasa runs list` reports a run whose heartbeat is 3 periods (at least 10 s) old as crashed"""
    tensorboard: bool = False
    """also write every logged metric as TensorBoard event files under <run_dir>/tensorboard (needs tensorboardX)"""

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field, its value and what is allowed."""
        check_fields(self)
        require(self, self.resume_step is None or self.resume is not None, "resume_step",
                "it needs --resume <run directory> (or None)")
        require(self, not (self.overwrite and self.resume), "overwrite",
                "it cannot be combined with --resume (resuming continues a run; overwriting replaces it)")
        if self.tensorboard:
            import importlib.util

            require(self, importlib.util.find_spec("tensorboardX") is not None, "tensorboard",
                    "True needs the tensorboardX package (pip install tensorboardX), which is not installed")


def require(config, ok: bool, field: str, allowed: str) -> None:
    """Raise ``ValueError("<Config>.<field>=<value> is not allowed: <allowed>.")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{type(config).__name__}.{field}={getattr(config, field)!r} is not allowed: {allowed}.")


def dataclass_from_dict(cls, data: dict):
    """Rebuild a config dataclass from its JSON dict (lists become tuples where the field is
    a tuple; dicts of nested config dataclasses are rebuilt the same way). Raises
    ``ValueError`` naming unknown fields."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {', '.join(unknown)} (saved by a different vasa version?).")
    hints = typing.get_type_hints(cls)
    out = {}
    for k, v in data.items():
        hint = hints[k]
        origins = {typing.get_origin(a) for a in typing.get_args(hint)} | {typing.get_origin(hint)}
        is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        if isinstance(v, list) and (tuple in origins or (is_union and tuple in origins)):
            v = tuple(v)
        nested = [a for a in (hint, *typing.get_args(hint)) if isinstance(a, type) and dataclasses.is_dataclass(a)]
        if isinstance(v, dict) and nested:
            v = dataclass_from_dict(nested[0], v)
        out[k] = v
    return cls(**out)


def chunk_plan(start: int, stop: int, chunk: int, every: tuple[int | tuple[int, int], ...] = ()) -> list[int]:
    """Iteration counts of the device calls that take a run from ``start`` to ``stop``
    iterations: at most ``chunk`` each, and every multiple of each non-zero ``every`` ends a
    call (so evaluations and checkpoints see the state of exactly that iteration). An entry
    ``(period, phase)`` ends calls at ``phase + k * period`` instead.

    >>> chunk_plan(0, 25, 10, every=(10, 0))
    [10, 10, 5]
    >>> chunk_plan(3, 25, 10, every=(4,))
    [1, 4, 4, 4, 4, 4, 1]
    >>> chunk_plan(0, 12, 10, every=((5, 1),))
    [1, 5, 5, 1]
    """
    counts, it = [], start
    while it < stop:
        n = min(chunk, stop - it)
        for e in every:
            period, phase = e if isinstance(e, tuple) else (e, 0)
            if period:
                n = min(n, period - (it - phase) % period)
        counts.append(n)
        it += n
    return counts


def chunked_iterations(call, state, start: int, plan: list[int]):
    """Drive a chunked training step over ``plan`` (from :func:`chunk_plan`).

    ``call(state, count, done) -> (state, metrics)`` runs ``count`` iterations after ``done``
    completed ones and returns metrics stacked ``[K, ...]`` (a dict of arrays). Yields
    ``(state, iteration, values, seconds)`` once per iteration: ``values`` maps each metric
    to its row's mean (over seeds) as a float, ``seconds`` is the call's time per iteration,
    and ``state`` is the state after the call; that is the iteration's own state at the
    last iteration of a call, which is where ``chunk_plan`` puts evaluations and
    checkpoints.
    """
    import numpy as np

    it = start
    for count in plan:
        t = time.perf_counter()
        state, metrics = call(state, count, it)
        metrics = {k: np.asarray(v) for k, v in metrics.items()}  # waits for the call
        seconds = (time.perf_counter() - t) / count
        for j in range(count):
            it += 1
            yield state, it, {k: float(np.mean(v[j])) for k, v in metrics.items()}, seconds
