"""Repayment schedules (还款计划) in exact Decimal: the one schedule engine of runoff.

Quotes, restructuring, the ledger, the vectorized path's tests and the ABS pool all build their
schedules here. Every amount follows ``docs/schedule-conventions.md`` to the cent: it is computed as
an exact rational number and rounded once (to the cent under the product's mode, or to the product's
``multiple_of``), and the last installment absorbs what rounding left, so principal repaid equals
principal lent (plus any capitalized interest) exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction

from runoff.calendar import BusinessCalendar, BusinessDayRule, Frequency, period_date
from runoff.errors import ScheduleInvalid
from runoff.money import CENT, RoundingMode
from runoff.servicing.daycount import year_fraction_ratio
from runoff.servicing.product import (
    GraceKind,
    HolidayInterest,
    InterestBasis,
    Method,
    Product,
    Rounding,
    adhoc_product,
)

ZERO = Decimal("0.00")  # amounts carry two decimals, zero included
MAX_TERM = 360
_CENT_FRACTION = Fraction(1, 100)


@dataclass(frozen=True, slots=True)
class Installment:
    """One scheduled installment (期): what falls due on ``due_date``, split by component."""

    number: int
    due_date: date
    principal: Decimal
    interest: Decimal
    fee: Decimal
    balance_after: Decimal
    accrual_start: date | None = None  # first day of the period its interest covers
    capitalized: Decimal = ZERO  # interest added to the balance in a capitalizing grace period (资本化)

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest + self.fee


@dataclass(frozen=True, slots=True)
class Schedule:
    """A whole repayment plan: the amount lent on ``start_date`` and its installments.

    ``first_period_index`` is the IRR period index of installment 1: 1 normally, 0 when installment 1
    is a down payment taken on the drawing date.
    """

    principal: Decimal
    start_date: date
    method: Method
    periods_per_year: int
    installments: tuple[Installment, ...]
    first_period_index: int = 1

    @property
    def total_principal(self) -> Decimal:
        return sum((i.principal for i in self.installments), Decimal(0))

    @property
    def total_interest(self) -> Decimal:
        return sum((i.interest for i in self.installments), Decimal(0))

    @property
    def total_fee(self) -> Decimal:
        return sum((i.fee for i in self.installments), Decimal(0))

    @property
    def total_payable(self) -> Decimal:
        return sum((i.total for i in self.installments), Decimal(0))

    @property
    def total_capitalized(self) -> Decimal:
        return sum((i.capitalized for i in self.installments), Decimal(0))

    def period_index(self, installment: Installment) -> int:
        """The installment's period index for discounting (the down payment is period 0)."""
        return self.first_period_index + installment.number - 1


# --- exact rounding -------------------------------------------------------------------------------


def _round_units(value: Fraction, unit: Fraction, mode: RoundingMode) -> int:
    """``value / unit`` rounded to an integer under ``mode`` (half-up is away from zero, like ROUND_HALF_UP)."""
    ratio = value / unit
    sign = -1 if ratio < 0 else 1
    num, den = abs(ratio.numerator), ratio.denominator
    whole, rem = divmod(num, den)
    twice = 2 * rem
    if twice > den or (twice == den and (mode is RoundingMode.HALF_UP or whole % 2 == 1)):
        whole += 1
    return sign * whole


def round_cents(value: Fraction, mode: RoundingMode) -> Decimal:
    """``q(x)``: the exact ``value`` rounded once to the cent under ``mode``."""
    return Decimal(_round_units(value, _CENT_FRACTION, mode)) * CENT


def round_installment(value: Fraction, rounding: Rounding) -> Decimal:
    """``m(x)``: ``value`` rounded to ``rounding.multiple_of`` (then to the cent), or to the cent without one."""
    if rounding.multiple_of is None:
        return round_cents(value, rounding.mode)
    units = _round_units(value, Fraction(rounding.multiple_of), rounding.mode)
    return round_cents(Fraction(units) * Fraction(rounding.multiple_of), rounding.mode)


# --- the payment formulas -------------------------------------------------------------------------


def annuity_payment(balance: Fraction, period_rate: Fraction, periods: int) -> Fraction:
    """The exact level payment repaying ``balance`` over ``periods`` at ``period_rate``: B·r / (1 − (1+r)^−n)."""
    if period_rate == 0:
        return balance / periods
    growth = (1 + period_rate) ** periods
    return balance * period_rate * growth / (growth - 1)


