"""Tests for pixbox.models.rcnn.rpn: anchors, head layout, matching, sampling, losses, proposals, training."""

from __future__ import annotations

import math

import pytest
import reference
import torch
from torch import nn

from pixbox.models.rcnn.rpn import (
    RPN_STDS,
    RegionProposalNetwork,
    RPNHead,
    flatten_rpn_outputs,
    generate_proposals,
    match_rpn_anchors,
    num_rpn_anchors_per_cell,
    rpn_anchors,
    rpn_loss,
    rpn_targets,
    sample_rpn_anchors,
)
from pixbox.ops import box_iou, decode_boxes, encode_boxes, match_by_iou, sample_balanced

SIZES = (32, 64, 128)
RATIOS = (0.5, 1.0, 2.0)


class _FixedHead(nn.Module):
    """A head returning given outputs (ignores its input), to test the layout end to end."""

    def __init__(self, logits, deltas):
        super().__init__()
        self.logits, self.deltas = logits, deltas
        self.num_anchors = logits.shape[1]

    def forward(self, x):
        return self.logits, self.deltas


def _slow_anchors(h, w, stride, sizes, ratios):
    rows = []
    for i in range(h):
        for j in range(w):
            cx, cy = (j + 0.5) * stride, (i + 0.5) * stride
            for r in ratios:
                for z in sizes:
                    bw, bh = z * math.sqrt(r), z / math.sqrt(r)
                    rows.append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    return torch.tensor(rows, dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# Anchors and head layout


def test_rpn_anchors_golden_values():
    a = rpn_anchors((1, 2), 16, (32,), (1.0, 4.0))
    expected = torch.tensor([
        [-8.0, -8.0, 24.0, 24.0],  # cell (0, 0), ratio 1: 32 x 32 around (8, 8)
        [-24.0, 0.0, 40.0, 16.0],  # cell (0, 0), ratio 4: 64 x 16
        [8.0, -8.0, 40.0, 24.0],  # cell (0, 1) around (24, 8)
        [-8.0, 0.0, 56.0, 16.0],
    ])
    assert a.dtype == torch.float32
    torch.testing.assert_close(a, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_rpn_anchors_match_loop_reference(dtype, device):
    feat = torch.zeros(1, 3, 5, 7, dtype=dtype, device=device)
    a = rpn_anchors(feat, 16, SIZES, RATIOS)
    assert a.shape == (5 * 7 * 9, 4) and a.dtype == dtype and a.device.type == device
    torch.testing.assert_close(a.cpu().double(), _slow_anchors(5, 7, 16, SIZES, RATIOS), rtol=1e-6, atol=1e-4)
    # Area size^2 and aspect ratio w / h = r for every shape.
    wh = (a[:9, 2:] - a[:9, :2]).double().cpu()
    torch.testing.assert_close(wh.prod(1), torch.tensor([z * z for r in RATIOS for z in SIZES], dtype=torch.float64))
    torch.testing.assert_close(wh[:, 0] / wh[:, 1], torch.tensor([r for r in RATIOS for _ in SIZES], dtype=torch.float64))


def test_rpn_anchors_stride_pair_and_empty():
    a = rpn_anchors((2, 2), (8, 16), (10,), (1.0,))
    torch.testing.assert_close(a[:, :2] + 5, torch.tensor([[8.0, 4.0], [24.0, 4.0], [8.0, 12.0], [24.0, 12.0]]))
    assert rpn_anchors((0, 4), 16, SIZES, RATIOS).shape == (0, 4)
    assert num_rpn_anchors_per_cell((32, 64, 128, 256), RATIOS) == 12


def test_head_shapes_and_init(device):
    torch.manual_seed(0)
    head = RPNHead(16, 9).to(device)
    logits, deltas = head(torch.randn(2, 16, 6, 5, device=device))
    assert logits.shape == (2, 9, 6, 5) and deltas.shape == (2, 36, 6, 5) and logits.device.type == device
    assert float(head.cls_logits.weight.detach().std()) == pytest.approx(0.01, rel=0.3)
    assert float(head.bbox_pred.bias.detach().abs().sum()) == 0.0
    d64 = head.double()(torch.randn(1, 16, 3, 3, dtype=torch.float64, device=device))[1]
    assert d64.dtype == torch.float64


def test_flatten_layout_matches_anchor_order(device):
    b, a, h, w = 2, 9, 3, 4
    logits = torch.randn(b, a, h, w, device=device)
    deltas = torch.randn(b, 4 * a, h, w, device=device)
    obj, box = flatten_rpn_outputs(logits, deltas)
    assert obj.shape == (b, h * w * a) and box.shape == (b, h * w * a, 4)
    for bi, ai, i, j in [(0, 0, 0, 0), (1, 5, 2, 3), (0, 8, 1, 2), (1, 3, 0, 1)]:
        row = (i * w + j) * a + ai
        assert obj[bi, row] == logits[bi, ai, i, j]
        torch.testing.assert_close(box[bi, row], deltas[bi, 4 * ai:4 * ai + 4, i, j])


def test_head_channel_selects_its_anchor_end_to_end(device):
    # Only anchor a = 4 (ratio 1, size 64) of cell (i, j) = (2, 1) scores high, and its dx channel
    # moves it right by 0.25 of its width: the top proposal must be exactly that anchor, shifted.
    a, h, w, stride = 9, 4, 5, 16
    logits = torch.full((1, a, h, w), -5.0)
    logits[0, 4, 2, 1] = 5.0
    deltas = torch.zeros(1, 4 * a, h, w)
    deltas[0, 4 * 4, 2, 1] = 0.25
    rpn = RegionProposalNetwork(_FixedHead(logits.to(device), deltas.to(device)), SIZES, RATIOS, stride).eval()
    proposals, losses = rpn(torch.zeros(1, 8, h, w, device=device), [(200, 200)])
    cx, cy = 1.5 * stride + 16.0, 2.5 * stride
    assert proposals[0].device.type == device
    torch.testing.assert_close(proposals[0][0].cpu(), torch.tensor([cx - 32, cy - 32, cx + 32, cy + 32]))
    assert losses == {}


# ---------------------------------------------------------------------------------------------
# Matching, targets and sampling


def test_match_thresholds_on_hand_made_boxes(device):
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]], dtype=torch.float64, device=device)
    anchors = torch.tensor([
        [0, 0, 10, 10],  # IoU 1     -> positive
        [0, 0, 10, 7],  # IoU 0.7   -> positive (>=)
        [0, 0, 10, 6.9],  # IoU 0.69 -> ignored
        [0, 0, 10, 3],  # IoU 0.3   -> ignored (not < 0.3)
        [0, 0, 10, 2.9],  # IoU 0.29 -> background
        [50, 50, 60, 60],  # IoU 0    -> background
    ], dtype=torch.float64, device=device)
    m = match_rpn_anchors(anchors, gt)
    assert m.tolist() == [0, 0, -2, -2, -1, -1]
    # Thresholds are parameters: fg 0.9 ignores the second anchor, bg 0.5 makes anchor 3 background.
    assert match_rpn_anchors(anchors, gt, 0.9, 0.5).tolist() == [0, -2, -2, -1, -1, -1]
    # No ground truth: every anchor is background.
    assert match_rpn_anchors(anchors, gt[:0]).tolist() == [-1] * 6


