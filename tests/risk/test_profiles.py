"""Customer profiles: behaviour features by hand, segment rates, lift and PD, and seeded behaviour clusters."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from runoff.errors import InvalidInput, RunoffError
from runoff.portfolio.generator import BookConfig, generate_partition
from runoff.portfolio.schemas import ACCOUNTS
from runoff.risk.delinquency import prepare_book
from runoff.risk.profiles import (
    FEATURE_BINS,
    customer_features,
    feature_histogram,
    fit_behaviour_clusters,
    merge_profiles,
    merge_samples,
    profile_partition,
    profile_table,
    sample_customers,
)
from tests.risk.hand_book import FEB, JAN, MAR, hand_book

DUE = {(1, FEB): 1000, (1, MAR): 1000, (2, FEB): 1000, (2, MAR): 1000}


def _performance() -> pl.DataFrame:
    """The hand book with amounts due on loans 1 and 2 (customer 1 paid 2000 of the 4000 due)."""
    perf = hand_book()["performance"]
    due = pl.DataFrame(
        {"loan_id": [k[0] for k in DUE], "month_end": [k[1] for k in DUE], "_due": list(DUE.values())},
        schema={"loan_id": pl.Int64, "month_end": pl.Date, "_due": pl.Int64},
    )
    return (
        perf.join(due, on=["loan_id", "month_end"], how="left")
        .with_columns(pl.col("_due").fill_null(0).alias("due_fen"))
        .drop("_due")
    )


def _accounts() -> pl.DataFrame:
    return ACCOUNTS.conform(
        pl.DataFrame(
            {
                "account_id": [1, 2, 3, 4],
                "customer_id": [1, 2, 3, 4],
                "opened_on": [date(2022, 1, 1)] * 4,
                "credit_limit_fen": [20_000, 10_000, 10_000, 4_800],
                "status": ["open", "open", "closed", "open"],
            }
        )
    )


def _features(scores: pl.DataFrame | None = None) -> pl.DataFrame:
    book = prepare_book(_performance(), as_of=MAR)
    return customer_features(book, customers=hand_book()["customers"], accounts=_accounts(), scores=scores)


def test_features_of_each_customer_with_an_open_loan_by_hand():
    rows = {r["customer_id"]: r for r in _features().to_dicts()}
    assert set(rows) == {1, 2, 4}  # customer 3 was written off in March
    one = rows[1]  # loan 1 current 1000, loan 2 in M2 6000 (dpd 41), M1 in February
    assert (one["balance_fen"], one["active_loans"], one["m1plus_fen"], one["m3plus_fen"]) == (7000, 2, 6000, 0)
    assert (one["worst_dpd_3m"], one["worst_dpd_12m"], one["months_delinquent_12m"]) == (41, 41, 2)
    assert one["payment_ratio_6m"] == pytest.approx(2000 / 4000)
    assert one["utilization"] == pytest.approx(7000 / 20000)
    assert (one["age_band"], one["tenure_band"], one["channel"], one["risk_grade"]) == (
        "25-34",
        "2-4y",
        "checkout",
        "A",
    )
    two = rows[2]  # loan 6: M1 dpd 20 in February, cured in March; loan 3 prepaid
    assert (two["balance_fen"], two["m1plus"], two["worst_dpd_12m"], two["months_delinquent_12m"]) == (
        1500,
        False,
        20,
        1,
    )
    assert two["payment_ratio_6m"] == 1.0  # nothing fell due: no evidence of under-payment
    four = rows[4]
    assert (four["m1plus"], four["worst_dpd_3m"], four["utilization"]) == (True, 5, pytest.approx(0.5))


def test_features_never_read_month_ends_after_the_as_of_date():
    book = prepare_book(_performance(), as_of=FEB)
    rows = {r["customer_id"]: r for r in customer_features(book).to_dicts()}
    assert rows[1]["worst_dpd_12m"] == 10  # February's dpd, not March's 41
    assert rows[3]["m3plus"] is True  # customer 3 is still open (M4+) at the end of February


def test_segment_rates_and_lift_by_hand():
    table = profile_table(merge_profiles([profile_partition(_features())]))
    rows = {(r["dimension"], r["segment"]): r for r in table.to_dicts()}
    total = rows[("total", "all")]
    assert (total["customers"], total["balance_fen"], total["m1plus_customers"], total["m1plus_fen"]) == (
        3,
        10900,
        2,
        8400,
    )
    assert total["m1plus_balance_rate"] == pytest.approx(8400 / 10900)
    checkout = rows[("channel", "checkout")]  # customers 1 and 4
    assert (checkout["customers"], checkout["balance_fen"], checkout["m1plus_fen"]) == (2, 9400, 8400)
    assert checkout["lift"] == pytest.approx((8400 / 9400) / (8400 / 10900))
    assert checkout["customer_share"] == pytest.approx(2 / 3)
    assert rows[("channel", "app")]["lift"] == 0.0
    assert not checkout["flag"]  # too few customers to flag


def test_mean_pd_uses_each_customers_latest_score_up_to_the_as_of_date():
    scores = pl.DataFrame(
        {
            "customer_id": [1, 1, 2, 4],
            "as_of": [FEB, MAR, MAR, date(2024, 4, 30)],
            "pd": [0.1, 0.2, 0.05, 0.3],
        }
    )
    table = profile_table(merge_profiles([profile_partition(_features(scores))]))
    total = table.filter(pl.col("dimension") == "total").row(0, named=True)
    assert (total["scored_customers"], total["mean_pd"]) == (2, pytest.approx(0.125))


def test_scores_without_a_pd_column_are_named():
    with pytest.raises(InvalidInput, match=r"scores.*\['pd'\]"):
        _features(pl.DataFrame({"customer_id": [1], "score": [600]}))


def test_no_open_customer_is_a_clear_error():
    book = prepare_book(_performance().filter(pl.col("month_end") == JAN).clear(), as_of=MAR)
    features = customer_features(book)
    with pytest.raises(RunoffError, match="no customers with an open loan"):
        profile_table(merge_profiles([profile_partition(features)]))
    with pytest.raises(RunoffError, match="no customers with an open loan"):
        fit_behaviour_clusters(features)


# --- behaviour clusters on a generated book --------------------------------------------------------------------

CLUSTER_BOOK = BookConfig(customers=6000, months=15, seed=5)


@pytest.fixture(scope="module")
def generated_features() -> pl.DataFrame:
    frames = generate_partition(CLUSTER_BOOK, 0)
    as_of = CLUSTER_BOOK.month_ends()[-1]
    book = prepare_book(frames["performance"], as_of=as_of)
    return customer_features(book, customers=frames["customers"], accounts=frames["accounts"])


def test_the_cluster_sample_does_not_depend_on_how_the_book_is_split(generated_features):
    whole = merge_samples([sample_customers(generated_features, size=500, seed=1)], size=500)
    halves = [generated_features.filter(pl.col("customer_id") % 2 == k) for k in (0, 1)]
    split = merge_samples([sample_customers(h, size=500, seed=1) for h in halves], size=500)
    assert whole.equals(split)
    other = merge_samples([sample_customers(generated_features, size=500, seed=2)], size=500)
    assert set(other["customer_id"]) != set(whole["customer_id"])


def test_clusters_are_seeded_numbered_by_delinquency_and_separate_the_bad_payers(generated_features):
    sample = merge_samples([sample_customers(generated_features, size=3000, seed=3)], size=3000)
    first = fit_behaviour_clusters(sample, n_clusters=4, seed=3)
    again = fit_behaviour_clusters(sample, n_clusters=4, seed=3)
    assert first.names == again.names
    assert first.assign(generated_features).equals(again.assign(generated_features))
    assert len(first.names) == 4 and all(n.startswith(f"C{k}: ") for k, n in enumerate(first.names))
    dpd = first.centers.sort("cluster").get_column("worst_dpd_12m").to_list()
    assert dpd == sorted(dpd)  # C0 is the cleanest
    table = profile_table(merge_profiles([profile_partition(generated_features, first)]))
    clusters = table.filter(pl.col("dimension") == "cluster").sort("segment")
    assert clusters.get_column("customers").sum() == generated_features.height
    rates = clusters.get_column("m1plus_balance_rate").to_list()
    assert rates[-1] == max(rates) and rates[-1] > 3 * table.row(0, named=True)["m1plus_balance_rate"]
    assert clusters.get_column("flag").to_list()[-1] is True


def test_a_cluster_count_below_one_is_refused(generated_features):
    with pytest.raises(InvalidInput, match="`clusters`: 0"):
        fit_behaviour_clusters(generated_features, n_clusters=0)


def test_feature_histograms_use_fixed_bins_and_keep_missing_values_apart():
    hist = feature_histogram(_features(), period="current")
    dpd = dict(hist.filter(pl.col("feature") == "worst_dpd_12m").select("bin", "customers").iter_rows())
    assert dpd == {1: 2, 2: 1}  # 20 and 5 DPD in (0.5, 30.5]; 41 DPD in (30.5, 60.5]
    util = dict(hist.filter(pl.col("feature") == "utilization").select("bin", "customers").iter_rows())
    assert util == {1: 1, 2: 2}  # 0.15 in (0.1, 0.25]; 0.35 and 0.5 in (0.25, 0.5]
    no_limits = feature_histogram(customer_features(prepare_book(_performance(), as_of=MAR)), period="current")
    missing = no_limits.filter(pl.col("feature") == "utilization").row(0, named=True)
    assert (missing["bin"], missing["customers"]) == (len(FEATURE_BINS["utilization"]) + 1, 3)
