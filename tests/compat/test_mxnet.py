"""Tests for pixbox.compat.mxnet: golden values from MXNet-era D2L, MXNet-specific rules, and
comparisons with slow loops that transcribe MXNet's CPU kernels (float32 numpy scalars, which
round every operation like the kernels' C ``float`` arithmetic)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import pixbox.compat
from pixbox.compat import mxnet as mx
from pixbox.ops import box_iou, generate_anchors

F = np.float32

# --------------------------------------------------------------------------------------------
# Reference loops, following src/operator/contrib/multibox_{prior,target,detection}.cc


def ref_prior(h, w, sizes, ratios, clip=False, steps=(-1, -1), offsets=(0.5, 0.5)):
    """MultiBoxPriorForward (CPU): float32, size group with ratio 1, ratios[0] unused."""
    if steps[0] <= 0 or steps[1] <= 0:
        step_y, step_x = F(1) / F(h), F(1) / F(w)
    else:
        step_y, step_x = F(steps[0]), F(steps[1])
    out = []
    for r in range(h):
        cy = (F(r) + F(offsets[0])) * step_y
        for c in range(w):
            cx = (F(c) + F(offsets[1])) * step_x
            for s in sizes:
                bw, bh = F(s) * F(h) / F(w) / F(2), F(s) / F(2)
                out.append([cx - bw, cy - bh, cx + bw, cy + bh])
            for ratio in ratios[1:]:
                q = np.sqrt(F(ratio))
                bw, bh = F(sizes[0]) * F(h) / F(w) * q / F(2), F(sizes[0]) / q / F(2)
                out.append([cx - bw, cy - bh, cx + bw, cy + bh])
    arr = np.array(out, dtype=np.float32).reshape(1, -1, 4)
    return np.clip(arr, 0, 1) if clip else arr


def _iou32(a, b):
    """MXNet's overlap, in float32: inter / (area_a + area_b - inter), 0 if the union is 0."""
    w = max(F(0), min(a[2], b[2]) - max(a[0], b[0]))
    h = max(F(0), min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return F(0) if union == 0 else inter / union


def ref_target(anchor, label, cls_pred, overlap_threshold=0.5, ignore_label=-1.0, negative_mining_ratio=-1.0,
               negative_mining_thresh=0.5, minimum_negative_samples=0, variances=(0.1, 0.1, 0.2, 0.2)):
    """MultiBoxTargetForward (CPU), plus the two documented deviations: minimum_negative_samples
    is honoured and the negative count is capped at the number of eligible anchors."""
    anc = anchor.reshape(-1, 4).numpy().astype(np.float32)
    lab = label.numpy().astype(np.float32)
    preds = cls_pred.numpy().astype(np.float32)
    nb, a = lab.shape[0], anc.shape[0]
    v = [F(x) for x in variances]
    thr, neg_thr, ratio = F(overlap_threshold), F(negative_mining_thresh), F(negative_mining_ratio)
    loc_t = np.zeros((nb, a * 4), np.float32)
    loc_m = np.zeros((nb, a * 4), np.float32)
    cls_t = np.full((nb, a), F(ignore_label), np.float32)
    for n in range(nb):
        num_valid = 0
        for row in lab[n]:
            if row[0] == -1:
                break
            num_valid += 1
        if num_valid == 0:
            continue
        ov = [[_iou32(anc[j], lab[n, k, 1:5]) for k in range(num_valid)] for j in range(a)]
        gt_flags = [False] * num_valid
        max_matches = [(F(-1), -1)] * a
        flags = [-1] * a
        num_pos = 0
        while not all(gt_flags):
            best_a, best_g, best = -1, -1, F(1e-6)
            for j in range(a):
                if flags[j] == 1:
                    continue
                for k in range(num_valid):
                    if not gt_flags[k] and ov[j][k] > best:
                        best_a, best_g, best = j, k, ov[j][k]
            if best_a == -1:
                break
            max_matches[best_a] = (best, best_g)
            num_pos += 1
            gt_flags[best_g] = True
            flags[best_a] = 1
        if thr > 0:
            for j in range(a):
                if flags[j] == 1:
                    continue
                best_g, best = -1, F(-1)
                for k in range(num_valid):
                    if ov[j][k] > best:
                        best_g, best = k, ov[j][k]
                max_matches[j] = (best, best_g)
                if best > thr:
                    num_pos += 1
                    flags[j] = 1
        if ratio > 0:
            num_neg = int(F(num_pos) * ratio)
            num_neg = max(num_neg, minimum_negative_samples)
            num_neg = min(num_neg, a - num_pos)
            if num_neg > 0:
                temp = []
                for j in range(a):
                    if flags[j] == 1:
                        continue
                    if max_matches[j][0] < 0:
                        best_g, best = -1, F(-1)
                        for k in range(num_valid):
                            if ov[j][k] > best:
                                best_g, best = k, ov[j][k]
                        max_matches[j] = (best, best_g)
                    if max_matches[j][0] < neg_thr and flags[j] == -1:
                        col = preds[n, :, j]
                        mx_ = col[0]
                        for val in col[1:]:
                            if val > mx_:
                                mx_ = val
                        total = F(0)
                        for val in col:
                            total += np.exp(val - mx_)
                        prob = np.exp(col[0] - mx_) / total
                        temp.append((-prob, j))
                temp.sort(key=lambda t: -t[0])  # stable: descending -prob, ties by anchor
                for _, j in temp[:num_neg]:
                    flags[j] = 0
        else:
            flags = [f if f == 1 else 0 for f in flags]
        for j in range(a):
            if flags[j] == 1:
                k = max_matches[j][1]
                cls_t[n, j] = lab[n, k, 0] + F(1)
                loc_m[n, 4 * j:4 * j + 4] = 1
                al, at, ar, ab = anc[j]
                gl, gt, gr, gb = lab[n, k, 1:5]
                aw, ah, ax, ay = ar - al, ab - at, (al + ar) * F(0.5), (at + ab) * F(0.5)
                gw, gh, gx, gy = gr - gl, gb - gt, (gl + gr) * F(0.5), (gt + gb) * F(0.5)
                loc_t[n, 4 * j:4 * j + 4] = [(gx - ax) / aw / v[0], (gy - ay) / ah / v[1],
                                             np.log(gw / aw) / v[2], np.log(gh / ah) / v[3]]
            elif flags[j] == 0:
                cls_t[n, j] = 0
    return loc_t, loc_m, cls_t


def ref_detection(cls_prob, loc_pred, anchor, clip=True, threshold=0.01, background_id=0, nms_threshold=0.5,
                  force_suppress=False, variances=(0.1, 0.1, 0.2, 0.2), nms_topk=-1):
    """MultiBoxDetectionForward (CPU), with background_id as the skipped class row."""
    probs = cls_prob.numpy().astype(np.float32)
    locs = loc_pred.numpy().astype(np.float32)
    anc = anchor.reshape(-1, 4).numpy().astype(np.float32)
    nb, c1, a = probs.shape
    vx, vy, vw, vh = (F(x) for x in variances)
    thr, nms_thr = F(threshold), F(nms_threshold)
    out = np.full((nb, a, 6), -1, np.float32)
    for n in range(nb):
        rows = []
        for i in range(a):
            score, cid = F(-1), -1
            for j in range(c1):
                if j == background_id:
                    continue
                if probs[n, j, i] > score:
                    score, cid = probs[n, j, i], j
            if cid < 0 or score < thr:
                continue
            al, at, ar, ab = anc[i]
            px, py, pw, ph = locs[n, 4 * i:4 * i + 4]
            aw, ah, ax, ay = ar - al, ab - at, (al + ar) / F(2), (at + ab) / F(2)
            ox, oy = px * vx * aw + ax, py * vy * ah + ay
            ow, oh = np.exp(pw * vw) * aw / F(2), np.exp(ph * vh) * ah / F(2)
            box = [ox - ow, oy - oh, ox + ow, oy + oh]
            if clip:
                box = [max(F(0), min(F(1), t)) for t in box]
            rows.append([cid if cid < background_id else cid - 1, score, *box])
        p_out = out[n]
        for i, row in enumerate(rows):
            p_out[i] = row
        valid = len(rows)
        if valid < 1 or nms_thr <= 0 or nms_thr > 1:
            continue
        temp = p_out.copy()
        order = sorted(range(valid), key=lambda i: -temp[i, 1])  # stable
        nkeep = valid
        if 0 < nms_topk < nkeep:
            nkeep = nms_topk
            p_out[nkeep:valid, 0] = -1
        for i in range(nkeep):
            p_out[i] = temp[order[i]]
        for i in range(nkeep):
            if p_out[i, 0] < 0:
                continue
            for j in range(i + 1, nkeep):
                if p_out[j, 0] < 0:
                    continue
                if force_suppress or p_out[i, 0] == p_out[j, 0]:
                    if _iou32(p_out[i, 2:], p_out[j, 2:]) >= nms_thr:
                        p_out[j, 0] = -1
    return out


# --------------------------------------------------------------------------------------------
# package


def test_lazy_import():
    assert pixbox.compat.mxnet is mx
    assert pixbox.compat.__all__ == ["d2l", "mxnet"]
    with pytest.raises(AttributeError):
        pixbox.compat.nonexistent  # noqa: B018


# --------------------------------------------------------------------------------------------
# MultiBoxPrior


def test_prior_d2l_golden():
    # D2L (MXNet edition), "Anchor Boxes": a 561 x 728 image, printed boxes[250, 250, 0, :].
    y = mx.MultiBoxPrior(torch.rand(1, 3, 561, 728), sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])
    assert y.shape == (1, 2042040, 4)
    box = y.reshape(561, 728, 5, 4)[250, 250, 0]
    torch.testing.assert_close(box, torch.tensor([0.06, 0.07, 0.63, 0.82]), atol=5e-3, rtol=0)


