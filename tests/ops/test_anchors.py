"""Tests for pixbox.ops.anchors: MultiBoxPrior anchors and the AnchorGenerator module."""

from __future__ import annotations

import pytest
import torch

import reference as R
from pixbox.ops import AnchorGenerator, generate_anchors, generate_multiscale_anchors, num_anchors_per_cell

TINY_SSD_SIZES = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
TINY_SSD_RATIOS = [1, 2, 0.5]


# --------------------------------------------------------------------------------------------
# golden values (D2L 14.4)


def test_d2l_golden_anchors(device):
    x = torch.zeros(1, 3, 561, 728, device=device)
    y = generate_anchors(x, sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])
    assert y.shape == (2042040, 4) and y.dtype == torch.float32 and y.device.type == device
    boxes = y.reshape(561, 728, 5, 4)[250, 250].cpu()
    torch.testing.assert_close(boxes[0], torch.tensor([0.055117, 0.071524, 0.633070, 0.821524]), rtol=0, atol=1e-5)
    # The other four anchors of that cell, from the MultiBoxPrior formula by hand.
    cx, cy = 250.5 / 728, 250.5 / 561
    for k, (s, r) in enumerate([(0.75, 1), (0.5, 1), (0.25, 1), (0.75, 2), (0.75, 0.5)]):
        hw, hh = s * r ** 0.5 * 561 / 728 / 2, s / r ** 0.5 / 2
        torch.testing.assert_close(boxes[k], torch.tensor([cx - hw, cy - hh, cx + hw, cy + hh]), rtol=0, atol=1e-6)


def test_anchor_aspect_ratio_in_pixels(device):
    # In pixels an anchor of ratio r has width / height == r, and height == size * image height for r = 1.
    h, w = 30, 50
    anchors = generate_anchors(torch.zeros(h, w, device=device), sizes=[0.4], ratios=[1, 4, 0.25]).cpu().double()
    px = anchors * torch.tensor([w, h, w, h], dtype=torch.float64)
    wh = px[:3, 2:] - px[:3, :2]
    torch.testing.assert_close(wh[:, 0] / wh[:, 1], torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64), rtol=1e-5, atol=0)
    torch.testing.assert_close(wh[0, 1], torch.tensor(0.4 * h, dtype=torch.float64), rtol=1e-5, atol=0)


def test_tiny_ssd_anchor_count(device):
    gen = AnchorGenerator(TINY_SSD_SIZES, TINY_SSD_RATIOS)
    maps = [torch.zeros(2, 8, s, s, device=device) for s in (32, 16, 8, 4, 1)]
    anchors = gen(maps)
    assert anchors.shape == (5444, 4) and anchors.device.type == device
    assert gen.num_anchors_per_cell() == [4] * 5
    assert num_anchors_per_cell([0.2, 0.272], [1, 2, 0.5]) == 4


# --------------------------------------------------------------------------------------------
# against the reference


STEP_CHOICES = [None, 0.1, (0.05, 0.2), -1, (0.0, 0.125)]
OFFSET_CHOICES = [(0.5, 0.5), 0.0, (0.25, 0.75), 1]


@pytest.mark.parametrize("seed", range(40))
def test_generate_anchors_matches_reference(seed, device):
    g = torch.Generator().manual_seed(seed)
    h, w = torch.randint(0, 7, (2,), generator=g).tolist()
    if seed < 3:
        h, w = [(0, 4), (1, 1), (3, 0)][seed]
    sizes = (torch.rand(int(torch.randint(1, 4, (1,), generator=g)), generator=g) * 0.9 + 0.05).tolist()
    ratios = (torch.rand(int(torch.randint(1, 4, (1,), generator=g)), generator=g) * 3 + 0.2).tolist()
    steps = STEP_CHOICES[seed % len(STEP_CHOICES)]
    offsets = OFFSET_CHOICES[seed % len(OFFSET_CHOICES)]
    clip = bool(seed % 3 == 0)
    dtype = [torch.float32, torch.float64][seed % 2]
    fmap = torch.zeros(1, 2, h, w, dtype=dtype, device=device)
    got = generate_anchors(fmap, sizes, ratios, steps=steps, offsets=offsets, clip=clip)
    expected = R.generate_anchors(h, w, sizes, ratios, steps=steps, offsets=offsets, clip=clip)
    assert got.shape == (h * w * (len(sizes) + len(ratios) - 1), 4) and got.dtype == dtype
    assert got.device.type == device
    got = got.cpu()
    assert not torch.isnan(got).any()
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=tol)


