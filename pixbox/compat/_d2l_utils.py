"""The D2L book's small utilities: timers, accumulators, devices, loader workers, and the
``PIXBOX_BOOK_QUICK`` switch that cuts the book's training loops to a few batches.

Re-exported by :mod:`pixbox.compat.d2l`.
"""

from __future__ import annotations

import itertools
import os
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

__all__ = [
    "QUICK_ENV",
    "Accumulator",
    "BookDataLoader",
    "Timer",
    "cpu",
    "get_dataloader_workers",
    "gpu",
    "num_gpus",
    "quick_batches",
    "try_all_gpus",
    "try_gpu",
]

#: The environment variable that cuts the book's loops: ``PIXBOX_BOOK_QUICK=N`` (an int >= 1)
#: makes :func:`~pixbox.compat.d2l.train_ch13`, :func:`~pixbox.compat.d2l.evaluate_accuracy_gpu`
#: and the loaders of ``load_data_bananas`` / ``load_data_voc`` stop after ``N`` batches per
#: epoch (per pass over a loader). Unset or empty: the book's full loops.
QUICK_ENV = "PIXBOX_BOOK_QUICK"


def quick_batches() -> int | None:
    """The batch limit from :data:`QUICK_ENV`, read at each call; ``None`` when unset or empty.

    Raises:
        ValueError: when the variable is set to anything but an int >= 1.
    """
    raw = os.environ.get(QUICK_ENV, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{QUICK_ENV} must be an int >= 1 (batches per epoch), got {raw!r}")
    return value


class BookDataLoader(DataLoader):
    """A :class:`~torch.utils.data.DataLoader` that yields at most :func:`quick_batches` batches
    per pass (all of them when :data:`QUICK_ENV` is unset); ``len()`` says as much."""

    def __iter__(self):
        limit = quick_batches()
        it = super().__iter__()
        return it if limit is None else itertools.islice(it, limit)

    def __len__(self) -> int:
        limit, full = quick_batches(), super().__len__()
        return full if limit is None else min(full, limit)


class Timer:
    """Record multiple running times (the book's ``Timer``)."""

    def __init__(self):
        self.times = []
        self.start()

    def start(self):
        """Start the timer."""
        self.tik = time.time()

    def stop(self):
        """Stop the timer and record the time in a list; returns it."""
        self.times.append(time.time() - self.tik)
        return self.times[-1]

    def avg(self):
        """Return the average time."""
        return sum(self.times) / len(self.times)

    def sum(self):
        """Return the sum of time."""
        return sum(self.times)

    def cumsum(self):
        """Return the accumulated time."""
        return np.array(self.times).cumsum().tolist()


class Accumulator:
    """For accumulating sums over ``n`` variables (the book's ``Accumulator``)."""

    def __init__(self, n):
        self.data = [0.0] * n

    def add(self, *args):
        """Adds numbers or one-element tensors (detached first) to the sums."""
        self.data = [a + float(b.detach() if isinstance(b, torch.Tensor) else b) for a, b in zip(self.data, args)]

    def reset(self):
        self.data = [0.0] * len(self.data)

    def __getitem__(self, idx):
        return self.data[idx]


def cpu() -> torch.device:
    """The CPU device."""
    return torch.device("cpu")


def gpu(i: int = 0) -> torch.device:
    """GPU ``i`` (``cuda:i``), whether or not it exists."""
    return torch.device(f"cuda:{i}")


def num_gpus() -> int:
    """The number of CUDA GPUs."""
    return torch.cuda.device_count()


def try_gpu(i: int = 0) -> torch.device:
    """GPU ``i`` if it exists, else the CPU."""
    return gpu(i) if num_gpus() >= i + 1 else cpu()


def try_all_gpus() -> list[torch.device]:
    """All GPUs, or ``[cpu]`` when there is none (D2L 1.0.3 returns ``[]`` there, and its
    training loops then fail on ``devices[0]``)."""
    return [gpu(i) for i in range(num_gpus())] or [cpu()]


def get_dataloader_workers() -> int:
    """Loader worker processes: the book's 4, or fewer on a machine with fewer CPUs."""
    return min(4, os.cpu_count() or 1)
