"""The configuration of a training run: :class:`RunConfig`, one flat, validated, frozen dataclass.

:class:`RunConfig` declares every key the training loop reads; a task's config (``DetectConfig``, ``ClassifyConfig``,
``SegmentConfig`` in :mod:`pixbox.tasks`) subclasses it, adds its own keys and changes defaults, nothing more. A
config comes from keyword arguments, a dict (:meth:`RunConfig.from_dict`), a YAML file (:meth:`RunConfig.from_yaml`)
or the command line (flags override the file's values, :meth:`RunConfig.replace`). Every value is checked when the
config is made: an unknown key gets the nearest valid name, a bad value a message naming the key, what it must be
and what it is. The config is saved whole in every checkpoint and as ``runs/<task>/<name>/config.yaml``, so a run
can be repeated or resumed from it.

Example:
    >>> cfg = RunConfig(data="data/x", epochs=3, batch=8)
    >>> cfg.replace(lr=0.05).lr
    0.05
    >>> RunConfig.from_dict({"epoch": 3})
    Traceback (most recent call last):
    ...
    ValueError: unknown config key 'epoch'; did you mean 'epochs'?
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from pixbox._checks import (amp_value, bool_value, choice_value, float_value, int_value, preset_value,
                            pretrained_value, run_name_value, text_value)
from pixbox._files import atomic_open
from pixbox.data._yaml import load_yaml
from pixbox.engine.device import check_device_name

__all__ = ["RunConfig", "read_yaml_values"]

_OPTIMIZERS = ("sgd", "adamw")
_SCHEDULERS = ("cosine", "step")


class _CombinationError(ValueError):
    """Values that are fine alone but not together (checked once all the sources are merged)."""


@dataclass(frozen=True)
class RunConfig:
    """The keys of every training run (see the module docstring); a subclass is a frozen dataclass too, with
    ``_CHECKS`` (field name -> ``check(value, name) -> value``) extending :data:`RunConfig._CHECKS` for its own keys.

    Attributes:
        data (str | None): the dataset folder (required to train).
        model (str): the model's name in the task's model table.
        epochs (int): >= 1.
        batch (int): images per training batch, >= 1; under ``torchrun`` the global batch, split evenly over the
            processes (a multiple of their number).
        lr (float): peak learning rate, > 0.
        momentum (float): SGD momentum (AdamW ``beta1``), in [0, 1).
        weight_decay (float): >= 0.
        optimizer (str): ``"sgd"`` or ``"adamw"``.
        scheduler (str): ``"cosine"`` (down to ``lr * final_lr_ratio``) or ``"step"`` (times ``gamma`` every
            ``step_epochs``), after the warm-up; applied at every iteration.
        final_lr_ratio (float): the cosine schedule's last learning rate over ``lr``, in [0, 1].
        step_epochs (int | None): the step schedule's period in epochs, >= 1; None: a third of ``epochs`` (>= 1).
        gamma (float): the step schedule's factor, in (0, 1].
        warmup_epochs (float): linear warm-up length in epochs (fractions allowed), >= 0.
        grad_clip (float | None): clip the gradient norm to this, > 0; None: no clipping.
        workers (int): data loading processes, >= 0 (0 loads in the training process); different values give
            different (each reproducible) augmentations.
        device (str): ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        name (str): the run's folder name under ``project``.
        project (str): the folder that holds the runs.
        seed (int): >= 0; the same seed on the CPU gives the same metrics.
        eval_every (int): evaluate on the validation split every this many epochs (and after the last one), >= 1.
        patience (int): stop when ``monitor`` has not improved for this many epochs, >= 0; 0 never stops early.
        monitor (str): the validation metric that picks ``best.pt`` and drives early stopping (higher is better);
            each task lists its metrics.
        amp (bool | str): mixed precision, ``"auto"``, True or False (:func:`pixbox.engine.precision.resolve_amp`
            says what each does); ``--amp`` / ``--no-amp`` on the command line.
        channels_last (bool): train in the ``channels_last`` memory format.
        sync_bn (bool): under ``torchrun`` with several processes, synchronise BatchNorm statistics across them
            (:class:`torch.nn.SyncBatchNorm`, CUDA only); ignored in a single process.
        ema (bool): evaluate and keep an exponential moving average of the weights
            (:class:`pixbox.engine.ema.ModelEMA`) instead of the last weights; ``--ema``.
        augment (bool | str): the task's augmentation preset; True and False name its default and no-augmentation ones.
        train_split (str): the training split's name.
        val_split (str | None): the validation split's name; None: no evaluation (``best.pt`` is the last epoch).
        limit_train (int | None): use only this many training images, >= 1.
        limit_val (int | None): use only this many validation images, >= 1.
        pretrained (str): the initial weights: ``"default"`` (the model's offline ImageNet weights, where it has
            them), a local weights file, or ``"none"`` (training from scratch); each task says which models have which.
    """

    data: str | None = None
    model: str = "model"
    epochs: int = 10
    batch: int = 16
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    optimizer: str = "sgd"
    scheduler: str = "cosine"
    final_lr_ratio: float = 0.01
    step_epochs: int | None = None
    gamma: float = 0.1
    warmup_epochs: float = 1.0
    grad_clip: float | None = None
    workers: int = 2
    device: str = "auto"
    name: str = "train"
    project: str = "runs"
    seed: int = 0
    eval_every: int = 1
    patience: int = 0
    monitor: str = "score"
    amp: bool | str = "auto"
    channels_last: bool = False
    sync_bn: bool = False
    ema: bool = False
    augment: bool | str = True
    train_split: str = "train"
    val_split: str | None = "val"
    limit_train: int | None = None
    limit_val: int | None = None
    pretrained: str = "default"

    _CHECKS: ClassVar[dict] = {}

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = self._CHECKS[f.name](getattr(self, f.name), f.name)
            object.__setattr__(self, f.name, value)

    @classmethod
    def keys(cls) -> list[str]:
        """The valid config keys, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        """A config from a dict; missing keys take their defaults.

        Args:
            values (dict[str, Any]): config keys (``-`` may stand for ``_``: ``eval-every``) and values.

        Returns:
            the validated config (of this class).

        Raises:
            ValueError, TypeError: an unknown key or a bad value (TypeError for a wrong type).
        """
        return cls().replace(**_check_keys(values, cls))

    @classmethod
    def from_yaml(cls, path):
        """A config from a YAML file holding a mapping of config keys (see :meth:`from_dict`).

        Args:
            path (str or PathLike): the YAML file.

        Returns:
            the validated config (of this class).

        Raises:
            FileNotFoundError: no such file.
            ValueError, TypeError: not a YAML mapping, or a bad key or value; the message starts with the file name.
        """
        return cls().replace(**read_yaml_values(path, cls))

    def replace(self, **changes):
        """A copy with some values changed (validated like the constructor).

        Args:
            **changes: config keys and new values.

        Returns:
            a new config of the same class.
        """
        return dataclasses.replace(self, **_check_keys(changes, type(self)))

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict (str, int, float, bool and None values only)."""
        return dataclasses.asdict(self)

    def to_yaml(self, path) -> Path:
        """Writes the config to a YAML file that :meth:`from_yaml` reads back to an equal config.

        Args:
            path (str or PathLike): the file to write, atomically (its folder is created).

        Returns:
            Path: ``path``.
        """
        path = Path(path)
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path


def read_yaml_values(path, config_class: type) -> dict[str, Any]:
    """The mapping of a YAML config file, keys checked (unknown ones get the nearest valid key).

    Args:
        path (str or PathLike): the YAML file.
        config_class (type): the :class:`RunConfig` subclass whose keys and values are checked.

    Returns:
        dict[str, Any]: the values, keys normalized (``-`` -> ``_``) but values not yet checked.
    """
    if not (isinstance(config_class, type) and issubclass(config_class, RunConfig)):
        raise TypeError(f"config_class must be a RunConfig subclass, got {config_class!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"config path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    values = load_yaml(path)  # no aliases: a 330-byte alias bomb would take minutes and gigabytes
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of keys to values, "
                         f"got a {type(values).__name__}")
    try:
        values = _check_keys(values, config_class)
        config_class().replace(**values)  # check the values now, naming the file
    except _CombinationError:
        pass  # e.g. a Fast R-CNN model whose proposals come from the command line
    except (ValueError, TypeError) as e:
        raise type(e)(f"{path}: {e}") from None
    return values


def _check_keys(values, config_class: type) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise TypeError(f"config values must be a dict, got {type(values).__name__}")
    keys = config_class.keys()
    out = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise TypeError(f"config keys must be str, got {key!r}")
        name = key.replace("-", "_")
        if name not in keys:
            hint = difflib.get_close_matches(name, keys, n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else f"; valid keys are {keys}"
            raise ValueError(f"unknown config key {key!r}{extra}")
        out[name] = value
    return out


def _device(value, name):
    return check_device_name(text_value()(value, name), name)


_COMMON_CHECKS = {
    "data": text_value(optional=True),
    "pretrained": pretrained_value,
    "model": text_value(),
    "epochs": int_value(1),
    "batch": int_value(1),
    "lr": float_value(0, low_open=True),
    "momentum": float_value(0, 1, high_open=True),
    "weight_decay": float_value(0),
    "optimizer": choice_value(_OPTIMIZERS),
    "scheduler": choice_value(_SCHEDULERS),
    "final_lr_ratio": float_value(0, 1),
    "step_epochs": int_value(1, optional=True),
    "gamma": float_value(0, 1, low_open=True),
    "warmup_epochs": float_value(0),
    "grad_clip": float_value(0, low_open=True, optional=True),
    "workers": int_value(0),
    "device": _device,
    "name": run_name_value,
    "project": text_value(),
    "seed": int_value(0),
    "eval_every": int_value(1),
    "patience": int_value(0),
    "monitor": text_value(),
    "amp": amp_value,
    "channels_last": bool_value,
    "sync_bn": bool_value,
    "ema": bool_value,
    "augment": preset_value,
    "train_split": text_value(),
    "val_split": text_value(optional=True),
    "limit_train": int_value(1, optional=True),
    "limit_val": int_value(1, optional=True),
}
RunConfig._CHECKS = _COMMON_CHECKS
