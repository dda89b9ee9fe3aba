"""Tests for pixbox._files: atomic writes keep the old file on failure and get normal permissions."""

from __future__ import annotations

import os

import pytest

from pixbox._files import atomic_open


def test_atomic_open_replaces_and_uses_umask_permissions(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write("one")
    assert path.read_text() == "one"
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)


def test_atomic_open_keeps_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_open(path, "wb") as f:
            f.write(b"partial")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]  # no temporary file left behind


def test_atomic_open_rejects_read_modes(tmp_path):
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "x", "r"):
            pass
