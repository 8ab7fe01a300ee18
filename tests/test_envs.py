"""Environments: registry, the pendulum against Gymnasium's formulas, wrapper semantics,
and the Playground/Brax adapters against the libraries they wrap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vasa.envs as E


def test_unknown_id_lists_valid_ids_closest_first():
    with pytest.raises(ValueError) as err:
        E.make("dmc/cartpole_balanc")
    msg = str(err.value)
    assert "dmc/cartpole_balanc" in msg
    assert msg.index("dmc/cartpole_balance") < msg.index("brax/ant")
    for env_id in E.registered_ids():
        assert env_id in msg


def test_required_ids_are_registered():
    ids = set(E.registered_ids())
    for name in ("halfcheetah", "hopper", "walker2d", "ant", "humanoid", "swimmer", "reacher", "inverted_pendulum"):
        assert f"brax/{name}" in ids
    for task in ("cartpole_balance", "cartpole_swingup", "cheetah_run", "walker_walk", "walker_stand",
                 "ball_in_cup_catch", "finger_spin", "reacher_easy"):
        assert f"dmc/{task}" in ids
    assert "toy/pendulum" in ids


@pytest.mark.parametrize("kwargs", [dict(action_repeat=0), dict(episode_length=0), dict(reset_mode="sometimes")])
def test_bad_wrapper_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        E.make("toy/pendulum", **kwargs)


def gym_pendulum_step(th, thdot, u):
    """Gymnasium Pendulum-v1, transcribed in NumPy."""
    g, m, l, dt = 10.0, 1.0, 1.0, 0.05
    u = np.clip(u, -2.0, 2.0)
    norm = ((th + np.pi) % (2 * np.pi)) - np.pi
    cost = norm**2 + 0.1 * thdot**2 + 0.001 * u**2
    newthdot = np.clip(thdot + (3 * g / (2 * l) * np.sin(th) + 3.0 / (m * l**2) * u) * dt, -8, 8)
    return th + newthdot * dt, newthdot, -cost


def test_pendulum_matches_gymnasium_formulas():
    env = E.make_raw("toy/pendulum")
    s = env.reset(jax.random.PRNGKey(3))
    th, thdot = (float(x) for x in s.physics)
    step = jax.jit(env.step)
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = rng.uniform(-1.2, 1.2)
        s = step(s, jnp.array([a], jnp.float32))
        th, thdot, r = gym_pendulum_step(th, thdot, 2.0 * np.clip(a, -1, 1))
        np.testing.assert_allclose(float(s.reward), r, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(s.obs, [np.cos(th), np.sin(th), thdot], rtol=1e-4, atol=1e-4)


def test_episode_limit_autoreset_and_final_obs():
    env = E.make("toy/pendulum", episode_length=10, action_repeat=3)
    raw = E.make_raw("toy/pendulum")
    s = env.reset(jax.random.PRNGKey(0))
    step = jax.jit(env.step)
    a = jnp.array([0.3])
    # replay the raw task alongside: each wrapped step is 3 raw steps with summed reward
    r_state = raw.reset(jax.random.split(jax.random.PRNGKey(0))[1])
    np.testing.assert_allclose(s.obs, r_state.obs)
    total = 0.0
    for i in range(4):  # steps 3, 6, 9, 12 >= 10: the 4th step truncates
        prev = s
        s = step(s, a)
        rew = 0.0
        for _ in range(3):
            r_state = raw.step(r_state, a)
            rew += float(r_state.reward)
        total += rew
        np.testing.assert_allclose(float(s.reward), rew, rtol=1e-5)
        if i < 3:
            assert float(s.done) == 0 and float(s.truncation) == 0
            np.testing.assert_allclose(s.obs, r_state.obs, rtol=1e-5)
    assert float(s.done) == 1 and float(s.truncation) == 1 and float(s.termination) == 0
    np.testing.assert_allclose(s.info["final_obs"], r_state.obs, rtol=1e-5)  # true last obs kept
    assert not np.allclose(s.obs, r_state.obs)  # and a new episode started
    np.testing.assert_allclose(float(s.info["final_return"]), total, rtol=1e-5)
    assert float(s.info["final_length"]) == 4 and int(s.info["steps"]) == 0
    assert float(s.metrics["episode_return"]) == 0
    # fresh resets differ between episodes; the next step continues normally
    s2 = step(s, a)
    assert float(s2.done) == 0 and int(s2.info["steps"]) == 3
    del prev


def test_fresh_and_cached_resets():
    starts = {}
    for mode in ("fresh", "cached"):
        env = E.make("toy/pendulum", episode_length=1, reset_mode=mode)
        s = env.reset(jax.random.PRNGKey(0))
        first = s.obs
        step = jax.jit(env.step)
        obs = []
        for _ in range(3):
            s = step(s, jnp.zeros(1))
            obs.append(np.asarray(s.obs))
        starts[mode] = (np.asarray(first), obs)
    first, obs = starts["cached"]
    for o in obs:
        np.testing.assert_allclose(o, first)
    first, obs = starts["fresh"]
    assert not np.allclose(obs[0], obs[1])


def test_termination_inside_action_repeat_stops_the_repeat():
    class Countdown:
        """Terminates when the counter reaches 2; reward 1 per step."""
        default_episode_length, default_action_repeat = 100, 1
        observation_spec = E.ArraySpec((1,))
        action_spec = E.ArraySpec((1,), low=-jnp.ones(1), high=jnp.ones(1))

        def reset(self, key):
            z = jnp.zeros(())
            return E.EnvState(physics=z, obs=z[None], reward=z, done=z, truncation=z)

        def step(self, s, a):
            c = s.physics + 1
            return s.replace(physics=c, obs=c[None], reward=jnp.ones(()), done=(c >= 2).astype(jnp.float32))

    env = E.ActionRepeat(Countdown(), 5)
    s = env.step(env.reset(None), jnp.zeros(1))
    assert float(s.reward) == 2 and float(s.done) == 1 and float(s.physics) == 2
    limited = E.EpisodeLimit(env, 5, steps_per_action=5)
    s = limited.step(limited.reset(None), jnp.zeros(1))
    assert float(s.termination) == 1 and float(s.truncation) == 0


def test_dmc_adapter_matches_playground():
    from mujoco_playground import registry

    theirs = registry.load("CartpoleBalance", config_overrides={"impl": "jax"})
    ours = E.make_raw("dmc/cartpole_balance")
    key = jax.random.PRNGKey(7)
    a = jnp.array([0.4])
    t_state, o_state = jax.jit(theirs.reset)(key), jax.jit(ours.reset)(key)
    t_step, o_step = jax.jit(theirs.step), jax.jit(ours.step)
    for _ in range(5):
        t_state, o_state = t_step(t_state, a), o_step(o_state, a)
        np.testing.assert_allclose(o_state.obs, t_state.obs, rtol=1e-6)
        np.testing.assert_allclose(o_state.reward, t_state.reward, rtol=1e-6)
    spec = ours.action_spec
    assert spec.shape == (1,) and float(spec.low[0]) == -1 and ours.default_episode_length == 1000
    assert ours.observation_spec.shape == (5,)


@pytest.mark.slow
def test_brax_adapter_matches_brax():
    from brax import envs as brax_envs

    theirs = brax_envs.get_environment("hopper", backend="mjx")
    ours = E.make_raw("brax/hopper")
    key = jax.random.PRNGKey(1)
    a = jnp.full((3,), 0.2)
    t_state, o_state = jax.jit(theirs.reset)(key), jax.jit(ours.reset)(key)
    t_step, o_step = jax.jit(theirs.step), jax.jit(ours.step)
    for _ in range(3):
        t_state, o_state = t_step(t_state, a), o_step(o_state, a)
        np.testing.assert_allclose(o_state.obs, t_state.obs, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(o_state.reward, t_state.reward, rtol=1e-5)
        assert float(o_state.done) == float(t_state.done)


def test_adapter_states_have_no_weak_types():
    # Playground's CheetahRun reset stores data.time as a Python float; a weak-typed leaf in a
    # training state makes a jitted step compile twice (weak in, strong out)
    env = E.make("dmc/cheetah_run", reset_mode="cached")
    state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    weak = [jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]
            if getattr(x, "weak_type", False)]
    assert not weak


def test_env_options_reach_the_task_builder_and_bad_ones_fail_by_name():
    """``env_options`` (PPO, SAC/DDPG, ES) are ``name=value`` strings read as Python literals;
    malformed entries fail in the config's validation, unknown names when the task is built."""
    import dataclasses

    from vasa.algos.es import ESConfig
    from vasa.algos.offpolicy import OffPolicyConfig
    from vasa.algos.ppo import make_env
    from vasa.algos.ppo_config import PPOConfig
    from vasa.envs import make_raw, parse_env_options

    assert parse_env_options(("num_layouts=64", "sensors=('lidar', 'depth')", "control = osc_pose", "x=None")) == {
        "num_layouts": 64, "sensors": ("lidar", "depth"), "control": "osc_pose", "x": None}
    for bad in (("num_layouts",), ("=3",), ("2x=1",), ("a=1", "a=2")):
        with pytest.raises(ValueError, match="env_options entry"):
            parse_env_options(bad)
    for cls in (PPOConfig, OffPolicyConfig, ESConfig):
        with pytest.raises(ValueError, match=r"env_options=\('rows',\) is not allowed: .*name=value"):
            cls(env_options=("rows",)).validate()
    with pytest.raises(ValueError, match="toy/pendulum does not take wind: its builder's parameters are"):
        make_raw("toy/pendulum", wind=1.0)
    config = PPOConfig(env="robo/lift", action_repeat=1, env_options=("control=joint_velocity", "reward_scale=2.0"))
    config.validate()
    env = make_env(config)
    assert env.unwrapped.control == "joint_velocity" and env.unwrapped.reward_scale == 2.0
    assert env.action_spec.shape == (8,)  # 7 joint velocities + gripper (osc_pose: 7)
    with pytest.raises(ValueError, match="robo/lift does not take"):
        make_env(dataclasses.replace(config, env_options=("num_cubes=2",)))


