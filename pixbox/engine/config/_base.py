"""What every task config shares: :class:`RunConfig`, YAML reading, and the value checks."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from pathlib import Path
from typing import Any

import yaml

from pixbox._files import atomic_open

_OPTIMIZERS = ("sgd", "adamw")
_SCHEDULERS = ("cosine", "step")


class _CombinationError(ValueError):
    """Values that are fine alone but not together (checked once all the sources are merged)."""


class RunConfig:
    """The methods every task config shares; a subclass is a frozen dataclass with ``_CHECKS``
    (field name -> ``check(value, name) -> value``) as a class attribute."""

    _CHECKS: dict = {}

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
            values (dict[str, Any]): config keys and values. Keys may use ``-`` for ``_``
                (``eval-every``).

        Returns:
            the validated config (of this class).

        Raises:
            ValueError: an unknown key (with the nearest valid one) or a value out of range.
            TypeError: a value of the wrong type.
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
            ValueError, TypeError: the file is not a YAML mapping, or a key or value is bad; the
                message starts with the file name.
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


def read_yaml_values(path, config_class: type = None) -> dict[str, Any]:
    """The mapping of a YAML config file, keys checked (unknown ones get the nearest valid key).

    Args:
        path (str or PathLike): the YAML file.
        config_class (type): the config class whose keys and values are checked
            (default :class:`DetectConfig`).

    Returns:
        dict[str, Any]: the values, keys normalized (``-`` -> ``_``) but values not yet checked.
    """
    if config_class is None:
        from pixbox.engine.config.detect import DetectConfig as config_class
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"config path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
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


# ----------------------------------------------------------------------------------------------
# Key and value checks


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


def _int(low: int, optional: bool = False):
    def check(value, name):
        if optional and value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            what = "an int" + (" or None" if optional else "")
            raise TypeError(f"{name} must be {what} >= {low}, got {value!r} ({type(value).__name__})")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
        return value

    return check


def _float(low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False,
           optional: bool = False):
    lo, hi = ("(" if low_open else "["), (")" if high_open or high == math.inf else "]")
    span = f"in {lo}{low}, {high}{hi}"

    def check(value, name):
        if optional and value is None:
            return None
        if isinstance(value, str):  # YAML reads "1e-3" as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            what = "a number" + (" or None" if optional else "")
            raise TypeError(f"{name} must be {what} {span}, got {value!r} ({type(value).__name__})")
        value = float(value)
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
        if not ok or math.isnan(value):
            raise ValueError(f"{name} must be a number {span}, got {value}")
        return value

    return check


def _choice(choices, optional: bool = False):
    def check(value, name):
        if optional and value is None:
            return None
        options = choices() if callable(choices) else choices
        if not isinstance(value, str):
            raise TypeError(f"{name} must be one of {list(options)}, got {value!r} ({type(value).__name__})")
        if value not in options:
            hint = difflib.get_close_matches(value, list(options), n=1)
            extra = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ValueError(f"{name} must be one of {list(options)}, got {value!r}{extra}")
        return value

    return check


def _bool(value, name):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {value!r} ({type(value).__name__})")
    return value


def _amp(value, name):
    if isinstance(value, str) and value.lower() in ("auto", "true", "false", "on", "off"):
        value = {"auto": "auto", "true": True, "on": True, "false": False, "off": False}[value.lower()]
    if value != "auto" and not isinstance(value, bool):
        raise TypeError(f"{name} must be 'auto', true or false, got {value!r} ({type(value).__name__})")
    return value


def _text(optional: bool = False):
    def check(value, name):
        if optional and value is None:
            return None
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            what = "a non-empty str" + (" or None" if optional else "")
            raise TypeError(f"{name} must be {what}, got {value!r}")
        return value

    return check


def _run_name(value, name):
    value = _text()(value, name)
    if value in (".", "..") or "/" in value or "\\" in value:
        raise ValueError(f"{name} must be a plain folder name (no '/', '.' or '..'), got {value!r}")
    return value


def _pretrained(value, name):
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if value is None or value is False:
        return "none"
    if value is True:
        return "default"
    if not isinstance(value, str) or not value.strip():
        raise TypeError(f"{name} must be 'default', 'none' or a weights file path, got {value!r}")
    return value


def _device(value, name):
    value = _text()(value, name)
    from pixbox.engine.trainer import check_device_name

    return check_device_name(value, name)


_COMMON_CHECKS = {
    "data": _text(optional=True),
    "epochs": _int(1),
    "batch": _int(1),
    "imgsz": _int(16),
    "lr": _float(0, low_open=True),
    "momentum": _float(0, 1, high_open=True),
    "weight_decay": _float(0),
    "optimizer": _choice(_OPTIMIZERS),
    "scheduler": _choice(_SCHEDULERS),
    "final_lr_ratio": _float(0, 1),
    "step_epochs": _int(1, optional=True),
    "gamma": _float(0, 1, low_open=True),
    "warmup_epochs": _float(0),
    "grad_clip": _float(0, low_open=True, optional=True),
    "workers": _int(0),
    "device": _device,
    "name": _run_name,
    "project": _text(),
    "seed": _int(0),
    "eval_every": _int(1),
    "patience": _int(0),
    "amp": _amp,
    "channels_last": _bool,
    "sync_bn": _bool,
    "train_split": _text(),
    "val_split": _text(optional=True),
    "limit_train": _int(1, optional=True),
    "limit_val": _int(1, optional=True),
}