@pytest.mark.parametrize(
    "h, w, sizes, ratios, kwargs",
    [
        (3, 5, [0.75, 0.5, 0.25], [1, 2, 0.5], {}),
        (7, 4, [0.3], [1, 3, 1 / 3], {"clip": True}),
        (4, 6, [0.2, 0.45], [2, 0.5], {"steps": (0.1, 0.05), "offsets": (0.0, 1.0)}),
        (5, 5, [1.0], [1.0], {"steps": (0.2, 0)}),  # one automatic step makes both automatic
    ],
)
def test_prior_bit_exact_with_reference(h, w, sizes, ratios, kwargs):
    got = mx.MultiBoxPrior(torch.zeros(2, 3, h, w), sizes=sizes, ratios=ratios, **kwargs)
    want = ref_prior(h, w, sizes, ratios, **kwargs)
    assert got.dtype == torch.float32
    assert torch.equal(got, torch.from_numpy(want))


def test_prior_ignores_first_ratio():
    # MXNet's size group always has ratio 1: with ratios [2, 0.5] the first anchor is square in pixels.
    h, w = 4, 8
    y = mx.MultiBoxPrior(torch.zeros(1, 1, h, w), sizes=[0.5], ratios=[2, 0.5])[0]  # [h*w*2, 4]
    wh_px = (y[0, 2:] - y[0, :2]) * torch.tensor([w, h])
    torch.testing.assert_close(wh_px[0], wh_px[1])
    assert torch.equal(y, mx.MultiBoxPrior(torch.zeros(1, 1, h, w), sizes=[0.5], ratios=[7, 0.5])[0])
    # pixbox.ops (D2L semantics) uses ratios[0] for the size group, so it differs ...
    assert not torch.allclose(y, generate_anchors((h, w), [0.5], [2, 0.5]))
    # ... and agrees when ratios[0] is 1.
    torch.testing.assert_close(mx.MultiBoxPrior(torch.zeros(1, 1, h, w), sizes=[0.5, 0.2], ratios=[1, 2])[0],
                               generate_anchors((h, w), [0.5, 0.2], [1, 2]))


