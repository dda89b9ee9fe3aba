import colorsys
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as nnf

from pixbox.data import transforms as T
from pixbox.data.transforms import functional as F
from pixbox.ops import box_iou

# ----------------------------------------------------------------------------------------------
# A scene with two solid rectangles whose boxes and masks are exact.

H, W = 64, 80
BG = (215, 220, 210)
COLORS = {1: (200, 30, 40), 2: (30, 60, 200)}  # label -> RGB
RECTS = {1: (14, 10, 46, 38), 2: (50, 30, 74, 58)}  # label -> x1, y1, x2, y2 (pixel edges)


def _scene(dtype=torch.uint8, device="cpu"):
    image = torch.tensor(BG, dtype=torch.uint8)[:, None, None].repeat(1, H, W)
    mask = torch.zeros(H, W, dtype=torch.int64)
    for label, (x1, y1, x2, y2) in RECTS.items():
        image[:, y1:y2, x1:x2] = torch.tensor(COLORS[label], dtype=torch.uint8)[:, None, None]
        mask[y1:y2, x1:x2] = label
    boxes = torch.tensor([RECTS[1], RECTS[2]], dtype=torch.float32)
    target = {
        "boxes": boxes.to(device),
        "labels": torch.tensor([1, 2], device=device),
        "iscrowd": torch.tensor([False, True], device=device),
        "mask": mask.to(device),
        "masks": torch.stack([mask == 1, mask == 2]).to(device),
        "image_id": 17,
    }
    image = image.to(device)
    if dtype != torch.uint8:
        image = (image.to(dtype) / 255)
    return image, target


def _box_region(box, h, w):
    """Pixels whose centre lies in the box (half-open), the pixel-level footprint of a box."""
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    x1, y1, x2, y2 = [float(v) for v in box]
    return ((ys >= y1) & (ys < y2))[:, None] & ((xs >= x1) & (xs < x2))[None, :]


def _iou(a, b):
    union = (a | b).sum().item()
    return 1.0 if union == 0 else (a & b).sum().item() / union


