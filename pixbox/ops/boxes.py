"""Box formats, areas, IoU and box hygiene.

pixbox has one internal box format: ``xyxy`` (x1, y1, x2, y2), float, absolute pixels
unless a name says ``normalized`` (coordinates in [0, 1]). Convert only at the edges
with :func:`box_convert`.

Degenerate boxes (zero width or height) are valid input everywhere and never produce
NaN: their IoU with anything is 0.
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor

from pixbox._checks import check_boxes, check_choice, check_number, check_shape, check_tensor

__all__ = [
    "BoxFormat",
    "box_convert",
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "clip_boxes",
    "sanitize_boxes",
    "remove_small_boxes",
    "normalize_boxes",
    "denormalize_boxes",
]

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
_FORMATS = ("xyxy", "xywh", "cxcywh")


def _upcast(t: Tensor) -> Tensor:
    # Products of half-precision coordinates overflow easily; compute areas in float32 at least.
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t.double() if t.dtype in (torch.int32, torch.int64) else t.float()


def box_convert(boxes: Tensor, in_fmt: BoxFormat, out_fmt: BoxFormat) -> Tensor:
    """Converts boxes between the ``xyxy``, ``xywh`` and ``cxcywh`` formats.

    Args:
        boxes (Tensor[..., 4]): boxes in ``in_fmt``.
        in_fmt (str): ``"xyxy"`` (corners), ``"xywh"`` (top-left corner, width, height) or
            ``"cxcywh"`` (centre, width, height).
        out_fmt (str): one of the same.

    Returns:
        Tensor[..., 4]: the boxes in ``out_fmt``, same dtype and device (a new tensor).
    """
    check_tensor(boxes, "boxes")
    check_choice(in_fmt, "in_fmt", _FORMATS)
    check_choice(out_fmt, "out_fmt", _FORMATS)
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape [..., 4], got {tuple(boxes.shape)}")
    if in_fmt == out_fmt:
        return boxes.clone()
    a, b, c, d = boxes.unbind(-1)
    # to xyxy
    if in_fmt == "xywh":
        x1, y1, x2, y2 = a, b, a + c, b + d
    elif in_fmt == "cxcywh":
        x1, y1, x2, y2 = a - 0.5 * c, b - 0.5 * d, a + 0.5 * c, b + 0.5 * d
    else:
        x1, y1, x2, y2 = a, b, c, d
    # from xyxy
    if out_fmt == "xywh":
        out = (x1, y1, x2 - x1, y2 - y1)
    elif out_fmt == "cxcywh":
        out = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1)
    else:
        out = (x1, y1, x2, y2)
    return torch.stack(out, dim=-1)


def box_area(boxes: Tensor) -> Tensor:
    """Area of each box.

    Args:
        boxes (Tensor[N, 4]): xyxy, ``x1 <= x2``, ``y1 <= y2``.

    Returns:
        Tensor[N]: areas; half-precision inputs are computed (and returned) in float32.
    """
    check_boxes(boxes, "boxes")
    boxes = _upcast(boxes)
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Unchecked pairwise intersection and union, ``[N, M]`` each."""
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])  # [N]
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])  # [M]
    if torch.is_grad_enabled() and (boxes1.requires_grad or boxes2.requires_grad):
        # Out-of-place twin of the fast path below, for autograd.
        lt = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])  # [N, M, 2]
        rb = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # [N, M, 2]
        wh = (rb - lt).clamp(min=0)  # [N, M, 2]
        inter = wh[..., 0] * wh[..., 1]  # [N, M]
        return inter, area1[:, None] + area2[None, :] - inter
    # Width and height of the intersection, computed in place to keep memory traffic low.
    w = torch.minimum(boxes1[:, None, 2], boxes2[None, :, 2])  # [N, M]
    w.sub_(torch.maximum(boxes1[:, None, 0], boxes2[None, :, 0])).clamp_(min=0)
    h = torch.minimum(boxes1[:, None, 3], boxes2[None, :, 3])  # [N, M]
    h.sub_(torch.maximum(boxes1[:, None, 1], boxes2[None, :, 1])).clamp_(min=0)
    inter = w.mul_(h)  # [N, M]
    union = torch.add(area1[:, None], area2[None, :], out=h).sub_(inter)  # [N, M]
    return inter, union


