"""SECANT end to end (dissertation chapter 5, Algorithm 1): train or load an expert, distil it
into a pixel student under strong augmentations, and evaluate both zero-shot under the five
appearance suites.

One run directory holds the whole pipeline::

    runs/secant-<env>-<time>/
      secant.json         the SecantConfig (a resumed run keeps it)
      stages.json         which stages have finished
      expert/             stage 1: a PPO or SAC run directory (or --expert-run elsewhere)
      student/            stage 2: a DAgger / SafeDAgger run directory (dataset in its checkpoints)
      zero_shot.csv/png   stage 3: mean +- std return per policy and suite (table 5.1's layout)

Every stage is an ordinary vasa run, so ``--resume <root>`` continues whichever stage was
interrupted, bit-for-bit on CPU, and skips the finished ones.

The expert is privileged by default: PPO on the task's own state (``obs["proprio"]``), which
trains in minutes on a CPU and labels every observation exactly; ``expert="sac_pixels"`` is the
thesis's expert, SAC from pixels with DrQ's weak augmentation (GPU-scale).

SECANT-Parallel (``--distill.parallel``, table 5.4): there is no stage 1; the PPO expert
(``ppo``'s config) starts untrained and learns during stage 2, inside the distillation program
(:mod:`vasa.distill.dagger`), and stage 3 evaluates it as it ended.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from vasa.algos import offpolicy, ppo, sac
from vasa.distill import dagger, experts
from vasa.distill.zero_shot import SUITE_NAMES, make_suite_evaluator, summarize, write_table
from vasa.envs.randomize import SuiteName as Suite, appearance_problem
from vasa.run import Checkpointer, RunConfig, require
from vasa.run.config import dataclass_from_dict
from vasa.run.fields import Length, PosInt, check_fields
from vasa.run.logger import config_to_dict
from vasa.run.rundir import RunDirectoryError, read_config_json

ExpertKind = Literal["ppo", "sac", "sac_pixels"]

# CPU-sized defaults: a privileged PPO expert on cartpole_balance at PAD's action repeat (8),
# and a student on 32x32 pixels.
_ENV = "dmc/cartpole_balance"
_PPO = ppo.PPOConfig(env=_ENV, action_repeat=8, total_env_steps=2_000_000, num_envs=128, unroll_length=32)
_SAC = sac.SACConfig(env=_ENV, action_repeat=8)
_DISTILL = dagger.DAggerConfig(env=_ENV, image_size=32, num_envs=16, expert_steps=125, student_steps=3000,
                               dataset_size=20_000, batch_size=128, hidden_layers=(256, 256))


@dataclass(frozen=True)
class SecantConfig:
    """The SECANT pipeline: which expert, how to distil, how to evaluate."""

    expert: ExpertKind = "ppo"
    """stage 1: privileged PPO or SAC on the task's state, or SAC from pixels (DrQ, the thesis's expert)"""
    expert_run: str | None = None
    """use the finished expert run in this directory (PPO or SAC) instead of training one"""
    ppo: ppo.PPOConfig = _PPO
    """stage 1 with expert=ppo"""
    sac: sac.SACConfig = _SAC
    """stage 1 with expert=sac (pixels=False) or sac_pixels (pixels=True is set)"""
    distill: dagger.DAggerConfig = _DISTILL
    """stage 2: DAgger / SafeDAgger, strong augmentations, distractors"""
    suites: Annotated[tuple[Suite, ...], Length(min=1)] = SUITE_NAMES
    """stage 3: appearance suites of the zero-shot evaluation"""
    eval_episodes: PosInt = 10
    """episodes per suite and seed"""
    eval_seeds: PosInt = 3
    """evaluation seeds per suite (different appearance draws)"""

    def expert_config(self):
        """The config of stage 1's training run (``None`` with ``expert_run``)."""
        if self.expert_run is not None:
            return None
        if self.expert == "ppo":
            return self.ppo
        return dataclasses.replace(self.sac, pixels=self.expert == "sac_pixels")

    def validate(self) -> None:
        """Check every field (nested configs included) and that the expert fits the student's
        task, before anything is compiled."""
        check_fields(self)
        self.distill.validate()
        for suite in self.suites:  # the table-top levels (SECANT's robosuite table) apply to robo/* only
            problem = appearance_problem(self.distill.env, suite)
            require(self, problem is None, "suites", problem or "")
        if self.distill.parallel:
            require(self, self.expert == "ppo", "expert", "SECANT-Parallel (distill.parallel=True) trains a PPO expert "
                    "alongside the student: expert='ppo'")
            require(self, self.expert_run is None, "expert_run", "SECANT-Parallel trains its expert from scratch: "
                    "leave expert_run unset")
        expert = self.expert_config()
        if expert is None:
            require(self, os.path.isdir(self.expert_run), "expert_run", "it must be an existing run directory")
            return
        expert.validate()
        name = f"SecantConfig.{'ppo' if self.expert == 'ppo' else 'sac'}"
        if expert.env != self.distill.env:
            raise ValueError(f"{name}.env={expert.env!r} is not allowed: the expert must learn the student's task, "
                             f"distill.env={self.distill.env!r}.")
        repeat = (expert.action_repeat or 1) if self.expert == "ppo" else expert.resolved_action_repeat()
        if repeat != self.distill.resolved_action_repeat():
            raise ValueError(f"{name}.action_repeat={repeat!r} is not allowed: it must equal the student's "
                             f"{self.distill.resolved_action_repeat()} (distill.action_repeat; default PAD's).")


