"""Video data for the video models: a synthetic temporal benchmark, loaders for the
UCF-101 / HMDB-51 / Something-Something-V2 layouts, TSN sampling, augmentation and the
evaluation protocols.

**Layout.** Every loader returns clips as ``uint8 [T, H, W, 3]`` (RGB, channels last) and
batches as ``uint8 [N, T, H, W, 3]``; evaluation batches have a views axis,
``uint8 [N, V, T, H, W, 3]``. Converting to the model's input (float, normalised, and for
the shift ops ``[N, T, C, H, W]``) is the model's job, on the accelerator. Decoding,
sampling and augmentation run on the host in NumPy/Pillow; they are not jitted.

Contents:

* ``synthetic_temporal``: classes that differ only in temporal order (mirror pairs are
  exact time reversals), so a single frame, or any order-free statistic, cannot solve it.
* ``VideoDataConfig`` / ``VideoDataset``: samples and labels read from the official split
  files (formats below), each sample a frame folder or a video file, loaded lazily.
* ``tsn_indices`` (TSN segment sampling), ``multiscale_crop_box`` / ``train_augment``
  (TSN multi-scale crop + flip), ``eval_views`` (``"1clip-center"``, ``"2clip-3crop"``),
  ``average_views``.
* ``batches``: an epoch iterator that skips and counts bad samples when asked to.
* ``check_clip_shape``: fails before compilation when clips do not fit the model.

**Split-file formats** (as the official releases ship them; lines may end in CRLF):

* UCF-101 (``ucfTrainTestlist/``): ``classInd.txt`` lines ``"1 ApplyEyeMakeup"`` (1-based
  ids); ``trainlist0{1,2,3}.txt`` lines ``"ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"``
  (path and 1-based label); ``testlist0{1,2,3}.txt`` lines with the path only, the label is
  the class folder looked up in ``classInd.txt``. Videos: ``<videos>/<Class>/<name>.avi``.
* HMDB-51 (``testTrainMulti_7030_splits/``): one file per class and split,
  ``<class>_test_split{1,2,3}.txt``, lines ``"<video name> <0|1|2>"`` where 1 = train,
  2 = test, 0 = unused. Classes are the sorted ``<class>`` names. Videos:
  ``<videos>/<class>/<video name>``.
* Something-Something-V2: ``labels.json`` maps class names to string ids
  (``{"Approaching something with your camera": "0", ...}``); ``train.json`` and
  ``validation.json`` are lists of ``{"id": "78687", "label": "...", "template":
  "Approaching [something] with your camera", "placeholders": [...]}``; the class is the
  template with the brackets removed. Videos: ``<videos>/<id>.webm``.
* ``"folder"``: ``<root>/<subset>/<class>/<sample>`` (or ``<root>/<class>/<sample>`` when
  there is no ``<subset>`` folder); classes are the sorted class folder names.

**Samples.** A listed video ``<videos>/<rel>.<ext>`` is looked for as the file itself, as a
file with the same stem and another video extension, or as a frame folder
``<videos>/<rel>/`` (or ``<videos>/<name>/``, the flat layout of TSN's frame extraction).
A frame folder holds one image per frame (``img_00001.jpg``, TSN's ``00001.jpg``, any names;
sorted naturally so ``2.jpg`` precedes ``10.jpg``), read with Pillow, which also reads
animated ``.gif``. Other video files (``.avi``, ``.mp4``, ``.webm``, ...) are decoded with
PyAV (``pip install 'vasa[video]'``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Annotated, Any, Iterator, Literal, Sequence, get_args

import numpy as np

from vasa import media
from vasa.run.fields import Length, MissingPathError, PosInt, Range, check_fields

# --------------------------------------------------------------------------------------------
# synthetic temporal benchmark
# --------------------------------------------------------------------------------------------

# Mirror pairs sit at (2k, 2k + 1); the odd member is the even member played backwards.
CLASS_NAMES = (
    "moving_right", "moving_left",
    "moving_down", "moving_up",
    "approaching", "receding",
    "rotating_clockwise", "rotating_anticlockwise",
    "appearing", "disappearing",
)


def mirror_class(name: str) -> str:
    """The class whose clips are ``name``'s clips reversed in time."""
    i = _index_of(name, CLASS_NAMES, "class")
    return CLASS_NAMES[i ^ 1]


