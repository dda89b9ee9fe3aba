"""pixbox.data: reading, writing, generating and augmenting datasets.

- :mod:`pixbox.data.annotations`: the in-memory annotation structures every format reads into.
- :mod:`pixbox.data.io`: images and masks to and from tensors.
- :mod:`pixbox.data.formats`: detection (D2L CSV, Pascal VOC, COCO, YOLO), VOC segmentation
  and classification (class folders, CSV) readers and writers, and conversion.
- :mod:`pixbox.data.generators`: offline, seeded datasets written in those formats.
- :mod:`pixbox.data.transforms`: joint image/box/mask augmentation on tensors.
- :mod:`pixbox.data.synthetic`: procedurally generated scenes with exact boxes and masks.
"""

from pixbox.data.annotations import (
    ClassificationAnnotations,
    DatasetError,
    DetectionAnnotations,
    DetectionRecord,
    SegmentationAnnotations,
)
from pixbox.data.formats import DETECTION_FORMATS, convert_detection, read_detection, write_detection
from pixbox.data.generators import GENERATORS, make_dataset
from pixbox.data.io import read_image, read_mask, write_image, write_mask
from pixbox.data.synthetic import CLASS_NAMES, Scene, make_scene, render_scene

__all__ = [
    "CLASS_NAMES",
    "ClassificationAnnotations",
    "DETECTION_FORMATS",
    "DatasetError",
    "DetectionAnnotations",
    "DetectionRecord",
    "GENERATORS",
    "Scene",
    "SegmentationAnnotations",
    "convert_detection",
    "make_dataset",
    "make_scene",
    "read_detection",
    "read_image",
    "read_mask",
    "render_scene",
    "write_detection",
    "write_image",
    "write_mask",
]
