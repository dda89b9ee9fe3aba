"""pixbox.models exports no function under the name of one of its submodules."""

from __future__ import annotations

import importlib
import pkgutil
import types

import pytest

import pixbox.models


@pytest.mark.parametrize("name", ["fcn", "ssd"])
def test_submodule_attribute_is_the_module(name):
    module = importlib.import_module(f"pixbox.models.{name}")
    assert isinstance(module, types.ModuleType)
    assert getattr(pixbox.models, name) is module


def test_builders_are_exported_under_their_own_names():
    from pixbox.models.fcn import build_fcn
    from pixbox.models.ssd import build_ssd

    assert pixbox.models.build_fcn is build_fcn
    assert pixbox.models.build_ssd is build_ssd
    assert "fcn" not in pixbox.models.__all__ and "ssd" not in pixbox.models.__all__


def test_no_exported_name_shadows_a_submodule():
    submodules = {info.name for info in pkgutil.iter_modules(pixbox.models.__path__)}
    assert {"fcn", "ssd", "backbones", "rcnn"} <= submodules
    for name in set(pixbox.models.__all__) & submodules:
        assert getattr(pixbox.models, name) is importlib.import_module(f"pixbox.models.{name}"), name
    for name in submodules:
        module = importlib.import_module(f"pixbox.models.{name}")
        if hasattr(pixbox.models, name):
            assert getattr(pixbox.models, name) is module, name


@pytest.mark.parametrize("name", ["fast_rcnn", "faster_rcnn", "rpn", "roi_heads", "neck"])
def test_rcnn_submodules_are_not_shadowed_by_builders(name):
    import pixbox.models.rcnn as rcnn

    module = importlib.import_module(f"pixbox.models.rcnn.{name}")
    assert getattr(rcnn, name) is module
    assert name not in rcnn.__all__


def test_the_rcnn_builders_keep_their_public_names():
    from pixbox.models.rcnn import build_fast_rcnn, build_faster_rcnn
    from pixbox.models.rcnn.fast_rcnn import fast_rcnn
    from pixbox.models.rcnn.faster_rcnn import faster_rcnn

    assert build_fast_rcnn is fast_rcnn is pixbox.models.fast_rcnn
    assert build_faster_rcnn is faster_rcnn is pixbox.models.faster_rcnn
