"""Tests for pixbox.ops.matching's one matcher (match_by_iou, Matcher) and one sampler (sample_balanced)."""

from __future__ import annotations

import pytest
import torch

import reference as R
from pixbox.ops import Matcher, box_iou, match_by_iou, sample_balanced
from pixbox.ops.matching import BACKGROUND, IGNORED

DTYPES = [torch.float32, torch.float64]
MODES = [False, True, "bipartite"]
THRESHOLDS = [(0.5, 0.5), (0.7, 0.3), (1 / 3, 0.25), (0.0, 0.0), (1.0, 0.0), (0.5, None)]


def grid_iou(gen: torch.Generator, g: int, n: int, dtype=torch.float64) -> torch.Tensor:
    """IoU ``[G, N]`` of integer-coordinate boxes: ties and IoU exactly 1/2, 1/3, 0 ... happen often."""
    def boxes(k):
        xy = torch.randint(0, 6, (k, 2), generator=gen).double()
        wh = torch.randint(1, 4, (k, 2), generator=gen).double()
        wh[torch.rand(k, 2, generator=gen) < 0.1] = 0.0  # some degenerate boxes: IoU 0 with all
        return torch.cat([xy, xy + wh], dim=1).to(dtype)

    return box_iou(boxes(g), boxes(n))


# --------------------------------------------------------------------------------------------
# match_by_iou against the reference loop


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(6))
def test_match_by_iou_matches_reference(seed, dtype, mode, device):
    gen = torch.Generator().manual_seed(seed)
    for g, n in [(0, 5), (4, 0), (1, 1), (3, 12), (7, 25), (12, 6)]:
        iou = grid_iou(gen, g, n, dtype)
        for fg, bg in THRESHOLDS:
            got = match_by_iou(iou.to(device), fg, bg, allow_low_quality_matches=mode)
            assert got.device.type == device
            want = R.matcher_reference(iou, fg, bg, mode)
            assert got.tolist() == want.tolist(), (g, n, fg, bg)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", range(4))
def test_match_by_iou_continuous_values_match_reference(seed, mode, device):
    gen = torch.Generator().manual_seed(100 + seed)
    iou = torch.rand(6, 40, generator=gen)
    iou[iou < 0.3] = 0.0
    for fg, bg in THRESHOLDS:
        assert match_by_iou(iou.to(device), fg, bg, allow_low_quality_matches=mode).tolist() == \
            R.matcher_reference(iou, fg, bg, mode).tolist()


@pytest.mark.parametrize("mode", MODES)
def test_batched_is_image_by_image_and_padding_rows_never_match(mode, device):
    gen = torch.Generator().manual_seed(7)
    iou = torch.stack([grid_iou(gen, 5, 20) for _ in range(4)])  # [B, G, N]
    iou[0, 1] = -1.0  # padding rows (e.g. class -1 labels)
    iou[2] = -1.0  # an image with only padding
    iou[3, ::2] = -1.0
    for fg, bg in THRESHOLDS:
        got = match_by_iou(iou.to(device), fg, bg, allow_low_quality_matches=mode)
        assert got.shape == (4, 20) and got.device.type == device
        assert got.tolist() == R.matcher_reference(iou, fg, bg, mode).tolist()
        for b in range(4):
            assert torch.equal(got[b], match_by_iou(iou[b].to(device), fg, bg, allow_low_quality_matches=mode))
        assert not bool((got[0] == 1).any()) and bool((got[2] == BACKGROUND).all())
        assert not bool(((got[3] >= 0) & (got[3] % 2 == 0)).any())


# --------------------------------------------------------------------------------------------
# Thresholds and low-quality matches by hand


def test_thresholds_by_hand(device):
    iou = torch.tensor([[1.0, 0.7, 0.69, 0.3, 0.29, 0.0]], dtype=torch.float64, device=device)
    assert match_by_iou(iou, 0.7, 0.3).tolist() == [0, 0, IGNORED, IGNORED, BACKGROUND, BACKGROUND]
    # Each parameter changes the output.
    assert match_by_iou(iou, 0.9, 0.3).tolist() == [0, -2, -2, -2, -1, -1]
    assert match_by_iou(iou, 0.7, 0.5).tolist() == [0, 0, -2, -1, -1, -1]
    assert match_by_iou(iou, 0.7).tolist() == [0, 0, -1, -1, -1, -1]  # bg defaults to fg: nothing ignored
    # fg 0 matches everything, even a prediction that overlaps nothing (torchvision's rule).
    assert match_by_iou(iou, 0.0).tolist() == [0] * 6
    assert BACKGROUND == -1 and IGNORED == -2


