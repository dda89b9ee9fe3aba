"""``pixbox demo <name>``: run a walkthrough that writes figures to files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixbox.cli._common import number

__all__ = ["add_parser"]


def _run_anchors(args: argparse.Namespace) -> int:
    from pixbox.demos import anchors

    for path in anchors.run(args.out, seed=args.seed).values():
        print(path)
    return 0


def _run_detect(args: argparse.Namespace) -> int:
    from pixbox.demos import detect

    overrides = {k: v for k, v in (("epochs", args.epochs), ("amp", args.amp)) if v is not None}
    result = detect.run(args.out, seed=args.seed, progress=not args.no_progress, log=lambda line: print(line, flush=True),
                        **overrides)
    print(f"\nval mAP@0.5 {result['map_50']:.3f}  mAP@[.5:.95] {result['map']:.3f}  "
          f"mAP@0.75 {result['map_75']:.3f}")
    print(f"wall time {result['wall_time'] / 60:.1f} min (training {result['train_time'] / 60:.1f} min)")
    for key in ("report", "grid", "loss_curve", "map_curve", "predictions", "run_dir"):
        print(f"{key:12s} {result[key]}")
    return 0


def _run_segment(args: argparse.Namespace) -> int:
    from pixbox.demos import segment

    overrides = {k: v for k, v in (("epochs", args.epochs), ("amp", args.amp)) if v is not None}
    try:
        result = segment.run(args.out, seed=args.seed, progress=not args.no_progress,
                             log=lambda line: print(line, flush=True), **overrides)
    except (ValueError, TypeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"\nval mIoU {result['miou']:.3f}  pixel accuracy {result['pixel_accuracy']:.3f}  "
          f"mean class accuracy {result['mean_class_accuracy']:.3f}")
    print(f"wall time {result['wall_time'] / 60:.1f} min (training {result['train_time'] / 60:.1f} min)")
    for key in ("report", "grid", "predictions", "run_dir"):
        print(f"{key:12s} {result[key]}")
    return 0


def add_parser(subparsers) -> None:
    """Registers ``demo`` and its actions on the top-level ``subparsers``."""
    parser = subparsers.add_parser("demo", help="run a walkthrough that writes figures",
                                   description="Run a walkthrough that writes figures to files.")
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)

    anchors = actions.add_parser(
        "anchors", help="anchor boxes, multiscale anchors and NMS (D2L) on a generated scene",
        description="Anchor boxes, multiscale anchors and NMS (D2L) on a generated scene; "
                    "writes PNG files and prints their paths.")
    anchors.add_argument("--out", type=Path, default=Path("runs/demo/anchors"),
                         help="output folder (default: %(default)s)")
    anchors.add_argument("--seed", type=number(int, 0), default=0, help="random seed, >= 0 (default: %(default)s)")
    anchors.set_defaults(func=_run_anchors)

    detect = actions.add_parser(
        "detect", help="generate bananas, train TinySSD, evaluate and predict (the main demo)",
        description="pixbox's main job end to end and offline: generate the bananas dataset, train "
                    "TinySSD, evaluate it and draw its detections on val images; prints the "
                    "measured mAP, the wall time and where the files are.")
    detect.add_argument("--out", type=Path, default=Path("runs/demo/detect"),
                        help="output folder (default: %(default)s)")
    detect.add_argument("--seed", type=number(int, 0), default=0, help="random seed, >= 0 (default: %(default)s)")
    detect.add_argument("--epochs", type=number(int, 1), default=None,
                        help="override the recipe's number of epochs (default: the demo recipe)")
    detect.add_argument("--no-progress", action="store_true", help="no progress bars")
    detect.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="bfloat16/float16 autocast: --amp forces it, --no-amp trains in float32 "
                             "(default: where the CPU or GPU computes it natively)")
    detect.set_defaults(func=_run_detect)

    segment = actions.add_parser(
        "segment", help="generate VOC-format data, train an FCN-8s, evaluate and predict",
        description="Semantic segmentation end to end and offline: generate a VOC-format dataset, train an "
                    "FCN-8s on EfficientNet-Lite0 (offline ImageNet weights), evaluate it (pixel accuracy, "
                    "mIoU) and write label maps and overlays of val images.")
    segment.add_argument("--out", type=Path, default=Path("runs/demo/segment"),
                         help="output folder (default: %(default)s)")
    segment.add_argument("--seed", type=number(int, 0), default=0, help="random seed, >= 0 (default: %(default)s)")
    segment.add_argument("--epochs", type=number(int, 1), default=None,
                         help="override the recipe's number of epochs (default: the demo recipe)")
    segment.add_argument("--no-progress", action="store_true", help="no progress bars")
    segment.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                         help="bfloat16/float16 autocast: --amp forces it, --no-amp trains in float32 "
                              "(default: where the CPU or GPU computes it natively)")
    segment.set_defaults(func=_run_segment)
