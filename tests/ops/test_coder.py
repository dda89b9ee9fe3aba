"""Tests for pixbox.ops.coder: offset encoding and decoding of boxes against anchors."""

from __future__ import annotations

import math

import pytest
import torch

import reference as R
from pixbox.ops import BoxCoder, decode_boxes, encode_boxes

DTYPES = [torch.float32, torch.float64]
MEANS_STDS = [
    ((0.0, 0.0, 0.0, 0.0), (0.1, 0.1, 0.2, 0.2)),
    ((0.1, -0.2, 0.05, 0.3), (0.5, 0.25, 1.0, 2.0)),
    ((0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)),
]


def positive_boxes(g: torch.Generator, n: int, scale: float = 10.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale + 0.1
    return torch.cat([xy, xy + wh], dim=1)


# --------------------------------------------------------------------------------------------
# golden values


def test_encode_golden(device):
    anchors = torch.tensor([[0.0, 0, 2, 2]], device=device)
    boxes = torch.tensor([[1.0, 1, 3, 5]], device=device)
    # centres (1, 1) -> (2, 3), sizes (2, 2) -> (2, 4); stds 0.1, 0.1, 0.2, 0.2.
    expected = torch.tensor([[5.0, 10.0, 0.0, math.log(2) / 0.2]], device=device)
    torch.testing.assert_close(encode_boxes(anchors, boxes), expected)
    torch.testing.assert_close(decode_boxes(anchors, expected), boxes)
    # Zero offsets give the anchor back.
    assert torch.equal(decode_boxes(anchors, torch.zeros(1, 4, device=device)), anchors)


# --------------------------------------------------------------------------------------------
# against the reference


@pytest.mark.parametrize("n", [0, 1, 25])
@pytest.mark.parametrize("seed", range(20))
def test_encode_matches_reference(seed, n, device):
    g = torch.Generator().manual_seed(seed)
    means, stds = MEANS_STDS[seed % len(MEANS_STDS)]
    dtype = DTYPES[seed % 2]
    anchors = positive_boxes(g, n).to(dtype)
    boxes = positive_boxes(g, n).to(dtype)
    got = encode_boxes(anchors.to(device), boxes.to(device), means, stds)
    assert got.shape == (n, 4) and got.dtype == dtype and got.device.type == device
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got.cpu().double(), R.encode_boxes(anchors, boxes, means, stds), **tol)


@pytest.mark.parametrize("n", [0, 1, 25])
@pytest.mark.parametrize("seed", range(20))
def test_decode_matches_reference(seed, n, device):
    g = torch.Generator().manual_seed(seed)
    means, stds = MEANS_STDS[seed % len(MEANS_STDS)]
    dtype = DTYPES[seed % 2]
    anchors = positive_boxes(g, n).to(dtype)
    offsets = (torch.randn(n, 4, generator=g, dtype=torch.float64) * 3).to(dtype)
    offsets[::3, 2:] = 40.0  # beyond log_clamp: clamped
    got = decode_boxes(anchors.to(device), offsets.to(device), means, stds)
    assert got.shape == (n, 4) and got.dtype == dtype and got.device.type == device
    assert torch.isfinite(got).all()
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(got.cpu().double(), R.decode_boxes(anchors, offsets, means, stds), **tol)


# --------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("means,stds", MEANS_STDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(5))
def test_encode_decode_round_trip(seed, dtype, means, stds, device):
    g = torch.Generator().manual_seed(seed)
    anchors = positive_boxes(g, 30).to(device, dtype)
    boxes = positive_boxes(g, 30).to(device, dtype)
    back = decode_boxes(anchors, encode_boxes(anchors, boxes, means, stds), means, stds)
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(back, boxes, **tol)
    coder = BoxCoder(means, stds)
    torch.testing.assert_close(coder.decode(anchors, coder.encode(anchors, boxes)), boxes, **tol)


