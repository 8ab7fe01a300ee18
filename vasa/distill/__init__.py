"""SECANT expert-to-student distillation and the image augmentations it shares with SAC/DDPG."""

from vasa.distill.augment import random_shift, random_shift_pair, shift_offsets

__all__ = ["random_shift", "random_shift_pair", "shift_offsets"]
