"""Delinquency (逾期): days past due, buckets (账龄段) and penalty interest (罚息).

Days past due count from the oldest installment whose principal, interest or fee is still
unpaid after its due date; unpaid penalty alone does not make a loan delinquent (it would keep a
loan in M1 for cents of penalty long after the customer caught up). Buckets: current (0), M1
(1–30), M2 (31–60), M3 (61–90), M4+ (more than 90 days). DESIGN.md's glossary writes "M4+ 90+";
90 days is M3 here, so the four overdue buckets are each 30 days wide.

Penalty is a pure function of a position and a date: :func:`penalty_due_to_date` returns the
TOTAL penalty each installment has earned up to ``as_of``. The daily close and a backdated
repost both just recompute it, and an accrual over any range is the difference of two totals,
so accruing day by day and over the whole range give the same amounts to the cent.

Penalty convention: an installment due on ``D`` earns, for each day ``d`` from ``D + grace_days``
to the day before ``as_of``, ``daily_rate × base`` where base is what was unpaid at the end of
day ``d`` (overdue principal, or principal + interest + fee, by ``penalty.base``; never penalty on
penalty). A payment on day ``d`` therefore lowers the base from day ``d`` on, and an amount left
unpaid has earned ``days_past_due − grace_days`` days of penalty. Grace days are not retroactive:
paid after the grace, the days inside it earn nothing. Each installment's total is rounded once
by the product's rounding; the loan's lifetime penalty never exceeds
``cap_rate_of_principal × principal``: once the cap is reached (in time order, oldest installment
first within a day) later days earn nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from runoff.errors import InvalidInput
from runoff.money import quantize
from runoff.servicing.position import SCHEDULED_COMPONENTS, ZERO, InstallmentPosition, LoanPosition
from runoff.servicing.product import Component, PenaltyBase


class Bucket(StrEnum):
    """Delinquency bucket (账龄段) by days past due."""

    CURRENT = "current"
    M1 = "M1"  # 1–30
    M2 = "M2"  # 31–60
    M3 = "M3"  # 61–90
    M4_PLUS = "M4+"  # more than 90


BUCKETS: tuple[Bucket, ...] = tuple(Bucket)
"""Buckets in order of severity; a bucket's code (as from :func:`buckets_of`) is its index here."""

BUCKET_UPPER_DAYS: tuple[int, ...] = (0, 30, 60, 90)
"""The last DPD of current, M1, M2, M3; above the last is M4+."""


def days_past_due(position: LoanPosition, as_of: date) -> int:
    """Days since the oldest installment due before ``as_of`` whose principal, interest or fee was unpaid at the end of ``as_of``; 0 if none."""
    for inst in sorted(position.installments, key=lambda i: i.due_date):
        if inst.due_date >= as_of:
            break
        if any(inst.unpaid_at_end_of(c, as_of) > 0 for c in SCHEDULED_COMPONENTS):
            return (as_of - inst.due_date).days
    return 0


def bucket_of(dpd: int) -> Bucket:
    """The bucket of ``dpd`` days past due."""
    if dpd < 0:
        raise InvalidInput(f"`dpd`: {dpd} is not allowed; expected 0 or more days past due", field="dpd")
    for bucket, upper in zip(BUCKETS, BUCKET_UPPER_DAYS, strict=False):
        if dpd <= upper:
            return bucket
    return Bucket.M4_PLUS


def buckets_of(dpd: npt.NDArray[np.integer]) -> npt.NDArray[np.int8]:
    """Bucket codes (indices into :data:`BUCKETS`) for an array of DPD: the set-based close-day's path."""
    days = np.asarray(dpd)
    if days.size and int(days.min()) < 0:
        raise InvalidInput(f"`dpd`: {int(days.min())} is not allowed; expected 0 or more days past due", field="dpd")
    edges = np.asarray(BUCKET_UPPER_DAYS, dtype=np.int64)
    codes: npt.NDArray[np.int8] = np.searchsorted(edges, days, side="left").astype(np.int8)
    return codes


@dataclass(frozen=True, slots=True)
class PenaltyCharge:
    """Penalty on one installment: ``amount`` earned over ``days`` penalty days."""

    number: int
    amount: Decimal
    days: int


