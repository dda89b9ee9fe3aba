"""Style transfer: time per optimization step, pixbox against D2L's loop, same extractor and layers.

Both sides optimize a 300 x 450 image with VGG-19 (pixbox's ``vgg19``, torchvision's layout;
random weights: the time of a step does not depend on their values) at D2L's layers: style
0, 5, 10, 19, 28 (conv1_1 .. conv5_1), content 25 (conv4_4), weights content 1, style 1e4,
TV 10, Adam at lr 0.3.

The baseline is a transcription of the book's "Neural Style Transfer" section (14.12): the
network ``nn.Sequential(*features[:29])`` with its parameters left trainable (autograd
computes their gradients every step), ``extract_features`` looping over every layer, D2L's
``content_loss``, ``gram`` / ``style_loss`` and ``tv_loss``, ``SynthesizedImage`` as the only
optimized parameter, Adam and ``StepLR(50, 0.8)``; float32, NCHW.

pixbox's step is what ``pixbox stylize`` runs (:mod:`pixbox.tasks.stylize`): the frozen, eval
mode :class:`~pixbox.models.style.StyleExtractor` truncated after layer 28, pixbox's losses,
Adam on the image, then the pixel clamp; timed in float32, and as ``pixbox stylize`` runs it by
default on a CPU with native bfloat16 (the extractor under bfloat16 autocast, channels-last;
Gram matrices and losses in float32).

The book sums ``10 * styles_l + contents_l + [tv_l]``: ``10 * styles_l`` repeats the list, so
its style weight is effectively 1e5. The transcription keeps that (it does not change the time).

Then it times the default ``pixbox stylize`` run (EfficientNet-Lite0, 300 steps at 300 x 450,
scikit-image's ``coffee`` in the style of ``immunohistochemistry``) and checks its quality: the
style loss must fall >= 10x and the content loss stay within ``CONTENT_BOUND`` (the script
exits 1 otherwise).

    PYTHONPATH=. .venv/bin/python benchmarks/style.py [--steps 8] [--threads 2] [--out result.png]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from pixbox.engine.precision import cpu_bf16_supported  # noqa: E402
from pixbox.models.backbones import vgg19  # noqa: E402

STYLE_LAYERS, CONTENT_LAYERS = [0, 5, 10, 19, 28], [25]
WEIGHTS = (1.0, 1e4, 10.0)
SHAPE = (300, 450)


# ---------------------------------------------------------------------------------------------
# The book's loop (D2L 14.12)


def d2l_step_fn(content_x: torch.Tensor, style_x: torch.Tensor, lr: float = 0.3):
    torch.manual_seed(0)
    pretrained_net = vgg19()
    net = nn.Sequential(*[pretrained_net.features[i] for i in range(max(CONTENT_LAYERS + STYLE_LAYERS) + 1)])

    def extract_features(X, content_layers, style_layers):
        contents, styles = [], []
        for i in range(len(net)):
            X = net[i](X)
            if i in style_layers:
                styles.append(X)
            if i in content_layers:
                contents.append(X)
        return contents, styles

    def content_loss(Y_hat, Y):
        return torch.square(Y_hat - Y.detach()).mean()

    def gram(X):
        num_channels, n = X.shape[1], X.numel() // X.shape[1]
        X = X.reshape((num_channels, n))
        return torch.matmul(X, X.T) / (num_channels * n)

    def style_loss(Y_hat, gram_Y):
        return torch.square(gram(Y_hat) - gram_Y.detach()).mean()

    def tv_loss(Y_hat):
        return 0.5 * (torch.abs(Y_hat[:, :, 1:, :] - Y_hat[:, :, :-1, :]).mean() +
                      torch.abs(Y_hat[:, :, :, 1:] - Y_hat[:, :, :, :-1]).mean())

    content_weight, style_weight, tv_weight = WEIGHTS

    def compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram):
        contents_l = [content_loss(Y_hat, Y) * content_weight for Y_hat, Y in zip(contents_Y_hat, contents_Y)]
        styles_l = [style_loss(Y_hat, Y) * style_weight for Y_hat, Y in zip(styles_Y_hat, styles_Y_gram)]
        tv_l = tv_loss(X) * tv_weight
        return sum(10 * styles_l + contents_l + [tv_l])

    class SynthesizedImage(nn.Module):
        def __init__(self, img_shape):
            super().__init__()
            self.weight = nn.Parameter(torch.rand(*img_shape))

        def forward(self):
            return self.weight

    contents_Y, _ = extract_features(content_x, CONTENT_LAYERS, STYLE_LAYERS)
    _, styles_Y = extract_features(style_x, CONTENT_LAYERS, STYLE_LAYERS)
    gen_img = SynthesizedImage(content_x.shape)
    gen_img.weight.data.copy_(content_x.data)
    trainer = torch.optim.Adam(gen_img.parameters(), lr=lr)
    styles_Y_gram = [gram(Y) for Y in styles_Y]
    scheduler = torch.optim.lr_scheduler.StepLR(trainer, 50, 0.8)
    X = gen_img()

    def step():
        trainer.zero_grad()
        contents_Y_hat, styles_Y_hat = extract_features(X, CONTENT_LAYERS, STYLE_LAYERS)
        loss = compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram)
        loss.backward()
        trainer.step()
        scheduler.step()
        return float(loss)

    return step


# ---------------------------------------------------------------------------------------------
# pixbox


def pixbox_step_fn(content: torch.Tensor, style: torch.Tensor, lr: float = 0.3, amp: bool = False):
    """One step of :mod:`pixbox.tasks.stylize`'s loop (its ``_Objective`` and Adam update)."""
    from pixbox.tasks.stylize import _Objective
    from pixbox.models.style import StyleExtractor

    torch.manual_seed(0)
    extractor = StyleExtractor("vgg19", weights=None, style_layers=STYLE_LAYERS, content_layers=CONTENT_LAYERS)
    if amp:
        extractor = extractor.to(memory_format=torch.channels_last)
    objective = _Objective(extractor, content, style, WEIGHTS, amp)
    x = extractor.preprocess(content).clone().requires_grad_(True)
    low, high = extractor.pixel_bounds()
    opt = torch.optim.Adam([x], lr=lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, 50, 0.8)

    def step():
        opt.zero_grad(set_to_none=True)
        loss, _ = objective(x)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            x.copy_(torch.maximum(torch.minimum(x, high), low))
        return float(loss)

    return step


