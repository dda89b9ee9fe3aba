"""Compatibility layers: other libraries' names and semantics, on pixbox.

- :mod:`pixbox.compat.d2l`: the ``d2l`` names of the D2L book's computer-vision chapter (boxes
  and anchors, ``train_ch13``, the banana and VOC data sets offline, ``Animator``, ...), so its
  notebooks run with ``from pixbox.compat import d2l``.
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
