"""Dataset formats on disk: readers and writers for detection, segmentation and classification.

Every detection format reads into and writes from the one in-memory structure
:class:`~pixbox.data.annotations.DetectionAnnotations` (xyxy pixel boxes), so converting is
reading then writing and no format knows about another:

- ``"csv"``: the D2L banana layout (:mod:`pixbox.data.formats.csv`);
- ``"voc"``: Pascal VOC XML (:mod:`pixbox.data.formats.voc`);
- ``"coco"``: COCO ``instances_<split>.json`` (:mod:`pixbox.data.formats.coco`);
- ``"yolo"``: YOLO ``data.yaml`` + normalized label files (:mod:`pixbox.data.formats.yolo`).

Round trips are lossless: the same boxes (to 1e-3 px), class names (same order), images (same
order, images without objects included), and ``difficult``/``iscrowd`` where both formats have
them. Writers never overwrite a split; writing another split into the same folder keeps the
first.

Errors: a problem in a dataset file (unparseable line, missing XML tag, unknown category, bad
YOLO line, non-finite number, ``x2 < x1``, class id out of range, missing image) raises a
:class:`~pixbox.data.annotations.DatasetError` naming the file and the line or object. With
``on_error="skip"`` such problems are collected in ``.problems`` instead (the bad object, line
or image is left out) and one warning counts them; a file that cannot be read at all (broken
JSON or YAML, say) still raises. Boxes partly outside the image are kept as
they are (the datasets of :mod:`pixbox.data.datasets` and ``pixbox data check`` refuse them, with
the checks of :mod:`pixbox.data.validation`). Readers read image sizes from the file headers
only.

Paths: every path an annotation file gives (COCO ``file_name``, CSV ``img_name``, YOLO
``data.yaml`` entries and list files, VOC ids, classification CSV paths) must stay inside the
dataset folder; ``../`` and absolute paths elsewhere are problems unless the reader is given
``allow_outside=True`` (for images kept elsewhere on purpose).

Also here: :func:`read_voc_segmentation`/:func:`write_voc_segmentation` (VOC
``SegmentationClass``) and the classification layouts :func:`read_image_folder`,
:func:`write_image_folder`, :func:`read_classification_csv`, :func:`write_classification_csv`.

Example:
    >>> ann = read_detection("data/banana-detection", "csv", "train")  # doctest: +SKIP
    >>> write_detection(ann, "data/bananas-coco", "coco", "train")  # doctest: +SKIP
    >>> convert_detection("data/banana-detection", "data/bananas-yolo", to_fmt="yolo")  # doctest: +SKIP
    {'train': 1000, 'val': 100}
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

from pixbox._checks import check_choice
from pixbox.data.annotations import DetectionAnnotations
from pixbox.data.formats import _common
from pixbox.data.formats import coco, csv, voc, yolo
from pixbox.data.formats.classification import (
    read_classification_csv,
    read_image_folder,
    write_classification_csv,
    write_image_folder,
)
from pixbox.data.formats.segmentation import (
    list_voc_segmentation_splits,
    read_voc_segmentation,
    write_voc_segmentation,
)

__all__ = [
    "DETECTION_FORMATS",
    "convert_detection",
    "detect_format",
    "list_splits",
    "list_voc_segmentation_splits",
    "read_classification_csv",
    "read_detection",
    "read_image_folder",
    "read_voc_segmentation",
    "write_classification_csv",
    "write_detection",
    "write_image_folder",
    "write_voc_segmentation",
]

_MODULES = {"csv": csv, "voc": voc, "coco": coco, "yolo": yolo}
# The formats that store the crowd and difficult flags.
_CROWD_FORMATS = ("coco",)
_DIFFICULT_FORMATS = ("voc",)
#: The detection formats, by name.
DETECTION_FORMATS: tuple[str, ...] = tuple(_MODULES)
# detect_format tries the layouts in this order (COCO and YOLO both may have images/).
_DETECT_ORDER = ("coco", "voc", "yolo", "csv")


def _module(fmt: str):
    return _MODULES[check_choice(fmt, "fmt", DETECTION_FORMATS)]


def read_detection(root, fmt: str, split: str = "train", *, on_error: str = "raise",
                   allow_outside: bool = False) -> DetectionAnnotations:
    """Reads one split of a detection dataset.

    Args:
        root (str or PathLike): the dataset folder; it must exist.
        fmt (str): one of :data:`DETECTION_FORMATS` (see :func:`detect_format` to guess it).
        split (str): the split name; must be one of :func:`list_splits`.
        on_error (str): ``"raise"``: the first problem raises a :class:`DatasetError` naming the
            file and line or object. ``"skip"``: bad objects, lines and images are left out and
            collected in ``.problems``, and one warning counts them.
        allow_outside (bool): accept image and annotation paths outside ``root`` (``../``,
            absolute paths); by default they are problems like any other.

    Returns:
        DetectionAnnotations: one record per image, with its absolute image path, its width and
        height (from the image header), boxes ``[N, 4]`` float64 xyxy pixels, labels ``[N]``
        int64 indices into ``class_names``, and ``iscrowd``/``difficult`` flags.

    Raises:
        DatasetError: a problem in the dataset files (with ``on_error="raise"``), or ``root``
            does not exist.
        ValueError: unknown ``fmt``, ``split`` or ``on_error``.
    """
    module = _module(fmt)
    _common.check_on_error(on_error)
    return module.read(root, split, on_error=on_error, allow_outside=_common.check_allow_outside(allow_outside))


def write_detection(annotations: DetectionAnnotations, root, fmt: str, split: str = "train", *,
                    images: str = "copy") -> Path:
    """Writes one split of a detection dataset in a format's layout.

    Args:
        annotations (DetectionAnnotations): what to write; every image file must exist.
        root (str or PathLike): the dataset folder, created when missing. Splits already in it
            are kept (shared class lists gain the new names at the end); ``split`` itself must
            not exist yet.
        fmt (str): one of :data:`DETECTION_FORMATS`.
        split (str): the split name (no slashes or spaces).
        images (str): ``"copy"`` (byte-identical copies, original suffix kept) or ``"move"``
            the image files into the dataset.

    A format without crowd or difficult flags (see the module docstring) writes such objects
    as ordinary ones; :func:`convert_detection` drops crowd objects instead, and says so.

    Returns:
        Path: ``root`` (absolute).
    """
    module = _module(fmt)
    _common.check_images_mode(images)
    return module.write(annotations, root, split, images=images)


def list_splits(root, fmt: str) -> list[str]:
    """The splits of a detection dataset folder.

    Args:
        root (str or PathLike): the dataset folder; it must exist.
        fmt (str): one of :data:`DETECTION_FORMATS`.

    Returns:
        list[str]: the split names, sorted (``[]`` when the layout has none).
    """
    return _module(fmt).list_splits(root)


def detect_format(root) -> str:
    """Guesses the detection format of a dataset folder from its layout.

    The layouts are tried in the order coco (``annotations/instances_*.json``), voc
    (``Annotations/`` + ``ImageSets/Main/``), yolo (``data.yaml``, or ``images/`` + ``labels/``)
    and csv (``<split>/label.csv``).

    Args:
        root (str or PathLike): the dataset folder; it must exist.

    Returns:
        str: one of :data:`DETECTION_FORMATS`.

    Raises:
        ValueError: no layout matches; the message lists what was looked for.
    """
    root = _common.check_root(root)
    for fmt in _DETECT_ORDER:
        if _MODULES[fmt].looks_like(root):
            return fmt
    looked = "; ".join(f"{fmt}: {_MODULES[fmt].LOOKED_FOR}" for fmt in _DETECT_ORDER)
    raise ValueError(f"cannot tell the detection format of {root}; looked for {looked}")


def convert_detection(src, dst, *, from_fmt: str | None = None, to_fmt: str,
                      splits: list[str] | None = None, allow_outside: bool = False) -> dict[str, int]:
    """Converts a detection dataset to another format, split by split (images are copied).

    Crowd objects (COCO ``iscrowd``) are dropped when ``to_fmt`` has no crowd flag (csv, voc,
    yolo): written as ordinary objects they would become training targets. ``difficult`` objects
    are kept as ordinary ones in formats without that flag (coco, csv, yolo). Either loss is
    counted in one warning (``pixbox data convert`` prints it).

    Args:
        src (str or PathLike): the source dataset folder.
        dst (str or PathLike): the destination folder (created when missing); it must not hold
            the same splits already.
        from_fmt (str or None): the source format; ``None`` guesses it with :func:`detect_format`.
        to_fmt (str): the destination format, one of :data:`DETECTION_FORMATS`.
        splits (list[str] or None): the splits to convert; ``None`` converts every split found.
        allow_outside (bool): read (and copy) images outside ``src`` that the annotations point
            to; refused by default (see :func:`read_detection`).

    Returns:
        dict[str, int]: the number of images written per split.

    Raises:
        DatasetError: a problem in the source files (conversion never skips anything).
    """
    src_root = _common.check_root(src, "src")
    dst_root = _common.check_root(dst, "dst", must_exist=False)
    if from_fmt is None:
        from_fmt = detect_format(src_root)
    reader, writer = _module(from_fmt), _MODULES[check_choice(to_fmt, "to_fmt", DETECTION_FORMATS)]
    found = reader.list_splits(src_root)
    if splits is None:
        splits = found
    elif isinstance(splits, str) or not all(isinstance(s, str) for s in splits):
        raise TypeError(f"splits must be a list of split names, got {splits!r}")
    for split in splits:
        _common.check_split_exists(split, found, src_root, from_fmt, reader.LOOKED_FOR)
    if not splits:
        raise ValueError(f"no {from_fmt} splits to convert in {src_root} (looked for {reader.LOOKED_FOR})")
    if src_root == dst_root and from_fmt == to_fmt:
        raise ValueError(f"src and dst are the same {from_fmt} folder {src_root}; nothing to convert")
    _common.check_allow_outside(allow_outside)
    counts, crowd, difficult = {}, {}, {}
    for split in splits:
        annotations = reader.read(src_root, split, allow_outside=allow_outside)
        if to_fmt not in _CROWD_FORMATS:
            annotations, crowd[split] = _drop_crowd(annotations)
        if to_fmt not in _DIFFICULT_FORMATS:
            difficult[split] = sum(int(r.difficult.sum()) for r in annotations.records)
        writer.write(annotations, dst_root, split, images="copy")
        counts[split] = len(annotations)
    notes = [f"dropped {_per_split(crowd, 'crowd object')} (iscrowd): {to_fmt} has no crowd flag"
             if sum(crowd.values()) else "",
             f"kept {_per_split(difficult, 'difficult object')} as ordinary objects: {to_fmt} has no "
             "difficult flag" if sum(difficult.values()) else ""]
    if any(notes):
        warnings.warn(f"converting {src_root} ({from_fmt}) to {dst_root} ({to_fmt}): "
                      + "; ".join(n for n in notes if n), stacklevel=2)
    return counts


def _drop_crowd(annotations: DetectionAnnotations) -> tuple[DetectionAnnotations, int]:
    """The annotations without their crowd objects, and how many were dropped."""
    records, dropped = [], 0
    for rec in annotations.records:
        keep = ~rec.iscrowd
        dropped += int(len(rec) - keep.sum())
        records.append(rec if keep.all() else dataclasses.replace(
            rec, boxes=rec.boxes[keep], labels=rec.labels[keep], iscrowd=rec.iscrowd[keep],
            difficult=rec.difficult[keep]))
    return DetectionAnnotations(class_names=annotations.class_names, records=records), dropped


def _per_split(counts: dict[str, int], what: str) -> str:
    """``"3 crowd objects"`` for one split, ``"5 crowd objects (train 3, val 2)"`` for several."""
    total = sum(counts.values())
    text = f"{total} {what}{'s' if total != 1 else ''}"
    if len(counts) == 1:
        return text
    return f"{text} ({', '.join(f'{s} {n}' for s, n in counts.items())})"
