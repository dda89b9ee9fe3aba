"""A detection dataset of real photo content, generated offline in the way of D2L's banana set.

Generated shapes and bananas cannot show what ImageNet pretraining buys; this set can: its
objects are cut, with soft (feathered) masks, out of the real photographs that scikit-image
bundles, and pasted onto crops of other real photographs. Five classes (:data:`CLASS_NAMES`):

==========  ==================================  =====================  ===================
class       cut out of (``skimage.data``)       train instances        val instances
==========  ==================================  =====================  ===================
face        ``lfw_subset()``, 25 x 25 crops     faces 0-79 (80)        faces 80-99 (20)
coin        ``coins()``                         18 coins               the other 6 coins
cat         ``chelsea()``, the head             the same cat           the same cat
cup         ``coffee()``, with saucer, spoon    the same cup           the same cup
rocket      ``rocket()``                        the same rocket        the same rocket
==========  ==================================  =====================  ===================

Backgrounds are random square crops of ``grass()``, ``gravel()``, ``brick()``, ``moon()``,
``hubble_deep_field()``, ``immunohistochemistry()``, the garage of ``stereo_motorcycle()`` and
the sky of ``rocket()``, each split by columns into a train and a disjoint val region; the
greyscale ones are tinted, all are jittered in brightness and contrast, mirrored, and the
textures also flipped and turned.

**Train and val.** Faces and coins are split by instance, so their val scores measure
generalisation to objects never seen in training. The cat, the cup and the rocket exist once in
the bundled photos: both splits use the same cut, with independent scale, flip, rotation and
colour, over backgrounds from other regions; their val scores measure robustness to those
changes, not generalisation to new instances (compare the per-class scores).

**Objects.** An image tries 1 to ``max_objects`` objects (default 4), each of a uniformly
random class and instance, with its longer side log-uniform in 8 % to 50 % of the image side
(a face at most 4x its 25-pixel crop, a coin 3x; a rocket is at least 5 pixels wide), the aspect
ratio kept, mirrored half of the time, turned by up to 15 degrees, and jittered in brightness,
contrast and saturation (greyscale faces and coins get a random warm tint). Objects lie wholly
inside the image and may overlap; an object with less than half of its pixels visible past the
objects in front of it is not drawn at all, so every drawn object is annotated.

Box convention: an object's pixels are those where its *visible* alpha (its alpha times the
transparency of everything in front of it) exceeds one half; its box is their tight box,
``[x_min, y_min, x_max + 1, y_max + 1]`` in pixel edges (as in :mod:`pixbox.data.synthetic`),
computed from the rendered alpha, so it is exact. The feathered fringe (alpha below one half)
lies outside the box. Every image depends only on ``(seed, split, index)``.

Needs scikit-image (the ``photos`` extra, ``pip install 'pixbox[photos]'``) for its bundled
photos only; nothing is downloaded.

Example:
    >>> counts = make_photos("data/photos", num_train=1000, num_val=200)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from pixbox._checks import check_choice, check_int
from pixbox.data.formats import DETECTION_FORMATS
from pixbox.data.generators import _draw, _photo_sources, _writing
from pixbox.data.synthetic import Scene

__all__ = ["CLASS_NAMES", "make_photos", "render_photos"]

_SALT = 5  # keeps the images of different generators apart for equal seeds

#: The object classes; a label is an index into this tuple.
CLASS_NAMES: tuple[str, ...] = ("face", "coin", "cat", "cup", "rocket")

_SIZE = (0.08, 0.5)  # the longer side of an object as a fraction of the image side, log-uniform
_MIN_SIZE_PX = 8.0
_MIN_WIDTH_PX = 5.0  # the shorter side of the object at the smallest size
_MAX_UPSCALE = {"face": 4.0, "coin": 3.0}  # the most a small source photo is enlarged
_TINT = {"face": ((0.02, 0.11), (0.0, 0.35)), "coin": ((0.06, 0.14), (0.0, 0.5))}  # hue, saturation
_MAX_ANGLE = 15.0  # degrees
_MIN_VISIBLE = 0.5  # fraction of an object's pixels that must be visible
_MIN_PIXELS, _MIN_SIDE = 20, 3


def _tint(gray: np.ndarray, rng: np.random.Generator, hue: tuple[float, float],
          saturation: tuple[float, float]) -> np.ndarray:
    """``float32 [h, w]`` grey in [0, 255] -> ``[h, w, 3]``, tinted by a random colour scaled to a mean of 1."""
    colour = _draw.hsv(rng.uniform(*hue), rng.uniform(*saturation), 1.0)
    return gray[..., None] * (colour / colour.mean())


def _jitter(rgb: np.ndarray, rng: np.random.Generator, weight: np.ndarray | None = None) -> np.ndarray:
    """Random brightness, contrast (about the mean, weighted by ``weight``) and saturation of ``[h, w, 3]``."""
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)  # [h, w]
    mean = float(np.average(luma, weights=weight))
    saturation = rng.uniform(0.7, 1.3)
    rgb = luma[..., None] + (rgb - luma[..., None]) * saturation
    rgb = mean + (rgb - mean) * rng.uniform(0.75, 1.25)
    return np.clip(rgb * rng.uniform(0.75, 1.2), 0, 255).astype(np.float32)


def _background(rng: np.random.Generator, split: str, size: int) -> np.ndarray:
    """A random crop of a background photo of ``split``: ``float32 [size, size, 3]`` in [0, 255]."""
    choices = _photo_sources.backgrounds(split)
    bg = choices[int(rng.integers(len(choices)))]
    h, w = bg.pixels.shape[:2]
    side = max(int(round(min(h, w) * rng.uniform(0.5, 1.0))), 1)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(bg.pixels[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
    pixels = np.asarray(crop, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = _tint(pixels, rng, (0.0, 1.0), (0.0, 0.45))
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    if not bg.upright:
        pixels = np.rot90(pixels[::-1] if rng.random() < 0.5 else pixels, int(rng.integers(4)))
    return _jitter(np.ascontiguousarray(pixels), rng)


def _object(rng: np.random.Generator, label: int, cut: _photo_sources.Cut, size: int):
    """The cut scaled, mirrored, turned and jittered: ``(rgb float32 [h, w, 3], alpha float32 [h, w])``.

    The arrays are cropped to the pixels of non-zero alpha and fit in a ``size`` x ``size`` image.
    """
    name = CLASS_NAMES[label]
    long_px, short_px = max(cut.solid), min(cut.solid)
    hi = min(_SIZE[1] * size, _MAX_UPSCALE.get(name, np.inf) * long_px)
    lo = min(max(_SIZE[0] * size, _MIN_SIZE_PX, _MIN_WIDTH_PX * long_px / short_px), hi)
    scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) / long_px
    mirror = rng.random() < 0.5
    angle = rng.uniform(-_MAX_ANGLE, _MAX_ANGLE)
    while True:
        w, h = cut.image.size
        image = cut.image.resize((max(round(w * scale), 1), max(round(h * scale), 1)), Image.BICUBIC)
        if mirror:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        image = image.rotate(angle, resample=Image.BICUBIC, expand=True)
        pixels = np.asarray(image)
        alpha = pixels[..., 3]
        rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
        if len(rows) == 0:  # pragma: no cover - an object is at least 8 pixels long
            raise RuntimeError(f"the cut {cut.instance} vanished at scale {scale}")
        if rows[-1] - rows[0] < size and cols[-1] - cols[0] < size:
            break
        scale *= 0.9  # rarely needed: a long object turned, in a small image
    sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    alpha = alpha[sl].astype(np.float32) / 255
    rgb = pixels[sl][..., :3].astype(np.float32)
    if cut.gray:
        rgb = _tint(rgb[..., 0], rng, *_TINT.get(name, ((0.0, 1.0), (0.0, 0.0))))
    return _jitter(rgb, rng, weight=alpha + 1e-6), alpha


def _render(image_size: int, seed, split: str, max_objects: int,
            num_objects: int | None) -> tuple[Scene, list[str], list[np.ndarray]]:
    """:func:`render_photos`, plus each object's instance (``Cut.instance``) and pasted alpha (``float32 [S, S]``)."""
    size = check_int(image_size, "image_size", low=32)
    check_choice(split, "split", _writing.SPLITS)
    max_objects = check_int(max_objects, "max_objects", low=0)
    rng_bg, rng_obj, rng_noise = _writing.image_rngs(seed, _SALT)
    if num_objects is None:
        num_objects = int(rng_obj.integers(1, max_objects + 1)) if max_objects > 0 else 0
    num_objects = check_int(num_objects, "num_objects", low=0)
    pool = _photo_sources.object_cuts(split)
    image = _background(rng_bg, split, size)

    # Draw every candidate (back to front): its class, instance, look and position.
    candidates = []
    for _ in range(num_objects):
        label = int(rng_obj.integers(len(CLASS_NAMES)))
        cuts = pool[CLASS_NAMES[label]]
        cut = cuts[int(rng_obj.integers(len(cuts)))]
        rgb, alpha = _object(rng_obj, label, cut, size)
        h, w = alpha.shape
        x, y = int(rng_obj.integers(0, size - w + 1)), int(rng_obj.integers(0, size - h + 1))
        full = np.zeros((size, size), np.float32)
        full[y:y + h, x:x + w] = alpha
        candidates.append((label, cut.instance, rgb, full, x, y))

    # Front to back: keep an object when enough of it shows through the kept objects in front.
    clear = np.ones((size, size), np.float32)  # the transparency of the kept objects in front
    kept = []
    for label, instance, rgb, full, x, y in reversed(candidates):
        visible = full * clear > 0.5
        n = int(visible.sum())
        if n < max(_MIN_VISIBLE * int((full > 0.5).sum()), _MIN_PIXELS):
            continue
        box = _draw.tight_box(visible)
        if box[2] - box[0] < _MIN_SIDE or box[3] - box[1] < _MIN_SIDE:
            continue
        clear *= 1 - full
        kept.append((label, instance, rgb, full, x, y, visible, box))
    kept.reverse()

    for _, _, rgb, full, x, y, _, _ in kept:  # back to front
        h, w = rgb.shape[:2]
        a = full[y:y + h, x:x + w, None]
        image[y:y + h, x:x + w] = image[y:y + h, x:x + w] * (1 - a) + rgb * a
    scene = Scene(
        image=_draw.finish(image, rng_noise),
        boxes=torch.tensor([k[7] for k in kept], dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor([k[0] for k in kept], dtype=torch.int64),
        masks=(torch.from_numpy(np.stack([k[6] for k in kept])) if kept
               else torch.zeros((0, size, size), dtype=torch.bool)),
        class_names=CLASS_NAMES,
    )
    return scene, [k[1] for k in kept], [k[3] for k in kept]


def render_photos(image_size: int = 320, *, seed: int | Sequence[int] = 0, split: str = "train",
                  max_objects: int = 4, num_objects: int | None = None) -> Scene:
    """Renders one image of real-photo objects with the exact boxes and masks of their visible pixels.

    Args:
        image_size (int): the image side in pixels, >= 32 (images are square).
        seed (int | Sequence[int]): an int >= 0 or a sequence of them; equal arguments give
            identical images. :func:`make_photos` uses ``(seed, split_index, image_index)``.
        split (str): ``"train"`` or ``"val"``: which object instances and background regions
            to draw from (see the module docstring).
        max_objects (int): >= 0; the number of objects tried is uniform in ``1 .. max_objects``.
        num_objects (int | None): the number of objects to try instead (>= 0); ``0`` gives a
            background-only image with the same background and pixel noise as any other
            ``num_objects`` for this seed. Objects that end up hidden are dropped.

    Returns:
        Scene: ``image`` (Tensor[3, S, S] uint8 RGB), ``boxes`` (Tensor[N, 4] float32 xyxy
        pixels, tight around the visible alpha > 0.5), ``labels`` (Tensor[N] int64 indices into
        :data:`CLASS_NAMES`), ``masks`` (Tensor[N, S, S] bool, visible alpha > 0.5; they never
        overlap), ``class_names``. Objects are listed from the back to the front.

    Raises:
        ImportError: scikit-image is not installed (``pip install 'pixbox[photos]'``).
    """
    return _render(image_size, seed, split, max_objects, num_objects)[0]


def make_photos(root, *, seed: int = 0, num_train: int = 1000, num_val: int = 200, image_size: int = 320,
                fmt: str = "coco", max_objects: int = 4, progress: bool = True,
                overwrite: bool = False) -> dict[str, int]:
    """Writes the real-photo detection dataset (:data:`CLASS_NAMES`) to ``root``.

    Every image tries 1 to ``max_objects`` objects (see :func:`render_photos`); val draws its
    faces and coins from instances that train never shows (see the module docstring).

    Args:
        root (str | PathLike): the dataset folder; created when missing.
        seed (int): >= 0; the same seed gives byte-identical image files.
        num_train (int): images in the ``train`` split, >= 0 (0 skips the split).
        num_val (int): images in the ``val`` split, >= 0 (0 skips the split).
        image_size (int): the side of the square PNG images in pixels, >= 32.
        fmt (str): one of :data:`pixbox.data.formats.DETECTION_FORMATS`, default ``"coco"``.
        max_objects (int): the most objects in one image, >= 0 (0 gives background-only images).
        progress (bool): show a progress bar per split.
        overwrite (bool): replace a split that already exists in ``root``; without it an
            existing, non-empty split raises ``FileExistsError``.

    Returns:
        dict[str, int]: images per written split.

    Raises:
        ValueError: for a bad option (named in the message).
        FileExistsError: when a target split exists and ``overwrite`` is False.
        ImportError: scikit-image is not installed (``pip install 'pixbox[photos]'``).
    """
    _writing.check_options(seed=seed, num_train=num_train, num_val=num_val, image_size=image_size,
                           progress=progress, overwrite=overwrite)
    check_choice(fmt, "fmt", DETECTION_FORMATS)
    max_objects = check_int(max_objects, "max_objects", low=0)
    counts = {"train": num_train, "val": num_val}
    if any(counts.values()):
        _photo_sources.object_cuts("train")  # fail early, before any folder is made, without scikit-image

    def render(split: str, i: int) -> Scene:
        return render_photos(image_size, seed=(seed, _writing.SPLITS[split], i), split=split,
                             max_objects=max_objects)

    return _writing.write_detection_splits(root, render, class_names=CLASS_NAMES, fmt=fmt, counts=counts,
                                           progress=progress, overwrite=overwrite, desc="photos")
