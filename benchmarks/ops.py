"""Speed of pixbox.ops against torchvision, D2L and pixbox's own reference loops, side by side.

Every peer runs in this one process on the same inputs, so the ratios are meaningful even on a
noisy machine. torchvision and d2l are used when importable (see ../shared/peers/README.md for
a venv where they run on the CPU):

    PY=$(../shared/peers/make-venv.sh)
    PYTHONPATH=. $PY benchmarks/ops.py            # full table
    PYTHONPATH=. $PY benchmarks/ops.py --quick    # fewer repeats

Each figure is the median wall time in ms at 2 threads (``--threads``). "speedup" columns are
peer time / pixbox time (> 1 means pixbox is faster). Results are also checked for equality
(``same``): identical keep lists for NMS, allclose for the rest.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import pixbox.ops as P  # noqa: E402

try:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import reference as R  # noqa: E402
except ImportError:  # pragma: no cover
    R = None

warnings.filterwarnings("ignore")
try:
    import torchvision
    from torchvision.models.detection import _utils as tv_det_utils

    TV = torchvision.ops
except Exception:  # noqa: BLE001 - any import failure means "not available"
    TV = None
try:
    from d2l import torch as d2l
except Exception:  # noqa: BLE001
    d2l = None


def timeit(fn, repeat: int, min_time: float = 0.0) -> float:
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < repeat or (time.perf_counter() - start < min_time and len(times) < 100):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def rand_boxes(n: int, g: torch.Generator, canvas: float = 512, lo: float = 1, hi: float = 100) -> torch.Tensor:
    wh = lo + torch.rand(n, 2, generator=g) * (hi - lo)
    xy = torch.rand(n, 2, generator=g) * (canvas - wh)  # boxes lie inside the canvas
    return torch.cat([xy, xy + wh], dim=1)


def same_up_to_ties(a: torch.Tensor, b: torch.Tensor, scores: torch.Tensor) -> bool:
    """Same kept set and same score sequence: only the order among equal scores may differ."""
    return set(a.tolist()) == set(b.tolist()) and torch.equal(scores[a], scores[b])


def same_rows_up_to_ties(theirs: torch.Tensor, mine: torch.Tensor, atol: float = 1e-5) -> bool:
    """multibox_detection outputs ``[B, A, 6]`` with the same confidence sequence and, per image, the
    same rows: only rows of equal confidence may come in another order (D2L's sort is unstable, and
    5444 uniform float32 draws per image hold a tie or two)."""
    if not torch.allclose(theirs[..., 1], mine[..., 1], atol=atol):
        return False
    return all(torch.allclose(torch.tensor(sorted(t.tolist())), torch.tensor(sorted(m.tolist())), atol=atol)
               for t, m in zip(theirs, mine))


def tiny_ssd_anchors() -> torch.Tensor:
    sizes = [[0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
    return P.generate_multiscale_anchors([(32, 32), (16, 16), (8, 8), (4, 4), (1, 1)], sizes, [1, 2, 0.5])


def banana_labels(b: int, g_count: int, g: torch.Generator) -> torch.Tensor:
    xy = torch.rand(b, g_count, 2, generator=g) * 0.7
    wh = 0.05 + torch.rand(b, g_count, 2, generator=g) * 0.25
    cls = torch.randint(0, 3, (b, g_count, 1), generator=g).float()
    return torch.cat([cls, xy, xy + wh], dim=2)


class Table:
    def __init__(self, peers: list[str]) -> None:
        self.peers = peers
        self.rows: list[list[str]] = []

    def add(self, work: str, pix: float, others: dict[str, float | None], same: dict[str, bool | None]) -> None:
        row = [work, f"{pix:.2f}"]
        for p in self.peers:
            t = others.get(p)
            if t is None:
                row += ["–", "–"]
            else:
                ok = same.get(p)
                mark = "" if ok is None else (" ✓" if ok else " ✗")
                row += [f"{t:.2f}", f"{t / pix:.2f}x{mark}"]
        self.rows.append(row)
        print(" | ".join(row), flush=True)

    def header(self) -> None:
        cols = ["work", "pixbox ms"]
        for p in self.peers:
            cols += [f"{p} ms", f"speedup vs {p}"]
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))

    def markdown(self) -> str:
        cols = ["work", "pixbox ms"]
        for p in self.peers:
            cols += [f"{p} ms", f"speedup vs {p}"]
        lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--only", default="", help="comma-separated subset: nms,batched,iou,target,detection")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rep = 3 if args.quick else 9
    only = set(filter(None, args.only.split(",")))
    peers = ["torchvision", "d2l", "reference"]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"torchvision {'%s' % torchvision.__version__ if TV else 'not importable'}, "
          f"d2l {'importable' if d2l else 'not importable'}, reference loops {'yes' if R else 'no'}\n")
    table = Table(peers)
    table.header()
    g = torch.Generator().manual_seed(0)

    if not only or "nms" in only:
        for n in (1000, 5000, 20000):
            b, s = rand_boxes(n, g), torch.rand(n, generator=g)
            mine = P.nms(b, s, 0.5)
            others, same = {}, {}
            pix = timeit(lambda: P.nms(b, s, 0.5), rep)
            if TV:
                others["torchvision"] = timeit(lambda: TV.nms(b, s, 0.5), rep)
                same["torchvision"] = torch.equal(TV.nms(b, s, 0.5), mine)
            if d2l and n <= 5000:
                others["d2l"] = timeit(lambda: d2l.nms(b, s, 0.5), max(1, rep // 3))
                same["d2l"] = same_up_to_ties(d2l.nms(b, s, 0.5), mine, s)  # D2L's sort is unstable
            if R and n <= 1000:
                others["reference"] = timeit(lambda: R.nms(b, s, 0.5), 1)
                same["reference"] = torch.equal(R.nms(b, s, 0.5), mine)
            table.add(f"nms N={n}", pix, others, same)

    if not only or "batched" in only:
        for n in (1000, 5000, 20000):
            b, s = rand_boxes(n, g), torch.rand(n, generator=g)
            c = torch.randint(0, 20, (n,), generator=g)
            mine = P.batched_nms(b, s, c, 0.5)
            others, same = {}, {}
            pix = timeit(lambda: P.batched_nms(b, s, c, 0.5), rep)
            if TV:
                others["torchvision"] = timeit(lambda: TV.batched_nms(b, s, c, 0.5), rep)
                theirs = TV.batched_nms(b, s, c, 0.5)
                # torchvision re-sorts its result with an unstable sort: compare sets and score order.
                same["torchvision"] = same_up_to_ties(theirs, mine, s)
            if R and n <= 1000:
                others["reference"] = timeit(lambda: R.batched_nms(b, s, c, 0.5), 1)
                same["reference"] = torch.equal(R.batched_nms(b, s, c, 0.5), mine)
            table.add(f"batched_nms 20 classes N={n}", pix, others, same)

    if not only or "iou" in only:
        for n, m in ((1000, 1000), (8732, 10), (20000, 50)):
            b1, b2 = rand_boxes(n, g), rand_boxes(m, g)
            mine = P.box_iou(b1, b2)
            others, same = {}, {}
            pix = timeit(lambda: P.box_iou(b1, b2), rep, 0.3)
            if TV:
                others["torchvision"] = timeit(lambda: TV.box_iou(b1, b2), rep, 0.3)
                same["torchvision"] = torch.equal(TV.box_iou(b1, b2), mine)
            if d2l:
                others["d2l"] = timeit(lambda: d2l.box_iou(b1, b2), rep, 0.3)
                same["d2l"] = torch.allclose(d2l.box_iou(b1, b2), mine)
            if R and n * m <= 10000:
                others["reference"] = timeit(lambda: R.box_iou(b1, b2), 1)
                same["reference"] = torch.allclose(R.box_iou(b1, b2), mine)
            table.add(f"box_iou {n}x{m}", pix, others, same)

    anchors = tiny_ssd_anchors()
    if not only or "target" in only:
        for gc in (1, 10):
            labels = banana_labels(32, gc, g)
            others, same = {}, {}
            pix = timeit(lambda: P.multibox_target(anchors, labels), rep, 0.3)
            mine = P.multibox_target(anchors, labels)
            if TV:
                matcher = tv_det_utils.SSDMatcher(0.5)
                coder = tv_det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))

                def tv_target():
                    out = []
                    for lab in labels:
                        iou = TV.box_iou(lab[:, 1:], anchors)
                        idx = matcher(iou)
                        fg = idx >= 0
                        cls = torch.zeros(anchors.shape[0], dtype=torch.long)
                        cls[fg] = lab[idx[fg], 0].long() + 1
                        reg = coder.encode_single(lab[idx.clamp(min=0), 1:], anchors)
                        out.append((reg * fg[:, None], fg, cls))
                    return out

                others["torchvision"] = timeit(tv_target, rep, 0.3)
            if d2l:
                others["d2l"] = timeit(lambda: d2l.multibox_target(anchors[None], labels), rep, 0.3)
                theirs = d2l.multibox_target(anchors[None], labels)
                same["d2l"] = (torch.equal(theirs[2], mine[2]) and torch.equal(theirs[1], mine[1])
                               and torch.allclose(theirs[0], mine[0], atol=1e-3))
            if R:
                others["reference"] = timeit(lambda: R.multibox_target(anchors, labels), 1)
                ref = R.multibox_target(anchors, labels)
                same["reference"] = (torch.equal(ref[2].long(), mine[2])
                                     and torch.allclose(ref[0].to(mine[0].dtype), mine[0], atol=1e-5))
            table.add(f"multibox_target B=32 A={anchors.shape[0]} G={gc}", pix, others, same)

    if not only or "detection" in only:
        b = 32
        a = anchors.shape[0]
        # Distinct foreground probabilities per image: with score ties D2L's unstable sort (and so
        # its result) is unspecified, which would make the equality check meaningless.
        fg = torch.stack([torch.randperm(a, generator=g) for _ in range(b)]).double().add_(1).div_(a + 1)
        cls_probs = torch.stack([1 - fg, fg], dim=1).float()
        offsets = torch.randn(b, anchors.shape[0] * 4, generator=g) * 0.5
        others, same = {}, {}
        pix = timeit(lambda: P.multibox_detection(cls_probs, offsets, anchors, 0.5), rep)
        mine = P.multibox_detection(cls_probs, offsets, anchors, 0.5)
        if TV:
            coder = tv_det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))

            def tv_detect():
                out = []
                for i in range(b):
                    boxes = coder.decode_single(offsets[i].view(-1, 4), anchors)
                    conf = cls_probs[i, 1:].amax(0)
                    out.append(TV.nms(boxes, conf, 0.5))
                return out

            others["torchvision"] = timeit(tv_detect, rep)
        if d2l:
            others["d2l"] = timeit(lambda: d2l.multibox_detection(cls_probs, offsets, anchors[None], 0.5), 1)
            theirs = d2l.multibox_detection(cls_probs, offsets, anchors[None], 0.5)
            same["d2l"] = torch.allclose(theirs, mine, atol=1e-5)
        table.add(f"multibox_detection B=32 A={anchors.shape[0]} C=1", pix, others, same)

        # Issue 18's workload: 3 classes (background + 2) with probabilities from a normalised
        # uniform draw, so that every anchor passes the 0.01 threshold; zero offsets (the book's
        # example) and random ones.
        for label, offsets in (("zero offsets", torch.zeros(b, a * 4)),
                               ("offsets N(0, 0.5^2)", torch.randn(b, a * 4, generator=g) * 0.5)):
            probs = torch.rand(b, 3, a, generator=g)
            probs /= probs.sum(1, keepdim=True)
            others, same = {}, {}
            pix = timeit(lambda: P.multibox_detection(probs, offsets, anchors, 0.5), rep)
            mine = P.multibox_detection(probs, offsets, anchors, 0.5)
            if d2l:
                others["d2l"] = timeit(lambda: d2l.multibox_detection(probs, offsets, anchors[None], 0.5), 3)
                theirs = d2l.multibox_detection(probs, offsets, anchors[None], 0.5)
                same["d2l"] = same_rows_up_to_ties(theirs, mine)
            table.add(f"multibox_detection B=32 A={a} 3 classes, {label}", pix, others, same)


if __name__ == "__main__":
    main()
