"""Line charts drawn with Pillow only: training curves (loss, mAP, precision-recall).

:func:`plot_curves` draws one or more ``(x, y)`` series into a PNG: axes with "nice" tick
values (multiples of 1, 2 or 5 times a power of ten, from :func:`nice_ticks`), light grid
lines, one colour per series (``PALETTE[i]`` of :mod:`pixbox.viz` for the ``i``-th series, so
series ``i`` has the colour :func:`pixbox.viz.label_color` gives to label ``i``), a legend,
axis labels and a title. No display and no matplotlib are needed.

Curve data conventions:

- a NaN or infinite value (in x or y) is a gap: the line stops before it and starts again
  after it; with ``logy=True``, values ``<= 0`` are gaps too;
- a point with gaps (or the series' ends) on both sides, for example a one-point series, is
  drawn as a round marker, so it stays visible;
- an empty series draws nothing but keeps its colour and its legend entry;
- parts of the lines outside the axis limits are clipped at the axes.

Example:
    >>> epochs = [1, 2, 3, 4]
    >>> plot_curves({"train loss": (epochs, [1.2, 0.8, 0.6, 0.5]),
    ...              "val loss": (epochs, [1.3, 0.9, float("nan"), 0.7])},
    ...             "runs/loss.png", title="Loss", xlabel="epoch", ylabel="loss")  # doctest: +SKIP
    PosixPath('runs/loss.png')
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from pixbox import _fonts
from pixbox._checks import check_number
from pixbox.viz import PALETTE, save_image

__all__ = ["nice_ticks", "plot_curves"]

# Tick steps are ``m * 10**e`` for these mantissas.
_MANTISSAS = (1, 2, 5)
_BACKGROUND = (255, 255, 255)
_GRID = (225, 225, 225)
_AXES = (60, 60, 60)
_TEXT = (0, 0, 0)
_LINE_WIDTH = 2
_MARKER_RADIUS = 3
_MIN_SIZE = (160, 120)


# ----------------------------------------------------------------------------------------------
# Ticks


def _tick_value(k: int, m: int, e: int) -> float:
    """``k * m * 10**e``, correctly rounded (``3 * 0.1`` gives ``0.3``, not ``0.30000000000000004``)."""
    return k * m / 10 ** (-e) if e < 0 else float(k * m * 10**e)


def _nice_step(lo: float, hi: float, n: int) -> tuple[int, int, int, int]:
    """The smallest step ``m * 10**e`` whose multiples covering ``[lo, hi]`` are at most ``n``.

    Returns ``(m, e, k_lo, k_hi)``: the ticks are ``k * m * 10**e`` for ``k_lo <= k <= k_hi``.
    """
    e = math.floor(math.log10((hi - lo) / max(n - 1, 1))) - 1
    while True:
        for m in _MANTISSAS:
            s = m * 10.0**e
            # A small tolerance so that rounding noise (hi / s = 3.0000000000000004) does not add a tick.
            k_lo = math.floor(lo / s + 1e-9)
            k_hi = math.ceil(hi / s - 1e-9)
            if k_hi - k_lo + 1 <= n:
                return m, e, k_lo, k_hi
        e += 1


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering ``[lo, hi]``: at most ``n`` multiples of the smallest step.

    The step is ``m * 10**e`` with ``m`` in ``(1, 2, 5)``; the ticks run from the largest
    multiple of the step ``<= lo`` to the smallest multiple ``>= hi``, so the first and last
    ticks make good axis limits. When ``lo == hi`` the range is first widened to
    ``lo -/+ |lo| / 2`` (or ``-1 .. 1`` for zero).

    Args:
        lo (float): lower end of the data, finite.
        hi (float): upper end, finite, ``>= lo``.
        n (int): the most ticks wanted, ``>= 2``.

    Returns:
        list[float]: at least two increasing ticks, ``ticks[0] <= lo`` and ``ticks[-1] >= hi``,
        each correctly rounded (``0.3``, never ``0.30000000000000004``).

    Example:
        >>> nice_ticks(0, 1, 6)
        [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        >>> nice_ticks(-3.2, 7.9, 6)
        [-5.0, 0.0, 5.0, 10.0]
    """
    lo = check_number(lo, "lo")
    hi = check_number(hi, "hi")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"lo and hi must be finite, got lo={lo} and hi={hi}")
    if lo > hi:
        raise ValueError(f"lo must be <= hi, got lo={lo} and hi={hi}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    lo, hi = float(lo), float(hi)
    if lo == hi:
        pad = abs(lo) / 2 if lo != 0 else 1.0
        lo, hi = lo - pad, hi + pad
    m, e, k_lo, k_hi = _nice_step(lo, hi, int(n))
    return [_tick_value(k, m, e) + 0.0 for k in range(k_lo, k_hi + 1)]  # + 0.0 turns -0.0 into 0.0


def _format_linear(values: list[float], step: float) -> list[str]:
    """Tick labels with as many decimals as the step needs (``0.2`` -> 1, ``0.05`` -> 2)."""
    big = max(abs(v) for v in values) if values else 0.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    if big >= 1e6 or decimals > 5:
        return [f"{v:.3g}" for v in values]
    return [f"{v + 0.0:.{decimals}f}" for v in values]


def _format_power(e: int) -> str:
    v = 10.0**e
    return f"{v:g}" if -3 <= e <= 4 else f"1e{e}"


class _Axis:
    """Limits, ticks and tick labels of one axis, in plotting space (log10 values when ``log``)."""

    def __init__(self, values: np.ndarray, lim, n: int, log: bool):
        self.log = log
        if log:
            self._init_log(values, lim, n)
        else:
            self._init_linear(values, lim, n)

    def _init_linear(self, values: np.ndarray, lim, n: int) -> None:
        if lim is not None:
            lo, hi = lim
            ticks = [t for t in nice_ticks(lo, hi, n) if lo - 1e-9 * (hi - lo) <= t <= hi + 1e-9 * (hi - lo)]
        else:
            lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
            ticks = nice_ticks(lo, hi, n)
            lo, hi = ticks[0], ticks[-1]
        step = (ticks[1] - ticks[0]) if len(ticks) > 1 else (hi - lo)
        self.lo, self.hi = lo, hi
        self.ticks = ticks
        self.labels = _format_linear(ticks, step)

    def _init_log(self, values: np.ndarray, lim, n: int) -> None:
        if lim is not None:
            vlo, vhi = lim
        elif values.size:
            vlo, vhi = float(values.min()), float(values.max())
        else:
            vlo, vhi = 0.1, 10.0
        elo, ehi = math.log10(vlo), math.log10(vhi)
        if ehi - elo >= 1 or vlo == vhi:
            # Decades: the limits are whole decades; the ticks every k-th decade, k as small as n allows.
            a, b = math.floor(elo + 1e-9), math.ceil(ehi - 1e-9)
            if a == b:
                a, b = a - 1, b + 1
            if lim is None:
                elo, ehi = float(a), float(b)
            k = 1
            while math.floor(b / k) - math.ceil(a / k) + 1 > n:
                k += 1
            ticks = [float(j * k) for j in range(math.ceil(a / k), math.floor(b / k) + 1)]
            ticks = [t for t in ticks if elo - 1e-9 <= t <= ehi + 1e-9]
            self.labels = [_format_power(round(t)) for t in ticks]
            self.ticks = ticks
        else:
            # Less than a decade: round linear values, spaced on the log scale.
            lin = nice_ticks(vlo, vhi, n)
            if lim is None:
                below = [t for t in lin if 0 < t <= vlo]
                elo = math.log10(below[-1]) if below else elo
                ehi = math.log10(lin[-1])
            kept = [t for t in lin if t > 0 and elo - 1e-9 <= math.log10(t) <= ehi + 1e-9]
            self.ticks = [math.log10(t) for t in kept]
            self.labels = _format_linear(kept, lin[1] - lin[0])
        self.lo, self.hi = elo, ehi


# ----------------------------------------------------------------------------------------------
# Input checks


def _as_values(values, name: str) -> np.ndarray:
    """A sequence, numpy array or tensor of numbers to a 1-D ``float64`` array."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of numbers, got a str")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a sequence of numbers, got {values!r}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _check_series(series) -> list[tuple[str, np.ndarray, np.ndarray]]:
    if not isinstance(series, Mapping):
        raise TypeError(f"series must be a dict {{name: (xs, ys)}}, got {type(series).__name__}")
    out = []
    for name, pair in series.items():
        if not isinstance(name, str):
            raise TypeError(f"series names must be str, got {type(name).__name__} {name!r}")
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise TypeError(f"series[{name!r}] must be a pair (xs, ys) of sequences, got {pair!r}")
        xs = _as_values(pair[0], f"series[{name!r}] xs")
        ys = _as_values(pair[1], f"series[{name!r}] ys")
        if len(xs) != len(ys):
            raise ValueError(f"series[{name!r}] must have as many x values as y values, "
                             f"got {len(xs)} x and {len(ys)} y values")
        out.append((name, xs, ys))
    return out


def _check_lim(lim, name: str, log: bool) -> tuple[float, float] | None:
    if lim is None:
        return None
    try:
        lo, hi = lim
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be None or a pair (low, high), got {lim!r}") from None
    lo = float(check_number(lo, f"{name}[0]"))
    hi = float(check_number(hi, f"{name}[1]"))
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise ValueError(f"{name} must be finite with low < high, got {lim!r}")
    if log and lo <= 0:
        raise ValueError(f"{name} must be positive with logy=True, got {lim!r}")
    return lo, hi


def _check_size(size) -> tuple[int, int]:
    try:
        w, h = size
    except (TypeError, ValueError):
        raise ValueError(f"size must be (width, height), got {size!r}") from None
    for v, what in ((w, "width"), (h, "height")):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"size must be two ints (width, height), got {size!r}")
    if w < _MIN_SIZE[0] or h < _MIN_SIZE[1]:
        raise ValueError(f"size must be at least {_MIN_SIZE} (width, height), got {tuple(size)}")
    return int(w), int(h)


# ----------------------------------------------------------------------------------------------
# Drawing


def _clip_segment(x0, y0, x1, y1, box) -> tuple[float, float, float, float] | None:
    """Liang-Barsky: the part of a segment inside ``box = (xmin, ymin, xmax, ymax)``, or None."""
    xmin, ymin, xmax, ymax = box
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0 - xmin), (dx, xmax - x0), (-dy, y0 - ymin), (dy, ymax - y0)):
        if p == 0:
            if q < 0:
                return None
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 > t1:
            return None
    return x0 + t0 * dx, y0 + t0 * dy, x0 + t1 * dx, y0 + t1 * dy


def _runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of the consecutive True values."""
    edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _draw_series(draw: ImageDraw.ImageDraw, px: np.ndarray, py: np.ndarray, valid: np.ndarray,
                 color, clip_box) -> None:
    """Draws the runs of valid points as lines, and isolated points as markers (plot-area pixels)."""
    xmin, ymin, xmax, ymax = clip_box
    r = _MARKER_RADIUS
    for start, stop in _runs(valid):
        if stop - start == 1:
            x, y = px[start], py[start]
            if xmin <= x <= xmax and ymin <= y <= ymax:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=color)
            continue
        for i in range(start, stop - 1):
            seg = _clip_segment(px[i], py[i], px[i + 1], py[i + 1], clip_box)
            if seg is not None:
                draw.line(seg, fill=color, width=_LINE_WIDTH)


