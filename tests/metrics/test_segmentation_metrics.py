"""Tests for pixbox.metrics.segmentation: golden values, a loop reference, ignore_index, reports."""

from __future__ import annotations

import math
import re

import pytest
import torch

from pixbox.metrics import (
    SegmentationEvaluator,
    segmentation_confusion_matrix,
    segmentation_table,
)

NAMES = ["background", "cat", "dog"]


# --------------------------------------------------------------------------------------------
# Slow, obviously correct reference


def _ref_metrics(preds, targets, c, ignore_index):
    """Pixel by pixel: count the (true, predicted) pairs, then every metric class by class."""
    pairs = [(t, p) for t, p in zip(targets.flatten().tolist(), preds.flatten().tolist()) if t != ignore_index]
    cm = [[0] * c for _ in range(c)]
    for t, p in pairs:
        cm[t][p] += 1
    total = len(pairs)
    rows, ious_seen, accs_present = [], [], []
    for k in range(c):
        tp = sum(1 for t, p in pairs if t == k and p == k)
        fn = sum(1 for t, p in pairs if t == k and p != k)
        fp = sum(1 for t, p in pairs if t != k and p == k)
        iou = tp / (tp + fp + fn) if tp + fp + fn else 0.0
        acc = tp / (tp + fn) if tp + fn else 0.0
        rows.append({"iou": iou, "accuracy": acc, "pixels": tp + fn})
        if tp + fp + fn:
            ious_seen.append(iou)
        if tp + fn:
            accs_present.append(acc)
    correct = sum(1 for t, p in pairs if t == p)
    return {
        "confusion": cm,
        "pixel_accuracy": correct / total if total else 0.0,
        "mean_class_accuracy": sum(accs_present) / len(accs_present) if accs_present else 0.0,
        "miou": sum(ious_seen) / len(ious_seen) if ious_seen else 0.0,
        "fwiou": sum(r["pixels"] * r["iou"] for r in rows) / total if total else 0.0,
        "per_class": rows,
        "num_pixels": total,
    }


def _random_batch(seed, *, b=3, c=4, h=9, w=11, ignore_index=255, dtype=torch.int64):
    g = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, c, (b, h, w), generator=g)
    # Predictions right about half of the time.
    preds = torch.where(torch.rand(b, h, w, generator=g) < 0.5, targets, torch.randint(0, c, (b, h, w), generator=g))
    targets[torch.rand(b, h, w, generator=g) < 0.15] = ignore_index
    return preds, targets.to(dtype)


# --------------------------------------------------------------------------------------------
# Golden values (hand computed)

# Two 2x4 images, 3 classes, one ignored pixel (255) in each.
GOLD_TARGETS = torch.tensor([[[0, 0, 0, 1], [1, 1, 255, 2]],
                             [[2, 2, 0, 255], [1, 0, 2, 2]]], dtype=torch.uint8)
GOLD_PREDS = torch.tensor([[[0, 0, 1, 1], [1, 2, 0, 2]],
                           [[2, 0, 0, 1], [1, 0, 2, 1]]])
# Counted (true, pred) pairs: class 0 -> 0 four times, -> 1 once; class 1 -> 1 three times,
# -> 2 once; class 2 -> 2 three times, -> 0 once, -> 1 once.
GOLD_CONFUSION = [[4, 1, 0], [0, 3, 1], [1, 1, 3]]


def test_confusion_matrix_golden():
    cm = segmentation_confusion_matrix(GOLD_PREDS, GOLD_TARGETS, 3)
    assert cm.dtype == torch.int64
    assert cm.tolist() == GOLD_CONFUSION


def test_evaluator_golden():
    ev = SegmentationEvaluator(NAMES)
    ev.update(GOLD_PREDS, GOLD_TARGETS)
    m = ev.compute()
    assert m["confusion"].tolist() == GOLD_CONFUSION
    assert m["num_pixels"] == 14 and m["num_images"] == 2
    assert m["pixel_accuracy"] == pytest.approx(10 / 14)
    # recall: 4/5, 3/4, 3/5
    assert [r["accuracy"] for r in m["per_class"]] == pytest.approx([0.8, 0.75, 0.6])
    assert m["mean_class_accuracy"] == pytest.approx((0.8 + 0.75 + 0.6) / 3)
    # IoU = tp / (row + column - tp): 4 / (5 + 5 - 4), 3 / (4 + 5 - 3), 3 / (5 + 4 - 3)
    assert [r["iou"] for r in m["per_class"]] == pytest.approx([2 / 3, 1 / 2, 1 / 2])
    assert m["miou"] == pytest.approx(5 / 9)
    assert m["fwiou"] == pytest.approx((5 * 2 / 3 + 4 * 1 / 2 + 5 * 1 / 2) / 14)
    assert [r["pixels"] for r in m["per_class"]] == [5, 4, 5]
    assert [r["name"] for r in m["per_class"]] == NAMES


