"""Procedural apartments for indoor navigation (iGibson-style), built with ``mujoco.MjSpec``.

A *family* is one compiled model: rooms on a ``rows x cols`` grid of cells (plus an optional
corridor row), every wall edge between two cells made of three fixed-size boxes (two wall
segments and the door filler between them), furniture assemblies (tables, beds, sofas,
shelves from boxes and capsules, sizes drawn inside class boxes by the family seed), floor
lamps (the target objects) and optional pushable boxes (free bodies). A *layout* of the
family is an assignment of poses: which edges are walls, doors or open, where each piece
of furniture and each lamp stands (or whether it is parked out of sight, 50 m below the
floor), where the pushable boxes start. Every wall segment, furniture piece and lamp is a
mocap body, so a layout is just ``mocap_pos``/``mocap_quat`` arrays: many layouts share one
compiled MJX model and each vmapped environment can stand in its own (``mjx.Data`` holds
the mocap poses, and vasa's renderer and LiDAR read geometry from ``Data``).

Connectivity: the door/open edges contain a random spanning tree of the cells, furniture is
only kept where it leaves every free cell of the apartment connected, and doors are
``door_width >= 0.8`` m wide (the robot is 0.36 m across).

Splits. Layout seeds below :data:`HELDOUT_SEED_OFFSET` (1,000,000) are training layouts;
held-out layouts use seeds ``HELDOUT_SEED_OFFSET + i`` (:func:`layout_seeds`), so the two sets
never share a seed. Looks (colours, floor texture, light) come from a separate *look seed*,
training looks from ``look_seed < HELDOUT_SEED_OFFSET`` and held-out looks from the others;
a look never touches geometry, masses or contact parameters.

Collision filtering keeps MJX cheap: static geoms (walls, furniture, lamps) have
``contype=2, conaffinity=0``, the robot ``1 / 2|4``, pushables ``4 / 1|2|8`` and the floor
``8 / 0``: the only pairs are robot-static, robot-pushable, pushable-static, pushable-floor.

Maps: :func:`occupancy_maps` rasterises a layout at 0.1 m (iGibson's traversability
resolution) from the geometry itself: ``occupied`` (a static geom overlaps the cell centre
at robot height) and ``free`` (the centre is farther than the robot radius from every such
geom: where the robot's centre may go).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import numpy as np

from vasa.run.fields import PosFloat, Range, check_fields

HELDOUT_SEED_OFFSET = 1_000_000
PARK_Z = -50.0  # parked bodies sit here, out of every sensor's reach
OPEN, DOOR, WALL = 0, 1, 2
FURNITURE = ("table", "bed", "sofa", "shelf")
# class boxes: (length, depth) ranges in metres and a height range
CLASS_BOXES = {"table": ((0.8, 1.4), (0.6, 0.9), (0.70, 0.78)), "bed": ((1.9, 2.1), (0.9, 1.6), (0.45, 0.6)),
               "sofa": ((1.4, 2.0), (0.7, 0.9), (0.75, 0.9)), "shelf": ((0.6, 1.2), (0.3, 0.45), (1.2, 2.0))}
STATIC, ROBOT, PUSHABLE, FLOOR = 2, 1, 4, 8  # contype bits
ARMREST_QUAT = (0.7071067811865476, 0.7071067811865476, 0.0, 0.0)  # capsule axis z -> y (furniture capsules)


@dataclasses.dataclass(frozen=True)
class ApartmentConfig:
    """One family of apartments (one compiled model).

    rows, cols: the grid of room cells (``rows * cols`` rooms before open edges merge some).
    corridor: add a corridor row (``corridor_width`` m) below the rooms, open along its length.
    room_size: (min, max) side of a room cell in metres. door_width: >= 0.8 m.
    furniture_per_room, lamps, pushables: slots per family (a layout may park some furniture).
    robot_radius: the robot's collision radius (map inflation). resolution: map cell (m).
    family_seed: draws cell sizes and furniture sizes (one compiled model per family seed).
    hinged_doors: put a door leaf on a vertical hinge in every door opening (interactive
      objects: the robot pushes them open; :func:`door_hinge`). Maps and geodesic distances
      ignore them, as they ignore pushable boxes.
    """

    rows: Annotated[int, Range(ge=1, le=4)] = 2
    cols: Annotated[int, Range(ge=1, le=4)] = 2
    corridor: bool = True
    corridor_width: Annotated[float, Range(ge=1.0, le=3.0)] = 1.4
    room_size: tuple[PosFloat, PosFloat] = (2.6, 3.6)
    door_width: Annotated[float, Range(ge=0.8, le=2.0)] = 1.0
    wall_thickness: Annotated[float, Range(ge=0.05, le=0.3)] = 0.1
    wall_height: PosFloat = 2.4
    furniture_per_room: Annotated[int, Range(ge=0, le=4)] = 2
    lamps: Annotated[int, Range(ge=1, le=4)] = 1
    pushables: Annotated[int, Range(ge=0, le=8)] = 0
    robot_radius: Annotated[float, Range(gt=0.05, le=0.4)] = 0.18
    resolution: Annotated[float, Range(ge=0.02, le=0.5)] = 0.1
    family_seed: Annotated[int, Range(ge=0)] = 0
    hinged_doors: bool = False

    def validate(self) -> ApartmentConfig:
        """Raise ``ValueError`` naming the field, its value and what is allowed."""
        check_fields(self)
        lo, hi = self.room_size
        if not (1.5 <= lo <= hi <= 8.0):
            raise ValueError(f"ApartmentConfig.room_size={self.room_size!r} is not allowed: it must be (min, max) "
                             "with 1.5 <= min <= max <= 8.0 metres.")
        if self.door_width + 0.4 > lo:
            raise ValueError(f"ApartmentConfig.door_width={self.door_width!r} is not allowed: it must leave 0.2 m of "
                             f"wall each side in the smallest room (room_size min {lo}).")
        return self


# ------------------------------------------------------------------------------- family


@dataclasses.dataclass
class Family:
    """The fixed structure of an apartment family (numpy, host side).

    xs: ``[cols + 1]`` cell boundaries in x; ys: ``[R + 1]`` in y (row 0 is the corridor
    when there is one). edges: ``[E, 5]`` rows ``(kind, cell_a, cell_b, fixed, along)``;
    ``kind`` 0 vertical (x = const) 1 horizontal; slots: list of mocap bodies as dicts with
    ``"name", "geoms"`` (local boxes/capsules) and ``"kind"``.
    """

    config: ApartmentConfig
    xs: np.ndarray
    ys: np.ndarray
    corridor_rows: tuple
    edges: list
    furniture: list  # (cell, class, (length, depth, height))
    lamp_size: tuple


def make_family(config: ApartmentConfig) -> Family:
    """Draw the family's cell sizes and furniture sizes from ``config.family_seed``."""
    config.validate()
    rng = np.random.default_rng([config.family_seed, 7])
    widths = rng.uniform(*config.room_size, config.cols)
    heights = list(rng.uniform(*config.room_size, config.rows))
    corridor_rows = ()
    if config.corridor:
        heights = [config.corridor_width] + heights
        corridor_rows = (0,)
    xs = np.concatenate([[0.0], np.cumsum(widths)])
    ys = np.concatenate([[0.0], np.cumsum(heights)])
    nr, nc = len(heights), config.cols
    edges = []
    for r in range(nr):
        for c in range(nc):
            if c + 1 < nc:
                edges.append((0, r * nc + c, r * nc + c + 1))
            if r + 1 < nr:
                edges.append((1, r * nc + c, (r + 1) * nc + c))
    furniture = []
    for cell in range(nr * nc):
        if cell // nc in corridor_rows:
            continue
        for k in range(config.furniture_per_room):
            cls = FURNITURE[rng.integers(len(FURNITURE))]
            (l0, l1), (d0, d1), (h0, h1) = CLASS_BOXES[cls]
            furniture.append((cell, cls, (rng.uniform(l0, l1), rng.uniform(d0, d1), rng.uniform(h0, h1))))
    return Family(config, xs, ys, corridor_rows, edges, furniture, (0.18, rng.uniform(1.3, 1.7)))


