"""Training and inference on CUDA (issue 17): fp16 autocast with a gradient scaler, resume from ``last.pt``,
channels-last, and ``pixbox.load(...).predict`` on CUDA equal to the CPU's.

Every test here is marked ``cuda`` and skipped without a GPU (``make test-gpu`` runs them). They train ``tiny_ssd`` at
64 px on 16 generated bananas for a few steps. DDP on NCCL and ``--sync-bn`` are in test_distributed.py; the ops and
models run on CUDA through the ``device`` fixture (tests/conftest.py).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

import pixbox
from pixbox.data import make_dataset
from pixbox.data.datasets import DetectionDataset, collate_multibox
from pixbox.data.generators.bananas import render_banana
from pixbox.engine import Callback, load_checkpoint
from pixbox.engine.task import TaskData, TaskTrainer
from pixbox.models import build_model
from pixbox.tasks.detect import DetectConfig, DetectTask, build_train_transforms, train_detector

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")]

#: A tiny_ssd checkpoint trained on the CPU (tests/fixtures/tiny_ssd_v0.1/README.md).
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_ssd_v0.1"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bananas")
    make_dataset("bananas", root, num_train=16, num_val=4, image_size=64, progress=False)
    return root


@pytest.fixture
def deterministic(monkeypatch):
    """cuDNN's deterministic algorithms, so that two runs of the same seed can be compared closely."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)


def _config(data, project, **kwargs) -> DetectConfig:
    base = dict(data=str(data), project=str(project), epochs=1, batch=8, imgsz=64, workers=0, device="cuda",
                lr=0.02, warmup_epochs=0.5, seed=0, amp=False)
    return DetectConfig(**{**base, **kwargs})


def _batch(data, n: int = 8):
    ds = DetectionDataset(data, split="train", transforms=build_train_transforms("none", 64))
    return collate_multibox([ds[i] for i in range(n)])


def _trainer(data, project, *, amp: bool = False, channels_last: bool = False) -> TaskTrainer:
    """A tiny_ssd trainer on CUDA, the same initial weights every time."""
    torch.manual_seed(0)
    config = _config(data, project, amp=amp, channels_last=channels_last)
    model = build_model("tiny_ssd", 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    return TaskTrainer(DetectTask(), config, TaskData(None, class_names=["banana"]), model, opt, [], epochs=1,
                       verbose=False, device="cuda", amp=amp, channels_last=channels_last)


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


class KillAt(Callback):
    """A killed run: raises at the start of epoch index ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_start(self, trainer):
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt


# ----------------------------------------------------------------------------------------------
# fp16 autocast and the gradient scaler


def test_two_fp16_steps_with_a_gradient_scaler_follow_float32(data, tmp_path):
    """amp on CUDA is float16 autocast with a GradScaler: the forward runs in float16, and the scaler unscales the
    gradients before the optimizer step, so two steps give the float32 losses within fp16 rounding."""
    batch = _batch(data)
    fp16 = _trainer(data, tmp_path, amp=True)
    fp32 = _trainer(data, tmp_path, amp=False)
    assert fp16.device.type == "cuda" and fp16.model.cls_0.weight.device.type == "cuda"
    assert fp16.amp_dtype == torch.float16 and fp16.scaler.is_enabled() and "float16" in fp16.precision
    assert fp32.amp_dtype is None and not fp32.scaler.is_enabled()
    seen = []
    fp16.model.cls_0.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    before = {k: v.detach().clone() for k, v in fp16.model.state_dict().items()}
    got = [fp16.train_step(batch) for _ in range(2)]
    want = [fp32.train_step(batch) for _ in range(2)]
    assert seen == [torch.float16] * 2
    assert fp16.global_step == 2 and all(math.isfinite(v) for step in got for v in step.values())
    assert all(torch.isfinite(p).all() for p in fp16.model.parameters())
    assert got[0]["loss"] == pytest.approx(want[0]["loss"], rel=1e-2)  # the same weights: the forward alone
    # A step with inf/NaN gradients is skipped and halves the scale (65536 at the start).
    skipped = round(math.log2(65536.0 / fp16.scaler.get_scale()))
    assert 0 <= skipped <= 1, fp16.scaler.get_scale()
    if skipped == 0:  # both updates applied, and unscaled: the second loss follows float32's
        assert got[1]["loss"] == pytest.approx(want[1]["loss"], rel=3e-2)
    moved = max(float((v.float() - before[k].float()).abs().max()) for k, v in fp16.model.state_dict().items()
                if v.is_floating_point())
    assert moved > 1e-4


@pytest.mark.parametrize("amp", [False, True])
def test_a_killed_and_resumed_cuda_run_ends_like_an_uninterrupted_one(data, tmp_path, amp, deterministic):
    """2 epochs of 2 steps; killed at the start of epoch 2 and resumed from last.pt, the run ends with the
    uninterrupted run's weights, losses and (with amp) gradient scaler."""
    full = train_detector(_config(data, tmp_path, name="full", epochs=2, amp=amp), progress=False, verbose=False)
    with pytest.raises(KeyboardInterrupt):
        train_detector(_config(data, tmp_path, name="killed", epochs=2, amp=amp), progress=False, verbose=False,
                       callbacks=[KillAt(1)])
    killed = tmp_path / "killed"
    assert load_checkpoint(killed / "last.pt")["epoch"] == 1
    assert train_detector(None, resume=killed, progress=False, verbose=False) == killed
    a, b = load_checkpoint(killed / "last.pt"), load_checkpoint(full / "last.pt")
    assert a["epoch"] == b["epoch"] == 2 and a["global_step"] == b["global_step"] == 4
    precision = (full / "train.log").read_text()
    assert ("float16 autocast with a gradient scaler" in precision) is amp
    if amp:
        assert a["scaler"] and a["scaler"]["scale"] == b["scaler"]["scale"] > 0
    else:
        assert not a.get("scaler")
    # cuDNN is deterministic here, but CUDA's atomic adds are not: allow for their rounding (and fp16's)
    tol = dict(rtol=1e-2, atol=1e-3) if amp else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a["model"], b["model"], **tol)
    rows_a, rows_b = _rows(killed), _rows(full)
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b] == ["1", "2"]
    for ra, rb in zip(rows_a, rows_b):
        assert float(ra["lr"]) == float(rb["lr"])
        assert float(ra["train_loss"]) == pytest.approx(float(rb["train_loss"]), rel=tol["rtol"])


