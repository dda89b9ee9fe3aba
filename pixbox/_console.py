"""Whether progress bars can be drawn: tqdm's ``\\r`` redraws only make sense on a terminal."""

from __future__ import annotations

import sys

__all__ = ["is_terminal"]


def is_terminal(stream=None) -> bool:
    """Whether ``stream`` (default ``sys.stderr``, where tqdm draws) is an interactive terminal.

    Progress bars are hidden otherwise, so that log files and pipes get no ``\\r`` redraws.
    """
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty())
    except ValueError:  # a closed stream
        return False