def equal_installment_payment(
    principal: Decimal,
    *,
    annual_rate: Decimal,
    term: int,
    periods_per_year: int = 12,
    rounding: Rounding | None = None,
) -> Decimal:
    """The level payment of an equal-installment (等额本息) loan: ``m(P·r / (1 − (1+r)^−n))``, r = A / ppy."""
    rule = rounding or Rounding()
    rate = Fraction(annual_rate) / periods_per_year
    return round_installment(annuity_payment(Fraction(principal), rate, term), rule)


def flat_fee_amount(principal: Decimal, *, fee_rate: Decimal, mode: RoundingMode = RoundingMode.HALF_UP) -> Decimal:
    """The fee of every period of a flat-fee (等本等费) loan: ``q(P × f)`` on the ORIGINAL principal."""
    return round_cents(Fraction(principal) * Fraction(fee_rate), mode)


# --- validation -----------------------------------------------------------------------------------


def _check_principal(principal: Decimal) -> Decimal:
    if isinstance(principal, bool) or not isinstance(principal, Decimal | int):
        raise ScheduleInvalid(
            f"`principal`: {principal!r} is not allowed; expected a Decimal amount like Decimal('1000.00')",
            field="principal",
        )
    value = Decimal(principal)
    if not value.is_finite() or value <= 0 or value != value.quantize(CENT):
        raise ScheduleInvalid(
            f"`principal`: {value} is not allowed; expected an amount more than zero in whole cents",
            field="principal",
        )
    return value.quantize(CENT)


def _check_term(term: int) -> int:
    if isinstance(term, bool) or not isinstance(term, int) or not 1 <= term <= MAX_TERM:
        raise ScheduleInvalid(f"`term`: {term!r} is not allowed; expected 1 to {MAX_TERM}", field="term")
    return term


def _check_rate(value: Decimal, *, field: str, upper: Decimal) -> Decimal:
    if not isinstance(value, Decimal | int) or not Decimal(value).is_finite() or not 0 <= value <= upper:
        raise ScheduleInvalid(
            f"`{field}`: {value!r} is not allowed; expected a fraction from 0 to {upper}", field=field
        )
    return Decimal(value)


@dataclass(frozen=True, slots=True)
class _Terms:
    """Everything one schedule depends on, checked once."""

    product: Product
    principal: Decimal
    term: int
    start_date: date
    annual_rate: Fraction
    fee_rate: Fraction
    grace: int
    calendar: BusinessCalendar | None


def _resolve_terms(
    product: Product,
    *,
    principal: Decimal,
    term: int,
    start_date: date,
    annual_rate: Decimal | None,
    fee_rate: Decimal | None,
    grace_periods: int | None,
    calendar: BusinessCalendar | None,
) -> _Terms:
    amount = _check_principal(principal)
    n = _check_term(term)
    flat = product.method is Method.FLAT_FEE
    if flat and annual_rate not in (None, ZERO):
        raise ScheduleInvalid(
            f"`annual_rate`: {annual_rate} is not allowed for flat-fee product {product.id!r}; "
            "expected `fee_rate` (per period) instead",
            field="annual_rate",
        )
    if not flat and fee_rate not in (None, ZERO):
        raise ScheduleInvalid(
            f"`fee_rate`: {fee_rate} is not allowed for {product.method.value} product {product.id!r}; "
            "expected `annual_rate` instead",
            field="fee_rate",
        )
    rate = _check_rate(annual_rate, field="annual_rate", upper=Decimal(1)) if annual_rate is not None else None
    fee = _check_rate(fee_rate, field="fee_rate", upper=Decimal("0.1")) if fee_rate is not None else None
    rate = rate if rate is not None else (product.annual_rate or ZERO)
    fee = fee if fee is not None else (product.fee_rate or ZERO)
    if flat:
        rate = ZERO
    grace = product.grace_periods if grace_periods is None else grace_periods
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace < n:
        raise ScheduleInvalid(
            f"`grace_periods`: {grace!r} is not allowed for a term of {n}; expected 0 to {n - 1}",
            field="grace_periods",
        )
    if grace and product.down_payment:
        raise ScheduleInvalid(
            f"`grace_periods`: {grace} is not allowed on down-payment product {product.id!r}; expected 0",
            field="grace_periods",
        )
    if grace and flat and product.grace_kind is GraceKind.CAPITALIZE:
        raise ScheduleInvalid(
            f"`grace_kind`: capitalize is not allowed for flat-fee product {product.id!r}; expected interest-only",
            field="grace_kind",
        )
    if product.down_payment and n < 2:
        raise ScheduleInvalid(
            f"`term`: {n} is not allowed for down-payment product {product.id!r}; expected 2 to {MAX_TERM}",
            field="term",
        )
    if calendar is None and product.business_day_rule is not BusinessDayRule.NONE:
        calendar = BusinessCalendar(product.holiday_country)
    return _Terms(
        product=product,
        principal=amount,
        term=n,
        start_date=start_date,
        annual_rate=Fraction(rate),
        fee_rate=Fraction(fee),
        grace=grace,
        calendar=calendar,
    )


