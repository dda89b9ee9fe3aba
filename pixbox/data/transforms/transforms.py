"""The transform classes under their pre-split module path (kept for compatibility).

The classes now live in modules by concept (:mod:`~pixbox.data.transforms.geometry`,
:mod:`~pixbox.data.transforms.color`, :mod:`~pixbox.data.transforms.misc`,
:mod:`~pixbox.data.transforms.containers`); import them from :mod:`pixbox.data.transforms`.
``from pixbox.data.transforms.transforms import Resize`` keeps working.
"""

from pixbox.data.transforms._base import Transform
from pixbox.data.transforms.color import ColorJitter, RandomPhotometricDistort
from pixbox.data.transforms.containers import Compose, RandomApply, RandomChoice
from pixbox.data.transforms.geometry import (
    CenterCrop,
    RandomCrop,
    RandomHorizontalFlip,
    RandomIoUCrop,
    RandomResizedCrop,
    RandomVerticalFlip,
    RandomZoomOut,
    Resize,
)
from pixbox.data.transforms.misc import Normalize, SanitizeBoxes, ToDtype

__all__ = [
    "CenterCrop",
    "ColorJitter",
    "Compose",
    "Normalize",
    "RandomApply",
    "RandomChoice",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomIoUCrop",
    "RandomPhotometricDistort",
    "RandomResizedCrop",
    "RandomVerticalFlip",
    "RandomZoomOut",
    "Resize",
    "SanitizeBoxes",
    "ToDtype",
    "Transform",
]
