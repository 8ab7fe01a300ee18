"""RubiksNet tiers, FLOP counter, inflation and baselines against the published figures."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa.video.flops import count_flops, count_params
from vasa.video.rubiksnet import (
    PUBLISHED,
    Conv3DBlock,
    RubiksNet,
    RubiksShiftLayer,
    SqueezeExcite,
    TSMBlock,
    inflate_2d_to_3d,
    rubiksnet,
    tsm_resnet,
)

KEY = jax.random.PRNGKey(0)
TIER_NAMES = ["tiny", "small", "medium", "large"]


def _abstract_params(model, shape, **kwargs):
    x = jax.ShapeDtypeStruct(shape, jnp.float32)
    return jax.eval_shape(lambda x: model.init(KEY, x, **kwargs), x)["params"]


@pytest.mark.parametrize("tier", TIER_NAMES)
def test_param_counts_match_table_6_1(tier):
    # parameters do not depend on the image size, so a small abstract input is enough
    params = _abstract_params(rubiksnet(tier, 174), (1, 8, 32, 32, 3))
    n = count_params(params)
    assert abs(n - PUBLISHED[tier]["params"]) / PUBLISHED[tier]["params"] < 0.02, n


def test_aq_variant_has_spatial_shift_and_attention_weights():
    params = _abstract_params(rubiksnet("tiny", 174, variant="rubiks3d-aq"), (1, 8, 32, 32, 3),
                              temperature=2.0)
    block = params["stage2_block1"]
    assert block["shift"].shape == (2, 108) and block["aq_weights"].shape == (3, 108)
    n3d = count_params(_abstract_params(rubiksnet("tiny", 174), (1, 8, 32, 32, 3)))
    assert abs(count_params(params) - n3d) / n3d < 0.01


@pytest.mark.parametrize("tier", TIER_NAMES)
def test_flops_match_table_6_1(tier):
    f = count_flops(tier, num_frames=8, image_size=224, num_classes=174)
    assert f["shift"] == 0
    assert f["total"] == f["conv"] + f["linear"] + f["elementwise"]
    assert abs(f["total"] - PUBLISHED[tier]["flops"]) / PUBLISHED[tier]["flops"] < 0.05, f["total"]
    # trilinear interpolation: 8 per shifted element; nothing once the shifts are integers
    assert f["shift_interp"] == 8 * f["shift_elements"] > 0
    assert count_flops(tier, quantize=True)["shift_interp"] == 0


@pytest.mark.parametrize("depth,params,flops", [(18, 11.3e6, 14.6e9), (34, 21.4e6, 29.4e9)])
def test_tsm_baselines_match_table_6_1(depth, params, flops):
    n = count_params(_abstract_params(tsm_resnet(depth, 174), (1, 8, 32, 32, 3)))
    assert abs(n - params) / params < 0.02, n
    total = count_flops(f"tsm-resnet{depth}")["total"]
    assert abs(total - flops) / flops < 0.02, total


def test_tsm_resnet50_matches_table_6_1():
    # 24.3M is ResNet-50 with a Kinetics-400 head; the 33G FLOPs barely depend on the head
    n = count_params(_abstract_params(tsm_resnet(50, 400), (1, 8, 32, 32, 3)))
    assert abs(n - 24.3e6) / 24.3e6 < 0.02, n
    assert abs(count_flops("tsm-resnet50")["total"] - 33e9) / 33e9 < 0.02


def _traced_macs(model, shape, **kwargs):
    """Multiply-adds read off the shapes every Conv / Dense / BatchNorm / SE sees while tracing."""
    counts = {"conv": 0, "linear": 0, "elementwise": 0}

    def interceptor(next_fun, args, kwargs_, context):
        out = next_fun(*args, **kwargs_)
        if context.method_name != "__call__":
            return out
        m, x = context.module, args[0]
        if isinstance(m, nn.Conv):
            taps = int(np.prod(m.kernel_size)) * x.shape[-1] * m.features
            counts["conv"] += int(np.prod(out.shape[:-1])) * taps
        elif isinstance(m, nn.Dense):
            rows = int(np.prod(out.shape[:-1]))
            counts["linear"] += rows * x.shape[-1] * m.features + (rows * m.features if m.use_bias else 0)
        elif isinstance(m, (nn.BatchNorm, SqueezeExcite)):
            counts["elementwise"] += int(np.prod(out.shape))
        return out

    def run(x):
        with nn.intercept_methods(interceptor):
            return model.init(KEY, x, **kwargs)

    jax.eval_shape(run, jax.ShapeDtypeStruct(shape, jnp.float32))
    return counts


@pytest.mark.parametrize("tier", ["tiny", "small"])
def test_analytic_flops_equal_traced_count(tier):
    traced = _traced_macs(rubiksnet(tier, 174, num_frames=8), (1, 8, 224, 224, 3))
    f = count_flops(tier, num_frames=8, image_size=224, num_classes=174)
    assert {k: f[k] for k in traced} == traced


def test_analytic_tsm_flops_equal_traced_count():
    traced = _traced_macs(tsm_resnet(50, 174, num_frames=2), (1, 2, 64, 64, 3))
    f = count_flops("tsm-resnet50", num_frames=2, image_size=64, num_classes=174)
    assert traced["conv"] == f["conv"] and traced["linear"] == f["linear"]


def _init(model, x, **kwargs):
    """Variables with ``model.init``'s tree and shapes (checked by tracing it), filled from NumPy:
    eager ``init`` compiles one random kernel per parameter shape, which dominates test time."""
    abstract = jax.eval_shape(lambda x: model.init(KEY, x, **kwargs), x)
    rng = np.random.default_rng(0)

    def fill(path, leaf):
        name, shape = path[-1].key, leaf.shape
        if name == "shift":
            return jnp.asarray(rng.uniform(-1.0, 1.0, shape), jnp.float32)
        if name == "aq_weights":
            return jnp.asarray(rng.uniform(1.0, 1.05, shape), jnp.float32)
        if name in ("scale", "var"):
            return jnp.ones(shape)
        if name in ("bias", "mean"):
            return jnp.zeros(shape)
        fan_in = int(np.prod(shape[:-1]))
        return jnp.asarray(rng.normal(0.0, np.sqrt(2.0 / fan_in), shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(fill, abstract)


def _small(variant, num_frames=2, use_se=True):
    return RubiksNet(width=8, repeats=(1, 1, 1, 1), num_classes=5, num_frames=num_frames,
                     variant=variant, use_se=use_se, se_reduction=4)


@pytest.mark.parametrize("variant", ["rubiks3d", "rubiks3d-aq"])
def test_forward_shapes(variant):
    kw = {"temperature": 1.0} if variant == "rubiks3d-aq" else {}
    model = _small(variant)
    x = jax.random.normal(KEY, (2, 2, 32, 32, 3))
    variables = _init(model, x, **kw)
    logits = model.apply(variables, x, **kw)
    assert logits.shape == (2, 5) and bool(jnp.all(jnp.isfinite(logits)))
    logits, updates = model.apply(variables, x, train=True, mutable=["batch_stats"], **kw)
    assert logits.shape == (2, 5) and "batch_stats" in updates
    if variant == "rubiks3d":
        assert variables["params"]["stage1_block0"]["shift"].shape == (3, 8)
        assert model.apply(variables, x, quantize=True).shape == (2, 5)
    else:
        with pytest.raises(ValueError, match="temperature"):
            model.apply(variables, x)


def test_tiny_tier_forward_at_two_frames():
    model = rubiksnet("tiny", 7, num_frames=2)
    x = jnp.ones((1, 2, 32, 32, 3))
    variables = _init(model, x)
    assert model.apply(variables, x).shape == (1, 7)
    with pytest.raises(ValueError, match="num_frames=2"):
        model.apply(variables, jnp.ones((1, 3, 32, 32, 3)))


def test_tsm_resnet18_forward():
    model = tsm_resnet(18, 6, num_frames=2)
    x = jax.random.normal(KEY, (1, 2, 32, 32, 3))
    variables = _init(model, x)
    assert model.apply(variables, x).shape == (1, 6)


def test_inflation_copies_spatial_and_sets_temporal_shifts():
    net2d, net3d = _small("rubiks2d", use_se=False), _small("rubiks3d", use_se=False)
    images = jax.random.normal(KEY, (4, 32, 32, 3))
    v2d = _init(net2d, images)
    assert v2d["params"]["stage0_block0"]["shift"].shape == (2, 8)
    assert net2d.apply(v2d, images).shape == (4, 5)

    v3d = inflate_2d_to_3d(v2d, temporal_init="tsm")
    expected = jax.eval_shape(net3d.init, KEY, jnp.zeros((1, 2, 32, 32, 3)))
    assert jax.tree_util.tree_structure(v3d) == jax.tree_util.tree_structure(expected)
    assert jax.tree.map(jnp.shape, v3d) == jax.tree.map(lambda s: s.shape, expected)
    s2, s3 = v2d["params"]["stage3_block0"]["shift"], v3d["params"]["stage3_block0"]["shift"]
    c = s2.shape[1]  # 32 channels: 4 forward, 4 backward, 24 still
    np.testing.assert_array_equal(s3[1:], s2)
    np.testing.assert_array_equal(s3[0], np.r_[np.ones(c // 8), -np.ones(c // 8), np.zeros(c - c // 4)])
    np.testing.assert_array_equal(v3d["params"]["head"]["kernel"], v2d["params"]["head"]["kernel"])

    vu = inflate_2d_to_3d(v2d["params"], temporal_init="uniform", key=jax.random.PRNGKey(1))
    t = vu["stage3_block0"]["shift"][0]
    np.testing.assert_array_equal(vu["stage3_block0"]["shift"][1:], s2)
    assert bool(jnp.all(jnp.abs(t) <= 1.0)) and float(jnp.std(t)) > 0.2
    assert not np.allclose(vu["stage0_block0"]["shift"][0], vu["stage1_block0"]["shift"][0])

    # with a zero temporal row the 3-D network is the 2-D one per frame, logits averaged over T
    zero_t = jax.tree_util.tree_map_with_path(
        lambda p, a: a.at[0].set(0.0) if p[-1].key == "shift" else a, v3d)
    video = images.reshape(2, 2, 32, 32, 3)
    per_frame = net2d.apply(v2d, images).reshape(2, 2, 5).mean(axis=1)
    np.testing.assert_allclose(net3d.apply(zero_t, video), per_frame, rtol=1e-4, atol=1e-5)

    with pytest.raises(ValueError, match="key"):
        inflate_2d_to_3d(v2d, temporal_init="uniform")
    with pytest.raises(ValueError, match=r"\['tsm', 'uniform'\]"):
        inflate_2d_to_3d(v2d, temporal_init="gaussian")


def test_unknown_names_list_valid_ones():
    with pytest.raises(ValueError, match=r"tier='huge'.*\['tiny', 'small', 'medium', 'large'\]"):
        rubiksnet("huge", 174)
    with pytest.raises(ValueError, match=r"variant='rubiks4d'.*'rubiks3d', 'rubiks3d-aq', 'rubiks2d'"):
        rubiksnet("tiny", 174, variant="rubiks4d")
    with pytest.raises(ValueError, match=r"depth=101.*\[18, 34, 50\]"):
        tsm_resnet(101, 174)
    with pytest.raises(ValueError, match="tsm-resnet18"):
        count_flops("resnet18")


def test_efficiency_blocks_keep_shape_and_scale_as_in_figure_6_7():
    x = jax.random.normal(KEY, (1, 2, 8, 8, 8))  # (N, T, H, W, C); (N, T, C, H, W) = (1, 2, 8, 8, 8)
    sizes = {}
    for block in (Conv3DBlock(8), TSMBlock(8), RubiksShiftLayer(8)):
        variables = _init(block, x)
        assert block.apply(variables, x).shape == (1, 2, 8, 8, 8)
        sizes[type(block).__name__] = count_params(variables["params"])
    # 27 C^2 vs 9 C^2 vs C^2 (+3C shifts): the ~25x and ~8x of section 6.5.3
    assert sizes == {"Conv3DBlock": 27 * 64, "TSMBlock": 9 * 64, "RubiksShiftLayer": 64 + 24}
