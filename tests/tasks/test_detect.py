"""Tests for the detection task: training steps, runs, resume, evaluation, load + predict.

Everything runs on a tiny generated bananas set (16 train / 8 val images of 64 px) with
``tiny_ssd`` at ``imgsz=64``, on the CPU with one thread (bit-exact reproducibility).
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import pixbox
from pixbox.data import make_dataset
from pixbox.data.datasets import DetectionDataset, collate_multibox
from pixbox.engine import Callback, load_checkpoint
from pixbox.tasks.detect import DetectConfig, Predictor, train_detector
from pixbox.engine.task import TaskData, TaskTrainer
from pixbox.tasks.detect import DetectTask
from pixbox.tasks.detect import build_train_transforms, evaluate_detector, predict_detector
from pixbox.data.io import find_images
from pixbox._files import unique_dir
from pixbox.tasks.detect import model_from_checkpoint, prepare_image
from pixbox.models import build_model

_TIMING = ("img_s", "epoch_time")


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
def project(tmp_path_factory):
    return tmp_path_factory.mktemp("runs")


def _config(data, project, **kwargs):
    base = dict(data=str(data), project=str(project), epochs=3, batch=8, imgsz=64, workers=0, device="cpu",
                lr=0.02, warmup_epochs=0.5)
    return DetectConfig(**{**base, **kwargs})


def _rows(run):
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in row.items() if k not in _TIMING} for row in rows]


class KillAt(Callback):
    """Simulates a killed run: raises at the start of epoch index ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_start(self, trainer):
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def full_run(data, project):
    """An uninterrupted 3-epoch run, shared by the tests that only read it."""
    return train_detector(_config(data, project, name="full"), progress=False, verbose=False)


# ----------------------------------------------------------------------------------------------
# Training steps


def _fixed_batch(data, n=8):
    ds = DetectionDataset(data, split="train", transforms=build_train_transforms("none", 64))
    return collate_multibox([ds[i] for i in range(n)])


def _detection_trainer(data, project, **cfg):
    torch.manual_seed(0)
    config = _config(data, project, **cfg)
    model = build_model("tiny_ssd", 1)
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=0.9)
    return TaskTrainer(DetectTask(), config, TaskData(None, class_names=["banana"]), model, opt, [], epochs=1, verbose=False,
                       channels_last=config.channels_last)


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(data, project):
    trainer = _detection_trainer(data, project, lr=0.05)
    batch = _fixed_batch(data)
    losses = [trainer.train_step(batch)["loss"] for _ in range(12)]
    assert losses[-1] < 0.6 * losses[0], losses
    assert set(trainer.train_step(batch)) == {"loss", "cls", "box"}


def test_a_batch_without_objects_trains_without_nan(data, project):
    trainer = _detection_trainer(data, project)
    images, _ = _fixed_batch(data, 4)
    empty = torch.full((4, 1, 5), -1.0)  # collate_multibox's padding: no object in any image
    for _ in range(3):
        parts = trainer.train_step((images, empty))
        assert all(np.isfinite(v) for v in parts.values()) and parts["box"] == 0.0
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_channels_last_gives_the_same_losses(data, project):
    batch = _fixed_batch(data, 4)
    a = _detection_trainer(data, project)
    b = _detection_trainer(data, project, channels_last=True)
    assert b.model.cls_0.weight.is_contiguous(memory_format=torch.channels_last)
    for _ in range(2):
        la, lb = a.train_step(batch), b.train_step(batch)
        assert la["loss"] == pytest.approx(lb["loss"], rel=1e-4)


@pytest.mark.parametrize("change", [{"negative_mining_ratio": None}, {"box_loss": "l1"}])
def test_each_loss_option_changes_the_loss(data, project, change):
    batch = _fixed_batch(data, 4)
    with torch.no_grad():
        a = _detection_trainer(data, project).compute_loss(batch)
        b = _detection_trainer(data, project, **change).compute_loss(batch)
    assert float(a["loss"]) != pytest.approx(float(b["loss"]))


