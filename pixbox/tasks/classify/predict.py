"""Inference with a trained classifier: :class:`ClassifierPredictor`, :func:`load_classifier`,
:func:`evaluate_classifier` (``pixbox classify val``) and :func:`predict_classifier` (``pixbox classify predict``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from pixbox._checks import check_choice, check_number
from pixbox._files import atomic_open, check_outputs
from pixbox.data.io import find_images
from pixbox.data.inputs import as_images
from pixbox.tasks._common import BasePredictor, check_eval_args, check_same_classes, model_from_state
from pixbox.tasks._common import as_predictor as as_predictor_
from pixbox.tasks.classify.config import CLASSIFY_FORMATS
from pixbox.tasks.classify.data import classification_dataset, classify_transforms, loader

__all__ = ["ClassifierPredictor", "MODEL_KEYS", "evaluate_classifier", "evaluate_loader", "load_classifier",
           "predict_classifier"]

#: The keys a classification checkpoint needs for :func:`load_classifier`.
MODEL_KEYS: tuple[str, ...] = ("model", "model_name", "num_classes", "class_names", "imgsz", "mean", "std")


@torch.inference_mode()
def evaluate_loader(model: nn.Module, loader, class_names: Sequence[str], device: torch.device) -> dict[str, Any]:
    from pixbox.metrics.classification import ClassificationEvaluator
    evaluator = ClassificationEvaluator(list(class_names))
    model.eval()
    for images, labels in loader:
        logits = model(images.to(device)).float()
        evaluator.update(logits.cpu(), labels)
    return evaluator.compute()


class ClassifierPredictor(BasePredictor):
    """A classifier ready for inference: the model in eval mode, its classes and preprocessing.

    Args:
        model (nn.Module), class_names (sequence of str): the model returns logits ``[B, C]``; one name per output.
        imgsz (int), crop_pct (float): images are resized to ``imgsz / crop_pct`` (shorter side) and centre-cropped to
            ``imgsz``; ``imgsz`` >= 16, ``crop_pct`` in (0, 1].
        mean, std (sequence of 3 float): input normalization of [0, 1] RGB.
        device (str or torch.device), batch (int): where the model runs, and images per forward pass (>= 1).
        model_name (str, optional): the :data:`~pixbox.models.backbones.BACKBONES` name, needed by :meth:`save`.
    """
    #: The task of the model (:data:`pixbox.tasks.TASKS`).
    task = "classify"

    def __init__(self, model: nn.Module, class_names: Sequence[str], imgsz: int = 224, *,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225),
                 crop_pct: float = 0.875, device: str | torch.device = "cpu", batch: int = 32,
                 model_name: str | None = None):
        super().__init__(model, class_names, imgsz, device, model_name)
        self.crop_pct = float(check_number(crop_pct, "crop_pct", low=0, high=1, low_open=True))
        self.mean, self.std = [float(v) for v in mean], [float(v) for v in std]
        self.batch = int(check_number(batch, "batch", low=1))
        self._transform = classify_transforms("eval", imgsz, self.mean, self.std, crop_pct=self.crop_pct)

    def prepare(self, image: Tensor) -> Tensor:
        """One image (``uint8`` or float in [0, 1], ``[3, H, W]``) as the model's normalized input."""
        if image.is_floating_point():
            image = (image.clamp(0, 1) * 255).round().to(torch.uint8)
        return self._transform(image)

    @torch.inference_mode()
    def predict(self, images, *, topk: int = 5) -> list[dict[str, Any]]:
        """The most likely classes of one image or several.

        Args:
            images: a path, PIL image, numpy array ``[H, W, 3]``, Tensor ``[3, H, W]`` (``uint8`` or float in [0, 1])
                or ``[B, 3, H, W]``, or a list of them.
            topk (int): how many classes to list per image (at most the class count), >= 1.

        Returns:
            list[dict]: one per image: ``label`` (int), ``name``, ``score`` (softmax probability of the top class),
            ``topk`` (list of ``{"label", "name", "score"}``, most likely first) and ``path`` (the file, or None).
        """
        k = min(int(check_number(topk, "topk", low=1)), len(self.class_names))
        pairs = as_images(images)
        out = []
        for start in range(0, len(pairs), self.batch):
            chunk = pairs[start:start + self.batch]
            batch = torch.stack([self.prepare(img) for img, _ in chunk]).to(self.device)
            probs = self.model(batch).float().softmax(1).cpu()
            scores, labels = probs.topk(k, dim=1)
            for (_, path), s, c in zip(chunk, scores.tolist(), labels.tolist()):
                top = [{"label": int(ci), "name": self.class_names[ci], "score": float(si)} for si, ci in zip(s, c)]
                out.append({"label": top[0]["label"], "name": top[0]["name"], "score": top[0]["score"], "topk": top,
                            "path": path})
        return out

    def save_extra(self) -> dict:
        return {"imgsz": self.imgsz, "mean": self.mean, "std": self.std, "crop_pct": self.crop_pct}


