"""MXNet's multibox operators (``mx.nd.contrib.MultiBox*``), with MXNet's names and semantics.

Code written for MXNet's ``contrib.nd.MultiBoxPrior``, ``MultiBoxTarget`` and ``MultiBoxDetection``
(SSD, the MXNet edition of D2L) runs on torch tensors with the same arguments and gives the same
outputs. The semantics follow MXNet's CPU kernels (``src/operator/contrib/multibox_prior.cc``,
``multibox_target.cc`` / ``multibox_target-inl.h``, ``multibox_detection.cc`` /
``multibox_detection-inl.h``, MXNet 1.x/2.0 master):

``MultiBoxPrior``
    ``n + m - 1`` anchors per cell, in the order ``(s_1, 1), ..., (s_n, 1), (s_1, r_2), ...,
    (s_1, r_m)``: the size group always uses aspect ratio **1**; ``ratios[0]`` is never used
    (unlike D2L and :func:`pixbox.ops.generate_anchors`, which use ``ratios[0]`` for the size
    group). Half width ``s * H / W * sqrt(r) / 2``, half height ``s / sqrt(r) / 2`` (normalized),
    centres ``((j + offset_x) * step_x, (i + offset_y) * step_y)`` with ``steps`` defaulting to
    ``(1/H, 1/W)``. Everything is computed in float32 in the kernel's order of operations, then
    cast to the data's dtype, so float32 anchors match MXNet's CPU kernel bit for bit (tested
    against a float32 transcription of the kernel).

``MultiBoxTarget``
    Only the label rows before the first row with class ``-1`` count; later rows are ignored
    even when valid. Matching: (1) greedy bipartite over IoU > 1e-6 (largest IoU first, ties to
    the lower anchor, then the lower label row); (2) only if ``overlap_threshold > 0``: every
    other anchor whose best IoU is **strictly** greater than the threshold. IoUs and thresholds
    are compared in float32, as MXNet does. Positives get ``class + 1``. With
    ``negative_mining_ratio > 0``: ``floor(num_positive * ratio)`` negatives (float32 product),
    chosen among non-positive anchors whose best IoU is < ``negative_mining_thresh``, lowest
    background softmax probability of ``cls_pred`` first (ties: lower anchor); every other
    anchor gets ``ignore_label``. Otherwise every non-positive anchor is background (0).
    Offsets: ``((gx - ax) / aw / vx, (gy - ay) / ah / vy, log(gw / aw) / vw, log(gh / ah) / vh)``,
    i.e. :func:`pixbox.ops.encode_boxes` with ``means=0, stds=variances``.

``MultiBoxDetection``
    Per anchor: the first most probable non-background class and its probability; anchors
    with probability < ``threshold`` are dropped. Boxes are decoded with the variances (no
    clamp before ``exp``) and clipped to [0, 1] when ``clip``. The kept rows are stably sorted by
    score, the first ``nms_topk`` enter a greedy NMS that suppresses at IoU **>=**
    ``nms_threshold`` (per class unless ``force_suppress``); a suppressed row keeps its place,
    score and box and gets class -1. Output rows: the sorted top-k, then the rest of the kept
    rows, then rows of -1 (see :func:`MultiBoxDetection` for the exact layout).

Known differences from MXNet (all other behaviour is MXNet's CPU behaviour):

- ``MultiBoxTarget(minimum_negative_samples=...)`` is honoured as documented (and as MXNet's
  GPU kernel does): at least that many negatives are mined. MXNet's CPU kernel ignores the
  argument. With the default 0 the results are the same.
- ``MultiBoxTarget``: when fewer anchors are eligible as negatives than requested, all
  eligible anchors become negatives; MXNet's CPU kernel aborts with a failed ``CHECK``.
- ``MultiBoxDetection(background_id=...)``: the row ``background_id`` of ``cls_prob`` is the
  background and is skipped; the class ids of the other rows count from 0 with that row
  removed. MXNet declares the argument but its kernels ignore it and always treat row 0 as
  background. With the default 0 the results are the same.
- MXNet's GPU kernels differ from its CPU kernels and are not followed: the GPU
  ``MultiBoxTarget`` does not stop at the first padding row, makes every anchor of an image
  without objects background when mining is off, and may turn high-IoU anchors into negatives
  when fewer are eligible than requested; the GPU
  ``MultiBoxDetection`` keeps sorted rows after the top-k and breaks score ties in an
  unspecified order. Here ties always go to the lower anchor index (the CPU ``stable_sort``).
- Floating point: ``MultiBoxTarget`` computes offsets in the input dtype (MXNet: float32, even
  for float64 input) and an anchor's centre as ``x1 + w / 2`` (MXNet: ``(x1 + x2) / 2``), so
  offsets and decoded boxes may differ from MXNet's in the last bit or two; the background
  probabilities for mining come from :func:`torch.softmax` (MXNet sums the exponentials in a
  loop), so two anchors whose probabilities differ by about one ulp may be ranked the other
  way. float16 inputs are computed in float32 (MXNet computes IoU and boxes in float16) and
  the outputs cast back to float16.
- Thresholds and variances are MXNet ``float`` parameters: they are rounded to float32 here as
  in MXNet, so e.g. ``threshold=0.01`` compares against ``0.0099999998``.
- ``MultiBoxPrior`` derives the automatic steps from each call's input; an MXNet operator
  instance stores them on its first forward pass and keeps them.
- Inputs are validated (``ValueError``/``TypeError`` naming the argument) where MXNet would
  abort with a failed ``CHECK`` or silently produce garbage: non-positive sizes, ratios or
  variances, malformed (``x2 < x1``) or NaN boxes, NaN scores, anchors with a batch dimension
  other than 1 (MXNet silently uses the first), mismatched batch sizes. Empty inputs (no
  anchors, no label rows, an empty feature map) give empty or all-ignored outputs instead of an
  error. Anchors may also be given as ``[A, 4]``. The MXNet-only arguments ``out`` and
  ``name`` do not exist.
- Outputs never carry gradients (MXNet's backward passes return zeros).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from pixbox._checks import (
    check_bool,
    check_boxes,
    check_floating,
    check_four,
    check_int,
    check_number,
    check_positive_list,
    check_same_device,
    check_shape,
    check_tensor,
    is_int,
)
from pixbox.ops.coder import _decode, _encode
from pixbox.ops.matching import _batched_iou, _match
from pixbox.ops.nms import batched_nms

__all__ = ["MultiBoxPrior", "MultiBoxTarget", "MultiBoxDetection"]

_ZERO_MEANS = (0.0, 0.0, 0.0, 0.0)
# MXNet's bipartite stage only takes pairs with IoU above this (a float literal in the kernel).
_BIPARTITE_MIN_IOU = float(np.float32(1e-6))


def _f32(x: float) -> float:
    """``x`` rounded to float32, as MXNet stores its ``float`` operator parameters."""
    return float(np.float32(x))


def _work_dtype(*dtypes: torch.dtype) -> tuple[torch.dtype, torch.dtype]:
    """(output dtype, compute dtype): the promoted input dtype, and float32 for half precision."""
    out = dtypes[0]
    for d in dtypes[1:]:
        out = torch.promote_types(out, d)
    return out, (torch.float64 if out == torch.float64 else torch.float32)


def _number_list(values, name: str) -> list[float]:
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [values]
    return check_positive_list(values, name)


def _pair(values, name: str) -> tuple[float, float]:
    try:
        a, b = values
        return float(a), float(b)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (y, x) of numbers, got {values!r}") from None


def _variances(values) -> tuple[float, float, float, float]:
    v = check_four(values, "variances")
    if not all(x > 0 and math.isfinite(x) for x in v):
        raise ValueError(f"variances must be 4 finite positive numbers, got {tuple(values)}")
    return tuple(_f32(x) for x in v)  # type: ignore[return-value]


def _anchor_2d(anchor, num_anchors: int | None = None) -> Tensor:
    """``anchor [1, A, 4]`` (MXNet's layout) or ``[A, 4]`` -> ``[A, 4]``, checked well-formed."""
    check_tensor(anchor, "anchor")
    if anchor.dim() == 3:
        if anchor.shape[0] != 1:
            raise ValueError(
                f"anchor must have shape [1, A, 4] (anchors are shared by the batch), got {tuple(anchor.shape)}"
            )
        anchor = anchor[0]
    if anchor.dim() != 2 or anchor.shape[1] != 4:
        raise ValueError(f"anchor must have shape [1, A, 4] or [A, 4], got {tuple(anchor.shape)}")
    if num_anchors is not None and anchor.shape[0] != num_anchors:
        raise ValueError(f"anchor must hold A = {num_anchors} anchors (from cls_prob), got {anchor.shape[0]}")
    check_boxes(anchor, "anchor")
    return anchor


def _check_no_nan(x: Tensor, name: str) -> None:
    if bool(torch.isnan(x).any()):
        raise ValueError(f"{name} must not contain NaN")


def _mx_bool(value, name: str) -> bool:
    """A boolean parameter; MXNet's parameters also take the ints 0 and 1."""
    if is_int(value) and value in (0, 1):
        return bool(value)
    return check_bool(value, name)


# --------------------------------------------------------------------------------------------
# MultiBoxPrior


@torch.no_grad()
def MultiBoxPrior(
    data: Tensor,
    sizes: Sequence[float] = (1.0,),
    ratios: Sequence[float] = (1.0,),
    clip: bool = False,
    steps: Sequence[float] = (-1.0, -1.0),
    offsets: Sequence[float] = (0.5, 0.5),
) -> Tensor:
    """Anchor boxes for a feature map (MXNet ``contrib.MultiBoxPrior``).

    Args:
        data (Tensor[B, C, H, W]): the feature map; only its height, width, dtype and device
            are used.
        sizes (sequence of float): anchor sizes, as fractions of the input height; > 0.
        ratios (sequence of float): aspect ratios (width / height in pixels); > 0.
            ``ratios[0]`` is not used: the size group has ratio 1 (MXNet's rule).
        clip (bool): clip the anchors to [0, 1].
        steps ((step_y, step_x)): distance between cell centres, normalized. If either is
            <= 0 both default to ``(1 / H, 1 / W)``; they must not have opposite signs.
        offsets ((offset_y, offset_x)): centre offset within a cell, in cells, each in [0, 1].

    Returns:
        Tensor[1, H * W * (len(sizes) + len(ratios) - 1), 4]: normalized xyxy anchors, cell by
        cell in row-major order, per cell ``(s_1, 1), ..., (s_n, 1), (s_1, r_2), ..., (s_1, r_m)``.
        The dtype and device are the data's.

    Example:
        >>> MultiBoxPrior(torch.zeros(1, 3, 561, 728), sizes=[0.75, 0.5, 0.25], ratios=[1, 2, 0.5]).shape
        torch.Size([1, 2042040, 4])
    """
    check_tensor(data, "data")
    if data.dim() < 4:
        raise ValueError(f"data must have shape [B, C, H, W], got {tuple(data.shape)}")
    check_floating(data, "data")
    sizes = _number_list(sizes, "sizes")
    ratios = _number_list(ratios, "ratios")
    clip = _mx_bool(clip, "clip")
    step_y, step_x = _pair(steps, "steps")
    off_y, off_x = _pair(offsets, "offsets")
    if step_y * step_x < 0:
        raise ValueError(f"steps must be both positive or both non-positive (automatic), got {tuple(steps)}")
    if not (0 <= off_y <= 1 and 0 <= off_x <= 1):
        raise ValueError(f"offsets must be in [0, 1], got {tuple(offsets)}")
    h, w = int(data.shape[2]), int(data.shape[3])
    k = len(sizes) + len(ratios) - 1
    if h == 0 or w == 0:
        return data.new_zeros(1, 0, 4)

    # float32 arithmetic in the kernel's order (numpy float32 scalars round like C floats).
    f = np.float32
    if step_y <= 0 or step_x <= 0:
        sy, sx = f(1) / f(h), f(1) / f(w)
    else:
        sy, sx = f(step_y), f(step_x)
    hf, wf, two = f(h), f(w), f(2)
    half = [(f(s) * hf / wf / two, f(s) / two) for s in sizes]
    s0 = f(sizes[0])
    for r in ratios[1:]:
        sr = np.sqrt(f(r))
        half.append((s0 * hf / wf * sr / two, s0 / sr / two))
    half_t = torch.tensor([[-float(x), -float(y), float(x), float(y)] for x, y in half],
                          dtype=torch.float32, device=data.device)  # [k, 4]

    # Python floats holding float32 values: torch applies them to float32 tensors without rounding.
    cy = (torch.arange(h, dtype=torch.float32, device=data.device) + float(f(off_y))) * float(sy)  # [H]
    cx = (torch.arange(w, dtype=torch.float32, device=data.device) + float(f(off_x))) * float(sx)  # [W]
    centers = torch.stack(torch.broadcast_tensors(cx[None, :], cy[:, None], cx[None, :], cy[:, None]), dim=-1)  # [H, W, 4]
    anchors = centers[:, :, None, :] + half_t  # [H, W, k, 4]
    if clip:
        anchors.clamp_(0, 1)
    return anchors.reshape(1, h * w * k, 4).to(data.dtype)


# --------------------------------------------------------------------------------------------
# MultiBoxTarget


@torch.no_grad()
def MultiBoxTarget(
    anchor: Tensor,
    label: Tensor,
    cls_pred: Tensor,
    overlap_threshold: float = 0.5,
    ignore_label: float = -1.0,
    negative_mining_ratio: float = -1.0,
    negative_mining_thresh: float = 0.5,
    minimum_negative_samples: int = 0,
    variances: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
) -> tuple[Tensor, Tensor, Tensor]:
    """Training targets for anchors (MXNet ``contrib.MultiBoxTarget``; see the module docstring).

    Args:
        anchor (Tensor[1, A, 4] or Tensor[A, 4]): xyxy anchors shared by the batch.
        label (Tensor[B, G, W]): ``W >= 5``, rows ``(class, x1, y1, x2, y2, ...)`` (extra columns
            are ignored). The first row of an image with class -1 ends its objects: its
            coordinates must be -1 too, and every later row is ignored.
        cls_pred (Tensor[B, C + 1, A]): class scores (logits), background at row 0; used only
            for negative mining.
        overlap_threshold (float): an anchor whose best IoU is > this is positive; <= 0
            keeps only the bipartite matches.
        ignore_label (float): ``cls_target`` of anchors that are neither positive nor negative.
        negative_mining_ratio (float): > 0 mines ``floor(ratio * num_positive)`` negatives per
            image; <= 0 makes every non-positive anchor a negative.
        negative_mining_thresh (float): with mining, only anchors whose best IoU is below this
            can be negatives; must be > 0 when mining.
        minimum_negative_samples (int): with mining, at least this many negatives per image
            (as many as are eligible).
        variances (4 floats): offset scales ``(vx, vy, vw, vh)``, > 0.

    Returns:
        tuple:
        - loc_target (Tensor[B, 4A]): encoded offsets of positive anchors, 0 elsewhere.
        - loc_mask (Tensor[B, 4A]): 1 for the offsets of positive anchors, 0 elsewhere.
        - cls_target (Tensor[B, A]): float, like MXNet: ``class + 1`` for positives, 0 for
          negatives, ``ignore_label`` otherwise (every anchor of an image without objects).
    """
    anchors = _anchor_2d(anchor)
    check_floating(label, "label")
    if label.dim() != 3 or label.shape[2] < 5:
        raise ValueError(f"label must have shape [B, G, W] with W >= 5 (class, x1, y1, x2, y2, ...), got {tuple(label.shape)}")
    b, g = int(label.shape[0]), int(label.shape[1])
    a = int(anchors.shape[0])
    check_floating(cls_pred, "cls_pred")
    check_shape(cls_pred, "cls_pred", (b, None, a), f"[B, C + 1, A] = [{b}, C + 1, {a}]")
    if cls_pred.shape[1] < 1:
        raise ValueError(f"cls_pred must have at least one class row, got shape {tuple(cls_pred.shape)}")
    check_same_device("anchor", anchors, "label", label)
    check_same_device("anchor", anchors, "cls_pred", cls_pred)
    thr = _f32(check_number(overlap_threshold, "overlap_threshold"))
    ignore = _f32(check_number(ignore_label, "ignore_label"))
    ratio = _f32(check_number(negative_mining_ratio, "negative_mining_ratio"))
    neg_thr = _f32(check_number(negative_mining_thresh, "negative_mining_thresh"))
    if ratio > 0 and not neg_thr > 0:
        raise ValueError(f"negative_mining_thresh must be > 0 when negative mining is on, got {negative_mining_thresh}")
    min_neg = check_int(minimum_negative_samples, "minimum_negative_samples", low=0)
    var = _variances(variances)
    if ratio > 0:
        _check_no_nan(cls_pred, "cls_pred")

    out_dtype, wd = _work_dtype(anchors.dtype, label.dtype)
    device = anchors.device
    anc = anchors.to(wd)
    lab = label[..., :5].to(wd)

    # Rows before the first class -1 row are the objects (class compared as float, like MXNet).
    is_pad = label[..., 0].float() == -1  # [B, G]
    n_pad = is_pad.long().cumsum(1)
    valid = n_pad == 0  # [B, G]
    first_pad = is_pad & (n_pad == 1)
    bad_pad = first_pad & ~(label[..., 1:5].float() == -1).all(-1)
    if bool(bad_pad.any()):
        bi, gi = bad_pad.nonzero()[0].tolist()
        raise ValueError(
            f"label[{bi}, {gi}] has class -1, which ends the objects of an image in MXNet, so its "
            f"coordinates must be -1 too; got {label[bi, gi, :5].tolist()}"
        )
    gt = lab[..., 1:]  # [B, G, 4]
    bad = valid & (torch.isnan(lab).any(-1) | (gt[..., 2] < gt[..., 0]) | (gt[..., 3] < gt[..., 1]))
    if bool(bad.any()):
        bi, gi = bad.nonzero()[0].tolist()
        raise ValueError(
            f"label[{bi}, {gi}] must be (class, x1, y1, x2, y2) with x1 <= x2, y1 <= y2 and no NaN, "
            f"got {label[bi, gi, :5].tolist()}"
        )

    # IoU in the compute dtype, compared in float32 as MXNet does; rows that don't count hold -1.
    iou = _batched_iou(anc, gt).float().masked_fill(~valid[:, :, None], -1.0)  # [B, G, A]
    has_gt = valid.any(1)  # [B]

    # Stage 1, bipartite: pixbox's greedy matcher on the pairs with IoU > 1e-6 (stage 2 off).
    matched = _match(torch.where(iou > _BIPARTITE_MIN_IOU, iou, -1.0), math.inf, strict=True)  # [B, A]
    # Stage 2, threshold: first best row of each anchor; skipped when the threshold is <= 0.
    if g > 0:
        best, best_gt = iou.max(dim=1)  # [B, A]
    else:
        best = iou.new_full((b, a), -1.0)
        best_gt = torch.zeros((b, a), dtype=torch.long, device=device)
    positive = matched >= 0
    if thr > 0:
        positive |= best > thr
    gt_idx = torch.where(matched >= 0, matched, best_gt)  # [B, A]

    not_pos = ~positive & has_gt[:, None]
    if ratio > 0:
        num_pos = positive.sum(1)  # [B]
        want = torch.floor(num_pos.float() * ratio).long().clamp(min=min_neg)
        eligible = not_pos & (best < neg_thr)
        want = torch.minimum(torch.minimum(want, a - num_pos), eligible.sum(1))
        # Hardest first: lowest background probability (ranked as float32), ties to the lower anchor.
        prob = torch.softmax(cls_pred.to(wd), dim=1)[:, 0, :].float()  # [B, A]
        key = torch.where(eligible, prob, torch.full_like(prob, math.inf))
        order = torch.sort(key, dim=1, stable=True).indices  # [B, A]
        rank = torch.empty_like(order).scatter_(1, order, torch.arange(a, device=device).expand(b, a))
        negative = eligible & (rank < want[:, None])
    else:
        negative = not_pos

    cls_target = torch.full((b, a), ignore, dtype=wd, device=device)
    cls_target.masked_fill_(negative, 0.0)
    if g > 0:
        cls_val = lab[..., 0].gather(1, gt_idx) + 1  # [B, A]
        cls_target = torch.where(positive, cls_val, cls_target)
    loc_target = torch.zeros((b, a, 4), dtype=wd, device=device)
    if bool(positive.any()):
        pb, pa = positive.nonzero().unbind(1)
        loc_target[pb, pa] = _encode(anc[pa], gt[pb, gt_idx[pb, pa]], _ZERO_MEANS, var)
    loc_mask = positive[..., None].expand(b, a, 4).to(out_dtype)
    return (
        loc_target.reshape(b, 4 * a).to(out_dtype),
        loc_mask.reshape(b, 4 * a),
        cls_target.to(out_dtype),
    )


# --------------------------------------------------------------------------------------------
# MultiBoxDetection


def _ge_threshold(t: float, dtype: torch.dtype) -> float:
    """The largest ``v`` below ``t`` in ``dtype``: ``x > v`` iff ``x >= t`` for every ``x`` of ``dtype``.

    MXNet suppresses at ``iou >= nms_threshold``; :func:`pixbox.ops.batched_nms` suppresses at
    ``iou > v`` and compares in the boxes' dtype, where ``v`` (exactly representable) is not
    rounded, so passing ``v`` gives ``>=`` exactly. ``t`` must be representable in ``dtype``.
    """
    v = torch.tensor(t, dtype=dtype)
    return float(torch.nextafter(v, torch.tensor(-math.inf, dtype=dtype)))


@torch.no_grad()
def MultiBoxDetection(
    cls_prob: Tensor,
    loc_pred: Tensor,
    anchor: Tensor,
    clip: bool = True,
    threshold: float = 0.01,
    background_id: int = 0,
    nms_threshold: float = 0.5,
    force_suppress: bool = False,
    variances: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
    nms_topk: int = -1,
) -> Tensor:
    """Detections from class probabilities and offsets (MXNet ``contrib.MultiBoxDetection``).

    Each anchor takes the first most probable class other than ``background_id``; it is kept
    when that probability is >= ``threshold``. Per image, with ``V`` kept anchors, the rows are:

    - if ``0 < nms_threshold <= 1``: rows ``0 .. K-1`` are the kept anchors by decreasing score
      (ties: lower anchor first), ``K = min(V, nms_topk)`` if ``nms_topk > 0`` else ``V``. NMS
      runs on them in that order: a row is suppressed (class -1, score and box kept) when an
      earlier unsuppressed row of the same class (any class with ``force_suppress``) has IoU
      >= ``nms_threshold`` with it. Rows ``K .. V-1`` are the kept anchors at those positions
      *in anchor order*, with class -1 (MXNet's CPU layout; they may repeat rows above);
    - otherwise rows ``0 .. V-1`` are the kept anchors in anchor order, unsorted, no NMS;
    - rows ``V .. A-1`` are all -1.

    Args:
        cls_prob (Tensor[B, C + 1, A]): class probabilities, background at row ``background_id``.
        loc_pred (Tensor[B, 4A]): predicted offsets ``(dx, dy, dw, dh)`` per anchor.
        anchor (Tensor[1, A, 4] or Tensor[A, 4]): xyxy anchors, normalized.
        clip (bool): clip the boxes to [0, 1].
        threshold (float): minimum probability of a detection.
        background_id (int): the background row of ``cls_prob``, in ``[0, C]``.
        nms_threshold (float): NMS IoU threshold; NMS (and sorting) only when in (0, 1].
        force_suppress (bool): suppress across classes.
        variances (4 floats): offset scales ``(vx, vy, vw, vh)``, > 0.
        nms_topk (int): how many of the best rows enter NMS; <= 0 for all.

    Returns:
        Tensor[B, A, 6]: rows ``(class_id, score, x1, y1, x2, y2)``; ``class_id`` counts from 0
        with the background removed, -1 for suppressed rows and padding.
    """
    check_floating(cls_prob, "cls_prob")
    if cls_prob.dim() != 3:
        raise ValueError(f"cls_prob must have shape [B, C + 1, A], got {tuple(cls_prob.shape)}")
    b, c1, a = (int(s) for s in cls_prob.shape)
    if c1 < 1:
        raise ValueError(f"cls_prob must have at least one class row, got shape {tuple(cls_prob.shape)}")
    anchors = _anchor_2d(anchor, a)
    check_floating(loc_pred, "loc_pred")
    check_shape(loc_pred, "loc_pred", (b, 4 * a), f"[B, 4A] = [{b}, {4 * a}]")
    check_same_device("cls_prob", cls_prob, "loc_pred", loc_pred)
    check_same_device("cls_prob", cls_prob, "anchor", anchors)
    _check_no_nan(cls_prob, "cls_prob")
    _check_no_nan(loc_pred, "loc_pred")
    clip = _mx_bool(clip, "clip")
    force_suppress = _mx_bool(force_suppress, "force_suppress")
    thr = _f32(check_number(threshold, "threshold"))
    bg = check_int(background_id, "background_id", low=0)
    if bg >= c1:
        raise ValueError(f"background_id must be a row of cls_prob, in [0, {c1 - 1}], got {bg}")
    nms_thr = _f32(check_number(nms_threshold, "nms_threshold"))
    var = _variances(variances)
    topk = check_int(nms_topk, "nms_topk")

    out_dtype, wd = _work_dtype(cls_prob.dtype, loc_pred.dtype, anchors.dtype)
    device = cls_prob.device
    c = c1 - 1
    probs = cls_prob.to(wd)
    fg = torch.cat([probs[:, :bg], probs[:, bg + 1:]], dim=1)  # [B, C, A]
    if c > 0:
        score, cid = fg.max(dim=1)  # [B, A]; first most probable class
    else:
        score = probs.new_full((b, a), -1.0)
        cid = torch.zeros((b, a), dtype=torch.long, device=device)
    valid = (score > -1) & (score >= thr)  # MXNet starts its running max at -1

    boxes = _decode(anchors.to(wd), loc_pred.to(wd).reshape(b, a, 4), _ZERO_MEANS, var, math.inf)  # [B, A, 4]
    if clip:  # std::max(0, std::min(1, v)) maps NaN to 1
        boxes = torch.where(torch.isnan(boxes), torch.ones_like(boxes), boxes).clamp_(0, 1)
    rows = torch.cat([cid.to(wd)[..., None], score[..., None], boxes], dim=2)  # [B, A, 6]

    pos = torch.arange(a, device=device).expand(b, a)  # [B, A]
    num_valid = valid.sum(1, keepdim=True)  # [B, 1]
    compact = torch.sort((~valid).to(torch.uint8), dim=1, stable=True).indices  # kept anchors first, in order
    nms_on = 0 < nms_thr <= 1
    if nms_on:
        key = torch.where(valid, score, torch.full_like(score, -math.inf))
        ranked = torch.sort(key, dim=1, descending=True, stable=True).indices  # [B, A]
        nkeep = num_valid.clamp(max=topk) if topk > 0 else num_valid  # [B, 1]
    else:
        ranked, nkeep = compact, torch.zeros_like(num_valid)
    head = pos < nkeep  # [B, A]: the sorted rows that enter NMS
    src = torch.where(head, ranked, compact)
    out = rows.gather(1, src[..., None].expand(b, a, 6))  # [B, A, 6]
    # Kept rows past the top-k get class -1 (so do suppressed rows, below).
    drop = (~head & (pos < num_valid)) if nms_on else torch.zeros_like(head)

    if nms_on and bool(head.any()):
        hb, hp = head.nonzero().unbind(1)  # by image, then rank
        hboxes = out[hb, hp, 2:]
        # Non-finite boxes (possible without clip) have IoU 0 or NaN with everything in MXNet:
        # they never suppress and are never suppressed.
        fin = torch.isfinite(hboxes).all(1)
        hb, hp, hboxes = hb[fin], hp[fin], hboxes[fin]
        groups = hb if force_suppress else hb * max(c, 1) + out[hb, hp, 0].long()
        keep = batched_nms(hboxes, -hp, groups, _ge_threshold(nms_thr, hboxes.dtype))
        suppressed = torch.ones(hb.numel(), dtype=torch.bool, device=device)
        suppressed[keep] = False
        drop[hb[suppressed], hp[suppressed]] = True

    out[..., 0] = torch.where(drop, torch.full_like(out[..., 0], -1.0), out[..., 0])
    out[pos >= num_valid] = -1.0
    return out.to(out_dtype)
