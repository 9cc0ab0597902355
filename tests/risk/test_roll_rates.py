"""Transition matrices, roll, cure, collection and flow rates, and concentration: by hand, and against the
generator's true Markov chain."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from runoff.errors import InvalidInput, RunoffError
from runoff.portfolio.behaviour import GRADES
from runoff.portfolio.generator import BookConfig, book_truth, generate_partition
from runoff.risk.delinquency import CYCLE_STATES, DEFAULT_DIMENSIONS, prepare_book, state_code
from runoff.risk.roll_rates import (
    concentration,
    concentration_partition,
    flow_rates,
    merge_concentration,
    merge_transitions,
    roll_rates,
    segment_concentration,
    transition_matrix,
    transition_partition,
)
from tests.risk.hand_book import FEB, JAN, MAR, hand_book


def _counts(perf: pl.DataFrame, *, split: bool = True, dims=DEFAULT_DIMENSIONS) -> pl.DataFrame:
    book = hand_book()
    pieces = [perf.filter(pl.col("customer_id") <= 2), perf.filter(pl.col("customer_id") > 2)] if split else [perf]
    parts = []
    for p in pieces:
        prepared = prepare_book(p, loans=book["loans"], customers=book["customers"], dimensions=dims, as_of=MAR)
        parts.append(transition_partition(prepared))
    return merge_transitions(parts)


@pytest.fixture
def counts() -> pl.DataFrame:
    return _counts(hand_book()["performance"])


# --- matrices ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "from_state", "expected"),
    [
        ("loans", "current", {"current": 2 / 6, "M1": 3 / 6, "prepaid": 1 / 6}),
        ("loans", "M1", {"current": 1 / 2, "M2": 1 / 2}),
        ("loans", "M3", {"M4+": 1.0}),
        ("loans", "M4+", {"charged-off": 1.0}),
        ("balance", "current", {"current": 5000 / 16400, "M1": 10200 / 16400, "prepaid": 1200 / 16400}),
        ("balance", "M1", {"current": 1800 / 7800, "M2": 6000 / 7800}),
    ],
    ids=["current-count", "m1-count", "m3-count", "m4plus-count", "current-balance", "m1-balance"],
)
def test_bucket_matrix_pooled_over_months_matches_the_hand_book(counts, weight, from_state, expected):
    m = transition_matrix(counts, weight=weight)
    row = dict(zip(m.to_states, m.probabilities[m.from_states.index(from_state)], strict=True))
    assert {k: v for k, v in row.items() if v > 0} == pytest.approx(expected)
    assert m.probabilities[m.from_states.index(from_state)].sum() == pytest.approx(1.0)


def test_a_state_never_seen_has_an_empty_row(counts):
    m = transition_matrix(counts)
    assert np.isnan(m.probabilities[m.from_states.index("M2")]).all()
    assert m.row_totals[m.from_states.index("M2")] == 0


def test_cycle_states_split_m4plus_by_the_month_of_the_oldest_due_date(counts):
    m = transition_matrix(counts, states="cycle")
    assert m.from_states == CYCLE_STATES
    assert m.probability("M3", "M4") == 1.0  # January M3 (dpd 70) → February dpd 99: 4th month end past due
    assert m.probability("M4", "charged-off") == 1.0


def test_one_month_and_one_segment_can_be_picked(counts):
    m = transition_matrix(counts, dimension="product", segment="Q", months=[JAN])
    assert m.counts[m.from_states.index("current")].tolist() == [0, 1, 0, 0, 0, 0, 1, 0]  # loan 6 → M1, 3 prepaid
    assert m.probability("M3", "M4+") == 1.0


def test_a_missing_next_month_end_goes_to_unobserved_and_out_of_the_probabilities():
    perf = hand_book()["performance"].filter(~((pl.col("loan_id") == 1) & (pl.col("month_end") == FEB)))
    m = transition_matrix(_counts(perf))
    current = m.from_states.index("current")
    assert m.unobserved[current] == 1  # loan 1 in January: no February row
    assert m.row_totals[current] == 4  # loans 2, 3, 6 in January and loan 5 in February
    assert m.probability("current", "M1") == pytest.approx(3 / 4)


@pytest.mark.parametrize(("kwargs", "field"), [({"weight": "fen"}, "weight"), ({"states": "dpd"}, "states")])
def test_matrix_options_are_checked_by_name(counts, kwargs, field):
    with pytest.raises(InvalidInput, match=field):
        transition_matrix(counts, **kwargs)


def test_split_partitions_give_the_same_counts_as_one():
    perf = hand_book()["performance"]
    assert _counts(perf, split=True).equals(_counts(perf, split=False))


# --- roll, cure, collection and flow rates ---------------------------------------------------------------------


def _roll(counts: pl.DataFrame, month_end, bucket) -> dict:
    rows = (
        roll_rates(counts)
        .filter(
            (pl.col("dimension") == "total") & (pl.col("month_end") == month_end) & (pl.col("from_bucket") == bucket)
        )
        .to_dicts()
    )
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize(
    ("month_end", "bucket", "figures"),
    [
        (JAN, "current", {"from_loans": 4, "from_balance_fen": 12000, "roll_forward_count_rate": 0.5,
                          "roll_forward_balance_rate": 7800 / 12000, "prepaid_balance_rate": 0.1}),
        (JAN, "M3", {"from_loans": 1, "roll_forward_count_rate": 1.0, "collection_rate": 0.0}),
        (FEB, "current", {"from_loans": 2, "roll_forward_count_rate": 0.5, "roll_forward_balance_rate": 2400 / 4400}),
        (FEB, "M1", {"from_loans": 2, "roll_forward_balance_rate": 6000 / 7800, "cure_count_rate": 0.5,
                     "cure_balance_rate": 1800 / 7800, "collected_fen": 320, "overdue_amount_fen": 1370,
                     "collection_rate": 320 / 1370}),
        (FEB, "M4+", {"roll_forward_count_rate": 1.0, "charged_off_balance_rate": 1.0, "cure_count_rate": 0.0}),
    ],
    ids=["jan-current", "jan-m3", "feb-current", "feb-m1", "feb-m4plus"],
)  # fmt: skip
def test_roll_cure_and_collection_rates_match_the_hand_book(counts, month_end, bucket, figures):
    row = _roll(counts, month_end, bucket)
    for key, value in figures.items():
        assert row[key] == pytest.approx(value), key


def test_the_current_bucket_has_no_cure_and_no_collection_rate(counts):
    row = _roll(counts, FEB, "current")
    assert row["cure_count_rate"] == 0.0
    assert row["collection_rate"] is None


def test_flow_rates_chain_the_one_cycle_rolls(counts):
    flows = {r["month_end"]: r for r in flow_rates(counts).to_dicts()}
    assert flows[JAN]["current_to_m1"] == pytest.approx(7800 / 12000)
    assert flows[JAN]["m3_to_m4"] == 1.0
    assert flows[FEB]["current_to_m1"] == pytest.approx(2400 / 4400)
    assert flows[FEB]["m1_to_m2"] == pytest.approx(6000 / 7800)
    assert flows[FEB]["m4_to_m5"] == 0.0  # loan 4 went from M4 straight to write-off
    assert flows[FEB]["m2_to_m3"] is None  # nobody in M2 at the end of February
    assert flows[FEB]["current_to_charge_off"] is None


def test_flow_rate_is_the_product_of_the_steps():
    steps = pl.DataFrame(
        {
            "dimension": "total",
            "segment": "all",
            "month_end": JAN,
            "from_state": ["current", "current", "M1", "M1", "M2", "M3", "M4", "M5", "M6", "M6"],
            "to_state": ["current", "M1", "M1", "M2", "M3", "M4", "M5", "M6", "charged-off", "current"],
            "loans": [1] * 10,
            "balance_fen": [900, 100, 50, 50, 10, 10, 10, 10, 3, 1],
            "overdue_amount_fen": [0] * 10,
            "collected_fen": [0] * 10,
        }
    )
    row = flow_rates(steps).row(0, named=True)
    assert row["current_to_charge_off"] == pytest.approx(0.1 * 0.5 * 1 * 1 * 1 * 1 * 0.75)


def test_roll_rates_of_an_empty_book_are_a_clear_error(counts):
    with pytest.raises(RunoffError, match="no pairs of consecutive month ends"):
        roll_rates(counts.clear())


# --- concentration ---------------------------------------------------------------------------------------------


def test_customer_concentration_hhi_and_top_share_at_the_end_of_february():
    perf = hand_book()["performance"]
    parts = [
        concentration_partition(prepare_book(p, as_of=MAR), top_n=1)
        for p in (perf.filter(pl.col("customer_id") <= 2), perf.filter(pl.col("customer_id") > 2))
    ]
    conc = concentration(merge_concentration(parts, top_n=1), tops=(1,))
    feb = conc.filter(pl.col("month_end") == FEB).row(0, named=True)
    # customer balances 8000 (loans 1+2), 1800 (loan 6), 5000 (loan 4), 2400 (loan 5); overdue 6000, 1800, 5000
    assert (feb["customers"], feb["balance_fen"], feb["overdue_customers"], feb["overdue_balance_fen"]) == (
        4,
        17200,
        3,
        12800,
    )
    assert feb["hhi"] == pytest.approx((8000**2 + 1800**2 + 5000**2 + 2400**2) / 17200**2)
    assert feb["effective_borrowers"] == pytest.approx(17200**2 / (8000**2 + 1800**2 + 5000**2 + 2400**2))
    assert feb["top1_share"] == pytest.approx(8000 / 17200)
    assert feb["overdue_hhi"] == pytest.approx((6000**2 + 1800**2 + 5000**2) / 12800**2)
    assert feb["overdue_top1_share"] == pytest.approx(6000 / 12800)


def test_segment_concentration_by_product():
    from runoff.risk.delinquency import delinquency_partition, merge_delinquency, overdue_rates

    book = hand_book()
    prepared = prepare_book(book["performance"], loans=book["loans"], dimensions=("product",), as_of=MAR)
    rates = overdue_rates(merge_delinquency([delinquency_partition(prepared)]))
    row = segment_concentration(rates, as_of=FEB).row(0, named=True)
    assert row["dimension"] == "product"
    assert row["hhi"] == pytest.approx((10400**2 + 6800**2) / 17200**2)
    assert row["overdue_hhi"] == pytest.approx((6000**2 + 6800**2) / 12800**2)
    assert (row["largest_segment"], row["largest_overdue_segment"]) == ("P", "Q")


# --- against the generator's true matrices ---------------------------------------------------------------------

TRUTH_BOOK = BookConfig(customers=24_000, months=12, seed=2024)


@pytest.fixture(scope="module")
def generated_counts() -> pl.DataFrame:
    """Cycle-state counts of a generated book by (grade, from-month), from rows far enough from maturity that no
    payment outcome can close the loan (installments left ≥ state + 2), so each outcome is the chain's."""
    parts = []
    for p in range(TRUTH_BOOK.n_partitions):
        frames = generate_partition(TRUTH_BOOK, p)
        far = pl.col("installments_remaining").cast(pl.Int32) >= state_code().cast(pl.Int32) + 2
        # the grade's segment name carries the marker: customers get one row per (customer, far) pair
        perf = frames["performance"].with_columns((pl.col("customer_id") * 2 + far.cast(pl.Int64)).alias("customer_id"))
        customers = pl.concat(
            [
                frames["customers"].with_columns(
                    (pl.col("customer_id") * 2 + k).alias("customer_id"),
                    (pl.col("risk_grade") + ("|far" if k else "|near")).alias("risk_grade"),
                )
                for k in (0, 1)
            ]
        )
        prepared = prepare_book(perf, customers=customers, dimensions=("grade",), as_of=TRUTH_BOOK.month_ends()[-1])
        parts.append(transition_partition(prepared))
    return merge_transitions(parts)


