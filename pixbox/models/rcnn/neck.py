"""One feature map from several: the top-down path of a feature pyramid network."""

from __future__ import annotations

from typing import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_number

__all__ = ["TopDownNeck"]


class TopDownNeck(nn.Module):
    """Fuses a backbone's maps of increasing stride into one map at the finest stride.

    The top-down path of a feature pyramid network (Lin et al. 2017), keeping only its finest
    level: each map goes through a 1x1 "lateral" convolution to ``out_channels``; from the
    coarsest up, the running sum is upsampled (nearest) to the next finer map and added to it;
    a 3x3 convolution smooths the result. The finest map's resolution (small objects) gets the
    deepest map's context (large objects and class evidence).

    Args:
        in_channels (sequence of int): channels of the input maps, finest first.
        out_channels (int): channels of the output map.

    Input: list of ``[B, C_i, H_i, W_i]``, finest first. Output: ``[B, out_channels, H_0, W_0]``.

    Example:
        >>> neck = TopDownNeck([128, 256, 512], 128)
        >>> maps = [torch.rand(1, 128, 32, 32), torch.rand(1, 256, 16, 16), torch.rand(1, 512, 8, 8)]
        >>> neck(maps).shape
        torch.Size([1, 128, 32, 32])
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int = 256):
        super().__init__()
        in_channels = [int(c) for c in in_channels]
        if not in_channels or min(in_channels) < 1:
            raise ValueError(f"in_channels must be a non-empty list of positive ints, got {in_channels!r}")
        self.out_channels = int(check_number(out_channels, "out_channels", low=1))
        self.lateral = nn.ModuleList(nn.Conv2d(c, self.out_channels, 1) for c in in_channels)
        self.smooth = nn.Conv2d(self.out_channels, self.out_channels, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        if len(features) != len(self.lateral):
            raise ValueError(f"expected {len(self.lateral)} feature maps, got {len(features)}")
        x = self.lateral[-1](features[-1])
        for f, lateral in zip(reversed(features[:-1]), reversed(self.lateral[:-1])):
            x = lateral(f) + F.interpolate(x, size=f.shape[-2:], mode="nearest")
        return self.smooth(x)