def _index_of(value, allowed: Sequence, what: str) -> int:
    if value not in allowed:
        raise ValueError(f"{what}={value!r} is not one of {list(allowed)}")
    return list(allowed).index(value)


def _entropy(key_or_seed) -> list[int]:
    """NumPy seed entropy from an int seed or a JAX key (its raw words)."""
    if isinstance(key_or_seed, (int, np.integer)):
        return [int(key_or_seed)]
    import jax

    key = key_or_seed
    if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return [int(w) for w in np.asarray(key, dtype=np.uint32).ravel()]


def _render_forward(kind: int, p: dict, num_frames: int, size: int) -> np.ndarray:
    """Object mask (``float [T, size, size]`` in [0, 1]) of the even class of pair ``kind``."""
    t = np.linspace(0.0, 1.0, num_frames)[:, None, None]
    yy, xx = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5, indexing="ij")
    r = p["radius"]
    lo, hi = r + 1.0, size - r - 1.0
    if kind in (0, 1):  # translation: right (x grows) or down (y grows)
        along = lo + (hi - lo) * (p["start"] + p["travel"] * t)
        across = lo + (hi - lo) * p["cross"]
        x, y = (along, across) if kind == 0 else (across, along)
        dist = np.hypot(xx - x, yy - y)
        return np.clip(r + 0.5 - dist, 0.0, 1.0)
    cx, cy = p["cx"] * size, p["cy"] * size
    if kind == 2:  # approaching: a disc that grows
        radius = p["r_small"] * size + (p["r_large"] - p["r_small"]) * size * t
        return np.clip(radius + 0.5 - np.hypot(xx - cx, yy - cy), 0.0, 1.0)
    if kind == 3:  # clockwise on screen (y points down): the angle grows
        theta = p["theta0"] + p["turn"] * t
        dx, dy = xx - cx, yy - cy
        along = dx * np.cos(theta) + dy * np.sin(theta)
        across = -dx * np.sin(theta) + dy * np.cos(theta)
        half_len = p["bar_len"] * size / 2
        return np.clip(p["bar_width"] + 0.5 - np.abs(across), 0, 1) * np.clip(half_len + 0.5 - np.abs(along), 0, 1)
    # appearing: a disc that fades in
    disc = np.clip(r + 0.5 - np.hypot(xx - cx, yy - cy), 0.0, 1.0)
    return disc * t


