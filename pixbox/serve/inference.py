"""What the web app runs, without the web: decode an upload, run a model, make JSON-ready results.

Nothing here imports the ASGI stack, so it is tested (and usable) on its own.

Large images are never run at full resolution: :meth:`ServedModel.run_upload` decodes an upload
straight to the size its model needs (:meth:`ServedModel.working_size`: segmentation at a long side
of at most :data:`MAX_SIDE`, detectors and classifiers a little above their input size) and maps
the results back to the original's pixels, so memory and time stay bounded for any accepted image.

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
from typing import Any, Callable, Sequence

import numpy as np
import torch

from pixbox._checks import check_number

__all__ = ["CANDIDATE_FLOOR", "MAX_CANDIDATES", "MAX_PIXELS", "MAX_SIDE", "ImageError", "ServedModel", "decode_image",
           "load_models", "postprocess"]

#: The lowest confidence threshold the page offers: candidates are the boxes scoring above it.
CANDIDATE_FLOOR = 0.05
#: At most this many candidate boxes per image are kept (the highest scoring).
MAX_CANDIDATES = 1000
#: The default largest image, in pixels (4000 x 4000, or a 16-megapixel photo); larger ones get 413.
MAX_PIXELS = 16_000_000
#: The default bound on the side of the image a model sees: segmentation runs at a long side of at
#: most this (the mask is scaled back, nearest neighbour); detectors and classifiers get at most
#: this, or their input size when larger, before their own resize.
MAX_SIDE = 1024

_ORIENTATION = 0x0112  # the EXIF tag


class ImageError(ValueError):
    """An upload that is not a usable image; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def decode_image(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decodes uploaded bytes into an RGB array, turned upright by its EXIF orientation.

    Args:
        data (bytes): the file's content (PNG, JPEG, BMP, GIF, WebP, ... anything Pillow reads).
        max_pixels (int): refuse larger images (decompression bombs), >= 1.

    Returns:
        np.ndarray[H, W, 3]: ``uint8`` RGB, full size (:meth:`ServedModel.run_upload` decodes
        straight to a bounded size instead).

    Raises:
        ImageError: empty, not an image, corrupt or truncated (status 400), or more than
            ``max_pixels`` pixels (status 413).
    """
    return _decode(data, max_pixels)[0]


def _decode(data: bytes, max_pixels: int, fit: Callable[[int, int], tuple[int, int]] | None = None
            ) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`decode_image`, reduced on the way to ``fit(height, width)`` of the upright image.

    The pixel count is checked on the header, before any pixel is decoded; JPEGs decode at 1/2 to
    1/8 scale when that is still at least the target (``draft``), and the upright turn runs on
    the reduced image. Returns the ``uint8 [h, w, 3]`` array and the original's upright
    ``(height, width)``.
    """
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    max_pixels = int(check_number(max_pixels, "max_pixels", low=1))
    if len(data) == 0:
        raise ImageError("the upload is empty: choose an image file (PNG, JPEG, ...)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            w, h = image.size
            if w * h > max_pixels:
                raise ImageError(f"the image is {w}x{h} = {w * h} pixels; this server accepts at most {max_pixels} "
                                 "pixels (--max-pixels)", status=413)
            turn, sideways = _upright_turn(image)
            size = (w, h) if sideways else (h, w)  # the upright (height, width)
            th, tw = fit(*size) if fit is not None else size
            stored = (th, tw) if sideways else (tw, th)  # Pillow's (width, height) before the turn
            if stored != image.size:
                image.draft(None, stored)  # JPEG: decode at a reduced scale, still at least `stored`
            if image.mode not in ("RGB", "L"):  # palette, alpha, 16-bit, ...: as a full-size convert would
                image = image.convert("RGB")
            if image.size != stored:
                image = image.resize(stored, Image.Resampling.BILINEAR, reducing_gap=3.0)
            if turn is not None:
                image = image.transpose(turn)
            array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("the upload is not an image this server can read (PNG, JPEG, BMP, GIF, WebP, ...)") from None
    except Image.DecompressionBombError:  # Pillow's own limit, checked on opening: twice MAX_IMAGE_PIXELS
        bomb = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageError(f"the image has more than {bomb} pixels (a decompression bomb?); this server accepts at "
                         f"most {max_pixels} pixels (--max-pixels)", status=413) from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"the image is corrupt or truncated: {e}") from None
    if array.ndim != 3 or array.shape[0] == 0 or array.shape[1] == 0:
        raise ImageError(f"the image has no pixels (shape {array.shape})")
    return np.ascontiguousarray(array), size


def _upright_turn(image) -> tuple[Any, bool]:
    """The transpose that ImageOps.exif_transpose would apply (or None), and whether it swaps the sides."""
    from PIL import Image

    t = Image.Transpose
    turn = {2: t.FLIP_LEFT_RIGHT, 3: t.ROTATE_180, 4: t.FLIP_TOP_BOTTOM, 5: t.TRANSPOSE, 6: t.ROTATE_270,
            7: t.TRANSVERSE, 8: t.ROTATE_90}.get(image.getexif().get(_ORIENTATION))
    return turn, turn in (t.TRANSPOSE, t.ROTATE_270, t.TRANSVERSE, t.ROTATE_90)


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
    # masks are mostly flat areas: zlib's fastest level is nearly as small, and several times faster on big images
    Image.fromarray(rgba).save(buffer, format="PNG", optimize=False, compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (uint8 [H, W, 3]) resized to ``size`` (height, width) with Pillow's antialiased bilinear."""
    from PIL import Image

    if tuple(image.shape[:2]) == tuple(size):
        return image
    small = Image.fromarray(image).resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(small, dtype=np.uint8)


def _nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """For each of ``n_out`` pixels, the one of ``n_in`` that contains its centre (as ``resize_mask``)."""
    return np.minimum((2 * np.arange(n_out, dtype=np.int64) + 1) * n_in // (2 * n_out), n_in - 1)


class ServedModel:
    """One model the server offers: a predictor from :func:`pixbox.load`, its name and task.

    Calls are serialized by a lock: one image at a time per model (the model's own threads use
    the cores), so concurrent requests queue instead of competing for memory. Images larger than
    :meth:`working_size` are reduced before the model runs and the results mapped back to the
    original's pixels.

    Args:
        name (str): the name in the page's menu and the API's ``model`` parameter.
        predictor: a predictor of :func:`pixbox.load` whose ``task`` the server runs:
            :class:`pixbox.tasks.detect.Predictor` (SSD), :class:`~pixbox.tasks.classify.ClassifierPredictor`
            or :class:`~pixbox.tasks.segment.SegmenterPredictor`.
        max_side (int): the bound on the image the model sees, >= 16 (see :data:`MAX_SIDE`):
            segmentation runs at a long side of at most ``max_side``; a detector gets each side
            at most ``max(max_side, imgsz)``; a classifier a long side of at most ``max_side``
            unless its shorter side would fall under the classifier's resize.

    Attributes:
        task (str): ``"detect"``, ``"classify"`` or ``"segment"``.
    """

    def __init__(self, name: str, predictor, *, max_side: int = MAX_SIDE):
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
        self.max_side = int(check_number(max_side, "max_side", low=16))
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

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` an image of ``height x width`` is reduced to before the model runs.

        The image's own size when it is within the bound (so small images run exactly as given).
        """
        return _WORKING_SIZES[self.task](self.predictor, int(height), int(width), self.max_side)

    def run(self, image: np.ndarray, *, conf: float | None = None, iou: float | None = None, topk: int = 5,
            candidates: bool = False) -> dict[str, Any]:
        """Runs the model on one image and returns JSON-ready results.

        Args:
            image (np.ndarray[H, W, 3]): ``uint8`` RGB (see :func:`decode_image`); reduced to
                :meth:`working_size` first when larger.
            conf (float, optional): detection confidence threshold in [CANDIDATE_FLOOR, 1];
                default the predictor's (at least the floor).
            iou (float, optional): detection NMS IoU threshold in [0, 1]; default the predictor's.
            topk (int): classification: how many classes to list, >= 1.
            candidates (bool): detection: also return the pre-NMS ``candidates``.

        Returns:
            dict: ``model``, ``task``, ``size`` (``[H, W]``) and, by task: ``detections`` (list of
            ``{"box": [x1, y1, x2, y2], "score", "label", "name"}``, xyxy pixels of the image),
            ``conf``, ``iou`` and optionally ``candidates`` and ``truncated``; ``topk`` (list of
            ``{"label", "name", "score"}``); or ``mask`` (a PNG data URL of the image's size,
            RGBA, background transparent) and ``classes`` (``{"label", "name", "fraction"}`` of
            the classes present, largest first).
        """
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            got = f"shape {image.shape}, dtype {image.dtype}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"image must be a uint8 array [H, W, 3], got {got}")
        size = image.shape[:2]
        return self._infer(_resized(image, self.working_size(*size)), size, conf=conf, iou=iou, topk=topk,
                           candidates=candidates)

    def run_upload(self, data: bytes, *, max_pixels: int = MAX_PIXELS, conf: float | None = None,
                   iou: float | None = None, topk: int = 5, candidates: bool = False) -> dict[str, Any]:
        """Decodes an upload straight to :meth:`working_size` and runs the model (what the server does).

        Only one reduced copy of a large image is kept: a JPEG decodes at a reduced scale, other
        formats are reduced right after decoding. Arguments and results as :meth:`run`, with
        ``max_pixels`` and the errors of :func:`decode_image`.
        """
        image, size = _decode(data, max_pixels, self.working_size)
        return self._infer(image, size, conf=conf, iou=iou, topk=topk, candidates=candidates)

    def _infer(self, image: np.ndarray, size: tuple[int, int], **options) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.name, "task": self.task, "size": [int(size[0]), int(size[1])]}
        with self._lock:
            out.update(_RUNNERS[self.task](self.predictor, image, size=tuple(size), **options))
        return out


# ----------------------------------------------------------------------------------------------
# Per task: the page's settings, the size a model works at and the JSON of one image (the tables
# ServedModel dispatches on). A runner gets the reduced image and the original's (H, W) `size`.


def _no_info(predictor) -> dict[str, Any]:
    return {}


def _detect_info(p) -> dict[str, Any]:
    return {"conf": max(CANDIDATE_FLOOR, p.score_threshold), "iou": p.nms_threshold, "conf_min": CANDIDATE_FLOOR,
            "topk": p.topk}


def _segment_info(p) -> dict[str, Any]:
    from pixbox.data.io import VOC_COLORMAP

    n = len(VOC_COLORMAP)
    return {"colors": [[int(v) for v in VOC_COLORMAP[i % n]] for i in range(len(p.class_names))]}


def _scaled(h: int, w: int, scale: float) -> tuple[int, int]:
    return (h, w) if scale >= 1 else (max(1, round(h * scale)), max(1, round(w * scale)))


def _detect_size(p, h: int, w: int, max_side: int) -> tuple[int, int]:
    cap = max(max_side, p.imgsz)  # the detector squashes to imgsz x imgsz anyway: each side on its own
    return min(h, cap), min(w, cap)


def _classify_size(p, h: int, w: int, max_side: int) -> tuple[int, int]:
    short = max(p.imgsz, round(p.imgsz / getattr(p, "crop_pct", 1.0)))  # the classifier's shorter-side resize
    return _scaled(h, w, max(max_side / max(h, w), short / min(h, w)))


def _segment_size(p, h: int, w: int, max_side: int) -> tuple[int, int]:
    return _scaled(h, w, max_side / max(h, w))


def _run_detect(p, image: np.ndarray, *, size, conf, iou, candidates: bool, **unused) -> dict[str, Any]:
    conf = max(CANDIDATE_FLOOR, p.score_threshold) if conf is None else float(
        check_number(conf, "conf", low=CANDIDATE_FLOOR, high=1))
    iou = p.nms_threshold if iou is None else float(check_number(iou, "iou", low=0, high=1))
    det = p.predict(image, score_threshold=CANDIDATE_FLOOR, nms_threshold=1.0, topk=MAX_CANDIDATES)[0]
    boxes = det["boxes"]  # [K, 4] xyxy pixels of the reduced image
    (h, w), (H, W) = image.shape[:2], size
    if (h, w) != (H, W):
        boxes = boxes * boxes.new_tensor([W / w, H / h, W / w, H / h])
    names = p.class_names
    cands = [{"box": [round(float(v), 2) for v in box], "score": round(float(s), 5), "label": int(c),
              "name": names[int(c)]}
             for box, s, c in zip(boxes.tolist(), det["scores"].tolist(), det["labels"].tolist())]
    out = {"conf": conf, "iou": iou, "detections": postprocess(cands, conf, iou, p.topk)}
    if candidates:
        out.update(candidates=cands, truncated=len(cands) >= MAX_CANDIDATES)
    return out


def _run_classify(p, image: np.ndarray, *, topk: int, **unused) -> dict[str, Any]:
    topk = int(check_number(topk, "topk", low=1))
    res = p.predict(image, topk=topk)[0]
    return {"topk": [{"label": int(t["label"]), "name": str(t["name"]), "score": round(float(t["score"]), 5)}
                     for t in res["topk"]]}


def _run_segment(p, image: np.ndarray, *, size, **unused) -> dict[str, Any]:
    from pixbox.data.io import VOC_COLORMAP

    mask = p.predict(image)[0]["mask"].numpy()  # [h, w] int64 at the reduced size
    (h, w), (H, W) = mask.shape, size
    n = len(p.class_names)
    colors = np.zeros((n, 4), dtype=np.uint8)  # [C, 4] RGBA; the background stays transparent
    colors[:, :3] = VOC_COLORMAP[np.arange(n) % len(VOC_COLORMAP)]
    colors[1:, 3] = 255
    rows, cols = _nearest_index(h, H), _nearest_index(w, W)  # [H], [W]: the mask pixel under each output pixel
    rgba = colors[mask].take(rows, axis=0).take(cols, axis=1)  # [H, W, 4], scaled back with nearest neighbours
    weights = np.outer(np.bincount(rows, minlength=h), np.bincount(cols, minlength=w))  # [h, w] output pixels each
    counts = np.bincount(mask.ravel(), weights=weights.ravel(), minlength=n).round().astype(np.int64)
    return {"mask": _png_data_url(rgba),
            "classes": [{"label": int(c), "name": p.class_names[c], "fraction": round(float(k) / (H * W), 5)}
                        for c, k in sorted(enumerate(counts.tolist()), key=lambda ck: -ck[1]) if k]}


_INFOS = {"detect": _detect_info, "segment": _segment_info}
_WORKING_SIZES = {"detect": _detect_size, "classify": _classify_size, "segment": _segment_size}
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
