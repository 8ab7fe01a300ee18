"""A LoCoBot-like differential-drive robot and the MjSpec of an apartment family around it.

The robot: a body on three planar joints (``slide_x``, ``slide_y``, ``hinge_z``) driven by
velocity actuators, with one collision sphere (radius 0.18 m, MJX collides spheres with
boxes, capsules and planes cheaply), a visual mast, a head camera ``"head"`` at 0.6 m
looking along the body's +x, and a LiDAR site ``"lidar"`` at 0.25 m (x forward). The
commanded body-frame velocities ``(v, w)`` (LoCoBot limits ``|v| <= 0.5`` m/s,
``|w| <= 1.57`` rad/s) are turned into world-frame joint velocity targets
``(v cos(theta), v sin(theta), w)`` at every physics step (:func:`drive_targets`).

Timestep (:data:`TIMESTEP` = 0.02 s, 5 physics steps per 0.1 s control step, implicitfast
integration): at the top speed the robot moves 1 cm per physics step, far less than the
wall half-thickness (5 cm) plus the sphere radius, so a contact is always detected before
the sphere could pass a wall; the velocity servo (gain = mass / 0.01 s) is stable at any
step because implicitfast integrates actuator damping implicitly. Measured with MuJoCo C on
this model, driving into a wall at 0.5 m/s for 3 s: the sphere's deepest penetration (at
impact) is 1.4 cm at 0.02 s, 1.8 cm at 0.025 s and 7.6 cm at 0.05 s (contacts soften with
the step: MuJoCo's safe time constant is 2 timesteps), and 1-2 mm once pushing at rest; a
1 s arc at (0.5 m/s, 0.785 rad/s) ends 1.0 cm from the closed form at 0.02 s (the servo's
lag). 0.02 s is the largest step that keeps the impact under 1.5 cm; a smaller one costs
proportionally more.

Looks: :func:`make_look` draws colours, floor texture and light from a look seed
(training looks below :data:`~vasa.envs.scenes.apartment.HELDOUT_SEED_OFFSET`, held-out
looks above); only ``rgba``, textures, materials and lights depend on it.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from vasa.envs.scenes.apartment import (
    ARMREST_QUAT,
    DOOR_CLEARANCE,
    DOOR_HALF_THICKNESS,
    DOOR_HEIGHT,
    FLOOR,
    PARK_Z,
    PUSHABLE,
    ROBOT,
    STATIC,
    Family,
    _edge_segments,
    door_hinge,
    furniture_geoms,
    lamp_geoms,
)

RADIUS = 0.18
MASS = 10.0
V_MAX, W_MAX = 0.5, 1.57
CONTROL_DT = 0.1
TIMESTEP = 0.02
SUBSTEPS = round(CONTROL_DT / TIMESTEP)
HEAD_HEIGHT, LIDAR_HEIGHT = 0.6, 0.25
PUSH_SIZE, PUSH_MASS = 0.15, 2.0
SERVO_TC = 0.01  # velocity servo time constant (s)
SOLVER_ITERATIONS = 2
DOOR_MASS, DOOR_DAMPING = 5.0, 2.0  # a light interior door leaf (kg) and its hinge damping (N m s / rad)


@dataclasses.dataclass(frozen=True)
class Look:
    """Colours (rgba ``[4]``) of walls, floor (two checker colours), furniture classes and
    lamps, the floor texture builtin and the light direction."""

    wall: tuple
    floor: tuple
    floor2: tuple
    floor_builtin: str
    furniture: dict
    lamp: tuple
    light_dir: tuple


def make_look(look_seed: int = 0) -> Look:
    """The look of ``look_seed`` (training looks: light, warm palettes and checker floors;
    held-out looks, seeds >= ``HELDOUT_SEED_OFFSET``: any hue and gradient floors)."""
    from vasa.envs.scenes.apartment import HELDOUT_SEED_OFFSET

    rng = np.random.default_rng([int(look_seed), 3])
    held = look_seed >= HELDOUT_SEED_OFFSET
    col = lambda lo, hi: tuple(float(c) for c in rng.uniform(lo, hi, 3)) + (1.0,)
    if held:
        wall, floor, floor2 = col(0.1, 0.9), col(0.05, 0.6), col(0.05, 0.6)
        builtin = "gradient"
    else:
        wall = tuple(np.clip(np.array([0.85, 0.8, 0.72]) + rng.uniform(-0.08, 0.08, 3), 0, 1)) + (1.0,)
        floor, floor2, builtin = col(0.35, 0.5), col(0.45, 0.6), "checker"
    furn = {k: col(0.2, 0.8) for k in ("table", "bed", "sofa", "shelf")}
    lamp = (0.9, 0.85, 0.3, 1.0) if not held else col(0.5, 1.0)
    d = rng.uniform(-0.5, 0.5, 2)
    return Look(wall, floor, floor2, builtin, furn, lamp, (float(d[0]), float(d[1]), -1.0))


def _geom_type(kind: str):
    return {"box": mujoco.mjtGeom.mjGEOM_BOX, "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
            "sphere": mujoco.mjtGeom.mjGEOM_SPHERE, "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER}[kind]


def _static(body, kind, pos, size, rgba, name=None, collide=True, **kw):
    g = body.add_geom(type=_geom_type(kind), pos=list(pos), size=list(size), rgba=list(rgba),
                      contype=STATIC if collide else 0, conaffinity=0, **kw)
    if name:
        g.name = name
    return g


def add_robot(spec: mujoco.MjSpec, rgba=(0.2, 0.3, 0.8, 1.0)):
    """Add the robot body (planar joints, velocity servos, sphere, head camera, LiDAR site)."""
    body = spec.worldbody.add_body(name="robot", pos=[0, 0, 0])
    for name, jt, axis in (("slide_x", mujoco.mjtJoint.mjJNT_SLIDE, [1, 0, 0]),
                           ("slide_y", mujoco.mjtJoint.mjJNT_SLIDE, [0, 1, 0]),
                           ("hinge_z", mujoco.mjtJoint.mjJNT_HINGE, [0, 0, 1])):
        body.add_joint(name=name, type=jt, axis=axis)
    body.add_geom(name="robot", type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[RADIUS, 0, 0], pos=[0, 0, RADIUS],
                  mass=MASS, rgba=list(rgba), contype=ROBOT, conaffinity=STATIC | PUSHABLE, friction=[0.3, 0.005, 0.0001])
    body.add_geom(name="robot_mast", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.04, 0.04, 0.2], pos=[-0.05, 0, 0.45],
                  rgba=[0.15, 0.15, 0.15, 1], contype=0, conaffinity=0, mass=0.0, group=3)
    body.add_camera(name="head", pos=[0.05, 0, HEAD_HEIGHT], xyaxes=[0, -1, 0, 0, 0, 1], fovy=60.0)
    body.add_site(name="lidar", pos=[0, 0, LIDAR_HEIGHT])
    inertia = 0.4 * MASS * RADIUS ** 2
    # velocity servos with a 0.01 s time constant and no force limit: MJX's implicitfast keeps
    # the servo's damping derivative even when a force limit clamps the force (MuJoCo C drops
    # it), so a limit would make the two disagree
    for joint, kv in (("slide_x", MASS / SERVO_TC), ("slide_y", MASS / SERVO_TC), ("hinge_z", inertia / SERVO_TC)):
        act = spec.add_actuator(name=joint, target=joint, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.set_to_velocity(kv=kv)
    return body


def build_spec(fam: Family, look: Look | None = None) -> mujoco.MjSpec:
    """The MjSpec of family ``fam``: floor, outer walls (world geoms), one mocap body per
    wall segment (3 per edge), per furniture piece and per lamp (parked at first; a layout
    sets their poses), ``pushables`` free boxes, and the robot."""
    look = look or make_look(0)
    cfg = fam.config
    spec = mujoco.MjSpec()
    spec.modelname = "apartment"
    spec.option.timestep = TIMESTEP
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.cone = mujoco.mjtCone.mjCONE_PYRAMIDAL
    # Newton converges in a couple of iterations for a sphere on walls; under vmap the
    # solver's loop runs until the slowest environment converges, and MuJoCo's default cap
    # (100 iterations, 50 line-search steps) made a batched step 7x slower with contacts
    spec.option.iterations = SOLVER_ITERATIONS
    spec.option.ls_iterations = 4
    tex = spec.add_texture(name="floor", type=mujoco.mjtTexture.mjTEXTURE_2D,
                           builtin={"checker": mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
                                    "gradient": mujoco.mjtBuiltin.mjBUILTIN_GRADIENT}[look.floor_builtin],
                           rgb1=list(look.floor[:3]), rgb2=list(look.floor2[:3]), width=64, height=64)
    mat = spec.add_material(name="floor", texrepeat=[1, 1], texuniform=True)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    W, H, t, h = fam.xs[-1], fam.ys[-1], cfg.wall_thickness, cfg.wall_height
    wb = spec.worldbody
    wb.add_light(name="sun", dir=list(look.light_dir), pos=[float(W / 2), float(H / 2), 4.0],
                 type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, castshadow=0)
    wb.add_geom(name="floor", type=mujoco.mjtGeom.mjGEOM_PLANE, size=[W / 2 + 0.5, H / 2 + 0.5, 0.1],
                pos=[W / 2, H / 2, 0], material="floor", contype=FLOOR, conaffinity=0)
    for i, (c, hs) in enumerate((((W / 2, -t / 2), (W / 2 + t, t / 2)), ((W / 2, H + t / 2), (W / 2 + t, t / 2)),
                                 ((-t / 2, H / 2), (t / 2, H / 2 + t)), ((W + t / 2, H / 2), (t / 2, H / 2 + t)))):
        _static(wb, "box", (c[0], c[1], h / 2), (hs[0], hs[1], h / 2), look.wall, name=f"outer{i}")
    wb.add_camera(name="top", pos=[W / 2, H / 2, max(W, H) * 1.1], xyaxes=[1, 0, 0, 0, 1, 0], fovy=60.0)
    for e_i, e in enumerate(fam.edges):
        for k, (c, hs) in enumerate(_edge_segments(fam, e)):
            b = wb.add_body(name=f"wall{e_i}_{k}", mocap=True, pos=[c[0], c[1], PARK_Z])
            _static(b, "box", (0, 0, 0), hs, look.wall)
    for f_i, (_, cls, size) in enumerate(fam.furniture):
        b = wb.add_body(name=f"furniture{f_i}_{cls}", mocap=True, pos=[0, 0, PARK_Z])
        for kind, p, s in furniture_geoms(cls, size):
            _static(b, kind, p, s, look.furniture[cls], **({"quat": list(ARMREST_QUAT)} if kind == "capsule" else {}))
    for l_i in range(cfg.lamps):
        b = wb.add_body(name=f"lamp{l_i}", mocap=True, pos=[0, 0, PARK_Z])
        for kind, p, s, collide in lamp_geoms(fam.lamp_size):
            _static(b, kind, p, s, look.lamp, name=f"lamp{l_i}_{kind}{'' if collide else '_shade'}", collide=collide)
    if cfg.hinged_doors:
        add_doors(wb, fam, look)
    for p_i in range(cfg.pushables):
        b = wb.add_body(name=f"pushable{p_i}", pos=[0, 0, PUSH_SIZE])
        b.add_freejoint(name=f"pushable{p_i}")
        b.add_geom(name=f"pushable{p_i}", type=mujoco.mjtGeom.mjGEOM_BOX, size=[PUSH_SIZE] * 3, mass=PUSH_MASS,
                   rgba=[0.8, 0.4, 0.1, 1], contype=PUSHABLE, conaffinity=ROBOT | STATIC | FLOOR,
                   friction=[0.4, 0.005, 0.0001])
    add_robot(spec)
    return spec


def add_doors(wb, fam: Family, look: Look) -> None:
    """One hinged door per edge of the family: a body ``door<e>`` at the hinge (parked at
    ``PARK_Z``; a layout's ``door_pos`` goes into ``body_pos``, on the floor where the edge is
    a door) carrying a leaf on a vertical hinge (``door<e>``, +-90 degrees, damped, closed at
    0) that only the robot touches (``contype=PUSHABLE, conaffinity=0``), so the robot pushes
    it open either way."""
    colour = tuple(0.6 * c for c in look.wall[:3]) + (1.0,)
    for e_i, e in enumerate(fam.edges):
        hinge, along, length = door_hinge(fam, e)
        leaf = wb.add_body(name=f"door{e_i}", pos=[float(hinge[0]), float(hinge[1]), PARK_Z])
        leaf.add_joint(name=f"door{e_i}", type=mujoco.mjtJoint.mjJNT_HINGE, axis=[0, 0, 1], range=[-90.0, 90.0],
                       limited=mujoco.mjtLimited.mjLIMITED_TRUE, damping=DOOR_DAMPING)  # range in degrees (MjSpec)
        off = DOOR_CLEARANCE + length / 2  # the leaf's centre from the hinge: the opening's centre when closed
        centre = [float(along[0] * off), float(along[1] * off), DOOR_HEIGHT / 2 + 0.01]
        half = [length / 2, DOOR_HALF_THICKNESS, DOOR_HEIGHT / 2] if along[0] else [DOOR_HALF_THICKNESS, length / 2,
                                                                                   DOOR_HEIGHT / 2]
        leaf.add_geom(name=f"door{e_i}", type=mujoco.mjtGeom.mjGEOM_BOX, size=half, pos=centre, mass=DOOR_MASS,
                      rgba=list(colour), contype=PUSHABLE, conaffinity=0, friction=[0.3, 0.005, 0.0001])


def drive_targets(theta, action):
    """World-frame joint velocity targets ``[3]`` for a body-frame command.

    ``theta``: heading (rad), ``[]``; ``action``: ``[2]`` in ``[-1, 1]`` (scaled to
    ``v = V_MAX * a0``, ``w = W_MAX * a1``; clipped first). Works on NumPy or JAX arrays.
    """
    import jax.numpy as jnp

    a = jnp.clip(action, -1.0, 1.0)
    v, w = V_MAX * a[0], W_MAX * a[1]
    return jnp.stack([v * jnp.cos(theta), v * jnp.sin(theta), w])
