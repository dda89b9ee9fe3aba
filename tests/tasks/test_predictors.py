"""The three task predictors share pixbox.tasks._common.BasePredictor: save() files that pixbox.load reads back
to a predictor giving the same outputs, one repr format, and a clear error without a model name."""

import pytest
import torch

import pixbox
from pixbox.models import build_model
from pixbox.models.backbones import BACKBONES
from pixbox.models.fcn import SEGMENTATION_MODELS
from pixbox.tasks.classify.predict import ClassifierPredictor
from pixbox.tasks.detect.predict import Predictor
from pixbox.tasks.segment.predict import SegmenterPredictor


def _predictors():
    torch.manual_seed(0)
    return {
        "detect": Predictor(build_model("tiny_ssd", 2, image_size=64), ["a", "b"], 64, device="cpu",
                            model_name="tiny_ssd"),
        "classify": ClassifierPredictor(BACKBONES["resnet18"](num_classes=3), ["x", "y", "z"], 32, device="cpu",
                                        crop_pct=0.9, model_name="resnet18"),
        "segment": SegmenterPredictor(SEGMENTATION_MODELS["fcn_resnet18"](2, pretrained="none"), ["bg", "fg"],
                                      device="cpu", model_name="fcn_resnet18"),
    }


def _outputs(predictor, image):
    out = predictor(image)[0]
    return {k: v for k, v in out.items() if isinstance(v, torch.Tensor) or k in ("label", "score", "names")}


@pytest.mark.parametrize("task", ["detect", "classify", "segment"])
def test_save_then_load_gives_the_same_predictor(tmp_path, task):
    predictor = _predictors()[task]
    image = torch.randint(0, 256, (3, 48, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    path = predictor.save(tmp_path / "model.pt")
    loaded = pixbox.load(path, device="cpu")
    assert type(loaded) is type(predictor) and loaded.task == task
    assert loaded.class_names == predictor.class_names and loaded.imgsz == predictor.imgsz
    assert loaded.path == str(path) and predictor.path is None
    if task == "classify":
        assert (loaded.mean, loaded.std, loaded.crop_pct) == (predictor.mean, predictor.std, 0.9)
    want, got = _outputs(predictor, image), _outputs(loaded, image)
    assert want.keys() == got.keys()
    for key in want:
        if isinstance(want[key], torch.Tensor):
            assert torch.equal(want[key], got[key]), key
        else:
            assert want[key] == got[key], key


def test_one_repr_format():
    p = _predictors()
    assert repr(p["detect"]) == "Predictor(tiny_ssd, 2 classes, imgsz=64, device=cpu)"
    assert repr(p["classify"]) == "ClassifierPredictor(resnet18, 3 classes, imgsz=32, device=cpu)"
    assert repr(p["segment"]) == "SegmenterPredictor(fcn_resnet18, 2 classes, device=cpu)"


@pytest.mark.parametrize("task", ["detect", "classify", "segment"])
def test_save_without_a_model_name_names_the_class(tmp_path, task):
    predictor = _predictors()[task]
    predictor.model_name = None
    with pytest.raises(ValueError, match=f"this {type(predictor).__name__} has no model_name"):
        predictor.save(tmp_path / "model.pt")
    assert not (tmp_path / "model.pt").exists()
