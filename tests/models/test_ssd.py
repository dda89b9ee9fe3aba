"""Tests for pixbox.models.ssd and pixbox.models (SSD, tiny_ssd, build_ssd, the book's blocks, MODELS)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixbox.compat import d2l as pd2l
from pixbox.losses import multibox_loss
from pixbox.models import MODELS, SSD, build_model, build_ssd, resnet18, resnet34, tiny_ssd
from pixbox.models.ssd import (
    IMAGENET_MEAN,
    TINY_SSD_RATIOS,
    TINY_SSD_SIZES,
    BackboneWithExtras,
    TinySSDBackbone,
    base_net,
    bbox_predictor,
    cls_predictor,
    concat_preds,
    down_sample_blk,
    flatten_pred,
    ssd_anchor_config,
)
from pixbox.ops import decode_detections, generate_multiscale_anchors, multibox_target

# ---------------------------------------------------------------------------------------------
# A transcription of the book's TinySSD (D2L 14.7), the reference for tiny_ssd.


def _book_down_sample_blk(in_channels, out_channels):
    blk = []
    for _ in range(2):
        blk.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        blk.append(nn.BatchNorm2d(out_channels))
        blk.append(nn.ReLU())
        in_channels = out_channels
    blk.append(nn.MaxPool2d(2))
    return nn.Sequential(*blk)


def _book_get_blk(i):
    if i == 0:
        filters = [3, 16, 32, 64]
        return nn.Sequential(*[_book_down_sample_blk(filters[j], filters[j + 1]) for j in range(3)])
    if i == 1:
        return _book_down_sample_blk(64, 128)
    if i == 4:
        return nn.AdaptiveMaxPool2d((1, 1))
    return _book_down_sample_blk(128, 128)


class BookTinySSD(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.num_classes = num_classes
        idx_to_in_channels = [64, 128, 128, 128, 128]
        for i in range(5):
            setattr(self, f"blk_{i}", _book_get_blk(i))
            setattr(self, f"cls_{i}", nn.Conv2d(idx_to_in_channels[i], 4 * (num_classes + 1), 3, padding=1))
            setattr(self, f"bbox_{i}", nn.Conv2d(idx_to_in_channels[i], 4 * 4, 3, padding=1))

    def forward(self, X):
        sizes = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
        ratios = [[1, 2, 0.5]] * 5
        anchors, cls_preds, bbox_preds = [None] * 5, [None] * 5, [None] * 5
        for i in range(5):
            X = getattr(self, f"blk_{i}")(X)
            anchors[i] = pd2l.multibox_prior(X, sizes=sizes[i], ratios=ratios[i])
            cls_preds[i] = getattr(self, f"cls_{i}")(X)
            bbox_preds[i] = getattr(self, f"bbox_{i}")(X)
        anchors = torch.cat(anchors, dim=1)
        cls_preds = torch.cat([torch.flatten(p.permute(0, 2, 3, 1), start_dim=1) for p in cls_preds], dim=1)
        cls_preds = cls_preds.reshape(cls_preds.shape[0], -1, self.num_classes + 1)
        bbox_preds = torch.cat([torch.flatten(p.permute(0, 2, 3, 1), start_dim=1) for p in bbox_preds], dim=1)
        return anchors, cls_preds, bbox_preds


def _book_to_pixbox(state):
    return {("backbone." + k if k.startswith("blk_") else k): v for k, v in state.items()}


# ---------------------------------------------------------------------------------------------
# The book's printed shapes


def test_book_predictor_shapes():
    torch.manual_seed(0)
    y1 = cls_predictor(8, 5, 10)(torch.zeros((2, 8, 20, 20)))
    y2 = cls_predictor(16, 3, 10)(torch.zeros((2, 16, 10, 10)))
    assert y1.shape == (2, 55, 20, 20)
    assert y2.shape == (2, 33, 10, 10)
    assert concat_preds([y1, y2]).shape == (2, 25300)
    assert bbox_predictor(8, 5)(torch.zeros((2, 8, 20, 20))).shape == (2, 20, 20, 20)


def test_book_flatten_pred_keeps_cell_predictions_together():
    x = torch.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)
    out = flatten_pred(x)
    assert out.shape == (2, 12)
    # cell (0, 0) of image 0 first, its 3 channels together
    assert out[0, :3].tolist() == [0, 4, 8]
    assert out[1, 3:6].tolist() == [13, 17, 21]


def test_book_blocks_shapes():
    torch.manual_seed(0)
    assert down_sample_blk(3, 10)(torch.zeros((2, 3, 20, 20))).shape == (2, 10, 10, 10)
    assert base_net()(torch.zeros((2, 3, 256, 256))).shape == (2, 64, 32, 32)
    blk = down_sample_blk(3, 10)
    assert [type(m).__name__ for m in blk] == ["Conv2d", "BatchNorm2d", "ReLU"] * 2 + ["MaxPool2d"]


@pytest.fixture(scope="module")
def tiny_256():
    torch.manual_seed(0)
    net = tiny_ssd(num_classes=1)
    with torch.no_grad():
        out = net(torch.zeros((32, 3, 256, 256)))
    return net, out


def test_tiny_ssd_book_output_shapes(tiny_256):
    net, (anchors, cls_preds, bbox_preds) = tiny_256
    assert anchors.shape == (1, 5444, 4)
    assert cls_preds.shape == (32, 5444, 2)
    assert bbox_preds.shape == (32, 21776)
    assert net.num_classes == 1
    assert net.num_anchors_per_cell == [4] * 5


def test_tiny_ssd_anchors_equal_multiscale_anchors_of_the_feature_maps(tiny_256):
    _, (anchors, _, _) = tiny_256
    want = generate_multiscale_anchors([(32, 32), (16, 16), (8, 8), (4, 4), (1, 1)], TINY_SSD_SIZES, TINY_SSD_RATIOS)
    assert torch.equal(anchors[0], want)
    # golden: the first anchor is size 0.2, ratio 1, centred on cell (0, 0) of the 32 x 32 map
    c = 0.5 / 32
    assert torch.allclose(anchors[0, 0], torch.tensor([c - 0.1, c - 0.1, c + 0.1, c + 0.1]))


def test_tiny_ssd_has_the_books_module_names():
    net = tiny_ssd(num_classes=2)
    keys = set(net.state_dict())
    for i in range(5):
        assert f"cls_{i}.weight" in keys and f"bbox_{i}.bias" in keys
    for i in range(4):
        assert f"backbone.blk_{i}.0.weight" in keys or f"backbone.blk_{i}.0.0.weight" in keys
    assert isinstance(net.backbone, TinySSDBackbone)
    assert isinstance(net.backbone.blk_4, nn.AdaptiveMaxPool2d)
    assert net.cls_0.out_channels == 4 * 3 and net.bbox_4.out_channels == 16


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("channels_last", [True, False])
def test_tiny_ssd_equals_the_book_network(train, channels_last, device):
    """Same weights as a transcription of the book's TinySSD: same anchors and predictions
    (bit for bit in NCHW on the CPU; NHWC convolutions round differently, and on CUDA the two
    networks' kernels may too)."""
    torch.manual_seed(0)
    book = BookTinySSD(num_classes=2)
    net = tiny_ssd(num_classes=2, channels_last=channels_last)
    net.load_state_dict(_book_to_pixbox(book.state_dict()), strict=True)
    book.train(train).to(device)
    net.train(train).to(device)
    x = torch.rand(2, 3, 64, 96, device=device)
    with torch.no_grad():
        want = book(x)
        got = net(x)
    assert all(t.device.type == device for t in got)
    exact = device == "cpu"
    assert torch.equal(got[0], want[0]) if exact else torch.allclose(got[0], want[0], rtol=0, atol=1e-6)
    tol = 0.0 if exact and not channels_last else 1e-4
    assert torch.allclose(got[1], want[1], rtol=0, atol=tol)
    assert torch.allclose(got[2], want[2], rtol=0, atol=tol)


# ---------------------------------------------------------------------------------------------
# Anchors: actual feature-map sizes, non-square inputs, device and dtype, caching


def test_non_square_input_anchors_match_its_feature_maps(device):
    torch.manual_seed(0)
    net = tiny_ssd(num_classes=1).to(device)
    x = torch.rand(1, 3, 128, 192, device=device)
    with torch.no_grad():
        feats = net.backbone(x)
        anchors, cls_preds, bbox_preds = net(x)
    shapes = [tuple(f.shape[-2:]) for f in feats]
    assert shapes == [(16, 24), (8, 12), (4, 6), (2, 3), (1, 1)]
    a = 4 * sum(h * w for h, w in shapes)
    assert anchors.shape == (1, a, 4) and cls_preds.shape == (1, a, 2) and bbox_preds.shape == (1, 4 * a)
    want = generate_multiscale_anchors(shapes, TINY_SSD_SIZES, TINY_SSD_RATIOS)  # on the CPU
    torch.testing.assert_close(anchors[0].cpu(), want, rtol=0, atol=0 if device == "cpu" else 1e-6)


def test_non_square_ssd_resnet18(device):
    torch.manual_seed(0)
    net = build_ssd("resnet18", num_classes=2, image_size=128).eval().to(device)
    x = torch.rand(1, 3, 96, 160, device=device)
    with torch.no_grad():
        feats = net.backbone(x)
        anchors, cls_preds, _ = net(x)
    shapes = [tuple(f.shape[-2:]) for f in feats]
    assert shapes == [(12, 20), (6, 10), (3, 5), (2, 3), (1, 2)]
    want = generate_multiscale_anchors(shapes, net.sizes, net.ratios)  # on the CPU
    torch.testing.assert_close(anchors[0].cpu(), want, rtol=0, atol=0 if device == "cpu" else 1e-6)
    assert cls_preds.shape == (1, anchors.shape[1], 3)


def test_anchors_follow_input_device_and_dtype(device):
    torch.manual_seed(0)
    net = tiny_ssd(num_classes=1).to(device)
    with torch.no_grad():
        a32 = net(torch.rand(1, 3, 64, 64, device=device))[0]
        net = net.double()
        a64, cls64, box64 = net(torch.rand(1, 3, 64, 64, device=device, dtype=torch.float64))
    assert a32.dtype == torch.float32 and a64.dtype == torch.float64
    assert a64.device.type == torch.device(device).type and cls64.dtype == box64.dtype == torch.float64
    assert torch.allclose(a32.double(), a64)


def test_anchors_stay_float32_under_autocast(device):
    torch.manual_seed(0)
    net = tiny_ssd(num_classes=1).to(device)
    x = torch.rand(2, 3, 64, 64, device=device)
    half = torch.bfloat16 if device == "cpu" else torch.float16  # the mixed precision of each device
    with torch.autocast(device, dtype=half):
        anchors, cls_preds, bbox_preds = net(x)
    assert cls_preds.dtype == half and anchors.dtype == torch.float32 and anchors.device.type == device
    bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, _toy_batch(2, 64)[1].to(device))
    out = multibox_loss(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks)
    assert out["loss"].dtype == torch.float32 and torch.isfinite(out["loss"])
    out["loss"].backward()
    assert torch.isfinite(net.cls_0.weight.grad).all() and net.cls_0.weight.grad.abs().sum() > 0


