from decimal import Decimal

import pytest

from runoff.errors import InvalidInput
from runoff.money import RoundingMode, from_minor, parse_amount, quantize, round_to_multiple, to_minor


@pytest.mark.parametrize(
    ("amount", "mode", "expected"),
    [
        ("2.345", RoundingMode.HALF_UP, "2.35"),
        ("2.345", RoundingMode.HALF_EVEN, "2.34"),
        ("2.355", RoundingMode.HALF_EVEN, "2.36"),
        ("-2.345", RoundingMode.HALF_UP, "-2.35"),
    ],
    ids=["half-up", "half-even-down", "half-even-up", "negative-half-up"],
)
def test_quantize_rounds_to_the_cent_by_mode(amount, mode, expected):
    assert quantize(Decimal(amount), mode) == Decimal(expected)


def test_round_to_whole_yuan():
    assert round_to_multiple(Decimal("858.49"), Decimal("1")) == Decimal("858.00")
    assert round_to_multiple(Decimal("858.50"), Decimal("1")) == Decimal("859.00")


def test_minor_units_round_trip():
    assert to_minor(Decimal("1234.56")) == 123456
    assert from_minor(123456) == Decimal("1234.56")


def test_to_minor_refuses_sub_cent_amounts():
    with pytest.raises(InvalidInput, match="more than two decimals"):
        to_minor(Decimal("1.005"))


@pytest.mark.parametrize("bad", ["-5", "abc", "0", "1.234", "nan"])
def test_parse_amount_refuses_bad_amounts_naming_the_field(bad):
    with pytest.raises(InvalidInput, match="`amount`"):
        parse_amount(bad)
