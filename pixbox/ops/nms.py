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
_ROUND = 1024  # boxes resolved in the first round (doubles each round)
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


def _pair_ovr_gt(a: Tensor, b: Tensor, area_a: Tensor, area_b: Tensor, thr: Tensor) -> Tensor:
    """``IoU(a_u, b_v) > thr`` for all u, v of tiles: a, b ``[P, T, 4]`` -> ``[P, T, T]`` bool."""
    xx1 = torch.maximum(a[:, :, None, 0], b[:, None, :, 0])  # [P, T, T]
    w = torch.minimum(a[:, :, None, 2], b[:, None, :, 2]).sub_(xx1).clamp_(min=0)
    yy1 = torch.maximum(a[:, :, None, 1], b[:, None, :, 1], out=xx1)
    h = torch.minimum(a[:, :, None, 3], b[:, None, :, 3]).sub_(yy1).clamp_(min=0)
    inter = w.mul_(h)
    union = torch.add(area_a[:, :, None], area_b[:, None, :], out=h).sub_(inter)
    return inter.div_(union) > thr  # 0/0 (two degenerate boxes) is NaN: never suppresses


def _spatial_order(boxes: Tensor, thr_value: float, groups: Tensor | None) -> Tensor:
    """A permutation putting boxes that might overlap near each other.

    Sort keys, most significant first: group, width class (widths differing by more than a
    factor 1/t never pass), a slab of x about one reach wide, then the y centre.
    """
    n = boxes.shape[0]
    device = boxes.device
    wh = boxes[:, 2:] - boxes[:, :2]  # [N, 2]
    ctr = (boxes[:, :2] + boxes[:, 2:]) * 0.5  # [N, 2]
    wclass = torch.zeros(n, dtype=torch.long, device=device)
    width = wh[:, 0].amax().clamp(min=1e-12).expand(n)
    if thr_value >= 0:
        ratio = max(1.0 / max(thr_value, 1e-6), 2.0)
        wclass = torch.floor(torch.log(wh[:, 0].clamp(min=1e-12)) / math.log(ratio)).long()
        wclass = wclass - wclass.min()
        wmax = torch.zeros(int(wclass.max()) + 1, dtype=wh.dtype, device=device)
        wmax = wmax.scatter_reduce(0, wclass, wh[:, 0], reduce="amax", include_self=False)
        width = ((1.0 - thr_value) * 1.05 * wmax).clamp(min=1e-12)[wclass]
    xslab = torch.floor((ctr[:, 0] - ctr[:, 0].amin()) / width).long()
    # One integer key for (group, width class, slab): groups < 2**20 (see _compact_groups),
    # classes < 2**7 and slabs <= N keep it well inside int64.
    key = wclass * (int(xslab.max()) + 1) + xslab
    if groups is not None:
        key = key + groups * ((int(wclass.max()) + 1) * (int(xslab.max()) + 1))
    perm = torch.argsort(ctr[:, 1], stable=True)
    return perm[torch.argsort(key[perm], stable=True)]


def _compact_groups(groups: Tensor) -> Tensor:
    """Group ids as small non-negative integers (same partition), so they can enter sort keys."""
    g = groups - groups.min()
    if int(g.max()) >= 1 << 20:
        g = torch.unique(groups, return_inverse=True)[1]
    return g


