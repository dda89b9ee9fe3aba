import json
import os
import time
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from pixbox.data.annotations import (
    ClassificationAnnotations,
    DatasetError,
    DetectionAnnotations,
    DetectionRecord,
    SegmentationAnnotations,
)
from pixbox.data.formats import (
    DETECTION_FORMATS,
    convert_detection,
    detect_format,
    list_splits,
    read_classification_csv,
    read_detection,
    read_image_folder,
    read_voc_segmentation,
    write_classification_csv,
    write_detection,
    write_image_folder,
    write_voc_segmentation,
)
from pixbox.data.io import VOC_CLASSES, VOC_COLORMAP, read_mask

from ._fixtures import CLASS_NAMES, assert_same, detection_set, without_crowd, write_png

# Which flags each format stores.
_DIFFICULT = {"voc"}
_ISCROWD = {"coco"}


@pytest.fixture
def dataset(tmp_path):
    return detection_set(tmp_path / "src")


def _flags(src_fmt, dst_fmt=None):
    dst_fmt = dst_fmt or src_fmt
    return {"difficult": src_fmt in _DIFFICULT and dst_fmt in _DIFFICULT,
            "iscrowd": src_fmt in _ISCROWD and dst_fmt in _ISCROWD}


# ----------------------------------------------------------------------------------------------
# Round trips and conversions


@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_round_trip_is_lossless(tmp_path, dataset, fmt):
    root = write_detection(dataset, tmp_path / fmt, fmt, "train")
    assert root == tmp_path / fmt
    back = read_detection(root, fmt, "train")
    assert_same(dataset, back, **_flags(fmt))
    for a, b in zip(dataset.records, back.records):
        assert b.image.is_absolute() and b.image.is_relative_to(root)
        assert b.image.suffix == a.image.suffix  # original extension kept
        assert b.image.read_bytes() == a.image.read_bytes()  # byte-identical copy
        assert a.image.exists()  # copied, not moved
    assert len(back.records[1]) == 0  # the image without objects survives
    assert detect_format(root) == fmt
    assert list_splits(root, fmt) == ["train"]


@pytest.mark.parametrize("src_fmt", DETECTION_FORMATS)
@pytest.mark.parametrize("dst_fmt", DETECTION_FORMATS)
def test_convert_every_pair(tmp_path, dataset, src_fmt, dst_fmt):
    src = write_detection(dataset, tmp_path / "a", src_fmt, "train")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        counts = convert_detection(src, tmp_path / "b", to_fmt=dst_fmt)
    assert counts == {"train": 4}
    back = read_detection(tmp_path / "b", dst_fmt, "train")
    notes = " ".join(str(w.message) for w in caught)
    if src_fmt in _ISCROWD and dst_fmt not in _ISCROWD:  # crowd objects are dropped, and counted
        assert "dropped 2 crowd objects (iscrowd)" in notes
        dataset = without_crowd(dataset)
    else:
        assert "crowd" not in notes
    lost_difficult = src_fmt in _DIFFICULT and dst_fmt not in _DIFFICULT
    assert ("kept 2 difficult objects as ordinary objects" in notes) == lost_difficult
    assert_same(dataset, back, **_flags(src_fmt, dst_fmt))


def test_convert_all_splits_and_selected_splits(tmp_path, dataset):
    val = DetectionAnnotations(class_names=CLASS_NAMES, records=dataset.records[2:])
    write_detection(dataset, tmp_path / "a", "voc", "train")
    write_detection(val, tmp_path / "a", "voc", "val")
    with pytest.warns(UserWarning, match=r"kept 3 difficult objects \(train 2, val 1\) as ordinary objects"):
        assert convert_detection(tmp_path / "a", tmp_path / "b", from_fmt="voc", to_fmt="coco") == {"train": 4,
                                                                                                  "val": 2}
    assert list_splits(tmp_path / "b", "coco") == ["train", "val"]
    assert_same(val, read_detection(tmp_path / "b", "coco", "val"))
    with pytest.warns(UserWarning, match=r"kept 1 difficult object as ordinary objects: yolo"):
        assert convert_detection(tmp_path / "a", tmp_path / "c", to_fmt="yolo", splits=["val"]) == {"val": 2}
    assert list_splits(tmp_path / "c", "yolo") == ["val"]
    with pytest.raises(ValueError, match=r"split 'tset' not found in .* splits found: \['train', 'val'\]"):
        convert_detection(tmp_path / "a", tmp_path / "d", to_fmt="yolo", splits=["tset"])
    with pytest.raises(ValueError, match="to_fmt must be one of .*did you mean 'yolo'"):
        convert_detection(tmp_path / "a", tmp_path / "d", to_fmt="yolov8")
    with pytest.raises(TypeError, match="splits must be a list of split names"):
        convert_detection(tmp_path / "a", tmp_path / "d", to_fmt="yolo", splits="val")


