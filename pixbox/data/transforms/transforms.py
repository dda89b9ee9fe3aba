"""Joint augmentation of an image and its target, with shared, reproducible random parameters.

Each transform is a small class that stores its configuration, draws its random parameters
(:meth:`Transform.make_params`) and applies them with the pure functions of
:mod:`pixbox.data.transforms.functional` (:meth:`Transform.apply`). No PIL, no numpy on image
data: everything runs with torch ops on the image's device.

Calling convention:

- ``t(image)`` returns the transformed image; ``t(image, target)`` returns ``(image, target)``,
  where ``target`` may be ``None`` (classification) and is then returned as ``None``.
- ``image`` is a ``Tensor[C, H, W]``, ``uint8`` (0..255) or float (0..1), or a batch
  ``Tensor[B, C, H, W]`` on any device; the dtype and device are kept (``uint8`` results are
  rounded and clamped). For a batch, ``target`` is a list of ``B`` dicts (or ``None`` entries).
- A target dict may hold:

  - ``"boxes"``: ``Tensor[N, 4]`` float, xyxy absolute pixels; ``[x1, y1, x2, y2]`` covers the
    pixels ``x1 <= x < x2``, ``y1 <= y < y2``;
  - ``"mask"``: ``Tensor[H, W]`` integer semantic mask, ``255`` = ignore. Interpolated with
    nearest neighbour; pixels that come from outside the image get ``mask_fill`` (255);
  - ``"masks"``: ``Tensor[N, H, W]`` instance masks (one per box, any dtype), transformed like
    ``"mask"`` but filled with 0;
  - per-box entries, filtered together with the boxes: the keys of
    :data:`~pixbox.data.transforms.functional.PER_BOX_KEYS` (``"labels"``, ``"iscrowd"``,
    ``"difficult"``, ``"scores"``, ``"area"``, ``"masks"``) and any other tensor or numpy array
    whose first dimension equals the number of boxes (``"mask"`` excepted);
  - anything else (``"image_id"``, ...), passed on untouched.

  The caller's dicts and tensors are never modified: every call returns new dicts. Tensors that a
  transform leaves unchanged may be returned as they are (shared, not copied).

Box rule: geometric transforms that can cut or shrink boxes (crops, :class:`Resize`) clip the
boxes to the new image and drop, with all their per-box entries, the boxes whose clipped width or
height is below ``min_size`` pixels or whose visibility (clipped area / area before clipping, in
the new image's coordinates) is below ``min_visibility`` (boxes with nothing left inside always
go); see
:func:`~pixbox.data.transforms.functional.clip_and_filter_boxes`. Flips and
:class:`RandomZoomOut` move boxes exactly and never drop any.

Randomness: every random transform takes ``generator`` (a CPU :class:`torch.Generator`). All
random numbers are drawn on the CPU from it and the results move to the image's device, so one
seed gives the same output on CPU and GPU. ``None`` uses torch's global RNG, which
:class:`torch.utils.data.DataLoader` seeds differently in each worker. An explicit generator is
copied into each worker with the same state, so reseed it in a ``worker_init_fn`` (for example
``generator.manual_seed(torch.initial_seed())``) when using one with several workers.

Batches: flips, colour transforms and the fixed-size crops draw parameters per image; the
documentation of each transform says what is shared by the batch.

Example:
    >>> import torch
    >>> from pixbox.data.transforms import Compose, RandomHorizontalFlip, Resize
    >>> g = torch.Generator().manual_seed(0)
    >>> t = Compose([RandomHorizontalFlip(p=1.0, generator=g), Resize((32, 48))])
    >>> image = torch.zeros(3, 64, 96, dtype=torch.uint8)
    >>> target = {"boxes": torch.tensor([[0.0, 0.0, 24.0, 32.0]]), "labels": torch.tensor([1])}
    >>> image, target = t(image, target)
    >>> image.shape, target["boxes"].tolist()
    (torch.Size([3, 32, 48]), [[36.0, 0.0, 48.0, 16.0]])
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_number, check_tensor
from pixbox.data.transforms import functional as F
from pixbox.ops.boxes import box_iou

__all__ = [
    "ColorJitter",
    "Compose",
    "Normalize",
    "RandomApply",
    "RandomChoice",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomIoUCrop",
    "RandomPhotometricDistort",
    "RandomResizedCrop",
    "RandomVerticalFlip",
    "RandomZoomOut",
    "Resize",
    "SanitizeBoxes",
    "ToDtype",
    "Transform",
]

_MISSING = object()  # "no target argument": t(image) returns only the image

# RandomIoUCrop draws a new IoU option when `trials` crops fail; after this many options without
# success it gives up and returns the image unchanged, so that it always terminates.
_IOU_CROP_ROUNDS = 50


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
    return F._check_size(size, name)


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
        F._check_box_tensor(boxes, f"{name}['boxes']")
        n = boxes.shape[0]
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
    F._check_image(image)
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
    """Applies one geometric change to a target dict (see the module docstring).

    ``plane_fn(x, fill)`` transforms ``[..., H, W]`` planes, ``boxes_fn`` the boxes; with ``drop``
    the box rule runs on the result, for the new image ``size``.
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
    """Base class: ``t(image)`` or ``t(image, target)`` (see the module docstring).

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


# ----------------------------------------------------------------------------------------------
# Flips


class _Flip(Transform):
    """Shared code of the two flips; ``_axis`` is -1 (left-right) or -2 (top-bottom)."""

    _axis = -1

    def __init__(self, p: float = 0.5, *, generator: torch.Generator | None = None):
        self.p = _check_prob(p)
        self.generator = _check_generator(generator)

    def make_params(self, images, targets):
        u = self._rand(images.shape[0]).tolist()
        return [{"flip": v < self.p} for v in u]

    def apply(self, images, targets, params):
        _check_params(params, images, type(self).__name__)
        flags = [bool(p["flip"]) for p in params]
        axis = self._axis
        if all(flags):
            out = images.flip(axis)
        elif any(flags):
            sel = torch.tensor(flags, device=images.device).view(-1, 1, 1, 1)
            out = torch.where(sel, images.flip(axis), images)
        else:
            out = images
        h, w = images.shape[-2:]

        def boxes_fn(b):
            return F.hflip_boxes(b, w) if axis == -1 else F.vflip_boxes(b, h)

        out_targets = [
            _geometric_target(t, plane_fn=lambda x, fill: x.flip(axis), boxes_fn=boxes_fn, size=(h, w), drop=False)
            if f else _copy(t)
            for t, f in zip(targets, flags)
        ]
        return out, out_targets


class RandomHorizontalFlip(_Flip):
    """Mirrors left-right with probability ``p``, decided per image of a batch.

    Exact: pixel column ``x`` goes to ``W - 1 - x`` and a box ``[x1, y1, x2, y2]`` becomes
    ``[W - x2, y1, W - x1, y2]``; masks are flipped; no box is clipped or dropped.

    Args:
        p (float): probability of flipping, in [0, 1].
        generator (torch.Generator, optional): CPU generator for the draws; None = global RNG.
    """

    _axis = -1


class RandomVerticalFlip(_Flip):
    """Mirrors top-bottom with probability ``p``, decided per image of a batch.

    Exact: row ``y`` goes to ``H - 1 - y`` and a box becomes ``[x1, H - y2, x2, H - y1]``.

    Args:
        p (float): probability of flipping, in [0, 1].
        generator (torch.Generator, optional): CPU generator for the draws; None = global RNG.
    """

    _axis = -2


# ----------------------------------------------------------------------------------------------
# Resizing and cropping


class Resize(Transform):
    """Resizes the image (bilinear), masks (nearest) and boxes (scaled by ``w'/w``, ``h'/h``).

    Args:
        size (int or tuple[int, int]): an int resizes the shorter side to ``size`` and the longer
            side to ``round(long * size / short)`` (aspect kept); a pair is the exact
            ``(height, width)``.
        antialias (bool): low-pass filter the image when downscaling.
        min_size (float): boxes whose width or height ends up below this many pixels are dropped
            (box rule in the module docstring). The default 0 keeps every box, because Resize is
            also used on evaluation data; non-finite and inverted boxes still go.

    A batch shares the output size (its images share the input size).
    """

    def __init__(self, size, *, antialias: bool = True, min_size: float = 0.0):
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            if size < 1:
                raise ValueError(f"size must be positive, got {size}")
            self.size: int | tuple[int, int] = int(size)
        else:
            self.size = F._check_size(size, "size")
        if not isinstance(antialias, bool):
            raise TypeError(f"antialias must be a bool, got {type(antialias).__name__}")
        self.antialias = antialias
        self.min_size, _ = _check_min_size(min_size, 0.0)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` an image of ``height x width`` is resized to."""
        if isinstance(self.size, tuple):
            return self.size
        short, long = min(height, width), max(height, width)
        new_long = max(1, int(round(long * self.size / short)))
        return (self.size, new_long) if height <= width else (new_long, self.size)

    def apply(self, images, targets, params):
        h0, w0 = images.shape[-2:]
        size = self.output_size(h0, w0)
        out = F.resize(images, size, antialias=self.antialias)
        out_targets = [
            _geometric_target(t, plane_fn=lambda x, fill: F.resize_mask(x, size),
                              boxes_fn=lambda b: F.resize_boxes(b, (h0, w0), size), size=size,
                              min_size=self.min_size)
            for t in targets
        ]
        return out, out_targets


