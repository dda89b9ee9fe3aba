"""Tests for pixbox.export and ``pixbox export``: ONNX export, ONNX Runtime parity, predict from .onnx."""

from __future__ import annotations

import argparse
import json
import logging
import warnings

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402

from pixbox.cli import export as export_cli  # noqa: E402
from pixbox.cli.main import main  # noqa: E402
from pixbox.data import make_dataset  # noqa: E402
from pixbox.tasks.detect import DetectConfig, train_detector  # noqa: E402
from pixbox.engine.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from pixbox.tasks.detect import Predictor
from pixbox import load  # noqa: E402
from pixbox.export import (OnnxModel, VerificationError, _quiet_exporter, export_onnx,  # noqa: E402
                           format_report, load_onnx, postprocess_detections, verify_onnx)
from pixbox.models import MODELS, SEGMENTATION_MODELS  # noqa: E402
from pixbox.models.backbones import BACKBONES  # noqa: E402
from pixbox.ops import decode_detections  # noqa: E402
from pixbox.ops.coder import DEFAULT_LOG_CLAMP, DEFAULT_MEANS, DEFAULT_STDS, _decode  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _export_cli(argv) -> int:
    parser = argparse.ArgumentParser(prog="pixbox")
    export_cli.add_parser(parser.add_subparsers(dest="task"))
    args = parser.parse_args(["export", *argv])
    return args.func(args)


def _images(seed: int, sizes):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g) for h, w in sizes]


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """A TinySSD checkpoint (2 classes, 64 px) and its --dynamic export through the CLI."""
    root = tmp_path_factory.mktemp("det")
    torch.manual_seed(0)
    model = MODELS["tiny_ssd"](2)
    with torch.no_grad():  # a more confident head than the random init: fewer near-ties
        for i in range(model.num_scales):
            getattr(model, f"cls_{i}").weight.mul_(4)
    pt = Predictor(model, ["cat", "dog"], 64, model_name="tiny_ssd").save(root / "best.pt")
    return pt, root


