"""pixbox._checks: the shared int, bool and class-name checks."""

from __future__ import annotations

import numpy as np
import pytest

from pixbox._checks import check_bool, check_class_names, check_int, is_int


@pytest.mark.parametrize("value", [0, 7, -3, np.int64(5), np.uint8(2)])
def test_is_int_accepts_python_and_numpy_integers(value):
    assert is_int(value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 2.0, "3", None, np.float32(1)])
def test_is_int_rejects_bools_floats_and_strings(value):
    assert not is_int(value)


def test_check_int_returns_a_python_int():
    out = check_int(np.int64(4), "n", low=1, high=4)
    assert out == 4 and type(out) is int
    assert check_int(-5, "n") == -5  # no bound by default


@pytest.mark.parametrize("kwargs, value, exc, match", [
    ({}, True, TypeError, r"^stride must be an int, got bool True$"),
    ({}, 1.5, TypeError, r"^stride must be an int, got float 1.5$"),
    ({}, "2", TypeError, r"^stride must be an int, got str '2'$"),
    ({"low": 1}, 0, ValueError, r"^stride must be >= 1, got 0$"),
    ({"high": 3}, 4, ValueError, r"^stride must be <= 3, got 4$"),
    ({"low": 1, "high": 3}, np.int32(9), ValueError, r"^stride must be <= 3, got 9$"),
])
def test_check_int_errors_name_the_argument_the_expectation_and_the_value(kwargs, value, exc, match):
    with pytest.raises(exc, match=match):
        check_int(value, "stride", **kwargs)


def test_each_bound_changes_what_passes():
    assert check_int(0, "n") == 0
    with pytest.raises(ValueError):
        check_int(0, "n", low=1)
    assert check_int(10, "n", low=1) == 10
    with pytest.raises(ValueError):
        check_int(10, "n", low=1, high=9)


@pytest.mark.parametrize("value", [True, False, np.bool_(False)])
def test_check_bool_accepts_bools(value):
    out = check_bool(value, "shuffle")
    assert out == bool(value) and type(out) is bool


@pytest.mark.parametrize("value, match", [
    (1, r"^shuffle must be a bool, got int 1$"),
    (0, r"^shuffle must be a bool, got int 0$"),
    ("yes", r"^shuffle must be a bool, got str 'yes'$"),
    (None, r"^shuffle must be a bool, got NoneType None$"),
])
def test_check_bool_rejects_everything_else(value, match):
    with pytest.raises(TypeError, match=match):
        check_bool(value, "shuffle")


def test_check_class_names():
    assert check_class_names(("cat", "dog")) == ["cat", "dog"]
    with pytest.raises(TypeError, match="class_names must be a sequence of str, got str"):
        check_class_names("cat")
    with pytest.raises(ValueError, match="class_names must not be empty"):
        check_class_names([])
    with pytest.raises(TypeError, match=r"class_names\[1\] must be a str, got int"):
        check_class_names(["cat", 1])
    with pytest.raises(ValueError, match=r"names must be unique, got duplicates \['cat'\]"):
        check_class_names(["cat", "dog", "cat"], "names")
