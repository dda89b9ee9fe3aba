"""Small on-disk datasets for the format tests, written with numpy and Pillow only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from pixbox.data.annotations import DetectionAnnotations, DetectionRecord

CLASS_NAMES = ["cat", "dog", "bird"]


def write_png(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A random RGB image file, in the format of its suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(array).save(path)
    return path


def detection_set(folder: Path, *, trainable: bool = False) -> DetectionAnnotations:
    """Four images of different sizes, suffixes and names, in an order that is not sorted.

    - ``c10.png``: 3 objects of 3 classes, fractional coordinates, one difficult, one crowd,
      one box partly outside the image (kept by every format);
    - ``a.jpg``: no objects;
    - ``c2.png``: 1 object covering the whole image;
    - ``b.bmp``: 2 objects of the same class, one of zero width.

    With ``trainable``, the box outside the image ends at its border and the zero-width box is
    1 px wide, so that the datasets training reads accept every box.
    """
    folder = Path(folder)
    outside, zero_width = ([30.5, 20.75, 40.0, 30.0], [5, 5, 6, 10]) if trainable else \
        ([30.5, 20.75, 44.0, 31.5], [5, 5, 5, 10])
    specs = [
        ("c10.png", 40, 30, [[1.5, 2.25, 20.125, 15.0], [0, 0, 7, 9], outside], [0, 2, 1],
         [True, False, False], [False, True, False]),
        ("a.jpg", 24, 16, [], [], [], []),
        ("c2.png", 33, 17, [[0, 0, 33, 17]], [2], [False], [False]),
        ("b.bmp", 20, 40, [[3.3333, 4.6667, 12.1, 39.9], zero_width], [1, 1], [False, True], [True, False]),
    ]
    records = []
    for i, (name, w, h, boxes, labels, difficult, crowd) in enumerate(specs):
        path = write_png(folder / name, w, h, seed=i)
        records.append(DetectionRecord(image=path, width=w, height=h, boxes=np.array(boxes, float).reshape(-1, 4),
                                       labels=labels, difficult=difficult, iscrowd=crowd))
    return DetectionAnnotations(class_names=list(CLASS_NAMES), records=records)


def without_crowd(annotations: DetectionAnnotations) -> DetectionAnnotations:
    """The annotations without their crowd objects (what a conversion to a format without crowd keeps)."""
    records = []
    for r in annotations.records:
        keep = ~r.iscrowd
        records.append(DetectionRecord(image=r.image, width=r.width, height=r.height, boxes=r.boxes[keep],
                                       labels=r.labels[keep], difficult=r.difficult[keep]))
    return DetectionAnnotations(class_names=annotations.class_names, records=records)


def assert_same(a: DetectionAnnotations, b: DetectionAnnotations, *, difficult: bool = False,
                iscrowd: bool = False, atol: float = 1e-3) -> None:
    """Same class names, image names (in order), sizes, boxes (to ``atol`` px) and labels."""
    assert b.class_names == a.class_names
    assert [Path(r.image).name for r in b.records] == [Path(r.image).name for r in a.records]
    for ra, rb in zip(a.records, b.records):
        assert (rb.width, rb.height) == (ra.width, ra.height)
        assert rb.boxes.shape == ra.boxes.shape and rb.boxes.dtype == np.float64
        np.testing.assert_allclose(rb.boxes, ra.boxes, rtol=0, atol=atol)
        assert rb.labels.tolist() == ra.labels.tolist()
        assert rb.labels.dtype == np.int64
        if difficult:
            assert rb.difficult.tolist() == ra.difficult.tolist()
        else:
            assert not rb.difficult.any()
        if iscrowd:
            assert rb.iscrowd.tolist() == ra.iscrowd.tolist()
        else:
            assert not rb.iscrowd.any()
    assert b.problems == []
