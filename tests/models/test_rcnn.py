"""Tests for pixbox.models.rcnn: Faster R-CNN on tiny inputs, and through the detection engine."""

from __future__ import annotations

import pytest
import torch

from pixbox.models import MODELS, build_model
from pixbox.models import faster_rcnn
from pixbox.models.rcnn import FasterRCNN, TopDownNeck


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _image_with_square():
    image = torch.full((1, 3, 64, 64), 0.2)
    image[:, :, 16:48, 20:44] = 0.9
    labels = torch.tensor([[[0.0, 20 / 64, 16 / 64, 44 / 64, 48 / 64]]])  # (class, normalized xyxy)
    return image, labels


@pytest.mark.parametrize("stride", [8, 16])
def test_losses_are_finite_and_fall(stride, device):
    torch.manual_seed(0)
    net = faster_rcnn("resnet18", 2, image_size=64, feature_stride=stride, roi_options={"batch_size_per_image": 64})
    net = net.to(device)
    image, labels = (t.to(device) for t in _image_with_square())
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    net.train()
    history = []
    for _ in range(12):
        parts = net.detection_losses(image, labels)
        assert set(parts) == {"loss", "rpn", "roi"} and torch.isfinite(parts["loss"])
        assert parts["loss"].device.type == device
        history.append(float(parts["loss"].detach()))
        opt.zero_grad()
        parts["loss"].backward()
        opt.step()
    assert min(history[-3:]) < history[0]


def test_images_without_objects(device):
    torch.manual_seed(0)
    net = faster_rcnn("resnet18", 2, image_size=64).train().to(device)
    images = torch.rand(2, 3, 64, 64, device=device)
    labels = torch.full((2, 1, 5), -1.0, device=device)  # padding only
    parts = net.detection_losses(images, labels)
    assert torch.isfinite(parts["loss"])
    parts["loss"].backward()
    empty = {"boxes": torch.zeros(0, 4, device=device), "labels": torch.zeros(0, dtype=torch.int64, device=device)}
    losses = net(images, [empty] * 2)
    assert float(losses["rpn_box"].detach()) == 0.0 and float(losses["roi_box"].detach()) == 0.0


def test_predict_format_matches_ssd(device):
    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64, device=device)
    frcnn = faster_rcnn("resnet18", 3, image_size=64, score_threshold=0.0).to(device)
    ssd = build_model("tiny_ssd", 3, image_size=64).to(device)
    a = frcnn.predict(images, score_threshold=0.0, topk=10)
    b = ssd.predict(images, score_threshold=0.0, topk=10)
    assert len(a) == len(b) == 2
    for da, db in zip(a, b):
        assert set(da) == set(db) == {"boxes", "scores", "labels"}
        for key in da:
            assert da[key].dtype == db[key].dtype and da[key].dim() == db[key].dim()
            assert da[key].device.type == db[key].device.type == device
        assert len(da["boxes"]) <= 10 and ((da["labels"] >= 0) & (da["labels"] < 3)).all()
        assert (da["boxes"] >= 0).all() and (da["boxes"] <= 64).all()
    assert frcnn.training  # predict restores the mode


def test_registered_and_buildable_by_the_engine():
    assert {"faster_rcnn_resnet18", "faster_rcnn_resnet34", "faster_rcnn_resnet50"} <= set(MODELS)
    net = build_model("faster_rcnn_resnet18", 4, image_size=128)
    assert isinstance(net, FasterRCNN) and net.num_classes == 4
    assert list(net.rpn.sizes) == [8.0, 16.0, 32.0, 64.0, 128.0] and net.rpn.stride == (8.0, 8.0)
    assert isinstance(net.neck, TopDownNeck) and net.roi_heads.spatial_scale == 1 / 8
    c4 = faster_rcnn("resnet18", 4, image_size=128, feature_stride=16)
    assert c4.neck is None and list(c4.rpn.sizes) == [16.0, 32.0, 64.0, 128.0] and c4.roi_heads.spatial_scale == 1 / 16
    assert c4.features(torch.rand(1, 3, 128, 96)).shape == (1, 256, 8, 6)
    assert net.features(torch.rand(1, 3, 128, 96)).shape == (1, 128, 16, 12)
    # The backbone keeps torchvision's key names under body.
    assert "body.layer4.1.conv2.weight" in net.state_dict() and "body.layer4.0.conv1.weight" not in c4.state_dict()


def test_top_down_neck_matches_a_direct_computation(device):
    import torch.nn.functional as F

    torch.manual_seed(0)
    neck = TopDownNeck([4, 6, 8], 5).to(device)
    maps = [torch.randn(2, 4, 12, 10), torch.randn(2, 6, 6, 5), torch.randn(2, 8, 3, 3)]  # 5 -> 3 rounds up
    maps = [m.to(device) for m in maps]
    lat = [F.conv2d(m, l.weight, l.bias) for m, l in zip(maps, neck.lateral)]
    p4 = lat[2]
    p3 = lat[1] + p4.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :6, :5]
    p2 = lat[0] + p3.repeat_interleave(2, -2).repeat_interleave(2, -1)[..., :12, :10]
    expected = F.conv2d(p2, neck.smooth.weight, neck.smooth.bias, padding=1)
    assert torch.allclose(neck(maps), expected, atol=1e-5)
    with pytest.raises(ValueError, match="expected 3 feature maps"):
        neck(maps[:2])
    with pytest.raises(ValueError, match="in_channels"):
        TopDownNeck([], 5)


def test_trains_through_the_detection_engine(tmp_path):
    from pixbox.data import make_dataset
    from pixbox.tasks.detect import DetectConfig, evaluate_detector, train_detector
    from pixbox.tasks import load

    make_dataset("shapes", tmp_path / "data", num_train=4, num_val=2, image_size=64, progress=False)
    cfg = DetectConfig(data=str(tmp_path / "data"), model="faster_rcnn_resnet18", epochs=1, batch=2, imgsz=64,
                       workers=0, device="cpu", amp=False, project=str(tmp_path / "runs"))
    run = train_detector(cfg, progress=False, verbose=False)
    metrics = evaluate_detector(run / "best.pt", tmp_path / "data")
    assert 0.0 <= metrics["map_50"] <= 1.0
    predictor = load(run / "best.pt", device="cpu")
    results = predictor.predict(torch.rand(3, 80, 100), score_threshold=0.0)
    assert results[0]["boxes"].shape[1] == 4 and results[0]["size"] == (80, 100)


def test_bad_arguments():
    with pytest.raises(ValueError, match="backbone"):
        faster_rcnn("resnet99", 2)
    with pytest.raises(ValueError, match="num_classes"):
        faster_rcnn("resnet18", 0)
    with pytest.raises(ValueError, match="feature_stride"):
        faster_rcnn("resnet18", 2, feature_stride=32)
    net = faster_rcnn("resnet18", 2).train()
    with pytest.raises(ValueError, match="targets are required"):
        net(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match="images must be"):
        net.predict(torch.rand(3, 64, 64))
