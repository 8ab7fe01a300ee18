"""XLA:CPU flags vasa selects before JAX starts its backend.

Under jax 0.10, XLA:CPU's new fusion emitters blow up exponentially with the depth of a
kinematic tree: ``mjx.kinematics`` of a 7-deep chain took 370 ms for 32 environments instead
of 1.8 ms (measured 2026-12-02; depth 4: 0.7 ms, depth 6: 26 ms), and the Robotics Suite's
arm is 9 bodies deep. So ``import vasa`` requests the legacy emitters
(``--xla_cpu_use_fusion_emitters=false``) when JAX's backend has not started yet and
``XLA_FLAGS`` does not mention them; the test suite runs everything under this setting.
Opt out with ``XLA_FLAGS=--xla_cpu_use_fusion_emitters=true``. GPU and TPU are unaffected.
"""

from __future__ import annotations

import os
import sys
import warnings

FUSION_FLAG = "--xla_cpu_use_fusion_emitters=false"


def request_legacy_cpu_fusion(warn_if_too_late: bool = False) -> bool:
    """Add :data:`FUSION_FLAG` to ``XLA_FLAGS`` unless the backend has started or the user chose;
    return whether the running (or next) backend uses the legacy emitters. With
    ``warn_if_too_late`` (once, at ``import vasa``), a CPU backend that started first without the
    user's choice is reported."""
    flags = os.environ.get("XLA_FLAGS", "")
    started = False
    if "jax" in sys.modules:  # a backend can only have started if JAX is imported (import vasa does not import it)
        try:
            from jax._src import xla_bridge

            started = xla_bridge.backends_are_initialized()
        except (ImportError, AttributeError):  # pragma: no cover - private API moved
            pass
    if "xla_cpu_use_fusion_emitters" in flags:
        return FUSION_FLAG in flags
    if started:
        if warn_if_too_late and _cpu_backend():
            warnings.warn("JAX's CPU backend started before `import vasa`, so XLA:CPU keeps its new fusion "
                          "emitters in this process: deep kinematic trees (robo/*) compile and run far slower, and "
                          "results differ in float rounding from processes that import vasa first (a chaotic task "
                          "amplifies that); import vasa before jax.devices() / jax.default_backend(), or set "
                          f"XLA_FLAGS={FUSION_FLAG} yourself (see vasa.xla_flags)", stacklevel=3)
        return False
    os.environ["XLA_FLAGS"] = (flags + " " + FUSION_FLAG).strip()
    return True


def _cpu_backend() -> bool:
    try:
        import jax

        return jax.default_backend() == "cpu"
    except Exception:  # pragma: no cover - a broken backend is reported where it is used
        return False


LEGACY_CPU_FUSION = request_legacy_cpu_fusion(warn_if_too_late=True)
"""Whether XLA:CPU runs (or will run) with the legacy fusion emitters in this process."""
