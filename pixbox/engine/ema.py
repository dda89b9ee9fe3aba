"""An exponential moving average of a model's weights (model EMA).

After every optimizer step ``ema = d * ema + (1 - d) * model`` for every floating-point entry of the state dict
(the parameters and BatchNorm's running statistics; integer buffers such as ``num_batches_tracked`` are copied),
with the decay ramped up from 0 as in ultralytics and timm, ``d = decay * (1 - exp(-updates / tau))``, so that
the random initialization does not dominate the first steps. Evaluating and keeping the average instead of the
last weights smooths the noise of the last steps; a run trained with ``ema: true`` (``--ema``) evaluates the
average every epoch, saves it as ``best.pt``'s weights, and keeps both in ``last.pt`` (a resume continues both).

Example:
    >>> model = torch.nn.Linear(2, 1)
    >>> ema = ModelEMA(model, decay=0.9, tau=1.0)
    >>> ema.update(model)  # after each optimizer step
    >>> ema.module(torch.zeros(1, 2)).shape
    torch.Size([1, 1])
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """A frozen copy of ``model`` whose weights follow a moving average of the model's (see the module docstring).

    Args:
        model (nn.Module): the model being trained (copied; the copy is in eval mode, without gradients).
        decay (float): the decay once ramped up, in [0, 1).
        tau (float): the ramp's time constant in updates, > 0.

    Attributes:
        module (nn.Module): the averaged model.
        updates (int): the updates made so far.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
            raise ValueError(f"decay must be a number in [0, 1), got {decay!r}")
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0:
            raise ValueError(f"tau must be a number > 0, got {tau!r}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay, self.tau = float(decay), float(tau)
        self.updates = 0

    def current_decay(self) -> float:
        """The decay of the next update: ``decay * (1 - exp(-(updates + 1) / tau))``."""
        return self.decay * (1.0 - math.exp(-(self.updates + 1) / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Moves the average towards ``model`` (call after each optimizer step)."""
        d = self.current_decay()
        self.updates += 1
        current = model.state_dict()
        for name, value in self.module.state_dict().items():
            new = current[name].detach()
            if value.is_floating_point():
                value.mul_(d).add_(new.to(value.dtype), alpha=1.0 - d)
            else:
                value.copy_(new)

    def state_dict(self) -> dict[str, Any]:
        """``model`` (the averaged weights), ``updates``, ``decay`` and ``tau``."""
        return {"model": self.module.state_dict(), "updates": self.updates, "decay": self.decay, "tau": self.tau}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`."""
        self.module.load_state_dict(state["model"])
        self.updates = int(state["updates"])
