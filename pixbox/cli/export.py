"""``pixbox export``: write a trained model as ONNX and check it against PyTorch.

- ``pixbox export --weights RUN/best.pt [--format onnx] [--dynamic] [--opset N] [-o OUT.onnx]``:
  export a classify, detect (SSD/TinySSD) or segment (FCN) checkpoint
  (:func:`pixbox.export.export_onnx`), then run the file with ONNX Runtime on sample inputs and
  print the comparison with PyTorch. A difference above ``--atol`` (default 1e-4) or different
  kept detections removes the file and returns 1.

Detection graphs end at the decoded boxes and class scores; NMS is a pixbox post-step (see
:mod:`pixbox.export`). ``pixbox detect predict --weights OUT.onnx`` runs the exported file.

Usage mistakes print the usage and return exit code 2; mistakes in the files or values, and a
failed verification, print ``error: ...`` and return 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pixbox.cli._common import USER_ERRORS, choice, fail, number

__all__ = ["add_parser"]


def _run(args: argparse.Namespace) -> int:
    from pixbox.export import VerificationError, export_onnx, format_report

    try:
        result = export_onnx(args.weights, args.out, dynamic=args.dynamic, opset=args.opset,
                             verify=not args.no_verify, atol=args.atol, score_threshold=args.conf,
                             nms_threshold=args.iou, topk=args.max_det)
    except VerificationError as e:
        print(format_report(e.report))
        return fail(str(e).splitlines()[0])
    except (*USER_ERRORS, ImportError) as e:
        return fail(e)
    if "rows" in result:
        print(format_report(result))
    print(f"wrote {result['path']} ({result['task']}, opset {result['opset']}, "
          f"{'dynamic' if result['dynamic'] else 'fixed'} batch)")
    return 0


def add_parser(subparsers) -> None:
    """Registers ``export`` on the top-level ``subparsers``."""
    from pixbox.export import EXPORT_FORMATS

    parser = subparsers.add_parser(
        "export", help="export a trained model to ONNX and verify it with ONNX Runtime",
        description="Export a classify, detect (SSD/TinySSD) or segment (FCN) checkpoint to ONNX, then run it with "
                    "ONNX Runtime on sample inputs and compare with PyTorch (max abs diff, kept detections). "
                    "Detection graphs output decoded boxes and class scores; NMS is a pixbox post-step. Needs the "
                    "'export' extra: pip install 'pixbox[export]'.")
    parser.add_argument("--weights", type=Path, required=True, metavar="PT", help="best.pt or last.pt of a run")
    parser.add_argument("--format", type=choice("format", EXPORT_FORMATS), default="onnx", metavar="FMT",
                        help="(default: %(default)s)")
    parser.add_argument("-o", "--out", type=Path, metavar="FILE",
                        help="the output file (default: the weights path with the suffix .onnx)")
    parser.add_argument("--dynamic", action="store_true",
                        help="dynamic batch size (default: batch 1); FCN height and width are always dynamic")
    parser.add_argument("--opset", type=number(int, 18), default=18, metavar="N",
                        help="ONNX opset, >= 18 (default: %(default)s)")
    parser.add_argument("--atol", type=number(float, 0, low_open=True), default=1e-4,
                        help="verification tolerance on every output (default: %(default)s)")
    parser.add_argument("--conf", type=number(float, 0, high=1), default=0.25,
                        help="detection: default score threshold stored in the file (default: %(default)s)")
    parser.add_argument("--iou", type=number(float, 0, high=1), default=0.45,
                        help="detection: default NMS IoU threshold stored in the file (default: %(default)s)")
    parser.add_argument("--max-det", type=number(int, 1), default=100, metavar="N",
                        help="detection: default detections per image stored in the file (default: %(default)s)")
    parser.add_argument("--no-verify", action="store_true", help="skip the ONNX Runtime comparison")
    parser.set_defaults(func=_run)
