"""The :class:`Transform` base class and what every transform shares.

- argument checks (generator, probabilities, sizes, ranges, fill values, box-rule thresholds);
- batching: a single image becomes a batch of one, the target a list of dicts, and back;
- :func:`_geometric_target`, which moves the boxes, proposals and masks of one target dict and
  applies the box rule, and :func:`_per_image`, which applies a colour op with one factor per image.

The calling convention, the target keys and the box rule are described in
:mod:`pixbox.data.transforms`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_number, check_tensor
from pixbox.data.transforms import functional as F
from pixbox.data.transforms.functional._common import _check_box_tensor, _check_image, _check_size

__all__ = ["Transform"]

_MISSING = object()  # "no target argument": t(image) returns only the image


# ----------------------------------------------------------------------------------------------
# Argument checks


def _check_generator(generator) -> torch.Generator | None:
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(f"generator must be a CPU torch.Generator (random numbers are drawn on the CPU), "
                         f"got one on {generator.device}")
    return generator


def _check_prob(p, name: str = "p") -> float:
    return float(check_number(p, name, low=0, high=1))


def _check_min_size(min_size, min_visibility) -> tuple[float, float]:
    return (float(check_number(min_size, "min_size", low=0)),
            float(check_number(min_visibility, "min_visibility", low=0, high=1)))


def _check_out_size(size, name: str = "size") -> tuple[int, int]:
    """An int ``s`` (meaning ``(s, s)``) or ``(height, width)``, positive."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"{name} must be positive, got {size}")
        return int(size), int(size)
    return _check_size(size, name)


def _check_pair(value, name: str, *, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> tuple[float, float]:
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{name} must be a (min, max) pair, got {value!r}")
    lo = float(check_number(value[0], f"{name}[0]", low=low, high=high, low_open=low_open))
    hi = float(check_number(value[1], f"{name}[1]", low=low, high=high, low_open=low_open))
    if lo > hi:
        raise ValueError(f"{name} must have min <= max, got {tuple(value)}")
    return lo, hi


def _check_fill(fill, name: str):
    """A number or a sequence of numbers (checked against the image when applied)."""
    if isinstance(fill, bool) or not isinstance(fill, (int, float, Sequence, Tensor, np.ndarray)) or isinstance(
            fill, str):
        raise TypeError(f"{name} must be a number or a sequence of numbers (one per channel), got "
                        f"{type(fill).__name__}")
    if isinstance(fill, (Sequence, Tensor, np.ndarray)):
        values = fill.tolist() if isinstance(fill, (Tensor, np.ndarray)) else list(fill)
        if not isinstance(values, list) or not values:
            raise ValueError(f"{name} must be a number or a non-empty sequence of numbers, got {fill!r}")
        for v in values:
            check_number(v, name)
        return tuple(values)
    check_number(fill, name)
    return fill


def _check_transforms(transforms, name: str = "transforms") -> list[Callable]:
    if callable(transforms):
        return [transforms]
    if isinstance(transforms, str) or not isinstance(transforms, Sequence):
        raise TypeError(f"{name} must be a transform or a sequence of transforms, got {type(transforms).__name__}")
    for i, t in enumerate(transforms):
        if not callable(t):
            raise TypeError(f"{name}[{i}] must be callable as t(image, target), got {type(t).__name__}")
    return list(transforms)


def _check_target(target, size: tuple[int, int], name: str) -> None:
    if target is None:
        return
    if not isinstance(target, dict):
        raise TypeError(f"{name} must be a dict or None, got {type(target).__name__}")
    n = None
    if "boxes" in target:
        boxes = target["boxes"]
        _check_box_tensor(boxes, f"{name}['boxes']")
        n = boxes.shape[0]
    if "proposals" in target:
        _check_box_tensor(target["proposals"], f"{name}['proposals']")
    if "mask" in target:
        mask = target["mask"]
        check_tensor(mask, f"{name}['mask']")
        if tuple(mask.shape) != size:
            raise ValueError(f"{name}['mask'] must have the image's shape [H, W] = {list(size)}, got "
                             f"{list(mask.shape)}")
        if mask.is_floating_point() or mask.dtype == torch.bool or mask.is_complex():
            raise TypeError(f"{name}['mask'] must be an integer tensor (class indices, 255 = ignore), "
                            f"got dtype {mask.dtype}")
    if "masks" in target:
        masks = target["masks"]
        check_tensor(masks, f"{name}['masks']")
        if masks.dim() != 3 or tuple(masks.shape[1:]) != size or (n is not None and masks.shape[0] != n):
            want = f"[{'N' if n is None else n}, {size[0]}, {size[1]}]"
            raise ValueError(f"{name}['masks'] must have shape {want} (one mask per box), got {list(masks.shape)}")


def _as_batch(image, target) -> tuple[Tensor, list]:
    """The image as a batch ``[B, C, H, W]`` and the target as a list of ``B`` dicts or Nones."""
    _check_image(image)
    size = (int(image.shape[-2]), int(image.shape[-1]))
    if image.dim() == 3:
        targets = [None if target is _MISSING else target]
        names = ["target"]
        image = image[None]
    else:
        b = image.shape[0]
        if target is _MISSING or target is None:
            targets = [None] * b
        elif isinstance(target, (list, tuple)) and len(target) == b:
            targets = list(target)
        else:
            got = f"a {type(target).__name__}" + (f" of length {len(target)}" if isinstance(target, (list, tuple))
                                                  else "")
            raise TypeError(f"target for a batch of {b} images must be a list of {b} dicts (or None), got {got}")
        names = [f"target[{i}]" for i in range(b)]
    for t, name in zip(targets, names):
        _check_target(t, size, name)
    return image, targets


def _unbatch(image_in: Tensor, target_in, images: Tensor, targets: list):
    if image_in.dim() == 3:
        images, targets = images[0], targets[0]
    elif target_in is None or target_in is _MISSING:
        targets = None
    if target_in is _MISSING:
        return images
    return images, targets


def _copy(target):
    return None if target is None else dict(target)


def _copy_arg(target):
    if isinstance(target, list):
        return [_copy(t) for t in target]
    if isinstance(target, tuple):
        return tuple(_copy(t) for t in target)
    return _copy(target)


def _stack(images: list[Tensor], name: str) -> Tensor:
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) != 1:
        raise ValueError(f"{name} produced images of different sizes {sorted(shapes)} for one batch; "
                         "the parameters must give one output size")
    return torch.stack(images)