def test_prior_dtype_device_empty_and_clip(device):
    x = torch.zeros(1, 2, 3, 3, dtype=torch.float64, device=device)
    y = mx.MultiBoxPrior(x, sizes=[0.9], ratios=[1, 4])
    assert y.dtype == torch.float64 and y.device.type == torch.device(device).type
    assert torch.equal(y.cpu(), torch.from_numpy(ref_prior(3, 3, [0.9], [1, 4])).double())
    assert y.min() < 0 and y.max() > 1
    yc = mx.MultiBoxPrior(x, sizes=[0.9], ratios=[1, 4], clip=True)
    assert yc.min() >= 0 and yc.max() <= 1
    assert mx.MultiBoxPrior(torch.zeros(1, 2, 0, 3), sizes=[0.5]).shape == (1, 0, 4)
    assert mx.MultiBoxPrior(torch.zeros(1, 1, 2, 2)).shape == (1, 4, 4)  # defaults sizes=(1,), ratios=(1,)


def test_prior_bad_inputs():
    x = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="data must have shape"):
        mx.MultiBoxPrior(torch.zeros(4, 4))
    with pytest.raises(TypeError, match="data"):
        mx.MultiBoxPrior(torch.zeros(1, 1, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="sizes"):
        mx.MultiBoxPrior(x, sizes=[0.5, -0.1])
    with pytest.raises(ValueError, match="ratios"):
        mx.MultiBoxPrior(x, ratios=[])
    with pytest.raises(ValueError, match="offsets"):
        mx.MultiBoxPrior(x, offsets=(0.5, 1.5))
    with pytest.raises(ValueError, match="steps"):
        mx.MultiBoxPrior(x, steps=(0.1, -0.1))
    with pytest.raises(ValueError, match="steps"):
        mx.MultiBoxPrior(x, steps=(0.1,))


# --------------------------------------------------------------------------------------------
# MultiBoxTarget

D2L_GT = torch.tensor([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]])
D2L_ANCHORS = torch.tensor([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                            [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]])


