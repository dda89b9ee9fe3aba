"""Tests for pixbox.ops.boxes: formats, areas, IoU, GIoU and box hygiene."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import reference as R
from pixbox.ops import (
    box_area,
    box_convert,
    box_iou,
    clip_boxes,
    complete_box_iou,
    denormalize_boxes,
    distance_box_iou,
    generalized_box_iou,
    normalize_boxes,
    remove_small_boxes,
    sanitize_boxes,
)

DTYPES = [torch.float32, torch.float64]
FORMATS = ["xyxy", "xywh", "cxcywh"]


def random_boxes(g: torch.Generator, n: int, canvas: int = 12, max_side: int = 6, degenerate: float = 0.15) -> torch.Tensor:
    """Integer-coordinate xyxy boxes (exact IoU ties occur), some with zero width or height."""
    xy = torch.randint(0, canvas, (n, 2), generator=g).double()
    wh = torch.randint(1, max_side + 1, (n, 2), generator=g).double()
    wh[torch.rand(n, 2, generator=g) < degenerate] = 0.0
    return torch.cat([xy, xy + wh], dim=1)


# --------------------------------------------------------------------------------------------
# golden values


def test_box_convert_golden(device):
    xyxy = torch.tensor([[1.0, 2.0, 4.0, 8.0], [0.0, 0.0, 0.0, 0.0]], device=device)
    xywh = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 0.0]], device=device)
    cxcywh = torch.tensor([[2.5, 5.0, 3.0, 6.0], [0.0, 0.0, 0.0, 0.0]], device=device)
    assert torch.equal(box_convert(xyxy, "xyxy", "xywh"), xywh)
    assert torch.equal(box_convert(xyxy, "xyxy", "cxcywh"), cxcywh)
    assert torch.equal(box_convert(xywh, "xywh", "xyxy"), xyxy)
    assert torch.equal(box_convert(cxcywh, "cxcywh", "xyxy"), xyxy)
    assert torch.equal(box_convert(xywh, "xywh", "cxcywh"), cxcywh)
    assert torch.equal(box_convert(cxcywh, "cxcywh", "xywh"), xywh)


def test_box_convert_same_format_returns_a_copy(device):
    boxes = torch.tensor([[1.0, 2.0, 4.0, 8.0]], device=device)
    out = box_convert(boxes, "xywh", "xywh")
    assert torch.equal(out, boxes) and out.device == boxes.device
    out[0, 0] = 100.0
    assert boxes[0, 0] == 1.0


def test_box_area_golden(device):
    boxes = torch.tensor([[0.0, 0, 2, 3], [1, 1, 1, 5], [0.5, 0.5, 1.0, 1.5]], device=device)
    assert box_area(boxes).tolist() == [6.0, 0.0, 0.5]


def test_box_iou_and_giou_golden(device):
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 1, 1]], dtype=torch.float64, device=device)
    b = torch.tensor([[1.0, 1, 3, 3], [2, 0, 3, 1], [0, 0, 2, 2]], dtype=torch.float64, device=device)
    # [0,0,2,2] vs [1,1,3,3]: inter 1, union 7, hull 9 -> IoU 1/7, GIoU 1/7 - 2/9 = -5/63.
    # [0,0,2,2] vs [2,0,3,1]: touching, inter 0, union 5, hull 6 -> IoU 0, GIoU -1/6.
    # [0,0,1,1] vs [1,1,3,3]: inter 0, union 5, hull 9 -> GIoU -4/9.
    # [0,0,1,1] vs [2,0,3,1]: inter 0, union 2, hull 3 -> GIoU -1/3.
    # [0,0,1,1] vs [0,0,2,2]: inter 1, union 4 -> IoU 1/4 = GIoU.
    iou = torch.tensor([[1 / 7, 0.0, 1.0], [0.0, 0.0, 0.25]], dtype=torch.float64)
    giou = torch.tensor([[-5 / 63, -1 / 6, 1.0], [-4 / 9, -1 / 3, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(box_iou(a, b).cpu(), iou, rtol=0, atol=1e-15)
    torch.testing.assert_close(generalized_box_iou(a, b).cpu(), giou, rtol=0, atol=1e-15)


def test_box_iou_exactly_half(device):
    boxes = torch.tensor([[0.0, 0, 2, 1], [0, 0, 1, 1]], device=device)
    for dtype in DTYPES:
        assert box_iou(boxes.to(dtype), boxes.to(dtype)).tolist() == [[1.0, 0.5], [0.5, 1.0]]


# --------------------------------------------------------------------------------------------
# against the reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(0, 0), (0, 3), (3, 0), (1, 1), (1, 9), (17, 12)])
@pytest.mark.parametrize("seed", range(10))
def test_box_iou_matches_reference(seed, n, m, dtype, device):
    g = torch.Generator().manual_seed(seed)
    a = random_boxes(g, n).to(dtype)
    b = random_boxes(g, m).to(dtype)
    got = box_iou(a.to(device), b.to(device))
    assert got.shape == (n, m) and got.dtype == dtype and got.device.type == device
    # The reference computes every operation in the same dtype, so the values are identical.
    torch.testing.assert_close(got.cpu().double(), R.box_iou(a, b), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(20))
def test_box_iou_matches_reference_continuous(seed, dtype, device):
    g = torch.Generator().manual_seed(seed)
    n, m = torch.randint(1, 12, (2,), generator=g).tolist()
    xy = torch.rand(n + m, 2, generator=g, dtype=torch.float64) * 10
    wh = torch.rand(n + m, 2, generator=g, dtype=torch.float64) * 5
    boxes = torch.cat([xy, xy + wh], dim=1).to(dtype)
    a, b = boxes[:n], boxes[n:]
    da, db = a.to(device), b.to(device)
    torch.testing.assert_close(box_iou(da, db).cpu().double(), R.box_iou(a, b), rtol=0, atol=0)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    giou = generalized_box_iou(da, db).cpu().double()
    torch.testing.assert_close(giou, R.generalized_box_iou(a, b), rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,m", [(0, 2), (1, 1), (15, 10)])
@pytest.mark.parametrize("seed", range(10))
def test_generalized_box_iou_matches_reference(seed, n, m, dtype, device):
    g = torch.Generator().manual_seed(100 + seed)
    a = random_boxes(g, n).to(dtype)
    b = random_boxes(g, m).to(dtype)
    got = generalized_box_iou(a.to(device), b.to(device))
    assert got.shape == (n, m) and got.dtype == dtype and got.device.type == device
    got = got.cpu()
    assert not torch.isnan(got).any()
    assert bool(((got >= -1) & (got <= 1)).all())
    torch.testing.assert_close(got.double(), R.generalized_box_iou(a, b), rtol=0, atol=1e-6)


def test_iou_properties(device):
    g = torch.Generator().manual_seed(0)
    a = random_boxes(g, 20).to(device)
    b = random_boxes(g, 15).to(device)
    iou = box_iou(a, b)
    assert torch.equal(iou, box_iou(b, a).T)
    assert bool(((iou >= 0) & (iou <= 1)).all())
    giou = generalized_box_iou(a, b)
    assert bool((giou <= iou + 1e-12).all())
    real = box_area(a) > 0
    self_iou = box_iou(a[real], a[real]).diagonal().cpu()
    torch.testing.assert_close(self_iou, torch.ones(int(real.sum()), dtype=torch.float64))


def test_degenerate_boxes_never_give_nan(device):
    boxes = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1], [0, 2, 4, 2], [3, 0, 3, 5], [0, 0, 4, 4]], device=device)
    for dtype in DTYPES + [torch.float16]:
        b = boxes.to(dtype)
        iou = box_iou(b, b)
        giou = generalized_box_iou(b, b)
        assert not torch.isnan(iou).any() and not torch.isnan(giou).any()
        assert iou[:4].abs().sum() == 0 and iou[:, :4].abs().sum() == 0
        assert iou[4, 4] == 1.0


# --------------------------------------------------------------------------------------------
# gradients


def _separated_pairs(dtype=torch.float64, device="cpu"):
    # Partially overlapping and disjoint pairs, no coordinate ties: the functions are smooth here.
    a = torch.tensor([[0.0, 0.1, 2.3, 2.0], [1.05, 0.95, 4.2, 3.1], [6.0, 6.2, 7.1, 8.3]], dtype=dtype, device=device)
    b = torch.tensor([[1.1, 0.55, 3.25, 2.7], [5.0, 5.05, 6.45, 7.0]], dtype=dtype, device=device)
    return a.requires_grad_(), b.requires_grad_()


def test_box_iou_gradcheck(device):
    assert torch.autograd.gradcheck(box_iou, _separated_pairs(device=device))


def test_generalized_box_iou_gradcheck(device):
    assert torch.autograd.gradcheck(generalized_box_iou, _separated_pairs(device=device))


# --------------------------------------------------------------------------------------------
# round trips, dtypes, devices


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(5))
def test_box_convert_round_trips(seed, dtype, device):
    g = torch.Generator().manual_seed(seed)
    boxes = (torch.rand(3, 7, 4, generator=g, dtype=torch.float64) * 50).to(device, dtype)
    boxes[..., 2:] += boxes[..., :2]
    tol = dict(rtol=1e-6, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for fmt_a, fmt_b in itertools.permutations(FORMATS, 2):
        start = box_convert(boxes, "xyxy", fmt_a)
        back = box_convert(box_convert(start, fmt_a, fmt_b), fmt_b, fmt_a)
        assert back.shape == boxes.shape and back.dtype == dtype and back.device == boxes.device
        torch.testing.assert_close(back, start, **tol)
    via_all = box_convert(box_convert(box_convert(boxes, "xyxy", "xywh"), "xywh", "cxcywh"), "cxcywh", "xyxy")
    torch.testing.assert_close(via_all, boxes, **tol)


def test_box_convert_empty_and_batched(device):
    for shape in [(0, 4), (2, 0, 4), (2, 3, 4)]:
        boxes = torch.ones(shape, dtype=torch.float64, device=device)
        for fmt_a, fmt_b in itertools.product(FORMATS, FORMATS):
            out = box_convert(boxes, fmt_a, fmt_b)
            assert out.shape == shape and out.dtype == torch.float64 and out.device.type == device


def test_normalize_denormalize_round_trip(device):
    boxes = torch.tensor([[0.0, 0, 640, 480], [10, 20, 30, 40]], device=device, dtype=torch.float64)
    norm = normalize_boxes(boxes, (480, 640))
    torch.testing.assert_close(norm, torch.tensor([[0.0, 0, 1, 1], [10 / 640, 20 / 480, 30 / 640, 40 / 480]], dtype=torch.float64, device=device))
    torch.testing.assert_close(denormalize_boxes(norm, (480, 640)), boxes)
    # size is (height, width): swapping it changes the output.
    assert not torch.equal(normalize_boxes(boxes, (640, 480)), norm)
    assert normalize_boxes(torch.zeros(0, 4), (2, 3)).shape == (0, 4)


def test_ops_follow_input_device_and_dtype(device):
    g = torch.Generator().manual_seed(0)
    for dtype in DTYPES:
        a = random_boxes(g, 5).to(device, dtype)
        b = random_boxes(g, 4).to(device, dtype)
        for out in (box_iou(a, b), generalized_box_iou(a, b), box_area(a), clip_boxes(a, (5, 5)),
                    box_convert(a, "xyxy", "cxcywh"), normalize_boxes(a, (4, 4)), denormalize_boxes(a, (4, 4)),
                    sanitize_boxes(a)[0]):
            assert out.device.type == device and out.dtype == dtype
        assert remove_small_boxes(a, 1).device.type == device


def test_empty_inputs(device):
    for dtype in DTYPES:
        e = torch.zeros(0, 4, dtype=dtype, device=device)
        b = torch.tensor([[0.0, 0, 1, 1]], dtype=dtype, device=device)
        assert box_iou(e, b).shape == (0, 1) and box_iou(b, e).shape == (1, 0)
        assert box_iou(e, e).dtype == dtype and generalized_box_iou(e, b).shape == (0, 1)
        assert box_area(e).shape == (0,) and box_area(e).dtype == dtype
        assert clip_boxes(e, (1, 1)).shape == (0, 4)
        boxes, keep = sanitize_boxes(e, (1, 1), mode="drop")
        assert boxes.shape == (0, 4) and keep.shape == (0,) and keep.dtype == torch.int64
        assert remove_small_boxes(e, 1).shape == (0,)


def test_half_precision_does_not_overflow(device):
    boxes = torch.tensor([[0.0, 0, 300, 300], [100, 100, 400, 400]], dtype=torch.float16, device=device)
    area = box_area(boxes)
    assert area.dtype == torch.float32 and area.device.type == device and area.tolist() == [90000.0, 90000.0]
    iou = box_iou(boxes, boxes)
    assert torch.isfinite(iou).all() and iou.device.type == device
    torch.testing.assert_close(iou.cpu(), torch.tensor([[1.0, 40000 / 140000], [40000 / 140000, 1.0]]))
    giou = generalized_box_iou(boxes, boxes)
    assert torch.isfinite(giou).all()
    torch.testing.assert_close(giou[0, 1].cpu(), torch.tensor(40000 / 140000 - (160000 - 140000) / 160000))


# --------------------------------------------------------------------------------------------
# clip / sanitize / remove_small_boxes: every parameter changes the output


def test_clip_boxes_size(device):
    boxes = torch.tensor([[-5.0, -5, 50, 20], [2, 3, 4, 5]], device=device)
    assert clip_boxes(boxes, (10, 30)).tolist() == [[0.0, 0, 30, 10], [2, 3, 4, 5]]
    assert clip_boxes(boxes, (30, 10)).tolist() == [[0.0, 0, 10, 20], [2, 3, 4, 5]]
    assert clip_boxes(boxes[None], (10, 30)).shape == (1, 2, 4)
    assert boxes[0, 0] == -5.0  # input untouched


def test_sanitize_boxes_modes(device):
    boxes = torch.tensor([[0.0, 0, 4, 4], [5, 5, 3, 8], [-1, 2, 3, 12], [1, float("nan"), 2, 2], [2, 2, 2.5, 2.5]],
                         device=device)
    # raise: the default, names the first bad row.
    with pytest.raises(ValueError, match="row 1"):
        sanitize_boxes(boxes)
    # drop: only the well-formed boxes survive (no size given: position is free).
    out, keep = sanitize_boxes(boxes, mode="drop")
    assert keep.tolist() == [0, 2, 4] and torch.equal(out, boxes[[0, 2, 4]])
    assert out.device.type == keep.device.type == device
    # clip: inverted corners swapped; NaN still dropped.
    out, keep = sanitize_boxes(boxes, mode="clip")
    assert keep.tolist() == [0, 1, 2, 4]
    assert out[1].tolist() == [3.0, 5, 5, 8]


def test_sanitize_boxes_size_changes_output(device):
    boxes = torch.tensor([[0.0, 0, 4, 4], [-1, 2, 3, 12]], device=device)
    assert sanitize_boxes(boxes, mode="drop")[1].tolist() == [0, 1]
    assert sanitize_boxes(boxes, (10, 10), mode="drop")[1].tolist() == [0]
    out, keep = sanitize_boxes(boxes, (10, 10), mode="clip")
    assert keep.tolist() == [0, 1] and out[1].tolist() == [0.0, 2, 3, 10]
    with pytest.raises(ValueError, match="row 1"):
        sanitize_boxes(boxes, (10, 10))


def test_sanitize_boxes_min_size_changes_output(device):
    boxes = torch.tensor([[0.0, 0, 4, 4], [1, 1, 1.5, 3], [2, 2, 2, 2]], device=device)
    assert sanitize_boxes(boxes)[1].tolist() == [0, 1, 2]  # degenerate boxes are valid by default
    assert sanitize_boxes(boxes, mode="drop", min_size=0.5)[1].tolist() == [0, 1]
    assert sanitize_boxes(boxes, mode="drop", min_size=1.0)[1].tolist() == [0]
    assert sanitize_boxes(boxes, mode="clip", min_size=1.0)[1].tolist() == [0]
    with pytest.raises(ValueError, match="min_size"):
        sanitize_boxes(boxes, min_size=1.0)


def test_remove_small_boxes_min_size(device):
    boxes = torch.tensor([[0.0, 0, 4, 4], [1, 1, 1.5, 3], [2, 2, 2, 2]], device=device)
    assert remove_small_boxes(boxes, 0).tolist() == [0, 1, 2]
    assert remove_small_boxes(boxes, 0.5).tolist() == [0, 1]
    assert remove_small_boxes(boxes, 2).tolist() == [0]


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises_with_argument_name():
    good = torch.tensor([[0.0, 0, 1, 1]])
    with pytest.raises(ValueError, match="boxes1"):
        box_iou(torch.zeros(2, 3), good)
    with pytest.raises(ValueError, match="boxes2"):
        box_iou(good, torch.tensor([[1.0, 0, 0, 1]]))  # x2 < x1
    with pytest.raises(ValueError, match="boxes2"):
        generalized_box_iou(good, torch.tensor([[0.0, 1, 1, 0]]))  # y2 < y1
    with pytest.raises(ValueError, match="boxes1"):
        box_iou(torch.tensor([[0.0, 0, float("nan"), 1]]), good)
    with pytest.raises(TypeError, match="boxes1"):  # integer boxes are fine (as torchvision's), bool are not
        box_iou(torch.tensor([[False, False, True, True]]), good)
    with pytest.raises(TypeError, match="boxes2"):
        box_iou(good, [[0.0, 0, 1, 1]])
    with pytest.raises(ValueError, match="boxes"):
        box_area(torch.zeros(4))
    with pytest.raises(ValueError, match="in_fmt"):
        box_convert(good, "xyxz", "xyxy")
    with pytest.raises(ValueError, match="did you mean 'cxcywh'"):
        box_convert(good, "xyxy", "cxcyhw")
    with pytest.raises(ValueError, match="out_fmt"):
        box_convert(good, "xyxy", "XYWH")
    with pytest.raises(ValueError, match="boxes"):
        box_convert(torch.zeros(2, 3), "xyxy", "xywh")
    with pytest.raises(ValueError, match="size"):
        clip_boxes(good, (1, 2, 3))
    with pytest.raises(ValueError, match="size"):
        clip_boxes(good, (-1, 2))
    with pytest.raises(ValueError, match="boxes"):
        clip_boxes(torch.zeros(3), (1, 1))
    with pytest.raises(ValueError, match="mode"):
        sanitize_boxes(good, mode="fix")
    with pytest.raises(ValueError, match="min_size"):
        sanitize_boxes(good, min_size=-1)
    with pytest.raises(TypeError, match="boxes"):
        sanitize_boxes(good.long())
    with pytest.raises(ValueError, match="boxes"):
        sanitize_boxes(torch.zeros(1, 5))
    with pytest.raises(ValueError, match="size"):
        normalize_boxes(good, (0, 10))
    with pytest.raises(ValueError, match="size"):
        denormalize_boxes(good, (10, -1))
    with pytest.raises(ValueError, match="boxes"):
        normalize_boxes(torch.zeros(2, 5), (1, 1))
    with pytest.raises(ValueError, match="min_size"):
        remove_small_boxes(good, -0.5)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_boxes_raise_instead_of_giving_nan(value, device):
    """Issue 19: boxes with +-Inf passed the check and box_iou returned NaN."""
    from pixbox.ops import box_iou, generalized_box_iou

    bad = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    bad[1, 2 if value > 0 else 0] = value
    bad, good = bad.to(device), torch.tensor([[0.0, 0.0, 1.0, 1.0]], device=device)
    for fn in (box_iou, generalized_box_iou):
        with pytest.raises(ValueError, match=r"boxes1 must be well-formed xyxy boxes .* all finite; row 1 is"):
            fn(bad, good)


# --------------------------------------------------------------------------------------------
# integer and half-precision boxes (issue 18): torchvision's dtypes, written as facts

INT_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8]
#: box_area's output dtype for each input dtype, as torchvision 0.28's box_area.
AREA_DTYPE = {torch.int8: torch.int32, torch.int16: torch.int32, torch.int32: torch.int32,
              torch.int64: torch.int64, torch.uint8: torch.int32, torch.float16: torch.float32,
              torch.bfloat16: torch.float32, torch.float32: torch.float32, torch.float64: torch.float64}
#: the IoU family's output dtype for each input dtype (integers: the default float dtype).
IOU_DTYPE = {torch.int8: torch.float32, torch.int16: torch.float32, torch.int32: torch.float32,
             torch.int64: torch.float32, torch.uint8: torch.float32, torch.float16: torch.float32,
             torch.bfloat16: torch.float32, torch.float32: torch.float32, torch.float64: torch.float64}
IOU_FAMILY = [box_iou, generalized_box_iou, distance_box_iou, complete_box_iou]


@pytest.mark.parametrize("dtype", list(AREA_DTYPE))
def test_integer_and_half_boxes_give_torchvisions_dtypes(dtype, device):
    g = torch.Generator().manual_seed(0)
    a = random_boxes(g, 9, canvas=60, max_side=40)  # small integers: exact in every dtype
    b = random_boxes(g, 5, canvas=60, max_side=40)
    area = box_area(a.to(device, dtype))
    assert area.dtype == AREA_DTYPE[dtype] and area.device.type == device
    assert area.tolist() == box_area(a).tolist()
    for fn in IOU_FAMILY:
        out = fn(a.to(device, dtype), b.to(device, dtype))
        assert out.dtype == IOU_DTYPE[dtype] and out.device.type == device, fn.__name__
        torch.testing.assert_close(out.cpu().double(), fn(a, b), rtol=0, atol=1e-6)


def test_integer_boxes_torchvision_test_values(device):
    """torchvision's TestBoxIou / TestGeneralizedBoxIou / TestDistanceBoxIoU integer cases."""
    a = torch.tensor([[0, 0, 100, 100], [0, 0, 50, 50], [200, 200, 300, 300], [0, 0, 25, 25]], device=device)
    b = a[:3]
    iou = [[1.0, 0.25, 0.0], [0.25, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0625, 0.25, 0.0]]
    giou = [[1.0, 0.25, -0.7778], [0.25, 1.0, -0.8611], [-0.7778, -0.8611, 1.0], [0.0625, 0.25, -0.8819]]
    diou = [[1.0, 0.1875, -0.4444], [0.1875, 1.0, -0.5625], [-0.4444, -0.5625, 1.0], [-0.0781, 0.1875, -0.6267]]
    for dtype in (torch.int16, torch.int32, torch.int64):
        for fn, want in ((box_iou, iou), (generalized_box_iou, giou), (distance_box_iou, diou), (complete_box_iou, diou)):
            torch.testing.assert_close(fn(a.to(dtype), b.to(dtype)).cpu(), torch.tensor(want), rtol=0, atol=1e-4)
    assert box_area(a.to(torch.int8).clamp(max=100)).dtype == torch.int32