def penalty_due_to_date(position: LoanPosition, as_of: date) -> tuple[PenaltyCharge, ...]:
    """Total penalty each installment has earned before ``as_of`` (every installment, zero ones included).

    The days counted are those before ``as_of``: the daily close of ``as_of`` recomputes with
    ``as_of + 1`` once the day is over, or with ``as_of`` to charge up to the start of the day.
    """
    rule = position.product.penalty
    mode = position.product.rounding.mode
    components = (Component.PRINCIPAL,) if rule.base is PenaltyBase.OVERDUE_PRINCIPAL else SCHEDULED_COMPONENTS
    segments = {
        inst.number: _base_segments(inst, components, start=inst.due_date + timedelta(days=rule.grace_days), end=as_of)
        for inst in position.installments
    }
    capacity: Decimal | None = None
    if rule.cap_rate_of_principal is not None:
        cap = quantize(rule.cap_rate_of_principal * position.principal, mode)
        live = sum((i.penalty_accrued for i in position.installments), ZERO)
        earlier = max(position.penalty_charged_total - live, ZERO)
        capacity = max(cap - earlier, ZERO)
    exact, days = _earn(position.installments, segments, rule.daily_rate, capacity)
    amounts = {n: quantize(v, mode) for n, v in exact.items()}
    if capacity is not None:
        excess = sum(amounts.values(), ZERO) - capacity
        cent = Decimal("0.01")
        for number in sorted(amounts, reverse=True):  # rounding may overshoot the cap by cents
            while excess > 0 and amounts[number] > 0:
                amounts[number] -= cent
                excess -= cent
    return tuple(PenaltyCharge(i.number, amounts[i.number], days[i.number]) for i in position.installments)


def penalty_accrual(position: LoanPosition, *, from_date: date, to_date: date) -> tuple[PenaltyCharge, ...]:
    """Penalty earned on the days in [``from_date``, ``to_date``), per installment with a non-zero charge.

    The difference of two :func:`penalty_due_to_date` totals, so consecutive ranges add up exactly.
    """
    if to_date < from_date:
        raise InvalidInput(
            f"`to_date`: {to_date.isoformat()} is before `from_date` {from_date.isoformat()}; "
            "expected a range that does not run backwards",
            field="to_date",
        )
    before = {c.number: c for c in penalty_due_to_date(position, from_date)}
    after = penalty_due_to_date(position, to_date)
    charges = (
        PenaltyCharge(c.number, c.amount - before[c.number].amount, c.days - before[c.number].days) for c in after
    )
    return tuple(c for c in charges if c.amount != 0 or c.days != 0)


def accrue_penalties(position: LoanPosition, as_of: date) -> LoanPosition:
    """The position with each installment's ``penalty_accrued`` set to its total earned before ``as_of``.

    A backdated payment can lower a total (a repost); ``penalty_charged_total`` follows.
    """
    totals = {c.number: c.amount for c in penalty_due_to_date(position, as_of)}
    live = sum((i.penalty_accrued for i in position.installments), ZERO)
    earlier = max(position.penalty_charged_total - live, ZERO)
    installments = tuple(replace(i, penalty_accrued=totals[i.number]) for i in position.installments)
    return replace(
        position,
        installments=installments,
        penalty_charged_total=earlier + sum(totals.values(), ZERO),
    )


_Segment = tuple[date, date, Decimal]  # [first day, end day) with a constant base


def _base_segments(
    inst: InstallmentPosition, components: tuple[Component, ...], *, start: date, end: date
) -> list[_Segment]:
    """Runs of days in [start, end) over which the installment's penalty base is constant and positive."""
    if start >= end:
        return []
    changes = sorted({p.paid_on for p in inst.dated_payments if start < p.paid_on < end})
    bounds = [start, *changes, end]
    segments: list[_Segment] = []
    for first, stop in pairwise(bounds):
        base = sum((inst.unpaid_at_end_of(c, first) for c in components), ZERO)
        if base > 0:
            segments.append((first, stop, base))
    return segments


def _earn(
    installments: tuple[InstallmentPosition, ...],
    segments: dict[int, list[_Segment]],
    daily_rate: Decimal,
    capacity: Decimal | None,
) -> tuple[dict[int, Decimal], dict[int, int]]:
    """Exact penalty and penalty days per installment, walking time forward so a cap binds on the right day."""
    exact = {i.number: ZERO for i in installments}
    days = {i.number: 0 for i in installments}
    if capacity is None:
        for number, runs in segments.items():
            for first, stop, base in runs:
                n = (stop - first).days
                exact[number] += daily_rate * base * n
                days[number] += n
        return exact, days
    order = [i.number for i in sorted(installments, key=lambda i: (i.due_date, i.number))]
    bounds = sorted({d for runs in segments.values() for first, stop, _ in runs for d in (first, stop)})
    left = capacity
    for first, stop in pairwise(bounds):
        daily = {}
        for number in order:
            for a, b, base in segments[number]:
                if a <= first and stop <= b:
                    daily[number] = daily_rate * base
        total = sum(daily.values(), ZERO)
        if total <= 0:
            continue
        n = (stop - first).days
        full = n if total * n <= left else int(left // total)
        for number, amount in daily.items():
            exact[number] += amount * full
            days[number] += full
        left -= total * full
        if full < n:  # the cap binds inside this run: the last day is shared oldest first
            for number, amount in daily.items():
                take = min(amount, left)
                if take > 0:
                    exact[number] += take
                    days[number] += 1
                    left -= take
            break
    return exact, days
