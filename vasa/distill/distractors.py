"""Distractor images for SECANT's mixup and cutmix: an image bank ``uint8 [N, H, W, 3]``.

SECANT (Fan et al., ICML 2021; dissertation section 5.4) blends observations with, and pastes
patches of, images drawn from 50K COCO images. COCO is not something a library can ship, so
:func:`make_bank` builds the bank from sources that are always at hand, and from a local copy
of COCO (or Places, or any photographs) when there is one:

==============  ============================================================================
``fractal``     :func:`fractal_noise`: coloured fractal noise (power spectrum 1/f^2 to
                1/f^3), from smooth clouds to grain.
``shapes``      :func:`random_shapes`: 3-12 overlapping circles/ellipses, rectangles and
                triangles in flat random colours on a flat random background.
``patterns``    :func:`random_patterns`: two-colour stripes, checkerboards and rings at a
                random period, orientation and phase.
``matplotlib``  :func:`packaged_photos`: random crops of the images matplotlib installs
                (:data:`PACKAGED_IMAGES`: the Grace Hopper photograph, a shaded-relief map
                of an elevation model, a rendered gift box).
``scenes``      :func:`scene_frames`: frames of vasa's pixel MJX tasks (DM Control, Brax) under random
                appearances (a suite of :data:`vasa.envs.randomize.SUITES`) after random
                actions. Compiles MJX: 30-60 s per task on a 2-core CPU.
``folder``      :func:`load_folder`: every image under a folder (recursively), e.g. COCO.
``npz``         :func:`load_npz`: an array of images in an ``.npz`` archive.
==============  ============================================================================

Every source function returns NumPy ``uint8 [n, H, W, 3]``; :func:`make_bank` concatenates
the sources of a :class:`DistractorConfig` in the order listed and returns a device array.

Reproducibility: the procedural sources (``fractal``, ``shapes``, ``patterns``) use NumPy's
``Generator`` (PCG64, whose stream is the same on every platform) and only additions,
multiplications, divisions, square roots, floors, minima and comparisons (no FFT, BLAS, sums
or transcendental functions), so a seed gives the same bank bit for bit on any machine. The
``matplotlib`` crops are equally seeded; their pixels also depend on the installed
matplotlib's files and Pillow's decoder and resampler. ``scenes`` is reproducible on one
backend (rendering is floating-point JAX, which may differ in the last bit between CPU and GPU).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections.abc import Sequence
from typing import Annotated, Literal, get_args

import jax
import jax.numpy as jnp
import numpy as np

from vasa import media
from vasa.envs.core import EnvId
from vasa.run.fields import Check, Length, MissingPathError, PosInt, Range, Seed, check_fields

Source = Literal["fractal", "shapes", "patterns", "matplotlib", "scenes", "folder", "npz"]
SOURCES: tuple[str, ...] = get_args(Source)
Suite = Literal["train", "color_easy", "color_hard", "video_easy", "video_hard"]
ImageSide = Annotated[int, Range(ge=1, le=4096)]
SceneTask = Annotated[EnvId, Check(lambda t: t.startswith(("dmc/", "brax/")), "an MJX task id (dmc/* or brax/*)")]

# Independent random streams per source, so that one seed gives unrelated images in each.
_STREAM = {"fractal": 1, "shapes": 2, "patterns": 3, "matplotlib": 4, "subset": 5}

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")

PACKAGED_IMAGES = ("grace_hopper.jpg", "jacksboro_fault_dem.npz", "Minduka_Present_Blue_Pack.png")
"""Files of ``matplotlib/mpl-data/sample_data`` that :func:`packaged_photos` crops: a 512x600
photograph of Grace Hopper; a 344x403 digital elevation model (Jacksboro fault), drawn as a
hill-shaded relief map; a 128x128 rendered gift box (RGBA, laid on a random colour per crop)."""


def _size(size: int | tuple[int, int]) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if int(h) < 1 or int(w) < 1:
        raise ValueError(f"size={size!r} is not allowed: it must be a positive S or (height, width).")
    return int(h), int(w)


def _count(n: int) -> int:
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n={n!r} is not allowed: it must be an integer >= 0.")
    return int(n)


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), _STREAM[stream]])


def _unit_vectors(rng: np.random.Generator, shape) -> tuple[np.ndarray, np.ndarray]:
    """Random directions ``(dx, dy)`` without trigonometry (sqrt is correctly rounded, so
    exact everywhere): a uniform point of the unit disc's square, normalised."""
    v = rng.random(shape + (2,)) * 2.0 - 1.0
    norm = np.sqrt(v[..., 0] * v[..., 0] + v[..., 1] * v[..., 1]) + 1e-9
    return v[..., 0] / norm, v[..., 1] / norm


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """``[0, 1]`` floats -> ``uint8`` (floor(x * 255 + 0.5), clipped)."""
    return np.clip(np.floor(x * x.dtype.type(255.0) + x.dtype.type(0.5)), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------------
# procedural
# ------------------------------------------------------------------------------------------


def _upsample2(x: np.ndarray, axis: int) -> np.ndarray:
    """Double ``x`` along ``axis`` by linear interpolation at the quarter points (weights 3/4
    and 1/4 of the two nearest samples, edges repeated): exact float32 arithmetic."""
    def at(a, b=None, step=None):
        return (slice(None),) * axis + (slice(a, b, step),)

    near, far = x * np.float32(0.75), x * np.float32(0.25)
    out = np.empty(x.shape[:axis] + (2 * x.shape[axis],) + x.shape[axis + 1:], x.dtype)
    even, odd = out[at(0, None, 2)], out[at(1, None, 2)]
    np.add(near[at(1)], far[at(0, -1)], out=even[at(1)])
    np.add(near[at(0, 1)], far[at(0, 1)], out=even[at(0, 1)])
    np.add(near[at(0, -1)], far[at(1)], out=odd[at(0, -1)])
    np.add(near[at(-1)], far[at(-1)], out=odd[at(-1)])
    return out


def fractal_noise(seed: int, n: int, size: int | tuple[int, int] = 84, *,
                  persistence: tuple[float, float] = (0.5, 0.9)) -> np.ndarray:
    """Coloured fractal noise: ``uint8 [n, H, W, 3]``.

    A noise pyramid: start from 2x2 or 3x3 uniform noise, then repeatedly double the
    resolution (linear interpolation) and add new uniform noise weighted ``p`` times the
    previous level's, up to the first size ``2**k`` or ``3 * 2**k`` >= ``max(H, W)``, and
    crop a random ``H x W`` window. With ``p ~ U(persistence)`` per image the power spectrum
    falls smoothly as ``1/f**beta``: on 84x84 images ``beta`` is about 3 for ``p = 0.5``
    (smooth clouds) and 2 for ``p = 0.9`` (grainier; natural photographs have ``beta`` near
    2, i.e. amplitude 1/f). Three such fields are mixed into colour around a random mean
    colour, scaled to fit the pixel range unclipped.

    Args:
      seed: any integer; the same seed gives the same images on any machine.
      n: number of images (>= 0). size: ``S`` or ``(H, W)``.
      persistence: ``(low, high)`` range of the per-level amplitude ratio ``p``.
    """
    n, (h, w) = _count(n), _size(size)
    if n == 0:
        return np.zeros((0, h, w, 3), np.uint8)
    rng = _rng(seed, "fractal")
    fields, f32 = 3, np.float32
    p = rng.uniform(persistence[0], persistence[1], n).astype(f32)[:, None, None, None]

    def noise(side):
        return rng.random((n, side, side, fields), f32) * f32(2.0) - f32(1.0)

    sides = {}
    for m in (2, 3):  # the smallest canvas m * 2**k >= max(h, w)
        sides[m] = m
        while sides[m] < max(h, w):
            sides[m] *= 2
    start = min(sides, key=sides.get)
    side = sides[start]
    weight = np.ones_like(p)
    total = noise(start)
    while start < side:
        start, weight = start * 2, weight * p
        total = _upsample2(_upsample2(total, 1), 2) + weight * noise(start)
    top, left = rng.integers(0, side - h + 1, n), rng.integers(0, side - w + 1, n)
    crops = [total[i, top[i]:top[i] + h, left[i]:left[i] + w].transpose(2, 0, 1) for i in range(n)]
    total = np.stack(crops)  # [n, fields, h, w]: fast reductions
    lo = total.reshape(n, fields, -1).min(-1)[..., None, None]
    hi = total.reshape(n, fields, -1).max(-1)[..., None, None]
    f = (total - lo) / (hi - lo + f32(1e-12)) * f32(2.0) - f32(1.0)  # each field in [-1, 1]
    mean = f32(0.25) + f32(0.5) * rng.random((n, 3), f32)
    mix = rng.random((n, 3, fields), f32) * f32(2.0) - f32(1.0)  # the colour direction of each field
    reach = np.abs(mix[..., 0]) + np.abs(mix[..., 1]) + np.abs(mix[..., 2])  # [n, 3]
    mix = mix * (np.minimum(mean, f32(1.0) - mean) / (reach + f32(1e-12)))[..., None]  # mean +- reach in [0, 1]
    out = np.empty((n, h, w, 3), np.uint8)
    for c in range(3):
        m = mix[:, c, :, None, None]
        out[..., c] = _to_uint8(mean[:, c, None, None] + f[:, 0] * m[:, 0] + f[:, 1] * m[:, 1] + f[:, 2] * m[:, 2])
    return out


def random_shapes(seed: int, n: int, size: int | tuple[int, int] = 84, *,
                  num_shapes: tuple[int, int] = (3, 12)) -> np.ndarray:
    """Overlapping flat-coloured shapes: ``uint8 [n, H, W, 3]``.

    A background of one random colour, then ``k ~ U{num_shapes}`` shapes drawn in turn (later
    ones on top), each a rotated ellipse, a rotated rectangle or a triangle (equally likely)
    of one random colour, centred anywhere in the image, 5-45% of the image side across.
    No anti-aliasing: each image holds at most ``k + 1`` colours.
    """
    n, (h, w) = _count(n), _size(size)
    rng = _rng(seed, "shapes")
    lo_k, hi_k = num_shapes
    f32, side = np.float32, float(min(h, w))
    colors = rng.integers(0, 256, (n, hi_k + 1, 3), dtype=np.uint8)  # [background, shape 1, ...]
    count = rng.integers(lo_k, hi_k + 1, n)
    kind = rng.integers(0, 3, (n, hi_k))
    center = (rng.random((n, hi_k, 2)) * np.array([h, w])).astype(f32)
    half = ((0.025 + 0.2 * rng.random((n, hi_k, 2))) * side).astype(f32)  # half-extents along the shape's axes
    dx, dy = (d.astype(f32) for d in _unit_vectors(rng, (n, hi_k)))
    corners = (rng.random((n, hi_k, 3, 2)) * 2.0 - 1.0).astype(f32) * half[:, :, None, :]  # triangles, (u, v)
    y = (np.arange(h, dtype=f32) + f32(0.5))[None, :, None]
    x = (np.arange(w, dtype=f32) + f32(0.5))[None, None, :]
    label = np.zeros((n, h, w), np.uint8)  # which colour each pixel shows
    for k in range(hi_k):
        for shape in range(3):
            idx = np.nonzero((k < count) & (kind[:, k] == shape))[0]
            if not len(idx):
                continue
            cy, cx, ey, ex, a, b = (p[idx, k][:, None, None] for p in (center[..., 0], center[..., 1], dy, dx,
                                                                       half[..., 0], half[..., 1]))
            ry, rx = y - cy, x - cx
            u = rx * ex + ry * ey  # coordinates along the shape's axes
            v = ry * ex - rx * ey
            if shape == 0:
                mask = (u / a) * (u / a) + (v / b) * (v / b) <= f32(1.0)
            elif shape == 1:
                mask = (np.abs(u) <= a) & (np.abs(v) <= b)
            else:
                tri = corners[idx, k]  # [m, 3, 2]
                signs = []
                for i in range(3):
                    (u0, v0), (u1, v1) = tri[:, i].T, tri[:, (i + 1) % 3].T
                    signs.append((u1 - u0)[:, None, None] * (v - v0[:, None, None])
                                 - (v1 - v0)[:, None, None] * (u - u0[:, None, None]) >= 0)
                mask = (signs[0] == signs[1]) & (signs[1] == signs[2])
            label[idx] = np.where(mask, np.uint8(k + 1), label[idx])
    return colors[np.arange(n)[:, None, None], label]


def random_patterns(seed: int, n: int, size: int | tuple[int, int] = 84, *,
                    period: tuple[float, float] = (4.0, 24.0)) -> np.ndarray:
    """Two-colour periodic patterns: ``uint8 [n, H, W, 3]``.

    Each image is stripes, a checkerboard or concentric rings (equally likely) of two random
    colours, with a period ``~ U(period)`` pixels, a random orientation and phase (rings: a
    random centre, possibly outside the image). Strongly periodic, so their spectra
    concentrate in a few frequencies (unlike :func:`fractal_noise`'s smooth power-law fall-off).
    """
    n, (h, w) = _count(n), _size(size)
    rng = _rng(seed, "patterns")
    kind = rng.integers(0, 3, n)[:, None, None]
    colors = rng.integers(0, 256, (n, 2, 3), dtype=np.uint8)
    per = rng.uniform(period[0], period[1], n)[:, None, None]
    phase = rng.random((n, 2))
    dx, dy = _unit_vectors(rng, (n,))
    dx, dy = dx[:, None, None], dy[:, None, None]
    center = (rng.random((n, 2)) * 2.0 - 0.5) * np.array([h, w])
    y = (np.arange(h) + 0.5)[None, :, None]
    x = (np.arange(w) + 0.5)[None, None, :]
    u = (x * dx + y * dy) / per + phase[:, 0, None, None]
    v = (y * dx - x * dy) / per + phase[:, 1, None, None]
    ry, rx = y - center[:, 0, None, None], x - center[:, 1, None, None]
    r = np.sqrt(ry * ry + rx * rx) / per + phase[:, 0, None, None]
    stripes = np.floor(u) % 2
    checker = (np.floor(u) + np.floor(v)) % 2
    rings = np.floor(r) % 2
    which = np.where(kind == 0, stripes, np.where(kind == 1, checker, rings)).astype(np.intp)
    return colors[np.arange(n)[:, None, None], which]


# ------------------------------------------------------------------------------------------
# photographs: matplotlib's sample data, a folder, an .npz
# ------------------------------------------------------------------------------------------


def _resize(image: np.ndarray, size: tuple[int, int], box: tuple[float, float, float, float] | None = None) -> np.ndarray:
    """Resize ``uint8 [h, w, 3]`` (or its ``box = (left, top, right, bottom)``) to ``size``
    with Pillow's antialiased bilinear filter; ``box=None`` centre-crops to the aspect ratio
    of ``size`` first, so nothing is stretched."""
    from PIL import Image

    h, w = size
    ih, iw = image.shape[:2]
    if box is None:
        scale = min(iw / w, ih / h)
        cw, ch = w * scale, h * scale
        box = ((iw - cw) / 2, (ih - ch) / 2, (iw + cw) / 2, (ih + ch) / 2)
    out = Image.fromarray(np.ascontiguousarray(image)).resize((w, h), Image.Resampling.BILINEAR, box=box)
    return np.asarray(out)


def sample_data_dir() -> str:
    """matplotlib's ``mpl-data/sample_data`` folder."""
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "sample_data")