def _cell_rect(fam: Family, cell: int) -> tuple[float, float, float, float]:
    nc = fam.config.cols
    r, c = divmod(cell, nc)
    return fam.xs[c], fam.xs[c + 1], fam.ys[r], fam.ys[r + 1]


def _edge_segments(fam: Family, edge) -> list[tuple[np.ndarray, np.ndarray]]:
    """The edge's three boxes ``(centre [3], half sizes [3])``: segment A, segment B, filler."""
    kind, a, _ = edge
    x0, x1, y0, y1 = _cell_rect(fam, a)
    cfg = fam.config
    t, h, d = cfg.wall_thickness, cfg.wall_height, cfg.door_width
    fixed = x1 if kind == 0 else y1
    s0, s1 = (y0, y1) if kind == 0 else (x0, x1)
    m = (s0 + s1) / 2
    pieces = [(s0 - t / 2, m - d / 2), (m + d / 2, s1 + t / 2), (m - d / 2, m + d / 2)]
    out = []
    for lo, hi in pieces:
        c_along, half = (lo + hi) / 2, (hi - lo) / 2
        if kind == 0:
            out.append((np.array([fixed, c_along, h / 2]), np.array([t / 2, half, h / 2])))
        else:
            out.append((np.array([c_along, fixed, h / 2]), np.array([half, t / 2, h / 2])))
    return out