def test_anchors_are_cached_per_input_size():
    net = tiny_ssd(num_classes=1).eval()
    with torch.no_grad():
        a1 = net(torch.rand(1, 3, 64, 64))[0]
        a2 = net(torch.rand(2, 3, 64, 64))[0]
        a3 = net(torch.rand(1, 3, 64, 128))[0]
        a4 = net(torch.rand(1, 3, 64, 64))[0]
    assert a1 is a2 and a1 is a4  # batch size does not matter
    assert a3.shape != a1.shape
    assert not a1.requires_grad


# ---------------------------------------------------------------------------------------------
# SSD options


def test_channels_last_does_not_change_outputs(device):
    torch.manual_seed(0)
    cl = tiny_ssd(num_classes=1)
    plain = tiny_ssd(num_classes=1, channels_last=False)
    plain.load_state_dict(cl.state_dict())
    cl, plain = cl.to(device), plain.to(device)  # moving keeps the memory format
    assert cl.cls_0.weight.is_contiguous(memory_format=torch.channels_last)
    assert plain.cls_0.weight.is_contiguous()
    x = torch.rand(2, 3, 64, 64, device=device)
    with torch.no_grad():
        for a, b in zip(cl(x), plain(x)):
            assert torch.allclose(a, b, atol=1e-5)


