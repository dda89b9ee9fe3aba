"""Tests for pixbox.ops.conv: transposed convolution, kernel matrices and bilinear upsampling."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import reference as R
from pixbox.ops import bilinear_kernel, kernel_to_matrix, trans_conv, upsample_params

DTYPES = [torch.float32, torch.float64]
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def _out_size(n: int, k: int, stride: int, padding: int) -> int:
    return (n - 1) * stride + k - 2 * padding


# --------------------------------------------------------------------------------------------
# trans_conv: the book's examples


BOOK_X = [[0.0, 1.0], [2.0, 3.0]]


def test_trans_conv_book_basic(device):
    X = torch.tensor(BOOK_X, device=device)
    assert trans_conv(X, X).tolist() == [[0, 0, 1], [0, 4, 6], [4, 12, 9]]


def test_trans_conv_book_padding(device):
    X = torch.tensor(BOOK_X, device=device)
    assert trans_conv(X, X, padding=1).tolist() == [[4]]


def test_trans_conv_book_stride(device):
    X = torch.tensor(BOOK_X, device=device)
    assert trans_conv(X, X, stride=2).tolist() == [[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3], [4, 6, 6, 9]]


def test_trans_conv_book_as_4d(device):
    """The book's 2-D example through the [B, C_in, H, W] / [C_in, C_out, kh, kw] layout."""
    X = torch.tensor(BOOK_X, device=device).reshape(1, 1, 2, 2)
    out = trans_conv(X, X.reshape(1, 1, 2, 2), stride=2)
    assert out.shape == (1, 1, 4, 4) and out.device.type == device
    assert out[0, 0].tolist() == [[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3], [4, 6, 6, 9]]


# --------------------------------------------------------------------------------------------
# trans_conv against conv_transpose2d and the loop reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("padding", [0, 1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2, 3, 4])
def test_trans_conv_matches_conv_transpose2d(stride, padding, dtype, device):
    g = torch.Generator().manual_seed(100 * stride + 10 * padding + (dtype == torch.float64))
    kernels = [(1, 1), (2, 2), (3, 3), (2, 3), (4, 1), (5, 4)]
    checked = 0
    for n, (c_in, c_out, batch) in enumerate(itertools.product((1, 3, 5), (1, 3, 5), (1, 3))):
        kh, kw = kernels[n % len(kernels)]
        h, w = 2 + n % 5, 3 + n % 3
        X = torch.randn(batch, c_in, h, w, generator=g, dtype=dtype)
        K = torch.randn(c_in, c_out, kh, kw, generator=g, dtype=dtype)
        if _out_size(h, kh, stride, padding) <= 0 or _out_size(w, kw, stride, padding) <= 0:
            with pytest.raises(ValueError, match="padding"):
                trans_conv(X, K, stride=stride, padding=padding)
            continue
        out = trans_conv(X.to(device), K.to(device), stride=stride, padding=padding)
        expected = F.conv_transpose2d(X, K, stride=stride, padding=padding)  # on the CPU
        assert out.dtype == dtype and out.shape == expected.shape and out.device.type == device
        assert out.shape == (batch, c_out, _out_size(h, kh, stride, padding), _out_size(w, kw, stride, padding))
        torch.testing.assert_close(out.cpu(), expected, **TOL[dtype])
        checked += 1
    assert checked >= 4  # (stride 1, padding 3) empties 14 of the 18 configurations, the fewest


