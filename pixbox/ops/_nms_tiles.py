"""The culled dense tiles of :mod:`pixbox.ops.nms`: pairwise IoU tests of subsets of boxes.

Pairs are compared tile by tile with dense, vectorised IoU. Boxes are ordered spatially (by group,
width class, a slab of x and then y) and cut into tiles; two tiles are compared only if some pair
in them could pass the threshold. The culling is conservative: for IoU > t >= 0 two boxes must
satisfy ``|cx_i - cx_j| < (1 - t)(w_i + w_j)/2`` (likewise in y) and ``min(w) > t max(w)``. When
the kept boxes of a round suppress the rest, each kept box is its own tile (kept boxes are sparse,
and a tile of scattered boxes would cull nothing), and the tiles of the rest it can reach are
found by a sort-and-sweep along x instead of a dense culling matrix.

Box features are stored once, in spatial order and as rows (x1, y1, x2, y2, area, ...: structure
of arrays), so the tiles of any subset are sequential gathers (``index_select``, never advanced
indexing) and broadcast over contiguous memory. IoU uses torchvision's expression,
``inter / (area_i + area_j - inter)``, in the boxes' dtype.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

_TILE = 32  # boxes per tile in the edge search
_CHUNK_ELEMS = 1 << 18  # pair-elements per vectorised step (keeps temporaries in cache)
_KEPT_CHUNK = 8  # kept boxes compared with one tile of the rest at a time
_HIT_ELEMS = 1 << 22  # pair-elements of hit masks gathered for one nonzero (one host read)


def _threshold_below(t: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Largest value ``v`` of ``dtype`` (float32 or float64) with ``(x > v) == (float(x) > t)`` for
    every ``x`` of ``dtype``, as a 0-dim tensor on ``device``.

    torchvision compares a float IoU with a double threshold; comparing in the boxes' dtype
    would round the threshold and could flip a decision exactly at the threshold. Computed on the
    host with NumPy and written with a fill: no host-device copy.
    """
    kind = np.float32 if dtype == torch.float32 else np.float64
    v = kind(t)
    if float(v) > t:
        v = np.nextafter(v, kind(-np.inf))
    return torch.full((), float(v), dtype=dtype, device=device)


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


