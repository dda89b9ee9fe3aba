"""What every task's training run shares: run folders, resuming, optimizer and schedule, image
sources and metric files.

A task module (:mod:`pixbox.engine.detection`, :mod:`pixbox.engine.classification`) builds its
data, model and trainer; this module holds the steps around them that do not depend on the task:

- :func:`start_run` validates a new run's config, or finds the checkpoint of a run to resume and
  applies the few changes a resume may make (:func:`resume_config`);
- :func:`unique_dir` gives a new run its own folder (``train``, ``train2``, ...);
- :func:`build_optimizer` and :func:`build_scheduler` turn the config's optimizer and LR
  schedule keys into torch objects (per-group learning rates, such as a fine-tuned head's, are
  kept: the schedule multiplies each group's own rate);
- :func:`find_images` expands files, folders and globs; :func:`save_metrics_json` writes
  metrics with NaN as null.
"""

from __future__ import annotations

import glob
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from pixbox._files import atomic_open
from pixbox.engine.checkpoint import load_checkpoint
from pixbox.engine.config import RunConfig, read_yaml_values
from pixbox.engine.trainer import lr_schedule

__all__ = [
    "finish_lines",
    "IMAGE_SUFFIXES",
    "build_optimizer",
    "build_scheduler",
    "find_images",
    "output_names",
    "keep_random_subset",
    "param_groups",
    "resume_config",
    "save_metrics_json",
    "start_run",
    "steps_per_epoch",
    "unique_dir",
]

