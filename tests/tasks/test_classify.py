"""Tests for pixbox.tasks.classify: tiny fine-tuning runs, resume, load, evaluate, predict."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from PIL import Image

import pixbox
from pixbox.data import make_dataset
from pixbox.tasks.classify import (
    ClassifierPredictor,
    ClassifyConfig,
    evaluate_classifier,
    predict_classifier,
    train_classifier,
)
from pixbox.engine import load_checkpoint
from pixbox.tasks.classify import classify_transforms

TINY = dict(imgsz=32, batch=8, workers=0, device="cpu", amp=False, epochs=2, lr=0.01)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("objects")
    make_dataset("classification", root, num_train=24, num_val=12, image_size=32, progress=False)
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    cfg = ClassifyConfig(data=str(data), model="efficientnet_lite0", pretrained="default", project=str(project),
                         name="ft", **TINY)
    return train_classifier(cfg, progress=False, verbose=False)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _two_colour_set(root, n=8, size=24):
    """Red images vs blue images, with noise: trivially separable."""
    g = torch.Generator().manual_seed(0)
    for split, count in (("train", n), ("val", n // 2)):
        for name, channel in (("blue", 2), ("red", 0)):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(count):
                img = (torch.rand(size, size, 3, generator=g) * 60).to(torch.uint8)
                img[..., channel] = 200
                Image.fromarray(img.numpy()).save(folder / f"{i}.png")
    return root


def test_run_writes_every_file(run):
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.csv", "loss.png", "accuracy.png",
                 "confusion_matrix.png", "val_metrics.json"):
        assert (run / name).is_file(), name
    rows = _rows(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r in rows:
        assert 0 <= float(r["accuracy"]) <= 1 and 0 <= float(r["train_acc"]) <= 1
    metrics = json.loads((run / "val_metrics.json").read_text())
    assert metrics["num_images"] == 12
    assert len(metrics["per_class"]) == 6


def test_checkpoint_describes_the_model_and_head_lr(run):
    state = load_checkpoint(run / "last.pt")
    assert state["task"] == "classify"
    assert state["model_name"] == "efficientnet_lite0" and state["num_classes"] == 6
    assert state["class_names"] == ["banana", "flower", "leaf", "ring", "rock", "starfish"]
    groups = state["optimizer"]["param_groups"]
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates["head"] == pytest.approx(10 * rates["backbone"])
    # the pretrained mean/std of the backbone are saved for inference
    from pixbox.models.backbones import efficientnet_lite0

    assert state["mean"] == pytest.approx(list(efficientnet_lite0().pretrained_cfg["mean"]))


def test_load_predict_and_evaluate_agree_with_training(run, data):
    predictor = pixbox.load(run / "best.pt", device="cpu")
    assert isinstance(predictor, ClassifierPredictor)
    files = sorted((data / "val").rglob("*.png"))
    results = predictor.predict([str(p) for p in files[:3]], topk=3)
    assert len(results) == 3
    for r in results:
        assert len(r["topk"]) == 3 and r["name"] == r["topk"][0]["name"]
        scores = [t["score"] for t in r["topk"]]
        assert scores == sorted(scores, reverse=True) and 0 <= scores[-1] <= scores[0] <= 1
    metrics = evaluate_classifier(predictor, data)
    state = load_checkpoint(run / "best.pt")
    best_row = [r for r in state["history"] if r["epoch"] == state["best_epoch"]][0]
    assert metrics["accuracy"] == pytest.approx(best_row["accuracy"])
    # the per-image predictions agree with the evaluator's accuracy
    labels = {name: i for i, name in enumerate(predictor.class_names)}
    preds = predictor.predict([str(p) for p in files], topk=1)
    correct = sum(labels[p.parent.name] == r["label"] for p, r in zip(files, preds))
    assert correct / len(files) == pytest.approx(metrics["accuracy"])


def test_predict_classifier_writes_json(run, data, tmp_path):
    results = predict_classifier(run / "best.pt", [data / "val" / "ring"], topk=2, out=tmp_path, device="cpu")
    doc = json.loads((tmp_path / "predictions.json").read_text())
    assert len(doc["images"]) == len(results) == len(list((data / "val" / "ring").iterdir()))
    assert doc["class_names"][0] == "banana" and len(doc["images"][0]["topk"]) == 2


def test_scratch_training_learns_an_easy_task(tmp_path):
    data = _two_colour_set(tmp_path / "colours")
    cfg = ClassifyConfig(data=str(data), model="resnet18", pretrained="none", project=str(tmp_path / "runs"),
                         augment="none", **dict(TINY, epochs=8, batch=4))
    run = train_classifier(cfg, progress=False, verbose=False)
    rows = _rows(run / "metrics.csv")
    assert float(rows[-1]["accuracy"]) == 1.0
    state = load_checkpoint(run / "last.pt")
    assert {g["name"] for g in state["optimizer"]["param_groups"]} == {"all"}


def test_resume_ends_like_an_uninterrupted_run(tmp_path):
    data = _two_colour_set(tmp_path / "colours")
    base = dict(data=str(data), model="resnet18", pretrained="none", project=str(tmp_path / "runs"), **TINY)
    full = train_classifier(ClassifyConfig(name="full", **base), progress=False, verbose=False)

    class StopAfterOne:
        def on_epoch_end(self, trainer):
            trainer.stop = True

    part = train_classifier(ClassifyConfig(name="part", **base), progress=False, verbose=False,
                            callbacks=[StopAfterOne()])
    assert load_checkpoint(part / "last.pt")["epoch"] == 1
    resumed = train_classifier(None, resume=part, progress=False, verbose=False)
    assert resumed == part
    a, b = load_checkpoint(full / "last.pt"), load_checkpoint(part / "last.pt")
    for k, v in a["model"].items():
        torch.testing.assert_close(v, b["model"][k], msg=k)
    assert [r["accuracy"] for r in a["history"]] == [r["accuracy"] for r in b["history"]]


def test_csv_format_is_detected(tmp_path):
    data = _two_colour_set(tmp_path / "colours")
    for split in ("train", "val"):
        names = {"blue": "cold", "red": "hot"}  # labels that only the CSV files have
        lines = ["path,label"] + [f"{p.relative_to(data).as_posix()},{names[p.parent.name]}"
                                  for p in sorted((data / split).rglob("*.png"))]
        (data / f"{split}.csv").write_text("\n".join(lines) + "\n")  # auto picks <split>.csv over the folder
    cfg = ClassifyConfig(data=str(data), model="resnet18", pretrained="none", project=str(tmp_path / "runs"),
                         **dict(TINY, epochs=1))
    run = train_classifier(cfg, progress=False, verbose=False)
    assert load_checkpoint(run / "last.pt")["class_names"] == ["cold", "hot"]


def test_eval_transform_resizes_and_centre_crops():
    t = classify_transforms("eval", 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), crop_pct=0.5)
    image = torch.zeros(3, 40, 80, dtype=torch.uint8)
    image[:, 5:35, 20:60] = 255  # a white window around the centre
    out = t(image)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    # shorter side to 64 (32 / 0.5): 64 x 128, the window at rows 8..56, columns 32..96; the
    # centre 32 x 32 (rows 16..48, columns 48..80) is inside it
    torch.testing.assert_close(out, torch.ones(3, 32, 32))


@pytest.mark.parametrize("change, error, match", [
    ({"val_split": "valid"}, FileNotFoundError, "did you mean 'val'"),
    ({"pretrained": "missing.pth"}, FileNotFoundError, "missing.pth"),
    ({"pretrained": "none", "freeze": "backbone"}, ValueError, "freeze='backbone'"),
])
def test_config_errors(tmp_path, change, error, match):
    data = _two_colour_set(tmp_path / "colours")
    cfg = dict(data=str(data), model="resnet18", pretrained="none", project=str(tmp_path / "runs"), **TINY)
    cfg.update(change)
    with pytest.raises(error, match=match):
        train_classifier(cfg, progress=False, verbose=False)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_folder_without_images(tmp_path):
    (tmp_path / "empty" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "empty" / "train" / "dog").mkdir(parents=True)
    with pytest.raises(ValueError, match="has no images"):
        train_classifier({"data": str(tmp_path / "empty"), "model": "resnet18", "pretrained": "none",
                          "project": str(tmp_path / "runs")}, progress=False, verbose=False)


def test_one_class_is_an_error(tmp_path):
    data = _two_colour_set(tmp_path / "colours")
    for split in ("train", "val"):
        for p in (data / split / "red").iterdir():
            p.unlink()
        (data / split / "red").rmdir()
    with pytest.raises(ValueError, match="at least 2"):
        train_classifier(dict(data=str(data), model="resnet18", pretrained="none", **TINY), progress=False,
                         verbose=False)
