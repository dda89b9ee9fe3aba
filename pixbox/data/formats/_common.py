"""Helpers shared by the format readers and writers (private).

- argument checks (``root``, ``split``, ``on_error``, ``images``, annotations);
- :class:`ProblemLog`, which raises the first problem or collects them all and warns once;
- file plumbing: atomic text files, copying/moving images under unique names;
- class-name files and merging the class names of a new split into an existing dataset.
"""

from __future__ import annotations

import difflib
import filecmp
import math
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np

from pixbox._files import atomic_open
from pixbox._checks import check_bool, check_choice
from pixbox.data.annotations import DatasetError, DetectionAnnotations
from pixbox.data.io import IMAGE_SUFFIXES, image_size

__all__: list[str] = []

ON_ERROR = ("raise", "skip")
IMAGE_MODES = ("copy", "move")
_WARN_EXAMPLES = 3
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


# ----------------------------------------------------------------------------------------------
# Argument checks


def check_root(root, name: str = "root", *, must_exist: bool = True) -> Path:
    """An absolute dataset folder path; with ``must_exist`` a missing folder is an error."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike folder path, got {type(root).__name__}")
    path = Path(os.path.abspath(root))
    if must_exist and not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise DatasetError(f"{name} must be an existing dataset folder, but it {what}", path)
    if not must_exist and path.exists() and not path.is_dir():
        raise DatasetError(f"{name} must be a folder, but it is a file", path)
    return path


def check_split_name(split, name: str = "split") -> str:
    if not isinstance(split, str):
        raise TypeError(f"{name} must be a str such as 'train', got {type(split).__name__}")
    if not split or split.startswith(".") or re.search(r"[\\/\s]", split):
        raise ValueError(f"{name} must be a non-empty name without slashes, spaces or a leading '.', "
                         f"got {split!r}")
    return split


def check_split_exists(split: str, found: list[str], root: Path, fmt: str, looked_for: str) -> None:
    """Raises a ValueError listing the splits found when ``split`` is not one of them."""
    if not isinstance(split, str):
        raise TypeError(f"split must be a str such as 'train', got {type(split).__name__}")
    if split in found:
        return
    if not found:
        raise ValueError(f"split {split!r} not found: no {fmt} splits in {root} (looked for {looked_for})")
    hint = difflib.get_close_matches(split, found, n=1)
    extra = f"; did you mean {hint[0]!r}?" if hint else ""
    raise ValueError(f"split {split!r} not found in {root} ({fmt} layout); splits found: {found}{extra}")


def check_on_error(on_error) -> str:
    return check_choice(on_error, "on_error", ON_ERROR)


def check_images_mode(images) -> str:
    return check_choice(images, "images", IMAGE_MODES)


def check_allow_outside(allow_outside) -> bool:
    return check_bool(allow_outside, "allow_outside")


def is_inside(path, folder) -> bool:
    """Whether ``path`` is ``folder`` or below it, comparing normalized absolute paths.

    The comparison is by name (``..`` and absolute paths are resolved, symbolic links are not):
    a link inside the dataset folder counts as inside.
    """
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    try:
        return os.path.commonpath([path, folder]) == folder
    except ValueError:  # different drives on Windows
        return False


def outside_message(what: str, text: str, folder: Path) -> str:
    """The message for an annotation path that points outside the dataset folder."""
    return (f"{what} {text!r} points outside the dataset folder {folder}; such paths are refused by default "
            "(pass allow_outside=True, or --allow-outside-paths on the command line, to read files kept "
            "elsewhere on purpose)")


def check_detection(annotations, name: str = "annotations") -> DetectionAnnotations:
    """Type, label range and box sanity of annotations about to be written."""
    if not isinstance(annotations, DetectionAnnotations):
        raise TypeError(f"{name} must be a DetectionAnnotations, got {type(annotations).__name__}")
    num_classes = len(annotations.class_names)
    for i, rec in enumerate(annotations.records):
        if len(rec):
            if rec.labels.min() < 0 or rec.labels.max() >= num_classes:
                raise ValueError(f"{name}.records[{i}] ({rec.image}) has labels {rec.labels.tolist()}; "
                                 f"labels must be in [0, {num_classes}) for {num_classes} class names")
            message = box_problem(rec.boxes)
            if message:
                raise ValueError(f"{name}.records[{i}] ({rec.image}): {message}")
        if rec.width <= 0 or rec.height <= 0:
            raise ValueError(f"{name}.records[{i}] ({rec.image}) must have a positive width and height, "
                             f"got {rec.width} x {rec.height}")
    return annotations


def box_problem(boxes: np.ndarray) -> str | None:
    """The problem with the first bad box of ``boxes`` ``[N, 4]`` (xyxy px), or None."""
    finite = np.isfinite(boxes).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        return f"box {i} has non-finite coordinates {boxes[i].tolist()}"
    bad = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        return f"box {i} {boxes[i].tolist()} has x2 < x1 or y2 < y1 (xyxy pixels expected)"
    return None


def xyxy_problem(x1: float, y1: float, x2: float, y2: float) -> str | None:
    """The problem with one xyxy box, or None (non-finite numbers, x2 < x1, y2 < y1)."""
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return f"non-finite box coordinates {[x1, y1, x2, y2]}"
    if x2 < x1:
        return f"box has x2 < x1 ({x2:g} < {x1:g})"
    if y2 < y1:
        return f"box has y2 < y1 ({y2:g} < {y1:g})"
    return None


# ----------------------------------------------------------------------------------------------
# Problems: raise the first, or collect them all and warn once


def _stacklevel() -> int:
    """The warnings stack level of the first frame outside pixbox.data.formats."""
    import sys
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.dirname(os.path.abspath(frame.f_code.co_filename)) == _PACKAGE_DIR:
        frame, level = frame.f_back, level + 1
    return level


class ProblemLog:
    """Raises each problem at once (``on_error="raise"``) or keeps it (``"skip"``)."""

    def __init__(self, on_error: str, what: str):
        self.on_error = check_on_error(on_error)
        self.what = what
        self.problems: list[DatasetError] = []

    def add(self, message: str, path=None, where: str | None = None) -> None:
        self.add_error(DatasetError(message, path, where))

    def add_error(self, error: DatasetError) -> None:
        if self.on_error == "raise":
            raise error
        self.problems.append(error)

    def finish(self, annotations):
        """Attaches the problems to ``annotations`` and emits one warning if there were any."""
        annotations.problems = list(self.problems)
        if self.problems:
            n = len(self.problems)
            shown = "; ".join(str(p) for p in self.problems[:_WARN_EXAMPLES])
            more = f"; and {n - _WARN_EXAMPLES} more" if n > _WARN_EXAMPLES else ""
            warnings.warn(f"skipped {n} problem{'s' if n != 1 else ''} while reading {self.what} "
                          f"(all are in .problems): {shown}{more}", stacklevel=_stacklevel())
        return annotations


def header_size(image: Path, log: ProblemLog, path=None, where: str | None = None) -> tuple[int, int] | None:
    """``(width, height)`` of an image from its header, or None after logging the problem.

    The problem is reported against ``path`` (the annotation file listing the image) when
    given, else against the image itself.
    """
    if not image.is_file():
        log.add(f"image file not found: {image}", path if path is not None else image, where)
        return None
    try:
        return image_size(image)
    except DatasetError as e:
        if path is None:
            log.add_error(e)
        else:
            log.add(str(e), path, where)
        return None


# ----------------------------------------------------------------------------------------------
# Files


def write_text(path: Path, text: str) -> Path:
    """Writes a UTF-8 text file atomically (temporary file + os.replace)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    return path


