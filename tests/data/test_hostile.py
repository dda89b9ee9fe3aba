"""Hostile and damaged datasets: each finding of the input audit, reproduced, now refused or reported.

The last section checks that ``pixbox data check`` and the datasets training reads agree on
every damaged dataset here: ``check`` fails exactly when training refuses the data or warns
that it changes it.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixbox.cli.main import main
from pixbox.data.annotations import DatasetError, DetectionAnnotations, DetectionRecord
from pixbox.data.check import check_dataset
from pixbox.data.datasets import ClassificationDataset, DetectionDataset, SegmentationDataset
from pixbox.data.formats import convert_detection, list_splits, read_classification_csv, read_detection, write_detection
from pixbox.data.generators import make_dataset
from pixbox.data.generators._writing import MANIFEST
from pixbox.data.io import VOC_COLORMAP, MaskColorWarning, read_mask, write_mask
from pixbox.data.proposals import load_proposals
from pixbox.data.validation import validate_detection
from pixbox.engine.task import TaskData

from ._fixtures import CLASS_NAMES, assert_same, detection_set, without_crowd, write_png

_QUIET = dict(seed=0, image_size=32, progress=False)


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _coco(root: Path, images: list[tuple[str, int, int]], boxes: dict[int, list] | None = None,
          split: str = "train") -> Path:
    """A COCO split: ``images`` are ``(file_name, width, height)`` (files written when missing),
    ``boxes`` maps an image index to its ``[x, y, w, h, iscrowd]`` annotations."""
    for k, (name, w, h) in enumerate(images):
        path = Path(os.path.abspath(root / "images" / split / name))
        if not path.exists():
            write_png(path, w, h, seed=k)
    anns = []
    for i, bs in sorted((boxes or {}).items()):
        for b in bs:
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "bbox": list(b[:4]),
                         "iscrowd": b[4] if len(b) > 4 else 0})
    doc = {"images": [{"id": k + 1, "file_name": n, "width": w, "height": h} for k, (n, w, h) in enumerate(images)],
           "annotations": anns, "categories": [{"id": 1, "name": "cat"}]}
    path = root / "annotations" / f"instances_{split}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return root


# ----------------------------------------------------------------------------------------------
# 1. VOC ids with spaces: no split vanishes


def test_voc_ids_with_spaces_round_trip_from_coco(tmp_path):
    names = [("my photo.png", 30, 20), ("a  b c.png", 24, 16), ("plain.png", 20, 20), ("x 1.png", 16, 16)]
    coco = _coco(tmp_path / "coco", names, {0: [[1, 2, 10, 8]], 2: [[0, 0, 20, 20]], 3: [[3, 3, 4, 4]]})
    assert convert_detection(coco, tmp_path / "voc", to_fmt="voc") == {"train": 4}
    lines = (tmp_path / "voc" / "ImageSets" / "Main" / "train.txt").read_text().splitlines()
    assert lines == ["my photo", "a  b c", "plain", "x 1"]  # the first line has a space
    assert list_splits(tmp_path / "voc", "voc") == ["train"]
    assert_same(read_detection(coco, "coco", "train"), read_detection(tmp_path / "voc", "voc", "train"))
    report = check_dataset(tmp_path / "voc", progress=False)
    assert report.ok and report.splits == {"train": 4} and report.num_images == 4


def test_voc_class_lists_are_not_splits_and_nothing_else_vanishes(tmp_path):
    root = write_detection(detection_set(tmp_path / "src", trainable=True), tmp_path / "voc", "voc", "train")
    main_dir = root / "ImageSets" / "Main"
    (main_dir / "cat_train.txt").write_text("c10 1\na -1\nc2  0\n")  # VOC's class list: not a split
    (main_dir / "hard_train.txt").write_text("c10\n")  # a split whose name looks like one
    (main_dir / "odd.txt").write_text("c10 1\n")  # two columns but no odd's sibling: a split
    assert list_splits(root, "voc") == ["hard_train", "odd", "train"]
    assert len(read_detection(root, "voc", "hard_train")) == 1
    with pytest.raises(DatasetError, match=r"odd\.txt, line 1: annotation file .*c10 1\.xml not found"):
        read_detection(root, "voc", "odd")  # an error, never a vanished split
    report = check_dataset(root, progress=False)
    assert not report.ok and set(report.splits) == {"hard_train", "odd", "train"}


def test_voc_writer_refuses_a_split_that_would_read_as_a_class_list(tmp_path):
    src = tmp_path / "src"
    records = [DetectionRecord(image=write_png(src / f"img {k}.png", 8, 8), width=8, height=8) for k in (1, 0)]
    ann = DetectionAnnotations(class_names=["cat"], records=records)
    write_detection(ann, tmp_path / "voc", "voc", "train")
    with pytest.raises(ValueError, match=r"split 'cat_train' would read back as a VOC class list"):
        write_detection(ann, tmp_path / "voc", "voc", "cat_train")
    assert list_splits(tmp_path / "voc", "voc") == ["train"]


# ----------------------------------------------------------------------------------------------
# 2. Masks with colours off the palette


def _jpeg_damaged_mask(mask_path: Path, tmp_path: Path) -> None:
    """Rewrites a palette mask as the RGB PNG of its colours saved once through JPEG."""
    rgb = VOC_COLORMAP[read_mask(mask_path).numpy()]
    Image.fromarray(rgb).save(tmp_path / "via.jpg", quality=75)
    Image.open(tmp_path / "via.jpg").convert("RGB").save(mask_path)


def test_jpeg_damaged_mask_warns_in_training_and_fails_check(tmp_path):
    root = tmp_path / "seg"
    make_dataset("segmentation", root, num_train=2, num_val=1, **_QUIET)
    mask = root / "SegmentationClass" / "train_000000.png"
    clean = read_mask(mask)
    _jpeg_damaged_mask(mask, tmp_path)
    ds = SegmentationDataset(root, "train")
    with pytest.warns(MaskColorWarning, match=rf"{mask}: \d+\.\d% of the pixels .* became 255 \(ignore\)"):
        _, got = ds[0]
    lost = int(((clean != 0) & (clean != 255) & (got == 255)).sum())
    assert lost > 0.5 * int(((clean != 0) & (clean != 255)).sum())  # most of the objects became "ignore"
    report = check_dataset(root, progress=False)
    assert not report.ok and any("train_000000.png" in str(e) and "% of the pixels" in str(e) for e in report.errors)


def test_read_mask_unmapped_threshold(tmp_path):
    rgb = np.zeros((10, 20, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)  # 1 of 200 pixels (0.5 %) off the palette
    Image.fromarray(rgb).save(tmp_path / "m.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert int(read_mask(tmp_path / "m.png")[0, 0]) == 255  # below the default 1 %: quiet
        read_mask(tmp_path / "m.png", unmapped_threshold=1.0)
    with pytest.warns(MaskColorWarning, match=r"m\.png: 0\.5% of the pixels \(1 of 200\)"):
        read_mask(tmp_path / "m.png", unmapped_threshold=0.001)
    with pytest.raises(ValueError, match="unmapped_threshold must be <= 1"):
        read_mask(tmp_path / "m.png", unmapped_threshold=2)


# ----------------------------------------------------------------------------------------------
# 3. YAML alias bombs and names that are not strings

_BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                  + [f"{c}: &{c} [{','.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
                  + ["names: *i", "train: images/train", ""])


def _yolo(root: Path, yaml_text: str) -> Path:
    write_png(root / "images" / "train" / "a.png", 10, 10)
    (root / "labels" / "train").mkdir(parents=True)
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (root / "data.yaml").write_text(yaml_text)
    return root


def test_yaml_alias_bomb_is_refused_at_once(tmp_path):
    root = _yolo(tmp_path / "y", _BOMB)
    assert len(_BOMB) < 500  # 9 levels of 9 aliases: 9 ** 9 leaves
    start = time.perf_counter()
    for call in (lambda: list_splits(root, "yolo"), lambda: read_detection(root, "yolo", "train"),
                 lambda: DetectionDataset(root, "yolo", "train")):
        with pytest.raises(DatasetError, match=r"data\.yaml: cannot read YAML: found the alias \*a"):
            call()
    with pytest.raises(DatasetError, match="found the alias"):
        make_dataset("bananas", root, fmt="yolo", num_train=1, num_val=0, **_QUIET)
    assert time.perf_counter() - start < 5


def test_deeply_nested_yaml_is_a_dataset_error(tmp_path):
    root = _yolo(tmp_path / "y", "names: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(DatasetError, match=r"data\.yaml: cannot read YAML: nested too deeply"):
        read_detection(root, "yolo", "train")


@pytest.mark.parametrize("names, message", [
    ("[cat, 1]", r"names\[1\] must be a non-empty str .* got int 1"),
    ("[cat, yes]", r"names\[1\] must be a non-empty str .* got bool True"),
    ("[cat, [a, b]]", r"names\[1\] must be a non-empty str .* got list"),
    ("{0: cat, x: dog}", r"the keys of names must be the class ids 0, 1, ... \(integers\), got 'x'"),
    ("{0: cat, 2: dog}", r"the keys of names must be the class ids 0 \.\. 1, got \[0, 2\]"),
    ("{0: cat, 1: null}", r"names\[1\] must be a non-empty str"),
    ("[cat, cat]", r"names must be unique, got duplicates \['cat'\]"),
    ("cat", r"names must be a list of class names or a mapping"),
])
def test_yolo_names_must_be_strings(tmp_path, names, message):
    root = _yolo(tmp_path / "y", f"names: {names}\ntrain: images/train\n")
    with pytest.raises(DatasetError, match=rf"data\.yaml, key 'names': {message}"):
        read_detection(root, "yolo", "train")


def test_yolo_nc_must_match_names(tmp_path):
    root = _yolo(tmp_path / "y", "nc: 3\nnames: [cat, dog]\ntrain: images/train\n")
    with pytest.raises(DatasetError, match=r"data\.yaml, key 'nc': nc is 3 but names lists 2 classes"):
        read_detection(root, "yolo", "train")
    (root / "data.yaml").write_text("nc: 2\nnames: [cat, dog]\ntrain: images/train\n")
    assert read_detection(root, "yolo", "train").class_names == ["cat", "dog"]
    (root / "data.yaml").write_text("nc: 2\nnames: {0: cat, 1: dog}\ntrain: images/train\n")
    assert read_detection(root, "yolo", "train").class_names == ["cat", "dog"]


# ----------------------------------------------------------------------------------------------
# 4. Paths outside the dataset folder


@pytest.mark.parametrize("how", ["dotdot", "absolute"])
def test_coco_file_name_outside_the_dataset(tmp_path, how):
    secret = write_png(tmp_path / "elsewhere" / "secret.png", 12, 12)
    name = "../../../elsewhere/secret.png" if how == "dotdot" else str(secret)
    root = _coco(tmp_path / "coco", [("ok.png", 10, 10), (name, 12, 12)], {1: [[1, 1, 5, 5]]})
    with pytest.raises(DatasetError, match=r"instances_train\.json, image id 2: file_name '.*secret\.png' points "
                                           r"outside the dataset folder .*allow_outside=True"):
        read_detection(root, "coco", "train")
    assert [r.image for r in read_detection(root, "coco", "train", allow_outside=True).records][1] == secret
    with pytest.raises(DatasetError, match="points outside"):
        convert_detection(root, tmp_path / "voc", to_fmt="voc")
    assert not (tmp_path / "voc" / "JPEGImages").exists()  # nothing copied
    assert convert_detection(root, tmp_path / "voc", to_fmt="voc", allow_outside=True) == {"train": 2}
    assert not check_dataset(root, progress=False).ok
    assert check_dataset(root, progress=False, allow_outside=True).ok


def test_every_format_with_paths_refuses_outside_ones(tmp_path):
    outside = write_png(tmp_path / "elsewhere" / "x.png", 10, 10)
    ann = detection_set(tmp_path / "src", trainable=True)
    # detection CSV: img_name
    root = write_detection(ann, tmp_path / "csv", "csv", "train")
    label_csv = root / "train" / "label.csv"
    label_csv.write_text(label_csv.read_text() + "../../../elsewhere/x.png,0,1,1,5,5\n")
    with pytest.raises(DatasetError, match=r"label\.csv, line 9: img_name '\.\./\.\./\.\./elsewhere/x\.png' points"):
        read_detection(root, "csv", "train")
    assert len(read_detection(root, "csv", "train", allow_outside=True)) == 5
    # YOLO: a list file line, a split entry, the path key
    root = write_detection(ann, tmp_path / "yolo", "yolo", "train")
    (root / "list.txt").write_text(f"./images/train/a.jpg\n{outside}\n")
    (root / "data.yaml").write_text("names: [cat, dog, bird]\ntrain: list.txt\nval: ../elsewhere\n")
    with pytest.raises(DatasetError, match=r"list\.txt, line 2: image path '.*x\.png' points outside"):
        read_detection(root, "yolo", "train")
    assert len(read_detection(root, "yolo", "train", allow_outside=True)) == 2
    with pytest.raises(DatasetError, match=r"data\.yaml, key 'val': the 'val' images '.*elsewhere' points outside"):
        read_detection(root, "yolo", "val")
    (root / "data.yaml").write_text("path: ..\nnames: [cat, dog, bird]\ntrain: yolo/images/train\n")
    with pytest.raises(DatasetError, match=r"data\.yaml, key 'path': path '\.\.' points outside"):
        read_detection(root, "yolo", "train")
    # VOC: an id that climbs out of Annotations/
    root = write_detection(ann, tmp_path / "voc", "voc", "train")
    (root / "ImageSets" / "Main" / "train.txt").write_text("c10\n../../elsewhere/x\n")
    with pytest.raises(DatasetError, match=r"train\.txt, line 2: image id '\.\./\.\./elsewhere/x' points outside"):
        read_detection(root, "voc", "train")
    # classification CSV
    csv_path = tmp_path / "cls" / "train.csv"
    write_png(tmp_path / "cls" / "img" / "a.png", 8, 8)
    csv_path.write_text("path,label\nimg/a.png,cat\n../elsewhere/x.png,dog\n")
    with pytest.raises(DatasetError, match=r"train\.csv, line 3: image path '\.\./elsewhere/x\.png' points outside"):
        read_classification_csv(csv_path)
    with pytest.raises(DatasetError, match="points outside"):
        ClassificationDataset(tmp_path / "cls", "train", fmt="csv")
    assert len(read_classification_csv(csv_path, allow_outside=True)) == 2
    with pytest.raises(TypeError, match="allow_outside must be a bool, got str"):
        read_detection(root, "voc", "train", allow_outside="yes")


def test_cli_allow_outside_paths(tmp_path, capsys):
    write_png(tmp_path / "elsewhere" / "x.png", 12, 12)
    root = _coco(tmp_path / "coco", [("../../../elsewhere/x.png", 12, 12)], {0: [[1, 1, 5, 5]]})
    code, out, _ = _run(["data", "check", root, "--no-progress"], capsys)
    assert code == 1 and "--allow-outside-paths" in out and out.splitlines()[-1].startswith("FAILED")
    code, out, _ = _run(["data", "check", root, "--no-progress", "--allow-outside-paths"], capsys)
    assert code == 0 and out.splitlines()[-1].startswith("OK")
    code, _, err = _run(["data", "convert", root, tmp_path / "csv", "--to", "csv"], capsys)
    assert code == 1 and "points outside the dataset folder" in err
    code, out, _ = _run(["data", "convert", root, tmp_path / "csv", "--to", "csv", "--allow-outside-paths"], capsys)
    assert code == 0 and "train  1 image" in out
    code, _, err = _run(["data", "preview", root, "--out", tmp_path / "p.png"], capsys)
    assert code == 1 and "points outside" in err
    assert _run(["data", "preview", root, "--out", tmp_path / "p.png", "--allow-outside-paths"], capsys)[0] == 0


# ----------------------------------------------------------------------------------------------
# 6. Non-finite boxes, 7. deeply nested JSON


def test_non_finite_boxes_are_refused(tmp_path):
    root = _yolo(tmp_path / "y", "names: [cat]\ntrain: images/train\n")
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 1e308 1e308\n")  # finite, inf in pixels
    with pytest.raises(DatasetError, match=r"a\.txt, line 1: non-finite box coordinates \[-inf"):
        read_detection(root, "yolo", "train")
    assert not check_dataset(root, progress=False).ok
    image = write_png(tmp_path / "m.png", 10, 10)
    ann = DetectionAnnotations(["cat"], [DetectionRecord(image, 10, 10, boxes=[[0, 0, math.inf, 5]], labels=[0])])
    with pytest.raises(DatasetError, match=r"m\.png, box 0: non-finite box coordinates \[0, 0, inf, 5\]"):
        validate_detection(ann)
    with pytest.warns(UserWarning, match="skipped 1 problem"):
        assert validate_detection(ann, on_error="skip").num_objects() == 0


@pytest.mark.parametrize("fmt, where, old, new", [
    ("voc", "Annotations/c2.xml", "<xmax>33</xmax>", "<xmax>inf</xmax>"),
    ("csv", "train/label.csv", "c2.png,2,0,0,33,17", "c2.png,2,0,0,-inf,17"),
    ("coco", "annotations/instances_train.json", "[0.0,0.0,33.0,17.0]", "[0.0,0.0,Infinity,17.0]"),
    ("yolo", "labels/train/c2.txt", "2 0.5 0.5 1 1", "2 0.5 0.5 1 1e309"),
])
def test_every_reader_refuses_infinite_boxes(tmp_path, fmt, where, old, new):
    root = write_detection(detection_set(tmp_path / "src", trainable=True), tmp_path / fmt, fmt, "train")
    text = (root / where).read_text()
    assert old in text
    (root / where).write_text(text.replace(old, new))
    with pytest.raises(DatasetError, match=r"non-finite"):
        read_detection(root, fmt, "train")
    with pytest.raises(DatasetError, match=r"non-finite"):
        DetectionDataset(root, fmt, "train")
    assert any("non-finite" in str(e) for e in check_dataset(root, progress=False).errors)


def test_deeply_nested_json_is_a_dataset_error(tmp_path):
    path = tmp_path / "coco" / "annotations" / "instances_train.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"images": ' + "[" * 100000 + "]" * 100000 + "}")
    with pytest.raises(DatasetError, match=r"instances_train\.json: cannot read JSON: nested too deeply"):
        read_detection(tmp_path / "coco", "coco", "train")
    assert not check_dataset(tmp_path / "coco", progress=False).ok
    (tmp_path / "props.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(DatasetError, match=r"props\.json: not a proposals file: the JSON is nested too deeply"):
        load_proposals(tmp_path / "props.json")


# ----------------------------------------------------------------------------------------------
# 8. make --overwrite deletes only what pixbox wrote


def test_overwrite_never_deletes_a_folder_pixbox_did_not_write(tmp_path, capsys):
    mine = tmp_path / "data" / "train"
    (mine / "cats").mkdir(parents=True)
    (mine / "cats" / "precious.png").write_bytes(b"not generated")
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"'train' split .* that pixbox data make did not write"):
        make_dataset("classification", tmp_path / "data", num_train=2, num_val=0, overwrite=True, **_QUIET)
    code, _, err = _run(["data", "make", "classification", tmp_path / "data", "--num-train", "2", "--num-val", "0",
                         "--overwrite", "--no-progress"], capsys)
    assert code == 1 and "did not write" in err
    assert (mine / "notes.txt").read_text() == "mine" and (mine / "cats" / "precious.png").exists()


@pytest.mark.parametrize("task, fmt", [("classification", None), ("bananas", "csv"), ("bananas", "voc"),
                                       ("bananas", "yolo"), ("bananas", "coco"), ("segmentation", None)])
def test_overwrite_deletes_only_the_generated_files(tmp_path, task, fmt):
    opts = dict(num_train=2, num_val=1, **_QUIET, **({"fmt": fmt} if fmt else {}))
    make_dataset(task, tmp_path, **opts)
    recorded = json.loads((tmp_path / MANIFEST).read_text())["splits"]
    assert len(recorded) == 2
    train_png = sorted(p for p in tmp_path.rglob("train_000000.png") if "SegmentationClass" not in p.parts)[0]
    foreign = train_png.parent / "keep me.txt"
    foreign.write_text("mine")
    if train_png.parent.name == "JPEGImages":  # VOC: a folder all splits share, not the split's
        make_dataset(task, tmp_path, overwrite=True, **opts)
    else:
        with pytest.raises(FileExistsError, match=r"holds 1 file\(s\) that pixbox data make did not write .*keep me"):
            make_dataset(task, tmp_path, overwrite=True, **opts)
    assert foreign.read_text() == "mine"
    foreign.unlink()
    make_dataset(task, tmp_path, overwrite=True, **dict(opts, seed=1, num_train=1))
    assert len([p for p in tmp_path.rglob("train_*.png") if "SegmentationClass" not in p.parts]) == 1
    assert json.loads((tmp_path / MANIFEST).read_text())["splits"].keys() == recorded.keys()


def test_overwrite_never_follows_a_record_out_of_the_split(tmp_path):
    make_dataset("classification", tmp_path / "data", num_train=2, num_val=0, **_QUIET)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    manifest = tmp_path / "data" / MANIFEST
    doc = json.loads(manifest.read_text())
    doc["splits"]["folder/train"] += ["../victim.txt", str(victim)]  # a tampered record
    manifest.write_text(json.dumps(doc))
    make_dataset("classification", tmp_path / "data", num_train=1, num_val=0, overwrite=True, **_QUIET)
    assert victim.read_text() == "keep"


# ----------------------------------------------------------------------------------------------
# 9. convert counts the crowd objects it drops


def test_convert_reports_dropped_crowd_objects(tmp_path, capsys):
    root = write_detection(detection_set(tmp_path / "src"), tmp_path / "coco", "coco", "train")
    code, out, _ = _run(["data", "convert", root, tmp_path / "voc", "--to", "voc"], capsys)
    assert code == 0 and "note: " in out and "dropped 2 crowd objects (iscrowd): voc has no crowd flag" in out
    assert read_detection(tmp_path / "voc", "voc", "train").num_objects() == 4  # 6 objects, 2 of them crowd
    with pytest.warns(UserWarning, match="dropped 2 crowd objects"):
        convert_detection(root, tmp_path / "yolo", to_fmt="yolo")
    back = read_detection(tmp_path / "yolo", "yolo", "train")
    assert_same(without_crowd(read_detection(root, "coco", "train")), back)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert_detection(root, tmp_path / "coco2", to_fmt="coco")  # COCO keeps them: nothing to report


# ----------------------------------------------------------------------------------------------
# 5. check and training agree on every damaged dataset


def _detection(tmp: Path, fmt: str, **kw) -> Path:
    ann = detection_set(tmp / "src", trainable=True, **kw)
    root = write_detection(ann, tmp / fmt, fmt, "train")
    return write_detection(DetectionAnnotations(CLASS_NAMES, ann.records[2:]), root, fmt, "val")


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1))


def _csv_box_outside(tmp):
    root = _detection(tmp, "csv")
    _edit(root / "train" / "label.csv", "c2.png,2,0,0,33,17", "c2.png,2,0,0,40,17")
    return root


def _csv_degenerate_box(tmp):
    root = _detection(tmp, "csv")
    _edit(root / "train" / "label.csv", "c2.png,2,0,0,33,17", "c2.png,2,0,0,0,17")
    return root


def _csv_no_objects_at_all(tmp):
    root = _detection(tmp, "csv")
    for split in ("train", "val"):
        path = root / split / "label.csv"
        names = dict.fromkeys(line.split(",")[0] for line in path.read_text().splitlines()[1:])
        path.write_text("img_name,label,xmin,ymin,xmax,ymax\n" + "".join(f"{n},,,,,\n" for n in names))
    return root


def _voc_empty_split(tmp):
    root = _detection(tmp, "voc")
    (root / "ImageSets" / "Main" / "val.txt").write_text("")
    return root


def _voc_ids_with_spaces(tmp):
    src = detection_set(tmp / "src", trainable=True)
    for rec in src.records:
        rec.image = Path(rec.image).rename(Path(rec.image).with_name("photo " + Path(rec.image).name))
    root = write_detection(src, tmp / "voc", "voc", "train")
    return write_detection(DetectionAnnotations(CLASS_NAMES, src.records[2:]), root, "voc", "val")


def _voc_truncated_image(tmp):
    root = _detection(tmp, "voc")
    path = root / "JPEGImages" / "c10.png"
    path.write_bytes(path.read_bytes()[:-200])
    return root


def _coco_size_mismatch(tmp):
    root = _detection(tmp, "coco")
    _edit(root / "annotations" / "instances_val.json", '"width":33', '"width":66')
    return root


def _coco_file_outside(tmp):
    root = _detection(tmp, "coco")
    write_png(tmp / "elsewhere" / "x.png", 33, 17)
    _edit(root / "annotations" / "instances_val.json", '"file_name":"c2.png"', '"file_name":"../../../elsewhere/x.png"')
    return root


def _yolo_split_outside(tmp):
    root = _detection(tmp, "yolo")
    write_png(tmp / "etc" / "passwd.png", 8, 8)
    _edit(root / "data.yaml", "val: val.txt", f"val: {tmp / 'etc'}")
    return root


def _yolo_nc_mismatch(tmp):
    root = _detection(tmp, "yolo")
    _edit(root / "data.yaml", "nc: 3", "nc: 4")
    return root


def _yolo_huge_box(tmp):
    root = _detection(tmp, "yolo")
    (root / "labels" / "val" / "c2.txt").write_text("2 0.5 0.5 1e308 1\n")
    return root


def _classification(tmp, val_labels=("cat", "dog"), val_path="img/v1.png") -> Path:
    root = tmp / "cls"
    for name in ("t1", "t2", "v1", "v2"):
        write_png(root / "img" / f"{name}.png", 12, 10)
    write_png(tmp / "x" / "v1.png", 12, 10)  # an image outside the dataset folder
    (root / "train.csv").write_text("path,label\nimg/t1.png,cat\nimg/t2.png,dog\n")
    rows = [f"{val_path},{val_labels[0]}"] + ([f"img/v2.png,{val_labels[1]}"] if len(val_labels) > 1 else [])
    (root / "val.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    return root


def _segmentation(tmp, damage=None) -> Path:
    root = tmp / "seg"
    make_dataset("segmentation", root, num_train=2, num_val=1, **_QUIET)
    mask = root / "SegmentationClass" / "val_000000.png"
    if damage == "jpeg":
        _jpeg_damaged_mask(mask, tmp)
    elif damage == "values":
        values = read_mask(mask).numpy()
        values[0, :4] = 9  # the generated set has 6 classes
        write_mask(values, mask)
    return root


_DAMAGED = {  # name: (build(tmp) -> root, task, fmt, check and training object)
    "csv good": (lambda t: _detection(t, "csv"), "detection", "csv", False),
    "voc good": (lambda t: _detection(t, "voc"), "detection", "voc", False),
    "coco good": (lambda t: _detection(t, "coco"), "detection", "coco", False),
    "yolo good": (lambda t: _detection(t, "yolo"), "detection", "yolo", False),
    "csv no objects at all": (_csv_no_objects_at_all, "detection", "csv", False),
    "voc ids with spaces": (_voc_ids_with_spaces, "detection", "voc", False),
    "csv box outside the image": (_csv_box_outside, "detection", "csv", True),
    "csv degenerate box": (_csv_degenerate_box, "detection", "csv", True),
    "voc empty split": (_voc_empty_split, "detection", "voc", True),
    "voc truncated image": (_voc_truncated_image, "detection", "voc", True),
    "coco size mismatch": (_coco_size_mismatch, "detection", "coco", True),
    "coco file_name outside": (_coco_file_outside, "detection", "coco", True),
    "yolo split outside (train: /etc)": (_yolo_split_outside, "detection", "yolo", True),
    "yolo nc != len(names)": (_yolo_nc_mismatch, "detection", "yolo", True),
    "yolo box overflowing to inf": (_yolo_huge_box, "detection", "yolo", True),
    "classification good": (_classification, "classification", "csv", False),
    "classification val missing a class": (lambda t: _classification(t, ("cat",)), "classification", "csv", True),
    "classification path outside": (lambda t: _classification(t, val_path="../x/v1.png"), "classification",
                                    "csv", True),
    "segmentation good": (_segmentation, "segmentation", "voc", False),
    "segmentation jpeg mask": (lambda t: _segmentation(t, "jpeg"), "segmentation", "voc", True),
    "segmentation mask values": (lambda t: _segmentation(t, "values"), "segmentation", "voc", True),
}


def _training_objects(root: Path, task: str, fmt: str) -> bool:
    """Whether the datasets training builds (train and val splits, every sample loaded, the class
    lists compared as :meth:`TaskData.check_classes` does) refuse the data or warn that they change it."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            sets = {}
            for split in ("train", "val"):
                if task == "detection":
                    ds = DetectionDataset(root, fmt, split)
                elif task == "segmentation":
                    ds = SegmentationDataset(root, split)
                else:
                    ds = ClassificationDataset(root, split, fmt=fmt)
                for i in range(len(ds)):
                    ds[i]
                sets[split] = ds
            TaskData(train_set=sets["train"], val_set=sets["val"]).check_classes("train", "val")
    except ValueError:  # DatasetError is a ValueError
        return True
    return bool(caught)


@pytest.mark.parametrize("name", list(_DAMAGED))
def test_check_fails_exactly_when_training_objects(tmp_path, name):
    build, task, fmt, bad = _DAMAGED[name]
    root = build(tmp_path)
    report = check_dataset(root, task=task, fmt=fmt, progress=False)
    training = _training_objects(root, task, fmt)
    assert (not report.ok, training) == (bad, bad), report.format()
