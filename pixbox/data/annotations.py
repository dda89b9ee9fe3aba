"""In-memory annotations: the one structure every dataset format reads into and writes from.

A format reader (:mod:`pixbox.data.formats`) turns files on disk into a
:class:`DetectionAnnotations`; a writer turns one back into files. Converting between formats
is read then write, so every format only needs to know about this structure, never about
another format.

Conventions (the same as :mod:`pixbox.ops`):

- boxes are ``xyxy`` in absolute pixels of the original image, ``float64`` numpy arrays, with
  ``0 <= x1 <= x2 <= width`` and ``0 <= y1 <= y2 <= height`` after validation;
- a label is an index into :attr:`DetectionAnnotations.class_names` (``0 .. C-1``; there is no
  background class at this level);
- ``image`` is the path of the image file on disk (absolute once read), so a writer can copy it.

Example:
    >>> import numpy as np
    >>> rec = DetectionRecord(image="a.png", width=64, height=48,
    ...                       boxes=np.array([[1.0, 2.0, 30.0, 40.0]]), labels=np.array([0]))
    >>> ann = DetectionAnnotations(class_names=["cat"], records=[rec])
    >>> ann.num_objects(), rec.iscrowd.tolist(), rec.difficult.tolist()
    (1, [False], [False])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ClassificationAnnotations", "DatasetError", "DetectionAnnotations", "DetectionRecord",
           "SegmentationAnnotations"]


class DatasetError(ValueError):
    """A problem with a dataset file. The message names the file, and the line or object.

    Attributes:
        path (str | None): the file at fault.
        where (str | None): the line, object or field inside it, for example ``"line 3"``.
    """

    def __init__(self, message: str, path: str | Path | None = None, where: str | None = None):
        self.path = None if path is None else str(path)
        self.where = where
        prefix = ""
        if self.path is not None:
            prefix = f"{self.path}" + (f", {where}" if where else "") + ": "
        super().__init__(prefix + message)


def _check_class_names(class_names) -> list[str]:
    if isinstance(class_names, str):
        raise TypeError(f"class_names must be a list of str, got the str {class_names!r}")
    names = [str(c) for c in class_names]
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"class_names must be unique, got duplicates {dup}")
    return names


@dataclass
class DetectionRecord:
    """The annotations of one image.

    Attributes:
        image (str | Path): path of the image file.
        width (int): image width in pixels.
        height (int): image height in pixels.
        boxes (ndarray[N, 4]): ``float64``, xyxy absolute pixels.
        labels (ndarray[N]): ``int64``, indices into the class names.
        iscrowd (ndarray[N]): ``bool``; COCO ``iscrowd`` objects, to be ignored in training
            and evaluation. Defaults to all False.
        difficult (ndarray[N]): ``bool``; VOC ``difficult`` objects. Defaults to all False.
        image_id (int | str | None): the id the source format gives the image (COCO id, VOC
            file stem, ...); ``None`` lets a writer choose.
        extra (dict): format-specific fields a writer may reuse (never required).
    """

    image: str | Path
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float64))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    iscrowd: np.ndarray | None = None
    difficult: np.ndarray | None = None
    image_id: int | str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        n = len(self.boxes)
        if len(self.labels) != n:
            raise ValueError(f"labels must have one entry per box ({n}), got {len(self.labels)} "
                             f"for image {self.image}")
        self.iscrowd = (np.zeros(n, bool) if self.iscrowd is None
                        else np.asarray(self.iscrowd, dtype=bool).reshape(-1))
        self.difficult = (np.zeros(n, bool) if self.difficult is None
                          else np.asarray(self.difficult, dtype=bool).reshape(-1))
        for name in ("iscrowd", "difficult"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} must have one entry per box ({n}), got "
                                 f"{len(getattr(self, name))} for image {self.image}")
        self.width, self.height = int(self.width), int(self.height)

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class DetectionAnnotations:
    """A detection dataset split: class names plus one :class:`DetectionRecord` per image.

    Attributes:
        class_names (list[str]): the class names; ``labels`` index into this list.
        records (list[DetectionRecord]): one per image, in the dataset's order.
        problems (list[DatasetError]): what a reader skipped with ``on_error="skip"`` (empty
            when everything was read).
    """

    class_names: list[str]
    records: list[DetectionRecord] = field(default_factory=list)
    problems: list[DatasetError] = field(default_factory=list)

    def __post_init__(self):
        self.class_names = _check_class_names(self.class_names)

    def __len__(self) -> int:
        return len(self.records)

    def num_objects(self) -> int:
        """The total number of boxes over all images."""
        return sum(len(r) for r in self.records)


@dataclass
class SegmentationAnnotations:
    """A semantic segmentation split: class names plus (image path, mask path) pairs.

    Mask files hold class indices ``0 .. C-1`` (``0`` is the background class in VOC) and
    ``255`` for pixels to ignore; :func:`pixbox.data.io.read_mask` decodes them.

    Attributes:
        class_names (list[str]): including the background class at index 0.
        samples (list[tuple[Path, Path]]): ``(image, mask)`` file paths.
        problems (list[DatasetError]): what a reader skipped with ``on_error="skip"``.
    """

    class_names: list[str]
    samples: list[tuple[Path, Path]] = field(default_factory=list)
    problems: list[DatasetError] = field(default_factory=list)

    def __post_init__(self):
        self.class_names = _check_class_names(self.class_names)
        self.samples = [(Path(i), Path(m)) for i, m in self.samples]

    def __len__(self) -> int:
        return len(self.samples)


@dataclass
class ClassificationAnnotations:
    """A classification split: class names plus (image path, label) pairs.

    Attributes:
        class_names (list[str]): ``label`` indexes into this list.
        samples (list[tuple[Path, int]]): ``(image, label)``.
        problems (list[DatasetError]): what a reader skipped with ``on_error="skip"``.
    """

    class_names: list[str]
    samples: list[tuple[Path, int]] = field(default_factory=list)
    problems: list[DatasetError] = field(default_factory=list)

    def __post_init__(self):
        self.class_names = _check_class_names(self.class_names)
        self.samples = [(Path(p), int(y)) for p, y in self.samples]
        for path, label in self.samples:
            if not 0 <= label < len(self.class_names):
                raise ValueError(f"label of {path} must be in [0, {len(self.class_names)}), "
                                 f"got {label}")

    def __len__(self) -> int:
        return len(self.samples)
