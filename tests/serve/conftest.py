"""Fixtures shared by the serve tests."""

from __future__ import annotations

import numpy as np
import pytest

from pixbox.data.synthetic import render_scene
from pixbox.tasks.detect import Predictor

from ._models import build_detector


@pytest.fixture(scope="session")
def scene() -> np.ndarray:
    return np.ascontiguousarray(render_scene(200, 300, 3, seed=1).image.permute(1, 2, 0).numpy())


@pytest.fixture(scope="session")
def detector() -> Predictor:
    return build_detector()
