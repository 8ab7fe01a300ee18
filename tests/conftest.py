import os
import sys

import pytest

# Share compiled programs between the test process and the subprocesses it starts.
CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax_cache")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
# XLA:CPU's legacy fusion: MJX kinematics of the manipulation arm's deep body tree is ~200x
# slower with the new fusion emitters under jax 0.10 (vasa.envs.tasks.manipulation); set for the
# whole test process because the first test to touch JAX fixes the backend's flags.
if "xla_cpu_use_fusion_emitters" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_use_fusion_emitters=false").strip()


def xla_flags(devices: int) -> str:
    """``XLA_FLAGS`` for a subprocess with ``devices`` fake CPU devices and otherwise this test
    process's flags (the fusion setting above), so subprocess results compare bitwise with
    in-process ones."""
    import re

    own = re.sub(r"--xla_force_host_platform_device_count=\S+", "", os.environ.get("XLA_FLAGS", "")).split()
    return " ".join(own + [f"--xla_force_host_platform_device_count={devices}"])


@pytest.fixture
def run_python(tmp_path):
    """Run a Python snippet in a fresh interpreter (optionally with fake CPU devices)."""
    import subprocess

    def run(code: str, devices: int = 1, timeout: int = 600) -> str:
        env = dict(os.environ)
        env["XLA_FLAGS"] = xla_flags(devices)
        env["JAX_PLATFORMS"] = "cpu"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                              timeout=timeout, cwd=tmp_path)
        if proc.returncode != 0:
            raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}")
        return proc.stdout

    return run


@pytest.fixture
def compiles():
    """``count[0]``: XLA compilations since the fixture was made (a ``[1]`` list)."""
    import jax

    count = [0]

    def listener(event, *args, **kwargs):
        if "backend_compile" in event or "compile_requests" in event:
            count[0] += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    jax.monitoring.register_event_listener(listener)
    return count
