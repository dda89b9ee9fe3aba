"""The images a predictor (or :func:`pixbox.stylize`) takes, as tensors: :func:`as_images`.

One image is a path (any format :func:`pixbox.data.io.read_image` reads), a PIL image, a numpy
array ``[H, W, 3]``, ``[H, W, 4]`` (alpha dropped) or ``[H, W]`` (grey), or a tensor ``[3, H, W]``,
``[1, H, W]`` or ``[H, W]``; a tensor ``[B, 3, H, W]`` or a list holds several. Pixel values are
``uint8`` in 0..255 or floating point in [0, 1]. A float image with values above 1 is refused,
not silently misread: 0..255 floats would give wrong answers (a brighter, saturated image), so
the error says to divide by 255 or pass ``uint8``. Empty images and NaN or infinite values are
refused too.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
from torch import Tensor

__all__ = ["as_image", "as_images"]

#: Float pixel values may stray this far outside [0, 1] (rounding of a conversion); they are clamped.
FLOAT_TOLERANCE = 1e-3


def _check_pixels(image: Tensor, name: str) -> Tensor:
    """``image`` ([3, H, W] uint8 or float) checked: not empty, float values finite and in [0, 1]."""
    if image.shape[-1] == 0 or image.shape[-2] == 0:
        raise ValueError(f"{name} must not be empty, got an image of size {tuple(image.shape[-2:])} (H, W)")
    if image.dtype == torch.uint8:
        return image
    if not image.is_floating_point():
        raise TypeError(f"{name} must be uint8 (0..255) or floating point (0..1), got dtype {image.dtype}")
    lo, hi = torch.aminmax(image.detach().float())
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must have finite pixel values, got NaN or infinity")
    if lo < -FLOAT_TOLERANCE or hi > 1 + FLOAT_TOLERANCE:
        hint = "; divide by 255, or pass uint8" if hi > 1 + FLOAT_TOLERANCE and hi <= 255 + FLOAT_TOLERANCE else ""
        raise ValueError(f"{name} as floating point must have values in [0, 1], got [{lo:g}, {hi:g}]{hint}")
    return image.float().clamp(0, 1)


def as_images(images, name: str = "images") -> list[tuple[Tensor, str | None]]:
    """Splits ``images`` into ``(Tensor[3, H, W], path or None)`` pairs.

    Args:
        images: one image or several (see the module docstring).
        name (str): the argument's name, for errors.

    Returns:
        list[tuple[Tensor, str | None]]: each image ``uint8`` (0..255) or ``float32`` (0..1),
        with its file path (None when it was not read from a file).

    Raises:
        TypeError: an unsupported type or dtype.
        ValueError: a bad shape, an empty list or image, NaN or infinite values, or float values
            outside [0, 1] (such as 0..255).
    """
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError(f"{name} must not be an empty list")
        out = []
        for i, item in enumerate(images):
            if isinstance(item, (list, tuple)):
                raise TypeError(f"{name}[{i}] must be an image, not a nested {type(item).__name__}")
            out += as_images(item, f"{name}[{i}]")
        return out
    if isinstance(images, (str, os.PathLike)):
        from pixbox.data.io import read_image

        return [(_check_pixels(read_image(images), name), str(images))]
    if isinstance(images, Tensor):
        if images.dim() == 4:
            return [pair for i, img in enumerate(images) for pair in as_images(img, f"{name}[{i}]")]
        if images.dim() == 2:
            images = images[None]
        if images.dim() != 3 or images.shape[0] not in (1, 3):
            raise ValueError(f"{name} must be a Tensor[3, H, W], [1, H, W] or [B, 3, H, W], got shape "
                             f"{tuple(images.shape)}")
        images = _check_pixels(images, name)
        if images.shape[0] == 1:
            images = images.expand(3, -1, -1)
        return [(images, None)]
    if isinstance(images, np.ndarray):
        array = images
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ValueError(f"{name} as a numpy array must be [H, W, 3] (RGB), [H, W, 4] or [H, W], got shape "
                             f"{array.shape}")
        array = array[:, :, :3]
        if array.dtype == np.uint8:
            tensor = torch.from_numpy(np.array(array)).permute(2, 0, 1)  # a writable, contiguous copy
        elif np.issubdtype(array.dtype, np.floating):
            tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1)
        else:
            raise TypeError(f"{name} as a numpy array must be uint8 (0..255) or float (0..1), got dtype {array.dtype}")
        return [(_check_pixels(tensor, name), None)]
    from PIL import Image

    if isinstance(images, Image.Image):
        array = np.asarray(images.convert("RGB"), dtype=np.uint8)
        return [(_check_pixels(torch.from_numpy(array.copy()).permute(2, 0, 1), name),
                 getattr(images, "filename", None) or None)]
    raise TypeError(f"{name} must be a path, a PIL image, a numpy array, a Tensor or a list of them, "
                    f"got {type(images).__name__}")


def as_image(image, name: str = "image") -> Tensor:
    """One image (see the module docstring) as float RGB ``Tensor[3, H, W]`` in [0, 1].

    Raises:
        TypeError, ValueError: as :func:`as_images`; also for a list or a batch of several images.
    """
    if isinstance(image, (list, tuple)) or (isinstance(image, Tensor) and image.dim() == 4 and image.shape[0] != 1):
        got = f"a {type(image).__name__}" if isinstance(image, (list, tuple)) else f"shape {tuple(image.shape)}"
        raise TypeError(f"{name} must be one image (a path, a PIL image, a numpy array or a tensor), got {got}")
    (tensor, _), = as_images(image, name)
    return tensor.float() / 255.0 if tensor.dtype == torch.uint8 else tensor
