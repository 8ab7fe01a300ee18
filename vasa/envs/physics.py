"""MJX physics calls that cannot deadlock XLA:CPU: ``step`` and ``forward`` with a pure-JAX Cholesky.

Why this exists. MJX factors dense matrices with ``jax.scipy.linalg.cho_factor``/``cho_solve``
(the mass matrix in ``smooth.factor_m``, the Newton solver's Hessian, the ``implicitfast``
integrator's ``M - h D``). On the CPU, jaxlib 0.10 lowers a batched ``cho_factor`` to LAPACK's
``potrf`` through ``jax::ParallelBatchMap``, which queues chunks of the batch on XLA:CPU's
intra-op thread pool and blocks its own pool thread until they finish. When the thunk executor
runs as many independent factorisations at once as the pool has threads (two on a 2-core
machine: an auto-reset wrapper's ``reset`` (``mjx.forward``) and ``step`` are independent), every
pool thread waits for chunks no thread is left to run and the process hangs with no CPU use.
vasa hit this with PPO on ``robo/stack`` and in the manipulation throughput benchmark (gdb:
both pool threads in ``lapack_spotrf_ffi -> ParallelBatchMap -> BlockingCounter::Wait``);
jaxlib 0.11 compiles that parallel path out, and jaxlib 0.10 is what this project runs on.

The fix: while vasa traces an MJX call on the CPU, ``jax.scipy.linalg.cho_factor`` and
``cho_solve`` are swapped for the column-by-column Cholesky and substitutions below, unrolled
over the static matrix size into ordinary array ops (no custom call, nothing for the pool to
wait on). The swap lasts only for the trace of that call (MJX looks both names up on the
``jax`` module when it traces), and it is skipped on GPUs and TPUs, where the vendor solvers are used. The results
agree with LAPACK to float32 rounding (``tests/test_physics.py``). On a 2-core CPU, 256 batched
factor-and-solve calls take 0.30 ms at 15x15 (LAPACK 0.35), 0.51 at 21x21 (0.66) and 2.1 at
33x33 (1.4); ten sub-steps of ``robo/door`` at 256 environments 201 ms against 248 ms.
"""

from __future__ import annotations

import contextlib
import threading

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from mujoco import mjx

_LOCK = threading.RLock()


def cholesky_lower(a: jax.Array, floor: float | None = None) -> jax.Array:
    """Lower Cholesky factor ``L`` of symmetric positive-definite ``a`` (``a = L L^T``).

    ``a``: ``[..., n, n]`` float; only its lower triangle is read. Returns ``[..., n, n]`` with
    zeros above the diagonal; NaN where ``a`` is not positive definite (like LAPACK through
    ``jax.scipy.linalg.cho_factor``), unless ``floor`` is given: then every pivot is raised to at
    least ``floor`` (the factor of a nearby positive-definite matrix, never NaN: for the
    controllers' near-singular ``J M^-1 J^T``). Right-looking and unrolled over the static ``n``
    columns: column ``j`` is the trailing matrix's first column over the square root of its
    pivot, and the trailing matrix loses that column's outer product; XLA fuses the static slices."""
    n = a.shape[-1]
    trail = jnp.tril(a)
    cols = []
    for j in range(n):
        pivot = trail[..., :1, 0] if floor is None else jnp.maximum(trail[..., :1, 0], floor)
        col = trail[..., :, 0] / jnp.sqrt(pivot)
        col = col.at[..., 0].set(jnp.sqrt(pivot[..., 0]))
        cols.append(jnp.concatenate([jnp.zeros(col.shape[:-1] + (j,), a.dtype), col], axis=-1))
        rest = col[..., 1:]
        trail = trail[..., 1:, 1:] - rest[..., :, None] * rest[..., None, :]
    return jnp.stack(cols, axis=-1)


def _substitute(low: jax.Array, b: jax.Array, transpose: bool) -> jax.Array:
    """Solve ``L x = b`` (``transpose=False``, forward) or ``L^T x = b`` (backward) for lower
    triangular ``low [n, n]`` and ``b [n, k]``, unrolled over the static ``n`` rows: each solved
    unknown is removed from the remaining right-hand sides (column-oriented)."""
    n = low.shape[-1]
    x = [None] * n
    rhs = b
    if not transpose:
        for i in range(n):
            x[i] = rhs[0] / low[i, i]
            rhs = rhs[1:] - low[i + 1:, i, None] * x[i][None, :]
    else:
        for i in range(n - 1, -1, -1):
            x[i] = rhs[-1] / low[i, i]
            rhs = rhs[:-1] - low[i, :i, None] * x[i][None, :]
    return jnp.stack(x)