def test_low_quality_matches_with_ties(device):
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [50.0, 50.0, 60.0, 60.0], [200.0, 200.0, 210.0, 210.0]], device=device)
    anchors = torch.tensor([
        [0, 0, 10, 10],  # gt 0, IoU 1
        [50, 50, 60, 65],  # gt 1, IoU 2/3 (its best) -> positive by low quality
        [50, 45, 60, 60],  # gt 1, IoU 2/3 as well (a tie) -> positive too
        [50, 50, 60, 70],  # gt 1, IoU 1/2 -> ignored
        [100, 100, 120, 120],  # nothing
    ], dtype=torch.float32, device=device)
    m = match_rpn_anchors(anchors, gt)
    assert m.tolist() == [0, 1, 1, -2, -1]  # gt 2 overlaps nothing: no anchor is forced on it
    assert match_rpn_anchors(anchors, gt, allow_low_quality_matches=False).tolist() == [0, -2, -2, -2, -1]


def test_low_quality_match_takes_the_anchors_own_best_gt():
    # The anchor is gt 0's best (IoU 0.5) but overlaps gt 1 more (0.6): it is matched to gt 1.
    gt = torch.tensor([[0.0, 0.0, 10.0, 20.0], [0.0, 4.0, 10.0, 10.0]], dtype=torch.float64)
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 30.0, 10.0, 40.0]], dtype=torch.float64)
    iou = box_iou(gt, anchors)
    assert iou[0, 0] == 0.5 and iou[1, 0] == 0.6
    assert match_rpn_anchors(anchors, gt).tolist() == [1, -1]


