"""Products as data: the terms a loan is written on, validated by pydantic.

A product file (YAML) names the schedule method, the price (an annual interest rate or a
per-period flat fee), the terms offered, how interest accrues, the penalty and early-settlement
rules, the payment allocation order and the rounding. Aliases such as "等额本息" or "annuity"
are normalised to one enum here, at the edge, and nowhere else.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from runoff.calendar import BusinessDayRule, Frequency
from runoff.errors import ProductInvalid, describe_validation_error, field_of_validation_error
from runoff.money import RoundingMode


class Method(StrEnum):
    """Schedule method (还款方式)."""

    EQUAL_INSTALLMENT = "equal-installment"  # 等额本息
    EQUAL_PRINCIPAL = "equal-principal"  # 等额本金
    FLAT_FEE = "flat-fee"  # 等本等费
    INTEREST_ONLY = "interest-only"  # 先息后本


METHOD_ALIASES: dict[str, Method] = {
    "equal-installment": Method.EQUAL_INSTALLMENT,
    "equal_installment": Method.EQUAL_INSTALLMENT,
    "annuity": Method.EQUAL_INSTALLMENT,
    "等额本息": Method.EQUAL_INSTALLMENT,
    "equal-principal": Method.EQUAL_PRINCIPAL,
    "equal_principal": Method.EQUAL_PRINCIPAL,
    "等额本金": Method.EQUAL_PRINCIPAL,
    "flat-fee": Method.FLAT_FEE,
    "flat_fee": Method.FLAT_FEE,
    "flat": Method.FLAT_FEE,
    "等本等费": Method.FLAT_FEE,
    "interest-only": Method.INTEREST_ONLY,
    "interest_only": Method.INTEREST_ONLY,
    "bullet": Method.INTEREST_ONLY,
    "先息后本": Method.INTEREST_ONLY,
}


def parse_method(value: Any) -> Method:
    """The one seam mapping method aliases to :class:`Method`."""
    if isinstance(value, Method):
        return value
    key = str(value).strip().lower()
    if key in METHOD_ALIASES:
        return METHOD_ALIASES[key]
    allowed = ", ".join(m.value for m in Method)
    raise ValueError(
        f"{value!r} is not a schedule method; expected one of {allowed} (or 等额本息, 等额本金, 等本等费, 先息后本)"
    )


class DayCount(StrEnum):
    """Day-count convention for interest that accrues by day."""

    THIRTY_360 = "30/360"
    ACTUAL_365 = "actual/365"
    ACTUAL_ACTUAL = "actual/actual"


class InterestBasis(StrEnum):
    """How period interest is computed.

    ``period``: balance × annual rate / periods a year, every period the same fraction (the usual
    monthly convention). ``daily``: balance × annual rate × days / days in year under the day count.
    """

    PERIOD = "period"
    DAILY = "daily"


class HolidayInterest(StrEnum):
    """Interest for a period lengthened or shortened by a business-day shift (daily products)."""

    ACCRUE_TO_ACTUAL = "accrue-to-actual"  # interest follows the real number of days
    AS_SCHEDULED = "as-scheduled"  # interest as if the due date had not moved


class GraceKind(StrEnum):
    """What the customer pays in a grace period."""

    INTEREST_ONLY = "interest-only"  # interest (and fee) due, no principal
    CAPITALIZE = "capitalize"  # nothing due; interest is added to the balance


class PenaltyBase(StrEnum):
    """What penalty interest (罚息) accrues on."""

    OVERDUE_PRINCIPAL = "overdue-principal"
    OVERDUE_AMOUNT = "overdue-amount"


class Component(StrEnum):
    """A component of an amount due, in the allocation order's vocabulary."""

    PENALTY = "penalty"
    FEE = "fee"
    INTEREST = "interest"
    PRINCIPAL = "principal"


