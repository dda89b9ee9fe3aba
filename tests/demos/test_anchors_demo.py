import pytest
import torch
from PIL import Image

from pixbox import ops
from pixbox.demos import anchors
from pixbox.viz import PALETTE

NAMES = ["anchors_multiscale", "anchors_single_pixel", "nms_before", "nms_after"]


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "nested" / "anchors"
    return out, anchors.run(out, seed=0)


def test_run_writes_the_four_pngs(written):
    out, paths = written
    assert list(paths) == NAMES
    for name, path in paths.items():
        assert path == out / f"{name}.png" and path.is_file()
        with Image.open(path) as im:
            assert im.format == "PNG" and im.mode == "RGB"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.png" for n in NAMES)


def test_figure_sizes(written):
    _, paths = written
    sizes = {}
    for name, path in paths.items():
        with Image.open(path) as im:
            sizes[name] = im.size
    h, w = anchors._HEIGHT, anchors._WIDTH
    # Single panels: the scene width, the scene height plus a caption band.
    for name in NAMES[1:]:
        assert sizes[name][0] == w and h < sizes[name][1] < h + 60
    assert sizes["nms_before"] == sizes["nms_after"] == sizes["anchors_single_pixel"]
    # Three panels in a row with 8 pixels of padding.
    assert sizes["anchors_multiscale"] == (3 * w + 4 * 8, sizes["nms_before"][1] + 2 * 8)


def test_same_seed_same_figures_other_seed_differs(written, tmp_path):
    _, paths = written
    again = anchors.run(tmp_path / "a", seed=0)
    other = anchors.run(tmp_path / "b", seed=1)
    for name in NAMES:
        assert again[name].read_bytes() == paths[name].read_bytes()
        assert other[name].read_bytes() != paths[name].read_bytes()


def test_display_anchors_centres_anchors_on_the_cells():
    image = torch.zeros(3, 100, 100, dtype=torch.uint8)
    # 2 x 2 map, size 0.2, ratio 1: 20 x 20 anchors centred at 25 and 75.
    out = anchors.display_anchors(image, (2, 2), [0.2], [1.0])
    drawn = (out != 0).any(dim=0)
    expected = ops.denormalize_boxes(ops.generate_anchors((2, 2), [0.2], [1.0]), (100, 100))
    want = torch.tensor([[15.0, 15, 35, 35], [65, 15, 85, 35], [15, 65, 35, 85], [65, 65, 85, 85]])
    assert torch.allclose(expected, want, atol=1e-4)
    for x1, y1, x2, y2 in want.long().tolist():
        assert drawn[y1, x1] and drawn[y2 - 1, x2 - 1]  # outline corners
        assert not drawn[(y1 + y2) // 2, (x1 + x2) // 2]  # centre of the anchor stays empty
    assert not drawn[50, 50] and not drawn[5, 5]


def test_display_anchors_draws_ground_truth_on_top():
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    gt = torch.tensor([[10.0, 30.0, 40.0, 60.0]])
    out = anchors.display_anchors(image, (1, 1), [0.5], [1.0], gt_boxes=gt)
    assert out[:, 59, 39].tolist() == list(anchors._GT_COLOR)
    assert out[:, 16, 16].tolist() == list(anchors._RATIO_COLORS[0])  # anchor [16, 16, 48, 48]


def test_anchor_names_follow_the_book():
    assert anchors._anchor_names([0.75, 0.5, 0.25], [1, 2, 0.5]) == [
        "s=0.75, r=1", "s=0.5, r=1", "s=0.25, r=1", "s=0.75, r=2", "s=0.75, r=0.5"]


def test_noisy_candidates_and_nms_reduce_the_count():
    gt = torch.tensor([[10.0, 10.0, 60.0, 60.0], [100.0, 20.0, 150.0, 90.0]])
    labels = torch.tensor([0, 2])
    boxes, scores, cls = anchors._noisy_candidates(gt, labels, (120, 160), torch.Generator().manual_seed(0))
    n = anchors._CANDIDATES_PER_OBJECT
    assert boxes.shape == (2 * n, 4) and scores.shape == (2 * n,)
    assert cls.tolist() == [0] * n + [2] * n
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 160).all() and (boxes[:, 3] <= 120).all()
    assert ((scores >= 0.3) & (scores <= 1.0)).all()
    # Each candidate stays near its own object.
    iou = ops.box_iou(boxes, gt)
    assert torch.equal(iou.argmax(dim=1), torch.tensor([0] * n + [1] * n))
    keep = ops.batched_nms(boxes, scores, cls, anchors._NMS_IOU_THRESHOLD)
    assert 2 <= keep.numel() < 2 * n
    # The best candidate of each object survives.
    for c in (0, 2):
        idx = (cls == c).nonzero().flatten()
        assert int(idx[scores[idx].argmax()]) in keep.tolist()


def test_nms_figures_show_the_surviving_boxes_only():
    image = torch.full((3, 120, 160), 255, dtype=torch.uint8)
    gt = torch.tensor([[10.0, 10.0, 60.0, 60.0]])
    before, after = anchors._nms_figures(image, gt, torch.tensor([1]), ["a", "b", "c"], seed=0)
    colour = torch.tensor(PALETTE[1])[:, None, None]
    # Fewer box-coloured pixels after NMS: suppressed outlines and captions are gone.
    assert int((after == colour).all(0).sum()) < int((before == colour).all(0).sum())
