"""Object detection: :class:`DetectTask` (train, evaluate), :class:`Predictor` (inference).

- :mod:`~pixbox.tasks.detect.config`: :class:`DetectConfig`;
- :mod:`~pixbox.tasks.detect.data`: augmentation presets, the evaluation resize, datasets;
- :mod:`~pixbox.tasks.detect.train`: :class:`DetectTask` and :func:`train_detector`;
- :mod:`~pixbox.tasks.detect.evaluate`: :func:`evaluate_detector` (``pixbox detect val``);
- :mod:`~pixbox.tasks.detect.predict`: :class:`Predictor`, :func:`load_detector`,
  :func:`predict_detector` (``pixbox detect predict``).
"""

from pixbox.tasks.detect.config import AUGMENT_PRESETS, FORMATS, DetectConfig
from pixbox.tasks.detect.data import build_train_transforms, prepare_image
from pixbox.tasks.detect.evaluate import evaluate_detector
from pixbox.tasks.detect.predict import Predictor, load_detector, model_from_checkpoint, predict_detector
from pixbox.tasks.detect.train import DetectTask, train_detector

__all__ = ["AUGMENT_PRESETS", "DetectConfig", "DetectTask", "FORMATS", "Predictor", "build_train_transforms",
           "evaluate_detector", "load_detector", "model_from_checkpoint", "predict_detector", "prepare_image",
           "train_detector"]