@pytest.mark.parametrize("seed", range(12))
def test_trans_conv_matches_loop_reference(seed, device):
    g = torch.Generator().manual_seed(seed)

    def rint(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    stride, kh, kw = rint(1, 4), rint(1, 5), rint(1, 5)
    h, w = rint(1, 5), rint(1, 5)
    padding = rint(0, (min(_out_size(h, kh, stride, 0), _out_size(w, kw, stride, 0)) - 1) // 2)
    X = torch.randn(rint(1, 3), rint(1, 4), h, w, generator=g, dtype=torch.float64)
    K = torch.randn(X.shape[1], rint(1, 4), kh, kw, generator=g, dtype=torch.float64)
    out = trans_conv(X.to(device), K.to(device), stride=stride, padding=padding)
    assert out.device.type == device
    torch.testing.assert_close(out.cpu(), R.trans_conv_loop(X, K, stride, padding), rtol=1e-12, atol=1e-12)


def test_trans_conv_ranks(device):
    """[H, W] and [C_in, H, W] inputs give outputs of the same rank, equal to the batched result."""
    g = torch.Generator().manual_seed(0)
    X = torch.randn(3, 4, 5, generator=g).to(device)
    K = torch.randn(3, 2, 3, 3, generator=g).to(device)
    batched = trans_conv(X[None], K, stride=2, padding=1)
    out3 = trans_conv(X, K, stride=2, padding=1)
    assert out3.shape == (2, 7, 9)
    torch.testing.assert_close(out3, batched[0])
    out2 = trans_conv(X[0], K[0, 0], stride=2, padding=1)
    assert out2.shape == (7, 9)
    torch.testing.assert_close(out2, trans_conv(X[:1], K[:1, :1], stride=2, padding=1)[0])
    # A [kh, kw] kernel also goes with a one-channel 3-D or 4-D input.
    torch.testing.assert_close(trans_conv(X[:1], K[0, 0]), trans_conv(X[:1], K[:1, :1]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_trans_conv_empty_batch(dtype, device):
    X = torch.zeros(0, 3, 4, 5, dtype=dtype, device=device)
    K = torch.ones(3, 2, 3, 2, dtype=dtype, device=device)
    out = trans_conv(X, K, stride=2, padding=1)
    assert out.shape == F.conv_transpose2d(X, K, stride=2, padding=1).shape == (0, 2, 7, 8)
    assert out.dtype == dtype and out.device.type == device


def test_trans_conv_device_and_dtype(device):
    X = torch.randn(2, 3, 4, 4, device=device, dtype=torch.float64)
    K = torch.randn(3, 2, 2, 2, device=device, dtype=torch.float64)
    out = trans_conv(X, K, stride=2)
    assert out.device == X.device and out.dtype == torch.float64
    torch.testing.assert_close(out, F.conv_transpose2d(X, K, stride=2))


def test_trans_conv_does_not_modify_inputs(device):
    X = torch.randn(1, 2, 3, 3, device=device)
    K = torch.randn(2, 2, 3, 3, device=device)
    x0, k0 = X.clone(), K.clone()
    trans_conv(X, K, stride=2, padding=1)
    assert torch.equal(X, x0) and torch.equal(K, k0)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1), (3, 0)])
def test_trans_conv_gradcheck(stride, padding, device):
    g = torch.Generator().manual_seed(stride)
    X = torch.randn(2, 2, 3, 4, generator=g, dtype=torch.float64).to(device).requires_grad_()
    K = torch.randn(2, 3, 3, 2, generator=g, dtype=torch.float64).to(device).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, k: trans_conv(x, k, stride=stride, padding=padding), (X, K))


def test_trans_conv_gradients_match_conv_transpose2d(device):
    g = torch.Generator().manual_seed(3)
    X = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    K = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, 2, 8, 8, generator=g, dtype=torch.float64)
    dX, dK = X.detach().to(device).requires_grad_(), K.detach().to(device).requires_grad_()
    gx, gk = torch.autograd.grad((trans_conv(dX, dK, 2, 1) * weights.to(device)).sum(), (dX, dK))
    ex, ek = torch.autograd.grad((F.conv_transpose2d(X, K, stride=2, padding=1) * weights).sum(), (X, K))  # CPU
    assert gx.device.type == gk.device.type == device
    torch.testing.assert_close(gx.cpu(), ex)
    torch.testing.assert_close(gk.cpu(), ek)


@pytest.mark.parametrize("kwargs,exc,match", [
    (dict(stride=0), ValueError, r"stride must be >= 1, got 0"),
    (dict(stride=1.5), TypeError, r"stride must be an int"),
    (dict(stride=True), TypeError, r"stride must be an int"),
    (dict(padding=-1), ValueError, r"padding must be >= 0, got -1"),
    (dict(padding=1.0), TypeError, r"padding must be an int"),
    (dict(padding=2), ValueError, r"padding must be less than half"),
])
def test_trans_conv_bad_parameters(kwargs, exc, match):
    X = torch.ones(1, 1, 2, 2)
    K = torch.ones(1, 1, 2, 2)
    with pytest.raises(exc, match=match):
        trans_conv(X, K, **kwargs)


def test_trans_conv_bad_tensors():
    X = torch.ones(1, 2, 3, 3)
    K = torch.ones(2, 4, 2, 2)
    with pytest.raises(ValueError, match=r"K must have C_in = 2 input channels"):
        trans_conv(X, torch.ones(3, 4, 2, 2))
    with pytest.raises(TypeError, match=r"X and K must have the same dtype"):
        trans_conv(X, K.double())
    with pytest.raises(TypeError, match=r"X must be a floating-point tensor, got dtype torch.int64"):
        trans_conv(X.long(), K)
    with pytest.raises(TypeError, match=r"X must be a torch.Tensor, got list"):
        trans_conv([[1.0]], K)
    with pytest.raises(ValueError, match=r"X must have shape \[B, C_in, H, W\]"):
        trans_conv(torch.ones(3), K)
    with pytest.raises(ValueError, match=r"K must have shape \[C_in, C_out, kh, kw\] or \[kh, kw\], got \(2, 4, 2\)"):
        trans_conv(X, torch.ones(2, 4, 2))
    with pytest.raises(ValueError, match=r"K must have C_out = 1 when X is a 2-D"):
        trans_conv(torch.ones(3, 3), torch.ones(1, 2, 2, 2))
    with pytest.raises(ValueError, match=r"X must have a height and width >= 1"):
        trans_conv(torch.ones(1, 2, 0, 3), K)
    with pytest.raises(ValueError, match=r"K must have every size >= 1"):
        trans_conv(X, torch.ones(2, 0, 2, 2))


