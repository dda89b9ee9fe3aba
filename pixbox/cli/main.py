"""The ``pixbox`` console entry point: ``pixbox <task> <action> [options]``.

Adding a task is one line: write ``pixbox/cli/<task>.py`` with ``add_parser(subparsers)``
(registering actions that ``set_defaults(func=handler)``, where ``handler(args) -> int``),
and append its ``add_parser`` to :data:`TASKS`.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from typing import Sequence

from pixbox import __version__
from pixbox.cli import classify, data, demo, detect, export, segment, serve, stylize

__all__ = ["TASKS", "build_parser", "main"]

#: One ``add_parser(subparsers)`` per task, in the order ``pixbox --help`` lists them.
TASKS = (demo.add_parser, data.add_parser, detect.add_parser, classify.add_parser, segment.add_parser,
         stylize.add_parser, export.add_parser, serve.add_parser)


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose "invalid choice" errors suggest the nearest valid name."""

    def error(self, message: str):
        if "invalid choice:" in message:
            try:
                bad = message.split("invalid choice:", 1)[1].split("'")[1]
                choices = [a for act in self._actions if isinstance(act, argparse._SubParsersAction)
                           for a in act.choices]
                hint = difflib.get_close_matches(bad, choices, n=1)
            except IndexError:
                hint = []
            if hint:
                message += f"; did you mean {hint[0]!r}?"
        super().error(message)


def _no_prefix_matching(parser: argparse.ArgumentParser) -> None:
    """Turns off argparse's prefix matching (``allow_abbrev``) on ``parser`` and every subparser.

    Otherwise ``--epoch 3`` and ``--ep 3`` are silently taken as ``--epochs 3``; now they are
    unknown options, which the action parsers report with the nearest valid name. Done on the
    built tree so that it holds whatever parser class a task module registers.
    """
    parser.allow_abbrev = False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):  # aliases map to the same parser
                _no_prefix_matching(sub)


def build_parser() -> argparse.ArgumentParser:
    """The full ``pixbox`` argument parser, with every task of :data:`TASKS` registered.

    Options must be spelled in full: no parser of the tree accepts a prefix (``--ep`` for
    ``--epochs``).
    """
    parser = _Parser(prog="pixbox", description="pixbox: a pure-PyTorch computer-vision toolkit.")
    parser.add_argument("--version", action="version", version=f"pixbox {__version__}")
    subparsers = parser.add_subparsers(dest="task", metavar="<task>", required=True,
                                       parser_class=_Parser)
    for add_parser in TASKS:
        add_parser(subparsers)
    _no_prefix_matching(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``pixbox`` with ``argv`` (default ``sys.argv[1:]``) and returns the exit code.

    ``--help``, ``--version`` and usage errors return argparse's codes (0, 0 and 2) instead of
    raising ``SystemExit``, so tests can call this directly. An error that no command expected
    prints one line (exit 1); with the environment variable ``PIXBOX_DEBUG=1`` it raises instead,
    with its traceback.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except Exception as e:  # every command handles the user's mistakes; this is the last resort
        if os.environ.get("PIXBOX_DEBUG"):
            raise
        print(f"error: {_unexpected(e)}", file=sys.stderr)
        return 1


def _unexpected(e: Exception) -> str:
    """One line for an error no command expected (PIXBOX_DEBUG=1 shows the traceback instead)."""
    if isinstance(e, RecursionError):
        return "the input is nested too deeply to read (RecursionError); is a file damaged or hostile?"
    if isinstance(e, MemoryError):
        return "out of memory; try a smaller --batch, --imgsz or image"
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return (f"{type(e).__name__}: {text} (unexpected: rerun with PIXBOX_DEBUG=1 for the traceback, and please "
            f"report it)")


if __name__ == "__main__":
    sys.exit(main())
