"""The checks that training and ``pixbox data check`` share, so that they always agree.

The format readers (:mod:`pixbox.data.formats`) refuse what cannot be read (bad lines,
unknown classes, non-finite numbers, paths outside the dataset, ...). On top of them, a
dataset that training may use must pass these checks; the datasets of
:mod:`pixbox.data.datasets` run them at construction (raising, or skipping with
``on_error="skip"``) and :func:`pixbox.data.check.check_dataset` reports what they find as
errors:

- :func:`validate_detection`: every box finite, inside its image (up to ``tolerance`` pixels,
  :data:`BOX_TOLERANCE` by default), of non-zero width and height, with a class id in
  ``[0, num_classes)``. Training would otherwise clip or drop such boxes silently;
- :func:`mask_problems`: a mask has its image's size and only class indices or 255 (ignore);
- :func:`check_not_empty`: a split has at least one image;
- :func:`class_list_problem`: the splits trained together have the same class names (label
  ``k`` must mean the same class in each).

Masks with colours off the colour map are reported by :func:`pixbox.data.io.read_mask` (a
:class:`~pixbox.data.io.MaskColorWarning` that ``check`` turns into an error).

Example:
    >>> ann = validate_detection(read_detection("data/bananas", "csv", "train"))  # doctest: +SKIP
"""

from __future__ import annotations

import csv as _csv
import dataclasses
import io
from pathlib import Path

import numpy as np

from pixbox._checks import check_number
from pixbox.data.annotations import DatasetError, DetectionAnnotations
from pixbox.data.formats import _common as C
from pixbox.data.formats.yolo import label_path

__all__ = ["BOX_TOLERANCE", "BoxLocator", "IGNORE_INDEX", "check_not_empty", "class_list_problem", "mask_problems",
           "validate_detection"]

#: The mask value of pixels that count nowhere.
IGNORE_INDEX = 255
#: How far (px) a box may reach outside its image before it is a problem: coordinates rounded
#: to the pixel grid, or normalized YOLO values with float noise, pass.
BOX_TOLERANCE = 0.5


def _box_messages(rec, num_classes: int, tolerance: float = BOX_TOLERANCE) -> list[tuple[int, str]]:
    """``(box index, problem)`` for each problem of a record's boxes (in box order).

    Args:
        rec (DetectionRecord): boxes ``[N, 4]`` xyxy pixels of its ``width x height`` image.
        num_classes (int): labels must be in ``[0, num_classes)``.
        tolerance (float): pixels a box may reach outside the image.
    """
    boxes, labels = rec.boxes, rec.labels
    width, height = rec.width, rec.height
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(boxes).all(axis=1)  # [N]
        bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]  # [N]
        outside = ((boxes[:, 0] < -tolerance) | (boxes[:, 1] < -tolerance)
                   | (boxes[:, 2] > width + tolerance) | (boxes[:, 3] > height + tolerance))  # [N]
        degenerate = (bw <= 0) | (bh <= 0)  # [N]
    bad_label = (labels < 0) | (labels >= num_classes)  # [N]
    out = []
    for i in np.flatnonzero(~finite | degenerate | outside | bad_label).tolist():  # only the bad boxes
        box = "[" + ", ".join(f"{v:.6g}" for v in boxes[i]) + "]"
        if bad_label[i]:
            out.append((i, f"class id {int(labels[i])} out of range [0, {num_classes})"))
        if not finite[i]:
            out.append((i, f"non-finite box coordinates {box}"))
            continue
        if degenerate[i]:
            kind = ("x2 < x1" if bw[i] < 0 else "y2 < y1" if bh[i] < 0
                    else "zero width" if bw[i] == 0 else "zero height")
            out.append((i, f"degenerate box {box} ({kind})"))
        if outside[i]:
            out.append((i, f"box {box} lies outside the {width} x {height} image by more than {tolerance:g} px"))
    return out


