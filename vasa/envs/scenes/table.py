"""Table-top scenes for the manipulation tasks, built with ``mujoco.MjSpec``: a table (robosuite's
layout: top at 0.8 m), lights and the ``agentview``/``frontview`` cameras, cubes, and a door on
a hinge with a lever handle and an optional latch; plus a pure-JAX placement sampler that draws
non-overlapping object positions per environment at reset.

Collision bits (``contype``/``conaffinity``; MuJoCo collides two geoms when
``(ct1 & ca2) | (ct2 & ca1)``), chosen so that MJX only evaluates the pairs manipulation needs:

======================  ========  ============  ======================================
geom                    contype   conaffinity   collides with
======================  ========  ============  ======================================
gripper pads            1         0             objects, door panel and handle
table top (a plane)     0         2             objects (not the fingers: fewer contacts)
objects (cubes)         2         1 + 2         gripper, table, other objects
door panel, handle      0         1             gripper
latch bolt / strike     4 / 0     0 / 4         each other
======================  ========  ============  ======================================
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import mujoco
import numpy as np

TABLE_TOP = 0.8
GRIPPER_BITS = (1, 0)
TABLE_BITS = (0, 2)
OBJECT_BITS = (2, 3)
DOOR_BITS = (0, 1)
BOLT_BITS, STRIKE_BITS = (4, 0), (0, 4)


def _bits(bits):
    return {"contype": bits[0], "conaffinity": bits[1]}


def new_spec(timestep: float, name: str = "vasa_robo", iterations: int = 6, ls_iterations: int = 8) -> mujoco.MjSpec:
    """An empty spec with the physics options the manipulation tasks use: implicit-in-velocity
    integration (``implicitfast``), Newton solver with few iterations (``iterations`` Newton
    steps, ``ls_iterations`` line-search steps each), pyramidal friction cones."""
    spec = mujoco.MjSpec()
    spec.modelname = name
    spec.compiler.degree = False  # every angle in vasa's scenes is in radians
    spec.option.timestep = float(timestep)
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.solver = mujoco.mjtSolver.mjSOL_NEWTON
    spec.option.iterations = int(iterations)
    spec.option.ls_iterations = int(ls_iterations)
    spec.option.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL
    spec.option.jacobian = mujoco.mjtJacobian.mjJAC_DENSE
    spec.visual.global_.offwidth = 640
    spec.visual.global_.offheight = 480
    return spec


def add_table(spec: mujoco.MjSpec, size=(0.4, 0.4, 0.025), pos=(0.0, 0.0), top: float = TABLE_TOP,
              rgba=(0.55, 0.42, 0.3, 1.0)) -> dict:
    """A floor, a table (half-sizes ``size``, top at ``top`` m, centred at ``pos``), a light and
    the cameras ``agentview`` (robosuite's: in front of the table looking back at the robot)
    and ``frontview``. The table's collision surface is an (invisible, group 3) plane at its
    top; its visual box and legs do not collide. Returns ``{"table_plane": geom name}``."""
    world = spec.worldbody
    spec.add_texture(name="floor_tex", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
                     rgb1=[0.32, 0.34, 0.38], rgb2=[0.42, 0.44, 0.48], width=64, height=64)
    spec.add_material(name="floor_mat", textures=["", "floor_tex"], texrepeat=[4, 4], texuniform=True)
    world.add_light(name="top_light", pos=[0, 0, 3.0], dir=[0, 0, -1], diffuse=[0.7, 0.7, 0.7], castshadow=False)
    world.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[3, 3, 0.1], material="floor_mat", contype=0,
                   conaffinity=0, group=0)
    x, y = pos
    visual = dict(contype=0, conaffinity=0, group=1)
    world.add_geom(name="table_visual", type=mujoco.mjtGeom.mjGEOM_BOX, size=list(size), pos=[x, y, top - size[2]],
                   rgba=list(rgba), **visual)
    leg = top - 2 * size[2]
    for i, (sx, sy) in enumerate([(1, 1), (1, -1), (-1, 1), (-1, -1)]):
        world.add_geom(name=f"table_leg{i}", type=mujoco.mjtGeom.mjGEOM_CAPSULE, size=[0.025, 0, 0],
                       fromto=[x + sx * (size[0] - 0.05), y + sy * (size[1] - 0.05), 0.0,
                               x + sx * (size[0] - 0.05), y + sy * (size[1] - 0.05), leg],
                       rgba=[0.3, 0.3, 0.3, 1], **visual)
    world.add_geom(name="table_plane", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[size[0], size[1], 0.01], pos=[x, y, top],
                   group=3, rgba=[1, 1, 1, 0], friction=[1.0, 0.005, 0.0001], **_bits(TABLE_BITS))
    # robosuite's agentview: about 1 m in front of the robot base, looking back down at the table
    world.add_camera(name="agentview", pos=[0.5, 0.0, 1.35], quat=[0.653, 0.271, 0.271, 0.653], fovy=45)
    world.add_camera(name="frontview", pos=[1.6, 0.0, 1.45], quat=[0.56, 0.43, 0.43, 0.56], fovy=45)
    return {"table_plane": "table_plane"}


WALLS = ("wall_back", "wall_left", "wall_right")
DISTRACTORS = tuple(f"distractor{i}" for i in range(5))
WALL_RGBA = (0.72, 0.7, 0.66, 1.0)


def add_backdrop(spec: mujoco.MjSpec, wall_x: float = -1.3, half_width: float = 1.3, height: float = 2.5) -> tuple:
    """Visual-only walls (a back wall at ``x = wall_x`` behind the robot and two side walls at
    ``y = +-half_width``, open toward the cameras) and the hidden distractor objects of the
    ``extreme`` appearance level (:mod:`vasa.envs.randomize_scene`): five primitives (box,
    sphere, cylinder, capsule, bar) standing at the table's centre, alpha 0, so no renderer
    draws them unless an appearance shows and moves them. Every geom here has
    ``contype = conaffinity = 0`` on the world body: none takes part in the physics.
    Returns the distractors' geom names (the renderer's ``optional_geoms``)."""
    world, box = spec.worldbody, mujoco.mjtGeom.mjGEOM_BOX
    visual = {"contype": 0, "conaffinity": 0, "group": 1}
    half = height / 2
    world.add_geom(name=WALLS[0], type=box, size=[0.02, half_width, half], pos=[wall_x, 0.0, half],
                   rgba=list(WALL_RGBA), **visual)
    side = (1.0 - wall_x) / 2
    for name, y in ((WALLS[1], half_width), (WALLS[2], -half_width)):
        world.add_geom(name=name, type=box, size=[side, 0.02, half], pos=[wall_x + side, y, half], rgba=list(WALL_RGBA),
                       **visual)
    # (type, size, half-height): each stands on the table top
    shapes = [(box, [0.03, 0.03, 0.03], 0.03), (mujoco.mjtGeom.mjGEOM_SPHERE, [0.035, 0, 0], 0.035),
              (mujoco.mjtGeom.mjGEOM_CYLINDER, [0.03, 0.045, 0], 0.045),
              (mujoco.mjtGeom.mjGEOM_CAPSULE, [0.025, 0.03, 0], 0.055), (box, [0.06, 0.02, 0.02], 0.02)]
    for name, (kind, size, up) in zip(DISTRACTORS, shapes):
        world.add_geom(name=name, type=kind, size=size, pos=[0.0, 0.0, TABLE_TOP + up], rgba=[0.5, 0.5, 0.5, 0.0],
                       **visual)
    return DISTRACTORS


def add_cube(spec: mujoco.MjSpec, name: str, half_size: float = 0.021, pos=(0.0, 0.0), mass: float = 0.1,
             rgba=(0.8, 0.15, 0.15, 1.0), friction=(1.0, 0.005, 0.0001)) -> dict:
    """A free cube (half-size ``half_size`` m) resting on the table at ``pos`` (x, y), with a
    site at its centre. Returns ``{"body", "joint", "geom", "site"}`` names."""
    body = spec.worldbody.add_body(name=name, pos=[pos[0], pos[1], TABLE_TOP + half_size])
    body.add_freejoint(name=f"{name}_joint")
    body.add_geom(name=f"{name}_geom", type=mujoco.mjtGeom.mjGEOM_BOX, size=[half_size] * 3, mass=mass, rgba=list(rgba),
                  friction=list(friction), condim=3, group=1, **_bits(OBJECT_BITS))
    body.add_site(name=f"{name}_site", size=[0.002, 0, 0], group=3)
    return {"body": name, "joint": f"{name}_joint", "geom": f"{name}_geom", "site": f"{name}_site"}


def add_door(spec: mujoco.MjSpec, pos=(0.0, 0.0), yaw: float = 0.0, use_latch: bool = True) -> dict:
    """A door in a frame standing on the table at ``pos`` (x, y), facing -x (the robot) when
    ``yaw = 0``. The panel (0.36 x 0.04 x 0.4 m) turns on a vertical hinge at its right edge
    (seen from the robot; joint ``door_hinge``, 0-1.2 rad, opening toward the robot) and carries
    a lever handle on a horizontal axis normal to the panel (joint ``door_handle``, 0-1.57 rad,
    pushed down to turn, sprung back). With ``use_latch`` a bolt on the handle's hub catches a
    strike on the frame until the handle is turned by about 0.5 rad (a real contact, no rule).
    Site ``door_handle`` marks the lever's grip point.

    Returns names: ``{"frame", "door", "hinge", "handle", "handle_site", "panel", "handle_geom"}``.
    """
    box = mujoco.mjtGeom.mjGEOM_BOX
    visual = dict(contype=0, conaffinity=0, group=1)
    # (not a mocap body: MJX's kinematics places mocap bodies after their children, so a
    # door hung on a mocap frame would not follow it)
    frame = spec.worldbody.add_body(name="door_frame", pos=[pos[0], pos[1], TABLE_TOP],
                                    quat=[math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)])
    wood, metal = [0.62, 0.45, 0.3, 1.0], [0.75, 0.75, 0.78, 1.0]
    for i, y in enumerate((-0.22, 0.22)):  # posts
        frame.add_geom(name=f"door_post{i}", type=box, size=[0.03, 0.02, 0.25], pos=[0.0, y, 0.25], rgba=wood, **visual)
    frame.add_geom(name="door_lintel", type=box, size=[0.03, 0.24, 0.02], pos=[0.0, 0.0, 0.52], rgba=wood, **visual)
    # Collision shapes are capsules where the part allows: MJX's sphere-capsule and
    # capsule-capsule pairs are closed-form with one contact each, where a finger pad on a box
    # (sphere_convex) costs more and bolt-on-strike as two boxes gave four contacts (door:
    # 12 contacts -> 9, 61 constraint rows -> 49).
    capsule = mujoco.mjtGeom.mjGEOM_CAPSULE
    # strike: on the robot's side of the bolt, at the left post (a bar along y; the bolt clears
    # its top once the handle has turned ~0.47 rad)
    frame.add_geom(name="door_strike", type=capsule, size=[0.012, 0, 0], fromto=[-0.034, 0.178, 0.258, -0.034, 0.202, 0.258],
                   rgba=metal, group=1, **_bits(STRIKE_BITS))
    hinge_y = -0.19
    door = frame.add_body(name="door", pos=[0.0, hinge_y, 0.0])
    door.add_joint(name="door_hinge", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1], range=[0.0, 1.2],
                   limited=mujoco.mjtLimited.mjLIMITED_TRUE, damping=1.0, frictionloss=0.5, armature=0.01)
    door.add_geom(name="door_panel", type=box, size=[0.02, 0.18, 0.2], pos=[0.0, 0.19, 0.25], rgba=wood, mass=2.0,
                  group=1, **_bits(DOOR_BITS))
    latch = door.add_body(name="door_latch", pos=[-0.02, 0.33, 0.26])
    latch.add_joint(name="door_handle", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[1, 0, 0], range=[0.0, 1.57],
                    limited=mujoco.mjtLimited.mjLIMITED_TRUE, stiffness=1.0, springref=0.0, damping=0.05,
                    frictionloss=0.05, armature=0.002)
    latch.add_geom(name="door_hub", type=capsule, size=[0.015, 0, 0], fromto=[0, 0, 0, -0.07, 0, 0],
                   rgba=metal, mass=0.05, **visual)
    # lever toward the hinge side (a round bar, radius 12 mm, y from 0 to -0.12); turning the joint
    # (+x axis) lowers its end
    latch.add_geom(name="door_handle_geom", type=capsule, size=[0.012, 0, 0], fromto=[-0.07, -0.012, 0.0, -0.07, -0.108, 0.0],
                   rgba=metal, mass=0.1, friction=[1.5, 0.005, 0.0001], group=1, **_bits(DOOR_BITS))
    latch.add_site(name="door_handle", pos=[-0.07, -0.08, 0.0], size=[0.004, 0, 0], group=3)
    if use_latch:
        # the bolt sticks out past the free edge (y = 0.37 in the door frame) behind the strike
        latch.add_geom(name="door_bolt", type=capsule, size=[0.008, 0, 0], fromto=[0.02, 0.008, 0.0, 0.02, 0.052, 0.0],
                       rgba=metal, mass=0.02, group=1, **_bits(BOLT_BITS))
    return {"frame": "door_frame", "door": "door", "hinge": "door_hinge", "handle": "door_handle",
            "handle_site": "door_handle", "panel": "door_panel", "handle_geom": "door_handle_geom", "latch": "door_latch"}


def sample_placements(key: jax.Array, num: int, x_range, y_range, radii, tries: int = 16) -> jax.Array:
    """Non-overlapping ``[num, 2]`` (x, y) positions in the box ``x_range`` x ``y_range``.

    Object ``i`` (footprint radius ``radii[i]``, metres) is drawn ``tries`` times at once and
    the first draw clear of the objects already placed (centres at least ``r_i + r_j`` apart)
    is kept; pure JAX and vmappable (no data-dependent loop). If no draw is clear the last one
    is kept (``tries`` makes that vanishingly rare for the tasks' sizes; tests check it).
    """
    radii = jnp.broadcast_to(jnp.asarray(radii, jnp.float32), (num,))
    low = jnp.array([x_range[0], y_range[0]], jnp.float32)
    high = jnp.array([x_range[1], y_range[1]], jnp.float32)
    keys = jax.random.split(key, num)
    placed = jnp.full((num, 2), 1e3, jnp.float32)
    for i in range(num):  # num is small and static
        cand = jax.random.uniform(keys[i], (tries, 2), minval=low, maxval=high)
        gap = jnp.linalg.norm(cand[:, None, :] - placed[None, :, :], axis=-1) - (radii[i] + radii[None, :])
        clear = jnp.all(gap >= 0.0, axis=1)
        pick = jnp.where(jnp.any(clear), jnp.argmax(clear), tries - 1)
        placed = placed.at[i].set(cand[pick])
    return placed


def random_rgb(key: jax.Array, low: float = 0.15, high: float = 0.95) -> jax.Array:
    """``[3] float32`` colour with channels uniform in ``[low, high]``."""
    return jax.random.uniform(key, (3,), minval=low, maxval=high)


def object_bounds_ok(mj_model: mujoco.MjModel) -> bool:
    """True when the model compiles to finite masses and inertias (a sanity check for tests)."""
    return bool(np.all(np.isfinite(mj_model.body_mass)) and np.all(mj_model.body_mass >= 0))