@functools.lru_cache(maxsize=1)
def _packaged_images() -> tuple[tuple[np.ndarray, np.ndarray | None], ...]:
    """``(rgb uint8 [h, w, 3], alpha float [h, w, 1] or None)`` of each :data:`PACKAGED_IMAGES`."""
    from matplotlib import colormaps
    from matplotlib.colors import LightSource
    from PIL import Image

    folder = sample_data_dir()
    paths = [os.path.join(folder, f) for f in PACKAGED_IMAGES]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"matplotlib's sample images are missing: {', '.join(missing)} (the 'matplotlib' "
                                "distractor source needs a full matplotlib installation; leave it out of sources).")
    hopper = media.read_image(paths[0])
    with np.load(paths[1]) as z:
        elevation, spacing = z["elevation"].astype(np.float64), float(z["dx"])
    relief = LightSource(azdeg=315, altdeg=45).shade(elevation, cmap=colormaps["gist_earth"], blend_mode="overlay",
                                                     vert_exag=0.05, dx=spacing, dy=spacing)
    relief = _to_uint8(relief[..., :3])
    media.require_nonempty(paths[2])
    with Image.open(paths[2]) as im:
        rgba = np.asarray(im.convert("RGBA"))
    gift = (rgba[..., :3], rgba[..., 3:].astype(np.float64) / 255.0)
    return ((hopper, None), (relief, None), gift)


