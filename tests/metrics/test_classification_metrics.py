import math
import re

import pytest
import torch

from pixbox.metrics import (
    ClassificationEvaluator,
    accuracy,
    classification_table,
    confusion_matrix,
)

NAMES = ["cat", "dog", "bird", "fish"]


# --------------------------------------------------------------------------------------------
# Slow, obviously correct references


def _ref_topk_correct(logits, targets, k):
    """Per sample: sort the classes by score (descending, ties by index) and look at the first k."""
    out = []
    for row, t in zip(logits.tolist(), targets.tolist()):
        order = sorted(range(len(row)), key=lambda j: (-row[j], j))
        out.append(t in order[:k])
    return out


def _ref_confusion(preds, targets, c):
    cm = [[0] * c for _ in range(c)]
    for p, t in zip(preds.tolist(), targets.tolist()):
        cm[t][p] += 1
    return cm


def _ref_per_class(preds, targets, c):
    rows = []
    for k in range(c):
        tp = sum(1 for p, t in zip(preds.tolist(), targets.tolist()) if p == k and t == k)
        fp = sum(1 for p, t in zip(preds.tolist(), targets.tolist()) if p == k and t != k)
        fn = sum(1 for p, t in zip(preds.tolist(), targets.tolist()) if p != k and t == k)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"precision": precision, "recall": recall, "f1": f1, "support": tp + fn})
    return rows


def _random_batch(seed, n=60, c=4, *, ties=False):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g)
    if ties:  # coarse values: many equal scores in a row
        logits = (logits * 1.5).round()
    # Targets skewed towards the argmax so that every rate is away from 0 and 1.
    targets = torch.where(torch.rand(n, generator=g) < 0.5, logits.argmax(1), torch.randint(0, c, (n,), generator=g))
    return logits, targets


# --------------------------------------------------------------------------------------------
# accuracy and confusion_matrix


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_accuracy_matches_the_sorting_reference(seed, ties):
    logits, targets = _random_batch(seed, ties=ties)
    for k in range(1, 5):
        ref = _ref_topk_correct(logits, targets, k)
        assert accuracy(logits, targets, topk=k) == pytest.approx(sum(ref) / len(ref), abs=1e-12)
    # Top-1 is the argmax rule, whatever the ties; integer predictions give the same number.
    assert accuracy(logits, targets) == pytest.approx(float((logits.argmax(1) == targets).double().mean()))
    assert accuracy(logits.argmax(1), targets) == accuracy(logits, targets)
    # float64 and probabilities give the same result (a monotonic transform).
    assert accuracy(logits.double().softmax(1), targets, topk=2) == accuracy(logits, targets, topk=2)


def test_accuracy_golden_values():
    logits = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])
    targets = torch.tensor([1, 1, 0, 2])
    # Ranks of the targets: 0, 1, 2, 1.
    assert accuracy(logits, targets) == 0.25
    assert accuracy(logits, targets, topk=2) == 0.75
    assert accuracy(logits, targets, topk=3) == 1.0
    # Ties: [1, 1] with target 1 has rank 1 (class 0 comes first), target 0 rank 0.
    tied = torch.tensor([[1.0, 1.0], [1.0, 1.0]])
    assert accuracy(tied, torch.tensor([1, 1])) == 0.0
    assert accuracy(tied, torch.tensor([0, 0])) == 1.0
    assert accuracy(tied, torch.tensor([1, 1]), topk=2) == 1.0
    assert accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64)) == 0.0
    assert accuracy(torch.tensor([2, 0, 1]), torch.tensor([2, 1, 1])) == pytest.approx(2 / 3)


