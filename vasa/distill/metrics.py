"""Analysis tools for visual policies: inference latency, saliency maps, embedding plots and
cycle consistency (SECANT, section 5.5: table 5.6 and figure 5.5).

A policy is any function ``policy(params, pixels) -> actions [B, A]`` (float) of pixels
``uint8 [B, H, W, C]`` (frames stacked along ``C``, newest last, as vasa's pixel environments
make them); a feature extractor is ``features(params, pixels) -> [B, D] float32``. Wrap one
that takes a dict observation in a lambda (``lambda p, x: f(p, {"pixels": x, ...})``).

* :func:`inference_latency`: median / p90 milliseconds per call and samples per second of a
  jitted function at several batch sizes, with the device it ran on.
* :func:`saliency`: gradient saliency, the L2 norm over action dims of the Jacobian of the
  actions w.r.t. the pixels, summed over channels (``reduce="sum"``: ``|d sum(a) / d x|``).
  :func:`perturbation_saliency`: the perturbation saliency SECANT's figure 5.5 shows (Greydanus
  et al., 2018: blur a Gaussian patch every 5 pixels, measure how far the action moves).
  :func:`save_saliency_overlay` writes either as a heat-map over the newest frame (PNG).
* :func:`embedding_plot`: features of several appearance suites in 2-D (PCA, or t-SNE with
  ``pip install 'vasa[secant]'``), coloured by suite.
* :func:`cycle_consistency`, :func:`cycle_consistency_3way`, :func:`cycle_consistency_trials`:
  table 5.6's alignment metric of two (three) trajectories' embeddings.

Latency and saliency run in JAX; embeddings and cycle consistency are small host-side
computations in NumPy (float64).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_TSNE_HINT = ("t-SNE needs scikit-learn: pip install 'vasa[secant]' (or pip install scikit-learn); "
              "method='pca' needs nothing")


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r} is not allowed: it must be an integer >= {minimum}")
    return int(value)


def _positive_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"{name}={value!r} is not allowed: it must be a finite number > 0")
    return float(value)


def _choice(name: str, value: Any, valid: Sequence[str]) -> str:
    if value not in valid:
        raise ValueError(f"{name}={value!r} is not allowed: valid values are {', '.join(map(repr, valid))}")
    return value


# ---------------------------------------------------------------------------------------------
# inference latency


def inference_latency(fn: Callable[[Any, Any], Any], params: Any, example: Any,
                      batch_sizes: Sequence[int] = (1, 256), repeats: int = 50, warmup: int = 5) -> dict:
    """Wall time of ``jax.jit(fn)(params, batch)`` at each batch size.

    Args:
      fn: ``fn(params, x) -> pytree of arrays``: a policy, a feature extractor, a whole model.
      params: its parameters (any pytree); put on the device once and passed as an argument,
        so the timing is that of the deployed function, not of one with baked-in constants.
      example: an array, or a pytree of arrays, with a leading batch axis ``[N, ...]`` (e.g.
        pixels ``uint8 [N, H, W, C]``); a batch of size ``b`` takes its rows cyclically (row
        ``i`` is ``example[i % N]``).
      batch_sizes: the batch sizes to time (positive ints), e.g. ``(1, 256)``.
      repeats: timed calls per batch size (>= 1).
      warmup: untimed calls after the first (compiling) call (>= 0).

    Returns:
      ``{"platform": "cpu" | "gpu" | "tpu", "device_kind": str, "repeats": int, "batches":
      {b: {"median_ms", "p90_ms", "mean_ms", "samples_per_s", "compile_s"}}}`` (Python
      floats). Each timed call is ``time.perf_counter`` around the call and
      ``jax.block_until_ready`` of its output: dispatch is included, host-to-device copies of
      the inputs are not (the batch is on the device beforehand). ``samples_per_s`` is ``b``
      divided by the median; ``compile_s`` is the first call (trace, compile and one run).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable as fn(params, x), got {type(fn).__name__}")
    if isinstance(batch_sizes, (int, np.integer)) or not isinstance(batch_sizes, Sequence) or not batch_sizes:
        raise ValueError(f"batch_sizes={batch_sizes!r} is not allowed: it must be a non-empty sequence of "
                         "positive integers, e.g. (1, 256)")
    batch_sizes = [_positive_int("batch_sizes[]", b) for b in batch_sizes]
    repeats = _positive_int("repeats", repeats)
    warmup = _positive_int("warmup", warmup, minimum=0)
    leaves = jax.tree_util.tree_leaves(example)
    if not leaves:
        raise ValueError("example has no arrays: pass a batch such as pixels uint8 [N, H, W, C]")
    leaves = [np.asarray(x) for x in leaves]
    sizes = {x.shape[0] if x.ndim else None for x in leaves}
    if None in sizes or len(sizes) != 1 or 0 in sizes:
        raise ValueError("every array of example needs the same non-empty leading batch axis; got shapes "
                         f"{[x.shape for x in leaves]}")
    n = sizes.pop()
    treedef = jax.tree_util.tree_structure(example)

    jitted = jax.jit(fn)
    params = jax.device_put(params)
    device = None
    batches = {}
    for b in batch_sizes:
        rows = np.arange(b) % n
        batch = jax.device_put(jax.tree_util.tree_unflatten(treedef, [x[rows] for x in leaves]))
        device = device or next(iter(jax.tree_util.tree_leaves(batch)[0].devices()))
        start = time.perf_counter()
        jax.block_until_ready(jitted(params, batch))
        compile_s = time.perf_counter() - start
        for _ in range(warmup):
            jax.block_until_ready(jitted(params, batch))
        times = np.empty(repeats)
        for r in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(jitted(params, batch))
            times[r] = time.perf_counter() - start
        median = float(np.median(times))
        batches[b] = {"median_ms": 1e3 * median, "p90_ms": 1e3 * float(np.percentile(times, 90)),
                      "mean_ms": 1e3 * float(times.mean()), "samples_per_s": b / median, "compile_s": compile_s}
    return {"platform": device.platform, "device_kind": device.device_kind, "repeats": repeats, "batches": batches}