def test_uint8_boxes_do_not_wrap_around(device):
    # Disjoint boxes: in uint8, x1 of one minus x2 of the other would wrap to a large positive
    # width (torchvision's box_iou computes it so); pixbox computes in int64.
    a = torch.tensor([[0, 0, 10, 10]], dtype=torch.uint8, device=device)
    b = torch.tensor([[20, 20, 30, 30]], dtype=torch.uint8, device=device)
    for fn in IOU_FAMILY:
        assert fn(a, b).item() == fn(a.float(), b.float()).item() <= 0, fn.__name__


def test_large_integer_coordinates_do_not_overflow(device):
    a = torch.tensor([[0, 0, 60000, 60000]], dtype=torch.int32, device=device)  # area 3.6e9 > 2**31
    b = torch.tensor([[0, 0, 30000, 60000]], dtype=torch.int32, device=device)
    assert box_iou(a, b).item() == 0.5
    assert generalized_box_iou(a, b).item() == 0.5


# --------------------------------------------------------------------------------------------
# distance and complete IoU (Zheng et al., 2020) against loops written from the paper


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0  # pixbox: two empty boxes have IoU 0


def _angle(box) -> float:
    w, h = box[2] - box[0], box[3] - box[1]
    return math.atan(w / h) if h > 0 else (math.pi / 2 if w > 0 else 0.0)


