"""Repayment schedules (还款计划) in exact Decimal: the one schedule engine of runoff.

Quotes, restructuring, the ledger, the vectorized path's tests and the ABS pool all build their
schedules here. Every schedule repays exactly the principal lent: rounding leftovers go to the
last installment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from runoff.servicing.product import Method


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

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest + self.fee


@dataclass(frozen=True, slots=True)
class Schedule:
    """A whole repayment plan: the amount lent on ``start_date`` and its installments."""

    principal: Decimal
    start_date: date
    method: Method
    periods_per_year: int
    installments: tuple[Installment, ...]

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
