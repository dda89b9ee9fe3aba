"""The config of a semantic segmentation run: :class:`SegmentConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pixbox._checks import bool_value, choice_value
from pixbox.engine.config import RunConfig

__all__ = ["SEGMENT_AUGMENT_PRESETS", "SegmentConfig"]

#: The segmentation augmentation presets (see :func:`~pixbox.tasks.segment.data.segment_transforms`).
SEGMENT_AUGMENT_PRESETS: tuple[str, ...] = ("crop", "flip", "scale")


def _segmenter_names() -> tuple[str, ...]:
    from pixbox.models.fcn import SEGMENTATION_MODELS
    return tuple(SEGMENTATION_MODELS)


def _crop(value, name):
    if isinstance(value, str):
        parts = value.lower().replace(",", "x").split("x")
        try:
            value = [int(p) for p in parts]
        except ValueError:
            raise ValueError(f"{name} must be HxW (e.g. '320x480'), one int, or a pair of ints, got {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) for v in value)):
        raise TypeError(f"{name} must be HxW (e.g. '320x480'), one int, or a pair of ints, got {value!r}")
    if min(value) < 32:
        raise ValueError(f"{name} sides must be >= 32 pixels, got {tuple(value)}")
    return (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class SegmentConfig(RunConfig):
    """Everything a semantic segmentation run depends on (Pascal VOC-format data): the keys of
    :class:`~pixbox.engine.config.RunConfig` (some with other defaults, see the signature) and:

    Attributes:
        model (str): a key of :data:`pixbox.models.fcn.SEGMENTATION_MODELS`: ``"fcn_resnet18"`` (the book's FCN-32s),
            ``"fcn8s_efficientnet_lite0"`` (the default: FCN-8s skips on a backbone with offline ImageNet weights), ...
        pretrained (str): the backbone's (only EfficientNet-Lite0 has ``"default"`` weights; for ResNets a local file
            such as torchvision's ``resnet18-f37072fd.pth``).
        crop (tuple[int, int]): the ``(height, width)`` of the random training window (smaller images are padded,
            see :mod:`pixbox.tasks.segment.data`); ``"320x480"``, ``[320, 480]`` or one int for a square.
        augment (str): a preset of :data:`SEGMENT_AUGMENT_PRESETS`.
        freeze_upsample (bool): keep the transposed convolution at its bilinear initialization.
        monitor (str): ``"miou"``, ``"pixel_accuracy"`` or ``"mean_class_accuracy"``.
    """

    model: str = "fcn8s_efficientnet_lite0"
    batch: int = 8
    project: str = "runs/segment"
    monitor: str = "miou"
    channels_last: bool = True
    augment: str = "flip"
    crop: tuple = (320, 480)
    freeze_upsample: bool = False

    def to_dict(self) -> dict[str, Any]:
        values = super().to_dict()
        values["crop"] = list(self.crop)  # YAML-friendly
        return values


_SEGMENT_CHECKS = {
    **RunConfig._CHECKS,
    "model": choice_value(_segmenter_names),
    "crop": _crop,
    "monitor": choice_value(("miou", "pixel_accuracy", "mean_class_accuracy")),
    "augment": choice_value(SEGMENT_AUGMENT_PRESETS),
    "freeze_upsample": bool_value,
}
SegmentConfig._CHECKS = _SEGMENT_CHECKS
