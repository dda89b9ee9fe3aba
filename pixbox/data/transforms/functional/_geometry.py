"""Geometry of images and masks: flips, crops, padding, resizing (planes of any dtype)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from pixbox._checks import check_number
from pixbox.data.transforms.functional._common import (
    _as_int,
    _check_image,
    _check_plane,
    _check_size,
    _work_dtype,
)

__all__ = ["center_crop", "center_crop_offsets", "crop", "hflip", "pad", "resize", "resize_mask", "vflip"]


def hflip(image: Tensor) -> Tensor:
    """Mirrors left-right.

    Args:
        image (Tensor[..., H, W]): an image, a batch or a mask, any dtype.

    Returns:
        Tensor[..., H, W]: a new tensor, column ``x`` moved to ``W - 1 - x``.
    """
    return _check_plane(image, "image").flip(-1)


def vflip(image: Tensor) -> Tensor:
    """Mirrors top-bottom.

    Args:
        image (Tensor[..., H, W]): an image, a batch or a mask, any dtype.

    Returns:
        Tensor[..., H, W]: a new tensor, row ``y`` moved to ``H - 1 - y``.
    """
    return _check_plane(image, "image").flip(-2)


def _fill_tensor(x: Tensor, fill, name: str) -> Tensor:
    """``fill`` as a tensor of ``x``'s dtype that broadcasts against ``x``: a scalar, or ``[C, 1, 1]``."""
    if isinstance(fill, Tensor):
        fill = fill.tolist()
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):
        values = [fill]
    elif isinstance(fill, bool):
        values = [int(fill)]
    elif isinstance(fill, (Sequence, np.ndarray)) and not isinstance(fill, str):
        values = list(fill)
        if x.dim() < 3 or len(values) not in (1, x.shape[-3]):
            raise ValueError(f"{name} must be a number or one number per channel "
                             f"({x.shape[-3] if x.dim() >= 3 else 'no channel dimension'}), got {fill!r}")
    else:
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {type(fill).__name__}")
    for v in values:
        check_number(v, name)
        if not x.is_floating_point():
            info = torch.iinfo(x.dtype) if x.dtype != torch.bool else None
            low, high = (0, 1) if info is None else (info.min, info.max)
            if v != int(v) or not low <= v <= high:
                raise ValueError(f"{name} must hold integers in [{low}, {high}] for dtype {x.dtype}, got {fill!r}")
    t = torch.tensor(values, dtype=x.dtype, device=x.device)
    return t.view(-1, 1, 1) if len(values) > 1 else t.view(())


def crop(image: Tensor, top: int, left: int, height: int, width: int, *, fill=0) -> Tensor:
    """Cuts the window of ``height x width`` pixels whose top-left pixel is ``(left, top)``.

    The window may extend past the image (negative ``top``/``left`` or beyond the far edges):
    those pixels get ``fill``. So :func:`pad` is a crop with negative offsets.

    Args:
        image (Tensor[..., H, W]): an image, a batch or a mask, any dtype.
        top (int): row of the window's first row, in image pixels (may be negative).
        left (int): column of the window's first column (may be negative).
        height (int): window height, >= 1.
        width (int): window width, >= 1.
        fill (number or sequence): value of the pixels outside the image, in the units of the
            image's dtype; one value per channel (dimension -3) is allowed.

    Returns:
        Tensor[..., height, width]: a new tensor (never a view of ``image``).
    """
    _check_plane(image, "image")
    top, left = _as_int(top, "top"), _as_int(left, "left")
    height, width = _check_size((height, width), "(height, width)")
    H, W = image.shape[-2:]
    if top >= 0 and left >= 0 and top + height <= H and left + width <= W:
        return image[..., top:top + height, left:left + width].clone()
    out = image.new_empty(image.shape[:-2] + (height, width))
    out[...] = _fill_tensor(image, fill, "fill")
    y0, y1 = max(top, 0), min(top + height, H)
    x0, x1 = max(left, 0), min(left + width, W)
    if y1 > y0 and x1 > x0:
        out[..., y0 - top:y1 - top, x0 - left:x1 - left] = image[..., y0:y1, x0:x1]
    return out


def _check_padding(padding, name: str = "padding") -> tuple[int, int, int, int]:
    if isinstance(padding, (int,)) and not isinstance(padding, bool):
        vals = [padding] * 4
    elif isinstance(padding, Sequence) and not isinstance(padding, str) and len(padding) in (2, 4):
        vals = list(padding) * 2 if len(padding) == 2 else list(padding)
    else:
        raise ValueError(f"{name} must be an int, (left/right, top/bottom) or (left, top, right, bottom), "
                         f"got {padding!r}")
    vals = [_as_int(v, name) for v in vals]
    if any(v < 0 for v in vals):
        raise ValueError(f"{name} must be non-negative, got {padding!r}")
    return tuple(vals)  # type: ignore[return-value]


def pad(image: Tensor, padding, *, fill=0) -> Tensor:
    """Adds a border of constant pixels.

    Args:
        image (Tensor[..., H, W]): an image, a batch or a mask, any dtype.
        padding (int or sequence): pixels to add: one int for all sides, ``(left/right,
            top/bottom)`` or ``(left, top, right, bottom)``; non-negative.
        fill (number or sequence): the border value (see :func:`crop`).

    Returns:
        Tensor[..., top + H + bottom, left + W + right]: a new tensor. Boxes move by
        ``translate_boxes(boxes, left, top)``.
    """
    _check_plane(image, "image")
    left, top, right, bottom = _check_padding(padding)
    H, W = image.shape[-2:]
    return crop(image, -top, -left, H + top + bottom, W + left + right, fill=fill)


