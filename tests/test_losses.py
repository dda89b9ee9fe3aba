"""Tests for pixbox.losses: multibox_loss (SSD hard negative mining and D2L's plain loss) and the
IoU losses (GIoU, DIoU, CIoU)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixbox.losses import (
    MultiBoxLoss,
    complete_box_iou_loss,
    distance_box_iou_loss,
    generalized_box_iou_loss,
    multibox_loss,
)
from pixbox.ops import hard_negative_mining


def book_calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks):
    """D2L 14.7.2.2, transcribed: per-image loss ``[B]``."""
    cls_loss = nn.CrossEntropyLoss(reduction="none")
    bbox_loss = nn.L1Loss(reduction="none")
    batch_size, num_classes = cls_preds.shape[0], cls_preds.shape[2]
    cls = cls_loss(cls_preds.reshape(-1, num_classes), cls_labels.reshape(-1)).reshape(batch_size, -1).mean(dim=1)
    bbox = bbox_loss(bbox_preds * bbox_masks, bbox_labels * bbox_masks).mean(dim=1)
    return cls + bbox


def random_inputs(seed: int, b: int = 3, a: int = 40, c1: int = 3, pos: float = 0.15, dtype=torch.float32,
                  ignore: float = 0.0):
    g = torch.Generator().manual_seed(seed)
    cls_preds = torch.randn(b, a, c1, generator=g, dtype=dtype)
    bbox_preds = torch.randn(b, 4 * a, generator=g, dtype=dtype)
    is_pos = torch.rand(b, a, generator=g) < pos
    cls_labels = torch.where(is_pos, torch.randint(1, c1, (b, a), generator=g), torch.zeros(b, a, dtype=torch.long))
    if ignore:
        cls_labels[(torch.rand(b, a, generator=g) < ignore) & ~is_pos] = -1
    bbox_masks = is_pos[..., None].expand(b, a, 4).reshape(b, 4 * a).to(dtype)
    bbox_labels = torch.randn(b, 4 * a, generator=g, dtype=dtype) * bbox_masks
    return cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks


def softplus(z: float) -> float:
    """Background cross-entropy of the 2-class logits (0, z): log(1 + e^z)."""
    return math.log1p(math.exp(z))


# ---------------------------------------------------------------------------------------------
# D2L mode


@pytest.mark.parametrize("seed", range(4))
def test_d2l_mode_equals_the_books_calc_loss(seed):
    cp, bp, cl, bl, bm = random_inputs(seed)
    want = book_calc_loss(cp, cl, bp, bl, bm)  # [B]
    none = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=None, reduction="none")
    assert torch.allclose(none["loss"], want, atol=1e-6)
    assert torch.allclose(none["cls"] + none["box"], want, atol=1e-6)
    mean = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=None)
    assert torch.allclose(mean["loss"], want.mean(), atol=1e-6)
    total = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=None, reduction="sum")
    assert torch.allclose(total["loss"], want.sum(), atol=1e-5)
    # The class part alone is the mean cross-entropy per image.
    ce = F.cross_entropy(cp.reshape(-1, 3), cl.reshape(-1), reduction="none").reshape(cp.shape[:2]).mean(1)
    assert torch.allclose(none["cls"], ce, atol=1e-6)


def test_d2l_mode_gradient_equals_the_books():
    cp, bp, cl, bl, bm = random_inputs(5, dtype=torch.float64)
    cp1, bp1 = cp.clone().requires_grad_(), bp.clone().requires_grad_()
    cp2, bp2 = cp.clone().requires_grad_(), bp.clone().requires_grad_()
    book_calc_loss(cp1, cl, bp1, bl, bm).mean().backward()
    multibox_loss(cp2, bp2, cl, bl, bm, negative_mining_ratio=None)["loss"].backward()
    assert torch.allclose(cp1.grad, cp2.grad) and torch.allclose(bp1.grad, bp2.grad)


def test_d2l_mode_ignored_anchors_are_left_out_of_the_mean():
    cp, bp, cl, bl, bm = random_inputs(6, ignore=0.3)
    assert (cl == -1).any()
    out = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=None, reduction="none")
    for i in range(cp.shape[0]):
        keep = cl[i] >= 0
        want = F.cross_entropy(cp[i][keep], cl[i][keep])
        assert torch.allclose(out["cls"][i], want, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# SSD mode: hard negative mining


def golden_example():
    """One image, 6 anchors, 1 class. Anchor 0 is positive, logits (0, 0): CE = log 2. The
    negatives have logits (0, z) with z = 3, -1, 2, 0, 5: background CE = softplus(z)."""
    z = torch.tensor([0.0, 3.0, -1.0, 2.0, 0.0, 5.0])
    cls_preds = torch.stack([torch.zeros(6), z], dim=1)[None]  # [1, 6, 2]
    cls_labels = torch.tensor([[1, 0, 0, 0, 0, 0]])
    bbox_preds = torch.full((1, 24), 7.0)  # masked: only anchor 0's offsets count
    bbox_preds[0, :4] = torch.tensor([0.5, -2.0, 0.0, 0.1])
    bbox_labels = torch.zeros(1, 24)
    bbox_masks = torch.zeros(1, 24)
    bbox_masks[0, :4] = 1
    return cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks


def test_mining_keeps_the_hardest_negatives_golden():
    cp, bp, cl, bl, bm = golden_example()
    out = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=2)
    # the two hardest negatives are z = 5 and z = 3; 1 positive
    want_cls = math.log(2) + softplus(5) + softplus(3)
    # smooth L1 (beta 1): 0.5 * 0.5^2, |-2| - 0.5, 0, 0.5 * 0.1^2
    want_box = 0.125 + 1.5 + 0.0 + 0.005
    assert out["cls"].item() == pytest.approx(want_cls, rel=1e-6)
    assert out["box"].item() == pytest.approx(want_box, rel=1e-6)
    assert out["loss"].item() == pytest.approx(want_cls + want_box, rel=1e-6)


def test_mining_gradient_reaches_only_the_kept_anchors():
    cp, bp, cl, bl, bm = golden_example()
    cp.requires_grad_()
    bp.requires_grad_()
    multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=2)["loss"].backward()
    touched = cp.grad[0].abs().sum(dim=1) > 0
    assert touched.tolist() == [True, True, False, False, False, True]
    assert (bp.grad[0, 4:] == 0).all() and (bp.grad[0, :4] != 0).sum() == 3  # 0.0 offset has zero gradient


def test_negative_mining_ratio_changes_the_output():
    cp, bp, cl, bl, bm = golden_example()
    r1 = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=1)["cls"].item()
    r3 = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=3)["cls"].item()
    assert r1 == pytest.approx(math.log(2) + softplus(5), rel=1e-6)
    assert r3 == pytest.approx(math.log(2) + softplus(5) + softplus(3) + softplus(2), rel=1e-6)
    # a ratio above the number of negatives keeps them all
    r9 = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=9)["cls"].item()
    all_neg = sum(softplus(z) for z in [3, -1, 2, 0, 5])
    assert r9 == pytest.approx(math.log(2) + all_neg, rel=1e-6)


def test_box_loss_changes_the_output():
    cp, bp, cl, bl, bm = golden_example()
    l1 = multibox_loss(cp, bp, cl, bl, bm, box_loss="l1")["box"].item()
    assert l1 == pytest.approx(0.5 + 2.0 + 0.0 + 0.1, rel=1e-6)
    # D2L mode with smooth L1: mean over the 4A offsets of one image
    d2l_smooth = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=None, box_loss="smooth_l1")["box"].item()
    assert d2l_smooth == pytest.approx((0.125 + 1.5 + 0.005) / 24, rel=1e-6)


def test_ssd_normalizes_by_the_positives_of_the_whole_batch():
    cp, bp, cl, bl, bm = random_inputs(7, b=4, a=30)
    out = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=3, reduction="none")
    total = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=3, reduction="sum")
    mean = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=3)
    n_pos = int((cl > 0).sum())
    assert out["loss"].shape == (4,)
    assert torch.allclose(out["loss"].sum(), mean["loss"], atol=1e-6)
    assert torch.allclose(total["loss"] / n_pos, mean["loss"], atol=1e-6)
    # Reference: mined labels, then sums / positives.
    mined = hard_negative_mining(cp, cl, 3.0, min_negative_samples=3)
    ce = F.cross_entropy(cp.reshape(-1, 3), mined.reshape(-1), ignore_index=-1, reduction="sum")
    box = F.smooth_l1_loss(bp * bm, bl * bm, reduction="sum")
    assert mean["cls"].item() == pytest.approx(ce.item() / n_pos, rel=1e-5)
    assert mean["box"].item() == pytest.approx(box.item() / n_pos, rel=1e-5)


def test_mining_is_idempotent_on_pre_mined_labels():
    cp, bp, cl, bl, bm = random_inputs(8, b=3, a=50)
    mined = hard_negative_mining(cp, cl, 3.0, min_negative_samples=3)
    assert (mined == -1).any()
    a = multibox_loss(cp, bp, cl, bl, bm)["loss"]
    b = multibox_loss(cp, bp, mined, bl, bm)["loss"]
    assert torch.equal(a, b)


# ---------------------------------------------------------------------------------------------
# No objects, ignored anchors


def test_image_without_objects_keeps_min_negatives():
    cp, bp, cl, bl, bm = golden_example()
    cl = torch.zeros_like(cl)
    bm = torch.zeros_like(bm)
    # default: floor(ratio) = 3 hardest negatives, normalised by max(1, 0 positives) = 1
    out = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=3)
    assert out["cls"].item() == pytest.approx(softplus(5) + softplus(3) + softplus(2), rel=1e-6)
    assert out["box"].item() == 0
    one = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=3, min_negatives=1)
    assert one["cls"].item() == pytest.approx(softplus(5), rel=1e-6)
    none = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=3, min_negatives=0)
    assert none["loss"].item() == 0


@pytest.mark.parametrize("ratio", [3.0, None])
def test_no_objects_in_the_batch_gives_finite_loss_and_gradients(ratio):
    g = torch.Generator().manual_seed(0)
    cp = torch.randn(2, 20, 4, generator=g).requires_grad_()
    bp = torch.randn(2, 80, generator=g).requires_grad_()
    cl = torch.zeros(2, 20, dtype=torch.long)
    out = multibox_loss(cp, bp, cl, torch.zeros(2, 80), torch.zeros(2, 80), negative_mining_ratio=ratio)
    assert all(torch.isfinite(v).all() for v in out.values())
    assert out["loss"].item() > 0 and out["box"].item() == 0
    out["loss"].backward()
    assert torch.isfinite(cp.grad).all() and torch.isfinite(bp.grad).all()
    assert (bp.grad == 0).all() and cp.grad.abs().sum() > 0


def test_all_anchors_ignored_and_zero_anchors_are_finite():
    cp, bp, _, bl, bm = random_inputs(9, b=2, a=10)
    cl = torch.full((2, 10), -1)
    for ratio in (3.0, None):
        out = multibox_loss(cp, bp, cl, bl * 0, bm * 0, negative_mining_ratio=ratio)
        assert out["loss"].item() == 0
    empty = multibox_loss(torch.zeros(2, 0, 3), torch.zeros(2, 0), torch.zeros(2, 0, dtype=torch.long),
                          torch.zeros(2, 0), torch.zeros(2, 0), negative_mining_ratio=None)
    assert empty["loss"].item() == 0


@pytest.mark.parametrize("ratio", [3.0, None])
def test_ignored_anchors_never_contribute(ratio):
    cp, bp, cl, bl, bm = random_inputs(10, b=2, a=30, ignore=0.3)
    ign = cl == -1
    cp2 = cp.clone()
    cp2[ign] = torch.tensor([-20.0, 20.0, 0.0])  # a huge background loss, were it counted
    a = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=ratio)["loss"]
    b = multibox_loss(cp2, bp, cl, bl, bm, negative_mining_ratio=ratio)["loss"]
    assert torch.allclose(a, b)
    cp2.requires_grad_()
    multibox_loss(cp2, bp, cl, bl, bm, negative_mining_ratio=ratio)["loss"].backward()
    assert (cp2.grad[ign] == 0).all()


@pytest.mark.parametrize("ratio", [3.0, None])
@pytest.mark.parametrize("box_loss", ["smooth_l1", "l1"])
def test_gradcheck(ratio, box_loss):
    cp, bp, cl, bl, bm = random_inputs(11, b=2, a=6, c1=3, pos=0.3, dtype=torch.float64)
    cp.requires_grad_()
    bp.requires_grad_()

    def f(c, b):
        return multibox_loss(c, b, cl, bl, bm, negative_mining_ratio=ratio, box_loss=box_loss)["loss"]

    assert torch.autograd.gradcheck(f, (cp, bp))


def test_dtype_follows_the_input():
    for dtype in (torch.float32, torch.float64):
        cp, bp, cl, bl, bm = random_inputs(12, dtype=dtype)
        out = multibox_loss(cp, bp, cl, bl, bm)
        assert out["loss"].dtype == dtype and out["loss"].dim() == 0


@pytest.mark.parametrize("ratio", [3.0, None])
def test_half_precision_predictions_are_upcast(ratio):
    cp, bp, cl, bl, bm = random_inputs(15)
    want = multibox_loss(cp.bfloat16().float(), bp.bfloat16().float(), cl, bl, bm, negative_mining_ratio=ratio)
    cp16, bp16 = cp.bfloat16().requires_grad_(), bp.bfloat16().requires_grad_()
    got = multibox_loss(cp16, bp16, cl, bl, bm, negative_mining_ratio=ratio)
    assert got["loss"].dtype == torch.float32
    assert torch.allclose(got["loss"], want["loss"], atol=1e-6)
    got["loss"].backward()
    assert cp16.grad.dtype == torch.bfloat16 and torch.isfinite(cp16.grad.float()).all()


# ---------------------------------------------------------------------------------------------
# MultiBoxLoss and validation


def test_module_wrapper_equals_the_function():
    cp, bp, cl, bl, bm = random_inputs(13)
    crit = MultiBoxLoss(negative_mining_ratio=2.0, box_loss="l1", reduction="sum", min_negatives=1)
    got = crit(cp, bp, cl, bl, bm)
    want = multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=2.0, box_loss="l1", reduction="sum",
                         min_negatives=1)
    assert all(torch.equal(got[k], want[k]) for k in ("loss", "cls", "box"))
    assert "negative_mining_ratio=2.0" in repr(crit)
    d2l = MultiBoxLoss(negative_mining_ratio=None)
    assert torch.allclose(d2l(cp, bp, cl, bl, bm)["loss"], book_calc_loss(cp, cl, bp, bl, bm).mean())


def test_inputs_are_validated():
    cp, bp, cl, bl, bm = random_inputs(14, b=2, a=5)
    with pytest.raises(ValueError, match=r"cls_preds must have shape \[B, A, C \+ 1\] with C >= 1, got \(2, 5, 1\)"):
        multibox_loss(cp[..., :1], bp, cl, bl, bm)
    with pytest.raises(ValueError, match=r"bbox_preds must have shape \[B, 4A\] = \[2, 20\], got \(2, 19\)"):
        multibox_loss(cp, bp[:, :19], cl, bl, bm)
    with pytest.raises(ValueError, match=r"cls_labels must have shape \[B, A\] = \[2, 5\], got \(2, 4\)"):
        multibox_loss(cp, bp, cl[:, :4], bl, bm)
    with pytest.raises(TypeError, match="cls_labels must be an integer tensor, got dtype torch.float32"):
        multibox_loss(cp, bp, cl.float(), bl, bm)
    with pytest.raises(TypeError, match="bbox_masks must be a floating-point tensor"):
        multibox_loss(cp, bp, cl, bl, bm.long())
    with pytest.raises(ValueError, match=r"cls_labels must be in \[-1, 2\].*got values in \[-2, "):
        multibox_loss(cp, bp, torch.full_like(cl, -2), bl, bm)
    with pytest.raises(ValueError, match=r"cls_labels must be in \[-1, 2\].*got values in \[0, 3\]"):
        multibox_loss(cp, bp, cl.clamp(min=0) + torch.tensor([[3, 0, 0, 0, 0], [0] * 5]), bl, bm)
    with pytest.raises(ValueError, match=r"reduction must be one of .*got 'avg'"):
        multibox_loss(cp, bp, cl, bl, bm, reduction="avg")
    with pytest.raises(ValueError, match=r"box_loss must be one of .*got 'smoothl1'; did you mean 'smooth_l1'\?"):
        multibox_loss(cp, bp, cl, bl, bm, box_loss="smoothl1")
    with pytest.raises(ValueError, match="negative_mining_ratio must be >= 0, got -1"):
        multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=-1)
    with pytest.raises(ValueError, match="min_negatives is only used for hard negative mining"):
        multibox_loss(cp, bp, cl, bl, bm, negative_mining_ratio=None, min_negatives=2)
    with pytest.raises(ValueError, match="min_negatives must be >= 0"):
        multibox_loss(cp, bp, cl, bl, bm, min_negatives=-1)
    with pytest.raises(ValueError, match="min_negatives is only used"):
        MultiBoxLoss(negative_mining_ratio=None, min_negatives=1)
    with pytest.raises(ValueError, match="reduction must be one of"):
        MultiBoxLoss(reduction="avg")


# --------------------------------------------------------------------------------------------
# IoU losses (issue 18): GIoU (Rezatofighi et al., 2019), DIoU and CIoU (Zheng et al., 2020)

IOU_LOSSES = [generalized_box_iou_loss, distance_box_iou_loss, complete_box_iou_loss]


def _terms(a, b, eps):
    """IoU with torchvision's eps on the union, and the enclosing box, of one pair (floats)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    cw, ch = max(a[2], b[2]) - min(a[0], b[0]), max(a[3], b[3]) - min(a[1], b[1])
    return inter / (union + eps), union, cw, ch