_TRUTH_INDEX = {s: k for k, s in enumerate(("current", "M1", "M2", "M3", "M4", "M5", "M6"))}
_TO_TRUTH = {**_TRUTH_INDEX, "charged-off": 7, "paid-off": 0}  # paid off: the chain's "pays" outcome


def _z_scores(counts: pl.DataFrame, grade: str, truth_grade: str) -> tuple[np.ndarray, np.ndarray]:
    """z of each estimated cell against the count-weighted true probabilities (multinomial standard errors)."""
    truth = book_truth(TRUTH_BOOK)
    month_ends = list(truth.month_ends)
    g = GRADES.index(truth_grade)
    rows = counts.filter(
        (pl.col("dimension") == "grade")
        & (pl.col("segment") == f"{grade}|far")
        & pl.col("to_state").is_in(list(_TO_TRUTH))
        & pl.col("from_state").is_in(list(_TRUTH_INDEX))
    )
    n = np.zeros((len(month_ends), 8))
    c = np.zeros((len(month_ends), 8, 8))
    for month_end, f, t, loans in rows.select("month_end", "from_state", "to_state", "loans").iter_rows():
        k = month_ends.index(month_end) + 1  # the chain's month is the one the transition ends in
        n[k, _TRUTH_INDEX[f]] += loans
        c[k, _TRUTH_INDEX[f], _TO_TRUTH[t]] += loans
    p = truth.matrices[g]  # [month, from, to]
    total = n.sum(axis=0)
    expected = np.einsum("ti,tij->ij", n, p) / np.maximum(total, 1)[:, None]
    var = np.einsum("ti,tij->ij", n, p * (1 - p)) / np.maximum(total, 1)[:, None] ** 2
    estimate = c.sum(axis=0) / np.maximum(total, 1)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 0, (estimate - expected) / np.sqrt(var), 0.0)
    impossible = (var == 0) & (expected == 0)
    return z[:7], (c.sum(axis=0) * impossible)[:7]


@pytest.mark.slow
@pytest.mark.parametrize("grade", GRADES)
def test_estimated_matrix_is_within_sampling_error_of_the_true_chain(generated_counts, grade):
    z, impossible = _z_scores(generated_counts, grade, grade)
    assert impossible.sum() == 0  # no transition the chain forbids (skipping a state, curing from write-off)
    assert np.abs(z).max() < 4.5, np.round(z, 1)


@pytest.mark.slow
def test_the_comparison_can_tell_one_grade_from_another(generated_counts):
    z, _ = _z_scores(generated_counts, "A", "E")
    assert np.abs(z).max() > 10


@pytest.mark.slow
def test_the_generated_book_has_enough_delinquent_transitions_to_test(generated_counts):
    for grade in GRADES:
        rows = generated_counts.filter(
            (pl.col("segment") == f"{grade}|far") & pl.col("from_state").is_in(["M1", "M2", "M3"])
        )
        assert rows.group_by("from_state").agg(pl.col("loans").sum()).get_column("loans").min() >= 30, grade