def test_best_box_and_ties_go_to_the_first(device):
    iou = torch.tensor([[0.6, 0.5, 0.2], [0.6, 0.8, 0.2]], device=device)
    assert match_by_iou(iou, 0.5).tolist() == [0, 1, -1]
    assert match_by_iou(iou, 0.1).tolist() == [0, 1, 0]


def test_low_quality_matches_by_hand(device):
    # gt 0: best IoU 0.4 at predictions 1 and 2 (a tie); prediction 2 overlaps gt 1 more (0.45).
    # gt 1: best IoU 0.45 at prediction 2. gt 2 overlaps nothing: it forces no match.
    iou = torch.tensor([
        [0.1, 0.4, 0.4, 0.0],
        [0.0, 0.2, 0.45, 0.1],
        [0.0, 0.0, 0.0, 0.0],
    ], device=device)
    assert match_by_iou(iou, 0.7, 0.3).tolist() == [-1, -2, -2, -1]
    assert match_by_iou(iou, 0.7, 0.3, allow_low_quality_matches=True).tolist() == [-1, 0, 1, -1]
    # Bipartite: (pred 2, gt 1) first at 0.45, then (pred 1, gt 0) at 0.4; only gt 2 is left and
    # it overlaps nothing.
    assert match_by_iou(iou, 0.7, 0.3, allow_low_quality_matches="bipartite").tolist() == [-1, 0, 1, -1]
    # gt 1 overlaps only prediction 1, which overlaps gt 0 more: one to one, gt 0 takes it and gt 1
    # gets nothing; the tie rule also gives prediction 1 to its own best box, gt 0.
    iou = torch.tensor([[0.2, 0.5], [0.0, 0.3]], device=device)
    assert match_by_iou(iou, 0.7, 0.1, allow_low_quality_matches="bipartite").tolist() == [-2, 0]
    assert match_by_iou(iou, 0.7, 0.1, allow_low_quality_matches=True).tolist() == [-2, 0]


@pytest.mark.parametrize("seed", range(10))
def test_low_quality_matches_keep_each_gts_best_prediction(seed, device):
    gen = torch.Generator().manual_seed(200 + seed)
    iou = grid_iou(gen, 6, 30)
    m = match_by_iou(iou.to(device), 1.0, 1.0, allow_low_quality_matches=True).cpu()  # only IoU 1 by thresholds
    best_gt = iou.max(dim=0).indices
    for g in range(iou.shape[0]):
        top = iou[g].max()
        for n in (iou[g] == top).nonzero().flatten().tolist():
            if top > 0:
                assert m[n] == best_gt[n], (g, n)  # kept, matched to its own best box
    # Bipartite: one-to-one pairs with IoU > 0, and maximal (no unmatched pair with overlap left).
    iou = iou.clamp(max=0.99)  # the threshold stage matches nothing
    m = match_by_iou(iou.to(device), 1.0, allow_low_quality_matches="bipartite").cpu()
    pairs = [(n, g) for n, g in enumerate(m.tolist()) if g >= 0]
    assert len({g for _, g in pairs}) == len(pairs)
    assert all(iou[g, n] > 0 for n, g in pairs)
    free_n = [n for n in range(iou.shape[1]) if m[n] < 0]
    free_g = [g for g in range(iou.shape[0]) if g not in {g for _, g in pairs}]
    assert not any(iou[g, n] > 0 for g in free_g for n in free_n)


# --------------------------------------------------------------------------------------------
# Empty inputs, device and dtype


@pytest.mark.parametrize("mode", MODES)
def test_empty_inputs(device, mode):
    for shape, want in [((0, 5), (5,)), ((3, 0), (0,)), ((0, 0), (0,)), ((2, 0, 4), (2, 4)), ((0, 3, 4), (0, 4)),
                        ((2, 3, 0), (2, 0))]:
        out = match_by_iou(torch.rand(shape, device=device), 0.5, allow_low_quality_matches=mode)
        assert out.shape == want and out.dtype == torch.int64 and out.device.type == device
        assert bool((out == BACKGROUND).all())


