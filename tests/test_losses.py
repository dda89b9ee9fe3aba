"""Tests for pixbox.losses: multibox_loss (SSD hard negative mining and D2L's plain loss)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixbox.losses import MultiBoxLoss, multibox_loss
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
