"""The classification task: fine-tune, evaluate and run image classifiers on a dataset folder.

- :func:`train_classifier` turns a :class:`~pixbox.engine.config.ClassifyConfig` into datasets,
  a backbone with (by default) offline pretrained weights and a new output layer
  (:func:`~pixbox.engine.finetune.finetune`), an optimizer whose head group learns
  ``head_lr_mult`` times faster, an LR schedule and callbacks, and trains with a
  :class:`ClassificationTrainer`. Everything goes to ``<project>/<name>/``:

  ========================  ======================================================================
  file                      content
  ========================  ======================================================================
  ``config.yaml``           the full config of the run
  ``last.pt``, ``best.pt``  checkpoints after the last epoch and at the best validation accuracy
  ``metrics.csv``           one row per epoch: lr, training loss and accuracy, validation metrics
  ``loss.png``              the training loss; ``accuracy.png``: training and validation accuracy
  ``confusion_matrix.png``  the last evaluation's confusion matrix (when there is a val split)
  ``val_metrics.json``      the last evaluation's metrics, per class
  ========================  ======================================================================

- :func:`evaluate_classifier` gives accuracy, top-5, per-class precision and recall and the
  confusion matrix of a checkpoint on a split;
- :func:`predict_classifier` and :class:`ClassifierPredictor` give the top-k classes of images.

Data: a folder per class (``root/<split>/<class>/*.jpg``) or ``root/<split>.csv`` files of
``path,label`` rows (:class:`pixbox.data.datasets.ClassificationDataset`). Training images get
the augmentation preset (by default the book's: random resized crop and horizontal flip);
evaluation and prediction resize the shorter side to ``imgsz / crop_pct`` and cut the centre
``imgsz x imgsz``. Both normalize with the backbone's own mean and std.

Example:
    >>> from pixbox.engine import ClassifyConfig, train_classifier
    >>> run = train_classifier(ClassifyConfig(data="data/objects", epochs=3))  # doctest: +SKIP
    >>> load(run / "best.pt").predict("cat.jpg")[0]["name"]  # doctest: +SKIP
    'cat'
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_choice, check_number
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
from pixbox.engine.config import CLASSIFY_FORMATS, ClassifyConfig
from pixbox.engine.distributed import (
    broadcast_object,
    get_world_size,
    init_distributed,
    is_main_process,
    local_device,
    shard_loader,
    shard_steps,
)
from pixbox.engine.finetune import finetune
from pixbox.engine.runs import (
    finish_lines,
    build_optimizer,
    build_scheduler,
    find_images,
    keep_random_subset,
    param_groups,
    save_metrics_json,
    start_run,
    steps_per_epoch,
    unique_dir,
)
from pixbox.engine.trainer import Trainer, epoch_seed, seed_everything, select_device

__all__ = [
    "ClassificationTrainer",
    "ClassifierPredictor",
    "RESUME_KEYS",
    "build_classifier",
    "classify_transforms",
    "evaluate_classifier",
    "load_classifier",
    "predict_classifier",
    "train_classifier",
]

#: Config keys a resumed run may change (everything else comes from its checkpoint).
RESUME_KEYS: tuple[str, ...] = ("epochs", "device", "workers", "patience", "eval_every", "amp")
#: The keys a classification checkpoint needs for :func:`load_classifier`.
MODEL_KEYS: tuple[str, ...] = ("model", "model_name", "num_classes", "class_names", "imgsz", "mean", "std")

_CSV_COLUMNS = ("epoch", "lr", "train_loss", "train_acc", "accuracy", "top5", "mean_recall", "img_s", "epoch_time")
_PLOTS = {
    "loss.png": ("Training loss", "loss", ["train_loss"]),
    "accuracy.png": ("Accuracy", "accuracy", ["train_acc", "accuracy", "mean_recall"]),
}


# ----------------------------------------------------------------------------------------------
# Data


def classify_transforms(preset: str, imgsz: int, mean: Sequence[float], std: Sequence[float], *,
                        crop_pct: float = 0.875, min_scale: float = 0.08):
    """The image pipeline of a classification preset: ``uint8 [3, H, W] -> float32 [3, imgsz, imgsz]``.

    Args:
        preset (str): ``"eval"`` (resize the shorter side to ``round(imgsz / crop_pct)``, cut
            the centre ``imgsz x imgsz``), ``"none"`` (the same, for training without
            augmentation), ``"d2l"`` (random resized crop of ``min_scale`` to all of the area,
            aspect ratio 3/4 to 4/3, then horizontal flip: D2L's fine-tuning recipe) or
            ``"color"`` (``"d2l"`` plus colour jitter of brightness, contrast and saturation 0.4).
        imgsz (int): output side.
        mean, std (sequence of 3 float): normalization of [0, 1] RGB (the backbone's own).
        crop_pct (float): see ``"eval"``.
        min_scale (float): smallest crop area fraction of the random resized crop.

    Returns:
        Compose: called as ``t(image)``.
    """
    from pixbox.data import transforms as T

    check_choice(preset, "preset", ("eval", "none", "d2l", "color"))
    if preset in ("eval", "none"):
        steps = [T.Resize(max(imgsz, int(round(imgsz / crop_pct)))), T.CenterCrop(imgsz)]
    else:
        steps = [T.RandomResizedCrop(imgsz, scale=(min_scale, 1.0)), T.RandomHorizontalFlip()]
        if preset == "color":
            steps.append(T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4))
    return T.Compose(steps + [T.ToDtype(torch.float32), T.Normalize(tuple(mean), tuple(std))])


def _resolve_format(root: Path, fmt: str, split: str | None) -> str:
    if fmt != "auto":
        return fmt
    if split is not None and (root / f"{split}.csv").is_file():
        return "csv"
    return "folder"


def _dataset(data, fmt: str, split: str | None, transforms, limit: int | None = None, *, seed: int = 0):
    """The split's :class:`~pixbox.data.datasets.ClassificationDataset` (``limit``: a fixed random
    subset of that many images, the same for every run with this seed)."""
    from pixbox.data.datasets import ClassificationDataset

    root = Path(data)
    fmt = _resolve_format(root, fmt, split)
    if fmt == "folder" and split is not None and not (root / split).is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        hint = difflib.get_close_matches(split, found, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise FileNotFoundError(f"split folder {str(root / split)!r} does not exist (folders in {root}: {found})"
                                f"{extra}. A classification dataset is <data>/<split>/<class>/<images>, or "
                                f"<data>/<split>.csv with path,label rows")
    ds = ClassificationDataset(root, split, fmt=fmt, transforms=transforms)
    where = root if split is None else root / split
    if len(ds) == 0:
        raise ValueError(f"{where} has no images: expected one sub-folder per class holding image files "
                         f"(.jpg, .png, ...), or a {split}.csv file of path,label rows")
    return keep_random_subset(ds, limit, seed)


def _loader(dataset, batch: int, workers: int, *, shuffle: bool = False, seed: int = 0, drop_last: bool = False):
    from pixbox.data.datasets import make_loader

    return make_loader(dataset, batch, shuffle=shuffle, num_workers=workers, seed=seed, drop_last=drop_last)


# ----------------------------------------------------------------------------------------------
# Model


def _backbone(name: str, num_classes: int = 1000) -> nn.Module:
    from pixbox.models.backbones import BACKBONES

    check_choice(name, "model", BACKBONES)
    return BACKBONES[name](num_classes)


def _normalization(name: str) -> tuple[list[float], list[float]]:
    """The input mean and std of backbone ``name`` (read from a weightless copy on the meta device)."""
    with torch.device("meta"):
        cfg = _backbone(name).pretrained_cfg
    return [float(v) for v in cfg["mean"]], [float(v) for v in cfg["std"]]


def build_classifier(cfg: ClassifyConfig, num_classes: int, *, load_weights: bool = True):
    """The model of a run and its optimizer parameter groups.

    With pretrained weights (``cfg.pretrained`` not ``"none"``): the backbone is built for
    ImageNet, loaded (:func:`pixbox.models.backbones.load_pretrained`) and given a new head by
    :func:`~pixbox.engine.finetune.finetune` (head at ``lr * head_lr_mult``, ``cfg.freeze``
    applied). From scratch: the backbone is built with ``num_classes`` outputs and every
    parameter learns at ``lr`` (as D2L's scratch baseline).

    Args:
        cfg (ClassifyConfig): the run's config.
        num_classes (int): the dataset's classes.
        load_weights (bool): False skips loading the pretrained file (a resumed run gets its
            weights from the checkpoint).

    Returns:
        tuple: ``(model, groups, report)``; ``report`` is the
        :class:`~pixbox.models.backbones.LoadReport` of the pretrained weights, or None.
    """
    if cfg.pretrained == "none":
        if cfg.freeze != "none":
            raise ValueError(f"freeze={cfg.freeze!r} keeps pretrained layers or statistics fixed, but pretrained is "
                             "'none' (training from scratch); use freeze='none' or pretrained weights")
        model = _backbone(cfg.model, num_classes)
        groups = [dict(g, name="all") for g in param_groups(model, cfg.weight_decay, lr=cfg.lr)]
        return model, groups, None
    from pixbox.models.backbones import load_pretrained

    model = _backbone(cfg.model)
    report = load_pretrained(model, cfg.pretrained) if load_weights else None
    groups = finetune(model, num_classes, lr=cfg.lr, head_lr_mult=cfg.head_lr_mult, freeze=cfg.freeze,
                      weight_decay=cfg.weight_decay)
    return model, groups, report


# ----------------------------------------------------------------------------------------------
# Training


@torch.inference_mode()
def _evaluate(model: nn.Module, loader, class_names: Sequence[str], device: torch.device) -> dict[str, Any]:
    from pixbox.metrics.classification import ClassificationEvaluator

    evaluator = ClassificationEvaluator(list(class_names))
    model.eval()
    for images, labels in loader:
        logits = model(images.to(device)).float()
        evaluator.update(logits.cpu(), labels)
    return evaluator.compute()


class ClassificationTrainer(Trainer):
    """The :class:`~pixbox.engine.trainer.Trainer` of image classifiers (cross-entropy loss).

    Batches are ``(images [B, 3, S, S] float, labels [B] int64)``. Takes the arguments of
    :class:`~pixbox.engine.trainer.Trainer` plus:

    Args:
        config (ClassifyConfig): the run's config (saved in checkpoints).
        class_names (sequence of str): the dataset's classes.
        val_loader (iterable, optional): validation batches like the training ones; None
            disables :meth:`evaluate`.
        mean, std (sequence of float): the input normalization, saved in checkpoints for
            :func:`load_classifier`.
    """

    def __init__(self, model: nn.Module, optimizer, train_data, *, config: ClassifyConfig,
                 class_names: Sequence[str], val_loader=None, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225), **kwargs):
        super().__init__(model, optimizer, train_data, **kwargs)
        self.config = config
        self.class_names = list(class_names)
        self.val_loader = val_loader
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]

    def compute_loss(self, batch) -> dict[str, Tensor]:
        images, labels = self.to_device(batch)
        logits = self.forward(images).float()
        loss = F.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        acc = (logits.detach().argmax(1) == labels).float().mean()
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

        return {"task": "classify", "config": self.config.to_dict(), "class_names": list(self.class_names),
                "model_name": self.config.model, "num_classes": len(self.class_names), "imgsz": self.config.imgsz,
                "mean": self.mean, "std": self.std, "crop_pct": self.config.crop_pct,
                "pixbox_version": pixbox.__version__}


class _TrainingData:
    """The datasets and loaders of a run (read and checked before the run folder is made)."""

    def __init__(self, cfg: ClassifyConfig, mean, std):
        train_tf = classify_transforms(cfg.augment_preset, cfg.imgsz, mean, std, crop_pct=cfg.crop_pct)
        eval_tf = classify_transforms("eval", cfg.imgsz, mean, std, crop_pct=cfg.crop_pct)
        self.train_set = _dataset(cfg.data, cfg.format, cfg.train_split, train_tf, cfg.limit_train, seed=cfg.seed)
        self.class_names = list(self.train_set.class_names)
        if len(self.class_names) < 2:
            raise ValueError(f"the {cfg.train_split!r} split of {cfg.data} has {len(self.class_names)} class "
                             f"({self.class_names}); a classifier needs at least 2")
        self.val_loader = None
        if cfg.val_split is not None:
            val_set = _dataset(cfg.data, cfg.format, cfg.val_split, eval_tf, cfg.limit_val, seed=cfg.seed)
            if val_set.class_names != self.class_names:
                raise ValueError(f"the {cfg.val_split!r} split has the classes {val_set.class_names} but the "
                                 f"{cfg.train_split!r} split has {self.class_names}")
            self.val_loader = _loader(val_set, cfg.batch, cfg.workers)
        self.num_val = 0 if self.val_loader is None else len(self.val_loader.dataset)
        if get_world_size() > 1:  # torchrun: each rank loads its shard of every global batch
            self.steps_per_epoch, drop_last = shard_steps(len(self.train_set), cfg.batch)

            def shards(epoch: int):
                return shard_loader(self.train_set, cfg.batch, seed=epoch_seed(cfg.seed, epoch),
                                    num_workers=cfg.workers, drop_last=drop_last)

            self.batches = shards
            return
        self.steps_per_epoch, drop_last = steps_per_epoch(len(self.train_set), cfg.batch)

        def batches(epoch: int):
            return _loader(self.train_set, cfg.batch, cfg.workers, shuffle=True, seed=epoch_seed(cfg.seed, epoch),
                           drop_last=drop_last)

        self.batches = batches


def _write_evaluation(metrics: dict[str, Any], class_names: Sequence[str], folder: Path) -> None:
    from pixbox.metrics.classification import save_confusion_matrix

    save_confusion_matrix(metrics["confusion"], class_names, folder / "confusion_matrix.png")
    save_metrics_json(metrics, folder / "val_metrics.json")


def train_classifier(config: ClassifyConfig | dict | str | os.PathLike | None = None, *, resume=None,
                     progress: bool = True, verbose: bool = True, callbacks: Sequence = ()) -> Path:
    """Fine-tunes (or trains from scratch) an image classifier as ``config`` says; returns its run folder.

    A new run goes to ``<project>/<name>`` (or ``<name>2``, ... when that exists). With
    ``resume``, the run continues from a checkpoint with the config saved in it.

    Args:
        config (ClassifyConfig, dict, YAML path or None): the run's config. When resuming it may
            be None, or change only :data:`RESUME_KEYS`.
        resume (None, True, str or PathLike): None/False starts a new run. True resumes
            ``<project>/<name>/last.pt``; a run folder, a checkpoint file or a run name resumes
            that one.
        progress (bool): show tqdm progress bars (only when stderr is a terminal).
        verbose (bool): print what the run does.
        callbacks (sequence): extra callbacks, run after the standard ones.

    Returns:
        Path: the run folder (see the module docstring for its files).

    Raises:
        ValueError, TypeError: a bad config value, or a dataset with fewer than 2 classes or no
            images.
        FileNotFoundError: the data folder, a split, the weights file or the checkpoint to
            resume does not exist.
    """
    cfg, state, run_dir = start_run(config, resume, ClassifyConfig, RESUME_KEYS)
    init_distributed(cfg.device)
    if state is None and cfg.pretrained not in ("default", "none"):
        if not Path(cfg.pretrained).is_file():
            raise FileNotFoundError(f"pretrained weights file {cfg.pretrained!r} does not exist (use 'default' for "
                                    f"the model's offline weights, or 'none' to train from scratch)")
        cfg = cfg.replace(pretrained=os.path.abspath(cfg.pretrained))
    mean, std = _normalization(cfg.model)
    data = _TrainingData(cfg, mean, std)
    if state is not None and list(state.get("class_names", [])) != data.class_names:
        raise ValueError(f"{run_dir}: the checkpoint's classes {state.get('class_names')} differ from the "
                         f"dataset's {data.class_names}")
    seed_everything(cfg.seed)
    model, groups, report = build_classifier(cfg, len(data.class_names), load_weights=state is None)
    if run_dir is None:  # made by rank 0 under torchrun
        run_dir = broadcast_object(unique_dir(cfg.project, cfg.name) if is_main_process() else None)
        cfg = cfg.replace(name=run_dir.name)
    if is_main_process():
        cfg.to_yaml(run_dir / "config.yaml")
    optimizer = build_optimizer(groups, cfg)
    scheduler = build_scheduler(optimizer, cfg, data.steps_per_epoch)
    standard = [ProgressBar(progress)]
    if data.val_loader is not None:
        standard.append(EvalCallback(cfg.eval_every, log=False))
    standard.append(EpochLogger(("accuracy", "top5", "mean_recall")))
    if cfg.patience > 0:
        standard.append(EarlyStopping(cfg.patience, cfg.monitor))
    standard += [CSVLogger(run_dir / "metrics.csv", _CSV_COLUMNS), CheckpointCallback(run_dir, cfg.monitor),
                 PlotCallback(run_dir, _PLOTS)]
    trainer = ClassificationTrainer(model, optimizer, data.batches, epochs=cfg.epochs, scheduler=scheduler,
                                    device=local_device(cfg.device), callbacks=standard + list(callbacks),
                                    amp=cfg.amp, channels_last=cfg.channels_last, grad_clip=cfg.grad_clip,
                                    seed=cfg.seed, verbose=verbose, sync_bn=cfg.sync_bn, config=cfg,
                                    log_file=run_dir / "train.log",
                                    class_names=data.class_names, val_loader=data.val_loader, mean=mean, std=std)
    if state is not None:
        trainer.load_state_dict(state)
        trainer.log(f"resuming {run_dir} at epoch {trainer.start_epoch + 1}/{cfg.epochs}")
    else:
        if report is not None:
            trainer.log(str(report))
        source = "from scratch" if cfg.pretrained == "none" else f"fine-tuning from {cfg.pretrained} weights"
        trainer.log(f"training {cfg.model} ({source}) on {cfg.data} ({len(data.train_set)} train images, "
                    f"{data.num_val} val images, {len(data.class_names)} classes) on {trainer.device}"
                    + (f" x {trainer.world_size} processes" if trainer.world_size > 1 else "") + "; "
                    f"results in {run_dir}")
    trainer.fit()
    if is_main_process() and trainer.metrics.get("confusion") is not None:
        _write_evaluation(trainer.metrics, data.class_names, run_dir)
    for line in finish_lines("classify", trainer, run_dir, cfg.monitor, data):
        trainer.log(line)
    return run_dir


# ----------------------------------------------------------------------------------------------
# Inference


class ClassifierPredictor:
    """A classifier ready for inference: the model in eval mode, its classes and preprocessing.

    Args:
        model (nn.Module): returns logits ``[B, num_classes]``.
        class_names (sequence of str): one per output.
        imgsz (int): the input side, >= 16.
        mean, std (sequence of 3 float): input normalization of [0, 1] RGB.
        crop_pct (float): images are resized to ``imgsz / crop_pct`` (shorter side) and
            centre-cropped to ``imgsz``, in (0, 1].
        device (str or torch.device): where the model runs.
        batch (int): images per forward pass.
        model_name (str, optional): the :data:`~pixbox.models.backbones.BACKBONES` name, needed by
            :meth:`save`.
    """

    def __init__(self, model: nn.Module, class_names: Sequence[str], imgsz: int = 224, *,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 crop_pct: float = 0.875, device: str | torch.device = "cpu", batch: int = 32,
                 model_name: str | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if isinstance(class_names, str) or not isinstance(class_names, Sequence):
            raise TypeError(f"class_names must be a list of str, got {type(class_names).__name__}")
        num = getattr(model, "num_classes", len(class_names))
        if len(class_names) != num:
            raise ValueError(f"class_names must have one name per model output ({num}), got {len(class_names)}")
        if isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < 16:
            raise ValueError(f"imgsz must be an int >= 16, got {imgsz!r}")
        self.crop_pct = float(check_number(crop_pct, "crop_pct", low=0, high=1, low_open=True))
        self.device = select_device(device)
        self.model = model.to(self.device).eval()
        self.class_names = [str(c) for c in class_names]
        self.imgsz = imgsz
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        self.batch = int(check_number(batch, "batch", low=1))
        self.model_name = model_name
        self.path: str | None = None
        self._transform = classify_transforms("eval", imgsz, self.mean, self.std, crop_pct=self.crop_pct)

    def __repr__(self) -> str:
        return (f"ClassifierPredictor({self.model_name or type(self.model).__name__}, {len(self.class_names)} "
                f"classes, imgsz={self.imgsz}, device={self.device})")

    def prepare(self, image: Tensor) -> Tensor:
        """One image (``uint8`` or float in [0, 1], ``[3, H, W]``) as the model's normalized input."""
        if image.is_floating_point():
            image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
        return self._transform(image)

    @torch.inference_mode()
    def predict(self, images, *, topk: int = 5) -> list[dict[str, Any]]:
        """The most likely classes of one image or several.

        Args:
            images: a path, PIL image, numpy array ``[H, W, 3]``, Tensor ``[3, H, W]``
                (``uint8`` or float in [0, 1]) or ``[B, 3, H, W]``, or a list of them.
            topk (int): how many classes to list per image (at most the class count), >= 1.

        Returns:
            list[dict]: one per image: ``label`` (int), ``name``, ``score`` (softmax probability
            of the top class), ``topk`` (list of ``{"label", "name", "score"}``, most likely
            first) and ``path`` (the file, or None).
        """
        from pixbox.engine.predict import _as_images

        k = min(int(check_number(topk, "topk", low=1)), len(self.class_names))
        pairs = _as_images(images)
        out = []
        for start in range(0, len(pairs), self.batch):
            chunk = pairs[start:start + self.batch]
            batch = torch.stack([self.prepare(img) for img, _ in chunk]).to(self.device)
            probs = self.model(batch).float().softmax(1).cpu()
            scores, labels = probs.topk(k, dim=1)
            for (_, path), s, c in zip(chunk, scores.tolist(), labels.tolist()):
                top = [{"label": int(ci), "name": self.class_names[ci], "score": float(si)} for si, ci in zip(s, c)]
                out.append({"label": top[0]["label"], "name": top[0]["name"], "score": top[0]["score"], "topk": top,
                            "path": path})
        return out

    __call__ = predict

    def save(self, path) -> Path:
        """Writes a model-only file (no optimizer or history) that :func:`pixbox.load` reads."""
        if self.model_name is None:
            raise ValueError("this ClassifierPredictor has no model_name, so load() could not rebuild its model; "
                             "pass model_name= (a pixbox.models.backbones.BACKBONES key) when creating it")
        return save_checkpoint({"task": "classify", "model": self.model.state_dict(), "model_name": self.model_name,
                                "num_classes": len(self.class_names), "class_names": list(self.class_names),
                                "imgsz": self.imgsz, "mean": self.mean, "std": self.std,
                                "crop_pct": self.crop_pct}, path)


def load_classifier(path, *, device: str | torch.device = "auto", batch: int = 32, state: dict | None = None
                    ) -> ClassifierPredictor:
    """Loads a trained classifier (``best.pt``, ``last.pt`` or a :meth:`ClassifierPredictor.save` file).

    Args:
        path (str or PathLike): the checkpoint.
        device (str or torch.device): ``"auto"``, ``"cpu"``, ``"cuda:0"``, ...
        batch (int): images per forward pass.
        state (dict, optional): the already loaded checkpoint (skips reading ``path``).

    Returns:
        ClassifierPredictor

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a pixbox classification checkpoint.
    """
    from pixbox.models.backbones import BACKBONES

    if state is None:
        state = load_checkpoint(path, map_location="cpu")
    missing = [k for k in MODEL_KEYS if k not in state]
    if missing:
        raise ValueError(f"{path}: not a pixbox classification checkpoint (it lacks {missing}); expected best.pt "
                         f"or last.pt of a `pixbox classify train` run")
    if state["model_name"] not in BACKBONES:
        raise ValueError(f"{path}: unknown model {state['model_name']!r}; this pixbox knows {list(BACKBONES)}")
    model = BACKBONES[state["model_name"]](int(state["num_classes"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit model {state['model_name']!r}: {e}") from None
    predictor = ClassifierPredictor(model, list(state["class_names"]), int(state["imgsz"]), mean=state["mean"],
                                    std=state["std"], crop_pct=float(state.get("crop_pct", 0.875)), device=device,
                                    batch=batch, model_name=state["model_name"])
    predictor.path = str(path)
    return predictor


def _as_predictor(weights, *, device, batch: int = 32) -> ClassifierPredictor:
    if isinstance(weights, ClassifierPredictor):
        return weights
    if isinstance(weights, (str, os.PathLike)):
        return load_classifier(weights, device=device, batch=batch)
    raise TypeError(f"weights must be a checkpoint path or a ClassifierPredictor, got {type(weights).__name__}")


def evaluate_classifier(weights, data, *, fmt: str = "auto", split: str = "val", batch: int = 32,
                        device: str = "auto", workers: int = 0, limit: int | None = None) -> dict[str, Any]:
    """Accuracy, top-5, per-class precision/recall/F1 and the confusion matrix on one split.

    Args:
        weights (str, PathLike or ClassifierPredictor): a checkpoint (``best.pt``) or a loaded
            predictor (its preprocessing is used).
        data (str or PathLike): the dataset folder.
        fmt (str): ``"auto"``, ``"folder"`` or ``"csv"``.
        split (str): the split to evaluate.
        batch (int): images per forward pass, >= 1.
        device (str): ``"auto"``, ``"cpu"``, ``"cuda:0"``, ...
        workers (int): data loading processes, >= 0.
        limit (int, optional): evaluate a fixed random subset of this many images.

    Returns:
        dict: :meth:`pixbox.metrics.classification.ClassificationEvaluator.compute`'s metrics.

    Raises:
        ValueError: the split's classes differ from the model's.
    """
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be a dataset folder path, got {type(data).__name__}")
    if not Path(data).is_dir():
        raise FileNotFoundError(f"data folder {str(data)!r} does not exist")
    check_choice(fmt, "fmt", CLASSIFY_FORMATS)
    batch, workers = int(check_number(batch, "batch", low=1)), int(check_number(workers, "workers", low=0))
    if limit is not None:
        limit = int(check_number(limit, "limit", low=1))
    predictor = _as_predictor(weights, device=device, batch=batch)
    dataset = _dataset(data, fmt, split, predictor.prepare, limit)
    if dataset.class_names != predictor.class_names:
        raise ValueError(f"the model's classes {predictor.class_names} differ from those of split {split!r} "
                         f"of {data}: {dataset.class_names}")
    return _evaluate(predictor.model, _loader(dataset, batch, workers), dataset.class_names, predictor.device)


def predict_classifier(weights, sources, *, topk: int = 5, out=None, device: str = "auto",
                       batch: int = 32) -> list[dict[str, Any]]:
    """The top-k classes of image files, optionally written to ``<out>/predictions.json``.

    Args:
        weights (str, PathLike or ClassifierPredictor): a checkpoint or a loaded predictor.
        sources: image files, folders or glob patterns (see
            :func:`pixbox.engine.runs.find_images`).
        topk (int): classes listed per image, >= 1.
        out (str or PathLike, optional): folder for ``predictions.json`` (``{"weights",
            "class_names", "images": [{"path", "label", "name", "score", "topk"}]}``).
        device (str): ``"auto"``, ``"cpu"``, ...
        batch (int): images per forward pass.

    Returns:
        list[dict]: :meth:`ClassifierPredictor.predict`'s results, one per image.
    """
    from pixbox.data.io import read_image

    predictor = _as_predictor(weights, device=device, batch=batch)
    paths = find_images(sources)
    results = []
    for start in range(0, len(paths), predictor.batch):
        chunk = paths[start:start + predictor.batch]
        for path, result in zip(chunk, predictor.predict([read_image(p) for p in chunk], topk=topk)):
            result["path"] = str(path)
            results.append(result)
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        doc = {"weights": predictor.path, "class_names": predictor.class_names,
               "images": [{k: r[k] for k in ("path", "label", "name", "score", "topk")} for r in results]}
        with atomic_open(out_dir / "predictions.json", "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return results
