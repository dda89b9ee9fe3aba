"""``pixbox detect <action>``: train, validate and run object detectors.

- ``pixbox detect train --data DIR [--model tiny_ssd] [--epochs N] ... [--config cfg.yaml]``:
  train (:func:`pixbox.tasks.detect.train_detector`); flags override the config file; every
  run writes to ``runs/detect/<name>/``; ``--resume [NAME | RUN_DIR | last.pt]`` continues a
  stopped run;
- ``pixbox detect val --weights best.pt [--data DIR]``: print the metrics table, write
  ``val_metrics.json`` and ``pr_curve.png`` (:func:`pixbox.tasks.detect.evaluate_detector`);
- ``pixbox detect predict --weights best.pt SOURCE... [--out DIR]``: draw the detections on
  images given as files, folders or globs, and write ``predictions.json``
  (:func:`pixbox.tasks.detect.predict_detector`);
- ``pixbox detect proposals --data DIR -o FILE [--split S ...] [--mode fast|quality]``: run
  selective search over a dataset and write the region proposals file that the Fast R-CNN
  models (``fast_rcnn_*``) take with ``--proposals FILE`` in ``train``, ``val`` and
  ``predict`` (:func:`pixbox.data.proposals.make_proposals`; needs OpenCV contrib).

Usage mistakes (an unknown option or value, with the nearest valid name) print the usage and
return exit code 2. Mistakes in the data, files or config values print ``error: ...`` on stderr
and return 1, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pixbox.cli._common import USER_ERRORS as _USER_ERRORS
from pixbox.cli._common import ActionParser as _ActionParser
from pixbox.cli._common import choice as _choice
from pixbox.cli._common import fail as _fail
from pixbox.cli._common import add_predict_parser, add_train_parser, add_val_parser
from pixbox.cli._common import load_predictor, run_validation
from pixbox.cli._common import number as _number
from pixbox.cli._common import add_outside_paths_flag, add_resume_flags, add_run_flags, run_training

__all__ = ["add_parser"]

_FORMATS = ("auto", "csv", "voc", "coco", "yolo")
_AUGMENT = ("none", "light", "ssd")
# `pixbox detect train` flags that map to DetectConfig keys.
_TRAIN_KEYS = ("data", "format", "model", "proposals", "epochs", "batch", "imgsz", "lr", "optimizer", "workers",
               "device", "name", "project", "seed", "patience", "eval_every", "augment",
               "sync_bn", "amp", "ema", "pretrained", "head_lr_mult", "freeze", "allow_outside_paths")


def _model_names() -> list[str]:
    from pixbox.models import MODELS

    return list(MODELS)


def _defaults() -> dict:
    from pixbox.tasks.detect import DetectConfig

    return {f.name: f.default for f in dataclasses.fields(DetectConfig)}


# ----------------------------------------------------------------------------------------------
# Handlers


def _run_train(args: argparse.Namespace) -> int:
    from pixbox.tasks.detect import DetectConfig
    from pixbox.tasks.detect import train_detector

    flags = {k: getattr(args, k) for k in _TRAIN_KEYS if getattr(args, k) is not None}
    for key in ("data", "proposals"):
        if key in flags:
            flags[key] = str(flags[key])
    return run_training(args, flags, DetectConfig, train_detector, task="detect",
                        data_help="the dataset folder to train on")


def _run_val(args: argparse.Namespace) -> int:
    from pixbox.metrics.detection import save_pr_curves, summary_table
    from pixbox.tasks.detect import evaluate_detector

    return run_validation(args, "detect", evaluate_detector, lambda metrics, names: summary_table(metrics),
                          lambda metrics, names, out: save_pr_curves(metrics, out / "pr_curve.png"),
                          saved={"fmt": ("format", "auto"), "proposals": ("proposals", None),
                                 "allow_outside": ("allow_outside_paths", False)},
                          score_threshold=args.conf, nms_threshold=args.iou)


def _run_predict(args: argparse.Namespace) -> int:
    from pixbox.data.io import find_images
    from pixbox._files import unique_dir
    from pixbox.tasks.detect import predict_detector

    try:
        predictor = load_predictor(args.weights, "detect", device=args.device, batch=args.batch)  # .pt or .onnx
        find_images(args.sources)  # fail on a bad source before making the output folder
        out = Path(args.out) if args.out is not None else unique_dir("runs/detect", "predict")
        results = predict_detector(predictor, args.sources, out=out, score_threshold=args.conf,
                                   nms_threshold=args.iou, proposals=args.proposals)
    except (*_USER_ERRORS, ImportError) as e:
        return _fail(e)
    for r in results:
        counts: dict[str, int] = {}
        for name in r["names"]:
            counts[name] = counts.get(name, 0) + 1
        found = ", ".join(f"{n} {c}" for c, n in sorted(((c, n) for n, c in counts.items()), reverse=True))
        print(f"{r['path']}: {found or 'no detections'}")
    print(f"wrote {len(results)} image{'s' if len(results) != 1 else ''} and predictions.json to {out}")
    return 0


def _run_proposals(args: argparse.Namespace) -> int:
    from pixbox.data.proposals import load_proposals, make_proposals

    try:
        path = make_proposals(args.data, args.out, fmt=args.format, splits=args.split, mode=args.mode,
                              max_proposals=args.max_proposals, max_side=args.max_side,
                              min_side=min(args.min_side, args.max_side))
        table = load_proposals(path)
    except (*_USER_ERRORS, ImportError) as e:
        return _fail(e)
    boxes = sum(len(v) for v in table.values())
    print(f"wrote {path}: {len(table)} images, {boxes / max(1, len(table)):.0f} proposals per image")
    return 0


# ----------------------------------------------------------------------------------------------
# Parsers


def add_parser(subparsers) -> None:
    """Registers ``detect`` and its actions on the top-level ``subparsers``."""
    d = _defaults()
    parser = subparsers.add_parser("detect", help="train, validate and run object detectors",
                                   description="Train, validate and run object detectors (SSD, TinySSD, Faster "
                                               "and Fast R-CNN).")
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True, parser_class=_ActionParser)

    train = add_train_parser(
        actions, help="train a detector on a dataset folder",
        description="Train a detector; the run (config.yaml, last.pt, best.pt, metrics.csv, loss.png, map.png) "
                    "goes to PROJECT/NAME (NAME2, NAME3, ... when it exists). Flags override the values of "
                    "--config. --resume continues a stopped run with its saved config (only --epochs, --device, "
                    "--workers, --patience, --eval-every and --amp may change).",
        config="pixbox.tasks.detect.DetectConfig", data_help="the dataset folder (csv, voc, coco or yolo layout)",
        models=_model_names, model_help="tiny_ssd, ssd_resnet18, ...", defaults=d)
    train.add_argument("--format", type=_choice("format", _FORMATS), metavar="FMT",
                       help=f"{', '.join(_FORMATS)} (default: {d['format']})")
    train.add_argument("--imgsz", type=_number(int, 16), metavar="PX",
                       help=f"square input size (default: {d['imgsz']})")
    train.add_argument("--pretrained", metavar="W",
                       help="backbone weights: 'none' (random), 'default' (offline ImageNet weights: "
                            "ssd_efficientnet_lite0) or a local file (a torchvision ResNet checkpoint) "
                            f"(default: {d['pretrained']})")
    train.add_argument("--head-lr-mult", dest="head_lr_mult", type=_number(float, 0, low_open=True), metavar="M",
                       help=f"with pretrained weights the new layers learn at lr * M (default: {d['head_lr_mult']})")
    train.add_argument("--freeze", type=_choice("freeze mode", ("none", "backbone", "bn")), metavar="WHAT",
                       help="with pretrained weights: none, backbone (train only the new layers) or bn (keep the "
                            f"backbone's BatchNorm statistics) (default: {d['freeze']})")
    add_run_flags(train, d)
    train.add_argument("--proposals", type=Path, metavar="FILE",
                       help="region proposals of the images (fast_rcnn_* models; make the file with "
                            "`pixbox detect proposals`)")
    train.add_argument("--augment", type=_choice("augment preset", _AUGMENT), metavar="PRESET",
                       help=f"{', '.join(_AUGMENT)} (default: {d['augment']})")
    add_resume_flags(train)
    add_outside_paths_flag(train)
    train.set_defaults(func=_run_train)

    val = add_val_parser(
        actions, help="evaluate a checkpoint: metrics table, val_metrics.json, pr_curve.png", batch=16,
        description="Evaluate a checkpoint on a dataset split: print the per-class table and the COCO and VOC "
                    "mAPs, and write val_metrics.json and pr_curve.png (next to the weights, or to --out).")
    val.add_argument("--format", type=_choice("format", _FORMATS), metavar="FMT", help="default: the run's")
    val.add_argument("--conf", type=_number(float, 0, high=1), default=0.01,
                     help="score threshold (default: %(default)s)")
    val.add_argument("--iou", type=_number(float, 0, high=1), default=0.45,
                     help="NMS IoU threshold (default: %(default)s)")
    val.add_argument("--proposals", type=Path, metavar="FILE",
                     help="region proposals of the split's images (fast_rcnn_* models; default: the run's)")
    add_outside_paths_flag(val)
    val.set_defaults(func=_run_val)

    predict = add_predict_parser(
        actions, help="draw detections on images and write predictions.json", metavar="SOURCE",
        out_help="output folder (default: runs/detect/predict, predict2, ...)",
        description="Detect objects in images (files, folders or glob patterns). Writes OUT/<stem>.png with "
                    "the boxes, class names and scores drawn, and OUT/predictions.json (boxes in the pixels "
                    "of the original images).")
    predict.add_argument("--conf", type=_number(float, 0, high=1), default=0.25,
                         help="score threshold (default: %(default)s)")
    predict.add_argument("--iou", type=_number(float, 0, high=1), default=0.45,
                         help="NMS IoU threshold (default: %(default)s)")
    predict.add_argument("--batch", type=_number(int, 1), default=16, metavar="N",
                         help="images per forward pass (default: %(default)s)")
    predict.add_argument("--proposals", type=Path, metavar="FILE",
                         help="region proposals of the images (fast_rcnn_* models; default: selective search "
                              "on each image, which needs opencv-contrib-python-headless)")
    predict.set_defaults(func=_run_predict)

    proposals = actions.add_parser(
        "proposals", help="selective search over a dataset: the proposals file of Fast R-CNN",
        description="Run selective search (OpenCV contrib: pip install opencv-contrib-python-headless) on every "
                    "image of a dataset's splits and write a region proposals JSON file, keyed by the image "
                    "paths relative to the dataset folder, for `--model fast_rcnn_* --proposals FILE`.")
    proposals.add_argument("--data", type=Path, required=True, metavar="DIR", help="the dataset folder")
    proposals.add_argument("--format", type=_choice("format", _FORMATS), default="auto", metavar="FMT",
                           help=f"{', '.join(_FORMATS)} (default: %(default)s)")
    proposals.add_argument("--split", action="append", metavar="S",
                           help="a split to cover (repeat for several; default: all)")
    proposals.add_argument("-o", "--out", type=Path, required=True, metavar="FILE", help="the JSON file to write")
    proposals.add_argument("--mode", type=_choice("mode", ("fast", "quality")), default="fast",
                           help="selective search strategy: fast or quality (default: %(default)s)")
    proposals.add_argument("--max-proposals", dest="max_proposals", type=_number(int, 1), default=2000, metavar="N",
                           help="boxes kept per image, best first (default: %(default)s)")
    proposals.add_argument("--max-side", dest="max_side", type=_number(int, 16), default=500, metavar="PX",
                           help="larger images are searched shrunk to this long side (default: %(default)s)")
    proposals.add_argument("--min-side", dest="min_side", type=_number(int, 1), default=256, metavar="PX",
                           help="smaller images are searched enlarged to this long side (default: %(default)s)")
    proposals.set_defaults(func=_run_proposals)
