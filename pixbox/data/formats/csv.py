"""The CSV detection layout of the D2L banana data set.

Layout::

    root/
      classes.txt                 optional: one class name per line (label i is line i)
      bananas_<split>/ or <split>/
        label.csv                 img_name,label,xmin,ymin,xmax,ymax
        images/<img_name>

- the split folder is ``root/bananas_<split>/`` when it exists (D2L's layout), else
  ``root/<split>/``;
- one row per object, several rows per image allowed; boxes are xyxy in pixels; ``label`` is
  an integer class index;
- an image without objects is a row with only ``img_name`` (the other fields empty);
- the header row is optional; when present its column names may come in any order;
- without ``classes.txt`` the class names are ``"0" .. "max label"``;
- an ``img_name`` outside ``root`` (``../``, absolute) is refused unless ``allow_outside=True``.

Images are listed in the order of their first row. The writer writes ``root/<split>/`` and
``root/classes.txt``, numbers as integers when integral and exact decimals otherwise. CSV has
no ``difficult``/``iscrowd`` flags: they are not written and read back as False.
"""

from __future__ import annotations

import csv as _csv
import io
import os
from pathlib import Path

import numpy as np

from pixbox.data.annotations import DatasetError, DetectionAnnotations, DetectionRecord
from pixbox.data.formats import _common as C

__all__ = ["LOOKED_FOR", "list_splits", "looks_like", "read", "write"]

#: What :func:`looks_like` and :func:`list_splits` look for (for error messages).
LOOKED_FOR = "root/bananas_<split>/label.csv or root/<split>/label.csv"
COLUMNS = ("img_name", "label", "xmin", "ymin", "xmax", "ymax")
_FMT = "csv"


def _split_dirs(root: Path) -> dict[str, Path]:
    """``{split: folder}``; ``bananas_<split>`` wins over ``<split>``."""
    plain, bananas = {}, {}
    if root.is_dir():
        with os.scandir(root) as it:
            for entry in it:
                if entry.is_dir() and os.path.isfile(os.path.join(entry.path, "label.csv")):
                    if entry.name.startswith("bananas_") and len(entry.name) > len("bananas_"):
                        bananas[entry.name[len("bananas_"):]] = Path(entry.path)
                    else:
                        plain[entry.name] = Path(entry.path)
    return {**plain, **bananas}


def list_splits(root) -> list[str]:
    """The splits of a CSV dataset folder, sorted (``[]`` when there are none).

    Args:
        root (str or PathLike): the dataset folder.

    Returns:
        list[str]: the split names.
    """
    return sorted(_split_dirs(C.check_root(root)))


def looks_like(root) -> bool:
    """Whether ``root`` has at least one split folder with a ``label.csv``."""
    return bool(_split_dirs(C.check_root(root)))


def _parse_rows(label_csv: Path, log: C.ProblemLog):
    """Yields ``(line, img_name, fields or None)``, fields being ``[label, x1, y1, x2, y2]`` strings."""
    try:
        text = label_csv.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read: {e}", label_csv) from e
    reader = _csv.reader(io.StringIO(text))
    columns = list(range(len(COLUMNS)))  # position of each of COLUMNS in a row
    first = True
    for row in reader:
        line = reader.line_num
        if not row or all(not f.strip() for f in row):
            continue
        cells = [f.strip() for f in row]
        if first:
            first = False
            names = [c.lower() for c in cells]
            if "img_name" in names:  # header
                missing = [c for c in COLUMNS if c not in names]
                if missing:
                    raise DatasetError(f"header must name the columns {list(COLUMNS)}, missing {missing}",
                                       label_csv, "line 1")
                columns = [names.index(c) for c in COLUMNS]
                continue
        values = [cells[i] if i < len(cells) else "" for i in columns]
        if not values[0]:
            log.add("empty img_name", label_csv, f"line {line}")
            continue
        rest = values[1:]
        if all(not v for v in rest):
            yield line, values[0], None
        elif any(not v for v in rest):
            log.add(f"incomplete row {row}: label, xmin, ymin, xmax, ymax must all be given "
                    "(or all be empty for an image without objects)", label_csv, f"line {line}")
            yield line, values[0], None  # the image is kept; its bad object is skipped
        else:
            yield line, values[0], rest