def _pair_ovr_gt(a: Tensor, b: Tensor, thr: Tensor, out: Tensor | None = None) -> Tensor:
    """``IoU(a_u, b_v) > thr`` for all u, v of paired tiles.

    Args:
        a (Tensor[5, P, U]), b (Tensor[5, P, V]): rows x1, y1, x2, y2, area of ``P`` tile pairs.
        out (Tensor[P, U, V] bool, optional): where to write the result.

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
    return torch.gt(inter.div_(union), thr, out=out)  # 0/0 (two degenerate boxes) is NaN: never suppresses


def _spatial_order(boxes: Tensor, thr_value: float, groups: Tensor | None, num_groups: int = 1) -> Tensor:
    """A permutation putting boxes that might overlap near each other.

    Sort keys, most significant first: group, width class (widths differing by more than a
    factor 1/t never pass), a slab of x about one reach wide, then the y centre. One sort on a
    composite int64 key (the y centre quantised to up to 20 bits); the order only serves the
    culling, so ties may fall either way. ``groups`` are compact ids below ``num_groups``.
    """
    n = boxes.shape[0]
    device = boxes.device
    x1, y1, x2, y2 = boxes.t()
    w, cx, cy = x2 - x1, (x1 + x2) * 0.5, (y1 + y2) * 0.5
    wclass = torch.zeros(n, dtype=torch.long, device=device)
    width = w.amax().clamp(min=1e-12).expand(n)
    if thr_value >= 0:
        ratio = max(1.0 / max(thr_value, 1e-6), 2.0)
        # Width classes span at most log(max width / 1e-12) / log(ratio) + 1 values: a fixed
        # table size needs no host read.
        classes = int((math.log(torch.finfo(w.dtype).max) - math.log(1e-12)) / math.log(ratio)) + 2
        wclass = torch.floor(torch.log(w.clamp(min=1e-12)) / math.log(ratio)).long()
        wclass = (wclass - wclass.min()).clamp_(0, classes - 1)
        wmax = torch.zeros(classes, dtype=w.dtype, device=device)
        wmax = wmax.scatter_reduce(0, wclass, w, reduce="amax", include_self=False)
        width = ((1.0 - thr_value) * 1.05 * wmax).clamp(min=1e-12)[wclass]
    xslab = torch.floor((cx - cx.amin()) / width).long()
    # One host read for the key's ranges and the y extent.
    stats = torch.stack([wclass.max().double(), xslab.max().double(), cy.amin().double(),
                         (cy.amax() - cy.amin()).double()]).tolist()
    wm, xm, lo, span = int(stats[0]), int(stats[1]), stats[2], stats[3]
    # One integer key for (group, width class, slab): groups < 2**20 (see nms._layout),
    # classes < 2**11 and slabs <= N keep it well inside int64.
    key = wclass * (xm + 1) + xslab
    top_key = (wm + 1) * (xm + 1) - 1
    if groups is not None:
        key = key + groups * ((wm + 1) * (xm + 1))
        top_key += (num_groups - 1) * (wm + 1) * (xm + 1)
    bits = min(20, 62 - top_key.bit_length())
    if bits < 8:  # huge keys: sort by y, then stably by key
        perm = torch.argsort(cy, stable=True)
        return perm[torch.argsort(key[perm], stable=True)]
    top = (1 << bits) - 1
    q = ((cy.double() - lo) * (top / span)).clamp_(0, top).long() if span > 0 else torch.zeros_like(key)
    return torch.argsort((key << bits) | q)


class _Tiles:
    """A subset of boxes, in a given (spatial) order, cut into tiles with per-tile bounds.

    Padding slots repeat a box of their tile (so the bounds do not change; ``valid`` is False
    there, and a padding slot's pairs are its box's pairs again). When
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
        self.any_mixed = False  # does some tile hold more than one group (known on the host)
        if g is not None and t > 1 and n > 0:
            starts = torch.ones(n, dtype=torch.bool, device=device)
            torch.ne(g[1:], g[:-1], out=starts[1:])
            ar = torch.arange(n, device=device)
            # One host read: the runs of one group, the tiles they fill when each is padded to whole
            # tiles (positions at a multiple of t from their run's start), and whether a run starts
            # inside a tile (then, unpadded, that tile mixes groups).
            offset = ar - torch.where(starts, ar, 0).cummax(0).values
            inside = starts & (ar % t != 0)
            num_runs, num_tiles, crossing = torch.stack(
                [starts.sum(), (offset % t == 0).sum(), inside.any().long()]).tolist()
            if 1 < num_runs <= n // (2 * t):  # long runs: pad each one to whole tiles
                run_start = torch.nonzero_static(starts, size=num_runs).flatten()  # [R] first positions
                run_len = torch.diff(run_start, append=torch.full((1,), n, device=device))
                padded = (run_len + t - 1) // t * t
                run = torch.cumsum(starts, 0) - 1  # [n] run of each position
                shift = (torch.cumsum(padded, 0) - padded - run_start).index_select(0, run)
                slots = torch.full((num_tiles * t,), -1, dtype=torch.long, device=device)
                slots.index_copy_(0, shift.add_(ar), ar)
            else:
                self.any_mixed = bool(crossing)
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

    def original(self, pos: Tensor) -> Tensor:
        """Maps positions in the tiled order to box labels (a padding slot gives its box's)."""
        index = self.index.index_select(0, pos)
        if self.labels is not None:
            index = self.labels.index_select(0, index)
        return index


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
    # The bounds stay on the device (0-dim float64, the same arithmetic as Python floats).
    lo_x = torch.minimum(ca.amin(), b.cmin[:, 0].double().amin())
    hi_x = torch.maximum(ca.amax(), b.cmax[:, 0].double().amax())
    margin = torch.maximum(lo_x.abs(), hi_x.abs()).add_(1).mul_(1e-6)
    reach = (wb + wa_reach) * (0.5 * (1.0 - thr_value + 2e-3)) + margin  # [nB]
    stride = (hi_x - lo_x) + 2.0 * reach.amax() + 1.0  # group offset: windows stay in group
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
    slack = torch.maximum(a.cmax.abs().amax(), b.cmax.abs().amax()).double().add_(1).mul_(1e-6)
    keep = None
    for d in (0, 1):  # x, then y
        gap = torch.maximum(fb[d] - fa[d], fa[d] - fb[2 + d]).clamp_(min=0)  # [P]
        ok = gap <= (fa[2 + d] + fb[4 + d]).mul_(0.5 * (1.0 - thr_value + 2e-3)).add_(slack)
        ok &= fa[2 + d] * (1 + 2e-3) >= thr_value * fb[6 + d]
        ok &= fb[4 + d] * (1 + 2e-3) >= thr_value * fa[2 + d]
        keep = ok if keep is None else keep.logical_and_(ok)
    if a.groups is not None and b.any_mixed:  # windows never cross groups otherwise
        ga_p = a.gmin.index_select(0, pa)
        keep &= (ga_p <= b.gmax.index_select(0, pb)) & (b.gmin.index_select(0, pb) <= ga_p)
    sel = keep.nonzero().flatten()
    return pa.index_select(0, sel), pb.index_select(0, sel)


