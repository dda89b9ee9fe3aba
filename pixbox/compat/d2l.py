"""The D2L book's ``d2l`` names used by its computer-vision chapter, on pixbox.

The chapter's notebooks (D2L 1.0.3, PyTorch) run with ``from pixbox.compat import d2l`` in place
of ``from d2l import torch as d2l``, offline, and print the book's outputs (see docs/book.md for
exactly which cells). The names, by module:

- boxes and anchors (:mod:`~pixbox.compat._d2l_boxes`, on :mod:`pixbox.ops`):
  ``box_corner_to_center``, ``box_center_to_corner``, ``multibox_prior``, ``box_iou``,
  ``assign_anchor_to_bbox``, ``offset_boxes``, ``multibox_target``, ``offset_inverse``, ``nms``,
  ``multibox_detection``; the TinySSD blocks ``cls_predictor``, ``bbox_predictor``,
  ``flatten_pred``, ``concat_preds``, ``down_sample_blk``, ``base_net``
  (:mod:`pixbox.models.ssd`);
- computation (:mod:`~pixbox.compat._d2l_train`): ``corr2d``, ``resnet18``, ``init_cnn``,
  ``accuracy``, ``evaluate_accuracy_gpu``, ``train_batch_ch13``, ``train_ch13``;
- data (:mod:`~pixbox.compat._d2l_data`, :mod:`~pixbox.compat._d2l_download`):
  ``read_data_bananas``, ``BananasDataset``, ``load_data_bananas``, ``VOC_COLORMAP``,
  ``VOC_CLASSES``, ``voc_colormap2label``, ``voc_label_indices``, ``voc_rand_crop``,
  ``read_voc_images``, ``VOCSegDataset``, ``load_data_voc``, ``DATA_HUB``, ``DATA_URL``,
  ``download``, ``extract``, ``download_extract``;
- utilities (:mod:`~pixbox.compat._d2l_utils`): ``Timer``, ``Accumulator``, ``cpu``, ``gpu``,
  ``num_gpus``, ``try_gpu``, ``try_all_gpus``, ``get_dataloader_workers``, and ``Image`` (PIL);
- plotting (:mod:`~pixbox.compat._d2l_plot`, needs matplotlib: ``pip install 'pixbox[book]'``):
  ``plt``, ``use_svg_display``, ``set_figsize``, ``set_axes``, ``bbox_to_rect``,
  ``show_bboxes``, ``show_images``, ``Animator``. This module imports without matplotlib; these
  names are loaded on first use and raise an ``ImportError`` naming the extra when it is missing.

**Offline data.** Nothing is downloaded. ``download_extract`` returns a real copy of the book's
data when it is in ``../data`` (or extracts the book's archive found there), and otherwise, for
``banana-detection``, ``voc2012`` and ``hotdog``, writes pixbox's generated stand-in in the
book's layout and counts (:mod:`pixbox.compat._d2l_standins`), once, with a
:class:`BookDataWarning`.

**Quick runs.** ``PIXBOX_BOOK_QUICK=N`` (an int >= 1) cuts ``train_ch13`` and
``evaluate_accuracy_gpu`` to ``N`` batches per epoch, and the loaders of ``load_data_bananas`` and
``load_data_voc`` to ``N`` batches per pass (so loops the notebooks write themselves, as in the
SSD section, are cut too).

Differences from D2L 1.0.3, all where D2L crashes, is wrong, or needs a network:

- ``try_all_gpus()`` returns ``[cpu]`` without a GPU (D2L returns ``[]``, and ``train_ch13``
  then fails on ``devices[0]``); ``train_ch13`` also accepts ``devices=[]`` as ``[cpu]``, and
  does not divide by zero when an epoch has fewer than 5 batches.
- ``train_ch13`` trains without plotting when matplotlib is missing.
- ``download`` never downloads (see above); ``download_extract`` extracts a book archive found
  in ``../data`` without checking the network first.
- ``resnet18`` is built from ordinary (not lazy) layers, so its parameters exist before the
  first forward pass; module names and shapes are the book's. ``net.apply(init_cnn)`` therefore
  gives every convolution Xavier weights (the book's lazy layers are skipped until they have
  seen data).
- ``corr2d`` keeps a float input's dtype and device (the book returns float32 on the CPU).
- ``get_dataloader_workers()`` is ``min(4, CPUs)`` (the book: 4).
- ``read_data_bananas`` reads images with several label rows (padded with rows of -1; the book
  keeps one image per row).
- ``Animator`` writes its figure to a PNG file outside a notebook (see :class:`Animator`).
- Boxes and anchors: ``multibox_target`` accepts labels with no rows (``[B, 0, 5]``; D2L
  crashes) and ignores padding rows (class -1) wherever they are (D2L matches them as real
  objects); ``assign_anchor_to_bbox`` only makes a bipartite assignment where IoU > 0 (D2L keeps
  assigning arbitrary anchors once every IoU is 0), ties to the lower anchor then the lower box
  as D2L's ``argmax``, and its ``device`` argument is accepted but the result stays on the
  inputs' device; ``nms`` breaks score ties by the lower index (D2L's sort leaves tie order
  unspecified); ``offset_inverse`` and ``multibox_detection`` clamp log-size offsets before
  ``exp`` (no effect on normal outputs); the IoU of two zero-area boxes is 0, not NaN;
  ``multibox_detection`` and ``nms`` detach their inputs (the SSD section's ``predict`` passes
  network outputs that require grad), so the detections carry no gradient.
  ``offset_boxes`` and ``multibox_target`` keep D2L's ``eps`` inside the log, so the book's
  printed offsets (e.g. ``4.17e-06``) reproduce.
"""

