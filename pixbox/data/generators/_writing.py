"""What every dataset generator does around the drawing: option checks, per-image seeds, the
staging folder, the refusal to overwrite an existing split, and writing the splits.

**What overwrite may delete.** Each split written is recorded, file by file, in
``root/.pixbox-make.json`` (:data:`MANIFEST`). ``overwrite=True`` deletes only the files recorded
there for the split (and the folders they leave empty); it refuses, deleting nothing, when the
split's folders hold anything else (a ``train/`` folder pixbox did not write, a file added to a
generated split) or when the split was not written by a generator at all.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import yaml
from tqdm import tqdm

from pixbox._checks import check_bool, check_int, is_int
from pixbox._files import atomic_open
from pixbox.data._yaml import load_yaml
from pixbox.data.annotations import DatasetError, DetectionAnnotations, DetectionRecord
from pixbox.data.formats import write_detection
from pixbox.data.formats._common import read_ids
from pixbox.data.io import write_image
from pixbox.data.synthetic import Scene
from pixbox._console import is_terminal

__all__ = ["MANIFEST", "SPLITS", "check_options", "image_rngs", "write_detection_splits", "write_splits"]


#: The splits a generator writes, and the index each one mixes into the per-image seeds.
SPLITS: dict[str, int] = {"train": 0, "val": 1}

_MIN_IMAGE_SIZE = 32
#: The file, in the dataset folder, that lists the files each generated split consists of.
MANIFEST = ".pixbox-make.json"


def check_options(*, seed, num_train, num_val, image_size, progress, overwrite) -> None:
    """Validates the options every generator shares (see :func:`make_bananas` for their meaning)."""
    check_int(seed, "seed", low=0)
    check_int(num_train, "num_train", low=0)
    check_int(num_val, "num_val", low=0)
    check_int(image_size, "image_size", low=_MIN_IMAGE_SIZE)
    check_bool(progress, "progress")
    check_bool(overwrite, "overwrite")


def image_rngs(seed: int | Sequence[int], salt: int, count: int = 3) -> list[np.random.Generator]:
    """``count`` independent generators derived from ``seed`` (an int >= 0 or a sequence of them).

    The generators render an image from separate streams (for example background, objects and
    pixel noise), so an image drawn without its objects has the same background and noise.
    ``salt`` (one constant per generator) keeps two generators given the same seed apart.
    """
    words = [seed] if is_int(seed) else seed
    try:
        words = [check_int(w, "seed", low=0) for w in words]
    except TypeError:
        raise TypeError(f"seed must be an int >= 0 or a sequence of them, got {seed!r}") from None
    return [np.random.default_rng(s) for s in np.random.SeedSequence([salt] + words).spawn(count)]


def _split_targets(root: Path, layout: str, split: str) -> list[Path]:
    """The files and folders (existing or not) that hold ``split`` of a dataset in ``layout``."""
    if layout == "csv":
        return [root / split, root / f"bananas_{split}"]
    if layout == "coco":
        return [root / "annotations" / f"instances_{split}.json", root / "images" / split]
    if layout == "yolo":
        return [root / "images" / split, root / "labels" / split]
    if layout == "folder":
        return [root / split]
    if layout in ("voc", "voc-segmentation"):
        sets, folders = (("Main", ["Annotations"]) if layout == "voc"
                         else ("Segmentation", ["SegmentationClass"]))
        list_file = root / "ImageSets" / sets / f"{split}.txt"
        paths = [list_file]
        if list_file.is_file():
            for _, image_id in read_ids(list_file):
                if "/" in image_id or "\\" in image_id or image_id.startswith("."):
                    continue  # not an id pixbox writes; never a way out of the folders
                pattern = glob.escape(image_id) + ".*"
                paths += sorted((root / "JPEGImages").glob(pattern))
                paths += [p for folder in folders for p in sorted((root / folder).glob(pattern))]
        return paths
    raise ValueError(f"layout must be one of csv, coco, yolo, voc, voc-segmentation, folder, got {layout!r}")


def _occupied(path: Path) -> bool:
    return path.is_file() or (path.is_dir() and any(path.iterdir()))


def _yolo_config(root: Path) -> dict:
    path = root / "data.yaml"
    if not path.is_file():
        return {}
    data = load_yaml(path)
    return data if isinstance(data, dict) else {}


def _existing_split(root: Path, layout: str, split: str) -> list[str]:
    """What already holds ``split`` in ``root``: paths, or the ``data.yaml`` key of a YOLO split."""
    taken = [str(p) for p in _split_targets(root, layout, split) if _occupied(p)]
    if layout == "yolo" and split in _yolo_config(root):
        taken.insert(0, f"{root / 'data.yaml'} key {split!r}")
    return taken


def _files_of(root: Path, layout: str, split: str) -> list[str]:
    """The files and folders (relative POSIX paths, folders ending in ``/``) of ``split`` on disk now."""
    found = set()
    for path in _split_targets(root, layout, split):
        if path.is_file():
            found.add(path.relative_to(root).as_posix())
        elif path.is_dir():
            for folder, dirs, files in os.walk(path):
                found.add(Path(folder).relative_to(root).as_posix() + "/")
                found.update((Path(folder) / f).relative_to(root).as_posix() for f in files)
    return sorted(found)


def _read_manifest(root: Path) -> dict[str, list[str]]:
    path = root / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DatasetError(f"cannot read the record of generated splits: {e}", path) from None
    splits = data.get("splits") if isinstance(data, dict) else None
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        raise DatasetError("expected {'splits': {'<layout>/<split>': [file, ...]}}", path)
    return splits


def _write_manifest(root: Path, splits: dict[str, list[str]]) -> None:
    path = root / MANIFEST
    if not splits:
        path.unlink(missing_ok=True)
        return
    doc = {"about": "the files each split written by pixbox data make consists of; --overwrite deletes "
                    "only these", "splits": splits}
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)


def _removable(root: Path, layout: str, split: str, recorded: dict[str, list[str]]) -> list[str]:
    """The files ``overwrite`` deletes for ``split``; FileExistsError if it holds anything else."""
    key = f"{layout}/{split}"
    present = _files_of(root, layout, split)
    if key not in recorded:
        raise FileExistsError(
            f"{root} holds a {split!r} split ({', '.join(present[:3]) or 'a data.yaml key'}"
            f"{', ...' if len(present) > 3 else ''}) that pixbox data make did not write (it is not in "
            f"{MANIFEST}); overwrite deletes only generated splits, so remove it yourself or choose another "
            "folder")
    mine = set(recorded[key])
    foreign = [p for p in present if p not in mine]
    if foreign:
        raise FileExistsError(
            f"the {split!r} split in {root} holds {len(foreign)} file(s) that pixbox data make did not write "
            f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); overwrite deletes only generated "
            "files, so move them away first or choose another folder")
    return present  # recorded and on disk in the split's own places: a record never names other files


def _remove_split(root: Path, layout: str, split: str, files: list[str]) -> None:
    """Deletes the generated ``files`` of ``split``, then the folders they leave empty."""
    folders = set()
    for name in files:
        path = root / name
        if name.endswith("/"):
            folders.add(path)
        elif path.is_file() or path.is_symlink():
            path.unlink()
        folders.update(p for p in path.parents if p != root and root in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    config = _yolo_config(root) if layout == "yolo" else {}
    if split in config:  # YOLO lists its splits in data.yaml
        del config[split]
        (root / "data.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


@contextmanager
def _staging(root: Path, split: str) -> Iterator[Path]:
    """A fresh ``root/.staging-<split>/`` folder, removed afterwards whatever happens."""
    stage = root / f".staging-{split}"
    if stage.exists():  # left over from an interrupted run
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def write_splits(root, layout: str, counts: dict[str, int], *, overwrite: bool, progress: bool,
                 desc: str, write_split: Callable[[str, Path, tqdm], None]) -> dict[str, int]:
    """Generates the splits with a non-zero count, each through a staging folder.

    Every target split is checked before anything is written: a split that already holds files
    raises ``FileExistsError`` unless ``overwrite``, which removes its files first, and only
    when a generator wrote them all (recorded in :data:`MANIFEST`; see the module docstring).

    Args:
        root (str | PathLike): the dataset folder (created when missing).
        layout (str): ``"csv"``, ``"coco"``, ``"yolo"``, ``"voc"``, ``"voc-segmentation"`` or
            ``"folder"``: which files make up a split.
        counts (dict[str, int]): images per split, keys from :data:`SPLITS`.
        overwrite (bool): replace existing generated splits instead of refusing.
        progress (bool): show a tqdm bar per split.
        desc (str): the bar's label.
        write_split (callable): ``write_split(split, stage, bar)`` renders the split's images
            into ``stage``, calls ``bar.update`` per image and writes the split with the format
            writer (``images="move"``).

    Returns:
        dict[str, int]: images per written split.
    """
    root = Path(root)
    splits = [s for s, n in counts.items() if n > 0]
    recorded = _read_manifest(root)
    removals = {}
    for split in splits:
        taken = _existing_split(root, layout, split)
        if taken and not overwrite:
            raise FileExistsError(
                f"{root} already holds a {split!r} split ({', '.join(taken[:3])}"
                f"{', ...' if len(taken) > 3 else ''}); pass overwrite=True to replace it or choose "
                "another folder")
        if taken:
            removals[split] = _removable(root, layout, split, recorded)
    written = {}
    for split in splits:
        key = f"{layout}/{split}"
        if split in removals:
            _remove_split(root, layout, split, removals[split])
            recorded.pop(key, None)
            _write_manifest(root, recorded)
        with _staging(root, split) as stage, \
                tqdm(total=counts[split], desc=f"{desc} {split}", unit="img", disable=not progress or not is_terminal()) as bar:
            write_split(split, stage, bar)
        recorded[key] = _files_of(root, layout, split)
        _write_manifest(root, recorded)
        written[split] = counts[split]
    return written


def write_detection_splits(root, render: Callable[[str, int], Scene], *, class_names: Sequence[str],
                           fmt: str, counts: dict[str, int], progress: bool, overwrite: bool,
                           desc: str) -> dict[str, int]:
    """Renders and writes detection splits in format ``fmt`` (see :func:`write_splits`).

    ``render(split, i)`` returns image ``i`` of ``split`` as a :class:`~pixbox.data.synthetic.Scene`
    (only ``image``, ``boxes`` and ``labels`` are used); its PNG is named
    ``<split>_<i:06d>.png``, unique across splits as VOC needs.
    """
    root = Path(root)

    def write_split(split: str, stage: Path, bar: tqdm) -> None:
        records = []
        for i in range(counts[split]):
            scene = render(split, i)
            name = f"{split}_{i:06d}"
            path = write_image(scene.image, stage / f"{name}.png", compress_level=1)
            records.append(DetectionRecord(
                image=path, width=scene.image.shape[2], height=scene.image.shape[1],
                boxes=scene.boxes.double().numpy(), labels=scene.labels.numpy(), image_id=name))
            bar.update()
        annotations = DetectionAnnotations(class_names=list(class_names), records=records)
        write_detection(annotations, root, fmt, split, images="move")

    return write_splits(root, fmt, counts, overwrite=overwrite, progress=progress, desc=desc,
                        write_split=write_split)
