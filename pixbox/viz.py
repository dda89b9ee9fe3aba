"""Drawing boxes and segmentation masks on images and writing figures to files; no display needed.

Images are ``uint8`` tensors ``[3, H, W]`` (RGB) everywhere in this module. Every function
also accepts, and converts at the edge:

- a float tensor ``[3, H, W]`` or ``[1, H, W]`` with values in [0, 1] (scaled by 255, rounded,
  clamped), or a ``uint8`` tensor ``[1, H, W]``; grey images are repeated to three channels;
- a PIL image (converted to RGB);
- a numpy array ``[H, W, 3]``, ``[H, W, 1]`` or ``[H, W]``, ``uint8`` or float in [0, 1].

Boxes are ``xyxy`` in absolute pixels. A box ``[x1, y1, x2, y2]`` covers the pixels with
``x1 <= x < x2`` and ``y1 <= y < y2`` (pixel ``(x, y)`` spans ``[x, x + 1) x [y, y + 1)``), and
its outline is drawn on the pixels just inside that region: columns ``round(x1)`` and
``round(x2) - 1``, rows ``round(y1)`` and ``round(y2) - 1``, ``width`` pixels thick, growing
inwards. So the outline of a tight box lies on the object's own border pixels.

Example:
    >>> from pixbox.data import make_scene
    >>> image, boxes, labels, names = make_scene(seed=0)
    >>> figure = draw_boxes(image, boxes, [names[i] for i in labels])
    >>> save_image(figure, "runs/scene.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageColor, ImageDraw
from torch import Tensor

from pixbox import _fonts
from pixbox._files import atomic_open
from pixbox._checks import check_number, check_shape, check_tensor

__all__ = ["PALETTE", "add_caption", "draw_boxes", "draw_masks", "label_color", "make_grid", "save_image",
           "to_pil"]

Color = Union[str, Sequence[int]]

#: The default box colours: distinct, saturated, readable on light and dark images.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (0, 130, 200),  # blue
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (0, 128, 128),  # teal
    (170, 110, 40),  # brown
    (255, 225, 25),  # yellow
    (128, 0, 0),  # maroon
    (128, 128, 0),  # olive
    (0, 0, 128),  # navy
    (250, 190, 212),  # pink
    (128, 128, 128),  # grey
)

_SUFFIX_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}


# ----------------------------------------------------------------------------------------------
# Conversions at the edge


def _as_image(image, name: str = "image") -> Tensor:
    """Any supported image to a contiguous CPU ``uint8`` tensor ``[3, H, W]`` (a new tensor)."""
    if isinstance(image, Image.Image):
        return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1).contiguous()
    if isinstance(image, np.ndarray):
        if image.ndim == 2:
            image = image[:, :, None]
        if image.ndim != 3 or image.shape[2] not in (1, 3):
            raise ValueError(f"{name} as a numpy array must have shape [H, W, 3], [H, W, 1] or [H, W], "
                             f"got {image.shape}")
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    elif not isinstance(image, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [3, H, W], a PIL image or a numpy array [H, W, 3], "
                        f"got {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"{name} must have shape [3, H, W] or [1, H, W], got {tuple(image.shape)}")
    image = image.detach().cpu()
    if image.is_floating_point():
        if bool(torch.isnan(image).any()):
            raise ValueError(f"{name} must not contain NaN")
        image = (image.double() * 255).round_().clamp_(0, 255).to(torch.uint8)
    elif image.dtype == torch.bool or image.is_complex():
        raise TypeError(f"{name} must be uint8 or floating point in [0, 1], got dtype {image.dtype}")
    elif image.dtype != torch.uint8:
        if bool((image < 0).any()) or bool((image > 255).any()):
            raise ValueError(f"{name} with integer dtype {image.dtype} must have values in [0, 255]")
        image = image.to(torch.uint8)
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    return image.contiguous().clone()


def to_pil(image) -> Image.Image:
    """Converts an image to a PIL RGB image.

    Args:
        image: ``uint8`` or float [0, 1] tensor ``[3, H, W]`` / ``[1, H, W]``, PIL image or numpy
            ``[H, W, 3]`` array (see the module docstring).

    Returns:
        PIL.Image.Image: mode ``"RGB"``, size ``(W, H)``.
    """
    return Image.fromarray(_as_image(image).permute(1, 2, 0).numpy())


def _from_pil(image: Image.Image) -> Tensor:
    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def save_image(image, path: str | os.PathLike) -> Path:
    """Writes an image to a PNG or JPEG file, atomically.

    The parent folder is created when missing. The image is first written to a temporary file in
    the same folder, then moved over ``path`` with :func:`os.replace`, so a reader never sees a
    half-written file.

    Args:
        image: anything :func:`to_pil` accepts.
        path (str or PathLike): ends in ``.png``, ``.jpg`` or ``.jpeg`` (any case).

    Returns:
        Path: ``path``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    fmt = _SUFFIX_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"path must end in one of {sorted(_SUFFIX_FORMATS)}, got {str(path)!r}")
    pil = to_pil(image)
    with atomic_open(path, "wb") as f:
        pil.save(f, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return path


# ----------------------------------------------------------------------------------------------
# Colours and text


def label_color(label: int | str) -> tuple[int, int, int]:
    """The default colour of a label: ``PALETTE[label % len(PALETTE)]`` for an int, a fixed
    (CRC-32) pick from :data:`PALETTE` for a string. The same label always gets the same colour."""
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer, str)):
        raise TypeError(f"label must be an int or a str, got {type(label).__name__}")
    if isinstance(label, str):
        return PALETTE[zlib.crc32(label.encode("utf-8")) % len(PALETTE)]
    return PALETTE[int(label) % len(PALETTE)]


