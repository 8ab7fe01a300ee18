"""The ``vasa`` command (``python -m vasa`` is the same): ``vasa launch ...`` (:mod:`vasa.dist.launch`,
:mod:`vasa.dist.launchers`) and ``vasa runs ...`` (:mod:`vasa.run.manager`)."""

from __future__ import annotations

import sys

USAGE = """usage: vasa COMMAND ...

commands:
  launch   start a program as several connected processes: local, slurm, mpi, k8s (vasa launch --help)
  runs     list, show, compare and resume runs (vasa runs --help)
"""


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default: ``sys.argv[1:]``) to a subcommand; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE, end="")
        return 0
    if argv[:1] == ["runs"]:
        from vasa.run.manager import main as runs

        return runs(argv[1:])
    if argv[:1] != ["launch"]:
        print(USAGE + (f"\nvasa: unknown command {argv[0]!r}\n" if argv else ""), end="", file=sys.stderr)
        return 2
    from vasa.dist.launch import main as launch

    return launch(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
