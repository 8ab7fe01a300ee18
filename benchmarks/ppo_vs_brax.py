"""vasa PPO against Brax PPO: compile time, training throughput and returns at equal steps.

Both libraries train in this one process, on the same device and the same environment, with
the same settings, and the runs are interleaved: vasa's training is driven from Brax's
``progress_fn``, so after each Brax training epoch vasa trains over the same environment
steps and evaluates at the same point. Load on a shared machine therefore falls on both.

Environments:

* ``brax/halfcheetah``: ``brax.envs.get_environment("halfcheetah", backend="mjx")``, wrapped
  by Brax's own training wrapper; vasa's ``brax/halfcheetah`` is the same environment.
* ``dmc/cheetah_run``: MuJoCo Playground ``CheetahRun`` with ``impl="jax"``, wrapped for Brax
  by ``mujoco_playground.wrapper.wrap_for_brax_training`` (as Playground's notebooks do);
  vasa's ``dmc/cheetah_run`` is the same Playground environment.

Matched settings: number of environments, unroll length, minibatches (Brax
``batch_size * num_minibatches == num_envs``, so one Brax training step is one unroll per
environment, as one vasa iteration is), epochs (Brax ``num_updates_per_batch``), network
sizes, swish activation, tanh-squashed Gaussian with state-dependent std (vasa's initial
log-std set to Brax's, ``log(softplus(0) + 0.001)``), constant learning rate, entropy
coefficient, discount, GAE lambda, clip epsilon, value-loss coefficient, gradient clipping,
reward scaling, observation normalisation, advantage normalisation, action repeat 1,
episode length 1000, auto-reset to a cached first state. Evaluation: deterministic policy,
``--num-eval-envs`` fresh episodes, at the ``--num-evals`` points Brax reports (step 0
included).

The algorithms still differ in details neither library exposes: Brax masks truncated steps
out of GAE while vasa bootstraps from the final observation; Brax updates the observation
statistics before its epochs, vasa after, and vasa clips normalised observations to +-10;
Brax minibatches whole unrolls, vasa single transitions; both estimate the squashed entropy
from one sample, Brax a fresh one, vasa the behaviour sample's; the policy's output layer is
initialised lecun-uniform in Brax, near zero in vasa (so vasa starts from near-zero actions);
Adam epsilon is 1e-8 in Brax and 1e-5 in vasa.

Measurements, taken the same way for both from the training time of each epoch (the
training between two evaluations; Brax's own ``training/walltime``, and vasa's timed
likewise until the last iteration's metrics are ready):

* SPS: environment steps per second of training over epochs 2..n;
* compile: the first epoch's time less the time a steady epoch takes at that SPS, i.e.
  tracing, compiling and any other first-call cost of the training step (evaluation is
  compiled outside the training time and not counted; under JAX 0.10 Brax's evaluator
  compiles a second time after the first epoch, its state's sharding having changed);
* return: mean deterministic evaluation return at each evaluation step.

The per-epoch times are printed as training goes: a later epoch much slower than the
others means a recompilation.

Usage (a few minutes per environment on a CPU; the defaults are GPU-sized)::

    python benchmarks/ppo_vs_brax.py --env brax/halfcheetah --num-envs 128 \\
        --unroll-length 20 --num-minibatches 8 --total-env-steps 200000 --num-evals 5 \\
        --num-eval-envs 16 --out results.json
    python benchmarks/ppo_vs_brax.py   # both environments, full size
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jax
import numpy as np
import tyro
from brax import envs as brax_envs
from brax.training.agents.ppo import networks as brax_networks
from brax.training.agents.ppo import train as brax_ppo

from vasa.algos import ppo
from vasa.run import RunConfig, chunk_plan

try:  # run as a script: benchmarks/ is on sys.path
    from _brax_shim import shim_removed_jax_apis
except ImportError:  # imported as benchmarks.ppo_vs_brax
    from benchmarks._brax_shim import shim_removed_jax_apis

EnvId = Literal["brax/halfcheetah", "dmc/cheetah_run"]

# Brax's tanh-normal policy has std = softplus(x) + 0.001 with x near 0 at initialisation.
BRAX_INIT_LOG_STD = math.log(math.log(2.0) + 0.001)


@dataclass(frozen=True)
class Args:
    """Settings shared by both libraries."""

    env: tuple[EnvId, ...] = ("brax/halfcheetah", "dmc/cheetah_run")
    """environments to benchmark, one after the other"""
    num_envs: int = 2048
    """parallel training environments"""
    unroll_length: int = 20
    """environment steps per environment per iteration (Brax training step)"""
    num_minibatches: int = 32
    """minibatches per epoch; must divide num_envs (Brax batch_size = num_envs / this)"""
    num_epochs: int = 4
    """passes over each iteration's data (Brax num_updates_per_batch)"""
    total_env_steps: int = 20_000_000
    """training length per library, rounded up to whole iterations between evaluations"""
    num_evals: int = 10
    """evaluations, the first before training (>= 3: two epochs at least)"""
    num_eval_envs: int = 128
    """episodes per evaluation"""
    policy_layers: tuple[int, ...] = (32, 32, 32, 32)
    """policy MLP hidden sizes (Brax's default)"""
    value_layers: tuple[int, ...] = (256, 256, 256, 256, 256)
    """value MLP hidden sizes (Brax's default)"""
    learning_rate: float = 3e-4
    """Adam learning rate, constant"""
    entropy_coef: float = 1e-2
    """entropy bonus weight"""
    gamma: float = 0.97
    """discount"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    clip_epsilon: float = 0.3
    """PPO ratio clip"""
    value_coef: float = 0.5
    """value-loss weight"""
    max_grad_norm: float = 0.0
    """global gradient-norm clip (0: none)"""
    reward_scaling: float = 1.0
    """reward multiplier for learning"""
    seeds: tuple[int, ...] = (0,)
    """random seeds; each trains both libraries (interleaved), one seed after the other, and
    the report adds the mean and spread over seeds"""
    out: Path | None = None
    """write the results as JSON here"""


# --------------------------------------------------------------------------- the two sides


def settings(args: Args, env_id: str) -> dict:
    """The run's schedule: iterations between evaluations and total steps (Brax's rounding)."""
    steps_per_iteration = args.num_envs * args.unroll_length
    iterations_per_eval = -(-args.total_env_steps // ((args.num_evals - 1) * steps_per_iteration))
    return dict(
        env=env_id, num_envs=args.num_envs, unroll_length=args.unroll_length,
        num_minibatches=args.num_minibatches, num_epochs=args.num_epochs,
        iterations_per_eval=iterations_per_eval,
        steps_per_eval=iterations_per_eval * steps_per_iteration,
        total_env_steps=iterations_per_eval * steps_per_iteration * (args.num_evals - 1),
    )


def vasa_config(args: Args, env_id: str, total_env_steps: int, seed: int = 0) -> ppo.PPOConfig:
    return ppo.PPOConfig(
        env=env_id, num_envs=args.num_envs, unroll_length=args.unroll_length,
        total_env_steps=total_env_steps, seed=seed, episode_length=1000, action_repeat=1,
        reset_mode="cached", surrogate="clip", clip_epsilon=args.clip_epsilon, gamma=args.gamma,
        gae_lambda=args.gae_lambda, reward_scaling=args.reward_scaling, normalize_observations=True,
        normalize_advantages=True, num_epochs=args.num_epochs, num_minibatches=args.num_minibatches,
        learning_rate=args.learning_rate, lr_schedule="constant", max_grad_norm=args.max_grad_norm,
        value_coef=args.value_coef, clip_value=False, entropy_coef=args.entropy_coef,
        policy_layers=args.policy_layers, value_layers=args.value_layers, activation="swish",
        state_dependent_std=True, init_log_std=BRAX_INIT_LOG_STD, action_squash="tanh",
    )


def brax_environment(env_id: str):
    """``(environment, wrap_env_fn)`` for ``brax.training.agents.ppo.train``."""
    if env_id == "brax/halfcheetah":
        return brax_envs.get_environment("halfcheetah", backend="mjx"), None
    from mujoco_playground import registry, wrapper

    return registry.load("CheetahRun", config_overrides={"impl": "jax"}), wrapper.wrap_for_brax_training


def brax_train_kwargs(args: Args, total_env_steps: int, seed: int = 0) -> dict:
    return dict(
        num_timesteps=total_env_steps, num_envs=args.num_envs, episode_length=1000, action_repeat=1,
        unroll_length=args.unroll_length, batch_size=args.num_envs // args.num_minibatches,
        num_minibatches=args.num_minibatches, num_updates_per_batch=args.num_epochs,
        learning_rate=args.learning_rate, entropy_cost=args.entropy_coef, discounting=args.gamma,
        gae_lambda=args.gae_lambda, clipping_epsilon=args.clip_epsilon,
        vf_loss_coefficient=args.value_coef, max_grad_norm=args.max_grad_norm or None,
        reward_scaling=args.reward_scaling, normalize_observations=True, normalize_advantage=True,
        network_factory=functools.partial(
            brax_networks.make_ppo_networks, policy_hidden_layer_sizes=args.policy_layers,
            value_hidden_layer_sizes=args.value_layers),
        num_evals=args.num_evals, num_eval_envs=args.num_eval_envs, deterministic_eval=True, seed=seed,
    )


class VasaRun:
    """vasa PPO advanced epoch by epoch: ``advance_to(step)`` trains up to ``step``
    environment steps, records the time taken, and evaluates.

    The training step is compiled ahead of time at the start of the first epoch (so inside
    its timing), as vasa's own loop ``ppo.train`` does, and that executable serves every call;
    like ``ppo.train`` it runs ``RunConfig().chunk`` iterations per device call (Brax runs a
    whole epoch per call).
    """

    def __init__(self, config: ppo.PPOConfig, num_eval_envs: int):
        self.config = config
        self.state = ppo.init(config)
        self.chunk = RunConfig().chunk
        self.jitted_step = ppo.make_train_step(config, chunk=self.chunk)
        self.train_step = None
        self.evaluate = ppo.make_evaluate(config, num_envs=num_eval_envs)
        self.eval_key = jax.random.PRNGKey(config.seed + 1)
        self.iterations = 0
        self.epoch_seconds: list[float] = []
        self.evals: list[tuple[int, float]] = []

    def advance_to(self, env_steps: int) -> None:
        target = env_steps // self.config.env_steps_per_iteration
        if target > self.iterations:
            start = time.perf_counter()
            if self.train_step is None:
                self.train_step = self.jitted_step.lower(self.state, self.chunk).compile()
            for count in chunk_plan(self.iterations, target, self.chunk):
                self.state, metrics = self.train_step(self.state, count)
            jax.block_until_ready(metrics)
            self.epoch_seconds.append(time.perf_counter() - start)
            self.iterations = target
        key = jax.random.fold_in(self.eval_key, len(self.evals))
        self.evals.append((ppo.steps_done(self.config, self.iterations), float(self.evaluate(self.state, key))))


def ratio(a: float, b: float) -> float | None:
    """``a / b``, or None unless both are positive (a ratio of returns of mixed sign means nothing)."""
    return a / b if a > 0 and b > 0 else None


def summary(epoch_seconds: list[float], steps_per_epoch: int, evals: list[tuple[int, float]]) -> dict:
    """SPS over the epochs after the first, and the first epoch's excess time as compile."""
    sps = steps_per_epoch * (len(epoch_seconds) - 1) / sum(epoch_seconds[1:])
    return dict(compile_s=epoch_seconds[0] - steps_per_epoch / sps, sps=sps, epoch_s=epoch_seconds, evals=evals)