from __future__ import annotations

import importlib

from PIL import Image  # noqa: F401 - the book's d2l.Image

from pixbox.compat._d2l_boxes import (  # noqa: F401 - re-exported
    assign_anchor_to_bbox,
    base_net,
    bbox_predictor,
    box_center_to_corner,
    box_corner_to_center,
    box_iou,
    cls_predictor,
    concat_preds,
    down_sample_blk,
    flatten_pred,
    multibox_detection,
    multibox_prior,
    multibox_target,
    nms,
    offset_boxes,
    offset_inverse,
)
from pixbox.compat._d2l_data import (  # noqa: F401 - re-exported
    VOC_CLASSES,
    VOC_COLORMAP,
    BananasDataset,
    VOCSegDataset,
    load_data_bananas,
    load_data_voc,
    read_data_bananas,
    read_voc_images,
    voc_colormap2label,
    voc_label_indices,
    voc_rand_crop,
)
from pixbox.compat._d2l_download import (  # noqa: F401 - re-exported
    DATA_HUB,
    DATA_URL,
    BookDataWarning,
    download,
    download_extract,
    extract,
)
from pixbox.compat._d2l_train import (  # noqa: F401 - re-exported
    accuracy,
    corr2d,
    evaluate_accuracy_gpu,
    init_cnn,
    resnet18,
    train_batch_ch13,
    train_ch13,
)
from pixbox.compat._d2l_utils import (  # noqa: F401 - re-exported
    QUICK_ENV,
    Accumulator,
    Timer,
    cpu,
    get_dataloader_workers,
    gpu,
    num_gpus,
    try_all_gpus,
    try_gpu,
)

#: The plotting names, loaded from :mod:`pixbox.compat._d2l_plot` (matplotlib) on first use.
PLOT_NAMES = ("Animator", "bbox_to_rect", "plt", "set_axes", "set_figsize", "show_bboxes", "show_images",
              "use_svg_display")

__all__ = [
    # boxes and anchors
    "box_corner_to_center", "box_center_to_corner", "multibox_prior", "box_iou", "assign_anchor_to_bbox",
    "offset_boxes", "multibox_target", "offset_inverse", "nms", "multibox_detection",
    "cls_predictor", "bbox_predictor", "flatten_pred", "concat_preds", "down_sample_blk", "base_net",
    # computation
    "corr2d", "resnet18", "init_cnn", "accuracy", "evaluate_accuracy_gpu", "train_batch_ch13", "train_ch13",
    # data
    "read_data_bananas", "BananasDataset", "load_data_bananas", "VOC_COLORMAP", "VOC_CLASSES",
    "voc_colormap2label", "voc_label_indices", "voc_rand_crop", "read_voc_images", "VOCSegDataset",
    "load_data_voc", "DATA_HUB", "DATA_URL", "download", "extract", "download_extract", "BookDataWarning",
    # utilities
    "Timer", "Accumulator", "cpu", "gpu", "num_gpus", "try_gpu", "try_all_gpus", "get_dataloader_workers",
    "Image", "QUICK_ENV",
    # plotting (matplotlib, loaded on first use)
    *PLOT_NAMES,
]


def __getattr__(name):
    if name in PLOT_NAMES:
        try:
            plot = importlib.import_module("pixbox.compat._d2l_plot")
        except ImportError as e:
            if not (e.name or "").startswith("matplotlib"):
                raise
            raise ImportError(f"pixbox.compat.d2l.{name} needs matplotlib, which is not installed: "
                              f"pip install 'pixbox[book]'") from e
        return getattr(plot, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(PLOT_NAMES))
