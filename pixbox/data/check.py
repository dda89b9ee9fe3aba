"""Validating a dataset folder: every problem at once, statistics and a verdict.

:func:`check_dataset` is what ``pixbox data check DIR`` runs. It

1. finds the task and format from the layout (:func:`detect_task`) unless they are given;
2. reads every split with ``on_error="skip"``, so the readers collect *all* the annotation
   problems (unparseable lines, missing XML tags, unknown categories, YOLO lines without 5
   numbers, ``x2 < x1``, class ids out of range, missing image files, paths outside the dataset
   folder, a COCO size that differs from the image, ...) instead of stopping at the first;
3. runs the checks training runs (:mod:`pixbox.data.validation`, the same code), so that
   ``check`` fails exactly when training would refuse the data or change it;
4. fully decodes every image (and mask), which catches corrupt and truncated files that a
   header read lets through;
5. gathers statistics: images per split, objects per class, a histogram of box sizes and the
   number of images without objects.

Errors, each naming the file and the line or object:

- every problem a reader reports;
- detection (:func:`~pixbox.data.validation.validate_detection`): a box outside the image by
  more than ``tolerance`` pixels (default 0.5 px, so coordinates rounded to the pixel grid or
  normalized YOLO values with float noise pass); a degenerate box (zero width or height); a
  non-finite box; a class id outside ``[0, num_classes)``; an image whose decoded size differs
  from the size the annotations give;
- a split without images; splits with different class lists (training refuses them);
- segmentation: a mask whose size differs from its image's; mask values that are neither class
  indices nor 255 (ignore); an RGB mask with more than 1 % of its pixels in colours off the
  colour map (:class:`~pixbox.data.io.MaskColorWarning`: they would silently become "ignore");
- all tasks: an image or mask that cannot be decoded.

Warnings (the dataset still passes): every image of a split has no objects (often label files
in the wrong place); a class without any object or image; a VOC folder that also holds a
segmentation layout. Images without objects are valid and only counted.

Where a box problem is located: see :class:`~pixbox.data.validation.BoxLocator`.

Example:
    >>> report = check_dataset("data/bananas", progress=False)  # doctest: +SKIP
    >>> print(report.format())  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    True
"""

from __future__ import annotations

import math
import os
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pixbox._console import is_terminal
from pixbox._checks import check_choice, check_number
from pixbox.data.annotations import DatasetError, DetectionAnnotations
from pixbox.data.formats import (
    DETECTION_FORMATS,
    detect_format,
    list_splits,
    list_voc_segmentation_splits,
    read_classification_csv,
    read_detection,
    read_image_folder,
    read_voc_segmentation,
)
from pixbox.data.io import IMAGE_SUFFIXES, MaskColorWarning, read_image, read_mask
from pixbox.data.validation import (
    BOX_TOLERANCE,
    BoxLocator,
    check_not_empty,
    class_list_problem,
    mask_problems,
    validate_detection,
)

__all__ = ["BOX_SIZE_BINS", "DatasetReport", "TASKS", "check_dataset", "detect_task", "resolve_task_format"]

#: The tasks :func:`check_dataset` knows.
TASKS: tuple[str, ...] = ("detection", "segmentation", "classification")
_FORMATS = {"detection": DETECTION_FORMATS, "segmentation": ("voc",), "classification": ("folder", "csv")}
#: Upper edges (px) of the box size buckets; a box's size is ``sqrt(width * height)``.
BOX_SIZE_BINS: tuple[int, ...] = (16, 32, 64, 128, 256)
_BIN_LABELS = ("<16", "16-32", "32-64", "64-128", "128-256", ">=256")
_ALL = "all"  # the split name of a classification folder without split sub-folders


