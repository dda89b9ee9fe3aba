import contextlib
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pixbox.data.annotations import DetectionAnnotations, DetectionRecord
from pixbox.metrics.detection import (
    DetectionEvaluator,
    bbox_eval,
    bbox_mae,
    class_error,
    cls_eval,
    save_pr_curves,
    summary_table,
    targets_from_annotations,
    voc_ap,
    voc_match,
)
from pixbox.viz import PALETTE
from reference import iou_pair

NAMES = ["square", "disc", "triangle"]


# --------------------------------------------------------------------------------------------
# Fixture: seeded random detections over several images


def _random_boxes(rng, n):
    xy = rng.uniform(0, 300, size=(n, 2))
    wh = rng.uniform(4, 150, size=(n, 2))  # areas from "small" (< 32^2) to "large" (> 96^2)
    return np.concatenate([xy, xy + wh], axis=1)


def make_fixture(seed=0, num_images=8, variant="all"):
    """Lists of numpy dicts: predictions and targets.

    Image 1 has no ground truth, image 2 no prediction; some boxes are crowd or difficult; some
    ground truth is found twice. ``variant``: ``"all"`` (every class has gt and detections),
    ``"never_predicted"`` (class 1 has gt but no detection) or ``"no_gt"`` (class 2 has
    detections but no gt).
    """
    rng = np.random.default_rng(seed)
    preds, targets = [], []
    for i in range(num_images):
        n = 0 if i == 1 else int(rng.integers(1, 7))
        boxes = _random_boxes(rng, n)
        labels = rng.integers(0, 3, size=n)
        if variant == "no_gt":
            labels = np.where(labels == 2, 0, labels)
        iscrowd = (rng.random(n) < 0.12) | ((np.arange(n) == 0) & (i == 0))
        difficult = (rng.random(n) < 0.15) | ((np.arange(n) == 0) & (i == 3))
        pb, pl = [], []
        if i != 2:
            for box, label in zip(boxes, labels):
                size = box[2:] - box[:2]
                for _ in range(int(rng.choice([0, 1, 1, 1, 2]))):  # missed, found, or found twice
                    jitter = rng.normal(0, 0.12, size=4) * np.concatenate([size, size])
                    b = box + jitter
                    b = np.concatenate([np.minimum(b[:2], b[2:]), np.maximum(b[:2], b[2:])])
                    pb.append(b)
                    pl.append(label if rng.random() > 0.1 else rng.integers(0, 3))
            m = int(rng.integers(0, 4))  # false positives
            pb.extend(_random_boxes(rng, m))
            pl.extend(rng.integers(0, 3, size=m))
        pb = np.array(pb, dtype=np.float64).reshape(-1, 4)
        pl = np.array(pl, dtype=np.int64)
        if variant == "never_predicted":
            keep = pl != 1
            pb, pl = pb[keep], pl[keep]
        scores = rng.uniform(0.01, 1.0, size=len(pb))  # continuous: no ties
        preds.append({"boxes": pb, "scores": scores, "labels": pl})
        targets.append({"boxes": boxes, "labels": labels.astype(np.int64), "iscrowd": iscrowd,
                        "difficult": difficult})
    return preds, targets


def to_torch(entries, dtype=torch.float64):
    out = []
    for e in entries:
        d = {}
        for k, v in e.items():
            t = torch.from_numpy(np.asarray(v))
            d[k] = t.to(dtype) if k in ("boxes", "scores") else t
        out.append(d)
    return out


def evaluate(preds, targets, names=NAMES):
    ev = DetectionEvaluator(names)
    ev.update(to_torch(preds), to_torch(targets))
    return ev.compute()


