"""Bad media files fail with an error that names the file and says what is wrong, both for
background videos (``vasa.envs.randomize.load_video``) and for video datasets
(``vasa.video.data``); ``batches`` counts every sample it visits."""

import os
import traceback

import numpy as np
import pytest
from PIL import Image

from vasa.envs.randomize import load_video, load_videos
from vasa.media import MediaFileError
from vasa.video.data import BadSampleError, VideoDataConfig, VideoDataset, batches


def frames(n=8, h=16, w=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def write_mp4(path, truncate=False):
    pytest.importorskip("av", reason="video files need the 'video' extra (imageio + av)")
    iio = pytest.importorskip("imageio.v3", reason="video files need the 'video' extra (imageio + av)")
    iio.imwrite(path, frames(), plugin="pyav", codec="libx264", fps=8)
    if truncate:  # the index (moov atom) is written last: half a file cannot be opened
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    return str(path)


def write_gif(path, truncate=False):
    imgs = [Image.fromarray(f) for f in frames()]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=40)
    if truncate:
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    return str(path)


def write_frames(folder, sizes=((16, 16),) * 4, names="{:03d}.png"):
    os.makedirs(folder, exist_ok=True)
    for i, (h, w) in enumerate(sizes):
        Image.fromarray(frames(1, h, w, seed=i)[0]).save(os.path.join(folder, names.format(i)))
    return str(folder)