def furniture_geoms(cls: str, size: tuple) -> list[tuple]:
    """Local geoms of a furniture assembly: ``(type, pos [3], size [3])`` with the piece
    centred on its mocap body (x along its length, y its depth, z up from the floor)."""
    L, D, H = size
    box, cap = "box", "capsule"
    if cls == "table":
        leg = 0.03
        out = [(box, (0, 0, H - 0.02), (L / 2, D / 2, 0.02))]
        for sx in (-1, 1):
            for sy in (-1, 1):
                out.append((box, (sx * (L / 2 - 0.06), sy * (D / 2 - 0.06), (H - 0.04) / 2), (leg, leg, (H - 0.04) / 2)))
        return out
    if cls == "bed":
        return [(box, (0, 0, 0.15), (L / 2, D / 2, 0.15)), (box, (0, 0, 0.3 + (H - 0.3) / 2), (L / 2 - 0.02, D / 2 - 0.02, (H - 0.3) / 2)),
                (box, (-L / 2 + 0.03, 0, 0.5), (0.03, D / 2, 0.5))]
    if cls == "sofa":
        return [(box, (0, 0.05, 0.22), (L / 2, D / 2 - 0.05, 0.22)), (box, (0, -D / 2 + 0.1, H / 2), (L / 2, 0.1, H / 2)),
                (cap, (-L / 2 + 0.08, 0.05, 0.5), (0.08, D / 2 - 0.08, 0)), (cap, (L / 2 - 0.08, 0.05, 0.5), (0.08, D / 2 - 0.08, 0))]
    # the sofa's capsules are armrests lying along the piece's depth (y): see ``ARMREST_QUAT``
    if cls == "shelf":
        return [(box, (0, 0, H / 2), (L / 2, D / 2, H / 2))]
    raise ValueError(f"cls={cls!r} is not allowed: choose from {FURNITURE}.")


def lamp_geoms(size: tuple) -> list[tuple]:
    """A floor lamp: base box, pole capsule, shade (visual only: the 4th item False)."""
    r, h = size
    return [("box", (0, 0, 0.03), (r, r, 0.03), True), ("capsule", (0, 0, h / 2), (0.025, h / 2 - 0.03, 0), True),
            ("capsule", (0, 0, h), (0.16, 0.08, 0), False)]


# ------------------------------------------------------------------------------- layouts


