"""Region proposals for Fast R-CNN: a JSON file format, lookup by image, and selective search.

Fast R-CNN (Girshick 2015) classifies and refines regions proposed by an external method;
the book's R-CNN and Fast R-CNN use selective search (Uijlings et al. 2013), which groups
superpixels bottom-up by colour, texture, size and fill. This module stores such proposals
once per dataset and hands them to :class:`~pixbox.data.datasets.DetectionDataset`
(``proposals=``), which puts them in each target as ``"proposals"``.

The file format (UTF-8 JSON)::

    {"format": "pixbox-proposals", "version": 1, "method": "selective_search (fast)",
     "images": {"images/train/000001.png": [[x1, y1, x2, y2], ...], ...}}

- each key of ``"images"`` is the image's path relative to the dataset folder, ``/``-separated
  (a bare file name also matches when no other image of the dataset has that name);
- each value lists the image's boxes, xyxy in pixels of the ORIGINAL image (as
  :func:`pixbox.data.io.read_image` decodes it), best first; ``x1 <= x2`` and ``y1 <= y2``;
  an empty list is allowed (the image then only has its ground truth to learn from);
- ``"method"`` is free text saying how the boxes were made.

- :func:`load_proposals` / :func:`save_proposals`: read (checked) and write (atomically) the file;
- :func:`proposals_for`: the proposals of a list of images (a missing image is an error);
- :func:`selective_search`: proposals of one image with OpenCV contrib
  (``pip install opencv-contrib-python-headless``, the optional extra
  ``pixbox[selective-search]``);
- :func:`make_proposals`: selective search over the splits of a dataset, written to a file
  (``pixbox detect proposals``).

Example:
    >>> import numpy as np
    >>> path = save_proposals("props.json", {"a.png": np.array([[0, 0, 10, 10]])},  # doctest: +SKIP
    ...                       method="manual")
    >>> load_proposals(path)["a.png"].shape  # doctest: +SKIP
    (1, 4)
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path, PurePosixPath
from typing import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import check_choice, check_number
from pixbox._console import is_terminal
from pixbox._files import atomic_open
from pixbox.data.annotations import DatasetError

__all__ = [
    "FORMAT_TAG",
    "SELECTIVE_SEARCH_MODES",
    "load_proposals",
    "make_proposals",
    "proposals_for",
    "save_proposals",
    "selective_search",
]

#: The ``"format"`` value of a proposals file.
FORMAT_TAG = "pixbox-proposals"
_VERSION = 1
#: The strategies of :func:`selective_search`: ``"fast"`` (2 colour spaces, 2 similarity
#: strategies, k = 50, 100) and ``"quality"`` (more of each: slower, higher recall).
SELECTIVE_SEARCH_MODES: tuple[str, ...] = ("fast", "quality")
_INSTALL_HINT = ("selective search needs OpenCV's contrib modules (cv2.ximgproc): pip install "
                 "opencv-contrib-python-headless (or pip install 'pixbox[selective-search]')")


# ----------------------------------------------------------------------------------------------
# The file


def _normalize_key(key: str) -> str:
    key = key.replace("\\", "/")
    while key.startswith("./"):
        key = key[2:]
    return key


def _check_rows(rows, path, key: str) -> np.ndarray:
    """``rows`` as ``float32 [P, 4]``, every row 4 finite numbers with ``x1 <= x2``, ``y1 <= y2``."""
    where = f"image {key!r}"
    if not isinstance(rows, list):
        raise DatasetError(f"the proposals of an image must be a list of [x1, y1, x2, y2] boxes, got "
                           f"{type(rows).__name__}", path, where)
    for i, row in enumerate(rows):
        if (not isinstance(row, list) or len(row) != 4
                or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in row)):
            raise DatasetError(f"box {i} must be 4 finite numbers [x1, y1, x2, y2], got {row!r}", path, where)
        if row[2] < row[0] or row[3] < row[1]:
            raise DatasetError(f"box {i} {row!r} is inverted: x2 must be >= x1 and y2 >= y1", path, where)
    return np.asarray(rows, dtype=np.float32).reshape(-1, 4)


class _Loaded(dict):
    """The dict :func:`load_proposals` returns; ``source`` is the file, for error messages."""

    source: str = "proposals"


def load_proposals(path) -> dict[str, np.ndarray]:
    """Reads a proposals file (format in the module docstring) and checks every box.

    Args:
        path (str or PathLike): the JSON file.

    Returns:
        dict[str, ndarray[P, 4]]: per image key (``/``-separated, as in the file), its boxes
        as ``float32`` xyxy pixels of the original image, in the file's order.

    Raises:
        FileNotFoundError: no such file.
        DatasetError: not JSON, not a pixbox proposals file (wrong ``"format"`` or
            ``"version"``), or a bad box; the message names the file and the image key.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"proposals file {str(path)!r} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"not a JSON file: {e}", path) from None
    except RecursionError:
        raise DatasetError("not a proposals file: the JSON is nested too deeply", path) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_TAG:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise DatasetError(f"not a pixbox proposals file: expected an object with \"format\": {FORMAT_TAG!r}, "
                           f"got {got!r} (make one with `pixbox detect proposals` or save_proposals())", path)
    if doc.get("version") != _VERSION:
        raise DatasetError(f"unsupported proposals file version {doc.get('version')!r} (this pixbox reads "
                           f"version {_VERSION})", path)
    images = doc.get("images")
    if not isinstance(images, dict):
        raise DatasetError(f"\"images\" must map image paths to lists of boxes, got {type(images).__name__}", path)
    out = _Loaded()
    for key, rows in images.items():
        out[_normalize_key(key)] = _check_rows(rows, path, key)
    out.source = str(path)
    return out