def run_env(args: Args, env_id: str, seed: int = 0) -> dict:
    """Train both libraries on ``env_id`` with ``seed``, interleaved, and return their measurements."""
    plan = {**settings(args, env_id), "seed": seed}
    vasa = VasaRun(vasa_config(args, env_id, plan["total_env_steps"], seed), args.num_eval_envs)
    brax_evals: list[tuple[int, float]] = []
    brax_epoch_seconds: list[float] = []

    def progress(step: int, metrics: dict) -> None:
        brax_evals.append((int(step), float(metrics["eval/episode_reward"])))
        if step > 0:  # Brax has trained one more epoch
            brax_epoch_seconds.append(float(metrics["training/walltime"]) - sum(brax_epoch_seconds))
        vasa.advance_to(step)
        line = f"[{env_id} seed {seed}] step {step:>11,}   return brax {brax_evals[-1][1]:9.2f}  vasa {vasa.evals[-1][1]:9.2f}"
        if step > 0:
            line += f"   epoch brax {brax_epoch_seconds[-1]:7.1f} s  vasa {vasa.epoch_seconds[-1]:7.1f} s"
        print(line, flush=True)

    environment, wrap_env_fn = brax_environment(env_id)
    brax_ppo.train(environment, wrap_env_fn=wrap_env_fn, progress_fn=progress,
                   **brax_train_kwargs(args, plan["total_env_steps"], seed))

    expected = [k * plan["steps_per_eval"] for k in range(args.num_evals)]
    if [s for s, _ in brax_evals] != expected or [s for s, _ in vasa.evals] != expected:
        raise RuntimeError(f"evaluation steps differ: brax {brax_evals}, vasa {vasa.evals}, expected {expected}")
    brax = summary(brax_epoch_seconds, plan["steps_per_eval"], brax_evals)
    ours = summary(vasa.epoch_seconds, plan["steps_per_eval"], vasa.evals)
    return dict(settings=plan, brax=brax, vasa=ours, ratio=dict(
        compile=ratio(ours["compile_s"], brax["compile_s"]), sps=ratio(ours["sps"], brax["sps"]),
        final_return=ratio(ours["evals"][-1][1], brax["evals"][-1][1])))


