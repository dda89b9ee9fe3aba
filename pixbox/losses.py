"""Detection losses for anchor-based single-shot detectors (SSD, D2L's TinySSD), and the
losses of neural style transfer.

:func:`multibox_loss` takes the model's outputs (D2L layout) and the targets of
:func:`pixbox.ops.multibox_target` and has two modes:

- **SSD** (``negative_mining_ratio`` a number, default 3): cross-entropy over the positive
  anchors and the hardest negatives, ``ratio`` negatives per positive in each image
  (:func:`pixbox.ops.hard_negative_mining`, ranked by background cross-entropy), plus a smooth
  L1 (or L1) loss over the offsets of the positive anchors; both are sums divided by the number
  of positive anchors in the batch (at least 1). An image without objects still keeps
  ``min_negatives`` negatives (default ``floor(ratio)``, what one positive would give), so
  the background of object-free images keeps training.
- **D2L** (``negative_mining_ratio=None``): the book's ``calc_loss``: per image, the mean
  cross-entropy over all anchors plus the mean L1 loss over the masked offsets
  (``bbox_preds * bbox_masks`` against ``bbox_labels * bbox_masks``), then the batch mean.

Anchors labelled -1 (ignored, e.g. by mining in ``multibox_target``) never contribute, in either
mode. A batch without objects gives a finite loss and finite gradients.

Box regression losses on aligned pairs of boxes, as ``torchvision.ops`` has them (same
formulas, ``eps`` and reductions): :func:`generalized_box_iou_loss` (``1 - GIoU``, Rezatofighi
et al., 2019), :func:`distance_box_iou_loss` (``1 - DIoU``) and :func:`complete_box_iou_loss`
(``1 - CIoU``, both Zheng et al., 2020). The pairwise forms are in :mod:`pixbox.ops`.

Style transfer (Gatys et al., 2016, as D2L section 14.12 writes it): :func:`content_loss`, the mean
squared error of feature maps; :func:`gram`, the channel correlations of a feature map divided by
``c * h * w``; :func:`style_loss`, the mean squared error of Gram matrices; :func:`tv_loss`, the
total variation of an image, for smoothness. The targets (content features, style Gram matrices)
are detached: only the synthesized image gets gradients.

Example:
    >>> from pixbox.models import tiny_ssd
    >>> from pixbox.ops import multibox_target
    >>> net = tiny_ssd(num_classes=1)
    >>> anchors, cls_preds, bbox_preds = net(torch.rand(2, 3, 64, 64))
    >>> labels = torch.tensor([[[0, 0.1, 0.1, 0.5, 0.6]], [[-1, 0, 0, 0, 0]]])  # the 2nd image has no object
    >>> bbox_labels, bbox_masks, cls_labels = multibox_target(anchors, labels)
    >>> out = multibox_loss(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks)
    >>> sorted(out), bool(out["loss"].isfinite())
    (['box', 'cls', 'loss'], True)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pixbox._checks import check_choice, check_floating, check_number, check_same_device, check_shape, check_tensor
from pixbox.ops.boxes import _aspect_angle
from pixbox.ops.matching import hard_negative_mining

__all__ = [
    "MultiBoxLoss",
    "complete_box_iou_loss",
    "content_loss",
    "distance_box_iou_loss",
    "generalized_box_iou_loss",
    "gram",
    "multibox_loss",
    "style_loss",
    "tv_loss",
]

_BOX_LOSSES = ("smooth_l1", "l1")
_REDUCTIONS = ("mean", "sum", "none")


def _check_inputs(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks) -> tuple[int, int, int]:
    check_floating(cls_preds, "cls_preds")
    if cls_preds.dim() != 3 or cls_preds.shape[2] < 2:
        raise ValueError(f"cls_preds must have shape [B, A, C + 1] with C >= 1, got {tuple(cls_preds.shape)}")
    b, a, c1 = cls_preds.shape
    check_tensor(cls_labels, "cls_labels")
    if cls_labels.is_floating_point() or cls_labels.dtype == torch.bool:
        raise TypeError(f"cls_labels must be an integer tensor, got dtype {cls_labels.dtype}")
    check_shape(cls_labels, "cls_labels", (b, a), f"[B, A] = [{b}, {a}]")
    for name, t in (("bbox_preds", bbox_preds), ("bbox_labels", bbox_labels), ("bbox_masks", bbox_masks)):
        check_floating(t, name)
        check_shape(t, name, (b, 4 * a), f"[B, 4A] = [{b}, {4 * a}]")
    for name, t in (("bbox_preds", bbox_preds), ("cls_labels", cls_labels), ("bbox_labels", bbox_labels),
                    ("bbox_masks", bbox_masks)):
        check_same_device("cls_preds", cls_preds, name, t)
    if cls_labels.numel():
        lo, hi = int(cls_labels.min()), int(cls_labels.max())
        if lo < -1 or hi >= c1:
            raise ValueError(f"cls_labels must be in [-1, {c1 - 1}] (-1 ignored, 0 background, 1..C objects, "
                             f"C + 1 = {c1} from cls_preds), got values in [{lo}, {hi}]")
    return b, a, c1


def multibox_loss(
    cls_preds: Tensor,
    bbox_preds: Tensor,
    cls_labels: Tensor,
    bbox_labels: Tensor,
    bbox_masks: Tensor,
    *,
    negative_mining_ratio: float | None = 3.0,
    box_loss: str | None = None,
    reduction: str = "mean",
    min_negatives: int | None = None,
) -> dict[str, Tensor]:
    """Class and box loss of a single-shot detector (see the module docstring for the two modes).

    Args:
        cls_preds (Tensor[B, A, C + 1]): class logits, background at index 0.
        bbox_preds (Tensor[B, 4A]): predicted offsets.
        cls_labels (Tensor[B, A]): integer; 0 background, ``1 .. C`` objects, -1 ignored.
        bbox_labels (Tensor[B, 4A]): target offsets (0 where not assigned).
        bbox_masks (Tensor[B, 4A]): 1 for the offsets of assigned anchors, 0 elsewhere.
        negative_mining_ratio (float or None): negatives kept per positive (SSD mode, >= 0), or
            None for D2L's plain loss over all anchors.
        box_loss (str or None): ``"smooth_l1"`` (beta 1) or ``"l1"``; default ``"smooth_l1"`` in
            SSD mode and ``"l1"`` in D2L mode (so ``negative_mining_ratio=None`` alone is
            exactly the book's loss).
        reduction (str): ``"mean"``, ``"sum"`` or ``"none"``. D2L mode: the per-image losses
            ``[B]`` (``"none"``), their mean or their sum. SSD mode: ``"mean"`` is the SSD loss,
            sums over the batch divided by ``max(1, positives in the batch)``; ``"none"`` the
            per-image terms of that sum ``[B]`` (they add up to ``"mean"``); ``"sum"`` the
            undivided sums.
        min_negatives (int, optional): SSD mode, the fewest negatives kept per image (at most
            the background anchors there are). Default ``floor(negative_mining_ratio)``.

    Returns:
        dict: ``loss = cls + box``, ``cls`` (class loss) and ``box`` (box loss), each a scalar
        tensor (``[B]`` with ``reduction="none"``), differentiable w.r.t. the predictions.
        Half and bfloat16 predictions (e.g. under autocast) are upcast: the losses are float32.
    """
    b, a, c1 = _check_inputs(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks)
    reduction = check_choice(reduction, "reduction", _REDUCTIONS)
    if box_loss is None:
        box_loss = "l1" if negative_mining_ratio is None else "smooth_l1"
    box_loss = check_choice(box_loss, "box_loss", _BOX_LOSSES)
    labels = cls_labels.long()
    if cls_preds.dtype in (torch.float16, torch.bfloat16):  # e.g. from autocast: compute in float32
        cls_preds = cls_preds.float()
    if bbox_preds.dtype in (torch.float16, torch.bfloat16):
        bbox_preds = bbox_preds.float()

    if negative_mining_ratio is not None:
        ratio = check_number(negative_mining_ratio, "negative_mining_ratio", low=0)
        if min_negatives is None:
            min_negatives = int(ratio)
        min_negatives = int(check_number(min_negatives, "min_negatives", low=0))
        labels = hard_negative_mining(cls_preds.detach(), labels, ratio, min_negative_samples=min_negatives)
    elif min_negatives is not None:
        raise ValueError("min_negatives is only used for hard negative mining; pass negative_mining_ratio too")

    ce = F.cross_entropy(cls_preds.reshape(b * a, c1), labels.reshape(b * a), ignore_index=-1, reduction="none")
    ce = ce.reshape(b, a)  # [B, A], 0 where ignored
    fn = F.smooth_l1_loss if box_loss == "smooth_l1" else F.l1_loss
    box = fn(bbox_preds * bbox_masks, bbox_labels * bbox_masks, reduction="none")  # [B, 4A]

    if negative_mining_ratio is None:
        valid = (labels >= 0).sum(dim=1).clamp(min=1).to(ce.dtype)  # [B]
        cls_i = ce.sum(dim=1) / valid  # [B]; the mean over all anchors when none is ignored
        box_i = box.mean(dim=1) if a else box.sum(dim=1)  # [B]
        if reduction == "mean":
            cls_i, box_i = cls_i.mean(), box_i.mean()
        elif reduction == "sum":
            cls_i, box_i = cls_i.sum(), box_i.sum()
    else:
        cls_i = ce.sum(dim=1)  # [B]
        box_i = box.sum(dim=1)  # [B]
        if reduction != "sum":
            num_pos = (labels > 0).sum().clamp(min=1).to(ce.dtype)
            cls_i, box_i = cls_i / num_pos, box_i / num_pos
        if reduction != "none":
            cls_i, box_i = cls_i.sum(), box_i.sum()
    return {"loss": cls_i + box_i, "cls": cls_i, "box": box_i}


class MultiBoxLoss(nn.Module):
    """Stores the options of :func:`multibox_loss` and calls it.

    Args:
        negative_mining_ratio, box_loss, reduction, min_negatives: as in :func:`multibox_loss`.

    Example:
        >>> criterion = MultiBoxLoss(negative_mining_ratio=None)  # D2L's calc_loss, batch mean
    """

    def __init__(self, *, negative_mining_ratio: float | None = 3.0, box_loss: str | None = None,
                 reduction: str = "mean", min_negatives: int | None = None) -> None:
        super().__init__()
        if negative_mining_ratio is not None:
            check_number(negative_mining_ratio, "negative_mining_ratio", low=0)
        elif min_negatives is not None:
            raise ValueError("min_negatives is only used for hard negative mining; pass negative_mining_ratio too")
        if min_negatives is not None:
            check_number(min_negatives, "min_negatives", low=0)
        if box_loss is not None:
            check_choice(box_loss, "box_loss", _BOX_LOSSES)
        self.negative_mining_ratio = negative_mining_ratio
        self.box_loss = box_loss
        self.reduction = check_choice(reduction, "reduction", _REDUCTIONS)
        self.min_negatives = min_negatives

    def forward(self, cls_preds: Tensor, bbox_preds: Tensor, cls_labels: Tensor, bbox_labels: Tensor,
                bbox_masks: Tensor) -> dict[str, Tensor]:
        return multibox_loss(cls_preds, bbox_preds, cls_labels, bbox_labels, bbox_masks,
                             negative_mining_ratio=self.negative_mining_ratio, box_loss=self.box_loss,
                             reduction=self.reduction, min_negatives=self.min_negatives)

    def extra_repr(self) -> str:
        return (f"negative_mining_ratio={self.negative_mining_ratio}, box_loss={self.box_loss}, "
                f"reduction={self.reduction!r}, min_negatives={self.min_negatives}")


# --- IoU losses ------------------------------------------------------------------------------

_IOU_REDUCTIONS = ("none", "mean", "sum")
_TORCHVISION_EPS = 1e-7  # torchvision's default eps


def _check_loss_boxes(boxes1, boxes2) -> tuple[Tensor, Tensor]:
    """Validated aligned boxes ``[..., 4]``, in float32 unless float64 (torchvision's upcast)."""
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        check_tensor(b, name)
        if b.dtype == torch.bool or b.is_complex():
            raise TypeError(f"{name} must be a float or integer tensor, got dtype {b.dtype}")
        if b.dim() == 0 or b.shape[-1] != 4:
            raise ValueError(f"{name} must have shape [N, 4] or [4] (xyxy), got {tuple(b.shape)}")
    check_same_device("boxes1", boxes1, "boxes2", boxes2)
    try:
        torch.broadcast_shapes(boxes1.shape, boxes2.shape)
    except RuntimeError:
        raise ValueError(f"boxes1 and boxes2 must be aligned pairs of boxes (shapes that broadcast), "
                         f"got {tuple(boxes1.shape)} and {tuple(boxes2.shape)}") from None
    out = []
    for name, b in (("boxes1", boxes1), ("boxes2", boxes2)):
        if b.dtype not in (torch.float32, torch.float64):
            b = b.float()
        if b.numel():
            d = b.detach()
            bad = (d[..., 2] < d[..., 0]) | (d[..., 3] < d[..., 1]) | ~torch.isfinite(d).all(-1)
            if bool(bad.any()):
                at = tuple(bad.nonzero()[0].tolist())
                raise ValueError(f"{name} must be well-formed xyxy boxes with x1 <= x2 and y1 <= y2, all finite; "
                                 f"box {list(at)} is {d[at].tolist()} ({int(bad.sum())} bad boxes in all)")
        out.append(b)
    return out[0], out[1]


def _reduce_iou_loss(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        # 0 for no boxes, still connected to the inputs so that backward works.
        return loss.mean() if loss.numel() > 0 else 0.0 * loss.sum()
    return loss.sum() if reduction == "sum" else loss


def _check_iou_reduction(reduction) -> str:
    try:
        return check_choice(reduction, "reduction", _IOU_REDUCTIONS)
    except ValueError as e:  # torchvision's tests match "Invalid"
        raise ValueError(f"Invalid reduction: {e}") from None


def _inter_union_enclosing(boxes1: Tensor, boxes2: Tensor):
    """Elementwise intersection, union and enclosing box ``(xc1, yc1, xc2, yc2)`` of aligned pairs."""
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    ix1, iy1 = torch.maximum(x1, x1g), torch.maximum(y1, y1g)
    ix2, iy2 = torch.minimum(x2, x2g), torch.minimum(y2, y2g)
    overlap = (iy2 > iy1) & (ix2 > ix1)  # a strict overlap: no gradient through touching boxes
    inter = torch.where(overlap, (ix2 - ix1) * (iy2 - iy1), torch.zeros_like(ix1))
    union = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - inter
    enclosing = (torch.minimum(x1, x1g), torch.minimum(y1, y1g), torch.maximum(x2, x2g), torch.maximum(y2, y2g))
    return inter, union, enclosing


def _diou_loss_iou(boxes1: Tensor, boxes2: Tensor, eps: float) -> tuple[Tensor, Tensor]:
    """``1 - DIoU`` and the IoU of aligned pairs (torchvision's arithmetic)."""
    inter, union, (xc1, yc1, xc2, yc2) = _inter_union_enclosing(boxes1, boxes2)
    iou = inter / (union + eps)
    diagonal2 = ((xc2 - xc1) ** 2) + ((yc2 - yc1) ** 2) + eps  # squared diagonal of the enclosing box
    x1, y1, x2, y2 = boxes1.unbind(-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(-1)
    centre2 = (((x2 + x1) / 2 - (x1g + x2g) / 2) ** 2) + (((y2 + y1) / 2 - (y1g + y2g) / 2) ** 2)
    return 1 - iou + (centre2 / diagonal2), iou


def generalized_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """``1 - GIoU`` of aligned pairs of boxes (Rezatofighi et al., 2019), as torchvision's.

    ``GIoU = IoU - (C - U) / C`` with ``IoU = I / (U + eps)`` and ``C`` the area of the smallest
    box enclosing the pair (divided as ``C + eps``). Symmetric in its two arguments.

    Args:
        boxes1 (Tensor[N, 4] or Tensor[4]): xyxy, ``x1 <= x2``, ``y1 <= y2`` (e.g. predictions).
        boxes2 (Tensor[N, 4] or Tensor[4]): xyxy, paired with ``boxes1`` (shapes broadcast).
        reduction (str): ``"none"`` (one loss per pair), ``"mean"`` (0 for no pairs, still
            differentiable) or ``"sum"``.
        eps (float): keeps the divisions finite.

    Returns:
        Tensor: ``[N]`` (or ``[]`` for single boxes) with ``"none"``, else a scalar; float32
        unless the boxes are float64 (half precision and integers are computed in float32).

    Example:
        >>> generalized_box_iou_loss(torch.tensor([0.0, 0, 1, 1]), torch.tensor([1.0, 1, 2, 2]))
        tensor(1.5000)
    """
    reduction = _check_iou_reduction(reduction)
    eps = check_number(eps, "eps", low=0)
    boxes1, boxes2 = _check_loss_boxes(boxes1, boxes2)
    inter, union, (xc1, yc1, xc2, yc2) = _inter_union_enclosing(boxes1, boxes2)
    iou = inter / (union + eps)
    area_c = (xc2 - xc1) * (yc2 - yc1)
    giou = iou - ((area_c - union) / (area_c + eps))
    return _reduce_iou_loss(1 - giou, reduction)


def distance_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """``1 - DIoU`` of aligned pairs of boxes (Zheng et al., 2020), as torchvision's.

    ``1 - IoU + d^2 / c^2`` with ``IoU = I / (U + eps)``, ``d`` the distance between the box
    centres and ``c`` the diagonal of the smallest enclosing box (``c^2 + eps``). Unlike the
    GIoU loss it still pulls the centres together when one box contains the other.

    Args:
        boxes1 (Tensor[N, 4] or Tensor[4]): xyxy, ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (Tensor[N, 4] or Tensor[4]): xyxy, paired with ``boxes1`` (shapes broadcast).
        reduction (str): ``"none"``, ``"mean"`` (0 for no pairs) or ``"sum"``.
        eps (float): keeps the divisions finite.

    Returns:
        Tensor: ``[N]`` with ``"none"``, else a scalar; float32 unless the boxes are float64.

    Example:
        >>> distance_box_iou_loss(torch.tensor([-1.0, -1, 1, 1]), torch.tensor([0.0, 0, 1, 1]))
        tensor(0.8125)
    """
    reduction = _check_iou_reduction(reduction)
    eps = check_number(eps, "eps", low=0)
    boxes1, boxes2 = _check_loss_boxes(boxes1, boxes2)
    loss, _ = _diou_loss_iou(boxes1, boxes2, eps)
    return _reduce_iou_loss(loss, reduction)


def complete_box_iou_loss(boxes1: Tensor, boxes2: Tensor, reduction: str = "none", eps: float = 1e-7) -> Tensor:
    """``1 - CIoU`` of aligned pairs of boxes (Zheng et al., 2020), as torchvision's.

    The DIoU loss plus ``alpha * v``, where ``v = 4 / pi^2 * (atan(w1 / h1) - atan(w2 / h2))^2``
    compares the aspect ratios and ``alpha = v / (1 - IoU + v + eps)`` is a constant for autograd.
    As in torchvision, ``eps`` enters ``alpha`` only: the DIoU part always uses 1e-7. An empty box
    (zero width and height) has aspect angle 0 here, where torchvision's gives NaN.

    Args:
        boxes1 (Tensor[N, 4] or Tensor[4]): xyxy, ``x1 <= x2``, ``y1 <= y2``.
        boxes2 (Tensor[N, 4] or Tensor[4]): xyxy, paired with ``boxes1`` (shapes broadcast).
        reduction (str): ``"none"``, ``"mean"`` (0 for no pairs) or ``"sum"``.
        eps (float): keeps ``alpha`` finite.

    Returns:
        Tensor: ``[N]`` with ``"none"``, else a scalar; float32 unless the boxes are float64.

    Example:
        >>> complete_box_iou_loss(torch.tensor([-1.0, -1, 1, 1]), torch.tensor([0.0, 0, 1, 1]))
        tensor(0.8125)
    """
    reduction = _check_iou_reduction(reduction)
    eps = check_number(eps, "eps", low=0)
    boxes1, boxes2 = _check_loss_boxes(boxes1, boxes2)
    diou_loss, iou = _diou_loss_iou(boxes1, boxes2, _TORCHVISION_EPS)
    a1 = _aspect_angle(boxes1[..., 2] - boxes1[..., 0], boxes1[..., 3] - boxes1[..., 1])
    a2 = _aspect_angle(boxes2[..., 2] - boxes2[..., 0], boxes2[..., 3] - boxes2[..., 1])
    v = (4 / (math.pi ** 2)) * torch.pow(a2 - a1, 2)
    with torch.no_grad():
        alpha = v / (1 - iou + v + eps)
    return _reduce_iou_loss(diou_loss + alpha * v, reduction)


# --- Neural style transfer -------------------------------------------------------------------


def _check_feature_map(x, name: str) -> Tensor:
    check_floating(x, name)
    if x.dim() not in (3, 4) or x.numel() == 0:
        raise ValueError(f"{name} must be a non-empty feature map [C, H, W] or [B, C, H, W], "
                         f"got shape {tuple(x.shape)}")
    return x


def content_loss(y_hat: Tensor, y: Tensor) -> Tensor:
    """Content loss of style transfer: the mean squared error between two feature maps.

    D2L's ``content_loss``: ``((y_hat - y.detach()) ** 2).mean()``.

    Args:
        y_hat (Tensor[B, C, H, W] or Tensor[C, H, W]): features of the synthesized image.
        y (Tensor): features of the content image, the same shape as ``y_hat`` or broadcastable
            to it (e.g. ``[1, C, H, W]`` for a batch); treated as a constant (detached).

    Returns:
        Tensor: scalar, differentiable w.r.t. ``y_hat``.

    Example:
        >>> content_loss(torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[0.0, 0.0]]]))
        tensor(2.5000)
    """
    _check_feature_map(y_hat, "y_hat")
    _check_feature_map(y, "y")
    check_same_device("y_hat", y_hat, "y", y)
    try:
        shape = torch.broadcast_shapes(y_hat.shape, y.shape)
    except RuntimeError:
        shape = None
    if shape != y_hat.shape:
        raise ValueError(f"y must have the shape of y_hat {tuple(y_hat.shape)} or broadcast to it, "
                         f"got {tuple(y.shape)}")
    return torch.square(y_hat - y.detach()).mean()


def gram(x: Tensor) -> Tensor:
    """Gram matrix of a feature map, normalized by its number of elements ``c * h * w``.

    With ``X`` the map reshaped to ``[C, H * W]``, ``gram(x) = X @ X.T / (C * H * W)`` (D2L's
    ``gram``), for each image of a batch.

    Args:
        x (Tensor[B, C, H, W] or Tensor[C, H, W]): float feature map.

    Returns:
        Tensor[B, C, C] (or Tensor[C, C] for a ``[C, H, W]`` input): symmetric, same dtype as ``x``.

    Example:
        >>> gram(torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]]))  # C = 2, H = 1, W = 2
        tensor([[1.2500, 2.7500],
                [2.7500, 6.2500]])
    """
    _check_feature_map(x, "x")
    c, h, w = x.shape[-3:]
    flat = x.reshape(*x.shape[:-3], c, h * w)  # [B, C, HW] or [C, HW]
    return flat @ flat.transpose(-1, -2) / (c * h * w)  # [B, C, C] or [C, C]


def style_loss(y_hat: Tensor, gram_y: Tensor) -> Tensor:
    """Style loss of style transfer: the mean squared error between Gram matrices.

    D2L's ``style_loss``: ``((gram(y_hat) - gram_y.detach()) ** 2).mean()``.

    Args:
        y_hat (Tensor[B, C, H, W] or Tensor[C, H, W]): features of the synthesized image.
        gram_y (Tensor[C, C] or Tensor[B, C, C]): :func:`gram` of the style image's features
            (computed once), treated as a constant; a ``[C, C]`` target applies to every image.

    Returns:
        Tensor: scalar, differentiable w.r.t. ``y_hat``.

    Example:
        >>> x = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])
        >>> style_loss(x, gram(x))
        tensor(0.)
    """
    _check_feature_map(y_hat, "y_hat")
    check_floating(gram_y, "gram_y")
    check_same_device("y_hat", y_hat, "gram_y", gram_y)
    c = y_hat.shape[-3]
    g = gram(y_hat)  # [B, C, C] or [C, C]
    if gram_y.dim() not in (2, 3) or gram_y.shape[-2:] != (c, c) or (
            gram_y.dim() == 3 and (g.dim() != 3 or gram_y.shape[0] not in (1, g.shape[0]))):
        raise ValueError(f"gram_y must have shape [C, C] or [B, C, C] with C = {c} (the channels of y_hat "
                         f"{tuple(y_hat.shape)}), got {tuple(gram_y.shape)}")
    return torch.square(g - gram_y.detach()).mean()


def tv_loss(y_hat: Tensor) -> Tensor:
    """Total variation loss: the mean absolute difference of neighbouring pixels, for smoothness.

    D2L's ``tv_loss``: ``0.5 * (|y[..., 1:, :] - y[..., :-1, :]|.mean() + |y[..., :, 1:] - y[..., :, :-1]|.mean())``.

    Args:
        y_hat (Tensor[B, C, H, W] or Tensor[C, H, W]): float image (or feature map) with
            ``H, W >= 2``.

    Returns:
        Tensor: scalar, differentiable w.r.t. ``y_hat``; 0 for a constant image.

    Example:
        >>> tv_loss(torch.tensor([[[0.0, 1.0], [0.0, 1.0]]]))  # vertical 0, horizontal 1
        tensor(0.5000)
    """
    _check_feature_map(y_hat, "y_hat")
    if y_hat.shape[-1] < 2 or y_hat.shape[-2] < 2:
        raise ValueError(f"y_hat must have H >= 2 and W >= 2, got shape {tuple(y_hat.shape)}")
    dy = torch.abs(y_hat[..., 1:, :] - y_hat[..., :-1, :]).mean()
    dx = torch.abs(y_hat[..., :, 1:] - y_hat[..., :, :-1]).mean()
    return 0.5 * (dy + dx)