def layout_seeds(split: str, num_layouts: int, start: int = 0) -> list[int]:
    """Seeds of ``num_layouts`` layouts of ``split`` (``"train"``: ``start + i``; ``"heldout"``:
    ``HELDOUT_SEED_OFFSET + start + i``). Train seeds must stay below the offset."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split={split!r} is not allowed: choose 'train' or 'heldout'.")
    if not isinstance(num_layouts, (int, np.integer)) or num_layouts < 1:
        raise ValueError(f"num_layouts={num_layouts!r} is not allowed: it must be an integer >= 1.")
    if start < 0 or (split == "train" and start + num_layouts > HELDOUT_SEED_OFFSET):
        raise ValueError(f"start={start!r} is not allowed: training seeds must lie in [0, {HELDOUT_SEED_OFFSET}).")
    base = 0 if split == "train" else HELDOUT_SEED_OFFSET
    return [base + start + i for i in range(num_layouts)]


@dataclasses.dataclass
class Layout:
    """One layout: ``edge_state [E]`` (OPEN/DOOR/WALL), the mocap poses ``mocap_pos [M, 3]``,
    ``mocap_quat [M, 4]`` (in the family model's mocap order), pushables' start
    ``push_pos [P, 3]``, the maps ``occupied``/``free`` ``bool [H, W]`` (row = y, col = x,
    cell ``(i, j)`` centred at ``origin + ((j + .5) res, (i + .5) res)``), ``origin [2]``,
    the lamps' positions ``lamp_pos [K, 2]``, the seed, and with hinged doors the door
    bodies' positions ``door_pos [E, 3]`` (:func:`door_positions`: a model field, ``body_pos``,
    as MJX does not carry a mocap body's pose over to its children)."""

    seed: int
    edge_state: np.ndarray
    mocap_pos: np.ndarray
    mocap_quat: np.ndarray
    push_pos: np.ndarray
    occupied: np.ndarray
    free: np.ndarray
    origin: np.ndarray
    lamp_pos: np.ndarray
    door_pos: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros((0, 3)))


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def _static_boxes(fam: Family, edge_state, furn_pose, lamp_pose) -> list[tuple]:
    """Footprints at robot height: ``(centre xy [2], half extents [2], yaw, radius)`` (a box
    with rounded corners of ``radius``; capsules standing up are discs)."""
    cfg = fam.config
    top = 2 * cfg.robot_radius
    out = []
    W, H = fam.xs[-1], fam.ys[-1]
    t = cfg.wall_thickness
    for c, hs in (((W / 2, -t / 2), (W / 2 + t, t / 2)), ((W / 2, H + t / 2), (W / 2 + t, t / 2)),
                  ((-t / 2, H / 2), (t / 2, H / 2 + t)), ((W + t / 2, H / 2), (t / 2, H / 2 + t))):
        out.append((np.array(c), np.array(hs), 0.0, 0.0))
    for e, state in zip(fam.edges, edge_state):
        segs = _edge_segments(fam, e)
        for k, (c, hs) in enumerate(segs):
            if state == WALL or (state == DOOR and k < 2):
                out.append((c[:2], hs[:2], 0.0, 0.0))
    for (cell, cls, size), pose in zip(fam.furniture, furn_pose):
        if pose is None:
            continue
        (px, py, yaw) = pose
        rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
        for kind, p, s in furniture_geoms(cls, size):
            lo = p[2] - (s[2] if kind == "box" else s[0])  # furniture capsules lie horizontal
            if lo > top:
                continue
            centre = np.array([px, py]) + rot @ np.array(p[:2])
            if kind == "box":
                out.append((centre, np.array(s[:2]), yaw, 0.0))
            else:  # a horizontal capsule along local y
                out.append((centre, np.array([0.0, s[1]]), yaw, s[0]))
    for pose in lamp_pose:
        out.append((np.array(pose), np.array([fam.lamp_size[0]] * 2), 0.0, 0.0))
    return out


def _raster(fam: Family, boxes, inflate: float) -> tuple[np.ndarray, np.ndarray]:
    cfg = fam.config
    res = cfg.resolution
    origin = np.array([-0.3, -0.3])
    nx = int(np.ceil((fam.xs[-1] + 0.6) / res))
    ny = int(np.ceil((fam.ys[-1] + 0.6) / res))
    cx = origin[0] + (np.arange(nx) + 0.5) * res
    cy = origin[1] + (np.arange(ny) + 0.5) * res
    px, py = np.meshgrid(cx, cy)  # [ny, nx]
    hit = np.zeros((ny, nx), bool)
    for c, hs, yaw, rad in boxes:
        dx, dy = px - c[0], py - c[1]
        lx = np.cos(yaw) * dx + np.sin(yaw) * dy
        ly = -np.sin(yaw) * dx + np.cos(yaw) * dy
        qx, qy = np.maximum(np.abs(lx) - hs[0], 0), np.maximum(np.abs(ly) - hs[1], 0)
        hit |= np.hypot(qx, qy) <= rad + inflate
    # outside the outer walls is never free
    outside = (px < 0) | (py < 0) | (px > fam.xs[-1]) | (py > fam.ys[-1])
    return hit | (outside if inflate > 0 else False), origin


