"""Tests of pixbox.data.preview: exact tiles against the viz functions, layout, options, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pixbox.data import transforms as T
from pixbox.data.annotations import DatasetError
from pixbox.data.formats import read_detection, read_image_folder, read_voc_segmentation
from pixbox.data.generators import make_dataset
from pixbox.data.io import VOC_COLORMAP, read_image, read_mask
from pixbox.data.preview import PREVIEW_FORMATS, preview_dataset
from pixbox.viz import add_caption, draw_boxes, draw_masks

PAD = 8  # between cells
PAIR_PAD = 2  # between an original and its augmented version


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Tiny generated datasets: 4 + 2 images each."""
    base = tmp_path_factory.mktemp("preview-data")
    roots = {}
    for name, task, options in [
        ("shapes", "shapes", {"image_size": 64, "max_objects": 3}),
        ("bananas", "bananas", {"image_size": 48, "fmt": "yolo"}),
        ("segmentation", "segmentation", {"image_size": 48}),
        ("classification", "classification", {"image_size": 32}),
    ]:
        roots[name] = base / name
        make_dataset(task, roots[name], seed=1, num_train=4, num_val=2, progress=False, **options)
    return roots


def _png(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


def _cell(grid: torch.Tensor, k: int, cols: int, cell_h: int, cell_w: int) -> torch.Tensor:
    """Cell ``k`` of a make_grid layout with PAD spacing (``grid`` without the title band)."""
    r, c = divmod(k, cols)
    y, x = PAD + r * (cell_h + PAD), PAD + c * (cell_w + PAD)
    return grid[:, y:y + cell_h, x:x + cell_w]


def _grid(out: torch.Tensor, n: int, cols: int, cell_h: int, cell_w: int) -> torch.Tensor:
    """The grid part of a saved preview: everything below the title band."""
    rows = -(-n // cols)
    grid_h, grid_w = rows * (cell_h + PAD) + PAD, cols * (cell_w + PAD) + PAD
    assert out.shape[2] == grid_w
    return out[:, out.shape[1] - grid_h:]


def test_detection_tiles_are_the_images_with_their_boxes_and_class_names(data, tmp_path):
    out = preview_dataset(data["shapes"], tmp_path / "p.png", num=16, cols=3)
    assert out == tmp_path / "p.png"
    ann = read_detection(data["shapes"], "coco", "train")
    grid = _grid(_png(out), 4, 3, 64, 64)
    for k, rec in enumerate(ann.records):  # all 4 images, in dataset order
        expected = draw_boxes(read_image(rec.image), torch.from_numpy(rec.boxes).float(),
                              [ann.class_names[i] for i in rec.labels])
        assert torch.equal(_cell(grid, k, 3, 64, 64), expected), k
    band = _png(out)[:, :_png(out).shape[1] - grid.shape[1]]
    assert band.shape[1] > 10 and (band < 100).any()  # the title: dark text on white


def test_segmentation_tiles_are_mask_overlays_with_a_legend(data, tmp_path):
    out = _png(preview_dataset(data["segmentation"], tmp_path / "p.png", num=4, cols=4))
    ann = read_voc_segmentation(data["segmentation"], "train")
    grid_h = 48 + 2 * PAD  # one row of 48 px cells
    title_and_grid = None
    # The legend band sits below the grid: find the grid as the rows whose cells match.
    tiles = [draw_masks(read_image(i), read_mask(m)) for i, m in ann.samples]
    for top in range(out.shape[1] - grid_h + 1):
        grid = out[:, top:top + grid_h]
        if all(torch.equal(_cell(grid, k, 4, 48, 48), t) for k, t in enumerate(tiles)):
            title_and_grid = top + grid_h
            break
    assert title_and_grid is not None, "the mask overlays were not found in the preview"
    legend = out[:, title_and_grid:]
    assert legend.shape[1] > 10
    # The legend shows the VOC colour of a class present in the masks (at least one swatch pixel).
    present = sorted(set(torch.cat([read_mask(m).reshape(-1) for _, m in ann.samples]).tolist()) - {0, 255})
    color = torch.tensor(VOC_COLORMAP[present[0]].tolist(), dtype=torch.uint8)[:, None, None]
    assert (legend == color).all(dim=0).any()


def test_classification_tiles_carry_the_class_name(data, tmp_path):
    out = _png(preview_dataset(data["classification"], tmp_path / "p.png", num=4, cols=2))
    ann = read_image_folder(data["classification"] / "train")
    tiles = [add_caption(read_image(p), ann.class_names[y]) for p, y in ann.samples]
    cell_h = tiles[0].shape[1]
    grid = _grid(out, 4, 2, cell_h, 32)
    for k, tile in enumerate(tiles):
        assert torch.equal(_cell(grid, k, 2, cell_h, 32), tile)


def _plain_tiles(data, name: str) -> list[torch.Tensor]:
    """The drawn train images of a fixture dataset, in dataset order (the reference)."""
    if name == "shapes":
        ann = read_detection(data[name], "coco", "train")
        return [draw_boxes(read_image(r.image), torch.from_numpy(r.boxes).float(),
                           [ann.class_names[i] for i in r.labels]) for r in ann.records]
    if name == "segmentation":
        return [draw_masks(read_image(i), read_mask(m)) for i, m in read_voc_segmentation(data[name]).samples]
    ann = read_image_folder(data[name] / "train")
    return [add_caption(read_image(p), ann.class_names[y]) for p, y in ann.samples]


def _locate(out: torch.Tensor, n: int, cols: int, cell_h: int, cell_w: int, first: torch.Tensor) -> torch.Tensor:
    """The grid in ``out`` (title band above, maybe a legend below): found by its first tile."""
    rows = -(-n // cols)
    grid_h = rows * (cell_h + PAD) + PAD
    for top in range(out.shape[1] - grid_h + 1):
        grid = out[:, top:top + grid_h]
        if torch.equal(_cell(grid, 0, cols, cell_h, cell_w)[:, :, :first.shape[2]], first):
            return grid
    raise AssertionError("the first tile is not in the preview")


@pytest.mark.parametrize("name", ["shapes", "segmentation", "classification"])
def test_augment_puts_the_augmented_version_right_of_each_original(data, tmp_path, name):
    tiles = _plain_tiles(data, name)
    out = _png(preview_dataset(data[name], tmp_path / "p.png", num=4, cols=2, seed=3, augment=True))
    cell_h, side = tiles[0].shape[1:]
    cell_w = 2 * side + PAIR_PAD
    assert out.shape[2] == 2 * cell_w + 3 * PAD
    grid = _locate(out, 4, 2, cell_h, cell_w, tiles[0])
    for k, tile in enumerate(tiles):
        cell = _cell(grid, k, 2, cell_h, cell_w)
        assert torch.equal(cell[:, :, :side], tile)  # the original on the left
        assert (cell[:, :, side:side + PAIR_PAD] == 255).all()  # a white gap
        assert not torch.equal(cell[:, :, side + PAIR_PAD:], tile)  # the augmented version
    if name == "classification":  # the caption (class name) is kept above the augmented image
        band = cell_h - side
        assert torch.equal(cell[:, :band, side + PAIR_PAD:], tile[:, :band])


def test_same_arguments_same_file_and_the_seed_changes_it(data, tmp_path):
    a = preview_dataset(data["shapes"], tmp_path / "a.png", num=2, augment=True, seed=5)
    b = preview_dataset(data["shapes"], tmp_path / "b.png", num=2, augment=True, seed=5)
    c = preview_dataset(data["shapes"], tmp_path / "c.png", num=2, augment=True, seed=6)
    assert a.read_bytes() == b.read_bytes()
    assert not torch.equal(_png(a), _png(c))


def test_num_picks_that_many_samples_at_random(data, tmp_path):
    ann = read_detection(data["shapes"], "coco", "train")
    tiles = [draw_boxes(read_image(r.image), torch.from_numpy(r.boxes).float(),
                        [ann.class_names[i] for i in r.labels]) for r in ann.records]
    picks = set()
    for seed in range(4):
        grid = _grid(_png(preview_dataset(data["shapes"], tmp_path / "p.png", num=2, cols=2, seed=seed)),
                     2, 2, 64, 64)
        shown = [next(i for i, t in enumerate(tiles) if torch.equal(_cell(grid, k, 2, 64, 64), t))
                 for k in range(2)]
        assert shown == sorted(shown) and len(set(shown)) == 2  # drawn in dataset order
        picks.add(tuple(shown))
    assert len(picks) > 1  # the seed changes the choice


def test_cols_sets_the_layout(data, tmp_path):
    assert _png(preview_dataset(data["shapes"], tmp_path / "p.png", num=4, cols=1)).shape[2] == 64 + 2 * PAD
    assert _png(preview_dataset(data["shapes"], tmp_path / "p.png", num=4, cols=4)).shape[2] == 4 * 72 + PAD
    # default: about square, 2 x 2 for 4 samples, 2 pairs per row for 8 augmented samples
    assert _png(preview_dataset(data["shapes"], tmp_path / "p.png", num=4)).shape[2] == 2 * 72 + PAD


def test_split_and_fmt_select_the_data(data, tmp_path):
    val = _png(preview_dataset(data["bananas"], tmp_path / "v.png", split="val", cols=2))
    ann = read_detection(data["bananas"], "yolo", "val")
    grid = _grid(val, 2, 2, 48, 48)
    rec = ann.records[1]
    assert torch.equal(_cell(grid, 1, 2, 48, 48), draw_boxes(read_image(rec.image), torch.from_numpy(rec.boxes).float(),
                                                             ["banana"]))
    explicit = preview_dataset(data["bananas"], tmp_path / "e.png", split="val", cols=2, fmt="yolo")
    assert torch.equal(_png(explicit), val)
    assert PREVIEW_FORMATS == {"detection": ("csv", "voc", "coco", "yolo"), "segmentation": ("voc",),
                               "classification": ("folder", "csv")}
    for task, fmt in [("detection", None), ("detection", "yolo"), (None, "yolo")]:
        again = preview_dataset(data["bananas"], tmp_path / "t.png", split="val", cols=2, task=task, fmt=fmt)
        assert torch.equal(_png(again), val)


def test_default_split_is_train_or_the_only_split(data, tmp_path):
    train = _png(preview_dataset(data["bananas"], tmp_path / "a.png", split="train"))
    assert torch.equal(_png(preview_dataset(data["bananas"], tmp_path / "b.png")), train)
    only_val = tmp_path / "only-val"
    make_dataset("bananas", only_val, num_train=0, num_val=2, image_size=48, progress=False)
    out = _png(preview_dataset(only_val, tmp_path / "c.png", cols=2))
    ann = read_detection(only_val, "csv", "val")
    rec = ann.records[0]
    assert torch.equal(_cell(_grid(out, 2, 2, 48, 48), 0, 2, 48, 48),
                       draw_boxes(read_image(rec.image), torch.from_numpy(rec.boxes).float(), ["banana"]))


def test_classification_csv_layout(data, tmp_path):
    root = tmp_path / "csv-set"
    root.mkdir()
    ann = read_image_folder(data["classification"] / "val")
    rows = ["path,label"] + [f"{p},{ann.class_names[y]}" for p, y in ann.samples]
    (root / "val.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError, match="points outside the dataset folder"):
        preview_dataset(root, tmp_path / "p.png", cols=2)  # absolute paths elsewhere: only on request
    out = _png(preview_dataset(root, tmp_path / "p.png", cols=2, allow_outside=True))  # the only split: val
    tiles = [add_caption(read_image(p), ann.class_names[y]) for p, y in ann.samples]
    grid = _grid(out, 2, 2, tiles[0].shape[1], 32)
    for k, tile in enumerate(tiles):
        assert torch.equal(_cell(grid, k, 2, tiles[0].shape[1], 32), tile)


def test_class_folders_without_splits_are_read_from_the_root(data, tmp_path):
    via_split = _png(preview_dataset(data["classification"], tmp_path / "a.png", split="val"))
    direct = _png(preview_dataset(data["classification"] / "val", tmp_path / "b.png"))
    cell_h = add_caption(torch.zeros(3, 32, 32, dtype=torch.uint8), "x").shape[1]
    # The titles name different folders; the grids below them are the same.
    assert torch.equal(_grid(via_split, 2, 2, cell_h, 32), _grid(direct, 2, 2, cell_h, 32))


def test_large_images_are_scaled_down_with_their_boxes(tmp_path):
    root = tmp_path / "big"
    make_dataset("bananas", root, num_train=1, num_val=0, image_size=320, progress=False)
    out = _png(preview_dataset(root, tmp_path / "p.png"))
    assert out.shape[2] == 256 + 2 * PAD
    rec = read_detection(root, "csv", "train").records[0]
    image, target = T.Resize((256, 256))(read_image(rec.image), {"boxes": torch.from_numpy(rec.boxes).float()})
    assert torch.equal(out[:, -256 - PAD:-PAD, PAD:-PAD], draw_boxes(image, target["boxes"], ["banana"]))


def test_jpeg_output(data, tmp_path):
    out = preview_dataset(data["shapes"], tmp_path / "sub" / "p.jpg", num=1)
    assert Image.open(out).format == "JPEG"


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"out": "p.gif"}, ValueError, r"out must end in \.png, \.jpg or \.jpeg, got '.*p\.gif'"),
        ({"out": 3}, TypeError, "out must be a str or os.PathLike, got int"),
        ({"num": 0}, ValueError, "num must be >= 1, got 0"),
        ({"num": 2.0}, TypeError, "num must be an int"),
        ({"cols": 0}, ValueError, "cols must be >= 1, got 0"),
        ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
        ({"augment": "yes"}, TypeError, "augment must be a bool"),
        ({"fmt": "coc"}, ValueError, r"fmt must be one of .*; did you mean 'coco'\?"),
        ({"fmt": "voc"}, ValueError, r"split 'train' not found: no voc splits in .*shapes"),
        ({"fmt": "folder"}, ValueError, r"fmt must be one of \['csv', 'voc', 'coco', 'yolo'\] for a detection "
                                        r"dataset, got 'folder'"),
        ({"task": "segmentation"}, ValueError, r"split 'train' not found: no voc segmentation splits"),
        ({"task": "segmentation", "fmt": "coco"}, ValueError, r"fmt must be one of \['voc'\] for a segmentation"),
        ({"task": "detect"}, ValueError, r"task must be one of .*did you mean 'detection'\?"),
        ({"fmt": 3}, TypeError, "fmt must be a str or None, got int"),
        ({"split": 3}, TypeError, "split must be a str or None, got int"),
        ({"split": "tran"}, ValueError, r"split 'tran' not found .*did you mean 'train'\?"),
        ({"split": "a/b"}, ValueError, "split must be a non-empty name without slashes"),
    ],
)
def test_bad_arguments(data, tmp_path, kwargs, exc, match):
    args = {"root": data["shapes"], "out": tmp_path / "p.png", **kwargs}
    if isinstance(args["out"], str):
        args["out"] = str(tmp_path / args["out"])
    with pytest.raises(exc, match=match):
        preview_dataset(**args)
    assert not (tmp_path / "p.png").exists()


