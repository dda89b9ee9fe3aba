"""The semantic segmentation task: train, evaluate and run FCNs on Pascal VOC-format data.

- :func:`train_segmenter` turns a :class:`~pixbox.engine.config.SegmentConfig` into datasets,
  an FCN (:mod:`pixbox.models.fcn`), an optimizer, an LR schedule and callbacks, and trains
  with a :class:`SegmentationTrainer` (per-pixel cross-entropy; mask pixels of 255 are
  ignored). Everything goes to ``<project>/<name>/``: ``config.yaml``, ``last.pt``,
  ``best.pt``, ``metrics.csv``, ``loss.png``, ``miou.png`` and, after the last evaluation,
  ``confusion_matrix.png`` and ``val_metrics.json``.
- :func:`evaluate_segmenter` gives pixel accuracy, mean class accuracy, per-class IoU and mIoU
  (:mod:`pixbox.metrics.segmentation`) of a checkpoint on a split, on whole images;
- :func:`predict_segmenter` writes, per image, the label map as a VOC palette PNG and an overlay
  of it on the image.

Data: the VOC layout (``JPEGImages/``, ``SegmentationClass/`` palette PNGs,
``ImageSets/Segmentation/<split>.txt``; :class:`pixbox.data.datasets.SegmentationDataset`).
Training cuts a random ``crop`` window from each image; an image smaller than the window is
padded (mask 255, so the padding is ignored) instead of being dropped as D2L's loader does.
Evaluation and prediction run on whole images of any size (the FCN pads to a multiple of 32
and crops its output back); images of different sizes in one evaluation batch are padded to
the largest, with ignored mask pixels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_number
from pixbox._files import atomic_open
from pixbox.engine.callbacks import (
    CheckpointCallback,
    CSVLogger,
    EarlyStopping,
    EpochLogger,
    EvalCallback,
    PlotCallback,
    ProgressBar,
)
from pixbox.engine.checkpoint import load_checkpoint, save_checkpoint
from pixbox.engine.config import SegmentConfig
from pixbox.engine.distributed import (
    broadcast_object,
    get_world_size,
    init_distributed,
    is_main_process,
    local_device,
    shard_loader,
    shard_steps,
)
from pixbox.engine.runs import (
    finish_lines,
    build_optimizer,
    build_scheduler,
    find_images,
    keep_random_subset,
    output_names,
    save_metrics_json,
    start_run,
    steps_per_epoch,
    unique_dir,
)
from pixbox.engine.trainer import Trainer, epoch_seed, seed_everything, select_device

__all__ = [
    "IGNORE_INDEX",
    "RESUME_KEYS",
    "SegmentationTrainer",
    "SegmenterPredictor",
    "collate_padded",
    "evaluate_segmenter",
    "load_segmenter",
    "predict_segmenter",
    "segment_transforms",
    "train_segmenter",
]

#: Mask value of pixels that count nowhere (VOC's boundary band, padding).
IGNORE_INDEX = 255
#: Config keys a resumed run may change.
RESUME_KEYS: tuple[str, ...] = ("epochs", "device", "workers", "patience", "eval_every", "amp")
#: The keys a segmentation checkpoint needs for :func:`load_segmenter`.
MODEL_KEYS: tuple[str, ...] = ("model", "model_name", "num_classes", "class_names")

_CSV_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "miou", "pixel_accuracy", "mean_class_accuracy", "img_s",
                "epoch_time")
_PLOTS = {
    "loss.png": ("Training loss", "loss", ["train_loss"]),
    "miou.png": ("Validation", "score", ["miou", "pixel_accuracy", "mean_class_accuracy"]),
}


# ----------------------------------------------------------------------------------------------
# Data


def segment_transforms(preset: str, crop: tuple[int, int] | None):
    """The joint image and mask pipeline: ``(uint8 [3, H, W], {"mask"}) -> (float32 in [0, 1], {"mask"})``.

    Args:
        preset (str): ``"eval"`` (no change but the dtype), ``"crop"`` (a random ``crop``
            window; smaller images are padded with image 0 and mask 255), ``"flip"`` (plus a
            horizontal flip) or ``"scale"`` (a random rescale by 0.5x to 2x first).
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


def _dataset(data, split: str, transforms, limit: int | None = None, *, seed: int = 0):
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


