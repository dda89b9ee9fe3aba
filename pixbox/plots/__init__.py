"""Charts drawn with Pillow only (no display, no matplotlib): training curves (:mod:`~pixbox.plots.curves`:
:func:`plot_curves`, :func:`nice_ticks`) and confusion matrices (:mod:`~pixbox.plots.confusion`:
:func:`save_confusion_matrix`, :func:`save_segmentation_confusion`)."""

from pixbox.plots.confusion import save_confusion_matrix, save_segmentation_confusion
from pixbox.plots.curves import nice_ticks, plot_curves

__all__ = ["nice_ticks", "plot_curves", "save_confusion_matrix", "save_segmentation_confusion"]
