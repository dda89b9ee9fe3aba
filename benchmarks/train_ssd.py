"""TinySSD training throughput and predict latency: pixbox against D2L's loop, same network.

The baseline follows the book's "Single Shot Multibox Detection" code exactly: the network in
the default (NCHW, float32) layout, ``d2l.multibox_target`` to label anchors, the book's
``calc_loss`` (cross-entropy + L1, no mining) and SGD at lr 0.2; prediction is the book's
``predict``: ``net(X)``, softmax, ``d2l.multibox_detection`` (its Python NMS) and the row
filter ``output[0, idx]``. It uses the real ``d2l`` package when it imports (see
``../shared/peers/README.md``) and pixbox's transcription (:mod:`pixbox.compat.d2l`) otherwise,
which the header says.

pixbox's side is what ``pixbox detect train`` runs: ``tiny_ssd`` (channels-last), bfloat16
autocast on CPUs with native bfloat16, the batched ``multibox_target`` and the SSD loss;
prediction is ``SSD.predict`` (softmax, decode, per-class NMS, top-k).

Both train on the same random batch (batch 32 at 256 x 256, one box per image) so the figure is
the training step alone, without data loading. Latency is for one 256 x 256 image, after
warm-up, at the book's 0.01 score threshold: with the untrained network on a random image (the
worst case for NMS: every anchor passes the threshold), or with ``--weights best.pt`` (a
trained TinySSD, e.g. ``make demo``'s) on a generated banana image.

    PYTHONPATH=. $PY benchmarks/train_ssd.py          # $PY: the peers venv, or .venv/bin/python
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pixbox.engine.precision import cpu_bf16_supported  # noqa: E402
from pixbox.losses import multibox_loss  # noqa: E402
from pixbox.models import build_model  # noqa: E402
from pixbox.ops import multibox_target  # noqa: E402

try:
    from d2l import torch as d2l

    BASELINE = "d2l " + getattr(__import__("d2l"), "__version__", "")
except Exception:  # noqa: BLE001 - any import failure means "not available"
    from pixbox.compat import d2l

    BASELINE = "pixbox.compat.d2l (d2l not importable)"


def timeit(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def batch(b: int, size: int, g: torch.Generator):
    images = torch.rand(b, 3, size, size, generator=g)
    xy = torch.rand(b, 1, 2, generator=g) * 0.5
    wh = 0.2 + torch.rand(b, 1, 2, generator=g) * 0.3
    labels = torch.cat([torch.zeros(b, 1, 1), xy, xy + wh], dim=2)  # [B, 1, 5] class 0, normalized
    return images, labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5, help="timed training steps per side")
    ap.add_argument("--weights", default=None, help="a trained TinySSD checkpoint for the latency figures")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    images, labels = batch(32, 256, g)
    bf16 = cpu_bf16_supported()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, baseline: {BASELINE}, "
          f"bfloat16 autocast: {'yes' if bf16 else 'no (this CPU has no native bfloat16)'}\n")

    # The book's network and loop: NCHW float32, d2l.multibox_target, calc_loss, SGD lr 0.2.
    torch.manual_seed(0)
    book = build_model("tiny_ssd", 1, channels_last=False)
    trainer = torch.optim.SGD(book.parameters(), lr=0.2, weight_decay=5e-4)
    cls_loss, bbox_loss = nn.CrossEntropyLoss(reduction="none"), nn.L1Loss(reduction="none")

    def calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks):
        batch_size, num_classes = cls_preds.shape[0], cls_preds.shape[2]
        cls = cls_loss(cls_preds.reshape(-1, num_classes), cls_labels.reshape(-1)).reshape(batch_size, -1).mean(dim=1)
        bbox = bbox_loss(bbox_preds * bbox_masks, bbox_labels * bbox_masks).mean(dim=1)
        return cls + bbox

    def book_step():
        trainer.zero_grad()
        anchors, cls_preds, bbox_preds = book(images)
        bbox_labels, bbox_masks, cls_labels = d2l.multibox_target(anchors, labels)
        loss = calc_loss(cls_preds, cls_labels, bbox_preds, bbox_labels, bbox_masks)
        loss.mean().backward()
        trainer.step()

    # pixbox: channels-last, bf16 autocast where native, batched targets, SSD loss.
    torch.manual_seed(0)
    model = build_model("tiny_ssd", 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.004, weight_decay=0.05)

    def pixbox_step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            anchors, cls_preds, bbox_preds = model(images)
        offsets, masks, classes = multibox_target(anchors[0].float(), labels)
        loss = multibox_loss(cls_preds.float(), bbox_preds.float(), classes, offsets, masks)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t_book = timeit(book_step, args.repeat)
    t_pix = timeit(pixbox_step, args.repeat)

    # Latency at batch 1.
    if args.weights:
        from pixbox.tasks import load

        model = load(args.weights, device="cpu").model
        book.load_state_dict(model.state_dict())
    model.eval()
    book.eval()
    x = images[:1]
    if args.weights:  # a real image: a generated val-like banana scene
        from pixbox.data.generators.bananas import render_banana

        x = render_banana(256, seed=12345).image[None].float().div(255)

    def book_predict():
        with torch.no_grad():
            anchors, cls_preds, bbox_preds = book(x)
            cls_probs = F.softmax(cls_preds, dim=2).permute(0, 2, 1)
            output = d2l.multibox_detection(cls_probs, bbox_preds, anchors)
            idx = [i for i, row in enumerate(output[0]) if row[0] != -1]
            return output[0, idx]

    def pixbox_predict():
        return model.predict(x, score_threshold=0.01)

    l_book = timeit(book_predict, 5)
    l_pix = timeit(pixbox_predict, 20)

    rows = [
        ("training img/s (batch 32, 256x256)", 32 / t_pix, 32 / t_book, t_book / t_pix, ">= 2x"),
        ("predict ms/image (batch 1, with decode + NMS)", l_pix * 1000, l_book * 1000, l_book / l_pix, "<= 25 ms"),
    ]
    print("| work | pixbox | D2L loop | speedup | target |")
    print("|---|---|---|---|---|")
    for work, pix, base, ratio, target in rows:
        print(f"| {work} | {pix:.1f} | {base:.1f} | {ratio:.2f}x | {target} |")


if __name__ == "__main__":
    main()
