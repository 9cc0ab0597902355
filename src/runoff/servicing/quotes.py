"""Quotes (报价): early settlement (提前结清), extension (展期) and restructuring (债务重组).

Each quote is a pure function of a loan position and ``as_of`` returning a :class:`Quote`: the new
schedule, what is due now by component, everything the customer would pay from ``as_of``, the APR
and the saving against carrying on under the current schedule. Penalties are recomputed to
``as_of`` (:func:`runoff.servicing.delinquency.penalty_due_to_date`), so a quote never depends on
when the ledger last closed a day.

Choices a lender's operations team should know:

- Early settlement charges the remaining principal, everything overdue, and for the current period
  (the first installment not yet due) interest by ``early_settlement.interest``: ``accrued-to-date``
  charges only the days actually borrowed (never beyond ``as_of``: settling on the drawing date
  costs exactly the principal), ``current-period`` the whole period, ``none`` nothing. Interest of
  later periods is never charged. Flat-fee products (等本等费) treat the current period's fee like
  interest when ``remaining_flat_fees_waived`` (the default), else charge it in full; fees of later
  periods are never charged. A settlement fee of ``fee_rate_of_remaining_principal`` × the principal
  not yet due plus ``flat_fee`` is added.
- Extension keeps all outstanding principal (overdue principal included) and re-amortizes it over
  the periods not yet due plus ``extra_periods``, at the loan's rate and method, from the start of
  the current period (so the first new installment falls due one period after the last due date).
  Overdue interest, fee and penalty stay due at ``as_of``: they are not capitalised.
- Restructuring starts a new schedule on ``as_of`` for the outstanding principal less the haircut,
  plus the overdue interest and fee when ``capitalize_overdue``; otherwise those stay due now.
- A credit balance the loan holds is applied to what is due now (``Quote.credit_applied``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Context, Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from runoff.errors import InvalidInput
from runoff.money import CENT, quantize
from runoff.servicing.apr import Apr, apr_of_schedule
from runoff.servicing.daycount import year_fraction_ratio
from runoff.servicing.delinquency import penalty_due_to_date
from runoff.servicing.position import InstallmentPosition, LoanPosition
from runoff.servicing.product import Component, InterestBasis, Method, Product, SettlementInterest, parse_product
from runoff.servicing.schedule import Installment, Schedule, build_schedule

_CTX = Context(prec=50)
ZERO = Decimal("0.00")  # amounts carry two decimals, zero included
_PLACES = Decimal("1e-24")


class QuoteKind(StrEnum):
    EARLY_SETTLEMENT = "early-settlement"  # 提前结清
    EXTENSION = "extension"  # 展期
    RESTRUCTURE = "restructure"  # 债务重组


@dataclass(frozen=True, slots=True)
class Breakdown:
    """What is due at ``as_of`` by component, after waivers; ``waived`` is what the quote forgives of it."""

    principal: Decimal
    interest: Decimal
    fee: Decimal
    penalty: Decimal
    waived: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest + self.fee + self.penalty


@dataclass(frozen=True, slots=True)
class Quote:
    """A priced offer for one loan as of a date.

    ``total_cost`` is everything the customer pays from ``as_of`` under the quote (due now plus the
    new schedule); ``current_remaining`` the same under the current schedule (every unpaid
    principal, interest and fee plus penalty to date); ``saving`` their difference. ``apr`` is the
    new schedule's APR by IRR; for a settlement, the IRR of the current period's flows (see
    :func:`early_settlement`).
    """

    kind: QuoteKind
    loan_id: str
    as_of: date
    schedule: Schedule
    due_now: Breakdown
    total_cost: Decimal
    current_remaining: Decimal
    apr: Apr | None
    credit_applied: Decimal = ZERO
    forgiven_principal: Decimal = ZERO
    capitalized: Decimal = ZERO  # overdue interest and fee added to the new principal
    capitalized_interest: Decimal = ZERO  # of which interest (booked to interest income when capitalised)
    capitalized_fee: Decimal = ZERO  # of which fee

    @property
    def saving(self) -> Decimal:
        return self.current_remaining - self.total_cost

    @property
    def pay_now(self) -> Decimal:
        """What the customer must bring today: due now less the credit balance applied."""
        return self.due_now.total - self.credit_applied


def early_settlement(
    position: LoanPosition, *, as_of: date, discount: Decimal = ZERO, waive_penalties: bool = False
) -> Quote:
    """Pay everything off on ``as_of`` (提前结清).

    ``discount`` is an amount (not a rate) forgiven on top of any penalty waiver, taken from
    penalty, then fee, then interest, then principal. The quote's schedule is one installment due
    ``as_of`` (its fee column carries fee and penalty: a schedule has no penalty column). Its APR is the IRR of
    what the customer actually pays for the prepayment: lending the principal not yet due at the start of the
    current period and receiving on ``as_of`` (a fraction of a period later) that principal with the current
    period's interest and fees and the settlement fee, less the part of the discount that falls on them (the
    discount reaches them once it has covered the penalty left after any waiver and, component by component, the
    overdue amounts). ``None`` when that is not defined (nothing is left to prepay, or a charge for zero days).
    """
    _check_open(position, as_of)
    _check_cents(discount, "discount")
    product = position.product
    rule = product.early_settlement
    mode = product.rounding.mode
    arrears = _arrears(position, as_of)
    future = position.not_yet_due(as_of)
    remaining_principal = sum((max(i.outstanding(Component.PRINCIPAL), ZERO) for i in future), ZERO)
    interest = fee = ZERO
    period_share = Fraction(0)
    period_start: date | None = None
    if future:
        current = future[0]
        period_start = position.period_start(current)
        period_share = _elapsed_share(position, current, period_start, as_of)
        scheduled_interest = max(current.outstanding(Component.INTEREST), ZERO)
        scheduled_fee = max(current.outstanding(Component.FEE), ZERO)
        if rule.interest is SettlementInterest.ACCRUED_TO_DATE:
            interest = _accrued_interest(position, current, period_start, as_of, period_share)
            interest = min(interest, scheduled_interest)
            fee = quantize(scheduled_fee * _dec(period_share), mode)
        elif rule.interest is SettlementInterest.CURRENT_PERIOD:
            interest, fee = scheduled_interest, scheduled_fee
        if not rule.remaining_flat_fees_waived:
            fee = scheduled_fee
    settlement_fee = quantize(rule.fee_rate_of_remaining_principal * remaining_principal, mode) + rule.flat_fee
    penalty_waived = arrears.penalty if waive_penalties else ZERO
    overdue = Breakdown(
        principal=arrears.principal,
        interest=arrears.interest,
        fee=arrears.fee,
        penalty=arrears.penalty - penalty_waived,
        waived=penalty_waived,
    )
    current_period = Breakdown(principal=remaining_principal, interest=interest, fee=fee + settlement_fee, penalty=ZERO)
    overdue_due, current_due = _discounted(overdue, current_period, discount)
    due = Breakdown(
        principal=overdue_due.principal + current_due.principal,
        interest=overdue_due.interest + current_due.interest,
        fee=overdue_due.fee + current_due.fee,
        penalty=overdue_due.penalty + current_due.penalty,
        waived=overdue_due.waived + current_due.waived,
    )
    schedule = Schedule(
        principal=due.principal,
        start_date=as_of,
        method=product.method,
        periods_per_year=product.periods_per_year,
        installments=(Installment(1, as_of, due.principal, due.interest, due.fee + due.penalty, ZERO, as_of),),
        first_period_index=0,
    )
    apr = None
    if period_start is not None and remaining_principal > 0:
        apr = _apr_over_fraction(remaining_principal, current_due.total, period_share, product.periods_per_year)
    return Quote(
        kind=QuoteKind.EARLY_SETTLEMENT,
        loan_id=position.loan_id,
        as_of=as_of,
        schedule=schedule,
        due_now=due,
        total_cost=due.total,
        current_remaining=_current_remaining(position, as_of),
        apr=apr,
        credit_applied=min(position.credit_balance, due.total).quantize(CENT),
        forgiven_principal=arrears.principal + remaining_principal - due.principal,
    )


def extension(position: LoanPosition, *, as_of: date, extra_periods: int) -> Quote:
    """``extra_periods`` more periods for the outstanding principal (展期), re-amortized at the loan's rate and method."""
    _check_open(position, as_of)
    if isinstance(extra_periods, bool) or not isinstance(extra_periods, int) or not 1 <= extra_periods <= 120:
        raise InvalidInput(
            f"`extra_periods`: {extra_periods!r} is not allowed; expected an integer from 1 to 120",
            field="extra_periods",
        )
    future = position.not_yet_due(as_of)
    start = position.period_start(future[0]) if future else as_of
    principal = position.outstanding_principal
    if principal <= 0:
        raise InvalidInput(
            f"`loan_id`: loan {position.loan_id} has no principal left to extend; expected a loan with principal "
            "outstanding (pay the overdue interest and fees instead)",
            field="loan_id",
        )
    arrears = _arrears(position, as_of)
    product = _reschedule_product(position.product, method=None, grace_periods=0, term=len(future) + extra_periods)
    schedule = build_schedule(
        product,
        principal=principal,
        term=len(future) + extra_periods,
        start_date=start,
        annual_rate=None if product.method is Method.FLAT_FEE else position.contract_annual_rate,
        fee_rate=position.contract_fee_rate if product.method is Method.FLAT_FEE else None,
        grace_periods=0,
    )
    due = Breakdown(principal=ZERO, interest=arrears.interest, fee=arrears.fee, penalty=arrears.penalty)
    return _rescheduled(position, QuoteKind.EXTENSION, as_of, schedule, due)


