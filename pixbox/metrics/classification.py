"""Classification metrics: top-k accuracy, confusion matrix, per-class precision/recall/F1.

:class:`ClassificationEvaluator` accumulates a confusion matrix and the rank of every target
among the logits batch by batch (nothing else is kept, so memory does not grow with the dataset),
then :meth:`~ClassificationEvaluator.compute` reports:

- ``accuracy`` (top-1) and ``top{k}`` for each requested ``k`` up to the number of classes;
- ``per_class`` rows: ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``,
  ``f1 = 2 * precision * recall / (precision + recall)`` and ``support`` (samples of the class);
- ``mean_precision``, ``mean_recall`` (balanced accuracy) and ``mean_f1``, the unweighted means
  over the classes that have samples;
- ``confusion``: rows are true classes, columns predicted classes.

Conventions that keep every number finite (never NaN): a ratio with a zero denominator is 0.0
(precision of a class never predicted, recall of a class without samples, F1 when precision and
recall are both 0). A class without samples has nothing to recall, so it is left out of the
means; when no class has samples the means are 0.0.

Top-k and ties: the target's *rank* is the number of classes that score strictly higher, plus
those that score the same and have a smaller index (a stable descending sort). A sample is
top-k correct when that rank is below ``k``. So ties never count twice, and top-1 agrees with
``logits.argmax(1)``, which returns the first of equal maxima.

Example:
    >>> logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 2.0, 1.0], [1.0, 0.0, 2.0], [2.0, 1.0, 0.0]])
    >>> targets = torch.tensor([0, 1, 0, 2])
    >>> accuracy(logits, targets), accuracy(logits, targets, topk=2)
    (0.5, 0.75)
    >>> confusion_matrix(logits.argmax(1), targets, 3).tolist()
    [[1, 0, 1], [0, 1, 0], [1, 0, 0]]
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from pixbox._checks import check_class_names, check_int, check_tensor, is_int

__all__ = [
    "ClassificationEvaluator",
    "accuracy",
    "classification_table",
    "confusion_matrix",
]


# ----------------------------------------------------------------------------------------------
# Checks


def _check_labels(x, name: str, num_classes: int | None = None) -> Tensor:
    """A ``[N]`` integer tensor of class indices, in ``[0, num_classes)`` when given."""
    check_tensor(x, name)
    if x.dtype == torch.bool or x.is_floating_point() or x.is_complex():
        raise TypeError(f"{name} must be an integer tensor of class indices, got dtype {x.dtype}")
    if x.dim() != 1:
        raise ValueError(f"{name} must have shape [N], got {tuple(x.shape)}")
    if x.numel():
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or (num_classes is not None and hi >= num_classes):
            bad = lo if lo < 0 else hi
            i = int((x == bad).nonzero()[0, 0])
            want = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise ValueError(f"{name} must hold class indices {want}, got {bad} at index {i}")
    return x


def _check_logits(logits, name: str = "logits") -> Tensor:
    check_tensor(logits, name)
    if not logits.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor [N, C], got dtype {logits.dtype}")
    if logits.dim() != 2 or logits.shape[1] < 1:
        raise ValueError(f"{name} must have shape [N, C] with C >= 1, got {tuple(logits.shape)}")
    if bool(torch.isnan(logits).any()):
        raise ValueError(f"{name} must not contain NaN")
    return logits


def _check_same_length(a: Tensor, name_a: str, b: Tensor, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same number of samples, got "
                         f"{a.shape[0]} and {b.shape[0]}")


def _check_topk(topk) -> tuple[int, ...]:
    values = [topk] if is_int(topk) else topk
    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        raise TypeError(f"topk must be an int or a non-empty sequence of ints, got {topk!r}")
    ks = [check_int(k, "topk") for k in values]
    if any(k < 1 for k in ks):
        raise ValueError(f"topk must hold ints >= 1, got {list(values)}")
    return tuple(sorted(set(ks)))


# ----------------------------------------------------------------------------------------------
# Functions


def _target_rank(logits: Tensor, targets: Tensor) -> Tensor:
    """Rank of each target among its row's scores (0 = best; ties go to the smaller index): [N]."""
    t = targets.to(device=logits.device, dtype=torch.int64)
    score = logits.gather(1, t[:, None])  # [N, 1]
    index = torch.arange(logits.shape[1], device=logits.device)  # [C]
    ahead = (logits > score) | ((logits == score) & (index[None, :] < t[:, None]))  # [N, C]
    return ahead.sum(dim=1)


