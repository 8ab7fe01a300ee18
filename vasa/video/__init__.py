"""Video models for efficient deployment: RubiksShift (learnable spatiotemporal shift), the TSM
and fixed-shift reference operations, and RubiksNet.

Import the pieces from their modules, e.g. ``from vasa.video.shift import rubiks_shift_3d``.
"""
