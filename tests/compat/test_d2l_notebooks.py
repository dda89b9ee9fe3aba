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