def occupancy_maps(fam: Family, edge_state, furn_pose, lamp_pose):
    """``(occupied, free, origin)``: ``bool [H, W]`` maps at ``config.resolution`` and the
    world position ``[2]`` of the map's lower-left corner."""
    boxes = _static_boxes(fam, edge_state, furn_pose, lamp_pose)
    occupied, origin = _raster(fam, boxes, 0.0)
    blocked, _ = _raster(fam, boxes, fam.config.robot_radius)
    return occupied, ~blocked, origin


def components(free: np.ndarray) -> np.ndarray:
    """4-connected component labels ``int32 [H, W]`` of ``free`` (-1 where blocked)
    (``scipy.ndimage.label``; SciPy comes with JAX)."""
    from scipy import ndimage

    lab, _ = ndimage.label(free)
    return (lab - 1).astype(np.int32)


def _cell_centre_ok(fam, free, origin, cells) -> bool:
    """All cell centres free and in one component."""
    lab = components(free)
    res = fam.config.resolution
    ids = set()
    for cell in cells:
        x0, x1, y0, y1 = _cell_rect(fam, cell)
        win = lab[int(((y0 + y1) / 2 - 0.6 - origin[1]) / res):int(((y0 + y1) / 2 + 0.6 - origin[1]) / res),
                  int(((x0 + x1) / 2 - 0.6 - origin[0]) / res):int(((x0 + x1) / 2 + 0.6 - origin[0]) / res)]
        vals = win[win >= 0]
        if vals.size == 0:
            return False
        ids.add(int(np.bincount(vals).argmax()))
    return len(ids) == 1 and np.all(lab[free] == next(iter(ids)))


def door_probes(fam: Family, edge) -> np.ndarray:
    """``[3, 2]`` points that must stay free for a door: its centre and 0.45 m to each side."""
    c = _edge_segments(fam, edge)[2][0][:2]
    normal = np.array([1.0, 0.0]) if edge[0] == 0 else np.array([0.0, 1.0])
    return np.stack([c, c + 0.45 * normal, c - 0.45 * normal])


DOOR_CLEARANCE, DOOR_HALF_THICKNESS, DOOR_HEIGHT = 0.03, 0.02, 2.0


def door_hinge(fam: Family, edge) -> tuple[np.ndarray, np.ndarray, float]:
    """The hinged door of an edge's opening: the hinge's floor point ``[2]`` (one end of the
    opening), the unit direction ``[2]`` along the closed leaf, and the leaf's length (m):
    the opening's width less ``DOOR_CLEARANCE`` at each end."""
    c = _edge_segments(fam, edge)[2][0][:2]
    along = np.array([0.0, 1.0]) if edge[0] == 0 else np.array([1.0, 0.0])
    d = fam.config.door_width
    return c - along * d / 2, along, d - 2 * DOOR_CLEARANCE


def _doors_clear(fam, edge_state, free, origin) -> bool:
    res = fam.config.resolution
    for e, s in zip(fam.edges, edge_state):
        if s == DOOR:
            for p in door_probes(fam, e):
                j, i = np.floor((p - origin) / res).astype(int)
                if not free[i, j]:
                    return False
    return True


