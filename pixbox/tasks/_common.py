"""What the tasks share: a model rebuilt from a checkpoint (:func:`model_from_state`), a new run's
pretrained weights file (:func:`absolute_weights`) and the checks of predictor and evaluation
arguments."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["absolute_weights", "as_predictor", "check_eval_args", "check_predictor_args", "check_same_classes",
           "model_from_state"]


def absolute_weights(cfg, new_run: bool, default_hint: str):
    """A new run's ``pretrained`` weights file, checked and made absolute (``"default"`` and
    ``"none"`` unchanged), so the saved config names it wherever the run is resumed from.

    Args:
        cfg (RunConfig): a config with a ``pretrained`` key.
        new_run (bool): False (a resume) returns ``cfg`` unchanged.
        default_hint (str): what ``"default"`` means, for the error message.
    """
    if new_run and cfg.pretrained not in ("default", "none"):
        if not Path(cfg.pretrained).is_file():
            raise FileNotFoundError(f"pretrained weights file {cfg.pretrained!r} does not exist (use 'default' for "
                                    f"the {default_hint})")
        cfg = cfg.replace(pretrained=os.path.abspath(cfg.pretrained))
    return cfg


def model_from_state(state: dict, path, *, keys, models, build, expected: str):
    """The model a checkpoint describes, its weights loaded strictly, with errors naming the file.

    Args:
        state (dict): the checkpoint.
        path: its file name, for the messages.
        keys (sequence of str): the keys the checkpoint must have.
        models (Mapping): the model names this pixbox knows.
        build (callable): ``state -> nn.Module`` (the architecture, weights not yet loaded).
        expected (str): what the file should have been, for the message.

    Returns:
        nn.Module: on the CPU.

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
    """``weights`` as a ``predictor_class``: a predictor is kept; a checkpoint path of ``task`` is
    loaded with ``load(state, path=, **options)``; another task's checkpoint is refused with the
    command that takes it."""
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
    """Checks what a predictor is made of: an ``nn.Module``, one class name per model output (when
    the model says how many) and an input side ``imgsz`` >= 16 (None: any size).

    Returns:
        list[str]: the class names.
    """
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