def accuracy(logits_or_preds: Tensor, targets: Tensor, *, topk: int = 1) -> float:
    """The fraction of samples whose target is among the ``topk`` best-scored classes.

    Args:
        logits_or_preds (Tensor[N, C] or Tensor[N]): float scores (logits or probabilities; any
            monotonic transform gives the same result), or integer predicted class indices.
        targets (Tensor[N]): integer class indices, in ``[0, C)`` for scores.
        topk (int): ``k`` >= 1; at most ``C`` for scores, and only 1 for predicted indices.

    Returns:
        float: in [0, 1]; 0.0 when ``N == 0``. Ties are broken as the module docstring says,
        so top-1 equals ``(logits.argmax(1) == targets).mean()``.
    """
    check_tensor(logits_or_preds, "logits_or_preds")
    k = check_int(topk, "topk", low=1)
    if logits_or_preds.is_floating_point():
        logits = _check_logits(logits_or_preds, "logits_or_preds")
        c = logits.shape[1]
        _check_labels(targets, "targets", c)
        _check_same_length(logits, "logits_or_preds", targets, "targets")
        if k > c:
            raise ValueError(f"topk must be <= the number of classes C={c}, got {k}")
        n = logits.shape[0]
        return float((_target_rank(logits, targets) < k).sum()) / n if n else 0.0
    if logits_or_preds.dim() != 1:
        raise ValueError(f"logits_or_preds must be float scores [N, C] or integer predictions [N], got shape "
                         f"{tuple(logits_or_preds.shape)} and dtype {logits_or_preds.dtype}")
    preds = _check_labels(logits_or_preds, "logits_or_preds")
    _check_labels(targets, "targets")
    _check_same_length(preds, "logits_or_preds", targets, "targets")
    if k != 1:
        raise ValueError(f"topk must be 1 for predicted class indices (scores are needed for top-k), got {k}")
    n = preds.shape[0]
    return float((preds == targets.to(preds.device)).sum()) / n if n else 0.0


def confusion_matrix(preds: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Counts of (true class, predicted class) pairs.

    Args:
        preds (Tensor[N]): integer predicted class indices in ``[0, C)`` (``logits.argmax(1)``).
        targets (Tensor[N]): integer true class indices in ``[0, C)``.
        num_classes (int): ``C`` >= 1.

    Returns:
        Tensor[C, C]: ``int64`` on ``preds``' device; entry ``[i, j]`` counts the samples of true
        class ``i`` predicted as ``j``, so rows sum to the class supports and the diagonal holds
        the correct predictions.
    """
    c = check_int(num_classes, "num_classes", low=1)
    check_tensor(preds, "preds")
    if preds.is_floating_point():
        raise TypeError(f"preds must be an integer tensor of class indices [N], got dtype {preds.dtype}; "
                        "for scores pass logits.argmax(1)")
    _check_labels(preds, "preds", c)
    _check_labels(targets, "targets", c)
    _check_same_length(preds, "preds", targets, "targets")
    flat = targets.to(device=preds.device, dtype=torch.int64) * c + preds.to(torch.int64)  # [N]
    return torch.bincount(flat, minlength=c * c).view(c, c)


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` elementwise, 0 where ``den == 0``."""
    return torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))


def _per_class_stats(confusion: Tensor) -> dict[str, Tensor]:
    cm = confusion.to(torch.float64)
    tp = cm.diagonal()  # [C]
    support = cm.sum(dim=1)  # [C], samples of each true class
    predicted = cm.sum(dim=0)  # [C], predictions of each class
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support}


# ----------------------------------------------------------------------------------------------
# The evaluator


