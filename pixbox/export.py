"""Export trained models to ONNX, check the file with ONNX Runtime, and predict from it.

:func:`export_onnx` turns a pixbox checkpoint (``best.pt``/``last.pt`` of a ``pixbox classify``,
``detect`` or ``segment`` run, or a ``Predictor.save`` file) into an ONNX file and then runs the
file with ONNX Runtime on sample inputs, comparing every output with PyTorch
(:func:`verify_onnx`); a mismatch raises :class:`VerificationError`. A detector is checked on
images it detects in: a few images of its run's validation split (the checkpoint's config
names the dataset), resized as the predictor does, else pixbox's generated scenes and a noise
image; when nothing scores above the threshold on any of them, the candidates above 0.01 are
compared instead, and the report says so. :func:`load_onnx` (and
:func:`pixbox.load` on a ``.onnx`` path) gives back a predictor with the same ``predict`` API as
the PyTorch one.

What the graphs compute:

- classification: ``images [B, 3, S, S]`` (normalized with the mean/std stored in the metadata,
  as ``ClassifierPredictor.prepare`` makes them) -> ``logits [B, C]``;
- SSD/TinySSD detection: ``images [B, 3, S, S]`` (float in [0, 1]) -> ``boxes [B, A, 4]``
  (decoded at the anchors, normalized xyxy clipped to [0, 1]) and ``scores [B, C, A]`` (softmax
  class probabilities, background dropped). The anchors are constants of the graph, so the
  height and width are fixed at the training size ``S``;
- FCN segmentation: ``images [B, 3, H, W]`` (float in [0, 1]) -> ``logits [B, C, H, W]``, with
  ``H`` and ``W`` always dynamic (the predictor runs at each image's own size).

``--dynamic`` makes the batch dimension dynamic; without it the batch is 1.

NMS is a post-step in pixbox (:func:`postprocess_detections`, which uses
:func:`pixbox.ops.batched_nms`), not the ONNX ``NonMaxSuppression`` operator: the post-step is
the very code PyTorch predictions use, so an ONNX model keeps exactly the same detections
(ONNX ``NonMaxSuppression`` differs in tie-breaking and has no per-class top-k before NMS);
the thresholds stay free at run time without re-exporting (the ``pixbox serve`` sliders); and
the graph keeps fixed output shapes, which every runtime handles. A consumer outside pixbox
thresholds ``scores``, then runs per-class NMS on ``boxes`` (the metadata names the settings).

Fast and Faster R-CNN are refused: their region proposals come from outside the network
(selective search) or from a data-dependent RPN top-k and per-image RoI pooling over a
variable number of boxes, which this exporter does not support.

``onnx``, ``onnxruntime`` and ``onnxscript`` (the ``export`` extra:
``pip install pixbox[export]``) are imported only when needed.

Example:
    >>> from pixbox.export import export_onnx, load_onnx
    >>> report = export_onnx("runs/detect/train/best.pt")  # doctest: +SKIP
    >>> load_onnx(report["path"]).predict("a.jpg")[0]["names"]  # doctest: +SKIP
    ['banana']
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from pixbox._checks import check_number
from pixbox._files import atomic_open
from pixbox._version import __version__
from pixbox.ops.nms import batched_nms

__all__ = [
    "EXPORT_FORMATS",
    "OnnxModel",
    "VerificationError",
    "export_onnx",
    "format_report",
    "load_onnx",
    "postprocess_detections",
    "verify_onnx",
]

#: The formats :func:`export_onnx` writes.
EXPORT_FORMATS = ("onnx",)

_DEFAULT_OPSET = 18
_CANDIDATE_THRESHOLD = 0.01  # the parity check's score threshold when nothing scores above the export's
_HINT = "ONNX export needs the optional packages onnx, onnxruntime and onnxscript: pip install 'pixbox[export]'"


class VerificationError(RuntimeError):
    """The ONNX Runtime outputs differ from PyTorch's beyond the tolerance.

    Attributes:
        report (dict): the comparison (:func:`verify_onnx`), for :func:`format_report`.
    """

    def __init__(self, message: str, report: dict[str, Any]):
        super().__init__(message)
        self.report = report


def _import(name: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise ImportError(f"{_HINT} ({e})") from None


# ---------------------------------------------------------------------------------------------
# Detection: the NMS post-step


def postprocess_detections(boxes: Tensor, scores: Tensor, *, score_threshold: float = 0.25,
                           nms_threshold: float = 0.45, topk: int = 100, pre_nms_topk: int | None = None
                           ) -> list[dict[str, Tensor]]:
    """The NMS post-step of an exported detector: the same selection as :meth:`pixbox.models.SSD.predict`.

    Every (anchor, class) pair scoring above ``score_threshold`` is a candidate (at most
    ``pre_nms_topk`` per class and image), NMS runs within each class of each image
    (:func:`pixbox.ops.batched_nms`), and each image keeps its ``topk`` best detections.

    Args:
        boxes (Tensor[B, A, 4]): decoded boxes, xyxy (normalized or pixels).
        scores (Tensor[B, C, A]): class probabilities, background excluded.
        score_threshold (float): candidates need a score > this, in [0, 1].
        nms_threshold (float): per-class NMS IoU threshold, in [0, 1].
        topk (int): detections kept per image, >= 1.
        pre_nms_topk (int, optional): candidates kept per class and image before NMS; None keeps all.

    Returns:
        list of B dicts: ``boxes`` (Tensor[K, 4], as the input), ``scores`` (Tensor[K],
        decreasing) and ``labels`` (Tensor[K] int64 in ``[0, C)``).
    """
    if not isinstance(boxes, Tensor) or boxes.dim() != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be a Tensor[B, A, 4], got {getattr(boxes, 'shape', type(boxes).__name__)}")
    b, a = boxes.shape[:2]
    if not isinstance(scores, Tensor) or scores.dim() != 3 or scores.shape[0] != b or scores.shape[2] != a:
        raise ValueError(f"scores must be a Tensor[B, C, A] = [{b}, C, {a}], "
                         f"got {getattr(scores, 'shape', type(scores).__name__)}")
    st = check_number(score_threshold, "score_threshold", low=0, high=1)
    nt = check_number(nms_threshold, "nms_threshold", low=0, high=1)
    topk = int(check_number(topk, "topk", low=1))
    c = scores.shape[1]
    if pre_nms_topk is not None and int(check_number(pre_nms_topk, "pre_nms_topk", low=1)) < a:
        vals, idx = scores.topk(int(pre_nms_topk), dim=2)  # [B, C, k]
        bi, ci, ki = (vals > st).nonzero().unbind(1)
        ai = idx[bi, ci, ki]
        order = torch.argsort((bi * c + ci) * a + ai)  # (image, class, anchor) order, as without a cap
        bi, ci, ai = bi[order], ci[order], ai[order]
    else:
        bi, ci, ai = (scores > st).nonzero().unbind(1)
    cand_scores = scores[bi, ci, ai]
    cand_boxes = boxes[bi, ai]
    keep = batched_nms(cand_boxes, cand_scores, bi * c + ci, nt)  # by decreasing score
    kb = bi[keep]
    out = []
    for i in range(b):
        sel = keep[kb == i][:topk]
        out.append({"boxes": cand_boxes[sel], "scores": cand_scores[sel], "labels": ci[sel]})
    return out


# ---------------------------------------------------------------------------------------------
# Running an ONNX file


class OnnxModel(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` call the pixbox predictors make.

    It holds no parameters; :meth:`forward` converts to numpy, runs the session on the CPU and
    converts back. A file exported with a fixed batch of 1 is run one image at a time.

    Args:
        path (str or PathLike): the ``.onnx`` file.
        threads (int, optional): ONNX Runtime intra-op threads; None lets it choose.

    Attributes:
        metadata (dict[str, str]): the file's ``metadata_props``.
        task (str): ``"classify"``, ``"detect"`` or ``"segment"``.
        num_classes (int): object (detect) or output (classify, segment) classes.
        input_shape (list): the input's shape, ``"batch"``-like strings for dynamic dimensions.
    """

    def __init__(self, path, *, threads: int | None = None):
        super().__init__()
        ort = _import("onnxruntime")
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = int(check_number(threads, "threads", low=1))
        # No busy-waiting after a run: spinning threads would take the CPU from the PyTorch NMS post-step.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such ONNX file: {path}")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types
            raise ValueError(f"{path}: not a valid ONNX file: {e}") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if "pixbox_task" not in self.metadata:
            raise ValueError(f"{path}: not a pixbox export (no pixbox_task metadata); export it with "
                             "`pixbox export --weights best.pt`")
        self.task = self.metadata["pixbox_task"]
        self.num_classes = len(json.loads(self.metadata["class_names"]))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = list(inp.shape)
        self.output_names = [o.name for o in self.session.get_outputs()]

    def extra_repr(self) -> str:
        return f"task={self.task}, input_shape={self.input_shape}"

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {self.input_name: x})

    def forward(self, images: Tensor):
        """Runs the graph.

        Args:
            images (Tensor[B, 3, H, W]): float; H and W as the export fixed them (an FCN takes
                any size: padded to its stride with the mean colour, the logits cropped back).

        Returns:
            Tensor or tuple of Tensor: the graph's outputs (float32, CPU); one tensor for a
            classifier or FCN, ``(boxes, scores)`` for a detector.
        """
        if images.dim() != 4:
            raise ValueError(f"images must have shape [B, 3, H, W], got {tuple(images.shape)}")
        for dim, (want, got) in enumerate(zip(self.input_shape[1:], images.shape[1:]), start=1):
            if isinstance(want, int) and want != got:
                raise ValueError(f"images must have shape [B, {', '.join(map(str, self.input_shape[1:]))}] for this "
                                 f"ONNX file, got {tuple(images.shape)} (dimension {dim})")
        x = images.detach().to("cpu", torch.float32)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("images must have finite pixel values, got NaN or infinity")
        h, w = x.shape[-2:]
        stride = int(self.metadata.get("stride") or 0)  # an FCN export: any size, padded to its stride
        if stride:  # pad with the mean colour: zeros after normalization, as the FCN pads
            ph, pw = -h % stride, -w % stride
            if ph or pw:
                mean = x.new_tensor(json.loads(self.metadata["image_mean"])).view(1, 3, 1, 1)
                padded = mean.expand(x.shape[0], 3, h + ph, w + pw).clone()
                padded[..., :h, :w] = x
                x = padded
        x = x.contiguous().numpy()
        if isinstance(self.input_shape[0], int):  # a fixed batch: run it that many images at a time
            n = self.input_shape[0]
            parts = [self._run(x[i:i + n]) for i in range(0, len(x), n)]
            outs = [np.concatenate(p) for p in zip(*parts)]
        else:
            outs = self._run(x)
        tensors = tuple(torch.from_numpy(o) for o in outs)
        if stride:
            tensors = tuple(t[..., :h, :w] for t in tensors)
        return tensors[0] if len(tensors) == 1 else tensors

    @torch.no_grad()
    def predict(self, images: Tensor, *, score_threshold: float | None = None, nms_threshold: float | None = None,
                topk: int | None = None) -> list[dict[str, Tensor]]:
        """Detector files only: :meth:`pixbox.models.SSD.predict` on the ONNX graph plus :func:`postprocess_detections`.

        Args:
            images (Tensor[B, 3, S, S]): float in [0, 1].
            score_threshold, nms_threshold, topk: default the values stored at export.

        Returns:
            list of B dicts: ``boxes`` (Tensor[K, 4], xyxy input pixels), ``scores``, ``labels``.
        """
        if self.output_names != ["boxes", "scores"]:
            raise ValueError(f"predict() runs detector exports (boxes and scores); this file is a {self.task!r} model")
        meta = self.metadata
        boxes, scores = self(images)
        pre = meta.get("pre_nms_topk", "")
        dets = postprocess_detections(
            boxes, scores,
            score_threshold=float(meta["score_threshold"]) if score_threshold is None else score_threshold,
            nms_threshold=float(meta["nms_threshold"]) if nms_threshold is None else nms_threshold,
            topk=int(meta["topk"]) if topk is None else topk, pre_nms_topk=int(pre) if pre else None)
        h, w = images.shape[-2:]
        scale = boxes.new_tensor([w, h, w, h])
        for d in dets:
            d["boxes"] = d["boxes"] * scale
        return dets


