import math

import numpy as np
import pytest
import torch
from PIL import Image

from pixbox.plots import nice_ticks, plot_curves
from pixbox.viz import PALETTE


def _read(path):
    return np.asarray(Image.open(path).convert("RGB"))


def _mask(image, color):
    return (image == np.array(color)).all(axis=2)


# --------------------------------------------------------------------------------------------
# Ticks


@pytest.mark.parametrize("lo, hi, n, expected", [
    (0, 1, 6, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
    (0, 1, 5, [0.0, 0.5, 1.0]),  # 0.2 would need 6 ticks
    (0, 1, 11, [k / 10 for k in range(11)]),
    (-3.2, 7.9, 6, [-5.0, 0.0, 5.0, 10.0]),
    (1, 10, 10, [float(k) for k in range(1, 11)]),
    (0.13, 0.87, 5, [0.0, 0.5, 1.0]),
    (0, 0.3, 4, [0.0, 0.1, 0.2, 0.3]),  # exact values, not 0.30000000000000004
    (1000, 5000, 5, [1000.0, 2000.0, 3000.0, 4000.0, 5000.0]),
    (0.0012, 0.0047, 5, [0.001, 0.002, 0.003, 0.004, 0.005]),
    (5, 5, 5, [2.0, 4.0, 6.0, 8.0]),  # a single value is widened by half of it
    (0, 0, 3, [-1.0, 0.0, 1.0]),
])
def test_nice_ticks_golden(lo, hi, n, expected):
    ticks = nice_ticks(lo, hi, n)
    assert ticks == expected
    assert len(ticks) <= n and ticks[0] <= lo and ticks[-1] >= hi


def test_nice_ticks_n_changes_the_step():
    assert nice_ticks(0, 10, 3) == [0.0, 5.0, 10.0]
    assert nice_ticks(0, 10, 6) == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]


def test_nice_ticks_errors():
    with pytest.raises(ValueError, match="lo must be <= hi, got lo=2 and hi=1"):
        nice_ticks(2, 1)
    with pytest.raises(ValueError, match="n must be >= 2, got 1"):
        nice_ticks(0, 1, 1)
    with pytest.raises(ValueError, match="lo must be a number, got NaN"):
        nice_ticks(float("nan"), 1)
    with pytest.raises(ValueError, match="must be finite"):
        nice_ticks(0, float("inf"))


# --------------------------------------------------------------------------------------------
# Images


def test_png_written_with_the_requested_size_and_series_colours(tmp_path):
    x = np.arange(10)
    path = plot_curves({"train": (x, x ** 2), "val": (x.tolist(), (100 - x ** 2).tolist())},
                       tmp_path / "sub" / "loss.png", title="loss", xlabel="epoch", ylabel="loss")
    assert path == tmp_path / "sub" / "loss.png"
    image = _read(path)
    assert image.shape == (420, 640, 3)
    assert _mask(image, PALETTE[0]).sum() > 200 and _mask(image, PALETTE[1]).sum() > 200
    assert not _mask(image, PALETTE[2]).any()
    assert [p.name for p in path.parent.iterdir()] == ["loss.png"]  # no temporary file left
    small = plot_curves({"a": (x, x)}, tmp_path / "small.png", size=(300, 200))
    assert _read(small).shape == (200, 300, 3)


def _column_mean_rows(mask):
    cols = np.flatnonzero(mask.any(axis=0))
    return cols, np.array([np.flatnonzero(mask[:, c]).mean() for c in cols])


@pytest.mark.parametrize("logy", [False, True])
def test_rising_curve_has_rising_pixels(tmp_path, logy):
    x = np.linspace(1, 20, 40)
    up, down = (10 ** (x / 5), 10 ** (-x / 5)) if logy else (3 * x, 70 - 3 * x)  # straight lines
    path = plot_curves({"rising": (x, up)}, tmp_path / "up.png", logy=logy)
    cols, rows = _column_mean_rows(_mask(_read(path), PALETTE[0]))
    assert len(cols) > 300  # a line across most of the plot
    # Image rows grow downwards: a rising curve has decreasing mean rows from left to right.
    # Averaged over five bands of columns, so that the legend swatch (a few columns) cannot
    # reverse the order.
    bands = [band.mean() for band in np.array_split(rows, 5)]
    assert all(a > b for a, b in zip(bands, bands[1:])), bands
    assert bands[0] > bands[-1] + 150

    path = plot_curves({"falling": (x, down)}, tmp_path / "down.png", logy=logy)
    cols, rows = _column_mean_rows(_mask(_read(path), PALETTE[0]))
    bands = [band.mean() for band in np.array_split(rows, 5)]
    assert all(a < b for a, b in zip(bands, bands[1:])), bands


