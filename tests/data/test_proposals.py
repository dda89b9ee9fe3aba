"""Tests for pixbox.data.proposals and for proposals in transforms, datasets and collate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixbox.data import DatasetError, DetectionDataset, make_dataset, read_detection
from pixbox.data import transforms as T
from pixbox.data.loaders import collate_detection, collate_multibox
from pixbox.data.proposals import load_proposals, make_proposals, proposals_for, save_proposals, selective_search
from pixbox.ops import box_iou


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    make_dataset("shapes", root, num_train=3, num_val=2, image_size=64, progress=False)
    return root


def _write(path, doc):
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _doc(images):
    return {"format": "pixbox-proposals", "version": 1, "method": "test", "images": images}


# ----------------------------------------------------------------------------------------------
# The file


def test_save_load_round_trip(tmp_path):
    table = {
        "images/train/a.png": torch.tensor([[0.5, 1.25, 10.0, 20.0], [3.0, 3.0, 3.0, 9.0]]),  # a zero-width box
        "b.png": np.zeros((0, 4)),
        "c.png": [[1, 2, 3, 4]],
    }
    path = save_proposals(tmp_path / "sub" / "p.json", table, method="manual")
    assert path == tmp_path / "sub" / "p.json"
    doc = json.loads(path.read_text())
    assert doc["format"] == "pixbox-proposals" and doc["version"] == 1 and doc["method"] == "manual"
    loaded = load_proposals(path)
    assert list(loaded) == list(table)
    for key, value in table.items():
        want = np.asarray(value, np.float32).reshape(-1, 4)
        assert loaded[key].dtype == np.float32 and loaded[key].shape == want.shape
        assert np.array_equal(loaded[key], want)
    assert not list(tmp_path.joinpath("sub").glob("*.tmp"))  # written atomically
    # Saving what was loaded gives the same file content.
    again = save_proposals(tmp_path / "again.json", loaded, method="manual")
    assert json.loads(again.read_text()) == doc


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON file"),
    (json.dumps({"format": "coco", "version": 1, "images": {}}), "not a pixbox proposals file"),
    (json.dumps([1, 2]), "not a pixbox proposals file"),
    (json.dumps({"format": "pixbox-proposals", "version": 7, "images": {}}), "version 7"),
    (json.dumps(_doc({"x/a.png": [[0, 0, 1]]})), r"x/a.png'.*box 0 must be 4 finite numbers"),
    (json.dumps(_doc({"x/a.png": [[0, 0, 1, 1], [0, 0, "1", 2]]})), r"x/a.png'.*box 1 must be 4 finite"),
    ('{"format": "pixbox-proposals", "version": 1, "images": {"a.png": [[0, 0, NaN, 1]]}}',
     r"a.png'.*4 finite numbers"),
    (json.dumps(_doc({"b.png": [[5, 0, 4, 1]]})), r"b.png'.*inverted"),
    (json.dumps(_doc({"b.png": [[0, 5, 4, 1]]})), r"b.png'.*inverted"),
    (json.dumps(_doc({"b.png": {"boxes": []}})), r"b.png'.*must be a list"),
])
def test_load_errors_name_the_file_and_image(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetError, match=message) as info:
        load_proposals(path)
    assert str(path) in str(info.value)


def test_load_and_save_argument_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        load_proposals(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"proposals\['a.png'\] must have shape \[P, 4\]"):
        save_proposals(tmp_path / "p.json", {"a.png": [[1, 2, 3]]})
    with pytest.raises(DatasetError, match="inverted"):
        save_proposals(tmp_path / "p.json", {"a.png": [[3, 2, 1, 4]]})
    with pytest.raises(TypeError, match="proposals must be a dict"):
        save_proposals(tmp_path / "p.json", [[0, 0, 1, 1]])
    assert not (tmp_path / "p.json").exists()


# ----------------------------------------------------------------------------------------------
# Lookup


def test_lookup_by_relative_path_and_by_unique_file_name(tmp_path):
    root = tmp_path / "data"
    images = [root / "images" / "train" / "a.png", root / "images" / "val" / "b.png", root / "c.png"]
    table = {"images/train/a.png": [[0, 0, 4, 4]], "b.png": [[1, 1, 5, 5], [0, 0, 2, 2]], "c.png": []}
    path = save_proposals(tmp_path / "p.json", table)
    out = proposals_for(images, path, root)
    assert [tuple(p.shape) for p in out] == [(1, 4), (2, 4), (0, 4)]
    assert out[1].tolist() == [[1, 1, 5, 5], [0, 0, 2, 2]] and out[0].dtype == torch.float32
    # The longest matching key wins over a bare file name.
    out = proposals_for([images[0]], {"a.png": [[9, 9, 10, 10]], "train/a.png": [[1, 1, 2, 2]]}, root)
    assert out[0].tolist() == [[1, 1, 2, 2]]
    # Without a root, keys match the ends of the paths (prediction on image files).
    out = proposals_for([str(images[0])], path)
    assert out[0].tolist() == [[0, 0, 4, 4]]


def test_lookup_errors(tmp_path):
    root = tmp_path / "data"
    path = save_proposals(tmp_path / "p.json", {"images/train/a.png": [[0, 0, 4, 4]], "a.png": []})
    with pytest.raises(DatasetError, match=r"no proposals for image 'images/val/z.png'") as info:
        proposals_for([root / "images" / "train" / "a.png", root / "images" / "val" / "z.png"], path, root)
    assert str(tmp_path / "p.json") in str(info.value)
    # A bare name shared by two images of the dataset is ambiguous.
    with pytest.raises(DatasetError, match=r"'a.png' matches several images"):
        proposals_for([root / "x" / "a.png", root / "y" / "a.png"], path, root)
    with pytest.raises(TypeError, match="proposals must be a proposals file path or a dict"):
        proposals_for([root / "a.png"], 3, root)


# ----------------------------------------------------------------------------------------------
# Transforms


def _target():
    boxes = torch.tensor([[10.0, 8.0, 30.0, 40.0], [50.0, 20.0, 79.0, 60.0]])
    proposals = torch.tensor([[0.0, 0.0, 80.0, 64.0], [12.0, 6.0, 33.0, 41.0], [60.0, 50.0, 79.5, 63.0],
                              [2.0, 2.0, 6.0, 5.0], [40.0, 10.0, 44.0, 12.0]])
    return {"boxes": boxes, "labels": torch.tensor([1, 2]), "proposals": proposals}


def _image():
    return torch.randint(0, 256, (3, 64, 80), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def _replay(t, proposals):
    """The boxes that ``t`` makes of ``proposals`` passed as boxes (the reference), min_size 0."""
    return t(_image(), {"boxes": proposals.clone(), "labels": torch.zeros(len(proposals), dtype=torch.int64)})[1]


@pytest.mark.parametrize("make", [
    lambda g: T.RandomHorizontalFlip(p=1.0, generator=g),
    lambda g: T.RandomVerticalFlip(p=1.0, generator=g),
    lambda g: T.Resize((40, 50)),
    lambda g: T.RandomCrop((30, 36), generator=g, min_size=0.0),
    lambda g: T.CenterCrop((40, 40), min_size=0.0),
    lambda g: T.RandomResizedCrop((32, 32), scale=(0.3, 0.6), generator=g, min_size=0.0),
    lambda g: T.RandomZoomOut(side_range=(1.5, 2.5), p=1.0, generator=g),
], ids=["hflip", "vflip", "resize", "random_crop", "center_crop", "random_resized_crop", "zoom_out"])
def test_geometric_transforms_move_proposals_like_boxes(make):
    target = _target()
    for seed in range(3):
        out = make(torch.Generator().manual_seed(seed))(_image(), {k: v.clone() for k, v in target.items()})[1]
        reference = _replay(make(torch.Generator().manual_seed(seed)), target["proposals"])
        # Proposals end up exactly as the same transform moves boxes (nonempty ones kept)...
        ref = reference["boxes"]
        ref = ref[(ref[:, 2] > ref[:, 0]) & (ref[:, 3] > ref[:, 1])]
        assert torch.equal(out["proposals"], ref), seed
        # ... while the boxes and their labels follow their own rule, whatever the proposals.
        alone = make(torch.Generator().manual_seed(seed))(_image(), {"boxes": target["boxes"].clone(),
                                                                     "labels": target["labels"].clone()})[1]
        assert torch.equal(out["boxes"], alone["boxes"]) and torch.equal(out["labels"], alone["labels"])
    assert torch.equal(target["proposals"], _target()["proposals"])  # inputs untouched


def test_crops_drop_empty_proposals_but_keep_counts_independent():
    target = _target()
    _, out = T.CenterCrop((20, 20))(_image(), target)  # window x 30..50, y 22..42
    # Both boxes are cut to zero width (dropped with their labels); the proposals covering the
    # window survive, clipped; the ones left empty go.
    assert out["boxes"].shape == (0, 4) and out["labels"].shape == (0,)
    assert out["proposals"].tolist() == [[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 3.0, 19.0]]
    # As many proposals as boxes does not make them "per box": dropping a box keeps them all.
    target = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [25.0, 15.0, 35.0, 25.0]]),
              "labels": torch.tensor([0, 1]),
              "proposals": torch.tensor([[0.0, 0.0, 79.0, 60.0], [30.0, 20.0, 50.0, 40.0]])}
    _, out = T.CenterCrop((40, 40))(_image(), target)  # window x 20..60, y 12..52
    assert out["labels"].tolist() == [1] and out["boxes"].tolist() == [[5.0, 3.0, 15.0, 13.0]]
    assert out["proposals"].tolist() == [[0.0, 0.0, 40.0, 40.0], [10.0, 8.0, 30.0, 28.0]]


def test_iou_crop_and_sanitize_leave_proposals_to_the_geometry():
    target = _target()
    g = torch.Generator().manual_seed(3)
    _, out = T.RandomIoUCrop(generator=g)(_image(), {k: v.clone() for k, v in target.items()})
    p = out["proposals"]
    assert len(p) >= 1 and (p[:, 2] > p[:, 0]).all() and (p[:, 3] > p[:, 1]).all()
    assert len(out["boxes"]) == len(out["labels"])
    _, out = T.SanitizeBoxes()(_image(), {"boxes": torch.tensor([[0.0, 0.0, 0.5, 9.0]]), "labels": torch.tensor([0]),
                                          "proposals": torch.tensor([[0.0, 0.0, 0.5, 9.0]])})
    assert out["boxes"].shape == (0, 4) and out["proposals"].shape == (1, 4)


def test_bad_proposals_in_a_target():
    with pytest.raises(ValueError, match=r"target\['proposals'\]"):
        T.RandomHorizontalFlip(p=1.0)(_image(), {"proposals": torch.zeros(3, 5)})


# ----------------------------------------------------------------------------------------------
# Dataset and collate


def _gt_table(root, split):
    ann = read_detection(root, "coco", split)
    return {r.image.relative_to(root).as_posix(): np.concatenate([r.boxes, [[1, 1, 20, 20]]]) for r in ann.records}


def test_dataset_targets_hold_proposals_and_collate(shapes, tmp_path):
    table = {**_gt_table(shapes, "train"), **_gt_table(shapes, "val")}
    path = save_proposals(tmp_path / "p.json", table)
    plain = DetectionDataset(shapes, split="train")
    ds = DetectionDataset(shapes, split="train", proposals=path,
                          transforms=T.Compose([T.Resize((32, 32)), T.ToDtype(torch.float32)]))
    assert plain.proposals is None and "proposals" not in plain[0][1]
    image, target = ds[1]
    key = ds.annotations.records[1].image.relative_to(shapes).as_posix()
    assert torch.allclose(target["proposals"], torch.tensor(table[key], dtype=torch.float32) / 2)
    assert torch.equal(ds.proposals[1], torch.tensor(table[key], dtype=torch.float32))  # the stored ones stay
    images, labels, proposals = collate_multibox([ds[0], ds[1]])
    assert images.shape == (2, 3, 32, 32) and labels.shape[0] == 2
    assert [len(p) for p in proposals] == [len(ds[0][1]["proposals"]), len(target["proposals"])]
    assert len(collate_multibox([plain[0], plain[1]])) == 2  # without proposals: unchanged
    assert "proposals" in collate_detection([ds[0], ds[1]])[1][0]
    with pytest.raises(ValueError, match=r"batch\[1\]\[1\] for collate_multibox has no 'proposals'"):
        collate_multibox([ds[0], (ds[1][0], {k: v for k, v in ds[1][1].items() if k != "proposals"})])
    # A dataset image missing from the file is an error naming it, at construction.
    del table[key]
    with pytest.raises(DatasetError, match=f"no proposals for image '{key}'"):
        DetectionDataset(shapes, split="train", proposals=table)


# ----------------------------------------------------------------------------------------------
# Selective search (OpenCV contrib, an optional dependency)


def test_selective_search_finds_the_shapes(shapes, tmp_path):
    pytest.importorskip("cv2.ximgproc", reason="OpenCV contrib (opencv-contrib-python-headless) not installed")
    ann = read_detection(shapes, "coco", "train")
    hits = total = 0
    for rec in ann.records:
        props = selective_search(rec.image)
        assert props.dtype == torch.float32 and props.dim() == 2 and props.shape[1] == 4 and 0 < len(props) <= 2000
        assert (props >= 0).all() and (props[:, [0, 2]] <= rec.width).all() and (props[:, [1, 3]] <= rec.height).all()
        assert ((props[:, 2] - props[:, 0] >= 4) & (props[:, 3] - props[:, 1] >= 4)).all()
        assert len(torch.unique(props, dim=0)) == len(props)
        gt = torch.tensor(rec.boxes, dtype=torch.float32)
        if len(gt):
            hits += int((box_iou(gt, props).amax(dim=1) >= 0.7).sum())
            total += len(gt)
    assert total > 0 and hits / total >= 0.6, (hits, total)
    # Options change the output: a cap, and a tensor input gives the same boxes as its file.
    image = ann.records[0].image
    from pixbox.data.io import read_image

    assert torch.equal(selective_search(read_image(image)), selective_search(image))
    assert len(selective_search(image, max_proposals=5)) == 5
    with pytest.raises(ValueError, match="mode must be one of"):
        selective_search(image, mode="slow")
    # make_proposals covers every image of the chosen splits, keyed relative to the dataset.
    path = make_proposals(shapes, tmp_path / "ss.json", splits=["val"], max_proposals=50, progress=False)
    loaded = load_proposals(path)
    assert sorted(loaded) == sorted(r.image.relative_to(shapes).as_posix()
                                    for r in read_detection(shapes, "coco", "val").records)
    assert all(0 < len(v) <= 50 for v in loaded.values())
    with pytest.raises(ValueError, match="split must be one of"):
        make_proposals(shapes, tmp_path / "x.json", splits=["tset"], progress=False)


def test_selective_search_without_opencv_says_what_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cv2", None)  # "import cv2" now fails
    with pytest.raises(ImportError, match="pip install opencv-contrib-python-headless"):
        selective_search(torch.zeros(3, 8, 8, dtype=torch.uint8))
