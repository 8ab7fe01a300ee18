"""Bins and primitive household objects for bin picking (``robo/pick_place``), built with ``mujoco.MjSpec``.

A bin (:func:`add_bin`) stands on the table: its floor is the table's collision plane (a thin
visual box marks it), its four low walls are boxes for the eye and capsules of the same height
and thickness for collisions (MJX has no box-cylinder collision; it has capsule-box,
capsule-capsule and capsule-cylinder, so capsule walls stop every object shape used here). Walls use the table's collision bits
(:data:`vasa.envs.scenes.table.TABLE_BITS`): they stop objects, not the fingers.

Objects (:func:`add_object`) are one primitive geom on a free body, fit inside a class's
bounding box (half-extents, m): ``"box"`` fills it, ``"cylinder"`` stands upright (radius the
smaller horizontal half-extent), ``"capsule"`` lies along the box's x axis (radius the smaller of
the y and z half-extents). Their collision bits (:data:`PICK_OBJECT_BITS`) meet the gripper
pads, the table and the walls but not other objects; :func:`add_object_pairs` adds explicit
contact pairs between objects where MJX implements the pair of shapes.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np
from mujoco.mjx._src.collision_driver import has_collision_fn
from mujoco.mjx._src.types import GeomType

from vasa.envs.scenes import table

PICK_OBJECT_BITS = (2, 1)  # contype 2 meets the table/walls (conaffinity 2); conaffinity 1 meets the pads
SHAPES = ("box", "cylinder", "capsule")
_GEOM = {"box": mujoco.mjtGeom.mjGEOM_BOX, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER,
         "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE}


def add_bin(spec: mujoco.MjSpec, name: str, pos, size, wall_height: float = 0.03, rgba=(0.45, 0.3, 0.2, 1.0)) -> dict:
    """A bin centred at ``pos`` (x, y) on the table, outer size ``size`` (x, y full lengths, m),
    walls ``wall_height`` high and as thick. Returns ``{"walls": [4 collision geom names]}``."""
    world = spec.worldbody
    x, y = pos
    sx, sy = size
    r = wall_height / 2  # collision capsules: radius = half the wall's height and thickness
    visual = {"contype": 0, "conaffinity": 0, "group": 1}
    world.add_geom(name=f"{name}_floor", type=mujoco.mjtGeom.mjGEOM_BOX, size=[sx / 2, sy / 2, 0.001],
                   pos=[x, y, table.TABLE_TOP - 0.0005], rgba=[c * 0.8 for c in rgba[:3]] + [1.0], **visual)
    walls = []
    # (centre offset, half-length, along x?) for the walls at -y, +y, -x, +x
    for i, (dx, dy, half, along_x) in enumerate([(0, -(sy / 2 - r), sx / 2, True), (0, sy / 2 - r, sx / 2, True),
                                                  (-(sx / 2 - r), 0, sy / 2 - 2 * r, False),
                                                  (sx / 2 - r, 0, sy / 2 - 2 * r, False)]):
        c = [x + dx, y + dy, table.TABLE_TOP + r]
        box = [half, r, r] if along_x else [r, half, r]
        world.add_geom(name=f"{name}_wall{i}_visual", type=mujoco.mjtGeom.mjGEOM_BOX, size=box, pos=c, rgba=list(rgba),
                       **visual)
        ends = [half - r, 0, 0] if along_x else [0, half - r, 0]
        world.add_geom(name=f"{name}_wall{i}", type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[r, 0, 0],
                       fromto=[c[0] - ends[0], c[1] - ends[1], c[2], c[0] + ends[0], c[1] + ends[1], c[2]], group=3,
                       rgba=[1, 1, 1, 0], friction=[1.0, 0.005, 0.0001], contype=table.TABLE_BITS[0],
                       conaffinity=table.TABLE_BITS[1])
        walls.append(f"{name}_wall{i}")
    return {"walls": walls}


def shape_size(shape: str, half_extents) -> tuple[list[float], float, list[float]]:
    """MuJoCo ``size``, resting half-height (m) and local ``quat`` of ``shape`` fit into ``half_extents``."""
    hx, hy, hz = (float(v) for v in half_extents)
    if shape == "box":
        return [hx, hy, hz], hz, [1.0, 0.0, 0.0, 0.0]
    if shape == "cylinder":
        return [min(hx, hy), hz, 0.0], hz, [1.0, 0.0, 0.0, 0.0]
    if shape == "capsule":
        radius = min(hy, hz)
        c = math.cos(math.pi / 4)
        return [radius, max(hx - radius, 1e-3), 0.0], radius, [c, 0.0, c, 0.0]  # local z turned onto x
    raise ValueError(f"shape={shape!r} is not allowed: choose from {SHAPES}.")


def add_object(spec: mujoco.MjSpec, name: str, shape: str, half_extents, pos=(0.0, 0.0), mass: float = 0.1,
               rgba=(0.8, 0.8, 0.8, 1.0), friction=(1.0, 0.005, 0.0001)) -> dict:
    """A free object of one primitive ``shape`` (see the module docstring) resting on the table at
    ``pos`` (x, y). Returns ``{"body", "joint", "geom", "half_height"}``."""
    size, half_height, quat = shape_size(shape, half_extents)
    body = spec.worldbody.add_body(name=name, pos=[pos[0], pos[1], table.TABLE_TOP + half_height])
    body.add_freejoint(name=f"{name}_joint")
    body.add_geom(name=f"{name}_geom", type=_GEOM[shape], size=size, quat=quat, mass=mass, rgba=list(rgba),
                  friction=list(friction), condim=3, group=1, contype=PICK_OBJECT_BITS[0],
                  conaffinity=PICK_OBJECT_BITS[1])
    return {"body": name, "joint": f"{name}_joint", "geom": f"{name}_geom", "half_height": half_height}


def add_object_pairs(spec: mujoco.MjSpec, geoms, shapes) -> list[tuple[str, str]]:
    """Explicit contact pairs between the objects ``geoms`` (names) of ``shapes`` where MJX has
    a collision function for the two shapes (box-cylinder has none). Returns the pairs added."""
    pairs = []
    for i in range(len(geoms)):
        for j in range(i):
            t = sorted((GeomType[shapes[i].upper()], GeomType[shapes[j].upper()]))
            if has_collision_fn(*t):
                spec.add_pair(geomname1=geoms[j], geomname2=geoms[i], condim=3, friction=[1.0, 1.0, 0.005, 0.0001, 0.0001])
                pairs.append((geoms[j], geoms[i]))
    return pairs


def footprint_radius(shape: str, half_extents) -> float:
    """Radius (m) of the smallest vertical cylinder around the object for any yaw."""
    size, _, _ = shape_size(shape, half_extents)
    if shape == "cylinder":
        return size[0]
    return float(np.hypot(half_extents[0], half_extents[1]))