@pytest.mark.parametrize("mode", MODES)
def test_device_and_dtype_come_from_the_input(device, mode):
    gen = torch.Generator().manual_seed(3)
    iou = grid_iou(gen, 4, 16, torch.float32)
    want = match_by_iou(iou, 0.5, 0.25, allow_low_quality_matches=mode)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        out = match_by_iou(iou.to(device, dtype), 0.5, 0.25, allow_low_quality_matches=mode)
        assert out.dtype == torch.int64 and out.device.type == device
        if dtype in DTYPES:  # grid IoUs (1/2, 1/3, 1/4, ...) are exact in both
            assert out.tolist() == want.tolist()


# --------------------------------------------------------------------------------------------
# Matcher (the configuration holder)


def test_matcher_calls_match_by_iou(device):
    gen = torch.Generator().manual_seed(5)
    iou = grid_iou(gen, 5, 20).to(device)
    for mode in MODES:
        matcher = Matcher(0.7, 0.3, allow_low_quality_matches=mode)
        assert (matcher.fg_iou_threshold, matcher.bg_iou_threshold, matcher.allow_low_quality_matches) == (0.7, 0.3, mode)
        assert torch.equal(matcher(iou), match_by_iou(iou, 0.7, 0.3, allow_low_quality_matches=mode))
        assert torch.equal(matcher(iou[None])[0], matcher(iou))
    assert Matcher(0.5).bg_iou_threshold == 0.5
    assert Matcher.BELOW_LOW_THRESHOLD == BACKGROUND and Matcher.BETWEEN_THRESHOLDS == IGNORED
    assert repr(Matcher(0.7, 0.3, allow_low_quality_matches=True)) == \
        "Matcher(fg_iou_threshold=0.7, bg_iou_threshold=0.3, allow_low_quality_matches=True)"


def test_matcher_bad_input():
    iou = torch.rand(2, 3)
    with pytest.raises(ValueError, match="fg_iou_threshold"):
        Matcher(1.5)
    with pytest.raises(ValueError, match="bg_iou_threshold must be <= fg_iou_threshold"):
        Matcher(0.3, 0.7)
    with pytest.raises(ValueError, match="bg_iou_threshold"):
        match_by_iou(iou, 0.5, -0.1)
    with pytest.raises(ValueError, match="allow_low_quality_matches"):
        Matcher(0.5, allow_low_quality_matches="ties")
    with pytest.raises(ValueError, match="allow_low_quality_matches"):
        match_by_iou(iou, 0.5, allow_low_quality_matches=1)
    with pytest.raises(ValueError, match=r"iou must have shape \[G, N\] or \[B, G, N\], got \(3,\)"):
        match_by_iou(iou[0], 0.5)
    with pytest.raises(TypeError, match="iou must be a floating-point tensor"):
        match_by_iou(torch.ones(2, 3, dtype=torch.long), 0.5)
    with pytest.raises(TypeError, match="fg_iou_threshold must be a number"):
        match_by_iou(iou, "0.5")


# --------------------------------------------------------------------------------------------
# sample_balanced


def _labels(gen, num_pos, num_neg, num_ignored=50):
    n = num_pos + num_neg + num_ignored
    labels = torch.full((n,), -1, dtype=torch.long)
    perm = torch.randperm(n, generator=gen)
    labels[perm[:num_pos]] = 1
    labels[perm[num_pos:num_pos + num_neg]] = 0
    return labels