def read(root, split: str = "train", *, on_error: str = "raise", allow_outside: bool = False) -> DetectionAnnotations:
    """Reads one split of a CSV (D2L banana) detection dataset; see the module docstring.

    Args:
        root (str or PathLike): the dataset folder.
        split (str): the split name, e.g. ``"train"``.
        on_error (str): ``"raise"`` (the first problem raises :class:`DatasetError`) or
            ``"skip"`` (bad rows and images are skipped and listed in ``.problems``, with one
            warning).
        allow_outside (bool): accept an ``img_name`` outside ``root`` (absolute, or with
            ``../``); refused by default.

    Returns:
        DetectionAnnotations: absolute image paths, sizes from the image headers.
    """
    root = C.check_root(root)
    C.check_allow_outside(allow_outside)
    dirs = _split_dirs(root)
    C.check_split_exists(split, sorted(dirs), root, _FMT, LOOKED_FOR)
    log = C.ProblemLog(on_error, f"{_FMT} split {split!r} of {root}")
    split_dir = dirs[split]
    label_csv = split_dir / "label.csv"
    classes_txt = root / "classes.txt"
    class_names = C.read_class_names(classes_txt) if classes_txt.is_file() else None

    # img_name -> (first line, [boxes], [labels]), in order of first appearance
    images: dict[str, tuple[int, list, list]] = {}
    for line, name, fields in _parse_rows(label_csv, log):
        entry = images.setdefault(name, (line, [], []))
        if fields is None:
            continue
        where = f"line {line}"
        try:
            label_f = float(fields[0])
            x1, y1, x2, y2 = (float(v) for v in fields[1:])
        except ValueError:
            log.add(f"cannot parse the numbers {fields} (label, xmin, ymin, xmax, ymax)", label_csv, where)
            continue
        if not label_f.is_integer() or label_f < 0:
            log.add(f"label must be a class index >= 0, got {fields[0]!r}", label_csv, where)
            continue
        label = int(label_f)
        if class_names is not None and label >= len(class_names):
            log.add(f"class id {label} out of range: {classes_txt} lists {len(class_names)} classes",
                    label_csv, where)
            continue
        problem = C.xyxy_problem(x1, y1, x2, y2)
        if problem:
            log.add(problem, label_csv, where)
            continue
        entry[1].append((x1, y1, x2, y2))
        entry[2].append(label)

    records = []
    image_dir = split_dir / "images"
    for name, (line, boxes, labels) in images.items():
        path = Path(os.path.abspath(image_dir / name))
        if not allow_outside and not C.is_inside(path, root):
            log.add(C.outside_message("img_name", name, root), label_csv, f"line {line}")
            continue
        size = C.header_size(path, log, label_csv, f"line {line}")
        if size is None:
            continue
        width, height = size
        records.append(DetectionRecord(image=path, width=width, height=height,
                                       boxes=np.array(boxes, np.float64).reshape(-1, 4),
                                       labels=np.array(labels, np.int64), image_id=name))
    if class_names is None:
        top = max((int(r.labels.max()) for r in records if len(r)), default=-1)
        class_names = [str(i) for i in range(top + 1)]
    return log.finish(DetectionAnnotations(class_names=class_names, records=records))


def write(annotations: DetectionAnnotations, root, split: str = "train", *, images: str = "copy") -> Path:
    """Writes one split as a CSV (D2L banana) detection dataset; see the module docstring.

    Args:
        annotations (DetectionAnnotations): what to write.
        root (str or PathLike): the dataset folder (created when missing). Other splits in it
            are kept; the split itself must not exist yet.
        split (str): the split name.
        images (str): ``"copy"`` or ``"move"`` the image files into the dataset.

    Returns:
        Path: ``root``.
    """
    C.check_detection(annotations)
    C.check_names_for_lines(annotations.class_names, _FMT)
    root = C.check_root(root, must_exist=False)
    C.check_split_name(split)
    transfer = C.ImageTransfer(images)
    dirs = _split_dirs(root)
    C.refuse_existing_split(split, sorted(dirs), root, _FMT)
    sources = C.check_sources(r.image for r in annotations.records)

    classes_txt = root / "classes.txt"
    existing = C.read_class_names(classes_txt) if classes_txt.is_file() else None
    class_names, remap = C.merge_class_names(existing, annotations.class_names)

    split_dir = root / split
    names = C.unique_names(sources)
    out = io.StringIO()
    writer = _csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for rec, name in zip(annotations.records, names):
        if len(rec) == 0:
            writer.writerow([name, "", "", "", "", ""])
        for box, label in zip(rec.boxes, remap[rec.labels]):
            writer.writerow([name, int(label), *(C.format_number(v) for v in box)])
    for src, name in zip(sources, names):
        transfer(src, split_dir / "images" / name)
    if class_names != existing:
        C.write_text(classes_txt, "".join(f"{n}\n" for n in class_names))
    C.write_text(split_dir / "label.csv", out.getvalue())
    return root
