"""Box formats, areas, IoU and box hygiene.

pixbox has one internal box format: ``xyxy`` (x1, y1, x2, y2), float, absolute pixels
unless a name says ``normalized`` (coordinates in [0, 1]). Convert only at the edges
with :func:`box_convert`.

Degenerate boxes (zero width or height) are valid input everywhere and never produce
NaN: their IoU with anything is 0.

Like torchvision's, the area and the IoU family take boxes in any of the three formats
(``fmt``, for :func:`box_area` and :func:`box_iou`), batches of box sets (``[..., N, 4]``, leading
dimensions broadcast) and integer boxes, with torchvision's dtypes:
:func:`box_area` keeps an integer dtype (int8, int16, uint8 and int32 give int32; int64 stays),
and the IoU functions return floats (the default float dtype, float32). The pairwise
:func:`distance_box_iou` and :func:`complete_box_iou` (Zheng et al., 2020) complete the
family; their losses live in :mod:`pixbox.losses`.
"""

from __future__ import annotations

import math
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
    "distance_box_iou",
    "complete_box_iou",
    "clip_boxes",
    "sanitize_boxes",
    "remove_small_boxes",
    "normalize_boxes",
    "denormalize_boxes",
]

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]
_FORMATS = ("xyxy", "xywh", "cxcywh")


def _upcast(t: Tensor) -> Tensor:
    """torchvision's upcast: half precision to float32, small integers to int32 (int32, int64,
    float32 and float64 are kept). It fixes the dtypes of :func:`box_area`."""
    if t.is_floating_point():
        return t if t.dtype in (torch.float32, torch.float64) else t.float()
    return t if t.dtype in (torch.int32, torch.int64) else t.int()


def _compute_pair(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Both box sets in one dtype to compute IoUs in: float32 or float64 for floats (half precision
    products overflow easily), int64 for integers (exact, no overflow)."""
    dtype = torch.promote_types(_upcast(boxes1).dtype, _upcast(boxes2).dtype)
    if not dtype.is_floating_point:
        dtype = torch.int64
    return boxes1.to(dtype), boxes2.to(dtype)


def _check_real_boxes(boxes, name: str) -> Tensor:
    """Like :func:`check_boxes`, for float or integer ``[N, 4]`` boxes (torchvision takes both)."""
    check_tensor(boxes, name)
    if boxes.is_floating_point():
        return check_boxes(boxes, name)
    if boxes.dtype == torch.bool or boxes.is_complex():
        raise TypeError(f"{name} must be a float or integer tensor, got dtype {boxes.dtype}")
    check_shape(boxes, name, (None, 4), "[N, 4]")
    check_boxes(boxes.double(), name)  # x1 <= x2, y1 <= y2 on an exact copy
    return boxes


def _check_box_sets(boxes, name: str) -> Tensor:
    """Float or integer box sets ``[N, 4]`` or ``[..., N, 4]`` (a batch of sets), well-formed xyxy."""
    check_tensor(boxes, name)
    if boxes.dim() < 2 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have shape [N, 4] or [..., N, 4] (a batch of box sets), "
                         f"got {tuple(boxes.shape)}")
    _check_real_boxes(boxes.reshape(-1, 4), name)
    return boxes


def _check_pair(boxes1, boxes2, fmt: str = "xyxy") -> tuple[Tensor, Tensor]:
    """Both box sets checked, as xyxy in one compute dtype; their batch dimensions must broadcast."""
    fmt = check_choice(fmt, "fmt", _FORMATS)
    if fmt != "xyxy":
        check_tensor(boxes1, "boxes1")
        check_tensor(boxes2, "boxes2")
        boxes1, boxes2 = box_convert(boxes1, fmt, "xyxy"), box_convert(boxes2, fmt, "xyxy")
    boxes1, boxes2 = _check_box_sets(boxes1, "boxes1"), _check_box_sets(boxes2, "boxes2")
    try:
        torch.broadcast_shapes(boxes1.shape[:-2], boxes2.shape[:-2])
    except RuntimeError:
        raise ValueError(f"the batch dimensions of boxes1 {tuple(boxes1.shape)} and boxes2 {tuple(boxes2.shape)} "
                         "do not broadcast") from None
    return _compute_pair(boxes1, boxes2)


def _check_boxes_at_once(boxes: Sequence[Tensor], names: Sequence[str]) -> None:
    """:func:`check_boxes` (well-formed, finite) on float ``[N_i, 4]`` tensors of one device with one
    host read for all of them; on failure, each is checked in turn, so the error names the first bad one."""
    every = torch.cat([b.detach() for b in boxes]) if boxes and len({b.device for b in boxes}) == 1 else None
    if every is not None and every.numel():
        bad = (every[:, 2] < every[:, 0]) | (every[:, 3] < every[:, 1]) | ~torch.isfinite(every).all(dim=1)
        if not bool(bad.any()):
            return
    for b, name in zip(boxes, names):
        check_boxes(b, name)


def _tiny(t: Tensor) -> float:
    """The smallest positive value of ``t``'s dtype (1 for integers): ``x / max(y, tiny)`` is
    ``x / y`` for ``y > 0`` and 0 for ``x = y = 0``."""
    return torch.finfo(t.dtype).tiny if t.is_floating_point() else 1


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


def box_area(boxes: Tensor, fmt: BoxFormat = "xyxy") -> Tensor:
    """Area of each box.

    Args:
        boxes (Tensor[N, 4] or Tensor[..., N, 4]): in ``fmt``, well-formed (``x1 <= x2``,
            ``y1 <= y2``; width and height >= 0); float or integer.
        fmt (str): ``"xyxy"``, ``"xywh"`` or ``"cxcywh"`` (the area is then ``w * h``, exact for
            integers).

    Returns:
        Tensor[N] (Tensor[..., N]): areas, in torchvision's dtypes: float32 and float64 are kept,
        half precision is computed (and returned) in float32, int8, int16, uint8 and int32 give
        int32, int64 gives int64.
    """
    fmt = check_choice(fmt, "fmt", _FORMATS)
    check_tensor(boxes, "boxes")
    _check_box_sets(boxes if fmt == "xyxy" else box_convert(boxes, fmt, "xyxy"), "boxes")
    boxes = _upcast(boxes)
    if fmt != "xyxy":
        return boxes[..., 2] * boxes[..., 3]
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _inter_union(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Unchecked pairwise intersection and union, ``[..., N, M]`` each, of ``[..., N, 4]`` and
    ``[..., M, 4]`` (batch dimensions broadcast)."""
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])  # [..., N]
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])  # [..., M]
    if torch.is_grad_enabled() and (boxes1.requires_grad or boxes2.requires_grad):
        # Out-of-place twin of the fast path below, for autograd.
        lt = torch.maximum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])  # [..., N, M, 2]
        rb = torch.minimum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])  # [..., N, M, 2]
        wh = (rb - lt).clamp(min=0)  # [..., N, M, 2]
        inter = wh[..., 0] * wh[..., 1]  # [..., N, M]
        return inter, area1[..., :, None] + area2[..., None, :] - inter
    # Width and height of the intersection, computed in place to keep memory traffic low.
    w = torch.minimum(boxes1[..., :, None, 2], boxes2[..., None, :, 2])  # [..., N, M]
    w.sub_(torch.maximum(boxes1[..., :, None, 0], boxes2[..., None, :, 0])).clamp_(min=0)
    h = torch.minimum(boxes1[..., :, None, 3], boxes2[..., None, :, 3])  # [..., N, M]
    h.sub_(torch.maximum(boxes1[..., :, None, 1], boxes2[..., None, :, 1])).clamp_(min=0)
    inter = w.mul_(h)  # [..., N, M]
    union = torch.add(area1[..., :, None], area2[..., None, :], out=h).sub_(inter)  # [..., N, M]
    return inter, union