#: The file suffixes :func:`find_images` takes from folders.
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def unique_dir(parent, name: str) -> Path:
    """``parent/name``, or ``parent/name2``, ``name3``, ... when it exists; created, never reused.

    Args:
        parent (str or PathLike): the folder holding the runs.
        name (str): the wanted name.

    Returns:
        Path: a new, empty folder.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        path = parent / (name if k == 1 else f"{name}{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            k += 1


# ----------------------------------------------------------------------------------------------
# Optimizer and schedule


def param_groups(params, weight_decay: float, **options) -> list[dict]:
    """Splits trainable parameters into a decayed group (weights) and an undecayed one (biases and
    normalization scales, the 1-D tensors). Frozen parameters (``requires_grad=False``) are left out.

    Args:
        params (nn.Module or iterable of Tensor): the parameters.
        weight_decay (float): of the first group.
        **options: added to both groups (e.g. ``lr=0.1``).

    Returns:
        list[dict]: two optimizer parameter groups (either may be empty).
    """
    if isinstance(params, nn.Module):
        params = params.parameters()
    decay, no_decay = [], []
    for p in params:
        if p.requires_grad:
            (decay if p.dim() > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay, **options},
            {"params": no_decay, "weight_decay": 0.0, **options}]


def build_optimizer(groups: nn.Module | list[dict], cfg: RunConfig) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` (``"sgd"`` with momentum, or ``"adamw"``) at ``cfg.lr``.

    Args:
        groups (nn.Module or list of dict): a model (its trainable parameters, split by
            :func:`param_groups` with ``cfg.weight_decay``) or ready parameter groups; a group
            with its own ``"lr"`` keeps it.
        cfg (RunConfig): reads ``optimizer``, ``lr``, ``momentum``, ``weight_decay``.

    Returns:
        torch.optim.Optimizer
    """
    if isinstance(groups, nn.Module):
        groups = param_groups(groups, cfg.weight_decay)
    groups = [g for g in groups if len(g["params"]) > 0]
    if not groups:
        raise ValueError("the model has no trainable parameters (is everything frozen?)")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: RunConfig, steps: int):
    """The per-iteration LR schedule of ``cfg`` (warm-up, then cosine or step), as a ``LambdaLR``.

    Args:
        optimizer (torch.optim.Optimizer): every group's rate is multiplied by the same factor.
        cfg (RunConfig): reads ``epochs``, ``warmup_epochs``, ``scheduler``, ``final_lr_ratio``,
            ``step_epochs``, ``gamma``.
        steps (int): optimizer steps per epoch.
    """
    step_epochs = cfg.step_epochs if cfg.step_epochs is not None else max(1, cfg.epochs // 3)
    factor = lr_schedule(total_steps=cfg.epochs * steps, warmup_steps=int(round(cfg.warmup_epochs * steps)),
                         kind=cfg.scheduler, final_ratio=cfg.final_lr_ratio, step_size=step_epochs * steps,
                         gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def steps_per_epoch(num_images: int, batch: int) -> tuple[int, bool]:
    """``(steps, drop_last)`` of an epoch: the last batch is dropped only when it would hold a
    single image (BatchNorm cannot train on one)."""
    drop_last = num_images > batch and num_images % batch == 1
    return (num_images // batch if drop_last else math.ceil(num_images / batch)), drop_last


def keep_random_subset(dataset, limit: int | None, seed: int = 0):
    """Keeps a fixed random subset of ``limit`` samples of a dataset with ``annotations.samples``
    (in their original order; the same subset for the same seed), in place.

    Returns:
        the dataset.
    """
    if limit is not None and limit < len(dataset):
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
        samples = dataset.annotations.samples
        dataset.annotations.samples = [samples[i] for i in sorted(order[:limit])]
    return dataset


# ----------------------------------------------------------------------------------------------
# Starting and resuming runs


def as_config(config, config_class: type):
    """``config`` (a config object, a dict or a YAML path) as a ``config_class``."""
    if isinstance(config, config_class):
        return config
    if isinstance(config, dict):
        return config_class.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return config_class.from_yaml(config)
    raise TypeError(f"config must be a {config_class.__name__}, a dict or a YAML file path, "
                    f"got {type(config).__name__}")


def find_checkpoint(resume, project) -> Path:
    """The checkpoint ``resume`` names: a file, a run folder (its ``last.pt``) or a run name."""
    path = Path(resume)
    if path.is_file():
        return path
    if path.is_dir():
        path = path / "last.pt"
    elif not path.suffix and path.parent == Path("."):
        path = Path(project) / str(resume) / "last.pt"  # a run name
    if not path.is_file():
        raise FileNotFoundError(f"cannot resume: checkpoint {str(path)!r} does not exist")
    return path


def resume_config(saved: RunConfig, config, resume_keys: Sequence[str]) -> RunConfig:
    """The saved config, with the changes ``config`` asks for (only ``resume_keys`` may change).

    Args:
        saved (RunConfig): the checkpoint's config.
        config (None, dict, RunConfig or YAML path): the caller's config; keys equal to the saved
            values, and ``name``/``project`` (which locate the run), are not changes.
        resume_keys (sequence of str): the keys a resume may change, e.g. ``epochs``.

    Raises:
        ValueError: another key changes.
    """
    cls = type(saved)
    if config is None:
        return saved
    if isinstance(config, (str, os.PathLike)):
        config = read_yaml_values(config, cls)
    if isinstance(config, dict):
        changes = cls.from_dict(config)  # validates the keys and values
        changes = {k.replace("-", "_"): getattr(changes, k.replace("-", "_")) for k in config
                   if k not in ("name", "project")}
    elif isinstance(config, cls):
        ignore = ("name", "project", "data")
        changes = {k: v for k, v in config.to_dict().items() if k not in ignore and v != getattr(saved, k)}
    else:
        raise TypeError(f"config must be None, a dict, a {cls.__name__} or a YAML path when resuming, "
                        f"got {type(config).__name__}")
    changes = {k: v for k, v in changes.items() if v != getattr(saved, k)}
    if "data" in changes and changes["data"] is not None and os.path.abspath(changes["data"]) == saved.data:
        del changes["data"]
    bad = sorted(k for k in changes if k not in resume_keys)
    if bad:
        raise ValueError(f"a resumed run keeps the config of its checkpoint; only {list(resume_keys)} may change, "
                         f"got changes to {bad}")
    return saved.replace(**changes)


def start_run(config, resume, config_class: type, resume_keys: Sequence[str]):
    """The run's config, and for a resumed run its checkpoint state and folder.

    Args:
        config: a ``config_class``, a dict or a YAML path (None only when resuming).
        resume (None, bool, str or PathLike): see :func:`pixbox.engine.detection.train_detector`.
        config_class (type): :class:`~pixbox.engine.config.DetectConfig`, ...
        resume_keys (sequence of str): what a resume may change.

    Returns:
        tuple: ``(config, state, run_dir)``; ``state`` and ``run_dir`` are None for a new run
        (whose ``data`` is made absolute).
    """
    if resume is None or resume is False:
        if config is None:
            raise ValueError("config is required for a new run (at least data=...)")
        cfg = as_config(config, config_class)
        if cfg.data is None:
            raise ValueError("data must be given: the dataset folder to train on")
        if not Path(cfg.data).is_dir():
            raise FileNotFoundError(f"data folder {cfg.data!r} does not exist")
        return cfg.replace(data=os.path.abspath(cfg.data)), None, None
    where = config if isinstance(config, config_class) else config_class()
    if isinstance(config, dict):  # project and name only locate the run to resume
        where = where.replace(**{k: v for k, v in config.items() if k in ("project", "name")})
    if resume is True:
        resume = Path(where.project) / where.name
    ckpt_path = find_checkpoint(resume, where.project)
    state = load_checkpoint(ckpt_path)
    if state.get("slim"):
        raise ValueError(f"{ckpt_path}: cannot resume from it: best.pt holds only the weights (no optimizer, "
                         f"scheduler or RNG state); resume from last.pt ({ckpt_path.parent / 'last.pt'})")
    if "config" not in state or "optimizer" not in state:
        raise ValueError(f"{ckpt_path}: cannot resume from it: not a training checkpoint (no config or optimizer)")
    cfg = resume_config(config_class.from_dict(state["config"]), config, resume_keys)
    if int(state["epoch"]) >= cfg.epochs:
        raise ValueError(f"{ckpt_path}: the run already finished its {cfg.epochs} epochs; to train longer, "
                         f"resume with more epochs (e.g. --epochs {cfg.epochs + 10})")
    return cfg, state, ckpt_path.parent


# ----------------------------------------------------------------------------------------------
# Images and metric files


def find_images(sources: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files named by ``sources``: files, folders (their images, sorted) or glob patterns.

    Args:
        sources (sequence of str or PathLike): each a file, a folder (its files with a suffix
            of :data:`IMAGE_SUFFIXES`, not recursive) or a glob pattern (``*``, ``?``, ``[``;
            ``**`` recurses).

    Returns:
        list[Path]: in the order given, without duplicates.

    Raises:
        FileNotFoundError: a source matches no image.
    """
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    found: list[Path] = []
    for source in sources:
        text = os.fspath(source)
        path = Path(text)
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                raise FileNotFoundError(f"folder {text!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True)
                             if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                raise FileNotFoundError(f"pattern {text!r} matches no image file")
        else:
            raise FileNotFoundError(f"source {text!r} does not exist")
        for p in matches:
            if p not in found:
                found.append(p)
    return found


def output_names(paths: Sequence[Path]) -> list[str]:
    """``<stem>.png`` per image, with ``_2``, ``_3`` ... for repeated stems."""
    seen: dict[str, int] = {}
    names = []
    for p in paths:
        seen[p.stem] = seen.get(p.stem, 0) + 1
        names.append(f"{p.stem}.png" if seen[p.stem] == 1 else f"{p.stem}_{seen[p.stem]}.png")
    return names


def _json_ready(value):
    """Metrics with numpy arrays, tensors and NaN made JSON-friendly (arrays to lists, NaN to None)."""
    import numpy as np

    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, torch.Tensor):
        return _json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def save_metrics_json(metrics: dict[str, Any], path, *, include_curves: bool = False) -> Path:
    """Writes evaluation metrics to a JSON file (NaN as null; PR curves only when asked).

    Args:
        metrics (dict): e.g. from :func:`~pixbox.engine.detection.evaluate_detector`.
        path (str or PathLike): the ``.json`` file.
        include_curves (bool): also write the raw ``pr_curves`` arrays.

    Returns:
        Path: ``path``.
    """
    doc = {k: v for k, v in metrics.items() if include_curves or k != "pr_curves"}
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8") as f:
        json.dump(_json_ready(doc), f, indent=1)
    return path


def _example_image(data) -> str | None:
    """The path of one image of the run's data (validation first), or None."""
    loader = getattr(data, "val_loader", None)
    for dataset in (getattr(loader, "dataset", None), getattr(data, "train_set", None)):
        path_of = getattr(dataset, "_path", None)
        if path_of is None:
            continue
        try:
            if len(dataset):
                return str(path_of(0))
        except (NotImplementedError, TypeError, IndexError, AttributeError):
            continue
    return None


def finish_lines(task: str, trainer, run_dir: Path, monitor: str, data=None) -> list[str]:
    """What a finished training run says last: its best score and the exact commands that
    evaluate it and predict with it (one image of its own data as the example).

    Args:
        task (str): the CLI's task name (``"detect"``, ``"classify"``, ``"segment"``).
        trainer (Trainer): the finished trainer (``best_score``, ``best_epoch``).
        run_dir (Path): the run folder.
        monitor (str): the metric that picked ``best.pt``.
        data: the run's training data (with ``val_loader`` / ``train_set``), for the example.

    Returns:
        list[str]: three lines.
    """
    import shlex

    best = (f"best {monitor} {trainer.best_score:.4f} at epoch {trainer.best_epoch}; "
            if trainer.best_score is not None else "")
    weights = shlex.quote(str(run_dir / "best.pt"))
    image = _example_image(data) if data is not None else None
    image = shlex.quote(image) if image else "IMAGE..."
    out = shlex.quote(str(run_dir / "predict"))
    return [f"done: {best}results in {run_dir}",
            f"  evaluate: pixbox {task} val --weights {weights}",
            f"  predict:  pixbox {task} predict --weights {weights} {image} --out {out}"]

