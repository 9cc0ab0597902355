"""The vectorized offer check agrees with the row-by-row one, finding for finding."""

from datetime import date
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runoff.compliance.engine import check_offer, check_offers_frame
from runoff.compliance.facts import OfferFacts
from runoff.compliance.findings import FINDINGS_SCHEMA, findings_frame
from runoff.compliance.frame import pct_expr
from runoff.errors import InvalidInput
from tests.compliance.factories import offer, profile

PROFILES = {
    "cn-bank": profile(lender_type="bank"),
    "cn-cfc": profile(lender_type="consumer-finance"),
    "cn-private": profile(lender_type="private-lender"),
    "cn-micro-strict": profile(lender_type="microloan", block_on_unconfirmed=True),
    "us-bank": profile(jurisdictions=["us"], lender_type="bank"),
    "eu-bank": profile(jurisdictions=["eu"], lender_type="bank"),
    "all": profile(jurisdictions=["cn", "us", "eu", "uk"], lender_type="consumer-finance"),
}
FRAME_KINDS = {"cap"}  # rate caps, compensation caps and settlement interest are all CAP checks


def as_frame(offers: list[OfferFacts]) -> pl.DataFrame:
    rows = []
    for o in offers:
        row = o.model_dump(mode="python", exclude={"payments"})
        for key, value in row.items():
            if isinstance(value, Decimal):
                row[key] = float(value)
            elif hasattr(value, "value"):
                row[key] = value.value
        rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def _row_findings(offers, p):
    return {
        (f.rule_id, f.object_id, f.severity.value, f.value)
        for o in offers
        for f in check_offer(o, p)
        if f.kind.value in FRAME_KINDS and f.rule_id not in ("CN-LMT-01",)
    }


def _frame_findings(offers, p):
    found = check_offers_frame(as_frame(offers), p)
    return set(found.select("rule_id", "object_id", "severity", "value").iter_rows())


TABLE = [
    offer("at-24", apr_nominal=Decimal("0.24"), apr_effective=Decimal("0.2682")),
    offer("above-24", apr_nominal=Decimal("0.2401"), apr_effective=Decimal("0.2684")),
    offer("band", apr_nominal=Decimal("0.18"), apr_effective=Decimal("0.1956")),
    offer("march", offered_on=date(2026, 3, 31), apr_nominal=Decimal("0.30"), apr_effective=Decimal("0.34")),
    offer("lpr", apr_nominal=Decimal("0.1381"), apr_effective=Decimal("0.147"), formation_date=date(2024, 1, 15)),
    offer("lpr-none", apr_nominal=Decimal("0.13"), apr_effective=Decimal("0.138"), formation_date=date(2019, 1, 1)),
    offer("facilitated", apr_nominal=Decimal("0.25"), apr_effective=Decimal("0.28"), facilitated=True),
    offer("micro-2028", offered_on=date(2028, 2, 1), apr_nominal=Decimal("0.13"), apr_effective=Decimal("0.138")),
    offer("mla", region="US-TX", apr_nominal=Decimal("0.37"), apr_effective=Decimal("0.44"), covered_borrower=True),
    offer("not-mla", region="US-TX", apr_nominal=Decimal("0.37"), apr_effective=Decimal("0.44")),
    offer("ie-ordinary", region="IE", apr_nominal=Decimal("0.22"), apr_effective=Decimal("0.2436")),
    offer("ie-running", region="IE", product_class="running-account", apr_nominal=Decimal("0.35"), apr_effective=Decimal("0.41")),
    offer("de", region="DE", apr_nominal=Decimal("0.30"), apr_effective=Decimal("0.34")),
    offer("no-region", region=None, apr_nominal=Decimal("0.30"), apr_effective=Decimal("0.34")),
    offer(
        "es-interest", option="early-settlement", interest_charged=Decimal("12"),
        interest_accrued_to_settlement=Decimal("4.5"), apr_effective=Decimal("0.1047"),
    ),
    offer(
        "es-fr", region="FR", option="early-settlement", amount_repaid_early=Decimal("10000"), remaining_months=13,
        settlement_fee=Decimal("100.01"), apr_effective=Decimal("0.1047"),
    ),
    offer(
        "es-fr-ok", region="FR", option="early-settlement", amount_repaid_early=Decimal("10000"), remaining_months=12,
        settlement_fee=Decimal("50"), interest_to_agreed_end=Decimal("60"), apr_effective=Decimal("0.1047"),
    ),
    offer(
        "es-fr-variable", region="FR", option="early-settlement", fixed_rate=False, settlement_fee=Decimal("1"),
        apr_effective=Decimal("0.1047"),
    ),
    offer(
        "es-fr-unknown", region="FR", option="early-settlement", settlement_fee=Decimal("1"),
        apr_effective=Decimal("0.1047"),
    ),
    offer(
        "es-fr-cost", region="FR", option="early-settlement", amount_repaid_early=Decimal("10000"), remaining_months=24,
        settlement_fee=Decimal("20"), creditor_cost=Decimal("15"), apr_effective=Decimal("0.1047"),
    ),
]  # fmt: skip