def test_target_d2l_golden():
    # D2L (MXNet edition), "Labeling Training Set Anchor Boxes", printed with np.set_printoptions(2).
    loc, mask, cls = mx.MultiBoxTarget(D2L_ANCHORS[None], D2L_GT[None], torch.zeros(1, 3, 5))
    want_loc = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.40, 10.0, 2.59, 7.18, -1.20, 0.269, 1.68, -1.57,
                              0.0, 0.0, 0.0, 0.0, -0.571, -1.00, -8.94e-07, 0.626]])
    torch.testing.assert_close(loc, want_loc, atol=6e-3, rtol=3e-3)
    assert abs(loc[0, 18].item()) < 1e-5
    assert mask.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]]
    assert cls.tolist() == [[0.0, 1.0, 2.0, 0.0, 2.0]]
    assert cls.dtype == loc.dtype == mask.dtype == torch.float32


def test_target_strict_threshold():
    # Anchor 0 has IoU exactly 0.5 with the box; anchor 1 is the box itself (bipartite match).
    anchors = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.5]])
    label = torch.tensor([[[3.0, 0.0, 0.0, 1.0, 0.5]]])
    _, _, cls = mx.MultiBoxTarget(anchors, label, torch.zeros(1, 2, 2), overlap_threshold=0.5)
    assert cls.tolist() == [[0.0, 4.0]]  # IoU == threshold is not positive
    _, _, cls = mx.MultiBoxTarget(anchors, label, torch.zeros(1, 2, 2), overlap_threshold=0.49)
    assert cls.tolist() == [[4.0, 4.0]]
    # overlap_threshold <= 0 keeps only the bipartite matches.
    _, _, cls = mx.MultiBoxTarget(anchors, label, torch.zeros(1, 2, 2), overlap_threshold=0.0)
    assert cls.tolist() == [[0.0, 4.0]]


def test_target_stops_at_first_padding_row():
    anchors = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0]])
    obj_a = [0.0, 0.0, 0.0, 0.4, 0.4]
    obj_b = [1.0, 0.5, 0.5, 1.0, 1.0]
    pad = [-1.0] * 5
    preds = torch.zeros(1, 3, 2)
    _, _, cls = mx.MultiBoxTarget(anchors, torch.tensor([[obj_a, obj_b]]), preds)
    assert cls.tolist() == [[1.0, 2.0]]
    _, mask, cls = mx.MultiBoxTarget(anchors, torch.tensor([[obj_a, pad, obj_b]]), preds)
    assert cls.tolist() == [[1.0, 0.0]]  # obj_b comes after the padding row: ignored
    assert mask.tolist() == [[1, 1, 1, 1, 0, 0, 0, 0]]
    # An image whose first row is padding has no objects: every anchor is ignored (CPU kernel).
    _, mask, cls = mx.MultiBoxTarget(anchors, torch.tensor([[obj_a], [pad]]), torch.zeros(2, 3, 2), ignore_label=-7)
    assert cls.tolist() == [[1.0, 0.0], [-7.0, -7.0]]
    _, _, cls = mx.MultiBoxTarget(anchors, torch.zeros(2, 0, 5), torch.zeros(2, 3, 2))
    assert cls.tolist() == [[-1.0, -1.0], [-1.0, -1.0]]
    with pytest.raises(ValueError, match=r"label\[0, 1\] has class -1"):
        mx.MultiBoxTarget(anchors, torch.tensor([[obj_a, [-1.0, 0.35, 0.4, 0.7, 0.78]]]), preds)


def test_target_bipartite_details():
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 1.0, 1.0]])
    # Equal IoU: the lower anchor takes the box; the other one is then positive by threshold.
    label = torch.tensor([[[2.0, 0.0, 0.0, 0.5, 0.5]]])
    _, _, cls = mx.MultiBoxTarget(anchors, label, torch.zeros(1, 2, 3), overlap_threshold=1.5)
    assert cls.tolist() == [[3.0, 0.0, 0.0]]
    # A box overlapping every anchor with IoU <= 1e-6 is never force-matched (MXNet's epsilon).
    tiny = torch.tensor([[[0.0, 0.0, 0.0, 1e-4, 1e-4]]])  # IoU 4e-8 with anchors 0 and 1
    _, mask, cls = mx.MultiBoxTarget(anchors, tiny, torch.zeros(1, 2, 3))
    assert cls.tolist() == [[0.0, 0.0, 0.0]] and mask.sum() == 0
    # Extra label columns are ignored.
    wide = torch.cat([label, torch.full((1, 1, 2), 9.0)], dim=2)
    assert torch.equal(mx.MultiBoxTarget(anchors, wide, torch.zeros(1, 2, 3))[2],
                       mx.MultiBoxTarget(anchors, label, torch.zeros(1, 2, 3))[2])


def _mining_case(seed=0):
    g = torch.Generator().manual_seed(seed)
    anchors = mx.MultiBoxPrior(torch.zeros(1, 1, 8, 8), sizes=[0.25], ratios=[1, 2])  # [1, 128, 4]
    label = torch.tensor([[[0.0, 0.1, 0.1, 0.4, 0.35], [1.0, 0.55, 0.6, 0.9, 0.95]]])
    cls_pred = torch.randn(1, 3, 128, generator=g)
    return anchors, label, cls_pred