class AllocationScope(StrEnum):
    """``installment-first``: oldest installment fully, in component order, before the next
    (vertical). ``component-first``: each component across all overdue installments, oldest first,
    before the next component (horizontal)."""

    INSTALLMENT_FIRST = "installment-first"
    COMPONENT_FIRST = "component-first"


class Overpayment(StrEnum):
    """What happens to money left after everything due is paid."""

    CREDIT = "credit"  # held as a credit balance against future installments
    PREPAY_PRINCIPAL = "prepay-principal"  # reduces principal, last installments first


class SettlementInterest(StrEnum):
    """Interest owed on early settlement (提前结清), besides the remaining principal."""

    ACCRUED_TO_DATE = "accrued-to-date"  # interest for the days actually borrowed in the current period
    CURRENT_PERIOD = "current-period"  # the whole current period's interest (and fee)
    NONE = "none"  # no interest for the current period


class Rounding(BaseModel):
    """Rounding policy: the mode to the cent and, optionally, installments to a multiple (e.g. whole yuan)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: RoundingMode = RoundingMode.HALF_UP
    multiple_of: Decimal | None = Field(default=None, gt=0, description="round installment totals to this multiple")


class PenaltyRule(BaseModel):
    """Penalty interest per day on overdue amounts, with a cap (违约金/罚息上限)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base: PenaltyBase = PenaltyBase.OVERDUE_PRINCIPAL
    daily_rate: Decimal = Field(default=Decimal("0.0005"), ge=0, le=Decimal("0.01"))
    grace_days: int = Field(default=0, ge=0, le=30)
    cap_rate_of_principal: Decimal | None = Field(
        default=None, ge=0, le=1, description="total penalty over the loan's life ≤ this × original principal"
    )


class EarlySettlementRule(BaseModel):
    """What early settlement (提前结清) costs beyond the remaining principal."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    interest: SettlementInterest = SettlementInterest.ACCRUED_TO_DATE
    fee_rate_of_remaining_principal: Decimal = Field(default=Decimal("0"), ge=0, le=Decimal("0.1"))
    flat_fee: Decimal = Field(default=Decimal("0"), ge=0)
    remaining_flat_fees_waived: bool = Field(
        default=True, description="flat-fee products: fees of future periods are not charged on settlement"
    )


class AllocationRule(BaseModel):
    """Payment allocation order (default: penalty, then fee and interest, then principal, oldest first)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    order: tuple[Component, ...] = (Component.PENALTY, Component.FEE, Component.INTEREST, Component.PRINCIPAL)
    scope: AllocationScope = AllocationScope.INSTALLMENT_FIRST
    overpayment: Overpayment = Overpayment.CREDIT

    @model_validator(mode="after")
    def _order_is_a_permutation(self) -> AllocationRule:
        if sorted(self.order) != sorted(Component):
            allowed = ", ".join(c.value for c in Component)
            raise ValueError(f"order must list each of {allowed} exactly once")
        return self