def load_onnx(path, *, device: str | torch.device = "cpu", score_threshold: float | None = None,
              nms_threshold: float | None = None, topk: int | None = None, batch: int = 16, threads: int | None = None):
    """A predictor on an exported ``.onnx`` file, with the API of the PyTorch one.

    ``pixbox.load("model.onnx")`` calls this. The class names, input size, normalization and
    detection settings come from the file's metadata. The session runs on ONNX Runtime's CPU
    provider whatever ``device`` says.

    Args:
        path (str or PathLike): a file written by :func:`export_onnx`.
        device: accepted for :func:`pixbox.load`'s signature; ONNX Runtime runs on the CPU.
        score_threshold, nms_threshold, topk: detection defaults; None takes the exported ones.
        batch (int): images per session run, >= 1.
        threads (int, optional): ONNX Runtime intra-op threads.

    Returns:
        :class:`pixbox.tasks.detect.Predictor`,
        :class:`pixbox.tasks.classify.ClassifierPredictor` or
        :class:`pixbox.tasks.segment.SegmenterPredictor` running the ONNX file.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a pixbox ONNX export.
        ImportError: onnxruntime is not installed.
    """
    from pixbox.tasks import get_task

    model = OnnxModel(path, threads=threads)
    try:
        task = get_task(model.task)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    predictor = task.onnx_predictor(model, model.metadata, batch=batch, score_threshold=score_threshold,
                                    nms_threshold=nms_threshold, topk=topk)
    predictor.path = str(path)
    return predictor


