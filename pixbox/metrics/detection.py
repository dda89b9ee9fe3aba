"""Detection metrics: COCO mAP (through pycocotools), VOC AP, PR curves and the D2L training metrics.

:class:`DetectionEvaluator` collects predictions and ground truth image by image, then
:meth:`~DetectionEvaluator.compute` reports:

- the COCO numbers (``map`` = AP@[.5:.95], ``map_50``, ``map_75``, ``map_small``/``medium``/
  ``large``, ``mar_1``/``10``/``100``, ``mar_small``/``medium``/``large``), computed by
  pycocotools' ``COCOeval``, the reference implementation, on COCO objects built in memory
  (boxes to ``xywh``, ``area = w * h``, ``iscrowd`` as given; its prints are silenced). COCO
  rules apply: at most 100 detections per image and class (the highest scoring), crowd boxes are
  ignored (a detection matching one is neither a true nor a false positive), and ``difficult``
  boxes count as ordinary objects;
- the Pascal VOC numbers at IoU 0.5 (``voc07_ap50``: the VOC2007 11-point AP, ``voc_ap50``: the
  VOC2010+ area under the precision envelope), from pixbox's own matching (see
  :func:`voc_match`): every detection is kept, and ``difficult`` and crowd boxes are ignored;
- ``per_class`` rows and ``pr_curves``, the raw precision-recall curves of the VOC matching.

Missing values are NaN, never -1: COCOeval reports -1 for a class without (non-crowd) ground
truth, or for an area range without ground truth; pixbox turns these into NaN. A class without
ground truth is left out of every mean, as COCO does, so its detections do not lower the mAP
(they are still reported in ``num_pred``). A class with ground truth but no detection has AP 0.

The D2L book's SSD training metrics (:func:`cls_eval`, :func:`bbox_eval`, :func:`class_error`,
:func:`bbox_mae`) keep the book's names and formulas.

Example:
    >>> evaluator = DetectionEvaluator(["cat", "dog"])
    >>> boxes = torch.tensor([[10.0, 10.0, 50.0, 60.0]])
    >>> evaluator.update([{"boxes": boxes, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}],
    ...                  [{"boxes": boxes, "labels": torch.tensor([0])}])
    >>> metrics = evaluator.compute()
    >>> round(metrics["map"], 12), metrics["voc_ap50"], metrics["per_class"][1]["ap"]
    (1.0, 1.0, nan)

COCOeval computes precision as ``tp / (tp + fp + eps)``, so perfect detections give a COCO
mAP of ``1 - 2.2e-16``, not exactly 1; the VOC numbers are exact.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_number, check_same_device, check_tensor
from pixbox.ops.boxes import box_iou

if TYPE_CHECKING:
    from pixbox.data.annotations import DetectionAnnotations

__all__ = [
    "DetectionEvaluator",
    "bbox_eval",
    "bbox_mae",
    "class_error",
    "cls_eval",
    "save_pr_curves",
    "summary_table",
    "targets_from_annotations",
    "voc_ap",
    "voc_match",
]

# COCOeval.stats, in order.
_COCO_STATS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large",
               "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large")


# ----------------------------------------------------------------------------------------------
# Input checks: prediction and target dicts to numpy arrays


def _to_numpy(value, name: str) -> np.ndarray:
    if isinstance(value, Tensor):
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(f"{name} must be a torch.Tensor (or numpy array), got {type(value).__name__}")


def _get(entry: dict, key: str, name: str):
    if key not in entry:
        raise ValueError(f"{name} is missing the key {key!r} (it has {sorted(map(str, entry))})")
    return entry[key]


def _boxes(value, name: str) -> np.ndarray:
    array = _to_numpy(value, name)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"{name} must have shape [N, 4] (xyxy pixels), got {tuple(array.shape)}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    bad = ~np.isfinite(array).all(axis=1) | (array[:, 2] < array[:, 0]) | (array[:, 3] < array[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite xyxy boxes with x1 <= x2 and y1 <= y2; "
                         f"row {i} is {array[i].tolist()}")
    return array


def _vector(value, name: str, n: int, kind: str) -> np.ndarray:
    array = _to_numpy(value, name)
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"{name} must have shape [{n}] (one entry per box), got {tuple(array.shape)}")
    if kind == "score":
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            raise ValueError(f"{name} must be finite, got {array[~np.isfinite(array)][0]} "
                             f"at index {int(np.flatnonzero(~np.isfinite(array))[0])}")
        return array
    if kind == "label":
        if array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{name} must be an integer tensor (int64 class indices), got dtype {array.dtype}")
        return array.astype(np.int64)
    # kind == "flag": bool, or integers 0/1
    if array.dtype != np.bool_:
        if not np.issubdtype(array.dtype, np.integer) or not np.isin(array, (0, 1)).all():
            raise TypeError(f"{name} must be a bool tensor, got dtype {array.dtype}")
    return array.astype(bool)


def _check_label_range(labels: np.ndarray, name: str, num_classes: int) -> None:
    bad = (labels < 0) | (labels >= num_classes)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be class indices in [0, {num_classes}) (indices into class_names), "
                         f"got {int(labels[i])} at index {i}")


def _check_pairs(predictions, targets) -> None:
    for value, name in ((predictions, "predictions"), (targets, "targets")):
        if isinstance(value, dict) or not isinstance(value, (list, tuple)):
            raise TypeError(f"{name} must be a list of dicts (one per image), got {type(value).__name__}")
    if len(predictions) != len(targets):
        raise ValueError(f"predictions and targets must have the same length (one dict per image), "
                         f"got {len(predictions)} predictions and {len(targets)} targets")


def _check_prediction(entry, i: int, num_classes: int) -> dict[str, np.ndarray]:
    name = f"predictions[{i}]"
    if not isinstance(entry, dict):
        raise TypeError(f"{name} must be a dict with 'boxes', 'scores' and 'labels', got {type(entry).__name__}")
    boxes = _boxes(_get(entry, "boxes", name), f"{name}['boxes']")
    n = len(boxes)
    scores = _vector(_get(entry, "scores", name), f"{name}['scores']", n, "score")
    labels = _vector(_get(entry, "labels", name), f"{name}['labels']", n, "label")
    _check_label_range(labels, f"{name}['labels']", num_classes)
    return {"boxes": boxes, "scores": scores, "labels": labels}


def _check_target(entry, i: int, num_classes: int) -> dict[str, np.ndarray]:
    name = f"targets[{i}]"
    if not isinstance(entry, dict):
        raise TypeError(f"{name} must be a dict with 'boxes' and 'labels', got {type(entry).__name__}")
    boxes = _boxes(_get(entry, "boxes", name), f"{name}['boxes']")
    n = len(boxes)
    labels = _vector(_get(entry, "labels", name), f"{name}['labels']", n, "label")
    _check_label_range(labels, f"{name}['labels']", num_classes)
    out = {"boxes": boxes, "labels": labels}
    for key in ("iscrowd", "difficult"):
        value = entry.get(key)
        out[key] = np.zeros(n, bool) if value is None else _vector(value, f"{name}[{key!r}]", n, "flag")
    return out


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return int(num_classes)


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


# ----------------------------------------------------------------------------------------------
# COCO, through pycocotools


def _xywh(box) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def _coco_eval(preds: list[dict], targets: list[dict], class_names: list[str]):
    """Runs COCOeval (bbox) on in-memory COCO objects; returns ``(stats, precision)``.

    Image ``i`` has id ``i + 1``, class ``c`` category id ``c + 1``; annotation ids start at 1
    (COCOeval treats a match with id 0 as no match).
    """
    from pycocotools.coco import COCO  # lazily: keeps ``import pixbox.metrics`` light
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1} for i in range(len(targets))]
    categories = [{"id": c + 1, "name": name} for c, name in enumerate(class_names)]
    annotations, detections = [], []
    for i, t in enumerate(targets):
        for box, label, crowd in zip(t["boxes"], t["labels"].tolist(), t["iscrowd"].tolist()):
            xywh = _xywh(box)
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": label + 1,
                                "bbox": xywh, "area": xywh[2] * xywh[3], "iscrowd": int(crowd)})
    for i, p in enumerate(preds):
        for box, label, score in zip(p["boxes"], p["labels"].tolist(), p["scores"].tolist()):
            detections.append({"image_id": i + 1, "category_id": label + 1, "bbox": _xywh(box), "score": score})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": categories}
        gt.createIndex()
        if detections:
            dt = gt.loadRes(detections)
        else:  # loadRes cannot take an empty list
            dt = COCO()
            dt.dataset = {"images": list(images), "annotations": [], "categories": categories}
            dt.createIndex()
        coco_eval = COCOeval(gt, dt, "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return np.asarray(coco_eval.stats, dtype=np.float64), coco_eval.eval["precision"]


def _nan_if_absent(value: float) -> float:
    return float("nan") if value < 0 else float(value)


def _mean_valid(values: np.ndarray) -> float:
    """COCO's mean over the entries that are not -1 (absent), NaN when there are none."""
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else float("nan")