@pytest.mark.parametrize("num_pos, num_neg, size, frac, want_pos, want_neg", [
    (300, 1000, 256, 0.5, 128, 128),
    (10, 1000, 256, 0.5, 10, 246),
    (5, 20, 256, 0.5, 5, 20),
    (300, 1000, 256, 0.25, 64, 192),
    (300, 1000, 100, 0.0, 0, 100),
    (300, 1000, 100, 1.0, 100, 0),
    (3, 0, 10, 0.5, 3, 0),
    (0, 0, 10, 0.5, 0, 0),
    (7, 9, 1, 0.5, 0, 1),
])
def test_sample_balanced_counts(num_pos, num_neg, size, frac, want_pos, want_neg, device):
    labels = _labels(torch.Generator().manual_seed(0), num_pos, num_neg).to(device)
    pos, neg = sample_balanced(labels, size, frac, generator=torch.Generator().manual_seed(1))
    assert (len(pos), len(neg)) == (want_pos, want_neg) and pos.device.type == neg.device.type == device
    assert len(pos) + len(neg) <= size and len(pos) <= int(size * frac)
    assert bool((labels[pos] == 1).all()) and bool((labels[neg] == 0).all())
    assert len(set(pos.tolist())) == len(pos) and len(set(neg.tolist())) == len(neg)
    assert pos.dtype == neg.dtype == torch.int64


def test_sample_balanced_draws_like_randperm(device):
    """The same draws as before the sampler was shared: randperm of the positives, then of the negatives
    (without a generator: torch's global one of the labels' device)."""
    labels = _labels(torch.Generator().manual_seed(4), 40, 200).to(device)
    pos_all, neg_all = (labels == 1).nonzero().flatten(), (labels == 0).nonzero().flatten()
    torch.manual_seed(11)
    want_pos = pos_all[torch.randperm(40, device=device)[:16]]
    want_neg = neg_all[torch.randperm(200, device=device)[:48]]
    after = torch.rand(1, device=device)
    torch.manual_seed(11)
    pos, neg = sample_balanced(labels, 64, 0.25)
    assert torch.equal(pos, want_pos) and torch.equal(neg, want_neg)  # random order, not sorted
    assert torch.equal(torch.rand(1, device=device), after)  # same amount of randomness used


def test_sample_balanced_is_random_and_reproducible(device):
    labels = _labels(torch.Generator().manual_seed(0), 500, 500, 0).to(device)
    a = sample_balanced(labels, 64, 0.5, generator=torch.Generator().manual_seed(1))
    b = sample_balanced(labels, 64, 0.5, generator=torch.Generator().manual_seed(1))
    c = sample_balanced(labels, 64, 0.5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    # A generator leaves the global random state alone; without one, torch.manual_seed decides.
    torch.manual_seed(5)
    before = torch.rand(1)
    torch.manual_seed(5)
    sample_balanced(labels, 64, 0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.rand(1), before)
    torch.manual_seed(9)
    d = sample_balanced(labels, 64, 0.5)
    torch.manual_seed(9)
    e = sample_balanced(labels, 64, 0.5)
    assert torch.equal(d[0], e[0]) and torch.equal(d[1], e[1])
    # Not just the first ones: samples come from across the candidates.
    assert int(a[0].max()) > 200


def test_sample_balanced_device(device):
    labels = _labels(torch.Generator().manual_seed(0), 30, 100)
    want = sample_balanced(labels, 32, 0.25, generator=torch.Generator().manual_seed(3))
    # A CPU generator draws the same samples for labels on any device.
    got = sample_balanced(labels.to(device), 32, 0.25, generator=torch.Generator().manual_seed(3))
    for w, g in zip(want, got):
        assert g.device.type == device and g.dtype == torch.int64 and torch.equal(g.cpu(), w)
    pos, neg = sample_balanced(labels.to(device), 32, 0.25)
    assert pos.device.type == device and (len(pos), len(neg)) == (8, 24)
    pos, neg = sample_balanced(torch.zeros(0, dtype=torch.long, device=device), 8, 0.5)
    assert pos.shape == neg.shape == (0,) and pos.device.type == device and pos.dtype == torch.int64


def test_sample_balanced_bad_input():
    labels = torch.tensor([1, 0, -1])
    with pytest.raises(ValueError, match=r"labels must have shape \[N\]"):
        sample_balanced(labels[None], 4, 0.5)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        sample_balanced(labels, 0, 0.5)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        sample_balanced(labels, 4.0, 0.5)
    with pytest.raises(ValueError, match="positive_fraction"):
        sample_balanced(labels, 4, 1.5)
    with pytest.raises(TypeError, match="labels must be a torch.Tensor"):
        sample_balanced([1, 0], 4, 0.5)