# ---------------------------------------------------------------------------------------------
# Export


def _export_spec(weights, score_threshold: float, nms_threshold: float, topk: int):
    """``(task name, ExportSpec)`` of a checkpoint, from its task (:data:`pixbox.tasks.TASKS`)."""
    from pixbox.engine.checkpoint import load_checkpoint
    from pixbox.tasks import get_task

    state = load_checkpoint(weights, map_location="cpu")
    if not isinstance(state, dict):
        raise ValueError(f"{weights}: not a pixbox checkpoint (got a {type(state).__name__})")
    task = get_task(state.get("task", "detect"))
    return task.name, task.export_spec(state, path=weights, score_threshold=score_threshold,
                                       nms_threshold=nms_threshold, topk=topk)


def _clear_anchor_cache(module: nn.Module) -> None:
    # torch.export traces with fake tensors; a cached anchor tensor made then must not be reused.
    for m in module.modules():
        if isinstance(getattr(m, "_anchor_cache", None), dict):
            m._anchor_cache.clear()


def _same_detections(a: dict[str, Tensor], b: dict[str, Tensor], atol: float) -> bool:
    """Whether two images' detections pair up one to one with the same label, and box and score
    within ``atol`` (so two near-equal scores may come in either order)."""
    if len(a["labels"]) != len(b["labels"]):
        return False
    close = ((a["labels"][:, None] == b["labels"][None, :])
             & ((a["scores"][:, None] - b["scores"][None, :]).abs() <= atol)
             & ((a["boxes"][:, None, :] - b["boxes"][None, :, :]).abs().amax(-1) <= atol))  # [K, K]
    free = torch.ones(len(b["labels"]), dtype=torch.bool)
    for row in close:  # each detection of a takes the first free counterpart in b
        j = (row & free).nonzero()
        if not len(j):
            return False
        free[j[0, 0]] = False
    return True


