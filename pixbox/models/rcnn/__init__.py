"""The R-CNN family: Fast R-CNN on external proposals and Faster R-CNN with a region proposal network.

- :mod:`~pixbox.models.rcnn.rpn`: the region proposal network (anchors per cell, objectness and
  offsets, matching 0.7/0.3, balanced sampling, losses, top-k + NMS proposals);
- :mod:`~pixbox.models.rcnn.roi_heads`: the box head (RoI align or pool, fc6/fc7, classes and
  class-specific offsets; proposal sampling in training, per-class NMS at inference);
- :mod:`~pixbox.models.rcnn.neck`: :class:`TopDownNeck`, the stride-8 fused feature map;
- :mod:`~pixbox.models.rcnn.fast_rcnn`: :class:`FastRCNN` / :func:`build_fast_rcnn` (proposals
  from a file or selective search, :mod:`pixbox.data.proposals`);
- :mod:`~pixbox.models.rcnn.faster_rcnn`: :class:`FasterRCNN` / :func:`build_faster_rcnn`.

(The builders are exported as ``build_*`` so that ``pixbox.models.rcnn.fast_rcnn`` stays the
module; ``pixbox.models.fast_rcnn`` and ``faster_rcnn`` are the builders.)

Both detectors share :class:`~pixbox.models.rcnn._base.TwoStageDetector` (normalization, the
feature map, engine batches, predict thresholds) and plug into ``pixbox detect`` like an SSD.
"""

from pixbox.models.rcnn._base import CPU_ROI_OPTIONS, TwoStageDetector
from pixbox.models.rcnn.fast_rcnn import FastRCNN
from pixbox.models.rcnn.fast_rcnn import fast_rcnn as build_fast_rcnn
from pixbox.models.rcnn.faster_rcnn import FasterRCNN
from pixbox.models.rcnn.faster_rcnn import faster_rcnn as build_faster_rcnn
from pixbox.models.rcnn.neck import TopDownNeck
from pixbox.models.rcnn.roi_heads import RoIHeads, TwoMLPHead
from pixbox.models.rcnn.rpn import RegionProposalNetwork, RPNHead

__all__ = ["CPU_ROI_OPTIONS", "FastRCNN", "FasterRCNN", "RPNHead", "RegionProposalNetwork", "RoIHeads",
           "TopDownNeck", "TwoMLPHead", "TwoStageDetector", "build_fast_rcnn", "build_faster_rcnn"]
