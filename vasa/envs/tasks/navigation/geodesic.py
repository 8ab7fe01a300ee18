"""Geodesic distances on a 2-D occupancy map, computed on the device.

:func:`distance_field` solves the 8-neighbour shortest-path problem (orthogonal step 1
cell, diagonal step sqrt(2) cells; a diagonal step needs both orthogonal cells it cuts
past to be free, so paths never squeeze between two blocked corners) from a set of goal
cells by repeated min-relaxation (Bellman-Ford sweeps over the whole grid) inside a
``lax.while_loop`` that stops when nothing changes: pure JAX, vmappable over goals and
maps. :func:`geodesic_at` reads a field at a continuous position.
:func:`dijkstra_numpy` is the independent host reference the tests compare against.
"""

from __future__ import annotations

import heapq
import math

import jax
import jax.numpy as jnp
import numpy as np

_SQRT2 = math.sqrt(2.0)
_MOVES = ((-1, 0, 1.0), (1, 0, 1.0), (0, -1, 1.0), (0, 1, 1.0),
          (-1, -1, _SQRT2), (-1, 1, _SQRT2), (1, -1, _SQRT2), (1, 1, _SQRT2))


def _shift(x: jax.Array, di: int, dj: int, fill) -> jax.Array:
    """``y[i, j] = x[i + di, j + dj]`` (``fill`` outside)."""
    h, w = x.shape
    pad = jnp.pad(x, 1, constant_values=fill)
    return pad[1 + di:1 + di + h, 1 + dj:1 + dj + w]


def distance_field(free: jax.Array, goal: jax.Array, resolution: float = 0.1, *, sweeps_per_check: int = 8) -> jax.Array:
    """Geodesic distance (metres) from every cell to the nearest goal cell.

    Args:
      free: ``bool [H, W]`` traversable cells.
      goal: ``bool [H, W]`` goal cells (only free goal cells count).
      resolution: cell size in metres.
      sweeps_per_check: relaxation sweeps between convergence checks.

    Returns:
      ``float32 [H, W]``: distance in metres, ``inf`` for blocked or unreachable cells.
    """
    free = jnp.asarray(free, bool)
    d0 = jnp.where(free & jnp.asarray(goal, bool), 0.0, jnp.inf).astype(jnp.float32)
    allowed = []
    for di, dj, cost in _MOVES:
        ok = _shift(free, di, dj, False)
        if di and dj:
            ok = ok & _shift(free, di, 0, False) & _shift(free, 0, dj, False)
        allowed.append((di, dj, jnp.where(ok & free, jnp.float32(cost), jnp.inf)))

    def sweep(d):
        best = d
        for di, dj, cost in allowed:
            best = jnp.minimum(best, _shift(d, di, dj, jnp.inf) + cost)
        return best

    def body(carry):
        d, _ = carry
        new = jax.lax.fori_loop(0, sweeps_per_check, lambda _, x: sweep(x), d)
        return new, jnp.any(new != d)

    d, _ = jax.lax.while_loop(lambda c: c[1], body, (d0, jnp.bool_(True)))
    return d * jnp.float32(resolution)


def geodesic_at(field: jax.Array, pos: jax.Array, origin: jax.Array, resolution: float, *, radius: int = 1) -> jax.Array:
    """Geodesic distance ``[]`` at world position ``pos [2]`` (x, y).

    ``min over cells c within radius cells of pos's cell: field[c] + |pos - centre(c)|``:
    continuous in ``pos``, defined next to walls where the cell under the robot may be
    blocked on the inflated map, and (with ``radius=1``) equal to the field at the centre of
    every free cell whose 8 neighbours are free (elsewhere it may undercut the field by at
    most ``(2 - sqrt(2))`` cells, where the graph forbids a diagonal past a corner). Falls back
    to a large value (1e3) when no reachable cell is near.
    """
    h, w = field.shape
    rel = (pos - origin) / resolution
    j0 = jnp.floor(rel[0]).astype(jnp.int32)
    i0 = jnp.floor(rel[1]).astype(jnp.int32)
    offs = jnp.arange(-radius, radius + 1)
    ii = jnp.clip(i0 + offs[:, None], 0, h - 1)
    jj = jnp.clip(j0 + offs[None, :], 0, w - 1)
    vals = field[ii, jj]
    cx = origin[0] + (jj + 0.5) * resolution
    cy = origin[1] + (ii + 0.5) * resolution
    cand = vals + jnp.hypot(pos[0] - cx, pos[1] - cy)
    best = jnp.min(cand)
    return jnp.where(jnp.isfinite(best), best, 1e3)


def dijkstra_numpy(free: np.ndarray, goal: np.ndarray, resolution: float = 0.1) -> np.ndarray:
    """Reference: Dijkstra with a binary heap on the same graph (host NumPy)."""
    h, w = free.shape
    dist = np.full((h, w), np.inf)
    heap = []
    for i, j in zip(*np.nonzero(goal & free)):
        dist[i, j] = 0.0
        heap.append((0.0, int(i), int(j)))
    heapq.heapify(heap)
    while heap:
        d, i, j = heapq.heappop(heap)
        if d > dist[i, j]:
            continue
        for di, dj, cost in _MOVES:
            a, b = i + di, j + dj
            if not (0 <= a < h and 0 <= b < w and free[a, b]):
                continue
            if di and dj and not (free[i + di, j] and free[i, j + dj]):
                continue
            if d + cost < dist[a, b]:
                dist[a, b] = d + cost
                heapq.heappush(heap, (d + cost, a, b))
    return dist * resolution
