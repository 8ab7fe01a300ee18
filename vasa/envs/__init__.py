"""Environments behind one protocol: ``vasa.envs.make("dmc/cartpole_balance")``.

Ids: ``toy/pendulum`` (pure JAX, compiles in about a second), ``brax/<name>`` (Brax
locomotion on MJX) and ``dmc/<task>`` (DM Control Suite from MuJoCo Playground, ``impl="jax"``).
"""

from __future__ import annotations

from vasa.envs.core import ArraySpec, Env, EnvState, check_env_id, make_raw, register, registered_ids
from vasa.envs.tasks.foreign import BRAX_ENVS, DMC_TASKS
from vasa.envs.wrappers import ActionRepeat, AutoReset, EpisodeLimit, Wrapper

__all__ = [
    "ArraySpec", "Env", "EnvState", "Wrapper", "ActionRepeat", "AutoReset", "EpisodeLimit",
    "make", "make_raw", "register", "registered_ids", "check_env_id",
]

register("toy/pendulum", "vasa.envs.tasks.pendulum:pendulum")
for _name in BRAX_ENVS:
    register(f"brax/{_name}", "vasa.envs.tasks.foreign:brax_env", name=_name)
for _task in DMC_TASKS:
    register(f"dmc/{_task}", "vasa.envs.tasks.foreign:dmc_env", task=_task)


def make(
    env_id: str,
    *,
    episode_length: int | None = None,
    action_repeat: int | None = None,
    auto_reset: bool = True,
    reset_mode: str = "fresh",
    **kwargs,
) -> Env:
    """Build a registered environment with vasa's standard wrappers.

    The result is ``AutoReset(EpisodeLimit(ActionRepeat(task)))``: one ``step`` applies the
    action ``action_repeat`` times; episodes are truncated after ``episode_length`` task
    steps (counted before action repeat, as in Brax and DM Control, so DM Control's
    1000-step episodes stay 1000 simulator steps whatever the repeat).

    Args:
      env_id: e.g. ``"toy/pendulum"``, ``"brax/halfcheetah"``, ``"dmc/cartpole_balance"``.
      episode_length: time limit in task steps (default: the task's own, 200 for the toy
        pendulum and 1000 for Brax and DM Control).
      action_repeat: >= 1 (default: the task's own, 1).
      auto_reset: wrap with :class:`AutoReset` (needed for batched training).
      reset_mode: ``"fresh"`` or ``"cached"``, see :class:`AutoReset`.
      **kwargs: passed to the task builder (Brax constructor arguments, Playground config
        overrides).

    Raises:
      ValueError: unknown ``env_id`` (the message lists valid ids, closest first), or
        ``action_repeat``/``episode_length`` < 1, or an unknown ``reset_mode``.
    """
    check_env_id(env_id)
    if action_repeat is not None and int(action_repeat) < 1:
        raise ValueError(f"action_repeat={action_repeat!r} is not allowed: it must be an integer >= 1.")
    if episode_length is not None and int(episode_length) < 1:
        raise ValueError(f"episode_length={episode_length!r} is not allowed: it must be an integer >= 1.")
    if reset_mode not in ("fresh", "cached"):
        raise ValueError(f"reset_mode={reset_mode!r} is not allowed: choose 'fresh' or 'cached'.")
    task = make_raw(env_id, **kwargs)
    repeat = int(action_repeat or task.default_action_repeat)
    env = ActionRepeat(task, repeat)
    env = EpisodeLimit(env, episode_length or task.default_episode_length, steps_per_action=repeat)
    if auto_reset:
        env = AutoReset(env, mode=reset_mode)
    return env
