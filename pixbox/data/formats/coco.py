"""The COCO detection layout (``instances_*.json``).

Layout::

    root/
      annotations/instances_<split>.json
      images/<split>/<file_name>        (read also from root/<split>2017/ and root/<split>/)

The JSON holds ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations``
(``id``, ``image_id``, ``category_id``, ``bbox`` = ``[x, y, width, height]`` in pixels,
``iscrowd``) and ``categories`` (``id``, ``name``).

- Labels are ``0 .. C-1`` in category-id order (COCO's ids 1..90 with gaps become 0..79).
- ``iscrowd`` is kept; segmentations are ignored.
- Images are in the order of the ``images`` list; an image without annotations has no boxes.
- Width and height come from the image file header. The JSON's ``width`` and ``height``, when
  given, must match it: boxes are in the pixels of that size, so a mismatch is a problem
  (reported against the image id), never silently rescaled or clipped.
- ``file_name`` must stay inside the dataset folder: ``../`` paths and absolute paths outside
  ``root`` are problems unless ``allow_outside=True``.

The writer writes category ids ``1 .. C``, ``area`` (box area) and ``iscrowd``, keeps integer
image ids when they are unique (else numbers the images from 1), and an empty
``segmentation``. COCO has no ``difficult`` flag: it is not written and reads back as False.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from pixbox._checks import is_int
from pixbox.data.annotations import DatasetError, DetectionAnnotations, DetectionRecord
from pixbox.data.formats import _common as C

__all__ = ["LOOKED_FOR", "list_splits", "looks_like", "read", "write"]

#: What :func:`looks_like` and :func:`list_splits` look for (for error messages).
LOOKED_FOR = "root/annotations/instances_<split>.json"
_FMT = "coco"
_PREFIX = "instances_"


def _json_files(root: Path) -> dict[str, Path]:
    folder = root / "annotations"
    if not folder.is_dir():
        return {}
    return {p.stem[len(_PREFIX):]: p for p in sorted(folder.glob(f"{_PREFIX}*.json"))
            if len(p.stem) > len(_PREFIX)}


def list_splits(root) -> list[str]:
    """The splits of a COCO dataset folder (``annotations/instances_<split>.json``), sorted.

    Args:
        root (str or PathLike): the dataset folder.

    Returns:
        list[str]: the split names (``[]`` when there are none).
    """
    return sorted(_json_files(C.check_root(root)))


def looks_like(root) -> bool:
    """Whether ``root/annotations/`` holds an ``instances_<split>.json``."""
    return bool(_json_files(C.check_root(root)))


def _image_dir(root: Path, split: str) -> Path:
    for folder in (root / "images" / split, root / f"{split}2017", root / split, root / "images"):
        if folder.is_dir():
            return folder
    return root / "images" / split


def _json_size(value) -> int | None:
    """An image ``width`` or ``height`` from the JSON: a positive whole number (``640`` or ``640.0``), else None."""
    if not (is_int(value) or isinstance(value, float)):
        return None
    return int(value) if value > 0 and float(value).is_integer() else None


def read(root, split: str = "train", *, on_error: str = "raise", allow_outside: bool = False) -> DetectionAnnotations:
    """Reads one split of a COCO detection dataset; see the module docstring.

    Args:
        root (str or PathLike): the dataset folder.
        split (str): the split name, e.g. ``"train"`` or ``"val2017"``.
        on_error (str): ``"raise"`` (the first problem raises :class:`DatasetError`) or
            ``"skip"`` (bad annotations, categories and images are skipped and listed in
            ``.problems``, with one warning).
        allow_outside (bool): accept a ``file_name`` outside ``root`` (absolute, or with
            ``../``); refused by default.

    Returns:
        DetectionAnnotations: absolute image paths, ``iscrowd`` kept, ``image_id`` the COCO id.
    """
    root = C.check_root(root)
    C.check_allow_outside(allow_outside)
    files = _json_files(root)
    C.check_split_exists(split, sorted(files), root, _FMT, LOOKED_FOR)
    log = C.ProblemLog(on_error, f"{_FMT} split {split!r} of {root}")
    path = files[split]
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise DatasetError(f"cannot read JSON: {e}", path) from e
    except RecursionError:
        raise DatasetError("cannot read JSON: nested too deeply (a COCO file is a few levels deep)", path) from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DatasetError("expected a JSON object with an 'images' list", path)
    for key in ("annotations", "categories"):
        if not isinstance(data.get(key, []), list):
            raise DatasetError(f"'{key}' must be a list", path)

    # Categories -> labels 0..C-1 in id order.
    categories: dict[int, str] = {}
    for k, cat in enumerate(data.get("categories", [])):
        cid = cat.get("id") if isinstance(cat, dict) else None
        name = cat.get("name") if isinstance(cat, dict) else None
        where = f"category {cid}" if is_int(cid) else f"categories[{k}]"
        if not is_int(cid) or not isinstance(name, str) or not name:
            log.add("a category needs an integer 'id' and a non-empty 'name'", path, where)
        elif cid in categories:
            log.add(f"duplicate category id {cid}", path, where)
        elif name in categories.values():
            log.add(f"duplicate category name {name!r}", path, where)
        else:
            categories[cid] = name
    cat_ids = sorted(categories)
    label_of = {cid: i for i, cid in enumerate(cat_ids)}
    class_names = [categories[cid] for cid in cat_ids]

    # Images, in the order of the list.
    image_dir = _image_dir(root, split)
    images: dict[int, dict] = {}
    for k, img in enumerate(data["images"]):
        iid = img.get("id") if isinstance(img, dict) else None
        where = f"image id {iid}" if is_int(iid) else f"images[{k}]"
        file_name = img.get("file_name") if isinstance(img, dict) else None
        if not is_int(iid) or not isinstance(file_name, str) or not file_name:
            log.add("an image needs an integer 'id' and a 'file_name'", path, where)
            continue
        if iid in images:
            log.add(f"duplicate image id {iid}", path, where)
            continue
        image = Path(os.path.abspath(image_dir / file_name))
        if not allow_outside and not C.is_inside(image, root):
            log.add(C.outside_message("file_name", file_name, root), path, where)
            continue
        size = C.header_size(image, log, path, where)
        if size is None:
            continue
        given = (img.get("width"), img.get("height"))
        if given != (None, None) and (_json_size(given[0]), _json_size(given[1])) != size:
            log.add(f"the JSON gives the size {given[0]!r} x {given[1]!r} but the image file {file_name} is "
                    f"{size[0]} x {size[1]} (width x height); fix width and height (boxes are in the pixels "
                    "of the image)", path, where)
            continue
        width, height = size
        images[iid] = {"image": image, "width": width, "height": height, "boxes": [], "labels": [],
                       "iscrowd": []}

    known_ids = {img.get("id") for img in data["images"] if isinstance(img, dict) and is_int(img.get("id"))}
    for k, ann in enumerate(data.get("annotations", [])):
        aid = ann.get("id") if isinstance(ann, dict) else None
        where = f"annotation id {aid}" if aid is not None else f"annotations[{k}]"
        if not isinstance(ann, dict):
            log.add("an annotation must be a JSON object", path, where)
            continue
        iid, cid, bbox = ann.get("image_id"), ann.get("category_id"), ann.get("bbox")
        if not is_int(iid) or iid not in known_ids:
            log.add(f"unknown image_id {iid!r}", path, where)
            continue
        if iid not in images:  # the image itself was skipped (and reported)
            continue
        if not is_int(cid) or cid not in label_of:
            log.add(f"unknown category_id {cid!r} (categories: {cat_ids})", path, where)
            continue
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)):
            log.add(f"bbox must be a list of 4 numbers [x, y, width, height], got {bbox!r}", path, where)
            continue
        x, y, w, h = (float(v) for v in bbox)
        problem = C.xyxy_problem(x, y, x + w, y + h) if all(map(math.isfinite, (x, y, w, h))) \
            else f"non-finite bbox {bbox}"
        if problem:
            log.add(f"{problem} (bbox [x, y, w, h] = {bbox})", path, where)
            continue
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1, True, False):
            log.add(f"iscrowd must be 0 or 1, got {crowd!r}", path, where)
            continue
        entry = images[iid]
        entry["boxes"].append((x, y, x + w, y + h))
        entry["labels"].append(label_of[cid])
        entry["iscrowd"].append(bool(crowd))

    records = [DetectionRecord(image=e["image"], width=e["width"], height=e["height"],
                               boxes=np.array(e["boxes"], np.float64).reshape(-1, 4),
                               labels=np.array(e["labels"], np.int64),
                               iscrowd=np.array(e["iscrowd"], bool), image_id=iid)
               for iid, e in images.items()]
    return log.finish(DetectionAnnotations(class_names=class_names, records=records))


def write(annotations: DetectionAnnotations, root, split: str = "train", *, images: str = "copy") -> Path:
    """Writes one split as a COCO detection dataset; see the module docstring.

    Args:
        annotations (DetectionAnnotations): what to write.
        root (str or PathLike): the dataset folder (created when missing). Other splits in it
            are kept; the split itself must not exist yet.
        split (str): the split name.
        images (str): ``"copy"`` or ``"move"`` the image files into ``images/<split>/``.

    Returns:
        Path: ``root``.
    """
    C.check_detection(annotations)
    root = C.check_root(root, must_exist=False)
    C.check_split_name(split)
    transfer = C.ImageTransfer(images)
    C.refuse_existing_split(split, sorted(_json_files(root)), root, _FMT)
    sources = C.check_sources(r.image for r in annotations.records)

    ids = [r.image_id for r in annotations.records]
    if not (all(is_int(i) for i in ids)
            and len(set(int(i) for i in ids)) == len(ids)):
        ids = list(range(1, len(ids) + 1))
    names = C.unique_names(sources)
    image_list, ann_list = [], []
    for rec, iid, name in zip(annotations.records, ids, names):
        image_list.append({"id": int(iid), "file_name": name, "width": rec.width, "height": rec.height})
        for box, label, crowd in zip(rec.boxes.tolist(), rec.labels.tolist(), rec.iscrowd.tolist()):
            x1, y1, x2, y2 = box
            w, h = x2 - x1, y2 - y1
            ann_list.append({"id": len(ann_list) + 1, "image_id": int(iid), "category_id": label + 1,
                             "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": int(crowd),
                             "segmentation": []})
    data = {"info": {"description": "written by pixbox"}, "licenses": [], "images": image_list,
            "annotations": ann_list,
            "categories": [{"id": i + 1, "name": n, "supercategory": ""}
                           for i, n in enumerate(annotations.class_names)]}
    for src, name in zip(sources, names):
        transfer(src, root / "images" / split / name)
    C.write_text(root / "annotations" / f"{_PREFIX}{split}.json", json.dumps(data, separators=(",", ":")))
    return root
