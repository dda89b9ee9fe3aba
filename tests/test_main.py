"""``python -m pixbox`` runs the CLI (pixbox/__main__.py) and returns its exit code."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pixbox

_ROOT = str(Path(pixbox.__file__).resolve().parents[1])


def _run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=_ROOT)
    return subprocess.run([sys.executable, "-m", "pixbox", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def test_help_exits_0_and_prints_the_usage():
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: pixbox ")
    assert "<task>" in done.stdout


def test_a_usage_error_exits_2():
    done = _run("detect", "train", "--epoch", "3")
    assert done.returncode == 2
    assert "--epochs" in done.stderr  # the did-you-mean hint