def _tile_pairs(a: _Tiles, b: _Tiles, thr_value: float, cull: bool, upper: bool) -> tuple[Tensor, Tensor]:
    """Tile pairs that may hold a pair of boxes with IoU > threshold (conservative); with ``upper``
    only pairs of distinct tiles ``i < j`` (see :func:`_hits` for a tile with itself)."""
    keep = torch.ones(a.nt, b.nt, dtype=torch.bool, device=a.cmin.device)
    if upper:
        keep.triu_(1)
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
    """Yields ``(i, j)`` label batches (of a's and b's boxes) of the same group with IoU > threshold.

    With ``same`` (a is b), each unordered pair is yielded and never a box with itself. A pair may
    come more than once (a padding slot repeats a box of its tile): callers use the pairs as a set.
    The hit masks of up to ``_HIT_ELEMS`` pair-elements are gathered for one ``nonzero`` (the
    only host read per batch); they are computed ``_CHUNK_ELEMS`` at a time.
    """
    cull = thr_value >= 0  # below 0 even disjoint boxes suppress each other: compare all pairs
    device = a.cmin.device
    thr = _threshold_below(thr_value, a.feat.dtype, device)
    if cull and a.t == 1 and not same:
        pa, pb = _box_tile_pairs(a, b, thr_value)
    else:
        pa, pb = _tile_pairs(a, b, thr_value, cull, upper=same)
    ta, tb = a.t, b.t
    num_diag = 0
    if same:  # each tile with itself first: slots u < v, both valid (a box could meet its own copy)
        num_diag = a.nt
        valid = a.valid.view(a.nt, ta)
        inner = torch.ones(ta, tb, dtype=torch.bool, device=device).triu_(1) & valid[:, :, None] & valid[:, None, :]
        diag = torch.arange(a.nt, device=device)
        pa, pb = torch.cat([diag, pa]), torch.cat([diag, pb])
    mixed = a.groups is not None and (a.any_mixed or b.any_mixed)
    step = max(1, _CHUNK_ELEMS // (ta * tb))
    span = max(1, _HIT_ELEMS // (ta * tb * step)) * step
    for s0 in range(0, pa.numel(), span):
        ia0, ib0 = pa[s0:s0 + span], pb[s0:s0 + span]
        hit = torch.empty((ia0.numel(), ta, tb), dtype=torch.bool, device=device)
        for s in range(0, ia0.numel(), step):
            ia, ib, out = ia0[s:s + step], ib0[s:s + step], hit[s:s + step]
            _pair_ovr_gt(a.feat.index_select(1, ia), b.feat.index_select(1, ib), thr, out=out)  # [P, Ta, Tb]
            if mixed:  # culled pairs of single-group tiles share their group; mixed tiles need a check
                out &= a.groups.index_select(0, ia)[:, :, None] == b.groups.index_select(0, ib)[:, None, :]
        if s0 < num_diag:
            hit[:num_diag - s0] &= inner[s0:num_diag]
        p, u, v = _nonzero(hit)
        if p.numel() == 0:
            continue
        yield a.original(ia0.index_select(0, p) * ta + u), b.original(ib0.index_select(0, p) * tb + v)


def _suppressed(kept: _Tiles, rest: _Tiles, thr_value: float) -> Tensor:
    """Indices of the boxes of ``rest`` that some box of ``kept`` (tiles of one box) suppresses
    (possibly repeated).

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
    # Kept boxes per rest tile (pb is sorted; bincount would read its maximum on the host).
    counts = torch.diff(torch.searchsorted(pb, torch.arange(rest.nt + 1, device=device)))
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
    mixed = kg is not None and rest.any_mixed
    thr = _threshold_below(thr_value, rest.feat.dtype, device)
    step = max(1, _CHUNK_ELEMS // (k * t))
    struck = torch.empty((n_blocks, t), dtype=torch.bool, device=device)  # rest slots hit, per block
    for s in range(0, n_blocks, step):
        sl, bt = slot[s:s + step], block_tile[s:s + step]
        hit = _pair_ovr_gt(_cols(kb, sl), rest.feat.index_select(1, bt), thr)  # [P, K, T]
        if mixed:  # culled pairs of single-group tiles share their group; mixed tiles need a check
            kgs = _rows(torch.cat([kg, kg.new_full((1,), -1)]), sl)  # [P, K]
            hit &= kgs[:, :, None] == rest.groups.index_select(0, bt)[:, None, :]
        struck[s:s + step] = _any_dim1(hit)
    p, v = struck.nonzero().unbind(1)  # denser than the hits: a plain nonzero, once
    return rest.original(block_tile.index_select(0, p) * t + v)  # padding slots repeat their box
