"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import statistics
import subprocess
import time
import warnings
from pathlib import Path


def _describe(repo: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def vasa_revision() -> str:
    """The git revision (``-dirty`` with uncommitted changes, "unknown" outside git) of the vasa
    package this process imports, which is the code a benchmark measures.

    When that package is not this checkout's (an editable install left pointing at another copy,
    or a wheel), the figures belong to the other code: this warns and appends ``imported from
    <path>`` to the revision (an editable install pointing at a removed or older copy has happened
    here between sessions). Import order matters too: calling this first imports vasa before JAX
    starts, as :mod:`vasa.xla_flags` needs."""
    import vasa

    package_root = Path(vasa.__file__).resolve().parents[1]
    here = Path(__file__).resolve().parents[1]
    revision = _describe(package_root)
    if package_root != here:
        warnings.warn(f"vasa is imported from {package_root}, not from this checkout ({here}): the "
                      f"figures measure that code; `pip install -e {here}` measures this one", stacklevel=2)
        revision += f" (imported from {package_root})"
    return revision


def median_ms(f, *args, repeats: int) -> float:
    """Median wall time of ``f(*args)`` in ms over ``repeats`` calls (outputs blocked on), after
    one untimed call that compiles."""
    import jax

    jax.block_until_ready(f(*args))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(*args))
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)
