"""The D2L book's object-detection functions (sections 14.3-14.7), on :mod:`pixbox.ops`.

Re-exported by :mod:`pixbox.compat.d2l`, whose docstring lists where they differ from D2L 1.0.3.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pixbox._checks import check_shape, check_tensor
from pixbox.ops import boxes as _boxes
from pixbox.ops.anchors import generate_anchors
from pixbox.ops.coder import DEFAULT_LOG_CLAMP
from pixbox.ops.detection import multibox_detection as _multibox_detection
from pixbox.ops.matching import _batched_iou, _class_targets, _match
from pixbox.models.ssd import (  # noqa: F401 - re-exported: the book's TinySSD blocks
    base_net,
    bbox_predictor,
    cls_predictor,
    concat_preds,
    down_sample_blk,
    flatten_pred,
)
from pixbox.ops.nms import nms as _nms

__all__ = [
    "box_corner_to_center",
    "box_center_to_corner",
    "multibox_prior",
    "box_iou",
    "assign_anchor_to_bbox",
    "offset_boxes",
    "multibox_target",
    "offset_inverse",
    "nms",
    "multibox_detection",
    "cls_predictor",
    "bbox_predictor",
    "flatten_pred",
    "concat_preds",
    "down_sample_blk",
    "base_net",
]


def box_corner_to_center(boxes: Tensor) -> Tensor:
    """(x1, y1, x2, y2) -> (cx, cy, w, h)."""
    return _boxes.box_convert(boxes, "xyxy", "cxcywh")


def box_center_to_corner(boxes: Tensor) -> Tensor:
    """(cx, cy, w, h) -> (x1, y1, x2, y2)."""
    return _boxes.box_convert(boxes, "cxcywh", "xyxy")


def multibox_prior(data: Tensor, sizes, ratios) -> Tensor:
    """Anchors centred on each pixel of ``data [B, C, H, W]``: ``[1, H*W*(n+m-1), 4]``."""
    check_tensor(data, "data")
    return generate_anchors(data, sizes, ratios).unsqueeze(0)


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU ``[N, M]``."""
    return _boxes.box_iou(boxes1, boxes2)


def assign_anchor_to_bbox(ground_truth: Tensor, anchors: Tensor, device=None, iou_threshold: float = 0.5) -> Tensor:
    """Index of the ground-truth box assigned to each anchor, or -1 (``device`` is ignored)."""
    from pixbox.ops.matching import match_anchors

    return match_anchors(anchors, ground_truth, iou_threshold)


def offset_boxes(anchors: Tensor, assigned_bb: Tensor, eps: float = 1e-6) -> Tensor:
    """D2L's offsets: ``10 * (c_b - c_a) / wh_a`` and ``5 * log(eps + wh_b / wh_a)``."""
    c_anc = box_corner_to_center(anchors)
    c_bb = box_corner_to_center(assigned_bb)
    offset_xy = 10 * (c_bb[:, :2] - c_anc[:, :2]) / c_anc[:, 2:]
    offset_wh = 5 * torch.log(eps + c_bb[:, 2:] / c_anc[:, 2:])
    return torch.cat([offset_xy, offset_wh], dim=1)


def multibox_target(anchors: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Labels anchors for a batch: ``(bbox_offset [B, 4A], bbox_mask [B, 4A], class_labels [B, A])``.

    Args:
        anchors (Tensor[1, A, 4] or [A, 4]): normalized xyxy.
        labels (Tensor[B, G, 5]): rows (class, x1, y1, x2, y2); class -1 rows are padding.
    """
    check_tensor(anchors, "anchors")
    anc = anchors[0] if anchors.dim() == 3 and anchors.shape[0] == 1 else anchors
    check_shape(anc, "anchors", (None, 4), "[1, A, 4] or [A, 4]")
    check_shape(labels, "labels", (None, None, 5), "[B, G, 5] with rows (class, x1, y1, x2, y2)")
    b, _, _ = labels.shape
    a = anc.shape[0]
    labels = labels.to(anc.dtype)
    valid = labels[..., 0] >= 0
    iou = _batched_iou(anc, labels[..., 1:])  # [B, G, A]
    iou.masked_fill_(~valid[:, :, None], -1.0)
    assigned = _match(iou, 0.5)  # [B, A]
    pos = assigned >= 0
    offsets = anc.new_zeros(b, a, 4)
    if bool(pos.any()):
        pb, pa = pos.nonzero().unbind(1)
        offsets[pb, pa] = offset_boxes(anc[pa], labels[pb, assigned[pb, pa], 1:])
    class_labels = _class_targets(labels[..., 0], assigned)
    mask = pos[..., None].expand(b, a, 4).to(anc.dtype)
    return offsets.reshape(b, -1), mask.reshape(b, -1), class_labels


def offset_inverse(anchors: Tensor, offset_preds: Tensor) -> Tensor:
    """Boxes from anchors ``[A, 4]`` and D2L offsets ``[A, 4]``."""
    anc = box_corner_to_center(anchors)
    pred_xy = offset_preds[:, :2] * anc[:, 2:] / 10 + anc[:, :2]
    pred_wh = torch.exp((offset_preds[:, 2:] / 5).clamp(max=DEFAULT_LOG_CLAMP)) * anc[:, 2:]
    return box_center_to_corner(torch.cat([pred_xy, pred_wh], dim=1))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices of kept boxes by decreasing score (suppress when IoU > threshold).

    Inputs that require grad are fine (indices carry no gradient).
    """
    return _nms(boxes.detach(), scores.detach(), iou_threshold)


def multibox_detection(cls_probs: Tensor, offset_preds: Tensor, anchors: Tensor, nms_threshold: float = 0.5,
                       pos_threshold: float = 0.009999999) -> Tensor:
    """Rows (class_id, confidence, x1, y1, x2, y2) per anchor, ``[B, A, 6]`` (see
    :func:`pixbox.ops.multibox_detection`).

    The book's ``predict`` passes a network's outputs, which require grad: they are detached
    here (the result carries no gradient, the book's does), and integer offsets are taken as
    floats.
    """
    dtype = cls_probs.dtype if cls_probs.is_floating_point() else torch.get_default_dtype()
    with torch.no_grad():
        return _multibox_detection(cls_probs.detach().to(dtype), offset_preds.detach().to(dtype),
                                   anchors.detach().to(dtype), nms_threshold, pos_threshold)
