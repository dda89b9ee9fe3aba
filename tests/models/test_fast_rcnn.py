"""Tests for pixbox.models.rcnn.fast_rcnn: Fast R-CNN on external proposals, on tiny inputs."""

from __future__ import annotations

import pytest
import torch

from pixbox.models import MODELS, FastRCNN, build_model, fast_rcnn, needs_proposals
from pixbox.models import faster_rcnn
from pixbox.ops import box_iou


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


GT = torch.tensor([[20.0, 16.0, 44.0, 48.0]])  # one object of class 1, in a 64 x 64 image


def _image():
    image = torch.full((1, 3, 64, 64), 0.2)
    image[:, :, 16:48, 20:44] = 0.9
    image[:, 0, 16:48, 20:44] = 0.1  # a blue-green rectangle
    labels = torch.tensor([[[1.0, 20 / 64, 16 / 64, 44 / 64, 48 / 64]]])  # (class, normalized xyxy)
    return image, labels


def _proposals(seed: int = 0, jittered: int = 16, random: int = 48) -> torch.Tensor:
    """Jittered copies of the ground truth and random boxes, shuffled."""
    g = torch.Generator().manual_seed(seed)
    wh = GT[:, 2:] - GT[:, :2]
    jitter = GT + (torch.rand(jittered, 4, generator=g) - 0.5) * 0.4 * torch.cat([wh, wh], 1)
    xy = torch.rand(random, 2, generator=g) * 48
    size = 6 + torch.rand(random, 2, generator=g) * 30
    boxes = torch.cat([jitter, torch.cat([xy, (xy + size).clamp(max=64)], 1)])
    return boxes[torch.randperm(len(boxes), generator=g)]


def test_losses_are_finite_with_empty_images_and_no_proposals(device):
    torch.manual_seed(0)
    on = dict(device=device)
    net = fast_rcnn("resnet18", 2).train().to(device)
    images = torch.rand(3, 3, 64, 64, **on)
    labels = torch.full((3, 1, 5), -1.0, **on)
    labels[0, 0] = torch.tensor([1.0, 0.2, 0.2, 0.6, 0.7], **on)  # image 0 has an object, 1 and 2 none
    proposals = [torch.zeros(0, 4, **on), _proposals().to(device), torch.zeros(0, 4, **on)]  # 0 and 2: none
    parts = net.detection_losses(images, labels, proposals)
    assert set(parts) == {"loss", "roi"} and torch.isfinite(parts["loss"]) and float(parts["roi"]) > 0
    assert parts["loss"].device.type == device
    parts["loss"].backward()
    assert net.roi_heads.cls_score.weight.grad.abs().sum() > 0
    # Nothing at all to learn from (no objects, no proposals): a zero loss that backpropagates.
    net.zero_grad()
    parts = net.detection_losses(images[:1], torch.full((1, 1, 5), -1.0, **on), [torch.zeros(0, 4, **on)])
    assert float(parts["roi"]) == 0.0
    parts["loss"].backward()
    # Without objects, only background: the box loss is 0.
    empty = {"boxes": torch.zeros(0, 4, **on), "labels": torch.zeros(0, **on).long()}
    losses = net(images[1:2], [_proposals().to(device)], [empty])
    assert float(losses["roi_box"].detach()) == 0.0 and float(losses["roi_cls"].detach()) > 0


def test_learns_one_image_from_its_proposals(device):
    torch.manual_seed(0)
    net = fast_rcnn("resnet18", 3, roi_options={"batch_size_per_image": 32}).to(device)
    image, labels = (t.to(device) for t in _image())
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net.train()
    history = []
    for step in range(30):
        parts = net.detection_losses(image, labels, [_proposals(seed=step).to(device)])  # new proposals each step
        history.append(float(parts["loss"].detach()))
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
    assert sum(history[-5:]) / 5 < history[0] / 2
    dets = net.predict(image, [_proposals(seed=100).to(device)], score_threshold=0.0, topk=5)[0]
    assert int(dets["labels"][0]) == 1 and dets["boxes"].device.type == device
    assert float(box_iou(dets["boxes"][:1].cpu(), GT)[0, 0]) >= 0.5
    assert bool((dets["scores"][:-1] >= dets["scores"][1:]).all())


