"""ObjectNav to a lamp on MJX (iGibson's and SECANT's object navigation), RGB only.

The task (thesis ch. 4.4 and ch. 5, "iGibson" benchmark of SECANT): a LoCoBot-like robot
(:mod:`vasa.envs.scenes.locobot`) spawned at random in a procedural apartment
(:mod:`vasa.envs.scenes.apartment`) must bring a floor lamp (the apartment's target
objects) into view. "The reward function incentivizes the agent to maximize the proportion
of pixels that the lamp occupies in view, and success is achieved when this proportion
exceeds 5% over 10 consecutive steps" (SECANT, sec. 5.4 iGibson; iGibson 1.0 sec. 4.4: "get
at least 5% of the image occupied by the pixels of the target object"). So:

* reward = ``fraction``, the share of the head camera's pixels whose ray first hits a lamp
  geom (base, pole or shade), in [0, 1];
* a counter of consecutive steps with ``fraction > 0.05`` (reset to 0 by any step at or
  below it); success when it reaches 10 (:func:`success_counter`); success ends the episode;
* episodes last 500 control steps (0.1 s each, 10 Hz as SECANT's LoCoBot).

Both the image and the fraction come from **one** ray cast per step: the renderer returns
``rgb`` and ``geom_id`` of the same rays (:meth:`vasa.envs.render.Renderer.render` with
``outputs=("rgb", "geom_id")``), and the fraction is the mean of a per-geom target mask
gathered at ``geom_id`` (:func:`target_fraction`), on the device.

Observation: ``{"rgb": uint8 [H, W, 3]}`` from the head camera (60 degrees vertical field
of view, 0.6 m high, looking along the robot's heading), plus, with ``"proprio"`` in
``sensors`` (the default), ``"proprio": float32 [4]`` = last action ``[2]`` and the body-frame
velocity (forward m/s, turn rad/s). No goal vector and no map: the lamp must be found by
looking. ``vasa.envs.make("nav/objectnav", image_size=...)`` sizes this camera (with
``pixels=True`` the pixel wrapper renders a camera of the same size on top; use
``camera="head"`` for the egocentric view).

Layouts and looks as in :class:`~vasa.envs.tasks.navigation.pointgoal.PointGoalNav`: one
compiled model per apartment family, ``num_layouts`` layouts as mocap poses (each
environment picks one per episode), the look (colours, floor texture, light) baked into the
model from ``look``/``look_seed``. ``randomize`` (a suite of
:data:`vasa.envs.randomize.SUITES` or an :class:`~vasa.envs.randomize.AppearanceRandomization`)
additionally draws a per-episode look on the device (domain randomisation); the look of an
episode is ``info["look"]`` (not ``"appearance"``, which the pixel wrapper keeps for its own
camera) and :meth:`ObjectNav.reset_room` starts an episode in a
chosen layout with a chosen look (what the SECANT protocol,
:mod:`~vasa.envs.tasks.navigation.protocol`, evaluates).

Hinged doors (``hinged_doors=True``, off by default): a door leaf on a vertical hinge fills
every door opening and the robot pushes it open (interactive objects; the maps ignore them).
The door bodies' positions depend on the layout, so they are a model field
(:meth:`ObjectNav.model` puts the layout's ``body_pos`` into the MJX model): MJX does not
carry a mocap body's pose over to its children. The task's own camera shows the doors; the
pixel wrapper (``make(..., pixels=True)``) refreshes poses with the shared model, where they
are parked, so use the task's ``"rgb"`` with doors.

Starts: any free map cell (robot centre 0.18 m clear of everything) at least
``min_start_distance`` (1 m) from every lamp, with a uniform heading.

Action: ``[2]`` in ``[-1, 1]``, forward speed ``0.5 a0`` m/s and turn rate ``1.57 a1`` rad/s.

Metrics (per step): ``success``, ``fraction``, ``count`` (the consecutive-step counter),
``path_length``, ``collisions``. SPL does not apply (success is defined by the view, not by
a goal position), so there is no ``spl`` metric.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from mujoco import mjx
from mujoco.mjx._src import smooth

from vasa.envs import physics
from vasa.envs.core import ArraySpec, EnvState
from vasa.envs.randomize import SUITES, AppearanceRandomization, AppearanceSampler
from vasa.envs.render import Renderer, look_at
from vasa.envs.scenes import apartment as apt
from vasa.envs.scenes import locobot
from vasa.envs.tasks.navigation.pointgoal import PointGoalNav, _check_image_size

SENSORS = ("rgb", "proprio")
SUCCESS_FRACTION = 0.05
SUCCESS_STEPS = 10
HEAD_FOVY = 60.0


def success_counter(count: jax.Array, fraction: jax.Array, threshold: float = SUCCESS_FRACTION,
                    needed: int = SUCCESS_STEPS) -> tuple[jax.Array, jax.Array]:
    """One step of ObjectNav's success rule.

    Args:
      count: ``int32 []`` consecutive steps so far with ``fraction > threshold``.
      fraction: ``float32 []`` this step's target-pixel fraction.

    Returns:
      ``(count, success)``: the new count (``count + 1`` if ``fraction > threshold``, else 0)
      and ``bool []`` whether it has reached ``needed``.
    """
    count = jnp.where(fraction > threshold, count + 1, 0).astype(jnp.int32)
    return count, count >= needed


def target_fraction(geom_id: jax.Array, target_mask: jax.Array) -> jax.Array:
    """Share ``float32 []`` of pixels whose geom is a target.

    ``geom_id``: ``int32 [H, W]`` per-pixel geom ids (-1 background) of a render;
    ``target_mask``: ``bool [G]``, True for the target geoms.
    """
    on = jnp.asarray(target_mask)[jnp.maximum(geom_id, 0)] & (geom_id >= 0)
    return jnp.mean(on.astype(jnp.float32))


def _int_in(name, value, lo, hi, what):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not lo <= value <= hi:
        raise ValueError(f"{name}={value!r} is not allowed: {what} must be an integer in [{lo}, {hi}].")
    return int(value)


class ObjectNav:
    """ObjectNav to a lamp (see the module docstring).

    Args:
      rows, cols: the room grid (1-4 each); corridor: add a corridor row;
        furniture_per_room (0-4), lamps (1-4), family_seed: the apartment family
        (:class:`~vasa.envs.scenes.apartment.ApartmentConfig`).
      split, num_layouts, layout_start: which layouts (as ``PointGoalNav``), or
        ``layout_seeds``: an explicit list of layout seeds (may mix training seeds and held-out
        seeds >= :data:`~vasa.envs.scenes.apartment.HELDOUT_SEED_OFFSET`).
      look, look_seed: the model's look (``"train"`` or ``"heldout"``).
      randomize: per-episode look randomisation of the task's camera (suite name or
        ``AppearanceRandomization``; named apart from ``make``'s ``appearance``, the pixel wrapper's;
        ``"train"``: none).
      sensors: ``("rgb",)`` or ``("rgb", "proprio")``. image_size: ``S`` or ``(height, width)``.
      min_start_distance: metres between a start and every lamp.
      success_fraction, success_steps: the success rule (5%, 10 steps).
      episode_length: control steps (500).
      hinged_doors: a door leaf on a hinge in every door opening, pushed open by the robot
        (:func:`vasa.envs.scenes.locobot.add_doors`).
    """

    def __init__(self, *, rows: int = 1, cols: int = 2, corridor: bool = False, furniture_per_room: int = 2,
                 lamps: int = 1, family_seed: int = 0, split: str = "train", num_layouts: int = 4,
                 layout_start: int = 0, layout_seeds=None, look: str = "train", look_seed: int = 0,
                 randomize="train", sensors=SENSORS, image_size=64, min_start_distance: float = 1.0,
                 success_fraction: float = SUCCESS_FRACTION, success_steps: int = SUCCESS_STEPS,
                 episode_length: int = 500, hinged_doors: bool = False):
        rows = _int_in("rows", rows, 1, 4, "the room grid's rows")
        cols = _int_in("cols", cols, 1, 4, "the room grid's cols")
        sensors = (sensors,) if isinstance(sensors, str) else tuple(sensors)
        if not sensors or any(s not in SENSORS for s in sensors) or "rgb" not in sensors:
            raise ValueError(f"sensors={sensors!r} is not allowed: ObjectNav is RGB only; choose from {SENSORS}, "
                             "including 'rgb'.")
        if not (isinstance(randomize, AppearanceRandomization) or (isinstance(randomize, str) and randomize in SUITES)):
            raise ValueError(f"randomize={randomize!r} is not allowed: choose one of {sorted(SUITES)} or pass an "
                             "AppearanceRandomization.")
        if look not in ("train", "heldout"):
            raise ValueError(f"look={look!r} is not allowed: choose 'train' or 'heldout'.")
        if not (isinstance(success_fraction, (int, float)) and 0.0 <= success_fraction < 1.0):
            raise ValueError(f"success_fraction={success_fraction!r} is not allowed: it must be a number in [0, 1).")
        self.success_steps = _int_in("success_steps", success_steps, 1, 10_000, "success_steps")
        self.default_episode_length = _int_in("episode_length", episode_length, 1, 10**7, "episode_length")
        if not (isinstance(min_start_distance, (int, float)) and 0.0 <= min_start_distance <= 20.0):
            raise ValueError(f"min_start_distance={min_start_distance!r} is not allowed: it must be in [0, 20] metres.")
        self.image_hw = _check_image_size(image_size)
        self.sensors = sensors
        self.success_fraction = float(success_fraction)
        cfg = apt.ApartmentConfig(rows=rows, cols=cols, corridor=bool(corridor), furniture_per_room=furniture_per_room,
                                  lamps=lamps, family_seed=family_seed, hinged_doors=bool(hinged_doors)).validate()
        self.family = apt.make_family(cfg)
        if layout_seeds is None:
            self.seeds = apt.layout_seeds(split, num_layouts, layout_start)
        else:
            seeds = list(layout_seeds)
            if not seeds or any(not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 0 for s in seeds):
                raise ValueError(f"layout_seeds={layout_seeds!r} is not allowed: it must be a non-empty list of "
                                 "integers >= 0.")
            self.seeds = [int(s) for s in seeds]
        self.layouts = [apt.generate_layout(self.family, s) for s in self.seeds]
        look_seed = int(look_seed) + (apt.HELDOUT_SEED_OFFSET if look == "heldout" else 0)
        self.look = locobot.make_look(look_seed)
        self.mj_model = locobot.build_spec(self.family, self.look).compile()
        self._mjx_model = mjx.put_model(self.mj_model)
        self.default_action_repeat = 1
        m = self.mj_model
        self.robot_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "robot")
        joint = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "slide_x")
        self.robot_qpos, self.robot_dof = int(m.jnt_qposadr[joint]), int(m.jnt_dofadr[joint])
        lamp_bodies = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"lamp{i}") for i in range(cfg.lamps)]
        self.target_mask = np.isin(m.geom_bodyid, lamp_bodies)  # [G] bool: every lamp geom
        self.resolution = cfg.resolution
        self.origin = jnp.asarray(self.layouts[0].origin, jnp.float32)
        self.mocap_pos = jnp.asarray(np.stack([lay.mocap_pos for lay in self.layouts]), jnp.float32)
        self.mocap_quat = jnp.asarray(np.stack([lay.mocap_quat for lay in self.layouts]), jnp.float32)
        # hinged doors: per-layout positions of the door bodies, a model field (``body_pos``)
        doors = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, f"door{e}") for e in range(len(self.family.edges))]
        self.layout_body_pos = None
        if cfg.hinged_doors:
            body_pos = np.repeat(m.body_pos[None], len(self.layouts), 0)
            body_pos[:, doors] = np.stack([lay.door_pos for lay in self.layouts])
            self.layout_body_pos = jnp.asarray(body_pos, jnp.float32)  # [L, nbody, 3]
        lamp_pos = np.stack([lay.lamp_pos for lay in self.layouts])  # [L, K, 2]
        self.lamp_pos = jnp.asarray(lamp_pos, jnp.float32)
        free = np.stack([lay.free for lay in self.layouts])
        h, w = free.shape[1:]
        cx = self.layouts[0].origin[0] + (np.arange(w) + 0.5) * cfg.resolution
        cy = self.layouts[0].origin[1] + (np.arange(h) + 0.5) * cfg.resolution
        far = np.ones_like(free)
        for li in range(len(self.layouts)):
            for p in lamp_pos[li]:
                far[li] &= np.hypot(cx[None, :] - p[0], cy[:, None] - p[1]) >= float(min_start_distance)
        starts = free & far
        if not np.all(starts.reshape(len(starts), -1).any(1)):
            raise ValueError(f"min_start_distance={min_start_distance!r}: some layouts have no free cell that far "
                             "from the lamp; use a smaller distance or larger rooms.")
        self.starts = jnp.asarray(starts)  # [L, H, W]
        self.camera = Renderer(m, self.image_hw[1], self.image_hw[0], shading="fast")
        self.sampler = AppearanceSampler(self.camera, randomize)
        self.base_appearance = self.camera.default_appearance()

    # PointGoalNav's pose, contact and map helpers read the same attributes
    _pose = PointGoalNav._pose
    _collided = PointGoalNav._collided
    cell_centre = PointGoalNav.cell_centre

    def model(self, layout):
        """The MJX model of layout ``layout`` (the shared one, with the layout's door positions
        when there are hinged doors)."""
        if self.layout_body_pos is None:
            return self._mjx_model
        return self._mjx_model.replace(body_pos=self.layout_body_pos[layout])

    # -- specs ----------------------------------------------------------------------------

    @property
    def mjx_model(self):
        return self._mjx_model

    @property
    def episode_length(self) -> int:
        return self.default_episode_length

    @property
    def num_layouts(self) -> int:
        return len(self.layouts)

    @property
    def observation_spec(self):
        h, w = self.image_hw
        out = {"rgb": ArraySpec((h, w, 3), jnp.uint8, low=0, high=255)}
        if "proprio" in self.sensors:
            out["proprio"] = ArraySpec((4,), jnp.float32)
        return out

    @property
    def action_spec(self) -> ArraySpec:
        return ArraySpec((2,), jnp.float32, low=-jnp.ones(2), high=jnp.ones(2))

    # -- sensing --------------------------------------------------------------------------

    def head_camera(self, data):
        """The head camera (:class:`vasa.envs.render.Camera`) at the robot's pose in ``data``."""
        pos, theta = self._pose(data)
        c, s = jnp.cos(theta), jnp.sin(theta)
        head = jnp.concatenate([pos + 0.05 * jnp.stack([c, s]), jnp.array([locobot.HEAD_HEIGHT])])
        return look_at(head, head + jnp.stack([c, s, 0.0]), fovy=HEAD_FOVY)

    def render(self, data, appearance) -> dict:
        """One ray cast of the head camera: ``{"rgb": uint8 [H, W, 3], "geom_id": int32 [H, W],
        "fraction": float32 []}`` (the lamp-pixel fraction of this very image)."""
        out = self.camera.render(data, self.head_camera(data), appearance, outputs=("rgb", "geom_id"))
        out["fraction"] = target_fraction(out["geom_id"], self.target_mask)
        return out

    def _observe(self, data, rgb, last_action):
        obs = {"rgb": rgb}
        if "proprio" in self.sensors:
            _, theta = self._pose(data)
            vel = data.qvel[self.robot_dof:self.robot_dof + 3]
            forward = jnp.cos(theta) * vel[0] + jnp.sin(theta) * vel[1]
            obs["proprio"] = jnp.concatenate([last_action, jnp.stack([forward, vel[2]])]).astype(jnp.float32)
        return obs

    # -- protocol -------------------------------------------------------------------------

    def reset(self, key: jax.Array) -> EnvState:
        k_lay, k_app, k_start = jax.random.split(key, 3)
        layout = jax.random.randint(k_lay, (), 0, self.num_layouts)
        return self.reset_room(k_start, layout, self.sampler(k_app))

    def reset_room(self, key: jax.Array, layout, appearance) -> EnvState:
        """Start an episode in layout ``layout`` (``[] int32``) with look ``appearance`` (an
        :class:`~vasa.envs.render.Appearance`), at a random start cell and heading."""
        k_start, k_yaw = jax.random.split(key)
        ok = self.starts[layout]
        flat = jax.random.categorical(k_start, jnp.where(ok, 0.0, -jnp.inf).reshape(-1))
        start = jnp.stack([flat // ok.shape[1], flat % ok.shape[1]])
        yaw = jax.random.uniform(k_yaw, (), minval=-jnp.pi, maxval=jnp.pi)
        return self.reset_to(layout, self.cell_centre(start), yaw, appearance)

    def reset_to(self, layout, start_pos, yaw, appearance=None) -> EnvState:
        """Start an episode at a chosen pose: ``layout`` ``[] int32``, ``start_pos [2]`` (m),
        ``yaw []`` (rad), ``appearance`` (default: the model's own look)."""
        m = self.model(layout)
        appearance = self.base_appearance if appearance is None else appearance
        data = mjx.make_data(m)
        qpos = data.qpos.at[self.robot_qpos:self.robot_qpos + 3].set(
            jnp.concatenate([jnp.asarray(start_pos, jnp.float32), jnp.asarray(yaw, jnp.float32)[None]]))
        data = data.replace(qpos=qpos, mocap_pos=self.mocap_pos[layout], mocap_quat=self.mocap_quat[layout])
        data = smooth.kinematics(m, data)
        view = self.render(data, appearance)
        zero = jnp.zeros((), jnp.float32)
        action = jnp.zeros(2, jnp.float32)
        info = {"layout": jnp.asarray(layout, jnp.int32), "lamp_pos": self.lamp_pos[layout, 0], "look": appearance,
                "count": jnp.zeros((), jnp.int32), "path_length": zero, "collisions": zero, "last_action": action}
        metrics = {"success": zero, "fraction": view["fraction"], "count": zero, "path_length": zero, "collisions": zero}
        return EnvState(physics=data, obs=self._observe(data, view["rgb"], action), reward=zero, done=zero,
                        truncation=zero, info=info, metrics=metrics)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        info = state.info
        m = self.model(info["layout"])
        action = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)

        def substep(data, _):
            _, theta = self._pose(data)
            data = physics.step(m, data.replace(ctrl=locobot.drive_targets(theta, action)))
            return data, self._collided(data)

        data, hits = jax.lax.scan(substep, state.physics, None, length=locobot.SUBSTEPS)
        collided = jnp.any(hits).astype(jnp.float32)
        pos0, _ = self._pose(state.physics)
        pos, _ = self._pose(data)
        path = info["path_length"] + jnp.linalg.norm(pos - pos0)
        view = self.render(data, info["look"])
        count, success = success_counter(info["count"], view["fraction"], self.success_fraction, self.success_steps)
        success = success.astype(jnp.float32)
        collisions = info["collisions"] + collided
        new_info = {**info, "count": count, "path_length": path, "collisions": collisions, "last_action": action}
        metrics = {"success": success, "fraction": view["fraction"], "count": count.astype(jnp.float32),
                   "path_length": path, "collisions": collisions}
        return state.replace(physics=data, obs=self._observe(data, view["rgb"], action),
                             reward=view["fraction"].astype(jnp.float32), done=success,
                             truncation=jnp.zeros_like(success), info=new_info, metrics=metrics)


def approach_lamp_policy(env: ObjectNav, stop_distance: float = 0.6):
    """A privileged scripted policy: turn towards the episode's lamp (``info["lamp_pos"]``),
    drive straight at it while the heading error is under 30 degrees, and stop facing it
    ``stop_distance`` m from its centre. It succeeds whenever the straight line to the lamp
    is clear (e.g. a room without furniture): from 0.6 m the pole alone fills about 8% of
    the image. Returns ``policy(obs, key, state) -> action [2]``."""

    def policy(obs, key, state):
        pos, theta = env._pose(state.physics)
        d = state.info["lamp_pos"] - pos
        dist = jnp.linalg.norm(d)
        err = jnp.arctan2(d[1], d[0]) - theta
        err = jnp.arctan2(jnp.sin(err), jnp.cos(err))
        turn = jnp.clip(err / (locobot.W_MAX * locobot.CONTROL_DT * 2), -1.0, 1.0)
        fwd = jnp.where(jnp.abs(err) < jnp.pi / 6, jnp.clip((dist - stop_distance) / 0.1, 0.0, 1.0), 0.0)
        return jnp.stack([fwd, turn])

    return policy


def spin_policy(obs=None, key=None, state=None) -> jax.Array:
    """Turn in place at full rate: 9 degrees per step, so with a square image (60-degree
    view) an object at least 1 m away stays in view for at most 9 consecutive steps and
    ObjectNav can never succeed."""
    return jnp.array([0.0, 1.0], jnp.float32)


def objectnav(image_size=64, **kwargs) -> ObjectNav:
    """``nav/objectnav``: ObjectNav to a lamp, RGB only (see :class:`ObjectNav`)."""
    return ObjectNav(image_size=image_size, **kwargs)