def test_import_vasa_selects_legacy_cpu_fusion_unless_told_otherwise(tmp_path):
    """``import vasa`` adds ``--xla_cpu_use_fusion_emitters=false`` to ``XLA_FLAGS`` before JAX
    starts (MJX arm kinematics is ~200x slower without); a user's own choice is kept; importing
    vasa after JAX's CPU backend started warns, and so does a robo task built then."""
    import os
    import subprocess
    import sys

    def run(code, flags=None):
        env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
        if flags is not None:
            env["XLA_FLAGS"] = flags
        proc = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=300, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout + proc.stderr

    from vasa.xla_flags import jaxlib_knows_ynn

    show = "import vasa, os; print('FLAGS', os.environ.get('XLA_FLAGS'), vasa.xla_flags.YNN_CPU_DOT)"
    ynn = " --xla_cpu_experimental_ynn_fusion_type=dot True" if jaxlib_knows_ynn() else " False"  # (jaxlib 0.10 only)
    assert "FLAGS --xla_cpu_use_fusion_emitters=false" + ynn in run(show)
    assert "FLAGS --xla_cpu_use_fusion_emitters=true" + ynn in run(show, "--xla_cpu_use_fusion_emitters=true")
    # YNNPACK's dot fusions: a user's setting of that flag (here XLA's own kernels) is kept as it is
    off = "--xla_cpu_experimental_ynn_fusion_type=-dot"
    assert f"FLAGS {off} --xla_cpu_use_fusion_emitters=false False" in run(show, off)
    assert "FLAGS None False" in run("import jax; jax.devices(); " + show.replace("import vasa, os; ", "import vasa, os;"))
    late = run("import jax; jax.devices(); import vasa.envs as E; E.make_raw('robo/lift')")
    assert "RuntimeWarning: JAX started on the CPU without --xla_cpu_use_fusion_emitters=false" in late
    early = run("import vasa.envs as E, jax; jax.devices(); E.make_raw('robo/lift')")
    assert "RuntimeWarning" not in early
    # any late import says so, robo or not: other emitters round differently (session 31: the SECANT
    # benchmark's main process started JAX first, and its walker returns differed from its workers')
    started_first = "JAX's CPU backend started before `import vasa`"
    legacy = "import jax; jax.devices(); import vasa; print('LEGACY', vasa.xla_flags.LEGACY_CPU_FUSION)"
    assert started_first in late and started_first not in early
    assert "LEGACY False" in (told := run(legacy)) and started_first in told
    assert started_first not in run(legacy, "--xla_cpu_use_fusion_emitters=true")