def test_image_mean_and_std_normalize_the_input(device):
    torch.manual_seed(0)
    backbone = TinySSDBackbone()
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    norm = SSD(backbone, backbone.feature_channels, TINY_SSD_SIZES, TINY_SSD_RATIOS, 1, image_mean=mean, image_std=std)
    raw = SSD(backbone, backbone.feature_channels, TINY_SSD_SIZES, TINY_SSD_RATIOS, 1)
    raw.load_state_dict(norm.state_dict())
    norm.eval().to(device)
    raw.eval().to(device)
    x = torch.rand(1, 3, 64, 64, device=device)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    x_norm = (x - mean_t) / std_t
    with torch.no_grad():
        assert torch.allclose(norm(x)[1], raw(x_norm)[1], atol=1e-5)
        assert not torch.allclose(norm(x)[1], raw(x)[1], atol=1e-3)
    assert norm.image_mean.flatten().tolist() == pytest.approx(mean)
    assert "image_std" not in norm.state_dict()  # configuration, not weights


def test_ssd_custom_backbone_and_sizes_per_scale(device):
    class TwoScales(nn.Module):
        def forward(self, x):
            return [F.avg_pool2d(x, 4), F.avg_pool2d(x, 8)]

    net = SSD(TwoScales(), [3, 3], [[0.3], [0.6, 0.8]], [[1.0], [1.0, 2.0, 0.5]], num_classes=4).to(device)
    assert net.num_anchors_per_cell == [1, 4]
    anchors, cls_preds, bbox_preds = net(torch.rand(2, 3, 32, 32, device=device))
    assert anchors.device.type == cls_preds.device.type == bbox_preds.device.type == device
    assert anchors.shape == (1, 64 + 16 * 4, 4)
    assert cls_preds.shape == (2, 128, 5) and bbox_preds.shape == (2, 512)