def test_target_negative_mining_counts_and_order():
    anchors, label, cls_pred = _mining_case()
    _, _, cls = mx.MultiBoxTarget(anchors, label, cls_pred, negative_mining_ratio=3, negative_mining_thresh=0.2,
                                  ignore_label=-2)
    num_pos = int((cls > 0).sum())
    assert num_pos > 0
    assert int((cls == 0).sum()) == 3 * num_pos
    assert int((cls == -2).sum()) == 128 - 4 * num_pos
    # Negatives are the eligible anchors (best IoU < 0.2) with the lowest background probability.
    iou = box_iou(anchors[0], label[0, :, 1:]).amax(-1)
    prob = torch.softmax(cls_pred, dim=1)[0, 0]
    eligible = (cls[0] <= 0) & (iou < 0.2)
    chosen = cls[0] == 0
    assert bool((eligible | ~chosen).all())
    assert prob[chosen].max() <= prob[eligible & ~chosen].min()
    # Without mining every non-positive anchor is background.
    _, _, cls_all = mx.MultiBoxTarget(anchors, label, cls_pred)
    assert int((cls_all == 0).sum()) == 128 - num_pos and torch.equal(cls_all > 0, cls > 0)


def test_target_minimum_negative_samples_and_cap():
    anchors, label, cls_pred = _mining_case()
    _, _, cls = mx.MultiBoxTarget(anchors, label, cls_pred, negative_mining_ratio=0.1)
    assert int((cls == 0).sum()) == 0  # floor(0.1 * num_pos) == 0
    _, _, cls = mx.MultiBoxTarget(anchors, label, cls_pred, negative_mining_ratio=0.1, minimum_negative_samples=5)
    assert int((cls == 0).sum()) == 5
    # More requested than eligible: all eligible anchors (MXNet's CPU kernel aborts instead).
    _, _, cls = mx.MultiBoxTarget(anchors, label, cls_pred, negative_mining_ratio=100, negative_mining_thresh=0.1)
    iou = box_iou(anchors[0], label[0, :, 1:]).amax(-1)
    assert int((cls == 0).sum()) == int(((cls[0] <= 0) & (iou < 0.1)).sum())


def test_target_variances():
    loc1, _, _ = mx.MultiBoxTarget(D2L_ANCHORS, D2L_GT[None], torch.zeros(1, 3, 5))
    loc2, _, _ = mx.MultiBoxTarget(D2L_ANCHORS, D2L_GT[None], torch.zeros(1, 3, 5), variances=(0.2, 0.05, 0.4, 1.0))
    scale = torch.tensor([0.5, 2.0, 0.5, 0.2]).repeat(5)
    torch.testing.assert_close(loc2, loc1 * scale)


def _random_target_case(seed):
    g = torch.Generator().manual_seed(seed)
    b, n_gt, a = 3, 5, 150
    xy = torch.rand(a, 2, generator=g) * 0.8
    anchors = torch.cat([xy, xy + 0.05 + torch.rand(a, 2, generator=g) * 0.3], 1)
    gxy = torch.rand(b, n_gt, 2, generator=g) * 0.7
    boxes = torch.cat([gxy, gxy + 0.05 + torch.rand(b, n_gt, 2, generator=g) * 0.3], 2)
    classes = torch.randint(0, 3, (b, n_gt, 1), generator=g).float()
    label = torch.cat([classes, boxes], 2)
    label[0, 3:] = -1  # padding at the end
    label[1, 1] = -1  # padding in the middle: rows 2.. are ignored
    cls_pred = torch.randn(b, 4, a, generator=g)
    return anchors[None], label, cls_pred


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"overlap_threshold": 0.3, "negative_mining_ratio": 3, "negative_mining_thresh": 0.5},
        {"overlap_threshold": 0.0, "negative_mining_ratio": 2.5, "negative_mining_thresh": 0.3,
         "minimum_negative_samples": 7, "ignore_label": -3},
        {"overlap_threshold": 0.6, "variances": (0.2, 0.3, 0.1, 0.5)},
    ],
)
def test_target_matches_reference(seed, kwargs):
    anchors, label, cls_pred = _random_target_case(seed)
    loc, mask, cls = mx.MultiBoxTarget(anchors, label, cls_pred, **kwargs)
    want_loc, want_mask, want_cls = ref_target(anchors, label, cls_pred, **kwargs)
    assert np.array_equal(cls.numpy(), want_cls)
    assert np.array_equal(mask.numpy(), want_mask)
    np.testing.assert_allclose(loc.numpy(), want_loc, rtol=1e-5, atol=1e-5)


