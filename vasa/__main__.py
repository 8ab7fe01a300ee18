"""``python -m vasa ...`` is the ``vasa`` command (:mod:`vasa.cli`)."""

import sys

from vasa.cli import main

if __name__ == "__main__":  # (a module walk that imports every vasa module must not run it)
    sys.exit(main())
