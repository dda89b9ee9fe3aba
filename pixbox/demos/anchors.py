"""The anchor-box walkthrough of D2L ("Anchor Boxes" and "Multiscale Object Detection"), on a
generated scene, written as PNG files.

Figures (in ``out_dir``):

- ``anchors_multiscale.png``: D2L's ``display_anchors``: anchors of size 0.15 centred on a
  4 x 4 feature map, of size 0.4 on a 2 x 2 map and of size 0.8 on a 1 x 1 map, ratios 1, 2
  and 0.5, one panel each, with the ground-truth boxes.
- ``anchors_single_pixel.png``: the five anchors of one pixel for sizes 0.75, 0.5, 0.25 and
  ratios 1, 2, 0.5, labelled as in the book (``"s=0.75, r=1"``, ...).
- ``nms_before.png`` / ``nms_after.png``: noisy scored candidates around each object, before
  and after per-class NMS at IoU 0.5, with the box counts in the caption.

Run it with ``pixbox demo anchors --out DIR`` or :func:`run`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from pixbox import ops
from pixbox.data import make_scene
from pixbox.viz import add_caption, draw_boxes, label_color, make_grid, save_image

__all__ = ["display_anchors", "run"]

# The scene: a bit larger than make_scene's default so that the labels have room.
_HEIGHT, _WIDTH, _NUM_OBJECTS = 360, 480, 3
_RATIOS = (1.0, 2.0, 0.5)
# D2L "Multiscale Object Detection": (feature map (H, W), anchor size).
_MULTISCALE = (((4, 4), 0.15), ((2, 2), 0.4), ((1, 1), 0.8))
# D2L "Anchor Boxes": the anchors of one pixel.
_PIXEL_SIZES = (0.75, 0.5, 0.25)
# One colour per ratio (r=1, r=2, r=0.5), as the book's cycling 'b', 'g', 'r'.
_RATIO_COLORS = ((31, 119, 180), (44, 160, 44), (214, 39, 40))
_GT_COLOR = (20, 20, 20)
# NMS: candidates per object, their jitter (fraction of the box side) and the IoU threshold.
_CANDIDATES_PER_OBJECT = 5
_CENTER_JITTER, _LOG_SIZE_JITTER = 0.08, 0.1
_NMS_IOU_THRESHOLD = 0.5


def _anchor_names(sizes: Sequence[float], ratios: Sequence[float]) -> list[str]:
    """``"s=.., r=.."`` for the anchors of one cell, in :func:`pixbox.ops.generate_anchors` order."""
    pairs = [(s, ratios[0]) for s in sizes] + [(sizes[0], r) for r in ratios[1:]]
    return [f"s={s:g}, r={r:g}" for s, r in pairs]


def display_anchors(image: Tensor, feature_map_size: tuple[int, int], sizes: Sequence[float],
                    ratios: Sequence[float] = _RATIOS, *, gt_boxes: Tensor | None = None,
                    gt_labels: Sequence[str] | None = None) -> Tensor:
    """D2L's ``display_anchors``: the anchors of every cell of a feature map, on an image.

    Args:
        image (Tensor[3, H, W]): uint8 RGB.
        feature_map_size (tuple[int, int]): (fmap_h, fmap_w); anchors are centred on its cells.
        sizes, ratios: as in :func:`pixbox.ops.generate_anchors`.
        gt_boxes (Tensor[G, 4], optional): xyxy pixels, drawn on top in dark grey.
        gt_labels (sequence of str, optional): captions of ``gt_boxes``.

    Returns:
        Tensor[3, H, W]: uint8, with the anchors coloured by their position in the cell.
    """
    h, w = image.shape[-2:]
    anchors = ops.denormalize_boxes(ops.generate_anchors(feature_map_size, sizes, ratios), (h, w))
    k = ops.num_anchors_per_cell(sizes, ratios)
    colors = [_RATIO_COLORS[i % k % len(_RATIO_COLORS)] for i in range(anchors.shape[0])]
    out = draw_boxes(image, anchors, colors=colors, width=2)
    if gt_boxes is not None:
        out = draw_boxes(out, gt_boxes, gt_labels, colors=_GT_COLOR, width=2)
    return out


def _multiscale_figure(image: Tensor, gt_boxes: Tensor, gt_names: list[str]) -> Tensor:
    panels = []
    for (fh, fw), s in _MULTISCALE:
        panel = display_anchors(image, (fh, fw), [s], _RATIOS, gt_boxes=gt_boxes, gt_labels=gt_names)
        caption = f"{fh}x{fw} feature map, s={s:g}, r={', '.join(f'{r:g}' for r in _RATIOS)}"
        panels.append(add_caption(panel, caption))
    return make_grid(panels, ncol=len(panels), pad=8)


def _single_pixel_figure(image: Tensor) -> Tensor:
    h, w = image.shape[-2:]
    y, x = h // 2, w // 2
    # One anchor set per pixel (the feature map is the image itself), as in the book.
    anchors = ops.generate_anchors((h, w), _PIXEL_SIZES, _RATIOS)  # [H * W * k, 4]
    k = ops.num_anchors_per_cell(_PIXEL_SIZES, _RATIOS)
    pixel_anchors = ops.denormalize_boxes(anchors.reshape(h, w, k, 4)[y, x], (h, w))  # [k, 4]
    names = _anchor_names(_PIXEL_SIZES, _RATIOS)
    colors = ["blue", "green", "red", "magenta", "darkcyan"]
    out = draw_boxes(image, pixel_anchors, names, colors=colors, width=2)
    marker = torch.tensor([[x - 2.0, y - 2.0, x + 3.0, y + 3.0]])  # the pixel, as a small square
    out = draw_boxes(out, marker, colors="black", width=2)
    return add_caption(out, f"the {k} anchors centred on pixel (x={x}, y={y})")


def _noisy_candidates(gt_boxes: Tensor, gt_labels: Tensor, size: tuple[int, int],
                      generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Jittered copies of each ground-truth box with uniform random scores."""
    n = _CANDIDATES_PER_OBJECT
    cxcywh = ops.box_convert(gt_boxes, "xyxy", "cxcywh").repeat_interleave(n, dim=0)  # [G * n, 4]
    noise = torch.randn(cxcywh.shape, generator=generator)  # [G * n, 4]
    centers = cxcywh[:, :2] + _CENTER_JITTER * cxcywh[:, 2:] * noise[:, :2]
    sides = cxcywh[:, 2:] * torch.exp(_LOG_SIZE_JITTER * noise[:, 2:])
    boxes = ops.clip_boxes(ops.box_convert(torch.cat([centers, sides], dim=1), "cxcywh", "xyxy"), size)
    scores = torch.empty(boxes.shape[0]).uniform_(0.3, 1.0, generator=generator)
    labels = gt_labels.repeat_interleave(n)
    return boxes, scores, labels