@dataclass
class DatasetReport:
    """What :func:`check_dataset` found.

    Attributes:
        root (str): the dataset folder.
        task (str): ``"detection"``, ``"segmentation"`` or ``"classification"``.
        fmt (str): the layout: a detection format, ``"voc"`` (segmentation), ``"folder"`` or
            ``"csv"`` (classification).
        splits (dict[str, int]): images read per split (a split that could not be read at all
            has 0). A classification folder without split sub-folders is the split ``"all"``.
        num_images (int): distinct image files read (an image in two splits counts once).
        objects_per_class (dict[str, int]): every class name, in label order, with its number of
            objects (detection), of images it appears in (segmentation) or of images
            (classification), over the distinct images.
        box_sizes (dict[str, int]): detection only (else all zero): objects per size bucket,
            size ``sqrt(width * height)`` in pixels, buckets ``<16, 16-32, 32-64, 64-128,
            128-256, >=256`` (lower edge included).
        empty_images (int): distinct images without any object (detection) or without any
            pixel of a class other than 0 (background) and 255 (segmentation).
        errors (list[DatasetError]): every problem, each naming its file and line or object.
        warnings (list[str]): things worth a look that do not fail the check.
    """

    root: str
    task: str
    fmt: str
    splits: dict[str, int] = field(default_factory=dict)
    num_images: int = 0
    objects_per_class: dict[str, int] = field(default_factory=dict)
    box_sizes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_BIN_LABELS, 0))
    empty_images: int = 0
    errors: list[DatasetError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """bool: True when there are no errors (warnings allowed)."""
        return not self.errors

    def verdict(self) -> str:
        """The last line of :meth:`format`: ``"OK: ..."`` or ``"FAILED: N errors ..."``."""
        n_splits = len(self.splits)
        what = (f"{self.num_images} image{'s' if self.num_images != 1 else ''} in {n_splits} "
                f"split{'s' if n_splits != 1 else ''}")
        if self.task == "detection":
            what += f", {sum(self.objects_per_class.values())} objects"
        nw = len(self.warnings)
        if self.ok:
            extra = f" ({nw} warning{'s' if nw != 1 else ''})" if nw else ""
            return f"OK: {self.task} dataset ({self.fmt}) with {what}, no errors{extra}"
        ne = len(self.errors)
        return (f"FAILED: {ne} error{'s' if ne != 1 else ''} in the {self.task} dataset ({self.fmt}) at "
                f"{self.root} ({what}); each error above names the file and line or object to fix")

    def format(self, max_errors: int | None = None) -> str:
        """A readable multi-line report that ends with the verdict line.

        Args:
            max_errors (int or None): list at most this many errors (then a count of the rest);
                None lists them all.

        Returns:
            str: statistics, warnings, errors and the verdict.
        """
        if max_errors is not None:
            if isinstance(max_errors, bool) or not isinstance(max_errors, int):
                raise TypeError(f"max_errors must be an int or None, got {type(max_errors).__name__}")
            check_number(max_errors, "max_errors", low=0)
        lines = [f"dataset: {self.root}", f"task: {self.task}, format: {self.fmt}"]
        lines.append("splits: " + (", ".join(f"{name} {count}" for name, count in self.splits.items()) or "none"))
        title = {"detection": "objects per class", "segmentation": "images containing each class",
                 "classification": "images per class"}[self.task]
        lines.append(f"images: {self.num_images}")
        if self.task != "classification":
            lines.append(f"empty images (no objects): {self.empty_images}")
        if self.objects_per_class:
            lines.append(f"{title}:")
            width = max(len(n) for n in self.objects_per_class)
            lines += [f"  {name:<{width}}  {count}" for name, count in self.objects_per_class.items()]
        if self.task == "detection":
            lines.append("box sizes (sqrt(area), px):")
            top = max(self.box_sizes.values(), default=0)
            for label, count in self.box_sizes.items():
                bar = "#" * (0 if top == 0 else math.ceil(30 * count / top))
                lines.append(f"  {label:>7}  {count:>7}  {bar}")
        if self.warnings:
            lines.append(f"warnings ({len(self.warnings)}):")
            lines += [f"  - {w}" for w in self.warnings]
        if self.errors:
            lines.append(f"errors ({len(self.errors)}):")
            shown = self.errors if max_errors is None else self.errors[:max_errors]
            lines += [f"  - {e}" for e in shown]
            if len(shown) < len(self.errors):
                lines.append(f"  ... and {len(self.errors) - len(shown)} more")
        lines.append(self.verdict())
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


# ----------------------------------------------------------------------------------------------
# Layout


def _root(root) -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a str or os.PathLike folder path, got {type(root).__name__}")
    path = Path(os.path.abspath(root))
    if not path.is_dir():
        raise DatasetError("root must be an existing dataset folder, but it "
                           + ("is not a folder" if path.exists() else "does not exist"), path)
    return path


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in folder.iterdir())


