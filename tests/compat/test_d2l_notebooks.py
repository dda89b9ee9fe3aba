"""The D2L book's chapter 14 notebooks run on pixbox.compat.d2l with only the d2l import replaced,
offline, and print the book's outputs (runner: tests/compat/d2l_notebooks.py).

The notebooks are the book's, not pixbox's: set ``PIXBOX_D2L_NOTEBOOKS`` to a folder holding the
``.ipynb`` files of ``chapter_computer-vision`` (public d2l-pytorch-colab repository) to run
these tests; they are skipped otherwise, and for a notebook whose imports (torchvision, pandas,
matplotlib) are missing. The five notebooks that train (ssd, fcn, fine-tuning,
image-augmentation, neural-style) run only with ``PIXBOX_D2L_NOTEBOOKS_ALL=1`` as well (minutes
each, even with ``PIXBOX_BOOK_QUICK=1``). ``PIXBOX_D2L_WORK`` keeps the generated data between
runs (default: a temporary folder).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from . import d2l_notebooks as runner

NOTEBOOKS = os.environ.get("PIXBOX_D2L_NOTEBOOKS", "")
TRAINING = {"ssd", "fcn", "fine-tuning", "image-augmentation", "neural-style"}
#: The modules a notebook imports besides torch and d2l.
IMPORTS = {
    "object-detection-dataset": ("pandas", "torchvision"), "ssd": ("torchvision",), "rcnn": ("torchvision",),
    "semantic-segmentation-and-dataset": ("torchvision",), "fcn": ("torchvision",),
    "neural-style": ("torchvision",), "image-augmentation": ("torchvision",), "fine-tuning": ("torchvision",),
}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    path = Path(os.environ.get("PIXBOX_D2L_WORK") or tmp_path_factory.mktemp("d2l-book"))
    return path, runner.prepare(path)


@pytest.mark.parametrize("name", runner.ORDER)
def test_notebook_runs_and_prints_the_books_output(name, request):
    if not NOTEBOOKS:
        pytest.skip("set PIXBOX_D2L_NOTEBOOKS to the folder of the book's chapter 14 notebooks")
    if name in TRAINING and os.environ.get("PIXBOX_D2L_NOTEBOOKS_ALL") != "1":
        pytest.skip("trains for minutes: set PIXBOX_D2L_NOTEBOOKS_ALL=1")
    missing = [m for m in ("matplotlib", *IMPORTS.get(name, ())) if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"the notebook needs {missing}")
    path, env = request.getfixturevalue("work")
    env = dict(env, PIXBOX_BOOK_QUICK=os.environ.get("PIXBOX_BOOK_QUICK", "1"))
    cells = runner.run_in_subprocess(Path(NOTEBOOKS) / f"{name}.ipynb", path, env)
    assert cells, "no code cells"
    bad = [(c["cell"], c["verdict"], c["code"], c["error"] or (c["stdout"], c["shown"]))
           for c in cells if c["verdict"] not in ("equal", "format", "unchecked", "offline")]
    assert not bad, bad
    wrong = [(c["cell"], c["code"]) for c in cells if c.get("book_agrees") is False]
    assert not wrong, f"BOOK_OUTPUTS differs from the notebook file's recorded output: {wrong}"
    listed = {piece for (nb, piece) in runner.BOOK_OUTPUTS if nb == name}
    assert sum(c["listed"] for c in cells) == len(listed), "a cell with a known book output was not found"


def test_recorded_outputs_leave_out_the_build_machines_download_lines(tmp_path):
    """A notebook file records what its build machine printed while downloading (the book's ``download``
    line, torch.hub's line and progress bar, stored as stdout); these are not outputs of the code."""
    import json

    hub = ['Downloading: "https://example.org/w.pth" to /home/ci/.cache/torch/hub/checkpoints/w.pth\n',
           "\r  0%|          | 0.00/4.0M [00:00<?, ?B/s]", "\r100%|##########| 4.0M/4.0M [00:00<00:00, 9MB/s]", "\n"]
    cells = [{"cell_type": "code", "source": "x = load()", "outputs": [
                 {"output_type": "stream", "name": "stdout", "text": hub},
                 {"output_type": "stream", "name": "stdout", "text": "read 3 examples\n"}]},
             {"cell_type": "code", "source": "y", "outputs": [
                 {"output_type": "stream", "name": "stdout",
                  "text": "Downloading ../data/a.zip from http://example.org/a.zip...\n"},
                 {"output_type": "stream", "name": "stderr", "text": "a warning\n"},
                 {"output_type": "execute_result", "data": {"text/plain": "3"}}]},
             {"cell_type": "code", "source": "print('50%|half')", "outputs": [
                 {"output_type": "stream", "name": "stdout", "text": "50%|half\n"}]}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert runner.recorded_outputs(path) == [("read 3 examples\n", None), ("", "3"), ("50%|half\n", None)]
