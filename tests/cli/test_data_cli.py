"""``pixbox data make|convert|preview|check`` through ``pixbox.cli.main.main`` on tiny datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixbox.cli import data as data_cli
from pixbox.cli.main import main
from pixbox.data.check import TASKS as CHECK_TASKS
from pixbox.data.formats import DETECTION_FORMATS, read_detection, read_image_folder, read_voc_segmentation
from pixbox.data.generators import GENERATORS, make_dataset
from pixbox.data.preview import PREVIEW_FORMATS

TINY = ["--num-train", "3", "--num-val", "1", "--image-size", "32", "--no-progress"]


@pytest.fixture(scope="module")
def bananas(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "bananas"
    make_dataset("bananas", root, seed=0, num_train=3, num_val=2, image_size=32, progress=False)
    return root


def _run(argv, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_the_cli_names_match_the_library():
    assert data_cli._TASKS == tuple(GENERATORS)
    assert data_cli._DETECTION_FORMATS == DETECTION_FORMATS
    assert data_cli._DATA_TASKS == CHECK_TASKS == tuple(PREVIEW_FORMATS)
    assert set(data_cli._ALL_FORMATS) == {f for fmts in PREVIEW_FORMATS.values() for f in fmts}


def test_help_lists_the_actions_and_options(capsys):
    code, out, _ = _run(["data", "--help"], capsys)
    assert code == 0 and all(a in out for a in ("make", "convert", "preview", "check"))
    for action, options in [("make", ["--seed", "--num-train", "--format", "--max-objects", "--overwrite"]),
                            ("convert", ["--to", "--from", "--split"]),
                            ("preview", ["--out", "--num", "--augment", "--cols", "--seed", "--task"]),
                            ("check", ["--task", "--format", "--split", "--no-progress"])]:
        code, out, _ = _run(["data", action, "--help"], capsys)
        assert code == 0 and all(o in out for o in options), action


# ----------------------------------------------------------------------------------------------
# make


@pytest.mark.parametrize("task, reader", [
    ("bananas", lambda root: len(read_detection(root, "csv", "train"))),
    ("shapes", lambda root: len(read_detection(root, "coco", "train"))),
    ("segmentation", lambda root: len(read_voc_segmentation(root, "train"))),
    ("classification", lambda root: len(read_image_folder(root / "train"))),
])
def test_make_writes_each_task_and_says_what(tmp_path, capsys, task, reader):
    root = tmp_path / task
    code, out, err = _run(["data", "make", task, root, *TINY], capsys)
    assert code == 0, err
    layout = {"bananas": "csv", "shapes": "coco", "segmentation": "voc", "classification": "folder"}[task]
    assert out.splitlines() == [f"wrote the {task} dataset ({layout} layout, seed 0) to {root}:",
                                "  train  3 images", "  val    1 image"]
    assert err == ""  # --no-progress
    assert reader(root) == 3


def test_make_refuses_an_existing_split_unless_overwrite(tmp_path, capsys):
    root = tmp_path / "b"
    assert _run(["data", "make", "bananas", root, *TINY], capsys)[0] == 0
    code, out, err = _run(["data", "make", "bananas", root, *TINY], capsys)
    assert code == 1 and out == ""
    assert err.startswith("error: ") and "already holds a 'train' split" in err and "pass --overwrite" in err
    assert _run(["data", "make", "bananas", root, *TINY, "--seed", "1", "--overwrite"], capsys)[0] == 0


def test_make_options_change_the_dataset(tmp_path, capsys):
    def make(name, *extra):
        assert _run(["data", "make", "shapes", tmp_path / name, *TINY, *extra], capsys)[0] == 0
        return tmp_path / name

    base = make("base")
    image = sorted((base / "images" / "train").iterdir())[0]
    assert Image.open(image).size == (32, 32)
    seeded = make("seed", "--seed", "1")
    assert image.read_bytes() != (seeded / "images" / "train" / image.name).read_bytes()
    big = make("size", "--image-size", "40")
    assert Image.open(big / "images" / "train" / image.name).size == (40, 40)
    assert (make("yolo", "--format", "yolo") / "data.yaml").is_file()
    assert read_detection(base, "coco", "train").num_objects() > 0
    assert read_detection(make("empty", "--max-objects", "0"), "coco", "train").num_objects() == 0
    code, out, _ = _run(["data", "make", "shapes", tmp_path / "noval", "--num-train", "2", "--num-val", "0",
                         "--image-size", "32", "--no-progress"], capsys)
    assert code == 0 and out.splitlines()[1:] == ["  train  2 images"]
    assert not (tmp_path / "noval" / "images" / "val").exists()


def test_make_shows_progress_bars_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    import pixbox.data.generators._writing as writing

    argv = ["data", "make", "bananas", None, "--num-train", "2", "--num-val", "0", "--image-size", "32"]
    monkeypatch.setattr(writing, "is_terminal", lambda: True)
    code, _, err = _run([*argv[:3], tmp_path / "b", *argv[4:]], capsys)
    assert code == 0 and "bananas train" in err and "2/2" in err
    monkeypatch.setattr(writing, "is_terminal", lambda: False)  # a log file: no \r redraws
    code, out, err = _run([*argv[:3], tmp_path / "c", *argv[4:]], capsys)
    assert code == 0 and "\r" not in err + out and "bananas train" not in err and "train  2 images" in out


@pytest.mark.parametrize("argv, message", [
    (["banana", "d"], "argument TASK: unknown task 'banana'; did you mean 'bananas'? (choose from bananas, "),
    (["bananas"], "required: DIR"),
    (["bananas", "d", "--image-size", "16"], "argument --image-size: must be >= 32, got 16"),
    (["bananas", "d", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["bananas", "d", "--num-train", "x"], "argument --num-train: must be an integer, got 'x'"),
    (["bananas", "d", "--format", "cocoa"], "unknown format 'cocoa'; did you mean 'coco'?"),
])
def test_make_usage_errors(tmp_path, capsys, argv, message):
    code, _, err = _run(["data", "make", *argv], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("argv, message", [
    (["segmentation", "{d}", "--format", "coco"],
     "error: --format applies to the tasks bananas, shapes and photos only, not to 'segmentation'"),
    (["bananas", "{d}", "--max-objects", "2"],
     "error: --max-objects applies to the tasks shapes and photos only, not to 'bananas'"),
    (["bananas", "{file}"], "error: DIR must be a dataset folder, but "),
])
def test_make_errors_in_the_arguments_exit_1(tmp_path, capsys, argv, message):
    (tmp_path / "file").write_text("x")
    argv = [a.format(d=tmp_path / "d", file=tmp_path / "file") for a in argv]
    code, out, err = _run(["data", "make", *argv, *TINY], capsys)
    assert code == 1 and out == "" and message in err


# ----------------------------------------------------------------------------------------------
# convert


def test_convert_in_both_argument_orders(bananas, tmp_path, capsys):
    code, out, err = _run(["data", "convert", bananas, "--from", "csv", "--to", "coco", tmp_path / "a"], capsys)
    assert code == 0, err
    assert out.splitlines() == [f"converted {bananas} (csv) to {tmp_path / 'a'} (coco):",
                                "  train  3 images", "  val    2 images"]
    code, out, err = _run(["data", "convert", bananas, tmp_path / "b", "--to", "voc"], capsys)
    assert code == 0 and out.splitlines()[0] == f"converted {bananas} (csv) to {tmp_path / 'b'} (voc):"
    src, a, b = (read_detection(r, f, "val") for r, f in [(bananas, "csv"), (tmp_path / "a", "coco"),
                                                         (tmp_path / "b", "voc")])
    for rec_a, rec_b, rec_src in zip(a.records, b.records, src.records):
        np.testing.assert_allclose(rec_a.boxes, rec_src.boxes, atol=1e-3)
        np.testing.assert_allclose(rec_b.boxes, rec_src.boxes, atol=1e-3)


def test_convert_selected_splits_and_format_detection(bananas, tmp_path, capsys):
    code, out, _ = _run(["data", "convert", bananas, tmp_path / "y", "--to", "yolo", "--split", "val"], capsys)
    assert code == 0 and out.splitlines()[1:] == ["  val  2 images"]
    code, out, _ = _run(["data", "convert", tmp_path / "y", tmp_path / "c", "--to", "csv"], capsys)
    assert code == 0 and "(yolo) to" in out.splitlines()[0]
    code, out, _ = _run(["data", "convert", bananas, tmp_path / "z", "--to", "yolo", "--split", "val",
                         "--split", "train"], capsys)
    assert code == 0 and out.splitlines()[1:] == ["  val    2 images", "  train  3 images"]


def test_convert_refuses_an_existing_split(bananas, tmp_path, capsys):
    assert _run(["data", "convert", bananas, tmp_path / "a", "--to", "coco"], capsys)[0] == 0
    code, out, err = _run(["data", "convert", bananas, tmp_path / "a", "--to", "coco"], capsys)
    assert code == 1 and out == ""
    assert err.startswith("error: split 'train' already exists in ") and "writers never overwrite" in err


@pytest.mark.parametrize("argv, code, message", [
    (["{missing}", "{d}", "--to", "coco"], 1, "src must be an existing dataset folder, but it does not exist"),
    (["{empty}", "{d}", "--to", "coco"], 1, "error: cannot tell the detection format of"),
    (["{src}", "{d}", "--to", "coco", "--from", "voc"], 1, "error: no voc splits to convert in"),
    (["{src}", "{d}", "--to", "coco", "--split", "tran"], 1, "split 'tran' not found in"),
    (["{src}", "{d}", "--to", "cooc"], 2, "argument --to: unknown format 'cooc'; did you mean 'coco'?"),
    (["{src}", "{d}"], 2, "the following arguments are required: --to"),
    (["{src}", "--to", "coco"], 2, "required: DST"),
])
def test_convert_errors(bananas, tmp_path, capsys, argv, code, message):
    (tmp_path / "empty").mkdir()
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "src": bananas, "d": tmp_path / "d"}
    got, out, err = _run(["data", "convert", *[a.format(**names) for a in argv]], capsys)
    assert got == code and out == "" and message in err


# ----------------------------------------------------------------------------------------------
# preview


def test_preview_writes_the_image_and_prints_its_path(bananas, tmp_path, capsys):
    out_path = tmp_path / "p.png"
    code, out, err = _run(["data", "preview", bananas, "--out", out_path, "--cols", "3"], capsys)
    assert code == 0, err
    assert out == f"{out_path}\n"
    assert Image.open(out_path).size[0] == 3 * (32 + 8) + 8  # 3 samples of 32 px, 8 px apart
    code, _, _ = _run(["data", "preview", bananas, "--out", out_path, "--augment", "--num", "2", "--cols", "1",
                       "--seed", "4", "--split", "val"], capsys)
    assert code == 0 and Image.open(out_path).size[0] == 2 * 32 + 2 + 2 * 8  # original | augmented


def test_preview_default_output_is_preview_png(bananas, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = _run(["data", "preview", bananas, "--num", "1"], capsys)
    assert code == 0 and out == "preview.png\n" and (tmp_path / "preview.png").is_file()


@pytest.mark.parametrize("argv, code, message", [
    (["{missing}"], 1, "error: "),
    (["{src}", "--out", "{d}/p.gif"], 1, "error: out must end in .png, .jpg or .jpeg"),
    (["{src}", "--split", "vall"], 1, "split 'vall' not found in"),
    (["{src}", "--format", "folder"], 1, "fmt must be one of ['csv', 'voc', 'coco', 'yolo'] for a detection dataset"),
    (["{src}", "--num", "0"], 2, "argument --num: must be >= 1, got 0"),
    (["{src}", "--task", "segmentaton"], 2, "did you mean 'segmentation'?"),
    (["{src}", "--format", "cooc"], 2, "did you mean 'coco'?"),
])
def test_preview_errors(bananas, tmp_path, capsys, argv, code, message):
    names = {"missing": tmp_path / "missing", "src": bananas, "d": tmp_path}
    argv = [a.format(**names) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "p.png")]
    got, out, err = _run(["data", "preview", *argv], capsys)
    assert got == code and out == "" and message in err
    assert not (tmp_path / "p.png").exists()


# ----------------------------------------------------------------------------------------------
# check


def test_check_a_good_dataset_exits_0(bananas, capsys):
    code, out, err = _run(["data", "check", bananas, "--no-progress"], capsys)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0] == f"dataset: {bananas}" and "splits: train 3, val 2" in lines
    assert lines[-1] == "OK: detection dataset (csv) with 5 images in 2 splits, 5 objects, no errors"
    code, out, _ = _run(["data", "check", bananas, "--no-progress", "--split", "val", "--task", "detection",
                         "--format", "csv"], capsys)
    assert code == 0 and "splits: val 2" in out.splitlines()


def test_check_a_broken_dataset_lists_every_problem_and_exits_1(bananas, tmp_path, capsys):
    root = tmp_path / "broken"
    make_dataset("bananas", root, seed=0, num_train=3, num_val=0, image_size=32, progress=False)
    images = sorted((root / "train" / "images").iterdir())
    images[0].write_bytes(b"not an image")
    images[1].unlink()
    code, out, err = _run(["data", "check", root, "--no-progress"], capsys)
    assert code == 1 and err == ""
    assert images[0].name in out and images[1].name in out
    assert out.splitlines()[-1].startswith("FAILED: 2 errors in the detection dataset (csv)")


@pytest.mark.parametrize("argv, code, message", [
    (["{missing}"], 1, "error: "),
    (["{src}", "--split", "test"], 1, "error: split must be one of the splits of"),
    (["{src}", "--format", "folder"], 1, "must be one of ['csv', 'voc', 'coco', 'yolo'], got 'folder'"),
    (["{src}", "--task", "detectoin"], 2, "unknown task 'detectoin'; did you mean 'detection'?"),
])
def test_check_errors(bananas, tmp_path, capsys, argv, code, message):
    names = {"missing": tmp_path / "missing", "src": bananas}
    got, out, err = _run(["data", "check", *[a.format(**names) for a in argv], "--no-progress"], capsys)
    assert got == code and out == "" and message in err


def test_the_documented_preview_image_exists_and_is_small():
    root = Path(__file__).resolve().parents[2]
    page = (root / "docs" / "data.md").read_text()
    assert "](images/preview.png)" in page and "pixbox data preview" in page
    image = root / "docs" / "images" / "preview.png"
    assert image.stat().st_size < 300_000 and Image.open(image).format == "PNG"
