"""Tests for ``pixbox detect train|val|predict``: argument errors and tiny end-to-end runs."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from PIL import Image

from pixbox.cli.main import main
from pixbox.data import make_dataset
from pixbox.tasks.detect import DetectConfig
from pixbox.engine import load_checkpoint

FAST = ["--batch", "8", "--imgsz", "64", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bananas")
    make_dataset("bananas", root, num_train=16, num_val=8, image_size=64, progress=False)
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """``pixbox detect train ... --epochs 1``: the run folder (shared by the val and predict tests)."""
    project = tmp_path_factory.mktemp("runs")
    code = main(["detect", "train", "--data", str(data), "--epochs", "1", "--project", str(project),
                 "--name", "cli", *FAST])
    assert code == 0
    return project / "cli"


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("argv, message", [
    (["detect"], "required: <action>"),
    (["detect", "trian"], "did you mean 'train'?"),
    (["detect", "train", "--epocs", "2"], "unrecognized arguments: --epocs 2; did you mean '--epochs'?"),
    (["detect", "train", "--data=x", "--imgsize", "64"], "did you mean '--imgsz'?"),
    (["detect", "train", "--model", "tiny_sd"], "unknown model 'tiny_sd'; did you mean 'tiny_ssd'?"),
    (["detect", "train", "--format", "coc"], "unknown format 'coc'; did you mean 'coco'?"),
    (["detect", "train", "--epochs", "0"], "argument --epochs: must be >= 1, got 0"),
    (["detect", "train", "--lr", "fast"], "argument --lr: must be a number, got 'fast'"),
    (["detect", "val", "--data", "x"], "the following arguments are required: --weights"),
    (["detect", "predict", "--weights", "w.pt"], "the following arguments are required: SOURCE"),
    (["detect", "predict", "--weights", "w.pt", "a.png", "--conf", "2"], "argument --conf: must be <= 1"),
])
def test_usage_errors_return_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_user_errors_return_1_without_traceback(tmp_path, capsys):
    cases = [
        (["detect", "train", "--epochs", "1"], "error: --data is required"),
        (["detect", "train", "--data", str(tmp_path / "nope")], "does not exist"),
        (["detect", "train", "--data", str(tmp_path), "--device", "gpu"], "device must be 'auto', 'cpu'"),
        (["detect", "train", "--config", str(tmp_path / "cfg.yaml")], "config file"),
        (["detect", "val", "--weights", str(tmp_path / "w.pt"), "--data", str(tmp_path)], "does not exist"),
        (["detect", "predict", "--weights", str(tmp_path / "w.pt"), "a.png"], "does not exist"),
    ]
    for argv, message in cases:
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, (argv, err)
    (tmp_path / "cfg.yaml").write_text("epoch: 3\n")
    assert main(["detect", "train", "--config", str(tmp_path / "cfg.yaml")]) == 1
    assert "unknown config key 'epoch'; did you mean 'epochs'?" in capsys.readouterr().err


def test_train_writes_the_run(run, data):
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.csv", "loss.png", "map.png"):
        assert (run / name).is_file(), name
    assert [r["epoch"] for r in _rows(run / "metrics.csv")] == ["1"]
    cfg = DetectConfig.from_yaml(run / "config.yaml")
    assert (cfg.epochs, cfg.batch, cfg.imgsz, cfg.data) == (1, 8, 64, str(data))


def test_flags_override_the_config_file_and_resume_continues(data, tmp_path, capsys):
    (tmp_path / "cfg.yaml").write_text(f"data: {data}\nepochs: 5\nlimit_train: 8\nval_split: null\nlr: 0.05\n")
    argv = ["detect", "train", "--config", str(tmp_path / "cfg.yaml"), "--epochs", "1", "--project", str(tmp_path),
            *FAST]
    assert main(argv) == 0
    run = tmp_path / "train"
    cfg = DetectConfig.from_yaml(run / "config.yaml")
    assert (cfg.epochs, cfg.lr, cfg.limit_train, cfg.val_split) == (1, 0.05, 8, None)
    assert f"results in {run}" in capsys.readouterr().out
    assert main(["detect", "train", "--resume", "train", "--project", str(tmp_path), "--epochs", "2"]) == 0
    assert [r["epoch"] for r in _rows(run / "metrics.csv")] == ["1", "2"]
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    assert main(["detect", "train", "--resume", str(run), "--lr", "1"]) == 1
    assert "only ['epochs', 'device', 'workers', 'patience', 'eval_every', 'amp'] may change" in capsys.readouterr().err


def test_val_prints_the_table_and_writes_json_and_pr_curve(run, tmp_path, capsys):
    assert main(["detect", "val", "--weights", str(run / "best.pt"), "--device", "cpu", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "banana" in out and "mAP@.5" in out and "images: 8" in out
    metrics = json.loads((tmp_path / "val_metrics.json").read_text())
    assert metrics["num_images"] == 8 and "pr_curves" not in metrics
    best = load_checkpoint(run / "best.pt")["best_score"]
    assert metrics["map_50"] == pytest.approx(best, abs=1e-12)  # the data folder comes from the checkpoint
    assert Image.open(tmp_path / "pr_curve.png").size[0] > 100


def test_predict_writes_images_and_json(run, data, tmp_path, capsys):
    out = tmp_path / "pred"
    argv = ["detect", "predict", "--weights", str(run / "best.pt"), str(data / "val" / "images"),
            str(data / "train" / "images" / "train_00000[0-2].png"), "--out", str(out), "--conf", "0.05",
            "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "wrote 11 images and predictions.json" in printed
    doc = json.loads((out / "predictions.json").read_text())
    assert len(doc["images"]) == 11 and doc["weights"] == str(run / "best.pt")
    assert sorted(p.name for p in out.glob("*.png"))[:2] == ["train_000000.png", "train_000001.png"]
    for image in doc["images"]:
        for det in image["detections"]:
            x1, y1, x2, y2 = det["box"]
            assert 0 <= x1 <= x2 <= image["width"] and 0 <= y1 <= y2 <= image["height"]
            assert det["score"] > 0.05 and det["name"] == "banana"