@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_second_split_keeps_the_first_and_merges_class_names(tmp_path, dataset, fmt):
    write_detection(dataset, tmp_path / "d", fmt, "train")
    # A second split with other images and a class list in another order plus a new class.
    other = detection_set(tmp_path / "other")
    names = ["bird", "fish", "cat", "dog"]
    old_to_new = np.array([2, 3, 0])  # cat, dog, bird -> indices in `names`
    records = [DetectionRecord(r.image, r.width, r.height, r.boxes, old_to_new[r.labels]) for r in other.records]
    records[2].labels[:] = 1  # the one object of c2.png becomes a fish
    write_detection(DetectionAnnotations(names, records), tmp_path / "d", fmt, "val")
    assert list_splits(tmp_path / "d", fmt) == ["train", "val"]
    val = read_detection(tmp_path / "d", fmt, "val")
    train = read_detection(tmp_path / "d", fmt, "train")
    assert_same(dataset, train, **_flags(fmt)) if fmt == "coco" else None
    if fmt == "coco":  # one category list per split
        assert val.class_names == names
    else:  # one class list per folder: the new name is appended, old indices stay valid
        assert train.class_names == val.class_names == CLASS_NAMES + ["fish"]
        assert [r.labels.tolist() for r in train.records] == [r.labels.tolist() for r in dataset.records]
    got = [[val.class_names[i] for i in r.labels] for r in val.records]
    assert got == [[names[i] for i in r.labels] for r in records]
    if fmt == "voc":  # VOC shares JPEGImages/: clashing ids get new ones, unless image and XML are the same
        assert [r.image.name for r in val.records] == ["c10_1.png", "a.jpg", "c2_1.png", "b_1.bmp"]
    else:
        assert [r.image.name for r in val.records] == ["c10.png", "a.jpg", "c2.png", "b.bmp"]


def test_voc_shared_image_in_two_splits_keeps_its_id(tmp_path, dataset):
    write_detection(dataset, tmp_path / "v", "voc", "train")
    train = read_detection(tmp_path / "v", "voc", "train")
    write_detection(train, tmp_path / "v", "voc", "trainval")  # same files, same annotations
    trainval = read_detection(tmp_path / "v", "voc", "trainval")
    assert [r.image for r in trainval.records] == [r.image for r in train.records]
    assert len(list((tmp_path / "v" / "JPEGImages").iterdir())) == 4


@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_move_images_and_clashing_names(tmp_path, fmt):
    first = detection_set(tmp_path / "s1")
    second = detection_set(tmp_path / "s2")  # the same file names in another folder
    ann = DetectionAnnotations(CLASS_NAMES, first.records[:2] + second.records[:2])
    write_detection(ann, tmp_path / "d", fmt, "train", images="move")
    assert not any(r.image.exists() for r in ann.records)
    back = read_detection(tmp_path / "d", fmt, "train")
    assert len(back) == 4 and len({r.image for r in back.records}) == 4
    assert [r.image.suffix for r in back.records] == [".png", ".jpg", ".png", ".jpg"]
    np.testing.assert_allclose(back.records[2].boxes, ann.records[2].boxes, atol=1e-3)


def test_yolo_order_kept_with_list_file_only_when_needed(tmp_path, dataset):
    write_detection(dataset, tmp_path / "y", "yolo", "train")
    text = (tmp_path / "y" / "data.yaml").read_text()
    assert "train: train.txt" in text  # c10, a, c2, b is not the natural order
    assert (tmp_path / "y" / "train.txt").read_text().splitlines()[0] == "./images/train/c10.png"
    natural = DetectionAnnotations(CLASS_NAMES, [dataset.records[i] for i in (1, 3, 2, 0)])  # a b c2 c10
    write_detection(natural, tmp_path / "y", "yolo", "val")
    text = (tmp_path / "y" / "data.yaml").read_text()
    assert "val: images/val" in text and not (tmp_path / "y" / "val.txt").exists()
    assert [r.image.name for r in read_detection(tmp_path / "y", "yolo", "val").records] == \
        ["a.jpg", "b.bmp", "c2.png", "c10.png"]


@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_writer_refuses_an_existing_split(tmp_path, dataset, fmt):
    write_detection(dataset, tmp_path / "d", fmt, "train")
    with pytest.raises(ValueError, match=r"split 'train' already exists in .*\(writers never overwrite a split\)"):
        write_detection(dataset, tmp_path / "d", fmt, "train")


# ----------------------------------------------------------------------------------------------
# Reading hand-written files: golden values


def _png(path, w, h):
    return write_png(path, w, h)