@pytest.mark.parametrize("name", list(PROFILES))
def test_frame_and_row_checks_agree_on_a_table_of_cases(name):
    p = PROFILES[name]
    expected = _row_findings(TABLE, p)
    assert _frame_findings(TABLE, p) == expected


def test_the_table_exercises_every_frame_check():
    found = check_offers_frame(as_frame(TABLE), PROFILES["all"])
    assert {"CN-CAP-03", "CN-CAP-06", "US-MLA-01", "EU-CCD-04", "EU-CCD-05", "CN-PRC-02"} <= set(found["rule_id"])
    private = check_offers_frame(as_frame(TABLE), PROFILES["cn-private"])
    assert set(private.filter(pl.col("object_id") == "lpr-none")["value"]) == {"(missing)"}


def test_findings_table_has_the_documented_schema_and_messages():
    found = check_offers_frame(as_frame(TABLE[:2]), PROFILES["cn-bank"])
    assert dict(found.schema) == FINDINGS_SCHEMA
    (row,) = found.iter_rows(named=True)
    assert row["message"] == (
        "CN-CAP-03 (secondary source): restructuring offer above-24 has an annualised rate (nominal) of 24.01%, "
        "above the cap of 24.00%"
    )
    (single,) = [f for f in check_offer(TABLE[1], PROFILES["cn-bank"]) if f.rule_id == "CN-CAP-03"]
    assert row["message"] == single.message
    assert findings_frame([single]).schema == found.schema


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(500, 6000),  # nominal APR in basis points
            st.sampled_from(["CN", "US-TX", "IE", "FR", None]),
            st.sampled_from(["restructuring", "extension", "early-settlement"]),
            st.integers(0, 200),  # settlement fee, whole units
            st.integers(0, 36),  # remaining months
            st.booleans(),  # covered borrower
        ),
        min_size=1,
        max_size=25,
    ),
    st.sampled_from(list(PROFILES)),
)
def test_frame_and_row_checks_agree_on_random_offers(rows, name):
    offers = [
        offer(
            f"o{i}",
            apr_nominal=Decimal(bp) / 10000,
            apr_effective=Decimal(bp) / 10000 + Decimal("0.02"),
            region=region,
            option=option,
            settlement_fee=Decimal(fee),
            amount_repaid_early=Decimal(10000),
            remaining_months=months,
            covered_borrower=covered,
            interest_charged=Decimal(fee % 7),
            interest_accrued_to_settlement=Decimal(3),
        )
        for i, (bp, region, option, fee, months, covered) in enumerate(rows)
    ]
    p = PROFILES[name]
    assert _frame_findings(offers, p) == _row_findings(offers, p)


def test_percent_formatting_matches_the_row_path():
    values = [0.2401, 0.12, 0.05, 0.3396, 0.0]
    formatted = pl.DataFrame({"r": values}).select(pct_expr(pl.col("r")))["r"].to_list()
    assert formatted == ["24.01%", "12.00%", "5.00%", "33.96%", "0.00%"]


def test_missing_columns_and_wrong_types_are_named():
    with pytest.raises(InvalidInput, match="lacks column"):
        check_offers_frame(pl.DataFrame({"offer_id": ["a"]}), PROFILES["cn-bank"])
    bad = as_frame(TABLE[:1]).with_columns(pl.col("offered_on").cast(pl.String))
    with pytest.raises(InvalidInput, match="`offered_on`"):
        check_offers_frame(bad, PROFILES["cn-bank"])


def test_an_empty_table_gives_an_empty_findings_table():
    found = check_offers_frame(as_frame(TABLE).head(0), PROFILES["all"])
    assert found.height == 0 and dict(found.schema) == FINDINGS_SCHEMA


def test_an_all_empty_optional_column_is_typed_from_the_facts():
    # found by hypothesis: a region column with no value at all arrives as Polars' Null type
    offers = [offer("a", region=None, apr_nominal=Decimal("0.30"), apr_effective=Decimal("0.34"))]
    for name in ("eu-bank", "cn-bank"):
        assert _frame_findings(offers, PROFILES[name]) == _row_findings(offers, PROFILES[name])