def expect(error, call, path, phrase):
    """``call()`` raises ``error`` whose message names ``path`` and says ``phrase``, also on the
    last line of the printed traceback; returns the exception."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert os.path.basename(path) in message and phrase in message, message
    last = traceback.format_exception(info.value)[-1]
    assert str(path) in last and phrase in last, last
    if isinstance(info.value, MediaFileError):
        assert info.value.path == str(path)
    return info.value


# ------------------------------------------------------------------ background videos


def test_load_video_truncated_and_empty_mp4(tmp_path):
    path = write_mp4(tmp_path / "clip.mp4", truncate=True)
    e = expect(MediaFileError, lambda: load_video(path), path, "truncated or corrupt video")
    assert "pip install" not in str(e)  # PyAV is installed: the file is at fault, not the setup
    assert e.__cause__ is not None  # FFmpeg's own error stays visible
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    expect(MediaFileError, lambda: load_video(empty), empty, "empty file (0 bytes)")
    good = load_video(write_mp4(tmp_path / "good.mp4"), size=None, max_frames=5)
    assert good.shape == (5, 16, 16, 3) and good.dtype == np.uint8


def test_load_video_folder_names_the_image_at_fault(tmp_path):
    corrupt = write_frames(tmp_path / "corrupt")
    bad = os.path.join(corrupt, "001.png")
    with open(bad, "r+b") as f:
        f.truncate(40)
    expect(MediaFileError, lambda: load_video(corrupt), bad, "truncated or corrupt PNG")
    mixed = write_frames(tmp_path / "mixed", sizes=[(16, 16)] * 3 + [(12, 20)])
    expect(MediaFileError, lambda: load_video(mixed), os.path.join(mixed, "003.png"),
           "frame 3 is 12x20 but frame 0 (000.png) is 16x16")
    expect(MediaFileError, lambda: load_videos([write_frames(tmp_path / "ok"), mixed]), os.path.join(mixed, "003.png"),
           "frame 3 is 12x20")


def test_load_video_truncated_gif(tmp_path):
    path = write_gif(tmp_path / "clip.gif", truncate=True)
    expect(MediaFileError, lambda: load_video(path), path, "truncated or corrupt GIF")


def test_load_video_bad_arrays(tmp_path):
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(np.random.default_rng(0).bytes(200))
    expect(MediaFileError, lambda: load_video(garbage), garbage, "not a NumPy array file")
    truncated = tmp_path / "truncated.npy"
    np.save(truncated, frames())
    with open(truncated, "r+b") as f:
        f.truncate(300)
    expect(MediaFileError, lambda: load_video(truncated), truncated, "truncated or corrupt NumPy array file")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.full((4, 8, 8, 3), np.nan, np.float32))
    expect(MediaFileError, lambda: load_video(nan), nan, "contains NaN/inf values")
    inf = tmp_path / "inf.npz"
    video = np.zeros((4, 8, 8, 3))
    video[2, 1, 1, 0] = np.inf
    np.savez(inf, frames=video)
    expect(MediaFileError, lambda: load_video(inf), inf, "contains NaN/inf values (1, the first in frame 2)")


def test_missing_pyav_asks_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    path = write_mp4(tmp_path / "clip.mp4")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "av" else find_spec(name, *a))
    expect(ImportError, lambda: load_video(path), path, "pip install")


# ------------------------------------------------------------------ video datasets


def test_dataset_video_errors_name_the_file(tmp_path):
    root = tmp_path / "data"
    os.makedirs(root / "a")
    bad = {"trunc.mp4": write_mp4(root / "a" / "trunc.mp4", truncate=True),
           "trunc.gif": write_gif(root / "a" / "trunc.gif", truncate=True),
           "empty.mp4": str(root / "a" / "empty.mp4"),
           "mixed": write_frames(root / "a" / "mixed", sizes=[(16, 16)] * 3 + [(12, 20)], names="img_{:05d}.jpg")}
    open(bad["empty.mp4"], "wb").close()
    ds = VideoDataset(VideoDataConfig(str(root), layout="folder", num_frames=4, image_size=8))
    index = {os.path.basename(s.path): i for i, s in enumerate(ds.samples)}
    for name, path, phrase in (("trunc.mp4", bad["trunc.mp4"], "truncated or corrupt video"),
                               ("trunc.gif", bad["trunc.gif"], "truncated or corrupt GIF"),
                               ("empty.mp4", bad["empty.mp4"], "empty file (0 bytes)"),
                               ("mixed", os.path.join(bad["mixed"], "img_00003.jpg"),
                                "frame 3 is 12x20 but frame 0 (img_00000.jpg) is 16x16")):
        e = expect(BadSampleError, lambda i=index[name]: ds.load(i), path, phrase)
        assert str(e).startswith("video sample ")
    assert expect(BadSampleError, lambda: ds.load(index["trunc.mp4"]), bad["trunc.mp4"], "").__cause__ is not None


def test_folder_layout_class_without_videos_is_an_error(tmp_path):
    write_frames(tmp_path / "a" / "s0")
    os.makedirs(tmp_path / "b")
    (tmp_path / "b" / "notes.txt").write_text("no videos here")
    expect(ValueError, lambda: VideoDataset(VideoDataConfig(str(tmp_path), layout="folder")), tmp_path / "b",
           "holds no videos (.avi, .mp4")


def test_batches_count_every_sample_visited(tmp_path):
    """18 good and 10 bad samples: the stats after the epoch count all of them, including the
    samples of a dropped short batch (training) and bad samples after the last batch (evaluation)."""
    good, bad = [], []
    for i in range(18):
        good.append(write_frames(tmp_path / f"c{i % 2}" / f"good{i:02d}", sizes=[(8, 8)] * 2))
    for i in range(10):  # sorted last: in evaluation order they come after every good sample
        bad.append(str(tmp_path / "c2" / f"bad{i:02d}"))
        os.makedirs(bad[-1])  # an empty frame folder
    ds = VideoDataset(VideoDataConfig(str(tmp_path), layout="folder", num_frames=2, image_size=8,
                                      skip_bad_samples=True))
    for train, batch_size, shapes in ((True, 8, [8, 8]), (False, 6, [6, 6, 6])):
        out = list(batches(ds, batch_size, 0, train=train))
        assert [len(labels) for _, labels, _ in out] == shapes
        stats = out[-1][2]
        assert stats["loaded"] == 18 and stats["skipped"] == 10, (train, stats)
        assert sorted(stats["skipped_paths"]) == bad
        loaded = [s["loaded"] for _, _, s in out]
        assert loaded[:-1] == [batch_size * (k + 1) for k in range(len(out) - 1)]  # earlier batches: running totals