def test_read_d2l_banana_layout(tmp_path):
    root = tmp_path / "banana-detection"
    split = root / "bananas_train"
    _png(split / "images" / "0.png", 256, 256)
    _png(split / "images" / "1.png", 256, 256)
    _png(split / "images" / "2.png", 256, 256)
    (split / "label.csv").write_text("img_name,label,xmin,ymin,xmax,ymax\n"
                                     "0.png,0,104,20,143,58\n1.png,0,68,175,118,223\n"
                                     "2.png,,,,,\n1.png,0,1,2,3,4\n")
    (root / "train").mkdir()  # a plain folder does not win over bananas_train
    assert list_splits(root, "csv") == ["train"] and detect_format(root) == "csv"
    ann = read_detection(root, "csv")
    assert ann.class_names == ["0"]
    assert [r.image.name for r in ann.records] == ["0.png", "1.png", "2.png"]
    assert ann.records[0].image == split / "images" / "0.png"
    assert ann.records[1].boxes.tolist() == [[68, 175, 118, 223], [1, 2, 3, 4]]
    assert len(ann.records[2]) == 0 and ann.records[0].width == 256


def test_read_csv_header_in_another_order_and_no_header(tmp_path):
    _png(tmp_path / "train" / "images" / "x.png", 10, 10)
    (tmp_path / "train" / "label.csv").write_text("xmin,ymin,xmax,ymax,img_name,label\n1,2,3,4,x.png,2\n")
    ann = read_detection(tmp_path, "csv", "train")
    assert ann.class_names == ["0", "1", "2"] and ann.records[0].boxes.tolist() == [[1, 2, 3, 4]]
    (tmp_path / "train" / "label.csv").write_text("x.png,1,1.5,2,3,4\n")
    (tmp_path / "classes.txt").write_text("a\nb\n")
    ann = read_detection(tmp_path, "csv", "train")
    assert ann.class_names == ["a", "b"] and ann.records[0].labels.tolist() == [1]


def _voc_xml(objects, filename="x.png", size=(40, 30)):
    out = [f"<annotation><filename>{filename}</filename>"
           f"<size><width>{size[0]}</width><height>{size[1]}</height></size>"]
    for obj in objects:
        out.append(f"<object>{obj}</object>")
    return "".join(out) + "</annotation>"


def _voc_obj(name="cat", box=(1, 1, 10, 10), difficult=None):
    d = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    b = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return f"<name>{name}</name>{d}<bndbox>{b}</bndbox>"


def _voc_root(tmp_path, xml_by_id, split="train", classes=None):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for image_id, xml in xml_by_id.items():
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
        _png(root / "JPEGImages" / f"{image_id}.png", 40, 30)
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in xml_by_id))
    if classes is not None:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def test_read_voc_one_based_inclusive_coordinates(tmp_path):
    xml = _voc_xml([_voc_obj("dog", (1, 1, 10, 20), 1), _voc_obj("cat", (5.5, 3, 40, 30))], filename="x.png")
    root = _voc_root(tmp_path, {"x": xml})
    (root / "ImageSets" / "Main" / "cat_train.txt").write_text("x  1\n")  # a class list, not a split
    assert list_splits(root, "voc") == ["train"]
    ann = read_detection(root, "voc", "train")
    assert ann.class_names == [  # all names are VOC classes: the 20 VOC classes in VOC order
        "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
        "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor"]
    rec = ann.records[0]
    assert rec.boxes.tolist() == [[0, 0, 10, 20], [4.5, 2, 40, 30]]
    assert rec.labels.tolist() == [11, 7] and rec.difficult.tolist() == [True, False]
    assert rec.image_id == "x" and (rec.width, rec.height) == (40, 30)


def test_read_voc_class_names_sorted_or_from_classes_txt(tmp_path):
    xml = _voc_xml([_voc_obj("zebra"), _voc_obj("cat"), _voc_obj("zebra")])
    root = _voc_root(tmp_path, {"x": xml})
    ann = read_detection(root, "voc", "train")
    assert ann.class_names == ["cat", "zebra"] and ann.records[0].labels.tolist() == [1, 0, 1]
    (root / "classes.txt").write_text("zebra\nlion\ncat\n")
    ann = read_detection(root, "voc", "train")
    assert ann.class_names == ["zebra", "lion", "cat"] and ann.records[0].labels.tolist() == [0, 2, 0]


