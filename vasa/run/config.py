"""Options of a training run that do not change the algorithm's results."""

from __future__ import annotations

import dataclasses
import json
import os
import time
import types
import typing
from dataclasses import dataclass


@dataclass(frozen=True)
class RunConfig:
    """Where and how a run logs, evaluates and checkpoints."""

    run_dir: str | None = None
    """run directory (default: runs/<env>-<time>)"""
    resume: str | None = None
    """continue the run in this directory from its latest checkpoint, with its saved config"""
    eval_every: int = 10
    """iterations between deterministic evaluations (0: only at the end)"""
    num_eval_envs: int = 16
    """episodes per evaluation"""
    checkpoint_every: int = 50
    """iterations between checkpoints (0: only at the end)"""
    keep_checkpoints: int = 3
    """most recent checkpoints kept"""
    max_iterations: int | None = None
    """stop after this many iterations in this invocation and checkpoint (continue with --resume)"""
    num_devices: int | None = None
    """devices on the data mesh (default: all local devices)"""
    progress: bool = True
    """show a progress bar"""
    chunk: int = 10
    """iterations per device call (one jitted loop, no host round trip between them);
    metrics, the progress bar and the NaN check update after each call, and calls end at
    evaluations, checkpoints and the end of the off-policy warm-up. 1: one iteration per
    call. (Off-policy pixel runs on a CPU always make one call per iteration.)"""

    def validate(self) -> None:
        for field, low in (("eval_every", 0), ("num_eval_envs", 1), ("checkpoint_every", 0), ("keep_checkpoints", 1),
                           ("chunk", 1)):
            if getattr(self, field) < low:
                raise ValueError(f"RunConfig.{field}={getattr(self, field)!r} is not allowed: it must be >= {low}.")
        if self.max_iterations is not None and self.max_iterations < 1:
            raise ValueError(f"RunConfig.max_iterations={self.max_iterations!r} is not allowed: it must be >= 1 (or None).")
        if self.num_devices is not None and self.num_devices < 1:
            raise ValueError(f"RunConfig.num_devices={self.num_devices!r} is not allowed: it must be >= 1 (or None).")


def require(config, ok: bool, field: str, allowed: str) -> None:
    """Raise ``ValueError("<Config>.<field>=<value> is not allowed: <allowed>.")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{type(config).__name__}.{field}={getattr(config, field)!r} is not allowed: {allowed}.")


def dataclass_from_dict(cls, data: dict):
    """Rebuild a config dataclass from its JSON dict (lists become tuples where the field is
    a tuple). Raises ``ValueError`` naming unknown fields."""
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
        out[k] = v
    return cls(**out)


def load_saved_config(run_dir: str, key: str, cls):
    """The ``key`` section of ``<run_dir>/config.json`` as a ``cls`` instance."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"cannot resume: {path} does not exist (is {run_dir!r} a vasa run directory?).")
    with open(path) as f:
        saved = json.load(f)
    if key not in saved:
        raise ValueError(f"cannot resume: {path} holds no {key!r} section (written by another algorithm?).")
    return dataclass_from_dict(cls, saved[key])


def resolve_run(config, run: RunConfig, key: str, prefix: str = ""):
    """``(config, run_dir)`` for a training run: with ``run.resume``, the saved ``key``
    section of that run's config (a note lists the fields given here that it overrides) and
    its directory; otherwise ``config`` and ``run.run_dir`` or ``runs/<prefix><env>-<time>``."""
    cls = type(config)
    if run.resume:
        saved = load_saved_config(run.resume, key, cls)
        default = cls()
        changed = [f.name for f in dataclasses.fields(cls)
                   if getattr(saved, f.name) != getattr(config, f.name) and getattr(config, f.name) != getattr(default, f.name)]
        if changed:
            print(f"resuming {run.resume} with its saved config; ignoring: {', '.join(changed)}")
        return saved, run.resume
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return config, run.run_dir or os.path.join("runs", f"{prefix}{config.env.replace('/', '-')}-{stamp}")


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
