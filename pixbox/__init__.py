"""pixbox: a pure-PyTorch computer-vision toolkit.

Importing pixbox has no side effects. The subpackages are:

- :mod:`pixbox.ops`: pure tensor functions (boxes, anchors, box coding, matching, NMS, decoding).
- :mod:`pixbox.compat`: the D2L and MXNet names on top of :mod:`pixbox.ops`.
- :mod:`pixbox.viz`: drawing boxes on images, saving PNGs (no display needed).
- :mod:`pixbox.engine`: training, evaluation and inference; :func:`load` a trained detector or
  classifier.
"""

__version__ = "0.1.0"

from pixbox import ops  # noqa: E402

__all__ = ["__version__", "load", "ops"]


def load(path, **kwargs):
    """Loads a trained model for inference: ``pixbox.load("runs/detect/NAME/best.pt").predict(images)``.

    A thin wrapper of :func:`pixbox.engine.predict.load` (imported on first call, so importing
    pixbox stays cheap).

    Args:
        path (str or PathLike): ``best.pt``/``last.pt`` of a training run, or a model-only file.
        **kwargs: ``device`` and ``batch``; for detectors also ``score_threshold``,
            ``nms_threshold``, ``topk``.

    Returns:
        A detector's :class:`pixbox.engine.predict.Predictor` (``.predict(images)`` gives one
        dict per image with ``boxes`` in original pixels, ``scores``, ``labels`` and ``names``) or
        a classifier's :class:`pixbox.engine.classification.ClassifierPredictor`
        (``.predict(images)`` gives the ``name``, ``score`` and ``topk`` classes of each image).
    """
    from pixbox.engine.predict import load as _load

    return _load(path, **kwargs)
