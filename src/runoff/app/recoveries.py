"""Recoveries (核销后回收): money received on a charged-off loan, often through a collection agency.

:func:`post_recovery` in one transaction, idempotent by the caller's key:

1. refuse before anything is written: a bad amount or key, an unknown loan, a loan not charged off (money on
   an open loan is a payment: ``runoff pay``), a value date before the charge-off, and **more than the
   contractual debt** (principal, interest, fee and penalty still owed): a charged-off loan holds no credit
   balance and the excess belongs to the payer, so it is refused rather than kept;
2. the key shares the payments' key space (a ``payments`` row of kind ``recovery``): the same key, loan,
   amount and value date replays the first result, anything else under it is refused;
3. the money is allocated against the installments in the product's order and scope — every installment,
   due or not, since the whole debt is owed once charged off — as ``allocations`` rows, so the contractual
   debt goes down and ``ledger verify``'s "allocations sum to the payment" holds;
4. one ``recovery`` entry: Dr cash_clearing / Cr recoveries. The receivables were written off, so nothing else
   moves: the whole amount is recovered loss, whatever component it paid;
5. the installments' paid columns and the loan's contractual position (outstanding principal, oldest unpaid
   due date, overdue amounts; DPD and bucket stay as on the charge-off date); an audit record
   ``recovery.posted``. The loan stays ``charged-off`` when the debt is fully recovered.

A recovery can be reversed (:func:`runoff.app.reversals.reverse_payment`). :func:`contractual_debt` reads what
a loan still owes by contract beside what its books hold.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from runoff.app.charge_offs import audit_row, check_key, in_transaction, last_value_date
from runoff.app.payments import remaining
from runoff.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from runoff.money import from_minor, parse_amount
from runoff.servicing.allocation import AllocationLine, allocate, apply_allocation
from runoff.servicing.position import ZERO, LoanPosition
from runoff.servicing.product import Component
from runoff.store.ledger import postings
from runoff.store.ledger.journal import EntryBuilder, post_entries
from runoff.store.ledger.models import (
    AllocationComponent,
    EntryKind,
    LedgerAccount,
    LoanStatus,
    PaymentKind,
    PaymentStatus,
    allocations,
    charge_offs,
    journal_entries,
    payments,
)
from runoff.store.ledger.repository import LoanRecord, fen_of
from runoff.store.ledger.repost import installment_columns, loan_position_columns
from runoff.store.ledger.sequences import reserve_id_blocks
from runoff.store.ledger.unit_of_work import UnitOfWork

# --- recovery --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecoveryResult:
    """Money received on a charged-off loan and the installments it reduced.

    ``owed_after``: the contractual debt left (principal, interest, fee and penalty) after this
    recovery; for a replay from an earlier transaction, as it stands now.
    """

    payment_id: int
    loan_id: str
    amount: Decimal
    value_date: date
    idempotency_key: str
    lines: tuple[AllocationLine, ...]
    owed_after: Decimal
    entry_id: int | None = None
    replayed: bool = False

    @property
    def fully_recovered(self) -> bool:
        return self.owed_after == 0

    def total_of(self, component: Component) -> Decimal:
        return sum((line.amount for line in self.lines if line.component is component), ZERO)

    def to_dict(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "kind": PaymentKind.RECOVERY.value,
            "loan_id": self.loan_id,
            "amount": str(self.amount),
            "value_date": self.value_date.isoformat(),
            "idempotency_key": self.idempotency_key,
            "allocations": [line.to_dict() for line in self.lines],
            "owed_after": str(self.owed_after),
            "fully_recovered": self.fully_recovered,
            "replayed": self.replayed,
        }


def post_recovery(
    loan_id: str,
    amount: Decimal | str | int,
    *,
    value_date: date,
    idempotency_key: str,
    actor: str,
    uow: UnitOfWork,
) -> RecoveryResult:
    """Record ``amount`` received on charged-off ``loan_id`` (核销后回收), atomically and idempotently.

    The key shares the payments' key space: the same key, loan, amount and value date replays the
    first result; anything else under that key (a payment, another recovery) is refused.
    """
    value = parse_amount(amount)
    check_key(idempotency_key)
    if not isinstance(value_date, date):
        raise InvalidInput(f"`value_date`: {value_date!r} is not a date", field="value_date")
    return in_transaction(
        uow, lambda: _post_recovery(uow, loan_id, value, value_date=value_date, key=idempotency_key, actor=actor)
    )


def _post_recovery(
    uow: UnitOfWork, loan_id: str, amount: Decimal, *, value_date: date, key: str, actor: str
) -> RecoveryResult:
    ledger = uow.ledger
    conn = uow.connection
    now = uow.now()
    record = ledger.loan(loan_id, lock=True)
    if record is None:
        raise NotFound(f"`loan`: no loan {loan_id!r} in the ledger", field="loan")
    first = conn.execute(
        select(payments.c.id, payments.c.loan_id, payments.c.amount_fen, payments.c.value_date, payments.c.kind).where(
            payments.c.idempotency_key == key
        )
    ).first()
    if first is not None:
        same = (first.kind, first.loan_id, first.amount_fen, first.value_date) == (
            PaymentKind.RECOVERY.value,
            loan_id,
            fen_of(amount),
            value_date,
        )
        if not same:
            raise IdempotencyConflict(
                f"`idempotency_key`: {key!r} was already used for a {first.kind} of {from_minor(first.amount_fen)} "
                f"on loan {first.loan_id} value {first.value_date.isoformat()}; this request is a recovery of "
                f"{amount} on loan {loan_id} value {value_date.isoformat()}. Use a new key for different money",
                field="idempotency_key",
                details={"idempotency_key": key},
            )
        return _recovery_replay(uow, int(first.id))
    if record.status != LoanStatus.CHARGED_OFF.value:
        what = (
            "post money on an open loan as a payment (runoff pay)"
            if record.status == LoanStatus.OPEN.value
            else "nothing is owed on it"
        )
        raise Conflict(
            f"`loan`: {loan_id} is {record.status}; a recovery is money received on a charged-off loan: {what}",
            field="loan",
        )
    charged_off_on = record.closed_on or record.start_date
    if value_date < charged_off_on:
        raise InvalidInput(
            f"`value_date`: {value_date.isoformat()} is before loan {loan_id} was charged off on "
            f"{charged_off_on.isoformat()}; a recovery is money received after the charge-off",
            field="value_date",
        )
    position = ledger.positions([record])[loan_id]
    owed = remaining(position)
    if amount > owed:
        raise InvalidInput(
            f"`amount`: {amount} is more than the {owed} loan {loan_id} still owes by contract (principal, "
            f"interest, fee and penalty); record at most {owed} and return the rest to the payer",
            field="amount",
        )
    # Everything is owed once the loan is charged off: allocate as if every installment were due, in the
    # product's order and scope, then date the allocation on the day the money came.
    everything_due = max((i.due_date for i in position.installments), default=value_date)
    allocation = replace(
        allocate(position, amount, paid_on=max(value_date, everything_due, position.start_date)), paid_on=value_date
    )
    if allocation.credited or allocation.prepaid_principal:  # pragma: no cover - amount <= owed rules it out
        raise AssertionError(f"recovery of {amount} on {loan_id} left {allocation.credited} unallocated")
    version = record.schedule_version
    ids = reserve_id_blocks(conn, {payments: 1, journal_entries: 1})
    (payment_id,) = ids[payments.name]
    ledger.insert_payments(
        [
            {
                "id": payment_id,
                "loan_id": loan_id,
                "amount_fen": fen_of(amount),
                "value_date": value_date,
                "received_at": now,
                "idempotency_key": key,
                "status": PaymentStatus.POSTED.value,
                "actor": actor,
                "schedule_version": version,
                "kind": PaymentKind.RECOVERY.value,
            }
        ]
    )
    ledger.insert_allocations(
        postings.allocation_rows(allocation, loan_id=loan_id, version=version, payment_id=payment_id)
    )
    entry = (
        EntryBuilder(EntryKind.RECOVERY, value_date, loan_id=loan_id, payment_id=payment_id, schedule_version=version)
        .debit(LedgerAccount.CASH_CLEARING, fen_of(amount))
        .credit(LedgerAccount.RECOVERIES, fen_of(amount))
        .build()
    )
    (entry_id,) = post_entries(conn, [entry], actor=actor, posted_at=now, ids=ids[journal_entries.name])
    after = apply_allocation(position, allocation)
    write_charged_off_position(uow, record, after, touched={line.number for line in allocation.lines})
    owed_after = remaining(after)
    ledger.append_audit(
        [
            audit_row(
                uow,
                actor,
                "recovery.posted",
                "payment",
                str(payment_id),
                {
                    "loan_id": loan_id,
                    "amount": str(amount),
                    "value_date": value_date.isoformat(),
                    "idempotency_key": key,
                    "owed_after": str(owed_after),
                },
            )
        ]
    )
    return RecoveryResult(
        payment_id=payment_id,
        loan_id=loan_id,
        amount=amount,
        value_date=value_date,
        idempotency_key=key,
        lines=allocation.lines,
        owed_after=owed_after,
        entry_id=entry_id,
    )


def write_charged_off_position(
    uow: UnitOfWork, record: LoanRecord, position: LoanPosition, *, touched: set[int]
) -> None:
    """Write back a charged-off loan's installments ``touched`` and its contractual position.

    DPD and bucket stay as they were on the charge-off date; the outstanding principal, oldest unpaid
    due date and overdue amounts follow the installments, so ``ledger verify`` reconciles them.
    """
    ledger = uow.ledger
    rows = ledger.installments_of([(record.id, record.schedule_version)])[(record.id, record.schedule_version)]
    by_number = {row.number: row for row in rows}
    ledger.update_installments(
        [installment_columns(by_number[inst.number], inst) for inst in position.installments if inst.number in touched]
    )
    columns = loan_position_columns(position, as_of=record.closed_on or record.start_date)
    ledger.update_loans(
        [
            {
                "id": record.id,
                "outstanding_principal_fen": columns["outstanding_principal_fen"],
                "oldest_unpaid_due_date": columns["oldest_unpaid_due_date"],
                "overdue_principal_fen": columns["overdue_principal_fen"],
                "overdue_amount_fen": columns["overdue_amount_fen"],
                "last_value_date": last_value_date(uow.connection, record.id),
                "updated_at": uow.now(),
            }
        ]
    )


def _recovery_replay(uow: UnitOfWork, payment_id: int) -> RecoveryResult:
    """The result of a recovery posted by an earlier transaction, rebuilt from its rows."""
    conn = uow.connection
    rec = conn.execute(select(payments).where(payments.c.id == payment_id)).mappings().one()
    lines = tuple(
        AllocationLine(int(a.installment_number), Component(a.component), from_minor(a.amount_fen))
        for a in conn.execute(
            select(allocations.c.installment_number, allocations.c.component, allocations.c.amount_fen)
            .where(allocations.c.payment_id == payment_id, allocations.c.component != AllocationComponent.CREDIT.value)
            .order_by(allocations.c.id)
        )
    )
    entry_id = conn.execute(
        select(func.min(journal_entries.c.id)).where(
            journal_entries.c.payment_id == payment_id, journal_entries.c.kind == EntryKind.RECOVERY.value
        )
    ).scalar_one()
    loan = uow.ledger.require_loan(rec["loan_id"])
    return RecoveryResult(
        payment_id=payment_id,
        loan_id=rec["loan_id"],
        amount=from_minor(rec["amount_fen"]),
        value_date=rec["value_date"],
        idempotency_key=rec["idempotency_key"],
        lines=lines,
        owed_after=remaining(uow.ledger.positions([loan])[loan.id]),
        entry_id=None if entry_id is None else int(entry_id),
        replayed=True,
    )


# --- reading a charged-off loan's debt -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContractualDebt:
    """What a loan still owes by contract (for collections), beside what its books hold.

    For a charged-off loan the books hold nothing (the receivables were written off) while the
    customer still owes ``total``; ``written_off`` and ``recovered`` are what left the books and
    what came back since.
    """

    loan_id: str
    status: str
    principal: Decimal
    interest: Decimal
    fee: Decimal
    penalty: Decimal
    written_off: Decimal
    recovered: Decimal
    charged_off_on: date | None

    @property
    def total(self) -> Decimal:
        return self.principal + self.interest + self.fee + self.penalty

    def to_dict(self) -> dict[str, Any]:
        return {
            "loan_id": self.loan_id,
            "status": self.status,
            "principal": str(self.principal),
            "interest": str(self.interest),
            "fee": str(self.fee),
            "penalty": str(self.penalty),
            "total": str(self.total),
            "written_off": str(self.written_off),
            "recovered": str(self.recovered),
            "charged_off_on": self.charged_off_on.isoformat() if self.charged_off_on else None,
        }


def contractual_debt(loan_id: str, *, uow: UnitOfWork) -> ContractualDebt:
    """What ``loan_id`` owes by contract on its live installments (due or not), written off and recovered."""
    with uow:
        ledger = uow.ledger
        record = ledger.require_loan(loan_id)
        position = ledger.positions([record])[loan_id]
        conn = uow.connection
        co = conn.execute(
            select(charge_offs.c.principal_fen, charge_offs.c.penalty_fen, charge_offs.c.as_of).where(
                charge_offs.c.loan_id == loan_id
            )
        ).first()
        recovered = conn.execute(
            select(func.coalesce(func.sum(payments.c.amount_fen), 0)).where(
                payments.c.loan_id == loan_id,
                payments.c.kind == PaymentKind.RECOVERY.value,
                payments.c.status == PaymentStatus.POSTED.value,
            )
        ).scalar_one()

    def owed(component: Component) -> Decimal:
        return sum((max(i.outstanding(component), ZERO) for i in position.installments), ZERO)

    return ContractualDebt(
        loan_id=loan_id,
        status=record.status,
        principal=owed(Component.PRINCIPAL),
        interest=owed(Component.INTEREST),
        fee=owed(Component.FEE),
        penalty=owed(Component.PENALTY),
        written_off=from_minor(co.principal_fen + co.penalty_fen) if co else ZERO,
        recovered=from_minor(int(recovered)),
        charged_off_on=co.as_of if co else None,
    )