class Product(BaseModel):
    """A credit product's terms. Rates are fractions: 0.18 is 18 % a year, 0.006 is 0.6 % a period."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    name: str = ""
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    method: Annotated[Method, BeforeValidator(parse_method)]
    annual_rate: Decimal | None = Field(default=None, ge=0, le=Decimal("1"))
    fee_rate: Decimal | None = Field(default=None, ge=0, le=Decimal("0.1"), description="flat fee per period")
    terms: tuple[int, ...] = Field(min_length=1)
    frequency: Frequency = Frequency.MONTHLY
    interest_basis: InterestBasis = InterestBasis.PERIOD
    day_count: DayCount = DayCount.ACTUAL_365
    grace_periods: int = Field(default=0, ge=0, le=24)
    grace_kind: GraceKind = GraceKind.INTEREST_ONLY
    down_payment: bool = Field(default=False, description="first installment due on the drawing date (pay in 4)")
    business_day_rule: BusinessDayRule = BusinessDayRule.NONE
    holiday_country: str = "CN"
    holiday_interest: HolidayInterest = HolidayInterest.ACCRUE_TO_ACTUAL
    rounding: Rounding = Rounding()
    penalty: PenaltyRule = PenaltyRule()
    early_settlement: EarlySettlementRule = EarlySettlementRule()
    allocation: AllocationRule = AllocationRule()
    residual_tolerance: Decimal = Field(
        default=Decimal("1.00"), ge=0, le=Decimal("100"), description="a loan closes when what is left is below this"
    )
    min_principal: Decimal = Field(default=Decimal("1.00"), gt=0)
    max_principal: Decimal = Field(default=Decimal("1000000.00"), gt=0)

    @model_validator(mode="after")
    def _price_matches_method(self) -> Product:
        if self.method is Method.FLAT_FEE:
            if self.fee_rate is None:
                raise ValueError("`fee_rate`: missing; method flat-fee needs a fee rate per period, e.g. 0.006")
            if self.annual_rate not in (None, Decimal(0)):
                raise ValueError(
                    "`annual_rate`: not allowed with method flat-fee, which prices by `fee_rate`; leave it out"
                )
        else:
            if self.annual_rate is None:
                raise ValueError(
                    f"`annual_rate`: missing; method {self.method.value} needs an annual rate (a fraction, e.g. 0.18)"
                )
            if self.fee_rate not in (None, Decimal(0)):
                raise ValueError(
                    f"`fee_rate`: not allowed with method {self.method.value}, which prices by `annual_rate`; leave it out"
                )
        bad = [t for t in self.terms if not 1 <= t <= 360]
        if bad:
            raise ValueError(f"`terms`: {bad} not allowed; expected numbers of periods from 1 to 360")
        if self.grace_periods and any(t <= self.grace_periods for t in self.terms):
            raise ValueError("`grace_periods`: every term must be longer than the grace periods")
        if self.down_payment and self.grace_periods:
            raise ValueError("`down_payment`: cannot be combined with `grace_periods`")
        if self.min_principal > self.max_principal:
            raise ValueError("`min_principal`: above `max_principal`")
        return self

    @property
    def periods_per_year(self) -> int:
        return self.frequency.periods_per_year

    @property
    def period_rate(self) -> Decimal:
        """Contract rate per period: annual rate / periods a year, or the flat fee rate."""
        if self.method is Method.FLAT_FEE:
            return self.fee_rate or Decimal(0)
        return (self.annual_rate or Decimal(0)) / self.periods_per_year


def parse_product(data: Any, *, source: str = "product") -> Product:
    """Validate a mapping (from YAML or JSON) as a :class:`Product`; one clear error naming the field."""
    if not isinstance(data, dict):
        raise ProductInvalid(f"{source}: expected a mapping of product fields, got {type(data).__name__}")
    try:
        return Product.model_validate(data)
    except ValidationError as exc:
        raise ProductInvalid(
            describe_validation_error(exc, source=source), field=field_of_validation_error(exc)
        ) from None


def adhoc_product(
    *,
    method: Method | str,
    term: int,
    annual_rate: Decimal | None = None,
    fee_rate: Decimal | None = None,
    day_count: DayCount = DayCount.ACTUAL_365,
    interest_basis: InterestBasis = InterestBasis.PERIOD,
    rounding: RoundingMode = RoundingMode.HALF_UP,
    multiple_of: Decimal | None = None,
    frequency: Frequency = Frequency.MONTHLY,
    business_day_rule: BusinessDayRule = BusinessDayRule.NONE,
) -> Product:
    """A one-off product built from flags (``runoff schedule --method ...``)."""
    data: dict[str, Any] = {
        "id": "adhoc",
        "method": method,
        "terms": [term],
        "annual_rate": annual_rate,
        "fee_rate": fee_rate,
        "day_count": day_count,
        "interest_basis": interest_basis,
        "rounding": {"mode": rounding, "multiple_of": multiple_of},
        "frequency": frequency,
        "business_day_rule": business_day_rule,
    }
    return parse_product({k: v for k, v in data.items() if v is not None}, source="schedule flags")