def diou_reference(a, b, eps: float = 1e-7) -> float:
    """DIoU = IoU - rho^2(b, b_gt) / c^2 (Zheng et al., eq. 6); eps as torchvision's, on c^2."""
    rho2 = ((a[0] + a[2]) / 2 - (b[0] + b[2]) / 2) ** 2 + ((a[1] + a[3]) / 2 - (b[1] + b[3]) / 2) ** 2
    c2 = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2
    return _iou(a, b) - rho2 / (c2 + eps)


def ciou_reference(a, b, eps: float = 1e-7, alpha: float | None = None) -> float:
    """CIoU = DIoU - alpha v, v = 4 / pi^2 (atan(w_gt / h_gt) - atan(w / h))^2,
    alpha = v / ((1 - IoU) + v) (Zheng et al., eqs. 8-11); eps as torchvision's."""
    v = 4 / math.pi ** 2 * (_angle(b) - _angle(a)) ** 2
    if alpha is None:
        alpha = v / ((1 - _iou(a, b)) + v + eps)
    return diou_reference(a, b, eps) - alpha * v


def pairwise_reference(fn, boxes1, boxes2, **kw) -> torch.Tensor:
    rows1, rows2 = boxes1.double().tolist(), boxes2.double().tolist()
    return torch.tensor([[fn(p, q, **kw) for q in rows2] for p in rows1], dtype=torch.float64).reshape(len(rows1), len(rows2))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(12))
