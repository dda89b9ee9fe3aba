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

from pixbox._checks import check_boxes, check_floating, check_number, check_same_device, check_tensor
from pixbox.ops.coder import DEFAULT_LOG_CLAMP, DEFAULT_MEANS, DEFAULT_STDS, _check_means_stds, _decode
from pixbox.ops.nms import _nms_ranked, batched_nms

__all__ = ["multibox_detection", "decode_detections"]


def _check_inputs(cls_probs: Tensor, offset_preds: Tensor, anchors: Tensor) -> tuple[Tensor, Tensor, int, int, int]:
    """Validated inputs; integer ``offset_preds`` (the book passes ``torch.tensor([0] * 16)``)
    become ``cls_probs``' dtype. Returns ``(anchors [A, 4], offset_preds, B, C, A)``."""
    check_floating(cls_probs, "cls_probs")
    check_tensor(offset_preds, "offset_preds")
    if offset_preds.dtype == torch.bool or offset_preds.is_complex():
        raise TypeError(f"offset_preds must be a real tensor, got dtype {offset_preds.dtype}")
    if not offset_preds.is_floating_point():
        offset_preds = offset_preds.to(cls_probs.dtype)
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
    return anchors, offset_preds, b, c1 - 1, a


def _rank_desc(conf: Tensor) -> Tensor:
    """``torch.sort(conf, dim=1, descending=True, stable=True).indices`` for ``[B, A]``: by decreasing
    confidence, ties to the lower index. float32 sorts unique int64 keys (the float's bits made
    monotone, then the reversed index), which needs no stable sort."""
    a = conf.shape[1]
    if conf.dtype != torch.float32 or a >= 1 << 31:
        return torch.sort(conf, dim=1, descending=True, stable=True).indices
    bits = (conf + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into +0.0, which sorts equal to it
    key = (bits ^ ((bits >> 31) & 0x7FFFFFFF)).long() << 32  # negative floats: all but the sign flipped
    key |= (a - 1) - torch.arange(a, device=conf.device)  # equal confidences: the lower index first
    return torch.sort(key, dim=1, descending=True).indices


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
        cls_probs (Tensor[B, C + 1, A]): float class probabilities, background at index 0.
        offset_preds (Tensor[B, 4A]): predicted offsets per anchor; integer offsets (the book's
            ``torch.tensor([0] * 16)``) are taken in ``cls_probs``' dtype.
        anchors (Tensor[A, 4] or [1, A, 4]): xyxy.
        nms_threshold (float): NMS IoU threshold (suppress when IoU > threshold).
        pos_threshold (float): rows with confidence below this get class -1 and confidence
            ``1 - confidence`` (D2L's convention).
        means, stds (4 floats): offset normalisation.

    Returns:
        Tensor[B, A, 6]: rows ``(class_id, confidence, x1, y1, x2, y2)`` in ``cls_probs``' dtype;
        class_id -1 marks background or suppressed rows. The rows carry no gradient: inputs that
        require grad (raw network outputs, as in the book) are read detached.
    """
    anchors, offset_preds, b, _, a = _check_inputs(cls_probs, offset_preds, anchors)
    t = float(check_number(nms_threshold, "nms_threshold"))
    check_number(pos_threshold, "pos_threshold")
    means, stds = _check_means_stds(means, stds)
    # Post-processing, not training: the rows carry no gradient, even for raw network outputs
    # that require grad (NMS keeps indices, and no loss is defined on these rows).
    cls_probs, offset_preds, anchors = cls_probs.detach(), offset_preds.detach(), anchors.detach()
    dtype = cls_probs.dtype
    device = cls_probs.device
    conf, class_id = cls_probs[:, 1:, :].max(dim=1)  # [B, A]
    boxes = _decode(anchors.to(offset_preds.dtype), offset_preds.view(b, a, 4), means, stds, DEFAULT_LOG_CLAMP)
    boxes = boxes.to(dtype)  # [B, A, 4]
    nms_boxes = check_boxes(boxes.reshape(b * a, 4), "decoded boxes", well_formed=False)
    # One host read for both value checks.
    bad = (nms_boxes[:, 2] < nms_boxes[:, 0]) | (nms_boxes[:, 3] < nms_boxes[:, 1]) | ~torch.isfinite(nms_boxes).all(1)
    nan_probs, bad_boxes = torch.stack([torch.isnan(cls_probs).any(), bad.any()]).tolist()
    if nan_probs:
        raise ValueError("cls_probs must not contain NaN")
    if b * a == 0:
        return cls_probs.new_zeros(b, a, 6)
    if bad_boxes:
        check_boxes(nms_boxes, "decoded boxes")  # raises, naming the first bad row
    if nms_boxes.dtype not in (torch.float32, torch.float64):
        nms_boxes = nms_boxes.float()
    # Batched NMS, one group per image. Each image's anchors are ranked by decreasing confidence
    # (ties: lower index first) with one small sort per image, and the ranks are interleaved
    # across images (rank-major), which is a valid global rank order for NMS since images never
    # suppress each other: no sort over the whole batch.
    order = _rank_desc(conf)  # [B, A] anchor of each rank
    base = torch.arange(b, device=device)[:, None] * a  # [B, 1]
    ranked = (order + base).t().reshape(-1)  # [A * B] flat rows, rank-major
    kept_rank = _nms_ranked(nms_boxes.index_select(0, ranked), t, torch.arange(b, device=device).repeat(a))
    kept_rank = kept_rank.view(a, b).t()  # [B, A]: is the r-th most confident anchor kept
    # Row order: per image the kept anchors by rank, then the other anchors by index.
    kept = torch.zeros_like(kept_rank).scatter_(1, order, kept_rank)  # [B, A] by anchor index
    kept_row = torch.empty_like(order).scatter_(1, order, torch.cumsum(kept_rank, 1).sub_(1))
    other_row = torch.cumsum(~kept, 1).sub_(1).add_(kept_rank.sum(1, keepdim=True))
    dest = torch.where(kept, kept_row, other_row)  # [B, A] output row of each anchor
    class_id = torch.where(kept, class_id, torch.full_like(class_id, -1))
    low = conf < pos_threshold
    class_id = torch.where(low, torch.full_like(class_id, -1), class_id)
    conf = torch.where(low, 1 - conf, conf)
    rows = torch.cat([class_id[..., None].to(dtype), conf[..., None], boxes], dim=2)  # [B, A, 6]
    return torch.empty_like(rows).scatter_(1, dest[..., None].expand(b, a, 6), rows)


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
        cls_probs (Tensor[B, C + 1, A]): float class probabilities, background at index 0.
        offset_preds (Tensor[B, 4A]): predicted offsets (integer offsets are taken in
            ``cls_probs``' dtype).
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
        (Tensor[K] int64 in ``[0, C)``, background excluded), by decreasing score. ``boxes``
        and ``scores`` stay differentiable w.r.t. inputs that require grad (NMS itself runs on
        detached values and needs none).
    """
    anchors, offset_preds, b, c, a = _check_inputs(cls_probs, offset_preds, anchors)
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
    return [{"boxes": cand_boxes[sel], "scores": cand_scores[sel], "labels": ci[sel]}
            for sel in _split_topk(keep, bi.index_select(0, keep), b, topk)]


def _split_topk(index: Tensor, image: Tensor, b: int, k: int | None = None) -> list[Tensor]:
    """``[index[image == i][:k] for i in range(b)]`` with one host read (the sizes) rather than a
    mask per image. ``image [K]`` holds each entry's image, in ``[0, b)``; ``k`` None keeps all."""
    device = index.device
    order = torch.sort(image, stable=True).indices  # by image, each image's entries in their order
    counts = torch.zeros(b, dtype=torch.long, device=device).index_add_(0, image, torch.ones_like(image))
    taken = counts if k is None else counts.clamp(max=k)
    sizes = taken.tolist()
    img = torch.repeat_interleave(torch.arange(b, device=device), taken, output_size=sum(sizes))
    # Position in ``order``: where the image starts, plus the rank within the image.
    pos = (torch.cumsum(counts, 0) - counts - torch.cumsum(taken, 0) + taken).index_select(0, img)
    pos += torch.arange(img.numel(), device=device)
    return list(index.index_select(0, order.index_select(0, pos)).split(sizes))