# ---------------------------------------------------------------------------------------------
# saliency

_FLOAT_RANGES = ("unit", "byte")


def _check_pixels(pixels: Any, fn_name: str) -> jax.Array:
    if not hasattr(pixels, "shape") or not hasattr(pixels, "dtype"):
        raise TypeError(f"{fn_name} expects pixels uint8 [B, H, W, C] as an array, got {type(pixels).__name__}")
    if pixels.ndim != 4 or 0 in pixels.shape:
        raise ValueError(f"{fn_name} expects pixels uint8 [B, H, W, C], got shape {tuple(pixels.shape)}")
    if pixels.dtype != np.uint8:
        raise TypeError(f"{fn_name} expects uint8 pixels (what pixel environments return), got {pixels.dtype}")
    return jnp.asarray(pixels)


def _policy_input(unit: jax.Array, float_range: str) -> jax.Array:
    return unit if float_range == "unit" else unit * 255.0


def _actions(policy: Callable, params: Any, x: jax.Array, float_range: str, batch: int) -> jax.Array:
    a = policy(params, _policy_input(x, float_range))
    if not hasattr(a, "dtype") or not jnp.issubdtype(a.dtype, jnp.floating):
        raise TypeError("saliency needs float actions from policy(params, pixels) (for a discrete policy, "
                        f"return its logits); got {getattr(a, 'dtype', type(a).__name__)}")
    if a.ndim < 1 or a.shape[0] != batch:
        raise ValueError(f"policy(params, pixels) must return actions [B, ...] with B={batch}, got shape {a.shape}")
    return a.reshape(batch, -1)


