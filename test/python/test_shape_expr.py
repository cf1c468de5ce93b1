"""The kernel table's shape expressions (grid, launches, bytes): what the
evaluator that the cost report and the tests share accepts and refuses."""

import re

import pytest

from usmoe import _usmoe


@pytest.mark.parametrize("text, value", [
    ("ceildiv(B * T, 4)", 3),
    ("B * T * E * 5 + (E + 1) * 4", 10 * 8 * 5 + 36),
    ("1 - gt(ceildiv(T * E, 4096), 1)", 1),
    ("4 * gt(ceildiv(T * 5000, 4096), 1)", 4),
    ("min(B, T) * 10 + max(B, T) - 7", 18),
    ("  42 ", 42),
])
def test_values(text, value):
    assert _usmoe.evaluate_shape_expr(text, dict(B=2, T=5, E=8)) == value


@pytest.mark.parametrize("text, message", [
    ("M * 8", "no value for 'M'"),
    ("ceildiv(B, 0)", "ceildiv by 0"),
    ("pow(B, 2)", "unknown function 'pow'"),
    ("B * (T", "expected ')'"),
    ("B +", "unexpected end"),
    ("B B", "unexpected 'B'"),
    ("99999999999 * 99999999999", "overflow"),
    ("99999999999999999999", "number too large"),
])
def test_errors(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _usmoe.evaluate_shape_expr(text, dict(B=2, T=5))
