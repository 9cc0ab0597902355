"""The synthetic book: deterministic, independent of partitioning, internally consistent, realistic."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from runoff.portfolio.generator import (
    BLOCK_CUSTOMERS,
    BookConfig,
    book_truth,
    generate_partition,
    product_catalogue,
)
from runoff.servicing.product import Method


def _book(config: BookConfig) -> dict[str, pl.DataFrame]:
    parts = [generate_partition(config, p) for p in range(config.n_partitions)]
    return {name: pl.concat([p[name] for p in parts]) for name in parts[0]}


def test_same_seed_gives_the_same_book_and_another_seed_another() -> None:
    config = BookConfig(customers=400, months=6, seed=5)
    first, again = generate_partition(config, 0), generate_partition(config, 0)
    other = generate_partition(config.model_copy(update={"seed": 6}), 0)
    for name in first:
        assert first[name].equals(again[name]), name
    assert not first["loans"].equals(other["loans"])


def test_the_book_does_not_depend_on_how_it_is_partitioned() -> None:
    customers = 2 * BLOCK_CUSTOMERS + 100  # three blocks
    one_each = BookConfig(customers=customers, months=3, seed=9, blocks_per_partition=1)
    two_each = one_each.model_copy(update={"blocks_per_partition": 2})
    assert (one_each.n_partitions, two_each.n_partitions) == (3, 2)
    a, b = _book(one_each), _book(two_each)
    for name in a:
        assert a[name].equals(b[name]), name


def test_partitions_hold_whole_customers(small_book: dict[str, pl.DataFrame]) -> None:
    ids = set(small_book["customers"].get_column("customer_id").to_list())
    for name in ("accounts", "loans", "payments", "performance"):
        assert set(small_book[name].get_column("customer_id").unique().to_list()) <= ids


def test_schedules_repay_exactly_the_principal(small_book: dict[str, pl.DataFrame]) -> None:
    sums = small_book["installments"].group_by("loan_id").agg(pl.col("principal_fen").sum().alias("scheduled"))
    joined = small_book["loans"].join(sums, on="loan_id")
    assert joined.height == small_book["loans"].height
    assert (joined["scheduled"] == joined["principal_fen"]).all()


def test_every_payment_is_the_sum_of_its_components(small_book: dict[str, pl.DataFrame]) -> None:
    p = small_book["payments"]
    total = p["principal_fen"] + p["interest_fen"] + p["fee_fen"] + p["penalty_fen"]
    assert (p["amount_fen"] == total).all()
    assert (p["amount_fen"] > 0).all()


def test_payments_add_up_to_the_amounts_paid_in_the_performance_table(small_book: dict[str, pl.DataFrame]) -> None:
    paid = (
        small_book["payments"]
        .with_columns(pl.col("paid_on").dt.month_end().alias("month_end"))
        .group_by("loan_id", "month_end")
        .agg(pl.col("principal_fen", "interest_fen", "fee_fen", "penalty_fen").sum())
    )
    perf = small_book["performance"].join(paid, on=["loan_id", "month_end"], how="left").fill_null(0)
    for component in ("principal", "interest", "fee", "penalty"):
        assert (perf[f"paid_{component}_fen"] == perf[f"{component}_fen"]).all(), component
    assert perf["paid_principal_fen"].sum() == small_book["payments"]["principal_fen"].sum()


def test_principal_is_repaid_written_off_or_still_owed(small_book: dict[str, pl.DataFrame]) -> None:
    perf = small_book["performance"]
    flows = perf.group_by("loan_id").agg(
        pl.col("paid_principal_fen").sum(), pl.col("charged_off_fen").sum(), pl.col("principal_balance_fen").last()
    )
    joined = small_book["loans"].join(flows, on="loan_id")
    accounted = joined["paid_principal_fen"] + joined["charged_off_fen"] + joined["principal_balance_fen"]
    assert (accounted == joined["principal_fen"]).all()


@pytest.mark.parametrize(
    ("bucket", "low", "high"),
    [("current", 0, 0), ("M1", 1, 30), ("M2", 31, 60), ("M3", 61, 90), ("M4+", 91, 182), ("charged-off", 181, 215)],
    ids=["current", "M1", "M2", "M3", "M4+", "charged-off"],
)
def test_days_past_due_lie_in_their_bucket(
    small_book: dict[str, pl.DataFrame], bucket: str, low: int, high: int
) -> None:
    dpd = small_book["performance"].filter(pl.col("bucket") == bucket)["dpd"]
    assert dpd.len() > 0
    assert low <= dpd.min() and dpd.max() <= high


def test_one_performance_row_per_loan_per_month_end_until_it_closes(small_book: dict[str, pl.DataFrame]) -> None:
    perf = small_book["performance"]
    rows = perf.group_by("loan_id").agg(pl.len().alias("rows"), pl.col("mob").max().alias("last_mob"))
    assert (rows["rows"] == rows["last_mob"] + 1).all()
    closed = perf.filter(pl.col("status") != "active")
    assert closed.group_by("loan_id").len()["len"].max() == 1  # the closing month only


def test_originations_peak_in_june_and_november() -> None:
    loans = generate_partition(BookConfig(customers=3000, months=12, seed=4), 0)["loans"]
    by_month = loans.group_by(pl.col("originated_on").dt.month().alias("m")).len().sort("m")
    count = dict(zip(by_month["m"].to_list(), by_month["len"].to_list(), strict=True))
    assert count[6] > 1.3 * max(count[5], count[7])
    assert count[11] > 1.3 * max(count[10], count[9])


def test_book_uses_every_term_and_method_at_realistic_prices(small_book: dict[str, pl.DataFrame]) -> None:
    loans = small_book["loans"]
    assert set(loans["term_months"].unique().to_list()) == {3, 6, 12, 24}
    assert set(loans["method"].unique().to_list()) == {m.value for m in Method}
    fees = loans.filter(pl.col("method") == "flat-fee")["fee_rate"]
    assert fees.min() >= 0.005 and fees.max() <= 0.008
    rates = loans.filter(pl.col("method") != "flat-fee")["annual_rate"]
    assert rates.min() >= 0.12 and rates.max() <= 0.24
    assert all(p.method is not Method.INTEREST_ONLY or max(p.terms) <= 6 for p in product_catalogue())


def test_truth_rows_are_probabilities_and_the_stress_peak_is_1_6_to_1_9() -> None:
    for seed in range(5):
        truth = book_truth(BookConfig(customers=1, months=24, seed=seed))
        assert np.allclose(truth.matrices.sum(axis=3), 1.0)
        assert 1.6 <= truth.macro.stress_peak <= 1.9
        assert 1.6 <= truth.macro.factor.max() <= 1.9 + 1e-9
    calm = book_truth(BookConfig(customers=1, months=24, seed=0, stress=False))
    assert calm.macro.stress_start == -1 and calm.macro.factor.max() < 1.3
