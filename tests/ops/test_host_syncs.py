"""Host-device synchronisations of the hot paths, counted with :class:`pixbox._syncs.SyncCounter`.

A sync costs little on a CPU but stalls a GPU: these golden counts (for fixed inputs) fail when a
change adds a ``.item()``, ``nonzero`` or ``.tolist()`` inside a loop, and the paired counts check
that the work over images, classes and RoIs stays batched (the count does not grow with them).
See docs/gpu.md, "Host synchronisations". Each count is taken after a warm-up call (caches).
"""

from __future__ import annotations

import pytest
import torch

import pixbox.ops as P
from pixbox._syncs import SyncCounter
from pixbox.losses import multibox_loss
from pixbox.models.rcnn import rpn as rpn_module
from pixbox.models.rcnn.roi_heads import RoIHeads
from pixbox.models.rcnn.rpn import generate_proposals, rpn_anchors, rpn_loss, rpn_targets, sample_rpn_anchors
from pixbox.models.ssd import tiny_ssd
from pixbox.ops import detection as detection_module


def syncs(fn, *args, **kwargs) -> SyncCounter:
    fn(*args, **kwargs)  # warm-up
    with SyncCounter() as counter:
        fn(*args, **kwargs)
    return counter


def boxes(g: torch.Generator, n: int, canvas: float = 512.0, lo: float = 4.0, hi: float = 100.0) -> torch.Tensor:
    wh = lo + torch.rand(n, 2, generator=g) * (hi - lo)
    xy = torch.rand(n, 2, generator=g) * (canvas - wh)
    return torch.cat([xy, xy + wh], dim=1)


def no_nms(boxes, scores, idxs, iou_threshold):
    """A stand-in for batched_nms without host reads (keeps everything, by decreasing score)."""
    return torch.sort(scores, descending=True, stable=True).indices


# ---------------------------------------------------------------------------------------------
# The counter


def test_counter_counts_each_kind_of_sync():
    x = torch.arange(6.0)
    mask = x > 2
    with SyncCounter() as counter:
        x[0].item()
        int(x.sum())
        if mask.any():
            pass
        x.tolist()
        x.cpu()
        x.to("cpu")
        x.numpy()
        x[mask]
        y = x.clone()
        y[mask] = 0.0
        mask.nonzero()
        x.masked_select(mask)
        torch.unique(x)
        torch.equal(x, y)
        torch.repeat_interleave(torch.arange(3), torch.arange(3))
        torch.bincount(torch.arange(3))
        x.new_tensor([1.0, 2.0])
        torch.tensor([1.0], device=x.device)
    assert counter.counts == {
        "Tensor.cpu": 1, "Tensor.new_tensor (to device)": 1, "Tensor.numpy": 1, "Tensor.to(cpu)": 1, "Tensor.tolist": 1,
        "aten::_local_scalar_dense": 3, "aten::_unique2": 1, "aten::bincount": 1, "aten::equal": 1,
        "aten::index (mask)": 1, "aten::index_put_ (mask)": 1, "aten::masked_select": 1, "aten::nonzero": 1,
        "aten::repeat_interleave": 1, "torch.tensor (to device)": 1,
    }
    assert counter.total == 17


def test_counter_ignores_work_that_stays_on_the_device(device):
    x = torch.rand(100, device=device, requires_grad=True)
    mask = x.detach() > 0.5
    with SyncCounter(sites=True) as counter:
        i = torch.nonzero_static(mask, size=10).flatten()
        y = x.index_select(0, i) * 2 + x.detach().topk(5).values.sum()
        y = torch.where(y > 1, y, 0.0).sum() + torch.repeat_interleave(torch.arange(3, device=device),
                                                                      torch.ones(3, dtype=torch.long, device=device),
                                                                      output_size=3).sum()
        y.backward()
        torch.zeros(3, device=device).scatter_add_(0, torch.arange(3, device=device), torch.ones(3, device=device))
        torch.tensor([1.0]).tolist()[0]  # a host tensor: still counted (the counter cannot tell)
        torch.full((2,), 0.5, device=device).to(x.device)
    assert counter.counts == {"Tensor.tolist": 1}
    assert [site.rsplit(":", 1)[0].endswith("test_host_syncs.py") for _, site in counter.sites] == [True]


def test_counter_counts_the_backward_of_a_mask_index():
    x = torch.rand(5, requires_grad=True)
    with SyncCounter() as counter:
        x[x.detach() > 0.5].sum().backward()
    assert counter.counts == {"aten::index (mask)": 1, "aten::index_put (mask)": 1}


# ---------------------------------------------------------------------------------------------
# NMS: golden counts; the rounds need a few reads each, the resolver one per sweep