def _color_pixels(image, label):
    """Pixels nearer to the colour of ``label`` than to the other colour or a shade of the background.

    The shades are the blends of the background with black padding that bilinear resizing makes.
    """
    img = image.double()
    if not image.is_floating_point():
        img = img / 255
    shades = [tuple(c * t for c in BG) for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    refs = [COLORS[label]] + [c for k, c in COLORS.items() if k != label] + shades
    d = torch.stack([((img - torch.tensor(c, dtype=torch.float64)[:, None, None] / 255) ** 2).sum(0) for c in refs])
    return d.argmin(0) == 0


def _check_frames(image, target, *, centre_rule=False):
    """Every kept box frames its rectangle in the image and in the mask; dropped ones are (almost) gone."""
    h, w = image.shape[-2:]
    mask = target["mask"].cpu()
    assert mask.shape == (h, w) and target["masks"].shape == (len(target["boxes"]), h, w)
    assert target["image_id"] == 17
    boxes, labels = target["boxes"].cpu(), target["labels"].cpu().tolist()
    assert len(boxes) == len(labels) == len(target["iscrowd"])
    assert target["iscrowd"].tolist() == [label == 2 for label in labels]
    assert set(mask.unique().tolist()) <= {0, 1, 2, 255}
    for k, (box, label) in enumerate(zip(boxes, labels)):
        assert 0 <= box[0] <= box[2] <= w and 0 <= box[1] <= box[3] <= h
        obj = mask == label
        assert torch.equal(target["masks"][k].cpu(), obj)  # instance masks follow the same geometry
        region = _box_region(box, h, w)
        bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
        if min(bw, bh) >= 4:
            assert _iou(obj, region) >= 0.95, (box.tolist(), label)
            pix = _color_pixels(image.cpu(), label)
            ys, xs = pix.nonzero(as_tuple=True)
            tight = [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
            assert max(abs(a - b) for a, b in zip(tight, box.tolist())) <= 1.0, (tight, box.tolist())
            assert (pix ^ obj).sum().item() <= 2 * (bw + bh)  # at most a ring of edge pixels differs
        else:  # slivers: the footprints may differ by one row or column at most
            assert (obj ^ region).sum().item() <= bw + bh + 2
    for label in set(COLORS) - set(labels):
        if not centre_rule:  # a dropped object leaves at most a one-pixel line
            assert (mask == label).sum().item() <= max(h, w)


SEEDS = range(6)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


GEOMETRIC = {
    "hflip": lambda g: T.RandomHorizontalFlip(generator=g),
    "vflip": lambda g: T.RandomVerticalFlip(generator=g),
    "resize_down": lambda g: T.Resize((40, 50)),
    "resize_up_short_side": lambda g: T.Resize(96),
    "random_crop": lambda g: T.RandomCrop((40, 48), padding=6, generator=g),
    "random_crop_pad_if_needed": lambda g: T.RandomCrop(90, pad_if_needed=True, generator=g),
    "random_resized_crop": lambda g: T.RandomResizedCrop((48, 56), scale=(0.2, 1.0), generator=g),
    "random_iou_crop": lambda g: T.RandomIoUCrop(generator=g),
    "random_zoom_out": lambda g: T.RandomZoomOut(p=1.0, side_range=(1.0, 2.5), generator=g),
    "compose": lambda g: T.Compose([
        T.RandomZoomOut(fill=(0, 0, 0), side_range=(1.0, 2.0), generator=g), T.RandomIoUCrop(generator=g),
        T.RandomHorizontalFlip(generator=g), T.RandomVerticalFlip(generator=g), T.Resize((72, 72)),
        T.RandomCrop(64, generator=g), T.SanitizeBoxes()]),
}


@pytest.mark.parametrize("name", sorted(GEOMETRIC))
@pytest.mark.parametrize("seed", SEEDS)
def test_geometric_transforms_keep_boxes_masks_and_pixels_together(name, seed):
    image, target = _scene()
    out, out_target = GEOMETRIC[name](_gen(seed))(image, target)
    assert out.dtype == torch.uint8 and out.shape[0] == 3
    _check_frames(out, out_target, centre_rule=name in ("random_iou_crop", "compose"))


@pytest.mark.parametrize("name", ["random_resized_crop", "random_crop", "resize_down"])
def test_geometric_transforms_on_float_images(name):
    image, target = _scene(torch.float32)
    out, out_target = GEOMETRIC[name](_gen(3))(image, target)
    assert out.dtype == torch.float32
    _check_frames(out, out_target)


def test_the_scene_checker_catches_a_wrong_box():
    image, target = _scene()
    bad = dict(target, boxes=target["boxes"] + torch.tensor([3.0, 0.0, 3.0, 0.0]))
    with pytest.raises(AssertionError):
        _check_frames(image, bad)
    _check_frames(image, target)


# ----------------------------------------------------------------------------------------------
# Flips


def test_flips_are_exact():
    image, target = _scene()
    out, t = T.RandomHorizontalFlip(p=1.0)(image, target)
    assert torch.equal(out, torch.flip(image, dims=[-1]))
    assert torch.equal(t["mask"], torch.flip(target["mask"], dims=[-1]))
    assert t["boxes"].tolist() == [[W - 46.0, 10.0, W - 14.0, 38.0], [W - 74.0, 30.0, W - 50.0, 58.0]]
    out, t = T.RandomVerticalFlip(p=1.0)(image, target)
    assert torch.equal(out, torch.flip(image, dims=[-2]))
    assert torch.equal(t["masks"], torch.flip(target["masks"], dims=[-2]))
    assert t["boxes"].tolist() == [[14.0, H - 38.0, 46.0, H - 10.0], [50.0, H - 58.0, 74.0, H - 30.0]]
    # Flipping twice gives back the input, fractional boxes included.
    boxes = torch.tensor([[0.25, 1.5, 7.75, 3.0]])
    assert torch.equal(F.hflip_boxes(F.hflip_boxes(boxes, 10), 10), boxes)
    assert F.vflip_boxes(boxes, 10).tolist() == [[0.25, 7.0, 7.75, 8.5]]


def test_flip_p_changes_the_output():
    image, target = _scene()
    out, t = T.RandomHorizontalFlip(p=0.0)(image, target)
    assert torch.equal(out, image) and torch.equal(t["boxes"], target["boxes"])
    assert torch.equal(T.RandomVerticalFlip(p=1.0)(image), image.flip(-2))


def test_flips_are_drawn_per_image_of_a_batch():
    image, target = _scene()
    batch = image[None].repeat(16, 1, 1, 1)
    out, targets = T.RandomHorizontalFlip(generator=_gen(0))(batch, [target] * 16)
    flipped = [torch.equal(o, image.flip(-1)) for o in out]
    assert all(f or torch.equal(o, image) for f, o in zip(flipped, out))
    assert 0 < sum(flipped) < 16
    for f, t in zip(flipped, targets):
        assert torch.equal(t["boxes"], F.hflip_boxes(target["boxes"], W) if f else target["boxes"])
        assert torch.equal(t["mask"], target["mask"].flip(-1) if f else target["mask"])


# ----------------------------------------------------------------------------------------------
# The box rule and crops with boxes partly outside


def test_clip_and_filter_boxes_golden():
    boxes = torch.tensor([
        [2.0, 2.0, 6.0, 6.0],      # inside: kept as is
        [-4.0, 0.0, 4.0, 4.0],     # half outside: visibility 0.5
        [7.0, 0.0, 11.0, 1.0],     # 1/4 inside: visibility 0.25, clipped width 1
        [12.0, 0.0, 14.0, 2.0],    # fully outside
        [3.0, 3.0, 3.0, 5.0],      # degenerate, inside
        [-1.0, 3.0, -1.0, 5.0],    # degenerate, outside
        [1.0, 1.0, float("nan"), 2.0],
        [0.0, 0.0, float("inf"), 2.0],
        [5.0, 5.0, 4.0, 6.0],      # inverted
    ])
    kept, idx = F.clip_and_filter_boxes(boxes, (8, 8), min_size=0.0)
    assert idx.tolist() == [0, 1, 2, 4]
    assert kept.tolist() == [[2, 2, 6, 6], [0, 0, 4, 4], [7, 0, 8, 1], [3, 3, 3, 5]]
    _, idx = F.clip_and_filter_boxes(boxes, (8, 8), min_size=0.0, min_visibility=0.5)
    assert idx.tolist() == [0, 1, 4]  # 0.5 is kept (>=), 0.25 is not; degenerate inside has visibility 1
    _, idx = F.clip_and_filter_boxes(boxes, (8, 8), min_size=0.0, min_visibility=0.51)
    assert idx.tolist() == [0, 4]
    _, idx = F.clip_and_filter_boxes(boxes, (8, 8))  # default min_size=1 drops the degenerate box
    assert idx.tolist() == [0, 1, 2]
    _, idx = F.clip_and_filter_boxes(boxes, (8, 8), min_size=2.0)
    assert idx.tolist() == [0, 1]
    empty, idx = F.clip_and_filter_boxes(torch.zeros(0, 4, dtype=torch.float64), (8, 8), min_visibility=0.3)
    assert empty.shape == (0, 4) and empty.dtype == torch.float64 and idx.shape == (0,)


def _crop_target():
    return {
        "boxes": torch.tensor([[12.0, 12.0, 20.0, 20.0],   # inside the window
                               [0.0, 12.0, 20.0, 20.0],    # 10 of 20 columns inside: visibility 0.5
                               [0.0, 0.0, 14.0, 14.0],     # 4 x 4 of 14 x 14 inside: visibility 16/196
                               [0.0, 0.0, 5.0, 5.0]]),     # outside
        "labels": torch.tensor([0, 1, 2, 3]),
        "scores": torch.tensor([0.9, 0.8, 0.7, 0.6]),
        "extra_per_box": torch.arange(4) * 10,
        "image_id": "x",
    }


def test_crop_with_boxes_partly_outside_clips_and_drops_exactly():
    image = torch.arange(3 * 30 * 30, dtype=torch.float32).reshape(3, 30, 30) / (3 * 30 * 30)
    t = T.RandomCrop(16)
    params = [{"top": 10, "left": 10}]
    out, (tg,) = t.apply(image[None], [_crop_target()], params)
    assert torch.equal(out[0], image[:, 10:26, 10:26])
    assert tg["boxes"].tolist() == [[2, 2, 10, 10], [0, 2, 10, 10], [0, 0, 4, 4]]
    assert tg["labels"].tolist() == [0, 1, 2] and tg["extra_per_box"].tolist() == [0, 10, 20]
    assert tg["scores"].tolist() == pytest.approx([0.9, 0.8, 0.7]) and tg["image_id"] == "x"
    _, (tg,) = T.RandomCrop(16, min_visibility=0.5).apply(image[None], [_crop_target()], params)
    assert tg["labels"].tolist() == [0, 1]
    _, (tg,) = T.RandomCrop(16, min_visibility=0.6).apply(image[None], [_crop_target()], params)
    assert tg["labels"].tolist() == [0]
    _, (tg,) = T.RandomCrop(16, min_size=5.0).apply(image[None], [_crop_target()], params)
    assert tg["labels"].tolist() == [0, 1]


def test_random_crop_window_outside_the_image_is_filled():
    image = torch.full((3, 10, 10), 7, dtype=torch.uint8)
    mask = torch.ones(10, 10, dtype=torch.uint8)
    t = T.RandomCrop(14, pad_if_needed=True, fill=(1, 2, 3), mask_fill=9)
    out, tg = t.apply(image[None], [{"mask": mask}], [{"top": -4, "left": 0}])
    assert out[0, :, :4, :].tolist() == [[[c] * 14] * 4 for c in (1, 2, 3)]
    assert torch.equal(out[0, :, 4:, :10], image)
    assert tg[0]["mask"][:4].unique().tolist() == [9] and tg[0]["mask"][4:, :10].unique().tolist() == [1]


def test_random_crop_positions_cover_the_padded_range():
    image = torch.zeros(1, 6, 5)
    t = T.RandomCrop((6, 5), padding=(1, 2), generator=_gen(0))
    seen = {(p["top"], p["left"]) for _ in range(200) for p in t.make_params(image[None], [None])}
    assert seen == {(top, left) for top in range(-2, 3) for left in range(-1, 2)}


def test_random_iou_crop_keeps_boxes_by_centre():
    image = torch.zeros(3, 40, 40)
    target = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0],     # centre (5, 5): inside
                                     [12.0, 0.0, 30.0, 10.0],    # centre (21, 5): outside, though overlapping
                                     [0.0, 14.0, 10.0, 18.0]]),  # centre (5, 16): inside
              "labels": torch.tensor([5, 6, 7])}
    t = T.RandomIoUCrop()
    out, (tg,) = t.apply(image[None], [target], [{"crop": (2, 1, 18, 19)}])  # top, left, height, width
    assert out.shape == (1, 3, 18, 19)
    assert tg["labels"].tolist() == [5, 7]
    assert tg["boxes"].tolist() == [[0, 0, 9, 8], [0, 12, 9, 16]]


