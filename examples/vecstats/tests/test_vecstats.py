import math

import pytest

import vecstats
from vecstats import _native


def test_mean_of_floats():
    assert vecstats.mean([1.0, 2.0, 3.0, 4.0]) == 2.5


def test_mean_of_ints_and_negatives():
    assert vecstats.mean([1, 2, 3]) == 2.0
    assert vecstats.mean([-1.0, -1.0]) == -1.0
    assert vecstats.mean([-3, 1]) == -1.0


def test_nan_is_a_value_not_an_error():
    assert math.isnan(vecstats.mean([1.0, float("nan")]))


def test_large_list():
    values = [float(i) for i in range(100_000)]
    assert vecstats.mean(values) == pytest.approx(49_999.5)


def test_empty_list_raises_value_error():
    with pytest.raises(ValueError, match=r"mean\(\) of an empty list"):
        vecstats.mean([])


def test_non_numbers_raise_type_error():
    with pytest.raises(TypeError):
        vecstats.mean([1.0, "two"])


def test_only_lists_are_accepted():
    with pytest.raises(TypeError, match="list"):
        vecstats.mean((1.0, 2.0))


def test_module_is_a_package_member():
    assert _native.__name__ == "vecstats._native"
    assert vecstats.mean.__doc__.startswith("mean(values: list)")
