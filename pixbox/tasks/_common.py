"""What the tasks share: a model rebuilt from a checkpoint (:func:`model_from_state`), a new run's pretrained
weights file (:func:`absolute_weights`), the predictors' base (:class:`BasePredictor`) and the checks of predictor and
evaluation arguments."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["BasePredictor", "absolute_weights", "as_predictor", "check_eval_args", "check_predictor_args", "check_same_classes",
           "model_from_state"]


def absolute_weights(cfg, new_run: bool, default_hint: str):
    """``cfg`` with a new run's ``pretrained`` weights file checked and made absolute (``"default"`` and ``"none"``
    unchanged), so the saved config names it wherever the run is resumed from. A resume (``new_run`` False) keeps
    ``cfg``; ``default_hint`` says what ``"default"`` means, for the error message."""
    if new_run and cfg.pretrained not in ("default", "none"):
        if not Path(cfg.pretrained).is_file():
            raise FileNotFoundError(f"pretrained weights file {cfg.pretrained!r} does not exist (use 'default' for "
                                    f"the {default_hint})")
        cfg = cfg.replace(pretrained=os.path.abspath(cfg.pretrained))
    return cfg


def model_from_state(state: dict, path, *, keys, models, build, expected: str):
    """The model a checkpoint describes, on the CPU, its weights loaded strictly, with errors naming the file.

    Args:
        state (dict), path: the checkpoint and its file name (for the messages).
        keys (sequence of str), models (Mapping): the keys it must have; the model names this pixbox knows.
        build (callable): ``state -> nn.Module`` (the architecture, weights not yet loaded).
        expected (str): what the file should have been, for the message.

    Raises:
        ValueError: a missing key, an unknown model or weights that do not fit it.
    """
    missing = [k for k in keys if k not in state]
    if missing:
        raise ValueError(f"{path}: not a pixbox {expected} (it lacks {missing})")
    if state["model_name"] not in models:
        raise ValueError(f"{path}: unknown model {state['model_name']!r}; this pixbox knows {list(models)}")
    model = build(state)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit model {state['model_name']!r}: {e}") from None
    return model


def as_predictor(weights, predictor_class: type, task: str, load, **options):
    """``weights`` as a ``predictor_class``: a predictor is kept; a checkpoint path of ``task`` is loaded with
    ``load(state, path=, **options)``; another task's checkpoint is refused with the command that takes it."""
    if isinstance(weights, predictor_class):
        return weights
    if isinstance(weights, (str, os.PathLike)):
        from pixbox.engine.checkpoint import load_checkpoint
        state = load_checkpoint(weights, map_location="cpu")
        found = state.get("task", "detect") if isinstance(state, dict) else None
        if found != task:
            raise ValueError(f"{weights} is a {found!r} model, not a {task!r} one; use it with `pixbox {found} "
                             f"predict` or `pixbox {found} val`")
        return load(state, path=weights, **options)
    raise TypeError(f"weights must be a checkpoint path or a {predictor_class.__name__}, got {type(weights).__name__}")


def check_predictor_args(model, class_names, imgsz: int | None = None) -> list[str]:
    """Checks what a predictor is made of: an ``nn.Module``, one class name per model output (when the model says
    how many) and an input side ``imgsz`` >= 16 (None: any size); returns the class names as ``list[str]``."""
    from collections.abc import Sequence

    from torch import nn
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names must be a list of str, got {type(class_names).__name__}")
    num = getattr(model, "num_classes", len(class_names))
    if len(class_names) != num:
        raise ValueError(f"class_names must have one name per model class ({num}), got {len(class_names)}")
    if imgsz is not None and (isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < 16):
        raise ValueError(f"imgsz must be an int >= 16, got {imgsz!r}")
    return [str(c) for c in class_names]


def check_eval_args(data, batch, workers, limit=None) -> tuple[int, int, int | None]:
    """Checks the arguments every ``evaluate_*`` function takes: an existing dataset folder, ``batch``
    >= 1, ``workers`` >= 0, ``limit`` >= 1 or None; returns ``(batch, workers, limit)`` as ints."""
    if not isinstance(data, (str, os.PathLike)):
        raise TypeError(f"data must be a dataset folder path, got {type(data).__name__}")
    if not Path(data).is_dir():
        raise FileNotFoundError(f"data folder {str(data)!r} does not exist")
    from pixbox._checks import check_number
    batch, workers = int(check_number(batch, "batch", low=1)), int(check_number(workers, "workers", low=0))
    return batch, workers, None if limit is None else int(check_number(limit, "limit", low=1))


def check_same_classes(model_names, dataset, split: str, data) -> None:
    """Raises ValueError when a split's classes differ from the model's."""
    if list(dataset.class_names) != list(model_names):
        raise ValueError(f"the model's classes {list(model_names)} differ from those of split {split!r} of {data}: "
                         f"{list(dataset.class_names)}")



class BasePredictor:
    """What every task's predictor holds: ``model`` (in eval mode on ``device``, a torch.device), ``class_names``,
    ``imgsz`` (None: any size), ``model_name`` (needed by :meth:`save`) and ``path``, the checkpoint it was loaded
    from (None otherwise). A subclass sets ``task``, writes ``predict`` (also its ``__call__``) and lists in
    :meth:`save_extra` what its ``save()`` file needs besides the weights and classes."""

    task = ""

    def __init__(self, model, class_names, imgsz: int | None, device, model_name: str | None, **to):
        from pixbox.engine.device import select_device
        self.class_names = check_predictor_args(model, class_names, imgsz)
        self.device = select_device(device)
        self.model = model.to(self.device, **to).eval()
        self.imgsz, self.model_name, self.path = imgsz, model_name, None

    def __repr__(self) -> str:
        n = len(self.class_names)
        size = "" if self.imgsz is None else f", imgsz={self.imgsz}"
        return (f"{type(self).__name__}({self.model_name or type(self.model).__name__}, {n} "
                f"class{'' if n == 1 else 'es'}{size}, device={self.device})")

    def __call__(self, *args, **kwargs):
        return self.predict(*args, **kwargs)

    def save_extra(self) -> dict:
        return {}

    def save(self, path) -> Path:
        """Writes a model-only file (no optimizer or history) that :func:`pixbox.load` reads, atomically, to ``path``
        (str or PathLike, e.g. ``model.pt``); returns it as a Path."""
        if self.model_name is None:
            raise ValueError(f"this {type(self).__name__} has no model_name, so load() could not rebuild its model; "
                             "pass model_name= (its name in the task's model table) when creating it")
        from pixbox.engine.checkpoint import save_checkpoint
        return save_checkpoint({"task": self.task, "model": self.model.state_dict(), "model_name": self.model_name,
                                "num_classes": len(self.class_names), "class_names": list(self.class_names),
                                **self.save_extra()}, path)
