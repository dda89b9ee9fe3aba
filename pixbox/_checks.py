"""Shared input validation for public pixbox functions.

Every public op validates its inputs with these helpers so that bad input gets a
``ValueError``/``TypeError`` naming the argument, what was expected and what was
received. Validation uses exceptions, never ``assert`` (which vanishes under
``python -O``).
"""

from __future__ import annotations

import difflib
from typing import Iterable, Sequence

import numpy as np
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


def is_int(value) -> bool:
    """Whether ``value`` is a Python or NumPy integer; ``bool`` (an ``int`` subclass) is not."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an ``int`` in ``[low, high]`` (a bound of None is open).

    Python and NumPy integers pass; ``bool``, floats (even ``2.0``) and strings do not.

    Raises:
        TypeError: ``value`` is not an integer, e.g. ``"stride must be an int, got float 1.5"``.
        ValueError: out of range, e.g. ``"stride must be >= 1, got 0"``.
    """
    if not is_int(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_bool(value, name: str) -> bool:
    """``value`` as a ``bool``: ``True``, ``False`` or a NumPy bool; ``0``, ``1`` and ``None`` do not pass.

    Raises:
        TypeError: e.g. ``"shuffle must be a bool, got str 'yes'"``.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def check_class_names(class_names, name: str = "class_names") -> list[str]:
    """A non-empty sequence of unique ``str`` names, as a list."""
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"{name} must be a sequence of str, got {type(class_names).__name__}")
    names = list(class_names)
    if not names:
        raise ValueError(f"{name} must not be empty")
    for i, item in enumerate(names):
        if not isinstance(item, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(item).__name__}")
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"{name} must be unique, got duplicates {dup}")
    return names


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
