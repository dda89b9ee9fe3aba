"""Geometric transforms: flips, resizing, crops (centre, random, resized, SSD IoU) and zoom-out.

Each moves the image, its masks and its boxes together; crops and :class:`Resize` apply the box
rule (see :mod:`pixbox.data.transforms`), flips and :class:`RandomZoomOut` never drop a box.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_number
from pixbox.data.transforms import functional as F
from pixbox.data.transforms._base import (
    Transform,
    _check_fill,
    _check_generator,
    _check_min_size,
    _check_out_size,
    _check_pair,
    _check_params,
    _check_prob,
    _copy,
    _geometric_target,
    _stack,
)
from pixbox.data.transforms.functional._common import _as_int, _check_size
from pixbox.data.transforms.functional._geometry import _check_padding
from pixbox.ops.boxes import box_iou

__all__ = [
    "CenterCrop",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomIoUCrop",
    "RandomResizedCrop",
    "RandomVerticalFlip",
    "RandomZoomOut",
    "Resize",
]

# RandomIoUCrop draws a new IoU option when `trials` crops fail; after this many options without
# success it gives up and returns the image unchanged, so that it always terminates.
_IOU_CROP_ROUNDS = 50


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
            (box rule in :mod:`pixbox.data.transforms`). The default 0 keeps every box, because
            Resize is also used on evaluation data; non-finite and inverted boxes still go.

    A batch shares the output size (its images share the input size).
    """

    def __init__(self, size, *, antialias: bool = True, min_size: float = 0.0):
        if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
            if size < 1:
                raise ValueError(f"size must be positive, got {size}")
            self.size: int | tuple[int, int] = int(size)
        else:
            self.size = _check_size(size, "size")
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


def _crop_batch(images: Tensor, targets: list, params: list[dict], size: tuple[int, int], *, fill, mask_fill,
                min_size: float, min_visibility: float, name: str) -> tuple[Tensor, list]:
    """Crops each image and target at its own ``params[i]["top"], ["left"]`` with a shared ``size``."""
    _check_params(params, images, name)
    h, w = size
    if all(p["top"] == params[0]["top"] and p["left"] == params[0]["left"] for p in params):
        out = F.crop(images, params[0]["top"], params[0]["left"], h, w, fill=fill)  # one window: one call
    else:
        out = _stack([F.crop(img, p["top"], p["left"], h, w, fill=fill) for img, p in zip(images, params)], name)
    out_targets = [_crop_target(t, p["top"], p["left"], h, w, mask_fill=mask_fill, min_size=min_size,
                                min_visibility=min_visibility) for t, p in zip(targets, params)]
    return out, out_targets


class CenterCrop(Transform):
    """Cuts the centred window of a fixed size, padding with ``fill`` where the image is smaller.

    The window starts at ``top = (H - h) // 2``, ``left = (W - w) // 2`` when the image is larger,
    and at ``-((h - H) // 2)``, ``-((w - W) // 2)`` when it is smaller (rounded towards zero, see
    :func:`~pixbox.data.transforms.functional.center_crop_offsets`): an odd leftover row or
    column is cut from, or padded at, the bottom/right. The image is padded with ``fill``, the
    mask with ``mask_fill`` and instance masks with 0. Boxes are shifted, clipped and filtered
    with ``min_size`` and ``min_visibility`` (box rule in :mod:`pixbox.data.transforms`); padding
    alone never drops a box.

    Args:
        size (int or tuple[int, int]): window ``(height, width)``; an int gives a square.
        fill (number or sequence): image padding value in the image's dtype units, or one per
            channel.
        mask_fill (int): mask padding value (255 = ignore).
        min_size (float): minimum clipped box side in pixels.
        min_visibility (float): minimum visible fraction of a box's area, in [0, 1].

    Deterministic; a batch shares the window.

    Example:
        >>> import torch
        >>> image = torch.arange(20, dtype=torch.uint8).view(1, 4, 5)
        >>> CenterCrop((2, 2))(image)[0].tolist()
        [[6, 7], [11, 12]]
    """

    def __init__(self, size, *, fill=0, mask_fill: int = 255, min_size: float = 1.0, min_visibility: float = 0.0):
        self.size = _check_out_size(size)
        self.fill = _check_fill(fill, "fill")
        self.mask_fill = _as_int(mask_fill, "mask_fill")
        self.min_size, self.min_visibility = _check_min_size(min_size, min_visibility)

    def make_params(self, images, targets):
        top, left = F.center_crop_offsets(tuple(images.shape[-2:]), self.size)
        return [{"top": top, "left": left} for _ in range(images.shape[0])]

    def apply(self, images, targets, params):
        return _crop_batch(images, targets, params, self.size, fill=self.fill, mask_fill=self.mask_fill,
                           min_size=self.min_size, min_visibility=self.min_visibility, name="CenterCrop")


class RandomCrop(Transform):
    """Cuts a random window of a fixed size, after optional padding.

    The window is drawn uniformly among the integer positions inside the padded image. With
    ``pad_if_needed``, a side shorter than the window is padded on both sides by the missing
    amount, so the image lands at a random position inside the window. Pixels from the padding get
    ``fill`` (image) and ``mask_fill`` (mask; instance masks get 0). Boxes are shifted, clipped and
    filtered with ``min_size`` and ``min_visibility`` (box rule in :mod:`pixbox.data.transforms`).

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
        self.padding = _check_padding(padding)
        if not isinstance(pad_if_needed, bool):
            raise TypeError(f"pad_if_needed must be a bool, got {type(pad_if_needed).__name__}")
        self.pad_if_needed = pad_if_needed
        self.fill = _check_fill(fill, "fill")
        self.mask_fill = _as_int(mask_fill, "mask_fill")
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
        return _crop_batch(images, targets, params, self.size, fill=self.fill, mask_fill=self.mask_fill,
                           min_size=self.min_size, min_visibility=self.min_visibility, name="RandomCrop")


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
        trials = _as_int(trials, "trials")
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
        self.mask_fill = _as_int(mask_fill, "mask_fill")
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
