"""The D2L book's data hub, offline: ``DATA_HUB``, ``DATA_URL``, ``download``, ``extract`` and
``download_extract`` with the book's signatures and paths (``../data/...``), that never download.

:func:`download_extract` returns, for a name of :data:`DATA_HUB`:

1. the book's folder (``../data/banana-detection``, ``../data/VOCdevkit/VOC2012``,
   ``../data/hotdog``) when a real copy is already there;
2. else, when the book's archive is in ``../data`` with the right SHA-1, that archive extracted
   (as the book does after its download);
3. else, for the book's chapter 14 data sets (``banana-detection``, ``voc2012``, ``hotdog``),
   pixbox's stand-in in the same layout (:mod:`pixbox.compat._d2l_standins`), generated on the
   first call and reused afterwards, with a :class:`BookDataWarning` once per data set;
4. else it raises ``FileNotFoundError`` saying where to put the file.

Re-exported by :mod:`pixbox.compat.d2l`.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import warnings
import zipfile

from pixbox.compat._d2l_standins import STANDINS, is_standin, write_standin

__all__ = ["DATA_HUB", "DATA_URL", "BookDataWarning", "download", "download_extract", "extract"]

#: The book's data server (never contacted).
DATA_URL = "http://d2l-data.s3-accelerate.amazonaws.com/"

#: name -> (url, sha1), as the book's ``d2l.DATA_HUB``; the chapter 14 entries are filled in.
DATA_HUB: dict[str, tuple[str, str]] = {
    "banana-detection": (DATA_URL + "banana-detection.zip", "5de26c8fce5ccdea9f91267273464dc968d20d72"),
    "voc2012": (DATA_URL + "VOCtrainval_11-May-2012.tar", "4e443f8a2eca6b1dac8a6c57641b67dd40621a49"),
    "hotdog": (DATA_URL + "hotdog.zip", "fba480ffa8aa7e0febbb511d181409f899b9baa5"),
}

_DATA_ROOT = os.path.join("..", "data")  # the book's folder, relative to the notebook's folder
_told: set[str] = set()


class BookDataWarning(UserWarning):
    """Issued once per data set when the book's data is replaced by pixbox's generated stand-in."""


def _sha1(path: str) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _resolve(url: str, sha1_hash):
    if not url.startswith("http"):
        if url not in DATA_HUB:
            raise KeyError(f"name must be a URL or a key of DATA_HUB {sorted(DATA_HUB)}, got {url!r}")
        url, sha1_hash = DATA_HUB[url]
    return url, sha1_hash


def download(url: str, folder: str = _DATA_ROOT, sha1_hash: str | None = None) -> str:
    """The local path ``folder/<file name of url>`` of a file that is already there.

    ``url`` may also be a key of :data:`DATA_HUB`. Nothing is ever downloaded: a missing file,
    or one whose SHA-1 is not ``sha1_hash``, raises ``FileNotFoundError`` naming the path to
    put it at.
    """
    url, sha1_hash = _resolve(url, sha1_hash)
    fname = os.path.join(folder, url.split("/")[-1])
    if os.path.isfile(fname) and (not sha1_hash or _sha1(fname) == sha1_hash):
        return fname
    what = "has another SHA-1 than" if os.path.isfile(fname) else "is not at"
    raise FileNotFoundError(
        f"pixbox.compat.d2l never downloads: {url} {what} {fname!r}; download it there yourself"
        + (f" (SHA-1 {sha1_hash})" if sha1_hash else "")
        + (f", or call download_extract({_name_of(url)!r}), which generates pixbox's stand-in offline"
           if _name_of(url) in STANDINS else ""))


def _name_of(url: str) -> str | None:
    return next((name for name, (u, _) in DATA_HUB.items() if u == url), None)


def extract(filename: str, folder: str | None = None) -> None:
    """Extracts a ``.zip``, ``.tar`` or ``.gz`` archive into ``folder`` (default: its own folder)."""
    base_dir = os.path.dirname(filename)
    ext = os.path.splitext(filename)[1]
    if ext not in (".zip", ".tar", ".gz"):
        raise ValueError(f"filename must end in .zip, .tar or .gz, got {filename!r}")
    with (zipfile.ZipFile(filename, "r") if ext == ".zip" else tarfile.open(filename, "r")) as fp:
        fp.extractall(folder if folder is not None else base_dir)


def download_extract(name: str, folder: str | None = None) -> str:
    """The folder of book data set ``name`` (a key of :data:`DATA_HUB`), offline.

    Args:
        name (str): e.g. ``"banana-detection"``, ``"voc2012"``, ``"hotdog"``.
        folder (str, optional): a sub-folder of ``../data`` to return instead of the archive's
            own folder (the book passes ``"VOCdevkit/VOC2012"`` for ``"voc2012"``).

    Returns:
        str: the book's path, e.g. ``"../data/banana-detection"``: a real copy, the book's
        archive extracted, or pixbox's stand-in (see the module docstring for the order).

    Raises:
        KeyError: ``name`` is not in :data:`DATA_HUB`.
        FileNotFoundError: no real copy, no archive, and no stand-in for ``name``.
    """
    if name not in DATA_HUB:
        raise KeyError(f"name must be a key of DATA_HUB {sorted(DATA_HUB)}, got {name!r}")
    url, sha1_hash = DATA_HUB[name]
    fname = os.path.join(_DATA_ROOT, url.split("/")[-1])
    base_dir = os.path.dirname(fname)
    data_dir = os.path.splitext(fname)[0]
    target = os.path.join(base_dir, folder) if folder else data_dir
    # Where the book's archive extracts to (the stand-in goes there too).
    home = os.path.join(_DATA_ROOT, STANDINS[name][2]) if name in STANDINS else target
    if _real_copy(target) or _real_copy(home):
        return target
    if os.path.isfile(fname) and _sha1(fname) == sha1_hash:
        extract(fname)
        return target
    if name not in STANDINS:
        download(url, _DATA_ROOT, sha1_hash)  # raises FileNotFoundError naming the path to use
    if not is_standin(home):
        if os.path.isdir(home):
            os.rmdir(home)  # empty (a non-empty one is a real copy, returned above)
        write_standin(name, home)
    if name not in _told:
        _told.add(name)
        warnings.warn(f"{name}: no copy of the book's data in {home!r} and no download; using pixbox's "
                      f"stand-in there (generated on first use): {STANDINS[name][1]}, in the book's layout",
                      BookDataWarning, stacklevel=2)
    return target


def _real_copy(folder: str) -> bool:
    return os.path.isdir(folder) and bool(os.listdir(folder)) and not is_standin(folder)
