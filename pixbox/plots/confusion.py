"""Confusion matrices drawn with Pillow only: :func:`save_confusion_matrix` draws a ``[C, C]``
count matrix as a heat map with counts and row percentages; :func:`save_segmentation_confusion`
does the same for pixel counts."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw
from torch import Tensor

from pixbox import _fonts
from pixbox._checks import check_bool, check_class_names
from pixbox._files import atomic_open

__all__ = ["save_confusion_matrix", "save_segmentation_confusion"]


_TEXT = (0, 0, 0)
_CM_WHITE = np.array([255.0, 255.0, 255.0])
_CM_DARK_BLUE = np.array([8.0, 48.0, 107.0])
_CM_GRID = (200, 200, 200)
_CM_ZERO_TEXT = (170, 170, 170)
_CM_MAX_CELL, _CM_MIN_CELL = 64.0, 10.0
_CM_LABEL_CHARS = 24  # longer class names are cut to this many characters


def _cell_color(value: float) -> tuple[int, int, int]:
    """White (0) to dark blue (1), linear in RGB."""
    rgb = _CM_WHITE + (_CM_DARK_BLUE - _CM_WHITE) * min(max(value, 0.0), 1.0)
    return tuple(int(round(v)) for v in rgb)  # type: ignore[return-value]


def _short(name: str) -> str:
    """``name`` cut in the middle to ``_CM_LABEL_CHARS`` characters (the ends tell names apart best)."""
    if len(name) <= _CM_LABEL_CHARS:
        return name
    tail = _CM_LABEL_CHARS // 3
    return name[:_CM_LABEL_CHARS - 2 - tail] + ".." + name[-tail:]


def _cell_font(draw: ImageDraw.ImageDraw, cell: float, lines: list[str]):
    """The largest font (14 px down to 8 px) at which ``lines`` fit in a cell, or None."""
    for size in range(min(14, int(cell * 0.45)), 7, -1):
        font = _fonts.font(size)
        w = max(_fonts.text_box(draw, s, font)[0] for s in lines)
        h = sum(_fonts.text_box(draw, s, font)[1] for s in lines) + 2 * (len(lines) - 1)
        if w <= cell - 4 and h <= cell - 4:
            return font
    return None


def save_confusion_matrix(confusion, class_names: Sequence[str], path: str | os.PathLike, *,
                          normalize: bool = True, unit: str = "samples") -> Path:
    """Draws a confusion matrix as a PNG image (Pillow only).

    Rows are true classes (top to bottom), columns predicted classes (left to right), in the
    order of ``class_names``. Each cell is coloured by its row-normalized value (the fraction of
    the true class's samples, white for 0 to dark blue for 1; a row without samples stays white)
    and prints its count, with that fraction as a percentage below when ``normalize``. Cells
    shrink from 64 to 10 pixels as the number of classes grows (the grid is about
    ``160 * sqrt(C)`` pixels); the text shrinks with them down to 8 pixels, then the percentages
    are dropped (past about 40 classes), then the counts (past about 70 classes with 3-digit
    counts). Class names longer than 24 characters are cut in the middle; the column names are
    written vertically.

    Args:
        confusion (Tensor[C, C] or ndarray[C, C]): non-negative integer counts, rows true.
        class_names (Sequence[str]): the ``C`` class names.
        path (str or PathLike): a ``.png`` file, written atomically (parent folders created).
        normalize (bool): also print row percentages in the cells.
        unit (str): what is counted, for the title (``"samples"``, ``"pixels"``).

    Returns:
        Path: ``path``.
    """
    if isinstance(confusion, Tensor):
        cm = confusion.detach().cpu().numpy()
    elif isinstance(confusion, np.ndarray):
        cm = confusion
    else:
        raise TypeError(f"confusion must be a Tensor or ndarray [C, C], got {type(confusion).__name__}")
    names = check_class_names(class_names)
    c = len(names)
    if cm.shape != (c, c):
        raise ValueError(f"confusion must have shape [C, C] with C = len(class_names) = {c}, got {tuple(cm.shape)}")
    if cm.dtype == bool or not (np.issubdtype(cm.dtype, np.integer) or np.issubdtype(cm.dtype, np.floating)):
        raise TypeError(f"confusion must hold counts (integers), got dtype {cm.dtype}")
    if not np.isfinite(cm).all() or (cm < 0).any() or (cm != np.round(cm)).any():
        raise ValueError("confusion must hold non-negative integer counts")
    check_bool(normalize, "normalize")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"path must end in .png, got {str(path)!r}")

    counts = cm.astype(np.int64)
    rows = counts.sum(axis=1, keepdims=True)  # [C, 1]
    frac = np.where(rows > 0, counts / np.maximum(rows, 1), 0.0)  # [C, C], row-normalized

    cell = min(_CM_MAX_CELL, max(_CM_MIN_CELL, 160.0 / math.sqrt(c)))
    grid = int(round(c * cell))
    edges = [int(round(i * cell)) for i in range(c + 1)]  # cell i spans [edges[i], edges[i + 1])
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_font = _fonts.font(max(8, min(14, int(cell * 0.6))))
    title_font = _fonts.font(16)
    labels = [_short(n) for n in names]
    label_w = max(_fonts.text_box(scratch, s, label_font)[0] for s in labels)
    line_h = _fonts.text_box(scratch, "Ag", label_font)[1]
    title_h = _fonts.text_box(scratch, "Ag", title_font)[1]
    pad = 8

    # Layout, left to right: axis title "true", row names, grid; top to bottom: title, grid,
    # column names (vertical), axis title "predicted".
    x0 = pad + title_h + pad + label_w + pad
    y0 = pad + title_h + pad
    title = f"confusion matrix ({int(counts.sum())} {unit})"
    overhang = max(0, line_h - int(cell)) // 2 + 1  # the last column name may be wider than its cell
    width = max(x0 + grid + overhang + pad, pad + _fonts.text_box(scratch, title, title_font)[0] + pad)
    height = y0 + grid + pad + label_w + pad + title_h + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)

    # Cells and their text.
    max_count = str(int(counts.max())) if counts.size else "0"
    font = _cell_font(scratch, cell, [max_count, "100%"] if normalize else [max_count])
    show_percent = normalize and font is not None
    if font is None:
        font = _cell_font(scratch, cell, [max_count])
    for i in range(c):
        for j in range(c):
            box = (x0 + edges[j], y0 + edges[i], x0 + edges[j + 1] - 1, y0 + edges[i + 1] - 1)
            rgb = _cell_color(float(frac[i, j]))
            draw.rectangle(box, fill=rgb, outline=_CM_GRID if cell >= 6 else None)
            if font is None:
                continue
            count = int(counts[i, j])
            lines = [str(count)] + ([f"{100 * frac[i, j]:.0f}%"] if show_percent and count else [])
            color = _CM_ZERO_TEXT if count == 0 else _fonts.text_color(rgb)
            sizes = [_fonts.text_box(draw, s, font) for s in lines]
            total_h = sum(s[1] for s in sizes) + 2 * (len(lines) - 1)
            cx, y = (box[0] + box[2] + 1) / 2, (box[1] + box[3] + 1 - total_h) / 2
            for s, (tw, th, tl, tt) in zip(lines, sizes):
                draw.text((round(cx - tw / 2 - tl), round(y - tt)), s, fill=color, font=font)
                y += th + 2
    draw.rectangle((x0 - 1, y0 - 1, x0 + grid, y0 + grid), outline=_TEXT)

    # Row names (right-aligned), column names (vertical, reading upwards), axis titles.
    for i, s in enumerate(labels):
        tw, th, tl, tt = _fonts.text_box(draw, s, label_font)
        cy = y0 + (edges[i] + edges[i + 1]) / 2
        draw.text((x0 - pad // 2 - tw - tl, round(cy - th / 2 - tt)), s, fill=_TEXT, font=label_font)
    for j, s in enumerate(labels):
        tw, th, tl, tt = _fonts.text_box(draw, s, label_font)
        tile = Image.new("RGB", (tw + 2, th + 2), (255, 255, 255))
        ImageDraw.Draw(tile).text((1 - tl, 1 - tt), s, fill=_TEXT, font=label_font)
        tile = tile.rotate(90, expand=True)
        cx = x0 + (edges[j] + edges[j + 1]) / 2
        canvas.paste(tile, (round(cx - tile.width / 2), y0 + grid + pad // 2))
    tw, th, tl, tt = _fonts.text_box(draw, "predicted", title_font)
    draw.text((round(x0 + grid / 2 - tw / 2 - tl), height - pad - title_h - tt), "predicted", fill=_TEXT,
              font=title_font)
    tw, th, tl, tt = _fonts.text_box(draw, "true", title_font)
    tile = Image.new("RGB", (tw + 2, th + 2), (255, 255, 255))
    ImageDraw.Draw(tile).text((1 - tl, 1 - tt), "true", fill=_TEXT, font=title_font)
    tile = tile.rotate(90, expand=True)
    canvas.paste(tile, (pad, round(y0 + grid / 2 - tile.height / 2)))
    tw, th, tl, tt = _fonts.text_box(draw, title, title_font)
    draw.text((min(max(pad, round(x0 + grid / 2 - tw / 2)), width - pad - tw) - tl, pad - tt), title, fill=_TEXT,
              font=title_font)

    with atomic_open(path, "wb") as f:
        canvas.save(f, format="PNG")
    return path


def save_segmentation_confusion(confusion, class_names: Sequence[str], path: str | os.PathLike) -> Path:
    """Draws a pixel confusion matrix as a PNG, through :func:`save_confusion_matrix`.

    Rows are true classes, columns predicted classes; each cell shows its pixel count and its
    share of the true class's pixels (row-normalized colour and percentage).

    Args:
        confusion (Tensor[C, C] or ndarray[C, C]): pixel counts, e.g. ``metrics["confusion"]``
            of :class:`pixbox.metrics.segmentation.SegmentationEvaluator`.
        class_names (Sequence[str]): the ``C`` class names.
        path (str or PathLike): a ``.png`` file, written atomically (parent folders created).

    Returns:
        Path: ``path``.
    """
    return save_confusion_matrix(confusion, class_names, path, normalize=True, unit="pixels")
