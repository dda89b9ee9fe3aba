"""CenterCrop and the functional center_crop / center_crop_offsets."""

import pickle

import pytest
import torch

from pixbox.data import transforms as T
from pixbox.data.transforms import functional as F
from tests.data.test_transforms import H, W, _check_frames, _scene


def _reference_center_crop(x: torch.Tensor, h: int, w: int, fill) -> torch.Tensor:
    """Slow loop: output pixel (i, j) is input pixel (top + i, left + j) or ``fill`` outside.

    The start rounds towards zero (odd leftover at the bottom/right), written with plain floats.
    """
    H0, W0 = x.shape[-2:]
    top, left = int((H0 - h) / 2), int((W0 - w) / 2)
    out = torch.full(x.shape[:-2] + (h, w), fill, dtype=x.dtype)
    for i in range(h):
        for j in range(w):
            y, xx = top + i, left + j
            if 0 <= y < H0 and 0 <= xx < W0:
                out[..., i, j] = x[..., y, xx]
    return out


def test_center_crop_golden_values_on_an_arange_image():
    x = torch.arange(30, dtype=torch.uint8).view(1, 5, 6)
    # Even surplus: the same amount cut on both sides.
    assert T.CenterCrop((3, 2))(x)[0].tolist() == [[8, 9], [14, 15], [20, 21]]
    # Odd surplus (5 - 2 = 3 rows, 6 - 3 = 3 columns): 1 cut at the top/left, 2 at the bottom/right.
    assert T.CenterCrop((2, 3))(x)[0].tolist() == [[7, 8, 9], [13, 14, 15]]
    # An int is a square; the full size is the identity.
    assert T.CenterCrop(1)(x)[0].tolist() == [[14]]
    assert torch.equal(T.CenterCrop((5, 6))(x), x)
    assert F.center_crop_offsets((5, 6), (2, 3)) == (1, 1)
    assert F.center_crop_offsets((5, 6), (8, 9)) == (-1, -1)  # 3 missing: 1 padded before, 2 after
    assert F.center_crop_offsets((4, 4), (4, 8)) == (0, -2)


def test_center_crop_pads_with_fill_when_the_image_is_smaller():
    x = torch.arange(1, 7, dtype=torch.uint8).view(1, 2, 3)
    out = T.CenterCrop((5, 4), fill=9)(x)
    # 3 rows missing: 1 above, 2 below; 1 column missing: 0 left, 1 right.
    assert out[0].tolist() == [[9, 9, 9, 9],
                               [1, 2, 3, 9],
                               [4, 5, 6, 9],
                               [9, 9, 9, 9],
                               [9, 9, 9, 9]]
    # Mixed: taller window, narrower window.
    y = torch.arange(12, dtype=torch.uint8).view(1, 3, 4)
    assert T.CenterCrop((4, 2))(y)[0].tolist() == [[1, 2], [5, 6], [9, 10], [0, 0]]
    # One fill value per channel, and float images.
    rgb = torch.zeros(3, 2, 2)
    out = T.CenterCrop(4, fill=(0.1, 0.2, 0.3))(rgb)
    assert out.dtype == torch.float32 and out[:, 0, 0].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert out[:, 1:3, 1:3].abs().sum() == 0
    # The fill parameter changes the output.
    assert not torch.equal(T.CenterCrop(4, fill=0)(x), T.CenterCrop(4, fill=7)(x))


@pytest.mark.parametrize("seed", range(4))
def test_center_crop_matches_a_slow_loop(seed):
    g = torch.Generator().manual_seed(seed)
    h0, w0 = (int(v) for v in torch.randint(1, 12, (2,), generator=g))
    h, w = (int(v) for v in torch.randint(1, 12, (2,), generator=g))
    x = torch.randint(0, 255, (2, 3, h0, w0), generator=g, dtype=torch.uint8)
    expected = _reference_center_crop(x, h, w, 5)
    assert torch.equal(F.center_crop(x, (h, w), fill=5), expected)
    assert torch.equal(T.CenterCrop((h, w), fill=5)(x), expected)


def test_center_crop_moves_boxes_and_masks_like_functional_crop():
    image, target = _scene()
    for size in [(40, 50), (41, 53), (64, 80), (90, 101), (30, 100)]:
        out, tg = T.CenterCrop(size)(image, target)
        top, left = F.center_crop_offsets((H, W), size)
        assert out.shape == (3,) + size
        assert torch.equal(out, F.crop(image, top, left, *size))
        assert torch.equal(tg["mask"], F.crop(target["mask"], top, left, *size, fill=255))
        boxes, keep = F.clip_and_filter_boxes(F.translate_boxes(target["boxes"], -left, -top), size)
        assert torch.equal(tg["boxes"], boxes)
        assert torch.equal(tg["labels"], target["labels"][keep])
        assert torch.equal(tg["masks"], F.crop(target["masks"], top, left, *size)[keep])
        _check_frames(out, tg)
        # Round trip: padding back with the opposite offsets restores the pixels inside the window.
        back = F.crop(out, -top, -left, H, W)
        y0, x0 = max(top, 0), max(left, 0)
        y1, x1 = min(top + size[0], H), min(left + size[1], W)
        assert torch.equal(back[:, y0:y1, x0:x1], image[:, y0:y1, x0:x1])
        lo, hi = torch.tensor([x0, y0, x0, y0]), torch.tensor([x1, y1, x1, y1])
        assert torch.equal(F.translate_boxes(tg["boxes"], left, top), target["boxes"][keep].clamp(min=lo, max=hi))