def restructure(
    position: LoanPosition,
    *,
    as_of: date,
    term: int,
    annual_rate: Decimal | None = None,
    fee_rate: Decimal | None = None,
    waive_penalties: bool = False,
    haircut: Decimal = ZERO,
    grace_periods: int = 0,
    method: Method | None = None,
    capitalize_overdue: bool = False,
) -> Quote:
    """A new schedule from ``as_of`` for the outstanding debt (债务重组).

    ``haircut`` is the fraction of outstanding principal forgiven (0 ≤ haircut < 1); rates and
    method default to the loan's. With ``capitalize_overdue`` the overdue interest and fee join the
    new principal; otherwise they are due now with the (possibly waived) penalty.
    """
    _check_open(position, as_of)
    if isinstance(term, bool) or not isinstance(term, int) or not 1 <= term <= 360:
        raise InvalidInput(f"`term`: {term!r} is not allowed; expected an integer from 1 to 360", field="term")
    if not isinstance(haircut, Decimal | int) or not Decimal(haircut).is_finite() or not 0 <= haircut < 1:
        raise InvalidInput(
            f"`haircut`: {haircut!r} is not allowed; expected a fraction of principal from 0 up to (not including) 1",
            field="haircut",
        )
    if isinstance(grace_periods, bool) or not isinstance(grace_periods, int) or not 0 <= grace_periods < term:
        raise InvalidInput(
            f"`grace_periods`: {grace_periods!r} is not allowed for a term of {term}; expected 0 to {term - 1}",
            field="grace_periods",
        )
    mode = position.product.rounding.mode
    outstanding = position.outstanding_principal
    forgiven = quantize(Decimal(haircut) * outstanding, mode)
    arrears = _arrears(position, as_of)
    capitalized = arrears.interest + arrears.fee if capitalize_overdue else ZERO
    principal = outstanding - forgiven + capitalized
    if principal <= 0:
        raise InvalidInput(
            f"`haircut`: {haircut} leaves no principal to reschedule on loan {position.loan_id} "
            f"(outstanding {outstanding}); expected a smaller haircut or a settlement",
            field="haircut",
        )
    new_method = method or position.product.method
    flat = new_method is Method.FLAT_FEE
    rate = annual_rate if annual_rate is not None else position.contract_annual_rate
    fee = fee_rate if fee_rate is not None else position.contract_fee_rate
    product = _reschedule_product(
        position.product,
        method=new_method,
        grace_periods=grace_periods,
        term=term,
        annual_rate=None if flat else rate,
        fee_rate=fee if flat else None,
    )
    schedule = build_schedule(
        product,
        principal=principal,
        term=term,
        start_date=as_of,
        annual_rate=None if flat else rate,
        fee_rate=fee if flat else None,
        grace_periods=grace_periods,
    )
    penalty_waived = arrears.penalty if waive_penalties else ZERO
    due = Breakdown(
        principal=ZERO,
        interest=ZERO if capitalize_overdue else arrears.interest,
        fee=ZERO if capitalize_overdue else arrears.fee,
        penalty=arrears.penalty - penalty_waived,
        waived=penalty_waived,
    )
    return _rescheduled(
        position,
        QuoteKind.RESTRUCTURE,
        as_of,
        schedule,
        due,
        forgiven=forgiven,
        capitalized_interest=arrears.interest if capitalize_overdue else ZERO,
        capitalized_fee=arrears.fee if capitalize_overdue else ZERO,
    )