@pytest.fixture(scope="module")
def detector_onnx(detector):
    pt, root = detector
    code = _export_cli(["--weights", str(pt), "--dynamic", "--conf", "0.3"])
    assert code == 0
    return pt, root / "best.onnx"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny_ssd trained for one epoch on 16 generated banana images (64 px): its run folder and data."""
    data = tmp_path_factory.mktemp("bananas")
    make_dataset("bananas", data, num_train=16, num_val=8, image_size=64, progress=False)
    cfg = DetectConfig(data=str(data), project=str(tmp_path_factory.mktemp("runs")), name="tiny", epochs=1, batch=8,
                       imgsz=64, workers=0, device="cpu", lr=0.02, warmup_epochs=0.5)
    return train_detector(cfg, progress=False, verbose=False), data


def test_detect_export_compares_detections_on_the_run_val_images(trained, tmp_path, capfd):
    run, data = trained
    result = export_onnx(run / "best.pt", tmp_path / "tiny.onnx")
    assert result["ok"] and result["compared_detections"] > 0 and result["detection_threshold"] == 0.25
    assert result["check_inputs"] == (f"4 validation images of {data} (split 'val'), resized to 64 px as the "
                                      "predictor does")
    names = sorted(p.name for p in (data / "val" / "images").glob("*.png"))[:4]
    assert [d["input"] for d in result["detections"]] == names
    assert sum(d["torch"] for d in result["detections"]) == result["compared_detections"]
    assert all(d["identical"] and d["torch"] == d["onnx"] > 0 for d in result["detections"])
    text = format_report(result)
    assert f"detections compared: {result['compared_detections']} on 4 inputs (score > 0.25), all identical" in text
    # torch.onnx's exporter logs one "torchvision is not installed. Skipping torchvision::nms" line per
    # torchvision op; pixbox needs no torchvision, so export_onnx hides exactly those lines
    assert "torchvision is not installed" not in capfd.readouterr().err


def test_detect_cli_export_prints_the_check_inputs_and_stays_quiet(trained, tmp_path, capfd):
    run, data = trained
    assert main(["export", "--weights", str(run / "best.pt"), "-o", str(tmp_path / "cli.onnx")]) == 0
    out, err = capfd.readouterr()
    assert f"check inputs: 4 validation images of {data} (split 'val')" in out
    assert "val_000000.png" in out and "detections compared: " in out and "identical: NO" not in out
    assert "torchvision is not installed" not in err and "Skipping torchvision::" not in err


def test_detect_export_without_the_val_images_uses_generated_ones(trained, tmp_path):
    run, _ = trained
    state = load_checkpoint(run / "best.pt")
    state["config"]["data"] = str(tmp_path / "moved")  # the dataset is gone
    pt = save_checkpoint(state, tmp_path / "best.pt")
    result = export_onnx(pt)
    assert result["ok"] and result["compared_detections"] > 0
    assert result["check_inputs"].startswith("generated images (pixbox shapes, bananas and noise), as the "
                                             f"validation images of {tmp_path / 'moved'} could not be read")
    assert [d["input"] for d in result["detections"]] == ["shapes_0", "shapes_1", "bananas_0", "noise"]


def test_parity_report_says_when_no_input_has_detections(detector_onnx):
    pt, path = detector_onnx
    from pixbox.tasks.detect.export import SSDGraph
    from pixbox.tasks.detect import model_from_checkpoint

    graph = SSDGraph(model_from_checkpoint(load_checkpoint(pt))).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    # nothing scores above 1: the raw outputs alone were compared, and the report says so
    none = verify_onnx(path, graph, [x], score_threshold=1.0, candidate_threshold=None, labels=["noise"])
    assert none["ok"] and none["compared_detections"] == 0 and none["detection_threshold"] == 1.0
    text = format_report(none)
    assert "no detections on any check input (score > 1): compared the raw scores/boxes only" in text
    assert "noise            kept detections: none" in text and "identical" not in text
    # by default the candidates above 0.01 are compared instead
    low = verify_onnx(path, graph, [x], score_threshold=1.0)
    assert low["ok"] and low["compared_detections"] > 0 and low["detection_threshold"] == 0.01
    assert "the candidates above 0.01 were compared" in format_report(low)
    with pytest.raises(ValueError, match="labels must have one name per input \\(1\\), got 2"):
        verify_onnx(path, graph, [x], labels=["a", "b"])


def test_quiet_exporter_hides_only_the_torchvision_notices(caplog):
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger=logger.name), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with _quiet_exporter():
                logger.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
                logger.warning("another exporter message")
                warnings.warn("another warning", UserWarning)
            logger.warning("torchvision is not installed. Skipping %s", "torchvision::roi_align")  # outside: shown
    finally:
        logger.removeHandler(caplog.handler)
    messages = [r.getMessage() for r in caplog.records]
    assert "another exporter message" in messages and "torchvision is not installed. Skipping torchvision::nms" \
        not in messages
    assert "torchvision is not installed. Skipping torchvision::roi_align" in messages
    assert [str(w.message) for w in seen] == ["another warning"]


def test_detect_cli_export_writes_verified_file_with_metadata(detector_onnx, capsys):
    pt, path = detector_onnx
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["pixbox_task"] == "detect"
    assert json.loads(meta["class_names"]) == ["cat", "dog"]
    assert meta["imgsz"] == "64" and meta["score_threshold"] == "0.3" and meta["pre_nms_topk"] == "400"
    assert [o.name for o in proto.graph.output] == ["boxes", "scores"]
    model = OnnxModel(path)
    assert not isinstance(model.input_shape[0], int) and model.input_shape[1:] == [3, 64, 64]  # dynamic batch
    boxes, scores = model(torch.rand(3, 3, 64, 64))
    assert boxes.shape == (3, 344, 4) and scores.shape == (3, 2, 344)
    assert float(boxes.min()) >= 0 and float(boxes.max()) <= 1
    assert float(scores.sum(1).max()) < 1  # background dropped


def test_detect_graph_matches_pytorch_outputs(detector_onnx):
    pt, path = detector_onnx
    from pixbox.tasks.detect.export import SSDGraph
    from pixbox.tasks.detect import model_from_checkpoint
    from pixbox.engine.checkpoint import load_checkpoint

    graph = SSDGraph(model_from_checkpoint(load_checkpoint(pt))).eval()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    report = verify_onnx(path, graph, [x], score_threshold=0.05)
    assert report["ok"], format_report(report)
    assert max(r["max_abs_diff"] for r in report["rows"]) <= 1e-4
    assert report["detections"][0]["torch"] > 0 and report["detections"][0]["identical"]


def test_onnx_predict_equals_pt_predict(detector_onnx):
    pt, path = detector_onnx
    images = _images(1, [(64, 64), (48, 80), (100, 30)])
    for conf in (0.05, 0.5):
        ref = load(pt, device="cpu").predict(images, score_threshold=conf)
        got = load(path).predict(images, score_threshold=conf)
        assert len(ref) == len(got) == 3
        for a, b in zip(ref, got):
            assert b["size"] == a["size"] and b["names"] == a["names"]
            assert torch.equal(a["labels"], b["labels"])
            assert torch.allclose(a["scores"], b["scores"], atol=1e-5, rtol=0)
            assert torch.allclose(a["boxes"], b["boxes"], atol=1e-3, rtol=0)  # pixels; 1e-4 normalized
    assert sum(len(r["labels"]) for r in ref) < sum(len(r["labels"]) for r in load(path).predict(images))


def test_onnx_predictor_uses_exported_defaults(detector_onnx):
    _, path = detector_onnx
    predictor = load_onnx(path)
    assert isinstance(predictor, Predictor) and predictor.score_threshold == 0.3
    assert predictor.class_names == ["cat", "dog"] and predictor.imgsz == 64 and predictor.path == str(path)
    assert repr(predictor) == "Predictor(OnnxModel, 2 classes, imgsz=64, device=cpu)"
    assert load_onnx(path, score_threshold=0.9).score_threshold == 0.9


def test_detect_predict_cli_runs_onnx(detector_onnx, tmp_path):
    from pixbox.viz import save_image

    pt, path = detector_onnx
    for i, img in enumerate(_images(2, [(64, 64), (50, 70)])):
        save_image(img, tmp_path / f"img{i}.png")
    outs = {}
    for w in (pt, path):
        out = tmp_path / f"out_{w.suffix[1:]}"
        assert main(["detect", "predict", "--weights", str(w), str(tmp_path / "img0.png"), str(tmp_path / "img1.png"),
                     "--out", str(out), "--conf", "0.1", "--device", "cpu"]) == 0
        outs[w.suffix] = json.loads((out / "predictions.json").read_text())["images"]
    ref, got = outs[".pt"], outs[".onnx"]
    assert len(ref) == len(got) == 2
    for a, b in zip(ref, got):
        a_dets, b_dets = a["detections"], b["detections"]
        assert [d["label"] for d in a_dets] == [d["label"] for d in b_dets] and len(a_dets) > 0
        for da, db in zip(a_dets, b_dets):
            assert max(abs(x - y) for x, y in zip(da["box"], db["box"])) <= 0.02
            assert abs(da["score"] - db["score"]) <= 1e-4


def test_postprocess_matches_decode_detections():
    """The NMS post-step on decoded boxes keeps exactly what SSD.predict's decode_detections keeps."""
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        b, c, a = 2, 3, 60
        xy = torch.rand(a, 2, generator=g) * 0.8
        anchors = torch.cat([xy, xy + 0.05 + 0.2 * torch.rand(a, 2, generator=g)], 1)
        probs = torch.softmax(3 * torch.randn(b, c + 1, a, generator=g), 1)
        offsets = torch.randn(b, 4 * a, generator=g) * 0.5
        for pre in (None, 7):
            ref = decode_detections(probs, offsets, anchors, score_threshold=0.1, nms_threshold=0.4, topk=15,
                                    clip=True, pre_nms_topk=pre)
            boxes = _decode(anchors, offsets.view(b, a, 4), DEFAULT_MEANS, DEFAULT_STDS, DEFAULT_LOG_CLAMP).clamp(0, 1)
            got = postprocess_detections(boxes, probs[:, 1:], score_threshold=0.1, nms_threshold=0.4, topk=15,
                                         pre_nms_topk=pre)
            for r, o in zip(ref, got):
                assert len(r["labels"]) > 0
                assert torch.equal(r["labels"], o["labels"]) and torch.equal(r["scores"], o["scores"])
                assert torch.equal(r["boxes"], o["boxes"])


