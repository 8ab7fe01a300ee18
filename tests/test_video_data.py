"""Video data: synthetic temporal classes, split files, TSN sampling, crops, evaluation
views, bad samples. Every dataset is generated on disk under tmp_path (tiny, nothing
downloaded)."""

import dataclasses
import json
import os
import shutil
from fractions import Fraction

import jax
import numpy as np
import pytest
from PIL import Image

from vasa.video.data import (
    CLASS_NAMES,
    EVAL_PROTOCOLS,
    LAYOUTS,
    BadSampleError,
    VideoDataConfig,
    VideoDataset,
    average_views,
    batches,
    check_clip_shape,
    eval_views,
    mirror_class,
    multiscale_crop_box,
    ssv2_class_name,
    synthetic_temporal,
    train_augment,
    tsn_indices,
)

H, W = 24, 32


def constant_frames(values, h=H, w=W):
    """Frames whose every pixel is ``values[i]``: JPEG keeps them exact, so reading the
    mean back recovers which frame (or which sample) was loaded."""
    return np.stack([np.full((h, w, 3), v, np.uint8) for v in values])


def write_folder(path, frames, pattern="img_{:05d}.jpg", start=1):
    os.makedirs(path, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(os.path.join(path, pattern.format(i + start)))


def write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write("".join(line + "\r\n" for line in lines))  # the official lists use CRLF


def frame_values(clip):
    """Per-frame mean of a ``[T, H, W, 3]`` clip, rounded."""
    return np.round(clip.reshape(clip.shape[0], -1).mean(1)).astype(int)


# --------------------------------------------------------------------------------------------
# synthetic temporal classes
# --------------------------------------------------------------------------------------------


def test_synthetic_mirror_classes_are_exact_time_reversals():
    assert len(CLASS_NAMES) >= 8 and len(CLASS_NAMES) % 2 == 0
    n = 6
    for k in range(0, len(CLASS_NAMES), 2):
        a, la = synthetic_temporal(7, n, num_frames=6, size=16, labels=[k] * n)
        b, lb = synthetic_temporal(7, n, num_frames=6, size=16, labels=[k + 1] * n)
        assert mirror_class(CLASS_NAMES[k]) == CLASS_NAMES[k + 1] and mirror_class(CLASS_NAMES[k + 1]) == CLASS_NAMES[k]
        assert a.dtype == np.uint8 and a.shape == (n, 6, 16, 16, 3) and la.dtype == np.int32
        np.testing.assert_array_equal(b, a[:, ::-1])
        assert not np.array_equal(a, b)  # the clips do change over time


def test_synthetic_is_deterministic_and_labels_cover_classes():
    a, la = synthetic_temporal(3, 40, num_frames=4, size=12)
    b, lb = synthetic_temporal(3, 40, num_frames=4, size=12)
    c, _ = synthetic_temporal(4, 40, num_frames=4, size=12)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert not np.array_equal(a, c)
    assert set(la.tolist()) == set(range(len(CLASS_NAMES)))
    k1, _ = synthetic_temporal(jax.random.key(0), 3, num_frames=4, size=12)
    k2, _ = synthetic_temporal(jax.random.key(0), 3, num_frames=4, size=12)
    np.testing.assert_array_equal(k1, k2)
    sub, ls = synthetic_temporal(0, 10, num_frames=4, size=12, classes=("appearing", "disappearing"))
    assert set(ls.tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="'spinning' is not one of"):
        synthetic_temporal(0, 2, classes=("spinning",))


def test_synthetic_order_free_statistics_cannot_separate_mirror_pairs_but_order_can():
    n, t, s = 8, 8, 24
    for k in range(0, len(CLASS_NAMES), 2):
        a, _ = synthetic_temporal(11, n, num_frames=t, size=s, labels=[k] * n)
        b, _ = synthetic_temporal(11, n, num_frames=t, size=s, labels=[k + 1] * n)
        # any function of the multiset of frames: here sorted per-frame features
        feats = lambda clips: np.sort(np.concatenate([clips.mean((2, 3)), clips.std((2, 3))], -1), axis=1)  # noqa: E731
        np.testing.assert_array_equal(feats(a), feats(b))
        np.testing.assert_array_equal(a.mean(1), b.mean(1))  # temporal average pooling too

    # ...while the temporal order tells the members apart, sample by sample
    def object_mask(clips):
        background = np.median(clips.reshape(len(clips), -1, 3), axis=1)[:, None, None, None]
        return np.abs(clips.astype(float) - background).sum(-1) > 60

    def centroid(clips, axis):
        m = object_mask(clips)
        coords = np.arange(s)[None, None, :, None] if axis == "y" else np.arange(s)[None, None, None, :]
        return (m * coords).sum((2, 3)) / np.maximum(m.sum((2, 3)), 1)

    def contrast(clips):
        background = np.median(clips.reshape(len(clips), -1, 3), axis=1)[:, None, None, None]
        return np.abs(clips.astype(float) - background).sum((2, 3, 4))

    for k, measure in ((0, lambda c: centroid(c, "x")), (2, lambda c: centroid(c, "y")),
                       (4, lambda c: object_mask(c).sum((2, 3))), (8, contrast)):
        fwd, _ = synthetic_temporal(5, n, num_frames=t, size=s, labels=[k] * n)
        m = measure(fwd)
        assert np.all(m[:, -1] > m[:, 0]), (CLASS_NAMES[k], m)


# --------------------------------------------------------------------------------------------
# split files
# --------------------------------------------------------------------------------------------

UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "HandstandPushups"]


