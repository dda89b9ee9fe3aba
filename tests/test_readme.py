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
