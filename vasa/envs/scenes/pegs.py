"""Pegs and nuts for ``robo/nut_assembly`` (robosuite's NutAssembly on MJX), built with
``mujoco.MjSpec`` from boxes only (MJX has closed-form box collisions; meshes are costly).

Facts from robosuite (``robosuite/models/assets/arenas/pegs_arena.xml``,
``robosuite/models/assets/objects/square-nut.xml`` and ``round-nut.xml``):

* pegs fixed to the table at ``(0.23, +-0.10)`` (x, y), half-height 0.1 m with their centre
  0.03 m above the table top (0.13 m stand out; robosuite's pegs are at z 0.85 and its
  NutAssembly's table top at 0.82, ``table_offset`` in ``nut_assembly.py``): the square peg is
  a box of half-width 0.016 m at ``y = +0.1``, the round peg a cylinder of radius 0.02 m at
  ``y = -0.1``;
* the square nut is 4 walls around a square hole of half-width 0.02275 m (walls 0.021 m thick,
  outer half-width 0.04375 m) with a handle box (half-sizes 0.02525 x 0.015875) centred 0.054 m
  along the nut's +x; the round nut is 8 boxes (half-sizes 0.01125 radial x 0.0225 tangential)
  at radius 0.04245 m every 45 deg (a ring with an octagonal hole of inradius 0.0312 m) with the
  same handle centred 0.06 m along +x; both 0.02 m thick (half-height 0.01), density 100, the
  handle site at the handle's centre. The round nut's ring here is drawn as ``n`` boxes
  around the circle (robosuite's layout is ``n = 8``).

MJX cost and collision bits (``contype``/``conaffinity``, see :mod:`vasa.envs.scenes.table`):
MJX has no box-cylinder collision, so the round peg collides as a capsule of the same radius and
total height (its visual is the cylinder; the rounded top only eases insertion). Each geom pair
costs MJX its worst-case contacts every step (box-box up to 8), so contacts are kept to what the
task needs:

======================  ========  ============  ==============================================
geom                    contype   conaffinity   collides with
======================  ========  ============  ==============================================
nut ring boxes          2 + 4     1             gripper pads, table, pegs
nut handle              2         1             gripper pads, table
pegs                    0         4             nut rings
nut bumpers (spheres)   16        16            the other nut's bumpers
======================  ========  ============  ==============================================

Nuts touch each other only through two invisible bumper spheres each (one bounding the ring,
one the handle: 4 sphere-sphere contacts where the boxes would be up to 45 box-box pairs of 8
contacts); the handle does not collide with the pegs (it stays outside the ring).
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from vasa.envs.scenes.table import TABLE_TOP

PEG_XY = {"square": (0.23, 0.10), "round": (0.23, -0.10)}
PEG_HALF_HEIGHT = 0.1
PEG_CENTRE_ABOVE_TABLE = 0.03  # robosuite: pegs at z 0.85 (pegs_arena.xml), NutAssembly's table top at 0.82
SQUARE_PEG_HALF = 0.016
ROUND_PEG_RADIUS = 0.02
NUT_HALF_HEIGHT = 0.01
NUT_DENSITY = 100.0
NUT_FRICTION = (0.95, 0.005, 0.0001)  # robosuite: sliding 0.95 (condim 4 there; 3 here)
HANDLE_HALF = (0.02525, 0.015875)
HANDLE_X = {"square": 0.054, "round": 0.06}
SQUARE_WALLS = (  # (x, y, half_x, half_y): robosuite's square-nut.xml
    (-0.03325, 0.0, 0.0105, 0.04375), (0.03325, 0.0, 0.0105, 0.04375),
    (0.0, 0.03325, 0.03125, 0.0105), (0.0, -0.03325, 0.03125, 0.0105))
ROUND_RING = (0.04245, 0.01125, 0.0225)  # radius, radial and tangential half-sizes (round-nut.xml)
NUT_KINDS = ("square", "round")
RING_BITS = (2 | 4, 1)
HANDLE_BITS = (2, 1)
PEG_BITS = (0, 4)
BUMPER_BITS = (16, 16)
NUT_COLORS = {"square": (0.78, 0.6, 0.2, 1.0), "round": (0.62, 0.64, 0.68, 1.0)}


def _quat_z(angle: float) -> list[float]:
    return [math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]


def nut_boxes(kind: str, ring_boxes: int = 8) -> np.ndarray:
    """The nut's boxes in its body frame: ``[B, 5] float64`` rows ``(x, y, half_x, half_y,
    yaw)``, ring boxes first, the handle last (half-height :data:`NUT_HALF_HEIGHT` for all).

    ``kind``: ``"square"`` (4 walls) or ``"round"`` (``ring_boxes`` boxes around a circle,
    box ``k`` at angle ``2 pi k / ring_boxes``, long side tangential)."""
    if kind not in NUT_KINDS:
        raise ValueError(f"kind={kind!r} is not allowed: choose from {NUT_KINDS}.")
    if kind == "square":
        rows = [(x, y, hx, hy, 0.0) for x, y, hx, hy in SQUARE_WALLS]
    else:
        radius, radial, tangential = ROUND_RING
        rows = []
        for k in range(ring_boxes):
            a = 2.0 * math.pi * k / ring_boxes
            rows.append((radius * math.cos(a), radius * math.sin(a), radial, tangential, a))
    rows.append((HANDLE_X[kind], 0.0, *HANDLE_HALF, 0.0))
    return np.array(rows)


def _corners(boxes: np.ndarray) -> np.ndarray:
    """``[B, 4, 2]`` corners (x, y) of ``boxes`` (rows of :func:`nut_boxes`) in the nut frame."""
    sx = np.array([1, 1, -1, -1])[None, :]
    sy = np.array([1, -1, 1, -1])[None, :]
    c, s = np.cos(boxes[:, 4:5]), np.sin(boxes[:, 4:5])
    lx, ly = sx * boxes[:, 2:3], sy * boxes[:, 3:4]
    return np.stack([boxes[:, 0:1] + c * lx - s * ly, boxes[:, 1:2] + s * lx + c * ly], axis=-1)


def hole_halfwidth(kind: str, ring_boxes: int = 8) -> float:
    """Inradius of the nut's hole (m): the distance from the centre to the nearest ring face
    (each ring box's extent along the line from the centre through its own centre)."""
    boxes = nut_boxes(kind, ring_boxes)[:-1]
    d = np.arctan2(boxes[:, 1], boxes[:, 0]) - boxes[:, 4]
    radial = np.abs(np.cos(d)) * boxes[:, 2] + np.abs(np.sin(d)) * boxes[:, 3]
    return float(np.min(np.hypot(boxes[:, 0], boxes[:, 1]) - radial))


def nut_radius(kind: str, ring_boxes: int = 8, handle: bool = True) -> float:
    """Horizontal radius (m) of the circle about the nut's centre that holds its ring (and
    handle when ``handle``): the placement footprint."""
    boxes = nut_boxes(kind, ring_boxes)
    boxes = boxes if handle else boxes[:-1]
    return float(np.max(np.linalg.norm(_corners(boxes), axis=-1)))


def add_pegs(spec: mujoco.MjSpec, top: float = TABLE_TOP) -> dict:
    """The square and the round peg (robosuite's PegsArena) fixed on a table whose top is at
    ``top``. Returns ``{"square": body name, "round": body name, "geoms": {kind: collision geom}}``."""
    box = mujoco.mjtGeom.mjGEOM_BOX
    z = top + PEG_CENTRE_ABOVE_TABLE
    names = {}
    for kind in NUT_KINDS:
        x, y = PEG_XY[kind]
        body = spec.worldbody.add_body(name=f"peg_{kind}", pos=[x, y, z])
        rgba = [0.55, 0.45, 0.2, 1.0] if kind == "square" else [0.5, 0.52, 0.56, 1.0]
        if kind == "square":
            body.add_geom(name="peg_square_geom", type=box, size=[SQUARE_PEG_HALF, SQUARE_PEG_HALF, PEG_HALF_HEIGHT],
                          rgba=rgba, friction=[1.0, 0.005, 0.0001], group=1, contype=PEG_BITS[0],
                          conaffinity=PEG_BITS[1])
        else:
            body.add_geom(name="peg_round_visual", type=mujoco.mjtGeom.mjGEOM_CYLINDER,
                          size=[ROUND_PEG_RADIUS, PEG_HALF_HEIGHT, 0], rgba=rgba, contype=0, conaffinity=0, group=1)
            body.add_geom(name="peg_round_geom", type=mujoco.mjtGeom.mjGEOM_CAPSULE,
                          size=[ROUND_PEG_RADIUS, PEG_HALF_HEIGHT - ROUND_PEG_RADIUS, 0], rgba=[1, 1, 1, 0],
                          friction=[1.0, 0.005, 0.0001], group=3, contype=PEG_BITS[0], conaffinity=PEG_BITS[1])
        names[kind] = body.name
    return {**names, "geoms": {k: f"peg_{k}_geom" for k in NUT_KINDS}}


def add_nut(spec: mujoco.MjSpec, kind: str, name: str | None = None, pos=(0.0, 0.0), yaw: float = 0.0,
            rgba=None, ring_boxes: int = 8, top: float = TABLE_TOP) -> dict:
    """A free nut (``kind`` ``"square"`` or ``"round"``, see :func:`nut_boxes`) resting on the
    table at ``pos`` (x, y), turned ``yaw`` (rad). Sites: ``<name>_site`` at the hole's centre,
    ``<name>_handle`` at the handle's centre.

    Returns names ``{"body", "joint", "geoms" (ring boxes then handle), "handle_geom", "site",
    "handle_site"}``.
    """
    boxes = nut_boxes(kind, ring_boxes)
    name = name or f"{kind}_nut"
    rgba = list(rgba or NUT_COLORS[kind])
    body = spec.worldbody.add_body(name=name, pos=[pos[0], pos[1], top + NUT_HALF_HEIGHT], quat=_quat_z(yaw))
    body.add_freejoint(name=f"{name}_joint")
    geoms = []
    for i, (x, y, hx, hy, a) in enumerate(boxes):
        handle = i == len(boxes) - 1
        bits = HANDLE_BITS if handle else RING_BITS
        gname = f"{name}_handle_geom" if handle else f"{name}_ring{i}"
        body.add_geom(name=gname, type=mujoco.mjtGeom.mjGEOM_BOX, size=[hx, hy, NUT_HALF_HEIGHT], pos=[x, y, 0.0],
                      quat=_quat_z(a), density=NUT_DENSITY, rgba=rgba, friction=list(NUT_FRICTION), condim=3, group=1,
                      contype=bits[0], conaffinity=bits[1])
        geoms.append(gname)
    # bumpers: spheres bounding the ring and the handle (nut-nut contacts only; massless, invisible)
    ring_r = nut_radius(kind, ring_boxes, handle=False)
    hx = HANDLE_X[kind]
    for gname, centre, radius in ((f"{name}_bumper_ring", 0.0, ring_r), (f"{name}_bumper_handle", hx + 0.01, 0.018)):
        body.add_geom(name=gname, type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[radius, 0, 0], pos=[centre, 0, 0],
                      mass=0.0, density=0.0, rgba=[1, 1, 1, 0], group=3, contype=BUMPER_BITS[0],
                      conaffinity=BUMPER_BITS[1])
    body.add_site(name=f"{name}_site", size=[0.003, 0, 0], group=3)
    body.add_site(name=f"{name}_handle", pos=[HANDLE_X[kind], 0, 0], size=[0.003, 0, 0], group=3)
    return {"body": name, "joint": f"{name}_joint", "geoms": geoms, "handle_geom": geoms[-1], "site": f"{name}_site",
            "handle_site": f"{name}_handle"}
