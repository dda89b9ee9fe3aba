"""pixbox.models: classification backbones and detection models.

- :mod:`pixbox.models.backbones`: ResNet-18/34/50 and VGG-11/16/19 with torchvision's
  ``state_dict`` names, EfficientNet-Lite0/1/2 with offline ImageNet weights, one interface for all
  (``forward_features``, ``features_at``, ``reset_classifier``), :func:`load_pretrained`, and
  :class:`~pixbox.models.backbones.ResNetFeatures` to tap a ResNet's stages.
- :mod:`pixbox.models.fcn`: :class:`~pixbox.models.fcn.FCN`, D2L's fully convolutional network
  (FCN-32s) and its FCN-8s variant, on any backbone; :data:`SEGMENTATION_MODELS`.
- :mod:`pixbox.models.rcnn`: the R-CNN family: :class:`~pixbox.models.rcnn.FasterRCNN`
  (backbone, region proposal network :mod:`~pixbox.models.rcnn.rpn`, RoI head
  :mod:`~pixbox.models.rcnn.roi_heads`) and :class:`~pixbox.models.rcnn.FastRCNN`, the same
  backbone and RoI head on external proposals (selective search, :mod:`pixbox.data.proposals`).
- :mod:`pixbox.models.ssd`: :class:`~pixbox.models.ssd.SSD`, D2L's :func:`~pixbox.models.ssd.tiny_ssd`
  and :func:`~pixbox.models.ssd.build_ssd` on a ResNet.

:data:`MODELS` maps a name to a builder taking ``num_classes`` (and keyword options);
:func:`build_model` looks a name up with a did-you-mean error. The builders that take a
backbone name are :func:`build_ssd` and :func:`build_fcn`; ``pixbox.models.ssd`` and
``pixbox.models.fcn`` are always the modules.

Example:
    >>> net = build_model("tiny_ssd", num_classes=1)
    >>> net.num_anchors_per_cell
    [4, 4, 4, 4, 4]
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from torch import nn

from pixbox._checks import check_choice
from pixbox.models.backbones import (
    BACKBONES,
    VGG,
    Backbone,
    EfficientNetLite,
    LoadReport,
    ResNet,
    ResNetFeatures,
    efficientnet_lite0,
    efficientnet_lite1,
    efficientnet_lite2,
    load_pretrained,
    resnet18,
    resnet34,
    resnet50,
    vgg11,
    vgg16,
    vgg19,
)
from pixbox.models.fcn import FCN, SEGMENTATION_MODELS, build_fcn
from pixbox.models.rcnn import FastRCNN, FasterRCNN
from pixbox.models.rcnn.fast_rcnn import fast_rcnn
from pixbox.models.rcnn.faster_rcnn import faster_rcnn
from pixbox.models.ssd import SSD, build_ssd, tiny_ssd

__all__ = [
    "BACKBONES",
    "Backbone",
    "EfficientNetLite",
    "FCN",
    "FastRCNN",
    "FasterRCNN",
    "LoadReport",
    "MODELS",
    "ResNet",
    "ResNetFeatures",
    "SEGMENTATION_MODELS",
    "SSD",
    "VGG",
    "build_fcn",
    "build_model",
    "build_ssd",
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    "fast_rcnn",
    "faster_rcnn",
    "load_pretrained",
    "needs_proposals",
    "resnet18",
    "resnet34",
    "resnet50",
    "tiny_ssd",
    "vgg11",
    "vgg16",
    "vgg19",
]

#: Detection model builders by name: ``MODELS[name](num_classes, **kwargs)``. The
#: ``fast_rcnn_*`` models take region proposals as well (``needs_proposals``).
MODELS: dict[str, Callable[..., nn.Module]] = {
    "tiny_ssd": tiny_ssd,
    "ssd_resnet18": partial(build_ssd, "resnet18"),
    "ssd_resnet34": partial(build_ssd, "resnet34"),
    "ssd_resnet50": partial(build_ssd, "resnet50"),
    "ssd_efficientnet_lite0": partial(build_ssd, "efficientnet_lite0"),
    "ssd_efficientnet_lite1": partial(build_ssd, "efficientnet_lite1"),
    "ssd_efficientnet_lite2": partial(build_ssd, "efficientnet_lite2"),
    "faster_rcnn_resnet18": partial(faster_rcnn, "resnet18"),
    "faster_rcnn_resnet34": partial(faster_rcnn, "resnet34"),
    "faster_rcnn_resnet50": partial(faster_rcnn, "resnet50"),
    "faster_rcnn_efficientnet_lite0": partial(faster_rcnn, "efficientnet_lite0"),
    "faster_rcnn_efficientnet_lite1": partial(faster_rcnn, "efficientnet_lite1"),
    "faster_rcnn_efficientnet_lite2": partial(faster_rcnn, "efficientnet_lite2"),
    "fast_rcnn_resnet18": partial(fast_rcnn, "resnet18"),
    "fast_rcnn_resnet34": partial(fast_rcnn, "resnet34"),
    "fast_rcnn_resnet50": partial(fast_rcnn, "resnet50"),
    "fast_rcnn_efficientnet_lite0": partial(fast_rcnn, "efficientnet_lite0"),
    "fast_rcnn_efficientnet_lite1": partial(fast_rcnn, "efficientnet_lite1"),
    "fast_rcnn_efficientnet_lite2": partial(fast_rcnn, "efficientnet_lite2"),
}


def needs_proposals(model: str | nn.Module) -> bool:
    """Whether a detector (a :data:`MODELS` name or a model) takes region proposals (Fast R-CNN).

    Args:
        model (str or nn.Module): a key of :data:`MODELS`, or a built model (its
            ``needs_proposals`` attribute).

    Returns:
        bool: True for the ``fast_rcnn_*`` models.
    """
    if isinstance(model, nn.Module):
        return bool(getattr(model, "needs_proposals", False))
    check_choice(model, "name", MODELS)
    builder = MODELS[model]
    return getattr(builder, "func", builder) is fast_rcnn


def build_model(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Builds the model ``name`` of :data:`MODELS`.

    Args:
        name (str): a key of :data:`MODELS`, e.g. ``"tiny_ssd"`` or ``"ssd_resnet18"``.
        num_classes (int): object classes (background excluded), >= 1.
        **kwargs: passed to the builder, e.g. ``image_size=256``,
            ``pretrained_backbone="resnet18.pth"`` (ResNet SSDs), ``score_threshold=0.05``.

    Returns:
        nn.Module: the model (an :class:`SSD` for every model listed today).

    Raises:
        ValueError: unknown ``name`` (with the closest valid name).
    """
    check_choice(name, "name", MODELS)
    return MODELS[name](num_classes, **kwargs)
