"""SECANT-Parallel (``DAggerConfig.parallel``): the expert keeps learning by RL inside the
distillation program. A scripted learner checks the schedule of its iterations and that labels
come from the *current* expert; a real PPO learner on ``toy/reach2d`` checks that it learns,
logs and resumes bit-for-bit."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from test_dagger import QUIET, TOY, _leaves_equal
from vasa.algos import ppo
from vasa.distill import dagger, experts
from vasa.distill.augment import StrongAugConfig
from vasa.envs.tasks.reach2d import linear_expert_action
from vasa.run import RunConfig


def _scripted(iterations: int, gain: float = 1e3) -> experts.Expert:
    """reach2d's linear expert with gain 0 (labels all zero) whose every "RL iteration" sets the
    gain to ``gain`` and counts itself in ``n``."""
    learner = experts.Learner(
        init=lambda mesh: {"gain": jnp.zeros((), jnp.float32), "n": jnp.zeros((), jnp.int32)},
        make_body=lambda mesh: (lambda s: ({"gain": jnp.full((), gain, jnp.float32), "n": s["n"] + 1},
                                           {"episode_return": (s["n"] + 1).astype(jnp.float32)}),
                                {"gain": P(), "n": P()}),
        params=lambda s: {"gain": s["gain"]}, iterations=iterations, env_steps_per_iteration=10)
    return dataclasses.replace(experts.reach2d_expert(gain=0.0), learner=learner, name="scripted")


def _zero_policy(student_params):
    """The student's last policy layer zeroed: its action is exactly 0 on reach2d's [-1, 1]^2."""
    tree = jax.tree.map(lambda x: x, student_params)
    head = tree["params"]["policy"]
    last = head[f"Dense_{len(head) - 1}"]
    for name in ("kernel", "bias"):
        last[name] = jax.device_put(jnp.zeros_like(last[name]), last[name].sharding)
    return tree


def test_learning_expert_runs_on_schedule_and_labels_with_its_current_parameters():
    S, E = 7, 3  # student steps, expert iterations: due after student iterations 3, 5 and 7
    config = dataclasses.replace(TOY, parallel=True, student_steps=S, learning_rate=1e-9, loss="squared",
                                 augment=StrongAugConfig(ops=("none",)))
    expert = _scripted(E)
    env = dagger.make_env(config)
    state = dagger.init(config, expert, env)
    state, _ = dagger.make_seed(config, expert, env)(state)
    # the seeding labels come from the gain-0 expert: all zero; the dataset keeps each state
    stored = int(state.data.count[0])
    assert np.all(np.asarray(state.data.label[:stored]) == 0)
    assert state.data.extra is not None and state.data.extra.shape == (TOY.dataset_size, 2)
    step = dagger.make_train_step(config, expert, env)
    state = state.replace(student=_zero_policy(state.student))
    assert int(state.queries) == config.expert_steps * config.num_envs
    for i in range(1, S + 1):
        before = int(state.queries)
        state, metrics = step(state)
        # every environment's new observation, and the sampled batch the current expert relabels
        assert int(state.queries) == int(metrics["expert_queries"]) == before + config.num_envs + config.batch_size
        n = int(state.expert["n"])
        assert n == i * E // S == dagger.expert_iterations(config, expert, i)
        ran = i * E // S > (i - 1) * E // S
        assert float(metrics["expert_return"]) == n if ran else np.isnan(float(metrics["expert_return"]))
        # labels recomputed by the current expert: once the gain is 1e3, every label is
        # -sign(p), so the squared error of the zero action is 2 for every sample
        assert float(metrics["student_loss"]) == (pytest.approx(2.0, rel=1e-3) if n else 0.0)
    # stored labels were computed by the expert of their time (the student acted: gain 1e3 from step 3 on)
    final = dagger.final_expert(config, expert, state)
    assert final.learner is None and float(final.params["gain"]) == 1e3


def test_parallel_needs_a_learning_expert(compiles):
    config = dataclasses.replace(TOY, parallel=True)
    env, frozen = dagger.make_env(config), experts.reach2d_expert()
    before = compiles[0]
    with pytest.raises(ValueError, match="parallel=True is not allowed with the expert 'linear gain 2.5': it is frozen"):
        dagger.init(config, frozen, env)
    with pytest.raises(ValueError, match="num_seeds=2 is not allowed for a learning expert"):
        experts.ppo_learner(ppo.PPOConfig(env="toy/reach2d", action_repeat=1, num_seeds=2))
    assert compiles[0] == before


PPO = ppo.PPOConfig(env="toy/reach2d", action_repeat=1, num_envs=32, unroll_length=16, num_minibatches=4,
                    num_epochs=2, total_env_steps=32 * 16 * 40, policy_layers=(32, 32), value_layers=(32, 32))


def test_ppo_expert_learns_while_the_student_distils_and_resumes_bit_for_bit(tmp_path):
    # 40 PPO iterations over 80 student steps (one every second step); the stopped run resumes
    # from step 50 and must end where an uninterrupted one ends
    config = dataclasses.replace(TOY, parallel=True, student_steps=80)
    expert = experts.ppo_learner(PPO)
    run = RunConfig(eval_every=2, checkpoint_every=0, **QUIET)
    _, whole, rows = dagger.train(config, expert, dataclasses.replace(run, run_dir=str(tmp_path / "whole")))
    assert [r["expert_iterations"] for r in rows][:4] == [0, 1, 1, 2] and rows[-1]["expert_iterations"] == 40
    assert rows[-1]["expert_env_steps"] == 40 * PPO.env_steps_per_iteration
    assert int(whole.expert.iteration) == 40
    # the expert learned: from about -38 (it barely moves) to near the linear expert's -0.8
    curve = [r["expert_eval_return"] for r in rows if np.isfinite(r["expert_eval_return"])]
    assert len(curve) == 40 and curve[-1] > -10 and curve[-1] > curve[0] + 5, curve
    assert sum(np.isfinite(r["expert_return"]) for r in rows) >= 10  # 50-step episodes, 16-step unrolls

    _, _, part = dagger.train(config, expert, dataclasses.replace(run, run_dir=str(tmp_path / "part"),
                                                                   max_iterations=50))
    assert part[-1]["iteration"] == 50
    _, resumed, _ = dagger.train(config, expert, RunConfig(resume=str(tmp_path / "part"), **QUIET))
    _leaves_equal(whole, resumed)
    # the final expert acts like the learned PPO policy
    final = dagger.final_expert(config, expert, resumed)
    obs = {"proprio": jnp.array([[0.5, -0.5]]), "pixels": None}
    a = np.asarray(final.act(final.params, obs))[0]
    assert np.sign(a).tolist() == np.sign(linear_expert_action(np.array([0.5, -0.5]))).tolist()
