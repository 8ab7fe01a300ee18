"""The notebooks in ``notebooks/``: executed top to bottom in smoke mode, and checked as committed.

* ``test_notebook_runs_in_smoke_mode``: each notebook is executed with ``nbclient`` in a fresh
  kernel, with ``VASA_NOTEBOOK_SMOKE=1`` (tiny settings, picked by the notebook's first code
  cell), this checkout first on the kernel's ``PYTHONPATH`` and a temporary folder as its
  working directory and ``TMPDIR`` (where the notebook's run directories go); an error in any
  cell fails the test. The notebook is read from the
  repository and executed in memory: the committed file is never written. The selected
  notebooks run two kernels at a time (``VASA_NOTEBOOK_KERNELS``, default 2): smoke mode is
  almost all XLA compilation, which uses one core per kernel.
  Measured (2-core CPU shared with two other jobs, the five notebooks together, two kernels
  at a time): 65 s (2026-12-02).
* The committed notebooks carry the outputs of a real run in their normal (CPU) mode: every
  code cell executed once, in order, in one kernel; no error outputs or tracebacks; not the
  smoke settings; each file under 2 MB.
* Each notebook installs vasa from the repository URL kept in ``pyproject.toml``'s
  ``[project.urls] Repository``, and links to its own Colab page.
* Every "Open in Colab" link in the README points to an existing notebook of that repository,
  and every notebook has one.

Refresh the committed outputs (normal mode, executed in place one after another with an empty
JAX compilation cache, as on a fresh runtime; each notebook's wall time printed):
``python tests/test_notebooks.py [name ...]``. ``--smoke`` times the smoke mode instead
without writing anything (one kernel at a time; ``--kernels 2`` as the test runs them).
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import sys
import tempfile
import time
import tomllib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COLAB = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/(notebooks/[\w.-]+\.ipynb)")
MAX_BYTES = 2_000_000
KERNELS = int(os.environ.get("VASA_NOTEBOOK_KERNELS", "2"))


def repository() -> str:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]["urls"]["Repository"]


def kernel_env(smoke: bool, **extra: str) -> dict[str, str]:
    """The kernel's environment: this process's, with this checkout first on ``PYTHONPATH``
    (the notebooks then import the vasa under test, installed or not) and
    ``VASA_NOTEBOOK_SMOKE`` set or removed."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if smoke:
        env["VASA_NOTEBOOK_SMOKE"] = "1"
    else:
        env.pop("VASA_NOTEBOOK_SMOKE", None)
    return env


async def execute_async(path: pathlib.Path, cwd: pathlib.Path, env: dict[str, str], timeout: int = 900):
    """Run every cell of the notebook at ``path`` in a fresh kernel whose working directory is
    ``cwd`` and whose environment is ``env``; returns the executed notebook (in memory).
    Raises ``CellExecutionError``."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(cwd)}})
    await client.async_execute(env=env)
    return nb


def execute_all(jobs: list[tuple[pathlib.Path, pathlib.Path, dict]], kernels: int, timeout: int = 900) -> list:
    """Execute ``(path, cwd, env)`` jobs, at most ``kernels`` at a time; returns
    ``(executed notebook or the exception raised, seconds)`` per job, in order."""

    async def run_all():
        gate = asyncio.Semaphore(kernels)

        async def one(path, cwd, env):
            async with gate:
                t = time.perf_counter()
                try:
                    result = await execute_async(path, cwd, env, timeout)
                except Exception as e:  # reported by the notebook's own test
                    result = e
                return result, time.perf_counter() - t

        return await asyncio.gather(*(one(*job) for job in jobs))

    return asyncio.run(run_all())


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def output_text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    data = output.get("data", {})
    return "".join(data.get(k, "") for k in ("text/plain", "text/html") if isinstance(data.get(k, ""), str))


def test_there_are_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert {"quickstart_ppo", "pixels_and_sensors", "sac_from_pixels", "rubiksnet", "secant", "navigation"} <= names, names


@pytest.fixture(scope="module")
def smoke_runs(request, tmp_path_factory):
    """The notebooks whose smoke test is selected, executed in smoke mode: ``{path: (committed
    bytes before, executed notebook or exception, seconds)}``."""
    paths = [item.callspec.params["path"] for item in request.session.items
             if getattr(item, "originalname", None) == "test_notebook_runs_in_smoke_mode"]
    before = {p: p.read_bytes() for p in paths}
    jobs = []
    for p in paths:
        cwd = tmp_path_factory.mktemp(p.stem)
        jobs.append((p, cwd, kernel_env(smoke=True, TMPDIR=str(cwd))))   # the notebook's run directories too
    results = execute_all(jobs, KERNELS, timeout=600)
    return {p: (before[p], *r) for p, r in zip(paths, results)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_mode(path, smoke_runs):
    before, nb, _ = smoke_runs[path]
    if isinstance(nb, BaseException):
        raise nb
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
    import nbformat

    smoke = "--smoke" in argv
    kernels = int(argv[argv.index("--kernels") + 1]) if "--kernels" in argv else 1
    names = [a for a in argv if not a.startswith("--") and not a.isdigit()]
    paths = [p for p in NOTEBOOKS if not names or p.stem in names]
    missing = set(names) - {p.stem for p in paths}
    if missing:
        raise SystemExit(f"no such notebook: {sorted(missing)}; there are {[p.stem for p in NOTEBOOKS]}")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        for p in paths:
            # an empty compilation cache per notebook: timings as on a fresh runtime
            env = kernel_env(smoke, JAX_COMPILATION_CACHE_DIR=os.path.join(tmp, f"jax-cache-{p.stem}"),
                             **({"TMPDIR": tmp} if smoke else {}))
            jobs.append((p, pathlib.Path(tmp) if smoke else p.parent, env))
        t = time.perf_counter()
        results = execute_all(jobs, kernels if smoke else 1, timeout=3600)
        wall = time.perf_counter() - t
    failed = []
    for path, (nb, dt) in zip(paths, results):
        if isinstance(nb, BaseException):
            failed.append(path.stem)
            print(f"{path.stem}: FAILED after {dt:.0f} s: {type(nb).__name__}: {str(nb)[-2000:]}", flush=True)
            continue
        if not smoke:
            nbformat.write(nb, path)
        size = f", {path.stat().st_size:,} bytes" if not smoke else ""
        print(f"{path.stem}: {dt:.0f} s{'' if smoke else ', written'}{size}", flush=True)
    print(f"total: {sum(dt for _, dt in results):.0f} s of notebook time, {wall:.0f} s wall ({kernels if smoke else 1} "
          f"kernel(s) at a time)")
    if failed:
        raise SystemExit(f"failed: {failed}")


if __name__ == "__main__":
    main(sys.argv[1:])
