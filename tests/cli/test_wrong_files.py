"""A file of the wrong kind gets one line that says what it is and which command takes it
(issue 19, weak cases: wrong-task checkpoints, ONNX and pickle files given to val, a metrics
folder that cannot be written, a stylize size that would need 120 GB)."""

import pickle

import pytest
import torch

from pixbox.cli.main import main
from pixbox.data import make_dataset
from pixbox.models import build_model
from pixbox.models.backbones import BACKBONES
from pixbox.tasks.classify.predict import ClassifierPredictor
from pixbox.tasks.detect.predict import Predictor


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("files")
    make_dataset("bananas", root / "det", num_train=4, num_val=2, image_size=64, progress=False)
    make_dataset("classification", root / "cls", num_train=8, num_val=4, image_size=32, progress=False)
    ClassifierPredictor(BACKBONES["resnet18"](num_classes=2), ["a", "b"], 32, model_name="resnet18").save(root / "c.pt")
    Predictor(build_model("tiny_ssd", 1, image_size=64), ["banana"], 64, model_name="tiny_ssd").save(root / "d.pt")
    assert main(["classify", "train", "--data", str(root / "cls"), "--model", "resnet18", "--pretrained", "none",
                 "--imgsz", "32", "--epochs", "1", "--batch", "4", "--workers", "0", "--device", "cpu",
                 "--project", str(root / "runs"), "--name", "c"]) == 0
    assert main(["export", "--weights", str(root / "runs" / "c" / "best.pt"), "-o", str(root / "c.onnx")]) == 0
    return root


def _error(capsys, argv):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def test_a_classifier_checkpoint_given_to_detect(files, capsys):
    c = str(files / "c.pt")
    for argv in (["detect", "predict", "--weights", c, str(files / "det" / "val")],
                 ["detect", "val", "--weights", c, "--data", str(files / "det")]):
        err = _error(capsys, argv)
        assert "is a 'classify' model, not a 'detect' one; use it with `pixbox classify predict` or `pixbox " \
               "classify val`" in err


def test_resuming_another_tasks_run(files, capsys):
    last = files / "runs" / "c" / "last.pt"
    for task in ("detect", "segment"):
        err = _error(capsys, [task, "train", "--resume", str(last)])
        assert f"is a 'classify' run, not a '{task}' one; resume it with `pixbox classify train --resume" in err


def test_an_onnx_file_given_to_val(files, capsys):
    err = _error(capsys, ["detect", "val", "--weights", str(files / "c.onnx"), "--data", str(files / "det")])
    assert "is an ONNX export, not a PyTorch checkpoint: `pixbox <task> predict --weights" in err
    assert "weights_only" not in err


def test_a_pickle_payload_is_refused_without_torchs_weights_only_hint(files, tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": print}, f)
    torch.save({"x": print}, tmp_path / "evil2.pt")
    for p in (path, tmp_path / "evil2.pt"):
        err = _error(capsys, ["detect", "val", "--weights", str(p), "--data", str(files / "det")])
        assert "not a pixbox checkpoint" in err and "never code from a file" in err and "weights_only" not in err


def test_metrics_that_cannot_be_written_are_printed_first(files, capsys, monkeypatch):
    import pixbox.metrics.files as M

    def refuse(metrics, path, **kw):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(M, "save_metrics_json", refuse)
    assert main(["detect", "val", "--weights", str(files / "d.pt"), "--data", str(files / "det"), "--device",
                 "cpu"]) == 1
    out, err = capsys.readouterr()
    assert "COCO  mAP@[.5:.95]" in out  # the metrics were computed and shown
    assert "cannot write the metrics files to" in err and "pass --out FOLDER" in err and ".tmp" not in err


def test_stylize_refuses_a_size_that_would_need_120_gb(files, tmp_path, capsys):
    first = sorted((files / "det" / "val" / "images").iterdir())[0]
    err = _error(capsys, ["stylize", str(first), str(first), "--size", "100000", "--out", str(tmp_path / "s.png")])
    assert "size must be <= 2048, got 100000" in err


def test_training_and_val_refuse_outside_paths_unless_allowed(files, tmp_path, capsys):
    """Issue 19, bad case 9: a CSV row ../../x.png was read (and trained on); now refused, with
    --allow-outside-paths (config key allow_outside_paths) for images kept elsewhere on purpose."""
    import shutil

    root = tmp_path / "det"
    shutil.copytree(files / "det", root)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    first = sorted((root / "train" / "images").iterdir())[0]
    shutil.move(first, outside / first.name)
    csv = root / "train" / "label.csv"
    csv.write_text(csv.read_text().replace(first.name, f"../../../elsewhere/{first.name}"))  # from images/
    base = ["detect", "train", "--data", str(root), "--model", "tiny_ssd", "--imgsz", "64", "--epochs", "1",
            "--batch", "2", "--workers", "0", "--device", "cpu", "--no-amp", "--project", str(tmp_path / "runs")]
    err = _error(capsys, base + ["--name", "refused"])
    assert "points outside the dataset folder" in err and "--allow-outside-paths" in err
    assert main(base + ["--name", "allowed", "--allow-outside-paths"]) == 0
    run = tmp_path / "runs" / "allowed"
    assert torch.load(run / "best.pt", weights_only=True)["config"]["allow_outside_paths"] is True
    capsys.readouterr()
    val = ["detect", "val", "--weights", str(run / "best.pt"), "--split", "train", "--device", "cpu"]
    assert main(val) == 0  # the run's setting is kept
    assert main(val + ["--data", str(root), "--out", str(tmp_path / "v")]) == 0
