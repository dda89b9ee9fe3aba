"""Assigning ground-truth boxes to anchors and building training targets.

:func:`match_anchors` assigns in two stages (D2L's ``assign_anchor_to_bbox``):

1. Greedy bipartite: repeatedly take the largest IoU left in the anchor x ground-truth
   matrix, assign that pair, and remove its row and column. Ties go to the lower anchor
   index, then the lower ground-truth index. Only pairs with IoU > 0 are assigned, so a
   ground-truth box that overlaps no anchor (or a degenerate one) is never forced on one.
2. Every anchor left whose best IoU is >= ``iou_threshold`` gets that ground truth.

:func:`multibox_target` applies this to a whole batch at once (no Python loop over images),
encodes offsets only where an anchor is assigned, and optionally mines hard negatives.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from pixbox._checks import check_boxes, check_floating, check_number, check_same_device, check_shape, check_tensor
from pixbox.ops.coder import DEFAULT_MEANS, DEFAULT_STDS, _check_means_stds, _encode

__all__ = ["match_anchors", "multibox_target", "hard_negative_mining"]


def _batched_iou(anchors: Tensor, gt: Tensor) -> Tensor:
    """IoU of each image's boxes ``[B, G, 4]`` with anchors ``[A, 4]`` -> ``[B, G, A]``.

    Anchors are the long, innermost axis so every broadcast runs over contiguous memory, and
    images are processed a few at a time so the temporaries stay in cache.
    """
    b, g, _ = gt.shape
    a = anchors.shape[0]
    out = anchors.new_empty(b, g, a)
    ax1, ay1, ax2, ay2 = (anchors[:, i].contiguous()[None, None, :] for i in range(4))  # [1, 1, A]
    area_a = (ax2 - ax1) * (ay2 - ay1)  # [1, 1, A]
    step = max(1, (1 << 18) // max(1, g * a))
    tiny = torch.finfo(out.dtype).tiny
    for s in range(0, b, step):
        o = out[s:s + step]
        gx1, gy1, gx2, gy2 = (gt[s:s + step, :, i, None] for i in range(4))  # [b, G, 1]
        w = torch.minimum(ax2, gx2, out=o).sub_(torch.maximum(ax1, gx1)).clamp_(min=0)  # [b, G, A]
        h = torch.minimum(ay2, gy2).sub_(torch.maximum(ay1, gy1)).clamp_(min=0)  # [b, G, A]
        inter = w.mul_(h)
        union = torch.add(area_a, (gx2 - gx1) * (gy2 - gy1), out=h).sub_(inter)  # [b, G, A]
        inter.div_(union.clamp_(min=tiny))
    return out


def _match(iou: Tensor, iou_threshold: float, *, strict: bool = False) -> Tensor:
    """Two-stage matching on ``iou [B, G, A]`` (invalid ground-truth rows hold -1).

    Returns ``[B, A]`` int64: the assigned ground-truth index or -1. ``strict`` makes the
    threshold stage use ``>`` (MXNet) instead of ``>=`` (D2L).
    """
    b, g, a = iou.shape
    assigned = torch.full((b, a), -1, dtype=torch.long, device=iou.device)
    if a == 0 or g == 0:
        return assigned
    # Stage 2 first (stage 1 overrides it): best ground truth of each anchor.
    best_iou, best_gt = iou.max(dim=1)  # [B, A]
    hit = (best_iou > iou_threshold) if strict else (best_iou >= iou_threshold)
    hit &= best_iou > 0
    assigned = torch.where(hit, best_gt, assigned)

    # Stage 1: greedy bipartite, all images at once. Keep each ground truth's best IoU and
    # anchor; taking an anchor only invalidates the ground truths whose best was that anchor.
    work = iou.clone()
    gt_max, gt_arg = work.max(dim=2)  # [B, G]
    g_idx = torch.arange(g, device=iou.device)
    big = a * g
    b_all = torch.arange(b, device=iou.device)
    for _ in range(min(a, g)):
        m = gt_max.amax(dim=1)  # [B]
        active = m > 0
        if not bool(active.any()):
            break
        # Global max with row-major (anchor, gt) tie-break: smallest anchor, then smallest gt.
        key = torch.where(gt_max == m[:, None], gt_arg * g + g_idx, big)  # [B, G]
        k = key.amin(dim=1)  # [B]
        bi = b_all[active]
        a_star, g_star = k[active] // g, k[active] % g
        assigned[bi, a_star] = g_star
        work[bi, :, a_star] = -1.0
        gt_max[bi, g_star] = -2.0
        stale = (gt_arg[bi] == a_star[:, None]) & (gt_max[bi] > -2.0)  # [b', G]
        if bool(stale.any()):
            sb, sg = stale.nonzero().unbind(1)
            sb = bi[sb]
            vals, args = work[sb, sg, :].max(dim=1)  # [S]
            gt_max[sb, sg] = vals
            gt_arg[sb, sg] = args
    return assigned


def _class_targets(classes: Tensor, assigned: Tensor) -> Tensor:
    """``classes [B, G]`` and ``assigned [B, A]`` -> ``[B, A]`` int64: class + 1, or 0 for background."""
    if classes.shape[1] == 0:
        return torch.zeros_like(assigned)
    cls = classes.long().gather(1, assigned.clamp(min=0))  # [B, A]
    return torch.where(assigned >= 0, cls + 1, torch.zeros_like(cls))


def match_anchors(anchors: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Assigns ground-truth boxes to anchors (see the module docstring).

    Args:
        anchors (Tensor[A, 4]): xyxy.
        gt_boxes (Tensor[G, 4]): xyxy, same coordinate system as ``anchors``.
        iou_threshold (float): stage-2 threshold; an anchor with best IoU >= this (and > 0) is
            assigned.

    Returns:
        Tensor[A]: int64, the index of the ground-truth box of each anchor, or -1.
    """
    check_boxes(anchors, "anchors")
    check_boxes(gt_boxes, "gt_boxes")
    check_same_device("anchors", anchors, "gt_boxes", gt_boxes)
    t = check_number(iou_threshold, "iou_threshold", low=0, high=1)
    dtype = torch.promote_types(anchors.dtype, gt_boxes.dtype)
    iou = _batched_iou(anchors.to(dtype), gt_boxes.to(dtype)[None])  # [1, G, A]
    return _match(iou, t)[0]