# --------------------------------------------------------------------------------------------
# kernel_to_matrix: convolution as a matrix product (the book's 3x3 example)


def test_kernel_to_matrix_book_example(device):
    K = torch.tensor([[1.0, 2.0], [3.0, 4.0]], device=device)
    W = kernel_to_matrix(K, (3, 3))
    assert W.device.type == device
    assert W.tolist() == [
        [1, 2, 0, 3, 4, 0, 0, 0, 0],
        [0, 1, 2, 0, 3, 4, 0, 0, 0],
        [0, 0, 0, 1, 2, 0, 3, 4, 0],
        [0, 0, 0, 0, 1, 2, 0, 3, 4],
    ]
    X = torch.arange(9.0, device=device).reshape(3, 3)
    Y = F.conv2d(X[None, None], K[None, None])[0, 0]
    assert Y.tolist() == [[27, 37], [57, 67]]  # 0*1 + 1*2 + 3*3 + 4*4 = 27, ...
    assert torch.equal(Y, (W @ X.flatten()).reshape(2, 2))
    Z = trans_conv(Y, K)
    assert Z.shape == (3, 3)
    assert torch.equal(Z, (W.T @ Y.flatten()).reshape(3, 3))


@pytest.mark.parametrize("shape,kshape", [((4, 5), (2, 3)), ((3, 3), (3, 3)), ((5, 2), (1, 1)), ((6, 4), (3, 2))])
def test_kernel_to_matrix_random(shape, kshape, device):
    g = torch.Generator().manual_seed(sum(shape) + sum(kshape))
    K = torch.randn(*kshape, generator=g, dtype=torch.float64).to(device)
    X = torch.randn(*shape, generator=g, dtype=torch.float64).to(device)
    W = kernel_to_matrix(K, shape)
    ho, wo = shape[0] - kshape[0] + 1, shape[1] - kshape[1] + 1
    assert W.shape == (ho * wo, shape[0] * shape[1]) and W.dtype == torch.float64 and W.device.type == device
    assert int((W != 0).sum()) == ho * wo * int((K != 0).sum())  # one kernel copy per output pixel
    torch.testing.assert_close((W @ X.flatten()).reshape(ho, wo), F.conv2d(X[None, None], K[None, None])[0, 0])
    Y = torch.randn(ho, wo, generator=g, dtype=torch.float64).to(device)
    torch.testing.assert_close((W.T @ Y.flatten()).reshape(shape), trans_conv(Y, K))


def test_kernel_to_matrix_errors():
    K = torch.ones(2, 2)
    with pytest.raises(ValueError, match=r"input_shape\[0\] must be >= 2, got 1"):
        kernel_to_matrix(K, (1, 3))
    with pytest.raises(TypeError, match=r"input_shape must be a pair"):
        kernel_to_matrix(K, 3)
    with pytest.raises(TypeError, match=r"input_shape\[1\] must be an int"):
        kernel_to_matrix(K, (3, 3.0))
    with pytest.raises(ValueError, match=r"K must have shape \[kh, kw\]"):
        kernel_to_matrix(torch.ones(1, 2, 2), (3, 3))
    with pytest.raises(TypeError, match=r"K must be a torch.Tensor"):
        kernel_to_matrix([[1.0]], (3, 3))


# --------------------------------------------------------------------------------------------
# upsample_params


def test_upsample_params_golden():
    assert upsample_params(32) == (64, 32, 16)
    assert upsample_params(2) == (4, 2, 1)
    assert upsample_params(1) == (1, 1, 0)
    assert upsample_params(3) == (5, 3, 1)
    assert upsample_params(8) == (16, 8, 4)


@pytest.mark.parametrize("scale", [1, 2, 3, 4, 5, 6, 7, 8, 16, 32])
def test_upsample_params_exact_scale(scale):
    k, s, p = upsample_params(scale)
    assert s == scale
    weight = torch.zeros(1, 1, k, k)
    for h, w in [(1, 1), (1, 4), (2, 3), (5, 7), (10, 1)]:
        out = F.conv_transpose2d(torch.zeros(1, 1, h, w), weight, stride=s, padding=p)
        assert out.shape[-2:] == (h * scale, w * scale)