@pytest.mark.parametrize("seed", range(6))
def test_match_rpn_anchors_is_the_matcher(seed, device):
    gen = torch.Generator().manual_seed(seed)

    def grid(n):  # integer boxes: IoU ties and IoU exactly at the thresholds are common
        xy = torch.randint(0, 6, (n, 2), generator=gen).double()
        return torch.cat([xy, xy + torch.randint(0, 4, (n, 2), generator=gen)], 1)

    anchors, gt = grid(40), grid(5)
    iou = box_iou(gt, anchors)  # [G, N]
    for fg, bg in ((0.7, 0.3), (0.5, 0.5), (1 / 3, 0.25), (0.0, 0.0)):
        for low in (True, False):
            got = match_rpn_anchors(anchors.to(device), gt.to(device), fg, bg, allow_low_quality_matches=low)
            assert got.device.type == device
            assert got.tolist() == reference.matcher_reference(iou, fg, bg, low).tolist(), (fg, bg, low)
            assert torch.equal(got.cpu(), match_by_iou(iou, fg, bg, allow_low_quality_matches=low))


def test_rpn_targets_labels_and_round_trip(device):
    anchors = rpn_anchors(torch.zeros(1, 1, 4, 4, device=device), 16, SIZES, RATIOS)
    gt = [torch.tensor([[10.0, 12.0, 50.0, 60.0], [30.0, 5.0, 62.0, 30.0]], device=device),
          torch.zeros(0, 4, device=device)]
    labels, target = rpn_targets(anchors, gt)
    assert labels.shape == (2, anchors.shape[0]) and target.shape == (2, anchors.shape[0], 4)
    assert labels.device.type == target.device.type == device
    m = match_rpn_anchors(anchors, gt[0])
    assert labels[0].tolist() == [1 if v >= 0 else (0 if v == -1 else -1) for v in m.tolist()]
    assert bool((labels[1] == 0).all()) and float(target[1].abs().sum()) == 0
    pos = labels[0] == 1
    assert int(pos.sum()) >= 2  # at least each box's best anchor
    decoded = decode_boxes(anchors[pos], target[0][pos], (0, 0, 0, 0), RPN_STDS)
    torch.testing.assert_close(decoded, gt[0][m[pos]], rtol=1e-5, atol=1e-4)
    assert float(target[0][~pos].abs().sum()) == 0
    # Targets as torchvision-style dicts give the same result.
    as_dicts = [{"boxes": gt[0]}, {"boxes": gt[1], "labels": torch.zeros(0, device=device)}]
    labels2, target2 = rpn_targets(anchors, as_dicts)
    assert torch.equal(labels2, labels) and torch.equal(target2, target)


