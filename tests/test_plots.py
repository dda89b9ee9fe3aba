import math

import numpy as np
import pytest
import torch
from PIL import Image

from pixbox.plots import nice_ticks, plot_curves, save_confusion_matrix, save_segmentation_confusion
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


# --------------------------------------------------------------------------------------------
# Confusion matrices

_CM_NAMES = ["cat", "dog", "bird", "fish"]


def _diagonal_heavy(c, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 4, (c, c), generator=g) + torch.diag(torch.randint(30, 60, (c,), generator=g))


def _cell_corners(image, c):
    """Colours near the top-left corner of each cell, found from the blue-tinted grid area."""
    a = np.asarray(image.convert("RGB")).astype(np.int64)
    tinted = (a[..., 2] - a[..., 0] > 8)  # every cell of a matrix without zeros is (at least) light blue
    ys, xs = tinted.nonzero()
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    assert abs((y1 - y0) - (x1 - x0)) <= 2  # a square grid
    cell = (x1 - x0) / c
    luma = a @ np.array([299, 587, 114]) / 1000
    return np.array([[luma[int(y0 + i * cell) + 3, int(x0 + j * cell) + 3] for j in range(c)] for i in range(c)])


def test_save_confusion_matrix_writes_a_readable_png(tmp_path):
    cm = _diagonal_heavy(5)
    path = save_confusion_matrix(cm, _CM_NAMES + ["snake"], tmp_path / "sub" / "cm.png")
    assert path == tmp_path / "sub" / "cm.png" and not list((tmp_path / "sub").glob(".*"))  # no temp file left
    image = Image.open(path)
    image.load()
    assert image.format == "PNG" and image.mode == "RGB"
    corners = _cell_corners(image, 5)
    diag = np.diag(corners)
    off = corners[~np.eye(5, dtype=bool)]
    assert diag.max() < 120 and off.min() > 200 and diag.max() < off.min()  # diagonal dark, the rest light
    # The darkness follows the row-normalized value: a darker cell has a larger share of its row.
    frac = (cm / cm.sum(1, keepdim=True)).numpy()
    order = np.argsort(np.diag(frac))
    assert np.all(np.diff(diag[order]) <= 1)
    # normalize=False draws the same cells with fewer characters; numpy input works too.
    plain = save_confusion_matrix(cm.numpy(), _CM_NAMES + ["snake"], tmp_path / "plain.png", normalize=False)
    plain_corners = _cell_corners(Image.open(plain), 5)
    assert np.allclose(plain_corners, corners, atol=1)
    assert not np.array_equal(np.asarray(Image.open(plain)), np.asarray(image))


def test_save_confusion_matrix_size_grows_with_the_class_count(tmp_path):
    sizes = []
    for c in (1, 3, 12, 40, 100):
        names = [f"class {i}" if i % 2 else f"a rather long class name number {i}" for i in range(c)]
        path = save_confusion_matrix(_diagonal_heavy(c), names, tmp_path / f"cm{c}.png")
        image = Image.open(path)
        image.load()
        sizes.append(image.size)
    assert all(w1 < w2 and h1 < h2 for (w1, h1), (w2, h2) in zip(sizes, sizes[1:]))
    assert sizes[-1][0] < 2500  # 100 classes stay a reasonable picture
    # Rows with no samples stay white and do not break anything.
    empty = torch.zeros(3, 3, dtype=torch.int64)
    image = Image.open(save_confusion_matrix(empty, ["a", "b", "c"], tmp_path / "empty.png"))
    assert image.size[0] > 0


def test_save_confusion_matrix_errors(tmp_path):
    cm = torch.eye(3, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"confusion must have shape \[C, C\] with C = len\(class_names\) = 2"):
        save_confusion_matrix(cm, ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="confusion must hold non-negative integer counts"):
        save_confusion_matrix(-cm, ["a", "b", "c"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="confusion must hold non-negative integer counts"):
        save_confusion_matrix(cm * 0.5, ["a", "b", "c"], tmp_path / "x.png")
    with pytest.raises(TypeError, match="confusion must be a Tensor or ndarray"):
        save_confusion_matrix([[1]], ["a"], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"path must end in .png, got '.*x.jpg'"):
        save_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "x.jpg")
    with pytest.raises(TypeError, match="normalize must be a bool"):
        save_confusion_matrix(cm, ["a", "b", "c"], tmp_path / "x.png", normalize=1)
    assert not (tmp_path / "x.png").exists()


def test_save_segmentation_confusion_writes_a_png(tmp_path):
    names = ["background", "cat", "dog"]
    confusion = torch.tensor([[4, 1, 0], [0, 3, 1], [1, 1, 3]])  # pixel counts, rows true
    path = save_segmentation_confusion(confusion, names, tmp_path / "plots" / "confusion.png")
    assert path == tmp_path / "plots" / "confusion.png" and path.is_file()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        arr = np.asarray(im)
    assert arr.shape[0] > 100 and arr.shape[1] > 100
    assert (arr < 128).any()  # something dark was drawn (text, the 80% cell)
    with pytest.raises(ValueError, match=r"confusion must have shape \[C, C\]"):
        save_segmentation_confusion(torch.zeros(2, 2, dtype=torch.int64), names, tmp_path / "bad.png")

