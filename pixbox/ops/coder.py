"""Offset encoding of boxes relative to anchors (the SSD / Faster R-CNN parametrisation).

For an anchor with centre ``(xa, ya)`` and size ``(wa, ha)`` and an assigned box with centre
``(xb, yb)`` and size ``(wb, hb)`` the offsets are::

    ((xb - xa) / wa - mu_x) / sigma_x,   ((yb - ya) / ha - mu_y) / sigma_y,
    (log(wb / wa) - mu_w) / sigma_w,     (log(hb / ha) - mu_h) / sigma_h

with ``means = (mu_x, mu_y, mu_w, mu_h)`` and ``stds = (sigma_x, sigma_y, sigma_w, sigma_h)``.
The defaults ``means=0, stds=(0.1, 0.1, 0.2, 0.2)`` are D2L's and SSD's.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor

from pixbox._checks import check_boxes, check_four, check_number, check_same_device, check_tensor

__all__ = ["encode_boxes", "decode_boxes", "BoxCoder", "DEFAULT_STDS", "DEFAULT_LOG_CLAMP"]

DEFAULT_MEANS = (0.0, 0.0, 0.0, 0.0)
DEFAULT_STDS = (0.1, 0.1, 0.2, 0.2)
# Largest log-size delta decode will exponentiate: a box at most 1000/16 times its anchor
# (torchvision's bbox_xform_clip). Keeps exp() finite for any network output.
DEFAULT_LOG_CLAMP = math.log(1000.0 / 16)


def _filled(values: Sequence[float], like: Tensor) -> Tensor:
    """``like.new_tensor(values)`` made by fills, without a host-to-device copy (a sync on CUDA)."""
    out = like.new_empty(len(values))
    i = 0
    while i < len(values):  # one fill per run of equal values
        j = i + 1
        while j < len(values) and values[j] == values[i]:
            j += 1
        out[i:j].fill_(values[i])
        i = j
    return out


def _center_size(boxes: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def _encode(anchors: Tensor, boxes: Tensor, means, stds) -> Tensor:
    """Unchecked :func:`encode_boxes` on ``[..., 4]`` tensors."""
    xa, ya, wa, ha = _center_size(anchors)
    xb, yb, wb, hb = _center_size(boxes)
    out = torch.stack(
        [(xb - xa) / wa, (yb - ya) / ha, torch.log(wb / wa), torch.log(hb / ha)], dim=-1
    )  # [..., 4]
    if any(m != 0 for m in means):
        out = out - _filled(means, out)
    return out / _filled(stds, out)


def _decode(anchors: Tensor, offsets: Tensor, means, stds, log_clamp: float) -> Tensor:
    """Unchecked :func:`decode_boxes` on ``[..., 4]`` tensors."""
    d = offsets * _filled(stds, offsets)
    if any(m != 0 for m in means):
        d = d + _filled(means, d)
    xa, ya, wa, ha = _center_size(anchors)
    cx = d[..., 0] * wa + xa
    cy = d[..., 1] * ha + ya
    w = torch.exp(d[..., 2].clamp(max=log_clamp)) * wa
    h = torch.exp(d[..., 3].clamp(max=log_clamp)) * ha
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def encode_boxes(
    anchors: Tensor,
    boxes: Tensor,
    means: Sequence[float] = DEFAULT_MEANS,
    stds: Sequence[float] = DEFAULT_STDS,
) -> Tensor:
    """Offsets that turn each anchor into its assigned box (see the module docstring).

    Encode only anchors that have an assigned box: the offsets of a degenerate box
    (zero width or height) are undefined, and this raises rather than return ``-inf``.

    Args:
        anchors (Tensor[N, 4]): xyxy with positive width and height.
        boxes (Tensor[N, 4]): xyxy, the box assigned to each anchor, positive width and height.
        means (4 floats): mu.
        stds (4 floats): sigma, positive.

    Returns:
        Tensor[N, 4]: offsets ``(dx, dy, dw, dh)``.
    """
    check_boxes(anchors, "anchors")
    check_boxes(boxes, "boxes")
    check_same_device("anchors", anchors, "boxes", boxes)
    if anchors.shape != boxes.shape:
        raise ValueError(f"anchors and boxes must have the same shape [N, 4], got {tuple(anchors.shape)} and {tuple(boxes.shape)}")
    means, stds = _check_means_stds(means, stds)
    for name, t in (("anchors", anchors), ("boxes", boxes)):
        if t.numel() and bool(((t[:, 2:] - t[:, :2]) <= 0).any()):
            raise ValueError(f"{name} must have positive width and height to be encoded (log(0) is undefined)")
    return _encode(anchors, boxes, means, stds)


def decode_boxes(
    anchors: Tensor,
    offsets: Tensor,
    means: Sequence[float] = DEFAULT_MEANS,
    stds: Sequence[float] = DEFAULT_STDS,
    *,
    log_clamp: float = DEFAULT_LOG_CLAMP,
) -> Tensor:
    """Boxes from anchors and offsets: the inverse of :func:`encode_boxes`.

    Args:
        anchors (Tensor[..., 4]): xyxy.
        offsets (Tensor[..., 4]): ``(dx, dy, dw, dh)``, same shape as ``anchors`` or broadcastable
            to it (e.g. anchors ``[A, 4]`` with offsets ``[B, A, 4]``).
        means, stds (4 floats): as in :func:`encode_boxes`.
        log_clamp (float): the log-size deltas (after ``stds`` and ``means``) are clamped to at most
            this before ``exp``, so no output is infinite. Default ``log(1000 / 16)``.

    Returns:
        Tensor[..., 4]: xyxy boxes.
    """
    check_tensor(anchors, "anchors")
    check_tensor(offsets, "offsets")
    if anchors.dim() == 0 or anchors.shape[-1] != 4:
        raise ValueError(f"anchors must have shape [..., 4], got {tuple(anchors.shape)}")
    if offsets.dim() == 0 or offsets.shape[-1] != 4:
        raise ValueError(f"offsets must have shape [..., 4], got {tuple(offsets.shape)}")
    if not offsets.is_floating_point():
        raise TypeError(f"offsets must be a floating-point tensor, got dtype {offsets.dtype}")
    check_same_device("anchors", anchors, "offsets", offsets)
    try:
        torch.broadcast_shapes(anchors.shape, offsets.shape)
    except RuntimeError:
        raise ValueError(
            f"anchors {tuple(anchors.shape)} and offsets {tuple(offsets.shape)} must have broadcastable shapes"
        ) from None
    means, stds = _check_means_stds(means, stds)
    check_number(log_clamp, "log_clamp")
    return _decode(anchors.to(offsets.dtype), offsets, means, stds, log_clamp)


def _check_means_stds(means, stds):
    means = check_four(means, "means")
    stds = check_four(stds, "stds")
    if any(not s > 0 for s in stds):
        raise ValueError(f"stds must be positive, got {stds}")
    return means, stds


class BoxCoder:
    """Holds ``means``, ``stds`` and ``log_clamp``; calls :func:`encode_boxes` / :func:`decode_boxes`."""

    def __init__(self, means: Sequence[float] = DEFAULT_MEANS, stds: Sequence[float] = DEFAULT_STDS,
                 log_clamp: float = DEFAULT_LOG_CLAMP) -> None:
        self.means, self.stds = _check_means_stds(means, stds)
        self.log_clamp = check_number(log_clamp, "log_clamp")

    def encode(self, anchors: Tensor, boxes: Tensor) -> Tensor:
        return encode_boxes(anchors, boxes, self.means, self.stds)

    def decode(self, anchors: Tensor, offsets: Tensor) -> Tensor:
        return decode_boxes(anchors, offsets, self.means, self.stds, log_clamp=self.log_clamp)

    def __repr__(self) -> str:
        return f"BoxCoder(means={self.means}, stds={self.stds}, log_clamp={self.log_clamp:.4g})"
