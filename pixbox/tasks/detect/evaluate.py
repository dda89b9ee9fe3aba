"""Evaluating a detector: COCO and VOC metrics on a loader (:func:`evaluate_loader`, used after
every training epoch) or on a split of a dataset folder (:func:`evaluate_detector`, ``pixbox detect val``)."""

from __future__ import annotations

from typing import Any, Sequence

from torch import nn

from pixbox._checks import check_choice, check_number
from pixbox.tasks._common import check_eval_args, check_same_classes
from pixbox.tasks.detect.config import FORMATS
from pixbox.tasks.detect.data import EvalTransform, detection_dataset, val_batches
from pixbox.tasks.detect.predict import Predictor, as_predictor, check_proposals_arg

__all__ = ["evaluate_detector", "evaluate_loader"]


def evaluate_loader(predictor: Predictor, loader, class_names: Sequence[str], *, score_threshold: float,
                    nms_threshold: float, topk: int) -> dict[str, Any]:
    """COCO and VOC metrics of ``predictor`` on the batches of ``loader`` (whose targets hold the
    original ``boxes``, ``labels``, ``iscrowd``, ``difficult`` and ``size``)."""
    from pixbox.metrics.detection import DetectionEvaluator
    evaluator = DetectionEvaluator(list(class_names))
    for images, targets in loader:
        proposals = [t["proposals"] for t in targets] if predictor.needs_proposals else None
        dets = predictor.predict_batch(images, [t["size"] for t in targets], score_threshold=score_threshold,
                                       nms_threshold=nms_threshold, topk=topk, proposals=proposals)
        evaluator.update(dets, [{k: t[k] for k in ("boxes", "labels", "iscrowd", "difficult")} for t in targets])
    return evaluator.compute()


def evaluate_detector(weights_or_model, data, *, fmt: str = "auto", split: str = "val", batch: int = 16,
                      imgsz: int | None = None, device: str = "auto", score_threshold: float = 0.01,
                      nms_threshold: float = 0.45, topk: int = 200, workers: int = 0,
                      limit: int | None = None, proposals=None, allow_outside: bool = False) -> dict[str, Any]:
    """COCO and VOC metrics of a detector on one split of a dataset.

    Args:
        weights_or_model: a checkpoint path (``best.pt``), a :class:`~pixbox.tasks.detect.Predictor`
            or a detector ``nn.Module`` (then the dataset's class names are used).
        data (str or PathLike), split (str): the dataset folder and the split to evaluate.
        fmt (str): ``"auto"`` or a format of :data:`pixbox.data.formats.DETECTION_FORMATS`.
        batch (int), workers (int): images per forward pass, >= 1; data loading processes, >= 0.
        imgsz (int, optional): input size, >= 16; default the checkpoint's (256 for a bare model).
        device (str): ``"auto"``, ``"cpu"``, ``"cuda:0"``, ...
        score_threshold, nms_threshold (float), topk (int): as in :class:`~pixbox.tasks.detect.DetectConfig`.
        limit (int, optional): evaluate only the first this many images, >= 1.
        proposals (str, PathLike or dict, optional): a region proposals file covering the split
            (:mod:`pixbox.data.proposals`); required by a Fast R-CNN, refused by other models.
        allow_outside (bool): read annotation image paths leading outside the dataset folder.

    Returns:
        dict: :meth:`pixbox.metrics.detection.DetectionEvaluator.compute`'s metrics (``map``, ``map_50``, ``map_75``,
        ``voc07_ap50``, ``voc_ap50``, ``per_class``, ``pr_curves``, ...), in the pixels of the original images.

    Raises:
        ValueError: the dataset's classes differ from the model's, or ``proposals`` missing for
            a Fast R-CNN (or given to another model).
    """
    batch, workers, limit = check_eval_args(data, batch, workers, limit)
    check_choice(fmt, "fmt", FORMATS)
    topk = int(check_number(topk, "topk", low=1))
    for value, name in ((score_threshold, "score_threshold"), (nms_threshold, "nms_threshold")):
        check_number(value, name, low=0, high=1)
    if imgsz is not None and (isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < 16):
        raise ValueError(f"imgsz must be an int >= 16 or None, got {imgsz!r}")
    if isinstance(weights_or_model, nn.Module):  # its class names come from the dataset
        predictor, size = None, imgsz or 256
        wants = bool(getattr(weights_or_model, "needs_proposals", False))
    else:
        predictor = as_predictor(weights_or_model, device=device)
        size = imgsz or predictor.imgsz
        wants = predictor.needs_proposals
    check_proposals_arg(wants, proposals, weights_or_model)
    dataset = detection_dataset(data, fmt, split, EvalTransform(size), limit, proposals, allow_outside=allow_outside)
    if predictor is None:
        predictor = Predictor(weights_or_model, dataset.class_names, size, device=device)
    check_same_classes(predictor.class_names, dataset, split, data)
    return evaluate_loader(predictor, val_batches(dataset, batch, workers), dataset.class_names,
                           score_threshold=score_threshold, nms_threshold=nms_threshold, topk=topk)
