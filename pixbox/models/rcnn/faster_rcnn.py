"""Faster R-CNN (Ren et al. 2015): a backbone, a region proposal network and an RoI box head.

The book's story (D2L section 14.8): R-CNN warps each proposed region through a CNN; Fast
R-CNN (:mod:`pixbox.models.rcnn.fast_rcnn`) runs the CNN once per image and cuts each region's
features with RoI pooling; Faster R-CNN replaces selective search by a region proposal network
(RPN) that slides over the same feature map:

    images [B, 3, H, W] in [0, 1] -> normalize -> ResNet -> one feature map
      (stride 8: layer2..layer4 fused by a TopDownNeck, the default; or stride 16: layer3)
      -> RPN (:mod:`pixbox.models.rcnn.rpn`): anchors of several sizes and ratios per cell,
         objectness and offsets, top-k, NMS 0.7 -> proposals
      -> RoI head (:mod:`pixbox.models.rcnn.roi_heads`): RoI align 7x7 -> fc6, fc7 -> class
         scores and class-specific box offsets -> per-class NMS

Trained end to end: the loss is the sum of the RPN's objectness and box losses and the RoI
head's classification and box losses. It plugs into pixbox's detection engine like an SSD:
:meth:`FasterRCNN.detection_losses` takes the engine's batches (D2L-style padded labels) and
:meth:`FasterRCNN.predict` returns the same per-image dicts as :meth:`pixbox.models.SSD.predict`.

Example:
    >>> net = faster_rcnn("resnet18", num_classes=3)
    >>> dets = net.predict(torch.rand(1, 3, 128, 128))
    >>> sorted(dets[0])
    ['boxes', 'labels', 'scores']
"""

from __future__ import annotations

import os
from typing import Sequence

import torch
from torch import Tensor, nn

from pixbox.models.rcnn._base import (
    _IMAGENET_MEAN,
    _IMAGENET_STD,
    CPU_ROI_OPTIONS,
    TwoStageDetector,
    backbone_feature_map,
)
from pixbox.models.rcnn.roi_heads import RoIHeads
from pixbox.models.rcnn.rpn import RegionProposalNetwork, RPNHead, num_rpn_anchors_per_cell

__all__ = ["FasterRCNN", "faster_rcnn"]