def packaged_photos(seed: int, n: int, size: int | tuple[int, int] = 84, *,
                    scale: tuple[float, float] = (0.08, 1.0)) -> np.ndarray:
    """Random crops of the images matplotlib installs (:data:`PACKAGED_IMAGES`):
    ``uint8 [n, H, W, 3]``.

    Each image picks one of the three uniformly, then a crop as torchvision's
    ``RandomResizedCrop``: area ``~ U(scale)`` of the image, aspect ratio ``U(3/4, 4/3)`` times
    the target's, anywhere inside; flipped left-right with probability 1/2; resized with
    Pillow's antialiased bilinear filter. The gift box (RGBA) is laid on a random colour.
    Three images give few truly different distractors; prefer a folder of photographs
    (:func:`load_folder`) when there is one.
    """
    n, (h, w) = _count(n), _size(size)
    rng = _rng(seed, "matplotlib")
    bases = _packaged_images()
    out = np.empty((n, h, w, 3), np.uint8)
    which = rng.integers(0, len(bases), n)
    area, ratio = rng.uniform(scale[0], scale[1], n), rng.uniform(0.75, 4.0 / 3.0, n) * (w / h)
    pos, flip, bg = rng.random((n, 2)), rng.random(n) < 0.5, rng.integers(0, 256, (n, 3))
    for i in range(n):
        rgb, alpha = bases[which[i]]
        ih, iw = rgb.shape[:2]
        cw = min(np.sqrt(area[i] * ih * iw * ratio[i]), iw)
        ch = min(np.sqrt(area[i] * ih * iw / ratio[i]), ih)
        left, top = pos[i, 0] * (iw - cw), pos[i, 1] * (ih - ch)
        if alpha is not None:
            rgb = _to_uint8((rgb * alpha + bg[i] * (1.0 - alpha)) / 255.0)
        crop = _resize(rgb, (h, w), (left, top, left + cw, top + ch))
        out[i] = crop[:, ::-1] if flip[i] else crop
    return out


