"""Colour transforms: :class:`ColorJitter` and the SSD :class:`RandomPhotometricDistort`.

Both convert the image to float once, apply the float ops of
:mod:`pixbox.data.transforms.functional` with one factor per image, and convert back; the target
is never touched.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable

import torch
from torch import Tensor

from pixbox._checks import check_number
from pixbox.data.transforms import functional as F
from pixbox.data.transforms._base import (
    Transform,
    _check_generator,
    _check_pair,
    _check_params,
    _check_prob,
    _copy,
    _per_image,
)
from pixbox.data.transforms.functional._color import _brightness, _contrast, _hue, _saturation
from pixbox.data.transforms.functional._common import _from_float, _to_float

__all__ = ["ColorJitter", "RandomPhotometricDistort"]

def _jitter_range(value, name: str, *, hue: bool = False) -> tuple[float, float] | None:
    """torchvision's factor semantics; None when the range is the identity."""
    center, bound = (0.0, 0.5) if hue else (1.0, math.inf)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        v = float(check_number(value, name, low=0, high=0.5 if hue else None))
        lo, hi = (-v, v) if hue else (max(0.0, 1 - v), 1 + v)
    else:
        lo, hi = _check_pair(value, name, low=-bound if hue else 0.0, high=bound if hue else None)
    return None if lo == hi == center else (lo, hi)


_OPS: dict[str, tuple[Callable, int]] = {
    # name: (float op, trailing dims of the per-image factor)
    "brightness": (_brightness, 3),
    "contrast": (_contrast, 3),
    "saturation": (_saturation, 3),
    "hue": (_hue, 2),
}
_JITTER_NAMES = ("brightness", "contrast", "saturation", "hue")


def _check_rgb_for(images: Tensor, who: str) -> None:
    if images.shape[1] != 3:
        raise ValueError(f"{who} needs RGB images with 3 channels for saturation and hue, got shape "
                         f"{tuple(images.shape[1:])}")