def test_predict_format_matches_faster_rcnn(device):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64, device=device)
    fast = fast_rcnn("resnet18", 3).to(device)
    faster = faster_rcnn("resnet18", 3, image_size=64).to(device)
    a = fast.predict(images, [_proposals(0).to(device), _proposals(1).to(device)], score_threshold=0.0, topk=10)
    b = faster.predict(images, score_threshold=0.0, topk=10)
    assert len(a) == len(b) == 2
    for da, db in zip(a, b):
        assert set(da) == set(db) == {"boxes", "scores", "labels"}
        for key in da:
            assert da[key].dtype == db[key].dtype and da[key].dim() == db[key].dim()
            assert da[key].device.type == db[key].device.type == device
        assert 0 < len(da["boxes"]) <= 10 and ((da["labels"] >= 0) & (da["labels"] < 3)).all()
        assert (da["boxes"] >= 0).all() and (da["boxes"] <= 64).all()
    assert fast.training  # predict restores the mode
    empty = fast.predict(images[:1], [torch.zeros(0, 4, device=device)])[0]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].dtype == torch.int64


def test_max_proposals_keeps_the_first_ones_clipped(device):
    net = fast_rcnn("resnet18", 2, max_proposals=3).to(device)
    props = torch.tensor([[-5.0, 0.0, 30.0, 70.0], [1, 1, 9, 9], [4, 4, 4, 20], [2, 2, 8, 8], [0, 0, 64, 64]],
                         device=device)
    kept = net.prepare_proposals([props], (64, 64))[0]
    # The first 3, clipped to the image; the zero-width one goes.
    assert kept.tolist() == [[0.0, 0.0, 30.0, 64.0], [1.0, 1.0, 9.0, 9.0]] and kept.device.type == device
    torch.manual_seed(0)
    images = torch.rand(1, 3, 64, 64, device=device)
    few = net.predict(images, [props], score_threshold=0.0)[0]
    net.max_proposals = 2000
    many = net.predict(images, [props], score_threshold=0.0)[0]
    assert len(many["boxes"]) > len(few["boxes"])


def test_registered_for_the_engine():
    assert {"fast_rcnn_resnet18", "fast_rcnn_resnet34", "fast_rcnn_resnet50"} <= set(MODELS)
    net = build_model("fast_rcnn_resnet18", 4, image_size=128)
    assert isinstance(net, FastRCNN) and net.num_classes == 4 and net.needs_proposals
    assert needs_proposals("fast_rcnn_resnet50") and needs_proposals(net)
    assert not needs_proposals("faster_rcnn_resnet18") and not needs_proposals(build_model("tiny_ssd", 1))
    c4 = fast_rcnn("resnet18", 2, feature_stride=16)
    assert c4.neck is None and c4.features(torch.rand(1, 3, 64, 64)).shape == (1, 256, 4, 4)
    assert net.features(torch.rand(1, 3, 64, 64)).shape == (1, 128, 8, 8)
    pool = fast_rcnn("resnet18", 2, roi_options={"pooler": "pool"})
    assert pool.roi_heads.pooler == "pool"


def test_bad_arguments():
    with pytest.raises(ValueError, match="backbone"):
        fast_rcnn("resnet99", 2)
    with pytest.raises(ValueError, match="num_classes"):
        fast_rcnn("resnet18", 0)
    with pytest.raises(ValueError, match="max_proposals must be >= 1"):
        fast_rcnn("resnet18", 2, max_proposals=0)
    net = fast_rcnn("resnet18", 2).train()
    with pytest.raises(ValueError, match="targets are required"):
        net(torch.rand(1, 3, 64, 64), [torch.zeros(0, 4)])
    with pytest.raises(ValueError, match=r"one Tensor\[P, 4\] \(xyxy pixels\) per image \(2\), got 1 entries"):
        net.predict(torch.rand(2, 3, 64, 64), [torch.zeros(0, 4)])
    with pytest.raises(ValueError, match=r"proposals\[0\] must be a Tensor\[P, 4\]"):
        net.predict(torch.rand(1, 3, 64, 64), [torch.zeros(3, 5)])
    with pytest.raises(ValueError, match="images must be"):
        net.predict(torch.rand(3, 64, 64), [torch.zeros(0, 4)])