# --------------------------------------------------------------------------- report


def _fmt_ratio(x: float | None) -> str:
    return f"{x:12.2f}" if x is not None else f"{'n/a':>12}"


def print_report(results: list[dict], device: str) -> None:
    line = "-" * 66
    for r in results:
        s, b, v = r["settings"], r["brax"], r["vasa"]
        print(f"\n{s['env']}, seed {s['seed']}  ({s['num_envs']} envs x {s['unroll_length']} steps, {s['num_minibatches']} "
              f"minibatches, {s['num_epochs']} epochs, {s['total_env_steps']:,} env steps; {device})")
        print(line)
        print(f"{'':28}{'brax':>12}{'vasa':>12}{'vasa/brax':>12}")
        print(line)
        print(f"{'compile, train step [s]':28}{b['compile_s']:12.1f}{v['compile_s']:12.1f}{_fmt_ratio(r['ratio']['compile'])}")
        print(f"{'training SPS (no compile)':28}{b['sps']:12,.0f}{v['sps']:12,.0f}{_fmt_ratio(r['ratio']['sps'])}")
        for (step, rb), (_, rv) in zip(b["evals"], v["evals"]):
            print(f"{f'return @ {step:,} steps':28}{rb:12.1f}{rv:12.1f}{_fmt_ratio(ratio(rv, rb))}")
        print(line)
    for env_id, agg in aggregate(results).items():
        n = agg["seeds"]
        print(f"\n{env_id}: {n} seeds {agg['seed_list']}  (mean +- std over seeds)")
        print(line)
        print(f"{'':28}{'brax':>12}{'vasa':>12}{'vasa/brax':>12}")
        print(line)
        sps_b, sps_v = agg["brax_sps"], agg["vasa_sps"]
        print(f"{'training SPS, median':28}{sps_b:12,.0f}{sps_v:12,.0f}{_fmt_ratio(ratio(sps_v, sps_b))}")
        print(f"{'SPS ratio per seed':28}{'':24}{' '.join(f'{x:.2f}' for x in agg['sps_ratios']):>12}")
        for step, (mb, sb), (mv, sv) in zip(agg["steps"], agg["brax_return"], agg["vasa_return"]):
            print(f"{f'return @ {step:,}':28}{f'{mb:.0f}+-{sb:.0f}':>12}{f'{mv:.0f}+-{sv:.0f}':>12}"
                  f"{_fmt_ratio(ratio(mv, mb))}")
        print(line)


