"""Fast R-CNN through the engine and the CLI: proposals files in train, val and predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from pixbox.cli.main import main
from pixbox.data import make_dataset, read_detection
from pixbox.data.proposals import load_proposals, save_proposals
from pixbox.tasks.detect import DetectConfig, evaluate_detector
from pixbox.tasks import load
from pixbox.models import FastRCNN

FAST = ["--batch", "2", "--imgsz", "64", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_dataset("shapes", root, num_train=4, num_val=2, image_size=64, progress=False)
    return root


def _proposals_from_ground_truth(root, seed: int = 0) -> dict[str, np.ndarray]:
    """Per image: each ground-truth box jittered 4 times, plus 20 random boxes."""
    rng = np.random.default_rng(seed)
    table = {}
    for split in ("train", "val"):
        for rec in read_detection(root, "coco", split).records:
            boxes = np.asarray(rec.boxes, np.float64).reshape(-1, 4)
            wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
            jittered = (boxes[:, None] + (rng.random((len(boxes), 4, 4)) - 0.5) * 0.3 * wh[:, None]).reshape(-1, 4)
            xy = rng.random((20, 2)) * 48
            random = np.concatenate([xy, xy + 6 + rng.random((20, 2)) * 30], axis=1)
            both = np.concatenate([jittered, random]).clip(0, 64)
            both[:, 2:] = np.maximum(both[:, 2:], both[:, :2])
            table[rec.image.relative_to(root).as_posix()] = both
    return table


@pytest.fixture(scope="module")
def proposals(data, tmp_path_factory):
    return save_proposals(tmp_path_factory.mktemp("props") / "gt.json", _proposals_from_ground_truth(data),
                          method="jittered ground truth")


@pytest.fixture(scope="module")
def run(data, proposals, tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    code = main(["detect", "train", "--data", str(data), "--model", "fast_rcnn_resnet18", "--proposals",
                 str(proposals), "--epochs", "1", "--project", str(project), "--name", "fast", *FAST])
    assert code == 0
    return project / "fast"


def test_train_writes_a_run_that_loads_as_fast_rcnn(run, proposals):
    assert {"best.pt", "last.pt", "metrics.csv", "config.yaml"} <= {p.name for p in run.iterdir()}
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["model"] == "fast_rcnn_resnet18" and saved["proposals"] == str(proposals.resolve())
    predictor = load(run / "best.pt", device="cpu")
    assert isinstance(predictor.model, FastRCNN) and predictor.needs_proposals
    rows = (run / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and "map_50" in rows[0]


def test_val_and_predict_with_the_proposals(run, data, proposals, tmp_path, capsys):
    out = tmp_path / "val"
    assert main(["detect", "val", "--weights", str(run / "best.pt"), "--proposals", str(proposals), "--device", "cpu",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "val_metrics.json").read_text())
    assert 0.0 <= metrics["map_50"] <= 1.0
    # Without --proposals, val uses the run's file.
    assert main(["detect", "val", "--weights", str(run / "best.pt"), "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads((out / "val_metrics.json").read_text())["map_50"] == metrics["map_50"]
    pred = tmp_path / "pred"
    capsys.readouterr()
    assert main(["detect", "predict", "--weights", str(run / "best.pt"), str(data / "images" / "val"),
                 "--proposals", str(proposals), "--out", str(pred), "--conf", "0", "--device", "cpu"]) == 0
    doc = json.loads((pred / "predictions.json").read_text())
    assert len(doc["images"]) == 2 and all((pred / r["output"]).is_file() for r in doc["images"])
    assert sum(len(r["detections"]) for r in doc["images"]) > 0
    for r in doc["images"]:
        for d in r["detections"]:
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 <= r["width"] and 0 <= y1 <= y2 <= r["height"]


def test_evaluation_scales_the_proposals_to_the_input(run, data, proposals):
    """The same detections in original pixels at two input sizes means the proposals were scaled."""
    predictor = load(run / "best.pt", device="cpu")
    image = torch.rand(3, 48, 80)
    props = [torch.tensor([[4.0, 6.0, 40.0, 30.0], [30.0, 10.0, 70.0, 44.0], [0.0, 0.0, 80.0, 48.0]])]
    dets = predictor.predict(image, proposals=props, score_threshold=0.0)[0]
    assert dets["size"] == (48, 80) and len(dets["boxes"]) > 0
    # Reference: run the model by hand on the 64 x 64 input with the proposals scaled to it.
    from pixbox.tasks.detect import prepare_image

    scale = torch.tensor([64 / 80, 64 / 48, 64 / 80, 64 / 48])
    raw = predictor.model.predict(prepare_image(image, 64)[None], [props[0] * scale], score_threshold=0.0,
                                  nms_threshold=predictor.nms_threshold, topk=predictor.topk)[0]
    assert torch.allclose(dets["boxes"], raw["boxes"] / scale, atol=1e-4)
    assert torch.equal(dets["scores"], raw["scores"])
    metrics = evaluate_detector(run / "best.pt", data, proposals=load_proposals(proposals), device="cpu")
    assert 0.0 <= metrics["map_50"] <= 1.0


def test_missing_proposals_are_clear_errors(run, data, proposals, tmp_path, capsys):
    capsys.readouterr()
    assert main(["detect", "train", "--data", str(data), "--model", "fast_rcnn_resnet18", "--epochs", "1",
                 "--project", str(tmp_path), *FAST]) == 1
    assert "pass --proposals FILE" in capsys.readouterr().err
    assert main(["detect", "train", "--data", str(data), "--proposals", str(proposals), "--epochs", "1",
                 "--project", str(tmp_path), *FAST]) == 1
    assert "'tiny_ssd' does not take region proposals" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs region proposals"):
        evaluate_detector(run / "best.pt", data, device="cpu")
    # A file that lacks an image of the split names it.
    table = load_proposals(proposals)
    key = next(k for k in table if k.startswith("images/val/"))
    partial = save_proposals(tmp_path / "partial.json", {k: v for k, v in table.items() if k != key})
    assert main(["detect", "val", "--weights", str(run / "best.pt"), "--proposals", str(partial), "--device",
                 "cpu", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"no proposals for image '{key}'" in err and "partial.json" in err and "Traceback" not in err
    assert not (tmp_path / "train").exists()  # no run folder for a config error


def test_config_file_may_leave_the_proposals_to_the_command_line(data, proposals, tmp_path):
    with pytest.raises(ValueError, match="pass --proposals FILE"):
        DetectConfig(model="fast_rcnn_resnet34")
    with pytest.raises(ValueError, match="does not take region proposals"):
        DetectConfig(model="faster_rcnn_resnet18", proposals="p.json")
    assert DetectConfig(model="fast_rcnn_resnet18", proposals="p.json").proposals == "p.json"
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": "fast_rcnn_resnet18", "epochs": 1, "limit_train": 2, "limit_val": 1,
                                   "augment": "ssd"}))
    assert main(["detect", "train", "--config", str(cfg), "--data", str(data), "--proposals", str(proposals),
                 "--project", str(tmp_path), "--name", "cfg", *FAST]) == 0
    assert (tmp_path / "cfg" / "best.pt").is_file()


def test_selective_search_proposals_end_to_end(data, tmp_path, capsys):
    pytest.importorskip("cv2.ximgproc", reason="OpenCV contrib (opencv-contrib-python-headless) not installed")
    out = tmp_path / "ss.json"
    assert main(["detect", "proposals", "--data", str(data), "-o", str(out), "--max-proposals", "100"]) == 0
    assert "6 images" in capsys.readouterr().out
    table = load_proposals(out)
    assert len(table) == 6 and all(0 < len(v) <= 100 for v in table.values())
    assert main(["detect", "train", "--data", str(data), "--model", "fast_rcnn_resnet18", "--proposals", str(out),
                 "--epochs", "1", "--project", str(tmp_path), "--name", "ss", *FAST]) == 0
    # predict without a file runs selective search itself.
    pred = tmp_path / "pred"
    assert main(["detect", "predict", "--weights", str(tmp_path / "ss" / "best.pt"),
                 str(data / "images" / "val" / "val_000000.png"), "--out", str(pred), "--device", "cpu"]) == 0
    assert (pred / "predictions.json").is_file()
    assert main(["detect", "proposals", "--data", str(data), "-o", str(out), "--split", "tset"]) == 1
    assert "split must be one of" in capsys.readouterr().err


def test_predict_without_proposals_or_opencv_says_what_to_do(run, monkeypatch):
    import sys

    predictor = load(run / "best.pt", device="cpu")
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    with pytest.raises(ImportError, match="needs region proposals; pass proposals=.*opencv-contrib-python-headless"):
        predictor.predict(torch.rand(3, 40, 40))
    with pytest.raises(ValueError, match=r"one Tensor\[P, 4\] per image \(2\), got 1 entries"):
        predictor.predict(torch.rand(2, 3, 40, 40), proposals=[torch.zeros(0, 4)])
    with pytest.raises(ValueError, match="needs proposals"):
        predictor.predict_batch(torch.rand(1, 3, 64, 64), [(40, 40)])
    ssd = load_ssd_predictor()
    with pytest.raises(ValueError, match="proposals are for Fast R-CNN models"):
        ssd.predict(torch.rand(3, 40, 40), proposals=[torch.zeros(0, 4)])


def load_ssd_predictor():
    from pixbox.tasks.detect import Predictor
    from pixbox.models import build_model

    return Predictor(build_model("tiny_ssd", 6, image_size=64), [str(i) for i in range(6)], 64)