def synthetic_temporal(key_or_seed, num_samples: int, num_frames: int = 8, size: int = 32,
                       classes: Sequence[str] = CLASS_NAMES, labels: Sequence[int] | None = None,
                       noise: tuple[float, float] = (0.0, 12.0)) -> tuple[np.ndarray, np.ndarray]:
    """Clips whose class is carried only by temporal order.

    Returns ``(clips uint8 [N, T, size, size, 3], labels int32 [N])``, labels indexing
    ``classes`` (a subset of :data:`CLASS_NAMES`). Pairs: moving right/left, down/up,
    approaching/receding (a disc growing/shrinking), rotating clockwise/anticlockwise (a
    bar; turning less than 180 degrees so the direction is unambiguous), appearing/
    disappearing (fading in/out). The second member of each pair is the first one reversed
    in time, frame for frame (background noise included): the frames of a clip, as a set,
    say nothing about which member it is.

    Per sample (random, independent of the label, so a sample's appearance is the same
    whatever class it is given): object and background colours (contrasting), position,
    size, speed, bar angle and length, and Gaussian pixel noise with standard deviation
    drawn from ``noise``. Deterministic given the seed (an int or a JAX key). ``labels``
    fixes the labels (default: uniform draws).
    """
    if num_frames < 2:
        raise ValueError(f"synthetic_temporal num_frames={num_frames!r} is not allowed: temporal classes need >= 2 frames.")
    if size < 8:
        raise ValueError(f"synthetic_temporal size={size!r} is not allowed: it must be >= 8 pixels.")
    class_ids = np.array([_index_of(c, CLASS_NAMES, "class") for c in classes])
    seed = _entropy(key_or_seed)
    if labels is None:
        labels = np.random.default_rng([*seed, 1]).integers(0, len(classes), num_samples)
    labels = np.asarray(labels, dtype=np.int32)
    if labels.shape != (num_samples,) or (labels.size and not 0 <= labels.min() <= labels.max() < len(classes)):
        raise ValueError(f"synthetic_temporal labels must be {num_samples} ints in [0, {len(classes)}), got {labels!r}")

    rng = np.random.default_rng([*seed, 0])
    n = num_samples
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    dark_background = rng.random(n) < 0.5
    params = {
        "radius": u(0.08, 0.16) * size,
        "travel": u(0.5, 1.0),  # fraction of the free width crossed
        "cx": u(0.3, 0.7), "cy": u(0.3, 0.7), "cross": u(0.0, 1.0),
        "r_small": u(0.06, 0.14), "r_large": u(0.3, 0.45),
        "theta0": u(0.0, 2 * np.pi), "turn": u(np.pi / 3, 5 * np.pi / 6),
        "bar_len": u(0.6, 0.9), "bar_width": u(1.0, 2.5) * size / 32,
        "noise": u(*noise),
    }
    params["start"] = rng.uniform(0.0, 1.0 - params["travel"])
    dark = rng.uniform(0, 90, (n, 3))
    light = rng.uniform(150, 255, (n, 3))
    background = np.where(dark_background[:, None], dark, light)
    colour = np.where(dark_background[:, None], light, dark)

    clips = np.empty((n, num_frames, size, size, 3), np.uint8)
    for i in range(n):
        cls = int(class_ids[labels[i]])
        p = {k: v[i] for k, v in params.items()}
        mask = _render_forward(cls // 2, p, num_frames, size)[..., None]
        frames = background[i] + mask * (colour[i] - background[i])
        frames = frames + np.random.default_rng([*seed, 2, i]).normal(0.0, p["noise"], frames.shape)
        frames = np.clip(np.round(frames), 0, 255).astype(np.uint8)
        clips[i] = frames[::-1] if cls % 2 else frames
    return clips, labels


# --------------------------------------------------------------------------------------------
# configuration and split files
# --------------------------------------------------------------------------------------------

Layout = Literal["ucf101", "hmdb51", "ssv2", "folder"]
Subset = Literal["train", "val"]
EvalProtocol = Literal["1clip-center", "2clip-3crop"]
LAYOUTS, SUBSETS, EVAL_PROTOCOLS = get_args(Layout), get_args(Subset), get_args(EvalProtocol)
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXT = (".avi", ".mp4", ".webm", ".mkv", ".mov", ".gif")
TSN_SCALES = (1.0, 0.875, 0.75, 0.66)

# where the official archives unpack their annotations, tried after ``root`` itself
_ANNOTATION_DIRS = {"ucf101": ("ucfTrainTestlist",), "hmdb51": ("testTrainMulti_7030_splits",),
                    "ssv2": ("labels", "annotations"), "folder": ()}


@dataclasses.dataclass(frozen=True)
class VideoDataConfig:
    """What to load and how.

    root: dataset folder. layout: one of :data:`LAYOUTS`. split: the official split (1-3,
    UCF-101 and HMDB-51; ignored otherwise). subset: ``"train"`` or ``"val"`` (UCF's
    testlist, HMDB's label 2, SSv2's validation.json). annotations_dir / videos_dir: where
    the split files and the videos are, relative to ``root`` (``None``: ``root``; for
    annotations also the official folder names, e.g. ``ucfTrainTestlist``).
    num_frames: frames per clip (TSN segments). image_size: side of the square crops.
    scales: multi-scale crop scales of the short side (TSN's). flip: random horizontal flip
    in training; ``None`` means on, except for ``"ssv2"`` whose labels name directions
    ("Pushing something from left to right"), where TSM trains without flip.
    eval_protocol: one of :data:`EVAL_PROTOCOLS`. skip_bad_samples: skip (and count) a
    missing, empty or unreadable sample instead of raising.
    """

    root: str
    layout: Layout = "ucf101"
    split: Annotated[int, Range(ge=1, le=3)] = 1
    subset: Subset = "train"
    annotations_dir: str | None = None
    videos_dir: str | None = None
    num_frames: PosInt = 8
    image_size: PosInt = 224
    scales: Annotated[tuple[Annotated[float, Range(gt=0, le=1)], ...], Length(min=1)] = TSN_SCALES
    flip: bool | None = None
    eval_protocol: EvalProtocol = "1clip-center"
    skip_bad_samples: bool = False

    def validate(self) -> "VideoDataConfig":
        name = type(self).__name__
        check_fields(self)  # every field: type, finiteness, range, choice (its annotation)
        if not os.path.isdir(self.root):
            raise MissingPathError(f"{name}.root={self.root!r} is not allowed: it must be an existing directory.")
        return self

    @property
    def use_flip(self) -> bool:
        return self.layout != "ssv2" if self.flip is None else self.flip


@dataclasses.dataclass(frozen=True)
class Sample:
    """One listed video: ``path`` as the split file names it (under the videos folder)."""

    path: str
    label: int


def _read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


def _find_file(cfg: VideoDataConfig, name: str) -> str:
    dirs = [cfg.annotations_dir] if cfg.annotations_dir is not None else ["", *_ANNOTATION_DIRS[cfg.layout]]
    tried = [os.path.join(cfg.root, d, name) for d in dirs]
    for path in tried:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{cfg.layout} split file {name!r} not found; looked for {tried}")


def _ucf101(cfg: VideoDataConfig, videos: str) -> tuple[list[str], list[Sample]]:
    class_file = _find_file(cfg, "classInd.txt")
    ids = {}
    for line in _read_lines(class_file):
        idx, name = line.split()
        ids[name] = int(idx) - 1
    names = [n for n, _ in sorted(ids.items(), key=lambda kv: kv[1])]
    if sorted(ids.values()) != list(range(len(ids))):
        raise ValueError(f"{class_file!r}: class ids must be 1..{len(ids)} without gaps")
    lower = {n.lower(): i for n, i in ids.items()}
    list_file = _find_file(cfg, f"{'trainlist' if cfg.subset == 'train' else 'testlist'}{cfg.split:02d}.txt")
    samples = []
    for n, line in enumerate(_read_lines(list_file), 1):
        parts = line.split()
        folder = parts[0].replace("\\", "/").split("/")[0]
        if folder.lower() not in lower:
            raise ValueError(f"{list_file!r} line {n}: class folder {folder!r} is not in {class_file!r}")
        label = lower[folder.lower()]
        if len(parts) > 1 and int(parts[1]) - 1 != label:
            raise ValueError(f"{list_file!r} line {n}: label {parts[1]} disagrees with the folder {folder!r} "
                             f"(id {label + 1} in {class_file!r})")
        samples.append(Sample(os.path.join(videos, parts[0]), label))
    return names, samples


def _hmdb51(cfg: VideoDataConfig, videos: str) -> tuple[list[str], list[Sample]]:
    suffix = f"_test_split{cfg.split}.txt"
    dirs = [cfg.annotations_dir] if cfg.annotations_dir is not None else ["", *_ANNOTATION_DIRS["hmdb51"]]
    split_dir = next((os.path.join(cfg.root, d) for d in dirs
                      if os.path.isdir(os.path.join(cfg.root, d))
                      and any(f.endswith(suffix) for f in os.listdir(os.path.join(cfg.root, d)))), None)
    if split_dir is None:
        raise FileNotFoundError(f"hmdb51 split files '*{suffix}' not found in {[os.path.join(cfg.root, d) for d in dirs]}")
    files = sorted(f for f in os.listdir(split_dir) if f.endswith(suffix))
    names = [f[: -len(suffix)] for f in files]
    wanted = "1" if cfg.subset == "train" else "2"
    samples = []
    for label, (name, f) in enumerate(zip(names, files)):
        for n, line in enumerate(_read_lines(os.path.join(split_dir, f)), 1):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ValueError(f"{os.path.join(split_dir, f)!r} line {n}: expected '<video name> <0|1|2>', got {line!r}")
            if parts[1] == wanted:
                samples.append(Sample(os.path.join(videos, name, parts[0]), label))
    return names, samples


def ssv2_class_name(template: str) -> str:
    """Something-Something-V2 class of a template: ``"Approaching [something]"`` ->
    ``"Approaching something"``."""
    return template.replace("[", "").replace("]", "")


def _ssv2(cfg: VideoDataConfig, videos: str) -> tuple[list[str], list[Sample]]:
    label_file = _find_file(cfg, "labels.json")
    with open(label_file, encoding="utf-8") as f:
        ids = {name: int(i) for name, i in json.load(f).items()}
    names = [n for n, _ in sorted(ids.items(), key=lambda kv: kv[1])]
    if sorted(ids.values()) != list(range(len(ids))):
        raise ValueError(f"{label_file!r}: class ids must be 0..{len(ids) - 1} without gaps")
    list_file = _find_file(cfg, "train.json" if cfg.subset == "train" else "validation.json")
    with open(list_file, encoding="utf-8") as f:
        entries = json.load(f)
    samples = []
    for n, entry in enumerate(entries):
        name = ssv2_class_name(entry["template"])
        if name not in ids:
            raise ValueError(f"{list_file!r} entry {n} (id {entry['id']!r}): class {name!r} is not in {label_file!r}")
        samples.append(Sample(os.path.join(videos, f"{entry['id']}.webm"), ids[name]))
    return names, samples


def _folder(cfg: VideoDataConfig, videos: str) -> tuple[list[str], list[Sample]]:
    base = os.path.join(videos, cfg.subset) if os.path.isdir(os.path.join(videos, cfg.subset)) else videos
    names = sorted(d for d in os.listdir(base) if os.path.isdir(os.path.join(base, d)))
    if not names:
        raise ValueError(f"folder layout {base!r} holds no class folders")
    samples, empty = [], []
    for label, name in enumerate(names):
        folder = os.path.join(base, name)
        found = [Sample(os.path.join(folder, s), label) for s in sorted(os.listdir(folder))
                 if os.path.isdir(os.path.join(folder, s)) or s.lower().endswith(VIDEO_EXT)]
        empty += [] if found else [folder]
        samples += found
    if empty:  # a class without samples would still get a label and an output of the model
        also = f"; nor do {empty[1:]}" if len(empty) > 1 else ""
        raise ValueError(f"class folder {empty[0]!r} holds no videos ({', '.join(VIDEO_EXT)} files or frame "
                         f"folders){also}")
    return names, samples


_PARSERS = {"ucf101": _ucf101, "hmdb51": _hmdb51, "ssv2": _ssv2, "folder": _folder}


# --------------------------------------------------------------------------------------------
# reading frames
# --------------------------------------------------------------------------------------------


class BadSampleError(media.MediaFileError):
    """A sample that cannot be loaded (missing, empty or unreadable); ``path`` names it (the
    video file, the frame folder, or the frame image at fault), ``problem`` says what is wrong."""

    label = "video sample "


def _bad_sample(e: media.MediaFileError) -> BadSampleError:
    return BadSampleError(e.path, e.problem)


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def resolve_sample(path: str, videos_dir: str | None = None) -> str:
    """The file or frame folder holding the listed video ``path`` (see the module docstring;
    ``videos_dir`` adds the flat frame folder ``<videos_dir>/<name>/``); raises
    :class:`BadSampleError` when none exists."""
    stem, _ = os.path.splitext(path)
    candidates = [path, stem, *(stem + e for e in VIDEO_EXT)]
    if videos_dir is not None:
        candidates.append(os.path.join(videos_dir, os.path.basename(stem)))
    for c in candidates:
        if os.path.isdir(c) or (os.path.isfile(c) and c.lower().endswith(VIDEO_EXT)):
            return c
    raise BadSampleError(path, f"missing: neither the file nor a frame folder exists (looked for {candidates})")


def _read_image(path: str) -> np.ndarray:
    try:
        return media.read_image(path)
    except media.MediaFileError as e:
        raise _bad_sample(e) from e.__cause__


def _decode_video(path: str) -> np.ndarray:
    try:
        return media.read_animation(path) if path.lower().endswith(".gif") else media.read_video(path)
    except media.MediaFileError as e:  # an ImportError (PyAV missing) passes: a setup problem, never skipped
        raise _bad_sample(e) from e.__cause__


class _Source:
    """An opened sample: ``count`` frames; ``read(indices) -> uint8 [len(indices), H, W, 3]``.
    Frame folders read only the requested images (so a corrupt frame that is never sampled
    goes unnoticed); video files are decoded whole, once."""

    def __init__(self, path: str, videos_dir: str | None = None):
        self.path = resolve_sample(path, videos_dir)
        if os.path.isdir(self.path):
            self.files = sorted((f for f in os.listdir(self.path) if f.lower().endswith(IMAGE_EXT)), key=_natural_key)
            if not self.files:
                raise BadSampleError(self.path, f"empty frame folder (no {', '.join(IMAGE_EXT)} files)")
            self.frames = None
            self.count = len(self.files)
        else:
            self.frames = _decode_video(self.path)
            self.count = len(self.frames)

    def read(self, indices: np.ndarray) -> np.ndarray:
        if self.frames is not None:
            return self.frames[indices]
        wanted = list(dict.fromkeys(int(i) for i in indices))  # each frame read once, in order
        paths = [os.path.join(self.path, self.files[i]) for i in wanted]
        frames = [_read_image(p) for p in paths]
        try:
            frames = media.stack_frames(frames, paths, wanted)
        except media.MediaFileError as e:
            raise _bad_sample(e) from None  # the same message; nothing below it to show
        row = {i: r for r, i in enumerate(wanted)}
        return frames[[row[int(i)] for i in indices]]


# --------------------------------------------------------------------------------------------
# sampling and augmentation (NumPy, host)
# --------------------------------------------------------------------------------------------


def tsn_indices(num_video_frames: int, num_segments: int, rng: np.random.Generator | None = None,
                offset: float = 0.5) -> np.ndarray:
    """TSN segment sampling: ``int64 [num_segments]`` frame indices.

    The ``F`` frames are cut into ``T`` equal segments ``[i F / T, (i + 1) F / T)`` and one
    frame is taken per segment at ``floor((i + u) F / T)``: ``u`` uniform in ``[0, 1)`` per
    segment with ``rng`` (training), else ``u = offset`` (evaluation: 0.5 is the segment
    centre, 0 its start). A video shorter than ``T`` frames has segments shorter than a
    frame, so frames repeat, in order (``F = 3, T = 8`` centres: 0 0 0 1 1 2 2 2).
    """
    f, t = int(num_video_frames), int(num_segments)
    if f < 1 or t < 1:
        raise ValueError(f"tsn_indices needs num_video_frames >= 1 and num_segments >= 1, got {f}, {t}")
    i = np.arange(t)
    if rng is not None:
        idx = np.floor((i + rng.random(t)) * f / t).astype(np.int64)
    elif offset == 0.5:  # exact integer arithmetic for the common centre case
        idx = (2 * i + 1) * f // (2 * t)
    else:
        idx = np.floor((i + offset) * f / t).astype(np.int64)
    return np.clip(idx, 0, f - 1)


def multiscale_crop_box(rng: np.random.Generator, height: int, width: int, image_size: int,
                        scales: Sequence[float] = TSN_SCALES, max_distort: int = 1) -> tuple[int, int, int, int]:
    """TSN's ``GroupMultiScaleCrop`` box ``(top, left, crop_h, crop_w)``.

    Candidate sides are ``int(min(H, W) * s)`` for ``s`` in ``scales`` (snapped to
    ``image_size`` when within 3 pixels of it); height and width are drawn from candidates at
    most ``max_distort`` apart in the list (aspect jitter); the box sits at one of five
    places (the four corners or the centre, ``(H - h) // 2``), drawn uniformly.
    """
    base = min(height, width)
    sizes = [image_size if abs(int(base * s) - image_size) < 3 else int(base * s) for s in scales]
    sizes = [max(1, min(s, base)) for s in sizes]
    pairs = [(h, w) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_distort]
    crop_h, crop_w = pairs[rng.integers(len(pairs))]
    dy, dx = (height - crop_h) // 2, (width - crop_w) // 2
    places = [(0, 0), (0, 2 * dx), (2 * dy, 0), (2 * dy, 2 * dx), (dy, dx)]
    top, left = places[rng.integers(len(places))]
    return top, left, crop_h, crop_w


def _crop_resize(frames: np.ndarray, box: tuple[int, int, int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Crop ``uint8 [T, H, W, 3]`` to ``box`` and resize to ``out_hw`` (Pillow bilinear)."""
    from PIL import Image

    top, left, h, w = box
    crop = frames[:, top:top + h, left:left + w]
    if (h, w) == tuple(out_hw):
        return np.ascontiguousarray(crop)
    size = (out_hw[1], out_hw[0])
    return np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in crop])


def train_augment(frames: np.ndarray, rng: np.random.Generator, image_size: int,
                  scales: Sequence[float] = TSN_SCALES, flip: bool = True) -> np.ndarray:
    """Multi-scale crop (one box for the whole clip), resize to ``image_size``, and with
    ``flip`` a horizontal flip with probability 1/2: ``uint8 [T, H, W, 3]`` ->
    ``uint8 [T, image_size, image_size, 3]``."""
    box = multiscale_crop_box(rng, frames.shape[1], frames.shape[2], image_size, scales)
    out = _crop_resize(frames, box, (image_size, image_size))
    if flip and rng.random() < 0.5:
        out = out[:, :, ::-1]
    return np.ascontiguousarray(out)


def resize_short_side(frames: np.ndarray, short: int) -> np.ndarray:
    """Resize ``uint8 [T, H, W, 3]`` so that ``min(H, W) == short`` (the long side is
    ``int(long * short / min(H, W))``, as torchvision's ``Resize(int)``)."""
    h, w = frames.shape[1:3]
    out = (short, int(w * short / h)) if h <= w else (int(h * short / w), short)
    return _crop_resize(frames, (0, 0, h, w), out)


def _center_box(h: int, w: int, size: int) -> tuple[int, int, int, int]:
    return int(round((h - size) / 2)), int(round((w - size) / 2)), size, size


def eval_views(source_or_frames, num_frames: int, image_size: int, protocol: str = "1clip-center") -> np.ndarray:
    """Evaluation views ``uint8 [V, T, image_size, image_size, 3]`` of one video.

    ``"1clip-center"`` (V = 1): the segment-centre clip, short side resized to
    ``int(image_size * 256 / 224)``, centre crop. ``"2clip-3crop"`` (V = 6, clip-major):
    clips at segment offsets 0 and 1/2, short side resized to ``image_size``, three crops
    at the start, centre and end of the long side (left/centre/right for landscape).
    ``source_or_frames``: decoded frames ``uint8 [F, H, W, 3]`` or an opened sample.
    Average the model's outputs over V with :func:`average_views`.
    """
    _index_of(protocol, EVAL_PROTOCOLS, "eval protocol")
    count = source_or_frames.count if isinstance(source_or_frames, _Source) else len(source_or_frames)
    read = source_or_frames.read if isinstance(source_or_frames, _Source) else source_or_frames.__getitem__
    if protocol == "1clip-center":
        frames = resize_short_side(read(tsn_indices(count, num_frames)), int(image_size * 256 / 224))
        return _crop_resize(frames, _center_box(*frames.shape[1:3], image_size), (image_size, image_size))[None]
    views = []
    for offset in (0.0, 0.5):
        frames = resize_short_side(read(tsn_indices(count, num_frames, offset=offset)), image_size)
        h, w = frames.shape[1:3]
        for pos in (0.0, 0.5, 1.0):
            top, left = (int(round((h - image_size) * pos)), 0) if h > w else (0, int(round((w - image_size) * pos)))
            views.append(_crop_resize(frames, (top, left, image_size, image_size), (image_size, image_size)))
    return np.stack(views)


def average_views(logits, softmax: bool = False):
    """``[N, V, K]`` -> ``[N, K]``: the mean over the V views (of the softmax with
    ``softmax=True``), as TSN/TSM evaluate multi-view protocols. Works on JAX or NumPy arrays."""
    import jax
    import jax.numpy as jnp

    if logits.ndim != 3:
        raise ValueError(f"average_views takes logits [N, V, K], got shape {tuple(logits.shape)}")
    return jnp.mean(jax.nn.softmax(logits, -1) if softmax else logits, axis=1)


def check_clip_shape(clips_shape: Sequence[int], num_frames: int, channels: int = 3,
                     image_size: int | None = None) -> None:
    """Raise ``ValueError`` (before any compilation) unless ``clips_shape`` is
    ``[N, T, H, W, C]`` with ``T == num_frames``, ``C == channels`` and, when given,
    ``H == W == image_size``."""
    shape = tuple(int(s) for s in clips_shape)
    if len(shape) != 5:
        raise ValueError(f"clips must be [N, T, H, W, C], got shape {shape}")
    _, t, h, w, c = shape
    if t != num_frames:
        raise ValueError(f"clips have T={t} frames (shape {shape}) but the model takes num_frames={num_frames}")
    if c != channels:
        raise ValueError(f"clips have C={c} channels (shape {shape}) but the model takes channels={channels}")
    if image_size is not None and (h, w) != (image_size, image_size):
        raise ValueError(f"clips are {h}x{w} (shape {shape}) but the model takes image_size={image_size}")


# --------------------------------------------------------------------------------------------
# dataset and batches
# --------------------------------------------------------------------------------------------


class VideoDataset:
    """The samples of one split and subset: ``len(ds)``, ``ds[i] -> Sample(path, label)``,
    ``ds.class_names``; ``ds.load(i, rng=None)`` decodes sample ``i`` (training
    augmentation with ``rng``, else the config's evaluation protocol)."""

    def __init__(self, config: VideoDataConfig):
        self.config = config.validate()
        videos = os.path.join(config.root, config.videos_dir) if config.videos_dir is not None else config.root
        self.videos_dir = videos
        names, samples = _PARSERS[config.layout](config, videos)
        if not samples:
            raise ValueError(f"{config.layout} {config.subset} split {config.split} under {config.root!r} lists no samples")
        self.class_names: tuple[str, ...] = tuple(names)
        self.samples: tuple[Sample, ...] = tuple(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> Sample:
        return self.samples[i]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def load(self, i: int, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
        """``(clip, label)``: with ``rng``, a training clip ``uint8 [T, S, S, 3]`` (TSN
        sampling with random offsets, multi-scale crop, flip unless disabled); without,
        the evaluation views ``uint8 [V, T, S, S, 3]``. Raises :class:`BadSampleError`."""
        cfg, sample = self.config, self.samples[i]
        source = _Source(sample.path, self.videos_dir)
        if rng is None:
            return eval_views(source, cfg.num_frames, cfg.image_size, cfg.eval_protocol), sample.label
        frames = source.read(tsn_indices(source.count, cfg.num_frames, rng))
        return train_augment(frames, rng, cfg.image_size, cfg.scales, cfg.use_flip), sample.label


def batches(dataset: VideoDataset, batch_size: int, key_or_seed=0, train: bool = True,
            drop_last: bool | None = None) -> Iterator[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """One epoch of ``(clips, labels int32 [B], stats)``.

    Training (``train=True``): shuffled, clips ``uint8 [B, T, S, S, 3]``; evaluation: in
    order, clips ``uint8 [B, V, T, S, S, 3]``. ``drop_last`` (default: ``train``) drops the
    final short batch. A bad sample raises :class:`BadSampleError` naming its path, or with
    ``config.skip_bad_samples`` is skipped, its place taken by the next sample, and counted
    in ``stats``: ``{"loaded": int, "skipped": int, "skipped_paths": [str]}``, running totals
    of the samples visited so far in the epoch. Samples visited after the last batch was
    yielded (those of a dropped short batch, bad ones at the end) are added to the last
    batch's ``stats`` when the epoch ends, so after the loop it counts every sample visited.
    An epoch in which every sample is bad raises.
    """
    if batch_size < 1:
        raise ValueError(f"batches batch_size={batch_size!r} is not allowed: it must be >= 1")
    drop_last = train if drop_last is None else drop_last
    rng = np.random.default_rng(_entropy(key_or_seed))
    order = rng.permutation(len(dataset)) if train else np.arange(len(dataset))
    stats: dict[str, Any] = {"loaded": 0, "skipped": 0, "skipped_paths": []}
    clips, labels = [], []
    last = None  # the stats yielded with the latest batch

    def snapshot() -> dict[str, Any]:
        return {**stats, "skipped_paths": list(stats["skipped_paths"])}

    for i in order:
        try:
            clip, label = dataset.load(int(i), rng if train else None)
        except BadSampleError as e:
            if not dataset.config.skip_bad_samples:
                raise
            stats["skipped"] += 1
            stats["skipped_paths"].append(e.path)
            continue
        stats["loaded"] += 1
        clips.append(clip)
        labels.append(label)
        if len(clips) == batch_size:
            last = snapshot()
            yield np.stack(clips), np.asarray(labels, np.int32), last
            clips, labels = [], []
    if stats["loaded"] == 0:
        raise ValueError(f"all {len(dataset)} samples of {dataset.config.root!r} were bad "
                         f"(first: {stats['skipped_paths'][:3]})")
    if clips and not drop_last:
        yield np.stack(clips), np.asarray(labels, np.int32), snapshot()
    elif last is not None:  # visits after the last batch: a dropped short batch, trailing bad samples
        last.update(snapshot())