def test_distance_and_complete_box_iou_match_reference(seed, dtype, device):
    g = torch.Generator().manual_seed(seed)
    n, m = [(0, 3), (3, 0), (1, 1), (17, 12)][seed % 4]
    if seed % 2:
        a, b = random_boxes(g, n), random_boxes(g, m)  # integer corners, ties, degenerate boxes
    else:
        xy = torch.rand(n + m, 2, generator=g, dtype=torch.float64) * 10 - 3
        boxes = torch.cat([xy, xy + torch.rand(n + m, 2, generator=g, dtype=torch.float64) * 6], dim=1)
        a, b = boxes[:n], boxes[n:]
    a, b = a.to(dtype), b.to(dtype)
    tol = dict(rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)
    # DIoU is in (-1, 1]; CIoU subtracts alpha * v <= 1/2 more (v <= 1, alpha = v / (1 - IoU + v)).
    for fn, ref, low in ((distance_box_iou, diou_reference, -1.0), (complete_box_iou, ciou_reference, -1.5)):
        got = fn(a.to(device), b.to(device))
        assert got.shape == (n, m) and got.dtype == dtype and got.device.type == device
        got = got.cpu()
        assert not torch.isnan(got).any()
        assert bool((got >= low - 1e-6).all()) and bool((got <= 1 + 1e-6).all())
        torch.testing.assert_close(got.double(), pairwise_reference(ref, a, b), **tol)


