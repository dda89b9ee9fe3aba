"""Inference with a trained detector: ``pixbox.load(path).predict(images)``.

:func:`load` rebuilds the model from a checkpoint (``best.pt``/``last.pt`` of a training run,
or a model-only file written by :meth:`Predictor.save`) without the dataset: the checkpoint
names the model, its number of classes, the class names and the training image size.

:meth:`Predictor.predict` takes images in any common form, resizes them to the training size
(as training and evaluation do: bilinear with antialiasing on ``uint8`` images, then scaled to
[0, 1]), runs the model's decoding and per-class NMS, and maps the boxes back to the pixels of
each original image. A Fast R-CNN (:class:`pixbox.models.FastRCNN`) also takes region proposals
per image, in the pixels of the original image; without them :meth:`Predictor.predict` runs
selective search (:func:`pixbox.data.proposals.selective_search`, OpenCV contrib).

Example:
    >>> import pixbox
    >>> model = pixbox.load("runs/detect/train/best.pt")  # doctest: +SKIP
    >>> results = model.predict(["a.jpg", "b.png"])  # doctest: +SKIP
    >>> results[0]["boxes"], results[0]["names"]  # doctest: +SKIP
    (tensor([[ 12.0,  30.5, 101.2, 140.0]]), ['banana'])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pixbox._checks import check_number
from pixbox.data.transforms import functional as TF
from pixbox.engine.checkpoint import load_checkpoint, save_checkpoint
from pixbox.engine.trainer import select_device

__all__ = ["MODEL_KEYS", "Predictor", "load", "model_from_checkpoint", "prepare_image"]

#: The keys a checkpoint needs for :func:`load`.
MODEL_KEYS = ("model", "model_name", "num_classes", "class_names", "imgsz")


def prepare_image(image: Tensor, imgsz: int) -> Tensor:
    """Resizes one image to the model's input: ``imgsz x imgsz``, float in [0, 1].

    ``uint8`` images are resized in ``uint8`` (rounded) and then scaled, exactly as the training
    and evaluation pipelines do (``Resize`` then ``ToDtype``); float images are resized as they
    are.

    Args:
        image (Tensor[3, H, W]): ``uint8`` or float in [0, 1].
        imgsz (int): the square side.

    Returns:
        Tensor[3, imgsz, imgsz]: float32 (the input's float dtype for float input).
    """
    out = TF.resize(image, (imgsz, imgsz))
    return TF.to_dtype(out, torch.float32) if out.dtype == torch.uint8 else out


def _as_images(images) -> list[tuple[Tensor, str | None]]:
    """Splits ``images`` into ``(Tensor[3, H, W] uint8 or float, path or None)`` pairs."""
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("images must not be an empty list")
        out = []
        for i, item in enumerate(images):
            if isinstance(item, (list, tuple)):
                raise TypeError(f"images[{i}] must be an image, not a nested {type(item).__name__}")
            out += _as_images(item)
        return out
    if isinstance(images, (str, os.PathLike)):
        from pixbox.data.io import read_image

        return [(read_image(images), str(images))]
    if isinstance(images, Tensor):
        if images.dim() == 4:
            return [pair for img in images for pair in _as_images(img)]
        if images.dim() == 2:
            images = images[None]
        if images.dim() != 3 or images.shape[0] not in (1, 3):
            raise ValueError(f"images must be a Tensor[3, H, W], [1, H, W] or [B, 3, H, W], got shape "
                             f"{tuple(images.shape)}")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise TypeError(f"image tensors must be uint8 (0..255) or float (0..1), got dtype {images.dtype}")
        if images.shape[0] == 1:
            images = images.expand(3, -1, -1)
        return [(images, None)]
    if isinstance(images, np.ndarray):
        array = images
        if array.ndim == 2:
            array = np.repeat(array[:, :, None], 3, axis=2)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ValueError(f"numpy images must be [H, W, 3] (RGB), [H, W, 4] or [H, W], got shape {array.shape}")
        array = array[:, :, :3]
        if not array.flags.writeable:  # e.g. np.asarray(pil_image); torch wants writable memory
            array = array.copy()
        if array.dtype == np.uint8:
            tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)
        elif np.issubdtype(array.dtype, np.floating):
            tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1)
        else:
            raise TypeError(f"numpy images must be uint8 (0..255) or float (0..1), got dtype {array.dtype}")
        return [(tensor, None)]
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        Image = None
    if Image is not None and isinstance(images, Image.Image):
        array = np.asarray(images.convert("RGB"), dtype=np.uint8)
        return [(torch.from_numpy(array.copy()).permute(2, 0, 1), getattr(images, "filename", None) or None)]
    raise TypeError(f"images must be a path, a PIL image, a numpy array, a Tensor or a list of them, "
                    f"got {type(images).__name__}")


class Predictor:
    """A detector ready for inference: the model in eval mode, its class names and input size.

    Args:
        model (nn.Module): a detector with ``predict(images, *, score_threshold, nms_threshold,
            topk)`` returning boxes in input pixels (an :class:`pixbox.models.SSD`).
        class_names (sequence of str): the names of its classes.
        imgsz (int): the square input size the model was trained at, >= 16.
        device (str or torch.device): ``"auto"``, ``"cpu"``, ``"cuda"``, ... (see
            :func:`pixbox.engine.trainer.select_device`).
        score_threshold (float): default minimum score of a detection, in [0, 1].
        nms_threshold (float): default per-class NMS IoU threshold, in [0, 1].
        topk (int): default maximum detections per image, >= 1.
        batch (int): images per forward pass, >= 1.
        model_name (str, optional): the :data:`pixbox.models.MODELS` name, needed by :meth:`save`.

    Attributes:
        path (str | None): the checkpoint it was loaded from (:func:`load`).
        model (nn.Module): the model, in eval mode on ``device``.
        class_names (list[str]): the class names.
        imgsz (int): the input size.
        device (torch.device): where the model runs.
    """

    def __init__(self, model: nn.Module, class_names: Sequence[str], imgsz: int = 256, *,
                 device: str | torch.device = "cpu", score_threshold: float = 0.25, nms_threshold: float = 0.45,
                 topk: int = 100, batch: int = 16, model_name: str | None = None):
        if not isinstance(model, nn.Module) or not callable(getattr(model, "predict", None)):
            raise TypeError(f"model must be an nn.Module with a predict() method (an SSD), got {type(model).__name__}")
        if isinstance(class_names, str) or not isinstance(class_names, Sequence):
            raise TypeError(f"class_names must be a list of str, got {type(class_names).__name__}")
        num = getattr(model, "num_classes", len(class_names))
        if len(class_names) != num:
            raise ValueError(f"class_names must have one name per model class ({num}), got {len(class_names)}")
        if isinstance(imgsz, bool) or not isinstance(imgsz, int) or imgsz < 16:
            raise ValueError(f"imgsz must be an int >= 16, got {imgsz!r}")
        self.device = select_device(device)
        self.model = model.to(self.device).eval()
        self.class_names = [str(c) for c in class_names]
        self.imgsz = imgsz
        self.score_threshold = float(check_number(score_threshold, "score_threshold", low=0, high=1))
        self.nms_threshold = float(check_number(nms_threshold, "nms_threshold", low=0, high=1))
        self.topk = int(check_number(topk, "topk", low=1))
        self.batch = int(check_number(batch, "batch", low=1))
        self.model_name = model_name
        self.path: str | None = None  # the checkpoint file, set by load()

    def __repr__(self) -> str:
        n = len(self.class_names)
        return (f"Predictor({self.model_name or type(self.model).__name__}, {n} class{'' if n == 1 else 'es'}, "
                f"imgsz={self.imgsz}, device={self.device})")

    @property
    def needs_proposals(self) -> bool:
        """bool: whether the model classifies region proposals (Fast R-CNN)."""
        return bool(getattr(self.model, "needs_proposals", False))

    def predict(self, images, *, score_threshold: float | None = None, nms_threshold: float | None = None,
                topk: int | None = None, proposals: Sequence[Tensor] | None = None) -> list[dict[str, Any]]:
        """Detects objects in one image or several.

        Args:
            images: one image or a list of them; each a file path (str or PathLike), a PIL
                image, a numpy array ``[H, W, 3]`` (``uint8``, or float in [0, 1]) or a Tensor
                ``[3, H, W]`` (``uint8``, or float in [0, 1]); a Tensor ``[B, 3, H, W]`` is B
                images. Images may differ in size.
            score_threshold (float, optional): keep detections scoring above this; default the
                predictor's.
            nms_threshold (float, optional): per-class NMS IoU threshold; default the predictor's.
            topk (int, optional): detections kept per image; default the predictor's.
            proposals (list of Tensor[P_i, 4], optional): Fast R-CNN only: the region proposals
                of each image, xyxy pixels of the original image. None runs selective search on
                each image (needs OpenCV contrib: ``pip install opencv-contrib-python-headless``).

        Returns:
            list[dict]: one per image, in order (a list even for one image), with ``boxes``
            (Tensor[K, 4] float32, xyxy pixels of the original image, on the CPU), ``scores``
            (Tensor[K], decreasing), ``labels`` (Tensor[K] int64 in ``[0, C)``), ``names``
            (list[str], the class name of each box), ``size`` (``(H, W)`` of the original image)
            and ``path`` (the file, or None).
        """
        pairs = _as_images(images)
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

    __call__ = predict

    @torch.inference_mode()
    def predict_batch(self, batch: Tensor, sizes: Sequence[tuple[int, int]], *, score_threshold: float | None = None,
                      nms_threshold: float | None = None, topk: int | None = None,
                      proposals: Sequence[Tensor] | None = None) -> list[dict[str, Any]]:
        """The detections of a prepared batch, mapped back to the original image sizes.

        Args:
            batch (Tensor[B, 3, S, S]): float in [0, 1], ``S = imgsz`` (see :func:`prepare_image`).
            sizes (sequence of (int, int)): the ``(H, W)`` of each original image.
            score_threshold, nms_threshold, topk: as in :meth:`predict`.
            proposals (list of B Tensor[P_i, 4], optional): required by a Fast R-CNN: each
                image's region proposals, xyxy pixels of the ORIGINAL image (scaled here to the
                ``S x S`` input).

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

    def save(self, path) -> Path:
        """Writes a model-only file (no optimizer or history) that :func:`load` reads.

        Args:
            path (str or PathLike): the file, e.g. ``model.pt``; written atomically.

        Returns:
            Path: ``path``.
        """
        if self.model_name is None:
            raise ValueError("this Predictor has no model_name, so load() could not rebuild its model; "
                             "pass model_name= (a pixbox.models.MODELS key) when creating it")
        return save_checkpoint({"model": self.model.state_dict(), "model_name": self.model_name,
                                "num_classes": len(self.class_names), "class_names": list(self.class_names),
                                "imgsz": self.imgsz}, path)


