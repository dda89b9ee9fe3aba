"""Training on several processes with ``torchrun``: the process group, DDP, reductions (the data shards are
:mod:`pixbox.data.sharding`).

``torchrun --nproc_per_node=N -m pixbox detect train ...`` starts N copies of the command with the environment
variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:func:`pixbox.engine.runs.fit` calls :func:`init_distributed`, which joins the process group (``nccl`` for CUDA,
``gloo`` on the CPU); the :class:`~pixbox.engine.trainer.Trainer` then wraps the model in
:class:`~torch.nn.parallel.DistributedDataParallel` and every rank trains on its own shard of each batch
(:class:`pixbox.data.sharding.ShardSampler`).

The config's ``batch`` is the **global** batch: each of the N ranks loads ``batch / N`` images per step, and the
gradients are averaged over the ranks, so the learning rate, the schedule and the number of steps per epoch mean the
same as in a single process (up to the padding of the last shard). Only rank 0 writes files (checkpoints, logs,
plots) and evaluates; the metrics it computes are sent to the other ranks, and the training losses are averaged over
all of them. Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing here changes anything.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Sequence

import torch
from torch import nn

from pixbox.data.sharding import get_rank, get_world_size

__all__ = ["all_reduce_sum", "barrier", "broadcast_object", "destroy_distributed", "get_rank", "get_world_size",
           "init_distributed", "is_main_process", "local_device", "wrap_ddp"]

_INITIALIZED_HERE = False


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer (torchrun sets it), got {text!r}") from None


def is_main_process() -> bool:
    """Whether this process is rank 0, the one that writes files and evaluates."""
    return get_rank() == 0


def local_device(device: str) -> str:
    """The device of this rank: ``"cuda:LOCAL_RANK"`` for ``"auto"``/``"cuda"`` under a multi-process CUDA run, else
    ``device`` unchanged.

    Args:
        device (str): the config's device name.

    Returns:
        str: a device name for :func:`~pixbox.engine.device.select_device`.
    """
    if get_world_size() > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{_env_int('LOCAL_RANK', 0)}"
    return device


def init_distributed(device: str = "auto") -> int:
    """Joins the process group that ``torchrun`` describes in the environment, once; the process leaves it at exit
    (:func:`destroy_distributed`) if the caller has not. Does nothing in a single process (see the module docstring)
    or when a process group already exists (for example one made by the caller).

    Args:
        device (str): the config's device: a CUDA device (or ``"auto"`` with CUDA available) uses the ``nccl``
            backend and sets this process's CUDA device to ``LOCAL_RANK``; otherwise ``gloo``.

    Returns:
        int: the world size (1 in a single process).

    Raises:
        ValueError: malformed ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` values.
        RuntimeError: ``torch.distributed`` is not available in this PyTorch build.
    """
    global _INITIALIZED_HERE
    world = _env_int("WORLD_SIZE", 1)
    if world < 1:
        raise ValueError(f"environment variable WORLD_SIZE must be >= 1, got {world}")
    if world == 1:
        return get_world_size()
    if not torch.distributed.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support")
    if torch.distributed.is_initialized():
        return get_world_size()
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if not 0 <= rank < world:
        raise ValueError(f"environment variable RANK must be in [0, {world}), got {rank}")
    cuda = torch.cuda.is_available() and (device in ("auto", "cuda") or device.startswith("cuda:") or device.isdigit())
    if cuda:
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group(backend="nccl" if cuda else "gloo", rank=rank, world_size=world)
    _INITIALIZED_HERE = True
    # a script that ends (or stops on an exception) without leaving the group would exit with the
    # backend's threads running and abort ("terminate called without an active exception")
    atexit.register(destroy_distributed)
    return world


def destroy_distributed() -> None:
    """Leaves the process group if :func:`init_distributed` made it (a no-op otherwise)."""
    global _INITIALIZED_HERE
    if _INITIALIZED_HERE and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    _INITIALIZED_HERE = False


def barrier() -> None:
    """Waits for every rank (a no-op in a single process)."""
    if get_world_size() > 1:
        torch.distributed.barrier()


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (picklable objects; returns ``obj`` in a single process)."""
    if get_world_size() == 1:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """The element-wise sums of ``values`` over all ranks (float64; unchanged in a single process).

    Args:
        values (sequence of float): the same length on every rank.

    Returns:
        list[float]
    """
    values = [float(v) for v in values]
    if get_world_size() == 1:
        return values
    backend = torch.distributed.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


class _Forward(nn.Module):
    """What DDP wraps: calls ``module`` or one of its methods (``detection_losses``, ...), so every training forward
    goes through DDP's gradient hooks."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, method: str | None, *args, **kwargs):
        fn = self.module if method is None else getattr(self.module, method)
        return fn(*args, **kwargs)


def wrap_ddp(model: nn.Module, device: torch.device, *, sync_bn: bool = False) -> tuple[nn.Module, nn.Module]:
    """``(model, ddp)``: the model (its BatchNorms made :class:`~torch.nn.SyncBatchNorm` when ``sync_bn``; parameters
    are kept, so an optimizer over them still works) and its DistributedDataParallel wrapper, called as
    ``ddp(method_or_None, *args)``.

    Raises:
        ValueError: ``sync_bn`` on a non-CUDA device (torch's SyncBatchNorm runs only there).
    """
    if sync_bn:
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        if has_bn and device.type != "cuda":
            raise ValueError(f"sync_bn needs CUDA devices (torch's SyncBatchNorm does not run on {device.type}); "
                             "drop --sync-bn, or train on GPUs")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else None
    ddp = nn.parallel.DistributedDataParallel(_Forward(model), device_ids=ids)
    return model, ddp
