"""Turning class probabilities and offsets at anchors into detections.

:func:`multibox_detection` gives D2L's layout (one row per anchor, suppressed rows marked -1);
:func:`decode_detections` gives the modern form, a list of ``{boxes, scores, labels}`` per image,
with per-class NMS and a top-k. Both run NMS for the whole batch in one call (the image, and
for the modern form the class, is the NMS group), not in a Python loop over images.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from pixbox._checks import check_floating, check_number, check_same_device, check_tensor
from pixbox.ops.coder import DEFAULT_LOG_CLAMP, DEFAULT_MEANS, DEFAULT_STDS, _check_means_stds, _decode
from pixbox.ops.nms import batched_nms

__all__ = ["multibox_detection", "decode_detections"]


def _check_inputs(cls_probs: Tensor, offset_preds: Tensor, anchors: Tensor) -> tuple[Tensor, int, int, int]:
    check_floating(cls_probs, "cls_probs")
    check_floating(offset_preds, "offset_preds")
    check_tensor(anchors, "anchors")
    if anchors.dim() == 3 and anchors.shape[0] == 1:
        anchors = anchors[0]
    if anchors.dim() != 2 or anchors.shape[1] != 4:
        raise ValueError(f"anchors must have shape [A, 4] or [1, A, 4], got {tuple(anchors.shape)}")
    a = anchors.shape[0]
    if cls_probs.dim() != 3 or cls_probs.shape[2] != a or cls_probs.shape[1] < 2:
        raise ValueError(
            f"cls_probs must have shape [B, C + 1, A] with A = {a} anchors and C >= 1, got {tuple(cls_probs.shape)}"
        )
    b, c1, _ = cls_probs.shape
    if tuple(offset_preds.shape) != (b, 4 * a):
        raise ValueError(f"offset_preds must have shape [B, 4A] = [{b}, {4 * a}], got {tuple(offset_preds.shape)}")
    check_same_device("cls_probs", cls_probs, "offset_preds", offset_preds)
    check_same_device("cls_probs", cls_probs, "anchors", anchors)
    return anchors, b, c1 - 1, a


def multibox_detection(
    cls_probs: Tensor,
    offset_preds: Tensor,
    anchors: Tensor,
    nms_threshold: float = 0.5,
    pos_threshold: float = 0.009999999,
    *,
    means: Sequence[float] = DEFAULT_MEANS,
    stds: Sequence[float] = DEFAULT_STDS,
) -> Tensor:
    """Detections in D2L's layout: decode offsets, class-agnostic NMS per image, one row per anchor.

    For each anchor the predicted class is the most probable non-background class and its
    probability the confidence. Rows are ordered as in D2L: the kept anchors by decreasing
    confidence (ties: lower anchor index first), then the suppressed anchors by index.

    Args:
        cls_probs (Tensor[B, C + 1, A]): class probabilities, background at index 0.
        offset_preds (Tensor[B, 4A]): predicted offsets per anchor.
        anchors (Tensor[A, 4] or [1, A, 4]): xyxy.
        nms_threshold (float): NMS IoU threshold (suppress when IoU > threshold).
        pos_threshold (float): rows with confidence below this get class -1 and confidence
            ``1 - confidence`` (D2L's convention).
        means, stds (4 floats): offset normalisation.

    Returns:
        Tensor[B, A, 6]: rows ``(class_id, confidence, x1, y1, x2, y2)``; class_id -1 marks
        background or suppressed rows.
    """
    anchors, b, _, a = _check_inputs(cls_probs, offset_preds, anchors)
    check_number(nms_threshold, "nms_threshold")
    check_number(pos_threshold, "pos_threshold")
    means, stds = _check_means_stds(means, stds)
    if bool(torch.isnan(cls_probs).any()):
        raise ValueError("cls_probs must not contain NaN")
    dtype = cls_probs.dtype
    conf, class_id = cls_probs[:, 1:, :].max(dim=1)  # [B, A]
    boxes = _decode(anchors.to(offset_preds.dtype), offset_preds.view(b, a, 4), means, stds, DEFAULT_LOG_CLAMP)
    boxes = boxes.to(dtype)  # [B, A, 4]
    if b * a == 0:
        return cls_probs.new_zeros(b, a, 6)
    group = torch.arange(b, device=conf.device).repeat_interleave(a)
    keep = batched_nms(boxes.reshape(-1, 4), conf.reshape(-1), group, nms_threshold)
    kept = torch.zeros(b * a, dtype=torch.bool, device=conf.device)
    kept[keep] = True
    kept = kept.view(b, a)
    # Sort key: kept rows by confidence (>= 0), then the others by index (all < 0).
    idx = torch.arange(a, device=conf.device, dtype=torch.float64)
    key = torch.where(kept, conf.double(), -1.0 - idx)
    order = torch.sort(key, dim=1, descending=True, stable=True).indices  # [B, A]
    class_id = torch.where(kept, class_id, torch.full_like(class_id, -1))
    low = conf < pos_threshold
    class_id = torch.where(low, torch.full_like(class_id, -1), class_id)
    conf = torch.where(low, 1 - conf, conf)
    rows = torch.cat([class_id[..., None].to(dtype), conf[..., None], boxes], dim=2)  # [B, A, 6]
    return rows.gather(1, order[..., None].expand(b, a, 6))


def decode_detections(
    cls_probs: Tensor,
    offset_preds: Tensor,
    anchors: Tensor,
    *,
    score_threshold: float = 0.01,
    nms_threshold: float = 0.45,
    topk: int = 200,
    means: Sequence[float] = DEFAULT_MEANS,
    stds: Sequence[float] = DEFAULT_STDS,
    clip: bool = False,
    pre_nms_topk: int | None = None,
) -> list[dict[str, Tensor]]:
    """Detections as a list of dicts per image, with per-class NMS (the SSD post-processing).

    Every (anchor, class) pair whose probability exceeds ``score_threshold`` is a candidate;
    NMS runs separately within each class of each image, and each image keeps its ``topk``
    highest-scoring detections.

    Args:
        cls_probs (Tensor[B, C + 1, A]): class probabilities, background at index 0.
        offset_preds (Tensor[B, 4A]): predicted offsets.
        anchors (Tensor[A, 4] or [1, A, 4]): xyxy.
        score_threshold (float): candidates need a probability > this.
        nms_threshold (float): per-class NMS threshold.
        topk (int): detections kept per image, > 0.
        means, stds (4 floats): offset normalisation.
        clip (bool): clip boxes to [0, 1] (for normalized anchors).
        pre_nms_topk (int, optional): before NMS, keep only the this many highest-scoring
            candidates of each class in each image (torchvision's SSD keeps 400). None keeps
            every candidate above ``score_threshold``. A cap bounds the NMS work of a model
            that scores many anchors just above the threshold; it can only drop candidates
            ranked below the cap within their class.

    Returns:
        list of B dicts: ``boxes`` (Tensor[K, 4] xyxy), ``scores`` (Tensor[K]) and ``labels``
        (Tensor[K] int64 in ``[0, C)``, background excluded), by decreasing score.
    """
    anchors, b, c, a = _check_inputs(cls_probs, offset_preds, anchors)
    check_number(score_threshold, "score_threshold")
    check_number(nms_threshold, "nms_threshold")
    topk = int(check_number(topk, "topk", low=1))
    means, stds = _check_means_stds(means, stds)
    if bool(torch.isnan(cls_probs).any()):
        raise ValueError("cls_probs must not contain NaN")
    boxes = _decode(anchors.to(offset_preds.dtype), offset_preds.view(b, a, 4), means, stds, DEFAULT_LOG_CLAMP)
    boxes = boxes.to(cls_probs.dtype)
    if clip:
        boxes = boxes.clamp(0, 1)
    scores = cls_probs[:, 1:, :]  # [B, C, A]
    if pre_nms_topk is not None and int(check_number(pre_nms_topk, "pre_nms_topk", low=1)) < a:
        vals, idx = scores.topk(int(pre_nms_topk), dim=2)  # [B, C, k]
        bi, ci, ki = (vals > score_threshold).nonzero().unbind(1)
        ai = idx[bi, ci, ki]
        # Back to (image, class, anchor) order, so ties break by anchor index as without a cap.
        order = torch.argsort((bi * c + ci) * a + ai)
        bi, ci, ai = bi[order], ci[order], ai[order]
    else:
        bi, ci, ai = (scores > score_threshold).nonzero().unbind(1)
    cand_scores = scores[bi, ci, ai]
    cand_boxes = boxes[bi, ai]
    keep = batched_nms(cand_boxes, cand_scores, bi * c + ci, nms_threshold)  # by decreasing score
    kb = bi[keep]
    out = []
    for i in range(b):
        sel = keep[kb == i][:topk]
        out.append({"boxes": cand_boxes[sel], "scores": cand_scores[sel], "labels": ci[sel]})
    return out
