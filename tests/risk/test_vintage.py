"""Vintage curves (M1+/M3+ coincident and ever, cumulative charge-off by MOB) and first-payment default,
against the hand-written book."""

from __future__ import annotations

import polars as pl
import pytest

from runoff.errors import RunoffError
from runoff.risk.delinquency import prepare_book
from runoff.risk.vintage import first_payment_default, merge_vintages, vintage_curves, vintage_partition
from tests.risk.hand_book import FEB, MAR, hand_book


def _sums(split: bool = True) -> dict[str, pl.DataFrame]:
    book = hand_book()
    perf, loans = book["performance"], book["loans"]
    pieces = [(pl.col("customer_id") <= 2), (pl.col("customer_id") > 2)] if split else [pl.lit(True)]
    return merge_vintages([vintage_partition(prepare_book(perf.filter(c), as_of=MAR), loans.filter(c)) for c in pieces])


@pytest.fixture
def curves() -> pl.DataFrame:
    return vintage_curves(_sums(), as_of=MAR)


def _at(curves: pl.DataFrame, vintage: str, mob: int) -> dict:
    rows = curves.filter((pl.col("vintage") == vintage) & (pl.col("mob") == mob)).to_dicts()
    assert len(rows) == 1, (vintage, mob)
    return rows[0]


def test_each_vintage_runs_to_the_mob_the_as_of_date_allows(curves):
    last = dict(curves.group_by("vintage").agg(pl.col("mob").max()).iter_rows())
    assert last == {"2023-11": 4, "2024-01": 2, "2024-02": 1}
    assert curves.height == 5 + 3 + 2


@pytest.mark.parametrize(
    ("vintage", "mob", "figures"),
    [
        ("2024-01", 0, {"open_loans": 4, "open_balance_fen": 12000, "m1plus_rate": 0.0, "ever_m1plus_rate": 0.0}),
        ("2024-01", 1, {"open_loans": 3, "m1plus_fen": 7800, "m1plus_rate": 0.65, "m1plus_open_rate": 7800 / 9800,
                        "ever_m1plus_rate": 0.5, "m3plus_rate": 0.0}),
        ("2024-01", 2, {"m1plus_fen": 6000, "m1plus_rate": 0.5, "m2plus_rate": 0.5, "ever_m1plus_rate": 0.5,
                        "ever_m3plus_rate": 0.0}),  # loan 6 cured but was M1+ once
        ("2023-11", 2, {"m1plus_rate": 0.625, "m3plus_rate": 0.625, "ever_m3plus_rate": 1.0}),
        ("2023-11", 3, {"m3plus_rate": 0.625, "cum_charge_off_rate": 0.0}),
        ("2023-11", 4, {"open_loans": 0, "m1plus_rate": 0.0, "charged_off_fen": 5000, "cum_charge_off_rate": 0.625,
                        "ever_m3plus_rate": 1.0}),
        ("2024-02", 1, {"m1plus_rate": 1.0, "ever_m1plus_rate": 1.0, "ever_m3plus_rate": 0.0}),
    ],
    ids=["jan-mob0", "jan-mob1", "jan-mob2", "nov-mob2", "nov-mob3", "nov-mob4", "feb-mob1"],
)  # fmt: skip
def test_vintage_figures_match_the_hand_book(curves, vintage, mob, figures):
    row = _at(curves, vintage, mob)
    for key, value in figures.items():
        assert row[key] == pytest.approx(value), key
    assert row["originated_fen"] == {"2023-11": 8000, "2024-01": 12000, "2024-02": 2400}[vintage]


def test_months_before_the_book_starts_are_unobserved_not_zero(curves):
    row = _at(curves, "2023-11", 1)  # December 2023: before the book's first month end
    assert (row["observed"], row["left_censored"]) == (False, True)
    assert row["m1plus_rate"] is None and row["cum_charge_off_rate"] is None
    assert _at(curves, "2024-01", 0)["left_censored"] is False


def test_partitions_merge_to_the_same_curves():
    assert vintage_curves(_sums(split=True), as_of=MAR).equals(vintage_curves(_sums(split=False), as_of=MAR))


def test_an_earlier_as_of_date_cuts_the_curves():
    book = hand_book()
    sums = merge_vintages([vintage_partition(prepare_book(book["performance"], as_of=FEB), book["loans"])])
    curves = vintage_curves(sums, as_of=FEB)
    assert set(curves.get_column("vintage")) == {"2023-11", "2024-01", "2024-02"}
    assert _at(curves, "2024-01", 1)["m1plus_rate"] == pytest.approx(0.65)
    assert curves.filter(pl.col("vintage") == "2024-01").get_column("mob").max() == 1


@pytest.mark.parametrize(
    ("vintage", "fpd", "fpd30"),
    [("2024-01", 0.5, 0.25), ("2024-02", 1.0, None), ("2023-11", None, 1.0)],
    ids=["jan-both-seen", "feb-fpd30-not-yet", "nov-fpd-before-the-book"],
)
def test_first_payment_default_by_vintage(vintage, fpd, fpd30):
    row = first_payment_default(_sums(), as_of=MAR).filter(pl.col("vintage") == vintage).row(0, named=True)
    assert row["fpd_rate"] == (pytest.approx(fpd) if fpd is not None else None)
    assert row["fpd30_rate"] == (pytest.approx(fpd30) if fpd30 is not None else None)


def test_a_book_without_loans_is_a_clear_error():
    book = hand_book()
    sums = merge_vintages([vintage_partition(prepare_book(book["performance"], as_of=MAR), book["loans"].clear())])
    with pytest.raises(RunoffError, match=r"loans.*no loans originated"):
        vintage_curves(sums, as_of=MAR)


def test_a_loans_table_without_vintage_names_the_column():
    book = hand_book()
    with pytest.raises(RunoffError, match=r"loans.*\['vintage'\]"):
        vintage_partition(prepare_book(book["performance"], as_of=MAR), book["loans"].drop("vintage"))
