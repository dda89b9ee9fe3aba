"""RoI align (Mask R-CNN), torchvision's semantics; see :mod:`pixbox.ops.roi`."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from pixbox.ops.roi._common import (
    BoxesLike,
    _check_input,
    _check_output_size,
    _check_scale,
    _chunks,
    _compute_dtype,
    _empty_output,
    _no_autocast,
    _span,
    _to_rois,
    _window_index,
)

__all__ = ["RoIAlign", "roi_align"]

_CHUNK_ELEMS = 1 << 22  # gathered feature elements per vectorised step
_SAMPLE_ELEMS = 1 << 20  # sample positions per step when building the interpolation weights


# roi_align


def _align_geometry(rois: Tensor, oh: int, ow: int, scale: float, sampling_ratio: int, aligned: bool):
    """Per-RoI start, bin size and sampling grid along y and x, in the input dtype (as torchvision)."""
    s = torch.full((), scale, dtype=rois.dtype, device=rois.device)  # a fill: no host-device copy
    offset = 0.5 if aligned else 0.0
    start = rois[:, 1:3] * s - offset  # [K, 2] (x, y)
    end = rois[:, 3:5] * s - offset
    size = end - start
    if not aligned:
        size = size.clamp(min=1.0)
    out = torch.full((2,), ow, dtype=rois.dtype, device=rois.device)
    out[1:].fill_(oh)
    bin_size = size / out  # [K, 2]
    if sampling_ratio > 0:
        grid = torch.full_like(start, sampling_ratio, dtype=torch.long)
    else:
        grid = torch.ceil(size / out).long().clamp(min=0)
    count = (grid[:, 0] * grid[:, 1]).clamp(min=1)  # [K]
    return start, bin_size, grid, count


def _axis_weights(start: Tensor, bin_size: Tensor, grid: Tensor, g_all: list[int], bins: int, size: int) -> Tensor:
    """Summed bilinear weights of each bin's samples along one axis, ``[K, bins, size]``.

    ``g_all`` is ``grid`` on the host (samples per bin of each RoI along this axis).

    Sample ``i`` of bin ``p`` sits at ``start + p * bin + (i + 0.5) * bin / grid`` (torchvision's
    expression, evaluated in the same order and dtype). Outside ``[-1, size]`` it has no weight;
    otherwise it is clamped to ``[0, size - 1]`` and split between its floor and the next pixel.
    """
    K = start.shape[0]
    dtype, device = start.dtype, start.device
    weights = torch.zeros((K, bins, size), dtype=dtype, device=device)
    if K == 0:
        return weights
    step = max(1, _SAMPLE_ELEMS // max(1, bins * max(g_all)))
    for i in range(0, K, step):  # chunks bound memory when a huge RoI asks for many samples
        sl = slice(i, i + step)
        gmax = max(g_all[sl])
        if gmax == 0:
            continue
        g = grid[sl]
        p = torch.arange(bins, device=device, dtype=dtype)
        it = torch.arange(gmax, device=device, dtype=dtype) + 0.5
        base = start[sl, None] + p[None, :] * bin_size[sl, None]  # [k, bins]
        pos = base[:, :, None] + it[None, None, :] * bin_size[sl, None, None] / g.clamp(min=1)[:, None, None].to(dtype)
        use = (torch.arange(gmax, device=device) < g[:, None])[:, None, :] & (pos >= -1.0) & (pos <= size)
        pos = pos.clamp(min=0)
        low = pos.long()  # [k, bins, gmax], floor of a non-negative value
        last = low >= size - 1
        low = torch.where(last, torch.full_like(low, size - 1), low)
        high = torch.where(last, low, low + 1)
        pos = torch.where(last, low.to(dtype), pos)
        frac = pos - low.to(dtype)
        w_high = torch.where(use, frac, torch.zeros_like(frac))
        w_low = torch.where(use, 1.0 - frac, torch.zeros_like(frac))
        weights[sl].scatter_add_(2, low, w_low).scatter_add_(2, high, w_high)
    return weights


def roi_align(input: Tensor, boxes: BoxesLike, output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """Averages bilinear samples of each region of interest into a fixed grid (Mask R-CNN).

    Same signature and results as ``torchvision.ops.roi_align``. The RoI is scaled by
    ``spatial_scale`` (and shifted by -0.5 pixel when ``aligned``; otherwise its width and
    height are at least 1) and cut into ``oh x ow`` bins. Each bin averages a regular grid of
    ``sampling_ratio x sampling_ratio`` bilinear samples, or ``ceil(roi_h / oh) x
    ceil(roi_w / ow)`` samples when ``sampling_ratio <= 0``. A sample outside
    ``[-1, H] x [-1, W]`` counts as 0; one in ``[-1, 0]`` is clamped to 0; at or past the last
    row/column it takes that row/column. Differentiable w.r.t. ``input``.

    Args:
        input (Tensor[N, C, H, W]): float feature maps.
        boxes (Tensor[K, 5] or list[Tensor[K_i, 4]]): RoIs as ``(batch_index, x1, y1, x2, y2)``
            rows in image coordinates, or one ``[K_i, 4]`` xyxy tensor per image. Converted to
            the compute dtype; batch indices are truncated and must lie in ``[0, N)``.
        output_size (int or tuple[int, int]): ``oh`` and ``ow`` (an int means square), ``>= 1``.
        spatial_scale (float): factor mapping box coordinates to feature-map pixels, ``> 0``.
        sampling_ratio (int): samples per bin along each axis; ``<= 0`` means adaptive.
        aligned (bool): shift the RoI by -0.5 pixel so that pixel centres line up (Detectron2).

    Returns:
        Tensor[K, C, oh, ow]: aligned features, same dtype and device as ``input``;
        ``[0, C, oh, ow]`` when there are no RoIs. Half-precision inputs (float16, bfloat16)
        are computed in float32 (RoIs too, without rounding them to the input's dtype) and the
        result is cast back; autocast does not change the dtype (float32 in, float32 out), as
        with torchvision's op.

    Raises:
        TypeError: ``input`` is not a float tensor, or arguments have the wrong type.
        ValueError: bad shapes, batch index out of range, non-finite boxes, ``output_size < 1``
            or ``spatial_scale <= 0``.

    Example:
        >>> X = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> roi_align(X, torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]]), 1, sampling_ratio=1).item()
        5.0
    """
    input = _check_input(input)
    oh, ow = _check_output_size(output_size)
    scale = _check_scale(spatial_scale)
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, (int, np.integer)):
        raise TypeError(f"sampling_ratio must be an int, got {type(sampling_ratio).__name__}")
    if not isinstance(aligned, (bool, np.bool_)):
        raise TypeError(f"aligned must be a bool, got {type(aligned).__name__}")
    dtype = _compute_dtype(input)
    rois = _to_rois(boxes, input, dtype)
    if rois.shape[0] == 0:
        return _empty_output(input, oh, ow)
    with _no_autocast(input.device):
        out = _roi_align(input.to(dtype), rois, oh, ow, scale, int(sampling_ratio), bool(aligned))
    return out.to(input.dtype)


def _roi_align(input: Tensor, rois: Tensor, oh: int, ow: int, scale: float, sampling_ratio: int,
               aligned: bool) -> Tensor:
    """:func:`roi_align` on checked arguments, in the dtype of ``input`` (float32 or float64)."""
    N, C, H, W = input.shape
    K = rois.shape[0]
    with torch.no_grad():
        start, bin_size, grid, count = _align_geometry(rois, oh, ow, scale, sampling_ratio, aligned)
        # Samples per bin on the host: known without a read for a fixed sampling ratio.
        gx, gy = ([sampling_ratio] * K,) * 2 if sampling_ratio > 0 else grid.t().tolist()
        ay = _axis_weights(start[:, 1], bin_size[:, 1], grid[:, 1], gy, oh, H)  # [K, oh, H]
        ax = _axis_weights(start[:, 0], bin_size[:, 0], grid[:, 0], gx, ow, W)  # [K, ow, W]
        ay /= count.to(ay.dtype)[:, None, None]
        y0, sh = _span((ay != 0).any(1))  # [K] rows each RoI touches
        x0, sw = _span((ax != 0).any(1))
        b = rois[:, 0].long()
    xcl = input.permute(0, 2, 3, 1).reshape(N * H * W, C)  # channels last, differentiable
    side = torch.maximum(sh, sw)
    parts, order = [], []
    for ch, (mh, mw) in _chunks(side * side, C, _CHUNK_ELEMS, sh, sw):
        kc = ch.numel()
        ri = _window_index(y0[ch], mh, H)  # [kc, mh]
        ci = _window_index(x0[ch], mw, W)  # [kc, mw]
        flat = (b[ch][:, None, None] * H + ri[:, :, None]) * W + ci[:, None, :]  # [kc, mh, mw]
        crop = xcl.index_select(0, flat.reshape(-1)).view(kc, mh, mw * C)
        wy = ay[ch].gather(2, ri[:, None, :].expand(kc, oh, mh))  # [kc, oh, mh]
        wx = ax[ch].gather(2, ci[:, None, :].expand(kc, ow, mw))  # [kc, ow, mw]
        rows = torch.bmm(wy, crop).view(kc * oh, mw, C)  # [kc * oh, mw, C]
        wxr = wx[:, None].expand(kc, oh, ow, mw).reshape(kc * oh, ow, mw)
        parts.append(torch.bmm(wxr, rows).view(kc, oh, ow, C))
        order.append(ch)
    out = torch.cat(parts) if len(parts) > 1 else parts[0]
    perm = torch.cat(order)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(K, device=perm.device)
    return out.index_select(0, inv).permute(0, 3, 1, 2).contiguous()


# --------------------------------------------------------------------------------------------


class RoIAlign(nn.Module):
    """Module form of :func:`roi_align`; it only stores the configuration.

    Args:
        output_size (int or tuple[int, int]): ``oh`` and ``ow``.
        spatial_scale (float): factor mapping box coordinates to feature-map pixels.
        sampling_ratio (int): samples per bin along each axis; ``<= 0`` means adaptive.
        aligned (bool): shift RoIs by -0.5 pixel.
    """

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float,
                 sampling_ratio: int = -1, aligned: bool = False) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, input: Tensor, rois: BoxesLike) -> Tensor:
        """``input`` [N, C, H, W], ``rois`` [K, 5] or list of [K_i, 4] -> [K, C, oh, ow]."""
        return roi_align(input, rois, self.output_size, self.spatial_scale, self.sampling_ratio, self.aligned)

    def extra_repr(self) -> str:
        return (f"output_size={self.output_size}, spatial_scale={self.spatial_scale}, "
                f"sampling_ratio={self.sampling_ratio}, aligned={self.aligned}")