def test_random_iou_crop_reaches_the_drawn_iou():
    image, _ = _scene()
    target = {"boxes": torch.tensor([[20.0, 10.0, 52.0, 38.0], [2.0, 2.0, 78.0, 62.0]])}
    boxes = target["boxes"].double()
    for option in (0.3, 0.7, 0.9):
        t = T.RandomIoUCrop(sampler_options=(option,), generator=_gen(1))
        for _ in range(10):
            (p,) = t.make_params(image[None], [target])
            assert p["crop"] is not None
            top, left, h, w = p["crop"]
            assert 0.3 * W - 1 <= w <= W and 0.3 * H - 1 <= h <= H and 0.5 <= w / h <= 2
            cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
            inside = (cx > left) & (cx < left + w) & (cy > top) & (cy < top + h)
            window = torch.tensor([[left, top, left + w, top + h]], dtype=torch.float64)
            assert box_iou(boxes[inside], window).max() >= option


def test_random_iou_crop_parameters_change_the_output():
    image, target = _scene()
    keep = T.RandomIoUCrop(sampler_options=(1.0,), generator=_gen(0))
    out, tg = keep(image, target)
    assert torch.equal(out, image) and torch.equal(tg["boxes"], target["boxes"])
    out, _ = T.RandomIoUCrop(sampler_options=(None,))(image, target)
    assert torch.equal(out, image)

    def crops(**kw):
        t = T.RandomIoUCrop(sampler_options=(0.0,), generator=_gen(4), **kw)
        return [t.make_params(image[None], [target])[0]["crop"] for _ in range(30)]

    base = crops()
    small = crops(min_scale=0.1, max_scale=0.4)
    assert max(c[2] * c[3] for c in small) <= 0.4 * H * 0.4 * W < max(c[2] * c[3] for c in base)
    wide = crops(min_aspect_ratio=1.5, max_aspect_ratio=3.0)
    assert all(1.5 <= c[3] / c[2] <= 3.0 for c in wide) and any(c[3] / c[2] < 1.5 for c in base)
    # Few trials per option: strict options fail more often, so the outputs differ.
    strict = dict(sampler_options=(0.8,), min_scale=0.1)
    a = [T.RandomIoUCrop(trials=1, generator=_gen(s), **strict).make_params(image[None], [target]) for s in range(8)]
    b = [T.RandomIoUCrop(trials=40, generator=_gen(s), **strict).make_params(image[None], [target]) for s in range(8)]
    assert a != b
    params = [{"crop": (30, 55, 20, 20)}]  # holds box 2's centre; cuts it to 19 x 20 of 24 x 28
    _, (tg,) = T.RandomIoUCrop().apply(image[None], [target], params)
    assert tg["labels"].tolist() == [2] and tg["boxes"].tolist() == [[0, 0, 19, 20]]
    _, (tg,) = T.RandomIoUCrop(min_size=19.5).apply(image[None], [target], params)
    assert tg["labels"].tolist() == []
    _, (tg,) = T.RandomIoUCrop(min_visibility=0.55).apply(image[None], [target], params)
    assert tg["labels"].tolist() == [2]  # visibility 380 / 672 = 0.565
    _, (tg,) = T.RandomIoUCrop(min_visibility=0.6).apply(image[None], [target], params)
    assert tg["labels"].tolist() == []


# ----------------------------------------------------------------------------------------------
# Resize and resized crops


def test_resize_matches_interpolate_and_scales_boxes():
    image, target = _scene()
    out, tg = T.Resize((32, 120))(image, target)
    ref = nnf.interpolate(image[None].float(), size=(32, 120), mode="bilinear", align_corners=False, antialias=True)
    assert torch.equal(out, ref[0].round().clamp(0, 255).to(torch.uint8))
    assert tg["boxes"].tolist() == [[21.0, 5.0, 69.0, 19.0], [75.0, 15.0, 111.0, 29.0]]
    ref_mask = nnf.interpolate(target["mask"][None, None].float(), size=(32, 120), mode="nearest-exact")
    assert torch.equal(tg["mask"], ref_mask[0, 0].long())
    assert tg["mask"].dtype == torch.int64 and tg["masks"].dtype == torch.bool


def test_resize_mask_matches_nearest_exact_for_odd_sizes():
    mask = torch.randint(0, 256, (2, 13, 17), generator=_gen(0))
    for size in [(5, 7), (13, 17), (29, 40), (1, 1), (26, 9)]:
        ref = nnf.interpolate(mask[None].float(), size=size, mode="nearest-exact")[0].long()
        assert torch.equal(F.resize_mask(mask, size), ref)
    assert F.resize_mask(mask.to(torch.uint8), (5, 7)).dtype == torch.uint8


