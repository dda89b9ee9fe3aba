"""The interface shared by every pixbox classification backbone: :class:`Backbone`.

A backbone is a classifier split in two halves, so the same network serves classification,
fine-tuning and dense prediction::

    logits = model(x) == model.forward_head(model.forward_features(x))

- ``forward_features(x)``: the final feature map ``[B, num_features, h, w]``, before pooling;
- ``forward_head(features)``: pooling and the classifier, ``[B, num_classes]`` logits;
- ``features_at(x, layers)``: intermediate maps by name (``"layer2"``, ``"features.19"``,
  ``"blocks.4"``...), running the network only as deep as the deepest name asked for;
- ``feature_info``: the recommended taps, ``{"name", "channels", "reduction"}`` in increasing depth;
- ``get_classifier()`` / ``classifier_name`` / ``reset_classifier(n)``: the output layer, its
  ``state_dict`` prefix, and its replacement by a fresh one for a new class count;
- ``remove_head()``: drops pooling and classifier for dense prediction (FCN), so that every
  remaining parameter is used by ``forward_features``;
- ``pretrained_cfg``: the input the weights expect (``mean``, ``std``, ``input_size``,
  ``crop_pct``, ``interpolation``) and ``default_weights`` (the offline default, or ``None``).

The base class adds no parameters or buffers, so a subclass's ``state_dict`` is exactly its
architecture's (torchvision's names for ResNet and VGG).
"""

from __future__ import annotations

import difflib
from typing import Callable, Sequence

from torch import Tensor, nn

from pixbox._checks import check_floating

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "Backbone", "FrozenBatchNorm2d", "freeze_batchnorm"]

#: ImageNet channel statistics of [0, 1] RGB images (torchvision's pretrained weights).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_num_classes(num_classes) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return num_classes


def _pretrained_cfg(architecture: str | None, **overrides) -> dict:
    """The ``pretrained_cfg`` of a backbone: torchvision's ImageNet evaluation recipe unless overridden."""
    cfg = {
        "architecture": architecture,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "input_size": 224,
        "crop_pct": 0.875,
        "interpolation": "bilinear",
        "default_weights": None,
    }
    cfg.update(overrides)
    return cfg


class _RemovedHead(nn.Module):
    """Placeholder for a layer dropped by :meth:`Backbone.remove_head`: no parameters, raises when called."""

    def __init__(self, owner: str, name: str) -> None:
        super().__init__()
        self.owner, self.name = owner, name

    def forward(self, *args, **kwargs):
        raise RuntimeError(f"{self.owner}.{self.name} was removed by remove_head(): this backbone has no "
                           "classification head any more; use forward_features or features_at")

    def extra_repr(self) -> str:
        return "removed"