def test_miou_excludes_unseen_classes_but_counts_false_positive_classes():
    # Class 3 ("bird") never appears: left out of every mean.
    ev = SegmentationEvaluator(NAMES + ["bird"])
    ev.update(GOLD_PREDS, GOLD_TARGETS)
    m = ev.compute()
    assert m["miou"] == pytest.approx(5 / 9)
    assert m["mean_class_accuracy"] == pytest.approx((0.8 + 0.75 + 0.6) / 3)
    assert m["per_class"][3] == {"name": "bird", "iou": 0.0, "accuracy": 0.0, "pixels": 0}
    # Predicting "bird" on one correct class-0 pixel: bird has union 1, IoU 0, and counts.
    preds = GOLD_PREDS.clone()
    preds[0, 0, 0] = 3
    ev.reset()
    ev.update(preds, GOLD_TARGETS)
    m = ev.compute()
    assert m["per_class"][3]["iou"] == 0.0
    assert m["per_class"][0]["iou"] == pytest.approx(1 / 2)  # 3 / (5 + 4 - 3)
    assert m["miou"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 2 + 0.0) / 4)
    assert m["mean_class_accuracy"] == pytest.approx((0.6 + 0.75 + 0.6) / 3)  # bird has no pixels


def test_empty_evaluator_is_zero_not_nan():
    ev = SegmentationEvaluator(NAMES)
    m = ev.compute()
    for key in ("pixel_accuracy", "mean_class_accuracy", "miou", "fwiou"):
        assert m[key] == 0.0
    assert m["num_pixels"] == 0 and m["num_images"] == 0
    assert m["confusion"].tolist() == [[0] * 3] * 3
    # A batch whose pixels are all ignored counts its images but no pixel.
    ev.update(torch.zeros(2, 3, 3, dtype=torch.int64), torch.full((2, 3, 3), 255))
    m = ev.compute()
    assert m["num_images"] == 2 and m["num_pixels"] == 0 and m["miou"] == 0.0
    assert not any(math.isnan(r["iou"]) or math.isnan(r["accuracy"]) for r in m["per_class"])


def test_perfect_predictions():
    ev = SegmentationEvaluator(NAMES)
    targets = GOLD_TARGETS.long()
    preds = torch.where(targets == 255, torch.zeros_like(targets), targets)
    ev.update(preds, targets)
    m = ev.compute()
    assert m["pixel_accuracy"] == m["mean_class_accuracy"] == m["miou"] == m["fwiou"] == 1.0


# --------------------------------------------------------------------------------------------
# Against the loop reference


@pytest.mark.parametrize("seed", range(8))
def test_matches_loop_reference(seed):
    c = 2 + seed % 5
    preds, targets = _random_batch(seed, c=c, b=1 + seed % 3, dtype=torch.uint8 if seed % 2 else torch.int64)
    if seed % 4 == 3:  # a class that is never a target (maybe predicted)
        targets[targets == c - 1] = 255
    ref = _ref_metrics(preds, targets, c, 255)
    assert segmentation_confusion_matrix(preds, targets, c).tolist() == ref["confusion"]
    ev = SegmentationEvaluator([f"c{k}" for k in range(c)])
    ev.update(preds, targets)
    m = ev.compute()
    assert m["confusion"].tolist() == ref["confusion"]
    assert m["num_pixels"] == ref["num_pixels"]
    for key in ("pixel_accuracy", "mean_class_accuracy", "miou", "fwiou"):
        assert m[key] == pytest.approx(ref[key], abs=1e-12), key
    for got, want in zip(m["per_class"], ref["per_class"]):
        assert got["pixels"] == want["pixels"]
        assert got["iou"] == pytest.approx(want["iou"], abs=1e-12)
        assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-12)


# --------------------------------------------------------------------------------------------
# ignore_index, accumulation, logits


