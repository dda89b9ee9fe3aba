"""benchmarks/transfer.py (issue 16's table): its ``--quick`` run trains, scores and prints a row, a rerun skips
the finished training, ``--set`` keeps a variant apart and parses booleans, and unknown keys are refused."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "transfer.py"

pytest.importorskip("skimage")
pytest.importorskip("pycocotools")


def _module():
    spec = importlib.util.spec_from_file_location("_test_transfer_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(*args, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--quick", "--rows", "lite0_scratch", "--out", str(out),
                           "--threads", "1", *args], capture_output=True, text=True, timeout=600, cwd=ROOT)


def test_recipe_values_are_parsed_as_the_recipe_types():
    transfer = _module()
    assert transfer.recipe_value("ema", "true") is True and transfer.recipe_value("ema", "False") is False
    assert transfer.recipe_value("lr", "0.01") == 0.01 and transfer.recipe_value("batch", "8") == 8
    with pytest.raises(ValueError, match="ema: expected true or false, got 'yes please'"):
        transfer.recipe_value("ema", "yes please")


def test_quick_run_scores_a_row_then_skips_it_and_keeps_variants_apart(tmp_path):
    out = tmp_path / "bench"
    first = _run(out=out)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "== lite0_scratch, 8 train images, 1 epochs" in first.stdout
    assert "| 8 | ssd_efficientnet_lite0 | scratch |" in first.stdout
    results = json.loads((out / "results.json").read_text())
    row = results["lite0_scratch/8/1"]
    assert 0.0 <= row["map"] <= row["map_50"] <= 1.0 and row["seconds"] > 0

    again = _run(out=out)  # resumable: the finished key is not trained again
    assert again.returncode == 0 and "== lite0_scratch" not in again.stdout
    assert "| 8 | ssd_efficientnet_lite0 | scratch |" in again.stdout

    variant = _run("--set", "ema=true", out=out)
    assert variant.returncode == 0, variant.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"lite0_scratch/8/1", "lite0_scratch/8/1,ema=true"}
    assert results["lite0_scratch/8/1,ema=true"]["changes"] == ",ema=true"

    bad = _run("--set", "momentum=0.9", out=out)
    assert bad.returncode == 2 and "--set: ['momentum'] are not recipe keys" in bad.stderr
