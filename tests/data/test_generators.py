"""Tests of the offline dataset generators: exact boxes, read-back through the readers, options."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pixbox.data.formats import DETECTION_FORMATS, read_detection
from pixbox.data.formats.classification import read_image_folder
from pixbox.data.formats.segmentation import read_voc_segmentation
from pixbox.data.generators import (GENERATORS, make_bananas, make_classification, make_dataset,
                                    make_segmentation, make_shapes)
from pixbox.data.generators import _draw, _writing
from pixbox.data.generators.bananas import render_banana
from pixbox.data.generators.classification import CLASS_NAMES as OBJECT_CLASSES
from pixbox.data.generators.classification import render_object
from pixbox.data.generators.segmentation import CLASS_NAMES as SEG_CLASSES
from pixbox.data.generators.segmentation import render_segmentation
from pixbox.data.generators.shapes import CLASS_NAMES as SHAPE_CLASSES
from pixbox.data.generators.shapes import render_shapes
from pixbox.data.io import read_image, read_mask

QUIET = {"progress": False}


def _tight_box(mask: torch.Tensor) -> list[float]:
    ys, xs = mask.nonzero(as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _index(path) -> tuple[str, int]:
    """``("train", 3)`` from a generated file name ``train_000003.png``."""
    split, i = re.fullmatch(r"(train|val)_(\d+)", Path(path).stem).groups()
    return split, int(i)


# --------------------------------------------------------------------------- drawing helpers

def test_tight_box_golden():
    mask = np.zeros((6, 8), bool)
    mask[1, 2] = mask[4, 6] = True
    assert _draw.tight_box(mask) == [2.0, 1.0, 7.0, 5.0]


def _reference_band(instances: np.ndarray, width: int) -> np.ndarray:
    """Slow loop: pixels within Chebyshev distance ``width`` of a pixel with a differing 4-neighbour."""
    h, w = instances.shape
    edge = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                if 0 <= y + dy < h and 0 <= x + dx < w and instances[y + dy, x + dx] != instances[y, x]:
                    edge[y, x] = True
    band = np.zeros_like(edge)
    for y, x in zip(*edge.nonzero()):
        band[max(y - width, 0):y + width + 1, max(x - width, 0):x + width + 1] = True
    return band


@pytest.mark.parametrize("width", [0, 1, 2])
def test_boundary_band_matches_reference(width):
    rng = np.random.default_rng(width)
    instances = np.zeros((20, 24), np.int32)
    instances[3:9, 4:12] = 1
    instances[6:15, 10:20] = 2  # overlaps and touches object 1
    instances[rng.random((20, 24)) < 0.02] = 3
    band = _draw.boundary_band(instances, width)
    assert np.array_equal(band, _reference_band(instances, width))


def test_boundary_band_golden_and_width_changes_it():
    instances = np.zeros((7, 7), np.int32)
    instances[3, 3] = 1
    expected0 = np.zeros((7, 7), bool)
    expected0[3, 2:5] = expected0[2:5, 3] = True  # the pixel and its 4 neighbours
    assert np.array_equal(_draw.boundary_band(instances, 0), expected0)
    expected1 = np.zeros((7, 7), bool)
    expected1[1:6, 1:6] = True
    expected1[[1, 1, 5, 5], [1, 5, 1, 5]] = False  # the 3x3 dilation of the plus misses the corners
    assert np.array_equal(_draw.boundary_band(instances, 1), expected1)


def test_image_rngs_salt_and_seed_words_matter():
    def draw(seed, salt):
        return [g.random() for g in _writing.image_rngs(seed, salt)]

    assert draw((1, 0, 2), 1) == draw((1, 0, 2), 1)
    assert draw((1, 0, 2), 1) != draw((1, 0, 2), 2)
    assert draw((1, 0, 2), 1) != draw((1, 0, 3), 1)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        _writing.image_rngs(-1, 1)
    with pytest.raises(TypeError, match="seed must be an int"):
        _writing.image_rngs("0", 1)


@pytest.mark.parametrize("kind", _draw.SHAPE_KINDS + _draw.BLOB_KINDS + ("banana",))
def test_sprites_are_cut_tightly(kind):
    rng = np.random.default_rng(3)
    if kind == "banana":
        sprite = _draw.banana_sprite(rng, 40)
    elif kind in _draw.SHAPE_KINDS:
        sprite = _draw.shape_sprite(rng, kind, 40)
    else:
        sprite = _draw.blob_sprite(rng, kind, 40)
    mask = sprite.alpha > 0
    assert mask[0].any() and mask[-1].any() and mask[:, 0].any() and mask[:, -1].any()
    assert sprite.alpha[mask].min() >= 0.5 and sprite.alpha.max() <= 1
    assert sprite.rgb.shape == sprite.alpha.shape + (3,) and 0 <= sprite.rgb.min() <= sprite.rgb.max() <= 255
    # Pasted partly outside an image: only the covered image pixels change.
    image = np.full((30, 30, 3), 7.0, np.float32)
    _draw.composite(image, sprite, -5, 10)
    changed = (image != 7.0).any(axis=2)
    assert np.array_equal(changed, _draw.paste_mask((30, 30), sprite, -5, 10) & changed)
    assert changed.sum() > 0.8 * _draw.paste_mask((30, 30), sprite, -5, 10).sum()


# --------------------------------------------------------------------------- rendered scenes

@pytest.mark.parametrize("seed", range(6))
def test_banana_box_frames_exactly_the_changed_pixels(seed):
    scene = render_banana(64, seed=seed)
    background = render_banana(64, seed=seed, banana=False)
    assert scene.image.shape == (3, 64, 64) and scene.image.dtype == torch.uint8
    assert scene.labels.tolist() == [0] and scene.class_names == ("banana",)
    assert len(background.boxes) == 0 and background.masks.shape == (0, 64, 64)
    mask = scene.masks[0]
    changed = (scene.image != background.image).any(dim=0)
    assert not (changed & ~mask).any()  # the banana changes nothing outside its mask
    assert changed[mask].float().mean() > 0.97
    assert scene.boxes[0].tolist() == _tight_box(mask) == _tight_box(changed)


def test_bananas_vary_in_size_position_and_look_yellow():
    scenes = [render_banana(96, seed=s) for s in range(16)]
    boxes = torch.cat([s.boxes for s in scenes])
    long_side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert long_side.max() > 2 * long_side.min()
    assert len({tuple(b[:2].tolist()) for b in boxes}) == 16
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 96).all()  # always wholly inside
    # Peel colours: more red and green than blue, on average over the banana's pixels.
    mean = torch.stack([s.image[:, s.masks[0]].float().mean(dim=1) for s in scenes]).mean(dim=0)
    assert mean[0] > mean[2] + 40 and mean[1] > mean[2] + 40


@pytest.mark.parametrize("seed", range(6))
def test_shapes_boxes_frame_exactly_the_visible_pixels(seed):
    scene = render_shapes(96, seed=seed, max_objects=8)
    background = render_shapes(96, seed=seed, num_objects=0)
    assert len(background.boxes) == 0
    changed = (scene.image != background.image).any(dim=0)
    masks = scene.masks
    assert masks.sum(dim=0).max() <= 1  # visible parts never overlap
    assert not (changed & ~masks.any(dim=0)).any()
    for box, mask in zip(scene.boxes, masks):
        assert mask.sum() >= 20
        assert box.tolist() == _tight_box(mask) == _tight_box(changed & mask)
    assert ((scene.labels >= 0) & (scene.labels < len(SHAPE_CLASSES))).all()


def test_shapes_max_objects_and_num_objects():
    counts = [len(render_shapes(64, seed=s, max_objects=2).boxes) for s in range(12)]
    assert max(counts) <= 2 and max(counts) >= 1
    assert len(render_shapes(64, seed=0, max_objects=0).boxes) == 0
    many = [len(render_shapes(96, seed=s, num_objects=8).boxes) for s in range(6)]
    assert max(many) >= 5  # hidden shapes are dropped, most survive


@pytest.mark.parametrize("seed", range(4))
def test_segmentation_mask_has_a_boundary_band_and_valid_values(seed):
    image, mask = render_segmentation(96, seed=seed)
    background, empty = render_segmentation(96, seed=seed, num_objects=0)
    assert image.shape == (3, 96, 96) and mask.shape == (96, 96) and mask.dtype == torch.int64
    values = set(mask.unique().tolist())
    assert values <= set(range(len(SEG_CLASSES))) | {255} and 255 in values and len(values) >= 3
    assert torch.equal(empty, torch.zeros_like(empty))  # no objects, no band
    # The band separates every pair of neighbouring pixels of different classes.
    for a, b in ((mask[:, 1:], mask[:, :-1]), (mask[1:, :], mask[:-1, :])):
        assert not ((a != b) & (a != 255) & (b != 255)).any()
    # The objects change only their own pixels (band included); the band is a few pixels wide.
    changed = (image != background).any(dim=0)
    assert not (changed & (mask == 0)).any()
    band = mask == 255
    objects = (mask != 0) & ~band
    assert changed[objects].float().mean() > 0.97
    outline = int(((objects[:, 1:] != objects[:, :-1]).sum() + (objects[1:] != objects[:-1]).sum()))
    assert 2 * outline <= band.sum() <= 6 * outline


def test_classification_objects_differ_by_class_and_seed():
    a = render_object(0, 48, seed=1)
    assert a.shape == (3, 48, 48) and a.dtype == torch.uint8
    assert torch.equal(a, render_object(0, 48, seed=1))
    assert not torch.equal(a, render_object(0, 48, seed=2))
    assert not torch.equal(a, render_object(1, 48, seed=1))
    with pytest.raises(ValueError, match=r"label must be in \[0, 6\), got 6"):
        render_object(6, 48)


def test_global_rngs_untouched():
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    render_banana(32, seed=0)
    render_shapes(32, seed=0)
    render_segmentation(32, seed=0)
    render_object(0, 32, seed=0)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])


# --------------------------------------------------------------------------- written datasets

@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_bananas_read_back_in_every_format(tmp_path, fmt):
    counts = make_bananas(tmp_path, seed=3, num_train=3, num_val=2, image_size=48, fmt=fmt, **QUIET)
    assert counts == {"train": 3, "val": 2}
    assert not list(tmp_path.glob(".staging-*"))
    for split, n in counts.items():
        ann = read_detection(tmp_path, fmt, split)
        assert ann.class_names == ["banana"] and len(ann) == n and ann.num_objects() == n
        for rec in ann.records:
            scene = render_banana(48, seed=(3, _writing.SPLITS[split], _index(rec.image)[1]))
            assert _index(rec.image)[0] == split and (rec.width, rec.height) == (48, 48)
            assert torch.equal(read_image(rec.image), scene.image)
            np.testing.assert_allclose(rec.boxes, scene.boxes.double().numpy(), atol=1e-3)
            assert rec.labels.tolist() == [0]


def test_bananas_default_format_is_d2l_csv(tmp_path):
    make_bananas(tmp_path, num_train=2, num_val=1, image_size=32, **QUIET)
    assert (tmp_path / "train" / "label.csv").read_text().splitlines()[0] == "img_name,label,xmin,ymin,xmax,ymax"
    assert len(list((tmp_path / "val" / "images").iterdir())) == 1


def test_shapes_dataset_reads_back_with_empty_and_crowded_images(tmp_path):
    counts = make_shapes(tmp_path, seed=1, num_train=20, num_val=5, image_size=64, **QUIET)
    assert counts == {"train": 20, "val": 5}
    assert (tmp_path / "annotations" / "instances_train.json").is_file()  # COCO by default
    train = read_detection(tmp_path, "coco", "train")
    assert train.class_names == list(SHAPE_CLASSES) and len(SHAPE_CLASSES) >= 5 and len(train) == 20
    per_image = [len(r) for r in train.records]
    assert 0 in per_image and max(per_image) > 1
    assert len(set(np.concatenate([r.labels for r in train.records]).tolist())) >= 5
    for rec in train.records:
        scene = render_shapes(64, seed=(1, 0, _index(rec.image)[1]), num_objects=0 if len(rec) == 0 else None)
        if len(rec):
            np.testing.assert_allclose(rec.boxes, scene.boxes.double().numpy(), atol=1e-6)
            assert rec.labels.tolist() == scene.labels.tolist()
        assert torch.equal(read_image(rec.image), scene.image)
    val = read_detection(tmp_path, "coco", "val")
    assert sum(len(r) == 0 for r in val.records) >= 1  # every split of >= 5 images has one


def test_shapes_max_objects_option(tmp_path):
    make_shapes(tmp_path / "a", num_train=6, num_val=0, image_size=48, fmt="yolo", max_objects=1, **QUIET)
    make_shapes(tmp_path / "b", num_train=6, num_val=0, image_size=48, fmt="yolo", max_objects=0, **QUIET)
    assert max(len(r) for r in read_detection(tmp_path / "a", "yolo", "train").records) == 1
    assert max(len(r) for r in read_detection(tmp_path / "b", "yolo", "train").records) == 0


def test_segmentation_dataset_reads_back(tmp_path):
    counts = make_segmentation(tmp_path, seed=2, num_train=3, num_val=2, image_size=48, **QUIET)
    assert counts == {"train": 3, "val": 2}
    assert (tmp_path / "classes.txt").read_text().split() == list(SEG_CLASSES)
    for split, n in counts.items():
        ann = read_voc_segmentation(tmp_path, split)
        assert ann.class_names == list(SEG_CLASSES) and len(ann) == n
        for image_path, mask_path in ann.samples:
            image, mask = render_segmentation(48, seed=(2, _writing.SPLITS[split], _index(image_path)[1]))
            assert torch.equal(read_image(image_path), image)
            assert torch.equal(read_mask(mask_path), mask)


def test_classification_dataset_reads_back_balanced(tmp_path):
    counts = make_classification(tmp_path, seed=4, num_train=12, num_val=7, image_size=32, **QUIET)
    assert counts == {"train": 12, "val": 7}
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == list(OBJECT_CLASSES)
    assert len(OBJECT_CLASSES) >= 5
    train = read_image_folder(tmp_path / "train")
    assert train.class_names == list(OBJECT_CLASSES) and len(train) == 12
    assert np.bincount([y for _, y in train.samples]).tolist() == [2] * 6
    for path, label in train.samples:
        assert torch.equal(read_image(path), render_object(label, 32, seed=(4, 0, _index(path)[1])))
    assert len(read_image_folder(tmp_path / "val")) == 7


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_same_seed_same_bytes_other_seed_other_images(tmp_path, task):
    opts = dict(num_train=2, num_val=1, image_size=32, **QUIET)
    make_dataset(task, tmp_path / "a", seed=5, **opts)
    make_dataset(task, tmp_path / "b", seed=5, **opts)
    make_dataset(task, tmp_path / "c", seed=6, **opts)
    a, b, c = (_files(tmp_path / k) for k in "abc")
    assert a == b and len(a) >= 3
    images = [k for k in a if k.endswith(".png") and "Segmentation" not in k]
    assert images and all(a[k] != c.get(k) for k in images)


def test_make_dataset_equals_the_generator(tmp_path):
    opts = dict(num_train=2, num_val=0, image_size=32, **QUIET)
    assert make_dataset("shapes", tmp_path / "a", seed=2, **opts) == {"train": 2}
    make_shapes(tmp_path / "b", seed=2, **opts)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_options_change_the_output(tmp_path):
    make_bananas(tmp_path / "s", num_train=1, num_val=0, image_size=40, **QUIET)
    assert read_detection(tmp_path / "s", "csv", "train").records[0].width == 40
    assert make_bananas(tmp_path / "n", num_train=0, num_val=2, image_size=32, **QUIET) == {"val": 2}
    assert not (tmp_path / "n" / "train").exists()


def test_progress_bar(tmp_path, capsys, monkeypatch):
    import pixbox.data.generators._writing as writing

    monkeypatch.setattr(writing, "is_terminal", lambda: True)
    make_bananas(tmp_path / "p", num_train=2, num_val=0, image_size=32, progress=True)
    assert "bananas train" in capsys.readouterr().err
    monkeypatch.setattr(writing, "is_terminal", lambda: False)  # a log file: no bar
    make_bananas(tmp_path / "r", num_train=2, num_val=0, image_size=32, progress=True)
    assert capsys.readouterr().err == ""
    make_bananas(tmp_path / "q", num_train=2, num_val=0, image_size=32, progress=False)
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- existing splits, errors

@pytest.mark.parametrize("fmt", ["csv", "voc", "yolo", "coco"])
def test_existing_split_needs_overwrite(tmp_path, fmt):
    make_bananas(tmp_path, seed=0, num_train=3, num_val=0, image_size=32, fmt=fmt, **QUIET)
    before = _files(tmp_path)
    with pytest.raises(FileExistsError, match="'train' split.*overwrite=True"):
        make_bananas(tmp_path, seed=1, num_train=2, num_val=2, image_size=32, fmt=fmt, **QUIET)
    assert _files(tmp_path) == before  # nothing written, not even the new val split
    # Another split goes next to the existing one.
    make_bananas(tmp_path, seed=1, num_train=0, num_val=2, image_size=32, fmt=fmt, **QUIET)
    assert len(read_detection(tmp_path, fmt, "train")) == 3
    # overwrite replaces the split, leaving none of its old images behind.
    make_bananas(tmp_path, seed=1, num_train=2, num_val=0, image_size=32, fmt=fmt, overwrite=True, **QUIET)
    train = read_detection(tmp_path, fmt, "train")
    assert len(train) == 2 and len(read_detection(tmp_path, fmt, "val")) == 2
    assert len([p for p in tmp_path.rglob("train_*.png")]) == 2
    assert torch.equal(read_image(train.records[0].image), render_banana(32, seed=(1, 0, 0)).image)


@pytest.mark.parametrize("task", ["segmentation", "classification", "shapes"])
def test_existing_split_needs_overwrite_other_layouts(tmp_path, task):
    opts = dict(num_train=2, num_val=0, image_size=32, **QUIET)
    make_dataset(task, tmp_path, **opts)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_dataset(task, tmp_path, **opts)
    make_dataset(task, tmp_path, seed=1, overwrite=True, **dict(opts, num_train=1))
    assert len([p for p in tmp_path.rglob("train_*.png") if "SegmentationClass" not in p.parts]) == 1


def test_staging_is_removed_when_writing_fails(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(_writing, "write_detection", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        make_bananas(tmp_path, num_train=2, num_val=0, image_size=32, **QUIET)
    assert not list(tmp_path.glob(".staging-*"))


@pytest.mark.parametrize("make", [make_bananas, make_shapes, make_segmentation, make_classification])
@pytest.mark.parametrize("option, value, message", [
    ("image_size", 16, "image_size must be >= 32, got 16"),
    ("num_train", -1, "num_train must be >= 0, got -1"),
    ("num_val", -2, "num_val must be >= 0, got -2"),
    ("seed", -1, "seed must be >= 0, got -1"),
])
def test_bad_options_raise_value_error(tmp_path, make, option, value, message):
    with pytest.raises(ValueError, match=message):
        make(tmp_path, **{option: value}, **QUIET)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_bad_option_types_and_choices(tmp_path):
    with pytest.raises(ValueError, match="fmt must be one of .*got 'cocoo'; did you mean 'coco'"):
        make_shapes(tmp_path, fmt="cocoo", **QUIET)
    with pytest.raises(ValueError, match="max_objects must be >= 0, got -1"):
        make_shapes(tmp_path, max_objects=-1, **QUIET)
    with pytest.raises(TypeError, match="image_size must be an int, got float"):
        make_bananas(tmp_path, image_size=64.0, **QUIET)
    with pytest.raises(TypeError, match="progress must be a bool"):
        make_bananas(tmp_path, progress=1)
    with pytest.raises(ValueError, match="task must be one of .*got 'shape'; did you mean 'shapes'"):
        make_dataset("shape", tmp_path)
    with pytest.raises(TypeError, match="got 'num_trian'; did you mean 'num_train'"):
        make_dataset("bananas", tmp_path, num_trian=3)
    with pytest.raises(TypeError, match="got 'fmt'"):
        make_dataset("segmentation", tmp_path, fmt="voc")
