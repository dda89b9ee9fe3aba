"""The detection task (SSD, TinySSD, Faster and Fast R-CNN): :class:`DetectTask` and :func:`train_detector`.

A run (:func:`pixbox.engine.runs.fit`) writes the usual run folder, plus ``map.png`` (the validation mAPs).

Training: images are resized to ``imgsz x imgsz`` (after the augmentation preset), labelled with
:func:`pixbox.ops.multibox_target` on the whole batch and scored with :func:`pixbox.losses.multibox_loss`
(two-stage detectors compute their own losses). Evaluation resizes the images the same way and maps the
detections back to the original image pixels, where the ground truth is (:mod:`pixbox.tasks.detect.predict`).

Fast R-CNN (``fast_rcnn_*`` models) classifies region proposals read from a file (``proposals`` /
``--proposals``, :mod:`pixbox.data.proposals`) keyed by image path: the training transforms move them with the
boxes, evaluation scales them to the ``imgsz`` input, and the detections come back in original pixels.

Example:
    >>> from pixbox.tasks.detect import DetectConfig, train_detector
    >>> train_detector(DetectConfig(data="data/bananas", epochs=10, imgsz=256))  # doctest: +SKIP
    PosixPath('runs/detect/train')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import Tensor

from pixbox.engine.runs import fit
from pixbox.engine.task import Task, TaskData
from pixbox.tasks._common import absolute_weights
from pixbox.tasks.detect.config import DetectConfig
from pixbox.tasks.detect.data import EvalTransform, build_train_transforms, check_val_split, detection_dataset
from pixbox.tasks.detect.evaluate import evaluate_loader
from pixbox.tasks.detect.predict import Predictor, load_detector

__all__ = ["DetectTask", "train_detector"]


class DetectTask(Task):
    """Object detection: boxes and classes, mAP (COCO and VOC) on the validation split."""

    name = "detect"
    config_class = DetectConfig
    metric_keys = ("map", "map_50", "map_75", "voc07_ap50", "voc_ap50")
    loss_parts = ("cls", "box")
    metric_plot = ("map.png", "Validation mAP", "mAP", ["map", "map_50", "map_75", "voc07_ap50"])

    def build_data(self, cfg: DetectConfig) -> TaskData:
        from pixbox.data.datasets import collate_detection, collate_multibox
        proposals = None
        if cfg.proposals is not None:  # read once for both splits
            from pixbox.data.proposals import load_proposals
            proposals = load_proposals(cfg.proposals)
        transforms = build_train_transforms(cfg.augment_preset, cfg.imgsz)
        train_set = detection_dataset(cfg.data, cfg.format, cfg.train_split, transforms, cfg.limit_train, proposals,
                                      allow_outside=cfg.allow_outside_paths)
        val_set = None
        if cfg.val_split is not None:
            check_val_split(cfg)
            val_set = detection_dataset(cfg.data, cfg.format, cfg.val_split, EvalTransform(cfg.imgsz), cfg.limit_val,
                                        proposals, allow_outside=cfg.allow_outside_paths)
        return TaskData(train_set, val_set, collate_fn=collate_multibox, val_collate_fn=collate_detection)

    def prepare(self, cfg: DetectConfig, *, new_run: bool) -> DetectConfig:
        if new_run and cfg.proposals is not None:  # a new run: its files by absolute path, like data
            cfg = cfg.replace(proposals=os.path.abspath(cfg.proposals))
        return absolute_weights(cfg, new_run, "backbone's offline weights, or 'none' to train from scratch")

    def build_model(self, cfg: DetectConfig, class_names, *, load_weights: bool):
        """The detector; with pretrained weights, the lecture's fine-tuning recipe (``head_lr_mult``, ``freeze``)."""
        from pixbox.engine.finetune import freeze_batchnorm
        from pixbox.engine.optim import param_groups
        from pixbox.models import build_model
        if cfg.pretrained == "none":
            return build_model(cfg.model, len(class_names), image_size=cfg.imgsz), None, []
        if cfg.model == "tiny_ssd":
            raise ValueError("tiny_ssd has no pretrained backbone; use pretrained='none', or a backbone model such "
                             "as ssd_efficientnet_lite0")
        weights = {"pretrained_backbone": cfg.pretrained} if load_weights else {}
        model = build_model(cfg.model, len(class_names), image_size=cfg.imgsz, **weights)
        body = model.body if hasattr(model, "body") else model.backbone.body  # R-CNN / SSD
        if cfg.freeze == "backbone":
            body.requires_grad_(False)
        elif cfg.freeze == "bn":
            freeze_batchnorm(body)
        in_body = {id(p) for p in body.parameters()}
        rest = [p for p in model.parameters() if id(p) not in in_body]
        groups = ([dict(g, name="backbone") for g in param_groups(body.parameters(), cfg.weight_decay, lr=cfg.lr)]
                  + [dict(g, name="new") for g in param_groups(rest, cfg.weight_decay, lr=cfg.lr * cfg.head_lr_mult)])
        return model, groups, [f"backbone weights: {cfg.pretrained}; new layers at lr x {cfg.head_lr_mult:g}"
                               + (f"; freeze {cfg.freeze}" if cfg.freeze != "none" else "")]

    def loss(self, trainer, batch) -> dict[str, Tensor]:
        from pixbox.losses import multibox_loss
        from pixbox.ops import multibox_target
        images, labels, *rest = trainer.to_device(batch)
        if getattr(trainer.model, "needs_proposals", False):  # Fast R-CNN: the batch's third element
            if not rest:
                raise ValueError(f"{type(trainer.model).__name__} needs region proposals in every batch: build the "
                                 "dataset with proposals= (config key proposals)")
            return trainer.forward(images, labels, rest[0], method="detection_losses")
        if hasattr(trainer.model, "detection_losses"):  # two-stage detectors compute their own losses
            return trainer.forward(images, labels, method="detection_losses")
        anchors, cls_preds, bbox_preds = trainer.forward(images)
        cls_preds, bbox_preds = cls_preds.float(), bbox_preds.float()
        bbox_labels, bbox_masks, cls_labels = multibox_target(anchors.float(), labels)  # whole batch at once
        return multibox_loss(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks,
                             negative_mining_ratio=trainer.config.negative_mining_ratio, box_loss=trainer.config.box_loss)

    def evaluate(self, trainer, loader) -> dict[str, Any]:
        cfg = trainer.config
        predictor = Predictor(trainer.eval_model, trainer.class_names, cfg.imgsz, device=trainer.device)
        return evaluate_loader(predictor, loader, trainer.class_names, score_threshold=cfg.score_threshold,
                               nms_threshold=cfg.nms_threshold, topk=cfg.topk)

    def checkpoint_extra(self, cfg: DetectConfig, data: TaskData) -> dict[str, Any]:
        return {"imgsz": cfg.imgsz}

    def load(self, state: dict[str, Any], *, path, device, batch: int = 16, **options):
        return load_detector(state, path=path, device=device, batch=batch, **options)

    def export_spec(self, state: dict[str, Any], **options):
        from pixbox.tasks.detect.export import detection_export_spec
        return detection_export_spec(state, **options)

    def onnx_predictor(self, model, metadata: dict[str, str], **options):
        from pixbox.tasks.detect.export import onnx_detector
        return onnx_detector(model, metadata, **options)


def train_detector(config: DetectConfig | dict | str | os.PathLike | None = None, **options) -> Path:
    """Trains a detector and returns the run folder: :func:`~pixbox.engine.runs.fit` with a :class:`DetectTask`."""
    return fit(DetectTask(), config, **options)