@pytest.mark.parametrize("n, threshold, want", [
    # Spread out, or a high threshold: the sparse path. Checks, layout, the sweep's size, one
    # chunk of pairs (2), the resolver's sweeps (2), the result.
    (300, 0.5, 8),
    (2000, 0.9, 8),
    # Dense: 2 exact rounds. Checks, layout, spatial order; per round its size, the head's pairs
    # (3) and the resolver's sweeps (4); between the rounds the suppression pass (4); the result.
    (2000, 0.5, 25),
])
def test_nms_syncs(device, n, threshold, want):
    g = torch.Generator().manual_seed(n)
    canvas = 4000.0 if n == 300 else 512.0
    b, s = boxes(g, n, canvas=canvas).to(device), torch.rand(n, generator=g).to(device)
    assert syncs(P.nms, b, s, threshold).total == want


def test_batched_nms_syncs_do_not_grow_with_the_classes(device):
    g = torch.Generator().manual_seed(0)
    b, s = boxes(g, 2000).to(device), torch.rand(2000, generator=g).to(device)
    counts = [syncs(P.batched_nms, b, s, torch.randint(0, c, (2000,), generator=g).to(device), 0.5).total
              for c in (20, 80)]
    assert counts == [9, 8]  # the sparse path: more classes, fewer pairs


# ---------------------------------------------------------------------------------------------
# RoI ops: a constant number of reads, whatever the number of RoIs


def rois(g: torch.Generator, k: int, images: int = 2) -> torch.Tensor:
    xy = torch.rand(k, 2, generator=g) * 200
    wh = 4 + torch.rand(k, 2, generator=g) * 100
    return torch.cat([torch.randint(0, images, (k, 1), generator=g).float(), xy, xy + wh], 1)


@pytest.mark.parametrize("op, kwargs, dtype, want", [
    (P.roi_align, {"sampling_ratio": 2, "aligned": True}, torch.float32, 2),  # validation, windows
    (P.roi_align, {}, torch.float32, 3),  # adaptive sampling: the samples per bin too
    (P.roi_pool, {}, torch.float32, 2),  # validation, bin sizes and flags
    (P.roi_pool, {}, torch.float64, 3),  # float64: windows too
])
def test_roi_op_syncs_do_not_grow_with_the_rois(device, op, kwargs, dtype, want):
    g = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 4, 16, 16, generator=g, dtype=dtype).to(device)

    def forward_backward(r):
        x = feat.clone().requires_grad_()
        op(x, r, 5, 1 / 16, **kwargs).sum().backward()

    counts = [syncs(forward_backward, rois(g, k).to(device, dtype)).total for k in (16, 400)]
    assert counts == [want, want]


# ---------------------------------------------------------------------------------------------
# Matching and sampling


def test_bipartite_matching_reads_once_per_step_for_the_whole_batch(device):
    g = torch.Generator().manual_seed(0)
    anchors = boxes(g, 500).to(device)
    for b, gt_count in ((1, 5), (8, 5), (8, 12)):
        iou = torch.stack([P.box_iou(boxes(g, gt_count).to(device), anchors) for _ in range(b)])
        assert syncs(P.match_by_iou, iou, 0.5, allow_low_quality_matches="bipartite").total == gt_count
        assert syncs(P.match_by_iou, iou, 0.7, 0.3, allow_low_quality_matches=True).total == 0


def test_sampling_reads_once_for_all_images(device):
    torch.manual_seed(0)
    labels = torch.randint(-1, 2, (6, 300)).to(device)
    assert syncs(P.sample_balanced, labels[0], 64, 0.25).total == 1
    assert syncs(sample_rpn_anchors, labels[:1], 64, 0.5).total == 1
    assert syncs(sample_rpn_anchors, labels, 64, 0.5).total == 1


def ssd_labels(g: torch.Generator, b: int, gt_count: int) -> torch.Tensor:
    xy = torch.rand(b, gt_count, 2, generator=g) * 0.6
    wh = 0.1 + torch.rand(b, gt_count, 2, generator=g) * 0.3
    return torch.cat([torch.randint(0, 3, (b, gt_count, 1), generator=g).float(), xy, xy + wh], 2)


def test_multibox_target_syncs_do_not_grow_with_the_images(device):
    # Validation, the positives, and one per greedy bipartite step (a step per ground-truth row).
    g = torch.Generator().manual_seed(0)
    anchors = P.generate_multiscale_anchors([(8, 8), (4, 4)], [[0.2, 0.3], [0.5, 0.7]], [1, 2, 0.5]).to(device)
    for b in (1, 8):
        for gt_count in (3, 6):
            assert syncs(P.multibox_target, anchors, ssd_labels(g, b, gt_count).to(device)).total == gt_count + 2


# ---------------------------------------------------------------------------------------------
# Detection post-processing: per-image work batched (NMS replaced by a stand-in without reads)


def test_decode_detections_reads_once_outside_nms_whatever_the_images(device, monkeypatch):
    monkeypatch.setattr(detection_module, "batched_nms", no_nms)
    g = torch.Generator().manual_seed(0)
    anchors = P.generate_multiscale_anchors([(8, 8), (4, 4)], [[0.2, 0.3], [0.5, 0.7]], [1, 2, 0.5])
    for b in (1, 6):
        probs = torch.randn(b, 4, anchors.shape[0], generator=g).softmax(1).to(device)
        offsets = (torch.randn(b, 4 * anchors.shape[0], generator=g) * 0.1).to(device)
        # NaN check, the candidates, the per-image split
        assert syncs(P.decode_detections, probs, offsets, anchors.to(device), score_threshold=0.3).total == 3