def write_small_text(path: Path, text: str) -> None:
    """Writes a small per-image text file (not atomic: the split's index file is written last)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def list_images(folder: Path) -> dict[str, str]:
    """``{stem: file name}`` of the image files directly in ``folder`` (one directory listing)."""
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    with os.scandir(folder) as it:
        for entry in sorted(it, key=lambda e: e.name):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in IMAGE_SUFFIXES and stem not in out and entry.is_file():
                out[stem] = entry.name
    return out


def natural_key(text: str):
    """Sort key with numbers compared by value: ``2.png`` before ``10.png``."""
    parts = re.split(r"(\d+)", text)
    return [int(p) if i % 2 else p.lower() for i, p in enumerate(parts)], text


def format_number(value: float) -> str:
    """``12`` for integral values, else the shortest exact representation (``12.345``)."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def check_sources(paths: Iterable) -> list[Path]:
    """The image files to copy; a missing one is an error before anything is written."""
    out = []
    for p in paths:
        p = Path(p)
        if not p.is_file():
            raise DatasetError("image file to write into the dataset not found", p)
        out.append(p)
    return out


def unique_names(paths: list[Path], *, distinct_stems: bool = False) -> list[str]:
    """A distinct file name per path: its own name, or ``stem_1.ext``, ``stem_2.ext``, ... .

    With ``distinct_stems``, the stems are distinct too (``a.png`` and ``a.jpg`` clash), for
    formats that name a per-image file after the stem.
    """
    taken: set[str] = set()
    names = []
    for p in paths:
        name, k = p.name, 0
        while (Path(name).stem if distinct_stems else name) in taken:
            k += 1
            name = f"{p.stem}_{k}{p.suffix}"
        taken.add(Path(name).stem if distinct_stems else name)
        names.append(name)
    return names