def make_ucf(root, frames_per_video=(6, 20, 9, 12, 7, 15)):
    lists = os.path.join(root, "ucfTrainTestlist")
    write_lines(os.path.join(lists, "classInd.txt"), [f"{i + 1} {c}" for i, c in enumerate(UCF_CLASSES)])
    train, test, n = [], [], 0
    for c, cls in enumerate(UCF_CLASSES):
        file_cls = "HandStandPushups" if cls == "HandstandPushups" else cls  # as in the release
        for g in (1, 8):
            rel = f"{cls}/v_{file_cls}_g{g:02d}_c01.avi"
            write_folder(os.path.join(root, "UCF-101", rel[:-4]), constant_frames([40 * c + 10] * frames_per_video[n]))
            n += 1
            (train.append(f"{rel} {c + 1}") if g == 1 else test.append(rel))
    write_lines(os.path.join(lists, "trainlist01.txt"), train)
    write_lines(os.path.join(lists, "testlist01.txt"), test)
    return train, test


def test_ucf101_split_files(tmp_path):
    train, test = make_ucf(str(tmp_path))
    cfg = VideoDataConfig(str(tmp_path), layout="ucf101", videos_dir="UCF-101", num_frames=4, image_size=16)
    ds = VideoDataset(cfg)
    assert ds.class_names == tuple(UCF_CLASSES) and len(ds) == 3
    got = {os.path.relpath(s.path, tmp_path / "UCF-101"): s.label for s in ds.samples}
    assert got == {line.split()[0]: int(line.split()[1]) - 1 for line in train}
    val = VideoDataset(VideoDataConfig(str(tmp_path), layout="ucf101", subset="val", videos_dir="UCF-101",
                                       num_frames=4, image_size=16))
    assert {os.path.relpath(s.path, tmp_path / "UCF-101"): s.label for s in val.samples} == {
        rel: UCF_CLASSES.index(rel.split("/")[0]) for rel in test}
    # every loaded clip carries its own label's pixels (value 40 * label + 10)
    for d in (ds, val):
        for i in range(len(d)):
            clip, label = d.load(i)
            assert clip.shape == (1, 4, 16, 16, 3) and label == d[i].label
            assert set(frame_values(clip[0]).tolist()) == {40 * label + 10}
    # a label that disagrees with classInd is an error, not a silent relabel
    write_lines(str(tmp_path / "ucfTrainTestlist" / "trainlist02.txt"), [train[0].replace(" 1", " 2")])
    with pytest.raises(ValueError, match="trainlist02.txt' line 1: label 2 disagrees"):
        VideoDataset(VideoDataConfig(str(tmp_path), layout="ucf101", split=2, videos_dir="UCF-101"))
    with pytest.raises(FileNotFoundError, match="trainlist03.txt"):
        VideoDataset(VideoDataConfig(str(tmp_path), layout="ucf101", split=3))


