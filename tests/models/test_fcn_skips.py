"""FCN-16s and FCN-8s (``output_stride``): skip connections from finer backbone features."""

from __future__ import annotations

import pytest
import torch

from pixbox.models.fcn import SEGMENTATION_MODELS, build_fcn


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("backbone, taps", [("resnet18", ["layer3", "layer2"]),
                                            ("efficientnet_lite0", ["blocks.10", "blocks.4"])])
@pytest.mark.parametrize("output_stride", [8, 16])
def test_skip_taps_and_shapes(backbone, taps, output_stride, device):
    torch.manual_seed(0)
    net = build_fcn(backbone, 5, output_stride=output_stride).eval().to(device)
    assert net.skip_layers == taps[: {16: 1, 8: 2}[output_stride]]
    assert net.upsample.stride == (output_stride, output_stride)
    for h, w in ((64, 96), (33, 51), (1, 1)):
        out = net(torch.rand(1, 3, h, w, device=device))
        assert out.shape == (1, 5, h, w) and out.device.type == device


def test_untrained_skips_add_nothing(device):
    """Zero-initialised skip scores: the output is the stride-32 scores upsampled 2x, 2x, 8x."""
    torch.manual_seed(0)
    net = build_fcn("resnet18", 3, output_stride=8).eval().to(device)
    x = torch.rand(1, 3, 64, 64).to(device)
    with torch.no_grad():
        xn = (x - net.image_mean) / net.image_std
        scores = net.classifier(net.backbone.forward_features(xn))
        for up in net.skip_upsamples:
            scores = up(scores)
        torch.testing.assert_close(net(x), net.upsample(scores))


def test_skip_scores_come_from_the_finer_features(device):
    """With a non-zero skip score layer, the output depends on the stride-8 features as that layer says."""
    torch.manual_seed(0)
    net = build_fcn("resnet18", 3, output_stride=8).eval().to(device)
    x = torch.rand(1, 3, 64, 64).to(device)
    with torch.no_grad():
        net.skip_scores[1].bias.copy_(torch.tensor([0.0, 1.0, -1.0]))  # the stride-8 skip
        base = build_fcn("resnet18", 3, output_stride=8).eval().to(device)
        base.load_state_dict(net.state_dict())
        base.skip_scores[1].bias.zero_()
        delta = net(x) - base(x)  # a constant added at stride 8, upsampled 8x bilinearly: constant inside
    inner = delta[..., 8:-8, 8:-8]
    torch.testing.assert_close(inner[0, 1], torch.ones_like(inner[0, 1]), atol=1e-4, rtol=0)
    torch.testing.assert_close(inner[0, 2], -torch.ones_like(inner[0, 2]), atol=1e-4, rtol=0)


def test_every_parameter_gets_a_gradient(device):
    net = build_fcn("efficientnet_lite0", 4, output_stride=8).to(device)
    net(torch.rand(2, 3, 64, 64, device=device)).logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_freeze_upsample_freezes_every_upsampling_layer():
    net = build_fcn("resnet18", 4, output_stride=8, freeze_upsample=True)
    assert net.freeze_upsample
    assert not any(p.requires_grad for p in net.skip_upsamples.parameters())
    assert all(p.requires_grad for p in net.skip_scores.parameters())


def test_bad_output_stride():
    with pytest.raises(ValueError, match="output_stride must be 32"):
        build_fcn("resnet18", 2, output_stride=4)


def test_registered_names():
    assert SEGMENTATION_MODELS["fcn8s_resnet18"](3).output_stride == 8
    assert SEGMENTATION_MODELS["fcn_resnet18"](3).output_stride == 32
