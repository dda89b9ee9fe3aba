"""The training configuration of a run: one flat, validated dataclass per task.

A detection run is described by a :class:`DetectConfig` (:mod:`~pixbox.engine.config.detect`),
a classification run by a :class:`ClassifyConfig` (:mod:`~pixbox.engine.config.classify`), a
segmentation run by a :class:`SegmentConfig` (:mod:`~pixbox.engine.config.segment`); all share the keys of the training loop (optimizer, schedule, device,
run folder, ...) and the methods of :class:`RunConfig`. A config comes from keyword arguments, a dict
(:meth:`DetectConfig.from_dict`), a YAML file (:meth:`DetectConfig.from_yaml`) or the command
line (flags override the file's values, :meth:`DetectConfig.replace`). Every value is checked
when the config is made: an unknown key gets the nearest valid name, a bad value gets a message
naming the key, what it must be and what it is. The config is saved whole in every checkpoint and
as ``runs/<task>/<name>/config.yaml``, so a run can be repeated or resumed from it.

Example:
    >>> cfg = DetectConfig(data="data/bananas", epochs=3, batch=8, imgsz=64)
    >>> cfg.replace(lr=0.05).lr
    0.05
    >>> DetectConfig.from_dict({"epoch": 3})
    Traceback (most recent call last):
    ...
    ValueError: unknown config key 'epoch'; did you mean 'epochs'?
"""

from pixbox.engine.config._base import RunConfig, read_yaml_values
from pixbox.engine.config.classify import CLASSIFY_AUGMENT_PRESETS, CLASSIFY_FORMATS, FREEZE_MODES, ClassifyConfig
from pixbox.engine.config.detect import AUGMENT_PRESETS, FORMATS, DetectConfig
from pixbox.engine.config.segment import SEGMENT_AUGMENT_PRESETS, SegmentConfig

__all__ = [
    "AUGMENT_PRESETS",
    "CLASSIFY_AUGMENT_PRESETS",
    "CLASSIFY_FORMATS",
    "ClassifyConfig",
    "DetectConfig",
    "SEGMENT_AUGMENT_PRESETS",
    "SegmentConfig",
    "FORMATS",
    "FREEZE_MODES",
    "RunConfig",
    "read_yaml_values",
]