def hard_negative_mining(
    cls_logits: Tensor,
    class_labels: Tensor,
    negative_mining_ratio: float = 3.0,
    *,
    eligible: Tensor | None = None,
    min_negative_samples: int = 0,
) -> Tensor:
    """Keeps the hardest negatives and marks the other background anchors ignored (-1), as in SSD.

    Negatives are ranked by their background cross-entropy ``-log softmax(logits)[0]`` (highest
    first; ties to the lower anchor index). Each image keeps
    ``max(min_negative_samples, ratio * num_positives)`` of them, at most the number eligible.

    Args:
        cls_logits (Tensor[B, A, C + 1]): class logits, background at index 0.
        class_labels (Tensor[B, A]): int64, 0 background, > 0 object, -1 already ignored.
        negative_mining_ratio (float): negatives per positive, >= 0.
        eligible (Tensor[B, A], optional): bool, which background anchors may be negatives.
        min_negative_samples (int): minimum negatives per image.

    Returns:
        Tensor[B, A]: the labels with the anchors left out set to -1.
    """
    check_floating(cls_logits, "cls_logits")
    check_shape(class_labels, "class_labels", (None, None), "[B, A]")
    b, a = class_labels.shape
    check_shape(cls_logits, "cls_logits", (b, a, None), f"[B, A, C + 1] = [{b}, {a}, C + 1]")
    if cls_logits.shape[2] < 2:
        raise ValueError(f"cls_logits must have at least 2 classes (background + 1), got {cls_logits.shape[2]}")
    ratio = check_number(negative_mining_ratio, "negative_mining_ratio", low=0)
    min_neg = int(check_number(min_negative_samples, "min_negative_samples", low=0))
    with torch.no_grad():
        loss = torch.logsumexp(cls_logits.float(), dim=2) - cls_logits[..., 0].float()  # [B, A]
        cand = class_labels == 0
        if eligible is not None:
            cand &= eligible
        num_pos = (class_labels > 0).sum(dim=1)  # [B]
        k = torch.clamp((num_pos.double() * ratio).floor().long(), min=min_neg)
        k = torch.minimum(k, cand.sum(dim=1))  # [B]
        loss = torch.where(cand, loss, torch.tensor(-float("inf"), device=loss.device))
        order = torch.sort(loss, dim=1, descending=True, stable=True).indices  # [B, A]
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(a, device=order.device).expand(b, a))
        chosen = cand & (rank < k[:, None])
    return torch.where((class_labels == 0) & ~chosen, torch.full_like(class_labels, -1), class_labels)