def test_hmdb51_split_files(tmp_path):
    root = str(tmp_path)
    classes = ["brush_hair", "cartwheel", "chew"]
    expected = {"train": {}, "val": {}}
    for c, cls in enumerate(classes):
        lines = []
        for v, flag in enumerate(("1", "2", "0", "1")):
            name = f"{cls}_video{v}.avi"
            lines.append(f"{name} {flag} ")  # the release has a trailing space
            if flag != "0":
                write_folder(os.path.join(root, cls, name[:-4]), constant_frames([30 * c] * 8), pattern="{:05d}.png")
                expected["train" if flag == "1" else "val"][os.path.join(cls, name)] = c
        write_lines(os.path.join(root, "testTrainMulti_7030_splits", f"{cls}_test_split1.txt"), lines)
    for subset in ("train", "val"):
        ds = VideoDataset(VideoDataConfig(root, layout="hmdb51", subset=subset, num_frames=3, image_size=8))
        assert ds.class_names == tuple(classes)
        assert {os.path.relpath(s.path, root): s.label for s in ds.samples} == expected[subset]
        clip, label = ds.load(0, np.random.default_rng(0))
        assert clip.shape == (3, 8, 8, 3) and set(frame_values(clip).tolist()) == {30 * label}


def make_ssv2(root, gif_id="2"):
    labels = {"Approaching something with your camera": "0", "Pushing something from left to right": "1",
              "Pushing something from right to left": "2"}
    with open(os.path.join(root, "labels.json"), "w") as f:
        json.dump(labels, f)
    entries = {
        "train.json": [("1", "Pushing [something] from left to right", "pushing pen from left to right"),
                       ("2", "Approaching [something] with your camera", "approaching cup with your camera"),
                       ("3", "Pushing [something] from right to left", "pushing box from right to left")],
        "validation.json": [("4", "Pushing [something] from right to left", "pushing cup from right to left")],
    }
    for name, rows in entries.items():
        with open(os.path.join(root, name), "w") as f:
            json.dump([{"id": i, "label": lab, "template": tpl, "placeholders": ["x"]} for i, tpl, lab in rows], f)
    ramp = np.broadcast_to(np.linspace(0, 255, W).astype(np.uint8)[None, :, None], (H, W, 3))
    for vid in ("1", "2", "3", "4"):
        frames = np.stack([ramp] * 10)
        if vid == gif_id:
            os.makedirs(os.path.join(root, "videos"), exist_ok=True)
            imgs = [Image.fromarray(f) for f in frames]
            imgs[0].save(os.path.join(root, "videos", f"{vid}.gif"), save_all=True, append_images=imgs[1:])
        else:
            write_folder(os.path.join(root, "videos", vid), frames, pattern="{:05d}.jpg")
    return labels


def test_ssv2_labels_from_templates_and_no_flip(tmp_path):
    root = str(tmp_path)
    make_ssv2(root)
    assert ssv2_class_name("Putting [something] onto [something else]") == "Putting something onto something else"
    cfg = VideoDataConfig(root, layout="ssv2", videos_dir="videos", num_frames=4, image_size=16)
    ds = VideoDataset(cfg)
    assert ds.class_names[1] == "Pushing something from left to right"
    assert [(os.path.basename(s.path), s.label) for s in ds.samples] == [("1.webm", 1), ("2.webm", 0), ("3.webm", 2)]
    val = VideoDataset(VideoDataConfig(root, layout="ssv2", subset="val", videos_dir="videos"))
    assert [(os.path.basename(s.path), s.label) for s in val.samples] == [("4.webm", 2)]
    # frames are a left-to-right ramp: SSv2 training never flips it, UCF-style training does
    assert not cfg.use_flip and VideoDataConfig(root, layout="ucf101").use_flip
    directions = set()
    for seed in range(12):
        clip, _ = ds.load(seed % 3, np.random.default_rng(seed))  # sample 1 ("2") is a GIF
        assert clip.shape == (4, 16, 16, 3)
        directions.add(bool(clip[0, 0, -1, 0] > clip[0, 0, 0, 0]))
    assert directions == {True}
    flipping = VideoDataset(dataclasses.replace(cfg, flip=True))
    assert {bool(flipping.load(0, np.random.default_rng(s))[0][0, 0, -1, 0] > 128) for s in range(12)} == {True, False}
    with open(os.path.join(root, "validation.json"), "w") as f:
        json.dump([{"id": "9", "label": "x", "template": "Spinning [something]", "placeholders": []}], f)
    with pytest.raises(ValueError, match="'Spinning something' is not in"):
        VideoDataset(VideoDataConfig(root, layout="ssv2", subset="val"))


