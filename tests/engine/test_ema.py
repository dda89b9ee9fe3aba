"""Model EMA: the average against a hand computation, in the trainer, in checkpoints and on resume."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from pixbox.cli.main import main
from pixbox.data import make_dataset
from pixbox.engine.checkpoint import load_checkpoint, slim_checkpoint
from pixbox.engine.ema import ModelEMA
from pixbox.engine.trainer import Trainer


def test_three_updates_equal_a_hand_computed_average():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    ema = ModelEMA(model, decay=0.9, tau=1.0)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    for step in range(1, 4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        ema.update(model)
        d = 0.9 * (1 - math.exp(-step / 1.0))
        expected = {k: d * expected[k] + (1 - d) * v for k, v in model.state_dict().items()}
    assert ema.updates == 3
    for key, value in ema.module.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in ema.module.parameters()) and not ema.module.training


def test_integer_buffers_are_copied_and_bad_arguments_named():
    model = torch.nn.BatchNorm1d(2)
    ema = ModelEMA(model, decay=0.5, tau=1.0)
    model(torch.randn(4, 2))  # updates running stats and num_batches_tracked
    ema.update(model)
    assert int(ema.module.num_batches_tracked) == 1
    with pytest.raises(ValueError, match="decay must be a number in \\[0, 1\\), got 1.0"):
        ModelEMA(model, decay=1.0)
    with pytest.raises(ValueError, match="tau must be a number > 0"):
        ModelEMA(model, tau=0)
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        ModelEMA("model")


class _Regression(Trainer):
    def compute_loss(self, batch):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(self.model(x), y)}


def test_the_trainer_updates_after_every_step_and_evaluates_the_average():
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1)
    data = [(torch.randn(8, 2), torch.randn(8, 1)) for _ in range(3)]
    seen = []

    class Record:
        def on_batch_end(self, trainer):
            seen.append({k: v.clone() for k, v in trainer.model.state_dict().items()})

    start = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = _Regression(model, torch.optim.SGD(model.parameters(), lr=0.1), data, epochs=1, ema=True,
                          callbacks=[Record()], verbose=False)
    trainer.fit()
    expected = start
    for step, weights in enumerate(seen, 1):
        d = 0.9999 * (1 - math.exp(-step / 2000.0))
        expected = {k: d * expected[k] + (1 - d) * weights[k] for k in weights}
    for key, value in trainer.eval_model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=1e-7)
    assert trainer.eval_model is trainer.ema.module and trainer.eval_model is not trainer.model
    state = trainer.state_dict()
    assert state["ema"]["updates"] == 3
    slim = slim_checkpoint(state)
    assert "ema" not in slim and torch.equal(slim["model"]["weight"], state["ema"]["model"]["weight"])
    assert not torch.equal(slim["model"]["weight"], state["model"]["weight"])


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bananas")
    make_dataset("bananas", root, num_train=8, num_val=4, image_size=64, progress=False)
    return root


def _train(data, project, name, *extra):
    argv = ["detect", "train", "--data", str(data), "--batch", "4", "--imgsz", "64", "--workers", "0",
            "--device", "cpu", "--project", str(project), "--name", name, "--ema", "--no-amp", *extra]
    assert main(argv) == 0


def test_a_run_with_ema_saves_the_average_and_resumes_exactly(data, tmp_path, capsys):
    _train(data, tmp_path, "full", "--epochs", "2")
    _train(data, tmp_path, "half", "--epochs", "1")
    assert main(["detect", "train", "--resume", str(tmp_path / "half"), "--epochs", "2"]) == 0
    full, resumed = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(tmp_path / "half" / "last.pt")
    assert full["config"]["ema"] is True and full["ema"]["updates"] == 4
    for key in full["model"]:
        torch.testing.assert_close(resumed["model"][key], full["model"][key], rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(resumed["ema"]["model"][key], full["ema"]["model"][key], rtol=1e-6, atol=1e-7)
    best = load_checkpoint(tmp_path / "full" / "best.pt")
    epoch = best["best_epoch"]
    assert best["slim"] and "ema" not in best
    # best.pt's weights are the average of the best epoch; at the last epoch, the average of last.pt
    if epoch == 2:
        for key in best["model"]:
            assert torch.equal(best["model"][key], full["ema"]["model"][key])
    # the logged mAP is the average's: evaluating best.pt gives the metrics.csv value of its epoch
    from pixbox.tasks.detect import evaluate_detector

    rows = list(csv.DictReader(open(tmp_path / "full" / "metrics.csv")))
    metrics = evaluate_detector(tmp_path / "full" / "best.pt", data, batch=4, device="cpu")
    assert metrics["map_50"] == pytest.approx(float(rows[epoch - 1]["map_50"]), abs=1e-9)
