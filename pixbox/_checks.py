"""Shared input validation for public pixbox functions.

Every public op validates its inputs with these helpers so that bad input gets a
``ValueError``/``TypeError`` naming the argument, what was expected and what was
received. Validation uses exceptions, never ``assert`` (which vanishes under
``python -O``).
"""

from __future__ import annotations

import difflib
import math
import os
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
    """Checks a ``[N, 4]`` float box tensor; with ``well_formed``, also ``x1 <= x2``, ``y1 <= y2``, finite."""
    check_tensor(boxes, name)
    check_shape(boxes, name, (None, 4), "[N, 4]")
    check_floating(boxes, name)
    if well_formed and boxes.numel():
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]) | ~torch.isfinite(boxes).all(dim=1)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{name} must be well-formed xyxy boxes with x1 <= x2 and y1 <= y2, all finite; "
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


# ----------------------------------------------------------------------------------------------
# Config values: each checker is ``check(value, name) -> value`` (a factory where it takes bounds);
# a config file's values arrive as YAML reads them, so ``3.0`` passes as an int and ``"1e-3"``
# as a float.


def int_value(low: int, optional: bool = False):
    def check(value, name):
        if optional and value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            what = "an int" + (" or None" if optional else "")
            raise TypeError(f"{name} must be {what} >= {low}, got {value!r} ({type(value).__name__})")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
        return value

    return check


def float_value(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False,
           optional: bool = False):
    lo, hi = ("(" if low_open else "["), (")" if high_open or high == math.inf else "]")
    span = f"in {lo}{low}, {high}{hi}"

    def check(value, name):
        if optional and value is None:
            return None
        if isinstance(value, str):  # YAML reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = "a number" + (" or None" if optional else "")
            raise TypeError(f"{name} must be {what} {span}, got {value!r} ({type(value).__name__})")
        value = float(value)
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
        if not ok or math.isnan(value):
            raise ValueError(f"{name} must be a number {span}, got {value}")
        return value

    return check


def choice_value(choices, optional: bool = False):
    def check(value, name):
        if optional and value is None:
            return None
        options = choices() if callable(choices) else choices
        if not isinstance(value, str):
            raise TypeError(f"{name} must be one of {list(options)}, got {value!r} ({type(value).__name__})")
        if value not in options:
            hint = difflib.get_close_matches(value, list(options), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"{name} must be one of {list(options)}, got {value!r}{extra}")
        return value

    return check


def bool_value(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {value!r} ({type(value).__name__})")
    return value


def amp_value(value, name):
    if isinstance(value, str) and value.lower() in ("auto", "true", "false", "on", "off"):
        value = {"auto": "auto", "true": True, "on": True, "false": False, "off": False}[value.lower()]
    if value != "auto" and not isinstance(value, bool):
        raise TypeError(f"{name} must be 'auto', true or false, got {value!r} ({type(value).__name__})")
    return value


def preset_value(value, name):
    if not isinstance(value, (bool, str)):
        raise TypeError(f"{name} must be a preset name, true or false, got {value!r} ({type(value).__name__})")
    return value


def text_value(optional: bool = False):
    def check(value, name):
        if optional and value is None:
            return None
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            what = "a non-empty str" + (" or None" if optional else "")
            raise TypeError(f"{name} must be {what}, got {value!r}")
        return value

    return check


def run_name_value(value, name):
    value = text_value()(value, name)
    if value in (".", "..") or "/" in value or "\\" in value:
        raise ValueError(f"{name} must be a plain folder name (no '/', '.' or '..'), got {value!r}")
    return value


def pretrained_value(value, name):
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if value is None or value is False:
        return "none"
    if value is True:
        return "default"
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{name} must be 'default', 'none' or a weights file path, got {value!r}")
    return value