def test_resize_parameters_change_the_output():
    image, target = _scene()
    assert T.Resize(32)(image).shape == (3, 32, 40)  # shorter side
    assert T.Resize(32)(image.transpose(1, 2)).shape == (3, 40, 32)
    assert T.Resize((32, 32))(image).shape == (3, 32, 32)
    noise = (torch.rand(3, H, W, generator=_gen(0)) * 255).to(torch.uint8)
    assert not torch.equal(T.Resize((16, 20), antialias=True)(noise), T.Resize((16, 20), antialias=False)(noise))
    tiny = {"boxes": torch.tensor([[0.0, 0.0, 3.0, 3.0], [0.0, 0.0, 30.0, 30.0]]), "labels": torch.tensor([0, 1])}
    assert T.Resize((16, 20))(image, tiny)[1]["labels"].tolist() == [0, 1]  # 0.75 px box kept by default
    assert T.Resize((16, 20), min_size=1.0)(image, tiny)[1]["labels"].tolist() == [1]


def test_random_resized_crop_parameters_change_the_output():
    image, target = _scene()

    def windows(**kw):
        t = T.RandomResizedCrop(16, generator=_gen(2), **kw)
        return [t.make_params(image[None], [None])[0] for _ in range(40)]

    base = windows()
    big = windows(scale=(0.5, 1.0))
    assert all(p["height"] * p["width"] >= 0.5 * H * W * 0.9 for p in big)
    assert any(p["height"] * p["width"] < 0.3 * H * W for p in base)
    tall = windows(ratio=(0.3, 0.5))
    assert all(p["width"] / p["height"] <= 0.5 * 1.2 for p in tall)
    assert any(p["width"] / p["height"] > 0.7 for p in base)
    # No window of ratio 3..4 and scale 0.9..1 fits in 64 x 80: centred fallback, whole width.
    fallback = windows(scale=(0.9, 1.0), ratio=(3.0, 4.0))
    assert all(p == {"top": (H - 27) // 2, "left": 0, "height": 27, "width": 80} for p in fallback)
    assert T.RandomResizedCrop((20, 30), generator=_gen(0))(image).shape == (3, 20, 30)
    params = [{"top": 0, "left": 0, "height": 64, "width": 80}]
    noise = torch.rand(1, 3, H, W, generator=_gen(0))
    a, _ = T.RandomResizedCrop((16, 20), antialias=True).apply(noise, [None], params)
    b, _ = T.RandomResizedCrop((16, 20), antialias=False).apply(noise, [None], params)
    assert not torch.equal(a, b)
    # Box 1 keeps 6 x 22 of 32 x 28 (visibility 0.147), box 2 keeps 24 x 2 of 24 x 28 (0.071);
    # the window is scaled by 2, so their sides in output pixels are 12 x 44 and 48 x 4.
    params = [{"top": 0, "left": 40, "height": 32, "width": 40}]
    tgs = [T.RandomResizedCrop((64, 80), **kw).apply(image[None], [target], params)[1][0]
           for kw in ({}, {"min_size": 5.0}, {"min_size": 13.0}, {"min_visibility": 0.1}, {"min_visibility": 0.2})]
    assert [t["labels"].tolist() for t in tgs] == [[1, 2], [1], [], [1], []]
    assert tgs[0]["boxes"].tolist() == [[0, 20, 12, 64], [20, 60, 68, 64]]


# ----------------------------------------------------------------------------------------------
# Zoom out


def test_random_zoom_out_places_the_image_on_a_canvas():
    image, target = _scene()
    t = T.RandomZoomOut(fill=(1, 2, 3), side_range=(2.0, 2.0), p=1.0, mask_fill=7, generator=_gen(0))
    (p,) = t.make_params(image[None], [target])
    out, (tg,) = t.apply(image[None], [target], [p])
    top, left = p["top"], p["left"]
    assert out.shape == (1, 3, 2 * H, 2 * W) and p["canvas"] == (2 * H, 2 * W)
    assert torch.equal(out[0, :, top:top + H, left:left + W], image)
    assert out[0, :, 0, 0].tolist() == [1, 2, 3] or (top == 0 and left == 0)
    assert torch.equal(tg["boxes"], target["boxes"] + torch.tensor([left, top, left, top]))
    assert int((tg["mask"] == 7).sum()) == 3 * H * W and int(tg["masks"].sum()) == int(target["masks"].sum())


def test_random_zoom_out_parameters_change_the_output():
    image, target = _scene()
    assert torch.equal(T.RandomZoomOut(p=0.0)(image), image)
    sizes = {T.RandomZoomOut(p=1.0, side_range=(1.0, 1.5), generator=_gen(s))(image).shape[-1] for s in range(5)}
    assert all(W <= s <= 1.5 * W for s in sizes) and len(sizes) > 1
    assert T.RandomZoomOut(p=1.0, side_range=(3.0, 3.0))(image).shape == (3, 3 * H, 3 * W)
    a = T.RandomZoomOut(fill=0, p=1.0, side_range=(2, 2), generator=_gen(0))(image)
    b = T.RandomZoomOut(fill=255, p=1.0, side_range=(2, 2), generator=_gen(0))(image)
    assert (a == 0).sum() > 0 and (b == 0).sum() == 0
    m1 = T.RandomZoomOut(p=1.0, side_range=(2, 2), generator=_gen(0))(image, target)[1]["mask"]
    m2 = T.RandomZoomOut(p=1.0, side_range=(2, 2), mask_fill=0, generator=_gen(0))(image, target)[1]["mask"]
    assert (m1 == 255).sum() == 3 * H * W and (m2 == 255).sum() == 0


# ----------------------------------------------------------------------------------------------
# Zero boxes, None targets, classification


def _all_transforms(g):
    return [
        T.RandomHorizontalFlip(p=1.0, generator=g), T.RandomVerticalFlip(p=1.0, generator=g), T.Resize(40),
        T.RandomCrop(40, generator=g), T.RandomResizedCrop(32, generator=g), T.RandomIoUCrop(generator=g),
        T.RandomZoomOut(p=1.0, generator=g), T.ColorJitter(0.5, 0.5, 0.5, 0.2, generator=g),
        T.RandomPhotometricDistort(p=1.0, generator=g), T.Normalize(0.5, 0.25), T.ToDtype(torch.float64),
        T.SanitizeBoxes(), T.RandomApply([T.RandomHorizontalFlip(p=1.0)], p=1.0, generator=g),
        T.RandomChoice([T.Resize(30), T.RandomVerticalFlip()], generator=g),
    ]


@pytest.mark.parametrize("index", range(14))
def test_every_transform_handles_zero_boxes(index):
    image, _ = _scene(torch.float32)
    t = _all_transforms(_gen(0))[index]
    target = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
              "masks": torch.zeros(0, H, W, dtype=torch.bool), "image_id": 3}
    out, tg = t(image, target)
    assert tg["boxes"].shape == (0, 4) and tg["labels"].shape == (0,) and tg["image_id"] == 3
    assert tg["masks"].shape == (0,) + tuple(out.shape[-2:])
    if isinstance(t, T.RandomIoUCrop):
        assert torch.equal(out, image)  # nothing to crop around: unchanged
    if not isinstance(t, T.RandomIoUCrop):
        out2 = t(image)  # no target at all
        assert isinstance(out2, torch.Tensor) and out2.dim() == 3
        out3, none = t(image, None)
        assert none is None


def test_inputs_are_never_modified():
    image, target = _scene(torch.float32)
    saved_image = image.clone()
    saved = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in target.items()}
    for t in _all_transforms(_gen(1)):
        _, tg = t(image, target)
        assert tg is not target
    for t in [T.ColorJitter(0.5, 0.5, 0.5, 0.1, generator=_gen(0)), T.RandomPhotometricDistort(generator=_gen(0))]:
        batch = image[None].repeat(4, 1, 1, 1)
        saved_batch = batch.clone()
        t(batch)
        assert torch.equal(batch, saved_batch)
    assert torch.equal(image, saved_image) and target.keys() == saved.keys()
    for k, v in saved.items():
        assert torch.equal(target[k], v) if isinstance(v, torch.Tensor) else target[k] == v


