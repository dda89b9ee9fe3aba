import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import pixbox.data.datasets as D
import pixbox.data.loaders as L
import pixbox.data.io as pio
from pixbox.data import transforms as T
from pixbox.data.annotations import DatasetError, DetectionAnnotations, DetectionRecord
from pixbox.data.datasets import (
    ClassificationDataset,
    DetectionDataset,
    SegmentationDataset,
    collate_detection,
    collate_multibox,
    collate_segmentation,
    make_loader,
    seed_worker,
)
from pixbox.data.formats import (
    read_detection,
    read_image_folder,
    read_voc_segmentation,
    write_classification_csv,
    write_detection,
)
from pixbox.data.generators import make_dataset
from pixbox.data.io import read_image, read_mask, write_image, write_mask
from pixbox.ops import multibox_target

from ._fixtures import CLASS_NAMES, detection_set, write_png


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Small generated datasets (shared read-only by the tests of this module)."""
    root = tmp_path_factory.mktemp("generated")
    opts = dict(seed=0, num_train=6, num_val=2, image_size=48, progress=False)
    for task in ("shapes", "segmentation", "classification"):
        make_dataset(task, root / task, **opts)
    return root


@pytest.fixture
def fixture_set(tmp_path):
    """The four-image detection set of the format tests (one image without objects), every box
    inside its image so that the datasets accept it."""
    return detection_set(tmp_path / "src", trainable=True)


def _truncate(path: Path) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])  # the header stays readable, the pixels do not


def _counting(monkeypatch, module, name):
    calls = []
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


# ----------------------------------------------------------------------------------------------
# DetectionDataset


def test_construction_decodes_no_image(monkeypatch, generated):
    calls = _counting(monkeypatch, D, "read_image")
    io_calls = _counting(monkeypatch, pio, "read_image")
    ds = DetectionDataset(generated / "shapes", "coco", "train")
    seg = SegmentationDataset(generated / "segmentation", "train")
    mask_calls = _counting(monkeypatch, D, "read_mask")
    cls = ClassificationDataset(generated / "classification", "train")
    assert calls == [] and io_calls == [] and mask_calls == []
    ds[3]
    assert calls == [ds.annotations.records[3].image]
    seg[1], cls[0]
    assert len(calls) == 3 and mask_calls == [seg.annotations.samples[1][1]]


@pytest.mark.parametrize("fmt", ["voc", "coco"])
def test_samples_equal_the_files(tmp_path, fixture_set, fmt):
    root = write_detection(fixture_set, tmp_path / fmt, fmt, "train")
    ds = DetectionDataset(root, fmt, "train")
    ann = read_detection(root, fmt, "train")
    assert len(ds) == 4 and ds.class_names == CLASS_NAMES and ds.num_classes == 3
    for i, rec in enumerate(ann.records):
        image, target = ds[i]
        assert image.dtype == torch.uint8 and torch.equal(image, read_image(rec.image))
        assert set(target) == {"boxes", "labels", "iscrowd", "difficult", "image_id", "path"}
        assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (len(rec), 4)
        assert torch.equal(target["boxes"], torch.from_numpy(rec.boxes).float())
        assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == rec.labels.tolist()
        assert target["iscrowd"].dtype == torch.bool and target["iscrowd"].tolist() == rec.iscrowd.tolist()
        assert target["difficult"].tolist() == rec.difficult.tolist()
        assert target["image_id"] == i and target["path"] == str(rec.image)
    flags = "difficult" if fmt == "voc" else "iscrowd"
    assert any(ds[i][1][flags].any() for i in range(4))  # the flags survive


def test_format_detected_and_split_changes_the_samples(generated):
    guessed = DetectionDataset(generated / "shapes", split="train")
    assert guessed.fmt == "coco" and len(guessed) == 6
    val = DetectionDataset(generated / "shapes", split="val")
    assert len(val) == 2 and val[0][1]["path"] != guessed[0][1]["path"]
    assert "coco split 'train'" in repr(guessed)


def test_from_annotations_and_zero_box_images(fixture_set):
    ds = DetectionDataset.from_annotations(fixture_set)
    image, target = ds[1]  # a.jpg has no objects
    assert image.shape == (3, 16, 24)
    assert target["boxes"].shape == (0, 4) and target["boxes"].dtype == torch.float32
    assert target["labels"].shape == (0,) and target["labels"].dtype == torch.int64
    assert target["iscrowd"].shape == (0,) and target["difficult"].shape == (0,)
    images, targets = collate_detection([ds[1], ds[1]])
    assert images.shape == (2, 3, 16, 24) and [len(t["boxes"]) for t in targets] == [0, 0]
    images, labels = collate_multibox([ds[1], ds[1]])
    assert labels.shape == (2, 1, 5) and (labels == -1).all()
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 1.0, 1.0]])
    offsets, mask, classes = multibox_target(anchors, labels)
    assert classes.tolist() == [[0, 0], [0, 0]] and not mask.any() and not offsets.any()
    with pytest.raises(TypeError, match="annotations must be a DetectionAnnotations"):
        DetectionDataset.from_annotations([])


def test_transforms_are_applied_jointly(fixture_set):
    plain = DetectionDataset.from_annotations(fixture_set)
    flipped = DetectionDataset.from_annotations(fixture_set, transforms=T.RandomHorizontalFlip(p=1.0))
    image, target = plain[0]
    fimage, ftarget = flipped[0]
    w = image.shape[2]
    assert torch.equal(fimage, image.flip(-1))
    expected = torch.stack([w - target["boxes"][:, 2], target["boxes"][:, 1], w - target["boxes"][:, 0],
                            target["boxes"][:, 3]], dim=1)
    assert torch.allclose(ftarget["boxes"], expected)
    assert ftarget["labels"].tolist() == target["labels"].tolist()
    assert ftarget["image_id"] == 0 and ftarget["path"] == target["path"]

    seen = []

    def spy(image, target):
        seen.append((image.shape, dict(target)))
        return image.float() / 255, {**target, "boxes": target["boxes"] * 2}

    image2, target2 = DetectionDataset.from_annotations(fixture_set, transforms=spy)[0]
    assert seen[0][0] == image.shape and set(seen[0][1]) == set(target)
    assert image2.dtype == torch.float32 and torch.equal(target2["boxes"], target["boxes"] * 2)


def test_index_and_argument_errors(generated):
    ds = DetectionDataset(generated / "shapes", "coco", "train")
    assert ds[-1][1]["image_id"] == 5
    with pytest.raises(IndexError, match=r"index must be in \[-6, 6\).*got 6"):
        ds[6]
    with pytest.raises(TypeError, match="index must be an int, got str"):
        ds["0"]
    with pytest.raises(ValueError, match="on_error must be one of"):
        DetectionDataset(generated / "shapes", on_error="ignore")
    with pytest.raises(ValueError, match="fmt must be one of.*did you mean 'coco'"):
        DetectionDataset(generated / "shapes", "cocoa")
    with pytest.raises(TypeError, match="transforms must be callable"):
        DetectionDataset(generated / "shapes", transforms=[T.RandomHorizontalFlip()])
    with pytest.raises(ValueError, match="split 'tain' not found.*did you mean 'train'"):
        DetectionDataset(generated / "shapes", split="tain")


# ----------------------------------------------------------------------------------------------
# Bad files


def test_corrupt_image_raises_naming_the_path(tmp_path, fixture_set):
    ds = DetectionDataset.from_annotations(fixture_set)
    bad = fixture_set.records[2].image
    _truncate(bad)
    with pytest.raises(DatasetError, match=rf"{Path(bad).name}: cannot decode image") as info:
        ds[2]
    assert info.value.path == str(bad)


def test_corrupt_image_is_skipped_deterministically(tmp_path, fixture_set):
    ds = DetectionDataset.from_annotations(fixture_set, on_error="skip")
    assert ds.report().endswith("no problems")
    bad2, bad3 = fixture_set.records[2].image, fixture_set.records[3].image
    _truncate(bad2)
    with pytest.warns(UserWarning, match=rf"1 so far.*{Path(bad2).name}"):
        image, target = ds[2]
    assert target["image_id"] == 3 and target["path"] == str(fixture_set.records[3].image)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a known bad file is skipped silently the second time
        assert ds[2][1]["image_id"] == 3
    _truncate(bad3)
    with pytest.warns(UserWarning, match=rf"2 so far.*{Path(bad3).name}"):
        assert ds[3][1]["image_id"] == 0  # wraps around
    assert ds.skipped == [str(bad2), str(bad3)]
    report = ds.report()
    assert "2 unreadable files skipped" in report and str(bad2) in report and str(bad3) in report
    for rec in fixture_set.records[:2]:
        _truncate(rec.image)
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="all 4 samples of the dataset are unreadable"):
        ds[0]


def test_annotation_problems_raise_or_are_skipped_and_reported(tmp_path, fixture_set):
    root = write_detection(fixture_set, tmp_path / "csv", "csv", "train")
    label_csv = root / "train" / "label.csv"
    lines = label_csv.read_text().splitlines()
    lines[1] = "c10.png,0,20,1,10,5"  # x2 < x1
    label_csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"label\.csv, line 2: box has x2 < x1"):
        DetectionDataset(root, "csv")
    with pytest.warns(UserWarning, match="skipped 1 problem"):
        ds = DetectionDataset(root, "csv", on_error="skip")
    assert len(ds.problems) == 1 and len(ds) == 4
    report = ds.report()
    assert "1 annotation problem skipped" in report and "line 2: box has x2 < x1" in report


# ----------------------------------------------------------------------------------------------
# Collate functions


def _sample(h, w, boxes, labels, **extra):
    target = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
              "labels": torch.tensor(labels, dtype=torch.int64), **extra}
    return torch.zeros(3, h, w, dtype=torch.uint8), target


def test_collate_multibox_golden_and_multibox_target():
    batch = [_sample(4, 8, [[0, 0, 4, 2], [2, 1, 8, 4]], [1, 0]), _sample(4, 8, [], [])]
    images, labels = collate_multibox(batch)
    assert images.shape == (2, 3, 4, 8) and labels.dtype == torch.float32
    assert labels.tolist() == [[[1, 0, 0, 0.5, 0.5], [0, 0.25, 0.25, 1, 1]],
                               [[-1] * 5, [-1] * 5]]
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    _, mask, classes = multibox_target(anchors, labels)
    # anchor 0 is box 0 exactly (class 1 -> 2); box 1's best anchor is anchor 1 (IoU 0.44), class 0 -> 1
    assert classes.tolist() == [[2, 1], [0, 0]]
    assert mask.tolist() == [[1] * 8, [0] * 8]


def test_collate_multibox_against_a_loop():
    g = torch.Generator().manual_seed(0)
    batch = []
    for n in (3, 0, 5, 1):
        xy = torch.rand(n, 2, generator=g) * 20
        boxes = torch.cat([xy, xy + 1 + torch.rand(n, 2, generator=g) * 10], 1)
        batch.append(_sample(30, 40, boxes.tolist(), torch.randint(0, 4, (n,), generator=g).tolist()))
    _, labels = collate_multibox(batch)
    assert labels.shape == (4, 5, 5)
    for i, (_, t) in enumerate(batch):
        for j in range(5):
            if j < len(t["boxes"]):
                x1, y1, x2, y2 = t["boxes"][j].tolist()
                want = [float(t["labels"][j]), x1 / 40, y1 / 30, x2 / 40, y2 / 30]
            else:
                want = [-1.0] * 5
            assert labels[i, j].tolist() == pytest.approx(want, abs=1e-6)


def test_collate_multibox_keep_crowd():
    batch = [_sample(8, 8, [[0, 0, 4, 4], [1, 1, 7, 7]], [0, 2], iscrowd=torch.tensor([True, False]))]
    assert collate_multibox(batch)[1].tolist() == [[[2, 0.125, 0.125, 0.875, 0.875]]]
    assert collate_multibox(batch, keep_crowd=True)[1].tolist() == [[[0, 0, 0, 0.5, 0.5],
                                                                       [2, 0.125, 0.125, 0.875, 0.875]]]
    with pytest.raises(TypeError, match="keep_crowd must be a bool"):
        collate_multibox(batch, keep_crowd=1)


def test_collate_with_mixed_sizes():
    batch = [_sample(4, 8, [[0, 0, 1, 1]], [0]), _sample(6, 8, [], [])]
    images, targets = collate_detection(batch)
    assert isinstance(images, list) and [tuple(x.shape) for x in images] == [(3, 4, 8), (3, 6, 8)]
    assert targets[0] is batch[0][1]
    with pytest.raises(ValueError, match=r"one size, got sizes \(HxW\) \['4x8', '6x8'\].*Resize\(\(H, W\)\)"):
        collate_multibox(batch)
    with pytest.raises(ValueError, match="non-empty list"):
        collate_detection([])
    with pytest.raises(ValueError, match=r"batch\[0\] for collate_detection must be an \(image, target\) pair"):
        collate_detection([torch.zeros(3, 2, 2)])


def test_collate_segmentation():
    masks = [torch.randint(0, 3, (4, 5)), torch.full((4, 5), 255)]
    batch = [(torch.zeros(3, 4, 5, dtype=torch.uint8), m) for m in masks]
    images, out = collate_segmentation(batch)
    assert images.shape == (2, 3, 4, 5) and out.dtype == torch.int64 and torch.equal(out, torch.stack(masks))
    with pytest.raises(ValueError, match=r"one size.*Resize\(\(H, W\)\) or RandomCrop"):
        collate_segmentation([batch[0], (torch.zeros(3, 5, 5), torch.zeros(5, 5))])
    with pytest.raises(ValueError, match=r"batch\[0\]\[1\] .* mask Tensor\[H, W\] of its image's size \(4, 5\)"):
        collate_segmentation([(batch[0][0], torch.zeros(5, 4))])


# ----------------------------------------------------------------------------------------------
# SegmentationDataset


def test_segmentation_samples_and_joint_transforms(generated):
    ds = SegmentationDataset(generated / "segmentation", "train")
    ann = read_voc_segmentation(generated / "segmentation", "train")
    assert len(ds) == 6 and ds.class_names == ann.class_names and ds.num_classes == len(ann.class_names)
    image, mask = ds[2]
    assert torch.equal(image, read_image(ann.samples[2][0]))
    assert mask.dtype == torch.int64 and torch.equal(mask, read_mask(ann.samples[2][1]))
    seen = []

    def spy(image, target):
        seen.append(sorted(target))
        return T.RandomHorizontalFlip(p=1.0)(image, target)

    fimage, fmask = SegmentationDataset(generated / "segmentation", "train", transforms=spy)[2]
    assert seen == [["mask"]]
    assert torch.equal(fimage, image.flip(-1)) and torch.equal(fmask, mask.flip(-1))
    assert SegmentationDataset(generated / "segmentation", "val")[0][0].shape == image.shape


def _seg_root(tmp_path, masks):
    root = tmp_path / "seg"
    ids = []
    for k, mask in enumerate(masks):
        write_png(root / "JPEGImages" / f"im{k}.png", 6, 4, seed=k)
        write_mask(mask, root / "SegmentationClass" / f"im{k}.png")
        ids.append(f"im{k}")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids) + "\n")
    (root / "classes.txt").write_text("background\ncat\ndog\n")
    return root


def test_segmentation_bad_mask_values_and_size_mismatch(tmp_path):
    good = torch.zeros(4, 6, dtype=torch.int64)
    good[0, 0], good[1, 1] = 255, 2
    bad = good.clone()
    bad[2, 3], bad[3, 3] = 3, 7
    root = _seg_root(tmp_path, [good, bad, good])
    ds = SegmentationDataset(root, "train")
    skipping = SegmentationDataset(root, "train", on_error="skip")
    assert torch.equal(ds[0][1], good)
    with pytest.raises(DatasetError, match=r"im1\.png: mask values must be class indices in \[0, 3\) or 255 "
                                           r"\(ignore\), got \[3, 7\] in 2 pixels") as info:
        ds[1]
    assert info.value.path == str(root / "SegmentationClass" / "im1.png")
    # a mask replaced by one of another size after the dataset was made
    write_mask(torch.zeros(5, 6, dtype=torch.int64), root / "SegmentationClass" / "im2.png")
    with pytest.raises(DatasetError, match=r"SegmentationClass/im2\.png: the mask is 6 x 5 .* its image "
                                           r".*JPEGImages/im2\.png is 6 x 4"):
        ds[2]
    with pytest.warns(UserWarning) as record:
        image, mask = skipping[1]  # im1 has bad values, im2 the wrong size: wraps around to im0
    assert "im1.png: mask values" in str(record[0].message) and "the mask is 6 x 5" in str(record[1].message)
    assert torch.equal(image, read_image(root / "JPEGImages" / "im0.png")) and torch.equal(mask, good)
    assert skipping.skipped == [str(root / "JPEGImages" / f"im{k}.png") for k in (1, 2)]


# ----------------------------------------------------------------------------------------------
# ClassificationDataset


def test_classification_folder_and_csv(tmp_path, generated):
    folder = generated / "classification"
    ds = ClassificationDataset(folder, "train")
    ann = read_image_folder(folder / "train")
    assert len(ds) == 6 and ds.class_names == ann.class_names and ds.num_classes == 6
    for i, (path, label) in enumerate(ann.samples):
        image, y = ds[i]
        assert torch.equal(image, read_image(path)) and y == label and isinstance(y, int)
    assert len(ClassificationDataset(folder / "val")) == 2  # split None reads root itself

    csv_root = tmp_path / "csv"
    write_classification_csv(ann, csv_root / "train.csv")  # paths to the images elsewhere: ../
    with pytest.raises(DatasetError, match="points outside the dataset folder"):
        ClassificationDataset(csv_root, "train", fmt="csv")
    by_split = ClassificationDataset(csv_root, "train", fmt="csv", allow_outside=True)
    by_file = ClassificationDataset(csv_root / "train.csv", fmt="csv", allow_outside=True)
    by_folder = ClassificationDataset(csv_root, fmt="csv", allow_outside=True)
    for other in (by_split, by_file, by_folder):
        assert len(other) == 6 and other.source == csv_root / "train.csv"
        # CSV class names are the labels present, so compare names, not indices
        assert [(torch.equal(other[i][0], ds[i][0]), other.class_names[other[i][1]]) for i in range(6)] == \
            [(True, ds.class_names[ds[i][1]]) for i in range(6)]
    (csv_root / "val.csv").write_text("path,label\n")
    with pytest.raises(DatasetError, match=r"several \.csv files \['train\.csv', 'val\.csv'\]"):
        ClassificationDataset(csv_root, fmt="csv")
    with pytest.raises(ValueError, match="fmt must be one of"):
        ClassificationDataset(csv_root, fmt="json")


def test_classification_transforms_get_only_the_image(generated):
    calls = []

    def t(image):
        calls.append(image.shape)
        return image.float()

    image, label = ClassificationDataset(generated / "classification", "val", transforms=t)[1]
    assert calls == [(3, 48, 48)] and image.dtype == torch.float32


def test_classification_corrupt_image(tmp_path):
    for k, name in enumerate(["cat", "cat", "dog"]):
        write_png(tmp_path / "c" / name / f"{k}.png", 8, 8, seed=k)
    ds = ClassificationDataset(tmp_path / "c", on_error="skip")
    _truncate(tmp_path / "c" / "cat" / "1.png")
    with pytest.warns(UserWarning, match=r"1\.png"):
        assert ds[1][1] == 1  # the dog
    with pytest.raises(DatasetError, match=r"1\.png: cannot decode"):
        ClassificationDataset(tmp_path / "c")[1]


# ----------------------------------------------------------------------------------------------
# Loaders and seeding


class _Noise:
    """A random transform with its own generator: adds a random number to the target."""

    def __init__(self, generator=None):
        self.generator = generator

    def __call__(self, image, target):
        return image, {**target, "noise": torch.rand(1, generator=self.generator)}


def _flip_set(generated):
    return DetectionDataset(generated / "shapes", "coco", "train",
                            transforms=T.Compose([T.RandomHorizontalFlip(), T.RandomPhotometricDistort(p=0.5)]))


def _epochs(loader, n=2):
    return [(images.clone(), [t["boxes"].clone() for t in targets]) for _ in range(n) for images, targets in loader]


def _same(a, b):
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) and all(torch.equal(p, q) for p, q in zip(x[1], y[1]))
                                    for x, y in zip(a, b))


def test_loader_is_reproducible_in_process(generated):
    ds = _flip_set(generated)
    state = torch.get_rng_state()
    first = _epochs(make_loader(ds, 4, shuffle=True, seed=3))
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is not consumed
    assert _same(first, _epochs(make_loader(ds, 4, shuffle=True, seed=3)))
    assert not _same(first, _epochs(make_loader(ds, 4, shuffle=True, seed=4)))
    assert not _same(first[:2], first[2:])  # epochs differ
    assert [len(b[1]) for b in first] == [4, 2, 4, 2]


def test_loader_with_a_corrupt_image(fixture_set):
    _truncate(fixture_set.records[1].image)
    bad = DetectionDataset.from_annotations(fixture_set)
    with pytest.raises(DatasetError, match=r"a\.jpg: cannot (read|decode)"):
        list(make_loader(bad, 2, shuffle=False))
    skipping = DetectionDataset.from_annotations(fixture_set, on_error="skip")
    with pytest.warns(UserWarning, match=r"a\.jpg"):
        ids = [t["image_id"] for _, ts in make_loader(skipping, 2, shuffle=False) for t in ts]
    assert ids == [0, 2, 2, 3] and skipping.skipped == [str(fixture_set.records[1].image)]


def test_loader_is_reproducible_with_workers(generated):
    ds = _flip_set(generated)
    two = _epochs(make_loader(ds, 2, shuffle=True, num_workers=2, seed=3))
    assert _same(two, _epochs(make_loader(ds, 2, shuffle=True, num_workers=2, seed=3)))
    # worker 0 of one worker is seeded like the in-process pipeline: same first epoch
    one = _epochs(make_loader(ds, 2, shuffle=True, num_workers=1, seed=3), n=1)
    assert _same(one, _epochs(make_loader(ds, 2, shuffle=True, num_workers=0, seed=3), n=1))


def test_seed_worker_reseeds_explicit_generators_per_worker(generated):
    g = torch.Generator().manual_seed(0)
    ds = DetectionDataset(generated / "shapes", "coco", "train", transforms=_Noise(g))
    loader = make_loader(ds, 1, shuffle=False, num_workers=2, seed=0)
    noise = [t[0]["noise"].item() for _, t in loader]
    # without reseeding both workers would start from copies of the same generator state
    assert noise[0] != noise[1] and len(set(noise)) == 6
    assert [t[0]["noise"].item() for _, t in make_loader(ds, 1, shuffle=False, num_workers=2, seed=0)] == noise


def test_seed_worker_seeds_python_and_numpy():
    torch.manual_seed(1234)
    seed_worker(0)
    a, b = random.random(), np.random.rand()
    random.seed(1234)
    np.random.seed(1234)
    assert (a, b) == (random.random(), np.random.rand())
    g = torch.Generator()
    assert L._reseed_generators(T.Compose([_Noise(g), _Noise(g), _Noise(torch.Generator())]), 7) == 2
    assert g.initial_seed() == 7


def test_make_loader_parameters(generated):
    ds = DetectionDataset(generated / "shapes", "coco", "train")
    ordered = [t["image_id"] for _, ts in make_loader(ds, 4, shuffle=False) for t in ts]
    assert ordered == list(range(6))
    shuffled = [t["image_id"] for _, ts in make_loader(ds, 4, shuffle=True) for t in ts]
    assert sorted(shuffled) == ordered and shuffled != ordered
    assert [len(ts) for _, ts in make_loader(ds, 4, shuffle=False, drop_last=True)] == [4]
    assert [len(ts) for _, ts in make_loader(ds, 5, shuffle=False)] == [5, 1]
    images, labels = next(iter(make_loader(ds, 2, shuffle=False, collate_fn=collate_multibox)))
    assert labels.dim() == 3 and labels.shape[0] == 2
    seg = SegmentationDataset(generated / "segmentation", "train")
    assert next(iter(make_loader(seg, 2, shuffle=False)))[1].shape == (2, 48, 48)
    cls = ClassificationDataset(generated / "classification", "train")
    assert next(iter(make_loader(cls, 3, shuffle=False)))[1].tolist() == [cls[i][1] for i in range(3)]
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        make_loader(ds, 0, shuffle=False)
    with pytest.raises(TypeError, match="shuffle must be a bool"):
        make_loader(ds, 2, shuffle=None)
    with pytest.raises(ValueError, match="num_workers must be >= 0, got -1"):
        make_loader(ds, 2, shuffle=False, num_workers=-1)
    with pytest.raises(TypeError, match="collate_fn must be callable"):
        make_loader(ds, 2, shuffle=False, collate_fn="multibox")
    with pytest.raises(TypeError, match="dataset must be a torch.utils.data.Dataset"):
        make_loader([1, 2], 2, shuffle=False)


def test_records_of_any_origin(tmp_path):
    # an in-memory DetectionAnnotations whose image is written here
    path = write_image(torch.full((3, 5, 7), 9, dtype=torch.uint8), tmp_path / "x.png")
    ann = DetectionAnnotations(["a"], [DetectionRecord(path, 7, 5, boxes=np.array([[1, 1, 3, 4]]), labels=[0])])
    image, target = DetectionDataset.from_annotations(ann)[0]
    assert (image == 9).all() and target["boxes"].tolist() == [[1, 1, 3, 4]]
