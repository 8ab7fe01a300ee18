"""Pallas RubiksShift kernels (``pallas_kernels.rubiks_shift``) in interpret mode against the
pure-JAX reference (``vasa.video.shift``, itself tested against NumPy loops in test_shift.py):
outputs and both gradients on random shapes (H*W not a power of two, C not a multiple of
the channel block, negative, large and exactly integer shifts, strides, padding), quantized
mode, bfloat16, the 2-D variant, guard regions around the output, the dispatcher, errors,
and that the GPU path lowers to Triton (checked on CPU by exporting for CUDA)."""

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pallas_kernels.rubiks_shift as pk
from vasa.video import shift as vs

F32_TOL = 1e-5


def _shift_values(rng, kind, c):
    if kind == "fractional":
        return rng.uniform(-2.5, 2.5, size=(3, c))
    if kind == "large":  # beyond the tensor in some channels
        return rng.uniform(-12, 12, size=(3, c))
    if kind == "integer":
        return rng.integers(-2, 3, size=(3, c)).astype(np.float64)
    raise ValueError(kind)


def _inputs(seed, shape, kind, dtype=jnp.float32):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.normal(size=shape), dtype)
    s = jnp.asarray(_shift_values(rng, kind, shape[2]), jnp.float32)
    return rng, x, s


def _value_and_grads(fn, x, s, cot):
    out = fn(x, s)
    grads = jax.grad(lambda x, s: jnp.sum(cot * fn(x, s).astype(jnp.float32)), (0, 1))(x, s)
    return out, grads


def _assert_close(a, b, tol, what):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(1.0, float(np.abs(b).max()))
    err = float(np.abs(a - b).max())
    assert err <= tol * scale, f"{what}: max error {err:.3g} > {tol} * {scale:.3g}"


CASES = [
    # shape (N, T, C, H, W), stride, padding, quantize, shift kind, block
    ((2, 3, 5, 7, 9), 1, 0, False, "fractional", None),
    ((1, 4, 37, 6, 10), 2, 1, False, "fractional", pk.Block(8, 4, 16)),  # C % 8 != 0, H*W = 60
    ((1, 3, 4, 5, 6), 1, 0, False, "large", None),
    ((2, 3, 6, 5, 7), 1, 0, False, "integer", None),
    ((1, 3, 5, 9, 7), 3, 2, False, "fractional", pk.Block(2, 2, 4)),
    ((2, 3, 5, 7, 9), 1, 0, True, "fractional", None),
    ((1, 4, 7, 8, 6), 2, 0, True, "large", pk.Block(4, 2, 4)),
]


@pytest.mark.parametrize("shape,stride,padding,quantize,kind,block", CASES)
def test_kernels_match_reference_values_and_gradients(shape, stride, padding, quantize, kind, block):
    rng, x, s = _inputs(hash((shape, stride, kind)) % 2**31, shape, kind)
    ref = lambda x, s: vs.rubiks_shift_3d(x, s, stride=stride, padding=padding, quantize=quantize, impl="xla")
    pal = lambda x, s: pk.rubiks_shift_3d(x, s, stride=stride, padding=padding, quantize=quantize, interpret=True,
                                          block=block)
    cot = jnp.asarray(rng.normal(size=ref(x, s).shape), jnp.float32)
    (y_ref, (gx_ref, gs_ref)), (y, (gx, gs)) = _value_and_grads(ref, x, s, cot), _value_and_grads(pal, x, s, cot)
    assert y.shape == y_ref.shape and y.dtype == x.dtype and gs.shape == s.shape
    _assert_close(y, y_ref, F32_TOL, "output")
    _assert_close(gx, gx_ref, F32_TOL, "input gradient")
    _assert_close(gs, gs_ref, F32_TOL, "shift gradient")
    if kind == "integer" and stride == 1 and not quantize:
        # integer shifts are zero-filled rolls, channel by channel
        xs, ss = np.asarray(x), np.asarray(s).astype(int)
        want = np.zeros_like(xs)
        n, t, c, h, w = xs.shape
        for ch in range(c):
            dt, dv, dh = ss[:, ch]
            for tt in range(t):
                if 0 <= tt + dt < t:
                    for i in range(h):
                        for j in range(w):
                            if 0 <= i + dv < h and 0 <= j + dh < w:
                                want[:, tt, ch, i, j] = xs[:, tt + dt, ch, i + dv, j + dh]
        np.testing.assert_allclose(np.asarray(y), want, atol=1e-6)