@partial(jax.jit, static_argnames=("policy", "reduce", "float_range"))
def _gradient_saliency(policy, params, pixels, reduce, float_range):
    x = pixels.astype(jnp.float32) / 255.0
    actions, vjp = jax.vjp(lambda x: _actions(policy, params, x, float_range, x.shape[0]), x)
    if reduce == "sum":
        (g,) = vjp(jnp.ones_like(actions))
        return jnp.abs(g).sum(-1)

    # one backward pass per action dim, accumulating squares: memory of one pixel batch,
    # whatever the number of action dims
    def add_square(k, acc):
        (g,) = vjp(jnp.zeros_like(actions).at[:, k].set(1.0))
        return acc + g * g

    sq = jax.lax.fori_loop(0, actions.shape[1], add_square, jnp.zeros_like(x))
    return jnp.sqrt(sq).sum(-1)


def saliency(policy: Callable[[Any, jax.Array], jax.Array], params: Any, pixels: jax.Array, *,
             reduce: str = "l2", float_range: str = "unit") -> jax.Array:
    """Gradient saliency of a pixel policy: ``float32 [B, H, W]`` from pixels ``uint8 [B, H, W, C]``.

    With ``x = pixels / 255`` (float32, in [0, 1]) and actions ``a = policy(params, x) [B, A]``:

    * ``reduce="l2"`` (default): ``sal[b, h, w] = sum_c sqrt(sum_k (d a[b, k] / d x[b, h, w, c])^2)``,
      the L2 norm over action dims of the Jacobian, summed over the channels of all frames.
      For a linear policy ``a = flat(x) @ W`` this is ``sum_c ||W[(h, w, c), :]||_2``.
    * ``reduce="sum"``: ``sal[b, h, w] = sum_c |d sum_k a[b, k] / d x[b, h, w, c]|`` (one
      backward pass instead of ``A``; action dims of opposite sign can cancel).

    Units: change of action per full-range change of a pixel channel (multiply by 1/255 for
    one intensity level). ``float_range`` says which floats the policy receives: ``"unit"``
    gives it ``x`` itself, which is what vasa's encoders expect (uint8 is divided by 255,
    floats are taken as already in [0, 1]); ``"byte"`` gives it ``255 * x`` (float32 0..255)
    for a policy that divides by 255 itself whatever the dtype. Either way the policy sees the
    same image as from the uint8 pixels. The policy must treat samples independently (no
    cross-sample ops such as batch norm in training mode) and be hashable (a function, not a
    fresh lambda per call, to reuse the compiled code).
    """
    if not callable(policy):
        raise TypeError(f"policy must be callable as policy(params, pixels), got {type(policy).__name__}")
    _choice("reduce", reduce, ("l2", "sum"))
    _choice("float_range", float_range, _FLOAT_RANGES)
    pixels = _check_pixels(pixels, "saliency")
    return _gradient_saliency(policy, params, pixels, reduce, float_range)


def _gaussian_blur(x: jax.Array, sigma: float) -> jax.Array:
    """Separable Gaussian blur of ``[B, H, W, C]`` over H and W: scipy.ndimage.gaussian_filter's
    kernel (truncated at 4 sigma) and its default "reflect" border (numpy's "symmetric")."""
    radius = int(4.0 * sigma + 0.5)
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    for axis in (1, 2):
        size = x.shape[axis]
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        xp = jnp.pad(x, pad, mode="symmetric")
        x = sum(float(t) * jax.lax.slice_in_dim(xp, i, i + size, axis=axis) for i, t in enumerate(taps))
    return x


