"""Tests for pixbox.ops.roi: roi_pool and roi_align against the loop references of tests/reference.py."""

from __future__ import annotations

import pytest
import torch

import reference as R
from pixbox.ops import RoIAlign, RoIPool, roi_align, roi_pool

DTYPES = [torch.float32, torch.float64]
SAMPLING = [-1, 0, 1, 2, 3]


def _tol(dtype: torch.dtype) -> dict:
    return dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)


def random_case(seed: int, dtype: torch.dtype, ties: bool = False):
    """Small maps and RoIs that are inside, partly or fully outside the map, tiny, or degenerate."""
    g = torch.Generator().manual_seed(seed)
    n, c = 2, 2
    h, w = (int(v) for v in torch.randint(1, 10, (2,), generator=g))
    if ties:
        x = torch.randint(0, 3, (n, c, h, w), generator=g).to(dtype)
    else:
        x = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    k = int(torch.randint(1, 7, (1,), generator=g))
    xy = torch.rand(k, 2, generator=g, dtype=dtype) * 24 - 6
    wh = torch.rand(k, 2, generator=g, dtype=dtype) * 16 * torch.rand(k, 1, generator=g, dtype=dtype) ** 2
    kind = seed % 4
    if kind == 1:
        wh = -wh  # x2 < x1: degenerate
    elif kind == 2:
        xy, wh = xy.round(), wh.round()  # integer corners: exact bin and pixel boundaries
    elif kind == 3:
        wh = wh * 0.05  # tiny
    batch = torch.randint(0, n, (k, 1), generator=g).to(dtype)
    rois = torch.cat([batch, xy, xy + wh], dim=1)
    scale = [1.0, 0.5, 0.25, 0.7][seed % 4]
    size = tuple(int(v) for v in torch.randint(1, 4, (2,), generator=g))
    return x, rois, size, scale


# --------------------------------------------------------------------------------------------
# golden values


def test_roi_pool_d2l_example(device):
    X = torch.arange(16.0, device=device).reshape(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 10.0, 30.0, 30.0]], device=device)
    out = roi_pool(X, rois, output_size=(2, 2), spatial_scale=0.1)
    assert out.device.type == device
    assert out.tolist() == [[[[5.0, 6.0], [9.0, 10.0]]], [[[9.0, 11.0], [13.0, 15.0]]]]


def test_roi_align_hand_computed(device):
    X = torch.arange(16.0, device=device).reshape(1, 1, 4, 4)  # X[h, w] = 4 h + w, linear: bilinear samples are exact
    on = dict(device=device)
    # Box (0, 0)-(2, 2), one sample per bin at the bin centre (0.5, 0.5), (0.5, 1.5), ...
    out = roi_align(X, torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]], **on), 2, sampling_ratio=1)
    assert out.device.type == device
    assert torch.allclose(out, torch.tensor([[[[2.5, 3.5], [6.5, 7.5]]]], **on))
    # aligned shifts by -0.5: centres at (0, 0), (0, 1), ...
    out = roi_align(X, torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0]], **on), 2, sampling_ratio=1, aligned=True)
    assert torch.allclose(out, torch.tensor([[[[0.0, 1.0], [4.0, 5.0]]]], **on))
    # A sample at y = 3.5 (past the last row) uses the last row: 4 * 3 + 0.5 = 12.5.
    out = roi_align(X, torch.tensor([[0.0, 0.0, 3.0, 1.0, 4.0]], **on), 1, sampling_ratio=1)
    assert torch.allclose(out, torch.tensor([[[[12.5]]]], **on))
    # Entirely outside the map (sample at y = 6 > H): zero.
    assert roi_align(X, torch.tensor([[0.0, 0.0, 5.5, 1.0, 6.5]], **on), 1, sampling_ratio=1).item() == 0.0


