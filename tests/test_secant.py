"""The SECANT pipeline end to end on the toy pixel task: a privileged PPO expert, a DAgger
student, the zero-shot table, and resume of an interrupted pipeline (bitwise)."""

import csv
import dataclasses
import json
import os
import warnings

import jax
import numpy as np
import pytest

from vasa.algos import ppo
from vasa.distill import dagger, secant
from vasa.distill.augment import StrongAugConfig
from vasa.distill.distractors import DistractorConfig
from vasa.distill.zero_shot import summarize, write_table
from vasa.run import RunConfig

PPO = ppo.PPOConfig(env="toy/reach2d", num_envs=16, unroll_length=16, num_minibatches=4, num_epochs=2, action_repeat=1,
                    total_env_steps=16 * 16 * 4, policy_layers=(16, 16), value_layers=(16, 16))
DISTILL = dagger.DAggerConfig(
    env="toy/reach2d", image_size=16, frame_stack=2, action_repeat=1, num_envs=8, expert_steps=4, student_steps=12,
    dataset_size=256, batch_size=16, hidden_layers=(32,), safety_layers=(16,), feature_dim=16,
    augment=StrongAugConfig(ops=("mixup", "none"), mixup_alpha=(0.6, 0.9)),
    distractors=DistractorConfig(sources=("shapes",), num_images=16, image_size=(16, 16)))
CONFIG = secant.SecantConfig(ppo=PPO, distill=DISTILL, suites=("train",), eval_episodes=4, eval_seeds=2)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("secant") / "run")
    policy, rows = secant.train(CONFIG, RunConfig(run_dir=root, progress=False))
    return root, rows


def test_pipeline_writes_every_stage_and_the_table(whole):
    root, rows = whole
    with open(os.path.join(root, "stages.json")) as f:
        assert set(json.load(f)) == {"expert", "student", "zero_shot"}
    for path in ("secant.json", "expert/config.json", "student/metrics.csv", "zero_shot.csv", "zero_shot.png"):
        assert os.path.exists(os.path.join(root, path)), path
    with open(os.path.join(root, "zero_shot.csv")) as f:
        table = list(csv.DictReader(f))
    assert {r["policy"] for r in table} == {"ppo toy/reach2d", "secant student"}
    assert all(int(r["episodes"]) == 8 and int(r["seeds"]) == 2 for r in table)
    assert all(np.isfinite(float(r["mean"])) for r in table) and rows == summarize_rows(table)


def summarize_rows(table):
    return [{**r, "mean": float(r["mean"]), "std": float(r["std"]), "episodes": int(r["episodes"]),
             "seeds": int(r["seeds"])} for r in table]


def test_an_interrupted_pipeline_resumes_bitwise(whole, tmp_path, capsys):
    root_a, _ = whole
    root_b = str(tmp_path / "b")
    assert secant.train(CONFIG, RunConfig(run_dir=root_b, progress=False, max_iterations=6)) == (None, None)
    assert "stage 2 (student) stopped early" in capsys.readouterr().out
    _, rows = secant.train(CONFIG, RunConfig(resume=root_b, progress=False))
    assert rows is not None
    a = secant.load_expert(os.path.join(root_a, "expert"))
    b = secant.load_expert(os.path.join(root_b, "expert"))
    for x, y in zip(_leaves(a.params), _leaves(b.params)):
        np.testing.assert_array_equal(x, y)
    from vasa.run import Checkpointer

    states = []
    for root in (root_a, root_b):
        env = dagger.make_env(DISTILL)
        target = dagger.init(DISTILL, a, env)
        ck = Checkpointer(os.path.join(root, "student"))
        states.append(ck.restore(target)[1])
        ck.close()
    for x, y in zip(_leaves(states[0].student), _leaves(states[1].student)):
        np.testing.assert_array_equal(x, y)


def test_an_existing_pipeline_is_refused_unless_overwritten(whole):
    root, _ = whole
    from vasa.run.rundir import RunDirectoryError

    with pytest.raises(RunDirectoryError, match="already holds a SECANT run; continue it with --resume"):
        secant.train(CONFIG, RunConfig(run_dir=root, progress=False))
    with open(os.path.join(root, "stages.json")) as f:
        assert "zero_shot" in json.load(f)


