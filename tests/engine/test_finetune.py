"""Tests for pixbox.engine.finetune: new head, per-group learning rates, freezing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixbox.engine.finetune import FrozenBatchNorm2d, finetune, freeze_batchnorm, head_parameter_names
from pixbox.models.backbones import BACKBONES, efficientnet_lite0, resnet18


def _small_resnet():
    torch.manual_seed(0)
    return resnet18()


def _step(model, groups, x, y, lr=0.1):
    opt = torch.optim.SGD(groups, lr=lr)
    model.train()
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return opt


def test_head_is_replaced_with_new_size():
    model = _small_resnet()
    old_head = model.fc
    finetune(model, 3)
    assert model.fc is not old_head
    assert model.fc.out_features == 3 and model.num_classes == 3
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 3)


@pytest.mark.parametrize("name", ["resnet18", "vgg11", "efficientnet_lite0"])
def test_groups_cover_every_parameter_once_with_the_right_lr(name):
    with torch.device("meta"):
        model = BACKBONES[name]()
    groups = finetune(model, 5, lr=0.02, head_lr_mult=7.0, weight_decay=1e-4)
    seen = {}
    for g in groups:
        for p in g["params"]:
            assert id(p) not in seen
            seen[id(p)] = g
    params = dict(model.named_parameters())
    names = {id(p): n for n, p in params.items()}
    assert set(seen) == set(names)
    head = set(head_parameter_names(model))
    for pid, g in seen.items():
        if names[pid] in head:
            assert g["name"] == "head" and g["lr"] == pytest.approx(0.14)
        else:
            assert g["name"] == "backbone" and g["lr"] == pytest.approx(0.02)
        assert g["weight_decay"] == (1e-4 if params[names[pid]].dim() > 1 else 0.0)  # no decay on biases


def test_head_really_learns_faster():
    """One SGD step with the same gradient scale: the head moves head_lr_mult times as far."""
    model = _small_resnet()
    groups = finetune(model, 2, lr=0.01, head_lr_mult=10.0)
    opt = torch.optim.SGD(groups, lr=0.01)
    assert sorted({g["lr"] for g in opt.param_groups}) == [0.01, pytest.approx(0.1)]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x, y = torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 0, 1])
    model.train()
    nn.functional.cross_entropy(model(x), y).backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    for n, p in model.named_parameters():
        lr = 0.1 if n.startswith("fc.") else 0.01
        torch.testing.assert_close(p.detach(), before[n] - lr * grads[n])


def test_lr_schedule_keeps_the_ratio():
    from pixbox.tasks.classify import ClassifyConfig
    from pixbox.engine.optim import build_optimizer, build_scheduler

    model = _small_resnet()
    cfg = ClassifyConfig(model="resnet18", lr=0.01, epochs=2, warmup_epochs=0.5)
    opt = build_optimizer(finetune(model, 2, lr=cfg.lr, head_lr_mult=10.0), cfg)
    sched = build_scheduler(opt, cfg, steps=4)
    for _ in range(5):
        opt.step()
        sched.step()
        rates = {g["name"]: g["lr"] for g in opt.param_groups}
        assert rates["head"] == pytest.approx(10 * rates["backbone"])


def test_freeze_backbone_freezes_everything_but_the_head():
    model = _small_resnet()
    groups = finetune(model, 2, freeze="backbone")
    assert {g["name"] for g in groups} == {"head"}
    for n, p in model.named_parameters():
        assert p.requires_grad == n.startswith("fc.")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _step(model, groups, torch.rand(4, 3, 64, 64), torch.tensor([0, 1, 1, 0]))
    after = model.state_dict()
    for k in before:
        if k.startswith("fc."):
            assert not torch.equal(before[k], after[k]), k
        else:  # weights and BatchNorm statistics alike
            assert torch.equal(before[k], after[k]), k
    assert all(p.grad is None for n, p in model.named_parameters() if not n.startswith("fc."))


def test_freeze_bn_keeps_statistics_but_trains_weights():
    model = _small_resnet()
    groups = finetune(model, 2, freeze="bn")
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(isinstance(m, FrozenBatchNorm2d) for m in bns)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "num_batches" in k}
    conv = model.conv1.weight.detach().clone()
    _step(model, groups, torch.rand(2, 3, 64, 64), torch.tensor([0, 1]))
    state = model.state_dict()
    for k, v in stats.items():
        assert torch.equal(v, state[k]), k
    assert not torch.equal(conv, model.conv1.weight)
    assert all(not m.training for m in bns)  # model.train() does not switch them back


def test_frozen_bn_normalizes_with_running_stats():
    bn = nn.BatchNorm2d(3)
    bn.running_mean.copy_(torch.tensor([1.0, 2.0, 3.0]))
    bn.running_var.copy_(torch.tensor([4.0, 1.0, 0.25]))
    assert freeze_batchnorm(bn) == 1
    bn.train()
    x = torch.rand(2, 3, 4, 4)
    expected = (x - bn.running_mean[:, None, None]) / torch.sqrt(bn.running_var[:, None, None] + bn.eps)
    torch.testing.assert_close(bn(x), expected)
    # the state dict is a plain BatchNorm2d's
    plain = nn.BatchNorm2d(3)
    plain.load_state_dict(bn.state_dict())


def test_efficientnet_finetune_output_and_groups():
    torch.manual_seed(0)
    model = efficientnet_lite0()
    groups = finetune(model, 4, lr=0.001, head_lr_mult=10)
    assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 4)
    head = set(head_parameter_names(model))
    assert head and all(n.startswith(model.classifier_name + ".") for n in head)
    assert sum(len(g["params"]) for g in groups if g["name"] == "head") == len(head)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"lr": 0}, ValueError, "lr must be > 0"),
    ({"head_lr_mult": -1}, ValueError, "head_lr_mult must be > 0"),
    ({"freeze": "all"}, ValueError, "freeze"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay"),
])
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        finetune(_small_resnet(), 2, **kwargs)


def test_bad_model_and_classes():
    with pytest.raises(TypeError, match="model must be a pixbox backbone"):
        finetune(nn.Linear(2, 2), 2)
    with pytest.raises((ValueError, TypeError), match="num_classes"):
        finetune(_small_resnet(), 0)
