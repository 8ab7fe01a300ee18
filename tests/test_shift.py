"""RubiksShift and the shift baselines against independent references (NumPy loops, an 8-corner
gather implementation, finite differences, the equations written out in NumPy)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vasa.video.shift import (
    fixed_shift_table,
    fixed_spatial_shift,
    normalize_shift_gradients,
    rubiks_shift_2d,
    rubiks_shift_3d,
    shift_optimizer,
    temporal_shift,
)
from vasa.video.shift_aq import (
    anneal_temperature,
    aq_attention,
    aq_hard_attention,
    aq_init,
    aq_temporal_shift,
    aq_to_hard_shift,
    budget_loss,
    nonzero_fraction,
    rubiks_shift_aq,
)

import vasa.video.shift as shift_module


@pytest.fixture(params=["matmul", "gather"])
def formulation(request, monkeypatch):
    """Run a forward test with every pass of the primal (inference) as a banded matrix product
    and again with per-channel gathers (the formulation for axes longer than ``MATMUL_MAX_LEN``,
    and always under autodiff)."""
    monkeypatch.setattr(shift_module, "MATMUL_MAX_LEN", 10**9 if request.param == "matmul" else 0)
    shift_module._rubiks_shift_jit.clear_cache()
    yield request.param
    shift_module._rubiks_shift_jit.clear_cache()


SHAPE = (2, 3, 4, 5, 6)  # N, T, C, H, W
CONFIGS = [(1, 0), (1, 1), (2, 0), (2, 1)]  # (stride, padding)


def out_size(n, stride, padding):
    return (n + 2 * padding - 1) // stride + 1


# ------------------------------------------------------------------ independent references


def numpy_trilinear(x, shift, stride, padding):
    """Equations 6.5-6.6 written as loops: 8 corners with weights prod(dz or 1 - dz), zero outside."""
    n, t_len, c_len, h, w = x.shape
    ho, wo = out_size(h, stride, padding), out_size(w, stride, padding)
    out = np.zeros((n, t_len, c_len, ho, wo))
    for c in range(c_len):
        for t, i, j in itertools.product(range(t_len), range(ho), range(wo)):
            pos = np.array([t + shift[0, c], i * stride - padding + shift[1, c],
                            j * stride - padding + shift[2, c]], np.float64)
            low = np.floor(pos)
            frac = pos - low
            for corner in itertools.product((0, 1), repeat=3):
                ti, hi, wi = (low + corner).astype(int)
                weight = np.prod([frac[k] if corner[k] else 1 - frac[k] for k in range(3)])
                if 0 <= ti < t_len and 0 <= hi < h and 0 <= wi < w:
                    out[:, t, c, i, j] += weight * x[:, ti, c, hi, wi]
    return out


def corner_gather_shift(x, shift, stride, padding):
    """Differentiable 8-corner trilinear shift by direct gathers (no custom VJP, no separability)."""
    n, t_len, c_len, h, w = x.shape
    ho, wo = out_size(h, stride, padding), out_size(w, stride, padding)
    t = jnp.arange(t_len)[:, None, None, None] + shift[0][None, :, None, None]
    i = (jnp.arange(ho) * stride - padding)[None, None, :, None] + shift[1][None, :, None, None]
    j = (jnp.arange(wo) * stride - padding)[None, None, None, :] + shift[2][None, :, None, None]
    c = jnp.arange(c_len)[None, :, None, None]
    out = 0.0
    for corner in itertools.product((0, 1), repeat=3):
        weight, idx, ok = 1.0, [], True
        for pos, size, k in zip((t, i, j), (t_len, h, w), corner):
            low = jnp.floor(pos)
            frac = pos - low
            weight = weight * (frac if k else 1.0 - frac)
            index = (low + k).astype(jnp.int32)
            ok = ok & (index >= 0) & (index < size)
            idx.append(jnp.clip(index, 0, size - 1))
        vals = x[:, idx[0], c, idx[1], idx[2]]  # [N, T, C, Ho, Wo]
        out = out + jnp.where(ok, weight * vals, 0.0)
    return out


def numpy_roll_zero(x, d, axis):
    out = np.zeros_like(x)
    n = x.shape[axis]
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    if abs(d) >= n:
        return out
    if d >= 0:
        src[axis], dst[axis] = slice(d, n), slice(0, n - d)
    else:
        src[axis], dst[axis] = slice(0, n + d), slice(-d, n)
    out[tuple(dst)] = x[tuple(src)]
    return out


def numpy_integer_shift(x, shift):
    out = np.zeros_like(x)
    for c in range(x.shape[2]):
        y = x[:, :, c]
        for d, axis in zip(shift[:, c].astype(int), (1, 2, 3)):
            y = numpy_roll_zero(y, d, axis)
        out[:, :, c] = y
    return out


def random_shift(rng, kind, c=4):
    if kind == "fractional":
        return rng.integers(-2, 3, size=(3, c)) + rng.uniform(0.15, 0.85, size=(3, c))
    if kind == "integer":
        return rng.integers(-3, 4, size=(3, c)).astype(np.float64)
    if kind == "negative":
        return -rng.uniform(0.1, 2.9, size=(3, c))
    if kind == "large":  # beyond the tensor, or overlapping it by a fraction of a cell
        mag = rng.choice([2.5, 4.5, 5.5, 7.25, 9.0], size=(3, c))
        return mag * rng.choice([-1.0, 1.0], size=(3, c))
    raise ValueError(kind)


def loss_weights(rng, shape):
    return rng.normal(size=shape).astype(np.float32)


# ------------------------------------------------------------------ forward


@pytest.mark.parametrize("kind", ["fractional", "integer", "negative", "large"])
@pytest.mark.parametrize("stride,padding", CONFIGS)
def test_forward_matches_numpy_equations(kind, stride, padding, formulation):
    rng = np.random.default_rng(hash((kind, stride, padding)) % 2**32)
    x = rng.normal(size=SHAPE).astype(np.float32)
    shift = random_shift(rng, kind).astype(np.float32)
    y = rubiks_shift_3d(x, shift, stride=stride, padding=padding)
    want = numpy_trilinear(x.astype(np.float64), shift.astype(np.float64), stride, padding)
    assert y.shape == want.shape and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), want, atol=2e-6)


def test_formulation_fixture_switches_the_program(formulation):
    x, s = jnp.ones((1, 2, 3, 5, 4)), jnp.full((3, 3), 0.5)
    text = str(jax.make_jaxpr(lambda x, s: shift_module._forward(x, s, 1, 0, False, matmul=True))(x, s))
    assert ("dot_general" in text) == (formulation == "matmul") and ("gather" in text) == (formulation == "gather")


def test_integer_shift_is_zero_filled_roll_and_sign_convention():
    rng = np.random.default_rng(1)
    x = rng.normal(size=SHAPE).astype(np.float32)
    shift = random_shift(rng, "integer").astype(np.float32)
    np.testing.assert_array_equal(np.asarray(rubiks_shift_3d(x, shift)), numpy_integer_shift(x, shift))
    # positive shift reads from index + 1: content moves towards smaller indices
    s = np.zeros((3, 4), np.float32)
    s[2] = 1.0
    y = np.asarray(rubiks_shift_3d(x, s))
    np.testing.assert_array_equal(y[..., :-1], x[..., 1:])
    np.testing.assert_array_equal(y[..., -1], 0.0)


def test_jit_and_vmap():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3,) + SHAPE).astype(np.float32)
    shifts = rng.normal(size=(3, 3, 4)).astype(np.float32)
    f = jax.jit(jax.vmap(lambda a, s: rubiks_shift_3d(a, s, stride=2, padding=1)))
    got = f(x, shifts)
    for b in range(3):
        np.testing.assert_allclose(got[b], rubiks_shift_3d(x[b], shifts[b], stride=2, padding=1), atol=1e-6)


# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize("stride,padding", CONFIGS)
def test_gradients_match_corner_gather_autodiff(stride, padding):
    rng = np.random.default_rng(10 + stride * 3 + padding)
    x = rng.normal(size=SHAPE).astype(np.float32)
    shift = random_shift(rng, "fractional").astype(np.float32)
    shift[:, 0] = [-0.3, 3.6, -5.4]  # one channel partly outside
    r = loss_weights(rng, (SHAPE[0], SHAPE[1], SHAPE[2], out_size(5, stride, padding), out_size(6, stride, padding)))

    def ours(x, s):
        return jnp.sum(rubiks_shift_3d(x, s, stride=stride, padding=padding) * r)

    def ref(x, s):
        return jnp.sum(corner_gather_shift(x, s, stride, padding) * r)

    np.testing.assert_allclose(ours(x, shift), jax.jit(ref)(x, shift), rtol=1e-5, atol=1e-5)
    gx, gs = jax.jit(jax.grad(ours, (0, 1)))(x, shift)
    rx, rs = jax.jit(jax.grad(ref, (0, 1)))(x, shift)
    np.testing.assert_allclose(gx, rx, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gs, rs, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_gradients_match_finite_differences_float64(stride, padding):
    rng = np.random.default_rng(20 + stride)
    x = rng.normal(size=SHAPE)
    shift = random_shift(rng, "fractional")
    r = rng.normal(size=(2, 3, 4, out_size(5, stride, padding), out_size(6, stride, padding)))
    with jax.enable_x64(True):
        @jax.jit
        def loss(x, s):
            return jnp.sum(rubiks_shift_3d(x, s, stride=stride, padding=padding) * r)

        gx, gs = jax.grad(loss, (0, 1))(jnp.asarray(x), jnp.asarray(shift))
        assert gx.dtype == jnp.float64 and gs.dtype == jnp.float64
        h = 1e-6
        for k, c in itertools.product(range(3), range(4)):
            e = np.zeros_like(shift)
            e[k, c] = h
            fd = (loss(x, shift + e) - loss(x, shift - e)) / (2 * h)
            np.testing.assert_allclose(gs[k, c], fd, rtol=1e-6, atol=1e-6)
        for _ in range(3):  # linear in x: directional derivatives are exact
            v = rng.normal(size=SHAPE)
            fd = (loss(x + v, shift) - loss(x - v, shift)) / 2
            np.testing.assert_allclose(np.sum(np.asarray(gx) * v), fd, rtol=1e-9)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_input_gradient_is_exact_adjoint(stride, padding):
    """<A x, y> == <x, A^T y> with A^T from the custom VJP, for integer and fractional shifts."""
    rng = np.random.default_rng(30)
    x = rng.normal(size=SHAPE).astype(np.float32)
    for kind in ("integer", "fractional", "large"):
        shift = random_shift(rng, kind).astype(np.float32)
        y, vjp = jax.vjp(lambda a: rubiks_shift_3d(a, shift, stride=stride, padding=padding), x)
        ybar = rng.normal(size=y.shape).astype(np.float32)
        (xbar,) = vjp(ybar)
        np.testing.assert_allclose(np.sum(np.asarray(y) * ybar), np.sum(np.asarray(xbar) * x), rtol=1e-5)


def test_integer_shift_gradient_one_sided_is_the_upper_difference():
    """At an integer shift s, ``integer_shift_grad="one_sided"`` gives sum(grad_out * (F(s + e_k) - F(s)))."""
    rng = np.random.default_rng(40)
    x = rng.normal(size=SHAPE).astype(np.float32)
    shift = random_shift(rng, "integer").astype(np.float32)
    shift[:, 0] = 0.0
    r = loss_weights(rng, SHAPE)
    gs = jax.grad(lambda s: jnp.sum(rubiks_shift_3d(x, s, integer_shift_grad="one_sided") * r))(shift)
    base = numpy_integer_shift(x, shift)
    for k, c in itertools.product(range(3), range(4)):
        up = shift.copy()
        up[k, c] += 1
        want = np.sum(r * (numpy_integer_shift(x, up) - base))
        np.testing.assert_allclose(gs[k, c], want, rtol=1e-5, atol=1e-5)
    # the one-sided (upper) difference, not the lower one: they differ on random data
    down = shift.copy()
    down[2, 1] -= 1
    lower = np.sum(r * (base - numpy_integer_shift(x, down)))
    assert abs(float(gs[2, 1]) - lower) > 1e-3


def mixed_integer_shift(rng, c=6):
    """Shifts ``[3, C]`` float64 with exact integers in every pattern that matters: channel 0 all
    integer (0, as after a zero init), channel 1 temporal +1 only (a TSM channel, the spatial
    shifts fractional), channel 2 spatial only, channel 3 negative integers at the edge, the rest
    fractional."""
    s = rng.integers(-2, 3, size=(3, c)) + rng.uniform(0.15, 0.85, size=(3, c))
    s[:, 0] = 0.0
    s[0, 1] = 1.0
    s[1:, 2] = [-1.0, 2.0]
    s[:, 3] = [-2.0, -4.0, 1.0]
    return s


@pytest.mark.parametrize("rule", ["central", "one_sided"])
def test_shift_gradient_at_integer_and_fractional_shifts_matches_numpy_differences(rule):
    """Against finite differences of the NumPy forward (eqs. 6.5-6.6, float64). The forward is
    linear in each shift between integers, so at a fractional shift a small symmetric step is
    exact; at an integer shift the right derivative is (F(s + h) - F(s)) / h and the central
    rule, the mean of the right and left derivatives, is (F(s + h) - F(s - h)) / (2h), h <= 1.
    Channels with only some integer axes check that the other axes' gradients are taken at the
    integer shift itself (the released 3-D kernel reads them one plane back there)."""
    rng = np.random.default_rng(45)
    shape, stride, padding = (2, 3, 6, 5, 6), 2, 1
    x = rng.normal(size=shape)
    shift = mixed_integer_shift(rng)
    out_shape = shape[:3] + (out_size(5, stride, padding), out_size(6, stride, padding))
    r = rng.normal(size=out_shape)

    def f_np(s):
        return np.sum(r * numpy_trilinear(x, s, stride, padding))

    def grad(rule_):
        fn = lambda s: jnp.sum(rubiks_shift_3d(x.astype(np.float32), s, stride=stride, padding=padding,
                                               integer_shift_grad=rule_) * r.astype(np.float32))
        return np.asarray(jax.grad(fn)(shift.astype(np.float32)))

    gs = grad(rule)
    for k, c in itertools.product(range(3), range(shift.shape[1])):
        e = np.zeros_like(shift)
        if shift[k, c] != np.floor(shift[k, c]):
            e[k, c] = 1e-4
            want = (f_np(shift + e) - f_np(shift - e)) / 2e-4
        elif rule == "one_sided":
            e[k, c] = 0.5
            want = (f_np(shift + e) - f_np(shift)) / 0.5
        else:
            e[k, c] = 0.5
            want = (f_np(shift + e) - f_np(shift - e)) / 1.0
        np.testing.assert_allclose(gs[k, c], want, rtol=1e-4, atol=1e-4, err_msg=f"axis {k} channel {c}")
    other = grad("one_sided" if rule == "central" else "central")
    integer = shift == np.floor(shift)
    np.testing.assert_array_equal(gs[~integer], other[~integer])  # fractional shifts: the same gradient
    assert np.abs(gs[integer] - other[integer]).min() > 1e-3  # the option is honoured, on every integer entry


def test_2d_integer_shift_gradient_is_central_by_default():
    """``rubiks_shift_2d`` at integer shifts: 0.5 * (F(s + 1) - F(s - 1)), as the released 2-D kernel."""
    rng = np.random.default_rng(46)
    x = rng.normal(size=(2, 3, 5, 6)).astype(np.float32)
    shift = np.array([[0.0, 1.0, -1.0], [0.0, 0.4, 2.0]], np.float32)
    r = rng.normal(size=x.shape).astype(np.float32)
    gs = jax.grad(lambda s: jnp.sum(rubiks_shift_2d(x, s) * r))(shift)
    as3d = lambda s: np.concatenate([np.zeros((1, 3)), s]).astype(np.float64)
    f_np = lambda s: np.sum(r * numpy_trilinear(x[:, None].astype(np.float64), as3d(s), 1, 0)[:, 0])
    for k, c in itertools.product(range(2), range(3)):
        e = np.zeros_like(shift)
        e[k, c] = 0.25 if shift[k, c] == np.floor(shift[k, c]) else 1e-3
        np.testing.assert_allclose(gs[k, c], (f_np(shift + e) - f_np(shift - e)) / (2 * e[k, c]), rtol=1e-4, atol=1e-4)


def test_quantize_forward_rounds_and_gradient_is_straight_through(formulation):
    rng = np.random.default_rng(50)
    x = rng.normal(size=SHAPE).astype(np.float32)
    shift = random_shift(rng, "fractional").astype(np.float32)
    shift[:, 0] = [0.5, -0.5, 1.49]  # halves round up, as the released kernel
    rounded = np.floor(shift + 0.5)
    r = loss_weights(rng, (2, 3, 4, 3, 3))
    kw = dict(stride=2, padding=0)
    yq = rubiks_shift_3d(x, shift, quantize=True, **kw)
    np.testing.assert_array_equal(yq, rubiks_shift_3d(x, rounded, **kw))

    def loss(x, s, q):
        return jnp.sum(rubiks_shift_3d(x, s, quantize=q, **kw) * r)

    gxq, gsq = jax.grad(loss, (0, 1))(x, shift, True)
    gx_round = jax.grad(loss)(x, rounded, False)
    _, gs_cont = jax.grad(loss, (0, 1))(x, shift, False)
    np.testing.assert_allclose(gxq, gx_round, atol=1e-6)
    np.testing.assert_allclose(gsq, gs_cont, rtol=1e-6, atol=1e-6)


def test_bfloat16_input_keeps_dtype():
    x = jnp.ones((1, 2, 2, 3, 3), jnp.bfloat16)
    s = jnp.full((3, 2), 0.5, jnp.float32)
    y = rubiks_shift_3d(x, s)
    gx, gs = jax.grad(lambda a, b: jnp.sum(rubiks_shift_3d(a, b).astype(jnp.float32)), (0, 1))(x, s)
    assert y.dtype == gx.dtype == jnp.bfloat16 and gs.dtype == jnp.float32


# ------------------------------------------------------------------ 2-D, TSM, fixed shift


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_2d_equals_3d_with_one_frame(stride, padding):
    rng = np.random.default_rng(60)
    x = rng.normal(size=(2, 4, 5, 6)).astype(np.float32)
    s2 = rng.uniform(-2, 2, size=(2, 4)).astype(np.float32)
    s3 = np.concatenate([np.zeros((1, 4), np.float32), s2])
    kw = dict(stride=stride, padding=padding)
    np.testing.assert_allclose(rubiks_shift_2d(x, s2, **kw), rubiks_shift_3d(x[:, None], s3, **kw)[:, 0], atol=1e-6)
    r = rng.normal(size=rubiks_shift_2d(x, s2, **kw).shape).astype(np.float32)
    g2 = jax.grad(lambda a, b: jnp.sum(rubiks_shift_2d(a, b, **kw) * r), (0, 1))(x, s2)
    g3 = jax.grad(lambda a, b: jnp.sum(rubiks_shift_3d(a, b, **kw)[:, 0] * r), (0, 1))(x[:, None], s3)
    np.testing.assert_allclose(g2[0], g3[0][:, 0], atol=1e-5)
    np.testing.assert_allclose(g2[1], g3[1][1:], rtol=1e-5, atol=1e-5)


def test_temporal_shift_matches_numpy_slicing():
    rng = np.random.default_rng(70)
    x = rng.normal(size=(2, 4, 16, 2, 3)).astype(np.float32)
    want = np.zeros_like(x)
    want[:, :-1, :2] = x[:, 1:, :2]
    want[:, 1:, 2:4] = x[:, :-1, 2:4]
    want[:, :, 4:] = x[:, :, 4:]
    np.testing.assert_array_equal(temporal_shift(x, fold_div=8), want)


@pytest.mark.parametrize("channels,kernel_size", [(9, 3), (20, 3), (7, 3), (30, 5)])
def test_fixed_spatial_shift_equals_rubiks_shift_with_table(channels, kernel_size):
    rng = np.random.default_rng(channels)
    x = rng.normal(size=(2, channels, 6, 7)).astype(np.float32)
    table = fixed_shift_table(channels, kernel_size)
    assert table.shape == (2, channels) and table.dtype == jnp.float32
    np.testing.assert_array_equal(fixed_spatial_shift(x, kernel_size), rubiks_shift_2d(x, table))
    x5 = x[:, None].repeat(2, axis=1)
    t3 = jnp.concatenate([jnp.zeros((1, channels)), table])
    np.testing.assert_array_equal(fixed_spatial_shift(x5, kernel_size), rubiks_shift_3d(x5, t3))


def test_fixed_shift_table_groups():
    table = np.asarray(fixed_shift_table(9, 3))
    grid = [(dv, dh) for dv in (-1, 0, 1) for dh in (-1, 0, 1)]
    assert [tuple(table[:, c]) for c in range(9)] == grid
    table = np.asarray(fixed_shift_table(18, 3))
    assert tuple(table[:, 8]) == tuple(table[:, 9]) == (0.0, 0.0)  # centre group unshifted
    assert tuple(table[:, 0]) == (-1.0, -1.0)


# ------------------------------------------------------------------ RubiksShift-AQ


def test_aq_init_is_uniform_on_0_1_as_the_released_code():
    # AttentionShift: weight = torch.rand(c, kernel_size), U[0, 1) (not the dissertation's U[1, 1.05])
    w = np.asarray(aq_init(jax.random.PRNGKey(0), channels=4000, kernel_size=3))
    assert w.shape == (3, 4000) and w.dtype == np.float32
    assert w.min() >= 0.0 and w.max() < 1.0 and w.min() < 0.01 and w.max() > 0.99
    np.testing.assert_allclose([w.mean(), w.std()], [0.5, 1 / np.sqrt(12)], atol=0.01)
    # the dissertation's range (section 6.4.1), offered as scheme="dissertation"
    d = np.asarray(aq_init(jax.random.PRNGKey(0), channels=4000, kernel_size=3, scheme="dissertation"))
    assert d.min() >= 1.0 and d.max() < 1.05 and d.min() < 1.001 and d.max() > 1.049
    with pytest.raises(ValueError, match="scheme='paper' is not one of"):
        aq_init(jax.random.PRNGKey(0), 4, scheme="paper")


def test_aq_attention_normalises_per_channel_over_k():
    w = np.asarray(aq_init(jax.random.PRNGKey(0), channels=6, kernel_size=3))
    assert w.shape == (3, 6)
    for tau in (2.0, 0.3):
        att = np.asarray(aq_attention(w, tau))
        w64 = w.astype(np.float64)
        logits = w64 / (w64.std(axis=0, ddof=1, keepdims=True) + 1e-6) / tau
        want = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
        np.testing.assert_allclose(att, want, rtol=2e-4, atol=1e-7)
        np.testing.assert_allclose(att.sum(0), 1.0, rtol=1e-6)
    hard = np.asarray(aq_attention(w, 1e-3))
    np.testing.assert_array_equal(hard, np.eye(3)[w.argmax(0)].T)
    np.testing.assert_array_equal(aq_hard_attention(w), hard)


def test_anneal_temperature_schedule():
    np.testing.assert_allclose(anneal_temperature(0, 100), 2.0, rtol=1e-6)
    np.testing.assert_allclose(anneal_temperature(50, 100), np.sqrt(2.0 * 1e-3), rtol=1e-5)
    np.testing.assert_allclose(anneal_temperature(100, 100), 1e-3, rtol=1e-5)
    np.testing.assert_allclose(anneal_temperature(500, 100), 1e-3, rtol=1e-5)
    np.testing.assert_allclose(anneal_temperature(-5, 100), 2.0, rtol=1e-6)
    traced = jax.jit(lambda s: anneal_temperature(s, 40))(jnp.int32(10))
    np.testing.assert_allclose(traced, 2.0 * (1e-3 / 2.0) ** 0.25, rtol=1e-5)


def test_aq_temporal_shift_matches_numpy():
    rng = np.random.default_rng(80)
    x = rng.normal(size=(2, 4, 3, 2, 2)).astype(np.float32)
    att = rng.dirichlet(np.ones(5), size=3).T.astype(np.float32)  # [5, 3]
    want = np.zeros_like(x)
    for k, d in enumerate(range(-2, 3)):
        want += att[k][None, None, :, None, None] * numpy_roll_zero(x, d, axis=1)
    np.testing.assert_allclose(aq_temporal_shift(x, att), want, atol=1e-6)


def test_hard_shift_reproduces_low_temperature_aq():
    rng = np.random.default_rng(90)
    x = rng.normal(size=(2, 4, 6, 5, 5)).astype(np.float32)
    w = aq_init(jax.random.PRNGKey(1), 6)
    spatial = rng.uniform(-1.5, 1.5, size=(2, 6)).astype(np.float32)
    hard = aq_to_hard_shift(w, spatial)
    assert hard.shape == (3, 6)
    np.testing.assert_array_equal(hard[0], np.argmax(np.asarray(w), 0) - 1)
    kw = dict(stride=2, padding=1)
    np.testing.assert_allclose(rubiks_shift_aq(x, spatial, w, 1e-3, **kw), rubiks_shift_3d(x, hard, **kw), atol=1e-6)
    # gradients flow to all three parameter kinds at a moderate temperature
    grads = jax.grad(lambda sp, ww: jnp.sum(rubiks_shift_aq(x, sp, ww, 0.5) ** 2), (0, 1))(spatial, w)
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in grads)


def test_budget_loss_formula():
    center = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # all mass on shift 0
    spread = np.array([[0.25, 0.5], [0.5, 0.0], [0.25, 0.5]])  # non-zero mass 0.5 and 1.0
    np.testing.assert_allclose(nonzero_fraction([center]), 0.0)
    np.testing.assert_allclose(nonzero_fraction([spread]), 0.75)
    np.testing.assert_allclose(nonzero_fraction([center, spread]), 0.375)
    np.testing.assert_allclose(budget_loss([center, spread], 0.5), 0.125)
    np.testing.assert_allclose(budget_loss([center, spread], 0.25), 0.125)
    k5 = np.zeros((5, 4))
    k5[2] = 1.0
    k5[:, 0] = [0.1, 0.2, 0.4, 0.2, 0.1]
    np.testing.assert_allclose(nonzero_fraction([k5]), 0.6 / 4, rtol=1e-6)


# ------------------------------------------------------------------ gradient normalisation


def numpy_normalise(g, lam, variant):
    gt, gv, gh = g
    inner = lam * gt**2 if variant == "equation" else (lam * gt) ** 2
    z = np.sqrt(gv**2 + gh**2 + inner)
    return np.stack([lam * gt / z, gv / z, gh / z])


@pytest.mark.parametrize("variant", ["equation", "released"])
def test_normalize_shift_gradients_formula(variant):
    rng = np.random.default_rng(100)
    g3 = rng.normal(size=(3, 7)).astype(np.float32)
    g2 = rng.normal(size=(2, 5)).astype(np.float32)
    tx = normalize_shift_gradients(temporal_lambda=0.25, variant=variant)
    out, _ = tx.update({"a": g3, "b": g2, "z": np.zeros((3, 2), np.float32)}, tx.init(None))
    np.testing.assert_allclose(out["a"], numpy_normalise(g3, 0.25, variant), rtol=1e-5)
    np.testing.assert_allclose(out["b"], g2 / np.linalg.norm(g2, axis=0), rtol=1e-5)
    np.testing.assert_array_equal(out["z"], 0.0)
    if variant == "released":
        np.testing.assert_allclose(np.linalg.norm(out["a"], axis=0), 1.0, rtol=1e-5)


def test_shift_optimizer_routes_parameters():
    rng = np.random.default_rng(110)
    params = {
        "block": {"shift": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32),
                  "kernel": jnp.asarray(rng.normal(size=(4, 4)), jnp.float32)},
        "stem": {"shift": jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)},
    }
    grads = jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), params)
    lr = 0.1
    tx = shift_optimizer(optax.sgd(lr), shift_lr_multiplier=0.01, temporal_lambda=2.0)
    updates, _ = tx.update(grads, tx.init(params), params)
    np.testing.assert_allclose(updates["block"]["kernel"], -lr * grads["block"]["kernel"], rtol=1e-6)
    g = np.asarray(grads["block"]["shift"])
    np.testing.assert_allclose(updates["block"]["shift"], -lr * 0.01 * numpy_normalise(g, 2.0, "equation"), rtol=1e-5)
    g2 = np.asarray(grads["stem"]["shift"])
    np.testing.assert_allclose(updates["stem"]["shift"], -lr * 0.01 * g2 / np.linalg.norm(g2, axis=0), rtol=1e-5)
    # a custom predicate: nothing is a shift -> every leaf gets the plain base update
    tx = shift_optimizer(optax.sgd(lr), is_shift=lambda path, leaf: False)
    updates, _ = tx.update(grads, tx.init(params), params)
    for u, gr in zip(jax.tree.leaves(updates), jax.tree.leaves(grads)):
        np.testing.assert_allclose(u, -lr * gr, rtol=1e-6)


# ------------------------------------------------------------------ errors


def test_errors_name_the_argument():
    x = jnp.zeros(SHAPE)
    s = jnp.zeros((3, 4))
    with pytest.raises(ValueError, match=r"impl='cuda'.*\['auto', 'xla', 'pallas'\]"):
        rubiks_shift_3d(x, s, impl="cuda")
    with pytest.raises(ValueError, match=r"x must be \[N, T, C, H, W\]"):
        rubiks_shift_3d(x[0], s)
    with pytest.raises(ValueError, match=r"shift must be \[3, C\].*C = x.shape\[-3\] = 4.*\(3, 5\)"):
        rubiks_shift_3d(x, jnp.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"shift must be \[3, C\]"):
        rubiks_shift_3d(x, jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="stride=0"):
        rubiks_shift_3d(x, s, stride=0)
    with pytest.raises(ValueError, match="padding=-1"):
        rubiks_shift_3d(x, s, padding=-1)
    with pytest.raises(ValueError, match=r"integer_shift_grad='forward'.*\['central', 'one_sided'\]"):
        rubiks_shift_3d(x, s, integer_shift_grad="forward")
    with pytest.raises(ValueError, match=r"shift must be \[2, C\]"):
        rubiks_shift_2d(x[:, 0], s)
    with pytest.raises(ValueError, match="kernel_size=4"):
        fixed_shift_table(8, 4)
    with pytest.raises(ValueError, match=r"variant='paper'.*\['equation', 'released'\]"):
        normalize_shift_gradients(variant="paper")
    with pytest.raises(ValueError, match=r"\[3, C\] or \[2, C\]"):
        tx = normalize_shift_gradients()
        tx.update({"w": jnp.zeros((4, 4))}, tx.init(None))
    with pytest.raises(ValueError, match=r"temporal_shift: x must be \[N, T, C, H, W\]"):
        temporal_shift(x[0])
    with pytest.raises(ValueError, match=r"attention must be \[K, C\] with K odd and C = 4"):
        aq_temporal_shift(x, jnp.ones((3, 5)) / 3)
    with pytest.raises(ValueError, match=r"spatial_shift must be \[2, C\]|shift must be \[2, C\]"):
        rubiks_shift_aq(x, jnp.zeros((3, 4)), jnp.ones((3, 4)), 1.0)