def _parse_color(color, name: str) -> tuple[int, int, int]:
    if isinstance(color, str):
        try:
            rgb = ImageColor.getrgb(color)
        except ValueError:
            raise ValueError(f"{name} must be a colour name or '#rrggbb', got {color!r}") from None
        return tuple(rgb[:3])  # type: ignore[return-value]
    try:
        rgb = tuple(int(c) for c in color)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a colour name or an (r, g, b) tuple, got {color!r}") from None
    if len(rgb) != 3 or any(not 0 <= c <= 255 for c in rgb):
        raise ValueError(f"{name} must be an (r, g, b) tuple with values in [0, 255], got {color!r}")
    return rgb  # type: ignore[return-value]


def _is_single_color(colors) -> bool:
    if isinstance(colors, str):
        return True
    return (isinstance(colors, tuple) and len(colors) == 3
            and all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in colors))


def _default_font_size(height: int, width: int) -> int:
    return max(10, min(height, width) // 24)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Whether two half-open ``(x0, y0, x1, y1)`` rectangles intersect."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _draw_label(draw: ImageDraw.ImageDraw, font, text: str, box: tuple[int, int, int, int], width: int,
                rgb: tuple[int, int, int], size: tuple[int, int], placed: list) -> None:
    """Draws ``text`` on a filled ``rgb`` rectangle at the left edge of ``box`` (pixel xyxy).

    The first of these spots that lies in the image and does not cover an earlier label (the
    rectangles in ``placed``, which gets the new one) wins: above the box, inside its top, below
    it, then further and further above or below. When none is free, the first spot in the
    image is used. The label is kept inside the image horizontally.
    """
    w_img, h_img = size
    x1, y1, _, y2 = box
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = 2
    tw, th = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(max(x1, 0), max(w_img - tw, 0))
    spots = [y1 - th, y1 + width, y2]
    for k in range(1, 8):
        spots += [y1 - th - k * th, y2 + k * th]
    spots = [y for y in spots if 0 <= y <= h_img - th] or [min(max(y1 + width, 0), max(h_img - th, 0))]
    rects = [(x, y, x + tw, y + th) for y in spots]
    rect = next((r for r in rects if not any(_overlaps(r, p) for p in placed)), rects[0])
    placed.append(rect)
    draw.rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), fill=rgb)
    draw.text((rect[0] + pad - left, rect[1] + pad - top), text, fill=_fonts.text_color(rgb), font=font)


