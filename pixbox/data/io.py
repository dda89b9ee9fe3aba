"""Reading and writing images and segmentation masks.

Images are ``uint8`` RGB tensors ``[3, H, W]`` everywhere in pixbox. :func:`read_image` turns
any file Pillow can decode into one:

- the EXIF orientation tag is applied, so the tensor is the image as a viewer shows it;
- greyscale (``"1"``, ``"L"``), palette (``"P"``), ``"CMYK"``, ``"RGBA"`` and ``"LA"`` images
  become 8-bit RGB, alpha is dropped (not composited);
- 16-bit greyscale (``"I;16"``, ``"I"``) is scaled to 8 bits (``round(v / 257)``);
- a missing, unreadable, corrupt or truncated file raises :class:`DatasetError` naming it.

:func:`image_size` gives the same ``(width, height)`` from the file header only, without
decoding the pixels, which is what the dataset readers use.

Masks are ``int64`` tensors ``[H, W]`` of class indices, ``255`` meaning "ignore". They are
stored as palette PNGs (as in VOC ``SegmentationClass``): the pixel values are the indices and
the palette only colours them for viewers. :func:`read_mask` also accepts plain 8- or 16-bit
index PNGs and RGB colour masks (mapped back to indices through a colour map). Masks are read
as stored: EXIF orientation is not applied to them.

Example:
    >>> import torch
    >>> image = torch.zeros(3, 4, 6, dtype=torch.uint8)
    >>> path = write_image(image, "runs/io/a.png")  # doctest: +SKIP
    >>> image_size(path), read_image(path).shape  # doctest: +SKIP
    ((6, 4), torch.Size([3, 4, 6]))
"""

from __future__ import annotations

import glob
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from pixbox._files import atomic_open
from pixbox._checks import check_number
from pixbox.data.annotations import DatasetError

__all__ = ["IMAGE_SUFFIXES", "MaskColorWarning", "VOC_CLASSES", "VOC_COLORMAP", "WRITABLE_IMAGE_SUFFIXES",
           "find_images", "image_size", "output_names", "read_image", "read_mask", "write_image", "write_mask"]

#: The 21 Pascal VOC segmentation classes; a mask value is an index into this tuple.
VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)


def _voc_colormap() -> np.ndarray:
    # The bits of the index are dealt out to r, g, b in turn, most significant bit first:
    # bit 0 -> r bit 7, bit 1 -> g bit 7, bit 2 -> b bit 7, bit 3 -> r bit 6, ...
    cmap = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, rgb = i, [0, 0, 0]
        for shift in range(7, -1, -1):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << shift
            c >>= 3
        cmap[i] = rgb
    return cmap


#: The standard VOC palette, ``uint8`` ``[256, 3]``: row ``i`` is the colour of index ``i``
#: (``0`` black background, ``1`` (128, 0, 0), ..., ``255`` (224, 224, 192), the boundary).
VOC_COLORMAP: np.ndarray = _voc_colormap()
VOC_COLORMAP.setflags(write=False)

#: File suffixes treated as images when a folder is listed (lower case); :func:`read_image` reads them.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")

_IMAGE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP"}
#: File suffixes :func:`write_image` writes (lower case).
WRITABLE_IMAGE_SUFFIXES: tuple[str, ...] = tuple(_IMAGE_FORMATS)
# Everything a decoder may raise on a bad file. Pillow raises OSError for truncated data,
# SyntaxError for broken PNG chunks, and plain struct/zlib/Value errors from some plugins.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, struct.error,
                  zlib.error, Image.DecompressionBombError)

