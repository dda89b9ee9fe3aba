"""pixbox.metrics: evaluation metrics.

- :mod:`pixbox.metrics.classification`: top-k accuracy, confusion matrix, per-class precision,
  recall and F1, balanced accuracy, a text table and a confusion-matrix image.
- :mod:`pixbox.metrics.detection`: COCO mAP (through pycocotools), Pascal VOC AP, per-class
  tables, precision-recall curves, and the D2L book's SSD training metrics.
"""

from pixbox.metrics.classification import (
    ClassificationEvaluator,
    accuracy,
    classification_table,
    confusion_matrix,
    save_confusion_matrix,
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

__all__ = [
    "ClassificationEvaluator",
    "DetectionEvaluator",
    "accuracy",
    "bbox_eval",
    "bbox_mae",
    "class_error",
    "classification_table",
    "cls_eval",
    "confusion_matrix",
    "save_confusion_matrix",
    "save_pr_curves",
    "summary_table",
    "targets_from_annotations",
    "voc_ap",
    "voc_match",
]
