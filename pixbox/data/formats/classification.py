"""Image classification layouts: a folder per class, or a CSV of ``path,label`` rows.

Folder layout (as torchvision's ``ImageFolder``)::

    root/
      cat/  a.jpg  b.png  more/c.jpg
      dog/  d.jpg

Each sub-folder of ``root`` is a class (sorted names, hidden folders ignored); its image files
(suffixes ``.jpg .jpeg .png .bmp .gif .webp .tif .tiff``, any case) are searched recursively
and listed in sorted order. An empty class folder is still a class.

CSV layout::

    path,label          (optional header)
    images/a.jpg,cat
    images/b.jpg,dog

``label`` is a class name; the class names are the sorted distinct labels. Relative paths are
relative to ``root``, by default the CSV file's folder, and must stay inside it: ``../`` and
absolute paths elsewhere are refused unless ``allow_outside=True``.

Readers check each image header (a file that is not an image is a problem) but never decode
the pixels.
"""

from __future__ import annotations

import csv as _csv
import io
import os
from pathlib import Path

from pixbox.data.annotations import ClassificationAnnotations, DatasetError
from pixbox.data.formats import _common as C
from pixbox.data.io import IMAGE_SUFFIXES

__all__ = ["read_classification_csv", "read_image_folder", "write_classification_csv", "write_image_folder"]

_PATH_HEADERS = {"path", "image", "file", "filename", "file_name", "image_path", "img_name"}
_LABEL_HEADERS = {"label", "class", "class_name", "category"}


def _check_image(path: Path, log: C.ProblemLog, source=None, where: str | None = None) -> bool:
    return C.header_size(path, log, source, where) is not None


def read_image_folder(root, *, on_error: str = "raise") -> ClassificationAnnotations:
    """Reads a folder-per-class classification dataset; see the module docstring.

    Args:
        root (str or PathLike): the folder holding one sub-folder per class.
        on_error (str): ``"raise"`` (the first unreadable image raises :class:`DatasetError`) or
            ``"skip"`` (unreadable images are skipped and listed in ``.problems``, with one
            warning).

    Returns:
        ClassificationAnnotations: absolute image paths, class by class.
    """
    root = C.check_root(root)
    log = C.ProblemLog(on_error, f"image folder {root}")
    class_names = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not class_names:
        raise DatasetError("no class folders found (expected one sub-folder per class)", root)
    samples = []
    for label, name in enumerate(class_names):
        found = []
        for folder, dirs, files in os.walk(root / name):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            found += [os.path.join(folder, f) for f in files
                      if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES and not f.startswith(".")]
        for path in sorted(found):
            path = Path(path)
            if _check_image(path, log):
                samples.append((path, label))
    return log.finish(ClassificationAnnotations(class_names=class_names, samples=samples))


def _check_class_folder_names(names: list[str]) -> None:
    for name in names:
        if not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name:
            raise ValueError(f"class names are folder names in an image folder, so each must be non-empty "
                             f"without slashes or a leading '.', got {name!r}")


def write_image_folder(annotations: ClassificationAnnotations, root, *, images: str = "copy") -> Path:
    """Writes a folder-per-class classification dataset; see the module docstring.

    Every class gets a folder, even one without images, so the class list survives. Images keep
    their file names (``_1``, ``_2``, ... are added when two in a class share a name).

    Args:
        annotations (ClassificationAnnotations): what to write.
        root (str or PathLike): the folder to create; it must not exist or be empty.
        images (str): ``"copy"`` or ``"move"`` the image files.

    Returns:
        Path: ``root``.
    """
    if not isinstance(annotations, ClassificationAnnotations):
        raise TypeError(f"annotations must be a ClassificationAnnotations, got {type(annotations).__name__}")
    _check_class_folder_names(annotations.class_names)
    root = C.check_root(root, must_exist=False)
    transfer = C.ImageTransfer(images)
    if root.is_dir() and any(root.iterdir()):
        raise ValueError(f"root must be a new or empty folder, but {root} already holds files")
    sources = C.check_sources(p for p, _ in annotations.samples)
    by_class: dict[int, list[Path]] = {i: [] for i in range(len(annotations.class_names))}
    for src, (_, label) in zip(sources, annotations.samples):
        by_class[label].append(src)
    for label, name in enumerate(annotations.class_names):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for src, file_name in zip(by_class[label], C.unique_names(by_class[label])):
            transfer(src, folder / file_name)
    return root


def read_classification_csv(path, *, root=None, on_error: str = "raise",
                            allow_outside: bool = False) -> ClassificationAnnotations:
    """Reads a ``path,label`` CSV classification dataset; see the module docstring.

    Args:
        path (str or PathLike): the CSV file.
        root (str or PathLike or None): the folder relative image paths start from; default the
            CSV file's folder.
        on_error (str): ``"raise"`` (the first bad row raises :class:`DatasetError` naming the
            CSV file and line) or ``"skip"`` (bad rows are skipped and listed in ``.problems``,
            with one warning).
        allow_outside (bool): accept image paths outside ``root`` (``../``, absolute); refused
            by default.

    Returns:
        ClassificationAnnotations: absolute image paths in row order; sorted class names.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(os.path.abspath(path))
    if not path.is_file():
        raise DatasetError("CSV file not found" if not path.exists() else "not a file", path)
    base = path.parent if root is None else C.check_root(root)
    C.check_allow_outside(allow_outside)
    log = C.ProblemLog(on_error, f"classification CSV {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read: {e}", path) from e
    reader = _csv.reader(io.StringIO(text))
    rows = []
    first = True
    for row in reader:
        cells = [c.strip() for c in row]
        if not cells or all(not c for c in cells):
            continue
        where = f"line {reader.line_num}"
        if first:
            first = False
            if (len(cells) == 2 and cells[0].lower() in _PATH_HEADERS
                    and cells[1].lower() in _LABEL_HEADERS):
                continue
        if len(cells) != 2 or not cells[0] or not cells[1]:
            log.add(f"expected 2 fields 'path,label', got {row}", path, where)
            continue
        image = Path(os.path.abspath(base / cells[0]))
        if not allow_outside and not C.is_inside(image, base):
            log.add(C.outside_message("image path", cells[0], base), path, where)
            continue
        if _check_image(image, log, path, where):
            rows.append((image, cells[1]))
    class_names = sorted({label for _, label in rows})
    index = {n: i for i, n in enumerate(class_names)}
    samples = [(image, index[label]) for image, label in rows]
    return log.finish(ClassificationAnnotations(class_names=class_names, samples=samples))


def write_classification_csv(annotations: ClassificationAnnotations, path) -> Path:
    """Writes a ``path,label`` CSV (with a header), atomically; the images are not copied.

    Image paths are written relative to the CSV file's folder (with ``/`` separators). Classes
    without any image cannot be represented and are lost. Images outside that folder are
    written as ``../`` paths, which :func:`read_classification_csv` reads back only with
    ``allow_outside=True``.

    Args:
        annotations (ClassificationAnnotations): what to write.
        path (str or PathLike): the CSV file (parent folders are created).

    Returns:
        Path: ``path``.
    """
    if not isinstance(annotations, ClassificationAnnotations):
        raise TypeError(f"annotations must be a ClassificationAnnotations, got {type(annotations).__name__}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(os.path.abspath(path))
    out = io.StringIO()
    writer = _csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label"])
    for image, label in annotations.samples:
        rel = Path(os.path.relpath(os.path.abspath(image), path.parent)).as_posix()
        writer.writerow([rel, annotations.class_names[label]])
    return C.write_text(path, out.getvalue())
