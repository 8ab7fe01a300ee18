"""Learning-rate schedules shared by the learners (PPO, DAgger's student)."""

from __future__ import annotations

import optax

DECAYS = ("constant", "linear", "cosine")


def decay_schedule(kind: str, learning_rate: float, steps: int) -> optax.Schedule:
    """``step -> learning rate``: ``constant``; ``linear`` from ``learning_rate`` at step 0 to 0
    at ``steps`` (and after); ``cosine``, ``learning_rate * (1 + cos(pi * min(step, steps) /
    steps)) / 2``.

    Raises:
      ValueError: ``kind`` is not one of :data:`DECAYS`.
    """
    if kind == "linear":
        return optax.linear_schedule(learning_rate, 0.0, steps)
    if kind == "cosine":
        return optax.cosine_decay_schedule(learning_rate, steps)
    if kind == "constant":
        return optax.constant_schedule(learning_rate)
    raise ValueError(f"lr_schedule={kind!r} is not one of {DECAYS}")


__all__ = ["DECAYS", "decay_schedule"]