@pytest.mark.parametrize("seed", range(5))
def test_generate_multiscale_anchors_matches_reference(seed, device):
    g = torch.Generator().manual_seed(seed)
    shapes = [tuple(torch.randint(1, 6, (2,), generator=g).tolist()) for _ in range(3)]
    sizes = [(torch.rand(2, generator=g) * 0.8 + 0.1).tolist() for _ in range(3)]
    ratios = [[1.0, 2.0, 0.5], [1.0], [0.5, 3.0]]
    steps = [None, 0.25, (0.1, 0.2)]
    got = generate_multiscale_anchors(shapes, sizes, ratios, steps=steps, offsets=(0.3, 0.6), clip=True)
    expected = torch.cat([R.generate_anchors(h, w, s, r, steps=st, offsets=(0.3, 0.6), clip=True)
                          for (h, w), s, r, st in zip(shapes, sizes, ratios, steps)])
    torch.testing.assert_close(got.double(), expected, rtol=0, atol=1e-6)
    maps = [torch.zeros(1, 2, h, w, device=device) for h, w in shapes]  # feature maps give the device
    on_device = generate_multiscale_anchors(maps, sizes, ratios, steps=steps, offsets=(0.3, 0.6), clip=True)
    assert on_device.device.type == device
    torch.testing.assert_close(on_device.cpu(), got, rtol=0, atol=1e-6)
    # One shared list of ratios is the same as repeating it per scale.
    shared = generate_multiscale_anchors(shapes, sizes, [1.0, 2.0])
    assert torch.equal(shared, generate_multiscale_anchors(shapes, sizes, [[1.0, 2.0]] * 3))


# --------------------------------------------------------------------------------------------
# every parameter changes the output


def _base(device="cpu", **kw):
    args = dict(sizes=[0.5, 0.25], ratios=[1, 2])
    args.update(kw)
    out = generate_anchors(torch.zeros(3, 4, device=device), **args)
    assert out.device.type == device
    return out


def test_sizes_change_output(device):
    assert not torch.equal(_base(device), _base(device, sizes=[0.4, 0.25]))
    assert _base(device, sizes=[0.5]).shape == (3 * 4 * 2, 4)


def test_ratios_change_output(device):
    assert not torch.equal(_base(device), _base(device, ratios=[1, 3]))
    assert _base(device, ratios=[1, 2, 0.5]).shape == (3 * 4 * 4, 4)


def test_steps_change_output(device):
    default = _base(device)
    assert torch.equal(default, _base(device, steps=(1 / 3, 1 / 4)))
    assert torch.equal(default, _base(device, steps=-1))  # non-positive means the default
    moved = _base(device, steps=0.1)
    assert not torch.equal(default, moved)
    centres = (moved[:, :2] + moved[:, 2:]) / 2
    torch.testing.assert_close(centres[-1].cpu(), torch.tensor([3.5 * 0.1, 2.5 * 0.1]))
    only_x = _base(device, steps=(-1, 0.1))
    assert torch.equal(only_x[:, 1::2], default[:, 1::2]) and not torch.equal(only_x[:, 0::2], default[:, 0::2])


def test_offsets_change_output(device):
    default = _base(device)
    shifted = _base(device, offsets=0.0)
    torch.testing.assert_close(shifted[:, 0::2], default[:, 0::2] - 0.5 / 4)
    torch.testing.assert_close(shifted[:, 1::2], default[:, 1::2] - 0.5 / 3)
    only_y = _base(device, offsets=(0.0, 0.5))
    assert torch.equal(only_y[:, 0::2], default[:, 0::2]) and not torch.equal(only_y[:, 1::2], default[:, 1::2])


def test_clip_changes_output(device):
    raw = _base(device, sizes=[0.9])
    clipped = _base(device, sizes=[0.9], clip=True)
    assert raw.min() < 0 and raw.max() > 1
    assert clipped.min() >= 0 and clipped.max() <= 1
    torch.testing.assert_close(clipped, raw.clamp(0, 1))


def test_feature_map_size_gives_shape_dtype_and_device(device):
    pair = generate_anchors((3, 5), [0.5], [1])
    assert pair.dtype == torch.float32 and pair.device.type == "cpu" and pair.shape == (15, 4)
    for dtype in (torch.float32, torch.float64):
        out = generate_anchors(torch.zeros(3, 5, dtype=dtype, device=device), [0.5], [1])
        assert out.dtype == dtype and out.device.type == device
        torch.testing.assert_close(out.cpu().float(), pair)
    ints = generate_anchors(torch.zeros(1, 3, 5, dtype=torch.long, device=device), [0.5], [1])
    assert ints.dtype == torch.float32 and ints.device.type == device
    assert not torch.equal(generate_anchors((5, 3), [0.5], [1]), pair)  # (H, W), not (W, H)


