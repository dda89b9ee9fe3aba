"""Metric files: :func:`save_metrics_json` (JSON-friendly: arrays as lists, NaN as null)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixbox._files import atomic_open

__all__ = ["save_metrics_json"]


def _json_ready(value):
    """Metrics with numpy arrays, tensors and NaN made JSON-friendly (arrays to lists, NaN to None)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, torch.Tensor):
        return _json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def save_metrics_json(metrics: dict[str, Any], path, *, include_curves: bool = False) -> Path:
    """Writes evaluation metrics to a JSON file (NaN as null; PR curves only when asked).

    Args:
        metrics (dict): e.g. from :func:`~pixbox.tasks.detect.evaluate_detector`.
        path (str or PathLike): the ``.json`` file.
        include_curves (bool): also write the raw ``pr_curves`` arrays.

    Returns:
        Path: ``path``.
    """
    doc = {k: v for k, v in metrics.items() if include_curves or k != "pr_curves"}
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(_json_ready(doc), f, indent=1)
    return path