def _crop_target(target, top: int, left: int, height: int, width: int, *, mask_fill, min_size, min_visibility):
    return _geometric_target(
        target, plane_fn=lambda x, fill: F.crop(x, top, left, height, width, fill=fill),
        boxes_fn=lambda b: F.translate_boxes(b, -left, -top), size=(height, width), mask_fill=mask_fill,
        min_size=min_size, min_visibility=min_visibility)


class RandomCrop(Transform):
    """Cuts a random window of a fixed size, after optional padding.

    The window is drawn uniformly among the integer positions inside the padded image. With
    ``pad_if_needed``, a side shorter than the window is padded on both sides by the missing
    amount, so the image lands at a random position inside the window. Pixels from the padding get
    ``fill`` (image) and ``mask_fill`` (mask; instance masks get 0). Boxes are shifted, clipped and
    filtered with ``min_size`` and ``min_visibility`` (box rule in the module docstring).

    Args:
        size (int or tuple[int, int]): window ``(height, width)``; an int gives a square.
        padding (int or sequence): border added first: an int, ``(left/right, top/bottom)`` or
            ``(left, top, right, bottom)``.
        pad_if_needed (bool): pad when the (padded) image is smaller than the window, instead of
            raising ``ValueError``.
        fill (number or sequence): image padding value in the image's dtype units, or one per channel.
        mask_fill (int): mask padding value (255 = ignore).
        min_size (float): minimum clipped box side in pixels.
        min_visibility (float): minimum visible fraction of a box's area, in [0, 1].
        generator (torch.Generator, optional): CPU generator; None = global RNG.

    Each image of a batch gets its own window (same size).
    """

    def __init__(self, size, *, padding=0, pad_if_needed: bool = False, fill=0, mask_fill: int = 255,
                 min_size: float = 1.0, min_visibility: float = 0.0, generator: torch.Generator | None = None):
        self.size = _check_out_size(size)
        self.padding = F._check_padding(padding)
        if not isinstance(pad_if_needed, bool):
            raise TypeError(f"pad_if_needed must be a bool, got {type(pad_if_needed).__name__}")
        self.pad_if_needed = pad_if_needed
        self.fill = _check_fill(fill, "fill")
        self.mask_fill = F._as_int(mask_fill, "mask_fill")
        self.min_size, self.min_visibility = _check_min_size(min_size, min_visibility)
        self.generator = _check_generator(generator)

    def _range(self, n: int, pad_lo: int, pad_hi: int, want: int, name: str) -> tuple[int, int]:
        """The first and last window start (in image coordinates) along one axis of length ``n``."""
        missing = max(want - (n + pad_lo + pad_hi), 0)
        if missing and not self.pad_if_needed:
            raise ValueError(f"RandomCrop size {self.size} is larger than the padded image "
                             f"({name} {n + pad_lo + pad_hi}); use pad_if_needed=True or a smaller size")
        return -(pad_lo + missing), n + pad_hi + missing - want

    def make_params(self, images, targets):
        h, w = images.shape[-2:]
        left_pad, top_pad, right_pad, bottom_pad = self.padding
        y0, y1 = self._range(h, top_pad, bottom_pad, self.size[0], "height")
        x0, x1 = self._range(w, left_pad, right_pad, self.size[1], "width")
        return [{"top": self._randint(y0, y1), "left": self._randint(x0, x1)} for _ in range(images.shape[0])]

    def apply(self, images, targets, params):
        _check_params(params, images, "RandomCrop")
        h, w = self.size
        out = _stack([F.crop(img, p["top"], p["left"], h, w, fill=self.fill) for img, p in zip(images, params)],
                     "RandomCrop")
        out_targets = [_crop_target(t, p["top"], p["left"], h, w, mask_fill=self.mask_fill, min_size=self.min_size,
                                    min_visibility=self.min_visibility) for t, p in zip(targets, params)]
        return out, out_targets