def test_folder_layout_natural_frame_order(tmp_path):
    root = str(tmp_path)
    # frames named 1.png .. 12.png: natural order, not 1, 10, 11, 12, 2, ...
    write_folder(os.path.join(root, "val", "b_class", "clip0"), constant_frames([20 * i for i in range(12)]),
                 pattern="{}.png", start=1)
    write_folder(os.path.join(root, "val", "a_class", "clip1"), constant_frames([5] * 3))
    ds = VideoDataset(VideoDataConfig(root, layout="folder", subset="val", num_frames=5, image_size=8))
    assert ds.class_names == ("a_class", "b_class") and [s.label for s in ds.samples] == [0, 1]
    clip, label = ds.load(1)
    centres = tsn_indices(12, 5)
    assert label == 1 and frame_values(clip[0]).tolist() == (20 * centres).tolist()
    short, _ = ds.load(0)  # 3 frames for 5 segments: frames repeat
    assert short.shape == (1, 5, 8, 8, 3)


# --------------------------------------------------------------------------------------------
# sampling, crops, views
# --------------------------------------------------------------------------------------------


def test_tsn_indices_centres_segments_and_short_videos():
    for f in (1, 3, 7, 8, 9, 20, 31, 100):
        for t in (1, 3, 8):
            seg = [Fraction(i * f, t) for i in range(t + 1)]
            centre = [int((seg[i] + seg[i + 1]) / 2) for i in range(t)]
            assert tsn_indices(f, t).tolist() == centre, (f, t)
            assert tsn_indices(f, t, offset=0.0).tolist() == [int(seg[i]) for i in range(t)]
            rng = np.random.default_rng(f * 10 + t)
            for _ in range(20):
                idx = tsn_indices(f, t, rng)
                assert idx.min() >= 0 and idx.max() < f and np.all(np.diff(idx) >= 0)
                for i in range(t):  # within segment i (which holds at least its first frame's index)
                    assert int(seg[i]) <= idx[i] <= max(int(seg[i]), -(-seg[i + 1] // 1) - 1)
    assert tsn_indices(3, 8).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    draws = {tuple(tsn_indices(40, 4, np.random.default_rng(s))) for s in range(30)}
    assert len(draws) > 20  # random offsets in training
    with pytest.raises(ValueError):
        tsn_indices(0, 8)


def test_multiscale_crop_box_sizes_and_places():
    h, w, size = 130, 200, 112
    allowed = [130, 112, 97, 85]  # int(130 * s) for TSN's scales, 113 snapped to 112
    seen_sizes, seen_places = set(), set()
    rng = np.random.default_rng(0)
    for _ in range(400):
        top, left, ch, cw = multiscale_crop_box(rng, h, w, size)
        assert ch in allowed and cw in allowed and abs(allowed.index(ch) - allowed.index(cw)) <= 1
        dy, dx = (h - ch) // 2, (w - cw) // 2
        assert (top, left) in {(0, 0), (0, 2 * dx), (2 * dy, 0), (2 * dy, 2 * dx), (dy, dx)}
        seen_sizes.add((ch, cw))
        if dy > 0 and dx > 0:
            seen_places.add(("top" if top == 0 else "bottom" if top == 2 * dy else "middle",
                             "left" if left == 0 else "right" if left == 2 * dx else "middle"))
    assert len(seen_sizes) == 10 and len(seen_places) == 5


def test_train_augment_shape_and_flip():
    frames = np.random.default_rng(0).integers(0, 256, (4, 40, 60, 3), dtype=np.uint8)
    flipped = 0
    for s in range(16):
        a = train_augment(frames, np.random.default_rng(s), 24, flip=True)
        b = train_augment(frames, np.random.default_rng(s), 24, flip=False)
        assert a.shape == (4, 24, 24, 3) and a.dtype == np.uint8
        if np.array_equal(a, b[:, :, ::-1]) and not np.array_equal(a, b):
            flipped += 1
        else:
            np.testing.assert_array_equal(a, b)
    assert 0 < flipped < 16
    # a box at scale 1 placed at the centre is the centre square, before the resize
    box = multiscale_crop_box(np.random.default_rng(1), 40, 60, 40, scales=(1.0,))
    assert box[2:] == (40, 40) and box[0] == 0 and box[1] in (0, 10, 20)


def test_eval_views_match_hand_computed_crops():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (11, 18, 30, 3), dtype=np.uint8)
    # image_size 16: short side int(16 * 256 / 224) = 18, so no resize; centre crop rows 1..16, cols 7..22
    one = eval_views(frames, 4, 16, "1clip-center")
    assert one.shape == (1, 4, 16, 16, 3)
    np.testing.assert_array_equal(one[0], frames[[1, 4, 6, 9]][:, 1:17, 7:23])
    # 2 clips x 3 crops on frames whose short side already is image_size
    frames = rng.integers(0, 256, (8, 16, 30, 3), dtype=np.uint8)
    six = eval_views(frames, 4, 16, "2clip-3crop")
    assert six.shape == (6, 4, 16, 16, 3)
    for c, idx in enumerate(([0, 2, 4, 6], [1, 3, 5, 7])):  # offsets 0 and half a segment
        for k, left in enumerate((0, 7, 14)):
            np.testing.assert_array_equal(six[3 * c + k], frames[idx][:, :, left:left + 16])
    # portrait videos crop along the height
    assert eval_views(frames.transpose(0, 2, 1, 3), 2, 16, "2clip-3crop").shape == (6, 2, 16, 16, 3)
    # other sizes are resized first
    assert eval_views(rng.integers(0, 256, (5, 48, 64, 3), dtype=np.uint8), 3, 24, "1clip-center").shape == (1, 3, 24, 24, 3)
    with pytest.raises(ValueError, match=r"'10crop' is not one of \['1clip-center', '2clip-3crop'\]"):
        eval_views(frames, 4, 16, "10crop")


def test_average_views():
    logits = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    np.testing.assert_allclose(average_views(logits), logits.mean(1))
    p = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(average_views(logits, softmax=True), (p / p.sum(-1, keepdims=True)).mean(1), rtol=1e-6)
    with pytest.raises(ValueError, match=r"\[N, V, K\]"):
        average_views(logits[0])


# --------------------------------------------------------------------------------------------
# bad samples, batches, configuration
# --------------------------------------------------------------------------------------------


def make_bad_ucf(root):
    make_ucf(root)
    videos = os.path.join(root, "UCF-101")
    lists = os.path.join(root, "ucfTrainTestlist", "trainlist01.txt")
    with open(lists) as f:
        lines = f.read().split()
    write_lines(lists, [f"{a} {b}" for a, b in zip(lines[::2], lines[1::2])] + [
        "Archery/v_Archery_g02_c01.avi 2",  # missing
        "Archery/v_Archery_g03_c01.avi 2",  # empty folder
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g04_c01.avi 1",  # corrupt JPEG bytes
        "HandstandPushups/v_HandStandPushups_g05_c01.avi 3",  # truncated JPEG
    ])
    os.makedirs(os.path.join(videos, "Archery", "v_Archery_g03_c01"))
    corrupt = os.path.join(videos, "ApplyEyeMakeup", "v_ApplyEyeMakeup_g04_c01")
    write_folder(corrupt, constant_frames([10] * 6))
    for name in os.listdir(corrupt):  # every frame, so that whichever are sampled fail
        with open(os.path.join(corrupt, name), "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 definitely not a jpeg" * 4)
    truncated = os.path.join(videos, "HandstandPushups", "v_HandStandPushups_g05_c01")
    write_folder(truncated, np.random.default_rng(0).integers(0, 256, (6, H, W, 3), dtype=np.uint8))
    for name in os.listdir(truncated):
        with open(os.path.join(truncated, name), "r+b") as f:
            f.truncate(200)
    return {"missing": os.path.join(videos, "Archery", "v_Archery_g02_c01.avi"),
            "empty": os.path.join(videos, "Archery", "v_Archery_g03_c01"),
            "corrupt": os.path.join(corrupt, "img_00001.jpg"),
            "truncated": truncated}


def test_bad_samples_raise_with_their_path(tmp_path):
    bad = make_bad_ucf(str(tmp_path))
    ds = VideoDataset(VideoDataConfig(str(tmp_path), layout="ucf101", videos_dir="UCF-101", num_frames=6, image_size=8))
    assert len(ds) == 7
    for i, (kind, path) in zip(range(3, 7), bad.items()):
        with pytest.raises(BadSampleError) as info:
            ds.load(i, np.random.default_rng(0))
        assert path in str(info.value) or (kind == "truncated" and info.value.path.startswith(path)), (kind, info.value)
        assert {"missing": "missing", "empty": "empty frame folder", "corrupt": "truncated or corrupt JPG",
                "truncated": "truncated or corrupt JPG"}[kind] in str(info.value)
    with pytest.raises(BadSampleError, match="v_Archery_g0[23]_c01"):
        for _ in batches(ds, 2, 0, train=True):
            pass


def test_bad_samples_are_skipped_and_counted(tmp_path):
    bad = make_bad_ucf(str(tmp_path))
    cfg = VideoDataConfig(str(tmp_path), layout="ucf101", videos_dir="UCF-101", num_frames=3, image_size=8,
                          skip_bad_samples=True)
    ds = VideoDataset(cfg)
    for train in (True, False):
        out = list(batches(ds, 2, 1, train=train, drop_last=False))
        clips = np.concatenate([c for c, _, _ in out])
        labels = np.concatenate([lab for _, lab, _ in out])
        assert len(labels) == 3 and sorted(labels.tolist()) == [0, 1, 2]
        for clip, label in zip(clips, labels):  # each clip's pixels say its label
            assert set(frame_values(clip if train else clip[0]).tolist()) == {40 * label + 10}
        stats = out[-1][2]
        assert stats["loaded"] == 3 and stats["skipped"] == 4
        assert bad["missing"] in stats["skipped_paths"] and bad["empty"] in stats["skipped_paths"]
        assert any(p.startswith(os.path.dirname(bad["corrupt"])) for p in stats["skipped_paths"])
        assert clips.shape[1:] == ((3, 8, 8, 3) if train else (1, 3, 8, 8, 3))


def test_batches_shapes_drop_last_and_all_bad(tmp_path):
    make_ucf(str(tmp_path))
    ds = VideoDataset(VideoDataConfig(str(tmp_path), layout="ucf101", videos_dir="UCF-101", num_frames=4,
                                      image_size=8, eval_protocol="2clip-3crop"))
    train = list(batches(ds, 2, jax.random.key(0)))
    assert len(train) == 1  # 3 samples, drop_last in training
    clips, labels, stats = train[0]
    assert clips.shape == (2, 4, 8, 8, 3) and clips.dtype == np.uint8 and labels.dtype == np.int32
    check_clip_shape(clips.shape, num_frames=4, image_size=8)
    ev = list(batches(ds, 2, 0, train=False))
    assert [c.shape for c, _, _ in ev] == [(2, 6, 4, 8, 8, 3), (1, 6, 4, 8, 8, 3)]
    assert np.concatenate([lab for _, lab, _ in ev]).tolist() == [s.label for s in ds.samples]
    assert stats == {"loaded": 3, "skipped": 0, "skipped_paths": []}  # the dropped third sample was decoded too
    again = list(batches(ds, 2, jax.random.key(0)))  # the same seed gives the same epoch
    np.testing.assert_array_equal(again[0][0], clips)
    shutil.rmtree(tmp_path / "UCF-101")
    skipping = VideoDataset(dataclasses.replace(ds.config, skip_bad_samples=True))
    with pytest.raises(ValueError, match="all 3 samples"):
        list(batches(skipping, 2, 0))


def test_config_errors_name_field_value_and_choices(tmp_path):
    root = str(tmp_path)
    with pytest.raises(ValueError, match=r"layout='kinetics' is not allowed: it must be one of ucf101, hmdb51, ssv2, folder\."):
        VideoDataConfig(root, layout="kinetics").validate()
    assert LAYOUTS == ("ucf101", "hmdb51", "ssv2", "folder") and "2clip-3crop" in EVAL_PROTOCOLS
    with pytest.raises(ValueError, match=r"subset='test' is not allowed: it must be one of train, val\."):
        VideoDataConfig(root, subset="test").validate()
    with pytest.raises(ValueError, match=r"split=4 is not allowed: it must be an integer in \[1, 3\]\."):
        VideoDataConfig(root, layout="hmdb51", split=4).validate()
    with pytest.raises(ValueError, match="eval_protocol='3clip'"):
        VideoDataConfig(root, eval_protocol="3clip").validate()
    with pytest.raises(ValueError, match="num_frames=0"):
        VideoDataConfig(root, num_frames=0).validate()
    with pytest.raises(ValueError, match=r"scales=\(1.5,\)"):
        VideoDataConfig(root, scales=(1.5,)).validate()
    with pytest.raises(FileNotFoundError, match="root='/no/such/dir'"):
        VideoDataConfig("/no/such/dir").validate()


def test_check_clip_shape_before_compilation():
    check_clip_shape((2, 8, 32, 32, 3), num_frames=8)
    with pytest.raises(ValueError, match="T=4 frames .* num_frames=8"):
        check_clip_shape((2, 4, 32, 32, 3), num_frames=8)
    with pytest.raises(ValueError, match="C=1 channels .* channels=3"):
        check_clip_shape((2, 8, 32, 32, 1), num_frames=8)
    with pytest.raises(ValueError, match=r"\[N, T, H, W, C\]"):
        check_clip_shape((8, 32, 32, 3), num_frames=8)
    with pytest.raises(ValueError, match="32x32 .* image_size=224"):
        check_clip_shape((2, 8, 32, 32, 3), num_frames=8, image_size=224)


def test_video_files(tmp_path):
    pytest.importorskip("av", reason="video files need the 'video' extra (imageio + av)")
    iio = pytest.importorskip("imageio.v3", reason="video files need the 'video' extra (imageio + av)")
    root = str(tmp_path)
    frames = constant_frames([16 * i for i in range(12)], h=32, w=48)
    for cls, ext, codec in (("a", "avi", "mpeg4"), ("b", "mp4", "libx264"), ("c", "webm", "libvpx")):
        os.makedirs(os.path.join(root, cls))
        iio.imwrite(os.path.join(root, cls, f"clip.{ext}"), frames, plugin="pyav", codec=codec, fps=12)
    os.makedirs(os.path.join(root, "d"))
    with open(os.path.join(root, "d", "broken.mp4"), "wb") as f:
        f.write(os.urandom(512))
    ds = VideoDataset(VideoDataConfig(root, layout="folder", num_frames=4, image_size=16))
    assert ds.class_names == ("a", "b", "c", "d")
    for i in range(3):
        clip, label = ds.load(i)
        assert clip.shape == (1, 4, 16, 16, 3) and label == i
        # lossy codecs: the frame values still come back within a few levels, in order
        np.testing.assert_allclose(frame_values(clip[0]), 16 * tsn_indices(12, 4), atol=6)
    with pytest.raises(BadSampleError, match="broken.mp4.*truncated or corrupt video"):
        ds.load(3)


def test_missing_video_extra_names_it_and_is_not_skipped(tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "av" else find_spec(name, *a))
    if find_spec("imageio") is None:
        monkeypatch.setitem(__import__("sys").modules, "imageio.v3", None)
    os.makedirs(tmp_path / "a")
    (tmp_path / "a" / "clip.mp4").write_bytes(b"\0" * 64)
    ds = VideoDataset(VideoDataConfig(str(tmp_path), layout="folder", num_frames=2, image_size=8, skip_bad_samples=True))
    with pytest.raises(ImportError, match=r"clip.mp4.*vasa\[video\]"):  # a setup error, never a skipped sample
        list(batches(ds, 1, 0))
