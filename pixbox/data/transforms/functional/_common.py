"""Shared checks and float working copies of the functional transforms."""

from __future__ import annotations

import operator
from typing import Sequence

import torch
from torch import Tensor

from pixbox._checks import check_shape, check_tensor

__all__ = ["get_size"]


# ----------------------------------------------------------------------------------------------
# Checks


def _check_image(image, name: str = "image") -> Tensor:
    check_tensor(image, name)
    if image.dim() not in (3, 4):
        raise ValueError(f"{name} must have shape [C, H, W] or [B, C, H, W], got {tuple(image.shape)}")
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise TypeError(f"{name} must be uint8 (0..255) or floating point (0..1), got dtype {image.dtype}")
    return image


def _check_plane(x, name: str) -> Tensor:
    check_tensor(x, name)
    if x.dim() < 2:
        raise ValueError(f"{name} must have shape [..., H, W], got {tuple(x.shape)}")
    return x


def _check_rgb(image: Tensor, name: str) -> Tensor:
    _check_image(image, name)
    if image.shape[-3] != 3:
        raise ValueError(f"{name} must have 3 (RGB) channels, got shape {tuple(image.shape)}")
    return image


def _check_box_tensor(boxes, name: str = "boxes") -> Tensor:
    check_shape(boxes, name, (None, 4), "[N, 4]")
    if not boxes.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {boxes.dtype}")
    return boxes


def _as_int(value, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}") from None


def _check_size(size, name: str = "size") -> tuple[int, int]:
    """A ``(height, width)`` pair of positive ints."""
    if isinstance(size, (str, bytes)) or not isinstance(size, (Sequence, torch.Size)) or len(size) != 2:
        raise ValueError(f"{name} must be (height, width), got {size!r}")
    h, w = _as_int(size[0], f"{name}[0] (height)"), _as_int(size[1], f"{name}[1] (width)")
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive (height, width), got {(h, w)}")
    return h, w


def get_size(image: Tensor) -> tuple[int, int]:
    """The ``(height, width)`` of an image, batch, mask or any ``Tensor[..., H, W]``."""
    _check_plane(image, "image")
    return int(image.shape[-2]), int(image.shape[-1])


# ----------------------------------------------------------------------------------------------
# Float working copies


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _to_float(image: Tensor) -> Tensor:
    """A float working copy with values in [0, 1] (uint8 is divided by 255)."""
    x = image.to(_work_dtype(image.dtype))
    return x / 255 if image.dtype == torch.uint8 else x


def _from_float(x: Tensor, dtype: torch.dtype) -> Tensor:
    """Back from a [0, 1] float working copy: uint8 is scaled by 255, rounded and clamped."""
    if dtype == torch.uint8:
        return (x * 255).round_().clamp_(0, 255).to(torch.uint8)
    return x.to(dtype)
