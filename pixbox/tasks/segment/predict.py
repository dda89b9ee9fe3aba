"""Inference with a trained FCN: :class:`SegmenterPredictor`, :func:`load_segmenter`, :func:`evaluate_segmenter`
(``pixbox segment val``) and :func:`predict_segmenter` (``pixbox segment predict``)."""

from __future__ import annotations

import json
from typing import Any, Sequence

import torch
from torch import nn

from pixbox._checks import check_number
from pixbox._files import atomic_open, check_outputs
from pixbox.data.transforms import functional as TF
from pixbox.data.io import find_images, output_names
from pixbox.data.inputs import as_images
from pixbox.tasks._common import BasePredictor, check_eval_args, check_same_classes, model_from_state
from pixbox.tasks._common import as_predictor as as_predictor_
from pixbox.tasks.segment.data import IGNORE_INDEX, collate_padded, loader, segment_transforms, segmentation_dataset

__all__ = ["MODEL_KEYS", "SegmenterPredictor", "evaluate_loader", "evaluate_segmenter", "load_segmenter",
           "predict_segmenter"]

#: The keys a segmentation checkpoint needs for :func:`load_segmenter`.
MODEL_KEYS: tuple[str, ...] = ("model", "model_name", "num_classes", "class_names")


@torch.inference_mode()
def evaluate_loader(model: nn.Module, loader, class_names: Sequence[str], device: torch.device) -> dict[str, Any]:
    from pixbox.metrics.segmentation import SegmentationEvaluator
    evaluator = SegmentationEvaluator(list(class_names), ignore_index=IGNORE_INDEX)
    model.eval()
    for images, masks in loader:
        logits = model(images.to(device))
        evaluator.update(logits.argmax(1).cpu(), masks)
    return evaluator.compute()


class SegmenterPredictor(BasePredictor):
    """A trained FCN ready for inference on images of any size.

    Args:
        model (nn.Module): takes float images ``[B, 3, H, W]`` in [0, 1] and returns logits ``[B, C, H, W]`` (a
            :class:`pixbox.models.fcn.FCN`).
        class_names (sequence of str): background first.
        device (str or torch.device): where the model runs.
        model_name (str, optional): the :data:`~pixbox.models.fcn.SEGMENTATION_MODELS` name, needed by :meth:`save`.
    """
    #: The task of the model (:data:`pixbox.tasks.TASKS`).
    task = "segment"

    def __init__(self, model: nn.Module, class_names: Sequence[str], *, device: str | torch.device = "cpu",
                 model_name: str | None = None):
        # channels-last: the same float32 results, about 1.4x faster convolutions on CPU
        super().__init__(model, class_names, None, device, model_name, memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, images) -> list[dict[str, Any]]:
        """The label map of one image or several (any sizes; one forward pass per image).

        Args:
            images: a path, PIL image, numpy array ``[H, W, 3]``, Tensor ``[3, H, W]`` (``uint8`` or float in [0, 1])
                or ``[B, 3, H, W]``, or a list of them.

        Returns:
            list[dict]: per image ``mask`` (Tensor[H, W] int64 class indices, CPU), ``scores`` (Tensor[H, W], the
            softmax probability of the chosen class), ``size`` and ``path``.
        """
        out = []
        for image, path in as_images(images):
            x = TF.to_dtype(image, torch.float32) if image.dtype == torch.uint8 else image.float()
            probs = self.model(x[None].to(self.device)).float().softmax(1)[0]
            scores, mask = probs.max(0)
            out.append({"mask": mask.cpu(), "scores": scores.cpu(), "size": tuple(mask.shape), "path": path})
        return out

def load_segmenter(state: dict[str, Any], *, path=None, device: str | torch.device = "auto",
                   **ignored) -> SegmenterPredictor:
    """A :class:`SegmenterPredictor` from a segmentation checkpoint's state (``best.pt``, ``last.pt`` or a
    :meth:`SegmenterPredictor.save` file; :func:`pixbox.tasks.load` reads the file and dispatches here).
    ``ignored``: options of other tasks that :func:`pixbox.load` may pass.

    Raises:
        ValueError: not a pixbox segmentation checkpoint.
    """
    from pixbox.models.fcn import SEGMENTATION_MODELS
    model = model_from_state(state, path, keys=MODEL_KEYS, models=SEGMENTATION_MODELS,
                             build=lambda s: SEGMENTATION_MODELS[s["model_name"]](int(s["num_classes"])),
                             expected="segmentation checkpoint; expected best.pt or last.pt of a `pixbox "
                                      "segment train` run")
    predictor = SegmenterPredictor(model, list(state["class_names"]), device=device, model_name=state["model_name"])
    predictor.path = None if path is None else str(path)
    return predictor