@pytest.mark.parametrize("num_pos, num_neg, size, frac, want_pos, want_neg", [
    (300, 1000, 256, 0.5, 128, 128),
    (10, 1000, 256, 0.5, 10, 246),
    (5, 20, 256, 0.5, 5, 20),
    (300, 1000, 256, 0.25, 64, 192),
    (300, 1000, 100, 0.0, 0, 100),
])
def test_sampling_counts_and_fraction(num_pos, num_neg, size, frac, want_pos, want_neg, device):
    torch.manual_seed(0)
    n = num_pos + num_neg + 50
    labels = torch.full((2, n), -1, dtype=torch.long)
    for i in range(2):
        perm = torch.randperm(n)
        labels[i, perm[:num_pos]] = 1
        labels[i, perm[num_pos:num_pos + num_neg]] = 0
    labels = labels.to(device)
    pos, neg = sample_rpn_anchors(labels, size, frac)
    assert pos.device.type == neg.device.type == device
    assert pos.sum(1).tolist() == [want_pos] * 2 and neg.sum(1).tolist() == [want_neg] * 2
    assert bool((labels[pos] == 1).all()) and bool((labels[neg] == 0).all())
    assert not bool((pos & neg).any())


def test_sampling_is_sample_balanced_image_by_image(device):
    gen = torch.Generator().manual_seed(0)
    labels = torch.tensor([-1, 0, 1])[torch.randint(0, 3, (3, 200), generator=gen)]
    labels[1, labels[1] == 1] = 0  # an image without positives
    labels = labels.to(device)  # both draw from the global generator of this device
    torch.manual_seed(4)
    pos, neg = sample_rpn_anchors(labels, 32, 0.25)
    torch.manual_seed(4)
    for i in range(3):
        p, n = sample_balanced(labels[i], 32, 0.25)
        assert pos[i].nonzero().flatten().tolist() == sorted(p.tolist())
        assert neg[i].nonzero().flatten().tolist() == sorted(n.tolist())