def test_config_mismatches_fail_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match=r"SecantConfig\.ppo\.action_repeat=2 is not allowed: it must equal"):
        dataclasses.replace(CONFIG, ppo=dataclasses.replace(PPO, action_repeat=2)).validate()
    with pytest.raises(ValueError, match=r"SecantConfig\.ppo\.env='toy/pendulum' is not allowed"):
        dataclasses.replace(CONFIG, ppo=dataclasses.replace(PPO, env="toy/pendulum")).validate()
    with pytest.raises(ValueError, match=r"SecantConfig\.expert_run='/no/such' is not allowed"):
        dataclasses.replace(CONFIG, expert_run="/no/such").validate()
    with pytest.raises(ValueError, match=r"SecantConfig\.suites=\(\) is not allowed"):
        dataclasses.replace(CONFIG, suites=()).validate()
    parallel = dataclasses.replace(CONFIG, distill=dataclasses.replace(DISTILL, parallel=True))
    with pytest.raises(ValueError, match=r"SecantConfig\.expert='sac' is not allowed: SECANT-Parallel"):
        dataclasses.replace(parallel, expert="sac").validate()
    with pytest.raises(ValueError, match=r"SecantConfig\.expert_run='.*' is not allowed: SECANT-Parallel"):
        dataclasses.replace(parallel, expert_run=str(tmp_path)).validate()
    assert not os.listdir(tmp_path)


def test_scene_distractors_of_the_students_own_task_warn():
    """Distractor frames rendered from the student's own task under a test suite break the
    zero-shot condition: validation warns; another task's frames do not."""
    from vasa.distill.distractors import DistractorConfig

    scenes = DistractorConfig(sources=("scenes",), scene_tasks=("dmc/walker_walk",))
    with pytest.warns(UserWarning, match=r"renders dmc/walker_walk, the student's own task, under 'color_hard'"):
        dagger.DAggerConfig(env="dmc/walker_walk", distractors=scenes).validate()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dagger.DAggerConfig(env="dmc/cheetah_run", distractors=scenes).validate()
        dagger.DAggerConfig(env="dmc/walker_walk", distractors=dataclasses.replace(scenes, scene_appearance="train")).validate()


def test_secant_parallel_has_no_expert_stage(tmp_path):
    config = dataclasses.replace(CONFIG, distill=dataclasses.replace(DISTILL, parallel=True, student_steps=8),
                                 suites=("train",), eval_seeds=1)
    root = str(tmp_path / "run")
    _, rows = secant.train(config, RunConfig(run_dir=root, progress=False))
    with open(os.path.join(root, "stages.json")) as f:
        assert set(json.load(f)) == {"student", "zero_shot"}
    assert not os.path.exists(os.path.join(root, "expert"))
    # the expert evaluated is the one that learned: PPO's 4 iterations, spread over the 8 student steps
    assert {r["policy"] for r in rows} == {"ppo toy/reach2d", "secant student"}
    with open(os.path.join(root, "student", "metrics.csv")) as f:
        log = list(csv.DictReader(f))
    assert [int(r["expert_iterations"]) for r in log] == [0, 1, 1, 2, 2, 3, 3, 4]


def test_zero_shot_table_layout(tmp_path):
    rows = summarize({"a": {"train": [np.array([1.0, 3.0]), np.array([5.0])], "color_hard": [np.array([0.0])]}})
    assert rows[0] == {"policy": "a", "suite": "train", "mean": 3.0, "std": pytest.approx(np.std([1, 3, 5])),
                       "episodes": 3, "seeds": 2, "seed_means": "2.0 5.0"}
    csv_path, png_path = write_table(rows, str(tmp_path))
    with open(csv_path) as f:
        assert [r["suite"] for r in csv.DictReader(f)] == ["train", "color_hard"]
    assert os.path.getsize(png_path) > 1000
