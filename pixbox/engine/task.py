"""The Task interface: what a kind of training (detection, classification, ...) tells the engine.

A task is one small class. :func:`pixbox.engine.runs.fit` runs every task with the same skeleton (config, data,
model, optimizer, schedule, callbacks, checkpoints, resume, torchrun) and asks the task only what differs:

====================================  =============================================================================
hook                                  what it returns
====================================  =============================================================================
:meth:`Task.build_data`               train and validation sets, class names, collate functions (:class:`TaskData`)
:meth:`Task.build_model`              the model and its optimizer parameter groups
:meth:`Task.loss`                     the losses of one training batch
:meth:`Task.evaluate`                 the metrics of the model on the validation loader
:meth:`Task.load`                     a predictor, from a checkpoint's state
:meth:`Task.after_fit` (optional)     nothing: writes reports (confusion matrix, metrics JSON)
====================================  =============================================================================

plus class attributes naming the task (``name``), its config class, the metrics shown and logged, and its plots.
Nothing in the engine knows any task: the table of tasks is :data:`pixbox.tasks.TASKS`.

Example:
    >>> class Regression(Task):  # doctest: +SKIP
    ...     name, config_class = "regress", RegressConfig
    ...     def build_data(self, cfg): ...
    ...     def build_model(self, cfg, class_names, *, load_weights): return nn.Linear(2, 1), None, []
    ...     def loss(self, trainer, batch):
    ...         x, y = trainer.to_device(batch)
    ...         return {"loss": F.mse_loss(trainer.forward(x), y)}
    ...     def evaluate(self, trainer, loader): ...
    ...     def load(self, state, *, path, device, batch): ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from torch import Tensor, nn

from pixbox._version import __version__
from pixbox.engine.config import RunConfig
from pixbox.engine.trainer import Trainer

__all__ = ["ExportSpec", "RESUME_KEYS", "Task", "TaskData", "TaskTrainer"]

#: Config keys a resumed run may change (everything else comes from its checkpoint).
RESUME_KEYS: tuple[str, ...] = ("epochs", "device", "workers", "patience", "eval_every", "amp")


@dataclass
class TaskData:
    """The data of a run, read and checked before its folder is made (:meth:`Task.build_data`).

    Attributes:
        train_set, val_set (Dataset): the training samples (augmented) and the validation ones (None: no evaluation).
        collate_fn, val_collate_fn (callable, optional): how samples become a batch (None: the loader's default).
        class_names (list[str]): the classes in label order (default: ``train_set.class_names``).
        extra (dict): anything else the task's hooks keep (e.g. the input normalization).
        val_loader (iterable or None): the validation batches, made by :func:`~pixbox.engine.runs.fit`.
    """

    train_set: Any
    val_set: Any = None
    collate_fn: Callable | None = None
    val_collate_fn: Callable | None = None
    class_names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    val_loader: Any = field(default=None, repr=False)

    def __post_init__(self):
        if self.class_names is None:
            self.class_names = list(self.train_set.class_names)

    @property
    def num_val(self) -> int:
        """The number of validation images (0 without validation)."""
        return 0 if self.val_set is None else len(self.val_set)

    def check_classes(self, train_split: str, val_split: str | None) -> None:
        """Raises ValueError when the validation split's classes differ from the training split's."""
        if self.val_set is not None and list(self.val_set.class_names) != list(self.class_names):
            raise ValueError(f"the {val_split!r} split has the classes {list(self.val_set.class_names)} but the "
                             f"{train_split!r} split has {list(self.class_names)}")


@dataclass
class ExportSpec:
    """What a task gives :func:`pixbox.export.export_onnx` for one checkpoint.

    Attributes:
        module (nn.Module): the graph to export: ``images [B, 3, H, W] -> outputs``.
        metadata (dict[str, str]): stored in the ONNX file (class names, settings), read by :meth:`Task.onnx_predictor`.
        imgsz (int): the example input's side.
        output_names (list[str]): e.g. ``["logits"]`` or ``["boxes", "scores"]`` (a detector's, compared after NMS too).
        check_inputs (callable): ``batch -> (batches, labels, source)``: the parity check's
            input batches, a name per batch (or None) and one line saying what they are.
        dynamic_hw (bool): the height and width are dynamic (multiples of ``metadata["stride"]``).
    """

    module: nn.Module
    metadata: dict[str, str]
    imgsz: int
    output_names: list[str]
    check_inputs: Callable[[int], tuple[list[Tensor], list[str] | None, str]]
    dynamic_hw: bool = False


class Task:
    """One kind of training; subclass it and write the five hooks (see the module docstring).

    Attributes:
        name (str): the command and checkpoint name, e.g. ``"detect"``.
        config_class (type): the task's :class:`~pixbox.engine.config.RunConfig` subclass.
        resume_keys (tuple[str, ...]): the config keys a resumed run may change (:data:`RESUME_KEYS`).
        metric_keys (tuple[str, ...]): the evaluation metrics of each epoch's line and of ``metrics.csv``.
        loss_parts, train_values (tuple[str, ...]): what :meth:`loss` returns besides ``"loss"``: its parts (drawn in
            ``loss.png``) and other values (e.g. ``"acc"``).
        metric_plot (tuple): ``(file name, title, ylabel, columns)`` of the metrics' chart.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type] = RunConfig
    resume_keys: ClassVar[tuple[str, ...]] = RESUME_KEYS
    metric_keys: ClassVar[tuple[str, ...]] = ()
    loss_parts: ClassVar[tuple[str, ...]] = ()
    train_values: ClassVar[tuple[str, ...]] = ()
    metric_plot: ClassVar[tuple[str, str, str, Sequence[str]] | None] = None

    @property
    def csv_columns(self) -> tuple[str, ...]:
        """The first columns of ``metrics.csv``."""
        trained = [f"train_{k}" for k in (*self.loss_parts, *self.train_values)]
        return ("epoch", "lr", "train_loss", *trained, *self.metric_keys, "img_s", "epoch_time")

    @property
    def plots(self) -> dict[str, tuple[str, str, list[str]]]:
        """``file name -> (title, ylabel, columns)``: the losses, and :attr:`metric_plot`."""
        out = {"loss.png": ("Training loss", "loss", ["train_loss", *(f"train_{k}" for k in self.loss_parts)])}
        if self.metric_plot is not None:
            file, title, ylabel, columns = self.metric_plot
            out[file] = (title, ylabel, list(columns))
        return out

    # The hooks

    def build_data(self, cfg: RunConfig) -> TaskData:
        """The run's :class:`TaskData`; the engine checks both splits' classes and makes the validation loader."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_data(cfg)")

    def build_model(self, cfg: RunConfig, class_names: Sequence[str], *, load_weights: bool
                    ) -> tuple[nn.Module, list[dict] | None, list[str]]:
        """The model (from the seeded global RNG), optimizer groups (None: :func:`~pixbox.engine.optim.param_groups`)
        and lines to print (e.g. the weights loaded); ``load_weights`` is False on resume (the checkpoint has them)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_model(cfg, class_names, load_weights=)")

    def loss(self, trainer: Trainer, batch) -> dict[str, Tensor]:
        """The losses of one batch (under autocast if the run uses it): ``"loss"`` (backpropagated) and other scalars
        to log. ``trainer.to_device`` moves the batch, ``trainer.forward`` runs the model (DDP under torchrun)."""
        raise NotImplementedError(f"{type(self).__name__} must implement loss(trainer, batch)")

    def evaluate(self, trainer: Trainer, loader) -> dict[str, Any]:
        """Metrics of ``trainer.eval_model`` (the model or its ``ema``) on ``loader``; numbers go to ``metrics.csv``."""
        raise NotImplementedError(f"{type(self).__name__} must implement evaluate(trainer, loader)")

    def load(self, state: dict[str, Any], *, path: str | None, device, batch: int):
        """A predictor from a checkpoint's ``state`` (written by this task's runs)."""
        raise NotImplementedError(f"{type(self).__name__} must implement load(state, path=, device=, batch=)")

    def after_fit(self, trainer: Trainer, run_dir: Path, data: TaskData) -> None:
        """After the last epoch (main process only): reports beyond the metrics (optional)."""

    # Optional details

    def prepare(self, cfg: RunConfig, *, new_run: bool) -> RunConfig:
        """The config a new run saves, e.g. with its files made absolute (default: unchanged)."""
        return cfg

    def describe(self, cfg: RunConfig, data: TaskData) -> str:
        """What the run's first line says it trains, e.g. ``"tiny_ssd"``."""
        return cfg.model

    def checkpoint_extra(self, cfg: RunConfig, data: TaskData) -> dict[str, Any]:
        """What every checkpoint holds beyond the common keys (e.g. ``imgsz``)."""
        return {}

    def export_spec(self, state: dict[str, Any], *, path, score_threshold: float, nms_threshold: float,
                    topk: int) -> ExportSpec:
        """What ``pixbox export`` writes for a checkpoint of this task (default: not exportable)."""
        raise ValueError(f"{path}: cannot export a {self.name!r} checkpoint to ONNX")

    def onnx_predictor(self, model: nn.Module, metadata: dict[str, str], **options):
        """This task's predictor running an exported file (``model`` runs the ONNX session)."""
        raise ValueError(f"this pixbox cannot run {self.name!r} ONNX files")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class TaskTrainer(Trainer):
    """The :class:`~pixbox.engine.trainer.Trainer` of a task: the loss and evaluation are the
    task's, and checkpoints carry the task's name, config and classes.

    Args:
        task (Task), config (RunConfig), data (TaskData): the run's (``data.val_loader`` is evaluated).
        model, optimizer, train_data, **kwargs: as :class:`~pixbox.engine.trainer.Trainer`.
    """

    def __init__(self, task: Task, config: RunConfig, data: TaskData, model: nn.Module, optimizer, train_data,
                 **kwargs):
        super().__init__(model, optimizer, train_data, **kwargs)
        self.task, self.config, self.data = task, config, data
        self.class_names = list(data.class_names)
        self.val_loader = data.val_loader

    def compute_loss(self, batch) -> dict[str, Tensor]:
        return self.task.loss(self, batch)

    def evaluate(self) -> dict[str, Any]:
        if self.val_loader is None:
            return {}
        try:
            return self.task.evaluate(self, self.val_loader)
        finally:
            self.model.train()

    def checkpoint_extra(self) -> dict[str, Any]:
        return {"task": self.task.name, "config": self.config.to_dict(), "class_names": list(self.class_names),
                "model_name": self.config.model, "num_classes": len(self.class_names),
                **self.task.checkpoint_extra(self.config, self.data), "pixbox_version": __version__}
