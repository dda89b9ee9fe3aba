"""Colour adjustments: brightness, contrast, saturation, hue, greyscale, HSV, channel order.

The private float ops (``_brightness``, ``_contrast``, ``_saturation``, ``_hue``) take a float
working copy in [0, 1] and a factor that broadcasts against it; the colour transforms call them
once per batch.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

from pixbox._checks import check_number, check_tensor
from pixbox.data.transforms.functional._common import (
    _check_image,
    _check_rgb,
    _from_float,
    _to_float,
    _work_dtype,
)

__all__ = [
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "hsv_to_rgb",
    "permute_channels",
    "rgb_to_grayscale",
    "rgb_to_hsv",
]

Factor = Union[float, Tensor]


def _factor(factor, image: Tensor, name: str, *, low: float | None = 0.0, high: float | None = None,
            dims: int = 3):
    """A float, or a tensor shaped to broadcast one value per image against ``[B] + [1] * dims``."""
    if isinstance(factor, Tensor):
        n = image.shape[0] if image.dim() == 4 else 1
        if factor.dim() > 1 or (factor.dim() == 1 and factor.numel() not in (1, n)):
            raise ValueError(f"{name} as a tensor must be a scalar or hold one value per image ({n}), "
                             f"got shape {tuple(factor.shape)}")
        f = factor.detach().to(device=image.device, dtype=_work_dtype(image.dtype))
        if bool(torch.isnan(f).any()) or (low is not None and bool((f < low).any())) or (
                high is not None and bool((f > high).any())):
            raise ValueError(f"{name} must be in [{low}, {high}], got {factor.tolist()}")
        if image.dim() == 4 and f.dim() == 1:
            return f.view((-1,) + (1,) * dims)
        return f.reshape(())
    return float(check_number(factor, name, low=low, high=high))


def _gray(x: Tensor) -> Tensor:
    """ITU-R 601-2 luma of a float [..., 3, H, W] (or [..., 1, H, W]) image: [..., 1, H, W]."""
    if x.shape[-3] == 1:
        return x
    r, g, b = x.unbind(-3)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(-3)


def _blend(a: Tensor, b: Tensor, ratio) -> Tensor:
    return (ratio * a + (1 - ratio) * b).clamp_(0, 1)


def _brightness(x: Tensor, f) -> Tensor:
    return (x * f).clamp_(0, 1)


def _contrast(x: Tensor, f) -> Tensor:
    mean = _gray(x).mean(dim=(-3, -2, -1), keepdim=True)  # [..., 1, 1, 1], one per image
    return _blend(x, mean, f)


def _saturation(x: Tensor, f) -> Tensor:
    return _blend(x, _gray(x), f)


def _hue(x: Tensor, f) -> Tensor:
    h, s, v = _rgb_to_hsv(x).unbind(-3)
    return _hsv_to_rgb(torch.stack([(h + f).remainder_(1.0), s, v], dim=-3)).clamp_(0, 1)


def adjust_brightness(image: Tensor, factor: Factor) -> Tensor:
    """Multiplies the image by ``factor`` (0 gives black, 1 the original), then clamps.

    Args:
        image (Tensor[C, H, W] or Tensor[B, C, H, W]): uint8 or float in [0, 1].
        factor (float or Tensor[B]): >= 0; a tensor gives one factor per image of a batch.

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_image(image)
    f = _factor(factor, image, "factor")
    return _from_float(_brightness(_to_float(image), f), image.dtype)


def adjust_contrast(image: Tensor, factor: Factor) -> Tensor:
    """Blends the image with the mean of its greyscale version (0 gives flat grey, 1 the original).

    Args:
        image (Tensor[C, H, W] or Tensor[B, C, H, W]): RGB or 1 channel, uint8 or float in [0, 1].
        factor (float or Tensor[B]): >= 0; the mean is taken per image.

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_image(image)
    if image.shape[-3] not in (1, 3):
        raise ValueError(f"image must have 1 or 3 channels, got shape {tuple(image.shape)}")
    f = _factor(factor, image, "factor")
    return _from_float(_contrast(_to_float(image), f), image.dtype)


def adjust_saturation(image: Tensor, factor: Factor) -> Tensor:
    """Blends the image with its greyscale version (0 gives grey, 1 the original, 2 doubles).

    Args:
        image (Tensor[3, H, W] or Tensor[B, 3, H, W]): RGB, uint8 or float in [0, 1].
        factor (float or Tensor[B]): >= 0.

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_rgb(image, "image")
    f = _factor(factor, image, "factor")
    return _from_float(_saturation(_to_float(image), f), image.dtype)


