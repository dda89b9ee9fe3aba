"""An image classification dataset, one folder per class, generated offline.

Six classes (:data:`CLASS_NAMES`, sorted as the image-folder reader sorts them): banana,
flower, leaf, ring, rock and starfish. Each image shows one object, 45 % to 85 % of the image
side across, near the centre (shifted by up to 15 % of the side), at a random rotation, over a
random textured background. The class is in the shape, not the colour: each object has its
class's usual colours (yellow bananas, green leaves, ...) seven times in ten and a random hue
otherwise.

Defaults: 500 training and 100 validation images of 64 x 64 pixels, enough for a small
network to learn in a few minutes on a CPU. The classes are balanced: a split of ``n`` images
holds ``n // 6`` or ``n // 6 + 1`` of each class, in random order.

Example:
    >>> counts = make_classification("data/objects")  # doctest: +SKIP
    >>> sorted(p.name for p in Path("data/objects/train").iterdir())  # doctest: +SKIP
    ['banana', 'flower', 'leaf', 'ring', 'rock', 'starfish']
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from torch import Tensor
from tqdm import tqdm

from pixbox._checks import check_int
from pixbox.data.annotations import ClassificationAnnotations
from pixbox.data.formats.classification import write_image_folder
from pixbox.data.generators import _draw, _writing
from pixbox.data.io import write_image

__all__ = ["CLASS_NAMES", "make_classification", "render_object"]

_SALT = 4  # keeps the images of different generators apart for equal seeds

#: The classes, sorted; a label is an index into this tuple.
CLASS_NAMES: tuple[str, ...] = ("banana", "flower", "leaf", "ring", "rock", "starfish")

_SIZE = (0.45, 0.85)  # object size as a fraction of the image side
_SHIFT = 0.15  # largest shift of the object's centre from the image centre, as a fraction of the side
_RANDOM_HUE = 0.3  # how often an object gets a random hue instead of its class's usual colours


def render_object(label: int, image_size: int = 64, *, seed: int | Sequence[int] = 0) -> Tensor:
    """Renders one image of an object of class ``CLASS_NAMES[label]``.

    Args:
        label (int): the class index, in ``[0, len(CLASS_NAMES))``.
        image_size (int): the image side in pixels, >= 32 (images are square).
        seed (int | Sequence[int]): an int >= 0 or a sequence of them; equal arguments give
            identical images.

    Returns:
        Tensor[3, S, S]: ``uint8`` RGB.
    """
    label = check_int(label, "label", low=0)
    if label >= len(CLASS_NAMES):
        raise ValueError(f"label must be in [0, {len(CLASS_NAMES)}), got {label}")
    size = check_int(image_size, "image_size", low=32)
    rng_bg, rng_obj, rng_noise = _writing.image_rngs(seed, _SALT)
    image = _draw.textured_background(rng_bg, size, size)
    name = CLASS_NAMES[label]
    extent = rng_obj.uniform(*_SIZE) * size
    hue = float(rng_obj.random()) if rng_obj.random() < _RANDOM_HUE else None
    if name == "banana":
        sprite = _draw.banana_sprite(rng_obj, extent, hue=hue)
    elif name == "ring":
        sprite = _draw.shape_sprite(rng_obj, name, extent, hue=hue)
    else:
        sprite = _draw.blob_sprite(rng_obj, name, extent, hue=hue)
    h, w = sprite.alpha.shape
    cx, cy = (size / 2 + rng_obj.uniform(-_SHIFT, _SHIFT, size=2) * size).tolist()
    _draw.composite(image, sprite, int(round(cx - w / 2)), int(round(cy - h / 2)))
    return _draw.finish(image, rng_noise)


def make_classification(root, *, seed: int = 0, num_train: int = 500, num_val: int = 100,
                        image_size: int = 64, progress: bool = True,
                        overwrite: bool = False) -> dict[str, int]:
    """Writes an image-folder classification dataset (:data:`CLASS_NAMES`) to ``root``.

    The layout is ``root/<split>/<class>/<split>_<index>.png`` for the splits ``train`` and
    ``val``; :func:`pixbox.data.formats.classification.read_image_folder` reads each split.

    Args:
        root (str | PathLike): the dataset folder; created when missing.
        seed (int): >= 0; the same seed gives byte-identical image files.
        num_train (int): images in the ``train`` split, >= 0 (0 skips the split).
        num_val (int): images in the ``val`` split, >= 0 (0 skips the split).
        image_size (int): the side of the square PNG images in pixels, >= 32.
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
    root = Path(root)
    counts = {"train": num_train, "val": num_val}

    def write_split(split: str, stage: Path, bar: tqdm) -> None:
        n = counts[split]
        # Balanced classes in random order.
        order = np.random.default_rng([seed, _writing.SPLITS[split]]).permutation(n)
        labels = (order % len(CLASS_NAMES)).tolist()
        samples = []
        for i, label in enumerate(labels):
            image = render_object(label, image_size, seed=(seed, _writing.SPLITS[split], i))
            samples.append((write_image(image, stage / f"{split}_{i:06d}.png", compress_level=1), label))
            bar.update()
        annotations = ClassificationAnnotations(class_names=list(CLASS_NAMES), samples=samples)
        write_image_folder(annotations, root / split, images="move")

    return _writing.write_splits(root, "folder", counts, overwrite=overwrite, progress=progress,
                              desc="classification", write_split=write_split)
