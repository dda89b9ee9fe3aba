"""FCN training throughput and predict latency: pixbox against D2L's loop, same network.

The network on both sides is ``build_fcn("resnet18", 6)`` (:mod:`pixbox.models.fcn`, random
initialisation; 6 = the generated dataset's classes), which normalizes its [0, 1] input itself.

The baseline is a transcription of the book's "Fully Convolutional Networks" section (14.11)
with ``d2l.train_ch13`` (d2l is not imported):

- ``VOCSegDataset`` preloads every image (``img.float() / 255``; the book's ImageNet
  ``Normalize`` is inside the FCN here) and every label as an RGB image, and per item cuts the
  same random 320 x 480 window from both (``voc_rand_crop``) and maps label colours to classes
  through the 256^3 ``colormap2label`` table (``voc_label_indices``);
- a ``DataLoader`` with shuffle, batch 8, ``drop_last``;
- per batch, ``train_batch_ch13``: ``net.train()``, ``zero_grad``, ``pred = net(X)``, the loss
  ``F.cross_entropy(pred, Y, reduction="none").mean(1).mean(1)``, ``l.sum().backward()``,
  ``step``, then ``l.sum()`` and ``d2l.accuracy(pred, Y)`` (argmax and compare);
- SGD, lr 0.001, weight decay 1e-3; float32, the default (NCHW) memory format.

It is timed as wall-clock seconds per step (data loading included) over ``--steps`` steps after
one warm-up step. pixbox's figure is what ``pixbox segment train`` runs:
:func:`pixbox.tasks.segment.train_segmenter` (channels-last, bfloat16 autocast on CPUs
with native bfloat16, its own data pipeline, no validation), reading ``img_s`` of the last
epoch from ``<run>/metrics.csv`` (wall clock of the whole epoch, loader start included).

Predict latency is for one 320 x 480 image (median of ``--repeat`` runs after warm-up):
``FCN.predict`` in float32 NCHW, in float32 channels-last and channels-last under bfloat16
autocast, against the book's ``predict`` (``net(X).argmax(dim=1)`` with autograd on, as the
book writes it).

    PYTHONPATH=. .venv/bin/python benchmarks/train_fcn.py [--data DIR] [--steps 8] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pixbox.data import make_dataset  # noqa: E402
from pixbox.data.io import VOC_COLORMAP  # noqa: E402
from pixbox.engine.precision import cpu_bf16_supported  # noqa: E402
from pixbox.models.fcn import build_fcn  # noqa: E402

CROP = (320, 480)
BATCH = 8


# ---------------------------------------------------------------------------------------------
# The book's data pipeline (D2L 14.9 "Semantic Segmentation and the Dataset")


def _read_rgb(path: Path) -> torch.Tensor:
    """``torchvision.io.read_image(path, ImageReadMode.RGB)``: uint8 ``[3, H, W]``."""
    with Image.open(path) as img:
        return torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1).contiguous()


def read_voc_images(voc_dir: Path, is_train: bool = True):
    names = (voc_dir / "ImageSets" / "Segmentation" / ("train.txt" if is_train else "val.txt")).read_text().split()
    features, labels = [], []
    for name in names:
        image = next((voc_dir / "JPEGImages").glob(f"{name}.*"))  # the book: f"{name}.jpg"
        features.append(_read_rgb(image))
        labels.append(_read_rgb(voc_dir / "SegmentationClass" / f"{name}.png"))
    return features, labels


def voc_colormap2label() -> torch.Tensor:
    """RGB -> class index table; colours outside the 21 (VOC's 255 boundary band) map to 0, as in the book."""
    colormap2label = torch.zeros(256 ** 3, dtype=torch.long)
    for i, colormap in enumerate(VOC_COLORMAP[:21].tolist()):  # the book's 21 VOC colours
        colormap2label[(colormap[0] * 256 + colormap[1]) * 256 + colormap[2]] = i
    return colormap2label


def voc_label_indices(colormap: torch.Tensor, colormap2label: torch.Tensor) -> torch.Tensor:
    colormap = colormap.permute(1, 2, 0).numpy().astype("int32")
    idx = (colormap[:, :, 0] * 256 + colormap[:, :, 1]) * 256 + colormap[:, :, 2]
    return colormap2label[idx]


def voc_rand_crop(feature: torch.Tensor, label: torch.Tensor, height: int, width: int):
    """``RandomCrop.get_params`` then the same crop of both."""
    h, w = feature.shape[-2:]
    i = int(torch.randint(0, h - height + 1, size=(1,)))
    j = int(torch.randint(0, w - width + 1, size=(1,)))
    return feature[:, i:i + height, j:j + width], label[:, i:i + height, j:j + width]


class VOCSegDataset(torch.utils.data.Dataset):
    def __init__(self, is_train: bool, crop_size, voc_dir: Path):
        self.crop_size = crop_size
        features, labels = read_voc_images(voc_dir, is_train=is_train)
        self.features = [self.normalize_image(feature) for feature in self.filter(features)]
        self.labels = self.filter(labels)
        self.colormap2label = voc_colormap2label()

    def normalize_image(self, img: torch.Tensor) -> torch.Tensor:
        return img.float() / 255  # the book also applies ImageNet Normalize: the FCN does it here

    def filter(self, imgs):
        return [img for img in imgs if img.shape[1] >= self.crop_size[0] and img.shape[2] >= self.crop_size[1]]

    def __getitem__(self, idx):
        feature, label = voc_rand_crop(self.features[idx], self.labels[idx], *self.crop_size)
        return feature, voc_label_indices(label, self.colormap2label)

    def __len__(self):
        return len(self.features)


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """``d2l.accuracy``: the number of correct predictions."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def book_train_img_s(data: Path, num_classes: int, steps: int, workers: int) -> float:
    """Images per second of ``train_batch_ch13`` steps, loader included, after one warm-up step."""
    torch.manual_seed(0)
    net = build_fcn("resnet18", num_classes)
    train_iter = torch.utils.data.DataLoader(VOCSegDataset(True, CROP, data), BATCH, shuffle=True, drop_last=True,
                                             num_workers=workers)

    def loss(inputs, targets):
        return F.cross_entropy(inputs, targets, reduction="none").mean(1).mean(1)

    trainer = torch.optim.SGD(net.parameters(), lr=0.001, weight_decay=1e-3)

    def batches():
        while True:
            yield from train_iter

    it = batches()
    metric = [0.0] * 4  # d2l.Accumulator(4): loss sum, correct pixels, images, pixels
    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        X, y = next(it)
        net.train()
        trainer.zero_grad()
        pred = net(X)
        l = loss(pred, y)  # noqa: E741 - the book's name
        l.sum().backward()
        trainer.step()
        train_loss_sum, train_acc_sum = l.sum(), accuracy(pred, y)
        metric = [a + float(b) for a, b in zip(metric, (train_loss_sum.detach(), train_acc_sum, y.shape[0], y.numel()))]
        times.append(time.perf_counter() - t0)
    print(f"D2L loop: train loss {metric[0] / metric[2]:.3f}, train acc {metric[1] / metric[3]:.3f} "
          f"after {steps + 1} steps", flush=True)
    return BATCH * steps / sum(times[1:])


# ---------------------------------------------------------------------------------------------
# pixbox


def pixbox_train_img_s(data: Path, runs: Path, epochs: int, workers: int) -> tuple[float, Path]:
    from pixbox.tasks.segment import SegmentConfig
    from pixbox.tasks.segment import train_segmenter

    cfg = SegmentConfig(data=str(data), model="fcn_resnet18", epochs=epochs, batch=BATCH, crop=CROP,
                        workers=workers, device="cpu", val_split=None, augment="crop", lr=0.001, pretrained="none",
                        project=str(runs), name="bench")
    run = train_segmenter(cfg, progress=False, verbose=False)
    with open(run / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return float(rows[-1]["img_s"]), run


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="a VOC segmentation folder (default: generate 64 + 8 images)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=8, help="timed baseline steps (batch 8)")
    ap.add_argument("--epochs", type=int, default=2, help="pixbox epochs; the last one's img_s is reported")
    ap.add_argument("--workers", type=int, default=2, help="data loader workers, both sides (SegmentConfig's default)")
    ap.add_argument("--repeat", type=int, default=10, help="timed predict calls per variant")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bf16 = cpu_bf16_supported()

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "segmentation"
        if args.data is None:
            make_dataset("segmentation", data, num_train=64, num_val=8, image_size=512, progress=False)
        classes = [c for c in (data / "classes.txt").read_text().split() if c]
        num_classes = len(classes) if classes else 21
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, workers {args.workers}, "
              f"bfloat16 autocast: {'yes' if bf16 else 'no (this CPU has no native bfloat16)'}; "
              f"fcn_resnet18, {num_classes} classes, batch {BATCH}, crop {CROP[0]}x{CROP[1]}\n", flush=True)

        book = book_train_img_s(data, num_classes, args.steps, args.workers)
        pix, _ = pixbox_train_img_s(data, Path(tmp) / "runs", args.epochs, args.workers)

        # Latency: one 320 x 480 image.
        torch.manual_seed(0)
        net = build_fcn("resnet18", num_classes)
        x = torch.rand(1, 3, *CROP, generator=torch.Generator().manual_seed(0))

        def book_predict():  # the book's predict(): net(X).argmax(dim=1), autograd on
            return net(x).argmax(dim=1).reshape(CROP)

        def predict():
            with torch.inference_mode():
                return net.predict(x)

        l_book = median_ms(book_predict, args.repeat)
        l_fp32 = median_ms(predict, args.repeat)
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        l_cl = median_ms(predict, args.repeat)

        def predict_bf16():
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                return net.predict(x)

        l_bf16 = median_ms(predict_bf16, args.repeat)

    rows = [
        (f"training img/s (batch {BATCH}, {CROP[0]}x{CROP[1]})", f"{pix:.2f}", f"{book:.2f}", pix / book, ">= 1.3x"),
        ("predict ms, fp32 NCHW", f"{l_fp32:.0f}", f"{l_book:.0f}", l_book / l_fp32, ""),
        ("predict ms, fp32 channels-last", f"{l_cl:.0f}", f"{l_book:.0f}", l_book / l_cl, ""),
        (f"predict ms, channels-last{' + bf16' if bf16 else ' (no bf16)'}", f"{l_bf16:.0f}", f"{l_book:.0f}",
         l_book / l_bf16, ""),
    ]
    print("| measure | pixbox | D2L loop | ratio | target |")
    print("|---|---:|---:|---:|---|")
    for name, a, b, ratio, target in rows:
        print(f"| {name} | {a} | {b} | {ratio:.2f}x | {target} |")


if __name__ == "__main__":
    main()
