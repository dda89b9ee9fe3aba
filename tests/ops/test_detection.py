"""Tests for pixbox.ops.detection: multibox_detection (D2L layout) and decode_detections."""

from __future__ import annotations

import pytest
import torch

import reference as R
from pixbox.ops import decode_detections, encode_boxes, multibox_detection

DTYPES = [torch.float32, torch.float64]

# D2L 14.4.4 example.
D2L_ANCHORS = torch.tensor([[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95],
                            [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]])
D2L_PROBS = torch.tensor([[0, 0, 0, 0], [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]])


def grid_anchors(g: torch.Generator, a: int, degenerate: float = 0.1) -> torch.Tensor:
    """Anchors on a 1/16 grid in [0, 1]: decoding them with zero offsets is exact, so IoUs exactly at
    the NMS threshold survive decoding."""
    xy = torch.randint(0, 12, (a, 2), generator=g).double() / 16
    wh = torch.randint(1, 6, (a, 2), generator=g).double() / 16
    wh[torch.rand(a, 2, generator=g) < degenerate] = 0.0
    return torch.cat([xy, xy + wh], dim=1)


def random_inputs(g: torch.Generator, b: int, a: int, c: int, dtype, zero_offsets: bool):
    anchors = grid_anchors(g, a).to(dtype)
    probs = (torch.randint(0, 9, (b, c + 1, a), generator=g).double() / 8).to(dtype)  # ties and zeros
    if zero_offsets:
        offsets = torch.zeros(b, 4 * a, dtype=dtype)
    else:
        offsets = (torch.randn(b, 4 * a, generator=g, dtype=torch.float64) * 0.5).to(dtype)
    return probs, offsets, anchors


# --------------------------------------------------------------------------------------------
# multibox_detection


def test_multibox_detection_d2l_golden(device):
    probs, anchors = D2L_PROBS[None].to(device), D2L_ANCHORS[None].to(device)
    out = multibox_detection(probs, torch.zeros(1, 16, device=device), anchors, nms_threshold=0.5)
    assert out.device.type == device
    out = out.cpu()
    expected = torch.tensor([[[0, 0.9, 0.1, 0.08, 0.52, 0.92],
                              [1, 0.9, 0.55, 0.2, 0.9, 0.88],
                              [-1, 0.8, 0.08, 0.2, 0.56, 0.95],
                              [-1, 0.7, 0.15, 0.3, 0.62, 0.91]]])
    assert out.shape == (1, 4, 6) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(out.double(), R.multibox_detection(D2L_PROBS[None], torch.zeros(1, 16), D2L_ANCHORS[None], 0.5),
                               rtol=0, atol=1e-6)


def test_multibox_detection_recovers_encoded_boxes(device):
    f64 = dict(dtype=torch.float64, device=device)
    anchors = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.8]], **f64)
    boxes = torch.tensor([[0.12, 0.08, 0.33, 0.31], [0.45, 0.52, 0.88, 0.85]], **f64)
    offsets = encode_boxes(anchors, boxes).reshape(1, 8)
    probs = torch.tensor([[[0.2, 0.1], [0.7, 0.3], [0.1, 0.6]]], **f64)
    out = multibox_detection(probs, offsets, anchors)
    torch.testing.assert_close(out[0, :, 2:], boxes)
    assert out[0, :, :2].tolist() == [[0, 0.7], [1, 0.6]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(25))
