"""Ledger rows of an allocation: its ``allocations`` rows and its journal entry (还款入账分录).

One place for what a payment or spent credit posts, shared by payment posting, the daily close
(credit falling due) and the repost of a backdated payment.
"""

from __future__ import annotations

from typing import Any

from runoff.money import to_minor
from runoff.servicing.allocation import Allocation, FundingSource
from runoff.servicing.product import Component
from runoff.store.ledger.journal import JournalEntry, JournalLine
from runoff.store.ledger.models import AllocationComponent, AllocationSource, EntryKind, LedgerAccount

CREDIT_TO: dict[Component, LedgerAccount] = {
    Component.PRINCIPAL: LedgerAccount.LOANS_RECEIVABLE,
    Component.INTEREST: LedgerAccount.INTEREST_INCOME,
    Component.FEE: LedgerAccount.FEE_INCOME,
    Component.PENALTY: LedgerAccount.PENALTY_RECEIVABLE,
}
"""The income or receivable account each allocated component is credited to."""


def allocation_rows(
    allocation: Allocation, *, loan_id: str, version: int, payment_id: int | None
) -> list[dict[str, Any]]:
    """The ``allocations`` rows of one allocation: one per line, plus one for money held as credit."""
    source = AllocationSource.CREDIT if allocation.source is FundingSource.CREDIT else AllocationSource.PAYMENT
    base = {
        "source": source.value,
        "payment_id": payment_id,
        "loan_id": loan_id,
        "schedule_version": version,
        "value_date": allocation.paid_on,
    }
    rows = [
        {
            **base,
            "installment_number": line.number,
            "component": line.component.value,
            "amount_fen": to_minor(line.amount),
        }
        for line in allocation.lines
    ]
    if allocation.credited > 0:
        rows.append(
            {
                **base,
                "installment_number": None,
                "component": AllocationComponent.CREDIT.value,
                "amount_fen": to_minor(allocation.credited),
            }
        )
    return rows


def allocation_entry(
    allocation: Allocation, *, loan_id: str, version: int, payment_id: int | None, close_id: int | None = None
) -> JournalEntry:
    """The journal entry of one allocation: a payment (Dr cash_clearing) or credit spent (Dr customer_credit)."""
    lines: list[JournalLine] = []
    if allocation.source is FundingSource.CREDIT:
        kind = EntryKind.CREDIT_APPLIED
        lines.append(JournalLine(LedgerAccount.CUSTOMER_CREDIT, debit_fen=to_minor(allocation.amount)))
    else:
        kind = EntryKind.PAYMENT
        lines.append(JournalLine(LedgerAccount.CASH_CLEARING, debit_fen=to_minor(allocation.amount)))
    for component in (Component.PRINCIPAL, Component.INTEREST, Component.FEE, Component.PENALTY):
        amount = to_minor(allocation.total_of(component))
        if amount:
            lines.append(JournalLine(CREDIT_TO[component], credit_fen=amount))
    if allocation.credited > 0:
        lines.append(JournalLine(LedgerAccount.CUSTOMER_CREDIT, credit_fen=to_minor(allocation.credited)))
    return JournalEntry(
        kind=kind,
        value_date=allocation.paid_on,
        lines=tuple(lines),
        loan_id=loan_id,
        payment_id=payment_id if kind is EntryKind.PAYMENT else None,
        schedule_version=version,
        close_id=close_id,
    )
