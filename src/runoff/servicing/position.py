"""A loan's position (贷款状态) at a moment: its live schedule with what has been paid and charged.

The ledger reads positions from its tables; allocation, delinquency, penalties and quotes are
pure functions of a position and a date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from runoff.servicing.product import Component, Product

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class InstallmentPosition:
    """One installment of the live schedule, with amounts paid and waived so far."""

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

    def outstanding(self, component: Component) -> Decimal:
        """What is still owed of ``component`` on this installment."""
        if component is Component.PRINCIPAL:
            return self.principal_due - self.principal_paid
        if component is Component.INTEREST:
            return self.interest_due - self.interest_paid
        if component is Component.FEE:
            return self.fee_due - self.fee_paid
        return self.penalty_accrued - self.penalty_paid - self.penalty_waived

    @property
    def outstanding_total(self) -> Decimal:
        return sum((self.outstanding(c) for c in Component), ZERO)

    @property
    def is_settled(self) -> bool:
        return self.outstanding_total <= 0


@dataclass(frozen=True, slots=True)
class LoanPosition:
    """A loan as servicing sees it: product, amount lent, live schedule version and balances."""

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
        return sum((i.outstanding(Component.PRINCIPAL) for i in self.installments), ZERO)

    def overdue(self, as_of: date) -> tuple[InstallmentPosition, ...]:
        """Installments due before ``as_of`` with something unpaid (due today is not yet overdue)."""
        return tuple(i for i in self.installments if i.due_date < as_of and not i.is_settled)
