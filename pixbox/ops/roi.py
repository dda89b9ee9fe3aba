"""RoI pooling and RoI align: torchvision's semantics in pure, vectorised PyTorch.

Both ops cut a fixed-size ``output_size`` grid of features out of every region of interest
(RoI) of a feature map, as used by Fast/Faster/Mask R-CNN (D2L, "Region-based CNNs").
RoIs are ``[K, 5]`` rows ``(batch_index, x1, y1, x2, y2)`` in image coordinates, mapped onto
the feature map by ``spatial_scale``; a list of per-image ``[K_i, 4]`` boxes is accepted too.
Outputs equal torchvision's CPU kernels (up to floating-point summation order): box geometry is
computed in the input's dtype with the same operations in the same order.

:func:`roi_pool` (Fast R-CNN): the scaled corners are rounded half away from zero, the RoI is
at least 1x1 pixel, bin ``(ph, pw)`` covers rows ``[floor(ph * bh), ceil((ph + 1) * bh))``
(likewise columns) offset by the RoI start and clipped to the map; the output is the bin's
maximum (0 for an empty bin) and the gradient goes to the first maximal element in row-major
order. For float32 (and half) inputs the maximum runs on int64 keys that order like
``(value, -position)``, so one integer maximum yields the first maximal position too, and bins
are looked up in a 2-D sparse table of range maxima (levels up to the largest bin side): each
bin is the union of four power-of-two ranges anchored at its corners, so four lookups per
output whatever the bin size. The table lives in a scratch buffer reused across calls (at most
``_POOL_TABLE_ELEMS`` int64 elements, 256 MB, per thread; fresh allocations of that size cost
more in page faults than the table's computation). float64 inputs, and tables that would be
larger, take a maximum over the columns of each column bin, then over the rows of each row bin,
on chunks of RoIs. The argmax indices are found without autograd; the output is one
differentiable gather whose backward is a ``scatter_add``.

:func:`roi_align` (Mask R-CNN): each bin averages bilinear samples on a regular
``grid_h x grid_w`` grid (``sampling_ratio``, or ``ceil(roi_size / output_size)`` per RoI
when ``sampling_ratio <= 0``). A sample outside ``[-1, H] x [-1, W]`` contributes 0;
coordinates in ``[-1, 0]`` are clamped to 0, and samples at or beyond the last row/column use
that row/column. Sample weights are products of a row weight and a column weight, and the
"outside" test is separable too, so each RoI's output is

    out[k, c] = A_y[k] @ X[b_k, c] @ A_x[k].T / count_k

with ``A_y[k]`` ``[oh, H]`` and ``A_x[k]`` ``[ow, W]`` holding the summed row and column
weights of the bins' samples. The products run on the window of rows and columns each RoI
touches (RoIs are grouped by window size and processed in chunks of bounded memory); the
backward pass (w.r.t. the input) is the same matrix products transposed, via autograd.

Example (D2L's RoI pooling example):
    >>> X = torch.arange(16.0).reshape(1, 1, 4, 4)
    >>> rois = torch.tensor([[0.0, 0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 10.0, 30.0, 30.0]])
    >>> roi_pool(X, rois, output_size=(2, 2), spatial_scale=0.1).tolist()
    [[[[5.0, 6.0], [9.0, 10.0]]], [[[9.0, 11.0], [13.0, 15.0]]]]
"""

from __future__ import annotations

import math
import threading
from typing import Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from pixbox._checks import check_same_device, check_tensor

__all__ = ["roi_pool", "roi_align", "RoIPool", "RoIAlign"]

BoxesLike = Union[Tensor, Sequence[Tensor]]

_CHUNK_ELEMS = 1 << 22  # gathered feature elements per vectorised step of roi_align
_POOL_CHUNK_ELEMS = 1 << 19  # ... of roi_pool (its gathers are reduced at once: stay in cache)
_POOL_TABLE_ELEMS = 1 << 25  # largest range-maximum table of roi_pool (int64 elements), else windows
_SAMPLE_ELEMS = 1 << 20
_SCRATCH = threading.local()  # roi_pool's reusable table buffer (see _workspace)  # sample positions per step when building the interpolation weights
_FLT_MAX = float(np.finfo(np.float32).max)  # torchvision's roi_pool starts each bin at -FLT_MAX
_LOW_MASK = (1 << 32) - 1  # low half of a roi_pool order key


