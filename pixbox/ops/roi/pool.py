"""RoI max pooling (Fast R-CNN), torchvision's semantics; see :mod:`pixbox.ops.roi`."""

from __future__ import annotations

import math
import threading

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
    _gather_rows,
    _no_autocast,
    _to_rois,
    _window_index,
)

__all__ = ["RoIPool", "roi_pool"]

_POOL_CHUNK_ELEMS = 1 << 19  # gathered elements per vectorised step (reduced at once: stay in cache)
_POOL_TABLE_ELEMS = 1 << 25  # largest range-maximum table (int64 elements), else the window method
_SCRATCH = threading.local()  # the reusable table buffer (see _workspace)
_FLT_MAX = float(np.finfo(np.float32).max)  # torchvision's roi_pool starts each bin at -FLT_MAX
_LOW_MASK = (1 << 32) - 1  # low half of an order key


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


def _bin_level(length: Tensor, longest: int) -> Tensor:
    """``floor(log2(length))`` of positive int64 lengths (exact; 0 for lengths < 2), the longest
    of which is ``longest``."""
    level = torch.zeros_like(length)
    for j in range(1, longest.bit_length()):
        level += (length >> j > 0).long()
    return level


def _pool_geometry(rois: Tensor, oh: int, ow: int, H: int, W: int, scale: float) -> tuple[Tensor, ...]:
    """Batch index ``[K]``, clipped bin limits ``hs, he [K, oh]``, ``ws, we [K, ow]`` and bin sides
    ``bh [K, oh]``, ``bw [K, ow]`` (0 for an empty bin), in the RoIs' dtype as torchvision."""
    s = torch.full((), scale, dtype=rois.dtype, device=rois.device)  # a fill: no host-device copy
    corners = _round_half_away(rois[:, 1:] * s)  # [K, 4]
    hs, he = _pool_bins(corners[:, 1], corners[:, 3], oh, H)  # [K, oh]
    ws, we = _pool_bins(corners[:, 0], corners[:, 2], ow, W)  # [K, ow]
    return rois[:, 0].long(), hs, he, ws, we, (he - hs).clamp(min=0), (we - ws).clamp(min=0)


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
def _roi_pool_argmax_table(input: Tensor, x: Tensor, geometry: tuple[Tensor, ...], longest: tuple[int, int]):
    """:func:`_roi_pool_argmax` by range-maximum lookups (the caller checks the table's size).

    Every bin ``[hs, he) x [ws, we)`` is covered by the (overlapping) four ranges of sides
    ``2**k <= he - hs`` and ``2**l <= we - ws`` anchored at its corners, so its maximum order key
    (value first, then the first row-major position) is the maximum of four entries of a 2-D
    sparse table (:func:`_range_max_table`): four gathers per output whatever the bin size.
    ``x`` is ``input`` channels last, ``[N * H * W, C]``; ``geometry`` is :func:`_pool_geometry`'s
    and ``longest`` the largest bin height and width (at least 1). Returns indices into ``x`` (flat),
    channels last too: ``[K, oh, ow, C]``.
    """
    N, C, H, W = input.shape
    b, hs, he, ws, we, bh, bw = geometry
    K, oh, ow = bh.shape[0], bh.shape[1], bw.shape[1]
    device = input.device
    kh, kw = _bin_level(bh.clamp(min=1), longest[0]), _bin_level(bw.clamp(min=1), longest[1])  # [K, oh], [K, ow]
    levels_h, levels_w = longest[0].bit_length(), longest[1].bit_length()
    table = _range_max_table(x.detach(), N, H, W, levels_h, levels_w).view(-1, C)
    # The two anchor rows (columns) of each bin: its start, and its end minus the range side.
    # Empty bins get the 1-pixel range at a clipped position (masked by the caller).
    r = torch.stack([hs, he - (1 << kh)], dim=-1).clamp_(0, H - 1)  # [K, oh, 2]
    c = torch.stack([ws, we - (1 << kw)], dim=-1).clamp_(0, W - 1)  # [K, ow, 2]
    level = (kh[:, :, None] * levels_w + kw[:, None, :]) * N + b[:, None, None]  # [K, oh, ow]
    # [K, 2, 2, oh, ow]: corner-major, so each corner's gathered block is contiguous.
    flat = (level[:, None, None] * H + r.permute(0, 2, 1)[:, :, None, :, None]) * W + c.permute(0, 2, 1)[:, None, :, None, :]
    flat = flat.reshape(K, 4 * oh * ow)
    index = torch.empty((K, oh, ow, C), dtype=torch.long, device=device)
    base = (b[:, None, None, None] * (H * W) + _LOW_MASK) * C + torch.arange(C, device=device)  # [K, 1, 1, C]
    buf = [table.new_empty(0)]
    step = max(1, _POOL_CHUNK_ELEMS // (oh * ow * 4 * C))
    for start in range(0, K, step):
        stop = min(K, start + step)
        v = _gather_rows(table, flat[start:stop].reshape(-1), buf).view(stop - start, 4, oh, ow, C)
        out = index[start:stop]
        torch.maximum(v[:, 0], v[:, 1], out=out)
        torch.maximum(out, v[:, 2], out=out)
        torch.maximum(out, v[:, 3], out=out)
        out.bitwise_and_(_LOW_MASK).mul_(C)  # [k, oh, ow, C]: (2**32 - 1 - (h * W + w)) * C
        torch.sub(base[start:stop], out, out=out)  # ((b * H + h) * W + w) * C + c
    return index


@torch.no_grad()
def _roi_pool_argmax(input: Tensor, geometry: tuple[Tensor, ...]) -> Tensor:
    """Flat input index of each output's bin maximum, ``[K, C, oh, ow]`` (``geometry``: see
    :func:`_pool_geometry`).

    Bin maxima are found in two stages on channels-last features: over the columns of each
    column bin for every row the RoI spans, then over the rows of each row bin (windows are
    padded to a common size by repeating a bin's last column or row). float32/float16 inputs use
    :func:`_order_keys` (a plain integer ``amax``); float64 uses ``max`` with indices.
    """
    N, C, H, W = input.shape
    b, hs, he, ws, we, bh, bw = geometry
    K, oh, ow = bh.shape[0], bh.shape[1], bw.shape[1]
    device = input.device
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
    for ch, (sh, mw, mh) in _chunks(rows * bw_max, ow * C, _POOL_CHUNK_ELEMS, rows, bw_max, bh.amax(1)):
        kc = ch.numel()
        mh = max(mh, 1)
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
    return index


class _TakeFlat(torch.autograd.Function):
    """``input.reshape(-1)[index]``, where ``index == input.numel()`` gives 0 (an empty bin),
    whose backward is a ``scatter_add`` (``take``'s backward, ``put_`` with accumulation, is
    several times slower on the CPU)."""

    @staticmethod
    def forward(ctx, input: Tensor, index: Tensor, padded: bool) -> Tensor:
        ctx.save_for_backward(index)
        ctx.shape, ctx.padded = input.shape, padded
        flat = input.reshape(-1)
        if padded:
            flat = torch.cat([flat, flat.new_zeros(1)])
        return flat.take(index)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (index,) = ctx.saved_tensors
        flat = grad.new_zeros(math.prod(ctx.shape) + int(ctx.padded))
        flat = flat.scatter_add(0, index.reshape(-1), grad.reshape(-1))
        if ctx.padded:
            flat = flat[:-1]
        return flat.view(ctx.shape), None, None


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
            gets batch index ``i``). Converted to the compute dtype; batch indices are truncated
            to integers and must lie in ``[0, N)``.
        output_size (int or tuple[int, int]): ``oh`` and ``ow`` (an int means square), ``>= 1``.
        spatial_scale (float): factor mapping box coordinates to feature-map pixels, ``> 0``
            (e.g. ``1/16`` for a stride-16 map).

    Returns:
        Tensor[K, C, oh, ow]: pooled features, same dtype and device as ``input``;
        ``[0, C, oh, ow]`` when there are no RoIs. Half-precision inputs are pooled in float32
        (the RoI geometry too) and cast back, which changes no value; autocast does not change
        the dtype.

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
    dtype = _compute_dtype(input)
    rois = _to_rois(boxes, input, dtype)
    if rois.shape[0] == 0:
        return _empty_output(input, oh, ow)
    with _no_autocast(input.device):
        out = _roi_pool(input.to(dtype), rois, oh, ow, scale)
    return out.to(input.dtype)


