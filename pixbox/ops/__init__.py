"""pixbox.ops: pure tensor functions for boxes, anchors, box coding, matching and sampling, NMS,
decoding, RoI pooling/align and transposed convolution.

Boxes are ``xyxy`` floats (absolute pixels unless a name says ``normalized``). Every function
takes its device and dtype from its inputs and handles empty inputs.
"""

from pixbox.ops.anchors import AnchorGenerator, generate_anchors, generate_multiscale_anchors, num_anchors_per_cell
from pixbox.ops.boxes import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    complete_box_iou,
    denormalize_boxes,
    distance_box_iou,
    generalized_box_iou,
    normalize_boxes,
    remove_small_boxes,
    sanitize_boxes,
)
from pixbox.ops.coder import BoxCoder, decode_boxes, encode_boxes
from pixbox.ops.conv import bilinear_kernel, kernel_to_matrix, trans_conv, upsample_params
from pixbox.ops.detection import decode_detections, multibox_detection
from pixbox.ops.matching import (
    Matcher,
    hard_negative_mining,
    match_anchors,
    match_by_iou,
    multibox_target,
    sample_balanced,
)
from pixbox.ops.nms import batched_nms, nms
from pixbox.ops.roi import RoIAlign, RoIPool, roi_align, roi_pool

__all__ = [
    "AnchorGenerator",
    "BoxCoder",
    "Matcher",
    "RoIAlign",
    "RoIPool",
    "batched_nms",
    "bilinear_kernel",
    "box_area",
    "box_convert",
    "box_iou",
    "clip_boxes",
    "complete_box_iou",
    "decode_boxes",
    "decode_detections",
    "denormalize_boxes",
    "distance_box_iou",
    "encode_boxes",
    "generalized_box_iou",
    "generate_anchors",
    "generate_multiscale_anchors",
    "hard_negative_mining",
    "kernel_to_matrix",
    "match_anchors",
    "match_by_iou",
    "multibox_detection",
    "multibox_target",
    "nms",
    "normalize_boxes",
    "num_anchors_per_cell",
    "remove_small_boxes",
    "roi_align",
    "roi_pool",
    "sample_balanced",
    "sanitize_boxes",
    "trans_conv",
    "upsample_params",
]
