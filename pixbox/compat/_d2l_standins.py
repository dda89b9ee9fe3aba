"""pixbox's offline stand-ins for the D2L book's data sets, written in the book's layouts.

Each writer renders its images with :mod:`pixbox.data.generators` (seeded: the same seed gives
the same files) into ``target`` and records what it wrote in ``target/.pixbox-standin.json``
(:data:`MARKER`), which is how :func:`~pixbox.compat.d2l.download_extract` tells a stand-in from
a real copy of the book's data.

=====================  ==========================================  ===============================
book name              layout (as the book's archive extracts)      content
=====================  ==========================================  ===============================
``banana-detection``   ``bananas_{train,val}/label.csv``,           1000 / 100 images of 256 px,
                       ``bananas_{train,val}/images/<i>.png``       one banana each (pixbox's
                                                                    banana generator)
``voc2012``            ``VOCdevkit/VOC2012/JPEGImages/<id>.jpg``,   1464 train / 1449 val images;
                       ``SegmentationClass/<id>.png`` (VOC          1114 / 1078 of them 360 x 480,
                       palette), ``ImageSets/Segmentation/          the others 240 x 320 (smaller
                       {train,val,trainval}.txt``                   than the book's 320 x 480
                                                                    crop), as in VOC 2012; pixbox's
                                                                    5 segmentation classes as VOC
                                                                    indices 1-5
``hotdog``             ``hotdog/{train,test}/{hotdog,not-hotdog}/   1000 + 1000 / 400 + 400 images
                       <i>.png``                                    of 96-160 px: a banana-like
                                                                    object vs. pixbox's 5 other
                                                                    object classes
=====================  ==========================================  ===============================

The counts are the book's, so the book's printed counts (``read 1000 training examples``,
``read 1114 examples``) come out the same.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from pixbox._files import _umask, atomic_open
from pixbox.data.generators import _writing
from pixbox.data.generators.bananas import render_banana
from pixbox.data.generators.classification import CLASS_NAMES as _OBJECT_CLASSES
from pixbox.data.generators.classification import render_object
from pixbox.data.generators.segmentation import render_segmentation
from pixbox.data.io import write_image, write_mask

__all__ = ["MARKER", "STANDINS", "is_standin", "write_standin"]

#: The file in a stand-in's folder that marks it as generated (and records how).
MARKER = ".pixbox-standin.json"

_BANANAS = {"train": 1000, "val": 100}
# VOC 2012 segmentation: images per split, and how many of them are at least the book's
# 320 x 480 crop (VOCSegDataset keeps only those).
_VOC = {"train": (1464, 1114), "val": (1449, 1078)}
_VOC_BIG, _VOC_SMALL = (360, 480), (240, 320)  # (height, width)
_HOTDOG = {"train": 1000, "test": 400}  # per class
_HOTDOG_SIZES = (96, 112, 128, 144, 160)


def _write_bananas(root: Path, seed: int) -> dict:
    for split, count in _BANANAS.items():
        folder = root / f"bananas_{split}"
        rows = []
        for i in range(count):
            scene = render_banana(256, seed=(seed, _writing.SPLITS[split], i))
            write_image(scene.image, folder / "images" / f"{i}.png", compress_level=1)
            rows.append([f"{i}.png", 0, *(int(round(v)) for v in scene.boxes[0].tolist())])
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["img_name", "label", "xmin", "ymin", "xmax", "ymax"])
        writer.writerows(rows)
        (folder / "label.csv").write_text(out.getvalue())
    return {split: count for split, count in _BANANAS.items()}


def _write_voc(root: Path, seed: int) -> dict:
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    ids_of = {}
    for split, (count, big) in _VOC.items():
        s = _writing.SPLITS[split]
        # Which images are big: a seeded choice, with the first five big (the book shows them).
        order = np.random.default_rng([seed, s, 7]).permutation(np.arange(5, count))
        is_big = np.zeros(count, bool)
        is_big[:5] = True
        is_big[order[:big - 5]] = True
        ids = []
        for i in range(count):
            h, w = _VOC_BIG if is_big[i] else _VOC_SMALL
            image, mask = render_segmentation(w, seed=(seed, s, i))
            top = (w - h) // 2
            image, mask = image[:, top:top + h], mask[top:top + h]
            name = f"{split}_{i:06d}"
            write_image(image, root / "JPEGImages" / f"{name}.jpg", quality=95)
            write_mask(mask, root / "SegmentationClass" / f"{name}.png")
            ids.append(name)
        (sets / f"{split}.txt").write_text("".join(f"{n}\n" for n in ids))
        ids_of[split] = ids
    (sets / "trainval.txt").write_text("".join(f"{n}\n" for n in ids_of["train"] + ids_of["val"]))
    return {split: count for split, (count, _) in _VOC.items()}


def _write_hotdog(root: Path, seed: int) -> dict:
    others = [k for k, name in enumerate(_OBJECT_CLASSES) if name != "banana"]
    banana = _OBJECT_CLASSES.index("banana")
    for s, (split, per_class) in enumerate(_HOTDOG.items()):
        rng = np.random.default_rng([seed, s, 11])
        for c, folder in enumerate(("hotdog", "not-hotdog")):
            for i in range(per_class):
                label = banana if c == 0 else others[int(rng.integers(len(others)))]
                size = int(rng.choice(_HOTDOG_SIZES))
                image = render_object(label, size, seed=(seed, s, c, i))
                write_image(image, root / split / folder / f"{i}.png", compress_level=1)
    return {split: 2 * n for split, n in _HOTDOG.items()}


#: The book's data names with a stand-in: name -> (writer, what a user is told it is, the folder
#: the book's archive extracts to, relative to ``../data``).
STANDINS: dict[str, tuple[Callable[[Path, int], dict], str, str]] = {
    "banana-detection": (_write_bananas, "1000/100 generated banana images", "banana-detection"),
    "voc2012": (_write_voc, "a generated VOC-layout segmentation set (1464/1449 images, 5 classes)",
                os.path.join("VOCdevkit", "VOC2012")),
    "hotdog": (_write_hotdog, "generated hotdog/not-hotdog images (2000/800)", "hotdog"),
}


def is_standin(folder) -> bool:
    """Whether ``folder`` holds a stand-in written by :func:`write_standin`."""
    return (Path(folder) / MARKER).is_file()


def write_standin(name: str, target, *, seed: int = 0) -> Path:
    """Writes the stand-in of book data set ``name`` (a key of :data:`STANDINS`) to ``target``.

    The files are written to a temporary folder next to ``target`` and moved into place at
    the end, so an interrupted run leaves no half-written data set behind.

    Args:
        name (str): ``"banana-detection"``, ``"voc2012"`` or ``"hotdog"``.
        target (str | PathLike): the folder the book's code reads (it must not exist yet).
        seed (int): >= 0.

    Returns:
        Path: ``target``.
    """
    if name not in STANDINS:
        raise ValueError(f"name must be one of {sorted(STANDINS)}, got {name!r}")
    target = Path(target)
    if target.exists():
        raise FileExistsError(f"target must not exist yet, got {str(target)!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    write = STANDINS[name][0]
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        counts = write(stage, seed)
        with atomic_open(stage / MARKER, "w") as f:
            json.dump({"book_name": name, "generator": "pixbox.compat.d2l", "seed": seed, "images": counts}, f)
        os.chmod(stage, 0o777 & ~_umask())
        try:
            os.replace(stage, target)
        except OSError:
            if not is_standin(target):
                raise
            shutil.rmtree(stage, ignore_errors=True)  # another process wrote the same stand-in first
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return target
