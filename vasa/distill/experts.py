"""Experts for distillation: any trained vasa policy as ``(act, params)`` plus what it expects.

An :class:`Expert` is a deterministic policy ``act(params, obs) -> actions`` over *batched*
observations of the student's pixel environment (``obs = {"pixels": uint8 [E, H, W, C*k],
"proprio": float32 [E, P]}``), reading one entry of it:

* a **privileged** state expert reads ``obs["proprio"]``, the task's own state observation
  (SECANT's experts see pixels, but a state expert trains in minutes and labels exactly):
  :func:`expert_from_ppo`, :func:`expert_from_sac` / :func:`expert_from_ddpg` of a state run;
* a **pixel** expert reads ``obs["pixels"]``: :func:`expert_from_sac` of a pixel (DrQ) run,
  SECANT's weakly augmented expert.

:func:`check_expert` compares an expert with the environment a student will learn in (action
size, action repeat, the observation it reads, the task it was trained on) and raises one
``ValueError`` listing every difference, before anything is compiled.

SECANT-Parallel (``DAggerConfig.parallel``) distils from an expert that is still learning: an
Expert with a :class:`Learner` (:func:`ppo_learner`) carries its RL algorithm's whole train
state in the distillation state and runs its iterations inside the distillation's program.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp


@dataclass(frozen=True, eq=False)
class Learner:
    """How an expert keeps learning by RL while a student distils from it (SECANT-Parallel).

    Attributes:
      init: ``init(mesh) -> state``, the RL algorithm's initial train state placed on ``mesh``.
      make_body: ``make_body(mesh) -> (body, specs)``: ``body(state) -> (state, metrics)`` is
        one RL iteration written as a ``jax.shard_map`` body over ``"data"`` (its collectives
        on that axis; metrics ``[]`` each, ``episode_return`` among them), ``specs`` the
        state's PartitionSpecs.
      params: ``params(state)``, the :attr:`Expert.act` parameters of a train state.
      iterations: RL iterations of the algorithm's whole budget (spread over the student's steps).
      env_steps_per_iteration: task steps (action repeats counted) of one RL iteration.
    """

    init: Callable[[Any], Any]
    make_body: Callable[[Any], tuple[Callable, Any]]
    params: Callable[[Any], Any]
    iterations: int
    env_steps_per_iteration: int


@dataclass(frozen=True, eq=False)
class Expert:
    """A frozen policy to distil.

    Attributes:
      act: ``act(params, obs) -> float32 [E, A]``, deterministic, for batched observation dicts.
      params: its parameters (a pytree; kept in the distillation state, so checkpoints hold it).
      reads: the observation entry it acts on, ``"proprio"`` or ``"pixels"``.
      obs_shape: the shape of that entry for one environment (``(P,)`` or ``(H, W, C*k)``).
      action_size: ``A``.
      action_repeat: task steps per action it was trained with.
      env: the environment id it was trained on (``None``: not recorded, not checked).
      appearance: for pixel experts, the appearance suite it was trained under.
      name: for messages.
      learner: ``None`` for a frozen expert; a :class:`Learner` if it can keep learning
        (SECANT-Parallel), ``params`` then being its initial train state's.
    """

    act: Callable[[Any, Any], jax.Array]
    params: Any
    reads: Literal["proprio", "pixels"]
    obs_shape: tuple[int, ...]
    action_size: int
    action_repeat: int
    env: str | None = None
    appearance: str | None = None
    name: str = "expert"
    learner: Learner | None = None


def check_expert(expert: Expert, env_id: str, env, action_repeat: int) -> None:
    """Raise ``ValueError`` naming every way ``expert`` does not fit the student's environment
    ``env`` (id ``env_id``, built with ``action_repeat``; its observation a dict with
    ``"pixels"`` and ``"proprio"``)."""
    problems = []
    if expert.env is not None and expert.env != env_id:
        problems.append(f"it was trained on {expert.env} but the student learns {env_id}")
    size = env.action_spec.shape[0]
    if expert.action_size != size:
        problems.append(f"it acts with action_size={expert.action_size} but {env_id} has {size}")
    if expert.action_repeat != action_repeat:
        problems.append(f"it was trained with action_repeat={expert.action_repeat} but the student's {env_id} "
                        f"repeats each action {action_repeat} times (set action_repeat={expert.action_repeat})")
    spec = env.observation_spec
    if not isinstance(spec, dict) or expert.reads not in spec:
        have = sorted(spec) if isinstance(spec, dict) else "one array"
        problems.append(f"it reads obs[{expert.reads!r}] but {env_id}'s observations hold {have}")
    elif tuple(spec[expert.reads].shape) != tuple(expert.obs_shape):
        shape = tuple(spec[expert.reads].shape)
        hint = (" (image_size x image_size x 3*frame_stack)" if expert.reads == "pixels"
                else " (is it a state expert of another task?)")
        problems.append(f"it reads obs[{expert.reads!r}] of shape {tuple(expert.obs_shape)} but {env_id} gives "
                        f"{shape}{hint}")
    if expert.reads == "pixels" and expert.appearance not in (None, "train"):
        problems.append(f"it was trained under appearance={expert.appearance!r}, the student's environment shows "
                        "'train'")
    if problems:
        raise ValueError(f"the expert {expert.name!r} does not fit the student's environment: " + "; ".join(problems)
                         + ".")


def expert_from_ppo(config, state, seed: int | None = None, env=None) -> Expert:
    """A state expert from a PPO run: ``config`` (:class:`~vasa.algos.ppo.PPOConfig`) and its
    final :class:`~vasa.algos.ppo.TrainState` (or ``{"policy", "normalizer"}`` params); acts
    with the Gaussian mean on ``obs["proprio"]``, z-filtered with the run's statistics.

    Args:
      seed: which run of a ``num_seeds > 1`` state to take (required then).
      env: the PPO training environment (default: built from ``config``).
    """
    from vasa.algos import ppo

    if config.pixels:
        raise ValueError(f"PPOConfig.pixels=True is not allowed for an expert (yet): distil a state PPO run, or a "
                         f"pixel SAC run ({config.env}).")
    if config.core != "none":
        raise ValueError(f"PPOConfig.core={config.core!r} is not allowed for an expert (yet): DAgger queries the "
                         f"expert on single observations, without its memory; distil a feed-forward PPO run "
                         f"({config.env}).")
    env = env or ppo.make_env(config)
    policy = ppo.make_policy(config, env)
    if isinstance(state, ppo.TrainState):
        params = {"policy": state.params["policy"], "normalizer": state.normalizer}
    else:
        params = {"policy": state["policy"], "normalizer": state["normalizer"]}
    if config.num_seeds > 1:
        if seed is None or not 0 <= seed < config.num_seeds:
            raise ValueError(f"seed={seed!r} is not allowed: the PPO state holds {config.num_seeds} runs; choose "
                             f"one with seed=0..{config.num_seeds - 1}.")
        params = jax.tree.map(lambda x: x[seed], params)
    return Expert(act=lambda p, obs: policy(p, obs["proprio"]), params=params, reads="proprio",
                  obs_shape=tuple(env.observation_spec.shape), action_size=int(env.action_spec.shape[0]),
                  action_repeat=int(env.steps_per_action), env=config.env, name=f"ppo {config.env}")


def ppo_learner(config, env=None) -> Expert:
    """An untrained privileged PPO expert that learns by PPO (``config``, single seed) while
    the student distils from it: SECANT-Parallel's expert. Its ``learner`` runs
    :func:`vasa.algos.ppo.make_iteration` in the distillation program; ``params`` are those of
    the initial state (for :func:`check_expert` and shapes)."""
    from vasa.algos import ppo

    if config.num_seeds != 1:
        raise ValueError(f"PPOConfig.num_seeds={config.num_seeds!r} is not allowed for a learning expert: "
                         "SECANT-Parallel trains one expert (num_seeds=1).")
    env = env or ppo.make_env(config)
    params_of = lambda s: {"policy": s.params["policy"], "normalizer": s.normalizer}  # noqa: E731
    learner = Learner(init=lambda mesh: ppo.init(config, env, mesh),
                      make_body=lambda mesh: ppo.make_iteration(config, env, mesh),
                      params=params_of, iterations=config.num_iterations,
                      env_steps_per_iteration=config.env_steps_per_iteration)
    initial = jax.eval_shape(lambda: ppo.init_abstract(config, env, ppo.Networks(
        config, env.observation_spec.size, env.action_spec)))
    expert = expert_from_ppo(config, params_of(initial), env=env)
    return dataclasses.replace(expert, learner=learner, name=f"learning ppo {config.env}")


def _expert_from_offpolicy(config, state, make_learner, algo: str, env=None) -> Expert:
    from vasa.algos import offpolicy

    env = env or offpolicy.make_env(config)
    learner = make_learner(config, env)
    params = state.learner if isinstance(state, offpolicy.TrainState) else state
    params = {"actor": params["actor"], "critic": params["critic"]}  # what the policy reads (no targets/optimiser)
    reads = "pixels" if config.pixels else "proprio"
    spec = env.observation_spec["pixels"] if config.pixels else env.observation_spec
    if config.pixels:
        act = lambda p, obs: learner.policy(p, {"pixels": obs["pixels"]})  # noqa: E731
    else:
        act = lambda p, obs: learner.policy(p, obs["proprio"])  # noqa: E731
    return Expert(act=act, params=params, reads=reads, obs_shape=tuple(spec.shape),
                  action_size=int(env.action_spec.shape[0]), action_repeat=config.resolved_action_repeat(),
                  env=config.env, appearance=config.train_appearance if config.pixels else None,
                  name=f"{algo} {config.env}{' pixels' if config.pixels else ''}")


def expert_from_sac(config, state, env=None) -> Expert:
    """An expert from a SAC run: ``config`` (:class:`~vasa.algos.sac.SACConfig`) and its final
    :class:`~vasa.algos.offpolicy.TrainState` (or learner dict). State runs read
    ``obs["proprio"]``; pixel runs (DrQ, SECANT's weakly augmented expert) ``obs["pixels"]``.
    Acts with the squashed Gaussian mean. ``env``: the SAC training env (default: built)."""
    from vasa.algos import sac

    return _expert_from_offpolicy(config, state, sac.make_learner, "sac", env)


def expert_from_ddpg(config, state, env=None) -> Expert:
    """An expert from a DDPG run, as :func:`expert_from_sac` (deterministic actor, no noise)."""
    from vasa.algos import ddpg

    return _expert_from_offpolicy(config, state, ddpg.make_learner, "ddpg", env)


def reach2d_expert(gain: float = 2.5, action_repeat: int = 1) -> Expert:
    """The known linear expert of ``toy/reach2d``: ``a = clip(-gain * p, -1, 1)`` on the
    position ``p = obs["proprio"]`` (``gain = 2.5`` halves the distance each task step)."""
    from vasa.envs.tasks.reach2d import linear_expert_action

    return Expert(act=lambda p, obs: linear_expert_action(obs["proprio"], p["gain"]),
                  params={"gain": jnp.asarray(gain, jnp.float32)}, reads="proprio", obs_shape=(2,), action_size=2,
                  action_repeat=int(action_repeat), env="toy/reach2d", name=f"linear gain {gain:g}")


__all__ = ["Expert", "Learner", "check_expert", "expert_from_ddpg", "expert_from_ppo", "expert_from_sac", "ppo_learner",
           "reach2d_expert"]