def validate_detection(annotations: DetectionAnnotations, *, fmt: str | None = None, root=None,
                       split: str | None = None, tolerance: float = BOX_TOLERANCE,
                       on_error: str = "raise") -> DetectionAnnotations:
    """Checks every box of a detection split the way training needs it (module docstring).

    Args:
        annotations (DetectionAnnotations): what a reader returned.
        fmt (str or None): the format it was read from, with ``root`` and ``split``, so that a
            problem names the annotation file and line or object; None names the image file.
        root (str or PathLike or None): the dataset folder.
        split (str or None): the split name.
        tolerance (float): pixels (>= 0) a box may reach outside its image.
        on_error (str): ``"raise"``: the first problem raises a :class:`DatasetError`.
            ``"skip"``: the bad objects are left out, the problems are appended to
            ``.problems`` and one warning counts them.

    Returns:
        DetectionAnnotations: ``annotations`` itself when every box is fine, else a copy without
        the bad objects (``"skip"``).
    """
    if not isinstance(annotations, DetectionAnnotations):
        raise TypeError(f"annotations must be a DetectionAnnotations, got {type(annotations).__name__}")
    tolerance = float(check_number(tolerance, "tolerance", low=0))
    log = C.ProblemLog(on_error, "the boxes" + (f" of {fmt} split {split!r} of {root}" if fmt else ""))
    locate = BoxLocator(fmt, None if root is None else Path(root), split, annotations.problems)
    num_classes = len(annotations.class_names)
    records = []
    for rec in annotations.records:
        bad = set()
        for i, message in _box_messages(rec, num_classes, tolerance):
            path, where = locate.box(rec, i)
            log.add(f"{message} ({Path(rec.image).name})", path, where)
            bad.add(i)
        if bad:
            keep = np.array([i not in bad for i in range(len(rec))], bool)
            rec = dataclasses.replace(rec, boxes=rec.boxes[keep], labels=rec.labels[keep],
                                      iscrowd=rec.iscrowd[keep], difficult=rec.difficult[keep])
        records.append(rec)
    if not log.problems:
        return annotations
    out = DetectionAnnotations(class_names=annotations.class_names, records=records)
    log.finish(out)
    out.problems = list(annotations.problems) + out.problems
    return out


def mask_problems(mask, num_classes: int, mask_path, image=None, image_path=None) -> list[DatasetError]:
    """The problems of a decoded mask: a size other than its image's, values that are neither
    class indices in ``[0, num_classes)`` nor 255 (ignore).

    Args:
        mask (Tensor[H, W]): the decoded mask (:func:`pixbox.data.io.read_mask`).
        num_classes (int): the number of classes, background included.
        mask_path (str or PathLike): the mask file, named by the problems.
        image (Tensor[3, H, W] or None): the decoded image, for the size check.
        image_path (str or PathLike or None): the image file.
    """
    out = []
    if image is not None and tuple(mask.shape) != tuple(image.shape[1:]):
        out.append(DatasetError(f"the mask is {mask.shape[1]} x {mask.shape[0]} (width x height) but its image "
                                f"{image_path} is {image.shape[2]} x {image.shape[1]}", mask_path))
    bad = ((mask < 0) | (mask >= num_classes)) & (mask != IGNORE_INDEX)  # [H, W]
    if bool(bad.any()):
        values = sorted({int(v) for v in mask[bad].reshape(-1).tolist()})
        shown = values[:10] + (["..."] if len(values) > 10 else [])
        out.append(DatasetError(f"mask values must be class indices in [0, {num_classes}) or {IGNORE_INDEX} "
                                f"(ignore), got {shown} in {int(bad.sum())} pixels", mask_path))
    return out


def check_not_empty(count: int, what: str, path) -> None:
    """Raises a :class:`DatasetError` naming ``path`` when a split has no images (``count`` 0)."""
    if count == 0:
        raise DatasetError(f"{what} has no images; training needs at least one", path)