def _loader(dataset, batch: int, workers: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False,
            collate_fn=None):
    from pixbox.data.datasets import make_loader

    return make_loader(dataset, batch, shuffle=shuffle, num_workers=workers, seed=seed, drop_last=drop_last,
                       collate_fn=collate_fn)


# ----------------------------------------------------------------------------------------------
# Training


def _build_model(name: str, num_classes: int, *, pretrained: str = "none", freeze_upsample: bool = False):
    from pixbox.models.fcn import SEGMENTATION_MODELS

    weights = None if pretrained == "none" else pretrained
    return SEGMENTATION_MODELS[name](num_classes, pretrained=weights, freeze_upsample=freeze_upsample)


@torch.inference_mode()
def _evaluate(model: nn.Module, loader, class_names: Sequence[str], device: torch.device) -> dict[str, Any]:
    from pixbox.metrics.segmentation import SegmentationEvaluator

    evaluator = SegmentationEvaluator(list(class_names), ignore_index=IGNORE_INDEX)
    model.eval()
    for images, masks in loader:
        logits = model(images.to(device))
        evaluator.update(logits.argmax(1).cpu(), masks)
    return evaluator.compute()


class SegmentationTrainer(Trainer):
    """The :class:`~pixbox.engine.trainer.Trainer` of FCNs: per-pixel cross-entropy, 255 ignored.

    Batches are ``(images [B, 3, h, w] float in [0, 1], masks [B, h, w] int64)``.

    Args:
        config (SegmentConfig): the run's config (saved in checkpoints).
        class_names (sequence of str): the dataset's classes, background first.
        val_loader (iterable, optional): whole-image validation batches; None disables
            :meth:`evaluate`.
    """

    def __init__(self, model: nn.Module, optimizer, train_data, *, config: SegmentConfig,
                 class_names: Sequence[str], val_loader=None, **kwargs):
        super().__init__(model, optimizer, train_data, **kwargs)
        self.config = config
        self.class_names = list(class_names)
        self.val_loader = val_loader

    def compute_loss(self, batch) -> dict[str, Tensor]:
        images, masks = self.to_device(batch)
        logits = self.forward(images).float()
        loss = F.cross_entropy(logits, masks, ignore_index=IGNORE_INDEX)
        valid = masks != IGNORE_INDEX
        acc = ((logits.detach().argmax(1) == masks) & valid).sum() / valid.sum().clamp(min=1)
        return {"loss": loss, "acc": acc}

    def evaluate(self) -> dict[str, Any]:
        if self.val_loader is None:
            return {}
        try:
            return _evaluate(self.model, self.val_loader, self.class_names, self.device)
        finally:
            self.model.train()

    def checkpoint_extra(self) -> dict[str, Any]:
        import pixbox

        return {"task": "segment", "config": self.config.to_dict(), "class_names": list(self.class_names),
                "model_name": self.config.model, "num_classes": len(self.class_names),
                "pixbox_version": pixbox.__version__}


class _TrainingData:
    def __init__(self, cfg: SegmentConfig):
        self.train_set = _dataset(cfg.data, cfg.train_split, segment_transforms(cfg.augment, cfg.crop),
                                  cfg.limit_train, seed=cfg.seed)
        self.class_names = list(self.train_set.class_names)
        self.val_loader = None
        if cfg.val_split is not None:
            val_set = _dataset(cfg.data, cfg.val_split, segment_transforms("eval", None), cfg.limit_val,
                               seed=cfg.seed)
            if val_set.class_names != self.class_names:
                raise ValueError(f"the {cfg.val_split!r} split has the classes {val_set.class_names} but the "
                                 f"{cfg.train_split!r} split has {self.class_names}")
            self.val_loader = _loader(val_set, cfg.batch, cfg.workers, collate_fn=collate_padded)
        self.num_val = 0 if self.val_loader is None else len(self.val_loader.dataset)
        if get_world_size() > 1:  # torchrun: each rank loads its shard of every global batch
            self.steps_per_epoch, drop_last = shard_steps(len(self.train_set), cfg.batch)

            def shards(epoch: int):
                from pixbox.data.datasets import collate_segmentation

                return shard_loader(self.train_set, cfg.batch, seed=epoch_seed(cfg.seed, epoch),
                                    num_workers=cfg.workers, drop_last=drop_last, collate_fn=collate_segmentation)

            self.batches = shards
            return
        self.steps_per_epoch, drop_last = steps_per_epoch(len(self.train_set), cfg.batch)

        def batches(epoch: int):
            from pixbox.data.datasets import collate_segmentation

            return _loader(self.train_set, cfg.batch, cfg.workers, shuffle=True, seed=epoch_seed(cfg.seed, epoch),
                           drop_last=drop_last, collate_fn=collate_segmentation)

        self.batches = batches