# ----------------------------------------------------------------------------------------------
# channels-last


def test_channels_last_trains_like_contiguous(data, tmp_path):
    batch = _batch(data, 4)
    plain = _trainer(data, tmp_path)
    last = _trainer(data, tmp_path, channels_last=True)
    assert last.model.cls_0.weight.is_contiguous(memory_format=torch.channels_last)
    assert last.to_device(batch[0]).is_contiguous(memory_format=torch.channels_last)
    assert last.to_device(batch[0]).device.type == "cuda"
    for _ in range(2):
        a, b = plain.train_step(batch), last.train_step(batch)
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3)
    assert last.model.cls_0.weight.is_contiguous(memory_format=torch.channels_last)  # the steps keep the format
    # The fast configuration of a GPU: channels-last with fp16 autocast.
    both = _trainer(data, tmp_path, amp=True, channels_last=True)
    for _ in range(2):
        assert math.isfinite(both.train_step(batch)["loss"])
    assert all(torch.isfinite(p).all() for p in both.model.parameters())


def test_a_channels_last_amp_run_writes_a_checkpoint_that_loads_on_the_cpu(data, tmp_path):
    run = train_detector(_config(data, tmp_path, name="fast", amp=True, channels_last=True), progress=False,
                         verbose=False)
    state = load_checkpoint(run / "best.pt")
    assert all(v.device.type == "cpu" for v in state["model"].values() if isinstance(v, torch.Tensor))
    predictor = pixbox.load(run / "best.pt", device="cpu")
    out = predictor.predict(render_banana(64, seed=1).image, score_threshold=0.0, topk=5)[0]
    assert out["boxes"].shape == (5, 4) and torch.isfinite(out["boxes"]).all()


# ----------------------------------------------------------------------------------------------
# inference


def test_load_predict_on_cuda_equals_the_cpu():
    cpu = pixbox.load(FIXTURE / "best.pt", device="cpu")
    gpu = pixbox.load(FIXTURE / "best.pt", device="cuda")
    assert gpu.device.type == "cuda" and next(gpu.model.parameters()).device.type == "cuda"
    images = [render_banana(96, seed=s).image for s in range(4)]
    found = 0
    for image in images:
        (want,) = cpu.predict(image, score_threshold=0.05, topk=20)
        (got,) = gpu.predict(image, score_threshold=0.05, topk=20)
        assert got["boxes"].device.type == "cpu"  # results come back to the CPU
        assert got["labels"].tolist() == want["labels"].tolist() and got["size"] == want["size"]
        torch.testing.assert_close(got["scores"], want["scores"], rtol=0, atol=1e-4)
        torch.testing.assert_close(got["boxes"], want["boxes"], rtol=0, atol=1e-2)
        found += len(want["boxes"])
    assert found > 0
    # A batch of images gives each image's own detections.
    batched = gpu.predict(images, score_threshold=0.05, topk=20)
    for image, b in zip(images, batched):
        (one,) = gpu.predict(image, score_threshold=0.05, topk=20)
        assert b["labels"].tolist() == one["labels"].tolist()
        torch.testing.assert_close(b["boxes"], one["boxes"], rtol=0, atol=1e-3)
