"""Behaviour features as of an observation date: hand-computed values, the population, and no look-ahead."""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl
import pytest

from runoff.portfolio.generator import BookConfig, generate_partition
from runoff.portfolio.schemas import ACCOUNTS, CUSTOMERS, INSTALLMENTS, PAYMENTS, PERFORMANCE
from runoff.risk.features import FEATURE_NAMES, build_features, feature_schema, observation_month_end

OBS = date(2024, 6, 30)
MONTH_ENDS_2024 = [date(2024, m, d) for m, d in [(1, 31), (2, 29), (3, 31), (4, 30), (5, 31), (6, 30)]]


def _perf(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Performance rows from the columns that matter here; the rest are 0."""
    full = []
    for r in rows:
        base = {c.name: 0 for c in PERFORMANCE.columns}
        base |= {"status": "active", "bucket": "current"}
        base |= r
        full.append(base)
    return PERFORMANCE.conform(pl.DataFrame(full))


def hand_book() -> dict[str, pl.DataFrame]:
    """Customer 1: two active loans (one 35 DPD in March, one 5 DPD now); customer 2: repaid in April;
    customer 3: 100 DPD thirteen months ago, current since."""
    rows: list[dict[str, object]] = []
    dpd11 = [0, 0, 35, 0, 0, 0]
    due11 = [0, 1000, 1000, 1000, 1000, 1000]
    paid11 = [0, 1000, 0, 2000, 1000, 1000]
    for k, me in enumerate(MONTH_ENDS_2024):
        rows.append(
            {
                "loan_id": 11,
                "customer_id": 1,
                "month_end": me,
                "mob": k,
                "dpd": dpd11[k],
                "due_fen": due11[k],
                "paid_principal_fen": paid11[k] - 100 * (paid11[k] > 0),
                "paid_interest_fen": 100 * (paid11[k] > 0),
                "principal_balance_fen": 6000 - 1000 * k,
                "bucket": "M2" if dpd11[k] else "current",
                "installments_remaining": 6 - k,
            }
        )
    rows.append(
        {
            "loan_id": 12,
            "customer_id": 1,
            "month_end": date(2024, 5, 31),
            "mob": 0,
            "principal_balance_fen": 2000,
            "installments_remaining": 4,
        }
    )
    rows.append(
        {
            "loan_id": 12,
            "customer_id": 1,
            "month_end": OBS,
            "mob": 1,
            "dpd": 5,
            "bucket": "M1",
            "due_fen": 500,
            "principal_balance_fen": 2000,
            "overdue_amount_fen": 500,
            "installments_remaining": 4,
        }
    )
    for k, me in enumerate(MONTH_ENDS_2024[:4]):
        rows.append(
            {
                "loan_id": 21,
                "customer_id": 2,
                "month_end": me,
                "mob": k,
                "status": "paid-off" if k == 3 else "active",
                "bucket": "closed" if k == 3 else "current",
                "principal_balance_fen": 0 if k == 3 else 900,
            }
        )
    months_31 = [_month_end(date(2023 + (4 + k) // 12, (4 + k) % 12 + 1, 1)) for k in range(14)]  # 2023-05..2024-06
    for k, me in enumerate(months_31):
        rows.append(
            {
                "loan_id": 31,
                "customer_id": 3,
                "month_end": me,
                "mob": k,
                "dpd": 100 if k == 1 else 0,
                "bucket": "M4+" if k == 1 else "current",
                "principal_balance_fen": 50_000,
            }
        )
    performance = _perf(rows)
    customers = CUSTOMERS.conform(
        pl.DataFrame(
            {
                "customer_id": [1, 2, 3],
                "age": [30, 40, 50],
                "city_tier": ["tier-1", "tier-2", "tier-4+"],
                "income_band": ["5k-8k", "3k-5k", "15k+"],
                "monthly_income_fen": [500_000, 400_000, 2_000_000],
                "channel": ["app", "checkout", "offline"],
                "onboarded_on": [date(2023, 6, 15), date(2022, 1, 1), date(2020, 3, 3)],
                "tenure_months": [7, 24, 46],
                "risk_grade": ["B", "A", None],
            }
        )
    )
    accounts = ACCOUNTS.conform(
        pl.DataFrame(
            {
                "account_id": [1, 2, 3],
                "customer_id": [1, 2, 3],
                "opened_on": [date(2023, 6, 15), date(2022, 1, 1), date(2020, 3, 3)],
                "credit_limit_fen": [10_000, 5_000, 100_000],
                "status": ["open", "open", "open"],
            }
        )
    )
    installments = INSTALLMENTS.conform(
        pl.DataFrame(
            {
                "loan_id": [11, 11, 12, 31],
                "number": [7, 8, 2, 20],
                "due_on": [date(2024, 7, 15), date(2024, 8, 15), date(2024, 7, 10), date(2024, 7, 1)],
                "principal_fen": [900, 900, 550, 4000],
                "interest_fen": [100, 100, 50, 500],
                "fee_fen": [0, 0, 0, 0],
                "balance_after_fen": [0, 0, 0, 0],
            }
        )
    )
    payments = PAYMENTS.conform(
        pl.DataFrame(
            {
                "payment_id": [1, 2, 3],
                "loan_id": [11, 31, 11],
                "customer_id": [1, 3, 1],
                "paid_on": [date(2024, 4, 3), date(2023, 5, 1), date(2024, 7, 2)],
                "kind": ["late", "late", "late"],
                "amount_fen": [1000, 1000, 1000],
                "principal_fen": [1000, 1000, 1000],
                "interest_fen": [0, 0, 0],
                "fee_fen": [0, 0, 0],
                "penalty_fen": [0, 0, 0],
            }
        )
    )
    return {
        "performance": performance,
        "customers": customers,
        "accounts": accounts,
        "installments": installments,
        "payments": payments,
    }


def _month_end(d: date) -> date:
    nxt = date(d.year + (d.month == 12), d.month % 12 + 1, 1)
    return date.fromordinal(nxt.toordinal() - 1)


def _features(book: dict[str, pl.DataFrame], as_of: date = OBS) -> pl.DataFrame:
    return build_features(
        book["performance"],
        book["customers"],
        as_of=as_of,
        accounts=book["accounts"],
        payments=book["payments"],
        installments=book["installments"],
    )


def test_population_is_customers_with_an_active_loan_at_the_observation_month_end() -> None:
    out = _features(hand_book())
    assert out.get_column("customer_id").to_list() == [1, 3]


@pytest.mark.parametrize(
    ("feature", "expected"),
    [
        ("active_loans", 2),
        ("dpd_now", 5),
        ("worst_dpd_3m", 5),
        ("worst_dpd_6m", 35),
        ("worst_dpd_12m", 35),
        ("delinquent_months_12m", 2),  # March and June
        ("times_30dpd_12m", 1),
        ("late_payments_12m", 1),  # April's; the July payment is after the date
        ("payment_ratio_6m", 5000 / 5500),
        ("loans_opened_6m", 2),
        ("months_since_first_loan", 5),
        ("balance_yuan", 30.0),  # 1000 + 2000 fen
        ("overdue_yuan", 5.0),
        ("utilization", 0.3),  # 30 of a 100-yuan limit
        ("tenure_months", 12),  # onboarded June 2023
        ("income_yuan", 5000.0),
        ("debt_service_ratio", 16.0 / 5000.0),  # July installments 10 + 6 yuan; August's not counted
        ("balance_to_income", 30.0 / 5000.0),
        ("city_tier_rank", 0),
        ("channel_code", 1),
    ],
    ids=lambda x: str(x),
)
def test_customer_one_features_match_the_hand_computation(feature: str, expected: float) -> None:
    row = _features(hand_book()).filter(pl.col("customer_id") == 1).row(0, named=True)
    assert row[feature] == pytest.approx(expected)


def test_delinquency_older_than_twelve_months_leaves_the_twelve_month_window() -> None:
    row = _features(hand_book()).filter(pl.col("customer_id") == 3).row(0, named=True)
    assert row["worst_dpd_12m"] == 0
    assert row["months_since_first_loan"] == 13
    assert row["late_payments_12m"] == 0  # paid May 2023, outside the window


def test_a_date_inside_a_month_is_observed_at_the_previous_month_end() -> None:
    assert observation_month_end(date(2024, 7, 15)) == OBS
    assert observation_month_end(OBS) == OBS
    assert _features(hand_book(), date(2024, 7, 15)).equals(_features(hand_book(), OBS))


def test_output_has_the_documented_columns_and_types() -> None:
    out = _features(hand_book())
    assert out.schema == feature_schema()
    assert set(FEATURE_NAMES) <= set(out.columns)
    assert "risk_grade" not in FEATURE_NAMES  # the generator's truth is never a model input


def test_empty_tables_give_an_empty_frame_not_a_crash() -> None:
    out = build_features(PERFORMANCE.empty(), CUSTOMERS.empty(), as_of=OBS)
    assert out.height == 0
    assert out.schema == feature_schema()


# --- no look-ahead on a generated book -----------------------------------------------------------


@pytest.fixture(scope="module")
def generated() -> dict[str, pl.DataFrame]:
    return generate_partition(BookConfig(customers=1500, months=18, seed=4), 0)


def _scramble_after(book: dict[str, pl.DataFrame], obs: date, seed: int) -> dict[str, pl.DataFrame]:
    """Every performance row and payment after ``obs`` replaced by noise, plus a new loan drawn after it."""
    rng = np.random.default_rng(seed)
    perf = book["performance"]
    after = perf.filter(pl.col("month_end") > obs)
    n = after.height
    noisy = after.with_columns(
        pl.Series("dpd", rng.integers(0, 400, n), dtype=pl.Int32),
        pl.Series("status", rng.choice(["active", "charged-off", "paid-off"], n)),
        pl.Series("bucket", rng.choice(["current", "M4+", "charged-off"], n)),
        pl.Series("principal_balance_fen", rng.integers(0, 10**7, n)),
        pl.Series("overdue_amount_fen", rng.integers(0, 10**6, n)),
        pl.Series("due_fen", rng.integers(0, 10**6, n)),
        pl.Series("paid_principal_fen", rng.integers(0, 10**6, n)),
    )
    first = perf.row(0, named=True)
    extra = pl.DataFrame([first | {"loan_id": 10**9, "month_end": max(perf.get_column("month_end")), "mob": 0}])
    new_perf = pl.concat([perf.filter(pl.col("month_end") <= obs), noisy, PERFORMANCE.conform(extra)])
    pay = book["payments"]
    late = pay.filter(pl.col("paid_on") > obs).with_columns(pl.lit("late").alias("kind"))
    new_pay = pl.concat([pay.filter(pl.col("paid_on") <= obs), late])
    return book | {"performance": PERFORMANCE.conform(new_perf), "payments": PAYMENTS.conform(new_pay)}


@pytest.mark.parametrize("obs", [date(2024, 6, 30), date(2024, 12, 31)], ids=["month-6", "month-12"])
def test_features_never_read_performance_or_payments_after_the_observation_date(
    generated: dict[str, pl.DataFrame], obs: date
) -> None:
    before = _features(generated, obs)
    after = _features(_scramble_after(generated, obs, seed=obs.month), obs)
    assert before.height > 500
    assert before.equals(after)


def test_the_scrambled_book_does_change_later_features(generated: dict[str, pl.DataFrame]) -> None:
    """The leakage test can fail: features at a later date do see the scrambled rows."""
    obs, later = date(2024, 6, 30), date(2024, 9, 30)
    assert not _features(generated, later).equals(_features(_scramble_after(generated, obs, seed=1), later))
