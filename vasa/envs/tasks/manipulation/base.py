"""Shared machinery of the table-top tasks (``robo/*``, one arm or several): scene compilation, the
control loop (one policy action per control step, torques recomputed at every physics
sub-step), proprioception and the reward wrapper (sparse or staged, scaled).

The torques of a sub-step are computed before its ``mjx.step``, from the current ``qpos`` and
``qvel`` but the kinematics, mass matrix and bias forces of the previous sub-step (``mjx.step``
runs its forward pass before integrating; robosuite runs forward kinematics before its
controllers): a 5 ms feedback delay, see :mod:`.control`. joint_velocity's PID memory lives in
``d.userdata`` (``mj_model.nuserdata`` is 0 in the other modes).

Physics step: ``timestep = 0.005`` s, 10 sub-steps per 20 Hz control step, MuJoCo's
``implicitfast`` integrator (the joint damping and the finger servos' damping are
integrated implicitly), Newton solver (6 iterations, 8 line-search steps; a task may set its own
``solver_iterations``: the door uses 3 and 4), pyramidal cones. Why 5 ms: contact
softness is bounded below by the step (a contact's time constant must be >= 2 steps), and
a held object creeps out of a soft grasp at a speed proportional to that softness. With
the finger pads' stiff contact parameters (time constant 0.01 s, impedance 0.99-0.999) a
grasped cube creeps ~1 mm per second at 2.5, 5 and 10 ms alike in MuJoCo C, and the scripted
lift/door succeed at all three; 5 ms is kept as the middle ground (robosuite uses 2 ms) with a
margin for MJX's float32 and the constraint count. ``timestep=0.01`` halves the cost.
"""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
import numpy as np
from mujoco import mjx

from vasa.envs import physics
from vasa.envs.core import ArraySpec, EnvState
from vasa.envs.scenes import robots, table
from vasa.envs.tasks.manipulation import control as ctl

ROBOT_BASE = (-0.56, 0.0, 0.912)  # robosuite: 0.16 m behind a 0.8 m table's edge, on its mount
DEFAULT_TIMESTEP = 0.005
INIT_NOISE = 0.02  # robosuite: joint noise N(0, 0.02^2) rad around the rest posture


def _check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed: choose from {tuple(allowed)}.")


def _check_number(name, value, low, high=None, integer=False):
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    ok = ok and not isinstance(value, bool) and np.isfinite(value) and value >= low and (high is None or value <= high)
    if not ok:
        kind = "an integer" if integer else "a number"
        span = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name}={value!r} is not allowed: it must be {kind} {span}.")


