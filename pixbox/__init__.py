"""pixbox: a pure-PyTorch computer-vision toolkit.

Importing pixbox has no side effects. The subpackages are:

- :mod:`pixbox.ops`: pure tensor functions (boxes, anchors, box coding, matching, NMS, decoding).
- :mod:`pixbox.compat`: the D2L and MXNet names on top of :mod:`pixbox.ops`.
- :mod:`pixbox.viz`: drawing boxes on images, saving PNGs (no display needed).
- :mod:`pixbox.engine`: the task-agnostic training machinery (loop, callbacks, checkpoints, :func:`~pixbox.engine.fit`).
- :mod:`pixbox.tasks`: detection, classification, segmentation (train, evaluate, predict) and
  style transfer; :func:`load` a trained model of any task; :func:`stylize` an image.
"""

from pixbox._version import __version__  # noqa: E402

from pixbox import ops  # noqa: E402

__all__ = ["__version__", "load", "ops", "stylize"]

#: Names of :mod:`pixbox.tasks` also reachable as ``pixbox.<name>`` (imported on first use).
_TASK_NAMES = ("ClassifyConfig", "DetectConfig", "SegmentConfig", "TASKS", "train_classifier", "train_detector",
               "train_segmenter")


def __getattr__(name: str):
    if name in _TASK_NAMES:
        import pixbox.tasks

        return getattr(pixbox.tasks, name)
    raise AttributeError(f"module 'pixbox' has no attribute {name!r}")


def load(path, **kwargs):
    """Loads a trained model for inference: ``pixbox.load("runs/detect/NAME/best.pt").predict(images)``.

    A ``.onnx`` file written by ``pixbox export`` runs with ONNX Runtime
    (:func:`pixbox.export.load_onnx`); a checkpoint goes to its task (:func:`pixbox.tasks.load`).
    Both are imported on first call, so importing pixbox stays cheap.

    Args:
        path (str or PathLike): ``best.pt``/``last.pt`` of a training run, or a model-only file.
        **kwargs: ``device`` and ``batch``; for detectors also ``score_threshold``,
            ``nms_threshold``, ``topk``.

    Returns:
        A detector's :class:`pixbox.tasks.detect.Predictor` (``.predict(images)`` gives one
        dict per image with ``boxes`` in original pixels, ``scores``, ``labels`` and ``names``),
        a classifier's :class:`pixbox.tasks.classify.ClassifierPredictor` (the ``name``,
        ``score`` and ``topk`` classes of each image) or a segmenter's
        :class:`pixbox.tasks.segment.SegmenterPredictor` (a ``mask`` per image).
    """
    import os

    if isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith(".onnx"):
        from pixbox.export import load_onnx

        return load_onnx(path, **kwargs)
    from pixbox.tasks import load as _load

    return _load(path, **kwargs)


def stylize(content, style, **options):
    """Neural style transfer: ``pixbox.stylize(content, style, **options) -> image tensor``.

    A thin wrapper of :func:`pixbox.tasks.stylize.stylize` (imported on first call, so importing
    pixbox stays cheap).

    Args:
        content: the content image: a path, PIL image, numpy array ``[H, W, 3]`` or tensor
            ``[3, H, W]`` (``uint8``, or float in [0, 1]).
        style: the style image, likewise.
        **options: ``size``, ``steps``, ``content_weight``, ``style_weight``, ``tv_weight``,
            ``style_layers``, ``content_layers``, ``optimizer``, ``lr``, ``init``, ``backbone``,
            ``weights``, ``multiscale``, ``preserve_color``, ``seed``, ``progress``, ... (see there).

    Returns:
        Tensor[3, H, W]: float in [0, 1] (``(image, history)`` with ``return_history=True``).
    """
    from pixbox.tasks.stylize import stylize as _stylize

    return _stylize(content, style, **options)
