"""Devices and seeds: :func:`select_device` (with spelling checks), :func:`seed_everything`,
:func:`epoch_seed` (the seed of each epoch of a run)."""

from __future__ import annotations

import difflib
import random
import re

import numpy as np
import torch

from pixbox.data.sharding import epoch_seed  # re-exported: the seed of each epoch of a run

__all__ = ["check_device_name", "epoch_seed", "seed_everything", "select_device"]

_DEVICE_NAMES = ("auto", "cpu", "cuda", "mps")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?|\d+)$")


def check_device_name(device: str, name: str = "device") -> str:
    """Checks the spelling of a device name (not whether the device exists).

    Args:
        device (str): ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"N"`` (CUDA device N) or ``"mps"``.
        name (str): the argument's name, for the error message.

    Returns:
        str: ``device``.
    """
    if not isinstance(device, str):
        raise TypeError(f"{name} must be a str such as 'auto', 'cpu', 'cuda:0' or 'mps', got {type(device).__name__}")
    if not _DEVICE_RE.match(device):
        hint = difflib.get_close_matches(device, _DEVICE_NAMES, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"{name} must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}{extra}")
    return device


def select_device(device: str | torch.device = "auto") -> torch.device:
    """The device to run on.

    Args:
        device (str or torch.device): ``"auto"`` picks CUDA when available, else MPS (Apple) when available, else the
            CPU. Explicit names are checked: ``"cuda:1"`` on a machine without a second GPU is an error, not a silent
            fallback. ``"0"`` means ``"cuda:0"``.

    Returns:
        torch.device: the device.

    Raises:
        ValueError: a misspelt name, or a device that is not available here.
    """
    if isinstance(device, torch.device):
        device = str(device)
    check_device_name(device)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.isdigit():
        device = f"cuda:{device}"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was requested but CUDA is not available on this machine; "
                             "use --device cpu (or auto)")
        index = int(device.split(":")[1]) if ":" in device else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise ValueError(f"device {device!r} was requested but this machine has {count} CUDA device"
                             f"{'s' if count != 1 else ''} (cuda:0 .. cuda:{count - 1})")
    if device == "mps" and not _mps_available():
        raise ValueError("device 'mps' was requested but MPS is not available on this machine; use --device cpu")
    return torch.device(device)


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def seed_everything(seed: int) -> None:
    """Seeds torch (CPU and CUDA), numpy and Python's ``random``.

    Args:
        seed (int): in [0, 2**63).
    """
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
