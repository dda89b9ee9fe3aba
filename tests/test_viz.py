import math

import numpy as np
import pytest
import torch
from PIL import Image

from pixbox.viz import PALETTE, add_caption, draw_boxes, draw_masks, label_color, make_grid, save_image, to_pil

RED = (255, 0, 0)


def _blank(h=20, w=30, value=0):
    return torch.full((3, h, w), value, dtype=torch.uint8)


def _outline_mask(h, w, x1, y1, x2, y2, width=1):
    """Reference: the pixels of a ``width``-thick outline inside the pixel box [x1, x2) x [y1, y2)."""
    mask = torch.zeros(h, w, dtype=torch.bool)
    for y in range(max(y1, 0), min(y2, h)):
        for x in range(max(x1, 0), min(x2, w)):
            inner = x1 + width <= x < x2 - width and y1 + width <= y < y2 - width
            mask[y, x] = not inner
    return mask


def _changed(a, b):
    return (a != b).any(dim=0)


@pytest.mark.parametrize("width", [1, 2, 3])
def test_outline_changes_exactly_the_border_pixels(width):
    image = _blank()
    out = draw_boxes(image, torch.tensor([[5.0, 4.0, 15.0, 12.0]]), colors=RED, width=width)
    assert out.dtype == torch.uint8 and out.shape == (3, 20, 30)
    expected = _outline_mask(20, 30, 5, 4, 15, 12, width)
    assert torch.equal(_changed(out, image), expected)
    assert out[:, 4, 5].tolist() == list(RED)  # top-left corner
    assert out[:, 11, 14].tolist() == list(RED)  # bottom-right corner: last pixel inside the box
    assert out[:, 8, 10].tolist() == [0, 0, 0]  # interior
    assert out[:, 12, 15].tolist() == [0, 0, 0]  # just outside


def test_fractional_boxes_round_to_pixel_edges():
    image = _blank()
    out = draw_boxes(image, torch.tensor([[4.6, 3.7, 15.2, 12.4]]), colors=RED, width=1)
    assert torch.equal(_changed(out, image), _outline_mask(20, 30, 5, 4, 15, 12))


def test_input_not_modified_and_integer_boxes_accepted():
    image = _blank()
    before = image.clone()
    out = draw_boxes(image, torch.tensor([[1, 1, 8, 8]]), colors=RED)
    assert torch.equal(image, before)
    assert _changed(out, image).any()


def test_empty_boxes_return_image_unchanged():
    image = torch.randint(0, 256, (3, 16, 16), dtype=torch.uint8)
    out = draw_boxes(image, torch.zeros(0, 4), labels=[], scores=[])
    assert torch.equal(out, image)
    assert out.data_ptr() != image.data_ptr()


def test_float_input_is_scaled_to_uint8():
    image = torch.full((3, 10, 10), 0.5)
    out = draw_boxes(image, torch.tensor([[2.0, 2.0, 8.0, 8.0]]), colors=RED, width=1)
    assert out.dtype == torch.uint8
    assert out[:, 5, 5].tolist() == [128, 128, 128]
    assert out[:, 2, 2].tolist() == list(RED)


def test_grey_input_is_expanded_to_rgb():
    grey = torch.full((1, 10, 12), 7, dtype=torch.uint8)
    out = draw_boxes(grey, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), colors=RED, width=1)
    assert out.shape == (3, 10, 12)
    assert out[:, 6, 6].tolist() == [7, 7, 7]


def test_pil_and_numpy_inputs_match_tensor_input():
    image = torch.randint(0, 256, (3, 12, 14), dtype=torch.uint8)
    boxes = torch.tensor([[1.0, 2.0, 9.0, 10.0]])
    ref = draw_boxes(image, boxes, colors=RED)
    hwc = image.permute(1, 2, 0).numpy()
    assert torch.equal(draw_boxes(hwc, boxes, colors=RED), ref)
    assert torch.equal(draw_boxes(Image.fromarray(hwc), boxes, colors=RED), ref)
    assert torch.equal(draw_boxes(hwc.astype(np.float32) / 255, boxes, colors=RED), ref)