def test_distance_and_complete_box_iou_golden(device):
    # [0,0,2,2] vs [1,1,3,3]: IoU 1/7, centres 1,1 and 2,2 -> rho^2 = 2, enclosing 3x3 -> c^2 = 18.
    a = torch.tensor([[0.0, 0, 2, 2]], dtype=torch.float64, device=device)
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 4, 2]], dtype=torch.float64, device=device)
    diou = distance_box_iou(a, b, eps=0.0).cpu()
    torch.testing.assert_close(diou[0, 0], torch.tensor(1 / 7 - 2 / 18, dtype=torch.float64))
    # Same aspect ratio: v = 0, CIoU = DIoU. [0,0,4,2]: IoU 1/2, rho^2 = 1, c^2 = 20, v = 4/pi^2 (atan 2 - pi/4)^2.
    ciou = complete_box_iou(a, b, eps=0.0).cpu()
    assert ciou[0, 0] == diou[0, 0]
    v = 4 / math.pi ** 2 * (math.atan(2) - math.pi / 4) ** 2
    torch.testing.assert_close(ciou[0, 1].item(), 0.5 - 1 / 20 - v / (0.5 + v) * v, rtol=0, atol=1e-15)


def test_distance_and_complete_box_iou_eps_changes_output(device):
    a = torch.tensor([[0.0, 0, 1, 1]], device=device)
    b = torch.tensor([[2.0, 0, 3, 2]], device=device)
    for fn in (distance_box_iou, complete_box_iou):
        assert fn(a, b, eps=1.0).item() > fn(a, b).item()
        assert fn(a, b).item() == fn(a, b, eps=1e-7).item()


