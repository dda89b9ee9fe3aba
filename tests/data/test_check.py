import json
import math
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from pixbox.data.annotations import ClassificationAnnotations, DatasetError
from pixbox.data.check import BOX_SIZE_BINS, DatasetReport, check_dataset, detect_task
from pixbox.data.formats import (
    list_splits,
    read_detection,
    read_image_folder,
    write_classification_csv,
    write_detection,
)
from pixbox.data.generators import make_dataset
from pixbox.data.io import write_mask

from ._fixtures import detection_set, write_png

_OPTS = dict(seed=0, num_train=6, num_val=2, image_size=48, progress=False)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Good generated datasets in every layout (read-only for the tests)."""
    root = tmp_path_factory.mktemp("good")
    make_dataset("bananas", root / "bananas", **_OPTS)
    for fmt in ("coco", "voc", "yolo"):
        make_dataset("shapes", root / f"shapes-{fmt}", fmt=fmt, **_OPTS)
    make_dataset("segmentation", root / "segmentation", **_OPTS)
    make_dataset("classification", root / "classification", **_OPTS)
    # CSV splits next to their images, each with all 6 classes (training needs the same class list)
    make_dataset("classification", root / "classification-csv", **dict(_OPTS, num_val=6))
    for split in ("train", "val"):
        write_classification_csv(read_image_folder(root / "classification-csv" / split),
                                 root / "classification-csv" / f"{split}.csv")
    return root


def _truncate(path: Path) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) * 3 // 4])  # the header stays readable, the pixels do not


def _located(report: DatasetReport) -> set[tuple[str, str | None]]:
    return {(Path(e.path).name, e.where) for e in report.errors}


# ----------------------------------------------------------------------------------------------
# Good datasets


@pytest.mark.parametrize("name, fmt", [("bananas", "csv"), ("shapes-coco", "coco"), ("shapes-voc", "voc"),
                                       ("shapes-yolo", "yolo")])
def test_good_detection_datasets_pass_with_exact_statistics(generated, name, fmt):
    root = generated / name
    report = check_dataset(root, progress=False)
    assert report.ok and report.errors == [] and report.task == "detection" and report.fmt == fmt
    anns = {s: read_detection(root, fmt, s) for s in list_splits(root, fmt)}
    assert report.splits == {"train": 6, "val": 2} and report.num_images == 8
    counts = Counter(a.class_names[k] for a in anns.values() for r in a.records for k in r.labels)
    assert report.objects_per_class == {n: counts[n] for n in anns["train"].class_names}
    sides = [math.sqrt((b[2] - b[0]) * (b[3] - b[1])) for a in anns.values() for r in a.records for b in r.boxes]
    edges = [0, *BOX_SIZE_BINS, math.inf]
    assert list(report.box_sizes.values()) == [sum(lo <= s < hi for s in sides) for lo, hi in zip(edges, edges[1:])]
    assert report.empty_images == sum(len(r) == 0 for a in anns.values() for r in a.records)
    text = report.format()
    assert text.splitlines()[-1].startswith(f"OK: detection dataset ({fmt}) with 8 images in 2 splits")
    assert "box sizes (sqrt(area), px):" in text and "16-32" in text


def test_good_segmentation_and_classification_datasets_pass(generated):
    seg = check_dataset(generated / "segmentation", progress=False)
    assert seg.ok and (seg.task, seg.fmt) == ("segmentation", "voc") and seg.splits == {"train": 6, "val": 2}
    assert seg.objects_per_class["background"] == 8 and seg.format().splitlines()[-1].startswith("OK: segmentation")
    for name, fmt, num_val in (("classification", "folder", 2), ("classification-csv", "csv", 6)):
        report = check_dataset(generated / name, progress=False)
        assert report.ok and (report.task, report.fmt) == ("classification", fmt)
        assert report.splits == {"train": 6, "val": num_val}
        assert sum(report.objects_per_class.values()) == 6 + num_val
    # val lacks some classes: a warning, not an error
    assert any("has no images in split 'val'" in w for w in check_dataset(generated / "classification",
                                                                          progress=False).warnings)


def test_detect_task(generated, tmp_path):
    assert detect_task(generated / "bananas") == ("detection", "csv")
    assert detect_task(generated / "shapes-yolo") == ("detection", "yolo")
    assert detect_task(generated / "segmentation") == ("segmentation", "voc")
    assert detect_task(generated / "classification") == ("classification", "folder")
    assert detect_task(generated / "classification" / "train") == ("classification", "folder")
    assert detect_task(generated / "classification-csv") == ("classification", "csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot tell the task of .*empty"):
        detect_task(tmp_path / "empty")
    with pytest.raises(DatasetError, match="does not exist"):
        check_dataset(tmp_path / "nope")


def test_classification_folder_without_splits(generated):
    report = check_dataset(generated / "classification" / "train", progress=False)
    assert report.ok and report.splits == {"all": 6}


# ----------------------------------------------------------------------------------------------
# Bad datasets: every problem in one report, each with its file and line or object


def test_bad_voc_reports_every_problem(tmp_path):
    root = write_detection(detection_set(tmp_path / "src"), tmp_path / "voc", "voc", "train")
    xml = root / "Annotations"
    (xml / "c2.xml").write_text((xml / "c2.xml").read_text().replace("<xmax>33</xmax>", ""))  # missing tag
    b = (xml / "b.xml").read_text()
    (xml / "b.xml").write_text(b.replace("<xmax>12.1</xmax>", "<xmax>2</xmax>"))  # x2 < x1
    _truncate(root / "JPEGImages" / "a.jpg")  # corrupt JPEG
    report = check_dataset(root, progress=False)
    assert not report.ok and report.splits == {"train": 4} and report.num_images == 4
    assert _located(report) == {
        ("c2.xml", "object 1"),  # missing <xmax>
        ("b.xml", "object 1"),  # x2 < x1
        ("a.jpg", None),  # corrupt
        ("c10.xml", "object 3"),  # [30.5, 20.75, 44, 31.5] in a 40 x 30 image
        ("b.xml", "box 0 (counting only the objects that were read)"),  # zero width, after the skipped one
    }
    messages = "\n".join(map(str, report.errors))
    assert "missing <xmax> tag" in messages and "box has x2 < x1" in messages
    assert "a.jpg: cannot decode image" in messages
    assert "lies outside the 40 x 30 image by more than 0.5 px" in messages
    assert "degenerate box [5, 5, 5, 10] (zero width)" in messages
    text = report.format()
    assert all(str(e) in text for e in report.errors)
    assert text.splitlines()[-1].startswith("FAILED: 5 errors in the detection dataset (voc)")


def test_bad_coco_and_yolo_report_every_problem(tmp_path):
    src = detection_set(tmp_path / "src")
    coco = write_detection(src, tmp_path / "coco", "coco", "train")
    path = coco / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    data["annotations"][1]["category_id"] = 99  # unknown category
    path.write_text(json.dumps(data))
    _truncate(coco / "images" / "train" / "c2.png")
    report = check_dataset(coco, progress=False)
    located = _located(report)
    assert ("instances_train.json", "annotation id 2") in located and ("c2.png", None) in located
    assert "unknown category_id 99" in report.format()
    # the box outside the image, located by image id and box index
    assert ("instances_train.json", "image id 1 (c10.png), box 1 of its annotations") in located

    yolo = write_detection(src, tmp_path / "yolo", "yolo", "train")
    txt = yolo / "labels" / "train" / "c10.txt"
    lines = txt.read_text().splitlines()
    txt.write_text(f"{lines[0]}\n2 0.5 0.5 0.1\n7 0.5 0.5 0.1 0.1\n")  # 4 numbers; class id out of range
    b = yolo / "labels" / "train" / "b.txt"
    b.write_text("\n" + b.read_text())  # a blank first line: boxes are on lines 2 and 3
    report = check_dataset(yolo, progress=False)
    assert {("c10.txt", "line 2"), ("c10.txt", "line 3"), ("b.txt", "line 3")} <= _located(report)
    text = report.format()
    assert "expected 5 numbers (class cx cy w h), got 4" in text and "class id 7 out of range" in text
    assert "degenerate box" in text


def test_bad_csv_locates_boxes_by_line(tmp_path):
    root = write_detection(detection_set(tmp_path / "src"), tmp_path / "csv", "csv", "train")
    report = check_dataset(root, progress=False)
    # header on line 1; c10.png has lines 2-4, a.jpg line 5, c2.png line 6, b.bmp lines 7-8
    assert _located(report) == {("label.csv", "line 4"), ("label.csv", "line 8")}


def test_class_ids_out_of_range_and_size_mismatch(tmp_path):
    src = detection_set(tmp_path / "src")
    coco = write_detection(src, tmp_path / "coco", "coco", "train")
    path = coco / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    data["images"][2]["width"] = 99  # c2.png is 33 x 17
    path.write_text(json.dumps(data))
    report = check_dataset(coco, progress=False)
    assert any(e.where == "image id 3" and "gives the size 99 x 17" in str(e) and "c2.png is 33 x 17" in str(e)
               for e in report.errors)


def test_segmentation_problems(tmp_path):
    root = tmp_path / "seg"
    ids = []
    for k in range(4):
        write_png(root / "JPEGImages" / f"im{k}.png", 6, 4, seed=k)
        mask = torch.zeros(4, 6, dtype=torch.int64)
        mask[1, 1] = [1, 9, 0, 1][k]
        write_mask(mask, root / "SegmentationClass" / f"im{k}.png")
        ids.append(f"im{k}")
    write_mask(torch.zeros(5, 6, dtype=torch.int64), root / "SegmentationClass" / "im2.png")  # wrong size
    im3 = root / "SegmentationClass" / "im3.png"
    data = bytearray(im3.read_bytes())
    start = data.index(b"IDAT") + 4
    data[start:start + 8] = b"\xff" * 8  # a corrupt compressed stream behind an intact header
    im3.write_bytes(bytes(data))
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids) + "\n")
    (root / "classes.txt").write_text("background\nthing\n")
    report = check_dataset(root, progress=False)
    assert report.task == "segmentation" and not report.ok
    messages = {Path(e.path).name: str(e) for e in report.errors}
    assert set(messages) == {"im1.png", "im2.png", "im3.png"}
    assert "mask values must be class indices in [0, 2) or 255 (ignore), got [9]" in messages["im1.png"]
    assert "the mask is 6 x 5 but the image is 6 x 4" in messages["im2.png"]
    assert "cannot decode mask" in messages["im3.png"]
    assert report.objects_per_class == {"background": 2, "thing": 1} and report.empty_images == 1


def test_corrupt_classification_image(tmp_path):
    for k, name in enumerate(["cat", "cat", "dog"]):
        write_png(tmp_path / "c" / name / f"{k}.jpg", 16, 16, seed=k)
    _truncate(tmp_path / "c" / "dog" / "2.jpg")
    report = check_dataset(tmp_path / "c", progress=False)
    assert _located(report) == {("2.jpg", None)} and report.objects_per_class == {"cat": 2, "dog": 0}


def test_all_images_empty_is_a_warning(tmp_path):
    root = write_detection(detection_set(tmp_path / "src"), tmp_path / "yolo", "yolo", "train")
    shutil.rmtree(root / "labels")
    report = check_dataset(root, progress=False)
    assert report.ok and report.empty_images == 4
    assert any("every image of split 'train' (4) has no objects" in w for w in report.warnings)
    assert any("class 'cat' has no objects in any split" in w for w in report.warnings)
    assert report.format().splitlines()[-1].endswith("no errors (4 warnings)")


# ----------------------------------------------------------------------------------------------
# Parameters


def test_tolerance(tmp_path):
    src = detection_set(tmp_path / "src")
    for rec in src.records:  # everything inside, except one box 0.3 px past the right edge
        rec.boxes = np.clip(rec.boxes, 0, [rec.width, rec.height] * 2)
        keep = (rec.boxes[:, 2] > rec.boxes[:, 0]) & (rec.boxes[:, 3] > rec.boxes[:, 1])
        rec.boxes, rec.labels = rec.boxes[keep], rec.labels[keep]
        rec.iscrowd, rec.difficult = rec.iscrowd[keep], rec.difficult[keep]
    src.records[2].boxes[0, 2] += 0.3
    root = write_detection(src, tmp_path / "coco", "coco", "train")
    assert check_dataset(root, progress=False).ok
    strict = check_dataset(root, progress=False, tolerance=0.1)
    assert len(strict.errors) == 1 and "by more than 0.1 px" in str(strict.errors[0])
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        check_dataset(root, tolerance=-1)


def test_task_fmt_and_split(generated, tmp_path):
    only_val = check_dataset(generated / "shapes-coco", split="val", progress=False)
    assert only_val.splits == {"val": 2} and only_val.num_images == 2
    with pytest.raises(ValueError, match=r"split must be one of .*\['train', 'val'\], got 'test'"):
        check_dataset(generated / "shapes-coco", split="test")
    # a VOC folder with both layouts: detection by default, segmentation when asked
    both = tmp_path / "both"
    shutil.copytree(generated / "shapes-voc", both)
    for sub in ("SegmentationClass", "ImageSets/Segmentation", "JPEGImages"):
        shutil.copytree(generated / "segmentation" / sub, both / sub, dirs_exist_ok=True)
    (both / "classes.txt").unlink()
    detection = check_dataset(both, progress=False)
    assert detection.task == "detection" and any("task='segmentation'" in w for w in detection.warnings)
    segmentation = check_dataset(both, task="segmentation", progress=False)
    assert segmentation.task == "segmentation" and segmentation.splits == {"train": 6, "val": 2}
    assert check_dataset(generated / "shapes-coco", task="detection", fmt="coco", progress=False).ok
    with pytest.raises(ValueError, match=r"fmt of a segmentation dataset must be one of \['voc'\], got 'coco'"):
        check_dataset(generated / "segmentation", task="segmentation", fmt="coco")
    with pytest.raises(ValueError, match="task must be one of.*did you mean 'detection'"):
        check_dataset(generated / "bananas", task="detect")


def test_progress_bar(generated, capsys, monkeypatch):
    import pixbox.data.check as check

    monkeypatch.setattr(check, "is_terminal", lambda: True)
    check_dataset(generated / "bananas", progress=True)
    assert "checking bananas" in capsys.readouterr().err
    monkeypatch.setattr(check, "is_terminal", lambda: False)  # a log file: no bar
    check_dataset(generated / "bananas", progress=True)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(check, "is_terminal", lambda: True)
    check_dataset(generated / "bananas", progress=False)
    assert capsys.readouterr().err == ""


def test_format_max_errors(tmp_path):
    root = write_detection(detection_set(tmp_path / "src"), tmp_path / "voc", "voc", "train")
    report = check_dataset(root, progress=False)
    assert len(report.errors) == 2
    text = report.format(max_errors=1)
    assert str(report.errors[0]) in text and str(report.errors[1]) not in text and "... and 1 more" in text
    assert str(report) == report.format()
    with pytest.raises(TypeError, match="max_errors must be an int or None"):
        report.format(max_errors=1.5)


def test_unreadable_split_is_an_error_and_the_others_are_checked(generated, tmp_path):
    root = tmp_path / "coco"
    shutil.copytree(generated / "shapes-coco", root)
    (root / "annotations" / "instances_val.json").write_text("{not json")
    report = check_dataset(root, progress=False)
    assert report.splits == {"train": 6, "val": 0} and report.num_images == 6
    assert _located(report) == {("instances_val.json", None)} and "cannot read JSON" in str(report.errors[0])


def test_classification_csv_with_missing_image(generated, tmp_path):
    ann = read_image_folder(generated / "classification" / "train")
    ann = ClassificationAnnotations(ann.class_names, ann.samples + [(tmp_path / "gone.png", 0)])
    write_classification_csv(ann, tmp_path / "cls" / "train.csv")
    report = check_dataset(tmp_path / "cls", progress=False, allow_outside=True)
    assert _located(report) == {("train.csv", "line 8")} and "gone.png" in str(report.errors[0])