def test_read_coco_category_order_layouts_and_iscrowd(tmp_path):
    root = tmp_path / "coco"
    _png(root / "val2017" / "000001.png", 40, 30)
    _png(root / "val2017" / "000002.png", 20, 20)
    data = {
        "images": [{"id": 2, "file_name": "000002.png"},  # no size: read from the header
                   {"id": 1, "file_name": "000001.png", "width": 40, "height": 30}],
        "annotations": [{"id": 10, "image_id": 1, "category_id": 7, "bbox": [1.5, 2, 10, 5], "iscrowd": 1},
                        {"id": 11, "image_id": 1, "category_id": 1, "bbox": [0, 0, 40, 30]}],
        "categories": [{"id": 7, "name": "cat"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
    }
    (root / "annotations").mkdir()
    (root / "annotations" / "instances_val.json").write_text(json.dumps(data))
    assert detect_format(root) == "coco" and list_splits(root, "coco") == ["val"]
    ann = read_detection(root, "coco", "val")
    assert ann.class_names == ["person", "car", "cat"]  # category-id order
    assert [r.image_id for r in ann.records] == [2, 1] and len(ann.records[0]) == 0
    rec = ann.records[1]
    assert rec.boxes.tolist() == [[1.5, 2, 11.5, 7], [0, 0, 40, 30]]
    assert rec.labels.tolist() == [2, 0] and rec.iscrowd.tolist() == [True, False]
    assert rec.image == root / "val2017" / "000001.png"


def test_read_yolo_golden_names_dict_and_missing_label_file(tmp_path):
    root = tmp_path / "y"
    _png(root / "images" / "train" / "img10.png", 40, 20)
    _png(root / "images" / "train" / "img2.png", 40, 20)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "img10.txt").write_text("1 0.5 0.5 0.5 0.5\n\n0 0.25 0.75 0.5 0.5\n")
    (root / "data.yaml").write_text("train: images/train\nval: images/val\nnames:\n  0: person\n  1: car\n")
    assert list_splits(root, "yolo") == ["train", "val"] and detect_format(root) == "yolo"
    ann = read_detection(root, "yolo", "train")
    assert ann.class_names == ["person", "car"]
    assert [r.image.name for r in ann.records] == ["img2.png", "img10.png"]  # natural order
    assert len(ann.records[0]) == 0  # no label file: no objects
    assert ann.records[1].boxes.tolist() == [[10, 5, 30, 15], [0, 10, 20, 20]]
    assert ann.records[1].labels.tolist() == [1, 0]
    with pytest.raises(DatasetError, match=r"data\.yaml: the 'val' images .* do not exist"):
        read_detection(root, "yolo", "val")


def test_read_yolo_without_data_yaml(tmp_path):
    _png(tmp_path / "images" / "train" / "a.png", 10, 10)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("3 0.5 0.5 1 1\n")
    assert detect_format(tmp_path) == "yolo" and list_splits(tmp_path, "yolo") == ["train"]
    ann = read_detection(tmp_path, "yolo", "train")
    assert ann.class_names == ["0", "1", "2", "3"] and ann.records[0].boxes.tolist() == [[0, 0, 10, 10]]


# ----------------------------------------------------------------------------------------------
# Problems in dataset files


def test_voc_missing_tags_name_the_file_and_object(tmp_path):
    no_bndbox = "<name>cat</name><difficult>0</difficult>"
    no_xmax = "<name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><ymax>5</ymax></bndbox>"
    root = _voc_root(tmp_path, {"x": _voc_xml([_voc_obj(), no_bndbox]),
                                "y": _voc_xml([no_xmax, _voc_obj()])})
    with pytest.raises(DatasetError, match=r"Annotations/x\.xml, object 2: missing <bndbox> tag") as info:
        read_detection(root, "voc", "train")
    assert info.value.path == str(root / "Annotations" / "x.xml") and info.value.where == "object 2"
    with pytest.warns(UserWarning, match=r"skipped 2 problems while reading voc split 'train'") as rec:
        ann = read_detection(root, "voc", "train", on_error="skip")
    assert len(rec) == 1
    assert [str(p) for p in ann.problems] == [
        f"{root / 'Annotations' / 'x.xml'}, object 2: missing <bndbox> tag in object 'cat'",
        f"{root / 'Annotations' / 'y.xml'}, object 1: missing <xmax> tag in the <bndbox> of object 'cat'"]
    assert [len(r) for r in ann.records] == [1, 1]  # the good objects are kept


def test_coco_unknown_category_names_the_json_and_annotation_id(tmp_path, dataset):
    root = write_detection(dataset, tmp_path / "c", "coco", "train")
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 99
    data["annotations"][3]["category_id"] = 42
    path.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match=r"instances_train\.json, annotation id 1: unknown category_id 99"):
        read_detection(root, "coco", "train")
    with pytest.warns(UserWarning, match="skipped 2 problems") as rec:
        ann = read_detection(root, "coco", "train", on_error="skip")
    assert len(rec) == 1 and [p.where for p in ann.problems] == ["annotation id 1", "annotation id 4"]
    assert ann.num_objects() == dataset.num_objects() - 2


def test_yolo_line_with_4_numbers_names_the_file_and_line(tmp_path, dataset):
    root = write_detection(dataset, tmp_path / "y", "yolo", "train")
    txt = root / "labels" / "train" / "c10.txt"
    lines = txt.read_text().splitlines()
    lines[1] = "2 0.5 0.5 0.1"
    lines[2] = "7 0.5 0.5 0.1 0.1"  # class id out of range
    txt.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"c10\.txt, line 2: expected 5 numbers \(class cx cy w h\), got 4"):
        read_detection(root, "yolo", "train")
    with pytest.warns(UserWarning, match="skipped 2 problems") as rec:
        ann = read_detection(root, "yolo", "train", on_error="skip")
    assert len(rec) == 1
    assert [p.where for p in ann.problems] == ["line 2", "line 3"]
    assert "class id 7 out of range: expected an integer in [0, 3)" in str(ann.problems[1])
    assert len(ann.records[0]) == 1


