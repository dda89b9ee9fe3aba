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

__all__ = ["PREDICTIONS_FILE", "atomic_open", "check_outputs", "unique_dir"]


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


#: The record a ``predict --out`` folder holds: what pixbox wrote there (``predict`` rewrites only those).
PREDICTIONS_FILE = "predictions.json"


def check_outputs(out, names, inputs) -> Path:
    """Refuses a ``predict --out`` folder whose files would replace or mix with what the user has.

    pixbox never writes over a file it did not write: ``out`` may be a new or empty folder, or
    one that a previous ``predict`` wrote (its files listed in ``out/predictions.json``); it must
    not be the folder of an input image, and no output may replace an input or any other file.
    Checked before any work, so nothing is half-written.

    Args:
        out (str or PathLike): the output folder.
        names (iterable of str): the file names to be written in it (besides predictions.json).
        inputs (iterable of Path): the input image files.

    Returns:
        Path: ``out``.

    Raises:
        ValueError: naming the clash.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out must be a folder, got the file {str(out)!r}")
    inputs = list(inputs)
    folder = out.resolve()
    clash = next((p for p in inputs if Path(p).resolve().parent == folder), None)
    if clash is not None:
        raise ValueError(f"out {str(out)!r} is the folder of the input image {str(clash)!r}: predictions would be "
                         "written among (and over) the inputs; choose another --out folder")
    record = out / PREDICTIONS_FILE
    written: set[str] = set()
    if record.exists():
        import json

        try:
            doc = json.loads(record.read_text(encoding="utf-8"))
            written = {str(v) for item in doc["images"] for k, v in item.items()
                       if k in ("output", "mask", "overlay") and v}
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
            raise ValueError(f"{str(record)!r} exists and is not a pixbox predictions file; choose another --out "
                             "folder") from None
    for name in names:
        target = out / name
        if target.exists() and name not in written:
            raise ValueError(f"out {str(out)!r} already holds {name!r}, which pixbox did not write there: predictions "
                             "never replace existing files; choose an empty or new --out folder")
    return out
