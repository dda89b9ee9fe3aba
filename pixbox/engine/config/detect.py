"""The config of a detection run: :class:`DetectConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from pixbox.engine.config._base import RunConfig, _COMMON_CHECKS, _CombinationError, _choice, _float, _int, _text

__all__ = ["AUGMENT_PRESETS", "DetectConfig", "FORMATS"]

#: The dataset formats ``format`` takes (``"auto"`` guesses it from the folder layout).
FORMATS: tuple[str, ...] = ("auto", "csv", "voc", "coco", "yolo")
#: The augmentation presets ``augment`` takes (True means ``"light"``, False ``"none"``):
#: ``"none"`` resizes only; ``"light"`` adds the SSD photometric distortion and horizontal flips;
#: ``"ssd"`` adds the SSD zoom out and IoU crop as well (for long runs).
AUGMENT_PRESETS: tuple[str, ...] = ("none", "light", "ssd")
_BOX_LOSSES = ("smooth_l1", "l1")


def _model_names() -> tuple[str, ...]:
    from pixbox.models import MODELS

    return tuple(MODELS)


def _augment(value, name):
    if isinstance(value, bool):
        return value
    return _choice(AUGMENT_PRESETS)(value, name)


@dataclass(frozen=True)
class DetectConfig(RunConfig):
    """Everything a detection training run depends on.

    Attributes:
        data (str | None): the dataset folder (required to train).
        format (str): ``"auto"``, ``"csv"``, ``"voc"``, ``"coco"`` or ``"yolo"``.
        model (str): a key of :data:`pixbox.models.MODELS`, e.g. ``"tiny_ssd"``.
        proposals (str | None): a region proposals file (:mod:`pixbox.data.proposals`, made with
            ``pixbox detect proposals``) covering the training and validation images; required
            by the Fast R-CNN models (``fast_rcnn_*``) and refused by the others.
        epochs (int): >= 1.
        batch (int): images per training batch, >= 1; under ``torchrun`` the global batch, split
            evenly over the processes (a multiple of their number).
        imgsz (int): training and inference images are resized to ``imgsz x imgsz``, >= 16.
        lr (float): peak learning rate, > 0.
        momentum (float): SGD momentum (AdamW ``beta1``), in [0, 1).
        weight_decay (float): >= 0.
        optimizer (str): ``"sgd"`` or ``"adamw"``.
        scheduler (str): ``"cosine"`` (down to ``lr * final_lr_ratio``) or ``"step"`` (times
            ``gamma`` every ``step_epochs``), after the warm-up; applied at every iteration.
        final_lr_ratio (float): the cosine schedule's last learning rate over ``lr``, in [0, 1].
        step_epochs (int | None): the step schedule's period in epochs, >= 1; None: a third of
            ``epochs`` (at least 1).
        gamma (float): the step schedule's factor, in (0, 1].
        warmup_epochs (float): linear warm-up length in epochs (fractions allowed), >= 0.
        grad_clip (float | None): clip the gradient norm to this, > 0; None: no clipping.
        workers (int): data loading processes, >= 0 (0 loads in the training process). Different
            values give different (each reproducible) augmentations.
        device (str): ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``
            or ``"mps"``.
        name (str): the run's folder name under ``project``.
        project (str): the folder that holds the runs.
        seed (int): >= 0; the same seed on the CPU gives the same metrics.
        eval_every (int): evaluate on the validation split every this many epochs (and after
            the last one), >= 1.
        patience (int): stop when ``monitor`` has not improved for this many epochs, >= 0;
            0 never stops early.
        monitor (str): the validation metric that picks ``best.pt`` and drives early stopping
            (higher is better): ``"map"``, ``"map_50"``, ``"map_75"``, ``"voc07_ap50"`` or
            ``"voc_ap50"``.
        amp (bool | str): mixed precision (:func:`pixbox.engine.precision.resolve_amp`): ``"auto"``
            (float16 on CUDA, bfloat16 on a CPU with native bfloat16, float32 elsewhere), True
            (autocast wherever PyTorch has it, emulated bfloat16 on other CPUs) or False
            (float32). ``--amp`` / ``--no-amp`` on the command line.
        channels_last (bool): train in the ``channels_last`` memory format.
        sync_bn (bool): under ``torchrun`` with several processes, synchronise BatchNorm
            statistics across them (:class:`torch.nn.SyncBatchNorm`, CUDA only); ignored in a
            single process.
        negative_mining_ratio (float | None): negatives per positive anchor in the loss
            (SSD hard negative mining), > 0; None uses every anchor (the D2L loss).
        box_loss (str): ``"smooth_l1"`` or ``"l1"``.
        augment (bool | str): a preset of :data:`AUGMENT_PRESETS`, or True (``"light"``) or
            False (``"none"``).
        score_threshold (float): evaluation keeps detections scoring above this, in [0, 1).
        nms_threshold (float): per-class NMS IoU threshold, in (0, 1].
        topk (int): detections kept per image, >= 1.
        train_split (str): the training split's name.
        val_split (str | None): the validation split's name; None: no evaluation (``best.pt``
            is then the last epoch).
        limit_train (int | None): use only the first this many training images, >= 1.
        limit_val (int | None): use only the first this many validation images, >= 1.
    """

    data: str | None = None
    format: str = "auto"
    model: str = "tiny_ssd"
    proposals: str | None = None
    epochs: int = 30
    batch: int = 16
    imgsz: int = 256
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    scheduler: str = "cosine"
    final_lr_ratio: float = 0.01
    step_epochs: int | None = None
    gamma: float = 0.1
    warmup_epochs: float = 1.0
    grad_clip: float | None = 10.0
    workers: int = 2
    device: str = "auto"
    name: str = "train"
    project: str = "runs/detect"
    seed: int = 0
    eval_every: int = 1
    patience: int = 0
    monitor: str = "map_50"
    amp: bool | str = "auto"
    channels_last: bool = False
    sync_bn: bool = False
    negative_mining_ratio: float | None = 3.0
    box_loss: str = "smooth_l1"
    augment: bool | str = "light"
    score_threshold: float = 0.01
    nms_threshold: float = 0.45
    topk: int = 200
    train_split: str = "train"
    val_split: str | None = "val"
    limit_train: int | None = None
    limit_val: int | None = None

    def __post_init__(self):
        super().__post_init__()
        from pixbox.models import needs_proposals

        if needs_proposals(self.model) and self.proposals is None:
            raise _CombinationError(f"model {self.model!r} (Fast R-CNN) classifies region proposals: pass "
                                    "--proposals FILE (proposals: FILE in a config), a file made with "
                                    "`pixbox detect proposals --data DIR -o FILE`")
        if self.proposals is not None and not needs_proposals(self.model):
            raise _CombinationError(f"model {self.model!r} does not take region proposals, got proposals="
                                    f"{self.proposals!r}; use a fast_rcnn_* model or drop the proposals")

    @property
    def augment_preset(self) -> str:
        """str: ``augment`` as a preset name of :data:`AUGMENT_PRESETS`."""
        if isinstance(self.augment, bool):
            return "light" if self.augment else "none"
        return self.augment


_DETECT_CHECKS = {
    **_COMMON_CHECKS,
    "format": _choice(FORMATS),
    "model": _choice(_model_names),
    "proposals": _text(optional=True),
    "monitor": _choice(("map", "map_50", "map_75", "voc07_ap50", "voc_ap50")),
    "negative_mining_ratio": _float(0, low_open=True, optional=True),
    "box_loss": _choice(_BOX_LOSSES),
    "augment": _augment,
    "score_threshold": _float(0, 1, high_open=True),
    "nms_threshold": _float(0, 1, low_open=True),
    "topk": _int(1),
}
DetectConfig._CHECKS = _DETECT_CHECKS
