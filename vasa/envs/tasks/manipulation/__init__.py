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

from vasa.xla_flags import FUSION_FLAG, request_legacy_cpu_fusion

# XLA:CPU's new fusion emitters (jax 0.10) are ~200x slower on the arm's 9-deep kinematic tree;
# ``import vasa`` already requested the legacy ones (vasa.xla_flags); ask again in case the
# flag was cleared since, while the backend has not started.
LEGACY_CPU_FUSION = request_legacy_cpu_fusion()
__all__ = ["FUSION_FLAG", "LEGACY_CPU_FUSION"]
