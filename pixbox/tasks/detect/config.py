"""The config of a detection run: :class:`DetectConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from pixbox._checks import bool_value, choice_value, float_value, int_value, text_value
from pixbox.engine.config import RunConfig, _CombinationError
from pixbox.engine.finetune import FREEZE_MODES

__all__ = ["AUGMENT_PRESETS", "DetectConfig", "FORMATS"]

#: The dataset formats ``format`` takes (``"auto"`` guesses it from the folder layout).
FORMATS: tuple[str, ...] = ("auto", "csv", "voc", "coco", "yolo")
#: The augmentation presets ``augment`` takes: ``"none"`` resizes only; ``"light"`` adds the SSD photometric
#: distortion and horizontal flips; ``"ssd"`` adds the SSD zoom out and IoU crop as well (for long runs).
AUGMENT_PRESETS: tuple[str, ...] = ("none", "light", "ssd")
_BOX_LOSSES = ("smooth_l1", "l1")


def _model_names() -> tuple[str, ...]:
    from pixbox.models import MODELS
    return tuple(MODELS)


def _augment(value, name):
    if isinstance(value, bool):
        return value
    return choice_value(AUGMENT_PRESETS)(value, name)


@dataclass(frozen=True)
class DetectConfig(RunConfig):
    """Everything a detection run depends on: the keys of :class:`~pixbox.engine.config.RunConfig` (some with
    other defaults, see the signature) and:

    Attributes:
        model (str): a key of :data:`pixbox.models.MODELS`, e.g. ``"tiny_ssd"``.
        monitor (str): ``"map"``, ``"map_50"``, ``"map_75"``, ``"voc07_ap50"`` or ``"voc_ap50"``.
        augment (bool | str): a preset of :data:`AUGMENT_PRESETS`, or True (``"light"``) or False (``"none"``).
        format (str): ``"auto"``, ``"csv"``, ``"voc"``, ``"coco"`` or ``"yolo"``.
        proposals (str | None): a region proposals file (``pixbox detect proposals``, :mod:`pixbox.data.proposals`)
            covering the training and validation images; required by the ``fast_rcnn_*`` models, refused by others.
        imgsz (int): training and inference images are resized to ``imgsz x imgsz``, >= 16.
        negative_mining_ratio (float | None): negatives per positive anchor in the loss
            (SSD hard negative mining), > 0; None uses every anchor (the D2L loss).
        box_loss (str): ``"smooth_l1"`` or ``"l1"``.
        score_threshold (float): evaluation keeps detections scoring above this, in [0, 1).
        nms_threshold (float): per-class NMS IoU threshold, in (0, 1].
        topk (int): detections kept per image, >= 1.
        pretrained (str): backbone weights: ``"none"`` (random, the default), ``"default"`` (the backbone's offline
            weights: ``ssd_efficientnet_lite0``) or a local file (a torchvision ResNet checkpoint for ResNet detectors).
        head_lr_mult (float): with pretrained weights, everything but the backbone (extra layers, heads) learns at
            ``lr * head_lr_mult``, > 0; 1 measured best (10: mAP 0.05 against 0.24 at 1x, docs/detection.md).
        freeze (str): with pretrained weights: ``"none"``, ``"backbone"`` (only the new layers
            train) or ``"bn"`` (the backbone's BatchNorm statistics stay ImageNet's).
        allow_outside_paths (bool): read image paths of the annotations that lead outside the
            dataset folder (``../``, absolute paths); refused by default (``--allow-outside-paths``).
    """

    model: str = "tiny_ssd"
    epochs: int = 30
    weight_decay: float = 5e-4
    grad_clip: float | None = 10.0
    project: str = "runs/detect"
    monitor: str = "map_50"
    augment: bool | str = "light"
    format: str = "auto"
    proposals: str | None = None
    imgsz: int = 256
    negative_mining_ratio: float | None = 3.0
    box_loss: str = "smooth_l1"
    score_threshold: float = 0.01
    nms_threshold: float = 0.45
    topk: int = 200
    pretrained: str = "none"
    head_lr_mult: float = 1.0
    freeze: str = "none"
    allow_outside_paths: bool = False

    def __post_init__(self):
        super().__post_init__()
        from pixbox.models import needs_proposals
        if needs_proposals(self.model) and self.proposals is None:
            raise _CombinationError(f"model {self.model!r} (Fast R-CNN) classifies region proposals: pass "
                                    "--proposals FILE (proposals: FILE in a config), a file made with "
                                    "`pixbox detect proposals --data DIR -o FILE`")
        if self.freeze != "none" and self.pretrained == "none":
            raise _CombinationError(f"freeze={self.freeze!r} keeps pretrained layers or statistics fixed, but "
                                    "pretrained is 'none' (training from scratch); use freeze='none' or pretrained "
                                    "weights")
        if self.proposals is not None and not needs_proposals(self.model):
            raise _CombinationError(f"model {self.model!r} does not take region proposals, got proposals="
                                    f"{self.proposals!r}; use a fast_rcnn_* model or drop the proposals")

    @property
    def augment_preset(self) -> str:
        """str: ``augment`` as a preset name of :data:`AUGMENT_PRESETS`."""
        if isinstance(self.augment, bool):
            return "light" if self.augment else "none"
        return self.augment


_DETECT_CHECKS = {
    **RunConfig._CHECKS,
    "format": choice_value(FORMATS),
    "model": choice_value(_model_names),
    "proposals": text_value(optional=True),
    "monitor": choice_value(("map", "map_50", "map_75", "voc07_ap50", "voc_ap50")),
    "negative_mining_ratio": float_value(0, low_open=True, optional=True),
    "box_loss": choice_value(_BOX_LOSSES),
    "augment": _augment,
    "score_threshold": float_value(0, 1, high_open=True),
    "nms_threshold": float_value(0, 1, low_open=True),
    "topk": int_value(1),
    "imgsz": int_value(16),
    "head_lr_mult": float_value(0, low_open=True),
    "freeze": choice_value(FREEZE_MODES),
    "allow_outside_paths": bool_value,
}
DetectConfig._CHECKS = _DETECT_CHECKS