def test_boxes_partly_outside_are_drawn_clipped():
    image = _blank()
    out = draw_boxes(image, torch.tensor([[-10.0, -10.0, 5.0, 5.0], [25.0, 15.0, 40.0, 30.0]]),
                     colors=RED, width=1)
    expected = _outline_mask(20, 30, -10, -10, 5, 5) | _outline_mask(20, 30, 25, 15, 40, 30)
    assert torch.equal(_changed(out, image), expected)
    # The visible outline is the box's own right / bottom edge, not the image border.
    assert out[:, 0, 0].tolist() == [0, 0, 0]
    assert out[:, 0, 4].tolist() == list(RED)


def test_huge_infinite_and_fully_outside_boxes_do_not_crash():
    image = _blank()
    boxes = torch.tensor([[-1e30, -1e30, 1e30, 1e30], [-math.inf, 2.0, 10.0, math.inf], [50.0, 50.0, 60.0, 60.0]])
    out = draw_boxes(image, boxes, ["a", "b", "c"], [0.1, 0.2, 0.3], colors=RED)
    assert out.shape == (3, 20, 30)
    # The third box is wholly outside: neither its outline nor its caption appears.
    ref = draw_boxes(image, boxes[:2], ["a", "b"], [0.1, 0.2], colors=RED)
    assert torch.equal(out, ref)


def test_degenerate_box_draws_a_line():
    image = _blank()
    out = draw_boxes(image, torch.tensor([[5.0, 2.0, 5.0, 9.0]]), colors=RED, width=1)
    changed = _changed(out, image)
    assert changed[2:9, 5].all() and int(changed.sum()) == 7


def test_labels_and_scores_draw_a_caption_above_the_box():
    image = _blank(60, 80)
    boxes = torch.tensor([[10.0, 30.0, 50.0, 55.0]])
    plain = draw_boxes(image, boxes, colors=RED, width=1)
    labelled = draw_boxes(image, boxes, ["cat"], [0.93], colors=RED, width=1, font_size=12)
    diff = _changed(labelled, plain)
    ys, xs = diff.nonzero(as_tuple=True)
    assert diff.any()
    assert int(ys.max()) < 30 and int(xs.min()) >= 10  # caption sits above the box, at its left edge
    # The caption background is the box colour.
    assert (labelled[:, ys, xs] == torch.tensor(RED)[:, None]).all(dim=0).float().mean() > 0.5
    # Longer text covers more pixels; the score is part of the text.
    label_only = draw_boxes(image, boxes, ["cat"], colors=RED, width=1, font_size=12)
    assert int(_changed(label_only, plain).sum()) < int(diff.sum())


def test_caption_goes_inside_when_the_box_touches_the_top():
    image = _blank(60, 80)
    boxes = torch.tensor([[10.0, 0.0, 70.0, 50.0]])
    plain = draw_boxes(image, boxes, colors=RED, width=1)
    labelled = draw_boxes(image, boxes, [3], colors=RED, width=1, font_size=12)
    ys, _ = _changed(labelled, plain).nonzero(as_tuple=True)
    assert len(ys) and int(ys.min()) >= 1 and int(ys.max()) < 50


def test_captions_avoid_each_other():
    image = _blank(100, 100)
    boxes = torch.tensor([[20.0, 50.0, 80.0, 90.0], [22.0, 51.0, 80.0, 90.0]])
    out = draw_boxes(image, boxes, ["first", "second"], colors=["red", "blue"], width=1, font_size=12)
    red_rows = (out == torch.tensor([255, 0, 0])[:, None, None]).all(0)[:, 30:60].any(1).nonzero().flatten()
    blue_rows = (out == torch.tensor([0, 0, 255])[:, None, None]).all(0)[:, 30:60].any(1).nonzero().flatten()
    # Both caption backgrounds are visible, in different rows (the first above the box, the
    # second inside its top since the spot above is taken).
    outline_rows = {50, 51, 89}
    red_caption = set(red_rows.tolist()) - outline_rows
    blue_caption = set(blue_rows.tolist()) - outline_rows
    assert len(red_caption) > 8 and len(blue_caption) > 8
    assert red_caption.isdisjoint(blue_caption)
    assert max(red_caption) < 50 < min(blue_caption)