@pytest.mark.parametrize("seed", range(5))
def test_confusion_matrix_matches_the_loop(seed):
    logits, targets = _random_batch(seed, n=80, c=5)
    preds = logits.argmax(1)
    cm = confusion_matrix(preds, targets, 5)
    assert cm.dtype == torch.int64 and cm.shape == (5, 5)
    assert cm.tolist() == _ref_confusion(preds, targets, 5)
    assert cm.sum(1).tolist() == torch.bincount(targets, minlength=5).tolist()  # rows are the true classes
    # int32 inputs and a larger num_classes.
    cm7 = confusion_matrix(preds.int(), targets.int(), 7)
    assert cm7[:5, :5].tolist() == cm.tolist() and cm7[5:].sum() == 0 and cm7[:, 5:].sum() == 0


def test_confusion_matrix_golden_and_empty():
    cm = confusion_matrix(torch.tensor([0, 2, 2, 1]), torch.tensor([0, 2, 1, 1]), 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    empty = confusion_matrix(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), 2)
    assert empty.tolist() == [[0, 0], [0, 0]]


def test_bad_inputs_name_the_argument():
    logits = torch.randn(4, 3)
    with pytest.raises(ValueError, match="logits_or_preds and targets must have the same number of samples"):
        accuracy(logits, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"targets must hold class indices \[0, 3\), got 3 at index 1"):
        accuracy(logits, torch.tensor([0, 3, 1, 1]))
    with pytest.raises(ValueError, match=r"targets must hold class indices \[0, 3\), got -1 at index 2"):
        accuracy(logits, torch.tensor([0, 1, -1, 1]))
    with pytest.raises(TypeError, match="targets must be an integer tensor of class indices, got dtype torch.float32"):
        accuracy(logits, torch.tensor([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(TypeError, match="targets must be an integer tensor of class indices, got dtype torch.bool"):
        accuracy(logits, torch.tensor([True, False, True, False]))
    with pytest.raises(ValueError, match=r"targets must have shape \[N\], got \(4, 1\)"):
        accuracy(logits, torch.zeros(4, 1, dtype=torch.int64))
    with pytest.raises(ValueError, match="topk must be <= the number of classes C=3, got 4"):
        accuracy(logits, torch.tensor([0, 1, 2, 1]), topk=4)
    with pytest.raises(ValueError, match="topk must be >= 1, got 0"):
        accuracy(logits, torch.tensor([0, 1, 2, 1]), topk=0)
    with pytest.raises(ValueError, match="topk must be 1 for predicted class indices"):
        accuracy(torch.tensor([0, 1]), torch.tensor([0, 1]), topk=2)
    with pytest.raises(ValueError, match="logits_or_preds must not contain NaN"):
        accuracy(torch.tensor([[0.0, float("nan")]]), torch.tensor([0]))
    with pytest.raises(TypeError, match="logits_or_preds must be a torch.Tensor, got list"):
        accuracy([[0.0, 1.0]], torch.tensor([0]))
    with pytest.raises(ValueError, match=r"preds must hold class indices \[0, 2\), got 2 at index 0"):
        confusion_matrix(torch.tensor([2, 0]), torch.tensor([0, 1]), 2)
    with pytest.raises(TypeError, match="preds must be an integer tensor of class indices .* logits.argmax"):
        confusion_matrix(torch.randn(2, 2), torch.tensor([0, 1]), 2)
    with pytest.raises(ValueError, match="preds and targets must have the same number of samples, got 2 and 3"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1, 1]), 2)
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        confusion_matrix(torch.tensor([0]), torch.tensor([0]), 0)
    with pytest.raises(TypeError, match="num_classes must be an int, got float"):
        confusion_matrix(torch.tensor([0]), torch.tensor([0]), 2.0)


# --------------------------------------------------------------------------------------------
# The evaluator


@pytest.mark.parametrize("seed", range(5))
def test_evaluator_matches_the_references_over_batches(seed):
    logits, targets = _random_batch(seed, n=90, c=4, ties=seed % 2 == 1)
    ev = ClassificationEvaluator(NAMES, topk=(1, 2, 3))
    bounds = [0, 7, 7, 40, 90]  # uneven batches, one of them empty
    for a, b in zip(bounds[:-1], bounds[1:]):
        ev.update(logits[a:b], targets[a:b])
    m = ev.compute()
    preds = logits.argmax(1)
    assert m["num_images"] == ev.num_images == 90
    for k in (1, 2, 3):
        ref = _ref_topk_correct(logits, targets, k)
        assert m[f"top{k}"] == pytest.approx(sum(ref) / 90, abs=1e-12)
    assert m["accuracy"] == m["top1"]
    assert m["confusion"].tolist() == _ref_confusion(preds, targets, 4)
    ref_rows = _ref_per_class(preds, targets, 4)
    for row, ref, name in zip(m["per_class"], ref_rows, NAMES):
        assert row["name"] == name and row["support"] == ref["support"]
        for key in ("precision", "recall", "f1"):
            assert row[key] == pytest.approx(ref[key], abs=1e-12), (name, key)
    present = [r for r in ref_rows if r["support"]]
    for key in ("precision", "recall", "f1"):
        assert m[f"mean_{key}"] == pytest.approx(sum(r[key] for r in present) / len(present), abs=1e-12)
    # A copy: changing it does not change the evaluator.
    m["confusion"][0, 0] += 100
    assert ev.compute()["confusion"].tolist() == _ref_confusion(preds, targets, 4)


def test_evaluator_perfect_and_all_wrong():
    targets = torch.tensor([0, 1, 2, 3, 3, 2])
    perfect = torch.nn.functional.one_hot(targets, 4).float() * 5
    ev = ClassificationEvaluator(NAMES)
    ev.update(perfect, targets)
    m = ev.compute()
    assert m["accuracy"] == 1.0 and m["mean_recall"] == 1.0 and m["mean_precision"] == 1.0 and m["mean_f1"] == 1.0
    assert "top5" not in m  # k > C is skipped
    assert m["confusion"].tolist() == torch.diag(torch.tensor([1, 1, 2, 2])).tolist()
    assert [r["support"] for r in m["per_class"]] == [1, 1, 2, 2]

    wrong = torch.nn.functional.one_hot((targets + 1) % 4, 4).float()
    ev = ClassificationEvaluator(NAMES, topk=(1, 2, 4))
    ev.update(wrong, targets)
    m = ev.compute()
    assert m["accuracy"] == 0.0 and m["mean_recall"] == 0.0 and m["mean_f1"] == 0.0
    assert m["top4"] == 1.0
    # Wrong logits put the target second (ties among the zeros go to the smaller index).
    assert m["top2"] == pytest.approx(sum(_ref_topk_correct(wrong, targets, 2)) / 6)
    assert all(r["precision"] == r["recall"] == r["f1"] == 0.0 for r in m["per_class"])


def test_class_without_samples_or_predictions_is_zero_not_nan():
    ev = ClassificationEvaluator(["a", "b", "c"], topk=1)
    # Class 2 has no sample and is never predicted; class 1 has samples but is never predicted.
    ev.update(torch.tensor([[2.0, 1.0, 0.0], [3.0, 0.0, 1.0], [0.0, 0.0, -1.0]]), torch.tensor([0, 1, 1]))
    m = ev.compute()
    a, b, c = m["per_class"]
    assert (a["precision"], a["recall"], a["support"]) == (pytest.approx(1 / 3), 1.0, 1)
    assert (b["precision"], b["recall"], b["f1"], b["support"]) == (0.0, 0.0, 0.0, 2)
    assert (c["precision"], c["recall"], c["f1"], c["support"]) == (0.0, 0.0, 0.0, 0)
    # Class c has nothing to recall: it is left out of the means.
    assert m["mean_recall"] == pytest.approx(0.5)
    assert m["mean_f1"] == pytest.approx((2 * (1 / 3) / (4 / 3)) / 2)
    values = [v for r in m["per_class"] for v in r.values() if isinstance(v, float)]
    values += [m[k] for k in ("accuracy", "mean_precision", "mean_recall", "mean_f1")]
    assert not any(math.isnan(v) for v in values)


def test_evaluator_with_no_update_and_reset():
    ev = ClassificationEvaluator(NAMES)
    m = ev.compute()
    assert m["num_images"] == 0 and m["accuracy"] == 0.0 and m["mean_recall"] == 0.0
    assert m["confusion"].tolist() == [[0] * 4] * 4
    assert all(r["support"] == 0 and r["precision"] == 0.0 for r in m["per_class"])
    ev.update(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64))  # an empty batch is fine
    ev.update(torch.eye(4), torch.arange(4))
    assert ev.compute()["accuracy"] == 1.0
    ev.reset()
    assert ev.num_images == 0 and ev.compute()["confusion"].sum() == 0
    assert "images 0" in classification_table(m)


