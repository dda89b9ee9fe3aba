"""The region proposal network of Faster R-CNN (Ren et al., 2015), on one feature map.

A :class:`RegionProposalNetwork` slides a small :class:`RPNHead` over a backbone feature map of
stride ``s``. At every cell it scores ``A = len(sizes) * len(ratios)`` anchors as object or
background and regresses a box offset for each; the best boxes after NMS are the proposals
that the RoI head classifies.

Layout (the anchors, the head's channels and the flattened outputs agree)::

    anchors     [H * W * A, 4]   absolute xyxy pixels, cell-major (row-major cells), then the
                                 A anchors of the cell: ratio-major, sizes inner,
                                 a = ratio_index * len(sizes) + size_index
    logits      [B, A, H, W]     channel a is anchor a of each cell
    deltas      [B, 4A, H, W]    channels 4a .. 4a + 3 are (dx, dy, dw, dh) of anchor a
    objectness  [B, H * W * A]   flatten_rpn_outputs(logits, deltas)
    box deltas  [B, H * W * A, 4]

The anchors of cell ``(i, j)`` are centred at ``((j + 0.5) * s, (i + 0.5) * s)``; an anchor of
size ``z`` and ratio ``r`` (width / height) is ``z * sqrt(r)`` wide and ``z / sqrt(r)`` high
(area ``z ** 2``). Offsets use :func:`pixbox.ops.encode_boxes` with means 0 and stds 1
(torchvision's RPN weights ``(1, 1, 1, 1)``); decoding clamps the log-size deltas as
:func:`pixbox.ops.decode_boxes` does.

Training (torchvision's behaviour, own code):

- :func:`match_rpn_anchors`: :func:`pixbox.ops.match_by_iou` with low-quality matches. IoU >=
  ``fg_iou_threshold`` is positive, < ``bg_iou_threshold`` negative, in between ignored; each
  ground-truth box's highest-IoU anchors (all ties, when that IoU is > 0) are positive too,
  matched to their own best ground truth.
- :func:`sample_rpn_anchors`: :func:`pixbox.ops.sample_balanced` in each image,
  ``batch_size_per_image`` anchors, at most ``positive_fraction`` of them positive.
- :func:`rpn_loss`: binary cross-entropy on the sampled anchors' objectness (mean) and smooth L1
  (``beta = 1 / 9``) on the positives' deltas, summed and divided by the number sampled.

Example:
    >>> head = RPNHead(256, num_anchors=12)
    >>> rpn = RegionProposalNetwork(head, (32, 64, 128, 256), (0.5, 1.0, 2.0), stride=16).eval()
    >>> proposals, losses = rpn(torch.randn(2, 256, 20, 25), [(320, 400), (300, 380)])
    >>> len(proposals), proposals[0].shape[1], losses
    (2, 4, {})
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_boxes, check_floating, check_number, check_positive_list, check_shape
from pixbox.ops.anchors import _feature_size
from pixbox.ops.boxes import _box_iou, _check_boxes_at_once, clip_boxes
from pixbox.ops.coder import _encode, decode_boxes
from pixbox.ops.detection import _split_topk
from pixbox.ops.matching import BACKGROUND, _check_iou_thresholds, _sample_rows, match_by_iou
from pixbox.ops.nms import batched_nms

__all__ = [
    "RPN_MEANS",
    "RPN_STDS",
    "RPNHead",
    "RegionProposalNetwork",
    "flatten_rpn_outputs",
    "generate_proposals",
    "match_rpn_anchors",
    "num_rpn_anchors_per_cell",
    "rpn_anchors",
    "rpn_loss",
    "rpn_targets",
    "sample_rpn_anchors",
]

#: Offset normalisation of the RPN: torchvision's ``BoxCoder(weights=(1, 1, 1, 1))``.
RPN_MEANS = (0.0, 0.0, 0.0, 0.0)
RPN_STDS = (1.0, 1.0, 1.0, 1.0)

# ---------------------------------------------------------------------------------------------
# Anchors and the head


def num_rpn_anchors_per_cell(sizes: Sequence[float], ratios: Sequence[float]) -> int:
    """``len(sizes) * len(ratios)``: RPN anchors per feature-map cell (every size with every ratio)."""
    return len(check_positive_list(sizes, "sizes")) * len(check_positive_list(ratios, "ratios"))


def _check_stride(stride) -> tuple[float, float]:
    """``stride`` as ``(stride_y, stride_x)``, both finite and > 0."""
    if isinstance(stride, (int, float, Tensor)) and not isinstance(stride, bool):
        s = check_number(stride, "stride", low=0, low_open=True)
        pair = (float(s), float(s))
    else:
        try:
            sy, sx = stride
        except (TypeError, ValueError):
            raise ValueError(f"stride must be a positive number or a pair (stride_y, stride_x), got {stride!r}") from None
        pair = (float(check_number(sy, "stride[0]", low=0, low_open=True)),
                float(check_number(sx, "stride[1]", low=0, low_open=True)))
    if not all(math.isfinite(v) for v in pair):
        raise ValueError(f"stride must be finite, got {stride!r}")
    return pair


def rpn_anchors(feature_map_size, stride, sizes: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """Anchors of one stride-``s`` feature map, in absolute pixels (see the module docstring).

    Args:
        feature_map_size (Tensor[..., H, W] or tuple[int, int]): the feature map, or its (H, W). A
            tensor also gives the device and (floating) dtype; a pair gives float32 CPU anchors.
        stride (float or (stride_y, stride_x)): image pixels per feature-map cell, > 0.
        sizes (sequence of float): anchor sizes in pixels (square root of the area), > 0.
        ratios (sequence of float): width / height aspect ratios, > 0.

    Returns:
        Tensor[H * W * A, 4]: xyxy pixels, ``A = len(sizes) * len(ratios)``; row ``(i * W + j) * A
        + r * len(sizes) + k`` is the anchor of size ``sizes[k]`` and ratio ``ratios[r]`` centred at
        ``((j + 0.5) * stride_x, (i + 0.5) * stride_y)``.
    """
    h, w, device, dtype = _feature_size(feature_map_size)
    sy, sx = _check_stride(stride)
    sizes = check_positive_list(sizes, "sizes")
    ratios = check_positive_list(ratios, "ratios")
    a = len(sizes) * len(ratios)
    # Half widths and heights of the A shapes in float64, then cast once: ratio-major, sizes inner.
    half = torch.tensor(
        [[-z * math.sqrt(r) / 2, -z / math.sqrt(r) / 2, z * math.sqrt(r) / 2, z / math.sqrt(r) / 2]
         for r in ratios for z in sizes],
        dtype=torch.float64,
    ).to(device=device, dtype=dtype)  # [A, 4]
    cy = (torch.arange(h, device=device, dtype=dtype) + 0.5) * sy  # [H]
    cx = (torch.arange(w, device=device, dtype=dtype) + 0.5) * sx  # [W]
    cy, cx = torch.meshgrid(cy, cx, indexing="ij")  # [H, W] each
    centers = torch.stack([cx, cy, cx, cy], dim=-1).reshape(h * w, 1, 4)  # [HW, 1, 4]
    return (centers + half[None]).reshape(h * w * a, 4)  # [HW * A, 4]


class RPNHead(nn.Module):
    """3x3 conv + ReLU shared by two 1x1 convs: objectness logits and box deltas per anchor.

    Weights are drawn from N(0, 0.01) and biases are zero, as in the paper and torchvision.

    Args:
        in_channels (int): channels ``C`` of the feature map, >= 1.
        num_anchors (int): anchors per cell ``A``, >= 1.

    Input ``[B, C, H, W]``; output ``(logits [B, A, H, W], deltas [B, 4A, H, W])`` in the layout of
    the module docstring.
    """

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.in_channels = _check_count(in_channels, "in_channels")
        self.num_anchors = _check_count(num_anchors, "num_anchors")
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1)
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, kernel_size=1)
        self.bbox_pred = nn.Conv2d(in_channels, 4 * num_anchors, kernel_size=1)
        for conv in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_floating(x, "x")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"x must have shape [B, {self.in_channels}, H, W], got {tuple(x.shape)}")
        t = F.relu(self.conv(x))
        return self.cls_logits(t), self.bbox_pred(t)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, num_anchors={self.num_anchors}"


def flatten_rpn_outputs(logits: Tensor, deltas: Tensor) -> tuple[Tensor, Tensor]:
    """Head outputs in anchor order (:func:`rpn_anchors`).

    Args:
        logits (Tensor[B, A, H, W]): objectness logits.
        deltas (Tensor[B, 4A, H, W]): box deltas, channels ``4a .. 4a + 3`` for anchor ``a``.

    Returns:
        tuple[Tensor[B, H * W * A], Tensor[B, H * W * A, 4]]: objectness and deltas per anchor.
    """
    check_floating(logits, "logits")
    check_floating(deltas, "deltas")
    if logits.dim() != 4:
        raise ValueError(f"logits must have shape [B, A, H, W], got {tuple(logits.shape)}")
    b, a, h, w = logits.shape
    check_shape(deltas, "deltas", (b, 4 * a, h, w), f"[B, 4A, H, W] = [{b}, {4 * a}, {h}, {w}]")
    objectness = logits.permute(0, 2, 3, 1).reshape(b, h * w * a)  # [B, HWA]
    box = deltas.view(b, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(b, h * w * a, 4)  # [B, HWA, 4]
    return objectness, box


# ---------------------------------------------------------------------------------------------
# Training targets, sampling and loss


def match_rpn_anchors(
    anchors: Tensor,
    gt_boxes: Tensor,
    fg_iou_threshold: float = 0.7,
    bg_iou_threshold: float = 0.3,
    *,
    allow_low_quality_matches: bool = True,
) -> Tensor:
    """Matches anchors to ground-truth boxes with two IoU thresholds (:func:`pixbox.ops.match_by_iou`).

    Args:
        anchors (Tensor[N, 4]): xyxy.
        gt_boxes (Tensor[G, 4]): xyxy, same coordinates; ``G`` may be 0 (then every anchor is
            background). Degenerate boxes overlap nothing and are never matched.
        fg_iou_threshold (float): best IoU >= this is a match, in [0, 1].
        bg_iou_threshold (float): best IoU < this is background, in [0, fg_iou_threshold].
        allow_low_quality_matches (bool): also match, for every ground-truth box, all anchors
            whose IoU with it equals its highest IoU (when > 0); each such anchor gets its own
            best ground truth.

    Returns:
        Tensor[N]: int64, the matched ground-truth index, ``-1`` (background) or ``-2`` (ignored).
    """
    check_boxes(anchors, "anchors")
    check_boxes(gt_boxes, "gt_boxes")
    fg, bg = _check_iou_thresholds(fg_iou_threshold, bg_iou_threshold)
    if anchors.device != gt_boxes.device:
        raise ValueError(f"anchors and gt_boxes must be on the same device, got {anchors.device} and {gt_boxes.device}")
    return _match_rpn(anchors, gt_boxes, fg, bg, allow_low_quality_matches)


def _match_rpn(anchors: Tensor, gt_boxes: Tensor, fg: float, bg: float, low_quality: bool = True) -> Tensor:
    dtype = torch.promote_types(torch.promote_types(anchors.dtype, gt_boxes.dtype), torch.float32)
    return match_by_iou(_box_iou(gt_boxes.to(dtype), anchors.to(dtype)), fg, bg, allow_low_quality_matches=low_quality)


def _gt_list(targets, b: int) -> list[Tensor]:
    """``targets`` (a list of Tensor[G_i, 4] or of dicts with ``"boxes"``) as a list of boxes."""
    if isinstance(targets, (Tensor, Mapping)) or not isinstance(targets, Sequence):
        raise TypeError(f"targets must be a list of Tensor[G_i, 4] or of dicts with 'boxes', got {type(targets).__name__}")
    if len(targets) != b:
        raise ValueError(f"targets must have one entry per image ({b}), got {len(targets)}")
    out = []
    for i, t in enumerate(targets):
        if isinstance(t, Mapping):
            if "boxes" not in t:
                raise ValueError(f"targets[{i}] must have a 'boxes' entry, got keys {sorted(t)}")
            t = t["boxes"]
        out.append(check_boxes(t, f"targets[{i}] boxes", well_formed=False))
    _check_boxes_at_once(out, [f"targets[{i}] boxes" for i in range(len(out))])  # one host read
    return out


def rpn_targets(
    anchors: Tensor,
    gt_boxes: Sequence[Tensor],
    fg_iou_threshold: float = 0.7,
    bg_iou_threshold: float = 0.3,
) -> tuple[Tensor, Tensor]:
    """Objectness labels and regression targets of every anchor of every image.

    Args:
        anchors (Tensor[N, 4]): xyxy pixels, shared by the images.
        gt_boxes (list of Tensor[G_i, 4]): each image's xyxy ground-truth boxes (or dicts with a
            ``"boxes"`` entry, as torchvision's targets).
        fg_iou_threshold, bg_iou_threshold (float): as in :func:`match_rpn_anchors`.

    Returns:
        tuple:
        - labels (Tensor[B, N]): int64, 1 object, 0 background, -1 ignored.
        - target_deltas (Tensor[B, N, 4]): offsets (:data:`RPN_STDS`) of the positives to their
          boxes, 0 elsewhere; in the anchors' dtype.
    """
    check_boxes(anchors, "anchors")
    boxes = _gt_list(gt_boxes, len(gt_boxes) if isinstance(gt_boxes, Sequence) else -1)
    return _rpn_targets(anchors, boxes, *_check_iou_thresholds(fg_iou_threshold, bg_iou_threshold))


def _rpn_targets(anchors: Tensor, boxes: list[Tensor], fg: float, bg: float) -> tuple[Tensor, Tensor]:
    """:func:`rpn_targets` on checked anchors and boxes (one host read: the positives)."""
    n, b = anchors.shape[0], len(boxes)
    if b == 0:
        return torch.full((0, n), -1, dtype=torch.long, device=anchors.device), anchors.new_zeros(0, n, 4)
    m = torch.stack([_match_rpn(anchors, gt.to(device=anchors.device), fg, bg) for gt in boxes])  # [B, N]
    labels = torch.where(m >= 0, 1, torch.where(m == BACKGROUND, 0, -1))
    padded = torch.nn.utils.rnn.pad_sequence([gt.to(anchors) for gt in boxes], batch_first=True)  # [B, G, 4]
    pb, pa = (m >= 0).nonzero().unbind(1)
    target = anchors.new_zeros(b, n, 4)
    target[pb, pa] = _encode(anchors[pa], padded[pb, m[pb, pa]], RPN_MEANS, RPN_STDS)
    return labels, target


def sample_rpn_anchors(
    labels: Tensor,
    batch_size_per_image: int = 256,
    positive_fraction: float = 0.5,
) -> tuple[Tensor, Tensor]:
    """Balanced random sampling of positive and negative anchors in each image.

    :func:`pixbox.ops.sample_balanced` image by image: each image takes
    ``min(#positives, int(batch_size_per_image * positive_fraction))`` positives and fills the
    rest of ``batch_size_per_image`` with negatives (as many as there are), each chosen
    uniformly with ``torch.randperm`` (reproducible under ``torch.manual_seed``).

    Args:
        labels (Tensor[B, N]): int, 1 positive, 0 negative, -1 ignored.
        batch_size_per_image (int): anchors sampled per image, >= 1.
        positive_fraction (float): largest share of positives, in [0, 1].

    Returns:
        tuple[Tensor[B, N], Tensor[B, N]]: bool masks of the sampled positives and negatives.
    """
    check_shape(labels, "labels", (None, None), "[B, N]")
    size = _check_count(batch_size_per_image, "batch_size_per_image")
    frac = check_number(positive_fraction, "positive_fraction", low=0, high=1)
    pos_mask = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    neg_mask = torch.zeros_like(pos_mask)
    for i, (pos, neg) in enumerate(zip(*_sample_rows(labels, size, frac))):  # one host read for all images
        pos_mask[i].index_fill_(0, pos, True)
        neg_mask[i].index_fill_(0, neg, True)
    return pos_mask, neg_mask


def rpn_loss(
    objectness: Tensor,
    pred_deltas: Tensor,
    target_deltas: Tensor,
    pos_mask: Tensor,
    neg_mask: Tensor,
) -> dict[str, Tensor]:
    """The RPN losses on the sampled anchors (torchvision's normalisation).

    Args:
        objectness (Tensor[B, N]): logits.
        pred_deltas (Tensor[B, N, 4]): predicted offsets.
        target_deltas (Tensor[B, N, 4]): target offsets (used at positives only).
        pos_mask, neg_mask (Tensor[B, N]): bool, the sampled positives and negatives (disjoint).

    Returns:
        dict: ``"rpn_objectness"``, the mean binary cross-entropy with logits over the sampled
        anchors, and ``"rpn_box"``, the smooth L1 (``beta = 1 / 9``) of the positives' offsets
        summed and divided by the number of sampled anchors; both scalars, 0 (with a graph) when
        nothing is sampled.
    """
    check_floating(objectness, "objectness")
    check_shape(objectness, "objectness", (None, None), "[B, N]")
    b, n = objectness.shape
    check_shape(pred_deltas, "pred_deltas", (b, n, 4), f"[B, N, 4] = [{b}, {n}, 4]")
    check_shape(target_deltas, "target_deltas", (b, n, 4), f"[B, N, 4] = [{b}, {n}, 4]")
    for name, m in (("pos_mask", pos_mask), ("neg_mask", neg_mask)):
        check_shape(m, name, (b, n), f"[B, N] = [{b}, {n}]")
        if m.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool tensor, got dtype {m.dtype}")
    sampled = (pos_mask | neg_mask).reshape(-1).nonzero().flatten()  # gathers: their backward reads nothing
    if sampled.numel() == 0:
        zero = objectness.sum() * 0 + pred_deltas.sum() * 0
        return {"rpn_objectness": zero, "rpn_box": zero.clone()}
    pos = pos_mask.reshape(-1).nonzero().flatten()
    obj = F.binary_cross_entropy_with_logits(objectness.reshape(-1).index_select(0, sampled),
                                             pos_mask.reshape(-1).index_select(0, sampled).to(objectness.dtype))
    pred, target = (t.reshape(-1, 4).index_select(0, pos) for t in (pred_deltas, target_deltas))
    box = F.smooth_l1_loss(pred, target.to(pred.dtype), beta=1.0 / 9, reduction="sum") / len(sampled)
    return {"rpn_objectness": obj, "rpn_box": box}


# ---------------------------------------------------------------------------------------------
# Proposals


def _check_image_sizes(image_sizes, b: int) -> list[tuple[float, float]]:
    if isinstance(image_sizes, Tensor):
        image_sizes = image_sizes.tolist()
    try:
        sizes = [(float(h), float(w)) for h, w in image_sizes]
    except (TypeError, ValueError):
        raise ValueError(f"image_sizes must be a list of (height, width) pairs, got {image_sizes!r}") from None
    if len(sizes) != b:
        raise ValueError(f"image_sizes must have one (height, width) per image ({b}), got {len(sizes)}")
    for i, (h, w) in enumerate(sizes):
        if not (h > 0 and w > 0 and math.isfinite(h) and math.isfinite(w)):
            raise ValueError(f"image_sizes[{i}] must be a positive (height, width), got {(h, w)}")
    return sizes


@torch.no_grad()
def generate_proposals(
    anchors: Tensor,
    objectness: Tensor,
    pred_deltas: Tensor,
    image_sizes: Sequence[tuple[float, float]],
    *,
    pre_nms_topk: int = 1000,
    post_nms_topk: int = 300,
    nms_threshold: float = 0.7,
    min_size: float = 1e-3,
) -> tuple[list[Tensor], list[Tensor]]:
    """Decodes the best anchors of each image into proposals (no gradient).

    Per image: the ``pre_nms_topk`` anchors with the highest objectness are decoded, clipped to
    the image, boxes with a side below ``min_size`` are dropped, NMS at ``nms_threshold`` runs
    and the ``post_nms_topk`` best survivors are kept.

    Args:
        anchors (Tensor[N, 4]): xyxy pixels.
        objectness (Tensor[B, N]): logits.
        pred_deltas (Tensor[B, N, 4]): offsets (:data:`RPN_STDS` parametrisation).
        image_sizes (list of (height, width)): each image's size in pixels, ``B`` entries.
        pre_nms_topk (int): candidates per image before NMS, >= 1.
        post_nms_topk (int): proposals per image at most, >= 1.
        nms_threshold (float): NMS IoU threshold, in [0, 1].
        min_size (float): smallest side kept, in pixels, >= 0.

    Returns:
        tuple[list[Tensor[P_i, 4]], list[Tensor[P_i]]]: each image's proposals (xyxy pixels inside
        the image) and their objectness probabilities, in decreasing probability order.
    """
    check_boxes(anchors, "anchors", well_formed=False)
    check_floating(objectness, "objectness")
    check_shape(objectness, "objectness", (None, anchors.shape[0]), f"[B, N] with N = {anchors.shape[0]}")
    b, n = objectness.shape
    check_floating(pred_deltas, "pred_deltas")
    check_shape(pred_deltas, "pred_deltas", (b, n, 4), f"[B, N, 4] = [{b}, {n}, 4]")
    sizes = _check_image_sizes(image_sizes, b)
    pre = _check_count(pre_nms_topk, "pre_nms_topk")
    post = _check_count(post_nms_topk, "post_nms_topk")
    thr = check_number(nms_threshold, "nms_threshold", low=0, high=1)
    min_size = check_number(min_size, "min_size", low=0)

    k = min(pre, n)
    top, idx = objectness.topk(k, dim=1)  # [B, K], sorted
    d = pred_deltas.gather(1, idx[..., None].expand(b, k, 4))  # [B, K, 4]
    boxes = decode_boxes(anchors.to(d.dtype)[idx], d, RPN_MEANS, RPN_STDS)  # [B, K, 4]
    probs = top.sigmoid()  # [B, K]
    boxes = torch.stack([clip_boxes(boxes[i], (h, w)) for i, (h, w) in enumerate(sizes)])  # [B, K, 4]
    # All images at once: NMS with the image as the group keeps what NMS per image keeps, in order.
    usable = torch.isfinite(boxes).all(2) & torch.isfinite(probs) & (boxes[..., 2:] - boxes[..., :2] >= min_size).all(2)
    bi, ki = usable.nonzero().unbind(1)
    cand_boxes, cand_scores = boxes[bi, ki], probs[bi, ki]
    keep = batched_nms(cand_boxes, cand_scores, bi, thr)
    sel = _split_topk(keep, bi.index_select(0, keep), b, post)
    return [cand_boxes[s] for s in sel], [cand_scores[s] for s in sel]


# ---------------------------------------------------------------------------------------------
# The module


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return value


class RegionProposalNetwork(nn.Module):
    """Faster R-CNN's region proposal network on one feature map.

    Args:
        head (nn.Module): maps features ``[B, C, H, W]`` to ``(logits [B, A, H, W], deltas
            [B, 4A, H, W])``, e.g. :class:`RPNHead`; ``A`` must be ``len(sizes) * len(ratios)``
            (checked against ``head.num_anchors`` when the head has it).
        sizes (sequence of float): anchor sizes in pixels, > 0, e.g. ``(32, 64, 128, 256)``.
        ratios (sequence of float): anchor width / height ratios, > 0, e.g. ``(0.5, 1, 2)``.
        stride (float or (stride_y, stride_x)): image pixels per feature-map cell, e.g. 16.
        pre_nms_topk_train, pre_nms_topk_test (int): candidates per image before NMS.
        post_nms_topk_train, post_nms_topk_test (int): proposals per image after NMS.
        nms_threshold (float): NMS IoU threshold of the proposals.
        fg_iou_threshold, bg_iou_threshold (float): anchor matching (:func:`match_rpn_anchors`).
        batch_size_per_image (int), positive_fraction (float): sampling
            (:func:`sample_rpn_anchors`).
        min_size (float): proposals with a side below this (pixels) are dropped.

    Attributes:
        num_anchors_per_cell (int): ``A``.

    The ``_train`` top-k values apply in training mode (``model.train()``), the ``_test`` ones
    in eval mode.
    """

    def __init__(
        self,
        head: nn.Module,
        sizes: Sequence[float],
        ratios: Sequence[float],
        stride,
        *,
        pre_nms_topk_train: int = 2000,
        pre_nms_topk_test: int = 1000,
        post_nms_topk_train: int = 2000,
        post_nms_topk_test: int = 300,
        nms_threshold: float = 0.7,
        fg_iou_threshold: float = 0.7,
        bg_iou_threshold: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
        min_size: float = 1e-3,
    ) -> None:
        super().__init__()
        if not isinstance(head, nn.Module):
            raise TypeError(f"head must be an nn.Module, got {type(head).__name__}")
        self.sizes = check_positive_list(sizes, "sizes")
        self.ratios = check_positive_list(ratios, "ratios")
        self.stride = _check_stride(stride)
        self.num_anchors_per_cell = len(self.sizes) * len(self.ratios)
        head_a = getattr(head, "num_anchors", None)
        if head_a is not None and head_a != self.num_anchors_per_cell:
            raise ValueError(
                f"head.num_anchors must equal len(sizes) * len(ratios) = {self.num_anchors_per_cell}, got {head_a}"
            )
        self.head = head
        self.pre_nms_topk_train = _check_count(pre_nms_topk_train, "pre_nms_topk_train")
        self.pre_nms_topk_test = _check_count(pre_nms_topk_test, "pre_nms_topk_test")
        self.post_nms_topk_train = _check_count(post_nms_topk_train, "post_nms_topk_train")
        self.post_nms_topk_test = _check_count(post_nms_topk_test, "post_nms_topk_test")
        self.nms_threshold = check_number(nms_threshold, "nms_threshold", low=0, high=1)
        self.fg_iou_threshold, self.bg_iou_threshold = _check_iou_thresholds(fg_iou_threshold, bg_iou_threshold)
        self.batch_size_per_image = _check_count(batch_size_per_image, "batch_size_per_image")
        self.positive_fraction = check_number(positive_fraction, "positive_fraction", low=0, high=1)
        self.min_size = check_number(min_size, "min_size", low=0)
        self._anchor_cache: dict = {}

    @property
    def pre_nms_topk(self) -> int:
        return self.pre_nms_topk_train if self.training else self.pre_nms_topk_test

    @property
    def post_nms_topk(self) -> int:
        return self.post_nms_topk_train if self.training else self.post_nms_topk_test

    def anchors(self, features: Tensor) -> Tensor:
        """Anchors ``[H * W * A, 4]`` (xyxy pixels) of ``features [B, C, H, W]``, on its device and dtype.

        Cached per (H, W, device, dtype); do not modify the result in place.
        """
        key = (tuple(features.shape[-2:]), features.device, features.dtype, torch.is_inference_mode_enabled())
        anchors = self._anchor_cache.get(key)
        if anchors is None:
            with torch.no_grad():
                anchors = rpn_anchors(features, self.stride, self.sizes, self.ratios)
            if len(self._anchor_cache) >= 8:
                self._anchor_cache.pop(next(iter(self._anchor_cache)))
            self._anchor_cache[key] = anchors
        return anchors

    def forward(
        self,
        features: Tensor,
        image_sizes: Sequence[tuple[float, float]],
        targets: Sequence[Tensor] | Sequence[Mapping[str, Tensor]] | None = None,
    ) -> tuple[list[Tensor], dict[str, Tensor]]:
        """Proposes regions, and computes the RPN losses when ``targets`` are given.

        Args:
            features (Tensor[B, C, H, W]): the backbone feature map of a (padded) image batch; cell
                ``(i, j)`` covers pixels near ``((j + 0.5) * stride, (i + 0.5) * stride)``.
            image_sizes (list of (height, width)): each image's own size in pixels before
                padding; proposals are clipped to it.
            targets (list, optional): per image, the ground-truth boxes ``Tensor[G_i, 4]`` (xyxy
                pixels, ``G_i`` may be 0) or a dict with a ``"boxes"`` entry.

        Returns:
            tuple:
            - proposals (list of Tensor[P_i, 4]): xyxy pixels within image ``i``, in decreasing
              objectness, at most :attr:`post_nms_topk` each, detached from the graph.
            - losses (dict[str, Tensor]): ``"rpn_objectness"`` and ``"rpn_box"`` when
              ``targets`` are given, else ``{}``.
        """
        check_floating(features, "features")
        if features.dim() != 4:
            raise ValueError(f"features must have shape [B, C, H, W], got {tuple(features.shape)}")
        b = features.shape[0]
        sizes = _check_image_sizes(image_sizes, b)
        gt = _gt_list(targets, b) if targets is not None else None

        logits, deltas = self.head(features)
        objectness, pred_deltas = flatten_rpn_outputs(logits, deltas)  # [B, N], [B, N, 4]
        anchors = self.anchors(features)  # [N, 4]
        if anchors.shape[0] != objectness.shape[1]:
            raise ValueError(
                f"head output has {objectness.shape[1]} anchors per image, the feature map "
                f"{tuple(features.shape[-2:])} has {anchors.shape[0]}: the head must keep H and W and "
                f"predict {self.num_anchors_per_cell} anchors per cell"
            )
        proposals, _ = generate_proposals(
            anchors, objectness.detach(), pred_deltas.detach(), sizes,
            pre_nms_topk=self.pre_nms_topk, post_nms_topk=self.post_nms_topk,
            nms_threshold=self.nms_threshold, min_size=self.min_size,
        )
        losses: dict[str, Tensor] = {}
        if gt is not None:
            with torch.no_grad():
                labels, target_deltas = _rpn_targets(anchors, gt, self.fg_iou_threshold, self.bg_iou_threshold)
                pos, neg = sample_rpn_anchors(labels, self.batch_size_per_image, self.positive_fraction)
            losses = rpn_loss(objectness, pred_deltas, target_deltas, pos, neg)
        return proposals, losses

    def extra_repr(self) -> str:
        return (
            f"sizes={self.sizes}, ratios={self.ratios}, stride={self.stride}, nms_threshold={self.nms_threshold}, "
            f"fg_iou_threshold={self.fg_iou_threshold}, bg_iou_threshold={self.bg_iou_threshold}, "
            f"batch_size_per_image={self.batch_size_per_image}, positive_fraction={self.positive_fraction}"
        )
