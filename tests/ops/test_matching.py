"""Tests for pixbox.ops.matching: match_anchors, hard_negative_mining and multibox_target.

The matcher and sampler themselves (match_by_iou, Matcher, sample_balanced) are in test_matcher.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reference as R
from pixbox.ops import box_iou, hard_negative_mining, match_anchors, match_by_iou, multibox_target

DTYPES = [torch.float32, torch.float64]
THRESHOLDS = [0.0, 0.25, 1 / 3, 0.5, 0.7, 1.0]

# D2L 14.4.3 example.
D2L_GT = torch.tensor([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]])
D2L_ANCHORS = torch.tensor([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                            [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]])


def grid_boxes(g: torch.Generator, n: int, canvas: int = 8, max_side: int = 4, degenerate: float = 0.1) -> torch.Tensor:
    """Integer-coordinate boxes: IoU ties and IoU exactly at 1/2, 1/3, 1/4 ... happen often."""
    xy = torch.randint(0, canvas, (n, 2), generator=g).double()
    wh = torch.randint(1, max_side + 1, (n, 2), generator=g).double()
    wh[torch.rand(n, 2, generator=g) < degenerate] = 0.0
    return torch.cat([xy, xy + wh], dim=1)


def random_labels(g: torch.Generator, b: int, g_real: int, num_classes: int = 3, padding: int = 2) -> torch.Tensor:
    """[B, g_real + padding, 5] labels with padding rows (class -1 or -2, junk coordinates) at random places."""
    out = []
    for _ in range(b):
        rows = torch.cat([torch.randint(0, num_classes, (g_real, 1), generator=g).double(), grid_boxes(g, g_real)], dim=1)
        junk = torch.tensor([[-1.0, 0, 0, 0, 0], [-1.0, 5, 5, 1, 1], [-2.0, float("nan"), 0, 1, 1], [-1.0, 0, 0, 8, 8]])
        pad = junk[torch.randint(0, 4, (padding,), generator=g)]
        allrows = torch.cat([rows, pad])
        out.append(allrows[torch.randperm(allrows.shape[0], generator=g)])
    return torch.stack(out) if out else torch.zeros(0, g_real + padding, 5, dtype=torch.float64)


def random_logits(g: torch.Generator, b: int, a: int, c1: int, ties: bool) -> torch.Tensor:
    if ties:  # whole rows drawn from a small palette: exactly equal losses, broken by anchor index
        palette = torch.randint(-3, 4, (3, c1), generator=g).double()
        return palette[torch.randint(0, 3, (b, a), generator=g)]
    return torch.randn(b, a, c1, generator=g, dtype=torch.float64)


# --------------------------------------------------------------------------------------------
# match_anchors


def test_match_anchors_d2l_example(device):
    assert match_anchors(D2L_ANCHORS.to(device), D2L_GT[:, 1:].to(device), 0.5).tolist() == [-1, 0, 1, -1, 1]


def test_match_anchors_assigns_at_exact_threshold(device):
    gt = torch.tensor([[0.0, 0, 2, 1]])
    # IoUs with the gt: 1 (taken in stage 1), 1/2, 1/2 and 1/4, all exact in floating point.
    anchors = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1], [1, 0, 2, 1], [0, 0, 1, 0.5]])
    for dtype in DTYPES:
        a, b = anchors.to(dtype), gt.to(dtype)
        da, db = a.to(device), b.to(device)
        # The threshold is compared in the boxes' dtype (like ``tensor >= float`` in torch and D2L), so
        # "just above 0.5" means the next representable value of that dtype.
        above = float(np.nextafter(np.float32(0.5), np.float32(1))) if dtype == torch.float32 else float(np.nextafter(0.5, 1.0))
        assert match_anchors(da, db, 0.5).tolist() == [0, 0, 0, -1]
        assert match_anchors(da, db, above).tolist() == [0, -1, -1, -1]
        assert R.match_anchors(a, b, above).tolist() == [0, -1, -1, -1]
        assert match_anchors(da, db, 0.25).tolist() == [0, 0, 0, 0]
        assert R.match_anchors(a, b, 0.5).tolist() == [0, 0, 0, -1]


def test_match_anchors_iou_threshold_changes_output(device):
    gt = torch.tensor([[0.0, 0, 10, 10]], device=device)
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 8], [0, 0, 10, 6], [0, 0, 10, 3]], device=device)
    assert match_anchors(anchors, gt, 0.9).tolist() == [0, -1, -1, -1]
    assert match_anchors(anchors, gt, 0.7).tolist() == [0, 0, -1, -1]
    assert match_anchors(anchors, gt, 0.5).tolist() == [0, 0, 0, -1]
    assert match_anchors(anchors, gt, 0.0).tolist() == [0, 0, 0, 0]
    assert match_anchors(anchors, gt).tolist() == [0, 0, 0, -1]  # default 0.5


def test_match_anchors_ties_are_deterministic(device):
    gt = torch.tensor([[0.0, 0, 4, 4], [0, 0, 4, 4]], device=device)
    anchors = torch.tensor([[0.0, 0, 4, 4]] * 3, device=device)
    # Stage 1 takes (0, 0) then (1, 1) in row-major order; anchor 2's best is the first gt.
    assert match_anchors(anchors, gt).tolist() == [0, 1, 0]
    # Stage 1 forces a low-IoU pair (gt 1 overlaps only anchor 1, a little) but never a zero-IoU one.
    gt = torch.tensor([[0.0, 0, 4, 4], [3, 3, 20, 20], [50, 50, 60, 60]], device=device)
    anchors = torch.tensor([[0.0, 0, 4, 4], [0, 0, 4, 5], [100, 100, 101, 101]], device=device)
    assert match_anchors(anchors, gt).tolist() == [0, 1, -1]


def test_match_anchors_never_assigns_degenerate_boxes(device):
    gt = torch.tensor([[1.0, 1, 1, 3], [0, 0, 2, 2]], device=device)
    anchors = torch.tensor([[1.0, 1, 1, 3], [0, 0, 0, 0], [0, 0, 2, 2]], device=device)
    assert match_anchors(anchors, gt, 0.0).tolist() == [-1, -1, 1]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("a,g", [(0, 0), (0, 3), (4, 0), (1, 1), (1, 5), (6, 1), (25, 6), (8, 12)])
@pytest.mark.parametrize("seed", range(10))
def test_match_anchors_matches_reference(seed, a, g, dtype, device):
    gen = torch.Generator().manual_seed(seed * 1000 + a * 31 + g)
    anchors = grid_boxes(gen, a).to(dtype)
    gt = grid_boxes(gen, g).to(dtype)
    for t in THRESHOLDS:
        got = match_anchors(anchors.to(device), gt.to(device), t)
        assert got.dtype == torch.int64 and got.shape == (a,) and got.device.type == device
        assert got.tolist() == R.match_anchors(anchors, gt, t).tolist(), f"iou_threshold {t}"


@pytest.mark.parametrize("seed", range(25))
def test_match_anchors_matches_reference_continuous(seed, device):
    gen = torch.Generator().manual_seed(seed)
    a, g = int(torch.randint(1, 40, (1,), generator=gen)), int(torch.randint(1, 8, (1,), generator=gen))
    dtype = DTYPES[seed % 2]
    boxes = torch.rand(a + g, 4, generator=gen, dtype=torch.float64)
    boxes = torch.cat([torch.minimum(boxes[:, :2], boxes[:, 2:]), torch.maximum(boxes[:, :2], boxes[:, 2:])], 1).to(dtype)
    t = float(torch.rand(1, generator=gen))
    got = match_anchors(boxes[:a].to(device), boxes[a:].to(device), t)
    assert got.tolist() == R.match_anchors(boxes[:a], boxes[a:], t).tolist()


@pytest.mark.parametrize("seed", range(8))
def test_match_anchors_is_the_bipartite_matcher(seed, device):
    gen = torch.Generator().manual_seed(500 + seed)
    anchors, gt = grid_boxes(gen, 30), grid_boxes(gen, 6)
    iou = box_iou(gt, anchors)  # [G, A]
    da, dg, di = anchors.to(device), gt.to(device), iou.to(device)
    for t in THRESHOLDS:
        want = R.matcher_reference(iou, t, t, "bipartite")
        if t == 0:  # D2L's extra rule: an anchor that overlaps no ground truth is never assigned
            want[iou.amax(dim=0) <= 0] = -1
        assert match_anchors(da, dg, t).tolist() == want.tolist(), t
        if t > 0:
            assert torch.equal(match_anchors(da, dg, t), match_by_iou(di, t, allow_low_quality_matches="bipartite"))


def test_match_anchors_device(device):
    anchors = D2L_ANCHORS.to(device)
    out = match_anchors(anchors, D2L_GT[:, 1:].to(device))
    assert out.device.type == device and out.tolist() == [-1, 0, 1, -1, 1]
    out = match_anchors(anchors.double(), torch.zeros(0, 4, device=device))
    assert out.device.type == device and out.tolist() == [-1] * 5


# --------------------------------------------------------------------------------------------
# multibox_target: golden values


def test_multibox_target_d2l_golden(device):
    offsets, mask, classes = multibox_target(D2L_ANCHORS[None].to(device), D2L_GT[None].to(device))
    assert offsets.device.type == mask.device.type == classes.device.type == device
    offsets = offsets.cpu()
    assert classes.tolist() == [[0, 1, 2, 0, 2]]
    assert mask.tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]]
    printed = torch.tensor([0, 0, 0, 0, 1.40, 10.0, 2.59, 7.18, -1.20, 0.269, 1.68, -1.57,
                            0, 0, 0, 0, -0.571, -1.00, 0, 0.626])
    # The book prints three significant digits (and 4.17e-06 for the ~0 entry): tolerance is half a
    # unit in the last printed digit, 1e-3 for the zeros.
    digits = torch.floor(torch.log10(printed.abs().clamp(min=1e-30)))
    tol = torch.where(printed == 0, torch.tensor(1e-3), 0.5 * 10.0 ** (digits - 2) + 1e-6)
    assert bool(((offsets[0] - printed).abs() <= tol).all()), (offsets, printed)
    # And to float32 precision against the reference formula.
    ref = R.multibox_target(D2L_ANCHORS[None], D2L_GT[None])
    torch.testing.assert_close(offsets.double(), ref[0], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------
# multibox_target: against the reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(30))
def test_multibox_target_matches_reference(seed, dtype, device):
    gen = torch.Generator().manual_seed(seed)
    a = [0, 1, 24][seed % 3] if seed < 6 else int(torch.randint(2, 30, (1,), generator=gen))
    g_real = [0, 1, 4][seed % 3] if seed < 9 else int(torch.randint(0, 6, (1,), generator=gen))
    b = 3
    anchors = grid_boxes(gen, a).to(dtype)
    labels = random_labels(gen, b, g_real, padding=int(torch.randint(0, 3, (1,), generator=gen))).to(dtype)
    if seed % 4 == 1:
        labels[1, :, 0] = -1  # an image with only padding
    kwargs = dict(iou_threshold=THRESHOLDS[seed % len(THRESHOLDS)])
    if seed % 5 == 2:
        kwargs.update(means=(0.1, -0.1, 0.2, 0.0), stds=(0.5, 0.25, 1.0, 2.0))
    if seed % 2 == 0:
        kwargs.update(
            cls_preds=random_logits(gen, b, a, 4, ties=seed % 4 == 0).to(dtype),
            negative_mining_ratio=[0.0, 0.5, 1.0, 3.0][seed % 4 // 2 + seed % 3],
            negative_mining_threshold=[0.3, 0.5, 0.7][seed % 3],
            min_negative_samples=[0, 2, 100][seed % 3],
        )
    on_device = {k: v.to(device) if torch.is_tensor(v) else v for k, v in kwargs.items()}
    offsets, mask, classes = multibox_target(anchors.to(device), labels.to(device), **on_device)
    ref_offsets, ref_mask, ref_classes = R.multibox_target(anchors, labels, **kwargs)
    assert offsets.shape == (b, 4 * a) and mask.shape == (b, 4 * a) and classes.shape == (b, a)
    assert offsets.dtype == dtype and mask.dtype == dtype and classes.dtype == torch.int64
    assert offsets.device.type == mask.device.type == classes.device.type == device
    offsets = offsets.cpu()
    assert torch.isfinite(offsets).all() and torch.isfinite(mask).all()
    assert classes.tolist() == ref_classes.tolist()
    assert mask.double().tolist() == ref_mask.tolist()
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(offsets.double(), ref_offsets, **tol)


PADDING_ROWS = torch.tensor([[-1.0, 0, 0, 0, 0], [-1.0, 5, 5, 1, 1], [-2.0, float("nan"), 0, 1, 1]], dtype=torch.float64)


@pytest.mark.parametrize("negative_mining_threshold", [0.0, 0.5])
@pytest.mark.parametrize("seed", range(6))
def test_multibox_target_padding_is_ignored_wherever_it_appears(seed, negative_mining_threshold, device):
    # Padding rows (any negative class, any coordinates, even NaN) before, between and after the
    # real rows give the same targets as no padding at all.
    gen = torch.Generator().manual_seed(seed)
    anchors = grid_boxes(gen, 20).to(device)
    real = random_labels(gen, 1, 3, padding=0)[0]
    kwargs = dict(cls_preds=random_logits(gen, 2, 20, 4, ties=False).to(device), negative_mining_ratio=2.0,
                  negative_mining_threshold=negative_mining_threshold, min_negative_samples=3)
    padded = torch.cat([PADDING_ROWS[:1], real[:2], PADDING_ROWS[1:], real[2:]])
    plain = torch.stack([real, real]).to(device)
    with_pad = torch.stack([padded, padded]).to(device)
    for got, want in zip(multibox_target(anchors, with_pad, **kwargs), multibox_target(anchors, plain, **kwargs)):
        assert torch.equal(got, want)


@pytest.mark.parametrize("negative_mining_threshold", [0.0, 0.5])
def test_multibox_target_only_padding_equals_no_ground_truth(negative_mining_threshold, device):
    # An image whose rows are all padding is an image with G = 0: same targets, with or without
    # mining. (An anchor's best IoU with no ground truth is 0, so with negative_mining_threshold=0
    # no anchor may be a negative.)
    gen = torch.Generator().manual_seed(0)
    anchors = grid_boxes(gen, 20)
    kwargs = dict(cls_preds=random_logits(gen, 2, 20, 4, ties=False), negative_mining_ratio=2.0,
                  negative_mining_threshold=negative_mining_threshold, min_negative_samples=3)
    no_gt = torch.zeros(2, 0, 5, dtype=torch.float64)
    only_pad = torch.stack([PADDING_ROWS, PADDING_ROWS])
    reference = R.multibox_target(anchors, no_gt, **kwargs)[2].tolist()
    anchors, no_gt, only_pad = anchors.to(device), no_gt.to(device), only_pad.to(device)
    kwargs["cls_preds"] = kwargs["cls_preds"].to(device)
    want = multibox_target(anchors, no_gt, **kwargs)
    assert want[2].tolist() == reference and want[2].device.type == device
    for got, expected in zip(multibox_target(anchors, only_pad, **kwargs), want):
        assert torch.equal(got, expected), f"only padding gave {got.tolist()}, no ground truth gave {expected.tolist()}"


# --------------------------------------------------------------------------------------------
# multibox_target: every keyword changes the output


def _kw_setup(device="cpu"):
    f64 = dict(dtype=torch.float64, device=device)
    anchors = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1], [5, 5, 6, 6], [7, 7, 8, 8], [0, 5, 1, 6]], **f64)
    labels = torch.tensor([[[1.0, 0, 0, 2, 1]]], **f64)
    logits = torch.tensor([[[0.0, 1, 0], [0, 1, 0], [0, 2, 0], [0, 3, 0], [0, 0.5, 0]]], **f64)
    return anchors, labels, logits


def test_multibox_target_iou_threshold(device):
    anchors, labels, _ = _kw_setup(device)
    assert multibox_target(anchors, labels)[2].tolist() == [[2, 2, 0, 0, 0]]  # IoU 1/2 == threshold
    assert multibox_target(anchors, labels, iou_threshold=0.6)[2].tolist() == [[2, 0, 0, 0, 0]]


def test_multibox_target_means_and_stds(device):
    anchors, labels, _ = _kw_setup(device)
    base = multibox_target(anchors, labels)[0].cpu()
    # Anchor 1 [0,0,1,1] -> gt [0,0,2,1]: raw offsets (0.5, 0, log 2, 0).
    torch.testing.assert_close(base[0, 4:8], torch.tensor([5.0, 0, math.log(2) / 0.2, 0], dtype=torch.float64))
    moved = multibox_target(anchors, labels, means=(0.5, 0, 0, 0), stds=(1, 1, 1, 1))[0].cpu()
    torch.testing.assert_close(moved[0, 4:8], torch.tensor([0.0, 0, math.log(2), 0], dtype=torch.float64))
    assert base[0, 8:].abs().sum() == 0 and moved[0, 8:].abs().sum() == 0


def test_multibox_target_negative_mining_ratio(device):
    anchors, labels, logits = _kw_setup(device)
    # 2 positives; negatives are anchors 2, 3, 4 with losses ordered 3 > 2 > 4.
    assert multibox_target(anchors, labels, cls_preds=logits, negative_mining_ratio=0.5)[2].tolist() == [[2, 2, -1, 0, -1]]
    assert multibox_target(anchors, labels, cls_preds=logits, negative_mining_ratio=1.0)[2].tolist() == [[2, 2, 0, 0, -1]]
    assert multibox_target(anchors, labels, cls_preds=logits, negative_mining_ratio=3.0)[2].tolist() == [[2, 2, 0, 0, 0]]
    assert multibox_target(anchors, labels, cls_preds=logits, negative_mining_ratio=0.0)[2].tolist() == [[2, 2, -1, -1, -1]]


def test_multibox_target_negative_mining_threshold(device):
    f64 = dict(dtype=torch.float64, device=device)
    anchors = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 4], [0, 0, 10, 2], [20, 20, 30, 30]], **f64)
    labels = torch.tensor([[[0.0, 0, 0, 10, 10]]], **f64)
    logits = torch.tensor([[[0.0, 5], [0, 4], [0, 3], [0, 1]]], **f64)
    # Negatives: anchor 1 (IoU 0.4, hardest), 2 (IoU 0.2), 3 (IoU 0, easiest).
    kw = dict(cls_preds=logits, negative_mining_ratio=2.0)
    assert multibox_target(anchors, labels, **kw)[2].tolist() == [[1, 0, 0, -1]]
    assert multibox_target(anchors, labels, negative_mining_threshold=0.3, **kw)[2].tolist() == [[1, -1, 0, 0]]
    assert multibox_target(anchors, labels, negative_mining_threshold=0.1, **kw)[2].tolist() == [[1, -1, -1, 0]]


def test_multibox_target_min_negative_samples(device):
    anchors, _, logits = _kw_setup(device)
    labels = torch.tensor([[[0.0, 20, 20, 30, 30]]], dtype=torch.float64, device=device)  # overlaps nothing
    kw = dict(cls_preds=logits, negative_mining_ratio=3.0)
    assert multibox_target(anchors, labels, **kw)[2].tolist() == [[-1] * 5]
    assert multibox_target(anchors, labels, min_negative_samples=2, **kw)[2].tolist() == [[-1, -1, 0, 0, -1]]
    assert multibox_target(anchors, labels, min_negative_samples=99, **kw)[2].tolist() == [[0] * 5]


def test_multibox_target_class_ids_are_shifted_by_one(device):
    anchors, labels, _ = _kw_setup(device)
    labels = labels.clone()
    labels[0, 0, 0] = 0
    assert multibox_target(anchors, labels)[2].tolist() == [[1, 1, 0, 0, 0]]


# --------------------------------------------------------------------------------------------
# multibox_target: empty input, NaN, dtypes and devices


def test_multibox_target_empty_and_degenerate(device):
    anchors = D2L_ANCHORS.to(device)
    # G = 0, A = 0 and B = 0.
    off, mask, cls = multibox_target(anchors, torch.zeros(2, 0, 5, device=device))
    assert off.shape == (2, 20) and cls.tolist() == [[0] * 5] * 2 and mask.sum() == 0
    off, mask, cls = multibox_target(torch.zeros(0, 4, device=device), D2L_GT[None].to(device))
    assert off.shape == (1, 0) and mask.shape == (1, 0) and cls.shape == (1, 0)
    off, mask, cls = multibox_target(anchors, torch.zeros(0, 2, 5, device=device))
    assert off.shape == (0, 20) and cls.shape == (0, 5)
    # Degenerate ground truth and anchors: never assigned, never NaN or inf.
    labels = torch.tensor([[[0.0, 0.3, 0.3, 0.3, 0.6], [1, 0.5, 0.5, 0.5, 0.5]]], device=device)
    degenerate = torch.tensor([[0.3, 0.3, 0.3, 0.6], [0.1, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.5]], device=device)
    for a in (anchors, degenerate):
        off, mask, cls = multibox_target(a, labels, iou_threshold=0.0)
        assert torch.isfinite(off).all() and mask.sum() == 0 and (cls == 0).all()


def test_multibox_target_dtype_and_device(device):
    for dtype in DTYPES:
        off, mask, cls = multibox_target(D2L_ANCHORS.to(device, dtype), D2L_GT[None].to(device))
        assert off.dtype == dtype and mask.dtype == dtype and cls.dtype == torch.int64
        assert off.device.type == device and mask.device.type == device and cls.device.type == device
        assert cls.tolist() == [[0, 1, 2, 0, 2]]
    logits = torch.zeros(1, 5, 3, device=device)
    cls = multibox_target(D2L_ANCHORS.to(device), D2L_GT[None].to(device), cls_preds=logits, negative_mining_ratio=1.0)[2]
    assert cls.device.type == device and cls.tolist() == [[0, 1, 2, 0, 2]]  # 3 positives, only 2 negatives


# --------------------------------------------------------------------------------------------
# hard_negative_mining


@pytest.mark.parametrize("a", [0, 1, 30])
@pytest.mark.parametrize("seed", range(24))
def test_hard_negative_mining_matches_reference(seed, a, device):
    gen = torch.Generator().manual_seed(seed * 10 + a)
    b, c1 = 3, 3
    labels = torch.tensor([-1, 0, 0, 0, 0, 1, 2])[torch.randint(0, 7, (b, a), generator=gen)]
    logits = random_logits(gen, b, a, c1, ties=seed % 2 == 0).to(DTYPES[seed % 3 % 2])
    eligible = torch.rand(b, a, generator=gen) < 0.7 if seed % 3 == 0 else None
    ratio = [0.0, 0.5, 1.0, 3.0][seed % 4]
    min_neg = [0, 2, 100][seed % 3]
    got = hard_negative_mining(logits.to(device), labels.to(device), ratio,
                               eligible=None if eligible is None else eligible.to(device), min_negative_samples=min_neg)
    want = R.hard_negative_mining(logits, labels, ratio, eligible=eligible, min_negative_samples=min_neg)
    assert got.dtype == torch.int64 and got.device.type == device and got.tolist() == want.tolist()


def test_hard_negative_mining_parameters_change_output(device):
    labels = torch.tensor([[1, 0, 0, 0, 0, -1]], device=device)
    logits = torch.tensor([[[0.0, 0], [0, 1], [0, 3], [0, 2], [0, 3], [0, 9]]], device=device)
    # Losses of the negatives 1..4: ordered 2 = 4 > 3 > 1 (the tie goes to the lower index).
    assert hard_negative_mining(logits, labels, 1.0).tolist() == [[1, -1, 0, -1, -1, -1]]
    assert hard_negative_mining(logits, labels, 2.0).tolist() == [[1, -1, 0, -1, 0, -1]]
    assert hard_negative_mining(logits, labels, 3.0).tolist() == [[1, -1, 0, 0, 0, -1]]
    assert hard_negative_mining(logits, labels).tolist() == [[1, -1, 0, 0, 0, -1]]  # default ratio 3
    eligible = torch.tensor([[True, True, False, True, True, True]], device=device)
    assert hard_negative_mining(logits, labels, 2.0, eligible=eligible).tolist() == [[1, -1, -1, 0, 0, -1]]
    assert hard_negative_mining(logits, labels, 0.0, min_negative_samples=3).tolist() == [[1, -1, 0, 0, 0, -1]]
    assert hard_negative_mining(logits, labels, 0.0).tolist() == [[1, -1, -1, -1, -1, -1]]


def test_hard_negative_mining_device_and_empty(device):
    labels = torch.tensor([[1, 0, 0]], device=device)
    logits = torch.tensor([[[0.0, 0], [0, 1], [0, 3]]], device=device)
    out = hard_negative_mining(logits, labels, 1.0)
    assert out.device.type == device and out.tolist() == [[1, -1, 0]]
    out = hard_negative_mining(torch.zeros(2, 0, 3, device=device), torch.zeros(2, 0, dtype=torch.long, device=device))
    assert out.shape == (2, 0)


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises_with_argument_name():
    anchors, labels, logits = _kw_setup()
    with pytest.raises(ValueError, match="labels"):
        multibox_target(anchors, labels[..., :4])
    with pytest.raises(ValueError, match="labels"):
        multibox_target(anchors, labels[0])
    with pytest.raises(ValueError, match="labels"):
        multibox_target(anchors, torch.tensor([[[0.0, 2, 0, 1, 1]]], dtype=torch.float64))  # x2 < x1
    with pytest.raises(ValueError, match="labels"):
        multibox_target(anchors, torch.tensor([[[0.0, 0, float("nan"), 1, 1]]], dtype=torch.float64))
    with pytest.raises(TypeError, match="labels"):
        multibox_target(anchors, [[[0.0, 0, 0, 1, 1]]])
    with pytest.raises(ValueError, match="anchors"):
        multibox_target(torch.stack([anchors, anchors]), labels)
    with pytest.raises(ValueError, match="anchors"):
        multibox_target(anchors[:, :3], labels)
    with pytest.raises(ValueError, match="iou_threshold"):
        multibox_target(anchors, labels, iou_threshold=1.5)
    with pytest.raises(ValueError, match="stds"):
        multibox_target(anchors, labels, stds=(0.1, 0.1, 0.2, 0))
    with pytest.raises(ValueError, match="cls_preds"):
        multibox_target(anchors, labels, negative_mining_ratio=3.0)
    with pytest.raises(ValueError, match="cls_preds"):
        multibox_target(anchors, labels, cls_preds=logits)
    with pytest.raises(ValueError, match="cls_logits"):
        multibox_target(anchors, labels, cls_preds=logits[:, :3], negative_mining_ratio=3.0)
    with pytest.raises(ValueError, match="negative_mining_threshold"):
        multibox_target(anchors, labels, cls_preds=logits, negative_mining_ratio=3.0, negative_mining_threshold=-0.5)
    with pytest.raises(ValueError, match="negative_mining_ratio"):
        multibox_target(anchors, labels, cls_preds=logits, negative_mining_ratio=-1.0)
    with pytest.raises(ValueError, match="min_negative_samples"):
        multibox_target(anchors, labels, cls_preds=logits, negative_mining_ratio=1.0, min_negative_samples=-1)
    with pytest.raises(ValueError, match="gt_boxes"):
        match_anchors(anchors, torch.tensor([[0.0, 1, 1, 0]]).double())
    with pytest.raises(ValueError, match="anchors"):
        match_anchors(anchors[:, :3], labels[0, :, 1:])
    with pytest.raises(ValueError, match="iou_threshold"):
        match_anchors(anchors, labels[0, :, 1:], -0.1)
    with pytest.raises(ValueError, match="iou_threshold"):
        match_anchors(anchors, labels[0, :, 1:], float("nan"))
    labels_2d = torch.zeros(1, 5, dtype=torch.long)
    with pytest.raises(TypeError, match="cls_logits"):
        hard_negative_mining(torch.zeros(1, 5, 3, dtype=torch.long), labels_2d)
    with pytest.raises(ValueError, match="cls_logits"):
        hard_negative_mining(torch.zeros(1, 4, 3), labels_2d)
    with pytest.raises(ValueError, match="cls_logits"):
        hard_negative_mining(torch.zeros(1, 5, 1), labels_2d)
    with pytest.raises(ValueError, match="class_labels"):
        hard_negative_mining(torch.zeros(1, 5, 3), labels_2d[0])
    with pytest.raises(ValueError, match="negative_mining_ratio"):
        hard_negative_mining(torch.zeros(1, 5, 3), labels_2d, -1.0)
    with pytest.raises(ValueError, match="min_negative_samples"):
        hard_negative_mining(torch.zeros(1, 5, 3), labels_2d, min_negative_samples=-2)


# --------------------------------------------------------------------------------------------
# inputs that require grad (issue 18)


@pytest.mark.parametrize("dtype", DTYPES)
def test_targets_from_anchors_that_require_grad(dtype, device):
    """Anchors computed by a network (requires_grad) give the same targets, with no gradient."""
    gen = torch.Generator().manual_seed(7)
    anchors = grid_boxes(gen, 24).to(device, dtype)
    labels = random_labels(gen, 3, 4, padding=1).to(device, dtype)
    logits = random_logits(gen, 3, 24, 4, ties=False).to(device, dtype)
    kwargs = dict(cls_preds=logits, negative_mining_ratio=1.0)
    expected = multibox_target(anchors, labels, **kwargs)
    got = multibox_target((anchors.clone().requires_grad_() * 1)[None], labels.clone().requires_grad_(),
                          cls_preds=logits.clone().requires_grad_(), negative_mining_ratio=1.0)
    for e, t in zip(expected, got):
        assert not t.requires_grad and torch.equal(e, t)
    gt = grid_boxes(gen, 5).to(device, dtype)
    assert torch.equal(match_anchors(anchors.clone().requires_grad_(), gt.clone().requires_grad_()),
                       match_anchors(anchors, gt))
