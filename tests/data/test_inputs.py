"""pixbox.data.inputs: what every predictor (and stylize) accepts, and what it refuses (issue 19:
0..255 floats, NaN, empty images) with the same message for every task."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pixbox.data.inputs import as_image, as_images
from pixbox.models import build_model
from pixbox.tasks.classify.predict import ClassifierPredictor
from pixbox.tasks.detect.predict import Predictor
from pixbox.tasks.segment.predict import SegmenterPredictor


def _image(seed=0):
    return torch.randint(0, 256, (3, 20, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_every_form_gives_the_same_pixels(tmp_path):
    img = _image()
    array = img.permute(1, 2, 0).numpy()
    path = tmp_path / "a.png"
    Image.fromarray(array).save(path)
    forms = [img, img[None], array, Image.fromarray(array), path, str(path), img.float() / 255,
             array.astype(np.float64) / 255, np.concatenate([array, np.full((20, 24, 1), 7, np.uint8)], 2)]
    for form in forms:
        (got, _), = as_images(form)
        assert got.shape == (3, 20, 24)
        want = img if got.dtype == torch.uint8 else img.float() / 255
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    pairs = as_images([path, img])
    assert [p for _, p in pairs] == [str(path), None]
    grey = as_images(np.zeros((5, 6), np.uint8))[0][0]
    assert grey.shape == (3, 5, 6)
    torch.testing.assert_close(as_image(img), img.float() / 255)


@pytest.mark.parametrize("bad, error, match", [
    (torch.rand(3, 8, 8) * 255, ValueError, r"images as floating point must have values in \[0, 1\], got \[.*\]; "
                                            r"divide by 255, or pass uint8"),
    (np.random.default_rng(0).random((8, 8, 3)) * 255, ValueError, r"divide by 255, or pass uint8"),
    (torch.full((3, 8, 8), float("nan")), ValueError, "images must have finite pixel values, got NaN or infinity"),
    (torch.full((3, 8, 8), float("inf")), ValueError, "finite pixel values"),
    (torch.rand(3, 8, 8) - 0.5, ValueError, r"values in \[0, 1\], got \[-"),
    (torch.zeros(3, 0, 0), ValueError, r"images must not be empty, got an image of size \(0, 0\)"),
    (np.zeros((0, 5, 3), np.uint8), ValueError, r"must not be empty, got an image of size \(0, 5\)"),
    (torch.zeros(3, 4, 4, dtype=torch.int32), TypeError, "uint8 .0..255. or floating point .0..1., got dtype torch.int32"),
    ([], ValueError, "images must not be an empty list"),
    ([[_image()]], TypeError, r"images\[0\] must be an image, not a nested list"),
    (torch.zeros(2, 8, 8), ValueError, r"images must be a Tensor\[3, H, W\]"),
    (3, TypeError, "images must be a path, a PIL image, a numpy array, a Tensor or a list of them, got int"),
])
def test_refused_inputs_name_the_problem(bad, error, match):
    with pytest.raises(error, match=match):
        as_images(bad)


def test_a_bad_image_in_a_list_or_batch_is_named():
    with pytest.raises(ValueError, match=r"images\[1\] as floating point"):
        as_images([_image(), torch.rand(3, 4, 4) * 255])
    batch = torch.rand(3, 3, 4, 4)
    batch[2, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"images\[2\] must have finite pixel values"):
        as_images(batch)


def test_floats_slightly_outside_the_range_are_clamped():
    img = torch.full((3, 4, 4), 1.0005)
    (got, _), = as_images(img)
    assert float(got.max()) == 1.0


class _Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


class _Segmenter(nn.Module):
    def forward(self, x):
        return torch.cat([x[:, :1], 1 - x[:, :1]], 1)


@pytest.mark.parametrize("make", [
    lambda: Predictor(build_model("tiny_ssd", 2, image_size=64), ["a", "b"], 64),
    lambda: ClassifierPredictor(_Classifier(), list("abcd"), 32),
    lambda: SegmenterPredictor(_Segmenter(), ["bg", "fg"]),
], ids=["detect", "classify", "segment"])
def test_every_predictor_refuses_the_same_bad_inputs(make):
    """Before: 0..255 floats were read as 0..1 (a different top score and label), and the
    classifier and segmenter answered NaN images silently while the detector raised."""
    predictor = make()
    img = _image()
    assert len(predictor.predict(img)) == 1 and len(predictor.predict(img.float() / 255)) == 1
    with pytest.raises(ValueError, match="divide by 255, or pass uint8"):
        predictor.predict(img.float())
    with pytest.raises(ValueError, match="divide by 255, or pass uint8"):
        predictor.predict(img.permute(1, 2, 0).numpy().astype(np.float64))
    with pytest.raises(ValueError, match="finite pixel values"):
        predictor.predict(torch.full((3, 16, 16), float("nan")))
    with pytest.raises(ValueError, match="must not be empty"):
        predictor.predict(torch.zeros(3, 0, 0, dtype=torch.uint8))
