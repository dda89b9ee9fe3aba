"""Compatibility layers: other libraries' detection functions, with their names, on :mod:`pixbox.ops`.

- :mod:`pixbox.compat.d2l`: the D2L book's functions (``multibox_prior``, ``multibox_target``, ...).
- :mod:`pixbox.compat.mxnet`: MXNet's ``contrib`` operators (``MultiBoxPrior``, ``MultiBoxTarget``,
  ``MultiBoxDetection``).

The submodules are imported lazily, on first access (``from pixbox.compat import mxnet``).
"""

import importlib

__all__ = ["d2l", "mxnet"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
