"""The config of a semantic segmentation run: :class:`SegmentConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pixbox._checks import bool_value, choice_value, pretrained_value
from pixbox.engine.config import RunConfig

__all__ = ["SEGMENT_AUGMENT_PRESETS", "SegmentConfig"]

#: The segmentation augmentation presets: ``"crop"`` (a random ``crop`` window, as D2L),
#: ``"flip"`` (plus horizontal flips), ``"scale"`` (plus a random rescale by 0.5x .. 2x first).
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
    """Everything a semantic segmentation run depends on (Pascal VOC-format data).

    The keys of :class:`~pixbox.engine.config.RunConfig` (other defaults: ``batch=8``,
    ``monitor="miou"``, ``channels_last=True``, ``augment="flip"``) and:

    Attributes:
        model (str): a key of :data:`pixbox.models.fcn.SEGMENTATION_MODELS`: ``"fcn_resnet18"``
            (the book's FCN-32s), ``"fcn8s_efficientnet_lite0"`` (the default: FCN-8s skips on
            the backbone with offline ImageNet weights), ...
        pretrained (str): backbone weights: ``"default"`` (the backbone's offline weights; only
            EfficientNet-Lite0 has them), a local file (e.g. torchvision's
            ``resnet18-f37072fd.pth``) or ``"none"`` (random initialization).
        crop (tuple[int, int]): the ``(height, width)`` of the random training window; images
            smaller than it are padded (image 0, mask 255: ignored), never dropped. Given as
            ``"320x480"``, ``[320, 480]`` or one int for a square.
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
    pretrained: str = "default"
    crop: tuple = (320, 480)
    freeze_upsample: bool = False

    def to_dict(self) -> dict[str, Any]:
        values = super().to_dict()
        values["crop"] = list(self.crop)  # YAML-friendly
        return values


_SEGMENT_CHECKS = {
    **RunConfig._CHECKS,
    "model": choice_value(_segmenter_names),
    "pretrained": pretrained_value,
    "crop": _crop,
    "monitor": choice_value(("miou", "pixel_accuracy", "mean_class_accuracy")),
    "augment": choice_value(SEGMENT_AUGMENT_PRESETS),
    "freeze_upsample": bool_value,
}
SegmentConfig._CHECKS = _SEGMENT_CHECKS
