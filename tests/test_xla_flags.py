"""vasa.xla_flags: the legacy XLA:CPU fusion emitters are requested before JAX starts, and a process
that started JAX's CPU backend first is told that it runs other code (session 31: the SECANT
benchmark's main process did, and its evaluations differed from its workers')."""

import os
import subprocess
import sys

import pytest

LATE = "import warnings, jax; jax.devices(); warnings.simplefilter('always'); import vasa; "
EARLY = "import warnings; warnings.simplefilter('always'); import vasa, jax; jax.devices(); "
REPORT = "import os; print(vasa.xla_flags.LEGACY_CPU_FUSION, '--xla_cpu_use_fusion_emitters=false' in os.environ['XLA_FLAGS'])"


def _run(code: str, xla_flags: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags)
    return subprocess.run([sys.executable, "-c", code + REPORT], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("order, legacy, warned", [(EARLY, "True True", False), (LATE, "False False", True)])
def test_the_flag_is_requested_before_jax_starts_and_a_late_import_warns(order, legacy, warned):
    result = _run(order, "")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == legacy
    assert ("JAX's CPU backend started before `import vasa`" in result.stderr) == warned


def test_a_users_own_choice_is_kept_without_a_warning():
    result = _run(LATE, "--xla_cpu_use_fusion_emitters=true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == "False False"
    assert "started before" not in result.stderr
