"""``pixbox segment <action>``: train, validate and run semantic segmentation (FCN).

- ``pixbox segment train --data VOCDIR [--model fcn_resnet18] [--pretrained none|default|PATH]
  [--crop 320x480] [--epochs N] ... [--config cfg.yaml]``: train
  (:func:`pixbox.tasks.segment.train_segmenter`); runs go to ``runs/segment/<name>/``;
  ``--resume`` continues a stopped run;
- ``pixbox segment val --weights best.pt [--data VOCDIR]``: print pixel accuracy, mean class
  accuracy, mIoU and the per-class IoU table; write ``val_metrics.json`` and
  ``confusion_matrix.png``;
- ``pixbox segment predict --weights best.pt IMAGES... --out DIR``: write each label map as a VOC
  palette PNG and an overlay on the image, plus ``predictions.json``.

Usage mistakes print the usage and return exit code 2; mistakes in the data, files or values print
``error: ...`` and return 1.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pixbox.cli._common import USER_ERRORS, ActionParser, choice, fail, load_predictor, number
from pixbox.cli._common import add_predict_parser, add_resume_flags, add_run_flags, add_train_parser, add_val_parser
from pixbox.cli._common import run_training, run_validation

__all__ = ["add_parser"]

_AUGMENT = ("crop", "flip", "scale")
_TRAIN_KEYS = ("data", "model", "pretrained", "crop", "epochs", "batch", "lr", "optimizer", "workers", "device",
               "name", "project", "seed", "patience", "eval_every", "augment",
               "sync_bn", "amp", "ema")


def _model_names() -> list[str]:
    from pixbox.models.fcn import SEGMENTATION_MODELS

    return list(SEGMENTATION_MODELS)


def _defaults() -> dict:
    from pixbox.tasks.segment import SegmentConfig

    return {f.name: f.default for f in dataclasses.fields(SegmentConfig)}


def _crop(text: str) -> str:
    parts = text.lower().split("x")
    if not (1 <= len(parts) <= 2 and all(p.isdigit() and int(p) >= 32 for p in parts)):
        raise argparse.ArgumentTypeError(f"must be HxW (e.g. 320x480) or one side, each >= 32, got {text!r}")
    return text


def _run_train(args: argparse.Namespace) -> int:
    from pixbox.tasks.segment import SegmentConfig
    from pixbox.tasks.segment import train_segmenter

    flags = {k: getattr(args, k) for k in _TRAIN_KEYS if getattr(args, k) is not None}
    if "data" in flags:
        flags["data"] = str(flags["data"])
    if args.freeze_upsample:
        flags["freeze_upsample"] = True
    return run_training(args, flags, SegmentConfig, train_segmenter, task="segment",
                        data_help="the VOC-format dataset folder")


def _run_val(args: argparse.Namespace) -> int:
    from pixbox.metrics.segmentation import segmentation_table
    from pixbox.plots import save_segmentation_confusion
    from pixbox.tasks.segment import evaluate_segmenter

    return run_validation(args, "segment", evaluate_segmenter, segmentation_table,
                          lambda metrics, names, out: save_segmentation_confusion(metrics["confusion"], names,
                                                                                  out / "confusion_matrix.png"))


def _run_predict(args: argparse.Namespace) -> int:
    from pixbox.data.io import find_images
    from pixbox._files import unique_dir
    from pixbox.tasks.segment import predict_segmenter

    try:
        predictor = load_predictor(args.weights, "segment", device=args.device)
        find_images(args.sources)  # fail on a bad source before making the output folder
        out = Path(args.out) if args.out is not None else unique_dir("runs/segment", "predict")
        results = predict_segmenter(predictor, args.sources, out=out, alpha=args.alpha)
    except USER_ERRORS as e:
        return fail(e)
    names = predictor.class_names
    for r in results:
        counts = r["mask"].flatten().bincount(minlength=len(names)).tolist()
        total = max(1, sum(counts))
        shown = ", ".join(f"{names[c]} {100 * n / total:.0f}%" for c, n in
                          sorted(enumerate(counts), key=lambda cn: -cn[1]) if n)
        print(f"{r['path']}: {shown}")
    print(f"wrote {len(results)} label map{'s' if len(results) != 1 else ''}, overlays and predictions.json to {out}")
    return 0


def add_parser(subparsers) -> None:
    """Registers ``segment`` and its actions on the top-level ``subparsers``."""
    d = _defaults()
    parser = subparsers.add_parser("segment", help="train, validate and run semantic segmentation (FCN)",
                                   description="Train, validate and run fully convolutional networks on Pascal "
                                               "VOC-format data (JPEGImages/, SegmentationClass/, ImageSets/).")
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True, parser_class=ActionParser)

    train = add_train_parser(
        actions, help="train an FCN on a VOC-format folder",
        description="Train an FCN on random crops of the training split; the run (config.yaml, last.pt, best.pt, "
                    "metrics.csv, loss.png, miou.png, confusion_matrix.png) goes to PROJECT/NAME. Images smaller "
                    "than the crop are padded (the padding is ignored), never dropped.",
        config="pixbox.tasks.segment.SegmentConfig", data_help="the VOC-format dataset folder", models=_model_names,
        model_help="fcn_resnet18, fcn_efficientnet_lite0, ...", defaults=d)
    train.add_argument("--pretrained", metavar="W",
                       help="backbone weights: 'default' (offline; efficientnet_lite0/1/2 only), a local file (e.g. "
                            f"torchvision's resnet18-f37072fd.pth) or 'none' (default: {d['pretrained']})")
    train.add_argument("--crop", type=_crop, metavar="HxW",
                       help=f"training window (default: {d['crop'][0]}x{d['crop'][1]})")
    train.add_argument("--augment", type=choice("augment preset", _AUGMENT), metavar="PRESET",
                       help=f"crop, flip (crop + horizontal flip) or scale (random 0.5-2x rescale + flip) "
                            f"(default: {d['augment']})")
    train.add_argument("--freeze-upsample", dest="freeze_upsample", action="store_true",
                       help="keep the transposed convolution at its bilinear initialization")
    add_run_flags(train, d)
    add_resume_flags(train)
    train.set_defaults(func=_run_train)

    val = add_val_parser(
        actions, help="evaluate a checkpoint: pixel accuracy, mIoU, per-class IoU", batch=1,
        description="Evaluate an FCN on whole images of a split: print pixel accuracy, mean class accuracy, "
                    "mIoU and the per-class IoU table; write val_metrics.json and confusion_matrix.png (next to "
                    "the weights, or to --out).")
    val.set_defaults(func=_run_val)

    predict = add_predict_parser(
        actions, help="write label maps (VOC palette PNG) and overlays",
        out_help="output folder (default: runs/segment/predict, predict2, ...)",
        description="Segment images (files, folders or glob patterns): write OUT/<stem>.png (the label map as a "
                    "VOC palette PNG), OUT/<stem>_overlay.png and OUT/predictions.json.")
    predict.add_argument("--alpha", type=number(float, 0, high=1), default=0.5,
                         help="overlay opacity (default: %(default)s)")
    predict.set_defaults(func=_run_predict)