@pytest.mark.parametrize("preset", ["none", "light", "ssd"])
def test_train_transforms_give_float_images_of_imgsz(data, preset):
    ds = DetectionDataset(data, split="train", transforms=build_train_transforms(preset, 48))
    torch.manual_seed(1)
    image, target = ds[0]
    assert image.shape == (3, 48, 48) and image.dtype == torch.float32
    assert target["boxes"].numel() == 0 or float(target["boxes"].max()) <= 48


def test_augment_preset_changes_the_images(data):
    plain = DetectionDataset(data, split="train", transforms=build_train_transforms("none", 64))
    light = DetectionDataset(data, split="train", transforms=build_train_transforms("light", 64))
    torch.manual_seed(0)
    assert any(not torch.equal(plain[i][0], light[i][0]) for i in range(4))


# ----------------------------------------------------------------------------------------------
# Runs, resume, reproducibility


def test_run_writes_every_file(full_run, data):
    assert full_run.name == "full"
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.csv", "loss.png", "map.png"):
        assert (full_run / name).is_file(), name
    assert Image.open(full_run / "loss.png").size == (640, 420)
    cfg = DetectConfig.from_yaml(full_run / "config.yaml")
    assert cfg.epochs == 3 and cfg.data == str(data) and cfg.name == "full"
    rows = _rows(full_run)
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    # lr of each epoch's last step: 2 steps per epoch, warm-up 1 step, cosine over the 5 others
    cosine = [0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p)) for p in (0.0, 0.4, 0.8)]
    assert [float(r["lr"]) for r in rows] == pytest.approx([0.02 * c for c in cosine])
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    last, best = load_checkpoint(full_run / "last.pt"), load_checkpoint(full_run / "best.pt")
    assert last["epoch"] == 3 and last["class_names"] == ["banana"] and last["config"] == cfg.to_dict()
    assert {"optimizer", "scheduler", "scaler", "rng", "history", "global_step"} <= set(last)
    map50 = [float(r["map_50"]) for r in rows]
    assert best["epoch"] == 1 + map50.index(max(map50)) and best["best_score"] == max(map50)


