"""SECANT's navigation protocol: 1 training room, 10 easy and 10 hard held-out rooms.

SECANT (thesis ch. 5, sec. "iGibson"; table 5.8): "1 training room and 20 test rooms, which
include distinct furniture, layout, and interior design from training ... 2 difficulty
levels with 10 rooms each, depending on the extent of visual shift ... We evaluate on each
test room for 20 episodes and report success rates". The task is ObjectNav to a lamp
(:class:`~vasa.envs.tasks.navigation.objectnav.ObjectNav`).

Here a *room* is one apartment layout with one look:

* ``train``: training layout ``train_layout`` (seed below
  :data:`~vasa.envs.scenes.apartment.HELDOUT_SEED_OFFSET`) with the model's own look;
* ``easy`` (``num_easy`` rooms): held-out layouts (seeds ``HELDOUT_SEED_OFFSET + i``) with
  new colours only (:data:`EASY`: every wall, floor, furniture and lamp colour drawn anew);
* ``hard`` (``num_hard`` rooms): the next held-out layouts (seeds ``HELDOUT_SEED_OFFSET +
  num_easy + i``) with new colours, procedural textures on objects and floor, and new
  lighting (:data:`HARD`: light direction, diffuse and ambient strength).

Looks come from disjoint key ranges too (easy: ``fold_in(PRNGKey(look_seed), i)``; hard:
``fold_in(PRNGKey(look_seed + 1), i)``; the look seeds default to
``HELDOUT_SEED_OFFSET`` and above). All rooms share one apartment family (room sizes and
furniture sizes; the layouts differ in walls, doors, furniture placement and lamp) and so
one compiled model: the looks are :class:`~vasa.envs.render.Appearance` data and the layout
an index, both arguments of one jitted evaluation, so the 21 rooms cost one compilation.

:func:`secant_protocol` returns a :class:`ProtocolResult`: one row per room (mean and
standard deviation over its episodes of success, SPL where the task defines it, NaN for
ObjectNav, return and length) and one summary per level (mean and standard deviation over
the level's rooms of the per-room means, as SECANT reports), writable as CSV.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import os
from collections.abc import Callable

import jax
import numpy as np

from vasa.envs.randomize import (
    AppearanceRandomization,
    SceneGroups,
    randomize_appearance,
)
from vasa.envs.scenes.apartment import HELDOUT_SEED_OFFSET
from vasa.envs.tasks.navigation.evaluate import _run
from vasa.envs.tasks.navigation.objectnav import ObjectNav

LEVELS = ("train", "easy", "hard")
EASY = AppearanceRandomization(name="nav_easy", agent_color="uniform", floor_color="uniform", static_color="uniform")
HARD = AppearanceRandomization(name="nav_hard", agent_color="uniform", floor_color="uniform", static_color="uniform",
                               agent_texture_prob=0.7, floor_texture="random", light_dir_jitter_deg=60.0,
                               light_intensity=(0.4, 1.6), ambient=(0.4, 1.6))
METRICS = ("success", "spl", "return", "length")
COLUMNS = ("level", "room", "layout_seed", "episodes") + tuple(f"{m}_{s}" for m in METRICS for s in ("mean", "std"))


@dataclasses.dataclass(frozen=True)
class Room:
    """One evaluation room: ``level`` (``train``/``easy``/``hard``), its index in the level,
    the layout's index in the env (``layout``) and seed, and the look key's seed and index."""

    level: str
    index: int
    layout: int
    layout_seed: int
    look_seed: int


def _count(name, value, lo, hi):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{name}={value!r} is not allowed: it must be an integer in [{lo}, {hi}].")
    return int(value)


def protocol_env(*, num_easy: int = 10, num_hard: int = 10, train_layout: int = 0, look_seed: int = HELDOUT_SEED_OFFSET,
                 **env_kwargs) -> tuple[ObjectNav, list[Room]]:
    """The protocol's env (one :class:`ObjectNav` holding all rooms' layouts) and its rooms.

    ``num_easy``, ``num_hard``: held-out rooms per level (0-100); ``train_layout``: the
    training room's layout seed; ``look_seed``: first look seed of the held-out levels
    (>= ``HELDOUT_SEED_OFFSET``); ``env_kwargs`` go to :class:`ObjectNav` (the training
    family: ``rows``, ``cols``, ``family_seed``, ``image_size``...).
    """
    num_easy = _count("num_easy", num_easy, 0, 100)
    num_hard = _count("num_hard", num_hard, 0, 100)
    train_layout = _count("train_layout", train_layout, 0, HELDOUT_SEED_OFFSET - 1)
    look_seed = _count("look_seed", look_seed, HELDOUT_SEED_OFFSET, 2**31 - 2)
    for key in ("layout_seeds", "split", "num_layouts", "layout_start"):
        if key in env_kwargs:
            raise ValueError(f"{key}={env_kwargs[key]!r} is not allowed here: the protocol chooses the layouts "
                             "(num_easy, num_hard, train_layout).")
    seeds = [train_layout] + [HELDOUT_SEED_OFFSET + i for i in range(num_easy + num_hard)]
    env = ObjectNav(layout_seeds=seeds, **env_kwargs)
    rooms = [Room("train", 0, 0, train_layout, -1)]
    rooms += [Room("easy", i, 1 + i, seeds[1 + i], look_seed) for i in range(num_easy)]
    rooms += [Room("hard", i, 1 + num_easy + i, seeds[1 + num_easy + i], look_seed + 1) for i in range(num_hard)]
    return env, rooms


def room_appearance(env: ObjectNav, room: Room):
    """The look of ``room`` (an :class:`~vasa.envs.render.Appearance`): the model's own for
    ``train``, a draw of :data:`EASY`/:data:`HARD` from the room's key otherwise."""
    if room.level == "train":
        return env.base_appearance
    spec = EASY if room.level == "easy" else HARD
    key = jax.random.fold_in(jax.random.PRNGKey(room.look_seed), room.index)
    return randomize_appearance(key, env.base_appearance, spec, SceneGroups.from_model(env.mj_model))