def giou_loss_reference(a, b, eps=1e-7, alpha=None):
    """1 - GIoU, GIoU = IoU - (C - U) / C (Rezatofighi et al., algorithm 1)."""
    iou, union, cw, ch = _terms(a, b, eps)
    return 1 - (iou - (cw * ch - union) / (cw * ch + eps))


def diou_loss_reference(a, b, eps=1e-7, alpha=None):
    """1 - IoU + rho^2(b, b_gt) / c^2 (Zheng et al., eq. 7)."""
    iou, _, cw, ch = _terms(a, b, eps)
    rho2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
    return 1 - iou + rho2 / (cw ** 2 + ch ** 2 + eps)


def _angle(box):
    w, h = box[2] - box[0], box[3] - box[1]
    return math.atan(w / h) if h > 0 else (math.pi / 2 if w > 0 else 0.0)


def ciou_loss_reference(a, b, eps=1e-7, alpha=None):
    """1 - IoU + rho^2 / c^2 + alpha v, v = 4 / pi^2 (atan(w_gt / h_gt) - atan(w / h))^2,
    alpha = v / ((1 - IoU) + v) (Zheng et al., eqs. 9-11). As torchvision: ``eps`` enters alpha,
    the DIoU part keeps 1e-7."""
    v = 4 / math.pi ** 2 * (_angle(b) - _angle(a)) ** 2
    iou = _terms(a, b, 1e-7)[0]
    if alpha is None:
        alpha = v / ((1 - iou) + v + eps)
    return diou_loss_reference(a, b) + alpha * v


