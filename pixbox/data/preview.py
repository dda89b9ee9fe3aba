"""A picture of a dataset: samples drawn with their labels, optionally next to their augmentation.

:func:`preview_dataset` (behind ``pixbox data preview``) reads a split, picks samples at random
(seeded), and draws them in a grid under a title line:

- detection: the boxes with their class names (:func:`pixbox.viz.draw_boxes`);
- segmentation: the mask as a colour overlay (:func:`pixbox.viz.draw_masks`, VOC colours, the
  background left clear, ignored pixels white) and a legend of the classes shown;
- classification: the class name above each image (:func:`pixbox.viz.add_caption`).

With ``augment=True`` each sample is shown next to its version after a typical training
augmentation for the task, which shows what a pipeline does to images *and* labels:

- detection (the SSD recipe): :class:`~pixbox.data.transforms.RandomPhotometricDistort`,
  :class:`~pixbox.data.transforms.RandomZoomOut` (filled with the ImageNet mean colour),
  :class:`~pixbox.data.transforms.RandomIoUCrop`,
  :class:`~pixbox.data.transforms.RandomHorizontalFlip`, a
  :class:`~pixbox.data.transforms.Resize` back to the original size and
  :class:`~pixbox.data.transforms.SanitizeBoxes`;
- segmentation: :class:`~pixbox.data.transforms.RandomResizedCrop` (25 % to 100 % of the area,
  to the original size), a horizontal flip and :class:`~pixbox.data.transforms.ColorJitter`;
- classification: the same with a milder crop (35 % to 100 %) and stronger colour jitter.

Images larger than 256 pixels on their longer side are scaled down (with their boxes or mask)
before anything is drawn, so that labels stay readable and the figure stays small.

The task and layout are found as ``pixbox data check`` finds them
(:func:`pixbox.data.check.detect_task`) unless ``task``/``fmt`` name them: detection
(``"coco"``, ``"voc"``, ``"yolo"``, ``"csv"``), VOC segmentation (``"voc"``) or classification
(``"folder"``: one sub-folder per class, in ``root/<split>/`` or directly in ``root``;
``"csv"``: ``root/<split>.csv`` files of ``path,label`` rows).

Example:
    >>> preview_dataset("data/shapes", "runs/preview.png", num=8, augment=True)  # doctest: +SKIP
    PosixPath('runs/preview.png')
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from pixbox import _fonts
from pixbox._checks import check_bool, check_choice, check_int
from pixbox.data import transforms as T
from pixbox.data.check import TASKS, resolve_task_format
from pixbox.data.formats import (
    DETECTION_FORMATS,
    list_splits,
    list_voc_segmentation_splits,
    read_classification_csv,
    read_detection,
    read_image_folder,
    read_voc_segmentation,
)
from pixbox.data.formats import _common
from pixbox.data.formats import coco as _coco
from pixbox.data.formats import csv as _csv
from pixbox.data.formats import voc as _voc
from pixbox.data.formats import yolo as _yolo
from pixbox.data.io import VOC_COLORMAP, read_image, read_mask
from pixbox.viz import add_caption, draw_boxes, draw_masks, make_grid, save_image

__all__ = ["PREVIEW_FORMATS", "preview_dataset"]

#: The layouts :func:`preview_dataset` reads, per task (the names of
#: :func:`pixbox.data.check.check_dataset`).
PREVIEW_FORMATS: dict[str, tuple[str, ...]] = {
    "detection": DETECTION_FORMATS,
    "segmentation": ("voc",),
    "classification": ("folder", "csv"),
}
_ALL = "all"  # the split name of a classification dataset without split sub-folders or files
# What each layout's splits are, for the "split not found" messages.
_LOOKED_FOR = {
    "csv": _csv.LOOKED_FOR, "voc": _voc.LOOKED_FOR, "coco": _coco.LOOKED_FOR, "yolo": _yolo.LOOKED_FOR,
    "voc segmentation": "root/ImageSets/Segmentation/<split>.txt",
    "classification folder": "root/<split>/<class>/ folders, or root/<class>/ (the split 'all')",
    "classification csv": "root/<split>.csv files",
}

_MAX_SIDE = 256  # longer image side drawn, in pixels
_MEAN_FILL = (124, 116, 104)  # the ImageNet mean colour, the SSD zoom-out canvas
_PAIR_PAD = 2  # pixels between a sample and its augmented version
_CELL_PAD = 8  # pixels between samples (or pairs)
_IGNORE_INDEX = 255
_TITLE_SIZE = 12  # font size of the title line, in pixels


@dataclass
class _Split:
    """One split, read: how to load sample ``i`` as ``(image, target)`` and what to draw."""

    task: str  # "detection", "segmentation" or "classification"
    fmt: str
    split: str
    class_names: list[str]
    size: int
    load: Callable[[int], tuple[Tensor, dict]]


# ----------------------------------------------------------------------------------------------
# Reading


def _class_splits(root: Path, fmt: str) -> dict[str, Path]:
    """``{split: folder or CSV file}`` of a classification dataset, as ``check_dataset`` sees it."""
    if fmt == "csv":
        return {p.stem: p for p in sorted(root.glob("*.csv")) if p.is_file()}
    subdirs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    # root/<split>/<class>/image when no sub-folder holds images itself but each has sub-folders
    if subdirs and all(not _common.list_images(d) and any(e.is_dir() for e in d.iterdir()) for d in subdirs):
        return {d.name: d for d in subdirs}
    return {_ALL: root}


def _pick_split(split: str | None, found: list[str], root: Path, what: str) -> str:
    """``split``, checked against the splits found; ``None`` is ``"train"`` or the only split."""
    if split is None:
        if "train" in found or len(found) != 1:
            split = "train"
        else:
            return found[0]
    _common.check_split_name(split)
    _common.check_split_exists(split, found, root, what, _LOOKED_FOR[what])
    return split


def _read(root: Path, task: str, fmt: str, split: str | None, allow_outside: bool) -> _Split:
    if task == "detection":
        split = _pick_split(split, list_splits(root, fmt), root, fmt)
        ann = read_detection(root, fmt, split, allow_outside=allow_outside)
        records = ann.records

        def load_detection(i: int):
            rec = records[i]
            return read_image(rec.image), {"boxes": torch.from_numpy(rec.boxes).float(),
                                           "labels": torch.from_numpy(rec.labels)}

        return _Split(task, fmt, split, ann.class_names, len(records), load_detection)
    if task == "segmentation":
        split = _pick_split(split, list_voc_segmentation_splits(root), root, "voc segmentation")
        ann = read_voc_segmentation(root, split)
        samples = ann.samples

        def load_segmentation(i: int):
            image_path, mask_path = samples[i]
            return read_image(image_path), {"mask": read_mask(mask_path)}

        return _Split(task, fmt, split, ann.class_names, len(samples), load_segmentation)
    sources = _class_splits(root, fmt)
    split = _pick_split(split, sorted(sources), root, f"classification {fmt}")
    if fmt == "csv":
        ann = read_classification_csv(sources[split], allow_outside=allow_outside)
    else:
        ann = read_image_folder(sources[split])
    samples = ann.samples

    def load_classification(i: int):
        path, label = samples[i]
        return read_image(path), {"label": label}

    return _Split(task, fmt, split, ann.class_names, len(samples), load_classification)


# ----------------------------------------------------------------------------------------------
# Augmenting and drawing


def _fit(image: Tensor, target: dict) -> tuple[Tensor, dict]:
    """Scales an image (and its boxes or mask) down to at most ``_MAX_SIDE`` pixels."""
    h, w = image.shape[1:]
    if max(h, w) <= _MAX_SIDE:
        return image, target
    scale = _MAX_SIDE / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    return T.Resize(size)(image, target)


def _augmentation(task: str, size: tuple[int, int], generator: torch.Generator) -> T.Compose:
    """The typical training augmentation of ``task`` for images of ``size`` ``(H, W)``."""
    if task == "detection":
        return T.Compose([
            T.RandomPhotometricDistort(generator=generator),
            T.RandomZoomOut(fill=_MEAN_FILL, side_range=(1.0, 4.0), generator=generator),
            T.RandomIoUCrop(generator=generator),
            T.RandomHorizontalFlip(generator=generator),
            T.Resize(size),
            T.SanitizeBoxes(),
        ])
    if task == "segmentation":
        return T.Compose([
            T.RandomResizedCrop(size, scale=(0.25, 1.0), generator=generator),
            T.RandomHorizontalFlip(generator=generator),
            T.ColorJitter(0.3, 0.3, 0.3, 0.05, generator=generator),
        ])
    return T.Compose([
        T.RandomResizedCrop(size, scale=(0.35, 1.0), generator=generator),
        T.RandomHorizontalFlip(generator=generator),
        T.ColorJitter(0.4, 0.4, 0.4, 0.1, generator=generator),
    ])


def _augment(task: str, image: Tensor, target: dict, generator: torch.Generator) -> tuple[Tensor, dict]:
    pipeline = _augmentation(task, tuple(image.shape[1:]), generator)
    if task == "classification":
        return pipeline(image), dict(target)
    return pipeline(image, target)


def _draw(split: _Split, image: Tensor, target: dict) -> Tensor:
    names = split.class_names
    if split.task == "detection":
        labels = [names[i] if 0 <= i < len(names) else str(i) for i in target["labels"].tolist()]
        return draw_boxes(image, target["boxes"], labels)
    if split.task == "segmentation":
        return draw_masks(image, target["mask"], alpha=0.5, ignore_index=_IGNORE_INDEX)
    return add_caption(image, names[target["label"]])


def _side_by_side(left: Tensor, right: Tensor) -> Tensor:
    """Two ``uint8`` images next to each other, ``_PAIR_PAD`` white pixels apart."""
    h = max(left.shape[1], right.shape[1])
    out = torch.full((3, h, left.shape[2] + _PAIR_PAD + right.shape[2]), 255, dtype=torch.uint8)
    out[:, :left.shape[1], :left.shape[2]] = left
    out[:, :right.shape[1], left.shape[2] + _PAIR_PAD:] = right
    return out


def _wrap(text: str, width: int, font_size: int) -> str:
    """``text`` with line breaks between words so that each line fits in ``width`` pixels."""
    font = _fonts.font(font_size)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    for word in text.split(" "):
        if lines and scratch.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return "\n".join(lines)


def _legend(entries: list[tuple[str, tuple[int, int, int]]], width: int) -> Tensor:
    """A white band ``[3, h, width]`` of colour swatches and names, wrapped to ``width``."""
    font = _fonts.font(12)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h, swatch, gap, pad = 18, 12, 14, 6
    placed, x, y = [], pad, pad
    for name, rgb in entries:
        text_w = int(scratch.textlength(name, font=font))
        item_w = swatch + 4 + text_w
        if x > pad and x + item_w > width - pad:
            x, y = pad, y + line_h
        placed.append((x, y, name, rgb))
        x += item_w + gap
    band = Image.new("RGB", (width, y + line_h + pad), (255, 255, 255))
    draw = ImageDraw.Draw(band)
    for x, y, name, rgb in placed:
        draw.rectangle((x, y + 2, x + swatch - 1, y + 1 + swatch), fill=rgb, outline=(0, 0, 0))
        draw.text((x + swatch + 4, y), name, fill=(0, 0, 0), font=font)
    return torch.from_numpy(np.array(band, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def _segmentation_legend(class_names: list[str], masks: list[Tensor], width: int) -> Tensor:
    present = torch.unique(torch.cat([m.reshape(-1) for m in masks])).tolist()
    entries = [(class_names[v] if v < len(class_names) else str(v), tuple(int(c) for c in VOC_COLORMAP[v]))
               for v in present if v not in (0, _IGNORE_INDEX) and 0 <= v < len(VOC_COLORMAP)]
    if _IGNORE_INDEX in present:
        entries.append(("ignore (255)", (255, 255, 255)))
    return _legend(entries or [("background only", (0, 0, 0))], width)


# ----------------------------------------------------------------------------------------------
# The preview


def _task_and_format(root: Path, task: str | None, fmt: str | None) -> tuple[str, str]:
    """The task and layout, found as :func:`pixbox.data.check.check_dataset` finds them."""
    if task is not None:
        check_choice(task, "task", TASKS)
    if fmt is not None and not isinstance(fmt, str):
        raise TypeError(f"fmt must be a str or None, got {type(fmt).__name__}")
    task, fmt = resolve_task_format(root, task, fmt)
    choices = PREVIEW_FORMATS[task]
    if fmt not in choices:
        hint = difflib.get_close_matches(fmt, choices, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"fmt must be one of {list(choices)} for a {task} dataset, got {fmt!r}{extra}")
    return task, fmt


def preview_dataset(root, out, *, num: int = 16, split: str | None = None, task: str | None = None,
                    fmt: str | None = None, augment: bool = False, seed: int = 0, cols: int | None = None,
                    allow_outside: bool = False) -> Path:
    """Draws samples of a dataset split, with their labels, into one image file.

    See the module docstring for what is drawn, the augmentations and how the layout is found.

    Args:
        root (str or PathLike): the dataset folder.
        out (str or PathLike): the image to write, ``.png``, ``.jpg`` or ``.jpeg``; parent
            folders are created, an existing file is replaced.
        num (int): samples to draw, >= 1 (all of them when the split has fewer). They are picked
            at random with ``seed`` and drawn in dataset order.
        split (str, optional): the split to read; ``None`` reads ``"train"``, or the only split
            when there is one (a classification folder without split sub-folders is the split
            ``"all"``).
        task (str, optional): ``"detection"``, ``"segmentation"`` or ``"classification"``;
            ``None`` detects it (with ``fmt``) from the layout.
        fmt (str, optional): the layout, one of :data:`PREVIEW_FORMATS` ``[task]``; ``None``
            detects it.
        augment (bool): show each sample next to its augmented version (original on the left).
        seed (int): >= 0; seeds the choice of samples and the augmentation, so the same
            arguments give the same image.
        cols (int, optional): samples (or original/augmented pairs) per row, >= 1; default
            about a square figure.
        allow_outside (bool): accept annotation paths outside ``root`` (images kept elsewhere
            on purpose); refused by default, as by the readers.

    Returns:
        Path: ``out``.

    Raises:
        DatasetError: a problem in the dataset files, or ``root`` does not exist.
        ValueError: an unknown ``task``, ``fmt`` or ``split``, a layout that cannot be detected,
            an empty split, or a bad ``out`` suffix or option value.
    """
    root = _common.check_root(root)
    if not isinstance(out, (str, os.PathLike)):
        raise TypeError(f"out must be a str or os.PathLike, got {type(out).__name__}")
    out = Path(out)
    if out.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"out must end in .png, .jpg or .jpeg, got {str(out)!r}")
    num = check_int(num, "num", low=1)
    seed = check_int(seed, "seed", low=0)
    if cols is not None:
        cols = check_int(cols, "cols", low=1)
    augment = check_bool(augment, "augment")
    allow_outside = check_bool(allow_outside, "allow_outside")
    if split is not None and not isinstance(split, str):
        raise TypeError(f"split must be a str or None, got {type(split).__name__}")
    task, fmt = _task_and_format(root, task, fmt)

    data = _read(root, task, fmt, split, allow_outside)
    if data.size == 0:
        raise ValueError(f"split {data.split!r} of {root} ({task}, {fmt} layout) has no images to preview")
    if data.size > num:
        picked = torch.randperm(data.size, generator=torch.Generator().manual_seed(seed))[:num]
        indices = sorted(picked.tolist())
    else:
        indices = list(range(data.size))

    generator = torch.Generator().manual_seed(seed)
    cells, masks = [], []
    for i in indices:
        image, target = _fit(*data.load(i))
        drawn = _draw(data, image, target)
        masks += [target["mask"]] if "mask" in target else []
        if augment:
            aug_image, aug_target = _augment(data.task, image, target, generator)
            masks += [aug_target["mask"]] if "mask" in aug_target else []
            drawn = _side_by_side(drawn, _draw(data, aug_image, aug_target))
        cells.append(drawn)

    if cols is None:
        cols = max(1, math.ceil(math.sqrt(len(cells) / (2 if augment else 1))))
    grid = make_grid(cells, ncol=cols, pad=_CELL_PAD)
    if data.task == "segmentation":
        grid = torch.cat([grid, _segmentation_legend(data.class_names, masks, grid.shape[2])], dim=1)
    title = (f"{root.name}: {task} ({fmt}), split {data.split!r}, {len(indices)} of {data.size} "
             f"image{'s' if data.size != 1 else ''}")
    if augment:
        title += f"; left original, right augmented (seed {seed})"
    grid = add_caption(grid, _wrap(title, grid.shape[2] - 8, _TITLE_SIZE), font_size=_TITLE_SIZE)
    return save_image(grid, out)
