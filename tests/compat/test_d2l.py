"""pixbox.compat.d2l: the book's code runs unchanged and prints the book's numbers."""

import math

import pytest
import torch

from pixbox.compat import d2l

try:  # the real D2L, only in the peers venv (../shared/peers/README.md)
    from d2l import torch as real_d2l  # type: ignore
except Exception:  # noqa: BLE001
    real_d2l = None

GT = torch.tensor([[0, 0.1, 0.08, 0.52, 0.92], [1, 0.55, 0.2, 0.9, 0.88]])
ANCHORS = torch.tensor([[0, 0.1, 0.2, 0.3], [0.15, 0.2, 0.4, 0.4], [0.63, 0.05, 0.88, 0.98],
                        [0.66, 0.45, 0.8, 0.8], [0.57, 0.3, 0.92, 0.9]])


def test_book_anchor_generation():
    # D2L 14.4.1, verbatim
    img_h, img_w = 561, 728
    X = torch.rand(size=(1, 3, img_h, img_w))
    Y = d2l.multibox_prior(X, sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5])
    assert Y.shape == (1, 2042040, 4)
    boxes = Y.reshape(img_h, img_w, 5, 4)
    torch.testing.assert_close(boxes[250, 250, 0, :], torch.tensor([0.055117, 0.071524, 0.633070, 0.821524]),
                               atol=1e-5, rtol=0)


def test_book_anchor_labeling():
    labels = d2l.multibox_target(ANCHORS.unsqueeze(dim=0), GT.unsqueeze(dim=0))
    assert labels[2].tolist() == [[0, 1, 2, 0, 2]]
    assert labels[1].tolist() == [[0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]]
    want = [0, 0, 0, 0, 1.40, 10.0, 2.59, 7.18, -1.20, 0.269, 1.68, -1.57, 0, 0, 0, 0,
            -0.571, -1.00, 4.17e-06, 0.626]
    got = labels[0][0].tolist()
    for g, w in zip(got, want):
        assert g == pytest.approx(w, rel=3e-3, abs=1e-8), (got, want)
    # The eps term is what makes D2L print 4.17e-06 where the exact offset is 0.
    assert 4.1e-06 < got[18] < 4.3e-06


def test_book_detection():
    anchors = torch.tensor([[0.1, 0.08, 0.52, 0.92], [0.08, 0.2, 0.56, 0.95],
                            [0.15, 0.3, 0.62, 0.91], [0.55, 0.2, 0.9, 0.88]])
    offset_preds = torch.tensor([0] * anchors.numel())
    cls_probs = torch.tensor([[0] * 4, [0.9, 0.8, 0.7, 0.1], [0.1, 0.2, 0.3, 0.9]])
    output = d2l.multibox_detection(cls_probs.unsqueeze(dim=0), offset_preds.unsqueeze(dim=0).float(),
                                    anchors.unsqueeze(dim=0), nms_threshold=0.5)
    want = torch.tensor([[0, 0.9, 0.1, 0.08, 0.52, 0.92], [1, 0.9, 0.55, 0.2, 0.9, 0.88],
                         [-1, 0.8, 0.08, 0.2, 0.56, 0.95], [-1, 0.7, 0.15, 0.3, 0.62, 0.91]])
    torch.testing.assert_close(output[0], want)


def test_offset_round_trip_and_conversions():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g)
    boxes = torch.cat([xy, xy + 0.05 + torch.rand(50, 2, generator=g)], 1).double()
    torch.testing.assert_close(d2l.box_center_to_corner(d2l.box_corner_to_center(boxes)), boxes)
    anchors = boxes.flip(0)
    off = d2l.offset_boxes(anchors, boxes, eps=0.0)
    torch.testing.assert_close(d2l.offset_inverse(anchors, off), boxes)


def test_assign_anchor_to_bbox_and_device_argument():
    got = d2l.assign_anchor_to_bbox(GT[:, 1:], ANCHORS, "cpu")
    assert got.tolist() == [-1, 0, 1, -1, 1]
    # The device argument is accepted but the result follows the inputs.
    assert d2l.assign_anchor_to_bbox(GT[:, 1:], ANCHORS, torch.device("meta")).device == ANCHORS.device


def test_nms_book_semantics():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert d2l.nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert d2l.nms(boxes, scores, 0.9).tolist() == [0, 1, 2]


def test_multibox_target_no_rows_and_padding():
    # D2L crashes on images without objects; pixbox labels every anchor background.
    off, mask, cls = d2l.multibox_target(ANCHORS[None], torch.zeros(2, 0, 5))
    assert off.shape == (2, 20) and mask.shape == (2, 20) and cls.shape == (2, 5)
    assert not off.any() and not mask.any() and not cls.any()
    # Padding rows (class -1) anywhere are ignored: same result as without them.
    pad = torch.full((1, 5), -1.0)
    padded = torch.cat([pad, GT[:1], pad, GT[1:], pad])[None]
    a = d2l.multibox_target(ANCHORS[None], padded)
    b = d2l.multibox_target(ANCHORS[None], GT[None])
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    assert not any(torch.isnan(t.float()).any() for t in a)


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="labels"):
        d2l.multibox_target(ANCHORS[None], GT)  # missing batch dimension


@pytest.mark.skipif(real_d2l is None, reason="d2l not importable (see ../shared/peers)")
def test_matches_real_d2l_on_random_batches():
    g = torch.Generator().manual_seed(1)
    x = torch.zeros(1, 3, 16, 16)
    anchors = d2l.multibox_prior(x, [0.3, 0.5], [1, 2, 0.5])
    assert torch.allclose(anchors, real_d2l.multibox_prior(x, [0.3, 0.5], [1, 2, 0.5]), atol=1e-6)
    for _ in range(5):
        xy = torch.rand(4, 3, 2, generator=g) * 0.6
        lab = torch.cat([torch.randint(0, 3, (4, 3, 1), generator=g).float(), xy,
                         xy + 0.1 + torch.rand(4, 3, 2, generator=g) * 0.3], 2)
        mine, theirs = d2l.multibox_target(anchors, lab), real_d2l.multibox_target(anchors, lab)
        assert torch.equal(mine[2], theirs[2]) and torch.equal(mine[1], theirs[1])
        torch.testing.assert_close(mine[0], theirs[0], atol=1e-4, rtol=1e-4)
        probs = torch.rand(4, 3, anchors.shape[1], generator=g).softmax(1)
        offs = torch.randn(4, anchors.shape[1] * 4, generator=g) * 0.2
        torch.testing.assert_close(d2l.multibox_detection(probs, offs, anchors),
                                   real_d2l.multibox_detection(probs, offs, anchors), atol=1e-5, rtol=0)
    assert math.isfinite(1.0)


def test_book_tinyssd_blocks_give_the_book_shapes():
    from pixbox.compat import d2l as book

    def forward(x, block):
        return block(x)

    y1 = forward(torch.zeros((2, 8, 20, 20)), book.cls_predictor(8, 5, 10))
    y2 = forward(torch.zeros((2, 16, 10, 10)), book.cls_predictor(16, 3, 10))
    assert y1.shape == (2, 55, 20, 20) and y2.shape == (2, 33, 10, 10)
    assert book.concat_preds([y1, y2]).shape == (2, 25300)
    assert forward(torch.zeros((2, 3, 20, 20)), book.down_sample_blk(3, 10)).shape == (2, 10, 10, 10)
    assert forward(torch.zeros((2, 3, 256, 256)), book.base_net()).shape == (2, 64, 32, 32)
