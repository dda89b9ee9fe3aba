"""Procedurally generated detection scenes: exact boxes and masks, no files, no network.

A scene is a smooth two-colour gradient background with a little pixel noise, and a few
non-overlapping solid objects, each of one of :data:`CLASS_NAMES`. The objects are drawn with
Pillow (no antialiasing), so every pixel either belongs to one object or to the background and
the boxes are exact.

Box convention: the box of an object is ``[x_min, y_min, x_max + 1, y_max + 1]`` where
``x_min .. x_max`` and ``y_min .. y_max`` are the columns and rows of its pixels, that is, the
pixel edges that tightly enclose it (a 10 x 10 pixel square at the origin has the box
``[0, 0, 10, 10]`` and area 100).

Everything is a function of the arguments: the random numbers come from a local
``numpy.random.Generator`` seeded with ``seed``, and the global RNGs are never touched.

Example:
    >>> image, boxes, labels, class_names = make_scene(256, 320, num_objects=3, seed=0)
    >>> image.shape, image.dtype, boxes.shape, labels.tolist()
    (torch.Size([3, 256, 320]), torch.uint8, torch.Size([3, 4]), [0, 1, 2])
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor

from pixbox._checks import check_int

__all__ = ["CLASS_NAMES", "Scene", "make_scene", "render_scene"]

#: The object classes; a label is an index into this tuple.
CLASS_NAMES: tuple[str, ...] = ("square", "disc", "triangle")

# Object side length as a fraction of min(height, width).
_MIN_REL_SIZE, _MAX_REL_SIZE = 0.15, 0.4
# Gap in pixels kept between objects, and attempts to place one object before giving up.
_GAP = 4
_MAX_TRIES = 200


@dataclass(frozen=True)
class Scene:
    """One generated scene.

    Attributes:
        image (Tensor[3, H, W]): ``uint8`` RGB.
        boxes (Tensor[N, 4]): ``float32`` xyxy pixels, tight (see the module docstring).
        labels (Tensor[N]): ``int64`` indices into ``class_names``.
        masks (Tensor[N, H, W]): ``bool``, the pixels of each object (objects never overlap).
        class_names (tuple[str, ...]): the class names.
    """

    image: Tensor
    boxes: Tensor
    labels: Tensor
    masks: Tensor
    class_names: tuple[str, ...]


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A pale linear gradient between two random colours along a random direction, plus mild noise."""
    c0 = rng.uniform(170, 245, size=3)
    c1 = rng.uniform(170, 245, size=3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    t = xs / max(width - 1, 1) * np.cos(angle) + ys / max(height - 1, 1) * np.sin(angle)  # [H, W]
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]  # [H, W, 3]
    img += rng.normal(0.0, 4.0, size=img.shape)
    return img


def _object_color(rng: np.random.Generator, hue: float) -> np.ndarray:
    """A saturated, mid-to-dark colour of about ``hue`` that stands out from the pale background."""
    hue = (hue + rng.uniform(-0.04, 0.04)) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(0.65, 1.0), rng.uniform(0.45, 0.8))
    return np.array([r, g, b]) * 255


def _shape_mask(label: int, x: int, y: int, side: int, height: int, width: int) -> np.ndarray:
    """The ``bool [H, W]`` mask of one object whose shape fits the square ``side`` x ``side`` at ``(x, y)``."""
    canvas = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    last = side - 1  # Pillow's shapes include both corner coordinates
    name = CLASS_NAMES[label]
    if name == "square":
        draw.rectangle((x, y, x + last, y + last), fill=1)
    elif name == "disc":
        draw.ellipse((x, y, x + last, y + last), fill=1)
    elif name == "triangle":
        draw.polygon([(x + last / 2, y), (x, y + last), (x + last, y + last)], fill=1)
    else:  # pragma: no cover - guarded by CLASS_NAMES
        raise ValueError(f"unknown class {name!r}")
    return np.array(canvas, dtype=bool)


