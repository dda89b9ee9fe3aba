"""pixbox.engine: the task-agnostic training machinery; it knows no task (those are :mod:`pixbox.tasks`).

- :mod:`~pixbox.engine.trainer`: :class:`Trainer`, the loop (forward, loss, backward, step) with hooks;
- :mod:`~pixbox.engine.callbacks`: evaluation, a line per epoch, CSV log, atomic ``last.pt`` /
  ``best.pt``, plots, early stopping, progress bar;
- :mod:`~pixbox.engine.checkpoint`: atomic save/load, slim checkpoints, RNG states;
- :mod:`~pixbox.engine.config`: :class:`RunConfig`, every key a run shares, validated;
- :mod:`~pixbox.engine.device`: devices and seeds;
- :mod:`~pixbox.engine.optim`: parameter groups, optimizers, learning-rate schedules;
- :mod:`~pixbox.engine.precision`: mixed precision (what ``amp`` chooses, layers kept in float32);
- :mod:`~pixbox.engine.distributed`: ``torchrun`` / DDP (process groups, sharded loaders);
- :mod:`~pixbox.engine.finetune`: a new head, its learning rate, freezing (model surgery);
- :mod:`~pixbox.engine.task`: the :class:`Task` interface (five hooks) and its trainer;
- :mod:`~pixbox.engine.runs`: run folders, resuming, and :func:`fit`, the one training skeleton.

Example:
    >>> from pixbox.engine import fit
    >>> from pixbox.tasks import TASKS
    >>> run = fit(TASKS["detect"], {"data": "data/bananas", "epochs": 10})  # doctest: +SKIP
"""

from pixbox.engine.callbacks import (Callback, CheckpointCallback, CSVLogger, EarlyStopping, EpochLogger,
    EvalCallback, PlotCallback, ProgressBar)
from pixbox.engine.checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from pixbox.engine.config import RunConfig
from pixbox.engine.device import epoch_seed, seed_everything, select_device
from pixbox.engine.finetune import FrozenBatchNorm2d, finetune, freeze_batchnorm
from pixbox.engine.optim import lr_schedule
from pixbox.engine.runs import fit
from pixbox.engine.task import Task, TaskData, TaskTrainer
from pixbox.engine.trainer import Trainer

__all__ = ["CSVLogger", "Callback", "CheckpointCallback", "EarlyStopping", "EpochLogger", "EvalCallback",
           "FrozenBatchNorm2d", "PlotCallback", "ProgressBar", "RunConfig", "Task", "TaskData", "TaskTrainer",
           "Trainer", "epoch_seed", "finetune", "fit", "freeze_batchnorm", "get_rng_state", "load_checkpoint",
           "lr_schedule", "save_checkpoint", "seed_everything", "select_device", "set_rng_state"]