def test_distance_and_complete_box_iou_degenerate_boxes_never_give_nan(device):
    boxes = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 1], [0, 2, 4, 2], [3, 0, 3, 5], [0, 0, 4, 4]], device=device)
    for dtype in DTYPES + [torch.float16, torch.int32]:
        for fn in (distance_box_iou, complete_box_iou):
            out = fn(boxes.to(dtype), boxes.to(dtype))
            assert not torch.isnan(out).any(), (fn.__name__, dtype)
            assert out[4, 4] == 1.0 and out[0, 1] == 0.0  # two equal points: IoU 0, no distance


def test_distance_box_iou_gradcheck(device):
    assert torch.autograd.gradcheck(distance_box_iou, _separated_pairs(device=device))


def test_complete_box_iou_gradient_keeps_alpha_constant(device):
    """CIoU's alpha is a constant for autograd (the paper, torchvision): the gradient is that of
    DIoU - alpha * v with alpha frozen at the point, by central differences on the reference."""
    a, b = _separated_pairs(device=device)
    complete_box_iou(a, b).sum().backward()
    rows_a, rows_b = a.detach().tolist(), b.detach().tolist()

    def alpha_at(p, q):
        v = 4 / math.pi ** 2 * (_angle(q) - _angle(p)) ** 2
        return v / ((1 - _iou(p, q)) + v + 1e-7)

    alpha = [[alpha_at(p, q) for q in rows_b] for p in rows_a]

    def frozen(rows):
        return sum(ciou_reference(p, q, alpha=alpha[i][j]) for i, p in enumerate(rows) for j, q in enumerate(rows_b))

    h = 1e-6
    for i in range(len(rows_a)):
        for k in range(4):
            up = [r[:] for r in rows_a]
            down = [r[:] for r in rows_a]
            up[i][k] += h
            down[i][k] -= h
            numeric = (frozen(up) - frozen(down)) / (2 * h)
            assert abs(a.grad[i, k].item() - numeric) < 1e-6, (i, k)


