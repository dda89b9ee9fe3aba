"""Fast R-CNN (Girshick 2015): one CNN pass per image, RoI features of external proposals.

The middle step of the book's story (D2L section 14.8): R-CNN warps every proposed region
through a CNN; Fast R-CNN runs the CNN once on the whole image and cuts each region's feature
with RoI pooling; Faster R-CNN (:mod:`pixbox.models.rcnn.faster_rcnn`) then learns the proposals too.
pixbox's :class:`FastRCNN` is :class:`~pixbox.models.rcnn.FasterRCNN` without the region
proposal network: the same backbone (and :class:`~pixbox.models.rcnn.TopDownNeck`) and the same
RoI head (:class:`~pixbox.models.rcnn.roi_heads.RoIHeads`), fed with regions from outside, e.g.
selective search (:func:`pixbox.data.proposals.selective_search`) or a proposals file
(:mod:`pixbox.data.proposals`):

    images [B, 3, H, W] in [0, 1] -> normalize -> ResNet (+ neck) -> one feature map
    proposals [P_i, 4] per image (the first ``max_proposals``) -> RoI align 7x7 -> fc6, fc7
      -> class scores and class-specific box offsets -> per-class NMS

The loss is the RoI head's classification and box loss; in training the ground-truth boxes join
the proposals (so an image without proposals still teaches the head). Engine batches carry the
proposals as a third element (:func:`pixbox.data.loaders.collate_multibox`); the detection
engine checks :attr:`FastRCNN.needs_proposals`.

Example:
    >>> net = fast_rcnn("resnet18", num_classes=3)
    >>> proposals = [torch.tensor([[8.0, 8.0, 40.0, 40.0], [0.0, 0.0, 64.0, 64.0]])]
    >>> dets = net.predict(torch.rand(1, 3, 64, 64), proposals)
    >>> sorted(dets[0])
    ['boxes', 'labels', 'scores']
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import Tensor, nn

from pixbox._checks import check_number
from pixbox.models.rcnn._base import (
    _IMAGENET_MEAN,
    _IMAGENET_STD,
    CPU_ROI_OPTIONS,
    TwoStageDetector,
    backbone_feature_map,
)
from pixbox.models.rcnn.roi_heads import RoIHeads

__all__ = ["FastRCNN", "fast_rcnn"]


def _check_proposals(proposals, batch: int) -> list[Tensor]:
    if isinstance(proposals, Tensor) and proposals.dim() == 3:
        proposals = list(proposals)
    if not isinstance(proposals, (list, tuple)) or len(proposals) != batch:
        got = f"{len(proposals)} entries" if isinstance(proposals, (list, tuple)) else type(proposals).__name__
        raise ValueError(f"proposals must be a list of one Tensor[P, 4] (xyxy pixels) per image ({batch}), got {got}")
    out = []
    for i, p in enumerate(proposals):
        if not isinstance(p, Tensor) or (p.numel() > 0 and (p.dim() != 2 or p.shape[-1] != 4)):
            got = tuple(p.shape) if isinstance(p, Tensor) else type(p).__name__
            raise ValueError(f"proposals[{i}] must be a Tensor[P, 4] of xyxy pixels, got {got}")
        out.append(p.reshape(-1, 4))
    return out


class FastRCNN(TwoStageDetector):
    """Backbone and RoI head on external region proposals.

    Args:
        body (nn.Module): images ``[B, 3, H, W]`` (normalized) -> a feature map at ``stride``
            (or a list of maps: the input of ``neck`` if given, else the last map is used).
        feature_channels (int): channels of the map the RoI head sees.
        num_classes (int): object classes (no background), >= 1.
        stride (int): the feature map's stride in pixels.
        image_mean, image_std (3 floats): input normalization of [0, 1] RGB.
        roi_options (dict, optional): keyword arguments of
            :class:`~pixbox.models.rcnn.roi_heads.RoIHeads` (``pooler="pool"`` for the paper's RoI
            max pooling; RoI align by default).
        score_threshold, nms_threshold (float), topk (int): the defaults of :meth:`predict`.
        neck (nn.Module, optional): maps the body's output to the one feature map at ``stride``.
        max_proposals (int): proposals used per image, the first ones (files list them best
            first), >= 1.

    Attributes:
        needs_proposals (bool): True: :meth:`forward`, :meth:`detection_losses` and
            :meth:`predict` take the proposals of each image.
    """

    needs_proposals = True

    def __init__(self, body: nn.Module, feature_channels: int, num_classes: int, *, stride: int = 16,
                 image_mean: Sequence[float] = _IMAGENET_MEAN, image_std: Sequence[float] = _IMAGENET_STD,
                 roi_options: dict | None = None, score_threshold: float = 0.05, nms_threshold: float = 0.5,
                 topk: int = 100, neck: nn.Module | None = None, max_proposals: int = 2000):
        super().__init__(body, num_classes, neck=neck, image_mean=image_mean, image_std=image_std,
                         score_threshold=score_threshold, nms_threshold=nms_threshold, topk=topk)
        self.stride = int(check_number(stride, "stride", low=1))
        self.roi_heads = RoIHeads(feature_channels, num_classes, spatial_scale=1.0 / stride, **(roi_options or {}))
        self.max_proposals = int(check_number(max_proposals, "max_proposals", low=1))

    def prepare_proposals(self, proposals, image_size: tuple[int, int]) -> list[Tensor]:
        """The proposals the head sees: the first ``max_proposals`` of each image, float32,
        clipped to the image, without the empty ones.

        Args:
            proposals (list of Tensor[P_i, 4]): xyxy pixels of the input images.
            image_size (tuple[int, int]): ``(H, W)`` of the input images.

        Returns:
            list of Tensor[P_i', 4]: ``P_i' <= min(P_i, max_proposals)``.
        """
        from pixbox.ops import clip_boxes

        out = []
        for p in proposals:
            p = clip_boxes(p[: self.max_proposals].detach().float(), image_size)
            out.append(p[(p[:, 2] > p[:, 0]) & (p[:, 3] > p[:, 1])])
        return out

    def forward(self, images: Tensor, proposals: Sequence[Tensor], targets: Sequence[dict] | None = None):
        """Losses (training, ``targets`` required) or detections (eval).

        Args:
            images (Tensor[B, 3, H, W]): float in [0, 1].
            proposals (list of B Tensor[P_i, 4]): xyxy pixels of ``images``, best first;
                ``P_i`` may be 0.
            targets (list of dict, optional): per image ``boxes`` (Tensor[G, 4], xyxy pixels) and
                ``labels`` (Tensor[G], ``0 .. num_classes - 1``); ``G`` may be 0.

        Returns:
            dict of losses (``roi_cls``, ``roi_box``) in training; otherwise a list of
            ``{"boxes", "scores", "labels"}`` per image.
        """
        features = self.features(images).float()  # RoI geometry in float32, as in FasterRCNN
        size = (int(images.shape[-2]), int(images.shape[-1]))
        proposals = self.prepare_proposals(_check_proposals(proposals, len(images)), size)
        proposals = [p.to(features.device) for p in proposals]
        sizes = [size] * len(images)
        if self.training:
            if targets is None:
                raise ValueError("targets are required in training mode")
            targets = [{"boxes": t["boxes"].float().reshape(-1, 4), "labels": t["labels"]} for t in targets]
            if all(len(p) == 0 and len(t["boxes"]) == 0 for p, t in zip(proposals, targets)):
                zero = features.sum() * 0.0  # nothing to sample: a zero loss that still backpropagates
                return {"roi_cls": zero, "roi_box": zero.clone()}
            _, losses = self.roi_heads(features, proposals, sizes, targets)
            return losses
        detections, _ = self.roi_heads(features, proposals, sizes)
        return detections

    def detection_losses(self, images: Tensor, labels: Tensor, proposals: Sequence[Tensor]) -> dict[str, Tensor]:
        """The training losses of an engine batch.

        Args:
            images (Tensor[B, 3, H, W]): float in [0, 1].
            labels (Tensor[B, G, 5]): rows ``(class, x1, y1, x2, y2)`` with normalized
                coordinates; class ``-1`` rows are padding
                (:func:`pixbox.data.loaders.collate_multibox`).
            proposals (list of B Tensor[P_i, 4]): xyxy pixels of ``images``.

        Returns:
            dict: ``loss`` (backpropagated) and ``roi`` (the same, detached).
        """
        targets = self.targets_from_labels(images, labels)
        losses = self(images, proposals, targets)
        roi = losses["roi_cls"] + losses["roi_box"]
        return {"loss": roi, "roi": roi.detach()}

    @torch.no_grad()
    def predict(self, images: Tensor, proposals: Sequence[Tensor], *, score_threshold: float | None = None,
                nms_threshold: float | None = None, topk: int | None = None) -> list[dict[str, Tensor]]:
        """Detections per image in input pixels, as :meth:`pixbox.models.SSD.predict` gives them.

        Args:
            images (Tensor[B, 3, H, W]): float in [0, 1].
            proposals (list of B Tensor[P_i, 4]): xyxy pixels of ``images``.
            score_threshold, nms_threshold (float), topk (int): default the model's.

        Returns:
            list of B dicts: ``boxes`` (Tensor[K, 4] xyxy pixels), ``scores`` (decreasing) and
            ``labels`` (int64 in ``[0, num_classes)``).
        """
        with self._inference(score_threshold, nms_threshold, topk):
            return self(images, proposals)


def fast_rcnn(backbone: str = "resnet18", num_classes: int = 20, *, image_size: int | None = None,
              pretrained_backbone: str | os.PathLike | None = None, feature_stride: int = 8,
              neck_channels: int = 128, **kwargs) -> FastRCNN:
    """A single-map Fast R-CNN on a ResNet (the feature maps of :func:`~pixbox.models.rcnn.faster_rcnn`).

    * ``feature_stride=8`` (default): ``layer2``, ``layer3`` and ``layer4`` fused top-down by a
      :class:`~pixbox.models.rcnn.TopDownNeck` into one stride-8 map of ``neck_channels``;
    * ``feature_stride=16``: ``layer3`` only (the "C4" form, no neck).

    Args:
        backbone (str): ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"efficientnet_lite0/1/2"``
            (stride 8 only; offline ImageNet weights with ``pretrained_backbone="default"``).
        num_classes (int): object classes (no background).
        image_size (int, optional): the training image side; unused (there are no anchors to
            size), accepted so that every detection builder takes the engine's arguments.
        pretrained_backbone (str or PathLike, optional): a local torchvision ResNet checkpoint, or
            for EfficientNet-Lite0 ``"default"`` (its offline weights) or a file.
        feature_stride (int): 8 or 16 (above).
        neck_channels (int): channels of the fused map (stride 8 only).
        **kwargs: :class:`FastRCNN` options (``roi_options`` (default
            ``batch_size_per_image=128``, ``representation_size=512``, as Faster R-CNN's),
            ``max_proposals``, ``score_threshold``, ...).
    """
    body, neck, channels, norm = backbone_feature_map(backbone, pretrained_backbone, feature_stride, neck_channels)
    for key, value in norm.items():
        kwargs.setdefault(key, value)
    kwargs["roi_options"] = {**CPU_ROI_OPTIONS, **(kwargs.get("roi_options") or {})}
    return FastRCNN(body, channels, num_classes, stride=feature_stride, neck=neck, **kwargs)
