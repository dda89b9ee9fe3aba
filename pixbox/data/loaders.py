"""Collate functions and reproducible data loaders for the datasets of :mod:`pixbox.data.datasets`.

**Reproducibility.** :func:`make_loader` shuffles with a ``torch.Generator`` seeded from
``seed`` and seeds every worker from it (:func:`seed_worker`), so two loaders with the same
seed give the same batches, augmentations included, for a given ``num_workers``. Random
transforms should use ``generator=None`` (torch's global RNG, which the loader seeds per worker);
explicit generators found in ``dataset.transforms`` are reseeded per worker too. With
``num_workers=0`` the loader runs the data pipeline with RNG states of its own, seeded exactly as
worker 0 would be, so the first epoch equals that of ``num_workers=1`` and the caller's global
RNG streams (model initialization, dropout) are not consumed by data augmentation.

========================  =====================================================================
collate function          batch
========================  =====================================================================
:func:`collate_detection`     images (stacked, or a list when sizes differ) and the target dicts
:func:`collate_multibox`      images ``[B, 3, H, W]``, D2L labels ``[B, G, 5]`` (class -1 pads)
                              and, with proposals, their list of ``[P_i, 4]``
:func:`collate_segmentation`  images ``[B, 3, H, W]`` and masks ``[B, H, W]`` int64
========================  =====================================================================
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, default_collate, get_worker_info

from pixbox._checks import check_bool, check_int

__all__ = ["collate_detection", "collate_multibox", "collate_segmentation", "make_loader", "seed_worker"]


# ----------------------------------------------------------------------------------------------
# Collate functions


def _check_batch(batch, who: str) -> list:
    if isinstance(batch, (str, bytes)) or not isinstance(batch, Sequence) or len(batch) == 0:
        got = f"an empty {type(batch).__name__}" if isinstance(batch, Sequence) else type(batch).__name__
        raise ValueError(f"batch for {who} must be a non-empty list of (image, target) samples, got {got}")
    for i, sample in enumerate(batch):
        if not isinstance(sample, (tuple, list)) or len(sample) != 2:
            raise ValueError(f"batch[{i}] for {who} must be an (image, target) pair, got {type(sample).__name__}"
                             + (f" of length {len(sample)}" if isinstance(sample, (tuple, list)) else ""))
        if not isinstance(sample[0], Tensor) or sample[0].dim() != 3:
            got = tuple(sample[0].shape) if isinstance(sample[0], Tensor) else type(sample[0]).__name__
            raise ValueError(f"batch[{i}][0] for {who} must be an image Tensor[C, H, W], got {got}")
    return list(batch)


def _stack_images(images: list[Tensor], who: str, hint: str) -> Tensor:
    shapes = [tuple(x.shape) for x in images]
    if len(set(shapes)) != 1:
        sizes = sorted({f"{s[1]}x{s[2]}" for s in shapes})
        raise ValueError(f"{who} needs images of one size, got sizes (HxW) {sizes} in one batch; {hint}")
    dtypes = {x.dtype for x in images}
    if len(dtypes) != 1:
        raise ValueError(f"{who} needs images of one dtype, got {sorted(map(str, dtypes))} in one batch")
    return torch.stack(images)


def collate_detection(batch) -> tuple[Tensor | list[Tensor], list[dict]]:
    """Collates detection samples for the modern API (a list of targets).

    Args:
        batch (list[tuple[Tensor[C, H, W], dict]]): samples of :class:`DetectionDataset`.

    Returns:
        tuple:
        - images (Tensor[B, C, H, W] or list[Tensor[C, H, W]]): stacked when all images share
          their shape and dtype, else the list as it is (models that resize inside take it).
        - targets (list[dict]): the ``B`` target dicts, unchanged (``"proposals"`` included).
    """
    batch = _check_batch(batch, "collate_detection")
    images = [s[0] for s in batch]
    targets = [s[1] for s in batch]
    first = images[0]
    if all(x.shape == first.shape and x.dtype == first.dtype for x in images):
        return torch.stack(images), targets
    return images, targets


def collate_multibox(batch, *, keep_crowd: bool = False) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, list[Tensor]]:
    """Collates detection samples into the padded label tensor of :func:`pixbox.ops.multibox_target`.

    Each object becomes a row ``(class, x1 / W, y1 / H, x2 / W, y2 / H)``: the class index (no
    background offset) and its xyxy box normalized by the width ``W`` and height ``H`` of its
    image as collated (after the transforms). Images with fewer objects are padded with rows of
    ``-1`` (class -1 marks padding; the coordinates are -1 too, as in MXNet). ``G`` is the
    largest number of objects in the batch, but at least 1, so ``labels[:, 0]`` always exists
    (D2L-style code reads it); a batch without any object gives ``G = 1`` of padding, which
    ``multibox_target`` labels all background.

    Args:
        batch (list[tuple[Tensor[C, H, W], dict]]): samples whose targets hold ``"boxes"``
            (``Tensor[N, 4]`` xyxy pixels) and ``"labels"`` (``Tensor[N]``); images of one size
            and dtype.
        keep_crowd (bool): COCO ``iscrowd`` objects are left out by default (as in COCO training
            pipelines: a crowd box is not one object); True keeps them as ordinary objects.
            ``difficult`` objects are always kept.

    Returns:
        tuple:
        - images (Tensor[B, C, H, W]): stacked.
        - labels (Tensor[B, G, 5]): ``float32`` rows ``(class, x1, y1, x2, y2)``, normalized
          xyxy, ``-1`` rows for padding.
        - proposals (list of B Tensor[P_i, 4]): only when the targets hold ``"proposals"``
          (Fast R-CNN): each image's ``float32`` xyxy proposals in pixels of the collated image.

    Raises:
        ValueError: images of different sizes (add a ``Resize((H, W))`` transform), a target
            without ``"boxes"``/``"labels"``, or ``"proposals"`` in some targets only.
    """
    batch = _check_batch(batch, "collate_multibox")
    keep_crowd = check_bool(keep_crowd, "keep_crowd")
    images = _stack_images([s[0] for s in batch], "collate_multibox",
                           "add a pixbox.data.transforms.Resize((H, W)) transform to the dataset")
    h, w = images.shape[-2:]
    rows = []
    for i, (_, target) in enumerate(batch):
        if not isinstance(target, dict) or "boxes" not in target or "labels" not in target:
            got = sorted(map(str, target)) if isinstance(target, dict) else type(target).__name__
            raise ValueError(f"batch[{i}][1] for collate_multibox must be a dict with 'boxes' and 'labels', got {got}")
        boxes = torch.as_tensor(target["boxes"]).reshape(-1, 4).to(torch.float32)
        labels = torch.as_tensor(target["labels"]).reshape(-1).to(torch.float32)
        if len(labels) != len(boxes):
            raise ValueError(f"batch[{i}][1] has {len(boxes)} boxes but {len(labels)} labels")
        if not keep_crowd and "iscrowd" in target:
            keep = ~torch.as_tensor(target["iscrowd"]).reshape(-1).to(torch.bool)
            boxes, labels = boxes[keep], labels[keep]
        scale = boxes.new_tensor([w, h, w, h])
        rows.append(torch.cat([labels[:, None], boxes / scale], dim=1))  # [N, 5]
    g = max(1, max(len(r) for r in rows))
    out = torch.full((len(rows), g, 5), -1.0, dtype=torch.float32)  # [B, G, 5]
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    has = ["proposals" in target for _, target in batch]
    if not any(has):
        return images, out
    if not all(has):
        raise ValueError(f"batch[{has.index(False)}][1] for collate_multibox has no 'proposals' but other samples "
                         "of the batch do; give every sample proposals (or none)")
    proposals = [torch.as_tensor(t["proposals"]).reshape(-1, 4).to(torch.float32) for _, t in batch]
    return images, out, proposals


def collate_segmentation(batch) -> tuple[Tensor, Tensor]:
    """Collates segmentation samples.

    Args:
        batch (list[tuple[Tensor[C, H, W], Tensor[H, W]]]): samples of
            :class:`SegmentationDataset`; every image and mask of the batch must have one size.

    Returns:
        tuple:
        - images (Tensor[B, C, H, W]): stacked.
        - masks (Tensor[B, H, W]): ``int64`` class indices, ``255`` = ignore.

    Raises:
        ValueError: sizes differ (add a ``Resize((H, W))`` or ``RandomCrop`` transform), or a
            mask does not match its image.
    """
    batch = _check_batch(batch, "collate_segmentation")
    hint = "add a pixbox.data.transforms.Resize((H, W)) or RandomCrop transform to the dataset"
    images = _stack_images([s[0] for s in batch], "collate_segmentation", hint)
    masks = []
    for i, (image, mask) in enumerate(batch):
        if not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(image.shape[1:]):
            got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"batch[{i}][1] for collate_segmentation must be a mask Tensor[H, W] of its image's "
                             f"size {tuple(image.shape[1:])}, got {got}")
        masks.append(mask.to(torch.int64))
    return images, torch.stack(masks)


# ----------------------------------------------------------------------------------------------
# Seeding and loaders


def _reseed_generators(obj, seed: int) -> int:
    """Reseeds every ``torch.Generator`` reachable from ``obj`` through attributes and containers.

    The k-th distinct generator found (depth-first, in attribute order) gets the seed
    ``seed + k`` (mod 2**63), so generators shared by several transforms are seeded once.
    Returns the number of generators reseeded.
    """
    seen: set[int] = set()
    found: list[torch.Generator] = []

    def walk(x, depth: int) -> None:
        if depth > 8 or id(x) in seen or isinstance(x, (str, bytes, int, float, bool, Tensor, np.ndarray, Path)):
            return
        seen.add(id(x))
        if isinstance(x, torch.Generator):
            found.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v, depth + 1)
        elif isinstance(x, (list, tuple, set)):
            for v in x:
                walk(v, depth + 1)
        elif hasattr(x, "__dict__") and not isinstance(x, type):
            for v in vars(x).values():
                walk(v, depth + 1)

    walk(obj, 0)
    for k, g in enumerate(found):
        if g.device.type == "cpu":
            g.manual_seed((seed + k) % 2**63)
    return len(found)


def _seed_process(seed: int, dataset) -> None:
    """What :func:`seed_worker` does, for a process whose torch seed is ``seed``."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    transforms = getattr(dataset, "transforms", None)
    if transforms is not None:
        _reseed_generators(transforms, seed)