# ----------------------------------------------------------------------------------------------
# Colour


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float64])
def test_colour_transforms_keep_range_and_leave_targets_untouched(dtype):
    image, target = _scene(dtype)
    image = image.clone()
    noise = torch.rand(image.shape, generator=_gen(0))
    image = (noise * 255).to(torch.uint8) if dtype == torch.uint8 else noise.to(dtype)
    for t in [T.ColorJitter((0, 3), (0, 3), (0, 3), 0.5, generator=_gen(0)),
              T.RandomPhotometricDistort((0, 3), (0, 3), (0, 3), (-0.5, 0.5), p=1.0, generator=_gen(0))]:
        for _ in range(4):
            out, tg = t(image, target)
            assert out.dtype == dtype and out.shape == image.shape
            assert out.min() >= 0 and out.max() <= (255 if dtype == torch.uint8 else 1)
            assert not torch.equal(out, image)
            assert tg.keys() == target.keys()
            assert all(tg[k] is target[k] for k in target)


def test_adjust_golden_values():
    img = torch.tensor([[[100, 200]], [[50, 0]], [[0, 255]]], dtype=torch.uint8)  # [3, 1, 2]
    assert F.adjust_brightness(img, 1.5).tolist() == [[[150, 255]], [[75, 0]], [[0, 255]]]
    assert F.adjust_brightness(img, 1.0).tolist() == img.tolist()
    gray = (0.299 * img[0].double() + 0.587 * img[1].double() + 0.114 * img[2].double())
    assert F.rgb_to_grayscale(img)[0].tolist() == gray.round().long().tolist()
    flat = F.adjust_contrast(img.float() / 255, 0.0)
    assert torch.allclose(flat, (gray.mean() / 255).float().expand(3, 1, 2))
    grey = F.adjust_saturation(img.float() / 255, 0.0)
    assert torch.allclose(grey, (gray / 255).float().expand(3, 1, 2))
    red = torch.tensor([1.0, 0.0, 0.0])[:, None, None]
    assert torch.allclose(F.adjust_hue(red, 1 / 3), torch.tensor([0.0, 1.0, 0.0])[:, None, None], atol=1e-6)
    assert torch.allclose(F.adjust_hue(red, -1 / 3), torch.tensor([0.0, 0.0, 1.0])[:, None, None], atol=1e-6)
    assert torch.equal(F.permute_channels(img, [2, 0, 1]), img[[2, 0, 1]])