def load_classifier(state: dict[str, Any], *, path=None, device: str | torch.device = "auto", batch: int = 32,
                    **ignored) -> ClassifierPredictor:
    """A :class:`ClassifierPredictor` from a classification checkpoint's state (``best.pt``, ``last.pt`` or a
    :meth:`ClassifierPredictor.save` file; :func:`pixbox.tasks.load` reads the file and dispatches here).

    Args:
        state (dict), path (str or PathLike, optional): the checkpoint and its file (for messages and ``.path``).
        device, batch: as in :class:`ClassifierPredictor`.
        **ignored: detection options (thresholds) that :func:`pixbox.load` may pass.

    Returns:
        ClassifierPredictor

    Raises:
        ValueError: the state is not a pixbox classification checkpoint.
    """
    from pixbox.models.backbones import BACKBONES
    model = model_from_state(state, path, keys=MODEL_KEYS, models=BACKBONES,
                             build=lambda s: BACKBONES[s["model_name"]](int(s["num_classes"])),
                             expected="classification checkpoint; expected best.pt or last.pt of a `pixbox "
                                      "classify train` run")
    predictor = ClassifierPredictor(model, list(state["class_names"]), int(state["imgsz"]), mean=state["mean"],
                                    std=state["std"], crop_pct=float(state.get("crop_pct", 0.875)), device=device,
                                    batch=batch, model_name=state["model_name"])
    predictor.path = None if path is None else str(path)
    return predictor


def _as_predictor(weights, *, device, batch: int = 32) -> ClassifierPredictor:
    return as_predictor_(weights, ClassifierPredictor, "classify", load_classifier, device=device, batch=batch)


def evaluate_classifier(weights, data, *, fmt: str = "auto", split: str = "val", batch: int = 32,
                        device: str = "auto", workers: int = 0, limit: int | None = None,
                        allow_outside: bool = False) -> dict[str, Any]:
    """Accuracy, top-5, per-class precision/recall/F1 and the confusion matrix on one split.

    Args:
        weights (str, PathLike or ClassifierPredictor): a checkpoint (``best.pt``) or a loaded predictor (whose
            preprocessing is used).
        data (str or PathLike), fmt (str), split (str): the dataset folder, its format (``"auto"``, ``"folder"`` or
            ``"csv"``) and the split to evaluate.
        batch (int), device (str): images per forward pass (>= 1); ``"auto"``, ``"cpu"``, ``"cuda:0"``, ...
        workers (int), limit (int, optional): data loading processes (>= 0); evaluate a fixed random subset of this
            many images.
        allow_outside (bool): read image paths that lead outside ``data`` (``../``, absolute paths).

    Returns:
        dict: :meth:`pixbox.metrics.classification.ClassificationEvaluator.compute`'s metrics.

    Raises:
        ValueError: the split's classes differ from the model's.
    """
    batch, workers, limit = check_eval_args(data, batch, workers, limit)
    check_choice(fmt, "fmt", CLASSIFY_FORMATS)
    predictor = _as_predictor(weights, device=device, batch=batch)
    dataset = classification_dataset(data, fmt, split, predictor.prepare, limit, allow_outside=allow_outside)
    check_same_classes(predictor.class_names, dataset, split, data)
    return evaluate_loader(predictor.model, loader(dataset, batch, workers), dataset.class_names, predictor.device)


def predict_classifier(weights, sources, *, topk: int = 5, out=None, device: str = "auto",
                       batch: int = 32) -> list[dict[str, Any]]:
    """The top-k classes of image files, optionally written to ``<out>/predictions.json``.

    Args:
        weights (str, PathLike or ClassifierPredictor): a checkpoint or a loaded predictor.
        sources: image files, folders or glob patterns (see :func:`pixbox.engine.runs.find_images`).
        topk (int): classes listed per image, >= 1.
        out (str or PathLike, optional): folder for ``predictions.json`` (``{"weights", "class_names", "images":
            [{"path", "label", "name", "score", "topk"}]}``).
        device (str), batch (int): as in :func:`evaluate_classifier`.

    Returns:
        list[dict]: :meth:`ClassifierPredictor.predict`'s results, one per image.
    """
    from pixbox.data.io import read_image
    predictor = _as_predictor(weights, device=device, batch=batch)
    paths = find_images(sources)
    if out is not None:
        check_outputs(out, [], paths)
    results = []
    for start in range(0, len(paths), predictor.batch):
        chunk = paths[start:start + predictor.batch]
        for path, result in zip(chunk, predictor.predict([read_image(p) for p in chunk], topk=topk)):
            result["path"] = str(path)
            results.append(result)
    if out is not None:
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        doc = {"weights": predictor.path, "class_names": predictor.class_names,
               "images": [{k: r[k] for k in ("path", "label", "name", "score", "topk")} for r in results]}
        with atomic_open(out_dir / "predictions.json", "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return results