def test_decode_then_encode_round_trip(device):
    g = torch.Generator().manual_seed(0)
    anchors = positive_boxes(g, 20).to(device)
    offsets = torch.randn(20, 4, generator=g, dtype=torch.float64).to(device)
    torch.testing.assert_close(encode_boxes(anchors, decode_boxes(anchors, offsets)), offsets)


def test_decode_broadcasts_anchors_over_batch(device):
    g = torch.Generator().manual_seed(0)
    anchors = positive_boxes(g, 6)
    offsets = torch.randn(3, 6, 4, generator=g, dtype=torch.float64)
    out = decode_boxes(anchors.to(device), offsets.to(device))
    assert out.shape == (3, 6, 4) and out.device.type == device
    out = out.cpu()
    for b in range(3):
        torch.testing.assert_close(out[b], R.decode_boxes(anchors, offsets[b]))


def test_decode_gradcheck(device):
    g = torch.Generator().manual_seed(0)
    anchors = positive_boxes(g, 5).to(device).requires_grad_()
    offsets = torch.randn(5, 4, generator=g, dtype=torch.float64).to(device).requires_grad_()
    assert torch.autograd.gradcheck(decode_boxes, (anchors, offsets))
    stds = (0.5, 0.25, 1.0, 2.0)
    assert torch.autograd.gradcheck(lambda a, o: decode_boxes(a, o, (0.1, 0.2, 0.3, 0.4), stds), (anchors, offsets))


# --------------------------------------------------------------------------------------------
# every parameter changes the output


def test_means_and_stds_change_output(device):
    f64 = dict(dtype=torch.float64, device=device)
    anchors = torch.tensor([[0.0, 0, 2, 2]], **f64)
    boxes = torch.tensor([[1.0, 1, 3, 5]], **f64)
    raw = encode_boxes(anchors, boxes, stds=(1, 1, 1, 1))
    torch.testing.assert_close(raw, torch.tensor([[0.5, 1.0, 0.0, math.log(2)]], **f64))
    torch.testing.assert_close(encode_boxes(anchors, boxes, means=(0.5, 0, 0, 1), stds=(1, 1, 1, 1)),
                               raw - torch.tensor([0.5, 0, 0, 1], **f64))
    torch.testing.assert_close(encode_boxes(anchors, boxes, stds=(0.5, 2, 1, 0.25)),
                               raw / torch.tensor([0.5, 2, 1, 0.25], **f64))
    offsets = torch.tensor([[1.0, 1.0, 1.0, 1.0]], **f64)
    base = decode_boxes(anchors, offsets)
    assert not torch.equal(base, decode_boxes(anchors, offsets, means=(0.1, 0, 0, 0)))
    assert not torch.equal(base, decode_boxes(anchors, offsets, stds=(0.2, 0.1, 0.2, 0.2)))


def test_log_clamp_changes_output(device):
    f64 = dict(dtype=torch.float64, device=device)
    anchors = torch.tensor([[0.0, 0, 2, 2]], **f64)
    offsets = torch.tensor([[0.0, 0.0, 1000.0, 1000.0]], **f64)
    default = decode_boxes(anchors, offsets)
    side = 2 * 1000.0 / 16
    torch.testing.assert_close(default, torch.tensor([[1 - side / 2, 1 - side / 2, 1 + side / 2, 1 + side / 2]], **f64))
    small = decode_boxes(anchors, offsets, log_clamp=0.0)
    assert torch.equal(small, anchors)
    coder = BoxCoder(log_clamp=math.log(2))
    torch.testing.assert_close(coder.decode(anchors, offsets), torch.tensor([[-1.0, -1, 3, 3]], **f64))
    # Absurd network outputs never give NaN.
    huge = decode_boxes(anchors.float(), torch.tensor([[1e30, -1e30, 1e30, -1e30]], device=device))
    assert not torch.isnan(huge).any()