def _roi_pool(input: Tensor, rois: Tensor, oh: int, ow: int, scale: float) -> Tensor:
    """:func:`roi_pool` on checked arguments, in the dtype of ``input`` (float32 or float64)."""
    N, C, H, W = input.shape
    with torch.no_grad():
        geometry = _pool_geometry(rois, oh, ow, H, W, scale)
        bh, bw = geometry[5], geometry[6]
        empty = (bh == 0)[:, :, None] | (bw == 0)[:, None, :]  # [K, oh, ow]
        # One host read: the largest bin sides (the table's levels), whether a bin is empty, and
        # whether a value is <= -FLT_MAX (see below).
        longest_h, longest_w, any_empty, floor = torch.stack(
            [bh.max(), bw.max(), empty.any().long(), (input.detach() <= -_FLT_MAX).any().long()]).tolist()
    longest = (max(longest_h, 1), max(longest_w, 1))
    table = (input.dtype != torch.float64
             and longest[0].bit_length() * longest[1].bit_length() * input.numel() <= _POOL_TABLE_ELEMS)
    if table:
        # Channels last: the table's layout, and each output row's C maxima are then read
        # from nearby memory (differentiable: the gradient is permuted back).
        x = input.permute(0, 2, 3, 1).contiguous()
        index = _roi_pool_argmax_table(input, x.view(-1, C), geometry, longest)  # into x: [K, oh, ow, C]
        input, empty = x, empty[..., None]  # [K, oh, ow, 1]
    else:
        index = _roi_pool_argmax(input, geometry)  # [K, C, oh, ow]
        empty = empty[:, None]  # [K, 1, oh, ow]
    if floor:
        # The kernel's running maximum starts at -FLT_MAX and only takes strictly greater values:
        # a bin of values <= -FLT_MAX gives -FLT_MAX (and no gradient), an empty bin 0.
        values = _TakeFlat.apply(input, index, False)
        taken = ~empty & (values.detach() > -_FLT_MAX)
        fill = torch.where(empty, 0.0, -_FLT_MAX).to(input.dtype)
        out = torch.where(taken, values, fill)
    else:
        if any_empty:  # empty bins read the zero appended to the input
            index = index.masked_fill(empty, input.numel())
        out = _TakeFlat.apply(input, index, bool(any_empty))
    return out.permute(0, 3, 1, 2).contiguous() if table else out


# --------------------------------------------------------------------------------------------


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