def test_distance_and_complete_box_iou_bad_input():
    good = torch.tensor([[0.0, 0, 1, 1]])
    for fn in (distance_box_iou, complete_box_iou):
        with pytest.raises(ValueError, match="boxes2"):
            fn(good, torch.tensor([[1.0, 0, 0, 1]]))  # x2 < x1
        with pytest.raises(ValueError, match="boxes1"):
            fn(torch.zeros(2, 3), good)
        with pytest.raises(TypeError, match="boxes1"):
            fn(torch.ones(1, 4, dtype=torch.bool), good)
        with pytest.raises(ValueError, match="eps"):
            fn(good, good, eps=-1.0)


# torchvision 0.28's fmt= and batches of box sets


def _random_boxes(*shape: int, dtype=torch.float64) -> torch.Tensor:
    xy = torch.rand(*shape, 2, dtype=dtype) * 10
    return torch.cat([xy, xy + torch.rand(*shape, 2, dtype=dtype) * 5], dim=-1)


@pytest.mark.parametrize("fmt", ["xywh", "cxcywh"])
def test_box_area_and_iou_take_the_format_of_the_boxes(fmt):
    torch.manual_seed(0)
    a, b = _random_boxes(6), _random_boxes(4)
    a_f, b_f = box_convert(a, "xyxy", fmt), box_convert(b, "xyxy", fmt)
    torch.testing.assert_close(box_area(a_f, fmt=fmt), box_area(a))
    torch.testing.assert_close(box_iou(a_f, b_f, fmt=fmt), box_iou(a, b))
    # Integer boxes: the area is w * h, exact, in torchvision's integer dtype.
    ints = torch.tensor([[0, 0, 100, 100], [3, 4, 3, 9], [1, 2, 40, 7]], dtype=torch.int16)
    area = box_area(box_convert(ints, "xyxy", "xywh"), fmt="xywh")
    assert area.dtype == torch.int32 and area.tolist() == [10000, 0, 195]
    with pytest.raises(ValueError, match="fmt"):
        box_iou(a, b, fmt="xyxz")
    with pytest.raises(ValueError, match="fmt"):
        box_area(a, fmt="yolo")
    with pytest.raises(ValueError, match="boxes"):  # a negative width is not a box
        box_area(torch.tensor([[0.0, 0, -1, 2]]), fmt="xywh")


