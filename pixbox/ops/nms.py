"""Non-maximum suppression, exact and fast in pure PyTorch.

Semantics are torchvision's: boxes are visited in decreasing score order (ties: lower index
first), a box is kept unless a kept box with a higher rank overlaps it with IoU strictly
greater than ``iou_threshold``. IoU is computed with the same floating-point expression as
torchvision's kernel, ``inter / (area_i + area_j - inter)``, so the keep lists are identical.

How it is fast without a compiled kernel:

1. *Suppression edges.* Every pair ``(i, j)`` with IoU > threshold is found with dense,
   vectorised tile-by-tile IoU. Boxes are ordered spatially (by group, width class, a slab of
   x and then y) and cut into tiles; two tiles are compared only if some pair in them could
   pass the threshold. The culling is conservative: for IoU > t >= 0 two boxes must satisfy
   ``|cx_i - cx_j| < (1 - t) max(w_i, w_j)`` (likewise in y) and ``min(w) > t max(w)``.
2. *Greedy resolution.* Greedy NMS keeps ``j`` iff no kept ``i`` ranked above it has an
   edge to ``j``. That fixed point is reached by vectorised sweeps (exact after as many sweeps
   as the longest suppression chain); long chains fall back to a sequential pass over the
   (small) edge list.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_boxes, check_number, check_same_device, check_shape, check_tensor

__all__ = ["nms", "batched_nms"]

_TILE = 64  # boxes per tile in the edge search
_CHUNK_ELEMS = 1 << 18  # pair-elements per vectorised step (keeps temporaries in cache)
_MAX_SWEEPS = 12  # vectorised sweeps before the sequential fallback


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


def _suppression_edges(boxes: Tensor, thr_value: float, groups: Tensor | None) -> tuple[Tensor, Tensor]:
    """All pairs ``(i, j)``, ``i < j``, of the same group whose IoU is > threshold.

    Args:
        boxes (Tensor[N, 4]): xyxy, in rank order (index = rank), float32/float64.
        thr_value (float): the IoU threshold.
        groups (Tensor[N], optional): group id per box; pairs across groups never suppress.

    Returns:
        (src, dst): int64 ``[E]`` each, ``src < dst``.
    """
    n = boxes.shape[0]
    device = boxes.device
    empty = boxes.new_zeros(0, dtype=torch.long)
    if n < 2 or thr_value >= 1.0:  # computed IoU never exceeds 1
        return empty, empty
    thr = _threshold_below(thr_value, boxes.dtype).to(device)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cull = thr_value >= 0  # below 0 even disjoint boxes suppress each other: compare every pair

    if n <= _TILE:
        perm = None
        tiles, tile_area = boxes[None], area[None]  # [1, N, 4], [1, N]
        tile_group = groups[None] if groups is not None else None
        pa = pb = torch.zeros(1, dtype=torch.long, device=device)
        t = n
    else:
        t = _TILE
        wh = boxes[:, 2:] - boxes[:, :2]  # [N, 2]
        ctr = (boxes[:, :2] + boxes[:, 2:]) * 0.5  # [N, 2]
        if cull:
            # Width classes: boxes whose widths differ by more than a factor 1/t never pass.
            ratio = max(1.0 / max(thr_value, 1e-6), 2.0)
            wclass = torch.floor(torch.log(wh[:, 0].clamp(min=1e-12)) / math.log(ratio)).long()
            wclass = wclass - wclass.min()
            slab = (1.0 - thr_value) * 1.05 * wh[:, 0].amax().clamp(min=1e-12)
            xslab = torch.floor((ctr[:, 0] - ctr[:, 0].amin()) / slab).long()
        else:
            wclass = torch.zeros(n, dtype=torch.long, device=device)
            xslab = torch.floor((ctr[:, 0] - ctr[:, 0].amin()) / (wh[:, 0].amax().clamp(min=1e-12) + 1)).long()
        # Stable lexicographic sort: group, width class, x slab, then y centre.
        perm = torch.argsort(ctr[:, 1], stable=True)
        for key in (xslab, wclass) + ((groups,) if groups is not None else ()):
            perm = perm[torch.argsort(key[perm], stable=True)]
        n_tiles = (n + t - 1) // t
        pad = n_tiles * t - n
        if pad:  # repeat the last box: padded pairs are filtered out by position below
            perm = torch.cat([perm, perm[-1:].expand(pad)])
        tiles = boxes[perm].view(n_tiles, t, 4)
        tile_area = area[perm].view(n_tiles, t)
        tile_group = groups[perm].view(n_tiles, t) if groups is not None else None
        keep_pair = torch.ones(n_tiles, n_tiles, dtype=torch.bool, device=device).triu_()
        if cull:
            tc, twh = ctr[perm].view(n_tiles, t, 2), wh[perm].view(n_tiles, t, 2)
            cmin, cmax = tc.amin(1), tc.amax(1)  # [nT, 2]
            whmax, whmin = twh.amax(1), twh.amin(1)  # [nT, 2]
            gap = (torch.maximum(cmin[:, None], cmin[None]) - torch.minimum(cmax[:, None], cmax[None])).clamp_(min=0)
            big = torch.maximum(whmax[:, None], whmax[None])  # [nT, nT, 2]
            # Margins make the culling safe against rounding in the computed IoU.
            reach = big * (1.0 - thr_value + 2e-3) + 1e-6 * (cmax.abs().amax() + 1)
            keep_pair &= (gap <= reach).all(-1)
            small_a = whmax[:, None, 0] * (1 + 2e-3) >= thr_value * whmin[None, :, 0]
            small_b = whmax[None, :, 0] * (1 + 2e-3) >= thr_value * whmin[:, None, 0]
            keep_pair &= small_a & small_b
        if groups is not None:
            tg = tile_group
            gmin, gmax = tg.amin(1), tg.amax(1)
            keep_pair &= (gmin[:, None] <= gmax[None]) & (gmin[None] <= gmax[:, None])
        pa, pb = keep_pair.nonzero().unbind(1)

    local_upper = torch.ones(t, t, dtype=torch.bool, device=device).triu_(1)  # [T, T]
    step = max(1, _CHUNK_ELEMS // (t * t))
    srcs, dsts = [], []
    for s in range(0, pa.numel(), step):
        ia, ib = pa[s:s + step], pb[s:s + step]
        hit = _pair_ovr_gt(tiles[ia], tiles[ib], tile_area[ia], tile_area[ib], thr)  # [P, T, T]
        diag = ia == ib
        if bool(diag.any()):
            hit[diag] &= local_upper
        if tile_group is not None:
            hit &= tile_group[ia][:, :, None] == tile_group[ib][:, None, :]
        p, u, v = hit.nonzero().unbind(1)
        if p.numel() == 0:
            continue
        ga, gb = ia[p] * t + u, ib[p] * t + v  # positions in the (padded) spatial order
        if perm is not None:
            ok = (ga < n) & (gb < n)
            ga, gb = perm[ga[ok]], perm[gb[ok]]
        srcs.append(torch.minimum(ga, gb))
        dsts.append(torch.maximum(ga, gb))
    if not srcs:
        return empty, empty
    return torch.cat(srcs), torch.cat(dsts)


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
    src, dst = _suppression_edges(boxes[order], t, None)
    return order[_greedy_keep(order.numel(), src, dst)]


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
    src, dst = _suppression_edges(boxes[order], t, idxs[order].long())
    return order[_greedy_keep(order.numel(), src, dst)]
