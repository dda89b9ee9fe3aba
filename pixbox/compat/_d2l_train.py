"""The D2L book's computation and training helpers used by chapter 14: ``corr2d``, the small
``resnet18``, ``init_cnn``, ``accuracy``, ``evaluate_accuracy_gpu``, ``train_batch_ch13`` and
``train_ch13``, with the book's signatures and printed lines.

Re-exported by :mod:`pixbox.compat.d2l`, whose docstring lists where they differ from D2L 1.0.3.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from pixbox.compat._d2l_utils import Accumulator, Timer, quick_batches, try_all_gpus

__all__ = [
    "Residual",
    "accuracy",
    "corr2d",
    "evaluate_accuracy_gpu",
    "init_cnn",
    "resnet18",
    "train_batch_ch13",
    "train_ch13",
]


def corr2d(X: Tensor, K: Tensor) -> Tensor:
    """2D cross-correlation of ``X [H, W]`` with ``K [h, w]``: ``[H - h + 1, W - w + 1]``.

    ``Y[i, j] = sum(X[i:i + h, j:j + w] * K)``, as the book's loop, differentiable in ``X`` and
    ``K``. The result is float: the inputs' dtype when they are float, else the default dtype
    (the book always returns float32).
    """
    for t, name in ((X, "X"), (K, "K")):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"{name} must have shape [H, W], got {tuple(t.shape)}")
    h, w = K.shape
    if h > X.shape[0] or w > X.shape[1]:
        raise ValueError(f"K must fit in X, got K {tuple(K.shape)} and X {tuple(X.shape)}")
    dtype = torch.promote_types(X.dtype, K.dtype)
    if not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    windows = X.to(dtype).unfold(0, h, 1).unfold(1, w, 1)  # [H - h + 1, W - w + 1, h, w]
    return (windows * K.to(dtype)).sum(dim=(-2, -1))


def init_cnn(module: nn.Module) -> None:
    """Xavier-uniform weights for ``nn.Linear`` and ``nn.Conv2d`` (use with ``net.apply``)."""
    if type(module) is nn.Linear or type(module) is nn.Conv2d:
        nn.init.xavier_uniform_(module.weight)


class Residual(nn.Module):
    """The book's residual block: two 3x3 convolutions (with bias) and batch norms, and a 1x1
    convolution on the shortcut when ``use_1x1conv``.

    Args:
        in_channels (int): input channels (the book's block is lazy and infers them).
        num_channels (int): output channels.
        use_1x1conv (bool): project the shortcut with a strided 1x1 convolution.
        strides (int): stride of the first convolution (and of the projection).
    """

    def __init__(self, in_channels: int, num_channels: int, use_1x1conv: bool = False, strides: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(in_channels, num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X: Tensor) -> Tensor:
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3 is not None:
            X = self.conv3(X)
        return F.relu(Y + X)


def resnet18(num_classes: int, in_channels: int = 1) -> nn.Sequential:
    """The book's slightly modified ResNet-18 for small images: a 3x3 stride-1 stem without
    max-pooling, four stages of two :class:`Residual` blocks (64, 128, 256, 512 channels),
    global average pooling and a linear layer; logits ``[B, num_classes]``.

    Module names and parameter shapes are the book's (``0``, ``1``, ``resnet_block1`` ..
    ``resnet_block4``, ``global_avg_pool``, ``fc``), so a ``state_dict`` of D2L's model loads.
    """
    def resnet_block(cin: int, cout: int, num_residuals: int, first_block: bool = False) -> nn.Sequential:
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(Residual(cin, cout, use_1x1conv=True, strides=2))
            else:
                blk.append(Residual(cout, cout))
        return nn.Sequential(*blk)

    net = nn.Sequential(nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1),
                        nn.BatchNorm2d(64), nn.ReLU())
    net.add_module("resnet_block1", resnet_block(64, 64, 2, first_block=True))
    net.add_module("resnet_block2", resnet_block(64, 128, 2))
    net.add_module("resnet_block3", resnet_block(128, 256, 2))
    net.add_module("resnet_block4", resnet_block(256, 512, 2))
    net.add_module("global_avg_pool", nn.AdaptiveAvgPool2d((1, 1)))
    net.add_module("fc", nn.Sequential(nn.Flatten(), nn.Linear(512, num_classes)))
    return net


def accuracy(y_hat: Tensor, y: Tensor) -> float:
    """The number of correct predictions (a float, as the book): ``y_hat`` holds logits
    ``[N, C]`` (argmax taken) or predicted labels ``[N]``."""
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def _limited(data_iter):
    limit = quick_batches()
    return data_iter if limit is None else itertools.islice(data_iter, limit)


def evaluate_accuracy_gpu(net, data_iter, device=None) -> float:
    """Accuracy of ``net`` over ``data_iter`` (at most ``PIXBOX_BOOK_QUICK`` batches when set).

    ``net`` is put in eval mode when it is an ``nn.Module``; ``device`` defaults to the device
    of its first parameter.
    """
    if isinstance(net, nn.Module):
        net.eval()
        if not device:
            device = next(iter(net.parameters())).device
    metric = Accumulator(2)  # correct predictions, predictions
    with torch.no_grad():
        for X, y in _limited(data_iter):
            if isinstance(X, list):
                X = [x.to(device) for x in X]
            else:
                X = X.to(device)
            y = y.to(device)
            metric.add(accuracy(net(X), y), y.numel())
    return metric[0] / metric[1]


def train_batch_ch13(net, X, y, loss, trainer, devices):
    """One training step; returns ``(sum of the loss, number of correct predictions)``."""
    if isinstance(X, list):
        X = [x.to(devices[0]) for x in X]
    else:
        X = X.to(devices[0])
    y = y.to(devices[0])
    net.train()
    trainer.zero_grad()
    pred = net(X)
    l = loss(pred, y)  # noqa: E741 - the book's name
    l.sum().backward()
    trainer.step()
    return l.sum(), accuracy(pred, y)


class _NoPlot:
    """Stands in for the book's ``Animator`` when matplotlib is not installed."""

    def add(self, x, y):
        pass


