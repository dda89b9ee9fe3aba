"""The semantic segmentation task (FCNs on Pascal VOC-format data): :class:`SegmentTask`, :func:`train_segmenter`.

A run (:func:`pixbox.engine.runs.fit`) trains with the per-pixel cross-entropy (mask pixels of 255 are ignored)
on random ``crop`` windows and writes the usual run folder plus ``miou.png`` and, after the last evaluation,
``confusion_matrix.png`` and ``val_metrics.json``.

Data: the VOC layout (``JPEGImages/``, ``SegmentationClass/`` palette PNGs,
``ImageSets/Segmentation/<split>.txt``; :class:`pixbox.data.datasets.SegmentationDataset`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from pixbox.engine.runs import fit
from pixbox.metrics.files import save_metrics_json
from pixbox.engine.task import ExportSpec, Task, TaskData
from pixbox.tasks._common import absolute_weights
from pixbox.tasks.segment.config import SegmentConfig
from pixbox.tasks.segment.data import IGNORE_INDEX, collate_padded, segment_transforms, segmentation_dataset
from pixbox.tasks.segment.predict import SegmenterPredictor, evaluate_loader, load_segmenter

__all__ = ["SegmentTask", "train_segmenter"]


def _build_model(name: str, num_classes: int, *, pretrained: str = "none", freeze_upsample: bool = False):
    from pixbox.models.fcn import SEGMENTATION_MODELS
    weights = None if pretrained == "none" else pretrained
    return SEGMENTATION_MODELS[name](num_classes, pretrained=weights, freeze_upsample=freeze_upsample)


class SegmentTask(Task):
    """Semantic segmentation: per-pixel cross-entropy, mIoU on whole validation images."""

    name = "segment"
    config_class = SegmentConfig
    train_values = ("acc",)
    metric_keys = ("miou", "pixel_accuracy", "mean_class_accuracy")
    metric_plot = ("miou.png", "Validation", "score", list(metric_keys))

    def prepare(self, cfg: SegmentConfig, *, new_run: bool) -> SegmentConfig:
        return absolute_weights(cfg, new_run, "backbone's offline weights, or 'none' for a random initialization")

    def describe(self, cfg: SegmentConfig, data: TaskData) -> str:
        source = "random initialization" if cfg.pretrained == "none" else f"{cfg.pretrained} backbone weights"
        return f"{cfg.model} ({source}; crop {cfg.crop[0]}x{cfg.crop[1]})"

    def build_data(self, cfg: SegmentConfig) -> TaskData:
        from pixbox.data.datasets import collate_segmentation
        train_set = segmentation_dataset(cfg.data, cfg.train_split, segment_transforms(cfg.augment, cfg.crop),
                                         cfg.limit_train, seed=cfg.seed)
        val_set = None if cfg.val_split is None else segmentation_dataset(
            cfg.data, cfg.val_split, segment_transforms("eval", None), cfg.limit_val, seed=cfg.seed)
        return TaskData(train_set, val_set, collate_fn=collate_segmentation, val_collate_fn=collate_padded)

    def build_model(self, cfg: SegmentConfig, class_names, *, load_weights: bool):
        model = _build_model(cfg.model, len(class_names), pretrained=cfg.pretrained if load_weights else "none",
                             freeze_upsample=cfg.freeze_upsample)
        return model, None, []

    def loss(self, trainer, batch) -> dict[str, Tensor]:
        images, masks = trainer.to_device(batch)
        logits = trainer.forward(images).float()
        loss = F.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX)
        valid = masks != IGNORE_INDEX
        acc = ((logits.detach().argmax(1) == masks) & valid).sum() / valid.sum().clamp(min=1)
        return {"loss": loss, "acc": acc}

    def evaluate(self, trainer, loader) -> dict[str, Any]:
        return evaluate_loader(trainer.eval_model, loader, trainer.class_names, trainer.device)

    def after_fit(self, trainer, run_dir: Path, data: TaskData) -> None:
        if trainer.metrics.get("confusion") is not None:
            from pixbox.plots import save_segmentation_confusion
            save_segmentation_confusion(trainer.metrics["confusion"], data.class_names,
                                        run_dir / "confusion_matrix.png")
            save_metrics_json(trainer.metrics, run_dir / "val_metrics.json")

    def load(self, state: dict[str, Any], *, path, device, **options):
        return load_segmenter(state, path=path, device=device)

    def export_spec(self, state: dict[str, Any], *, path, **options) -> ExportSpec:
        p = load_segmenter(state, path=path, device="cpu")
        stride = int(p.model.stride)
        imgsz = max(stride, -(-int(state.get("imgsz") or 256) // stride) * stride)  # a multiple of the stride
        meta = {"class_names": json.dumps(p.class_names), "model_name": str(p.model_name), "stride": str(stride),
                "image_mean": json.dumps(p.model.image_mean.flatten().tolist())}

        def check_inputs(batch: int):  # two sizes: the height and width are dynamic
            g = torch.Generator().manual_seed(0)
            shapes = [(imgsz, imgsz), (max(32, imgsz // 2 // 32 * 32), imgsz + 64)]
            return [torch.rand(batch, 3, h, w, generator=g) for h, w in shapes], None, "random images in [0, 1]"

        return ExportSpec(p.model.to(memory_format=torch.contiguous_format), meta, imgsz, ["logits"], check_inputs,
                          dynamic_hw=True)

    def onnx_predictor(self, model, metadata: dict[str, str], **options):
        return SegmenterPredictor(model, json.loads(metadata["class_names"]), device="cpu")


def train_segmenter(config: SegmentConfig | dict | str | os.PathLike | None = None, **options) -> Path:
    """Trains an FCN and returns the run folder: :func:`~pixbox.engine.runs.fit` with a :class:`SegmentTask`."""
    return fit(SegmentTask(), config, **options)
