"""The D2L book's plotting helpers on matplotlib (the optional extra ``pixbox[book]``):
``plt``, ``use_svg_display``, ``set_figsize``, ``set_axes``, ``bbox_to_rect``, ``show_bboxes``,
``show_images`` and ``Animator``.

Importing this module imports matplotlib; :mod:`pixbox.compat.d2l` does so only when one of
these names is first used, and turns a missing matplotlib into an ``ImportError`` naming the
extra. Without a display (no ``DISPLAY``/``WAYLAND_DISPLAY`` on Linux, outside IPython, and no
``MPLBACKEND``) matplotlib is switched to Agg before ``pyplot`` loads, so plotting never needs a
screen. Outside a notebook, :class:`Animator` writes its figure to a PNG file instead of
displaying it.
"""

from __future__ import annotations

import itertools
import os
import sys
import warnings
from pathlib import Path

import matplotlib

if ("matplotlib.pyplot" not in sys.modules and "MPLBACKEND" not in os.environ and sys.platform.startswith("linux")
        and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")
        and "IPython" not in sys.modules):
    matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402 - after choosing the backend

__all__ = ["Animator", "BookPlotWarning", "bbox_to_rect", "plt", "set_axes", "set_figsize", "show_bboxes",
           "show_images", "use_svg_display"]


class BookPlotWarning(UserWarning):
    """Issued when an :class:`Animator` writes its figure to a file instead of displaying it."""


def _ipython():
    ip_module = sys.modules.get("IPython")
    return ip_module.get_ipython() if ip_module is not None else None


def _in_notebook() -> bool:
    """Whether figures show inline: a Jupyter kernel, or IPython with the inline backend."""
    ip = _ipython()
    if ip is None:
        return False
    return "IPKernelApp" in getattr(ip, "config", {}) or "inline" in matplotlib.get_backend()


def use_svg_display() -> None:
    """Shows figures as SVG in a notebook (a no-op elsewhere)."""
    if _ipython() is None:
        return
    try:
        from matplotlib_inline import backend_inline
    except ImportError:
        return
    backend_inline.set_matplotlib_formats("svg")


def set_figsize(figsize=(3.5, 2.5)) -> None:
    """Sets the default figure size (inches) for matplotlib."""
    use_svg_display()
    plt.rcParams["figure.figsize"] = figsize


def set_axes(axes, xlabel, ylabel, xlim, ylim, xscale, yscale, legend) -> None:
    """Sets the labels, scales, limits, legend and grid of matplotlib ``axes``."""
    axes.set_xlabel(xlabel), axes.set_ylabel(ylabel)
    axes.set_xscale(xscale), axes.set_yscale(yscale)
    axes.set_xlim(xlim), axes.set_ylim(ylim)
    if legend:
        axes.legend(legend)
    axes.grid()


def bbox_to_rect(bbox, color):
    """A matplotlib ``Rectangle`` (unfilled, line width 2) for ``bbox`` ``(x1, y1, x2, y2)``."""
    return plt.Rectangle(xy=(bbox[0], bbox[1]), width=bbox[2] - bbox[0], height=bbox[3] - bbox[1],
                         fill=False, edgecolor=color, linewidth=2)


def _numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def show_bboxes(axes, bboxes, labels=None, colors=None) -> None:
    """Draws boxes (tensors, arrays or sequences ``(x1, y1, x2, y2)``) on ``axes``, each with
    its label on a patch of its colour; ``labels``/``colors`` may be one value or a list
    (colours cycle through ``b, g, r, m, c`` by default)."""

    def make_list(obj, default_values=None):
        if obj is None:
            obj = default_values
        elif not isinstance(obj, (list, tuple)):
            obj = [obj]
        return obj

    labels = make_list(labels)
    colors = make_list(colors, ["b", "g", "r", "m", "c"])
    for i, bbox in enumerate(bboxes):
        color = colors[i % len(colors)]
        rect = bbox_to_rect(_numpy(bbox), color)
        axes.add_patch(rect)
        if labels and len(labels) > i:
            text_color = "k" if color == "w" else "w"
            axes.text(rect.xy[0], rect.xy[1], labels[i], va="center", ha="center", fontsize=9, color=text_color,
                      bbox=dict(facecolor=color, lw=0))


def show_images(imgs, num_rows, num_cols, titles=None, scale=1.5):
    """Plots images (tensors ``[H, W(, C)]``, arrays or PIL images) in a grid without axes;
    returns the flattened array of axes."""
    figsize = (num_cols * scale, num_rows * scale)
    _, axes = plt.subplots(num_rows, num_cols, figsize=figsize)
    axes = axes.flatten()
    for i, (ax, img) in enumerate(zip(axes, imgs)):
        ax.imshow(_numpy(img))
        ax.axes.get_xaxis().set_visible(False)
        ax.axes.get_yaxis().set_visible(False)
        if titles:
            ax.set_title(titles[i])
    return axes


_animator_ids = itertools.count(1)


class Animator:
    """Plots lines that grow point by point (the book's ``Animator``).

    In a notebook the figure is redrawn in place after each :meth:`add`, as in the book.
    Elsewhere it is written to ``path`` (default ``d2l-animator-<n>.png`` in the current folder,
    ``n`` counting the animators of the process) after each :meth:`add`, and a
    :class:`BookPlotWarning` says where, once.

    Args: as the book's (``xlabel``, ``ylabel``, ``legend``, ``xlim``, ``ylim``, ``xscale``,
    ``yscale``, ``fmts``, ``nrows``, ``ncols``, ``figsize``), plus ``path``.
    """

    def __init__(self, xlabel=None, ylabel=None, legend=None, xlim=None, ylim=None, xscale="linear",
                 yscale="linear", fmts=("-", "m--", "g-.", "r:"), nrows=1, ncols=1, figsize=(3.5, 2.5),
                 path=None):
        if legend is None:
            legend = []
        use_svg_display()
        self.fig, self.axes = plt.subplots(nrows, ncols, figsize=figsize)
        if nrows * ncols == 1:
            self.axes = [self.axes]
        self.config_axes = lambda: set_axes(self.axes[0], xlabel, ylabel, xlim, ylim, xscale, yscale, legend)
        self.X, self.Y, self.fmts = None, None, fmts
        self.path = Path(path) if path is not None else Path(f"d2l-animator-{next(_animator_ids)}.png")
        self._told = False

    def add(self, x, y):
        """Adds one point to each line: ``y`` a number or a sequence (``None`` skips a line)."""
        if not hasattr(y, "__len__"):
            y = [y]
        n = len(y)
        if not hasattr(x, "__len__"):
            x = [x] * n
        if not self.X:
            self.X = [[] for _ in range(n)]
        if not self.Y:
            self.Y = [[] for _ in range(n)]
        for i, (a, b) in enumerate(zip(x, y)):
            if a is not None and b is not None:
                self.X[i].append(a)
                self.Y[i].append(b)
        self.axes[0].cla()
        for xs, ys, fmt in zip(self.X, self.Y, self.fmts):
            self.axes[0].plot(xs, ys, fmt)
        self.config_axes()
        self._show()

    def _show(self):
        if _in_notebook():
            from IPython import display

            display.display(self.fig)
            display.clear_output(wait=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fig.savefig(self.path)
        if not self._told:
            self._told = True
            warnings.warn(f"Animator: not in a notebook, so the figure goes to {str(self.path)!r}",
                          BookPlotWarning, stacklevel=3)
