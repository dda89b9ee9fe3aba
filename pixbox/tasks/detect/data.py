"""The detection task's data: training augmentation presets, the evaluation resize, datasets and validation
loaders (shared by training, :func:`~pixbox.tasks.detect.evaluate.evaluate_detector` and export)."""

from __future__ import annotations

import difflib

import torch
from torch import Tensor

from pixbox.data.annotations import DetectionAnnotations
from pixbox.data.transforms import functional as TF
from pixbox.tasks.detect.config import DetectConfig

__all__ = ["EvalTransform", "build_train_transforms", "check_val_split", "detection_dataset", "prepare_image",
           "val_batches"]


def prepare_image(image: Tensor, imgsz: int) -> Tensor:
    """Resizes one image to the model's input: ``imgsz x imgsz``, float in [0, 1].

    ``uint8`` images are resized in ``uint8`` (rounded) and then scaled, exactly as the training and evaluation
    pipelines do (``Resize`` then ``ToDtype``); float images are resized as they are.

    Args:
        image (Tensor[3, H, W]): ``uint8`` or float in [0, 1].
        imgsz (int): the square side.

    Returns:
        Tensor[3, imgsz, imgsz]: float32 (the input's float dtype for float input).
    """
    out = TF.resize(image, (imgsz, imgsz))
    return TF.to_dtype(out, torch.float32) if out.dtype == torch.uint8 else out


def build_train_transforms(preset: str, imgsz: int):
    """The training pipeline of an augmentation preset.

    Args:
        preset (str): ``"none"``, ``"light"`` or ``"ssd"`` (see :data:`~pixbox.tasks.detect.AUGMENT_PRESETS`).
        imgsz (int): output side.

    Returns:
        Compose: ``(uint8 image [3, H, W], target) -> (float32 image [3, imgsz, imgsz], target)``
        with boxes in the pixels of the output image.
    """
    from pixbox.data import transforms as T
    size = (imgsz, imgsz)
    if preset == "none":
        steps = [T.Resize(size), T.SanitizeBoxes(min_size=0.0)]
    elif preset == "light":
        steps = [T.RandomHorizontalFlip(), T.Resize(size), T.RandomPhotometricDistort(), T.SanitizeBoxes(min_size=0.0)]
    elif preset == "ssd":
        steps = [T.RandomZoomOut(fill=(124, 116, 104), side_range=(1.0, 3.0)), T.RandomIoUCrop(),
                 T.RandomHorizontalFlip(), T.Resize(size), T.RandomPhotometricDistort(), T.SanitizeBoxes(min_size=1.0)]
    else:
        raise ValueError(f"preset must be 'none', 'light' or 'ssd', got {preset!r}")
    return T.Compose(steps + [T.ToDtype(torch.float32)])


class EvalTransform:
    """Resizes like :func:`prepare_image`; the target keeps its boxes and gains the original ``"size"`` ``(H, W)``."""

    def __init__(self, imgsz: int):
        self.imgsz = imgsz

    def __call__(self, image: Tensor, target: dict):
        target = dict(target, size=(int(image.shape[1]), int(image.shape[2])))
        return prepare_image(image, self.imgsz), target


def _limit(dataset, limit: int | None):
    if limit is None or limit >= len(dataset):
        return dataset
    from pixbox.data.datasets import DetectionDataset
    ann = DetectionAnnotations(dataset.class_names, dataset.annotations.records[:limit])
    proposals = None if dataset.proposals is None else dataset.proposals[:limit]
    return DetectionDataset.from_annotations(ann, transforms=dataset.transforms, on_error=dataset.on_error,
                                             proposals=proposals)


def detection_dataset(data, fmt: str, split: str, transforms, limit: int | None = None, proposals=None, *,
                      allow_outside: bool = False):
    from pixbox.data.datasets import DetectionDataset
    ds = DetectionDataset(data, None if fmt == "auto" else fmt, split, transforms=transforms, proposals=proposals,
                          allow_outside=allow_outside)
    if len(ds) == 0:
        raise ValueError(f"split {split!r} of {data} has no images")
    return _limit(ds, limit)


def check_val_split(cfg: DetectConfig) -> None:
    from pixbox.data.formats import detect_format, list_splits
    splits = list_splits(cfg.data, detect_format(cfg.data) if cfg.format == "auto" else cfg.format)
    if cfg.val_split not in splits:
        hint = difflib.get_close_matches(cfg.val_split, splits, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"validation split {cfg.val_split!r} not found in {cfg.data} (its splits: {splits}){extra} "
                         "Set val_split to one of them, or to null (None) to train without validation.")


def val_batches(dataset, batch: int, workers: int):
    from pixbox.data.datasets import collate_detection, make_loader
    return make_loader(dataset, batch, shuffle=False, num_workers=workers, collate_fn=collate_detection)
