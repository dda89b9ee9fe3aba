"""pixbox: a pure-PyTorch computer-vision toolkit.

Importing pixbox has no side effects. The subpackages are:

- :mod:`pixbox.ops`: pure tensor functions (boxes, anchors, box coding, matching, NMS, decoding).
- :mod:`pixbox.compat`: the D2L and MXNet names on top of :mod:`pixbox.ops`.
- :mod:`pixbox.viz`: drawing boxes on images, saving PNGs (no display needed).
"""

__version__ = "0.1.0"

from pixbox import ops  # noqa: E402

__all__ = ["__version__", "ops"]
