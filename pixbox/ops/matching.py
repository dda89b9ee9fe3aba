"""Matching predictions to ground-truth boxes, balanced sampling, and SSD training targets.

One matcher and one sampler serve every detector (torchvision's and detectron2's ``Matcher`` and
``BalancedPositiveNegativeSampler``):

- :func:`match_by_iou` (and :class:`Matcher`, which stores its configuration) turns an IoU matrix
  ``[G, N]`` (ground truth x predictions) into one value per prediction: the index of its
  ground-truth box, :data:`BACKGROUND` (-1, best IoU < ``bg_iou_threshold``) or :data:`IGNORED`
  (-2, in between). Optional low-quality matches then match more predictions:

  * ``True`` (Faster R-CNN, torchvision, detectron2): for every ground-truth box, all the
    predictions whose IoU with it equals its highest IoU (when > 0), each to its own best box;
  * ``"bipartite"`` (SSD, D2L's ``assign_anchor_to_bbox``): greedy one-to-one pairs; repeatedly
    the largest IoU left (> 0) assigns that prediction to that box and removes both. Ties go to
    the lower prediction index, then the lower ground-truth index.

- :func:`sample_balanced` draws at most ``batch_size`` labelled samples, at most
  ``positive_fraction`` of them positive (the RPN's anchors, the RoI head's proposals).

SSD labelling uses the bipartite matcher with one threshold (:func:`match_anchors`), plus D2L's
rule that an anchor that overlaps no ground truth is never assigned (it matters only at
``iou_threshold`` 0). :func:`multibox_target` labels a whole batch at once (no Python loop over
images), encodes offsets only where an anchor is assigned, and optionally mines hard negatives.
"""

from __future__ import annotations

import functools
import math
from typing import Literal, Sequence, Union

import torch
from torch import Tensor

from pixbox._checks import (
    check_boxes,
    check_floating,
    check_number,
    check_same_device,
    check_shape,
    check_tensor,
)
from pixbox.ops.coder import DEFAULT_MEANS, DEFAULT_STDS, _check_means_stds, _encode

__all__ = [
    "BACKGROUND",
    "IGNORED",
    "Matcher",
    "hard_negative_mining",
    "match_anchors",
    "match_by_iou",
    "multibox_target",
    "sample_balanced",
]

#: :func:`match_by_iou` value of a prediction whose best IoU is below ``bg_iou_threshold``.
BACKGROUND = -1
#: :func:`match_by_iou` value of a prediction between the two thresholds (neither used nor penalised).
IGNORED = -2

LowQualityMatches = Union[bool, Literal["bipartite"]]


def _batched_iou(anchors: Tensor, gt: Tensor) -> Tensor:
    """IoU of each image's boxes ``[B, G, 4]`` with anchors ``[A, 4]`` -> ``[B, G, A]``.

    Anchors are the long, innermost axis so every broadcast runs over contiguous memory, and
    images are processed a few at a time so the temporaries stay in cache. Matching needs no
    gradient: inputs that require grad are read detached (the in-place arithmetic would refuse
    them).
    """
    anchors, gt = anchors.detach(), gt.detach()
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


# ---------------------------------------------------------------------------------------------
# The matcher


def _check_iou_thresholds(fg_iou_threshold, bg_iou_threshold) -> tuple[float, float]:
    fg = float(check_number(fg_iou_threshold, "fg_iou_threshold", low=0, high=1))
    if bg_iou_threshold is None:
        return fg, fg
    bg = float(check_number(bg_iou_threshold, "bg_iou_threshold", low=0, high=1))
    if bg > fg:
        raise ValueError(f"bg_iou_threshold must be <= fg_iou_threshold ({fg}), got {bg}")
    return fg, bg


def _check_low_quality(value) -> LowQualityMatches:
    if value is True or value is False or value == "bipartite":
        return value
    raise ValueError(f"allow_low_quality_matches must be False, True or 'bipartite', got {value!r}")