def test_colors_single_tuple_per_box_and_defaults():
    image = _blank()
    boxes = torch.tensor([[0.0, 0.0, 5.0, 5.0], [10.0, 10.0, 15.0, 15.0]])
    out = draw_boxes(image, boxes, colors=(0, 255, 0), width=1)
    assert out[:, 0, 0].tolist() == [0, 255, 0] and out[:, 10, 10].tolist() == [0, 255, 0]
    out = draw_boxes(image, boxes, colors=["blue", "#ffff00"], width=1)
    assert out[:, 0, 0].tolist() == [0, 0, 255] and out[:, 10, 10].tolist() == [255, 255, 0]
    out = draw_boxes(image, boxes, width=1)  # no labels: one palette colour per box
    assert out[:, 0, 0].tolist() == list(PALETTE[0]) and out[:, 10, 10].tolist() == list(PALETTE[1])
    out = draw_boxes(image, boxes, labels=torch.tensor([5, 5]), width=1, font_size=10)
    assert out[:, 4, 4].tolist() == list(PALETTE[5]) and out[:, 14, 14].tolist() == list(PALETTE[5])


def test_label_color_is_deterministic():
    assert label_color(3) == PALETTE[3]
    assert label_color(len(PALETTE) + 1) == PALETTE[1]
    assert label_color("cat") == label_color("cat") and label_color("cat") in PALETTE
    with pytest.raises(TypeError, match="label"):
        label_color(1.5)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(boxes=torch.zeros(4)), ValueError, r"boxes must have shape \[N, 4\]"),
        (dict(boxes=[[0, 0, 1, 1]]), TypeError, "boxes must be a torch.Tensor"),
        (dict(boxes=torch.tensor([[5.0, 0.0, 1.0, 1.0]])), ValueError, "x1 <= x2"),
        (dict(boxes=torch.tensor([[0.0, 0.0, float("nan"), 1.0]])), ValueError, "NaN"),
        (dict(labels=["a", "b"]), ValueError, r"labels must have one entry per box \(1\)"),
        (dict(labels="a"), TypeError, "labels"),
        (dict(labels=[1.5]), TypeError, r"labels\[0\]"),
        (dict(scores=[0.1, 0.2]), ValueError, "scores"),
        (dict(scores=torch.zeros(2)), ValueError, "scores must have shape"),
        (dict(colors=["red", "blue"]), ValueError, "colors must be one colour or one colour per box"),
        (dict(colors="not-a-colour"), ValueError, "colors must be a colour name"),
        (dict(colors=[(0, 0, 300)]), ValueError, r"colors\[0\]"),
        (dict(width=0), ValueError, "width must be an int >= 1"),
        (dict(font_size=0), ValueError, "font_size"),
        (dict(image=torch.zeros(2, 5, 5)), ValueError, r"image must have shape \[3, H, W\]"),
        (dict(image=torch.zeros(5, 5)), ValueError, "image must have shape"),
        (dict(image="x.png"), TypeError, "image must be a torch.Tensor"),
        (dict(image=np.zeros((5, 5, 4), np.uint8)), ValueError, "image as a numpy array"),
        (dict(image=torch.full((3, 5, 5), 300, dtype=torch.int32)), ValueError, r"\[0, 255\]"),
    ],
)
def test_bad_inputs_raise_with_the_argument_name(kwargs, exc, match):
    args = dict(image=_blank(), boxes=torch.tensor([[0.0, 0.0, 4.0, 4.0]]))
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        draw_boxes(args.pop("image"), args.pop("boxes"), **args)