REFERENCES = {generalized_box_iou_loss: giou_loss_reference, distance_box_iou_loss: diou_loss_reference,
              complete_box_iou_loss: ciou_loss_reference}


def random_box_pairs(seed: int, n: int, integer: bool = False):
    g = torch.Generator().manual_seed(seed)
    if integer:  # ties, touching, contained and degenerate boxes
        xy = torch.randint(0, 8, (2, n, 2), generator=g).double()
        wh = torch.randint(0, 5, (2, n, 2), generator=g).double()
    else:
        xy = torch.rand(2, n, 2, generator=g, dtype=torch.float64) * 10 - 3
        wh = torch.rand(2, n, 2, generator=g, dtype=torch.float64) * 6 + 0.01
    boxes = torch.cat([xy, xy + wh], dim=2)
    return boxes[0], boxes[1]


@pytest.mark.parametrize("fn", IOU_LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", range(6))
def test_iou_losses_match_reference(fn, dtype, seed):
    a, b = random_box_pairs(seed, [0, 1, 40][seed % 3], integer=seed % 2 == 1)
    ref = REFERENCES[fn]
    expected = torch.tensor([ref(p, q) for p, q in zip(a.tolist(), b.tolist())], dtype=torch.float64)
    got = fn(a.to(dtype), b.to(dtype))
    assert got.dtype == dtype and got.shape == (a.shape[0],)
    assert not torch.isnan(got).any()
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got.double(), expected, **tol)
    torch.testing.assert_close(fn(b.to(dtype), a.to(dtype)), got)  # symmetric
    if a.shape[0]:
        torch.testing.assert_close(fn(a.to(dtype), b.to(dtype), reduction="sum").double(), expected.sum(), **tol)
        torch.testing.assert_close(fn(a.to(dtype), b.to(dtype), reduction="mean").double(), expected.mean(), **tol)


