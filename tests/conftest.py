"""Shared fixtures for the pixbox test suite.

The ``device`` fixture runs a test on the CPU and on CUDA. The CUDA case is always collected, carries the ``cuda``
marker and is skipped ("no CUDA") without a GPU, so ``pytest -rs`` counts the CUDA cases on any machine and
``pytest -m cuda`` (``make test-gpu``) runs just them on a GPU machine.
"""

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

HAS_CUDA = torch.cuda.is_available()

#: Marks of a test that needs CUDA: the ``cuda`` marker, and a skip without a GPU.
CUDA_MARKS = [pytest.mark.cuda, pytest.mark.skipif(not HAS_CUDA, reason="no CUDA")]

#: The ``device`` fixture's parameters: ``"cpu"``, and ``"cuda"`` (skipped without a GPU).
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA_MARKS, id="cuda")]

if HAS_CUDA:
    # CUDA results are compared with CPU results and reference loops at float32 tolerances: cuDNN's convolutions
    # must not run in TF32 (10-bit mantissa), which is on by default (float32 matmuls already default to IEEE).
    torch.backends.cudnn.allow_tf32 = False


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """``"cpu"``, and ``"cuda"`` (marked ``cuda``; skipped with reason "no CUDA" when no GPU is present)."""
    return request.param


def pytest_configure(config) -> None:
    # Registered here rather than in pyproject.toml: editing pyproject.toml would make every `make` target reinstall
    # the package (the venv's stamp depends on it).
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU; skipped (\"no CUDA\") without one. "
                                       "`make test-gpu` runs only these.")