class RandomResizedCrop(Transform):
    """Cuts a window of random area and aspect ratio and resizes it to ``size``.

    Sampling (per image): up to 10 times, draw an area fraction uniformly in ``scale`` and an
    aspect ratio ``w / h`` log-uniformly in ``ratio``; the window is
    ``w = round(sqrt(area * ratio))``, ``h = round(sqrt(area / ratio))`` pixels and is accepted
    when it fits, at a uniform integer position. When no draw fits, the largest centred window
    whose aspect ratio lies in ``ratio`` is used. Then the window is resized to ``size`` (bilinear
    for the image, nearest for masks) and boxes are shifted, scaled, clipped and filtered.

    Args:
        size (int or tuple[int, int]): output ``(height, width)``; an int gives a square.
        scale (tuple[float, float]): range of the window area as a fraction of the image area,
            0 < min <= max.
        ratio (tuple[float, float]): range of the window aspect ratio ``width / height``,
            0 < min <= max.
        antialias (bool): low-pass filter when downscaling.
        min_size (float): minimum clipped box side in output pixels.
        min_visibility (float): minimum visible fraction of a box's area, in [0, 1].
        generator (torch.Generator, optional): CPU generator; None = global RNG.

    Each image of a batch gets its own window; the output size is shared.
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), *, antialias: bool = True,
                 min_size: float = 1.0, min_visibility: float = 0.0, generator: torch.Generator | None = None):
        self.size = _check_out_size(size)
        self.scale = _check_pair(scale, "scale", low=0, low_open=True)
        self.ratio = _check_pair(ratio, "ratio", low=0, low_open=True)
        if not isinstance(antialias, bool):
            raise TypeError(f"antialias must be a bool, got {type(antialias).__name__}")
        self.antialias = antialias
        self.min_size, self.min_visibility = _check_min_size(min_size, min_visibility)
        self.generator = _check_generator(generator)

    def _window(self, height: int, width: int) -> dict:
        area = height * width
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        for _ in range(10):
            u = self._rand(2).tolist()
            target_area = area * (self.scale[0] + (self.scale[1] - self.scale[0]) * u[0])
            aspect = math.exp(log_lo + (log_hi - log_lo) * u[1])
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return {"top": self._randint(0, height - h), "left": self._randint(0, width - w),
                        "height": h, "width": w}
        # Fallback: the whole image, narrowed to the closest allowed aspect ratio, centred.
        aspect = width / height
        if aspect < self.ratio[0]:
            w, h = width, max(1, int(round(width / self.ratio[0])))
        elif aspect > self.ratio[1]:
            w, h = max(1, int(round(height * self.ratio[1]))), height
        else:
            w, h = width, height
        return {"top": (height - h) // 2, "left": (width - w) // 2, "height": h, "width": w}

    def make_params(self, images, targets):
        h, w = images.shape[-2:]
        return [self._window(h, w) for _ in range(images.shape[0])]

    def apply(self, images, targets, params):
        _check_params(params, images, "RandomResizedCrop")
        size = self.size
        outs, out_targets = [], []
        for img, t, p in zip(images, targets, params):
            top, left, h, w = p["top"], p["left"], p["height"], p["width"]
            outs.append(F.resize(F.crop(img, top, left, h, w), size, antialias=self.antialias))
            out_targets.append(_geometric_target(
                t, plane_fn=lambda x, fill: F.resize_mask(F.crop(x, top, left, h, w, fill=fill), size),
                boxes_fn=lambda b: F.resize_boxes(F.translate_boxes(b, -left, -top), (h, w), size),
                size=size, min_size=self.min_size, min_visibility=self.min_visibility))
        return _stack(outs, "RandomResizedCrop"), out_targets


class RandomIoUCrop(Transform):
    """The SSD crop sampler: a random crop that overlaps at least one object by a drawn IoU.

    Draw an option from ``sampler_options``. ``1.0`` (or ``None``) keeps the original image.
    Otherwise try up to ``trials`` crops: width and height are ``uniform(min_scale, max_scale)``
    times the image's (truncated to pixels), the aspect ratio ``w / h`` must lie in
    ``[min_aspect_ratio, max_aspect_ratio]``, the position is uniform. A crop is accepted when
    some box has its centre strictly inside it and the largest IoU between the crop and those
    boxes is ``>= option``. The boxes whose centres lie inside are kept (with their per-box
    entries), shifted, clipped and filtered with ``min_size`` and ``min_visibility``; the others
    are dropped. When all ``trials`` fail, a new option is drawn; after 50 options without success
    the image is returned unchanged.

    An image with zero boxes is returned unchanged. The target must hold ``"boxes"``
    (``ValueError`` otherwise).

    Args:
        min_scale (float): smallest crop side as a fraction of the image side, in (0, 1].
        max_scale (float): largest, in [min_scale, 1].
        min_aspect_ratio (float): smallest crop ``width / height``, > 0.
        max_aspect_ratio (float): largest, >= min_aspect_ratio.
        sampler_options (sequence of float or None): minimum IoUs in [0, 1]; 1.0 or None means
            "no crop".
        trials (int): crops tried per option, >= 1.
        min_size (float): minimum clipped box side in pixels.
        min_visibility (float): minimum visible fraction of a box's area, in [0, 1].
        generator (torch.Generator, optional): CPU generator; None = global RNG.

    Crops of different images differ in size, so this transform takes single images (or batches
    of one): use it per sample in the dataset, before a :class:`Resize`.
    """

    def __init__(self, min_scale: float = 0.3, max_scale: float = 1.0, min_aspect_ratio: float = 0.5,
                 max_aspect_ratio: float = 2.0, sampler_options=(0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0),
                 trials: int = 40, *, min_size: float = 1.0, min_visibility: float = 0.0,
                 generator: torch.Generator | None = None):
        self.min_scale, self.max_scale = _check_pair((min_scale, max_scale), "(min_scale, max_scale)", low=0,
                                                     high=1, low_open=True)
        self.min_aspect_ratio, self.max_aspect_ratio = _check_pair(
            (min_aspect_ratio, max_aspect_ratio), "(min_aspect_ratio, max_aspect_ratio)", low=0, low_open=True)
        if isinstance(sampler_options, str) or not isinstance(sampler_options, Sequence) or not sampler_options:
            raise ValueError(f"sampler_options must be a non-empty sequence of IoUs in [0, 1] or None, "
                             f"got {sampler_options!r}")
        self.sampler_options = tuple(
            None if o is None else float(check_number(o, "sampler_options", low=0, high=1)) for o in sampler_options)
        trials = F._as_int(trials, "trials")
        if trials < 1:
            raise ValueError(f"trials must be >= 1, got {trials}")
        self.trials = trials
        self.min_size, self.min_visibility = _check_min_size(min_size, min_visibility)
        self.generator = _check_generator(generator)

    def _sample(self, boxes: Tensor, height: int, width: int) -> tuple[int, int, int, int] | None:
        """The first acceptable crop ``(top, left, height, width)``; ``boxes`` is float64 on the CPU."""
        cx = (boxes[:, 0] + boxes[:, 2]) / 2  # [N]
        cy = (boxes[:, 1] + boxes[:, 3]) / 2  # [N]
        options = self.sampler_options
        for _ in range(_IOU_CROP_ROUNDS):
            option = options[int(torch.randint(len(options), (1,), generator=self.generator))]
            if option is None or option >= 1.0:
                return None
            # All the trials of this option at once; the first acceptable one wins.
            u = self._rand(self.trials, 4).double()  # [T, 4]
            span = self.max_scale - self.min_scale
            w = (width * (self.min_scale + span * u[:, 0])).floor()  # [T]
            h = (height * (self.min_scale + span * u[:, 1])).floor()  # [T]
            left = ((width - w) * u[:, 2]).floor()  # [T]
            top = ((height - h) * u[:, 3]).floor()  # [T]
            aspect = w / h.clamp(min=1)
            ok = (w >= 1) & (h >= 1) & (aspect >= self.min_aspect_ratio) & (aspect <= self.max_aspect_ratio)
            inside = ((cx[None] > left[:, None]) & (cx[None] < (left + w)[:, None])
                      & (cy[None] > top[:, None]) & (cy[None] < (top + h)[:, None]))  # [T, N]
            windows = torch.stack([left, top, left + w, top + h], dim=1)  # [T, 4]
            iou = box_iou(windows, boxes).masked_fill(~inside, -1.0)  # [T, N]
            ok &= inside.any(dim=1) & (iou.amax(dim=1) >= option)
            if bool(ok.any()):
                i = int(ok.nonzero()[0, 0])
                return int(top[i]), int(left[i]), int(h[i]), int(w[i])
        return None

    def make_params(self, images, targets):
        if images.shape[0] != 1:
            raise ValueError(f"RandomIoUCrop takes one image at a time (crops differ in size), got a batch of "
                             f"{images.shape[0]}; apply it per sample before Resize")
        target = targets[0]
        if target is None or "boxes" not in target:
            raise ValueError("RandomIoUCrop needs a target dict with 'boxes', got "
                             + ("None" if target is None else f"keys {sorted(map(str, target))}"))
        boxes = target["boxes"].detach().to("cpu", torch.float64)
        if boxes.shape[0] == 0:
            return [{"crop": None}]
        good = boxes[torch.isfinite(boxes).all(dim=1) & (boxes[:, 2] >= boxes[:, 0]) & (boxes[:, 3] >= boxes[:, 1])]
        h, w = images.shape[-2:]
        return [{"crop": self._sample(good, h, w) if len(good) else None}]

    def apply(self, images, targets, params):
        _check_params(params, images, "RandomIoUCrop")
        outs, out_targets = [], []
        for img, t, p in zip(images, targets, params):
            if p["crop"] is None:
                outs.append(img)
                out_targets.append(_copy(t))
                continue
            top, left, h, w = p["crop"]
            outs.append(F.crop(img, top, left, h, w))
            if t is not None and "boxes" in t:
                b = t["boxes"]
                cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
                t = F.filter_target(t, (cx > left) & (cx < left + w) & (cy > top) & (cy < top + h))
            out_targets.append(_crop_target(t, top, left, h, w, mask_fill=255, min_size=self.min_size,
                                            min_visibility=self.min_visibility))
        return _stack(outs, "RandomIoUCrop"), out_targets


class RandomZoomOut(Transform):
    """The SSD "expand": with probability ``p``, places the image on a larger canvas of ``fill``.

    The canvas side is ``int(side * r)`` with ``r`` uniform in ``side_range``; the image goes at a
    uniform random integer position. Boxes are shifted (never clipped or dropped), masks are
    padded with ``mask_fill`` (instance masks with 0).

    Args:
        fill (number or sequence): canvas colour in the image's dtype units (for example the
            dataset mean, one value per channel).
        side_range (tuple[float, float]): range of the zoom factor ``r``, 1 <= min <= max.
        p (float): probability of zooming out, in [0, 1].
        mask_fill (int): mask value of the new pixels (255 = ignore).
        generator (torch.Generator, optional): CPU generator; None = global RNG.

    For a batch, whether to zoom and the factor are drawn once per call (the images must keep one
    size); the position is drawn per image.
    """

    def __init__(self, fill=0, side_range=(1.0, 4.0), p: float = 0.5, *, mask_fill: int = 255,
                 generator: torch.Generator | None = None):
        self.fill = _check_fill(fill, "fill")
        self.side_range = _check_pair(side_range, "side_range", low=1)
        self.p = _check_prob(p)
        self.mask_fill = F._as_int(mask_fill, "mask_fill")
        self.generator = _check_generator(generator)

    def make_params(self, images, targets):
        b, h, w = images.shape[0], images.shape[-2], images.shape[-1]
        if float(self._rand(1)) >= self.p:
            return [{"canvas": None} for _ in range(b)]
        lo, hi = self.side_range
        r = lo + (hi - lo) * float(self._rand(1))
        ch, cw = int(h * r), int(w * r)
        u = self._rand(b, 2).tolist()
        return [{"canvas": (ch, cw), "top": int((ch - h) * v[0]), "left": int((cw - w) * v[1])} for v in u]

    def apply(self, images, targets, params):
        _check_params(params, images, "RandomZoomOut")
        outs, out_targets = [], []
        for img, t, p in zip(images, targets, params):
            if p["canvas"] is None:
                outs.append(img)
                out_targets.append(_copy(t))
                continue
            (ch, cw), top, left = p["canvas"], p["top"], p["left"]
            outs.append(F.crop(img, -top, -left, ch, cw, fill=self.fill))
            out_targets.append(_geometric_target(
                t, plane_fn=lambda x, fill: F.crop(x, -top, -left, ch, cw, fill=fill),
                boxes_fn=lambda b: F.translate_boxes(b, left, top), size=(ch, cw), mask_fill=self.mask_fill,
                drop=False))
        return _stack(outs, "RandomZoomOut"), out_targets


# ----------------------------------------------------------------------------------------------
# Colour


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
    "brightness": (F._brightness, 3),
    "contrast": (F._contrast, 3),
    "saturation": (F._saturation, 3),
    "hue": (F._hue, 2),
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
        x = F._to_float(images)
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
        return F._from_float(x, images.dtype), [_copy(t) for t in targets]


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
        x = F._to_float(images)
        x = _per_image(x, [p["brightness"] for p in params], F._brightness)
        x = _per_image(x, [p["contrast"] if p["contrast_before"] else None for p in params], F._contrast)
        x = _per_image(x, [p["saturation"] for p in params], F._saturation)
        x = _per_image(x, [p["hue"] for p in params], F._hue, dims=2)
        x = _per_image(x, [None if p["contrast_before"] else p["contrast"] for p in params], F._contrast)
        sel = [i for i, p in enumerate(params) if p["permutation"] is not None]
        if sel:
            perms = torch.tensor([params[i]["permutation"] for i in sel], dtype=torch.int64)
            if len(sel) == len(params):
                x = F.permute_channels(x, perms)
            else:
                idx = torch.tensor(sel, device=x.device)
                x = x.clone()  # x may be the caller's float image itself
                x[idx] = F.permute_channels(x[idx], perms)
        return F._from_float(x, images.dtype), [_copy(t) for t in targets]


# ----------------------------------------------------------------------------------------------
# Dtype, normalization, box hygiene


class Normalize(Transform):
    """``(image - mean) / std`` per channel; float images only (``TypeError`` for uint8).

    Args:
        mean (number or sequence): per-channel mean.
        std (number or sequence): per-channel standard deviation, > 0.
    """

    def __init__(self, mean, std):
        self.mean = _check_fill(mean, "mean")
        self.std = _check_fill(std, "std")
        stds = self.std if isinstance(self.std, tuple) else (self.std,)
        if any(not float(s) > 0 for s in stds):
            raise ValueError(f"std must be > 0, got {std!r}")

    def apply(self, images, targets, params):
        return F.normalize(images, self.mean, self.std), [_copy(t) for t in targets]


class ToDtype(Transform):
    """Converts the image between ``uint8`` and floating point (see :func:`~.functional.to_dtype`).

    Args:
        dtype (torch.dtype): ``torch.uint8`` or a floating-point dtype.
        scale (bool): rescale between 0..255 and 0..1.
    """

    def __init__(self, dtype: torch.dtype, scale: bool = True):
        if not isinstance(dtype, torch.dtype) or (dtype != torch.uint8 and not dtype.is_floating_point):
            raise TypeError(f"dtype must be torch.uint8 or a floating-point torch.dtype, got {dtype!r}")
        if not isinstance(scale, bool):
            raise TypeError(f"scale must be a bool, got {type(scale).__name__}")
        self.dtype, self.scale = dtype, scale

    def apply(self, images, targets, params):
        return F.to_dtype(images, self.dtype, scale=self.scale), [_copy(t) for t in targets]


class SanitizeBoxes(Transform):
    """Clips boxes to the image and drops the bad ones with all their per-box entries.

    A box is dropped when a coordinate is not finite, when its clipped width or height is below
    ``min_size`` or is zero (degenerate boxes always go), or when it is inverted. Per-box entries
    follow the rule of :func:`~pixbox.data.transforms.functional.filter_target`. Targets that are
    None or hold no ``"boxes"`` pass through. The image is not changed.

    Args:
        min_size (float): minimum clipped width and height in pixels, >= 0.
    """

    def __init__(self, min_size: float = 1.0):
        self.min_size, _ = _check_min_size(min_size, 0.0)

    def apply(self, images, targets, params):
        size = (int(images.shape[-2]), int(images.shape[-1]))
        out_targets = []
        for t in targets:
            if t is None or "boxes" not in t:
                out_targets.append(_copy(t))
                continue
            boxes, keep = F.clip_and_filter_boxes(t["boxes"], size, min_size=self.min_size)
            nonzero = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # [K]
            out = F.filter_target(t, keep[nonzero])
            out["boxes"] = boxes[nonzero]
            out_targets.append(out)
        return images, out_targets


# ----------------------------------------------------------------------------------------------
# Containers


def _call(t: Callable, image, target):
    return t(image) if target is _MISSING else t(image, target)


class Compose:
    """Applies transforms one after the other.

    Args:
        transforms (sequence of callables): each called as ``t(image)`` or ``t(image, target)``
            like the transforms of this module.
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
