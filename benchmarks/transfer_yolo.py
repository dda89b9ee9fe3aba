"""The peer of ``benchmarks/transfer.py``: ultralytics YOLO11n from scratch on the same photos.

ultralytics is what a practitioner would pick instead of pixbox. Its COCO weights cannot be
downloaded here, so this trains YOLO11n from its model YAML (random weights) on the same first
``--train-images`` training images and scores it on the same val split with the same pycocotools
scoring (``benchmarks/_coco_score.py``: score threshold 0.001, up to 300 detections per image),
for a wall-time budget (``--seconds``: ultralytics' ``time`` argument), e.g. the time pixbox's
pretrained SSD took in ``transfer.py``'s results.

Run it with the peers venv, where ultralytics is installed beside torch (``pip install
ultralytics``; it keeps the venv's torch):
    PYTHONPATH=. $PEERS_PY benchmarks/transfer_yolo.py --data runs/bench/transfer/data \\
        --train-images 300 --seconds 600 [--out runs/bench/transfer_yolo]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _coco_score import ground_truth, score  # noqa: E402


def yolo_layout(records_train, records_val, class_names, root: Path) -> Path:
    """The images (symbolic links) and YOLO label files of the two splits, and data.yaml."""
    for split, records in (("train", records_train), ("val", records_val)):
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        for r in records:
            src = Path(r.image).resolve()
            link = root / "images" / split / src.name
            if not link.exists():
                os.symlink(src, link)
            lines = []
            for (x1, y1, x2, y2), c in zip(r.boxes, r.labels):
                cx, cy, w, h = (x1 + x2) / 2 / r.width, (y1 + y2) / 2 / r.height, (x2 - x1) / r.width, (y2 - y1) / r.height
                lines.append(f"{int(c)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
            (root / "labels" / split / f"{src.stem}.txt").write_text("\n".join(lines) + ("\n" if lines else ""))
    yaml = root / "data.yaml"
    names = "\n".join(f"  {i}: {n}" for i, n in enumerate(class_names))
    yaml.write_text(f"path: {root.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    return yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="the photos dataset of transfer.py")
    ap.add_argument("--train-images", type=int, default=300)
    ap.add_argument("--seconds", type=float, default=600, help="training wall-time budget")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/transfer_yolo"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch
    from ultralytics import YOLO

    torch.set_num_threads(args.threads)
    train, class_names = ground_truth(args.data, "train")
    val, _ = ground_truth(args.data, "val")
    root = args.out / f"data_{args.train_images}"
    yaml = yolo_layout(train[:args.train_images], val, class_names, root)
    model = YOLO("yolo11n.yaml")  # the architecture only: random weights, nothing downloaded
    start = time.perf_counter()
    model.train(data=str(yaml), epochs=10_000, time=args.seconds / 3600, imgsz=args.imgsz, batch=args.batch,
                workers=args.threads, device="cpu", pretrained=False, plots=False, val=False, amp=False,
                project=str(args.out.resolve()), name=f"yolo11n_{args.train_images}", exist_ok=True, verbose=False)
    seconds = time.perf_counter() - start
    dets = []
    for i, r in enumerate(val):
        res = model.predict(str(r.image), conf=0.001, max_det=300, imgsz=args.imgsz, device="cpu", verbose=False)[0]
        b = res.boxes
        dets.append((i, b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(int)))
    metrics = score(val, class_names, dets)
    epochs = getattr(getattr(model, "trainer", None), "epoch", None)
    result = {"model": "yolo11n (scratch)", "train_images": args.train_images, "budget_s": args.seconds,
              "seconds": seconds, "epochs_done": None if epochs is None else int(epochs) + 1, **metrics}
    (args.out / f"result_{args.train_images}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
