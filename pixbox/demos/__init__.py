"""pixbox.demos: walkthroughs that write figures to files (run them with ``pixbox demo <name>``).

- :mod:`pixbox.demos.anchors`: D2L's anchor boxes, multiscale anchors and NMS on a generated scene.

The demo modules are imported on demand (``from pixbox.demos import anchors``), so importing
this package stays cheap.
"""

__all__ = ["anchors"]