def multibox_target(
    anchors: Tensor,
    labels: Tensor,
    *,
    iou_threshold: float = 0.5,
    means: Sequence[float] = DEFAULT_MEANS,
    stds: Sequence[float] = DEFAULT_STDS,
    cls_preds: Tensor | None = None,
    negative_mining_ratio: float | None = None,
    negative_mining_threshold: float = 0.5,
    min_negative_samples: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Labels anchors with classes and offsets for a batch (D2L ``multibox_target``).

    Args:
        anchors (Tensor[A, 4] or Tensor[1, A, 4]): xyxy (normalized or pixels, as ``labels``).
        labels (Tensor[B, G, 5]): rows ``(class, x1, y1, x2, y2)``; rows with class -1 (any
            negative class) are padding and ignored wherever they appear. ``G`` may be 0.
        iou_threshold (float): stage-2 matching threshold (:func:`match_anchors`).
        means, stds (4 floats): offset normalisation (:func:`pixbox.ops.encode_boxes`).
        cls_preds (Tensor[B, A, C + 1], optional): class logits, needed for hard negative mining.
        negative_mining_ratio (float, optional): if given, keep ``ratio`` negatives per positive
            (hardest first, see :func:`hard_negative_mining`) and mark the other background
            anchors -1 (ignored).
        negative_mining_threshold (float): with mining, only anchors whose best IoU is below this
            may be negatives; the others are ignored.
        min_negative_samples (int): with mining, the minimum negatives per image.

    Returns:
        tuple:
        - bbox_offset (Tensor[B, 4A]): offsets of assigned anchors, 0 elsewhere.
        - bbox_mask (Tensor[B, 4A]): 1 for assigned anchors' offsets, 0 elsewhere.
        - class_labels (Tensor[B, A]): int64; 0 background, ``class + 1`` for an assigned
          anchor, -1 ignored (only with mining).
    """
    check_tensor(anchors, "anchors")
    if anchors.dim() == 3:
        if anchors.shape[0] != 1:
            raise ValueError(f"anchors must have shape [A, 4] or [1, A, 4], got {tuple(anchors.shape)}")
        anchors = anchors[0]
    check_boxes(anchors, "anchors", well_formed=False)
    check_tensor(labels, "labels")
    check_shape(labels, "labels", (None, None, 5), "[B, G, 5] with rows (class, x1, y1, x2, y2)")
    check_same_device("anchors", anchors, "labels", labels)
    t = check_number(iou_threshold, "iou_threshold", low=0, high=1)
    means, stds = _check_means_stds(means, stds)
    b, g, _ = labels.shape
    a = anchors.shape[0]
    dtype = anchors.dtype
    labels = labels.to(dtype)
    valid = labels[..., 0] >= 0  # [B, G]
    gt = labels[..., 1:]  # [B, G, 4]
    bad = valid & ((gt[..., 2] < gt[..., 0]) | (gt[..., 3] < gt[..., 1]) | torch.isnan(gt).any(-1))
    if bool(bad.any()):
        bi, gi = bad.nonzero()[0].tolist()
        raise ValueError(f"labels[{bi}, {gi}] is not a well-formed box (x1 <= x2, y1 <= y2): {labels[bi, gi].tolist()}")

    iou = _batched_iou(anchors, gt)  # [B, G, A]
    iou.masked_fill_(~valid[:, :, None], -1.0)
    assigned = _match(iou, t)  # [B, A]
    pos = assigned >= 0  # [B, A]

    class_labels = _class_targets(labels[..., 0], assigned)

    offsets = anchors.new_zeros(b, a, 4)
    if bool(pos.any()):
        pb, pa = pos.nonzero().unbind(1)
        boxes = gt[pb, assigned[pb, pa]]  # [P, 4]
        offsets[pb, pa] = _encode(anchors[pa], boxes, means, stds)
    mask = pos[..., None].expand(b, a, 4).to(dtype)

    if negative_mining_ratio is not None:
        if cls_preds is None:
            raise ValueError("cls_preds is required when negative_mining_ratio is given")
        check_number(negative_mining_threshold, "negative_mining_threshold", low=0)
        best = iou.amax(dim=1).clamp(min=0) if g else iou.new_zeros(b, a)  # [B, A]; padding rows hold -1
        class_labels = hard_negative_mining(
            cls_preds, class_labels, negative_mining_ratio,
            eligible=best < negative_mining_threshold, min_negative_samples=min_negative_samples,
        )
    elif cls_preds is not None:
        raise ValueError("cls_preds is only used for hard negative mining; pass negative_mining_ratio too")
    return offsets.reshape(b, 4 * a), mask.reshape(b, 4 * a), class_labels
