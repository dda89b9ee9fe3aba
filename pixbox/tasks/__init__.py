"""The tasks pixbox trains, one package each, and the one table that dispatches on them.

:data:`TASKS` maps a task's name (the CLI command, the ``"task"`` of its checkpoints) to its
:class:`~pixbox.engine.task.Task`; :func:`load` reads a checkpoint and lets its task build the
predictor. Nothing else switches on the task: the engine runs any task through
:func:`pixbox.engine.runs.fit`, and export and serve ask the task in this table.

- :mod:`pixbox.tasks.detect`: SSD, TinySSD, Faster and Fast R-CNN (:func:`train_detector`);
- :mod:`pixbox.tasks.classify`: fine-tuned image classifiers (:func:`train_classifier`);
- :mod:`pixbox.tasks.segment`: FCNs (:func:`train_segmenter`);
- :mod:`pixbox.tasks.stylize`: neural style transfer (:func:`stylize`; an optimization, no training run).

Adding a task: subclass :class:`~pixbox.engine.task.Task` and add it to :data:`TASKS`.
"""

from __future__ import annotations

import difflib
import os

import torch

from pixbox.engine.checkpoint import load_checkpoint
from pixbox.engine.task import Task
from pixbox.tasks.classify import ClassifyConfig, ClassifyTask, train_classifier
from pixbox.tasks.detect import DetectConfig, DetectTask, train_detector
from pixbox.tasks.segment import SegmentConfig, SegmentTask, train_segmenter
from pixbox.tasks.stylize import stylize

__all__ = ["ClassifyConfig", "DetectConfig", "SegmentConfig", "TASKS", "get_task", "load", "stylize",
           "train_classifier", "train_detector", "train_segmenter"]

#: The tasks by name. A checkpoint without a ``"task"`` key (files of early pixbox versions,
#: ``Predictor.save``) is a detector's.
TASKS: dict[str, Task] = {task.name: task for task in (DetectTask(), ClassifyTask(), SegmentTask())}


def get_task(name: str) -> Task:
    """The task called ``name`` (``"detect"``, ``"classify"``, ``"segment"``), with a did-you-mean."""
    if name not in TASKS:
        hint = difflib.get_close_matches(str(name), list(TASKS), n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else ""
        raise ValueError(f"unknown task {name!r}{extra} (pixbox has {', '.join(TASKS)})")
    return TASKS[name]


def load(path: str | os.PathLike, *, device: str | torch.device = "auto", batch: int | None = None, **options):
    """Loads a trained model for inference, whatever its task: ``load(path).predict(images)``.

    Args:
        path (str or PathLike): ``best.pt`` or ``last.pt`` of a training run, or a predictor's ``save()`` file.
        device (str or torch.device): ``"auto"`` (CUDA, MPS, CPU), ``"cpu"``, ``"cuda:0"``, ...
        batch (int, optional): images per forward pass (default: the task's).
        **options: for detectors ``score_threshold``, ``nms_threshold``, ``topk`` (other tasks ignore them).

    Returns:
        the task's predictor: a :class:`~pixbox.tasks.detect.Predictor`, a
        :class:`~pixbox.tasks.classify.ClassifierPredictor` or a :class:`~pixbox.tasks.segment.SegmenterPredictor`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a pixbox checkpoint, or of a task this pixbox lacks.
    """
    state = load_checkpoint(path, map_location="cpu")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: not a pixbox checkpoint (a {type(state).__name__}, not a dict)")
    task = get_task(state.get("task", "detect"))
    if batch is not None:
        options["batch"] = batch
    return task.load(state, path=str(path), device=device, **options)