class Backbone(nn.Module):
    """Base class of the classification backbones (see the module docstring for the interface).

    A subclass sets, in ``__init__``, the attributes below and implements
    :meth:`forward_features`, :meth:`forward_head` and :meth:`_tap_steps`.

    Attributes:
        num_classes (int): outputs of the classifier.
        num_features (int): channels of :meth:`forward_features`' output.
        classifier_name (str): ``state_dict`` prefix of the output layer (``"fc"``,
            ``"classifier.6"``, ``"classifier"``).
        feature_info (list[dict]): recommended taps in increasing depth, each
            ``{"name": str, "channels": int, "reduction": int}``; every name is accepted by
            :meth:`features_at`.
        pretrained_cfg (dict): ``architecture``, ``mean`` and ``std`` (3-tuples for [0, 1] RGB
            input), ``input_size``, ``crop_pct``, ``interpolation`` and ``default_weights``.
    """

    num_classes: int
    num_features: int
    classifier_name: str
    #: Top-level modules that only :meth:`forward_head` uses, besides the one holding the
    #: classifier; :meth:`remove_head` drops those present.
    head_extras: tuple[str, ...] = ("avgpool", "dropout")
    feature_info: list[dict]
    pretrained_cfg: dict

    def forward_features(self, x: Tensor) -> Tensor:
        """The final feature map, before pooling.

        Args:
            x (Tensor[B, 3, H, W]): float images, normalized with ``pretrained_cfg``'s mean and std.

        Returns:
            Tensor[B, num_features, h, w]
        """
        raise NotImplementedError

    def forward_head(self, features: Tensor) -> Tensor:
        """Pooling and classifier.

        Args:
            features (Tensor[B, num_features, h, w]): the output of :meth:`forward_features`.

        Returns:
            Tensor[B, num_classes]: logits.
        """
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``[B, num_classes]`` of float images ``x`` ``[B, 3, H, W]``."""
        return self.forward_head(self.forward_features(x))

    def _tap_steps(self) -> list[tuple[str, Callable[[Tensor], Tensor]]]:
        """The network up to the final feature map as named steps, applied in order.

        The output of a step is the tap of that name; the last step's output is
        :meth:`forward_features`' output.
        """
        raise NotImplementedError

    @property
    def tap_names(self) -> list[str]:
        """Every name :meth:`features_at` accepts, in increasing depth."""
        return [name for name, _ in self._tap_steps()]

    def features_at(self, x: Tensor, layers: Sequence[str] | str) -> list[Tensor]:
        """Intermediate feature maps by name, computed in one pass that stops at the deepest one.

        Args:
            x (Tensor[B, 3, H, W]): float images.
            layers (sequence of str, or str): names from :attr:`tap_names` (e.g. the
                ``feature_info`` names), in any order; a single name is a one-element list.

        Returns:
            list[Tensor]: one ``[B, C, h, w]`` map per name, in the order of ``layers``.

        Raises:
            ValueError: empty ``layers`` or an unknown name (with the valid names and the closest one).
            TypeError: ``layers`` is not strings, or ``x`` not a float tensor.
        """
        check_floating(x, "x")
        if isinstance(layers, str):
            layers = [layers]
        if not isinstance(layers, Sequence) or not all(isinstance(n, str) for n in layers):
            raise TypeError(f"layers must be a sequence of str, got {layers!r}")
        if not layers:
            raise ValueError("layers must name at least one feature map, got an empty sequence")
        steps = self._tap_steps()
        depth = {name: i for i, (name, _) in enumerate(steps)}
        for name in layers:
            if name not in depth:
                hint = difflib.get_close_matches(name, list(depth), n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                raise ValueError(f"layers: unknown feature map {name!r} for {type(self).__name__}; "
                                 f"valid names are {list(depth)}{extra}")
        last = max(depth[name] for name in layers)
        wanted, found = set(layers), {}
        for name, step in steps[: last + 1]:
            x = step(x)
            if name in wanted:
                found[name] = x
        return [found[name] for name in layers]

    def get_classifier(self) -> nn.Module:
        """The output layer (``state_dict`` prefix :attr:`classifier_name`)."""
        if self.num_classes == 0:
            raise RuntimeError(f"{type(self).__name__} has no classifier: it was removed by remove_head()")
        return self.get_submodule(self.classifier_name)

    def _init_classifier(self, layer: nn.Linear) -> None:
        """Initialises a new output layer; the default keeps PyTorch's ``nn.Linear`` initialisation."""

    def reset_classifier(self, num_classes: int) -> None:
        """Replaces the output layer by a new, randomly initialised one with ``num_classes`` outputs.

        The new layer has the same input features, device and dtype as the old one; the rest of
        the network is untouched. :attr:`num_classes` is updated.

        Args:
            num_classes (int): outputs of the new layer, >= 1.
        """
        _check_num_classes(num_classes)
        old = self.get_classifier()
        new = nn.Linear(old.in_features, num_classes, bias=old.bias is not None,
                        device=old.weight.device, dtype=old.weight.dtype)
        self._init_classifier(new)
        parent_name, _, child = self.classifier_name.rpartition(".")
        setattr(self.get_submodule(parent_name) if parent_name else self, child, new)
        self.num_classes = num_classes

    def remove_head(self) -> None:
        """Removes pooling and classifier, keeping the network up to :meth:`forward_features`.

        For dense prediction (e.g. :class:`pixbox.models.fcn.FCN`): the top-level module holding
        the classifier (``fc`` for ResNet, ``classifier`` for EfficientNet-Lite, the whole
        three-layer ``classifier`` of VGG) and those of :attr:`head_extras` (``avgpool``,
        ``dropout``) are replaced by parameter-free placeholders that raise when called.
        Afterwards:

        - every parameter left is used by :meth:`forward_features` (as distributed training
          requires) and the ``state_dict`` holds no head keys;
        - :meth:`forward`, :meth:`forward_head`, :meth:`get_classifier` and
          :meth:`reset_classifier` raise ``RuntimeError``; :attr:`num_classes` is 0.

        Load pretrained weights before calling it: a checkpoint's head keys no longer fit.
        Calling it again does nothing.
        """
        names = [self.classifier_name.split(".")[0]] + [n for n in self.head_extras if n in self._modules]
        for name in names:
            if not isinstance(self._modules.get(name), _RemovedHead):
                setattr(self, name, _RemovedHead(type(self).__name__, name))
        self.num_classes = 0

    def _check_features(self, features: Tensor) -> Tensor:
        check_floating(features, "features")
        if features.dim() != 4 or features.shape[1] != self.num_features:
            raise ValueError(f"features must have shape [B, {self.num_features}, h, w], got {tuple(features.shape)}")
        return features


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """A BatchNorm2d that always normalizes with its running statistics and never updates them.

    It stays in eval mode whatever ``model.train()`` says; its affine ``weight`` and ``bias`` still train (unless
    ``requires_grad`` is off). Its ``state_dict`` is a plain ``nn.BatchNorm2d``'s: checkpoints load into either.
    """

    def train(self, mode: bool = True) -> "FrozenBatchNorm2d":
        return super().train(False)


def freeze_batchnorm(module: nn.Module) -> int:
    """Turns every ``nn.BatchNorm2d`` of ``module`` into a :class:`FrozenBatchNorm2d`, in place.

    The modules keep their parameters and buffers (the class of each object changes), so
    references to them, optimizers and ``state_dict`` keys stay valid.

    Args:
        module (nn.Module): the model or sub-module.

    Returns:
        int: how many BatchNorm layers were frozen.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be an nn.Module, got {type(module).__name__}")
    count = 0
    for m in module.modules():
        if type(m) is nn.BatchNorm2d:
            m.__class__ = FrozenBatchNorm2d
            m.eval()
            count += 1
        elif isinstance(m, FrozenBatchNorm2d):
            count += 1
    return count
