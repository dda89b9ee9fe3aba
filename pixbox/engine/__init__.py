"""pixbox.engine: training loop, callbacks, checkpoints, and the tasks (detect, classify, segment, stylize).

- :mod:`pixbox.engine.trainer`: :class:`Trainer`, a small loop (forward, loss, backward, step)
  with hooks; devices, seeds and the LR schedule.
- :mod:`pixbox.engine.callbacks`: evaluation, CSV log, atomic ``last.pt``/``best.pt``, plots,
  early stopping, progress bar.
- :mod:`pixbox.engine.checkpoint`: atomic save/load and RNG states.
- :mod:`pixbox.engine.config`: :class:`DetectConfig`, :class:`ClassifyConfig` and
  :class:`SegmentConfig`, the validated run configs (YAML, dict).
- :mod:`pixbox.engine.runs`: run folders, resuming, optimizer and LR schedule, image sources.
- :mod:`pixbox.engine.detection`: :func:`train_detector`, :func:`evaluate_detector`,
  :func:`predict_detector`.
- :mod:`pixbox.engine.finetune`: :func:`finetune` (new head, head learning rate, freezing).
- :mod:`pixbox.engine.classification`: :func:`train_classifier`, :func:`evaluate_classifier`,
  :func:`predict_classifier`.
- :mod:`pixbox.engine.segmentation`: :func:`train_segmenter`, :func:`evaluate_segmenter`,
  :func:`predict_segmenter`.
- :mod:`pixbox.engine.style`: :func:`stylize` (neural style transfer).
- :mod:`pixbox.engine.predict`: :func:`load` a checkpoint into a :class:`Predictor`.

Example:
    >>> from pixbox.engine import DetectConfig, train_detector, load
    >>> run = train_detector(DetectConfig(data="data/bananas", epochs=10))  # doctest: +SKIP
    >>> load(run / "best.pt").predict("image.png")  # doctest: +SKIP
"""

from pixbox.engine.callbacks import (
    Callback,
    CheckpointCallback,
    CSVLogger,
    EarlyStopping,
    EvalCallback,
    PlotCallback,
    ProgressBar,
)
from pixbox.engine.checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from pixbox.engine.classification import (
    ClassificationTrainer,
    ClassifierPredictor,
    evaluate_classifier,
    load_classifier,
    predict_classifier,
    train_classifier,
)
from pixbox.engine.config import ClassifyConfig, DetectConfig, SegmentConfig
from pixbox.engine.detection import DetectionTrainer, evaluate_detector, predict_detector, train_detector
from pixbox.engine.finetune import FrozenBatchNorm2d, finetune, freeze_batchnorm
from pixbox.engine.segmentation import (
    SegmentationTrainer,
    SegmenterPredictor,
    evaluate_segmenter,
    load_segmenter,
    predict_segmenter,
    train_segmenter,
)
from pixbox.engine.predict import Predictor, load
from pixbox.engine.style import stylize
from pixbox.engine.trainer import Trainer, epoch_seed, lr_schedule, seed_everything, select_device

__all__ = [
    "CSVLogger",
    "Callback",
    "CheckpointCallback",
    "ClassificationTrainer",
    "ClassifierPredictor",
    "ClassifyConfig",
    "DetectConfig",
    "DetectionTrainer",
    "EarlyStopping",
    "EvalCallback",
    "FrozenBatchNorm2d",
    "PlotCallback",
    "Predictor",
    "ProgressBar",
    "SegmentConfig",
    "SegmentationTrainer",
    "SegmenterPredictor",
    "Trainer",
    "epoch_seed",
    "evaluate_classifier",
    "evaluate_detector",
    "evaluate_segmenter",
    "finetune",
    "freeze_batchnorm",
    "get_rng_state",
    "load",
    "load_checkpoint",
    "load_classifier",
    "load_segmenter",
    "lr_schedule",
    "predict_classifier",
    "predict_detector",
    "predict_segmenter",
    "save_checkpoint",
    "seed_everything",
    "select_device",
    "set_rng_state",
    "stylize",
    "train_classifier",
    "train_detector",
    "train_segmenter",
]
