"""Faster R-CNN (Ren et al. 2015): a backbone, a region proposal network and an RoI box head.

The book's story (D2L section 14.8): R-CNN warps each proposed region through a CNN; Fast
R-CNN runs the CNN once per image and cuts each region's features with RoI pooling; Faster
R-CNN replaces selective search by a region proposal network (RPN) that slides over the same
feature map. pixbox's :class:`FasterRCNN` is the single-scale ("C4") form:

    images [B, 3, H, W] in [0, 1] -> normalize -> ResNet up to layer3 (stride 16)
      -> RPN (:mod:`pixbox.models.rpn`): anchors of several sizes and ratios per cell,
         objectness and offsets, top-k, NMS 0.7 -> proposals
      -> RoI head (:mod:`pixbox.models.roi_heads`): RoI align 7x7 -> fc6, fc7 -> class scores
         and class-specific box offsets -> per-class NMS

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
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_choice, check_number

__all__ = ["FasterRCNN", "TopDownNeck", "faster_rcnn"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


class TopDownNeck(nn.Module):
    """Fuses a backbone's maps of increasing stride into one map at the finest stride.

    The top-down path of a feature pyramid network (Lin et al. 2017), keeping only its finest
    level: each map goes through a 1x1 "lateral" convolution to ``out_channels``; from the
    coarsest up, the running sum is upsampled (nearest) to the next finer map and added to it;
    a 3x3 convolution smooths the result. The finest map's resolution (small objects) gets the
    deepest map's context (large objects and class evidence).

    Args:
        in_channels (sequence of int): channels of the input maps, finest first.
        out_channels (int): channels of the output map.

    Input: list of ``[B, C_i, H_i, W_i]``, finest first. Output: ``[B, out_channels, H_0, W_0]``.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256):
        super().__init__()
        in_channels = [int(c) for c in in_channels]
        if not in_channels or min(in_channels) < 1:
            raise ValueError(f"in_channels must be a non-empty list of positive ints, got {in_channels!r}")
        self.out_channels = int(check_number(out_channels, "out_channels", low=1))
        self.lateral = nn.ModuleList(nn.Conv2d(c, self.out_channels, 1) for c in in_channels)
        self.smooth = nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        if len(features) != len(self.lateral):
            raise ValueError(f"expected {len(self.lateral)} feature maps, got {len(features)}")
        x = self.lateral[-1](features[-1])
        for f, lateral in zip(reversed(features[:-1]), reversed(self.lateral[:-1])):
            x = lateral(f) + F.interpolate(x, size=f.shape[-2:], mode="nearest")
        return self.smooth(x)


class FasterRCNN(nn.Module):
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
            :class:`~pixbox.models.rpn.RegionProposalNetwork`.
        roi_options (dict, optional): keyword arguments of
            :class:`~pixbox.models.roi_heads.RoIHeads`.
        score_threshold, nms_threshold (float), topk (int): the defaults of :meth:`predict`.
        neck (nn.Module, optional): maps the body's output to the one feature map at ``stride``
            (e.g. :class:`TopDownNeck`).
    """

    def __init__(self, body: nn.Module, feature_channels: int, num_classes: int, *, stride: int = 16,
                 anchor_sizes: Sequence[float] = (32, 64, 128, 256), anchor_ratios: Sequence[float] = (0.5, 1.0, 2.0),
                 image_mean: Sequence[float] = _IMAGENET_MEAN, image_std: Sequence[float] = _IMAGENET_STD,
                 rpn_options: dict | None = None, roi_options: dict | None = None, score_threshold: float = 0.05,
                 nms_threshold: float = 0.5, topk: int = 100, neck: nn.Module | None = None):
        super().__init__()
        from pixbox.models.roi_heads import RoIHeads
        from pixbox.models.rpn import RegionProposalNetwork, RPNHead, num_rpn_anchors_per_cell

        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.body = body
        self.neck = neck
        num_anchors = num_rpn_anchors_per_cell(anchor_sizes, anchor_ratios)
        self.rpn = RegionProposalNetwork(RPNHead(feature_channels, num_anchors), anchor_sizes, anchor_ratios, stride,
                                         **(rpn_options or {}))
        self.roi_heads = RoIHeads(feature_channels, num_classes, spatial_scale=1.0 / stride, **(roi_options or {}))
        self.score_threshold = float(check_number(score_threshold, "score_threshold", low=0, high=1))
        self.nms_threshold = float(check_number(nms_threshold, "nms_threshold", low=0, high=1))
        self.topk = int(check_number(topk, "topk", low=1))
        self.register_buffer("image_mean", torch.tensor(image_mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("image_std", torch.tensor(image_std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def features(self, images: Tensor) -> Tensor:
        """The backbone's feature map of [0, 1] images."""
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be a Tensor[B, 3, H, W] of floats in [0, 1], got {got}")
        x = (images - self.image_mean.to(images.dtype)) / self.image_std.to(images.dtype)
        out = self.body(x)
        if self.neck is not None:
            return self.neck(out)
        return out[-1] if isinstance(out, (list, tuple)) else out

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
        h, w = images.shape[-2:]
        scale = labels.new_tensor([w, h, w, h])
        targets = []
        for rows in labels:
            rows = rows[rows[:, 0] >= 0]
            targets.append({"boxes": rows[:, 1:] * scale, "labels": rows[:, 0].long()})
        losses = self(images, targets)
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
        head = self.roi_heads
        saved = head.score_threshold, head.nms_threshold, head.detections_per_image
        head.score_threshold = self.score_threshold if score_threshold is None else float(
            check_number(score_threshold, "score_threshold", low=0, high=1))
        head.nms_threshold = self.nms_threshold if nms_threshold is None else float(
            check_number(nms_threshold, "nms_threshold", low=0, high=1))
        head.detections_per_image = self.topk if topk is None else int(check_number(topk, "topk", low=1))
        was_training = self.training
        self.eval()
        try:
            return self(images)
        finally:
            self.train(was_training)
            head.score_threshold, head.nms_threshold, head.detections_per_image = saved