def _two_scale_backbone():
    class TwoScales(nn.Module):
        def forward(self, x):
            return [F.avg_pool2d(x, 4), F.avg_pool2d(x, 8)]
    return TwoScales()


@pytest.mark.parametrize("kwargs, exc, msg", [
    (dict(feature_channels=[3]), ValueError, r"sizes must have one list per feature map \(1\), got 2"),
    (dict(feature_channels=[]), ValueError, "feature_channels must be a non-empty list"),
    (dict(num_classes=0), ValueError, "num_classes must be >= 1, got 0"),
    (dict(num_classes=1.5), TypeError, "num_classes must be an int"),
    (dict(image_std=(1, 0, 1)), ValueError, r"image_std must be positive"),
    (dict(image_mean=(0, 0)), ValueError, r"image_mean must have 3 values"),
    (dict(sizes=[[0.3], [-1]]), ValueError, "sizes"),
    (dict(ratios=[[1], [1], [1]]), ValueError, r"ratios must have one list per scale \(2\), got 3"),
    (dict(score_threshold=2), ValueError, "score_threshold must be <= 1"),
    (dict(topk=0), ValueError, "topk must be >= 1"),
    (dict(backbone="resnet18"), TypeError, "backbone must be an nn.Module, got str"),
])
def test_ssd_constructor_is_validated(kwargs, exc, msg):
    args = dict(backbone=_two_scale_backbone(), feature_channels=[3, 3], sizes=[[0.3], [0.6]], ratios=[1.0],
                num_classes=1) | kwargs
    with pytest.raises(exc, match=msg):
        SSD(**args)