# ----------------------------------------------------------------------------------------------
# Drawing


def _check_labels(labels, n: int) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, (str, bytes)):
        raise TypeError("labels must be a sequence of str or int (one per box), got a single str")
    if isinstance(labels, Tensor):
        if labels.is_floating_point() or labels.is_complex() or labels.dim() != 1:
            raise TypeError(f"labels as a tensor must be a 1-D integer tensor, got dtype {labels.dtype} "
                            f"and shape {tuple(labels.shape)}")
        labels = labels.tolist()
    labels = list(labels)
    if len(labels) != n:
        raise ValueError(f"labels must have one entry per box ({n}), got {len(labels)}")
    for i, lab in enumerate(labels):
        if isinstance(lab, (bool, np.bool_)) or not isinstance(lab, (str, int, np.integer)):
            raise TypeError(f"labels[{i}] must be a str or an int, got {type(lab).__name__}")
    return labels


def _check_scores(scores, n: int) -> list[float] | None:
    if scores is None:
        return None
    if isinstance(scores, Tensor):
        check_shape(scores, "scores", (n,), f"[N] with N = {n} (one per box)")
        scores = scores.detach().cpu().double().tolist()
    try:
        scores = [float(s) for s in scores]
    except (TypeError, ValueError):
        raise TypeError(f"scores must be a sequence of numbers (one per box), got {type(scores).__name__}") from None
    if len(scores) != n:
        raise ValueError(f"scores must have one entry per box ({n}), got {len(scores)}")
    return scores


def _box_colors(colors, labels: list | None, n: int) -> list[tuple[int, int, int]]:
    if colors is None:
        if labels is None:
            return [PALETTE[i % len(PALETTE)] for i in range(n)]
        return [label_color(lab) for lab in labels]
    if _is_single_color(colors):
        return [_parse_color(colors, "colors")] * n
    try:
        colors = list(colors)
    except TypeError:
        raise TypeError(f"colors must be a colour, or a sequence of colours (one per box), got {colors!r}") from None
    if len(colors) != n:
        raise ValueError(f"colors must be one colour or one colour per box ({n}), got {len(colors)} colours")
    return [_parse_color(c, f"colors[{i}]") for i, c in enumerate(colors)]


