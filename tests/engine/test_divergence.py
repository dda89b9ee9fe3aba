"""A diverging run stops with one clear message in every task (issue 19, bad case 6).

Before: ``classify train --lr 1e6`` exited 0 with a best.pt of infinite BatchNorm variances
that predicted one class for everything (the loss, 1e25, was finite, so the NaN check never
fired); detection failed with "cls_probs must not contain NaN" and segmentation with a raw
FloatingPointError traceback."""

import subprocess
import sys

import pytest
import torch

import pixbox
from pixbox.data import make_dataset
from pixbox.engine.checkpoint import load_checkpoint

_RUN = dict(batch=4, workers=0, device="cpu", amp=False, epochs=2, lr=1e6, warmup_epochs=0, momentum=0.9,
            pretrained="none")


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_dataset("classification", root / "cls", num_train=8, num_val=4, image_size=32, progress=False)
    make_dataset("segmentation", root / "seg", num_train=8, num_val=2, image_size=48, progress=False)
    make_dataset("bananas", root / "det", num_train=8, num_val=4, image_size=64, progress=False)
    return root


@pytest.mark.parametrize("task, train, options", [
    ("cls", "train_classifier", dict(model="resnet18", imgsz=32)),
    ("seg", "train_segmenter", dict(model="fcn_resnet18", crop=(48, 48))),
    ("det", "train_detector", dict(model="tiny_ssd", imgsz=64)),
], ids=["classify", "segment", "detect"])
def test_a_huge_learning_rate_stops_with_a_clear_error(datasets, tmp_path, task, train, options):
    cfg = dict(_RUN, **options, data=str(datasets / task), project=str(tmp_path), name="run")
    with pytest.raises(FloatingPointError, match=r"^training diverged in epoch 1: .*; try a lower learning rate "
                                                 r"\(--lr; it is .*\)$"):
        getattr(pixbox, train)(cfg, progress=False, verbose=False)
    assert not (tmp_path / "run" / "best.pt").exists() and not (tmp_path / "run" / "last.pt").exists()


def test_non_finite_buffers_are_caught_even_when_the_loss_is_finite():
    from types import SimpleNamespace

    from pixbox.engine.trainer import Trainer

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4))
    model[1].running_var.fill_(float("inf"))
    fake = SimpleNamespace(model=model, epoch=2, lr=0.5)
    fake._diverged = lambda what: Trainer._diverged(fake, what)
    with pytest.raises(FloatingPointError, match=r"epoch 3: the weights are no longer finite \(1.running_var\)"):
        Trainer.check_finite_weights(fake)


def test_the_cli_says_it_in_one_line(datasets, tmp_path):
    done = subprocess.run([sys.executable, "-m", "pixbox", "classify", "train", "--data", str(datasets / "cls"),
                           "--model", "resnet18", "--imgsz", "32", "--batch", "4", "--workers", "0", "--epochs", "1",
                           "--lr", "1e6", "--pretrained", "none", "--device", "cpu", "--no-amp", "--project", str(tmp_path), "--name", "r"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "training diverged in epoch 1" in done.stderr and "--lr" in done.stderr
