"""The real photographs behind :mod:`pixbox.data.generators.photos`: which objects are cut out
of which of scikit-image's bundled photos, which photo regions serve as backgrounds, and how
both are split between train and val.

Only the files that scikit-image ships inside its package (``skimage.data.data_dir``) are read,
directly from disk: nothing here downloads (a file that the installed scikit-image lacks raises
``FileNotFoundError`` instead). scikit-image is an optional dependency, the ``photos`` extra.

**Outlines.** The object outlines were traced once from the photos and are stored here as
polygons in the photo's pixel coordinates: the coins from a watershed segmentation of
``coins()``, the cup (with its saucer and spoon) from a random-walker segmentation of
``coffee()`` checked and completed by hand, the cat's head and the rocket by hand; a face is the
ellipse inscribed in its LFW crop. A cut keeps the photo's pixels around the outline, and its
alpha is the outline's coverage feathered with a Gaussian of ``feather`` pixels and shrunk by
about one ``feather`` (so the soft fringe, alpha below one half, shows little of the photo's own
background).

**Splits.** Sources with several instances are split by instance: the LFW faces 0-79 are train
and 80-99 val, and the coins in reading order go to val every fourth (6 of 24). The cat, the cup
and the rocket exist once, so both splits use the same cut (with their own random scale, flip,
rotation, colour and background). Every background photo is split by columns into a train
region and a disjoint val region.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

__all__ = ["Background", "Cut", "INSTALL_HINT", "backgrounds", "object_cuts"]

INSTALL_HINT = ("the photos dataset reads the photos that scikit-image bundles: pip install 'pixbox[photos]' "
                "(or pip install scikit-image)")

_SPLITS = ("train", "val")
_SUPERSAMPLE = 4  # sub-pixels per pixel side for the coverage of an outline

# The 24 coins of coins(), in reading order (row by row, left to right).
_COIN_OUTLINES = (
    (48, 74, 38, 74, 28, 69, 23, 62, 22, 56, 25, 46, 34, 38, 42, 35, 48, 35, 60, 39, 65, 44, 67, 52, 66, 60, 61,
     68, 54, 73),
    (108, 74, 94, 74, 86, 70, 85, 66, 82, 64, 81, 54, 83, 48, 90, 41, 98, 39, 106, 39, 112, 42, 119, 50, 120,
     62, 117, 68),
    (156, 74, 146, 72, 135, 62, 132, 52, 132, 46, 137, 38, 144, 32, 158, 28, 166, 30, 174, 38, 178, 46, 179, 56,
     177, 62, 172, 69, 164, 73),
    (220, 73, 206, 72, 194, 62, 192, 56, 193, 46, 198, 36, 204, 32, 210, 30, 222, 30, 228, 32, 234, 38, 239, 48,
     240, 54, 236, 64, 230, 70),
    (280, 72, 274, 72, 268, 70, 260, 64, 261, 62, 259, 58, 255, 56, 255, 50, 260, 42, 266, 36, 270, 34, 280, 34,
     286, 36, 294, 42, 296, 46, 297, 56, 293, 66, 290, 69),
    (338, 72, 332, 72, 318, 67, 309, 58, 305, 46, 305, 40, 308, 32, 311, 28, 322, 19, 330, 16, 340, 16, 352, 20,
     361, 30, 365, 44, 364, 50, 360, 60, 354, 67),
    (46, 145, 32, 143, 31, 140, 28, 136, 25, 130, 25, 120, 28, 114, 34, 108, 42, 104, 48, 104, 54, 106, 64, 114,
     67, 122, 66, 128, 63, 134, 57, 140, 57, 142),
    (106, 145, 98, 145, 92, 143, 86, 136, 84, 130, 84, 124, 87, 116, 92, 111, 98, 108, 108, 108, 116, 111, 122,
     122, 122, 130, 120, 134, 116, 139),
    (154, 145, 146, 145, 142, 143, 134, 130, 134, 126, 137, 118, 142, 114, 152, 110, 158, 110, 168, 114, 171,
     118, 173, 122, 173, 132, 170, 138, 166, 142, 162, 144),
    (210, 144, 202, 144, 194, 141, 189, 136, 186, 130, 186, 118, 190, 112, 198, 107, 204, 105, 210, 105, 220,
     109, 225, 114, 226, 118, 226, 124, 221, 136),
    (274, 144, 258, 140, 250, 134, 245, 124, 248, 108, 254, 101, 266, 95, 284, 97, 290, 105, 294, 106, 296, 114,
     296, 124, 293, 132, 282, 142),
    (338, 145, 326, 141, 324, 142, 323, 140, 324, 140, 319, 134, 317, 126, 319, 116, 330, 106, 342, 106, 348,
     109, 353, 114, 356, 120, 356, 130, 354, 134, 348, 141),
    (48, 217, 36, 215, 27, 206, 26, 190, 28, 186, 38, 179, 50, 179, 54, 181, 59, 186, 62, 194, 63, 202, 60, 210,
     54, 215, 50, 215),
    (108, 217, 98, 217, 90, 214, 83, 208, 81, 202, 80, 194, 84, 184, 92, 177, 96, 175, 106, 175, 114, 178, 122,
     186, 124, 190, 124, 200, 121, 208, 116, 213),
    (158, 217, 148, 217, 144, 215, 139, 210, 135, 200, 135, 194, 138, 188, 152, 179, 160, 180, 168, 184, 171,
     188, 174, 194, 174, 202, 171, 210, 166, 214),
    (214, 217, 204, 216, 200, 213, 194, 208, 189, 198, 189, 188, 192, 182, 202, 173, 212, 170, 220, 171, 227,
     174, 235, 184, 237, 196, 234, 206, 228, 212),
    (278, 217, 270, 215, 268, 212, 264, 212, 260, 210, 258, 206, 251, 200, 251, 192, 257, 178, 264, 174, 272,
     172, 284, 175, 294, 186, 297, 196, 293, 210, 292, 211, 286, 209, 284, 212, 286, 216),
    (354, 218, 336, 217, 332, 215, 320, 204, 319, 200, 316, 196, 315, 184, 317, 176, 320, 170, 328, 162, 344,
     156, 354, 156, 366, 161, 372, 166, 379, 180, 380, 192, 375, 204, 364, 214),
    (50, 288, 40, 288, 30, 284, 25, 280, 19, 268, 18, 258, 20, 252, 19, 250, 30, 238, 42, 233, 58, 234, 64, 238,
     71, 244, 75, 258, 73, 270, 70, 276, 60, 285),
    (120, 287, 110, 287, 100, 281, 94, 274, 93, 260, 98, 252, 106, 246, 124, 246, 132, 254, 135, 260, 136, 270,
     134, 276, 126, 284),
    (174, 288, 160, 285, 154, 281, 148, 276, 144, 268, 144, 258, 149, 246, 156, 239, 168, 236, 180, 237, 192,
     241, 197, 246, 201, 254, 201, 268, 197, 278, 188, 285),
    (246, 288, 238, 287, 232, 284, 226, 278, 220, 268, 220, 260, 226, 248, 228, 248, 234, 243, 244, 240, 252,
     241, 260, 245, 265, 250, 269, 260, 268, 270, 262, 278, 256, 284),
    (298, 289, 292, 288, 286, 285, 278, 278, 276, 272, 276, 258, 279, 252, 292, 241, 302, 239, 314, 240, 318,
     242, 325, 250, 325, 270, 322, 276, 316, 284, 306, 288),
    (364, 289, 350, 288, 344, 285, 338, 278, 336, 272, 336, 262, 342, 254, 350, 249, 362, 248, 372, 250, 379,
     258, 382, 266, 382, 270, 378, 280, 372, 286),
)
# The espresso cup of coffee(), with its saucer and spoon.
_CUP_OUTLINE = (
    308, 381, 248, 380, 242, 378, 244, 377, 232, 374, 224, 375, 210, 371, 210, 369, 208, 370, 200, 365, 184,
    359, 162, 347, 132, 326, 130, 328, 124, 322, 122, 323, 116, 318, 107, 306, 92, 282, 84, 264, 83, 258, 80,
    256, 81, 252, 80, 251, 78, 253, 77, 250, 73, 248, 76, 246, 72, 246, 70, 244, 77, 240, 73, 238, 75, 236, 73,
    234, 76, 232, 74, 208, 77, 184, 84, 164, 83, 156, 90, 150, 98, 136, 111, 120, 126, 106, 148, 91, 172, 78,
    180, 76, 190, 60, 204, 46, 218, 35, 246, 23, 268, 18, 306, 19, 326, 23, 346, 31, 362, 39, 374, 48, 386, 60,
    398, 78, 398, 68, 412, 66, 420, 68, 425, 78, 416, 110, 424, 116, 444, 136, 462, 160, 474, 186, 481, 218,
    480, 250, 472, 278, 457, 306, 430, 336, 412, 350, 410, 349, 404, 355, 398, 359, 380, 368, 372, 370, 368,
    368, 358, 372, 326, 380
)

# The head of Chelsea the cat (the top and bottom edges are the photo's).
_CAT_OUTLINE = (40, 0, 395, 0, 386, 25, 373, 60, 363, 95, 366, 130, 367, 165, 361, 200, 348, 230, 330, 255, 305, 278,
                282, 296, 272, 300, 55, 300, 35, 270, 25, 230, 22, 180, 25, 120, 30, 60, 36, 20)
# The rocket on its pad, from the tip of the fairing to the top of the launch mount.
_ROCKET_OUTLINE = (321, 125.5, 325, 128.5, 328.5, 134, 331, 140, 333, 150, 334, 160, 334, 180, 333, 398, 309.5, 398,
                   309, 180, 309, 160, 310, 150, 312, 140, 314.5, 134, 317.5, 128.5)
# A face fills its 25 x 25 LFW crop: the inscribed ellipse, as (x0, y0, x1, y1).
_FACE_ELLIPSE = (1.5, 0.0, 23.5, 25.0)
_NUM_FACES, _NUM_TRAIN_FACES = 100, 80  # lfw_subset(): 100 faces, then 100 non-faces

# Background photos: (file, mode, train region, val region, upright). A region is (x0, y0, x1, y1);
# an upright scene is only mirrored, a texture is also flipped and turned.
_BACKGROUNDS = (
    ("grass.png", "L", (0, 0, 352, 512), (352, 0, 512, 512), False),
    ("gravel.png", "L", (0, 0, 352, 512), (352, 0, 512, 512), False),
    ("brick.png", "L", (0, 0, 352, 512), (352, 0, 512, 512), False),
    ("moon.png", "L", (0, 0, 352, 512), (352, 0, 512, 512), False),
    ("hubble_deep_field.jpg", "RGB", (0, 0, 690, 872), (690, 0, 1000, 872), False),
    ("ihc.png", "RGB", (0, 0, 352, 512), (352, 0, 512, 512), False),
    ("motorcycle_left.png", "RGB", (0, 0, 450, 500), (450, 0, 741, 500), True),  # a garage
    ("rocket.jpg", "RGB", (95, 0, 400, 115), (400, 0, 555, 115), True),  # the dusk sky above the pads
)


@dataclass(frozen=True)
class Cut:
    """One object cut out of a photo.

    Attributes:
        image (PIL.Image.Image): ``RGBA``: the photo's pixels and the soft alpha of the object,
            with a margin of zero alpha around it.
        solid (tuple[int, int]): ``(width, height)`` of the pixels with alpha above one half.
        instance (str): which object, unique across the dataset, e.g. ``"face/lfw-017"``.
        gray (bool): the photo is greyscale (the generator tints it).
    """

    image: Image.Image
    solid: tuple[int, int]
    instance: str
    gray: bool


@dataclass(frozen=True)
class Background:
    """The part of a background photo that one split crops from.

    Attributes:
        pixels (ndarray): ``uint8``, ``[h, w]`` (greyscale) or ``[h, w, 3]`` (RGB).
        name (str): the photo's file name.
        upright (bool): a scene with an up and a down: mirrored only, never flipped or turned.
    """

    pixels: np.ndarray
    name: str
    upright: bool


def _data_dir() -> Path:
    try:
        import skimage.data
    except ImportError as e:
        raise ImportError(f"{INSTALL_HINT} ({e})") from None
    return Path(skimage.data.data_dir)


def _read(name: str, mode: str = "RGB") -> np.ndarray:
    """A photo bundled with scikit-image, read from disk (``mode`` is a PIL mode; ``.npy`` as saved)."""
    path = _data_dir() / name
    if not path.is_file():
        import skimage

        raise FileNotFoundError(
            f"the installed scikit-image {skimage.__version__} does not bundle {name} (looked in {path.parent}); "
            "the photos dataset never downloads: install scikit-image >= 0.22 (pip install 'pixbox[photos]')")
    if path.suffix == ".npy":
        return np.load(path)
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))


@functools.lru_cache(maxsize=None)
def _shrink_lut() -> list[int]:
    """Maps a Gaussian-blurred coverage ``G = Phi(d / s)`` to ``Phi(d / s - 1)``: the edge moves ``s`` inwards."""
    normal = NormalDist()
    lut = [0] * 256
    for t in range(1, 255):
        lut[t] = int(round(255 * normal.cdf(normal.inv_cdf(t / 255) - 1)))
    lut[255] = 255
    return lut


def _cut(photo: np.ndarray, outline: tuple[float, ...], *, feather: float, instance: str,
         ellipse: bool = False) -> Cut:
    """Cuts the polygon ``outline`` (flat x, y pairs; or an ellipse's x0, y0, x1, y1) out of ``photo``."""
    pts = np.asarray(outline, dtype=np.float64).reshape(-1, 2)
    pad = int(math.ceil(3 * feather)) + 2
    x0, y0 = (np.floor(pts.min(0)).astype(int) - pad).tolist()
    x1, y1 = (np.ceil(pts.max(0)).astype(int) + pad).tolist()
    h, w = photo.shape[:2]
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    # Outside the photo the colour repeats the border; the alpha there is about zero anyway.
    rgb = np.pad(photo[cy0:cy1, cx0:cx1], ((cy0 - y0, y1 - cy1), (cx0 - x0, x1 - cx1), (0, 0)), mode="edge")
    ss = _SUPERSAMPLE
    canvas = Image.new("L", ((x1 - x0) * ss, (y1 - y0) * ss), 0)
    local = [((x - x0) * ss, (y - y0) * ss) for x, y in pts.tolist()]
    if ellipse:
        ImageDraw.Draw(canvas).ellipse([*local[0], *local[1]], fill=255)
    else:
        ImageDraw.Draw(canvas).polygon(local, fill=255)
    coverage = canvas.resize((x1 - x0, y1 - y0), Image.BOX)
    alpha = np.asarray(coverage.filter(ImageFilter.GaussianBlur(feather)).point(_shrink_lut()))
    solid = alpha > 127
    rows, cols = np.flatnonzero(solid.any(1)), np.flatnonzero(solid.any(0))
    return Cut(image=Image.fromarray(np.dstack([rgb, alpha])),
               solid=(int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)), instance=instance,
               gray=bool((rgb == rgb[..., :1]).all()))