def _tight_box(mask: np.ndarray) -> list[float]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def render_scene(height: int = 256, width: int = 320, num_objects: int = 3, *, seed: int = 0) -> Scene:
    """Generates one scene with its exact boxes, labels and object masks.

    The classes of the objects cycle through a random permutation of :data:`CLASS_NAMES`, so a
    scene with up to ``len(CLASS_NAMES)`` objects has distinct classes. Each object is a square
    of side ``uniform(0.15, 0.4) * min(height, width)`` pixels (a square, the disc inscribed in
    it, or an isosceles triangle with its base at the bottom), placed at random without touching
    the others.

    Args:
        height (int): image height in pixels, >= 32.
        width (int): image width in pixels, >= 32.
        num_objects (int): number of objects, >= 0.
        seed (int): the seed; equal arguments give identical scenes.

    Returns:
        Scene: image, boxes, labels, masks and class names.

    Raises:
        ValueError: when ``num_objects`` objects do not fit without overlapping.
    """
    height = check_int(height, "height", low=32)
    width = check_int(width, "width", low=32)
    num_objects = check_int(num_objects, "num_objects", low=0)
    seed = check_int(seed, "seed", low=0)
    rng = np.random.default_rng(seed)

    image = _background(rng, height, width)  # [H, W, 3] float64
    order = rng.permutation(len(CLASS_NAMES))
    occupied = np.zeros((height, width), dtype=bool)  # object pixels, grown by _GAP
    short = min(height, width)
    # Hues step by the golden ratio from a random start, so that nearby objects differ in colour.
    hue0 = rng.uniform(0, 1)
    masks, boxes, labels = [], [], []
    for i in range(num_objects):
        label = int(order[i % len(CLASS_NAMES)])
        for _ in range(_MAX_TRIES):
            side = int(round(rng.uniform(_MIN_REL_SIZE, _MAX_REL_SIZE) * short))
            x = int(rng.integers(0, width - side + 1))
            y = int(rng.integers(0, height - side + 1))
            if not occupied[max(y - _GAP, 0):y + side + _GAP, max(x - _GAP, 0):x + side + _GAP].any():
                break
        else:
            raise ValueError(
                f"num_objects={num_objects} objects do not fit in a {height}x{width} image without "
                f"overlapping (placed {i}); use fewer objects or a larger image"
            )
        mask = _shape_mask(label, x, y, side, height, width)
        occupied[y:y + side, x:x + side] = True
        # Solid colour with a gentle vertical shading, so objects are not perfectly flat.
        shade = 1.0 + 0.15 * (np.linspace(-1, 1, height)[:, None, None])  # [H, 1, 1]
        colour = _object_color(rng, hue0 + i * 0.618034) * shade  # [H, 1, 3]
        image = np.where(mask[..., None], colour, image)
        masks.append(mask)
        boxes.append(_tight_box(mask))
        labels.append(label)

    image_t = torch.from_numpy(np.clip(np.rint(image), 0, 255).astype(np.uint8)).permute(2, 0, 1).contiguous()
    return Scene(
        image=image_t,
        boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.int64),
        masks=torch.from_numpy(np.stack(masks)) if masks else torch.zeros((0, height, width), dtype=torch.bool),
        class_names=CLASS_NAMES,
    )


def make_scene(height: int = 256, width: int = 320, num_objects: int = 3, *,
               seed: int = 0) -> tuple[Tensor, Tensor, Tensor, list[str]]:
    """Generates one scene: an image with a few objects and their exact boxes.

    See :func:`render_scene` for the arguments (and for the object masks).

    Returns:
        tuple: ``image`` (Tensor[3, H, W], uint8 RGB), ``boxes`` (Tensor[N, 4], float32 xyxy
        pixels, tight), ``labels`` (Tensor[N], int64 indices into ``class_names``) and
        ``class_names`` (list[str]).
    """
    scene = render_scene(height, width, num_objects, seed=seed)
    return scene.image, scene.boxes, scene.labels, list(scene.class_names)
