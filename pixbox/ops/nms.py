"""Non-maximum suppression, exact and fast in pure PyTorch.

Semantics are torchvision's: boxes are visited in decreasing score order (ties: lower index
first), a box is kept unless a kept box with a higher rank overlaps it with IoU strictly
greater than ``iou_threshold``. IoU is computed with the same floating-point expression as
torchvision's kernel, ``inter / (area_i + area_j - inter)``, so the keep lists are identical.

How it is fast without a compiled kernel:

1. *Exact rounds.* The ``m`` best boxes still alive are resolved among themselves: their fate
   depends only on each other, since every higher-ranked box is already kept or suppressed.
   The boxes they keep then suppress the rest in one vectorised pass, and the survivors form
   the next round (``m`` doubles). Outside its own round a box is only compared with kept
   boxes, as in the sequential algorithm, which matters when suppression is heavy (dense
   anchors).
2. *Culled dense tiles.* Pairs are compared tile by tile with dense, vectorised IoU. Boxes are
   ordered spatially (by group, width class, a slab of x and then y) and cut into tiles; two
   tiles are compared only if some pair in them could pass the threshold. The culling is
   conservative: for IoU > t >= 0 two boxes must satisfy ``|cx_i - cx_j| < (1 - t)(w_i + w_j)/2``
   (likewise in y) and ``min(w) > t max(w)``.
   When the kept boxes of a round suppress the rest, each kept box is its own tile (kept boxes
   are sparse, and a tile of scattered boxes would cull nothing), and the tiles of the rest it
   can reach are found by a sort-and-sweep along x instead of a dense culling matrix.
3. *Resolution within a round.* Greedy NMS keeps ``j`` iff no kept ``i`` ranked above it has an
   edge ``i -> j``. That fixed point is reached by vectorised sweeps (exact after as many sweeps
   as the longest suppression chain); long chains fall back to one sequential pass over the
   round's (small) edge list.
4. *Sparse inputs.* When a sort-and-sweep along x finds few candidate pairs (at most
   ``_SPARSE_PAIRS`` per box: spread-out boxes, or many categories in ``batched_nms``), the whole
   suppression graph is built at once from those pairs and resolved as in 3, with no rounds.
5. *Memory traffic.* Box features are stored once, in spatial order and as rows (x1, y1, x2, y2,
   area, ...: structure of arrays), so the tiles of any subset are sequential gathers
   (``index_select``, never advanced indexing) and broadcast over contiguous memory. In
   ``batched_nms`` every group's run of boxes is padded to whole tiles when the runs are long,
   so that no pair needs a group check. The sparse hit masks are reduced and scanned eight
   booleans at a time (as int64 words).

Inputs that require grad are read detached: NMS returns indices and needs no gradient.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_boxes, check_number, check_same_device, check_shape, check_tensor

__all__ = ["nms", "batched_nms"]

_TILE = 32  # boxes per tile in the edge search
_CHUNK_ELEMS = 1 << 18  # pair-elements per vectorised step (keeps temporaries in cache)
_MAX_SWEEPS = 12  # vectorised sweeps before the sequential fallback
_ROUND = 1024  # boxes resolved in the first round
_GROWTH = 2  # factor by which the rounds grow
_KEPT_CHUNK = 8  # kept boxes compared with one tile of the rest at a time
_SPARSE_PAIRS = 64  # candidate pairs per box below which the whole graph is built at once
_SPARSE_CHUNK = 1 << 16  # pairs per vectorised step in the sparse path


def _threshold_below(t: float, dtype: torch.dtype) -> Tensor:
    """Largest value ``v`` of ``dtype`` with ``(x > v) == (float(x) > t)`` for every ``x`` of ``dtype``.

    torchvision compares a float IoU with a double threshold; comparing in the boxes' dtype
    would round the threshold and could flip a decision exactly at the threshold.
    """
    v = torch.tensor(t, dtype=dtype)
    if float(v) > t:
        v = torch.nextafter(v, torch.tensor(-math.inf, dtype=dtype))
    return v


def _rows(x: Tensor, index: Tensor) -> Tensor:
    """``x[index]`` along dim 0 with ``index_select`` (several times faster than advanced indexing)."""
    return x.index_select(0, index.reshape(-1)).view(*index.shape, *x.shape[1:])


def _cols(x: Tensor, index: Tensor) -> Tensor:
    """``x[:, index]`` of a ``[F, N]`` feature table with ``index_select``: ``[F, *index.shape]``."""
    return x.index_select(1, index.reshape(-1)).view(x.shape[0], *index.shape)


def _words(mask: Tensor) -> Tensor | None:
    """A contiguous bool tensor whose last dim is a multiple of 8, viewed as int64 words (eight
    elements each), or None. Reductions and ``nonzero`` over words scan 8x fewer elements."""
    if mask.shape[-1] % 8 or not mask.is_contiguous():
        return None
    return mask.view(torch.uint8).view(torch.int64)


def _any_dim1(mask: Tensor) -> Tensor:
    """``mask.any(1)`` of a bool ``[P, K, T]`` (an OR of words: much faster than ``any``)."""
    words = _words(mask)
    if words is None:
        return mask.any(1)
    out = words[:, 0].clone()
    for k in range(1, mask.shape[1]):
        out.bitwise_or_(words[:, k])
    return out.view(torch.uint8).view(torch.bool)


def _nonzero(mask: Tensor) -> tuple[Tensor, ...]:
    """``mask.nonzero().unbind(1)`` of a bool tensor, scanning eight elements at a time.

    Returns the columns: ``nonzero``'s ``[H, D]`` result is column-major, so gathering its rows
    would be slow, while each column is contiguous.
    """
    words = _words(mask)
    if words is None:
        return mask.nonzero().unbind(1)
    at = words.nonzero().unbind(1)  # the words holding a True
    if at[0].numel() == 0:
        return at
    flat = at[-1].clone()
    stride = words.shape[-1]
    for d in range(words.dim() - 2, -1, -1):
        flat.add_(at[d] * stride)
        stride *= words.shape[d]
    row, byte = words.reshape(-1).index_select(0, flat).view(torch.uint8).view(-1, 8).nonzero().unbind(1)
    cols = [c.index_select(0, row) for c in at]
    cols[-1] = cols[-1].mul_(8).add_(byte)
    return tuple(cols)


def _features(boxes: Tensor) -> Tensor:
    """Per-box features as rows ``[9, N]``: x1, y1, x2, y2, area, cx, cy, w, h.

    Rows (structure of arrays) keep every coordinate contiguous, so gathered tiles broadcast over
    contiguous memory. The area is ``(x2 - x1) * (y2 - y1)`` in the boxes' dtype, as torchvision's.
    """
    x1, y1, x2, y2 = boxes.t()
    w, h = x2 - x1, y2 - y1
    return torch.stack([x1, y1, x2, y2, w * h, (x1 + x2) * 0.5, (y1 + y2) * 0.5, w, h])


def _pair_ovr_gt(a: Tensor, b: Tensor, thr: Tensor) -> Tensor:
    """``IoU(a_u, b_v) > thr`` for all u, v of paired tiles.

    Args:
        a (Tensor[5, P, U]), b (Tensor[5, P, V]): rows x1, y1, x2, y2, area of ``P`` tile pairs.

    Returns:
        Tensor[P, U, V] bool, with torchvision's arithmetic: ``inter / (area_a + area_b - inter)``.
    """
    ax1, ay1, ax2, ay2, area_a = (r[:, :, None] for r in a[:5].unbind(0))  # [P, U, 1]
    bx1, by1, bx2, by2, area_b = (r[:, None, :] for r in b[:5].unbind(0))  # [P, 1, V]
    xx1 = torch.maximum(ax1, bx1)  # [P, U, V]
    w = torch.minimum(ax2, bx2).sub_(xx1).clamp_(min=0)
    yy1 = torch.maximum(ay1, by1, out=xx1)
    h = torch.minimum(ay2, by2).sub_(yy1).clamp_(min=0)
    inter = w.mul_(h)
    union = torch.add(area_a, area_b, out=h).sub_(inter)
    return inter.div_(union) > thr  # 0/0 (two degenerate boxes) is NaN: never suppresses


def _spatial_order(boxes: Tensor, thr_value: float, groups: Tensor | None) -> Tensor:
    """A permutation putting boxes that might overlap near each other.

    Sort keys, most significant first: group, width class (widths differing by more than a
    factor 1/t never pass), a slab of x about one reach wide, then the y centre. One sort on a
    composite int64 key (the y centre quantised to up to 20 bits); the order only serves the
    culling, so ties may fall either way.
    """
    n = boxes.shape[0]
    device = boxes.device
    x1, y1, x2, y2 = boxes.t()
    w, cx, cy = x2 - x1, (x1 + x2) * 0.5, (y1 + y2) * 0.5
    wclass = torch.zeros(n, dtype=torch.long, device=device)
    width = w.amax().clamp(min=1e-12).expand(n)
    if thr_value >= 0:
        ratio = max(1.0 / max(thr_value, 1e-6), 2.0)
        wclass = torch.floor(torch.log(w.clamp(min=1e-12)) / math.log(ratio)).long()
        wclass = wclass - wclass.min()
        wmax = torch.zeros(int(wclass.max()) + 1, dtype=w.dtype, device=device)
        wmax = wmax.scatter_reduce(0, wclass, w, reduce="amax", include_self=False)
        width = ((1.0 - thr_value) * 1.05 * wmax).clamp(min=1e-12)[wclass]
    xslab = torch.floor((cx - cx.amin()) / width).long()
    # One integer key for (group, width class, slab): groups < 2**20 (see _compact_groups),
    # classes < 2**7 and slabs <= N keep it well inside int64.
    key = wclass * (int(xslab.max()) + 1) + xslab
    if groups is not None:
        key = key + groups * ((int(wclass.max()) + 1) * (int(xslab.max()) + 1))
    bits = min(20, 62 - int(key.max()).bit_length())
    if bits < 8:  # huge keys: sort by y, then stably by key
        perm = torch.argsort(cy, stable=True)
        return perm[torch.argsort(key[perm], stable=True)]
    lo, span = float(cy.amin()), float(cy.amax() - cy.amin())
    top = (1 << bits) - 1
    q = ((cy.double() - lo) * (top / span)).clamp_(0, top).long() if span > 0 else torch.zeros_like(key)
    return torch.argsort((key << bits) | q)


def _compact_groups(groups: Tensor) -> Tensor:
    """Group ids as small non-negative integers (same partition), so they can enter sort keys."""
    g = groups - groups.min()
    if int(g.max()) >= 1 << 20:
        g = torch.unique(groups, return_inverse=True)[1]
    return g


class _Tiles:
    """A subset of boxes, in a given (spatial) order, cut into tiles with per-tile bounds.

    Padding slots repeat a box of their tile (so the bounds do not change) and are invalid. When
    the groups form long runs in ``index`` (as in spatial order), every run is padded to whole
    tiles: no tile then mixes groups, and no pair of boxes needs a group check.
    """

    def __init__(self, feat: Tensor, groups: Tensor | None, index: Tensor, tile: int = _TILE,
                 labels: Tensor | None = None) -> None:
        """``feat`` [9, N] and ``groups`` [N] describe all boxes; ``index`` [n] selects the subset,
        in order. ``labels`` [N] (default: the positions themselves) is what :meth:`original`
        returns for a box: keeping ``feat`` in spatial order, with ascending ``index`` and the
        boxes' ranks as labels, makes every gather here sequential in memory."""
        self.labels = labels
        n = index.numel()
        device = index.device
        self.n = n
        t = self.t = min(max(n, 1), tile)
        g = groups.index_select(0, index) if groups is not None else None
        slots = None
        if g is not None and t > 1 and n > 0:
            starts = torch.ones(n, dtype=torch.bool, device=device)
            torch.ne(g[1:], g[:-1], out=starts[1:])
            run_start = starts.nonzero().flatten()  # [R] first position of each run of one group
            if 1 < run_start.numel() <= n // (2 * t):  # long runs: pad each one to whole tiles
                run_len = torch.diff(run_start, append=run_start.new_tensor([n]))
                padded = (run_len + t - 1) // t * t
                run = torch.cumsum(starts, 0) - 1  # [n] run of each position
                shift = (torch.cumsum(padded, 0) - padded - run_start).index_select(0, run)
                total = int(padded.sum())
                slots = torch.full((total,), -1, dtype=torch.long, device=device)
                ar = torch.arange(n, device=device)
                slots.index_copy_(0, shift.add_(ar), ar)
        if slots is None:  # pad at the end only
            slots = torch.arange(n + (-n % t), device=device)
            valid = slots < n
            slots.clamp_(max=max(n - 1, 0))
        else:
            valid = slots >= 0
            # A padding slot repeats the last box before it (of its own run: runs start a tile).
            last = torch.where(valid, torch.arange(slots.numel(), device=device), 0).cummax(0).values
            slots = slots.index_select(0, last)
        self.valid = valid
        self.index = index.index_select(0, slots)
        f = _cols(feat, self.index).view(feat.shape[0], -1, t)  # [9, nT, T]
        self.nt = f.shape[1]
        self.feat = f[:5]  # x1, y1, x2, y2, area  [5, nT, T]
        self.cmin, self.cmax = f[5:7].amin(2).t(), f[5:7].amax(2).t()  # [nT, 2] centre bounds
        self.whmax, self.whmin = f[7:9].amax(2).t(), f[7:9].amin(2).t()  # [nT, 2] size bounds
        self.groups = None
        if groups is not None:
            self.groups = g.index_select(0, slots).view(-1, t)  # [nT, T]
            self.gmin, self.gmax = self.groups.amin(1), self.groups.amax(1)  # [nT]
            self.mixed = self.gmin != self.gmax  # tiles holding more than one group

    def original(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        """Maps positions in the tiled order to box labels; returns (labels, valid mask)."""
        index = self.index.index_select(0, pos)
        if self.labels is not None:
            index = self.labels.index_select(0, index)
        return index, self.valid.index_select(0, pos)


def _box_tile_pairs(a: _Tiles, b: _Tiles, thr_value: float) -> tuple[Tensor, Tensor]:
    """Like :func:`_tile_pairs` with culling, for tiles of one box on the ``a`` side.

    Used when a few kept boxes suppress many others: a dense ``[nA, nB]`` culling matrix would
    be large, so ``a``'s boxes are sorted by (group, x centre) and each tile of ``b`` takes the
    window of boxes within reach in x (``searchsorted``), which is then culled in y and size.
    """
    device = a.cmin.device
    ca = a.cmin[:, 0].double()  # [nA] x centres (one box per tile)
    ga = a.gmin.double() if a.groups is not None else torch.zeros_like(ca)
    gb_lo = b.gmin.double() if b.groups is not None else torch.zeros(b.nt, dtype=torch.float64, device=device)
    gb_hi = b.gmax.double() if b.groups is not None else gb_lo
    # A pair of boxes within IoU > t has |cx_i - cx_j| < (1 - t)(w_i + w_j) / 2, and the width
    # of the a box is at most wmax_a, and at most w_b / t.
    wa_max = a.whmax[:, 0].double().amax()
    wb = b.whmax[:, 0].double()
    wa_reach = torch.minimum(wb / thr_value, wa_max) if thr_value > 0 else wa_max.expand_as(wb)
    lo_x = float(torch.minimum(ca.amin(), b.cmin[:, 0].double().amin()))
    hi_x = float(torch.maximum(ca.amax(), b.cmax[:, 0].double().amax()))
    reach = (wb + wa_reach) * (0.5 * (1.0 - thr_value + 2e-3)) + 1e-6 * (max(abs(lo_x), abs(hi_x)) + 1)  # [nB]
    stride = (hi_x - lo_x) + 2.0 * float(reach.amax()) + 1.0  # group offset: windows stay in group
    key_a = ga * stride + (ca - lo_x)
    keys, order = torch.sort(key_a)
    start = torch.searchsorted(keys, gb_lo * stride + (b.cmin[:, 0].double() - lo_x) - reach)
    stop = torch.searchsorted(keys, gb_hi * stride + (b.cmax[:, 0].double() - lo_x) + reach, right=True)
    count = (stop - start).clamp_(min=0)
    total = int(count.sum())
    pb = torch.repeat_interleave(torch.arange(count.numel(), device=device), count, output_size=total)
    pa = order.index_select(0, (start - (torch.cumsum(count, 0) - count)).index_select(0, pb)
                            + torch.arange(total, device=device))
    # One gather per side, as rows: a's tiles are single boxes (cmin = cmax, whmin = whmax).
    fa = _cols(torch.cat([a.cmin, a.whmax], 1).t(), pa)  # [4, P]: cx, cy, w, h
    fb = _cols(torch.cat([b.cmin, b.cmax, b.whmax, b.whmin], 1).t(), pb)  # [8, P]
    scale = float(torch.maximum(a.cmax.abs().amax(), b.cmax.abs().amax())) + 1
    keep = None
    for d in (0, 1):  # x, then y
        gap = torch.maximum(fb[d] - fa[d], fa[d] - fb[2 + d]).clamp_(min=0)  # [P]
        ok = gap <= (fa[2 + d] + fb[4 + d]).mul_(0.5 * (1.0 - thr_value + 2e-3)).add_(1e-6 * scale)
        ok &= fa[2 + d] * (1 + 2e-3) >= thr_value * fb[6 + d]
        ok &= fb[4 + d] * (1 + 2e-3) >= thr_value * fa[2 + d]
        keep = ok if keep is None else keep.logical_and_(ok)
    if a.groups is not None and bool(b.mixed.any()):  # windows never cross groups otherwise
        ga_p = a.gmin.index_select(0, pa)
        keep &= (ga_p <= b.gmax.index_select(0, pb)) & (b.gmin.index_select(0, pb) <= ga_p)
    sel = keep.nonzero().flatten()
    return pa.index_select(0, sel), pb.index_select(0, sel)


def _tile_pairs(a: _Tiles, b: _Tiles, thr_value: float, cull: bool, upper: bool) -> tuple[Tensor, Tensor]:
    """Tile pairs that may hold a pair of boxes with IoU > threshold (conservative)."""
    keep = torch.ones(a.nt, b.nt, dtype=torch.bool, device=a.cmin.device)
    if upper:
        keep.triu_()
    if cull:
        # IoU > t needs |c_i - c_j| < (w_i + w_j) / 2 - t max(w_i, w_j) <= (1 - t)(w_i + w_j) / 2,
        # and min(w) > t max(w). The margins make the culling safe against rounding.
        scale = torch.maximum(a.cmax.abs().amax(), b.cmax.abs().amax()) + 1
        for d in (0, 1):  # x, then y  ([nA, nB] each)
            gap = (torch.maximum(a.cmin[:, None, d], b.cmin[None, :, d])
                   - torch.minimum(a.cmax[:, None, d], b.cmax[None, :, d])).clamp_(min=0)
            half_sum = (a.whmax[:, None, d] + b.whmax[None, :, d]) * 0.5
            keep &= gap <= half_sum * (1.0 - thr_value + 2e-3) + 1e-6 * scale
            keep &= a.whmax[:, None, d] * (1 + 2e-3) >= thr_value * b.whmin[None, :, d]
            keep &= b.whmax[None, :, d] * (1 + 2e-3) >= thr_value * a.whmin[:, None, d]
    if a.groups is not None:
        keep &= (a.gmin[:, None] <= b.gmax[None]) & (b.gmin[None] <= a.gmax[:, None])
    return keep.nonzero().unbind(1)


def _hits(a: _Tiles, b: _Tiles, thr_value: float, *, same: bool):
    """Yields ``(i, j)`` index batches (into a's and b's boxes) of the same group with IoU > threshold.

    With ``same`` (a is b), each unordered pair is yielded once and never a box with itself.
    """
    cull = thr_value >= 0  # below 0 even disjoint boxes suppress each other: compare all pairs
    device = a.cmin.device
    thr = _threshold_below(thr_value, a.feat.dtype).to(device)
    if cull and a.t == 1 and not same:
        pa, pb = _box_tile_pairs(a, b, thr_value)
    else:
        pa, pb = _tile_pairs(a, b, thr_value, cull, upper=same)
    ta, tb = a.t, b.t
    local_upper = torch.ones(ta, tb, dtype=torch.bool, device=device).triu_(1) if same else None
    mixed = a.groups is not None and bool(a.mixed.any() | b.mixed.any())
    step = max(1, _CHUNK_ELEMS // (ta * tb))
    for s in range(0, pa.numel(), step):
        ia, ib = pa[s:s + step], pb[s:s + step]
        hit = _pair_ovr_gt(a.feat.index_select(1, ia), b.feat.index_select(1, ib), thr)  # [P, Ta, Tb]
        if same:
            diag = ia == ib
            if bool(diag.any()):
                hit[diag] &= local_upper
        if mixed and bool((a.mixed.index_select(0, ia) | b.mixed.index_select(0, ib)).any()):
            # culled pairs of single-group tiles share their group; mixed tiles need a check
            hit &= a.groups.index_select(0, ia)[:, :, None] == b.groups.index_select(0, ib)[:, None, :]
        p, u, v = _nonzero(hit)
        if p.numel() == 0:
            continue
        i, ok_i = a.original(ia.index_select(0, p) * ta + u)
        j, ok_j = b.original(ib.index_select(0, p) * tb + v)
        ok = (ok_i & ok_j).nonzero().flatten()
        yield i.index_select(0, ok), j.index_select(0, ok)


def _sweep_pairs(boxes: Tensor, thr_value: float, groups: Tensor | None, budget: int):
    """Candidate pairs for IoU > t from a sort-and-sweep along x; None if there are over ``budget``.

    Boxes are sorted by (group, x1). For ``x1_i <= x1_j`` an IoU above ``t >= 0`` needs
    ``inter_w > t * w_i`` and so ``x1_j < x2_i - t * w_i``: the partners of box ``i`` form a
    contiguous window after it, found with ``searchsorted``. The window carries a small margin,
    so it is conservative. Windows never cross groups.

    Returns:
        ``(order, first, second)``: the sort permutation ``[N]`` and the positions ``[P]`` of the
        two boxes of each candidate pair in it (``first < second``).
    """
    n = boxes.shape[0]
    device = boxes.device
    x1 = boxes[:, 0].double()
    lo, hi = float(x1.min()), float(x1.max())
    reach = (boxes[:, 2] - boxes[:, 0]).double().mul_(1.0 - thr_value + 2e-3).add_(
        1e-6 * (max(abs(lo), abs(hi)) + 1.0))  # [N]
    key = x1 - lo
    if groups is not None:  # compact ids (< 2**20): the offsets stay exact in float64
        key += groups.double() * (2.0 * (hi - lo + float(reach.max())) + 1.0)  # windows never cross groups
    key, order = torch.sort(key)
    reach = reach[order]
    end = torch.searchsorted(key, key + reach)  # first position at or beyond each window  [N]
    count = (end - torch.arange(1, n + 1, device=device)).clamp_(min=0)
    total = int(count.sum())
    if total > budget:
        return None
    first = torch.repeat_interleave(torch.arange(n, device=device), count, output_size=total)
    second = torch.arange(1, total + 1, device=device) - (torch.cumsum(count, 0) - count)[first] + first
    return order, first, second


def _sparse_estimate(boxes: Tensor, thr_value: float, groups: Tensor | None) -> float:
    """A cheap guess of the sweep's candidate pairs per box, to skip the sweep when hopeless.

    Boxes spread uniformly along x within equally sized groups would give this many; the sweep
    itself still checks its budget exactly, so the guess only has to be roughly right.
    """
    n = boxes.shape[0]
    num_groups = int(groups.max()) + 1 if groups is not None else 1  # compact ids
    span = float(boxes[:, 2].amax() - boxes[:, 0].amin())
    mean_w = float((boxes[:, 2] - boxes[:, 0]).mean())
    if not span > 0:
        return float(n)
    return n / num_groups * mean_w * (1.0 - thr_value) / span


def _nms_sparse(boxes: Tensor, thr_value: float, groups: Tensor | None, budget: int) -> Tensor | None:
    """Greedy NMS from the whole suppression graph at once, when it is small (None otherwise).

    When few pairs can overlap (boxes spread out, or many groups), finding every edge in one
    sweep and resolving the graph is cheaper than the rounds of :func:`_nms_ranked`. Candidate
    pairs first pass a cheap necessary test on the side overlaps (IoU > t needs
    ``inter_h > t * max(h_i, h_j)`` and likewise in x, with a safety margin), then the exact
    IoU test, with the same arithmetic as the tiles.
    """
    found = _sweep_pairs(boxes, thr_value, groups, budget)
    if found is None:
        return None
    order, first, second = found
    sf = _features(boxes.index_select(0, order))[:5]  # [5, N] in sweep order: pairs index nearby rows
    x1, y1, x2, y2 = sf[:4]
    wmin = (x2 - x1) * (thr_value * (1 - 1e-3))
    hmin = (y2 - y1) * (thr_value * (1 - 1e-3))
    thr = _threshold_below(thr_value, boxes.dtype).to(boxes.device)
    src, dst = [], []
    for s in range(0, first.numel(), _SPARSE_CHUNK):
        a, b = first[s:s + _SPARSE_CHUNK], second[s:s + _SPARSE_CHUNK]
        fa, fb = _cols(sf, a), _cols(sf, b)  # [5, P]
        ih = torch.minimum(fa[3], fb[3]).sub_(torch.maximum(fa[1], fb[1]))
        ok = (ih > torch.maximum(hmin.index_select(0, a), hmin.index_select(0, b))) & (ih > 0)
        iw = torch.minimum(fa[2], fb[2]).sub_(torch.maximum(fa[0], fb[0]))
        ok &= (iw > torch.maximum(wmin.index_select(0, a), wmin.index_select(0, b))) & (iw > 0)
        sel = ok.nonzero().flatten()
        hit = _pair_ovr_gt(fa.index_select(1, sel)[:, :, None], fb.index_select(1, sel)[:, :, None], thr)
        sel = sel.masked_select(hit.view(-1))  # [P'] pairs with IoU > t
        i, j = order.index_select(0, a.index_select(0, sel)), order.index_select(0, b.index_select(0, sel))
        src.append(torch.minimum(i, j))
        dst.append(torch.maximum(i, j))
    if not src:
        return torch.ones(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    return _greedy_keep(boxes.shape[0], torch.cat(src), torch.cat(dst))


def _suppressed(kept: _Tiles, rest: _Tiles, thr_value: float) -> Tensor:
    """Indices of the boxes of ``rest`` that some box of ``kept`` (tiles of one box) suppresses.

    The (kept box, rest tile) pairs that survive culling come grouped by rest tile; each tile's
    kept boxes are packed ``_KEPT_CHUNK`` at a time into a dense block, so a rest tile is
    gathered once per block rather than once per kept box. Only "hit by any kept box" is needed,
    so the block is reduced over the kept boxes before ``nonzero``.
    """
    device = rest.cmin.device
    pa, pb = _box_tile_pairs(kept, rest, thr_value)  # sorted by pb
    if pa.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    k, t = _KEPT_CHUNK, rest.t
    counts = torch.bincount(pb, minlength=rest.nt)  # kept boxes per rest tile
    run = torch.arange(pa.numel(), device=device) - (torch.cumsum(counts, 0) - counts).index_select(0, pb)
    blocks = (counts + k - 1) // k  # [nT]
    block = (torch.cumsum(blocks, 0) - blocks).index_select(0, pb) + torch.div(run, k, rounding_mode="floor")
    n_blocks = int(blocks.sum())
    # Empty slots point at an extra all-NaN kept box, whose IoU comparisons are all False.
    n_kept = kept.nt
    slot = torch.full((n_blocks * k,), n_kept, dtype=torch.long, device=device)
    slot.index_copy_(0, block * k + run % k, pa)
    slot = slot.view(n_blocks, k)
    block_tile = torch.repeat_interleave(torch.arange(rest.nt, device=device), blocks, output_size=n_blocks)
    kb = torch.cat([kept.feat[:, :, 0], kept.feat.new_full((5, 1), math.nan)], 1)  # [5, nK + 1]
    kg = kept.groups[:, 0] if kept.groups is not None else None
    mixed = kg is not None and bool(rest.mixed.any())
    thr = _threshold_below(thr_value, rest.feat.dtype).to(device)
    step = max(1, _CHUNK_ELEMS // (k * t))
    out = []
    for s in range(0, n_blocks, step):
        sl, bt = slot[s:s + step], block_tile[s:s + step]
        hit = _pair_ovr_gt(_cols(kb, sl), rest.feat.index_select(1, bt), thr)  # [P, K, T]
        if mixed:  # culled pairs of single-group tiles share their group; mixed tiles need a check
            kgs = _rows(torch.cat([kg, kg.new_full((1,), -1)]), sl)  # [P, K]
            hit &= kgs[:, :, None] == rest.groups.index_select(0, bt)[:, None, :]
        p, v = _any_dim1(hit).nonzero().unbind(1)  # denser than the hits: a plain nonzero
        j, ok = rest.original(bt.index_select(0, p) * t + v)
        out.append(j.masked_select(ok))
    return torch.cat(out)


def _nms_ranked(boxes: Tensor, thr_value: float, groups: Tensor | None) -> Tensor:
    """Greedy NMS on boxes already in rank order; returns the keep mask ``[N]``.

    Exact rounds: the ``m`` best boxes still alive are resolved among themselves (their fate
    depends only on each other, since every box above them is kept or suppressed already); the
    boxes they keep then suppress the rest. Only pairs with a kept box are ever compared, as in
    the sequential algorithm, but vectorised and spatially culled.
    """
    n = boxes.shape[0]
    device = boxes.device
    keep = torch.zeros(n, dtype=torch.bool, device=device)
    if n == 0:
        return keep
    if thr_value >= 1.0:  # a computed IoU never exceeds 1
        return keep.fill_(True)
    if groups is not None:
        groups = _compact_groups(groups)
    if thr_value >= 0 and _sparse_estimate(boxes, thr_value, groups) <= 2 * _SPARSE_PAIRS:
        sparse = _nms_sparse(boxes, thr_value, groups, _SPARSE_PAIRS * n)
        if sparse is not None:
            return sparse
    if n > _TILE:
        # Boxes are tiled in spatial order; features and groups are stored in that order, so the
        # tiles of any subset (ascending positions) gather sequential memory.
        spatial = _spatial_order(boxes, thr_value, groups)
        boxes = boxes.index_select(0, spatial)
        groups = groups.index_select(0, spatial) if groups is not None else None
    else:
        spatial = torch.arange(n, device=device)
    feat = _features(boxes)  # [9, N] in spatial order

    def tiles(rank_mask: Tensor, tile: int = _TILE) -> _Tiles:
        """Tiles of the boxes selected by a mask over ranks, labelled with their ranks."""
        return _Tiles(feat, groups, rank_mask.index_select(0, spatial).nonzero().flatten(), tile, spatial)

    alive = torch.ones(n, dtype=torch.bool, device=device)
    start, m = 0, _ROUND
    while True:
        # Head: the m best alive boxes (ranks start..stop), in spatial order.
        alive_idx = alive[start:].nonzero().flatten() + start
        if alive_idx.numel() == 0:
            break
        stop = int(alive_idx[min(m, alive_idx.numel()) - 1]) + 1
        in_head = torch.zeros(n, dtype=torch.bool, device=device)
        in_head[start:stop] = alive[start:stop]
        head = tiles(in_head)
        src, dst = [], []
        for i, j in _hits(head, head, thr_value, same=True):
            src.append(torch.minimum(i, j))
            dst.append(torch.maximum(i, j))
        head_ranks = in_head.nonzero().flatten()  # increasing rank
        if src:
            # Relabel ranks to 0..h-1 for the resolver (order is preserved).
            pos = torch.full((n,), -1, dtype=torch.long, device=device)
            pos[head_ranks] = torch.arange(head_ranks.numel(), device=device)
            head_keep = _greedy_keep(head_ranks.numel(), pos.index_select(0, torch.cat(src)),
                                     pos.index_select(0, torch.cat(dst)))
            kept = head_ranks.masked_select(head_keep)
        else:
            kept = head_ranks
        keep[kept] = True
        alive[start:stop] = False
        start = stop
        if start >= n or not bool(alive[start:].any()):
            break
        is_kept = torch.zeros(n, dtype=torch.bool, device=device)
        is_kept[kept] = True
        kept_boxes = tiles(is_kept, 1)
        rest_tiles = tiles(alive)
        if thr_value >= 0:
            alive.index_fill_(0, _suppressed(kept_boxes, rest_tiles, thr_value), False)
        else:
            for _, j in _hits(kept_boxes, rest_tiles, thr_value, same=False):
                alive[j] = False
        m *= _GROWTH
    return keep


def _greedy_keep(n: int, src: Tensor, dst: Tensor) -> Tensor:
    """Greedy NMS on a suppression graph: ``keep[j]`` iff no kept ``i < j`` has an edge ``i -> j``."""
    keep = torch.ones(n, dtype=torch.bool, device=src.device)
    if src.numel() == 0:
        return keep
    # Vectorised sweeps. After sweep k every box whose longest suppression chain is < k is final.
    for _ in range(_MAX_SWEEPS):
        new = torch.ones_like(keep)
        new[dst[keep[src]]] = False
        if torch.equal(new, keep):
            return keep
        keep = new
    # Long chains: one sequential pass over the edges, grouped by source.
    order = torch.argsort(src, stable=True)
    s_np = src[order].cpu().numpy()
    d_np = dst[order].cpu().numpy()
    starts = np.flatnonzero(np.r_[True, s_np[1:] != s_np[:-1]])
    ends = np.r_[starts[1:], s_np.size]
    removed = np.zeros(n, dtype=bool)
    for a, b in zip(starts.tolist(), ends.tolist()):
        if not removed[s_np[a]]:
            removed[d_np[a:b]] = True
    return torch.from_numpy(~removed).to(src.device)


def _prepare(boxes: Tensor, scores: Tensor, iou_threshold) -> tuple[Tensor, Tensor, float]:
    check_boxes(boxes, "boxes")
    check_tensor(scores, "scores")
    check_shape(scores, "scores", (boxes.shape[0],), f"[N] with N = {boxes.shape[0]} (one per box)")
    check_same_device("boxes", boxes, "scores", scores)
    if not scores.is_floating_point() and scores.dtype not in (torch.int32, torch.int64, torch.int16, torch.uint8):
        raise TypeError(f"scores must be a real tensor, got dtype {scores.dtype}")
    if scores.is_floating_point() and bool(torch.isnan(scores).any()):
        raise ValueError("scores must not contain NaN")
    t = check_number(iou_threshold, "iou_threshold")
    # NMS returns indices: no gradient flows through it, so inputs that require grad (raw network
    # outputs) are used detached, with the same keep list.
    boxes, scores = boxes.detach(), scores.detach()
    if boxes.dtype not in (torch.float32, torch.float64):
        boxes = boxes.float()
    return boxes, scores, float(t)


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy non-maximum suppression (torchvision's ``nms`` semantics, identical keep list).

    Args:
        boxes (Tensor[N, 4]): xyxy, ``x1 <= x2``, ``y1 <= y2``.
        scores (Tensor[N]): score per box.
        iou_threshold (float): a box is suppressed by a kept, higher-ranked box when their IoU
            is strictly greater than this.

    Returns:
        Tensor[K]: int64 indices of the kept boxes, in decreasing score order (ties: lower index
        first). Inputs that require grad are fine: NMS needs no gradient, the result is the same.
    """
    boxes, scores, t = _prepare(boxes, scores, iou_threshold)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    return order.masked_select(_nms_ranked(boxes.index_select(0, order), t, None))


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category: boxes with different ``idxs`` never suppress each other.

    Args:
        boxes (Tensor[N, 4]): xyxy, ``x1 <= x2``, ``y1 <= y2``.
        scores (Tensor[N]): score per box.
        idxs (Tensor[N]): integer category of each box.
        iou_threshold (float): as in :func:`nms`.

    Returns:
        Tensor[K]: int64 indices of the kept boxes, in decreasing score order (ties: lower index
        first). The kept set is exactly that of running :func:`nms` on each category. Empty
        ``boxes`` (``[0, 4]``, or ``[0]`` as in torchvision's tests) give an empty result without
        looking at the other arguments, as torchvision's ``batched_nms`` does.
    """
    if isinstance(boxes, Tensor) and boxes.numel() == 0 and boxes.dim() <= 2:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    boxes, scores, t = _prepare(boxes, scores, iou_threshold)
    check_tensor(idxs, "idxs")
    check_shape(idxs, "idxs", (boxes.shape[0],), f"[N] with N = {boxes.shape[0]} (one per box)")
    if idxs.is_floating_point() or idxs.is_complex():
        raise TypeError(f"idxs must be an integer tensor, got dtype {idxs.dtype}")
    check_same_device("boxes", boxes, "idxs", idxs)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = _nms_ranked(boxes.index_select(0, order), t, idxs.detach().index_select(0, order).long())
    return order.masked_select(keep)
