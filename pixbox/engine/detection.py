"""The detection task: train, evaluate and run single-shot detectors on a dataset folder.

- :func:`train_detector` turns a :class:`~pixbox.engine.config.DetectConfig` into datasets,
  loaders, a model, an optimizer, an LR schedule and callbacks, trains with a
  :class:`DetectionTrainer` and writes everything to ``<project>/<name>/``:

  ================  ============================================================================
  file              content
  ================  ============================================================================
  ``config.yaml``   the full config of the run
  ``last.pt``       the checkpoint after the last finished epoch (resume from it)
  ``best.pt``       the checkpoint of the best validation ``monitor`` value (``map_50``)
  ``metrics.csv``   one row per epoch: lr, training losses, validation mAPs, img/s, time
  ``loss.png``      training loss curves; ``map.png``: validation mAP curves
  ================  ============================================================================

- :func:`evaluate_detector` computes the COCO and VOC metrics of a checkpoint on a split;
- :func:`predict_detector` detects objects in image files, folders or globs and writes the
  images with their boxes drawn plus a JSON file of the detections.

Training: images are resized to ``imgsz x imgsz`` (after the augmentation preset), labelled
with :func:`pixbox.ops.multibox_target` on the whole batch and scored with
:func:`pixbox.losses.multibox_loss` (two-stage detectors compute their own losses). Evaluation
resizes the images the same way and maps the detections back to the original image pixels,
where the ground truth is.

Fast R-CNN (``fast_rcnn_*`` models) classifies region proposals read from a file
(``proposals`` / ``--proposals``, :mod:`pixbox.data.proposals`) keyed by image path: the
training transforms move them with the boxes, evaluation scales them to the ``imgsz`` input,
and the detections come back in original pixels as for every detector.

Example:
    >>> from pixbox.engine import DetectConfig, train_detector
    >>> train_detector(DetectConfig(data="data/bananas", epochs=10, imgsz=256))  # doctest: +SKIP
    PosixPath('runs/detect/train')
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from pixbox._checks import check_choice, check_number
from pixbox._files import atomic_open
from pixbox.data.annotations import DetectionAnnotations
from pixbox.engine.callbacks import (
    CheckpointCallback,
    CSVLogger,
    EarlyStopping,
    EpochLogger,
    EvalCallback,
    PlotCallback,
    ProgressBar,
)
from pixbox.engine.config import FORMATS, DetectConfig
from pixbox.engine.distributed import (
    broadcast_object,
    get_world_size,
    init_distributed,
    is_main_process,
    local_device,
    shard_loader,
    shard_steps,
)
from pixbox.engine.predict import Predictor, load, prepare_image
from pixbox.engine.runs import (
    finish_lines,
    IMAGE_SUFFIXES,
    build_optimizer,
    build_scheduler,
    find_images,
    output_names,
    save_metrics_json,
    start_run,
    steps_per_epoch,
    unique_dir,
)
from pixbox.engine.trainer import Trainer, epoch_seed, seed_everything

__all__ = [
    "DetectionTrainer",
    "IMAGE_SUFFIXES",
    "RESUME_KEYS",
    "build_train_transforms",
    "evaluate_detector",
    "find_images",
    "predict_detector",
    "save_metrics_json",
    "train_detector",
    "unique_dir",
]

#: Config keys a resumed run may change (everything else comes from its checkpoint).
RESUME_KEYS: tuple[str, ...] = ("epochs", "device", "workers", "patience", "eval_every", "amp")

_CSV_COLUMNS = ("epoch", "lr", "train_loss", "train_cls", "train_box", "map", "map_50", "map_75", "voc07_ap50",
                "voc_ap50", "img_s", "epoch_time")
_PLOTS = {
    "loss.png": ("Training loss", "loss", ["train_loss", "train_cls", "train_box"]),
    "map.png": ("Validation mAP", "mAP", ["map", "map_50", "map_75", "voc07_ap50"]),
}


# ----------------------------------------------------------------------------------------------
# Data


def build_train_transforms(preset: str, imgsz: int):
    """The training pipeline of an augmentation preset (see :data:`~pixbox.engine.config.AUGMENT_PRESETS`).

    Args:
        preset (str): ``"none"`` (resize only), ``"light"`` (horizontal flip, SSD photometric
            distortion) or ``"ssd"`` (also the SSD zoom out and IoU crop).
        imgsz (int): output side.

    Returns:
        Compose: ``(uint8 image [3, H, W], target) -> (float32 image [3, imgsz, imgsz], target)``
        with boxes in the pixels of the output image.
    """
    from pixbox.data import transforms as T

    size = (imgsz, imgsz)
    if preset == "none":
        steps = [T.Resize(size), T.SanitizeBoxes(min_size=0.0)]
    elif preset == "light":
        steps = [T.RandomHorizontalFlip(), T.Resize(size), T.RandomPhotometricDistort(), T.SanitizeBoxes(min_size=0.0)]
    elif preset == "ssd":
        steps = [T.RandomZoomOut(fill=(124, 116, 104), side_range=(1.0, 3.0)), T.RandomIoUCrop(),
                 T.RandomHorizontalFlip(), T.Resize(size), T.RandomPhotometricDistort(), T.SanitizeBoxes(min_size=1.0)]
    else:
        raise ValueError(f"preset must be 'none', 'light' or 'ssd', got {preset!r}")
    return T.Compose(steps + [T.ToDtype(torch.float32)])


class _EvalTransform:
    """Resizes the image like :func:`~pixbox.engine.predict.prepare_image`; the target keeps the
    original boxes and gains ``"size"``, the original ``(H, W)``."""

    def __init__(self, imgsz: int):
        self.imgsz = imgsz

    def __call__(self, image: Tensor, target: dict):
        target = dict(target, size=(int(image.shape[1]), int(image.shape[2])))
        return prepare_image(image, self.imgsz), target


def _limit(dataset, limit: int | None):
    if limit is None or limit >= len(dataset):
        return dataset
    from pixbox.data.datasets import DetectionDataset

    ann = DetectionAnnotations(dataset.class_names, dataset.annotations.records[:limit])
    proposals = None if dataset.proposals is None else dataset.proposals[:limit]
    return DetectionDataset.from_annotations(ann, transforms=dataset.transforms, on_error=dataset.on_error,
                                             proposals=proposals)


def _dataset(data, fmt: str, split: str, transforms, limit: int | None = None, proposals=None):
    from pixbox.data.datasets import DetectionDataset

    ds = DetectionDataset(data, None if fmt == "auto" else fmt, split, transforms=transforms, proposals=proposals)
    if len(ds) == 0:
        raise ValueError(f"split {split!r} of {data} has no images")
    return _limit(ds, limit)


def _check_val_split(cfg: DetectConfig) -> None:
    from pixbox.data.formats import detect_format, list_splits

    splits = list_splits(cfg.data, detect_format(cfg.data) if cfg.format == "auto" else cfg.format)
    if cfg.val_split not in splits:
        hint = difflib.get_close_matches(cfg.val_split, splits, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"validation split {cfg.val_split!r} not found in {cfg.data} (its splits: {splits}){extra} "
                         "Set val_split to one of them, or to null (None) to train without validation.")


def _val_loader(dataset, batch: int, workers: int):
    from pixbox.data.datasets import collate_detection, make_loader

    return make_loader(dataset, batch, shuffle=False, num_workers=workers, collate_fn=collate_detection)


# ----------------------------------------------------------------------------------------------
# Evaluation


def _evaluate(predictor: Predictor, loader, class_names: Sequence[str], *, score_threshold: float,
              nms_threshold: float, topk: int) -> dict[str, Any]:
    from pixbox.metrics.detection import DetectionEvaluator

    evaluator = DetectionEvaluator(list(class_names))
    for images, targets in loader:
        proposals = [t["proposals"] for t in targets] if predictor.needs_proposals else None
        dets = predictor.predict_batch(images, [t["size"] for t in targets], score_threshold=score_threshold,
                                       nms_threshold=nms_threshold, topk=topk, proposals=proposals)
        evaluator.update(dets, [{k: t[k] for k in ("boxes", "labels", "iscrowd", "difficult")} for t in targets])
    return evaluator.compute()


class DetectionTrainer(Trainer):
    """The :class:`~pixbox.engine.trainer.Trainer` of detectors (SSD, TinySSD, Faster and Fast R-CNN).

    Batches are ``(images [B, 3, S, S] float, labels [B, G, 5])`` from
    :func:`pixbox.data.datasets.collate_multibox`, plus the list of each image's proposals
    (``[P_i, 4]`` pixels of the batch) for a Fast R-CNN. Takes the arguments of
    :class:`~pixbox.engine.trainer.Trainer` plus:

    Args:
        config (DetectConfig): the run's config (loss options, evaluation thresholds; saved in
            checkpoints).
        class_names (sequence of str): the dataset's classes.
        val_loader (iterable, optional): batches of ``(images [B, 3, S, S], targets)`` whose
            targets hold the original ``boxes``, ``labels``, ``iscrowd``, ``difficult`` and
            ``size`` (``(H, W)``); None disables :meth:`evaluate`.
    """

    def __init__(self, model: nn.Module, optimizer, train_data, *, config: DetectConfig,
                 class_names: Sequence[str], val_loader=None, **kwargs):
        super().__init__(model, optimizer, train_data, **kwargs)
        self.config = config
        self.class_names = list(class_names)
        self.val_loader = val_loader

    def compute_loss(self, batch) -> dict[str, Tensor]:
        from pixbox.losses import multibox_loss
        from pixbox.ops import multibox_target

        images, labels, *rest = self.to_device(batch)
        if getattr(self.model, "needs_proposals", False):  # Fast R-CNN: the batch's third element
            if not rest:
                raise ValueError(f"{type(self.model).__name__} needs region proposals in every batch: build the "
                                 "dataset with proposals= (config key proposals)")
            return self.forward(images, labels, rest[0], method="detection_losses")
        if hasattr(self.model, "detection_losses"):  # two-stage detectors compute their own losses
            return self.forward(images, labels, method="detection_losses")
        anchors, cls_preds, bbox_preds = self.forward(images)
        cls_preds, bbox_preds = cls_preds.float(), bbox_preds.float()
        bbox_labels, bbox_masks, cls_labels = multibox_target(anchors.float(), labels)  # whole batch at once
        return multibox_loss(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks,
                             negative_mining_ratio=self.config.negative_mining_ratio, box_loss=self.config.box_loss)

    def evaluate(self) -> dict[str, Any]:
        if self.val_loader is None:
            return {}
        cfg = self.config
        predictor = Predictor(self.model, self.class_names, cfg.imgsz, device=self.device)
        try:
            return _evaluate(predictor, self.val_loader, self.class_names, score_threshold=cfg.score_threshold,
                             nms_threshold=cfg.nms_threshold, topk=cfg.topk)
        finally:
            self.model.train()

    def checkpoint_extra(self) -> dict[str, Any]:
        import pixbox

        return {"task": "detect", "config": self.config.to_dict(), "class_names": list(self.class_names),
                "model_name": self.config.model, "num_classes": len(self.class_names), "imgsz": self.config.imgsz,
                "pixbox_version": pixbox.__version__}


# ----------------------------------------------------------------------------------------------
# Building a run


def train_detector(config: DetectConfig | dict | str | os.PathLike | None = None, *, resume=None,
                   progress: bool = True, verbose: bool = True, callbacks: Sequence = ()) -> Path:
    """Trains a detector as ``config`` says and returns its run folder.

    A new run goes to ``<project>/<name>``, or ``<name>2``, ``<name>3``, ... when that exists
    (a previous run is never overwritten). With ``resume``, the run continues from a checkpoint
    with the config saved in it and ends exactly as an uninterrupted run would (on the CPU;
    same metrics and weights, up to float noise on other devices).

    Args:
        config (DetectConfig, dict, YAML path or None): the run's config. When resuming it may
            be None, or change only :data:`RESUME_KEYS` (e.g. more ``epochs``).
        resume (None, True, str or PathLike): None/False starts a new run. True resumes
            ``<project>/<name>/last.pt``; a run folder, a checkpoint file or a run name (under
            ``project``) resumes that one.
        progress (bool): show tqdm progress bars (only when stderr is a terminal).
        verbose (bool): print what the run does (folder, data, early stop, result).
        callbacks (sequence): extra callbacks, run after the standard ones.

    Returns:
        Path: the run folder, holding ``config.yaml``, ``last.pt``, ``best.pt``,
        ``metrics.csv``, ``loss.png`` and ``map.png`` (when evaluated).

    Raises:
        ValueError, TypeError: a bad config value (message naming the key).
        FileNotFoundError: the data folder or the checkpoint to resume does not exist.
        DatasetError: a problem in the dataset files.
    """
    cfg, state, run_dir = start_run(config, resume, DetectConfig, RESUME_KEYS)
    init_distributed(cfg.device)
    if state is None and cfg.proposals is not None:  # a new run: its files by absolute path, like data
        cfg = cfg.replace(proposals=os.path.abspath(cfg.proposals))
    data = _TrainingData(cfg)
    if state is not None and list(state.get("class_names", [])) != data.class_names:
        raise ValueError(f"{run_dir}: the checkpoint's classes {state.get('class_names')} differ from the "
                         f"dataset's {data.class_names}")
    if run_dir is None:  # a new run: its folder is made (by rank 0) once the data reads fine
        run_dir = broadcast_object(unique_dir(cfg.project, cfg.name) if is_main_process() else None)
        cfg = cfg.replace(name=run_dir.name)
    if is_main_process():
        cfg.to_yaml(run_dir / "config.yaml")
    trainer = _detection_trainer(cfg, data, run_dir, progress=progress, verbose=verbose, callbacks=callbacks)
    if state is not None:
        trainer.load_state_dict(state)
        trainer.log(f"resuming {run_dir} at epoch {trainer.start_epoch + 1}/{cfg.epochs}")
    else:
        trainer.log(f"training {cfg.model} on {cfg.data} ({len(data.train_set)} train images, {data.num_val} val "
                    f"images, {len(data.class_names)} classes) on {trainer.device}"
                    + (f" x {trainer.world_size} processes" if trainer.world_size > 1 else "")
                    + f"; results in {run_dir}")
    trainer.fit()
    for line in finish_lines("detect", trainer, run_dir, cfg.monitor, data):
        trainer.log(line)
    return run_dir


class _TrainingData:
    """The datasets and loaders of a run (read and checked before the run folder is made)."""

    def __init__(self, cfg: DetectConfig):
        from pixbox.data.datasets import collate_multibox, make_loader

        proposals = None
        if cfg.proposals is not None:  # read once for both splits
            from pixbox.data.proposals import load_proposals

            proposals = load_proposals(cfg.proposals)
        transforms = build_train_transforms(cfg.augment_preset, cfg.imgsz)
        self.train_set = _dataset(cfg.data, cfg.format, cfg.train_split, transforms, cfg.limit_train, proposals)
        self.class_names = list(self.train_set.class_names)
        self.val_loader = None
        if cfg.val_split is not None:
            _check_val_split(cfg)
            val_set = _dataset(cfg.data, cfg.format, cfg.val_split, _EvalTransform(cfg.imgsz), cfg.limit_val,
                               proposals)
            if val_set.class_names != self.class_names:
                raise ValueError(f"the {cfg.val_split!r} split has the classes {val_set.class_names} but the "
                                 f"{cfg.train_split!r} split has {self.class_names}")
            self.val_loader = _val_loader(val_set, cfg.batch, cfg.workers)
        self.num_val = 0 if self.val_loader is None else len(self.val_loader.dataset)
        batch = cfg.batch
        if get_world_size() > 1:  # torchrun: each rank loads its shard of every global batch
            self.steps_per_epoch, drop_last = shard_steps(len(self.train_set), batch)

            def shards(epoch: int):
                return shard_loader(self.train_set, batch, seed=epoch_seed(cfg.seed, epoch), num_workers=cfg.workers,
                                    collate_fn=collate_multibox, drop_last=drop_last)

            self.batches = shards
            return
        self.steps_per_epoch, drop_last = steps_per_epoch(len(self.train_set), batch)

        def batches(epoch: int):
            # A new loader per epoch, seeded from (seed, epoch): the epoch's order and augmentation
            # depend on nothing else (also with worker processes), so a resumed run repeats them.
            return make_loader(self.train_set, batch, shuffle=True, num_workers=cfg.workers,
                               collate_fn=collate_multibox, seed=epoch_seed(cfg.seed, epoch), drop_last=drop_last)

        self.batches = batches


def _detection_trainer(cfg: DetectConfig, data: _TrainingData, run_dir: Path, *, progress: bool, verbose: bool,
                       callbacks: Sequence) -> DetectionTrainer:
    """The model (initialized from ``cfg.seed``), optimizer, LR schedule, callbacks and trainer of a run."""
    from pixbox.models import build_model

    seed_everything(cfg.seed)
    model = build_model(cfg.model, len(data.class_names), image_size=cfg.imgsz)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, data.steps_per_epoch)
    standard = [ProgressBar(progress)]
    if data.val_loader is not None:
        standard.append(EvalCallback(cfg.eval_every, log=False))
    standard.append(EpochLogger(("map", "map_50", "map_75", "voc07_ap50")))
    if cfg.patience > 0:
        standard.append(EarlyStopping(cfg.patience, cfg.monitor))
    standard += [CSVLogger(run_dir / "metrics.csv", _CSV_COLUMNS), CheckpointCallback(run_dir, cfg.monitor),
                 PlotCallback(run_dir, _PLOTS)]
    return DetectionTrainer(model, optimizer, data.batches, epochs=cfg.epochs, scheduler=scheduler,
                            device=local_device(cfg.device), callbacks=standard + list(callbacks), amp=cfg.amp,
                            channels_last=cfg.channels_last, grad_clip=cfg.grad_clip, seed=cfg.seed, verbose=verbose,
                            sync_bn=cfg.sync_bn, config=cfg, log_file=run_dir / "train.log",
                            class_names=data.class_names, val_loader=data.val_loader)


# ----------------------------------------------------------------------------------------------
# Evaluation and prediction


def _predictor(weights, *, device) -> Predictor:
    if isinstance(weights, Predictor):
        return weights
    if isinstance(weights, (str, os.PathLike)):
        return load(weights, device=device)
    raise TypeError(f"weights_or_model must be a checkpoint path, a Predictor or an nn.Module, "
                    f"got {type(weights).__name__}")


def evaluate_detector(weights_or_model, data, *, fmt: str = "auto", split: str = "val", batch: int = 16,
                      imgsz: int | None = None, device: str = "auto", score_threshold: float = 0.01,
                      nms_threshold: float = 0.45, topk: int = 200, workers: int = 0,
                      limit: int | None = None, proposals=None) -> dict[str, Any]:
    """COCO and VOC metrics of a detector on one split of a dataset.

    Args:
        weights_or_model: a checkpoint path (``best.pt``), a :class:`~pixbox.engine.predict.Predictor`
            or a detector ``nn.Module`` (then the dataset's class names are used).
        data (str or PathLike): the dataset folder.
        fmt (str): ``"auto"`` or a format of :data:`pixbox.data.formats.DETECTION_FORMATS`.
        split (str): the split to evaluate.
        batch (int): images per forward pass, >= 1.
        imgsz (int, optional): input size; default the checkpoint's (256 for a bare model).
        device (str): ``"auto"``, ``"cpu"``, ``"cuda:0"``, ...
        score_threshold (float): keep detections scoring above this (low for mAP).
        nms_threshold (float): per-class NMS IoU threshold.
        topk (int): detections kept per image.
        workers (int): data loading processes.
        limit (int, optional): evaluate only the first this many images.
        proposals (str, PathLike or dict, optional): a region proposals file covering the split
            (:mod:`pixbox.data.proposals`); required by a Fast R-CNN, refused by other models.

    Returns:
        dict: :meth:`pixbox.metrics.detection.DetectionEvaluator.compute`'s metrics (``map``,
        ``map_50``, ``map_75``, ``voc07_ap50``, ``voc_ap50``, ``per_class``, ``pr_curves``, ...),
        in the pixels of the original images.

    Raises:
        ValueError: the dataset's classes differ from the model's, or ``proposals`` missing for
            a Fast R-CNN (or given to another model).
    """
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be a dataset folder path, got {type(data).__name__}")
    if not Path(data).is_dir():
        raise FileNotFoundError(f"data folder {str(data)!r} does not exist")
    check_choice(fmt, "fmt", FORMATS)
    batch, workers, topk = (int(check_number(v, n, low=low)) for v, n, low in
                            ((batch, "batch", 1), (workers, "workers", 0), (topk, "topk", 1)))
    for value, name in ((score_threshold, "score_threshold"), (nms_threshold, "nms_threshold")):
        check_number(value, name, low=0, high=1)
    if limit is not None:
        limit = int(check_number(limit, "limit", low=1))
    if imgsz is not None and (isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < 16):
        raise ValueError(f"imgsz must be an int >= 16 or None, got {imgsz!r}")
    if isinstance(weights_or_model, nn.Module):  # its class names come from the dataset
        predictor, size = None, imgsz or 256
        wants = bool(getattr(weights_or_model, "needs_proposals", False))
    else:
        predictor = _predictor(weights_or_model, device=device)
        size = imgsz or predictor.imgsz
        wants = predictor.needs_proposals
    _check_proposals_arg(wants, proposals, weights_or_model)
    dataset = _dataset(data, fmt, split, _EvalTransform(size), limit, proposals)
    if predictor is None:
        predictor = Predictor(weights_or_model, dataset.class_names, size, device=device)
    if dataset.class_names != predictor.class_names:
        raise ValueError(f"the model's classes {predictor.class_names} differ from those of split {split!r} "
                         f"of {data}: {dataset.class_names}")
    return _evaluate(predictor, _val_loader(dataset, batch, workers), dataset.class_names,
                     score_threshold=score_threshold, nms_threshold=nms_threshold, topk=topk)


def _check_proposals_arg(wants: bool, proposals, what) -> None:
    name = what if isinstance(what, (str, os.PathLike)) else type(what).__name__
    if wants and proposals is None:
        raise ValueError(f"{name} is a Fast R-CNN: it needs region proposals of the images; pass --proposals FILE "
                         "(proposals=), a file made with `pixbox detect proposals --data DIR -o FILE`")
    if not wants and proposals is not None:
        raise ValueError(f"{name} does not take region proposals (only fast_rcnn_* models do); drop --proposals")


def predict_detector(weights, sources, *, out=None, score_threshold: float = 0.25, nms_threshold: float = 0.45,
                     topk: int = 100, device: str = "auto", batch: int = 16, proposals=None) -> list[dict[str, Any]]:
    """Detects objects in image files and writes the drawn images and a JSON of the detections.

    Args:
        weights (str, PathLike or Predictor): a checkpoint (``best.pt``) or a loaded predictor.
        sources: image files, folders or glob patterns (see :func:`find_images`).
        out (str or PathLike, optional): output folder, created when missing; None writes
            nothing. It gets ``<stem>.png`` per image (boxes drawn with class names and scores)
            and ``predictions.json``: ``{"weights", "class_names", "score_threshold",
            "nms_threshold", "images": [{"path", "output", "width", "height", "detections":
            [{"box": [x1, y1, x2, y2], "score", "label", "name"}]}]}`` (pixels of the original
            images).
        score_threshold (float): minimum score, in [0, 1].
        nms_threshold (float): per-class NMS IoU threshold, in [0, 1].
        topk (int): detections kept per image.
        device (str): ``"auto"``, ``"cpu"``, ``"cuda:0"``, ...
        batch (int): images per forward pass.
        proposals (str, PathLike or dict, optional): Fast R-CNN only: a region proposals file;
            each image is found by the end of its path (e.g. ``images/val/a.png`` or ``a.png``;
            see :func:`pixbox.data.proposals.proposals_for`). None runs selective search on each
            image (OpenCV contrib), or raises ImportError without it.

    Returns:
        list[dict]: :meth:`~pixbox.engine.predict.Predictor.predict`'s results, one per image.
    """
    from pixbox.data.io import read_image
    from pixbox.viz import draw_boxes, save_image

    predictor = weights if isinstance(weights, Predictor) else load(weights, device=device, batch=batch)
    paths = find_images(sources)
    table = None
    if proposals is not None:
        from pixbox.data.proposals import proposals_for

        if not predictor.needs_proposals:
            _check_proposals_arg(False, proposals, weights)
        table = proposals_for(paths, proposals)  # fails on a missing image before any work
    results, records = [], []
    out_dir = None if out is None else Path(out)
    names = output_names(paths)
    for start in range(0, len(paths), predictor.batch):
        chunk = paths[start:start + predictor.batch]
        images = [read_image(p) for p in chunk]
        dets = predictor.predict(images, score_threshold=score_threshold, nms_threshold=nms_threshold, topk=topk,
                                 proposals=None if table is None else table[start:start + predictor.batch])
        for k, (path, image, det) in enumerate(zip(chunk, images, dets)):
            det["path"] = str(path)
            results.append(det)
            name = names[start + k]
            if out_dir is not None:
                drawn = draw_boxes(image, det["boxes"], det["names"], det["scores"])
                save_image(drawn, out_dir / name)
            records.append({
                "path": str(path), "output": name if out_dir is not None else None,
                "width": det["size"][1], "height": det["size"][0],
                "detections": [{"box": [round(float(v), 2) for v in box], "score": round(float(s), 5), "label": int(c),
                                "name": n}
                               for box, s, c, n in zip(det["boxes"].tolist(), det["scores"].tolist(),
                                                       det["labels"].tolist(), det["names"])],
            })
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        doc = {"weights": predictor.path,
               "class_names": predictor.class_names, "score_threshold": score_threshold,
               "nms_threshold": nms_threshold, "images": records}
        with atomic_open(out_dir / "predictions.json", "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return results