def _box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Unchecked :func:`box_iou` for internal hot paths (inputs already validated and upcast)."""
    inter, union = _inter_union(boxes1, boxes2)
    # union == 0 only when both boxes are degenerate and inter == 0: IoU 0, never NaN.
    return inter / union.clamp(min=_tiny(union))


def box_iou(boxes1: Tensor, boxes2: Tensor, fmt: BoxFormat = "xyxy") -> Tensor:
    """Pairwise intersection over union (Jaccard index).

    Args:
        boxes1 (Tensor[N, 4] or Tensor[..., N, 4]): in ``fmt``, well-formed; float or integer.
        boxes2 (Tensor[M, 4] or Tensor[..., M, 4]): the same, on the same device; the batch
            dimensions ``...`` of the two broadcast.
        fmt (str): ``"xyxy"`` (``x1 <= x2``, ``y1 <= y2``), ``"xywh"`` or ``"cxcywh"``.

    Returns:
        Tensor[N, M] (Tensor[..., N, M]): IoU in [0, 1]. Pairs of degenerate boxes have IoU 0
        (never NaN). Half-precision inputs are computed (and returned) in float32; integer
        inputs give the default float dtype (float32), as torchvision's.
    """
    return _box_iou(*_check_pair(boxes1, boxes2, fmt))


def _enclosing_wh(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Width and height of the smallest box enclosing each pair, ``[..., N, M]`` each."""
    lt = torch.minimum(boxes1[..., :, None, :2], boxes2[..., None, :, :2])  # [..., N, M, 2]
    rb = torch.maximum(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])  # [..., N, M, 2]
    wh = (rb - lt).clamp(min=0)  # [..., N, M, 2], >= 0 for well-formed boxes anyway
    return wh[..., 0], wh[..., 1]


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise generalized IoU (Rezatofighi et al., 2019): ``IoU - (C - union) / C``.

    ``C`` is the area of the smallest box enclosing both boxes.

    Args:
        boxes1 (Tensor[N, 4] or Tensor[..., N, 4]): xyxy, ``x1 <= x2``, ``y1 <= y2``; float or integer.
        boxes2 (Tensor[M, 4] or Tensor[..., M, 4]): xyxy; batch dimensions broadcast with ``boxes1``'s.

    Returns:
        Tensor[N, M] (Tensor[..., N, M]): GIoU in [-1, 1] (float; integer inputs give float32).
        Degenerate pairs never give NaN.
    """
    boxes1, boxes2 = _check_pair(boxes1, boxes2)
    inter, union = _inter_union(boxes1, boxes2)
    iou = inter / union.clamp(min=_tiny(union))
    w, h = _enclosing_wh(boxes1, boxes2)
    hull = w * h  # [..., N, M]
    return iou - (hull - union) / hull.clamp(min=_tiny(hull))


def _diou_iou(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """Pairwise distance IoU and IoU, ``[..., N, M]`` each (inputs checked and in a compute dtype)."""
    iou = _box_iou(boxes1, boxes2)
    w, h = _enclosing_wh(boxes1, boxes2)
    diagonal2 = (w ** 2) + (h ** 2) + eps  # squared diagonal of the enclosing box  [..., N, M]
    cx1, cy1 = (boxes1[..., 0] + boxes1[..., 2]) / 2, (boxes1[..., 1] + boxes1[..., 3]) / 2  # [..., N]
    cx2, cy2 = (boxes2[..., 0] + boxes2[..., 2]) / 2, (boxes2[..., 1] + boxes2[..., 3]) / 2  # [..., M]
    centre2 = (cx1[..., :, None] - cx2[..., None, :]) ** 2 + (cy1[..., :, None] - cy2[..., None, :]) ** 2
    return iou - (centre2 / diagonal2), iou


def _aspect_angle(w: Tensor, h: Tensor) -> Tensor:
    """``atan(w / h)``, the aspect term of CIoU; pi/2 for ``h = 0 < w`` (as ``atan(inf)``) and 0
    for an empty box (where ``atan(0 / 0)`` is NaN), with no NaN gradient either."""
    positive = h > 0
    angle = torch.atan(w / torch.where(positive, h, torch.ones_like(h)))
    return torch.where(positive, angle, (w > 0).to(angle.dtype) * (math.pi / 2))


def distance_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise distance IoU (DIoU, Zheng et al., 2020): ``IoU - d^2 / (c^2 + eps)``.

    ``d`` is the distance between the two box centres and ``c`` the diagonal of the smallest
    box enclosing both. Same formula, ``eps`` and dtypes as ``torchvision.ops.distance_box_iou``,
    except that two degenerate boxes have IoU 0 rather than NaN.

    Args:
        boxes1 (Tensor[N, 4] or Tensor[..., N, 4]): xyxy, ``x1 <= x2``, ``y1 <= y2``; float or integer.
        boxes2 (Tensor[M, 4] or Tensor[..., M, 4]): xyxy; batch dimensions broadcast with ``boxes1``'s.
        eps (float): added to ``c^2`` so that it is never 0.

    Returns:
        Tensor[N, M] (Tensor[..., N, M]): DIoU in [-1, 1] (float; integer inputs give float32, half precision
        float32), differentiable.
    """
    boxes1, boxes2 = _check_pair(boxes1, boxes2)
    eps = check_number(eps, "eps", low=0)
    diou, _ = _diou_iou(boxes1, boxes2, eps)
    return diou