def _subset(items: Sequence, limit: int | None, seed: int) -> list:
    """At most ``limit`` of ``items``, a seeded random subset kept in the original order."""
    if limit is None or len(items) <= limit:
        return list(items)
    keep = np.sort(_rng(seed, "subset").choice(len(items), limit, replace=False))
    return [items[i] for i in keep]


def _files_under(folder: str) -> list[str]:
    """Every file under ``folder`` (recursively, sorted; hidden files and folders, whose
    names start with ``.``, left out)."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
    return found


def load_folder(path: str | os.PathLike, size: int | tuple[int, int] = 84, *, max_images: int | None = None,
                seed: int = 0) -> np.ndarray:
    """Every image under ``path`` as ``uint8 [N, H, W, 3]``: each centre-cropped to the aspect
    ratio of ``size`` and resized (Pillow, antialiased bilinear).

    The folder is searched recursively (COCO, Places and ImageNet copies keep images in
    sub-folders), in sorted order; hidden files are ignored. Files whose extension is not one
    of :data:`IMAGE_EXTENSIONS`, and images that cannot be decoded (empty, truncated, corrupt),
    are skipped and counted: one ``UserWarning`` says how many and names the first few with
    the reason. ``max_images`` keeps a random subset (drawn from ``seed``) of the candidate
    images before any is read, so a 50K-image folder can give a smaller bank quickly
    (reading and resizing a 640x480 JPEG takes about 4 ms: 50K images in about 3 minutes,
    1 GB at 84x84).

    Raises:
      FileNotFoundError: ``path`` is not a folder.
      ValueError: no image under ``path`` could be read (the message names the folder).
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise MissingPathError(f"distractor folder {path!r} does not exist or is not a folder.")
    size = _size(size)
    skipped: list[tuple[str, str]] = []
    candidates = []
    for f in _files_under(path):
        ext = os.path.splitext(f)[1].lower()
        if ext in IMAGE_EXTENSIONS:
            candidates.append(f)
        else:
            skipped.append((f, f"not an image file ({ext or 'no extension'})"))
    chosen = _subset(candidates, max_images, seed)
    images, count = np.empty((len(chosen), *size, 3), np.uint8), 0  # filled in place: no second copy
    for f in chosen:
        try:
            images[count] = _resize(media.read_image(f), size)
            count += 1
        except media.MediaFileError as e:
            skipped.append((f, e.problem))
    _warn_skipped(path, skipped, count + len(skipped))
    if not count:
        raise ValueError(f"distractor folder {path!r} holds no readable image "
                         f"({len(skipped)} file(s) skipped; images are {', '.join(IMAGE_EXTENSIONS)}).")
    return images[:count]


