"""Anchor boxes with the D2L ``multibox_prior`` / MXNet ``MultiBoxPrior`` semantics.

For a feature map of height ``H`` and width ``W``, every cell gets ``n + m - 1`` anchors for
``n`` sizes and ``m`` ratios, in this order::

    (s_1, r_1), (s_2, r_1), ..., (s_n, r_1), (s_1, r_2), ..., (s_1, r_m)

The anchors of cell ``(i, j)`` are centred at ``((j + 0.5) / W, (i + 0.5) / H)``. An anchor
of size ``s`` and ratio ``r`` has normalized width ``s * sqrt(r) * H / W`` and height
``s / sqrt(r)``: its height is ``s`` times the image height (for ``r = 1``) and, when the
feature map has the image's aspect ratio (as it does for a CNN's feature maps), its aspect
ratio in pixels is exactly ``r``. On a feature map of another shape (e.g. D2L's square 4x4
map over a 4:3 image) the pixel aspect ratio is ``r * (H / W) * (W_img / H_img)``.

Anchors are normalized ``xyxy``; multiply by ``(W_img, H_img, W_img, H_img)``
(:func:`pixbox.ops.denormalize_boxes`) for pixels.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from pixbox._checks import check_positive_list

__all__ = ["generate_anchors", "generate_multiscale_anchors", "num_anchors_per_cell", "AnchorGenerator"]


def num_anchors_per_cell(sizes: Sequence[float], ratios: Sequence[float]) -> int:
    """``len(sizes) + len(ratios) - 1``: anchors per feature-map cell."""
    return len(sizes) + len(ratios) - 1


def _feature_size(feature_map_size, name: str = "feature_map_size"):
    """Returns (H, W, device, dtype) from a tensor ``[..., H, W]`` or an ``(H, W)`` pair."""
    if isinstance(feature_map_size, Tensor):
        if feature_map_size.dim() < 2:
            raise ValueError(f"{name} as a tensor must have shape [..., H, W], got {tuple(feature_map_size.shape)}")
        h, w = feature_map_size.shape[-2:]
        dtype = feature_map_size.dtype if feature_map_size.is_floating_point() else torch.float32
        return int(h), int(w), feature_map_size.device, dtype
    try:
        h, w = feature_map_size
        h, w = int(h), int(w)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a tensor [..., H, W] or a pair (H, W), got {feature_map_size!r}") from None
    if h < 0 or w < 0:
        raise ValueError(f"{name} must be non-negative, got {(h, w)}")
    return h, w, torch.device("cpu"), torch.float32


def _pair(value, name: str, default: tuple[float, float]) -> tuple[float, float]:
    if value is None:
        return default
    if isinstance(value, (int, float)):
        return float(value), float(value)
    try:
        a, b = value
        return float(a), float(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or a pair (y, x), got {value!r}") from None


def generate_anchors(
    feature_map_size,
    sizes: Sequence[float],
    ratios: Sequence[float],
    *,
    steps: float | Sequence[float] | None = None,
    offsets: float | Sequence[float] = (0.5, 0.5),
    clip: bool = False,
) -> Tensor:
    """Anchors for one feature map (D2L ``multibox_prior``, MXNet ``MultiBoxPrior``).

    Args:
        feature_map_size (Tensor[..., H, W] or tuple[int, int]): the feature map, or its
            (H, W). A tensor also gives the device and (floating) dtype of the anchors; a pair
            gives float32 CPU anchors.
        sizes (sequence of float): anchor sizes, as fractions of the image height; > 0.
        ratios (sequence of float): width/height aspect ratios; > 0.
        steps (float or (step_y, step_x), optional): distance between cell centres in
            normalized units. Default ``(1 / H, 1 / W)``, as MXNet's ``steps=(-1, -1)``;
            non-positive values also mean the default.
        offsets (float or (offset_y, offset_x)): centre offset within a cell, in cells.
        clip (bool): clip the anchors to [0, 1].

    Returns:
        Tensor[H * W * (len(sizes) + len(ratios) - 1), 4]: normalized xyxy anchors, cell by cell in
        row-major order, the anchors of one cell in the order given in the module docstring.
    """
    h, w, device, dtype = _feature_size(feature_map_size)
    sizes = check_positive_list(sizes, "sizes")
    ratios = check_positive_list(ratios, "ratios")
    step_y, step_x = _pair(steps, "steps", (-1.0, -1.0))
    off_y, off_x = _pair(offsets, "offsets", (0.5, 0.5))
    k = len(sizes) + len(ratios) - 1
    if h == 0 or w == 0:
        return torch.zeros((0, 4), device=device, dtype=dtype)
    step_y = step_y if step_y > 0 else 1.0 / h
    step_x = step_x if step_x > 0 else 1.0 / w

    # Half widths / heights of the k anchor shapes, computed in float64 then cast once.
    sr = [(s, ratios[0]) for s in sizes] + [(sizes[0], r) for r in ratios[1:]]
    half_w = [s * math.sqrt(r) * h / w / 2 for s, r in sr]
    half_h = [s / math.sqrt(r) / 2 for s, r in sr]
    half = torch.tensor([[-a, -b, a, b] for a, b in zip(half_w, half_h)], dtype=dtype, device=device)  # [k, 4]

    cy = (torch.arange(h, device=device, dtype=dtype) + off_y) * step_y  # [H]
    cx = (torch.arange(w, device=device, dtype=dtype) + off_x) * step_x  # [W]
    cy, cx = torch.meshgrid(cy, cx, indexing="ij")  # [H, W] each
    centers = torch.stack([cx, cy, cx, cy], dim=-1).reshape(h * w, 1, 4)  # [HW, 1, 4]
    anchors = (centers + half[None]).reshape(h * w * k, 4)  # [HW * k, 4]
    if clip:
        anchors = anchors.clamp_(0, 1)
    return anchors


def generate_multiscale_anchors(
    feature_map_sizes: Sequence,
    sizes: Sequence[Sequence[float]],
    ratios: Sequence[Sequence[float]] | Sequence[float],
    *,
    steps: Sequence | None = None,
    offsets: float | Sequence[float] = (0.5, 0.5),
    clip: bool = False,
) -> Tensor:
    """Anchors for several feature maps (multiscale detection), concatenated scale by scale.

    Args:
        feature_map_sizes (sequence of Tensor or (H, W)): one entry per scale.
        sizes (sequence of sequences of float): the sizes for each scale.
        ratios: the ratios for each scale, or one list of ratios shared by all scales.
        steps (sequence, optional): per-scale ``steps`` (see :func:`generate_anchors`).
        offsets, clip: as in :func:`generate_anchors`, shared by all scales.

    Returns:
        Tensor[sum_l H_l * W_l * k_l, 4]: normalized xyxy anchors.
    """
    n = len(feature_map_sizes)
    if len(sizes) != n:
        raise ValueError(f"sizes must have one list per feature map ({n}), got {len(sizes)}")
    if len(ratios) and not isinstance(ratios[0], (list, tuple)):
        ratios = [ratios] * n
    if len(ratios) != n:
        raise ValueError(f"ratios must be one list per feature map ({n}) or a single list, got {len(ratios)}")
    if steps is not None and len(steps) != n:
        raise ValueError(f"steps must have one entry per feature map ({n}), got {len(steps)}")
    if n == 0:
        return torch.zeros((0, 4))
    parts = [
        generate_anchors(f, s, r, steps=None if steps is None else steps[i], offsets=offsets, clip=clip)
        for i, (f, s, r) in enumerate(zip(feature_map_sizes, sizes, ratios))
    ]
    return torch.cat(parts, dim=0)


class AnchorGenerator(nn.Module):
    """Multiscale anchor generator: stores sizes and ratios, calls :func:`generate_multiscale_anchors`.

    Anchors are built for the actual feature-map sizes on the feature maps' device and dtype,
    so a non-square or resized input works, and are cached per shape.

    Args:
        sizes (sequence of sequences of float): per-scale anchor sizes (fractions of image height).
        ratios: per-scale ratios, or one list shared by all scales.
        clip (bool): clip anchors to [0, 1].

    Example:
        >>> gen = AnchorGenerator([[0.2, 0.272], [0.37, 0.447]], [1, 2, 0.5])
        >>> gen([torch.zeros(1, 8, 32, 32), torch.zeros(1, 8, 16, 16)]).shape
        torch.Size([5120, 4])
    """

    def __init__(self, sizes: Sequence[Sequence[float]], ratios, *, clip: bool = False) -> None:
        super().__init__()
        self.sizes = [check_positive_list(s, f"sizes[{i}]") for i, s in enumerate(sizes)]
        if len(ratios) and not isinstance(ratios[0], (list, tuple)):
            ratios = [ratios] * len(self.sizes)
        if len(ratios) != len(self.sizes):
            raise ValueError(f"ratios must have one list per scale ({len(self.sizes)}), got {len(ratios)}")
        self.ratios = [check_positive_list(r, f"ratios[{i}]") for i, r in enumerate(ratios)]
        self.clip = clip
        self._cache: dict = {}

    def num_anchors_per_cell(self) -> list[int]:
        return [num_anchors_per_cell(s, r) for s, r in zip(self.sizes, self.ratios)]

    def forward(self, feature_maps: Sequence[Tensor]) -> Tensor:
        if len(feature_maps) != len(self.sizes):
            raise ValueError(f"expected {len(self.sizes)} feature maps, got {len(feature_maps)}")
        key = tuple((tuple(f.shape[-2:]), f.device, f.dtype) for f in feature_maps)
        if key not in self._cache:
            self._cache = {key: generate_multiscale_anchors(feature_maps, self.sizes, self.ratios, clip=self.clip)}
        return self._cache[key]

    def extra_repr(self) -> str:
        return f"sizes={self.sizes}, ratios={self.ratios}, clip={self.clip}"