def test_bfloat16_inputs_accumulate_in_float32():
    rng, x, s = _inputs(3, (2, 3, 10, 7, 9), "fractional", jnp.bfloat16)
    cot = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
    ref = lambda x, s: vs.rubiks_shift_3d(x.astype(jnp.float32), s, impl="xla")
    pal = lambda x, s: pk.rubiks_shift_3d(x, s, interpret=True)
    (y_ref, (gx_ref, gs_ref)), (y, (gx, gs)) = _value_and_grads(ref, x, s, cot), _value_and_grads(pal, x, s, cot)
    assert y.dtype == jnp.bfloat16 and gx.dtype == jnp.bfloat16 and gs.dtype == jnp.float32
    _assert_close(y, y_ref, 1e-2, "bf16 output")
    _assert_close(gx, gx_ref, 1e-2, "bf16 input gradient")
    _assert_close(gs, gs_ref, 1e-2, "bf16 shift gradient")


@pytest.mark.parametrize("stride,quantize", [(1, False), (2, True)])
def test_2d_variant_matches_reference(stride, quantize):
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(3, 6, 9, 7)), jnp.float32)
    s = jnp.asarray(rng.uniform(-2, 2, size=(2, 6)), jnp.float32)
    ref = lambda x, s: vs.rubiks_shift_2d(x, s, stride=stride, quantize=quantize, impl="xla")
    pal = lambda x, s: pk.rubiks_shift_2d(x, s, stride=stride, quantize=quantize, interpret=True)
    cot = jnp.asarray(rng.normal(size=ref(x, s).shape), jnp.float32)
    for a, b, what in zip(_value_and_grads(pal, x, s, cot), _value_and_grads(ref, x, s, cot), ("out", "grads")):
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            _assert_close(u, v, F32_TOL, what)


def test_integer_shift_gradient_rules_match_the_reference():
    """Exact integer shifts on some axes only (``test_shift.mixed_integer_shift``: all-integer,
    temporal-only, spatial-only and edge channels): for both rules the kernels' shift gradient
    equals the XLA one, which test_shift.py checks against NumPy differences, in 3-D (stride 2,
    padding 1) and 2-D; the two rules differ exactly on the integer entries."""
    from test_shift import mixed_integer_shift

    rng = np.random.default_rng(12)
    s = mixed_integer_shift(rng).astype(np.float32)
    x = jnp.asarray(rng.normal(size=(1, 3, 6, 5, 6)), jnp.float32)
    integer = s == np.floor(s)
    cases = [(vs.rubiks_shift_3d, pk.rubiks_shift_3d, x, s, integer, {"stride": 2, "padding": 1}),
             (vs.rubiks_shift_2d, pk.rubiks_shift_2d, x[:, 0], s[1:], integer[1:], {})]
    for ref_fn, pal_fn, xx, ss, integer_rows, kw in cases:
        cot = jnp.asarray(rng.normal(size=ref_fn(xx, ss, impl="xla", **kw).shape), jnp.float32)
        grads = {}
        for rule in ("central", "one_sided"):
            ref = functools.partial(ref_fn, xx, impl="xla", integer_shift_grad=rule, **kw)
            pal = functools.partial(pal_fn, xx, interpret=True, integer_shift_grad=rule, **kw)
            grads[rule] = np.asarray(jax.jit(jax.grad(lambda s, f=pal, c=cot: jnp.sum(c * f(s))))(ss))
            _assert_close(grads[rule], jax.grad(lambda s, f=ref, c=cot: jnp.sum(c * f(s)))(ss), F32_TOL,
                          f"{rule} shift gradient")
        diff = np.abs(grads["central"] - grads["one_sided"])
        assert diff[~integer_rows].max() < 1e-5 and diff[integer_rows].min() > 1e-3


