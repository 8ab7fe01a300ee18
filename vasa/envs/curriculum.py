"""SURREAL's demonstration curriculum: start some episodes from states of successful
demonstrations (dissertation section 2.5.3, following Nair et al. 2018).

"With some probability alpha, we initialize episodes with states taken along successful
trajectories from the demonstrations": ``ratio`` is alpha, drawn per environment at every
reset from the reset's key; the other resets are the task's own. Where along the
demonstrations, by ``mode``:

* ``uniform``: any state of any demonstration (episode uniform, then step uniform within it);
* ``forward``: a uniform episode and a step in ``[0, W)``, a window at the *start* of the
  demonstrations that grows as training goes on;
* ``reverse``: a step in ``[T - W, T)``, a window at the *end* (the goal) growing backwards
  towards the start.

``T`` is each demonstration's own length. With ``until_success=True`` (default) a demonstration
ends at the state whose action first succeeded (:meth:`~vasa.envs.demos.Demos.steps_to_success`):
robosuite's human demonstrations stop recording there, while vasa's scripted recordings have a
fixed length and run on with the task done. Sampled uniformly over such a recording, most robo/stack
starts were already stacked (the scripted stack first succeeds at step 45-92 of 120, median 55)
and a PPO run trained on them returned ~1 of 200 from fresh starts (leaving a stacked cube alone
earns the most there); ``until_success=False`` samples the whole recording.

Schedule (robosuite's ``DemoSamplerWrapper``, whose defaults are kept): ``W = min(T, window +
increment * (n // increment_every))`` with ``window = 25``, ``increment = 25``,
``increment_every = 100`` and ``n`` the number of episodes *this environment slot* has
started from a demonstration so far (in SURREAL each actor process counted its own samples;
here each vmapped environment is such an actor). ``n`` lives in the batched state as
``info["demo_resets"]`` (``int32``), kept by :class:`DemoProgress` above the auto-reset
wrapper; :func:`vasa.envs.make` adds it when ``demos`` are given. Without it (a bare
``reset``) ``n = 0``: the initial window.

Growth by success (vasa's addition; ``grow_at > 0``, ``forward``/``reverse`` only): the window
grows only when the agent masters its frontier, as Florensa et al.'s reverse curriculum (2017) and
Salimans and Chen's start-from-a-demonstration (2018) move the start back once the agent succeeds
from it. The frontier is the ``increment`` steps the window gained last (in ``reverse``, its
states furthest from success; ``forward``: nearest to it): half of the demonstration starts
(:data:`FRONTIER_SHARE`) are drawn there, the others anywhere in the window. Each slot counts its
episodes begun at the frontier in blocks of ``increment_every``; at the end of a block its window
grows by ``increment`` steps if at least ``grow_at`` of the block's episodes succeeded (the task's
``metrics["success"]`` at any of their steps), and stays otherwise. Judging the whole window
instead lets it run away: on ``robo/stack`` (sparse reward, PPO, blocks of 8, ``grow_at`` 0.5) a
window of 63 steps was reached while the policy succeeded only from the last 10-20 (session 33:
with ~27% of starts succeeding, a block of 8 passes 4 of 8 by chance 14% of the time). The slot's
width, block count and successes live in the batched state as ``info["demo_width"]``,
``["demo_block"]`` and ``["demo_hits"]`` (``int32``), whether the current episode has succeeded as
``info["demo_hit"]`` (``bool``), kept by :class:`DemoProgress`, and whether an episode began at
the frontier as ``info["demo"]["frontier"]`` (``float32``); the width never exceeds the longest
demonstration.

Warm-up (vasa's addition, not SURREAL's): with ``warmup > 0`` no episode starts from a
demonstration until the environment slot has taken ``warmup`` steps; from then on ``ratio``
applies. The task's own starts first teach the early stages (on ``robo/stack``, PPO without
demonstrations learns to grasp and lift but never to stack, while demonstration starts from the
first step teach stacking but slow the grasp; BENCHMARKS.md, session 17), then demonstration
starts teach the later ones. The slot's step count lives in the batched state as
``info["demo_clock"]`` (``int32``, only when ``warmup + anneal > 0``), kept by :class:`DemoProgress`.

Annealing (vasa's addition, the schedule of Nair et al.'s "reset to demonstration states" read as a
crutch to take away): with ``anneal > 0`` the probability falls linearly from ``ratio`` at the end of
the warm-up to 0 after ``anneal`` more steps of the slot, ``ratio * clip(1 - (clock - warmup) /
anneal, 0, 1)``; the clock then saturates at ``warmup + anneal`` and every later start is the
task's own.

Every reset is pure JAX: the demonstrations are device arrays (constants of the compiled
program), the choice a key draw, the state restored by the task's ``state_from`` (forward
kinematics with the episode's own task parameters). ``info["demo"]`` says how each episode
began: ``{"used": float32 0/1, "episode": int32, "t": int32}`` (-1 for task resets).
"""

