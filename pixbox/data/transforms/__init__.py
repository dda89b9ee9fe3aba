"""pixbox.data.transforms: joint augmentation of images, boxes and masks on tensors.

- :mod:`pixbox.data.transforms.functional`: the pure functions (flips, crops, resizing, box
  rule, colour adjustments, dtype), usable on one image or a batch, on any device.
- :mod:`pixbox.data.transforms.transforms`: the classes that draw random parameters from a
  ``torch.Generator`` and apply them to ``(image, target)`` (see that module for the calling
  convention, the target keys and the box rule).

Example:
    >>> import torch
    >>> from pixbox.data import transforms as T
    >>> train = T.Compose([T.RandomIoUCrop(), T.RandomHorizontalFlip(), T.Resize((300, 300)),
    ...                    T.ColorJitter(0.2, 0.2, 0.2, 0.05), T.SanitizeBoxes(),
    ...                    T.ToDtype(torch.float32)])
"""

from pixbox.data.transforms import functional
from pixbox.data.transforms.transforms import (
    ColorJitter,
    Compose,
    Normalize,
    RandomApply,
    RandomChoice,
    RandomCrop,
    RandomHorizontalFlip,
    RandomIoUCrop,
    RandomPhotometricDistort,
    RandomResizedCrop,
    RandomVerticalFlip,
    RandomZoomOut,
    Resize,
    SanitizeBoxes,
    ToDtype,
    Transform,
)

__all__ = [
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
    "functional",
]