# ----------------------------------------------------------------------------------------------
# The evaluator


class DetectionEvaluator:
    """Accumulates detections and ground truth over a dataset, then computes COCO and VOC metrics.

    Args:
        class_names (Sequence[str]): the ``C`` class names; labels index into them.

    Example:
        >>> evaluator = DetectionEvaluator(["square", "disc", "triangle"])
        >>> for images, targets in loader:  # doctest: +SKIP
        ...     evaluator.update(model.predict(images), targets)
        >>> metrics = evaluator.compute()  # doctest: +SKIP
        >>> print(summary_table(metrics))  # doctest: +SKIP
    """

    def __init__(self, class_names: Sequence[str]):
        if isinstance(class_names, str) or not isinstance(class_names, Sequence):
            raise TypeError(f"class_names must be a sequence of str, got {type(class_names).__name__}")
        names = list(class_names)
        if not names:
            raise ValueError("class_names must not be empty")
        for i, name in enumerate(names):
            if not isinstance(name, str):
                raise TypeError(f"class_names[{i}] must be a str, got {type(name).__name__}")
        if len(set(names)) != len(names):
            dup = sorted({c for c in names if names.count(c) > 1})
            raise ValueError(f"class_names must be unique, got duplicates {dup}")
        self.class_names: list[str] = names
        self._preds: list[dict[str, np.ndarray]] = []
        self._targets: list[dict[str, np.ndarray]] = []

    @property
    def num_images(self) -> int:
        """The number of images added since the last :meth:`reset`."""
        return len(self._targets)

    def reset(self) -> None:
        """Forgets every image added so far."""
        self._preds, self._targets = [], []

    def update(self, predictions: list[dict], targets: list[dict]) -> None:
        """Adds a batch of images: their detections and their ground truth.

        Tensors may be on any device (they are copied to the CPU); images with no detection or
        no ground truth box are fine. The whole batch is checked before anything is added.

        Args:
            predictions (list[dict]): one dict per image with ``boxes`` (Tensor[K, 4], xyxy
                pixels, ``x1 <= x2``, ``y1 <= y2``), ``scores`` (Tensor[K], float) and ``labels``
                (Tensor[K], int64 in ``[0, C)``). Other keys are ignored.
            targets (list[dict]): one dict per image, in the same order, with ``boxes``
                (Tensor[N, 4], xyxy pixels), ``labels`` (Tensor[N], int64 in ``[0, C)``), and
                optionally ``iscrowd`` (Tensor[N], bool: ignored by COCO and VOC) and
                ``difficult`` (Tensor[N], bool: ignored by VOC only). Other keys are ignored.
        """
        _check_pairs(predictions, targets)
        c = len(self.class_names)
        preds = [_check_prediction(p, i, c) for i, p in enumerate(predictions)]
        targs = [_check_target(t, i, c) for i, t in enumerate(targets)]
        self._preds.extend(preds)
        self._targets.extend(targs)

    def compute(self) -> dict[str, Any]:
        """Computes the metrics over every image added since the last :meth:`reset`.

        Returns:
            dict: with
            ``map``, ``map_50``, ``map_75``, ``map_small``, ``map_medium``, ``map_large``,
            ``mar_1``, ``mar_10``, ``mar_100``, ``mar_small``, ``mar_medium``, ``mar_large``
            (float: pycocotools' ``COCOeval.stats``, -1 replaced by NaN);
            ``voc07_ap50`` and ``voc_ap50`` (float: mean VOC AP at IoU 0.5 over the classes
            with ground truth, 11-point and all-points; NaN when no class has any);
            ``per_class`` (list of dicts, one per class in order: ``name``, ``ap`` (COCO
            AP@[.5:.95]), ``ap50`` (COCO AP@0.5), ``voc_ap50``, ``voc07_ap50`` (floats, NaN
            without ground truth), ``num_gt`` (ground truth boxes, crowd and difficult ones
            included) and ``num_pred`` (detections));
            ``pr_curves`` (dict class name -> dict with ``recall``, ``precision`` and
            ``scores``, ndarray[D] float64: the VOC matching's curve at IoU 0.5, one point
            per non-ignored detection in score order; recall is NaN without ground truth);
            ``num_images`` (int).

        Raises:
            RuntimeError: when no image was added.
        """
        if not self._targets:
            raise RuntimeError("DetectionEvaluator.compute() needs at least one image; call update() first")
        stats, precision = _coco_eval(self._preds, self._targets, self.class_names)  # precision [T, R, K, A, M]
        voc = _voc_match(self._preds, self._targets, len(self.class_names), 0.5)
        metrics: dict[str, Any] = {key: _nan_if_absent(v) for key, v in zip(_COCO_STATS, stats)}
        per_class, curves = [], {}
        for c, name in enumerate(self.class_names):
            v = voc[c]
            has_gt = v["num_pos"] > 0
            per_class.append({
                "name": name,
                "ap": _mean_valid(precision[:, :, c, 0, -1]),  # area "all", 100 detections
                "ap50": _mean_valid(precision[0, :, c, 0, -1]),
                "voc_ap50": voc_ap(v["recall"], v["precision"], use_07_metric=False) if has_gt else float("nan"),
                "voc07_ap50": voc_ap(v["recall"], v["precision"], use_07_metric=True) if has_gt else float("nan"),
                "num_gt": int(sum(int((t["labels"] == c).sum()) for t in self._targets)),
                "num_pred": int(sum(int((p["labels"] == c).sum()) for p in self._preds)),
            })
            curves[name] = {"recall": v["recall"], "precision": v["precision"], "scores": v["scores"]}
        for key in ("voc_ap50", "voc07_ap50"):
            values = [row[key] for row in per_class if not math.isnan(row[key])]
            metrics[key] = float(np.mean(values)) if values else float("nan")
        metrics["per_class"] = per_class
        metrics["pr_curves"] = curves
        metrics["num_images"] = len(self._targets)
        return metrics

    @staticmethod
    def summary_table(metrics: dict[str, Any]) -> str:
        """The same as the module function :func:`summary_table`."""
        return summary_table(metrics)

    @staticmethod
    def save_pr_curves(metrics: dict[str, Any], path: str | os.PathLike) -> Path:
        """The same as the module function :func:`save_pr_curves`."""
        return save_pr_curves(metrics, path)