def save_proposals(path, proposals: Mapping[str, object], *, method: str = "unknown") -> Path:
    """Writes a proposals file (format in the module docstring), atomically.

    Args:
        path (str or PathLike): the JSON file (its folder is created).
        proposals (mapping): image key (path relative to the dataset folder) -> boxes
            (``Tensor``, ndarray or nested list ``[P, 4]``, xyxy pixels of the original image,
            best first).
        method (str): how the boxes were made (free text).

    Returns:
        Path: ``path``; :func:`load_proposals` reads it back to the same boxes (float32).

    Raises:
        ValueError: a key that is not a str, or boxes that are not ``[P, 4]`` finite numbers
            with ``x1 <= x2`` and ``y1 <= y2``.
    """
    if not isinstance(proposals, Mapping):
        raise TypeError(f"proposals must be a dict of image key -> boxes [P, 4], got {type(proposals).__name__}")
    if not isinstance(method, str):
        raise TypeError(f"method must be a str, got {type(method).__name__}")
    images = {}
    for key, boxes in proposals.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"proposals keys must be non-empty image paths (str), got {key!r}")
        if isinstance(boxes, Tensor):
            boxes = boxes.detach().cpu().numpy()
        array = np.asarray(boxes, dtype=np.float64)
        if array.size == 0:
            array = array.reshape(0, 4)
        if array.ndim != 2 or array.shape[1] != 4:
            raise ValueError(f"proposals[{key!r}] must have shape [P, 4], got {array.shape}")
        rows = np.asarray(array, np.float32).tolist()  # float32 values: load gives the same numbers
        _check_rows(rows, "proposals", key)
        images[_normalize_key(key)] = rows
    doc = {"format": FORMAT_TAG, "version": _VERSION, "method": method, "images": images}
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, separators=(",", ":"))
    return path


def _as_proposals(proposals, name: str = "proposals") -> tuple[dict[str, np.ndarray], str]:
    """A proposals dict and where it came from, from a file path or an already loaded dict."""
    if isinstance(proposals, (str, os.PathLike)):
        return load_proposals(proposals), str(proposals)
    if isinstance(proposals, _Loaded):
        return proposals, proposals.source
    if isinstance(proposals, Mapping):
        table = {}
        for k, v in proposals.items():
            v = v.detach().cpu().numpy() if isinstance(v, Tensor) else v
            table[_normalize_key(str(k))] = np.asarray(v, np.float32).reshape(-1, 4)
        return table, name
    raise TypeError(f"{name} must be a proposals file path or a dict of image key -> boxes, "
                    f"got {type(proposals).__name__}")


# ----------------------------------------------------------------------------------------------
# Lookup


def _image_key(image, root: Path | None) -> str:
    """The key of ``image``: its path relative to ``root``, ``/``-separated (else as given)."""
    p = Path(os.path.abspath(image))
    if root is not None:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            pass
    return Path(image).as_posix()


def _find(key: str, table: Mapping[str, np.ndarray]) -> str | None:
    """The longest key of ``table`` that is ``key`` or a ``/``-aligned suffix of it."""
    parts = PurePosixPath(key).parts
    for k in range(len(parts)):
        candidate = "/".join(parts[k:])
        if candidate in table:
            return candidate
    return None