def faster_rcnn(backbone: str = "resnet18", num_classes: int = 20, *, image_size: int | None = None,
                pretrained_backbone: str | os.PathLike | None = None, feature_stride: int = 8,
                neck_channels: int = 128, **kwargs) -> FasterRCNN:
    """A single-map Faster R-CNN on a ResNet.

    Two forms of the feature map that the RPN and the RoI head share:

    * ``feature_stride=8`` (default): ``layer2``, ``layer3`` and ``layer4`` fused top-down by a
      :class:`TopDownNeck` into one stride-8 map of ``neck_channels``. Small objects span more
      cells and the RoI features see the deepest stage; on the generated ``shapes`` set this is
      what lifts the box head's classification (see the README's Detection section).
    * ``feature_stride=16``: the original single-scale "C4" form, ``layer3`` only (no neck).

    Args:
        backbone (str): ``"resnet18"``, ``"resnet34"`` or ``"resnet50"``.
        num_classes (int): object classes (no background).
        image_size (int, optional): the training image side; anchor sizes default to
            ``image_size / 16 .. image_size`` (five sizes) at stride 8, ``image_size / 8 ..
            image_size`` (four) at stride 16, when given; else (32, 64, 128, 256) (plus 16 at
            stride 8).
        pretrained_backbone (str or PathLike, optional): a local torchvision ResNet checkpoint.
        feature_stride (int): 8 or 16 (above).
        neck_channels (int): channels of the fused map (stride 8 only). 128 (FPN uses 256) keeps
            the RoI head's input at 128 x 7 x 7 and training as fast as the stride-16 form here.
        **kwargs: :class:`FasterRCNN` options (``anchor_sizes``, ``rpn_options``,
            ``roi_options`` (default ``batch_size_per_image=128``, ``representation_size=512``),
            ``score_threshold``, ...).
    """
    from pixbox.models.backbones import BACKBONES, ResNetFeatures, load_state_dict_file

    check_choice(backbone, "backbone", ("resnet18", "resnet34", "resnet50"))
    check_choice(feature_stride, "feature_stride", (8, 16))
    resnet = BACKBONES[backbone]()
    if pretrained_backbone is not None:
        load_state_dict_file(resnet, pretrained_backbone)
    # A CPU-sized RoI head: 128 sampled proposals per image and 512-wide fc layers (torchvision
    # uses 512 and 1024): 3x the training speed here (9.1 against 2.9 images/s at 256 px).
    kwargs["roi_options"] = {"batch_size_per_image": 128, "representation_size": 512, **(kwargs.get("roi_options") or {})}
    if feature_stride == 16:
        body = ResNetFeatures(resnet, ("layer3",))
        fractions, default_sizes = (0.125, 0.25, 0.5, 1.0), (32, 64, 128, 256)
        neck, channels = None, body.feature_channels[-1]
    else:
        body = ResNetFeatures(resnet, ("layer2", "layer3", "layer4"))
        fractions, default_sizes = (0.0625, 0.125, 0.25, 0.5, 1.0), (16, 32, 64, 128, 256)
        neck = TopDownNeck(body.feature_channels, neck_channels)
        channels = neck.out_channels
    if "anchor_sizes" not in kwargs:
        kwargs["anchor_sizes"] = default_sizes if image_size is None else tuple(image_size * f for f in fractions)
    return FasterRCNN(body, channels, num_classes, stride=feature_stride, neck=neck, **kwargs)