# ----------------------------------------------------------------------------------------------
# Reports


def _check_metrics(metrics, keys: Sequence[str]) -> None:
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be the dict DetectionEvaluator.compute() returns, got {type(metrics).__name__}")
    missing = [k for k in keys if k not in metrics]
    if missing:
        raise ValueError(f"metrics must be the dict DetectionEvaluator.compute() returns; it lacks {missing}")


def _fmt(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3f}"


def summary_table(metrics: dict[str, Any]) -> str:
    """A plain-text report: one row per class, then the headline numbers.

    Args:
        metrics (dict): what :meth:`DetectionEvaluator.compute` returns.

    Returns:
        str: lines separated by ``"\\n"``; missing values (NaN) are shown as ``-``. Example::

            class       AP  AP50  VOC AP50  VOC07 AP50  #gt  #pred
            cat      0.712 0.950     0.948       0.909   12     30
            ...
            mAP@[.5:.95] 0.712  mAP@.5 0.950  mAP@.75 0.800
            ...
    """
    _check_metrics(metrics, ("per_class", "map", "map_50", "map_75", "voc_ap50", "voc07_ap50"))
    rows = metrics["per_class"]
    name_w = max([len("class")] + [len(str(r["name"])) for r in rows])
    header = (f"{'class':<{name_w}}  {'AP':>6}  {'AP50':>6}  {'VOC AP50':>8}  {'VOC07 AP50':>10}  "
              f"{'#gt':>6}  {'#pred':>6}")
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{str(r['name']):<{name_w}}  {_fmt(r['ap']):>6}  {_fmt(r['ap50']):>6}  "
                     f"{_fmt(r['voc_ap50']):>8}  {_fmt(r.get('voc07_ap50', float('nan'))):>10}  "
                     f"{r['num_gt']:>6}  {r['num_pred']:>6}")
    lines.append("-" * len(header))
    get = metrics.get
    lines.append(f"COCO  mAP@[.5:.95] {_fmt(get('map'))}  mAP@.5 {_fmt(get('map_50'))}  mAP@.75 {_fmt(get('map_75'))}")
    if "map_small" in metrics:
        lines.append(f"COCO  mAP small {_fmt(get('map_small'))}  medium {_fmt(get('map_medium'))}  "
                     f"large {_fmt(get('map_large'))}  mAR@100 {_fmt(get('mar_100', float('nan')))}")
    lines.append(f"VOC   mAP@.5 (all points) {_fmt(get('voc_ap50'))}  "
                 f"mAP@.5 (11 points, VOC07) {_fmt(get('voc07_ap50'))}")
    if "num_images" in metrics:
        lines.append(f"images: {metrics['num_images']}")
    return "\n".join(lines)