def draw_boxes(
    image,
    boxes: Tensor,
    labels: Sequence[str | int] | Tensor | None = None,
    scores: Sequence[float] | Tensor | None = None,
    colors: Color | Sequence[Color] | None = None,
    *,
    width: int = 2,
    font_size: int | None = None,
) -> Tensor:
    """Draws box outlines, with optional ``"label score"`` captions, on a copy of an image.

    Args:
        image: ``uint8`` or float [0, 1] tensor ``[3, H, W]`` or ``[1, H, W]`` (grey is repeated to
            RGB), a PIL image, or a numpy array ``[H, W, 3]``. Not modified.
        boxes (Tensor[N, 4]): xyxy pixels, ``x1 <= x2``, ``y1 <= y2``, any real dtype. Boxes
            partly or wholly outside the image are drawn clipped (only their visible part).
        labels (sequence of str or int, or int Tensor[N], optional): text of each box; ints are
            written as numbers.
        scores (sequence of float or Tensor[N], optional): written after the label with two
            decimals, as ``"cat 0.93"`` (or ``"0.93"`` without labels). The captions sit on a
            filled rectangle of the box colour at the box's left edge: above the box, or where
            they do not cover an earlier caption (so earlier boxes get the best spots).
        colors (optional): one colour for all boxes (a Pillow colour name such as ``"red"``,
            ``"#ff0000"``, or an ``(r, g, b)`` tuple), or a sequence with one colour per box.
            Default: :func:`label_color` of each label, or ``PALETTE[i]`` for box ``i`` when there
            are no labels.
        width (int): outline thickness in pixels, >= 1, drawn inside the box.
        font_size (int, optional): text height in pixels; default ``max(10, min(H, W) // 24)``.

    Returns:
        Tensor[3, H, W]: ``uint8`` RGB, a new tensor. With no boxes, the input image converted.
    """
    out = _as_image(image)
    check_tensor(boxes, "boxes")
    check_shape(boxes, "boxes", (None, 4), "[N, 4]")
    if boxes.is_complex() or boxes.dtype == torch.bool:
        raise TypeError(f"boxes must be a real tensor, got dtype {boxes.dtype}")
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 1:
        raise ValueError(f"width must be an int >= 1, got {width!r}")
    if font_size is not None and (isinstance(font_size, bool) or not isinstance(font_size, (int, np.integer))
                                  or font_size < 1):
        raise ValueError(f"font_size must be an int >= 1 or None, got {font_size!r}")
    b = boxes.detach().cpu().double()
    n = b.shape[0]
    if bool(torch.isnan(b).any()):
        raise ValueError(f"boxes must not contain NaN; row {int(torch.isnan(b).any(1).nonzero()[0, 0])} does")
    bad = (b[:, 2] < b[:, 0]) | (b[:, 3] < b[:, 1])
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"boxes must be xyxy with x1 <= x2 and y1 <= y2; row {i} is {boxes[i].tolist()}")
    label_list = _check_labels(labels, n)
    score_list = _check_scores(scores, n)
    rgbs = _box_colors(colors, label_list, n)
    if n == 0:
        return out

    h, w = out.shape[1:]
    width = int(width)
    # Round to pixel edges, then clamp far outside coordinates to just beyond the image (so the
    # visible part is unchanged and Pillow never sees huge or infinite numbers).
    px = b.round().clamp(-width - 2, max(h, w) + width + 2).long().tolist()
    pil = to_pil(out)
    draw = ImageDraw.Draw(pil)
    for (x1, y1, x2, y2), rgb in zip(px, rgbs):
        # Pillow's rectangle includes both corners: the last covered pixel is x2 - 1.
        draw.rectangle((x1, y1, max(x2 - 1, x1), max(y2 - 1, y1)), outline=rgb, width=width)

    if label_list is not None or score_list is not None:
        font = _fonts.font(int(font_size) if font_size is not None else _default_font_size(h, w))
        placed: list[tuple[int, int, int, int]] = []
        for i, ((x1, y1, x2, y2), rgb) in enumerate(zip(px, rgbs)):
            if x2 <= 0 or y2 <= 0 or x1 >= w or y1 >= h:
                continue  # nothing of the box is visible: no caption either
            parts = []
            if label_list is not None:
                parts.append(str(label_list[i]))
            if score_list is not None:
                parts.append(f"{score_list[i]:.2f}")
            _draw_label(draw, font, " ".join(parts), (x1, y1, x2, y2), width, rgb, (w, h), placed)
    return _from_pil(pil)


def _as_mask(mask, size: tuple[int, int]) -> Tensor:
    """A ``[H, W]`` integer tensor or array to a CPU ``int64`` tensor, checked against ``size``."""
    if isinstance(mask, np.ndarray):
        if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == np.bool_):
            raise TypeError(f"mask must hold integer class indices, got numpy dtype {mask.dtype}")
        mask = torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))
    elif not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor [H, W] or a numpy array [H, W] of class indices, "
                        f"got {type(mask).__name__}")
    elif mask.is_floating_point() or mask.is_complex():
        raise TypeError(f"mask must hold integer class indices, got dtype {mask.dtype}")
    if mask.dim() != 2:
        raise ValueError(f"mask must have shape [H, W], got {tuple(mask.shape)}")
    if tuple(mask.shape) != size:
        raise ValueError(f"mask must have the image's height and width {size}, got {tuple(mask.shape)}")
    return mask.detach().cpu().long()


