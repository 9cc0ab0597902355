"""A loan's position (贷款状态) at a moment: its live schedule with what has been paid and charged.

The ledger reads positions from its tables; allocation, delinquency, penalties and quotes are
pure functions of a position and a date. Payments carry their value dates (``dated_payments``)
so that penalty interest and days past due can be recomputed exactly for any day, which is what
makes a backdated payment (a repost) a plain recomputation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from runoff.servicing.product import Component, Product
from runoff.servicing.schedule import Schedule

ZERO = Decimal(0)

SCHEDULED_COMPONENTS: tuple[Component, ...] = (Component.PRINCIPAL, Component.INTEREST, Component.FEE)
"""The components a schedule sets; penalty is charged later, by the day."""


@dataclass(frozen=True, slots=True)
class DatedPayment:
    """Money applied to one component of an installment on its value date (起息日)."""

    paid_on: date
    component: Component
    amount: Decimal


@dataclass(frozen=True, slots=True)
class InstallmentPosition:
    """One installment of the live schedule, with amounts paid and waived so far.

    ``dated_payments`` lists when the paid amounts were paid. Where it accounts for less than
    ``*_paid`` (a tape imported without payment history), the undated remainder is taken as
    paid on or before the due date, i.e. never overdue.
    """

    number: int
    due_date: date
    principal_due: Decimal
    interest_due: Decimal
    fee_due: Decimal
    principal_paid: Decimal = ZERO
    interest_paid: Decimal = ZERO
    fee_paid: Decimal = ZERO
    penalty_accrued: Decimal = ZERO  # penalty charged on this installment so far
    penalty_paid: Decimal = ZERO
    penalty_waived: Decimal = ZERO
    accrual_start: date | None = None
    dated_payments: tuple[DatedPayment, ...] = ()

    def due(self, component: Component) -> Decimal:
        """What this installment asks of ``component`` (penalty: as accrued so far, less waivers)."""
        if component is Component.PRINCIPAL:
            return self.principal_due
        if component is Component.INTEREST:
            return self.interest_due
        if component is Component.FEE:
            return self.fee_due
        return self.penalty_accrued - self.penalty_waived

    def paid(self, component: Component) -> Decimal:
        if component is Component.PRINCIPAL:
            return self.principal_paid
        if component is Component.INTEREST:
            return self.interest_paid
        if component is Component.FEE:
            return self.fee_paid
        return self.penalty_paid

    def outstanding(self, component: Component) -> Decimal:
        """What is still owed of ``component`` on this installment."""
        return self.due(component) - self.paid(component)

    def unpaid_at_end_of(self, component: Component, day: date) -> Decimal:
        """What was still owed of a scheduled ``component`` at the end of ``day`` (payments of ``day`` count)."""
        dated = [p for p in self.dated_payments if p.component is component]
        undated = max(self.paid(component) - sum((p.amount for p in dated), ZERO), ZERO)
        paid_by = undated + sum((p.amount for p in dated if p.paid_on <= day), ZERO)
        return max(self.due(component) - paid_by, ZERO)

    @property
    def outstanding_total(self) -> Decimal:
        return sum((self.outstanding(c) for c in Component), ZERO)

    @property
    def outstanding_scheduled(self) -> Decimal:
        """Principal, interest and fee still owed (penalty excluded)."""
        return sum((self.outstanding(c) for c in SCHEDULED_COMPONENTS), ZERO)

    @property
    def is_settled(self) -> bool:
        return self.outstanding_total <= 0


@dataclass(frozen=True, slots=True)
class LoanPosition:
    """A loan as servicing sees it: product, amount lent, live schedule version and balances.

    ``penalty_charged_total`` is the loan's lifetime penalty including what the live installments
    carry in ``penalty_accrued`` (and what earlier schedule versions charged); the penalty cap
    reads it.
    """

    loan_id: str
    product: Product
    principal: Decimal  # amount lent (original principal of the live schedule's base)
    start_date: date
    installments: tuple[InstallmentPosition, ...]
    schedule_version: int = 1
    credit_balance: Decimal = ZERO  # overpayment held for future installments
    penalty_charged_total: Decimal = ZERO  # lifetime penalty charged, for the cap
    annual_rate: Decimal | None = None  # the live schedule's rate when it differs from the product's
    fee_rate: Decimal | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def outstanding_principal(self) -> Decimal:
        # principal_due − principal_paid is outstanding(PRINCIPAL), without its dispatch: read once per payment.
        return sum((i.principal_due - i.principal_paid for i in self.installments), ZERO)

    @property
    def is_settled(self) -> bool:
        """Nothing scheduled or charged is left to pay."""
        return all(i.is_settled for i in self.installments)

    @property
    def contract_annual_rate(self) -> Decimal | None:
        """The live schedule's annual rate: the position's own, else the product's."""
        return self.annual_rate if self.annual_rate is not None else self.product.annual_rate

    @property
    def contract_fee_rate(self) -> Decimal | None:
        """The live schedule's flat fee rate per period: the position's own, else the product's."""
        return self.fee_rate if self.fee_rate is not None else self.product.fee_rate

    def overdue(self, as_of: date) -> tuple[InstallmentPosition, ...]:
        """Installments due before ``as_of`` with something unpaid (due today is not yet overdue)."""
        return tuple(i for i in self.installments if i.due_date < as_of and not i.is_settled)

    def due_by(self, day: date) -> tuple[InstallmentPosition, ...]:
        """Installments due on or before ``day`` (what a payment on ``day`` may settle), oldest first."""
        return tuple(i for i in self.installments if i.due_date <= day)

    def not_yet_due(self, day: date) -> tuple[InstallmentPosition, ...]:
        """Installments falling due after ``day``, oldest first."""
        return tuple(i for i in self.installments if i.due_date > day)

    def period_start(self, installment: InstallmentPosition) -> date:
        """First day of the period whose interest ``installment`` carries."""
        if installment.accrual_start is not None:
            return installment.accrual_start
        previous = [i.due_date for i in self.installments if i.due_date < installment.due_date]
        return max(previous) if previous else self.start_date


def open_position(
    loan_id: str,
    product: Product,
    schedule: Schedule,
    *,
    annual_rate: Decimal | None = None,
    fee_rate: Decimal | None = None,
    schedule_version: int = 1,
) -> LoanPosition:
    """The position of a loan just drawn (or just re-scheduled) on ``schedule``: nothing paid yet."""
    return LoanPosition(
        loan_id=loan_id,
        product=product,
        principal=schedule.principal,
        start_date=schedule.start_date,
        installments=tuple(
            InstallmentPosition(
                number=i.number,
                due_date=i.due_date,
                principal_due=i.principal,
                interest_due=i.interest,
                fee_due=i.fee,
                accrual_start=i.accrual_start,
            )
            for i in schedule.installments
        ),
        schedule_version=schedule_version,
        annual_rate=annual_rate,
        fee_rate=fee_rate,
    )
