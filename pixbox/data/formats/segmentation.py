"""The Pascal VOC semantic segmentation layout.

Layout::

    root/
      classes.txt                          optional: one class name per line, background first
      JPEGImages/<id>.<ext>                the images (any image suffix)
      SegmentationClass/<id>.png           the masks: palette PNGs of class indices, 255 = ignore
      ImageSets/Segmentation/<split>.txt   the image ids of a split, one per line

Class names come from ``root/classes.txt`` when present, else they are
:data:`pixbox.data.io.VOC_CLASSES` (21 names, ``"background"`` first). Masks are decoded by
:func:`pixbox.data.io.read_mask`.

The reader checks that each image and mask exists and has the same size (from the file
headers); it never decodes the pixels.

Note: ``classes.txt`` is also the class list of the VOC *detection* layout
(:mod:`pixbox.data.formats.voc`), which has no background class, so one folder cannot hold a
detection and a segmentation data set with custom class names at the same time.
"""

from __future__ import annotations

import os
from pathlib import Path

from pixbox.data.annotations import SegmentationAnnotations
from pixbox.data.formats import _common as C
from pixbox.data.io import VOC_CLASSES, read_mask, write_mask

__all__ = ["list_voc_segmentation_splits", "read_voc_segmentation", "write_voc_segmentation"]

_LOOKED_FOR = "root/ImageSets/Segmentation/<split>.txt"
_FMT = "voc segmentation"


def list_voc_segmentation_splits(root) -> list[str]:
    """The splits of a VOC segmentation folder (``ImageSets/Segmentation/<split>.txt``), sorted.

    Args:
        root (str or PathLike): the dataset folder.

    Returns:
        list[str]: the split names (``[]`` when there are none).
    """
    return sorted(C.id_list_files(C.check_root(root) / "ImageSets" / "Segmentation"))


def read_voc_segmentation(root, split: str = "train", *, on_error: str = "raise") -> SegmentationAnnotations:
    """Reads one split of a VOC segmentation dataset; see the module docstring.

    Args:
        root (str or PathLike): the dataset folder (``VOCdevkit/VOC2012``, say).
        split (str): the split name, e.g. ``"train"`` or ``"val"``.
        on_error (str): ``"raise"`` (the first problem raises :class:`DatasetError`) or
            ``"skip"`` (samples with a missing or mismatched image or mask are skipped and
            listed in ``.problems``, with one warning).

    Returns:
        SegmentationAnnotations: absolute ``(image, mask)`` paths in the order of the split file.
    """
    root = C.check_root(root)
    files = C.id_list_files(root / "ImageSets" / "Segmentation")
    C.check_split_exists(split, sorted(files), root, _FMT, _LOOKED_FOR)
    log = C.ProblemLog(on_error, f"{_FMT} split {split!r} of {root}")
    classes_txt = root / "classes.txt"
    class_names = C.read_class_names(classes_txt) if classes_txt.is_file() else list(VOC_CLASSES)
    by_stem = C.list_images(root / "JPEGImages")
    mask_dir = root / "SegmentationClass"
    masks = set(os.listdir(mask_dir)) if mask_dir.is_dir() else set()

    samples = []
    for line, image_id in C.read_ids(files[split]):
        where = f"line {line}"
        if image_id not in by_stem:
            log.add(f"image file not found: no {root / 'JPEGImages' / (image_id + '.*')}", files[split], where)
            continue
        if f"{image_id}.png" not in masks:
            log.add(f"mask file not found: {mask_dir / (image_id + '.png')}", files[split], where)
            continue
        image = Path(os.path.abspath(root / "JPEGImages" / by_stem[image_id]))
        mask = Path(os.path.abspath(mask_dir / f"{image_id}.png"))
        image_wh = C.header_size(image, log, files[split], where)
        mask_wh = None if image_wh is None else C.header_size(mask, log, files[split], where)
        if mask_wh is None:
            continue
        if image_wh != mask_wh:
            log.add(f"the mask is {mask_wh[0]} x {mask_wh[1]} but the image is {image_wh[0]} x {image_wh[1]}",
                    mask)
            continue
        samples.append((image, mask))
    return log.finish(SegmentationAnnotations(class_names=class_names, samples=samples))


def write_voc_segmentation(annotations: SegmentationAnnotations, root, split: str = "train", *,
                           images: str = "copy") -> Path:
    """Writes one split as a VOC segmentation dataset; see the module docstring.

    The id of a sample is its image file stem (made unique with ``_1``, ``_2``, ... when it
    clashes with another image). Masks are copied as they are when they are PNG files, and
    re-encoded as palette PNGs otherwise. ``classes.txt`` is written unless the class names
    are :data:`~pixbox.data.io.VOC_CLASSES`.

    Args:
        annotations (SegmentationAnnotations): what to write.
        root (str or PathLike): the dataset folder (created when missing). Other splits in it
            are kept; the split itself must not exist yet, and an existing ``classes.txt`` must
            list the same class names.
        split (str): the split name.
        images (str): ``"copy"`` or ``"move"`` the image and mask files into the dataset.

    Returns:
        Path: ``root``.
    """
    if not isinstance(annotations, SegmentationAnnotations):
        raise TypeError(f"annotations must be a SegmentationAnnotations, got {type(annotations).__name__}")
    C.check_names_for_lines(annotations.class_names, "voc segmentation")
    root = C.check_root(root, must_exist=False)
    C.check_split_name(split)
    transfer = C.ImageTransfer(images)
    C.refuse_existing_split(split, sorted(C.id_list_files(root / "ImageSets" / "Segmentation")), root, _FMT)
    image_sources = C.check_sources(i for i, _ in annotations.samples)
    mask_sources = C.check_sources(m for _, m in annotations.samples)
    classes_txt = root / "classes.txt"
    existing = C.read_class_names(classes_txt) if classes_txt.is_file() else None
    if existing is not None and existing != annotations.class_names:
        raise ValueError(f"{classes_txt} lists the classes {existing}, but annotations.class_names is "
                         f"{annotations.class_names}; write to another folder")

    image_dir, mask_dir = root / "JPEGImages", root / "SegmentationClass"
    on_disk = C.list_images(image_dir)
    ids: list[str] = []
    C.check_id_list(split, [C.line_id(p.stem) for p in image_sources], root / "ImageSets" / "Segmentation", _FMT)
    for image, mask in zip(image_sources, mask_sources):
        stem, k = C.line_id(image.stem), 0
        while True:
            image_id = stem if k == 0 else f"{stem}_{k}"
            k += 1
            filename = image_id + image.suffix
            if image_id in ids:
                continue
            taken = image_id in on_disk or (mask_dir / f"{image_id}.png").exists()
            # Reuse an id another split wrote only for the very same image and mask.
            if not taken or (on_disk.get(image_id) == filename
                             and C.same_file_content(image, image_dir / filename)
                             and mask.suffix.lower() == ".png"
                             and C.same_file_content(mask, mask_dir / f"{image_id}.png")):
                break
        ids.append(image_id)
        transfer(image, image_dir / filename)
        if mask.suffix.lower() == ".png":
            transfer(mask, mask_dir / f"{image_id}.png")
        else:
            write_mask(read_mask(mask), mask_dir / f"{image_id}.png")
            if images == "move":
                os.unlink(mask)
    if existing is None and annotations.class_names != list(VOC_CLASSES):
        C.write_text(classes_txt, "".join(f"{n}\n" for n in annotations.class_names))
    C.write_text(root / "ImageSets" / "Segmentation" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
    return root