def pycocotools_direct(preds, targets, num_classes=3):
    """COCOeval on the fixture, written out independently of pixbox."""
    images = [{"id": i + 1} for i in range(len(targets))]
    cats = [{"id": c + 1, "name": str(c)} for c in range(num_classes)]
    anns = []
    for i, t in enumerate(targets):
        for (x1, y1, x2, y2), lab, crowd in zip(t["boxes"].tolist(), t["labels"].tolist(), t["iscrowd"].tolist()):
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": lab + 1,
                         "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                         "iscrowd": int(crowd)})
    dets = []
    for i, p in enumerate(preds):
        for (x1, y1, x2, y2), lab, s in zip(p["boxes"].tolist(), p["labels"].tolist(), p["scores"].tolist()):
            dets.append({"image_id": i + 1, "category_id": lab + 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                         "score": s})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        gt.createIndex()
        dt = gt.loadRes(dets)
        E = COCOeval(gt, dt, "bbox")
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E


# --------------------------------------------------------------------------------------------
# COCO numbers equal pycocotools'


@pytest.mark.parametrize("variant", ["all", "never_predicted", "no_gt"])
def test_coco_numbers_equal_pycocotools(variant):
    preds, targets = make_fixture(seed=1, variant=variant)
    assert any(len(t["boxes"]) == 0 for t in targets) and any(len(p["boxes"]) == 0 for p in preds)
    assert any(t["iscrowd"].any() for t in targets) and any(t["difficult"].any() for t in targets)
    m = evaluate(preds, targets)
    E = pycocotools_direct(preds, targets)
    for key, value in zip(["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
                           "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"], E.stats):
        expected = math.nan if value == -1 else float(value)
        assert m[key] == expected or (math.isnan(m[key]) and math.isnan(expected)), key
    assert 0.05 < m["map"] < 0.95  # a non-trivial fixture
    prec = E.eval["precision"]  # [T, R, K, A, M]
    for k, row in enumerate(m["per_class"]):
        p = prec[:, :, k, 0, -1]
        if variant == "no_gt" and k == 2:
            assert (p == -1).all() and math.isnan(row["ap"]) and math.isnan(row["ap50"])
            assert row["num_gt"] == 0 and row["num_pred"] > 0
        else:
            assert row["ap"] == pytest.approx(p[p > -1].mean(), abs=1e-12)
            assert row["ap50"] == pytest.approx(p[0][p[0] > -1].mean(), abs=1e-12)
    if variant == "never_predicted":
        assert m["per_class"][1]["ap"] == 0.0 and m["per_class"][1]["voc_ap50"] == 0.0
        assert m["per_class"][1]["num_pred"] == 0 and m["per_class"][1]["num_gt"] > 0


def test_fixture_exercises_many_seeds_against_pycocotools():
    for seed in range(2, 5):
        preds, targets = make_fixture(seed=seed, num_images=5)
        m = evaluate(preds, targets)
        stats = pycocotools_direct(preds, targets).stats
        assert (m["map"], m["map_50"], m["map_75"]) == tuple(float(v) for v in stats[:3])


def test_class_without_gt_is_left_out_of_the_means():
    preds, targets = make_fixture(seed=3, variant="no_gt")
    with_spurious = evaluate(preds, targets)
    no_class2 = [{k: (v[p["labels"] != 2]) for k, v in p.items()} for p in preds]
    without = evaluate(no_class2, targets)
    for key in ("map", "map_50", "map_75", "voc_ap50", "voc07_ap50"):
        assert with_spurious[key] == pytest.approx(without[key], abs=1e-12), key
    assert math.isnan(with_spurious["per_class"][2]["voc_ap50"])


def test_absent_area_ranges_are_nan_not_minus_one():
    big = np.array([[0.0, 0.0, 200.0, 150.0]])  # area 30000: "large"
    targets = [{"boxes": big, "labels": np.array([0])}]
    preds = [{"boxes": big, "scores": np.array([0.9]), "labels": np.array([0])}]
    m = evaluate(preds, targets)
    assert math.isnan(m["map_small"]) and math.isnan(m["map_medium"])
    assert m["map_large"] == pytest.approx(1.0, abs=1e-12)


def test_perfect_predictions():
    _, targets = make_fixture(seed=4)
    preds = []
    for t in targets:
        keep = ~t["iscrowd"]
        preds.append({"boxes": t["boxes"][keep], "labels": t["labels"][keep],
                      "scores": np.linspace(1.0, 0.5, int(keep.sum()))})
    m = evaluate(preds, targets)
    for key in ("map", "map_50", "map_75", "mar_100"):
        assert m[key] == pytest.approx(1.0, abs=1e-12), key  # COCOeval: tp / (tp + fp + eps)
    assert m["voc_ap50"] == 1.0 and m["voc07_ap50"] == 1.0


