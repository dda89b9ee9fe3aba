"""VGG-11/16/19 (Simonyan and Zisserman, 2015) with torchvision's ``state_dict`` (no batch norm).

The network is torchvision's, module for module::

    features     Sequential: 3x3 conv (padding 1) + ReLU per channel entry, 2x2 max-pool per "M"
    avgpool      AdaptiveAvgPool2d((7, 7))
    classifier   Sequential: 0 Linear(512*7*7, 4096), 1 ReLU, 2 Dropout,
                             3 Linear(4096, 4096),    4 ReLU, 5 Dropout, 6 Linear(4096, num_classes)

so the ``state_dict`` holds ``features.{i}.weight/bias`` at the convolutions' indices and
``classifier.{0,3,6}.weight/bias``, and a torchvision checkpoint (``vgg16-397923af.pth``...)
loads with ``strict=True``.

Taps (:meth:`VGG.features_at`): any ``"features.<i>"``, the output of that layer of
``features``; style transfer uses VGG-19's ``features.0, .5, .10, .19, .28`` (style) and
``features.25`` (content). :attr:`VGG.feature_info` lists the five max-pool outputs
(reductions 2 .. 32). The ReLUs of ``features`` are not in place (unlike torchvision's), so a
tapped convolution output keeps its negative values.

Example:
    >>> net = vgg11()
    >>> [f.shape[1:] for f in net.features_at(torch.zeros(1, 3, 64, 64), ["features.2", "features.20"])]
    [torch.Size([64, 32, 32]), torch.Size([512, 2, 2])]
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor, nn

from pixbox._checks import check_number
from pixbox.models.backbones._base import Backbone, _check_num_classes, _pretrained_cfg

__all__ = ["VGG", "VGG_CONFIGS", "vgg11", "vgg16", "vgg19"]

#: ``features`` of each VGG: output channels of a 3x3 convolution (+ ReLU), or "M" for a 2x2 max-pool.
VGG_CONFIGS: dict[str, tuple[int | str, ...]] = {
    "vgg11": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "vgg16": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "vgg19": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"),
}


class VGG(Backbone):
    """The VGG classifier without batch norm (torchvision's architecture and parameter names).

    Args:
        config (sequence of int or "M"): the ``features`` layers, e.g. ``VGG_CONFIGS["vgg16"]``;
            an int is a 3x3 convolution with that many output channels followed by a ReLU, "M"
            a 2x2 stride-2 max-pool.
        num_classes (int): outputs of ``classifier.6``, >= 1.
        dropout (float): dropout probability of ``classifier.2`` and ``classifier.5``, in [0, 1].

    Input: float images ``[B, 3, H, W]`` (ImageNet-normalized for pretrained weights).
    Output: logits ``[B, num_classes]``.

    Attributes:
        num_features (int): channels of the last convolution (512).
        classifier_name (str): ``"classifier.6"``.
        feature_info (list[dict]): the max-pool outputs (``features.4`` ... for VGG-16), reductions 2 .. 32.
        pretrained_cfg (dict): ImageNet mean/std, 224 px, crop 0.875, bilinear; no default weights.
    """

    classifier_name = "classifier.6"

    def __init__(self, config: Sequence[int | str], num_classes: int = 1000, *, dropout: float = 0.5) -> None:
        super().__init__()
        config = tuple(config)
        if not any(isinstance(c, int) for c in config) or any(
            not (c == "M" or (isinstance(c, int) and not isinstance(c, bool) and c >= 1)) for c in config
        ):
            raise ValueError(f"config must hold positive ints (conv channels) and 'M' (max-pool), "
                             f"with at least one int, got {list(config)}")
        self.num_classes = _check_num_classes(num_classes)
        check_number(dropout, "dropout", low=0, high=1)

        layers: list[nn.Module] = []
        self.feature_info = []
        channels, reduction = 3, 1
        for c in config:
            if c == "M":
                reduction *= 2
                self.feature_info.append({"name": f"features.{len(layers)}", "channels": channels, "reduction": reduction})
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, c, kernel_size=3, padding=1), nn.ReLU()]
                channels = c
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        self.num_features = channels
        architecture = next((name for name, cfg in VGG_CONFIGS.items() if cfg == config), None)
        self.pretrained_cfg = _pretrained_cfg(architecture)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                self._init_classifier(m)

    def _init_classifier(self, layer: nn.Linear) -> None:
        nn.init.normal_(layer.weight, 0.0, 0.01)
        nn.init.zeros_(layer.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """The last max-pool's output ``[B, 512, H // 32, W // 32]`` of images ``[B, 3, H, W]``."""
        return self.features(x)

    def forward_head(self, features: Tensor) -> Tensor:
        """Adaptive 7x7 average pooling and the three-layer classifier: logits ``[B, num_classes]``."""
        return self.classifier(torch.flatten(self.avgpool(self._check_features(features)), 1))

    def _tap_steps(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        return [(f"features.{i}", layer) for i, layer in enumerate(self.features)]


def vgg11(num_classes: int = 1000, **kwargs) -> VGG:
    """VGG-11 (configuration A): 8 convolutions; 132,863,336 parameters at 1000 classes.

    torchvision's ImageNet checkpoint: ``vgg11-8a719046.pth``.
    """
    return VGG(VGG_CONFIGS["vgg11"], num_classes, **kwargs)


def vgg16(num_classes: int = 1000, **kwargs) -> VGG:
    """VGG-16 (configuration D): 13 convolutions; 138,357,544 parameters at 1000 classes.

    torchvision's ImageNet checkpoint: ``vgg16-397923af.pth``.
    """
    return VGG(VGG_CONFIGS["vgg16"], num_classes, **kwargs)


def vgg19(num_classes: int = 1000, **kwargs) -> VGG:
    """VGG-19 (configuration E): 16 convolutions; 143,667,240 parameters at 1000 classes.

    torchvision's ImageNet checkpoint: ``vgg19-dcbb9e9d.pth``.
    """
    return VGG(VGG_CONFIGS["vgg19"], num_classes, **kwargs)
