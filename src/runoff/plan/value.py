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
from runoff.plan.loan_state import beside_their_loans
from runoff.plan.model import Plan
from runoff.servicing.quotes import Quote

DAYS_PER_MONTH = 365.25 / 12


def _monthly_factors(pd: np.ndarray, plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Per loan: the survival over one month, (1 − PD)^(1/12), and the discount factor of one month, 1/(1 + r/12)."""
    keep = np.clip(1.0 - np.nan_to_num(np.asarray(pd, dtype=np.float64), nan=0.0), 0.0, 1.0)
    survive = np.power(keep, 1.0 / 12.0)
    discount = np.full(keep.shape, 1.0 / (1.0 + float(plan.assumptions.discount_rate) / 12))
    return survive, discount


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
    """Σ c_k v(t_k) S(t_k) + (1 − LGD) Σ B_{k−1} (S(t_{k−1}) − S(t_k)) v(t_k), per loan, in fen.

    A monthly schedule's installment k falls ``t_1 + (k − 1)`` months after the offer date (``t_1``: days to
    the first due date over 30.44), so with one month's survival ``s`` and discount ``d`` every weight is
    geometric: ``S(t_k) v(t_k) = s^t1 d^t1 (s d)^(k−1)`` and ``S(t_{k−1}) − S(t_k) = S(t_{k−1}) (1 − s)``.
    Padding past a loan's term holds zeros (``mask`` is implied by them).
    """
    del mask
    today = np.datetime64(as_of, "D")
    first_days = (due[:, 0] - today).astype("timedelta64[D]").astype(np.float64)
    t1 = np.maximum(first_days, 0.0) / DAYS_PER_MONTH
    survive, discount = _monthly_factors(pd, plan)
    start_s = np.power(survive, t1)
    start_v = np.power(discount, t1)
    ratio = survive * discount
    width = totals.shape[1]
    weight = np.empty(totals.shape, dtype=np.float64, order="F")  # (s d)^(k−1)
    weight[:, 0] = 1.0
    for k in range(1, width):
        np.multiply(weight[:, k - 1], ratio, out=weight[:, k])
    paid = np.einsum("ij,ij->i", totals, weight) * start_s * start_v
    keep = 1.0 - float(plan.assumptions.lgd)
    # Default in the first period loses 1 − s^t1 of the principal; in period k ≥ 2, S(t_{k−1})(1 − s).
    first_loss = principal * (1.0 - start_s) * start_v
    later = (
        np.einsum("ij,ij->i", balance_after[:, : width - 1], weight[:, : width - 1])
        * start_s
        * start_v
        * discount
        * (1.0 - survive)
        if width > 1
        else np.zeros(totals.shape[0])
    )
    value: np.ndarray = paid + keep * (first_loss + later)
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
    loan's ``pd`` and ``penalty_fen``. Unpaid amounts already due, and the penalty, count at the offer date;
    an installment due later counts at its months from the offer date (days over 30.44).
    """
    key = states.schema["loan_id"]
    waived = [c for c in ("principal_waived_fen", "interest_waived_fen", "fee_waived_fen") if c in installments.columns]
    principal = pl.col("principal_fen") - pl.col("principal_paid_fen")
    owed = principal + pl.col("interest_fen") - pl.col("interest_paid_fen") + pl.col("fee_fen") - pl.col("fee_paid_fen")
    for name in waived:
        owed = owed - pl.col(name)
        if name == "principal_waived_fen":
            principal = principal - pl.col(name)
    rows = beside_their_loans(
        installments.select(
            pl.col("loan_id").cast(key),
            "number",
            owed.clip(0).alias("owed"),
            principal.clip(0).alias("owed_principal"),
            ((pl.col("due_on") - pl.lit(as_of)).dt.total_days().clip(0) / DAYS_PER_MONTH).alias("t"),
        ),
        states.select("loan_id", "pd", "penalty_fen"),
    )
    ids = rows.get_column("loan_id")
    boundary = np.r_[True, (ids[1:] != ids[:-1]).to_numpy()] if rows.height else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(boundary)
    group = np.cumsum(boundary) - 1
    firsts = rows[starts]
    survive, discount = _monthly_factors(rows.get_column("pd").to_numpy(), plan)
    t = rows.get_column("t").to_numpy()
    s = np.power(survive, t)
    v = np.power(discount, t)
    s_prev = np.r_[1.0, s[:-1]]
    s_prev[starts] = 1.0
    owed_principal = rows.get_column("owed_principal").to_numpy().astype(np.float64)
    total = np.cumsum(owed_principal[::-1])[::-1]  # principal owed from this installment on, across loans
    after_loan = np.r_[total[starts[1:]], 0.0] if rows.height else total
    before = total - after_loan[group]
    term = rows.get_column("owed").to_numpy() * s * v + (1.0 - float(plan.assumptions.lgd)) * before * (s_prev - s) * v
    value = np.add.reduceat(term, starts) if rows.height else np.zeros(0)
    return firsts.select("loan_id", (pl.Series(value) + pl.col("penalty_fen")).alias("ev_original"))
