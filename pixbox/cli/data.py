"""``pixbox data <action>``: make, convert, preview and check datasets on disk.

- ``pixbox data make TASK DIR``: write a generated dataset (:func:`pixbox.data.generators.make_dataset`);
- ``pixbox data convert SRC DST --to FMT``: convert a detection dataset to another format
  (:func:`pixbox.data.formats.convert_detection`);
- ``pixbox data preview DIR --out preview.png``: draw samples with their labels, optionally
  next to their augmented versions (:func:`pixbox.data.preview.preview_dataset`);
- ``pixbox data check DIR``: validate a dataset and print its statistics
  (:func:`pixbox.data.check.check_dataset`).

Mistakes in the user's data or arguments (a missing folder, a split that exists already, a bad
annotation line) print ``error: ...`` on stderr and return exit code 1, never a traceback; usage
errors return argparse's code 2.
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["add_parser"]

# The tasks and detection formats, spelled out so that ``pixbox --help`` need not import torch
# code; tests check that they match GENERATORS and DETECTION_FORMATS.
_TASKS = ("bananas", "shapes", "photos", "segmentation", "classification")
_DETECTION_FORMATS = ("csv", "voc", "coco", "yolo")
# The tasks of `pixbox data check` and `preview`, and every layout name they take.
_DATA_TASKS = ("detection", "segmentation", "classification")
_ALL_FORMATS = _DETECTION_FORMATS + ("folder",)
_FORMAT_HELP = ("the layout (default: detected): detection csv, voc, coco or yolo; segmentation voc; "
                "classification folder or csv")
_OUTSIDE_HELP = ("accept annotation paths that point outside the dataset folder (../ or absolute paths, for "
                 "images kept elsewhere on purpose); refused by default")
# The layouts written by the tasks that have no --format.
_FIXED_LAYOUT = {"segmentation": "voc", "classification": "folder"}
# What the ``pixbox data`` handlers turn into "error: ..." (exit code 1) instead of a traceback.
# DatasetError is a ValueError; FileExistsError, PermissionError, ... are OSErrors.
_USER_ERRORS = (ValueError, OSError)


def _choice(kind: str, choices: Sequence[str]) -> Callable[[str], str]:
    """An argparse ``type`` accepting one of ``choices``, suggesting the nearest name otherwise."""
    def parse(text: str) -> str:
        if text in choices:
            return text
        hint = difflib.get_close_matches(text, choices, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise argparse.ArgumentTypeError(f"unknown {kind} {text!r}{extra} (choose from {', '.join(choices)})")

    parse.__name__ = kind  # argparse names the type in some messages
    return parse


def _int_at_least(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return parse


def _fail(error: BaseException) -> int:
    print(f"error: {error}", file=sys.stderr)
    return 1


def _counts(counts: dict[str, int]) -> list[str]:
    width = max((len(s) for s in counts), default=0)
    return [f"  {split:<{width}}  {n} image{'s' if n != 1 else ''}" for split, n in counts.items()]


# ----------------------------------------------------------------------------------------------
# Handlers


def _run_make(args: argparse.Namespace) -> int:
    from pixbox.data.generators import GENERATORS, make_dataset

    accepted = inspect.signature(GENERATORS[args.task]).parameters
    options = {"num_train": args.num_train, "num_val": args.num_val, "image_size": args.image_size,
               "fmt": args.format, "max_objects": args.max_objects}
    flags = {"fmt": "--format", "max_objects": "--max-objects"}
    for name, value in list(options.items()):
        if value is None:
            del options[name]  # the generator's default
        elif name not in accepted:
            takers = [t for t, make in GENERATORS.items() if name in inspect.signature(make).parameters]
            named = " and ".join(filter(None, [", ".join(takers[:-1]), takers[-1]]))
            return _fail(f"{flags[name]} applies to the task{'s' if len(takers) > 1 else ''} "
                         f"{named} only, not to {args.task!r}")
    if args.dir.exists() and not args.dir.is_dir():
        return _fail(f"DIR must be a dataset folder, but {args.dir} is a file")
    try:
        counts = make_dataset(args.task, args.dir, seed=args.seed, progress=args.progress,
                              overwrite=args.overwrite, **options)
    except FileExistsError as e:  # the library's advice names the Python argument
        return _fail(str(e).replace("pass overwrite=True", "pass --overwrite"))
    except (*_USER_ERRORS, ImportError) as e:  # ImportError: photos without scikit-image
        return _fail(e)
    layout = options.get("fmt", _FIXED_LAYOUT.get(args.task) or accepted["fmt"].default)
    print(f"wrote the {args.task} dataset ({layout} layout, seed {args.seed}) to {args.dir}:")
    print("\n".join(_counts(counts)) if counts else "  no splits (every count is 0)")
    return 0


def _run_convert(args: argparse.Namespace) -> int:
    from pixbox.data.formats import convert_detection, detect_format

    try:
        with warnings.catch_warnings(record=True) as caught:  # what was lost goes into the summary
            warnings.simplefilter("always")
            counts = convert_detection(args.src, args.dst, from_fmt=args.from_fmt, to_fmt=args.to_fmt,
                                       splits=args.split, allow_outside=args.allow_outside)
        from_fmt = args.from_fmt or detect_format(args.src)
    except _USER_ERRORS as e:
        return _fail(e)
    print(f"converted {args.src} ({from_fmt}) to {args.dst} ({args.to_fmt}):")
    print("\n".join(_counts(counts)))
    for w in caught:
        print(f"note: {w.message}")
    return 0


def _run_preview(args: argparse.Namespace) -> int:
    from pixbox.data.preview import preview_dataset

    try:
        path = preview_dataset(args.dir, args.out, num=args.num, split=args.split, task=args.task,
                               fmt=args.format, augment=args.augment, seed=args.seed, cols=args.cols,
                               allow_outside=args.allow_outside)
    except _USER_ERRORS as e:
        return _fail(e)
    print(path)
    return 0


def _run_check(args: argparse.Namespace) -> int:
    from pixbox.data.check import check_dataset

    try:
        report = check_dataset(args.dir, task=args.task, fmt=args.format, split=args.split,
                               progress=args.progress, allow_outside=args.allow_outside)
    except _USER_ERRORS as e:
        return _fail(e)
    print(report.format())
    return 0 if report.ok else 1


# ----------------------------------------------------------------------------------------------
# Parsers


def add_parser(subparsers) -> None:
    """Registers ``data`` and its actions on the top-level ``subparsers``."""
    parser = subparsers.add_parser("data", help="make, convert, preview and check datasets",
                                   description="Make, convert, preview and check datasets on disk.")
    actions = parser.add_subparsers(dest="action", metavar="<action>", required=True)
    formats = ", ".join(_DETECTION_FORMATS)

    make = actions.add_parser(
        "make", help="write a generated dataset (bananas, shapes, photos, segmentation, classification)",
        description="Write a generated dataset to DIR, offline and reproducibly (the same seed gives the "
                    "same files), and print the splits written. Tasks: bananas (one banana per image, "
                    "D2L CSV layout), shapes (0-8 shapes of 6 classes, COCO), photos (1-4 objects of 5 "
                    "classes cut out of the real photos that scikit-image bundles, pasted on other photos, "
                    "COCO; needs pip install 'pixbox[photos]'), segmentation (VOC segmentation layout), "
                    "classification (a folder per class in train/ and val/).")
    make.add_argument("task", type=_choice("task", _TASKS), metavar="TASK",
                      help=f"one of {', '.join(_TASKS)}")
    make.add_argument("dir", type=Path, metavar="DIR", help="the dataset folder (created when missing)")
    make.add_argument("--seed", type=_int_at_least(0), default=0, help="random seed, >= 0 (default: %(default)s)")
    make.add_argument("--num-train", type=_int_at_least(0), help="images in the train split (0 skips it; "
                      "default: 1000, 500 for classification)")
    make.add_argument("--num-val", type=_int_at_least(0), help="images in the val split (0 skips it; "
                      "default: 100, 200 for photos)")
    make.add_argument("--image-size", type=_int_at_least(32), metavar="PX",
                      help="side of the square images, >= 32 (default: 256, 320 for photos, 64 for classification)")
    make.add_argument("--format", type=_choice("format", _DETECTION_FORMATS), metavar="FMT",
                      help=f"detection tasks only: {formats} (default: csv for bananas, coco for shapes and photos)")
    make.add_argument("--max-objects", type=_int_at_least(0), metavar="K",
                      help="shapes and photos only: the most objects in one image (default: 8 for shapes, 4 for "
                      "photos)")
    make.add_argument("--overwrite", action="store_true",
                      help="replace splits that pixbox data make wrote before (other files are never deleted)")
    make.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bars")
    make.set_defaults(func=_run_make)

    convert = actions.add_parser(
        "convert", help="convert a detection dataset to another format",
        description=f"Convert a detection dataset ({formats}) to another format, split by split; the "
                    "images are copied. SRC's format is detected from its layout unless --from is given. "
                    "DST must not hold the same splits already. Crowd objects (COCO iscrowd) are dropped "
                    "when converting to a format without that flag; a note says how many.")
    convert.add_argument("src", type=Path, metavar="SRC", help="the source dataset folder")
    convert.add_argument("dst", type=Path, metavar="DST", help="the destination folder (created when missing)")
    convert.add_argument("--to", dest="to_fmt", required=True, type=_choice("format", _DETECTION_FORMATS),
                         metavar="FMT", help=f"the destination format: {formats}")
    convert.add_argument("--from", dest="from_fmt", type=_choice("format", _DETECTION_FORMATS), metavar="FMT",
                         help="the source format (default: detected from the layout)")
    convert.add_argument("--split", action="append", metavar="S",
                         help="a split to convert; repeat for several (default: every split)")
    convert.add_argument("--allow-outside-paths", dest="allow_outside", action="store_true",
                         help=_OUTSIDE_HELP)
    convert.set_defaults(func=_run_convert)

    preview = actions.add_parser(
        "preview", help="draw samples with their labels into one image",
        description="Draw samples of a dataset in a grid: boxes and class names for detection, the mask "
                    "overlay and a legend for segmentation, the class name for classification. With "
                    "--augment, each sample is shown next to its augmented version (the typical "
                    "training augmentation of the task, seeded with --seed). Prints the output path.")
    preview.add_argument("dir", type=Path, metavar="DIR", help="the dataset folder")
    preview.add_argument("--out", type=Path, default=Path("preview.png"),
                         help="output image, .png or .jpg (default: %(default)s)")
    preview.add_argument("--num", type=_int_at_least(1), default=16, metavar="N",
                         help="samples to draw, picked at random with --seed (default: %(default)s)")
    preview.add_argument("--split", metavar="S",
                         help="the split (default: train, or the only split when there is one)")
    preview.add_argument("--task", type=_choice("task", _DATA_TASKS), metavar="T",
                         help=f"{', '.join(_DATA_TASKS)} (default: detected from the layout)")
    preview.add_argument("--format", type=_choice("format", _ALL_FORMATS), metavar="FMT",
                         help=_FORMAT_HELP)
    preview.add_argument("--augment", action="store_true", help="show each sample next to its augmented version")
    preview.add_argument("--seed", type=_int_at_least(0), default=0,
                         help="seed of the sample choice and the augmentation (default: %(default)s)")
    preview.add_argument("--cols", type=_int_at_least(1), metavar="C",
                         help="samples per row (default: about square)")
    preview.add_argument("--allow-outside-paths", dest="allow_outside", action="store_true", help=_OUTSIDE_HELP)
    preview.set_defaults(func=_run_preview)

    check = actions.add_parser(
        "check", help="validate a dataset and print its statistics",
        description="Validate a dataset (missing or unreadable images, boxes outside the image or "
                    "degenerate, class ids out of range, empty images, ...), print every problem found, "
                    "statistics and a verdict. Exit code 0 when the dataset has no errors, 1 otherwise.")
    check.add_argument("dir", type=Path, metavar="DIR", help="the dataset folder")
    check.add_argument("--task", type=_choice("task", _DATA_TASKS), metavar="T",
                       help=f"{', '.join(_DATA_TASKS)} (default: detected from the layout)")
    check.add_argument("--format", type=_choice("format", _ALL_FORMATS), metavar="FMT", help=_FORMAT_HELP)
    check.add_argument("--split", metavar="S", help="check this split only (default: every split)")
    check.add_argument("--allow-outside-paths", dest="allow_outside", action="store_true", help=_OUTSIDE_HELP)
    check.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    check.set_defaults(func=_run_check)