def generate_layout(fam: Family, seed: int) -> Layout:
    """Layout ``seed`` of family ``fam`` (deterministic in ``(family_seed, seed)``)."""
    cfg = fam.config
    rng = np.random.default_rng([cfg.family_seed, int(seed), 11])
    ncell = len(fam.ys[:-1]) * cfg.cols
    # spanning tree (random Kruskal) with the corridor pre-joined
    parent = list(range(ncell))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    corridor = lambda cell: cell // cfg.cols in fam.corridor_rows
    state = np.full(len(fam.edges), WALL, np.int32)
    for i, (_, a, b) in enumerate(fam.edges):
        if corridor(a) and corridor(b):
            state[i] = OPEN
            parent[find(a)] = find(b)
    for i in rng.permutation(len(fam.edges)):
        _, a, b = fam.edges[i]
        if state[i] == OPEN:
            continue
        if find(a) != find(b):
            parent[find(a)] = find(b)
            state[i] = OPEN if (rng.random() < 0.2 and not (corridor(a) or corridor(b))) else DOOR
        elif rng.random() < 0.3:
            state[i] = DOOR
    # lamps: in room cells, near a corner
    rooms = [c for c in range(ncell) if not corridor(c)]
    lamp_pose = []
    for _ in range(cfg.lamps):
        x0, x1, y0, y1 = _cell_rect(fam, rooms[rng.integers(len(rooms))])
        sx, sy = rng.integers(2, size=2)
        lamp_pose.append((x0 + 0.35 if sx else x1 - 0.35, y0 + 0.35 if sy else y1 - 0.35))
    # furniture: against a wall of its cell, kept only if the apartment stays connected
    furn_pose = [None] * len(fam.furniture)
    occupied, free, origin = occupancy_maps(fam, state, furn_pose, lamp_pose)
    for k, (cell, cls, (L, D, H)) in enumerate(fam.furniture):
        if rng.random() < 0.2:
            continue
        x0, x1, y0, y1 = _cell_rect(fam, cell)
        for _ in range(4):
            side = rng.integers(4)
            t = cfg.wall_thickness / 2 + 0.02
            if side < 2:  # against the bottom/top wall, length along x
                yaw = 0.0 if side == 0 else np.pi
                along = rng.uniform(x0 + L / 2 + t, max(x0 + L / 2 + t, x1 - L / 2 - t))
                pose = (along, y0 + D / 2 + t if side == 0 else y1 - D / 2 - t, yaw)
            else:
                yaw = np.pi / 2 if side == 2 else -np.pi / 2
                along = rng.uniform(y0 + L / 2 + t, max(y0 + L / 2 + t, y1 - L / 2 - t))
                pose = (x1 - D / 2 - t if side == 2 else x0 + D / 2 + t, along, yaw)
            trial = list(furn_pose)
            trial[k] = pose
            occ2, free2, _ = occupancy_maps(fam, state, trial, lamp_pose)
            if _cell_centre_ok(fam, free2, origin, range(ncell)) and _doors_clear(fam, state, free2, origin):
                furn_pose, occupied, free = trial, occ2, free2
                break
    # pushable boxes: on free cells of room cells
    push = []
    for _ in range(cfg.pushables):
        x0, x1, y0, y1 = _cell_rect(fam, rooms[rng.integers(len(rooms))])
        for _ in range(50):
            p = np.array([rng.uniform(x0 + 0.5, x1 - 0.5), rng.uniform(y0 + 0.5, y1 - 0.5)])
            j, i = ((p - origin) / cfg.resolution).astype(int)
            if free[max(i - 3, 0):i + 4, max(j - 3, 0):j + 4].all() and all(np.hypot(*(p - q[:2])) > 0.8 for q in push):
                break
        push.append(np.array([p[0], p[1], 0.15]))
    pos, quat = _mocap_poses(fam, state, furn_pose, lamp_pose)
    return Layout(int(seed), state, pos, quat, np.array(push).reshape(-1, 3), occupied, free, origin,
                  np.array(lamp_pose, np.float64).reshape(-1, 2), door_positions(fam, state))


def _mocap_poses(fam, edge_state, furn_pose, lamp_pose):
    pos, quat = [], []
    park = np.array([0.0, 0.0, PARK_Z])
    for e, s in zip(fam.edges, edge_state):
        for k, (c, _) in enumerate(_edge_segments(fam, e)):
            on = s == WALL or (s == DOOR and k < 2)
            pos.append(c if on else park + [c[0], c[1], 0])
            quat.append(_yaw_quat(0.0))
    for pose in furn_pose:
        pos.append(park if pose is None else np.array([pose[0], pose[1], 0.0]))
        quat.append(_yaw_quat(0.0 if pose is None else pose[2]))
    for p in lamp_pose:
        pos.append(np.array([p[0], p[1], 0.0]))
        quat.append(_yaw_quat(0.0))
    return np.array(pos, np.float64), np.array(quat, np.float64)


def door_positions(fam: Family, edge_state) -> np.ndarray:
    """``[E, 3]`` where each edge's hinged door body stands: its hinge on the floor where
    the edge is a door, parked at ``PARK_Z`` elsewhere (``[0, 3]`` without hinged doors)."""
    if not fam.config.hinged_doors:
        return np.zeros((0, 3))
    out = []
    for e, s in zip(fam.edges, edge_state):
        hinge = door_hinge(fam, e)[0]
        out.append([hinge[0], hinge[1], 0.0 if s == DOOR else PARK_Z])
    return np.array(out, np.float64)
