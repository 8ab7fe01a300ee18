"""RubiksNet training: steps reduce the loss on a tiny batch, the optimizer's decay mask and
shift routing, fixed shifts stay fixed, the AQ variant's budget and hard evaluation, resume,
evaluation views, and training on dataset folders (generated on disk, with bad samples)."""

import csv
import dataclasses
import json
import os

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from test_video_data import UCF_CLASSES, make_bad_ucf, make_ucf, write_lines
from vasa.run import RunConfig
from vasa.video import train as vt
from vasa.video.data import CLASS_NAMES, BadSampleError, VideoDataset, synthetic_temporal

TINY = vt.VideoTrainConfig(width=8, blocks=(1, 1, 1, 1), num_frames=4, image_size=16, num_train=16, num_val=16,
                           batch_size=8, epochs=2, warmup_epochs=0, learning_rate=0.05)
# for make_ucf() folders: 3 training and 3 validation videos of 3 classes, one batch each
FILES = dataclasses.replace(TINY, videos_dir="UCF-101", batch_size=3)
QUIET = dict(progress=False, eval_every=1, checkpoint_every=1)


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
    out = eval_step(state, clips[:, None], labels, False)  # one view per clip
    assert 0 <= int(out["top1"]) <= int(out["top5"]) <= 8
    if variant == "rubiks3d-aq":
        assert 0 <= float(m["nonzero_fraction"]) <= 1
        # hard evaluation: the model with its attention's argmax (integer temporal shifts)
        hard = eval_step(state, clips[:, None], labels, True)
        model = vt.make_model(config, 10)
        variables = {"params": state.params, "batch_stats": state.batch_stats}
        x = (clips.astype(jnp.float32) / 255.0 - 0.5) / 0.25
        np.testing.assert_allclose(hard["logits"], model.apply(variables, x, quantize=True), rtol=1e-5, atol=1e-5)
        assert 0 <= int(hard["top1"]) <= int(hard["top5"]) <= 8


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
    whole, rows = vt.train(config, RunConfig(run_dir=str(tmp_path / "a"), **QUIET))
    vt.train(config, RunConfig(run_dir=str(tmp_path / "b"), max_iterations=1, **QUIET))
    resumed, rows_b = vt.train(config, RunConfig(resume=str(tmp_path / "b"), **QUIET))
    assert rows_b[0]["iteration"] == 2
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    assert (tmp_path / "a" / "learning_curve.png").exists() and np.isfinite(rows[-1]["val_top1"])


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match="VideoTrainConfig.batch_size=64 is not allowed"):
        dataclasses.replace(TINY, batch_size=64).validate()
    with pytest.raises(ValueError, match="temporal='zero' is not allowed"):
        dataclasses.replace(TINY, variant="rubiks3d-aq", temporal="zero").validate()
    with pytest.raises(ValueError, match="env='ucf101' is not allowed: without data_root only 'synthetic'"):
        dataclasses.replace(TINY, env="ucf101").validate()
    with pytest.raises(ValueError, match="data_root='/no/such' is not allowed: it must be an existing directory"):
        dataclasses.replace(TINY, data_root="/no/such").validate()
    with pytest.raises(ValueError, match=r"layout='kinetics' is not allowed: it must be one of ucf101, hmdb51"):
        dataclasses.replace(TINY, layout="kinetics").validate()
    with pytest.raises(ValueError, match=r"split=4 is not allowed: it must be an integer in \[1, 3\]"):
        dataclasses.replace(TINY, layout="hmdb51", split=4).validate()
    with pytest.raises(ValueError, match=r"eval_protocol='10crop' is not allowed: it must be one of 1clip-center, 2clip-3crop\."):
        dataclasses.replace(TINY, eval_protocol="10crop").validate()
    # with a data_root, any run label; batch_size is bounded by the split's size instead of num_train
    dataclasses.replace(TINY, data_root=str(tmp_path), env="my-ucf", batch_size=64).validate()
    make_ucf(str(tmp_path))
    with pytest.raises(ValueError, match="batch_size=4 is not allowed: it must not exceed the 3 training samples"):
        vt.resolve_data(dataclasses.replace(FILES, data_root=str(tmp_path), batch_size=4))


def test_eval_step_averages_logits_over_views():
    clips, labels, state, _, eval_step = _setup(TINY)
    one = eval_step(state, clips, labels, False)  # [B, T, H, W, 3]: a single view
    same = eval_step(state, jnp.stack([clips] * 3, 1), labels, False)  # [B, 3, T, H, W, 3], identical views
    assert same["logits"].shape == (TINY.batch_size, 10)
    np.testing.assert_allclose(same["logits"], one["logits"], rtol=1e-4, atol=1e-6)
    assert (int(same["top1"]), int(same["top5"])) == (int(one["top1"]), int(one["top5"]))
    np.testing.assert_allclose(same["loss"], one["loss"], rtol=1e-5)
    views = jnp.stack([clips, clips[:, ::-1], 255 - clips], 1)  # three different views
    mixed = eval_step(state, views, labels, False)
    per_view = np.stack([np.asarray(eval_step(state, views[:, v], labels, False)["logits"]) for v in range(3)])
    assert not np.allclose(per_view[0], per_view[2], atol=1e-4)
    np.testing.assert_allclose(mixed["logits"], per_view.mean(0), rtol=1e-4, atol=1e-6)
    # top-1, top-5 and the loss are those of the averaged logits
    avg = per_view.mean(0)
    loss = -np.sum(jax.nn.log_softmax(avg)[np.arange(len(labels)), np.asarray(labels)])
    np.testing.assert_allclose(mixed["loss"], loss, rtol=1e-4)
    assert int(mixed["top1"]) == int(np.sum(avg.argmax(-1) == np.asarray(labels)))


