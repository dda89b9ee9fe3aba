"""pixbox.metrics: evaluation metrics.

- :mod:`pixbox.metrics.detection`: COCO mAP (through pycocotools), Pascal VOC AP, per-class
  tables, precision-recall curves, and the D2L book's SSD training metrics.
"""

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
    "DetectionEvaluator",
    "bbox_eval",
    "bbox_mae",
    "class_error",
    "cls_eval",
    "save_pr_curves",
    "summary_table",
    "targets_from_annotations",
    "voc_ap",
    "voc_match",
]
