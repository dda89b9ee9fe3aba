"""A multi-class, multi-object detection dataset of shaded shapes, generated offline.

Six classes (:data:`CLASS_NAMES`): square, disc, triangle, star, ring and cross. An image holds
1 to ``max_objects`` shapes (and about 7 % of the images none at all), each rotated, coloured,
lit, maybe patterned (stripes, dots, mottling) and rimmed, with diameters from 8 % to 60 % of
the image side (log-uniform, so small objects are as common as large ones), over a random
textured background. Shapes may overlap, later ones hiding earlier ones, and may be cut by the
image border.

Every box is the tight box of the object's *visible* pixels, ``[x_min, y_min, x_max + 1,
y_max + 1]`` in pixel edges (as in :mod:`pixbox.data.synthetic`), computed from the rendered
masks. A shape with less than 30 % of its pixels visible (hidden or outside the image), or with
fewer than 20 visible pixels or a visible box under 3 pixels wide or high, is not drawn at all,
so every annotated object is clearly visible and every drawn shape is annotated.

Example:
    >>> counts = make_shapes("data/shapes", num_train=1000, num_val=100)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from pixbox._checks import check_choice, check_int
from pixbox.data.formats import DETECTION_FORMATS
from pixbox.data.generators import _draw, _writing
from pixbox.data.synthetic import Scene

__all__ = ["CLASS_NAMES", "make_shapes", "render_shapes"]

_SALT = 2  # keeps the images of different generators apart for equal seeds

#: The object classes; a label is an index into this tuple.
CLASS_NAMES: tuple[str, ...] = _draw.SHAPE_KINDS

_SIZE = (0.08, 0.6)  # shape diameter as a fraction of the image side, log-uniform
_MIN_SIZE_PX = 8.0
_MIN_VISIBLE = 0.3  # fraction of a shape's pixels that must be visible
_MIN_PIXELS, _MIN_SIDE = 20, 3
_EMPTY_FRACTION = 0.07  # background-only images per split (at least one in splits of >= 5 images)


def render_shapes(image_size: int = 256, *, seed: int | Sequence[int] = 0, max_objects: int = 8,
                  num_objects: int | None = None) -> Scene:
    """Renders one image of shapes with the exact boxes and masks of their visible pixels.

    Args:
        image_size (int): the image side in pixels, >= 32 (images are square).
        seed (int | Sequence[int]): an int >= 0 or a sequence of them; equal arguments give
            identical images.
        max_objects (int): >= 0; the number of shapes tried is uniform in ``1 .. max_objects``.
        num_objects (int | None): the number of shapes to try instead (>= 0); ``0`` gives a
            background-only image with the same background and pixel noise as any other
            ``num_objects`` for this seed. Shapes that end up hidden are dropped, so the image
            may hold fewer.

    Returns:
        Scene: ``image`` (Tensor[3, S, S] uint8 RGB), ``boxes`` (Tensor[N, 4] float32 xyxy
        pixels, tight around the visible pixels), ``labels`` (Tensor[N] int64 indices into
        :data:`CLASS_NAMES`), ``masks`` (Tensor[N, S, S] bool, the visible pixels; they never
        overlap), ``class_names``. Objects are listed from the back to the front.
    """
    size = check_int(image_size, "image_size", low=32)
    max_objects = check_int(max_objects, "max_objects", low=0)
    rng_bg, rng_obj, rng_noise = _writing.image_rngs(seed, _SALT)
    if num_objects is None:
        num_objects = int(rng_obj.integers(1, max_objects + 1)) if max_objects > 0 else 0
    num_objects = check_int(num_objects, "num_objects", low=0)
    image = _draw.textured_background(rng_bg, size, size)

    # Draw every candidate shape's sprite and position (back to front).
    lo, hi = np.log(max(_SIZE[0] * size, _MIN_SIZE_PX)), np.log(_SIZE[1] * size)
    candidates = []
    for _ in range(num_objects):
        label = int(rng_obj.integers(len(CLASS_NAMES)))
        diameter = float(np.exp(rng_obj.uniform(lo, hi)))
        sprite = _draw.shape_sprite(rng_obj, CLASS_NAMES[label], diameter)
        h, w = sprite.alpha.shape
        # The centre lies in the image, so at least about a quarter of the box is inside it.
        x = int(rng_obj.integers(0, size)) - w // 2
        y = int(rng_obj.integers(0, size)) - h // 2
        candidates.append((label, sprite, x, y))

    # Front to back: keep a shape when enough of it shows past the kept shapes in front of it.
    covered = np.zeros((size, size), dtype=bool)
    kept = []
    for label, sprite, x, y in reversed(candidates):
        full = _draw.paste_mask((size, size), sprite, x, y)
        visible = full & ~covered
        n = int(visible.sum())
        if n < max(_MIN_VISIBLE * int(sprite.mask.sum()), _MIN_PIXELS):
            continue
        box = _draw.tight_box(visible)
        if box[2] - box[0] < _MIN_SIDE or box[3] - box[1] < _MIN_SIDE:
            continue
        covered |= full
        kept.append((label, sprite, x, y, visible, box))
    kept.reverse()

    for _, sprite, x, y, _, _ in kept:  # back to front
        _draw.composite(image, sprite, x, y)
    pixels = _draw.finish(image, rng_noise)
    return Scene(
        image=pixels,
        boxes=torch.tensor([k[5] for k in kept], dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor([k[0] for k in kept], dtype=torch.int64),
        masks=(torch.from_numpy(np.stack([k[4] for k in kept])) if kept
               else torch.zeros((0, size, size), dtype=torch.bool)),
        class_names=CLASS_NAMES,
    )


def _empty_images(seed: int, split: str, count: int) -> set[int]:
    """The indices of the background-only images of a split: about 7 %, at least one if count >= 5."""
    if count < 5:
        return set()
    rng = np.random.default_rng([seed, _writing.SPLITS[split]])
    k = max(1, int(round(_EMPTY_FRACTION * count)))
    return set(rng.choice(count, size=k, replace=False).tolist())


def make_shapes(root, *, seed: int = 0, num_train: int = 1000, num_val: int = 100,
                image_size: int = 256, fmt: str = "coco", max_objects: int = 8,
                progress: bool = True, overwrite: bool = False) -> dict[str, int]:
    """Writes a multi-object shapes detection dataset (:data:`CLASS_NAMES`) to ``root``.

    About 7 % of each split's images (at least one in a split of 5 or more) are background
    only; the others try 1 to ``max_objects`` shapes (see :func:`render_shapes`).

    Args:
        root (str | PathLike): the dataset folder; created when missing.
        seed (int): >= 0; the same seed gives byte-identical image files.
        num_train (int): images in the ``train`` split, >= 0 (0 skips the split).
        num_val (int): images in the ``val`` split, >= 0 (0 skips the split).
        image_size (int): the side of the square PNG images in pixels, >= 32.
        fmt (str): one of :data:`pixbox.data.formats.DETECTION_FORMATS`, default ``"coco"``.
        max_objects (int): the most shapes in one image, >= 0 (0 gives background-only images).
        progress (bool): show a progress bar per split.
        overwrite (bool): replace a split that already exists in ``root``; without it an
            existing, non-empty split raises ``FileExistsError``.

    Returns:
        dict[str, int]: images per written split.

    Raises:
        ValueError: for a bad option (named in the message).
        FileExistsError: when a target split exists and ``overwrite`` is False.
    """
    _writing.check_options(seed=seed, num_train=num_train, num_val=num_val, image_size=image_size,
                        progress=progress, overwrite=overwrite)
    check_choice(fmt, "fmt", DETECTION_FORMATS)
    max_objects = check_int(max_objects, "max_objects", low=0)
    counts = {"train": num_train, "val": num_val}
    empty = {split: _empty_images(seed, split, n) for split, n in counts.items()}

    def render(split: str, i: int) -> Scene:
        return render_shapes(image_size, seed=(seed, _writing.SPLITS[split], i), max_objects=max_objects,
                             num_objects=0 if i in empty[split] else None)

    return _writing.write_detection_splits(root, render, class_names=CLASS_NAMES, fmt=fmt, counts=counts,
                                        progress=progress, overwrite=overwrite, desc="shapes")