@pytest.mark.parametrize("fn", [box_iou, generalized_box_iou, distance_box_iou, complete_box_iou])
def test_iou_family_takes_batches_of_box_sets_as_a_loop_over_them(fn):
    torch.manual_seed(1)
    a, b = _random_boxes(3, 5), _random_boxes(3, 7)
    out = fn(a, b)
    assert out.shape == (3, 5, 7)
    torch.testing.assert_close(out, torch.stack([fn(x, y) for x, y in zip(a, b)]))
    # Batch dimensions broadcast: one set against a batch, and two batch dimensions.
    one = _random_boxes(5)
    torch.testing.assert_close(fn(one, b), torch.stack([fn(one, y) for y in b]))
    deep = _random_boxes(2, 3, 4)
    torch.testing.assert_close(fn(deep, b), torch.stack([torch.stack([fn(x, y) for x, y in zip(d, b)]) for d in deep]))
    # Empty sets keep their batch shape; integer batches give float32.
    assert fn(torch.zeros(3, 0, 4), b.float()).shape == (3, 0, 7)
    ints = torch.tensor([[[0, 0, 10, 10], [5, 5, 20, 20]]], dtype=torch.int32)
    assert fn(ints, ints).dtype == torch.float32
    torch.testing.assert_close(fn(ints, ints)[0], fn(ints[0].double(), ints[0].double()).float())
    with pytest.raises(ValueError, match=r"boxes1 \(2, 5, 4\) and boxes2 \(3, 7, 4\)"):
        fn(_random_boxes(2, 5), b)


def test_batched_iou_gradients_equal_the_loop_over_the_batch():
    torch.manual_seed(2)
    a, b = _random_boxes(2, 4).requires_grad_(), _random_boxes(2, 3)
    complete_box_iou(a, b).sum().backward()
    loop = a.detach().clone().requires_grad_()
    sum(complete_box_iou(x, y).sum() for x, y in zip(loop, b)).backward()
    torch.testing.assert_close(a.grad, loop.grad)