@functools.lru_cache(maxsize=8)
def room_runner(env: ObjectNav, policy: Callable, episodes: int, steps: int) -> Callable:
    """``run(key, layout, appearance)``: ``episodes`` episodes of at most ``steps`` steps in
    one room, jitted once per (env, policy, episodes, steps) and shared by every room.
    Returns per-episode arrays ``[episodes]`` and per-step traces (see
    :func:`~vasa.envs.tasks.navigation.evaluate.evaluate`)."""
    return _run(env, policy, int(episodes), int(steps), reset=env.reset_room)


@dataclasses.dataclass
class ProtocolResult:
    """``rows``: one dict per room (keys :data:`COLUMNS`); ``summary``: ``{level: {metric:
    (mean, std)}}`` over the level's rooms; ``episodes``: ``{(level, room): {metric: float
    [episodes]}}`` (NumPy) plus ``"trace"`` (per-step arrays ``[steps, episodes]``)."""

    rows: list
    summary: dict
    episodes: dict

    def to_csv(self, path: str | os.PathLike) -> None:
        """Write the per-room rows, then one ``level="<level>", room="all"`` row per level."""
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS)
            w.writeheader()
            for r in self.rows:
                w.writerow(r)
            for level, stats in self.summary.items():
                n = sum(r["episodes"] for r in self.rows if r["level"] == level)
                row = {"level": level, "room": "all", "layout_seed": "", "episodes": n}
                for m in METRICS:
                    row[f"{m}_mean"], row[f"{m}_std"] = stats[m]
                w.writerow(row)

    def __str__(self) -> str:
        lines = [f"{'level':<6} {'rooms':>5} {'success':>15} {'spl':>15} {'return':>15}"]
        for level, stats in self.summary.items():
            k = sum(r["level"] == level for r in self.rows)
            cells = [f"{stats[m][0]:.3f} +- {stats[m][1]:.3f}" for m in ("success", "spl", "return")]
            lines.append(f"{level:<6} {k:>5} " + " ".join(f"{c:>15}" for c in cells))
        return "\n".join(lines)


def secant_protocol(policy: Callable, key: jax.Array, *, num_easy: int = 10, num_hard: int = 10, episodes: int = 20,
                    max_steps: int | None = None, policy_needs_env: bool = False, env: ObjectNav | None = None,
                    rooms: list | None = None, **env_kwargs) -> ProtocolResult:
    """Evaluate ``policy`` with SECANT's navigation protocol (see the module docstring).

    Args:
      policy: ``policy(obs, key, state) -> action [2]`` for one environment, or with
        ``policy_needs_env=True`` a function ``policy(env)`` making one (scripted policies).
      key: PRNG key; room ``i`` uses ``fold_in(key, i)`` (the same starts for every policy).
      num_easy, num_hard: held-out rooms per level (SECANT: 10 each).
      episodes: per room (SECANT: 20). max_steps: per episode (default the env's 500).
      env, rooms: a prebuilt ``protocol_env(...)`` pair (else built from ``num_easy``,
        ``num_hard`` and ``env_kwargs``).

    Returns:
      A :class:`ProtocolResult`.
    """
    episodes = _count("episodes", episodes, 1, 100_000)
    if max_steps is not None:
        max_steps = _count("max_steps", max_steps, 1, 10**7)
    if (env is None) != (rooms is None):
        raise ValueError("env and rooms are not allowed one without the other: pass both (from protocol_env) or neither.")
    if env is None:
        env, rooms = protocol_env(num_easy=num_easy, num_hard=num_hard, **env_kwargs)
    steps = int(max_steps or env.default_episode_length)
    act = policy(env) if policy_needs_env else policy
    run = room_runner(env, act, episodes, steps)
    rows, per_room = [], {}
    for i, room in enumerate(rooms):
        out = jax.device_get(run(jax.random.fold_in(key, i), np.int32(room.layout), room_appearance(env, room)))
        trace = out.pop("trace")
        res = {m: np.asarray(out[m], np.float64) for m in METRICS}
        if not getattr(env, "has_spl", False):
            res["spl"] = np.full(episodes, np.nan)  # SPL needs a goal position: ObjectNav has none
        per_room[(room.level, room.index)] = {**res, "trace": trace}
        row = {"level": room.level, "room": room.index, "layout_seed": room.layout_seed, "episodes": episodes}
        for m in METRICS:
            row[f"{m}_mean"], row[f"{m}_std"] = float(res[m].mean()), float(res[m].std())
        rows.append(row)
    summary = {}
    for level in LEVELS:
        means = {m: np.array([r[f"{m}_mean"] for r in rows if r["level"] == level]) for m in METRICS}
        if len(means["success"]):
            summary[level] = {m: (float(v.mean()), float(v.std())) for m, v in means.items()}
    return ProtocolResult(rows, summary, per_room)
