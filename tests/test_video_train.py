"""RubiksNet training: steps reduce the loss on a tiny batch, the optimizer's decay mask and
shift routing, fixed shifts stay fixed, the AQ variant's budget and hard conversion, resume."""

import dataclasses

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from vasa.run import RunConfig
from vasa.video import train as vt
from vasa.video.data import synthetic_temporal

TINY = vt.VideoTrainConfig(width=8, blocks=(1, 1, 1, 1), num_frames=4, image_size=16, num_train=16, num_val=16,
                           batch_size=8, epochs=2, warmup_epochs=0, learning_rate=0.05)


def _setup(config):
    clips, labels = synthetic_temporal(0, config.batch_size, num_frames=config.num_frames, size=config.image_size)
    model = vt.make_model(config, 10)
    tx, _ = vt.make_optimizer(config)
    state = vt.init(config, model, tx, 10)
    train_step, eval_step = vt.make_steps(config, model, tx)
    return jnp.asarray(clips), jnp.asarray(labels), state, train_step, eval_step


@pytest.mark.parametrize("variant", ["rubiks3d", "rubiks3d-aq"])
def test_training_steps_reduce_the_loss_on_a_tiny_batch(variant):
    config = dataclasses.replace(TINY, variant=variant, epochs=20)
    clips, labels, state, train_step, eval_step = _setup(config)
    losses = []
    for _ in range(12):
        state, m = train_step(state, clips, labels)
        losses.append(float(m["cross_entropy"]))
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses
    out = eval_step(state, clips, labels, False)
    assert 0 <= int(out["top1"]) <= int(out["top5"]) <= 8
    if variant == "rubiks3d-aq":
        assert 0 <= float(m["nonzero_fraction"]) <= 1
        hard = vt.to_hard_shifts(state.params)
        shifts = [leaf for p, leaf in jax.tree_util.tree_flatten_with_path(hard)[0] if vt._leaf_name(p) == "shift"]
        assert shifts and all(s.shape[0] == 3 and np.all(np.asarray(s[0]) == np.round(np.asarray(s[0]))) for s in shifts)
        assert int(eval_step(state, clips, labels, True)["top5"]) >= 0


def test_fixed_shifts_stay_fixed_and_decay_skips_bn_bias_shift():
    config = dataclasses.replace(TINY, temporal="zero", spatial="fixed")
    clips, labels, state, train_step, _ = _setup(config)
    before = jax.tree.map(np.asarray, state.params)
    for _ in range(3):
        state, _ = train_step(state, clips, labels)
    from vasa.video.shift import fixed_shift_table

    for path, leaf in jax.tree_util.tree_flatten_with_path(state.params)[0]:
        if vt._leaf_name(path) == "shift":
            leaf = np.asarray(leaf)
            assert np.all(leaf[0] == 0)
            np.testing.assert_array_equal(leaf[1:], np.asarray(fixed_shift_table(leaf.shape[1], 3)))
    # weight decay acts on kernels only: with zero gradients, only kernels shrink
    tx, _ = vt.make_optimizer(dataclasses.replace(TINY, weight_decay=0.1, learning_rate=1.0, momentum=0.0,
                                                  shift_grad_norm="off"))
    params = before
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    for path, u in jax.tree_util.tree_flatten_with_path(updates)[0]:
        moved = float(jnp.abs(u).max()) > 0
        assert moved == (vt._leaf_name(path) == "kernel"), jax.tree_util.keystr(path)


def test_train_resume_matches_uninterrupted(tmp_path):
    config = dataclasses.replace(TINY, epochs=2)
    quiet = dict(progress=False, eval_every=1, checkpoint_every=1)
    whole, rows = vt.train(config, RunConfig(run_dir=str(tmp_path / "a"), **quiet))
    vt.train(config, RunConfig(run_dir=str(tmp_path / "b"), max_iterations=1, **quiet))
    resumed, rows_b = vt.train(config, RunConfig(resume=str(tmp_path / "b"), **quiet))
    assert rows_b[0]["iteration"] == 2
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    assert (tmp_path / "a" / "learning_curve.png").exists() and np.isfinite(rows[-1]["val_top1"])


def test_config_errors():
    with pytest.raises(ValueError, match="VideoTrainConfig.batch_size=64 is not allowed"):
        dataclasses.replace(TINY, batch_size=64).validate()
    with pytest.raises(ValueError, match="temporal='zero' is not allowed"):
        dataclasses.replace(TINY, variant="rubiks3d-aq", temporal="zero").validate()
