"""Pure tensor functions behind :mod:`pixbox.data.transforms`: geometry, boxes, colour, dtype.

Everything here is a plain function of its arguments (no randomness), written with torch ops
only, so it runs on any device and on one image or a batch. The functions live in private
modules by concept and are all imported here:

- ``_geometry``: :func:`hflip`, :func:`vflip`, :func:`crop`, :func:`center_crop`, :func:`pad`,
  :func:`resize`, :func:`resize_mask`;
- ``_boxes``: :func:`hflip_boxes`, :func:`vflip_boxes`, :func:`translate_boxes`,
  :func:`resize_boxes`, the box rule :func:`clip_and_filter_boxes` and :func:`filter_target`;
- ``_color``: :func:`adjust_brightness`, :func:`adjust_contrast`, :func:`adjust_saturation`,
  :func:`adjust_hue`, :func:`rgb_to_grayscale`, :func:`rgb_to_hsv`, :func:`hsv_to_rgb`,
  :func:`rgb_to_ycbcr`, :func:`ycbcr_to_rgb`, :func:`permute_channels`;
- ``_dtype``: :func:`to_dtype`, :func:`normalize`;
- ``_common``: the shared checks, :func:`get_size` and the float working copies.

Conventions:

- An *image* is a ``Tensor[C, H, W]`` or a batch ``Tensor[B, C, H, W]``, ``uint8`` (0..255) or
  floating point (0..1). Results keep the dtype and device; ``uint8`` results are rounded and
  clamped to 0..255. Colour functions compute in ``float32`` (``float64`` stays ``float64``).
- A *plane* is any ``Tensor[..., H, W]`` of any dtype: an image, a segmentation mask ``[H, W]``
  or instance masks ``[N, H, W]``. The geometric functions (:func:`hflip`, :func:`vflip`,
  :func:`crop`, :func:`pad`, :func:`resize_mask`) work on planes.
- Sizes are ``(height, width)``.
- Boxes are ``Tensor[N, 4]`` float ``xyxy`` in absolute pixels; a box ``[x1, y1, x2, y2]`` covers
  the pixels with ``x1 <= x < x2`` and ``y1 <= y < y2`` (pixel ``(x, y)`` spans
  ``[x, x + 1) x [y, y + 1)``). With this convention every box function below is exact: flipping
  an image and its boxes, or cropping both at an integer offset, gives boxes that frame the same
  pixels.

The box rule (:func:`clip_and_filter_boxes`), shared by every transform that can cut or shrink
boxes: boxes are clipped to the image; a box is dropped when a coordinate is not finite, when its
clipped width or height is below ``min_size`` pixels, or when its *visibility* (clipped area over
its area before clipping) is below ``min_visibility`` or is 0 (nothing left inside).
:func:`filter_target` then drops the matching rows of every per-box entry of a target dict (see
:data:`PER_BOX_KEYS`).

Example:
    >>> import torch
    >>> boxes = torch.tensor([[-5.0, 0.0, 5.0, 10.0], [2.0, 2.0, 4.0, 4.0]])
    >>> clip_and_filter_boxes(boxes, (8, 8), min_visibility=0.6)
    (tensor([[2., 2., 4., 4.]]), tensor([1]))
"""

from pixbox.data.transforms.functional._boxes import (
    PER_BOX_KEYS,
    clip_and_filter_boxes,
    filter_target,
    hflip_boxes,
    resize_boxes,
    translate_boxes,
    vflip_boxes,
)
from pixbox.data.transforms.functional._color import (
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    hsv_to_rgb,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
    permute_channels,
    rgb_to_grayscale,
    rgb_to_hsv,
)
from pixbox.data.transforms.functional._common import get_size
from pixbox.data.transforms.functional._dtype import normalize, to_dtype
from pixbox.data.transforms.functional._geometry import (
    center_crop,
    center_crop_offsets,
    crop,
    hflip,
    pad,
    resize,
    resize_mask,
    vflip,
)

__all__ = [
    "PER_BOX_KEYS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "center_crop",
    "center_crop_offsets",
    "clip_and_filter_boxes",
    "crop",
    "filter_target",
    "get_size",
    "hflip",
    "hflip_boxes",
    "hsv_to_rgb",
    "normalize",
    "pad",
    "permute_channels",
    "resize",
    "resize_boxes",
    "resize_mask",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "rgb_to_ycbcr",
    "to_dtype",
    "translate_boxes",
    "vflip",
    "vflip_boxes",
    "ycbcr_to_rgb",
]
