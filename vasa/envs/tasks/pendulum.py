"""Pendulum swing-up in pure JAX: compiles in about a second; for fast tests and users' CI.

Dynamics, reward and observation follow Gymnasium's ``Pendulum-v1`` (g = 10, m = l = 1,
dt = 0.05, max speed 8 rad/s, max torque 2), with the action normalised to [-1, 1]
(torque = 2 * action). Episodes never terminate; :func:`vasa.envs.make` truncates them after
200 steps. Returns lie in about [-1600, 0]; a good swing-up-and-hold policy scores above -200.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa.envs.core import ArraySpec, EnvState

G, MASS, LENGTH, DT = 10.0, 1.0, 1.0, 0.05
MAX_SPEED, MAX_TORQUE = 8.0, 2.0


class Pendulum:
    """``obs``: ``[3] float32`` (cos theta, sin theta, theta_dot); ``action``: ``[1]`` in [-1, 1]."""

    default_episode_length = 200
    default_action_repeat = 1

    @property
    def observation_spec(self) -> ArraySpec:
        return ArraySpec((3,), jnp.float32)

    @property
    def action_spec(self) -> ArraySpec:
        return ArraySpec((1,), jnp.float32, low=-jnp.ones(1), high=jnp.ones(1))

    @staticmethod
    def _obs(physics):
        theta, theta_dot = physics[0], physics[1]
        return jnp.stack([jnp.cos(theta), jnp.sin(theta), theta_dot])

    def reset(self, key: jax.Array) -> EnvState:
        physics = jax.random.uniform(key, (2,), minval=jnp.array([-jnp.pi, -1.0]), maxval=jnp.array([jnp.pi, 1.0]))
        zero = jnp.zeros((), jnp.float32)
        return EnvState(physics=physics, obs=self._obs(physics), reward=zero, done=zero, truncation=zero)

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        theta, theta_dot = state.physics[0], state.physics[1]
        torque = MAX_TORQUE * jnp.clip(action[0], -1.0, 1.0)
        angle = jnp.mod(theta + jnp.pi, 2 * jnp.pi) - jnp.pi
        cost = angle**2 + 0.1 * theta_dot**2 + 0.001 * torque**2
        new_theta_dot = theta_dot + (3 * G / (2 * LENGTH) * jnp.sin(theta) + 3.0 / (MASS * LENGTH**2) * torque) * DT
        new_theta_dot = jnp.clip(new_theta_dot, -MAX_SPEED, MAX_SPEED)
        physics = jnp.stack([theta + new_theta_dot * DT, new_theta_dot])
        return state.replace(physics=physics, obs=self._obs(physics), reward=-cost, done=jnp.zeros_like(cost))


def pendulum() -> Pendulum:
    """Build the pure-JAX pendulum swing-up task."""
    return Pendulum()
