"""Atomic checkpoint files and the random number generator states they carry.

:func:`save_checkpoint` writes to a temporary file next to the target, flushes it to disk and moves it over the
target with :func:`os.replace` only once it is complete (on any error it removes it), so a crash (or a full disk)
while saving leaves the previous checkpoint intact and never a half-written ``last.pt``. Checkpoints hold only
tensors and plain Python values (dicts, lists, tuples, str, numbers, None; the numpy RNG state is stored as a list),
read back with ``torch.load(..., weights_only=True)``, which cannot run code from the file.

A training run keeps two: ``last.pt``, the full :meth:`~pixbox.engine.trainer.Trainer.state_dict` that ``--resume``
continues from, and ``best.pt``, the same state without the parts only a resume needs (:data:`RESUME_ONLY_KEYS`:
optimizer, scheduler, scaler, RNG and weight-average states; its weights are the moving average's when the run kept
one), marked ``"slim": True`` (:func:`slim_checkpoint`). That halves the file of a model trained with SGD and
momentum (a third with AdamW); the weights, config, class names, history and scores that :func:`pixbox.load`,
``val``, ``export`` and the reports read are all there.

Example:
    >>> state = {"epoch": 3, "rng": get_rng_state()}  # doctest: +SKIP
    >>> save_checkpoint(state, "runs/detect/train/last.pt")  # doctest: +SKIP
    >>> set_rng_state(load_checkpoint("runs/detect/train/last.pt")["rng"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pixbox._files import atomic_open

__all__ = ["RESUME_ONLY_KEYS", "get_rng_state", "load_checkpoint", "remove_partial_checkpoints", "repair_best",
           "save_checkpoint", "set_rng_state", "slim_checkpoint"]

#: The keys of a training state that only a resume reads: :func:`slim_checkpoint` leaves them out.
RESUME_ONLY_KEYS = ("optimizer", "scheduler", "scaler", "rng", "loader_generator", "ema")


def _check_path(path, name: str = "path") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    return Path(path)


def save_checkpoint(state: dict[str, Any], path) -> Path:
    """Saves ``state`` with :func:`torch.save`, atomically (see the module docstring), creating the parent folder.

    Args:
        state (dict): tensors and plain Python values.
        path (str or PathLike): the checkpoint file, e.g. ``runs/detect/train/last.pt``.

    Returns:
        Path: ``path``.
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    path = _check_path(path)
    with atomic_open(path, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    return path


def slim_checkpoint(state: dict[str, Any]) -> dict[str, Any]:
    """What ``best.pt`` holds (see the module docstring): ``state`` without :data:`RESUME_ONLY_KEYS`, with
    ``"slim": True`` when a key was left out (which tells a resume to use ``last.pt`` instead).

    Args:
        state (dict): a training state (:meth:`~pixbox.engine.trainer.Trainer.state_dict`).

    Returns:
        dict: a new dict sharing the tensors of ``state`` (nothing is copied).
    """
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict, got {type(state).__name__}")
    slim = {k: v for k, v in state.items() if k not in RESUME_ONLY_KEYS}
    if state.get("ema") is not None:  # a run with a weight average: best.pt's weights are the average
        slim["model"] = state["ema"]["model"]
    if len(slim) < len(state):
        slim["slim"] = True
    return slim


def remove_partial_checkpoints(folder) -> list[Path]:
    """Deletes the temporary files that a write of ``last.pt``/``best.pt`` killed midway left in
    ``folder`` (``.last.pt.*.tmp``); returns them."""
    found = [p for name in ("last.pt", "best.pt") for p in Path(folder).glob(f".{name}.*.tmp")]
    for path in found:
        path.unlink(missing_ok=True)
    return found


def repair_best(last_path) -> str | None:
    """Makes a run's ``best.pt`` agree with what its ``last.pt`` records, where it can.

    A run killed between its two writes by an older pixbox (which wrote ``last.pt`` first) has a ``best.pt`` of an
    earlier epoch than ``last.pt``'s ``best_epoch``, or none at all. When the best epoch is ``last.pt``'s own epoch
    (or the run has no metric), ``best.pt`` is rewritten from it.

    Args:
        last_path (str or PathLike): the run's ``last.pt``.

    Returns:
        str | None: what was done or found (for the log), or None when ``best.pt`` was fine.
    """
    last_path = _check_path(last_path, "last_path")
    best_path = last_path.with_name("best.pt")
    state = load_checkpoint(last_path)
    claimed = state.get("best_epoch")
    if best_path.exists():
        try:
            best_epoch = load_checkpoint(best_path).get("best_epoch")
        except (ValueError, OSError, RuntimeError):
            best_epoch = "unreadable"
        if best_epoch == claimed:
            return None
    if claimed is None or claimed == state.get("epoch"):
        save_checkpoint(slim_checkpoint(state), best_path)
        return f"{best_path} was missing or behind {last_path.name}; rewritten from it (epoch {state.get('epoch')})"
    return (f"{best_path} does not hold epoch {claimed}, the best one that {last_path.name} records (the run was "
            f"interrupted while writing it); it cannot be rebuilt, the next improvement rewrites it")


def load_checkpoint(path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Loads a checkpoint written by :func:`save_checkpoint` (``weights_only``: no code runs).

    Args:
        path (str or PathLike): the file.
        map_location (str or torch.device): where tensors go.

    Returns:
        dict: the saved state.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a checkpoint (corrupt, truncated, or not a dict).
    """
    path = _check_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if path.suffix.lower() == ".onnx":
        raise ValueError(f"{path} is an ONNX export, not a PyTorch checkpoint: `pixbox <task> predict --weights "
                         f"{path}` and `pixbox serve` run it; val, export and --resume need the .pt checkpoint it "
                         "was exported from")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises RuntimeError, UnpicklingError, EOFError, ... on bad files
        if isinstance(e, pickle.UnpicklingError):  # torch's hint to pass weights_only=False would run its code
            raise ValueError(f"{path}: not a pixbox checkpoint: it is not a PyTorch file, or it holds Python objects "
                             "that a checkpoint never does (pixbox loads only tensors and plain values, never code "
                             "from a file)") from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ValueError(f"{path}: not a readable pixbox checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: a checkpoint must hold a dict, got {type(state).__name__}")
    return state


def get_rng_state() -> dict[str, Any]:
    """The global random number generator states: torch (CPU and CUDA), numpy and Python.

    Returns:
        dict: ``"torch"`` (uint8 Tensor), ``"cuda"`` (list of uint8 Tensors, empty without CUDA), ``"numpy"``
        (list: name, key as a list of ints, pos, has_gauss, cached_gaussian) and ``"python"`` (:func:`random.getstate`).
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores the states returned by :func:`get_rng_state` (CUDA ones only when CUDA is present).

    Args:
        state (dict): from :func:`get_rng_state`, possibly through a checkpoint.
    """
    missing = [k for k in ("torch", "numpy", "python") if k not in state]
    if missing:
        raise ValueError(f"state must hold the keys 'torch', 'numpy' and 'python', missing {missing}")
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
