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


def released_param_count(tier, variant, num_classes=174):
    """Trainable parameters of the released PyTorch RubiksNet (rubiksnet/models.py, backbone.py),
    counted from its architecture: conv1 3x3 (3 -> w, no bias); per RubiksShiftBlock(c_in, c_out):
    bn1 (2 c_in), conv2 1x1 (c_in c_out), bn2 (2 c_out), the shift, SE (2 c (c // 12), small tier),
    conv3 1x1 (c_out c_out), shortcut 1x1 (c_in c_out) when the stride or width changes; bn_last
    (2 * 8w) and new_fc (8w * classes + classes). The shift: RubiksShift3D [3, c_out] for
    "rubiks3d"; for "rubiks3d-aq" RubiksShift2D [2, c_out] plus AttentionShift's weight
    [c_in, 3] on the block input (its frozen temperature, one scalar per block, is not trained)."""
    width, repeats, se = {"tiny": (54, (3, 4, 6, 3), False), "small": (72, (3, 4, 6, 3), True),
                          "medium": (72, (3, 4, 23, 3), False), "large": (72, (3, 8, 36, 3), False)}[tier]
    n, c_in = 27 * width, width
    for c_out, blocks, first in [(width, 1, 1)] + [(m * width, r, 2) for m, r in zip((1, 2, 4, 8), repeats)]:
        for b in range(blocks):
            n += 2 * c_in + c_in * c_out + 2 * c_out + c_out * c_out
            n += 3 * c_out if variant == "rubiks3d" else 2 * c_out + 3 * c_in
            n += 2 * c_out * (c_out // 12) if se else 0
            n += c_in * c_out if (b == 0 and first == 2) or c_in != c_out else 0
            c_in = c_out
    return n + 2 * c_in + c_in * num_classes + num_classes


# tiny: 1,898,760 / 1,904,106; small: 3,597,366 / 3,604,494; medium: 6,185,622 / 6,202,542;
# large: 8,538,294 / 8,563,854 (rubiks3d / rubiks3d-aq). With AQ at the shift position on
# c_mid channels (5 c_mid per block) the AQ tiers had 1,905,240 / 3,606,006 / 6,204,054 / 8,565,366.
@pytest.mark.parametrize("tier", TIER_NAMES)
def test_param_counts_equal_the_released_models(tier):
    for variant, kw in (("rubiks3d", {}), ("rubiks3d-aq", {"temperature": 2.0})):
        params = _abstract_params(rubiksnet(tier, 174, variant=variant), (1, 8, 32, 32, 3), **kw)
        assert count_params(params) == released_param_count(tier, variant), variant
    block = params["stage2_block0"]  # w -> 2w channels at stride 2: the attention is on the w input channels
    c_in, c_out = block["conv1"]["kernel"].shape[-2:]
    assert block["aq_weights"].shape == (3, c_in) and block["shift"].shape == (2, c_out) and c_in != c_out


def test_aq_block_attends_over_time_on_the_block_input():
    """The AQ block against the released order written out with the same parameters: shortcut from
    relu(bn1(x)), then the temporal attention shift on relu(bn1(x)), conv1, bn2, relu, spatial
    shift, conv2. With ``quantize=True`` the attention is its argmax (the low-temperature limit)."""
    from vasa.video.rubiksnet import RubiksBlock
    from vasa.video.shift import rubiks_shift_2d
    from vasa.video.shift_aq import aq_attention, aq_temporal_shift

    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(4, 6, 6, 4)), jnp.float32)  # [N*T, H, W, C_in], T = 2
    block = RubiksBlock(6, stride=2, variant="rubiks3d-aq", num_frames=2)
    variables = _init(block, x, temperature=1.0)
    p = variables["params"]

    def reference(temperature):
        bn = lambda v, name: v / np.sqrt(1 + 1e-5) * p[name]["scale"] + p[name]["bias"]  # running stats 0, 1
        pre = jax.nn.relu(bn(x, "bn1"))
        shortcut = jnp.einsum("nhwc,cd->nhwd", pre[:, ::2, ::2], p["shortcut"]["kernel"][0, 0])
        video = pre.reshape(2, 2, 6, 6, 4).transpose(0, 1, 4, 2, 3)
        mixed = aq_temporal_shift(video, aq_attention(p["aq_weights"], temperature))
        h = jnp.einsum("ntchw,cd->nthwd", mixed, p["conv1"]["kernel"][0, 0]).reshape(4, 6, 6, 6)
        h = jax.nn.relu(bn(h, "bn2"))
        h = rubiks_shift_2d(h.transpose(0, 3, 1, 2), p["shift"], stride=2).transpose(0, 2, 3, 1)
        return jnp.einsum("nhwc,cd->nhwd", h, p["conv2"]["kernel"][0, 0]) + shortcut

    np.testing.assert_allclose(block.apply(variables, x, temperature=0.7), reference(0.7), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(block.apply(variables, x, quantize=True), reference(1e-4), rtol=1e-4, atol=1e-4)


# thop 0.1.1 (its default rules) on the released PyTorch models, one 8x224x224 clip, 174 classes
THOP_RELEASED = {"tiny": 3.865e9, "small": 6.752e9, "medium": 11.214e9, "large": 15.712e9}


@pytest.mark.parametrize("tier", TIER_NAMES)
def test_flops_match_thop_on_the_released_models_and_table_6_1(tier):
    f = count_flops(tier, num_frames=8, image_size=224, num_classes=174)
    assert f["shift"] == 0
    assert f["total"] == f["conv"] + f["linear"] + f["norm"] + f["pool"]
    assert abs(f["total"] - THOP_RELEASED[tier]) / THOP_RELEASED[tier] < 2e-4, f["total"]
    assert abs(f["total"] - PUBLISHED[tier]["flops"]) / PUBLISHED[tier]["flops"] < 0.01, f["total"]
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


def _traced_ops(model, shape, **kwargs):
    """thop's rules applied to the shapes every Conv / Dense / BatchNorm / SE sees while tracing:
    conv k*k*C_in per output, dense in_features per output, BatchNorm 4 per element, adaptive
    average pool (window + 1) per output (SE's squeeze; the global pool after ``bn_final``)."""
    counts = {"conv": 0, "linear": 0, "norm": 0, "pool": 0}

    def interceptor(next_fun, args, kwargs_, context):
        out = next_fun(*args, **kwargs_)
        if context.method_name != "__call__":
            return out
        m, x = context.module, args[0]
        if isinstance(m, nn.Conv):
            taps = int(np.prod(m.kernel_size)) * x.shape[-1] * m.features
            counts["conv"] += int(np.prod(out.shape[:-1])) * taps
        elif isinstance(m, nn.Dense):
            counts["linear"] += int(np.prod(out.shape[:-1])) * x.shape[-1] * m.features
        elif isinstance(m, nn.BatchNorm):
            counts["norm"] += 4 * int(np.prod(x.shape))
        if isinstance(m, SqueezeExcite) or m.name == "bn_final":
            b, h, w, c = x.shape
            counts["pool"] += b * c * (h * w + 1)
        return out

    def run(x):
        with nn.intercept_methods(interceptor):
            return model.init(KEY, x, **kwargs)

    jax.eval_shape(run, jax.ShapeDtypeStruct(shape, jnp.float32))
    return counts


@pytest.mark.parametrize("tier", ["tiny", "small"])
def test_analytic_flops_equal_traced_count(tier):
    traced = _traced_ops(rubiksnet(tier, 174, num_frames=8), (1, 8, 224, 224, 3))
    f = count_flops(tier, num_frames=8, image_size=224, num_classes=174)
    assert {k: f[k] for k in traced} == traced


def test_analytic_tsm_flops_equal_traced_count():
    traced = _traced_ops(tsm_resnet(50, 174, num_frames=2), (1, 2, 64, 64, 3))
    f = count_flops("tsm-resnet50", num_frames=2, image_size=64, num_classes=174)
    assert {k: f[k] for k in ("conv", "linear", "norm")} == {k: traced[k] for k in ("conv", "linear", "norm")}


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
            return jnp.asarray(rng.uniform(0.0, 1.0, shape), jnp.float32)
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