# --------------------------------------------------------------------------------------------
# against the reference loops


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["table", "windows"])
def test_roi_pool_matches_reference(dtype, path, monkeypatch, device):
    # float32/16 use the range-maximum table unless it would be too large, then (like float64)
    # the per-RoI windows; a zero budget forces the windows.
    import pixbox.ops.roi.pool as roi_module

    if path == "windows":
        monkeypatch.setattr(roi_module, "_POOL_TABLE_ELEMS", 0)
    for seed in range(40):
        x, rois, size, scale = random_case(seed, dtype, ties=seed % 3 == 0)
        xg = x.to(device).requires_grad_()
        out = roi_pool(xg, rois.to(device), size, scale)
        ref, _ = R.roi_pool_loop(x, rois, size, scale)
        assert out.dtype == dtype and out.device.type == device
        assert torch.equal(out.detach().cpu(), ref), seed  # a maximum is exact
        go = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        out.backward(go.to(device))
        ref_grad = R.roi_pool_loop_backward(x, rois, go, size, scale)
        assert torch.allclose(xg.grad.cpu().double(), ref_grad, **_tol(dtype)), seed


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", SAMPLING)
def test_roi_align_matches_reference(dtype, aligned, sampling_ratio, device):
    for seed in range(12):
        x, rois, size, scale = random_case(seed, dtype)
        xg = x.to(device).requires_grad_()
        out = roi_align(xg, rois.to(device), size, scale, sampling_ratio, aligned)
        ref = R.roi_align_loop(x, rois, size, scale, sampling_ratio, aligned)
        assert out.dtype == dtype and out.shape == ref.shape and out.device.type == device
        assert torch.allclose(out.detach().cpu().double(), ref, **_tol(dtype)), seed
        go = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        out.backward(go.to(device))
        ref_grad = R.roi_align_loop_backward(x, rois, go, size, scale, sampling_ratio, aligned)
        assert torch.allclose(xg.grad.cpu().double(), ref_grad, **_tol(dtype)), seed


def test_roi_align_adaptive_grid_varies_per_roi(device):
    # One small and one large RoI: 1 and 5 samples per bin side (exercises the masked sample grid).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 12, 12, generator=g, dtype=torch.float64)
    rois = torch.tensor([[0.0, 1.0, 1.0, 2.5, 2.0], [0.0, 0.3, 0.7, 10.9, 10.2]], dtype=torch.float64)
    out = roi_align(x.to(device), rois.to(device), 2, 1.0, -1)
    assert torch.allclose(out.cpu(), R.roi_align_loop(x, rois, (2, 2), 1.0, -1, False))
    assert not torch.allclose(out, roi_align(x.to(device), rois.to(device), 2, 1.0, 1))  # the adaptive grid matters


@pytest.mark.parametrize("dtype", DTYPES)  # float32: roi_pool's table path; float64: its windows
def test_chunking_matches_unchunked(monkeypatch, dtype, device):
    from pixbox.ops.roi import align, pool

    x, rois, size, scale = random_case(5, dtype)
    x, rois = x.to(device), rois.repeat(7, 1).to(device)
    want_a = roi_align(x, rois, size, scale, -1)
    want_p = roi_pool(x, rois, size, scale)
    monkeypatch.setattr(align, "_CHUNK_ELEMS", 1)
    monkeypatch.setattr(pool, "_POOL_CHUNK_ELEMS", 1)
    monkeypatch.setattr(align, "_SAMPLE_ELEMS", 1)
    assert torch.equal(roi_align(x, rois, size, scale, -1), want_a)
    assert torch.equal(roi_pool(x, rois, size, scale), want_p)


# --------------------------------------------------------------------------------------------
# box formats, empty input, parameters


@pytest.mark.parametrize("fn", [roi_pool, roi_align])
def test_list_of_boxes_equals_tensor_form(fn, device):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 8, 9, generator=g).to(device)
    per_image = [torch.tensor([[1.0, 2.0, 6.0, 7.5]], device=device), torch.zeros(0, 4, device=device),
                 torch.tensor([[0.0, 0.0, 3.0, 3.0], [2.2, 1.1, 8.8, 7.7]], device=device)]
    rois = torch.tensor([[0, 1.0, 2.0, 6.0, 7.5], [2, 0.0, 0.0, 3.0, 3.0], [2, 2.2, 1.1, 8.8, 7.7]], device=device)
    assert torch.equal(fn(x, per_image, (3, 2)), fn(x, rois, (3, 2)))
    assert torch.equal(fn(x, tuple(per_image), 2), fn(x, rois, (2, 2)))