def cho_factor(a, lower: bool = False, overwrite_a: bool = False, check_finite: bool = True):
    """Drop-in for ``jax.scipy.linalg.cho_factor`` (``a [n, n]``): returns ``(c, lower)`` with
    ``c`` the lower factor, or its transpose (upper, ``a = c^T c``) when ``lower=False``."""
    del overwrite_a, check_finite
    low = cholesky_lower(jnp.asarray(a))
    return (low if lower else jnp.swapaxes(low, -1, -2)), lower


def cho_solve(c_and_lower, b, overwrite_b: bool = False, check_finite: bool = True):
    """Drop-in for ``jax.scipy.linalg.cho_solve``: ``x`` with ``a x = b`` from ``cho_factor``'s
    ``(c, lower)``; ``c [n, n]``, ``b [n]`` or ``[n, k]``. Reads only ``c``'s factor triangle."""
    del overwrite_b, check_finite
    c, lower = c_and_lower
    low = jnp.tril(c) if lower else jnp.swapaxes(jnp.triu(c), -1, -2)
    b = jnp.asarray(b)
    mat = b[:, None] if b.ndim == 1 else b
    x = _substitute(low, _substitute(low, mat, transpose=False), transpose=True)
    return x[:, 0] if b.ndim == 1 else x


def spd_inverse(a: jax.Array, eps: float = 1e-6) -> jax.Array:
    """Inverse of a small symmetric positive (semi-)definite ``a [n, n]``: ``(a + eps I)^-1`` by
    the unrolled Cholesky with pivots floored at ``eps`` (finite for a singular ``a``; no LAPACK
    custom call, on any backend). For the arm controllers' 3x3-7x7 matrices, evaluated at every
    physics sub-step: ten sub-steps of ``robo/door`` at 1,024 environments take 436 ms with it
    against 594 ms with ``jnp.linalg.inv`` (LU through LAPACK) on a 2-core CPU."""
    n = a.shape[-1]
    low = cholesky_lower(a + eps * jnp.eye(n, dtype=a.dtype), floor=eps)
    return cho_solve((low, True), jnp.eye(n, dtype=a.dtype))


def lapack_free() -> bool:
    """Whether MJX calls traced now get the pure-JAX Cholesky: on the CPU backend only."""
    return jax.default_backend() == "cpu"


@contextlib.contextmanager
def pure_cholesky():
    """Within this block (while tracing), ``jax.scipy.linalg.cho_factor``/``cho_solve`` are the
    pure-JAX versions above when :func:`lapack_free`; otherwise nothing changes. Re-entrant;
    the swap is undone on exit, also on errors."""
    if not lapack_free():
        yield
        return
    with _LOCK:
        saved = jsl.cho_factor, jsl.cho_solve
        jsl.cho_factor, jsl.cho_solve = cho_factor, cho_solve
        try:
            yield
        finally:
            jsl.cho_factor, jsl.cho_solve = saved


def step(m: mjx.Model, d: mjx.Data) -> mjx.Data:
    """``mjx.step(m, d)`` traced with :func:`pure_cholesky` (same arguments and result)."""
    with pure_cholesky():
        return mjx.step(m, d)


def forward_positions(m: mjx.Model, d: mjx.Data) -> mjx.Data:
    """The part of ``mjx.forward`` that a freshly reset state is read for: kinematics, centres of
    mass, cameras and lights, the mass matrix (``crb``), contacts (``collision``) and the bias
    forces at ``qvel`` (``com_vel``, ``rne``). Skipped: the constraint rows and the solver, the
    actuation and the accelerations, which the next ``step`` computes afresh from ``qpos``/``qvel``
    (its result is the same as from a fully forwarded state; ``tests/test_manipulation.py``).
    An auto-resetting wrapper evaluates a reset at every step, so this is on the hot path; the
    gain is small: a ``make("robo/door")`` step at 1,024 environments took 878 ms with it against
    1,026 ms with ``forward`` in an A/B on a busy 2-core CPU, while on the quiet CPU the
    throughput benchmark did not move beyond its noise (door 1,764 / 1,825 steps/s at 1,024 /
    4,096 environments against 1,815 / 1,781)."""
    with pure_cholesky():
        for fn in (mjx.kinematics, mjx.com_pos, mjx.camlight, mjx.crb, mjx.collision, mjx.com_vel, mjx.rne):
            d = fn(m, d)
    return d


def forward(m: mjx.Model, d: mjx.Data) -> mjx.Data:
    """``mjx.forward(m, d)`` traced with :func:`pure_cholesky` (same arguments and result)."""
    with pure_cholesky():
        return mjx.forward(m, d)