def remaining_payable(position: LoanPosition, as_of: date) -> Decimal:
    """Everything unpaid under the current schedule as of ``as_of``: principal, interest, fee and penalty to date."""
    return _current_remaining(position, as_of)


# --- internals ------------------------------------------------------------------------------------


def _check_open(position: LoanPosition, as_of: date) -> None:
    if as_of < position.start_date:
        raise InvalidInput(
            f"`as_of`: {as_of.isoformat()} is before loan {position.loan_id}'s start date "
            f"{position.start_date.isoformat()}; expected a date on or after it",
            field="as_of",
        )
    if position.is_settled:
        raise InvalidInput(
            f"`loan_id`: loan {position.loan_id} is settled; expected a loan with something outstanding",
            field="loan_id",
        )


def _check_cents(amount: Decimal, field: str) -> None:
    if not isinstance(amount, Decimal | int) or not Decimal(amount).is_finite() or amount < 0:
        raise InvalidInput(f"`{field}`: {amount!r} is not allowed; expected an amount 0 or more", field=field)
    if Decimal(amount) != Decimal(amount).quantize(CENT):
        raise InvalidInput(f"`{field}`: {amount} has more than two decimals; expected whole cents", field=field)


def _arrears(position: LoanPosition, as_of: date) -> Breakdown:
    """What installments due on or before ``as_of`` still owe, penalty recomputed to ``as_of``."""
    penalties = {c.number: c.amount for c in penalty_due_to_date(position, as_of)}
    due = position.due_by(as_of)

    def owed(component: Component) -> Decimal:
        return sum((max(i.outstanding(component), ZERO) for i in due), ZERO)

    return Breakdown(
        principal=owed(Component.PRINCIPAL),
        interest=owed(Component.INTEREST),
        fee=owed(Component.FEE),
        penalty=sum((_penalty_left(i, penalties[i.number]) for i in position.installments), ZERO),
    )