def save_pr_curves(metrics: dict[str, Any], path: str | os.PathLike) -> Path:
    """Plots every class's precision-recall curve at IoU 0.5 (VOC matching) into one PNG.

    Class ``c`` is drawn in ``pixbox.viz.PALETTE[c]``; its legend entry gives its VOC AP50, or
    says ``no gt`` for a class without ground truth (which draws no curve).

    Args:
        metrics (dict): what :meth:`DetectionEvaluator.compute` returns.
        path (str or PathLike): the ``.png`` file, written atomically.

    Returns:
        Path: ``path``.
    """
    from pixbox.plots import plot_curves

    _check_metrics(metrics, ("per_class", "pr_curves"))
    series = {}
    for row in metrics["per_class"]:
        curve = metrics["pr_curves"][row["name"]]
        ap = row["voc_ap50"]
        label = f"{row['name']} (no gt)" if math.isnan(ap) else f"{row['name']} AP50 {ap:.3f}"
        series[label] = (curve["recall"], curve["precision"])
    return plot_curves(series, path, title="Precision-recall (IoU 0.5)", xlabel="recall", ylabel="precision",
                       xlim=(0.0, 1.02), ylim=(0.0, 1.05))


def targets_from_annotations(annotations: DetectionAnnotations) -> list[dict[str, Tensor]]:
    """The ground truth of a :class:`~pixbox.data.annotations.DetectionAnnotations`, as target dicts.

    Args:
        annotations (DetectionAnnotations): one record per image.

    Returns:
        list[dict]: one dict per record, in order, with ``boxes`` (Tensor[N, 4] float64, xyxy
        pixels), ``labels`` (Tensor[N] int64), ``iscrowd`` and ``difficult`` (Tensor[N] bool),
        ready for :meth:`DetectionEvaluator.update`.
    """
    from pixbox.data.annotations import DetectionAnnotations  # lazily: pixbox.data is heavy to import

    if not isinstance(annotations, DetectionAnnotations):
        raise TypeError(f"annotations must be a DetectionAnnotations, got {type(annotations).__name__}")
    return [{"boxes": torch.from_numpy(np.array(r.boxes, dtype=np.float64).reshape(-1, 4)),
             "labels": torch.from_numpy(np.array(r.labels, dtype=np.int64)),
             "iscrowd": torch.from_numpy(np.array(r.iscrowd, dtype=bool)),
             "difficult": torch.from_numpy(np.array(r.difficult, dtype=bool))}
            for r in annotations.records]