def test_shuffled_predictions_give_the_same_results():
    preds, targets = make_fixture(seed=5)
    rng = np.random.default_rng(0)
    shuffled = []
    for p in preds:
        perm = rng.permutation(len(p["boxes"]))
        shuffled.append({k: v[perm] for k, v in p.items()})
    a, b = evaluate(preds, targets), evaluate(shuffled, targets)
    for key in ("map", "map_50", "map_75", "map_small", "mar_100", "voc_ap50", "voc07_ap50"):
        assert a[key] == b[key] or (math.isnan(a[key]) and math.isnan(b[key])), key
    for ra, rb in zip(a["per_class"], b["per_class"]):
        assert ra == rb or all(ra[k] == rb[k] or ra[k] != ra[k] for k in ra)
    for name in NAMES:
        np.testing.assert_array_equal(a["pr_curves"][name]["precision"], b["pr_curves"][name]["precision"])


def test_batches_accumulate_and_reset_forgets(device):
    preds, targets = make_fixture(seed=6)
    whole = evaluate(preds, targets)
    ev = DetectionEvaluator(NAMES)
    tp, tt = to_torch(preds), to_torch(targets)
    tp = [{k: v.to(device) for k, v in p.items()} for p in tp]
    for lo in range(0, len(tp), 3):
        ev.update(tp[lo:lo + 3], tt[lo:lo + 3])
    assert ev.num_images == len(targets)
    parts = ev.compute()
    assert parts["map"] == whole["map"] and parts["voc_ap50"] == whole["voc_ap50"]
    ev.reset()
    assert ev.num_images == 0
    with pytest.raises(RuntimeError, match="at least one image"):
        ev.compute()


def test_float32_inputs_and_zero_predictions_everywhere():
    _, targets = make_fixture(seed=7, num_images=3)
    empty = [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}
             for _ in targets]
    ev = DetectionEvaluator(NAMES)
    ev.update(empty, to_torch(targets, torch.float32))
    m = ev.compute()
    assert m["map"] == 0.0 and m["voc_ap50"] == 0.0 and m["voc07_ap50"] == 0.0


# --------------------------------------------------------------------------------------------
# VOC


def test_voc_ap_golden_values():
    # 4 positives; detections in score order are TP, FP, TP, TP, FP.
    recall = [0.25, 0.25, 0.5, 0.75, 0.75]
    precision = [1.0, 0.5, 2 / 3, 0.75, 0.6]
    # All points: envelope 1 on (0, .25], .75 on (.25, .75], 0 after: .25 + .5 * .75.
    assert voc_ap(recall, precision, use_07_metric=False) == pytest.approx(0.625, abs=1e-15)
    # 11 points: t = 0, .1, .2 -> 1; t = .3 ... .7 -> .75; t = .8, .9, 1 -> 0.
    assert voc_ap(recall, precision, use_07_metric=True) == pytest.approx((3 + 5 * 0.75) / 11, abs=1e-15)
    # Recall levels are exactly k / 10: a recall of exactly 0.3 reaches the level 0.3.
    assert voc_ap([0.3], [1.0], use_07_metric=True) == pytest.approx(4 / 11, abs=1e-15)
    assert voc_ap([0.3], [1.0], use_07_metric=False) == pytest.approx(0.3, abs=1e-15)
    assert voc_ap([1.0], [1.0], use_07_metric=True) == pytest.approx(1.0, abs=1e-15)
    assert voc_ap([], [], use_07_metric=False) == 0.0


def _voc_ap_loops(rec, prec, use_07):
    """The devkit's definitions written as plain loops."""
    if use_07:
        total = 0.0
        for k in range(11):
            best = 0.0
            for r, p in zip(rec, prec):
                if r >= k / 10:
                    best = max(best, p)
            total += best / 11
        return total
    mrec = [0.0] + list(rec) + [1.0]
    mpre = [0.0] + list(prec) + [0.0]
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    return sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])