def _as_predictor(weights, *, device) -> SegmenterPredictor:
    return as_predictor_(weights, SegmenterPredictor, "segment", load_segmenter, device=device)


def evaluate_segmenter(weights, data, *, split: str = "val", batch: int = 1, device: str = "auto",
                       workers: int = 0, limit: int | None = None) -> dict[str, Any]:
    """Pixel accuracy, mean class accuracy, per-class IoU and mIoU on one split, on whole images.

    Args:
        weights (str, PathLike or SegmenterPredictor): a checkpoint or a loaded predictor.
        data (str or PathLike), split (str): the VOC-format dataset folder and the split to evaluate.
        batch (int): images per forward pass, >= 1; images of different sizes are padded to the largest (with
            ignored mask pixels).
        device (str), workers (int): ``"auto"``, ``"cpu"``, ``"cuda:0"``, ...; data loading processes.
        limit (int, optional): a fixed random subset of this many images.

    Returns:
        dict: :meth:`pixbox.metrics.segmentation.SegmentationEvaluator.compute`'s metrics.
    """
    batch, workers, limit = check_eval_args(data, batch, workers, limit)
    predictor = _as_predictor(weights, device=device)
    dataset = segmentation_dataset(data, split, segment_transforms("eval", None), limit)
    check_same_classes(predictor.class_names, dataset, split, data)
    return evaluate_loader(predictor.model, loader(dataset, batch, workers, collate_fn=collate_padded),
                           dataset.class_names, predictor.device)


def predict_segmenter(weights, sources, *, out=None, device: str = "auto", alpha: float = 0.5
                      ) -> list[dict[str, Any]]:
    """Segments image files; with ``out``, writes per image ``<stem>.png`` (the label map as a VOC palette PNG,
    readable by :func:`pixbox.data.io.read_mask`) and ``<stem>_overlay.png`` (the classes painted over the image),
    plus ``predictions.json`` (per image the pixel count of each class).

    Args:
        weights (str, PathLike or SegmenterPredictor): a checkpoint or a loaded predictor.
        sources: image files, folders or globs (see :func:`pixbox.engine.runs.find_images`).
        out (str or PathLike, optional): the output folder (created).
        device (str), alpha (float): ``"auto"``, ``"cpu"``, ...; overlay opacity, in [0, 1].

    Returns:
        list[dict]: :meth:`SegmenterPredictor.predict`'s results.
    """
    from pixbox.data.io import read_image, write_mask
    from pixbox.viz import draw_masks, save_image
    check_number(alpha, "alpha", low=0, high=1)
    predictor = _as_predictor(weights, device=device)
    paths = find_images(sources)
    names = output_names(paths)
    out_dir = None if out is None else check_outputs(
        out, [f"{n[:-4]}{end}" for n in names for end in (".png", "_overlay.png")], paths)
    results, records = [], []
    for path, name in zip(paths, names):
        image = read_image(path)
        result = predictor.predict(image)[0]
        result["path"] = str(path)
        results.append(result)
        mask = result["mask"]
        counts = torch.bincount(mask.flatten(), minlength=len(predictor.class_names))
        record = {"path": str(path), "width": int(mask.shape[1]), "height": int(mask.shape[0]),
                  "pixels": {predictor.class_names[c]: int(n) for c, n in enumerate(counts.tolist()) if n}}
        if out_dir is not None:
            stem = name[:-4]
            write_mask(mask.to(torch.uint8), out_dir / f"{stem}.png")
            save_image(draw_masks(image, mask, alpha=alpha), out_dir / f"{stem}_overlay.png")
            record.update(mask=f"{stem}.png", overlay=f"{stem}_overlay.png")
        records.append(record)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        doc = {"weights": predictor.path, "class_names": predictor.class_names, "images": records}
        with atomic_open(out_dir / "predictions.json", "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return results
