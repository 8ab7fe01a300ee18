"""vasa.envs.physics: the LAPACK-free Cholesky that MJX uses on the CPU (works around jaxlib
0.10's ParallelBatchMap deadlock). References: NumPy's float64 Cholesky and solve, and MuJoCo's
C ``mj_step`` for a contact-rich model run with MJX's own settings (Newton, implicitfast, dense)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import mujoco
import numpy as np
import pytest
from mujoco import mjx

from vasa.envs import physics


def _spd(rng, n, batch=()):
    a = rng.normal(size=batch + (n, n))
    return a @ np.swapaxes(a, -1, -2) + n * np.eye(n)


@pytest.mark.parametrize("n", [1, 2, 5, 9, 17, 33])
def test_cholesky_matches_numpy(n):
    rng = np.random.default_rng(n)
    a = _spd(rng, n, (4,))
    low = np.asarray(jax.jit(physics.cholesky_lower)(jnp.asarray(a, jnp.float32)))
    want = np.linalg.cholesky(a)
    np.testing.assert_allclose(low, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())
    assert np.all(np.triu(low, 1) == 0.0)


@pytest.mark.parametrize("lower", [False, True])
@pytest.mark.parametrize("rhs_shape", [(), (3,)])
def test_cho_factor_solve_drop_in(lower, rhs_shape):
    """Same calling convention and results as jax.scipy.linalg; only the factor's triangle is
    read (the other one may hold anything, as SciPy's cho_factor leaves it)."""
    rng = np.random.default_rng(7)
    n = 12
    a = _spd(rng, n)
    b = rng.normal(size=(n,) + rhs_shape)
    c, low_flag = physics.cho_factor(jnp.asarray(a, jnp.float32), lower=lower)
    assert low_flag is lower
    c_ref, _ = jsl.cho_factor(jnp.asarray(a, jnp.float32), lower=lower)
    tri = np.tril if lower else np.triu
    np.testing.assert_allclose(tri(np.asarray(c)), tri(np.asarray(c_ref)), rtol=1e-4, atol=1e-4)
    garbage = np.asarray(c) + (np.triu(rng.normal(size=(n, n)), 1) if lower else np.tril(rng.normal(size=(n, n)), -1))
    x = np.asarray(physics.cho_solve((jnp.asarray(garbage, jnp.float32), lower), jnp.asarray(b, jnp.float32)))
    assert x.shape == b.shape
    np.testing.assert_allclose(x, np.linalg.solve(a, b), rtol=1e-3, atol=1e-4)


def test_not_positive_definite_gives_nan():
    a = jnp.asarray([[1.0, 2.0], [2.0, 1.0]])
    assert np.isnan(np.asarray(physics.cholesky_lower(a))).any()


@pytest.mark.parametrize("n", [3, 6, 7])
def test_spd_inverse_matches_numpy_and_stays_finite_when_singular(n):
    """The controllers' inverse: ``(a + eps I)^-1`` against NumPy's float64 inverse, and for a
    rank-deficient ``a`` (an arm at a singular pose) finite where the floored pivots cap it."""
    rng = np.random.default_rng(n)
    a = _spd(rng, n, (5,)) / n
    inv = np.asarray(jax.jit(jax.vmap(physics.spd_inverse))(jnp.asarray(a, jnp.float32)))
    want = np.linalg.inv(a + 1e-6 * np.eye(n))
    np.testing.assert_allclose(inv, want, rtol=1e-3, atol=1e-4 * np.abs(want).max())
    j = rng.normal(size=(n, n - 1))
    singular = jnp.asarray(j @ j.T, jnp.float32)  # rank n - 1
    out = np.asarray(physics.spd_inverse(singular))
    assert np.isfinite(out).all() and np.allclose(out, out.T, atol=1e-3 * np.abs(out).max())
    v = np.linalg.svd(j.T)[2][-1]  # the null direction: the inverse is large but bounded there
    assert 1e4 < v @ out @ v < 1e8  # ~1 / eps, give or take float32 rounding of a + eps I


def test_swap_is_scoped_and_cpu_only(monkeypatch):
    original = jsl.cho_factor, jsl.cho_solve
    with pytest.raises(RuntimeError), physics.pure_cholesky():
        assert jsl.cho_factor is physics.cho_factor and jsl.cho_solve is physics.cho_solve
        with physics.pure_cholesky():  # re-entrant
            assert jsl.cho_factor is physics.cho_factor
        assert jsl.cho_factor is physics.cho_factor
        raise RuntimeError("restored on errors too")
    assert (jsl.cho_factor, jsl.cho_solve) == original
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    with physics.pure_cholesky():
        assert (jsl.cho_factor, jsl.cho_solve) == original


_MODEL = """
<mujoco>
  <option timestep="0.005" integrator="implicitfast" solver="Newton" iterations="6" jacobian="dense"/>
  <worldbody>
    <geom type="plane" size="2 2 0.1"/>
    <body pos="0 0 0.5">
      <joint type="hinge" axis="0 1 0" damping="0.5"/>
      <geom type="capsule" fromto="0 0 0 0.3 0 0" size="0.04"/>
      <body pos="0.3 0 0">
        <joint type="hinge" axis="0 1 0" damping="0.5"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 -0.2" size="0.04"/>
      </body>
    </body>
    <body pos="0.2 0.05 0.2"><freejoint/><geom type="box" size="0.05 0.05 0.05" mass="0.3"/></body>
    <body pos="-0.2 0 0.3"><freejoint/><geom type="sphere" size="0.06" mass="0.2"/></body>
  </worldbody>
</mujoco>
"""


def test_step_matches_mujoco_c_and_lapack_path():
    """Falling, colliding bodies for 100 steps: MJX with the pure-JAX Cholesky stays with MuJoCo
    C and with MJX's LAPACK path (same float32 arithmetic up to rounding)."""
    mj = mujoco.MjModel.from_xml_string(_MODEL)
    m = mjx.put_model(mj, impl="jax")
    d0 = mjx.make_data(mj, impl="jax")

    def roll(step_fn):
        return jax.jit(lambda d: jax.lax.scan(lambda d, _: (step_fn(m, d), d.qpos), d, None, length=100)[1])(d0)

    ours = np.asarray(roll(physics.step))
    lapack = np.asarray(roll(mjx.step))
    data = mujoco.MjData(mj)
    ref = []
    for _ in range(100):
        ref.append(data.qpos.copy())
        mujoco.mj_step(mj, data)
    ref = np.stack(ref)
    assert np.abs(ref[-1] - ref[0]).max() > 0.1  # things fell and moved
    np.testing.assert_allclose(ours, lapack, atol=2e-3)
    np.testing.assert_allclose(ours, ref, atol=1e-2)


def test_no_lapack_calls_in_traced_physics():
    """The compiled step and forward contain no LAPACK/BLAS custom call (the deadlock's site);
    MJX's own step, traced outside the swap, does."""
    mj = mujoco.MjModel.from_xml_string(_MODEL)
    m = mjx.put_model(mj, impl="jax")
    batch = jax.tree.map(lambda x: x[None], mjx.make_data(mj, impl="jax"))

    def text(fn):
        return jax.jit(jax.vmap(lambda d: fn(m, d))).lower(batch).as_text()

    assert "potrf" in text(mjx.step)
    for fn in (physics.step, physics.forward):
        hlo = text(fn)
        assert "potrf" not in hlo and "trsm" not in hlo