def test_iou_losses_golden():
    """torchvision's test values (hand computed): box1 [-1,-1,1,1] contains box2 [0,0,1,1] ..."""
    box1, box2 = torch.tensor([-1.0, -1, 1, 1]), torch.tensor([0.0, 0, 1, 1])
    box3, box4 = torch.tensor([0.0, 1, 1, 2]), torch.tensor([1.0, 1, 2, 2])
    pairs1, pairs2 = torch.stack([box2, box2]), torch.stack([box3, box4])
    # GIoU: quarter box inside (IoU 1/4), side by side (GIoU 0), diagonal (GIoU -1/2).
    assert [generalized_box_iou_loss(box2, b).item() for b in (box2, box3, box4)] == pytest.approx([0, 1.0, 1.5], abs=1e-6)
    assert generalized_box_iou_loss(box1, box2).item() == pytest.approx(0.75)
    assert generalized_box_iou_loss(pairs1, pairs2, reduction="sum").item() == pytest.approx(2.5)
    for fn in (distance_box_iou_loss, complete_box_iou_loss):  # same aspect ratios: CIoU = DIoU
        assert [fn(box1, b).item() for b in (box1, box2, box3, box4)] == pytest.approx([0, 0.8125, 1.1923, 1.25],
                                                                                      abs=1e-4)
        assert fn(pairs1, pairs2, reduction="mean").item() == pytest.approx(1.225, abs=1e-4)
    # Different aspect ratios: CIoU adds alpha * v. [0,0,2,2] vs [0,0,4,2]: IoU 1/2, rho^2 1, c^2 20.
    a, b = torch.tensor([0.0, 0, 2, 2], dtype=torch.float64), torch.tensor([0.0, 0, 4, 2], dtype=torch.float64)
    v = 4 / math.pi ** 2 * (math.atan(2) - math.pi / 4) ** 2
    assert complete_box_iou_loss(a, b, eps=0.0).item() == pytest.approx(1 - 0.5 + 1 / 20 + v / (0.5 + v) * v, abs=1e-6)