def proposals_for(images: Sequence, proposals, root=None) -> list[Tensor]:
    """The proposals of each image: by its path relative to ``root``, else by a unique file name.

    An entry matches an image when its key is the image's path relative to ``root`` or a
    ``/``-aligned end of it (``"train/a.png"`` or ``"a.png"`` match ``root/images/train/a.png``);
    the longest matching key wins. A shorter key must not be shared by two of ``images`` (two
    ``a.png`` in different folders need their relative paths in the file).

    Args:
        images (sequence): image paths (str or PathLike), or a
            :class:`~pixbox.data.annotations.DetectionAnnotations` / a dataset with
            ``annotations.records`` (then ``root`` defaults to the dataset's).
        proposals (str, PathLike or dict): a proposals file or :func:`load_proposals`'s dict.
        root (str or PathLike, optional): the dataset folder the keys are relative to.

    Returns:
        list[Tensor[P_i, 4]]: float32 xyxy pixels of the original images, one per image.

    Raises:
        DatasetError: an image without an entry (naming the image and the file), or a key that
            matches several images.
    """
    records = getattr(getattr(images, "annotations", images), "records", None)
    if records is not None:
        if root is None:
            root = getattr(images, "root", None)
        images = [r.image for r in records]
    table, source = _as_proposals(proposals)
    root = None if root is None else Path(os.path.abspath(root))
    keys = [_image_key(im, root) for im in images]
    found = [_find(k, table) for k in keys]
    users: dict[str, list[str]] = {}
    for key, hit in zip(keys, found):
        if hit is not None and hit != key:
            users.setdefault(hit, []).append(key)
    out = []
    for image, key, hit in zip(images, keys, found):
        if hit is None:
            raise DatasetError(f"no proposals for image {key!r} ({image}); every image needs an entry (an empty "
                               f"list for none): make the file for this dataset with `pixbox detect proposals`",
                               source)
        if len(users.get(hit, [])) > 1:
            raise DatasetError(f"the entry {hit!r} matches several images ({', '.join(users[hit][:3])}); use the "
                               "paths relative to the dataset folder as keys", source)
        out.append(torch.from_numpy(np.array(table[hit], np.float32).reshape(-1, 4)))
    return out


# ----------------------------------------------------------------------------------------------
# Selective search


def _ximgproc():
    try:
        import cv2
        from cv2 import ximgproc  # noqa: F401  (the contrib modules)
    except ImportError:
        raise ImportError(_INSTALL_HINT) from None
    if not hasattr(cv2, "ximgproc") or not hasattr(cv2.ximgproc, "segmentation"):
        raise ImportError(_INSTALL_HINT)
    return cv2


