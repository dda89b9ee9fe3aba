"""Training on several processes with ``torchrun``: process group, data shards, reductions.

``torchrun --nproc_per_node=N -m pixbox detect train ...`` starts N copies of the
command with the environment variables ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR`` and ``MASTER_PORT``. :func:`pixbox.engine.runs.fit` calls
:func:`init_distributed`, which joins the process group (``nccl`` for CUDA, ``gloo`` on the
CPU); the :class:`~pixbox.engine.trainer.Trainer` then wraps the model in
:class:`~torch.nn.parallel.DistributedDataParallel` and every rank trains on its own shard of
each batch (:class:`ShardSampler`).

The config's ``batch`` is the **global** batch: each of the N ranks loads ``batch / N``
images per step, and the gradients are averaged over the ranks, so the learning rate, the
schedule and the number of steps per epoch mean the same as in a single process (up to the
padding of the last shard). Only rank 0 writes files (checkpoints, logs, plots) and evaluates;
the metrics it computes are sent to the other ranks, and the training losses are averaged over
all of them. Without ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing here changes anything.
"""

from __future__ import annotations

import atexit
import math
import os
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from pixbox.engine.device import epoch_seed

__all__ = [
    "ShardSampler",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "destroy_distributed",
    "epoch_batches",
    "get_rank",
    "get_world_size",
    "init_distributed",
    "is_main_process",
    "local_device",
    "rank_batch",
    "shard_loader",
    "shard_steps",
    "steps_per_epoch",
    "wrap_ddp",
]

_INITIALIZED_HERE = False


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name)
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer (torchrun sets it), got {text!r}") from None


def get_world_size() -> int:
    """The number of training processes (1 without an initialized process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1


def get_rank() -> int:
    """This process's rank, in [0, world size) (0 without an initialized process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return 0


def is_main_process() -> bool:
    """Whether this process is rank 0, the one that writes files and evaluates."""
    return get_rank() == 0


def local_device(device: str) -> str:
    """The device of this rank: ``"cuda:LOCAL_RANK"`` for ``"auto"``/``"cuda"`` under a multi-process
    CUDA run, else ``device`` unchanged.

    Args:
        device (str): the config's device name.

    Returns:
        str: a device name for :func:`~pixbox.engine.device.select_device`.
    """
    if get_world_size() > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{_env_int('LOCAL_RANK', 0)}"
    return device


