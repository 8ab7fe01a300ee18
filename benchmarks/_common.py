"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

from __future__ import annotations

import subprocess
from pathlib import Path


def vasa_revision() -> str:
    """The vasa checkout's git revision (``-dirty`` with uncommitted changes), or "unknown"."""
    repo = Path(__file__).resolve().parents[1]
    try:
        return subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