def test_empty_feature_maps(device):
    for size in [(0, 5), (5, 0), (0, 0)]:
        out = generate_anchors(size, [0.5], [1, 2])
        assert out.shape == (0, 4) and out.dtype == torch.float32
    out = generate_anchors(torch.zeros(2, 0, 7, dtype=torch.float64, device=device), [0.5], [1, 2])
    assert out.shape == (0, 4) and out.dtype == torch.float64 and out.device.type == device
    assert generate_multiscale_anchors([], [], []).shape == (0, 4)


# --------------------------------------------------------------------------------------------
# AnchorGenerator


def test_anchor_generator_non_square_maps(device):
    gen = AnchorGenerator([[0.3, 0.5], [0.6]], [[1, 2], [1, 0.5, 3]])
    maps = [torch.zeros(1, 4, 6, 10, device=device), torch.zeros(1, 4, 3, 2, device=device)]
    anchors = gen(maps)
    assert anchors.shape == (6 * 10 * 3 + 3 * 2 * 3, 4) and anchors.device.type == device
    expected = torch.cat([R.generate_anchors(6, 10, [0.3, 0.5], [1, 2]), R.generate_anchors(3, 2, [0.6], [1, 0.5, 3])])
    torch.testing.assert_close(anchors.cpu().double(), expected, rtol=0, atol=1e-6)
    # Transposed maps give different anchors (the H / W ratio enters the anchor width).
    transposed = gen([torch.zeros(1, 4, 10, 6, device=device), torch.zeros(1, 4, 2, 3, device=device)])
    assert transposed.shape == anchors.shape and not torch.equal(transposed, anchors)


def test_anchor_generator_follows_feature_maps_and_caches(device):
    gen = AnchorGenerator(TINY_SSD_SIZES[:2], TINY_SSD_RATIOS)
    maps = [torch.zeros(1, 2, 8, 8, device=device, dtype=torch.float64), torch.zeros(1, 2, 4, 4, device=device, dtype=torch.float64)]
    a = gen(maps)
    assert a.device.type == device and a.dtype == torch.float64 and a.shape == ((64 + 16) * 4, 4)
    assert gen(maps) is a  # cached per shape
    b = gen([m.float() for m in maps])
    assert b.dtype == torch.float32
    torch.testing.assert_close(b.double(), a, rtol=0, atol=1e-6)


def test_anchor_generator_clip(device):
    maps = [torch.zeros(1, 1, 4, 4, device=device)]
    raw = AnchorGenerator([[0.9]], [1, 2])(maps)
    clipped = AnchorGenerator([[0.9]], [1, 2], clip=True)(maps)
    assert raw.min() < 0 and clipped.min() >= 0 and clipped.max() <= 1
    torch.testing.assert_close(clipped, raw.clamp(0, 1))
    assert "clip=True" in repr(AnchorGenerator([[0.9]], [1, 2], clip=True))


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_input_raises_with_argument_name():
    with pytest.raises(ValueError, match="sizes"):
        generate_anchors((2, 2), [], [1])
    with pytest.raises(ValueError, match="sizes"):
        generate_anchors((2, 2), [0.5, -0.1], [1])
    with pytest.raises(ValueError, match="ratios"):
        generate_anchors((2, 2), [0.5], [0])
    with pytest.raises(ValueError, match="ratios"):
        generate_anchors((2, 2), [0.5], [float("nan")])
    with pytest.raises(TypeError, match="sizes"):
        generate_anchors((2, 2), 0.5, [1])
    with pytest.raises(ValueError, match="feature_map_size"):
        generate_anchors((2, 2, 2), [0.5], [1])
    with pytest.raises(ValueError, match="feature_map_size"):
        generate_anchors(torch.zeros(5), [0.5], [1])
    with pytest.raises(ValueError, match="feature_map_size"):
        generate_anchors((-1, 2), [0.5], [1])
    with pytest.raises(ValueError, match="steps"):
        generate_anchors((2, 2), [0.5], [1], steps=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="offsets"):
        generate_anchors((2, 2), [0.5], [1], offsets="center")
    with pytest.raises(ValueError, match="sizes"):
        generate_multiscale_anchors([(2, 2), (1, 1)], [[0.5]], [1])
    with pytest.raises(ValueError, match="ratios"):
        generate_multiscale_anchors([(2, 2), (1, 1)], [[0.5], [0.4]], [[1], [1], [2]])
    with pytest.raises(ValueError, match="steps"):
        generate_multiscale_anchors([(2, 2), (1, 1)], [[0.5], [0.4]], [1], steps=[0.1])
    with pytest.raises(ValueError, match="sizes"):
        AnchorGenerator([[0.5], [0.0]], [1])
    with pytest.raises(ValueError, match="ratios"):
        AnchorGenerator([[0.5], [0.3]], [[1], [1], [2]])
    with pytest.raises(ValueError, match="feature maps"):
        AnchorGenerator([[0.5], [0.3]], [1])([torch.zeros(1, 1, 2, 2)])
