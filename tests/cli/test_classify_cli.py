"""Tests for ``pixbox classify train|val|predict``: argument errors and tiny end-to-end runs."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from pixbox.cli.main import main
from pixbox.data import make_dataset
from pixbox.engine import load_checkpoint

FAST = ["--batch", "8", "--imgsz", "32", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("objects")
    make_dataset("classification", root, num_train=18, num_val=12, image_size=32, progress=False)
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    code = main(["classify", "train", "--data", str(data), "--epochs", "1", "--project", str(project),
                 "--name", "cli", "--head-lr-mult", "5", "--freeze", "bn", *FAST])
    assert code == 0
    return project / "cli"


@pytest.mark.parametrize("argv, message", [
    (["classify"], "required: <action>"),
    (["classify", "trian"], "did you mean 'train'?"),
    (["classify", "train", "--epocs", "2"], "did you mean '--epochs'?"),
    (["classify", "train", "--model", "resnet19"], "unknown model 'resnet19'; did you mean"),
    (["classify", "train", "--freeze", "backbon"], "unknown freeze mode 'backbon'; did you mean 'backbone'?"),
    (["classify", "train", "--head-lr-mult", "0"], "argument --head-lr-mult: must be > 0"),
    (["classify", "val", "--data", "x"], "the following arguments are required: --weights"),
    (["classify", "predict", "--weights", "w.pt"], "the following arguments are required: IMAGE"),
])
def test_usage_errors_return_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_train_writes_a_run_with_the_flags(run):
    state = load_checkpoint(run / "last.pt")
    assert state["config"]["head_lr_mult"] == 5.0 and state["config"]["freeze"] == "bn"
    rates = {g["name"]: g["lr"] for g in state["optimizer"]["param_groups"]}
    assert rates["head"] == pytest.approx(5 * rates["backbone"])
    assert (run / "confusion_matrix.png").is_file()


def test_val_prints_accuracy_table_and_writes_files(run, data, tmp_path, capsys):
    assert main(["classify", "val", "--weights", str(run / "best.pt"), "--out", str(tmp_path), "--device",
                 "cpu"]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "starfish" in out and "banana" in out
    metrics = json.loads((tmp_path / "val_metrics.json").read_text())
    assert f"accuracy {metrics['accuracy']:.3f}" in out
    with Image.open(tmp_path / "confusion_matrix.png") as im:
        assert im.size[0] > 100


def test_predict_prints_topk_names(run, data, tmp_path, capsys):
    folder = data / "val" / "leaf"
    assert main(["classify", "predict", str(folder), "--weights", str(run / "best.pt"), "--topk", "3", "--out",
                 str(tmp_path), "--device", "cpu"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(folder))]
    assert len(lines) == len(list(folder.iterdir()))
    assert all(line.count(",") == 2 for line in lines)  # three classes with their scores
    doc = json.loads((tmp_path / "predictions.json").read_text())
    assert len(doc["images"]) == len(lines)


def test_missing_weights_file_is_a_clear_error(data, tmp_path, capsys):
    code = main(["classify", "train", "--data", str(data), "--pretrained", str(tmp_path / "nope.pth"),
                 "--project", str(tmp_path / "runs"), *FAST])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.pth" in err and "does not exist" in err
    assert not (tmp_path / "runs").exists()
    assert main(["classify", "val", "--weights", str(tmp_path / "nope.pt"), "--data", str(data)]) == 1
    assert "nope.pt" in capsys.readouterr().err


def test_data_folder_without_images_is_a_clear_error(tmp_path, capsys):
    for cls in ("cat", "dog"):
        (tmp_path / "pets" / "train" / cls).mkdir(parents=True)
        (tmp_path / "pets" / "train" / cls / "notes.txt").write_text("not an image")
    code = main(["classify", "train", "--data", str(tmp_path / "pets"), "--project", str(tmp_path / "runs"),
                 "--pretrained", "none", *FAST])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "has no images" in err


def test_missing_data_folder(tmp_path, capsys):
    assert main(["classify", "train", "--data", str(tmp_path / "nowhere"), *FAST]) == 1
    assert "does not exist" in capsys.readouterr().err