@pytest.mark.parametrize("use_07", [True, False])
def test_voc_ap_matches_loop_reference(use_07):
    rng = np.random.default_rng(0)
    for _ in range(20):
        tp = rng.random(int(rng.integers(1, 30))) < 0.6
        npos = int(tp.sum()) + int(rng.integers(0, 5)) or 1
        rec = np.cumsum(tp) / npos
        prec = np.cumsum(tp) / np.arange(1, len(tp) + 1)
        assert voc_ap(torch.from_numpy(rec), prec, use_07_metric=use_07) == pytest.approx(
            _voc_ap_loops(rec.tolist(), prec.tolist(), use_07), abs=1e-12)


def test_voc_match_small_example():
    gt = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0], [50.0, 0.0, 60.0, 10.0]])
    targets = [{"boxes": torch.tensor(gt), "labels": torch.tensor([0, 0, 0]),
                "difficult": torch.tensor([False, True, False])}]
    dets = torch.tensor([
        [0.0, 0.0, 10.0, 9.0],  # 0.9: TP on gt 0 (IoU 0.9)
        [0.0, 0.0, 10.0, 8.0],  # 0.8: best box gt 0 is taken -> FP
        [20.0, 0.0, 30.0, 10.0],  # 0.7: on the difficult box -> ignored
        [100.0, 0.0, 110.0, 10.0],  # 0.6: nothing -> FP
        [50.0, 0.0, 60.0, 5.0],  # 0.5: IoU exactly 0.5 with gt 2 -> TP (>=)
    ])
    preds = [{"boxes": dets, "scores": torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5], dtype=torch.float64),
              "labels": torch.zeros(5, dtype=torch.long)}]
    (res,) = voc_match(preds, targets, 1)
    assert res["num_pos"] == 2
    assert res["tp"].tolist() == [True, False, False, True]
    assert res["scores"].tolist() == [0.9, 0.8, 0.6, 0.5]
    np.testing.assert_allclose(res["recall"], [0.5, 0.5, 0.5, 1.0])
    np.testing.assert_allclose(res["precision"], [1.0, 0.5, 1 / 3, 0.5])
    # The IoU threshold matters: at 0.6 the last detection is a false positive.
    (strict,) = voc_match(preds, targets, 1, iou_threshold=0.6)
    assert strict["tp"].tolist() == [True, False, False, False]


