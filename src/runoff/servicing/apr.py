"""APR by IRR (年化利率, 内部收益率法): the true price of a schedule, fees included.

The period rate ``i`` is the internal rate of return that discounts every scheduled payment (at its period
index; a down payment at index 0) back to the amount lent. As in the PBOC's annualised-rate disclosure
convention, the nominal APR is ``i × periods a year``; the effective annual rate is ``(1 + i)^k − 1``.
A 0.6 %/month flat fee (等本等费) over 12 months is about 13 % nominal, far above 0.6 % × 12 = 7.2 %.

All three rates are ``Decimal`` fractions (0.13 is 13 %), rounded to 24 decimal places: the IRR is bracketed
and found in floats (safeguarded Newton with bisection), then polished by Newton steps in 50-digit Decimal,
so the schedule discounts back to the amount lent far inside 1e-8.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Context, Decimal

from runoff.errors import InvalidInput
from runoff.servicing.schedule import Schedule

_CTX = Context(prec=50)
_PLACES = Decimal("1e-24")
_FLOAT_TOL = 1e-15
_MAX_ITERATIONS = 400


@dataclass(frozen=True, slots=True)
class Apr:
    """APR of a schedule: ``period_rate`` (the IRR per period), ``nominal`` = i × k, ``effective`` = (1+i)^k − 1.

    Fractions as ``Decimal`` (0.130 is 13 %); ``periods_per_year`` is k.
    """

    period_rate: Decimal
    nominal: Decimal
    effective: Decimal
    periods_per_year: int


def present_value(payments: Iterable[tuple[int, Decimal]], period_rate: Decimal) -> Decimal:
    """Σ payment × (1 + i)^−t in 50-digit Decimal: what the payments are worth at period 0."""
    growth = _CTX.add(Decimal(1), period_rate)
    total = Decimal(0)
    for index, amount in payments:
        total = _CTX.add(total, _CTX.divide(amount, _CTX.power(growth, index)))
    return total


def _aggregate(amount_lent: Decimal, payments: Sequence[tuple[int, Decimal]]) -> list[tuple[int, Decimal]]:
    if not isinstance(amount_lent, Decimal | int) or not Decimal(amount_lent).is_finite() or amount_lent <= 0:
        raise InvalidInput(
            f"`amount_lent`: {amount_lent!r} is not allowed; expected an amount more than zero", field="amount_lent"
        )
    flows: dict[int, Decimal] = defaultdict(Decimal)
    for index, amount in payments:
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise InvalidInput(
                f"`payments`: period index {index!r} is not allowed; expected an integer 0 or more", field="payments"
            )
        if not isinstance(amount, Decimal | int) or not Decimal(amount).is_finite() or amount < 0:
            raise InvalidInput(
                f"`payments`: amount {amount!r} at period {index} is not allowed; expected an amount 0 or more",
                field="payments",
            )
        flows[index] += Decimal(amount)
    return sorted((t, c) for t, c in flows.items() if c != 0)


def _float_npv(flows: list[tuple[int, float]], lent: float, rate: float) -> tuple[float, float]:
    """NPV − lent and its derivative at ``rate``; +inf when (1+rate)^−t overflows (rate near −1)."""
    base = 1.0 + rate
    value = -lent
    slope = 0.0
    try:
        for t, c in flows:
            discount = base ** (-t)
            value += c * discount
            slope -= t * c * discount / base
    except OverflowError:
        return math.inf, -math.inf
    if math.isinf(value) or math.isnan(value):
        return math.inf, -math.inf
    return value, slope


def _float_root(flows: list[tuple[int, float]], lent: float, lo: float, hi: float) -> float:
    """Safeguarded Newton on [lo, hi] where NPV(lo) > 0 > NPV(hi) (NPV falls as the rate rises)."""
    x = lo if lo >= 0 else 0.5 * (lo + hi)  # from the left, Newton on a convex falling NPV never overshoots
    for _ in range(_MAX_ITERATIONS):
        value, slope = _float_npv(flows, lent, x)
        if value == 0:
            return x
        if value > 0:
            lo = x
        else:
            hi = x
        step_ok = math.isfinite(value) and slope < 0
        candidate = x - value / slope if step_ok else math.nan
        if not (lo < candidate < hi):
            candidate = 0.5 * (lo + hi)
        if abs(candidate - x) <= _FLOAT_TOL * max(1.0, abs(x)) or hi - lo <= _FLOAT_TOL:
            return candidate
        x = candidate
    return 0.5 * (lo + hi)


def apr_of_cash_flows(amount_lent: Decimal, payments: Sequence[tuple[int, Decimal]], periods_per_year: int) -> Apr:
    """APR of ``amount_lent`` repaid by ``payments`` (period index → amount, index 0 the drawing date)."""
    if isinstance(periods_per_year, bool) or not isinstance(periods_per_year, int) or periods_per_year < 1:
        raise InvalidInput(
            f"`periods_per_year`: {periods_per_year!r} is not allowed; expected 1 or more (12 monthly)",
            field="periods_per_year",
        )
    flows = _aggregate(amount_lent, payments)
    lent = Decimal(amount_lent)
    total = sum((c for _, c in flows), Decimal(0))
    later = sum((c for t, c in flows if t > 0), Decimal(0))
    at_start = total - later
    if total == lent:
        return _apr(Decimal(0), periods_per_year)
    if later == 0 or at_start >= lent:
        raise InvalidInput(
            f"`payments`: {total} repaid for {lent} lent has no rate of return; "
            "expected payments after the drawing date that exceed what is repaid on it",
            field="payments",
        )
    float_flows = [(t, float(c)) for t, c in flows]
    lent_f = float(lent)
    if total > lent:
        lo, hi = 0.0, 1.0
        while _float_npv(float_flows, lent_f, hi)[0] > 0:
            lo, hi = hi, hi * 2
            if hi > 1e12:
                raise InvalidInput("`payments`: the rate of return exceeds 1e12 per period", field="payments")
    else:
        lo, hi = -0.5, 0.0
        while _float_npv(float_flows, lent_f, lo)[0] < 0:
            hi, lo = lo, (lo - 1) / 2
    rate = Decimal(_float_root(float_flows, lent_f, lo, hi))
    for _ in range(6):  # Newton in 50 digits: quadratic convergence from float accuracy
        growth = _CTX.add(Decimal(1), rate)
        value = -lent
        slope = Decimal(0)
        for t, c in flows:
            discounted = _CTX.divide(c, _CTX.power(growth, t))
            value = _CTX.add(value, discounted)
            slope = _CTX.subtract(slope, _CTX.divide(_CTX.multiply(t, discounted), growth))
        if slope == 0:
            break
        step = _CTX.divide(value, slope)
        rate = _CTX.subtract(rate, step)
        if abs(step) < Decimal("1e-40"):
            break
    return _apr(rate, periods_per_year)


def _apr(rate: Decimal, periods_per_year: int) -> Apr:
    if rate == 0:
        return Apr(Decimal(0), Decimal(0), Decimal(0), periods_per_year)
    period_rate = rate.quantize(_PLACES, context=_CTX)
    nominal = _CTX.multiply(rate, periods_per_year).quantize(_PLACES, context=_CTX)
    effective = _CTX.subtract(_CTX.power(_CTX.add(Decimal(1), rate), periods_per_year), Decimal(1))
    return Apr(
        period_rate=period_rate + 0,
        nominal=nominal + 0,
        effective=effective.quantize(_PLACES, context=_CTX) + 0,
        periods_per_year=periods_per_year,
    )


def apr_of_schedule(schedule: Schedule) -> Apr:
    """APR by IRR of a schedule: every installment's total (principal, interest and fee) at its period index."""
    payments = [(schedule.period_index(i), i.total) for i in schedule.installments]
    return apr_of_cash_flows(schedule.principal, payments, schedule.periods_per_year)