def _box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Unchecked :func:`box_iou` for internal hot paths (inputs already validated and upcast)."""
    inter, union = _inter_union(boxes1, boxes2)
    # union == 0 only when both boxes are degenerate and inter == 0: IoU 0, never NaN.
    return inter / union.clamp(min=torch.finfo(union.dtype).tiny)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise intersection over union (Jaccard index).

    Args:
        boxes1 (Tensor[N, 4]): xyxy, ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (Tensor[M, 4]): xyxy, same dtype and device.

    Returns:
        Tensor[N, M]: IoU in [0, 1]. Pairs of degenerate boxes have IoU 0 (never NaN).
        Half-precision inputs are computed in float32.
    """
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2")
    return _box_iou(_upcast(boxes1), _upcast(boxes2))


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise generalized IoU (Rezatofighi et al., 2019): ``IoU - (C - union) / C``.

    ``C`` is the area of the smallest box enclosing both boxes.

    Args:
        boxes1 (Tensor[N, 4]): xyxy, ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (Tensor[M, 4]): xyxy.

    Returns:
        Tensor[N, M]: GIoU in [-1, 1]. Degenerate pairs never give NaN.
    """
    check_boxes(boxes1, "boxes1")
    check_boxes(boxes2, "boxes2")
    boxes1, boxes2 = _upcast(boxes1), _upcast(boxes2)
    inter, union = _inter_union(boxes1, boxes2)
    tiny = torch.finfo(union.dtype).tiny
    iou = inter / union.clamp(min=tiny)
    lt = torch.minimum(boxes1[:, None, :2], boxes2[None, :, :2])  # [N, M, 2]
    rb = torch.maximum(boxes1[:, None, 2:], boxes2[None, :, 2:])  # [N, M, 2]
    wh = rb - lt  # [N, M, 2], >= 0 for well-formed boxes
    hull = wh[..., 0] * wh[..., 1]  # [N, M]
    return iou - (hull - union) / hull.clamp(min=tiny)


def _check_size(size, name: str = "size") -> tuple[float, float]:
    try:
        h, w = size
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be (height, width), got {size!r}") from None
    h = check_number(h, f"{name}[0] (height)", low=0)
    w = check_number(w, f"{name}[1] (width)", low=0)
    return h, w


def clip_boxes(boxes: Tensor, size: Sequence[float]) -> Tensor:
    """Clips boxes to an image of ``size = (height, width)``: x to [0, width], y to [0, height].

    Use ``size=(1, 1)`` for normalized boxes.

    Args:
        boxes (Tensor[..., 4]): xyxy.
        size (tuple[float, float]): (height, width).

    Returns:
        Tensor[..., 4]: clipped boxes (a new tensor).
    """
    check_tensor(boxes, "boxes")
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape [..., 4], got {tuple(boxes.shape)}")
    h, w = _check_size(size)
    out = boxes.clone()
    out[..., 0::2] = out[..., 0::2].clamp(0, w)
    out[..., 1::2] = out[..., 1::2].clamp(0, h)
    return out


def sanitize_boxes(
    boxes: Tensor,
    size: Sequence[float] | None = None,
    *,
    mode: Literal["raise", "clip", "drop"] = "raise",
    min_size: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Checks or repairs boxes: finite, ``x1 <= x2``, ``y1 <= y2``, inside ``size``, sides >= ``min_size``.

    Args:
        boxes (Tensor[N, 4]): xyxy, float.
        size (tuple[float, float], optional): (height, width) of the image; when given,
            boxes must lie inside it.
        mode (str): what to do with a bad box:
            ``"raise"``: raise ``ValueError`` naming the first bad row;
            ``"clip"``: clip to the image and swap inverted corners, then drop boxes that are
            still bad (non-finite, or smaller than ``min_size``);
            ``"drop"``: drop every bad box.
        min_size (float): boxes with width or height below this are bad. The default 0 allows
            degenerate (zero-area) boxes, which pixbox handles without NaN.

    Returns:
        tuple[Tensor[K, 4], Tensor[K]]: the good boxes and their indices in the input, so
        that labels can be filtered with the same indices.
    """
    check_shape(boxes, "boxes", (None, 4), "[N, 4]")
    if not boxes.is_floating_point():
        raise TypeError(f"boxes must be a floating-point tensor, got dtype {boxes.dtype}")
    check_choice(mode, "mode", ("raise", "clip", "drop"))
    check_number(min_size, "min_size", low=0)
    hw = _check_size(size) if size is not None else None
    out = boxes
    if mode == "clip":
        lo = torch.minimum(boxes[:, :2], boxes[:, 2:])
        hi = torch.maximum(boxes[:, :2], boxes[:, 2:])
        out = torch.cat([lo, hi], dim=1)
        if hw is not None:
            out = clip_boxes(out, hw)
    finite = torch.isfinite(out).all(dim=1)
    wh = out[:, 2:] - out[:, :2]
    good = finite & (wh >= min_size).all(dim=1) & (wh >= 0).all(dim=1)
    if hw is not None:
        h, w = hw
        good &= (out[:, 0] >= 0) & (out[:, 1] >= 0) & (out[:, 2] <= w) & (out[:, 3] <= h)
    if mode == "raise" and not bool(good.all()):
        i = int((~good).nonzero()[0, 0])
        where = f" inside (height, width)={hw}" if hw is not None else ""
        raise ValueError(
            f"boxes must be finite xyxy with x1 <= x2, y1 <= y2, sides >= min_size={min_size}{where}; "
            f"row {i} is {boxes[i].tolist()} ({int((~good).sum())} bad rows in all)"
        )
    keep = good.nonzero().flatten()
    return out[keep], keep


def remove_small_boxes(boxes: Tensor, min_size: float) -> Tensor:
    """Indices of the boxes whose width and height are both >= ``min_size`` (torchvision semantics).

    Args:
        boxes (Tensor[N, 4]): xyxy.
        min_size (float): minimum side length.

    Returns:
        Tensor[K]: int64 indices, increasing.
    """
    check_shape(boxes, "boxes", (None, 4), "[N, 4]")
    check_number(min_size, "min_size", low=0)
    ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    return ((ws >= min_size) & (hs >= min_size)).nonzero().flatten()


def _scale(size) -> tuple[float, float]:
    h, w = _check_size(size)
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive (height, width), got {tuple(size)}")
    return h, w


def normalize_boxes(boxes: Tensor, size: Sequence[float]) -> Tensor:
    """Pixel xyxy boxes to normalized [0, 1] coordinates for an image of ``size = (height, width)``."""
    check_tensor(boxes, "boxes")
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape [..., 4], got {tuple(boxes.shape)}")
    h, w = _scale(size)
    return boxes / boxes.new_tensor([w, h, w, h])


def denormalize_boxes(boxes: Tensor, size: Sequence[float]) -> Tensor:
    """Normalized [0, 1] xyxy boxes to pixels for an image of ``size = (height, width)``."""
    check_tensor(boxes, "boxes")
    if boxes.dim() == 0 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must have shape [..., 4], got {tuple(boxes.shape)}")
    h, w = _scale(size)
    return boxes * boxes.new_tensor([w, h, w, h])
