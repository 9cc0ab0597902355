"""Vectorized offer pricing (批量报价): the Decimal quotes of :mod:`runoff.servicing.quotes` for whole books.

Each function takes per-loan NumPy arrays (integer fen, rates in 1e-8 units) and returns what the Decimal
quote would, to the cent: :func:`settle` follows :func:`~runoff.servicing.quotes.early_settlement`,
:func:`reschedule` builds the new schedules of an extension, a restructuring or a hardship holiday through
:func:`runoff.servicing.vectorized.build_schedules` (the same schedule engine, in integers), and
:func:`period_irr` finds each schedule's IRR by Newton steps on the whole array at once.

Exactness: amounts are integer arithmetic with explicit half-up / half-even rounding. The one place a
float enters an amount is the level payment, which the schedule engine already routes to exact rationals
near a rounding boundary; the accrued interest of a settlement at an exact half-fen tie is recomputed with
the Decimal formula itself (:func:`decimal_share`), so a tie rounds exactly as the quote rounds it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal

import numpy as np
import numpy.typing as npt

from runoff.calendar import BusinessDayRule
from runoff.money import RoundingMode, from_minor, quantize, to_minor
from runoff.servicing.vectorized import RATE_SCALE, ScheduleArrays, build_schedules

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_CTX = Context(prec=50)
SETTLE_ACCRUED, SETTLE_CURRENT_PERIOD, SETTLE_NONE = 0, 1, 2
"""Codes of :class:`~runoff.servicing.product.SettlementInterest` (accrued-to-date, current-period, none)."""


def round_div(num: IntArray, den: IntArray | int, half_even: BoolArray) -> IntArray:
    """``num / den`` rounded to an integer (num ≥ 0, den > 0): half-up, or half-even where ``half_even``."""
    quotient = num // den
    twice = 2 * (num - quotient * den)
    up = (twice > den) | ((twice == den) & (~half_even | (quotient % 2 == 1)))
    result: IntArray = quotient + up.astype(np.int64)
    return result


def ties(num: IntArray, den: IntArray | int) -> BoolArray:
    """Where ``num / den`` lies exactly half-way between two integers."""
    tie: BoolArray = 2 * (num % den) == den
    return tie


def decimal_share(amount_fen: int, numerator: int, denominator: int, mode: RoundingMode) -> int:
    """The quote's own ``quantize(amount × share, mode)`` (share as a 50-digit Decimal), in fen."""
    share = _CTX.divide(Decimal(numerator), Decimal(denominator)) if denominator else Decimal(0)
    return to_minor(quantize(from_minor(amount_fen) * share, mode))


@dataclass(frozen=True, slots=True)
class Settlement:
    """Early settlement (提前结清) of many loans: what falls due now, by component, after waivers and discount."""

    principal: IntArray
    interest: IntArray  # arrears interest + the current period's interest charged
    fee: IntArray  # arrears fee + current fee + settlement fee
    penalty: IntArray
    waived: IntArray
    remaining_principal: IntArray  # principal not yet due (what is repaid early)
    interest_charged: IntArray  # interest charged for the current period
    interest_accrued: IntArray  # interest of the current period for the days actually borrowed
    fee_accrued: IntArray  # the current period's fee for the days actually borrowed
    settlement_fee: IntArray
    share_num: IntArray  # the part of the current period borrowed, as a fraction
    share_den: IntArray
    current_fee: IntArray
    current_forgiven: IntArray  # what the discount forgave of the prepaid principal and the current period's charges

    @property
    def total(self) -> IntArray:
        total: IntArray = self.principal + self.interest + self.fee + self.penalty
        return total


