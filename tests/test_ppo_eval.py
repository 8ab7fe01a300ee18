"""Evaluating saved PPO and SAC runs (``vasa.algos.ppo_eval``, ``examples/evaluate_success.py``).

Reference: a NumPy rollout of ``toy/reach2d``'s dynamics (``p' = clip(p + 0.2 clip(a), -1, 1)``,
success while ``|p'| < 0.1``, 50 steps) from the same initial states, driven by each restored
checkpoint's deterministic policy, one observation at a time; the success rate per checkpoint
must match. One tiny run (4 iterations, checkpoints 2 and 4) is shared.
"""

from __future__ import annotations

import csv

import jax
import numpy as np
import pytest

from vasa.algos import ppo, ppo_eval
from vasa.envs import make
from vasa.run import RunConfig
from vasa.run.rundir import RunDirectoryError

CONFIG = ppo.PPOConfig(env="toy/reach2d", num_envs=16, unroll_length=25, num_minibatches=4, num_epochs=2,
                       action_repeat=1, total_env_steps=16 * 25 * 4, policy_layers=(16,), value_layers=(16,),
                       learning_rate=3e-3)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("eval") / "reach")
    ppo.train(CONFIG, RunConfig(run_dir=path, progress=False, eval_every=0, checkpoint_every=2, keep_checkpoints=5))
    return path


def numpy_success(act, starts: np.ndarray, steps: int = 50) -> np.ndarray:
    """1 for each start from which the policy comes within 0.1 of the origin in ``steps`` steps."""
    out = []
    for p in starts.astype(np.float64):
        hit = False
        for _ in range(steps):
            a = np.asarray(act(np.asarray(p, np.float32)), np.float64)
            p = np.clip(p + 0.2 * np.clip(a, -1, 1), -1, 1)
            hit |= np.linalg.norm(p) < 0.1
        out.append(float(hit))
    return np.array(out)


def test_success_curve_matches_a_numpy_rollout_of_each_checkpoint(run_dir):
    rows = ppo_eval.success_curve(run_dir, num_episodes=12, seed=3, log=None)
    assert [r["iteration"] for r in rows] == [2, 4]
    assert [r["env_steps"] for r in rows] == [800, 1600]
    assert all(np.isfinite(r["time_s"]) and r["time_s"] >= 0 for r in rows)
    env = make("toy/reach2d")
    starts = np.asarray(jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(3), 12)).obs)
    for row in rows:
        config, _, step, act = ppo_eval.load_policy(run_dir, row["iteration"])
        assert step == row["iteration"] and config == CONFIG
        want = numpy_success(act, starts)
        assert row["success"] == pytest.approx(want.mean()), (step, want)
        assert row["success_std"] == pytest.approx(want.std())
    # the policies differ between checkpoints (else the comparison above proves little)
    a2, a4 = (ppo_eval.load_policy(run_dir, s)[3](starts) for s in (2, 4))
    assert not np.allclose(a2, a4)


def test_bad_arguments_name_what_is_allowed(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"steps \[3\] are not allowed: .* checkpoints \[2, 4\]"):
        ppo_eval.success_curve(run_dir, steps=[3], log=None)
    with pytest.raises(ValueError, match=r"metric='reached' is not allowed: toy/reach2d reports .*'success'"):
        ppo_eval.success_curve(run_dir, metric="reached", log=None)
    with pytest.raises(ValueError, match=r"num_episodes=0"):
        ppo_eval.success_curve(run_dir, num_episodes=0, log=None)
    with pytest.raises(ValueError, match=r"seed_index=1 is not allowed"):
        ppo_eval.load_policy(run_dir, seed_index=1)
    with pytest.raises(FileNotFoundError, match="config.json does not exist"):
        ppo_eval.read_ppo_config(str(tmp_path))
    (tmp_path / "config.json").write_text('{"sac": {}}')
    with pytest.raises(RunDirectoryError, match=r"holds no PPO run .*\['sac'\]"):
        ppo_eval.read_ppo_config(str(tmp_path))


def test_evaluate_success_example_writes_table_csv_and_plot_never_over_files(run_dir, tmp_path):
    from examples.evaluate_success import Args, main

    out_csv, out_png = str(tmp_path / "s.csv"), str(tmp_path / "s.png")
    curves = main(Args(run_dirs=(run_dir, run_dir), labels=("a", "b"), steps=(4,), num_episodes=12, seed=3,
                       csv=out_csv, plot=out_png))
    assert list(curves) == ["a", "b"] and curves["a"][0]["success"] == curves["b"][0]["success"]
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["run"] for r in rows] == ["a", "b"] and rows[0]["iteration"] == "4"
    with open(out_png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="never overwrites"):
        main(Args(run_dirs=(run_dir,), csv=out_csv))
    with pytest.raises(SystemExit, match="one label per run"):
        main(Args(run_dirs=(run_dir,), labels=("a", "b")))
    # an earlier CSV joins the curves as it was written, without evaluating again
    again = main(Args(run_dirs=(), previous=(out_csv,), plot=str(tmp_path / "again.png")))
    assert again == curves
    with pytest.raises(SystemExit, match="previous='/no/such.csv' is not allowed"):
        main(Args(run_dirs=(), previous=("/no/such.csv",)))


