"""What ``pixbox export`` writes for a detector: SSD/TinySSD plus its box decoding (:class:`SSDGraph`), the
metadata of the NMS post-step, and the parity check's inputs (its run's validation images, else generated scenes).

NMS is not in the graph (see :mod:`pixbox.export`); Fast and Faster R-CNN are refused: their region proposals come
from outside the network (selective search) or a data-dependent RPN top-k, with per-image RoI pooling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox.engine.task import ExportSpec
from pixbox.ops.coder import DEFAULT_LOG_CLAMP, DEFAULT_MEANS, DEFAULT_STDS, _decode
from pixbox.tasks.detect.data import prepare_image
from pixbox.tasks.detect.predict import Predictor, model_from_checkpoint

__all__ = ["SSDGraph", "detection_export_spec", "onnx_detector"]

_CHECK_IMAGES = 4  # images the detection parity check runs on


class SSDGraph(nn.Module):
    """An SSD plus its box decoding: ``images [B, 3, S, S] -> boxes [B, A, 4], scores [B, C, A]``."""

    def __init__(self, ssd: nn.Module):
        super().__init__()
        self.ssd = ssd

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        anchors, cls_preds, bbox_preds = self.ssd(images)
        b, a = cls_preds.shape[:2]
        boxes = _decode(anchors[0].to(bbox_preds.dtype), bbox_preds.reshape(b, a, 4), DEFAULT_MEANS, DEFAULT_STDS,
                        DEFAULT_LOG_CLAMP).clamp(0, 1)  # [B, A, 4]
        scores = F.softmax(cls_preds, dim=2)[:, :, 1:].permute(0, 2, 1)  # [B, C, A]
        return boxes, scores


def _val_images(config: dict, count: int) -> tuple[list[Tensor], list[str], str]:
    """Up to ``count`` images of the run's validation split (those with objects first), their
    file names and where they come from; no images and the reason when there are none."""
    data, split = config.get("data"), config.get("val_split")
    if not data or not split:
        return [], [], "the checkpoint names no validation split"
    from pixbox.data.formats import detect_format, read_detection
    from pixbox.data.io import read_image
    try:
        fmt = config.get("format") or "auto"
        records = read_detection(data, detect_format(data) if fmt == "auto" else fmt, split).records
        records = ([r for r in records if len(r)] + [r for r in records if not len(r)])[:count]
        images = [read_image(r.image) for r in records]
    except (OSError, ValueError) as e:  # moved or deleted data, a bad file (DatasetError is a ValueError)
        return [], [], f"the validation images of {data} could not be read ({type(e).__name__}: {e})"
    if not images:
        return [], [], f"split {split!r} of {data} has no images"
    return images, [Path(r.image).name for r in records], f"validation images of {data} (split {split!r})"


def _detection_inputs(config: dict, imgsz: int, batch: int) -> tuple[list[Tensor], list[str], str]:
    """The detection parity check's batches ``[batch, 3, imgsz, imgsz]`` (float in [0, 1]), their labels and one
    line saying what they are: the run's validation images, else two shapes scenes, a bananas scene and noise."""
    images, names, source = _val_images(config, _CHECK_IMAGES)
    if images:
        source = f"{len(images)} {source}, resized to {imgsz} px as the predictor does"
    else:
        from pixbox.data.generators.bananas import render_banana
        from pixbox.data.generators.shapes import render_shapes
        size = max(32, imgsz)
        noise = torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        images = [render_shapes(size, seed=0).image, render_shapes(size, seed=1).image,
                  render_banana(size, seed=0).image, noise]
        names = ["shapes_0", "shapes_1", "bananas_0", "noise"]
        source = f"generated images (pixbox shapes, bananas and noise), as {source}"
    images = [prepare_image(image, imgsz) for image in images]
    while len(images) % batch:  # full batches: repeat the first image
        images.append(images[0])
        names.append(names[0])
    batches = [torch.stack(images[i:i + batch]) for i in range(0, len(images), batch)]
    labels = ["+".join(names[i:i + batch]) for i in range(0, len(names), batch)]
    return batches, labels, source


def detection_export_spec(state: dict[str, Any], *, path, score_threshold: float, nms_threshold: float,
                          topk: int) -> ExportSpec:
    """The :class:`~pixbox.engine.task.ExportSpec` of a detection checkpoint (SSD/TinySSD only)."""
    from pixbox.models import needs_proposals
    from pixbox.models.ssd import SSD
    model = model_from_checkpoint(state, path)
    if needs_proposals(model) or not isinstance(model, SSD):
        raise ValueError(
            f"{path}: {state['model_name']!r} cannot be exported to ONNX: only SSD/TinySSD detectors can. "
            "R-CNN models take region proposals from outside the network (selective search) or pick them with "
            "a data-dependent RPN top-k, then pool a variable number of regions per image; run the .pt "
            "checkpoint with PyTorch instead")
    imgsz = int(state["imgsz"])
    meta = {"class_names": json.dumps(list(state.get("class_names", []))), "model_name": str(state.get("model_name")),
            "imgsz": str(imgsz), "score_threshold": str(score_threshold), "nms_threshold": str(nms_threshold),
            "topk": str(int(topk)), "pre_nms_topk": "" if model.pre_nms_topk is None else str(model.pre_nms_topk),
            "boxes": "normalized xyxy in [0, 1], decoded and clipped; multiply by (W, H, W, H)",
            "scores": "softmax class probabilities [B, C, A], background dropped",
            "nms": "post-step, not in the graph: per-class NMS (pixbox.export.postprocess_detections)"}
    config = state.get("config") or {}
    return ExportSpec(SSDGraph(model).eval(), meta, imgsz, ["boxes", "scores"],
                      lambda batch: _detection_inputs(config, imgsz, batch))


def onnx_detector(model: nn.Module, meta: dict[str, str], *, batch: int = 16, score_threshold: float | None = None,
                  nms_threshold: float | None = None, topk: int | None = None, **ignored) -> Predictor:
    """A :class:`~pixbox.tasks.detect.Predictor` running an exported detector (``model``: the ONNX
    session); the thresholds default to the exported ones."""
    return Predictor(
        model, json.loads(meta["class_names"]), int(meta["imgsz"]), device="cpu",
        score_threshold=float(meta["score_threshold"]) if score_threshold is None else score_threshold,
        nms_threshold=float(meta["nms_threshold"]) if nms_threshold is None else nms_threshold,
        topk=int(meta["topk"]) if topk is None else topk, batch=batch)