def settle(
    *,
    arrears_principal: IntArray,
    arrears_interest: IntArray,
    arrears_fee: IntArray,
    penalty: IntArray,
    remaining_principal: IntArray,
    current_interest: IntArray,
    current_fee: IntArray,
    elapsed_days: IntArray,
    period_days: IntArray,
    has_future: BoolArray,
    interest_rule: npt.NDArray[np.int8],
    fees_waived: BoolArray,
    fee_rate_units: IntArray,
    flat_fee: IntArray,
    half_even: BoolArray,
    waive_penalties: BoolArray,
    discount_rate_units: IntArray,
    waive_settlement_fee: BoolArray,
) -> Settlement:
    """:func:`~runoff.servicing.quotes.early_settlement` on arrays, the plan's discount applied.

    The discount is ``q(discount_rate × principal repaid early)`` plus the settlement fee where it is waived,
    at most what is due, taken from penalty, then fee, then interest, then principal, within each from the overdue
    amount first (as the quote does, so the settlement's APR is that of what the customer pays for the prepayment).
    """
    positive = has_future & (elapsed_days > 0) & (period_days > 0)
    num = np.where(positive, elapsed_days, 0).astype(np.int64)
    den = np.where(positive, period_days, 1).astype(np.int64)
    gcd = np.gcd(num, den)
    gcd[gcd == 0] = 1
    num //= gcd
    den //= gcd
    accrued = round_div(current_interest * num, den, half_even)
    accrued_fee = round_div(current_fee * num, den, half_even)
    for amounts, out in ((current_interest, accrued), (current_fee, accrued_fee)):
        tie = np.flatnonzero(ties(amounts * num, den) & (den > 1))
        for i in tie.tolist():
            mode = RoundingMode.HALF_EVEN if half_even[i] else RoundingMode.HALF_UP
            out[i] = decimal_share(int(amounts[i]), int(num[i]), int(den[i]), mode)
    accrued = np.minimum(accrued, current_interest)
    interest = np.select(
        [interest_rule == SETTLE_ACCRUED, interest_rule == SETTLE_CURRENT_PERIOD],
        [accrued, current_interest],
        default=0,
    )
    fee = np.select(
        [interest_rule == SETTLE_ACCRUED, interest_rule == SETTLE_CURRENT_PERIOD],
        [accrued_fee, current_fee],
        default=0,
    )
    fee = np.where(fees_waived, fee, current_fee)
    interest = np.where(has_future, interest, 0)
    fee = np.where(has_future, fee, 0)
    settlement_fee = round_div(fee_rate_units * remaining_principal, RATE_SCALE, half_even) + flat_fee
    penalty_waived = np.where(waive_penalties, penalty, 0)
    overdue = {
        "principal": arrears_principal,
        "interest": arrears_interest,
        "fee": arrears_fee,
        "penalty": penalty - penalty_waived,
    }
    current = {
        "principal": remaining_principal,
        "interest": interest,
        "fee": fee + settlement_fee,
        "penalty": np.zeros_like(penalty),
    }
    total = sum(overdue[name] + current[name] for name in overdue)
    discount = round_div(discount_rate_units * remaining_principal, RATE_SCALE, half_even)
    discount = np.minimum(discount + np.where(waive_settlement_fee, settlement_fee, 0), total)
    left = discount.copy()
    after = {}
    current_forgiven = np.zeros_like(discount)
    for name in ("penalty", "fee", "interest", "principal"):
        from_overdue = np.minimum(overdue[name], left)
        left -= from_overdue
        from_current = np.minimum(current[name], left)
        left -= from_current
        after[name] = overdue[name] + current[name] - from_overdue - from_current
        current_forgiven += from_current
    return Settlement(
        principal=after["principal"],
        interest=after["interest"],
        fee=after["fee"],
        penalty=after["penalty"],
        waived=penalty_waived + discount,
        remaining_principal=remaining_principal,
        interest_charged=interest,
        interest_accrued=np.where(has_future, accrued, 0),
        fee_accrued=np.where(has_future, accrued_fee, 0),
        settlement_fee=settlement_fee,
        share_num=num,
        share_den=den,
        current_fee=fee,
        current_forgiven=current_forgiven,
    )


def settlement_apr(
    lent: IntArray, repaid: IntArray, share_num: IntArray, share_den: IntArray, periods_per_year: int = 12
) -> tuple[FloatArray, FloatArray]:
    """(nominal, effective) APR of lending ``lent`` and getting ``repaid`` a fraction of a period later.

    ``(repaid / lent)^(1/share) − 1`` per period, as the quote's ``_apr_over_fraction``; NaN where the quote
    gives none (nothing prepaid, or a charge for zero days); 0 where nothing is charged for zero days.
    """
    ok = (lent > 0) & (share_num > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ok, repaid / np.where(lent > 0, lent, 1), 1.0)
        exponent = np.where(ok, share_den / np.where(share_num > 0, share_num, 1), 1.0)
        growth = np.power(ratio, exponent)
    period = growth - 1.0
    nominal = np.where(ok, period * periods_per_year, np.nan)
    effective = np.where(ok, np.power(growth, periods_per_year) - 1.0, np.nan)
    zero = (lent > 0) & (share_num == 0) & (repaid == lent)
    nominal[zero] = 0.0
    effective[zero] = 0.0
    return nominal, effective