def test_target_float64_device_and_empty(device):
    anchors, label, cls_pred = _random_target_case(0)
    loc, mask, cls = mx.MultiBoxTarget(anchors.double(), label.double(), cls_pred.double(),
                                       negative_mining_ratio=3)
    assert loc.dtype == mask.dtype == cls.dtype == torch.float64
    want_loc, want_mask, want_cls = ref_target(anchors, label, cls_pred, negative_mining_ratio=3)
    assert np.array_equal(cls.numpy(), want_cls) and np.array_equal(mask.numpy(), want_mask)
    np.testing.assert_allclose(loc.numpy(), want_loc, rtol=1e-4, atol=1e-5)
    dev = [t.to(device) for t in (anchors, label, cls_pred)]
    out = mx.MultiBoxTarget(*dev, negative_mining_ratio=3)
    assert all(t.device.type == torch.device(device).type for t in out)
    assert torch.equal(out[2].cpu(), torch.from_numpy(want_cls))
    loc, mask, cls = mx.MultiBoxTarget(torch.zeros(1, 0, 4), label, torch.zeros(3, 4, 0))
    assert loc.shape == mask.shape == (3, 0) and cls.shape == (3, 0)


def test_target_bad_inputs():
    preds = torch.zeros(1, 3, 5)
    with pytest.raises(ValueError, match="anchor must have shape"):
        mx.MultiBoxTarget(torch.zeros(2, 5, 4), D2L_GT[None], preds)
    with pytest.raises(ValueError, match="anchor must be well-formed"):
        mx.MultiBoxTarget(D2L_ANCHORS.flip(1), D2L_GT[None], preds)
    with pytest.raises(ValueError, match="label must have shape"):
        mx.MultiBoxTarget(D2L_ANCHORS, D2L_GT, preds)
    with pytest.raises(ValueError, match="cls_pred must have shape"):
        mx.MultiBoxTarget(D2L_ANCHORS, D2L_GT[None], torch.zeros(1, 3, 4))
    with pytest.raises(ValueError, match=r"label\[0, 1\] must be"):
        mx.MultiBoxTarget(D2L_ANCHORS, torch.tensor([[[0, 0.1, 0.1, 0.2, 0.2], [1, 0.5, 0.5, 0.4, 0.9]]]), preds)
    with pytest.raises(ValueError, match="negative_mining_thresh"):
        mx.MultiBoxTarget(D2L_ANCHORS, D2L_GT[None], preds, negative_mining_ratio=3, negative_mining_thresh=0)
    with pytest.raises(ValueError, match="minimum_negative_samples"):
        mx.MultiBoxTarget(D2L_ANCHORS, D2L_GT[None], preds, minimum_negative_samples=-1)
    with pytest.raises(ValueError, match="variances"):
        mx.MultiBoxTarget(D2L_ANCHORS, D2L_GT[None], preds, variances=(0.1, 0.1, 0.0, 0.2))
    with pytest.raises(ValueError, match="cls_pred must not contain NaN"):
        mx.MultiBoxTarget(D2L_ANCHORS, D2L_GT[None], torch.full((1, 3, 5), math.nan), negative_mining_ratio=3)


# --------------------------------------------------------------------------------------------
# MultiBoxDetection

D2L_DET_ANCHORS = torch.tensor([[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95],
                                [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]])
D2L_DET_PROBS = torch.tensor([[0.0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]])


def test_detection_d2l_golden():
    # D2L (MXNet edition), "Predicting Bounding Boxes with Non-Maximum Suppression".
    out = mx.MultiBoxDetection(D2L_DET_PROBS[None], torch.zeros(1, 16), D2L_DET_ANCHORS[None], nms_threshold=0.5)
    want = torch.tensor([[[0, 0.9, 0.1, 0.08, 0.52, 0.92], [1, 0.9, 0.55, 0.2, 0.9, 0.88],
                          [-1, 0.8, 0.08, 0.2, 0.56, 0.95], [-1, 0.7, 0.15, 0.3, 0.62, 0.91]]])
    torch.testing.assert_close(out, want)


def _two_boxes(p0=0.9, p1=0.8, c0=1, c1=1):
    """Anchors with IoU exactly 0.5 (zero offsets decode to the anchors exactly)."""
    anchors = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.5]])
    probs = torch.zeros(1, 3, 2)
    probs[0, c0, 0], probs[0, c1, 1] = p0, p1
    return probs, torch.zeros(1, 8), anchors


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_detection_suppresses_at_equal_iou(dtype):
    probs, loc, anchors = (t.to(dtype) for t in _two_boxes())
    out = mx.MultiBoxDetection(probs, loc, anchors, nms_threshold=0.5)
    assert out[0, :, 0].tolist() == [0.0, -1.0]  # IoU == 0.5 >= 0.5: suppressed (torchvision keeps it)
    assert out[0, 1, 1].item() == pytest.approx(0.8) and out[0, 1, 5].item() == 0.5  # score and box stay
    out = mx.MultiBoxDetection(probs, loc, anchors, nms_threshold=0.5000001)
    assert out[0, :, 0].tolist() == [0.0, 0.0]


