"""A banana detection dataset in the spirit of the D2L book's banana set, generated offline.

Every image holds exactly one banana: a curved, tapering, shaded crescent with a dark tip and
a stem (see :func:`pixbox.data.generators._draw.banana_sprite`), with random length (30 to 75 %
of the image side), curvature, thickness, rotation, mirroring, colour (yellow, sometimes green,
sometimes speckled) and position, pasted wholly inside the image over a random textured
background (clouds, gradient, stripes, blotches or tiles), plus mild pixel noise.

Box convention: the box is the tight box of the banana's pixels, ``[x_min, y_min, x_max + 1,
y_max + 1]`` in pixel edges (as in :mod:`pixbox.data.synthetic`), computed from the rendered
mask, so it is exact. Every image depends only on ``(seed, split, index)``.

Example:
    >>> counts = make_bananas("data/bananas", num_train=1000, num_val=100)  # doctest: +SKIP
    >>> counts
    {'train': 1000, 'val': 100}
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from pixbox._checks import check_choice, check_int
from pixbox.data.formats import DETECTION_FORMATS
from pixbox.data.generators import _draw, _writing
from pixbox.data.synthetic import Scene

__all__ = ["CLASS_NAMES", "make_bananas", "render_banana"]

_SALT = 1  # keeps the images of different generators apart for equal seeds

#: The one class.
CLASS_NAMES: tuple[str, ...] = ("banana",)

_LENGTH = (0.3, 0.75)  # banana length as a fraction of the image side


def render_banana(image_size: int = 256, *, seed: int | Sequence[int] = 0, banana: bool = True) -> Scene:
    """Renders one banana image with its exact box and mask.

    Args:
        image_size (int): the image side in pixels, >= 32 (images are square).
        seed (int | Sequence[int]): an int >= 0 or a sequence of them; equal seeds give
            identical images. :func:`make_bananas` uses ``(seed, split_index, image_index)``.
        banana (bool): False renders the same image without the banana (same background and
            pixel noise), which shows exactly which pixels the banana changed.

    Returns:
        Scene: ``image`` (Tensor[3, S, S] uint8 RGB), ``boxes`` (Tensor[1, 4] float32 xyxy
        pixels, tight; [0, 4] without the banana), ``labels`` (Tensor[1] int64, all 0),
        ``masks`` (Tensor[1, S, S] bool) and ``class_names`` (``("banana",)``).
    """
    size = check_int(image_size, "image_size", low=32)
    rng_bg, rng_obj, rng_noise = _writing.image_rngs(seed, _SALT)
    image = _draw.textured_background(rng_bg, size, size)
    masks, boxes = [], []
    if banana:
        scale = rng_obj.uniform(*_LENGTH)
        sprite = _draw.banana_sprite(rng_obj, scale * size)
        while max(sprite.alpha.shape) > size:  # a long banana turned diagonally; rarely needed
            scale *= 0.9
            sprite = _draw.banana_sprite(rng_obj, scale * size)
        h, w = sprite.alpha.shape
        x, y = int(rng_obj.integers(0, size - w + 1)), int(rng_obj.integers(0, size - h + 1))
        _draw.composite(image, sprite, x, y)
        masks.append(_draw.paste_mask((size, size), sprite, x, y))
        boxes.append(_draw.tight_box(masks[0]))
    pixels = _draw.finish(image, rng_noise)
    return Scene(
        image=pixels,
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.zeros(len(boxes), dtype=torch.int64),
        masks=(torch.from_numpy(np.stack(masks)) if masks
               else torch.zeros((0, size, size), dtype=torch.bool)),
        class_names=CLASS_NAMES,
    )


def make_bananas(root, *, seed: int = 0, num_train: int = 1000, num_val: int = 100,
                 image_size: int = 256, fmt: str = "csv", progress: bool = True,
                 overwrite: bool = False) -> dict[str, int]:
    """Writes a banana detection dataset (one banana per image) to ``root``.

    Args:
        root (str | PathLike): the dataset folder; created when missing.
        seed (int): >= 0; the same seed gives byte-identical image files.
        num_train (int): images in the ``train`` split, >= 0 (0 skips the split).
        num_val (int): images in the ``val`` split, >= 0 (0 skips the split).
        image_size (int): the side of the square PNG images in pixels, >= 32.
        fmt (str): one of :data:`pixbox.data.formats.DETECTION_FORMATS`; the default ``"csv"``
            is D2L's layout (``root/<split>/label.csv`` plus ``images/``).
        progress (bool): show a progress bar per split.
        overwrite (bool): replace a split that already exists in ``root``; without it an
            existing, non-empty split raises ``FileExistsError``.

    Returns:
        dict[str, int]: images per written split, for example ``{"train": 1000, "val": 100}``.

    Raises:
        ValueError: for a bad option (named in the message).
        FileExistsError: when a target split exists and ``overwrite`` is False.
    """
    _writing.check_options(seed=seed, num_train=num_train, num_val=num_val, image_size=image_size,
                        progress=progress, overwrite=overwrite)
    check_choice(fmt, "fmt", DETECTION_FORMATS)
    return _writing.write_detection_splits(
        root, lambda split, i: render_banana(image_size, seed=(seed, _writing.SPLITS[split], i)),
        class_names=CLASS_NAMES, fmt=fmt, counts={"train": num_train, "val": num_val},
        progress=progress, overwrite=overwrite, desc="bananas")

