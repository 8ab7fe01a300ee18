"""XLA:CPU flags vasa selects before JAX starts its backend.

Under jax 0.10, XLA:CPU's new fusion emitters blow up exponentially with the depth of a
kinematic tree: ``mjx.kinematics`` of a 7-deep chain took 370 ms for 32 environments instead
of 1.8 ms (measured 2026-12-02; depth 4: 0.7 ms, depth 6: 26 ms), and the Robotics Suite's
arm is 9 bodies deep. So ``import vasa`` requests the legacy emitters
(``--xla_cpu_use_fusion_emitters=false``) when JAX's backend has not started yet and
``XLA_FLAGS`` does not mention them; the test suite runs everything under this setting.
Opt out with ``XLA_FLAGS=--xla_cpu_use_fusion_emitters=true``. GPU and TPU are unaffected.

Single-threaded Eigen for the Robotics Suite: on the 2-core CPU, XLA:CPU's Eigen thread pool
wedged (every XLA thread idle, the main thread waiting in ``BlockUntilReady`` for ever) on the
first iteration of PPO on ``robo/stack`` with 128 environments (both of two runs) and on a
``robo/lift`` rollout of 256 environments (2026-12-02, gdb stacks; PyAutoLabs/PyAutoFit#1528
reports the same wedge on other vmapped programs and the same cure). With
``--xla_cpu_multi_thread_eigen=false`` the same programs ran. It costs multi-threaded matrix
products, so ``import vasa`` does not set it; :func:`prepare_for` does for ``robo/*`` ids, and
the example scripts call it with their ``--env`` before JAX starts (opt out with
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=true``).
"""

from __future__ import annotations

import os
import sys

FUSION_FLAG = "--xla_cpu_use_fusion_emitters=false"
EIGEN_FLAG = "--xla_cpu_multi_thread_eigen=false"


def _request(flag: str) -> bool:
    """Add ``flag`` (``--name=value``) to ``XLA_FLAGS`` unless the backend has started or the
    user chose a value for ``name``; return whether the running (or next) backend has it."""
    name = flag.split("=")[0].lstrip("-")
    flags = os.environ.get("XLA_FLAGS", "")
    started = False
    if "jax" in sys.modules:  # a backend can only have started if JAX is imported (import vasa does not import it)
        try:
            from jax._src import xla_bridge

            started = xla_bridge.backends_are_initialized()
        except (ImportError, AttributeError):  # pragma: no cover - private API moved
            pass
    if started or name in flags:
        return flag in flags
    os.environ["XLA_FLAGS"] = (flags + " " + flag).strip()
    return True


def request_legacy_cpu_fusion() -> bool:
    """Add :data:`FUSION_FLAG` to ``XLA_FLAGS`` unless the backend has started or the user chose;
    return whether the running (or next) backend uses the legacy emitters."""
    return _request(FUSION_FLAG)


def prepare_for(env_id: str) -> bool:
    """Select the XLA:CPU flags that environment ``env_id`` needs, before JAX starts: for
    ``robo/*``, :data:`EIGEN_FLAG` (see the module docstring). Returns whether the running
    (or next) backend has every flag ``env_id`` needs (``True`` for other ids)."""
    if isinstance(env_id, str) and env_id.startswith("robo/"):
        return _request(EIGEN_FLAG)
    return True


LEGACY_CPU_FUSION = request_legacy_cpu_fusion()
"""Whether XLA:CPU runs (or will run) with the legacy fusion emitters in this process."""
