"""SECANT zero-shot generalisation on a CPU (the dissertation's table 5.1, in small).

One privileged expert (SAC on the task's state; ``--expert ppo`` for PPO), then three pixel
students distilled from it by DAgger, each for ``--seeds`` seeds, evaluated zero-shot on the
five appearance suites:

* ``secant``: strong augmentations, Combo1 (cutout-colour, random conv, mixup, crop; by default
  RAD's random conv and vasa's colour map, see ``--secant-ops``);
* ``weak``: the weak augmentation only (crop), the thesis's W->W control;
* ``dr``: the weak augmentation under a randomised training appearance (``color_easy``), the
  domain-randomisation baseline.

Then SafeDAgger against DAgger (the ``secant`` student of the same seed). SafeDAgger runs on every seed
(``--safe-seeds``), with Combo1. The head learns to flag the worst ``--safe-fraction`` of held-out states
(``DAggerConfig.safety_unsafe_fraction``). The switch queries states whose logit reaches the top
``--query-fraction`` of the held-out batch's (``DAggerConfig.safety_query_fraction``). SafeDAgger's
seeding rollout is the untrained student's (``--safe-data``), and it runs ``--safe-steps`` steps
(1.5x DAgger's) with ``--safe-lr-schedule``. Output: seed 0's return against the expert queries it
took (``safedagger.png``); the check compares the final students' means over ``--final-episodes``
fresh episodes per seed.

The default run (session 41) is walker_stand at 32x32: a SAC expert on the state for 250,000
environment steps, students of 2,000 steps with 8 environments each, 24 episodes per seed and
suite, and SafeDAgger with 3,000 steps at ``--query-fraction 0.3``. It ran in 36.3 minutes on a
2-core CPU from an empty compilation cache and passes all seven targets. SafeDAgger kept 96.3% of
DAgger's return with 19.0% of its queries (BENCHMARKS.md, session 41).
Expert: SAC (256x256, batch 256, 16 envs); ``--expert ppo`` is PPO with CAPS's smoothness terms
(``--expert-smooth``, session 23), whose labels students can fit, for reacher_easy (state PPO's
samples cost too much on a CPU for tasks with contacts, session 25).
Students: ``drq`` encoder, batch 64, a constant rate (session 18's); session 21's
``--encoder drq_small --lr-schedule linear --student-steps 4000`` was worse for the Combo1 student (BENCHMARKS.md).
Every student's batch is drawn by priority (``--priority-exponent 0.6``, session 24; 0 is SECANT's
uniform batch), and each policy is evaluated on ``--eval-episodes`` per seed and suite: each student in
its worker process right after training (so two evaluate at once on a CPU), with the reset keys
:func:`vasa.distill.secant.zero_shot` uses (seed ``s`` of every variant: ``PRNGKey(10_000 * s)``);
a privileged expert once, in ``train`` (its state observation is the same under every suite).

Targets (sign and size of table 5.1): the SECANT student keeps >= 90% of the expert's return
in ``train``, >= 75% of its own ``train`` return under ``color_hard`` and ``video_hard``, and
beats the weak student by >= 25% (relative) under both; SafeDAgger reaches >= 95% of DAgger's
final return with <= 40% of its queries. The script prints each check.

    python benchmarks/secant_zero_shot.py                       # CPU: walker_stand, 32x32, ~36 min (see --help)
    python benchmarks/secant_zero_shot.py --image-size 84 --env dmc/walker_walk --student-steps 30000  # GPU-scale
    python benchmarks/secant_zero_shot.py --env dmc/reacher_easy --expert ppo --query-fraction 0.3 \
        --num-envs 16 --student-steps 3000 --eval-episodes 32 --secant-ops cutout_color conv mixup crop  # before s40
    python benchmarks/secant_zero_shot.py --expert-run runs/walker-sac  # a trained expert (examples/train_sac.py)
    python benchmarks/secant_zero_shot.py --reevaluate --out runs/bench-secant  # evaluate an earlier run's policies again

Writes ``--out`` (default ``runs/bench-secant``): every run directory, ``zero_shot.csv/png``,
``safedagger.png`` and ``summary.json``; ``--reevaluate`` trains nothing, restores that run's
expert and students and writes ``zero_shot_reeval.csv/png``, ``safedagger_reeval.png`` and
``summary_reeval.json`` next to them (the first files stay as they were).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))

import numpy as np  # noqa: E402

from benchmarks._common import vasa_revision  # noqa: E402


# DAggerConfig.lr_schedule's choices (vasa is imported only after parsing: see main)
LR_SCHEDULES = ("constant", "linear", "cosine")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="dmc/walker_stand",
                   help="walker_stand (session 40; reacher_easy before): a contact task whose 7-part body is still "
                        "legible at 32x32, on which the five zero-shot targets hold within the 45 minutes (all seven "
                        "with 3,000 steps of 16 envs, sessions 38-39); reacher_easy's students kept only 31%%/46%% of "
                        "train under color_hard/video_hard at 32x32 (session 24, vasa's old colour suites); "
                        "cartpole_balance's expert acts with |a| ~ 0.006: doing nothing scores ~700 of its 999, and "
                        "its 1-pixel pole hides the angle")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--supersample", type=int, default=1,
                   help="rays per pixel side of every student's camera (DAggerConfig.supersample; 2 antialiases as "
                        "DMControl's MuJoCo frames are)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--expert-env-steps", type=int, default=None,
                   help="the expert's training steps (default: 250,000 for --expert sac, whose walker_stand expert "
                        "returns ~930 after them in ~7.5 min, session 40; 8,000,000 for --expert ppo, whose reacher "
                        "CAPS expert returns ~900 from 3M steps on, session 24)")
    p.add_argument("--expert", default="sac", choices=["ppo", "sac"],
                   help="the privileged state expert: SAC (contact tasks such as walker_stand, where PPO's samples "
                        "cost too much on a CPU; SAC's settings: 256x256, batch 256, 16 envs, rate 3e-4, SAC's run "
                        "settings evaluated every 500 iterations) or PPO with CAPS (reacher_easy; ~100 s)")
    p.add_argument("--expert-run", default=None,
                   help="a finished expert run directory (PPO or SAC, e.g. runs/walker-sac from examples/train_sac.py) "
                        "to distil from instead of training one; the --expert* training options are then unused")
    p.add_argument("--action-repeat", type=int, default=4, help="expert and students (PAD's for reacher)")
    p.add_argument("--expert-smooth", type=float, default=0.1,
                   help="CAPS smoothness weights of the PPO expert (PPOConfig.smooth_temporal = smooth_spatial): plain "
                        "PPO's reacher expert changes its action by 1.21 from step to step, labels no student can fit; "
                        "0.1 makes it 0.007 at the same return (session 23). 0: plain PPO, as before session 23")
    p.add_argument("--student-steps", type=int, default=2000,
                   help="every student's gradient steps (one environment step of --num-envs envs each; session 40: "
                        "2,000 with 8 envs ran the whole benchmark in 38 minutes; 3,000 with 16, ~54 estimated)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr-schedule", default="constant", choices=LR_SCHEDULES,
                   help="every student's learning rate over its steps (linear: decays to 0, a steadier final student)")
    p.add_argument("--encoder", default="drq", choices=["drq", "drq_small", "nature"],
                   help="every student's encoder; drq_small (DrQ's with the second layer strided and the fourth "
                        "dropped) costs a quarter of drq's FLOPs at 32x32, so more student steps fit the budget")
    p.add_argument("--secant-ops", nargs="+", default=["cutout_color", "rad_conv", "color_map", "mixup", "crop"],
                   help="the SECANT student's pool (default: Combo1 with RAD's random conv, which DMControl-GB's code "
                        "uses, plus vasa's color_map; the thesis's Combo1 exactly: cutout_color conv mixup crop. "
                        "Session 25: rad_conv instead of NetRand's conv lifted walker_stand's video_hard return from "
                        "356 to 581, three seeds; session 28: adding color_map at --image-size 48 kept 76%% of train "
                        "under color_hard, three seeds x 64 episodes)")
    p.add_argument("--priority-exponent", type=float, default=0.6,
                   help="every student's batch drawn by priority (its latest loss on each entry) to this power "
                        "(DAggerConfig.priority_exponent; 0: uniform, SECANT's; 0.6 from session 24: the Combo1 "
                        "students stopped short of the target, a state the uniform batch rarely holds)")
    p.add_argument("--rollout-noise", type=float, default=0.0,
                   help="every student's DAggerConfig.rollout_noise: Gaussian noise on the executed actions (DART), std "
                        "in half-ranges of the action bounds; the labels stay the expert's clean actions. 0: SECANT's")
    p.add_argument("--safe-fraction", type=float, default=0.2,
                   help="SafeDAgger: fraction of held-out states the head learns to flag (Zhang & Cho: 20%%)")
    p.add_argument("--query-fraction", type=float, default=0.3,
                   help="SafeDAgger: the switch flags states whose head logit reaches this top quantile of the held-out "
                        "batch's (DAggerConfig.safety_query_fraction; 0: the plain sigmoid >= 0.5). 0.3 from session 41 "
                        "(walker_stand, 5,000 steps seeded by the student: 100%% of DAgger's return with 23%% of its "
                        "queries); on reacher_easy it took 24%% of DAgger's queries (session 24)")
    p.add_argument("--safe-steps", type=int, default=None,
                   help="SafeDAgger's student steps (default: 1.5 x --student-steps). Its steps cost no queries where "
                        "the head says safe, and its student learns from fewer labels: at DAgger's 2,000 steps it kept "
                        "68%% of DAgger's return (session 40), at 5,000 100%% (session 41)")
    p.add_argument("--safe-data", default="student", choices=["student", "dagger"],
                   help="who rolls out SafeDAgger's seeding steps (DAggerConfig.data): the untrained student (session "
                        "41), whose flailing and falls the expert labels, or the expert (DAgger's). Seeded by the "
                        "expert, SafeDAgger's takeovers keep the student from ever falling while it learns, and 17-47%% "
                        "of its students' test episodes fell (return < 500) against DAgger's 3%%")
    p.add_argument("--safe-seeds", type=int, default=None,
                   help="SafeDAgger runs (seeds 0..N-1), each against the secant student of its seed; the checks "
                        "compare the means (default: all of --seeds, 3 since session 41; with --reevaluate, as many as "
                        "the run has; one seed's ratio ran from 81%% to 118%% of DAgger's on reacher, session 25, and "
                        "from 90%% to 99%% on walker_stand, session 41; each extra seed costs one student's training)")
    p.add_argument("--safe-lr-schedule", default="linear", choices=LR_SCHEDULES,
                   help="SafeDAgger's learning rate over its steps (session 41: linear decay lifted seeds 1 and 2 "
                        "of walker_stand from 844 and 798 to 868 and 818 over 64 episodes; DAgger keeps "
                        "--lr-schedule)")
    p.add_argument("--workers", type=int, default=None,
                   help="train and evaluate the students in this many processes at once (default: 2 on a CPU, where two walker "
                        "students at once gave 1.3x the throughput of one with Eigen's convolutions, session 26, and "
                        "~1.05x with YNNPACK's, which use both cores, session 32, while still overlapping one "
                        "worker's compiles and evaluations with the other's steps; 1 on an accelerator, which one "
                        "process fills); every run is the same program either way")
    p.add_argument("--expert-steps", type=int, default=125, help="seeding rollout per env (half an episode at repeat 4)")
    p.add_argument("--crop-pad", type=int, default=None,
                   help="random-shift padding of every student's crop (default: DrQ's 4 px at 84 px scaled to the "
                        "image, round(4 * size / 84): 2 at 32x32, where 4 px slowed the crop student to about half "
                        "the return at 1,500 iterations, 2 seeds)")
    p.add_argument("--num-envs", type=int, default=8,
                   help="every student's environments (8 from session 40: a walker student's step costs ~32 ms of "
                        "physics and rendering with 16 envs against ~33 ms of learning; 16 before)")
    p.add_argument("--eval-episodes", type=int, default=24,
                   help="per seed, policy and suite (session 24: 10 moved a seed's mean by up to +-130; 24, 72 per "
                        "policy and suite over 3 seeds, keeps the walker run inside 45 minutes, session 40: a walker "
                        "student's five suites of 24 episodes take 50-70 s on the CPU once compiled)")
    p.add_argument("--final-episodes", type=int, default=64,
                   help="episodes (train appearance) for the final DAgger and SafeDAgger students' returns")
    p.add_argument("--out", default="runs/bench-secant")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out with the same options: the expert and every student whose "
                        "run finished (finished.json) are restored, not trained again (restored students are evaluated "
                        "in the main process); students whose run did not finish start again, replacing their "
                        "partial directory; the tables and summary.json of --out are written anew")
    p.add_argument("--reevaluate", action="store_true",
                   help="train nothing: load the expert and the students of an earlier run in --out and evaluate them "
                        "again (after a change to the suites); writes zero_shot_reeval.csv/png and summary_reeval.json")
    args = p.parse_args()
    if args.expert_env_steps is None:
        args.expert_env_steps = 250_000 if args.expert == "sac" else 8_000_000
    if args.safe_steps is None:
        args.safe_steps = max(args.student_steps * 3 // 2, 1)
    if args.safe_steps < 1:
        p.error(f"--safe-steps {args.safe_steps} is not allowed: it must be >= 1")
    if args.workers is not None and args.workers < 1:
        p.error(f"--workers {args.workers} is not allowed: it must be >= 1")
    if args.safe_seeds is None:  # --reevaluate: as many as the run has (runs before session 41 had one)
        args.safe_seeds = _safe_runs(args.out, args.seeds) if args.reevaluate else args.seeds
    if not 1 <= args.safe_seeds <= args.seeds:
        p.error(f"--safe-seeds {args.safe_seeds} is not allowed: it must be between 1 and --seeds ({args.seeds})")
    revision = vasa_revision()  # of the code this run loads (later commits do not change it)

    import vasa  # noqa: F401  before JAX starts its backend (below), as the workers do: vasa.xla_flags

    import jax

    if args.workers is None:
        args.workers = 2 if jax.default_backend() == "cpu" else 1
    from vasa.distill import secant
    from vasa.distill.zero_shot import summarize, write_table

    t_start = time.time()
    out = args.out
    suffix = "_reeval" if args.reevaluate else ""
    if args.reevaluate and os.path.exists(f"{out}/summary_reeval.json") and not args.overwrite:
        raise SystemExit(f"{out}/summary_reeval.json exists: pass --overwrite to replace it")
    trained = _load(args, out) if args.reevaluate else _train(args, out)
    expert, base = trained["expert"], trained["base"]
    curves, timings = trained["curves"], trained["timings"]

    # ---- zero-shot evaluation: each student was evaluated in its worker right after training (one
    # program per suite and process); here the expert, and whatever a worker did not evaluate (--reevaluate)
    t = time.time()
    returns = {"expert": _expert_returns(args, expert, base)}
    evals, finals = trained["evals"], trained["finals"]
    for key in trained["order"]:
        if key not in evals:
            seed = int(key.rsplit("-", 1)[1])
            evals[key], finals[key] = _evaluate_student(base, trained["params"][key], seed,
                                                        *_evaluation(args, base, key)[1:])
    for key in trained["order"]:
        name = key.rsplit("-", 1)[0]
        if name in VARIANTS:
            for suite, r in evals[key].items():
                returns.setdefault(name, {}).setdefault(suite, []).append(r)
    rows = summarize(returns)
    csv_path, png_path = write_table(rows, out, name=f"zero_shot{suffix}")
    # the SafeDAgger check on the final students, DAgger's (secant seeds < --safe-seeds) and SafeDAgger's, over
    # --final-episodes fresh episodes each: the curves' last points average only 16 episodes, which on
    # reacher (episode returns from 0 to ~1,000) is +-100 noise, the size of the 5% being checked
    n_safe = args.safe_seeds
    final = summarize({"dagger": {"train": [finals[f"secant-{s}"] for s in range(n_safe)]},
                       "safedagger": {"train": [finals[f"safedagger-{s}"] for s in range(n_safe)]}})
    eval_s = time.time() - t

    # ---- checks against the targets
    m = lambda policy, suite: secant.seeds_mean(rows, policy, suite)  # noqa: E731
    checks = {
        "secant train >= 90% expert train": m("secant", "train") >= 0.9 * m("expert", "train"),
        "secant color_hard >= 75% of its train": m("secant", "color_hard") >= 0.75 * m("secant", "train"),
        "secant video_hard >= 75% of its train": m("secant", "video_hard") >= 0.75 * m("secant", "train"),
        "secant color_hard >= 1.25 x weak": m("secant", "color_hard") >= 1.25 * m("weak", "color_hard"),
        "secant video_hard >= 1.25 x weak": m("secant", "video_hard") >= 1.25 * m("weak", "video_hard"),
    }
    final_return = {r["policy"]: r["mean"] for r in final}
    # queries: mean over the SafeDAgger seeds and their DAgger (secant) twins; returns: the seeds' mean
    dag = (np.mean([curves[f"secant-{s}"][-1][0] for s in range(n_safe)]), final_return["dagger"])
    safe = (np.mean([curves[f"safedagger-{s}"][-1][0] for s in range(n_safe)]), final_return["safedagger"])
    checks["safedagger return >= 95% dagger"] = safe[1] >= 0.95 * dag[1]
    checks["safedagger queries <= 40% dagger"] = safe[0] <= 0.4 * dag[0]
    _plot_queries(curves["secant-0"], curves["safedagger-0"], f"{out}/safedagger{suffix}.png")

    for r in rows:
        print(f"{r['policy']:>8s} {r['suite']:>11s} {r['mean']:8.1f} +- {r['std']:6.1f}  seeds {r['seed_means']}")
    for k, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {k}")
    print(f"DAgger queries {dag[0]:.0f} -> return {dag[1]:.1f}; SafeDAgger queries {safe[0]:.0f} -> {safe[1]:.1f}")
    summary = {"revision": revision, "device": jax.devices()[0].device_kind, "args": vars(args),
               "expert_seconds": trained["expert_seconds"], "eval_seconds": eval_s, "run_seconds": timings,
               "total_seconds": time.time() - t_start, "rows": rows, "checks": checks,
               "dagger": dag, "safedagger": safe, "final": final, "csv": csv_path, "png": png_path}
    with open(f"{out}/summary{suffix}.json", "w") as f:
        json.dump(summary, f, indent=2, default=float)
    print(f"total {time.time() - t_start:.0f} s; {out}/summary{suffix}.json")


VARIANTS = ("secant", "weak", "dr")


def _train(args, out: str) -> dict:
    """Stage 1 and 2: the privileged state expert (PPO or SAC; or ``--expert-run``'s), every student,
    SafeDAgger (seeds below ``--safe-seeds``); students in ``--workers`` processes."""
    from vasa.algos import offpolicy, ppo, sac
    from vasa.distill import dagger, experts
    from vasa.distill.augment import StrongAugConfig
    from vasa.run import RunConfig

    os.makedirs(out, exist_ok=True)
    quiet = {"progress": False, "overwrite": args.overwrite}
    t = time.time()
    expert_rows = None
    if args.expert_run or (args.resume and _finished_run(f"{out}/expert")):
        from vasa.distill import secant

        expert = secant.load_expert(args.expert_run or f"{out}/expert")
        print(f"expert: loaded from {args.expert_run or f'{out}/expert'}", flush=True)
    elif args.expert == "ppo":
        expert_config = ppo.PPOConfig(env=args.env, action_repeat=args.action_repeat,
                                      total_env_steps=args.expert_env_steps,
                                      smooth_temporal=args.expert_smooth, smooth_spatial=args.expert_smooth)
        _, expert_state, expert_rows = ppo.train(expert_config, RunConfig(run_dir=f"{out}/expert", **quiet))
        expert = experts.expert_from_ppo(expert_config, expert_state)
    else:
        expert_config = sac.SACConfig(env=args.env, action_repeat=args.action_repeat,
                                      total_env_steps=args.expert_env_steps, num_envs=16, hidden_layers=(256, 256),
                                      batch_size=256, learning_starts=4000, learning_rate=3e-4)
        # SAC's own run settings (offpolicy.DEFAULT_RUN: chunks of 50 iterations, the replay buffer checkpointed
        # at the end), evaluated every 500 iterations (32K env steps; ~10 points on the curve): a plain
        # RunConfig() is PPO's cadence, which for SAC's 64-step iterations evaluated every 640 env steps (469
        # evaluations of 16 episodes, ~1,750 s of a 300K-step expert's 2,300, session 40)
        expert_run = dataclasses.replace(offpolicy.DEFAULT_RUN, run_dir=f"{out}/expert", eval_every=500, **quiet)
        _, expert_state, expert_rows = sac.train(expert_config, expert_run)
        expert = experts.expert_from_sac(expert_config, expert_state)
    expert_s = time.time() - t
    if expert_rows:
        print(f"expert: final eval {expert_rows[-1]['eval_return']:.1f} after {expert_s:.0f} s", flush=True)

    pad = round(4 * args.image_size / 84) if args.crop_pad is None else args.crop_pad
    base = dagger.DAggerConfig(env=args.env, image_size=args.image_size, supersample=args.supersample,
                               action_repeat=args.action_repeat,
                               num_envs=args.num_envs, expert_steps=args.expert_steps,
                               student_steps=args.student_steps, dataset_size=20_000, batch_size=args.batch_size,
                               hidden_layers=(256, 256), encoder=args.encoder,
                               lr_schedule=args.lr_schedule,
                               augment=StrongAugConfig(ops=tuple(args.secant_ops), crop_pad=pad),
                               priority_exponent=args.priority_exponent, rollout_noise=args.rollout_noise)
    weak = StrongAugConfig(ops=("crop",), crop_pad=pad)
    variants = {
        "secant": base,
        "weak": dataclasses.replace(base, augment=weak),
        "dr": dataclasses.replace(base, augment=weak, train_appearance="color_easy"),
    }
    run = dataclasses.replace(dagger.DEFAULT_RUN, eval_every=max(args.student_steps // 4, 1), **quiet)
    # SafeDAgger against DAgger (seeds 0..safe_seeds-1; DAgger is the secant run of the same seed)
    safe_config = dataclasses.replace(base, safe=True, safety_unsafe_fraction=args.safe_fraction,
                                      safety_query_fraction=args.query_fraction or None, data=args.safe_data,
                                      student_steps=args.safe_steps, lr_schedule=args.safe_lr_schedule)
    jobs = {}
    for name, config in (*variants.items(), ("safedagger", safe_config)):
        for seed in range(args.safe_seeds if name == "safedagger" else args.seeds):
            # the training-time curves are plotted for seed 0 of DAgger (secant) and SafeDAgger only: the
            # others evaluate once, at the end
            curve = seed == 0 and name in ("secant", "safedagger")
            jobs[f"{name}-{seed}"] = (dataclasses.replace(config, seed=seed),
                                      dataclasses.replace(run, run_dir=f"{out}/{name}-{seed}",
                                                          eval_every=run.eval_every if curve else 0))
    restored = [key for key in jobs if args.resume and _finished_run(f"{out}/{key}")]
    todo = {key: (config, dataclasses.replace(run, overwrite=run.overwrite or args.resume))
            for key, (config, run) in jobs.items() if key not in restored}
    if restored:
        print(f"--resume: restoring {', '.join(restored)}; training {', '.join(todo) or 'nothing'}", flush=True)
    evaluations = {key: _evaluation(args, base, key) for key in jobs}
    done = _run_jobs(todo, expert, args.expert_run or f"{out}/expert", args.workers, evaluations)
    result = {"expert": expert, "base": base, "order": list(jobs), "params": {}, "curves": {}, "timings": {},
              "evals": {}, "finals": {}, "expert_seconds": expert_s}
    for key in jobs:  # in the order of the serial run; restored students are evaluated by main()
        if key in restored:
            _, result["params"][key], result["curves"][key] = _restore(f"{out}/{key}", expert)
        else:
            (result["params"][key], result["curves"][key], result["timings"][key], result["evals"][key],
             result["finals"][key]) = done[key]
    return result


def _safe_runs(out: str, seeds: int) -> int:
    """SafeDAgger seeds ``0..N-1`` whose run directories exist in ``out`` (at least 1, at most ``seeds``)."""
    n = 0
    while n < seeds and os.path.isdir(f"{out}/safedagger-{n}"):
        n += 1
    return max(n, 1)


def _finished_run(run_dir: str) -> bool:
    """Whether ``run_dir`` holds a run that finished (its ``finished.json`` says complete)."""
    try:
        with open(f"{run_dir}/finished.json") as f:
            return bool(json.load(f).get("complete"))
    except (OSError, ValueError):
        return False


def _restore(run_dir: str, expert):
    """``(DAggerConfig, student params, curve)`` of the finished DAgger run in ``run_dir``."""
    import csv

    from vasa.distill import dagger
    from vasa.run import Checkpointer
    from vasa.run.config import dataclass_from_dict
    from vasa.run.rundir import read_config_json

    config = dataclass_from_dict(dagger.DAggerConfig, read_config_json(run_dir)["dagger"])
    checkpointer = Checkpointer(run_dir)
    try:
        _, state = checkpointer.restore(dagger.init(config, expert, dagger.make_env(config)))
    finally:
        checkpointer.close()
    with open(f"{run_dir}/metrics.csv") as f:
        return config, _to_numpy(state.student), _curve(list(csv.DictReader(f)))


def _to_numpy(tree):
    import jax

    return jax.tree.map(np.asarray, tree)


def _evaluation(args, base, key: str) -> tuple:
    """What job ``key`` (``variant-seed``) is evaluated on: ``(base, eval_episodes, final_episodes,
    suites)``: the variants on every suite, SafeDAgger on none; DAgger (secant) and SafeDAgger seeds
    below ``--safe-seeds`` also over ``--final-episodes`` (the SafeDAgger check; 0: not in it)."""
    from vasa.distill.zero_shot import SUITE_NAMES

    name, seed = key.rsplit("-", 1)
    final = args.final_episodes if name in ("secant", "safedagger") and int(seed) < args.safe_seeds else 0
    return base, args.eval_episodes, final, SUITE_NAMES if name in VARIANTS else ()


def _run_jobs(jobs: dict, expert, expert_dir: str, workers: int, evaluations: dict) -> dict:
    """Train and evaluate every student ``jobs[key] = (DAggerConfig, RunConfig)`` (as
    ``evaluations[key]`` says); returns ``{key: (student params, curve, seconds, {suite: episode
    returns}, final returns)}`` (see :func:`_train_one`). With ``workers > 1`` the runs go to that
    many spawned processes, each loading the expert from ``expert_dir`` (session 26: two walker
    students at once on 2 cores take 148-161 ms per iteration against 102 ms alone, 1.32x the
    throughput); each run is the same program either way."""
    done = {}

    def report(key, result):
        done[key] = result
        curve, evals = result[1], result[3]
        suites = " ".join(f"{s} {np.mean(r):.1f}" for s, r in evals.items())
        print(f"{key}: queries {curve[-1][0] if curve else 0:.0f}, {result[2]['train']:.0f} s + evaluation "
              f"{result[2]['eval']:.0f} s; {suites}", flush=True)

    if workers <= 1:
        for key, (config, run) in jobs.items():
            report(key, _train_one(config, run, evaluations[key], expert))
        return done
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # SafeDAgger first: the longest job (its own program to compile, the longer final evaluation); last,
    # it ran alone for ~4 minutes while the other worker idled (session 40). Results keep the jobs' order.
    order = sorted(jobs, key=lambda key: not key.startswith("safedagger"))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_train_one, *jobs[key], evaluations[key], None, expert_dir): key for key in order}
        for future in as_completed(futures):
            report(futures[future], future.result())
    return done


_EXPERTS: dict = {}
_EVALUATORS: dict = {}


def _train_one(config, run, evaluation: tuple, expert=None, expert_dir: str | None = None):
    """One DAgger/SafeDAgger run, then its evaluation ``evaluation = (base, eval_episodes,
    final_episodes, suites)`` (:func:`_evaluate_student`, in the same process, so two workers
    evaluate at once): ``(student params as NumPy, curve, {"train": s, "eval": s}, {suite: returns},
    final returns)``; in a worker process the expert is loaded (once per process) from ``expert_dir``."""
    from vasa.distill import dagger, secant

    if expert is None:
        if expert_dir not in _EXPERTS:
            _EXPERTS[expert_dir] = secant.load_expert(expert_dir)
        expert = _EXPERTS[expert_dir]
    t = time.time()
    _, state, rows = dagger.train(config, expert, run)
    seconds = {"train": time.time() - t}
    params = _to_numpy(state.student)
    t = time.time()
    returns, final = _evaluate_student(evaluation[0], params, config.seed, *evaluation[1:])
    seconds["eval"] = time.time() - t
    return params, _curve(rows), seconds, returns, final


def _evaluate_student(base, params, seed: int, eval_episodes: int, final_episodes: int, suites):
    """A student's zero-shot returns, as :func:`vasa.distill.secant.zero_shot` draws them (seed ``s``
    of a variant resets with ``PRNGKey(10_000 * s)``, the same initial states and looks for every
    variant): ``({suite: float32 [eval_episodes]}, train returns over final_episodes or None)``.
    Evaluation environments are ``base``'s (the DR student is evaluated on the suites, not on its
    training look); each process compiles one program per suite and episode count."""
    from vasa.distill import dagger, secant
    from vasa.distill.zero_shot import make_suite_evaluator

    if "act" not in _EVALUATORS:
        _EVALUATORS["act"] = dagger.Student(base, dagger.make_env(base)).policy

    def evaluator(episodes, names):
        key = (episodes, tuple(names))
        if key not in _EVALUATORS:
            _EVALUATORS[key] = make_suite_evaluator(lambda s: secant.make_suite_env(base, s), _EVALUATORS["act"],
                                                    names, episodes)
        return _EVALUATORS[key]

    evaluate = evaluator(eval_episodes, suites) if suites else None
    returns = {s: evaluate(params, s, 10_000 * seed) for s in suites}
    final = evaluator(final_episodes, ("train",))(params, "train", 10_000 * seed) if final_episodes else None
    return returns, final


def _curve(rows) -> list[tuple[float, float]]:
    """(expert queries, evaluation return) at every evaluated row of a DAgger run."""
    return [(float(r["expert_queries"]), float(r["eval_return"])) for r in rows if np.isfinite(float(r["eval_return"]))]


def _load(args, out: str) -> dict:
    """What :func:`_train` returns, restored from an earlier run's directories in ``out``."""
    from vasa.distill import secant

    expert = secant.load_expert(args.expert_run or f"{out}/expert")  # PPO or SAC

    result = {"expert": expert, "order": [], "params": {}, "curves": {}, "timings": {}, "evals": {}, "finals": {},
              "expert_seconds": 0.0}
    keys = [f"{name}-{seed}" for name in VARIANTS for seed in range(args.seeds)]
    for key in keys + [f"safedagger-{seed}" for seed in range(args.safe_seeds)]:
        config, result["params"][key], result["curves"][key] = _restore(f"{out}/{key}", expert)
        result["order"].append(key)
        if key == "secant-0":
            result["base"] = config
    print(f"loaded the expert and {len(result['order'])} students from {out}", flush=True)
    return result


def _expert_returns(args, expert, base) -> dict:
    """The expert's zero-shot returns ``{suite: [float32 [eval_episodes]]}`` (reset key 0, as
    seed 0 of every student). A privileged expert reads the state, which no appearance changes
    (the suites never touch physics), so it runs once, in ``train``, and that row stands for
    every suite; a pixel expert runs in each."""
    from vasa.distill import secant
    from vasa.distill.zero_shot import SUITE_NAMES, make_suite_evaluator

    suites = SUITE_NAMES if expert.reads == "pixels" else ("train",)
    evaluate = make_suite_evaluator(lambda s: secant.make_suite_env(base, s), expert.act, suites,
                                    args.eval_episodes)
    returns = {s: [evaluate(expert.params, s, 0)] for s in suites}
    return {s: returns.get(s, returns["train"]) for s in SUITE_NAMES}


def _plot_queries(dagger_curve, safe_curve, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    for label, curve in (("DAgger", dagger_curve), ("SafeDAgger", safe_curve)):
        if curve:
            q, r = zip(*curve)
            ax.plot(q, r, marker="o", label=label)
    ax.set_xlabel("expert queries")
    ax.set_ylabel("student eval return (train appearance)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
