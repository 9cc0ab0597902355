"""Segment expressions: a small safe language parsed once into Polars; never evaluated as Python."""

from __future__ import annotations

import polars as pl
import pytest

from runoff.plan.expressions import ExpressionError, parse_expression

ACCOUNTS = pl.DataFrame(
    {
        "id": ["a", "b", "c", "d", "e"],
        "dpd": [0, 15, 45, 120, 0],
        "bucket": ["current", "M1", "M2", "M4+", "current"],
        "bucket_rank": [0, 1, 2, 4, 0],
        "balance_fen": [250_000, 500_000, 1_000_050, 80_000, 499_999],
        "overdue_fen": [0, 1_000, 5_000, 80_000, 0],
        "pd": [0.01, 0.2, None, 0.9, 0.04],
        "pd_band": ["very-low", "high", None, "very-high", "low"],
        "pd_band_rank": [0, 3, None, 4, 1],
        "product": ["flat-fee-A", "equal-installment-C", "flat-fee-E", "flat-fee-E", "interest-only-B"],
        "method": ["flat-fee", "equal-installment", "flat-fee", "flat-fee", "interest-only"],
        "term_left": [3, 10, 1, 0, 6],
        "loans": [1, 2, 1, 3, 1],
        "region": ["CN", "CN", "US-MA", "CN", "IE"],
        "city_tier": ["tier-1", "tier-2", "tier-3", "tier-4+", "tier-1"],
        "income_fen": [800_000, 300_000, None, 500_000, 1_500_000],
        "payment_to_income": [0.1, 0.45, None, 0.9, 0.02],
        "affordability": ["affordable", "stretched", None, "unaffordable", "affordable"],
        "affordability_rank": [0, 1, None, 2, 0],
    }
)


def matches(text: str) -> list[str]:
    return ACCOUNTS.filter(parse_expression(text).to_polars()).get_column("id").to_list()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dpd == 0", ["a", "e"]),
        ("dpd = 0", ["a", "e"]),
        ("dpd > 30 and dpd <= 90", ["c"]),
        ("dpd between 1 and 90", ["b", "c"]),
        ("dpd not between 1 and 90", ["a", "d", "e"]),
        ("bucket >= M2", ["c", "d"]),
        ("bucket in [M1, M2]", ["b", "c"]),
        ("bucket in ['M4+']", ["d"]),
        ("bucket == current or overdue > 500", ["a", "d", "e"]),
        ("bucket == current or overdue > 800", ["a", "e"]),
        ("not bucket == current", ["b", "c", "d"]),
        ("balance >= 5000", ["b", "c"]),
        ("balance < 5000", ["a", "d", "e"]),
        ("balance between 2500 and 5000", ["a", "b", "e"]),
        ("balance > 10000.49", ["c"]),
        ("pd < 0.05", ["a", "e"]),
        ("not pd < 0.05", ["b", "d"]),
        ("pd_band >= high", ["b", "d"]),
        ('product in [flat-fee-A, "flat-fee-E"]', ["a", "c", "d"]),
        ("product not in [flat-fee-E]", ["a", "b", "e"]),
        ("method != flat-fee", ["b", "e"]),
        ("region == 'US-MA'", ["c"]),
        ("city_tier in [tier-1, tier-2]", ["a", "b", "e"]),
        ("income >= 8000", ["a", "e"]),
        ("payment_to_income > 0.4", ["b", "d"]),
        ("affordability == stretched", ["b"]),
        ("affordability >= stretched", ["b", "d"]),
        ("term_left > 0 and (bucket == current or loans > 1)", ["a", "b", "e"]),
        ("true", ["a", "b", "c", "d", "e"]),
        ("  ", ["a", "b", "c", "d", "e"]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_condition_selects_the_accounts_it_describes(text, expected):
    assert matches(text) == expected


def test_a_missing_value_matches_neither_a_condition_nor_its_negation():
    with_pd = set(matches("pd < 0.5")) | set(matches("not pd < 0.5"))
    assert "c" not in with_pd and with_pd == {"a", "b", "d", "e"}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("dpdd > 3", "unknown feature `dpdd` at position 1; expected one of"),
        ("dpd >> 3", "expected a value for `dpd` at position 6"),
        ("dpd > 'x'", "`dpd` is a number; 'x' at position 7 is not"),
        ("dpd > 1.5", "`dpd` counts whole numbers; 1.5 at position 7 is not one"),
        ("balance > 10.001", "`balance` is in yuan; 10.001 at position 11 has more than two decimals"),
        ("bucket == M7", "`bucket` has no value 'M7' (position 11); expected one of current, M1, M2, M3, M4+"),
        ("bucket == 2", "`bucket` takes one of current, M1, M2, M3, M4+; 2 at position 11 is a number"),
        ("method > flat-fee", "`method` has no order, so `>` (position 8) does not apply"),
        ("dpd between 90 and 1", "the range is empty; expected the lower end first"),
        ("dpd > 3 dpd < 9", "unexpected `dpd` at position 9; expected `and`, `or` or the end"),
        ("(dpd > 3", "expected `)` at position 9, found the end of the expression"),
        ("dpd in [1, 2", "expected `,` or `]` to close the list at position 13"),
        ("dpd not > 3", "expected `in` or `between` after `dpd not`"),
        ("dpd > 3 and", "expected a feature name at position 12, found the end of the expression"),
        ("__import__('os')", "unknown feature `__import__`"),
        ("dpd > 3; drop", "unexpected character ';' at position 8"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_a_bad_condition_says_what_and_where(text, fragment):
    with pytest.raises(ExpressionError) as caught:
        parse_expression(text)
    assert fragment in str(caught.value)


def test_a_parsed_condition_lists_the_features_it_reads():
    parsed = parse_expression("bucket >= M1 and (balance < 100 or not pd_band in [high])")
    assert parsed.features() == {"bucket", "balance", "pd_band"}
    assert not parsed.matches_everything
    assert parse_expression(None).matches_everything and parse_expression(True).matches_everything