@partial(jax.jit, static_argnames=("policy", "stride", "sigma", "blur_sigma", "float_range", "chunk"))
def _perturbation_saliency(policy, params, pixels, stride, sigma, blur_sigma, float_range, chunk):
    b, h, w, _ = pixels.shape
    x = pixels.astype(jnp.float32) / 255.0
    blurred = _gaussian_blur(x, blur_sigma)
    base = _actions(policy, params, x, float_range, b)
    cy, cx = np.arange(0, h, stride), np.arange(0, w, stride)
    centres = np.stack(np.meshgrid(cy, cx, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
    yy = jnp.arange(h, dtype=jnp.float32)[:, None]
    xx = jnp.arange(w, dtype=jnp.float32)[None, :]

    def score(centre):
        mask = jnp.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2.0 * sigma**2))[None, :, :, None]
        a = _actions(policy, params, x * (1.0 - mask) + blurred * mask, float_range, b)
        return 0.5 * jnp.sum((a - base) ** 2, axis=-1)

    coarse = jax.lax.map(score, jnp.asarray(centres), batch_size=chunk).T.reshape(b, len(cy), len(cx))
    # bilinear, pixel (y, x) at grid coordinate (y / stride, x / stride), clamped past the last centre
    gy = jnp.clip(jnp.arange(h) / stride, 0, len(cy) - 1)
    gx = jnp.clip(jnp.arange(w) / stride, 0, len(cx) - 1)
    y0 = jnp.minimum(jnp.floor(gy).astype(jnp.int32), len(cy) - 2) if len(cy) > 1 else jnp.zeros(h, jnp.int32)
    x0 = jnp.minimum(jnp.floor(gx).astype(jnp.int32), len(cx) - 2) if len(cx) > 1 else jnp.zeros(w, jnp.int32)
    fy = (gy - y0)[None, :, None]
    fx = (gx - x0)[None, None, :]
    y1, x1 = jnp.minimum(y0 + 1, len(cy) - 1), jnp.minimum(x0 + 1, len(cx) - 1)
    top = coarse[:, y0][:, :, x0] * (1 - fx) + coarse[:, y0][:, :, x1] * fx
    bottom = coarse[:, y1][:, :, x0] * (1 - fx) + coarse[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bottom * fy


def perturbation_saliency(policy: Callable[[Any, jax.Array], jax.Array], params: Any, pixels: jax.Array, *,
                          stride: int = 5, sigma: float = 5.0, blur_sigma: float = 3.0,
                          float_range: str = "unit", chunk: int = 16) -> jax.Array:
    """Perturbation saliency (Greydanus et al., 2018), as in SECANT's figure 5.5: ``float32 [B, H, W]``.

    With ``x = pixels / 255`` and, for a centre ``(i, j)`` on the grid ``(0, stride, 2 stride,
    ...)^2``, the Gaussian mask ``M(y, x) = exp(-((y - i)^2 + (x - j)^2) / (2 sigma^2))`` and the
    perturbed image ``x' = x * (1 - M) + blur(x) * M`` (``blur``: a Gaussian blur of every
    channel with ``blur_sigma``, scipy.ndimage's kernel and reflect border), the score is
    ``S(i, j) = 0.5 * ||policy(x) - policy(x')||^2``, interpolated bilinearly from the grid to
    every pixel (pixel ``(y, x)`` sits at grid coordinate ``(y / stride, x / stride)``).
    Greydanus et al. blur a 5-pixel disc by ``sigma`` to make the mask; this uses the
    Gaussian directly, which is the same bump up to a 1-pixel spread.

    Cost: ``ceil(H / stride) * ceil(W / stride)`` forward passes of the batch, ``chunk`` of
    them at a time (memory grows with ``chunk``). ``float_range`` as in :func:`saliency`.
    """
    if not callable(policy):
        raise TypeError(f"policy must be callable as policy(params, pixels), got {type(policy).__name__}")
    stride = _positive_int("stride", stride)
    sigma = _positive_float("sigma", sigma)
    blur_sigma = _positive_float("blur_sigma", blur_sigma)
    chunk = _positive_int("chunk", chunk)
    _choice("float_range", float_range, _FLOAT_RANGES)
    pixels = _check_pixels(pixels, "perturbation_saliency")
    return _perturbation_saliency(policy, params, pixels, stride, sigma, blur_sigma, float_range, chunk)


def _check_parent(path: str) -> str:
    path = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot write {path!r}: the folder {parent!r} does not exist")
    return path


def save_saliency_overlay(pixels: Any, sal: Any, path: str, *, frame_channels: int = 3, alpha: float = 0.6,
                          scale: int = 4, pad: int = 2, cmap: str = "jet") -> str:
    """Write a PNG of the newest frame with the saliency as a heat-map over it; returns ``path``.

    Args:
      pixels: ``uint8 [B, H, W, C]`` or ``[H, W, C]``, frames stacked along ``C``, newest last.
      sal: ``[B, H, W]`` or ``[H, W]`` (any float dtype, >= 0), e.g. from :func:`saliency`.
      frame_channels: channels per frame: 3 (RGB), 1 (grey) or 4 (RGB-D, the depth is not
        drawn); ``C`` must be a multiple of it.
      alpha: opacity of the heat-map where the saliency is largest; the heat-map's opacity at
        a pixel is ``alpha * sal / max(sal)`` (per image), so unimportant pixels show the frame.
      scale: integer upscaling (nearest neighbour) of every image.
      pad: white pixels between images; a batch is laid out row-major on a
        ``ceil(sqrt(B))``-column grid. The PNG is ``rows * H * scale + (rows - 1) * pad`` high
        and ``cols * W * scale + (cols - 1) * pad`` wide.
    """
    import matplotlib
    import matplotlib.image

    pixels, sal = np.asarray(pixels), np.asarray(sal)
    if pixels.ndim == 3:
        pixels = pixels[None]
    if sal.ndim == 2:
        sal = sal[None]
    if pixels.ndim != 4 or pixels.dtype != np.uint8:
        raise ValueError(f"pixels must be uint8 [B, H, W, C] or [H, W, C], got {pixels.dtype} {pixels.shape}")
    if sal.shape != pixels.shape[:3]:
        raise ValueError(f"sal must be [B, H, W] = {pixels.shape[:3]} to match pixels {pixels.shape}, got {sal.shape}")
    if not np.issubdtype(sal.dtype, np.floating) and not np.issubdtype(sal.dtype, np.integer):
        raise TypeError(f"sal must be numeric, got {sal.dtype}")
    if not np.all(np.isfinite(sal)) or np.any(sal < 0):
        raise ValueError("sal must be finite and >= 0 (a saliency magnitude)")
    if frame_channels not in (1, 3, 4):
        raise ValueError(f"frame_channels={frame_channels!r} is not allowed: valid values are 1 (grey), 3 (RGB), "
                         "4 (RGB-D)")
    c = pixels.shape[-1]
    if c % frame_channels:
        raise ValueError(f"pixels have {c} channels, not a multiple of frame_channels={frame_channels}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha={alpha!r} is not allowed: it must be a number in [0, 1]")
    scale = _positive_int("scale", scale)
    pad = _positive_int("pad", pad, minimum=0)
    if cmap not in matplotlib.colormaps:
        raise ValueError(f"cmap={cmap!r} is not a matplotlib colormap (e.g. 'jet', 'inferno', 'viridis')")
    path = _check_parent(path)

    frame = pixels[..., c - frame_channels:][..., :3].astype(np.float64) / 255.0
    if frame_channels == 1:
        frame = np.repeat(frame, 3, axis=-1)
    peak = sal.reshape(len(sal), -1).max(axis=1).astype(np.float64)
    norm = sal / np.where(peak > 0, peak, 1.0)[:, None, None]
    heat = matplotlib.colormaps[cmap](norm)[..., :3]
    weight = (alpha * norm)[..., None]
    images = frame * (1 - weight) + heat * weight
    images = np.repeat(np.repeat(images, scale, axis=1), scale, axis=2)

    b, h, w, _ = images.shape
    cols = math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    canvas = np.ones((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, 3))
    for i, image in enumerate(images):
        r, q = divmod(i, cols)
        canvas[r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = image
    matplotlib.image.imsave(path, (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8), format="png")
    return path


# ---------------------------------------------------------------------------------------------
# embeddings


def _pca_2d(x: np.ndarray) -> np.ndarray:
    """``[N, D]`` -> ``[N, 2]``: coordinates on the two leading principal axes (SVD of the
    centred data), each axis signed so that its largest-magnitude loading is positive."""
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:2]
    vt = vt * np.sign(vt[np.arange(len(vt)), np.abs(vt).argmax(axis=1)])[:, None]
    out = np.zeros((len(x), 2))
    out[:, :len(vt)] = centred @ vt.T
    return out


def _tsne_2d(x: np.ndarray, seed: int, perplexity: float | None) -> np.ndarray:
    try:
        from sklearn.manifold import TSNE
    except ImportError as e:
        raise ImportError(_TSNE_HINT) from e
    n = len(x)
    if perplexity is None:
        perplexity = min(30.0, max(1.0, (n - 1) / 3.0))
    elif not perplexity < n:
        raise ValueError(f"perplexity={perplexity!r} is not allowed: t-SNE needs perplexity < the number of "
                         f"points ({n})")
    return TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto",
                random_state=seed).fit_transform(x)