def _is_voc_segmentation(root: Path) -> bool:
    return (root / "SegmentationClass").is_dir() and (root / "ImageSets" / "Segmentation").is_dir()


def detect_task(root) -> tuple[str, str]:
    """Guesses the task and layout of a dataset folder.

    Tried in order:

    1. ``SegmentationClass/`` and ``ImageSets/Segmentation/`` without ``Annotations/``:
       ``("segmentation", "voc")``;
    2. a detection layout (:func:`pixbox.data.formats.detect_format`: COCO, VOC, YOLO, CSV):
       ``("detection", fmt)`` (a VOC folder with both layouts is detection);
    3. ``.csv`` files directly in ``root``: ``("classification", "csv")``, one split per file;
    4. sub-folders: ``("classification", "folder")``.

    Args:
        root (str or PathLike): the dataset folder.

    Returns:
        tuple[str, str]: ``(task, fmt)``.

    Raises:
        DatasetError: ``root`` is not a folder.
        ValueError: nothing matches; the message lists what was looked for.
    """
    root = _root(root)
    if _is_voc_segmentation(root) and not (root / "Annotations").is_dir():
        return "segmentation", "voc"
    try:
        return "detection", detect_format(root)
    except ValueError as e:
        detection_message = str(e)
    if any(p.suffix.lower() == ".csv" and p.is_file() for p in root.iterdir()):
        return "classification", "csv"
    if _subdirs(root):
        return "classification", "folder"
    raise ValueError(f"cannot tell the task of {root}: no VOC segmentation layout (SegmentationClass/ and "
                     f"ImageSets/Segmentation/), no detection layout ({detection_message}), no classification "
                     "CSV files and no class sub-folders")


def _classification_splits(root: Path, fmt: str) -> dict[str, Path]:
    """``{split: folder or CSV file}`` of a classification dataset."""
    if fmt == "csv":
        return {p.stem: p for p in sorted(root.glob("*.csv")) if p.is_file()}
    subdirs = _subdirs(root)
    # root/<split>/<class>/image when no sub-folder holds images itself but each has sub-folders
    if subdirs and all(not _has_images(d) and _subdirs(d) for d in subdirs):
        return {d.name: d for d in subdirs}
    return {_ALL: root}


def _check_split(split, found: list[str], root: Path, what: str) -> None:
    if not isinstance(split, str):
        raise TypeError(f"split must be a str or None, got {type(split).__name__}")
    if split not in found:
        raise ValueError(f"split must be one of the splits of {root} ({what}): {found}, got {split!r}")


# ----------------------------------------------------------------------------------------------
# The check


