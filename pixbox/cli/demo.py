"""``pixbox demo <name>``: run a walkthrough that writes figures to files."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser"]


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _run_anchors(args: argparse.Namespace) -> int:
    from pixbox.demos import anchors

    for path in anchors.run(args.out, seed=args.seed).values():
        print(path)
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
    anchors.add_argument("--seed", type=_non_negative_int, default=0, help="random seed, >= 0 (default: %(default)s)")
    anchors.set_defaults(func=_run_anchors)
