"""XLA:CPU flags vasa selects before JAX starts its backend.

Under jax 0.10, XLA:CPU's new fusion emitters blow up exponentially with the depth of a
kinematic tree: ``mjx.kinematics`` of a 7-deep chain took 370 ms for 32 environments instead
of 1.8 ms (measured 2026-12-02; depth 4: 0.7 ms, depth 6: 26 ms), and the Robotics Suite's
arm is 9 bodies deep. So ``import vasa`` requests the legacy emitters
(``--xla_cpu_use_fusion_emitters=false``) when JAX's backend has not started yet and
``XLA_FLAGS`` does not mention them; the test suite runs everything under this setting.
Opt out with ``XLA_FLAGS=--xla_cpu_use_fusion_emitters=true``. GPU and TPU are unaffected.

It also hands XLA:CPU's dot and convolution fusions to YNNPACK
(``--xla_cpu_experimental_ynn_fusion_type=dot``, :data:`YNN_FLAG`) on the jaxlib versions where
that was measured (:data:`YNN_JAXLIB`; an unknown flag would abort XLA on others). Convolutions
run 2-3.4x faster than XLA's default (Eigen) kernels: the DrQ encoder's gradient on 64 images of
48x48 takes 42 instead of 84 ms in a ``scan``, and a SECANT student's iteration at 48x48 95
instead of 141 ms on 2 cores (``benchmarks/cpu_dot_library.py``, BENCHMARKS.md, session 32).
Results differ from Eigen's in float rounding only. Opt out with
``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=-dot`` (bitwise XLA's default; any setting of
that flag in ``XLA_FLAGS`` is kept as it is).
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib import metadata

FUSION_FLAG = "--xla_cpu_use_fusion_emitters=false"
YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type=dot"
YNN_JAXLIB = ((0, 10),)
"""jaxlib (major, minor) versions whose XLA:CPU knows :data:`YNN_FLAG` and was measured with it."""


def _backend_started() -> bool:
    if "jax" not in sys.modules:  # a backend can only have started if JAX is imported (import vasa does not import it)
        return False
    try:
        from jax._src import xla_bridge

        return xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # pragma: no cover - private API moved
        return False


def jaxlib_knows_ynn(version: str | None = None) -> bool:
    """Whether jaxlib ``version`` (default: the installed one) is one of :data:`YNN_JAXLIB`."""
    try:
        version = version or metadata.version("jaxlib")
        major, minor = (int(part) for part in version.split(".")[:2])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return (major, minor) in YNN_JAXLIB


def request_ynn_dot() -> bool:
    """Add :data:`YNN_FLAG` to ``XLA_FLAGS`` unless the backend has started, the user set
    ``--xla_cpu_experimental_ynn_fusion_type`` or jaxlib is not one of :data:`YNN_JAXLIB`; return
    whether the running (or next) backend hands its dot fusions to YNNPACK by this flag."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_experimental_ynn_fusion_type" in flags:  # the user's: on if its (last) list names dot
        values = [f.split("=", 1)[-1] for f in flags.split() if f.startswith("--xla_cpu_experimental_ynn_fusion_type=")]
        return bool(values) and bool({"dot", "+dot"} & set(values[-1].split(",")))
    if _backend_started() or not jaxlib_knows_ynn():
        return False
    os.environ["XLA_FLAGS"] = (flags + " " + YNN_FLAG).strip()
    return True


def request_legacy_cpu_fusion(warn_if_too_late: bool = False) -> bool:
    """Add :data:`FUSION_FLAG` to ``XLA_FLAGS`` unless the backend has started or the user chose;
    return whether the running (or next) backend uses the legacy emitters. With
    ``warn_if_too_late`` (once, at ``import vasa``), a CPU backend that started first without the
    user's choice is reported."""
    flags = os.environ.get("XLA_FLAGS", "")
    started = _backend_started()
    if "xla_cpu_use_fusion_emitters" in flags:
        return FUSION_FLAG in flags
    if started:
        if warn_if_too_late and _cpu_backend():
            warnings.warn("JAX's CPU backend started before `import vasa`, so XLA:CPU keeps its new fusion "
                          "emitters (and, on jaxlib 0.10, its Eigen convolutions) in this process: deep kinematic "
                          "trees (robo/*) compile and run far slower, convolutions 2-3x slower, and results differ in float "
                          "rounding from processes that import vasa first (a chaotic task amplifies that); import "
                          "vasa before jax.devices() / jax.default_backend(), or set "
                          f"XLA_FLAGS='{' '.join(_flags_vasa_sets())}' yourself (see vasa.xla_flags)", stacklevel=3)
        return False
    os.environ["XLA_FLAGS"] = (flags + " " + FUSION_FLAG).strip()
    return True


def _flags_vasa_sets() -> list[str]:
    return [FUSION_FLAG] + ([YNN_FLAG] if jaxlib_knows_ynn() else [])


def _cpu_backend() -> bool:
    try:
        import jax

        return jax.default_backend() == "cpu"
    except Exception:  # pragma: no cover - a broken backend is reported where it is used
        return False


LEGACY_CPU_FUSION = request_legacy_cpu_fusion(warn_if_too_late=True)
"""Whether XLA:CPU runs (or will run) with the legacy fusion emitters in this process."""
YNN_CPU_DOT = request_ynn_dot()
"""Whether XLA:CPU hands (or will hand) its dot and convolution fusions to YNNPACK in this process."""
