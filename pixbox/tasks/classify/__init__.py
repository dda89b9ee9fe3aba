"""Image classification by fine-tuning: :class:`ClassifyTask`, :class:`ClassifierPredictor`.

- :mod:`~pixbox.tasks.classify.config`: :class:`ClassifyConfig`;
- :mod:`~pixbox.tasks.classify.data`: augmentation presets and datasets;
- :mod:`~pixbox.tasks.classify.train`: :class:`ClassifyTask`, :func:`build_classifier`,
  :func:`train_classifier` (fine-tuning itself is :func:`pixbox.engine.finetune.finetune`);
- :mod:`~pixbox.tasks.classify.predict`: :class:`ClassifierPredictor`, :func:`evaluate_classifier`,
  :func:`predict_classifier`.
"""

from pixbox.tasks.classify.config import CLASSIFY_AUGMENT_PRESETS, CLASSIFY_FORMATS, FREEZE_MODES, ClassifyConfig
from pixbox.tasks.classify.data import classify_transforms
from pixbox.tasks.classify.predict import ClassifierPredictor, evaluate_classifier, load_classifier, predict_classifier
from pixbox.tasks.classify.train import ClassifyTask, build_classifier, train_classifier

__all__ = ["CLASSIFY_AUGMENT_PRESETS", "CLASSIFY_FORMATS", "ClassifierPredictor", "ClassifyConfig",
           "ClassifyTask", "FREEZE_MODES", "build_classifier", "classify_transforms", "evaluate_classifier",
           "load_classifier", "predict_classifier", "train_classifier"]
