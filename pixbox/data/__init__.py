"""pixbox.data: reading, writing, generating and augmenting datasets.

- :mod:`pixbox.data.annotations`: the in-memory annotation structures every format reads into.
- :mod:`pixbox.data.io`: images and masks to and from tensors.
- :mod:`pixbox.data.formats`: detection (D2L CSV, Pascal VOC, COCO, YOLO), VOC segmentation
  and classification (class folders, CSV) readers and writers, and conversion.
- :mod:`pixbox.data.generators`: offline, seeded datasets written in those formats.
- :mod:`pixbox.data.datasets`: lazy detection, segmentation and classification datasets,
  collate functions and seeded loaders.
- :mod:`pixbox.data.validation`: the checks training and ``check`` share, so they always agree.
- :mod:`pixbox.data.check`: validation of a dataset on disk, all problems at once.
- :mod:`pixbox.data.proposals`: region proposal files (JSON) and selective search (optional
  OpenCV contrib) for Fast R-CNN.
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
from pixbox.data.check import check_dataset
from pixbox.data.datasets import (
    ClassificationDataset,
    DetectionDataset,
    SegmentationDataset,
    collate_detection,
    collate_multibox,
    collate_segmentation,
    make_loader,
)
from pixbox.data.formats import DETECTION_FORMATS, convert_detection, read_detection, write_detection
from pixbox.data.generators import GENERATORS, make_dataset
from pixbox.data.io import read_image, read_mask, write_image, write_mask
from pixbox.data.synthetic import CLASS_NAMES, Scene, make_scene, render_scene

__all__ = [
    "CLASS_NAMES",
    "ClassificationAnnotations",
    "ClassificationDataset",
    "DetectionDataset",
    "SegmentationDataset",
    "check_dataset",
    "collate_detection",
    "collate_multibox",
    "collate_segmentation",
    "make_loader",
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