def _corrupt_first_box(root, fmt):
    """Makes x2 < x1 in the first object; returns (file, where)."""
    if fmt == "csv":
        path = root / "train" / "label.csv"
        lines = path.read_text().splitlines()
        lines[1] = "c10.png,0,20,1,10,5"
        path.write_text("\n".join(lines) + "\n")
        return path, "line 2"
    if fmt == "voc":
        path = root / "Annotations" / "c10.xml"
        path.write_text(path.read_text().replace("<xmax>20.125</xmax>", "<xmax>1</xmax>"))
        return path, "object 1"
    if fmt == "coco":
        path = root / "annotations" / "instances_train.json"
        data = json.loads(path.read_text())
        data["annotations"][0]["bbox"][2] = -3
        path.write_text(json.dumps(data))
        return path, "annotation id 1"
    path = root / "labels" / "train" / "c10.txt"
    lines = path.read_text().splitlines()
    lines[0] = "0 0.5 0.5 -0.1 0.2"
    path.write_text("\n".join(lines) + "\n")
    return path, "line 1"


@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_x2_less_than_x1_names_file_and_place(tmp_path, dataset, fmt):
    root = write_detection(dataset, tmp_path / fmt, fmt, "train")
    path, where = _corrupt_first_box(root, fmt)
    with pytest.raises(DatasetError, match="x2 < x1") as info:
        read_detection(root, fmt, "train")
    assert info.value.path == str(path) and info.value.where == where
    assert str(info.value).startswith(f"{path}, {where}: ")
    with pytest.warns(UserWarning, match="skipped 1 problem while"):
        ann = read_detection(root, fmt, "train", on_error="skip")
    assert ann.num_objects() == dataset.num_objects() - 1 and len(ann) == 4


@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_missing_image_file(tmp_path, dataset, fmt):
    root = write_detection(dataset, tmp_path / fmt, fmt, "train")
    back = read_detection(root, fmt, "train")
    back.records[2].image.unlink()
    if fmt == "yolo":  # a folder listing cannot miss a file; use a list file
        (root / "train.txt").write_text("".join(f"./images/train/{r.image.name}\n" for r in back.records))
    with pytest.raises(DatasetError, match=r"image file not found: .*c2\.png$"):
        read_detection(root, fmt, "train")
    with pytest.warns(UserWarning, match="skipped 1 problem"):
        ann = read_detection(root, fmt, "train", on_error="skip")
    assert [r.image.name for r in ann.records] == ["c10.png", "a.jpg", "b.bmp"]


def test_csv_problems_all_collected(tmp_path, dataset):
    root = write_detection(dataset, tmp_path / "c", "csv", "train")
    path = root / "train" / "label.csv"
    lines = path.read_text().splitlines()
    lines[1] = "c10.png,0,1,2,abc,4"  # unparseable
    lines[2] = "c10.png,5,1,2,3,4"  # class id out of range (classes.txt has 3)
    lines[3] = "c10.png,1,1,2,inf,4"  # non-finite
    lines.append("c2.png,0,1,2")  # incomplete
    lines.append("missing.png,0,1,2,3,4")  # missing image
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"label\.csv, line 2: cannot parse the numbers"):
        read_detection(root, "csv", "train")
    with pytest.warns(UserWarning, match=r"skipped 5 problems .*; and 2 more$") as rec:
        ann = read_detection(root, "csv", "train", on_error="skip")
    assert len(rec) == 1
    assert [p.where for p in ann.problems] == ["line 2", "line 3", "line 4", "line 9", "line 10"]
    assert "class id 5 out of range" in str(ann.problems[1])
    assert "non-finite" in str(ann.problems[2])
    assert "incomplete row" in str(ann.problems[3])
    assert str(ann.problems[4]).endswith("line 10: image file not found: " + str(root / "train" / "images" / "missing.png"))
    assert [len(r) for r in ann.records] == [0, 0, 1, 2]


def test_yolo_non_finite_and_unparseable(tmp_path, dataset):
    root = write_detection(dataset, tmp_path / "y", "yolo", "train")
    (root / "labels" / "train" / "a.txt").write_text("0 nan 0.5 0.1 0.1\n0 x 0.5 0.1 0.1\n1.5 0.5 0.5 0.1 0.1\n")
    with pytest.warns(UserWarning, match="skipped 3 problems"):
        ann = read_detection(root, "yolo", "train", on_error="skip")
    assert [p.where for p in ann.problems] == ["line 1", "line 2", "line 3"]
    assert "non-finite" in str(ann.problems[0]) and "cannot parse" in str(ann.problems[1])
    assert "out of range" in str(ann.problems[2])


