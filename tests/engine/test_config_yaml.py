"""Run config files are read without YAML aliases (issue 19, bad case 8: a 330-byte alias bomb
took 43 s and 4 GB before a MemoryError)."""

import time

import pytest

from pixbox.engine.config import read_yaml_values
from pixbox.tasks.detect import DetectConfig


def _bomb(levels=9):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append(f"epochs: *{chr(ord('a') + levels - 1)}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(_bomb())
    assert len(path.read_bytes()) < 700
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"cfg.yaml.*found the alias \*a; pixbox's YAML files .* must not use aliases"):
        read_yaml_values(path, DetectConfig)
    assert time.perf_counter() - start < 1.0


def test_a_plain_config_still_reads(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("epochs: 3\nlr: 1e-3\n")
    assert read_yaml_values(path, DetectConfig) == {"epochs": 3, "lr": "1e-3"}
