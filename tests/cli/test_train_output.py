"""What ``pixbox <task> train`` writes while it runs and when it ends, as a log file sees it: one line
per epoch (loss, speed, ETA) even between evaluations, the same lines in ``train.log``, the
precision chosen, and at the end one ``done`` line with the exact ``val`` and ``predict``
commands of the run (which are then run as printed)."""

from __future__ import annotations

import re
import shlex

import pytest
import torch

from pixbox.cli.main import main
from pixbox.data import make_dataset
from pixbox.engine import load_checkpoint
from pixbox.engine.callbacks import EpochLogger, _duration
from pixbox.engine.trainer import Trainer


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _Regression(Trainer):
    def compute_loss(self, batch):
        x, y = batch
        return {"loss": torch.nn.functional.mse_loss(self.model(x), y), "part": torch.tensor(0.5)}


def test_epoch_logger_one_line_per_epoch_with_eta(tmp_path, capsys):
    model = torch.nn.Linear(2, 1)
    data = [(torch.randn(4, 2), torch.randn(4, 1)) for _ in range(3)]
    log = tmp_path / "train.log"
    trainer = _Regression(model, torch.optim.SGD(model.parameters(), lr=0.1), data, epochs=3,
                          callbacks=[EpochLogger(("score",))], log_file=log, amp=False)
    trainer.fit()
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
    for line in lines:
        assert re.search(r"  loss \d+\.\d{4}  part 0\.5000  [\d.]+ img/s  \d+ s", line), line
    assert "ETA" in lines[0] and "ETA" in lines[1] and "ETA" not in lines[2]
    logged = log.read_text().splitlines()
    assert [line.split("  ", 1)[1] for line in logged if "  epoch " in line] == lines
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  ", logged[0])


def test_duration_units():
    assert (_duration(5.2), _duration(150), _duration(2 * 3600)) == ("5 s", "2.5 min", "2.0 h")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bananas")
    make_dataset("bananas", root, num_train=8, num_val=4, image_size=64, progress=False)
    return root


def test_detect_train_in_a_log_prints_every_epoch_and_the_next_commands(data, tmp_path, capsys):
    argv = ["detect", "train", "--data", str(data), "--epochs", "3", "--eval-every", "5", "--batch", "4",
            "--imgsz", "64", "--workers", "0", "--device", "cpu", "--project", str(tmp_path), "--name", "log",
            "--no-amp"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()  # captured: not a terminal, so no progress bars
    run = tmp_path / "log"
    epochs = [line for line in out if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]  # not only the evaluated epoch 3
    assert "map_50" in epochs[2] and "map_50" not in epochs[0] and "ETA" in epochs[0]
    assert sum("precision: float32 (--no-amp)" in line or "precision: float32 (amp off)" in line
               for line in out) == 1
    logged = (run / "train.log").read_text()
    for line in epochs:
        assert line in logged
    done = [i for i, line in enumerate(out) if line.startswith("done: ")]
    assert len(done) == 1 and out[done[0]].endswith(f"results in {run}")
    assert not any(line.startswith("results in") for line in out)  # said once
    evaluate, predict = (out[done[0] + k].split(": ", 1)[1].strip() for k in (1, 2))
    assert evaluate == f"pixbox detect val --weights {run / 'best.pt'}"
    assert predict.startswith(f"pixbox detect predict --weights {run / 'best.pt'} {data}")
    for command in (evaluate, predict):  # the printed commands work as printed
        tokens = shlex.split(command)
        assert tokens[0] == "pixbox"
        assert main(tokens[1:] + ["--device", "cpu"]) == 0, command
    assert (run / "predict").is_dir()


def test_amp_flags(data, tmp_path, capsys):
    base = ["detect", "train", "--data", str(data), "--epochs", "1", "--batch", "4", "--imgsz", "64", "--workers",
            "0", "--device", "cpu", "--project", str(tmp_path), "--seed", "0"]
    assert main(base + ["--name", "forced", "--amp"]) == 0
    assert "precision: bfloat16 autocast" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "forced" / "best.pt")["config"]["amp"] is True
    assert main(base + ["--name", "auto"]) == 0
    assert load_checkpoint(tmp_path / "auto" / "best.pt")["config"]["amp"] == "auto"


def test_a_nan_loss_is_a_clear_error_not_a_traceback(data, tmp_path, capsys, monkeypatch):
    from pixbox.tasks.detect import DetectTask

    def nan_loss(self, trainer, batch):
        return {"loss": torch.tensor(float("nan"), requires_grad=True)}

    monkeypatch.setattr(DetectTask, "loss", nan_loss)
    argv = ["detect", "train", "--data", str(data), "--epochs", "1", "--batch", "4", "--imgsz", "64", "--workers",
            "0", "--device", "cpu", "--project", str(tmp_path), "--name", "nan"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: training diverged in epoch 1: the training loss is nan at step 1") and "Traceback" not in err
    assert "last.pt holds the last finished epoch" in err


def test_an_unexpected_error_is_one_line_unless_debugging(monkeypatch, capsys):
    """Before: the CLI caught only ValueError, TypeError and OSError; anything else (a
    RecursionError from a deeply nested file, a RuntimeError) printed a raw traceback."""
    import pixbox.cli.detect as D

    def boom(args):
        raise RuntimeError("something broke\nsecond line")

    def deep(args):
        raise RecursionError("maximum recursion depth exceeded")

    for handler, want in ((boom, "error: RuntimeError: something broke (unexpected: rerun with PIXBOX_DEBUG=1"),
                          (deep, "error: the input is nested too deeply to read (RecursionError)")):
        monkeypatch.setattr(D, "_run_val", handler)
        assert main(["detect", "val", "--weights", "x.pt", "--data", "d"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(want) and "Traceback" not in err and err.count("\n") == 1
    monkeypatch.setenv("PIXBOX_DEBUG", "1")
    monkeypatch.setattr(D, "_run_val", boom)
    with pytest.raises(RuntimeError, match="something broke"):
        main(["detect", "val", "--weights", "x.pt", "--data", "d"])