def _nms_figures(image: Tensor, gt_boxes: Tensor, gt_labels: Tensor, class_names: list[str],
                 seed: int) -> tuple[Tensor, Tensor]:
    generator = torch.Generator().manual_seed(seed)
    boxes, scores, labels = _noisy_candidates(gt_boxes, gt_labels, tuple(image.shape[-2:]), generator)
    keep = ops.batched_nms(boxes, scores, labels, _NMS_IOU_THRESHOLD)

    def figure(idx: Tensor, caption: str) -> Tensor:
        names = [class_names[i] for i in labels[idx].tolist()]
        colors = [label_color(i) for i in labels[idx].tolist()]
        return add_caption(draw_boxes(image, boxes[idx], names, scores[idx], colors), caption)

    everything = torch.sort(scores, descending=True, stable=True).indices  # best captions first
    before = figure(everything, f"before NMS: {boxes.shape[0]} boxes")
    after = figure(keep, f"after per-class NMS (IoU {_NMS_IOU_THRESHOLD:g}): {keep.numel()} boxes")
    return before, after


def run(out_dir: str | os.PathLike, *, seed: int = 0) -> dict[str, Path]:
    """Writes the anchor walkthrough figures to ``out_dir`` (created when missing).

    Args:
        out_dir (str or PathLike): output folder.
        seed (int): seeds the scene and the NMS candidates; same seed, same figures.

    Returns:
        dict[str, Path]: ``{"anchors_multiscale": ..., "anchors_single_pixel": ..., "nms_before":
        ..., "nms_after": ...}``, the written PNG files.
    """
    out_dir = Path(out_dir)
    image, gt_boxes, gt_labels, class_names = make_scene(_HEIGHT, _WIDTH, _NUM_OBJECTS, seed=seed)
    gt_names = [class_names[i] for i in gt_labels.tolist()]
    nms_before, nms_after = _nms_figures(image, gt_boxes, gt_labels, class_names, seed)
    figures = {
        "anchors_multiscale": _multiscale_figure(image, gt_boxes, gt_names),
        "anchors_single_pixel": _single_pixel_figure(image),
        "nms_before": nms_before,
        "nms_after": nms_after,
    }
    return {name: save_image(fig, out_dir / f"{name}.png") for name, fig in figures.items()}
