"""Semantic segmentation metrics: pixel accuracy, per-class IoU, mIoU, from one confusion matrix.

:class:`SegmentationEvaluator` accumulates a ``[C, C]`` pixel confusion matrix batch by batch
(rows are true classes, columns predicted classes; pixels whose target is ``ignore_index``,
such as the 255 borders of Pascal VOC masks, are not counted), then
:meth:`~SegmentationEvaluator.compute` derives everything from it. With ``tp[c]`` the diagonal,
``pixels[c]`` the row sums (the pixels of true class ``c``), ``predicted[c]`` the column sums and
``union[c] = pixels[c] + predicted[c] - tp[c]``:

- ``pixel_accuracy = sum(tp) / sum(pixels)``;
- per class, ``accuracy[c] = tp[c] / pixels[c]`` (the recall) and ``iou[c] = tp[c] / union[c]``;
- ``mean_class_accuracy``: the mean of ``accuracy`` over the classes present in the targets
  (``pixels > 0``);
- ``miou``: the mean of ``iou`` over the classes present in the targets *or* the predictions
  (``union > 0``). A class that is neither in the targets nor predicted says nothing about the
  model and is left out; a class predicted but absent from the targets has IoU 0 and counts
  (its false positives lower the mean);
- ``fwiou``: the frequency-weighted IoU ``sum(pixels[c] * iou[c]) / sum(pixels)``.

No number is ever NaN: a ratio with a zero denominator is 0.0 in the per-class rows, such
classes are left out of the means as described, and with no counted pixel every number is 0.0
(``num_pixels`` is then 0, which tells that case apart from a model that is always wrong).

Example:
    >>> targets = torch.tensor([[0, 0, 1], [1, 2, 255]])
    >>> preds = torch.tensor([[0, 1, 1], [1, 2, 0]])
    >>> segmentation_confusion_matrix(preds, targets, 3).tolist()
    [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from pixbox._checks import check_class_names, check_int, check_tensor, is_int

__all__ = [
    "SegmentationEvaluator",
    "segmentation_confusion_matrix",
    "segmentation_table",
]

_MAX_BAD_VALUES = 10  # distinct bad target values listed in an error message


# ----------------------------------------------------------------------------------------------
# Checks


def _check_ignore_index(ignore_index) -> int | None:
    if ignore_index is None:
        return None
    if not is_int(ignore_index):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__} {ignore_index!r}")
    return int(ignore_index)


def _check_integer(x: Tensor, name: str, desc: str) -> None:
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise TypeError(f"{name} must be an integer tensor of class indices {desc}, got dtype {x.dtype}")


def _labels(preds_or_logits, targets, num_classes: int, pred_name: str) -> Tensor:
    """Checks the inputs and returns the predicted labels (int64, shape of ``targets``, preds' device)."""
    check_tensor(preds_or_logits, pred_name)
    check_tensor(targets, "targets")
    _check_integer(targets, "targets", "[N, ...]")
    x = preds_or_logits
    if x.is_floating_point():
        want = (targets.shape[0], num_classes, *targets.shape[1:]) if targets.dim() >= 1 else None
        if want is None or tuple(x.shape) != want:
            raise ValueError(f"{pred_name} as float logits must have shape [B, C, ...] = {list(want or ['B', 'C'])} "
                             f"for targets of shape {tuple(targets.shape)} and C = {num_classes} classes, got "
                             f"{tuple(x.shape)}")
        if bool(torch.isnan(x).any()):
            raise ValueError(f"{pred_name} must not contain NaN")
        return x.argmax(dim=1)  # first maximum on ties
    _check_integer(x, pred_name, "[N, ...] (or float logits [B, C, ...])")
    if x.shape != targets.shape:
        raise ValueError(f"{pred_name} must have the shape of targets {tuple(targets.shape)} (or be float logits "
                         f"[B, C, ...]), got {tuple(x.shape)}")
    return x.to(torch.int64)


def _confusion(preds: Tensor, targets: Tensor, num_classes: int, ignore_index: int | None,
               pred_name: str) -> Tensor:
    """Unchecked core: ``preds`` int64 labels, ``targets`` integer, same shape."""
    c = num_classes
    t = targets.to(device=preds.device, dtype=torch.int64).reshape(-1)  # [P]
    p = preds.reshape(-1)  # [P]
    if ignore_index is not None:
        keep = t != ignore_index
        t, p = t[keep], p[keep]
    bad = (t < 0) | (t >= c)
    if bool(bad.any()):
        values = torch.unique(t[bad]).tolist()
        shown = values[:_MAX_BAD_VALUES] + (["..."] if len(values) > _MAX_BAD_VALUES else [])
        ignore = f" or ignore_index {ignore_index}" if ignore_index is not None else ""
        raise ValueError(f"targets must hold class indices in [0, {c}){ignore}, got values {shown} "
                         f"({int(bad.sum())} pixels)")
    bad = (p < 0) | (p >= c)
    if bool(bad.any()):
        values = torch.unique(p[bad]).tolist()
        shown = values[:_MAX_BAD_VALUES] + (["..."] if len(values) > _MAX_BAD_VALUES else [])
        raise ValueError(f"{pred_name} must hold class indices in [0, {c}) at the counted (not ignored) pixels, "
                         f"got values {shown} ({int(bad.sum())} pixels)")
    return torch.bincount(t * c + p, minlength=c * c).view(c, c)


# ----------------------------------------------------------------------------------------------
# Functions


def segmentation_confusion_matrix(preds: Tensor, targets: Tensor, num_classes: int,
                                  ignore_index: int | None = 255) -> Tensor:
    """Pixel counts of (true class, predicted class) pairs, skipping ignored target pixels.

    Args:
        preds (Tensor[N, ...] or Tensor[B, C, ...]): integer predicted labels with the shape of
            ``targets`` (values in ``[0, C)`` wherever the target is counted; anything at ignored
            pixels), or float logits/probabilities ``[B, C, H, W]`` for targets ``[B, H, W]``,
            turned into labels with ``argmax`` over dim 1 (first maximum on ties).
        targets (Tensor[N, ...]): integer (e.g. uint8 or int64) true labels in ``[0, C)``, or
            ``ignore_index``; any device (moved to ``preds``' device).
        num_classes (int): ``C`` >= 1.
        ignore_index (int or None): target value whose pixels are not counted (their predictions
            do not matter); None counts every pixel.

    Returns:
        Tensor[C, C]: ``int64`` on ``preds``' device; entry ``[i, j]`` counts the pixels of true
        class ``i`` predicted as ``j``.

    Raises:
        ValueError: shape mismatch, NaN logits, or target (prediction) values outside ``[0, C)``
            other than ``ignore_index``; the message lists the bad values.
        TypeError: non-tensor inputs, float targets, bad ``num_classes`` or ``ignore_index``.
    """
    c = check_int(num_classes, "num_classes", low=1)
    ignore = _check_ignore_index(ignore_index)
    labels = _labels(preds, targets, c, "preds")
    return _confusion(labels, targets, c, ignore, "preds")


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` elementwise, 0 where ``den == 0``."""
    return torch.where(den > 0, num / den.clamp(min=1), torch.zeros_like(num))


def _metrics_from_confusion(confusion: Tensor, class_names: list[str]) -> dict[str, Any]:
    cm = confusion.to(torch.float64)
    tp = cm.diagonal()  # [C]
    pixels = cm.sum(dim=1)  # [C], true pixels of each class
    predicted = cm.sum(dim=0)  # [C], pixels predicted as each class
    union = pixels + predicted - tp  # [C]
    total = float(pixels.sum())
    accuracy = _ratio(tp, pixels)  # [C], recall
    iou = _ratio(tp, union)  # [C]
    present, seen = pixels > 0, union > 0
    return {
        "pixel_accuracy": float(tp.sum()) / total if total else 0.0,
        "mean_class_accuracy": float(accuracy[present].mean()) if bool(present.any()) else 0.0,
        "miou": float(iou[seen].mean()) if bool(seen.any()) else 0.0,
        "fwiou": float((pixels * iou).sum()) / total if total else 0.0,
        "per_class": [
            {"name": name, "iou": float(iou[i]), "accuracy": float(accuracy[i]), "pixels": int(pixels[i])}
            for i, name in enumerate(class_names)
        ],
        "confusion": confusion.clone(),
        "num_pixels": int(confusion.sum()),
    }


# ----------------------------------------------------------------------------------------------
# The evaluator


class SegmentationEvaluator:
    """Accumulates a pixel confusion matrix over a dataset, then computes the metrics of the module.

    Args:
        class_names (Sequence[str]): the ``C`` unique class names; target labels index into them
            (for VOC: ``"background"`` first).
        ignore_index (int or None): target value not counted (255 in VOC masks); None counts
            every pixel.

    Example:
        >>> evaluator = SegmentationEvaluator(["background", "cat"])
        >>> evaluator.update(torch.tensor([[[0, 1], [1, 1]]]), torch.tensor([[[0, 1], [0, 255]]]))
        >>> metrics = evaluator.compute()
        >>> metrics["pixel_accuracy"], metrics["miou"], metrics["num_pixels"]
        (0.6666666666666666, 0.5, 3)
    """

    def __init__(self, class_names: Sequence[str], ignore_index: int | None = 255):
        self.class_names: list[str] = check_class_names(class_names)
        self.ignore_index = _check_ignore_index(ignore_index)
        self.reset()

    @property
    def num_images(self) -> int:
        """The number of images added since the last :meth:`reset`."""
        return self._num_images

    def reset(self) -> None:
        """Forgets every image added so far."""
        c = len(self.class_names)
        self._confusion = torch.zeros(c, c, dtype=torch.int64)
        self._num_images = 0

    def update(self, preds_or_logits: Tensor, targets: Tensor) -> None:
        """Adds a batch of images (or one image).

        Args:
            preds_or_logits (Tensor[B, H, W] or Tensor[B, C, H, W]): integer predicted labels, or
                float scores (argmax over the class dimension); ``[H, W]`` labels or ``[C, H, W]``
                scores for a single image. Any device.
            targets (Tensor[B, H, W] or Tensor[H, W]): integer labels in ``[0, C)`` or
                ``ignore_index``.

        The batch is checked before anything is added; the counts are kept on the CPU.
        """
        check_tensor(preds_or_logits, "preds_or_logits")
        check_tensor(targets, "targets")
        if targets.dim() not in (2, 3):
            raise ValueError(f"targets must have shape [B, H, W] or [H, W], got {tuple(targets.shape)}")
        if targets.dim() == 2:  # one image: add the batch dimension to both
            targets, preds_or_logits = targets[None], preds_or_logits[None]
        c = len(self.class_names)
        labels = _labels(preds_or_logits, targets, c, "preds_or_logits")
        self._confusion += _confusion(labels, targets, c, self.ignore_index, "preds_or_logits").cpu()
        self._num_images += targets.shape[0]

    def compute(self) -> dict[str, Any]:
        """The metrics over every image added since the last :meth:`reset` (see the module docstring).

        Returns:
            dict: with
            ``pixel_accuracy``, ``mean_class_accuracy``, ``miou`` and ``fwiou`` (floats in
            [0, 1]);
            ``per_class`` (list of dicts, one per class in order: ``name``, ``iou``, ``accuracy``
            (the recall; both 0.0 for a zero denominator) and ``pixels`` (int, the support));
            ``confusion`` (Tensor[C, C] int64 on the CPU, rows true, columns predicted; a copy);
            ``num_pixels`` (int, counted pixels) and ``num_images`` (int).
        """
        metrics = _metrics_from_confusion(self._confusion, self.class_names)
        metrics["num_images"] = self.num_images
        return metrics


# ----------------------------------------------------------------------------------------------
# Reports


def _check_metrics(metrics) -> None:
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be the dict SegmentationEvaluator.compute() returns, got "
                        f"{type(metrics).__name__}")
    missing = [k for k in ("per_class", "pixel_accuracy", "mean_class_accuracy", "miou", "num_pixels", "num_images")
               if k not in metrics]
    if missing:
        raise ValueError(f"metrics must be the dict SegmentationEvaluator.compute() returns; it lacks {missing}")


def segmentation_table(metrics: dict[str, Any], class_names: Sequence[str] | None = None) -> str:
    """A plain-text report: a summary line, then one aligned row per class and an ``all`` row.

    The ``all`` row gives the counted pixels, the mIoU and the mean class accuracy. Example::

        images 4  pixels 1000  pixel accuracy 0.850  mean class accuracy 0.733  mIoU 0.610  fwIoU 0.745
        class       pixels    IoU  accuracy
        ----------  ------  -----  --------
        background     700  0.850     0.914
        cat            300  0.370     0.550
        ----------  ------  -----  --------
        all           1000  0.610     0.733

    Args:
        metrics (dict): what :meth:`SegmentationEvaluator.compute` returns.
        class_names (Sequence[str], optional): names printed for the rows, one per class; None
            takes the names stored in ``metrics["per_class"]``.

    Returns:
        str: lines separated by ``"\\n"``.
    """
    _check_metrics(metrics)
    rows = metrics["per_class"]
    if class_names is None:
        names = [str(r["name"]) for r in rows]
    else:
        names = check_class_names(class_names)
        if len(names) != len(rows):
            raise ValueError(f"class_names must have one name per class of metrics ({len(rows)}), got {len(names)}")
    summary = [f"images {metrics['num_images']}", f"pixels {metrics['num_pixels']}",
               f"pixel accuracy {metrics['pixel_accuracy']:.3f}",
               f"mean class accuracy {metrics['mean_class_accuracy']:.3f}", f"mIoU {metrics['miou']:.3f}"]
    if "fwiou" in metrics:
        summary.append(f"fwIoU {metrics['fwiou']:.3f}")
    table = [["class", "pixels", "IoU", "accuracy"]]
    table += [[name, str(r["pixels"]), f"{r['iou']:.3f}", f"{r['accuracy']:.3f}"] for name, r in zip(names, rows)]
    table.append(["all", str(metrics["num_pixels"]), f"{metrics['miou']:.3f}", f"{metrics['mean_class_accuracy']:.3f}"])
    widths = [max(len(row[j]) for row in table) for j in range(4)]

    def line(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    rule = line(["-" * w for w in widths])
    lines = ["  ".join(summary), line(table[0]), rule] + [line(r) for r in table[1:-1]] + [rule, line(table[-1])]
    return "\n".join(s.rstrip() for s in lines)
