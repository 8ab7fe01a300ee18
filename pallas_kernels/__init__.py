"""Pallas kernels used by vasa (but independent of it): ``rubiks_shift`` (RubiksShift)."""

from pallas_kernels.rubiks_shift import (Block, InterpretModeWarning, choose_block, choose_fused_block, gpu_available,
                                         rubiks_shift_2d, rubiks_shift_3d, rubiks_shift_pointwise)

__all__ = ["Block", "InterpretModeWarning", "choose_block", "choose_fused_block", "gpu_available", "rubiks_shift_2d",
           "rubiks_shift_3d", "rubiks_shift_pointwise"]
