"""Boxes of transformed images (exact for flips and integer crops) and the box rule."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_number, check_tensor
from pixbox.data.transforms.functional._common import _check_box_tensor, _check_size
from pixbox.ops.boxes import clip_boxes

__all__ = [
    "PER_BOX_KEYS",
    "clip_and_filter_boxes",
    "filter_target",
    "hflip_boxes",
    "resize_boxes",
    "translate_boxes",
    "vflip_boxes",
]

#: Target entries that always hold one row per box and are filtered together with ``"boxes"``.
#: Besides these, any other tensor or numpy array whose first dimension equals the number of boxes
#: is treated as per-box, except ``"mask"`` (the ``[H, W]`` segmentation mask), which never is.
#: ``"masks"`` holds instance masks ``[N, H, W]``. ``"area"`` is filtered but not recomputed.
#: ``"proposals"`` (unlabeled regions ``[P, 4]``, Fast R-CNN) never is, even when ``P == N``.
PER_BOX_KEYS: tuple[str, ...] = ("labels", "iscrowd", "difficult", "scores", "area", "masks")

# Entries that are never per-box, whatever their shape.
_NOT_PER_BOX = ("boxes", "mask", "proposals")


def hflip_boxes(boxes: Tensor, width: float) -> Tensor:
    """Boxes of an image mirrored left-right: ``x1' = W - x2``, ``x2' = W - x1`` (exact).

    Args:
        boxes (Tensor[N, 4]): xyxy pixels, float.
        width (float): image width ``W``.

    Returns:
        Tensor[N, 4]: a new tensor, same dtype and device.
    """
    _check_box_tensor(boxes)
    width = check_number(width, "width", low=0)
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack([width - x2, y1, width - x1, y2], dim=1)


def vflip_boxes(boxes: Tensor, height: float) -> Tensor:
    """Boxes of an image mirrored top-bottom: ``y1' = H - y2``, ``y2' = H - y1`` (exact).

    Args:
        boxes (Tensor[N, 4]): xyxy pixels, float.
        height (float): image height ``H``.

    Returns:
        Tensor[N, 4]: a new tensor, same dtype and device.
    """
    _check_box_tensor(boxes)
    height = check_number(height, "height", low=0)
    x1, y1, x2, y2 = boxes.unbind(1)
    return torch.stack([x1, height - y2, x2, height - y1], dim=1)


def translate_boxes(boxes: Tensor, dx: float, dy: float) -> Tensor:
    """Shifts boxes by ``(dx, dy)`` pixels.

    A crop at ``(left, top)`` moves boxes by ``(-left, -top)``; padding by ``(left, top)``.

    Args:
        boxes (Tensor[N, 4]): xyxy pixels, float.
        dx (float): shift along x.
        dy (float): shift along y.

    Returns:
        Tensor[N, 4]: a new tensor (not clipped).
    """
    _check_box_tensor(boxes)
    dx, dy = check_number(dx, "dx"), check_number(dy, "dy")
    return boxes + boxes.new_tensor([dx, dy, dx, dy])


def resize_boxes(boxes: Tensor, in_size: Sequence[int], out_size: Sequence[int]) -> Tensor:
    """Scales boxes from an image of ``in_size`` to one of ``out_size`` (both ``(height, width)``).

    x is multiplied by ``out_w / in_w`` and y by ``out_h / in_h``, which matches :func:`resize`
    and :func:`resize_mask` (pixel edges map to pixel edges).

    Args:
        boxes (Tensor[N, 4]): xyxy pixels, float.
        in_size (tuple[int, int]): (height, width) before resizing.
        out_size (tuple[int, int]): (height, width) after.

    Returns:
        Tensor[N, 4]: a new tensor.
    """
    _check_box_tensor(boxes)
    (h0, w0), (h1, w1) = _check_size(in_size, "in_size"), _check_size(out_size, "out_size")
    # Multiply by the new size, then divide by the old one: exact for integral coordinates that
    # land on integers, where multiplying by a rounded ratio would not be.
    return boxes * boxes.new_tensor([w1, h1, w1, h1]) / boxes.new_tensor([w0, h0, w0, h0])


def clip_and_filter_boxes(boxes: Tensor, size: Sequence[int], *, min_size: float = 1.0,
                          min_visibility: float = 0.0) -> tuple[Tensor, Tensor]:
    """The box rule of the transforms: clip boxes to the image, then drop the ones that are lost.

    A box is kept when all of these hold:

    - its four coordinates are finite;
    - after clipping to ``[0, W] x [0, H]``, its width and height are both ``>= min_size``
      (and ``>= 0``, so inverted boxes always go);
    - its visibility, ``clipped area / area before clipping``, is ``>= min_visibility`` and
      ``> 0`` (a box with nothing left inside the image always goes, even with
      ``min_size=0``). A zero-area box has visibility 1 when clipping leaves it unchanged and 0
      otherwise, so no NaN ever appears.

    Args:
        boxes (Tensor[N, 4]): xyxy pixels, float, already in the coordinates of the new image.
        size (tuple[int, int]): (height, width) of the new image.
        min_size (float): minimum clipped width and height in pixels, >= 0.
        min_visibility (float): minimum fraction of the box's area inside the image, in [0, 1].

    Returns:
        tuple[Tensor[K, 4], Tensor[K]]: the clipped boxes that are kept, and their ``int64``
        indices into ``boxes`` (increasing), for :func:`filter_target`.
    """
    _check_box_tensor(boxes)
    h, w = _check_size(size)
    min_size = check_number(min_size, "min_size", low=0)
    min_visibility = check_number(min_visibility, "min_visibility", low=0, high=1)
    finite = torch.isfinite(boxes).all(dim=1)  # [N]
    b = torch.where(finite[:, None], boxes, torch.zeros_like(boxes))
    if b.dtype in (torch.float16, torch.bfloat16):
        b = b.float()  # areas of half-precision boxes overflow easily
    clipped = clip_boxes(b, (h, w))
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]  # [N]
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)  # [N], before clipping
    inside = cw.clamp(min=0) * ch.clamp(min=0)  # [N]
    unchanged = (clipped == b).all(dim=1).to(area.dtype)
    visibility = torch.where(area > 0, inside / area.clamp(min=torch.finfo(area.dtype).tiny), unchanged)
    keep = finite & (cw >= min_size) & (ch >= min_size) & (cw >= 0) & (ch >= 0)
    keep &= (visibility > 0) & (visibility >= min_visibility)
    idx = keep.nonzero().flatten()
    return clipped[idx].to(boxes.dtype), idx


def _is_per_box(key, value, n: int) -> bool:
    if key in _NOT_PER_BOX:
        return False
    if key in PER_BOX_KEYS:
        return True
    return isinstance(value, (Tensor, np.ndarray)) and value.ndim >= 1 and value.shape[0] == n


def filter_target(target: dict, keep: Tensor) -> dict:
    """Keeps the rows ``keep`` of ``target["boxes"]`` and of every per-box entry.

    Per-box entries are the keys in :data:`PER_BOX_KEYS` and any other tensor or numpy array whose
    first dimension equals the number of boxes ``N``; ``"mask"`` and ``"proposals"`` never are. Everything else (for
    example ``"image_id"``) is passed on untouched.

    Args:
        target (dict): holds ``"boxes"`` (Tensor[N, 4]) and other entries.
        keep (Tensor[K] or Tensor[N]): ``int64`` indices into the boxes, or a ``bool`` mask.

    Returns:
        dict: a new dict (the input dict and its tensors are not modified).

    Raises:
        ValueError: when an entry of :data:`PER_BOX_KEYS` does not have ``N`` rows.
    """
    if not isinstance(target, dict):
        raise TypeError(f"target must be a dict, got {type(target).__name__}")
    if "boxes" not in target:
        raise ValueError(f"target must hold 'boxes' to filter, got keys {sorted(map(str, target))}")
    boxes = target["boxes"]
    check_tensor(boxes, "target['boxes']")
    n = boxes.shape[0]
    check_tensor(keep, "keep")
    if keep.dtype == torch.bool:
        if keep.shape != (n,):
            raise ValueError(f"keep as a bool mask must have shape [{n}], got {tuple(keep.shape)}")
        keep = keep.nonzero().flatten()
    elif keep.dtype != torch.int64 or keep.dim() != 1:
        raise TypeError(f"keep must be int64 indices [K] or a bool mask [N], got dtype {keep.dtype} "
                        f"and shape {tuple(keep.shape)}")
    out = {}
    for key, value in target.items():
        if key == "boxes" or _is_per_box(key, value, n):
            if isinstance(value, Tensor):
                if value.dim() == 0 or value.shape[0] != n:
                    raise ValueError(f"target[{key!r}] must have one row per box ({n}), got shape "
                                     f"{tuple(value.shape)}")
                value = value[keep.to(value.device)]
            elif isinstance(value, np.ndarray):
                if value.ndim == 0 or value.shape[0] != n:
                    raise ValueError(f"target[{key!r}] must have one row per box ({n}), got shape {value.shape}")
                value = value[keep.cpu().numpy()]
            else:
                raise TypeError(f"target[{key!r}] must be a tensor or numpy array with one row per box, "
                                f"got {type(value).__name__}")
        out[key] = value
    return out