def test_voc_unknown_class_with_classes_txt_and_bad_xml(tmp_path):
    root = _voc_root(tmp_path, {"x": _voc_xml([_voc_obj("cat"), _voc_obj("lion")]), "y": "<annotation><"},
                     classes=["cat"])
    with pytest.raises(DatasetError, match=r"x\.xml, object 2: unknown category 'lion'"):
        read_detection(root, "voc", "train")
    with pytest.warns(UserWarning, match="skipped 2 problems"):
        ann = read_detection(root, "voc", "train", on_error="skip")
    assert "cannot parse XML" in str(ann.problems[1]) and len(ann) == 1


def test_no_warning_when_nothing_is_skipped(tmp_path, dataset):
    root = write_detection(dataset, tmp_path / "v", "voc", "train")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_detection(root, "voc", "train", on_error="skip").problems == []


def test_boxes_outside_the_image_are_kept(tmp_path, dataset):
    for fmt in DETECTION_FORMATS:
        back = read_detection(write_detection(dataset, tmp_path / fmt, fmt), fmt)
        np.testing.assert_allclose(back.records[0].boxes[2], [30.5, 20.75, 44.0, 31.5], atol=1e-3)


# ----------------------------------------------------------------------------------------------
# Argument checks


def test_argument_errors(tmp_path, dataset):
    root = write_detection(dataset, tmp_path / "d", "coco", "train")
    with pytest.raises(ValueError, match=r"fmt must be one of \['csv', 'voc', 'coco', 'yolo'\], got 'cocoo'; "
                                         r"did you mean 'coco'\?"):
        read_detection(root, "cocoo")
    with pytest.raises(ValueError, match="did you mean 'yolo'"):
        write_detection(dataset, tmp_path / "e", "yolov5")
    with pytest.raises(ValueError, match="fmt must be one of"):
        list_splits(root, "pascal")
    with pytest.raises(DatasetError, match=r"nowhere: root must be an existing dataset folder, but it does not exist"):
        read_detection(tmp_path / "nowhere", "coco")
    with pytest.raises(DatasetError, match="does not exist"):
        list_splits(tmp_path / "nowhere", "voc")
    with pytest.raises(ValueError, match=r"split 'trian' not found in .*coco layout\); splits found: \['train'\]; "
                                         r"did you mean 'train'\?"):
        read_detection(root, "coco", "trian")
    with pytest.raises(ValueError, match=r"split 'train' not found: no voc splits in .* \(looked for root/Annotations/"):
        read_detection(root, "voc", "train")
    with pytest.raises(ValueError, match=r"on_error must be one of \['raise', 'skip'\], got 'ignore'"):
        read_detection(root, "coco", on_error="ignore")
    with pytest.raises(ValueError, match=r"images must be one of \['copy', 'move'\], got 'link'"):
        write_detection(dataset, tmp_path / "e", "coco", images="link")
    with pytest.raises(TypeError, match="annotations must be a DetectionAnnotations, got list"):
        write_detection([], tmp_path / "e", "coco")
    with pytest.raises(ValueError, match="split must be a non-empty name without slashes"):
        write_detection(dataset, tmp_path / "e", "coco", "a/b")
    with pytest.raises(TypeError, match="root must be a str or os.PathLike folder path, got int"):
        read_detection(3, "coco")
    assert not (tmp_path / "e").exists()


def test_writer_validates_annotations(tmp_path, dataset):
    bad = DetectionAnnotations(["a"], [DetectionRecord(dataset.records[0].image, 40, 30, [[0, 0, 1, 1]], [1])])
    with pytest.raises(ValueError, match=r"annotations.records\[0\] .* labels must be in \[0, 1\)"):
        write_detection(bad, tmp_path / "e", "voc")
    bad = DetectionAnnotations(["a"], [DetectionRecord(dataset.records[0].image, 40, 30, [[5, 0, 1, 1]], [0])])
    with pytest.raises(ValueError, match=r"box 0 \[5.0, 0.0, 1.0, 1.0\] has x2 < x1"):
        write_detection(bad, tmp_path / "e", "csv")
    bad = DetectionAnnotations(["a"], [DetectionRecord(tmp_path / "gone.png", 4, 3)])
    with pytest.raises(DatasetError, match=r"gone\.png: image file to write into the dataset not found"):
        write_detection(bad, tmp_path / "e", "coco")
    bad = DetectionAnnotations(["a"], [DetectionRecord(dataset.records[0].image, 41, 30)])
    with pytest.raises(ValueError, match="says 41 x 30 but the image is 40 x 30"):
        write_detection(bad, tmp_path / "e", "yolo")
    with pytest.raises(ValueError, match="class names of the csv format are stored one per line"):
        write_detection(DetectionAnnotations(["a\nb"], []), tmp_path / "e", "csv")
    assert not (tmp_path / "e").exists()


def test_detect_format_error_lists_what_was_looked_for(tmp_path):
    with pytest.raises(ValueError, match=r"cannot tell the detection format .*coco: root/annotations/"
                                         r"instances_<split>\.json; voc: .*; yolo: .*; csv: "):
        detect_format(tmp_path)


# ----------------------------------------------------------------------------------------------
# Speed: headers only


