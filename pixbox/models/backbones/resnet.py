"""ResNet-18/34/50 with torchvision's ``state_dict``, and :class:`ResNetFeatures` to tap its stages.

:func:`resnet18`, :func:`resnet34` and :func:`resnet50` build the ResNet of He et al. (2016)
exactly as torchvision does (ResNet v1.5: in a bottleneck block the stride sits on the 3x3
convolution), with the same module names, so the ``state_dict`` keys and shapes are
torchvision's::

    conv1, bn1, layer{1..4}.{i}.{conv1, bn1, conv2, bn2[, conv3, bn3][, downsample.0, downsample.1]}, fc

A checkpoint file saved from torchvision therefore loads with ``strict=True``. Pretrained
weights are never downloaded: pass a local file to
:func:`~pixbox.models.backbones.load_pretrained`.

Taps (:meth:`ResNet.features_at`): ``"stem"`` (after ``conv1``, ``bn1``, ReLU; stride 2) and
``"layer1"`` .. ``"layer4"`` (strides 4, 8, 16, 32).

:class:`ResNetFeatures` is a module holding only the stem and the stages up to the deepest one
it returns (for SSD, FPN): its ``state_dict`` is torchvision's minus ``fc`` and the unused stages.

Example:
    >>> net = resnet18()
    >>> body = ResNetFeatures(net)
    >>> [tuple(f.shape) for f in body(torch.zeros(1, 3, 64, 64))]
    [(1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
    >>> body.feature_channels
    [128, 256, 512]
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from pixbox.models.backbones._base import Backbone, _check_num_classes, _pretrained_cfg

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "ResNetFeatures", "resnet18", "resnet34", "resnet50"]


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34).

    Args:
        in_channels (int): input channels.
        planes (int): output channels (``expansion = 1``).
        stride (int): stride of the first convolution.
        downsample (nn.Module, optional): projection of the input for the residual
            (``conv1x1 + BN``) when the stride or the channel count changes.
    """

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided), 1x1 expand, with a residual connection (ResNet-50 and up).

    Args:
        in_channels (int): input channels.
        planes (int): inner channels; the output has ``planes * 4`` (``expansion = 4``).
        stride (int): stride of the 3x3 convolution (ResNet v1.5, as torchvision).
        downsample (nn.Module, optional): projection of the input for the residual.
    """

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv1x1(in_channels, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


# (block, blocks per stage) -> torchvision's name, for pretrained_cfg["architecture"].
_ARCHITECTURES = {
    ("BasicBlock", (2, 2, 2, 2)): "resnet18",
    ("BasicBlock", (3, 4, 6, 3)): "resnet34",
    ("Bottleneck", (3, 4, 6, 3)): "resnet50",
}


class ResNet(Backbone):
    """The ResNet classifier (torchvision's architecture and parameter names).

    Args:
        block (type): :class:`BasicBlock` or :class:`Bottleneck`.
        layers (sequence of 4 int): blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        num_classes (int): outputs of the final ``fc`` layer, >= 1.

    Input: float images ``[B, 3, H, W]`` (ImageNet-normalized for pretrained weights).
    Output: logits ``[B, num_classes]``.

    Attributes:
        stage_channels (dict[str, int]): output channels of ``layer1`` .. ``layer4``.
        num_features (int): ``512 * block.expansion`` (channels of ``layer4``).
        classifier_name (str): ``"fc"``.
        feature_info (list[dict]): ``stem`` (reduction 2), ``layer1`` .. ``layer4`` (4 .. 32).
        pretrained_cfg (dict): ImageNet mean/std, 224 px, crop 0.875, bilinear; no default weights.
    """

    classifier_name = "fc"

    def __init__(self, block: type, layers: Sequence[int], num_classes: int = 1000) -> None:
        super().__init__()
        if block not in (BasicBlock, Bottleneck):
            raise TypeError(f"block must be BasicBlock or Bottleneck, got {block!r}")
        layers = list(layers)
        if len(layers) != 4 or any(not isinstance(n, int) or n < 1 for n in layers):
            raise ValueError(f"layers must be 4 positive ints (blocks per stage), got {layers}")
        self.num_classes = _check_num_classes(num_classes)
        self.in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

        self.stage_channels = {f"layer{i + 1}": c * block.expansion for i, c in enumerate((64, 128, 256, 512))}
        self.num_features = self.stage_channels["layer4"]
        self.feature_info = [{"name": "stem", "channels": 64, "reduction": 2}] + [
            {"name": name, "channels": c, "reduction": 2 ** (i + 2)} for i, (name, c) in enumerate(self.stage_channels.items())
        ]
        self.pretrained_cfg = _pretrained_cfg(_ARCHITECTURES.get((block.__name__, tuple(layers))))

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block: type, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        downsample = None
        out_channels = planes * block.expansion
        if stride != 1 or self.in_channels != out_channels:
            downsample = nn.Sequential(_conv1x1(self.in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))
        layers = [block(self.in_channels, planes, stride, downsample)]
        self.in_channels = out_channels
        layers += [block(out_channels, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward_features(self, x: Tensor) -> Tensor:
        """``layer4``'s output ``[B, 512 * expansion, ceil(H / 32), ceil(W / 32)]`` of images ``[B, 3, H, W]``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, features: Tensor) -> Tensor:
        """Global average pooling and ``fc``: ``[B, num_features, h, w]`` -> logits ``[B, num_classes]``."""
        return self.fc(torch.flatten(self.avgpool(self._check_features(features)), 1))

    def _tap_steps(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        return [
            ("stem", lambda x: self.relu(self.bn1(self.conv1(x)))),
            ("layer1", lambda x: self.layer1(self.maxpool(x))),
            ("layer2", self.layer2),
            ("layer3", self.layer3),
            ("layer4", self.layer4),
        ]


_STAGES = ("layer1", "layer2", "layer3", "layer4")


class ResNetFeatures(nn.Module):
    """The feature maps of some stages of a ResNet (no pooling, no ``fc``).

    The stem and the stages up to the last one asked for are shared with ``resnet`` (the same
    modules, under the same names), so the ``state_dict`` keys are torchvision's minus ``fc``
    and the unused later stages.

    Args:
        resnet (ResNet): the network to tap.
        return_layers (sequence of str): stages to return, in increasing depth, from
            ``"layer1"`` (stride 4) .. ``"layer4"`` (stride 32).

    Input: float images ``[B, 3, H, W]``.
    Output: list of ``len(return_layers)`` tensors ``[B, C_i, ceil(H / s_i), ceil(W / s_i)]``
    with ``s_i`` the stride of the stage (4, 8, 16 or 32).

    Attributes:
        feature_channels (list[int]): ``C_i`` of each returned map.
        return_layers (tuple[str, ...]): the stages returned.
    """

    def __init__(self, resnet: ResNet, return_layers: Sequence[str] = ("layer2", "layer3", "layer4")) -> None:
        super().__init__()
        if not isinstance(resnet, ResNet):
            raise TypeError(f"resnet must be a pixbox.models.backbones.ResNet, got {type(resnet).__name__}")
        if isinstance(return_layers, str):
            return_layers = (return_layers,)
        return_layers = tuple(return_layers)
        if not return_layers or any(r not in _STAGES for r in return_layers):
            raise ValueError(f"return_layers must be a non-empty subset of {list(_STAGES)}, got {list(return_layers)}")
        if list(return_layers) != sorted(set(return_layers), key=_STAGES.index):
            raise ValueError(f"return_layers must be distinct and in increasing depth, got {list(return_layers)}")
        self.return_layers = return_layers
        self.conv1, self.bn1, self.relu, self.maxpool = resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool
        last = _STAGES.index(return_layers[-1])
        self._stages = _STAGES[: last + 1]
        for name in self._stages:
            setattr(self, name, getattr(resnet, name))
        self.feature_channels = [resnet.stage_channels[r] for r in return_layers]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = []
        for name in self._stages:
            x = getattr(self, name)(x)
            if name in self.return_layers:
                out.append(x)
        return out


def resnet18(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-18: :class:`BasicBlock`, ``[2, 2, 2, 2]``; 11,689,512 parameters at 1000 classes.

    torchvision's ImageNet checkpoint: ``resnet18-f37072fd.pth``.
    """
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes, **kwargs)


def resnet34(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-34: :class:`BasicBlock`, ``[3, 4, 6, 3]``; 21,797,672 parameters at 1000 classes.

    torchvision's ImageNet checkpoint: ``resnet34-b627a593.pth``.
    """
    return ResNet(BasicBlock, [3, 4, 6, 3], num_classes, **kwargs)


def resnet50(num_classes: int = 1000, **kwargs) -> ResNet:
    """ResNet-50: :class:`Bottleneck`, ``[3, 4, 6, 3]``; 25,557,032 parameters at 1000 classes.

    torchvision's ImageNet checkpoints: ``resnet50-0676ba61.pth`` (V1), ``resnet50-11ad3fa6.pth`` (V2).
    """
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, **kwargs)