class _Checker:
    def __init__(self, report: DatasetReport, tolerance: float, progress: bool, allow_outside: bool):
        self.report = report
        self.tolerance = tolerance
        self.progress = progress
        self.allow_outside = allow_outside
        self._errors: set[str] = set()
        self.class_lists: dict[str, list[str]] = {}

    def error(self, error: DatasetError) -> None:
        key = str(error)
        if key not in self._errors:  # splits may share files (VOC train and trainval)
            self._errors.add(key)
            self.report.errors.append(error)

    def read(self, split: str, fn, *args, **kwargs):
        """Runs a reader with ``on_error="skip"``; collects its problems; None if it failed."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the problems go into the report instead
                ann = fn(*args, on_error="skip", **kwargs)
        except DatasetError as e:
            self.error(e)
            self.report.splits[split] = 0
            return None
        for problem in ann.problems:
            self.error(problem)
        self.report.splits[split] = len(ann)
        self.class_lists[split] = list(ann.class_names)
        try:
            check_not_empty(len(ann), f"split {split!r} ({self.report.fmt} layout)", args[0])
        except DatasetError as e:
            self.error(e)
        return ann

    def validate(self, split: str, ann: DetectionAnnotations, root: Path) -> None:
        """Reports what :func:`~pixbox.data.validation.validate_detection` (training's check) finds."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            checked = validate_detection(ann, fmt=self.report.fmt, root=root, split=split,
                                         tolerance=self.tolerance, on_error="skip")
        for problem in checked.problems[len(ann.problems):]:
            self.error(problem)

    def bar(self, total: int):
        return tqdm(total=total, desc=f"checking {Path(self.report.root).name}", unit="img",
                    disable=not self.progress or not is_terminal(), leave=False)

    def class_checks(self) -> None:
        """Splits with different class lists are an error; a class without objects a warning."""
        problem = class_list_problem(self.class_lists)
        if problem is not None:
            self.report.errors.append(DatasetError(problem, self.report.root))
        unit = "objects" if self.report.task == "detection" else "pixels"
        if self.report.task == "classification":
            return  # classes without images are reported per split
        for name, count in self.report.objects_per_class.items():
            if count == 0 and self.report.num_images:
                self.report.warnings.append(f"class {name!r} has no {unit} in any split")


def _decode(path, checker: _Checker, reader=read_image):
    """The decoded tensor, or None after reporting the error (a mask colour warning is an error)."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MaskColorWarning)
            out = reader(path)
    except DatasetError as e:
        checker.error(e)
        return None
    for w in caught:
        if issubclass(w.category, MaskColorWarning):
            checker.error(DatasetError(str(w.message)))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return out


def _image_size(path, sizes: dict, checker: _Checker) -> tuple[int, int] | None:
    """``(width, height)`` of the fully decoded image, or None; each file is decoded once."""
    key = str(path)
    if key not in sizes:  # only the size is kept: a dataset may not fit in memory
        image = _decode(path, checker)
        sizes[key] = None if image is None else (int(image.shape[2]), int(image.shape[1]))
    return sizes[key]


def _class_names(splits_ann: dict[str, object]) -> list[str]:
    """All class names, the first split's order first, then new ones in order of appearance."""
    names: list[str] = []
    for ann in splits_ann.values():
        for n in ann.class_names:
            if n not in names:
                names.append(n)
    return names