def test_sampling_is_random_and_reproducible(device):
    labels = torch.zeros(1, 1000, dtype=torch.long, device=device)
    labels[0, :500] = 1
    torch.manual_seed(1)
    a = sample_rpn_anchors(labels, 64, 0.5)
    torch.manual_seed(1)
    b = sample_rpn_anchors(labels, 64, 0.5)
    torch.manual_seed(2)
    c = sample_rpn_anchors(labels, 64, 0.5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # Not just the first ones: positives come from across the 500 candidates.
    assert int(a[0][0].nonzero().max()) > 100


# ---------------------------------------------------------------------------------------------
# Losses


def test_loss_matches_hand_formula(device):
    torch.manual_seed(0)
    obj = torch.randn(2, 30, dtype=torch.float64)
    pred = torch.randn(2, 30, 4, dtype=torch.float64)
    target = torch.randn(2, 30, 4, dtype=torch.float64) * 0.2
    pos = torch.zeros(2, 30, dtype=torch.bool)
    neg = torch.zeros_like(pos)
    pos[0, [1, 4]] = True
    pos[1, 7] = True
    neg[0, [0, 2, 3]] = True
    neg[1, [10, 11, 12, 13]] = True
    losses = rpn_loss(*(t.to(device) for t in (obj, pred, target, pos, neg)))
    assert all(v.device.type == device for v in losses.values())

    def bce(x, y):
        p = 1 / (1 + math.exp(-x))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    def sl1(d, beta=1 / 9):
        d = abs(d)
        return 0.5 * d * d / beta if d < beta else d - 0.5 * beta

    sampled = [(b, i) for b in range(2) for i in range(30) if pos[b, i] or neg[b, i]]
    want_obj = sum(bce(float(obj[b, i]), float(pos[b, i])) for b, i in sampled) / len(sampled)
    want_box = sum(sl1(float(pred[b, i, k] - target[b, i, k]))
                   for b in range(2) for i in range(30) if pos[b, i] for k in range(4)) / len(sampled)
    assert losses["rpn_objectness"].item() == pytest.approx(want_obj, rel=1e-9)
    assert losses["rpn_box"].item() == pytest.approx(want_box, rel=1e-9)


def test_losses_finite_and_empty_image_pushes_objectness_down(device):
    torch.manual_seed(0)
    rpn = RegionProposalNetwork(RPNHead(8, 9), SIZES, RATIOS, 16).to(device)
    feats = torch.randn(2, 8, 6, 6).to(device)
    targets = [torch.tensor([[20.0, 20.0, 70.0, 60.0]], device=device), torch.zeros(0, 4, device=device)]
    _, losses = rpn(feats, [(96, 96), (90, 80)], targets)
    assert set(losses) == {"rpn_objectness", "rpn_box"}
    assert all(bool(torch.isfinite(v)) for v in losses.values())
    assert losses["rpn_box"].item() > 0

    # Only an empty image: no box loss, and a gradient step lowers every sampled logit.
    logits, deltas = rpn.head(feats[1:])
    obj, box = flatten_rpn_outputs(logits, deltas)
    obj = obj.detach().requires_grad_(True)
    anchors = rpn.anchors(feats)
    labels, target = rpn_targets(anchors, targets[1:])
    pos, neg = sample_rpn_anchors(labels, 256, 0.5)
    assert int(pos.sum()) == 0 and int(neg.sum()) == 256
    losses = rpn_loss(obj, box, target, pos, neg)
    assert losses["rpn_box"].item() == 0.0
    assert losses["rpn_objectness"].item() > 0
    losses["rpn_objectness"].backward()
    assert bool((obj.grad[neg] > 0).all()) and float(obj.grad[~neg].abs().sum()) == 0


# ---------------------------------------------------------------------------------------------
# Proposals


def _slow_proposals(anchors, obj, deltas, size, pre, post, thr, min_size):
    scores = obj.double().tolist()
    order = sorted(range(len(scores)), key=lambda i: -scores[i])[:pre]
    boxes = reference.decode_boxes(anchors[order], deltas[order], (0, 0, 0, 0), (1, 1, 1, 1))
    h, w = size
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
    sc = torch.tensor([scores[i] for i in order], dtype=torch.float64)
    ok = [k for k in range(len(order)) if boxes[k, 2] - boxes[k, 0] >= min_size and boxes[k, 3] - boxes[k, 1] >= min_size]
    boxes, sc = boxes[ok], sc[ok]
    keep = reference.nms(boxes, sc, thr)[:post]
    return boxes[keep], sc[keep]


@pytest.mark.parametrize("seed", [0, 1])
def test_generate_proposals_matches_slow_reference(seed, device):
    torch.manual_seed(seed)
    anchors = rpn_anchors((6, 7), 16, SIZES, RATIOS).double()
    n = anchors.shape[0]
    obj = torch.randn(2, n, dtype=torch.float64)
    deltas = torch.randn(2, n, 4, dtype=torch.float64) * 0.3
    deltas[0, :5, 2] = -20.0  # tiny boxes, dropped by min_size
    sizes = [(96, 112), (70, 50)]
    boxes, scores = generate_proposals(anchors.to(device), obj.to(device), deltas.to(device), sizes, pre_nms_topk=200,
                                       post_nms_topk=40, nms_threshold=0.6, min_size=1.0)
    for i in range(2):
        want_b, want_s = _slow_proposals(anchors, obj[i], deltas[i], sizes[i], 200, 40, 0.6, 1.0)
        assert boxes[i].device.type == scores[i].device.type == device
        torch.testing.assert_close(boxes[i].cpu(), want_b)
        torch.testing.assert_close(scores[i].cpu(), torch.sigmoid(want_s))


def test_proposal_properties_and_parameters(device):
    torch.manual_seed(0)
    rpn = RegionProposalNetwork(RPNHead(8, 9), SIZES, RATIOS, 16, post_nms_topk_train=50, post_nms_topk_test=7,
                                nms_threshold=0.5)
    with torch.no_grad():  # give the random head spread-out outputs
        rpn.head.cls_logits.weight.normal_(std=1.0)
        rpn.head.bbox_pred.weight.normal_(std=0.2)
    rpn = rpn.to(device)
    feats = torch.randn(2, 8, 8, 10).to(device).requires_grad_()
    sizes = [(128, 160), (90, 70)]
    proposals, _ = rpn(feats, sizes)
    assert [p.shape[0] for p in proposals] == [50, 50]
    for p, (h, w) in zip(proposals, sizes):
        assert not p.requires_grad
        assert bool((p[:, 0] >= 0).all() and (p[:, 1] >= 0).all() and (p[:, 2] <= w).all() and (p[:, 3] <= h).all())
        assert bool(((p[:, 2:] - p[:, :2]) >= 1e-3).all())
        iou = box_iou(p, p) - torch.eye(p.shape[0], device=device)
        assert float(iou.max()) <= 0.5
    # Sorted by score: the proposals come out in generate_proposals' order, whose scores decrease.
    logits, deltas = rpn.head(feats)
    obj, box = flatten_rpn_outputs(logits, deltas)
    ref, scores = generate_proposals(rpn.anchors(feats), obj, box, sizes, pre_nms_topk=2000, post_nms_topk=50,
                                     nms_threshold=0.5)
    for p, r, s in zip(proposals, ref, scores):
        assert torch.equal(p, r) and bool((s[:-1] >= s[1:]).all())
    # Eval mode uses the _test top-k; a bigger NMS threshold keeps more boxes.
    rpn.eval()
    assert [p.shape[0] for p in rpn(feats, sizes)[0]] == [7, 7]
    few = generate_proposals(rpn.anchors(feats), obj, box, sizes, post_nms_topk=2000, nms_threshold=0.3)[0]
    many = generate_proposals(rpn.anchors(feats), obj, box, sizes, post_nms_topk=2000, nms_threshold=0.9)[0]
    assert few[0].shape[0] < many[0].shape[0]
    small = generate_proposals(rpn.anchors(feats), obj, box, sizes, pre_nms_topk=20, post_nms_topk=2000)[0]
    assert small[0].shape[0] <= 20


def test_float64_features_give_float64_proposals(device):
    torch.manual_seed(0)
    rpn = RegionProposalNetwork(RPNHead(4, 9), SIZES, RATIOS, 8).double().to(device)
    feats = torch.randn(1, 4, 5, 5, dtype=torch.float64, device=device)
    proposals, losses = rpn(feats, [(40, 40)], [torch.tensor([[5.0, 5.0, 30.0, 25.0]], device=device)])
    assert proposals[0].dtype == torch.float64 and losses["rpn_box"].dtype == torch.float64
    assert proposals[0].device.type == losses["rpn_box"].device.type == device


# ---------------------------------------------------------------------------------------------
# Training


def test_training_finds_the_box(device):
    torch.manual_seed(0)
    backbone = nn.Sequential(  # a tiny fixed conv backbone to stride 16
        nn.Conv2d(3, 16, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=4, padding=1), nn.ReLU()
    ).requires_grad_(False)
    image = torch.rand(1, 3, 128, 160)
    gt = torch.tensor([[40.0, 30.0, 110.0, 100.0]], device=device)  # two anchors have IoU >= 0.7 (0.745, 0.703)
    with torch.no_grad():
        feats = backbone(image)  # [1, 32, 8, 10]
        feats = (feats / feats.std()).to(device)
    rpn = RegionProposalNetwork(RPNHead(32, 9), SIZES, RATIOS, 16, batch_size_per_image=64).to(device)
    opt = torch.optim.Adam(rpn.parameters(), lr=0.01)

    def best_rank():
        rpn.eval()
        proposals, _ = rpn(feats, [(128, 160)])
        rpn.train()
        iou = box_iou(proposals[0][:10], gt)[:, 0]
        return int(iou.ge(0.7).nonzero()[0, 0]) if bool(iou.ge(0.7).any()) else None

    assert best_rank() is None  # untrained: the box is not among the top 10
    for _ in range(60):
        _, losses = rpn(feats, [(128, 160)], [gt])
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    assert losses["rpn_objectness"].item() < 0.2
    rank = best_rank()
    assert rank is not None and rank < 10


# ---------------------------------------------------------------------------------------------
# Bad arguments


def test_bad_arguments_name_the_argument():
    head = RPNHead(4, 9)
    with pytest.raises(ValueError, match="head.num_anchors"):
        RegionProposalNetwork(RPNHead(4, 3), SIZES, RATIOS, 16)
    with pytest.raises(TypeError, match="head"):
        RegionProposalNetwork("head", SIZES, RATIOS, 16)
    with pytest.raises(ValueError, match="stride"):
        RegionProposalNetwork(head, SIZES, RATIOS, 0)
    with pytest.raises(ValueError, match="sizes"):
        RegionProposalNetwork(head, (32, -1, 4), RATIOS, 16)
    with pytest.raises(ValueError, match="bg_iou_threshold"):
        RegionProposalNetwork(head, SIZES, RATIOS, 16, bg_iou_threshold=0.8)
    with pytest.raises(ValueError, match="positive_fraction"):
        RegionProposalNetwork(head, SIZES, RATIOS, 16, positive_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size_per_image"):
        RegionProposalNetwork(head, SIZES, RATIOS, 16, batch_size_per_image=0)
    with pytest.raises(ValueError, match="nms_threshold"):
        RegionProposalNetwork(head, SIZES, RATIOS, 16, nms_threshold=-0.1)
    with pytest.raises(TypeError, match="post_nms_topk_test"):
        RegionProposalNetwork(head, SIZES, RATIOS, 16, post_nms_topk_test=2.5)
    with pytest.raises(ValueError, match="in_channels"):
        RPNHead(0, 9)
    rpn = RegionProposalNetwork(head, SIZES, RATIOS, 16)
    feats = torch.zeros(2, 4, 3, 3)
    with pytest.raises(ValueError, match="image_sizes"):
        rpn(feats, [(48, 48)])
    with pytest.raises(ValueError, match=r"image_sizes\[1\]"):
        rpn(feats, [(48, 48), (0, 48)])
    with pytest.raises(ValueError, match="targets"):
        rpn(feats, [(48, 48)] * 2, [torch.zeros(0, 4)])
    with pytest.raises(ValueError, match=r"targets\[0\] boxes"):
        rpn(feats, [(48, 48)] * 2, [torch.tensor([[5.0, 5.0, 1.0, 9.0]]), torch.zeros(0, 4)])
    with pytest.raises(ValueError, match="features"):
        rpn(torch.zeros(4, 3, 3), [(48, 48)])
    with pytest.raises(ValueError, match="x must have shape"):
        rpn(torch.zeros(2, 5, 3, 3), [(48, 48)] * 2)
    with pytest.raises(ValueError, match="deltas"):
        flatten_rpn_outputs(torch.zeros(1, 9, 3, 3), torch.zeros(1, 9, 3, 3))
    with pytest.raises(ValueError, match="fg_iou_threshold"):
        match_rpn_anchors(torch.zeros(1, 4), torch.zeros(1, 4), fg_iou_threshold=1.2)
    with pytest.raises(ValueError, match="labels"):
        sample_rpn_anchors(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="pre_nms_topk"):
        generate_proposals(torch.zeros(1, 4), torch.zeros(1, 1), torch.zeros(1, 1, 4), [(4, 4)], pre_nms_topk=0)
    with pytest.raises(TypeError, match="pos_mask"):
        z2, z4 = torch.zeros(1, 2), torch.zeros(1, 2, 4)
        rpn_loss(z2, z4, z4, z2, torch.zeros(1, 2, dtype=torch.bool))
    with pytest.raises(ValueError, match="stride"):
        rpn_anchors((2, 2), (16, 0), SIZES, RATIOS)


def test_encode_used_with_unit_stds():
    # The RPN offsets are plain (dx, dy, log dw, log dh): a box twice as wide as its anchor, its
    # centre half an anchor width to the right, is (0.5, 0, log 2, 0).
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    labels, target = rpn_targets(anchors, [torch.tensor([[0.0, 0.0, 20.0, 10.0]])])
    torch.testing.assert_close(target[0, 0], torch.tensor([0.5, 0.0, math.log(2.0), 0.0]))
    torch.testing.assert_close(target[0, 0], encode_boxes(anchors[:1], torch.tensor([[0.0, 0.0, 20.0, 10.0]]),
                                                           (0, 0, 0, 0), (1, 1, 1, 1))[0])
