"""Recorded demonstrations: roll a policy out on device, keep what restores each state, save
it as an ``.npz`` (no pickle) and load it back, validated.

:func:`record` runs any ``policy(obs) -> action`` (the scripted controllers of
:mod:`vasa.envs.tasks.manipulation.scripted`, a trained policy) over ``num_episodes``
vmapped environments in one jitted ``lax.scan`` and returns a :class:`Demos`: per step the
observation the policy saw, its action, the reward and success that followed, and the
physics state behind the observation (``qpos``, ``qvel``, ``act``, ``ctrl``,
``qacc_warmstart``), plus each episode's task parameters (``info["object"]``: the cube's
size, mass and friction, the door's pose). With ``successful_only`` (default) episodes that
never succeed are dropped and counted in ``Demos.num_dropped``.

Those states are what SURREAL's demonstration curriculum restarts from
(:class:`vasa.envs.curriculum.DemoCurriculum`, dissertation section 2.5.3); a task restores
one with ``state_from(qpos, qvel, ctrl, params, act, qacc_warmstart)``
(:meth:`vasa.envs.tasks.manipulation.base.ArmTask.state_from`). The ``joint_velocity``
controller's PID memory (``d.userdata``) is not recorded: a restored state starts with it at
zero, as after a reset.

File format (``Demos.save``/``Demos.load``): one ``.npz`` holding the arrays under their
field names, the task parameters under ``object/<name>`` and the metadata as 0-d arrays
under ``meta/<name>`` (``format``, ``env_id``, ``control``, ``dt``, ``vasa_version``,
``num_dropped``). Loading never unpickles (``allow_pickle=False``); saving never replaces an
existing file unless ``overwrite=True``.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = 1
STEP_FIELDS = ("obs", "action", "reward", "success", "qpos", "qvel", "act", "ctrl", "qacc_warmstart")
PHYSICS_FIELDS = ("qpos", "qvel", "act", "ctrl", "qacc_warmstart")
META_FIELDS = ("format", "env_id", "control", "dt", "vasa_version", "num_dropped")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("vasa")
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "unknown"


@dataclass(frozen=True, eq=False)
class Demos:
    """Demonstrations: NumPy arrays with leading axes ``[E episodes, T steps]``.

    Step ``t`` of episode ``e``: ``obs[e, t]`` (``float32 [O]``) is what the policy saw and
    ``action[e, t]`` (``float32 [A]``) what it did; ``reward[e, t]`` and ``success[e, t]``
    (``float32``) are the reward and success of the state that followed; ``qpos [nq]``,
    ``qvel [nv]``, ``act [na]``, ``ctrl [nu]`` and ``qacc_warmstart [nv]`` (``float32``) are
    the physics state behind ``obs[e, t]``. ``params`` maps each task parameter name to its
    per-episode values ``[E, ...]``. Metadata: ``env_id``, ``control`` (control mode), ``dt``
    (seconds per step), ``vasa_version`` (of the recording) and ``num_dropped`` (unsuccessful
    episodes left out by :func:`record`).
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    success: np.ndarray
    qpos: np.ndarray
    qvel: np.ndarray
    act: np.ndarray
    ctrl: np.ndarray
    qacc_warmstart: np.ndarray
    params: dict = field(default_factory=dict)
    env_id: str = ""
    control: str = ""
    dt: float = 0.0
    vasa_version: str = field(default_factory=_version)
    num_dropped: int = 0

    def __post_init__(self):
        for name in STEP_FIELDS:
            object.__setattr__(self, name, np.asarray(getattr(self, name)))
        object.__setattr__(self, "params", {k: np.asarray(v) for k, v in dict(self.params).items()})
        self.check_arrays()

    # ------------------------------------------------------------------ shape
    @property
    def num_episodes(self) -> int:
        return int(self.obs.shape[0])

    @property
    def length(self) -> int:
        """Steps per episode ``T``."""
        return int(self.obs.shape[1])

    @property
    def obs_size(self) -> int:
        return int(self.obs.shape[-1])

    @property
    def action_size(self) -> int:
        return int(self.action.shape[-1])

    def check_arrays(self) -> None:
        """Raise ``ValueError`` naming the first array whose rank, shape or dtype is wrong (data,
        not a config: no ``validate``, so the config fuzz test leaves it alone)."""
        if self.obs.ndim != 3:
            raise ValueError(f"Demos.obs has shape {self.obs.shape}: it must be [episodes, steps, obs_size].")
        lead = self.obs.shape[:2]
        ranks = {"action": 3, "reward": 2, "success": 2, "qpos": 3, "qvel": 3, "act": 3, "ctrl": 3, "qacc_warmstart": 3}
        for name, rank in ranks.items():
            a = getattr(self, name)
            if a.ndim != rank or a.shape[:2] != lead:
                want = f"[{lead[0]}, {lead[1]}" + (", n]" if rank == 3 else "]")
                raise ValueError(f"Demos.{name} has shape {a.shape}: it must be {want} like obs {self.obs.shape}.")
        if self.qacc_warmstart.shape != self.qvel.shape:
            raise ValueError(f"Demos.qacc_warmstart has shape {self.qacc_warmstart.shape}: it must match qvel "
                             f"{self.qvel.shape}.")
        for name in STEP_FIELDS:
            a = getattr(self, name)
            if not np.issubdtype(a.dtype, np.floating):
                raise ValueError(f"Demos.{name} has dtype {a.dtype}: it must be a float array.")
        for k, v in self.params.items():
            if v.ndim < 1 or v.shape[0] != lead[0]:
                raise ValueError(f"Demos.params[{k!r}] has shape {v.shape}: its first axis must be the "
                                 f"{lead[0]} episodes.")
        if not isinstance(self.env_id, str) or not isinstance(self.control, str):
            raise TypeError(f"Demos.env_id={self.env_id!r} and control={self.control!r} must be strings.")

    def summary(self) -> str:
        """One line: episodes kept and dropped, steps, successes."""
        ok = int(self.success.any(axis=1).sum()) if self.num_episodes else 0
        return (f"{self.env_id or '?'}: {self.num_episodes} episodes x {self.length} steps kept "
                f"({ok} successful, {self.num_dropped} dropped), control={self.control!r}, dt={self.dt:g} s")

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike, overwrite: bool = False) -> str:
        """Write an ``.npz`` (``.npz`` appended when missing); returns the path written.

        Raises ``FileExistsError`` if the file exists and ``overwrite`` is False (run data is
        never replaced silently)."""
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        arrays = {name: getattr(self, name) for name in STEP_FIELDS}
        arrays.update({f"object/{k}": v for k, v in self.params.items()})
        meta = {"format": FORMAT, "env_id": self.env_id, "control": self.control, "dt": float(self.dt),
                    "vasa_version": self.vasa_version, "num_dropped": int(self.num_dropped)}
        arrays.update({f"meta/{k}": np.asarray(v) for k, v in meta.items()})
        try:
            with open(path, "wb" if overwrite else "xb") as f:  # "x": exclusive creation, no race with another writer
                np.savez(f, **arrays)
        except FileExistsError:
            raise FileExistsError(f"{path!r} exists: demonstrations are not overwritten unless overwrite=True.") from None
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, env_id: str | None = None) -> Demos:
        """Read demonstrations written by :meth:`save`, checking every array.

        Args:
          path: the ``.npz`` file.
          env_id: when given, the environment the caller will use them with; a file recorded
            on another environment is refused.

        Raises:
          FileNotFoundError: no such file.
          ValueError: not an ``.npz`` archive, a missing key, a newer format, shapes that do
            not agree, or an ``env_id`` mismatch (the message names what differs).
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"demonstrations file {path!r} does not exist.")
        try:
            with np.load(path, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
            raise ValueError(f"{path!r} is not a readable demonstrations .npz ({type(e).__name__}: {e}).") from e
        missing = [k for k in (*STEP_FIELDS, *(f"meta/{m}" for m in META_FIELDS)) if k not in data]
        if missing:
            raise ValueError(f"{path!r} is not a vasa demonstrations file: missing {', '.join(missing)}.")
        if int(data["meta/format"]) > FORMAT:
            raise ValueError(f"{path!r} has format {int(data['meta/format'])}; this vasa reads format <= {FORMAT}.")
        meta = {m: data[f"meta/{m}"].item() for m in META_FIELDS if m != "format"}
        if env_id is not None and meta["env_id"] != env_id:
            raise ValueError(f"{path!r} holds demonstrations of env_id={meta['env_id']!r}, not {env_id!r}.")
        params = {k[len("object/"):]: v for k, v in data.items() if k.startswith("object/")}
        try:
            return cls(**{k: data[k] for k in STEP_FIELDS}, params=params, env_id=str(meta["env_id"]),
                       control=str(meta["control"]), dt=float(meta["dt"]), vasa_version=str(meta["vasa_version"]),
                       num_dropped=int(meta["num_dropped"]))
        except ValueError as e:
            raise ValueError(f"{path!r}: {e}") from e

    def steps_to_success(self) -> np.ndarray:
        """``int32 [E]``: per episode, the number of states up to and including the one whose
        action first led to success (``s + 1`` for the first ``success[e, s] > 0``; ``T`` for an
        episode that never succeeds). States ``0 .. s`` are the demonstration proper; what a
        fixed-length recording holds after them is the task already done (robosuite's human
        demonstrations stop there)."""
        hit = self.success > 0
        first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, self.length)
        return first.astype(np.int32)

    def lengths(self, until_success: bool = True) -> np.ndarray:
        """``int32 [E]``: the states of each episode that count as the demonstration:
        :meth:`steps_to_success` with ``until_success``, else every one of the ``T``."""
        if until_success:
            return self.steps_to_success()
        return np.full(self.num_episodes, self.length, np.int32)

    def successful(self) -> Demos:
        """The episodes that succeed at some step; the others are added to ``num_dropped``."""
        ok = self.success.max(axis=1, initial=0.0) > 0
        return dataclasses.replace(self.select(ok), num_dropped=self.num_dropped + int((~ok).sum()))

    def select(self, episodes) -> Demos:
        """A copy holding only ``episodes`` (indices or a boolean mask over ``E``)."""
        arrays = {name: getattr(self, name)[episodes] for name in STEP_FIELDS}
        return dataclasses.replace(self, **arrays, params={k: v[episodes] for k, v in self.params.items()})


load = Demos.load


def record(env_id_or_task, policy: Callable, key: jax.Array, num_episodes: int, episode_length: int, *,
           successful_only: bool = True, env_id: str | None = None, **make_kwargs) -> Demos:
    """Roll ``policy`` out and record demonstrations.

    The raw task (no wrappers: one policy action per task step, no time limit) runs
    ``num_episodes`` environments in parallel (``jax.vmap``) for ``episode_length`` steps in
    one jitted ``lax.scan``; environment ``i`` is reset with ``jax.random.split(key,
    num_episodes)[i]``.

    Args:
      env_id_or_task: a registered id (``"robo/lift"``) built with ``**make_kwargs`` by
        :func:`vasa.envs.make_raw`, or a task object (then pass ``env_id`` to name it).
      policy: ``policy(obs [O] float32) -> action [A]``, pure JAX (vmapped here).
      key: PRNG key ``uint32[2]``.
      num_episodes, episode_length: ``E >= 1`` episodes of ``T >= 1`` steps.
      successful_only: keep only episodes with ``success`` at some step (the dropped count is
        ``Demos.num_dropped``).
      env_id: the id stored with the demonstrations (default: ``env_id_or_task`` when it is
        a string).

    Returns:
      :class:`Demos` with arrays ``[E_kept, T, ...]``.
    """
    from vasa.envs.core import check_env_id, make_raw
    from vasa.envs.tasks.manipulation.base import _check_choice, _check_number

    _check_number("num_episodes", num_episodes, 1, integer=True)
    _check_number("episode_length", episode_length, 1, integer=True)
    _check_choice("successful_only", successful_only, (True, False))
    if isinstance(env_id_or_task, str):
        check_env_id(env_id_or_task)
        if env_id is not None and env_id != env_id_or_task:
            raise ValueError(f"env_id={env_id!r} is not allowed: it differs from the recorded {env_id_or_task!r}.")
        env_id, task = env_id_or_task, make_raw(env_id_or_task, **make_kwargs)
    else:
        if make_kwargs:
            raise ValueError(f"{sorted(make_kwargs)} are not allowed with a task object: they configure make_raw.")
        if not isinstance(env_id, str) or not env_id:
            raise ValueError(f"env_id={env_id!r} is not allowed: name the task's environment id (e.g. 'robo/lift') "
                             "when recording from a task object.")
        task = env_id_or_task

    @jax.jit
    def rollout(key):
        state = jax.vmap(task.reset)(jax.random.split(key, num_episodes))
        missing = [f for f in PHYSICS_FIELDS if not hasattr(state.physics, f)]
        if missing:
            raise ValueError(f"{env_id} cannot be recorded: its physics state ({type(state.physics).__name__}) has no "
                             f"{', '.join(missing)} (an MJX task such as robo/lift is needed).")

        def body(state, _):
            action = jax.vmap(policy)(state.obs).astype(jnp.float32)
            nxt = jax.vmap(task.step)(state, action)
            d = state.physics
            step = {"obs": state.obs, "action": action, "reward": nxt.reward, "success": nxt.metrics["success"],
                        "qpos": d.qpos, "qvel": d.qvel, "act": d.act, "ctrl": d.ctrl, "qacc_warmstart": d.qacc_warmstart}
            return nxt, step

        _, steps = jax.lax.scan(body, state, None, length=episode_length)
        steps = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), steps)  # [T, E, ...] -> [E, T, ...]
        return steps, state.info["object"]

    steps, params = jax.device_get(rollout(key))
    demos = Demos(**{k: np.asarray(v, np.float32) for k, v in steps.items()},
                  params={k: np.asarray(v) for k, v in params.items()}, env_id=env_id,
                  control=str(getattr(task, "control", "")), dt=float(getattr(task, "dt", 0.0)))
    return demos.successful() if successful_only else demos


__all__ = ["FORMAT", "Demos", "load", "record"]
