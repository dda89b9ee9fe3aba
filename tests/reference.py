"""Slow, obviously correct reference implementations of pixbox.ops, for the tests.

Everything here is written as plain loops over boxes, anchors, images and classes, following
the textbook (or D2L / MXNet / torchvision) description of each algorithm, so that it can be
checked by reading. None of it is fast and none of it should be: the tests compare the fast,
vectorised ops in ``pixbox.ops`` with these functions across many seeds.

Floating-point conventions (they matter for decisions exactly at a threshold):

* IoU used for *decisions* (NMS, matching) is computed in the boxes' own dtype, as
  ``inter / (area_i + area_j - inter)`` with ``area = (x2 - x1) * (y2 - y1)``, using numpy
  scalars/arrays of that dtype, which round every operation exactly like torch's CPU kernels.
  Half precision is computed in float32 (pixbox upcasts it).
* The NMS IoU threshold is compared like torchvision's C++ kernel does: the float IoU is
  promoted to double and compared with the double threshold (``float(iou) > t``).
* Other thresholds (matching ``>= iou_threshold``, ``score > score_threshold``,
  ``conf < pos_threshold``, ``best_iou < negative_mining_threshold``) are compared like
  ``tensor >= python_float`` in torch: the threshold is first rounded to the tensor's dtype.
* Two degenerate boxes have IoU ``0 / 0``: NaN in NMS (NaN > t is False, never suppresses),
  and 0 in ``box_iou`` / matching.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

# --------------------------------------------------------------------------------------------
# helpers


def _np_dtype(dtype: torch.dtype):
    """numpy dtype in which pixbox computes IoU for boxes of ``dtype``."""
    return np.float64 if dtype == torch.float64 else np.float32


def _rows(t: Tensor) -> list[list[float]]:
    return t.detach().cpu().double().tolist()


def _cast(x: float, np_dt) -> float:
    """``x`` rounded to ``np_dt``, back as a Python float (how torch rounds a scalar threshold)."""
    return float(np_dt(x))


def iou_pair(a, b, np_dt=np.float64, *, degenerate_nan: bool = False) -> float:
    """IoU of two xyxy boxes, every operation rounded to ``np_dt``."""
    a = [np_dt(v) for v in a]
    b = [np_dt(v) for v in b]
    zero = np_dt(0)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    w = max(zero, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(zero, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (area_a + area_b) - inter
    if union == 0:
        return math.nan if degenerate_nan else 0.0
    return float(inter / union)


# --------------------------------------------------------------------------------------------
# boxes


def box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise IoU with a double loop; float64 result (computed in the boxes' dtype)."""
    np_dt = _np_dtype(boxes1.dtype)
    b1, b2 = _rows(boxes1), _rows(boxes2)
    out = torch.zeros(len(b1), len(b2), dtype=torch.float64)
    for i, a in enumerate(b1):
        for j, b in enumerate(b2):
            out[i, j] = iou_pair(a, b, np_dt)
    return out


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise GIoU = IoU - (hull - union) / hull with a double loop, in float64."""
    b1, b2 = _rows(boxes1), _rows(boxes2)
    out = torch.zeros(len(b1), len(b2), dtype=torch.float64)
    for i, a in enumerate(b1):
        for j, b in enumerate(b2):
            area_a = (a[2] - a[0]) * (a[3] - a[1])
            area_b = (b[2] - b[0]) * (b[3] - b[1])
            iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
            ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
            inter = iw * ih
            union = area_a + area_b - inter
            iou = inter / union if union > 0 else 0.0
            hull = (max(a[2], b[2]) - min(a[0], b[0])) * (max(a[3], b[3]) - min(a[1], b[1]))
            out[i, j] = iou - (hull - union) / hull if hull > 0 else iou
    return out


# --------------------------------------------------------------------------------------------
# NMS


def _score_order(scores: list[float]) -> list[int]:
    """Indices by decreasing score; ties go to the lower index (a stable descending sort)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Textbook greedy NMS with torchvision's semantics.

    Visit boxes by decreasing score (ties: lower index first). Keep a box unless it was
    suppressed; a kept box suppresses every later box whose IoU with it is > ``iou_threshold``.
    The IoU of one kept box with all boxes is computed as one numpy row in the boxes' dtype
    (elementwise, so exactly the scalar formula), then promoted to double for the comparison.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    np_dt = _np_dtype(boxes.dtype)
    b = boxes.detach().cpu().double().numpy().astype(np_dt)
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1) * (y2 - y1)
    order = _score_order(scores.detach().cpu().double().tolist())
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = np.asarray(order[rank + 1:], dtype=np.int64)
        if rest.size == 0:
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            w = np.maximum(np_dt(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
            h = np.maximum(np_dt(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
            inter = w * h
            ovr = inter / (areas[i] + areas[rest] - inter)  # 0/0 -> NaN: never suppresses
        # C++ compares the float IoU with the double threshold: promote, then compare.
        suppressed[rest[ovr.astype(np.float64) > float(iou_threshold)]] = True
    return torch.tensor(keep, dtype=torch.long)


def nms_scalar(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """The same greedy NMS one pair at a time with :func:`iou_pair`; checks :func:`nms` itself."""
    np_dt = _np_dtype(boxes.dtype)
    rows = _rows(boxes)
    order = _score_order(scores.detach().cpu().double().tolist())
    suppressed = [False] * len(rows)
    keep = []
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[rank + 1:]:
            if iou_pair(rows[i], rows[j], np_dt, degenerate_nan=True) > iou_threshold:  # NaN > t is False
                suppressed[j] = True
    return torch.tensor(keep, dtype=torch.long)


def batched_nms(boxes: Tensor, scores: Tensor, idxs: Tensor, iou_threshold: float) -> Tensor:
    """Reference NMS run separately on each category, then all kept boxes sorted by score."""
    s = scores.detach().cpu().double().tolist()
    cats = idxs.detach().cpu().tolist()
    keep: list[int] = []
    for c in sorted(set(cats)):
        members = [i for i in range(len(cats)) if cats[i] == c]
        sub = nms(boxes[members], scores[members], iou_threshold)
        keep.extend(members[k] for k in sub.tolist())
    keep.sort(key=lambda i: (-s[i], i))
    return torch.tensor(keep, dtype=torch.long)


# --------------------------------------------------------------------------------------------
# box coding


def encode_boxes(anchors: Tensor, boxes: Tensor, means=(0.0, 0.0, 0.0, 0.0), stds=(0.1, 0.1, 0.2, 0.2)) -> Tensor:
    """Offsets per box, one box at a time, in float64."""
    out = []
    for a, b in zip(_rows(anchors), _rows(boxes)):
        wa, ha = a[2] - a[0], a[3] - a[1]
        xa, ya = a[0] + wa / 2, a[1] + ha / 2
        wb, hb = b[2] - b[0], b[3] - b[1]
        xb, yb = b[0] + wb / 2, b[1] + hb / 2
        raw = [(xb - xa) / wa, (yb - ya) / ha, math.log(wb / wa), math.log(hb / ha)]
        out.append([(r - m) / s for r, m, s in zip(raw, means, stds)])
    return torch.tensor(out, dtype=torch.float64).reshape(-1, 4)


def decode_boxes(anchors: Tensor, offsets: Tensor, means=(0.0, 0.0, 0.0, 0.0), stds=(0.1, 0.1, 0.2, 0.2),
                 log_clamp: float = math.log(1000.0 / 16)) -> Tensor:
    """Boxes per (anchor, offset) pair, one at a time, in float64. Both ``[N, 4]``."""
    out = []
    for a, o in zip(_rows(anchors), _rows(offsets)):
        d = [v * s + m for v, s, m in zip(o, stds, means)]
        wa, ha = a[2] - a[0], a[3] - a[1]
        xa, ya = a[0] + wa / 2, a[1] + ha / 2
        cx, cy = d[0] * wa + xa, d[1] * ha + ya
        w = math.exp(min(d[2], log_clamp)) * wa
        h = math.exp(min(d[3], log_clamp)) * ha
        out.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    return torch.tensor(out, dtype=torch.float64).reshape(-1, 4)


# --------------------------------------------------------------------------------------------
# matching and training targets


def match_anchors(anchors: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Two-stage assignment (D2L's ``assign_anchor_to_bbox``), with loops.

    Stage 1: repeatedly take the largest IoU left in the [A, G] matrix (first in row-major
    order on ties), assign that pair if its IoU is > 0, and remove its row and column.
    Stage 2: every anchor not assigned in stage 1 whose best IoU (first best gt) is
    >= ``iou_threshold`` and > 0 gets that gt.
    """
    dtype = torch.promote_types(anchors.dtype, gt_boxes.dtype)
    np_dt = _np_dtype(dtype)
    A, G = anchors.shape[0], gt_boxes.shape[0]
    ious = [[iou_pair(a, g, np_dt) for g in _rows(gt_boxes)] for a in _rows(anchors)]
    assigned = [-1] * A
    removed_rows: set[int] = set()
    removed_cols: set[int] = set()
    for _ in range(min(A, G)):
        best, best_pair = None, None
        for i in range(A):
            if i in removed_rows:
                continue
            for j in range(G):
                if j in removed_cols:
                    continue
                if best is None or ious[i][j] > best:
                    best, best_pair = ious[i][j], (i, j)
        if best is None or not best > 0:
            break
        i, j = best_pair
        assigned[i] = j
        removed_rows.add(i)
        removed_cols.add(j)
    thr = _cast(iou_threshold, np_dt)
    for i in range(A):
        if i in removed_rows or G == 0:
            continue
        best_j = max(range(G), key=lambda j: (ious[i][j], -j))  # first max
        if ious[i][best_j] >= thr and ious[i][best_j] > 0:
            assigned[i] = best_j
    return torch.tensor(assigned, dtype=torch.long)


def matcher_reference(iou: Tensor, fg_iou_threshold: float, bg_iou_threshold: float | None = None,
                      allow_low_quality_matches=False) -> Tensor:
    """torchvision's / detectron2's ``Matcher`` (and SSD's bipartite variant), with loops.

    ``iou`` is ``[G, N]`` (ground truth x predictions), or ``[B, G, N]`` done image by image;
    no NaN. For each prediction: its best box (the first on ties); best IoU >= fg is that box,
    < bg is -1 (background), else -2 (ignored). Then, with ``allow_low_quality_matches``:

    * ``True``: for each box whose highest IoU is > 0, every prediction with exactly that IoU
      with it gets its own best box;
    * ``"bipartite"``: repeatedly take the largest IoU left (first in prediction-major order on
      ties); if it is > 0, give that prediction that box and remove both, else stop.
    """
    if iou.dim() == 3:
        out = [matcher_reference(m, fg_iou_threshold, bg_iou_threshold, allow_low_quality_matches) for m in iou]
        return torch.stack(out) if out else torch.zeros(0, iou.shape[2], dtype=torch.long)
    np_dt = _np_dtype(iou.dtype)
    fg = _cast(fg_iou_threshold, np_dt)
    bg = fg if bg_iou_threshold is None else _cast(bg_iou_threshold, np_dt)
    G, N = iou.shape
    rows = iou.detach().cpu().double().tolist()  # exact: every float32 / float64 is a double
    out = [-1] * N
    if G == 0:
        return torch.tensor(out, dtype=torch.long)
    best_gt = [max(range(G), key=lambda g: (rows[g][n], -g)) for n in range(N)]  # first best
    for n in range(N):
        best = rows[best_gt[n]][n]
        out[n] = best_gt[n] if best >= fg else (-1 if best < bg else -2)
    if allow_low_quality_matches == "bipartite":
        used_n: set[int] = set()
        used_g: set[int] = set()
        while True:
            top, pair = None, None
            for n in range(N):
                for g in range(G):
                    if n in used_n or g in used_g:
                        continue
                    if top is None or rows[g][n] > top:
                        top, pair = rows[g][n], (n, g)
            if top is None or not top > 0:
                break
            n, g = pair
            out[n] = g
            used_n.add(n)
            used_g.add(g)
    elif allow_low_quality_matches:
        for g in range(G):
            top = max(rows[g]) if N else 0.0
            if top > 0:
                for n in range(N):
                    if rows[g][n] == top:
                        out[n] = best_gt[n]
    return torch.tensor(out, dtype=torch.long)


def hard_negative_mining(cls_logits: Tensor, class_labels: Tensor, negative_mining_ratio: float = 3.0, *,
                         eligible: Tensor | None = None, min_negative_samples: int = 0) -> Tensor:
    """SSD hard negative mining, image by image, anchor by anchor."""
    B, A = class_labels.shape
    logits = cls_logits.detach().cpu().double().tolist()
    labels = class_labels.cpu().tolist()
    elig = eligible.cpu().tolist() if eligible is not None else [[True] * A for _ in range(B)]
    out = [row[:] for row in labels]
    for b in range(B):
        loss = []
        for a in range(A):
            row = logits[b][a]
            m = max(row)
            loss.append(m + math.log(sum(math.exp(v - m) for v in row)) - row[0])
        cand = [a for a in range(A) if labels[b][a] == 0 and elig[b][a]]
        num_pos = sum(1 for a in range(A) if labels[b][a] > 0)
        k = max(int(min_negative_samples), math.floor(num_pos * negative_mining_ratio))
        k = min(k, len(cand))
        chosen = set(sorted(cand, key=lambda a: (-loss[a], a))[:k])
        for a in range(A):
            if labels[b][a] == 0 and a not in chosen:
                out[b][a] = -1
    return torch.tensor(out, dtype=torch.long).reshape(B, A)


def multibox_target(anchors: Tensor, labels: Tensor, *, iou_threshold: float = 0.5,
                    means=(0.0, 0.0, 0.0, 0.0), stds=(0.1, 0.1, 0.2, 0.2), cls_preds: Tensor | None = None,
                    negative_mining_ratio: float | None = None, negative_mining_threshold: float = 0.5,
                    min_negative_samples: int = 0):
    """D2L ``multibox_target`` with a loop over images; padding rows (class < 0) dropped first.

    Returns float64 offsets and mask ``[B, 4A]`` and int64 class labels ``[B, A]``.
    """
    if anchors.dim() == 3:
        anchors = anchors[0]
    A = anchors.shape[0]
    B = labels.shape[0]
    np_dt = _np_dtype(anchors.dtype)
    all_offsets, all_masks, all_classes, all_eligible = [], [], [], []
    for b in range(B):
        rows = labels[b].to(anchors.dtype)
        valid = [g for g in range(rows.shape[0]) if float(rows[g, 0]) >= 0]
        gt = rows[valid, 1:] if valid else rows.new_zeros(0, 4)
        assigned = match_anchors(anchors, gt, iou_threshold).tolist()
        offsets = torch.zeros(A, 4, dtype=torch.float64)
        mask = torch.zeros(A, 4, dtype=torch.float64)
        classes = torch.zeros(A, dtype=torch.long)
        for a in range(A):
            j = assigned[a]
            if j < 0:
                continue
            classes[a] = int(rows[valid[j], 0]) + 1
            offsets[a] = encode_boxes(anchors[a:a + 1], gt[j:j + 1], means, stds)[0]
            mask[a] = 1.0
        thr = _cast(negative_mining_threshold, np_dt)
        eligible = []
        for a in range(A):
            best = max((iou_pair(_rows(anchors[a:a + 1])[0], g, np_dt) for g in _rows(gt)), default=0.0)
            eligible.append(best < thr)
        all_offsets.append(offsets.reshape(-1))
        all_masks.append(mask.reshape(-1))
        all_classes.append(classes)
        all_eligible.append(eligible)
    offsets = torch.stack(all_offsets) if B else torch.zeros(0, 4 * A, dtype=torch.float64)
    masks = torch.stack(all_masks) if B else torch.zeros(0, 4 * A, dtype=torch.float64)
    classes = torch.stack(all_classes) if B else torch.zeros(0, A, dtype=torch.long)
    if negative_mining_ratio is not None:
        classes = hard_negative_mining(cls_preds, classes, negative_mining_ratio,
                                       eligible=torch.tensor(all_eligible, dtype=torch.bool).reshape(B, A),
                                       min_negative_samples=min_negative_samples)
    return offsets, masks, classes


# --------------------------------------------------------------------------------------------
# detection


def multibox_detection(cls_probs: Tensor, offset_preds: Tensor, anchors: Tensor, nms_threshold: float = 0.5,
                       pos_threshold: float = 0.009999999, *, means=(0.0, 0.0, 0.0, 0.0),
                       stds=(0.1, 0.1, 0.2, 0.2)) -> Tensor:
    """D2L's ``multibox_detection`` with a loop over images. Returns ``[B, A, 6]`` float64.

    Per image: decode the boxes; conf / class = max / first argmax of the non-background
    probabilities; class-agnostic NMS; rows = kept anchors by decreasing conf (ties: lower
    index), then the others by index with class -1; rows with conf < pos_threshold get class -1
    and conf 1 - conf.
    """
    if anchors.dim() == 3:
        anchors = anchors[0]
    dtype = cls_probs.dtype
    np_dt = _np_dtype(dtype)
    B, C1, A = cls_probs.shape
    pos_thr = _cast(pos_threshold, np_dt)
    out = torch.zeros(B, A, 6, dtype=torch.float64)
    for b in range(B):
        boxes = decode_boxes(anchors, offset_preds[b].reshape(A, 4), means, stds).to(dtype)
        probs = cls_probs[b].double().tolist()  # [C + 1][A]
        conf, cls = [], []
        for a in range(A):
            col = [probs[c][a] for c in range(1, C1)]
            best = max(range(C1 - 1), key=lambda c: (col[c], -c))
            conf.append(col[best])
            cls.append(best)
        keep = nms(boxes, torch.tensor(conf, dtype=dtype), nms_threshold).tolist()
        kept = set(keep)
        rows_order = keep + [a for a in range(A) if a not in kept]
        for r, a in enumerate(rows_order):
            c = cls[a] if a in kept else -1
            p = conf[a]
            if p < pos_thr:
                c, p = -1, 1 - p
            out[b, r, 0] = c
            out[b, r, 1] = p
            out[b, r, 2:] = boxes[a].double()
    return out


def decode_detections(cls_probs: Tensor, offset_preds: Tensor, anchors: Tensor, *, score_threshold: float = 0.01,
                      nms_threshold: float = 0.45, topk: int = 200, means=(0.0, 0.0, 0.0, 0.0),
                      stds=(0.1, 0.1, 0.2, 0.2), clip: bool = False) -> list[dict[str, Tensor]]:
    """SSD post-processing with loops over images and classes.

    Candidates are (anchor, class) pairs with probability > score_threshold; NMS per class;
    the image's detections sorted by decreasing score (ties: lower class, then lower anchor)
    and cut to ``topk``. Boxes are returned in float64, scores in the input dtype.
    """
    if anchors.dim() == 3:
        anchors = anchors[0]
    dtype = cls_probs.dtype
    np_dt = _np_dtype(dtype)
    B, C1, A = cls_probs.shape
    thr = _cast(score_threshold, np_dt)
    out = []
    for b in range(B):
        boxes = decode_boxes(anchors, offset_preds[b].reshape(A, 4), means, stds).to(dtype)
        if clip:
            boxes = boxes.clamp(0, 1)
        dets = []  # (score, class, anchor)
        for c in range(C1 - 1):
            cand = [a for a in range(A) if float(cls_probs[b, c + 1, a]) > thr]
            if not cand:
                continue
            keep = nms(boxes[cand], cls_probs[b, c + 1, cand], nms_threshold).tolist()
            dets.extend((float(cls_probs[b, c + 1, cand[k]]), c, cand[k]) for k in keep)
        dets.sort(key=lambda d: (-d[0], d[1], d[2]))
        dets = dets[:topk]
        out.append({
            "boxes": torch.stack([boxes[a].double() for _, _, a in dets]) if dets else torch.zeros(0, 4, dtype=torch.float64),
            "scores": torch.tensor([s for s, _, _ in dets], dtype=dtype),
            "labels": torch.tensor([c for _, c, _ in dets], dtype=torch.long),
        })
    return out


# --------------------------------------------------------------------------------------------
# anchors


def generate_anchors(h: int, w: int, sizes, ratios, *, steps=None, offsets=(0.5, 0.5), clip: bool = False) -> Tensor:
    """MXNet ``MultiBoxPrior``: nested loops over rows, columns and anchor shapes, in float64.

    ``steps`` and ``offsets`` are a number or a pair ``(y, x)``; a step <= 0 means ``1 / H`` or
    ``1 / W``. The shapes of a cell are (sizes[k], ratios[0]) for every k, then
    (sizes[0], ratios[k]) for k >= 1; width = size * H / W * sqrt(ratio), height = size / sqrt(ratio).
    """
    def pair(v):
        if v is None:
            return (-1.0, -1.0)
        if isinstance(v, (int, float)):
            return (float(v), float(v))
        return (float(v[0]), float(v[1]))

    step_y, step_x = pair(steps)
    off_y, off_x = pair(offsets)
    if step_y <= 0:
        step_y = 1.0 / h if h else 0.0
    if step_x <= 0:
        step_x = 1.0 / w if w else 0.0
    out = []
    for i in range(h):
        cy = (i + off_y) * step_y
        for j in range(w):
            cx = (j + off_x) * step_x
            r = math.sqrt(ratios[0])
            for s in sizes:
                half_w = s * h / w * r / 2
                half_h = s / r / 2
                out.append([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
            s = sizes[0]
            for ratio in ratios[1:]:
                r = math.sqrt(ratio)
                half_w = s * h / w * r / 2
                half_h = s / r / 2
                out.append([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
    if clip:
        out = [[min(max(v, 0.0), 1.0) for v in box] for box in out]
    return torch.tensor(out, dtype=torch.float64).reshape(-1, 4)


# --------------------------------------------------------------------------------------------
# transposed convolution


def trans_conv_loop(X: Tensor, K: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """D2L's ``trans_conv`` with batches, channels, stride and padding: one input element at a time.

    ``X`` is ``[B, C_in, H, W]`` and ``K`` ``[C_in, C_out, kh, kw]``. Input element
    ``X[b, c, i, j]`` scales the kernel slab ``K[c]`` and adds it into the output of image ``b`` at
    rows ``i * stride ...`` and columns ``j * stride ...``; the borders are cropped last. Computed
    in float64 with numpy; returns float64.
    """
    x = X.detach().cpu().double().numpy()
    k = K.detach().cpu().double().numpy()
    B, C_in, H, W = x.shape
    _, C_out, kh, kw = k.shape
    Y = np.zeros((B, C_out, (H - 1) * stride + kh, (W - 1) * stride + kw))
    for b in range(B):
        for c in range(C_in):
            for i in range(H):
                for j in range(W):
                    Y[b, :, i * stride:i * stride + kh, j * stride:j * stride + kw] += x[b, c, i, j] * k[c]
    Y = Y[:, :, padding:Y.shape[2] - padding, padding:Y.shape[3] - padding]
    return torch.from_numpy(np.ascontiguousarray(Y))


# --------------------------------------------------------------------------------------------
# RoI pooling and RoI align (torchvision's CPU kernels, one RoI, bin and sample at a time)


def _roi_scalar(dtype: torch.dtype):
    """numpy scalar type that rounds every operation like the C++ kernel's ``T``."""
    return np.float64 if dtype == torch.float64 else np.float32


def _c_round(v) -> int:
    """C's ``round``: halves away from zero."""
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


def roi_pool_loop(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float):
    """RoI max pooling, bin by bin. ``rois`` is ``[K, 5]`` (batch_index, x1, y1, x2, y2).

    Returns ``(output, argmax)``: output ``[K, C, oh, ow]`` in the input dtype and the flat
    ``h * W + w`` index of each maximum within its image and channel (-1 when none was taken).
    Corners are scaled in the input dtype and rounded half away from zero; a malformed RoI is
    1x1; bin ``p`` spans ``floor(p * bin) .. ceil((p + 1) * bin)`` from the RoI start, clipped to
    the map; the maximum starts at ``-FLT_MAX`` and is replaced by strictly greater values
    (so ties keep the first in row-major order); an empty bin gives 0.
    """
    T = _roi_scalar(input.dtype)
    x = input.detach().cpu().numpy()
    r = rois.detach().cpu().to(input.dtype).numpy()
    N, C, H, W = x.shape
    oh, ow = output_size
    s = T(spatial_scale)
    out = np.zeros((len(r), C, oh, ow), dtype=x.dtype)
    arg = np.full((len(r), C, oh, ow), -1, dtype=np.int64)
    flt_max = float(np.finfo(np.float32).max)
    for k, roi in enumerate(r):
        b = int(roi[0])
        x1, y1, x2, y2 = (_c_round(T(v) * s) for v in roi[1:])
        rw = max(x2 - x1 + 1, 1)
        rh = max(y2 - y1 + 1, 1)
        bin_h = T(rh) / T(oh)
        bin_w = T(rw) / T(ow)
        for ph in range(oh):
            hs = min(max(int(math.floor(T(ph) * bin_h)) + y1, 0), H)
            he = min(max(int(math.ceil(T(ph + 1) * bin_h)) + y1, 0), H)
            for pw in range(ow):
                ws = min(max(int(math.floor(T(pw) * bin_w)) + x1, 0), W)
                we = min(max(int(math.ceil(T(pw + 1) * bin_w)) + x1, 0), W)
                empty = he <= hs or we <= ws
                for c in range(C):
                    best, best_i = (0.0 if empty else -flt_max), -1
                    for h in range(hs, he):
                        for w in range(ws, we):
                            if x[b, c, h, w] > best:
                                best, best_i = x[b, c, h, w], h * W + w
                    out[k, c, ph, pw] = best
                    arg[k, c, ph, pw] = best_i
    return torch.from_numpy(out), torch.from_numpy(arg)


def roi_pool_loop_backward(input: Tensor, rois: Tensor, grad_output: Tensor, output_size: tuple[int, int],
                           spatial_scale: float) -> Tensor:
    """Gradient of ``roi_pool_loop`` w.r.t. the input: each output's gradient goes to its argmax."""
    _, arg = roi_pool_loop(input, rois, output_size, spatial_scale)
    N, C, H, W = input.shape
    g = grad_output.detach().cpu().double().numpy()
    grad = np.zeros((N, C, H * W))
    for k in range(arg.shape[0]):
        b = int(rois[k, 0])
        for c in range(C):
            for ph in range(arg.shape[2]):
                for pw in range(arg.shape[3]):
                    i = int(arg[k, c, ph, pw])
                    if i >= 0:
                        grad[b, c, i] += g[k, c, ph, pw]
    return torch.from_numpy(grad.reshape(N, C, H, W))


def _roi_align_taps(input_shape, dtype: torch.dtype, rois: Tensor, output_size: tuple[int, int],
                    spatial_scale: float, sampling_ratio: int, aligned: bool):
    """Yields ``(k, ph, pw, b, h, w, weight)`` for every bilinear tap of every sample of every bin.

    ``weight`` already includes the division by the bin's sample count. Follows torchvision's
    ``roi_align`` CPU kernel step by step, in the input dtype ``T``.
    """
    T = _roi_scalar(dtype)
    _, _, H, W = input_shape
    oh, ow = output_size
    r = rois.detach().cpu().to(dtype).numpy()
    s = T(spatial_scale)
    offset = T(0.5) if aligned else T(0.0)
    for k, roi in enumerate(r):
        b = int(roi[0])
        start_w, start_h = T(roi[1]) * s - offset, T(roi[2]) * s - offset
        end_w, end_h = T(roi[3]) * s - offset, T(roi[4]) * s - offset
        roi_w, roi_h = end_w - start_w, end_h - start_h
        if not aligned:
            roi_w, roi_h = max(roi_w, T(1.0)), max(roi_h, T(1.0))
        bin_h, bin_w = roi_h / T(oh), roi_w / T(ow)
        grid_h = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_h / T(oh)))
        grid_w = sampling_ratio if sampling_ratio > 0 else int(math.ceil(roi_w / T(ow)))
        count = max(grid_h * grid_w, 1)
        for ph in range(oh):
            for pw in range(ow):
                for iy in range(grid_h):
                    y = start_h + T(ph) * bin_h + T(iy + 0.5) * bin_h / T(grid_h)
                    for ix in range(grid_w):
                        xx = start_w + T(pw) * bin_w + T(ix + 0.5) * bin_w / T(grid_w)
                        yy = y
                        if yy < -1.0 or yy > H or xx < -1.0 or xx > W:
                            continue  # outside the map: contributes 0
                        if yy <= 0:
                            yy = T(0.0)
                        if xx <= 0:
                            xx = T(0.0)
                        y_low, x_low = int(yy), int(xx)
                        if y_low >= H - 1:
                            y_low = y_high = H - 1
                            yy = T(y_low)
                        else:
                            y_high = y_low + 1
                        if x_low >= W - 1:
                            x_low = x_high = W - 1
                            xx = T(x_low)
                        else:
                            x_high = x_low + 1
                        ly, lx = yy - T(y_low), xx - T(x_low)
                        hy, hx = T(1.0) - ly, T(1.0) - lx
                        for h, w, wt in ((y_low, x_low, hy * hx), (y_low, x_high, hy * lx),
                                         (y_high, x_low, ly * hx), (y_high, x_high, ly * lx)):
                            yield k, ph, pw, b, h, w, float(wt) / count


def roi_align_loop(input: Tensor, rois: Tensor, output_size: tuple[int, int], spatial_scale: float,
                   sampling_ratio: int, aligned: bool) -> Tensor:
    """RoI align from the definition: each bin averages its bilinear samples. Returns float64
    ``[K, C, oh, ow]``. ``rois`` is ``[K, 5]`` (batch_index, x1, y1, x2, y2)."""
    x = input.detach().cpu().double().numpy()
    oh, ow = output_size
    out = np.zeros((rois.shape[0], x.shape[1], oh, ow))
    for k, ph, pw, b, h, w, wt in _roi_align_taps(input.shape, input.dtype, rois, output_size, spatial_scale,
                                                  sampling_ratio, aligned):
        out[k, :, ph, pw] += wt * x[b, :, h, w]
    return torch.from_numpy(out)


def roi_align_loop_backward(input: Tensor, rois: Tensor, grad_output: Tensor, output_size: tuple[int, int],
                            spatial_scale: float, sampling_ratio: int, aligned: bool) -> Tensor:
    """Gradient of ``roi_align_loop`` w.r.t. the input: each tap sends ``weight * grad`` back."""
    g = grad_output.detach().cpu().double().numpy()
    grad = np.zeros(tuple(input.shape))
    for k, ph, pw, b, h, w, wt in _roi_align_taps(input.shape, input.dtype, rois, output_size, spatial_scale,
                                                  sampling_ratio, aligned):
        grad[b, :, h, w] += wt * g[k, :, ph, pw]
    return torch.from_numpy(grad)