def adjust_hue(image: Tensor, factor: Factor) -> Tensor:
    """Rotates the hue by ``factor`` turns (HSV space; -0.5 and 0.5 both give the complement).

    Args:
        image (Tensor[3, H, W] or Tensor[B, 3, H, W]): RGB, uint8 or float in [0, 1].
        factor (float or Tensor[B]): in [-0.5, 0.5].

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_rgb(image, "image")
    f = _factor(factor, image, "factor", low=-0.5, high=0.5, dims=2)
    return _from_float(_hue(_to_float(image), f), image.dtype)


def rgb_to_grayscale(image: Tensor) -> Tensor:
    """ITU-R 601-2 luma ``0.299 R + 0.587 G + 0.114 B``.

    Args:
        image (Tensor[..., 3, H, W]): uint8 or float in [0, 1].

    Returns:
        Tensor[..., 1, H, W]: same dtype (uint8 rounded).
    """
    _check_rgb(image, "image")
    return _from_float(_gray(_to_float(image)), image.dtype)


def _rgb_to_hsv(x: Tensor) -> Tensor:
    r, g, b = x.unbind(-3)
    maxc, minc = x.amax(dim=-3), x.amin(dim=-3)
    delta = maxc - minc
    s = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    d = torch.where(delta > 0, delta, torch.ones_like(delta))
    # The hue sector depends on which channel is the largest (red wins ties, then green).
    h = torch.where(maxc == r, (g - b) / d, torch.where(maxc == g, 2 + (b - r) / d, 4 + (r - g) / d))
    h = torch.where(delta > 0, (h / 6).remainder(1.0), torch.zeros_like(h))
    return torch.stack([h, s, maxc], dim=-3)


def _hsv_to_rgb(x: Tensor) -> Tensor:
    # Channel c = v - v * s * clamp(min(k, 4 - k), 0, 1) with k = (n_c + 6 h) mod 6 and
    # n = (5, 3, 1) for (r, g, b): the piecewise-linear hue ramps, all three channels at once.
    h, s, v = x.unbind(-3)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(3, 1, 1)
    k = (n + (h.remainder(1.0) * 6).unsqueeze(-3)).remainder_(6)  # [..., 3, H, W]
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)  # [..., 3, H, W]
    return v.unsqueeze(-3) - (v * s).unsqueeze(-3) * ramp


def rgb_to_hsv(image: Tensor) -> Tensor:
    """RGB to HSV.

    Args:
        image (Tensor[..., 3, H, W]): float RGB in [0, 1].

    Returns:
        Tensor[..., 3, H, W]: hue in [0, 1) (turns; 0 for greys), saturation and value in [0, 1].
    """
    check_tensor(image, "image")
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"image must have shape [..., 3, H, W], got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"image must be floating point in [0, 1], got dtype {image.dtype}")
    return _rgb_to_hsv(image)


def hsv_to_rgb(image: Tensor) -> Tensor:
    """HSV to RGB, the inverse of :func:`rgb_to_hsv`.

    Args:
        image (Tensor[..., 3, H, W]): float hue (turns, any value; taken modulo 1), saturation and
            value in [0, 1].

    Returns:
        Tensor[..., 3, H, W]: float RGB in [0, 1].
    """
    check_tensor(image, "image")
    if image.dim() < 3 or image.shape[-3] != 3:
        raise ValueError(f"image must have shape [..., 3, H, W], got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"image must be floating point, got dtype {image.dtype}")
    return _hsv_to_rgb(image)


def permute_channels(image: Tensor, permutation) -> Tensor:
    """Reorders the channels: output channel ``c`` is input channel ``permutation[c]``.

    Args:
        image (Tensor[C, H, W] or Tensor[B, C, H, W]): any dtype.
        permutation (sequence of int or Tensor[C] or Tensor[B, C]): a permutation of ``0 .. C-1``;
            a ``[B, C]`` tensor gives one permutation per image of a batch.

    Returns:
        Tensor: same shape, dtype and device.
    """
    _check_image(image)
    c = image.shape[-3]
    perm = torch.as_tensor(permutation, dtype=torch.int64)
    ok_shape = perm.shape == (c,) or (image.dim() == 4 and perm.shape == (image.shape[0], c))
    if not ok_shape:
        raise ValueError(f"permutation must have shape [{c}] or [B, {c}], got {tuple(perm.shape)}")
    if not bool((perm.sort(dim=-1).values == torch.arange(c)).all()):
        raise ValueError(f"permutation must be a permutation of 0..{c - 1}, got {perm.tolist()}")
    perm = perm.to(image.device)
    if perm.dim() == 1:
        return image.index_select(-3, perm)
    return image.gather(1, perm[:, :, None, None].expand(image.shape))


def rgb_to_ycbcr(img: Tensor) -> Tensor:
    """RGB in [0, 1] to YCbCr (ITU-R BT.601 full-range coefficients, as JPEG), Cb and Cr centred on 0.5.

    Args:
        img (Tensor[..., 3, H, W]): float RGB.

    Returns:
        Tensor[..., 3, H, W]: Y, Cb, Cr, each in [0, 1] for RGB in [0, 1].
    """
    r, g, b = img.unbind(-3)
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 0.5 + (b - y) * (0.5 / (1 - 0.114))
    cr = 0.5 + (r - y) * (0.5 / (1 - 0.299))
    return torch.stack([y, cb, cr], dim=-3)


def ycbcr_to_rgb(img: Tensor) -> Tensor:
    """The inverse of :func:`rgb_to_ycbcr` (not clamped).

    Args:
        img (Tensor[..., 3, H, W]): float Y, Cb, Cr.

    Returns:
        Tensor[..., 3, H, W]: R, G, B.
    """
    y, cb, cr = img.unbind(-3)
    r = y + (cr - 0.5) * (2 * (1 - 0.299))
    b = y + (cb - 0.5) * (2 * (1 - 0.114))
    g = (y - 0.299 * r - 0.114 * b) / 0.587
    return torch.stack([r, g, b], dim=-3)
