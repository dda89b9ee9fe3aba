"""Neural style transfer (Gatys et al., 2016), as D2L section 14.12 teaches it, made fast.

:func:`stylize` optimizes one variable, the synthesized image (initialised from the content image, or noise), so that
its features match the content image's at the content layers and its Gram matrices match the style image's at the
style layers, with total variation for smoothness (:mod:`pixbox.losses`)::

    loss = content_weight * sum content_loss + style_weight * sum style_loss + tv_weight * tv_loss

The extractor (:class:`pixbox.models.style.StyleExtractor`) is frozen, in eval mode and truncated after the deepest
layer used; the content features and the style Gram matrices are computed once. The image is optimized in the
backbone's normalized space (as D2L does) and clamped to the valid pixel range after every step.

Defaults: EfficientNet-Lite0 with its offline ImageNet weights (layers in :mod:`pixbox.models.style`), lr 0.04 in
normalized units (0.02 in [0, 1] pixels), D2L's ``StepLR(50, 0.8)`` and loss weights. Measured on this 2-core CPU
with ``coffee()`` (300 x 450) as content and ``immunohistochemistry()`` as style (scikit-image), as wall time, style
loss drop and final content loss / a uniform-noise image's: default run (300 Adam steps) 26 s, 284x, 0.42;
``multiscale`` 20 s, 312x, 0.51; 500 Adam steps 95 s*, 328x, 0.40; ``lbfgs``, 100 steps 134 s*, 318x, 0.41 (* while
another job used the CPU; the default run took 46 s then, on one thread). More steps or L-BFGS lower the losses
little more; ``multiscale`` gives larger, more painterly strokes (its drop is from the first, half-resolution step).

Quality bounds checked by the tests (``chelsea()`` and ``immunohistochemistry()`` at 160 px, 60 steps) and by the
benchmark (the default run): the style loss falls by at least 10x, and the final content loss, at the content layer,
is at most :data:`CONTENT_BOUND` = 0.75 times that of a uniform-noise image of the same size (0.53 .. 0.77 for short
runs of 60 .. 80 steps at 128 .. 224 px, where the content layer's maps are only 8 .. 14 pixels wide).

Example:
    >>> from skimage import data
    >>> image = stylize(data.astronaut(), data.immunohistochemistry())  # doctest: +SKIP
    >>> image.shape  # doctest: +SKIP
    torch.Size([3, 450, 450])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from pixbox._checks import check_choice, check_int, check_number
from pixbox._console import is_terminal
from pixbox.data.inputs import as_image
from pixbox.data.transforms.functional import rgb_to_ycbcr, ycbcr_to_rgb
from pixbox.losses import content_loss, gram, style_loss, tv_loss
from pixbox.models.style import STYLE_TRANSFORMS, StyleExtractor

__all__ = ["CONTENT_BOUND", "MAX_SIZE", "load_style_image", "stylize"]

#: After :func:`stylize`, the content loss is at most this fraction of a same-size noise image's (module docstring).
CONTENT_BOUND = 0.75

#: The largest long side :func:`stylize` accepts, in pixels: memory grows with the pixel count (100000 px: ~120 GB).
MAX_SIZE = 2048

_OPTIMIZERS = ("adam", "lbfgs")
_INITS = ("content", "noise")
_DEFAULT_LR = {"adam": 0.04, "lbfgs": 1.0}


def load_style_image(image, name: str = "image") -> Tensor:
    """A content or style image (see :func:`pixbox.data.inputs.as_image`) as float RGB ``Tensor[3, H, W]`` in [0, 1]."""
    return as_image(image, name)


def _resize_long(img: Tensor, long_side: int) -> Tensor:
    """Resizes ``[3, H, W]`` so that ``max(H, W) == long_side``, keeping the aspect ratio."""
    h, w = img.shape[-2:]
    scale = long_side / max(h, w)
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if size == (h, w):
        return img
    return F.interpolate(img[None], size=size, mode="bilinear", align_corners=False,
                         antialias=scale < 1)[0].clamp(0, 1)


class _Objective:
    """The weighted loss of one scale: targets computed once from the content and style images.

    With ``amp`` the extractor runs under autocast (bfloat16 on the CPU, float16 on CUDA), channels-last; its features
    are cast back to float32 before the Gram matrices and the losses, which never run in reduced precision."""

    def __init__(self, extractor: StyleExtractor, content: Tensor, style: Tensor, weights: tuple[float, float, float],
                 amp: bool = False):
        self.extractor = extractor
        self.weights = weights
        self.amp = amp
        with torch.enable_grad():  # the optimized image's path (no BN folding): content loss exactly 0 at init
            self.content_y, _ = self._features(extractor.preprocess(content))
            _, styles = self._features(extractor.preprocess(style))
            self.gram_y = [gram(s) for s in styles]

    def _features(self, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        if not self.amp:
            return self.extractor(x)
        device = x.device.type
        dtype = torch.bfloat16 if device == "cpu" else torch.float16
        with torch.autocast(device, dtype=dtype):
            contents, styles = self.extractor(x.contiguous(memory_format=torch.channels_last))
        return [c.float() for c in contents], [s.float() for s in styles]

    def __call__(self, x: Tensor) -> tuple[Tensor, dict[str, float]]:
        contents, styles = self._features(x)
        wc, ws, wt = self.weights
        lc = sum(content_loss(a, b) for a, b in zip(contents, self.content_y))
        ls = sum(style_loss(a, g) for a, g in zip(styles, self.gram_y))
        lt = tv_loss(x)
        total = wc * lc + ws * ls + wt * lt
        terms = {k: float(v.detach()) for k, v in (("content", lc), ("style", ls), ("tv", lt), ("total", total))}
        return total, terms


def _optimize(objective: _Objective, x: Tensor, steps: int, optimizer: str, lr: float, *, bar, step0: int,
              history: dict, callback, save_every, out_dir, extractor: StyleExtractor) -> Tensor:
    x = x.detach().clone().requires_grad_(True)
    low, high = (b.to(x) for b in extractor.pixel_bounds())
    if optimizer == "adam":
        opt = torch.optim.Adam([x], lr=lr)
        sched = torch.optim.lr_scheduler.StepLR(opt, 50, 0.8)
    else:
        opt = torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=50, line_search_fn="strong_wolfe")
        sched = None
    for i in range(steps):
        last: dict[str, float] = {}

        def closure():
            opt.zero_grad(set_to_none=True)
            loss, terms = objective(x)
            loss.backward()
            last.update(terms)
            return loss
        opt.step(closure)
        if sched is not None:
            sched.step()
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, high), low))
        step = step0 + i + 1
        for k, v in last.items():
            history[k].append(v)
        history["size"].append(tuple(x.shape[-2:]))
        if bar is not None:
            bar.set_postfix(content=f"{last['content']:.3g}", style=f"{last['style']:.3g}", tv=f"{last['tv']:.3g}")
            bar.update(1)
        if callback is not None or (save_every and step % save_every == 0):
            image = extractor.postprocess(x.detach())[0]
            if callback is not None:
                callback(step, image, dict(last))
            if save_every and step % save_every == 0:
                from pixbox.data.io import write_image
                write_image(image, Path(out_dir) / f"step_{step:05d}.png", compress_level=1)
    return x.detach()


def stylize(
    content,
    style,
    *,
    size: int | None = 450,
    steps: int = 300,
    content_weight: float = 1.0,
    style_weight: float = 1e4,
    tv_weight: float = 10.0,
    style_layers: Sequence[str | int] | None = None,
    content_layers: Sequence[str | int] | None = None,
    optimizer: str = "adam",
    lr: float | None = None,
    init: str = "content",
    backbone: str = "efficientnet_lite0",
    weights: str | os.PathLike | None = "default",
    style_transform: str = "none",
    temperature: float = 1.0,
    multiscale: bool = False,
    preserve_color: bool = False,
    seed: int = 0,
    progress: bool = True,
    save_every: int | None = None,
    out_dir: str | os.PathLike | None = None,
    plot: bool = False,
    callback: Callable[[int, Tensor, dict], None] | None = None,
    return_history: bool = False,
    extractor: StyleExtractor | None = None,
    amp: bool | None = None,
):
    """Renders the content image in the style of the style image (see the module docstring).

    Args:
        content, style: a path, PIL image, numpy array ``[H, W, 3]`` or tensor ``[3, H, W]`` (``uint8``, or float in
            [0, 1]); the style image is resized to the same long side as the content.
        size (int or None): long side of the result in pixels, in [16, :data:`MAX_SIZE`]; None keeps the content's
            size (at most :data:`MAX_SIZE`).
        steps (int), content_weight, style_weight, tv_weight (float): total optimizer steps (>= 1); loss weights (>= 0).
        style_layers, content_layers (sequence of str or int, optional): extractor layers; default per backbone
            (:data:`pixbox.models.style.STYLE_LAYERS`).
        optimizer ("adam" or "lbfgs"): Adam with ``StepLR(50, 0.8)``, or L-BFGS (strong Wolfe line search, one
            iteration per step).
        lr (float, optional): learning rate, in normalized image units; default 0.04 (Adam) or 1 (L-BFGS).
        init ("content" or "noise"): the starting image: the content image, or uniform noise.
        backbone ("efficientnet_lite0" or "vgg19"): the feature extractor.
        weights (None, "default" or path), style_transform ("none" or "softmax"), temperature (float): the
            extractor's weights (None is random, for tests) and the softmax transformation of the style features;
            see :class:`~pixbox.models.style.StyleExtractor`.
        multiscale (bool): coarse to fine: the first half of the steps at half resolution (four times cheaper per
            step), then the image is upsampled (bilinear) and refined at full resolution.
        preserve_color (bool): recombine the result's luminance with the content's chroma (YCbCr, ITU-R BT.601
            full-range, as JPEG's), the "luminance transfer" of Gatys et al., 2016, "Preserving color in neural
            artistic style transfer": the style changes the light and texture, the content keeps its colours (Cb and
            Cr up to clamping to [0, 1]). ``save_every`` images and ``callback`` see the optimized image.
        seed (int): seeds the noise initialisation (a local generator; the global RNG is untouched).
        progress (bool): show a tqdm bar with each loss term.
        save_every (int, optional), plot (bool), out_dir (str or PathLike, optional): write the current image to
            ``out_dir/step_NNNNN.png`` every ``save_every`` steps, and a plot of the losses to ``out_dir/losses.png``.
        callback (callable, optional): ``callback(step, image [3, H, W] in [0, 1], terms)`` after each step,
            ``terms`` the step's losses as in the history.
        return_history (bool): also return the history.
        extractor (StyleExtractor, optional): a ready extractor (then ``backbone``, ``weights``, the layers,
            ``style_transform`` and ``temperature`` are ignored), e.g. to reuse one across calls.
        amp (bool, optional): run the extractor in reduced precision (bfloat16 on the CPU, float16 on CUDA) and
            channels-last; the losses stay float32. None: on where it is native (CUDA, or a CPU with
            AVX512-BF16/AMX); about 2x faster per step here.

    Returns:
        Tensor[3, H, W]: float32 in [0, 1], the content's aspect ratio at long side ``size``. With ``return_history``,
        ``(image, history)``: ``history`` maps ``content``, ``style``, ``tv`` (unweighted) and ``total`` (weighted) to
        one float per step (the loss before that step), and ``size`` to the ``(H, W)`` optimized at each step.
    """
    content_img = load_style_image(content, "content")
    style_img = load_style_image(style, "style")
    if size is not None:
        size = check_int(size, "size", low=16, high=MAX_SIZE)
    steps = check_int(steps, "steps", low=1)
    wc = check_number(content_weight, "content_weight", low=0)
    ws = check_number(style_weight, "style_weight", low=0)
    wt = check_number(tv_weight, "tv_weight", low=0)
    optimizer = check_choice(optimizer, "optimizer", _OPTIMIZERS)
    lr = _DEFAULT_LR[optimizer] if lr is None else check_number(lr, "lr", low=0, low_open=True)
    init = check_choice(init, "init", _INITS)
    check_choice(style_transform, "style_transform", STYLE_TRANSFORMS)
    seed = check_int(seed, "seed", low=0)
    for flag, name in ((multiscale, "multiscale"), (preserve_color, "preserve_color"), (progress, "progress"),
                       (plot, "plot"), (return_history, "return_history")):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    if save_every is not None:
        save_every = check_int(save_every, "save_every", low=1)
    if (save_every is not None or plot) and out_dir is None:
        raise ValueError("out_dir is required with save_every or plot: the folder for the images and losses.png")
    if extractor is None:
        extractor = StyleExtractor(backbone, weights, style_layers, content_layers, style_transform=style_transform,
                                   temperature=temperature)
    elif not isinstance(extractor, StyleExtractor):
        raise TypeError(f"extractor must be a StyleExtractor, got {type(extractor).__name__}")
    device = extractor.mean.device
    if amp is None:  # reduced precision where it is native: a bfloat16 CPU (AVX512-BF16/AMX) or CUDA
        from pixbox.engine.precision import cpu_bf16_supported
        amp = device.type == "cuda" or (device.type == "cpu" and cpu_bf16_supported())
    elif not isinstance(amp, bool):
        raise TypeError(f"amp must be a bool or None (automatic), got {type(amp).__name__}")
    if amp:
        extractor = extractor.to(memory_format=torch.channels_last)
    long_side = size if size is not None else max(content_img.shape[-2:])
    if long_side > MAX_SIZE:
        raise ValueError(f"size=None keeps the content's size, and its long side is {long_side} px, over the "
                         f"{MAX_SIZE} px that stylize optimizes; pass size=... (--size) of at most {MAX_SIZE}")
    content_img = _resize_long(content_img, long_side).to(device)
    scales = [long_side // 2, long_side] if multiscale and long_side // 2 >= 16 and steps >= 2 else [long_side]
    counts = [steps // 2, steps - steps // 2] if len(scales) == 2 else [steps]
    if init == "content":
        start = content_img
    else:
        gen = torch.Generator().manual_seed(seed)
        start = torch.rand(content_img.shape, generator=gen).to(device)
    x = extractor.preprocess(start)
    history: dict[str, list] = {"content": [], "style": [], "tv": [], "total": [], "size": []}
    bar = None
    if progress and is_terminal():
        from tqdm import tqdm
        bar = tqdm(total=steps, desc="stylize", unit="step", leave=False)
    try:
        step0 = 0
        for scale, count in zip(scales, counts):
            target = _resize_long(content_img, scale)
            objective = _Objective(extractor, target, _resize_long(style_img, scale).to(device), (wc, ws, wt), amp)
            if tuple(x.shape[-2:]) != tuple(target.shape[-2:]):
                x = F.interpolate(x, size=tuple(target.shape[-2:]), mode="bilinear", align_corners=False)
            x = _optimize(objective, x, count, optimizer, lr, bar=bar, step0=step0, history=history,
                          callback=callback, save_every=save_every, out_dir=out_dir, extractor=extractor)
            step0 += count
    finally:
        if bar is not None:
            bar.close()
    image = extractor.postprocess(x)[0]
    if preserve_color:
        ycc = rgb_to_ycbcr(image)
        chroma = rgb_to_ycbcr(content_img)[1:]
        image = ycbcr_to_rgb(torch.cat([ycc[:1], chroma], dim=0)).clamp(0, 1)
    if plot:
        from pixbox.plots import plot_curves
        xs = list(range(1, len(history["total"]) + 1))
        series = {"content" if wc == 1 else f"content x {wc:g}": (xs, [wc * v for v in history["content"]]),
                  f"style x {ws:g}": (xs, [ws * v for v in history["style"]]),
                  f"tv x {wt:g}": (xs, [wt * v for v in history["tv"]]), "total": (xs, history["total"])}
        plot_curves(series, Path(out_dir) / "losses.png", title="style transfer losses", xlabel="step",
                    ylabel="loss", logy=True)
    image = image.detach().float().cpu()
    return (image, history) if return_history else image