# --- the engine -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Period:
    """Dates of one installment: when it falls due and the span its daily interest covers."""

    due_date: date
    accrual_start: date
    accrual_end: date


def _periods(t: _Terms) -> list[_Period]:
    """Due dates (moved by the business-day rule) and accrual spans (by the holiday-interest rule)."""
    p = t.product
    offset = 1 if p.down_payment else 0
    out: list[_Period] = []
    previous_end = t.start_date
    previous_due = t.start_date
    for k in range(1, t.term + 1):
        if p.down_payment and k == 1:
            # The down payment is taken at checkout, on the drawing date; it is never moved.
            out.append(_Period(t.start_date, t.start_date, t.start_date))
            continue
        scheduled = period_date(t.start_date, k - offset, p.frequency)
        due = scheduled
        if t.calendar is not None and p.business_day_rule is not BusinessDayRule.NONE:
            due = t.calendar.adjust(scheduled, p.business_day_rule)
            if due < scheduled and due <= previous_due:
                # Stepping back over a long holiday must not reach the drawing date or the previous due date.
                due = t.calendar.adjust(scheduled, BusinessDayRule.FOLLOWING)
        end = due if p.holiday_interest is HolidayInterest.ACCRUE_TO_ACTUAL else scheduled
        out.append(_Period(due, previous_end, end))
        previous_end = end
        previous_due = due
    return out


def _interest_rule(t: _Terms) -> Callable[[Decimal, _Period], Decimal]:
    """Interest of one period on a balance: q(B·A/ppy), or q(B·A·yf(d0, d1)) for daily products."""
    p = t.product
    mode = p.rounding.mode
    rate = t.annual_rate
    if rate == 0:
        return lambda balance, period: ZERO
    if p.interest_basis is InterestBasis.PERIOD:
        ppy = p.periods_per_year
        return lambda balance, period: round_cents(Fraction(balance) * rate / ppy, mode)

    def daily(balance: Decimal, period: _Period) -> Decimal:
        fraction = year_fraction_ratio(period.accrual_start, period.accrual_end, p.day_count)
        return round_cents(Fraction(balance) * rate * fraction, mode)

    return daily


def build_schedule(
    product: Product,
    *,
    principal: Decimal,
    term: int,
    start_date: date,
    annual_rate: Decimal | None = None,
    fee_rate: Decimal | None = None,
    grace_periods: int | None = None,
    calendar: BusinessCalendar | None = None,
) -> Schedule:
    """The schedule of ``principal`` lent on ``start_date`` over ``term`` periods under ``product``.

    ``annual_rate``, ``fee_rate`` and ``grace_periods`` default to the product's; quotes pass others to
    re-amortize. ``term`` need not be one the product offers (1 to 360). ``calendar`` defaults to the
    product's ``holiday_country`` when its business-day rule moves due dates.
    """
    t = _resolve_terms(
        product,
        principal=principal,
        term=term,
        start_date=start_date,
        annual_rate=annual_rate,
        fee_rate=fee_rate,
        grace_periods=grace_periods,
        calendar=calendar,
    )
    p = product
    rounding = p.rounding
    mode = rounding.mode
    periods = _periods(t)
    interest_of = _interest_rule(t)
    flat = p.method is Method.FLAT_FEE
    fee = round_cents(Fraction(t.principal) * t.fee_rate, mode) if flat else ZERO
    rows: list[Installment] = []
    balance = t.principal
    first = 1

    if p.down_payment:
        down = round_installment(Fraction(t.principal) / t.term, rounding)
        down = min(down, balance)
        balance -= down
        rows.append(Installment(1, periods[0].due_date, down, ZERO, ZERO, balance, periods[0].accrual_start))
        first = 2

    for k in range(first, t.grace + 1):
        period = periods[k - 1]
        interest = interest_of(balance, period)
        if p.grace_kind is GraceKind.CAPITALIZE:
            balance += interest
            rows.append(
                Installment(k, period.due_date, ZERO, ZERO, ZERO, balance, period.accrual_start, capitalized=interest)
            )
        else:
            rows.append(Installment(k, period.due_date, ZERO, interest, fee, balance, period.accrual_start))
    first = max(first, t.grace + 1)

    # The amortizing phase: ``base`` over ``count`` periods, as if a new loan.
    base = balance
    count = t.term - first + 1
    level: Decimal | None = None
    if p.method is Method.EQUAL_INSTALLMENT:
        rate = t.annual_rate / p.periods_per_year
        level = round_installment(annuity_payment(Fraction(base), rate, count), rounding)
    share = Fraction(base) / count

    for k in range(first, t.term + 1):
        period = periods[k - 1]
        interest = ZERO if flat else interest_of(balance, period)
        if k == t.term:
            paid = balance
        elif p.method is Method.INTEREST_ONLY:
            paid = ZERO
        elif level is not None:
            paid = level - interest
        elif rounding.multiple_of is not None:
            carried = fee if flat else interest
            paid = round_installment(share + Fraction(carried), rounding) - carried
        else:
            paid = round_cents(share, mode)
        # Rounding to a multiple can ask for less than the interest or more than the balance: clamp.
        paid = min(max(paid, ZERO), balance)
        balance -= paid
        rows.append(Installment(k, period.due_date, paid, interest, fee, balance, period.accrual_start))

    return Schedule(
        principal=t.principal,
        start_date=start_date,
        method=p.method,
        periods_per_year=p.periods_per_year,
        installments=tuple(rows),
        first_period_index=0 if p.down_payment else 1,
    )


