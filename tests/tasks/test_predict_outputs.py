"""``predict --out`` never writes over the user's files (issue 19, bad case 1).

Before: ``detect predict data/val/images --out data/val/images`` replaced the photos with drawn
copies, and ``segment predict ... --out SegmentationClass`` replaced the ground-truth masks, with
exit code 0."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from pixbox._files import check_outputs
from pixbox.models import build_model
from pixbox.tasks.classify.predict import ClassifierPredictor, predict_classifier
from pixbox.tasks.detect.predict import Predictor, predict_detector
from pixbox.tasks.segment.predict import SegmenterPredictor, predict_segmenter


class _Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


class _Segmenter(nn.Module):
    def forward(self, x):
        return torch.cat([x[:, :1], 1 - x[:, :1]], 1)


def _detect(images, out):
    return predict_detector(Predictor(build_model("tiny_ssd", 2, image_size=64), ["a", "b"], 64, device="cpu"),
                            images, out=out, device="cpu")


def _segment(images, out):
    return predict_segmenter(SegmenterPredictor(_Segmenter(), ["bg", "fg"]), images, out=out, device="cpu")


def _classify(images, out):
    return predict_classifier(ClassifierPredictor(_Classifier(), ["a", "b"], 32), images, out=out, device="cpu")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("predict", [_detect, _segment, _classify], ids=["detect", "segment", "classify"])
def test_out_equal_to_the_input_folder_is_refused_and_nothing_changes(photos, predict):
    before = _snapshot(photos)
    with pytest.raises(ValueError, match=r"is the folder of the input image .*choose another --out folder"):
        predict(photos, photos)
    assert _snapshot(photos) == before


def test_segment_out_into_the_ground_truth_masks_is_refused(photos, tmp_path):
    masks = tmp_path / "SegmentationClass"
    masks.mkdir()
    Image.fromarray(np.ones((24, 32), np.uint8)).save(masks / "a.png")
    before = _snapshot(masks)
    with pytest.raises(ValueError, match=r"already holds 'a.png', which pixbox did not write there"):
        _segment(photos, masks)
    assert _snapshot(masks) == before


def test_detect_out_with_a_user_file_of_the_same_name_is_refused(photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"mine")
    with pytest.raises(ValueError, match="'b.png', which pixbox did not write"):
        _detect(photos, out)
    assert (out / "b.png").read_bytes() == b"mine" and sorted(p.name for p in out.iterdir()) == ["b.png"]


@pytest.mark.parametrize("predict", [_detect, _segment, _classify], ids=["detect", "segment", "classify"])
def test_a_previous_predict_folder_may_be_rewritten(photos, tmp_path, predict):
    out = tmp_path / "out"
    predict(photos, out)
    first = _snapshot(out)
    (out / "notes.txt").write_text("kept")
    predict(photos, out)  # the same run again: it rewrites only its own files
    assert (out / "notes.txt").read_text() == "kept"
    assert set(_snapshot(out)) == set(first) | {"notes.txt"}
    assert json.loads((out / "predictions.json").read_text())["images"]


def test_a_foreign_predictions_file_is_not_replaced(photos, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "predictions.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="is not a pixbox predictions file"):
        _classify(photos, out)
    assert (out / "predictions.json").read_text() == "[1, 2]"


def test_check_outputs_refuses_a_file_as_out(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="out must be a folder, got the file"):
        check_outputs(tmp_path / "f", [], [])