def test_reading_1000_images_is_fast(tmp_path):
    base = write_png(tmp_path / "src" / "base.png", 32, 24)
    records = []
    for i in range(1000):
        path = tmp_path / "src" / f"{i}.png"
        os.link(base, path)  # cheaper than copies; the readers only need the files to exist
        records.append(DetectionRecord(path, 32, 24, [[1, 2, 10.5, 20], [0, 0, 32, 24]], [0, 1]))
    ann = DetectionAnnotations(["a", "b"], records)
    for fmt in ("voc", "yolo", "coco"):
        write_detection(ann, tmp_path / fmt, fmt, images="move")  # moving the images is cheap
        start = time.perf_counter()
        ann = read_detection(tmp_path / fmt, fmt)
        elapsed = time.perf_counter() - start
        assert len(ann) == 1000 and ann.num_objects() == 2000
        assert elapsed < 2.0, f"reading 1000 {fmt} images took {elapsed:.2f} s"


# ----------------------------------------------------------------------------------------------
# VOC segmentation


def _palette_png(path, indices):
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.asarray(indices, np.uint8), "L")
    img.putpalette(VOC_COLORMAP.reshape(-1).tolist())
    img.save(path)
    return path


def _seg_root(tmp_path):
    root = tmp_path / "seg"
    masks = {"2007_000032": np.array([[0, 1, 1], [255, 15, 0]]), "2007_000039": np.array([[20, 255], [0, 0]])}
    for image_id, m in masks.items():
        _png(root / "JPEGImages" / f"{image_id}.jpg", m.shape[1], m.shape[0])
        _palette_png(root / "SegmentationClass" / f"{image_id}.png", m)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000039\n2007_000032\n")
    return root, masks


def test_read_voc_segmentation_real_palette_pngs(tmp_path):
    root, masks = _seg_root(tmp_path)
    ann = read_voc_segmentation(root, "train")
    assert ann.class_names == list(VOC_CLASSES)
    assert [(i.name, m.name) for i, m in ann.samples] == [("2007_000039.jpg", "2007_000039.png"),
                                                          ("2007_000032.jpg", "2007_000032.png")]
    assert all(i.is_absolute() for i, _ in ann.samples)
    for _, m in ann.samples:
        assert read_mask(m).tolist() == masks[m.stem].tolist()  # boundary 255 kept, not background


def test_voc_segmentation_round_trip_and_classes(tmp_path):
    root, masks = _seg_root(tmp_path)
    ann = read_voc_segmentation(root, "train")
    out = write_voc_segmentation(ann, tmp_path / "out", "val")
    assert not (out / "classes.txt").exists()  # VOC_CLASSES is the default
    back = read_voc_segmentation(out, "val")
    assert back.class_names == ann.class_names
    assert [i.name for i, _ in back.samples] == [i.name for i, _ in ann.samples]
    for (i1, m1), (i2, m2) in zip(ann.samples, back.samples):
        assert i1.read_bytes() == i2.read_bytes() and torch.equal(read_mask(m1), read_mask(m2))
    custom = SegmentationAnnotations(["bg", "thing"], ann.samples)
    write_voc_segmentation(custom, tmp_path / "c", "train")
    assert read_voc_segmentation(tmp_path / "c", "train").class_names == ["bg", "thing"]
    with pytest.raises(ValueError, match="lists the classes"):
        write_voc_segmentation(ann, tmp_path / "c", "val")
    with pytest.raises(ValueError, match="split 'train' already exists"):
        write_voc_segmentation(custom, tmp_path / "c", "train")


def test_voc_segmentation_non_png_mask_is_reencoded(tmp_path):
    root, masks = _seg_root(tmp_path)
    m = np.array([[0, 3], [3, 255]], np.uint8)
    Image.fromarray(m).save(tmp_path / "m.bmp")
    image = _png(tmp_path / "i.png", 2, 2)
    write_voc_segmentation(SegmentationAnnotations(list(VOC_CLASSES), [(image, tmp_path / "m.bmp")]), tmp_path / "o")
    back = read_voc_segmentation(tmp_path / "o")
    assert read_mask(back.samples[0][1]).tolist() == m.tolist()


def test_voc_segmentation_problems(tmp_path):
    root, masks = _seg_root(tmp_path)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000039\nnope\n2007_000032\n")
    _palette_png(root / "SegmentationClass" / "2007_000032.png", np.zeros((5, 5)))
    with pytest.raises(DatasetError, match=r"train\.txt, line 2: image file not found"):
        read_voc_segmentation(root, "train")
    with pytest.warns(UserWarning, match="skipped 2 problems"):
        ann = read_voc_segmentation(root, "train", on_error="skip")
    assert "the mask is 5 x 5 but the image is 3 x 2" in str(ann.problems[1])
    assert len(ann) == 1
    with pytest.raises(ValueError, match=r"splits found: \['train'\]"):
        read_voc_segmentation(root, "val")
    (root / "SegmentationClass" / "2007_000039.png").unlink()
    with pytest.raises(DatasetError, match="mask file not found"):
        read_voc_segmentation(root, "train")


