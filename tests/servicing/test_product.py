from decimal import Decimal

import pytest

from runoff.errors import ProductInvalid
from runoff.servicing.product import Method, parse_product

BAITIAO = {"id": "baitiao-flat", "method": "等本等费", "fee_rate": "0.006", "terms": [3, 6, 12]}


def test_chinese_method_alias_is_normalised():
    assert parse_product(BAITIAO).method is Method.FLAT_FEE


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"method": "balloon"}, "method"),
        ({"terms": [0]}, "terms"),
        ({"fee_rate": "0.5"}, "fee_rate"),
        ({"rounding": {"mode": "up"}}, "rounding.mode"),
        ({"surprise": 1}, "surprise"),
        ({"allocation": {"order": ["principal", "interest"]}}, "order"),
    ],
    ids=["unknown-method", "zero-term", "fee-above-10pct", "unknown-rounding", "unknown-field", "partial-order"],
)
def test_bad_product_gets_one_message_naming_the_field(patch, field):
    with pytest.raises(ProductInvalid, match=field.replace(".", r"\.")):
        parse_product({**BAITIAO, **patch})


def test_flat_fee_product_needs_a_fee_rate():
    with pytest.raises(ProductInvalid, match="fee_rate"):
        parse_product({"id": "x", "method": "flat-fee", "terms": [12]})


def test_period_rate_of_an_annual_rate_product_is_a_twelfth():
    p = parse_product({"id": "x", "method": "annuity", "annual_rate": "0.18", "terms": [12]})
    assert p.period_rate == Decimal("0.015")
