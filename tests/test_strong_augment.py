"""SECANT's strong augmentations against NumPy references of their definitions.

Each operator's output is recomputed in NumPy (float64) from the per-sample draws it reports
(``draw_params``); the draws themselves are checked by statistics over many samples; the
combination sampler by a chi-square test and by equality with the operators it picks.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vasa.distill import augment as A
from vasa.distill.augment import COMBOS, OPERATORS, StrongAugConfig, draw_params, operator_choices, strong_augment

B, H, W, K = 24, 16, 16, 3  # tiny batches: 16x16 RGB, stacks of 3 frames
ALL = COMBOS["combo2"] + ("gaussian", "impulse", "color_map", "none")
# one config (and one batch shape) for most tests, so the jitted operators compile once
CFG = StrongAugConfig(ops=ALL, cutout_side=(0.2, 0.6), cutmix_side=(0.2, 0.6), crop_pad=3)


def images(dtype, seed=0, b=B, h=H, w=W, k=K):
    x = np.random.default_rng(seed).integers(0, 256, (b, h, w, 3 * k), dtype=np.uint8)
    return jnp.asarray(x) if dtype == jnp.uint8 else jnp.asarray(x / 255.0, dtype)


def bank(n=5, h=H, w=W, seed=1):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8))


def frame_identical(dtype, seed=2):
    one = images(dtype, seed, k=1)
    return jnp.tile(one, (1, 1, 1, K))


# ----------------------------------------------------------------------------- NumPy references
# x: float64 [H, W, k, 3] in the image's scale (255 for uint8, 1 for float); p: one sample's draws.


def np_conv_same(x, kernel, mode="constant"):
    """Zero- (or edge-) padded 3x3 cross-correlation per frame, explicit loops over taps and channels."""
    h, w, k, _ = x.shape
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0), (0, 0)), mode=mode)
    out = np.zeros_like(x)
    for a in range(3):
        for b in range(3):
            for c in range(3):
                for o in range(3):
                    out[..., o] += xp[a:a + h, b:b + w, :, c] * kernel[a, b, c, o]
    return out


def np_reference(op, x, p, scale, bank_np, pad):
    out = x.copy()
    if op == "cutout_color":
        y0, x0, bh, bw = p["box"]
        out[y0:y0 + bh, x0:x0 + bw] = p["color"] * scale
    elif op == "cutmix":
        y0, x0, bh, bw = p["box"]
        out[y0:y0 + bh, x0:x0 + bw] = bank_np[p["index"], y0:y0 + bh, x0:x0 + bw, None, :] / 255.0 * scale
    elif op == "conv":
        out = np.clip(np_conv_same(x, p["kernel"]), 0, scale)
    elif op == "rad_conv":  # RAD's data_augs.random_conv: sigmoid(conv2d(replicate_pad(x / 255), randn)) * 255
        out = scale / (1 + np.exp(-np_conv_same(x / scale, p["kernel"], mode="edge")))
    elif op == "color_map":  # sigmoid(sin(u W + phi) A' + b) * range per pixel, A' = gain / sqrt(K / 2) * A
        k = p["phase"].shape[0]
        u = x / scale
        z = np.zeros(x.shape[:-1] + (k,))
        for j in range(k):  # explicit sums over the colour channels: no shared matmul code with the operator
            z[..., j] = np.sin(sum(u[..., c] * p["freq"][c, j] for c in range(3)) + p["phase"][j])
        logits = np.stack([sum(z[..., j] * p["mix"][j, o] for j in range(k)) for o in range(3)], -1)
        out = scale / (1 + np.exp(-(logits + p["bias"])))
    elif op == "gaussian":
        out = np.clip(x + p["sigma"] * scale * p["noise"][:, :, None, :], 0, scale)
    elif op == "impulse":
        hit, salt = (p["hit"] < p["amount"])[:, :, None, :], (p["salt"] < 0.5)[:, :, None, :]
        out = np.where(hit & salt, scale, np.where(hit, 0.0, x))
    elif op == "mixup":
        out = p["alpha"] * x + (1 - p["alpha"]) * bank_np[p["index"]][:, :, None, :] / 255.0 * scale
    elif op == "crop":
        dy, dx = p["offset"]
        padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0), (0, 0)), mode="edge")
        out = padded[dy:dy + x.shape[0], dx:dx + x.shape[1]]
    return out


def reference_batch(op, imgs, params, config, bank_np):
    imgs = np.asarray(imgs)
    scale = 255.0 if imgs.dtype == np.uint8 else 1.0
    b, h, w, c = imgs.shape
    x = imgs.astype(np.float64).reshape(b, h, w, c // 3, 3)
    params = jax.tree.map(np.asarray, params)
    out = np.stack([np_reference(op, x[i], {k: v[i] for k, v in params.items()}, scale, bank_np, config.crop_pad)
                    for i in range(b)]).reshape(imgs.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8) if imgs.dtype == np.uint8 else out


def assert_close_to_reference(got, ref):
    got = np.asarray(got)
    if got.dtype == np.uint8:
        diff = np.abs(got.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (diff.max(), (diff > 0).mean())  # float32 vs 64 at .5
    else:
        np.testing.assert_allclose(got, ref, atol=1e-5)


# ----------------------------------------------------------------------------- each operator


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("op", ["cutout_color", "conv", "rad_conv", "color_map", "gaussian", "impulse", "mixup", "cutmix",
                                "crop"])
def test_operator_matches_numpy_reference(op, dtype):
    x, bk, key = images(dtype), bank(), jax.random.key(3)
    got = OPERATORS[op](key, x, CFG, bk)
    assert got.shape == x.shape and got.dtype == x.dtype
    params = draw_params(op, key, x, CFG, bk)
    assert_close_to_reference(got, reference_batch(op, x, params, CFG, np.asarray(bk)))
    assert not np.array_equal(np.asarray(got), np.asarray(x))


def test_conv_kernels_differ_per_sample_and_pixels_clip():
    x = images(jnp.uint8)
    kernels = np.asarray(draw_params("conv", jax.random.key(0), x, CFG)["kernel"])
    assert kernels.shape == (B, 3, 3, 3, 3) and len({k.tobytes() for k in kernels}) == B
    y = np.asarray(A.random_conv(jax.random.key(0), x, CFG))
    assert (y == 0).mean() > 0.2  # Xavier weights are zero-mean: many outputs fall below 0 and clip
    rad = np.asarray(draw_params("rad_conv", jax.random.key(0), x, CFG)["kernel"])
    np.testing.assert_allclose(rad, kernels / CFG.conv_weight_std * CFG.rad_conv_weight_std, rtol=1e-5)  # N(0, 1)


def test_color_map_is_a_function_of_colour_that_separates_distant_colours():
    """One colour function per observation: equal input colours give equal outputs anywhere in the
    image; over many draws, nearby colours keep correlated outputs and distant ones do not."""
    n = 4000
    base = np.random.default_rng(5).uniform(0.1, 0.9, (n, 3))
    direction = np.random.default_rng(6).normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    cols = [base, base + 0.02 * direction, base + 0.8 * direction]  # three pixels per observation
    x = np.zeros((n, 2, 2, 3), np.float32)
    x[:, 0, 0], x[:, 0, 1], x[:, 1, 0], x[:, 1, 1] = cols[0], cols[1], cols[2], cols[0]
    y = np.asarray(A.color_map(jax.random.key(17), jnp.asarray(x), CFG))
    np.testing.assert_array_equal(y[:, 0, 0], y[:, 1, 1])  # same colour, same output, wherever it is
    dy = y - y.mean(0)
    near = np.mean([np.corrcoef(dy[:, 0, 0, c], dy[:, 0, 1, c])[0, 1] for c in range(3)])
    far = np.mean([np.corrcoef(dy[:, 0, 0, c], dy[:, 1, 0, c])[0, 1] for c in range(3)])
    assert near > 0.95 and far < 0.3, (near, far)
    assert y.std(0).min() > 0.25  # outputs spread over the range, not washed out to grey
    p = jax.tree.map(np.asarray, draw_params("color_map", jax.random.key(18), shape(n, 2, 2)))
    assert abs(p["freq"].std() - CFG.color_map_freq) < 0.03 * CFG.color_map_freq and abs(p["freq"].mean()) < 0.03
    assert p["phase"].min() >= 0 and p["phase"].max() < 2 * np.pi and abs(p["phase"].mean() - np.pi) < 0.02
    mix_std = CFG.color_map_gain / np.sqrt(A.COLOR_MAP_FEATURES / 2)  # the gain, over the sines' std sqrt(K / 2)
    assert abs(p["mix"].std() - mix_std) < 0.01 * mix_std and abs(p["mix"].mean()) < 0.01
    assert abs(p["bias"].std() - 1) < 0.03


# ----------------------------------------------------------------------------- parameter ranges


def shape(b, h, w, k=K):
    return jax.ShapeDtypeStruct((b, h, w, 3 * k), jnp.uint8)


@pytest.mark.parametrize("op", ["cutout_color", "cutmix"])
def test_rectangle_sides_follow_rad_at_84_px(op):
    n = 10_000
    p = jax.tree.map(np.asarray, draw_params(op, jax.random.key(1), shape(n, 84, 84), bank=bank(7, 84, 84)))
    y, x, bh, bw = p["box"].T
    for side in (bh, bw):
        assert side.min() == 10 and side.max() == 29  # RAD: np.random.randint(10, 30), 10..29 px at 84 px
        assert set(np.unique(side)) == set(range(10, 30))
        assert abs(side.mean() - 19.5) < 0.25  # 4 standard errors
    assert abs(np.corrcoef(bh, bw)[0, 1]) < 0.04  # the two sides are drawn independently
    assert (y >= 0).all() and (x >= 0).all() and (y + bh <= 84).all() and (x + bw <= 84).all()
    assert y.min() == 0 and x.min() == 0 and (y + bh).max() == 84 and (x + bw).max() == 84  # corners reach both sides
    if op == "cutout_color":
        assert p["color"].min() >= 0 and p["color"].max() < 1 and np.allclose(p["color"].mean(0), 0.5, atol=0.012)
    else:
        assert np.bincount(p["index"], minlength=7).min() > n / 7 * 0.9


def test_side_scales_with_image_size():
    p = draw_params("cutout_color", jax.random.key(2), shape(4000, 168, 42))["box"]
    bh, bw = np.asarray(p[:, 2]), np.asarray(p[:, 3])
    assert (bh.min(), bh.max()) == (20, 58) and (bw.min(), bw.max()) == (5, 15)  # 10/84 and 29/84 of the side


def test_scalar_draws_within_their_ranges():
    n = 10_000
    p = jax.tree.map(np.asarray, draw_params("mixup", jax.random.key(4), shape(n, 8, 8), bank=bank(4, 8, 8)))
    assert p["alpha"].min() >= 0.2 and p["alpha"].max() <= 0.6 and abs(p["alpha"].mean() - 0.4) < 0.005
    assert abs(p["alpha"].std() - 0.4 / np.sqrt(12)) < 0.005  # uniform, not concentrated
    assert np.bincount(p["index"], minlength=4).min() > n / 4 * 0.9
    g = jax.tree.map(np.asarray, draw_params("gaussian", jax.random.key(5), shape(n, 2, 2)))
    assert g["sigma"].min() >= 0.08 and g["sigma"].max() <= 0.38 and abs(g["sigma"].mean() - 0.23) < 0.005
    assert abs(g["noise"].std() - 1) < 0.01 and abs(g["noise"].mean()) < 0.01
    c = np.asarray(draw_params("conv", jax.random.key(6), shape(n // 4, 2, 2))["kernel"])
    assert abs(c.std() - np.sqrt(2 / 54)) < 0.002 and abs(c.mean()) < 0.002  # Xavier normal, 3x3, 3 -> 3
    o = np.asarray(draw_params("crop", jax.random.key(7), shape(n, 2, 2))["offset"])
    assert o.min() == 0 and o.max() == 8 and np.bincount(o.ravel()).min() > 2 * n / 9 * 0.9


def test_impulse_hits_the_drawn_fraction_half_salt():
    x = jnp.full((400, H, W, 3 * K), 128, jnp.uint8)
    key = jax.random.key(8)
    y = np.asarray(A.impulse_noise(key, x)).reshape(400, -1)
    amount = np.asarray(draw_params("impulse", key, x)["amount"])
    assert amount.min() >= 0.03 and amount.max() <= 0.27 and abs(amount.mean() - 0.15) < 0.01
    hit = (y != 128).mean(1)
    assert np.abs(hit - amount).max() < 0.07 and np.corrcoef(hit, amount)[0, 1] > 0.98
    assert set(np.unique(y)) == {0, 128, 255} and abs((y == 255).sum() / (y != 128).sum() - 0.5) < 0.01


# ----------------------------------------------------------------------------- identities, dtypes, stacks


IDENTITY = StrongAugConfig(ops=("cutout_color", "cutmix", "mixup", "crop", "gaussian", "impulse", "none"),
                           cutout_side=(0.0, 0.0), cutmix_side=(0.0, 0.0), mixup_alpha=(1.0, 1.0), crop_pad=0,
                           gaussian_sigma=(0.0, 0.0), impulse_amount=(0.0, 0.0))


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.bfloat16], ids=["uint8", "bfloat16"])
def test_degenerate_parameters_are_the_identity(dtype):
    """Zero-size cutout and cutmix, alpha = 1 mixup, pad 0 crop, sigma 0, amount 0, none."""
    x, key = images(dtype), jax.random.key(9)
    assert set(np.asarray(operator_choices(key, B, IDENTITY))) == set(range(len(IDENTITY.ops)))
    y = strong_augment(key, x, IDENTITY, bank())
    assert y.dtype == x.dtype and np.array_equal(np.asarray(y), np.asarray(x))
    for op in ("cutout_color", "mixup", "crop"):  # and each operator on its own
        assert np.array_equal(np.asarray(OPERATORS[op](key, x, IDENTITY, bank())), np.asarray(x)), op


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32], ids=["uint8", "float32"])
def test_combo_keeps_dtype_shape_range_and_frames(dtype):
    x = frame_identical(dtype, 3)
    y = strong_augment(jax.random.key(10), x, CFG, bank())
    assert y.shape == x.shape and y.dtype == x.dtype
    if dtype == jnp.float32:
        assert float(y.min()) >= 0 and float(y.max()) <= 1
    y = np.asarray(y).reshape(B, H, W, K, 3)
    assert all(np.array_equal(y[..., f, :], y[..., 0, :]) for f in range(K))  # one draw per stack


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32], ids=["uint8", "float32"])
@pytest.mark.parametrize("op", ALL)
def test_one_draw_per_stack(op, dtype):
    """Frame-identical input stays frame-identical: every frame got the same draw."""
    x = frame_identical(dtype)
    y = np.asarray(OPERATORS[op](jax.random.key(12), x, CFG, bank())).reshape(B, H, W, K, 3)
    for f in range(1, K):
        np.testing.assert_array_equal(y[..., f, :], y[..., 0, :])
    if op != "none":
        assert not np.array_equal(y[..., 0, :], np.asarray(x)[..., :3])


# ----------------------------------------------------------------------------- the combination sampler


@pytest.mark.parametrize("ops", [COMBOS["combo1"], COMBOS["combo2"], ("none", "conv", "conv")])
def test_operator_frequencies_are_uniform_over_the_pool(ops):
    n = 30_000
    c = np.asarray(operator_choices(jax.random.key(14), n, StrongAugConfig(ops=ops)))
    counts = np.bincount(c, minlength=len(ops))
    assert len(counts) == len(ops)
    assert stats.chisquare(counts).pvalue > 1e-3, counts
    # the test has power: moving 10 % of one operator's share to another is refused at this size
    biased = counts.copy()
    biased[0] -= n // len(ops) // 10
    biased[-1] += n // len(ops) // 10
    assert stats.chisquare(biased).pvalue < 1e-6


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.float32], ids=["uint8", "float32"])
def test_strong_augment_applies_the_chosen_operator_to_each_observation(dtype):
    x, bk, key = images(dtype), bank(), jax.random.key(15)
    got = np.asarray(strong_augment(key, x, CFG, bk))
    choices = np.asarray(operator_choices(key, B, CFG))
    assert len(set(choices)) >= len(ALL) - 1
    k_params = jax.random.split(key)[1]
    each = {op: np.asarray(OPERATORS[op](k_params, x, CFG, bk)) for op in ALL}
    expected = np.stack([each[ALL[c]][i] for i, c in enumerate(choices)])
    assert_close_to_reference(got, expected)


def test_dict_observations_change_only_pixels():
    obs = {"pixels": images(jnp.uint8), "proprio": jnp.arange(B * 4.0).reshape(B, 4)}
    out = strong_augment(jax.random.key(16), obs, CFG, bank())
    assert set(out) == {"pixels", "proprio"} and out["proprio"] is obs["proprio"]
    np.testing.assert_array_equal(out["pixels"], strong_augment(jax.random.key(16), obs["pixels"], CFG, bank()))
    np.testing.assert_array_equal(A.mixup(jax.random.key(16), obs, CFG, bank())["pixels"],
                                  A.mixup(jax.random.key(16), obs["pixels"], CFG, bank()))
    pool = StrongAugConfig(ops=("none", "crop"))  # jit-able from user code, config static
    jitted = jax.jit(strong_augment, static_argnames="config")(jax.random.key(16), obs, pool)
    np.testing.assert_array_equal(jitted["pixels"], strong_augment(jax.random.key(16), obs, pool)["pixels"])


def test_recipes_are_the_thesis_table():
    assert COMBOS == {"combo1": ("cutout_color", "conv", "mixup", "crop"),
                      "combo2": ("cutout_color", "conv", "mixup", "cutmix", "crop"),
                      "combo3": ("cutout_color", "conv", "mixup")}
    assert StrongAugConfig().ops == COMBOS["combo1"]
    assert StrongAugConfig.recipe("combo3", crop_pad=2) == StrongAugConfig(ops=COMBOS["combo3"], crop_pad=2)


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize("change, message", [
    (dict(ops=("blur",)), "StrongAugConfig.ops=('blur',) is not allowed: it must be a tuple whose items are each one of"),
    (dict(ops=()), "StrongAugConfig.ops=() is not allowed: it must be a tuple whose items are each one of"),
    (dict(ops=["conv"]), "StrongAugConfig.ops=['conv'] is not allowed"),
    (dict(mixup_alpha=(0.6, 0.2)), "StrongAugConfig.mixup_alpha=(0.6, 0.2) is not allowed: it must be a (low, high) pair"),
    (dict(mixup_alpha=(0.2, 1.5)), "mixup_alpha=(0.2, 1.5) is not allowed: it must be a tuple whose items are each a number in [0, 1]"),
    (dict(cutout_side=(0.1, float("nan"))), "StrongAugConfig.cutout_side=(0.1, nan)"),
    (dict(gaussian_sigma=(-0.1, 0.2)), "StrongAugConfig.gaussian_sigma=(-0.1, 0.2)"),
    (dict(conv_weight_std=0.0), "StrongAugConfig.conv_weight_std=0.0 is not allowed: it must be a number > 0"),
    (dict(color_map_freq=float("inf")), "StrongAugConfig.color_map_freq=inf is not allowed: it must be a finite number"),
    (dict(color_map_gain=-1.0), "StrongAugConfig.color_map_gain=-1.0 is not allowed: it must be a number > 0"),
    (dict(crop_pad=-1), "StrongAugConfig.crop_pad=-1 is not allowed: it must be an integer >= 0"),
    (dict(crop_pad=2.0), "StrongAugConfig.crop_pad=2.0 is not allowed: it must be an integer"),
])
def test_config_errors_name_field_value_and_what_is_allowed(change, message):
    config = dataclasses.replace(StrongAugConfig(), **change)
    with pytest.raises(ValueError) as e:
        config.validate()
    assert message in str(e.value), str(e.value)
    with pytest.raises(ValueError, match="StrongAugConfig"):
        jax.eval_shape(lambda k, x: strong_augment(k, x, config, bank()), jax.random.key(0), images(jnp.uint8))


def test_input_errors():
    x, key = images(jnp.uint8), jax.random.key(0)
    with pytest.raises(ValueError, match=r"blend in distractor images: pass bank=uint8 \[N, 16, 16, 3\]"):
        strong_augment(key, x)
    with pytest.raises(ValueError, match=r"\['cutmix'\]"):
        A.cutmix(key, x)
    jax.eval_shape(lambda k, x: strong_augment(k, x, StrongAugConfig(ops=("conv", "crop"))), key, x)  # no bank needed
    with pytest.raises(ValueError, match=r"bank images are 32x32 but the observations are 16x16; .*resize_bank"):
        strong_augment(key, x, bank=bank(h=32, w=32))
    with pytest.raises(ValueError, match=r"\[B, H, W, 3k\]"):
        strong_augment(key, x[..., :4], StrongAugConfig(ops=("crop",)))
    with pytest.raises(ValueError, match="uint8 or floating"):
        strong_augment(key, x.astype(jnp.int32), StrongAugConfig(ops=("crop",)))
    with pytest.raises(ValueError, match="unknown augmentation recipe 'combo4'; valid: combo1, combo2, combo3"):
        StrongAugConfig.recipe("combo4")


def test_resize_bank():
    flat = jnp.full((2, 32, 24, 3), 77, jnp.uint8)
    small = A.resize_bank(flat, (16, 16))
    assert small.shape == (2, 16, 16, 3) and small.dtype == jnp.uint8 and bool((small == 77).all())
    jax.eval_shape(lambda k, x: strong_augment(k, x, StrongAugConfig(ops=("mixup",)), small), jax.random.key(0),
                   images(jnp.uint8))


# ----------------------------------------------------------------------------- SAC / DDPG option


def test_offpolicy_augment_choice():
    from vasa.algos import offpolicy, sac

    obs, key = images(jnp.uint8), jax.random.key(17)
    nxt = images(jnp.uint8, seed=5)
    crop = sac.SACConfig(pixels=True)
    assert crop.augment == "crop"
    for got, want in zip(offpolicy.augment_transition(crop, key, obs, nxt), A.random_shift_pair(key, obs, nxt, 4)):
        np.testing.assert_array_equal(got, want)  # the default is DrQ's shift, bit for bit
    for cfg in (dataclasses.replace(crop, augment="none"), dataclasses.replace(crop, augment_pad=0),
                dataclasses.replace(crop, augment="conv", pixels=False)):
        got = offpolicy.augment_transition(cfg, key, obs, nxt)
        assert got[0] is obs and got[1] is nxt
    conv = dataclasses.replace(crop, augment="conv")
    conv.validate()
    a, b = offpolicy.augment_transition(conv, key, obs, obs)
    np.testing.assert_array_equal(a, b)  # one kernel per transition: equal inputs stay equal
    a, b = offpolicy.augment_transition(conv, key, obs, nxt)
    kernels = jax.tree.map(np.asarray, draw_params("conv", key, obs))
    config = StrongAugConfig(ops=("conv",))
    assert_close_to_reference(a, reference_batch("conv", obs, kernels, config, None))
    assert_close_to_reference(b, reference_batch("conv", nxt, kernels, config, None))
    with pytest.raises(ValueError, match="SACConfig.augment='shift' is not allowed: it must be one of crop, conv, none"):
        dataclasses.replace(crop, augment="shift").validate()