def test_evaluator_errors():
    with pytest.raises(ValueError, match="class_names must be unique, got duplicates"):
        ClassificationEvaluator(["a", "a"])
    with pytest.raises(TypeError, match="class_names must be a sequence of str, got str"):
        ClassificationEvaluator("abc")
    with pytest.raises(ValueError, match="topk must hold ints >= 1"):
        ClassificationEvaluator(NAMES, topk=(0, 1))
    ev = ClassificationEvaluator(NAMES)
    with pytest.raises(ValueError, match=r"logits must have one column per class \(4"):
        ev.update(torch.randn(2, 3), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"targets must hold class indices \[0, 4\), got 4 at index 1"):
        ev.update(torch.randn(2, 4), torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="logits and targets must have the same number of samples"):
        ev.update(torch.randn(2, 4), torch.tensor([0]))
    with pytest.raises(TypeError, match="logits must be a floating-point tensor"):
        ev.update(torch.tensor([[0, 1, 0, 0]]), torch.tensor([1]))
    assert ev.num_images == 0  # nothing was added by the failed calls


# --------------------------------------------------------------------------------------------
# Reports


def test_classification_table_is_aligned_and_ends_with_all():
    ev = ClassificationEvaluator(["cat", "a_long_dog_name", "bird"], topk=(1, 2))
    logits, targets = _random_batch(0, n=30, c=3)
    ev.update(logits, targets)
    m = ev.compute()
    text = classification_table(m, ["cat", "a_long_dog_name", "bird"])
    lines = text.split("\n")
    assert lines[0].startswith("images 30  accuracy ") and f"top2 {m['top2']:.3f}" in lines[0]
    header = lines[1].split()
    assert header == ["class", "support", "precision", "recall", "f1"]
    assert lines[-1].split()[0] == "all" and int(lines[-1].split()[1]) == 30
    assert lines[-1].split()[2:] == [f"{m['mean_precision']:.3f}", f"{m['mean_recall']:.3f}", f"{m['mean_f1']:.3f}"]
    body = lines[3:6]
    for line, row in zip(body, m["per_class"]):
        assert line.split() == [row["name"], str(row["support"]), f"{row['precision']:.3f}",
                                f"{row['recall']:.3f}", f"{row['f1']:.3f}"]
    # Aligned: the numbers of every line end in the same columns.
    table = lines[1:]
    assert len({len(line) for line in table}) == 1
    assert len({tuple(m.end() for m in re.finditer(r"\S+", line))[1:] for line in table}) == 1
    # Names given explicitly replace the stored ones; the default takes the stored ones.
    assert classification_table(m, ["x", "y", "z"]).split("\n")[3].startswith("x ")
    assert classification_table(m) == text
    with pytest.raises(ValueError, match=r"class_names must have one name per class of metrics \(3\), got 2"):
        classification_table(m, ["x", "y"])
    with pytest.raises(ValueError, match="lacks"):
        classification_table({"per_class": []})
    with pytest.raises(TypeError, match="metrics must be the dict ClassificationEvaluator.compute"):
        classification_table([1, 2])
