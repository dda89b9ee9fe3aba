"""Pure tensor functions behind :mod:`pixbox.data.transforms`: geometry, boxes, colour, dtype.

Everything here is a plain function of its arguments (no randomness), written with torch ops
only, so it runs on any device and on one image or a batch.

Conventions:

- An *image* is a ``Tensor[C, H, W]`` or a batch ``Tensor[B, C, H, W]``, ``uint8`` (0..255) or
  floating point (0..1). Results keep the dtype and device; ``uint8`` results are rounded and
  clamped to 0..255. Colour functions compute in ``float32`` (``float64`` stays ``float64``).
- A *plane* is any ``Tensor[..., H, W]`` of any dtype: an image, a segmentation mask ``[H, W]``
  or instance masks ``[N, H, W]``. The geometric functions (:func:`hflip`, :func:`vflip`,
  :func:`crop`, :func:`pad`, :func:`resize_mask`) work on planes.
- Sizes are ``(height, width)``.
- Boxes are ``Tensor[N, 4]`` float ``xyxy`` in absolute pixels; a box ``[x1, y1, x2, y2]`` covers
  the pixels with ``x1 <= x < x2`` and ``y1 <= y < y2`` (pixel ``(x, y)`` spans
  ``[x, x + 1) x [y, y + 1)``). With this convention every box function below is exact: flipping
  an image and its boxes, or cropping both at an integer offset, gives boxes that frame the same
  pixels.

The box rule (:func:`clip_and_filter_boxes`), shared by every transform that can cut or shrink
boxes: boxes are clipped to the image; a box is dropped when a coordinate is not finite, when its
clipped width or height is below ``min_size`` pixels, or when its *visibility* (clipped area over
its area before clipping) is below ``min_visibility`` or is 0 (nothing left inside).
:func:`filter_target` then drops the matching rows of every per-box entry of a target dict (see
:data:`PER_BOX_KEYS`).

Example:
    >>> import torch
    >>> boxes = torch.tensor([[-5.0, 0.0, 5.0, 10.0], [2.0, 2.0, 4.0, 4.0]])
    >>> clip_and_filter_boxes(boxes, (8, 8), min_visibility=0.6)
    (tensor([[2., 2., 4., 4.]]), tensor([1]))
"""

from __future__ import annotations

import operator
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import Tensor

from pixbox._checks import check_number, check_shape, check_tensor
from pixbox.ops.boxes import clip_boxes

__all__ = [
    "PER_BOX_KEYS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "clip_and_filter_boxes",
    "crop",
    "filter_target",
    "get_size",
    "hflip",
    "hflip_boxes",
    "hsv_to_rgb",
    "normalize",
    "pad",
    "permute_channels",
    "resize",
    "resize_boxes",
    "resize_mask",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "to_dtype",
    "translate_boxes",
    "vflip",
    "vflip_boxes",
]

#: Target entries that always hold one row per box and are filtered together with ``"boxes"``.
#: Besides these, any other tensor or numpy array whose first dimension equals the number of boxes
#: is treated as per-box, except ``"mask"`` (the ``[H, W]`` segmentation mask), which never is.
#: ``"masks"`` holds instance masks ``[N, H, W]``. ``"area"`` is filtered but not recomputed.
PER_BOX_KEYS: tuple[str, ...] = ("labels", "iscrowd", "difficult", "scores", "area", "masks")

# Entries that are never per-box, whatever their shape.
_NOT_PER_BOX = ("boxes", "mask")

Factor = Union[float, Tensor]
_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


# ----------------------------------------------------------------------------------------------
# Checks


def _check_image(image, name: str = "image") -> Tensor:
    check_tensor(image, name)
    if image.dim() not in (3, 4):
        raise ValueError(f"{name} must have shape [C, H, W] or [B, C, H, W], got {tuple(image.shape)}")
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise TypeError(f"{name} must be uint8 (0..255) or floating point (0..1), got dtype {image.dtype}")
    return image


def _check_plane(x, name: str) -> Tensor:
    check_tensor(x, name)
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape [..., H, W], got {tuple(x.shape)}")
    return x


def _check_rgb(image: Tensor, name: str) -> Tensor:
    _check_image(image, name)
    if image.shape[-3] != 3:
        raise ValueError(f"{name} must have 3 (RGB) channels, got shape {tuple(image.shape)}")
    return image