def test_ignored_pixels_predictions_do_not_matter():
    preds, targets = _random_batch(0)
    base = segmentation_confusion_matrix(preds, targets, 4)
    ignored = targets == 255
    assert bool(ignored.any())
    for k in range(4):
        changed = torch.where(ignored, torch.full_like(preds, k), preds)
        assert torch.equal(segmentation_confusion_matrix(changed, targets, 4), base)
    # Out-of-range predictions at ignored pixels are allowed too (they are never looked at).
    changed = torch.where(ignored, torch.full_like(preds, 99), preds)
    assert torch.equal(segmentation_confusion_matrix(changed, targets, 4), base)
    assert int(base.sum()) == int((~ignored).sum())


def test_ignore_index_parameter():
    preds, targets = _random_batch(1, ignore_index=-1)
    cm = segmentation_confusion_matrix(preds, targets, 4, ignore_index=-1)
    assert int(cm.sum()) == int((targets != -1).sum())
    # With nothing ignored every pixel is counted, and 255 is then a bad target.
    preds, targets = _random_batch(2, ignore_index=0)  # "ignore" label 0 also is a class here
    every = segmentation_confusion_matrix(preds, targets, 4, ignore_index=None)
    assert int(every.sum()) == targets.numel()
    no_zero = segmentation_confusion_matrix(preds, targets, 4, ignore_index=0)
    assert int(no_zero[0].sum()) == 0 and torch.equal(no_zero[1:], every[1:])
    with pytest.raises(ValueError, match=r"targets must hold class indices in \[0, 4\), got values \[255\]"):
        segmentation_confusion_matrix(preds, torch.full_like(targets, 255), 4, ignore_index=None)


def test_accumulation_equals_concatenation():
    batches = [_random_batch(seed, b=1 + seed, c=5) for seed in range(4)]
    ev = SegmentationEvaluator([str(k) for k in range(5)])
    for preds, targets in batches:
        ev.update(preds, targets)
    ev.update(batches[0][0][0], batches[0][1][0])  # a single [H, W] image
    once = SegmentationEvaluator([str(k) for k in range(5)])
    once.update(torch.cat([p for p, _ in batches] + [batches[0][0][:1]]),
                torch.cat([t for _, t in batches] + [batches[0][1][:1]]))
    a, b = ev.compute(), once.compute()
    assert torch.equal(a["confusion"], b["confusion"])
    assert a["num_images"] == b["num_images"] == 1 + 2 + 3 + 4 + 1
    for key in ("pixel_accuracy", "mean_class_accuracy", "miou", "fwiou", "num_pixels"):
        assert a[key] == b[key]
    ev.reset()
    assert ev.compute()["num_pixels"] == 0 and ev.num_images == 0


def test_logits_equal_argmax():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 4, 6, 7, generator=g)
    logits[0, :, 0, 0] = 1.0  # a tie: the first maximum wins, as argmax does
    targets = torch.randint(0, 4, (2, 6, 7), generator=g)
    targets[1, 2:4] = 255
    labels = logits.argmax(1)
    assert torch.equal(segmentation_confusion_matrix(logits, targets, 4),
                       segmentation_confusion_matrix(labels, targets, 4))
    a, b = SegmentationEvaluator(list("abcd")), SegmentationEvaluator(list("abcd"))
    a.update(logits, targets)
    b.update(labels, targets)
    assert a.compute()["confusion"].tolist() == b.compute()["confusion"].tolist()
    a.update(logits[0], targets[0])  # one image: [C, H, W] scores and [H, W] targets
    b.update(labels[0], targets[0])
    assert torch.equal(a.compute()["confusion"], b.compute()["confusion"]) and a.num_images == 3


def test_device(device):
    preds, targets = _random_batch(3)
    cm = segmentation_confusion_matrix(preds.to(device), targets.to(device), 4)
    assert cm.device.type == torch.device(device).type
    assert torch.equal(cm.cpu(), segmentation_confusion_matrix(preds, targets, 4))
    ev = SegmentationEvaluator(list("abcd"))
    ev.update(preds.to(device), targets.to(device))
    assert ev.compute()["confusion"].device.type == "cpu"


# --------------------------------------------------------------------------------------------
# Errors


def test_bad_target_values_are_named():
    targets = GOLD_TARGETS.long().clone()
    targets[0, 0, 0] = 7
    targets[1, 0, 0] = 3
    with pytest.raises(ValueError, match=r"targets must hold class indices in \[0, 3\) or ignore_index 255, "
                                         r"got values \[3, 7\] \(2 pixels\)"):
        segmentation_confusion_matrix(GOLD_PREDS, targets, 3)
    ev = SegmentationEvaluator(NAMES)
    with pytest.raises(ValueError, match=r"got values \[3, 7\]"):
        ev.update(GOLD_PREDS, targets)
    assert ev.compute()["num_pixels"] == 0 and ev.num_images == 0  # nothing was added
    with pytest.raises(ValueError, match=r"got values \[-2\]"):
        segmentation_confusion_matrix(torch.zeros(3, dtype=torch.long), torch.tensor([0, -2, 1]), 3)


