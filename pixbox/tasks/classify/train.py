"""The classification task (fine-tuning by default): :class:`ClassifyTask` and :func:`train_classifier`.

A run (:func:`pixbox.engine.runs.fit`) fine-tunes a backbone with (by default) offline pretrained weights and a
new output layer (:func:`~pixbox.engine.finetune.finetune`) on images normalized with the backbone's own mean and
std, and writes the usual run folder plus ``accuracy.png`` and, after the last evaluation, ``confusion_matrix.png``
and ``val_metrics.json``.

Example:
    >>> from pixbox.tasks.classify import ClassifyConfig, train_classifier
    >>> run = train_classifier(ClassifyConfig(data="data/objects", epochs=3))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_choice
from pixbox.engine.finetune import finetune
from pixbox.tasks._common import absolute_weights
from pixbox.engine.optim import param_groups
from pixbox.engine.runs import fit
from pixbox.metrics.files import save_metrics_json
from pixbox.engine.task import ExportSpec, Task, TaskData
from pixbox.tasks.classify.config import ClassifyConfig
from pixbox.tasks.classify.data import classification_dataset, classify_transforms
from pixbox.tasks.classify.predict import ClassifierPredictor, evaluate_loader, load_classifier

__all__ = ["ClassifyTask", "build_classifier", "train_classifier"]


def _backbone(name: str, num_classes: int = 1000) -> nn.Module:
    from pixbox.models.backbones import BACKBONES
    check_choice(name, "model", BACKBONES)
    return BACKBONES[name](num_classes)


def _normalization(name: str) -> tuple[list[float], list[float]]:
    """The input mean and std of backbone ``name`` (read from a weightless copy on the meta device)."""
    with torch.device("meta"):
        cfg = _backbone(name).pretrained_cfg
    return [float(v) for v in cfg["mean"]], [float(v) for v in cfg["std"]]


def build_classifier(cfg: ClassifyConfig, num_classes: int, *, load_weights: bool = True):
    """The model of a run and its optimizer parameter groups.

    With pretrained weights (``cfg.pretrained`` not ``"none"``): the backbone is built for ImageNet, loaded
    (:func:`pixbox.models.backbones.load_pretrained`) and given a new head by :func:`~pixbox.engine.finetune.finetune`
    (head at ``lr * head_lr_mult``, ``cfg.freeze`` applied). From scratch: the backbone is built with
    ``num_classes`` outputs and every parameter learns at ``lr`` (as D2L's scratch baseline).

    Args:
        cfg (ClassifyConfig): the run's config.
        num_classes (int): the dataset's classes.
        load_weights (bool): False skips loading the pretrained file (a resume gets the checkpoint's weights).

    Returns:
        tuple: ``(model, groups, report)``; ``report``: the :class:`~pixbox.models.backbones.LoadReport` or None.
    """
    if cfg.pretrained == "none":
        if cfg.freeze != "none":
            raise ValueError(f"freeze={cfg.freeze!r} keeps pretrained layers or statistics fixed, but pretrained is "
                             "'none' (training from scratch); use freeze='none' or pretrained weights")
        model = _backbone(cfg.model, num_classes)
        groups = [dict(g, name="all") for g in param_groups(model, cfg.weight_decay, lr=cfg.lr)]
        return model, groups, None
    from pixbox.models.backbones import load_pretrained
    model = _backbone(cfg.model)
    report = load_pretrained(model, cfg.pretrained) if load_weights else None
    groups = finetune(model, num_classes, lr=cfg.lr, head_lr_mult=cfg.head_lr_mult, freeze=cfg.freeze,
                      weight_decay=cfg.weight_decay)
    return model, groups, report


class ClassifyTask(Task):
    """Image classification: cross-entropy, accuracy / top-5 / per-class recall on the validation split."""

    name = "classify"
    config_class = ClassifyConfig
    metric_keys, train_values = ("accuracy", "top5", "mean_recall"), ("acc",)
    metric_plot = ("accuracy.png", "Accuracy", "accuracy", ["train_acc", "accuracy", "mean_recall"])

    def prepare(self, cfg: ClassifyConfig, *, new_run: bool) -> ClassifyConfig:
        return absolute_weights(cfg, new_run, "model's offline weights, or 'none' to train from scratch")

    def build_data(self, cfg: ClassifyConfig) -> TaskData:
        mean, std = _normalization(cfg.model)
        train_tf = classify_transforms(cfg.augment_preset, cfg.imgsz, mean, std, crop_pct=cfg.crop_pct)
        eval_tf = classify_transforms("eval", cfg.imgsz, mean, std, crop_pct=cfg.crop_pct)
        train_set = classification_dataset(cfg.data, cfg.format, cfg.train_split, train_tf, cfg.limit_train,
                                           seed=cfg.seed, allow_outside=cfg.allow_outside_paths)
        if len(train_set.class_names) < 2:
            raise ValueError(f"the {cfg.train_split!r} split of {cfg.data} has {len(train_set.class_names)} class "
                             f"({list(train_set.class_names)}); a classifier needs at least 2")
        val_set = None if cfg.val_split is None else classification_dataset(
            cfg.data, cfg.format, cfg.val_split, eval_tf, cfg.limit_val, seed=cfg.seed,
            allow_outside=cfg.allow_outside_paths)
        return TaskData(train_set, val_set, extra={"mean": mean, "std": std})

    def build_model(self, cfg: ClassifyConfig, class_names, *, load_weights: bool):
        model, groups, report = build_classifier(cfg, len(class_names), load_weights=load_weights)
        return model, groups, [] if report is None else [str(report)]

    def loss(self, trainer, batch) -> dict[str, Tensor]:
        images, labels = trainer.to_device(batch)
        logits = trainer.forward(images).float()
        loss = F.cross_entropy(logits, labels, label_smoothing=trainer.config.label_smoothing)
        acc = (logits.detach().argmax(1) == labels).float().mean()
        return {"loss": loss, "acc": acc}

    def evaluate(self, trainer, loader) -> dict[str, Any]:
        return evaluate_loader(trainer.eval_model, loader, trainer.class_names, trainer.device)

    def describe(self, cfg: ClassifyConfig, data: TaskData) -> str:
        source = "from scratch" if cfg.pretrained == "none" else f"fine-tuning from {cfg.pretrained} weights"
        return f"{cfg.model} ({source})"

    def checkpoint_extra(self, cfg: ClassifyConfig, data: TaskData) -> dict[str, Any]:
        return {"imgsz": cfg.imgsz, "mean": data.extra["mean"], "std": data.extra["std"], "crop_pct": cfg.crop_pct}

    def after_fit(self, trainer, run_dir: Path, data: TaskData) -> None:
        if trainer.metrics.get("confusion") is not None:
            from pixbox.plots import save_confusion_matrix
            save_confusion_matrix(trainer.metrics["confusion"], data.class_names, run_dir / "confusion_matrix.png")
            save_metrics_json(trainer.metrics, run_dir / "val_metrics.json")

    def load(self, state: dict[str, Any], *, path, device, batch: int = 32, **options):
        return load_classifier(state, path=path, device=device, batch=batch)

    def export_spec(self, state: dict[str, Any], *, path, **options) -> ExportSpec:
        p = load_classifier(state, path=path, device="cpu")
        meta = {"class_names": json.dumps(p.class_names), "model_name": str(p.model_name), "mean": json.dumps(p.mean),
                "std": json.dumps(p.std), "crop_pct": str(p.crop_pct), "imgsz": str(p.imgsz)}

        def check_inputs(batch: int):  # the graph takes normalized images
            return [torch.randn(batch, 3, p.imgsz, p.imgsz, generator=torch.Generator().manual_seed(0))], None, \
                "random normalized images"

        return ExportSpec(p.model, meta, p.imgsz, ["logits"], check_inputs)

    def onnx_predictor(self, model, metadata: dict[str, str], *, batch: int = 32, **options):
        return ClassifierPredictor(model, json.loads(metadata["class_names"]), int(metadata["imgsz"]),
                                   mean=json.loads(metadata["mean"]), std=json.loads(metadata["std"]),
                                   crop_pct=float(metadata["crop_pct"]), device="cpu", batch=batch)


def train_classifier(config: ClassifyConfig | dict | str | os.PathLike | None = None, **options) -> Path:
    """Trains a classifier (fine-tuning by default) and returns the run folder: :func:`~pixbox.engine.runs.fit`
    with a :class:`ClassifyTask`."""
    return fit(ClassifyTask(), config, **options)
