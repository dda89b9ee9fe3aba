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