def model_from_checkpoint(state: dict[str, Any], path="checkpoint") -> nn.Module:
    """Rebuilds the model a checkpoint describes and loads its weights (strictly).

    Args:
        state (dict): a training checkpoint or a model-only file, with the keys ``model``,
            ``model_name``, ``num_classes``, ``class_names`` and ``imgsz``.
        path: the file name, for error messages.

    Returns:
        nn.Module: on the CPU, in eval mode.
    """
    from pixbox.models import MODELS, build_model

    missing = [k for k in MODEL_KEYS if k not in state]
    if missing:
        raise ValueError(f"{path}: not a pixbox detection checkpoint (it lacks {missing}); expected best.pt or "
                         "last.pt of a pixbox training run, or a file written by Predictor.save()")
    if state["model_name"] not in MODELS:
        raise ValueError(f"{path}: unknown model {state['model_name']!r}; this pixbox knows {list(MODELS)}")
    model = build_model(state["model_name"], int(state["num_classes"]), image_size=int(state["imgsz"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise ValueError(f"{path}: the weights do not fit model {state['model_name']!r}: {e}") from None
    return model.eval()


def load(path, *, device: str | torch.device = "auto", score_threshold: float = 0.25, nms_threshold: float = 0.45,
         topk: int = 100, batch: int = 16):
    """Loads a trained detector (or classifier) for inference.

    A classification checkpoint (``runs/classify/NAME/best.pt``) gives a
    :class:`pixbox.engine.classification.ClassifierPredictor` instead (``device`` and ``batch``
    apply; the detection thresholds are ignored), a segmentation one a
    :class:`pixbox.engine.segmentation.SegmenterPredictor`.

    A ``.onnx`` file written by ``pixbox export`` gives the same predictor classes running the
    file with ONNX Runtime on the CPU (:func:`pixbox.export.load_onnx`; the class names, input
    size, normalization and pre-NMS cap come from the file's metadata, the thresholds from the
    arguments here, as for a ``.pt``).

    Args:
        path (str or PathLike): ``best.pt`` or ``last.pt`` of a training run
            (``runs/detect/NAME/best.pt``), a file written by :meth:`Predictor.save`, or a
            ``.onnx`` export.
        device (str or torch.device): ``"auto"`` (CUDA, MPS, CPU), ``"cpu"``, ``"cuda:0"``, ...
        score_threshold (float): default minimum detection score, in [0, 1].
        nms_threshold (float): default NMS IoU threshold, in [0, 1].
        topk (int): default maximum detections per image.
        batch (int): images per forward pass.

    Returns:
        Predictor: call ``.predict(images)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a pixbox detection checkpoint.
    """
    if Path(path).suffix.lower() == ".onnx":
        from pixbox.export import load_onnx

        return load_onnx(path, device=device, score_threshold=score_threshold, nms_threshold=nms_threshold,
                         topk=topk, batch=batch)
    state = load_checkpoint(path, map_location="cpu")
    if isinstance(state, dict) and state.get("task") == "classify":
        from pixbox.engine.classification import load_classifier

        return load_classifier(path, device=device, batch=batch, state=state)
    if isinstance(state, dict) and state.get("task") == "segment":
        from pixbox.engine.segmentation import load_segmenter

        return load_segmenter(path, device=device, state=state)
    model = model_from_checkpoint(state, path)
    predictor = Predictor(model, list(state["class_names"]), int(state["imgsz"]), device=device,
                          score_threshold=score_threshold, nms_threshold=nms_threshold, topk=topk, batch=batch,
                          model_name=state["model_name"])
    predictor.path = str(path)
    return predictor