# --- one function per method, for notebooks and quick checks -------------------------------------


def _adhoc(
    method: Method,
    *,
    principal: Decimal,
    term: int,
    start_date: date,
    annual_rate: Decimal | None,
    fee_rate: Decimal | None,
    rounding: RoundingMode,
    multiple_of: Decimal | None,
    frequency: Frequency,
) -> Schedule:
    term = _check_term(term)
    product = adhoc_product(
        method=method,
        term=term,
        annual_rate=annual_rate,
        fee_rate=fee_rate,
        rounding=rounding,
        multiple_of=multiple_of,
        frequency=frequency,
    )
    return build_schedule(product, principal=principal, term=term, start_date=start_date)


def equal_installment(
    principal: Decimal,
    *,
    annual_rate: Decimal,
    term: int,
    start_date: date,
    rounding: RoundingMode = RoundingMode.HALF_UP,
    multiple_of: Decimal | None = None,
    frequency: Frequency = Frequency.MONTHLY,
) -> Schedule:
    """等额本息: a level payment, interest on the declining balance (period basis)."""
    return _adhoc(
        Method.EQUAL_INSTALLMENT,
        principal=principal,
        term=term,
        start_date=start_date,
        annual_rate=annual_rate,
        fee_rate=None,
        rounding=rounding,
        multiple_of=multiple_of,
        frequency=frequency,
    )


def equal_principal(
    principal: Decimal,
    *,
    annual_rate: Decimal,
    term: int,
    start_date: date,
    rounding: RoundingMode = RoundingMode.HALF_UP,
    multiple_of: Decimal | None = None,
    frequency: Frequency = Frequency.MONTHLY,
) -> Schedule:
    """等额本金: the same principal every period, interest on the declining balance (period basis)."""
    return _adhoc(
        Method.EQUAL_PRINCIPAL,
        principal=principal,
        term=term,
        start_date=start_date,
        annual_rate=annual_rate,
        fee_rate=None,
        rounding=rounding,
        multiple_of=multiple_of,
        frequency=frequency,
    )


def flat_fee(
    principal: Decimal,
    *,
    fee_rate: Decimal,
    term: int,
    start_date: date,
    rounding: RoundingMode = RoundingMode.HALF_UP,
    multiple_of: Decimal | None = None,
    frequency: Frequency = Frequency.MONTHLY,
) -> Schedule:
    """等本等费: the same principal every period plus a fee of ``fee_rate`` × the ORIGINAL principal."""
    return _adhoc(
        Method.FLAT_FEE,
        principal=principal,
        term=term,
        start_date=start_date,
        annual_rate=None,
        fee_rate=fee_rate,
        rounding=rounding,
        multiple_of=multiple_of,
        frequency=frequency,
    )


def interest_only(
    principal: Decimal,
    *,
    annual_rate: Decimal,
    term: int,
    start_date: date,
    rounding: RoundingMode = RoundingMode.HALF_UP,
    frequency: Frequency = Frequency.MONTHLY,
) -> Schedule:
    """先息后本: interest every period, the whole principal with the last."""
    return _adhoc(
        Method.INTEREST_ONLY,
        principal=principal,
        term=term,
        start_date=start_date,
        annual_rate=annual_rate,
        fee_rate=None,
        rounding=rounding,
        multiple_of=None,
        frequency=frequency,
    )