def test_nan_makes_a_gap_and_isolated_points_get_markers(tmp_path):
    x = np.arange(11.0)
    full = _mask(_read(plot_curves({"s": (x, np.full(11, 5.0))}, tmp_path / "full.png")), PALETTE[0])
    y = np.full(11, 5.0)
    y[5] = np.nan
    gap = _mask(_read(plot_curves({"s": (x, y)}, tmp_path / "gap.png")), PALETTE[0])
    cols_full = np.flatnonzero(full.any(axis=0))
    cols_gap = np.flatnonzero(gap.any(axis=0))
    # The same axes: the gap image lacks a band of columns around x = 5, between x = 4 and 6.
    missing = np.setdiff1d(cols_full, cols_gap)
    assert 50 < len(missing) < 150
    mid = (cols_full.min() + cols_full.max()) / 2
    assert abs(missing.mean() - mid) < 20

    # A point between two NaNs, and a one-point series, are drawn as round markers: here in the
    # middle of the plot, where neither the lines nor the legend (in a corner) are.
    def centre(image, color):
        h, w = image.shape[:2]
        return int(_mask(image[int(0.3 * h):int(0.65 * h), int(0.35 * w):int(0.65 * w)], color).sum())

    y = np.array([1.0, 0.5, np.nan, 3.0, np.nan, 5.5, 5.0])
    image = _read(plot_curves({"s": (np.arange(7.0), y)}, tmp_path / "isolated.png", xlim=(0, 6), ylim=(0, 6)))
    assert 20 < centre(image, PALETTE[0]) < 80
    image = _read(plot_curves({"a": ([0.0, 6.0], [0.0, 0.0]), "one": ([3.0], [3.0])}, tmp_path / "one.png",
                              xlim=(0, 6), ylim=(0, 6)))
    assert 20 < centre(image, PALETTE[1]) < 80


def test_empty_series_and_empty_dict(tmp_path):
    image = _read(plot_curves({"none yet": ([], []), "a": ([0, 1], [0, 1])}, tmp_path / "e.png"))
    assert _mask(image, PALETTE[0]).sum() > 0  # the legend swatch of the empty series
    assert _mask(image, PALETTE[1]).sum() > 200
    image = _read(plot_curves({}, tmp_path / "none.png"))
    assert image.shape == (420, 640, 3)
    assert not any(_mask(image, c).any() for c in PALETTE if len(set(c)) > 1)  # greys: antialiased text
    image = _read(plot_curves({"nan": ([0, 1], [math.nan, math.nan])}, tmp_path / "nan.png"))
    assert image.shape == (420, 640, 3)


def test_tensor_input(tmp_path):
    x = torch.arange(5.0)
    image = _read(plot_curves({"t": (x, x * 2)}, tmp_path / "t.png"))
    assert _mask(image, PALETTE[0]).sum() > 100


def test_ylim_clips_lines_to_the_plot_area(tmp_path):
    x = np.arange(10.0)
    y = x * 20  # 0 .. 180
    free = _read(plot_curves({"s": (x, y)}, tmp_path / "free.png"))
    clipped = _read(plot_curves({"s": (x, y)}, tmp_path / "clip.png", ylim=(0, 50)))
    assert not np.array_equal(free, clipped)
    mask = _mask(clipped, PALETTE[0])
    rows = np.flatnonzero(mask.any(axis=1))
    assert rows.min() >= 8  # nothing drawn above the axes
    # With the limits, the line leaves the top of the plot at x of about 2.5, on the left; the
    # right part is empty below the legend.
    assert mask[:, : 640 // 3].sum() > 100
    assert not mask[130:, 640 // 2:].any()


@pytest.mark.parametrize("option", [{"title": "Loss"}, {"xlabel": "epoch"}, {"ylabel": "loss"}, {"logy": True},
                                    {"xlim": (0, 20)}, {"ylim": (0.5, 200)}])
def test_each_option_changes_the_image(tmp_path, option):
    x = np.arange(1.0, 11.0)
    series = {"s": (x, x ** 2)}
    base = _read(plot_curves(series, tmp_path / "base.png"))
    other = _read(plot_curves(series, tmp_path / "other.png", **option))
    assert base.shape == other.shape and not np.array_equal(base, other)


def test_logy_skips_non_positive_values(tmp_path):
    image = _read(plot_curves({"s": ([0, 1, 2, 3], [0.0, -1.0, 10.0, 100.0])}, tmp_path / "log.png", logy=True))
    assert _mask(image, PALETTE[0]).sum() > 50


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"series": {"loss": ([1, 2, 3], [1.0, 2.0])}}, ValueError,
     r"series\['loss'\] must have as many x values as y values, got 3 x and 2 y"),
    ({"series": [([1], [1])]}, TypeError, r"series must be a dict"),
    ({"series": {"a": [1, 2, 3]}}, TypeError, r"series\['a'\] must be a pair \(xs, ys\)"),
    ({"series": {"a": (["x"], [1.0])}}, TypeError, r"series\['a'\] xs must be a sequence of numbers"),
    ({"series": {"a": ([[1, 2]], [[1, 2]])}}, ValueError, r"series\['a'\] xs must be one-dimensional"),
    ({"series": {1: ([1], [1])}}, TypeError, r"series names must be str"),
    ({"ylim": (1, 0)}, ValueError, r"ylim must be finite with low < high"),
    ({"ylim": (0, 1), "logy": True}, ValueError, r"ylim must be positive with logy=True"),
    ({"size": (100, 50)}, ValueError, r"size must be at least \(160, 120\)"),
    ({"size": (640.0, 420)}, TypeError, r"size must be two ints"),
    ({"title": 3}, TypeError, r"title must be a str"),
    ({"path": "plot.gif"}, ValueError, r"path must end in one of"),
])
def test_bad_input(tmp_path, kwargs, exc, match):
    args = {"series": {"a": ([0, 1], [0, 1])}, "path": tmp_path / "p.png"}
    args.update(kwargs)
    if isinstance(args["path"], str):
        args["path"] = tmp_path / args["path"]
    series, path = args.pop("series"), args.pop("path")
    with pytest.raises(exc, match=match):
        plot_curves(series, path, **args)