def same_file_content(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


class ImageTransfer:
    """Copies or moves image files into a dataset, byte for byte, with the original suffix.

    A source listed twice is moved once and copied from its new place afterwards. A source that
    is already the destination file is left alone.
    """

    def __init__(self, mode: str):
        self.mode = check_images_mode(mode)
        self._moved: dict[Path, Path] = {}

    def __call__(self, src: Path, dst: Path) -> Path:
        src = Path(src)
        if src in self._moved:
            src = self._moved[src]
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists() and os.path.samefile(src, dst):
            return dst
        if self.mode == "move" and src not in self._moved.values():
            shutil.move(os.fspath(src), os.fspath(dst))
            self._moved[src] = dst
        else:
            shutil.copyfile(src, dst)
        return dst


# A line of a VOC class list (ImageSets/Main/<class>_<split>.txt): an id, then 1, -1 or 0.
_CLASS_LIST_LINE = re.compile(r"\S.*\s(?:-1|0|1)")
_CLASS_LIST_STEM = re.compile(r"(.+)_([^_]+)")


def _named_like_a_class_list(stem: str, stems: set[str]) -> bool:
    match = _CLASS_LIST_STEM.fullmatch(stem)
    return match is not None and match.group(2) in stems


def is_class_list(stem: str, lines: Iterable[str], stems: set[str]) -> bool:
    """Whether a ``.txt`` file of ``ImageSets/<task>/`` is a VOC class list, not a split.

    A class list is named ``<class>_<split>`` where ``<split>.txt`` exists beside it, and every
    line is an id followed by ``1``, ``-1`` or ``0``. Anything else is a split, so ids with
    spaces (``my image``) never make a split vanish.
    """
    if not _named_like_a_class_list(stem, stems):
        return False
    lines = [line.strip() for line in lines if line.strip()]
    return bool(lines) and all(_CLASS_LIST_LINE.fullmatch(line) for line in lines)


def id_list_files(folder: Path) -> dict[str, Path]:
    """``{split: file}`` for the id lists in ``folder`` (``ImageSets/Main``, ...).

    Every ``.txt`` file is a split except VOC's class lists (:func:`is_class_list`); a file
    that cannot be read is a split too, whose reading then raises.
    """
    if not folder.is_dir():
        return {}
    paths = sorted(p for p in folder.glob("*.txt") if p.is_file())
    stems = {p.stem for p in paths}
    out = {}
    for path in paths:
        if _named_like_a_class_list(path.stem, stems):  # only then are its lines worth reading
            try:
                if is_class_list(path.stem, path.read_text(encoding="utf-8-sig").splitlines(), stems):
                    continue
            except (OSError, UnicodeDecodeError):
                pass
        out[path.stem] = path
    return out


def read_ids(path: Path) -> list[tuple[int, str]]:
    """``(line number, id)`` of an id list file; an id is the whole line (spaces included)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read: {e}", path) from e
    return [(i, line.strip()) for i, line in enumerate(text.splitlines(), 1) if line.strip()]


def line_id(stem: str) -> str:
    """An image id that survives a line of an id list: ``stem`` without surrounding spaces or line breaks."""
    image_id = re.sub(r"[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", "_", stem).strip()
    return image_id or "image"


def check_id_list(split: str, ids: list[str], folder: Path, fmt: str) -> None:
    """Refuses to write ids that would make the split ``folder/<split>.txt`` read as a class list."""
    stems = {p.stem for p in folder.glob("*.txt")} if folder.is_dir() else set()
    if is_class_list(split, ids, stems):
        raise ValueError(f"split {split!r} would read back as a VOC class list ({folder / (split + '.txt')}: "
                         f"every id ends in 1, -1 or 0 and {split.rsplit('_', 1)[1]}.txt exists); choose "
                         f"another split name for this {fmt} dataset")


# ----------------------------------------------------------------------------------------------
# Class names shared by all the splits of a dataset folder


def read_class_names(path: Path) -> list[str]:
    """Class names from a text file, one per line (blank lines ignored)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read class names: {e}", path) from e
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DatasetError(f"class names must be unique, got duplicates {dup}", path)
    return names


def merge_class_names(existing: list[str] | None, new: list[str]) -> tuple[list[str], np.ndarray]:
    """The class list of a dataset folder after adding a split with class names ``new``.

    Names already in ``existing`` keep their index (other splits stay valid); new names are
    appended. Returns the merged list and the ``int64`` map from ``new`` indices to merged ones.
    """
    merged = list(existing) if existing is not None else list(new)
    for name in new:
        if name not in merged:
            merged.append(name)
    index = {n: i for i, n in enumerate(merged)}
    return merged, np.array([index[n] for n in new], dtype=np.int64)


def check_names_for_lines(names: list[str], fmt: str) -> None:
    """Class names written one per line must be non-empty, single-line and unpadded."""
    for name in names:
        if not name or name != name.strip() or "\n" in name or "\r" in name:
            raise ValueError(f"class names of the {fmt} format are stored one per line, so each must be "
                             f"non-empty without line breaks or surrounding spaces, got {name!r}")


def refuse_existing_split(split: str, found: list[str], root: Path, fmt: str) -> None:
    if split in found:
        raise ValueError(f"split {split!r} already exists in {root} ({fmt} layout); write to a new folder "
                         "or remove that split first (writers never overwrite a split)")
