"""The D2L book's SSD training metrics, with the book's names and formulas.

:func:`cls_eval` and :func:`bbox_eval` (the book's sums), :func:`class_error` and
:func:`bbox_mae` (the rates its training loop prints), on the outputs of a multibox detector and
the labels of :func:`pixbox.ops.multibox_target`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pixbox._checks import check_same_device, check_tensor

__all__ = ["bbox_eval", "bbox_mae", "class_error", "cls_eval"]


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