def test_forward_validates_images_and_backbone_output():
    net = SSD(_two_scale_backbone(), [3, 3], [[0.3], [0.6]], [1.0], num_classes=1)
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, H, W\], got \(1, 1, 32, 32\)"):
        net(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, H, W\], got \(3, 32, 32\)"):
        net(torch.rand(3, 32, 32))
    with pytest.raises(TypeError, match="images must be a floating-point tensor, got dtype torch.uint8"):
        net(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    net.backbone = nn.Identity()
    net.backbone.forward = lambda x: [F.avg_pool2d(x, 4)]
    with pytest.raises(ValueError, match="the backbone returned 1 feature maps, expected 2"):
        net(torch.rand(1, 3, 32, 32))


# ---------------------------------------------------------------------------------------------
# predict


def _zero_offset_tiny(num_classes=2, seed=0):
    torch.manual_seed(seed)
    net = tiny_ssd(num_classes=num_classes)
    with torch.no_grad():
        for i in range(5):
            getattr(net, f"bbox_{i}").weight.zero_()
            getattr(net, f"bbox_{i}").bias.zero_()
    return net


def test_predict_returns_clipped_pixel_boxes_sorted_by_score(device):
    net = _zero_offset_tiny().to(device)
    x = torch.rand(2, 3, 64, 96, device=device)
    net.train()
    dets = net.predict(x, score_threshold=0.2)
    assert net.training  # the mode is given back
    assert len(dets) == 2
    with torch.no_grad():
        anchors = net.eval()(x)[0][0]
    pix = anchors.clamp(0, 1) * torch.tensor([96.0, 64, 96, 64], device=device)
    for d in dets:
        assert all(v.device.type == device for v in d.values())
        boxes, scores, labels = d["boxes"], d["scores"], d["labels"]
        assert boxes.shape[1] == 4 and len(boxes) == len(scores) == len(labels) > 0
        assert labels.dtype == torch.int64 and labels.min() >= 0 and labels.max() <= 1
        assert (scores[1:] <= scores[:-1]).all() and (scores > 0.2).all()
        assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 96).all() and (boxes[:, 3] <= 64).all()
        # zero offsets: each detection is an anchor, clipped, in pixels (x scaled by W, y by H)
        dist = (boxes[:, None, :] - pix[None]).abs().amax(dim=2).min(dim=1).values  # [K]
        assert dist.max() < 1e-3


def test_predict_equals_softmax_and_decode_detections(device):
    torch.manual_seed(0)
    net = tiny_ssd(num_classes=3).eval().to(device)
    x = torch.rand(2, 3, 64, 64, device=device)
    got = net.predict(x, score_threshold=0.1, nms_threshold=0.3, topk=20)
    with torch.no_grad():
        anchors, cls_preds, bbox_preds = net(x)
    want = decode_detections(F.softmax(cls_preds, 2).permute(0, 2, 1), bbox_preds, anchors, score_threshold=0.1,
                             nms_threshold=0.3, topk=20, clip=True)
    for g, w in zip(got, want):
        assert torch.allclose(g["boxes"], w["boxes"] * 64)
        assert torch.equal(g["scores"], w["scores"]) and torch.equal(g["labels"], w["labels"])
        assert not g["boxes"].requires_grad


