"""Offline dataset generators: real on-disk datasets in standard formats, from a seed.

Each generator renders its images procedurally (no downloads), saves them as PNGs in a
staging folder ``root/.staging-<split>/``, builds the in-memory annotations
(:mod:`pixbox.data.annotations`) and hands them to the format writer, which moves the images
into place; so the files on disk go through the same readers as any downloaded dataset.

========================  ===============================  ==========================  ==============
task                      content                          format                      default size
========================  ===============================  ==========================  ==============
``"bananas"``             one banana per image, 1 class    D2L CSV (``fmt`` picks)     1000/100, 256 px
``"shapes"``              0-8 shapes per image, 6 classes  COCO (``fmt`` picks)        1000/100, 256 px
``"photos"``              1-4 photo cut-outs, 5 classes    COCO (``fmt`` picks)        1000/200, 320 px
``"segmentation"``        1-4 objects, 5 classes + bg      VOC segmentation            1000/100, 256 px
``"classification"``      one object, 6 classes            a folder per class          500/100, 64 px
========================  ===============================  ==========================  ==============

All generators take ``root`` and then keyword options: ``seed``, ``num_train``, ``num_val``,
``image_size``, ``progress`` and ``overwrite`` (plus ``fmt`` and, for shapes and photos,
``max_objects``). The photos task cuts its objects out of the photos that scikit-image bundles
(the ``photos`` extra); the others draw everything procedurally.
Output depends only on the options: the same seed gives byte-identical image files, and the
global RNGs are never touched. A split that already exists is never overwritten silently.

Example:
    >>> make_dataset("bananas", "data/bananas", seed=0, num_train=100)  # doctest: +SKIP
    {'train': 100, 'val': 100}
"""

from __future__ import annotations

import difflib
import inspect
from typing import Callable

from pixbox._checks import check_choice
from pixbox.data.generators.bananas import make_bananas
from pixbox.data.generators.classification import make_classification
from pixbox.data.generators.photos import make_photos
from pixbox.data.generators.segmentation import make_segmentation
from pixbox.data.generators.shapes import make_shapes

__all__ = ["GENERATORS", "make_bananas", "make_classification", "make_dataset", "make_photos",
           "make_segmentation", "make_shapes"]

#: The generators by task name.
GENERATORS: dict[str, Callable[..., dict[str, int]]] = {
    "bananas": make_bananas,
    "shapes": make_shapes,
    "photos": make_photos,
    "segmentation": make_segmentation,
    "classification": make_classification,
}


def make_dataset(task: str, root, *, seed: int = 0, **options) -> dict[str, int]:
    """Writes the dataset of ``task`` (a key of :data:`GENERATORS`) to ``root``.

    Args:
        task (str): ``"bananas"``, ``"shapes"``, ``"photos"``, ``"segmentation"`` or
            ``"classification"``.
        root (str | PathLike): the dataset folder.
        seed (int): >= 0.
        **options: the generator's other keyword options (``num_train``, ``num_val``,
            ``image_size``, ``fmt``, ``max_objects``, ``progress``, ``overwrite``).

    Returns:
        dict[str, int]: images per written split.

    Raises:
        ValueError: for an unknown task (with the nearest name) or a bad option value.
        TypeError: for an option the generator does not take (with the nearest name).
    """
    check_choice(task, "task", GENERATORS)
    make = GENERATORS[task]
    accepted = [p for p in inspect.signature(make).parameters if p not in ("root", "seed")]
    for name in options:
        if name not in accepted:
            hint = difflib.get_close_matches(name, accepted, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise TypeError(f"options of task {task!r} must be among {accepted}, got {name!r}{extra}")
    return make(root, seed=seed, **options)