def embedding_plot(features_by_suite: Mapping[str, Any], path: str, method: str = "pca", *, seed: int = 0,
                   perplexity: float | None = None, title: str | None = None) -> dict[str, np.ndarray]:
    """Embed the features of several appearance suites jointly in 2-D and write a scatter plot.

    Args:
      features_by_suite: ``{suite name: features [N_s, D]}`` (float, the same ``D`` for all),
        e.g. ``features(params, pixels)`` of the same task's states under ``"train"``,
        ``"color_hard"``, ``"video_easy"``; one colour per suite (SECANT's figure 5.5 row 3).
      path: the PNG to write (its folder must exist).
      method: ``"pca"`` (default; NumPy SVD of the pooled, centred features, needs nothing) or
        ``"tsne"`` (scikit-learn's t-SNE, ``init="pca"``, needs ``pip install 'vasa[secant]'``).
      seed: t-SNE's random state.
      perplexity: t-SNE's perplexity; default ``min(30, (N - 1) / 3)`` for ``N`` points in all.
      title: the plot's title (default: the method).

    Returns:
      ``{suite name: coordinates [N_s, 2] float64}``, the points as plotted.
    """
    method = _choice("method", method, ("pca", "tsne"))
    if not isinstance(features_by_suite, Mapping) or not features_by_suite:
        raise ValueError("features_by_suite must be a non-empty dict {suite name: features [N, D]}")
    arrays = {}
    for name, f in features_by_suite.items():
        arrays[str(name)] = _embeddings(f"features_by_suite[{name!r}]", f)
    dims = {name: f.shape[1] for name, f in arrays.items()}
    if len(set(dims.values())) != 1:
        raise ValueError(f"all suites need the same feature size D, got {dims}")
    pooled = np.concatenate(list(arrays.values()))
    if len(pooled) < 2:
        raise ValueError(f"an embedding needs at least 2 points in all, got {len(pooled)}")
    path = _check_parent(path)

    coords = _pca_2d(pooled) if method == "pca" else _tsne_2d(pooled, seed, perplexity)
    splits = np.cumsum([len(f) for f in arrays.values()])[:-1]
    out = dict(zip(arrays, np.split(np.asarray(coords, np.float64), splits)))

    # the object-oriented API with the Agg canvas: no pyplot state, the user's backend untouched
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, xy in out.items():
        ax.scatter(xy[:, 0], xy[:, 1], s=12, alpha=0.8, label=name)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else ("PCA" if method == "pca" else "t-SNE"))
    ax.legend(fontsize=8, markerscale=1.5)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return out


