"""benchmarks/_common.vasa_revision: the revision of the vasa code a benchmark imports."""

import importlib.util
import subprocess
import warnings
from pathlib import Path

import pytest

import vasa

ROOT = Path(__file__).resolve().parents[1]


def _common():
    spec = importlib.util.spec_from_file_location("bench_common", ROOT / "benchmarks" / "_common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          capture_output=True, text=True, check=True).stdout.strip()


def test_revision_of_this_checkout_says_nothing_more():
    if Path(vasa.__file__).resolve().parents[1] != ROOT:
        pytest.skip("vasa is installed from another tree here")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        revision = _common().vasa_revision()
    assert revision == _git(ROOT, "describe", "--always", "--dirty")


def test_revision_of_another_copy_names_it_and_warns(tmp_path, monkeypatch):
    other = tmp_path / "other"
    (other / "vasa").mkdir(parents=True)
    (other / "vasa" / "__init__.py").write_text("")
    _git(tmp_path, "init", "-q", str(other))
    _git(other, "add", "vasa/__init__.py")
    _git(other, "commit", "-q", "-m", "other copy")
    monkeypatch.setattr(vasa, "__file__", str(other / "vasa" / "__init__.py"))
    with pytest.warns(UserWarning, match="imported from .*other"):
        revision = _common().vasa_revision()
    assert revision == f"{_git(other, 'rev-parse', '--short', 'HEAD')} (imported from {other.resolve()})"
