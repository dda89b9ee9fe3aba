"""Transforms that change neither geometry nor colour: dtype, normalization, box hygiene."""

from __future__ import annotations

import torch

from pixbox.data.transforms import functional as F
from pixbox.data.transforms._base import Transform, _check_fill, _check_min_size, _copy

__all__ = ["Normalize", "SanitizeBoxes", "ToDtype"]

class Normalize(Transform):
    """``(image - mean) / std`` per channel; float images only (``TypeError`` for uint8).

    Args:
        mean (number or sequence): per-channel mean.
        std (number or sequence): per-channel standard deviation, > 0.
    """

    def __init__(self, mean, std):
        self.mean = _check_fill(mean, "mean")
        self.std = _check_fill(std, "std")
        stds = self.std if isinstance(self.std, tuple) else (self.std,)
        if any(not float(s) > 0 for s in stds):
            raise ValueError(f"std must be > 0, got {std!r}")

    def apply(self, images, targets, params):
        return F.normalize(images, self.mean, self.std), [_copy(t) for t in targets]


class ToDtype(Transform):
    """Converts the image between ``uint8`` and floating point (see :func:`~.functional.to_dtype`).

    Args:
        dtype (torch.dtype): ``torch.uint8`` or a floating-point dtype.
        scale (bool): rescale between 0..255 and 0..1.
    """

    def __init__(self, dtype: torch.dtype, scale: bool = True):
        if not isinstance(dtype, torch.dtype) or (dtype != torch.uint8 and not dtype.is_floating_point):
            raise TypeError(f"dtype must be torch.uint8 or a floating-point torch.dtype, got {dtype!r}")
        if not isinstance(scale, bool):
            raise TypeError(f"scale must be a bool, got {type(scale).__name__}")
        self.dtype, self.scale = dtype, scale

    def apply(self, images, targets, params):
        return F.to_dtype(images, self.dtype, scale=self.scale), [_copy(t) for t in targets]


class SanitizeBoxes(Transform):
    """Clips boxes to the image and drops the bad ones with all their per-box entries.

    A box is dropped when a coordinate is not finite, when its clipped width or height is below
    ``min_size`` or is zero (degenerate boxes always go), or when it is inverted. Per-box entries
    follow the rule of :func:`~pixbox.data.transforms.functional.filter_target`. Targets that are
    None or hold no ``"boxes"`` pass through. The image is not changed.

    Args:
        min_size (float): minimum clipped width and height in pixels, >= 0.
    """

    def __init__(self, min_size: float = 1.0):
        self.min_size, _ = _check_min_size(min_size, 0.0)

    def apply(self, images, targets, params):
        size = (int(images.shape[-2]), int(images.shape[-1]))
        out_targets = []
        for t in targets:
            if t is None or "boxes" not in t:
                out_targets.append(_copy(t))
                continue
            boxes, keep = F.clip_and_filter_boxes(t["boxes"], size, min_size=self.min_size)
            nonzero = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # [K]
            out = F.filter_target(t, keep[nonzero])
            out["boxes"] = boxes[nonzero]
            out_targets.append(out)
        return images, out_targets