def test_predict_parameters_change_the_output(device):
    net = _zero_offset_tiny(num_classes=2).to(device)
    x = torch.rand(1, 3, 64, 64, device=device)
    base = net.predict(x, score_threshold=0.05, nms_threshold=0.5, topk=1000)[0]
    assert len(net.predict(x, score_threshold=0.4, nms_threshold=0.5, topk=1000)[0]["scores"]) < len(base["scores"])
    assert len(net.predict(x, score_threshold=0.05, nms_threshold=0.9, topk=1000)[0]["scores"]) > len(base["scores"])
    assert len(net.predict(x, score_threshold=0.05, nms_threshold=0.5, topk=3)[0]["scores"]) == 3
    # the model's defaults are used when not given
    net.score_threshold, net.topk = 0.05, 1000
    net.nms_threshold = 0.5
    assert torch.equal(net.predict(x)[0]["scores"], base["scores"])


def test_predict_validates_options():
    net = tiny_ssd(num_classes=1)
    with pytest.raises(ValueError, match="nms_threshold must be <= 1, got 1.5"):
        net.predict(torch.rand(1, 3, 64, 64), nms_threshold=1.5)
    with pytest.raises(ValueError, match="topk must be >= 1, got 0"):
        net.predict(torch.rand(1, 3, 64, 64), topk=0)


# ---------------------------------------------------------------------------------------------
# Training


