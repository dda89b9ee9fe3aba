"""pixbox.data.transforms: joint augmentation of images, boxes and masks on tensors.

Each transform is a small class that stores its configuration, draws its random parameters
(:meth:`Transform.make_params`) and applies them with the pure functions of
:mod:`pixbox.data.transforms.functional` (:meth:`Transform.apply`). No PIL, no numpy on image
data: everything runs with torch ops on the image's device.

Modules, by concept (every public name is importable from this package):

- :mod:`~pixbox.data.transforms.functional`: the pure functions (flips, crops, resizing, box
  rule, colour adjustments, dtype), usable on one image or a batch, on any device;
- :mod:`~pixbox.data.transforms.geometry`: :class:`RandomHorizontalFlip`,
  :class:`RandomVerticalFlip`, :class:`Resize`, :class:`CenterCrop`, :class:`RandomCrop`,
  :class:`RandomResizedCrop`, :class:`RandomIoUCrop`, :class:`RandomZoomOut`;
- :mod:`~pixbox.data.transforms.color`: :class:`ColorJitter`, :class:`RandomPhotometricDistort`;
- :mod:`~pixbox.data.transforms.misc`: :class:`Normalize`, :class:`ToDtype`, :class:`SanitizeBoxes`;
- :mod:`~pixbox.data.transforms.containers`: :class:`Compose`, :class:`RandomApply`,
  :class:`RandomChoice`;
- ``_base``: the :class:`Transform` base class and the shared checks and batching helpers.

Calling convention:

- ``t(image)`` returns the transformed image; ``t(image, target)`` returns ``(image, target)``,
  where ``target`` may be ``None`` (classification) and is then returned as ``None``.
- ``image`` is a ``Tensor[C, H, W]``, ``uint8`` (0..255) or float (0..1), or a batch
  ``Tensor[B, C, H, W]`` on any device; the dtype and device are kept (``uint8`` results are
  rounded and clamped). For a batch, ``target`` is a list of ``B`` dicts (or ``None`` entries).
- A target dict may hold:

  - ``"boxes"``: ``Tensor[N, 4]`` float, xyxy absolute pixels; ``[x1, y1, x2, y2]`` covers the
    pixels ``x1 <= x < x2``, ``y1 <= y < y2``;
  - ``"mask"``: ``Tensor[H, W]`` integer semantic mask, ``255`` = ignore. Interpolated with
    nearest neighbour; pixels that come from outside the image get ``mask_fill`` (255);
  - ``"masks"``: ``Tensor[N, H, W]`` instance masks (one per box, any dtype), transformed like
    ``"mask"`` but filled with 0;
  - ``"proposals"``: ``Tensor[P, 4]`` float, xyxy pixels: unlabeled candidate regions (Fast
    R-CNN, :mod:`pixbox.data.proposals`). Every geometric transform moves them exactly like
    ``"boxes"``, then clips them to the new image and drops those left with zero area. They are
    never filtered together with the boxes, never count as boxes and never drive a transform's
    choices (:class:`RandomIoUCrop` looks at the boxes only);
  - per-box entries, filtered together with the boxes: the keys of
    :data:`~pixbox.data.transforms.functional.PER_BOX_KEYS` (``"labels"``, ``"iscrowd"``,
    ``"difficult"``, ``"scores"``, ``"area"``, ``"masks"``) and any other tensor or numpy array
    whose first dimension equals the number of boxes (``"mask"`` and ``"proposals"`` excepted);
  - anything else (``"image_id"``, ...), passed on untouched.

  The caller's dicts and tensors are never modified: every call returns new dicts. Tensors that a
  transform leaves unchanged may be returned as they are (shared, not copied).

Box rule: geometric transforms that can cut or shrink boxes (crops, :class:`Resize`) clip the
boxes to the new image and drop, with all their per-box entries, the boxes whose clipped width or
height is below ``min_size`` pixels or whose visibility (clipped area / area before clipping, in
the new image's coordinates) is below ``min_visibility`` (boxes with nothing left inside always
go); see
:func:`~pixbox.data.transforms.functional.clip_and_filter_boxes`. Flips and
:class:`RandomZoomOut` move boxes exactly and never drop any.

Randomness: every random transform takes ``generator`` (a CPU :class:`torch.Generator`). All
random numbers are drawn on the CPU from it and the results move to the image's device, so one
seed gives the same output on CPU and GPU. ``None`` uses torch's global RNG, which
:class:`torch.utils.data.DataLoader` seeds differently in each worker. An explicit generator is
copied into each worker with the same state, so reseed it in a ``worker_init_fn`` (for example
``generator.manual_seed(torch.initial_seed())``) when using one with several workers.

Batches: flips, colour transforms and the fixed-size crops draw parameters per image; the
documentation of each transform says what is shared by the batch.

Example:
    >>> import torch
    >>> from pixbox.data import transforms as T
    >>> g = torch.Generator().manual_seed(0)
    >>> t = T.Compose([T.RandomHorizontalFlip(p=1.0, generator=g), T.Resize((32, 48))])
    >>> image = torch.zeros(3, 64, 96, dtype=torch.uint8)
    >>> target = {"boxes": torch.tensor([[0.0, 0.0, 24.0, 32.0]]), "labels": torch.tensor([1])}
    >>> image, target = t(image, target)
    >>> image.shape, target["boxes"].tolist()
    (torch.Size([3, 32, 48]), [[36.0, 0.0, 48.0, 16.0]])
    >>> train = T.Compose([T.RandomIoUCrop(), T.RandomHorizontalFlip(), T.Resize((300, 300)),
    ...                    T.ColorJitter(0.2, 0.2, 0.2, 0.05), T.SanitizeBoxes(),
    ...                    T.ToDtype(torch.float32)])
"""

from pixbox.data.transforms import functional
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
    "functional",
]
