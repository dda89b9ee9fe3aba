"""Small untrained models for the serve tests, importable by a server subprocess too
(``tests/serve/_server.py``): a random TinySSD with decisive scores, and a segmenter and a
classifier with known outputs."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

from pixbox.models import build_model
from pixbox.tasks.detect import Predictor


def png(array: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def build_detector() -> Predictor:
    torch.manual_seed(0)
    model = build_model("tiny_ssd", 2, image_size=128)
    with torch.no_grad():  # spread the class scores of the random model (a trained one is decisive too)
        for name, param in model.named_parameters():
            if name.startswith("cls_"):
                param.mul_(30)
    return Predictor(model, ["banana", "apple"], 128, model_name="tiny_ssd")


class Segmenter(torch.nn.Module):
    """Class 1 where red > green, class 2 where green > red + 0.2, else background: known masks."""

    num_classes = 3

    def forward(self, x):
        r, g = x[:, 0], x[:, 1]
        return torch.stack([torch.zeros_like(r), 10 * (r - g), 10 * (g - r - 0.2)], 1)


class Classifier(torch.nn.Module):
    num_classes = 4

    def forward(self, x):
        return torch.stack([x.mean((1, 2, 3)) * k for k in range(1, 5)], 1)
