"""The classification task's data: augmentation presets and datasets (a folder per class, or
``<split>.csv`` files of ``path,label`` rows; :class:`pixbox.data.datasets.ClassificationDataset`)."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Sequence

import torch

from pixbox._checks import check_choice
from pixbox.data.sharding import keep_random_subset

__all__ = ["classification_dataset", "classify_transforms", "loader"]


def classify_transforms(preset: str, imgsz: int, mean: Sequence[float], std: Sequence[float], *,
                        crop_pct: float = 0.875, min_scale: float = 0.08):
    """The image pipeline of a classification preset: ``uint8 [3, H, W] -> float32 [3, imgsz, imgsz]``.

    Args:
        preset (str): ``"eval"`` (resize the shorter side to ``round(imgsz / crop_pct)``, cut the centre
            ``imgsz x imgsz``), ``"none"`` (the same, for training without augmentation), ``"d2l"`` (random resized
            crop of ``min_scale`` to all of the area, aspect ratio 3/4 to 4/3, then horizontal flip: D2L's
            fine-tuning recipe) or ``"color"`` (``"d2l"`` plus colour jitter of brightness, contrast, saturation 0.4).
        imgsz (int): output side.
        mean, std (sequence of 3 float): normalization of [0, 1] RGB (the backbone's own).
        crop_pct (float): see ``"eval"``.
        min_scale (float): smallest crop area fraction of the random resized crop.

    Returns:
        Compose: called as ``t(image)``.
    """
    from pixbox.data import transforms as T
    check_choice(preset, "preset", ("eval", "none", "d2l", "color"))
    if preset in ("eval", "none"):
        steps = [T.Resize(max(imgsz, int(round(imgsz / crop_pct)))), T.CenterCrop(imgsz)]
    else:
        steps = [T.RandomResizedCrop(imgsz, scale=(min_scale, 1.0)), T.RandomHorizontalFlip()]
        if preset == "color":
            steps.append(T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4))
    return T.Compose(steps + [T.ToDtype(torch.float32), T.Normalize(tuple(mean), tuple(std))])


def _resolve_format(root: Path, fmt: str, split: str | None) -> str:
    if fmt != "auto":
        return fmt
    if split is not None and (root / f"{split}.csv").is_file():
        return "csv"
    return "folder"


def classification_dataset(data, fmt: str, split: str | None, transforms, limit: int | None = None, *, seed: int = 0,
                           allow_outside: bool = False):
    """The split's :class:`~pixbox.data.datasets.ClassificationDataset` (``limit``: a fixed random
    subset of that many images, the same for every run with this seed)."""
    from pixbox.data.datasets import ClassificationDataset
    root = Path(data)
    fmt = _resolve_format(root, fmt, split)
    if fmt == "folder" and split is not None and not (root / split).is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        hint = difflib.get_close_matches(split, found, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise FileNotFoundError(f"split folder {str(root / split)!r} does not exist (folders in {root}: {found})"
                                f"{extra}. A classification dataset is <data>/<split>/<class>/<images>, or "
                                f"<data>/<split>.csv with path,label rows")
    ds = ClassificationDataset(root, split, fmt=fmt, transforms=transforms, allow_outside=allow_outside)
    where = root if split is None else root / split
    if len(ds) == 0:
        raise ValueError(f"{where} has no images: expected one sub-folder per class holding image files "
                         f"(.jpg, .png, ...), or a {split}.csv file of path,label rows")
    return keep_random_subset(ds, limit, seed)


def loader(dataset, batch: int, workers: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False):
    from pixbox.data.datasets import make_loader
    return make_loader(dataset, batch, shuffle=shuffle, num_workers=workers, seed=seed, drop_last=drop_last)
