"""vasa: visual agents at scale (JAX).

Sub-packages load on first use, so ``import vasa`` compiles nothing and loads no model:
``vasa.envs``, ``vasa.algos``, ``vasa.nn``, ``vasa.dist``, ``vasa.run``, ``vasa.replay``, ``vasa.distill``, ``vasa.video``.
"""

import importlib

from vasa import xla_flags as _xla_flags  # noqa: F401  (XLA:CPU's legacy fusion, before JAX starts; see vasa.xla_flags)

__version__ = "0.1.0"
__all__ = ["envs", "algos", "nn", "dist", "run", "replay", "distill", "video"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"vasa.{name}")
    raise AttributeError(f"module 'vasa' has no attribute {name!r}")