def _check_detection(root: Path, fmt: str, splits: list[str], checker: _Checker) -> None:
    report = checker.report
    anns: dict[str, DetectionAnnotations] = {}
    for split in splits:
        ann = checker.read(split, read_detection, root, fmt, split, allow_outside=checker.allow_outside)
        if ann is not None:
            checker.validate(split, ann, root)
            anns[split] = ann
    names = _class_names(anns)
    per_class = Counter()
    sizes = np.zeros(len(_BIN_LABELS), np.int64)
    seen: set[str] = set()
    decoded: dict = {}
    with checker.bar(sum(len(a) for a in anns.values())) as bar:
        for split, ann in anns.items():
            locate = BoxLocator(fmt, root, split, ann.problems)
            num_classes = len(ann.class_names)
            empty_in_split = 0
            for rec in ann.records:
                bar.update(1)
                empty_in_split += len(rec) == 0
                size = _image_size(rec.image, decoded, checker)
                if size is not None and size != (rec.width, rec.height):
                    path, where = locate.image(rec)
                    checker.error(DatasetError(f"the annotations give the size {rec.width} x {rec.height} but the "
                                               f"image {rec.image} is {size[0]} x {size[1]}", path, where))
                if str(rec.image) in seen:
                    continue
                seen.add(str(rec.image))
                report.empty_images += len(rec) == 0
                bw, bh = rec.boxes[:, 2] - rec.boxes[:, 0], rec.boxes[:, 3] - rec.boxes[:, 1]  # [N]
                for i, label in enumerate(rec.labels.tolist()):
                    if 0 <= label < num_classes:
                        per_class[ann.class_names[label]] += 1
                        side = math.sqrt(max(float(bw[i] * bh[i]), 0.0))
                        sizes[int(np.searchsorted(BOX_SIZE_BINS, side, side="right"))] += 1
            if len(ann) and empty_in_split == len(ann):
                report.warnings.append(f"every image of split {split!r} ({len(ann)}) has no objects; are the "
                                       f"annotation or label files where the {fmt} layout expects them?")
    report.num_images = len(seen)
    report.objects_per_class = {n: per_class[n] for n in names}
    report.box_sizes = dict(zip(_BIN_LABELS, sizes.tolist()))
    if fmt == "voc" and _is_voc_segmentation(root):
        report.warnings.append("this folder also holds a VOC segmentation layout; check it with "
                               "task='segmentation'")


def _check_segmentation(root: Path, splits: list[str], checker: _Checker) -> None:
    report = checker.report
    anns = {}
    for split in splits:
        ann = checker.read(split, read_voc_segmentation, root, split)
        if ann is not None:
            anns[split] = ann
    names = _class_names(anns)
    per_class = Counter()
    seen: set[str] = set()
    with checker.bar(sum(len(a) for a in anns.values())) as bar:
        for split, ann in anns.items():
            c = len(ann.class_names)
            empty_in_split = 0
            for image_path, mask_path in ann.samples:
                bar.update(1)
                if str(image_path) in seen:
                    continue
                seen.add(str(image_path))
                image = _decode(image_path, checker)
                mask = _decode(mask_path, checker, read_mask)
                if mask is None:
                    continue
                for problem in mask_problems(mask, c, mask_path, image, image_path):
                    checker.error(problem)
                values = np.unique(mask.numpy())
                present = [int(v) for v in values if 0 <= v < c]
                for v in present:
                    per_class[ann.class_names[v]] += 1
                empty = not any(v != 0 for v in present)
                report.empty_images += empty
                empty_in_split += empty
            if len(ann) and empty_in_split == len(ann):
                report.warnings.append(f"no mask of split {split!r} has any pixel of a class other than "
                                       "background (0) and ignore (255)")
    report.num_images = len(seen)
    report.objects_per_class = {n: per_class[n] for n in names}


def _check_classification(fmt: str, sources: dict[str, Path], checker: _Checker) -> None:
    report = checker.report
    anns = {}
    for split, source in sources.items():
        if fmt == "csv":
            ann = checker.read(split, read_classification_csv, source, allow_outside=checker.allow_outside)
        else:
            ann = checker.read(split, read_image_folder, source)
        if ann is not None:
            anns[split] = ann
    names = _class_names(anns)
    per_class = Counter()
    seen: set[str] = set()
    with checker.bar(sum(len(a) for a in anns.values())) as bar:
        for split, ann in anns.items():
            counts = Counter(label for _, label in ann.samples)
            for k, name in enumerate(ann.class_names):
                if counts[k] == 0:
                    report.warnings.append(f"class {name!r} has no images in split {split!r}")
            for path, label in ann.samples:
                bar.update(1)
                if str(path) in seen:
                    continue
                seen.add(str(path))
                if _decode(path, checker) is not None:
                    per_class[ann.class_names[label]] += 1
    report.num_images = len(seen)
    report.objects_per_class = {n: per_class[n] for n in names}