def _center_start(n: int, want: int) -> int:
    """First index of a centred window of ``want`` pixels along an axis of ``n`` pixels.

    Rounds towards zero, so the odd leftover pixel is always at the far end: a crop removes it
    from the bottom/right, a pad (``want > n``, negative start) adds it at the bottom/right.
    """
    return (n - want) // 2 if n >= want else -((want - n) // 2)


def center_crop_offsets(in_size: Sequence[int], out_size: Sequence[int]) -> tuple[int, int]:
    """The ``(top, left)`` of the centred ``out_size`` window of an image of ``in_size``.

    Along each axis the start is ``(n - want) // 2`` when the image is larger than the window and
    ``-((want - n) // 2)`` when it is smaller (rounded towards zero): an odd leftover row or column
    is cut from, or padded at, the bottom/right. The same rule as torchvision for padding; for an
    odd surplus torchvision rounds half to even instead.

    Args:
        in_size (tuple[int, int]): image (height, width).
        out_size (tuple[int, int]): window (height, width).

    Returns:
        tuple[int, int]: ``(top, left)``, negative when the window is larger than the image. Boxes
        move by ``translate_boxes(boxes, -left, -top)``.
    """
    (h0, w0), (h1, w1) = _check_size(in_size, "in_size"), _check_size(out_size, "out_size")
    return _center_start(h0, h1), _center_start(w0, w1)


def center_crop(image: Tensor, size: Sequence[int], *, fill=0) -> Tensor:
    """Cuts the centred window of ``size`` pixels, padding with ``fill`` where the image is smaller.

    ``center_crop(x, size)`` is ``crop(x, top, left, *size)`` with ``(top, left)`` from
    :func:`center_crop_offsets` (an odd leftover row or column is cut from, or padded at, the
    bottom/right).

    Args:
        image (Tensor[..., H, W]): an image, a batch or a mask, any dtype.
        size (tuple[int, int]): window (height, width), positive.
        fill (number or sequence): value of the padded pixels (see :func:`crop`).

    Returns:
        Tensor[..., height, width]: a new tensor.
    """
    _check_plane(image, "image")
    height, width = _check_size(size)
    top, left = center_crop_offsets(tuple(image.shape[-2:]), (height, width))
    return crop(image, top, left, height, width, fill=fill)


def resize(image: Tensor, size: Sequence[int], *, antialias: bool = True) -> Tensor:
    """Resizes an image or a batch with bilinear interpolation.

    Pixel centres are aligned as ``align_corners=False`` does (pixel ``x`` of the output samples
    the input at ``(x + 0.5) * W / w - 0.5``), which is the geometry :func:`resize_boxes` assumes.

    Args:
        image (Tensor[C, H, W] or Tensor[B, C, H, W]): uint8 or float.
        size (tuple[int, int]): output (height, width).
        antialias (bool): low-pass filter the image when downscaling (no effect when upscaling).

    Returns:
        Tensor[..., C, height, width]: same dtype and device (uint8 rounded). The input itself is
        returned when the size does not change.
    """
    _check_image(image)
    size = _check_size(size)
    if not isinstance(antialias, bool):
        raise TypeError(f"antialias must be a bool, got {type(antialias).__name__}")
    if tuple(image.shape[-2:]) == size:
        return image
    x = image if image.dim() == 4 else image[None]
    y = nnf.interpolate(x.to(_work_dtype(image.dtype)), size=size, mode="bilinear", align_corners=False,
                        antialias=antialias)
    if image.dtype == torch.uint8:
        y = y.round_().clamp_(0, 255)
    y = y.to(image.dtype)
    return y if image.dim() == 4 else y[0]


def _nearest_index(n_in: int, n_out: int, device) -> Tensor:
    # Output pixel i has its centre at (i + 0.5) * n_in / n_out in input coordinates; it takes the
    # input pixel that contains that point. Computed in float64, then clamped for safety.
    i = (torch.arange(n_out, dtype=torch.float64) + 0.5) * (n_in / n_out)
    return i.floor_().long().clamp_(0, n_in - 1).to(device)


def resize_mask(mask: Tensor, size: Sequence[int]) -> Tensor:
    """Resizes masks with nearest-neighbour sampling of pixel centres (no new values appear).

    Each output pixel takes the input pixel that contains its centre, the same rule as
    ``torch.nn.functional.interpolate(mode="nearest-exact")``, but for any dtype (integer masks
    with ``255`` = ignore, bool instance masks, ...).

    Args:
        mask (Tensor[..., H, W]): any dtype.
        size (tuple[int, int]): output (height, width).

    Returns:
        Tensor[..., height, width]: same dtype and device. The input itself is returned when the
        size does not change.
    """
    _check_plane(mask, "mask")
    h, w = _check_size(size)
    H, W = mask.shape[-2:]
    if (H, W) == (h, w):
        return mask
    if H == 0 or W == 0:
        raise ValueError(f"mask must not be empty, got shape {tuple(mask.shape)}")
    out = mask.index_select(-2, _nearest_index(H, h, mask.device))
    return out.index_select(-1, _nearest_index(W, w, mask.device))