def test_multibox_detection_matches_reference(seed, dtype, device):
    g = torch.Generator().manual_seed(seed)
    a = [0, 1, 30][seed % 3] if seed < 6 else int(torch.randint(2, 40, (1,), generator=g))
    b, c = 2, 1 + seed % 3
    probs, offsets, anchors = random_inputs(g, b, a, c, dtype, zero_offsets=seed % 2 == 0)
    nms_threshold = [0.0, 0.25, 0.5, 0.7, 1.0, -0.1][seed % 6]
    pos_threshold = [0.009999999, 0.3, 0.0][seed % 3]
    out = multibox_detection(probs.to(device), offsets.to(device), anchors[None].to(device), nms_threshold,
                             pos_threshold)
    assert out.shape == (b, a, 6) and out.dtype == dtype and out.device.type == device
    out = out.cpu()
    assert not torch.isnan(out).any()
    ref = R.multibox_detection(probs, offsets, anchors, nms_threshold, pos_threshold)
    assert out[..., 0].tolist() == ref[..., 0].tolist()
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.double(), ref, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_nms_keeps_at_exact_threshold(dtype, device):
    # IoU([0, 0, 0.5, 0.25], [0, 0, 0.25, 0.25]) is exactly 1/2; zero offsets decode exactly.
    anchors = torch.tensor([[0.0, 0, 0.5, 0.25], [0, 0, 0.25, 0.25]], dtype=dtype, device=device)
    probs = torch.tensor([[[0.1, 0.4], [0.9, 0.6]]], dtype=dtype, device=device)
    offsets = torch.zeros(1, 8, dtype=dtype, device=device)
    assert multibox_detection(probs, offsets, anchors, nms_threshold=0.5)[0, :, 0].tolist() == [0, 0]
    assert multibox_detection(probs, offsets, anchors, nms_threshold=0.4999)[0, :, 0].tolist() == [0, -1]
    assert decode_detections(probs, offsets, anchors, nms_threshold=0.5)[0]["scores"].tolist() == pytest.approx([0.9, 0.6])
    assert decode_detections(probs, offsets, anchors, nms_threshold=0.4999)[0]["scores"].tolist() == pytest.approx([0.9])