def test_hsv_matches_colorsys_and_round_trips():
    rgb = torch.rand(3, 9, 11, generator=_gen(0), dtype=torch.float64)
    rgb[:, 0, :3] = torch.tensor([[0.5, 0.5, 0.5], [1, 1, 1], [0, 0, 0]], dtype=torch.float64).T  # greys
    hsv = F.rgb_to_hsv(rgb)
    ref = [colorsys.rgb_to_hsv(*rgb[:, i, j].tolist()) for i in range(9) for j in range(11)]
    assert torch.allclose(hsv.permute(1, 2, 0).reshape(-1, 3), torch.tensor(ref, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(F.hsv_to_rgb(hsv), rgb, atol=1e-12)
    batch = torch.rand(4, 3, 5, 6, generator=_gen(1))
    assert torch.allclose(F.hsv_to_rgb(F.rgb_to_hsv(batch)), batch, atol=1e-6)
    assert F.rgb_to_hsv(torch.tensor([0.0, 1.0, 0.0])[:, None, None]).flatten().tolist() == pytest.approx([1 / 3, 1, 1])
    # A full turn of hue is the identity.
    img = (torch.rand(3, 6, 7, generator=_gen(2)) * 255).to(torch.uint8)
    assert torch.equal(F.adjust_hue(img, 0.0), img)
    x = img.double() / 255
    assert torch.allclose(F.adjust_hue(F.adjust_hue(x, 0.25), 0.25), F.adjust_hue(x, 0.5), atol=1e-9)
    assert torch.allclose(F.adjust_hue(F.adjust_hue(x, 0.3), -0.3), x, atol=1e-9)


def test_color_jitter_applies_functional_ops_in_the_drawn_order():
    image = torch.rand(2, 3, 8, 9, generator=_gen(0))
    t = T.ColorJitter(0.5, 0.5, 0.5, 0.2, generator=_gen(3))
    params = t.make_params(image, [None, None])
    out, _ = t.apply(image, [None, None], params)
    fns = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast,
           "saturation": F.adjust_saturation, "hue": F.adjust_hue}
    names = ["brightness", "contrast", "saturation", "hue"]
    for i in range(2):
        ref = image[i]
        for k in params[i]["order"]:
            ref = fns[names[k]](ref, params[i][names[k]])
        assert torch.allclose(out[i], ref, atol=1e-6)
    assert params[0]["order"] == params[1]["order"] and params[0]["brightness"] != params[1]["brightness"]


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation", "hue"])
def test_color_jitter_each_parameter_changes_the_output(name):
    image = torch.rand(3, 8, 9, generator=_gen(0))
    assert torch.equal(T.ColorJitter(generator=_gen(0))(image), image)
    value = 0.3 if name == "hue" else 0.8
    out = T.ColorJitter(**{name: value}, generator=_gen(0))(image)
    assert not torch.allclose(out, image, atol=1e-3)
    t = T.ColorJitter(**{name: value}, generator=_gen(0))
    p = t.make_params(image[None], [None])[0]
    lo, hi = (-value, value) if name == "hue" else (1 - value, 1 + value)
    assert lo <= p[name] <= hi and all(p[n] is None for n in ("brightness", "contrast", "saturation", "hue")
                                       if n != name)
    fixed = (0.2, 0.2) if name == "hue" else (1.7, 1.7)  # a (min, max) range
    assert T.ColorJitter(**{name: fixed}).make_params(image[None], [None])[0][name] == pytest.approx(fixed[0])


def test_photometric_distort_steps_and_parameters():
    image = torch.rand(3, 8, 9, generator=_gen(0))
    assert torch.equal(T.RandomPhotometricDistort(p=0.0, generator=_gen(0))(image), image)
    t = T.RandomPhotometricDistort(p=1.0, generator=_gen(5))
    (p,) = t.make_params(image[None], [None])
    out, _ = t.apply(image[None], [None], [p])
    ref = F.adjust_brightness(image, p["brightness"])
    if p["contrast_before"]:
        ref = F.adjust_contrast(ref, p["contrast"])
    ref = F.adjust_hue(F.adjust_saturation(ref, p["saturation"]), p["hue"])
    if not p["contrast_before"]:
        ref = F.adjust_contrast(ref, p["contrast"])
    ref = F.permute_channels(ref, list(p["permutation"]))
    assert torch.allclose(out[0], ref, atol=1e-6)
    for name, rng in [("brightness", (2.0, 2.0)), ("contrast", (0.1, 0.1)), ("saturation", (0.0, 0.0)),
                      ("hue", (0.25, 0.25))]:
        (q,) = T.RandomPhotometricDistort(p=1.0, **{name: rng}, generator=_gen(5)).make_params(image[None], [None])
        assert q[name] == pytest.approx(rng[0])
    coins = [T.RandomPhotometricDistort(p=0.5, generator=_gen(s)).make_params(image[None], [None])[0]
             for s in range(20)]
    assert 0 < sum(c["brightness"] is None for c in coins) < 20
    assert {c["contrast_before"] for c in coins} == {True, False}


# ----------------------------------------------------------------------------------------------
# Normalize, ToDtype, SanitizeBoxes, containers


def test_normalize_and_to_dtype():
    image = torch.tensor([[[0, 255]], [[51, 102]]], dtype=torch.uint8)
    f = T.ToDtype(torch.float32)(image)
    assert f.dtype == torch.float32 and f.flatten().tolist() == pytest.approx([0, 1, 0.2, 0.4])
    assert torch.equal(T.ToDtype(torch.uint8)(f), image)
    assert T.ToDtype(torch.float32, scale=False)(image).tolist() == [[[0, 255]], [[51, 102]]]
    assert T.ToDtype(torch.uint8, scale=False)(torch.tensor([[[-3.0, 2.6, 300.0]]])).tolist() == [[[0, 3, 255]]]
    assert T.ToDtype(torch.float64)(image).dtype == torch.float64
    n = T.Normalize((0.5, 0.0), (0.5, 2.0))(f)
    assert n.flatten().tolist() == pytest.approx([-1, 1, 0.1, 0.2])
    assert T.Normalize(0.0, 1.0)(f).tolist() == f.tolist()


def test_sanitize_boxes_min_size_and_per_box_entries():
    boxes = torch.tensor([[1.0, 1.0, 5.0, 5.0], [2.0, 2.0, 2.5, 9.0], [3.0, 3.0, 3.0, 6.0],
                          [float("nan"), 0, 1, 1], [-2.0, 1.0, 7.0, 30.0], [6.0, 6.0, 1.0, 9.0]])
    target = {"boxes": boxes, "labels": torch.arange(6), "difficult": np.arange(6) % 2 == 0, "image_id": 1,
              "mask": torch.zeros(10, 10, dtype=torch.int64)}
    _, tg = T.SanitizeBoxes()(torch.zeros(3, 10, 10), target)
    assert tg["labels"].tolist() == [0, 4] and tg["difficult"].tolist() == [True, True]
    assert tg["boxes"].tolist() == [[1, 1, 5, 5], [0, 1, 7, 10]] and tg["mask"] is target["mask"]
    _, tg = T.SanitizeBoxes(min_size=0.5)(torch.zeros(3, 10, 10), target)
    assert tg["labels"].tolist() == [0, 1, 4]  # the zero-width box always goes
    _, tg = T.SanitizeBoxes(min_size=5.0)(torch.zeros(3, 10, 10), target)
    assert tg["labels"].tolist() == [4]


def test_filter_target_rule():
    target = {"boxes": torch.zeros(3, 4), "labels": torch.tensor([1, 2, 3]), "mask": torch.zeros(3, 5),
              "extra": torch.tensor([7, 8, 9]), "other": torch.zeros(2), "image_id": 4, "names": ["a", "b", "c"]}
    out = F.filter_target(target, torch.tensor([True, False, True]))
    assert out["labels"].tolist() == [1, 3] and out["extra"].tolist() == [7, 9]
    assert out["mask"] is target["mask"] and out["other"] is target["other"] and out["names"] == ["a", "b", "c"]
    assert out["boxes"].shape == (2, 4) and target["labels"].tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match=r"target\['labels'\] must have one row per box \(3\)"):
        F.filter_target(dict(target, labels=torch.tensor([1, 2])), torch.tensor([0]))
    with pytest.raises(TypeError, match=r"target\['scores'\] must be a tensor or numpy array"):
        F.filter_target(dict(target, scores=[0.1, 0.2, 0.3]), torch.tensor([0]))


def test_compose_random_apply_random_choice():
    image, target = _scene()
    c = T.Compose([T.RandomHorizontalFlip(p=1.0), T.RandomVerticalFlip(p=1.0)])
    out, tg = c(image, target)
    assert torch.equal(out, image.flip(-1).flip(-2)) and torch.equal(c(image), out)
    assert "RandomHorizontalFlip" in repr(c)
    assert torch.equal(T.RandomApply(T.RandomHorizontalFlip(p=1.0), p=0.0)(image), image)
    assert torch.equal(T.RandomApply([T.RandomHorizontalFlip(p=1.0)], p=1.0)(image), image.flip(-1))
    out, tg = T.RandomApply([T.RandomHorizontalFlip(p=1.0)], p=0.0)(image, target)
    assert tg is not target and torch.equal(tg["boxes"], target["boxes"])
    decisions = {torch.equal(T.RandomApply([T.RandomHorizontalFlip(p=1.0)], generator=_gen(s))(image), image)
                 for s in range(10)}
    assert decisions == {True, False}
    ch = T.RandomChoice([T.Resize(16), T.Resize(32)], p=[0.0, 1.0], generator=_gen(0))
    assert all(ch(image).shape[-2] == 32 for _ in range(5))
    ch = T.RandomChoice([T.Resize(16), T.Resize(32)], generator=_gen(0))
    assert {ch(image).shape[-2] for _ in range(20)} == {16, 32}


