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
from runoff.money import RoundingMode, quantize
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
    """Penalty on one installment: ``amount`` (rounded) earned over ``days`` penalty days.

    ``earned`` is the exact amount before rounding (after the cap): what the ledger's integer daily
    close carries forward (see :func:`accrue_penalty_day`).
    """

    number: int
    amount: Decimal
    days: int
    earned: Decimal = ZERO


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
        # Rounding may overshoot the cap by cents: take them back from the newest installments.
        excess = sum(amounts.values(), ZERO) - capacity
        for inst in sorted(position.installments, key=lambda i: (i.due_date, i.number), reverse=True):
            take = min(max(excess, ZERO), amounts[inst.number])
            amounts[inst.number] -= take
            excess -= take
    return tuple(
        PenaltyCharge(i.number, amounts[i.number], days[i.number], exact[i.number]) for i in position.installments
    )


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
        PenaltyCharge(
            c.number,
            c.amount - before[c.number].amount,
            c.days - before[c.number].days,
            c.earned - before[c.number].earned,
        )
        for c in after
    )
    return tuple(c for c in charges if c.amount != 0 or c.days != 0)


def accrue_penalties(position: LoanPosition, as_of: date) -> LoanPosition:
    """The position with each installment's ``penalty_accrued`` set to its total earned before ``as_of``.

    A backdated payment can lower a total (a repost); ``penalty_charged_total`` follows. A total is
    never set below what was already paid or waived of that installment's penalty: only a book loaded
    with penalty paid before the ledger's history (which the ledger cannot date, so it re-prices it
    lower) reaches that floor, and penalty a customer paid is not taken back by a re-pricing.
    """
    totals = {c.number: c.amount for c in penalty_due_to_date(position, as_of)}
    live = sum((i.penalty_accrued for i in position.installments), ZERO)
    earlier = max(position.penalty_charged_total - live, ZERO)
    installments = tuple(
        replace(i, penalty_accrued=max(totals[i.number], i.penalty_paid + i.penalty_waived))
        for i in position.installments
    )
    return replace(
        position,
        installments=installments,
        penalty_charged_total=earlier + sum((i.penalty_accrued for i in installments), ZERO),
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


# --- the set-based daily close --------------------------------------------------------------------

PENALTY_UNITS_PER_FEN = 10**9
"""Exact penalty in integers: a daily rate in parts per billion times a base in fen is in these units."""

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def penalty_units(earned: Decimal) -> int:
    """An exact penalty (``PenaltyCharge.earned``, in yuan) in :data:`PENALTY_UNITS_PER_FEN` units; refuses a remainder."""
    units = earned * 100 * PENALTY_UNITS_PER_FEN
    if units != units.to_integral_value():
        raise InvalidInput(
            f"`earned`: {earned} is not a whole number of 1e-9 fen; expected a daily rate with at most 9 decimals",
            field="earned",
        )
    return int(units)


@dataclass(frozen=True, slots=True)
class PenaltyDay:
    """One day of the set-based close: exact penalty earned so far and the rounded, capped total, per row."""

    earned_units: IntArray
    accrued_fen: IntArray


def accrue_penalty_day(
    *,
    loan: npt.NDArray[np.integer],
    in_window: BoolArray,
    base_fen: IntArray,
    rate_ppb: IntArray,
    earned_units: IntArray,
    capacity_fen: IntArray,
    mode: RoundingMode = RoundingMode.HALF_UP,
) -> PenaltyDay:
    """One day's penalty for many installments at once: the close-day path of :func:`penalty_due_to_date`.

    One row per installment, grouped by ``loan`` (contiguous codes) and ordered by due date within a
    loan. ``in_window``: the day is on or after due date + grace days; ``base_fen``: the penalty base
    unpaid at the end of the day; ``rate_ppb``: the daily rate in parts per billion; ``earned_units``:
    exact penalty earned before the day (``penalty_units(PenaltyCharge.earned)``, 0 for a new loan);
    ``capacity_fen``: the loan's cap less penalty charged under earlier schedules, on every row of
    the loan, or −1 for no cap. Run day after day, ``accrued_fen`` equals ``penalty_due_to_date`` to
    the fen (the cap binds oldest first within a day; cents rounding overshoots come off the newest).
    """
    arrays = [np.asarray(a) for a in (loan, in_window, base_fen, rate_ppb, earned_units, capacity_fen)]
    n = arrays[0].shape[0]
    if any(a.shape != (n,) for a in arrays):
        raise InvalidInput("`loan`: every array must be one-dimensional and of the same length", field="loan")
    codes = arrays[0].astype(np.int64)
    if n and bool(np.any(codes[1:] < codes[:-1])):
        raise InvalidInput("`loan`: rows must be grouped by loan in ascending code order", field="loan")
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return PenaltyDay(empty, empty.copy())
    window = arrays[1].astype(bool)
    base = arrays[2].astype(np.int64)
    rate = arrays[3].astype(np.int64)
    earned = arrays[4].astype(np.int64)
    capacity = arrays[5].astype(np.int64)

    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    group = np.cumsum(np.r_[True, codes[1:] != codes[:-1]]) - 1
    capped = capacity >= 0

    today = np.where(window & (base > 0), rate * base, 0)
    left = np.maximum(capacity * PENALTY_UNITS_PER_FEN - np.add.reduceat(earned, starts)[group], 0)
    before_in_loan = _exclusive_cumsum_in_group(today, starts, group)
    take = np.where(capped, np.clip(left - before_in_loan, 0, today), today)
    after = earned + take

    rounded = _round_units(after, PENALTY_UNITS_PER_FEN, mode)
    excess = np.maximum(np.add.reduceat(rounded, starts) - np.where(capped, capacity, 0)[starts], 0)[group]
    newer = _exclusive_cumsum_in_group(rounded[::-1], *_reverse_groups(codes))[::-1]
    trim = np.where(capped, np.clip(excess - newer, 0, rounded), 0)
    return PenaltyDay(earned_units=after, accrued_fen=rounded - trim)


def _exclusive_cumsum_in_group(values: IntArray, starts: IntArray, group: IntArray) -> IntArray:
    """Σ of the earlier rows of the same group, per row."""
    running = np.cumsum(values)
    offset = (running - values)[starts]
    result: IntArray = running - values - offset[group]
    return result


def _reverse_groups(codes: IntArray) -> tuple[IntArray, IntArray]:
    reversed_codes = codes[::-1]
    change = np.r_[True, reversed_codes[1:] != reversed_codes[:-1]]
    return np.flatnonzero(change), np.cumsum(change) - 1


def _round_units(value: IntArray, unit: int, mode: RoundingMode) -> IntArray:
    """Non-negative ``value / unit`` rounded to an integer, half-up or half-even."""
    whole, rest = np.divmod(value, unit)
    twice = 2 * rest
    up = (twice > unit) | ((twice == unit) & ((mode is RoundingMode.HALF_UP) | (whole % 2 == 1)))
    result: IntArray = whole + up.astype(np.int64)
    return result
