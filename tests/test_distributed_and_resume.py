"""Mesh equivalence (4 fake CPU devices vs 1), bitwise resume in a fresh process,
checkpoint failure modes, the NaN stop, and the example's command line."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa.algos import ppo
from vasa.run import Checkpointer, CheckpointError, RunConfig, TrainingDiverged

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ("ppo.PPOConfig(env='toy/pendulum', num_envs=32, unroll_length=16, num_minibatches=8, num_epochs=2, "
        "action_repeat=1, total_env_steps=32*16*{iters}, policy_layers=(32, 32), value_layers=(32, 32), {extra})")


def test_four_devices_equal_one_device(run_python):
    code = f"""
import jax, numpy as np
from vasa.algos import ppo
from vasa.dist import make_mesh
assert jax.device_count() == 4
for surrogate in ("clip", "kl"):
    # kl_target small enough that the KL hinge is active (its gradient is added after the
    # all-reduce, weighted by the all-device KL)
    config = {TINY.format(iters=10, extra="surrogate=surrogate, kl_target=1e-4")}
    results = []
    for n in (4, 1):
        mesh = make_mesh(n)
        state = ppo.init(config, mesh=mesh)
        step = ppo.make_train_step(config, mesh=mesh)
        for _ in range(4):
            state, metrics = step(state)
        if n == 4:
            assert len(state.env_state.obs.sharding.device_set) == 4
        results.append(jax.device_get((state.params, state.normalizer, state.beta)))
    flat4, flat1 = (jax.tree.leaves(r) for r in results)
    for a, b in zip(flat4, flat1):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    print(surrogate, "max diff", max(float(np.max(np.abs(a - b))) for a, b in zip(flat4, flat1)))

# compiled ahead of time, as ppo.train does, with a zero-size leaf in the env state (MJX's
# Data has several): the step's output shardings must match its input shardings
import jax.numpy as jnp
from vasa.envs.wrappers import Wrapper
class WithEmptyLeaf(Wrapper):
    def reset(self, key):
        s = self.env.reset(key)
        return s.replace(metrics={{**s.metrics, "empty": jnp.zeros((0, 3))}})
env = WithEmptyLeaf(ppo.make_env(config))
state = ppo.init(config, env, mesh=make_mesh(4))
compiled = ppo.make_train_step(config, env, mesh=make_mesh(4)).lower(state).compile()
for _ in range(3):
    state, metrics = compiled(state)
assert state.env_state.metrics["empty"].shape == (32, 0, 3)
try:
    import dataclasses
    ppo.init(dataclasses.replace(config, num_envs=30), mesh=make_mesh(4))
except ValueError as e:
    assert "num_envs" in str(e) and "devices (4)" in str(e), e
else:
    raise AssertionError("num_envs=30 on 4 devices accepted")
print("ok")
"""
    out = run_python(code, devices=4)
    assert "ok" in out


def _train_code(run_dir, resume=False, max_iterations=None):
    run = (f"RunConfig(resume={run_dir!r}, progress=False, eval_every=0)" if resume else
           f"RunConfig(run_dir={run_dir!r}, progress=False, eval_every=0, checkpoint_every=2, "
           f"max_iterations={max_iterations!r})")
    return f"""