class FasterRCNN(TwoStageDetector):
    """Backbone, region proposal network and RoI head, trained end to end.

    Args:
        body (nn.Module): images ``[B, 3, H, W]`` (normalized) -> a feature map at ``stride``
            (or a list of maps: the input of ``neck`` if given, else the last map is used).
        feature_channels (int): channels of the map the RPN and RoI head see.
        num_classes (int): object classes (no background), >= 1.
        stride (int): the feature map's stride in pixels.
        anchor_sizes (sequence of float): anchor sizes in pixels at every cell.
        anchor_ratios (sequence of float): anchor aspect ratios (width / height).
        image_mean, image_std (3 floats): input normalization of [0, 1] RGB.
        rpn_options (dict, optional): keyword arguments of
            :class:`~pixbox.models.rcnn.rpn.RegionProposalNetwork`.
        roi_options (dict, optional): keyword arguments of
            :class:`~pixbox.models.rcnn.roi_heads.RoIHeads`.
        score_threshold, nms_threshold (float), topk (int): the defaults of :meth:`predict`.
        neck (nn.Module, optional): maps the body's output to the one feature map at ``stride``
            (e.g. :class:`~pixbox.models.rcnn.TopDownNeck`).
    """

    def __init__(self, body: nn.Module, feature_channels: int, num_classes: int, *, stride: int = 16,
                 anchor_sizes: Sequence[float] = (32, 64, 128, 256), anchor_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 image_mean: Sequence[float] = _IMAGENET_MEAN, image_std: Sequence[float] = _IMAGENET_STD,
                 rpn_options: dict | None = None, roi_options: dict | None = None, score_threshold: float = 0.05,
                 nms_threshold: float = 0.5, topk: int = 100, neck: nn.Module | None = None):
        super().__init__(body, num_classes, neck=neck, image_mean=image_mean, image_std=image_std,
                         score_threshold=score_threshold, nms_threshold=nms_threshold, topk=topk)
        num_anchors = num_rpn_anchors_per_cell(anchor_sizes, anchor_ratios)
        self.rpn = RegionProposalNetwork(RPNHead(feature_channels, num_anchors), anchor_sizes, anchor_ratios, stride,
                                         **(rpn_options or {}))
        self.roi_heads = RoIHeads(feature_channels, num_classes, spatial_scale=1.0 / stride, **(roi_options or {}))

    def forward(self, images: Tensor, targets: Sequence[dict] | None = None):
        """Losses (training, ``targets`` required) or detections (eval).

        Args:
            images (Tensor[B, 3, H, W]): float in [0, 1].
            targets (list of dict, optional): per image ``boxes`` (Tensor[G, 4], xyxy pixels) and
                ``labels`` (Tensor[G], ``0 .. num_classes - 1``); ``G`` may be 0.

        Returns:
            dict of losses (``rpn_objectness``, ``rpn_box``, ``roi_cls``, ``roi_box``) in
            training; otherwise a list of ``{"boxes", "scores", "labels"}`` per image.
        """
        # Box geometry (anchors, offsets, proposals, RoI sampling points) stays in float32 under
        # mixed precision: bfloat16 would round 256-pixel coordinates to whole pixels. The RoI
        # head's fully connected layers still autocast.
        features = self.features(images).float()
        sizes = [(int(images.shape[-2]), int(images.shape[-1]))] * len(images)
        if self.training and targets is None:
            raise ValueError("targets are required in training mode")
        with torch.autocast(features.device.type, enabled=False):
            boxes = None if targets is None else [t["boxes"].float() for t in targets]
            proposals, rpn_losses = self.rpn(features, sizes, boxes if self.training else None)
        if self.training:
            _, roi_losses = self.roi_heads(features, proposals, sizes, targets)
            return {**rpn_losses, **roi_losses}
        detections, _ = self.roi_heads(features, proposals, sizes)
        return detections

    def detection_losses(self, images: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """The training losses of an engine batch.

        Args:
            images (Tensor[B, 3, H, W]): float in [0, 1].
            labels (Tensor[B, G, 5]): rows ``(class, x1, y1, x2, y2)`` with normalized
                coordinates; class ``-1`` rows are padding
                (:func:`pixbox.data.loaders.collate_multibox`).

        Returns:
            dict: ``loss`` (the sum, backpropagated), ``rpn`` and ``roi`` (their parts).
        """
        losses = self(images, self.targets_from_labels(images, labels))
        rpn = losses["rpn_objectness"] + losses["rpn_box"]
        roi = losses["roi_cls"] + losses["roi_box"]
        return {"loss": rpn + roi, "rpn": rpn.detach(), "roi": roi.detach()}

    @torch.no_grad()
    def predict(self, images: Tensor, *, score_threshold: float | None = None, nms_threshold: float | None = None,
                topk: int | None = None) -> list[dict[str, Tensor]]:
        """Detections per image in input pixels, as :meth:`pixbox.models.SSD.predict` gives them.

        Args:
            images (Tensor[B, 3, H, W]): float in [0, 1].
            score_threshold, nms_threshold (float), topk (int): default the model's.

        Returns:
            list of B dicts: ``boxes`` (Tensor[K, 4] xyxy pixels), ``scores`` (decreasing) and
            ``labels`` (int64 in ``[0, num_classes)``).
        """
        with self._inference(score_threshold, nms_threshold, topk):
            return self(images)


def faster_rcnn(backbone: str = "resnet18", num_classes: int = 20, *, image_size: int | None = None,
                pretrained_backbone: str | os.PathLike | None = None, feature_stride: int = 8,
                neck_channels: int = 128, **kwargs) -> FasterRCNN:
    """A single-map Faster R-CNN on a ResNet.

    Two forms of the feature map that the RPN and the RoI head share:

    * ``feature_stride=8`` (default): ``layer2``, ``layer3`` and ``layer4`` fused top-down by a
      :class:`~pixbox.models.rcnn.TopDownNeck` into one stride-8 map of ``neck_channels``.
      Small objects span more cells and the RoI features see the deepest stage; on the
      generated ``shapes`` set this is what lifts the box head's classification (see the
      README's Detection section).
    * ``feature_stride=16``: the original single-scale "C4" form, ``layer3`` only (no neck).

    Args:
        backbone (str): ``"resnet18"``, ``"resnet34"``, ``"resnet50"`` or ``"efficientnet_lite0/1/2"``
            (stride 8 only; offline ImageNet weights with ``pretrained_backbone="default"``).
        num_classes (int): object classes (no background).
        image_size (int, optional): the training image side; anchor sizes default to
            ``image_size / 16 .. image_size`` (five sizes) at stride 8, ``image_size / 8 ..
            image_size`` (four) at stride 16, when given; else (32, 64, 128, 256) (plus 16 at
            stride 8).
        pretrained_backbone (str or PathLike, optional): a local torchvision ResNet checkpoint, or
            for EfficientNet-Lite0 ``"default"`` (its offline weights) or a file.
        feature_stride (int): 8 or 16 (above).
        neck_channels (int): channels of the fused map (stride 8 only). 128 (FPN uses 256) keeps
            the RoI head's input at 128 x 7 x 7 and training as fast as the stride-16 form here.
        **kwargs: :class:`FasterRCNN` options (``anchor_sizes``, ``rpn_options``,
            ``roi_options`` (default :data:`~pixbox.models.rcnn.CPU_ROI_OPTIONS`),
            ``score_threshold``, ...).
    """
    body, neck, channels, norm = backbone_feature_map(backbone, pretrained_backbone, feature_stride, neck_channels)
    for key, value in norm.items():
        kwargs.setdefault(key, value)
    kwargs["roi_options"] = {**CPU_ROI_OPTIONS, **(kwargs.get("roi_options") or {})}
    if "anchor_sizes" not in kwargs:
        if feature_stride == 16:
            fractions, default_sizes = (0.125, 0.25, 0.5, 1.0), (32, 64, 128, 256)
        else:
            fractions, default_sizes = (0.0625, 0.125, 0.25, 0.5, 1.0), (16, 32, 64, 128, 256)
        kwargs["anchor_sizes"] = default_sizes if image_size is None else tuple(image_size * f for f in fractions)
    return FasterRCNN(body, channels, num_classes, stride=feature_stride, neck=neck, **kwargs)