def test_postprocess_thresholds_change_output():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(1, 50, 2, generator=g) * 0.5
    boxes = torch.cat([xy, xy + 0.4], 2)
    scores = torch.rand(1, 2, 50, generator=g)
    n = lambda **kw: len(postprocess_detections(boxes, scores, **kw)[0]["labels"])  # noqa: E731
    assert n(score_threshold=0.9) < n(score_threshold=0.1)
    assert n(nms_threshold=0.1) < n(nms_threshold=0.9)
    assert n(topk=3) == 3
    assert n(score_threshold=0.0, nms_threshold=1.0, pre_nms_topk=5) == 10
    with pytest.raises(ValueError, match="scores must be a Tensor"):
        postprocess_detections(boxes, scores[:, :, :10])
    with pytest.raises(ValueError, match="boxes must be a Tensor"):
        postprocess_detections(boxes[0], scores)


def test_classifier_export_parity(tmp_path, capsys):
    torch.manual_seed(0)
    state = {"task": "classify", "model": BACKBONES["resnet18"](3).state_dict(), "model_name": "resnet18",
             "num_classes": 3, "class_names": ["a", "b", "c"], "imgsz": 32, "mean": [0.5, 0.4, 0.3],
             "std": [0.2, 0.25, 0.3], "crop_pct": 0.875}
    pt = save_checkpoint(state, tmp_path / "cls.pt")
    # a tolerance below float32 rounding: the verification fails loudly and the file is removed
    assert _export_cli(["--weights", str(pt), "-o", str(tmp_path / "bad.onnx"), "--atol", "1e-12"]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out and "disagree beyond 1e-12" in captured.err
    assert not (tmp_path / "bad.onnx").exists()
    result = export_onnx(pt, tmp_path / "cls.onnx", dynamic=True)
    assert result["ok"] and result["task"] == "classify" and result["rows"][0]["shape"] == (2, 3)
    assert format_report(result).endswith("tolerance 0.0001: passed")
    images = _images(4, [(40, 40), (33, 57), (64, 48)])
    ref = load(pt, device="cpu").predict(images, topk=3)
    got = load(tmp_path / "cls.onnx").predict(images, topk=3)
    for a, b in zip(ref, got):
        assert [t["label"] for t in a["topk"]] == [t["label"] for t in b["topk"]]
        assert max(abs(x["score"] - y["score"]) for x, y in zip(a["topk"], b["topk"])) <= 1e-5


def test_segmenter_export_parity_any_size(tmp_path):
    torch.manual_seed(0)
    model = SEGMENTATION_MODELS["fcn_resnet18"](3)
    state = {"task": "segment", "model": model.state_dict(), "model_name": "fcn_resnet18", "num_classes": 3,
             "class_names": ["background", "a", "b"], "imgsz": 64}
    pt = save_checkpoint(state, tmp_path / "seg.pt")
    result = export_onnx(pt)  # default: next to the weights
    assert result["path"] == tmp_path / "seg.onnx"
    assert [r["input"] for r in result["rows"]] == ["1x3x64x64", "1x3x32x128"]  # H and W are dynamic
    images = _images(5, [(50, 70), (64, 64)])  # 50 x 70 is padded to the stride and cropped back
    ref = load(pt, device="cpu").predict(images)
    got = load(result["path"]).predict(images)
    for a, b in zip(ref, got):
        assert b["size"] == a["size"] and b["mask"].shape == a["mask"].shape
        assert (a["mask"] == b["mask"]).float().mean() > 0.999
        assert torch.allclose(a["scores"], b["scores"], atol=1e-4, rtol=0)


def test_verification_catches_a_mismatch(detector_onnx):
    pt, path = detector_onnx
    from pixbox.tasks.detect.export import SSDGraph
    from pixbox.tasks.detect import model_from_checkpoint
    from pixbox.engine.checkpoint import load_checkpoint

    model = model_from_checkpoint(load_checkpoint(pt))
    with torch.no_grad():
        model.bbox_0.bias.add_(0.1)
    report = verify_onnx(path, SSDGraph(model).eval(), [torch.rand(1, 3, 64, 64)], score_threshold=0.05)
    assert not report["ok"]
    assert [r["ok"] for r in report["rows"]] == [False, True]  # the boxes moved, the scores did not
    assert "FAILED" in format_report(report)
    assert issubclass(VerificationError, RuntimeError)


def test_errors(detector, detector_onnx, tmp_path, capsys):
    pt, _ = detector
    _, path = detector_onnx
    with pytest.raises(ValueError, match="opset must be an int >= 18"):
        export_onnx(pt, tmp_path / "x.onnx", opset=11)
    with pytest.raises(ValueError, match="out must end in .onnx"):
        export_onnx(pt, tmp_path / "x.pt")
    with pytest.raises(FileNotFoundError, match="no such file"):
        export_onnx(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="images must have shape"):
        OnnxModel(path)(torch.rand(1, 3, 32, 32))
    # an ONNX file that pixbox did not write
    node = onnx.helper.make_node("Identity", ["x"], ["y"])
    vi = onnx.helper.make_tensor_value_info
    graph = onnx.helper.make_graph([node], "g", [vi("x", onnx.TensorProto.FLOAT, [1])],
                                   [vi("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), tmp_path / "other.onnx")
    with pytest.raises(ValueError, match="not a pixbox export"):
        load(tmp_path / "other.onnx")
    with pytest.raises(FileNotFoundError):
        load_onnx(tmp_path / "none.onnx")
    # R-CNN: refused with the reason
    rcnn = MODELS["fast_rcnn_resnet18"](1, image_size=64)
    rpt = save_checkpoint({"task": "detect", "model": rcnn.state_dict(), "model_name": "fast_rcnn_resnet18",
                           "num_classes": 1, "class_names": ["a"], "imgsz": 64}, tmp_path / "rcnn.pt")
    with pytest.raises(ValueError, match="cannot be exported to ONNX.*region proposals"):
        export_onnx(rpt, tmp_path / "rcnn.onnx")
    assert not (tmp_path / "rcnn.onnx").exists()
    assert _export_cli(["--weights", str(rpt)]) == 1
    assert "cannot be exported" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        _export_cli(["--weights", str(pt), "--format", "onnxx"])
    assert e.value.code == 2
    assert "did you mean 'onnx'" in capsys.readouterr().err
