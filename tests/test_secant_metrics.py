"""vasa.distill.metrics: latency, saliency, embedding plots and cycle consistency, each against an
independent reference (NumPy formulas and loops, scipy's Gaussian filter and grid interpolator,
hand-worked examples)."""

from __future__ import annotations

import math
import sys

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from vasa.distill import metrics as M

B, H, W, C = 2, 10, 12, 6  # two stacked RGB frames


def _unit(x):
    """vasa's encoder convention: uint8 is divided by 255, floats are already in [0, 1]."""
    return x.astype(jnp.float32) / 255.0 if x.dtype == jnp.uint8 else x


def linear_policy(w, pixels):
    x = _unit(pixels)
    return x.reshape(x.shape[0], -1) @ w


def linear_policy_bytes(w, pixels):  # divides by 255 whatever the dtype
    x = pixels.astype(jnp.float32) / 255.0
    return x.reshape(x.shape[0], -1) @ w


PIXEL = (3, 5, 4)  # (h, w, c): a channel of the newest frame


def one_pixel_policy(scale, pixels):
    p = _unit(pixels)[:, PIXEL[0], PIXEL[1], PIXEL[2]]
    return jnp.stack([scale * jnp.tanh(p), p**2, jnp.zeros_like(p)], axis=-1)


def mlp(params, pixels):
    x = _unit(pixels).reshape(pixels.shape[0], -1)
    return jnp.tanh(jnp.tanh(x @ params["w1"]) @ params["w2"])


@pytest.fixture
def pixels():
    return np.random.default_rng(0).integers(0, 256, (B, H, W, C), dtype=np.uint8)


@pytest.fixture
def weights():
    return np.random.default_rng(1).normal(size=(H * W * C, 3)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# latency


def test_latency_keys_and_positive_numbers(pixels):
    rng = np.random.default_rng(2)
    params = {"w1": rng.normal(size=(H * W * C, 16)).astype(np.float32),
              "w2": rng.normal(size=(16, 4)).astype(np.float32)}
    out = M.inference_latency(mlp, params, pixels, batch_sizes=(1, 5), repeats=7, warmup=1)
    assert out["platform"] == jax.devices()[0].platform
    assert out["device_kind"] == jax.devices()[0].device_kind
    assert out["repeats"] == 7 and set(out["batches"]) == {1, 5}
    for b, row in out["batches"].items():
        assert set(row) == {"median_ms", "p90_ms", "mean_ms", "samples_per_s", "compile_s"}
        assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in row.values())
        assert row["p90_ms"] >= row["median_ms"]
        assert row["samples_per_s"] == pytest.approx(b / (row["median_ms"] / 1e3))
    # a pytree example (dict observation), batch larger than the example
    obs = {"pixels": pixels, "proprio": np.zeros((B, 3), np.float32)}
    out = M.inference_latency(lambda p, o: mlp(p, o["pixels"]) + o["proprio"][:, :1], params, obs,
                              batch_sizes=[3], repeats=2, warmup=0)
    assert set(out["batches"]) == {3}


@pytest.mark.parametrize("kwargs, match", [
    ({"batch_sizes": (0,)}, "batch_sizes"), ({"batch_sizes": 4}, "batch_sizes"), ({"batch_sizes": ()}, "batch_sizes"),
    ({"repeats": 0}, "repeats"), ({"warmup": -1}, "warmup"),
])
def test_latency_refuses_bad_arguments(pixels, weights, kwargs, match):
    with pytest.raises(ValueError, match=match):
        M.inference_latency(linear_policy, weights, pixels, **kwargs)


def test_latency_refuses_inconsistent_example(weights):
    with pytest.raises(ValueError, match="leading batch axis"):
        M.inference_latency(linear_policy, weights, {"a": np.zeros((2, 3)), "b": np.zeros((3, 3))})
    with pytest.raises(TypeError, match="callable"):
        M.inference_latency("policy", weights, np.zeros((2, 3)))


# --------------------------------------------------------------------------------------------
# gradient saliency


def test_saliency_of_a_linear_policy_is_its_weights(pixels, weights):
    w3 = weights.reshape(H, W, C, 3)
    l2 = M.saliency(linear_policy, weights, pixels)
    assert l2.shape == (B, H, W) and l2.dtype == jnp.float32
    expected = np.sqrt((w3.astype(np.float64) ** 2).sum(-1)).sum(-1)
    np.testing.assert_allclose(np.asarray(l2), np.broadcast_to(expected, (B, H, W)), rtol=1e-5)
    summed = M.saliency(linear_policy, weights, pixels, reduce="sum")
    np.testing.assert_allclose(np.asarray(summed), np.broadcast_to(np.abs(w3.sum(-1)).sum(-1), (B, H, W)), rtol=1e-5)
    # a policy that divides by 255 itself sees the same image with float_range="byte"
    byte = M.saliency(linear_policy_bytes, weights, pixels, float_range="byte")
    np.testing.assert_allclose(np.asarray(byte), np.asarray(l2), rtol=1e-5)