def _geometric_target(target, *, plane_fn: Callable, boxes_fn: Callable, size: tuple[int, int],
                      mask_fill=255, min_size: float = 1.0, min_visibility: float = 0.0, drop: bool = True):
    """Applies one geometric change to a target dict (see :mod:`pixbox.data.transforms`).

    ``plane_fn(x, fill)`` transforms ``[..., H, W]`` planes, ``boxes_fn`` the boxes; with ``drop``
    the box rule runs on the result, for the new image ``size``. ``"proposals"`` go through
    ``boxes_fn`` too, are clipped to the new image and lose the ones left empty, whatever
    ``drop`` (they never affect, nor are filtered with, the boxes).
    """
    if target is None:
        return None
    out = dict(target)
    if "mask" in out:
        out["mask"] = plane_fn(out["mask"], mask_fill)
    if "masks" in out:
        out["masks"] = plane_fn(out["masks"], 0)
    if "boxes" in out:
        boxes = boxes_fn(out["boxes"])
        if drop:
            boxes, keep = F.clip_and_filter_boxes(boxes, size, min_size=min_size, min_visibility=min_visibility)
            out = F.filter_target(out, keep)
        out["boxes"] = boxes
    if "proposals" in out:  # unlabeled regions: moved like the boxes, clipped, empty ones dropped
        proposals = boxes_fn(out["proposals"])
        proposals, keep = F.clip_and_filter_boxes(proposals, size, min_size=0.0)
        nonempty = (proposals[:, 2] > proposals[:, 0]) & (proposals[:, 3] > proposals[:, 1])  # [K]
        out["proposals"] = proposals[nonempty]
    return out


def _per_image(x: Tensor, values: list, fn: Callable, dims: int = 3) -> Tensor:
    """Applies ``fn(x_i, value_i)`` to the images of the float batch ``x`` whose value is not None.

    The values of the selected images are stacked into one tensor ``[K] + [1] * dims`` so that
    ``fn`` runs once, vectorized.
    """
    sel = [i for i, v in enumerate(values) if v is not None]
    if not sel:
        return x
    f = torch.tensor([float(values[i]) for i in sel], dtype=x.dtype, device=x.device).view((-1,) + (1,) * dims)
    if len(sel) == len(values):
        return fn(x, f)
    idx = torch.tensor(sel, device=x.device)
    out = x.clone()
    out[idx] = fn(x[idx], f)
    return out


# ----------------------------------------------------------------------------------------------
# Base class


class Transform:
    """Base class: ``t(image)`` or ``t(image, target)`` (see :mod:`pixbox.data.transforms`).

    A subclass implements :meth:`make_params` (the random draws, one dict per image) and
    :meth:`apply` (a deterministic function of the images, targets and parameters). Both always
    see a batch; a single image is a batch of one. Calling ``apply`` on one image of a batch with
    its own parameter dict gives that image's part of the batch result, which is how to replay an
    augmentation.
    """

    generator: torch.Generator | None = None

    def __call__(self, image: Tensor, target: Any = _MISSING):
        images, targets = _as_batch(image, target)
        params = self.make_params(images, targets)
        out_images, out_targets = self.apply(images, targets, params)
        return _unbatch(image, target, out_images, out_targets)

    def make_params(self, images: Tensor, targets: list) -> list[dict]:
        """Draws the random parameters.

        Args:
            images (Tensor[B, C, H, W]): the batch.
            targets (list[dict | None]): one per image.

        Returns:
            list[dict]: one dict of parameters (Python numbers) per image.
        """
        return [{} for _ in range(images.shape[0])]

    def apply(self, images: Tensor, targets: list, params: list[dict]) -> tuple[Tensor, list]:
        """Applies the parameters.

        Args:
            images (Tensor[B, C, H, W]): the batch.
            targets (list[dict | None]): one per image.
            params (list[dict]): one per image, from :meth:`make_params`.

        Returns:
            tuple[Tensor[B, C, H', W'], list[dict | None]]: new images and new target dicts.
        """
        raise NotImplementedError

    def _rand(self, *shape: int) -> Tensor:
        return torch.rand(shape, generator=self.generator)

    def _randint(self, low: int, high: int) -> int:
        """A uniform integer in ``[low, high]`` (both included)."""
        return low + int(torch.randint(high - low + 1, (1,), generator=self.generator))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_") and k != "generator")
        return f"{type(self).__name__}({args})"


def _check_params(params: list, images: Tensor, name: str) -> None:
    if not isinstance(params, (list, tuple)) or len(params) != images.shape[0]:
        got = len(params) if isinstance(params, (list, tuple)) else type(params).__name__
        raise ValueError(f"{name}.apply needs one parameter dict per image ({images.shape[0]}), got {got}")
