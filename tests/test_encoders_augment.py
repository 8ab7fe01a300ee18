"""Pixel encoders, projection and twin critics against NumPy references; DrQ random shift."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa.distill.augment import random_shift, random_shift_pair, shift_offsets
from vasa.nn import MLP, ConvEncoder, DoubleQ, Projection, conv_output_size

SPECS = {"drq": [(32, 3, 2), (32, 3, 1), (32, 3, 1), (32, 3, 1)], "nature": [(16, 8, 4), (32, 4, 2)],
         "drq_small": [(32, 3, 2), (32, 3, 2), (32, 3, 1)]}


# ----------------------------------------------------------------------------- NumPy references


def np_conv_valid(x, kernel, bias, stride):
    """Explicit cross-correlation loop: x [H, W, Cin], kernel [k, k, Cin, Cout] -> [Ho, Wo, Cout].

    out[i, j, o] = bias[o] + sum_{a, b, c} x[i * stride + a, j * stride + b, c] * kernel[a, b, c, o]
    """
    k = kernel.shape[0]
    ho, wo = (x.shape[0] - k) // stride + 1, (x.shape[1] - k) // stride + 1
    out = np.zeros((ho, wo, kernel.shape[-1]), np.float64)
    for i in range(ho):
        for j in range(wo):
            acc = bias.astype(np.float64).copy()
            for a in range(k):
                for b in range(k):
                    acc += x[i * stride + a, j * stride + b, :] @ kernel[a, b]
            out[i, j] = acc
    return out


def np_encoder(kind, params, img_uint8):
    """Whole encoder in NumPy on one uint8 image [H, W, C] -> [F], flattened (h, w, c)."""
    x = img_uint8.astype(np.float64) / 255.0
    for i, (_, _, stride) in enumerate(SPECS[kind]):
        p = params["params"][f"conv{i}"]
        kernel, bias = np.asarray(p["kernel"], np.float64), np.asarray(p["bias"], np.float64)
        x = np.maximum(np_conv_valid(x, kernel, bias, stride), 0)
    return x.reshape(-1)


def randomize_biases(params, seed):
    """Replace the (zero-initialised) biases by random values, so the reference checks them too."""
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map_with_path(
        lambda path, p: jnp.asarray(rng.normal(size=p.shape) * 0.1, p.dtype) if path[-1].key == "bias" else p, params
    )


# ----------------------------------------------------------------------------- ConvEncoder


@pytest.mark.parametrize(
    "kind,size,expected",
    [("drq", 84, 39200), ("drq", 64, 25 * 25 * 32), ("nature", 84, 2592), ("nature", 64, 6 * 6 * 32),
     ("drq_small", 32, 5 * 5 * 32), ("drq_small", 84, 18 * 18 * 32)],
)
def test_conv_output_size_matches_hand_computed_and_module(kind, size, expected):
    assert conv_output_size(kind, size, size) == expected
    x = jnp.zeros((1, size, size, 3), jnp.uint8)
    params = jax.eval_shape(ConvEncoder(kind).init, jax.random.key(0), x)
    out = jax.eval_shape(ConvEncoder(kind).apply, params, x)
    assert out.shape == (1, expected) and out.dtype == jnp.float32


def test_conv_output_size_non_square():
    # drq: H 84 -> 41 -> 35; W 64 -> 31 -> 25
    assert conv_output_size("drq", 84, 64) == 35 * 25 * 32
    # nature: H 84 -> 20 -> 9; W 64 -> 15 -> 6
    assert conv_output_size("nature", 84, 64) == 9 * 6 * 32


def test_param_tree_layer_shapes():
    x = jnp.zeros((1, 32, 32, 5), jnp.uint8)
    drq = jax.eval_shape(ConvEncoder("drq").init, jax.random.key(0), x)["params"]
    assert sorted(drq) == ["conv0", "conv1", "conv2", "conv3"]
    assert [drq[f"conv{i}"]["kernel"].shape for i in range(4)] == [(3, 3, 5, 32)] + [(3, 3, 32, 32)] * 3
    assert all(drq[f"conv{i}"]["bias"].shape == (32,) for i in range(4))
    nature = jax.eval_shape(ConvEncoder("nature").init, jax.random.key(0), x)["params"]
    assert sorted(nature) == ["conv0", "conv1"]
    assert nature["conv0"]["kernel"].shape == (8, 8, 5, 16)
    assert nature["conv1"]["kernel"].shape == (4, 4, 16, 32)


@pytest.mark.parametrize("kind", ["drq", "nature"])
def test_init_orthogonal_gain_sqrt2_zero_bias(kind):
    params = jax.jit(ConvEncoder(kind).init)(jax.random.key(1), jnp.zeros((1, 32, 32, 3), jnp.uint8))["params"]
    for layer in params.values():
        k = np.asarray(layer["kernel"], np.float64)
        w = k.reshape(-1, k.shape[-1])  # [k*k*Cin, Cout]
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram, 2.0 * np.eye(len(gram)), atol=1e-5)
        np.testing.assert_array_equal(layer["bias"], 0.0)


def test_first_drq_layer_matches_numpy_stride2_valid():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    enc = ConvEncoder("drq")
    # 9x11 is too small for the whole drq stack: run the encoder on a 15x17 image whose top-left
    # 9x11 block is img, and read conv0's (pre-ReLU) output from the captured intermediates
    big = np.zeros((1, 15, 17, 3), np.uint8)
    big[0, :9, :11] = img
    params = randomize_biases(enc.init(jax.random.key(2), jnp.asarray(big)), 0)
    _, state = enc.apply(params, jnp.asarray(big), capture_intermediates=True, mutable=["intermediates"])
    conv0_out = np.asarray(state["intermediates"]["conv0"]["__call__"][0])
    assert conv0_out.shape == (1, 7, 8, 32)
    conv0 = params["params"]["conv0"]
    ref = np_conv_valid(img.astype(np.float64) / 255.0, np.asarray(conv0["kernel"], np.float64),
                        np.asarray(conv0["bias"], np.float64), stride=2)
    assert ref.shape == (4, 5, 32)
    np.testing.assert_allclose(conv0_out[0, :4, :5], ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind,h,w", [("drq", 17, 18), ("nature", 28, 24), ("drq_small", 19, 16)])
def test_whole_encoder_matches_numpy(kind, h, w):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, size=(2, h, w, 3), dtype=np.uint8)
    enc = ConvEncoder(kind)
    params = randomize_biases(enc.init(jax.random.key(3), jnp.asarray(imgs)), 1)
    out = np.asarray(enc.apply(params, jnp.asarray(imgs)))
    assert out.shape == (2, conv_output_size(kind, h, w))
    for b in range(2):
        np.testing.assert_allclose(out[b], np_encoder(kind, params, imgs[b]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["drq", "nature"])
def test_uint8_and_float_inputs_agree_and_leading_dims(kind):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(2, 3, 32, 32, 3), dtype=np.uint8)
    enc = ConvEncoder(kind)
    params = randomize_biases(enc.init(jax.random.key(4), jnp.asarray(x)), 2)
    out_u8 = np.asarray(enc.apply(params, jnp.asarray(x)))
    # x / 255 as JAX computes it: bit-identical outputs
    out_f = np.asarray(enc.apply(params, jnp.asarray(x).astype(jnp.float32) / 255.0))
    assert out_u8.shape == (2, 3, conv_output_size(kind, 32, 32)) and out_u8.dtype == np.float32
    np.testing.assert_array_equal(out_u8, out_f)
    # x / 255 as NumPy computes it: XLA's CPU division can differ from IEEE division by 1 ulp
    out_np = np.asarray(enc.apply(params, jnp.asarray(x.astype(np.float32) / 255.0)))
    np.testing.assert_allclose(out_u8, out_np, rtol=1e-5, atol=1e-5)
    # and not, say, a float input rescaled a second time or a uint8 input left unscaled
    assert not np.allclose(out_u8, np.asarray(enc.apply(params, jnp.asarray(x, jnp.float32))), atol=1e-3)
    flat = np.asarray(enc.apply(params, jnp.asarray(x.reshape(6, 32, 32, 3))))
    np.testing.assert_allclose(out_u8.reshape(6, -1), flat, rtol=1e-6, atol=1e-6)
    single = np.asarray(enc.apply(params, jnp.asarray(x[1, 2])))
    assert single.shape == (conv_output_size(kind, 32, 32),)
    np.testing.assert_allclose(single, out_u8[1, 2], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind,ok,bad", [("drq", 15, 14), ("nature", 20, 19)])
def test_too_small_image_raises(kind, ok, bad):
    # drq: (15 - 3) // 2 + 1 = 7 -> 5 -> 3 -> 1, while 14 -> 6 -> 4 -> 2 -> 0
    # nature: (20 - 8) // 4 + 1 = 4 -> 1, while 19 -> 3 < 4
    assert conv_output_size(kind, ok, ok) == 32
    jax.eval_shape(ConvEncoder(kind).init, jax.random.key(0), jnp.zeros((1, ok, ok, 3), jnp.uint8))
    with pytest.raises(ValueError, match=f"{bad}x{bad}"):
        conv_output_size(kind, bad, bad)
    with pytest.raises(ValueError, match="too small"):
        jax.eval_shape(ConvEncoder(kind).init, jax.random.key(0), jnp.zeros((1, bad, bad, 3), jnp.uint8))
    with pytest.raises(ValueError, match="too small"):
        conv_output_size(kind, 84, bad)


def test_unknown_kind_raises():
    with pytest.raises(ValueError, match=r"kind='resnet'.*drq.*nature"):
        conv_output_size("resnet", 84, 84)
    with pytest.raises(ValueError, match=r"ConvEncoder\.kind='resnet'"):
        jax.eval_shape(ConvEncoder("resnet").init, jax.random.key(0), jnp.zeros((1, 84, 84, 3), jnp.uint8))


# ----------------------------------------------------------------------------- Projection, DoubleQ


def test_projection_shape_range_and_reference():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 7, 100)).astype(np.float32) * 5
    proj = Projection(feature_dim=16)
    params = jax.jit(proj.init)(jax.random.key(5), jnp.asarray(x))
    out = np.asarray(jax.jit(proj.apply)(params, jnp.asarray(x)))
    assert out.shape == (4, 7, 16) and out.dtype == np.float32
    assert np.all(np.abs(out) < 1)
    p = params["params"]
    h = x.astype(np.float64) @ np.asarray(p["Dense_0"]["kernel"]) + np.asarray(p["Dense_0"]["bias"])
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-6)
    h = h * np.asarray(p["LayerNorm_0"]["scale"]) + np.asarray(p["LayerNorm_0"]["bias"])
    np.testing.assert_allclose(out, np.tanh(h), rtol=1e-4, atol=1e-5)
    default = jax.eval_shape(Projection().init, jax.random.key(0), jnp.zeros((1, 8)))["params"]
    assert default["Dense_0"]["kernel"].shape == (8, 50)


def test_double_q_shape_independent_critics_and_reference():
    rng = np.random.default_rng(4)
    feats = jnp.asarray(rng.normal(size=(5, 12)), jnp.float32)
    act = jnp.asarray(rng.uniform(-1, 1, size=(5, 3)), jnp.float32)
    q_net = DoubleQ(layers=(32, 32))
    params = jax.jit(q_net.init)(jax.random.key(6), feats, act)
    q = np.asarray(jax.jit(q_net.apply)(params, feats, act))
    assert q.shape == (2, 5) and q.dtype == np.float32
    assert not np.allclose(q[0], q[1])
    # each critic is an MLP on concat(features, action) with its slice of the parameters
    x = jnp.concatenate([feats, act], -1)
    for i in range(2):
        p_i = jax.tree_util.tree_map(lambda p: p[i], params["params"]["critics"])
        ref = jax.jit(MLP((32, 32), 1, "relu").apply)({"params": p_i}, x)[:, 0]
        np.testing.assert_allclose(q[i], ref, rtol=1e-5, atol=1e-6)
    k0 = params["params"]["critics"]["Dense_0"]["kernel"]
    assert k0.shape == (2, 15, 32) and not np.allclose(k0[0], k0[1])
    # arbitrary leading dims, more critics
    q3 = DoubleQ(layers=(8,), num_critics=3, layer_norm=True)
    f, a = jnp.ones((2, 4, 6)), jnp.ones((2, 4, 2))
    assert jax.eval_shape(q3.apply, jax.eval_shape(q3.init, jax.random.key(0), f, a), f, a).shape == (3, 2, 4)
    with pytest.raises(ValueError, match="activation='relux'"):
        jax.eval_shape(DoubleQ(layers=(8,), activation="relux").init, jax.random.key(0), f, a)


# ----------------------------------------------------------------------------- random shift


def np_shift(img, dy, dx, pad=4):
    h, w = img.shape[:2]
    return np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge")[dy : dy + h, dx : dx + w]


def test_random_shift_matches_numpy_reference():
    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 256, size=(32, 12, 10, 3), dtype=np.uint8)
    key = jax.random.key(7)
    out = np.asarray(jax.jit(random_shift, static_argnames="pad")(key, jnp.asarray(imgs), pad=4))
    offsets = np.asarray(shift_offsets(key, 32, 4))
    assert out.shape == imgs.shape and out.dtype == np.uint8
    for i in range(32):
        np.testing.assert_array_equal(out[i], np_shift(imgs[i], *offsets[i]))
    # offsets (4, 4) are the identity, and the batch does contain non-identity shifts
    assert np.any(np.any(offsets != 4, axis=1))
    # other pads
    for pad in (1, 2):
        out = np.asarray(random_shift(key, jnp.asarray(imgs), pad))
        off = np.asarray(shift_offsets(key, 32, pad))
        for i in range(32):
            np.testing.assert_array_equal(out[i], np_shift(imgs[i], *off[i], pad=pad))


def test_shift_offsets_uniform_over_all_81_cells():
    n = 20000
    off = np.asarray(shift_offsets(jax.random.key(8), n, 4))
    assert off.shape == (n, 2) and off.dtype == np.int32
    assert off.min() == 0 and off.max() == 8
    counts = np.bincount(off[:, 0] * 9 + off[:, 1], minlength=81)
    assert counts.shape == (81,) and np.all(counts > 0)
    expected = n / 81
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = 80
    assert chi2 < dof + 6 * math.sqrt(2 * dof), chi2
    # dy and dx are not tied to each other
    assert abs(np.corrcoef(off[:, 0], off[:, 1])[0, 1]) < 0.05


def test_samples_in_a_batch_get_independent_shifts():
    # the same image in every slot: outputs differ exactly where the offsets differ
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, size=(10, 10, 1), dtype=np.uint8)
    imgs = np.repeat(img[None], 64, axis=0)
    key = jax.random.key(9)
    out = np.asarray(random_shift(key, jnp.asarray(imgs)))
    off = np.asarray(shift_offsets(key, 64, 4))
    assert len({tuple(o) for o in off}) > 20
    assert len({o.tobytes() for o in out}) > 20
    for i in range(64):
        np.testing.assert_array_equal(out[i], np_shift(img, *off[i]))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int32])
def test_pad_zero_identity_and_dtype(dtype):
    rng = np.random.default_rng(7)
    imgs = jnp.asarray(rng.integers(0, 256, size=(4, 8, 8, 3)).astype(dtype))
    np.testing.assert_array_equal(random_shift(jax.random.key(0), imgs, pad=0), imgs)
    out = random_shift(jax.random.key(0), imgs, pad=2)
    assert out.shape == imgs.shape and out.dtype == imgs.dtype


def test_bad_pad_and_shape_raise():
    imgs = jnp.zeros((2, 8, 8, 3), jnp.uint8)
    with pytest.raises(ValueError, match="pad=-1"):
        random_shift(jax.random.key(0), imgs, pad=-1)
    with pytest.raises(ValueError, match="pad"):
        shift_offsets(jax.random.key(0), 2, -3)
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        random_shift(jax.random.key(0), imgs[0])


def test_random_shift_pair_independent_and_leaves_proprio():
    rng = np.random.default_rng(8)
    pixels = jnp.asarray(rng.integers(0, 256, size=(16, 12, 12, 3), dtype=np.uint8))
    proprio = jnp.asarray(rng.normal(size=(16, 5)), jnp.float32)
    obs = {"pixels": pixels, "proprio": proprio}
    next_obs = {"pixels": pixels, "proprio": proprio + 1}
    key = jax.random.key(10)
    o, n = jax.jit(random_shift_pair)(key, obs, next_obs)
    assert set(o) == set(n) == {"pixels", "proprio"}
    np.testing.assert_array_equal(o["proprio"], proprio)
    np.testing.assert_array_equal(n["proprio"], proprio + 1)
    assert o["pixels"].dtype == jnp.uint8
    # same pixels in, different shifts out: the draws are independent
    assert not np.array_equal(o["pixels"], n["pixels"])
    k_obs, k_next = jax.random.split(key)
    off_o, off_n = np.asarray(shift_offsets(k_obs, 16, 4)), np.asarray(shift_offsets(k_next, 16, 4))
    assert np.any(np.any(off_o != off_n, axis=1))
    for i in range(16):
        np.testing.assert_array_equal(o["pixels"][i], np_shift(np.asarray(pixels[i]), *off_o[i]))
        np.testing.assert_array_equal(n["pixels"][i], np_shift(np.asarray(pixels[i]), *off_n[i]))
    # plain arrays work too, and the input dicts are not mutated
    a, b = random_shift_pair(key, pixels, pixels)
    np.testing.assert_array_equal(a, o["pixels"])
    np.testing.assert_array_equal(b, n["pixels"])
    assert obs["pixels"] is pixels
    with pytest.raises(ValueError, match="pixels"):
        random_shift_pair(key, {"proprio": proprio}, {"proprio": proprio})
