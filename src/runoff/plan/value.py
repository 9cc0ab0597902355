"""The value of an offer to the lender (对贷款人的价值): PD-weighted present values of schedules, in fen.

Cash flows are discounted at the plan's ``discount_rate`` (annual, monthly compounding) and weighted by the
probability the account has not defaulted by then: a constant monthly hazard from its 12-month PD, so
survival to ``t`` months is ``(1 − PD)^(t/12)``. A default recovers ``1 − LGD`` of the principal then
outstanding. What falls due now counts as paid now. Analytics in floats: estimates to rank options, not
amounts to post.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from runoff.money import to_minor
from runoff.plan.model import Plan
from runoff.servicing.quotes import Quote

DAYS_PER_MONTH = 365.25 / 12


def _survival_and_discount(pd: np.ndarray, months: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """S(t) = (1 − pd)^(t/12) (constant monthly hazard) and v(t) = (1 + r/12)^−t for months ``t``."""
    monthly_rate = float(plan.assumptions.discount_rate) / 12
    keep = np.clip(1.0 - np.nan_to_num(pd, nan=0.0), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        survival = np.power(keep[:, None] if months.ndim == 2 else keep, months / 12.0)
    discount = np.power(1.0 + monthly_rate, -months)
    return survival, discount


def schedule_value(
    totals: np.ndarray,
    balance_after: np.ndarray,
    principal: np.ndarray,
    due: np.ndarray,
    mask: np.ndarray,
    pd: np.ndarray,
    *,
    as_of: date,
    plan: Plan,
) -> np.ndarray:
    """Σ c_k v(t_k) S(t_k) + (1 − LGD) Σ B_{k−1} (S(t_{k−1}) − S(t_k)) v(t_k), per loan, in fen."""
    today = np.datetime64(as_of, "D")
    days = np.where(mask, (due - today).astype("timedelta64[D]").astype(np.float64), 0.0)
    months = np.maximum(days, 0.0) / DAYS_PER_MONTH
    survival, discount = _survival_and_discount(pd, months, plan)
    survival = np.where(mask, survival, 0.0)
    previous = np.concatenate([np.ones((survival.shape[0], 1)), survival[:, :-1]], axis=1)
    before = np.concatenate([principal[:, None], balance_after[:, :-1]], axis=1).astype(np.float64)
    recovered = (1.0 - float(plan.assumptions.lgd)) * before * np.where(mask, previous - survival, 0.0) * discount
    paid = totals * survival * discount
    value: np.ndarray = (paid + recovered).sum(axis=1)
    return value


def quote_value(quote: Quote, pd: float, *, as_of: date, plan: Plan) -> float:
    if quote.kind.value == "early-settlement":
        return float(to_minor(quote.due_now.total))
    inst = quote.schedule.installments
    totals = np.asarray([[to_minor(i.total) for i in inst]], dtype=np.float64)
    after = np.asarray([[to_minor(i.balance_after) for i in inst]], dtype=np.int64)
    due = np.asarray([[i.due_date for i in inst]], dtype="datetime64[D]")
    value = schedule_value(
        totals,
        after,
        np.asarray([to_minor(quote.schedule.principal)]),
        due,
        np.ones_like(totals, dtype=np.bool_),
        np.asarray([pd]),
        as_of=as_of,
        plan=plan,
    )
    return float(to_minor(quote.due_now.total)) + float(value[0])


def original_schedule_value(
    installments: pl.DataFrame, states: pl.DataFrame, *, as_of: date, plan: Plan
) -> pl.DataFrame:
    """The value to the lender of each loan carrying on as written (the default action), in fen.

    ``installments`` are the rows :func:`~runoff.plan.loan_state.loan_states` read; ``states`` gives each
    loan's ``pd`` and ``penalty_fen``. Unpaid amounts already due count at the offer date.
    """
    a = plan.assumptions
    keep = (pl.lit(1.0) - pl.col("pd").fill_null(0.0)).clip(0.0, 1.0)
    waived = [c for c in ("principal_waived_fen", "interest_waived_fen", "fee_waived_fen") if c in installments.columns]
    owed_principal = pl.col("principal_fen") - pl.col("principal_paid_fen")
    owed = (
        owed_principal
        + pl.col("interest_fen")
        - pl.col("interest_paid_fen")
        + pl.col("fee_fen")
        - pl.col("fee_paid_fen")
    )
    for name in waived:
        owed = owed - pl.col(name)
        if name == "principal_waived_fen":
            owed_principal = owed_principal - pl.col(name)
    months = ((pl.col("due_on") - pl.lit(as_of)).dt.total_days().clip(0) / DAYS_PER_MONTH).alias("t")
    key = states.schema["loan_id"]
    frame = (
        installments.with_columns(pl.col("loan_id").cast(key))
        .join(states.select("loan_id", "pd", "penalty_fen"), on="loan_id", how="inner")
        .sort("loan_id", "number")
        .with_columns(months, owed.clip(0).alias("owed"), owed_principal.clip(0).alias("owed_principal"))
        .with_columns(
            keep.pow(pl.col("t") / 12).alias("s"),
            pl.lit(1.0 + float(a.discount_rate) / 12).pow(-pl.col("t")).alias("v"),
            pl.col("owed_principal").reverse().cum_sum().reverse().over("loan_id").alias("before"),
        )
        .with_columns(pl.col("s").shift(1, fill_value=1.0).over("loan_id").alias("s_prev"))
    )
    recovery = (1.0 - float(a.lgd)) * pl.col("before") * (pl.col("s_prev") - pl.col("s")) * pl.col("v")
    return (
        frame.group_by("loan_id", maintain_order=True)
        .agg(
            ((pl.col("owed") * pl.col("s") * pl.col("v")) + recovery).sum().alias("ev_schedule"),
            pl.col("penalty_fen").first(),
        )
        .select("loan_id", (pl.col("ev_schedule") + pl.col("penalty_fen")).alias("ev_original"))
    )
