"""Semantic segmentation with FCNs: :class:`SegmentTask`, :class:`SegmenterPredictor`.

- :mod:`~pixbox.tasks.segment.config`: :class:`SegmentConfig`;
- :mod:`~pixbox.tasks.segment.data`: the joint image and mask pipeline, padded batches, datasets;
- :mod:`~pixbox.tasks.segment.train`: :class:`SegmentTask`, :func:`train_segmenter`;
- :mod:`~pixbox.tasks.segment.predict`: :class:`SegmenterPredictor`, :func:`evaluate_segmenter`,
  :func:`predict_segmenter`.
"""

from pixbox.tasks.segment.config import SEGMENT_AUGMENT_PRESETS, SegmentConfig
from pixbox.tasks.segment.data import IGNORE_INDEX, collate_padded, segment_transforms
from pixbox.tasks.segment.predict import SegmenterPredictor, evaluate_segmenter, load_segmenter, predict_segmenter
from pixbox.tasks.segment.train import SegmentTask, train_segmenter

__all__ = ["IGNORE_INDEX", "SEGMENT_AUGMENT_PRESETS", "SegmentConfig", "SegmentTask", "SegmenterPredictor",
           "collate_padded", "evaluate_segmenter", "load_segmenter", "predict_segmenter",
           "segment_transforms", "train_segmenter"]
