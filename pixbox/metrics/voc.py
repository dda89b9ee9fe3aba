"""Pascal VOC average precision: greedy matching at one IoU threshold, 11-point and all-point AP.

:func:`voc_match` matches each class's detections (highest score first) to unmatched ground
truth at IoU >= ``iou_threshold``; ``difficult`` and crowd boxes are ignored (neither true nor
false positives). :func:`voc_ap` integrates a precision-recall curve the VOC2007 way (11 points)
or the VOC2010+ way (area under the precision envelope). :class:`~pixbox.metrics.detection.
DetectionEvaluator` reports both next to the COCO numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_number
from pixbox.metrics._detection_inputs import _check_num_classes, _check_pairs, _check_prediction, _check_target
from pixbox.ops.boxes import box_iou

__all__ = ["voc_ap", "voc_match"]


# ----------------------------------------------------------------------------------------------
# VOC: AP from a precision-recall curve, and matching


def _curve(values, name: str) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().double().numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 1-D sequence of numbers, got {type(values).__name__}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if not np.isfinite(array).all() or (array < 0).any() or (array > 1).any():
        raise ValueError(f"{name} must hold finite values in [0, 1], got min {array.min()} and max {array.max()}")
    return array


def voc_ap(recall, precision, *, use_07_metric: bool) -> float:
    """Average precision of a precision-recall curve, by the Pascal VOC devkit's two definitions.

    - ``use_07_metric=True`` (VOC2007): the mean, over the 11 recall levels
      ``t = 0, 0.1, ..., 1``, of the highest precision at recall ``>= t`` (0 when the curve
      never reaches ``t``). The levels are exactly ``k / 10``; the Python devkit's
      ``np.arange(0, 1.1, 0.1)`` makes 0.3, 0.6 and 0.7 a hair larger, which only matters for
      a recall of exactly 0.3, 0.6 or 0.7.
    - ``use_07_metric=False`` (VOC2010 and later): the area under the precision envelope (the
      highest precision at any larger recall), with the curve extended by ``(0, 0)`` on the left
      and ``(1, 0)`` on the right: ``sum((r[i + 1] - r[i]) * envelope[i + 1])`` over the points
      where recall changes.

    Args:
        recall (sequence or Tensor[D]): recall after each detection in score order, in [0, 1],
            non-decreasing.
        precision (sequence or Tensor[D]): precision after each detection, in [0, 1].
        use_07_metric (bool): which definition, as above.

    Returns:
        float: AP in [0, 1]; 0 for an empty curve.

    Example:
        >>> voc_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3], use_07_metric=False)
        0.8333333333333333
    """
    if not isinstance(use_07_metric, (bool, np.bool_)):
        raise TypeError(f"use_07_metric must be a bool, got {type(use_07_metric).__name__}")
    rec = _curve(recall, "recall")
    prec = _curve(precision, "precision")
    if len(rec) != len(prec):
        raise ValueError(f"recall and precision must have the same length, got {len(rec)} and {len(prec)}")
    if (np.diff(rec) < 0).any():
        i = int(np.flatnonzero(np.diff(rec) < 0)[0])
        raise ValueError(f"recall must be non-decreasing, got {rec[i]} then {rec[i + 1]} at index {i}")
    if len(rec) == 0:
        return 0.0
    if use_07_metric:
        # Summed, then divided once: 11 precisions of 1 give exactly 1.
        total = 0.0
        for k in range(11):
            reached = prec[rec >= k / 10]
            total += float(reached.max()) if reached.size else 0.0
        return total / 11
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mpre = np.concatenate([[0.0], prec, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # envelope: best precision at this recall or beyond
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def _match_image(boxes: np.ndarray, gt_boxes: np.ndarray, gt_ignore: np.ndarray, iou_threshold: float) -> np.ndarray:
    """VOC status of one image's detections of one class, given in score order.

    Returns int8 ``[D]``: 1 true positive, 0 false positive, -1 ignored. Each detection goes to
    the ground truth box it overlaps most (the first on ties); it is a true positive when that
    IoU is ``>= iou_threshold``, the box is not ignored and no higher-scoring detection took it.
    A detection whose best box is taken is a false positive (it does not fall back to another).
    """
    status = np.zeros(len(boxes), np.int8)
    if len(boxes) == 0 or len(gt_boxes) == 0:
        return status
    iou = box_iou(torch.from_numpy(boxes), torch.from_numpy(gt_boxes)).numpy()  # [D, G]
    best = iou.argmax(axis=1)  # [D]
    hit = iou[np.arange(len(boxes)), best] >= iou_threshold
    ignored = hit & gt_ignore[best]
    status[ignored] = -1
    candidates = np.flatnonzero(hit & ~ignored)  # in score order
    # Detections never fall back to another box, so the greedy pass reduces to: the first
    # (highest-scoring) candidate of each box is its true positive.
    _, first = np.unique(best[candidates], return_index=True)
    status[candidates[first]] = 1
    return status


def _voc_match(preds: list[dict], targets: list[dict], num_classes: int, iou_threshold: float) -> list[dict]:
    results = []
    for c in range(num_classes):
        scores, status = [], []
        num_pos = 0
        for p, t in zip(preds, targets):
            pm, tm = p["labels"] == c, t["labels"] == c
            ignore = (t["difficult"] | t["iscrowd"])[tm]
            num_pos += int((~ignore).sum())
            s = p["scores"][pm]
            order = np.argsort(-s, kind="stable")
            scores.append(s[order])
            status.append(_match_image(p["boxes"][pm][order], t["boxes"][tm], ignore, iou_threshold))
        s, st = np.concatenate(scores), np.concatenate(status)
        order = np.argsort(-s, kind="stable")  # ties: earlier image first, then input order
        s, st = s[order], st[order]
        keep = st >= 0
        s, tp = s[keep], st[keep] == 1
        ctp = np.cumsum(tp)
        cfp = np.cumsum(~tp)
        recall = ctp / num_pos if num_pos > 0 else np.full(len(tp), np.nan)
        precision = ctp / np.maximum(ctp + cfp, 1)
        results.append({"scores": s, "tp": tp, "num_pos": num_pos, "recall": recall, "precision": precision})
    return results


def voc_match(predictions: list[dict], targets: list[dict], num_classes: int, *,
              iou_threshold: float = 0.5) -> list[dict[str, Any]]:
    """Matches detections to ground truth the Pascal VOC way and gives each class's PR curve.

    Per class, across all images, detections are taken by decreasing score (ties: earlier
    image, then input order). Each goes to the ground truth box of its image and class with
    the highest IoU; it is a true positive when that IoU is ``>= iou_threshold`` and the box is
    not yet taken, a false positive otherwise (also when its best box is taken: it does not
    fall back to another box, as in the devkit). A detection whose best box is ``difficult`` or
    crowd is ignored: neither true nor false positive, and left out of the curve. Ignored boxes
    do not count in the number of positives. Unlike the devkit, IoU is computed on continuous
    pixel coordinates (no ``+ 1`` on widths), as everywhere in pixbox.

    Args:
        predictions (list[dict]): one dict per image with ``boxes`` (Tensor[K, 4], xyxy pixels),
            ``scores`` (Tensor[K]) and ``labels`` (Tensor[K], int64 in ``[0, num_classes)``).
        targets (list[dict]): one dict per image with ``boxes`` (Tensor[N, 4], xyxy pixels),
            ``labels`` (Tensor[N], int64), optional ``iscrowd`` and ``difficult`` (Tensor[N], bool).
        num_classes (int): number of classes ``C``.
        iou_threshold (float): in [0, 1].

    Returns:
        list[dict]: per class ``c`` (index ``c``): ``scores`` (ndarray[D] float64, decreasing:
        the non-ignored detections), ``tp`` (ndarray[D] bool), ``num_pos`` (int, non-ignored
        ground truth boxes), ``recall`` and ``precision`` (ndarray[D] float64, after each
        detection; recall is NaN when ``num_pos`` is 0).
    """
    num_classes = _check_num_classes(num_classes)
    check_number(iou_threshold, "iou_threshold", low=0, high=1)
    _check_pairs(predictions, targets)
    preds = [_check_prediction(p, i, num_classes) for i, p in enumerate(predictions)]
    targs = [_check_target(t, i, num_classes) for i, t in enumerate(targets)]
    return _voc_match(preds, targs, num_classes, float(iou_threshold))