def _seed_c_rand(seed: int) -> None:
    """Seeds the C library's ``rand()``, which OpenCV's selective search ranking draws from
    (``cv2.setRNGSeed`` does not reach it). Skipped where the C library cannot be loaded."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        libc.srand(ctypes.c_uint(seed))
    except (OSError, AttributeError, TypeError):  # e.g. Windows: no process-wide C library handle
        pass


def _as_hwc_uint8(image) -> np.ndarray:
    """``image`` (path or Tensor[3, H, W] uint8 / float in [0, 1]) as an RGB ``uint8 [H, W, 3]`` array."""
    if isinstance(image, (str, os.PathLike)):
        from pixbox.data.io import read_image

        image = read_image(image)
    if not isinstance(image, Tensor) or image.dim() != 3 or image.shape[0] != 3:
        got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
        raise ValueError(f"image must be a path or a Tensor[3, H, W] (uint8, or float in [0, 1]), got {got}")
    if image.dtype != torch.uint8:
        if not image.is_floating_point():
            raise TypeError(f"image must be uint8 or float in [0, 1], got dtype {image.dtype}")
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return np.ascontiguousarray(image.detach().cpu().permute(1, 2, 0).numpy())


def selective_search(image, *, mode: str = "fast", max_proposals: int = 2000, max_side: int = 500,
                     min_side: int = 256, min_size: float = 4.0) -> Tensor:
    """Selective search proposals of one image (OpenCV contrib's implementation).

    The image is resized so that its long side is at most ``max_side`` (selective search is
    roughly linear in the pixels) and at least ``min_side`` (its segmentation works on a fixed
    pixel scale: on a 64-pixel image it finds about half the objects, on the same image enlarged
    to 256 nearly all), searched, and the boxes are scaled back. Boxes narrower or lower than
    ``min_size`` pixels (in the given image) are dropped, as are duplicates; the order is
    OpenCV's (its hierarchical grouping rank, best first, with the paper's random factor drawn
    from a fixed seed, so calls are reproducible), cut to ``max_proposals``. OpenCV uses as
    many threads as :func:`torch.get_num_threads`.

    Args:
        image (str, PathLike or Tensor[3, H, W]): a file, or an RGB image, ``uint8`` or float
            in [0, 1].
        mode (str): ``"fast"`` or ``"quality"`` (:data:`SELECTIVE_SEARCH_MODES`).
        max_proposals (int): the most boxes returned, >= 1.
        max_side (int): the longest long side the search runs at, >= 16.
        min_side (int): the shortest long side the search runs at (smaller images are
            enlarged), in [1, max_side].
        min_size (float): the smallest width and height kept, in pixels, >= 0.

    Returns:
        Tensor[P, 4]: float32 xyxy pixels of ``image``, ``P <= max_proposals``.

    Raises:
        ImportError: OpenCV's contrib modules (``cv2.ximgproc``) are not installed.
    """
    check_choice(mode, "mode", SELECTIVE_SEARCH_MODES)
    max_proposals = int(check_number(max_proposals, "max_proposals", low=1))
    max_side = int(check_number(max_side, "max_side", low=16))
    min_side = int(check_number(min_side, "min_side", low=1, high=max_side))
    min_size = float(check_number(min_size, "min_size", low=0))
    cv2 = _ximgproc()
    rgb = _as_hwc_uint8(image)
    h, w = rgb.shape[:2]
    scale = min(max(1.0, min_side / max(h, w)), max_side / max(h, w))
    if scale != 1.0:
        work = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    else:
        work = rgb
    sh, sw = work.shape[:2]
    cv2.setNumThreads(max(1, torch.get_num_threads()))
    _seed_c_rand(0)  # the ranking of the regions is randomized (as in the paper): reproducible calls
    search = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    search.setBaseImage(np.ascontiguousarray(work[:, :, ::-1]))  # OpenCV wants BGR
    if mode == "fast":
        search.switchToSelectiveSearchFast()
    else:
        search.switchToSelectiveSearchQuality()
    rects = np.asarray(search.process(), dtype=np.float64).reshape(-1, 4)  # [N, 4] x, y, w, h
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], axis=1)  # [N, 4] xyxy, searched image
    boxes *= np.array([w / sw, h / sh, w / sw, h / sh])
    boxes = np.clip(boxes, 0, [w, h, w, h])
    keep = (boxes[:, 2] - boxes[:, 0] >= max(min_size, 1e-6)) & (boxes[:, 3] - boxes[:, 1] >= max(min_size, 1e-6))
    boxes = np.round(boxes[keep], 2)
    _, first = np.unique(boxes, axis=0, return_index=True)
    boxes = boxes[np.sort(first)][:max_proposals]
    return torch.from_numpy(boxes.astype(np.float32)).reshape(-1, 4)


def make_proposals(data, out, *, fmt: str = "auto", splits: Sequence[str] | None = None,
                   method: str = "selective_search", mode: str = "fast", max_proposals: int = 2000,
                   max_side: int = 500, min_side: int = 256, progress: bool = True) -> Path:
    """Runs selective search over every image of a dataset's splits and writes a proposals file.

    Args:
        data (str or PathLike): the dataset folder.
        out (str or PathLike): the JSON file to write (format in the module docstring).
        fmt (str): ``"auto"`` or a format of :data:`pixbox.data.formats.DETECTION_FORMATS`.
        splits (sequence of str, optional): the splits to cover; None: all of them.
        method (str): ``"selective_search"`` (the only one today).
        mode (str): ``"fast"`` or ``"quality"`` (see :func:`selective_search`).
        max_proposals (int): boxes kept per image.
        max_side, min_side (int): the range of the long side the search runs at.
        progress (bool): show a tqdm bar (when stderr is a terminal).

    Returns:
        Path: ``out``, keyed by the image paths relative to ``data``.

    Raises:
        ImportError: OpenCV contrib is not installed.
        ValueError: an unknown split or format.
    """
    from tqdm import tqdm

    from pixbox.data.formats import DETECTION_FORMATS, detect_format, list_splits, read_detection

    check_choice(method, "method", ("selective_search",))
    check_choice(mode, "mode", SELECTIVE_SEARCH_MODES)
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be a dataset folder path, got {type(data).__name__}")
    root = Path(os.path.abspath(data))
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {str(data)!r} does not exist")
    fmt = detect_format(root) if fmt == "auto" else check_choice(fmt, "fmt", DETECTION_FORMATS)
    available = list_splits(root, fmt)
    if splits is None:
        splits = available
    elif isinstance(splits, str):
        splits = [splits]
    for split in splits:
        check_choice(split, "split", available)
    _ximgproc()  # fail before reading anything when OpenCV contrib is missing
    images: list[Path] = []
    for split in splits:
        images += [Path(r.image) for r in read_detection(root, fmt, split).records]
    table: dict[str, Tensor] = {}
    start = time.perf_counter()
    bar = tqdm(images, desc="selective search", unit="img", disable=not progress or not is_terminal())
    for image in bar:
        key = _image_key(image, root)
        if key not in table:
            table[key] = selective_search(image, mode=mode, max_proposals=max_proposals, max_side=max_side,
                                          min_side=min_side)
    bar.close()
    seconds = (time.perf_counter() - start) / max(1, len(table))
    return save_proposals(out, table, method=f"selective_search ({mode}, max_side {max_side}, {seconds:.2f} s/image)")