@pytest.mark.parametrize("adjoint", [False, True])
def test_masked_lanes_leave_a_guard_region_untouched(adjoint):
    """Write the forward (or adjoint) into a flat buffer with sentinel-filled guards on both sides:
    the tile (2 channels x 4 rows x 8 cols) over-covers C=3, H_out=5, W_out=5 in every axis, so
    masked lanes exist in each; none may write (a lane past a row end would land in the next row,
    a lane past the last channel in the guard)."""
    rng, x, s = _inputs(11, (2, 2, 3, 5, 5), "fractional")
    f, a = pk._parts(s, False)
    cfg = pk._Config(tuple(x.shape), 3, 1, 0, False, pk.Block(2, 4, 8), 4, True)
    g = cfg.geometry(adjoint, 2)
    guard, fill = 37, 1234.5
    buf = pk._gather(x.reshape(-1), f, a, g, interpret=True, num_warps=4, out_dtype=jnp.float32, guard=guard,
                     fill=fill)
    buf = np.asarray(buf)
    assert np.all(buf[:guard] == fill) and np.all(buf[-guard:] == fill)
    interior = buf[guard:-guard].reshape(x.shape)
    if adjoint:  # the adjoint of the forward: <A x, y> == <x, A^T y>
        y = np.asarray(vs.rubiks_shift_3d(x, s, impl="xla"))
        lhs = np.vdot(y, np.asarray(x))  # A applied to x, paired with x (used as the cotangent)
        rhs = np.vdot(np.asarray(x), interior)
        np.testing.assert_allclose(lhs, rhs, rtol=1e-5)
    else:
        np.testing.assert_allclose(interior, np.asarray(vs.rubiks_shift_3d(x, s, impl="xla")), atol=F32_TOL)


def test_dispatcher_choice_per_backend(monkeypatch):
    for backend, want in (("gpu", "pallas"), ("cpu", "xla"), ("tpu", "xla")):
        monkeypatch.setattr(jax, "default_backend", lambda b=backend: b)
        assert vs.resolve_impl("auto") == want
        assert vs.resolve_impl("xla") == "xla" and vs.resolve_impl("pallas") == "pallas"
    with pytest.raises(ValueError, match=r"impl='cuda' is not one of \['auto', 'xla', 'pallas'\]"):
        vs.rubiks_shift_3d(jnp.zeros((1, 2, 3, 4, 4)), jnp.zeros((3, 3)), impl="cuda")


def test_pallas_impl_without_gpu_runs_interpret_mode_with_a_one_time_notice(monkeypatch):
    monkeypatch.setattr(pk, "_NOTIFIED", False)
    rng, x, s = _inputs(2, (1, 2, 3, 4, 5), "fractional")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = vs.rubiks_shift_3d(x, s, impl="pallas")
        y2 = vs.rubiks_shift_2d(x[:, 0], s[1:], impl="pallas")
    notices = [w for w in caught if issubclass(w.category, pk.InterpretModeWarning)]
    assert len(notices) == 1 and "interpret mode" in str(notices[0].message)
    _assert_close(y, vs.rubiks_shift_3d(x, s, impl="xla"), F32_TOL, "dispatched 3d")
    _assert_close(y2, vs.rubiks_shift_2d(x[:, 0], s[1:], impl="xla"), F32_TOL, "dispatched 2d")


def test_rubiks_block_with_pallas_matches_xla():
    from vasa.video.rubiksnet import RubiksBlock

    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 6)), jnp.float32)  # [N*T, H, W, C], T=2
    blocks = {impl: RubiksBlock(8, stride=2, num_frames=2, impl=impl) for impl in ("xla", "pallas")}
    variables = blocks["xla"].init(jax.random.PRNGKey(0), x)

    def loss(params, x, block):
        return jnp.sum(jnp.sin(block.apply({**variables, "params": params}, x)))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pk.InterpretModeWarning)
        out = {k: jax.value_and_grad(loss, (0, 1))(variables["params"], x, b) for k, b in blocks.items()}
    _assert_close(out["pallas"][0], out["xla"][0], 1e-5, "block output")
    for a, b in zip(jax.tree.leaves(out["pallas"][1]), jax.tree.leaves(out["xla"][1])):
        _assert_close(a, b, 1e-5, "gradient")


