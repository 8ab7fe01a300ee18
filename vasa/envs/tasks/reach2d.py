"""Reach2D: a point in the plane driven to the origin, in pure JAX, that renders itself.

A toy *pixel* task for tests and CPU demos of visual imitation and RL: it compiles in about a
second, and its camera is a few lines of JAX instead of MJX ray casting.

* state (``physics`` and the state observation): the position ``p: [2] float32`` in
  ``[-1, 1]^2``;
* action ``a: [2]`` in ``[-1, 1]^2``, a velocity: ``p' = clip(p + SPEED * a, -1, 1)``;
* reward ``-||p'||`` (distance to the origin after the step); episodes never terminate
  (:func:`vasa.envs.make` truncates them after 50 steps) and start uniformly in the square;
* ``metrics["success"]``: 1.0 while ``||p'|| < SUCCESS_RADIUS`` (0.1), else 0.0;
* image (:meth:`Reach2D.render_rgb`): a Gaussian blob (standard deviation 6% of the image
  width) at ``p`` on a dark background, ``x`` to the right and ``y`` up, with ``(0, 0)`` in
  the centre. ``vasa.envs.make("toy/reach2d", pixels=True, image_size=16, frame_stack=3)``
  stacks frames into ``{"pixels": uint8 [16, 16, 9], "proprio": float32 [2]}``
  (:class:`vasa.envs.wrappers.RenderedObservation`).

The linear controller ``a = clip(-K p, -1, 1)`` is a known expert: with ``K = 1 / (2 SPEED)``
it halves the distance every step (returns about -0.8 on 50-step episodes, against about
-38 for a policy that stays put).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vasa.envs.core import ArraySpec, EnvState

SPEED = 0.2
BACKGROUND = (30.0, 30.0, 40.0)
BLOB = (255.0, 200.0, 60.0)
BLOB_SIGMA = 0.06  # blob standard deviation, in image widths
SUCCESS_RADIUS = 0.1  # metrics["success"]: within this distance of the origin


class Reach2D:
    """``obs``: ``[2] float32`` position; ``action``: ``[2]`` velocity in [-1, 1]."""

    default_episode_length = 50
    default_action_repeat = 1

    @property
    def observation_spec(self) -> ArraySpec:
        return ArraySpec((2,), jnp.float32, low=-np.ones(2, np.float32), high=np.ones(2, np.float32))

    @property
    def action_spec(self) -> ArraySpec:  # NumPy bounds: reading specs never touches a device
        return ArraySpec((2,), jnp.float32, low=-np.ones(2, np.float32), high=np.ones(2, np.float32))

    def reset(self, key: jax.Array) -> EnvState:
        p = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
        zero = jnp.zeros((), jnp.float32)
        return EnvState(physics=p, obs=p, reward=zero, done=zero, truncation=zero,
                        metrics={"success": (jnp.linalg.norm(p) < SUCCESS_RADIUS).astype(jnp.float32)})

    def step(self, state: EnvState, action: jax.Array) -> EnvState:
        p = jnp.clip(state.physics + SPEED * jnp.clip(action, -1.0, 1.0), -1.0, 1.0)
        dist = jnp.linalg.norm(p)
        return state.replace(physics=p, obs=p, reward=-dist, done=jnp.zeros((), jnp.float32),
                             metrics={**state.metrics, "success": (dist < SUCCESS_RADIUS).astype(jnp.float32)})

    def render_rgb(self, physics: jax.Array, height: int, width: int) -> jax.Array:
        """The frame of position ``physics: [2]``: ``uint8 [height, width, 3]``."""
        col = (physics[0] + 1.0) * 0.5 * (width - 1)
        row = (1.0 - physics[1]) * 0.5 * (height - 1)
        rows = jnp.arange(height, dtype=jnp.float32)[:, None]
        cols = jnp.arange(width, dtype=jnp.float32)[None, :]
        sigma = BLOB_SIGMA * width
        w = jnp.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2.0 * sigma**2))[..., None]
        rgb = (1.0 - w) * jnp.asarray(BACKGROUND) + w * jnp.asarray(BLOB)
        return jnp.round(rgb).astype(jnp.uint8)


def reach2d() -> Reach2D:
    """Build the pure-JAX Reach2D task."""
    return Reach2D()


def linear_expert_action(position: jax.Array, gain: float = 1.0 / (2.0 * SPEED)) -> jax.Array:
    """The known expert ``clip(-gain * position, -1, 1)``: ``[..., 2] -> [..., 2]``."""
    return jnp.clip(-gain * position, -1.0, 1.0)
