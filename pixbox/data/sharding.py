"""Which images each training process loads in each epoch: per-epoch seeded loaders, shards.

:func:`epoch_batches` gives a run's training batches: a new loader per epoch, seeded from
``(seed, epoch)`` (:func:`epoch_seed`), so an epoch's order and augmentation depend on nothing
else and a resumed run repeats them. Under ``torchrun`` (an initialized process group of N
processes) the config's batch is the global one: each rank loads ``batch / N`` images per step
(:func:`rank_batch`) from its shard (:class:`ShardSampler`), in the order a single process would
use, so step ``k`` of the N ranks together sees the images of a single process's step ``k``.
"""

from __future__ import annotations

import math
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DistributedSampler

from pixbox.data.loaders import _default_collate_fn, _SeededLoader, make_loader, seed_worker

__all__ = ["ShardSampler", "epoch_batches", "epoch_seed", "get_rank", "get_world_size", "keep_random_subset",
           "rank_batch",
           "shard_loader", "shard_steps", "steps_per_epoch"]


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


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` of a run seeded with ``seed``: a hash of the pair, in [0, 2**63).

    Args:
        seed (int): the run's seed, >= 0.
        epoch (int): the epoch index, >= 0.

    Returns:
        int: different pairs give unrelated seeds (numpy's ``SeedSequence``).
    """
    for value, name in ((seed, "seed"), (epoch, "epoch")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    hi, lo = np.random.SeedSequence([seed, epoch]).generate_state(2, dtype=np.uint32)
    return ((int(hi) << 32) | int(lo)) & (2**63 - 1)


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
        return make_loader(dataset, batch, shuffle=True, num_workers=workers, collate_fn=collate_fn,
                           seed=epoch_seed(seed, epoch), drop_last=drop_last)

    return batches, steps


def keep_random_subset(dataset, limit: int | None, seed: int = 0):
    """Keeps a fixed random subset of ``limit`` samples of a dataset with ``annotations.samples``
    (in their original order; the same subset for the same seed), in place.

    Returns:
        the dataset.
    """
    if limit is not None and limit < len(dataset):
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
        samples = dataset.annotations.samples
        dataset.annotations.samples = [samples[i] for i in sorted(order[:limit])]
    return dataset