from __future__ import annotations

import contextlib
import os

import jax
import jax.numpy as jnp
import numpy as np

from vasa.envs.core import EnvState
from vasa.envs.demos import Demos
from vasa.envs.wrappers import Wrapper, _select
from vasa.run.fields import NonNegInt, PosInt

MODES = ("uniform", "forward", "reverse")
FRONTIER_SHARE = 0.5
"""Growing by success, the share of demonstration starts drawn from the window's frontier."""
WINDOW, INCREMENT, INCREMENT_EVERY = 25, 25, 100  # robosuite DemoSamplerWrapper's open-loop defaults
SCHEDULE = (WINDOW, INCREMENT, INCREMENT_EVERY)
# a config field: (window >= 1 steps, increment >= 0 steps, every >= 1 demonstration starts)
DemoSchedule = tuple[PosInt, NonNegInt, PosInt]


def _check_number(name, value, low, high=None, integer=False):
    from vasa.envs.tasks.manipulation.base import _check_number as check

    check(name, value, low, high, integer)


def window_width(num_demo_resets, length: int, window: int = WINDOW, increment: int = INCREMENT,
                 every: int = INCREMENT_EVERY) -> jax.Array:
    """``[] int32`` width ``W`` of the forward/reverse window after ``num_demo_resets``
    demonstration starts: ``min(length, window + increment * (num_demo_resets // every))``."""
    n = jnp.asarray(num_demo_resets, jnp.int32)
    return jnp.minimum(length, window + increment * (n // every)).astype(jnp.int32)


def sample_start(key: jax.Array, num_demo_resets, num_episodes: int, length, mode: str,
                 window: int = WINDOW, increment: int = INCREMENT, every: int = INCREMENT_EVERY, width=None,
                 with_frontier: bool = False):
    """Draw a demonstration state: ``(episode [] int32, t [] int32)`` (see the module docstring).

    ``length``: the demonstrations' length ``T`` (an int), or each one's own (``int32 [E]``,
    e.g. :meth:`~vasa.envs.demos.Demos.steps_to_success`): the episode is drawn uniformly, then
    ``t`` within that episode's length. ``width`` (``[] int32``, optional): the window's width
    ``W`` itself (growth by success), in place of the schedule's ``window_width(num_demo_resets)``;
    either is capped at the episode's length. With ``width``, a draw lies at the window's
    frontier (offsets ``[W - increment, W)`` from its success end) with probability
    :data:`FRONTIER_SHARE`, else anywhere in it, and ``with_frontier=True`` returns ``(episode, t,
    frontier [] bool)``."""
    k_e, k_t = jax.random.split(key)
    episode = jax.random.randint(k_e, (), 0, num_episodes)
    lengths = jnp.broadcast_to(jnp.asarray(length, jnp.int32), (num_episodes,))
    own = lengths[episode]
    if mode == "uniform":
        t = jax.random.randint(k_t, (), 0, own)
        return (episode, t, jnp.zeros((), bool)) if with_frontier else (episode, t)
    if width is None:
        w = window_width(num_demo_resets, own, window, increment, every)
        low, frontier = 0, jnp.zeros((), bool)
    else:
        w = jnp.minimum(own, width)
        k_t, k_f = jax.random.split(k_t)
        frontier = jax.random.uniform(k_f) < FRONTIER_SHARE
        low = jnp.where(frontier, jnp.maximum(w - increment, 0), 0)
    offset = jax.random.randint(k_t, (), low, w)  # uniform in [low, W)
    t = (offset if mode == "forward" else own - 1 - offset).astype(jnp.int32)
    return (episode, t, frontier) if with_frontier else (episode, t)


class DemoCurriculum(Wrapper):
    """Start episodes of ``env`` (a raw task with ``state_from``, e.g. ``robo/lift``) from
    demonstration states with probability ``ratio``; see the module docstring.

    Args:
      env: the raw task (innermost, so that time limits, auto-reset and pixels wrap it).
      demos: :class:`~vasa.envs.demos.Demos` (or a path to their ``.npz``) recorded on the
        same environment.
      ratio: probability in ``[0, 1]`` that a reset starts from a demonstration.
      mode: ``uniform``, ``forward`` or ``reverse``.
      env_id: the id ``env`` was made from; demonstrations of another id are refused.
      window, increment, increment_every: the forward/reverse schedule (steps, steps, starts).
      until_success: each demonstration ends at its first success (module docstring).
      warmup: steps of each environment slot before its first demonstration start (module
        docstring); needs :class:`DemoProgress` (the auto-reset) to count them.
      anneal: steps of each slot after the warm-up over which the probability falls linearly
        from ``ratio`` to 0 (module docstring; 0: constant); counted like ``warmup``.
      grow_at: success rate in ``[0, 1]`` of a slot's block of ``increment_every`` episodes begun
        at the window's frontier at which its window grows (module docstring; 0: the fixed schedule);
        ``forward``/``reverse`` only, kept by :class:`DemoProgress`.

    Raises:
      ValueError: a bad ``ratio``/``mode``/schedule, or demonstrations that do not fit
        ``env`` (env id, observation or action size, physics sizes, task parameters), the
        message naming what differs.
      TypeError: ``demos`` is neither :class:`~vasa.envs.demos.Demos` nor a path.
    """

    def __init__(self, env, demos, ratio: float = 0.5, mode: str = "uniform", *, env_id: str | None = None,
                 window: int = WINDOW, increment: int = INCREMENT, increment_every: int = INCREMENT_EVERY,
                 until_success: bool = True, warmup: int = 0, anneal: int = 0, grow_at: float = 0.0):
        _check_number("demo_ratio", ratio, 0.0, 1.0)
        _check_number("demo_grow_at", grow_at, 0.0, 1.0)
        _check_number("demo_warmup", warmup, 0, integer=True)
        _check_number("demo_anneal", anneal, 0, integer=True)
        if until_success not in (True, False):
            raise ValueError(f"demo_until_success={until_success!r} is not allowed: choose True or False.")
        if mode not in MODES:
            raise ValueError(f"demo_curriculum={mode!r} is not allowed: choose from {MODES}.")
        _check_number("window", window, 1, integer=True)
        _check_number("increment", increment, 0, integer=True)
        _check_number("increment_every", increment_every, 1, integer=True)
        if grow_at > 0 and mode == "uniform":
            raise ValueError(f"demo_grow_at={grow_at!r} is not allowed with demo_curriculum='uniform': it grows the "
                             "forward/reverse window (choose 'forward' or 'reverse', or demo_grow_at=0).")
        super().__init__(env)
        if isinstance(demos, (str, os.PathLike)):
            demos = Demos.load(demos, env_id=env_id)
        if not isinstance(demos, Demos):
            raise TypeError(f"demos={type(demos).__name__} is not allowed: pass a vasa.envs.demos.Demos or a path "
                             "to its .npz.")
        check_compatible(env, demos, env_id)
        self.demos, self.ratio, self.mode = demos, float(ratio), mode
        self.window, self.increment, self.increment_every = int(window), int(increment), int(increment_every)
        self._arrays = {k: jnp.asarray(getattr(demos, k)) for k in ("qpos", "qvel", "act", "ctrl", "qacc_warmstart")}
        self._params = {k: jnp.asarray(v) for k, v in demos.params.items()}
        self.until_success = bool(until_success)
        self.lengths = demos.lengths(until_success)
        self.warmup, self.anneal = int(warmup), int(anneal)
        self.grow_at = float(grow_at)
        self._progress, self._clock, self._width = None, None, None

    @property
    def adaptive(self) -> bool:
        """Whether the window grows by success (``grow_at > 0``) rather than by the schedule."""
        return self.grow_at > 0

    @property
    def max_width(self) -> int:
        """The longest demonstration (in the sampled lengths): where a growing window stops."""
        return int(np.max(self.lengths))

    @property
    def clock_limit(self) -> int:
        """Where the slot's step count ``info["demo_clock"]`` saturates: ``warmup + anneal``
        (0: the schedule needs no clock and the state carries none)."""
        return self.warmup + self.anneal

    def ratio_at(self, clock) -> jax.Array:
        """``[] float32`` probability of a demonstration start after ``clock`` steps of the slot:
        0 during the warm-up, then ``ratio`` falling linearly to 0 over ``anneal`` steps (constant
        without annealing)."""
        clock = jnp.asarray(clock, jnp.float32)
        ratio = jnp.float32(self.ratio)
        if self.anneal > 0:
            ratio = ratio * jnp.clip(1.0 - (clock - self.warmup) / self.anneal, 0.0, 1.0)
        return jnp.where(clock >= self.warmup, ratio, 0.0) if self.warmup > 0 else ratio

    # ------------------------------------------------------------------ schedule
    @contextlib.contextmanager
    def scheduled(self, num_demo_resets, clock=None, width=None):
        """Within this block, resets use the schedule position ``num_demo_resets``, the
        slot's step count ``clock`` and, growing by success, its window ``width`` (traced ``[]
        int32`` each; :class:`DemoProgress` sets them around each step, as
        :class:`~vasa.envs.randomize.RandomizedDynamics` swaps its traced model)."""
        old = (self._progress, self._clock, self._width)
        self._progress, self._clock, self._width = num_demo_resets, clock, width
        try:
            yield
        finally:
            self._progress, self._clock, self._width = old

    def demo_state(self, episode, t) -> EnvState:
        """The task state of demonstration ``episode`` at step ``t`` (``[] int32`` each)."""
        a = {k: v[episode, t] for k, v in self._arrays.items()}
        params = {k: v[episode] for k, v in self._params.items()}
        return self.env.state_from(a["qpos"], a["qvel"], a["ctrl"], params, act=a["act"],
                                   qacc_warmstart=a["qacc_warmstart"])

    def reset_at(self, key: jax.Array, num_demo_resets=0, clock=0, width=None) -> EnvState:
        """A reset at schedule position ``num_demo_resets`` after ``clock`` steps of this slot,
        growing by success with the window ``width`` (pure; ``reset`` uses those set by
        :meth:`scheduled`, else 0, 0 and the initial ``window``)."""
        k_use, k_pick, k_task = jax.random.split(key, 3)
        d = self.demos
        if self.adaptive and width is None:
            width = jnp.int32(self.window)
        episode, t, frontier = sample_start(k_pick, num_demo_resets, d.num_episodes, self.lengths, self.mode,
                                            self.window, self.increment, self.increment_every,
                                            width=width if self.adaptive else None, with_frontier=True)
        use = jax.random.uniform(k_use) < self.ratio_at(clock)
        if self.ratio == 0.0:
            state = self.env.reset(k_task)
        elif self.ratio == 1.0 and self.clock_limit == 0:
            state = self.demo_state(episode, t)
        else:
            state = _select(use, self.demo_state(episode, t), self.env.reset(k_task))
        minus = jnp.int32(-1)
        info = {"used": use.astype(jnp.float32), "episode": jnp.where(use, episode, minus).astype(jnp.int32),
                "t": jnp.where(use, t, minus).astype(jnp.int32)}
        if self.adaptive:
            info["frontier"] = (use & frontier).astype(jnp.float32)
        return state.replace(info={**state.info, "demo": info})

    def reset(self, key: jax.Array) -> EnvState:
        return self.reset_at(key, 0 if self._progress is None else self._progress,
                             0 if self._clock is None else self._clock, self._width)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        demo = state.info["demo"]
        inner = state.replace(info={k: v for k, v in state.info.items() if k != "demo"})
        nxt = self.env.step(inner, action)
        return nxt.replace(info={**nxt.info, "demo": demo})


class DemoProgress(Wrapper):
    """Carry each environment's count of demonstration starts, ``info["demo_resets"]``
    (``[] int32``), with a warm-up or annealing its step count ``info["demo_clock"]``
    (``[] int32``, saturating at ``warmup + anneal``), and growing by success its window and
    block tally (``info["demo_width"]``, ``["demo_block"]``, ``["demo_hits"]``, ``["demo_hit"]``;
    :class:`DemoCurriculum`'s docstring), and hand them to the :class:`DemoCurriculum` inside for the
    resets done within ``step`` (auto-resets). Wrap it around
    :class:`~vasa.envs.wrappers.AutoReset` (``"fresh"`` mode)."""

    OWN = ("demo_resets", "demo_clock", "demo_width", "demo_block", "demo_hits", "demo_hit")

    def __init__(self, env, curriculum: DemoCurriculum):
        super().__init__(env)
        self.curriculum = curriculum
        if curriculum.adaptive and "success" not in jax.eval_shape(env.reset, jax.random.PRNGKey(0)).metrics:
            raise ValueError(f"demo_grow_at={curriculum.grow_at!r} is not allowed for {type(curriculum.env).__name__}: "
                             "growing the window by success needs a task that reports metrics['success'] "
                             "(the robo/* tasks do); use demo_grow_at=0.")

    def reset(self, key: jax.Array) -> EnvState:
        state = self.env.reset(key)
        info = {**state.info, "demo_resets": state.info["demo"]["used"].astype(jnp.int32)}
        if self.curriculum.clock_limit > 0:
            info["demo_clock"] = jnp.zeros((), jnp.int32)
        if self.curriculum.adaptive:
            zero = jnp.zeros((), jnp.int32)
            info.update(demo_width=jnp.int32(self.curriculum.window), demo_block=zero, demo_hits=zero,
                        demo_hit=state.metrics["success"] > 0)
        return state.replace(info=info)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        count = state.info["demo_resets"]
        clock = state.info.get("demo_clock")
        if clock is not None:  # this step is the slot's (clock + 1)-th: its auto-reset comes after it
            clock = jnp.minimum(clock + 1, self.curriculum.clock_limit).astype(jnp.int32)
        inner = state.replace(info={k: v for k, v in state.info.items() if k not in self.OWN})
        with self.curriculum.scheduled(count, clock, state.info.get("demo_width")):
            nxt = self.env.step(inner, action)
        started = (nxt.done > 0) & (nxt.info["demo"]["used"] > 0)
        info = {**nxt.info, "demo_resets": count + started.astype(jnp.int32)}
        if clock is not None:
            info["demo_clock"] = clock
        if self.curriculum.adaptive:
            info.update(self._tally(state, nxt))
        return nxt.replace(info=info)

    def _tally(self, state: EnvState, nxt: EnvState) -> dict:
        """Growth by success: the slot's window and block tally after the step ``state -> nxt``.
        ``nxt.metrics["success"]`` is the step's own (where the episode ended, its last step's:
        :class:`~vasa.envs.wrappers.AutoReset` keeps the stepped metrics)."""
        c, info = self.curriculum, state.info
        done = nxt.done > 0
        hit = info["demo_hit"] | (nxt.metrics["success"] > 0)
        ended = done & (info["demo"]["frontier"] > 0)  # an episode begun at the window's frontier ended
        block = info["demo_block"] + ended.astype(jnp.int32)
        hits = info["demo_hits"] + (ended & hit).astype(jnp.int32)
        full = block >= c.increment_every
        grow = full & (hits.astype(jnp.float32) >= c.grow_at * c.increment_every)
        width = jnp.where(grow, jnp.minimum(info["demo_width"] + c.increment, c.max_width), info["demo_width"])
        zero = jnp.zeros((), jnp.int32)
        # the next episode's first state: its own success counts (a demonstration start may begin on the brink)
        return {"demo_width": width.astype(jnp.int32), "demo_block": jnp.where(full, zero, block),
                "demo_hits": jnp.where(full, zero, hits), "demo_hit": jnp.where(done, False, hit)}


def check_compatible(env, demos: Demos, env_id: str | None = None) -> None:
    """Raise ``ValueError`` naming what differs between ``demos`` and the raw task ``env``."""
    if demos.num_episodes < 1:
        raise ValueError("demos hold no episodes (were all recorded episodes unsuccessful and dropped?).")
    if env_id is not None and demos.env_id != env_id:
        raise ValueError(f"demos were recorded on env_id={demos.env_id!r}, not {env_id!r}.")
    if not hasattr(env, "state_from"):
        raise ValueError(f"{type(env).__name__} cannot start from demonstration states: it has no state_from "
                         "(the robo/* tasks have).")
    obs, act = env.observation_spec, env.action_spec
    if not hasattr(obs, "shape") or tuple(obs.shape) != (demos.obs_size,):
        raise ValueError(f"demos have observations of size {demos.obs_size}, the environment "
                         f"{getattr(obs, 'shape', obs)}.")
    if tuple(act.shape) != (demos.action_size,):
        raise ValueError(f"demos have actions of size {demos.action_size}, the environment {tuple(act.shape)}.")
    m = getattr(env, "mj_model", None)
    if m is not None:
        for name, have in (("qpos", m.nq), ("qvel", m.nv), ("act", m.na), ("ctrl", m.nu)):
            got = getattr(demos, name).shape[-1]
            if got != have:
                raise ValueError(f"demos have {name} of size {got}, the environment's model {have}.")
    want = jax.eval_shape(env.reset, jax.random.PRNGKey(0)).info.get("object", {})
    if not isinstance(want, dict) or sorted(want) != sorted(demos.params):
        raise ValueError(f"demos have task parameters {sorted(demos.params)}, the environment "
                         f"{sorted(want) if isinstance(want, dict) else want}.")
    for k, spec in want.items():
        if tuple(demos.params[k].shape[1:]) != tuple(spec.shape):
            raise ValueError(f"demos' task parameter {k!r} has shape {demos.params[k].shape[1:]} per episode, "
                             f"the environment's {tuple(spec.shape)}.")


def demo_overrides(config, evaluation: bool = False) -> dict:
    """The :func:`vasa.envs.make` arguments of a training config's curriculum fields
    (``demo_path``, ``demo_ratio``, ``demo_curriculum``, ``demo_schedule``, ``demo_until_success``); ``{}`` without
    demonstrations or for the ``evaluation`` environment (evaluation never starts from them)."""
    if config.demo_path is None or evaluation:
        return {}
    return {"demos": config.demo_path, "demo_ratio": config.demo_ratio, "demo_curriculum": config.demo_curriculum,
            "demo_schedule": tuple(config.demo_schedule), "demo_until_success": config.demo_until_success,
            "demo_warmup": slot_steps(config, config.demo_warmup),
            "demo_anneal": slot_steps(config, config.demo_anneal), "demo_grow_at": config.demo_grow_at}


def slot_steps(config, env_steps: int) -> int:
    """``env_steps`` of all a config's ``num_envs`` together (action repeats counted, as
    ``total_env_steps`` counts them) as steps of each environment slot:
    ``ceil(env_steps / (num_envs * action_repeat))``."""
    repeat = config.resolved_action_repeat() if hasattr(config, "resolved_action_repeat") else (config.action_repeat or 1)
    return -(-int(env_steps) // (int(config.num_envs) * int(repeat)))


def check_demo_fields(config) -> None:
    """Validate a training config's ``demo_path``, ``demo_ratio``, ``demo_curriculum``,
    ``demo_schedule``, ``demo_warmup``, ``demo_anneal`` and ``demo_grow_at`` (PPO, SAC/DDPG)
    before anything compiles: the file exists and loads for ``config.env``; ratio, curriculum and
    schedule apply only with a path (the schedule and growth by success only to
    ``forward``/``reverse``); ``reset_mode`` (where present) is ``"fresh"``. Errors name
    the field and value."""
    from vasa.run import require
    from vasa.run.fields import MissingPathError

    name = type(config).__name__
    path = config.demo_path
    if path is None:
        require(config, config.demo_ratio == 0.5, "demo_ratio", "it applies to demonstrations: set demo_path")
        require(config, config.demo_curriculum == "uniform", "demo_curriculum",
                "it applies to demonstrations: set demo_path")
        require(config, tuple(config.demo_schedule) == SCHEDULE, "demo_schedule",
                "it applies to demonstrations: set demo_path")
        require(config, config.demo_until_success is True, "demo_until_success",
                "it applies to demonstrations: set demo_path")
        require(config, config.demo_warmup == 0, "demo_warmup", "it applies to demonstrations: set demo_path")
        require(config, config.demo_anneal == 0, "demo_anneal", "it applies to demonstrations: set demo_path")
        require(config, config.demo_grow_at == 0, "demo_grow_at", "it applies to demonstrations: set demo_path")
        return
    require(config, config.demo_warmup == 0 or config.demo_ratio > 0, "demo_warmup",
            "it delays demonstration starts, and demo_ratio=0 has none: set demo_ratio > 0")
    require(config, config.demo_anneal == 0 or config.demo_ratio > 0, "demo_anneal",
            "it lowers demo_ratio to 0, and demo_ratio=0 is there already: set demo_ratio > 0")
    if config.demo_curriculum == "uniform":
        require(config, tuple(config.demo_schedule) == SCHEDULE, "demo_schedule",
                "it moves the forward/reverse window: set demo_curriculum='forward' or 'reverse'")
        require(config, config.demo_grow_at == 0, "demo_grow_at",
                "it grows the forward/reverse window: set demo_curriculum='forward' or 'reverse'")
    if not os.path.isfile(path):
        raise MissingPathError(f"{name}.demo_path={path!r} is not allowed: it must be an existing .npz file.")
    try:
        Demos.load(path, env_id=config.env)
    except ValueError as e:
        raise ValueError(f"{name}.demo_path={path!r} is not allowed: {e}") from e
    if hasattr(config, "reset_mode"):
        require(config, config.reset_mode == "fresh", "reset_mode",
                "demonstration starts need 'fresh' auto-resets (set reset_mode='fresh')")


__all__ = [
    "INCREMENT",
    "INCREMENT_EVERY",
    "MODES",
    "SCHEDULE",
    "WINDOW",
    "DemoCurriculum",
    "DemoProgress",
    "DemoSchedule",
    "check_compatible",
    "check_demo_fields",
    "demo_overrides",
    "sample_start",
    "slot_steps",
    "window_width",
]


def add_curriculum(task, env_id: str, demos, ratio: float, mode: str, *, auto_reset: bool = True,
                   reset_mode: str = "fresh", schedule=SCHEDULE, until_success: bool = True,
                   warmup: int = 0, anneal: int = 0, grow_at: float = 0.0) -> DemoCurriculum:
    """:class:`DemoCurriculum` around the raw ``task`` for :func:`vasa.envs.make` (``schedule``:
    ``(window, increment, increment_every)``; ``warmup``, ``anneal``: steps per environment),
    refusing wrapper settings under which it cannot work: ``reset_mode="cached"`` (each slot
    would replay its first start) and, for ``forward``/``reverse``, a warm-up or annealing,
    ``auto_reset=False`` (the schedule's counts live in the auto-resetting state)."""
    if reset_mode != "fresh":
        raise ValueError(f"reset_mode={reset_mode!r} is not allowed with demos: demonstration starts need 'fresh' "
                         "auto-resets.")
    if not auto_reset and mode != "uniform":
        raise ValueError(f"auto_reset=False is not allowed with demo_curriculum={mode!r}: its window moves with the "
                         "count of demonstration starts kept by the auto-reset (use 'uniform' or auto_reset=True).")
    if not auto_reset and warmup:
        raise ValueError(f"auto_reset=False is not allowed with demo_warmup={warmup!r}: the warm-up counts steps in "
                         "the auto-resetting state (use demo_warmup=0 or auto_reset=True).")
    if not auto_reset and anneal:
        raise ValueError(f"auto_reset=False is not allowed with demo_anneal={anneal!r}: the annealing counts steps in "
                         "the auto-resetting state (use demo_anneal=0 or auto_reset=True).")
    if not isinstance(schedule, (tuple, list)) or len(schedule) != 3:
        raise ValueError(f"demo_schedule={schedule!r} is not allowed: give (window, increment, increment_every), "
                         f"e.g. {SCHEDULE}.")
    window, increment, every = schedule
    return DemoCurriculum(task, demos, ratio, mode, env_id=env_id, window=window, increment=increment,
                          increment_every=every, until_success=until_success, warmup=warmup, anneal=anneal,
                          grow_at=grow_at)