def _mask_palette(palette) -> Tensor:
    """The colours of the class indices, ``int64`` ``[K, 3]``."""
    if palette is None:
        from pixbox.data.io import VOC_COLORMAP  # lazily: keeps ``import pixbox.viz`` light

        return torch.from_numpy(VOC_COLORMAP.astype(np.int64))
    if isinstance(palette, (Tensor, np.ndarray)):
        array = palette.detach().cpu().numpy() if isinstance(palette, Tensor) else palette
        if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0:
            raise ValueError(f"palette as an array must have shape [K, 3] with K >= 1, got {tuple(array.shape)}")
        if not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 255:
            raise ValueError("palette as an array must hold integer colours in [0, 255]")
        return torch.from_numpy(array.astype(np.int64))
    if isinstance(palette, str) or not isinstance(palette, Sequence) or len(palette) == 0:
        raise TypeError(f"palette must be a non-empty sequence of colours (one per class index) or an "
                        f"array [K, 3], got {palette!r}")
    return torch.tensor([_parse_color(c, f"palette[{i}]") for i, c in enumerate(palette)], dtype=torch.int64)


def draw_masks(
    image,
    mask,
    *,
    alpha: float = 0.5,
    palette=None,
    background: int | None = 0,
    ignore_index: int | None = 255,
    ignore_color: Color | None = (255, 255, 255),
) -> Tensor:
    """Overlays a semantic segmentation mask on a copy of an image, one colour per class.

    A pixel of class ``c`` becomes ``floor((1 - alpha) * pixel + alpha * palette[c] + 0.5)``
    in each channel. Pixels of the ``background`` class are left as they are, so the image
    shows through; ``ignore_index`` pixels are blended (with the same ``alpha``) with
    ``ignore_color``, the white of VOC's boundary band by default.

    Args:
        image: ``uint8`` or float [0, 1] tensor ``[3, H, W]`` or ``[1, H, W]``, a PIL image, or a
            numpy array ``[H, W, 3]`` (see the module docstring). Not modified.
        mask (Tensor[H, W] or ndarray[H, W]): integer (or bool) class indices, the image's
            height and width. Values other than ``background`` and ``ignore_index`` must be in
            ``[0, K)`` for a palette of ``K`` colours.
        alpha (float): opacity of the colours, in [0, 1]: ``0`` returns the image, ``1`` paints
            the pure class colours.
        palette (optional): the colour of each class index: a sequence of colours (Pillow names,
            ``"#rrggbb"`` or ``(r, g, b)`` tuples) or an integer array ``[K, 3]``. Default:
            :data:`pixbox.data.io.VOC_COLORMAP` (256 colours: ``1`` (128, 0, 0), ``2``
            (0, 128, 0), ...), the colours in which VOC mask files, and the masks
            :func:`pixbox.data.io.write_mask` writes, show in an image viewer.
        background (int, optional): the class left unpainted; ``None`` paints every class.
        ignore_index (int, optional): the "ignore" value; ``None`` treats 255 as a class.
        ignore_color (optional): the colour of ignored pixels; ``None`` leaves them unpainted.

    Returns:
        Tensor[3, H, W]: ``uint8`` RGB, a new tensor.

    Example:
        >>> image = torch.full((3, 1, 3), 100, dtype=torch.uint8)
        >>> draw_masks(image, torch.tensor([[0, 1, 255]]))[0].tolist()  # red channel
        [[100, 114, 178]]
    """
    out = _as_image(image)
    check_number(alpha, "alpha", low=0, high=1)
    for name, value in (("background", background), ("ignore_index", ignore_index)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
            raise TypeError(f"{name} must be an int or None, got {type(value).__name__} {value!r}")
    m = _as_mask(mask, tuple(out.shape[1:]))
    colors = _mask_palette(palette)
    ignore_rgb = None if ignore_color is None else _parse_color(ignore_color, "ignore_color")

    painted = torch.ones_like(m, dtype=torch.bool)  # [H, W]
    if background is not None:
        painted &= m != int(background)
    ignored = painted & (m == int(ignore_index)) if ignore_index is not None else torch.zeros_like(painted)
    classes = painted & ~ignored  # [H, W]
    values = m[classes]
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= len(colors)):
        bad = classes & ((m < 0) | (m >= len(colors)))
        y, x = bad.nonzero()[0].tolist()
        raise ValueError(f"mask values must be in [0, {len(colors)}) for a palette of {len(colors)} colours "
                         f"(or be the background {background} or ignore_index {ignore_index}), got "
                         f"{int(m[y, x])} at (y={y}, x={x})")
    overlay = torch.zeros(3, *m.shape, dtype=torch.float64)  # [3, H, W]
    overlay[:, classes] = colors[values].T.double()
    if ignore_rgb is not None:
        overlay[:, ignored] = torch.tensor(ignore_rgb, dtype=torch.float64)[:, None]
    else:
        painted &= ~ignored
    a = float(alpha)
    blended = torch.floor(out.double() * (1 - a) + overlay * a + 0.5).clamp_(0, 255).to(torch.uint8)
    return torch.where(painted, blended, out)