def test_detection_force_suppress():
    probs, loc, anchors = _two_boxes(c0=1, c1=2)
    assert mx.MultiBoxDetection(probs, loc, anchors)[0, :, 0].tolist() == [0.0, 1.0]  # per class
    assert mx.MultiBoxDetection(probs, loc, anchors, force_suppress=True)[0, :, 0].tolist() == [0.0, -1.0]


def test_detection_clip_default():
    anchors = torch.tensor([[-0.2, -0.1, 0.5, 0.5], [0.6, 0.6, 1.3, 1.2]])
    probs = torch.tensor([[[0.1, 0.1], [0.9, 0.9]]])
    out = mx.MultiBoxDetection(probs, torch.zeros(1, 8), anchors)
    torch.testing.assert_close(out[0, :, 2:], torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.6, 0.6, 1.0, 1.0]]))
    out = mx.MultiBoxDetection(probs, torch.zeros(1, 8), anchors, clip=False)
    torch.testing.assert_close(out[0, :, 2:], anchors)


def _grid_case(n=5, probs=None):
    """n disjoint anchors in a row (no NMS interaction), one class."""
    x = torch.arange(n, dtype=torch.float32) / n
    anchors = torch.stack([x, torch.zeros(n), x + 0.5 / n, torch.full((n,), 0.5)], 1)
    p = torch.tensor(probs if probs is not None else [0.3, 0.9, 0.5, 0.7, 0.6])
    return torch.stack([1 - p, p])[None], torch.zeros(1, 4 * n), anchors


def test_detection_nms_topk_layout():
    probs, loc, anchors = _grid_case()
    out = mx.MultiBoxDetection(probs, loc, anchors, nms_topk=2)[0]
    # Top 2 by score, then the kept rows at positions 2..4 in anchor order, with class -1.
    assert out[:, 1].tolist() == pytest.approx([0.9, 0.7, 0.5, 0.7, 0.6])
    assert out[:, 0].tolist() == [0, 0, -1, -1, -1]
    torch.testing.assert_close(out[2:, 2:], anchors[2:])
    full = mx.MultiBoxDetection(probs, loc, anchors)[0]
    assert full[:, 1].tolist() == pytest.approx([0.9, 0.7, 0.6, 0.5, 0.3]) and full[:, 0].tolist() == [0] * 5


def test_detection_threshold_and_padding_rows():
    probs, loc, anchors = _grid_case()
    out = mx.MultiBoxDetection(probs, loc, anchors, threshold=0.55)[0]
    assert out[:, 1].tolist()[:3] == pytest.approx([0.9, 0.7, 0.6])
    assert out[3:].tolist() == [[-1.0] * 6] * 2  # dropped anchors leave rows of -1 at the end
    # nms_threshold outside (0, 1]: no sorting and no NMS, kept rows in anchor order.
    out = mx.MultiBoxDetection(probs, loc, anchors, threshold=0.55, nms_threshold=0)[0]
    assert out[:, 1].tolist()[:3] == pytest.approx([0.9, 0.7, 0.6])
    out = mx.MultiBoxDetection(probs, loc, anchors, threshold=0.4, nms_threshold=1.5)[0]
    assert out[:, 1].tolist()[:4] == pytest.approx([0.9, 0.5, 0.7, 0.6])


def test_detection_score_ties_keep_anchor_order():
    probs, loc, anchors = _grid_case(probs=[0.5, 0.7, 0.5, 0.7, 0.5])
    out = mx.MultiBoxDetection(probs, loc, anchors)[0]
    torch.testing.assert_close(out[:, 2], anchors[[1, 3, 0, 2, 4], 0])


def test_detection_background_id():
    probs = torch.tensor([[[0.2, 0.6], [0.7, 0.1], [0.1, 0.3]]])  # rows: class a, class b, background
    anchors = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0]])
    out = mx.MultiBoxDetection(probs, torch.zeros(1, 8), anchors, background_id=2)[0]
    torch.testing.assert_close(out[:, :2], torch.tensor([[1.0, 0.7], [0.0, 0.6]]))
    out0 = mx.MultiBoxDetection(probs, torch.zeros(1, 8), anchors)[0]  # row 0 is background
    torch.testing.assert_close(out0[:, :2], torch.tensor([[0.0, 0.7], [1.0, 0.3]]))
    want = ref_detection(probs, torch.zeros(1, 8), anchors, background_id=1)
    assert np.allclose(mx.MultiBoxDetection(probs, torch.zeros(1, 8), anchors, background_id=1).numpy(), want)