def _penalty_left(inst: InstallmentPosition, to_date: Decimal) -> Decimal:
    return max(to_date - inst.penalty_paid - inst.penalty_waived, ZERO)


def _current_remaining(position: LoanPosition, as_of: date) -> Decimal:
    penalties = {c.number: c.amount for c in penalty_due_to_date(position, as_of)}
    return sum((i.outstanding_scheduled + _penalty_left(i, penalties[i.number]) for i in position.installments), ZERO)


def _elapsed_share(position: LoanPosition, current: InstallmentPosition, start: date, as_of: date) -> Fraction:
    """The part of the current period borrowed by ``as_of``: days (by the day count for daily products) over the period."""
    end = current.due_date
    if as_of <= start or end <= start:
        return Fraction(0)
    if position.product.interest_basis is InterestBasis.DAILY:
        convention = position.product.day_count
        whole = year_fraction_ratio(start, end, convention)
        return year_fraction_ratio(start, as_of, convention) / whole if whole else Fraction(0)
    return Fraction((as_of - start).days, (end - start).days)


def _accrued_interest(
    position: LoanPosition, current: InstallmentPosition, start: date, as_of: date, share: Fraction
) -> Decimal:
    """Interest of the current period for the days borrowed: balance × rate × year fraction for daily
    products, the period's interest × elapsed share for period products."""
    mode = position.product.rounding.mode
    rate = position.contract_annual_rate or ZERO
    if position.product.interest_basis is InterestBasis.DAILY and as_of > start:
        later = [i for i in position.installments if i.due_date >= current.due_date]
        balance = sum((max(i.outstanding(Component.PRINCIPAL), ZERO) for i in later), ZERO)
        exact = Fraction(balance) * Fraction(rate) * year_fraction_ratio(start, as_of, position.product.day_count)
        return quantize(_dec(exact), mode)
    return quantize(max(current.outstanding(Component.INTEREST), ZERO) * _dec(share), mode)


