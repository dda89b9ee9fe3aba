"""The one training skeleton, :func:`fit`, which runs any :class:`~pixbox.engine.task.Task`, and its parts:
:func:`start_run` (a new run's config, or a resumed run's checkpoint and config, :func:`resume_config`),
:func:`build_trainer` and :func:`finish_lines`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

from pixbox._files import unique_dir
from pixbox.data.loaders import make_loader
from pixbox.data.sharding import epoch_batches
from pixbox.engine.callbacks import (CheckpointCallback, CSVLogger, EarlyStopping, EpochLogger, EvalCallback,
    PlotCallback, ProgressBar)
from pixbox.engine.checkpoint import load_checkpoint, repair_best
from pixbox.engine.config import RunConfig, read_yaml_values
from pixbox.engine.device import seed_everything
from pixbox.engine.distributed import broadcast_object, init_distributed, is_main_process, local_device
from pixbox.engine.optim import build_optimizer, build_scheduler
from pixbox.engine.task import Task, TaskData, TaskTrainer

__all__ = ["build_trainer", "finish_lines", "fit", "resume_config", "start_run"]


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


def start_run(config, resume, config_class: type, resume_keys: Sequence[str], task: str | None = None):
    """The run's config, and for a resumed run its checkpoint state and folder.

    Args:
        config: a ``config_class``, a dict or a YAML path (None only when resuming).
        resume (None, bool, str or PathLike): see :func:`fit`.
        config_class (type): :class:`~pixbox.tasks.detect.DetectConfig`, ...
        resume_keys (sequence of str): what a resume may change.
        task (str, optional): the task's name; a checkpoint of another task is refused.

    Returns:
        tuple: ``(config, state, run_dir)``; ``state`` and ``run_dir`` are None for a new run (``data`` made absolute).
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
    if task is not None and state.get("task", "detect") != task:
        found = state.get("task", "detect")
        raise ValueError(f"{ckpt_path} is a {found!r} run, not a {task!r} one; resume it with `pixbox {found} train "
                         f"--resume {ckpt_path}`")
    if "config" not in state or "optimizer" not in state:
        raise ValueError(f"{ckpt_path}: cannot resume from it: not a training checkpoint (no config or optimizer)")
    cfg = resume_config(config_class.from_dict(state["config"]), config, resume_keys)
    repaired = repair_best(ckpt_path) if ckpt_path.name == "last.pt" and is_main_process() else None
    if repaired:
        logging.getLogger(__name__).warning(repaired)
    if int(state["epoch"]) >= cfg.epochs:
        raise ValueError(f"{ckpt_path}: the run already finished its {cfg.epochs} epochs; to train longer, "
                         f"resume with more epochs (e.g. --epochs {cfg.epochs + 10})")
    return cfg, state, ckpt_path.parent


def _example_image(data: TaskData) -> str | None:
    """The path of one image of the run's data (validation first), or None."""
    for dataset in (data.val_set, data.train_set):
        path_of = getattr(dataset, "_path", None)
        if path_of is not None and len(dataset):
            try:
                return str(path_of(0))
            except (NotImplementedError, IndexError):
                continue
    return None