@pytest.mark.parametrize("fn", IOU_LOSSES, ids=lambda f: f.__name__)
def test_iou_losses_dtypes_shapes_and_broadcasting(fn):
    a, b = random_box_pairs(0, 5, integer=True)
    ref = fn(a.float(), b.float())
    for dtype in (torch.float16, torch.bfloat16, torch.int32, torch.int64):  # computed in float32, as torchvision
        out = fn(a.to(dtype), b.to(dtype))
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert fn(a, b).dtype == torch.float64
    single = fn(a[0].float(), b[0].float())
    assert single.shape == () and single.item() == ref[0].item()
    torch.testing.assert_close(fn(a.float(), b[0].float()), fn(a.float(), b[0].float().expand(5, 4)))


@pytest.mark.parametrize("fn", IOU_LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_iou_losses_empty_inputs(fn, dtype):
    a = torch.zeros(0, 4, dtype=dtype, requires_grad=True)
    b = torch.zeros(0, 4, dtype=dtype, requires_grad=True)
    loss = fn(a, b, reduction="mean")
    assert loss.item() == 0.0 and loss.dtype == torch.float32
    loss.backward()  # still connected to the inputs
    assert a.grad is not None and b.grad is not None
    assert fn(a, b).shape == (0,) and fn(a, b, reduction="sum").item() == 0.0


@pytest.mark.parametrize("fn", [generalized_box_iou_loss, distance_box_iou_loss], ids=lambda f: f.__name__)
def test_giou_and_diou_losses_gradcheck(fn):
    a = torch.tensor([[0.0, 0.1, 2.3, 2.0], [1.05, 0.95, 4.2, 3.1], [6.0, 6.2, 7.1, 8.3]], dtype=torch.float64)
    b = torch.tensor([[1.1, 0.55, 3.25, 2.7], [5.0, 5.05, 6.45, 7.0], [6.5, 5.0, 9.0, 7.7]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p, q: fn(p, q, reduction="sum"), (a.requires_grad_(), b.requires_grad_()))


def test_ciou_loss_gradient_keeps_alpha_constant():
    """alpha is a constant for autograd: the gradient is that of the reference with alpha frozen."""
    a = torch.tensor([[0.0, 0.1, 2.3, 2.0], [1.05, 0.95, 4.2, 3.1]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[1.1, 0.55, 3.25, 2.7], [0.5, 1.5, 3.0, 5.5]], dtype=torch.float64)
    complete_box_iou_loss(a, b, reduction="sum").backward()
    rows_a, rows_b = a.detach().tolist(), b.tolist()
    alphas = []
    for p, q in zip(rows_a, rows_b):
        v = 4 / math.pi ** 2 * (_angle(q) - _angle(p)) ** 2
        alphas.append(v / ((1 - _terms(p, q, 1e-7)[0]) + v + 1e-7))
    h = 1e-6
    for i in range(2):
        for k in range(4):
            up, down = [r[:] for r in rows_a], [r[:] for r in rows_a]
            up[i][k] += h
            down[i][k] -= h
            numeric = (ciou_loss_reference(up[i], rows_b[i], alpha=alphas[i])
                       - ciou_loss_reference(down[i], rows_b[i], alpha=alphas[i])) / (2 * h)
            assert abs(a.grad[i, k].item() - numeric) < 1e-6, (i, k)


def test_iou_losses_eps_and_reduction_change_the_output():
    a, b = torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([[2.0, 0, 3, 2]])
    for fn in IOU_LOSSES:
        assert fn(a, b, eps=1.0).item() != fn(a, b).item()
        assert fn(a, b).shape == (1,) and fn(a, b, reduction="sum").shape == ()
    # complete_box_iou_loss: eps enters alpha only, as torchvision's (the DIoU part keeps 1e-7).
    ref = ciou_loss_reference(a[0].tolist(), b[0].tolist(), eps=0.5)
    assert complete_box_iou_loss(a.double(), b.double(), eps=0.5).item() == pytest.approx(ref, abs=1e-12)


def test_iou_losses_bad_input():
    good = torch.tensor([[0.0, 0, 1, 1]])
    for fn in IOU_LOSSES:
        with pytest.raises(ValueError, match="Invalid reduction.*'none', 'mean', 'sum'.*'xyz'"):
            fn(good, good, reduction="xyz")
        with pytest.raises(ValueError, match="boxes2 must be well-formed"):
            fn(good, torch.tensor([[1.0, 0, 0, 1]]))  # x2 < x1
        with pytest.raises(ValueError, match="boxes1"):
            fn(torch.tensor([[0.0, 0, float("nan"), 1]]), good)
        with pytest.raises(ValueError, match="boxes1 must have shape"):
            fn(torch.zeros(2, 3), good)
        with pytest.raises(ValueError, match="aligned pairs"):
            fn(torch.zeros(3, 4), torch.zeros(2, 4))
        with pytest.raises(TypeError, match="boxes2"):
            fn(good, torch.ones(1, 4, dtype=torch.bool))
        with pytest.raises(ValueError, match="eps"):
            fn(good, good, eps=-1.0)
