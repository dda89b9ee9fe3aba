"""The D2L book's chapter 14 data sets: the banana detection set (section 14.6) and Pascal VOC
2012 segmentation (section 14.9), with the book's names, signatures, printed lines and tensors,
read with :mod:`pixbox.data.io` (no pandas, no torchvision).

The data comes from :func:`~pixbox.compat.d2l.download_extract`: a real copy in ``../data``
when there is one, else pixbox's offline stand-in in the same layout. Re-exported by
:mod:`pixbox.compat.d2l`.
"""

from __future__ import annotations

import csv
import os

import torch
from torch import Tensor

from pixbox.compat._d2l_download import download_extract
from pixbox.compat._d2l_utils import BookDataLoader, get_dataloader_workers
from pixbox.data.io import VOC_COLORMAP as _PALETTE
from pixbox.data.io import read_image

__all__ = [
    "VOC_CLASSES",
    "VOC_COLORMAP",
    "BananasDataset",
    "VOCSegDataset",
    "load_data_bananas",
    "load_data_voc",
    "read_data_bananas",
    "read_voc_images",
    "voc_colormap2label",
    "voc_label_indices",
    "voc_rand_crop",
]


def _number(text: str):
    value = float(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def read_data_bananas(is_train: bool = True) -> tuple[list[Tensor], Tensor]:
    """The banana images and labels of one split.

    Returns:
        tuple: ``images``, a list of ``uint8`` tensors ``[3, 256, 256]``, and ``labels``,
        ``[N, 1, 5]`` rows ``(class, x1, y1, x2, y2)`` with the corners divided by 256 (an image
        with several rows gets them all, padded with rows of ``-1``).
    """
    data_dir = download_extract("banana-detection")
    split_dir = os.path.join(data_dir, "bananas_train" if is_train else "bananas_val")
    with open(os.path.join(split_dir, "label.csv"), newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [dict(zip(header, row)) for row in reader if row]
    order, targets = [], {}
    for row in rows:
        name = row["img_name"]
        if name not in targets:
            order.append(name)
            targets[name] = []
        targets[name].append([_number(row[k]) for k in ("label", "xmin", "ymin", "xmax", "ymax")])
    images = [read_image(os.path.join(split_dir, "images", name)) for name in order]
    width = max((len(t) for t in targets.values()), default=1)
    padded = [targets[n] + [[-1] * 5] * (width - len(targets[n])) for n in order]
    as_float = any(isinstance(v, float) for t in padded for r in t for v in r)
    labels = torch.tensor(padded, dtype=torch.float64 if as_float else torch.int64)
    return images, labels.reshape(len(order), width, 5) / 256


class BananasDataset(torch.utils.data.Dataset):
    """The banana detection set of one split; prints ``read N training examples`` (or
    ``validation examples``) as the book. Items: ``(float image [3, 256, 256] in [0, 255],
    labels [1, 5])``."""

    def __init__(self, is_train: bool):
        self.features, self.labels = read_data_bananas(is_train)
        # the book's printed output, part of its API (tests/compat compares it character for character)
        print("read " + str(len(self.features)) + (" training examples" if is_train else " validation examples"))

    def __getitem__(self, idx):
        return (self.features[idx].float(), self.labels[idx])

    def __len__(self):
        return len(self.features)


def load_data_bananas(batch_size: int):
    """``(train_iter, val_iter)`` over the banana set (the training one shuffled); each yields
    at most ``PIXBOX_BOOK_QUICK`` batches per pass when that is set."""
    train_iter = BookDataLoader(BananasDataset(is_train=True), batch_size, shuffle=True)
    val_iter = BookDataLoader(BananasDataset(is_train=False), batch_size)
    return train_iter, val_iter


def read_voc_images(voc_dir: str, is_train: bool = True) -> tuple[list[Tensor], list[Tensor]]:
    """All images and colour label images of a VOC split (``train.txt`` or ``val.txt``), as
    ``uint8`` tensors ``[3, H, W]`` (the labels in VOC's palette colours)."""
    txt_fname = os.path.join(voc_dir, "ImageSets", "Segmentation", "train.txt" if is_train else "val.txt")
    with open(txt_fname) as f:
        images = f.read().split()
    features, labels = [], []
    for fname in images:
        features.append(read_image(os.path.join(voc_dir, "JPEGImages", f"{fname}.jpg")))
        labels.append(read_image(os.path.join(voc_dir, "SegmentationClass", f"{fname}.png")))
    return features, labels


#: The RGB colour of each of the 21 VOC classes (index 0 background), as the book's list.
VOC_COLORMAP: list[list[int]] = _PALETTE[:21].tolist()

#: The book's VOC class names (with its spellings ``'potted plant'`` and ``'tv/monitor'``).
VOC_CLASSES: list[str] = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "potted plant", "sheep", "sofa", "train",
    "tv/monitor"]


def voc_colormap2label() -> Tensor:
    """The map from ``(r * 256 + g) * 256 + b`` to a VOC class index: ``int64 [256 ** 3]``
    (colours outside :data:`VOC_COLORMAP` map to 0)."""
    colormap2label = torch.zeros(256 ** 3, dtype=torch.long)
    for i, (r, g, b) in enumerate(VOC_COLORMAP):
        colormap2label[(r * 256 + g) * 256 + b] = i
    return colormap2label


def voc_label_indices(colormap: Tensor, colormap2label: Tensor) -> Tensor:
    """The class indices ``int64 [H, W]`` of a colour label image ``[3, H, W]``."""
    colormap = colormap.permute(1, 2, 0).numpy().astype("int32")
    idx = (colormap[:, :, 0] * 256 + colormap[:, :, 1]) * 256 + colormap[:, :, 2]
    return colormap2label[idx]


def voc_rand_crop(feature: Tensor, label: Tensor, height: int, width: int) -> tuple[Tensor, Tensor]:
    """The same random ``height x width`` crop of an image and its label image ``[C, H, W]``.

    The offsets are drawn as torchvision's ``RandomCrop.get_params`` draws them (two
    ``torch.randint`` calls), so a seed gives the book's crops.

    Raises:
        ValueError: the image is smaller than the crop.
    """
    h, w = feature.shape[-2:]
    if h < height or w < width:
        raise ValueError(f"Required crop size {(height, width)} is larger than input image size {(h, w)}")
    if (h, w) == (height, width):
        i = j = 0
    else:
        i = int(torch.randint(0, h - height + 1, size=(1,)).item())
        j = int(torch.randint(0, w - width + 1, size=(1,)).item())
    return feature[..., i:i + height, j:j + width], label[..., i:i + height, j:j + width]


class VOCSegDataset(torch.utils.data.Dataset):
    """A VOC segmentation split: the images at least ``crop_size`` (``(height, width)``),
    normalized with ImageNet's mean and std; items are a random crop ``(float [3, h, w],
    int64 class indices [h, w])``. Prints ``read N examples`` as the book."""

    _MEAN = torch.tensor([0.485, 0.456, 0.406]).reshape(3, 1, 1)
    _STD = torch.tensor([0.229, 0.224, 0.225]).reshape(3, 1, 1)

    def __init__(self, is_train: bool, crop_size, voc_dir: str):
        self.crop_size = crop_size
        features, labels = read_voc_images(voc_dir, is_train=is_train)
        self.features = [self.normalize_image(feature) for feature in self.filter(features)]
        self.labels = self.filter(labels)
        self.colormap2label = voc_colormap2label()
        # the book's printed output, part of its API (tests/compat compares it character for character)
        print("read " + str(len(self.features)) + " examples")

    def normalize_image(self, img: Tensor) -> Tensor:
        return (img.float() / 255 - self._MEAN) / self._STD

    def filter(self, imgs):
        return [img for img in imgs if img.shape[1] >= self.crop_size[0] and img.shape[2] >= self.crop_size[1]]

    def __getitem__(self, idx):
        feature, label = voc_rand_crop(self.features[idx], self.labels[idx], *self.crop_size)
        return (feature, voc_label_indices(label, self.colormap2label))

    def __len__(self):
        return len(self.features)


def load_data_voc(batch_size: int, crop_size):
    """``(train_iter, test_iter)`` over VOC 2012 segmentation (book's folder
    ``../data/VOCdevkit/VOC2012``, or pixbox's stand-in); each yields at most
    ``PIXBOX_BOOK_QUICK`` batches per pass when that is set."""
    voc_dir = download_extract("voc2012", os.path.join("VOCdevkit", "VOC2012"))
    num_workers = get_dataloader_workers()
    train_iter = BookDataLoader(VOCSegDataset(True, crop_size, voc_dir), batch_size, shuffle=True,
                                drop_last=True, num_workers=num_workers)
    test_iter = BookDataLoader(VOCSegDataset(False, crop_size, voc_dir), batch_size, drop_last=True,
                               num_workers=num_workers)
    return train_iter, test_iter