def seed_worker(worker_id: int) -> None:
    """A ``worker_init_fn`` that seeds Python's and numpy's RNGs from torch's seed.

    :class:`~torch.utils.data.DataLoader` seeds torch in each worker with
    ``base_seed + worker_id`` (``base_seed`` drawn from the loader's generator). This seeds
    ``random`` with that seed and ``numpy.random`` with it modulo 2**32, and reseeds every
    ``torch.Generator`` held by the worker's ``dataset.transforms`` (seed ``+ k`` for the k-th),
    which would otherwise be identical copies in every worker.

    Args:
        worker_id (int): the worker index (unused: the seed already depends on it).
    """
    seed = torch.initial_seed()
    info = get_worker_info()
    _seed_process(seed, info.dataset if info is not None else None)


class _RNGStates:
    """The global RNG states a worker process owns: torch's CPU generator, ``random``, ``numpy``."""

    def __init__(self):
        self.torch = torch.random.default_generator.get_state()
        self.python = random.getstate()
        self.numpy = np.random.get_state()

    def restore(self) -> None:
        torch.random.default_generator.set_state(self.torch)
        random.setstate(self.python)
        np.random.set_state(self.numpy)


class _SeededLoader(DataLoader):
    """A DataLoader that, with ``num_workers=0``, runs the data pipeline on RNG states of its own.

    At each epoch the base seed is drawn from ``self.generator`` exactly as the DataLoader
    iterator draws it, the private states are seeded as worker 0's would be, and they are
    swapped in around every batch, so the caller's global RNG streams are untouched.
    """

    def __iter__(self):
        if self.num_workers > 0:
            return super().__iter__()
        return self._in_process()

    def _in_process(self):
        saved = self.generator.get_state()
        base_seed = int(torch.empty((), dtype=torch.int64).random_(generator=self.generator))
        self.generator.set_state(saved)  # the iterator below draws the same number again
        caller = _RNGStates()
        try:
            torch.random.default_generator.manual_seed(base_seed)  # worker 0's torch seed
            _seed_process(base_seed, self.dataset)  # what seed_worker(0) does in worker 0
            own = _RNGStates()
        finally:
            caller.restore()
        iterator = super().__iter__()
        while True:
            caller = _RNGStates()
            own.restore()
            try:
                batch = next(iterator)
            except StopIteration:
                return
            finally:
                own = _RNGStates()
                caller.restore()
            yield batch


