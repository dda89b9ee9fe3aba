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
2. *Culled dense tiles* (:mod:`pixbox.ops._nms_tiles`). Pairs are compared tile by tile with
   dense, vectorised IoU; boxes are ordered spatially and cut into tiles, and two tiles are
   compared only if some pair in them could pass the threshold (a conservative test).
3. *Resolution within a round.* Greedy NMS keeps ``j`` iff no kept ``i`` ranked above it has an
   edge ``i -> j``. That fixed point is reached by vectorised sweeps (exact after as many sweeps
   as the longest suppression chain); long chains fall back to one sequential pass over the
   round's (small) edge list.
4. *Sparse inputs.* When a sort-and-sweep along x finds few candidate pairs (at most
   ``_SPARSE_PAIRS`` per box: spread-out boxes, or many categories in ``batched_nms``), the whole
   suppression graph is built at once from those pairs and resolved as in 3, with no rounds.
5. *Memory traffic.* Box features are stored once, in spatial order and as rows, so the tiles of
   any subset are sequential gathers. In ``batched_nms`` every group's run of boxes is padded to
   whole tiles when the runs are long, so that no pair needs a group check. The sparse hit masks
   are reduced and scanned eight booleans at a time (as int64 words).

Inputs that require grad are read detached: NMS returns indices and needs no gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_boxes, check_number, check_same_device, check_shape, check_tensor
from pixbox.ops._nms_tiles import (  # noqa: F401  (_any_dim1, _nonzero: the tests reach them here)
    _TILE,
    _Tiles,
    _any_dim1,
    _cols,
    _features,
    _hits,
    _nonzero,
    _pair_ovr_gt,
    _spatial_order,
    _suppressed,
    _threshold_below,
)

__all__ = ["nms", "batched_nms"]

_MAX_SWEEPS = 12  # vectorised sweeps before the sequential fallback
_ROUND = 1024  # boxes resolved in the first round
_GROWTH = 2  # factor by which the rounds grow
_SPARSE_PAIRS = 64  # candidate pairs per box below which the whole graph is built at once
_SPARSE_CHUNK = 1 << 16  # pairs per vectorised step in the sparse path


def _layout(boxes: Tensor, groups: Tensor | None) -> tuple[Tensor | None, int, float, float]:
    """Compact group ids, their number, the boxes' x extent and mean width, in one host read.

    Group ids become small non-negative integers (same partition), so they can enter sort keys.
    """
    stats = [(boxes[:, 2].amax() - boxes[:, 0].amin()).double(), (boxes[:, 2] - boxes[:, 0]).mean().double()]
    if groups is not None:
        groups = groups - groups.min()
        stats.append(groups.max().double())
    stats = torch.stack(stats).tolist()
    num_groups = 1
    if groups is not None:
        num_groups = int(stats[2]) + 1
        if stats[2] >= 1 << 20:
            ids, groups = torch.unique(groups, return_inverse=True)
            num_groups = ids.numel()
    return groups, num_groups, stats[0], stats[1]


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
    lo, hi = x1.min(), x1.max()  # stay on the device: 0-dim float64, the arithmetic of Python floats
    margin = torch.maximum(lo.abs(), hi.abs()).add_(1.0).mul_(1e-6)
    reach = (boxes[:, 2] - boxes[:, 0]).double().mul_(1.0 - thr_value + 2e-3).add_(margin)  # [N]
    key = x1 - lo
    if groups is not None:  # compact ids (< 2**20): the offsets stay exact in float64
        key += groups.double() * (hi - lo + reach.max()).mul_(2.0).add_(1.0)  # windows never cross groups
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


def _sparse_estimate(n: int, thr_value: float, num_groups: int, span: float, mean_w: float) -> float:
    """A cheap guess of the sweep's candidate pairs per box, to skip the sweep when hopeless.

    Boxes spread uniformly along x within equally sized groups would give this many; the sweep
    itself still checks its budget exactly, so the guess only has to be roughly right.
    """
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
    thr = _threshold_below(thr_value, boxes.dtype, boxes.device)
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
    return _greedy_keep(boxes.shape[0], torch.cat(src), torch.cat(dst))[0]