@pytest.mark.parametrize("call,exc,match", [
    (lambda: segmentation_confusion_matrix(GOLD_PREDS + 3, GOLD_TARGETS, 3), ValueError,
     r"preds must hold class indices in \[0, 3\) at the counted \(not ignored\) pixels, got values \[3, 4, 5\]"),
    (lambda: segmentation_confusion_matrix(GOLD_PREDS[:1], GOLD_TARGETS, 3), ValueError,
     r"preds must have the shape of targets \(2, 2, 4\)"),
    (lambda: segmentation_confusion_matrix(GOLD_PREDS, GOLD_TARGETS.float(), 3), TypeError,
     r"targets must be an integer tensor"),
    (lambda: segmentation_confusion_matrix(GOLD_PREDS.bool(), GOLD_TARGETS, 3), TypeError,
     r"preds must be an integer tensor"),
    (lambda: segmentation_confusion_matrix(torch.randn(2, 4, 2, 4), GOLD_TARGETS, 3), ValueError,
     r"preds as float logits must have shape \[B, C, \.\.\.\] = \[2, 3, 2, 4\]"),
    (lambda: segmentation_confusion_matrix(torch.full((2, 3, 2, 4), math.nan), GOLD_TARGETS, 3), ValueError,
     r"preds must not contain NaN"),
    (lambda: segmentation_confusion_matrix(GOLD_PREDS, GOLD_TARGETS, 0), ValueError,
     r"num_classes must be >= 1, got 0"),
    (lambda: segmentation_confusion_matrix(GOLD_PREDS, GOLD_TARGETS, 3.0), TypeError, r"num_classes must be an int"),
    (lambda: segmentation_confusion_matrix(GOLD_PREDS, GOLD_TARGETS, 3, ignore_index=2.5), TypeError,
     r"ignore_index must be an int or None"),
    (lambda: segmentation_confusion_matrix(GOLD_PREDS.tolist(), GOLD_TARGETS, 3), TypeError,
     r"preds must be a torch.Tensor, got list"),
    (lambda: SegmentationEvaluator(NAMES).update(GOLD_PREDS[0, 0], GOLD_TARGETS[0, 0]), ValueError,
     r"targets must have shape \[B, H, W\] or \[H, W\], got \(4,\)"),
    (lambda: SegmentationEvaluator(NAMES).update(torch.randn(2, 4, 2, 4), GOLD_TARGETS), ValueError,
     r"preds_or_logits as float logits must have shape"),
    (lambda: SegmentationEvaluator([]), ValueError, r"class_names must not be empty"),
    (lambda: SegmentationEvaluator(NAMES, ignore_index="255"), TypeError, r"ignore_index must be an int or None"),
])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# --------------------------------------------------------------------------------------------
# Reports


def test_table():
    ev = SegmentationEvaluator(NAMES)
    ev.update(GOLD_PREDS, GOLD_TARGETS)
    text = segmentation_table(ev.compute())
    lines = text.split("\n")
    assert lines[0] == ("images 2  pixels 14  pixel accuracy 0.714  mean class accuracy 0.717  "
                        "mIoU 0.556  fwIoU 0.560")
    assert lines[1:] == [
        "class       pixels    IoU  accuracy",
        "----------  ------  -----  --------",
        "background       5  0.667     0.800",
        "cat              4  0.500     0.750",
        "dog              5  0.500     0.600",
        "----------  ------  -----  --------",
        "all             14  0.556     0.717",
    ]
    # Columns line up: every row has the same width as the header once padded.
    renamed = segmentation_table(ev.compute(), class_names=["bg", "a-much-longer-name", "x"])
    rows = renamed.split("\n")[1:]
    assert rows[3].startswith("a-much-longer-name  ") and len({len(r) for r in rows}) == 1


def test_table_errors():
    m = SegmentationEvaluator(NAMES).compute()
    with pytest.raises(ValueError, match=r"class_names must have one name per class of metrics \(3\), got 2"):
        segmentation_table(m, class_names=["a", "b"])
    with pytest.raises(ValueError, match=re.escape("it lacks ['miou']")):
        segmentation_table({k: v for k, v in m.items() if k != "miou"})
    with pytest.raises(TypeError, match=r"metrics must be the dict SegmentationEvaluator.compute\(\) returns"):
        segmentation_table([m])
