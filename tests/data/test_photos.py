"""Tests of the real-photo detection generator: exact boxes from the pasted alpha, disjoint train
and val instances, read-back in every format, determinism, the CLI and the missing extra."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("skimage.data", reason="the photos generator needs scikit-image (pixbox[photos])")

from pixbox.cli.main import main  # noqa: E402
from pixbox.data.check import check_dataset  # noqa: E402
from pixbox.data.datasets import DetectionDataset  # noqa: E402
from pixbox.data.formats import DETECTION_FORMATS, read_detection  # noqa: E402
from pixbox.data.generators import GENERATORS, _photo_sources, _writing, make_dataset, make_photos  # noqa: E402
from pixbox.data.generators.photos import CLASS_NAMES, _render, render_photos  # noqa: E402
from pixbox.data.io import read_image  # noqa: E402

QUIET = {"progress": False}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _tight_box(mask: torch.Tensor) -> list[float]:
    ys, xs = mask.nonzero(as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


# --------------------------------------------------------------------------- one image

@pytest.mark.parametrize("split", ["train", "val"])
def test_scene_shapes_counts_and_masks(split):
    counts = []
    for i in range(12):
        scene = render_photos(96, seed=(7, i), split=split)
        n = len(scene.labels)
        counts.append(n)
        assert scene.image.shape == (3, 96, 96) and scene.image.dtype == torch.uint8
        assert scene.boxes.shape == (n, 4) and scene.boxes.dtype == torch.float32
        assert scene.masks.shape == (n, 96, 96) and scene.masks.dtype == torch.bool
        assert scene.class_names == CLASS_NAMES and all(0 <= lab < len(CLASS_NAMES) for lab in scene.labels.tolist())
        assert scene.masks.sum(0).max() <= 1  # visible pixels never overlap
        for box, mask in zip(scene.boxes, scene.masks):
            assert box.tolist() == _tight_box(mask)
    assert 1 <= min(counts) and max(counts) <= 4 and len(set(counts)) > 1


def test_boxes_are_tight_around_the_visible_alpha_of_each_pasted_object():
    occluded = 0
    for i in range(20):
        scene, instances, alphas = _render(96, (0, 0, i), "train", 4, None)
        assert len(instances) == len(alphas) == len(scene.boxes)
        clear = np.ones((96, 96), np.float32)
        for k in reversed(range(len(alphas))):  # front to back
            visible = alphas[k] * clear > 0.5
            assert torch.equal(scene.masks[k], torch.from_numpy(visible))
            assert scene.boxes[k].tolist() == _tight_box(scene.masks[k])
            assert visible.sum() >= 0.5 * (alphas[k] > 0.5).sum()  # hidden at most by half
            occluded += int(visible.sum() < (alphas[k] > 0.5).sum())
            clear *= 1 - alphas[k]
        # The alpha is soft: a feathered fringe of partial alpha, outside the box.
        assert all(((a > 0.05) & (a < 0.5)).any() for a in alphas)
    assert occluded > 0


def test_box_frames_the_pixels_the_object_changed():
    """Independent of the internals: the object drawn over the same background and noise."""
    seed = (3, 1, 4)
    scene = render_photos(128, seed=seed, num_objects=1)
    empty = render_photos(128, seed=seed, num_objects=0)
    assert len(scene.boxes) == 1 and len(empty.boxes) == 0
    changed = (scene.image.int() - empty.image.int()).abs().amax(0) > 2  # [H, W]
    x0, y0, x1, y1 = (int(v) for v in scene.boxes[0])
    inside = changed[y0:y1, x0:x1]
    assert inside.float().mean() > 0.5 and changed[scene.masks[0]].float().mean() > 0.8
    cx0, cy0, cx1, cy1 = _tight_box(changed)
    # Only the soft fringe (alpha < 0.5) changes pixels outside the box: a few pixels.
    assert 0 <= x0 - cx0 <= 4 and 0 <= y0 - cy0 <= 4 and 0 <= cx1 - x1 <= 4 and 0 <= cy1 - y1 <= 4


def test_render_is_deterministic_and_leaves_global_rngs_alone():
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    a = render_photos(64, seed=(1, 0, 2))
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    assert np.array_equal(np.random.get_state()[1], np_state[1])
    b = render_photos(64, seed=(1, 0, 2))
    assert torch.equal(a.image, b.image) and torch.equal(a.boxes, b.boxes)
    assert not torch.equal(a.image, render_photos(64, seed=(1, 0, 3)).image)
    assert not torch.equal(a.image, render_photos(64, seed=(1, 0, 2), split="val").image)


def test_objects_vary_in_size_and_every_class_appears():
    sides, labels = [], []
    for i in range(40):
        scene = render_photos(200, seed=(2, i))
        wh = scene.boxes[:, 2:] - scene.boxes[:, :2]
        sides += wh.amax(1).tolist()
        labels += scene.labels.tolist()
    assert set(labels) == set(range(len(CLASS_NAMES)))
    assert min(sides) < 0.15 * 200 and max(sides) > 0.35 * 200 and max(sides) <= 0.5 * 200 * 1.3


# --------------------------------------------------------------------------- train and val

def test_train_and_val_use_disjoint_instances_and_background_regions():
    train, val = _photo_sources.object_cuts("train"), _photo_sources.object_cuts("val")
    assert tuple(train) == tuple(val) == CLASS_NAMES
    assert (len(train["face"]), len(val["face"])) == (80, 20)
    assert (len(train["coin"]), len(val["coin"])) == (18, 6)
    for name in ("face", "coin"):
        assert not {c.instance for c in train[name]} & {c.instance for c in val[name]}
    for name in ("cat", "cup", "rocket"):  # photographed once: shared, as the docstring says
        assert [c.instance for c in train[name]] == [c.instance for c in val[name]]
    for _, _, (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1), _ in _photo_sources._BACKGROUNDS:
        assert min(ax1, bx1) <= max(ax0, bx0) or min(ay1, by1) <= max(ay0, by0)  # no overlap
    # What the rendered images record: val faces and coins are never train ones.
    seen = {split: set() for split in _writing.SPLITS}
    for split in seen:
        for i in range(25):
            seen[split].update(_render(48, (0, _writing.SPLITS[split], i), split, 4, None)[1])
    pools = {split: {c.instance for cuts in _photo_sources.object_cuts(split).values() for c in cuts}
             for split in seen}
    assert all(seen[split] <= pools[split] for split in seen)
    faces_and_coins = {s: {i for i in seen[s] if i.startswith(("face/", "coin/"))} for s in seen}
    assert faces_and_coins["train"] and faces_and_coins["val"]
    assert not faces_and_coins["train"] & faces_and_coins["val"]


# --------------------------------------------------------------------------- written datasets

@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_every_format_reads_back_and_checks(tmp_path, fmt):
    counts = make_photos(tmp_path, seed=3, num_train=3, num_val=2, image_size=64, fmt=fmt, **QUIET)
    assert counts == {"train": 3, "val": 2}
    assert not list(tmp_path.glob(".staging-*")) and (tmp_path / _writing.MANIFEST).is_file()
    for split, n in counts.items():
        ann = read_detection(tmp_path, fmt, split)
        assert ann.class_names == list(CLASS_NAMES) and len(ann) == n
        for rec in ann.records:
            i = int(Path(rec.image).stem.split("_")[1])
            scene = render_photos(64, seed=(3, _writing.SPLITS[split], i), split=split)
            assert torch.equal(read_image(rec.image), scene.image)
            np.testing.assert_allclose(rec.boxes, scene.boxes.double().numpy(), atol=1e-3)
            assert rec.labels.tolist() == scene.labels.tolist()
        dataset = DetectionDataset(tmp_path, fmt, split)
        image, target = dataset[0]
        assert image.shape == (3, 64, 64) and len(target["boxes"]) == len(ann.records[0].boxes)
    report = check_dataset(tmp_path, progress=False)
    assert report.ok, report.format()


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    opts = dict(num_train=2, num_val=1, image_size=48, **QUIET)
    make_photos(tmp_path / "a", seed=5, **opts)
    make_photos(tmp_path / "b", seed=5, **opts)
    make_photos(tmp_path / "c", seed=6, **opts)
    a, b, c = (_files(tmp_path / k) for k in "abc")
    assert a == b and len(a) >= 4
    images = [k for k in a if k.endswith(".png")]
    assert len(images) == 3 and all(a[k] != c.get(k) for k in images)


def test_options_and_overwrite(tmp_path):
    assert GENERATORS["photos"] is make_photos
    make_dataset("photos", tmp_path, num_train=4, num_val=0, image_size=40, fmt="yolo", max_objects=1, **QUIET)
    train = read_detection(tmp_path, "yolo", "train")
    assert [len(r) for r in train.records] == [1] * 4 and train.records[0].width == 40
    with pytest.raises(FileExistsError, match="overwrite=True"):
        make_photos(tmp_path, num_train=2, num_val=0, image_size=40, fmt="yolo", **QUIET)
    make_photos(tmp_path, num_train=2, num_val=0, image_size=40, fmt="yolo", max_objects=0, overwrite=True, **QUIET)
    assert [len(r) for r in read_detection(tmp_path, "yolo", "train").records] == [0, 0]


@pytest.mark.parametrize("option, value, error, message", [
    ("image_size", 16, ValueError, "image_size must be >= 32, got 16"),
    ("max_objects", -1, ValueError, "max_objects must be >= 0, got -1"),
    ("fmt", "cocoo", ValueError, "did you mean 'coco'"),
    ("num_val", 1.0, TypeError, "num_val must be an int"),
])
def test_bad_options(tmp_path, option, value, error, message):
    with pytest.raises(error, match=message):
        make_photos(tmp_path, **{option: value}, **QUIET)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match="split must be one of .*got 'test'"):
        render_photos(64, split="test")


def test_missing_scikit_image_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage raises ImportError
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    monkeypatch.setattr(_photo_sources, "_all_cuts", _photo_sources._all_cuts.__wrapped__)  # no cache
    with pytest.raises(ImportError, match=r"pip install 'pixbox\[photos\]'"):
        make_photos(tmp_path / "d", num_train=1, num_val=0, image_size=32, **QUIET)
    assert not (tmp_path / "d").exists()
    assert main(["data", "make", "photos", str(tmp_path / "d"), "--no-progress"]) == 1


# --------------------------------------------------------------------------- CLI

def test_cli_make_then_check(tmp_path, capsys):
    root = tmp_path / "photos"
    argv = ["data", "make", "photos", str(root), "--num-train", "3", "--num-val", "1", "--image-size", "48",
            "--format", "voc", "--max-objects", "2", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [f"wrote the photos dataset (voc layout, seed 0) to {root}:",
                                "  train  3 images", "  val    1 image"]
    assert max(len(r) for r in read_detection(root, "voc", "train").records) <= 2
    assert main(["data", "check", str(root), "--no-progress"]) == 0
    assert "no errors" in capsys.readouterr().out
