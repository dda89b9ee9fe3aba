import numpy as np
import pytest
import torch

from pixbox.data import CLASS_NAMES, make_scene, render_scene


def _tight_box(mask):
    ys, xs = mask.nonzero(as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def test_shapes_and_dtypes():
    image, boxes, labels, names = make_scene(seed=0)
    assert image.shape == (3, 256, 320) and image.dtype == torch.uint8
    assert boxes.shape == (3, 4) and boxes.dtype == torch.float32
    assert labels.shape == (3,) and labels.dtype == torch.int64
    assert names == list(CLASS_NAMES) == ["square", "disc", "triangle"]


def test_same_seed_same_scene_and_seeds_differ():
    a = make_scene(seed=3)
    b = make_scene(seed=3)
    c = make_scene(seed=4)
    for x, y in zip(a[:3], b[:3]):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[1], c[1])


def test_make_scene_matches_render_scene():
    image, boxes, labels, names = make_scene(100, 120, 2, seed=5)
    scene = render_scene(100, 120, 2, seed=5)
    assert torch.equal(image, scene.image) and torch.equal(boxes, scene.boxes)
    assert torch.equal(labels, scene.labels) and names == list(scene.class_names)


def test_global_rngs_untouched():
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()
    make_scene(seed=1)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])


@pytest.mark.parametrize("seed", [0, 1, 2, 7])
@pytest.mark.parametrize("size", [(256, 320), (96, 200), (180, 64)])
def test_boxes_are_tight_around_the_object_pixels(seed, size):
    h, w = size
    scene = render_scene(h, w, 3, seed=seed)
    assert scene.masks.shape == (3, h, w) and scene.masks.dtype == torch.bool
    # The background is drawn first from the same stream, so a scene without objects is the
    # background alone: the pixels that differ from it are exactly the objects' pixels.
    background = render_scene(h, w, 0, seed=seed).image
    changed = (scene.image != background).any(dim=0)
    assert torch.equal(changed, scene.masks.any(dim=0))
    assert int(scene.masks.sum(dim=0).max()) == 1  # objects never overlap
    for box, mask in zip(scene.boxes, scene.masks):
        assert box.tolist() == _tight_box(mask)
        assert 0 <= box[0] < box[2] <= w and 0 <= box[1] < box[3] <= h
        # Tight on all four sides: each border row and column of the box holds object pixels.
        x1, y1, x2, y2 = box.long().tolist()
        assert mask[y1, x1:x2].any() and mask[y2 - 1, x1:x2].any()
        assert mask[y1:y2, x1].any() and mask[y1:y2, x2 - 1].any()


def test_shapes_match_their_class():
    scene = render_scene(256, 320, 6, seed=0)
    assert sorted(scene.labels.tolist()) == [0, 0, 1, 1, 2, 2]  # classes cycle
    for box, label, mask in zip(scene.boxes, scene.labels, scene.masks):
        bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
        area, fill = bw * bh, int(mask.sum())
        name = CLASS_NAMES[int(label)]
        assert bw == bh  # every shape fits a square
        if name == "square":
            assert fill == area
        elif name == "disc":
            assert abs(fill / area - np.pi / 4) < 0.05
        else:
            assert abs(fill / area - 0.5) < 0.08


def test_object_sizes_in_range():
    for seed in range(5):
        boxes = make_scene(200, 300, 3, seed=seed)[1]
        sides = boxes[:, 2] - boxes[:, 0]
        assert (sides >= 0.15 * 200 - 1).all() and (sides <= 0.4 * 200 + 1).all()


def test_no_objects():
    image, boxes, labels, _ = make_scene(64, 64, 0, seed=0)
    assert image.shape == (3, 64, 64)
    assert boxes.shape == (0, 4) and labels.shape == (0,)
    assert render_scene(64, 64, 0).masks.shape == (0, 64, 64)


def test_too_many_objects_raise():
    with pytest.raises(ValueError, match="do not fit"):
        make_scene(32, 32, 20, seed=0)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(height=16), ValueError, "height must be >= 32"),
        (dict(width=10.5), TypeError, "width must be an int"),
        (dict(num_objects=-1), ValueError, "num_objects must be >= 0"),
        (dict(seed=-3), ValueError, "seed must be >= 0"),
        (dict(seed=True), TypeError, "seed must be an int"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_scene(**kwargs)