def init_distributed(device: str = "auto") -> int:
    """Joins the process group that ``torchrun`` describes in the environment, once; the process
    leaves it at exit (:func:`destroy_distributed`) if the caller has not.

    Does nothing when ``WORLD_SIZE`` is unset or 1, or when a process group already exists (for
    example one made by the caller).

    Args:
        device (str): the config's device: a CUDA device (or ``"auto"`` with CUDA available)
            uses the ``nccl`` backend and sets this process's CUDA device to ``LOCAL_RANK``;
            otherwise ``gloo``.

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


def rank_batch(batch: int, world_size: int | None = None) -> int:
    """The images per step of each rank: the global ``batch`` divided by the world size.

    Raises:
        ValueError: ``batch`` is not a multiple of the world size.
    """
    world = get_world_size() if world_size is None else world_size
    if batch % world:
        raise ValueError(f"batch (the global batch) must be a multiple of the number of processes ({world}), "
                         f"got {batch}; e.g. --batch {max(world, batch // world * world)}")
    return batch // world


class ShardSampler(DistributedSampler):
    """A :class:`~torch.utils.data.DistributedSampler` whose order is the single-process loader's.

    The epoch's order is the permutation a single-process
    :func:`~pixbox.data.loaders.make_loader` with ``shuffle=True`` and the same ``seed`` draws
    (its DataLoader first draws the workers' base seed from the generator, then the
    permutation). The order is padded by repeating its start to a multiple of the world size,
    and rank ``r`` takes positions ``r, r + N, r + 2N, ...``. So step ``k`` of the N ranks
    together sees exactly the images of step ``k`` of a single process with the global batch
    (when the dataset size is a multiple of the world size).

    Args:
        dataset (Dataset): map-style.
        seed (int): the epoch's seed, in [0, 2**63), e.g. ``epoch_seed(cfg.seed, epoch)``.
        num_replicas (int, optional), rank (int, optional): default from the process group.
    """

    def __init__(self, dataset, seed: int, num_replicas: int | None = None, rank: int | None = None):
        num_replicas = get_world_size() if num_replicas is None else num_replicas
        rank = get_rank() if rank is None else rank
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        g = torch.Generator().manual_seed(self.seed)
        torch.empty((), dtype=torch.int64).random_(generator=g)  # the DataLoader's base seed draw
        order = torch.randperm(n, generator=g).tolist()
        order += (order * math.ceil(self.total_size / max(n, 1)))[: self.total_size - n]  # pad
        return iter(order[self.rank:self.total_size:self.num_replicas])


def shard_loader(dataset, batch: int, *, seed: int, num_workers: int = 0, collate_fn: Callable | None = None,
                 drop_last: bool = False):
    """This rank's training loader for one epoch: its shard (:class:`ShardSampler`) in batches of
    ``batch / world size``.

    Rank 0's data pipeline (augmentation) is seeded like a single-process
    :func:`~pixbox.data.loaders.make_loader` with this ``seed``; the other ranks get seeds of
    their own, so their random augmentations differ.

    Args:
        dataset (Dataset): the training set.
        batch (int): the global batch, a multiple of the world size.
        seed (int): the epoch's seed, in [0, 2**63).
        num_workers (int): loading processes of this rank, >= 0.
        collate_fn (callable, optional): as for ``make_loader``.
        drop_last (bool): drop this rank's last incomplete batch.

    Returns:
        DataLoader: iterate it once.
    """
    from pixbox.data.loaders import _default_collate_fn, _SeededLoader, seed_worker

    rank = get_rank()
    per_rank = rank_batch(batch)
    loader_seed = seed if rank == 0 else epoch_seed(seed % 2**31, rank)
    return _SeededLoader(dataset, batch_size=per_rank, sampler=ShardSampler(dataset, seed), num_workers=num_workers,
                         collate_fn=collate_fn if collate_fn is not None else _default_collate_fn(dataset),
                         drop_last=drop_last, generator=torch.Generator().manual_seed(loader_seed),
                         worker_init_fn=seed_worker, persistent_workers=False)


def steps_per_epoch(num_images: int, batch: int) -> tuple[int, bool]:
    """``(steps, drop_last)`` of an epoch: the last batch is dropped only when it would hold a
    single image (BatchNorm cannot train on one)."""
    drop_last = num_images > batch and num_images % batch == 1
    return (num_images // batch if drop_last else math.ceil(num_images / batch)), drop_last


def shard_steps(num_images: int, batch: int) -> tuple[int, bool]:
    """``(steps, drop_last)`` of one rank's epoch with the global ``batch`` (see
    :func:`steps_per_epoch`, applied to the rank's padded shard)."""
    world = get_world_size()
    return steps_per_epoch(math.ceil(num_images / world), rank_batch(batch, world))


def epoch_batches(dataset, batch: int, *, seed: int, workers: int, collate_fn=None):
    """The training batches of a run: ``(batches, steps)`` where ``batches(epoch)`` is the
    loader of epoch ``epoch`` (a new one per epoch, seeded from ``(seed, epoch)``, so an epoch's
    order and augmentation depend on nothing else and a resumed run repeats them) and ``steps``
    the optimizer steps per epoch. Under ``torchrun`` each rank loads its shard of every global
    batch (:func:`shard_loader`).

    Args:
        dataset (Dataset): the training set.
        batch (int): the (global) batch size.
        seed (int): the run's seed.
        workers (int): loading processes per rank.
        collate_fn (callable, optional): as for :func:`pixbox.data.loaders.make_loader`.

    Returns:
        tuple: ``(batches, steps)``.
    """
    if get_world_size() > 1:
        steps, drop_last = shard_steps(len(dataset), batch)

        def shards(epoch: int):
            return shard_loader(dataset, batch, seed=epoch_seed(seed, epoch), num_workers=workers,
                                collate_fn=collate_fn, drop_last=drop_last)

        return shards, steps
    steps, drop_last = steps_per_epoch(len(dataset), batch)

    def batches(epoch: int):
        from pixbox.data.loaders import make_loader

        return make_loader(dataset, batch, shuffle=True, num_workers=workers, collate_fn=collate_fn,
                           seed=epoch_seed(seed, epoch), drop_last=drop_last)

    return batches, steps


class _Forward(nn.Module):
    """What DistributedDataParallel wraps: calls ``module`` or one of its methods (such as
    ``detection_losses``), so every training forward goes through DDP's gradient hooks."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, method: str | None, *args, **kwargs):
        fn = self.module if method is None else getattr(self.module, method)
        return fn(*args, **kwargs)


def wrap_ddp(model: nn.Module, device: torch.device, *, sync_bn: bool = False) -> tuple[nn.Module, nn.Module]:
    """``(model, ddp)``: the model (its BatchNorms made :class:`~torch.nn.SyncBatchNorm` when
    ``sync_bn``; parameters are kept, so an optimizer over them still works) and its
    DistributedDataParallel wrapper, called as ``ddp(method_or_None, *args)``.

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