def test_a_killed_and_resumed_run_ends_like_an_uninterrupted_one(full_run, data, project):
    cfg = _config(data, project, name="killed")
    with pytest.raises(KeyboardInterrupt):
        train_detector(cfg, progress=False, verbose=False, callbacks=[KillAt(1)])
    killed = project / "killed"
    assert load_checkpoint(killed / "last.pt")["epoch"] == 1 and len(_rows(killed)) == 1
    assert train_detector(None, resume=killed, progress=False, verbose=False) == killed
    assert _rows(killed) == _rows(full_run)  # every epoch once, same losses and mAPs
    a, b = load_checkpoint(killed / "last.pt"), load_checkpoint(full_run / "last.pt")
    torch.testing.assert_close(a["model"], b["model"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(a["optimizer"]["state"], b["optimizer"]["state"], rtol=1e-6, atol=1e-7)
    assert a["global_step"] == b["global_step"] == 6


def test_the_seed_changes_the_run_and_the_same_seed_repeats_it(data, project):
    def first_row(**kw):
        run = train_detector(_config(data, project, epochs=1, limit_train=8, val_split=None, **kw),
                             progress=False, verbose=False)
        return _rows(run)[0]

    assert first_row(seed=1) == first_row(seed=1)
    assert first_row(seed=1)["train_loss"] != first_row(seed=2)["train_loss"]


def test_a_new_run_never_overwrites_an_old_one(data, project):
    cfg = _config(data, project, name="again", epochs=1, limit_train=8, val_split=None)
    first = train_detector(cfg, progress=False, verbose=False)
    second = train_detector(cfg, progress=False, verbose=False)
    assert (first.name, second.name) == ("again", "again2")
    assert unique_dir(project, "again").name == "again3"


def test_resume_errors(full_run, data, project):
    with pytest.raises(ValueError, match=r"only \['epochs'.* may change, got changes to \['lr'\]"):
        train_detector({"lr": 0.5}, resume=full_run, progress=False, verbose=False)
    with pytest.raises(ValueError, match="already finished its 3 epochs"):
        train_detector(None, resume=full_run / "last.pt", progress=False, verbose=False)
    with pytest.raises(FileNotFoundError, match="nope.*last.pt' does not exist"):
        train_detector({"project": str(project)}, resume="nope", progress=False, verbose=False)


def test_resume_with_more_epochs_continues(data, project):
    run = train_detector(_config(data, project, name="more", epochs=1, limit_train=8, limit_val=4),
                         progress=False, verbose=False)
    train_detector({"epochs": 2}, resume=run, progress=False, verbose=False)
    assert [r["epoch"] for r in _rows(run)] == ["1", "2"]
    assert DetectConfig.from_yaml(run / "config.yaml").epochs == 2


def test_train_errors(data, project, tmp_path):
    with pytest.raises(FileNotFoundError, match="data folder .* does not exist"):
        train_detector(_config(tmp_path / "nope", project), progress=False, verbose=False)
    with pytest.raises(ValueError, match=r"split 'valid' not found .*\['train', 'val'\]\); did you mean 'val'\? "
                                         "Set val_split to one of them, or to null"):
        train_detector(_config(data, project, name="bad", val_split="valid"), progress=False, verbose=False)
    assert not (project / "bad").exists()  # no run folder for a run that could not start


# ----------------------------------------------------------------------------------------------
# Evaluation and inference


def test_evaluate_detector_reproduces_the_best_score(full_run, data):
    best = load_checkpoint(full_run / "best.pt")
    metrics = evaluate_detector(full_run / "best.pt", data, device="cpu")
    assert metrics["map_50"] == pytest.approx(best["best_score"], abs=1e-12)
    assert metrics["num_images"] == 8 and metrics["per_class"][0]["name"] == "banana"
    fewer = evaluate_detector(full_run / "best.pt", data, device="cpu", limit=4)
    assert fewer["num_images"] == 4
    model = model_from_checkpoint(best)  # a bare model: the class names come from the dataset
    again = evaluate_detector(model, data, device="cpu", imgsz=64)
    assert again["map_50"] == metrics["map_50"] and again["map"] == metrics["map"]
    with pytest.raises(ValueError, match="fmt must be one of"):
        evaluate_detector(model, data, fmt="vco")
    with pytest.raises(ValueError, match="score_threshold must be <= 1, got 2"):
        evaluate_detector(model, data, score_threshold=2)


def test_load_and_predict_equal_the_model_own_predict(full_run, data):
    predictor = pixbox.load(full_run / "best.pt", device="cpu", score_threshold=0.05)
    assert isinstance(predictor, Predictor) and predictor.class_names == ["banana"] and predictor.imgsz == 64
    state = load_checkpoint(full_run / "best.pt")
    model = model_from_checkpoint(state)
    path = sorted((data / "val" / "images").glob("*.png"))[0]
    image = pixbox.data.read_image(path)
    expected = model.predict(prepare_image(image, 64)[None], score_threshold=0.05, nms_threshold=0.45, topk=100)[0]
    for source in (path, str(path), image, image.float() / 255, Image.open(path), np.asarray(Image.open(path))):
        (got,) = predictor.predict(source)
        tol = dict(rtol=1e-4, atol=1e-3) if isinstance(source, torch.Tensor) and source.is_floating_point() else {}
        torch.testing.assert_close(got["boxes"], expected["boxes"], **tol)
        torch.testing.assert_close(got["scores"], expected["scores"], **tol)
        assert got["names"] == ["banana"] * len(got["labels"]) and got["size"] == (64, 64)
    assert len(expected["boxes"]) > 0
    many = predictor.predict([path, image, torch.stack([image, image])])
    assert len(many) == 4 and many[0]["path"] == str(path) and many[1]["path"] is None


def test_boxes_are_mapped_back_to_the_original_pixels(full_run):
    predictor = pixbox.load(full_run / "best.pt", device="cpu", score_threshold=0.05)
    batch = torch.rand(1, 3, 64, 64)
    same = predictor.predict_batch(batch, [(64, 64)])[0]
    big = predictor.predict_batch(batch, [(128, 192)])[0]  # height x2, width x3
    torch.testing.assert_close(big["boxes"], same["boxes"] * torch.tensor([3.0, 2.0, 3.0, 2.0]))
    image = (torch.rand(3, 90, 150) * 255).to(torch.uint8)
    (r,) = predictor.predict(image)
    assert r["size"] == (90, 150)
    assert float(r["boxes"][:, [0, 2]].max()) <= 150 and float(r["boxes"][:, [1, 3]].max()) <= 90


def test_predictor_thresholds_change_the_output(full_run):
    predictor = pixbox.load(full_run / "best.pt", device="cpu", score_threshold=0.0)
    image = torch.rand(3, 64, 64)
    n = [len(predictor.predict(image, score_threshold=t)[0]["boxes"]) for t in (0.0, 0.5)]
    assert n[0] > n[1]
    assert len(predictor.predict(image, topk=3)[0]["boxes"]) == 3
    a = predictor.predict(image, nms_threshold=0.1)[0]["boxes"]
    b = predictor.predict(image, nms_threshold=0.9)[0]["boxes"]
    assert len(a) < len(b)


def test_model_only_file_round_trip(full_run, tmp_path):
    predictor = pixbox.load(full_run / "last.pt", device="cpu")
    path = predictor.save(tmp_path / "model.pt")
    assert "optimizer" not in load_checkpoint(path)
    again = pixbox.load(path, device="cpu")
    image = torch.rand(3, 64, 64)
    torch.testing.assert_close(again.predict(image)[0]["boxes"], predictor.predict(image)[0]["boxes"])


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        pixbox.load(tmp_path / "nope.pt")
    torch.save(build_model("tiny_ssd", 1).state_dict(), tmp_path / "bare.pt")
    with pytest.raises(ValueError, match="not a pixbox detection checkpoint"):
        pixbox.load(tmp_path / "bare.pt")
    predictor = Predictor(build_model("tiny_ssd", 1), ["a"], 64)
    with pytest.raises(TypeError, match="images must be a path, a PIL image"):
        predictor.predict(3)
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\], got shape \(2, 64, 64\)"):
        predictor.predict(torch.zeros(2, 64, 64))
    with pytest.raises(ValueError, match="class_names must have one name per model class"):
        Predictor(build_model("tiny_ssd", 1), ["a", "b"], 64)


def test_predict_detector_writes_images_and_json(full_run, data, tmp_path):
    out = tmp_path / "out"
    sources = [data / "val" / "images", str(data / "train" / "images" / "train_00000[01].png")]
    results = predict_detector(full_run / "best.pt", sources, out=out, score_threshold=0.05, device="cpu")
    assert len(results) == 10
    doc = json.loads((out / "predictions.json").read_text())
    assert doc["class_names"] == ["banana"] and len(doc["images"]) == 10
    first = doc["images"][0]
    assert first["output"] == "val_000000.png" and (out / "val_000000.png").is_file()
    assert len(first["detections"]) == len(results[0]["boxes"])
    assert first["detections"][0]["box"] == pytest.approx(results[0]["boxes"][0].tolist(), abs=0.01)
    assert Image.open(out / "val_000000.png").size == (64, 64)


def test_find_images(data, tmp_path):
    images = data / "val" / "images"
    files = sorted(images.glob("*.png"))
    assert find_images([images]) == files
    assert find_images([files[1], str(images / "*.png")]) == [files[1]] + [f for f in files if f != files[1]]
    with pytest.raises(FileNotFoundError, match="matches no image"):
        find_images([str(tmp_path / "*.jpg")])
    with pytest.raises(FileNotFoundError, match="holds no image files"):
        find_images([tmp_path])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_images([tmp_path / "x.png"])
