"""Shared fixtures for the pixbox test suite."""

from __future__ import annotations

import os
import sys

import pytest
import torch

# Make ``tests/reference.py`` importable as ``reference`` from every test module.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Under pytest-xdist every worker is its own process: one intra-op thread each avoids
# oversubscribing the cores (OpenMP spin-waiting makes oversubscribed torch very slow).
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)

_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=_DEVICES)
def device(request) -> str:
    """``"cpu"``, and ``"cuda"`` as well when a GPU is present."""
    return request.param