def _time(step, steps: int) -> float:
    step()  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def default_run(out: str | None) -> bool:
    """``pixbox stylize``'s default run on real photos (scikit-image's ``coffee`` in the style of
    ``immunohistochemistry``): wall time and the quality check (style loss down >= 10x, content
    loss <= CONTENT_BOUND x that of a noise image). Returns whether the check passed."""
    from skimage import data

    from pixbox.tasks.stylize import CONTENT_BOUND, load_style_image, stylize
    from pixbox.losses import content_loss
    from pixbox.models.style import StyleExtractor

    content, style = data.coffee(), data.immunohistochemistry()
    t0 = time.perf_counter()
    image, history = stylize(content, style, progress=False, return_history=True)
    wall = time.perf_counter() - t0
    extractor = StyleExtractor("efficientnet_lite0", "default")
    target_img = torch.nn.functional.interpolate(load_style_image(content)[None], size=image.shape[-2:],
                                                 mode="bilinear", antialias=True)[0]
    noise = torch.rand(image.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target, _ = extractor(extractor.preprocess(target_img))
        ratio = (float(content_loss(extractor(extractor.preprocess(image))[0][0], target[0]))
                 / float(content_loss(extractor(extractor.preprocess(noise))[0][0], target[0])))
    drop = history["style"][0] / history["style"][-1]
    ok = drop >= 10 and ratio <= CONTENT_BOUND
    print(f"\ndefault `pixbox stylize` (EfficientNet-Lite0, {image.shape[-1]}x{image.shape[-2]}, "
          f"{len(history['style'])} Adam steps): {wall:.1f} s (target < 120 s)")
    print(f"style loss {history['style'][0]:.3g} -> {history['style'][-1]:.3g} ({drop:.0f}x, target >= 10x); "
          f"content loss {ratio:.2f} x a noise image's (bound {CONTENT_BOUND}): {'PASS' if ok else 'FAIL'}")
    if out:
        from pixbox.data.io import write_image

        write_image(image, out)
    return ok and wall < 120


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per side (after one warm-up)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-default-run", action="store_true", help="skip the default stylize run and its check")
    ap.add_argument("--out", help="also write the default run's image here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    content = torch.rand(3, *SHAPE, generator=g)  # images in [0, 1]
    style = torch.rand(3, *SHAPE, generator=g)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)  # the book's preprocess
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    d2l = _time(d2l_step_fn(((content - mean) / std)[None], ((style - mean) / std)[None]), args.steps)
    mine32 = _time(pixbox_step_fn(content, style), args.steps)
    amp = cpu_bf16_supported()
    mine = _time(pixbox_step_fn(content, style, amp=amp), args.steps) if amp else mine32
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, image {SHAPE[0]}x{SHAPE[1]}, VGG-19, "
          f"style layers {STYLE_LAYERS}, content {CONTENT_LAYERS}\n")
    print("| work | pixbox s/step | D2L loop s/step | speedup |")
    print("|---|---|---|---|")
    print(f"| one Adam step, float32 | {mine32:.3f} | {d2l:.3f} | {d2l / mine32:.2f}x |")
    if amp:
        print(f"| one Adam step, as `pixbox stylize` runs it (bfloat16 features, channels-last) | {mine:.3f} | "
              f"{d2l:.3f} | {d2l / mine:.2f}x |")
    print(f"\n500 steps: pixbox {500 * mine / 60:.1f} min, D2L {500 * d2l / 60:.1f} min")
    if not args.no_default_run and not default_run(args.out):
        sys.exit(1)


if __name__ == "__main__":
    main()