def test_detection_variances():
    probs, _, anchors = _grid_case()
    loc = torch.linspace(-1, 1, 20)[None]
    a = mx.MultiBoxDetection(probs, loc, anchors, clip=False)
    b = mx.MultiBoxDetection(probs, loc, anchors, clip=False, variances=(0.2, 0.2, 0.4, 0.4))
    assert not torch.allclose(a[..., 2:], b[..., 2:])
    np.testing.assert_allclose(b.numpy(), ref_detection(probs, loc, anchors, clip=False, variances=(0.2, 0.2, 0.4, 0.4)),
                               atol=1e-6)


def _random_detection_case(seed, b=3, a=120, c1=4):
    g = torch.Generator().manual_seed(seed)
    cxy = torch.rand(a, 2, generator=g)
    wh = 0.1 + torch.rand(a, 2, generator=g) * 0.4
    anchors = torch.cat([cxy - wh / 2, cxy + wh / 2], 1)
    cls_prob = torch.softmax(torch.randn(b, c1, a, generator=g) * 2, dim=1)
    loc_pred = torch.randn(b, 4 * a, generator=g) * 0.5
    return cls_prob, loc_pred, anchors[None]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"threshold": 0.3, "nms_threshold": 0.3, "force_suppress": True},
        {"nms_topk": 15, "clip": False, "nms_threshold": 0.45},
        {"background_id": 2, "threshold": 0.2, "variances": (0.2, 0.1, 0.3, 0.25), "nms_topk": 40},
        {"nms_threshold": 0.0, "threshold": 0.25},
    ],
)
def test_detection_matches_reference(seed, kwargs):
    cls_prob, loc_pred, anchors = _random_detection_case(seed)
    got = mx.MultiBoxDetection(cls_prob, loc_pred, anchors, **kwargs).numpy()
    want = ref_detection(cls_prob, loc_pred, anchors, **kwargs)
    assert np.array_equal(got[..., :2], want[..., :2])
    np.testing.assert_allclose(got[..., 2:], want[..., 2:], rtol=0, atol=2e-6)
    assert (got[..., 0] >= 0).any() and (got[..., 0] == -1).any()


def test_detection_float64_half_device_and_empty(device):
    cls_prob, loc_pred, anchors = _random_detection_case(7, b=2)
    want = ref_detection(cls_prob, loc_pred, anchors)
    got = mx.MultiBoxDetection(cls_prob.double(), loc_pred.double(), anchors.double())
    assert got.dtype == torch.float64
    assert np.array_equal(got[..., 0].numpy(), want[..., 0])
    np.testing.assert_allclose(got[..., 1:].numpy(), want[..., 1:], atol=1e-6)
    half = mx.MultiBoxDetection(cls_prob.half(), loc_pred.half(), anchors.half())
    assert half.dtype == torch.float16 and half.shape == got.shape
    dev = mx.MultiBoxDetection(cls_prob.to(device), loc_pred.to(device), anchors.to(device))
    assert dev.device.type == torch.device(device).type
    assert np.array_equal(dev[..., 0].cpu().numpy(), want[..., 0])
    assert mx.MultiBoxDetection(torch.zeros(2, 3, 0), torch.zeros(2, 0), torch.zeros(1, 0, 4)).shape == (2, 0, 6)
    # Only a background row: nothing is detected.
    assert (mx.MultiBoxDetection(torch.ones(1, 1, 3), torch.zeros(1, 12), anchors[:, :3]) == -1).all()


def test_detection_bad_inputs():
    probs, loc, anchors = D2L_DET_PROBS[None], torch.zeros(1, 16), D2L_DET_ANCHORS[None]
    with pytest.raises(ValueError, match="cls_prob must have shape"):
        mx.MultiBoxDetection(D2L_DET_PROBS, loc, anchors)
    with pytest.raises(ValueError, match="loc_pred must have shape"):
        mx.MultiBoxDetection(probs, torch.zeros(1, 12), anchors)
    with pytest.raises(ValueError, match="anchor must hold A = 4"):
        mx.MultiBoxDetection(probs, loc, anchors[:, :3])
    with pytest.raises(ValueError, match="anchor must have shape"):
        mx.MultiBoxDetection(probs, loc, anchors.expand(2, 4, 4))
    with pytest.raises(ValueError, match="background_id"):
        mx.MultiBoxDetection(probs, loc, anchors, background_id=3)
    with pytest.raises(ValueError, match="cls_prob must not contain NaN"):
        mx.MultiBoxDetection(torch.full_like(probs, math.nan), loc, anchors)
    with pytest.raises(ValueError, match="variances"):
        mx.MultiBoxDetection(probs, loc, anchors, variances=(0.1, 0.1, 0.2))
    with pytest.raises(TypeError, match="nms_topk"):
        mx.MultiBoxDetection(probs, loc, anchors, nms_topk=2.5)
    with pytest.raises(TypeError, match="force_suppress"):
        mx.MultiBoxDetection(probs, loc, anchors, force_suppress="yes")
