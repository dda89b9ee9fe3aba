"""Every recipe in configs/ is a valid detection config, and the fine-tuning recipe is the one
benchmarks/transfer.py measures."""

import importlib.util
import pathlib

import pytest

from pixbox.engine.config import read_yaml_values
from pixbox.models import needs_proposals
from pixbox.tasks import DetectConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


def test_there_are_recipes():
    assert len(CONFIGS) >= 5


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_recipe_loads(path):
    values = read_yaml_values(path, DetectConfig)
    if needs_proposals(values["model"]):  # its proposals file comes from the command line
        values["proposals"] = "proposals.json"
    cfg = DetectConfig.from_dict(values)
    assert path.name.startswith(cfg.model) and cfg.to_dict()["model"] == values["model"]


@pytest.mark.parametrize("name, row", [("ssd_efficientnet_lite0_finetune", "lite0"),
                                       ("faster_rcnn_efficientnet_lite0_finetune", "frcnn_lite0")])
def test_finetune_recipe_is_the_benchmarks(name, row):
    spec = importlib.util.spec_from_file_location("transfer", ROOT / "benchmarks" / "transfer.py")
    transfer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(transfer)
    cfg = DetectConfig.from_yaml(ROOT / "configs" / f"{name}.yaml")
    for key, value in transfer.RECIPE.items():
        if key not in ("seed", "workers"):
            assert getattr(cfg, key) == value, key
    assert (cfg.model, cfg.pretrained) == (transfer.ROWS[row]["model"], transfer.ROWS[row]["pretrained"])