def test_ynn_flag_only_for_the_jaxlib_versions_measured(monkeypatch):
    """:data:`vasa.xla_flags.YNN_FLAG` is requested on jaxlib 0.10.x only (an unknown XLA flag
    aborts the backend), and never over a malformed or missing version; a user's own setting of
    the flag is read, not changed (dot on when its last list names ``dot`` or ``+dot``)."""
    import os

    from vasa.xla_flags import jaxlib_knows_ynn, request_ynn_dot

    assert jaxlib_knows_ynn("0.10.0") and jaxlib_knows_ynn("0.10.2")
    assert not any(jaxlib_knows_ynn(v) for v in ("0.9.2", "0.11.0", "1.10.0", "dev", "0"))
    name = "--xla_cpu_experimental_ynn_fusion_type="
    for value, on in (("dot", True), ("+dot", True), ("dot,reduce", True), ("-dot", False), ("reduce", False),
                      ("dot " + name + "-dot", False)):
        monkeypatch.setenv("XLA_FLAGS", f"--xla_cpu_use_fusion_emitters=false {name}{value}")
        assert request_ynn_dot() is on, value
        assert os.environ["XLA_FLAGS"] == f"--xla_cpu_use_fusion_emitters=false {name}{value}"


def test_episode_metrics_counts_the_first_episode_only():
    """``episode_metrics``: the return and each metric's largest value within the first
    episode of every environment, against a hand-worked counter task."""
    from vasa.envs import EnvState
    from vasa.envs.rollout import episode_metrics, episode_returns

    class Counter:  # reward 1 per step; done at step 4 (env 0) / 6 (env 1); env 1 succeeds at step 3
        episode_length = 100

        def reset(self, key):
            zero = jnp.zeros(())  # which env is which comes with the action (the policy below)
            return EnvState(physics=None, obs=jnp.zeros(1), reward=zero, done=zero, truncation=zero,
                            info={"t": jnp.zeros((), jnp.int32)}, metrics={"success": zero})

        def step(self, state, action):
            t = state.info["t"] + 1
            env_id = action[0].astype(jnp.int32)
            done = jnp.where(env_id == 0, t == 4, t == 6).astype(jnp.float32)
            # env 0 'succeeds' at step 7, after its first episode ended: not counted
            success = (((env_id == 1) & (t == 3)) | ((env_id == 0) & (t == 7))).astype(jnp.float32)
            return state.replace(reward=jnp.ones(()), done=done, info={**state.info, "t": t},
                                 metrics={"success": success})

    policy = lambda obs: jnp.array([[0.0], [1.0]])  # noqa: E731  env 0 and env 1
    out = jax.jit(lambda k: episode_metrics(Counter(), policy, k, 2, steps=10))(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(out["return"]), [4.0, 6.0])
    np.testing.assert_array_equal(np.asarray(out["success"]), [0.0, 1.0])
    np.testing.assert_array_equal(np.asarray(episode_returns(Counter(), policy, jax.random.PRNGKey(0), 2, steps=10)),
                                  [4.0, 6.0])
