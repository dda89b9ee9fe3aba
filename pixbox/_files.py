"""Atomic file writing and new output folders, shared by every module that writes files.

A file is written to a temporary file in the same folder and then moved over the target with
:func:`os.replace`, so a reader (or a crash) never sees a half-written file: the target holds
either its old content or the new one. The new file gets the usual permissions (``0o666``
less the process umask), not the owner-only mode of :func:`tempfile.mkstemp`.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

__all__ = ["atomic_open", "unique_dir"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", **kwargs) -> Iterator[IO]:
    """Opens a temporary file for writing that replaces ``path`` when the block succeeds.

    The parent folder is created when missing. If the block raises, the temporary file is
    removed and ``path`` is left as it was.

    Example:
        >>> with atomic_open("runs/notes.txt", "w", encoding="utf-8") as f:  # doctest: +SKIP
        ...     f.write("done")
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def unique_dir(parent, name: str) -> Path:
    """``parent/name``, or ``parent/name2``, ``name3``, ... when it exists; created, never reused.

    Args:
        parent (str or PathLike): the folder holding the runs.
        name (str): the wanted name.

    Returns:
        Path: a new, empty folder.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        path = parent / (name if k == 1 else f"{name}{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1
