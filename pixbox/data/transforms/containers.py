"""Containers that chain or pick transforms: :class:`Compose`, :class:`RandomApply`, :class:`RandomChoice`.

They accept any callable with the transforms' calling convention (``t(image)`` or
``t(image, target)``, see :mod:`pixbox.data.transforms`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch

from pixbox._checks import check_number
from pixbox.data.transforms._base import (
    _MISSING,
    _check_generator,
    _check_prob,
    _check_transforms,
    _copy_arg,
)

__all__ = ["Compose", "RandomApply", "RandomChoice"]

def _call(t: Callable, image, target):
    return t(image) if target is _MISSING else t(image, target)


class Compose:
    """Applies transforms one after the other.

    Args:
        transforms (sequence of callables): each called as ``t(image)`` or ``t(image, target)``
            like the transforms of :mod:`pixbox.data.transforms`.
    """

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = _check_transforms(transforms)

    def __call__(self, image, target: Any = _MISSING):
        if target is _MISSING:
            for t in self.transforms:
                image = t(image)
            return image
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


class RandomApply:
    """Applies ``transforms`` (in order) with probability ``p``, else returns the input unchanged.

    One draw decides for the whole call, so a batch is transformed as a whole or not at all (the
    transforms inside still draw their own parameters per image).

    Args:
        transforms (callable or sequence of callables): what to apply.
        p (float): probability, in [0, 1].
        generator (torch.Generator, optional): CPU generator for the decision; None = global RNG.
    """

    def __init__(self, transforms, p: float = 0.5, *, generator: torch.Generator | None = None):
        self.transforms = _check_transforms(transforms)
        self.p = _check_prob(p)
        self.generator = _check_generator(generator)

    def __call__(self, image, target: Any = _MISSING):
        if float(torch.rand(1, generator=self.generator)) < self.p:
            return Compose(self.transforms)(image, target)
        if target is _MISSING:
            return image
        return image, _copy_arg(target)

    def __repr__(self) -> str:
        return f"RandomApply({self.transforms!r}, p={self.p})"


class RandomChoice:
    """Applies one transform picked at random (once per call, also for a batch).

    Args:
        transforms (sequence of callables): the candidates.
        p (sequence of float, optional): relative weights, >= 0 with a positive sum; None gives
            equal weights.
        generator (torch.Generator, optional): CPU generator for the pick; None = global RNG.
    """

    def __init__(self, transforms: Sequence[Callable], p: Sequence[float] | None = None, *,
                 generator: torch.Generator | None = None):
        self.transforms = _check_transforms(transforms)
        if p is None:
            weights = [1.0] * len(self.transforms)
        else:
            if isinstance(p, str) or not isinstance(p, Sequence) or len(p) != len(self.transforms):
                raise ValueError(f"p must hold one weight per transform ({len(self.transforms)}), got {p!r}")
            weights = [float(check_number(v, "p", low=0)) for v in p]
            if not sum(weights) > 0:
                raise ValueError(f"p must have a positive sum, got {list(p)}")
        total = sum(weights)
        self.p = [w / total for w in weights]
        self.generator = _check_generator(generator)

    def __call__(self, image, target: Any = _MISSING):
        i = int(torch.multinomial(torch.tensor(self.p, dtype=torch.float64), 1, generator=self.generator))
        return _call(self.transforms[i], image, target)

    def __repr__(self) -> str:
        return f"RandomChoice({self.transforms!r}, p={self.p})"
