"""vasa SAC: DrQ from pixels on dmc/cartpole_swingup, and state SAC against Brax's SAC.

Two parts (``--part pixels|state|both``), one process, one device.

**pixels** (vasa only: no JAX peer trains SAC from pixels on the accelerator). vasa SAC in
pixel mode (DrQ: shared conv encoder trained by the critic, random-shift augmentation, twin Q,
learned temperature) on ``dmc/cartpole_swingup`` (MuJoCo Playground's ``CartpoleSwingup``,
``impl="jax"``), observing 84x84 RGB frames rendered by vasa's own ray caster, frame stack 3,
action repeat 8 (PAD's, for cartpole). The loop is driven here with the lower-level API of
:mod:`vasa.algos.offpolicy` (``init``, ``make_train_step``, ``make_evaluate``):

* compile: the state's initialisation, the warm-up step (uniform random actions, no update),
  the training step and the evaluation are each compiled ahead of time
  (``.lower(...).compile()``) and their seconds reported separately; none of it is in the
  training time;
* warm-up: ``config.warmup_iterations`` collection-only iterations fill ``learning_starts``
  transitions; their frames/s is the throughput of physics + rendering + replay writes alone;
* training: iterations of ``num_envs x steps_per_iteration`` environment steps followed by
  ``replay_ratio x num_envs x steps_per_iteration`` gradient updates of ``batch_size``; every
  ``--pixels.eval-every-steps`` environment steps the timer stops and the deterministic policy
  is evaluated on ``--pixels.num-eval-envs`` fresh episodes (not timed; the evaluation
  environment of ``offpolicy.make_env(config, evaluation=True)``: the same ``train`` appearance
  suite, another appearance seed). Iterations are dispatched in blocks without host syncs (a
  block doubles while it takes under a second), so the budget is checked about once a second;
* reported: environment frames/s (environment steps, action repeats counted, per second of
  training), transitions/s (rendered observations), gradient updates/s, and the wall clock
  (warm-up + training, no compile, no evaluation) until the evaluation return first reaches
  ``--target-return``; when ``--time-budget-s`` of that wall clock (or the step budget) runs
  out first, the best return and the steps and time reached are reported instead.

**state**: vasa SAC and ``brax.training.agents.sac.train.train`` (Brax 0.14.2) on the same
Playground ``CartpoleSwingup`` with state observations (Brax's side wrapped by
``mujoco_playground.wrapper.wrap_for_brax_training``, as Playground's notebooks do), trained
*interleaved* in this process as ``ppo_vs_brax.py`` does: vasa's training is driven from
Brax's ``progress_fn``, so after each Brax epoch vasa trains to the same environment step and
is evaluated there (deterministic policy, ``--state.num-eval-envs`` episodes, at the
``--state.num-evals`` points Brax reports, step 0 included).

Matched settings (Brax name -> vasa ``SACConfig`` field): ``num_envs``; ``batch_size``;
``learning_rate`` (actor and critic); ``discounting`` -> ``gamma``; ``tau``;
``reward_scaling=1`` (vasa has none); ``min_replay_size`` -> ``learning_starts``;
``max_replay_size`` -> ``buffer_size``; ``action_repeat``; ``episode_length=1000`` (task steps
in both); ``normalize_observations=False`` (vasa has none for SAC); hidden sizes
(``make_sac_networks(hidden_layer_sizes=...)`` -> ``hidden_layers``, ReLU in both, no layer
norm); ``deterministic_eval=True``; initial temperature 1 (Brax's ``log_alpha = 0`` ->
``init_temperature=1``); target entropy ``-0.5 |A|`` (Brax's) -> ``target_entropy``; actor,
temperature and target updated on every gradient update in Brax -> ``actor_update_freq = 1``,
``target_update_freq = 1``; one-step returns (``n_step=1``).

Update ratio: one Brax training step is one ``actor_step`` of all ``num_envs`` environments
(``num_envs`` transitions, ``num_envs x action_repeat`` environment steps) followed by
``grad_updates_per_step`` SGD steps, each on its own ``batch_size`` minibatch (Brax samples
``batch_size x grad_updates_per_step`` transitions and splits them). vasa's iteration with
``steps_per_iteration=1`` is the same collection followed by ``replay_ratio x num_envs``
updates, so ``replay_ratio = grad_updates_per_step / num_envs`` gives the same updates per
iteration, updates per transition and updates per environment step. Warm-up: Brax prefills
``ceil(min_replay_size / num_envs)`` actor steps, vasa warms up for
``ceil(learning_starts / num_envs)`` iterations: the same count, so both have taken the same
environment steps at every evaluation (checked).

Differences neither library exposes: Brax prefills with its initial stochastic policy, vasa with
uniform random actions; Brax's temperature has its own Adam at lr 3e-4, vasa's uses
``learning_rate`` (they agree when ``--state.learning-rate 3e-4``); within one update Brax
updates temperature, critic, then actor against the *pre-update* critic, vasa updates the
critic, then actor and temperature against the updated critic; Brax drops truncated
transitions from the critic loss, vasa bootstraps them from the true final observation; Brax's
policy std is ``softplus(x) + 0.001``, vasa's ``exp(log_std)`` with log-std clipped to
``[-10, 2]``; Brax's critic loss is ``0.5 x`` the mean over both critics, vasa's the sum (the
same gradient direction; Adam removes the scale); initialisations differ (Brax lecun-uniform).

Measurements for the state part, taken the same way for both:

* SPS: environment steps per second of training over epochs 2..n (Brax's own
  ``training/sps``; vasa timed likewise until the last iteration's metrics are ready);
* compile: seconds spent tracing, lowering and compiling the training functions (Brax's
  ``prefill_replay_buffer`` and ``training_epoch``; vasa's warm-up and training steps), from
  JAX's own compile events (``jax.monitoring``), so evaluation compiles are not counted; and
  ``first epoch excess``: the first epoch's time (which includes the prefill and every
  first-call cost, in both) less the time a steady epoch takes at that SPS;
* return at each evaluation step.

Usage (the defaults are GPU-sized; ``--quick`` sets small CPU values for the fields left at
their defaults, see ``QUICK``)::

    python benchmarks/sac_pixels.py --part pixels --json /tmp/sac_pixels.json
    python benchmarks/sac_pixels.py --part state --state.total-env-steps 1000000
    python benchmarks/sac_pixels.py --quick --json /tmp/sac_quick.json
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import functools
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import tyro

from vasa.algos import offpolicy, sac
from vasa.dist.mesh import make_mesh
from vasa.run import chunk_plan

try:  # run as a script: benchmarks/ is on sys.path
    from _brax_shim import shim_removed_jax_apis
except ImportError:  # imported as benchmarks.sac_pixels
    from benchmarks._brax_shim import shim_removed_jax_apis

ENV_ID = "dmc/cartpole_swingup"
PLAYGROUND_NAME = "CartpoleSwingup"


@dataclass(frozen=True)
class PixelArgs:
    """Pixels part: vasa SAC (DrQ) from rendered frames."""

    image_size: int = 84
    """rendered image height and width"""
    action_repeat: int | None = None
    """action repeat (None: PAD's, 8 for cartpole)"""
    num_envs: int = 64
    """parallel training environments"""
    steps_per_iteration: int = 1
    """environment steps per environment per iteration"""
    replay_ratio: float = 1.0
    """gradient updates per collected transition"""
    batch_size: int = 512
    """transitions per gradient update"""
    buffer_size: int = 100_000
    """replay capacity in transitions"""
    learning_starts: int = 1000
    """transitions collected with uniform random actions before learning"""
    total_env_steps: int = 500_000
    """step budget in environment steps (action repeats counted)"""
    hidden_layers: tuple[int, ...] = (1024, 1024)
    """actor and critic MLP hidden sizes"""
    learning_rate: float = 1e-3
    """Adam learning rate"""
    eval_every_steps: int = 10_000
    """evaluate every this many environment steps (action repeats counted)"""
    num_eval_envs: int = 10
    """episodes per evaluation"""
    stop_at_target: bool = True
    """stop training at the first evaluation that reaches --target-return"""


@dataclass(frozen=True)
class StateArgs:
    """State part: vasa SAC against Brax SAC from state observations, equal settings."""

    num_envs: int = 128
    """parallel training environments"""
    action_repeat: int = 1
    """action repeat in both"""
    total_env_steps: int = 1_000_000
    """training length (Brax's num_timesteps; both stop at Brax's rounding)"""
    num_evals: int = 11
    """evaluations, the first before training (>= 3)"""
    num_eval_envs: int = 128
    """episodes per evaluation"""
    batch_size: int = 512
    """transitions per gradient update"""
    grad_updates_per_step: int = 8
    """Brax's gradient updates per actor step of all envs (vasa replay_ratio = this / num_envs)"""
    learning_rate: float = 1e-3
    """Adam learning rate of actor and critic"""
    discount: float = 0.99
    """discount"""
    tau: float = 0.005
    """target EMA rate"""
    min_replay_size: int = 8192
    """Brax min_replay_size = vasa learning_starts"""
    max_replay_size: int = 1_048_576
    """Brax max_replay_size = vasa buffer_size"""
    hidden_layers: tuple[int, ...] = (256, 256)
    """actor and critic MLP hidden sizes"""


@dataclass(frozen=True)
class Args:
    """vasa SAC from pixels (time to a target return) and from states (against Brax SAC)."""

    part: Literal["pixels", "state", "both"] = "both"
    """which part to run"""
    pixels: PixelArgs = field(default_factory=PixelArgs)
    state: StateArgs = field(default_factory=StateArgs)
    target_return: float = 750.0
    """pixels part: evaluation return to reach"""
    time_budget_s: float = 900.0
    """pixels part: training wall clock (no compile, no evaluation) allowed to reach the target"""
    quick: bool = False
    """small CPU-sized run: fields left at their defaults take the values in QUICK"""
    seed: int = 0
    """random seed"""
    json: Path | None = None
    """write the results as JSON here"""


# Applied by --quick to the fields still at their defaults: enough to measure throughput on a
# 2-core CPU in a few minutes per part, far too little to reach the target.
QUICK = dict(
    pixels=dict(num_envs=4, batch_size=64, hidden_layers=(256, 256), buffer_size=5000, learning_starts=200,
                eval_every_steps=400, num_eval_envs=2, total_env_steps=100_000),
    state=dict(num_envs=32, total_env_steps=40_000, num_evals=5, num_eval_envs=16, batch_size=128,
               min_replay_size=1024, max_replay_size=40_000),
    top=dict(time_budget_s=120.0),
)


def apply_quick(args: Args) -> Args:
    def fill(obj, values):
        defaults = type(obj)()
        return dataclasses.replace(obj, **{k: v for k, v in values.items() if getattr(obj, k) == getattr(defaults, k)})

    args = dataclasses.replace(args, pixels=fill(args.pixels, QUICK["pixels"]), state=fill(args.state, QUICK["state"]))
    return fill(args, QUICK["top"])


# --------------------------------------------------------------------------- compile accounting


class CompileLog:
    """Seconds JAX spends tracing, lowering and compiling, by owner tag and function name.

    Listens to JAX's own events (``/jax/core/compile/{jaxpr_trace,jaxpr_to_mlir_module,
    backend_compile}_duration``); ``tag`` says whose code is running (set around each call).
    """

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def __init__(self):
        self.tag = "other"
        self.seconds: dict[str, dict[str, float]] = collections.defaultdict(lambda: collections.defaultdict(float))
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if event in self.EVENTS:
            self.seconds[self.tag][str(kwargs.get("fun_name", "?"))] += duration

    def total(self, tag: str, names: tuple[str, ...] | None = None) -> float:
        """Seconds under ``tag`` (only functions whose name contains one of ``names``, if given)."""
        return sum(s for n, s in self.seconds[tag].items() if names is None or any(k in n for k in names))

    def as_dict(self) -> dict:
        return {tag: dict(sorted(v.items(), key=lambda kv: -kv[1])) for tag, v in self.seconds.items()}


# --------------------------------------------------------------------------- pixels part


def pixel_config(args: Args) -> sac.SACConfig:
    p = args.pixels
    return sac.SACConfig(
        env=ENV_ID, pixels=True, image_size=p.image_size, action_repeat=p.action_repeat, seed=args.seed,
        num_envs=p.num_envs, steps_per_iteration=p.steps_per_iteration, replay_ratio=p.replay_ratio,
        batch_size=p.batch_size, buffer_size=p.buffer_size, learning_starts=p.learning_starts,
        total_env_steps=p.total_env_steps, hidden_layers=p.hidden_layers, learning_rate=p.learning_rate)


def timed(fn, *a):
    """``(fn(*a) with its outputs ready, seconds)``."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*a))
    return out, time.perf_counter() - start


def run_pixels(args: Args) -> dict:
    """Train vasa SAC from pixels to the target return (or the budget) and measure."""
    p = args.pixels
    config = pixel_config(args)
    mesh = make_mesh()
    env, eval_env = offpolicy.make_env(config), offpolicy.make_env(config, evaluation=True)
    learner = sac.make_learner(config, env)
    eval_key = jax.random.PRNGKey(args.seed + 10_000)

    compile_s = {}
    state, compile_s["init (state, incl. run)"] = timed(offpolicy.init, config, learner, env, mesh)
    warm_step, compile_s["warm-up step"] = timed(
        lambda: offpolicy.make_train_step(config, learner, env, mesh, warmup=True).lower(state).compile())
    train_step, compile_s["train step"] = timed(
        lambda: offpolicy.make_train_step(config, learner, env, mesh).lower(state).compile())
    evaluate, compile_s["evaluation"] = timed(
        lambda: offpolicy.make_evaluate(config, learner, eval_env, p.num_eval_envs).lower(
            state.learner, eval_key).compile())
    print("[pixels] compile " + ", ".join(f"{k} {v:.1f} s" for k, v in compile_s.items()), flush=True)

    per_it = config.env_steps_per_iteration
    warm = config.warmup_iterations
    start = time.perf_counter()
    for _ in range(warm):
        state, metrics = warm_step(state)
    jax.block_until_ready((state, metrics))
    warm_s = time.perf_counter() - start
    print(f"[pixels] warm-up: {warm} iterations, {warm * per_it:,} env steps in {warm_s:.1f} s "
          f"({warm * per_it / warm_s:,.0f} frames/s, collection only)", flush=True)

    every = max(1, -(-p.eval_every_steps // per_it))  # iterations between evaluations
    train_s, done, block, evals, reached = 0.0, 0, 1, [], None
    ended = []  # (episodes, mean return) of each iteration since the last evaluation, on device
    while done < config.num_iterations:
        # Run blocks of iterations without host syncs, doubling while a block takes under a
        # second, so syncing costs nothing measurable and the budget is overrun by ~1 s at most.
        next_eval = (done // every + 1) * every
        n = min(block, next_eval - done, config.num_iterations - done)
        start = time.perf_counter()
        for _ in range(n):
            state, metrics = train_step(state)
            ended.append((metrics["episodes"], metrics["episode_return"]))
        metrics = jax.device_get(metrics)  # waits for the last iteration
        dt = time.perf_counter() - start
        train_s += dt
        done += n
        block = block * 2 if dt < 1.0 else block
        over_budget = warm_s + train_s >= args.time_budget_s
        if not (done == next_eval or done == config.num_iterations or over_budget):
            continue
        ret = float(evaluate(state.learner, jax.random.fold_in(eval_key, done)))
        episodes, returns = (np.asarray(x, np.float64) for x in zip(*jax.device_get(ended)))
        ended = []
        train_return = float(np.sum(np.nan_to_num(returns) * episodes) / episodes.sum()) if episodes.sum() else None
        row = dict(env_steps=(warm + done) * per_it, updates=done * config.updates_per_iteration,
                   wall_s=warm_s + train_s, eval_return=ret, train_episodes=int(episodes.sum()),
                   train_episode_return=train_return, critic_loss=float(metrics["critic_loss"]),
                   alpha=float(metrics["alpha"]))
        evals.append(row)
        train_text = f"{train_return:7.1f}" if train_return is not None else "    n/a"
        print(f"[pixels] step {row['env_steps']:>9,}  updates {row['updates']:>8,}  wall {row['wall_s']:7.1f} s  "
              f"eval return {ret:7.1f}  (training episodes since last eval: {int(episodes.sum())}, mean return "
              f"{train_text}; frames/s {done * per_it / train_s:,.1f})", flush=True)
        if reached is None and ret >= args.target_return:
            reached = row
            if p.stop_at_target:
                break
        if over_budget:
            break

    best = max(evals, key=lambda r: r["eval_return"])
    frames = done * per_it
    return dict(
        settings=dict(env=ENV_ID, image_size=config.image_size, frame_stack=config.frame_stack,
                      action_repeat=config.resolved_action_repeat(), num_envs=config.num_envs,
                      steps_per_iteration=config.steps_per_iteration, replay_ratio=config.replay_ratio,
                      updates_per_iteration=config.updates_per_iteration, batch_size=config.batch_size,
                      buffer_size=config.buffer_size, learning_starts=config.learning_starts,
                      warmup_iterations=warm, hidden_layers=list(config.hidden_layers),
                      learning_rate=config.learning_rate, encoder=config.encoder,
                      eval_every_steps=every * per_it, num_eval_envs=p.num_eval_envs,
                      target_return=args.target_return, time_budget_s=args.time_budget_s,
                      total_env_steps=config.num_iterations * per_it + warm * per_it),
        compile_s=compile_s,
        warmup=dict(env_steps=warm * per_it, seconds=warm_s, frames_per_s=warm * per_it / warm_s),
        training=dict(iterations=done, env_steps=frames, seconds=train_s, frames_per_s=frames / train_s,
                      transitions_per_s=done * config.transitions_per_iteration / train_s,
                      updates_per_s=done * config.updates_per_iteration / train_s),
        reached=reached is not None,
        time_to_target_s=reached["wall_s"] if reached else None,
        steps_to_target=reached["env_steps"] if reached else None,
        best_return=best["eval_return"], best_at_steps=best["env_steps"],
        final=evals[-1], evals=evals)


def print_pixels(r: dict, device: str) -> None:
    s, t = r["settings"], r["training"]
    line = "-" * 64
    print(f"\npixels: {s['env']} {s['image_size']}x{s['image_size']} RGB x {s['frame_stack']}, action repeat "
          f"{s['action_repeat']}, {s['num_envs']} envs, {s['updates_per_iteration']} updates/iteration of "
          f"{s['batch_size']}, hidden {tuple(s['hidden_layers'])}, buffer {s['buffer_size']:,}; {device}")
    print(line)
    for name, sec in r["compile_s"].items():
        print(f"{'compile, ' + name + ' [s]':44}{sec:12.1f}")
    rate = lambda x: f"{x:12,.0f}" if x >= 100 else f"{x:12.2f}"
    print(f"{'warm-up frames/s (collection only)':44}{rate(r['warmup']['frames_per_s'])}")
    print(f"{'training env frames/s (incl. action repeat)':44}{rate(t['frames_per_s'])}")
    print(f"{'training transitions/s (rendered obs)':44}{rate(t['transitions_per_s'])}")
    print(f"{'gradient updates/s':44}{rate(t['updates_per_s'])}")
    print(f"{'env steps trained (warm-up excluded)':44}{t['env_steps']:12,}")
    if r["reached"]:
        print(f"{'wall clock to return >= %g [s]' % s['target_return']:44}{r['time_to_target_s']:12.1f}")
        print(f"{'env steps to return >= %g' % s['target_return']:44}{r['steps_to_target']:12,}")
    else:
        print(f"{'target %g not reached; wall clock [s]' % s['target_return']:44}{r['final']['wall_s']:12.1f}")
        print(f"{'best eval return (at env steps)':44}{r['best_return']:12.1f}  ({r['best_at_steps']:,})")
    print(f"{'final eval return':44}{r['final']['eval_return']:12.1f}")
    print(line)


# --------------------------------------------------------------------------- state part


def state_schedule(a: StateArgs) -> dict:
    """Brax's schedule (its own rounding): prefill actor steps, training steps per epoch, and
    the environment steps at each evaluation."""
    per_actor_step = a.num_envs * a.action_repeat
    prefill = -(-a.min_replay_size // a.num_envs)
    epochs = max(a.num_evals - 1, 1)
    per_epoch = -(-(a.total_env_steps - prefill * per_actor_step) // (epochs * per_actor_step))
    steps = [0] + [(prefill + k * per_epoch) * per_actor_step for k in range(1, epochs + 1)]
    return dict(env_steps_per_actor_step=per_actor_step, prefill_actor_steps=prefill,
                prefill_env_steps=prefill * per_actor_step, actor_steps_per_epoch=per_epoch,
                env_steps_per_epoch=per_epoch * per_actor_step, eval_steps=steps, total_env_steps=steps[-1])


def state_config(args: Args, action_size: int) -> sac.SACConfig:
    a = args.state
    return sac.SACConfig(
        env=ENV_ID, pixels=False, action_repeat=a.action_repeat, episode_length=1000, seed=args.seed,
        num_envs=a.num_envs, steps_per_iteration=1, total_env_steps=state_schedule(a)["total_env_steps"],
        learning_starts=a.min_replay_size, replay_ratio=a.grad_updates_per_step / a.num_envs,
        buffer_size=a.max_replay_size, batch_size=a.batch_size, n_step=1, gamma=a.discount,
        learning_rate=a.learning_rate, hidden_layers=a.hidden_layers, tau=a.tau, init_temperature=1.0,
        target_entropy=-0.5 * action_size, actor_update_freq=1, target_update_freq=1)  # Brax's -0.5 |A|


class VasaSAC:
    """vasa SAC advanced epoch by epoch: ``advance_to(step)`` trains up to ``step`` environment
    steps (warm-up iterations first), records the time taken, and evaluates.

    Both steps are compiled ahead of time at the start of the first epoch (so inside its time,
    as Brax's first epoch holds its compiles), as ``offpolicy.train`` does.
    """

    def __init__(self, config: sac.SACConfig, num_eval_envs: int, log: CompileLog):
        self.config, self.log = config, log
        self.mesh = make_mesh()
        self.env = offpolicy.make_env(config)
        self.learner = sac.make_learner(config, self.env)
        log.tag = "vasa:init"
        self.state = offpolicy.init(config, self.learner, self.env, self.mesh)
        self.steps = None
        self.chunk = offpolicy.DEFAULT_RUN.chunk
        log.tag = "vasa:eval"
        self.evaluate = offpolicy.make_evaluate(config, self.learner, offpolicy.make_env(config, evaluation=True),
                                                num_eval_envs)
        self.eval_key = jax.random.PRNGKey(config.seed + 10_000)
        self.iterations = 0
        self.epoch_seconds: list[float] = []
        self.evals: list[tuple[int, float]] = []
        self.compile_aot_s = 0.0

    def advance_to(self, env_steps: int) -> None:
        target = env_steps // self.config.env_steps_per_iteration
        if target > self.iterations:
            start = time.perf_counter()
            if self.steps is None:
                self.log.tag = "vasa:train"
                # one program for warm-up and learning, run offpolicy.DEFAULT_RUN.chunk
                # iterations per call, as sac.train does for state runs
                self.steps = offpolicy.make_train_step(self.config, self.learner, self.env, self.mesh,
                                                       chunk=self.chunk).lower(self.state, self.chunk).compile()
                self.compile_aot_s = time.perf_counter() - start
                self.log.tag = "vasa:run"
            warm = self.config.warmup_iterations
            plan = (chunk_plan(self.iterations, min(target, warm), self.chunk)
                    + chunk_plan(max(self.iterations, warm), target, self.chunk))
            for count in plan:
                self.state, metrics = self.steps(self.state, count)
            jax.block_until_ready(metrics)
            self.epoch_seconds.append(time.perf_counter() - start)
            self.iterations = target
        self.log.tag = "vasa:eval"
        key = jax.random.fold_in(self.eval_key, len(self.evals))
        self.evals.append((self.iterations * self.config.env_steps_per_iteration,
                           float(self.evaluate(self.state.learner, key))))


def brax_train_kwargs(args: Args) -> dict:
    from brax.training.agents.sac import networks as brax_sac_networks

    a = args.state
    return dict(
        num_timesteps=a.total_env_steps, episode_length=1000, action_repeat=a.action_repeat, num_envs=a.num_envs,
        num_eval_envs=a.num_eval_envs, learning_rate=a.learning_rate, discounting=a.discount, seed=args.seed,
        batch_size=a.batch_size, num_evals=a.num_evals, normalize_observations=False, reward_scaling=1.0,
        tau=a.tau, min_replay_size=a.min_replay_size, max_replay_size=a.max_replay_size,
        grad_updates_per_step=a.grad_updates_per_step, deterministic_eval=True,
        network_factory=functools.partial(brax_sac_networks.make_sac_networks, hidden_layer_sizes=a.hidden_layers),
    )


def summary(epoch_seconds: list[float], steps_per_epoch: int, evals: list[tuple[int, float]], compile_s: float) -> dict:
    """SPS over epochs 2..n; the first epoch's excess over a steady epoch; compile seconds."""
    sps = steps_per_epoch * (len(epoch_seconds) - 1) / sum(epoch_seconds[1:])
    return dict(compile_s=compile_s, first_epoch_excess_s=epoch_seconds[0] - steps_per_epoch / sps, sps=sps,
                epoch_s=epoch_seconds, evals=evals)


def ratio(a: float, b: float) -> float | None:
    return a / b if a > 0 and b > 0 else None


BRAX_TRAIN_FNS = ("prefill_replay_buffer", "training_epoch")


@contextlib.contextmanager
def tag_pmapped(log: CompileLog, prefix: str):
    """While active, every ``jax.pmap``-ed function's calls run under the compile tag
    ``prefix + its name`` (JAX 0.10's pmap reports its compiles under a generic name)."""
    original = jax.pmap

    def pmap(fun, *a, **kw):
        mapped = original(fun, *a, **kw)
        name = getattr(fun, "__name__", "?")

        @functools.wraps(fun)
        def call(*args, **kwargs):
            previous, log.tag = log.tag, prefix + name
            try:
                return mapped(*args, **kwargs)
            finally:
                log.tag = previous

        return call

    jax.pmap = pmap
    try:
        yield
    finally:
        jax.pmap = original


def run_state(args: Args, log: CompileLog) -> dict:
    """Train Brax SAC and vasa SAC interleaved on state cartpole_swingup; measure both."""
    from brax.training.agents.sac import train as brax_sac
    from mujoco_playground import registry, wrapper

    a = args.state
    plan = state_schedule(a)
    environment = registry.load(PLAYGROUND_NAME, config_overrides={"impl": "jax"})
    config = state_config(args, environment.action_size)
    if config.warmup_iterations != plan["prefill_actor_steps"]:
        raise RuntimeError("vasa warm-up and Brax prefill differ")
    log.tag = "vasa:init"
    vasa = VasaSAC(config, a.num_eval_envs, log)
    brax_evals: list[tuple[int, float]] = []
    brax_epoch_seconds: list[float] = []

    def progress(step: int, metrics: dict) -> None:
        brax_evals.append((int(step), float(metrics["eval/episode_reward"])))
        if step > 0:
            brax_epoch_seconds.append(float(metrics["training/walltime"]) - sum(brax_epoch_seconds))
        vasa.advance_to(step)
        log.tag = "brax"
        line = f"[state] step {step:>10,}   return brax {brax_evals[-1][1]:8.1f}  vasa {vasa.evals[-1][1]:8.1f}"
        if step > 0:
            line += f"   epoch brax {brax_epoch_seconds[-1]:7.1f} s  vasa {vasa.epoch_seconds[-1]:7.1f} s"
        print(line, flush=True)

    log.tag = "brax"
    with tag_pmapped(log, "brax:"):
        brax_sac.train(environment, wrap_env_fn=wrapper.wrap_for_brax_training, progress_fn=progress,
                       **brax_train_kwargs(args))
    log.tag = "other"

    expected = plan["eval_steps"]
    if [s for s, _ in brax_evals] != expected or [s for s, _ in vasa.evals] != expected:
        raise RuntimeError(f"evaluation steps differ: brax {brax_evals}, vasa {vasa.evals}, expected {expected}")
    brax = summary(brax_epoch_seconds, plan["env_steps_per_epoch"], brax_evals,
                   sum(log.total("brax:" + name) for name in BRAX_TRAIN_FNS))
    ours = summary(vasa.epoch_seconds, plan["env_steps_per_epoch"], vasa.evals, log.total("vasa:train"))
    ours["compile_aot_s"] = vasa.compile_aot_s
    settings = dict(env=ENV_ID, playground=PLAYGROUND_NAME,
                    **{**dataclasses.asdict(a), "requested_env_steps": a.total_env_steps, **plan},
                    vasa_replay_ratio=config.replay_ratio, vasa_updates_per_iteration=config.updates_per_iteration,
                    vasa_learning_starts=config.learning_starts, vasa_buffer_size=config.buffer_size)
    return dict(settings=settings, brax=brax, vasa=ours, ratio=dict(
        compile=ratio(ours["compile_s"], brax["compile_s"]), sps=ratio(ours["sps"], brax["sps"]),
        final_return=ratio(ours["evals"][-1][1], brax["evals"][-1][1])))


def _fmt_ratio(x: float | None) -> str:
    return f"{x:12.2f}" if x is not None else f"{'n/a':>12}"


def print_state(r: dict, device: str) -> None:
    s, b, v = r["settings"], r["brax"], r["vasa"]
    line = "-" * 70
    print(f"\nstate: {s['env']} ({s['num_envs']} envs, action repeat {s['action_repeat']}, batch {s['batch_size']}, "
          f"{s['grad_updates_per_step']} updates per actor step = replay ratio {s['vasa_replay_ratio']:g}, hidden "
          f"{tuple(s['hidden_layers'])}, {s['total_env_steps']:,} env steps; {device})")
    print(line)
    print(f"{'':32}{'brax':>12}{'vasa':>12}{'vasa/brax':>12}")
    print(line)
    print(f"{'compile, training fns [s]':32}{b['compile_s']:12.1f}{v['compile_s']:12.1f}{_fmt_ratio(r['ratio']['compile'])}")
    print(f"{'first epoch excess [s]':32}{b['first_epoch_excess_s']:12.1f}{v['first_epoch_excess_s']:12.1f}"
          f"{_fmt_ratio(ratio(v['first_epoch_excess_s'], b['first_epoch_excess_s']))}")
    print(f"{'training SPS (no compile)':32}{b['sps']:12,.0f}{v['sps']:12,.0f}{_fmt_ratio(r['ratio']['sps'])}")
    print(f"{'gradient updates/s':32}{b['sps'] * s['grad_updates_per_step'] / s['env_steps_per_actor_step']:12,.0f}"
          f"{v['sps'] * s['grad_updates_per_step'] / s['env_steps_per_actor_step']:12,.0f}{_fmt_ratio(r['ratio']['sps'])}")
    for (step, rb), (_, rv) in zip(b["evals"], v["evals"]):
        print(f"{f'return @ {step:,} steps':32}{rb:12.1f}{rv:12.1f}{_fmt_ratio(ratio(rv, rb))}")
    print(line)


# --------------------------------------------------------------------------- main


try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.<name>
    from _common import vasa_revision
except ImportError:
    from benchmarks._common import vasa_revision


def git_commit() -> str:
    """The checkout's full commit hash, or "unknown"."""
    repo = Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(args: Args) -> None:
    if args.quick:
        args = apply_quick(args)
    if args.state.num_evals < 3:
        raise ValueError(f"state.num_evals={args.state.num_evals} is not allowed: it must be >= 3 (two epochs).")
    if args.state.min_replay_size >= args.state.total_env_steps:
        raise ValueError("state.min_replay_size must be below state.total_env_steps (Brax trains nothing otherwise).")
    shim_removed_jax_apis()
    log = CompileLog()
    dev = jax.devices()[0]
    device = (f"{jax.device_count()} x {dev.platform}:{dev.device_kind}, {os.cpu_count()} CPU cores, "
              f"jax {jax.__version__}")
    revision = vasa_revision()
    results = {}
    start = time.perf_counter()
    if args.part in ("pixels", "both"):
        results["pixels"] = run_pixels(args)
        print_pixels(results["pixels"], f"{device}; vasa {revision}")
    if args.part in ("state", "both"):
        results["state"] = run_state(args, log)
        print_state(results["state"], f"{device}; vasa {revision}")
    results["compile_events_s"] = log.as_dict()
    print(f"total benchmark time {time.perf_counter() - start:.0f} s")
    if args.json:
        record = dict(date=datetime.date.today().isoformat(), device=device, platform=dev.platform,
                      device_kind=dev.device_kind, cpu_count=os.cpu_count(), jax_version=jax.__version__,
                      vasa_revision=revision, git_commit=git_commit(), args=_jsonable(dataclasses.asdict(args)), results=results)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2))
        print(f"wrote {args.json}")


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return str(x) if isinstance(x, Path) else x


if __name__ == "__main__":
    main(tyro.cli(Args))
