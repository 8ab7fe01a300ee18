"""PPO from pixels on the tiny pixel task toy/reach2d (16x16): the rollout keeps uint8 pixels,
proprioception is optional, random shift of the update batch, config errors, and resume."""

import dataclasses

import jax
import numpy as np
import pytest

from vasa.algos import ppo
from vasa.run import RunConfig

PIX = ppo.PPOConfig(env="toy/reach2d", action_repeat=1, pixels=True, image_size=16, frame_stack=2, encoder="drq",
                    num_envs=8, unroll_length=8, num_minibatches=2, num_epochs=1, total_env_steps=8 * 8 * 4,
                    policy_layers=(16,), value_layers=(16,), feature_dim=8)


def test_rollout_keeps_uint8_pixels_and_learns_from_them():
    env = ppo.make_env(PIX)
    state = ppo.init(PIX, env)
    step = ppo.make_train_step(PIX, env)
    text = step.lower(state).as_text()
    T, E = PIX.unroll_length, PIX.num_envs
    assert f"tensor<{T}x{E}x16x16x6xui8>" in text  # the unroll's pixels, as uint8
    assert f"tensor<{T}x{E}x16x16x6xf32>" not in text  # never a float copy of the whole unroll
    before = jax.tree.map(np.asarray, state.params)
    state, metrics = step(state)
    assert all(np.isfinite(float(metrics[k])) for k in ("loss", "policy_loss", "value_loss", "entropy"))
    encoder = state.params["policy"]["params"]["trunk"]["encoder"]
    assert not np.allclose(np.asarray(jax.tree.leaves(encoder)[0]),
                           jax.tree.leaves(before["policy"]["params"]["trunk"]["encoder"])[0])  # the conv learns


def test_proprioception_is_optional():
    env = ppo.make_env(PIX)
    for proprio, extra in ((False, 0), (True, 2)):
        nets = ppo.Networks(dataclasses.replace(PIX, proprio=proprio), env.observation_spec, env.action_spec)
        params = nets.init(jax.random.PRNGKey(0))
        head = params["policy"]["params"]["head"]
        first = head[sorted(k for k in head if k.startswith("Dense"))[0]]["kernel"]
        assert first.shape[0] == PIX.feature_dim + extra
        obs = jax.jit(env.reset)(jax.random.PRNGKey(1)).obs
        assert set(nets.inputs(ppo.RunningStats.create(2), obs)) == ({"pixels", "proprio"} if proprio else {"pixels"})


@pytest.mark.parametrize("change,message", [
    (dict(pixels=False, augment="crop"), "PPOConfig.augment='crop' is not allowed: it applies to pixel observations"),
    (dict(pixels=False, proprio=True), "PPOConfig.proprio=True is not allowed: it applies to pixel observations"),
    (dict(encoder="nature", image_size=16), "PPOConfig.image_size=16 is not allowed"),
    (dict(appearance="color_fancy"), "PPOConfig.appearance='color_fancy' is not allowed"),
])
def test_pixel_config_errors_name_the_field(change, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        dataclasses.replace(PIX, **change).validate()


def test_random_shift_run_resumes_bit_for_bit(tmp_path):
    config = dataclasses.replace(PIX, augment="crop", augment_pad=2)
    run = RunConfig(eval_every=2, checkpoint_every=0, chunk=1, progress=False, num_eval_envs=4)
    _, whole, rows = ppo.train(config, dataclasses.replace(run, run_dir=str(tmp_path / "a")))
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4] and np.isfinite(rows[-1]["eval_return"])
    ppo.train(config, dataclasses.replace(run, run_dir=str(tmp_path / "b"), max_iterations=2))
    _, resumed, _ = ppo.train(config, RunConfig(resume=str(tmp_path / "b"), progress=False, num_eval_envs=4))
    for x, y in zip(jax.tree.leaves(whole), jax.tree.leaves(resumed), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
