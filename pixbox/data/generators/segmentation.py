"""A semantic segmentation dataset in the Pascal VOC layout, generated offline.

Five object classes plus the background (:data:`CLASS_NAMES`): flower, leaf, pond, rock and
starfish, each with an irregular outline (a random polar radius or a serrated, bent blade; see
:func:`pixbox.data.generators._draw.blob_sprite`), its own colours and texture. An image holds
1 to 4 objects, 25 % to 65 % of the image side across, over a random textured background;
ponds lie at the bottom, the other objects overlap in random order and may be cut by the image
border.

Masks are VOC ``SegmentationClass`` palette PNGs: ``0`` background, ``1 .. 5`` the classes,
and, like VOC, ``255`` (ignore) on a band about 4 pixels wide along every object outline,
including where two objects touch. The band covers the soft (antialiased) edge pixels, so
every pixel outside it shows exactly its class.

Example:
    >>> counts = make_segmentation("data/segmentation")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from pixbox._checks import check_int
from pixbox.data.annotations import SegmentationAnnotations
from pixbox.data.formats.segmentation import write_voc_segmentation
from pixbox.data.generators import _draw, _writing
from pixbox.data.io import write_image, write_mask

__all__ = ["CLASS_NAMES", "IGNORE_INDEX", "make_segmentation", "render_segmentation"]

_SALT = 3  # keeps the images of different generators apart for equal seeds

#: The classes: a mask value is an index into this tuple (0 is the background).
CLASS_NAMES: tuple[str, ...] = ("background",) + _draw.BLOB_KINDS
#: The mask value of the boundary band.
IGNORE_INDEX = 255

_SIZE = (0.25, 0.65)  # object diameter as a fraction of the image side
_MAX_OBJECTS = 4
_BAND = 1  # the band reaches this many pixels beyond the two pixels along an outline


def render_segmentation(image_size: int = 256, *, seed: int | Sequence[int] = 0,
                        num_objects: int | None = None) -> tuple[Tensor, Tensor]:
    """Renders one image and its class mask.

    Args:
        image_size (int): the image side in pixels, >= 32 (images are square).
        seed (int | Sequence[int]): an int >= 0 or a sequence of them; equal arguments give
            identical images.
        num_objects (int | None): the number of objects (>= 0); ``None`` draws 1 to 4. ``0``
            gives the same background and pixel noise as any other value for this seed.

    Returns:
        tuple: ``image`` (Tensor[3, S, S] uint8 RGB) and ``mask`` (Tensor[S, S] int64: indices
        into :data:`CLASS_NAMES`, and :data:`IGNORE_INDEX` on the boundary band).
    """
    size = check_int(image_size, "image_size", low=32)
    rng_bg, rng_obj, rng_noise = _writing.image_rngs(seed, _SALT)
    if num_objects is None:
        num_objects = int(rng_obj.integers(1, _MAX_OBJECTS + 1))
    num_objects = check_int(num_objects, "num_objects", low=0)
    image = _draw.textured_background(rng_bg, size, size)

    labels = rng_obj.integers(1, len(CLASS_NAMES), size=num_objects)
    # Ponds first: they are flat and lie under everything else.
    labels = sorted(labels.tolist(), key=lambda c: CLASS_NAMES[c] != "pond")
    instances = np.zeros((size, size), dtype=np.int32)  # 0 background, k for object k
    for k, label in enumerate(labels, start=1):
        sprite = _draw.blob_sprite(rng_obj, CLASS_NAMES[label], rng_obj.uniform(*_SIZE) * size)
        h, w = sprite.alpha.shape
        x = int(rng_obj.integers(0, size)) - w // 2
        y = int(rng_obj.integers(0, size)) - h // 2
        _draw.composite(image, sprite, x, y)
        instances[_draw.paste_mask((size, size), sprite, x, y)] = k

    lut = np.array([0] + labels, dtype=np.int64)
    mask = lut[instances]
    mask[_draw.boundary_band(instances, _BAND)] = IGNORE_INDEX
    pixels = _draw.finish(image, rng_noise)
    return pixels, torch.from_numpy(mask)


def make_segmentation(root, *, seed: int = 0, num_train: int = 1000, num_val: int = 100,
                      image_size: int = 256, progress: bool = True,
                      overwrite: bool = False) -> dict[str, int]:
    """Writes a VOC-style semantic segmentation dataset (:data:`CLASS_NAMES`) to ``root``.

    The layout is VOC's: ``JPEGImages/<id>.png`` (PNG images, kept lossless),
    ``SegmentationClass/<id>.png`` (palette masks, see :func:`pixbox.data.io.write_mask`),
    ``ImageSets/Segmentation/<split>.txt`` and ``classes.txt``. Ids are ``<split>_<index>``.

    Args:
        root (str | PathLike): the dataset folder; created when missing.
        seed (int): >= 0; the same seed gives byte-identical image and mask files.
        num_train (int): images in the ``train`` split, >= 0 (0 skips the split).
        num_val (int): images in the ``val`` split, >= 0 (0 skips the split).
        image_size (int): the side of the square images in pixels, >= 32.
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
        samples = []
        for i in range(counts[split]):
            image, mask = render_segmentation(image_size, seed=(seed, _writing.SPLITS[split], i))
            name = f"{split}_{i:06d}.png"
            samples.append((write_image(image, stage / "images" / name, compress_level=1),
                            write_mask(mask, stage / "masks" / name)))
            bar.update()
        annotations = SegmentationAnnotations(class_names=list(CLASS_NAMES), samples=samples)
        write_voc_segmentation(annotations, root, split, images="move")

    return _writing.write_splits(root, "voc-segmentation", counts, overwrite=overwrite,
                              progress=progress, desc="segmentation", write_split=write_split)