# ----------------------------------------------------------------------------------------------
# The D2L book's SSD training metrics


def _check_cls(cls_preds, cls_labels) -> None:
    check_tensor(cls_preds, "cls_preds")
    check_tensor(cls_labels, "cls_labels")
    if cls_preds.dim() < 1 or not cls_preds.is_floating_point():
        raise ValueError(f"cls_preds must be a floating-point tensor [B, A, C + 1] of class scores, "
                         f"got dtype {cls_preds.dtype} and shape {tuple(cls_preds.shape)}")
    if tuple(cls_labels.shape) != tuple(cls_preds.shape[:-1]):
        raise ValueError(f"cls_labels must have shape cls_preds.shape[:-1] = {tuple(cls_preds.shape[:-1])} "
                         f"([B, A]), got {tuple(cls_labels.shape)}")
    check_same_device("cls_preds", cls_preds, "cls_labels", cls_labels)
    if cls_labels.dtype == torch.bool or cls_labels.is_complex():
        raise TypeError(f"cls_labels must hold class indices, got dtype {cls_labels.dtype}")
    if cls_labels.numel():
        k = cls_preds.shape[-1]
        bad = (cls_labels < 0) | (cls_labels >= k)
        if cls_labels.is_floating_point():
            bad |= cls_labels != cls_labels.round()
        if bool(bad.any()):
            value = cls_labels[bad][0].item()
            raise ValueError(f"cls_labels must be whole class indices in [0, {k}) (0 is background), got {value}")