@pytest.mark.parametrize("fn", [roi_pool, roi_align])
@pytest.mark.parametrize("dtype", DTYPES)
def test_empty_rois(fn, dtype, device):
    x = torch.randn(2, 3, 5, 5, dtype=dtype, device=device, requires_grad=True)
    for boxes in (torch.zeros(0, 5, dtype=dtype, device=device), [], [torch.zeros(0, 4, dtype=dtype, device=device)]):
        out = fn(x, boxes, (2, 4))
        assert out.shape == (0, 3, 2, 4) and out.dtype == dtype and out.device.type == device
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


def test_batch_index_selects_image(device):
    x = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)]).to(device)
    for fn in (roi_pool, roi_align):
        out = fn(x, torch.tensor([[0.0, 0, 0, 3, 3], [1.0, 0, 0, 3, 3]], device=device), 2)
        assert out[0].abs().sum() == 0 and torch.allclose(out[1].cpu(), torch.ones(1, 2, 2))


def test_each_parameter_changes_output(device):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 16, 16, generator=g).to(device)
    rois = torch.tensor([[0.0, 1.3, 2.1, 13.7, 11.2]], device=device)
    base = roi_align(x, rois, 3, 1.0, 2, False)
    assert not torch.allclose(base, roi_align(x, rois, 3, 0.5, 2, False))
    assert not torch.allclose(base, roi_align(x, rois, 3, 1.0, 1, False))
    assert not torch.allclose(base, roi_align(x, rois, 3, 1.0, 2, True))
    assert roi_align(x, rois, (3, 5)).shape == (1, 2, 3, 5)
    pool = roi_pool(x, rois, 3, 1.0)
    assert not torch.allclose(pool, roi_pool(x, rois, 3, 0.5))
    assert roi_pool(x, rois, (4, 2)).shape == (1, 2, 4, 2)


def test_fully_outside_rois_are_zero(device):
    x = torch.randn(1, 2, 6, 6, device=device) + 5
    rois = torch.tensor([[0.0, 20.0, 20.0, 30.0, 30.0], [0.0, -30.0, -30.0, -20.0, -20.0]], device=device)
    assert torch.equal(roi_pool(x, rois, 2).cpu(), torch.zeros(2, 2, 2, 2))
    assert torch.equal(roi_align(x, rois, 2, aligned=True).cpu(), torch.zeros(2, 2, 2, 2))


def test_roi_pool_gradient_goes_to_first_maximum(device):
    x = torch.tensor([[[[1.0, 3.0], [3.0, 0.0]]]], device=device, requires_grad=True)
    roi_pool(x, torch.tensor([[0.0, 0.0, 0.0, 1.0, 1.0]], device=device), 1).sum().backward()
    assert x.grad.tolist() == [[[[0.0, 1.0], [0.0, 0.0]]]]


# --------------------------------------------------------------------------------------------
# gradcheck


@pytest.mark.parametrize("aligned", [False, True])
@pytest.mark.parametrize("sampling_ratio", [-1, 2])
def test_roi_align_gradcheck(aligned, sampling_ratio, device):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, 6, 7, generator=g, dtype=torch.float64).to(device).requires_grad_()
    rois = torch.tensor([[0, 0.5, 1.2, 5.1, 4.3], [1, -1.0, 2.0, 3.0, 7.5], [1, 2.0, 2.0, 2.2, 2.1]],
                        dtype=torch.float64, device=device)
    assert torch.autograd.gradcheck(lambda t: roi_align(t, rois, (2, 3), 0.9, sampling_ratio, aligned), (x,))


def test_roi_pool_gradcheck(device):
    g = torch.Generator().manual_seed(0)
    x = torch.randperm(2 * 2 * 6 * 7, generator=g).double().reshape(2, 2, 6, 7).div_(10).to(device).requires_grad_()
    rois = torch.tensor([[0, 0.5, 1.2, 5.1, 4.3], [1, -1.0, 2.0, 3.0, 7.5], [1, 2.0, 2.0, 2.2, 2.1]],
                        dtype=torch.float64, device=device)
    assert torch.autograd.gradcheck(lambda t: roi_pool(t, rois, (2, 3), 1.0), (x,))


