"""vasa.nn.conv: the convolution whose CPU gradient is computed from slices and a matrix
product, against a NumPy convolution and against XLA's own gradient."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vasa.nn.conv import Conv2D, conv2d, conv_by_slices, input_gradient, kernel_gradient


def numpy_conv(x, w, stride):
    n, h, wd, c = x.shape
    k, _, _, f = w.shape
    ho, wo = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, ho, wo, f))
    for i in range(ho):
        for j in range(wo):
            patch = x[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2]))
    return out


def xla_conv(x, w, stride):
    return jax.lax.conv_general_dilated(x, w, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))


# (image size, channels, kernel, stride, filters): DrQ's layers, Nature's, and odd sizes
CASES = [(11, 3, 3, 2, 4), (9, 4, 3, 1, 5), (20, 2, 8, 4, 3), (9, 3, 4, 2, 2), (7, 1, 1, 1, 3), (13, 2, 5, 3, 2)]


@pytest.mark.parametrize("size,c,k,stride,f", CASES)
def test_forward_and_gradients_match_numpy_and_xla(size, c, k, stride, f):
    rng = np.random.default_rng(size * 31 + k)
    x = rng.normal(size=(2, size, size + 1, c)).astype(np.float32)
    w = rng.normal(size=(k, k, c, f)).astype(np.float32)
    ref = numpy_conv(x.astype(np.float64), w.astype(np.float64), stride)
    np.testing.assert_allclose(conv_by_slices(x, w, stride), ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(conv2d(x, w, stride, backend="cpu"), ref, rtol=1e-4, atol=1e-4)
    g = rng.normal(size=ref.shape).astype(np.float32)  # a random cotangent

    def loss(conv):
        return lambda a, b: jnp.sum(conv(a, b) * g)

    ours = jax.grad(loss(lambda a, b: conv2d(a, b, stride, backend="cpu")), argnums=(0, 1))(x, w)
    xla = jax.grad(loss(lambda a, b: xla_conv(a, b, stride)), argnums=(0, 1))(x, w)
    for a, b in zip(ours, xla):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("k", [1, 3, 4])
def test_stride_one_gradients_match_numpy_sums(k):
    """The stride-1 backward pass (two forward convolutions) against the definitions:
    ``dK[i,j,c,f] = sum_nhw x[n,h+i,w+j,c] g[n,h,w,f]``, ``dx[n,y,z,c] = sum_ijf g[n,y-i,z-j,f] K[i,j,c,f]``."""
    rng = np.random.default_rng(k)
    x = rng.normal(size=(2, 7, 9, 3))
    w = rng.normal(size=(k, k, 3, 4))
    g = rng.normal(size=(2, 8 - k, 10 - k, 4))
    dk = np.zeros_like(w)
    dx = np.zeros_like(x)
    for i in range(k):
        for j in range(k):
            window = x[:, i:i + g.shape[1], j:j + g.shape[2], :]
            dk[i, j] = np.einsum("nhwc,nhwf->cf", window, g)
            dx[:, i:i + g.shape[1], j:j + g.shape[2], :] += np.einsum("nhwf,cf->nhwc", g, w[i, j])
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    np.testing.assert_allclose(kernel_gradient(f32(x), f32(g), k), dk, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(input_gradient(f32(g), f32(w)), dx, rtol=1e-4, atol=1e-4)


def test_module_matches_flax_conv_parameters_and_values():
    import flax.linen as nn

    x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 12, 12, 5))  # two leading dimensions
    ours = Conv2D(7, 3, 2, kernel_init=nn.initializers.orthogonal(1.4))
    flax = nn.Conv(7, (3, 3), strides=(2, 2), padding="VALID", kernel_init=nn.initializers.orthogonal(1.4))
    p, q = ours.init(jax.random.PRNGKey(1), x), flax.init(jax.random.PRNGKey(1), x)
    assert jax.tree.map(jnp.shape, p) == jax.tree.map(jnp.shape, q)
    np.testing.assert_array_equal(p["params"]["kernel"], q["params"]["kernel"])
    np.testing.assert_allclose(ours.apply(p, x), flax.apply(q, x), rtol=1e-5, atol=1e-5)


def test_gradient_in_a_scan_has_no_convolution_on_cpu():
    """A strided layer's backward pass is slices and matrix products: the program of a scan of
    gradient steps holds only the forward convolution (XLA's CPU gradient convolutions are 10-16x
    slower inside a loop, jax-ml/jax#12868)."""
    w = jnp.ones((3, 3, 2, 4))
    xs = jnp.ones((5, 2, 9, 9, 2))

    def run(backend):
        def body(c, x):
            return c + jax.grad(lambda k: (conv2d(x, k, 2, backend=backend) ** 2).sum())(w).sum(), None

        return jax.jit(lambda: jax.lax.scan(body, 0.0, xs)[0]).lower().as_text()

    assert run("cpu").count("stablehlo.convolution") == 1  # the forward one
    assert run("gpu").count("stablehlo.convolution") == 2  # XLA's: forward and kernel gradient
