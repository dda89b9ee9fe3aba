"""The YOLO (darknet / ultralytics) detection layout.

Layout::

    root/
      data.yaml                  names: [...] (or {0: name, ...}), train: images/train, val: ...
      images/<split>/<stem>.<ext>
      labels/<split>/<stem>.txt  one line per object: class cx cy w h (normalized to [0, 1])

- A split is a key of ``data.yaml`` (``train``, ``val``, ``test``, or any other key whose value
  is an existing path) whose value is a folder of images (searched recursively), a ``.txt``
  file listing image paths (relative paths are relative to that file's folder), or a list of
  those. Paths are relative to ``path:`` when given (itself relative to ``root``), else to
  ``root``. Without ``data.yaml`` the splits are the folders in ``root/images/``.
- The label file of an image is found as ultralytics does: the last ``/images/`` of its path
  becomes ``/labels/`` and the suffix ``.txt``. A missing label file means no objects.
- Every label line must have exactly 5 numbers (segment polygons are not read).
- Class names: ``names`` in ``data.yaml`` (a list of strings, or ``{0: name, 1: name, ...}``;
  ``nc``, when given too, must equal their number); else ``nc`` gives ``"0" .. "nc-1"``; else
  ``root/classes.txt``; else ``"0" .. "max class id"``. ``data.yaml`` must not use YAML
  aliases (``*name``).
- Paths stay inside ``root``: ``path:``, the split entries and the lines of list files that
  point outside it are refused unless ``allow_outside=True``.

**Order.** YOLO stores no image order: a folder is read in natural order of the file paths
(``2.png`` before ``10.png``). The writer therefore writes ``<split>: images/<split>`` when that
order is the order of the records (the usual case), and otherwise a list file
``<split>: <split>.txt`` (standard YOLO) that keeps the order; the images are in
``images/<split>/`` either way.

Box coordinates are normalized by the image size read from the file header (the writer
checks that it matches the record). YOLO has no ``difficult``/``iscrowd``: they are not written
and read back as False.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import yaml

from pixbox._checks import is_int
from pixbox.data._yaml import load_yaml
from pixbox.data.annotations import DatasetError, DetectionAnnotations, DetectionRecord
from pixbox.data.formats import _common as C
from pixbox.data.io import IMAGE_SUFFIXES, image_size

__all__ = ["LOOKED_FOR", "label_path", "list_splits", "looks_like", "read", "write"]

#: What :func:`looks_like` and :func:`list_splits` look for (for error messages).
LOOKED_FOR = "root/data.yaml with split keys, or root/images/<split>/ and root/labels/"
_FMT = "yolo"
_STANDARD_SPLITS = ("train", "val", "test")
_NOT_SPLITS = {"path", "download", "names", "nc"}


def _load_yaml(root: Path) -> dict | None:
    path = root / "data.yaml"
    if not path.is_file():
        return None
    data = load_yaml(path)  # no aliases: a tiny file cannot expand to gigabytes
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise DatasetError(f"expected a mapping (names:, train:, ...), got {type(data).__name__}", path)
    return data


def _base(root: Path, data: dict) -> Path:
    base = data.get("path")
    if isinstance(base, str) and base:
        return Path(os.path.abspath(root / base))  # an absolute `path` stays as it is
    return root


def _as_list(value) -> list[str] | None:
    if isinstance(value, str) and value:
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return list(value)
    return None


def _splits(root: Path, data: dict | None) -> dict[str, list[Path]]:
    """``{split: [folder or list file, ...]}``."""
    if data is None:
        images = root / "images"
        if not images.is_dir():
            return {}
        return {d.name: [d] for d in sorted(images.iterdir()) if d.is_dir() and not d.name.startswith(".")}
    base = _base(root, data)
    out = {}
    for key, value in data.items():
        entries = _as_list(value)
        if not isinstance(key, str) or key in _NOT_SPLITS or entries is None:
            continue
        paths = [Path(os.path.abspath(base / e)) for e in entries]
        if key in _STANDARD_SPLITS or all(p.exists() for p in paths):
            out[key] = paths
    return out


def list_splits(root) -> list[str]:
    """The splits of a YOLO dataset folder, sorted.

    Args:
        root (str or PathLike): the dataset folder.

    Returns:
        list[str]: the split names (``[]`` when there are none).
    """
    root = C.check_root(root)
    return sorted(_splits(root, _load_yaml(root)))


def looks_like(root) -> bool:
    """Whether ``root`` has a ``data.yaml``, or ``images/`` and ``labels/`` folders."""
    root = C.check_root(root)
    return (root / "data.yaml").is_file() or ((root / "images").is_dir() and (root / "labels").is_dir())


def _check_names(names, yaml_path: Path) -> list[str]:
    """``names`` of ``data.yaml``: a list of str, or a mapping ``{class id: str}`` with ids 0 .. C-1."""
    if isinstance(names, dict):
        bad = [k for k in names if not is_int(k)]
        if bad:
            raise DatasetError(f"the keys of names must be the class ids 0, 1, ... (integers), got {bad[0]!r}",
                               yaml_path, "key 'names'")
        if sorted(names) != list(range(len(names))):
            raise DatasetError(f"the keys of names must be the class ids 0 .. {len(names) - 1}, got "
                               f"{sorted(names)}", yaml_path, "key 'names'")
        items = [(f"names[{i}]", names[i]) for i in range(len(names))]
    elif isinstance(names, list):
        items = [(f"names[{i}]", n) for i, n in enumerate(names)]
    else:
        raise DatasetError(f"names must be a list of class names or a mapping {{id: name}}, got "
                           f"{type(names).__name__}", yaml_path, "key 'names'")
    for where, name in items:
        if not isinstance(name, str) or not name:
            raise DatasetError(f"{where} must be a non-empty str (quote names such as 'yes' or '1' in YAML), "
                               f"got {type(name).__name__} {name!r}", yaml_path, "key 'names'")
    out = [name for _, name in items]
    if len(set(out)) != len(out):
        dup = sorted({n for n in out if out.count(n) > 1})
        raise DatasetError(f"names must be unique, got duplicates {dup}", yaml_path, "key 'names'")
    return out


def _class_names(root: Path, data: dict | None) -> list[str] | None:
    yaml_path = root / "data.yaml"
    nc = None if data is None else data.get("nc")
    if nc is not None and (not is_int(nc) or nc < 0):
        raise DatasetError(f"nc must be a number of classes >= 0, got {nc!r}", yaml_path, "key 'nc'")
    if data is not None and data.get("names") is not None:
        names = _check_names(data["names"], yaml_path)
        if nc is not None and nc != len(names):
            raise DatasetError(f"nc is {nc} but names lists {len(names)} classes; make them agree (or drop nc)",
                               yaml_path, "key 'nc'")
        return names
    if nc is not None:
        return [str(i) for i in range(nc)]
    if (root / "classes.txt").is_file():
        return C.read_class_names(root / "classes.txt")
    return None


def _check_entries(data: dict | None, entries: list[Path], split: str, root: Path) -> None:
    """Refuses a ``path:`` or split entry of ``data.yaml`` outside ``root``."""
    yaml_path = root / "data.yaml"
    base = data.get("path") if data else None
    if isinstance(base, str) and base and not C.is_inside(_base(root, data), root):
        raise DatasetError(C.outside_message("path", base, root), yaml_path, "key 'path'")
    for entry in entries:
        if not C.is_inside(entry, root):
            raise DatasetError(C.outside_message(f"the {split!r} images", str(entry), root), yaml_path,
                               f"key {split!r}")


def _image_paths(entries: list[Path], split: str, root: Path,
                 log: C.ProblemLog, allow_outside: bool) -> list[tuple[Path, Path | None, str]]:
    """``(image, listed in, where)`` for each image of a split, in order."""
    out = []
    for entry in entries:
        if entry.is_dir():
            found = []
            for folder, dirs, files in os.walk(entry):
                dirs[:] = [d for d in dirs if not d.startswith(".")]
                found += [os.path.join(folder, f) for f in files
                          if os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES and not f.startswith(".")]
            found.sort(key=lambda p: C.natural_key(os.path.relpath(p, entry)))
            out += [(Path(p), None, "") for p in found]
        elif entry.is_file():
            try:
                lines = entry.read_text(encoding="utf-8-sig").splitlines()
            except (OSError, UnicodeDecodeError) as e:
                raise DatasetError(f"cannot read image list: {e}", entry) from e
            for i, line in enumerate(lines, 1):
                line = line.strip()
                if line:
                    p = line[2:] if line.startswith("./") else line
                    image = Path(os.path.abspath(entry.parent / p))
                    if not allow_outside and not C.is_inside(image, root):
                        log.add(C.outside_message("image path", line, root), entry, f"line {i}")
                        continue
                    out.append((image, entry, f"line {i}"))
        else:
            raise DatasetError(f"the {split!r} images ({entry}) do not exist", root / "data.yaml")
    return out


def label_path(image: Path) -> Path:
    """The label file of an image: the last ``/images/`` of the path becomes ``/labels/``."""
    text = os.fspath(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in text:
        head, tail = text.rsplit(sa, 1)
        text = head + sb + tail
    return Path(os.path.splitext(text)[0] + ".txt")


def read(root, split: str = "train", *, on_error: str = "raise", allow_outside: bool = False) -> DetectionAnnotations:
    """Reads one split of a YOLO detection dataset; see the module docstring.

    Args:
        root (str or PathLike): the dataset folder (the one holding ``data.yaml``).
        split (str): the split name, e.g. ``"train"``.
        on_error (str): ``"raise"`` (the first problem raises :class:`DatasetError`) or
            ``"skip"`` (bad lines and images are skipped and listed in ``.problems``, with one
            warning).
        allow_outside (bool): accept a ``path:`` or split folder of ``data.yaml``, or an image
            of a list file, outside ``root``; refused by default.

    Returns:
        DetectionAnnotations: absolute image paths, boxes in pixels of the header size.
    """
    root = C.check_root(root)
    C.check_allow_outside(allow_outside)
    data = _load_yaml(root)
    splits = _splits(root, data)
    C.check_split_exists(split, sorted(splits), root, _FMT, LOOKED_FOR)
    if not allow_outside:
        _check_entries(data, splits[split], split, root)
    log = C.ProblemLog(on_error, f"{_FMT} split {split!r} of {root}")
    class_names = _class_names(root, data)
    num_classes = None if class_names is None else len(class_names)

    records = []
    for image, listed_in, where in _image_paths(splits[split], split, root, log, allow_outside):
        size = C.header_size(image, log, listed_in, where or None)
        if size is None:
            continue
        width, height = size
        boxes, labels = [], []
        txt = label_path(image)
        try:
            text = txt.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            text = ""
        except (OSError, UnicodeDecodeError) as e:
            log.add(f"cannot read label file: {e}", txt)
            text = ""
        for i, line in enumerate(text.splitlines(), 1):
            tokens = line.split()
            if not tokens:
                continue
            at = f"line {i}"
            if len(tokens) != 5:
                log.add(f"expected 5 numbers (class cx cy w h), got {len(tokens)}: {line.strip()!r}", txt, at)
                continue
            try:
                cls, cx, cy, w, h = (float(t) for t in tokens)
            except ValueError:
                log.add(f"cannot parse the numbers {line.strip()!r} (class cx cy w h)", txt, at)
                continue
            if not all(math.isfinite(v) for v in (cls, cx, cy, w, h)):
                log.add(f"non-finite number in {line.strip()!r}", txt, at)
                continue
            if not cls.is_integer() or cls < 0 or (num_classes is not None and cls >= num_classes):
                log.add(f"class id {tokens[0]} out of range: expected an integer in [0, {num_classes})"
                        if num_classes is not None else f"class id must be an integer >= 0, got {tokens[0]}",
                        txt, at)
                continue
            if w < 0 or h < 0:
                log.add(f"negative width or height gives x2 < x1 or y2 < y1: {line.strip()!r}", txt, at)
                continue
            box = ((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height)
            problem = C.xyxy_problem(*box)  # huge finite values overflow to inf in pixels
            if problem:
                log.add(f"{problem} in pixels of the {width} x {height} image: {line.strip()!r}", txt, at)
                continue
            boxes.append(box)
            labels.append(int(cls))
        records.append(DetectionRecord(image=image, width=width, height=height,
                                       boxes=np.array(boxes, np.float64).reshape(-1, 4),
                                       labels=np.array(labels, np.int64), image_id=image.stem))
    if class_names is None:
        top = max((int(r.labels.max()) for r in records if len(r)), default=-1)
        class_names = [str(i) for i in range(top + 1)]
    return log.finish(DetectionAnnotations(class_names=class_names, records=records))


def _number(value: float) -> str:
    return f"{value:.12g}"


def write(annotations: DetectionAnnotations, root, split: str = "train", *, images: str = "copy") -> Path:
    """Writes one split as a YOLO detection dataset; see the module docstring.

    Args:
        annotations (DetectionAnnotations): what to write. Each record's width and height must
            be its image file's size (boxes are normalized by them).
        root (str or PathLike): the dataset folder (created when missing). Other splits in it
            are kept (``data.yaml`` gains a key); the split itself must not exist yet.
        split (str): the split name.
        images (str): ``"copy"`` or ``"move"`` the image files into ``images/<split>/``.

    Returns:
        Path: ``root``.
    """
    C.check_detection(annotations)
    root = C.check_root(root, must_exist=False)
    C.check_split_name(split)
    transfer = C.ImageTransfer(images)
    data = _load_yaml(root) if root.is_dir() else None
    split_dir = root / "images" / split
    found = sorted(_splits(root, data)) if root.is_dir() else []
    if split_dir.is_dir() and any(split_dir.iterdir()) and split not in found:
        found.append(split)
    C.refuse_existing_split(split, found, root, _FMT)
    sources = C.check_sources(r.image for r in annotations.records)
    for rec, src in zip(annotations.records, sources):
        size = image_size(src)
        if size != (rec.width, rec.height):
            raise ValueError(f"the record of {src} says {rec.width} x {rec.height} but the image is "
                             f"{size[0]} x {size[1]}; YOLO boxes are normalized by the image size")

    data = {} if data is None else data
    existing = _class_names(root, data) if data else None
    class_names, remap = C.merge_class_names(existing, annotations.class_names)

    names = C.unique_names(sources, distinct_stems=True)
    split_dir.mkdir(parents=True, exist_ok=True)  # also for a split without images
    for rec, src, name in zip(annotations.records, sources, names):
        w, h = float(rec.width), float(rec.height)
        lines = []
        for (x1, y1, x2, y2), label in zip(rec.boxes.tolist(), remap[rec.labels].tolist()):
            cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
            lines.append(f"{label} {_number(cx)} {_number(cy)} {_number(bw)} {_number(bh)}\n")
        C.write_small_text(root / "labels" / split / (Path(name).stem + ".txt"), "".join(lines))
        transfer(src, split_dir / name)

    base = _base(root, data)
    if [C.natural_key(n) for n in names] == sorted(C.natural_key(n) for n in names):
        data[split] = Path(os.path.relpath(split_dir, base)).as_posix()
    else:  # a list file keeps the order of the records
        list_file = C.write_text(root / f"{split}.txt", "".join(f"./images/{split}/{n}\n" for n in names))
        data[split] = Path(os.path.relpath(list_file, base)).as_posix()
    data["nc"] = len(class_names)
    data["names"] = class_names
    C.write_text(root / "data.yaml", yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return root
