"""D2L's fully convolutional network (FCN, Long et al. 2015; D2L section 14.11).

An :class:`FCN` is a classification backbone without its pooling and classifier, a 1x1
convolution mapping the stride-32 feature map to one channel per class, and a transposed
convolution upsampling those class scores 32 times back to the input size, initialised as
bilinear interpolation::

    images [B, 3, H, W] in [0, 1]
      -> normalize (the backbone's pretrained mean/std), pad bottom/right to a multiple of 32
      -> backbone.forward_features     [B, C_feat, H' / 32, W' / 32]   (H', W': padded size)
      -> classifier (1x1 conv)         [B, num_classes, H' / 32, W' / 32]
      -> upsample (ConvTranspose2d, kernel 64, stride 32, padding 16)  [B, num_classes, H', W']
      -> crop                          [B, num_classes, H, W]

so any input size works, down to 1 x 1. The training loss is the per-pixel cross-entropy,
``F.cross_entropy(logits, masks, ignore_index=255)`` (VOC marks object borders 255).

That is the book's network, FCN-32s in Long et al.'s terms. Its predictions are coarse: one
score per 32 x 32 pixels, interpolated, so thin parts (a starfish's arms) are lost.
``output_stride=16`` or ``8`` gives the paper's FCN-16s and FCN-8s: the scores are upsampled
2x (transposed convolution, bilinear initialised) and added to 1x1 class scores of the stride-16
(and then stride-8) backbone features, and the final transposed convolution upsamples 16x or 8x.
The skip score layers start at zero, so training starts from the stride-32 scores upsampled
bilinearly (in 2x, 2x and 8x steps) and learns what the finer features add.

:data:`SEGMENTATION_MODELS` maps a name to a builder ``builder(num_classes, **kwargs)``.

Example:
    >>> net = build_fcn("resnet18", num_classes=21)
    >>> net(torch.rand(1, 3, 320, 480)).shape
    torch.Size([1, 21, 320, 480])
    >>> net.predict(torch.rand(2, 3, 33, 45)).shape
    torch.Size([2, 33, 45])
"""

from __future__ import annotations

import contextlib
import os
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_choice, check_floating
from pixbox.models.backbones import BACKBONES, Backbone, _check_num_classes, load_pretrained
from pixbox.ops.conv import bilinear_kernel, upsample_params

__all__ = ["FCN", "SEGMENTATION_MODELS", "build_fcn"]


def _mean_std(backbone: Backbone) -> tuple[tuple[float, ...], tuple[float, ...]]:
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    mean, std = tuple(float(v) for v in cfg.get("mean", (0.0,) * 3)), tuple(float(v) for v in cfg.get("std", (1.0,) * 3))
    if len(mean) != 3 or len(std) != 3 or any(not s > 0 for s in std):
        raise ValueError(f"backbone.pretrained_cfg must have 3 means and 3 positive stds, got mean={mean}, std={std}")
    return mean, std


def _head_precision(features: Tensor):
    """Turns autocast off (for the FCN head) when it is on for the features' device.

    The head (1x1 class scores, skip fusion, transposed-convolution upsampling) is the part of
    an FCN that a classifier on the same backbone does not have, so it is the suspect of a
    reported failure: on a CPU with AMX the README's recipe reached mIoU 0.2 under bfloat16
    autocast against 0.79 in float32, while classification trained equally well either way
    (on an AVX512-BF16 CPU without AMX both precisions train alike). oneDNN picks its bfloat16 transposed-convolution kernels per CPU (PyTorch's own
    bfloat16 deconvolution tests fail on Sapphire Rapids, pytorch/pytorch#148973), so the
    head runs in float32 everywhere; it has ``num_classes`` channels and costs little. The
    backbone, where the time goes, stays under autocast.
    """
    kind = features.device.type
    if torch.is_autocast_enabled(kind):
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