def _animator(**kwargs):
    try:
        from pixbox.compat._d2l_plot import Animator
    except ImportError:
        return _NoPlot()
    return Animator(**kwargs)


def train_ch13(net, train_iter, test_iter, loss, trainer, num_epochs, devices=None):
    """Trains ``net`` as the book's chapter 13/14 loop and prints its two closing lines::

        loss 0.443, train acc 0.863, test acc 0.848
        254.0 examples/sec on [device(type='cpu')]

    ``devices`` defaults to :func:`~pixbox.compat.d2l.try_all_gpus` (``[cpu]`` without a GPU);
    the net is wrapped in ``nn.DataParallel`` as in the book. The curves go to an ``Animator``
    (skipped when matplotlib is missing). With ``PIXBOX_BOOK_QUICK=N`` each epoch trains and
    evaluates on at most ``N`` batches.
    """
    devices = list(devices) if devices else try_all_gpus()
    limit = quick_batches()
    num_batches = len(train_iter) if limit is None else min(len(train_iter), limit)
    timer = Timer()
    animator = _animator(xlabel="epoch", xlim=[1, num_epochs], ylim=[0, 1],
                         legend=["train loss", "train acc", "test acc"])
    net = nn.DataParallel(net, device_ids=devices).to(devices[0])
    every = max(num_batches // 5, 1)  # the book divides by zero below 5 batches
    metric, test_acc = Accumulator(4), 0.0
    for epoch in range(num_epochs):
        metric = Accumulator(4)  # loss sum, correct predictions, examples, predictions
        for i, (features, labels) in enumerate(_limited(train_iter)):
            timer.start()
            l, acc = train_batch_ch13(net, features, labels, loss, trainer, devices)  # noqa: E741
            metric.add(l, acc, labels.shape[0], labels.numel())
            timer.stop()
            if (i + 1) % every == 0 or i == num_batches - 1:
                animator.add(epoch + (i + 1) / num_batches, (metric[0] / metric[2], metric[1] / metric[3], None))
        test_acc = evaluate_accuracy_gpu(net, test_iter)
        animator.add(epoch + 1, (None, None, test_acc))
    # the book's printed output, part of its API (tests/compat compares it character for character)
    print(f"loss {metric[0] / metric[2]:.3f}, train acc {metric[1] / metric[3]:.3f}, test acc {test_acc:.3f}")
    print(f"{metric[2] * num_epochs / timer.sum():.1f} examples/sec on {str(devices)}")
