"""Robotics Suite tasks on MJX (``robo/*``): a Panda-like arm built from primitive geoms,
robosuite's control modes computed in JAX, table-top scenes drawn per environment at reset.

Ids: ``robo/lift`` (:mod:`.lift`), ``robo/door`` (:mod:`.door`), ``robo/stack`` (:mod:`.stack`),
``robo/pick_place`` (:mod:`.pick_place`, bins from :mod:`vasa.envs.scenes.bins`). Control modes
(:mod:`.control`): ``osc_pose`` (default), ``joint_velocity``, ``joint_position``,
``joint_torque``. Scripted controllers: :mod:`.scripted`, :mod:`.scripted_pick` (stack, pick_place).
Also ``robo/nut_assembly`` (:mod:`.nut_assembly`, scripted controller in :mod:`.scripted_nut`).
Two arms (robosuite's opposed configuration, actions and proprioception concatenated per arm):
``robo/two_arm_lift`` (:mod:`.two_arm_lift`) and ``robo/two_arm_peg_in_hole`` (:mod:`.two_arm_peg_in_hole`),
both with scripted controllers in :mod:`.scripted_two_arm`.
"""

import os as _os

# XLA:CPU's fusion emitters (jax 0.10) blow up exponentially with the depth of a kinematic tree:
# ``mjx.kinematics`` of a 7-deep chain took 370 ms for 32 envs instead of 1.8 ms (measured
# 2026-12-02; depth 4: 0.7 ms, depth 6: 26 ms). A 7-DoF arm is 9 bodies deep, so the legacy
# emitters are requested here when the backend has not started yet (set
# ``XLA_FLAGS=--xla_cpu_use_fusion_emitters=false`` yourself if you import this later).
FUSION_FLAG = "--xla_cpu_use_fusion_emitters=false"


def _request_legacy_cpu_fusion() -> bool:
    try:
        from jax._src import xla_bridge

        if xla_bridge.backends_are_initialized():
            return FUSION_FLAG in _os.environ.get("XLA_FLAGS", "")
    except (ImportError, AttributeError):  # pragma: no cover - private API moved
        pass
    flags = _os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_use_fusion_emitters" not in flags:
        _os.environ["XLA_FLAGS"] = (flags + " " + FUSION_FLAG).strip()
    return True


LEGACY_CPU_FUSION = _request_legacy_cpu_fusion()