def test_save_image_png_round_trip_and_creates_parents(tmp_path):
    image = torch.randint(0, 256, (3, 9, 11), dtype=torch.uint8)
    path = save_image(image, tmp_path / "a" / "b" / "x.png")
    assert path == tmp_path / "a" / "b" / "x.png"
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (11, 9)
        assert torch.equal(torch.from_numpy(np.array(im)).permute(2, 0, 1), image)
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.png"]  # no temporary file left


def test_save_image_jpeg_and_overwrite(tmp_path):
    path = tmp_path / "x.JPG"
    save_image(torch.zeros(3, 8, 8), path)
    save_image(torch.ones(1, 6, 10), path)
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == (10, 6)
        assert np.array(im).min() > 250


def test_save_image_bad_suffix_leaves_nothing(tmp_path):
    with pytest.raises(ValueError, match="path must end in one of"):
        save_image(torch.zeros(3, 4, 4), tmp_path / "out" / "x.gif")
    assert not (tmp_path / "out").exists()
    with pytest.raises(TypeError, match="path"):
        save_image(torch.zeros(3, 4, 4), 3)


def test_to_pil():
    image = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8)
    pil = to_pil(image)
    assert pil.mode == "RGB" and pil.size == (7, 5)
    assert torch.equal(torch.from_numpy(np.array(pil)).permute(2, 0, 1), image)


def test_make_grid_layout():
    a = torch.full((3, 4, 6), 10, dtype=torch.uint8)
    b = torch.full((3, 5, 3), 20, dtype=torch.uint8)
    c = torch.full((1, 2, 2), 30, dtype=torch.uint8)
    grid = make_grid([a, b, c], ncol=2, pad=1)
    # Cells are 5 x 6 (the largest image); 2 rows, 2 columns.
    assert grid.shape == (3, 2 * (5 + 1) + 1, 2 * (6 + 1) + 1)
    assert (grid[:, 1:5, 1:7] == 10).all()
    assert (grid[:, 1:6, 8:11] == 20).all()
    assert (grid[:, 7:9, 1:3] == 30).all()
    assert (grid[:, 0] == 255).all() and (grid[:, :, 7] == 255).all()  # padding
    assert (grid[:, 1:6, 11:14] == 255).all()  # unused part of b's cell
    row = make_grid([a, b], pad=0, pad_value=0)
    assert row.shape == (3, 5, 12)


def test_make_grid_bad_inputs():
    with pytest.raises(ValueError, match="images must not be empty"):
        make_grid([], ncol=1)
    with pytest.raises(TypeError, match="images must be a list"):
        make_grid(torch.zeros(3, 4, 4), ncol=1)
    with pytest.raises(ValueError, match="ncol"):
        make_grid([torch.zeros(3, 4, 4)], ncol=0)
    with pytest.raises(ValueError, match="pad"):
        make_grid([torch.zeros(3, 4, 4)], ncol=1, pad=-1)
    with pytest.raises(ValueError, match=r"images\[1\] must have shape"):
        make_grid([torch.zeros(3, 4, 4), torch.zeros(4, 4)])


def test_add_caption_adds_a_band_above():
    image = torch.randint(0, 256, (3, 40, 90), dtype=torch.uint8)
    out = add_caption(image, "hello")
    band = out.shape[1] - 40
    assert out.shape[0] == 3 and out.shape[2] == 90 and band > 8
    assert torch.equal(out[:, band:], image)
    assert (out[:, :band] < 128).any()  # dark text on the white band
    # The band height depends on the font and the number of lines, not on the glyphs.
    assert add_caption(image, "ace").shape == add_caption(image, "(Qy|j)").shape
    assert add_caption(image, "a\nb").shape[1] > out.shape[1]
    assert add_caption(image, "a", font_size=30).shape[1] > out.shape[1]
    with pytest.raises(TypeError, match="text"):
        add_caption(image, 3)


# ----------------------------------------------------------------------------------------------
# draw_masks