def train_segmenter(config: SegmentConfig | dict | str | os.PathLike | None = None, *, resume=None,
                    progress: bool = True, verbose: bool = True, callbacks: Sequence = ()) -> Path:
    """Trains an FCN as ``config`` says and returns its run folder.

    Args:
        config (SegmentConfig, dict, YAML path or None): the run's config. When resuming it may be
            None, or change only :data:`RESUME_KEYS`.
        resume (None, True, str or PathLike): as :func:`pixbox.engine.detection.train_detector`.
        progress (bool): tqdm progress bars (only when stderr is a terminal).
        verbose (bool): print what the run does.
        callbacks (sequence): extra callbacks, run after the standard ones.

    Returns:
        Path: the run folder (see the module docstring for its files).
    """
    cfg, state, run_dir = start_run(config, resume, SegmentConfig, RESUME_KEYS)
    init_distributed(cfg.device)
    if state is None and cfg.pretrained not in ("default", "none"):
        if not Path(cfg.pretrained).is_file():
            raise FileNotFoundError(f"pretrained weights file {cfg.pretrained!r} does not exist (use 'default' for "
                                    f"the backbone's offline weights, or 'none' for a random initialization)")
        cfg = cfg.replace(pretrained=os.path.abspath(cfg.pretrained))
    data = _TrainingData(cfg)
    if state is not None and list(state.get("class_names", [])) != data.class_names:
        raise ValueError(f"{run_dir}: the checkpoint's classes {state.get('class_names')} differ from the "
                         f"dataset's {data.class_names}")
    seed_everything(cfg.seed)
    model = _build_model(cfg.model, len(data.class_names), pretrained="none" if state is not None else cfg.pretrained,
                         freeze_upsample=cfg.freeze_upsample)
    if run_dir is None:  # made by rank 0 under torchrun
        run_dir = broadcast_object(unique_dir(cfg.project, cfg.name) if is_main_process() else None)
        cfg = cfg.replace(name=run_dir.name)
    if is_main_process():
        cfg.to_yaml(run_dir / "config.yaml")
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, data.steps_per_epoch)
    standard = [ProgressBar(progress)]
    if data.val_loader is not None:
        standard.append(EvalCallback(cfg.eval_every, log=False))
    standard.append(EpochLogger(("miou", "pixel_accuracy", "mean_class_accuracy")))
    if cfg.patience > 0:
        standard.append(EarlyStopping(cfg.patience, cfg.monitor))
    standard += [CSVLogger(run_dir / "metrics.csv", _CSV_COLUMNS), CheckpointCallback(run_dir, cfg.monitor),
                 PlotCallback(run_dir, _PLOTS)]
    trainer = SegmentationTrainer(model, optimizer, data.batches, epochs=cfg.epochs, scheduler=scheduler,
                                  device=local_device(cfg.device), callbacks=standard + list(callbacks),
                                  amp=cfg.amp, channels_last=cfg.channels_last, grad_clip=cfg.grad_clip,
                                  seed=cfg.seed, verbose=verbose, sync_bn=cfg.sync_bn, config=cfg,
                                  log_file=run_dir / "train.log",
                                  class_names=data.class_names, val_loader=data.val_loader)
    if state is not None:
        trainer.load_state_dict(state)
        trainer.log(f"resuming {run_dir} at epoch {trainer.start_epoch + 1}/{cfg.epochs}")
    else:
        source = "random initialization" if cfg.pretrained == "none" else f"{cfg.pretrained} backbone weights"
        trainer.log(f"training {cfg.model} ({source}) on {cfg.data} ({len(data.train_set)} train images, "
                    f"{data.num_val} val images, {len(data.class_names)} classes, crop {cfg.crop[0]}x{cfg.crop[1]}) "
                    f"on {trainer.device}" + (f" x {trainer.world_size} processes" if trainer.world_size > 1 else "")
                    + f"; results in {run_dir}")
    trainer.fit()
    if is_main_process() and trainer.metrics.get("confusion") is not None:
        from pixbox.metrics.segmentation import save_segmentation_confusion

        save_segmentation_confusion(trainer.metrics["confusion"], data.class_names, run_dir / "confusion_matrix.png")
        save_metrics_json(trainer.metrics, run_dir / "val_metrics.json")
    for line in finish_lines("segment", trainer, run_dir, cfg.monitor, data):
        trainer.log(line)
    return run_dir