def aggregate(results: list[dict]) -> dict:
    """Per environment with more than one seed: median SPS of each library, the per-seed SPS
    ratios, and the mean and standard deviation over seeds of the return at each evaluation."""
    out = {}
    for env_id in dict.fromkeys(r["settings"]["env"] for r in results):
        runs = [r for r in results if r["settings"]["env"] == env_id]
        if len(runs) < 2:
            continue
        ret = {lib: np.array([[e[1] for e in r[lib]["evals"]] for r in runs]) for lib in ("brax", "vasa")}
        out[env_id] = dict(
            seeds=len(runs), seed_list=[r["settings"]["seed"] for r in runs],
            steps=[e[0] for e in runs[0]["brax"]["evals"]],
            brax_sps=float(np.median([r["brax"]["sps"] for r in runs])),
            vasa_sps=float(np.median([r["vasa"]["sps"] for r in runs])),
            sps_ratios=[r["ratio"]["sps"] for r in runs],
            **{f"{lib}_return": list(zip(ret[lib].mean(0).tolist(), ret[lib].std(0).tolist())) for lib in ret})
    return out


try:  # run as a script (benchmarks/ on sys.path) or imported as benchmarks.<name>
    from _common import vasa_revision
except ImportError:
    from benchmarks._common import vasa_revision


def main(args: Args) -> None:
    if args.num_evals < 3:
        raise ValueError(f"num_evals={args.num_evals} is not allowed: it must be >= 3 (two training epochs).")
    if args.num_envs % args.num_minibatches:
        raise ValueError(f"num_minibatches={args.num_minibatches} must divide num_envs={args.num_envs}.")
    shim_removed_jax_apis(brax_ppo._PMAP_AXIS_NAME)
    dev = jax.devices()[0]
    device = f"{jax.device_count()} x {dev.platform}:{dev.device_kind}, jax {jax.__version__}"
    revision = vasa_revision()
    results = [run_env(args, env_id, seed) for env_id in args.env for seed in args.seeds]
    print_report(results, f"{device}; vasa {revision}")
    if args.out:
        record = dict(date=datetime.date.today().isoformat(), device=device, vasa_revision=revision,
                      args={k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(args).items()},
                      results=results, aggregate=aggregate(results))
        args.out.write_text(json.dumps(record, indent=2))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main(tyro.cli(Args))