def test_rubiksnet_routes_every_block_to_the_configured_implementation(monkeypatch):
    from vasa.video.rubiksnet import RubiksNet

    calls = []

    def recording(x, shift, **kw):
        calls.append(x.shape)
        return vs.rubiks_shift_3d(x, shift, stride=kw["stride"], padding=kw["padding"], quantize=kw["quantize"],
                                  impl="xla")

    monkeypatch.setattr(pk, "rubiks_shift_3d", recording)
    x = jnp.zeros((1, 2, 16, 16, 3))
    for impl, expected in (("xla", 0), ("pallas", 5)):  # stage 0 + 4 stages, one block each
        calls.clear()
        RubiksNet(width=8, repeats=(1, 1, 1, 1), num_classes=4, num_frames=2, impl=impl).init(
            jax.random.PRNGKey(0), x)
        assert len(calls) == expected, (impl, calls)
    with pytest.raises(ValueError, match="RubiksNet: impl='triton'"):
        RubiksNet(width=8, repeats=(1, 1, 1, 1), num_classes=4, num_frames=2, impl="triton").init(
            jax.random.PRNGKey(0), x)


def test_errors_name_the_argument():
    x, s = jnp.zeros((1, 2, 3, 4, 4)), jnp.zeros((3, 3))
    with pytest.raises(ValueError, match="x has dtype float16"):
        pk.rubiks_shift_3d(x.astype(jnp.float16), s, interpret=True)
    with pytest.raises(ValueError, match=r"shift must be \[3, C\] with C = x.shape\[-3\] = 3.*\(3, 4\)"):
        pk.rubiks_shift_3d(x, jnp.zeros((3, 4)), interpret=True)
    with pytest.raises(ValueError, match="shift has dtype int32"):
        pk.rubiks_shift_3d(x, jnp.zeros((3, 3), jnp.int32), interpret=True)
    with pytest.raises(ValueError, match=r"x must be \[N, T, C, H, W\]"):
        pk.rubiks_shift_3d(x[0], s, interpret=True)
    with pytest.raises(ValueError, match="stride=0"):
        pk.rubiks_shift_3d(x, s, stride=0, interpret=True)
    with pytest.raises(ValueError, match="padding=-1"):
        pk.rubiks_shift_3d(x, s, padding=-1, interpret=True)
    with pytest.raises(ValueError, match="num_warps=3"):
        pk.rubiks_shift_3d(x, s, num_warps=3, interpret=True)
    with pytest.raises(ValueError, match=r"Block.rows=6 must be a power of two"):
        pk.Block(2, 6, 8)
    with pytest.raises(ValueError, match=r"shift must be \[2, C\]"):
        pk.rubiks_shift_2d(x[:, 0], s, interpret=True)
    with pytest.raises(ValueError, match=r"integer_shift_grad='forward'.*\['central', 'one_sided'\]"):
        pk.rubiks_shift_3d(x, s, integer_shift_grad="forward", interpret=True)