def _read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_train_on_ucf101_folders_with_multi_view_evaluation(tmp_path):
    root = str(tmp_path / "ucf")
    make_ucf(root)
    config = dataclasses.replace(FILES, data_root=root, eval_protocol="2clip-3crop")
    state, rows = vt.train(config, RunConfig(run_dir=str(tmp_path / "run"), **QUIET))
    logged = _read_csv(tmp_path / "run" / "metrics.csv")
    assert [int(r["iteration"]) for r in logged] == [1, 2]
    for r in logged:
        assert np.isfinite(float(r["loss"])) and 0 <= float(r["val_top1"]) <= 100
        assert 0 <= float(r["val_top5"]) <= 100 and int(r["skipped_train"]) == int(r["skipped_val"]) == 0
    assert rows[-1]["env_steps"] == 2 * 3  # 3 training videos // batch_size 3 = one step per epoch
    assert state.params["head"]["kernel"].shape[-1] == len(UCF_CLASSES)  # classes from the split files
    with open(tmp_path / "run" / "config.json") as f:
        assert json.load(f)["video"]["env"] == "ucf101"  # the run is labelled by its layout


def test_bad_samples_are_counted_when_skipped_and_named_when_not(tmp_path):
    root = str(tmp_path / "ucf")
    bad = make_bad_ucf(root)  # 3 good training videos and 4 bad ones (missing, empty, corrupt, truncated)
    testlist = os.path.join(root, "ucfTrainTestlist", "testlist01.txt")
    with open(testlist) as f:
        write_lines(testlist, f.read().split() + ["Archery/v_Archery_g09_c01.avi"])  # a missing validation video
    # 1 epoch of 7 // 3 = 2 steps: the schedules, hence the programs, of the 2-epoch run above
    config = dataclasses.replace(FILES, data_root=root, epochs=1, skip_bad_samples=True, eval_protocol="2clip-3crop")
    _, rows = vt.train(config, RunConfig(run_dir=str(tmp_path / "skip"), **QUIET))
    assert (rows[0]["skipped_train"], rows[0]["skipped_val"]) == (4, 1)  # every bad one, also after the last batch
    assert rows[0]["env_steps"] == 3 and np.isfinite(rows[0]["loss"])  # one step, of the 3 good videos
    logged = _read_csv(tmp_path / "skip" / "metrics.csv")
    assert (int(logged[0]["skipped_train"]), int(logged[0]["skipped_val"])) == (4, 1)
    with pytest.raises(BadSampleError) as info:
        vt.train(dataclasses.replace(config, skip_bad_samples=False),
                 RunConfig(run_dir=str(tmp_path / "raise"), **QUIET))
    path = info.value.path
    folders = (bad["empty"], os.path.dirname(bad["corrupt"]), bad["truncated"])
    assert path in str(info.value) and (path == bad["missing"] or any(path.startswith(d) for d in folders)), path


def test_clip_shape_mismatch_fails_before_compiling(tmp_path, monkeypatch):
    def compile_(*args, **kwargs):
        raise AssertionError("compiled before the clip shape was checked")

    monkeypatch.setattr(vt, "init", compile_)
    monkeypatch.setattr(vt, "make_steps", compile_)
    # synthetic data: hand-made clips of 6 frames for a 4-frame model
    clips, labels = map(jnp.asarray, synthetic_temporal(0, 16, num_frames=6, size=16))
    monkeypatch.setattr(vt, "load_synthetic", lambda config: (clips, labels, clips, labels, list(CLASS_NAMES)))
    with pytest.raises(ValueError, match="T=6 frames .* num_frames=4"):
        vt.train(TINY, RunConfig(run_dir=str(tmp_path / "synthetic"), **QUIET))
    # a dataset folder: the first decoded clip is 8x8 for a 16x16 model
    make_ucf(str(tmp_path / "ucf"))
    monkeypatch.setattr(VideoDataset, "load", lambda self, i, rng=None: (np.zeros((4, 8, 8, 3), np.uint8), 0))
    with pytest.raises(ValueError, match="8x8 .* image_size=16"):
        vt.train(dataclasses.replace(FILES, data_root=str(tmp_path / "ucf")),
                 RunConfig(run_dir=str(tmp_path / "files"), **QUIET))