def plot_curves(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: str | os.PathLike,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    ylim: tuple[float, float] | None = None,
    logy: bool = False,
    size: tuple[int, int] = (640, 420),
    xlim: tuple[float, float] | None = None,
) -> Path:
    """Draws a line chart of one or more series and writes it to a PNG (or JPEG) file.

    Args:
        series (dict[str, tuple[xs, ys]]): legend name -> ``(xs, ys)``, two 1-D sequences
            (lists, numpy arrays or tensors) of the same length. Series ``i`` (in dict order) is
            drawn in ``PALETTE[i % len(PALETTE)]``. NaN or infinite values are gaps; a point
            between gaps is drawn as a marker; an empty series only appears in the legend.
            An empty dict draws empty axes.
        path (str or PathLike): the file, ending in ``.png`` (or ``.jpg``/``.jpeg``); its folder
            is created when missing and it is written atomically (:func:`pixbox.viz.save_image`).
        title (str): drawn above the plot; ``""`` for none.
        xlabel (str): drawn below the x axis.
        ylabel (str): drawn, rotated, left of the y axis.
        ylim (tuple[float, float], optional): ``(low, high)`` y axis limits; default: from the
            data, widened to round tick values. Lines beyond the limits are clipped.
        logy (bool): logarithmic y axis (for losses); values ``<= 0`` then become gaps.
        size (tuple[int, int]): ``(width, height)`` of the image in pixels, at least (160, 120).
        xlim (tuple[float, float], optional): ``(low, high)`` x axis limits; default from the data.

    Returns:
        Path: ``path``. The image is ``uint8`` RGB of ``size``.
    """
    items = _check_series(series)
    for value, name in ((title, "title"), (xlabel, "xlabel"), (ylabel, "ylabel")):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not isinstance(logy, (bool, np.bool_)):
        raise TypeError(f"logy must be a bool, got {type(logy).__name__}")
    ylim = _check_lim(ylim, "ylim", bool(logy))
    xlim = _check_lim(xlim, "xlim", False)
    width, height = _check_size(size)
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")

    # Which points can be drawn, and the data ranges.
    valids = []
    for _, xs, ys in items:
        ok = np.isfinite(xs) & np.isfinite(ys)
        if logy:
            ok &= ys > 0
        valids.append(ok)
    all_x = np.concatenate([xs[ok] for (_, xs, _), ok in zip(items, valids)] + [np.zeros(0)])
    all_y = np.concatenate([ys[ok] for (_, _, ys), ok in zip(items, valids)] + [np.zeros(0)])

    # Fonts and margins.
    font_size = max(10, round(min(width, height) / 30))
    font, title_font = _fonts.font(font_size), _fonts.font(font_size + 2)
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    pad, tick_len = max(4, font_size // 2), 4
    line_h = _fonts.text_box(draw, "0123456789", font)[1]
    top = pad + (_fonts.text_box(draw, title, title_font)[1] + pad if title else line_h // 2)
    bottom = height - (pad + tick_len + line_h + pad + ((line_h + pad) if xlabel else 0))
    plot_h = bottom - top
    yaxis = _Axis(all_y, ylim, max(4, min(11, plot_h // 40)), bool(logy))
    label_w = max([_fonts.text_box(draw, s, font)[0] for s in yaxis.labels] + [0])
    left = pad + ((line_h + pad) if ylabel else 0) + label_w + tick_len + pad
    right = width - pad - font_size
    plot_w = right - left
    if plot_w < 40 or plot_h < 40:
        raise ValueError(f"size {size} is too small for the labels: the plot area would be "
                         f"{plot_w} x {plot_h} pixels")
    xaxis = _Axis(all_x, xlim, max(4, min(11, plot_w // 70)), False)

    def to_px(v: np.ndarray) -> np.ndarray:
        return left + (v - xaxis.lo) / (xaxis.hi - xaxis.lo) * plot_w

    def to_py(v: np.ndarray) -> np.ndarray:
        v = np.log10(np.where(v > 0, v, 1.0)) if logy else v
        return bottom - (v - yaxis.lo) / (yaxis.hi - yaxis.lo) * plot_h

    # Grid, ticks and tick labels.
    for t, s in zip(xaxis.ticks, xaxis.labels):
        x = round(float(to_px(np.float64(t))))
        draw.line((x, top, x, bottom), fill=_GRID)
        draw.line((x, bottom, x, bottom + tick_len), fill=_AXES)
        tw, _, tl, tt = _fonts.text_box(draw, s, font)
        tx = min(max(x - tw // 2, 0), width - tw)
        draw.text((tx - tl, bottom + tick_len + pad // 2 - tt), s, fill=_TEXT, font=font)
    for t, s in zip(yaxis.ticks, yaxis.labels):
        y = round(bottom - (t - yaxis.lo) / (yaxis.hi - yaxis.lo) * plot_h)
        draw.line((left, y, right, y), fill=_GRID)
        draw.line((left - tick_len, y, left, y), fill=_AXES)
        tw, th, tl, tt = _fonts.text_box(draw, s, font)
        draw.text((left - tick_len - pad // 2 - tw - tl, y - th // 2 - tt), s, fill=_TEXT, font=font)

    # Series, clipped to the plot area: drawn on a crop of the canvas, pasted back.
    area = canvas.crop((left, top, right + 1, bottom + 1))
    area_draw = ImageDraw.Draw(area)
    clip_box = (0.0, 0.0, float(plot_w), float(plot_h))
    colors = [PALETTE[i % len(PALETTE)] for i in range(len(items))]
    for (_, xs, ys), ok, color in zip(items, valids, colors):
        if ok.any():
            _draw_series(area_draw, to_px(xs) - left, to_py(ys) - top, ok, color, clip_box)
    canvas.paste(area, (left, top))
    draw.rectangle((left, top, right, bottom), outline=_AXES)

    # Labels and title.
    if xlabel:
        tw, th, tl, tt = _fonts.text_box(draw, xlabel, font)
        draw.text((left + (plot_w - tw) // 2 - tl, height - pad - line_h - tt), xlabel, fill=_TEXT, font=font)
    if ylabel:
        tw, th, tl, tt = _fonts.text_box(draw, ylabel, font)
        label = Image.new("RGB", (tw + 2, th + 2), _BACKGROUND)
        ImageDraw.Draw(label).text((1 - tl, 1 - tt), ylabel, fill=_TEXT, font=font)
        label = label.rotate(90, expand=True)
        canvas.paste(label, (pad, max(top + (plot_h - label.height) // 2, 0)))
    if title:
        tw, th, tl, tt = _fonts.text_box(draw, title, title_font)
        draw.text(((width - tw) // 2 - tl, pad - tt), title, fill=_TEXT, font=title_font)

    if items:
        _draw_legend(canvas, draw, [name for name, _, _ in items], colors, font, (left, top, right, bottom), pad)
    return save_image(canvas, path)


def _draw_legend(canvas: Image.Image, draw: ImageDraw.ImageDraw, names: list[str], colors, font,
                 plot_box: tuple[int, int, int, int], pad: int) -> None:
    """Draws the legend in the corner of the plot area that covers the fewest line pixels.

    Entries that do not fit in the plot's height go on into further columns.
    """
    left, top, right, bottom = plot_box
    margin = pad
    line_h = _fonts.text_box(draw, "Ag", font)[1]
    row_h = line_h + pad // 2
    swatch = 3 * line_h // 2
    text_w = max(_fonts.text_box(draw, name, font)[0] for name in names)
    per_col = max(1, min(len(names), (bottom - top - 2 * margin - 2 * pad + pad // 2) // row_h))
    ncols = -(-len(names) // per_col)
    per_col = -(-len(names) // ncols)  # balanced columns
    col_w = pad + swatch + pad // 2 + text_w
    w = ncols * col_w + pad
    h = pad + per_col * row_h - pad // 2 + pad
    corners = [  # matplotlib's "best" order: upper right, upper left, lower left, lower right
        (right - margin - w, top + margin),
        (left + margin, top + margin),
        (left + margin, bottom - margin - h),
        (right - margin - w, bottom - margin - h),
    ]
    pixels = np.asarray(canvas, dtype=np.int16)
    ink = np.zeros(pixels.shape[:2], dtype=bool)
    for color in set(colors):
        ink |= (pixels == np.array(color, dtype=np.int16)).all(axis=2)
    counts = []
    for x0, y0 in corners:
        ys, xs = slice(max(y0, 0), max(y0 + h, 0)), slice(max(x0, 0), max(x0 + w, 0))
        counts.append(int(ink[ys, xs].sum()))
    x0, y0 = corners[int(np.argmin(counts))]
    draw.rectangle((x0, y0, x0 + w, y0 + h), fill=_BACKGROUND, outline=_AXES)
    for i, (name, color) in enumerate(zip(names, colors)):
        col, row = divmod(i, per_col)
        cy = y0 + pad + row * row_h + line_h // 2
        sx = x0 + pad + col * col_w
        draw.line((sx, cy, sx + swatch, cy), fill=color, width=_LINE_WIDTH)
        tw, th, tl, tt = _fonts.text_box(draw, name, font)
        draw.text((sx + swatch + pad // 2 - tl, cy - th // 2 - tt), name, fill=_TEXT, font=font)
