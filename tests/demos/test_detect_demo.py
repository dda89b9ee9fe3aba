"""Smoke test of the detection demo (``make demo``) on a tiny dataset and one epoch."""

from __future__ import annotations

import math

import pytest
import torch

from pixbox.cli.main import main
from pixbox.demos import detect


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_demo_runs_end_to_end_and_reports(tmp_path):
    result = detect.run(tmp_path / "demo", num_train=12, num_val=6, progress=False, epochs=1, imgsz=64,
                        batch=4, workers=0, eval_every=1)
    for key in ("report", "grid", "loss_curve", "predictions", "run_dir"):
        assert result[key].exists(), key
    assert 0.0 <= result["map_50"] <= 1.0 and not math.isnan(result["map_50"])
    report = result["report"].read_text()
    assert "mAP@0.5" in report and "wall time" in report
    assert len(list((tmp_path / "demo" / "predictions").glob("*.png"))) == 6
    # A second run reuses the generated data and writes a new training run beside the first.
    again = detect.run(tmp_path / "demo", num_train=12, num_val=6, progress=False, epochs=1, imgsz=64, batch=4,
                       workers=0)
    assert again["run_dir"] != result["run_dir"]


def test_demo_rejects_unknown_recipe_keys(tmp_path):
    with pytest.raises(TypeError, match="epoch"):
        detect.run(tmp_path, epoch=3)


def test_demo_cli_validates_epochs(capsys):
    assert main(["demo", "detect", "--epochs", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_demo_data_of_other_sizes_by_an_older_pixbox_is_regenerated(tmp_path):
    """An older pixbox wrote demo data without the make record; the demo regenerates its own
    folder (marked by pixbox-demo.json) instead of stopping on data make's overwrite rule."""
    import json

    from pixbox.data import make_dataset
    from pixbox.demos import detect

    data = tmp_path / "data"
    make_dataset("bananas", data, num_train=3, num_val=2, image_size=64, progress=False)
    (data / ".pixbox-make.json").unlink()
    (data / "pixbox-demo.json").write_text(json.dumps({"task": "bananas", "num_train": 3, "num_val": 2}))
    detect.run(tmp_path, num_train=4, num_val=2, progress=False, epochs=1, imgsz=64, batch=4, log=lambda m: None)
    assert json.loads((data / "pixbox-demo.json").read_text())["num_train"] == 4