# --------------------------------------------------------------------------- experts from runs


def load_expert(run_dir: str, step: int | None = None) -> experts.Expert:
    """The expert of a finished (or checkpointed) PPO or SAC run directory: its saved config,
    its newest intact checkpoint (or ``step``) restored.

    Raises:
      RunDirectoryError: the directory holds no PPO or SAC run.
    """
    saved = read_config_json(run_dir)
    if "ppo" in saved:
        config = dataclass_from_dict(ppo.PPOConfig, saved["ppo"])
        env = ppo.make_env(config)
        state = ppo.init(config, env)
        make_expert = lambda s: experts.expert_from_ppo(config, s, env=env)  # noqa: E731
    elif "sac" in saved:
        config = dataclass_from_dict(sac.SACConfig, saved["sac"])
        env = offpolicy.make_env(config)
        state = offpolicy.init(config, sac.make_learner(config, env), env)
        make_expert = lambda s: experts.expert_from_sac(config, s, env=env)  # noqa: E731
    else:
        raise RunDirectoryError(f"{run_dir} holds no PPO or SAC run (config.json sections: {sorted(saved)}).")
    checkpointer = Checkpointer(run_dir)
    try:
        _, state = checkpointer.restore(state, step)
    finally:
        checkpointer.close()
    return make_expert(state)


# --------------------------------------------------------------------------- the pipeline


def _stage_run(run: RunConfig, default: RunConfig, stage_dir: str) -> RunConfig:
    """The run settings of one stage: the stage trainer's defaults, this invocation's
    per-invocation options, and ``--resume`` when the stage has started before."""
    started = os.path.exists(os.path.join(stage_dir, "config.json")) and not run.overwrite
    return dataclasses.replace(default, run_dir=None if started else stage_dir, resume=stage_dir if started else None,
                               overwrite=run.overwrite, progress=run.progress, num_devices=run.num_devices,
                               max_iterations=run.max_iterations)


def _root(config: SecantConfig, run: RunConfig) -> tuple[SecantConfig, str]:
    if run.resume:
        path = os.path.join(run.resume, "secant.json")
        if not os.path.exists(path):
            raise RunDirectoryError(f"cannot resume {run.resume}: it holds no secant.json (is it a SECANT run?).")
        with open(path) as f:
            return dataclass_from_dict(SecantConfig, json.load(f)), run.resume
    root = run.run_dir or os.path.join("runs", f"secant-{config.distill.env.replace('/', '-')}-"
                                                f"{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.exists(os.path.join(root, "secant.json")):
        if not run.overwrite:
            raise RunDirectoryError(f"{root} already holds a SECANT run; continue it with --resume {root}, pass "
                                    "--run.overwrite to replace it (every stage), or choose another --run-dir.")
        if os.path.exists(os.path.join(root, "stages.json")):
            os.remove(os.path.join(root, "stages.json"))  # the stages' own directories are replaced as they run
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "secant.json"), "w") as f:
        json.dump(config_to_dict(config), f, indent=2, sort_keys=True)
    return config, root


