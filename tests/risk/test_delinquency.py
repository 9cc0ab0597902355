"""Overdue rates by count and balance, per bucket and M1+/M2+/M3+/M4+, against the hand-written book."""

from __future__ import annotations

import polars as pl
import pytest

from runoff.errors import InvalidInput, RunoffError
from runoff.risk.delinquency import (
    DEFAULT_DIMENSIONS,
    book_as_of,
    delinquency_partition,
    latest,
    merge_delinquency,
    overdue_rates,
    prepare_book,
)
from tests.risk.hand_book import FEB, JAN, MAR, hand_book


def _rates(book: dict[str, pl.DataFrame], *, split: bool = False) -> pl.DataFrame:
    """Overdue rates of the book, optionally computed on two partitions (customers 1–2 and 3–4) and merged."""
    perf = book["performance"]
    pieces = [perf.filter(pl.col("customer_id") <= 2), perf.filter(pl.col("customer_id") > 2)] if split else [perf]
    parts = [
        delinquency_partition(
            prepare_book(p, loans=book["loans"], customers=book["customers"], dimensions=DEFAULT_DIMENSIONS, as_of=MAR)
        )
        for p in pieces
    ]
    return overdue_rates(merge_delinquency(parts))


def _row(rates: pl.DataFrame, dimension: str, segment: str, month_end) -> dict:
    rows = rates.filter(
        (pl.col("dimension") == dimension) & (pl.col("segment") == segment) & (pl.col("month_end") == month_end)
    ).to_dicts()
    assert len(rows) == 1, (dimension, segment, month_end)
    return rows[0]


# (month end, open loans, open balance, {threshold: (loans, balance)}) worked out in hand_book.py's table
TOTALS = [
    (JAN, 5, 17000, {"m1plus": (1, 5000), "m2plus": (1, 5000), "m3plus": (1, 5000), "m4plus": (0, 0)}),
    (FEB, 5, 17200, {"m1plus": (3, 12800), "m2plus": (1, 5000), "m3plus": (1, 5000), "m4plus": (1, 5000)}),
    (MAR, 4, 10900, {"m1plus": (2, 8400), "m2plus": (1, 6000), "m3plus": (0, 0), "m4plus": (0, 0)}),
]


@pytest.mark.parametrize(("month_end", "loans", "balance", "thresholds"), TOTALS, ids=["jan", "feb", "mar"])
@pytest.mark.parametrize("split", [False, True], ids=["one-partition", "two-partitions"])
def test_threshold_rates_by_count_and_balance_match_the_hand_book(month_end, loans, balance, thresholds, split):
    row = _row(_rates(hand_book(), split=split), "total", "all", month_end)
    assert (row["open_loans"], row["open_balance_fen"]) == (loans, balance)
    for name, (n, fen) in thresholds.items():
        assert (row[f"{name}_loans"], row[f"{name}_balance_fen"]) == (n, fen), name
        assert row[f"{name}_count_rate"] == pytest.approx(n / loans), name
        assert row[f"{name}_balance_rate"] == pytest.approx(fen / balance), name


@pytest.mark.parametrize(
    ("bucket", "loans", "balance"),
    [("current", 2, 4400), ("m1", 2, 7800), ("m2", 0, 0), ("m3", 0, 0), ("m4plus", 1, 5000)],
    ids=["current", "M1", "M2", "M3", "M4+"],
)
def test_each_bucket_in_february(bucket, loans, balance):
    row = _row(_rates(hand_book()), "total", "all", FEB)
    assert (row[f"{bucket}_loans"], row[f"{bucket}_balance_fen"]) == (loans, balance)
    assert row[f"{bucket}_count_rate"] == pytest.approx(loans / 5)
    assert row[f"{bucket}_balance_rate"] == pytest.approx(balance / 17200)