class ClassificationEvaluator:
    """Accumulates logits and targets over a dataset, then computes accuracy and per-class metrics.

    Args:
        class_names (Sequence[str]): the ``C`` unique class names; targets index into them.
        topk (int or Sequence[int]): the ``k`` of the reported ``top{k}`` accuracies; values
            above ``C`` are skipped (they would always be 1).

    Example:
        >>> evaluator = ClassificationEvaluator(["cat", "dog", "bird"], topk=(1, 2))
        >>> evaluator.update(torch.tensor([[3.0, 1.0, 0.0], [0.0, 1.0, 2.0]]), torch.tensor([0, 1]))
        >>> metrics = evaluator.compute()
        >>> metrics["accuracy"], metrics["top2"], metrics["per_class"][1]["recall"]
        (0.5, 1.0, 0.0)
    """

    def __init__(self, class_names: Sequence[str], topk: int | Sequence[int] = (1, 5)):
        self.class_names: list[str] = check_class_names(class_names)
        self.topk = _check_topk(topk)
        self.reset()

    @property
    def num_images(self) -> int:
        """The number of samples added since the last :meth:`reset`."""
        return int(self._rank_counts.sum())

    def reset(self) -> None:
        """Forgets every sample added so far."""
        c = len(self.class_names)
        self._confusion = torch.zeros(c, c, dtype=torch.int64)
        self._rank_counts = torch.zeros(c, dtype=torch.int64)  # [C]: samples whose target has rank r

    def update(self, logits: Tensor, targets: Tensor) -> None:
        """Adds a batch.

        Args:
            logits (Tensor[B, C]): float scores (logits or probabilities), no NaN, any device.
            targets (Tensor[B]): integer class indices in ``[0, C)``.

        The batch is checked before anything is added; the counts are kept on the CPU.
        """
        c = len(self.class_names)
        _check_logits(logits)
        if logits.shape[1] != c:
            raise ValueError(f"logits must have one column per class ({c}: {self.class_names[:5]}"
                             f"{'...' if c > 5 else ''}), got shape {tuple(logits.shape)}")
        _check_labels(targets, "targets", c)
        _check_same_length(logits, "logits", targets, "targets")
        if logits.shape[0] == 0:
            return
        preds = logits.argmax(dim=1)  # first maximum on ties, the same rule as the rank
        self._confusion += confusion_matrix(preds, targets.to(preds.device), c).cpu()
        self._rank_counts += torch.bincount(_target_rank(logits, targets), minlength=c).cpu()

    def compute(self) -> dict[str, Any]:
        """The metrics over every sample added since the last :meth:`reset`.

        Returns:
            dict: with
            ``accuracy`` (float, top-1);
            ``top{k}`` (float) for each ``k`` of ``topk`` with ``k <= C``;
            ``per_class`` (list of dicts, one per class in order: ``name``, ``precision``,
            ``recall``, ``f1`` (floats, 0.0 for a zero denominator) and ``support`` (int));
            ``mean_precision``, ``mean_recall`` (balanced accuracy) and ``mean_f1`` (floats,
            means over the classes with ``support > 0``);
            ``confusion`` (Tensor[C, C] int64 on the CPU, rows true, columns predicted; a copy);
            ``num_images`` (int).

            Before any sample (or after :meth:`reset`) nothing raises: every number is 0.0, the
            confusion matrix is zeros and ``num_images`` is 0, which is how to tell that case
            apart from a model that is always wrong.
        """
        n = self.num_images
        cumulative = self._rank_counts.cumsum(0)  # [C]: samples with rank < r + 1
        metrics: dict[str, Any] = {"accuracy": float(cumulative[0]) / n if n else 0.0}
        for k in self.topk:
            if k <= len(self.class_names):
                metrics[f"top{k}"] = float(cumulative[k - 1]) / n if n else 0.0
        stats = _per_class_stats(self._confusion)
        metrics["per_class"] = [
            {"name": name, "precision": float(stats["precision"][i]), "recall": float(stats["recall"][i]),
             "f1": float(stats["f1"][i]), "support": int(stats["support"][i])}
            for i, name in enumerate(self.class_names)
        ]
        present = stats["support"] > 0  # [C]
        for key in ("precision", "recall", "f1"):
            metrics[f"mean_{key}"] = float(stats[key][present].mean()) if bool(present.any()) else 0.0
        metrics["confusion"] = self._confusion.clone()
        metrics["num_images"] = n
        return metrics


# ----------------------------------------------------------------------------------------------
# Reports


def _check_metrics(metrics) -> None:
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be the dict ClassificationEvaluator.compute() returns, got "
                        f"{type(metrics).__name__}")
    missing = [k for k in ("per_class", "accuracy", "mean_precision", "mean_recall", "mean_f1", "num_images")
               if k not in metrics]
    if missing:
        raise ValueError(f"metrics must be the dict ClassificationEvaluator.compute() returns; it lacks {missing}")


def classification_table(metrics: dict[str, Any], class_names: Sequence[str] | None = None) -> str:
    """A plain-text report: a summary line, then one aligned row per class and an ``all`` row.

    The ``all`` row gives the total support and the means over the classes with samples
    (``mean_precision``, ``mean_recall``, ``mean_f1``). Example::

        images 30  accuracy 0.833  top5 1.000  mean recall 0.810
        class  support  precision  recall     f1
        -----  -------  ---------  ------  -----
        cat         12      0.917   0.833  0.873
        dog         18      0.800   0.889  0.842
        -----  -------  ---------  ------  -----
        all         30      0.858   0.861  0.858

    Args:
        metrics (dict): what :meth:`ClassificationEvaluator.compute` returns.
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
    summary = [f"images {metrics['num_images']}", f"accuracy {metrics['accuracy']:.3f}"]
    summary += [f"{key} {metrics[key]:.3f}" for key in sorted(
        (k for k in metrics if k.startswith("top") and k[3:].isdigit()), key=lambda k: int(k[3:]))]
    summary.append(f"mean recall {metrics['mean_recall']:.3f}")
    table = [["class", "support", "precision", "recall", "f1"]]
    table += [[name, str(r["support"]), f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}"]
              for name, r in zip(names, rows)]
    total = sum(int(r["support"]) for r in rows)
    table.append(["all", str(total), f"{metrics['mean_precision']:.3f}", f"{metrics['mean_recall']:.3f}",
                  f"{metrics['mean_f1']:.3f}"])
    widths = [max(len(row[j]) for row in table) for j in range(5)]

    def line(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    rule = line(["-" * w for w in widths])
    lines = ["  ".join(summary), line(table[0]), rule] + [line(r) for r in table[1:-1]] + [rule, line(table[-1])]
    return "\n".join(s.rstrip() for s in lines)
