"""The box head of Fast and Faster R-CNN: RoI features, two fully connected layers, classes and boxes.

Given a feature map and proposed regions (from a region proposal network or an external source
such as selective search), :class:`RoIHeads` cuts a fixed-size feature for each region with RoI
align (or RoI pool), runs two fully connected layers and predicts, per region, scores for the
``num_classes + 1`` categories (index 0 is the background) and class-specific box offsets
(``4 (num_classes + 1)`` numbers, in the Faster R-CNN parametrisation with weights
``(10, 10, 5, 5)``, i.e. pixbox ``stds = (0.1, 0.1, 0.2, 0.2)``).

Training (``targets`` given):

1. the ground-truth boxes are added to each image's proposals;
2. each proposal is matched to the ground-truth box it overlaps most
   (:func:`pixbox.ops.match_by_iou`, no low-quality matches): IoU >= ``fg_iou_threshold`` makes
   it a foreground sample of that box's class, IoU < ``bg_iou_threshold`` a background sample,
   anything between is ignored;
3. ``batch_size_per_image`` proposals are sampled per image, at most ``positive_fraction`` of
   them foreground (:func:`pixbox.ops.sample_balanced`);
4. losses: cross-entropy over the sampled proposals (``roi_cls``) and smooth L1 (beta 1/9) on the
   foreground proposals' offsets for their own class, summed and divided by the number of
   sampled proposals (``roi_box``).

Inference: softmax scores; each class's offsets decoded and clipped to the image; background,
scores <= ``score_threshold`` and boxes smaller than ``min_size`` dropped; per-class NMS at
``nms_threshold``; the ``detections_per_image`` best kept. Labels in the output are
``0 .. num_classes - 1`` (no background), as pixbox's SSD gives them.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_boxes, check_number
from pixbox.ops.boxes import _box_iou, _check_boxes_at_once, _compute_pair
from pixbox.ops.coder import DEFAULT_MEANS, _encode
from pixbox.ops.matching import BACKGROUND, _sample_rows, match_by_iou
from pixbox.ops.matching import sample_balanced  # noqa: F401  (the old import path of the one sampler)

__all__ = ["RoIHeads", "TwoMLPHead", "match_proposals"]

_STDS = (0.1, 0.1, 0.2, 0.2)  # torchvision's box coder weights (10, 10, 5, 5)


def match_proposals(proposals: Tensor, gt_boxes: Tensor, fg_iou_threshold: float,
                    bg_iou_threshold: float) -> tuple[Tensor, Tensor]:
    """The ground-truth box of each proposal and whether it is foreground, background or ignored.

    Args:
        proposals (Tensor[P, 4]): xyxy.
        gt_boxes (Tensor[G, 4]): xyxy (``G`` may be 0: every proposal is background).
        fg_iou_threshold (float): IoU at or above which a proposal is foreground, in [0, 1].
        bg_iou_threshold (float): IoU below which a proposal is background, in
            [0, ``fg_iou_threshold``].

    Returns:
        tuple: ``matched`` (Tensor[P] int64, the index of the best ground-truth box; 0 when
        ``G == 0``) and ``state`` (Tensor[P] int64: 1 foreground, 0 background, -1 ignored), the
        labels that :func:`pixbox.ops.sample_balanced` takes.
    """
    from pixbox.ops import box_iou

    if gt_boxes.numel() == 0:
        zeros = torch.zeros(len(proposals), dtype=torch.int64, device=proposals.device)
        return zeros, zeros.clone()
    return _match_proposals(box_iou(proposals, gt_boxes), fg_iou_threshold, bg_iou_threshold)


def _match_proposals(iou: Tensor, fg_iou_threshold: float, bg_iou_threshold: float) -> tuple[Tensor, Tensor]:
    """:func:`match_proposals` from the IoU ``[P, G]`` of checked boxes (``G >= 1``; no host read)."""
    iou = iou.T  # [G, P]
    matches = match_by_iou(iou, fg_iou_threshold, bg_iou_threshold)  # [P]
    matched = iou.max(dim=0).indices  # [P], also for the proposals that are not foreground
    state = torch.where(matches >= 0, 1, torch.where(matches == BACKGROUND, 0, -1))
    return matched, state


class TwoMLPHead(nn.Module):
    """Flatten, then two fully connected layers with ReLU (the R-CNN "fc6, fc7").

    Args:
        in_features (int): ``C * h * w`` of the RoI features.
        representation_size (int): width of both layers.
    """

    def __init__(self, in_features: int, representation_size: int = 1024):
        super().__init__()
        self.fc6 = nn.Linear(in_features, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.fc7(F.relu(self.fc6(x.flatten(1)))))


class RoIHeads(nn.Module):
    """RoI features -> :class:`TwoMLPHead` -> class scores and class-specific box offsets.

    Args:
        in_channels (int): channels of the feature map.
        num_classes (int): object classes (background excluded), >= 1.
        spatial_scale (float): feature-map pixels per image pixel (``1 / stride``).
        pooler (str): ``"align"`` (RoI align, sampling ratio 2) or ``"pool"`` (RoI pooling, as
            Fast R-CNN).
        output_size (int): side of the RoI features.
        representation_size (int): width of the two fully connected layers.
        fg_iou_threshold, bg_iou_threshold (float): proposal matching (see the module docstring).
        batch_size_per_image (int): proposals sampled per image in training.
        positive_fraction (float): the largest fraction of foreground samples.
        score_threshold (float): inference keeps detections scoring above this.
        nms_threshold (float): per-class NMS IoU threshold at inference.
        detections_per_image (int): detections kept per image.
        min_size (float): boxes smaller than this (pixels) are dropped at inference.
    """

    def __init__(self, in_channels: int, num_classes: int, *, spatial_scale: float, pooler: str = "align",
                 output_size: int = 7, representation_size: int = 1024, fg_iou_threshold: float = 0.5,
                 bg_iou_threshold: float = 0.5, batch_size_per_image: int = 512, positive_fraction: float = 0.25,
                 score_threshold: float = 0.05, nms_threshold: float = 0.5, detections_per_image: int = 100,
                 min_size: float = 1e-2):
        super().__init__()
        if pooler not in ("align", "pool"):
            raise ValueError(f"pooler must be 'align' or 'pool', got {pooler!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.spatial_scale = float(check_number(spatial_scale, "spatial_scale", low=0, low_open=True))
        self.pooler, self.output_size = pooler, int(output_size)
        self.fg_iou_threshold = float(check_number(fg_iou_threshold, "fg_iou_threshold", low=0, high=1))
        self.bg_iou_threshold = float(check_number(bg_iou_threshold, "bg_iou_threshold", low=0, high=1))
        if self.bg_iou_threshold > self.fg_iou_threshold:
            raise ValueError(f"bg_iou_threshold ({bg_iou_threshold}) must be <= fg_iou_threshold ({fg_iou_threshold})")
        self.batch_size_per_image = int(check_number(batch_size_per_image, "batch_size_per_image", low=1))
        self.positive_fraction = float(check_number(positive_fraction, "positive_fraction", low=0, high=1))
        self.score_threshold = float(check_number(score_threshold, "score_threshold", low=0, high=1))
        self.nms_threshold = float(check_number(nms_threshold, "nms_threshold", low=0, high=1))
        self.detections_per_image = int(check_number(detections_per_image, "detections_per_image", low=1))
        self.min_size = float(check_number(min_size, "min_size", low=0))
        self.box_head = TwoMLPHead(in_channels * self.output_size ** 2, representation_size)
        self.cls_score = nn.Linear(representation_size, num_classes + 1)
        self.bbox_pred = nn.Linear(representation_size, 4 * (num_classes + 1))
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    # ------------------------------------------------------------------------------------------

    def roi_features(self, features: Tensor, proposals: Sequence[Tensor]) -> Tensor:
        """``[sum P_i, C, s, s]`` features of the proposals (xyxy image pixels) of each image."""
        from pixbox.ops import roi_align, roi_pool

        boxes = [p.to(features.dtype) for p in proposals]
        with torch.autocast(features.device.type, enabled=False):  # sampling geometry in the input's precision
            if self.pooler == "align":
                return roi_align(features, boxes, self.output_size, self.spatial_scale, sampling_ratio=2, aligned=True)
            return roi_pool(features, boxes, self.output_size, self.spatial_scale)

    def _targets(self, proposals: Sequence[Tensor], targets: Sequence[dict]):
        """Sampled proposals with their class (0 background) and regression targets, per image.

        Two host reads for the whole batch: the boxes' check, and the sampler's counts.
        """
        candidates, gts, labels, states, matches = [], [], [], [], []
        for props, target in zip(proposals, targets):
            gt = target["boxes"].to(props)
            candidates.append(torch.cat([props, gt]))  # the ground truth is always a candidate
            gts.append(gt)
            labels.append(target["labels"].to(props.device))
        names = [f"proposals and target boxes of image {i}" for i in range(len(candidates))]
        for c, name in zip(candidates, names):
            check_boxes(c, name, well_formed=False)
        _check_boxes_at_once(candidates, names)  # one host read
        for props, gt in zip(candidates, gts):
            if gt.numel() == 0:  # every proposal is background
                zeros = torch.zeros(len(props), dtype=torch.int64, device=props.device)
                matched, state = zeros, zeros.clone()
            else:
                matched, state = _match_proposals(_box_iou(*_compute_pair(props, gt)), self.fg_iou_threshold,
                                                  self.bg_iou_threshold)
            matches.append(matched)
            states.append(state)
        # The sampler, image by image (the same draws), with one host read for all images.
        width = max(len(s) for s in states)
        rows = torch.stack([F.pad(s, (0, width - len(s)), value=-1) for s in states])  # [B, P]; -1 is ignored
        fg_all, bg_all = _sample_rows(rows, self.batch_size_per_image, self.positive_fraction)
        sampled, classes, deltas = [], [], []
        for props, gt, lab, matched, fg, bg in zip(candidates, gts, labels, matches, fg_all, bg_all):
            keep = torch.cat([fg, bg])
            cls = torch.zeros(len(keep), dtype=torch.int64, device=props.device)
            reg = props.new_zeros((len(keep), 4))
            if len(fg):
                cls[: len(fg)] = lab[matched[fg]] + 1
                reg[: len(fg)] = _encode(props[fg], gt[matched[fg]], DEFAULT_MEANS, _STDS)
            sampled.append(props[keep])
            classes.append(cls)
            deltas.append(reg)
        return sampled, torch.cat(classes), torch.cat(deltas)

    def forward(self, features: Tensor, proposals: Sequence[Tensor], image_sizes: Sequence[tuple[int, int]],
                targets: Sequence[dict] | None = None):
        """Detections (eval) or losses (training).

        Args:
            features (Tensor[B, C, H, W]): the backbone's feature map at ``spatial_scale``.
            proposals (list of Tensor[P_i, 4]): per image, xyxy pixels (no gradient needed).
            image_sizes (list of (int, int)): ``(h, w)`` of each image, for clipping.
            targets (list of dict, optional): per image ``boxes`` (Tensor[G, 4]) and ``labels``
                (Tensor[G], ``0 .. num_classes - 1``); required in training.

        Returns:
            tuple: ``(detections, losses)``. In training ``detections`` is ``[]`` and ``losses``
            holds ``roi_cls`` and ``roi_box``; otherwise ``losses`` is ``{}`` and ``detections``
            a list of ``{"boxes", "scores", "labels"}`` per image.
        """
        if len(proposals) != len(features) or len(image_sizes) != len(features):
            raise ValueError(f"proposals and image_sizes must have one entry per image ({len(features)}), got "
                             f"{len(proposals)} and {len(image_sizes)}")
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training mode")
            proposals, classes, deltas = self._targets([p.detach() for p in proposals], targets)
            x = self.box_head(self.roi_features(features, proposals))
            logits, box_deltas = self.cls_score(x).float(), self.bbox_pred(x).float()
            loss_cls = F.cross_entropy(logits, classes)
            fg = torch.nonzero(classes > 0).flatten()
            pred = box_deltas.view(len(box_deltas), -1, 4)[fg, classes[fg]]  # [F, 4] for each own class
            loss_box = F.smooth_l1_loss(pred, deltas[fg].float(), beta=1 / 9, reduction="sum") / max(1, len(classes))
            return [], {"roi_cls": loss_cls, "roi_box": loss_box}
        x = self.box_head(self.roi_features(features, proposals))
        logits, box_deltas = self.cls_score(x).float(), self.bbox_pred(x).float()
        return self._postprocess(logits, box_deltas, proposals, image_sizes), {}

    def _postprocess(self, logits: Tensor, box_deltas: Tensor, proposals: Sequence[Tensor],
                     image_sizes: Sequence[tuple[int, int]]) -> list[dict]:
        from pixbox.ops import batched_nms, clip_boxes, decode_boxes
        from pixbox.ops.detection import _split_topk

        if not proposals:
            return []
        scores_all = logits.softmax(-1)
        all_boxes, all_scores, all_labels, all_images = [], [], [], []
        start = 0
        k = self.num_classes + 1
        for i, (props, size) in enumerate(zip(proposals, image_sizes)):
            n = len(props)
            scores = scores_all[start:start + n, 1:]  # [n, C] without the background
            deltas = box_deltas[start:start + n].view(n, k, 4)[:, 1:]  # [n, C, 4]
            start += n
            boxes = decode_boxes(props.float()[:, None, :].expand(-1, self.num_classes, -1), deltas, stds=_STDS)
            boxes = clip_boxes(boxes, size)  # [n, C, 4]
            labels = torch.arange(self.num_classes, device=boxes.device).expand(n, -1)
            all_boxes.append(boxes.reshape(-1, 4))
            all_scores.append(scores.reshape(-1))
            all_labels.append(labels.reshape(-1))
            all_images.append(torch.full((n * self.num_classes,), i, dtype=torch.int64, device=boxes.device))
        # All images at once: the candidates (score above the threshold, no side below min_size) in
        # one mask, and NMS per (image, class), which keeps exactly what NMS per image keeps, in order.
        boxes, scores, labels, images = (torch.cat(t) for t in (all_boxes, all_scores, all_labels, all_images))
        ws, hs = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        keep = ((scores > self.score_threshold) & (ws >= self.min_size) & (hs >= self.min_size)).nonzero().flatten()
        boxes, scores, labels, images = boxes[keep], scores[keep], labels[keep], images[keep]
        keep = batched_nms(boxes, scores, images * self.num_classes + labels, self.nms_threshold)
        return [{"boxes": boxes[sel], "scores": scores[sel], "labels": labels[sel]}
                for sel in _split_topk(keep, images.index_select(0, keep), len(proposals), self.detections_per_image)]
