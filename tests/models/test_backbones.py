"""Tests for pixbox.models.backbones: torchvision-compatible ResNets and their feature taps."""

from __future__ import annotations

import pytest
import torch

from pixbox.models.backbones import (
    BACKBONES,
    BasicBlock,
    Bottleneck,
    ResNet,
    ResNetFeatures,
    load_state_dict_file,
    resnet18,
    resnet34,
    resnet50,
)


def _bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def expected_resnet_state(blocks: list[int], bottleneck: bool, num_classes: int = 1000) -> dict:
    """The torchvision ResNet state_dict (key -> shape), written from the architecture description.

    Stem: conv1 7x7 3->64, bn1. Stage i (planes 64, 128, 256, 512) has blocks[i] blocks; a
    basic block is conv3x3-bn-conv3x3-bn, a bottleneck conv1x1-bn-conv3x3-bn-conv1x1(x4)-bn; the
    first block of a stage gets a downsample (conv1x1 + bn) when the stride is 2 or the channel
    count changes. Head: fc from 512 * expansion to num_classes.
    """
    exp = 4 if bottleneck else 1
    state = {"conv1.weight": (64, 3, 7, 7), **_bn("bn1", 64)}
    cin = 64
    for i, (planes, n) in enumerate(zip([64, 128, 256, 512], blocks)):
        for j in range(n):
            p = f"layer{i + 1}.{j}"
            if bottleneck:
                state[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
                state.update(_bn(f"{p}.bn1", planes))
                state[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                state.update(_bn(f"{p}.bn2", planes))
                state[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
                state.update(_bn(f"{p}.bn3", planes * 4))
            else:
                state[f"{p}.conv1.weight"] = (planes, cin, 3, 3)
                state.update(_bn(f"{p}.bn1", planes))
                state[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
                state.update(_bn(f"{p}.bn2", planes))
            if j == 0 and (i > 0 or cin != planes * exp):
                state[f"{p}.downsample.0.weight"] = (planes * exp, cin, 1, 1)
                state.update(_bn(f"{p}.downsample.1", planes * exp))
            cin = planes * exp
    state["fc.weight"] = (num_classes, 512 * exp)
    state["fc.bias"] = (num_classes,)
    return state


SPECS = {"resnet18": ([2, 2, 2, 2], False), "resnet34": ([3, 4, 6, 3], False), "resnet50": ([3, 4, 6, 3], True)}
# torchvision's documented parameter counts (ImageNet, 1000 classes).
PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {name: fn() for name, fn in BACKBONES.items()}


@pytest.mark.parametrize("name", list(SPECS))
def test_state_dict_keys_and_shapes_match_torchvision(nets, name):
    got = {k: tuple(v.shape) for k, v in nets[name].state_dict().items()}
    want = expected_resnet_state(*SPECS[name])
    assert list(got) == list(want)  # same keys, same order
    assert got == want


@pytest.mark.parametrize("name", list(SPECS))
def test_parameter_counts_equal_torchvision(nets, name):
    assert sum(p.numel() for p in nets[name].parameters()) == PARAMS[name]


def test_resnet50_has_bottlenecks_and_resnet18_basic_blocks(nets):
    assert isinstance(nets["resnet50"].layer3[0], Bottleneck)
    assert isinstance(nets["resnet18"].layer3[0], BasicBlock)
    assert BACKBONES == {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50}


def test_num_classes_changes_fc_and_output():
    torch.manual_seed(0)
    net = resnet18(num_classes=7).eval()
    assert tuple(net.fc.weight.shape) == (7, 512)
    with torch.no_grad():
        assert net(torch.rand(2, 3, 64, 48)).shape == (2, 7)
    want = expected_resnet_state([2, 2, 2, 2], False, num_classes=7)
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == want


@pytest.mark.parametrize("bad, exc", [(0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_num_classes_is_validated(bad, exc):
    with pytest.raises(exc, match="num_classes"):
        resnet18(num_classes=bad)


def test_resnet_layers_are_validated():
    with pytest.raises(ValueError, match=r"layers must be 4 positive ints.*\[2, 2, 2\]"):
        ResNet(BasicBlock, [2, 2, 2])
    with pytest.raises(TypeError, match="block must be BasicBlock or Bottleneck"):
        ResNet(torch.nn.Conv2d, [2, 2, 2, 2])


def test_strict_load_from_another_instance(tmp_path, nets):
    path = tmp_path / "resnet18.pth"
    torch.save(nets["resnet18"].state_dict(), path)
    torch.manual_seed(123)
    other = resnet18()
    assert not torch.equal(other.conv1.weight, nets["resnet18"].conv1.weight)
    assert load_state_dict_file(other, path) is other
    for (k, a), (_, b) in zip(other.state_dict().items(), nets["resnet18"].state_dict().items()):
        assert torch.equal(a, b), k
    # a checkpoint wrapping the state dict under "state_dict" loads too
    torch.save({"state_dict": nets["resnet18"].state_dict(), "epoch": 3}, tmp_path / "wrapped.pth")
    load_state_dict_file(resnet18(), tmp_path / "wrapped.pth")


def test_load_errors_name_the_file_and_the_keys(tmp_path, nets):
    with pytest.raises(FileNotFoundError, match="checkpoint file not found.*nope.pth"):
        load_state_dict_file(resnet18(), tmp_path / "nope.pth")
    p18 = tmp_path / "r18.pth"
    torch.save(nets["resnet18"].state_dict(), p18)
    with pytest.raises(ValueError, match=r"r18.pth.*missing keys \(layer1.2.conv1.weight"):
        load_state_dict_file(resnet34(), p18)
    with pytest.raises(ValueError, match=r"unexpected keys \(layer1.2"):
        p34 = tmp_path / "r34.pth"
        torch.save(nets["resnet34"].state_dict(), p34)
        load_state_dict_file(resnet18(), p34)
    with pytest.raises(ValueError, match=r"2 shape mismatches \(fc.weight: file \(1000, 512\) vs model \(10, 512\)"):
        load_state_dict_file(resnet18(num_classes=10), p18)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth: cannot be read as a torch state dict"):
        load_state_dict_file(resnet18(), junk)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="expected a state dict"):
        load_state_dict_file(resnet18(), tmp_path / "list.pth")
    with pytest.raises(TypeError, match="path must be a str or a path"):
        load_state_dict_file(resnet18(), 3)


def test_features_shapes_channels_and_shared_weights(nets):
    net = nets["resnet18"]
    body = ResNetFeatures(net)
    assert body.feature_channels == [128, 256, 512]
    assert body.conv1 is net.conv1 and body.layer4 is net.layer4
    assert not any(k.startswith("fc.") for k in body.state_dict())
    # Its keys are torchvision's (a subset of the full network's).
    assert set(body.state_dict()) == {k for k in net.state_dict() if not k.startswith("fc.")}
    with torch.no_grad():
        feats = body.eval()(torch.rand(1, 3, 96, 80))
    assert [tuple(f.shape) for f in feats] == [(1, 128, 12, 10), (1, 256, 6, 5), (1, 512, 3, 3)]


def test_features_are_the_network_stages(nets):
    """layer4 features through avgpool and fc give the classifier's logits exactly."""
    net = nets["resnet18"].eval()
    body = ResNetFeatures(net, ("layer1", "layer4"))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        f1, f4 = body(x)
        logits = net.fc(torch.flatten(net.avgpool(f4), 1))
        assert torch.allclose(logits, net(x), atol=1e-6)
    assert f1.shape == (2, 64, 16, 16)


def test_features_return_layers_change_output_and_prune(nets):
    body = ResNetFeatures(nets["resnet50"], ("layer1", "layer3"))
    assert body.feature_channels == [256, 1024]
    assert not hasattr(body, "layer4")
    assert ResNetFeatures(nets["resnet50"], "layer2").feature_channels == [512]


@pytest.mark.parametrize("layers, msg", [
    ((), "non-empty subset"),
    (("layer5",), r"subset of \['layer1'"),
    (("layer3", "layer2"), "increasing depth"),
    (("layer2", "layer2"), "distinct"),
])
def test_features_return_layers_are_validated(nets, layers, msg):
    with pytest.raises(ValueError, match=msg):
        ResNetFeatures(nets["resnet18"], layers)


def test_features_need_a_resnet():
    with pytest.raises(TypeError, match="resnet must be a pixbox.models.backbones.ResNet, got Linear"):
        ResNetFeatures(torch.nn.Linear(2, 2))