def reschedule(
    *,
    method: npt.NDArray[np.int8],
    principal: IntArray,
    term: IntArray,
    annual_rate_units: IntArray,
    fee_rate_units: IntArray,
    grace: IntArray,
    capitalize: BoolArray,
    half_even: BoolArray,
    multiple_of_fen: IntArray,
    start: npt.NDArray[np.datetime64],
    business_day_rules: npt.NDArray[np.str_] | None = None,
    holiday_countries: npt.NDArray[np.str_] | None = None,
) -> ScheduleArrays:
    """New schedules (展期 / 债务重组) for many loans with the one schedule engine, with due dates.

    Loans whose products move due dates by a business-day rule are scheduled per (rule, calendar) and put
    back in order.
    """
    down = np.zeros(principal.shape[0], dtype=np.bool_)

    def part(rows: npt.NDArray[np.intp] | slice, rule: str, country: str) -> ScheduleArrays:
        return build_schedules(
            method[rows],
            principal_fen=principal[rows],
            term=term[rows],
            annual_rate_units=annual_rate_units[rows],
            fee_rate_units=fee_rate_units[rows],
            grace_periods=grace[rows],
            grace_kind=capitalize[rows],
            rounding=half_even[rows],
            multiple_of_fen=multiple_of_fen[rows],
            down_payment=down[rows],
            start_date=start[rows],
            business_day_rule=BusinessDayRule(rule),
            holiday_country=country,
        )

    if business_day_rules is None or bool(np.all(business_day_rules == "none")):
        return part(slice(None), "none", "CN")
    keys = np.char.add(np.char.add(business_day_rules.astype(str), "|"), np.asarray(holiday_countries, dtype=str))
    width = int(term.max())
    n = principal.shape[0]
    blocks = [np.zeros((n, width), dtype=np.int64) for _ in range(5)]
    due = np.full((n, width), np.datetime64("NaT"), dtype="datetime64[D]")
    for key in np.unique(keys).tolist():
        rows = np.flatnonzero(keys == key)
        rule, country = key.split("|")
        piece = part(rows, rule, country)
        w = piece.n_periods
        values = (
            piece.principal_fen,
            piece.interest_fen,
            piece.fee_fen,
            piece.balance_after_fen,
            piece.capitalized_fen,
        )
        for block, value in zip(blocks, values, strict=True):
            block[rows, :w] = value
        assert piece.due_date is not None
        due[rows, :w] = piece.due_date
    return ScheduleArrays(
        principal_fen=blocks[0],
        interest_fen=blocks[1],
        fee_fen=blocks[2],
        balance_after_fen=blocks[3],
        capitalized_fen=blocks[4],
        installments=term.astype(np.int64),
        due_date=due,
    )


def period_irr(principal_fen: IntArray, totals_fen: IntArray, guess: FloatArray) -> FloatArray:
    """The IRR per period of lending ``principal`` and receiving ``totals[:, k]`` at period k + 1.

    Newton's method on every loan at once from ``guess`` (the contract's period rate is a good start), with
    the discount factors ``(1 + i)^−k`` built by a running product; the few loans not converged after the
    first rounds (to ~1e-15) continue on their own, bisection-safeguarded. Zero where the schedule repays
    exactly the principal.
    """
    flows = totals_fen.astype(np.float64, order="F")
    lent = principal_fen.astype(np.float64)
    rate = np.clip(guess.astype(np.float64), 1e-9, 10.0)
    low = np.full(rate.shape[0], -0.99)
    high = np.full(rate.shape[0], 50.0)
    rows = np.arange(rate.shape[0])
    for _ in range(100):
        if rows.size == 0:
            break
        part = flows if rows.size == flows.shape[0] else flows[rows]
        x = rate[rows]
        new, lo, hi = _newton_step(part, lent[rows], x, low[rows], high[rows])
        rate[rows], low[rows], high[rows] = new, lo, hi
        done = np.abs(new - x) <= 1e-15 * np.maximum(1.0, np.abs(x))
        rows = rows[~done]
    rate[flows.sum(axis=1) == lent] = 0.0
    return rate


def _newton_step(
    flows: FloatArray, lent: FloatArray, x: FloatArray, low: FloatArray, high: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One safeguarded Newton step on NPV(i) − lent (NPV falls as the rate rises).

    NPV = Σ c_k v^(k+1) with v = 1/(1 + i), by Horner's rule over the columns (period-major arrays make
    each column contiguous), with its derivative alongside: no matrix of discount factors is built.
    """
    v = 1.0 / (1.0 + x)
    value = np.zeros_like(x)
    slope_v = np.zeros_like(x)
    for k in range(flows.shape[1] - 1, -1, -1):
        value += flows[:, k]
        slope_v *= v
        slope_v += value
        value *= v
    npv = value - lent
    slope = -slope_v * v * v  # d/di of Σ c_k v^(k+1) = (d/dv) · (−v²)
    above = npv > 0  # the root is higher
    low = np.where(above, x, low)
    high = np.where(above, high, x)
    with np.errstate(divide="ignore", invalid="ignore"):
        candidate = x - npv / slope
    bad = ~np.isfinite(candidate) | (candidate <= low) | (candidate >= high)
    return np.where(bad, 0.5 * (low + high), candidate), low, high