def test_saliency_of_a_one_pixel_policy(pixels):
    scale = 2.0
    sal = np.asarray(M.saliency(one_pixel_policy, scale, pixels))
    p = pixels[:, PIXEL[0], PIXEL[1], PIXEL[2]].astype(np.float64) / 255.0
    grads = np.stack([scale * (1 - np.tanh(p) ** 2), 2 * p, np.zeros_like(p)], -1)
    expected = np.zeros((B, H, W))
    expected[:, PIXEL[0], PIXEL[1]] = np.linalg.norm(grads, axis=-1)
    np.testing.assert_allclose(sal, expected, rtol=1e-5, atol=0)
    expected[:, PIXEL[0], PIXEL[1]] = np.abs(grads.sum(-1))
    np.testing.assert_allclose(np.asarray(M.saliency(one_pixel_policy, scale, pixels, reduce="sum")), expected,
                               rtol=1e-5, atol=0)


def test_saliency_refuses_bad_inputs(pixels, weights):
    with pytest.raises(TypeError, match="uint8"):
        M.saliency(linear_policy, weights, pixels.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        M.saliency(linear_policy, weights, pixels[0])
    with pytest.raises(ValueError, match="reduce"):
        M.saliency(linear_policy, weights, pixels, reduce="max")
    with pytest.raises(ValueError, match="float_range"):
        M.saliency(linear_policy, weights, pixels, float_range="0-255")
    with pytest.raises(TypeError, match="logits"):
        M.saliency(lambda w, x: jnp.argmax(linear_policy(w, x), -1), weights, pixels)


# --------------------------------------------------------------------------------------------
# perturbation saliency


def test_perturbation_saliency_against_scipy(pixels, weights):
    from scipy.interpolate import RegularGridInterpolator
    from scipy.ndimage import gaussian_filter

    stride, sigma, blur = 5, 3.0, 1.5
    sal = np.asarray(M.perturbation_saliency(linear_policy, weights, pixels, stride=stride, sigma=sigma,
                                             blur_sigma=blur, chunk=4))
    assert sal.shape == (B, H, W) and sal.dtype == np.float32
    x = pixels.astype(np.float64) / 255.0
    blurred = gaussian_filter(x, sigma=(0, blur, blur, 0))  # mode="reflect", truncate=4
    w = weights.astype(np.float64)
    base = x.reshape(B, -1) @ w
    cy, cx = np.arange(0, H, stride), np.arange(0, W, stride)
    yy, xx = np.mgrid[:H, :W]
    coarse = np.zeros((B, len(cy), len(cx)))
    for a, i in enumerate(cy):
        for b, j in enumerate(cx):
            mask = np.exp(-((yy - i) ** 2 + (xx - j) ** 2) / (2 * sigma**2))[None, :, :, None]
            moved = (x * (1 - mask) + blurred * mask).reshape(B, -1) @ w - base
            coarse[:, a, b] = 0.5 * (moved**2).sum(-1)
    points = np.stack([np.minimum(yy, cy[-1]), np.minimum(xx, cx[-1])], -1).astype(np.float64)
    expected = np.stack([RegularGridInterpolator((cy, cx), c)(points) for c in coarse])
    np.testing.assert_allclose(sal, expected, rtol=2e-4, atol=1e-6 * expected.max())


def test_perturbation_saliency_peaks_at_the_grid_point_nearest_the_pixel(pixels):
    sal = np.asarray(M.perturbation_saliency(one_pixel_policy, 2.0, pixels, stride=5, sigma=2.0, blur_sigma=1.0))
    for b in range(B):
        assert np.unravel_index(sal[b].argmax(), (H, W)) == (5, 5)  # PIXEL is (3, 5): nearest centre (5, 5)


def test_perturbation_saliency_refuses_bad_arguments(pixels, weights):
    for kwargs, match in [({"stride": 0}, "stride"), ({"sigma": 0.0}, "sigma"), ({"blur_sigma": float("nan")},
                          "blur_sigma"), ({"chunk": 0}, "chunk"), ({"float_range": "x"}, "float_range")]:
        with pytest.raises(ValueError, match=match):
            M.perturbation_saliency(linear_policy, weights, pixels, **kwargs)


# --------------------------------------------------------------------------------------------
# overlay


def test_saliency_overlay_png(tmp_path, pixels):
    rng = np.random.default_rng(3)
    batch = rng.integers(0, 256, (5, H, W, C), dtype=np.uint8)
    sal = rng.random((5, H, W)).astype(np.float32)
    sal[:, 0, 0] = 0.0  # pixels without saliency show the newest frame unchanged
    path = M.save_saliency_overlay(batch, sal, str(tmp_path / "sal.png"), scale=3, pad=2)
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (2 * H * 3 + 2, 3 * W * 3 + 2 * 2)  # 5 images on a 3-column grid
    rgb = np.round(image[..., :3] * 255).astype(np.uint8)
    tile = (H * 3 + 2, W * 3 + 2)
    for i in range(5):
        r, q = divmod(i, 3)
        np.testing.assert_array_equal(rgb[r * tile[0], q * tile[1]], batch[i, 0, 0, 3:])
    assert np.all(rgb[:H * 3, W * 3:W * 3 + 2] == 255)  # the white gap
    assert np.all(rgb[-(H * 3):, -(W * 3):] == 255)  # the empty sixth cell
    # one image, grey frames
    grey = rng.integers(0, 256, (H, W, 2), dtype=np.uint8)
    path = M.save_saliency_overlay(grey, np.zeros((H, W)), str(tmp_path / "one.png"), frame_channels=1, scale=1)
    rgb = np.round(matplotlib.image.imread(path)[..., :3] * 255).astype(np.uint8)
    np.testing.assert_array_equal(rgb, np.repeat(grey[..., 1:], 3, -1))


def test_saliency_overlay_refuses_bad_inputs(tmp_path, pixels):
    sal = np.zeros((B, H, W))
    with pytest.raises(ValueError, match="sal must be"):
        M.save_saliency_overlay(pixels, sal[:, :-1], str(tmp_path / "a.png"))
    with pytest.raises(ValueError, match="multiple of frame_channels"):
        M.save_saliency_overlay(pixels, sal, str(tmp_path / "a.png"), frame_channels=4)
    with pytest.raises(ValueError, match=">= 0"):
        M.save_saliency_overlay(pixels, -np.ones((B, H, W)), str(tmp_path / "a.png"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        M.save_saliency_overlay(pixels, sal, str(tmp_path / "missing" / "a.png"))


# --------------------------------------------------------------------------------------------
# embedding plots


def _suites(n=12, d=6):
    rng = np.random.default_rng(4)
    return {name: rng.normal(size=(n, d)) + 6 * k for k, name in enumerate(("train", "color_hard", "video_easy"))}


def test_pca_embedding_plot(tmp_path):
    suites = _suites()
    coords = M.embedding_plot(suites, str(tmp_path / "pca.png"))
    assert list(coords) == list(suites) and all(c.shape == (12, 2) for c in coords.values())
    # reference: the top-2 eigenvectors of the covariance matrix, up to sign
    pooled = np.concatenate(list(suites.values()))
    centred = pooled - pooled.mean(0)
    _, vecs = np.linalg.eigh(centred.T @ centred)
    expected = centred @ vecs[:, ::-1][:, :2]
    got = np.concatenate(list(coords.values()))
    np.testing.assert_allclose(np.abs(got), np.abs(expected), atol=1e-8)
    for k in range(2):
        assert np.allclose(got[:, k], expected[:, k]) or np.allclose(got[:, k], -expected[:, k])
    image = matplotlib.image.imread(str(tmp_path / "pca.png"))
    assert image.shape[:2] == (500, 500)
    # one feature dimension: the second coordinate is zero
    flat = M.embedding_plot({"a": np.arange(3.0)[:, None], "b": np.ones((2, 1))}, str(tmp_path / "d1.png"))
    assert np.all(flat["a"][:, 1] == 0)


def test_embedding_plot_refuses_bad_inputs(tmp_path):
    path = str(tmp_path / "e.png")
    with pytest.raises(ValueError, match="method"):
        M.embedding_plot(_suites(), path, method="umap")
    with pytest.raises(ValueError, match="same feature size"):
        M.embedding_plot({"a": np.zeros((3, 4)), "b": np.zeros((3, 5))}, path)
    with pytest.raises(ValueError, match="NaN"):
        M.embedding_plot({"a": np.full((3, 4), np.nan)}, path)
    with pytest.raises(ValueError, match="non-empty dict"):
        M.embedding_plot({}, path)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        M.embedding_plot({"a": np.zeros(4)}, path)


def test_tsne_without_scikit_learn_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.manifold", None)  # import fails as if not installed
    with pytest.raises(ImportError, match=r"pip install 'vasa\[secant\]'"):
        M.embedding_plot(_suites(), str(tmp_path / "t.png"), method="tsne")


def test_tsne_embedding_plot(tmp_path):
    pytest.importorskip("sklearn")
    suites = _suites()
    coords = M.embedding_plot(suites, str(tmp_path / "tsne.png"), method="tsne", seed=0)
    assert all(c.shape == (12, 2) and np.all(np.isfinite(c)) for c in coords.values())
    # well-separated clusters stay apart: every point is nearer its own suite's centre
    centres = np.stack([c.mean(0) for c in coords.values()])
    for k, c in enumerate(coords.values()):
        assert np.all(np.linalg.norm(c[:, None] - centres[None], axis=-1).argmin(1) == k)
    assert matplotlib.image.imread(str(tmp_path / "tsne.png")).shape[:2] == (500, 500)
    with pytest.raises(ValueError, match="perplexity"):
        M.embedding_plot(suites, str(tmp_path / "tsne.png"), method="tsne", perplexity=36)


# --------------------------------------------------------------------------------------------
# cycle consistency


def _nearest_loop(x, ys):
    best, best_d = 0, math.inf
    for j, y in enumerate(ys):
        d = sum((float(a) - float(b)) ** 2 for a, b in zip(x, y))
        if d < best_d:  # strict: ties keep the lowest index
            best, best_d = j, d
    return best


def _reference(u, paths, tolerance):
    """Fraction of u_i that return within tolerance along every path (a list of trajectories)."""
    ok = 0
    for i in range(len(u)):
        good = True
        for path in paths:
            x = u[i]
            for traj in (*path, u):
                j = _nearest_loop(x, traj)
                x = traj[j]
            good &= abs(i - j) <= tolerance
        ok += good
    return ok / len(u)


def test_cycle_consistency_identical_reversed_and_permuted():
    u = np.random.default_rng(5).normal(size=(15, 8))
    assert M.cycle_consistency(u, u, tolerance=0) == 1.0
    # only u's time order enters: any order of v's rows gives the same answer
    assert M.cycle_consistency(u, u[::-1], tolerance=0) == 1.0
    shuffled = u[np.random.default_rng(6).permutation(15)]
    assert M.cycle_consistency(u, shuffled, tolerance=0) == 1.0
    assert M.cycle_consistency_3way(u, u[::-1], shuffled, tolerance=0) == 1.0
    # a v that lacks u_0..u_2 sends them back to some u_k with k >= 3: u_0 and u_1 must fail
    missing = M.cycle_consistency(u, u[3:], tolerance=1)
    assert missing == pytest.approx(_reference(u, [[u[3:]]], 1)) and missing <= 13 / 15


def test_cycle_consistency_of_collapsed_and_unrelated_embeddings():
    u = np.random.default_rng(7).normal(size=(15, 8))
    # a collapsed v (one point): every u_i returns to the same u_k, so 3 of 15 (k inside) are consistent,
    # the level of SAC's 20.0 +- 0.0 in table 5.6
    assert M.cycle_consistency(u, np.repeat(u[7:8], 15, axis=0)) == pytest.approx(3 / 15)
    assert M.cycle_consistency(u, np.repeat(u[0:1], 15, axis=0)) == pytest.approx(2 / 15)
    scores = [M.cycle_consistency(u, np.random.default_rng(s).normal(size=(15, 8))) for s in range(20)]
    assert np.mean(scores) < 0.6


def test_cycle_consistency_hand_worked():
    u = np.array([[0.0], [10.0], [20.0], [30.0], [40.0]])
    v = np.array([[1.0], [38.0]])
    # u -> v: 0, 0, 1, 1, 1; v -> u: 0, 4; so k = 0, 0, 4, 4, 4
    assert M.cycle_consistency(u, v, tolerance=1) == pytest.approx(4 / 5)
    assert M.cycle_consistency(u, v, tolerance=0) == pytest.approx(2 / 5)
    assert M.cycle_consistency(u, v, tolerance=2) == 1.0
    # ties go to the lowest index: v's only point is u_0 = u_2, so k = 0 (k = 2 would give 3 / 5)
    assert M.cycle_consistency(np.array([[0.0], [5.0], [0.0], [6.0], [7.0]]), np.array([[0.0]])) == pytest.approx(2 / 5)


def test_cycle_consistency_3way_hand_worked():
    u = np.array([[0.0], [10.0], [20.0], [30.0]])
    v = np.array([[9.0], [32.0]])
    w = np.array([[1.0], [18.0]])
    # U->V->W->U returns to 0, 0, 0, 2; U->W->V->U returns to 1, 1, 1, 1
    assert M.cycle_consistency_3way(u, v, w, tolerance=1) == 0.5
    assert M.cycle_consistency_3way(u, v, w, tolerance=0) == 0.0
    assert M.cycle_consistency_3way(u, v, w, tolerance=2) == 1.0
    # 2-way: U->V->U returns to 1, 1, 1, 3
    assert M.cycle_consistency(u, v, tolerance=1) == 1.0
    assert M.cycle_consistency(u, v, tolerance=0) == 0.5


@pytest.mark.parametrize("seed", range(6))
def test_cycle_consistency_against_a_double_loop(seed):
    rng = np.random.default_rng(seed)
    n, m, p, d = rng.integers(3, 14, size=4)
    if seed % 2:  # small integers: many exact ties
        u, v, w = (rng.integers(0, 3, size=(k, d)).astype(np.float32) for k in (n, m, p))
    else:
        u, v, w = (rng.normal(size=(k, d)) for k in (n, m, p))
    for tol in (0, 1, 2):
        assert M.cycle_consistency(u, v, tol) == pytest.approx(_reference(u, [[v]], tol))
        assert M.cycle_consistency_3way(u, v, w, tol) == pytest.approx(_reference(u, [[v, w], [w, v]], tol))


def test_cycle_consistency_trials_protocol():
    rng = np.random.default_rng(8)
    u, v, w = rng.normal(size=(15, 8)), rng.normal(size=(15, 8)), rng.normal(size=(15, 8))
    # 15 of 15 steps: every draw is the whole trajectory in time order
    out = M.cycle_consistency_trials([u, v], num_samples=15, trials=5, seed=0)
    assert out["way"] == 2 and out["trials"].shape == (5,)
    assert np.all(out["trials"] == M.cycle_consistency(u, v)) and out["std"] == 0.0
    out3 = M.cycle_consistency_trials([u, v, w], num_samples=15, trials=3, seed=1)
    assert out3["way"] == 3 and out3["mean"] == pytest.approx(M.cycle_consistency_3way(u, v, w))
    # longer trajectories: fractions of 15, std with ddof=1, reproducible from the seed
    long_u, long_v = rng.normal(size=(60, 8)), rng.normal(size=(45, 8))
    a = M.cycle_consistency_trials([long_u, long_v], seed=3)
    b = M.cycle_consistency_trials([long_u, long_v], seed=np.random.default_rng(3))
    np.testing.assert_array_equal(a["trials"], b["trials"])
    np.testing.assert_allclose(a["trials"] * 15, np.round(a["trials"] * 15), atol=1e-12)
    assert a["mean"] == pytest.approx(a["trials"].mean()) and a["std"] == pytest.approx(a["trials"].std(ddof=1))
    # time-aligned copies: the same steps in both give 1.0 every trial
    same = M.cycle_consistency_trials([long_u, long_u.copy()], same_indices=True, seed=4)
    assert same["mean"] == 1.0 and same["std"] == 0.0


def test_cycle_consistency_refuses_bad_inputs():
    u = np.zeros((5, 3))
    with pytest.raises(ValueError, match="same embedding size"):
        M.cycle_consistency(u, np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        M.cycle_consistency(np.zeros(5), u)
    with pytest.raises(ValueError, match="NaN"):
        M.cycle_consistency(u, np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="tolerance"):
        M.cycle_consistency(u, u, tolerance=-1)
    with pytest.raises(ValueError, match="tolerance"):
        M.cycle_consistency_3way(u, u, u, tolerance=0.5)
    with pytest.raises(ValueError, match="2 .* or 3"):
        M.cycle_consistency_trials([u])
    with pytest.raises(ValueError, match="2 .* or 3"):
        M.cycle_consistency_trials(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match="shortest trajectory"):
        M.cycle_consistency_trials([u, np.zeros((20, 3))], num_samples=15)
    with pytest.raises(ValueError, match="equal length"):
        M.cycle_consistency_trials([np.zeros((20, 3)), np.zeros((21, 3))], same_indices=True)
    with pytest.raises(ValueError, match="seed"):
        M.cycle_consistency_trials([u, u], num_samples=3, seed="x")
