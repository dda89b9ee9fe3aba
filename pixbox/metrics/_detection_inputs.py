"""Checks and conversions of detection predictions and targets (numpy, per image)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


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
