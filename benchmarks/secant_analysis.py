"""Analysis of the students `benchmarks/secant_zero_shot.py` trained (dissertation section 5.5):
inference latency of student and expert (batch 1 and 256), saliency overlays under the
training look and under ``color_hard``, a 2-D embedding of the students' features coloured by
appearance suite, and cycle consistency of trajectories across looks (table 5.6's metric).

    python benchmarks/secant_analysis.py --bench runs/bench-secant --out docs

Writes ``<out>/secant_saliency.png``, ``<out>/secant_embedding.png`` and prints the rest (and
``<bench>/analysis.json``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.expanduser("~/.cache/vasa/jax"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", default="runs/bench-secant")
    p.add_argument("--out", default="docs")
    p.add_argument("--students", nargs="+", default=["secant-0", "weak-0"])
    p.add_argument("--steps", type=int, default=60, help="trajectory length for embeddings and cycle consistency")
    args = p.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from vasa.distill import dagger, metrics, secant
    from vasa.nn import ConvEncoder, Projection
    from vasa.run import Checkpointer
    from vasa.run.config import dataclass_from_dict
    from vasa.run.rundir import read_config_json

    expert = secant.load_expert(os.path.join(args.bench, "expert"))
    students = {}
    for name in args.students:
        run_dir = os.path.join(args.bench, name)
        config = dataclass_from_dict(dagger.DAggerConfig, read_config_json(run_dir)["dagger"])
        env = dagger.make_env(config)
        ck = Checkpointer(run_dir)
        _, state = ck.restore(dagger.init(config, expert, env))
        ck.close()
        students[name] = (config, dagger.Student(config, env), state.student)
    config = next(iter(students.values()))[0]

    def features(params, pixels):
        inner = params["params"]
        h = ConvEncoder(config.encoder).apply({"params": inner["encoder"]}, pixels)
        return Projection(config.feature_dim).apply({"params": inner["proj"]}, h)

    # trajectories of the expert (it acts on the state, so every look sees the same motion)
    @functools.partial(jax.jit, static_argnums=0)
    def rollout(suite):
        env = secant.make_suite_env(config, suite)
        s = jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(7), 1))

        def body(s, _):
            s = jax.vmap(env.step)(s, expert.act(expert.params, s.obs))
            return s, s.obs["pixels"][0]

        _, frames = jax.lax.scan(body, s, None, length=args.steps)
        return frames

    suites = ("train", "color_easy", "color_hard", "video_easy", "video_hard")
    frames = {s: np.asarray(rollout(s)) for s in suites}

    report = {"device": jax.devices()[0].device_kind}
    # latency: the privileged expert (state MLP) and the pixel student, batch 1 and 256
    proprio = jnp.zeros((4,) + expert.obs_shape, jnp.float32)
    report["latency_expert"] = metrics.inference_latency(lambda prm, x: expert.act(prm, {"proprio": x}),
                                                         expert.params, proprio)
    name0, (_, student0, params0) = next(iter(students.items()))
    report["latency_student"] = metrics.inference_latency(student0.policy, params0, jnp.asarray(frames["train"][:4]))
    # saliency: newest frame with the gradient saliency, train and color_hard, every student
    rows = []
    for name, (_, student, params) in students.items():
        for suite in ("train", "color_hard"):
            px = jnp.asarray(frames[suite][10:40:10])
            rows.append((px, metrics.saliency(student.policy, params, px)))
    os.makedirs(args.out, exist_ok=True)
    metrics.save_saliency_overlay(np.concatenate([np.asarray(r[0]) for r in rows]),
                                  np.concatenate([np.asarray(r[1]) for r in rows]),
                                  os.path.join(args.out, "secant_saliency.png"))
    # embeddings and cycle consistency per student
    for name, (_, student, params) in students.items():
        feats = {s: np.asarray(features(params, jnp.asarray(frames[s]))) for s in suites}
        if name == name0:
            metrics.embedding_plot(feats, os.path.join(args.out, "secant_embedding.png"),
                                   title=f"{name} features, one trajectory under five looks")
        report[f"cycle_{name}"] = {
            f"train-{s}": metrics.cycle_consistency_trials([feats["train"], feats[s]], seed=0)["mean"]
            for s in suites[1:]}
        report[f"cycle3_{name}"] = metrics.cycle_consistency_trials(
            [feats["train"], feats["color_hard"], feats["video_hard"]], seed=0)["mean"]
    for k, v in report.items():
        print(k, json.dumps(v, default=float))
    with open(os.path.join(args.bench, "analysis.json"), "w") as f:
        json.dump(report, f, indent=2, default=float)


if __name__ == "__main__":
    main()