def finish_lines(task: str, trainer, run_dir: Path, monitor: str, data: TaskData | None = None) -> list[str]:
    """What a finished training run says last: its best score and the exact ``val`` and ``predict`` commands for it.

    Args:
        task (str): the CLI's task name (``"detect"``, ``"classify"``, ``"segment"``).
        trainer (Trainer): the finished trainer (``best_score``, ``best_epoch``).
        run_dir (Path): the run folder.
        monitor (str): the metric that picked ``best.pt``.
        data (TaskData, optional): the run's data, for the example image.

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


def fit(task: Task, config=None, *, resume=None, progress: bool = True, verbose: bool = True,
        callbacks: Sequence = ()) -> Path:
    """Trains ``task`` as ``config`` says and returns the run folder: the skeleton every task shares.

    A new run goes to ``<project>/<name>``, or ``<name>2``, ``<name>3``, ... when that exists (a previous run is never
    overwritten). With ``resume``, the run continues from a checkpoint with the config saved in it and ends exactly as
    an uninterrupted run would (on the CPU). The steps: the config (:func:`start_run`), the process group under
    ``torchrun``, the task's data (checked before the folder is made), the seeded model, the trainer
    (:func:`build_trainer`) and its loop, the task's reports and the closing lines (:func:`finish_lines`).

    Args:
        task (Task): what to train (:data:`pixbox.tasks.TASKS` holds pixbox's).
        config (RunConfig, dict, YAML path or None): the run's config (``task.config_class``); when resuming it may
            be None, or change only ``task.resume_keys``.
        resume (None, True, str or PathLike): None/False starts a new run; True resumes ``<project>/<name>/last.pt``;
            a run folder, a checkpoint file or a run name (under ``project``) resumes that one.
        progress (bool): show tqdm progress bars (only when stderr is a terminal).
        verbose (bool): print what the run does (also written to ``train.log``).
        callbacks (sequence): extra callbacks, run after the standard ones.

    Returns:
        Path: the run folder: ``config.yaml``, ``last.pt`` (everything to resume), ``best.pt`` (weights and
        metadata), ``metrics.csv``, ``train.log``, the task's plots and reports.

    Raises:
        ValueError, TypeError: a bad config value (the message names the key).
        FileNotFoundError: the data folder or the checkpoint to resume does not exist.
    """
    if not isinstance(task, Task):
        raise TypeError(f"task must be a pixbox.engine.Task, got {type(task).__name__}")
    cfg, state, run_dir = start_run(config, resume, task.config_class, task.resume_keys, task.name)
    init_distributed(cfg.device)
    cfg = task.prepare(cfg, new_run=state is None)
    data = task.build_data(cfg)
    data.check_classes(cfg.train_split, cfg.val_split)
    if state is not None and list(state.get("class_names", [])) != list(data.class_names):
        raise ValueError(f"{run_dir}: the checkpoint's classes {state.get('class_names')} differ from the "
                         f"dataset's {data.class_names}")
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.class_names, load_weights=state is None)
    if run_dir is None:  # a new run: its folder is made (by rank 0) once the data and the model are fine
        run_dir = broadcast_object(unique_dir(cfg.project, cfg.name) if is_main_process() else None)
        cfg = cfg.replace(name=run_dir.name)
    if is_main_process():
        cfg.to_yaml(run_dir / "config.yaml")
    trainer, notes = build_trainer(task, cfg, data, run_dir, progress=progress, verbose=verbose, callbacks=callbacks,
                                   model=model)
    if state is not None:
        trainer.load_state_dict(state)
        trainer.log(f"resuming {run_dir} at epoch {trainer.start_epoch + 1}/{cfg.epochs}")
    else:
        for line in notes:
            trainer.log(line)
        classes = len(data.class_names)
        trainer.log(f"training {task.describe(cfg, data)} on {cfg.data} ({len(data.train_set)} train images, "
                    f"{data.num_val} val images, {classes} class{'es' if classes != 1 else ''}) on {trainer.device}"
                    + (f" x {trainer.world_size} processes" if trainer.world_size > 1 else "")
                    + f"; results in {run_dir}")
    trainer.fit()
    if is_main_process():
        task.after_fit(trainer, run_dir, data)
    for line in finish_lines(task.name, trainer, run_dir, cfg.monitor, data):
        trainer.log(line)
    return run_dir


def build_trainer(task: Task, cfg: RunConfig, data: TaskData, run_dir: Path, *, progress: bool = True,
                  verbose: bool = True, callbacks: Sequence = (), model=None) -> tuple[TaskTrainer, list[str]]:
    """The trainer of a run, ready to :meth:`~pixbox.engine.trainer.Trainer.fit` (what :func:`fit` does after reading
    the config and the data): the loaders, the model, the optimizer and LR schedule, and the standard callbacks
    (progress bar, evaluation, a line per epoch, early stopping, CSV, checkpoints, plots) writing to ``run_dir``.

    Args:
        task (Task), cfg (RunConfig): the task and the run's config.
        data (TaskData): from ``task.build_data(cfg)``.
        run_dir (Path): the run folder.
        progress, verbose, callbacks: as :func:`fit`.
        model (tuple, optional): ``task.build_model``'s result, made after seeding the global RNG with ``cfg.seed``;
            None builds it so (with its pretrained weights).

    Returns:
        tuple: the :class:`~pixbox.engine.task.TaskTrainer` and the lines the task has to say about its model (e.g.
        the pretrained weights it loaded).
    """
    if data.val_set is not None and data.val_loader is None:
        data.val_loader = make_loader(data.val_set, cfg.batch, shuffle=False, num_workers=cfg.workers,
                                      collate_fn=data.val_collate_fn)
    batches, steps = epoch_batches(data.train_set, cfg.batch, seed=cfg.seed, workers=cfg.workers,
                                   collate_fn=data.collate_fn)
    if model is None:
        seed_everything(cfg.seed)
        model = task.build_model(cfg, data.class_names, load_weights=True)
    model, groups, notes = model
    optimizer = build_optimizer(model if groups is None else groups, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps)
    standard = [ProgressBar(progress)]
    if data.val_loader is not None:
        standard.append(EvalCallback(cfg.eval_every, log=False))
    standard.append(EpochLogger(task.metric_keys))
    if cfg.patience > 0:
        standard.append(EarlyStopping(cfg.patience, cfg.monitor))
    standard += [CSVLogger(run_dir / "metrics.csv", task.csv_columns), CheckpointCallback(run_dir, cfg.monitor),
                 PlotCallback(run_dir, task.plots)]
    trainer = TaskTrainer(task, cfg, data, model, optimizer, batches, epochs=cfg.epochs, scheduler=scheduler,
                          device=local_device(cfg.device), callbacks=standard + list(callbacks), amp=cfg.amp,
                          channels_last=cfg.channels_last, grad_clip=cfg.grad_clip, seed=cfg.seed, verbose=verbose,
                          sync_bn=cfg.sync_bn, log_file=Path(run_dir) / "train.log", ema=cfg.ema)
    return trainer, list(notes)