def _compare_detections(outputs, labels, atol: float, **settings) -> list[dict[str, Any]]:
    rows = []
    for label, (ref, got) in zip(labels, outputs):
        ours, theirs = postprocess_detections(*ref, **settings), postprocess_detections(*got, **settings)
        rows.append({"input": label, "torch": sum(len(d["labels"]) for d in ours),
                     "onnx": sum(len(d["labels"]) for d in theirs),
                     "identical": all(_same_detections(a, b, atol) for a, b in zip(ours, theirs))})
    return rows


@contextlib.contextmanager
def _quiet_exporter():
    """Hides what ``torch.onnx.export`` prints that says nothing about this export, and only that:
    its registry's "torchvision is not installed. Skipping torchvision::nms" log lines (pixbox
    needs no torchvision), the warning about the anchor cache it traces through (cleared before
    and after, see :func:`_clear_anchor_cache`) and a FutureWarning of torch's own internals."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")

    def not_torchvision_notice(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("torchvision is not installed")

    logger.addFilter(not_torchvision_notice)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"The tensor attribute self\.ssd\._anchor_cache.* was assigned during "
                                              "export", UserWarning)
            warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning)
            yield
    finally:
        logger.removeFilter(not_torchvision_notice)


def verify_onnx(path, module: nn.Module, inputs: Sequence[Tensor], *, atol: float = 1e-4,
                score_threshold: float = 0.25, nms_threshold: float = 0.45, topk: int = 100,
                pre_nms_topk: int | None = None, labels: Sequence[str] | None = None,
                candidate_threshold: float | None = _CANDIDATE_THRESHOLD) -> dict[str, Any]:
    """Runs an ONNX file with ONNX Runtime and compares it with the PyTorch module.

    For each input batch, every output's max abs difference must be <= ``atol``; for a detector
    (two outputs ``boxes``, ``scores``) the same :func:`postprocess_detections` must also keep the
    same detections (same count, and each with a counterpart of the same label, box and score
    within ``atol``). When nothing scores above ``score_threshold`` on any input, the detections
    are compared at ``candidate_threshold`` instead; when nothing scores above that either, only
    the raw outputs were compared, which the report says.

    Args:
        path (str or PathLike): the ``.onnx`` file.
        module (nn.Module): the exported PyTorch module, in eval mode.
        inputs (sequence of Tensor[B, 3, H, W]): sample batches.
        atol (float): the tolerance, > 0.
        score_threshold, nms_threshold, topk, pre_nms_topk: the detection post-step settings.
        labels (sequence of str, optional): a name per input for the report (default its shape,
            e.g. ``"1x3x64x64"``).
        candidate_threshold (float, optional): the score threshold of the detection comparison
            when nothing scores above ``score_threshold``, in [0, 1]; None: never lower it.

    Returns:
        dict: ``rows`` (list of dicts ``input``, ``output``, ``shape``, ``max_abs_diff``, ``ok``),
        ``detections`` (list of dicts ``input``, ``torch`` and ``onnx``: the detections kept,
        ``identical``; empty but for detectors), ``ok`` and ``atol``; for detectors also
        ``score_threshold``, ``detection_threshold`` (the score threshold the detections were
        compared at) and ``compared_detections`` (kept by PyTorch, all inputs).
    """
    atol = float(check_number(atol, "atol", low=0, low_open=True))
    if labels is not None and len(labels) != len(inputs):
        raise ValueError(f"labels must have one name per input ({len(inputs)}), got {len(labels)}")
    if candidate_threshold is not None:
        candidate_threshold = float(check_number(candidate_threshold, "candidate_threshold", low=0, high=1))
    ort = _import("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    in_name = session.get_inputs()[0].name
    out_names = [o.name for o in session.get_outputs()]
    labels = ["x".join(map(str, x.shape)) for x in inputs] if labels is None else [str(s) for s in labels]
    rows, outputs = [], []
    _clear_anchor_cache(module)
    for x, label in zip(inputs, labels):
        with torch.no_grad():
            ref = module(x)
        ref = [ref] if isinstance(ref, Tensor) else list(ref)
        got = [torch.from_numpy(o) for o in session.run(out_names, {in_name: x.numpy()})]
        for name, r, o in zip(out_names, ref, got):
            same_shape = tuple(r.shape) == tuple(o.shape)
            diff = float((r.float() - o).abs().max()) if same_shape and r.numel() else (0.0 if same_shape else
                                                                                       float("inf"))
            rows.append({"input": label, "output": name, "shape": tuple(o.shape), "max_abs_diff": diff,
                         "ok": same_shape and diff <= atol})
        if len(ref) == 2:  # a detector: the same NMS on both
            outputs.append((ref, got))
    report: dict[str, Any] = {"rows": rows, "detections": [], "atol": atol}
    if outputs:
        kw = dict(nms_threshold=nms_threshold, topk=topk, pre_nms_topk=pre_nms_topk)
        threshold = score_threshold
        detections = _compare_detections(outputs, labels, atol, score_threshold=threshold, **kw)
        nothing = not any(d["torch"] or d["onnx"] for d in detections)
        if nothing and candidate_threshold is not None and candidate_threshold < score_threshold:
            threshold = candidate_threshold
            detections = _compare_detections(outputs, labels, atol, score_threshold=threshold, **kw)
        report.update(detections=detections, score_threshold=score_threshold, detection_threshold=threshold,
                      compared_detections=sum(d["torch"] for d in detections))
    report["ok"] = all(r["ok"] for r in rows) and all(d["identical"] for d in report.get("detections", []))
    return report


def format_report(report: dict[str, Any]) -> str:
    """The verification table of :func:`verify_onnx` (or :func:`export_onnx`) as text.

    It starts with the check inputs (``check_inputs``, when the report has them) and, for a
    detector, ends with how many detections were compared, at which score threshold, or says
    that no input gave any.
    """
    width = max([16, *(len(r["input"]) for r in report["rows"])])
    lines = [f"check inputs: {report['check_inputs']}"] if report.get("check_inputs") else []
    lines.append(f"{'input':<{width}} {'output':<8} {'shape':<20} {'max abs diff':>12}  {'ok':<4}")
    for r in report["rows"]:
        lines.append(f"{r['input']:<{width}} {r['output']:<8} {str(list(r['shape'])):<20} "
                     f"{r['max_abs_diff']:>12.3g}  {'yes' if r['ok'] else 'NO':<4}")
    detections = report.get("detections", [])
    for d in detections:
        if d["torch"] == d["onnx"] == 0:
            kept = "none"
        else:
            kept = f"torch {d['torch']}, onnx {d['onnx']}, identical: {'yes' if d['identical'] else 'NO'}"
        lines.append(f"{d['input']:<{width}} kept detections: {kept}")
    if detections:
        threshold, n = report.get("detection_threshold"), report.get("compared_detections", 0)
        if not any(d["torch"] or d["onnx"] for d in detections):
            lines.append(f"no detections on any check input (score > {threshold:g}): compared the raw "
                         "scores/boxes only")
        else:
            lowered = (f"; nothing scored above the export threshold, so the candidates above {threshold:g} "
                       "were compared" if report.get("score_threshold", threshold) > threshold else "")
            same = all(d["identical"] for d in detections)
            lines.append(f"detections compared: {n} on {len(detections)} inputs (score > {threshold:g}), "
                         f"{'all identical' if same else 'SOME DIFFER'}{lowered}")
    lines.append(f"tolerance {report['atol']:g}: {'passed' if report['ok'] else 'FAILED'}")
    return "\n".join(lines)


def export_onnx(weights, out=None, *, dynamic: bool = False, opset: int = _DEFAULT_OPSET, verify: bool = True,
                atol: float = 1e-4, score_threshold: float = 0.25, nms_threshold: float = 0.45, topk: int = 100
                ) -> dict[str, Any]:
    """Exports a pixbox checkpoint to ONNX and checks the file against PyTorch.

    Args:
        weights (str or PathLike): ``best.pt``/``last.pt`` of a classify, detect (SSD/TinySSD)
            or segment run, or a ``Predictor.save`` file.
        out (str or PathLike, optional): the ``.onnx`` file; default ``weights`` with the suffix
            ``.onnx``. Written atomically.
        dynamic (bool): dynamic batch dimension (otherwise the batch is 1). FCN exports always
            have a dynamic height and width.
        opset (int): the ONNX opset, >= 18 (the dynamo exporter's minimum).
        verify (bool): run :func:`verify_onnx`: a detector on a few images of its run's
            validation split (from the checkpoint's config) or, without them, on generated
            scenes and a noise image; a classifier on random batches, an FCN on two sizes.
        atol (float): the verification tolerance.
        score_threshold, nms_threshold, topk: detection post-step defaults stored in the
            metadata (and used by the verification).

    Returns:
        dict: ``path`` (Path), ``task``, ``opset``, ``dynamic`` and, if verified, the
        :func:`verify_onnx` report (``rows``, ``detections``, ``ok``, ``atol`` and, for a
        detector, ``detection_threshold`` and ``compared_detections``) plus ``check_inputs``, a
        line saying what the inputs were.

    Raises:
        VerificationError: ONNX Runtime and PyTorch disagree (the file is removed).
        ValueError: not an exportable checkpoint (e.g. an R-CNN).
        ImportError: onnx, onnxruntime or onnxscript is missing.
    """
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < 18:
        raise ValueError(f"opset must be an int >= 18, got {opset!r}")
    score_threshold = float(check_number(score_threshold, "score_threshold", low=0, high=1))
    nms_threshold = float(check_number(nms_threshold, "nms_threshold", low=0, high=1))
    topk = int(check_number(topk, "topk", low=1))
    onnx = _import("onnx")
    _import("onnxscript")
    weights = Path(weights)
    if not weights.is_file():
        raise FileNotFoundError(f"weights: no such file: {weights}")
    out = weights.with_suffix(".onnx") if out is None else Path(out)
    if out.suffix != ".onnx":
        raise ValueError(f"out must end in .onnx, got {out}")
    task, spec = _export_spec(weights, score_threshold, nms_threshold, topk)
    module, meta, imgsz = spec.module, dict(spec.metadata), spec.imgsz
    batch = 2 if dynamic else 1  # torch.export specializes a dimension of size 1
    example = torch.zeros(batch, 3, imgsz, imgsz)
    dims: dict[int, Any] = {}
    if dynamic:
        dims[0] = torch.export.Dim("batch", min=1, max=4096)
    if spec.dynamic_hw:  # multiples of the stride, so the graph has no padding branch (OnnxModel pads)
        stride = int(meta["stride"])
        dims[2] = stride * torch.export.Dim("h_blocks", min=1, max=1024)
        dims[3] = stride * torch.export.Dim("w_blocks", min=1, max=1024)
    outputs = list(spec.output_names)
    _clear_anchor_cache(module)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "model.onnx"
        with _quiet_exporter():
            torch.onnx.export(module, (example,), str(raw), input_names=["images"], output_names=outputs,
                              opset_version=opset, dynamo=True, external_data=False, verbose=False,
                              dynamic_shapes=(dims,) if dims else None)
        _clear_anchor_cache(module)
        proto = onnx.load(str(raw))
        meta.update(pixbox_task=task, pixbox_version=__version__, opset=str(opset), dynamic=str(bool(dynamic)),
                    weights=weights.name)
        del proto.metadata_props[:]
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(proto)
        with atomic_open(out, "wb") as f:
            f.write(proto.SerializeToString())
    result: dict[str, Any] = {"path": out, "task": task, "opset": opset, "dynamic": bool(dynamic)}
    if verify:
        pre = meta.get("pre_nms_topk", "")
        inputs, labels, source = spec.check_inputs(batch)
        report = verify_onnx(out, module, inputs, atol=atol, score_threshold=score_threshold,
                             nms_threshold=nms_threshold, topk=topk, pre_nms_topk=int(pre) if pre else None,
                             labels=labels)
        report["check_inputs"] = source
        result.update(report)
        if not report["ok"]:
            os.unlink(out)
            raise VerificationError(f"{out}: ONNX Runtime and PyTorch disagree beyond {atol:g}; the file was "
                                    f"removed\n{format_report(report)}", report)
    return result
