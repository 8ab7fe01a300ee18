"""PointGoal navigation in procedural apartments on MJX (iGibson's ``point_nav_random``).

One env instance holds a *family* of ``num_layouts`` layouts (one compiled MJX model; see
:mod:`vasa.envs.scenes.apartment`). Each ``reset`` picks a layout for this environment, a
goal among the layout's ``goals_per_layout`` goal cells and a start cell 1-10 m from it by
geodesic distance, all in JAX; the layout's walls, furniture and lamps are mocap poses in
``mjx.Data``, so every vmapped environment stands in its own layout.

Geodesic distances are computed on the device: when the env is built, one distance field
per (layout, goal) on the 0.1 m traversability map, by min-relaxation in a
``lax.while_loop`` (:func:`~vasa.envs.tasks.navigation.geodesic.distance_field`, vmapped
over all goals at once). Precomputing them keeps ``reset`` cheap, which matters because a
batched auto-reset evaluates ``reset`` at every step; each step then reads the field at the
robot's position (:func:`~vasa.envs.tasks.navigation.geodesic.geodesic_at`). The price:
goals are drawn from ``goals_per_layout`` cells per layout (chosen at random among the free
ones), not from every free cell as iGibson does; starts are drawn from every free cell.

Observation (``sensors=("lidar",)``): ``float32 [3 + R]`` = goal in the robot frame as
(distance in m, cos bearing, sin bearing) then the LiDAR scan (iGibson's Hokuyo by default:
``R = 228`` rays over 240 degrees, 5.6 m, divided by the range so it lies in [0, 1]).
With image sensors (``"depth"``, ``"rgb"``: the head camera through vasa's renderer) the
observation is a dict ``{"state": [3 + R], "depth": float32 [H, W, 1] in [0, 1] of 5.6 m,
"rgb": uint8 [H, W, 3]}``. The pixel wrapper (``vasa.envs.make(..., pixels=True,
camera="head")``) also works, as for any MJX task.

Action: ``[2]`` in ``[-1, 1]``: forward speed ``0.5 a0`` m/s and turn rate ``1.57 a1``
rad/s (LoCoBot), held for the 0.1 s control step (5 physics steps).

Reward: decrease of the geodesic distance to the goal + 10 on success - 0.1 on a step with
a collision (the robot's sphere touching a wall, furniture or pushable). Success: within
0.36 m (Euclidean) of the goal; it ends the episode. Episodes last 500 steps.

Metrics (``state.metrics``, per step): ``success``, ``spl`` (``success * shortest /
max(shortest, path length)``, non-zero only on the success step; ``shortest`` is the
geodesic distance from the start to the goal's centre, as in iGibson, so a path that stops
0.36 m short can score 1), ``path_length``,
``collisions`` (steps with a collision so far), ``geodesic`` (current distance) and, with
pushables, ``effort`` (sum of mass x planar displacement of the pushable objects).
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
from vasa.envs.lidar import LidarConfig
from vasa.envs.scenes import apartment as apt
from vasa.envs.scenes import locobot
from vasa.envs.tasks.navigation.geodesic import distance_field, geodesic_at
from vasa.envs.tasks.navigation.planar_lidar import PlanarLidar

SENSORS = ("lidar", "depth", "rgb")
SUCCESS_RADIUS = 0.36
GOAL_RANGE = (1.0, 10.0)


def _check_image_size(image_size):
    """``(height, width)``; ``ValueError`` naming ``image_size`` (:func:`vasa.envs.check_image_size`)."""
    from vasa.envs import check_image_size

    return check_image_size(image_size)


class PointGoalNav:
    """PointGoal navigation (see the module docstring).

    Args:
      rows, cols, corridor, furniture_per_room, pushables, family_seed: the apartment family
        (:class:`~vasa.envs.scenes.apartment.ApartmentConfig`).
      split: ``"train"`` or ``"heldout"`` layouts (disjoint seed ranges). num_layouts: how
        many; layout_start: the first layout seed's index in the split.
      look: ``"train"`` or ``"heldout"`` colours/textures/light; look_seed: which one.
      sensors: a tuple of ``"lidar"``, ``"depth"``, ``"rgb"`` (``"lidar"`` required).
      lidar_rays: 228 (iGibson's Hokuyo) or e.g. 512 (the thesis's sim-to-real LiDAR).
      lidar_impl: ``"planar"`` (:class:`~vasa.envs.tasks.navigation.planar_lidar.PlanarLidar`,
        2-D casting against the cross-sections at the LiDAR's height, the default) or
        ``"renderer"`` (:class:`vasa.envs.render.Lidar`, the general 3-D caster); both
        match ``mj_ray``.
      image_size: head-camera size for depth/RGB, ``S`` or ``(height, width)``.
      goals_per_layout: goal cells per layout (each has a precomputed distance field).
      success_reward, collision_penalty: the reward's constants.
    """

    def __init__(self, *, rows: int = 2, cols: int = 2, corridor: bool = True, furniture_per_room: int = 2,
                 pushables: int = 0, family_seed: int = 0, split: str = "train", num_layouts: int = 4,
                 layout_start: int = 0, look: str = "train", look_seed: int = 0, sensors=("lidar",),
                 lidar_rays: int = 228, lidar_impl: str = "planar", image_size=64, goals_per_layout: int = 32,
                 success_reward: float = 10.0, collision_penalty: float = 0.1, episode_length: int = 500):
        for name, value in (("rows", rows), ("cols", cols)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not 1 <= value <= 4:
                raise ValueError(f"{name}={value!r} is not allowed: the room grid's {name} must be an integer in [1, 4].")
        sensors = (sensors,) if isinstance(sensors, str) else tuple(sensors)
        bad = [s for s in sensors if s not in SENSORS]
        if bad or "lidar" not in sensors:
            raise ValueError(f"sensors={sensors!r} is not allowed: choose from {SENSORS}, including 'lidar'.")
        if look not in ("train", "heldout"):
            raise ValueError(f"look={look!r} is not allowed: choose 'train' or 'heldout'.")
        if not isinstance(lidar_rays, (int, np.integer)) or not 8 <= lidar_rays <= 4096:
            raise ValueError(f"lidar_rays={lidar_rays!r} is not allowed: it must be an integer in [8, 4096] "
                             "(228: iGibson's Hokuyo; 512: the sim-to-real LiDAR).")
        if lidar_impl not in ("planar", "renderer"):
            raise ValueError(f"lidar_impl={lidar_impl!r} is not allowed: choose 'planar' (2-D casting, fast) or "
                             "'renderer' (vasa's general 3-D caster).")
        if not isinstance(goals_per_layout, (int, np.integer)) or goals_per_layout < 1:
            raise ValueError(f"goals_per_layout={goals_per_layout!r} is not allowed: it must be an integer >= 1.")
        self.image_hw = _check_image_size(image_size)
        self.sensors = sensors
        cfg = apt.ApartmentConfig(rows=int(rows), cols=int(cols), corridor=bool(corridor),
                                  furniture_per_room=furniture_per_room, pushables=pushables,
                                  family_seed=family_seed).validate()
        self.family = apt.make_family(cfg)
        self.seeds = apt.layout_seeds(split, num_layouts, layout_start)
        self.layouts = [apt.generate_layout(self.family, s) for s in self.seeds]
        look_seed = int(look_seed) + (apt.HELDOUT_SEED_OFFSET if look == "heldout" else 0)
        self.look = locobot.make_look(look_seed)
        self.mj_model = locobot.build_spec(self.family, self.look).compile()
        self._mjx_model = mjx.put_model(self.mj_model)
        self.default_episode_length = int(episode_length)
        self.default_action_repeat = 1
        self.success_reward, self.collision_penalty = float(success_reward), float(collision_penalty)
        m = self.mj_model
        self.robot_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "robot")
        self.robot_qpos = int(m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "slide_x")])
        self.num_pushables = cfg.pushables
        self.push_qpos = [int(m.jnt_qposadr[mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, f"pushable{i}")])
                          for i in range(cfg.pushables)]
        # per-layout constants (device arrays shared by every environment)
        self.resolution = cfg.resolution
        self.origin = jnp.asarray(self.layouts[0].origin, jnp.float32)
        self.mocap_pos = jnp.asarray(np.stack([lay.mocap_pos for lay in self.layouts]), jnp.float32)
        self.mocap_quat = jnp.asarray(np.stack([lay.mocap_quat for lay in self.layouts]), jnp.float32)
        self.push_pos = jnp.asarray(np.stack([lay.push_pos for lay in self.layouts]), jnp.float32)
        free = np.stack([lay.free for lay in self.layouts])
        self.free = jnp.asarray(free)
        rng = np.random.default_rng([int(family_seed), 5] + self.seeds[:1])
        # where episodes may start or end: free cells 0.6 m clear of the pushable boxes (the
        # map ignores them, as they can be pushed aside, but no one starts inside one)
        h, w = free.shape[1:]
        cx = self.layouts[0].origin[0] + (np.arange(w) + 0.5) * cfg.resolution
        cy = self.layouts[0].origin[1] + (np.arange(h) + 0.5) * cfg.resolution
        usable = free.copy()
        for li, lay in enumerate(self.layouts):
            for p in lay.push_pos:
                usable[li] &= np.hypot(cx[None, :] - p[0], cy[:, None] - p[1]) > 0.6
        self.usable = jnp.asarray(usable)
        goals = np.stack([np.argwhere(f)[rng.choice(int(f.sum()), goals_per_layout, replace=False)] for f in usable])
        self.goal_cells = jnp.asarray(goals, jnp.int32)  # [L, K, 2] (row, col)
        self.fields = self._goal_fields(free, goals)  # [L, K, H, W]
        fields = np.asarray(self.fields)
        starts = ((fields >= GOAL_RANGE[0]) & (fields <= GOAL_RANGE[1]) & usable[:, None]).sum((2, 3))
        self.goal_ok = jnp.asarray(starts > 0)  # [L, K]: goals with a start 1-10 m away
        if not np.all(starts.max(1) > 0):
            raise ValueError(f"rows={rows!r}, cols={cols!r}: some layouts have no start 1-10 m from any goal; "
                             "use more rooms.")
        lidar_cfg = LidarConfig(num_rays=int(lidar_rays), fov_deg=240.0, min_range=0.05, max_range=5.6)
        from vasa.envs.render import Lidar, Renderer

        robot_body = int(m.geom_bodyid[self.robot_geom])
        if lidar_impl == "planar":
            self.lidar = PlanarLidar(m, lidar_cfg.angles(), locobot.LIDAR_HEIGHT, lidar_cfg.max_range,
                                     lidar_cfg.min_range, exclude_body=robot_body)
        else:
            self.lidar = Lidar(m, lidar_cfg, site="lidar")
        self.lidar_config = lidar_cfg
        self.camera = None
        if "depth" in sensors or "rgb" in sensors:
            h, w = self.image_hw
            self.camera = Renderer(m, w, h, shading="fast")
        self._obs_size = 3 + int(lidar_rays)

    # -- construction helpers -----------------------------------------------------------

    def _goal_fields(self, free: np.ndarray, goals: np.ndarray) -> jax.Array:
        """One distance field per (layout, goal), on the device: ``float32 [L, K, H, W]``."""
        L, K = goals.shape[:2]
        masks = np.zeros((L, K) + free.shape[1:], bool)
        masks[np.arange(L)[:, None], np.arange(K)[None, :], goals[..., 0], goals[..., 1]] = True
        per_map = jax.vmap(lambda f, g: distance_field(f, g, self.resolution), in_axes=(None, 0))
        return jax.jit(jax.vmap(per_map))(jnp.asarray(free), jnp.asarray(masks))

    # -- specs ----------------------------------------------------------------------------

    @property
    def mjx_model(self):
        return self._mjx_model

    @property
    def episode_length(self) -> int:
        return self.default_episode_length

    @property
    def observation_spec(self):
        state = ArraySpec((self._obs_size,), jnp.float32)
        if self.camera is None:
            return state
        h, w = self.image_hw
        out = {"state": state}
        if "depth" in self.sensors:
            out["depth"] = ArraySpec((h, w, 1), jnp.float32, low=0.0, high=1.0)
        if "rgb" in self.sensors:
            out["rgb"] = ArraySpec((h, w, 3), jnp.uint8, low=0, high=255)
        return out

    @property
    def action_spec(self) -> ArraySpec:
        return ArraySpec((2,), jnp.float32, low=-jnp.ones(2), high=jnp.ones(2))

    # -- helpers --------------------------------------------------------------------------

    def cell_centre(self, cell: jax.Array) -> jax.Array:
        """World ``[2]`` (x, y) of map cell ``(row, col)``."""
        return self.origin + (cell[::-1].astype(jnp.float32) + 0.5) * self.resolution

    def _pose(self, data):
        q = data.qpos[self.robot_qpos:self.robot_qpos + 3]
        return q[:2], q[2]

    def _collided(self, data) -> jax.Array:
        c = data._impl.contact
        mine = jnp.any(c.geom == self.robot_geom, axis=-1)
        return jnp.any(mine & (c.dist < 0.0))

    def _observe(self, data, goal_pos):
        pos, theta = self._pose(data)
        rel = goal_pos - pos
        dist = jnp.linalg.norm(rel)
        bearing = jnp.arctan2(rel[1], rel[0]) - theta
        c, s = jnp.cos(theta), jnp.sin(theta)
        mat = jnp.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        if isinstance(self.lidar, PlanarLidar):
            ranges = self.lidar.scan(data.geom_xpos, data.geom_xmat, pos, theta)
        else:
            ranges = self.lidar.scan(data, jnp.concatenate([pos, jnp.array([locobot.LIDAR_HEIGHT])]), mat)
        scan = ranges / self.lidar_config.max_range
        state = jnp.concatenate([jnp.stack([dist, jnp.cos(bearing), jnp.sin(bearing)]), scan]).astype(jnp.float32)
        if self.camera is None:
            return state
        from vasa.envs.render import look_at

        head = jnp.concatenate([pos + 0.05 * jnp.stack([c, s]), jnp.array([locobot.HEAD_HEIGHT])])
        cam = look_at(head, head + jnp.stack([c, s, 0.0]), fovy=60.0)
        out = {"state": state}
        if "depth" in self.sensors:
            out["depth"] = self._depth(data, cam)
        if "rgb" in self.sensors:
            out["rgb"] = self.camera.render(data, cam, outputs=("rgb",))["rgb"]
        return out

    def _depth(self, data, cam) -> jax.Array:
        """``float32 [H, W, 1]`` depth / 5.6 m in [0, 1], cast in chunks of rows
        (``lax.map``) so a large batch of images never holds ``rays x geoms`` at once."""
        h, w = self.image_hw
        origins, dirs, forward = self.camera.camera_rays(cam)
        chunks = next(c for c in (8, 4, 2, 1) if h % c == 0)
        dist = jax.lax.map(lambda od: self.camera.cast(data, od[0], od[1]).distance,
                           (origins.reshape(chunks, -1, 3), dirs.reshape(chunks, -1, 3))).reshape(-1)
        depth = jnp.nan_to_num(dist * (dirs @ forward), posinf=self.lidar_config.max_range)
        return jnp.clip(depth / self.lidar_config.max_range, 0.0, 1.0).reshape(h, w, 1).astype(jnp.float32)

    def geodesic(self, layout, goal, pos) -> jax.Array:
        """Geodesic distance ``[]`` (m) from ``pos [2]`` to goal ``goal`` of ``layout``."""
        return geodesic_at(self.fields[layout, goal], pos, self.origin, self.resolution)

    # -- protocol -------------------------------------------------------------------------

    def reset(self, key: jax.Array) -> EnvState:
        k_lay, k_goal, k_start, k_yaw = jax.random.split(key, 4)
        layout = jax.random.randint(k_lay, (), 0, self.goal_cells.shape[0])
        goal = jax.random.categorical(k_goal, jnp.where(self.goal_ok[layout], 0.0, -jnp.inf))
        field = self.fields[layout, goal]
        ok = (field >= GOAL_RANGE[0]) & (field <= GOAL_RANGE[1]) & self.usable[layout]
        flat = jax.random.categorical(k_start, jnp.where(ok, 0.0, -jnp.inf).reshape(-1))
        start = jnp.stack([flat // field.shape[1], flat % field.shape[1]])
        start_pos = self.cell_centre(start)
        yaw = jax.random.uniform(k_yaw, (), minval=-jnp.pi, maxval=jnp.pi)
        goal_pos = self.cell_centre(self.goal_cells[layout, goal])
        return self.reset_to(layout, goal, start_pos, yaw, goal_pos)

    def reset_to(self, layout, goal, start_pos, yaw, goal_pos=None) -> EnvState:
        """Start an episode at a chosen pose: ``layout``/``goal`` indices ``[] int32``,
        ``start_pos [2]``, ``yaw []`` (rad); ``goal_pos [2]`` defaults to the goal cell's centre."""
        m = self._mjx_model
        goal_pos = self.cell_centre(self.goal_cells[layout, goal]) if goal_pos is None else jnp.asarray(goal_pos, jnp.float32)
        data = mjx.make_data(m)
        qpos = data.qpos.at[self.robot_qpos:self.robot_qpos + 3].set(jnp.concatenate([start_pos, yaw[None]]))
        for i, adr in enumerate(self.push_qpos):
            qpos = qpos.at[adr:adr + 7].set(jnp.concatenate([self.push_pos[layout, i], jnp.array([1.0, 0, 0, 0])]))
        data = data.replace(qpos=qpos, mocap_pos=self.mocap_pos[layout], mocap_quat=self.mocap_quat[layout])
        data = smooth.kinematics(m, data)  # poses for the sensors; contacts come with the first step
        shortest = self.geodesic(layout, goal, start_pos)
        zero = jnp.zeros((), jnp.float32)
        info = {"layout": jnp.asarray(layout, jnp.int32), "goal": jnp.asarray(goal, jnp.int32), "goal_pos": goal_pos,
                "shortest": shortest, "prev_geodesic": shortest, "path_length": zero, "collisions": zero,
                "push_start": self._push_xy(data)}
        metrics = {"success": zero, "spl": zero, "path_length": zero, "collisions": zero, "geodesic": shortest}
        if self.num_pushables:
            metrics["effort"] = zero
        return EnvState(physics=data, obs=self._observe(data, goal_pos), reward=zero, done=zero,
                        truncation=zero, info=info, metrics=metrics)

    def _push_xy(self, data) -> jax.Array:
        if not self.push_qpos:
            return jnp.zeros((0, 2), jnp.float32)
        return jnp.stack([data.qpos[a:a + 2] for a in self.push_qpos])

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        m = self._mjx_model
        info = state.info
        action = jnp.asarray(action, jnp.float32)

        def substep(data, _):
            _, theta = self._pose(data)
            data = data.replace(ctrl=locobot.drive_targets(theta, action))
            data = physics.step(m, data)
            return data, self._collided(data)

        data, hits = jax.lax.scan(substep, state.physics, None, length=locobot.SUBSTEPS)
        collided = jnp.any(hits).astype(jnp.float32)
        pos0, _ = self._pose(state.physics)
        pos, _ = self._pose(data)
        path = info["path_length"] + jnp.linalg.norm(pos - pos0)
        geo = self.geodesic(info["layout"], info["goal"], pos)
        success = (jnp.linalg.norm(pos - info["goal_pos"]) < SUCCESS_RADIUS).astype(jnp.float32)
        reward = info["prev_geodesic"] - geo + self.success_reward * success - self.collision_penalty * collided
        collisions = info["collisions"] + collided
        spl = success * info["shortest"] / jnp.maximum(info["shortest"], path)
        new_info = {**info, "prev_geodesic": geo, "path_length": path, "collisions": collisions}
        metrics = {"success": success, "spl": spl, "path_length": path, "collisions": collisions, "geodesic": geo}
        if self.num_pushables:
            moved = jnp.linalg.norm(self._push_xy(data) - info["push_start"], axis=-1)
            metrics["effort"] = jnp.sum(moved) * locobot.PUSH_MASS
        return state.replace(physics=data, obs=self._observe(data, info["goal_pos"]), reward=reward.astype(jnp.float32),
                             done=success, truncation=jnp.zeros_like(success), info=new_info, metrics=metrics)


def pointgoal(image_size=64, **kwargs) -> PointGoalNav:
    """``nav/pointgoal``: PointGoal among static furniture (see :class:`PointGoalNav`;
    ``image_size`` sizes its own depth/RGB camera, and :func:`vasa.envs.make` passes its own)."""
    return PointGoalNav(image_size=image_size, **kwargs)


def interactive_pointgoal(pushables: int = 3, image_size=64, **kwargs) -> PointGoalNav:
    """``nav/interactive_pointgoal``: PointGoal with ``pushables`` free boxes (2 kg each) in
    the rooms; the map ignores them (they can be pushed aside), ``metrics["effort"]`` is the
    displaced mass x distance."""
    if not isinstance(pushables, (int, np.integer)) or not 1 <= pushables <= 8:
        raise ValueError(f"pushables={pushables!r} is not allowed: it must be an integer in [1, 8].")
    return PointGoalNav(pushables=int(pushables), image_size=image_size, **kwargs)
