"""Speed of pixbox.ops.roi_align / roi_pool against torchvision's CPU kernels, side by side.

Case: input ``(2, 256, 50, 50)`` float32 (a stride-16 map of an 800x800 image), K=512 random
RoIs (batch index 0 or 1, boxes of 16..400 pixels inside the 800x800 image,
``spatial_scale=1/16``), output 7x7. roi_align runs with ``sampling_ratio`` 2 and -1
(adaptive) and ``aligned`` False/True. "fwd" is the forward pass; "fwd+bwd" adds the backward
pass w.r.t. the input. torchvision is used when importable (see ../shared/peers/README.md):

    PYTHONPATH=. ~/.cache/pixbox-peers/bin/python benchmarks/roi.py
    PYTHONPATH=. .venv/bin/python benchmarks/roi.py --quick      # no torchvision: pixbox only

Figures are median wall times in ms at 2 threads (``--threads``). "speedup" is torchvision
time / pixbox time (> 1 means pixbox is faster). Outputs and input gradients are checked
against torchvision's (``allclose``: ✓ or ✗). Without torchvision, a small case is checked
against the loop references in tests/reference.py instead.
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

warnings.filterwarnings("ignore")
try:
    import torchvision

    TV = torchvision.ops
except Exception:  # noqa: BLE001 - any import failure means "not available"
    TV = None
try:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    import reference as R  # noqa: E402
except ImportError:  # pragma: no cover
    R = None


def timeit(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def make_rois(k: int, g: torch.Generator, image: float = 800.0, lo: float = 16.0, hi: float = 400.0) -> torch.Tensor:
    wh = lo + torch.rand(k, 2, generator=g) * (hi - lo)
    xy = torch.rand(k, 2, generator=g) * (image - wh)
    batch = torch.randint(0, 2, (k, 1), generator=g).float()
    return torch.cat([batch, xy, xy + wh], dim=1)  # [K, 5]


def fwd_bwd(fn, x: torch.Tensor, go: torch.Tensor):
    def run():
        xg = x.detach().requires_grad_()
        out = fn(xg)
        out.backward(go)
        return out.detach(), xg.grad
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rep = 3 if args.quick else 9
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"torchvision {torchvision.__version__ if TV else 'not importable'}\n")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 256, 50, 50, generator=g)
    rois = make_rois(512, g)
    go = torch.randn(512, 256, 7, 7, generator=g)
    scale = 1 / 16

    cases = [("roi_pool", lambda lib: (lambda t: lib.roi_pool(t, rois, (7, 7), scale)))]
    for sr in (2, -1):
        for aligned in (False, True):
            cases.append((f"roi_align sr={sr} aligned={aligned}",
                          lambda lib, sr=sr, aligned=aligned: (
                              lambda t: lib.roi_align(t, rois, (7, 7), scale, sr, aligned))))

    print("| work | pixbox ms | torchvision ms | speedup vs torchvision |")
    print("|---|---|---|---|")
    for name, make in cases:
        mine = make(P)
        with torch.no_grad():
            pix_f = timeit(lambda: mine(x), rep)
        pix_b = timeit(fwd_bwd(mine, x, go), rep)
        if TV:
            theirs = make(TV)
            with torch.no_grad():
                tv_f = timeit(lambda: theirs(x), rep)
            tv_b = timeit(fwd_bwd(theirs, x, go), rep)
            a_out, a_grad = fwd_bwd(mine, x, go)()
            b_out, b_grad = fwd_bwd(theirs, x, go)()
            ok = torch.allclose(a_out, b_out, rtol=1e-4, atol=1e-5) and torch.allclose(a_grad, b_grad, rtol=1e-4, atol=1e-4)
            mark = " ✓" if ok else " ✗"
            print(f"| {name} fwd | {pix_f:.1f} | {tv_f:.1f} | {tv_f / pix_f:.2f}x{mark} |", flush=True)
            print(f"| {name} fwd+bwd | {pix_b:.1f} | {tv_b:.1f} | {tv_b / pix_b:.2f}x{mark} |", flush=True)
        else:
            print(f"| {name} fwd | {pix_f:.1f} | – | – |", flush=True)
            print(f"| {name} fwd+bwd | {pix_b:.1f} | – | – |", flush=True)

    if not TV and R is not None:
        # No torchvision: check a small case against the loop references instead.
        xs = torch.randn(2, 4, 12, 12, generator=g)
        rs = make_rois(8, g, image=192.0, lo=4.0, hi=120.0)
        ok = torch.equal(P.roi_pool(xs, rs, 7, scale), R.roi_pool_loop(xs, rs, (7, 7), scale)[0])
        for sr in (2, -1):
            for aligned in (False, True):
                ok &= torch.allclose(P.roi_align(xs, rs, 7, scale, sr, aligned).double(),
                                     R.roi_align_loop(xs, rs, (7, 7), scale, sr, aligned), atol=1e-5)
        print(f"\nsmall case equal to tests/reference.py loops: {'✓' if ok else '✗'}")


if __name__ == "__main__":
    main()
