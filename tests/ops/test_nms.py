"""Tests for pixbox.ops.nms: nms and batched_nms against the greedy reference loop."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

import reference as R
from pixbox.ops import batched_nms, box_iou, nms

# The module itself (``pixbox.ops.nms`` the attribute is the function of the same name).
nms_module = importlib.import_module("pixbox.ops.nms")

DTYPES = [torch.float32, torch.float64]


@pytest.fixture(autouse=True, params=["auto", "rounds", "sparse"])
def nms_path(request, monkeypatch):
    """Runs every test with each of the two algorithms forced, and with the automatic choice.

    "rounds" forces the exact rounds over culled tiles; "sparse" forces the whole-graph sweep
    whenever the threshold allows it (t >= 0).
    """
    if request.param == "rounds":
        monkeypatch.setattr(nms_module, "_SPARSE_PAIRS", -1)
    elif request.param == "sparse":
        monkeypatch.setattr(nms_module, "_SPARSE_PAIRS", 1 << 40)
    return request.param
THRESHOLDS = [-0.1, 0.0, 0.3, 0.5, 0.7, 0.95, 1.0]


def random_boxes(g: torch.Generator, n: int, canvas: int = 16, max_side: int = 8, degenerate: float = 0.1) -> torch.Tensor:
    """Integer-coordinate boxes (so exact IoU ties and exact-threshold pairs occur), some degenerate."""
    xy = torch.randint(0, canvas, (n, 2), generator=g).double()
    wh = torch.randint(1, max_side + 1, (n, 2), generator=g).double()
    wh[torch.rand(n, 2, generator=g) < degenerate] = 0.0
    return torch.cat([xy, xy + wh], dim=1)


def quantised_scores(g: torch.Generator, n: int, levels: int = 4) -> torch.Tensor:
    return torch.randint(0, levels, (n,), generator=g).double()


def clustered_boxes(g: torch.Generator, n: int, clusters: int = 10) -> torch.Tensor:
    centres = torch.randint(60, 450, (clusters, 2), generator=g).double()
    which = torch.randint(0, clusters, (n,), generator=g)
    c = centres[which] + torch.randint(-5, 6, (n, 2), generator=g).double()
    half = torch.randint(20, 31, (n, 2), generator=g).double()
    return torch.cat([c - half, c + half], dim=1)


# --------------------------------------------------------------------------------------------
# golden values


def test_nms_hand_example(device):
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], device=device)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95], device=device)
    # IoU(3, 0) = 0.9, IoU(3, 1) = 72 / 118 ~ 0.61, IoU(0, 1) = 81 / 119 ~ 0.68.
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]
    assert nms(boxes, scores, 0.65).tolist() == [3, 1, 2]
    assert nms(boxes, scores, 0.95).tolist() == [3, 0, 1, 2]


def test_nms_keeps_at_exact_threshold(device):
    # IoU([0, 0, 2, 1], [0, 0, 1, 1]) = 1 / 2 exactly: "suppress when IoU > threshold" keeps it at 0.5.
    boxes = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1]], device=device)
    scores = torch.tensor([1.0, 0.5], device=device)
    for dtype in DTYPES:
        assert box_iou(boxes.to(dtype), boxes.to(dtype))[0, 1].item() == 0.5
        assert nms(boxes.to(dtype), scores, 0.5).tolist() == [0, 1]
        assert nms(boxes.to(dtype), scores, float(np.nextafter(0.5, 0.0))).tolist() == [0]


def test_nms_threshold_compared_in_double_like_torchvision(device):
    # inter = 3, union = 10: float32 IoU is float32(0.3) = 0.30000001192..., which is > 0.3 as a
    # double (torchvision compares float with double), so float32 boxes suppress; float64 IoU is
    # exactly the double 0.3, which is not > 0.3.
    boxes = torch.tensor([[0.0, 0, 6.5, 1], [3.5, 0, 10, 1]])
    scores = torch.tensor([1.0, 0.5])
    on = dict(device=device)
    assert nms(boxes.to(**on).float(), scores.to(**on), 0.3).tolist() == [0]
    assert nms(boxes.to(**on).double(), scores.to(**on), 0.3).tolist() == [0, 1]
    for dtype in DTYPES:
        want = R.nms(boxes.to(dtype), scores, 0.3).tolist()
        assert nms(boxes.to(device, dtype), scores.to(**on), 0.3).tolist() == want


def test_nms_ties_go_to_lower_index(device):
    boxes = torch.tensor([[0.0, 0, 10, 10]] * 4 + [[50.0, 50, 60, 60]] * 2, device=device)
    scores = torch.tensor([1.0, 2.0, 2.0, 1.0, 2.0, 1.0], device=device)
    assert nms(boxes, scores, 0.5).tolist() == [1, 4]
    assert nms(boxes, scores, 1.0).tolist() == [1, 2, 4, 0, 3, 5]


def test_nms_degenerate_boxes_never_suppress_each_other(device):
    # Two degenerate boxes have IoU 0/0 = NaN, which never suppresses, even with a negative threshold.
    boxes = torch.tensor([[1.0, 1, 1, 5], [1, 1, 1, 5], [2, 2, 2, 2], [3, 0, 7, 0]], device=device)
    scores = torch.tensor([0.4, 0.3, 0.2, 0.1], device=device)
    for t in (-0.5, 0.0, 0.5):
        assert nms(boxes, scores, t).tolist() == [0, 1, 2, 3]
    # A real box has IoU 0 with a degenerate one: suppresses it only below a threshold of 0.
    boxes = torch.cat([torch.tensor([[0.0, 0, 10, 10]], device=device), boxes])
    scores = torch.cat([torch.tensor([1.0], device=device), scores])
    assert nms(boxes, scores, 0.0).tolist() == [0, 1, 2, 3, 4]
    assert nms(boxes, scores, -0.01).tolist() == [0]


def test_negative_threshold_suppresses_disjoint_boxes(device):
    boxes = torch.tensor([[0.0, 0, 1, 1], [5, 5, 6, 6], [10, 10, 11, 11]], device=device)
    scores = torch.tensor([0.1, 0.9, 0.5], device=device)
    assert nms(boxes, scores, -0.1).tolist() == [1]
    assert nms(boxes, scores, 0.0).tolist() == [1, 2, 0]


# --------------------------------------------------------------------------------------------
# against the reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 2, 7, 40, 150])
@pytest.mark.parametrize("seed", range(12))
def test_nms_matches_reference(seed, n, dtype, device):
    g = torch.Generator().manual_seed(seed * 1000 + n)
    boxes = random_boxes(g, n).to(dtype)
    scores = quantised_scores(g, n).to(dtype)
    for t in THRESHOLDS + [1 / 3, 0.25]:
        got = nms(boxes.to(device), scores.to(device), t)
        assert got.dtype == torch.int64 and got.device.type == device
        assert got.tolist() == R.nms(boxes, scores, t).tolist(), f"threshold {t}"


@pytest.mark.parametrize("seed", range(5))
def test_reference_row_nms_equals_scalar_loop(seed):
    # The reference's numpy-row IoU rounds exactly like the one-pair-at-a-time formula.
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(g, 30)
    scores = quantised_scores(g, 30)
    for dtype in DTYPES:
        for t in THRESHOLDS + [1 / 3]:
            b = boxes.to(dtype)
            assert R.nms(b, scores, t).tolist() == R.nms_scalar(b, scores, t).tolist()


@pytest.mark.parametrize("seed", range(40))
def test_nms_matches_reference_continuous(seed, device):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 120, (1,), generator=g))
    dtype = DTYPES[seed % 2]
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * 100
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * 40
    boxes = torch.cat([xy, xy + wh], dim=1).to(dtype)
    scores = torch.rand(n, generator=g, dtype=torch.float64).to(dtype)
    t = float(torch.rand(1, generator=g))
    assert nms(boxes.to(device), scores.to(device), t).tolist() == R.nms(boxes, scores, t).tolist()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["uniform", "clustered"])
def test_nms_large_matches_reference(kind, dtype, device):
    g = torch.Generator().manual_seed(7 if kind == "uniform" else 8)
    n = 3000
    if kind == "uniform":
        xy = torch.randint(0, 512, (n, 2), generator=g).double()
        wh = torch.randint(1, 101, (n, 2), generator=g).double()
        boxes = torch.cat([xy, xy + wh], dim=1)
    else:
        boxes = clustered_boxes(g, n)
    boxes = boxes.to(dtype)
    scores = quantised_scores(g, n).to(dtype)
    for t in THRESHOLDS:
        got = nms(boxes.to(device), scores.to(device), t)
        assert got.tolist() == R.nms(boxes, scores, t).tolist(), f"threshold {t}"


class _CountingNumpy:
    """Stands in for numpy inside pixbox.ops.nms and counts use of the sequential fallback."""

    def __init__(self):
        self.fallback_calls = 0

    def __getattr__(self, name):
        if name == "flatnonzero":
            self.fallback_calls += 1
        return getattr(np, name)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_long_chain_uses_sequential_fallback(monkeypatch, dtype, device):
    # Boxes shifted by 1 px each with decreasing scores: box i suppresses i+1..i+3 at 0.5, so the
    # suppression chain is as long as the input and the vectorised sweeps cannot settle it.
    n = 1500
    x = torch.arange(n, dtype=dtype)
    boxes = torch.stack([x, torch.zeros(n, dtype=dtype), x + 10, torch.full((n,), 10.0, dtype=dtype)], dim=1)
    scores = torch.linspace(1, 0, n, dtype=dtype)
    spy = _CountingNumpy()
    monkeypatch.setattr(nms_module, "np", spy)
    got = nms(boxes.to(device), scores.to(device), 0.5)
    assert spy.fallback_calls > 0, "the chain should exceed the vectorised sweeps"
    assert got.device.type == device
    assert got.tolist() == R.nms(boxes, scores, 0.5).tolist() == list(range(0, n, 4))
    # The same chain given in reverse input order, at another threshold.
    got = nms(boxes.flip(0).to(device), scores.flip(0).to(device), 0.7)
    assert got.tolist() == R.nms(boxes.flip(0), scores.flip(0), 0.7).tolist()


@pytest.mark.parametrize("max_sweeps", [0, 1, 2])
@pytest.mark.parametrize("seed", range(5))
def test_sequential_fallback_matches_reference(monkeypatch, seed, max_sweeps, device):
    monkeypatch.setattr(nms_module, "_MAX_SWEEPS", max_sweeps)
    g = torch.Generator().manual_seed(seed)
    boxes = random_boxes(g, 300, canvas=40, max_side=12)
    scores = quantised_scores(g, 300, levels=6)
    idxs = torch.randint(0, 3, (300,), generator=g)
    db, ds, di = boxes.to(device), scores.to(device), idxs.to(device)
    for t in (-0.1, 0.0, 0.3, 0.5, 0.7):
        assert nms(db, ds, t).tolist() == R.nms(boxes, scores, t).tolist()
        assert batched_nms(db, ds, di, t).tolist() == R.batched_nms(boxes, scores, idxs, t).tolist()


@pytest.mark.parametrize("round_size", [1, 7, 64])
def test_nms_in_small_rounds_matches_reference(monkeypatch, round_size, device):
    # NMS resolves the best boxes in rounds of growing size; tiny rounds exercise the hand-over
    # from one round to the next (kept boxes of earlier rounds suppressing later ones).
    if not hasattr(nms_module, "_ROUND"):
        pytest.skip("pixbox.ops.nms has no _ROUND knob")
    monkeypatch.setattr(nms_module, "_ROUND", round_size)
    g = torch.Generator().manual_seed(round_size)
    boxes = random_boxes(g, 400, canvas=60, max_side=15)
    scores = quantised_scores(g, 400, levels=8)
    idxs = torch.randint(0, 3, (400,), generator=g)
    db, ds, di = boxes.to(device), scores.to(device), idxs.to(device)
    for t in (-0.1, 0.0, 0.3, 0.5, 0.7):
        assert nms(db, ds, t).tolist() == R.nms(boxes, scores, t).tolist()
        assert batched_nms(db, ds, di, t).tolist() == R.batched_nms(boxes, scores, idxs, t).tolist()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 5, 60, 200])
@pytest.mark.parametrize("seed", range(10))
def test_batched_nms_matches_reference(seed, n, dtype, device):
    g = torch.Generator().manual_seed(seed * 100 + n)
    boxes = random_boxes(g, n).to(dtype)
    scores = quantised_scores(g, n).to(dtype)
    idxs = torch.randint(0, 4, (n,), generator=g) * 3 - 2  # negative and sparse category ids too
    for t in (-0.1, 0.0, 0.3, 0.5, 0.7, 1.0):
        got = batched_nms(boxes.to(device), scores.to(device), idxs.to(device), t)
        assert got.dtype == torch.int64 and got.device.type == device
        assert got.tolist() == R.batched_nms(boxes, scores, idxs, t).tolist(), f"threshold {t}"


def test_batched_nms_large_matches_reference(device):
    g = torch.Generator().manual_seed(3)
    n = 3000
    boxes = clustered_boxes(g, n)
    scores = quantised_scores(g, n)
    idxs = torch.randint(0, 5, (n,), generator=g)
    for t in (0.0, 0.5, 0.95):
        got = batched_nms(boxes.to(device), scores.to(device), idxs.to(device), t)
        assert got.tolist() == R.batched_nms(boxes, scores, idxs, t).tolist()


def test_batched_nms_equals_nms_per_category(device):
    g = torch.Generator().manual_seed(0)
    boxes = random_boxes(g, 100).to(device)
    scores = torch.rand(100, generator=g, dtype=torch.float64).to(device)
    idxs = torch.randint(0, 3, (100,), generator=g).to(device)
    keep = set(batched_nms(boxes, scores, idxs, 0.4).tolist())
    expected = set()
    for c in range(3):
        members = (idxs == c).nonzero().flatten()
        expected |= set(members[nms(boxes[members], scores[members], 0.4)].tolist())
    assert keep == expected


# --------------------------------------------------------------------------------------------
# parameters


def test_iou_threshold_changes_output(device):
    boxes = torch.tensor([[0.0, 0, 10, 10], [2, 0, 12, 10], [6, 0, 16, 10]], device=device)
    scores = torch.tensor([3.0, 2.0, 1.0], device=device)
    # IoU(0, 1) = 80/120, IoU(1, 2) = 60/140, IoU(0, 2) = 40/160.
    assert nms(boxes, scores, 0.7).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert nms(boxes, scores, 0.2).tolist() == [0]


def test_idxs_changes_output(device):
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10]], device=device)
    scores = torch.tensor([0.9, 0.8], device=device)
    assert batched_nms(boxes, scores, torch.tensor([0, 0], device=device), 0.5).tolist() == [0]
    assert batched_nms(boxes, scores, torch.tensor([0, 1], device=device), 0.5).tolist() == [0, 1]


# --------------------------------------------------------------------------------------------
# dtypes, devices, empty input


def test_nms_device_and_dtype(device):
    g = torch.Generator().manual_seed(0)
    boxes = random_boxes(g, 80)
    scores = quantised_scores(g, 80)
    expected = R.nms(boxes, scores, 0.5).tolist()
    for dtype in DTYPES:
        got = nms(boxes.to(device, dtype), scores.to(device, dtype), 0.5)
        assert got.device.type == device and got.dtype == torch.int64
        assert got.tolist() == expected
        got = batched_nms(boxes.to(device, dtype), scores.to(device), torch.zeros(80, dtype=torch.long, device=device), 0.5)
        assert got.device.type == device and got.tolist() == expected


def test_empty_inputs(device):
    for dtype in DTYPES:
        boxes = torch.zeros(0, 4, dtype=dtype, device=device)
        scores = torch.zeros(0, dtype=dtype, device=device)
        for out in (nms(boxes, scores, 0.5), batched_nms(boxes, scores, torch.zeros(0, dtype=torch.long, device=device), 0.5)):
            assert out.shape == (0,) and out.dtype == torch.int64 and out.device.type == device


def test_half_boxes_and_integer_scores(device):
    g = torch.Generator().manual_seed(1)
    boxes = random_boxes(g, 100)
    scores = torch.randint(0, 5, (100,), generator=g)
    expected = R.nms(boxes.float(), scores.float(), 0.5).tolist()
    boxes, scores = boxes.to(device), scores.to(device)
    assert nms(boxes.float(), scores.float(), 0.5).tolist() == expected
    assert nms(boxes.half(), scores.float(), 0.5).tolist() == expected
    assert nms(boxes.float(), scores, 0.5).tolist() == expected


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_input():
    boxes = torch.tensor([[0.0, 0, 1, 1], [0, 0, 2, 2]])
    scores = torch.tensor([0.5, 0.4])
    with pytest.raises(ValueError, match="boxes"):
        nms(torch.zeros(2, 3), scores, 0.5)
    with pytest.raises(ValueError, match="boxes"):
        nms(torch.tensor([[1.0, 0, 0, 1], [0, 0, 2, 2]]), scores, 0.5)  # x2 < x1
    with pytest.raises(ValueError, match="boxes"):
        nms(torch.tensor([[0.0, 0, float("nan"), 1], [0, 0, 2, 2]]), scores, 0.5)
    with pytest.raises(TypeError, match="boxes"):
        nms(boxes.long(), scores, 0.5)
    with pytest.raises(ValueError, match="scores"):
        nms(boxes, torch.tensor([0.5]), 0.5)
    with pytest.raises(ValueError, match="scores"):
        nms(boxes, torch.tensor([0.5, float("nan")]), 0.5)
    with pytest.raises(TypeError, match="scores"):
        nms(boxes, [0.5, 0.4], 0.5)
    with pytest.raises(ValueError, match="iou_threshold"):
        nms(boxes, scores, float("nan"))
    with pytest.raises(TypeError, match="iou_threshold"):
        nms(boxes, scores, "0.5")
    with pytest.raises(ValueError, match="idxs"):
        batched_nms(boxes, scores, torch.tensor([0]), 0.5)
    with pytest.raises(TypeError, match="idxs"):
        batched_nms(boxes, scores, torch.tensor([0.0, 1.0]), 0.5)
    with pytest.raises(ValueError, match="scores"):
        batched_nms(boxes, torch.tensor([float("nan"), 0.1]), torch.tensor([0, 1]), 0.5)


def test_auto_choice_takes_the_sparse_path_for_spread_out_groups(monkeypatch, nms_path, device):
    if nms_path != "auto":
        pytest.skip("about the automatic choice")
    calls = []
    real = nms_module._nms_sparse
    monkeypatch.setattr(nms_module, "_nms_sparse", lambda *a: calls.append(r := real(*a)) or r)
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(400, 2, generator=g) * 500
    boxes = torch.cat([xy, xy + 1 + torch.rand(400, 2, generator=g) * 30], 1)
    scores, idxs = torch.rand(400, generator=g), torch.randint(0, 20, (400,), generator=g)
    keep = batched_nms(boxes.to(device), scores.to(device), idxs.to(device), 0.5)
    assert calls and calls[0] is not None  # few candidate pairs: the whole graph at once
    assert torch.equal(keep.cpu(), R.batched_nms(boxes, scores, idxs, 0.5))
    dense = torch.tensor([[0.0, 0, 10, 10]]).repeat(400, 1) + torch.rand(400, 1, generator=g)
    before = len(calls)
    nms(dense.to(device), scores.to(device), 0.5)
    assert all(c is None for c in calls[before:])  # every pair is a candidate: rounds


# --------------------------------------------------------------------------------------------
# torchvision's inputs (issue 18): requires grad, empty batched_nms, long group runs


def test_inputs_that_require_grad_give_the_same_keep_list(device):
    """NMS returns indices and needs no gradient: raw network outputs (requires_grad) work."""
    g = torch.Generator().manual_seed(3)
    boxes, scores = clustered_boxes(g, 300), torch.rand(300, generator=g, dtype=torch.float64)
    idxs = torch.randint(0, 3, (300,), generator=g)
    assert torch.equal(nms(boxes, scores, 0.5), R.nms(boxes, scores, 0.5))
    boxes, scores, idxs = boxes.to(device), scores.to(device), idxs.to(device)
    expected = nms(boxes, scores, 0.5)
    expected_batched = batched_nms(boxes, scores, idxs, 0.5)
    for dtype in DTYPES:
        b = boxes.to(dtype).requires_grad_()
        s = scores.to(dtype).requires_grad_()
        assert torch.equal(nms(b, s, 0.5), expected)
        assert torch.equal(batched_nms(b, s, idxs, 0.5), expected_batched)
        assert torch.equal(batched_nms(b * 2, s * 1, idxs, 0.5), expected_batched)  # non-leaf tensors too
    assert torch.equal(expected.cpu(), R.nms(boxes.cpu(), scores.cpu(), 0.5))


def test_batched_nms_empty_inputs_as_torchvision_tests_them(device):
    # torchvision's test_batched_nms_implementations: batched_nms(empty, None, None, None).
    empty = torch.empty((0,), dtype=torch.int64, device=device)
    out = batched_nms(empty, None, None, None)
    assert out.dtype == torch.int64 and out.shape == (0,) and out.device.type == device
    # The case, and float boxes of shape [0, 4] with real arguments.
    on = dict(device=device)
    out = batched_nms(torch.empty((0, 4), **on), torch.empty(0, **on), torch.empty(0, dtype=torch.int64, **on), 0.5)
    assert out.dtype == torch.int64 and out.shape == (0,) and out.device.type == device
    assert nms(torch.empty((0, 4), **on), torch.empty(0, **on), 0.5).dtype == torch.int64


@pytest.mark.parametrize("dtype", DTYPES)
def test_batched_nms_with_long_group_runs_matches_reference(dtype, device):
    """Groups of hundreds of boxes get tiles of their own (padded), as in multibox_detection."""
    g = torch.Generator().manual_seed(5)
    n = 900
    boxes = clustered_boxes(g, n).to(dtype)
    scores = quantised_scores(g, n, levels=50).to(dtype)
    db, ds = boxes.to(device), scores.to(device)
    idxs = torch.arange(n) % 3  # 3 groups of 300 boxes, interleaved in rank order
    assert torch.equal(batched_nms(db, ds, idxs.to(device), 0.5).cpu(), R.batched_nms(boxes, scores, idxs, 0.5))
    idxs = torch.randint(0, 4, (n,), generator=g) * 1000 - 1500  # negative and large ids
    assert torch.equal(batched_nms(db, ds, idxs.to(device), 0.3).cpu(), R.batched_nms(boxes, scores, idxs, 0.3))


@pytest.mark.parametrize("shape", [(7, 3, 32), (5, 16), (3, 4, 5, 8), (0, 8), (2, 3, 7), (4, 8, 1)])
def test_word_helpers_equal_torch(shape, device):
    """The word-at-a-time ``nonzero`` and ``any(1)`` of the NMS inner loops are exact."""
    g = torch.Generator().manual_seed(0)
    for density in (0.0, 0.02, 0.5, 1.0):
        mask = (torch.rand(shape, generator=g) < density).to(device)
        got, want = nms_module._nonzero(mask), mask.nonzero().unbind(1)
        assert len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want))
        if mask.dim() == 3:
            assert torch.equal(nms_module._any_dim1(mask), mask.any(1))
