"""Tests for ``pixbox segment train|val|predict``: argument errors and a tiny end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from pixbox.cli.main import main
from pixbox.data import make_dataset
from pixbox.engine import load_checkpoint

FAST = ["--batch", "4", "--workers", "0", "--device", "cpu", "--model", "fcn_resnet18", "--pretrained", "none"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    make_dataset("segmentation", root, num_train=8, num_val=2, image_size=40, progress=False)
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    code = main(["segment", "train", "--data", str(data), "--epochs", "1", "--crop", "32x48", "--project",
                 str(project), "--name", "cli", "--freeze-upsample", *FAST])
    assert code == 0
    return project / "cli"


@pytest.mark.parametrize("argv, message", [
    (["segment"], "required: <action>"),
    (["segment", "trian"], "did you mean 'train'?"),
    (["segment", "train", "--crops", "64"], "did you mean '--crop'?"),
    (["segment", "train", "--model", "fcn_resnet"], "unknown model 'fcn_resnet'; did you mean"),
    (["segment", "train", "--crop", "320by480"], "argument --crop: must be HxW"),
    (["segment", "val", "--data", "x"], "the following arguments are required: --weights"),
    (["segment", "predict", "--weights", "w.pt"], "the following arguments are required: IMAGE"),
])
def test_usage_errors_return_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_train_saves_the_flags(run):
    state = load_checkpoint(run / "last.pt")
    assert state["config"]["crop"] == [32, 48] and state["config"]["freeze_upsample"] is True
    from pixbox.models.fcn import SEGMENTATION_MODELS

    fresh = SEGMENTATION_MODELS["fcn_resnet18"](6).state_dict()  # bilinear-initialised upsampling
    up = [k for k in state["model"] if k.startswith("upsample")]
    assert up and all(torch.equal(state["model"][k], fresh[k]) for k in up)  # frozen: unchanged


def test_val_prints_miou_table(run, data, tmp_path, capsys):
    assert main(["segment", "val", "--weights", str(run / "best.pt"), "--out", str(tmp_path), "--device",
                 "cpu"]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "val_metrics.json").read_text())
    assert "mIoU" in out or "miou" in out.lower()
    assert "background" in out and "starfish" in out
    assert f"{metrics['miou']:.3f}" in out
    assert (tmp_path / "confusion_matrix.png").is_file()


def test_predict_writes_palette_pngs(run, data, tmp_path, capsys):
    images = sorted((data / "JPEGImages").glob("val_*"))
    assert main(["segment", "predict", *map(str, images), "--weights", str(run / "best.pt"), "--out", str(tmp_path),
                 "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.count("%") >= len(images)
    for p in images:
        with Image.open(tmp_path / f"{p.stem}.png") as im:
            assert im.mode == "P" and im.size == (40, 40)
        assert (tmp_path / f"{p.stem}_overlay.png").is_file()


def test_user_errors_return_1(data, tmp_path, capsys):
    assert main(["segment", "train", "--data", str(tmp_path / "nowhere"), *FAST]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["segment", "val", "--weights", str(tmp_path / "w.pt"), "--data", str(data)]) == 1
    assert "w.pt" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["segment", "train", "--data", str(tmp_path / "empty"), "--project", str(tmp_path / "r"), *FAST]) == 1
    assert "split 'train' not found" in capsys.readouterr().err