class ColorJitter(Transform):
    """Random brightness, contrast, saturation and hue, applied in a random order.

    Factor semantics (as torchvision): a number ``v`` for brightness, contrast or saturation
    draws the factor uniformly in ``[max(0, 1 - v), 1 + v]``; a pair ``(min, max)`` gives the range
    directly. For hue, a number ``v`` in [0, 0.5] draws the shift uniformly in ``[-v, v]`` turns
    (a pair in [-0.5, 0.5] gives the range). 0 disables an adjustment. See
    :func:`~pixbox.data.transforms.functional.adjust_brightness` and its siblings for what each
    factor does. The target is never touched.

    Args:
        brightness (float or tuple[float, float]): brightness jitter.
        contrast (float or tuple[float, float]): contrast jitter.
        saturation (float or tuple[float, float]): saturation jitter (needs RGB).
        hue (float or tuple[float, float]): hue jitter (needs RGB).
        generator (torch.Generator, optional): CPU generator; None = global RNG.

    For a batch, the order is drawn once per call and the factors per image. The image is
    converted to float once, adjusted, and converted back (``uint8`` rounded once).
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, *,
                 generator: torch.Generator | None = None):
        self.brightness = _jitter_range(brightness, "brightness")
        self.contrast = _jitter_range(contrast, "contrast")
        self.saturation = _jitter_range(saturation, "saturation")
        self.hue = _jitter_range(hue, "hue", hue=True)
        self.generator = _check_generator(generator)

    def make_params(self, images, targets):
        if self.saturation is not None or self.hue is not None:
            _check_rgb_for(images, "ColorJitter")
        b = images.shape[0]
        order = tuple(torch.randperm(4, generator=self.generator).tolist())
        params = [{"order": order} for _ in range(b)]
        for name in _JITTER_NAMES:
            rng = getattr(self, name)
            values = [None] * b if rng is None else (rng[0] + (rng[1] - rng[0]) * self._rand(b)).tolist()
            for p, v in zip(params, values):
                p[name] = v
        return params

    def apply(self, images, targets, params):
        _check_params(params, images, "ColorJitter")
        x = _to_float(images)
        groups: dict[tuple, list[int]] = defaultdict(list)
        for i, p in enumerate(params):
            groups[tuple(p["order"])].append(i)
        for order, idx in groups.items():
            sub = x if len(idx) == len(params) else x[torch.tensor(idx, device=x.device)]
            for k in order:
                name = _JITTER_NAMES[k]
                fn, dims = _OPS[name]
                sub = _per_image(sub, [params[i][name] for i in idx], fn, dims)
            if len(idx) == len(params):
                x = sub
            else:
                x = x.clone()  # x may be the caller's float image itself
                x[torch.tensor(idx, device=x.device)] = sub
        return _from_float(x, images.dtype), [_copy(t) for t in targets]


class RandomPhotometricDistort(Transform):
    """The SSD photometric distortion, each step drawn independently per image with probability ``p``.

    Steps, in order: brightness; contrast (before the next two steps with probability 1/2, else
    after them); saturation; hue; contrast (if not done before); a random permutation of the
    channels. Factors are drawn uniformly in the given ranges (multiplicative factors for
    brightness, contrast and saturation; a shift in turns for hue). The target is never touched.

    Args:
        brightness (tuple[float, float]): brightness factor range, >= 0.
        contrast (tuple[float, float]): contrast factor range, >= 0.
        saturation (tuple[float, float]): saturation factor range, >= 0.
        hue (tuple[float, float]): hue shift range, within [-0.5, 0.5].
        p (float): probability of each step, in [0, 1].
        generator (torch.Generator, optional): CPU generator; None = global RNG.

    Needs RGB images. Every parameter is drawn per image of a batch.
    """

    def __init__(self, brightness=(0.875, 1.125), contrast=(0.5, 1.5), saturation=(0.5, 1.5),
                 hue=(-0.05, 0.05), p: float = 0.5, *, generator: torch.Generator | None = None):
        self.brightness = _check_pair(brightness, "brightness", low=0)
        self.contrast = _check_pair(contrast, "contrast", low=0)
        self.saturation = _check_pair(saturation, "saturation", low=0)
        self.hue = _check_pair(hue, "hue", low=-0.5, high=0.5)
        self.p = _check_prob(p)
        self.generator = _check_generator(generator)

    def make_params(self, images, targets):
        _check_rgb_for(images, "RandomPhotometricDistort")
        b, c = images.shape[:2]
        coin = (self._rand(b, 6) < self.p).tolist()  # brightness, contrast, saturation, hue, before, permute
        u = self._rand(b, 4).tolist()
        perms = self._rand(b, c).argsort(dim=1).tolist()

        def pick(rng, v):
            return rng[0] + (rng[1] - rng[0]) * v

        return [{
            "brightness": pick(self.brightness, ui[0]) if ci[0] else None,
            "contrast": pick(self.contrast, ui[1]) if ci[1] else None,
            "contrast_before": ci[4],
            "saturation": pick(self.saturation, ui[2]) if ci[2] else None,
            "hue": pick(self.hue, ui[3]) if ci[3] else None,
            "permutation": tuple(perm) if ci[5] else None,
        } for ci, ui, perm in zip(coin, u, perms)]

    def apply(self, images, targets, params):
        _check_params(params, images, "RandomPhotometricDistort")
        x = _to_float(images)
        x = _per_image(x, [p["brightness"] for p in params], _brightness)
        x = _per_image(x, [p["contrast"] if p["contrast_before"] else None for p in params], _contrast)
        x = _per_image(x, [p["saturation"] for p in params], _saturation)
        x = _per_image(x, [p["hue"] for p in params], _hue, dims=2)
        x = _per_image(x, [None if p["contrast_before"] else p["contrast"] for p in params], _contrast)
        sel = [i for i, p in enumerate(params) if p["permutation"] is not None]
        if sel:
            perms = torch.tensor([params[i]["permutation"] for i in sel], dtype=torch.int64)
            if len(sel) == len(params):
                x = F.permute_channels(x, perms)
            else:
                idx = torch.tensor(sel, device=x.device)
                x = x.clone()  # x may be the caller's float image itself
                x[idx] = F.permute_channels(x[idx], perms)
        return _from_float(x, images.dtype), [_copy(t) for t in targets]