# EXIF orientation -> the transpose that undoes it (the same table as PIL.ImageOps.exif_transpose).
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _check_path(path, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def _open(path: Path) -> Image.Image:
    """Opens (header only) or raises a :class:`DatasetError` naming ``path``."""
    if not path.is_file():
        raise DatasetError("image file not found" if not path.exists() else "not a file", path)
    try:
        return Image.open(path)
    except _DECODE_ERRORS as e:
        raise DatasetError(f"cannot read image: {e}", path) from e


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1..8) from the header, never decoding the pixels."""
    # PngImageFile.getexif() decodes the whole image when no eXIf chunk came before the pixel
    # data; an eXIf chunk after the pixel data is therefore ignored, by read_image too.
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    try:
        value = int(img.getexif().get(0x0112, 1))
    except (*_DECODE_ERRORS, TypeError):
        return 1
    return value if value in _ORIENTATION_TRANSPOSE else 1


def image_size(path) -> tuple[int, int]:
    """The size of an image file, read from its header (the pixels are not decoded).

    Args:
        path (str or PathLike): an image file.

    Returns:
        tuple[int, int]: ``(width, height)`` after EXIF orientation, so it always equals
        ``(read_image(path).shape[2], read_image(path).shape[1])``.

    Raises:
        DatasetError: the file is missing or its header cannot be read.
    """
    path = _check_path(path)
    with _open(path) as img:
        w, h = img.size
        if _orientation(img) >= 5:  # 5..8 turn the image by 90 degrees
            w, h = h, w
    return int(w), int(h)


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """A decoded Pillow image of any mode to a ``uint8`` array ``[H, W, 3]``."""
    mode = img.mode
    if mode.startswith("I;16") or mode == "I" or mode == "F":
        grey = np.asarray(img)
        if mode == "F":  # float images: assumed in [0, 255]
            grey8 = np.clip(np.round(grey), 0, 255).astype(np.uint8)
        else:  # 16-bit range, 65535 -> 255
            grey8 = np.round(np.clip(grey.astype(np.float64), 0, 65535) / 257.0).astype(np.uint8)
        return np.repeat(grey8[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # converting such images straight to RGB makes Pillow warn
    if img.mode != "RGB":
        img = img.convert("RGB")
    return np.array(img, dtype=np.uint8)  # a writable copy


def read_image(path) -> Tensor:
    """Reads an image file into an RGB ``uint8`` tensor.

    The whole file is decoded, so a truncated or corrupt file fails here rather than later
    in a data loader (unless ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` was set to True).

    Args:
        path (str or PathLike): any format Pillow reads (PNG, JPEG, BMP, GIF, WebP, TIFF, ...).

    Returns:
        Tensor[3, H, W]: ``uint8`` RGB, EXIF orientation applied (see the module docstring for
        how greyscale, palette, CMYK, alpha and 16-bit images are converted).

    Raises:
        DatasetError: the file is missing, is not an image, or is corrupt or truncated.
    """
    path = _check_path(path)
    with _open(path) as img:
        try:
            orientation = _orientation(img)
            img.load()
            array = _to_rgb_array(img)
        except _DECODE_ERRORS as e:
            raise DatasetError(f"cannot decode image: {e}", path) from e
    if orientation != 1:
        array = np.array(Image.fromarray(array).transpose(_ORIENTATION_TRANSPOSE[orientation]))
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


def _atomic_save(pil: Image.Image, path: Path, fmt: str, **params) -> Path:
    with atomic_open(path, "wb") as f:
        pil.save(f, format=fmt, **params)
    return path


def _image_array(image) -> np.ndarray:
    """A ``[3, H, W]``, ``[1, H, W]`` or ``[H, W]`` tensor to ``uint8`` ``[H, W, 3]`` or ``[H, W]``."""
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a torch.Tensor [3, H, W], [1, H, W] or [H, W], "
                        f"got {type(image).__name__}")
    if not (image.dim() == 2 or (image.dim() == 3 and image.shape[0] in (1, 3))):
        raise ValueError(f"image must have shape [3, H, W], [1, H, W] or [H, W], got {tuple(image.shape)}")
    if image.numel() == 0:
        raise ValueError(f"image must not be empty, got shape {tuple(image.shape)}")
    image = image.detach().cpu()
    if image.is_floating_point():
        lo, hi = float(image.min()), float(image.max())
        if lo != lo or hi != hi:
            raise ValueError("image must not contain NaN")
        # A little rounding noise is clamped away; values far outside [0, 1] are a mistake
        # (typically a float image in [0, 255]).
        if lo < -1e-3 or hi > 1 + 1e-3:
            raise ValueError(f"image as floating point must have values in [0, 1], got [{lo:g}, {hi:g}]")
        image = (image.double() * 255).round_().clamp_(0, 255).to(torch.uint8)
    elif image.dtype != torch.uint8:
        raise TypeError(f"image must be uint8 or floating point in [0, 1], got dtype {image.dtype}")
    array = image.numpy()
    if array.ndim == 3:
        array = array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)
    return np.ascontiguousarray(array)


def write_image(image, path, *, quality: int = 95, compress_level: int = 6) -> Path:
    """Writes an image file, atomically.

    The parent folder is created when missing. The file is written to a temporary file in the
    same folder first and then moved over ``path`` with :func:`os.replace`, so no reader ever
    sees a half-written file.

    Args:
        image (Tensor[3, H, W] or Tensor[1, H, W] or Tensor[H, W]): ``uint8``, or floating point
            with values in [0, 1] (scaled by 255 and rounded). One channel is written as a
            greyscale image.
        path (str or PathLike): the format comes from the suffix: ``.png``, ``.jpg``,
            ``.jpeg`` or ``.bmp`` (any case).
        quality (int): JPEG quality in [1, 100]; ignored by the lossless formats.
        compress_level (int): PNG zlib level in [0, 9]; ignored by the other formats. Lower is
            faster to write and gives larger files (1 is about 4x faster than the default 6,
            for files about 12% larger); the pixels are the same.

    Returns:
        Path: ``path``.
    """
    path = _check_path(path)
    fmt = _IMAGE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"path must end in one of {sorted(_IMAGE_FORMATS)}, got {str(path)!r}")
    if isinstance(quality, bool) or not isinstance(quality, int):
        raise TypeError(f"quality must be an int, got {type(quality).__name__}")
    check_number(quality, "quality", low=1, high=100)
    if isinstance(compress_level, bool) or not isinstance(compress_level, int):
        raise TypeError(f"compress_level must be an int, got {type(compress_level).__name__}")
    check_number(compress_level, "compress_level", low=0, high=9)
    pil = Image.fromarray(_image_array(image))
    params = {"JPEG": {"quality": quality}, "PNG": {"compress_level": compress_level}}.get(fmt, {})
    return _atomic_save(pil, path, fmt, **params)


def _check_colormap(colormap) -> np.ndarray:
    try:
        cmap = np.asarray(colormap)
    except (TypeError, ValueError):
        raise TypeError(f"colormap must be an array-like [K, 3] of RGB colours, got "
                        f"{type(colormap).__name__}") from None
    if cmap.ndim != 2 or cmap.shape[1] != 3 or not 1 <= cmap.shape[0] <= 256:
        raise ValueError(f"colormap must have shape [K, 3] with 1 <= K <= 256, got {cmap.shape}")
    if not np.issubdtype(cmap.dtype, np.integer) or cmap.min() < 0 or cmap.max() > 255:
        raise ValueError("colormap must hold integer colours in [0, 255]")
    return cmap.astype(np.int64)


def _default_colormap() -> np.ndarray:
    # The VOC class colours, with index 255 for the boundary colour.
    cmap = np.zeros((256, 3), np.int64) - 1  # -1: no colour
    cmap[:len(VOC_CLASSES)] = VOC_COLORMAP[:len(VOC_CLASSES)]
    cmap[255] = VOC_COLORMAP[255]
    return cmap


class MaskColorWarning(UserWarning):
    """An RGB mask has many pixels whose colour is not in the colour map (they become 255, ignore).

    Typical cause: a palette mask saved through JPEG or resized with interpolation, which
    blends the colours. :func:`pixbox.data.check.check_dataset` reports it as an error.
    """


def _colours_to_indices(rgb: np.ndarray, cmap: np.ndarray) -> np.ndarray:
    """Maps an ``[H, W, 3]`` colour mask to indices; colours not in ``cmap`` give -1."""
    keys = (cmap[:, 0] << 16) | (cmap[:, 1] << 8) | cmap[:, 2]
    index = np.arange(len(cmap))
    valid = (cmap >= 0).all(axis=1)
    keys, index = keys[valid], index[valid]
    order = np.argsort(keys, kind="stable")
    keys, index = keys[order], index[order]
    if len(keys) > 1 and (np.diff(keys) == 0).any():
        dup = int(keys[1:][np.diff(keys) == 0][0])
        raise ValueError(f"colormap must have distinct colours, got "
                         f"{((dup >> 16) & 255, (dup >> 8) & 255, dup & 255)} more than once")
    rgb = rgb.astype(np.int64)
    codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]  # [H, W]
    pos = np.clip(np.searchsorted(keys, codes), 0, len(keys) - 1)
    return np.where(keys[pos] == codes, index[pos], -1)


def read_mask(path, colormap=None, *, unmapped_threshold: float = 0.01) -> Tensor:
    """Reads a segmentation mask file into class indices.

    - palette (``"P"``) PNGs, the VOC ``SegmentationClass`` format: the palette indices;
    - ``"L"``, ``"I;16"`` and ``"I"`` (plain 8- or 16-bit index PNGs): the pixel values;
    - ``"RGB"`` (and ``"RGBA"``, alpha ignored): each colour is looked up in ``colormap`` and
      becomes its row index; a colour not in the map becomes ``255`` (ignore), never 0. When
      more than ``unmapped_threshold`` of the pixels have such colours, a
      :class:`MaskColorWarning` names the file and the fraction.

    Values are returned as stored: indices outside ``[0, num_classes)`` other than 255 are left
    for the caller to check. EXIF orientation is not applied to masks.

    Args:
        path (str or PathLike): the mask file.
        colormap (array-like [K, 3] or None): for colour masks, ``colormap[k]`` is the RGB colour
            of index ``k`` (K <= 256, distinct colours). Default: ``VOC_COLORMAP[:21]`` for the
            VOC classes plus the boundary colour (224, 224, 192) for 255.
        unmapped_threshold (float): the fraction of pixels in [0, 1] with colours off the map
            above which a colour mask is warned about; 1 never warns.

    Returns:
        Tensor[H, W]: ``int64`` class indices.

    Raises:
        DatasetError: the file is missing, corrupt, or of an unsupported mode.
    """
    path = _check_path(path)
    cmap = _default_colormap() if colormap is None else _check_colormap(colormap)
    unmapped_threshold = float(check_number(unmapped_threshold, "unmapped_threshold", low=0, high=1))
    unmapped = 0
    with _open(path) as img:
        try:
            img.load()
            mode = img.mode
            if mode in ("P", "L", "1", "I") or mode.startswith("I;16"):
                values = np.asarray(img).astype(np.int64)
            elif mode in ("LA", "PA"):
                values = np.asarray(img)[..., 0].astype(np.int64)
            elif mode in ("RGB", "RGBA", "RGBX"):
                values = _colours_to_indices(np.asarray(img)[..., :3], cmap)
                off = values < 0  # [H, W]
                unmapped = int(off.sum())
                values[off] = 255
            else:
                raise DatasetError(f"unsupported mask mode {mode!r}; expected a palette, greyscale, "
                                   "16-bit or RGB image", path)
        except _DECODE_ERRORS as e:
            if isinstance(e, DatasetError):
                raise
            raise DatasetError(f"cannot decode mask: {e}", path) from e
    if unmapped and unmapped > unmapped_threshold * values.size:
        warnings.warn(f"{path}: {unmapped / values.size:.1%} of the pixels ({unmapped} of {values.size}) have "
                      "colours that are not in the colour map and became 255 (ignore); was the mask saved as "
                      "JPEG or resized with interpolation? Save masks as palette PNGs (write_mask)",
                      MaskColorWarning, stacklevel=2)
    return torch.from_numpy(np.ascontiguousarray(values))


def write_mask(mask, path, *, palette=VOC_COLORMAP) -> Path:
    """Writes class indices as a palette PNG (the VOC ``SegmentationClass`` format), atomically.

    ``read_mask(write_mask(mask, path))`` equals ``mask``.

    Args:
        mask (Tensor[H, W] or ndarray[H, W]): integer (or bool) class indices in [0, 255];
            255 conventionally means "ignore".
        path (str or PathLike): must end in ``.png``; parent folders are created.
        palette (array-like [K, 3]): the display colour of each index, K <= 256 (missing rows
            are black). Only changes how viewers show the mask, never the stored indices.

    Returns:
        Path: ``path``.
    """
    path = _check_path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png (masks are palette PNGs), got {str(path)!r}")
    if isinstance(mask, Tensor):
        mask = mask.detach().cpu().numpy()
    elif not isinstance(mask, np.ndarray):
        raise TypeError(f"mask must be a torch.Tensor or numpy array [H, W], got {type(mask).__name__}")
    if mask.ndim != 2 or mask.size == 0:
        raise ValueError(f"mask must have shape [H, W] with H, W > 0, got {mask.shape}")
    if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == np.bool_):
        raise TypeError(f"mask must hold integer class indices, got dtype {mask.dtype}")
    lo, hi = int(mask.min()), int(mask.max())
    if lo < 0 or hi > 255:
        raise ValueError(f"mask values must be in [0, 255] to fit a palette PNG, got [{lo}, {hi}]")
    pal = _check_colormap(palette)
    flat = np.zeros((256, 3), np.uint8)
    flat[:len(pal)] = pal
    pil = Image.fromarray(np.ascontiguousarray(mask.astype(np.uint8)))  # mode "L"
    pil.putpalette(flat.reshape(-1).tolist())  # an "L" image with a palette becomes "P"
    return _atomic_save(pil, path, "PNG")


# ----------------------------------------------------------------------------------------------
# Image sources


def find_images(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files named by ``sources``: files, folders (their images, sorted) or glob patterns.

    Args:
        sources (sequence of str or PathLike): each a file, a folder (its files with a suffix
            of :data:`IMAGE_SUFFIXES`, not recursive) or a glob pattern (``*``, ``?``, ``[``;
            ``**`` recurses).

    Returns:
        list[Path]: in the order given, without duplicates.

    Raises:
        FileNotFoundError: a source matches no image.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    found: list[Path] = []
    for source in sources:
        text = os.fspath(source)
        path = Path(text)
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                raise FileNotFoundError(f"folder {text!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True)
                             if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                raise FileNotFoundError(f"pattern {text!r} matches no image file")
        else:
            raise FileNotFoundError(f"source {text!r} does not exist")
        for p in matches:
            if p not in found:
                found.append(p)
    return found


def output_names(paths: Sequence[Path]) -> list[str]:
    """``<stem>.png`` per image, with ``_2``, ``_3`` ... for repeated stems."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        seen[p.stem] = seen.get(p.stem, 0) + 1
        names.append(f"{p.stem}.png" if seen[p.stem] == 1 else f"{p.stem}_{seen[p.stem]}.png")
    return names