# ----------------------------------------------------------------------------------------------
# Inference


class SegmenterPredictor:
    """A trained FCN ready for inference on images of any size.

    Args:
        model (nn.Module): takes float images ``[B, 3, H, W]`` in [0, 1] and returns logits
            ``[B, C, H, W]`` (a :class:`pixbox.models.fcn.FCN`).
        class_names (sequence of str): background first.
        device (str or torch.device): where the model runs.
        model_name (str, optional): the :data:`~pixbox.models.fcn.SEGMENTATION_MODELS` name,
            needed by :meth:`save`.
    """

    def __init__(self, model: nn.Module, class_names: Sequence[str], *, device: str | torch.device = "cpu",
                 model_name: str | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        num = getattr(model, "num_classes", len(class_names))
        if len(class_names) != num:
            raise ValueError(f"class_names must have one name per model class ({num}), got {len(class_names)}")
        self.device = select_device(device)
        # channels-last: the same float32 results, about 1.4x faster convolutions on CPU
        self.model = model.to(self.device, memory_format=torch.channels_last).eval()
        self.class_names = [str(c) for c in class_names]
        self.model_name = model_name
        self.path: str | None = None

    def __repr__(self) -> str:
        return f"SegmenterPredictor({self.model_name or type(self.model).__name__}, {len(self.class_names)} classes)"

    @torch.inference_mode()
    def predict(self, images) -> list[dict[str, Any]]:
        """The label map of one image or several (any sizes; one forward pass per image).

        Args:
            images: a path, PIL image, numpy array ``[H, W, 3]``, Tensor ``[3, H, W]`` (``uint8``
                or float in [0, 1]) or ``[B, 3, H, W]``, or a list of them.

        Returns:
            list[dict]: per image ``mask`` (Tensor[H, W] int64 class indices, CPU), ``scores``
            (Tensor[H, W], the softmax probability of the chosen class), ``size`` and ``path``.
        """
        from pixbox.data.transforms import functional as TF
        from pixbox.engine.predict import _as_images

        out = []
        for image, path in _as_images(images):
            x = TF.to_dtype(image, torch.float32) if image.dtype == torch.uint8 else image.float()
            probs = self.model(x[None].to(self.device)).float().softmax(1)[0]
            scores, mask = probs.max(0)
            out.append({"mask": mask.cpu(), "scores": scores.cpu(), "size": tuple(mask.shape), "path": path})
        return out

    __call__ = predict

    def save(self, path) -> Path:
        """Writes a model-only file that :func:`pixbox.load` reads."""
        if self.model_name is None:
            raise ValueError("this SegmenterPredictor has no model_name; pass model_name= when creating it")
        return save_checkpoint({"task": "segment", "model": self.model.state_dict(), "model_name": self.model_name,
                                "num_classes": len(self.class_names), "class_names": list(self.class_names)}, path)


def load_segmenter(path, *, device: str | torch.device = "auto", state: dict | None = None) -> SegmenterPredictor:
    """Loads a trained FCN (``best.pt``, ``last.pt`` or a :meth:`SegmenterPredictor.save` file).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a pixbox segmentation checkpoint.
    """
    from pixbox.models.fcn import SEGMENTATION_MODELS

    if state is None:
        state = load_checkpoint(path, map_location="cpu")
    missing = [k for k in MODEL_KEYS if k not in state]
    if missing:
        raise ValueError(f"{path}: not a pixbox segmentation checkpoint (it lacks {missing}); expected best.pt or "
                         f"last.pt of a `pixbox segment train` run")
    if state["model_name"] not in SEGMENTATION_MODELS:
        raise ValueError(f"{path}: unknown model {state['model_name']!r}; this pixbox knows {list(SEGMENTATION_MODELS)}")
    model = SEGMENTATION_MODELS[state["model_name"]](int(state["num_classes"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit model {state['model_name']!r}: {e}") from None
    predictor = SegmenterPredictor(model, list(state["class_names"]), device=device, model_name=state["model_name"])
    predictor.path = str(path)
    return predictor


def _as_predictor(weights, *, device) -> SegmenterPredictor:
    if isinstance(weights, SegmenterPredictor):
        return weights
    if isinstance(weights, (str, os.PathLike)):
        return load_segmenter(weights, device=device)
    raise TypeError(f"weights must be a checkpoint path or a SegmenterPredictor, got {type(weights).__name__}")


def evaluate_segmenter(weights, data, *, split: str = "val", batch: int = 1, device: str = "auto",
                       workers: int = 0, limit: int | None = None) -> dict[str, Any]:
    """Pixel accuracy, mean class accuracy, per-class IoU and mIoU on one split, on whole images.

    Args:
        weights (str, PathLike or SegmenterPredictor): a checkpoint or a loaded predictor.
        data (str or PathLike): the VOC-format dataset folder.
        split (str): the split to evaluate.
        batch (int): images per forward pass (images of different sizes are padded to the
            largest, with ignored mask pixels), >= 1.
        device (str): ``"auto"``, ``"cpu"``, ``"cuda:0"``, ...
        workers (int): data loading processes.
        limit (int, optional): a fixed random subset of this many images.

    Returns:
        dict: :meth:`pixbox.metrics.segmentation.SegmentationEvaluator.compute`'s metrics.
    """
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be a dataset folder path, got {type(data).__name__}")
    if not Path(data).is_dir():
        raise FileNotFoundError(f"data folder {str(data)!r} does not exist")
    batch, workers = int(check_number(batch, "batch", low=1)), int(check_number(workers, "workers", low=0))
    if limit is not None:
        limit = int(check_number(limit, "limit", low=1))
    predictor = _as_predictor(weights, device=device)
    dataset = _dataset(data, split, segment_transforms("eval", None), limit)
    if dataset.class_names != predictor.class_names:
        raise ValueError(f"the model's classes {predictor.class_names} differ from those of split {split!r} "
                         f"of {data}: {dataset.class_names}")
    loader = _loader(dataset, batch, workers, collate_fn=collate_padded)
    return _evaluate(predictor.model, loader, dataset.class_names, predictor.device)


def predict_segmenter(weights, sources, *, out=None, device: str = "auto", alpha: float = 0.5
                      ) -> list[dict[str, Any]]:
    """Segments image files; with ``out``, writes ``<stem>.png`` (the label map as a VOC palette
    PNG, readable by :func:`pixbox.data.io.read_mask`) and ``<stem>_overlay.png`` (the classes
    painted over the image) per image, plus ``predictions.json`` (per image the pixel count of
    each class).

    Args:
        weights (str, PathLike or SegmenterPredictor): a checkpoint or a loaded predictor.
        sources: image files, folders or globs (see :func:`pixbox.engine.runs.find_images`).
        out (str or PathLike, optional): the output folder (created).
        device (str): ``"auto"``, ``"cpu"``, ...
        alpha (float): overlay opacity, in [0, 1].

    Returns:
        list[dict]: :meth:`SegmenterPredictor.predict`'s results.
    """
    from pixbox.data.io import read_image, write_mask
    from pixbox.viz import draw_masks, save_image

    check_number(alpha, "alpha", low=0, high=1)
    predictor = _as_predictor(weights, device=device)
    paths = find_images(sources)
    names = output_names(paths)
    out_dir = None if out is None else Path(out)
    results, records = [], []
    for path, name in zip(paths, names):
        image = read_image(path)
        result = predictor.predict(image)[0]
        result["path"] = str(path)
        results.append(result)
        mask = result["mask"]
        counts = torch.bincount(mask.flatten(), minlength=len(predictor.class_names))
        record = {"path": str(path), "width": int(mask.shape[1]), "height": int(mask.shape[0]),
                  "pixels": {predictor.class_names[c]: int(n) for c, n in enumerate(counts.tolist()) if n}}
        if out_dir is not None:
            stem = name[:-4]
            write_mask(mask.to(torch.uint8), out_dir / f"{stem}.png")
            save_image(draw_masks(image, mask, alpha=alpha), out_dir / f"{stem}_overlay.png")
            record.update(mask=f"{stem}.png", overlay=f"{stem}_overlay.png")
        records.append(record)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        doc = {"weights": predictor.path, "class_names": predictor.class_names, "images": records}
        with atomic_open(out_dir / "predictions.json", "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return results