def test_box_coder_matches_functions(device):
    g = torch.Generator().manual_seed(1)
    anchors = positive_boxes(g, 8).to(device)
    boxes = positive_boxes(g, 8).to(device)
    coder = BoxCoder((0.1, 0, 0, 0.2), (0.3, 0.3, 0.4, 0.4))
    assert torch.equal(coder.encode(anchors, boxes), encode_boxes(anchors, boxes, (0.1, 0, 0, 0.2), (0.3, 0.3, 0.4, 0.4)))
    offsets = coder.encode(anchors, boxes)
    assert torch.equal(coder.decode(anchors, offsets), decode_boxes(anchors, offsets, (0.1, 0, 0, 0.2), (0.3, 0.3, 0.4, 0.4)))
    assert "BoxCoder" in repr(coder)


# --------------------------------------------------------------------------------------------
# dtypes, devices, empty input


def test_device_and_dtype(device):
    g = torch.Generator().manual_seed(0)
    for dtype in DTYPES:
        anchors = positive_boxes(g, 4).to(device, dtype)
        boxes = positive_boxes(g, 4).to(device, dtype)
        enc = encode_boxes(anchors, boxes)
        dec = decode_boxes(anchors, enc)
        assert enc.device.type == device and enc.dtype == dtype
        assert dec.device.type == device and dec.dtype == dtype
    # decode follows the offsets' dtype.
    out = decode_boxes(torch.tensor([[0.0, 0, 1, 1]], device=device), torch.zeros(1, 4, dtype=torch.float64, device=device))
    assert out.dtype == torch.float64


def test_empty(device):
    e = torch.zeros(0, 4, device=device)
    assert encode_boxes(e, e).shape == (0, 4)
    assert decode_boxes(e, e).shape == (0, 4)
    assert decode_boxes(e, torch.zeros(2, 0, 4, device=device)).shape == (2, 0, 4)


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises_with_argument_name():
    a = torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 3]])
    with pytest.raises(ValueError, match="stds"):
        encode_boxes(a, a, stds=(0.1, 0.1, 0.0, 0.2))
    with pytest.raises(ValueError, match="stds"):
        decode_boxes(a, a, stds=(0.1, 0.1, -0.2, 0.2))
    with pytest.raises(ValueError, match="stds"):
        decode_boxes(a, a, stds=(0.1, 0.1, 0.2))
    with pytest.raises(ValueError, match="stds"):
        BoxCoder(stds=(0.1, 0.1, float("nan"), 0.2))
    with pytest.raises(ValueError, match="means"):
        encode_boxes(a, a, means=(0, 0))
    with pytest.raises(TypeError, match="means"):
        encode_boxes(a, a, means=0.0)
    with pytest.raises(ValueError, match="anchors"):
        encode_boxes(a[:1], a)
    with pytest.raises(ValueError, match="boxes"):
        encode_boxes(a, torch.tensor([[0.0, 0, 2, 2], [1, 1, 1, 3]]))  # zero width: log(0)
    with pytest.raises(ValueError, match="anchors"):
        encode_boxes(torch.tensor([[0.0, 0, 2, 2], [1, 1, 3, 1]]), a)
    with pytest.raises(ValueError, match="boxes"):
        encode_boxes(a, torch.tensor([[2.0, 0, 0, 2], [1, 1, 3, 3]]))  # inverted
    with pytest.raises(ValueError, match="anchors"):
        encode_boxes(torch.zeros(2, 3), a)
    with pytest.raises(ValueError, match="offsets"):
        decode_boxes(a, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="anchors"):
        decode_boxes(torch.zeros(2, 5), a)
    with pytest.raises(ValueError, match="offsets"):
        decode_boxes(a, torch.zeros(3, 4))  # not broadcastable
    with pytest.raises(TypeError, match="offsets"):
        decode_boxes(a, torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="log_clamp"):
        decode_boxes(a, a, log_clamp=float("nan"))