def _check_box_tensor(boxes, name: str = "boxes") -> Tensor:
    check_shape(boxes, name, (None, 4), "[N, 4]")
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {boxes.dtype}")
    return boxes


def _as_int(value, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None


def _check_size(size, name: str = "size") -> tuple[int, int]:
    """A ``(height, width)`` pair of positive ints."""
    if isinstance(size, (str, bytes)) or not isinstance(size, (Sequence, torch.Size)) or len(size) != 2:
        raise ValueError(f"{name} must be (height, width), got {size!r}")
    h, w = _as_int(size[0], f"{name}[0] (height)"), _as_int(size[1], f"{name}[1] (width)")
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive (height, width), got {(h, w)}")
    return h, w


def get_size(image: Tensor) -> tuple[int, int]:
    """The ``(height, width)`` of an image, batch, mask or any ``Tensor[..., H, W]``."""
    _check_plane(image, "image")
    return int(image.shape[-2]), int(image.shape[-1])


# ----------------------------------------------------------------------------------------------
# Float working copies


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _to_float(image: Tensor) -> Tensor:
    """A float working copy with values in [0, 1] (uint8 is divided by 255)."""
    x = image.to(_work_dtype(image.dtype))
    return x / 255 if image.dtype == torch.uint8 else x


def _from_float(x: Tensor, dtype: torch.dtype) -> Tensor:
    """Back from a [0, 1] float working copy: uint8 is scaled by 255, rounded and clamped."""
    if dtype == torch.uint8:
        return (x * 255).round_().clamp_(0, 255).to(torch.uint8)
    return x.to(dtype)


# ----------------------------------------------------------------------------------------------
# Geometry of images and masks


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


# ----------------------------------------------------------------------------------------------
# Boxes


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
    first dimension equals the number of boxes ``N``; ``"mask"`` never is. Everything else (for
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


# ----------------------------------------------------------------------------------------------
# Colour


def _factor(factor, image: Tensor, name: str, *, low: float | None = 0.0, high: float | None = None,
            dims: int = 3):
    """A float, or a tensor shaped to broadcast one value per image against ``[B] + [1] * dims``."""
    if isinstance(factor, Tensor):
        n = image.shape[0] if image.dim() == 4 else 1
        if factor.dim() > 1 or (factor.dim() == 1 and factor.numel() not in (1, n)):
            raise ValueError(f"{name} as a tensor must be a scalar or hold one value per image ({n}), "
                             f"got shape {tuple(factor.shape)}")
        f = factor.detach().to(device=image.device, dtype=_work_dtype(image.dtype))
        if bool(torch.isnan(f).any()) or (low is not None and bool((f < low).any())) or (
                high is not None and bool((f > high).any())):
            raise ValueError(f"{name} must be in [{low}, {high}], got {factor.tolist()}")
        if image.dim() == 4 and f.dim() == 1:
            return f.view((-1,) + (1,) * dims)
        return f.reshape(())
    return float(check_number(factor, name, low=low, high=high))


def _gray(x: Tensor) -> Tensor:
    """ITU-R 601-2 luma of a float [..., 3, H, W] (or [..., 1, H, W]) image: [..., 1, H, W]."""
    if x.shape[-3] == 1:
        return x
    r, g, b = x.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(a: Tensor, b: Tensor, ratio) -> Tensor:
    return (ratio * a + (1 - ratio) * b).clamp_(0, 1)


def _brightness(x: Tensor, f) -> Tensor:
    return (x * f).clamp_(0, 1)


def _contrast(x: Tensor, f) -> Tensor:
    mean = _gray(x).mean(dim=(-3, -2, -1), keepdim=True)  # [..., 1, 1, 1], one per image
    return _blend(x, mean, f)


def _saturation(x: Tensor, f) -> Tensor:
    return _blend(x, _gray(x), f)


def _hue(x: Tensor, f) -> Tensor:
    h, s, v = _rgb_to_hsv(x).unbind(-3)
    return _hsv_to_rgb(torch.stack([(h + f).remainder_(1.0), s, v], dim=-3)).clamp_(0, 1)


def adjust_brightness(image: Tensor, factor: Factor) -> Tensor:
    """Multiplies the image by ``factor`` (0 gives black, 1 the original), then clamps.

    Args:
        image (Tensor[C, H, W] or Tensor[B, C, H, W]): uint8 or float in [0, 1].
        factor (float or Tensor[B]): >= 0; a tensor gives one factor per image of a batch.

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_image(image)
    f = _factor(factor, image, "factor")
    return _from_float(_brightness(_to_float(image), f), image.dtype)


def adjust_contrast(image: Tensor, factor: Factor) -> Tensor:
    """Blends the image with the mean of its greyscale version (0 gives flat grey, 1 the original).

    Args:
        image (Tensor[C, H, W] or Tensor[B, C, H, W]): RGB or 1 channel, uint8 or float in [0, 1].
        factor (float or Tensor[B]): >= 0; the mean is taken per image.

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_image(image)
    if image.shape[-3] not in (1, 3):
        raise ValueError(f"image must have 1 or 3 channels, got shape {tuple(image.shape)}")
    f = _factor(factor, image, "factor")
    return _from_float(_contrast(_to_float(image), f), image.dtype)


def adjust_saturation(image: Tensor, factor: Factor) -> Tensor:
    """Blends the image with its greyscale version (0 gives grey, 1 the original, 2 doubles).

    Args:
        image (Tensor[3, H, W] or Tensor[B, 3, H, W]): RGB, uint8 or float in [0, 1].
        factor (float or Tensor[B]): >= 0.

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_rgb(image, "image")
    f = _factor(factor, image, "factor")
    return _from_float(_saturation(_to_float(image), f), image.dtype)


def adjust_hue(image: Tensor, factor: Factor) -> Tensor:
    """Rotates the hue by ``factor`` turns (HSV space; -0.5 and 0.5 both give the complement).

    Args:
        image (Tensor[3, H, W] or Tensor[B, 3, H, W]): RGB, uint8 or float in [0, 1].
        factor (float or Tensor[B]): in [-0.5, 0.5].

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_rgb(image, "image")
    f = _factor(factor, image, "factor", low=-0.5, high=0.5, dims=2)
    return _from_float(_hue(_to_float(image), f), image.dtype)


def rgb_to_grayscale(image: Tensor) -> Tensor:
    """ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B``.

    Args:
        image (Tensor[..., 3, H, W]): uint8 or float in [0, 1].

    Returns:
        Tensor[..., 1, H, W]: same dtype (uint8 rounded).
    """
    _check_rgb(image, "image")
    return _from_float(_gray(_to_float(image)), image.dtype)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(-3)
    maxc, minc = x.amax(dim=-3), x.amin(dim=-3)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    d = torch.where(delta > 0, delta, torch.ones_like(delta))
    # The hue sector depends on which channel is the largest (red wins ties, then green).
    h = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = torch.where(delta > 0, (h / 6).remainder(1.0), torch.zeros_like(h))
    return torch.stack([h, s, maxc], dim=-3)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    # Channel c = v - v * s * clamp(min(k, 4 - k), 0, 1) with k = (n_c + 6 h) mod 6 and
    # n = (5, 3, 1) for (r, g, b): the piecewise-linear hue ramps, all three channels at once.
    h, s, v = x.unbind(-3)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(3, 1, 1)
    k = (n + (h.remainder(1.0) * 6).unsqueeze(-3)).remainder_(6)  # [..., 3, H, W]
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)  # [..., 3, H, W]
    return v.unsqueeze(-3) - (v * s).unsqueeze(-3) * ramp


def rgb_to_hsv(image: Tensor) -> Tensor:
    """RGB to HSV.

    Args:
        image (Tensor[..., 3, H, W]): float RGB in [0, 1].

    Returns:
        Tensor[..., 3, H, W]: hue in [0, 1) (turns; 0 for greys), saturation and value in [0, 1].
    """
    check_tensor(image, "image")
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"image must have shape [..., 3, H, W], got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"image must be floating point in [0, 1], got dtype {image.dtype}")
    return _rgb_to_hsv(image)


def hsv_to_rgb(image: Tensor) -> Tensor:
    """HSV to RGB, the inverse of :func:`rgb_to_hsv`.

    Args:
        image (Tensor[..., 3, H, W]): float hue (turns, any value; taken modulo 1), saturation and
            value in [0, 1].

    Returns:
        Tensor[..., 3, H, W]: float RGB in [0, 1].
    """
    check_tensor(image, "image")
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"image must have shape [..., 3, H, W], got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"image must be floating point, got dtype {image.dtype}")
    return _hsv_to_rgb(image)


def permute_channels(image: Tensor, permutation) -> Tensor:
    """Reorders the channels: output channel ``c`` is input channel ``permutation[c]``.

    Args:
        image (Tensor[C, H, W] or Tensor[B, C, H, W]): any dtype.
        permutation (sequence of int or Tensor[C] or Tensor[B, C]): a permutation of ``0 .. C-1``;
            a ``[B, C]`` tensor gives one permutation per image of a batch.

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_image(image)
    c = image.shape[-3]
    perm = torch.as_tensor(permutation, dtype=torch.int64)
    ok_shape = perm.shape == (c,) or (image.dim() == 4 and perm.shape == (image.shape[0], c))
    if not ok_shape:
        raise ValueError(f"permutation must have shape [{c}] or [B, {c}], got {tuple(perm.shape)}")
    if not bool((perm.sort(dim=-1).values == torch.arange(c)).all()):
        raise ValueError(f"permutation must be a permutation of 0..{c - 1}, got {perm.tolist()}")
    perm = perm.to(image.device)
    if perm.dim() == 1:
        return image.index_select(-3, perm)
    return image.gather(1, perm[:, :, None, None].expand(image.shape))


# ----------------------------------------------------------------------------------------------
# Dtype and normalization


def _per_channel(values, name: str, c: int) -> list[float]:
    if isinstance(values, Tensor):
        values = values.tolist()
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, str) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a number or a sequence of {c} numbers, got {type(values).__name__}")
    vals = [float(check_number(v, name)) for v in values]
    if len(vals) not in (1, c):
        raise ValueError(f"{name} must have 1 or {c} (channels) values, got {len(vals)}: {list(values)}")
    return vals


def normalize(image: Tensor, mean, std) -> Tensor:
    """``(image - mean) / std`` per channel.

    Args:
        image (Tensor[C, H, W] or Tensor[B, C, H, W]): floating point (convert uint8 first with
            :func:`to_dtype`).
        mean (number or sequence of C numbers): per-channel mean.
        std (number or sequence of C numbers): per-channel standard deviation, > 0.

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_image(image)
    if not image.is_floating_point():
        raise TypeError(f"image must be floating point to normalize, got dtype {image.dtype}; "
                        "convert it first with to_dtype(image, torch.float32)")
    c = image.shape[-3]
    m = _per_channel(mean, "mean", c)
    s = _per_channel(std, "std", c)
    if any(not v > 0 for v in s):
        raise ValueError(f"std must be > 0, got {s}")
    mt = torch.tensor(m, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    st = torch.tensor(s, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    return (image - mt) / st


def to_dtype(image: Tensor, dtype: torch.dtype, *, scale: bool = True) -> Tensor:
    """Converts between ``uint8`` and floating-point images.

    Args:
        image (Tensor): uint8 or float.
        dtype (torch.dtype): ``torch.uint8`` or a floating-point dtype.
        scale (bool): rescale values between 0..255 (uint8) and 0..1 (float). Without scaling the
            values are only cast (float to uint8 is still rounded and clamped to 0..255).

    Returns:
        Tensor: the converted image (the input itself when the dtype does not change).
    """
    check_tensor(image, "image")
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise TypeError(f"image must be uint8 or floating point, got dtype {image.dtype}")
    if dtype != torch.uint8 and dtype not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be torch.uint8 or a floating-point dtype, got {dtype}")
    if not isinstance(scale, bool):
        raise TypeError(f"scale must be a bool, got {type(scale).__name__}")
    if image.dtype == dtype:
        return image
    if dtype == torch.uint8:
        x = image.to(_work_dtype(image.dtype))
        return ((x * 255) if scale else x).round_().clamp_(0, 255).to(torch.uint8)
    if image.dtype == torch.uint8:
        x = image.to(_work_dtype(dtype))
        return (x / 255 if scale else x).to(dtype)
    return image.to(dtype)
