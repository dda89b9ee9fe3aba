"""The Pascal VOC detection layout.

Layout::

    root/
      classes.txt                      optional (the writer writes it): one class name per line
      Annotations/<id>.xml             one XML file per image
      JPEGImages/<id>.<ext>            the images (any image suffix)
      ImageSets/Main/<split>.txt       the image ids of a split, one per line

Each ``<object>`` of an XML file has ``<name>``, an optional ``<difficult>`` (0/1, kept) and
``<bndbox>`` with ``<xmin> <ymin> <xmax> <ymax>``.

**Coordinates.** VOC numbers pixels from 1 and its boxes are inclusive: an object covering the
pixel columns 1..10 has ``xmin=1, xmax=10``. pixbox boxes are pixel edges from 0 (the same
object is ``x1=0, x2=10``), so reading does ``x1 = xmin - 1``, ``y1 = ymin - 1``,
``x2 = xmax``, ``y2 = ymax`` and writing does the inverse. Integral values are written as
integers and others as exact decimals, so a round trip keeps every box exactly.

**Class names.** ``root/classes.txt`` when present (an object of another class is a problem);
else the 20 VOC object classes (in VOC order) when every name in the split is one of them;
else the sorted unique names of the split.

Class-specific lists such as ``ImageSets/Main/cat_train.txt`` (two columns: id and 1, -1 or 0,
beside a ``train.txt``) are not splits; every other ``.txt`` file is. An image id is the whole
line, so ids with spaces (``my photo``) round-trip.
The image width and height come from the image file header (XML ``<size>`` is often wrong).
VOC has no ``iscrowd``: it is not written and reads back as False.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from pixbox.data.annotations import DetectionAnnotations, DetectionRecord
from pixbox.data.formats import _common as C

__all__ = ["LOOKED_FOR", "VOC_OBJECT_CLASSES", "list_splits", "looks_like", "read", "write"]

#: What :func:`looks_like` and :func:`list_splits` look for (for error messages).
LOOKED_FOR = "root/Annotations/ and root/ImageSets/Main/<split>.txt"
#: The 20 VOC object classes, in the VOC order (no background).
VOC_OBJECT_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)
_FMT = "voc"
_BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


def list_splits(root) -> list[str]:
    """The splits of a VOC dataset folder (``ImageSets/Main/<split>.txt``), sorted.

    Args:
        root (str or PathLike): the dataset folder.

    Returns:
        list[str]: the split names (``[]`` when there are none).
    """
    return sorted(C.id_list_files(C.check_root(root) / "ImageSets" / "Main"))


def looks_like(root) -> bool:
    """Whether ``root`` has ``Annotations/`` and ``ImageSets/Main/``."""
    root = C.check_root(root)
    return (root / "Annotations").is_dir() and (root / "ImageSets" / "Main").is_dir()


def _parse_xml(xml_path: Path, log: C.ProblemLog, known: set[str] | None):
    """``(filename or None, [(name, [x1, y1, x2, y2], difficult)])``, or None if unreadable."""
    try:
        tree = ET.parse(xml_path)
    except (ET.ParseError, OSError) as e:
        log.add(f"cannot parse XML: {e}", xml_path)
        return None
    ann = tree.getroot()
    filename = (ann.findtext("filename") or "").strip() or None
    objects = []
    for k, obj in enumerate(ann.findall("object"), 1):
        where = f"object {k}"
        name = (obj.findtext("name") or "").strip()
        if not name:
            log.add("missing <name> tag", xml_path, where)
            continue
        if known is not None and name not in known:
            log.add(f"unknown category {name!r} (not in classes.txt)", xml_path, where)
            continue
        difficult_text = (obj.findtext("difficult") or "0").strip()
        try:
            difficult = bool(int(float(difficult_text)))
        except ValueError:
            log.add(f"cannot parse <difficult> {difficult_text!r}", xml_path, where)
            continue
        bndbox = obj.find("bndbox")
        if bndbox is None:
            log.add(f"missing <bndbox> tag in object {name!r}", xml_path, where)
            continue
        values = []
        for tag in _BOX_TAGS:
            text = (bndbox.findtext(tag) or "").strip()
            if not text:
                log.add(f"missing <{tag}> tag in the <bndbox> of object {name!r}", xml_path, where)
                break
            try:
                values.append(float(text))
            except ValueError:
                log.add(f"cannot parse <{tag}> {text!r} as a number", xml_path, where)
                break
        if len(values) < 4:
            continue
        xmin, ymin, xmax, ymax = values
        box = [xmin - 1.0, ymin - 1.0, xmax, ymax]  # 1-based inclusive -> pixel edges
        problem = C.xyxy_problem(*box)
        if problem:
            log.add(f"{problem} (VOC xmin={xmin:g} ymin={ymin:g} xmax={xmax:g} ymax={ymax:g})", xml_path, where)
            continue
        objects.append((name, box, difficult))
    return filename, objects


def read(root, split: str = "train", *, on_error: str = "raise", allow_outside: bool = False) -> DetectionAnnotations:
    """Reads one split of a VOC detection dataset; see the module docstring.

    Args:
        root (str or PathLike): the dataset folder (``VOCdevkit/VOC2012``, say).
        split (str): the split name, e.g. ``"train"`` or ``"trainval"``.
        on_error (str): ``"raise"`` (the first problem raises :class:`DatasetError`) or
            ``"skip"`` (bad objects and images are skipped and listed in ``.problems``, with one
            warning).
        allow_outside (bool): accept image ids whose annotation file lies outside ``root``
            (``../x``); refused by default.

    Returns:
        DetectionAnnotations: images in the order of the split file; absolute image paths;
        sizes from the image headers; ``difficult`` kept.
    """
    root = C.check_root(root)
    C.check_allow_outside(allow_outside)
    files = C.id_list_files(root / "ImageSets" / "Main")
    C.check_split_exists(split, sorted(files), root, _FMT, LOOKED_FOR)
    log = C.ProblemLog(on_error, f"{_FMT} split {split!r} of {root}")
    classes_txt = root / "classes.txt"
    class_names = C.read_class_names(classes_txt) if classes_txt.is_file() else None
    known = None if class_names is None else set(class_names)
    image_dir = root / "JPEGImages"
    by_stem = C.list_images(image_dir)
    names_in_folder = set(by_stem.values())

    parsed = []  # (image path, image id, objects)
    for line, image_id in C.read_ids(files[split]):
        xml_path = root / "Annotations" / f"{image_id}.xml"
        if not allow_outside and not C.is_inside(xml_path, root):
            log.add(C.outside_message("image id", image_id, root), files[split], f"line {line}")
            continue
        if not xml_path.is_file():
            log.add(f"annotation file {xml_path} not found", files[split], f"line {line}")
            continue
        result = _parse_xml(xml_path, log, known)
        if result is None:
            continue
        filename, objects = result
        name = filename if filename in names_in_folder else by_stem.get(image_id)
        if name is None:
            log.add(f"image file not found: {image_dir / (filename or image_id + '.jpg')}", xml_path)
            continue
        image = Path(os.path.abspath(image_dir / name))
        size = C.header_size(image, log, xml_path)
        if size is None:
            continue
        width, height = size
        parsed.append((image, width, height, image_id, objects))

    if class_names is None:
        found = {name for *_, objects in parsed for name, _, _ in objects}
        class_names = list(VOC_OBJECT_CLASSES) if found <= set(VOC_OBJECT_CLASSES) else sorted(found)
    index = {n: i for i, n in enumerate(class_names)}
    records = []
    for image, width, height, image_id, objects in parsed:
        records.append(DetectionRecord(
            image=image, width=width, height=height,
            boxes=np.array([box for _, box, _ in objects], np.float64).reshape(-1, 4),
            labels=np.array([index[name] for name, _, _ in objects], np.int64),
            difficult=np.array([d for _, _, d in objects], bool), image_id=image_id))
    return log.finish(DetectionAnnotations(class_names=class_names, records=records))


def _xml(filename: str, width: int, height: int, objects) -> str:
    lines = ["<annotation>", "\t<folder>JPEGImages</folder>", f"\t<filename>{escape(filename)}</filename>",
             "\t<size>", f"\t\t<width>{width}</width>", f"\t\t<height>{height}</height>",
             "\t\t<depth>3</depth>", "\t</size>", "\t<segmented>0</segmented>"]
    for name, (x1, y1, x2, y2), difficult in objects:
        # pixel edges from 0 -> VOC 1-based inclusive
        coords = zip(_BOX_TAGS, (x1 + 1.0, y1 + 1.0, x2, y2))
        lines += ["\t<object>", f"\t\t<name>{escape(name)}</name>", "\t\t<pose>Unspecified</pose>",
                  "\t\t<truncated>0</truncated>", f"\t\t<difficult>{int(difficult)}</difficult>",
                  "\t\t<bndbox>", *(f"\t\t\t<{t}>{C.format_number(v)}</{t}>" for t, v in coords),
                  "\t\t</bndbox>", "\t</object>"]
    lines.append("</annotation>")
    return "\n".join(lines) + "\n"


def write(annotations: DetectionAnnotations, root, split: str = "train", *, images: str = "copy") -> Path:
    """Writes one split as a VOC detection dataset; see the module docstring.

    The image id is the image file stem. ``Annotations/`` and ``JPEGImages/`` are shared by all
    splits: an image already there with the same bytes and annotation (an image in both
    ``train`` and ``trainval``) keeps its id; any other clash gets a new id ``<stem>_1``, ...

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
    C.refuse_existing_split(split, sorted(C.id_list_files(root / "ImageSets" / "Main")), root, _FMT)
    sources = C.check_sources(r.image for r in annotations.records)
    C.check_id_list(split, [C.line_id(p.stem) for p in sources], root / "ImageSets" / "Main", _FMT)

    classes_txt = root / "classes.txt"
    existing = C.read_class_names(classes_txt) if classes_txt.is_file() else None
    class_names, remap = C.merge_class_names(existing, annotations.class_names)

    image_dir, xml_dir = root / "JPEGImages", root / "Annotations"
    on_disk = C.list_images(image_dir)  # stem -> file name, from other splits
    used: set[str] = set()
    ids = []
    for rec, src in zip(annotations.records, sources):
        objects = [(class_names[label], box.tolist(), d)
                   for box, label, d in zip(rec.boxes, remap[rec.labels], rec.difficult)]
        stem, k = C.line_id(src.stem), 0
        while True:
            image_id = stem if k == 0 else f"{stem}_{k}"
            k += 1
            filename = image_id + src.suffix
            text = _xml(filename, rec.width, rec.height, objects)
            if image_id in used:
                continue
            xml_path = xml_dir / f"{image_id}.xml"
            taken = image_id in on_disk or xml_path.exists()
            if not taken:
                break
            # Already written by another split: reuse only if it is the very same image and annotation.
            if (on_disk.get(image_id) == filename and xml_path.is_file()
                    and C.same_file_content(src, image_dir / filename)
                    and xml_path.read_text(encoding="utf-8") == text):
                break
        used.add(image_id)
        ids.append(image_id)
        C.write_small_text(xml_dir / f"{image_id}.xml", text)
        transfer(src, image_dir / filename)
    if class_names != existing:
        C.write_text(classes_txt, "".join(f"{n}\n" for n in class_names))
    C.write_text(root / "ImageSets" / "Main" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
    return root
