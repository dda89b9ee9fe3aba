"""pixbox.metrics: evaluation metrics.

- :mod:`pixbox.metrics.classification`: top-k accuracy, confusion matrix, per-class precision,
  recall and F1, balanced accuracy and a text table.
- :mod:`pixbox.metrics.detection`: COCO mAP (through pycocotools) and VOC AP in one evaluator,
  per-class tables, precision-recall curves; :mod:`pixbox.metrics.voc` (VOC matching and AP)
  and :mod:`pixbox.metrics.multibox` (the D2L book's SSD training metrics) are re-exported.
- :mod:`pixbox.metrics.segmentation`: pixel confusion matrix (with an ignored label), pixel
  accuracy, mean class accuracy, per-class and mean IoU, frequency-weighted IoU and a text table.

Metrics are numbers; confusion-matrix images are drawn by :mod:`pixbox.plots`
(:func:`~pixbox.plots.save_confusion_matrix`, :func:`~pixbox.plots.save_segmentation_confusion`).
"""

from pixbox.metrics.classification import (
    ClassificationEvaluator,
    accuracy,
    classification_table,
    confusion_matrix,
)
from pixbox.metrics.detection import (
    DetectionEvaluator,
    bbox_eval,
    bbox_mae,
    class_error,
    cls_eval,
    save_pr_curves,
    summary_table,
    targets_from_annotations,
    voc_ap,
    voc_match,
)
from pixbox.metrics.segmentation import (
    SegmentationEvaluator,
    segmentation_confusion_matrix,
    segmentation_table,
)

__all__ = [
    "ClassificationEvaluator",
    "DetectionEvaluator",
    "SegmentationEvaluator",
    "accuracy",
    "bbox_eval",
    "bbox_mae",
    "class_error",
    "classification_table",
    "cls_eval",
    "confusion_matrix",
    "save_pr_curves",
    "segmentation_confusion_matrix",
    "segmentation_table",
    "summary_table",
    "targets_from_annotations",
    "voc_ap",
    "voc_match",
]
