"""Adapters that put Brax and MuJoCo Playground environments behind vasa's Env protocol.

The physics is theirs, untouched: the adapter only converts between their ``State`` and
vasa's :class:`~vasa.envs.core.EnvState` (their ``pipeline_state``/``data`` becomes
``physics``; their ``info`` and ``metrics`` pass through).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa.envs.core import ArraySpec, EnvState


class ForeignEnv:
    """Wraps an env whose ``reset``/``step`` use a Brax-style ``State`` dataclass.

    Args:
      env: the Brax ``PipelineEnv`` or Playground ``MjxEnv``.
      physics_field: the name of the simulator-state field in their ``State``
        (``"pipeline_state"`` for Brax, ``"data"`` for Playground).
      state_cls: their ``State`` class.
      episode_length, action_repeat: the defaults this task is usually run with.
    """

    def __init__(self, env, physics_field: str, state_cls, episode_length: int, action_repeat: int = 1):
        self.env = env
        self.physics_field = physics_field
        self.state_cls = state_cls
        self.default_episode_length = int(episode_length)
        self.default_action_repeat = int(action_repeat)

    @property
    def observation_spec(self) -> ArraySpec:
        size = self.env.observation_size
        if isinstance(size, int):
            return ArraySpec((size,), jnp.float32)
        return jax.tree.map(lambda s: ArraySpec(tuple(s), jnp.float32), size, is_leaf=lambda x: isinstance(x, tuple))

    @property
    def action_spec(self) -> ArraySpec:
        n = self.env.action_size
        return ArraySpec((n,), jnp.float32, low=-jnp.ones(n), high=jnp.ones(n))

    @property
    def mj_model(self):
        """The MuJoCo ``MjModel`` of the task (for renderers and tests)."""
        return getattr(self.env, "mj_model", None) or self.env.sys.mj_model

    @property
    def mjx_model(self):
        """The MJX model the task steps with."""
        return getattr(self.env, "mjx_model", None) or self.env.sys

    def _to_env_state(self, s) -> EnvState:
        f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        # strong dtypes: Playground's reset stores Python floats (e.g. ``data.time``), whose
        # weak types would make a jitted training step compile twice (weak in, strong out)
        strong = lambda tree: jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)  # noqa: E731
        return EnvState(
            physics=strong(getattr(s, self.physics_field)),
            obs=s.obs,
            reward=f32(s.reward),
            done=f32(s.done),
            truncation=jnp.zeros_like(f32(s.done)),
            info=strong(dict(s.info)),
            metrics=strong(dict(s.metrics)),
        )

    def reset(self, key: jax.Array) -> EnvState:
        return self._to_env_state(self.env.reset(key))

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        theirs = self.state_cls(
            **{self.physics_field: state.physics},
            obs=state.obs,
            reward=state.reward,
            done=jnp.zeros_like(state.done),
            metrics=dict(state.metrics),
            info=dict(state.info),
        )
        return self._to_env_state(self.env.step(theirs, action))


BRAX_ENVS = (
    "ant", "halfcheetah", "hopper", "humanoid", "humanoidstandup", "inverted_pendulum",
    "inverted_double_pendulum", "pusher", "reacher", "swimmer", "walker2d",
)


def brax_env(name: str, **kwargs) -> ForeignEnv:
    """Brax environment ``name`` on the MJX backend (``kwargs`` go to Brax's constructor)."""
    from brax import envs as brax_envs
    from brax.envs.base import State

    env = brax_envs.get_environment(name, backend="mjx", **kwargs)
    return ForeignEnv(env, "pipeline_state", State, episode_length=1000)


# vasa id -> Playground name. Action repeats follow the PAD/SECANT protocol for pixels; on
# states Playground's own default (1) is used, as DM Control does.
DMC_TASKS = {
    "acrobot_swingup": "AcrobotSwingup",
    "ball_in_cup_catch": "BallInCup",
    "cartpole_balance": "CartpoleBalance",
    "cartpole_balance_sparse": "CartpoleBalanceSparse",
    "cartpole_swingup": "CartpoleSwingup",
    "cartpole_swingup_sparse": "CartpoleSwingupSparse",
    "cheetah_run": "CheetahRun",
    "finger_spin": "FingerSpin",
    "finger_turn_easy": "FingerTurnEasy",
    "finger_turn_hard": "FingerTurnHard",
    "fish_swim": "FishSwim",
    "hopper_hop": "HopperHop",
    "hopper_stand": "HopperStand",
    "humanoid_stand": "HumanoidStand",
    "humanoid_walk": "HumanoidWalk",
    "humanoid_run": "HumanoidRun",
    "pendulum_swingup": "PendulumSwingup",
    "point_mass_easy": "PointMass",
    "reacher_easy": "ReacherEasy",
    "reacher_hard": "ReacherHard",
    "swimmer_swimmer6": "SwimmerSwimmer6",
    "walker_run": "WalkerRun",
    "walker_stand": "WalkerStand",
    "walker_walk": "WalkerWalk",
}


def dmc_env(task: str, **config_overrides) -> ForeignEnv:
    """DM Control Suite ``task`` from MuJoCo Playground, with the pure-JAX MJX backend.

    ``config_overrides`` go to Playground's task config (``impl`` defaults to ``"jax"``,
    which needs no Warp and no download).
    """
    from mujoco_playground import registry
    from mujoco_playground import State

    name = DMC_TASKS[task]
    overrides = {"impl": "jax", **config_overrides}
    config = registry.get_default_config(name)
    env = registry.load(name, config_overrides=overrides)
    return ForeignEnv(env, "data", State, episode_length=int(config.episode_length))