def _match_by_iou(iou: Tensor, fg: float, bg: float, low_quality: LowQualityMatches) -> Tensor:
    """Unchecked :func:`match_by_iou` on ``iou [B, G, N]`` -> ``[B, N]`` int64."""
    b, g, n = iou.shape
    if g == 0 or n == 0:
        return torch.full((b, n), BACKGROUND, dtype=torch.long, device=iou.device)
    best_iou, best_gt = iou.max(dim=1)  # [B, N], the first best box on ties
    # A NaN IoU compares False both ways: ignored, never matched.
    matches = torch.where(best_iou >= fg, best_gt, torch.full_like(best_gt, IGNORED))  # [B, N]
    matches.masked_fill_(best_iou < bg, BACKGROUND)
    if low_quality == "bipartite":
        _bipartite_matches(iou, matches)
    elif low_quality:
        gt_best = iou.amax(dim=2, keepdim=True)  # [B, G, 1]
        low = ((iou == gt_best) & (gt_best > 0)).any(dim=1)  # [B, N]
        matches = torch.where(low, best_gt, matches)
    return matches


def _bipartite_matches(iou: Tensor, matches: Tensor) -> None:
    """Greedy one-to-one pairs of ``iou [B, G, N]`` written into ``matches [B, N]`` in place.

    All images at once, ``min(N, G)`` steps. Each ground truth keeps its best IoU and prediction;
    taking a prediction only invalidates the ground truths whose best was that prediction, which
    are found with the step's one host read (a ``nonzero``). Images with nothing left to match
    (or a NaN IoU) go through the steps unchanged, so no other host read is needed.
    """
    b, g, n = iou.shape
    work = iou.clone()
    gt_max, gt_arg = work.max(dim=2)  # [B, G]
    g_idx = torch.arange(g, device=iou.device)
    big = n * g
    rows = torch.arange(b, device=iou.device)
    for _ in range(min(n, g)):
        m = gt_max.amax(dim=1)  # [B]
        active = m > 0  # False for NaN
        # Global max with row-major (prediction, gt) tie-break: smallest prediction, then smallest gt.
        key = torch.where(gt_max == m[:, None], gt_arg * g + g_idx, big)  # [B, G]
        k = key.amin(dim=1)  # [B]
        n_star = torch.where(active, k // g, 0)  # inactive images: position 0, written back unchanged
        g_star = torch.where(active, k % g, 0)
        matches[rows, n_star] = torch.where(active, g_star, matches[rows, n_star])
        work[rows, :, n_star] = torch.where(active[:, None], -1.0, work[rows, :, n_star])  # [B, G]
        gt_max[rows, g_star] = torch.where(active, -2.0, gt_max[rows, g_star])
        stale = (gt_arg == n_star[:, None]) & (gt_max > -2.0) & active[:, None]  # [B, G]
        sb, sg = stale.nonzero().unbind(1)
        if sb.numel():
            vals, args = work[sb, sg, :].max(dim=1)  # [S]
            gt_max[sb, sg] = vals
            gt_arg[sb, sg] = args


def match_by_iou(
    iou: Tensor,
    fg_iou_threshold: float,
    bg_iou_threshold: float | None = None,
    *,
    allow_low_quality_matches: LowQualityMatches = False,
) -> Tensor:
    """Matches predictions (anchors, proposals) to ground-truth boxes by IoU (see the module docstring).

    A prediction whose best IoU is >= ``fg_iou_threshold`` is matched to that box (the first
    one on ties), one below ``bg_iou_threshold`` is :data:`BACKGROUND`, one in between (or with
    a NaN IoU) is :data:`IGNORED`. Low-quality matches are added on top.

    Args:
        iou (Tensor[G, N] or Tensor[B, G, N]): float IoU of each ground-truth box (rows) with each
            prediction (columns), optionally for ``B`` images at once. Negative values (e.g. -1
            in the rows of padding boxes) never match. ``G`` and ``N`` may be 0.
        fg_iou_threshold (float): best IoU >= this is a match, in [0, 1]. At 0 every prediction
            matches, even one that overlaps nothing (as torchvision's ``Matcher``).
        bg_iou_threshold (float, optional): best IoU < this is background, in
            [0, ``fg_iou_threshold``]; defaults to ``fg_iou_threshold`` (nothing ignored).
        allow_low_quality_matches (bool or "bipartite"): ``True`` also matches, for every box,
            all predictions whose IoU with it equals its highest IoU (when > 0), each to its own
            best box; ``"bipartite"`` also adds greedy one-to-one pairs (SSD); ``False`` adds none.

    Returns:
        Tensor[N] or Tensor[B, N]: int64 on ``iou``'s device: the matched box index in
        ``[0, G)``, :data:`BACKGROUND` (-1) or :data:`IGNORED` (-2).

    Example:
        >>> iou = torch.tensor([[0.9, 0.5, 0.2, 0.0], [0.1, 0.6, 0.0, 0.3]])
        >>> match_by_iou(iou, 0.7, 0.3).tolist()
        [0, -2, -1, -2]
        >>> match_by_iou(iou, 0.7, 0.3, allow_low_quality_matches=True).tolist()
        [0, 1, -1, -2]
    """
    check_floating(iou, "iou")
    if iou.dim() not in (2, 3):
        raise ValueError(f"iou must have shape [G, N] or [B, G, N], got {tuple(iou.shape)}")
    fg, bg = _check_iou_thresholds(fg_iou_threshold, bg_iou_threshold)
    low_quality = _check_low_quality(allow_low_quality_matches)
    if iou.dim() == 2:
        return _match_by_iou(iou[None], fg, bg, low_quality)[0]
    return _match_by_iou(iou, fg, bg, low_quality)


class Matcher:
    """Stores a matching configuration and calls :func:`match_by_iou` (torchvision's ``Matcher``).

    Args:
        fg_iou_threshold, bg_iou_threshold, allow_low_quality_matches: as in :func:`match_by_iou`.

    Example:
        >>> matcher = Matcher(0.7, 0.3, allow_low_quality_matches=True)  # Faster R-CNN's RPN
        >>> matcher(torch.tensor([[0.9, 0.5, 0.2]])).tolist()
        [0, -2, -1]
    """

    #: torchvision's names for :data:`BACKGROUND` and :data:`IGNORED`.
    BELOW_LOW_THRESHOLD = BACKGROUND
    BETWEEN_THRESHOLDS = IGNORED

    def __init__(
        self,
        fg_iou_threshold: float,
        bg_iou_threshold: float | None = None,
        *,
        allow_low_quality_matches: LowQualityMatches = False,
    ) -> None:
        self.fg_iou_threshold, self.bg_iou_threshold = _check_iou_thresholds(fg_iou_threshold, bg_iou_threshold)
        self.allow_low_quality_matches = _check_low_quality(allow_low_quality_matches)

    def __call__(self, iou: Tensor) -> Tensor:
        """``iou [G, N]`` or ``[B, G, N]`` -> ``[N]`` or ``[B, N]`` int64 (:func:`match_by_iou`)."""
        return match_by_iou(iou, self.fg_iou_threshold, self.bg_iou_threshold,
                            allow_low_quality_matches=self.allow_low_quality_matches)

    def __repr__(self) -> str:
        return (f"Matcher(fg_iou_threshold={self.fg_iou_threshold}, bg_iou_threshold={self.bg_iou_threshold}, "
                f"allow_low_quality_matches={self.allow_low_quality_matches!r})")


# ---------------------------------------------------------------------------------------------
# The sampler


def _randperm(n: int, device: torch.device, generator: torch.Generator | None) -> Tensor:
    if generator is None:
        return torch.randperm(n, device=device)
    return torch.randperm(n, generator=generator, device=generator.device).to(device)


def sample_balanced(
    labels: Tensor,
    batch_size: int,
    positive_fraction: float,
    *,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Random positive and negative samples, at most ``positive_fraction`` of them positive.

    Takes ``min(#positives, int(batch_size * positive_fraction))`` positives and fills the rest
    of ``batch_size`` with negatives (as many as there are), each drawn uniformly without
    replacement with ``torch.randperm`` (positives first, then negatives).

    Args:
        labels (Tensor[N]): 1 positive, 0 negative, anything else (e.g. -1) ignored.
        batch_size (int): samples at most, >= 1.
        positive_fraction (float): largest share of positives, in [0, 1].
        generator (torch.Generator, optional): the random source (drawn on its own device);
            default torch's global one, reproducible under ``torch.manual_seed``.

    Returns:
        tuple[Tensor[P], Tensor[Q]]: int64 indices into ``labels`` of the sampled positives and
        negatives, in random order, on ``labels``' device; ``P + Q <= batch_size``.
    """
    check_shape(labels, "labels", (None,), "[N]")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int, got {type(batch_size).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    frac = check_number(positive_fraction, "positive_fraction", low=0, high=1)
    (pos,), (neg,) = _sample_rows(labels[None], batch_size, frac, generator)
    return pos, neg


def _sample_rows(labels: Tensor, batch_size: int, frac: float,
                 generator: torch.Generator | None = None) -> tuple[list[Tensor], list[Tensor]]:
    """:func:`sample_balanced` on each row of ``labels [B, N]`` in turn (the same draws), with one
    host read for all rows (how many positives and negatives each has) rather than two ``nonzero``
    per row: the ``r``-th positive of a row is where its running count of positives reaches ``r + 1``.
    Returns the rows' positive and negative indices."""
    b, n = labels.shape
    running = torch.stack([labels == 1, labels == 0]).cumsum(2)  # [2, B, N]
    counts = running[:, :, -1].tolist() if n else [[0] * b, [0] * b]
    out_pos, out_neg = [], []
    for i in range(b):
        num_pos = min(counts[0][i], int(batch_size * frac))
        num_neg = min(counts[1][i], batch_size - num_pos)
        for out, j, count, num in ((out_pos, 0, counts[0][i], num_pos), (out_neg, 1, counts[1][i], num_neg)):
            rank = _randperm(count, labels.device, generator)[:num]
            out.append(torch.searchsorted(running[j, i], rank + 1))
    return out_pos, out_neg


# ---------------------------------------------------------------------------------------------
# SSD labelling


@functools.lru_cache(maxsize=64)
def _match_threshold(t: float, dtype: torch.dtype, strict: bool) -> tuple[float, bool]:
    """SSD's threshold as compared in the IoU's dtype, and whether it admits IoU 0 (host arithmetic,
    cached: no device work)."""
    t_cast = torch.tensor(t, dtype=dtype)  # how torch compares the IoU with t
    if strict and 0 < t < math.inf:
        # best > t is best >= the next value after t in the IoU's dtype.
        t = float(torch.nextafter(t_cast, torch.tensor(math.inf, dtype=dtype)))
    return t, not bool(t_cast > 0)


def _match(iou: Tensor, iou_threshold: float, *, strict: bool = False) -> Tensor:
    """SSD's assignment on ``iou [B, G, A]`` (rows that don't count hold -1): ``[B, A]`` int64.

    :func:`match_by_iou` with ``fg = bg = iou_threshold`` and bipartite matches, plus D2L's rule
    that an anchor overlapping no ground truth is never assigned. Returns the assigned ground
    truth index or -1. ``strict`` makes the threshold ``>`` (MXNet) instead of ``>=`` (D2L).
    """
    t, admits_zero = _match_threshold(float(iou_threshold), iou.dtype, strict)
    matches = _match_by_iou(iou, t, t, "bipartite")
    if admits_zero and iou.shape[1] > 0:
        # The threshold admits IoU 0: unassign the anchors without overlap (bipartite pairs have
        # IoU > 0, so they stay).
        matches.masked_fill_(iou.amax(dim=1) <= 0, BACKGROUND)
    return matches.clamp_(min=BACKGROUND)  # NaN IoU (ignored) is unassigned too


def _class_targets(classes: Tensor, assigned: Tensor) -> Tensor:
    """``classes [B, G]`` and ``assigned [B, A]`` -> ``[B, A]`` int64: class + 1, or 0 for background."""
    if classes.shape[1] == 0:
        return torch.zeros_like(assigned)
    cls = classes.long().gather(1, assigned.clamp(min=0))  # [B, A]
    return torch.where(assigned >= 0, cls + 1, torch.zeros_like(cls))


def match_anchors(anchors: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Assigns ground-truth boxes to anchors as SSD and D2L's ``assign_anchor_to_bbox`` do.

    Two stages, :func:`match_by_iou` with ``allow_low_quality_matches="bipartite"``:

    1. greedy bipartite: repeatedly take the largest IoU left in the anchor x ground-truth
       matrix (> 0), assign that pair and remove its row and column; ties go to the lower
       anchor index, then the lower ground-truth index;
    2. every other anchor whose best IoU is >= ``iou_threshold`` (and > 0) gets that box.

    Args:
        anchors (Tensor[A, 4]): xyxy.
        gt_boxes (Tensor[G, 4]): xyxy, same coordinate system as ``anchors``.
        iou_threshold (float): stage-2 threshold, in [0, 1].

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
        loss = torch.where(cand, loss, -math.inf)
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
        iou_threshold (float): stage-2 matching threshold, in [0, 1] (:func:`match_anchors`).
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

        Targets carry no gradient: anchors (or labels) that require grad are read detached.
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
    # Targets carry no gradient, even from anchors or labels that require grad.
    anchors, labels = anchors.detach(), labels.detach()
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
    pb, pa = pos.nonzero().unbind(1)  # the positives (maybe none)
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
