"""Behaviour features (行为特征) of each customer as of an observation date, for PD models and stress tests.

A feature at observation date D reads only performance rows with ``month_end <= D`` and payments with
``paid_on <= D``: nothing after D, so a model trained on them can be scored on the same day in production
(no look-ahead leakage). The static tables (customers, accounts) and the installment schedules written at
origination are known at D. The population is every customer with at least one active loan at D's month end.

Functions take one partition's tables (a partition holds whole customers), so they run per partition on the
executor and their outputs are simply concatenated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

import polars as pl

from runoff.calendar import add_months
from runoff.errors import InvalidInput
from runoff.portfolio.schemas import CHANNELS, CITY_TIERS

Trend = Literal["ascending", "descending"]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """One model feature: its name, what it measures and how risk is expected to move with it.

    ``trend`` is the business expectation of the default rate as the value rises (ascending: riskier), used
    for monotonic scorecard bins and LightGBM monotone constraints; ``None`` lets the data decide.
    """

    name: str
    description: str
    trend: Trend | None = None
    categorical: bool = False


BOOK_FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("dpd_now", "days past due at the observation month end (worst loan)", "ascending"),
    FeatureSpec("worst_dpd_3m", "worst DPD over the last 3 month ends", "ascending"),
    FeatureSpec("worst_dpd_6m", "worst DPD over the last 6 month ends", "ascending"),
    FeatureSpec("worst_dpd_12m", "worst DPD over the last 12 month ends", "ascending"),
    FeatureSpec("delinquent_months_12m", "month ends in the last 12 with any loan past due", "ascending"),
    FeatureSpec("times_30dpd_12m", "loan-months at 30+ DPD in the last 12 months", "ascending"),
    FeatureSpec("late_payments_12m", "payments made after their due date in the last 12 months", "ascending"),
    FeatureSpec("payment_ratio_6m", "paid (principal, interest, fee) over amounts due, last 6 months", "descending"),
    FeatureSpec("utilization", "principal balance over the credit limit (额度使用率)", "ascending"),
    FeatureSpec("balance_yuan", "principal balance at the observation month end"),
    FeatureSpec("overdue_yuan", "amount past due at the observation month end", "ascending"),
    FeatureSpec("active_loans", "loans active at the observation month end"),
    FeatureSpec("loans_opened_6m", "loans drawn in the last 6 months"),
    FeatureSpec("months_since_first_loan", "months since the customer's first loan in the book", "descending"),
    FeatureSpec("tenure_months", "months on the platform (注册时长)", "descending"),
    FeatureSpec("income_yuan", "declared monthly income (月收入)", "descending"),
    FeatureSpec("debt_service_ratio", "next month's installments over monthly income (还款收入比)", "ascending"),
    FeatureSpec("balance_to_income", "principal balance over monthly income", "ascending"),
    FeatureSpec("age", "age in years"),
    FeatureSpec("city_tier_rank", "city tier, 0 = tier-1 … 4 = tier-4 and below"),
    FeatureSpec("channel_code", "acquisition channel (categorical)", categorical=True),
)
"""The features built from a book, in model order."""

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in BOOK_FEATURES)

SEGMENT_COLUMNS: tuple[str, ...] = ("city_tier", "income_band", "channel", "risk_grade")
"""Customer attributes carried beside the features for segment reports and stress tests (not model inputs:
``risk_grade`` is the generator's latent truth)."""

AFFORDABILITY_COLUMNS: tuple[str, ...] = ("installment_yuan", "annual_rate", "installments_remaining")
"""Carried for the stress test: next month's installments, the balance-weighted contract rate and term left."""


def feature_trends(names: Sequence[str] | None = None) -> dict[str, Trend]:
    """The expected trend of each named feature that has one (for monotonic bins and constraints)."""
    wanted = set(FEATURE_NAMES if names is None else names)
    return {f.name: f.trend for f in BOOK_FEATURES if f.trend is not None and f.name in wanted}


def categorical_features(names: Sequence[str] | None = None) -> list[str]:
    wanted = set(FEATURE_NAMES if names is None else names)
    return [f.name for f in BOOK_FEATURES if f.categorical and f.name in wanted]


def observation_month_end(as_of: date) -> date:
    """The month end features are taken at: ``as_of`` itself when it is a month end, else the previous one."""
    end_of_month = add_months(as_of, 0, anchor_day=31)
    return as_of if as_of == end_of_month else add_months(as_of, -1, anchor_day=31)


def month_index(column: str | pl.Expr) -> pl.Expr:
    """Months since year 0 of a date column (year × 12 + month − 1): month arithmetic without calendars."""
    col = pl.col(column) if isinstance(column, str) else column
    return col.dt.year().cast(pl.Int32) * 12 + col.dt.month().cast(pl.Int32) - 1


def _index(d: date) -> int:
    return d.year * 12 + d.month - 1


def _lazy(frame: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    return frame.lazy() if isinstance(frame, pl.DataFrame) else frame


def feature_schema() -> pl.Schema:
    """Columns of :func:`build_features`' output, in order."""
    cols: list[tuple[str, pl.DataType]] = [("customer_id", pl.Int64()), ("as_of", pl.Date())]
    cols += [(name, pl.Float64()) for name in FEATURE_NAMES]
    cols += [(name, pl.String()) for name in SEGMENT_COLUMNS]
    cols += [(name, pl.Float64()) for name in AFFORDABILITY_COLUMNS]
    cols += [("ead_yuan", pl.Float64())]
    return pl.Schema(cols)


def build_features(
    performance: pl.DataFrame | pl.LazyFrame,
    customers: pl.DataFrame | pl.LazyFrame,
    *,
    as_of: date,
    accounts: pl.DataFrame | pl.LazyFrame | None = None,
    payments: pl.DataFrame | pl.LazyFrame | None = None,
    installments: pl.DataFrame | pl.LazyFrame | None = None,
    loans: pl.DataFrame | pl.LazyFrame | None = None,
) -> pl.DataFrame:
    """One row per customer with an active loan at ``as_of``'s month end: the features of :data:`BOOK_FEATURES`.

    Reads performance up to the observation month end and payments up to it; ``accounts`` gives the credit
    limit (utilization is missing without it), ``payments`` the late payments (missing without it),
    ``installments`` next month's scheduled installments (without it, the amounts due this month), ``loans``
    the contract rates (for the stress test's rate shock). Output columns: :func:`feature_schema`.
    """
    obs = observation_month_end(as_of)
    obs_ix = _index(obs)
    perf = (
        _lazy(performance)
        .filter(pl.col("month_end") <= obs)
        .with_columns((pl.lit(obs_ix) - month_index("month_end")).alias("_k"))
    )
    k = pl.col("_k")
    dpd = pl.col("dpd").cast(pl.Float64)
    active_now = (k == 0) & (pl.col("status") == "active")

    history = perf.group_by("customer_id").agg(
        active_loans=active_now.sum().cast(pl.Float64),
        dpd_now=dpd.filter(active_now).max(),
        worst_dpd_3m=dpd.filter(k < 3).max(),
        worst_dpd_6m=dpd.filter(k < 6).max(),
        worst_dpd_12m=dpd.filter(k < 12).max(),
        delinquent_months_12m=pl.col("month_end").filter((k < 12) & (pl.col("dpd") > 0)).n_unique().cast(pl.Float64),
        times_30dpd_12m=((k < 12) & (pl.col("dpd") >= 30)).sum().cast(pl.Float64),
        _paid_6m=(pl.col("paid_principal_fen") + pl.col("paid_interest_fen") + pl.col("paid_fee_fen"))
        .filter(k < 6)
        .sum()
        .cast(pl.Float64),
        _due_6m=pl.col("due_fen").filter(k < 6).sum().cast(pl.Float64),
        loans_opened_6m=((k < 6) & (pl.col("mob") == 0)).sum().cast(pl.Float64),
        months_since_first_loan=k.max().cast(pl.Float64),
        balance_yuan=pl.col("principal_balance_fen").filter(active_now).sum().cast(pl.Float64) / 100.0,
        overdue_yuan=pl.col("overdue_amount_fen").filter(active_now).sum().cast(pl.Float64) / 100.0,
        _due_now=pl.col("due_fen").filter(active_now).sum().cast(pl.Float64),
        _remaining_weighted=(pl.col("installments_remaining").cast(pl.Int64) * pl.col("principal_balance_fen"))
        .filter(active_now)
        .sum(),
    )
    frame = history.filter(pl.col("active_loans") > 0).with_columns(
        pl.when(pl.col("_due_6m") > 0).then(pl.col("_paid_6m") / pl.col("_due_6m")).alias("payment_ratio_6m"),
        pl.when(pl.col("balance_yuan") > 0)
        .then(pl.col("_remaining_weighted") / (pl.col("balance_yuan") * 100.0))
        .alias("installments_remaining"),
    )

    active_loans = perf.filter(active_now).select("loan_id", "customer_id", "principal_balance_fen")
    if installments is not None:
        next_end = add_months(obs, 1, anchor_day=31)
        nxt = (
            _lazy(installments)
            .filter((pl.col("due_on") > obs) & (pl.col("due_on") <= next_end))
            .group_by("loan_id")
            .agg((pl.col("principal_fen") + pl.col("interest_fen") + pl.col("fee_fen")).sum().alias("_next"))
        )
        inst = (
            active_loans.join(nxt, on="loan_id", how="left")
            .group_by("customer_id")
            .agg((pl.col("_next").fill_null(0).sum().cast(pl.Float64) / 100.0).alias("installment_yuan"))
        )
        frame = frame.join(inst, on="customer_id", how="left")
    else:
        frame = frame.with_columns((pl.col("_due_now") / 100.0).alias("installment_yuan"))

    if loans is not None:
        rates = (
            active_loans.join(
                _lazy(loans).select(
                    "loan_id",
                    # a flat fee's APR is about 1.8–1.9 × fee × 12; the stress test needs only a rough level
                    # in millionths, so the balance-weighted sum is exact integer arithmetic (the same in any order)
                    (pl.coalesce(pl.col("annual_rate"), pl.col("fee_rate") * 12.0 * 1.85) * 1e6)
                    .round()
                    .cast(pl.Int64)
                    .alias("_rate_micro"),
                ),
                on="loan_id",
                how="left",
            )
            .group_by("customer_id")
            .agg(
                (
                    (pl.col("_rate_micro") * pl.col("principal_balance_fen")).sum().cast(pl.Float64)
                    / pl.col("principal_balance_fen").sum().cast(pl.Float64)
                    / 1e6
                ).alias("annual_rate")
            )
        )
        frame = frame.join(rates, on="customer_id", how="left")
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("annual_rate"))

    if payments is not None:
        lo = add_months(obs, -12, anchor_day=31)
        late = (
            _lazy(payments)
            .filter((pl.col("paid_on") <= obs) & (pl.col("paid_on") > lo) & (pl.col("kind") == "late"))
            .group_by("customer_id")
            .agg(pl.len().cast(pl.Float64).alias("late_payments_12m"))
        )
        frame = frame.join(late, on="customer_id", how="left").with_columns(pl.col("late_payments_12m").fill_null(0.0))
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("late_payments_12m"))

    cust = _lazy(customers).select(
        "customer_id",
        pl.col("age").cast(pl.Float64),
        (pl.col("monthly_income_fen").cast(pl.Float64) / 100.0).alias("income_yuan"),
        (pl.lit(obs_ix) - month_index("onboarded_on")).cast(pl.Float64).alias("tenure_months"),
        pl.col("city_tier")
        .replace_strict(list(CITY_TIERS), list(range(len(CITY_TIERS))), default=None, return_dtype=pl.Float64)
        .alias("city_tier_rank"),
        pl.col("channel")
        .replace_strict(list(CHANNELS), list(range(len(CHANNELS))), default=None, return_dtype=pl.Float64)
        .alias("channel_code"),
        *[pl.col(c).cast(pl.String) for c in SEGMENT_COLUMNS],
    )
    frame = frame.join(cust, on="customer_id", how="left")

    if accounts is not None:
        limits = (
            _lazy(accounts)
            .filter(pl.col("opened_on") <= obs)
            .group_by("customer_id")
            .agg((pl.col("credit_limit_fen").sum().cast(pl.Float64) / 100.0).alias("_limit"))
        )
        frame = frame.join(limits, on="customer_id", how="left").with_columns(
            pl.when(pl.col("_limit") > 0).then(pl.col("balance_yuan") / pl.col("_limit")).alias("utilization")
        )
    else:
        frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("utilization"))

    income = pl.col("income_yuan")
    frame = frame.with_columns(
        pl.when(income > 0).then(pl.col("installment_yuan") / income).alias("debt_service_ratio"),
        pl.when(income > 0).then(pl.col("balance_yuan") / income).alias("balance_to_income"),
        pl.lit(obs).alias("as_of"),
        (pl.col("balance_yuan")).alias("ead_yuan"),
    )
    schema = feature_schema()
    out = frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()]).sort("customer_id").collect()
    return out


def feature_matrix(frame: pl.DataFrame, names: Sequence[str]) -> pl.DataFrame:
    """The model's input columns of ``frame`` as Float64, in ``names`` order; a clear error when one is absent."""
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise InvalidInput(
            f"`features`: columns {missing} are missing from the data; expected {list(names)}", field="features"
        )
    return frame.select([pl.col(n).cast(pl.Float64) for n in names])
