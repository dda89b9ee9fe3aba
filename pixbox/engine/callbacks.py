"""Training callbacks: evaluation, CSV log, checkpoints, plots, early stopping, progress bar, epoch line.

A callback is any object with some of :class:`Callback`'s hooks (when each runs: :mod:`pixbox.engine.trainer`),
each taking the trainer. A run gives them to the :class:`~pixbox.engine.trainer.Trainer` in the order they must
run, typically::

    [ProgressBar(), EvalCallback(every), EarlyStopping(patience), CSVLogger(dir / "metrics.csv"),
     CheckpointCallback(dir), PlotCallback(dir, plots)]

so that the evaluation metrics are in the epoch's row (``trainer.epoch_log``) before it is logged, checkpointed
and plotted. The CSV file and the plots are rebuilt from ``trainer.history`` (which checkpoints carry), so a
resumed run writes every epoch exactly once.

With several processes (``torchrun``), a callback whose class sets ``main_process_only = True`` (the writers and
the progress bar) runs only on rank 0. :class:`EvalCallback` evaluates on rank 0 and sends the scalar metrics to
the other ranks, so :class:`EarlyStopping` (which runs everywhere) stops every rank at the same epoch.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from pixbox._files import atomic_open
from pixbox.engine.checkpoint import remove_partial_checkpoints, save_checkpoint, slim_checkpoint

__all__ = ["CSVLogger", "Callback", "CheckpointCallback", "EarlyStopping", "EpochLogger", "EvalCallback",
           "PlotCallback", "ProgressBar", "history_csv"]


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Callback:
    """The hooks (see :mod:`pixbox.engine.trainer`), all doing nothing; subclass and override the ones you need.

    Attributes:
        main_process_only (bool): run only on rank 0 when training on several processes.
    """

    main_process_only = False

    def on_train_start(self, trainer) -> None: ...
    def on_epoch_start(self, trainer) -> None: ...
    def on_batch_start(self, trainer) -> None: ...
    def on_batch_end(self, trainer) -> None: ...
    def on_epoch_end(self, trainer) -> None: ...
    def on_train_end(self, trainer) -> None: ...


class EvalCallback(Callback):
    """Runs ``trainer.evaluate()`` into ``trainer.metrics`` every ``every`` epochs and after the last one.

    The int and float metrics become columns of the epoch's row; the evaluation time is added to its ``epoch_time``.

    Args:
        every (int): evaluate after epochs ``every``, ``2 * every``, ... (1-based), >= 1.
        log (bool): print a line with the headline metrics (``trainer.log``).
        log_keys (sequence of str): the metrics that line shows, when present.
    """

    def __init__(self, every: int = 1, *, log: bool = True,
                 log_keys: Sequence[str] = ()):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        self.every = every
        self.log = bool(log)
        self.log_keys = list(log_keys)

    def due(self, trainer) -> bool:
        """Whether the current epoch is evaluated."""
        number = trainer.epoch + 1
        return number % self.every == 0 or number == trainer.epochs

    def on_epoch_end(self, trainer) -> None:
        if not self.due(trainer):
            return
        start = time.perf_counter()
        if getattr(trainer, "world_size", 1) > 1:  # rank 0 evaluates; every rank gets its numbers
            from pixbox.engine.distributed import broadcast_object

            metrics = dict(trainer.evaluate()) if trainer.rank == 0 else None
            scalars = broadcast_object(None if metrics is None else
                                       {k: v for k, v in metrics.items()
                                        if isinstance(v, (int, float)) and not isinstance(v, bool)})
            trainer.metrics = metrics if metrics is not None else scalars
        else:
            trainer.metrics = dict(trainer.evaluate())
        seconds = time.perf_counter() - start
        for key, value in trainer.metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                trainer.epoch_log[key] = value if isinstance(value, int) else float(value)
        trainer.epoch_log["epoch_time"] = trainer.epoch_log.get("epoch_time", 0.0) + seconds
        if self.log:
            row = trainer.epoch_log
            shown = "  ".join(f"{k} {row[k]:.4f}" for k in self.log_keys if _finite(row.get(k)))
            loss = row.get("train_loss")
            trainer.log(f"epoch {trainer.epoch + 1}/{trainer.epochs}"
                        + (f"  loss {loss:.4f}" if _finite(loss) else "") + (f"  {shown}" if shown else "")
                        + f"  ({seconds:.1f} s eval)")


class EarlyStopping(Callback):
    """Stops training when ``monitor`` (higher is better) has not improved for ``patience`` epochs.

    The best epoch is read from ``trainer.history``, so the count survives a resume; epochs without the metric
    (not evaluated) are no improvement.

    Args:
        patience (int): epochs without improvement before stopping, >= 1.
        monitor (str): a column of the epoch rows, e.g. ``"map_50"``.
    """

    def __init__(self, patience: int, monitor: str):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be an int >= 1, got {patience!r}")
        self.patience, self.monitor = patience, monitor

    def on_epoch_end(self, trainer) -> None:
        scored = [(row[self.monitor], row["epoch"]) for row in trainer.history if _finite(row.get(self.monitor))]
        if not scored:
            return
        best = max(value for value, _ in scored)
        best_epoch = min(epoch for value, epoch in scored if value == best)
        waited = trainer.epoch + 1 - best_epoch
        if waited >= self.patience and trainer.epoch + 1 < trainer.epochs:
            trainer.stop = True
            trainer.log(f"early stop: {self.monitor} has not improved for {waited} epochs "
                        f"(best {best:.4f} at epoch {best_epoch})")


def history_csv(history: Sequence[dict[str, Any]], columns: Sequence[str] = ()) -> str:
    """The rows as CSV text: ``columns`` first, then the others in first-seen order; floats as ``repr`` (exact),
    missing values empty."""
    names = list(columns)
    for row in history:
        names += [k for k in row if k not in names]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(names)
    for row in history:
        writer.writerow(["" if row.get(k) is None else repr(row[k]) if isinstance(row[k], float) else row[k]
                         for k in names])
    return out.getvalue()


class CSVLogger(Callback):
    """Rewrites the CSV file atomically from ``trainer.history`` every epoch (see the module docstring).

    Args:
        path (str or PathLike): the CSV file, e.g. ``runs/detect/train/metrics.csv``.
        columns (sequence of str): columns to put first, in this order (others follow).
    """

    main_process_only = True

    def __init__(self, path, columns: Sequence[str] = ()):
        self.path = Path(path)
        self.columns = list(columns)

    def on_epoch_end(self, trainer) -> None:
        with atomic_open(self.path, "w", encoding="utf-8", newline="") as f:
            f.write(history_csv(trainer.history, self.columns))


class CheckpointCallback(Callback):
    """Saves ``last.pt`` (the full state, for ``--resume``) every epoch and ``best.pt`` when ``monitor`` improves.

    Both are written atomically (:func:`~pixbox.engine.checkpoint.save_checkpoint`) from ``trainer.state_dict()``
    and hold the best score so far, so a resumed run keeps comparing against it. Without the metric (no validation
    split), ``best.pt`` is the last epoch's. ``best.pt`` is written first, so a kill between the two leaves it ahead
    of ``last.pt`` (the resumed epoch repeats exactly), never behind (:func:`~pixbox.engine.checkpoint.repair_best`
    mends runs written otherwise); an interrupted write's temporary files are removed when training starts.
    ``best.pt`` is slim (:func:`~pixbox.engine.checkpoint.slim_checkpoint`, see :mod:`pixbox.engine.checkpoint`):
    resuming from it is refused with a ValueError that points to ``last.pt``.

    Args:
        folder (str or PathLike): where ``last.pt`` and ``best.pt`` go.
        monitor (str): a column of the epoch rows, higher is better.
    """

    main_process_only = True

    def __init__(self, folder, monitor: str):
        self.folder = Path(folder)
        self.monitor = monitor

    @property
    def last(self) -> Path:
        return self.folder / "last.pt"

    @property
    def best(self) -> Path:
        return self.folder / "best.pt"

    def on_train_start(self, trainer) -> None:
        remove_partial_checkpoints(self.folder)

    def on_epoch_end(self, trainer) -> None:
        value = trainer.epoch_log.get(self.monitor)
        improved = _finite(value) and (trainer.best_score is None or value > trainer.best_score)
        if improved:
            trainer.best_score, trainer.best_epoch = float(value), trainer.epoch + 1
        state = trainer.state_dict()
        # best.pt first (see the class docstring); without a metric best.pt is the last epoch, kept current
        if improved or (trainer.best_score is None and not _finite(value)):
            save_checkpoint(slim_checkpoint(state), self.best)
        save_checkpoint(state, self.last)

    def on_train_end(self, trainer) -> None:
        if not self.best.exists() and self.last.exists():
            save_checkpoint(slim_checkpoint(trainer.state_dict()), self.best)


class PlotCallback(Callback):
    """Draws PNG line charts of columns of ``trainer.history`` after every epoch.

    Args:
        folder (str or PathLike): where the PNG files go.
        plots (dict): file name -> ``(title, ylabel, columns)``; each column with a finite value is a series against
            the epoch, e.g. ``{"loss.png": ("Training loss", "loss", ["train_loss", "train_cls", "train_box"])}``.
    """

    main_process_only = True

    def __init__(self, folder, plots: dict[str, tuple[str, str, Sequence[str]]]):
        self.folder = Path(folder)
        self.plots = dict(plots)

    def on_epoch_end(self, trainer) -> None:
        from pixbox.plots import plot_curves

        for filename, (title, ylabel, columns) in self.plots.items():
            series = {}
            for column in columns:
                points = [(row["epoch"], row[column]) for row in trainer.history if _finite(row.get(column))]
                if points:
                    series[column] = ([p[0] for p in points], [p[1] for p in points])
            if series:
                plot_curves(series, self.folder / filename, title=title, xlabel="epoch", ylabel=ylabel)


class ProgressBar(Callback):
    """A tqdm bar per epoch showing the running loss and the speed in images per second.

    Args:
        enabled (bool): False shows nothing; True shows the bar only if the stream is a terminal (not in log files).
        file: the stream (default ``sys.stderr``).
    """

    main_process_only = True

    def __init__(self, enabled: bool = True, file=None):
        self.enabled = bool(enabled)
        self.file = file
        self._bar = None
        self._sum = 0.0
        self._steps = 0

    def on_epoch_start(self, trainer) -> None:
        stream = self.file if self.file is not None else sys.stderr
        show = self.enabled and hasattr(stream, "isatty") and stream.isatty()
        if not show:
            self._bar = None
            return
        from tqdm import tqdm

        try:
            total = len(trainer.batches)
        except TypeError:
            total = None
        self._sum, self._steps = 0.0, 0
        self._bar = tqdm(total=total, desc=f"epoch {trainer.epoch + 1}/{trainer.epochs}", unit="batch",
                         file=stream, dynamic_ncols=True, leave=True)

    def on_batch_end(self, trainer) -> None:
        if self._bar is None:
            return
        self._sum += trainer.batch_log.get("loss", float("nan"))
        self._steps += 1
        seconds = max(time.perf_counter() - trainer.epoch_start_time, 1e-9)
        self._bar.set_postfix(loss=f"{self._sum / self._steps:.4f}", img_s=f"{trainer.epoch_images / seconds:.1f}",
                              refresh=False)
        self._bar.update(1)

    def on_epoch_end(self, trainer) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _duration(seconds: float) -> str:
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class EpochLogger(Callback):
    """Logs one line per epoch with ``trainer.log`` (so also to its ``log_file``, ``train.log``): the losses, an
    evaluated epoch's metrics, the speed, the epoch's time and the ETA (the mean time of this process's epochs,
    evaluation included, times the epochs left). It stays after the progress bar, and is the progress in log
    files (no bars there)::

        epoch 3/16  loss 0.4321  map_50 0.8123  14.2 img/s  61 s  ETA 13.2 min

    Args:
        metric_keys (sequence of str): the evaluation metrics shown when present.
    """

    main_process_only = True

    def __init__(self, metric_keys: Sequence[str] = ()):
        self.metric_keys = list(metric_keys)
        self._times: list[float] = []

    def on_train_start(self, trainer) -> None:
        self._times = []

    def on_epoch_end(self, trainer) -> None:
        row = trainer.epoch_log
        number = trainer.epoch + 1
        parts = [f"epoch {number}/{trainer.epochs}"]
        losses = [(k[len("train_"):], row[k]) for k in row if k.startswith("train_") and _finite(row[k])]
        parts += [f"{name} {value:.4f}" for name, value in losses]
        parts += [f"{k} {row[k]:.4f}" for k in self.metric_keys if _finite(row.get(k))]
        if _finite(row.get("img_s")):
            parts.append(f"{row['img_s']:.1f} img/s")
        seconds = row.get("epoch_time")
        if _finite(seconds):
            self._times.append(float(seconds))
            parts.append(_duration(seconds))
        left = trainer.epochs - number
        if left > 0 and self._times and not trainer.stop:
            parts.append(f"ETA {_duration(left * sum(self._times) / len(self._times))}")
        trainer.log("  ".join(parts))

