"""Optimizers and learning-rate schedules: parameter groups (:func:`param_groups`), the optimizer
(:func:`build_optimizer`) and the per-iteration schedule (:func:`lr_schedule`, :func:`build_scheduler`) of a config."""

from __future__ import annotations

import difflib
import math
from typing import Callable

import torch
from torch import nn

__all__ = ["build_optimizer", "build_scheduler", "lr_schedule", "param_groups"]


def lr_schedule(*, total_steps: int, warmup_steps: int = 0, kind: str = "cosine", final_ratio: float = 0.01,
                step_size: int | None = None, gamma: float = 0.1) -> Callable[[int], float]:
    """The learning-rate factor of each iteration: linear warm-up, then cosine or step decay.

    ``factor(i) = warmup(i) * decay(i)`` where ``warmup(i) = min(1, (i + 1) / warmup_steps)`` and

    - ``"cosine"``: ``decay(i) = r + (1 - r) * (1 + cos(pi * p)) / 2`` with ``r = final_ratio`` and
      ``p = (i - warmup_steps) / (total_steps - warmup_steps)`` clamped to [0, 1] (the decay starts after warm-up);
    - ``"step"``: ``decay(i) = gamma ** (i // step_size)``.

    Use it with :class:`torch.optim.lr_scheduler.LambdaLR` stepped once per iteration.

    Args:
        total_steps (int): iterations of the whole run, >= 1.
        warmup_steps (int): warm-up iterations, >= 0.
        kind (str): ``"cosine"`` or ``"step"``.
        final_ratio (float): cosine: the last factor, in [0, 1].
        step_size (int, optional): step: iterations between decays, >= 1 (required).
        gamma (float): step: the decay factor, in (0, 1].

    Returns:
        callable: ``factor(i: int) -> float``.
    """
    if kind not in ("cosine", "step"):
        hint = difflib.get_close_matches(str(kind), ["cosine", "step"], n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"kind must be 'cosine' or 'step', got {kind!r}{extra}")
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(f"total_steps must be >= 1 and warmup_steps >= 0, got {total_steps} and {warmup_steps}")
    if kind == "step" and (step_size is None or step_size < 1):
        raise ValueError(f"step_size must be an int >= 1 for the step schedule, got {step_size!r}")

    def factor(i: int) -> float:
        warm = min(1.0, (i + 1) / warmup_steps) if warmup_steps > 0 else 1.0
        if kind == "step":
            return warm * gamma ** (i // step_size)
        span = max(1, total_steps - warmup_steps)
        p = min(1.0, max(0.0, (i - warmup_steps) / span))
        return warm * (final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * p)))

    return factor


def param_groups(params, weight_decay: float, **options) -> list[dict]:
    """Splits trainable parameters into a decayed group (weights) and an undecayed one (biases and
    normalization scales, the 1-D tensors). Frozen parameters (``requires_grad=False``) are left out.

    Args:
        params (nn.Module or iterable of Tensor): the parameters.
        weight_decay (float): of the first group.
        **options: added to both groups (e.g. ``lr=0.1``).

    Returns:
        list[dict]: two optimizer parameter groups (either may be empty).
    """
    if isinstance(params, nn.Module):
        params = params.parameters()
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, **options},
            {"params": no_decay, "weight_decay": 0.0, **options}]


def build_optimizer(groups: nn.Module | list[dict], cfg) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` (``"sgd"`` with momentum, or ``"adamw"``) at ``cfg.lr``.

    Args:
        groups (nn.Module or list of dict): a model (its trainable parameters, split by :func:`param_groups` with
            ``cfg.weight_decay``) or ready parameter groups; a group with its own ``"lr"`` keeps it.
        cfg (RunConfig): reads ``optimizer``, ``lr``, ``momentum``, ``weight_decay``.

    Returns:
        torch.optim.Optimizer
    """
    if isinstance(groups, nn.Module):
        groups = param_groups(groups, cfg.weight_decay)
    groups = [g for g in groups if len(g["params"]) > 0]
    if not groups:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg, steps: int):
    """The per-iteration LR schedule of ``cfg`` (warm-up, then cosine or step), as a ``LambdaLR``.

    Args:
        optimizer (torch.optim.Optimizer): every group's rate is multiplied by the same factor.
        cfg (RunConfig): reads ``epochs``, ``warmup_epochs``, ``scheduler``, ``final_lr_ratio``,
            ``step_epochs``, ``gamma``.
        steps (int): optimizer steps per epoch.
    """
    step_epochs = cfg.step_epochs if cfg.step_epochs is not None else max(1, cfg.epochs // 3)
    factor = lr_schedule(total_steps=cfg.epochs * steps, warmup_steps=int(round(cfg.warmup_epochs * steps)),
                         kind=cfg.scheduler, final_ratio=cfg.final_lr_ratio, step_size=step_epochs * steps,
                         gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
