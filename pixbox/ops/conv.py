"""Transposed convolution from scratch, and the upsampling helpers of fully convolutional networks.

A transposed convolution (D2L, "Transposed Convolution") broadcasts every input element through
the kernel: element ``X[i, j]`` scales the whole kernel, and the scaled kernel is added into the
output with its top-left corner at ``(i * stride, j * stride)``. Overlapping contributions add
up. ``padding`` then removes that many rows and columns from each border of the result, so a
``H x W`` input and a ``kh x kw`` kernel give::

    H_out = (H - 1) * stride + kh - 2 * padding,   W_out = (W - 1) * stride + kw - 2 * padding

which is exactly ``torch.nn.functional.conv_transpose2d(X, K, stride=stride, padding=padding)``
(with the same weight layout ``[C_in, C_out, kh, kw]``; a multi-channel input element scales
the ``[C_out, kh, kw]`` slab of its channel, and the channels are summed).

Why "transposed": a stride-1 unpadded convolution (cross-correlation) of an ``H x W`` input is a
linear map, so it is the product with a sparse matrix ``W`` (:func:`kernel_to_matrix`); the
transposed convolution with the same kernel is the product with ``W.T``, mapping the
convolution's output shape back to its input shape.

Fully convolutional networks (D2L, "Fully Convolutional Networks") upsample feature maps by an
integer ``scale`` with a transposed convolution whose kernel, stride and padding come from
:func:`upsample_params`, initialised with :func:`bilinear_kernel` so that it starts out as
bilinear interpolation.

Example:
    >>> X = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    >>> trans_conv(X, X).tolist()
    [[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]]
    >>> upsample_params(32)
    (64, 32, 16)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from pixbox._checks import check_int, check_same_device, check_tensor

__all__ = ["trans_conv", "kernel_to_matrix", "upsample_params", "bilinear_kernel"]


def _check_float_tensor(x, name: str, ranks: tuple[int, ...], desc: str) -> Tensor:
    check_tensor(x, name)
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() not in ranks:
        raise ValueError(f"{name} must have shape {desc}, got {tuple(x.shape)}")
    return x


def trans_conv(X: Tensor, K: Tensor, stride: int = 1, padding: int = 0) -> Tensor:
    """Batched multi-channel 2-D transposed convolution, written as D2L explains it.

    Each input element scales the kernel and the scaled kernel is added into the output at
    ``(i * stride, j * stride)``; then ``padding`` rows and columns are cropped from every border
    (see the module docstring). Equal to ``F.conv_transpose2d(X, K, stride=stride,
    padding=padding)`` up to floating-point rounding, and differentiable in ``X`` and ``K``.

    It is vectorised over the pixels: the kernel is cut into ``stride x stride`` blocks (zero
    padded to a multiple of ``stride``), and for each block the scaled copies of all the input
    elements tile the output without overlapping, so one product per block places them all.
    The Python loop runs over the ``ceil(kh / stride) * ceil(kw / stride)`` blocks only.

    Args:
        X (Tensor[B, C_in, H, W], Tensor[C_in, H, W] or Tensor[H, W]): floating point input,
            ``H, W >= 1``; ``B`` may be 0. The 2-D form is the book's single-channel example.
        K (Tensor[C_in, C_out, kh, kw] or Tensor[kh, kw]): kernel in ``conv_transpose2d``'s weight
            layout, same dtype and device as ``X``, every size >= 1. ``[kh, kw]`` means
            ``C_in = C_out = 1``.
        stride (int): >= 1, the step in the output between the kernel copies of neighbouring
            input elements.
        padding (int): >= 0, rows/columns removed from each border of the output; the output
            must stay non-empty.

    Returns:
        Tensor[B, C_out, H_out, W_out] (or ``[C_out, H_out, W_out]`` / ``[H_out, W_out]``, the
        rank of ``X``): ``H_out = (H - 1) * stride + kh - 2 * padding`` and likewise ``W_out``;
        ``X``'s dtype and device.

    Raises:
        TypeError: non-tensor or non-floating inputs, different dtypes, non-int stride/padding.
        ValueError: bad ranks, channel mismatch, stride < 1, padding < 0 or an empty output.
    """
    _check_float_tensor(X, "X", (2, 3, 4), "[B, C_in, H, W], [C_in, H, W] or [H, W]")
    _check_float_tensor(K, "K", (2, 4), "[C_in, C_out, kh, kw] or [kh, kw]")
    if X.dtype != K.dtype:
        raise TypeError(f"X and K must have the same dtype, got {X.dtype} and {K.dtype}")
    check_same_device("X", X, "K", K)
    s = check_int(stride, "stride", low=1)
    p = check_int(padding, "padding", low=0)

    rank = X.dim()
    x = X.reshape((1,) * (4 - rank) + tuple(X.shape))  # [B, C_in, H, W]
    k = K if K.dim() == 4 else K[None, None]  # [C_in, C_out, kh, kw]
    if k.numel() == 0:
        raise ValueError(f"K must have every size >= 1, got shape {tuple(K.shape)}")
    b, c_in, h, w = x.shape
    _, c_out, kh, kw = k.shape
    if h < 1 or w < 1:
        raise ValueError(f"X must have a height and width >= 1, got shape {tuple(X.shape)}")
    if c_in != k.shape[0]:
        raise ValueError(f"K must have C_in = {c_in} input channels (X has shape {tuple(X.shape)}), "
                         f"got K of shape {tuple(K.shape)}")
    if rank == 2 and c_out != 1:
        raise ValueError(f"K must have C_out = 1 when X is a 2-D [H, W] map (the output is 2-D too), "
                         f"got K of shape {tuple(K.shape)}")
    full_h, full_w = (h - 1) * s + kh, (w - 1) * s + kw
    if full_h <= 2 * p or full_w <= 2 * p:
        raise ValueError(f"padding must be less than half the uncropped output size "
                         f"{full_h} x {full_w} = (H - 1) * stride + kh x (W - 1) * stride + kw, "
                         f"got padding={p}, which leaves nothing")

    qh, qw = -(-kh // s), -(-kw // s)  # kernel blocks of stride x stride along each axis
    k = F.pad(k, (0, qw * s - kw, 0, qh * s - kh))  # [C_in, C_out, qh * s, qw * s]
    out = x.new_zeros(b, c_out, (h + qh - 1) * s, (w + qw - 1) * s)  # room for every block
    for u in range(qh):
        for v in range(qw):
            block = k[:, :, u * s:(u + 1) * s, v * s:(v + 1) * s]  # [C_in, C_out, s, s]
            # Input element (i, j) scales the block, which lands at rows i*s + u*s + r, columns
            # j*s + v*s + t: the copies tile an (h*s) x (w*s) window without overlap.
            tiles = torch.einsum("bcij,cort->boirjt", x, block)  # [B, C_out, H, s, W, s]
            out[:, :, u * s:u * s + h * s, v * s:v * s + w * s] += tiles.reshape(b, c_out, h * s, w * s)
    out = out[:, :, p:full_h - p, p:full_w - p]  # [B, C_out, H_out, W_out]
    return out.reshape(tuple(out.shape[4 - rank:])) if rank < 4 else out


def kernel_to_matrix(K: Tensor, input_shape: tuple[int, int]) -> Tensor:
    """The sparse weight matrix of a plain 2-D convolution, as in D2L's ``kernel2matrix``.

    A stride-1, unpadded cross-correlation of an ``H x W`` input with a ``kh x kw`` kernel has an
    ``(H - kh + 1) x (W - kw + 1)`` output, and is the linear map ``y = W @ x.flatten()``: row
    ``r = i * W_out + j`` of ``W`` holds ``K[a, b]`` in column ``(i + a) * W + (j + b)`` and zeros
    elsewhere. The transposed convolution with the same kernel is ``W.T``::

        conv2d(X, K) == (W @ X.flatten()).reshape(H_out, W_out)
        trans_conv(Y, K) == (W.T @ Y.flatten()).reshape(H, W)

    Args:
        K (Tensor[kh, kw]): the kernel, any dtype.
        input_shape (tuple[int, int]): ``(H, W)`` of the convolution's input, ``H >= kh``,
            ``W >= kw``.

    Returns:
        Tensor[H_out * W_out, H * W]: ``K``'s dtype and device, differentiable in ``K``.

    Example:
        >>> kernel_to_matrix(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), (3, 3))[0].tolist()
        [1.0, 2.0, 0.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]
    """
    check_tensor(K, "K")
    if K.dim() != 2 or K.numel() == 0:
        raise ValueError(f"K must have shape [kh, kw] with kh, kw >= 1, got {tuple(K.shape)}")
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__len__") or len(input_shape) != 2:
        raise TypeError(f"input_shape must be a pair (H, W), got {input_shape!r}")
    kh, kw = K.shape
    h = check_int(input_shape[0], "input_shape[0]", low=kh)
    w = check_int(input_shape[1], "input_shape[1]", low=kw)
    ho, wo = h - kh + 1, w - kw + 1
    dev = K.device
    out_i = torch.arange(ho, device=dev)[:, None, None, None]  # [Ho, 1, 1, 1]
    out_j = torch.arange(wo, device=dev)[None, :, None, None]  # [1, Wo, 1, 1]
    a = torch.arange(kh, device=dev)[None, None, :, None]  # [1, 1, kh, 1]
    c = torch.arange(kw, device=dev)[None, None, None, :]  # [1, 1, 1, kw]
    rows = (out_i * wo + out_j).expand(ho, wo, kh, kw)  # [Ho, Wo, kh, kw]
    cols = (out_i + a) * w + (out_j + c)  # [Ho, Wo, kh, kw]
    values = K[None, None].expand(ho, wo, kh, kw)
    weight = K.new_zeros(ho * wo, h * w)
    return weight.index_put((rows.reshape(-1), cols.reshape(-1)), values.reshape(-1))


def upsample_params(scale: int) -> tuple[int, int, int]:
    """``(kernel_size, stride, padding)`` of a transposed convolution that multiplies sizes by ``scale``.

    The output size is ``(n - 1) * stride + kernel_size - 2 * padding``; with ``stride = scale``
    it equals ``n * scale`` for every ``n >= 1`` exactly when ``kernel_size - 2 * padding ==
    scale``. The choice here:

    - even ``scale``: ``(2 * scale, scale, scale // 2)``, D2L's FCN setting, e.g. ``(64, 32, 16)``
      for 32 and ``(4, 2, 1)`` for 2;
    - odd ``scale``: ``(2 * scale - 1, scale, scale // 2)``, e.g. ``(5, 3, 1)`` for 3 and
      ``(1, 1, 0)`` for 1 (an odd kernel, since ``kernel_size - scale`` must be even).

    Either way the kernel spans two input pixels (the reach of bilinear interpolation), and
    :func:`bilinear_kernel` of that size makes the layer interpolate bilinearly
    (``align_corners=False``) away from the borders.

    Args:
        scale (int): the upsampling factor, >= 1.

    Returns:
        tuple[int, int, int]: ``(kernel_size, stride, padding)``.
    """
    s = check_int(scale, "scale", low=1)
    return 2 * s - s % 2, s, s // 2


def bilinear_kernel(in_channels: int, out_channels: int, kernel_size: int, *,
                    dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """D2L's bilinear upsampling kernel, a weight for ``ConvTranspose2d(in, out, kernel_size, ...)``.

    With ``factor = (kernel_size + 1) // 2`` and ``center = factor - 1`` (odd size) or
    ``factor - 0.5`` (even size), the filter is the outer product of the tent
    ``f[a] = 1 - |a - center| / factor`` with itself. Channel ``i`` maps to channel ``i`` only:
    ``weight[i, i] = filter`` for ``i < min(in_channels, out_channels)``, every other entry is 0.
    With the parameters of :func:`upsample_params` the layer then equals
    ``F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)`` except within
    ``scale // 2`` pixels of the borders (where interpolation clamps and the convolution sees
    zeros).

    This function has no tensor input, so it takes ``dtype`` and ``device`` as arguments.

    Args:
        in_channels (int): >= 1.
        out_channels (int): >= 1.
        kernel_size (int): >= 1.
        dtype (torch.dtype): floating point, float32 by default.
        device (torch.device or str, optional): the CPU by default.

    Returns:
        Tensor[in_channels, out_channels, kernel_size, kernel_size].
    """
    c_in = check_int(in_channels, "in_channels", low=1)
    c_out = check_int(out_channels, "out_channels", low=1)
    k = check_int(kernel_size, "kernel_size", low=1)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float64, device=device)
    tent = 1 - (og - center).abs() / factor  # [k]
    filt = (tent[:, None] * tent[None, :]).to(dtype)  # [k, k]
    weight = torch.zeros(c_in, c_out, k, k, dtype=dtype, device=device)
    diag = torch.arange(min(c_in, c_out), device=weight.device)
    weight[diag, diag] = filt
    return weight