def test_recurrent_run_carries_memory_through_the_episode(tmp_path):
    """A GRU run: success_curve carries the memory from step to step (as the one-observation-at-
    a-time NumPy rollout below does, memory threaded by hand), and the memory matters."""
    import dataclasses

    config = dataclasses.replace(CONFIG, core="gru", core_size=8, total_env_steps=16 * 25 * 2)
    path = str(tmp_path / "gru")
    ppo.train(config, RunConfig(run_dir=path, progress=False, eval_every=0, checkpoint_every=2, keep_checkpoints=5))
    (row,) = ppo_eval.success_curve(path, num_episodes=8, seed=3, log=None)
    _, _, step, act = ppo_eval.load_policy(path)
    assert step == row["iteration"] == 2
    starts = np.asarray(jax.vmap(make("toy/reach2d").reset)(jax.random.split(jax.random.PRNGKey(3), 8)).obs)
    jitted = jax.jit(act)  # one compile for the 400 single-observation calls below

    def with_memory(fresh_each_step: bool):
        memory = [act.zero_carry(1)]

        def one(p):
            if fresh_each_step:
                memory[0] = act.zero_carry(1)
            a, memory[0] = jitted(p[None], memory[0])
            return np.asarray(a)[0]

        return one

    def success(fresh_each_step):
        hits = []
        for p in starts:  # a new memory per episode
            hits.append(numpy_success(with_memory(fresh_each_step), p[None])[0])
        return np.array(hits)

    want = success(False)
    assert row["success"] == pytest.approx(want.mean()), want
    # the memory changes the actions (else carrying it would be untested)
    carried, fresh = with_memory(False), with_memory(True)
    p = starts[0]
    outs = [(carried(p), fresh(p)) for _ in range(3)]
    assert not np.allclose(outs[-1][0], outs[-1][1])


def numpy_return(act, starts: np.ndarray, steps: int = 50) -> np.ndarray:
    """Each start's undiscounted return ``sum -||p'||`` over ``steps`` steps of the policy."""
    out = []
    for p in starts.astype(np.float64):
        total = 0.0
        for _ in range(steps):
            p = np.clip(p + 0.2 * np.clip(np.asarray(act(np.asarray(p, np.float32)), np.float64), -1, 1), -1, 1)
            total -= np.linalg.norm(p)
        out.append(total)
    return np.array(out)


def test_success_curve_of_an_off_policy_run_matches_a_numpy_rollout(tmp_path):
    """A SAC run: each checkpoint is restored (replay buffer and all) and its squashed-mean
    policy, applied one observation at a time in the NumPy rollout, gives the same success
    rate and returns; an unknown algorithm's directory is refused by name."""
    from vasa.algos import offpolicy, sac
    from vasa.run import Checkpointer

    config = sac.SACConfig(env="toy/reach2d", num_envs=4, total_env_steps=4 * 150, learning_starts=40,
                           learning_rate=3e-3, batch_size=32, buffer_size=800, hidden_layers=(32,), episode_length=50)
    path = str(tmp_path / "sac")
    sac.train(config, RunConfig(run_dir=path, progress=False, eval_every=0, checkpoint_every=20, keep_checkpoints=10,
                                chunk=10))
    # iteration 20: 10 warm-up iterations (40 random transitions), then 10 of learning; 160: the end
    rows = ppo_eval.success_curve(path, steps=(20, 160), num_episodes=16, seed=3, log=None)
    assert [r["env_steps"] for r in rows] == [80, 640]
    env = make("toy/reach2d")
    starts = np.asarray(jax.vmap(env.reset)(jax.random.split(jax.random.PRNGKey(3), 16)).obs)
    learner = sac.make_learner(config, offpolicy.make_env(config))
    template = offpolicy.init(config, learner, offpolicy.make_env(config))
    successes = []
    for row in rows:
        checkpointer = Checkpointer(path)
        try:
            _, state = checkpointer.restore(template, row["iteration"])
        finally:
            checkpointer.close()
        act = jax.jit(lambda obs, s=state: learner.policy(s.learner, obs[None])[0])
        want = numpy_success(act, starts)
        assert row["success"] == pytest.approx(want.mean()), (row["iteration"], want)
        assert row["return"] == pytest.approx(numpy_return(act, starts).mean(), rel=1e-4)
        successes.append(row["success"])
    assert successes[0] < successes[1] == 1.0, successes  # learning shows, so the comparison is not vacuous
    assert ppo_eval.read_run_config(path) == ("sac", config)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text('{"es": {}}')
    with pytest.raises(RunDirectoryError, match=r"holds no PPO, SAC or DDPG run .*\['es'\]"):
        ppo_eval.success_curve(str(tmp_path / "other"), log=None)