def test_multibox_detection_checks_its_inputs_in_one_read(device, monkeypatch):
    monkeypatch.setattr(detection_module, "_nms_ranked", lambda boxes, t, groups: torch.ones(
        boxes.shape[0], dtype=torch.bool, device=boxes.device))
    g = torch.Generator().manual_seed(0)
    anchors = P.generate_multiscale_anchors([(4, 4)], [[0.3, 0.5]], [1, 2])
    for b in (1, 5):
        probs = torch.randn(b, 3, anchors.shape[0], generator=g).softmax(1).to(device)
        offsets = torch.zeros(b, 4 * anchors.shape[0]).to(device)
        assert syncs(P.multibox_detection, probs, offsets, anchors.to(device)).total == 1


# ---------------------------------------------------------------------------------------------
# Models


def test_ssd_training_step_syncs_do_not_grow_with_the_batch(device):
    # multibox_target (validation, positives, one per bipartite step) and multibox_loss's label
    # check (its minimum and maximum).
    torch.manual_seed(0)
    net = tiny_ssd(num_classes=3).to(device)
    g = torch.Generator().manual_seed(0)

    def step(images, labels):
        anchors, cls_preds, bbox_preds = net(images)
        bbox_labels, bbox_masks, cls_labels = P.multibox_target(anchors, labels)
        multibox_loss(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks)["loss"].backward()

    for b in (1, 3):
        images, labels = torch.rand(b, 3, 64, 64, generator=g).to(device), ssd_labels(g, b, 3).to(device)
        assert syncs(step, images, labels).total == (3 + 2) + 2


def test_rpn_syncs_do_not_grow_with_the_images(device, monkeypatch):
    monkeypatch.setattr(rpn_module, "batched_nms", no_nms)
    g = torch.Generator().manual_seed(0)
    anchors = rpn_anchors((8, 8), 16, (32, 64), (0.5, 1.0, 2.0)).to(device)
    n = anchors.shape[0]
    for b in (1, 4):
        gt = [boxes(g, 3, canvas=128.0, lo=16.0, hi=64.0).to(device) for _ in range(b)]
        objectness, deltas = torch.randn(b, n, generator=g).to(device), torch.randn(b, n, 4, generator=g).to(device)
        # proposals: the usable candidates, the per-image split
        assert syncs(generate_proposals, anchors, objectness, deltas, [(128, 128)] * b, pre_nms_topk=100).total == 2
        # targets: the boxes' check (anchors, all images' boxes) and the positives
        labels, target = rpn_targets(anchors, gt)
        assert syncs(rpn_targets, anchors, gt).total == 3
        pos, neg = sample_rpn_anchors(labels, 32, 0.5)
        # loss: the sampled and the positive anchors (gathers: the backward reads nothing)
        objectness.requires_grad_()
        assert syncs(lambda: rpn_loss(objectness, deltas, target, pos, neg)["rpn_objectness"].backward()).total == 2


def test_roi_heads_syncs_do_not_grow_with_the_images(device, monkeypatch):
    monkeypatch.setattr(P, "batched_nms", no_nms)  # the head imports it from pixbox.ops when called
    torch.manual_seed(0)
    head = RoIHeads(8, 3, spatial_scale=1 / 8, representation_size=32, batch_size_per_image=16).to(device)
    g = torch.Generator().manual_seed(0)
    for b in (1, 4):
        features = torch.randn(b, 8, 16, 16, generator=g).to(device)
        proposals = [boxes(g, 20, canvas=128.0, lo=8.0, hi=64.0).to(device) for _ in range(b)]
        targets = [{"boxes": boxes(g, 2, canvas=128.0, lo=16.0, hi=64.0).to(device),
                    "labels": torch.randint(0, 3, (2,), generator=g).to(device)} for _ in range(b)]
        sizes = [(128, 128)] * b
        head.train()
        # the boxes' check, the sampler, the RoI check and windows, the foreground
        assert syncs(lambda: head(features, proposals, sizes, targets)[1]["roi_cls"].backward()).total == 5
        head.eval()
        with torch.no_grad():  # the RoI check and windows, the candidates, the per-image split
            assert syncs(head, features, proposals, sizes).total == 4


def test_targets_from_labels_reads_once(device):
    from pixbox.models.rcnn._base import TwoStageDetector

    g = torch.Generator().manual_seed(0)
    labels = ssd_labels(g, 4, 5)
    labels[1, 2:, 0] = -1  # padding rows
    images = torch.zeros(4, 3, 32, 48, device=device)
    got = syncs(TwoStageDetector.targets_from_labels, images, labels.to(device))
    assert got.total == 1
    assert [len(t["boxes"]) for t in TwoStageDetector.targets_from_labels(images, labels.to(device))] == [5, 2, 5, 5]

