"""pixbox: a pure-PyTorch computer-vision toolkit.

Importing pixbox has no side effects. The subpackages are:

- :mod:`pixbox.ops`: pure tensor functions (boxes, anchors, box coding, matching, NMS, decoding).
- :mod:`pixbox.compat`: the D2L and MXNet names on top of :mod:`pixbox.ops`.
- :mod:`pixbox.viz`: drawing boxes on images, saving PNGs (no display needed).
- :mod:`pixbox.engine`: training, evaluation and inference; :func:`load` a trained detector or
  classifier; :func:`stylize` an image (neural style transfer).
"""

__version__ = "0.1.0"

from pixbox import ops  # noqa: E402

__all__ = ["__version__", "load", "ops", "stylize"]


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


def stylize(content, style, **options):
    """Neural style transfer: ``pixbox.stylize(content, style, **options) -> image tensor``.

    A thin wrapper of :func:`pixbox.engine.style.stylize` (imported on first call, so importing
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
    from pixbox.engine.style import stylize as _stylize

    return _stylize(content, style, **options)