def _check_bbox(bbox_preds, bbox_labels, bbox_masks) -> None:
    for t, name in ((bbox_preds, "bbox_preds"), (bbox_labels, "bbox_labels"), (bbox_masks, "bbox_masks")):
        check_tensor(t, name)
    for t, name in ((bbox_preds, "bbox_preds"), (bbox_labels, "bbox_labels")):
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    if bbox_masks.is_complex():
        raise TypeError(f"bbox_masks must be a real (0/1) tensor, got dtype {bbox_masks.dtype}")
    for t, name in ((bbox_labels, "bbox_labels"), (bbox_masks, "bbox_masks")):
        if t.shape != bbox_preds.shape:
            raise ValueError(f"{name} must have the shape of bbox_preds {tuple(bbox_preds.shape)} ([B, A * 4]), "
                             f"got {tuple(t.shape)}")
        check_same_device("bbox_preds", bbox_preds, name, t)


def cls_eval(cls_preds: Tensor, cls_labels: Tensor) -> float:
    """The number of anchors whose highest class score is their label (D2L's ``cls_eval``).

    ``float((cls_preds.argmax(dim=-1).type(cls_labels.dtype) == cls_labels).sum())``, as in
    the book (section "Single Shot Multibox Detection"), which sums it over an epoch.

    Args:
        cls_preds (Tensor[B, A, C + 1]): class scores (logits or probabilities), background 0.
        cls_labels (Tensor[B, A]): class indices in ``[0, C + 1)``, int64 (or whole floats).

    Returns:
        float: the count of correct predictions.

    Example:
        >>> cls_eval(torch.tensor([[[0.1, 0.9], [0.8, 0.2]]]), torch.tensor([[1, 1]]))
        1.0
    """
    _check_cls(cls_preds, cls_labels)
    return float((cls_preds.argmax(dim=-1).type(cls_labels.dtype) == cls_labels).sum())


def bbox_eval(bbox_preds: Tensor, bbox_labels: Tensor, bbox_masks: Tensor) -> float:
    """The sum of absolute offset errors over the positive anchors (D2L's ``bbox_eval``).

    ``float(torch.abs((bbox_labels - bbox_preds) * bbox_masks).sum())``, as in the book.

    Args:
        bbox_preds (Tensor[B, A * 4]): predicted offsets.
        bbox_labels (Tensor[B, A * 4]): target offsets.
        bbox_masks (Tensor[B, A * 4]): 1 for the coordinates of positive anchors, 0 otherwise.

    Returns:
        float: the sum of absolute masked errors.

    Example:
        >>> bbox_eval(torch.tensor([[1.0, 2.0]]), torch.tensor([[1.5, 0.0]]), torch.tensor([[1.0, 0.0]]))
        0.5
    """
    _check_bbox(bbox_preds, bbox_labels, bbox_masks)
    return float(torch.abs((bbox_labels - bbox_preds) * bbox_masks).sum())


def class_error(cls_preds: Tensor, cls_labels: Tensor) -> float:
    """The book's "class err": ``1 - cls_eval(cls_preds, cls_labels) / cls_labels.numel()``.

    Args:
        cls_preds (Tensor[B, A, C + 1]): class scores.
        cls_labels (Tensor[B, A]): class indices in ``[0, C + 1)``.

    Returns:
        float: the fraction of anchors (background ones included) whose argmax class is wrong,
        in [0, 1]; NaN for empty inputs. To accumulate over batches as the book does, sum
        :func:`cls_eval` and ``cls_labels.numel()`` instead.
    """
    count = cls_eval(cls_preds, cls_labels)
    n = cls_labels.numel()
    return 1.0 - count / n if n else float("nan")


def bbox_mae(bbox_preds: Tensor, bbox_labels: Tensor, bbox_masks: Tensor) -> float:
    """The book's "bbox mae": ``bbox_eval(...) / bbox_labels.numel()``.

    As in the book, the sum of errors over the positive anchors is divided by the number of
    all offset values, masked ones included (so it is not the mean over positive anchors).

    Args:
        bbox_preds (Tensor[B, A * 4]): predicted offsets.
        bbox_labels (Tensor[B, A * 4]): target offsets.
        bbox_masks (Tensor[B, A * 4]): 1 for the coordinates of positive anchors, 0 otherwise.

    Returns:
        float: NaN for empty inputs.
    """
    total = bbox_eval(bbox_preds, bbox_labels, bbox_masks)
    n = bbox_labels.numel()
    return total / n if n else float("nan")