def test_conf_ties_keep_anchor_order(device):
    anchors = torch.tensor([[0.0, 0, 0.1, 0.1], [0.5, 0.5, 0.6, 0.6], [0.2, 0.2, 0.3, 0.3]], device=device)
    probs = torch.tensor([[[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]], device=device)
    out = multibox_detection(probs, torch.zeros(1, 12, device=device), anchors)
    torch.testing.assert_close(out[0, :, 2:], anchors)
    dets = decode_detections(probs, torch.zeros(1, 12, device=device), anchors)[0]
    torch.testing.assert_close(dets["boxes"], anchors)


def test_multibox_detection_parameters_change_output(device):
    probs, offsets, anchors = D2L_PROBS[None].to(device), torch.zeros(1, 16, device=device), D2L_ANCHORS.to(device)
    base = multibox_detection(probs, offsets, anchors)  # nms_threshold=0.5 by default
    torch.testing.assert_close(base, multibox_detection(probs, offsets, anchors, 0.5))
    # nms_threshold: at 0.9 nothing is suppressed.
    loose = multibox_detection(probs, offsets, anchors, nms_threshold=0.9)
    assert loose[0, :, 0].tolist() == [0, 1, 0, 0] and loose[0, :, 1].tolist() == pytest.approx([0.9, 0.9, 0.8, 0.7])
    # pos_threshold: rows below it become background with confidence 1 - conf.
    strict = multibox_detection(probs, offsets, anchors, pos_threshold=0.85)
    assert strict[0, :, 0].tolist() == [0, 1, -1, -1]
    assert strict[0, :, 1].tolist() == pytest.approx([0.9, 0.9, 0.2, 0.3])
    strict = multibox_detection(probs, offsets, anchors, pos_threshold=0.95)
    assert strict[0, :, 0].tolist() == [-1, -1, -1, -1]
    # means and stds change the decoded boxes of non-zero offsets.
    ones = torch.ones(1, 16, device=device)
    a = multibox_detection(probs, ones, anchors)
    b = multibox_detection(probs, ones, anchors, means=(0.1, 0, 0, 0))
    c = multibox_detection(probs, ones, anchors, stds=(0.2, 0.1, 0.2, 0.2))
    assert not torch.equal(a[..., 2:], b[..., 2:]) and not torch.equal(a[..., 2:], c[..., 2:])


def test_multibox_detection_empty_and_degenerate(device):
    out = multibox_detection(torch.zeros(2, 3, 0, device=device), torch.zeros(2, 0, device=device), torch.zeros(0, 4, device=device))
    assert out.shape == (2, 0, 6) and out.device.type == device
    out = multibox_detection(torch.zeros(0, 3, 4, device=device), torch.zeros(0, 16, device=device), D2L_ANCHORS.to(device))
    assert out.shape == (0, 4, 6)
    # Degenerate anchors: boxes with zero area never give NaN (their pairwise IoU 0/0 never suppresses).
    anchors = torch.tensor([[0.5, 0.5, 0.5, 0.5]] * 3 + [[0.1, 0.1, 0.1, 0.4]], device=device)
    probs = torch.tensor([[[0.1] * 4, [0.9, 0.8, 0.7, 0.6]]], device=device)
    out = multibox_detection(probs, torch.zeros(1, 16, device=device), anchors, nms_threshold=0.0)
    assert not torch.isnan(out).any() and out[0, :, 0].tolist() == [0, 0, 0, 0]


def test_multibox_detection_dtype_and_device(device):
    for dtype in DTYPES:
        out = multibox_detection(D2L_PROBS[None].to(device, dtype), torch.zeros(1, 16, device=device, dtype=dtype),
                                 D2L_ANCHORS.to(device))
        assert out.device.type == device and out.dtype == dtype
        assert out[0, :, 0].tolist() == [0, 1, -1, -1]


# --------------------------------------------------------------------------------------------
# decode_detections


def _check_against_reference(got, ref, dtype, device="cpu"):
    assert len(got) == len(ref)
    tol = dict(rtol=1e-6, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for d, r in zip(got, ref):
        assert d["labels"].dtype == torch.int64 and d["scores"].dtype == dtype and d["boxes"].dtype == dtype
        assert all(v.device.type == device for v in d.values())
        assert d["labels"].tolist() == r["labels"].tolist()
        assert d["scores"].tolist() == r["scores"].tolist()
        assert d["boxes"].shape == (len(r["labels"]), 4)
        torch.testing.assert_close(d["boxes"].cpu().double(), r["boxes"], **tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(25))
def test_decode_detections_matches_reference(seed, dtype, device):
    g = torch.Generator().manual_seed(seed)
    a = [0, 1, 30][seed % 3] if seed < 6 else int(torch.randint(2, 40, (1,), generator=g))
    b, c = 3, 1 + seed % 3
    probs, offsets, anchors = random_inputs(g, b, a, c, dtype, zero_offsets=seed % 2 == 0)
    kwargs = dict(score_threshold=[0.01, 0.3, 0.5, -1.0][seed % 4], nms_threshold=[0.0, 0.25, 0.45, 0.5, 0.7, 1.0][seed % 6],
                  topk=[200, 1, 5][seed % 3], clip=bool(seed % 2))
    got = decode_detections(probs.to(device), offsets.to(device), anchors.to(device), **kwargs)
    _check_against_reference(got, R.decode_detections(probs, offsets, anchors, **kwargs), dtype, device)


def test_decode_detections_golden(device):
    # IoU(0, 1) = 0.737, IoU(0, 2) = 0.545, IoU(1, 2) = 0.631, IoU(0, 3) = 0, IoU(1, 3) = 0.012, IoU(2, 3) = 0.084.
    # Class 0 (0.9, 0.8, 0.7, 0.1): anchor 0 suppresses 1 and 2; anchor 3 stays.
    # Class 1 (0.1, 0.2, 0.3, 0.9): 3 and 2 stay; 2 suppresses 1 and 0.
    out = decode_detections(D2L_PROBS[None].to(device), torch.zeros(1, 16, device=device), D2L_ANCHORS.to(device),
                            nms_threshold=0.5)
    assert len(out) == 1 and out[0]["boxes"].device.type == device
    assert out[0]["labels"].tolist() == [0, 1, 1, 0]
    assert out[0]["scores"].tolist() == pytest.approx([0.9, 0.9, 0.3, 0.1])
    torch.testing.assert_close(out[0]["boxes"].cpu(), D2L_ANCHORS[[0, 3, 2, 3]])


def test_decode_detections_parameters_change_output(device):
    probs, offsets, anchors = D2L_PROBS[None].to(device), torch.zeros(1, 16, device=device), D2L_ANCHORS.to(device)

    def run(**kw):
        d = decode_detections(probs, offsets, anchors, **kw)[0]
        return d["labels"].tolist(), d["scores"].tolist()

    # score_threshold
    assert run(nms_threshold=0.5)[0] == [0, 1, 1, 0]
    assert run(nms_threshold=0.5, score_threshold=0.25)[0] == [0, 1, 1]
    assert run(nms_threshold=0.5, score_threshold=0.1)[0] == [0, 1, 1]  # strictly greater
    # nms_threshold (default 0.45 gives the same as 0.5 here)
    assert run() == run(nms_threshold=0.5)
    assert run(nms_threshold=0.6)[0] == [0, 1, 0, 1, 0, 1]
    assert run(nms_threshold=0.6)[1] == pytest.approx([0.9, 0.9, 0.7, 0.3, 0.1, 0.1])
    assert run(nms_threshold=0.0)[0] == [0, 1, 0, 1]
    assert len(run(nms_threshold=0.99)[0]) == 8
    # topk
    base = decode_detections(probs, offsets, anchors, nms_threshold=0.5)[0]
    top2 = decode_detections(probs, offsets, anchors, nms_threshold=0.5, topk=2)[0]
    assert top2["labels"].tolist() == [0, 1] and torch.equal(top2["boxes"], base["boxes"][:2])
    # clip: boxes that leave [0, 1] are clipped only when asked.
    big = torch.tensor([[0.0, 0.0, 5.0, 5.0]] * 4, device=device).reshape(1, 16)
    raw = decode_detections(probs, big, anchors)[0]["boxes"]
    clipped = decode_detections(probs, big, anchors, clip=True)[0]["boxes"]
    assert raw.max() > 1 and clipped.max() <= 1 and clipped.min() >= 0
    # means and stds
    ones = torch.ones(1, 16, device=device)
    a = decode_detections(probs, ones, anchors)[0]["boxes"]
    assert not torch.equal(a, decode_detections(probs, ones, anchors, means=(0.1, 0, 0, 0))[0]["boxes"])
    assert not torch.equal(a, decode_detections(probs, ones, anchors, stds=(0.2, 0.1, 0.2, 0.2))[0]["boxes"])


def test_decode_detections_empty(device):
    for dtype in DTYPES:
        out = decode_detections(torch.zeros(2, 3, 4, device=device, dtype=dtype), torch.zeros(2, 16, device=device, dtype=dtype),
                                D2L_ANCHORS.to(device))
        assert len(out) == 2
        for d in out:
            assert d["boxes"].shape == (0, 4) and d["scores"].shape == (0,) and d["labels"].shape == (0,)
            assert d["boxes"].dtype == dtype and d["scores"].dtype == dtype and d["labels"].dtype == torch.int64
            assert d["boxes"].device.type == device
    out = decode_detections(torch.zeros(2, 3, 0, device=device), torch.zeros(2, 0, device=device), torch.zeros(0, 4, device=device))
    assert len(out) == 2 and out[0]["boxes"].shape == (0, 4)
    assert decode_detections(torch.zeros(0, 3, 4), torch.zeros(0, 16), D2L_ANCHORS) == []


def test_decode_detections_device(device):
    out = decode_detections(D2L_PROBS[None].to(device), torch.zeros(1, 16, device=device), D2L_ANCHORS[None].to(device), nms_threshold=0.5)
    assert out[0]["boxes"].device.type == device and out[0]["labels"].tolist() == [0, 1, 1, 0]


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("fn", [multibox_detection, decode_detections])
def test_bad_input_raises_with_argument_name(fn):
    probs, offsets, anchors = D2L_PROBS[None], torch.zeros(1, 16), D2L_ANCHORS
    with pytest.raises(ValueError, match="cls_probs"):
        fn(D2L_PROBS, offsets, anchors)
    with pytest.raises(ValueError, match="cls_probs"):
        fn(probs[:, :1], offsets, anchors)  # no object class
    with pytest.raises(ValueError, match="cls_probs"):
        fn(probs[..., :3], offsets, anchors)  # A mismatch
    with pytest.raises(TypeError, match="cls_probs"):
        fn(probs.long(), offsets, anchors)
    with pytest.raises(ValueError, match="offset_preds"):
        fn(probs, torch.zeros(1, 15), anchors)
    with pytest.raises(ValueError, match="offset_preds"):
        fn(probs, torch.zeros(1, 4, 4), anchors)
    with pytest.raises(TypeError, match="offset_preds"):  # integer offsets are fine (the book's), bool are not
        fn(probs, torch.zeros(1, 16, dtype=torch.bool), anchors)
    with pytest.raises(ValueError, match="anchors"):
        fn(probs, offsets, anchors[:, :3])
    with pytest.raises(ValueError, match="anchors"):
        fn(probs, offsets, torch.stack([anchors, anchors]))
    with pytest.raises(ValueError, match="cls_probs"):
        fn(torch.full_like(probs, float("nan")), offsets, anchors)
    with pytest.raises(ValueError, match="stds"):
        fn(probs, offsets, anchors, stds=(0.1, 0.1, 0.2, 0.0))
    with pytest.raises(ValueError, match="nms_threshold"):
        fn(probs, offsets, anchors, nms_threshold=float("nan"))


def test_decode_detections_bad_keywords():
    probs, offsets, anchors = D2L_PROBS[None], torch.zeros(1, 16), D2L_ANCHORS
    with pytest.raises(ValueError, match="topk"):
        decode_detections(probs, offsets, anchors, topk=0)
    with pytest.raises(ValueError, match="score_threshold"):
        decode_detections(probs, offsets, anchors, score_threshold=float("nan"))
    with pytest.raises(ValueError, match="pos_threshold"):
        multibox_detection(probs, offsets, anchors, pos_threshold=float("nan"))


def test_decode_detections_pre_nms_topk(device):
    g = torch.Generator().manual_seed(3)
    a = 300
    xy = torch.rand(a, 2, generator=g) * 0.8
    anchors = torch.cat([xy, xy + 0.05 + torch.rand(a, 2, generator=g) * 0.15], 1).to(device)
    probs = torch.randn(2, 3, a, generator=g).softmax(1).to(device)
    offsets = (torch.randn(2, 4 * a, generator=g) * 0.1).to(device)
    full = decode_detections(probs, offsets, anchors, topk=1000)
    same = decode_detections(probs, offsets, anchors, topk=1000, pre_nms_topk=a)
    for x, y in zip(full, same):
        assert all(torch.equal(x[k], y[k]) for k in ("boxes", "scores", "labels"))
    capped = decode_detections(probs, offsets, anchors, topk=1000, pre_nms_topk=5)
    for x, y, p in zip(full, capped, probs):
        for c in range(2):
            kept = set(y["scores"][y["labels"] == c].tolist())
            top5 = set(p[c + 1].topk(5).values.tolist())
            assert len(kept) <= 5 and kept <= top5
            # A box among the 5 best can only be suppressed by a better one, also among them.
            assert set(x["scores"][x["labels"] == c].tolist()) & top5 == kept
    with pytest.raises(ValueError, match="pre_nms_topk"):
        decode_detections(probs, offsets, anchors, pre_nms_topk=0)


# --------------------------------------------------------------------------------------------
# the book's inputs (issue 18): raw network outputs that require grad, integer offsets


def test_multibox_detection_on_inputs_that_require_grad(device):
    """The book calls multibox_detection on raw network outputs: same rows, and no gradient."""
    g = torch.Generator().manual_seed(0)
    probs, offsets, anchors = (t.to(device) for t in random_inputs(g, 3, 30, 2, torch.float32, zero_offsets=False))
    expected = multibox_detection(probs, offsets, anchors, 0.5)
    logits = probs.clone().requires_grad_()
    raw = offsets.clone().requires_grad_()
    out = multibox_detection(logits * 1, raw * 1, anchors.clone().requires_grad_(), 0.5)
    assert not out.requires_grad and out.grad_fn is None
    assert torch.equal(out, expected)


def test_decode_detections_on_inputs_that_require_grad(device):
    """Same detections; boxes and scores stay differentiable (NMS itself needs no gradient)."""
    g = torch.Generator().manual_seed(1)
    probs, offsets, anchors = (t.to(device) for t in random_inputs(g, 2, 40, 2, torch.float64, zero_offsets=False))
    expected = decode_detections(probs, offsets, anchors)
    p, o = probs.clone().requires_grad_(), offsets.clone().requires_grad_()
    got = decode_detections(p, o, anchors)
    for e, d in zip(expected, got):
        assert torch.equal(e["labels"], d["labels"])
        assert torch.equal(e["boxes"], d["boxes"].detach()) and torch.equal(e["scores"], d["scores"].detach())
    sum(d["boxes"].sum() + d["scores"].sum() for d in got).backward()
    assert o.grad is not None and p.grad is not None


def test_multibox_detection_takes_the_books_integer_offsets(device):
    """D2L 14.4.4 passes ``offset_preds = torch.tensor([0] * anchors.numel())`` (int64)."""
    offsets = torch.tensor([0] * D2L_ANCHORS.numel(), device=device)
    assert offsets.dtype == torch.int64
    probs, anchors = D2L_PROBS[None].to(device), D2L_ANCHORS.to(device)
    out = multibox_detection(probs, offsets[None], anchors[None], nms_threshold=0.5)
    assert out.dtype == torch.float32 and out.device.type == device  # the dtype of cls_probs
    assert torch.equal(out, multibox_detection(probs, torch.zeros(1, 16, device=device), anchors[None], 0.5))
    dets = decode_detections(probs, offsets[None].int(), anchors)
    assert dets[0]["boxes"].dtype == torch.float32 and dets[0]["labels"].tolist() == [0, 1, 1, 0]


@pytest.mark.parametrize("seed", range(4))
def test_multibox_detection_many_images_with_ties_matches_reference(seed, device):
    """Images are ranked separately and interleaved for one batched NMS: ties within and across
    images (quantised probabilities) must still give each image's own D2L rows."""
    g = torch.Generator().manual_seed(seed)
    probs, offsets, anchors = random_inputs(g, 7, 60, 2, torch.float64, zero_offsets=seed % 2 == 0)
    probs[3] = probs[1]  # two identical images
    ref = R.multibox_detection(probs, offsets, anchors, 0.5)
    probs, offsets, anchors = probs.to(device), offsets.to(device), anchors.to(device)
    out = multibox_detection(probs, offsets, anchors, 0.5)
    assert out[..., 0].tolist() == ref[..., 0].tolist()
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-12, atol=1e-12)
    for i in range(probs.shape[0]):  # the batch is the images one at a time
        assert torch.equal(out[i:i + 1], multibox_detection(probs[i:i + 1], offsets[i:i + 1], anchors, 0.5))


def test_ranking_by_confidence_is_a_stable_descending_sort(device):
    """multibox_detection ranks float32 confidences with int64 keys instead of a stable sort."""
    from pixbox.ops.detection import _rank_desc

    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        conf = torch.randint(-5, 6, (4, 300), generator=g).float() / 4  # many ties
        conf[0, :10], conf[0, 10:20] = -0.0, 0.0  # equal, though their bits differ
        conf[1] = torch.randn(300, generator=g) * 1e30
        conf[2, ::3], conf[2, 1::3] = float("inf"), float("-inf")
        conf = conf.to(device)
        for c in (conf, conf.double(), conf.half()):
            assert torch.equal(_rank_desc(c), torch.sort(c, dim=1, descending=True, stable=True).indices)