@pytest.mark.parametrize("scale,exc,match", [
    (0, ValueError, r"scale must be >= 1, got 0"),
    (-2, ValueError, r"scale must be >= 1, got -2"),
    (2.0, TypeError, r"scale must be an int, got float"),
    (True, TypeError, r"scale must be an int, got bool"),
])
def test_upsample_params_errors(scale, exc, match):
    with pytest.raises(exc, match=match):
        upsample_params(scale)


# --------------------------------------------------------------------------------------------
# bilinear_kernel


def test_bilinear_kernel_golden(device):
    # kernel 4: factor 2, center 1.5, tent [0.25, 0.75, 0.75, 0.25]
    tent = torch.tensor([0.25, 0.75, 0.75, 0.25])
    w = bilinear_kernel(1, 1, 4, device=device)
    assert w.shape == (1, 1, 4, 4) and w.dtype == torch.float32 and w.device.type == device
    assert torch.equal(w[0, 0].cpu(), tent[:, None] * tent[None, :])
    # kernel 3: factor 2, center 1, tent [0.5, 1, 0.5]
    tent3 = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
    w3 = bilinear_kernel(1, 1, 3, dtype=torch.float64, device=device)
    assert torch.equal(w3[0, 0].cpu(), tent3[:, None] * tent3[None, :])
    assert bilinear_kernel(1, 1, 1, device=device).tolist() == [[[[1.0]]]]


@pytest.mark.parametrize("c_in,c_out", [(3, 3), (2, 5), (4, 1)])
def test_bilinear_kernel_only_channel_diagonal(c_in, c_out, device):
    w = bilinear_kernel(c_in, c_out, 6, device=device)
    assert w.shape == (c_in, c_out, 6, 6) and w.device.type == device
    filt = bilinear_kernel(1, 1, 6, device=device)[0, 0]
    for i in range(c_in):
        for o in range(c_out):
            if i == o:
                assert torch.equal(w[i, o], filt)
            else:
                assert torch.count_nonzero(w[i, o]) == 0


@pytest.mark.parametrize("scale", [2, 4, 8, 32, 3, 5])
def test_bilinear_kernel_is_bilinear_interpolation(scale, device):
    """Away from the borders the layer equals F.interpolate(bilinear, align_corners=False).

    Output pixel ``y`` interpolates input coordinate ``(y + 0.5) / scale - 0.5``; it lies
    within ``[0, H - 1]`` (both neighbours exist, nothing is clamped) exactly for
    ``scale // 2 <= y < H * scale - scale // 2``. That interior is compared; the border rows
    and columns outside it do differ (interpolation clamps, the convolution sees zeros).
    """
    k, s, p = upsample_params(scale)
    c = 3
    layer = torch.nn.ConvTranspose2d(c, c, k, s, p, bias=False, device=device)
    with torch.no_grad():
        layer.weight.copy_(bilinear_kernel(c, c, k, device=device))
    g = torch.Generator().manual_seed(scale)
    x = (torch.rand(2, c, 5, 6, generator=g) + 0.5).to(device)  # positive: the borders visibly differ
    with torch.no_grad():
        out = layer(x)
    ref = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
    assert out.shape == ref.shape == (2, c, 5 * scale, 6 * scale)
    m = scale // 2
    interior = (slice(None), slice(None), slice(m, out.shape[2] - m), slice(m, out.shape[3] - m))
    torch.testing.assert_close(out[interior], ref[interior], rtol=0, atol=1e-5)
    if m > 0:  # the margin is needed: the first and last rows/columns differ
        for border in (out[:, :, 0] - ref[:, :, 0], out[:, :, -1] - ref[:, :, -1],
                       out[..., 0] - ref[..., 0], out[..., -1] - ref[..., -1]):
            assert border.abs().min() > 1e-3
    # The same through trans_conv.
    torch.testing.assert_close(trans_conv(x, layer.weight.detach(), s, p), out, rtol=1e-5, atol=1e-5)


def test_bilinear_kernel_dtype_device(device):
    w = bilinear_kernel(2, 2, 4, dtype=torch.float64, device=device)
    assert w.dtype == torch.float64 and w.device.type == torch.device(device).type
    torch.testing.assert_close(w.float().cpu(), bilinear_kernel(2, 2, 4))


@pytest.mark.parametrize("args,kwargs,exc,match", [
    ((0, 1, 4), {}, ValueError, r"in_channels must be >= 1, got 0"),
    ((1, 0, 4), {}, ValueError, r"out_channels must be >= 1, got 0"),
    ((1, 1, 0), {}, ValueError, r"kernel_size must be >= 1, got 0"),
    ((1, 1, 4.0), {}, TypeError, r"kernel_size must be an int"),
    ((1, 1, 4), {"dtype": torch.int64}, TypeError, r"dtype must be a floating-point torch.dtype"),
])
def test_bilinear_kernel_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        bilinear_kernel(*args, **kwargs)
