"""What roi_pool and roi_align share: argument checks, RoIs as ``[K, 5]`` rows, chunking."""

from __future__ import annotations

import contextlib
import math
from typing import Sequence, Union

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_same_device, check_tensor

BoxesLike = Union[Tensor, Sequence[Tensor]]


# validation


def _check_input(input) -> Tensor:
    check_tensor(input, "input")
    if not input.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got dtype {input.dtype}")
    if input.dim() != 4:
        raise ValueError(f"input must have shape [N, C, H, W], got {tuple(input.shape)}")
    if input.shape[2] == 0 or input.shape[3] == 0:
        raise ValueError(f"input must have H >= 1 and W >= 1, got shape {tuple(input.shape)}")
    return input


def _check_output_size(output_size) -> tuple[int, int]:
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, bool):
        size = (int(output_size), int(output_size))
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2 and all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in output_size):
        size = (int(output_size[0]), int(output_size[1]))
    else:
        raise TypeError(f"output_size must be an int or a pair of ints (h, w), got {output_size!r}")
    if min(size) < 1:
        raise ValueError(f"output_size must be >= 1, got {output_size!r}")
    return size


def _check_scale(spatial_scale) -> float:
    if isinstance(spatial_scale, bool) or not isinstance(spatial_scale, (int, float, np.floating, np.integer)):
        raise TypeError(f"spatial_scale must be a number, got {type(spatial_scale).__name__}")
    value = float(spatial_scale)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"spatial_scale must be a finite number > 0, got {spatial_scale!r}")
    return value


def _compute_dtype(input: Tensor) -> torch.dtype:
    """The dtype the ops compute in: float32 for half-precision inputs (their results are cast
    back), else the input's."""
    return torch.float32 if input.dtype in (torch.float16, torch.bfloat16) else input.dtype


def _no_autocast(device: torch.device):
    """A context with autocast off on ``device``, so that internal products (``bmm``) keep the
    compute dtype: under autocast a float32 input still gives a float32 output, as torchvision's
    autocast rule for these ops (compute in float32, return the input's dtype)."""
    try:
        return torch.autocast(device_type=device.type, enabled=False)
    except RuntimeError:  # a device type without autocast
        return contextlib.nullcontext()


def _to_rois(boxes: BoxesLike, input: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Validated ``[K, 5]`` RoIs in ``dtype`` (default the input's), from a ``[K, 5]`` tensor or a
    list of ``[K_i, 4]``."""
    dtype = input.dtype if dtype is None else dtype
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                "boxes must be a Tensor[K, 5] of (batch_index, x1, y1, x2, y2) or a list of "
                f"Tensor[K_i, 4], got a tensor of shape {tuple(boxes.shape)}"
            )
        check_same_device("input", input, "boxes", boxes)
        rois = boxes.to(dtype)
    elif isinstance(boxes, (list, tuple)):
        parts = []
        for i, b in enumerate(boxes):
            if not isinstance(b, Tensor):
                raise TypeError(f"boxes[{i}] must be a torch.Tensor, got {type(b).__name__}")
            if b.dim() != 2 or b.shape[1] != 4:
                raise ValueError(f"boxes[{i}] must have shape [K_i, 4], got {tuple(b.shape)}")
            check_same_device("input", input, f"boxes[{i}]", b)
            b = b.to(dtype)
            parts.append(torch.cat([b.new_full((b.shape[0], 1), float(i)), b], dim=1))  # [K_i, 5]
        rois = torch.cat(parts) if parts else input.new_zeros((0, 5), dtype=dtype)
    else:
        raise TypeError(f"boxes must be a Tensor[K, 5] or a list of Tensor[K_i, 4], got {type(boxes).__name__}")
    rois = rois.detach()
    if rois.numel():
        idx = rois[:, 0].long()  # truncated like torchvision's kernels
        bad = (idx < 0) | (idx >= input.shape[0])
        finite, any_bad = torch.stack([torch.isfinite(rois).all(), bad.any()]).tolist()  # one host read
        if not finite:
            raise ValueError("boxes must be finite, got NaN or infinite values")
        if any_bad:
            k = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"boxes batch index must be in [0, {input.shape[0] - 1}] (input has N={input.shape[0]}), "
                f"got {rois[k, 0].item()} in row {k}"
            )
    return rois


def _empty_output(input: Tensor, oh: int, ow: int) -> Tensor:
    """``[0, C, oh, ow]``, still connected to ``input`` so that backward works."""
    return input.narrow(0, 0, 0).reshape(0, input.shape[1], oh, ow)


# --------------------------------------------------------------------------------------------
# chunking


def _chunks(window: Tensor, per_roi: int, budget: int, *extents: Tensor) -> list[tuple[Tensor, list[int]]]:
    """Splits RoIs, sorted by ``window``, into index chunks with ``count * max(window) * per_roi``
    gathered elements at most ``budget`` (a single RoI may exceed it).

    Returns each chunk's indices and its maximum of every ``extents`` tensor ``[K]`` (int64, like
    ``window``), all from one host read: the order is found twice, on the device for the indices
    and on the host for the sizes (both stable sorts, so the same permutation).
    """
    values = torch.stack([window, *extents]).tolist()
    win, ext = values[0], values[1:]
    order = torch.argsort(window, stable=True)
    host_order = sorted(range(len(win)), key=win.__getitem__)
    sizes = [win[j] for j in host_order]
    chunks, i, n = [], 0, len(sizes)
    while i < n:
        lo, hi = i + 1, n  # largest j in [lo, hi] with (j - i) * sizes[j - 1] * per_roi <= budget
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if (mid - i) * max(sizes[mid - 1], 1) * per_roi <= budget:
                lo = mid
            else:
                hi = mid - 1
        chunks.append((order[i:lo], [max(e[j] for j in host_order[i:lo]) for e in ext]))
        i = lo
    return chunks


def _span(nonzero: Tensor) -> tuple[Tensor, Tensor]:
    """First index and length of the range holding every True of each row of ``nonzero`` [K, L]."""
    L = nonzero.shape[1]
    anyv = nonzero.any(1)
    first = nonzero.to(torch.uint8).argmax(1)  # [K]
    last = L - 1 - nonzero.flip(1).to(torch.uint8).argmax(1)  # [K]
    length = torch.where(anyv, last - first + 1, torch.ones_like(first))
    return torch.where(anyv, first, torch.zeros_like(first)), length


def _gather_rows(src: Tensor, index: Tensor, buf: list[Tensor]) -> Tensor:
    """``src.index_select(0, index)`` written into the reusable buffer ``buf[0]`` (grown as needed)."""
    n = index.numel() * src.shape[1]
    if buf[0].numel() < n:
        buf[0] = src.new_empty(n)
    out = buf[0][:n].view(index.numel(), src.shape[1])
    return torch.index_select(src, 0, index, out=out)


def _window_index(start: Tensor, length: int, size: int) -> Tensor:
    """``[K, length]`` indices of a window of ``length`` covering ``[start, ...)`` inside ``[0, size)``."""
    s = torch.minimum(start, torch.full_like(start, size - length)).clamp_(min=0)
    return s[:, None] + torch.arange(length, device=start.device)  # [K, length]


# --------------------------------------------------------------------------------------------
