"""The generator follows its own truth: empirical roll rates converge to the true matrices, and a default
book's delinquency lies within the published ranges it is calibrated to."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from runoff.portfolio.behaviour import GRADES, N_STATES
from runoff.portfolio.calibration import PUBLISHED_RANGES, calibration_partition, merge_calibration
from runoff.portfolio.generator import BookConfig, book_truth, generate_partition


def _transitions(config: BookConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Observed counts, expected counts and binomial variances of (grade, from, to) transitions.

    The state is the number of month ends the oldest unpaid installment has been past due, recovered
    from the month end and the DPD. A loan counts when it is open at month end t, has a row at t + 1,
    did not settle early (drawn before the chain), and has enough installments left that every
    outcome of its row is possible (a short loan paying two installments would simply close).
    """
    frames = generate_partition(config, 0)
    truth = book_truth(config)
    month_index = {d: k for k, d in enumerate(truth.month_ends)}
    perf = (
        frames["performance"]
        .join(frames["customers"].select("customer_id", "risk_grade"), on="customer_id")
        .with_columns(
            pl.when(pl.col("bucket") == "charged-off")
            .then(7)
            .when(pl.col("dpd") == 0)
            .then(0)
            .otherwise(
                pl.col("month_end").dt.year() * 12
                + pl.col("month_end").dt.month()
                - (pl.col("month_end") - pl.duration(days=pl.col("dpd"))).dt.year() * 12
                - (pl.col("month_end") - pl.duration(days=pl.col("dpd"))).dt.month()
                + 1
            )
            .alias("state")
        )
        .sort("loan_id", "month_end")
        .with_columns(
            pl.col("state").shift(-1).over("loan_id").alias("next_state"),
            pl.col("status").shift(-1).over("loan_id").alias("next_status"),
            pl.col("month_end").shift(-1).over("loan_id").alias("next_month_end"),
        )
        .filter(
            (pl.col("status") == "active")
            & pl.col("next_state").is_not_null()
            & (pl.col("next_status") != "early-settled")
            & ((pl.col("state") == 0) | (pl.col("installments_remaining") >= pl.col("state") + 1))
        )
    )
    observed = np.zeros((len(GRADES), N_STATES, N_STATES))
    expected = np.zeros_like(observed)
    variance = np.zeros_like(observed)
    grade_of = {g: k for k, g in enumerate(GRADES)}
    rows = perf.group_by("risk_grade", "next_month_end", "state", "next_state").len()
    for grade, _month_end, i, j, n in rows.iter_rows():
        observed[grade_of[grade], i, j] += n
    starts = perf.group_by("risk_grade", "next_month_end", "state").len()
    for grade, month_end, i, n in starts.iter_rows():
        g, p = grade_of[grade], truth.matrices[grade_of[grade], month_index[month_end], i]
        expected[g, i] += n * p
        variance[g, i] += n * p * (1 - p)
    return observed, expected, variance


def _mean_rate_error(observed: np.ndarray, expected: np.ndarray) -> float:
    totals = observed.sum(axis=2, keepdims=True)
    used = totals[..., 0] > 0
    diff = np.abs(observed - expected) / np.maximum(totals, 1)
    return float(diff[used].mean())


@pytest.mark.parametrize("seed", [1, 2], ids=["seed-1", "seed-2"])
def test_empirical_roll_rates_converge_to_the_true_matrix(seed: int) -> None:
    small = BookConfig(customers=1500, months=15, seed=seed)
    large = small.model_copy(update={"customers": 12_000})
    errors = []
    for config in (small, large):
        observed, expected, variance = _transitions(config)
        z = np.abs(observed - expected) / np.sqrt(np.maximum(variance, 1e-9))
        tested = variance > 0
        # Every cell within 4.5 binomial standard errors of the truth (≈ 200 cells: a false alarm is ~1e-3).
        assert z[tested].max() < 4.5, np.argwhere(z > 4.5)
        # Impossible transitions never happen.
        assert observed[variance == 0][expected[variance == 0] == 0].sum() == 0
        errors.append(_mean_rate_error(observed, expected))
    # 8× the book: the standard error shrinks by √8 ≈ 2.8; require at least a 1.6× smaller mean error.
    assert errors[1] < errors[0] / 1.6, errors


def test_a_default_book_lies_within_the_published_delinquency_ranges() -> None:
    frames = generate_partition(BookConfig(customers=20_000, months=24, seed=0, blocks_per_partition=8), 0)
    figures = merge_calibration(
        [calibration_partition(frames["performance"].lazy(), frames["payments"].lazy())]
    ).figures()
    for name, (low, high) in PUBLISHED_RANGES.items():
        fig = figures[name]
        assert fig["numerator_fen"] > 0 and fig["denominator_fen"] > 0, name
        assert low <= fig["ratio"] <= high, (name, fig["ratio"])
