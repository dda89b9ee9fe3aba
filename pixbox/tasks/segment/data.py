"""The segmentation task's data: the joint image and mask pipeline, padded batches, VOC datasets.

Training cuts a random ``crop`` window from each image; an image smaller than the window is padded (image 0,
mask 255, so the padding is ignored) instead of being dropped as D2L's loader does. Evaluation runs on whole
images of any size; images of different sizes in one batch are padded to the largest (:func:`collate_padded`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pixbox.data.sharding import keep_random_subset

__all__ = ["IGNORE_INDEX", "collate_padded", "loader", "segment_transforms", "segmentation_dataset"]

#: Mask value of pixels that count nowhere (VOC's boundary band, padding).
IGNORE_INDEX = 255


def segment_transforms(preset: str, crop: tuple[int, int] | None):
    """The joint image and mask pipeline: ``(uint8 [3, H, W], {"mask"}) -> (float32 in [0, 1], {"mask"})``.

    Args:
        preset (str): ``"eval"`` (no change but the dtype), ``"crop"`` (a random ``crop`` window, see the module
            docstring), ``"flip"`` (plus a horizontal flip) or ``"scale"`` (a random rescale by 0.5x to 2x first).
        crop (tuple[int, int] or None): ``(height, width)`` of the window.

    Returns:
        Compose: called as ``t(image, {"mask": mask})``.
    """
    from pixbox.data import transforms as T
    steps = []
    if preset != "eval":
        if preset == "scale":
            steps.append(_RandomScale(0.5, 2.0))
        steps.append(T.RandomCrop(tuple(crop), pad_if_needed=True, fill=0))
        if preset in ("flip", "scale"):
            steps.append(T.RandomHorizontalFlip())
    return T.Compose(steps + [T.ToDtype(torch.float32)])


class _RandomScale:
    """Resizes image and mask by a factor drawn uniformly in ``[low, high]``."""

    def __init__(self, low: float, high: float):
        self.low, self.high = low, high

    def __call__(self, image: Tensor, target: dict):
        from pixbox.data import transforms as T
        factor = self.low + (self.high - self.low) * float(torch.rand(()))
        h, w = image.shape[-2:]
        size = (max(1, round(h * factor)), max(1, round(w * factor)))
        return T.Resize(size)(image, target)


def collate_padded(batch) -> tuple[Tensor, Tensor]:
    """Stacks ``(image [3, H, W], mask [H, W])`` samples of different sizes, padding at the
    bottom and right to the largest (images with 0, masks with :data:`IGNORE_INDEX`).

    Returns:
        tuple: images ``[B, 3, H_max, W_max]`` and masks ``[B, H_max, W_max]`` (int64).
    """
    h = max(int(img.shape[-2]) for img, _ in batch)
    w = max(int(img.shape[-1]) for img, _ in batch)
    images = batch[0][0].new_zeros((len(batch), batch[0][0].shape[0], h, w))
    masks = torch.full((len(batch), h, w), IGNORE_INDEX, dtype=torch.int64)
    for i, (img, mask) in enumerate(batch):
        images[i, :, :img.shape[-2], :img.shape[-1]] = img
        masks[i, :mask.shape[-2], :mask.shape[-1]] = mask
    return images, masks


def segmentation_dataset(data, split: str, transforms, limit: int | None = None, *, seed: int = 0):
    from pixbox.data.datasets import SegmentationDataset
    from pixbox.data.formats.segmentation import list_voc_segmentation_splits
    root = Path(data)
    splits = list_voc_segmentation_splits(root) if (root / "ImageSets").is_dir() else []
    if split not in splits:
        import difflib
        hint = difflib.get_close_matches(split, splits, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise FileNotFoundError(f"split {split!r} not found in {root} (its splits: {splits}){extra}. A VOC "
                                f"segmentation dataset has ImageSets/Segmentation/<split>.txt, JPEGImages/ and "
                                f"SegmentationClass/")
    ds = SegmentationDataset(root, split, transforms=transforms)
    if len(ds) == 0:
        raise ValueError(f"split {split!r} of {root} has no images")
    return keep_random_subset(ds, limit, seed)


def loader(dataset, batch: int, workers: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
            collate_fn=None):
    from pixbox.data.datasets import make_loader
    return make_loader(dataset, batch, shuffle=shuffle, num_workers=workers, seed=seed, drop_last=drop_last,
                       collate_fn=collate_fn)