class _Tiles:
    """A subset of boxes, in a given (spatial) order, cut into tiles with per-tile bounds."""

    def __init__(self, boxes: Tensor, area: Tensor, groups: Tensor | None, index: Tensor,
                 tile: int = _TILE) -> None:
        n = index.numel()
        self.n = n
        self.t = min(max(n, 1), tile)
        pad = -n % self.t
        if pad:  # repeat the last box; padded positions are dropped when hits are mapped back
            index = torch.cat([index, index[-1:].expand(pad)])
        self.index = index
        t = self.t
        self.boxes = boxes[index].reshape(-1, t, 4)  # [nT, T, 4]
        self.area = area[index].reshape(-1, t)  # [nT, T]
        self.groups = groups[index].reshape(-1, t) if groups is not None else None
        tb = self.boxes
        ctr = (tb[..., :2] + tb[..., 2:]) * 0.5  # [nT, T, 2]
        wh = tb[..., 2:] - tb[..., :2]
        self.cmin, self.cmax = ctr.amin(1), ctr.amax(1)  # [nT, 2]
        self.whmax, self.whmin = wh.amax(1), wh.amin(1)  # [nT, 2]
        if self.groups is not None:
            self.gmin, self.gmax = self.groups.amin(1), self.groups.amax(1)  # [nT]
            self.mixed = self.gmin != self.gmax  # tiles holding more than one group

    def original(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        """Maps positions in the tiled order to box indices; returns (indices, valid mask)."""
        return self.index[pos], pos < self.n


def _box_tile_pairs(a: _Tiles, b: _Tiles, thr_value: float) -> tuple[Tensor, Tensor]:
    """Like :func:`_tile_pairs` with culling, for tiles of one box on the ``a`` side.

    Used when a few kept boxes suppress many others: a dense ``[nA, nB]`` culling matrix would
    be large, so ``a``'s boxes are sorted by (group, x centre) and each tile of ``b`` takes the
    window of boxes within reach in x (``searchsorted``), which is then culled in y and size.
    """
    device = a.boxes.device
    ca = a.cmin[:, 0].double()  # [nA] x centres (one box per tile)
    ga = a.gmin.double() if a.groups is not None else torch.zeros_like(ca)
    gb_lo = b.gmin.double() if b.groups is not None else torch.zeros(b.cmin.shape[0], dtype=torch.float64, device=device)
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
    order = torch.argsort(key_a)
    keys = key_a[order]
    start = torch.searchsorted(keys, gb_lo * stride + (b.cmin[:, 0].double() - lo_x) - reach)
    stop = torch.searchsorted(keys, gb_hi * stride + (b.cmax[:, 0].double() - lo_x) + reach, right=True)
    count = (stop - start).clamp_(min=0)
    total = int(count.sum())
    pb = torch.repeat_interleave(torch.arange(count.numel(), device=device), count, output_size=total)
    pa = order[start[pb] + torch.arange(total, device=device) - (torch.cumsum(count, 0) - count)[pb]]
    # One gather per side: a's tiles are single boxes (cmin = cmax, whmin = whmax).
    fa = torch.cat([a.cmin, a.whmax], 1)[pa]  # [P, 4]: cx, cy, w, h
    fb = torch.cat([b.cmin, b.cmax, b.whmax, b.whmin], 1)[pb]  # [P, 8]
    gap = torch.maximum(fb[:, 0:2] - fa[:, 0:2], fa[:, 0:2] - fb[:, 2:4]).clamp_(min=0)  # [P, 2]
    scale = float(torch.maximum(a.cmax.abs().amax(), b.cmax.abs().amax())) + 1
    keep = (gap <= (fa[:, 2:4] + fb[:, 4:6]).mul_(0.5 * (1.0 - thr_value + 2e-3)).add_(1e-6 * scale)).all(-1)
    keep &= (fa[:, 2:4] * (1 + 2e-3) >= thr_value * fb[:, 6:8]).all(-1)
    keep &= (fb[:, 4:6] * (1 + 2e-3) >= thr_value * fa[:, 2:4]).all(-1)
    if a.groups is not None:
        ga_p = a.gmin[pa]
        keep &= (ga_p <= b.gmax[pb]) & (b.gmin[pb] <= ga_p)
    return pa[keep], pb[keep]


def _tile_pairs(a: _Tiles, b: _Tiles, thr_value: float, cull: bool, upper: bool) -> tuple[Tensor, Tensor]:
    """Tile pairs that may hold a pair of boxes with IoU > threshold (conservative)."""
    na, nb = a.boxes.shape[0], b.boxes.shape[0]
    keep = torch.ones(na, nb, dtype=torch.bool, device=a.boxes.device)
    if upper:
        keep.triu_()
    if cull:
        gap = (torch.maximum(a.cmin[:, None], b.cmin[None]) - torch.minimum(a.cmax[:, None], b.cmax[None])).clamp_(min=0)
        # IoU > t needs |c_i - c_j| < (w_i + w_j) / 2 - t max(w_i, w_j) <= (1 - t)(w_i + w_j) / 2,
        # and min(w) > t max(w). The margins make the culling safe against rounding.
        half_sum = (a.whmax[:, None] + b.whmax[None]) * 0.5  # [nA, nB, 2]
        scale = torch.maximum(a.cmax.abs().amax(), b.cmax.abs().amax()) + 1
        keep &= (gap <= half_sum * (1.0 - thr_value + 2e-3) + 1e-6 * scale).all(-1)
        keep &= (a.whmax[:, None] * (1 + 2e-3) >= thr_value * b.whmin[None]).all(-1)
        keep &= (b.whmax[None] * (1 + 2e-3) >= thr_value * a.whmin[:, None]).all(-1)
    if a.groups is not None:
        keep &= (a.gmin[:, None] <= b.gmax[None]) & (b.gmin[None] <= a.gmax[:, None])
    return keep.nonzero().unbind(1)


def _hits(a: _Tiles, b: _Tiles, thr_value: float, *, same: bool):
    """Yields ``(i, j)`` index batches (into a's and b's boxes) of the same group with IoU > threshold.

    With ``same`` (a is b), each unordered pair is yielded once and never a box with itself.
    """
    cull = thr_value >= 0  # below 0 even disjoint boxes suppress each other: compare all pairs
    thr = _threshold_below(thr_value, a.boxes.dtype).to(a.boxes.device)
    if cull and a.t == 1 and not same:
        pa, pb = _box_tile_pairs(a, b, thr_value)
    else:
        pa, pb = _tile_pairs(a, b, thr_value, cull, upper=same)
    ta, tb = a.t, b.t
    local_upper = torch.ones(ta, tb, dtype=torch.bool, device=a.boxes.device).triu_(1) if same else None
    step = max(1, _CHUNK_ELEMS // (ta * tb))
    for s in range(0, pa.numel(), step):
        ia, ib = pa[s:s + step], pb[s:s + step]
        hit = _pair_ovr_gt(a.boxes[ia], b.boxes[ib], a.area[ia], b.area[ib], thr)  # [P, Ta, Tb]
        if same:
            diag = ia == ib
            if bool(diag.any()):
                hit[diag] &= local_upper
        if a.groups is not None and not bool((a.mixed[ia] | b.mixed[ib]).any()):
            pass  # culled pairs of single-group tiles share their group
        elif a.groups is not None:
            hit &= a.groups[ia][:, :, None] == b.groups[ib][:, None, :]
        p, u, v = hit.nonzero().unbind(1)
        if p.numel() == 0:
            continue
        i, ok_i = a.original(ia[p] * ta + u)
        j, ok_j = b.original(ib[p] * tb + v)
        ok = ok_i & ok_j
        yield i[ok], j[ok]


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
    sb = boxes[order]  # [N, 4] in sweep order: pairs index nearby rows
    x1, y1, x2, y2 = sb.t().contiguous().unbind(0)
    wmin = (x2 - x1) * (thr_value * (1 - 1e-3))
    hmin = (y2 - y1) * (thr_value * (1 - 1e-3))
    area = (x2 - x1) * (y2 - y1)
    thr = _threshold_below(thr_value, boxes.dtype).to(boxes.device)
    src, dst = [], []
    for s in range(0, first.numel(), _SPARSE_CHUNK):
        a, b = first[s:s + _SPARSE_CHUNK], second[s:s + _SPARSE_CHUNK]
        ih = torch.minimum(y2[a], y2[b]).sub_(torch.maximum(y1[a], y1[b]))
        ok = (ih > torch.maximum(hmin[a], hmin[b])) & (ih > 0)
        iw = torch.minimum(x2[a], x2[b]).sub_(torch.maximum(x1[a], x1[b]))
        ok &= (iw > torch.maximum(wmin[a], wmin[b])) & (iw > 0)
        a, b = a[ok], b[ok]
        hit = _pair_ovr_gt(sb[a][:, None], sb[b][:, None], area[a][:, None], area[b][:, None],
                           thr).view(-1)  # [P]
        i, j = order[a[hit]], order[b[hit]]
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
    device = rest.boxes.device
    pa, pb = _box_tile_pairs(kept, rest, thr_value)  # sorted by pb
    if pa.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=device)
    k, t = _KEPT_CHUNK, rest.t
    n_tiles = rest.boxes.shape[0]
    counts = torch.bincount(pb, minlength=n_tiles)  # kept boxes per rest tile
    run = torch.arange(pa.numel(), device=device) - (torch.cumsum(counts, 0) - counts)[pb]
    blocks = (counts + k - 1) // k  # [nT]
    block = (torch.cumsum(blocks, 0) - blocks)[pb] + torch.div(run, k, rounding_mode="floor")
    n_blocks = int(blocks.sum())
    slot = torch.full((n_blocks, k), -1, dtype=torch.long, device=device)
    slot[block, run % k] = pa
    block_tile = torch.repeat_interleave(torch.arange(n_tiles, device=device), blocks, output_size=n_blocks)
    kb, ka, kg = kept.boxes[:, 0], kept.area[:, 0], kept.groups[:, 0] if kept.groups is not None else None
    mixed = kept.groups is not None and bool(rest.mixed.any())
    thr = _threshold_below(thr_value, rest.boxes.dtype).to(device)
    step = max(1, _CHUNK_ELEMS // (k * t))
    out = []
    for s in range(0, n_blocks, step):
        sl, bt = slot[s:s + step], block_tile[s:s + step]
        valid = sl >= 0  # [P, K]
        sl = sl.clamp(min=0)
        hit = _pair_ovr_gt(kb[sl], rest.boxes[bt], ka[sl], rest.area[bt], thr)  # [P, K, T]
        hit &= valid[:, :, None]
        if mixed:  # culled pairs of single-group tiles share their group; mixed tiles need a check
            hit &= kg[sl][:, :, None] == rest.groups[bt][:, None, :]
        p, v = hit.any(1).nonzero().unbind(1)
        j, ok = rest.original(bt[p] * t + v)
        out.append(j[ok])
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
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    spatial = _spatial_order(boxes, thr_value, groups) if n > _TILE else torch.arange(n, device=device)
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
        head = _Tiles(boxes, area, groups, spatial[in_head[spatial]])
        src, dst = [], []
        for i, j in _hits(head, head, thr_value, same=True):
            src.append(torch.minimum(i, j))
            dst.append(torch.maximum(i, j))
        head_ranks = in_head.nonzero().flatten()  # increasing rank
        if src:
            # Relabel ranks to 0..h-1 for the resolver (order is preserved).
            pos = torch.full((n,), -1, dtype=torch.long, device=device)
            pos[head_ranks] = torch.arange(head_ranks.numel(), device=device)
            head_keep = _greedy_keep(head_ranks.numel(), pos[torch.cat(src)], pos[torch.cat(dst)])
            kept = head_ranks[head_keep]
        else:
            kept = head_ranks
        keep[kept] = True
        alive[start:stop] = False
        start = stop
        if start >= n or not bool(alive[start:].any()):
            break
        is_kept = torch.zeros(n, dtype=torch.bool, device=device)
        is_kept[kept] = True
        kept_boxes = _Tiles(boxes, area, groups, spatial[is_kept[spatial]], 1)
        rest_tiles = _Tiles(boxes, area, groups, spatial[alive[spatial]])
        if thr_value >= 0:
            alive[_suppressed(kept_boxes, rest_tiles, thr_value)] = False
        else:
            for _, j in _hits(kept_boxes, rest_tiles, thr_value, same=False):
                alive[j] = False
        m *= 2
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
        first).
    """
    boxes, scores, t = _prepare(boxes, scores, iou_threshold)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[_nms_ranked(boxes[order], t, None)]


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """NMS within each category: boxes with different ``idxs`` never suppress each other.

    Args:
        boxes (Tensor[N, 4]): xyxy, ``x1 <= x2``, ``y1 <= y2``.
        scores (Tensor[N]): score per box.
        idxs (Tensor[N]): integer category of each box.
        iou_threshold (float): as in :func:`nms`.

    Returns:
        Tensor[K]: int64 indices of the kept boxes, in decreasing score order (ties: lower index
        first). The kept set is exactly that of running :func:`nms` on each category.
    """
    boxes, scores, t = _prepare(boxes, scores, iou_threshold)
    check_tensor(idxs, "idxs")
    check_shape(idxs, "idxs", (boxes.shape[0],), f"[N] with N = {boxes.shape[0]} (one per box)")
    if idxs.is_floating_point() or idxs.is_complex():
        raise TypeError(f"idxs must be an integer tensor, got dtype {idxs.dtype}")
    check_same_device("boxes", boxes, "idxs", idxs)
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    return order[_nms_ranked(boxes[order], t, idxs[order].long())]