def _dec(value: Fraction) -> Decimal:
    return _CTX.divide(Decimal(value.numerator), Decimal(value.denominator))


def _discounted(overdue: Breakdown, current: Breakdown, discount: Decimal) -> tuple[Breakdown, Breakdown]:
    """``overdue`` and ``current`` (the prepaid principal and the current period's charges) less ``discount``, taken
    from penalty, then fee, interest and principal; within a component from the overdue amount first, so the
    discount lowers the settlement's APR only by what it forgives of the current period (a price check never
    understates it). Each part's ``waived`` grows by what the discount forgave of it."""
    total = overdue.total + current.total
    if discount > total:
        raise InvalidInput(
            f"`discount`: {discount} is more than the {total} due; expected 0 to {total}", field="discount"
        )
    left = Decimal(discount)
    after: tuple[dict[str, Decimal], dict[str, Decimal]] = ({}, {})
    for name in ("penalty", "fee", "interest", "principal"):
        for side, part in enumerate((overdue, current)):
            value: Decimal = getattr(part, name)
            take = min(value, left)
            after[side][name] = value - take
            left -= take
    o, c = after
    return (
        Breakdown(**o, waived=overdue.waived + overdue.total - sum(o.values(), ZERO)),
        Breakdown(**c, waived=current.waived + current.total - sum(c.values(), ZERO)),
    )


def _apr_over_fraction(lent: Decimal, repaid: Decimal, periods: Fraction, periods_per_year: int) -> Apr | None:
    """IRR of lending ``lent`` and getting ``repaid`` back ``periods`` (a fraction) later: (repaid/lent)^(1/t) − 1."""
    if periods == 0:
        return Apr(ZERO, ZERO, ZERO, periods_per_year) if repaid == lent else None
    growth = _CTX.power(
        _CTX.divide(repaid, lent), _CTX.divide(Decimal(periods.denominator), Decimal(periods.numerator))
    )
    rate = _CTX.subtract(growth, Decimal(1))
    effective = _CTX.subtract(_CTX.power(growth, periods_per_year), Decimal(1))
    return Apr(
        period_rate=rate.quantize(_PLACES, context=_CTX) + 0,
        nominal=_CTX.multiply(rate, periods_per_year).quantize(_PLACES, context=_CTX) + 0,
        effective=effective.quantize(_PLACES, context=_CTX) + 0,
        periods_per_year=periods_per_year,
    )


def _reschedule_product(
    product: Product,
    *,
    method: Method | None,
    grace_periods: int,
    term: int,
    annual_rate: Decimal | None = None,
    fee_rate: Decimal | None = None,
) -> Product:
    """The loan's product as a re-schedule uses it: no down payment, the given grace, method and price."""
    if method is None or method is product.method:
        updates: dict[str, Any] = {"down_payment": False, "grace_periods": grace_periods, "terms": [term]}
        return product.model_copy(update=updates)
    data = product.model_dump(mode="json")
    data.update(
        method=method.value,
        down_payment=False,
        grace_periods=grace_periods,
        terms=[term],
        annual_rate=None if annual_rate is None else str(annual_rate),
        fee_rate=None if fee_rate is None else str(fee_rate),
    )
    return parse_product(data, source="restructure")


def _rescheduled(
    position: LoanPosition,
    kind: QuoteKind,
    as_of: date,
    schedule: Schedule,
    due: Breakdown,
    *,
    forgiven: Decimal = ZERO,
    capitalized_interest: Decimal = ZERO,
    capitalized_fee: Decimal = ZERO,
) -> Quote:
    return Quote(
        kind=kind,
        loan_id=position.loan_id,
        as_of=as_of,
        schedule=schedule,
        due_now=due,
        total_cost=due.total + schedule.total_payable,
        current_remaining=_current_remaining(position, as_of),
        apr=apr_of_schedule(schedule),
        credit_applied=min(position.credit_balance, due.total).quantize(CENT),
        forgiven_principal=forgiven,
        capitalized=capitalized_interest + capitalized_fee,
        capitalized_interest=capitalized_interest,
        capitalized_fee=capitalized_fee,
    )
