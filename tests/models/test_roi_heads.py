"""Tests for pixbox.models.rcnn.roi_heads: proposal matching, sampling, losses, and inference output."""

from __future__ import annotations

import pytest
import reference
import torch

import pixbox.ops
from pixbox.models.rcnn.roi_heads import RoIHeads, match_proposals, sample_balanced
from pixbox.ops import box_iou, match_by_iou


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_match_proposals_thresholds(device):
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]], device=device)
    props = torch.tensor([[0.0, 0.0, 10.0, 10.0],     # IoU 1 with gt 0
                          [0.0, 0.0, 10.0, 5.0],      # IoU 0.5 with gt 0
                          [0.0, 0.0, 10.0, 4.0],      # IoU 0.4
                          [21.0, 21.0, 30.0, 30.0],   # IoU 0.81 with gt 1
                          [50.0, 50.0, 60.0, 60.0]], device=device)  # no overlap
    matched, state = match_proposals(props, gt, 0.5, 0.3)
    assert matched.device.type == state.device.type == device
    assert matched[[0, 1, 2, 3]].tolist() == [0, 0, 0, 1]
    assert state.tolist() == [1, 1, -1, 1, 0]
    matched, state = match_proposals(props, gt[:0], 0.5, 0.5)
    assert state.tolist() == [0] * 5


@pytest.mark.parametrize("seed", range(6))
def test_match_proposals_is_the_matcher(seed, device):
    gen = torch.Generator().manual_seed(seed)

    def grid(n):  # integer boxes: IoU ties and IoU exactly at the thresholds are common
        xy = torch.randint(0, 6, (n, 2), generator=gen).float()
        return torch.cat([xy, xy + torch.randint(0, 4, (n, 2), generator=gen)], 1)

    props, gt = grid(40), grid(5)
    iou = box_iou(gt, props)  # [G, P]
    for fg, bg in ((0.5, 0.5), (0.5, 0.1), (1 / 3, 0.25), (0.0, 0.0)):
        matched, state = match_proposals(props.to(device), gt.to(device), fg, bg)
        matched, state = matched.cpu(), state.cpu()
        m = reference.matcher_reference(iou, fg, bg)
        assert state.tolist() == [1 if v >= 0 else (0 if v == -1 else -1) for v in m.tolist()]
        assert state.dtype == matched.dtype == torch.int64
        assert torch.equal(state == 1, match_by_iou(iou, fg, bg) >= 0)
        # The best box of every proposal (the first on ties), foreground or not.
        assert matched.tolist() == [max(range(5), key=lambda g: (float(iou[g, p]), -g)) for p in range(40)]


def test_sample_balanced_counts():
    torch.manual_seed(0)
    state = torch.tensor([1] * 30 + [0] * 100 + [-1] * 10)
    fg, bg = sample_balanced(state, 64, 0.25)
    assert len(fg) == 16 and len(bg) == 48
    assert (state[fg] == 1).all() and (state[bg] == 0).all()
    assert len(set(fg.tolist())) == 16 and len(set(bg.tolist())) == 48
    fg, bg = sample_balanced(torch.tensor([1, 0, 0]), 64, 0.25)
    assert len(fg) == 1 and len(bg) == 2
    assert sample_balanced is pixbox.ops.sample_balanced  # the one sampler, at its old import path too


def _head(**kw):
    torch.manual_seed(0)
    return RoIHeads(8, 2, spatial_scale=1 / 8, representation_size=32, batch_size_per_image=32, **kw)


@pytest.mark.parametrize("pooler", ["align", "pool"])
def test_training_losses_are_finite_and_learn(pooler, device):
    on = dict(device=device)
    head = _head(pooler=pooler).to(device)
    features = torch.randn(2, 8, 8, 8).to(device)
    targets = [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]], **on), "labels": torch.tensor([1], **on)},
               {"boxes": torch.zeros(0, 4, **on), "labels": torch.zeros(0, dtype=torch.int64, **on)}]  # an empty image
    proposals = [torch.tensor([[10.0, 6.0, 38.0, 42.0], [0.0, 40.0, 20.0, 64.0]], **on),
                 torch.tensor([[4.0, 4.0, 30.0, 30.0]], **on)]
    opt = torch.optim.SGD(head.parameters(), lr=0.05)
    head.train()
    first = None
    for _ in range(30):
        _, losses = head(features, proposals, [(64, 64)] * 2, targets)
        assert set(losses) == {"roi_cls", "roi_box"} and all(torch.isfinite(v) for v in losses.values())
        total = sum(losses.values())
        first = float(total.detach()) if first is None else first
        opt.zero_grad()
        total.backward()
        opt.step()
    assert float(total.detach()) < 0.5 * first


def test_inference_output_format_and_thresholds(device):
    head = _head(score_threshold=0.0, detections_per_image=5).eval().to(device)
    features = torch.randn(1, 8, 8, 8).to(device)
    proposals = [torch.tensor([[0.0, 0.0, 30.0, 30.0], [10.0, 10.0, 50.0, 60.0], [5.0, 5.0, 20.0, 20.0]],
                              device=device)]
    with torch.no_grad():
        dets, losses = head(features, proposals, [(64, 64)])
    assert losses == {} and len(dets) == 1
    d = dets[0]
    assert set(d) == {"boxes", "scores", "labels"} and all(v.device.type == device for v in d.values())
    assert d["boxes"].shape[1] == 4 and len(d["boxes"]) == len(d["scores"]) == len(d["labels"]) <= 5
    assert ((d["labels"] >= 0) & (d["labels"] < 2)).all()
    assert (d["boxes"] >= 0).all() and (d["boxes"][:, [0, 2]] <= 64).all() and (d["boxes"][:, [1, 3]] <= 64).all()
    assert torch.all(d["scores"][:-1] >= d["scores"][1:])
    # a high threshold leaves nothing, in the same format
    head.score_threshold = 0.99
    with torch.no_grad():
        empty = head(features, proposals, [(64, 64)])[0][0]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].dtype == torch.int64


def test_empty_proposals(device):
    head = _head().eval().to(device)
    with torch.no_grad():
        dets, _ = head(torch.randn(1, 8, 8, 8, device=device), [torch.zeros(0, 4, device=device)], [(64, 64)])
    assert dets[0]["boxes"].shape == (0, 4) and dets[0]["boxes"].device.type == device


def test_gradient_reaches_the_features(device):
    on = dict(device=device)
    head = _head().to(device)
    features = torch.randn(1, 8, 8, 8, **on, requires_grad=True)
    _, losses = head(features, [torch.tensor([[8.0, 8.0, 40.0, 40.0]], **on)], [(64, 64)],
                     [{"boxes": torch.tensor([[8.0, 8.0, 40.0, 40.0]], **on), "labels": torch.tensor([0], **on)}])
    sum(losses.values()).backward()
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="pooler"):
        RoIHeads(8, 2, spatial_scale=0.125, pooler="max")
    with pytest.raises(ValueError, match="num_classes"):
        RoIHeads(8, 0, spatial_scale=0.125)
    with pytest.raises(ValueError, match="bg_iou_threshold"):
        RoIHeads(8, 2, spatial_scale=0.125, fg_iou_threshold=0.3, bg_iou_threshold=0.5)
    head = _head()
    with pytest.raises(ValueError, match="targets are required"):
        head(torch.randn(1, 8, 8, 8), [torch.zeros(1, 4)], [(64, 64)])