def class_list_problem(class_lists: dict[str, list[str]]) -> str | None:
    """The message when splits have different class names, else None.

    Args:
        class_lists (dict[str, list[str]]): the class names of each split, in label order.
    """
    items = list(class_lists.items())
    for split, names in items[1:]:
        if list(names) != list(items[0][1]):
            first, ref = items[0]
            missing = [n for n in ref if n not in names]
            extra = [n for n in names if n not in ref]
            why = (f"; it lacks {missing}" if missing else "") + (f"; it adds {extra}" if extra else "")
            return (f"split {split!r} has the classes {list(names)} but split {first!r} has {list(ref)}"
                    f"{why or '; the order differs'}: label indices would differ between them, so training "
                    "refuses them (give every split the same class list)")
    return None


# ----------------------------------------------------------------------------------------------
# Locating a box in its annotation file


class BoxLocator:
    """``(file, where)`` of an image's size and of its ``i``-th box in the annotation files.

    VOC: ``Annotations/<id>.xml`` and ``object k``; YOLO: the label file and ``line k``; CSV:
    ``label.csv`` and ``line k``; COCO: the JSON file, the image id and the box index among
    that image's annotations. Object and line numbers are exact unless the reader already
    reported a problem in the same file (``problems``); the location then says it counts only
    the objects that were read. Without a format (annotations from memory), the image file.
    """

    def __init__(self, fmt: str | None, root: Path | None, split: str | None, problems: list[DatasetError]):
        self.fmt, self.root, self.split = fmt, root, split
        self.problem_files = {p.path for p in problems if p.path is not None}
        self._csv_lines: dict[str, list[int]] | None = None

    def _csv_file(self) -> Path:
        bananas = self.root / f"bananas_{self.split}" / "label.csv"
        return bananas if bananas.is_file() else self.root / self.split / "label.csv"

    def _inexact(self, path: Path) -> bool:
        return str(path) in self.problem_files

    def image(self, rec) -> tuple[Path, str | None]:
        """Where the size of an image comes from."""
        name = Path(rec.image).name
        if self.fmt == "coco":
            return self.root / "annotations" / f"instances_{self.split}.json", f"image id {rec.image_id} ({name})"
        if self.fmt == "voc":
            return self.root / "Annotations" / f"{rec.image_id}.xml", None
        if self.fmt == "csv":
            return self._csv_file(), f"image {name}"
        return Path(rec.image), None

    def box(self, rec, i: int) -> tuple[Path, str]:
        name = Path(rec.image).name
        if self.fmt is None:
            return Path(rec.image), f"box {i}"
        if self.fmt == "coco":
            return (self.root / "annotations" / f"instances_{self.split}.json",
                    f"image id {rec.image_id} ({name}), box {i} of its annotations")
        if self.fmt == "voc":
            path = self.root / "Annotations" / f"{rec.image_id}.xml"
            if self._inexact(path):
                return path, f"box {i} (counting only the objects that were read)"
            return path, f"object {i + 1}"
        if self.fmt == "yolo":
            path = label_path(Path(rec.image))
            if not self._inexact(path):
                try:
                    lines = [k for k, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1)
                             if line.split()]
                    return path, f"line {lines[i]}"
                except (OSError, UnicodeDecodeError, IndexError):
                    pass
            return path, f"box {i} (counting only the lines that were read)"
        path = self._csv_file()
        if not self._inexact(path):
            lines = self._csv_box_lines(path).get(name, [])
            if i < len(lines):
                return path, f"line {lines[i]}"
        return path, f"image {name}, box {i} (counting only the rows that were read)"

    def _csv_box_lines(self, path: Path) -> dict[str, list[int]]:
        """``{img_name: [line of each box row]}`` (the reader skips headers and empty rows alike)."""
        if self._csv_lines is None:
            self._csv_lines = {}
            try:
                text = path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError):
                return self._csv_lines
            reader = _csv.reader(io.StringIO(text))
            name_col, first = 0, True
            for row in reader:
                cells = [c.strip() for c in row]
                if not cells or all(not c for c in cells):
                    continue
                if first:
                    first = False
                    lower = [c.lower() for c in cells]
                    if "img_name" in lower:
                        name_col = lower.index("img_name")
                        continue
                rest = [c for k, c in enumerate(cells) if k != name_col]
                if name_col < len(cells) and any(rest):
                    self._csv_lines.setdefault(cells[name_col], []).append(reader.line_num)
        return self._csv_lines
