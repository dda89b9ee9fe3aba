"""One COCO scoring for every detector the transfer benchmark compares (pixbox and ultralytics).

The ground truth is read with pixbox's dataset readers; detections are ``(image index, boxes
[K, 4] xyxy pixels of the original image, scores [K], labels [K])``; pycocotools' ``COCOeval``
computes mAP@[.5:.95] and mAP@0.5 with its standard settings (up to 100 detections per image
count, as in COCO; callers pass up to 300, sorted by score).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Sequence

import numpy as np


def ground_truth(data, split: str = "val", fmt: str | None = None):
    """``(records, class_names)`` of a split, read by pixbox's readers."""
    from pixbox.data.formats import detect_format, read_detection

    fmt = fmt or detect_format(data)
    ann = read_detection(data, fmt, split)
    return ann.records, ann.class_names


def _coco_gt(records, class_names) -> dict:
    images, anns = [], []
    for i, r in enumerate(records):
        images.append({"id": i, "width": r.width, "height": r.height, "file_name": Path(r.image).name})
        for box, label, crowd in zip(r.boxes, r.labels, r.iscrowd):
            x1, y1, x2, y2 = (float(v) for v in box)
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(label) + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                         "iscrowd": int(crowd)})
    return {"images": images, "annotations": anns,
            "categories": [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]}


def score(records, class_names, detections: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """COCO mAP@[.5:.95] (``map``) and mAP@0.5 (``map_50``) of ``detections`` on ``records``."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = _coco_gt(records, class_names)
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    results = []
    for image, boxes, scores, labels in detections:
        for (x1, y1, x2, y2), s, c in zip(np.asarray(boxes, float), np.asarray(scores, float), np.asarray(labels)):
            results.append({"image_id": int(image), "category_id": int(c) + 1, "score": float(s),
                            "bbox": [x1, y1, x2 - x1, y2 - y1]})
    if not results:
        return {"map": 0.0, "map_50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map": float(ev.stats[0]), "map_50": float(ev.stats[1])}