@functools.lru_cache(maxsize=None)
def _all_cuts() -> dict[str, list[tuple[Cut, tuple[str, ...]]]]:
    """Every object cut, once per process: class -> [(cut, the splits that use it)]."""
    faces = _read("lfw_subset.npy")[:_NUM_FACES]  # [100, 25, 25] float in [0, 1]
    coins = np.repeat(_read("coins.png", "L")[..., None], 3, axis=2)
    cuts: dict[str, list[tuple[Cut, tuple[str, ...]]]] = {"face": [], "coin": []}
    for i, face in enumerate(faces):
        pixels = np.repeat(np.clip(face * 255 + 0.5, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
        cut = _cut(pixels, _FACE_ELLIPSE, feather=1.0, instance=f"face/lfw-{i:03d}", ellipse=True)
        cuts["face"].append((cut, ("train",) if i < _NUM_TRAIN_FACES else ("val",)))
    for i, outline in enumerate(_COIN_OUTLINES):
        cut = _cut(coins, outline, feather=0.8, instance=f"coin/coins-{i:02d}")
        cuts["coin"].append((cut, ("val",) if i % 4 == 3 else ("train",)))
    cuts["cat"] = [(_cut(_read("chelsea.png"), _CAT_OUTLINE, feather=3.0, instance="cat/chelsea"), _SPLITS)]
    cuts["cup"] = [(_cut(_read("coffee.png"), _CUP_OUTLINE, feather=2.5, instance="cup/coffee"), _SPLITS)]
    cuts["rocket"] = [(_cut(_read("rocket.jpg"), _ROCKET_OUTLINE, feather=0.8, instance="rocket/rocket"), _SPLITS)]
    return cuts


def object_cuts(split: str) -> dict[str, list[Cut]]:
    """The cuts that ``split`` (``"train"`` or ``"val"``) draws its objects from, by class name."""
    return {name: [cut for cut, splits in entries if split in splits] for name, entries in _all_cuts().items()}


@functools.lru_cache(maxsize=None)
def backgrounds(split: str) -> tuple[Background, ...]:
    """The background regions of ``split`` (``"train"`` or ``"val"``), read once per process."""
    out = []
    for name, mode, train, val, upright in _BACKGROUNDS:
        x0, y0, x1, y1 = train if split == "train" else val
        out.append(Background(pixels=np.ascontiguousarray(_read(name, mode)[y0:y1, x0:x1]), name=name,
                              upright=upright))
    return tuple(out)
