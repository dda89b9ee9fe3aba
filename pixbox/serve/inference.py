"""What the web app runs, without the web: decode an upload, run a model, make JSON-ready results.

Nothing here imports the ASGI stack, so it is tested (and usable) on its own.

Detection results carry two lists. ``detections`` are the final boxes at the requested
``conf``/``iou`` thresholds; ``candidates`` (on request) are every box above
:data:`CANDIDATE_FLOOR` before NMS, so that the page's sliders can rerun the post-processing
(:func:`postprocess`, mirrored in the page's script) without running the network again.
"""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from pixbox._checks import check_number

__all__ = ["CANDIDATE_FLOOR", "MAX_CANDIDATES", "ImageError", "ServedModel", "decode_image", "load_models",
           "postprocess"]

#: The lowest confidence threshold the page offers: candidates are the boxes scoring above it.
CANDIDATE_FLOOR = 0.05
#: At most this many candidate boxes per image are kept (the highest scoring).
MAX_CANDIDATES = 1000


class ImageError(ValueError):
    """An upload that is not a usable image; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, *, max_pixels: int = 25_000_000) -> np.ndarray:
    """Decodes uploaded bytes into an RGB array, turned upright by its EXIF orientation.

    Args:
        data (bytes): the file's content (PNG, JPEG, BMP, GIF, WebP, ... anything Pillow reads).
        max_pixels (int): refuse larger images (decompression bombs), >= 1.

    Returns:
        np.ndarray[H, W, 3]: ``uint8`` RGB.

    Raises:
        ImageError: empty, not an image, corrupt or truncated (status 400), or more than
            ``max_pixels`` pixels (status 413).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    max_pixels = int(check_number(max_pixels, "max_pixels", low=1))
    if len(data) == 0:
        raise ImageError("the upload is empty: choose an image file (PNG, JPEG, ...)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            w, h = image.size
            if w * h > max_pixels:
                raise ImageError(f"the image is {w}x{h} = {w * h} pixels; this server accepts at most {max_pixels}",
                                 status=413)
            image = ImageOps.exif_transpose(image)
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("the upload is not an image this server can read (PNG, JPEG, BMP, GIF, WebP, ...)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageError(f"the image is corrupt or truncated: {e}") from None
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"the image has no pixels (shape {array.shape})")
    return np.ascontiguousarray(array)


def postprocess(candidates: Sequence[dict[str, Any]], conf: float, iou: float, topk: int = 100) -> list[dict]:
    """Confidence filter, per-class NMS and top-k on detection candidates (what the sliders rerun).

    The same steps as :func:`pixbox.ops.decode_detections` after decoding: keep scores
    ``> conf``, suppress a box whose IoU with a kept, higher-scoring box of its class is ``> iou``,
    keep the ``topk`` best.

    Args:
        candidates (sequence of dict): each with ``box`` (xyxy, 4 floats), ``score`` and
            ``label`` (int).
        conf (float): confidence threshold, in [0, 1].
        iou (float): NMS IoU threshold, in [0, 1].
        topk (int): detections kept, >= 1.

    Returns:
        list[dict]: the kept candidates, by decreasing score.
    """
    from pixbox.ops import batched_nms

    conf = float(check_number(conf, "conf", low=0, high=1))
    iou = float(check_number(iou, "iou", low=0, high=1))
    topk = int(check_number(topk, "topk", low=1))
    kept = [c for c in candidates if c["score"] > conf]
    if not kept:
        return []
    boxes = torch.tensor([c["box"] for c in kept], dtype=torch.float64)  # [N, 4]
    scores = torch.tensor([c["score"] for c in kept], dtype=torch.float64)
    labels = torch.tensor([c["label"] for c in kept], dtype=torch.int64)
    keep = batched_nms(boxes, scores, labels, iou)[:topk]
    return [kept[i] for i in keep.tolist()]


def _png_data_url(rgba: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class ServedModel:
    """One model the server offers: a predictor from :func:`pixbox.load`, its name and task.

    Calls are serialized by a lock: one image at a time per model (the model's own threads use
    the cores), so concurrent requests queue instead of competing for memory.

    Args:
        name (str): the name in the page's menu and the API's ``model`` parameter.
        predictor: a predictor of :func:`pixbox.load` whose ``task`` the server runs:
            :class:`pixbox.tasks.detect.Predictor` (SSD), :class:`~pixbox.tasks.classify.ClassifierPredictor`
            or :class:`~pixbox.tasks.segment.SegmenterPredictor`.

    Attributes:
        task (str): ``"detect"``, ``"classify"`` or ``"segment"``.
    """

    def __init__(self, name: str, predictor):
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty str, got {name!r}")
        task = getattr(predictor, "task", None)
        if task not in _RUNNERS:
            raise TypeError(f"predictor must be a pixbox predictor of a task the server runs ({', '.join(_RUNNERS)}; "
                            f"from pixbox.load), got {type(predictor).__name__}")
        if getattr(predictor, "needs_proposals", False):
            raise ValueError(f"{name}: {predictor!r} is a Fast R-CNN, which needs region proposals; "
                             "pixbox serve runs single-shot detectors (SSD), classifiers and FCNs")
        self.task = task
        self.name = name
        self.predictor = predictor
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ServedModel({self.name!r}, {self.predictor!r})"

    def info(self) -> dict[str, Any]:
        """The model's description for the page: name, task, classes and default thresholds."""
        from pixbox.viz import label_color

        out = {"name": self.name, "task": self.task, "classes": list(self.predictor.class_names),
               "colors": [list(label_color(i)) for i in range(len(self.predictor.class_names))]}
        out.update(_INFOS.get(self.task, _no_info)(self.predictor))
        return out

    def run(self, image: np.ndarray, *, conf: float | None = None, iou: float | None = None, topk: int = 5,
            candidates: bool = False) -> dict[str, Any]:
        """Runs the model on one image and returns JSON-ready results.

        Args:
            image (np.ndarray[H, W, 3]): ``uint8`` RGB (see :func:`decode_image`).
            conf (float, optional): detection confidence threshold in [CANDIDATE_FLOOR, 1];
                default the predictor's (at least the floor).
            iou (float, optional): detection NMS IoU threshold in [0, 1]; default the predictor's.
            topk (int): classification: how many classes to list, >= 1.
            candidates (bool): detection: also return the pre-NMS ``candidates``.

        Returns:
            dict: ``model``, ``task``, ``size`` (``[H, W]``) and, by task: ``detections`` (list of
            ``{"box": [x1, y1, x2, y2], "score", "label", "name"}``, xyxy pixels of the image),
            ``conf``, ``iou`` and optionally ``candidates`` and ``truncated``; ``topk`` (list of
            ``{"label", "name", "score"}``); or ``mask`` (a PNG data URL, RGBA, background
            transparent) and ``classes`` (``{"label", "name", "fraction"}`` of the classes
            present, largest first).
        """
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            got = f"shape {image.shape}, dtype {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"image must be a uint8 array [H, W, 3], got {got}")
        h, w = image.shape[:2]
        out: dict[str, Any] = {"model": self.name, "task": self.task, "size": [h, w]}
        with self._lock:
            out.update(_RUNNERS[self.task](self.predictor, image, conf=conf, iou=iou, topk=topk, candidates=candidates))
        return out


# ----------------------------------------------------------------------------------------------
# Per task: the page's settings and the JSON of one image (the table ServedModel dispatches on)


def _no_info(predictor) -> dict[str, Any]:
    return {}


def _detect_info(p) -> dict[str, Any]:
    return {"conf": max(CANDIDATE_FLOOR, p.score_threshold), "iou": p.nms_threshold, "conf_min": CANDIDATE_FLOOR,
            "topk": p.topk}


def _segment_info(p) -> dict[str, Any]:
    from pixbox.data.io import VOC_COLORMAP

    n = len(VOC_COLORMAP)
    return {"colors": [[int(v) for v in VOC_COLORMAP[i % n]] for i in range(len(p.class_names))]}


def _run_detect(p, image: np.ndarray, *, conf, iou, candidates: bool, **unused) -> dict[str, Any]:
    conf = max(CANDIDATE_FLOOR, p.score_threshold) if conf is None else float(
        check_number(conf, "conf", low=CANDIDATE_FLOOR, high=1))
    iou = p.nms_threshold if iou is None else float(check_number(iou, "iou", low=0, high=1))
    det = p.predict(image, score_threshold=CANDIDATE_FLOOR, nms_threshold=1.0, topk=MAX_CANDIDATES)[0]
    names = p.class_names
    cands = [{"box": [round(float(v), 2) for v in box], "score": round(float(s), 5), "label": int(c),
              "name": names[int(c)]}
             for box, s, c in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist())]
    out = {"conf": conf, "iou": iou, "detections": postprocess(cands, conf, iou, p.topk)}
    if candidates:
        out.update(candidates=cands, truncated=len(cands) >= MAX_CANDIDATES)
    return out


def _run_classify(p, image: np.ndarray, *, topk: int, **unused) -> dict[str, Any]:
    topk = int(check_number(topk, "topk", low=1))
    res = p.predict(image, topk=topk)[0]
    return {"topk": [{"label": int(t["label"]), "name": str(t["name"]), "score": round(float(t["score"]), 5)}
                     for t in res["topk"]]}


def _run_segment(p, image: np.ndarray, **unused) -> dict[str, Any]:
    from pixbox.data.io import VOC_COLORMAP

    h, w = image.shape[:2]
    mask = p.predict(image)[0]["mask"].numpy()
    palette = VOC_COLORMAP[np.arange(len(p.class_names)) % len(VOC_COLORMAP)].astype(np.uint8)  # [C, 3]
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    rgba[..., :3] = palette[mask]
    rgba[..., 3] = np.where(mask > 0, 255, 0)
    counts = np.bincount(mask.ravel(), minlength=len(p.class_names))
    return {"mask": _png_data_url(rgba),
            "classes": [{"label": int(c), "name": p.class_names[c], "fraction": round(float(n) / mask.size, 5)}
                        for c, n in sorted(enumerate(counts.tolist()), key=lambda cn: -cn[1]) if n]}


_INFOS = {"detect": _detect_info, "segment": _segment_info}
_RUNNERS = {"detect": _run_detect, "classify": _run_classify, "segment": _run_segment}


def _names(paths: Sequence[Path]) -> list[str]:
    """Short unique names: the run folder (``runs/detect/bananas/best.pt`` -> ``bananas``)."""
    names = []
    for path in paths:
        base = path.parent.name if path.stem in ("best", "last") and path.parent.name else path.stem
        name, i = base or "model", 2
        while name in names:
            name, i = f"{base}-{i}", i + 1
        names.append(name)
    return names


def load_models(weights: Sequence, *, device: str = "auto") -> list[ServedModel]:
    """Loads checkpoints with :func:`pixbox.load` and names them after their run folders.

    Args:
        weights (sequence of str or PathLike): ``best.pt``/``last.pt`` of detection,
            classification or segmentation runs, or model-only files; at least one.
        device (str): ``"auto"``, ``"cpu"``, ``"cuda"``, ...

    Returns:
        list[ServedModel]: in the order given.
    """
    import pixbox

    if isinstance(weights, (str, Path)) or not isinstance(weights, Sequence) or not weights:
        raise ValueError(f"weights must be a non-empty list of checkpoint files, got {weights!r}")
    paths = [Path(w) for w in weights]
    return [ServedModel(name, pixbox.load(path, device=device)) for name, path in zip(_names(paths), paths)]
