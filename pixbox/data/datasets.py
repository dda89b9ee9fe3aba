"""Map-style datasets over the on-disk formats (collate functions and loaders: :mod:`pixbox.data.loaders`).

Datasets load lazily: construction reads the annotation files and the image *headers* (through
the readers of :mod:`pixbox.data.formats`), never the pixels. Each ``dataset[i]`` decodes one
image (and mask) from disk with :func:`pixbox.data.io.read_image` / :func:`~pixbox.data.io.read_mask`.

================================  =====================================================================
dataset                           sample
================================  =====================================================================
:class:`DetectionDataset`         ``(image uint8 [3, H, W], target dict)``; see below
:class:`SegmentationDataset`      ``(image uint8 [3, H, W], mask int64 [H, W])``, ``255`` = ignore
:class:`ClassificationDataset`    ``(image uint8 [3, H, W], label int)``
================================  =====================================================================

(The image is whatever the transforms return, typically a float tensor after
:class:`~pixbox.data.transforms.ToDtype`.)

A detection target holds ``"boxes"`` (``float32 [N, 4]``, xyxy pixels of the image as
returned), ``"labels"`` (``int64 [N]``, indices into ``class_names``, no background),
``"iscrowd"`` and ``"difficult"`` (``bool [N]``), ``"image_id"`` (``int``, the index of the
sample in the dataset) and ``"path"`` (``str``, the image file). Images without objects are
valid samples with ``N = 0``. With ``proposals=`` (Fast R-CNN) it also holds ``"proposals"``
(``float32 [P, 4]``, xyxy pixels of the image as returned: the geometric transforms move them
like the boxes; see :mod:`pixbox.data.proposals`).

**Checks.** Construction runs the checks of :mod:`pixbox.data.validation`, the same code as
:func:`pixbox.data.check.check_dataset`, so that ``check`` fails exactly when a dataset here
refuses (or, with ``on_error="skip"``, leaves out) some data: a split without images, a detection
box outside its image (by more than ``tolerance`` pixels), degenerate or non-finite, an
annotation path outside ``root`` (unless ``allow_outside=True``). A colour mask with many pixels
off the colour map warns (:class:`~pixbox.data.io.MaskColorWarning`) when it is loaded.

**Bad files.** ``on_error="raise"`` (the default) raises a
:class:`~pixbox.data.annotations.DatasetError` naming the file as soon as something cannot be
read. ``on_error="skip"`` leaves bad annotation entries out at construction (the reader collects
them in ``dataset.problems`` and warns once), and at ``dataset[i]`` time replaces a sample whose
image (or mask) cannot be decoded by the next readable one, ``i + 1, i + 2, ...`` (wrapping
around), so the result is deterministic. Each bad file is warned about once, with a running
count, and listed in ``dataset.skipped``; :meth:`report` summarizes everything for the end of an
epoch. With ``num_workers > 0`` each worker process keeps its own ``skipped`` list (the warnings
still come from the workers); run :func:`pixbox.data.check.check_dataset` to list every bad file
up front.

**Reproducibility.** :func:`~pixbox.data.loaders.make_loader` (re-exported here) seeds the
shuffling, the workers and explicit generators in the transforms; see :mod:`pixbox.data.loaders`.

Example:
    >>> from pixbox.data import transforms as T
    >>> train = DetectionDataset("data/bananas", split="train",  # doctest: +SKIP
    ...                          transforms=T.Compose([T.RandomHorizontalFlip(), T.Resize((256, 256)),
    ...                                                T.ToDtype(torch.float32)]))
    >>> loader = make_loader(train, 32, shuffle=True, collate_fn=collate_multibox)  # doctest: +SKIP
    >>> images, labels = next(iter(loader))  # doctest: +SKIP
    >>> images.shape, labels.shape  # doctest: +SKIP
    (torch.Size([32, 3, 256, 256]), torch.Size([32, 1, 5]))
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from pixbox._checks import check_bool, check_choice
from pixbox.data.annotations import (
    ClassificationAnnotations,
    DatasetError,
    DetectionAnnotations,
    SegmentationAnnotations,
)
from pixbox.data.formats import (
    DETECTION_FORMATS,
    detect_format,
    read_classification_csv,
    read_detection,
    read_image_folder,
    read_voc_segmentation,
)
from pixbox.data.io import read_image, read_mask
from pixbox.data.loaders import (  # re-exported: the collate functions and loaders of these datasets
    collate_detection,
    collate_multibox,
    collate_segmentation,
    make_loader,
    seed_worker,
)
from pixbox.data.validation import BOX_TOLERANCE, check_not_empty, mask_problems, validate_detection

__all__ = [
    "CLASSIFICATION_FORMATS",
    "ClassificationDataset",
    "DetectionDataset",
    "SegmentationDataset",
    "collate_detection",
    "collate_multibox",
    "collate_segmentation",
    "make_loader",
    "seed_worker",
]

#: The classification layouts :class:`ClassificationDataset` reads.
CLASSIFICATION_FORMATS: tuple[str, ...] = ("folder", "csv")
_ON_ERROR = ("raise", "skip")
_REPORT_EXAMPLES = 10  # problems listed by report() before "... and N more"


# ----------------------------------------------------------------------------------------------
# Shared checks


def _check_transforms(transforms) -> Callable | None:
    if transforms is not None and not callable(transforms):
        raise TypeError(f"transforms must be callable (for example a pixbox.data.transforms.Compose) or None, "
                        f"got {type(transforms).__name__}")
    return transforms


def _check_on_error(on_error) -> str:
    return check_choice(on_error, "on_error", _ON_ERROR)


def _check_root(root, name: str = "root") -> Path:
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(root).__name__}")
    return Path(os.path.abspath(root))


# ----------------------------------------------------------------------------------------------
# The lazy, skip-aware base


class _LazyDataset(Dataset):
    """Index checks, ``on_error`` handling at load time, ``skipped`` and :meth:`report`.

    A subclass sets ``annotations``, ``on_error`` and ``transforms`` and implements
    ``_read(i)`` (reads and checks the files; deterministic; may raise :class:`DatasetError`),
    ``_finish(i, data)`` (applies the transforms), ``_path(i)`` and ``__len__``.
    """

    annotations: Any
    on_error: str
    transforms: Callable | None

    def _init_skipping(self) -> None:
        self.skipped: list[str] = []
        self._bad: set[int] = set()

    @property
    def class_names(self) -> list[str]:
        """list[str]: the class names; labels index into this list."""
        return self.annotations.class_names

    @property
    def num_classes(self) -> int:
        """int: ``len(class_names)``."""
        return len(self.annotations.class_names)

    @property
    def problems(self) -> list[DatasetError]:
        """list[DatasetError]: the annotation problems skipped at construction (``on_error="skip"``)."""
        return self.annotations.problems

    def __len__(self) -> int:
        raise NotImplementedError

    def _read(self, index: int):
        raise NotImplementedError

    def _finish(self, index: int, data):
        raise NotImplementedError

    def _load(self, index: int):
        return self._finish(index, self._read(index))

    def _path(self, index: int) -> str:
        raise NotImplementedError

    def _check_index(self, index) -> int:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index must be in [{-n}, {n}) for a dataset of {n} samples, got {index}")
        return int(index) % n

    def __getitem__(self, index):
        index = self._check_index(index)
        n = len(self)
        for k in range(n):
            i = (index + k) % n
            if i in self._bad:
                continue
            try:
                return self._load(i)
            except DatasetError as e:
                if self.on_error == "raise":
                    raise
                self._bad.add(i)
                self.skipped.append(self._path(i))
                warnings.warn(f"skipped an unreadable sample ({len(self.skipped)} so far; see "
                              f"{type(self).__name__}.report()), using the next one instead: {e}", stacklevel=2)
        raise DatasetError(f"all {n} samples of the dataset are unreadable (on_error='skip'); "
                           f"the first is {self._path(0)}")

    def report(self) -> str:
        """A summary of the problems seen so far, for the end of an epoch.

        Returns:
            str: one line when there were none; else the annotation problems skipped at
            construction and the unreadable files skipped by ``dataset[i]``, one per line (the
            first 10 of each, then a count of the rest).
        """
        what = f"{type(self).__name__} of {len(self)} samples"
        problems = list(self.problems)
        if not problems and not self.skipped:
            return f"{what}: no problems"
        lines = [f"{what}: {len(problems)} annotation problem{'s' if len(problems) != 1 else ''} skipped "
                 f"while reading, {len(self.skipped)} unreadable file{'s' if len(self.skipped) != 1 else ''} "
                 "skipped while loading"]
        for title, items in (("annotation problems", [str(p) for p in problems]),
                             ("unreadable files (each replaced by the next readable sample)", self.skipped)):
            if items:
                lines.append(f"{title}:")
                lines += [f"  - {item}" for item in items[:_REPORT_EXAMPLES]]
                if len(items) > _REPORT_EXAMPLES:
                    lines.append(f"  ... and {len(items) - _REPORT_EXAMPLES} more")
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Detection


def _record_proposals(annotations: DetectionAnnotations, proposals, root) -> list[torch.Tensor] | None:
    """The proposals of each record (``float32 [P, 4]``), or None without ``proposals``."""
    if proposals is None:
        return None
    records = annotations.records
    if isinstance(proposals, (list, tuple)):
        if len(proposals) != len(records):
            raise ValueError(f"proposals as a list must have one Tensor[P, 4] per image ({len(records)}), "
                             f"got {len(proposals)}")
        out = []
        for i, p in enumerate(proposals):
            p = torch.as_tensor(p, dtype=torch.float32)
            if p.numel() == 0:
                p = p.reshape(0, 4)
            if p.dim() != 2 or p.shape[1] != 4:
                raise ValueError(f"proposals[{i}] must have shape [P, 4], got {tuple(p.shape)}")
            out.append(p)
        return out
    from pixbox.data.proposals import proposals_for

    return proposals_for([r.image for r in records], proposals, root)


class DetectionDataset(_LazyDataset):
    """One split of a detection dataset on disk (CSV, VOC, COCO or YOLO layout), loaded lazily.

    Construction reads the annotations with :func:`pixbox.data.formats.read_detection` (image
    sizes come from the file headers; no pixels are decoded). ``dataset[i]`` decodes image ``i``
    and returns ``(image, target)`` (see the module docstring for the target keys), after
    ``transforms(image, target)`` when given.

    Args:
        root (str or PathLike): the dataset folder.
        fmt (str or None): one of :data:`pixbox.data.formats.DETECTION_FORMATS`; ``None`` guesses
            it with :func:`pixbox.data.formats.detect_format`.
        split (str): the split name, e.g. ``"train"``.
        transforms (callable or None): called as ``transforms(image, target)`` and returning
            ``(image, target)``, for example a :class:`pixbox.data.transforms.Compose`. It gets
            the ``uint8 [3, H, W]`` image and a new target dict per call.
        on_error (str): ``"raise"`` or ``"skip"``; see the module docstring.
        proposals (str, PathLike or dict, optional): region proposals, a file or the dict of
            :func:`pixbox.data.proposals.load_proposals`, keyed by image path relative to
            ``root``; every image needs an entry. Each target then holds ``"proposals"``.
        allow_outside (bool): accept annotation paths outside ``root`` (images kept elsewhere
            on purpose); refused by default.
        tolerance (float): pixels (>= 0) a box may reach outside its image; a box further out
            is a problem (see :func:`pixbox.data.validation.validate_detection`).

    Attributes:
        annotations (DetectionAnnotations): what was read (boxes in pixels of the original images).
        proposals (list[Tensor[P_i, 4]] | None): the proposals of each image, in pixels of the
            original image.
        class_names (list[str]): the class names.
        num_classes (int): ``len(class_names)`` (no background class).
        problems (list[DatasetError]): annotation problems skipped at construction.
        skipped (list[str]): unreadable image files skipped by ``dataset[i]`` so far.

    Raises:
        DatasetError: a problem in the annotation files or a box that fails the checks with
            ``on_error="raise"``; a file that cannot be read at all (broken JSON or YAML) or a
            split without images, whatever ``on_error``.
        ValueError: unknown ``fmt``, ``split`` or ``on_error``, or no format recognized.
    """

    #: What :func:`make_loader` collates batches with when given no ``collate_fn``.
    collate_fn = staticmethod(collate_detection)

    def __init__(self, root, fmt: str | None = None, split: str = "train", *, transforms=None,
                 on_error: str = "raise", proposals=None, allow_outside: bool = False,
                 tolerance: float = BOX_TOLERANCE):
        root = _check_root(root)
        if fmt is None:
            fmt = detect_format(root)
        else:
            check_choice(fmt, "fmt", DETECTION_FORMATS)
        on_error = _check_on_error(on_error)
        annotations = read_detection(root, fmt, split, on_error=on_error, allow_outside=allow_outside)
        annotations = validate_detection(annotations, fmt=fmt, root=root, split=split, tolerance=tolerance,
                                         on_error=on_error)
        check_not_empty(len(annotations), f"{fmt} split {split!r}", root)
        self._setup(annotations, transforms, on_error, proposals, root)
        self.root, self.fmt, self.split = root, fmt, split

    @classmethod
    def from_annotations(cls, annotations: DetectionAnnotations, *, transforms=None,
                         on_error: str = "raise", proposals=None, root=None) -> "DetectionDataset":
        """A dataset over annotations already in memory (read, converted or generated).

        The annotations are used as they are; run
        :func:`pixbox.data.validation.validate_detection` first for the checks of the constructor.

        Args:
            annotations (DetectionAnnotations): the images and their boxes; the image files are
                decoded lazily from ``record.image``. Not copied: later changes show through.
            transforms (callable or None): as in the constructor.
            on_error (str): what ``dataset[i]`` does with an unreadable image: ``"raise"`` or
                ``"skip"``. ``annotations.problems`` are reported by :meth:`report`.
            proposals (str, PathLike, dict or list, optional): as in the constructor, or a list
                of ``Tensor[P_i, 4]``, one per record.
            root (str or PathLike, optional): the folder the proposal keys are relative to
                (without it, keys match the ends of the image paths).

        Returns:
            DetectionDataset: with ``root``, ``fmt`` and ``split`` set to None.
        """
        if not isinstance(annotations, DetectionAnnotations):
            raise TypeError(f"annotations must be a DetectionAnnotations, got {type(annotations).__name__}")
        self = cls.__new__(cls)
        self._setup(annotations, transforms, _check_on_error(on_error), proposals, root)
        self.root = self.fmt = self.split = None
        return self

    def _setup(self, annotations: DetectionAnnotations, transforms, on_error: str, proposals=None,
               root=None) -> None:
        self.annotations = annotations
        self.transforms = _check_transforms(transforms)
        self.on_error = on_error
        self.proposals = _record_proposals(annotations, proposals, root)
        self._init_skipping()

    def __len__(self) -> int:
        return len(self.annotations.records)

    def _path(self, index: int) -> str:
        return str(self.annotations.records[index].image)

    def _read(self, index: int):
        rec = self.annotations.records[index]
        image = read_image(rec.image)
        target = {
            "boxes": torch.from_numpy(np.asarray(rec.boxes, np.float32).reshape(-1, 4)),
            "labels": torch.from_numpy(np.asarray(rec.labels, np.int64).reshape(-1)),
            "iscrowd": torch.from_numpy(np.asarray(rec.iscrowd, bool).reshape(-1)),
            "difficult": torch.from_numpy(np.asarray(rec.difficult, bool).reshape(-1)),
            "image_id": index,
            "path": str(rec.image),
        }
        if self.proposals is not None:
            target["proposals"] = self.proposals[index].clone()
        return image, target

    def _finish(self, index: int, data):
        image, target = data
        if self.transforms is not None:
            image, target = self.transforms(image, dict(target))
        return image, target

    def __repr__(self) -> str:
        where = "in memory" if self.root is None else f"{self.fmt} split {self.split!r} of {self.root}"
        return (f"DetectionDataset({where}: {len(self)} images, {self.annotations.num_objects()} objects, "
                f"{self.num_classes} classes)")


# ----------------------------------------------------------------------------------------------
# Segmentation


class SegmentationDataset(_LazyDataset):
    """One split of a VOC semantic segmentation dataset, loaded lazily.

    Construction reads the split with :func:`pixbox.data.formats.read_voc_segmentation` (file
    headers only). ``dataset[i]`` decodes the image and its mask and checks them:

    - the mask must have the image's size, else :class:`DatasetError` naming both files;
    - mask values must be class indices ``0 .. num_classes - 1`` or ``255`` (ignore), else
      :class:`DatasetError` naming the mask file and the bad values;
    - an RGB mask with more than 1 % of its pixels in colours off the VOC colour map warns
      (:class:`~pixbox.data.io.MaskColorWarning`, naming the file and the fraction): those
      pixels become 255 (ignore).

    With ``on_error="skip"`` such a sample is replaced by the next good one (module docstring).

    Args:
        root (str or PathLike): the dataset folder (``JPEGImages/``, ``SegmentationClass/``,
            ``ImageSets/Segmentation/<split>.txt``).
        split (str): the split name.
        transforms (callable or None): called as ``transforms(image, {"mask": mask})`` and
            returning ``(image, target)``; the sample's mask is ``target["mask"]``. Geometric
            transforms fill new mask pixels with 255.
        on_error (str): ``"raise"`` or ``"skip"``.

    Attributes:
        annotations (SegmentationAnnotations): the ``(image, mask)`` paths.
        class_names (list[str]): including the background class at index 0.
        num_classes (int): ``len(class_names)``.
        problems (list[DatasetError]): problems skipped at construction.
        skipped (list[str]): image files of the samples skipped by ``dataset[i]`` so far.
    """

    #: What :func:`make_loader` collates batches with when given no ``collate_fn``.
    collate_fn = staticmethod(collate_segmentation)

    def __init__(self, root, split: str = "train", *, transforms=None, on_error: str = "raise"):
        root = _check_root(root)
        self.on_error = _check_on_error(on_error)
        self.transforms = _check_transforms(transforms)
        self.annotations: SegmentationAnnotations = read_voc_segmentation(root, split, on_error=self.on_error)
        check_not_empty(len(self.annotations), f"VOC segmentation split {split!r}", root)
        self.root, self.split = root, split
        self._init_skipping()

    def __len__(self) -> int:
        return len(self.annotations.samples)

    def _path(self, index: int) -> str:
        return str(self.annotations.samples[index][0])

    def _read(self, index: int):
        image_path, mask_path = self.annotations.samples[index]
        image = read_image(image_path)
        mask = read_mask(mask_path)
        problems = mask_problems(mask, self.num_classes, mask_path, image, image_path)
        if problems:
            raise problems[0]
        return image, mask

    def _finish(self, index: int, data):
        image, mask = data
        if self.transforms is not None:
            image, target = self.transforms(image, {"mask": mask})
            mask = target["mask"]
        return image, mask

    def __repr__(self) -> str:
        return (f"SegmentationDataset(split {self.split!r} of {self.root}: {len(self)} images, "
                f"{self.num_classes} classes)")


# ----------------------------------------------------------------------------------------------
# Classification


def _classification_csv(path: Path) -> Path:
    """The CSV file of a classification split: ``path`` itself, or the one ``.csv`` in it."""
    if path.is_file():
        return path
    if path.is_dir():
        found = sorted(p for p in path.glob("*.csv") if p.is_file())
        if len(found) == 1:
            return found[0]
        what = "no .csv file" if not found else f"several .csv files {[p.name for p in found]}"
        raise DatasetError(f"expected a classification CSV file, or a folder with exactly one, but it holds "
                           f"{what}", path)
    raise DatasetError("classification CSV file not found", path)


class ClassificationDataset(_LazyDataset):
    """An image classification dataset (a folder per class, or a ``path,label`` CSV), loaded lazily.

    Where the data is read from (``split`` None reads ``root`` itself):

    - ``fmt="folder"``: the folder ``root/split`` (or ``root``) with one sub-folder per class
      (:func:`pixbox.data.formats.read_image_folder`);
    - ``fmt="csv"``: the file ``root/<split>.csv`` when it exists, else ``root/split``; that
      path may be the CSV file itself or a folder holding exactly one ``.csv`` file
      (:func:`pixbox.data.formats.read_classification_csv`; relative image paths start at the
      CSV file's folder).

    Args:
        root (str or PathLike): see above.
        split (str or None): the split sub-folder or file stem, e.g. ``"train"``.
        fmt (str): ``"folder"`` or ``"csv"``.
        transforms (callable or None): called as ``transforms(image)`` and returning the image.
        on_error (str): ``"raise"`` or ``"skip"``.
        allow_outside (bool): ``fmt="csv"`` only: accept image paths outside the CSV file's
            folder; refused by default.

    Attributes:
        annotations (ClassificationAnnotations): the ``(image, label)`` pairs.
        class_names (list[str]): sorted class names (folder names or CSV labels).
        num_classes (int): ``len(class_names)``.
        problems (list[DatasetError]): problems skipped at construction.
        skipped (list[str]): unreadable image files skipped by ``dataset[i]`` so far.
    """

    def __init__(self, root, split: str | None = None, *, fmt: str = "folder", transforms=None,
                 on_error: str = "raise", allow_outside: bool = False):
        root = _check_root(root)
        check_choice(fmt, "fmt", CLASSIFICATION_FORMATS)
        if split is not None and not isinstance(split, str):
            raise TypeError(f"split must be a str or None, got {type(split).__name__}")
        self.on_error = _check_on_error(on_error)
        self.transforms = _check_transforms(transforms)
        check_bool(allow_outside, "allow_outside")
        if fmt == "folder":
            source = root if split is None else root / split
            self.annotations: ClassificationAnnotations = read_image_folder(source, on_error=self.on_error)
        else:
            source = root if split is None else root / f"{split}.csv"
            if split is not None and not source.is_file():
                source = root / split
            source = _classification_csv(source)
            self.annotations = read_classification_csv(source, on_error=self.on_error, allow_outside=allow_outside)
        check_not_empty(len(self.annotations), f"classification {fmt} " + ("dataset" if split is None else
                                                                           f"split {split!r}"), source)
        self.root, self.split, self.fmt, self.source = root, split, fmt, source
        self._init_skipping()

    def __len__(self) -> int:
        return len(self.annotations.samples)

    def _path(self, index: int) -> str:
        return str(self.annotations.samples[index][0])

    def _read(self, index: int):
        path, label = self.annotations.samples[index]
        return read_image(path), int(label)

    def _finish(self, index: int, data):
        image, label = data
        if self.transforms is not None:
            image = self.transforms(image)
        return image, int(label)

    def __repr__(self) -> str:
        return f"ClassificationDataset({self.fmt} {self.source}: {len(self)} images, {self.num_classes} classes)"
