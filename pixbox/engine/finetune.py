"""Fine-tuning a pretrained classifier on a new task (D2L section 14.2).

The recipe: take a model pretrained on a large dataset (ImageNet), keep every layer but the output layer, put a
new randomly initialised output layer sized to the target classes, and train on the small target dataset with a
larger learning rate for the new layer than for the copied ones. :func:`finetune` does the model side of that in
place and returns the optimizer's parameter groups::

    model = efficientnet_lite0()
    load_pretrained(model, "default")                     # ImageNet weights, offline
    groups = finetune(model, num_classes=2, lr=0.01, head_lr_mult=10)
    optimizer = torch.optim.SGD(groups, lr=0.01, momentum=0.9)

What ``freeze`` does:

- ``"none"``: everything trains (the book's recipe);
- ``"backbone"``: only the new output layer trains; every other parameter gets ``requires_grad=False`` and every
  BatchNorm keeps its pretrained statistics, so the copied layers stay exactly as loaded (a linear probe);
- ``"bn"``: everything trains, but each BatchNorm normalizes with its pretrained running statistics and never
  updates them (:class:`FrozenBatchNorm2d`). Use it when batches are too small (a few images) for batch
  statistics to be meaningful.
"""

from __future__ import annotations

from torch import nn

from pixbox._checks import check_choice, check_number
from pixbox.engine.optim import param_groups
from pixbox.models.backbones._base import FrozenBatchNorm2d, freeze_batchnorm

#: What fine-tuning freezes (see the module docstring).
FREEZE_MODES: tuple[str, ...] = ("none", "backbone", "bn")

__all__ = ["FREEZE_MODES", "FrozenBatchNorm2d", "finetune", "freeze_batchnorm", "head_parameter_names"]



def head_parameter_names(model: nn.Module) -> list[str]:
    """The names of the output layer's parameters (those under ``model.classifier_name``)."""
    prefix = getattr(model, "classifier_name", None)
    if not isinstance(prefix, str):
        raise TypeError(f"model must be a pixbox backbone with a classifier_name (the state-dict prefix of its "
                        f"output layer), got {type(model).__name__}")
    names = [n for n, _ in model.named_parameters() if n.startswith(prefix + ".")]
    if not names:
        raise ValueError(f"model has no parameters under its classifier_name {prefix!r}")
    return names


def finetune(model: nn.Module, num_classes: int, *, lr: float = 0.01, head_lr_mult: float = 10.0,
             freeze: str = "none", weight_decay: float = 0.0) -> list[dict]:
    """Gives a (pretrained) backbone a new output layer and returns its optimizer parameter groups.

    In place: ``model.reset_classifier(num_classes)`` replaces the output layer by a new,
    randomly initialised one; then ``freeze`` is applied (see the module docstring).

    Args:
        model (nn.Module): a :data:`pixbox.models.backbones.BACKBONES` model (it has
            ``reset_classifier`` and ``classifier_name``), usually with pretrained weights.
        num_classes (int): classes of the target task, >= 1.
        lr (float): learning rate of the copied layers, > 0.
        head_lr_mult (float): the new output layer learns at ``lr * head_lr_mult``, > 0.
        freeze (str): ``"none"``, ``"backbone"`` or ``"bn"``.
        weight_decay (float): of weight matrices and kernels (not biases and normalization scales), >= 0.

    Returns:
        list[dict]: parameter groups for ``torch.optim``: the copied layers at ``lr`` (absent when frozen) and the
        head at ``lr * head_lr_mult``, each split into a decayed and an undecayed group, each with ``"name"``
        (``"backbone"`` or ``"head"``) and ``"lr"``. Empty groups are left out.

    Example:
        >>> from pixbox.models.backbones import resnet18
        >>> groups = finetune(resnet18(), 2, lr=0.01, head_lr_mult=10)
        >>> [(g["name"], g["lr"]) for g in groups]
        [('backbone', 0.01), ('backbone', 0.01), ('head', 0.1), ('head', 0.1)]
    """
    if not isinstance(model, nn.Module) or not callable(getattr(model, "reset_classifier", None)):
        raise TypeError(f"model must be a pixbox backbone (an nn.Module with reset_classifier), "
                        f"got {type(model).__name__}")
    lr = float(check_number(lr, "lr", low=0, low_open=True))
    head_lr_mult = float(check_number(head_lr_mult, "head_lr_mult", low=0, low_open=True))
    weight_decay = float(check_number(weight_decay, "weight_decay", low=0))
    check_choice(freeze, "freeze", FREEZE_MODES)
    model.reset_classifier(num_classes)
    head_names = set(head_parameter_names(model))
    head = [p for n, p in model.named_parameters() if n in head_names]
    body = [p for n, p in model.named_parameters() if n not in head_names]
    if freeze == "backbone":
        for p in body:
            p.requires_grad_(False)
        freeze_batchnorm(model)
    elif freeze == "bn":
        freeze_batchnorm(model)
    groups = [dict(g, name="backbone") for g in param_groups(body, weight_decay, lr=lr)]
    groups += [dict(g, name="head") for g in param_groups(head, weight_decay, lr=lr * head_lr_mult)]
    return [g for g in groups if g["params"]]
