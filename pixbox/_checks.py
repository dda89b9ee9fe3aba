"""Shared input validation for public pixbox functions.

Every public op validates its inputs with these helpers so that bad input gets a
``ValueError``/``TypeError`` naming the argument, what was expected and what was
received. Validation uses exceptions, never ``assert`` (which vanishes under
``python -O``).
"""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence

import torch
from torch import Tensor


def check_tensor(x, name: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    return x


def check_floating(x: Tensor, name: str) -> Tensor:
    check_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def check_shape(x: Tensor, name: str, shape: Sequence[int | None], desc: str | None = None) -> Tensor:
    """Checks ``x.shape`` against ``shape``, where ``None`` matches any size."""
    check_tensor(x, name)
    ok = x.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape))
    if not ok:
        want = desc or "[" + ", ".join("*" if s is None else str(s) for s in shape) + "]"
        raise ValueError(f"{name} must have shape {want}, got {tuple(x.shape)}")
    return x


def check_boxes(boxes, name: str = "boxes", *, well_formed: bool = True) -> Tensor:
    """Checks a ``[N, 4]`` float box tensor; with ``well_formed``, also ``x1 <= x2``, ``y1 <= y2``, no NaN."""
    check_tensor(boxes, name)
    check_shape(boxes, name, (None, 4), "[N, 4]")
    check_floating(boxes, name)
    if well_formed and boxes.numel():
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]) | torch.isnan(boxes).any(dim=1)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{name} must be well-formed xyxy boxes with x1 <= x2 and y1 <= y2 and no NaN; "
                f"row {i} is {boxes[i].tolist()} ({int(bad.sum())} bad rows in all). "
                "Use pixbox.ops.sanitize_boxes to clip or drop them."
            )
    return boxes


def check_same_device(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    if a.device != b.device:
        raise ValueError(f"{name_a} and {name_b} must be on the same device, got {a.device} and {b.device}")


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"{name} must be one of {choices}, got {value!r}{extra}")
    return value


def check_number(value, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        else:
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if value != value:
        raise ValueError(f"{name} must be a number, got NaN")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


def check_positive_list(values, name: str) -> list[float]:
    try:
        vals = [float(v) for v in values]
    except TypeError:
        raise TypeError(f"{name} must be a sequence of numbers, got {type(values).__name__}") from None
    if len(vals) == 0:
        raise ValueError(f"{name} must not be empty")
    for v in vals:
        if not v > 0 or v == float("inf"):
            raise ValueError(f"{name} must contain finite positive numbers, got {list(values)}")
    return vals


def check_four(values, name: str) -> tuple[float, float, float, float]:
    try:
        vals = tuple(float(v) for v in values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of 4 numbers, got {type(values).__name__}") from None
    if len(vals) != 4:
        raise ValueError(f"{name} must have 4 values, got {len(vals)}: {values}")
    return vals  # type: ignore[return-value]
