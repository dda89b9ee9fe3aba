"""What Fast and Faster R-CNN share: input normalization, the feature map, engine batches,
prediction thresholds, and the ResNet feature maps their builders use."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Sequence

import torch
from torch import Tensor, nn

from pixbox._checks import check_choice, check_number
from pixbox.models.rcnn.neck import TopDownNeck

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)

#: The CPU-sized RoI head defaults of the builders: 128 sampled proposals per image and
#: 512-wide fc layers (torchvision uses 512 and 1024): 3x the training speed here (9.1 against
#: 2.9 images/s at 256 px).
CPU_ROI_OPTIONS = {"batch_size_per_image": 128, "representation_size": 512}


class TwoStageDetector(nn.Module):
    """Base of :class:`~pixbox.models.rcnn.FasterRCNN` and :class:`~pixbox.models.rcnn.FastRCNN`.

    Holds the backbone ``body``, the optional ``neck``, the input normalization and the
    defaults of :meth:`predict`. A subclass sets ``self.roi_heads`` and implements ``forward``.
    """

    def __init__(self, body: nn.Module, num_classes: int, *, neck: nn.Module | None, image_mean: Sequence[float],
                 image_std: Sequence[float], score_threshold: float, nms_threshold: float, topk: int):
        super().__init__()
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
        self.num_classes = num_classes
        self.body = body
        self.neck = neck
        self.score_threshold = float(check_number(score_threshold, "score_threshold", low=0, high=1))
        self.nms_threshold = float(check_number(nms_threshold, "nms_threshold", low=0, high=1))
        self.topk = int(check_number(topk, "topk", low=1))
        self.register_buffer("image_mean", torch.tensor(image_mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("image_std", torch.tensor(image_std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def features(self, images: Tensor) -> Tensor:
        """The feature map ``[B, C, H / stride, W / stride]`` of [0, 1] images ``[B, 3, H, W]``."""
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
            got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must be a Tensor[B, 3, H, W] of floats in [0, 1], got {got}")
        x = (images - self.image_mean.to(images.dtype)) / self.image_std.to(images.dtype)
        out = self.body(x)
        if self.neck is not None:
            return self.neck(out)
        return out[-1] if isinstance(out, (list, tuple)) else out

    @staticmethod
    def targets_from_labels(images: Tensor, labels: Tensor) -> list[dict[str, Tensor]]:
        """Per-image ``{"boxes" (pixels), "labels"}`` of an engine batch's padded labels
        ``[B, G, 5]`` (``(class, x1, y1, x2, y2)`` normalized; class ``-1`` rows are padding)."""
        from pixbox.ops.coder import _filled

        h, w = images.shape[-2:]
        scale = _filled([w, h, w, h], labels)  # no host-device copy
        # The rows of every image at once: one host read (how many each image has).
        valid = labels[..., 0] >= 0  # [B, G]
        counts = valid.sum(1).tolist()
        flat = torch.nonzero_static(valid.reshape(-1), size=sum(counts)).flatten()
        rows = labels.reshape(-1, labels.shape[-1]).index_select(0, flat)  # [sum G_i, 5]
        boxes, classes = (rows[:, 1:] * scale).split(counts), rows[:, 0].long().split(counts)
        return [{"boxes": b, "labels": c} for b, c in zip(boxes, classes)]

    @contextmanager
    def _inference(self, score_threshold: float | None, nms_threshold: float | None, topk: int | None):
        """Eval mode with the RoI head's thresholds set for one :meth:`predict` call; restores both."""
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
            yield
        finally:
            self.train(was_training)
            head.score_threshold, head.nms_threshold, head.detections_per_image = saved


def backbone_feature_map(backbone: str, pretrained_backbone: str | os.PathLike | None, feature_stride: int,
                         neck_channels: int) -> tuple[nn.Module, TopDownNeck | None, int, dict]:
    """The body, neck and output channels of the builders' two feature-map forms, and the input
    normalization of the backbone's pretraining.

    ``feature_stride=8``: the backbone's stride-8, 16 and 32 maps (a ResNet's ``layer2``..``layer4``;
    another backbone's :class:`~pixbox.models.ssd.StageFeatures` taps) fused top-down by a
    :class:`TopDownNeck` into one stride-8 map of ``neck_channels``; ``16``: a ResNet's ``layer3``
    alone (the "C4" form, no neck; ResNets only).

    Args:
        backbone (str): a key of :data:`pixbox.models.backbones.BACKBONES` with stride-8/16/32 maps
            (``resnet18/34/50``, ``efficientnet_lite0/1/2``).
        pretrained_backbone (str or PathLike, optional): for a ResNet a local torchvision
            checkpoint; for another backbone ``"default"`` (its offline weights) or a file.

    Returns:
        tuple: ``(body, neck or None, channels, {"image_mean", "image_std"})``.
    """
    from pixbox.models.backbones import BACKBONES, ResNetFeatures, load_pretrained, load_state_dict_file
    from pixbox.models.ssd import StageFeatures

    check_choice(backbone, "backbone", BACKBONES)
    check_choice(feature_stride, "feature_stride", (8, 16))
    net = BACKBONES[backbone]()
    if not backbone.startswith("resnet"):
        if feature_stride != 8:
            raise ValueError(f"feature_stride=16 (the C4 form) is for ResNets; {backbone} takes feature_stride=8")
        if pretrained_backbone is not None:
            load_pretrained(net, pretrained_backbone)
        norm = {"image_mean": tuple(net.pretrained_cfg["mean"]), "image_std": tuple(net.pretrained_cfg["std"])}
        body = StageFeatures(net)
        neck = TopDownNeck(body.feature_channels, neck_channels)
        return body, neck, neck.out_channels, norm
    norm = {"image_mean": _IMAGENET_MEAN, "image_std": _IMAGENET_STD}
    if pretrained_backbone is not None:
        load_state_dict_file(net, pretrained_backbone)
    if feature_stride == 16:
        body = ResNetFeatures(net, ("layer3",))
        return body, None, body.feature_channels[-1], norm
    body = ResNetFeatures(net, ("layer2", "layer3", "layer4"))
    neck = TopDownNeck(body.feature_channels, neck_channels)
    return body, neck, neck.out_channels, norm
