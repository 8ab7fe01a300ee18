"""Evaluate saved runs: restore a PPO checkpoint as a deterministic policy, and measure the
success rate of every checkpoint of a PPO, SAC or DDPG run (a learning curve in successes,
not returns).

    from vasa.algos import ppo_eval
    config, env, step, act = ppo_eval.load_policy("runs/lift")          # newest intact checkpoint
    rows = ppo_eval.success_curve("runs/lift", num_episodes=64)          # every checkpoint
    rows = ppo_eval.success_curve("runs/stack-sac", num_episodes=64)     # an off-policy run alike

``examples/evaluate_success.py`` prints and plots these; ``examples/evaluate_nav.py`` adds
SPL and held-out layouts for ``nav/*`` runs.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence

import jax
import numpy as np

from vasa.algos import ddpg, offpolicy, ppo, sac
from vasa.envs.rollout import episode_metrics
from vasa.run import Checkpointer
from vasa.run.config import dataclass_from_dict
from vasa.run.rundir import RunDirectoryError, read_config_json


def read_ppo_config(run_dir: str) -> ppo.PPOConfig:
    """The :class:`~vasa.algos.ppo.PPOConfig` saved in ``run_dir/config.json``.

    Raises:
      RunDirectoryError: ``run_dir`` holds no PPO run (the message lists what it holds).
    """
    saved = read_config_json(run_dir)
    if "ppo" not in saved:
        raise RunDirectoryError(f"{run_dir} holds no PPO run (config.json sections: {sorted(saved)}).")
    return dataclass_from_dict(ppo.PPOConfig, saved["ppo"])


OFF_POLICY = {sac.NAME: (sac.SACConfig, sac.make_learner), ddpg.NAME: (ddpg.DDPGConfig, ddpg.make_learner)}


def read_run_config(run_dir: str) -> tuple[str, ppo.PPOConfig | offpolicy.OffPolicyConfig]:
    """``(algorithm, config)`` of the run in ``run_dir``: ``"ppo"``, ``"sac"`` or ``"ddpg"``
    and its saved config.

    Raises:
      RunDirectoryError: ``run_dir`` holds none of them (the message lists what it holds).
    """
    saved = read_config_json(run_dir)
    if "ppo" in saved:
        return "ppo", dataclass_from_dict(ppo.PPOConfig, saved["ppo"])
    for name, (cls, _) in OFF_POLICY.items():
        if name in saved:
            return name, dataclass_from_dict(cls, saved[name])
    raise RunDirectoryError(f"{run_dir} holds no PPO, SAC or DDPG run (config.json sections: {sorted(saved)}).")


class _Evaluated:
    """What :func:`success_curve` needs of a run: its evaluation env, a checkpoint template,
    the policy parameters of a restored state, and the deterministic batched policy."""

    def __init__(self, algorithm: str, config):
        make_env = ppo.make_env if algorithm == "ppo" else offpolicy.make_env
        self.env, train_env = make_env(config, evaluation=True), make_env(config)
        self.recurrent = algorithm == "ppo" and config.core != "none"
        if algorithm == "ppo":
            self.template = ppo.init(config, train_env)  # the training env's state (demonstration starts included)
            self.params = lambda state: _ppo_params(state, config.num_seeds)
            self.acting = lambda params: _acting(config, train_env, params)
        else:
            learner = OFF_POLICY[algorithm][1](config, train_env)
            self.template = offpolicy.init(config, learner, train_env)  # replay buffer included, as saved
            self.params = lambda state: state.learner
            self.acting = lambda params: (lambda obs: learner.policy(params, obs))


def _ppo_params(state, num_seeds: int, seed_index: int = 0) -> dict:
    if num_seeds > 1:
        state = jax.tree.map(lambda x: x[seed_index], state)
    return {"policy": state.params["policy"], "normalizer": state.normalizer}


def _acting(config: ppo.PPOConfig, env, params):
    """The deterministic policy of restored ``params``: feed-forward ``act(obs, key=None,
    s=None) -> action``, or, with a recurrent core, batched ``act(obs [N, ...], memory) ->
    (action [N, A], memory)`` with ``act.zero_carry(N)`` the memory of episode starts."""
    policy = ppo.make_policy(config, env)
    if config.core == "none":
        return lambda obs, key=None, s=None: policy(params, obs)

    def act(obs, memory):
        return policy(params, obs, memory)

    act.zero_carry = policy.zero_carry
    return act


def _restore_params(checkpointer: Checkpointer, template, step: int | None, num_seeds: int, seed_index: int = 0):
    """``(step, {"policy", "normalizer"})`` of seed ``seed_index`` from checkpoint ``step``."""
    step, state = checkpointer.restore(template, step)
    return step, _ppo_params(state, num_seeds, seed_index)


def load_policy(run_dir: str, step: int | None = None, seed_index: int = 0):
    """``(config, env, step, act)`` for checkpoint ``step`` (default: the newest intact one).

    ``env`` is the run's training environment (:func:`vasa.algos.ppo.make_env`); ``act(obs
    [O] float32 or [N, O], key, state=None) -> action [A] or [N, A] float32`` is the
    deterministic policy (Gaussian mean, observations z-filtered with the run's statistics)
    of seed ``seed_index`` of a ``--num-seeds`` run. A recurrent run (``--core lstm/gru``)
    gives the batched ``act(obs [N, ...], memory) -> (action [N, A], memory)`` instead, with
    ``act.zero_carry(N)`` the memory at the start of an episode: carry it from step to step.

    Raises:
      ValueError: ``seed_index`` outside ``[0, num_seeds)``.
    """
    config = read_ppo_config(run_dir)
    if not 0 <= seed_index < config.num_seeds:
        raise ValueError(f"seed_index={seed_index} is not allowed: {run_dir} trained seeds 0..{config.num_seeds - 1}.")
    env = ppo.make_env(config)
    checkpointer = Checkpointer(run_dir)
    try:
        step, params = _restore_params(checkpointer, ppo.init(config, env), step, config.num_seeds, seed_index)
    finally:
        checkpointer.close()
    return config, env, step, _acting(config, env, params)


def checkpoint_steps(run_dir: str) -> list[int]:
    """Checkpointed iterations of ``run_dir``, ascending."""
    checkpointer = Checkpointer(run_dir)
    try:
        return checkpointer.steps()
    finally:
        checkpointer.close()


def _wall_times(run_dir: str) -> dict[int, float]:
    """Iteration -> seconds of training (``metrics.csv``'s ``wall_time`` column, when logged)."""
    path = os.path.join(run_dir, "metrics.csv")
    if not os.path.exists(path):
        return {}
    out = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row.get("iteration") and row.get("wall_time"):
                out[int(float(row["iteration"]))] = float(row["wall_time"])
    return out


def success_curve(run_dir: str, steps: Sequence[int] | None = None, num_episodes: int = 64, seed: int = 0,
                  metric: str = "success", log: Callable[[str], None] | None = print) -> list[dict]:
    """Success rate of each checkpoint of a PPO, SAC or DDPG run on fresh episodes of its environment.

    Every checkpoint in ``steps`` (default: all) is restored and its deterministic policy
    (PPO's Gaussian mean, SAC's squashed mean, DDPG's actor) run for one full episode (the
    run's ``episode_length``) from ``num_episodes`` initial states drawn with
    ``jax.random.PRNGKey(seed)`` (the same states for every checkpoint, never demonstration
    starts); an episode counts as a success when ``state.metrics[metric]`` was set at any step
    (robosuite's convention). A recurrent policy's memory starts at zero and is carried
    through the episode. One program is compiled and reused for all checkpoints.

    Returns:
      rows ``{"iteration", "env_steps", "time_s" (NaN if not logged), "success" (fraction),
      "success_std", "return", "return_std"}``, ascending in iteration.

    Raises:
      RunDirectoryError: ``run_dir`` holds no PPO, SAC or DDPG run, or no checkpoint.
      ValueError: ``steps`` without a checkpoint, a ``metric`` the task does
        not report, or ``num_episodes`` < 1 (each message names the value and what is allowed).
    """
    if isinstance(num_episodes, bool) or not isinstance(num_episodes, int) or num_episodes < 1:
        raise ValueError(f"num_episodes={num_episodes!r} is not allowed: an integer >= 1.")
    algorithm, config = read_run_config(run_dir)
    available = checkpoint_steps(run_dir)
    steps = available if steps is None else [int(s) for s in steps]
    missing = sorted(set(steps) - set(available))
    if missing:
        raise ValueError(f"steps {missing} are not allowed: {run_dir} has checkpoints {available}.")
    if not steps:
        raise RunDirectoryError(f"{run_dir} has no checkpoints to evaluate.")
    run = _Evaluated(algorithm, config)
    reported = sorted(jax.eval_shape(run.env.reset, jax.random.PRNGKey(0)).metrics)
    if metric not in reported:
        raise ValueError(f"metric={metric!r} is not allowed: {config.env} reports {reported}.")

    @jax.jit
    def evaluate(params, key):
        act = run.acting(params)
        memory = act.zero_carry(num_episodes) if run.recurrent else None
        return episode_metrics(run.env, act, key, num_episodes, carry=memory, metrics=(metric,))

    times = _wall_times(run_dir)
    rows = []
    checkpointer = Checkpointer(run_dir)
    try:
        for step in steps:
            _, state = checkpointer.restore(run.template, step)
            out = evaluate(run.params(state), jax.random.PRNGKey(seed))
            succ = np.asarray(out[metric] > 0, np.float64)
            ret = np.asarray(out["return"], np.float64)
            rows.append({"iteration": step, "env_steps": int(step) * config.env_steps_per_iteration,
                         "time_s": times.get(step, float("nan")), "success": succ.mean(), "success_std": succ.std(),
                         "return": ret.mean(), "return_std": ret.std()})
            if log:
                log(f"{run_dir} checkpoint {step} ({rows[-1]['env_steps']:,} steps): success {succ.mean():.3f}, "
                    f"return {ret.mean():.1f} +- {ret.std():.1f}")
    finally:
        checkpointer.close()
    return rows