def _toy_batch(b: int, size: int, seed: int = 0):
    """Images with one bright square each, and its label row (class 0, normalized xyxy)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 3, size, size, generator=g) * 0.2
    labels = torch.zeros(b, 1, 5)
    for i in range(b):
        s = int(size * (0.3 + 0.3 * torch.rand(1, generator=g).item()))
        x0, y0 = (torch.randint(0, size - s, (2,), generator=g)).tolist()
        images[i, :, y0:y0 + s, x0:x0 + s] = 0.9
        labels[i, 0] = torch.tensor([0, x0 / size, y0 / size, (x0 + s) / size, (y0 + s) / size])
    return images, labels


def _train(net, images, labels, steps, lr, **loss_kwargs):
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    net.train()
    losses = []
    for _ in range(steps):
        anchors, cls_preds, bbox_preds = net(images)
        bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, labels)
        loss = multibox_loss(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks, **loss_kwargs)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("mining", [3.0, None])
def test_tiny_ssd_sgd_steps_reduce_the_loss(mining, device):
    torch.manual_seed(0)
    net = tiny_ssd(num_classes=1).to(device)
    images, labels = (t.to(device) for t in _toy_batch(8, 64))
    losses = _train(net, images, labels, steps=12, lr=0.05, negative_mining_ratio=mining)
    assert all(math.isfinite(v) for v in losses)
    assert min(losses[-3:]) < 0.7 * losses[0]


def test_ssd_resnet18_sgd_steps_reduce_the_loss(device):
    torch.manual_seed(0)
    net = build_ssd("resnet18", num_classes=1, image_size=128).to(device)
    images, labels = (t.to(device) for t in _toy_batch(4, 96))
    losses = _train(net, images, labels, steps=8, lr=0.01)
    assert all(math.isfinite(v) for v in losses)
    assert min(losses[-3:]) < 0.7 * losses[0]


# ---------------------------------------------------------------------------------------------
# build_ssd() on a ResNet


def test_ssd_scales_and_anchor_config():
    torch.manual_seed(0)
    net = build_ssd("resnet18", num_classes=3, image_size=256)
    assert net.num_anchors_per_cell == [4, 6, 6, 6, 4, 4]
    assert net.backbone.feature_channels == [128, 256, 512, 512, 256, 256]
    assert net.image_mean.flatten().tolist() == pytest.approx(IMAGENET_MEAN)
    with torch.no_grad():
        feats = net.eval().backbone(torch.zeros(1, 3, 256, 256))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2, 1]
    small = build_ssd("resnet18", num_classes=3, image_size=128)
    assert len(small.num_anchors_per_cell) == 5 and small.num_anchors_per_cell == [4, 6, 6, 4, 4]
    assert isinstance(net.backbone, BackboneWithExtras)
    assert small.cls_0.out_channels == 4 * 4 and small.bbox_1.out_channels == 6 * 4


def test_ssd_anchor_config_golden_values():
    sizes, ratios = ssd_anchor_config(5)
    assert sizes == [[0.1, 0.1732], [0.3, 0.3873], [0.5, 0.5916], [0.7, 0.7937], [0.9, 0.9487]]
    assert ratios[0] == [1.0, 2.0, 0.5] and ratios[1] == ratios[2] == [1.0, 2.0, 0.5, 3.0, 1 / 3]
    assert ratios[3] == ratios[4] == [1.0, 2.0, 0.5]
    sizes, _ = ssd_anchor_config(2, min_size=0.2, max_size=0.6)
    assert sizes == [[0.2, round(math.sqrt(0.2 * 0.6), 4)], [0.6, round(math.sqrt(0.6), 4)]]
    assert ssd_anchor_config(1)[0] == [[0.1, round(math.sqrt(0.1), 4)]]
    with pytest.raises(ValueError, match="num_scales must be a positive int, got 0"):
        ssd_anchor_config(0)
    with pytest.raises(ValueError, match="max_size must be >= 0.5"):
        ssd_anchor_config(3, min_size=0.5, max_size=0.4)


def test_ssd_pretrained_backbone_loads_strictly(tmp_path):
    torch.manual_seed(1)
    tv = resnet18()
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(tv.state_dict(), path)
    torch.manual_seed(2)
    net = build_ssd("resnet18", num_classes=1, image_size=128, pretrained_backbone=path)
    body = net.backbone.body.state_dict()
    for k, v in tv.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(body[k], v), k
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        build_ssd("resnet18", num_classes=1, pretrained_backbone=tmp_path / "missing.pth")
    torch.save(resnet34().state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match="r34.pth: does not match the ResNet state dict: .*unexpected keys"):
        build_ssd("resnet18", num_classes=1, pretrained_backbone=tmp_path / "r34.pth")


def test_ssd_builder_is_validated():
    with pytest.raises(ValueError, match=r"backbone must be one of .*got 'resnet19'; did you mean 'resnet18'\?"):
        build_ssd("resnet19", num_classes=1)
    with pytest.raises(ValueError, match="image_size must be an int >= 32, got 16"):
        build_ssd("resnet18", num_classes=1, image_size=16)
    with pytest.raises(ValueError, match="image_size must be a positive int or None"):
        tiny_ssd(1, image_size=-3)


# ---------------------------------------------------------------------------------------------
# MODELS and build_model


def test_models_dict_and_build_model():
    assert set(MODELS) == {"tiny_ssd", "ssd_resnet18", "ssd_resnet34", "ssd_resnet50", "ssd_efficientnet_lite0",
                           "faster_rcnn_resnet18", "faster_rcnn_resnet34", "faster_rcnn_resnet50", "fast_rcnn_resnet18",
                           "fast_rcnn_resnet34", "fast_rcnn_resnet50", "faster_rcnn_efficientnet_lite0",
                           "fast_rcnn_efficientnet_lite0", "ssd_efficientnet_lite1", "ssd_efficientnet_lite2",
                           "faster_rcnn_efficientnet_lite1", "faster_rcnn_efficientnet_lite2",
                           "fast_rcnn_efficientnet_lite1", "fast_rcnn_efficientnet_lite2"}
    net = build_model("tiny_ssd", num_classes=3, score_threshold=0.2, image_size=256)
    assert isinstance(net, SSD) and net.num_classes == 3 and net.score_threshold == 0.2
    net = build_model("ssd_resnet34", num_classes=2, image_size=128, topk=7)
    assert net.topk == 7 and net.backbone.feature_channels[:3] == [128, 256, 512]
    assert len(net.backbone.body.layer3) == 6  # ResNet-34
    r50 = build_model("ssd_resnet50", num_classes=1, image_size=128)
    assert r50.backbone.feature_channels == [512, 1024, 2048, 512, 256]


def test_build_model_suggests_the_nearest_name():
    with pytest.raises(ValueError, match=r"name must be one of .*got 'tiny-ssd'; did you mean 'tiny_ssd'\?"):
        build_model("tiny-ssd", num_classes=1)