# --------------------------------------------------------------------------------------------
# modules and errors


def test_modules_call_the_functions(device):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 10, 10, generator=g).to(device)
    rois = torch.tensor([[0.0, 1, 1, 30, 25], [1.0, 4, 0, 12, 36]], device=device)
    m = RoIAlign((3, 2), 0.25, sampling_ratio=2, aligned=True)
    assert torch.equal(m(x, rois), roi_align(x, rois, (3, 2), 0.25, 2, True))
    assert "sampling_ratio=2" in repr(m)
    p = RoIPool(4, 0.25)
    assert torch.equal(p(x, rois), roi_pool(x, rois, 4, 0.25))
    assert list(m.parameters()) == [] and list(p.parameters()) == []


@pytest.mark.parametrize("fn", [roi_pool, roi_align])
def test_errors(fn):
    x = torch.randn(2, 1, 4, 4)
    rois = torch.tensor([[0.0, 0, 0, 2, 2]])
    with pytest.raises(TypeError, match="input must be a floating-point"):
        fn(torch.ones(2, 1, 4, 4, dtype=torch.long), rois, 2)
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        fn(x.numpy(), rois, 2)
    with pytest.raises(ValueError, match=r"input must have shape \[N, C, H, W\]"):
        fn(torch.randn(1, 4, 4), rois, 2)
    with pytest.raises(ValueError, match=r"boxes must be a Tensor\[K, 5\]"):
        fn(x, torch.zeros(3, 4), 2)
    with pytest.raises(ValueError, match=r"boxes\[1\] must have shape \[K_i, 4\]"):
        fn(x, [torch.zeros(1, 4), torch.zeros(1, 5)], 2)
    with pytest.raises(TypeError, match="boxes must be a Tensor"):
        fn(x, "boxes", 2)
    with pytest.raises(ValueError, match=r"batch index must be in \[0, 1\]"):
        fn(x, torch.tensor([[2.0, 0, 0, 2, 2]]), 2)
    with pytest.raises(ValueError, match="batch index"):
        fn(x, [torch.zeros(1, 4)] * 3, 2)
    with pytest.raises(ValueError, match="batch index"):
        fn(x, torch.tensor([[-1.0, 0, 0, 2, 2]]), 2)
    with pytest.raises(ValueError, match="boxes must be finite"):
        fn(x, torch.tensor([[0.0, 0, float("nan"), 2, 2]]), 2)
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        fn(x, rois, 0)
    with pytest.raises(ValueError, match="output_size must be >= 1"):
        fn(x, rois, (2, 0))
    with pytest.raises(TypeError, match="output_size must be an int or a pair"):
        fn(x, rois, (2, 2, 2))
    with pytest.raises(ValueError, match="spatial_scale must be a finite number > 0"):
        fn(x, rois, 2, spatial_scale=0.0)


def test_roi_align_argument_errors():
    x = torch.randn(1, 1, 4, 4)
    rois = torch.tensor([[0.0, 0, 0, 2, 2]])
    with pytest.raises(TypeError, match="sampling_ratio must be an int"):
        roi_align(x, rois, 2, sampling_ratio=1.5)
    with pytest.raises(TypeError, match="aligned must be a bool"):
        roi_align(x, rois, 2, aligned="yes")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_roi_pool_half_precision_equals_float32(dtype, device):
    # A maximum is exact in any precision: the half result is the float32 result of the same
    # (rounded) values, and the gradient goes to the same elements.
    for seed in range(6):
        x, rois, size, scale = random_case(seed, torch.float32, ties=seed % 2 == 0)
        x, rois = x.to(device), rois.to(device)
        xh = x.to(dtype).requires_grad_()
        x32 = xh.detach().float().requires_grad_()
        out = roi_pool(xh, rois, size, scale)
        ref = roi_pool(x32, rois, size, scale)
        assert out.dtype == dtype and torch.equal(out.float(), ref.detach()), seed
        out.float().sum().backward()
        ref.sum().backward()
        assert torch.equal(xh.grad.float(), x32.grad), seed