def test_voc_match_does_not_fall_back_to_another_box():
    # Two overlapping gt; the second detection's best box is taken, though it also overlaps
    # the other gt with IoU > 0.5: the devkit counts it as a false positive.
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0]])
    dets = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.5, 0.0, 10.5, 10.0]])
    (res,) = voc_match([{"boxes": dets, "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])}],
                       [{"boxes": gt, "labels": torch.tensor([0, 0])}], 1)
    assert res["tp"].tolist() == [True, False]


def _voc_match_loops(preds, targets, num_classes, thr=0.5):
    """The devkit's voc_eval as plain loops (per class, detections by decreasing score)."""
    out = []
    for c in range(num_classes):
        dets = []
        for i, p in enumerate(preds):
            for box, s, lab in zip(p["boxes"].tolist(), p["scores"].tolist(), p["labels"].tolist()):
                if lab == c:
                    dets.append((s, i, box))
        dets.sort(key=lambda d: -d[0])
        gts = {}
        npos = 0
        for i, t in enumerate(targets):
            gts[i] = []
            for box, lab, crowd, diff in zip(t["boxes"].tolist(), t["labels"].tolist(), t["iscrowd"].tolist(),
                                             t["difficult"].tolist()):
                if lab == c:
                    gts[i].append([box, crowd or diff, False])
                    npos += not (crowd or diff)
        tp, scores = [], []
        for s, i, box in dets:
            ovmax, jmax = -1.0, -1
            for j, (g, _, _) in enumerate(gts[i]):
                iou = iou_pair(box, g)
                if iou > ovmax:
                    ovmax, jmax = iou, j
            if ovmax >= thr:
                if gts[i][jmax][1]:
                    continue  # ignored box: neither TP nor FP
                if not gts[i][jmax][2]:
                    gts[i][jmax][2] = True
                    tp.append(True)
                else:
                    tp.append(False)
            else:
                tp.append(False)
            scores.append(s)
        out.append((scores, tp, npos))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_voc_match_matches_loop_reference(seed):
    preds, targets = make_fixture(seed=seed)
    got = voc_match(to_torch(preds), to_torch(targets), 3)
    for c, (scores, tp, npos) in enumerate(_voc_match_loops(preds, targets, 3)):
        assert got[c]["scores"].tolist() == scores
        assert got[c]["tp"].tolist() == tp
        assert got[c]["num_pos"] == npos
        ctp = np.cumsum(tp)
        np.testing.assert_allclose(got[c]["recall"], ctp / npos, rtol=0, atol=1e-15)
        np.testing.assert_allclose(got[c]["precision"], ctp / np.arange(1, len(tp) + 1), rtol=0, atol=1e-15)


def test_evaluator_voc_numbers_from_the_matching():
    preds, targets = make_fixture(seed=8)
    m = evaluate(preds, targets)
    res = voc_match(to_torch(preds), to_torch(targets), 3)
    for c, row in enumerate(m["per_class"]):
        assert row["voc_ap50"] == voc_ap(res[c]["recall"], res[c]["precision"], use_07_metric=False)
        assert row["voc07_ap50"] == voc_ap(res[c]["recall"], res[c]["precision"], use_07_metric=True)
        np.testing.assert_array_equal(m["pr_curves"][NAMES[c]]["recall"], res[c]["recall"])
    assert m["voc_ap50"] == pytest.approx(np.mean([r["voc_ap50"] for r in m["per_class"]]), abs=1e-15)
    assert m["voc_ap50"] != m["voc07_ap50"]


def test_difficult_is_ignored_by_voc_but_counts_for_coco():
    box = np.array([[0.0, 0.0, 100.0, 100.0]])
    targets = [{"boxes": box, "labels": np.array([0]), "difficult": np.array([True])},
               {"boxes": box, "labels": np.array([0])}]
    preds = [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, np.int64)},
             {"boxes": box, "scores": np.array([0.9]), "labels": np.array([0])}]
    m = evaluate(preds, targets)
    assert m["voc_ap50"] == 1.0  # the missed box is difficult
    assert m["map_50"] == pytest.approx(0.5, abs=0.01)  # COCO misses one of two boxes


# --------------------------------------------------------------------------------------------
# Reports


def test_summary_table_and_pr_curve_png(tmp_path):
    preds, targets = make_fixture(seed=9, variant="no_gt")
    m = evaluate(preds, targets)
    text = summary_table(m)
    for name in NAMES:
        assert name in text
    assert f"mAP@[.5:.95] {m['map']:.3f}" in text and f"mAP@.5 {m['map_50']:.3f}" in text
    triangle = next(line for line in text.splitlines() if line.startswith("triangle"))
    assert triangle.split()[1:5] == ["-", "-", "-", "-"]  # no gt: NaN shown as "-"
    assert DetectionEvaluator.summary_table(m) == text

    path = save_pr_curves(m, tmp_path / "pr" / "curves.png")
    assert path == tmp_path / "pr" / "curves.png"
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape == (420, 640, 3)
    for c in (0, 1):
        assert (image == np.array(PALETTE[c])).all(axis=2).sum() > 50, c