def _nms_ranked(boxes: Tensor, thr_value: float, groups: Tensor | None) -> Tensor:
    """Greedy NMS on boxes already in rank order; returns the keep mask ``[N]``.

    Exact rounds: the ``m`` best boxes still alive are resolved among themselves (their fate
    depends only on each other, since every box above them is kept or suppressed already); the
    boxes they keep then suppress the rest. Only pairs with a kept box are ever compared, as in
    the sequential algorithm, but vectorised and spatially culled. The sizes that the rounds need
    on the host come from one read per round (the alive boxes and where the head ends), the
    resolver's last sweep (how many the head keeps) and the pair searches.
    """
    n = boxes.shape[0]
    device = boxes.device
    keep = torch.zeros(n, dtype=torch.bool, device=device)
    if n == 0:
        return keep
    if thr_value >= 1.0:  # a computed IoU never exceeds 1
        return keep.fill_(True)
    groups, num_groups, span, mean_w = _layout(boxes, groups)
    if thr_value >= 0 and _sparse_estimate(n, thr_value, num_groups, span, mean_w) <= 2 * _SPARSE_PAIRS:
        sparse = _nms_sparse(boxes, thr_value, groups, _SPARSE_PAIRS * n)
        if sparse is not None:
            return sparse
    if n > _TILE:
        # Boxes are tiled in spatial order; features and groups are stored in that order, so the
        # tiles of any subset (ascending positions) gather sequential memory.
        spatial = _spatial_order(boxes, thr_value, groups, num_groups)
        boxes = boxes.index_select(0, spatial)
        groups = groups.index_select(0, spatial) if groups is not None else None
    else:
        spatial = torch.arange(n, device=device)
    feat = _features(boxes)  # [9, N] in spatial order

    def tiles(rank_mask: Tensor, count: int, tile: int = _TILE) -> _Tiles:
        """Tiles of the ``count`` boxes selected by a mask over ranks, labelled with their ranks."""
        index = torch.nonzero_static(rank_mask.index_select(0, spatial), size=count).flatten()
        return _Tiles(feat, groups, index, tile, spatial)

    alive = torch.ones(n, dtype=torch.bool, device=device)  # never True before `start`
    start, m = 0, _ROUND
    while True:
        # Head: the m best alive boxes (ranks start..stop), in spatial order. One host read: how
        # many are alive, and where the m-th of them is.
        seen = torch.cumsum(alive[start:], 0)
        last = torch.searchsorted(seen, seen[-1].clamp(max=m))
        num_alive, last = torch.stack([seen[-1], last]).tolist()
        if num_alive == 0:
            break
        h, stop = min(m, num_alive), start + last + 1
        in_head = torch.zeros(n, dtype=torch.bool, device=device)
        in_head[start:stop] = alive[start:stop]
        head = tiles(in_head, h)
        src, dst = [], []
        for i, j in _hits(head, head, thr_value, same=True):
            src.append(torch.minimum(i, j))
            dst.append(torch.maximum(i, j))
        head_ranks = torch.nonzero_static(in_head, size=h).flatten()  # increasing rank
        if src:
            # Relabel ranks to 0..h-1 for the resolver (order is preserved).
            pos = torch.full((n,), -1, dtype=torch.long, device=device)
            pos.index_copy_(0, head_ranks, torch.arange(h, device=device))
            head_keep, num_kept = _greedy_keep(h, pos.index_select(0, torch.cat(src)),
                                               pos.index_select(0, torch.cat(dst)))
        else:
            head_keep, num_kept = torch.ones(h, dtype=torch.bool, device=device), h
        keep.index_put_((head_ranks,), head_keep)
        alive[start:stop] = False
        start = stop
        if num_alive == h:  # nothing left below the head
            break
        is_kept = torch.zeros(n, dtype=torch.bool, device=device)
        is_kept.index_put_((head_ranks,), head_keep)
        kept_boxes = tiles(is_kept, num_kept, 1)
        rest_tiles = tiles(alive, num_alive - h)
        if thr_value >= 0:
            alive.index_fill_(0, _suppressed(kept_boxes, rest_tiles, thr_value), False)
        else:
            for _, j in _hits(kept_boxes, rest_tiles, thr_value, same=False):
                alive.index_fill_(0, j, False)
        m *= _GROWTH
    return keep


def _greedy_keep(n: int, src: Tensor, dst: Tensor) -> tuple[Tensor, int]:
    """Greedy NMS on a suppression graph: ``keep[j]`` iff no kept ``i < j`` has an edge ``i -> j``.

    Edges may repeat. Returns the keep mask ``[n]`` and how many it keeps (read with the last
    sweep's convergence test: one host read per sweep).
    """
    keep = torch.ones(n, dtype=torch.bool, device=src.device)
    if src.numel() == 0:
        return keep, n
    # Vectorised sweeps. After sweep k every box whose longest suppression chain is < k is final.
    for _ in range(_MAX_SWEEPS):
        # Boxes hit by a kept box: a scatter of maxima (no data-dependent shape, unlike a mask).
        hit = torch.zeros(n, dtype=torch.uint8, device=src.device)
        hit.scatter_reduce_(0, dst, keep.index_select(0, src).view(torch.uint8), reduce="amax")
        new = hit == 0
        changed, count = torch.stack([(new != keep).any().long(), new.sum()]).tolist()
        if not changed:
            return keep, count
        keep = new
    # Long chains: one sequential pass over the edges, grouped by source, on the host.
    order = torch.argsort(src, stable=True)
    s_np, d_np = torch.stack([src.index_select(0, order), dst.index_select(0, order)]).cpu().numpy()
    starts = np.flatnonzero(np.r_[True, s_np[1:] != s_np[:-1]])
    ends = np.r_[starts[1:], s_np.size]
    removed = np.zeros(n, dtype=bool)
    for a, b in zip(starts.tolist(), ends.tolist()):
        if not removed[s_np[a]]:
            removed[d_np[a:b]] = True
    return torch.from_numpy(~removed).to(src.device), n - int(removed.sum())


def _prepare(boxes: Tensor, scores: Tensor, iou_threshold) -> tuple[Tensor, Tensor, float]:
    check_boxes(boxes, "boxes", well_formed=False)
    check_tensor(scores, "scores")
    check_shape(scores, "scores", (boxes.shape[0],), f"[N] with N = {boxes.shape[0]} (one per box)")
    check_same_device("boxes", boxes, "scores", scores)
    if not scores.is_floating_point() and scores.dtype not in (torch.int32, torch.int64, torch.int16, torch.uint8):
        raise TypeError(f"scores must be a real tensor, got dtype {scores.dtype}")
    if boxes.numel():  # one host read for both value checks
        bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]) | ~torch.isfinite(boxes).all(dim=1)
        flags = [bad.any()] + ([torch.isnan(scores).any()] if scores.is_floating_point() else [])
        flags = torch.stack(flags).tolist()
        if flags[0]:
            check_boxes(boxes, "boxes")  # raises, naming the first bad row
        if flags[1:] and flags[1]:
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