def test_roi_pool_values_at_or_below_float_max(device):
    # torchvision's kernel starts each bin at -FLT_MAX and keeps strictly greater values: a bin
    # of -inf gives -FLT_MAX and no gradient; an empty bin gives 0.
    x = torch.full((1, 1, 4, 4), float("-inf"), device=device)
    x[0, 0, 0, 0] = 1.0
    x.requires_grad_()
    out = roi_pool(x, torch.tensor([[0.0, 0.0, 0.0, 3.0, 3.0], [0.0, 10.0, 10.0, 12.0, 12.0]], device=device), 2)
    flt_max = torch.finfo(torch.float32).max
    assert out[0, 0].tolist() == [[1.0, -flt_max], [-flt_max, -flt_max]]
    assert out[1].abs().sum() == 0  # outside the map: empty bins
    out.sum().backward()
    assert x.grad.sum() == 1.0 and x.grad[0, 0, 0, 0] == 1.0


# --------------------------------------------------------------------------------------------
# autocast and half precision (issue 18): computed in float32, as torchvision's ops


def _autocast_dtype(device: str) -> torch.dtype:
    return torch.bfloat16 if device == "cpu" else torch.float16


@pytest.mark.parametrize("fn", [roi_align, roi_pool])
def test_float32_input_gives_float32_under_autocast(fn, device):
    """Autocast must not turn the internal products into bfloat16/float16: float32 in, float32 out,
    the same values as without autocast."""
    for seed in range(4):
        x, rois, size, scale = random_case(seed, torch.float32)
        x, rois = x.to(device), rois.to(device)
        expected = fn(x, rois, size, scale)
        with torch.autocast(device, dtype=_autocast_dtype(device)):
            out = fn(x, rois, size, scale)
            modules = (RoIAlign(size, scale) if fn is roi_align else RoIPool(size, scale))(x, rois)
        assert out.dtype == torch.float32 and modules.dtype == torch.float32
        torch.testing.assert_close(out, expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("aligned", [False, True])
def test_half_precision_roi_align_is_within_5e_3_of_a_float64_reference(dtype, aligned, device):
    """torchvision's forward test: maps of torch.rand in [0, 1), RoIs in the map's dtype. Computed in
    float32 and rounded once, the result is within 5e-3 (half a bfloat16 ulp is <= 2**-9 here)."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 50, 10, 10, generator=g).to(dtype)
    rois = torch.tensor([[0, 0, 0, 9, 9], [0, 0, 5, 4, 9], [0, 5, 5, 9, 9], [1, 0, 0, 9, 9],
                         [1, 1.3, 2.7, 7.9, 8.1], [0, -2.5, 3.25, 4.75, 11.5]]).to(dtype)
    dx, drois = x.to(device), rois.to(device)
    for sampling_ratio in (-1, 2):
        out = roi_align(dx, drois, 5, 1.0, sampling_ratio, aligned)
        ref = R.roi_align_loop(x.double(), rois.double(), (5, 5), 1.0, sampling_ratio, aligned)
        assert out.dtype == dtype and out.device.type == device
        assert (out.cpu().double() - ref).abs().max().item() <= 5e-3
        with torch.autocast(device, dtype=_autocast_dtype(device)):
            assert torch.equal(roi_align(dx, drois, 5, 1.0, sampling_ratio, aligned), out)
    pooled = roi_pool(dx, drois, 5, 1.0)
    assert pooled.dtype == dtype
    assert torch.equal(pooled.cpu().double(), R.roi_pool_loop(x.double(), rois.double(), (5, 5), 1.0)[0].double())


def test_half_precision_roi_align_gradient(device):
    x = torch.rand(1, 3, 6, 6, generator=torch.Generator().manual_seed(1)).bfloat16().to(device).requires_grad_()
    rois = torch.tensor([[0, 0.5, 0.5, 4.5, 5.0]], device=device)
    roi_align(x, rois, 2, 1.0, 2).sum().backward()
    x32 = x.detach().float().requires_grad_()
    roi_align(x32, rois, 2, 1.0, 2).sum().backward()
    assert x.grad.dtype == torch.bfloat16
    torch.testing.assert_close(x.grad.float(), x32.grad, rtol=0, atol=1e-2)
