# WIP (session 8): rename to tests/test_notebooks.py once the notebooks carry the outputs of a real run.
"""The notebooks in ``notebooks/``: executed top to bottom in smoke mode, and checked as committed.

* ``test_notebook_runs_in_smoke_mode``: each notebook is executed with ``nbclient`` in a fresh
  kernel, with ``VASA_NOTEBOOK_SMOKE=1`` (tiny settings, picked by the notebook's first code
  cell) and a temporary folder as its working directory; an error in any cell fails the test.
  The notebook is read from the repository and executed in memory: the committed file is
  never written.
  Measured (2-core CPU, the five notebooks together): TIMING_PLACEHOLDER
* The committed notebooks carry the outputs of a real run in their normal (CPU) mode: every
  code cell executed once, in order, in one kernel; no error outputs or tracebacks; not the
  smoke settings; each file under 2 MB.
* Each notebook installs vasa from the repository URL kept in ``pyproject.toml``'s
  ``[project.urls] Repository``, and links to its own Colab page.
* Every "Open in Colab" link in the README points to an existing notebook of that repository,
  and every notebook has one.

Refresh the committed outputs (normal mode, executed in place, each notebook's wall time
printed): ``python tests/test_notebooks.py [name ...]``; ``--smoke`` times the smoke mode
without writing anything.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys
import time
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COLAB = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/(notebooks/[\w.-]+\.ipynb)")
MAX_BYTES = 2_000_000


def repository() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"]


def execute(path: pathlib.Path, cwd: pathlib.Path, timeout: int = 900):
    """Run every cell of the notebook at ``path`` in a fresh kernel whose working directory
    is ``cwd``; returns the executed notebook (in memory). Raises ``CellExecutionError``."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def output_text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return "".join(data.get(k, "") for k in ("text/plain", "text/html") if isinstance(data.get(k, ""), str))


def test_there_are_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert {"quickstart_ppo", "pixels_and_sensors", "sac_from_pixels", "rubiksnet", "secant"} <= names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("VASA_NOTEBOOK_SMOKE", "1")
    before = path.read_bytes()
    nb = execute(path, tmp_path, timeout=600)
    assert path.read_bytes() == before
    setup = code_cells(nb)[0]
    assert "smoke settings" in "".join(output_text(o) for o in setup.outputs)
    errors = [o for c in code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert not errors, errors


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_was_executed_without_errors(path):
    import nbformat

    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size:,} bytes"
    nb = nbformat.read(path, as_version=4)
    cells = code_cells(nb)
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: not executed once top to bottom: {counts}"
    silent = [c.source[:60] for c in cells if not c.outputs and re.search(r"^(print|show|show_video|display)\(", c.source, re.M)]
    assert not silent, f"{path.name}: cells that print or show have no outputs: {silent}"
    for c in cells:
        for o in c.outputs:
            assert o.output_type != "error", f"{path.name}: error output {o.get('ename')}: {o.get('evalue')}"
            text = output_text(o)
            assert "Traceback (most recent call last)" not in text, f"{path.name}: a traceback in {c.source[:60]!r}"
    setup = "".join(output_text(o) for o in cells[0].outputs)
    assert re.search(r"\b(cpu|gpu) settings", setup), f"{path.name}: not run with its normal settings: {setup[:200]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_installs_from_the_pyproject_url_and_links_to_colab(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    setup = code_cells(nb)[0].source
    assert f'REPOSITORY = "{repository()}"' in setup
    assert "pip" in setup and 'find_spec("vasa")' in setup and "VASA_NOTEBOOK_SMOKE" in setup
    links = COLAB.findall(nb.cells[0].source)
    repo = repository().removeprefix("https://github.com/")
    assert links == [(repo, f"notebooks/{path.name}")], links


def test_readme_colab_links_point_to_notebooks():
    readme = (ROOT / "README.md").read_text()
    links = COLAB.findall(readme)
    repo = repository().removeprefix("https://github.com/")
    assert links, "the README has no Open in Colab links"
    for owner_name, rel in links:
        assert owner_name == repo, f"{rel}: link to {owner_name}, the repository is {repo}"
        assert (ROOT / rel).is_file(), f"the README links to {rel}, which does not exist"
    assert {rel for _, rel in links} == {f"notebooks/{p.name}" for p in NOTEBOOKS}


def main(argv: list[str]) -> None:
    """Execute notebooks in place (normal mode) or, with --smoke, time them without writing."""
    import tempfile

    import nbformat

    smoke = "--smoke" in argv
    names = [a for a in argv if not a.startswith("--")]
    paths = [p for p in NOTEBOOKS if not names or p.stem in names]
    if smoke:
        os.environ["VASA_NOTEBOOK_SMOKE"] = "1"
    else:
        os.environ.pop("VASA_NOTEBOOK_SMOKE", None)
    total = 0.0
    for path in paths:
        t = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            nb = execute(path, pathlib.Path(tmp) if smoke else path.parent, timeout=3600)
        dt = time.perf_counter() - t
        total += dt
        if not smoke:
            nbformat.write(nb, path)
        print(f"{path.stem}: {dt:.0f} s{'' if smoke else ', written'}", flush=True)
    print(f"total: {total:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
