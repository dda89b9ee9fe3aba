"""The transfer benchmark's shared COCO scoring (benchmarks/_coco_score.py) against known answers."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _coco_score import score  # noqa: E402

from pixbox.data.annotations import DetectionRecord  # noqa: E402


def _records():
    return [DetectionRecord("a.png", 100, 100, [[10, 10, 50, 50], [60, 60, 90, 95]], [0, 1]),
            DetectionRecord("b.png", 100, 80, [[0, 0, 30, 20]], [1])]


def test_perfect_detections_score_one_and_none_score_zero():
    recs = _records()
    perfect = [(i, r.boxes, np.ones(len(r)), r.labels) for i, r in enumerate(recs)]
    assert score(recs, ["x", "y"], perfect) == {"map": 1.0, "map_50": 1.0}
    assert score(recs, ["x", "y"], []) == {"map": 0.0, "map_50": 0.0}


def test_a_wrong_class_and_a_shifted_box_lose_their_ap():
    recs = _records()
    dets = [(0, recs[0].boxes, np.ones(2), np.array([1, 1])),  # the first box gets the wrong class
            (1, recs[1].boxes + [0, 0, 0, 10], np.ones(1), recs[1].labels)]  # IoU 20x20 / 20x30 = 0.667
    got = score(recs, ["x", "y"], dets)
    # class x: its one box is missed -> AP 0. Class y: 2 boxes and 3 detections, one of them the
    # misclassified one (a false positive); at IoU 0.5 both boxes are found with precision 2/3 at
    # every recall (interpolated) -> AP 2/3; above IoU 0.667 the shifted box is missed too
    assert abs(got["map_50"] - 1 / 3) < 1e-9
    assert 0.1 < got["map"] < 1 / 3