# ---------------------------------------------------------------------------------------------
# cycle consistency


def _embeddings(name: str, x: Any) -> np.ndarray:
    """``x`` as float64 ``[n, D]`` (n, D >= 1, finite, numeric), or an error naming ``name``."""
    x = np.asarray(x)
    if x.ndim != 2 or len(x) == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be [N, D] with N, D >= 1, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name} must be numeric, got {x.dtype}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has NaN or infinite values")
    return x.astype(np.float64)


def _same_width(**named: np.ndarray) -> None:
    dims = {name: x.shape[1] for name, x in named.items()}
    if len(set(dims.values())) != 1:
        raise ValueError(f"trajectories need the same embedding size D, got {dims}")


def _tolerance(tolerance: Any) -> int:
    return _positive_int("tolerance", tolerance, minimum=0)


def _nearest(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``int [len(a)]``: for each row of ``a`` the index of its nearest row of ``b`` in squared
    Euclidean distance (exact differences, not the |a|^2 + |b|^2 - 2ab expansion, so duplicates
    tie exactly); ties go to the lowest index."""
    rows = max(1, 2**24 // max(1, b.size))  # bounds the [rows, len(b), D] difference block
    out = np.empty(len(a), np.int64)
    for s in range(0, len(a), rows):
        out[s:s + rows] = (((a[s:s + rows, None, :] - b[None, :, :]) ** 2).sum(-1)).argmin(axis=1)
    return out


def _returns(u: np.ndarray, *path: np.ndarray) -> np.ndarray:
    """Where each ``u_i`` comes back to after hopping to its nearest neighbour in each of
    ``path`` in turn and then back into ``u``: ``int [n]``."""
    idx = None
    here = u
    for there in (*path, u):
        idx = _nearest(here if idx is None else here[idx], there)
        here = there
    return idx


def cycle_consistency(u: Any, v: Any, tolerance: int = 1) -> float:
    """2-way cycle consistency of ``u`` against ``v`` (SECANT table 5.6, after Aytar et al., 2018).

    ``u: [n, D]``, ``v: [m, D]``: embeddings (any real dtype) of two trajectories, rows in time
    order. ``u_i``'s nearest neighbour in ``v`` is ``v_j`` (squared Euclidean distance),
    ``v_j``'s nearest neighbour in ``u`` is ``u_k``; ``u_i`` is cycle-consistent iff
    ``|i - k| <= tolerance`` (the thesis uses 1). Returns the fraction of consistent ``u_i``
    in [0, 1]. Ties go to the lowest index. Only ``u``'s time order matters: the result is the
    same for any permutation of ``v``'s rows (a time-reversed ``v`` included).
    """
    u, v = _embeddings("u", u), _embeddings("v", v)
    _same_width(u=u, v=v)
    tolerance = _tolerance(tolerance)
    k = _returns(u, v)
    return float(np.mean(np.abs(np.arange(len(u)) - k) <= tolerance))


def cycle_consistency_3way(u: Any, v: Any, w: Any, tolerance: int = 1) -> float:
    """3-way cycle consistency (SECANT table 5.6): the fraction of ``u_i`` that return within
    ``tolerance`` of ``i`` along both ``U -> V -> W -> U`` and ``U -> W -> V -> U``, each hop to
    the nearest neighbour (squared Euclidean, ties to the lowest index). ``u: [n, D]``,
    ``v: [m, D]``, ``w: [p, D]``, rows in time order. Returns a float in [0, 1]."""
    u, v, w = _embeddings("u", u), _embeddings("v", v), _embeddings("w", w)
    _same_width(u=u, v=v, w=w)
    tolerance = _tolerance(tolerance)
    i = np.arange(len(u))
    ok = (np.abs(i - _returns(u, v, w)) <= tolerance) & (np.abs(i - _returns(u, w, v)) <= tolerance)
    return float(np.mean(ok))


def cycle_consistency_trials(trajectories: Sequence[Any], *, num_samples: int = 15, trials: int = 5,
                             tolerance: int = 1, seed: int | np.random.Generator = 0,
                             same_indices: bool = False) -> dict:
    """Table 5.6's protocol: cycle consistency of ``num_samples`` observations sampled from each
    trajectory, over ``trials`` independent draws.

    Args:
      trajectories: 2 trajectories ``(U, V)`` (2-way, :func:`cycle_consistency`) or 3
        ``(U, V, W)`` (3-way, :func:`cycle_consistency_3way`), embeddings ``[T_k, D]`` with rows
        in time order, e.g. ``features(params, pixels)`` of one episode per appearance.
      num_samples: observations per trajectory and trial (the thesis: 15), at most ``min T_k``.
      trials: independent draws (the thesis: 5).
      tolerance: as in :func:`cycle_consistency`; it counts positions among the sampled
        observations (with 15 samples, ``|i - k| <= 1`` means "the same or an adjacent sample").
      seed: an int or a ``numpy.random.Generator``.
      same_indices: ``False`` (default): every trial draws ``num_samples`` distinct time steps
        uniformly from each trajectory separately ("sample 15 observations from each
        trajectory"; lengths may differ), sorted so the samples stay in time order. ``True``:
        one draw of time steps per trial, used for all trajectories (they must have equal
        length), for time-aligned trajectories such as one action sequence replayed under
        different appearances.

    Returns:
      ``{"mean": float, "std": float, "trials": float64 [trials], "way": 2 | 3}``, fractions in
      [0, 1]; ``std`` is the sample standard deviation over trials (ddof=1; 0.0 for one trial).
      Table 5.6 prints ``100 * mean +- 100 * std``: its figures are multiples of 1/75 (15
      samples x 5 trials), and its spreads match ddof=1 (e.g. 18.7 +- 3.0 is trials of
      3, 3, 3, 3, 2 out of 15; ddof=0 would give 2.7).
    """
    if isinstance(trajectories, (np.ndarray, jax.Array)) or not isinstance(trajectories, Sequence) \
            or len(trajectories) not in (2, 3):
        raise ValueError("trajectories must be a list of 2 (U, V) or 3 (U, V, W) embedding arrays [T, D]; got "
                         f"{type(trajectories).__name__}"
                         + (f" of length {len(trajectories)}" if isinstance(trajectories, Sequence) else ""))
    names = "uvw"[:len(trajectories)]
    trajs = [_embeddings(f"trajectories[{i}] ({n.upper()})", t) for i, (n, t) in enumerate(zip(names, trajectories))]
    _same_width(**{n: t for n, t in zip(names, trajs)})
    num_samples = _positive_int("num_samples", num_samples)
    trials = _positive_int("trials", trials)
    tolerance = _tolerance(tolerance)
    if not isinstance(same_indices, bool):
        raise ValueError(f"same_indices={same_indices!r} is not allowed: it must be True or False")
    lengths = [len(t) for t in trajs]
    if num_samples > min(lengths):
        raise ValueError(f"num_samples={num_samples} is more than the shortest trajectory ({min(lengths)} steps; "
                         f"lengths {lengths})")
    if same_indices and len(set(lengths)) != 1:
        raise ValueError(f"same_indices=True needs trajectories of equal length, got lengths {lengths}")
    if isinstance(seed, np.random.Generator):
        rng = seed
    elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        rng = np.random.default_rng(int(seed))
    else:
        raise ValueError(f"seed={seed!r} is not allowed: pass an int or a numpy.random.Generator")

    def draw(length: int) -> np.ndarray:
        return np.sort(rng.choice(length, size=num_samples, replace=False))

    metric = cycle_consistency if len(trajs) == 2 else cycle_consistency_3way
    values = np.empty(trials)
    for t in range(trials):
        if same_indices:
            idx = draw(lengths[0])
            picks = [x[idx] for x in trajs]
        else:
            picks = [x[draw(len(x))] for x in trajs]
        values[t] = metric(*picks, tolerance=tolerance)
    std = float(values.std(ddof=1)) if trials > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "trials": values, "way": len(trajs)}