def test_bad_datasets(data, tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        preview_dataset(tmp_path / "nope", tmp_path / "p.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"cannot tell the task of .*empty"):
        preview_dataset(tmp_path / "empty", tmp_path / "p.png")
    (tmp_path / "classes" / "train" / "cat").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"split 'train' of .*classes \(classification, folder layout\) has no images"):
        preview_dataset(tmp_path / "classes", tmp_path / "p.png")
    with pytest.raises(ValueError, match=r"split 'val' not found .*splits found: \['train'\]"):
        preview_dataset(tmp_path / "classes", tmp_path / "p.png", split="val", fmt="folder")
    with pytest.raises(ValueError, match=r"split 'test' not found .*voc segmentation"):
        preview_dataset(data["segmentation"], tmp_path / "p.png", split="test")
    broken = tmp_path / "broken"
    make_dataset("bananas", broken, num_train=2, num_val=0, image_size=32, progress=False)
    image = next((broken / "train" / "images").iterdir())
    image.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=image.name):
        preview_dataset(broken, tmp_path / "p.png")
    assert not (tmp_path / "p.png").exists()


def test_augmented_tiles_draw_the_transformed_boxes(data, tmp_path):
    # Replaying the documented pipeline with a generator seeded like the preview's gives the
    # right-hand tiles exactly: the boxes drawn are the transformed ones, not the originals.
    from pixbox.data.preview import _augmentation

    ann = read_detection(data["shapes"], "coco", "train")
    out = _png(preview_dataset(data["shapes"], tmp_path / "p.png", num=4, cols=2, seed=7, augment=True))
    tiles = _plain_tiles(data, "shapes")
    grid = _locate(out, 4, 2, 64, 2 * 64 + PAIR_PAD, tiles[0])
    g = torch.Generator().manual_seed(7)
    for k, rec in enumerate(ann.records):
        image, target = _augmentation("detection", (64, 64), g)(
            read_image(rec.image), {"boxes": torch.from_numpy(rec.boxes).float(),
                                    "labels": torch.from_numpy(rec.labels)})
        expected = draw_boxes(image, target["boxes"], [ann.class_names[i] for i in target["labels"]])
        assert torch.equal(_cell(grid, k, 2, 64, 2 * 64 + PAIR_PAD)[:, :, 64 + PAIR_PAD:], expected), k
