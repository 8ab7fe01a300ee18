"""LiDAR settings and readings (iGibson's virtual LiDAR): the scan pattern of a LiDAR
(:class:`LidarConfig`: rays, fields of view, range, beams), iGibson's dropout noise
(:func:`lidar_dropout`) and the local occupancy grid of a planar scan
(:func:`occupancy_grid`). The sensor itself, :class:`vasa.envs.render.Lidar`, casts the
rays with the ray-cast renderer and lives beside it in :mod:`vasa.envs.render`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated

import jax
import jax.numpy as jnp
import numpy as np

from vasa.run.fields import NonNegFloat, PosFloat, PosInt, Range, check_fields, ordered_pair


@dataclasses.dataclass(frozen=True)
class LidarConfig:
    """A scanning LiDAR.

    num_rays: rays per beam over ``fov_deg`` (iGibson's default 128; Turtlebot 228 over 240).
    fov_deg: horizontal field of view in degrees, centred on the sensor's +x axis.
    min_range, max_range: metres; readings are clipped to ``[min_range, max_range]`` and a
      ray that hits nothing within ``max_range`` reads ``max_range``.
    beams: 1 (a planar scan) or more (a vertical fan, e.g. 16 beams).
    vertical_fov_deg: (lowest, highest) beam elevation in degrees for ``beams > 1``.
    """

    num_rays: PosInt = 128
    fov_deg: Annotated[float, Range(gt=0, le=360)] = 240.0
    min_range: NonNegFloat = 0.05
    max_range: PosFloat = 5.6
    beams: PosInt = 1
    vertical_fov_deg: ordered_pair(Annotated[float, Range(ge=-90, le=90)]) = (-15.0, 15.0)

    def validate(self):
        """Raise ``ValueError`` naming the field, its value and what is allowed."""
        check_fields(self)
        if not self.min_range < self.max_range:
            raise ValueError(f"LidarConfig.min_range={self.min_range!r} is not allowed: it must be below "
                             f"max_range={self.max_range!r}.")

    def angles(self) -> np.ndarray:
        """Horizontal ray angles ``[num_rays]`` in radians (-fov/2 .. +fov/2; a full 360
        degree scan does not repeat its first ray)."""
        half = math.radians(self.fov_deg) / 2
        if self.fov_deg >= 360:
            return np.linspace(-half, half, self.num_rays, endpoint=False, dtype=np.float32)
        return np.linspace(-half, half, self.num_rays, dtype=np.float32)

    def elevations(self) -> np.ndarray:
        """Beam elevations ``[beams]`` in radians (0 for a single beam)."""
        if self.beams == 1:
            return np.zeros(1, np.float32)
        return np.deg2rad(np.linspace(*self.vertical_fov_deg, self.beams)).astype(np.float32)


def lidar_dropout(key: jax.Array, ranges: jax.Array, p: float, max_range: float) -> jax.Array:
    """iGibson's dropout noise: each reading independently becomes ``max_range`` with
    probability ``p``. ``ranges``: any shape, float32."""
    drop = jax.random.bernoulli(key, p, ranges.shape)
    return jnp.where(drop, jnp.asarray(max_range, ranges.dtype), ranges)


OCC_UNKNOWN, OCC_FREE, OCC_OCCUPIED = 0, 1, 2


def occupancy_grid(ranges: jax.Array, angles: jax.Array, max_range: float, *, grid_size: int = 128,
                   extent: float = 5.0, footprint_radius: float = 0.2) -> jax.Array:
    """Local occupancy grid from a 1-beam scan, centred on the sensor (iGibson's default:
    128 x 128 cells over 5 m).

    Args:
      ranges: ``float32 [N]`` readings (metres); ``max_range`` means nothing was hit.
      angles: ``float32 [N]`` ray angles in the sensor frame (radians, increasing).
      extent: side of the square grid in metres.
      footprint_radius: cells within this radius of the sensor are marked free.

    Returns:
      ``uint8 [grid_size, grid_size]`` with :data:`OCC_UNKNOWN` (0), :data:`OCC_FREE` (1),
      :data:`OCC_OCCUPIED` (2). Row 0 is the sensor's +x (forward) edge, column 0 its +y
      (left) edge, so the grid reads like a map with the robot facing up.

    A cell is free if it lies inside the scanned fan closer than its beam's reading,
    occupied if it contains a beam's hit point (a reading below ``max_range``), and
    unknown otherwise (behind obstacles, beyond the range, outside the field of view).
    """
    cell = extent / grid_size
    centres = (jnp.arange(grid_size, dtype=jnp.float32) + 0.5) * cell - extent / 2
    x = -centres[:, None] * jnp.ones((1, grid_size))  # forward decreases with row
    y = -centres[None, :] * jnp.ones((grid_size, 1))  # left decreases with column
    r = jnp.sqrt(x * x + y * y)
    theta = jnp.arctan2(y, x)
    n = angles.shape[0]
    step = (angles[-1] - angles[0]) / jnp.maximum(n - 1, 1)
    idx = jnp.round((theta - angles[0]) / jnp.where(step > 0, step, 1.0)).astype(jnp.int32)
    # wrap for full-circle scans
    idx = jnp.where((idx >= n) & (n * step >= 2 * jnp.pi - 1e-3), idx - n, idx)
    in_fov = (idx >= 0) & (idx < n)
    reading = ranges[jnp.clip(idx, 0, n - 1)]
    free = in_fov & (r < reading - cell / 2)
    grid = jnp.where(free, OCC_FREE, OCC_UNKNOWN)
    # hit points: scatter each reading below max_range into its cell
    hit = ranges < max_range - 1e-6
    hx, hy = ranges * jnp.cos(angles), ranges * jnp.sin(angles)
    row = jnp.floor((-hx + extent / 2) / cell).astype(jnp.int32)
    col = jnp.floor((-hy + extent / 2) / cell).astype(jnp.int32)
    ok = hit & (row >= 0) & (row < grid_size) & (col >= 0) & (col < grid_size)
    occ = jnp.zeros((grid_size, grid_size), bool).at[jnp.where(ok, row, grid_size), jnp.where(ok, col, grid_size)].set(True, mode="drop")
    grid = jnp.where(occ, OCC_OCCUPIED, grid)
    grid = jnp.where(r <= footprint_radius, OCC_FREE, grid)
    return grid.astype(jnp.uint8)
