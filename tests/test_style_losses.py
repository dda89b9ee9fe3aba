"""Tests for the style-transfer losses of :mod:`pixbox.losses`: hand-computed values, D2L's
formulas, batches, gradients, errors, and each term going down when it alone is optimized."""

from __future__ import annotations

import pytest
import torch

from pixbox.losses import content_loss, gram, style_loss, tv_loss


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gram_loop(x):
    """Slow reference: G[i, j] = sum over positions of x[i] * x[j], divided by c * h * w."""
    c, h, w = x.shape
    out = torch.zeros(c, c, dtype=x.dtype)
    for i in range(c):
        for j in range(c):
            out[i, j] = sum(x[i, p, q] * x[j, p, q] for p in range(h) for q in range(w))
    return out / (c * h * w)


def test_gram_hand_computed():
    # channels [1, 2] and [3, 4]: [[1+4, 3+8], [3+8, 9+16]] / (2 * 1 * 2)
    x = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])
    assert torch.equal(gram(x), torch.tensor([[5.0, 11.0], [11.0, 25.0]]) / 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_gram_matches_loop_and_batches(dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, 3, 5, generator=g, dtype=dtype)
    out = gram(x)
    assert out.shape == (3, 4, 4) and out.dtype == dtype
    for b in range(3):
        torch.testing.assert_close(out[b], _gram_loop(x[b]))
        torch.testing.assert_close(gram(x[b]), out[b])  # [C, H, W] -> [C, C]
    torch.testing.assert_close(out, out.transpose(1, 2))


def test_gram_is_d2l_formula():
    x = torch.randn(1, 6, 7, 5, generator=torch.Generator().manual_seed(3))
    c, n = x.shape[1], x.numel() // x.shape[1]
    flat = x.reshape(c, n)
    torch.testing.assert_close(gram(x)[0], flat @ flat.T / (c * n))


def test_content_loss_hand_computed_and_detached():
    y_hat = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]], requires_grad=True)
    y = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]], requires_grad=True)
    loss = content_loss(y_hat, y)
    assert loss.item() == pytest.approx((0 + 4 + 9 + 4) / 4)
    loss.backward()
    torch.testing.assert_close(y_hat.grad, 2 * (y_hat - y).detach() / 4)
    assert y.grad is None  # the target is a constant


def test_content_loss_broadcasts_a_single_target():
    y_hat = torch.zeros(2, 3, 4, 4)
    y = torch.ones(1, 3, 4, 4)
    assert content_loss(y_hat, y).item() == 1.0


def test_style_loss_hand_computed():
    x = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])  # gram [[1.25, 2.75], [2.75, 6.25]]
    target = torch.tensor([[1.25, 0.75], [2.75, 4.25]])
    assert style_loss(x, target).item() == pytest.approx((0 + 4 + 0 + 4) / 4)
    assert style_loss(x, gram(x)).item() == 0.0


def test_style_loss_batched_and_detached():
    y_hat = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(0), requires_grad=True)
    target = torch.randn(3, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
    loss = style_loss(y_hat, target)
    ref = torch.stack([((gram(y_hat[b]) - target) ** 2).mean() for b in range(2)]).mean()
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert target.grad is None and y_hat.grad is not None
    # per-image targets [B, C, C]
    torch.testing.assert_close(style_loss(y_hat, target.expand(2, 3, 3)), ref)


def test_tv_loss_hand_computed():
    # vertical differences 0, horizontal differences 1 -> 0.5 * (0 + 1)
    assert tv_loss(torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])).item() == 0.5
    x = torch.tensor([[[[0.0, 2.0, 2.0], [4.0, 2.0, 0.0]]]])  # [1, 1, 2, 3]
    dy = (4 + 0 + 2) / 3  # |4-0|, |2-2|, |0-2|
    dx = (2 + 0 + 2 + 2) / 4  # |2-0|, |2-2|, |2-4|, |0-2|
    assert tv_loss(x).item() == pytest.approx(0.5 * (dy + dx))
    assert tv_loss(torch.full((2, 3, 5, 4), 0.7)).item() == 0.0


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 2, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(1, 2, 3, 3, generator=g, dtype=torch.float64)
    target = torch.randn(2, 2, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: content_loss(a, y), (x,))
    assert torch.autograd.gradcheck(gram, (x,))
    assert torch.autograd.gradcheck(lambda a: style_loss(a, target), (x,))
    assert torch.autograd.gradcheck(tv_loss, (x,))


@pytest.mark.parametrize("name", ["content", "style", "tv"])
def test_each_term_goes_down_when_optimized_alone(name):
    """Optimizing a tiny image on one loss term alone lowers that term by at least 10x (in 200 Adam steps)."""
    g = torch.Generator().manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * 0.3)
        conv.bias.zero_()
    conv.requires_grad_(False)
    content, style = torch.rand(1, 3, 8, 8, generator=g), torch.rand(1, 3, 8, 8, generator=g) ** 3
    x = torch.rand(1, 3, 8, 8, generator=g).requires_grad_(True)
    terms = {
        "content": lambda: content_loss(conv(x), conv(content)),
        "style": lambda: style_loss(conv(x), gram(conv(style))),
        "tv": lambda: tv_loss(x),
    }
    opt = torch.optim.Adam([x], lr=0.02)
    first = terms[name]().item()
    for _ in range(200):
        opt.zero_grad()
        terms[name]().backward()
        opt.step()
    assert first > 0 and terms[name]().item() < first / 10


def test_errors():
    x = torch.rand(1, 2, 3, 3)
    with pytest.raises(TypeError, match="y_hat must be a torch.Tensor"):
        content_loss([1.0], x)
    with pytest.raises(TypeError, match="y_hat must be a floating-point tensor"):
        content_loss(torch.zeros(1, 2, 3, 3, dtype=torch.long), x)
    with pytest.raises(ValueError, match=r"y must have the shape of y_hat \(1, 2, 3, 3\)"):
        content_loss(x, torch.rand(1, 2, 4, 3))
    with pytest.raises(ValueError, match=r"x must be a non-empty feature map \[C, H, W\] or \[B, C, H, W\], "
                                         r"got shape \(3, 3\)"):
        gram(torch.rand(3, 3))
    with pytest.raises(ValueError, match=r"gram_y must have shape \[C, C\] or \[B, C, C\] with C = 2"):
        style_loss(x, torch.rand(3, 3))
    with pytest.raises(ValueError, match="gram_y must have shape"):
        style_loss(torch.rand(2, 2, 3, 3), torch.rand(3, 2, 2))
    with pytest.raises(ValueError, match=r"y_hat must have H >= 2 and W >= 2, got shape \(1, 3, 1, 5\)"):
        tv_loss(torch.rand(1, 3, 1, 5))
