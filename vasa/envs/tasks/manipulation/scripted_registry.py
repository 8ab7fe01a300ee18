"""The scripted controller of each ``robo/*`` task, by environment id.

``scripted_policy("robo/nut_assembly", nut_type="square")`` returns the pure-JAX
``policy(obs [O] float32) -> action [A] float32`` that :func:`vasa.envs.demos.record` and the
scripted-controller checks roll out. Task options that the controller needs (the nut type) are
taken from the same keyword arguments that build the task; the others are ignored here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from vasa.envs.tasks.manipulation import (
    scripted,
    scripted_nut,
    scripted_pick,
    scripted_two_arm,
)

POLICIES: dict[str, Callable] = {
    "robo/lift": scripted.lift_policy,
    "robo/door": scripted.door_policy,
    "robo/stack": scripted_pick.stack_policy,
    "robo/pick_place": scripted_pick.pick_place_policy,
    "robo/nut_assembly": scripted_nut.nut_assembly_policy,
    "robo/two_arm_lift": scripted_two_arm.two_arm_lift_policy,
    "robo/two_arm_peg_in_hole": scripted_two_arm.peg_in_hole_policy,
}


def scripted_policy(env_id: str, **task_options) -> Callable:
    """The scripted controller for ``env_id`` (a key of :data:`POLICIES`).

    ``task_options``: the task's builder arguments; ``nut_type`` (``"both"``, ``"square"``,
    ``"round"``) selects the nut controller's plan for ``robo/nut_assembly``.

    Raises:
      ValueError: ``env_id`` has no scripted controller (the message lists those that do).
    """
    if env_id not in POLICIES:
        raise ValueError(f"env_id={env_id!r} is not allowed: scripted controllers exist for {sorted(POLICIES)}.")
    policy = POLICIES[env_id]
    if env_id == "robo/nut_assembly":
        policy = functools.partial(policy, nut_type=task_options.get("nut_type", "both"))
    return policy