def _reference_overlay(image, mask, palette, alpha, background, ignore_index, ignore_color):
    """Pixel by pixel, the rule the draw_masks docstring states."""
    out = image.clone()
    for y in range(mask.shape[0]):
        for x in range(mask.shape[1]):
            v = int(mask[y, x])
            if background is not None and v == background:
                continue
            if ignore_index is not None and v == ignore_index:
                if ignore_color is None:
                    continue
                color = ignore_color
            else:
                color = palette[v]
            for c in range(3):
                out[c, y, x] = math.floor((1 - alpha) * int(image[c, y, x]) + alpha * color[c] + 0.5)
    return out


def test_draw_masks_golden_pixels_with_the_voc_palette():
    image = torch.tensor([[[100, 0, 10, 255]], [[100, 1, 20, 0]], [[100, 2, 30, 7]]], dtype=torch.uint8)
    mask = torch.tensor([[0, 1, 2, 255]])
    out = draw_masks(image, mask)
    # background untouched; class 1 is VOC (128, 0, 0), class 2 (0, 128, 0); ignore blends with white.
    assert out[:, 0, 0].tolist() == [100, 100, 100]
    assert out[:, 0, 1].tolist() == [64, 1, 1]  # (0 + 128) / 2, (1 + 0) / 2 = 0.5 -> 1, (2 + 0) / 2
    assert out[:, 0, 2].tolist() == [5, 74, 15]
    assert out[:, 0, 3].tolist() == [255, 128, 131]  # (0 + 255) / 2 = 127.5 -> 128
    assert out.dtype == torch.uint8 and torch.equal(image[:, 0, 0], torch.tensor([100, 100, 100], dtype=torch.uint8))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.5, 1.0])
def test_draw_masks_matches_the_reference_loop(seed, alpha):
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, 7, 9), generator=g, dtype=torch.uint8)
    mask = torch.randint(0, 5, (7, 9), generator=g)
    mask[torch.rand(7, 9, generator=g) < 0.2] = 255
    palette = [tuple(int(v) for v in torch.randint(0, 256, (3,), generator=g)) for _ in range(5)]
    out = draw_masks(image, mask, alpha=alpha, palette=palette)
    assert torch.equal(out, _reference_overlay(image, mask, palette, alpha, 0, 255, (255, 255, 255)))