class FCN(nn.Module):
    """A fully convolutional network: backbone features, 1x1 class scores, 32x transposed-conv upsampling.

    Args:
        backbone (Backbone): a pixbox classification backbone with a stride-32 final map
            (ResNet, VGG, EfficientNet-Lite). Its pooling and classifier are removed in place
            (:meth:`Backbone.remove_head`), so load pretrained weights into it before.
        num_classes (int): output channels (segmentation classes, background included), >= 1.
        freeze_upsample (bool): keep the upsampling layers at bilinear interpolation
            (``requires_grad=False`` on their weights and biases).
        output_stride (int): 32 (the book's FCN-32s), 16 or 8 (FCN-16s, FCN-8s: skip
            connections from the backbone's stride-16 and stride-8 features).

    Input of :meth:`forward`: float RGB images ``[B, 3, H, W]`` with values in [0, 1], any
    ``H, W >= 1``. The model normalizes them with the backbone's ``pretrained_cfg`` mean and std
    (buffers ``image_mean``, ``image_std``, ``[1, 3, 1, 1]``; non-persistent, as in
    :class:`pixbox.models.ssd.SSD`: they follow ``.to()`` and are not in the state dict), then
    pads the bottom and right with zeros (the normalized mean colour) to a multiple of 32.

    Attributes:
        backbone (Backbone): the backbone without its head.
        classifier (nn.Conv2d): 1x1, ``backbone.num_features -> num_classes``.
        upsample (nn.ConvTranspose2d): ``num_classes -> num_classes``, kernel 64, stride 32,
            padding 16 (kernel ``2 s``, stride ``s`` for ``output_stride`` ``s``); weight
            initialised with D2L's ``bilinear_kernel`` (exactly bilinear interpolation away from
            the borders), bias zero.
        skip_scores (nn.ModuleList): the 1x1 class-score convolutions of the stride-16 (and 8)
            features, zero-initialised; empty for FCN-32s.
        skip_upsamples (nn.ModuleList): 2x bilinear-initialised transposed convolutions, one per
            skip.
        skip_layers (list[str]): the backbone taps of the skips (``features_at`` names).
        num_classes (int): output channels.
        backbone_name (str or None): the backbone's architecture (``"resnet18"``...), None if unknown.
        stride (int): 32, the backbone's reduction; inputs are padded to a multiple of it.
    """

    stride = 32

    def __init__(self, backbone: Backbone, num_classes: int, *, freeze_upsample: bool = False,
                 output_stride: int = 32) -> None:
        super().__init__()
        if not isinstance(backbone, Backbone):
            raise TypeError(f"backbone must be a pixbox Backbone (ResNet, VGG, EfficientNetLite), "
                            f"got {type(backbone).__name__}")
        if not isinstance(freeze_upsample, bool):
            raise TypeError(f"freeze_upsample must be a bool, got {type(freeze_upsample).__name__}")
        self.num_classes = _check_num_classes(num_classes)
        reduction = backbone.feature_info[-1]["reduction"]
        if reduction != self.stride:
            raise ValueError(f"backbone must reduce the input 32 times (its final map), got reduction {reduction}")
        if output_stride not in (8, 16, 32) or isinstance(output_stride, bool):
            raise ValueError(f"output_stride must be 32 (FCN-32s), 16 or 8, got {output_stride!r}")
        mean, std = _mean_std(backbone)
        self.backbone_name = backbone.pretrained_cfg.get("architecture")
        self.output_stride = output_stride
        # the deepest tap of each skip's reduction (16, then 8), and the final map
        taps = {info["reduction"]: info for info in backbone.feature_info[:-1]}
        wanted = [r for r in (16, 8) if r >= output_stride]
        missing = [r for r in wanted if r not in taps]
        if missing:
            raise ValueError(f"output_stride={output_stride} needs backbone features at reductions {missing}, "
                             f"which its feature_info lacks")
        self.skip_layers = [taps[r]["name"] for r in wanted]
        self._final_layer = backbone.feature_info[-1]["name"]

        backbone.remove_head()
        self.backbone = backbone
        self.classifier = nn.Conv2d(backbone.num_features, num_classes, kernel_size=1)
        self.skip_scores = nn.ModuleList(nn.Conv2d(taps[r]["channels"], num_classes, kernel_size=1) for r in wanted)
        self.skip_upsamples = nn.ModuleList(_bilinear_upsampling(num_classes, 2) for _ in wanted)
        for conv in self.skip_scores:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.upsample = _bilinear_upsampling(num_classes, output_stride)
        if freeze_upsample:
            self.upsample.requires_grad_(False)
            self.skip_upsamples.requires_grad_(False)
        self.register_buffer("image_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def freeze_upsample(self) -> bool:
        """Whether the upsampling layer is frozen (no parameter of it requires a gradient)."""
        return not any(p.requires_grad for p in self.upsample.parameters())

    def forward(self, images: Tensor) -> Tensor:
        """Per-pixel class logits.

        Args:
            images (Tensor[B, 3, H, W]): float, RGB, values in [0, 1]; ``H, W >= 1``.

        Returns:
            Tensor[B, num_classes, H, W]: logits, the dtype and device of the model's output
            (the input's when the model has the input's dtype and device).
        """
        check_floating(images, "images")
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[2] < 1 or images.shape[3] < 1:
            raise ValueError(f"images must have shape [B, 3, H, W] with H, W >= 1, got {tuple(images.shape)}")
        h, w = images.shape[-2:]
        x = (images - self.image_mean.to(images.dtype)) / self.image_std.to(images.dtype)
        pad_h, pad_w = -h % self.stride, -w % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))  # zeros: the mean colour after normalization
        if self.skip_layers:
            *skips, final = self.backbone.features_at(x, [*self.skip_layers, self._final_layer])
        else:
            skips, final = [], self.backbone.forward_features(x)
        # The class scores and their upsampling run outside autocast, in the features' full
        # precision: under bfloat16 autocast they are where FCN training loses accuracy (see
        # _head_precision), and they cost little (num_classes channels).
        with _head_precision(final):
            full = torch.promote_types(final.dtype, torch.float32) if final.is_floating_point() else final.dtype
            scores = self.classifier(final.to(full))  # [B, K, H'/32, W'/32]
            for feature, score, up in zip(skips, self.skip_scores, self.skip_upsamples):
                scores = up(scores) + score(feature.to(full))  # 2x finer each time
            logits = self.upsample(scores)  # [B, K, H', W']
        if logits.shape[-2:] != x.shape[-2:]:
            raise RuntimeError(f"the upsampled logits are {tuple(logits.shape[-2:])} for a padded input of "
                               f"{tuple(x.shape[-2:])}: the backbone's final map is not the input / 32")
        return logits[..., :h, :w]

    @torch.no_grad()
    def predict(self, images: Tensor) -> Tensor:
        """Per-pixel labels: the argmax of the logits, in eval mode without gradients.

        The model is put in eval mode for the call and given back its training mode afterwards.

        Args:
            images (Tensor[B, 3, H, W]): float, RGB, values in [0, 1].

        Returns:
            Tensor[B, H, W]: int64 labels in ``[0, num_classes)``, on the input's device.
        """
        was_training = self.training
        self.eval()
        try:
            logits = self(images)
        finally:
            self.train(was_training)
        return logits.argmax(dim=1)

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, backbone_name={self.backbone_name!r}, stride={self.stride}, "
                f"output_stride={self.output_stride}")


