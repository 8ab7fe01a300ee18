"""SECANT: expert-to-student distillation for visual policies that survive visual shift.

* :mod:`vasa.distill.augment` — weak (DrQ's random shift) and strong augmentations
  (cutout-colour, random convolution, Gaussian, impulse, mixup, cutmix; Combo1-3).
* :mod:`vasa.distill.distractors` — distractor image banks for mixup/cutmix without downloads.
* :mod:`vasa.distill.experts` — any trained vasa policy (privileged state or pixels) as an expert.
* :mod:`vasa.distill.dagger` — DAgger, SafeDAgger and SECANT-Parallel on the device (SECANT's
  stage 2).
* :mod:`vasa.distill.secant` — the whole pipeline; :mod:`vasa.distill.zero_shot` — evaluation
  under the appearance suites; :mod:`vasa.distill.metrics` — latency, saliency, embeddings,
  cycle consistency.
"""

from vasa.distill.augment import (COMBOS, OPERATORS, StrongAugConfig, draw_params, operator_choices, random_shift,
                                  random_shift_pair, resize_bank, shift_offsets, strong_augment)
from vasa.distill.distractors import DistractorConfig, make_bank, save_grid
from vasa.distill.experts import Expert, Learner, expert_from_ddpg, expert_from_ppo, expert_from_sac, ppo_learner

__all__ = ["COMBOS", "OPERATORS", "DistractorConfig", "Expert", "Learner", "StrongAugConfig", "draw_params",
           "expert_from_ddpg", "expert_from_ppo", "expert_from_sac", "make_bank", "operator_choices", "ppo_learner",
           "random_shift", "random_shift_pair", "resize_bank", "save_grid", "shift_offsets", "strong_augment"]