def _default_collate_fn(dataset) -> Callable:
    """The dataset's own ``collate_fn`` (:class:`~pixbox.data.datasets.DetectionDataset`:
    :func:`collate_detection`, :class:`~pixbox.data.datasets.SegmentationDataset`:
    :func:`collate_segmentation`), else torch's ``default_collate``."""
    collate = getattr(dataset, "collate_fn", None)
    return collate if callable(collate) else default_collate


def make_loader(dataset, batch_size: int, *, shuffle: bool, num_workers: int = 0,
                collate_fn: Callable | None = None, seed: int = 0, drop_last: bool = False) -> DataLoader:
    """A reproducible :class:`~torch.utils.data.DataLoader`.

    The shuffling order and the worker seeds come from a ``torch.Generator`` seeded with
    ``seed``; workers run :func:`seed_worker` and are persistent (started once, reused every
    epoch, so each continues its random stream). Two loaders made with the same arguments give
    the same batches, augmentations included, epoch after epoch. With ``num_workers=0`` the
    pipeline gets RNG states of its own, seeded like worker 0 (see the module docstring), so it
    neither consumes nor depends on the caller's global RNG. Different ``num_workers`` values
    give different (each reproducible) augmentations, since each worker has its own seed.

    Args:
        dataset (Dataset): a map-style dataset, e.g. :class:`DetectionDataset`.
        batch_size (int): >= 1.
        shuffle (bool): draw a new order every epoch (from the seeded generator).
        num_workers (int): worker processes, >= 0 (0 loads in this process).
        collate_fn (callable or None): ``None`` takes the dataset's ``collate_fn`` attribute
            (:func:`collate_detection` for a :class:`DetectionDataset`,
            :func:`collate_segmentation` for a :class:`SegmentationDataset`) and torch's
            ``default_collate`` for a dataset without one. Pass
            :func:`collate_multibox` for the D2L-style ``[B, G, 5]`` labels.
        seed (int): >= 0.
        drop_last (bool): drop the last incomplete batch.

    Returns:
        DataLoader: iterate it once per epoch.
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset must be a torch.utils.data.Dataset, got {type(dataset).__name__}")
    batch_size = check_int(batch_size, "batch_size", low=1)
    shuffle = check_bool(shuffle, "shuffle")
    num_workers = check_int(num_workers, "num_workers", low=0)
    seed = check_int(seed, "seed", low=0)
    drop_last = check_bool(drop_last, "drop_last")
    if collate_fn is None:
        collate_fn = _default_collate_fn(dataset)
    elif not callable(collate_fn):
        raise TypeError(f"collate_fn must be callable or None, got {type(collate_fn).__name__}")
    generator = torch.Generator().manual_seed(seed)
    return _SeededLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                         collate_fn=collate_fn, drop_last=drop_last, generator=generator,
                         worker_init_fn=seed_worker, persistent_workers=num_workers > 0)