import jax, numpy as np
from vasa.algos import ppo
from vasa.run import RunConfig
config = {TINY.format(iters=6, extra="surrogate='kl', target_update_interval=2")}
_, state, rows = ppo.train(config, {run})
leaves = jax.tree.leaves(jax.device_get(state))
np.savez({run_dir!r} + "/final.npz", *leaves)
print("rows", [r["iteration"] for r in rows])
"""


def test_resume_in_fresh_process_is_bitwise_identical(run_python, tmp_path):
    a, b = str(tmp_path / "interrupted"), str(tmp_path / "straight")
    out1 = run_python(_train_code(a, max_iterations=3))
    assert "rows [1, 2, 3]" in out1
    out2 = run_python(_train_code(a, resume=True))
    assert "rows [4, 5, 6]" in out2
    run_python(_train_code(b))
    x, y = np.load(a + "/final.npz"), np.load(b + "/final.npz")
    assert len(x.files) == len(y.files) > 10
    for k in x.files:
        np.testing.assert_array_equal(x[k], y[k])
    rows = open(a + "/metrics.csv").read().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == [str(i) for i in range(1, 7)]
    assert os.path.exists(a + "/learning_curve.png")
    cfg = json.load(open(a + "/config.json"))
    assert cfg["ppo"]["surrogate"] == "kl" and cfg["ppo"]["policy_layers"] == [32, 32]
    ck = Checkpointer(a)
    assert ck.steps()[-1] == 6 and ck.config()["ppo"] == cfg["ppo"]  # the config travels with the state


def _tiny_config(**kw):
    base = dict(env="toy/pendulum", num_envs=8, unroll_length=8, num_minibatches=2, num_epochs=1, action_repeat=1,
                total_env_steps=8 * 8 * 5, policy_layers=(8,), value_layers=(8,))
    return ppo.PPOConfig(**{**base, **kw})


def test_checkpoint_keeps_last_k_and_reports_failures(tmp_path):
    config = _tiny_config()
    state = ppo.init(config)
    ck = Checkpointer(str(tmp_path), keep=2)
    for s in (1, 2, 3, 4):
        ck.save(s, state.replace(iteration=jnp.int32(s)))
    assert ck.steps() == [3, 4]
    step, restored = ck.restore(state)
    assert step == 4 and int(restored.iteration) == 4
    jax.tree.map(np.testing.assert_array_equal, restored.params, state.params)

    # an interrupted save leaves only a temporary directory, which restore ignores
    os.makedirs(os.path.join(ck.directory, "5.orbax-checkpoint-tmp-123"))
    assert Checkpointer(str(tmp_path), keep=2).restore(state)[0] == 4

    # incompatible: a different network
    other = ppo.init(_tiny_config(policy_layers=(16,)))
    with pytest.raises(CheckpointError, match="does not match"):
        ck.restore(other)

    # missing
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Checkpointer(str(tmp_path / "empty")).restore(state)

    # corrupt: overwrite every data file of the latest checkpoint
    for root, _, files in os.walk(os.path.join(ck.directory, "4")):
        for f in files:
            if "metadata" not in f:
                with open(os.path.join(root, f), "wb") as fh:
                    fh.write(b"garbage")
    with pytest.raises(CheckpointError, match="4"):
        Checkpointer(str(tmp_path), keep=2).restore(state)
    # ... while the previous one is intact
    assert Checkpointer(str(tmp_path), keep=2).restore(state, step=3)[0] == 3
    ck.close()


def test_resume_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        ppo.train(_tiny_config(), RunConfig(resume=str(tmp_path / "nowhere"), progress=False))


class NanAfter:
    """The pendulum, but rewards turn NaN after 20 steps of an episode."""

    def __init__(self):
        from vasa.envs.tasks.pendulum import Pendulum

        self.inner = Pendulum()
        self.default_episode_length, self.default_action_repeat = 200, 1
        self.observation_spec, self.action_spec = self.inner.observation_spec, self.inner.action_spec

    def reset(self, key):
        s = self.inner.reset(key)
        return s.replace(physics=(s.physics, jnp.zeros(())))

    def step(self, s, a):
        physics, count = s.physics
        out = self.inner.step(s.replace(physics=physics), a)
        reward = jnp.where(count >= 20, jnp.nan, out.reward)
        return out.replace(physics=(out.physics, count + 1), reward=reward)


def test_nan_stops_training_and_keeps_last_good_checkpoint(tmp_path):
    from vasa.envs import register

    register("test/nan_after", NanAfter)
    config = _tiny_config(env="test/nan_after", total_env_steps=8 * 8 * 10)
    with pytest.raises(TrainingDiverged, match="iteration 3") as err:
        ppo.train(config, RunConfig(run_dir=str(tmp_path), progress=False, checkpoint_every=1, eval_every=0))
    assert "loss" in str(err.value)
    ck = Checkpointer(str(tmp_path))
    assert ck.steps()[-1] == 2
    _, state = ck.restore(ppo.init(config))
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state.params))


def _example(*args, timeout=120):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, os.path.join(ROOT, "examples", "train_ppo.py"), *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_help_lists_every_field_with_default():
    import dataclasses

    out = _example("--help")
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    for cls in (ppo.PPOConfig, RunConfig):
        for f in dataclasses.fields(cls):
            assert "--" + f.name.replace("_", "-") in text, f.name
    assert text.count("(default:") >= len(dataclasses.fields(ppo.PPOConfig)) + len(dataclasses.fields(RunConfig))
    for flag in ("--env", "--num-envs", "--total-env-steps", "--seed", "--num-seeds", "--run-dir", "--resume"):
        assert flag in text


@pytest.mark.parametrize("args,field", [
    (["--num-minibatches", "7"], "num_minibatches"),
    (["--learning-rate", "0"], "learning_rate"),
    (["--unroll-length", "0"], "unroll_length"),
    (["--env", "dmc/cartpole_balanse"], "env"),
    (["--action-repeat", "0"], "action_repeat"),
    (["--chunk", "0"], "RunConfig.chunk"),
])
def test_example_rejects_bad_config(args, field):
    out = _example(*args)
    assert out.returncode != 0
    assert field in out.stderr and "ValueError" in out.stderr
