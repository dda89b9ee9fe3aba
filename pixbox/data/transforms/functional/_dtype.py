"""Dtype conversion and per-channel normalization."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_number, check_tensor
from pixbox.data.transforms.functional._common import _check_image, _work_dtype

__all__ = ["normalize", "to_dtype"]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _per_channel(values, name: str, c: int) -> list[float]:
    if isinstance(values, Tensor):
        values = values.tolist()
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    if isinstance(values, str) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a number or a sequence of {c} numbers, got {type(values).__name__}")
    vals = [float(check_number(v, name)) for v in values]
    if len(vals) not in (1, c):
        raise ValueError(f"{name} must have 1 or {c} (channels) values, got {len(vals)}: {list(values)}")
    return vals


def normalize(image: Tensor, mean, std) -> Tensor:
    """``(image - mean) / std`` per channel.

    Args:
        image (Tensor[C, H, W] or Tensor[B, C, H, W]): floating point (convert uint8 first with
            :func:`to_dtype`).
        mean (number or sequence of C numbers): per-channel mean.
        std (number or sequence of C numbers): per-channel standard deviation, > 0.

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_image(image)
    if not image.is_floating_point():
        raise TypeError(f"image must be floating point to normalize, got dtype {image.dtype}; "
                        "convert it first with to_dtype(image, torch.float32)")
    c = image.shape[-3]
    m = _per_channel(mean, "mean", c)
    s = _per_channel(std, "std", c)
    if any(not v > 0 for v in s):
        raise ValueError(f"std must be > 0, got {s}")
    mt = torch.tensor(m, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    st = torch.tensor(s, dtype=image.dtype, device=image.device).view(-1, 1, 1)
    return (image - mt) / st


def to_dtype(image: Tensor, dtype: torch.dtype, *, scale: bool = True) -> Tensor:
    """Converts between ``uint8`` and floating-point images.

    Args:
        image (Tensor): uint8 or float.
        dtype (torch.dtype): ``torch.uint8`` or a floating-point dtype.
        scale (bool): rescale values between 0..255 (uint8) and 0..1 (float). Without scaling the
            values are only cast (float to uint8 is still rounded and clamped to 0..255).

    Returns:
        Tensor: the converted image (the input itself when the dtype does not change).
    """
    check_tensor(image, "image")
    if image.dtype != torch.uint8 and not image.is_floating_point():
        raise TypeError(f"image must be uint8 or floating point, got dtype {image.dtype}")
    if dtype != torch.uint8 and dtype not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be torch.uint8 or a floating-point dtype, got {dtype}")
    if not isinstance(scale, bool):
        raise TypeError(f"scale must be a bool, got {type(scale).__name__}")
    if image.dtype == dtype:
        return image
    if dtype == torch.uint8:
        x = image.to(_work_dtype(image.dtype))
        return ((x * 255) if scale else x).round_().clamp_(0, 255).to(torch.uint8)
    if image.dtype == torch.uint8:
        x = image.to(_work_dtype(dtype))
        return (x / 255 if scale else x).to(dtype)
    return image.to(dtype)
