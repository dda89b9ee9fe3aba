"""ONNX Runtime vs PyTorch latency of TinySSD at batch 1, 256 x 256, on the CPU.

Exports a seeded TinySSD (1 class) with :func:`pixbox.export.export_onnx` (verified against
PyTorch as ``pixbox export`` does) and times, with the same number of threads on both sides:

- ``graph``: the exported computation alone (network + box decoding + softmax) on one
  prepared ``[1, 3, 256, 256]`` batch: ``_SSDGraph`` under ``torch.inference_mode`` vs the ONNX
  Runtime session;
- ``predict``: ``pixbox.load(...).predict(image)`` on one 256 x 256 ``uint8`` image, i.e. plus
  preprocessing and the NMS post-step (the same code on both sides).

Each figure is the median of ``--runs`` calls after ``--warmup`` calls, in milliseconds; the
machine is shared, so medians are the robust choice.

    PYTHONPATH=. .venv/bin/python benchmarks/export.py                # 2 threads, 50 runs
    PYTHONPATH=. .venv/bin/python benchmarks/export.py --threads 1 --runs 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pixbox.tasks.detect import Predictor
from pixbox.tasks import load  # noqa: E402
from pixbox.export import OnnxModel, _SSDGraph, export_onnx, load_onnx  # noqa: E402
from pixbox.models import MODELS  # noqa: E402


def median_ms(fn, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        pt = Predictor(MODELS["tiny_ssd"](1), ["banana"], 256, model_name="tiny_ssd").save(Path(tmp) / "tiny.pt")
        report = export_onnx(pt)
        print(f"export verified: {report['ok']} (max abs diff "
              f"{max(r['max_abs_diff'] for r in report['rows']):.2g})")
        x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
        image = (x[0] * 255).round().to(torch.uint8)

        torch_pred = load(pt, device="cpu")
        graph = _SSDGraph(torch_pred.model).eval()
        onnx_model = OnnxModel(report["path"], threads=args.threads)
        onnx_pred = load_onnx(report["path"], threads=args.threads)

        def torch_graph():
            with torch.inference_mode():
                graph(x)

        rows = [
            ("graph", median_ms(torch_graph, args.runs, args.warmup),
             median_ms(lambda: onnx_model(x), args.runs, args.warmup)),
            ("predict", median_ms(lambda: torch_pred.predict(image), args.runs, args.warmup),
             median_ms(lambda: onnx_pred.predict(image), args.runs, args.warmup)),
        ]
    print(f"TinySSD, batch 1, 256x256, {args.threads} thread(s), median of {args.runs} runs (ms)")
    print(f"{'step':<10} {'PyTorch':>9} {'ONNX RT':>9} {'speed-up':>9}")
    for name, t_torch, t_onnx in rows:
        print(f"{name:<10} {t_torch:>9.2f} {t_onnx:>9.2f} {t_torch / t_onnx:>8.2f}x")


if __name__ == "__main__":
    main()
