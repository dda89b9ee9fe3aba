"""Checkpoints written by earlier pixbox versions still load and predict the same (tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import pixbox
from pixbox.data.generators.bananas import render_banana
from pixbox.engine.checkpoint import load_checkpoint

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tiny_ssd_v0.1"


def test_a_detector_checkpoint_from_before_the_task_restructure_predicts_the_same():
    state = load_checkpoint(FIXTURE / "best.pt")
    assert state["task"] == "detect" and state.get("slim") and "optimizer" not in state
    predictor = pixbox.load(FIXTURE / "best.pt", device="cpu")
    assert predictor.task == "detect" and predictor.class_names == ["banana"] and predictor.imgsz == 64
    got = predictor.predict(render_banana(96, seed=3).image, score_threshold=0.0, topk=20)[0]
    expected = json.loads((FIXTURE / "expected.json").read_text())
    assert got["labels"].tolist() == expected["labels"]
    torch.testing.assert_close(got["scores"], torch.tensor(expected["scores"]), rtol=0, atol=1e-6)
    torch.testing.assert_close(got["boxes"], torch.tensor(expected["boxes"]), rtol=0, atol=1e-4)


def test_its_config_reads_back_with_todays_config_class():
    from pixbox.tasks.detect import DetectConfig

    cfg = DetectConfig.from_dict(load_checkpoint(FIXTURE / "best.pt")["config"])
    assert (cfg.model, cfg.imgsz, cfg.epochs, cfg.amp) == ("tiny_ssd", 64, 1, False)