def add_caption(image, text: str, *, font_size: int | None = None,
                background: Color = "white", color: Color = "black") -> Tensor:
    """Adds a band with a line (or lines) of text above an image, for titling figure panels.

    Args:
        image: anything :func:`to_pil` accepts.
        text (str): the caption; ``"\\n"`` starts a new line.
        font_size (int, optional): default as in :func:`draw_boxes`.
        background, color: colours of the band and of the text.

    Returns:
        Tensor[3, H + band, W]: ``uint8``; the image unchanged below the band.
    """
    img = _as_image(image)
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if font_size is not None:
        check_number(font_size, "font_size", low=1)
    h, w = img.shape[1:]
    font = _fonts.font(int(font_size) if font_size is not None else _default_font_size(h, w))
    # The band height comes from tall probe glyphs, not from the text, so that captions of the
    # same size and number of lines give bands of the same height.
    probe = "\n".join(["Ag(|"] * (text.count("\n") + 1))
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, _, bottom = scratch.multiline_textbbox((0, 0), probe, font=font)
    pad = 4
    band = bottom - top + 2 * pad
    canvas = Image.new("RGB", (w, h + band), _parse_color(background, "background"))
    canvas.paste(to_pil(img), (0, band))
    ImageDraw.Draw(canvas).multiline_text((pad - left, pad - top), text, font=font,
                                          fill=_parse_color(color, "color"))
    return _from_pil(canvas)


def make_grid(images: Sequence, ncol: int | None = None, pad: int = 4, *, pad_value: int = 255) -> Tensor:
    """Tiles images into one, row by row, for side-by-side figures.

    Each image is placed at the top-left of a cell as large as the largest image; cells are
    separated (and surrounded) by ``pad`` pixels of ``pad_value``.

    Args:
        images (sequence): one or more images, anything :func:`to_pil` accepts; sizes may differ.
        ncol (int, optional): images per row, >= 1; default all in one row.
        pad (int): spacing in pixels, >= 0.
        pad_value (int): grey level of the spacing and of unused cell area, in [0, 255].

    Returns:
        Tensor[3, rows * (Hmax + pad) + pad, ncol * (Wmax + pad) + pad]: ``uint8``.
    """
    if isinstance(images, (Tensor, np.ndarray, Image.Image)) or not isinstance(images, Sequence):
        raise TypeError(f"images must be a list or tuple of images, got {type(images).__name__}")
    if len(images) == 0:
        raise ValueError("images must not be empty")
    tiles = [_as_image(im, f"images[{i}]") for i, im in enumerate(images)]
    if ncol is None:
        ncol = len(tiles)
    if isinstance(ncol, bool) or not isinstance(ncol, (int, np.integer)) or ncol < 1:
        raise ValueError(f"ncol must be an int >= 1 or None, got {ncol!r}")
    if isinstance(pad, bool) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise ValueError(f"pad must be an int >= 0, got {pad!r}")
    check_number(pad_value, "pad_value", low=0, high=255)
    ncol = min(int(ncol), len(tiles))
    nrow = -(-len(tiles) // ncol)
    ch = max(t.shape[1] for t in tiles)
    cw = max(t.shape[2] for t in tiles)
    grid = torch.full((3, nrow * (ch + pad) + pad, ncol * (cw + pad) + pad), int(pad_value), dtype=torch.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, ncol)
        y, x = pad + r * (ch + pad), pad + c * (cw + pad)
        grid[:, y:y + t.shape[1], x:x + t.shape[2]] = t
    return grid