# ----------------------------------------------------------------------------------------------
# Classification


def _folder(tmp_path):
    root = tmp_path / "folder"
    _png(root / "dog" / "b.png", 4, 4)
    _png(root / "dog" / "A.PNG", 4, 4)  # suffix case does not matter
    _png(root / "cat" / "sub" / "c.jpg", 4, 4)  # searched recursively
    (root / "cat" / "notes.txt").write_text("not an image")
    (root / "empty").mkdir()
    (root / ".hidden").mkdir()
    return root


def test_read_image_folder(tmp_path):
    root = _folder(tmp_path)
    ann = read_image_folder(root)
    assert ann.class_names == ["cat", "dog", "empty"]
    assert [(p.relative_to(root).as_posix(), y) for p, y in ann.samples] == [
        ("cat/sub/c.jpg", 0), ("dog/A.PNG", 1), ("dog/b.png", 1)]


def test_image_folder_round_trip(tmp_path):
    ann = read_image_folder(_folder(tmp_path))
    out = write_image_folder(ann, tmp_path / "out")
    back = read_image_folder(out)
    assert back.class_names == ann.class_names
    assert [(p.name, y) for p, y in back.samples] == [(p.name, y) for p, y in ann.samples]
    with pytest.raises(ValueError, match="root must be a new or empty folder"):
        write_image_folder(ann, out)


def test_image_folder_problems(tmp_path):
    root = _folder(tmp_path)
    (root / "dog" / "bad.jpg").write_text("<html>")
    with pytest.raises(DatasetError, match=r"bad\.jpg: cannot read image"):
        read_image_folder(root)
    with pytest.warns(UserWarning, match="skipped 1 problem"):
        assert len(read_image_folder(root, on_error="skip")) == 3
    with pytest.raises(DatasetError, match="no class folders found"):
        read_image_folder(root / "empty")
    with pytest.raises(ValueError, match="class names are folder names"):
        write_image_folder(ClassificationAnnotations(["a/b"], []), tmp_path / "x")


def test_classification_csv_read_write(tmp_path):
    _png(tmp_path / "data" / "img" / "1.png", 4, 4)
    _png(tmp_path / "data" / "img" / "2.png", 4, 4)
    csv_path = tmp_path / "data" / "labels.csv"
    csv_path.write_text("path,label\nimg/2.png,zebra\nimg/1.png,ant\nimg/1.png,zebra\n")
    ann = read_classification_csv(csv_path)
    assert ann.class_names == ["ant", "zebra"]
    assert [(p.name, y) for p, y in ann.samples] == [("2.png", 1), ("1.png", 0), ("1.png", 1)]
    # No header, paths relative to another root.
    other = tmp_path / "other.csv"
    other.write_text("img/1.png,x\n")
    assert read_classification_csv(other, root=tmp_path / "data").samples == [(tmp_path / "data" / "img" / "1.png", 0)]
    out = write_classification_csv(ann, tmp_path / "out" / "c.csv")
    assert out.read_text().splitlines() == ["path,label", "../data/img/2.png,zebra", "../data/img/1.png,ant",
                                            "../data/img/1.png,zebra"]
    with pytest.raises(DatasetError, match=r"c\.csv, line 2: image path '\.\./data/img/2\.png' points outside"):
        read_classification_csv(out)  # images outside the CSV's folder: only on request
    back = read_classification_csv(out, allow_outside=True)
    assert back.class_names == ann.class_names and back.samples == ann.samples


def test_classification_csv_problems(tmp_path):
    _png(tmp_path / "1.png", 4, 4)
    path = tmp_path / "c.csv"
    path.write_text("1.png,a\n1.png\n2.png,b\n1.png,a,extra\n")
    with pytest.raises(DatasetError, match=r"c\.csv, line 2: expected 2 fields 'path,label'"):
        read_classification_csv(path)
    with pytest.warns(UserWarning, match="skipped 3 problems"):
        ann = read_classification_csv(path, on_error="skip")
    assert [p.where for p in ann.problems] == ["line 2", "line 3", "line 4"]
    assert str(ann.problems[1]) == f"{path}, line 3: image file not found: {tmp_path / '2.png'}"
    assert ann.class_names == ["a"] and len(ann) == 1
    with pytest.raises(DatasetError, match="CSV file not found"):
        read_classification_csv(tmp_path / "nope.csv")
    with pytest.raises(TypeError, match="annotations must be a ClassificationAnnotations"):
        write_classification_csv([], tmp_path / "x.csv")


@pytest.mark.parametrize("fmt", DETECTION_FORMATS)
def test_empty_split_round_trip(tmp_path, fmt):
    write_detection(DetectionAnnotations(["a", "b"]), tmp_path / fmt, fmt, "test")
    back = read_detection(tmp_path / fmt, fmt, "test")
    assert len(back) == 0 and back.class_names == ["a", "b"] and list_splits(tmp_path / fmt, fmt) == ["test"]