def complete_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-7) -> Tensor:
    """Pairwise complete IoU (CIoU, Zheng et al., 2020): ``DIoU - alpha * v``.

    ``v = 4 / pi^2 * (atan(w1 / h1) - atan(w2 / h2))^2`` measures the difference of aspect
    ratios and ``alpha = v / (1 - IoU + v + eps)`` weighs it; ``alpha`` is a constant for
    autograd (computed without gradient), as in the paper and torchvision. Same formula, ``eps``
    and dtypes as ``torchvision.ops.complete_box_iou``, except that degenerate boxes never give
    NaN (IoU 0 for two empty boxes; an empty box's aspect angle is 0).

    Args:
        boxes1 (Tensor[N, 4] or Tensor[..., N, 4]): xyxy, ``x1 <= x2``, ``y1 <= y2``; float or integer.
        boxes2 (Tensor[M, 4] or Tensor[..., M, 4]): xyxy; batch dimensions broadcast with ``boxes1``'s.
        eps (float): added to ``c^2`` and to the denominator of ``alpha``.

    Returns:
        Tensor[N, M] (Tensor[..., N, M]): CIoU (float; integer inputs give float32), differentiable.
    """
    boxes1, boxes2 = _check_pair(boxes1, boxes2)
    eps = check_number(eps, "eps", low=0)
    diou, iou = _diou_iou(boxes1, boxes2, eps)
    a1 = _aspect_angle(boxes1[..., 2] - boxes1[..., 0], boxes1[..., 3] - boxes1[..., 1])  # [..., N]
    a2 = _aspect_angle(boxes2[..., 2] - boxes2[..., 0], boxes2[..., 3] - boxes2[..., 1])  # [..., M]
    v = (4 / (math.pi ** 2)) * torch.pow(a1[..., :, None] - a2[..., None, :], 2)  # [..., N, M]
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return diou - alpha * v


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
