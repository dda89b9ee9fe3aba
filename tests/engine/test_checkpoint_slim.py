"""Tests for the slim ``best.pt``: no resume-only state, smaller than ``last.pt``, same predictions,
resuming from it refused with a pointer to ``last.pt``, and full (old) ``best.pt`` files still load.

Runs train ``tiny_ssd`` for one epoch on a tiny generated bananas set (16 train / 8 val images
of 64 px) on the CPU with one thread.
"""

from __future__ import annotations

import pytest
import torch

import pixbox
from pixbox.cli.main import main
from pixbox.data import make_dataset, read_image
from pixbox.tasks.detect import DetectConfig, train_detector
from pixbox.engine import load_checkpoint, save_checkpoint
from pixbox.engine.callbacks import CheckpointCallback
from pixbox.engine.checkpoint import RESUME_ONLY_KEYS, slim_checkpoint


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


def _train(data, project, **kwargs):
    base = dict(data=str(data), project=str(project), epochs=1, batch=8, imgsz=64, workers=0, device="cpu",
                lr=0.02, warmup_epochs=0.5)
    return train_detector(DetectConfig(**{**base, **kwargs}), progress=False, verbose=False)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """One epoch with validation: best.pt (epoch 1 improves on nothing) and last.pt share the weights."""
    return _train(data, tmp_path_factory.mktemp("runs"), name="slim")


def _predict(path, image):
    (result,) = pixbox.load(path, device="cpu", score_threshold=0.05).predict(image)
    return result


def test_slim_checkpoint_drops_only_the_resume_state():
    weights = {"w": torch.ones(3)}
    full = {"model": weights, "optimizer": {"state": {}}, "scheduler": None, "scaler": {}, "rng": {"torch": 1},
            "loader_generator": None, "epoch": 2, "history": [{"epoch": 1}], "config": {"data": "x"}}
    slim = slim_checkpoint(full)
    assert slim == {"model": weights, "epoch": 2, "history": [{"epoch": 1}], "config": {"data": "x"}, "slim": True}
    assert slim["model"] is weights and "optimizer" in full  # shares the tensors, leaves the input alone
    assert set(RESUME_ONLY_KEYS) == {"optimizer", "scheduler", "scaler", "rng", "loader_generator", "ema"}
    assert slim_checkpoint({"epoch": 1}) == {"epoch": 1}  # nothing left out: no marker
    with pytest.raises(TypeError, match="state must be a dict, got list"):
        slim_checkpoint([])


def test_best_pt_holds_everything_but_the_resume_state(run):
    last, best = load_checkpoint(run / "last.pt"), load_checkpoint(run / "best.pt")
    assert set(RESUME_ONLY_KEYS) <= set(last) and "slim" not in last
    assert not set(RESUME_ONLY_KEYS) & set(best) and best["slim"] is True
    assert set(best) == set(last) - set(RESUME_ONLY_KEYS) | {"slim"}
    for key in ("task", "model_name", "num_classes", "class_names", "imgsz", "config", "epoch", "best_score",
                "best_epoch", "pixbox_version", "global_step"):
        assert best[key] == last[key], key
    assert repr(best["history"]) == repr(last["history"])  # repr: NaN metrics (no large objects) compare equal
    assert best["best_epoch"] == 1 and best["history"][0]["map_50"] == best["best_score"]
    torch.testing.assert_close(best["model"], last["model"], rtol=0, atol=0)
    size_best, size_last = (run / "best.pt").stat().st_size, (run / "last.pt").stat().st_size
    assert size_best < 0.6 * size_last, (size_best, size_last)  # SGD momentum: one buffer per weight


def test_slim_best_predicts_like_last(run, data):
    path = sorted((data / "val" / "images").glob("*.png"))[0]
    image = read_image(path)
    got, expected = _predict(run / "best.pt", image), _predict(run / "last.pt", image)
    assert len(expected["boxes"]) > 0
    assert torch.equal(got["boxes"], expected["boxes"]) and torch.equal(got["scores"], expected["scores"])
    assert torch.equal(got["labels"], expected["labels"]) and got["names"] == expected["names"]
    assert repr(pixbox.load(run / "best.pt", device="cpu")) == "Predictor(tiny_ssd, 1 class, imgsz=64, device=cpu)"


def test_resuming_from_best_pt_points_to_last_pt(run, capsys):
    message = r"best\.pt: cannot resume from it: best\.pt holds only the weights .*resume from last\.pt"
    with pytest.raises(ValueError, match=message):
        train_detector({"epochs": 2}, resume=run / "best.pt", progress=False, verbose=False)
    assert main(["detect", "train", "--resume", str(run / "best.pt"), "--epochs", "2"]) == 1
    err = capsys.readouterr().err
    assert "best.pt holds only the weights" in err and str(run / "last.pt") in err
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # nothing was trained


def test_best_pt_without_validation_is_slim_too(data, tmp_path):
    run = _train(data, tmp_path, name="noval", val_split=None, limit_train=8)  # written by on_train_end
    best = load_checkpoint(run / "best.pt")
    assert best["slim"] is True and not set(RESUME_ONLY_KEYS) & set(best) and best["epoch"] == 1
    torch.testing.assert_close(best["model"], load_checkpoint(run / "last.pt")["model"], rtol=0, atol=0)


def test_a_full_best_pt_of_the_old_format_still_loads(run, data, tmp_path):
    old = save_checkpoint(load_checkpoint(run / "last.pt"), tmp_path / "best.pt")  # what best.pt used to hold
    image = read_image(sorted((data / "val" / "images").glob("*.png"))[1])
    got, expected = _predict(old, image), _predict(run / "best.pt", image)
    assert torch.equal(got["boxes"], expected["boxes"]) and torch.equal(got["scores"], expected["scores"])
    # and it can still be resumed from, as before (here the run is finished, so only with more epochs)
    with pytest.raises(ValueError, match="already finished its 1 epoch"):
        train_detector(None, resume=old, progress=False, verbose=False)


def test_checkpoint_callback_writes_slim_best_and_full_last(tmp_path):
    class Fake:
        epoch, best_score, best_epoch = 0, None, None
        epoch_log = {"map_50": 0.5}

        def state_dict(self):
            return {"model": {"w": torch.zeros(2)}, "optimizer": {"state": {0: torch.zeros(2)}}, "rng": {},
                    "epoch": self.epoch + 1, "best_score": self.best_score}

    cb, trainer = CheckpointCallback(tmp_path, "map_50"), Fake()
    cb.on_epoch_end(trainer)
    best = load_checkpoint(tmp_path / "best.pt")
    assert sorted(best) == ["best_score", "epoch", "model", "slim"] and best["slim"] is True
    assert best["epoch"] == 1 and best["best_score"] == 0.5 and torch.equal(best["model"]["w"], torch.zeros(2))
    assert {"optimizer", "rng"} <= set(load_checkpoint(tmp_path / "last.pt"))