def mat_to_quat(mat: jax.Array) -> jax.Array:
    """``[3, 3]`` rotation matrix -> ``[4]`` unit quaternion (w, x, y, z), w >= 0 (branch-free)."""
    m = mat
    w = jnp.sqrt(jnp.maximum(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
    x = jnp.sqrt(jnp.maximum(0.0, 1.0 + m[0, 0] - m[1, 1] - m[2, 2])) / 2
    y = jnp.sqrt(jnp.maximum(0.0, 1.0 - m[0, 0] + m[1, 1] - m[2, 2])) / 2
    z = jnp.sqrt(jnp.maximum(0.0, 1.0 - m[0, 0] - m[1, 1] + m[2, 2])) / 2
    x = jnp.copysign(x, m[2, 1] - m[1, 2])
    y = jnp.copysign(y, m[0, 2] - m[2, 0])
    z = jnp.copysign(z, m[1, 0] - m[0, 1])
    q = jnp.stack([w, x, y, z])
    return q / jnp.linalg.norm(q)


def touching(d, geoms_a, geoms_b) -> jax.Array:
    """``[] bool``: an active contact (distance <= 0) between any of ``geoms_a`` and any of ``geoms_b``."""
    con = d._impl.contact
    a = jnp.asarray(np.atleast_1d(geoms_a))
    b = jnp.asarray(np.atleast_1d(geoms_b))
    g1, g2 = con.geom1[:, None], con.geom2[:, None]
    in_a1, in_a2 = jnp.any(g1 == a[None], axis=1), jnp.any(g2 == a[None], axis=1)
    in_b1, in_b2 = jnp.any(g1 == b[None], axis=1), jnp.any(g2 == b[None], axis=1)
    return jnp.any(((in_a1 & in_b2) | (in_a2 & in_b1)) & (con.dist <= 0.0))


def arm_proprio(arm: ctl.Arm, d) -> jax.Array:
    """``[32] float32`` proprioception of one arm: joint cos ``[7]``, sin ``[7]``, velocities
    ``[7]``, grasp-site position ``[3]`` and quaternion ``[4]``, finger positions ``[2]`` and velocities ``[2]``."""
    q = d.qpos[arm.qpos]
    pos = d.site_xpos[arm.site]
    quat = mat_to_quat(d.site_xmat[arm.site].reshape(3, 3))
    return jnp.concatenate([jnp.cos(q), jnp.sin(q), d.qvel[arm.dof], pos, quat, d.qpos[arm.finger_qpos],
                            d.qvel[arm.finger_dof]]).astype(jnp.float32)


def _warn_if_slow_cpu_fusion() -> None:
    """Warn when JAX already runs on the CPU with the new fusion emitters (see vasa.xla_flags)."""
    from vasa.xla_flags import FUSION_FLAG, request_legacy_cpu_fusion

    if not request_legacy_cpu_fusion() and jax.default_backend() == "cpu":
        import warnings

        warnings.warn(f"JAX started on the CPU without {FUSION_FLAG}: the arm's MJX kinematics runs ~200x slower. "
                      f"Import vasa before JAX starts (before the first jax.devices() or computation), or set "
                      f"XLA_FLAGS={FUSION_FLAG}.", RuntimeWarning, stacklevel=3)


class ArmTask(abc.ABC):
    """A Panda-like arm at a table; subclasses add objects, observations, reward and success.

    Subclasses implement ``_build_objects(spec, rng)``, ``_init_objects(key, data) -> (data,
    params)``, ``_object_obs(data) -> [K]``, ``_reward(data, params) -> (shaped, success)`` and
    may override ``_model_for(params)`` for per-environment physical parameters.

    ``obs``: ``[32 + K] float32``: joint cos ``[7]``, sin ``[7]``, velocities ``[7]``, grasp
    site position ``[3]`` and quaternion ``[4]`` (w, x, y, z), finger positions ``[2]`` and
    velocities ``[2]``; then the task's object state ``[K]``.

    Several arms (``arm_poses``, e.g. the two-arm tasks): arm ``i`` is ``self.arms[i]``
    (``self.arm`` is arm 0), the action is the arms' actions concatenated ``[num_arms *
    action_size]`` and ``obs`` starts with each arm's 32 values in turn (``[32 num_arms + K]``).

    Args (every task takes them): ``control`` (:data:`~vasa.envs.tasks.manipulation.control.CONTROL_MODES`),
    ``reward_shaping``, ``reward_scale``, ``control_freq`` (Hz), ``timestep`` (physics step,
    s; ``1 / (control_freq * timestep)`` must be whole), ``seed`` (scene), ``solver_iterations``
    (``(Newton, line search)`` iterations per physics step, each in [1, 100]; ``None``: the
    task's own, (6, 8) or the door's (3, 4)). Bad values raise ``ValueError`` naming the field.
    """

    default_episode_length = 500
    default_action_repeat = 1
    proprio_size = 32  # per arm
    # (base position, base yaw) of each arm, prefixed robot0_, robot1_ (two-arm tasks override)
    arm_poses = ((ROBOT_BASE, 0.0),)
    # MJX's Newton solver budget per physics step: (Newton iterations, line-search iterations)
    solver_iterations = (6, 8)

    def __init__(self, control: str = "osc_pose", *, reward_shaping: bool = True, reward_scale: float | None = 1.0,
                 control_freq: float = 20.0, timestep: float = DEFAULT_TIMESTEP, seed: int = 0,
                 solver_iterations: tuple[int, int] | None = None):
        ctl.check_control(control)
        if solver_iterations is not None:
            if not isinstance(solver_iterations, (tuple, list)) or len(solver_iterations) != 2:
                raise ValueError(f"solver_iterations={solver_iterations!r} is not allowed: give (Newton iterations, "
                                 "line-search iterations), e.g. (6, 8).")
            for name, n in zip(("solver_iterations[0]", "solver_iterations[1]"), solver_iterations):
                _check_number(name, n, 1, 100, integer=True)
            self.solver_iterations = tuple(int(n) for n in solver_iterations)
        _check_choice("reward_shaping", reward_shaping, (True, False))
        if reward_scale is not None:
            _check_number("reward_scale", reward_scale, 0.0)
        _check_number("control_freq", control_freq, 1.0, 500.0)
        _check_number("timestep", timestep, 1e-4, 0.02)
        substeps = round(1.0 / (control_freq * timestep))
        if substeps < 1 or abs(substeps * timestep * control_freq - 1.0) > 1e-6:
            raise ValueError(f"timestep={timestep!r} is not allowed with control_freq={control_freq!r}: "
                             "1 / (control_freq * timestep) must be a whole number of sub-steps.")
        _warn_if_slow_cpu_fusion()
        self.control = control
        self.reward_shaping = bool(reward_shaping)
        self.reward_scale = reward_scale
        self.substeps = int(substeps)
        self.seed = int(seed)
        rng = np.random.default_rng(self.seed)
        spec = table.new_spec(timestep, iterations=self.solver_iterations[0], ls_iterations=self.solver_iterations[1])
        table.add_table(spec)
        self.optional_geoms = table.add_backdrop(spec)  # walls, hidden distractors (appearance only)
        arm_names = robots.add_arms(spec, self.arm_poses, actuation="torque")
        names = arm_names[0]
        self.arm_names = arm_names
        self.names = {**names, **self._build_objects(spec, rng)}
        state = ctl.state_size(control)  # controller memory per arm (joint_velocity's PID), in d.userdata
        spec.nuserdata = state * len(arm_names)
        self.spec = spec
        self.mj_model = spec.compile()
        self.arms = tuple(ctl.Arm.from_model(self.mj_model, n, state_adr=i * state) for i, n in enumerate(arm_names))
        self.arm = self.arms[0]
        self._mjx_model = mjx.put_model(self.mj_model, impl="jax")
        self._data0 = mjx.make_data(self.mj_model, impl="jax")
        # [num_arms, 2 fingers, 2 spheres]; ``pads`` is arm 0's [2 fingers, 2]
        self.arm_pads = np.array([[[self.mj_model.geom(n).id for n in side] for side in a["pads"]] for a in arm_names])
        self.pads = self.arm_pads[0]
        self._setup()

    # ------------------------------------------------------------------ subclass hooks
    @abc.abstractmethod
    def _build_objects(self, spec, rng) -> dict:
        """Add the task's objects to ``spec`` (``rng``: the scene's NumPy generator); return
        their names for :meth:`_setup`."""

    def _setup(self) -> None:
        """Look up object indices in ``self.mj_model`` (after compilation)."""

    @abc.abstractmethod
    def _init_objects(self, key, data):
        """Draw this environment's object state at reset: ``(data, params)``."""

    @abc.abstractmethod
    def _object_obs(self, data, params) -> jax.Array:
        """``float32 [K]`` object-state observation."""

    @abc.abstractmethod
    def _reward(self, data, params) -> tuple[jax.Array, jax.Array]:
        """``(reward [], success [])`` float32 of the state ``data``."""

    def _model_for(self, params):
        return self._mjx_model

    max_reward = 1.0

    # ------------------------------------------------------------------ protocol
    @property
    def mjx_model(self):
        return self._mjx_model

    @property
    def num_arms(self) -> int:
        return len(self.arm_poses)

    @property
    def action_spec(self) -> ArraySpec:
        """``[num_arms * action_size]``: the arms' actions concatenated (robot0's first)."""
        n = ctl.action_size(self.control) * self.num_arms
        return ArraySpec((n,), jnp.float32, low=-jnp.ones(n), high=jnp.ones(n))

    @property
    def observation_spec(self) -> ArraySpec:
        return ArraySpec((self.proprio_size * self.num_arms + self.object_obs_size,), jnp.float32)

    @property
    def dt(self) -> float:
        return float(self.mj_model.opt.timestep) * self.substeps

    def proprio(self, d) -> jax.Array:
        """``[32 * num_arms] float32`` proprioception (see the class docstring), arm by arm."""
        return jnp.concatenate([arm_proprio(arm, d) for arm in self.arms])

    def observe(self, d, params) -> jax.Array:
        return jnp.concatenate([self.proprio(d), self._object_obs(d, params).astype(jnp.float32)])

    def grasping(self, d, geoms, arm: int = 0) -> jax.Array:
        """``[] bool``: both finger pads of arm ``arm`` touch one of ``geoms`` (robosuite's ``_check_grasp``)."""
        pads = self.arm_pads[arm]
        return touching(d, pads[0], geoms) & touching(d, pads[1], geoms)

    def reward_and_success(self, d, params) -> tuple[jax.Array, jax.Array]:
        """``([] float32 reward, [] float32 success)``: sparse or staged, scaled by
        ``reward_scale / max_reward`` (robosuite's normalisation) unless ``reward_scale`` is None."""
        shaped, success = self._reward(d, params)
        sparse = jnp.where(success, self.max_reward, 0.0)
        reward = jnp.where(success, self.max_reward, shaped) if self.reward_shaping else sparse
        if self.reward_scale is not None:
            reward = reward * (self.reward_scale / self.max_reward)
        return reward.astype(jnp.float32), success.astype(jnp.float32)

    def reset(self, key: jax.Array) -> EnvState:
        k_arm, k_obj = jax.random.split(key)
        d = self._data0
        noise = INIT_NOISE * jax.random.normal(k_arm, (7 * self.num_arms,)).reshape(self.num_arms, 7)
        qpos, ctrl = d.qpos, d.ctrl
        for i, arm in enumerate(self.arms):
            qpos = qpos.at[arm.qpos].set(jnp.asarray(robots.HOME_QPOS) + noise[i])
            qpos = qpos.at[arm.finger_qpos].set(robots.FINGER_TRAVEL)
            ctrl = ctrl.at[arm.grip_act].set(robots.FINGER_TRAVEL)
        d = d.replace(qpos=qpos, ctrl=ctrl)
        d, params = self._init_objects(k_obj, d)
        m = self._model_for(params)
        d = physics.forward_positions(m, d)  # what observations, rewards and the next step read
        _, success = self.reward_and_success(d, params)
        zero = jnp.zeros((), jnp.float32)
        return EnvState(physics=d, obs=self.observe(d, params), reward=zero, done=zero, truncation=zero,
                        info={"object": params}, metrics={"success": success})

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        params = state.info["object"]
        m = self._model_for(params)
        d = state.physics
        n = ctl.action_size(self.control)
        goals = [ctl.set_goal(self.control, arm, m, d, action[i * n:(i + 1) * n]) for i, arm in enumerate(self.arms)]

        def substep(d, _):
            for arm, goal in zip(self.arms, goals):
                d = ctl.apply(self.control, arm, m, d, goal)
            return physics.step(m, d), None

        d, _ = jax.lax.scan(substep, d, None, length=self.substeps)
        reward, success = self.reward_and_success(d, params)
        return state.replace(physics=d, obs=self.observe(d, params), reward=reward,
                             done=jnp.zeros((), jnp.float32), metrics={**state.metrics, "success": success})

    def state_from(self, qpos, qvel, ctrl, params, act=None, qacc_warmstart=None) -> EnvState:
        """The :class:`EnvState` of a stored physics state (a demonstration's, see
        :mod:`vasa.envs.demos`): ``qpos [nq]``, ``qvel [nv]``, ``ctrl [nu]``, ``act [na]`` and
        ``qacc_warmstart [nv]`` (optional) float32, ``params`` the task's ``info["object"]``.
        Kinematics come from ``mjx.forward`` with the per-environment model, so the observation
        is that of ``qpos`` itself (a stepped state's observation reads poses one physics
        sub-step older); ``reward`` and ``done`` are 0, ``metrics["success"]`` that of the state.
        The controller memory (joint_velocity's PID sums, ``d.userdata``) starts at zero, as after
        a reset."""
        d = self._data0.replace(qpos=jnp.asarray(qpos, jnp.float32), qvel=jnp.asarray(qvel, jnp.float32),
                                ctrl=jnp.asarray(ctrl, jnp.float32))
        if act is not None:
            d = d.replace(act=jnp.asarray(act, jnp.float32))
        if qacc_warmstart is not None:
            d = d.replace(qacc_warmstart=jnp.asarray(qacc_warmstart, jnp.float32))
        d = physics.forward(self._model_for(params), d)
        _, success = self.reward_and_success(d, params)
        zero = jnp.zeros((), jnp.float32)
        return EnvState(physics=d, obs=self.observe(d, params), reward=zero, done=zero, truncation=zero,
                        info={"object": params}, metrics={"success": success})
