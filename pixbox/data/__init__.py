"""pixbox.data: datasets and data generation.

- :mod:`pixbox.data.synthetic`: procedurally generated scenes with exact boxes and masks.
"""

from pixbox.data.synthetic import CLASS_NAMES, Scene, make_scene, render_scene

__all__ = ["CLASS_NAMES", "Scene", "make_scene", "render_scene"]