# ----------------------------------------------------------------------------------------------
# Randomness: generators, seeds, batches


def _random_transforms(g):
    return [T.RandomHorizontalFlip(generator=g), T.RandomVerticalFlip(generator=g),
            T.RandomCrop(40, padding=4, generator=g), T.RandomResizedCrop(32, generator=g),
            T.RandomIoUCrop(generator=g), T.RandomZoomOut(p=0.9, generator=g),
            T.ColorJitter(0.4, 0.4, 0.4, 0.1, generator=g), T.RandomPhotometricDistort(generator=g)]


@pytest.mark.parametrize("index", range(8))
def test_same_seed_same_output_different_seed_different(index):
    image, target = _scene()

    def run(seed, n=6):
        t = _random_transforms(_gen(seed))[index]
        return [t(image, target) for _ in range(n)]

    a, b, c = run(0), run(0), run(1)
    for (ia, ta), (ib, tb) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["mask"], tb["mask"])
    assert any(not (ia.shape == ic.shape and torch.equal(ia, ic)) for (ia, _), (ic, _) in zip(a, c))


def test_global_rng_is_used_without_a_generator():
    image, target = _scene()
    t = T.Compose([T.RandomResizedCrop(32), T.ColorJitter(0.4, 0.4, 0.4, 0.1), T.RandomHorizontalFlip()])
    torch.manual_seed(123)
    a = [t(image) for _ in range(3)]
    torch.manual_seed(123)
    b = [t(image) for _ in range(3)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_transforms_with_a_generator_pickle_with_their_state():
    image, _ = _scene()
    t = T.Compose([T.RandomResizedCrop(32, generator=_gen(0)), T.ColorJitter(0.4, 0.4, generator=_gen(1))])
    t(image)
    copy = pickle.loads(pickle.dumps(t))
    assert torch.equal(t(image), copy(image))


class _AugmentedDataset(torch.utils.data.Dataset):
    """Four copies of one image, each augmented with the global RNG (no explicit generator)."""

    def __init__(self):
        self.image = torch.rand(3, 16, 16, generator=_gen(0))
        self.transform = T.Compose([T.RandomResizedCrop(8), T.ColorJitter(0.5, 0.5)])

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.transform(self.image)


def test_dataloader_workers_get_different_reproducible_augmentations():
    def run(seed):
        loader = torch.utils.data.DataLoader(_AugmentedDataset(), batch_size=None, num_workers=2,
                                             generator=torch.Generator().manual_seed(seed))
        return list(loader)

    a, b, c = run(0), run(0), run(1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not any(torch.equal(a[i], a[j]) for i in range(4) for j in range(i))  # workers differ
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


def _batch_transforms(g):
    return [T.RandomHorizontalFlip(generator=g), T.RandomVerticalFlip(generator=g), T.Resize((40, 52)),
            T.RandomCrop(40, padding=4, generator=g), T.RandomResizedCrop((30, 36), generator=g),
            T.RandomZoomOut(p=1.0, generator=g), T.ColorJitter(0.4, 0.4, 0.4, 0.1, generator=g),
            T.RandomPhotometricDistort(generator=g), T.Normalize(0.5, 0.2), T.ToDtype(torch.uint8),
            T.SanitizeBoxes()]


@pytest.mark.parametrize("index", range(11))
def test_batch_equals_each_image_alone_with_its_parameters(index, device):
    image, target = _scene(torch.float32, device)
    images = torch.stack([image, image.flip(-1), image.flip(-2), 1 - image])
    targets = [target, None, {"boxes": target["boxes"][:1], "labels": target["labels"][:1]},
               {"boxes": torch.zeros(0, 4, device=device), "labels": torch.zeros(0, dtype=torch.int64)}]
    t = _batch_transforms(_gen(7))[index]
    params = t.make_params(images, targets)
    out, out_targets = t.apply(images, targets, params)
    assert out.device == images.device and len(out_targets) == 4
    for i in range(4):
        one, (one_target,) = t.apply(images[i:i + 1], targets[i:i + 1], params[i:i + 1])
        assert torch.allclose(out[i:i + 1].double(), one.double(), atol=1e-6)
        if targets[i] is None:
            assert out_targets[i] is None
        else:
            assert torch.equal(out_targets[i]["boxes"], one_target["boxes"])
            assert torch.equal(out_targets[i]["labels"], one_target["labels"])
    # Through __call__, with a list of targets.
    out2, out_targets2 = t(images, targets)
    assert out2.shape[:2] == out.shape[:2] and len(out_targets2) == 4


def test_batch_parameters_are_per_image():
    images = torch.rand(6, 3, 20, 24, generator=_gen(0))
    crops = T.RandomResizedCrop(16, generator=_gen(0)).make_params(images, [None] * 6)
    assert len({tuple(p.values()) for p in crops}) > 1
    jitter = T.ColorJitter(0.5, generator=_gen(0)).make_params(images, [None] * 6)
    assert len({p["brightness"] for p in jitter}) == 6
    zoom = T.RandomZoomOut(p=1.0, generator=_gen(0)).make_params(images, [None] * 6)
    assert len({p["canvas"] for p in zoom}) == 1 and len({(p["top"], p["left"]) for p in zoom}) > 1
    out = T.RandomCrop(10, generator=_gen(0))(images)
    assert out.shape == (6, 3, 10, 10)
    assert not T.RandomIoUCrop().make_params(images[:1], [{"boxes": torch.zeros(0, 4)}])[0]["crop"]


# ----------------------------------------------------------------------------------------------
# Errors


def test_errors_name_the_argument():
    image, target = _scene()
    with pytest.raises(ValueError, match=r"image must have shape \[C, H, W\] or \[B, C, H, W\], got \(64, 80\)"):
        T.RandomHorizontalFlip()(image[0])
    with pytest.raises(TypeError, match="image must be uint8 .* got dtype torch.int32"):
        T.RandomHorizontalFlip()(image.int())
    with pytest.raises(TypeError, match="target must be a dict or None, got list"):
        T.RandomHorizontalFlip()(image, [target])
    with pytest.raises(TypeError, match="target for a batch of 2 images must be a list of 2 dicts"):
        T.RandomHorizontalFlip()(image[None].repeat(2, 1, 1, 1), [target])
    with pytest.raises(ValueError, match=r"target\['mask'\] must have the image's shape"):
        T.RandomHorizontalFlip()(image, dict(target, mask=target["mask"][:10]))
    with pytest.raises(TypeError, match=r"target\['mask'\] must be an integer tensor"):
        T.RandomHorizontalFlip()(image, dict(target, mask=target["mask"].float()))
    with pytest.raises(ValueError, match=r"target\['boxes'\] must have shape \[N, 4\]"):
        T.RandomHorizontalFlip()(image, dict(target, boxes=torch.zeros(2, 5)))
    with pytest.raises(TypeError, match=r"target\['boxes'\] must be a floating-point tensor"):
        T.RandomHorizontalFlip()(image, dict(target, boxes=target["boxes"].long()))
    with pytest.raises(ValueError, match=r"target\['masks'\] must have shape \[2, 64, 80\]"):
        T.RandomHorizontalFlip()(image, dict(target, masks=target["masks"][:1]))
    with pytest.raises(TypeError, match="must be floating point to normalize, got dtype torch.uint8"):
        T.Normalize(0.5, 0.5)(image)
    with pytest.raises(ValueError, match="std must be > 0"):
        T.Normalize(0.5, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="RandomIoUCrop needs a target dict with 'boxes'"):
        T.RandomIoUCrop()(image, {"labels": torch.zeros(0)})
    with pytest.raises(ValueError, match="RandomIoUCrop takes one image at a time"):
        T.RandomIoUCrop()(image[None].repeat(2, 1, 1, 1), [target, target])
    with pytest.raises(ValueError, match=r"RandomCrop size \(100, 100\) is larger than the padded image"):
        T.RandomCrop(100)(image)
    with pytest.raises(ValueError, match="p must be <= 1, got 1.5"):
        T.RandomHorizontalFlip(p=1.5)
    with pytest.raises(TypeError, match="generator must be a torch.Generator or None, got int"):
        T.RandomHorizontalFlip(generator=0)
    with pytest.raises(ValueError, match=r"scale\[0\] must be > 0"):
        T.RandomResizedCrop(32, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match=r"ratio must have min <= max, got \(2.0, 1.0\)"):
        T.RandomResizedCrop(32, ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"side_range\[0\] must be >= 1"):
        T.RandomZoomOut(side_range=(0.5, 2.0))
    with pytest.raises(ValueError, match="hue must be <= 0.5, got 0.6"):
        T.ColorJitter(hue=0.6)
    with pytest.raises(ValueError, match="brightness must be >= 0"):
        T.ColorJitter(brightness=-0.1)
    with pytest.raises(ValueError, match="ColorJitter needs RGB images with 3 channels"):
        T.ColorJitter(saturation=0.5)(image[:1])
    with pytest.raises(ValueError, match=r"sampler_options must be <= 1"):
        T.RandomIoUCrop(sampler_options=(0.5, 1.5))
    with pytest.raises(ValueError, match="trials must be >= 1, got 0"):
        T.RandomIoUCrop(trials=0)
    with pytest.raises(ValueError, match="min_visibility must be <= 1"):
        T.RandomCrop(10, min_visibility=2.0)
    with pytest.raises(ValueError, match=r"size must be \(height, width\), got \(1, 2, 3\)"):
        T.Resize((1, 2, 3))
    with pytest.raises(ValueError, match="fill must be a number or one number per channel"):
        T.RandomZoomOut(fill=(1, 2), p=1.0)(image)
    with pytest.raises(ValueError, match=r"fill must hold integers in \[0, 255\] for dtype torch.uint8"):
        T.RandomZoomOut(fill=300, p=1.0, side_range=(2, 2))(image)
    with pytest.raises(TypeError, match=r"transforms\[1\] must be callable"):
        T.Compose([T.Resize(3), "flip"])
    with pytest.raises(ValueError, match=r"p must hold one weight per transform \(2\)"):
        T.RandomChoice([T.Resize(3), T.Resize(4)], p=[1.0])
    with pytest.raises(TypeError, match="dtype must be torch.uint8 or a floating-point"):
        T.ToDtype(torch.int32)
    with pytest.raises(ValueError, match="permutation must be a permutation of 0..2"):
        F.permute_channels(image, [0, 0, 1])
    with pytest.raises(ValueError, match=r"factor as a tensor must be a scalar or hold one value per image \(2\)"):
        F.adjust_brightness(image[None].repeat(2, 1, 1, 1), torch.ones(3))
    with pytest.raises(ValueError, match=r"image must have 3 \(RGB\) channels"):
        F.adjust_hue(image[:2], 0.1)
    with pytest.raises(ValueError, match="RandomCrop.apply needs one parameter dict per image"):
        T.RandomCrop(10).apply(image[None], [None], [])


def test_functional_batches_take_one_factor_per_image():
    images = torch.rand(3, 3, 5, 6, generator=_gen(0))
    factors = torch.tensor([0.5, 1.0, 1.5])
    for fn in (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation):
        out = fn(images, factors)
        for i in range(3):
            assert torch.allclose(out[i], fn(images[i], float(factors[i])), atol=1e-6)
    out = F.adjust_hue(images, torch.tensor([-0.2, 0.0, 0.3]))
    assert torch.allclose(out[2], F.adjust_hue(images[2], 0.3), atol=1e-6)
    perms = torch.tensor([[2, 1, 0], [0, 1, 2], [1, 2, 0]])
    out = F.permute_channels(images, perms)
    assert all(torch.equal(out[i], images[i][perms[i]]) for i in range(3))


def test_crop_and_pad_functional():
    x = torch.arange(12).reshape(1, 3, 4)
    assert F.crop(x, 1, 1, 2, 2).tolist() == [[[5, 6], [9, 10]]]
    assert F.crop(x, -1, 3, 2, 2, fill=-1).tolist() == [[[-1, -1], [3, -1]]]
    assert F.crop(x, 5, 5, 1, 1, fill=9).tolist() == [[[9]]]  # entirely outside
    p = F.pad(x, (1, 0, 0, 2), fill=0)
    assert p.shape == (1, 5, 5) and p[0, :3, 1:].tolist() == x[0].tolist() and p[0, 3:].sum() == 0
    assert F.pad(x, 1).shape == (1, 5, 6)
    view = F.crop(x, 0, 0, 3, 4)
    view[0, 0, 0] = 100
    assert x[0, 0, 0] == 0  # crops are copies, never views
    assert math.isclose(float(F.translate_boxes(torch.tensor([[1.0, 2.0, 3.0, 4.0]]), -1, 2)[0, 3]), 6.0)