def _done(root: str) -> dict:
    path = os.path.join(root, "stages.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _mark(root: str, stage: str, **info) -> None:
    done = {**_done(root), stage: info}
    with open(os.path.join(root, "stages.json"), "w") as f:
        json.dump(done, f, indent=2, sort_keys=True)


def _finished(rows: list[dict], total: int) -> bool:
    return bool(rows) and int(rows[-1]["iteration"]) >= total


def make_suite_env(config: dagger.DAggerConfig, suite: str, seed_offset: int = 2_000):
    """The student's pixel environment under an appearance suite (for zero-shot evaluation)."""
    return dagger.make_env(config, appearance=suite, seed_offset=seed_offset)


def zero_shot(config: SecantConfig, policies: dict[str, tuple[Any, list]]) -> list[dict]:
    """Evaluate ``policies[name] = (act, [params per seed])`` (``act(params, obs) -> actions``
    on batched pixel-env observations) on ``config.suites``: ``config.eval_seeds`` seeds x
    ``config.eval_episodes`` episodes per policy parameters; returns :func:`summarize`'s rows.
    Policies that share an ``act`` function share compiled programs."""
    evaluators, returns = {}, {}
    for name, (act, params_list) in policies.items():
        if act not in evaluators:
            evaluators[act] = make_suite_evaluator(lambda s: make_suite_env(config.distill, s), act, config.suites,
                                                   config.eval_episodes)
        evaluate = evaluators[act]
        returns[name] = {s: [evaluate(p, s, 10_000 * i + seed) for i, p in enumerate(params_list)
                             for seed in range(config.eval_seeds)] for s in config.suites}
    return summarize(returns)


def train(config: SecantConfig = SecantConfig(), run: RunConfig = RunConfig()):
    """Run the pipeline (or continue it with ``run.resume``): stage 1 trains the expert (or
    loads ``expert_run``), stage 2 distils the student, stage 3 writes the zero-shot table.

    ``run``'s per-invocation options (``progress``, ``num_devices``, ``max_iterations`` per
    stage) pass to each stage; each stage keeps its trainer's default logging and checkpoint
    intervals. Stopping early (``max_iterations``) ends the pipeline after that stage's
    checkpoint; ``--resume <root>`` continues it.

    Returns ``(student_policy, rows)``: the student's ``policy(obs) -> action`` and the
    zero-shot table's rows (``None`` for both when a stage stopped early).
    """
    run.validate()
    config.validate()
    config, root = _root(config, run)
    done = _done(root)

    # stage 1: the expert (SECANT-Parallel: none, it learns in stage 2)
    if config.distill.parallel:
        expert = experts.ppo_learner(config.ppo)
    elif config.expert_run is not None:
        expert = load_expert(config.expert_run)
    elif "expert" in done:
        expert = load_expert(os.path.join(root, "expert"))
    else:
        stage_dir = os.path.join(root, "expert")
        expert_config = config.expert_config()
        if config.expert == "ppo":
            _, state, rows = ppo.train(expert_config, _stage_run(run, RunConfig(), stage_dir))
            total, expert = expert_config.num_iterations, experts.expert_from_ppo(expert_config, state)
        else:
            _, state, rows = sac.train(expert_config, _stage_run(run, offpolicy.DEFAULT_RUN, stage_dir))
            total = expert_config.warmup_iterations + expert_config.num_iterations
            expert = experts.expert_from_sac(expert_config, state)
        if not _finished(rows, total):
            print(f"SECANT stage 1 (expert) stopped early; continue with --resume {root}")
            return None, None
        _mark(root, "expert", iterations=total)

    # stage 2: the student
    stage_dir = os.path.join(root, "student")
    student_policy, state, rows = dagger.train(config.distill, expert, _stage_run(run, dagger.DEFAULT_RUN, stage_dir))
    if not _finished(rows, config.distill.student_steps) and "student" not in done:
        print(f"SECANT stage 2 (student) stopped early; continue with --resume {root}")
        return None, None
    _mark(root, "student", iterations=config.distill.student_steps)
    expert = dagger.final_expert(config.distill, expert, state)

    # stage 3: zero-shot evaluation of both
    student = dagger.Student(config.distill, dagger.make_env(config.distill))
    rows = zero_shot(config, {expert.name: (expert.act, [expert.params]),
                              "secant student": (student.policy, [state.student])})
    csv_path, png_path = write_table(rows, root)
    _mark(root, "zero_shot", csv=csv_path, png=png_path)
    for r in rows:
        print(f"{r['policy']:>24s} {r['suite']:>11s} {r['mean']:8.1f} +- {r['std']:.1f}")
    print(f"zero-shot table: {csv_path}, {png_path}")
    return student_policy, rows


def seeds_mean(rows: list[dict], policy: str, suite: str) -> float:
    """The mean return of ``policy`` under ``suite`` in :func:`zero_shot`'s rows."""
    for r in rows:
        if r["policy"] == policy and r["suite"] == suite:
            return float(r["mean"])
    raise KeyError((policy, suite))


__all__ = ["SecantConfig", "load_expert", "make_suite_env", "seeds_mean", "train", "zero_shot"]