def _bilinear_upsampling(channels: int, scale: int) -> nn.ConvTranspose2d:
    """A transposed convolution multiplying the size by ``scale``, initialised as bilinear interpolation."""
    kernel, stride, padding = upsample_params(scale)
    layer = nn.ConvTranspose2d(channels, channels, kernel, stride=stride, padding=padding)
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(channels, channels, kernel))
        layer.bias.zero_()
    return layer


def build_fcn(backbone: str = "resnet18", num_classes: int = 21, *, pretrained: str | os.PathLike | None = None,
              freeze_upsample: bool = False, output_stride: int = 32) -> FCN:
    """An :class:`FCN` on a backbone of :data:`pixbox.models.backbones.BACKBONES`.

    Args:
        backbone (str): ``"resnet18"`` (D2L's choice), ``"resnet34"``, ``"resnet50"``,
            ``"efficientnet_lite0"`` (``_lite1``, ``_lite2``), ``"vgg11"``, ``"vgg16"`` or ``"vgg19"``.
        num_classes (int): segmentation classes, background included (21 for Pascal VOC), >= 1.
        pretrained (str or PathLike, optional): ``None`` or ``"none"``: random initialisation;
            ``"default"``: the backbone's offline ImageNet weights (EfficientNet-Lite0/1/2 only);
            a path: a local checkpoint of the full classifier (e.g. torchvision's
            ``resnet18-f37072fd.pth``), loaded with
            :func:`~pixbox.models.backbones.load_pretrained` before the head is removed.
        freeze_upsample (bool): keep the upsampling layers at bilinear interpolation.
        output_stride (int): 32 (FCN-32s, the book's), 16 (FCN-16s) or 8 (FCN-8s).

    Returns:
        FCN: with ``backbone_name`` set to ``backbone``.

    Raises:
        ValueError: unknown ``backbone`` (with the closest name); a checkpoint that does not fit;
            ``"default"`` for a backbone without offline weights.
        FileNotFoundError: ``pretrained`` names a missing file.
    """
    check_choice(backbone, "backbone", BACKBONES)
    if pretrained is not None and not isinstance(pretrained, (str, os.PathLike)):
        raise TypeError(f"pretrained must be None, 'none', 'default' or a path, got {type(pretrained).__name__}")
    net = BACKBONES[backbone]()  # 1000 classes: an ImageNet checkpoint fits it exactly
    if pretrained is not None and not (isinstance(pretrained, str) and pretrained == "none"):
        load_pretrained(net, pretrained)
    model = FCN(net, num_classes, freeze_upsample=freeze_upsample, output_stride=output_stride)
    model.backbone_name = backbone
    return model


#: Segmentation model builders by name: ``SEGMENTATION_MODELS[name](num_classes, **kwargs)``
#: (``pretrained``, ``freeze_upsample``; see :func:`build_fcn`).
SEGMENTATION_MODELS: dict[str, Callable[..., FCN]] = {
    "fcn_resnet18": partial(build_fcn, "resnet18"),
    "fcn_resnet34": partial(build_fcn, "resnet34"),
    "fcn_resnet50": partial(build_fcn, "resnet50"),
    "fcn_efficientnet_lite0": partial(build_fcn, "efficientnet_lite0"),
    "fcn_efficientnet_lite1": partial(build_fcn, "efficientnet_lite1"),
    "fcn_efficientnet_lite2": partial(build_fcn, "efficientnet_lite2"),
    "fcn8s_resnet18": partial(build_fcn, "resnet18", output_stride=8),
    "fcn8s_efficientnet_lite0": partial(build_fcn, "efficientnet_lite0", output_stride=8),
    "fcn8s_efficientnet_lite1": partial(build_fcn, "efficientnet_lite1", output_stride=8),
    "fcn8s_efficientnet_lite2": partial(build_fcn, "efficientnet_lite2", output_stride=8),
}