@pytest.mark.parametrize(
    ("dimension", "segment", "month_end", "open_loans", "open_balance", "m1plus_loans", "m1plus_balance"),
    [
        ("product", "P", FEB, 3, 10400, 1, 6000),  # loans 1, 2, 5
        ("product", "Q", FEB, 2, 6800, 2, 6800),  # loans 4, 6 (3 closed)
        ("term", "3", MAR, 2, 3400, 1, 2400),  # loans 1, 5
        ("term", "6", MAR, 2, 7500, 1, 6000),  # loans 2, 6 (4 charged off)
        ("channel", "app", JAN, 3, 8000, 1, 5000),  # customers 2, 3: loans 3, 4, 6
        ("region", "tier-1", MAR, 3, 9400, 2, 8400),  # customers 1, 4: loans 1, 2, 5
        ("grade", "E", FEB, 1, 5000, 1, 5000),  # customer 3: loan 4
        ("grade", "B", MAR, 1, 1500, 0, 0),  # customer 2: loan 6 cured
    ],
    ids=["product-P", "product-Q", "term-3", "term-6", "channel-app", "region-tier-1", "grade-E", "grade-B"],
)
def test_segments_cut_the_book_by_loan_and_customer_attributes(
    dimension, segment, month_end, open_loans, open_balance, m1plus_loans, m1plus_balance
):
    row = _row(_rates(hand_book(), split=True), dimension, segment, month_end)
    assert (row["open_loans"], row["open_balance_fen"]) == (open_loans, open_balance)
    assert (row["m1plus_loans"], row["m1plus_balance_fen"]) == (m1plus_loans, m1plus_balance)


def test_charge_offs_are_counted_apart_from_the_open_book():
    row = _row(_rates(hand_book()), "total", "all", MAR)
    assert (row["charged_off_loans"], row["charged_off_fen"]) == (1, 5000)
    assert row["overdue_amount_fen"] == 2100 + 800


def test_a_segment_with_no_open_loans_has_null_rates_not_a_division_error():
    rates = _rates(hand_book())
    row = _row(rates, "grade", "E", MAR)  # loan 4 charged off in March: no open loan left
    assert row["open_loans"] == 0
    assert row["m1plus_count_rate"] is None and row["m1plus_balance_rate"] is None


def test_missing_loans_and_customers_tables_leave_segments_unknown():
    book = hand_book()
    prepared = prepare_book(book["performance"], dimensions=("product", "grade"), as_of=MAR)
    rates = overdue_rates(merge_delinquency([delinquency_partition(prepared)]))
    assert set(rates.filter(pl.col("dimension") == "grade").get_column("segment")) == {"unknown"}
    assert _row(rates, "product", "unknown", FEB)["m1plus_loans"] == 3


def test_rows_after_the_as_of_date_are_left_out():
    book = hand_book()
    rates = overdue_rates(merge_delinquency([delinquency_partition(prepare_book(book["performance"], as_of=FEB))]))
    assert rates.get_column("month_end").max() == FEB
    assert latest(rates).get_column("month_end").to_list() == [FEB]


@pytest.mark.parametrize(
    ("as_of", "expected"),
    [(None, MAR), (MAR.replace(day=15), FEB), (FEB, FEB)],
    ids=["last-snapshot", "mid-month-falls-back", "exact"],
)
def test_the_as_of_date_is_the_last_snapshot_on_or_before_it(as_of, expected):
    assert book_as_of(hand_book()["performance"].lazy(), as_of) == expected


def test_an_as_of_date_before_the_book_is_refused_by_name():
    with pytest.raises(InvalidInput, match="as_of"):
        book_as_of(hand_book()["performance"].lazy(), JAN.replace(day=1))


def test_an_empty_performance_table_is_a_clear_error():
    empty = hand_book()["performance"].clear()
    part = delinquency_partition(prepare_book(empty, as_of=MAR))
    with pytest.raises(RunoffError, match=r"performance.*no month-end rows") as err:
        overdue_rates(merge_delinquency([part]))
    assert err.value.code == "risk.empty_table"
    with pytest.raises(RunoffError, match="no month-end rows"):
        book_as_of(empty.lazy())


def test_missing_columns_are_named():
    perf = hand_book()["performance"].drop("principal_balance_fen", "bucket")
    with pytest.raises(RunoffError, match=r"performance.*\['bucket', 'principal_balance_fen'\]") as err:
        prepare_book(perf, as_of=MAR)
    assert err.value.code == "risk.missing_columns"


def test_an_unknown_segment_is_refused_with_the_allowed_ones():
    with pytest.raises(InvalidInput, match="'colour' is not a segment; expected one of product"):
        prepare_book(hand_book()["performance"], dimensions=("colour",), as_of=MAR)