def test_center_crop_box_rule_parameters():
    image = torch.zeros(3, 20, 20, dtype=torch.uint8)
    # Window 10x10 at (5, 5): box 0 keeps 2 of its 8 columns, box 1 is fully inside, box 2 is outside.
    target = {"boxes": torch.tensor([[1.0, 6.0, 9.0, 12.0], [7.0, 7.0, 12.0, 12.0], [0.0, 0.0, 3.0, 3.0]]),
              "labels": torch.tensor([1, 2, 3])}
    _, tg = T.CenterCrop(10)(image, target)
    assert tg["boxes"].tolist() == [[0.0, 1.0, 4.0, 7.0], [2.0, 2.0, 7.0, 7.0]]
    assert tg["labels"].tolist() == [1, 2]
    _, tg = T.CenterCrop(10, min_visibility=0.6)(image, target)  # box 0 keeps 4/8 = 0.5 of its area
    assert tg["labels"].tolist() == [2]
    _, tg = T.CenterCrop(10, min_size=4.5)(image, target)  # box 0 is 4 pixels wide after clipping
    assert tg["labels"].tolist() == [2]
    # Padding never drops a box; the mask gets mask_fill, instance masks 0.
    target = {"boxes": torch.tensor([[0.0, 0.0, 20.0, 20.0]]), "mask": torch.ones(20, 20, dtype=torch.int64),
              "masks": torch.ones(1, 20, 20, dtype=torch.bool)}
    out, tg = T.CenterCrop(24, mask_fill=7)(image, target)
    assert tg["boxes"].tolist() == [[2.0, 2.0, 22.0, 22.0]]
    assert tg["mask"][0, 0] == 7 and tg["mask"][2, 2] == 1 and tg["masks"][0, 0, 0].item() is False


def test_center_crop_batches_zero_boxes_and_no_target():
    image, target = _scene(torch.float32)
    images = torch.stack([image, image.flip(-1)])
    targets = [target, None]
    t = T.CenterCrop((33, 47))
    params = t.make_params(images, targets)
    assert params == [{"top": 15, "left": 16}] * 2
    out, out_targets = t(images, targets)
    assert out.shape == (2, 3, 33, 47) and out_targets[1] is None
    for i in range(2):
        one, (one_target,) = t.apply(images[i:i + 1], targets[i:i + 1], params[i:i + 1])
        assert torch.equal(out[i:i + 1], one)
    assert torch.equal(out_targets[0]["boxes"], t(image, target)[1]["boxes"])
    empty = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64),
             "masks": torch.zeros(0, H, W, dtype=torch.bool)}
    out, tg = t(image, empty)
    assert tg["boxes"].shape == (0, 4) and tg["masks"].shape == (0, 33, 47)
    assert t(image).shape == (3, 33, 47) and t(image, None)[1] is None
    assert pickle.loads(pickle.dumps(t)).size == (33, 47)
    assert repr(t).startswith("CenterCrop(size=(33, 47)")


def test_center_crop_errors_name_the_argument():
    image, _ = _scene()
    with pytest.raises(ValueError, match="size must be positive, got 0"):
        T.CenterCrop(0)
    with pytest.raises(ValueError, match=r"size must be \(height, width\), got \(1, 2, 3\)"):
        T.CenterCrop((1, 2, 3))
    with pytest.raises(TypeError, match="fill must be a number or a sequence of numbers"):
        T.CenterCrop(4, fill="black")
    with pytest.raises(ValueError, match="fill must be a number or one number per channel"):
        T.CenterCrop(100, fill=(1, 2))(image)
    with pytest.raises(ValueError, match="min_visibility must be <= 1"):
        T.CenterCrop(4, min_visibility=1.5)
    with pytest.raises(TypeError, match="mask_fill must be an int"):
        T.CenterCrop(4, mask_fill=0.5)
    with pytest.raises(ValueError, match="CenterCrop.apply needs one parameter dict per image"):
        T.CenterCrop(4).apply(image[None], [None], [])
    with pytest.raises(ValueError, match=r"size must be positive \(height, width\)"):
        F.center_crop(image, (0, 3))
    with pytest.raises(ValueError, match=r"image must have shape \[\.\.\., H, W\]"):
        F.center_crop(torch.zeros(4), (2, 2))
    with pytest.raises(ValueError, match=r"in_size must be \(height, width\)"):
        F.center_crop_offsets(5, (2, 2))