def test_choose_block_pads_little_and_stays_a_power_of_two():
    for c, h, w in [(72, 56, 56), (144, 28, 28), (576, 7, 7), (5, 3, 100), (1, 1, 1)]:
        b = pk.choose_block(c, h, w)
        assert b.cols >= w and b.cols < 2 * max(w, 1)
        assert -(-h // b.rows) * b.rows <= max(h * 8 / 7, b.rows)
        assert b.channels * b.rows * b.cols <= max(2048, b.rows * b.cols)


def _triton_calls(fn, *specs) -> int:
    exported = jax.export.export(
        jax.jit(fn), platforms=["cuda"],
        disabled_checks=[jax.export.DisabledSafetyCheck.custom_call("__gpu$xla.gpu.triton")])(*specs)
    return exported.mlir_module().count("__gpu$xla.gpu.triton")


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_gpu_path_lowers_to_triton(dtype):
    """Export for CUDA on this CPU machine: the kernels pass Pallas's Triton lowering
    (power-of-two tiles, supported primitives) at the paper shape (56x56 planes, padded)."""
    x = jax.ShapeDtypeStruct((8, 8, 72, 56, 56), dtype)
    s = jax.ShapeDtypeStruct((3, 72), jnp.float32)
    loss = lambda **kw: jax.grad(
        lambda x, s: jnp.sum(pk.rubiks_shift_3d(x, s, interpret=False, **kw).astype(jnp.float32)), (0, 1))
    assert _triton_calls(lambda x, s: pk.rubiks_shift_3d(x, s, interpret=False), x, s) == 1
    assert _triton_calls(loss(), x, s) == 2  # input gradient + shift gradient
    assert _triton_calls(loss(stride=2, padding=1, quantize=True), x, s) == 2
    x2 = jax.ShapeDtypeStruct((8, 72, 56, 56), dtype)
    assert _triton_calls(jax.grad(lambda x, s: jnp.sum(
        pk.rubiks_shift_2d(x, s, interpret=False).astype(jnp.float32)), (0, 1)),
        x2, jax.ShapeDtypeStruct((2, 72), jnp.float32)) == 2


@pytest.mark.parametrize("shape,out_channels,stride,quantize,dtype,tol", [
    ((2, 3, 20, 7, 9), 24, 1, False, jnp.float32, F32_TOL),  # C, D not multiples of their blocks
    ((1, 2, 37, 10, 6), 70, 2, True, jnp.float32, F32_TOL),
    ((1, 2, 40, 7, 9), 16, 1, False, jnp.bfloat16, 1e-2),
])
def test_fused_shift_pointwise_matches_shift_then_einsum(shape, out_channels, stride, quantize, dtype, tol):
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.normal(size=shape), dtype)
    s = jnp.asarray(rng.uniform(-2, 2, size=(3, shape[2])), jnp.float32)
    w = jnp.asarray(rng.normal(size=(shape[2], out_channels)) / 6, jnp.float32)

    def ref(x, s, w):
        y = vs.rubiks_shift_3d(x.astype(jnp.float32), s, stride=stride, quantize=quantize, impl="xla")
        return jnp.einsum("ntchw,cd->ntdhw", y, w, precision="highest")

    fused = lambda x, s, w: pk.rubiks_shift_pointwise(x, s, w, stride=stride, quantize=quantize,
                                                      interpret=True).astype(jnp.float32)
    y = pk.rubiks_shift_pointwise(x, s, w, stride=stride, quantize=quantize, interpret=True)
    assert y.dtype == dtype and y.shape == ref(x, s, w).shape
    _assert_close(y, ref(x, s, w), tol, "fused output")
    loss = lambda fn: jax.grad(lambda x, s, w: jnp.sum(jnp.sin(fn(x, s, w))), (0, 1, 2))(x, s, w)
    for a, b, what in zip(loss(fused), loss(ref), ("x", "shift", "weight")):
        _assert_close(a, b, tol, f"fused gradient of {what}")
    with pytest.raises(ValueError, match=r"weight must be \[C, D\]"):
        pk.rubiks_shift_pointwise(x, s, w[1:], interpret=True)
    with pytest.raises(ValueError, match="channels >= 16"):
        pk.rubiks_shift_pointwise(x, s, w, block=pk.Block(8, 4, 8), interpret=True)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_fused_kernel_lowers_to_triton(dtype):
    x = jax.ShapeDtypeStruct((8, 8, 72, 56, 56), dtype)
    s, w = jax.ShapeDtypeStruct((3, 72), jnp.float32), jax.ShapeDtypeStruct((72, 72), jnp.float32)
    assert _triton_calls(lambda x, s, w: pk.rubiks_shift_pointwise(x, s, w, interpret=False), x, s, w) == 1


def test_fused_layer_has_the_unfused_parameters_and_outputs():
    from vasa.video.rubiksnet import RubiksShiftLayer

    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 3, 6, 7, 16)), jnp.float32)  # [N, T, H, W, C]
    plain, fused = RubiksShiftLayer(16, impl="xla"), RubiksShiftLayer(16, impl="pallas", fused=True)
    variables = plain.init(jax.random.PRNGKey(3), x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pk.InterpretModeWarning)
        fused_variables = fused.init(jax.random.PRNGKey(3), x)
        assert jax.tree.map(jnp.shape, fused_variables) == jax.tree.map(jnp.shape, variables)
        np.testing.assert_array_equal(fused_variables["params"]["conv"]["kernel"], variables["params"]["conv"]["kernel"])
        _assert_close(fused.apply(variables, x), plain.apply(variables, x), F32_TOL, "fused layer")
        _assert_close(vs.rubiks_shift_pointwise(x.transpose(0, 1, 4, 2, 3), variables["params"]["shift"],
                                                jnp.eye(16), impl="xla"),
                      vs.rubiks_shift_3d(x.transpose(0, 1, 4, 2, 3), variables["params"]["shift"], impl="xla"),
                      F32_TOL, "xla pointwise with the identity")
