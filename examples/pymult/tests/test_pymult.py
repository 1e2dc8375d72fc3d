import pytest

import pymult


def test_small_numbers():
    assert pymult.multiply(6, 7) == 42


def test_negative_numbers():
    assert pymult.multiply(-6, 7) == -42
    assert pymult.multiply(-6, -7) == 42


def test_values_past_two_to_the_32():
    assert pymult.multiply(2**40, 3) == 3298534883328
    assert pymult.multiply(2**32, 2**30) == 2**62


def test_extremes():
    assert pymult.multiply(2**63 - 1, 1) == 2**63 - 1
    assert pymult.multiply(-(2**63), 1) == -(2**63)


def test_overflow_raises():
    with pytest.raises(OverflowError):
        pymult.multiply(2**62, 4)


def test_bad_arguments():
    with pytest.raises(TypeError):
        pymult.multiply("2", 3)
    with pytest.raises(TypeError):
        pymult.multiply(2)
    with pytest.raises(OverflowError):
        pymult.multiply(2**64, 1)


def test_docstrings():
    assert pymult.__doc__ == "Integer multiplication written in x86-64 assembly."
    assert pymult.multiply.__doc__.startswith("multiply(a, b)")
