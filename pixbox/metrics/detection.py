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

The VOC matching and AP live in :mod:`pixbox.metrics.voc`, the D2L book's SSD training metrics
(:func:`cls_eval`, :func:`bbox_eval`, :func:`class_error`, :func:`bbox_mae`) in
:mod:`pixbox.metrics.multibox`; both are re-exported here.

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

from pixbox.metrics._detection_inputs import _check_pairs, _check_prediction, _check_target
from pixbox.metrics.multibox import bbox_eval, bbox_mae, class_error, cls_eval
from pixbox.metrics.voc import _voc_match, voc_ap, voc_match

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