# --------------------------------------------------------------------------------------------
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


def _to_rois(boxes: BoxesLike, input: Tensor) -> Tensor:
    """Validated ``[K, 5]`` RoIs in the input's dtype, from a ``[K, 5]`` tensor or a list of ``[K_i, 4]``."""
    if isinstance(boxes, Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(
                "boxes must be a Tensor[K, 5] of (batch_index, x1, y1, x2, y2) or a list of "
                f"Tensor[K_i, 4], got a tensor of shape {tuple(boxes.shape)}"
            )
        check_same_device("input", input, "boxes", boxes)
        rois = boxes.to(input.dtype)
    elif isinstance(boxes, (list, tuple)):
        parts = []
        for i, b in enumerate(boxes):
            if not isinstance(b, Tensor):
                raise TypeError(f"boxes[{i}] must be a torch.Tensor, got {type(b).__name__}")
            if b.dim() != 2 or b.shape[1] != 4:
                raise ValueError(f"boxes[{i}] must have shape [K_i, 4], got {tuple(b.shape)}")
            check_same_device("input", input, f"boxes[{i}]", b)
            b = b.to(input.dtype)
            parts.append(torch.cat([b.new_full((b.shape[0], 1), float(i)), b], dim=1))  # [K_i, 5]
        rois = torch.cat(parts) if parts else input.new_zeros((0, 5))
    else:
        raise TypeError(f"boxes must be a Tensor[K, 5] or a list of Tensor[K_i, 4], got {type(boxes).__name__}")
    rois = rois.detach()
    if rois.numel():
        if not bool(torch.isfinite(rois).all()):
            raise ValueError("boxes must be finite, got NaN or infinite values")
        idx = rois[:, 0].long()  # truncated like torchvision's kernels
        bad = (idx < 0) | (idx >= input.shape[0])
        if bool(bad.any()):
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


def _chunks(window: Tensor, per_roi: int, budget: int) -> list[Tensor]:
    """Splits RoIs, sorted by ``window``, into index chunks with ``count * max(window) * per_roi``
    gathered elements at most ``budget`` (a single RoI may exceed it)."""
    order = torch.argsort(window, stable=True)
    sizes = window[order].tolist()
    chunks, i, n = [], 0, len(sizes)
    while i < n:
        lo, hi = i + 1, n  # largest j in [lo, hi] with (j - i) * sizes[j - 1] * per_roi <= budget
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if (mid - i) * max(sizes[mid - 1], 1) * per_roi <= budget:
                lo = mid
            else:
                hi = mid - 1
        chunks.append(order[i:lo])
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
# roi_pool


def _round_half_away(v: Tensor) -> Tensor:
    """C's ``round``: halves go away from zero (``torch.round`` rounds them to even)."""
    t = torch.trunc(v)
    frac = v - t  # exact
    return t + torch.sign(v) * (frac.abs() >= 0.5).to(v.dtype)


def _pool_bins(start: Tensor, end: Tensor, bins: int, size: int) -> tuple[Tensor, Tensor]:
    """Clipped integer bin limits ``[K, bins]`` along one axis from rounded RoI limits ``[K]``."""
    length = torch.clamp(end - start + 1, min=1)  # [K], malformed RoIs become 1 pixel
    bin_size = length / bins  # in the input dtype, as torchvision
    p = torch.arange(bins, device=start.device, dtype=start.dtype)
    lo = torch.floor(p[None, :] * bin_size[:, None]).long()  # [K, bins]
    hi = torch.ceil((p[None, :] + 1) * bin_size[:, None]).long()
    off = start.long()[:, None]
    return (lo + off).clamp_(0, size), (hi + off).clamp_(0, size)


def _order_keys(x: Tensor, H: int, W: int) -> Tensor:
    """int64 keys ``[N*H*W, C]`` that order like ``(value, -(h * W + w))``, for a channels-last
    ``[N*H*W, C]`` float (not float64) map: one integer maximum finds the bin maximum *and* its
    first position in row-major order.

    The high 32 bits are the float32 bit pattern made monotone (negative values have all but the
    sign bit flipped; -0.0 is first turned into +0.0, which compares equal to it), the low 32
    bits are ``2**32 - 1 - (h * W + w)``.
    """
    bits = (x.float() + 0.0).view(torch.int32)
    ordered = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()
    pos = torch.arange(H * W, device=x.device).repeat(x.shape[0] // (H * W))  # [N*H*W]
    return (ordered << 32) | (_LOW_MASK - pos)[:, None]


def _bin_level(length: Tensor) -> Tensor:
    """``floor(log2(length))`` of positive int64 lengths (exact; 0 for lengths < 2)."""
    level = torch.zeros_like(length)
    for j in range(1, int(length.max()).bit_length()):
        level += (length >> j > 0).long()
    return level


def _workspace(numel: int, like: Tensor) -> Tensor:
    """A flat scratch tensor of ``numel`` elements, reused across calls (per thread, dtype and
    device). Fresh large allocations cost page faults on every touch: for roi_pool's table they
    took longer than computing it."""
    cache = _SCRATCH.__dict__.setdefault("buffers", {})
    key = (like.dtype, like.device)
    buf = cache.get(key)
    if buf is None or buf.numel() < numel:
        cache.pop(key, None)
        buf = cache[key] = like.new_empty(numel)
    return buf[:numel]


def _range_max_table(x: Tensor, N: int, H: int, W: int, levels_h: int, levels_w: int) -> Tensor:
    """2-D sparse table of order-key range maxima (:func:`_order_keys`) of a channels-last map:
    ``table[k, l, n, h, w] = max(keys[n, h:h + 2**k, w:w + 2**l])``.

    Args:
        x (Tensor[N * H * W, C]): the channels-last float map (not float64).
        N, H, W (int): its shape.
        levels_h, levels_w (int): levels ``k < levels_h``, ``l < levels_w``.

    Returns:
        Tensor[levels_h, levels_w, N, H, W, C] int64, in the reusable :func:`_workspace`.
        Entries whose range would cross the map's end hold the maximum of the part inside;
        lookups never use them.
    """
    C = x.shape[1]
    table = _workspace(levels_h * levels_w * x.numel(), x.new_empty(0, dtype=torch.int64))
    table = table.view(levels_h, levels_w, N, H, W, C)
    keys = table[0, 0].view(N * H * W, C)
    bits = (x.float() + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into +0.0
    keys.copy_(bits ^ ((bits >> 31) & 0x7FFFFFFF)).bitwise_left_shift_(32)  # negatives: all but the sign flipped
    keys.bitwise_or_((_LOW_MASK - torch.arange(H * W, device=x.device)).repeat(N)[:, None])
    for l in range(1, levels_w):
        half, prev, cur = 1 << (l - 1), table[0, l - 1], table[0, l]
        cur[:, :, W - half:] = prev[:, :, W - half:]
        torch.maximum(prev[:, :, : W - half], prev[:, :, half:], out=cur[:, :, : W - half])
    for k in range(1, levels_h):
        half, prev, cur = 1 << (k - 1), table[k - 1], table[k]
        cur[:, :, H - half:] = prev[:, :, H - half:]
        torch.maximum(prev[:, :, : H - half], prev[:, :, half:], out=cur[:, :, : H - half])
    return table


@torch.no_grad()
def _roi_pool_argmax_table(input: Tensor, rois: Tensor, oh: int, ow: int, scale: float):
    """:func:`_roi_pool_argmax` by range-maximum lookups, or None when the table is too large.

    Every bin ``[hs, he) x [ws, we)`` is covered by the (overlapping) four ranges of sides
    ``2**k <= he - hs`` and ``2**l <= we - ws`` anchored at its corners, so its maximum order key
    (value first, then the first row-major position) is the maximum of four entries of a 2-D
    sparse table (:func:`_range_max_table`): four gathers per output whatever the bin size.
    The index is returned as a ``[K, C, oh, ow]`` view of a ``[K, oh, ow, C]`` tensor.
    """
    N, C, H, W = input.shape
    K = rois.shape[0]
    device = input.device
    s = torch.tensor(scale, dtype=input.dtype, device=device)
    b = rois[:, 0].long()
    corners = _round_half_away(rois[:, 1:] * s)  # [K, 4]
    hs, he = _pool_bins(corners[:, 1], corners[:, 3], oh, H)  # [K, oh]
    ws, we = _pool_bins(corners[:, 0], corners[:, 2], ow, W)  # [K, ow]
    bh = (he - hs).clamp(min=0)  # [K, oh] bin heights
    bw = (we - ws).clamp(min=0)  # [K, ow]
    kh, kw = _bin_level(bh.clamp(min=1)), _bin_level(bw.clamp(min=1))  # [K, oh], [K, ow]
    levels_h, levels_w = int(kh.max()) + 1, int(kw.max()) + 1
    if levels_h * levels_w * input.numel() > _POOL_TABLE_ELEMS:
        return None
    x = input.detach().permute(0, 2, 3, 1).reshape(N * H * W, C)  # channels last
    table = _range_max_table(x, N, H, W, levels_h, levels_w).view(-1, C)
    # The two anchor rows (columns) of each bin: its start, and its end minus the range side.
    # Empty bins get the 1-pixel range at a clipped position (masked by the caller).
    r = torch.stack([hs, he - (1 << kh)], dim=-1).clamp_(0, H - 1)  # [K, oh, 2]
    c = torch.stack([ws, we - (1 << kw)], dim=-1).clamp_(0, W - 1)  # [K, ow, 2]
    level = (kh[:, :, None] * levels_w + kw[:, None, :]) * N + b[:, None, None]  # [K, oh, ow]
    flat = (level[..., None, None] * H + r[:, :, None, :, None]) * W + c[:, None, :, None, :]  # [K, oh, ow, 2, 2]
    flat = flat.reshape(K, oh * ow * 4)
    index = torch.empty((K, oh, ow, C), dtype=torch.long, device=device)
    base = (b[:, None, None, None] * C + torch.arange(C, device=device)) * (H * W)  # [K, 1, 1, C]
    buf = [table.new_empty(0)]
    step = max(1, _POOL_CHUNK_ELEMS // (oh * ow * 4 * C))
    for start in range(0, K, step):
        stop = min(K, start + step)
        v = _gather_rows(table, flat[start:stop].reshape(-1), buf).view(stop - start, oh, ow, 4, C)
        out = index[start:stop]
        torch.maximum(v[:, :, :, 0], v[:, :, :, 1], out=out)
        torch.maximum(out, v[:, :, :, 2], out=out)
        torch.maximum(out, v[:, :, :, 3], out=out)
        out.bitwise_and_(_LOW_MASK)  # [k, oh, ow, C]: 2**32 - 1 - (h * W + w)
        torch.sub(base[start:stop] + _LOW_MASK, out, out=out)
    empty = (bh == 0)[:, :, None] | (bw == 0)[:, None, :]  # [K, oh, ow]
    return index.permute(0, 3, 1, 2), empty[:, None]


@torch.no_grad()
def _roi_pool_argmax(input: Tensor, rois: Tensor, oh: int, ow: int, scale: float) -> tuple[Tensor, Tensor]:
    """Flat input index of each output's bin maximum and the empty-bin mask, both ``[K, C, oh, ow]``.

    Bin maxima are found in two stages on channels-last features: over the columns of each
    column bin for every row the RoI spans, then over the rows of each row bin (windows are
    padded to a common size by repeating a bin's last column or row). float32/float16 inputs use
    :func:`_order_keys` (a plain integer ``amax``); float64 uses ``max`` with indices.
    """
    N, C, H, W = input.shape
    K = rois.shape[0]
    device = input.device
    s = torch.tensor(scale, dtype=input.dtype, device=device)
    b = rois[:, 0].long()
    corners = _round_half_away(rois[:, 1:] * s)  # [K, 4]
    hs, he = _pool_bins(corners[:, 1], corners[:, 3], oh, H)  # [K, oh]
    ws, we = _pool_bins(corners[:, 0], corners[:, 2], ow, W)  # [K, ow]
    bh = (he - hs).clamp(min=0)  # [K, oh] bin heights
    bw = (we - ws).clamp(min=0)  # [K, ow]
    rows = (he[:, -1] - hs[:, 0]).clamp(min=1)  # [K] rows spanned by the bins
    x = input.detach().permute(0, 2, 3, 1).reshape(N * H * W, C)  # channels last
    use_keys = input.dtype != torch.float64
    img = _order_keys(x, H, W) if use_keys else x
    index = torch.empty((K, C, oh, ow), dtype=torch.long, device=device)
    chan = torch.arange(C, device=device)
    base = (b[:, None, None, None] * C + chan[:, None, None]) * (H * W)  # [K, C, 1, 1] image-channel offsets
    bw_max = bw.amax(1).clamp(min=1)  # [K]
    buf1, buf2 = [img.new_empty(0)], [img.new_empty(0)]  # reused gather buffers (fresh large
    # allocations cost page faults on every call)
    for ch in _chunks(rows * bw_max, ow * C, _POOL_CHUNK_ELEMS):
        kc = ch.numel()
        sh, mw = int(rows[ch].max()), int(bw_max[ch].max())
        mh = max(int(bh[ch].max()), 1)
        ri = _window_index(hs[ch, 0], sh, H)  # [kc, sh]
        # Stage 1: maximum over each column bin, for every row of the window.
        j = torch.arange(mw, device=device)
        # Columns past a bin's end repeat its last column: a repeat changes neither the maximum
        # nor its first position (empty bins are masked at the end).
        cols = torch.minimum(ws[ch][:, :, None] + j, we[ch][:, :, None] - 1).clamp_(0, W - 1)  # [kc, ow, mw]
        flat = (b[ch][:, None, None, None] * H + ri[:, :, None, None]) * W + cols[:, None]  # [kc, sh, ow, mw]
        v = _gather_rows(img, flat.reshape(-1), buf1).view(kc, sh, ow, mw, C)
        if use_keys:
            m1 = v.amax(3)  # [kc, sh, ow, C]
        else:
            m1, j1 = v.max(3)  # first maximal column
        del v
        # Stage 2: maximum over the rows of each row bin (rows past its end repeat its last row).
        m1 = m1.view(kc * sh, ow * C)
        t = torch.arange(mh, device=device)
        r0 = ri[:, :1, None]
        rloc = torch.minimum(hs[ch][:, :, None] + t, he[ch][:, :, None] - 1).sub_(r0).clamp_(0, sh - 1)  # [kc, oh, mh]
        sel = (torch.arange(kc, device=device)[:, None, None] * sh + rloc).reshape(-1)
        v2 = _gather_rows(m1, sel, buf2).view(kc, oh, mh, ow, C)
        if use_keys:
            pos = _LOW_MASK - (v2.amax(2) & _LOW_MASK)  # [kc, oh, ow, C], h * W + w
        else:
            t2 = v2.max(2)[1]  # [kc, oh, ow, C] first maximal row
            r2 = rloc.gather(2, t2.reshape(kc, oh, ow * C)).view(kc, oh, ow, C)  # window row
            col = ws[ch][:, None, :, None] + j1.gather(1, r2)
            pos = (ri[:, :1, None, None] + r2) * W + col
        pos = pos.clamp_(0, H * W - 1).permute(0, 3, 1, 2)  # [kc, C, oh, ow]; empty bins: any position
        index.index_copy_(0, ch, pos.add_(base[ch]))
    empty = (bh == 0)[:, :, None] | (bw == 0)[:, None, :]  # [K, oh, ow]
    return index, empty[:, None]


class _TakeFlat(torch.autograd.Function):
    """``input.reshape(-1)[index]`` whose backward is a ``scatter_add`` (``take``'s backward,
    ``put_`` with accumulation, is several times slower on the CPU)."""

    @staticmethod
    def forward(ctx, input: Tensor, index: Tensor) -> Tensor:
        ctx.save_for_backward(index)
        ctx.shape = input.shape
        return input.reshape(-1).take(index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        flat = grad.new_zeros(math.prod(ctx.shape))
        flat = flat.scatter_add(0, index.reshape(-1), grad.reshape(-1))
        return flat.view(ctx.shape), None


def roi_pool(input: Tensor, boxes: BoxesLike, output_size: int | tuple[int, int],
             spatial_scale: float = 1.0) -> Tensor:
    """Max-pools each region of interest into a fixed ``output_size`` grid (Fast R-CNN).

    Same signature and results as ``torchvision.ops.roi_pool``: RoI corners are scaled by
    ``spatial_scale`` and rounded (half away from zero); a malformed RoI counts as 1x1 pixel; bin
    ``(ph, pw)`` spans rows ``floor(ph * bin_h) .. ceil((ph + 1) * bin_h) - 1`` from the RoI's
    first row (same for columns), clipped to the map. Each output is its bin's maximum, 0 for
    an empty bin. The gradient goes to the first maximal element of the bin (row-major).

    Args:
        input (Tensor[N, C, H, W]): float feature maps.
        boxes (Tensor[K, 5] or list[Tensor[K_i, 4]]): RoIs as ``(batch_index, x1, y1, x2, y2)``
            rows in image coordinates, or one ``[K_i, 4]`` xyxy tensor per image (image ``i``
            gets batch index ``i``). Converted to the input's dtype; batch indices are truncated
            to integers and must lie in ``[0, N)``.
        output_size (int or tuple[int, int]): ``oh`` and ``ow`` (an int means square), ``>= 1``.
        spatial_scale (float): factor mapping box coordinates to feature-map pixels, ``> 0``
            (e.g. ``1/16`` for a stride-16 map).

    Returns:
        Tensor[K, C, oh, ow]: pooled features, same dtype and device as ``input``;
        ``[0, C, oh, ow]`` when there are no RoIs.

    Raises:
        TypeError: ``input`` is not a float tensor, or arguments have the wrong type.
        ValueError: bad shapes, batch index out of range, non-finite boxes, ``output_size < 1``
            or ``spatial_scale <= 0``.

    Example:
        >>> X = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> roi_pool(X, [torch.tensor([[0.0, 0.0, 20.0, 20.0]])], 2, spatial_scale=0.1).flatten().tolist()
        [5.0, 6.0, 9.0, 10.0]
    """
    input = _check_input(input)
    oh, ow = _check_output_size(output_size)
    scale = _check_scale(spatial_scale)
    rois = _to_rois(boxes, input)
    if rois.shape[0] == 0:
        return _empty_output(input, oh, ow)
    found = None if input.dtype == torch.float64 else _roi_pool_argmax_table(input, rois, oh, ow, scale)
    index, empty = found if found is not None else _roi_pool_argmax(input, rois, oh, ow, scale)
    values = _TakeFlat.apply(input, index)  # differentiable gather, [K, C, oh, ow]
    # The kernel's running maximum starts at -FLT_MAX and only takes strictly greater values.
    taken = ~empty & (values.detach() > -_FLT_MAX)
    fill = torch.where(empty, 0.0, -_FLT_MAX).to(input.dtype)  # [K, 1, oh, ow]
    return torch.where(taken, values, fill)


# --------------------------------------------------------------------------------------------
# roi_align


def _align_geometry(rois: Tensor, oh: int, ow: int, scale: float, sampling_ratio: int, aligned: bool):
    """Per-RoI start, bin size and sampling grid along y and x, in the input dtype (as torchvision)."""
    s = torch.tensor(scale, dtype=rois.dtype, device=rois.device)
    offset = 0.5 if aligned else 0.0
    start = rois[:, 1:3] * s - offset  # [K, 2] (x, y)
    end = rois[:, 3:5] * s - offset
    size = end - start
    if not aligned:
        size = size.clamp(min=1.0)
    out = torch.tensor([ow, oh], dtype=rois.dtype, device=rois.device)
    bin_size = size / out  # [K, 2]
    if sampling_ratio > 0:
        grid = torch.full_like(start, sampling_ratio, dtype=torch.long)
    else:
        grid = torch.ceil(size / out).long().clamp(min=0)
    count = (grid[:, 0] * grid[:, 1]).clamp(min=1)  # [K]
    return start, bin_size, grid, count


def _axis_weights(start: Tensor, bin_size: Tensor, grid: Tensor, bins: int, size: int) -> Tensor:
    """Summed bilinear weights of each bin's samples along one axis, ``[K, bins, size]``.

    Sample ``i`` of bin ``p`` sits at ``start + p * bin + (i + 0.5) * bin / grid`` (torchvision's
    expression, evaluated in the same order and dtype). Outside ``[-1, size]`` it has no weight;
    otherwise it is clamped to ``[0, size - 1]`` and split between its floor and the next pixel.
    """
    K = start.shape[0]
    dtype, device = start.dtype, start.device
    weights = torch.zeros((K, bins, size), dtype=dtype, device=device)
    if K == 0:
        return weights
    g_all = grid.tolist()
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
            the input's dtype; batch indices are truncated and must lie in ``[0, N)``.
        output_size (int or tuple[int, int]): ``oh`` and ``ow`` (an int means square), ``>= 1``.
        spatial_scale (float): factor mapping box coordinates to feature-map pixels, ``> 0``.
        sampling_ratio (int): samples per bin along each axis; ``<= 0`` means adaptive.
        aligned (bool): shift the RoI by -0.5 pixel so that pixel centres line up (Detectron2).

    Returns:
        Tensor[K, C, oh, ow]: aligned features, same dtype and device as ``input``;
        ``[0, C, oh, ow]`` when there are no RoIs.

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
    rois = _to_rois(boxes, input)
    N, C, H, W = input.shape
    K = rois.shape[0]
    if K == 0:
        return _empty_output(input, oh, ow)
    with torch.no_grad():
        start, bin_size, grid, count = _align_geometry(rois, oh, ow, scale, int(sampling_ratio), bool(aligned))
        ay = _axis_weights(start[:, 1], bin_size[:, 1], grid[:, 1], oh, H)  # [K, oh, H]
        ax = _axis_weights(start[:, 0], bin_size[:, 0], grid[:, 0], ow, W)  # [K, ow, W]
        ay /= count.to(ay.dtype)[:, None, None]
        y0, sh = _span((ay != 0).any(1))  # [K] rows each RoI touches
        x0, sw = _span((ax != 0).any(1))
        b = rois[:, 0].long()
    xcl = input.permute(0, 2, 3, 1).reshape(N * H * W, C)  # channels last, differentiable
    side = torch.maximum(sh, sw)
    parts, order = [], []
    for ch in _chunks(side * side, C, _CHUNK_ELEMS):
        kc = ch.numel()
        mh, mw = int(sh[ch].max()), int(sw[ch].max())
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
# modules


class RoIPool(nn.Module):
    """Module form of :func:`roi_pool`; it only stores the configuration.

    Args:
        output_size (int or tuple[int, int]): ``oh`` and ``ow``.
        spatial_scale (float): factor mapping box coordinates to feature-map pixels.
    """

    def __init__(self, output_size: int | tuple[int, int], spatial_scale: float) -> None:
        super().__init__()
        self.output_size = output_size
        self.spatial_scale = spatial_scale

    def forward(self, input: Tensor, rois: BoxesLike) -> Tensor:
        """``input`` [N, C, H, W], ``rois`` [K, 5] or list of [K_i, 4] -> [K, C, oh, ow]."""
        return roi_pool(input, rois, self.output_size, self.spatial_scale)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}, spatial_scale={self.spatial_scale}"


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