def _warn_skipped(source: str, skipped: list[tuple[str, str]], total: int, show: int = 5) -> None:
    if not skipped:
        return
    named = "; ".join(f"{os.path.relpath(f, source)}: {why}" for f, why in skipped[:show])
    more = f"; and {len(skipped) - show} more" if len(skipped) > show else ""
    warnings.warn(f"skipped {len(skipped)} of {total} files in distractor folder {source!r} "
                  f"that are not readable images: {named}{more}.", stacklevel=3)


def load_npz(path: str | os.PathLike, size: int | tuple[int, int] = 84, *, key: str | None = None,
             max_images: int | None = None, seed: int = 0) -> np.ndarray:
    """Images from an ``.npz`` archive as ``uint8 [N, H, W, 3]``, each centre-cropped to the
    aspect ratio of ``size`` and resized (Pillow, antialiased bilinear).

    The array is ``key``, else ``images`` when the archive has one, else its only array. It
    must be ``uint8`` ``[N, h, w, 3]`` (RGB), ``[N, h, w, 4]`` (RGBA: alpha dropped) or
    ``[N, h, w]`` / ``[N, h, w, 1]`` (grey). ``max_images``: a seeded random subset, as
    :func:`load_folder`.

    Raises:
      FileNotFoundError: no such file.
      vasa.media.MediaFileError (a ValueError): not a readable ``.npz``, no such array, an
        array of another shape or dtype, or no images; the message names the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingPathError(f"distractor archive {path!r} does not exist.")
    media.require_nonempty(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            name = key or ("images" if "images" in names else names[0] if len(names) == 1 else None)
            if name is None or name not in names:
                want = f"array {key!r}" if key else "an array named 'images' (or a single array)"
                raise media.MediaFileError(path, f"holds no {want}; its arrays: {', '.join(names) or 'none'}")
            array = z[name]
    except media.MediaFileError:
        raise
    except Exception as e:  # zipfile and NumPy report broken archives with many error types
        raise media.MediaFileError(path, f"not a readable NumPy .npz archive ({type(e).__name__}: {e})") from e
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4) or array.dtype != np.uint8:
        raise media.MediaFileError(path, f"array {name!r} is {array.dtype} with shape {array.shape}: expected uint8 "
                                         "[N, height, width, 3] (RGB), [..., 4] (RGBA) or [N, height, width] (grey)")
    if len(array) == 0:
        raise media.MediaFileError(path, f"array {name!r} holds no images (shape {array.shape})")
    size = _size(size)
    keep = _subset(range(len(array)), max_images, seed)
    out = np.empty((len(keep), *size, 3), np.uint8)
    for j, i in enumerate(keep):
        image = array[i]
        image = np.repeat(image, 3, -1) if image.shape[-1] == 1 else image[..., :3]
        out[j] = _resize(image, size)
    return out


# ------------------------------------------------------------------------------------------
# rendered scenes
# ------------------------------------------------------------------------------------------


def scene_frames(seed: int, n: int, size: int | tuple[int, int] = 84, *,
                 tasks: Sequence[str] = ("dmc/cartpole_swingup", "dmc/walker_walk"),
                 appearance: str = "color_hard", steps: int = 10, batch: int = 256) -> np.ndarray:
    """Frames of vasa's pixel environments under random appearances: ``uint8 [n, H, W, 3]``.

    Image ``i`` comes from ``tasks[i % len(tasks)]``: the task is reset from its own key
    (so each image draws its own look from the ``appearance`` suite, see
    :data:`vasa.envs.randomize.SUITES`), then stepped ``steps`` times with uniformly random
    actions (with PAD's action repeat), and the last rendered RGB frame is kept.

    Only MJX tasks (``dmc/*``, ``brax/*``) have random appearances. Frames are rendered once,
    after the last step (not at every step), ``batch`` images per compiled call.

    Cost: every task compiles its reset, steps and renderer once: on a busy 2-core CPU about
    60 s for ``dmc/walker_walk`` at 84x84 with ``steps=10`` and 35 s with ``steps=0``; about
    10 s when JAX's persistent compilation cache already holds it. Then about 20 ms per
    image (64 walker images, 10 steps each, in 1.4 s), so 1,000 images in about 20 s.
    Reproducible from ``seed`` on one backend.
    """
    import vasa.envs as E

    n, (h, w) = _count(n), _size(size)
    out = np.empty((n, h, w, 3), np.uint8)
    root = jax.random.PRNGKey(int(seed))
    for t, task in enumerate(tasks):
        index = np.arange(t, n, len(tasks))
        if not len(index):
            continue
        pixels = E.make(task, pixels=True, appearance=appearance, image_size=(h, w), frame_stack=1, auto_reset=False)
        if not isinstance(pixels, E.PixelObservation):
            raise ValueError(f"tasks={tuple(tasks)!r} is not allowed: {task!r} is not rendered with random "
                             "appearances; use MJX tasks (dmc/*, brax/*).")
        physics, spec = pixels.env, pixels.action_spec  # step without rendering; render the last state only

        def frame(key, pixels=pixels, physics=physics, spec=spec):
            reset_key, look_key, action_key = jax.random.split(key, 3)
            actions = jax.random.uniform(action_key, (steps, *spec.shape), minval=spec.low, maxval=spec.high)
            state, _ = jax.lax.scan(lambda s, a: (physics.step(s, a), None), physics.reset(reset_key), actions)
            return pixels.render_frame(state.physics, pixels.sampler(look_key), jnp.int32(steps))

        render = jax.jit(jax.vmap(frame))
        keys = jax.random.split(jax.random.fold_in(root, t), len(index))
        chunk = min(batch, len(index))
        for start in range(0, len(index), chunk):
            part = keys[start:start + chunk]
            padded = jnp.concatenate([part, jnp.repeat(part[-1:], chunk - len(part), 0)])  # one compiled shape
            out[index[start:start + chunk]] = np.asarray(render(padded))[:len(part)]
    return out


# ------------------------------------------------------------------------------------------
# the bank
# ------------------------------------------------------------------------------------------


def _distinct(items) -> bool:
    return len(set(items)) == len(items)


@dataclasses.dataclass(frozen=True)
class DistractorConfig:
    """What :func:`make_bank` builds.

    sources: the sources, concatenated in this order (see the module's table).
    num_images: images drawn from each of ``fractal``, ``shapes``, ``patterns``,
      ``matplotlib`` and ``scenes``. image_size: ``(height, width)`` of every image.
    seed: the seed of every drawn source (each uses its own stream).
    folder: the folder of ``folder`` (searched recursively; needed when, and only when,
      ``folder`` is a source). npz: the archive of ``npz`` (likewise); npz_key: its array
      (default ``images``, or the only one).
    max_loaded: at most this many images from ``folder`` and from ``npz`` (a seeded random
      subset); ``None``: all.
    scene_tasks, scene_appearance, scene_steps: see :func:`scene_frames`. A student whose own
      task is among ``scene_tasks`` sees its task under ``scene_appearance`` in mixup and cutmix,
      which breaks the zero-shot condition for that suite (``DAggerConfig.validate`` warns).
    """

    sources: Annotated[tuple[Source, ...], Length(min=1), Check(_distinct, "distinct sources")] = (
        "fractal", "shapes", "patterns", "matplotlib")
    num_images: PosInt = 1000
    image_size: tuple[ImageSide, ImageSide] = (84, 84)
    seed: Seed = 0
    folder: str | None = None
    npz: str | None = None
    npz_key: str | None = None
    max_loaded: PosInt | None = None
    scene_tasks: Annotated[tuple[SceneTask, ...], Length(min=1)] = ("dmc/cartpole_swingup", "dmc/walker_walk")
    scene_appearance: Suite = "color_hard"
    scene_steps: Annotated[int, Range(ge=0, le=1000)] = 10

    def validate(self) -> DistractorConfig:
        """Check every field (scene tasks must be registered MJX ids), then that ``folder`` and
        ``npz`` are given exactly when they are sources, and exist; returns ``self``."""
        name = type(self).__name__
        check_fields(self)
        for field, what in (("folder", "an existing folder"), ("npz", "an existing .npz file")):
            value = getattr(self, field)
            if field in self.sources and value is None:
                raise ValueError(f"{name}.{field}=None is not allowed when {field!r} is one of the sources: "
                                 f"it must be {what}.")
            if field not in self.sources and value is not None:
                raise ValueError(f"{name}.{field}={value!r} is not allowed when {field!r} is not one of the sources "
                                 f"{self.sources}: add {field!r} to sources, or leave {field} unset.")
            exists = os.path.isdir if field == "folder" else os.path.isfile
            if value is not None and not exists(value):
                raise MissingPathError(f"{name}.{field}={value!r} is not allowed: it must be {what}.")
        if self.npz_key is not None and "npz" not in self.sources:
            raise ValueError(f"{name}.npz_key={self.npz_key!r} is not allowed when 'npz' is not one of the sources.")
        return self


def source_images(source: str, config: DistractorConfig) -> np.ndarray:
    """The images one source of ``config`` contributes: ``uint8 [n, H, W, 3]``."""
    c, size = config, config.image_size
    if source == "fractal":
        return fractal_noise(c.seed, c.num_images, size)
    if source == "shapes":
        return random_shapes(c.seed, c.num_images, size)
    if source == "patterns":
        return random_patterns(c.seed, c.num_images, size)
    if source == "matplotlib":
        return packaged_photos(c.seed, c.num_images, size)
    if source == "scenes":
        return scene_frames(c.seed, c.num_images, size, tasks=c.scene_tasks, appearance=c.scene_appearance,
                            steps=c.scene_steps)
    if source == "folder":
        return load_folder(c.folder, size, max_images=c.max_loaded, seed=c.seed)
    if source == "npz":
        return load_npz(c.npz, size, key=c.npz_key, max_images=c.max_loaded, seed=c.seed)
    raise ValueError(f"source={source!r} is not allowed: choose from {', '.join(SOURCES)}.")


def make_bank(config: DistractorConfig = DistractorConfig()) -> jax.Array:
    """The distractor bank of ``config``: ``uint8 [N, H, W, 3]`` on the default device, the
    sources' images concatenated in the order of ``config.sources`` (``N`` = ``num_images``
    per drawn source plus the images loaded from ``folder``/``npz``)."""
    config.validate()
    return jnp.asarray(np.concatenate([source_images(s, config) for s in config.sources]))


def save_grid(bank, path: str | os.PathLike, *, max_images: int = 64, columns: int = 8, gap: int = 2) -> str:
    """Write the first ``max_images`` images of ``bank`` (``uint8 [N, H, W, 3]``, NumPy or
    JAX) as one PNG contact sheet, ``columns`` per row on a white ground; returns the path."""
    from PIL import Image

    bank = np.asarray(bank)[:max_images]
    if bank.ndim != 4 or bank.shape[-1] != 3 or bank.dtype != np.uint8 or not len(bank):
        raise ValueError(f"bank of shape {bank.shape} and dtype {bank.dtype} is not allowed: "
                         "it must be a non-empty uint8 [N, H, W, 3].")
    n, h, w, _ = bank.shape
    cols = min(columns, n)
    rows = -(-n // cols)
    sheet = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), 255, np.uint8)
    for i, image in enumerate(bank):
        r, c = divmod(i, cols)
        sheet[gap + r * (h + gap):gap + r * (h + gap) + h, gap + c * (w + gap):gap + c * (w + gap) + w] = image
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    Image.fromarray(sheet).save(path)
    return path


__all__ = ["IMAGE_EXTENSIONS", "PACKAGED_IMAGES", "SOURCES", "DistractorConfig", "fractal_noise",
           "load_folder", "load_npz", "make_bank", "packaged_photos", "random_patterns", "random_shapes",
           "sample_data_dir", "save_grid", "scene_frames", "source_images"]
