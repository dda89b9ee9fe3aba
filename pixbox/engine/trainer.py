"""A small training loop: forward, loss, backward, step; everything else is a callback.

:class:`Trainer` runs epochs of ``compute_loss(batch)`` -> backward -> optimizer step -> scheduler step, with
optional mixed precision (:mod:`pixbox.engine.precision`), ``channels_last`` and gradient clipping. Evaluation,
logging, checkpoints, plots, early stopping and the progress bar are callbacks (:mod:`pixbox.engine.callbacks`),
run in the order given, each hook called with the trainer:

====================  ==========================================================================
``on_train_start``    once, before the first epoch (also after a resume)
``on_epoch_start``    before the first batch of each epoch
``on_batch_start``    before each training step
``on_batch_end``      after each training step (``trainer.batch_log`` holds its losses)
``on_epoch_end``      after the last batch; ``trainer.epoch_log`` is the epoch's row, already in
                      ``trainer.history``: callbacks add columns to it (evaluation metrics)
``on_train_end``      once, after the last epoch (or an early stop)
====================  ==========================================================================

A task subclasses :class:`Trainer` and overrides :meth:`Trainer.compute_loss` (required), :meth:`Trainer.evaluate`,
:meth:`Trainer.batch_size` and :meth:`Trainer.checkpoint_extra`.

**Reproducibility and resuming.** At the start of epoch ``e`` the global torch, numpy and Python RNGs are seeded
from ``(seed, e)`` (:func:`epoch_seed`), and ``train_data`` is either a callable ``epoch -> iterable`` (build the
epoch's loader with that seed) or a :class:`~torch.utils.data.DataLoader` whose ``generator`` is reseeded from
``(seed, e)``. So an epoch's shuffling and augmentation depend only on the seed and the epoch number, and a run
resumed from epoch ``k``'s checkpoint (:meth:`Trainer.load_state_dict`) continues exactly as the uninterrupted run
would have on the CPU.

**Divergence** (a NaN or infinite loss, one over :data:`EXPLODED` times the first, or a non-finite weight or
buffer) stops the run with a FloatingPointError naming the epoch.

Example:
    >>> class Regression(Trainer):
    ...     def compute_loss(self, batch):
    ...         x, y = (t.to(self.device) for t in batch)
    ...         return {"loss": torch.nn.functional.mse_loss(self.model(x), y)}
    >>> model = torch.nn.Linear(2, 1)
    >>> data = [(torch.randn(8, 2), torch.randn(8, 1)) for _ in range(4)]
    >>> trainer = Regression(model, torch.optim.SGD(model.parameters(), lr=0.1), data, epochs=2, verbose=False)
    >>> [row["epoch"] for row in trainer.fit()]
    [1, 2]
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from pixbox._checks import check_bool, check_int
from pixbox.engine.checkpoint import get_rng_state, set_rng_state
from pixbox.engine.device import epoch_seed, seed_everything, select_device
from pixbox.engine.distributed import all_reduce_sum, barrier, get_rank, get_world_size, wrap_ddp
from pixbox.engine.ema import ModelEMA
from pixbox.engine.precision import TinyConvGuard, non_finite_tensors, resolve_amp

__all__ = ["EXPLODED", "Trainer"]

#: A step loss over this many times the first one means divergence (e.g. 1e25 with infinite BatchNorm variances).
EXPLODED = 1e4


def _to_device(x, device: torch.device, channels_last: bool):
    if isinstance(x, Tensor):
        x = x.to(device, non_blocking=True)
        if channels_last and x.dim() == 4 and x.is_floating_point():
            x = x.contiguous(memory_format=torch.channels_last)
        return x
    if isinstance(x, (list, tuple)):
        return type(x)(_to_device(v, device, channels_last) for v in x)
    if isinstance(x, dict):
        return {k: _to_device(v, device, channels_last) for k, v in x.items()}
    return x


class Trainer:
    """Runs ``epochs`` epochs of forward, loss, backward, step; callbacks do the rest.

    Args:
        model (nn.Module): moved to ``device`` (and to ``channels_last`` when asked).
        optimizer (torch.optim.Optimizer): over the model's parameters.
        train_data (DataLoader, iterable or callable): the batches, or ``epoch -> iterable`` (see the module docstring).
        epochs (int): the last epoch to train (a resumed run continues up to it), >= 1.
        scheduler (LRScheduler, optional): stepped after every optimizer step.
        device (str or torch.device): where to train (see :func:`select_device`).
        callbacks (sequence): objects with some of the hooks (see the module docstring); run in this order.
        amp (bool or "auto"): mixed precision, as :func:`~pixbox.engine.precision.resolve_amp` decides; under CPU
            bfloat16, :class:`~pixbox.engine.precision.TinyConvGuard` is applied.
        channels_last (bool): the model and the 4-D float inputs in the ``channels_last`` memory format.
        grad_clip (float, optional): clip the total gradient norm to this, > 0.
        seed (int): seeds each epoch (see the module docstring), >= 0.
        verbose (bool): print messages (early stop, resume) with :meth:`log` (rank 0 only).
        sync_bn (bool): with several processes, convert BatchNorms to :class:`~torch.nn.SyncBatchNorm` (CUDA only).
        log_file (str or PathLike, optional): :meth:`log` also appends here (rank 0 only, whatever ``verbose``),
            e.g. the run's ``train.log``.
        ema (bool): keep a moving average of the weights (:mod:`pixbox.engine.ema`) as :attr:`eval_model`.

    **Several processes** (``torchrun``, :mod:`pixbox.engine.distributed`): the model is wrapped in
    DistributedDataParallel (:attr:`ddp`) and ``train_data`` gives each rank its shard
    (:func:`~pixbox.data.sharding.shard_loader`). Losses and image counts are summed over the ranks,
    ``main_process_only`` callbacks run on rank 0 only, and :attr:`model` stays the plain module checkpoints hold.

    Attributes:
        epoch (int): the current epoch index (0-based); ``epoch + 1`` is the epoch number logged.
        start_epoch (int): the first epoch :meth:`fit` runs (> 0 after a resume).
        global_step (int): optimizer steps done.
        history (list[dict]): a row per finished epoch (``epoch``, ``lr``, ``train_*``, ``img_s``, ``epoch_time``,
            and what callbacks add).
        epoch_log (dict): the current epoch's row.
        batch_log (dict[str, float]): the losses of the last step.
        metrics (dict): the last evaluation's full result (set by the evaluation callback).
        best_score (float | None), best_epoch (int | None): the best monitored value and its epoch (checkpointed).
        stop (bool): set by a callback to end training after the current epoch.
        rank (int), world_size (int): this process's rank and the number of processes.
        ddp (DistributedDataParallel | None): the training forward's wrapper with several processes, else None.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, train_data, *, epochs: int,
                 scheduler=None, device: str | torch.device = "cpu", callbacks: Sequence = (),
                 amp: bool | str = False, channels_last: bool = False, grad_clip: float | None = None,
                 seed: int = 0, verbose: bool = True, sync_bn: bool = False, log_file=None, ema: bool = False):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not (callable(train_data) or isinstance(train_data, Iterable)):
            raise TypeError(f"train_data must be an iterable of batches or a callable epoch -> iterable, "
                            f"got {type(train_data).__name__}")
        epochs, seed = check_int(epochs, "epochs", low=1), check_int(seed, "seed", low=0)
        if grad_clip is not None and not (isinstance(grad_clip, (int, float)) and grad_clip > 0):
            raise ValueError(f"grad_clip must be a number > 0 or None, got {grad_clip!r}")
        self.device = select_device(device)
        self.channels_last = bool(channels_last)
        self.model = model.to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.rank, self.world_size = get_rank(), get_world_size()
        self.ddp = None
        if self.world_size > 1:
            self.model, self.ddp = wrap_ddp(self.model, self.device, sync_bn=bool(sync_bn))
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.train_data = train_data
        self.epochs = epochs
        self.callbacks = list(callbacks)
        self.ema = ModelEMA(self.model) if check_bool(ema, "ema") else None
        self.amp_dtype, self.precision = resolve_amp(amp, self.device)
        self.amp = self.amp_dtype is not None
        self.conv_guard = TinyConvGuard(self.model) if self.amp_dtype == torch.bfloat16 else None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.grad_clip = grad_clip
        self.seed = seed
        self.verbose = verbose and self.rank == 0
        self.log_file = Path(log_file) if log_file is not None and self.rank == 0 else None
        self.epoch = 0
        self.start_epoch = 0
        self.global_step = 0
        self.history: list[dict[str, Any]] = []
        self.epoch_log: dict[str, Any] = {}
        self.batch_log: dict[str, float] = {}
        self.metrics: dict[str, Any] = {}
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.stop = False
        self.batches: Iterable = ()
        self.epoch_images = 0
        self.epoch_start_time = 0.0
        self.lr = float(optimizer.param_groups[0]["lr"])
        self.first_loss: float | None = None  # this process's first step loss: the yardstick of an explosion

    def compute_loss(self, batch) -> dict[str, Tensor]:
        """The losses of one training batch (runs under autocast when ``amp`` is on).

        Args:
            batch: one item of ``train_data``, as the loader gives it (on the CPU).

        Returns:
            dict[str, Tensor]: ``"loss"`` (scalar, backpropagated) and other scalar parts to log, e.g. ``"cls"``.
        """
        raise NotImplementedError("a task trainer must implement compute_loss(batch)")

    def evaluate(self) -> dict[str, Any]:
        """Evaluates the model (called by :class:`~pixbox.engine.callbacks.EvalCallback`).

        Returns:
            dict: metrics; the int and float ones go into the epoch's row.
        """
        return {}

    def batch_size(self, batch) -> int:
        """The number of images of ``batch`` (for img/s): the length of its first tensor."""
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        if isinstance(first, dict):
            first = next(iter(first.values()))
        return int(len(first))

    def checkpoint_extra(self) -> dict[str, Any]:
        """What a task adds to every checkpoint (config, class names, model name, ...)."""
        return {}

    def forward(self, *args, method: str | None = None, **kwargs):
        """The model's training forward, through DistributedDataParallel with several processes.

        Args:
            *args, **kwargs: the model's (or the method's) arguments.
            method (str, optional): call this method of the model (e.g. ``"detection_losses"``) instead of the model.

        Returns:
            what the model or its method returns.
        """
        if self.ddp is not None:
            return self.ddp(method, *args, **kwargs)
        fn = self.model if method is None else getattr(self.model, method)
        return fn(*args, **kwargs)

    @property
    def eval_model(self) -> nn.Module:
        """The model to evaluate: the weights' moving average with ``ema``, else :attr:`model`."""
        return self.model if self.ema is None else self.ema.module

    def to_device(self, x):
        """Moves the tensors of ``x`` (nested lists, tuples, dicts) to the training device."""
        return _to_device(x, self.device, self.channels_last)

    def autocast(self):
        """The mixed-precision context of the forward pass (a no-op without ``amp``)."""
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def epoch_batches(self, epoch: int) -> Iterable:
        """The batches of epoch ``epoch``, seeded from ``(seed, epoch)``."""
        s = epoch_seed(self.seed, epoch)
        if callable(self.train_data) and not isinstance(self.train_data, Iterable):
            return self.train_data(epoch)
        generator = getattr(self.train_data, "generator", None)
        if isinstance(generator, torch.Generator):
            generator.manual_seed(s)
        return self.train_data

    def train_step(self, batch) -> dict[str, float]:
        """One step: forward and loss, backward, (unscale, clip), optimizer and scheduler steps.

        Returns:
            dict[str, float]: the step's losses.

        Raises:
            FloatingPointError: the loss is NaN or infinite, or over :data:`EXPLODED` times the first step's.
        """
        with self.autocast():
            parts = self.compute_loss(batch)
        if not isinstance(parts, dict) or "loss" not in parts:
            raise TypeError(f"compute_loss must return a dict with a 'loss' entry, got {type(parts).__name__}")
        loss = parts["loss"]
        values = {k: float(v.detach()) if isinstance(v, Tensor) else float(v) for k, v in parts.items()}
        if not math.isfinite(values["loss"]):
            self._diverged(f"the training loss is {values['loss']} at step {self.global_step + 1} (losses {values})")
        if self.first_loss is None:
            self.first_loss = values["loss"]
        elif values["loss"] > EXPLODED * max(self.first_loss, 1e-2):
            self._diverged(f"the training loss exploded to {values['loss']:.3g} at step {self.global_step + 1}, "
                           f"over {EXPLODED:g} times its first value ({self.first_loss:.3g})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.lr = float(self.optimizer.param_groups[0]["lr"])
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.global_step += 1
        return values

    def fit(self) -> list[dict[str, Any]]:
        """Trains from ``start_epoch`` to ``epochs`` (or an early stop).

        Returns:
            list[dict]: :attr:`history`, one row per epoch (those of a resumed run included).
        """
        self.stop = False
        self.log(self.precision)
        self._emit("on_train_start")
        for epoch in range(self.start_epoch, self.epochs):
            self.epoch = epoch
            self.metrics = {}
            seed = epoch_seed(self.seed, epoch)
            seed_everything(seed if self.rank == 0 else epoch_seed(seed % 2**31, self.rank))
            self.batches = self.epoch_batches(epoch)
            self.model.train()
            self.epoch_images, sums, steps = 0, {}, 0
            self.epoch_start_time = time.perf_counter()
            self._emit("on_epoch_start")
            for batch in self.batches:
                self._emit("on_batch_start")
                self.batch_log = self.train_step(batch)
                self.epoch_images += self.batch_size(batch)
                steps += 1
                for k, v in self.batch_log.items():
                    sums[k] = sums.get(k, 0.0) + v
                self._emit("on_batch_end")
            seconds = time.perf_counter() - self.epoch_start_time
            if self.world_size > 1:  # every rank's losses and images (the same keys on every rank)
                keys = list(sums)
                totals = all_reduce_sum([sums[k] for k in keys] + [steps, self.epoch_images, seconds])
                sums = dict(zip(keys, totals))
                steps, self.epoch_images = int(totals[-3]), int(totals[-2])
                seconds = totals[-1] / self.world_size  # the ranks' mean time
            if steps == 0:
                raise ValueError(f"epoch {epoch + 1} got no training batches; is the training set empty "
                                 "(or smaller than one batch with drop_last)?")
            self.epoch_log = {"epoch": epoch + 1, "lr": self.lr,
                              **{f"train_{k}": v / steps for k, v in sums.items()},
                              "img_s": self.epoch_images / max(seconds, 1e-9), "epoch_time": seconds}
            self.check_finite_weights()
            self.history.append(self.epoch_log)
            self._emit("on_epoch_end")
            if self.stop:
                break
        self._emit("on_train_end")
        barrier()  # rank 0's files are complete when any rank returns
        return self.history

    def _diverged(self, what: str):
        raise FloatingPointError(f"training diverged in epoch {self.epoch + 1}: {what}; try a lower learning rate "
                                 f"(--lr; it is {self.lr:g} now)")

    def check_finite_weights(self) -> None:
        """Raises FloatingPointError when a weight or buffer is NaN or infinite (before evaluating or saving)."""
        bad = non_finite_tensors(self.model)
        if bad:
            self._diverged(f"the weights are no longer finite ({bad[0]}{f' and {len(bad) - 1} more' * (len(bad) > 1)})")

    def _emit(self, hook: str) -> None:
        for cb in self.callbacks:
            if self.rank != 0 and getattr(cb, "main_process_only", False):
                continue
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(self)

    def log(self, message: str) -> None:
        """Prints ``message`` when ``verbose`` (through tqdm, sparing progress bars); appends it to ``log_file``."""
        if self.verbose:
            from tqdm import tqdm

            tqdm.write(message)
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_file, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {message}\n")

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run after the current epoch.

        Returns:
            dict: ``model``, ``optimizer``, ``scheduler``, ``scaler`` (state dicts), ``epoch`` (epochs finished),
            ``global_step``, ``best_score``, ``best_epoch``, ``history``, ``rng``
            (:func:`~pixbox.engine.checkpoint.get_rng_state`), ``loader_generator`` (the epoch's DataLoader
            generator state, or None; unused by a resume, which reseeds it), ``ema`` (the weight average's state,
            or None) and :meth:`checkpoint_extra`.
        """
        generator = getattr(self.batches, "generator", None)
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch + 1,
            "global_step": self.global_step,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "history": [dict(row) for row in self.history],
            "rng": get_rng_state(),
            "loader_generator": generator.get_state() if isinstance(generator, torch.Generator) else None,
            "ema": None if self.ema is None else self.ema.state_dict(),
            **self.checkpoint_extra(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict`; :meth:`fit` then continues with the next epoch.

        Args:
            state (dict): from :meth:`state_dict`, e.g. ``load_checkpoint("last.pt")``.
        """
        missing = [k for k in ("model", "optimizer", "epoch") if k not in state]
        if missing:
            raise ValueError(f"state must be a training checkpoint with 'model', 'optimizer' and 'epoch', "
                             f"missing {missing}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            if state.get("ema") is None:
                raise ValueError("the checkpoint has no weight average (ema) to continue; resume without ema")
            self.ema.load_state_dict(state["ema"])
        self.start_epoch = self.epoch = int(state["epoch"])
        self.global_step = int(state.get("global_step", 0))
        self.best_score = state.get("best_score")
        self.best_epoch = state.get("best_epoch")
        self.history = [dict(row) for row in state.get("history", [])]
        self.lr = float(self.optimizer.param_groups[0]["lr"])
        if state.get("rng") is not None:
            set_rng_state(state["rng"])
