"""``pixbox stylize CONTENT STYLE -o OUT.png``: neural style transfer (:func:`pixbox.tasks.stylize.stylize`).

Options: ``--size`` (long side), ``--steps``, ``--content-weight``, ``--style-weight``,
``--tv-weight``, ``--style-layers``, ``--content-layers`` (comma-separated tap names or indices),
``--optimizer adam|lbfgs``, ``--lr``, ``--init content|noise``, ``--backbone
efficientnet_lite0|vgg19``, ``--weights default|PATH``, ``--style-transform none|softmax``, ``--temperature``,
``--multiscale``, ``--preserve-color``, ``--seed``; ``--save-every N`` writes the image every N
steps and ``--plot`` a PNG of the loss terms, both into ``--out-dir`` (default: ``OUT_steps/``
beside OUT). A progress bar shows each loss term.

Usage mistakes print the usage and return exit code 2; mistakes in the files or values print
``error: ...`` and return 1, never a traceback.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from pixbox.cli._common import USER_ERRORS, ActionParser, choice, fail, number

__all__ = ["add_parser"]

def _layers(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"must be comma-separated layer names or indices, got {text!r}")
    return names


def _run(args: argparse.Namespace) -> int:
    from pixbox.data.io import WRITABLE_IMAGE_SUFFIXES, write_image
    from pixbox.tasks.stylize import stylize

    out = Path(args.out)
    if out.suffix.lower() not in WRITABLE_IMAGE_SUFFIXES:
        return fail(f"-o/--out must end in one of {', '.join(WRITABLE_IMAGE_SUFFIXES)}, got {str(out)!r}")
    out_dir = args.out_dir
    if out_dir is None and (args.save_every is not None or args.plot):
        out_dir = out.with_name(out.stem + "_steps")
    weights = None if args.weights == "none" else args.weights
    try:
        for name in ("content", "style"):
            if not Path(getattr(args, name)).is_file():
                raise FileNotFoundError(f"{name} image not found: {getattr(args, name)!r}")
        start = time.perf_counter()
        image, history = stylize(
            args.content, args.style, size=args.size, steps=args.steps, content_weight=args.content_weight,
            style_weight=args.style_weight, tv_weight=args.tv_weight, style_layers=args.style_layers,
            content_layers=args.content_layers, optimizer=args.optimizer, lr=args.lr, init=args.init,
            backbone=args.backbone, weights=weights, style_transform=args.style_transform, temperature=args.temperature,
            multiscale=args.multiscale, preserve_color=args.preserve_color, seed=args.seed, progress=not args.quiet,
            save_every=args.save_every, out_dir=out_dir, plot=args.plot, return_history=True)
        write_image(image, out)
    except USER_ERRORS as e:
        return fail(e)
    seconds = time.perf_counter() - start
    first, last = history["style"][0], history["style"][-1]
    drop = f"{first / last:.1f}x" if last > 0 else "to 0"
    print(f"wrote {out} ({image.shape[2]}x{image.shape[1]}, {len(history['total'])} steps, {seconds:.1f} s); "
          f"style loss {first:.3g} -> {last:.3g} ({drop}), content loss {history['content'][-1]:.3g}")
    if out_dir is not None and (args.save_every is not None or args.plot):
        print(f"intermediate images and plots in {out_dir}")
    return 0


def _backbones() -> tuple[str, ...]:
    from pixbox.models.style import STYLE_BACKBONES

    return STYLE_BACKBONES


def _transforms() -> tuple[str, ...]:
    from pixbox.models.style import STYLE_TRANSFORMS

    return STYLE_TRANSFORMS


def add_parser(subparsers) -> None:
    """Registers ``stylize`` on the top-level ``subparsers``."""
    # The command has no actions: its own parser is an ActionParser (unknown options get a
    # did-you-mean), chosen by swapping the class the subparsers action builds.
    parser_class = subparsers._parser_class
    subparsers._parser_class = ActionParser
    try:
        parser = subparsers.add_parser(
            "stylize", help="neural style transfer: render CONTENT in the style of STYLE",
            description="Neural style transfer (Gatys et al.; D2L 14.12): optimize an image so that its deep "
                        "features match CONTENT and its Gram matrices match STYLE. The default extractor is "
                        "EfficientNet-Lite0 with its offline ImageNet weights; --backbone vgg19 --weights "
                        "vgg19-dcbb9e9d.pth (torchvision's file) gives D2L's setup.")
    finally:
        subparsers._parser_class = parser_class
    parser.add_argument("content", metavar="CONTENT", help="the content image file")
    parser.add_argument("style", metavar="STYLE", help="the style image file")
    parser.add_argument("-o", "--out", required=True, metavar="OUT.png", help="the result image (.png, .jpg, .bmp)")
    parser.add_argument("--size", type=number(int, 16), default=450, metavar="PX",
                        help="long side of the result (default: %(default)s)")
    parser.add_argument("--steps", type=number(int, 1), default=300, metavar="N",
                        help="optimizer steps (default: %(default)s)")
    parser.add_argument("--content-weight", dest="content_weight", type=number(float, 0), default=1.0, metavar="W",
                        help="(default: %(default)s)")
    parser.add_argument("--style-weight", dest="style_weight", type=number(float, 0), default=1e4, metavar="W",
                        help="(default: %(default)g)")
    parser.add_argument("--tv-weight", dest="tv_weight", type=number(float, 0), default=10.0, metavar="W",
                        help="total variation weight (default: %(default)s)")
    parser.add_argument("--style-layers", dest="style_layers", type=_layers, metavar="L,L,...",
                        help="comma-separated tap names (stem, blocks.4, features.10...) or indices "
                             "(blocks.<i> / features.<i>) (default: per backbone)")
    parser.add_argument("--content-layers", dest="content_layers", type=_layers, metavar="L,...",
                        help="likewise (default: per backbone)")
    parser.add_argument("--optimizer", type=choice("optimizer", ("adam", "lbfgs")), default="adam", metavar="OPT",
                        help="adam or lbfgs (default: %(default)s)")
    parser.add_argument("--lr", type=number(float, 0, low_open=True), metavar="LR",
                        help="learning rate (default: 0.04 for adam, 1 for lbfgs)")
    parser.add_argument("--init", type=choice("init", ("content", "noise")), default="content", metavar="FROM",
                        help="start from the content image or from noise (default: %(default)s)")
    parser.add_argument("--backbone", type=choice("backbone", _backbones), default="efficientnet_lite0",
                        metavar="NAME", help="efficientnet_lite0 or vgg19 (default: %(default)s)")
    parser.add_argument("--weights", default="default", metavar="W",
                        help="'default' (EfficientNet-Lite0's offline ImageNet weights), a weights file (e.g. "
                             "torchvision's vgg19-dcbb9e9d.pth), or 'none' for random weights (default: %(default)s)")
    parser.add_argument("--style-transform", dest="style_transform", type=choice("style transform", _transforms),
                        default="none", metavar="T",
                        help="none, or softmax: Wang et al.'s softmax over each style layer's activations "
                             "(default: %(default)s)")
    parser.add_argument("--temperature", type=number(float, 0, low_open=True), default=1.0, metavar="T",
                        help="softmax temperature of --style-transform softmax (default: %(default)s)")
    parser.add_argument("--multiscale", action="store_true",
                        help="coarse to fine: half the steps at half resolution, then refine")
    parser.add_argument("--preserve-color", dest="preserve_color", action="store_true",
                        help="keep the content's colours (YCbCr chroma); transfer the style to luminance only")
    parser.add_argument("--seed", type=number(int, 0), default=0, help="seed of --init noise (default: %(default)s)")
    parser.add_argument("--save-every", dest="save_every", type=number(int, 1), metavar="N",
                        help="write the current image every N steps into --out-dir")
    parser.add_argument("--plot", action="store_true", help="write losses.png (the loss terms) into --out-dir")
    parser.add_argument("--out-dir", dest="out_dir", type=Path, metavar="DIR",
                        help="folder for --save-every and --plot (default: OUT_steps beside OUT)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=_run)