def test_targets_from_annotations():
    records = [DetectionRecord(image="a.png", width=64, height=48, boxes=np.array([[1.0, 2.0, 30.0, 40.0]]),
                               labels=np.array([1]), difficult=np.array([True])),
               DetectionRecord(image="b.png", width=64, height=48)]
    targets = targets_from_annotations(DetectionAnnotations(class_names=["a", "b"], records=records))
    assert len(targets) == 2
    assert targets[0]["boxes"].tolist() == [[1.0, 2.0, 30.0, 40.0]] and targets[0]["labels"].tolist() == [1]
    assert targets[0]["difficult"].tolist() == [True] and targets[0]["iscrowd"].tolist() == [False]
    assert targets[1]["boxes"].shape == (0, 4)
    ev = DetectionEvaluator(["a", "b"])
    ev.update([{"boxes": targets[0]["boxes"], "scores": torch.ones(1), "labels": torch.tensor([1])},
               {"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)}],
              targets)
    assert ev.compute()["map"] == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(TypeError, match="annotations must be a DetectionAnnotations"):
        targets_from_annotations(records)


# --------------------------------------------------------------------------------------------
# D2L metrics


def test_d2l_metrics_golden():
    cls_preds = torch.tensor([[[0.1, 0.7, 0.2], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]],
                              [[0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]]])  # [B=2, A=3, C+1=3]
    cls_labels = torch.tensor([[1, 0, 1], [0, 2, 0]])  # correct: yes, yes, no / yes, yes, no
    assert cls_eval(cls_preds, cls_labels) == 4.0
    assert class_error(cls_preds, cls_labels) == pytest.approx(1 - 4 / 6)
    bbox_preds = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    bbox_labels = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    bbox_masks = torch.tensor([[1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    assert bbox_eval(bbox_preds, bbox_labels, bbox_masks) == 0.5 + 2.0 + 1.0 + 1.0
    assert bbox_mae(bbox_preds, bbox_labels, bbox_masks) == pytest.approx(4.5 / 8)  # the book divides by numel


def test_d2l_metrics_match_the_books_formulas_and_loops():
    g = torch.Generator().manual_seed(0)
    cls_preds = torch.randn(3, 20, 4, generator=g)
    cls_labels = torch.randint(0, 4, (3, 20), generator=g)
    book = float((cls_preds.argmax(dim=-1).type(cls_labels.dtype) == cls_labels).sum())
    loops = sum(int(max(range(4), key=lambda k: cls_preds[b, a, k]) == cls_labels[b, a])
                for b in range(3) for a in range(20))
    assert cls_eval(cls_preds, cls_labels) == book == loops
    # Float labels, as some book versions pass them, give the same count.
    assert cls_eval(cls_preds, cls_labels.float()) == book
    bbox_preds, bbox_labels = torch.randn(3, 80, generator=g), torch.randn(3, 80, generator=g)
    bbox_masks = (torch.rand(3, 80, generator=g) < 0.3).float()
    book = float(torch.abs((bbox_labels - bbox_preds) * bbox_masks).sum())
    loops = sum(abs(float(bbox_labels[b, j] - bbox_preds[b, j])) for b in range(3) for j in range(80)
                if bbox_masks[b, j] == 1)
    assert bbox_eval(bbox_preds, bbox_labels, bbox_masks) == book
    assert book == pytest.approx(loops, rel=1e-6)
    assert bbox_mae(bbox_preds, bbox_labels, bbox_masks) == book / 240
    assert math.isnan(class_error(torch.zeros(0, 0, 3), torch.zeros(0, 0, dtype=torch.long)))


# --------------------------------------------------------------------------------------------
# Bad input


def _pred(n=1, **over):
    d = {"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]] * n), "scores": torch.ones(n),
         "labels": torch.zeros(n, dtype=torch.long)}
    d.update(over)
    return d


def _target(n=1, **over):
    d = {"boxes": torch.tensor([[0.0, 0.0, 5.0, 5.0]] * n), "labels": torch.zeros(n, dtype=torch.long)}
    d.update(over)
    return d


@pytest.mark.parametrize("preds, targets, exc, match", [
    ([_pred()], [_target(), _target()], ValueError, r"predictions and targets must have the same length.*1 .*2"),
    (_pred(), [_target()], TypeError, r"predictions must be a list of dicts"),
    ([_pred(boxes=torch.zeros(1, 5))], [_target()], ValueError, r"predictions\[0\]\['boxes'\] must have shape \[N, 4\]"),
    ([_pred(boxes=torch.tensor([[5.0, 0.0, 1.0, 5.0]]))], [_target()], ValueError,
     r"predictions\[0\]\['boxes'\] must be finite xyxy.*row 0"),
    ([_pred(scores=torch.ones(2))], [_target()], ValueError, r"predictions\[0\]\['scores'\] must have shape \[1\]"),
    ([_pred(labels=torch.tensor([3]))], [_target()], ValueError,
     r"predictions\[0\]\['labels'\] must be class indices in \[0, 3\).*got 3"),
    ([_pred(labels=torch.tensor([0.0]))], [_target()], TypeError, r"predictions\[0\]\['labels'\] must be an integer"),
    ([_pred()], [_target(labels=torch.tensor([-1]))], ValueError, r"targets\[0\]\['labels'\] must be class indices"),
    ([_pred()], [_target(difficult=torch.tensor([True, False]))], ValueError, r"targets\[0\]\['difficult'\] must have shape \[1\]"),
    ([_pred()], [{"labels": torch.tensor([0])}], ValueError, r"targets\[0\] is missing the key 'boxes'"),
    ([_pred(scores=[1.0])], [_target()], TypeError, r"predictions\[0\]\['scores'\] must be a torch.Tensor"),
    ([_pred(scores=torch.tensor([float("nan")]))], [_target()], ValueError, r"predictions\[0\]\['scores'\] must be finite"),
])
def test_update_rejects_bad_input(preds, targets, exc, match):
    ev = DetectionEvaluator(NAMES)
    with pytest.raises(exc, match=match):
        ev.update(preds, targets)
    assert ev.num_images == 0  # nothing of a bad batch is kept


def test_constructor_and_voc_errors():
    with pytest.raises(ValueError, match=r"class_names must be unique.*'a'"):
        DetectionEvaluator(["a", "a"])
    with pytest.raises(ValueError, match="class_names must not be empty"):
        DetectionEvaluator([])
    with pytest.raises(TypeError, match="class_names must be a sequence of str"):
        DetectionEvaluator("abc")
    with pytest.raises(ValueError, match=r"recall and precision must have the same length, got 2 and 1"):
        voc_ap([0.1, 0.2], [1.0], use_07_metric=True)
    with pytest.raises(ValueError, match=r"recall must be non-decreasing, got 0.5 then 0.2"):
        voc_ap([0.5, 0.2], [1.0, 1.0], use_07_metric=False)
    with pytest.raises(ValueError, match=r"precision must hold finite values in \[0, 1\]"):
        voc_ap([0.5], [1.5], use_07_metric=False)
    with pytest.raises(TypeError, match="use_07_metric must be a bool"):
        voc_ap([0.5], [1.0], use_07_metric=None)
    with pytest.raises(ValueError, match=r"iou_threshold must be <= 1, got 1.5"):
        voc_match([_pred()], [_target()], 1, iou_threshold=1.5)
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        voc_match([_pred()], [_target()], 0)
    with pytest.raises(ValueError, match=r"metrics must be the dict DetectionEvaluator.compute\(\) returns"):
        summary_table({"map": 0.5})


def test_d2l_metric_errors():
    with pytest.raises(ValueError, match=r"cls_labels must have shape cls_preds.shape\[:-1\] = \(2, 3\).*got \(2, 4\)"):
        cls_eval(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"cls_labels must be whole class indices in \[0, 4\).*got 4"):
        cls_eval(torch.zeros(2, 3, 4), torch.full((2, 3), 4))
    with pytest.raises(ValueError, match=r"cls_preds must be a floating-point tensor"):
        cls_eval(torch.zeros(2, 3, 4, dtype=torch.long), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"bbox_masks must have the shape of bbox_preds \(2, 8\).*got \(2, 4\)"):
        bbox_eval(torch.zeros(2, 8), torch.zeros(2, 8), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"bbox_labels must have the shape of bbox_preds"):
        bbox_mae(torch.zeros(2, 8), torch.zeros(2, 9), torch.zeros(2, 8))
    with pytest.raises(TypeError, match="bbox_labels must be a torch.Tensor"):
        bbox_eval(torch.zeros(2, 8), [0.0] * 8, torch.zeros(2, 8))
