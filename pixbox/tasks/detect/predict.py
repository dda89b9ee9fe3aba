"""Inference with a trained detector: ``pixbox.load(path).predict(images)``.

:func:`load_detector` rebuilds the model from a checkpoint (``best.pt``/``last.pt`` of a training run, or a
model-only file written by :meth:`Predictor.save`) without the dataset: the checkpoint names the model, its number of
classes, the class names and the training image size. :meth:`Predictor.predict` resizes images to the training size
(as training and evaluation do: bilinear with antialiasing on ``uint8`` images, then scaled to [0, 1]), runs the
model's decoding and per-class NMS, and maps the boxes back to the pixels of each original image; a Fast R-CNN
(:class:`pixbox.models.FastRCNN`) also takes region proposals.

Example:
    >>> import pixbox
    >>> model = pixbox.load("runs/detect/train/best.pt")  # doctest: +SKIP
    >>> results = model.predict(["a.jpg", "b.png"])  # doctest: +SKIP
    >>> results[0]["boxes"], results[0]["names"]  # doctest: +SKIP
    (tensor([[ 12.0,  30.5, 101.2, 140.0]]), ['banana'])
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from pixbox._checks import check_number
from pixbox._files import atomic_open, check_outputs
from pixbox.data.io import find_images, output_names
from pixbox.data.inputs import as_images
from pixbox.tasks._common import BasePredictor, model_from_state
from pixbox.tasks._common import as_predictor as as_predictor_
from pixbox.tasks.detect.data import prepare_image

__all__ = ["MODEL_KEYS", "Predictor", "load_detector", "model_from_checkpoint", "predict_detector"]

#: The keys a checkpoint needs for :func:`load`.
MODEL_KEYS = ("model", "model_name", "num_classes", "class_names", "imgsz")


class Predictor(BasePredictor):
    """A detector ready for inference. The arguments are kept as attributes (``device`` as a torch.device, ``model``
    in eval mode on it), plus ``path`` (str | None): the checkpoint it was loaded from (:func:`load`).

    Args:
        model (nn.Module): a detector with ``predict(images, *, score_threshold, nms_threshold, topk)`` returning
            boxes in input pixels (an :class:`pixbox.models.SSD`).
        class_names (sequence of str): the names of its classes.
        imgsz (int): the square input size the model was trained at, >= 16.
        device (str or torch.device): ``"auto"`` (CUDA, MPS or CPU), ``"cpu"``, ``"cuda:0"``, ... (see
            :func:`pixbox.engine.device.select_device`).
        score_threshold, nms_threshold (float): default minimum detection score and per-class NMS IoU threshold,
            in [0, 1].
        topk, batch (int): default maximum detections per image, and images per forward pass; >= 1.
        model_name (str, optional): the :data:`pixbox.models.MODELS` name, needed by :meth:`save`.
    """
    #: The task of the model (:data:`pixbox.tasks.TASKS`).
    task = "detect"

    def __init__(self, model: nn.Module, class_names: Sequence[str], imgsz: int = 256, *,
                 device: str | torch.device = "cpu", score_threshold: float = 0.25, nms_threshold: float = 0.45,
                 topk: int = 100, batch: int = 16, model_name: str | None = None):
        if not isinstance(model, nn.Module) or not callable(getattr(model, "predict", None)):
            raise TypeError(f"model must be an nn.Module with a predict() method (an SSD), got {type(model).__name__}")
        super().__init__(model, class_names, imgsz, device, model_name)
        self.score_threshold = float(check_number(score_threshold, "score_threshold", low=0, high=1))
        self.nms_threshold = float(check_number(nms_threshold, "nms_threshold", low=0, high=1))
        self.topk = int(check_number(topk, "topk", low=1))
        self.batch = int(check_number(batch, "batch", low=1))

    @property
    def needs_proposals(self) -> bool:
        """bool: whether the model classifies region proposals (Fast R-CNN)."""
        return bool(getattr(self.model, "needs_proposals", False))

    def predict(self, images, *, score_threshold: float | None = None, nms_threshold: float | None = None,
                topk: int | None = None, proposals: Sequence[Tensor] | None = None) -> list[dict[str, Any]]:
        """Detects objects in one image or several.

        Args:
            images: one image or a list of them, of any sizes: a path, PIL image, numpy array ``[H, W, 3]`` or Tensor
                ``[3, H, W]`` (``uint8``, or float in [0, 1]); a Tensor ``[B, 3, H, W]`` is B images.
            score_threshold, nms_threshold, topk (optional): override the predictor's defaults.
            proposals (list of Tensor[P_i, 4], optional): Fast R-CNN only: each image's region proposals, xyxy pixels
                of the original image. None runs selective search (:func:`pixbox.data.proposals.selective_search`;
                needs OpenCV contrib: ``pip install opencv-contrib-python-headless``).

        Returns:
            list[dict]: one per image, in order (a list even for one image): ``boxes`` (Tensor[K, 4] float32, xyxy
            pixels of the original image, on the CPU), ``scores`` (Tensor[K], decreasing), ``labels`` (Tensor[K]
            int64 in ``[0, C)``), ``names`` (list[str], per box), ``size`` (``(H, W)`` of the original image) and
            ``path`` (the file, or None).
        """
        pairs = as_images(images)
        if proposals is not None:
            if not self.needs_proposals:
                raise ValueError(f"proposals are for Fast R-CNN models; {self!r} does not take them")
            if not isinstance(proposals, (list, tuple)) or len(proposals) != len(pairs):
                got = f"{len(proposals)} entries" if isinstance(proposals, (list, tuple)) else type(proposals).__name__
                raise ValueError(f"proposals must be a list of one Tensor[P, 4] per image ({len(pairs)}), got {got}")
        elif self.needs_proposals:
            from pixbox.data.proposals import selective_search
            try:
                proposals = [selective_search(img) for img, _ in pairs]
            except ImportError as e:
                raise ImportError(f"{self!r} is a Fast R-CNN: it needs region proposals; pass proposals= (a "
                                  f"proposals file on the command line: --proposals FILE), or install OpenCV "
                                  f"contrib to compute them with selective search. {e}") from None
        results = []
        for start in range(0, len(pairs), self.batch):
            chunk = pairs[start:start + self.batch]
            sizes = [(int(img.shape[1]), int(img.shape[2])) for img, _ in chunk]
            batch = torch.stack([prepare_image(img.to(self.device), self.imgsz).to(torch.float32) for img, _ in chunk])
            dets = self.predict_batch(batch, sizes, score_threshold=score_threshold, nms_threshold=nms_threshold,
                                      topk=topk,
                                      proposals=None if proposals is None else proposals[start:start + self.batch])
            for det, (_, path) in zip(dets, chunk):
                det["path"] = path
                results.append(det)
        return results

    @torch.inference_mode()
    def predict_batch(self, batch: Tensor, sizes: Sequence[tuple[int, int]], *, score_threshold: float | None = None,
                      nms_threshold: float | None = None, topk: int | None = None,
                      proposals: Sequence[Tensor] | None = None) -> list[dict[str, Any]]:
        """The detections of a prepared batch, mapped back to the original image sizes.

        Args:
            batch (Tensor[B, 3, S, S]): float in [0, 1], ``S = imgsz`` (see :func:`prepare_image`).
            sizes (sequence of (int, int)): the ``(H, W)`` of each original image.
            score_threshold, nms_threshold, topk, proposals: as in :meth:`predict`; a Fast R-CNN requires
                ``proposals`` (in original-image pixels, scaled here to the ``S x S`` input).

        Returns:
            list[dict]: as :meth:`predict` (without ``path``).
        """
        if len(sizes) != len(batch):
            raise ValueError(f"sizes must have one (H, W) per image ({len(batch)}), got {len(sizes)}")
        st = self.score_threshold if score_threshold is None else score_threshold
        nt = self.nms_threshold if nms_threshold is None else nms_threshold
        k = self.topk if topk is None else topk
        s_h, s_w = batch.shape[-2:]
        if self.needs_proposals:
            if proposals is None or len(proposals) != len(batch):
                got = "None" if proposals is None else f"{len(proposals)} entries"
                raise ValueError(f"{self!r} is a Fast R-CNN: predict_batch needs proposals, one Tensor[P, 4] per "
                                 f"image ({len(batch)}), got {got}")
            scaled = []
            for p, (h, w) in zip(proposals, sizes):
                p = torch.as_tensor(p, dtype=torch.float32).reshape(-1, 4).to(self.device)
                scaled.append(p * p.new_tensor([s_w / w, s_h / h, s_w / w, s_h / h]))
            dets = self.model.predict(batch.to(self.device), scaled, score_threshold=st, nms_threshold=nt, topk=k)
        elif proposals is not None:
            raise ValueError(f"proposals are for Fast R-CNN models; {self!r} does not take them")
        else:
            dets = self.model.predict(batch.to(self.device), score_threshold=st, nms_threshold=nt, topk=k)
        out = []
        for det, (h, w) in zip(dets, sizes):
            boxes = det["boxes"].float()
            if (h, w) != (s_h, s_w):
                scale = boxes.new_tensor([w / s_w, h / s_h, w / s_w, h / s_h])
                boxes = boxes * scale
            labels = det["labels"].cpu()
            out.append({"boxes": boxes.cpu(), "scores": det["scores"].float().cpu(), "labels": labels,
                        "names": [self.class_names[i] for i in labels.tolist()], "size": (h, w)})
        return out

    def save_extra(self) -> dict:
        return {"imgsz": self.imgsz}


def model_from_checkpoint(state: dict[str, Any], path="checkpoint") -> nn.Module:
    """Rebuilds the model a checkpoint describes and loads its weights (strictly).

    Args:
        state (dict): a training checkpoint or a model-only file, with the keys :data:`MODEL_KEYS`.
        path: the file name, for error messages.

    Returns:
        nn.Module: on the CPU, in eval mode.
    """
    from pixbox.models import MODELS, build_model
    return model_from_state(
        state, path, keys=MODEL_KEYS, models=MODELS,
        build=lambda s: build_model(s["model_name"], int(s["num_classes"]), image_size=int(s["imgsz"])),
        expected="detection checkpoint; expected best.pt or last.pt of a pixbox training run, or a file written "
                 "by Predictor.save()").eval()


def load_detector(state: dict[str, Any], *, path=None, device: str | torch.device = "auto",
                  score_threshold: float = 0.25, nms_threshold: float = 0.45, topk: int = 100,
                  batch: int = 16) -> Predictor:
    """A :class:`Predictor` from a detection checkpoint's state (``best.pt``, ``last.pt`` or a :meth:`Predictor.save`
    file; :func:`pixbox.tasks.load` reads the file and dispatches here).

    Args:
        state (dict), path (str or PathLike, optional): the checkpoint and its file (for messages and ``.path``).
        device, score_threshold, nms_threshold, topk, batch: as in :class:`Predictor`.

    Returns:
        Predictor: call ``.predict(images)``.

    Raises:
        ValueError: the state is not a pixbox detection checkpoint.
    """
    model = model_from_checkpoint(state, path or "checkpoint")
    predictor = Predictor(model, list(state["class_names"]), int(state["imgsz"]), device=device,
                          score_threshold=score_threshold, nms_threshold=nms_threshold, topk=topk, batch=batch,
                          model_name=state["model_name"])
    predictor.path = None if path is None else str(path)
    return predictor


def as_predictor(weights, *, device, batch: int = 16) -> Predictor:
    return as_predictor_(weights, Predictor, "detect", load_detector, device=device, batch=batch)


def check_proposals_arg(wants: bool, proposals, what) -> None:
    name = what if isinstance(what, (str, os.PathLike)) else type(what).__name__
    if wants and proposals is None:
        raise ValueError(f"{name} is a Fast R-CNN: it needs region proposals of the images; pass --proposals FILE "
                         "(proposals=), a file made with `pixbox detect proposals --data DIR -o FILE`")
    if not wants and proposals is not None:
        raise ValueError(f"{name} does not take region proposals (only fast_rcnn_* models do); drop --proposals")


def predict_detector(weights, sources, *, out=None, score_threshold: float = 0.25, nms_threshold: float = 0.45,
                     topk: int = 100, device: str = "auto", batch: int = 16, proposals=None) -> list[dict[str, Any]]:
    """Detects objects in image files and writes the drawn images and a JSON of the detections.

    Args:
        weights (str, PathLike or Predictor): a checkpoint (``best.pt``) or a loaded predictor.
        sources: image files, folders or glob patterns (see :func:`find_images`).
        out (str or PathLike, optional): output folder, created when missing; None writes nothing. It gets
            ``<stem>.png`` per image (boxes drawn with class names and scores) and ``predictions.json``:
            ``{"weights", "class_names", "score_threshold", "nms_threshold", "images": [{"path", "output", "width",
            "height", "detections": [{"box": [x1, y1, x2, y2], "score", "label", "name"}]}]}`` (original pixels).
        score_threshold, nms_threshold, topk, device, batch: as in :class:`Predictor`.
        proposals (str, PathLike or dict, optional): Fast R-CNN only: a region proposals file, where each image is
            found by the end of its path (e.g. ``images/val/a.png`` or ``a.png``; see
            :func:`pixbox.data.proposals.proposals_for`); None runs selective search as :meth:`Predictor.predict`.

    Returns:
        list[dict]: :meth:`~pixbox.tasks.detect.Predictor.predict`'s results, one per image.
    """
    from pixbox.data.io import read_image
    from pixbox.viz import draw_boxes, save_image
    predictor = as_predictor(weights, device=device, batch=batch)
    paths = find_images(sources)
    table = None
    if proposals is not None:
        from pixbox.data.proposals import proposals_for
        if not predictor.needs_proposals:
            check_proposals_arg(False, proposals, weights)
        table = proposals_for(paths, proposals)  # fails on a missing image before any work
    results, records = [], []
    names = output_names(paths)
    out_dir = None if out is None else check_outputs(out, names, paths)
    for start in range(0, len(paths), predictor.batch):
        chunk = paths[start:start + predictor.batch]
        images = [read_image(p) for p in chunk]
        dets = predictor.predict(images, score_threshold=score_threshold, nms_threshold=nms_threshold, topk=topk,
                                 proposals=None if table is None else table[start:start + predictor.batch])
        for k, (path, image, det) in enumerate(zip(chunk, images, dets)):
            det["path"] = str(path)
            results.append(det)
            name = names[start + k]
            if out_dir is not None:
                drawn = draw_boxes(image, det["boxes"], det["names"], det["scores"])
                save_image(drawn, out_dir / name)
            records.append({
                "path": str(path), "output": name if out_dir is not None else None,
                "width": det["size"][1], "height": det["size"][0],
                "detections": [{"box": [round(float(v), 2) for v in box], "score": round(float(s), 5), "label": int(c),
                                "name": n}
                               for box, s, c, n in zip(det["boxes"].tolist(), det["scores"].tolist(),
                                                       det["labels"].tolist(), det["names"])],
            })
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        doc = {"weights": predictor.path,
               "class_names": predictor.class_names, "score_threshold": score_threshold,
               "nms_threshold": nms_threshold, "images": records}
        with atomic_open(out_dir / "predictions.json", "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return results