def test_draw_masks_alpha_extremes():
    image = torch.randint(0, 256, (3, 4, 5), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    mask = torch.tensor([[0, 1, 2, 3, 255]] * 4)
    assert torch.equal(draw_masks(image, mask, alpha=0.0), image)
    full = draw_masks(image, mask, alpha=1.0, palette=["black", "red", (0, 0, 255), "#00ff00"])
    assert torch.equal(full[:, :, 0], image[:, :, 0])  # background
    assert full[:, 0, 1:].T.tolist() == [[255, 0, 0], [0, 0, 255], [0, 255, 0], [255, 255, 255]]


def test_draw_masks_each_parameter_changes_the_output():
    image = torch.full((3, 2, 3), 50, dtype=torch.uint8)
    mask = torch.tensor([[0, 1, 255], [2, 1, 0]])
    base = draw_masks(image, mask)
    # alpha
    assert draw_masks(image, mask, alpha=0.25)[:, 0, 1].tolist() == [70, 38, 38]  # 50 * .75 + 128 * .25 = 69.5
    assert not torch.equal(draw_masks(image, mask, alpha=0.25), base)
    # palette: a tensor palette works like a list and is used instead of VOC's
    pal = torch.tensor([[0, 0, 0], [0, 0, 200], [200, 0, 0]])
    custom = draw_masks(image, mask, palette=pal)
    assert custom[:, 0, 1].tolist() == [25, 25, 125] and custom[:, 1, 0].tolist() == [125, 25, 25]
    assert torch.equal(custom, draw_masks(image, mask, palette=[(0, 0, 0), (0, 0, 200), (200, 0, 0)]))
    # background: None paints class 0 too (black in the VOC palette)
    assert base[:, 0, 0].tolist() == [50, 50, 50]
    assert draw_masks(image, mask, background=None)[:, 0, 0].tolist() == [25, 25, 25]
    assert draw_masks(image, mask, background=1)[:, 0, 1].tolist() == [50, 50, 50]
    # ignore_color and ignore_index
    assert base[:, 0, 2].tolist() == [153, 153, 153]  # (50 + 255) / 2 = 152.5 -> 153
    assert draw_masks(image, mask, ignore_color="red")[:, 0, 2].tolist() == [153, 25, 25]
    assert draw_masks(image, mask, ignore_color=None)[:, 0, 2].tolist() == [50, 50, 50]
    # without an ignore index, 255 is a class: VOC colour 255 is (224, 224, 192)
    assert draw_masks(image, mask, ignore_index=None)[:, 0, 2].tolist() == [137, 137, 121]


def test_draw_masks_accepts_numpy_bool_and_pil_inputs():
    image = torch.zeros(3, 2, 2, dtype=torch.uint8)
    mask = np.array([[0, 1], [1, 0]], dtype=np.uint8)
    out = draw_masks(image, mask, alpha=1.0)
    assert torch.equal(out, draw_masks(image, torch.from_numpy(mask.astype(bool)), alpha=1.0))
    assert torch.equal(out, draw_masks(to_pil(image), torch.from_numpy(mask), alpha=1.0))
    assert out[:, 0, 1].tolist() == [128, 0, 0] and out[:, 0, 0].tolist() == [0, 0, 0]


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"mask": torch.zeros(3, 5, dtype=torch.long)}, ValueError,
         r"mask must have the image's height and width \(4, 5\), got \(3, 5\)"),
        ({"mask": torch.zeros(1, 4, 5, dtype=torch.long)}, ValueError,
         r"mask must have shape \[H, W\], got \(1, 4, 5\)"),
        ({"mask": torch.zeros(4, 5)}, TypeError, "mask must hold integer class indices, got dtype torch.float32"),
        ({"mask": np.zeros((4, 5))}, TypeError, "mask must hold integer class indices, got numpy dtype float64"),
        ({"mask": [[0] * 5] * 4}, TypeError, "mask must be a torch.Tensor"),
        ({"mask": torch.full((4, 5), 3), "palette": ["red", "blue"]}, ValueError,
         r"mask values must be in \[0, 2\) for a palette of 2 colours .* got 3 at \(y=0, x=0\)"),
        ({"mask": torch.full((4, 5), -1)}, ValueError, r"got -1 at \(y=0, x=0\)"),
        ({"alpha": 1.5}, ValueError, "alpha must be <= 1"),
        ({"alpha": "x"}, TypeError, "alpha must be a number"),
        ({"palette": "red"}, TypeError, "palette must be a non-empty sequence"),
        ({"palette": []}, TypeError, "palette must be a non-empty sequence"),
        ({"palette": ["red", "nope"]}, ValueError, r"palette\[1\] must be a colour name"),
        ({"palette": np.zeros((3, 4), int)}, ValueError, r"palette as an array must have shape \[K, 3\]"),
        ({"palette": np.full((3, 3), 300)}, ValueError, r"colours in \[0, 255\]"),
        ({"background": 0.5}, TypeError, "background must be an int or None"),
        ({"ignore_index": "255"}, TypeError, "ignore_index must be an int or None"),
        ({"ignore_color": (1, 2)}, ValueError, "ignore_color must be an"),
    ],
)
def test_draw_masks_bad_inputs(kwargs, exc, match):
    args = {"mask": torch.zeros(4, 5, dtype=torch.long), **kwargs}
    with pytest.raises(exc, match=match):
        draw_masks(torch.zeros(3, 4, 5, dtype=torch.uint8), **args)
    # a mask value outside the palette is fine when it is the background or ignore value
    draw_masks(torch.zeros(3, 4, 5, dtype=torch.uint8), torch.full((4, 5), 7), palette=["red"], background=7)