def resolve_task_format(root: Path, task: str | None, fmt: str | None) -> tuple[str, str]:
    """The task and format of the dataset at ``root``: the given ones, or found from its layout.

    With no task, :func:`detect_task` finds both; with a task and no format, detection uses
    :func:`pixbox.data.formats.detect_format`, segmentation is ``"voc"`` and classification is
    ``"csv"`` when ``root`` holds a CSV file, else ``"folder"``. The format is not validated.
    """
    if task is None:
        task, guessed = detect_task(root)
        return task, guessed if fmt is None else fmt
    if fmt is None:
        if task == "detection":
            fmt = detect_format(root)
        elif task == "segmentation":
            fmt = "voc"
        else:
            fmt = "csv" if any(p.suffix.lower() == ".csv" and p.is_file() for p in root.iterdir()) else "folder"
    return task, fmt


def check_dataset(root, *, task: str | None = None, fmt: str | None = None, split: str | None = None,
                  progress: bool = True, tolerance: float = BOX_TOLERANCE,
                  allow_outside: bool = False) -> DatasetReport:
    """Validates a dataset folder and gathers its statistics (see the module docstring).

    Every split is read with ``on_error="skip"`` and every image is decoded, so all problems are
    reported at once, not only the first. Nothing is written.

    Args:
        root (str or PathLike): the dataset folder.
        task (str or None): ``"detection"``, ``"segmentation"`` or ``"classification"``;
            ``None`` infers it (and ``fmt``) from the layout with :func:`detect_task`.
        fmt (str or None): the layout: detection ``"csv"``, ``"voc"``, ``"coco"``, ``"yolo"``;
            segmentation ``"voc"``; classification ``"folder"`` or ``"csv"``. ``None`` infers it.
        split (str or None): check only this split; ``None`` checks every split found.
        progress (bool): show a tqdm progress bar while decoding.
        tolerance (float): how far (px, >= 0) a box may reach outside its image before it is an
            error (the datasets take the same ``tolerance``).
        allow_outside (bool): accept annotation paths outside ``root`` (images kept elsewhere on
            purpose); by default they are errors, as in the readers and datasets.

    Returns:
        DatasetReport: ``report.ok`` is the verdict; ``report.format()`` the readable report.

    Raises:
        DatasetError: ``root`` is not a folder.
        ValueError: unknown ``task``, ``fmt`` or ``split``, or a layout that cannot be recognized.
    """
    root = _root(root)
    if task is not None:
        check_choice(task, "task", TASKS)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__}")
    tolerance = float(check_number(tolerance, "tolerance", low=0))
    task, fmt = resolve_task_format(root, task, fmt)
    check_choice(fmt, f"fmt of a {task} dataset", _FORMATS[task])
    report = DatasetReport(root=str(root), task=task, fmt=fmt)
    if not isinstance(allow_outside, bool):
        raise TypeError(f"allow_outside must be a bool, got {type(allow_outside).__name__}")
    checker = _Checker(report, tolerance, progress, allow_outside)
    if task == "detection":
        found = list_splits(root, fmt)
        if split is not None:
            _check_split(split, found, root, f"{fmt} layout")
        _check_detection(root, fmt, found if split is None else [split], checker)
    elif task == "segmentation":
        found = list_voc_segmentation_splits(root)
        if split is not None:
            _check_split(split, found, root, "VOC segmentation layout")
        _check_segmentation(root, found if split is None else [split], checker)
    else:
        sources = _classification_splits(root, fmt)
        if split is not None:
            _check_split(split, sorted(sources), root, f"classification {fmt} layout")
            sources = {split: sources[split]}
        _check_classification(fmt, sources, checker)
    if not report.splits:
        report.errors.append(DatasetError(f"no {task} splits found ({fmt} layout)", root))
    checker.class_checks()
    return report
