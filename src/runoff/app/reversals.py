"""Payment reversal (冲正 / 退票): a payment that bounced or was posted to the wrong loan is taken back.

:func:`reverse_payment` in one transaction, idempotent by the caller's key:

1. refuse before anything is written: an empty or over-128-character key or reason, an unknown payment,
   a payment already reversed (under another key: the same key replays the first result), a payment
   on a charged-off loan (the charge-off fixed what was written off; reverse the charge-off's effect with
   finance instead — only recoveries can be reversed on a charged-off loan), a payment allocated under a
   schedule version that is no longer live (reverse the re-schedule first);
2. the payment becomes ``reversed`` (``reversed_at``, ``reversal_reason``, ``reversal_key``); its
   allocations are marked reversed (``reversal_ref``) and taken off the installments' paid columns, what it
   held as credit comes off the loan's credit balance;
3. every journal entry it caused and that stands — its ``payment`` entry (or the one a repost re-posted),
   its residual-sweep ``waiver`` — is mirrored by a ``reversal`` entry on that entry's own value date;
4. a loan the payment (or a later one) closed is **reopened**: a residual sweep is undone (its waivers
   and its ``waiver`` entry), since the loan is no longer within the tolerance;
5. the loan is reposted from the payment's value date with its remaining payments
   (:func:`runoff.store.ledger.repost.repost_loans`): allocations, credit spent and penalties are what they
   would have been had the payment never arrived, and the repost's own mirrors keep the journal's history;
6. an audit record ``payment.reversed`` (and ``loan.reopened``).

A **recovery** (money on a charged-off loan) is reversed the same way without a repost: its allocations
come off the installments (the contractual debt is owed again), its ``recovery`` entry is mirrored (Dr
recoveries, Cr cash_clearing). Other recoveries keep their allocations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, bindparam, not_, select, update

from runoff.app.charge_offs import audit_row, check_key, check_reason, in_transaction, last_value_date
from runoff.app.recoveries import write_charged_off_position
from runoff.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound
from runoff.money import from_minor, to_minor
from runoff.servicing.product import Component, Overpayment
from runoff.servicing.schedule import build_schedule
from runoff.store.ledger.journal import load_entries, post_entries, reversal_of
from runoff.store.ledger.models import (
    AllocationComponent,
    EntryKind,
    LedgerAccount,
    LoanStatus,
    PaymentKind,
    PaymentStatus,
    allocations,
    audit_log,
    journal_entries,
    payments,
)
from runoff.store.ledger.repository import LoanRecord
from runoff.store.ledger.repost import repost_loans
from runoff.store.ledger.unit_of_work import UnitOfWork

RESIDUAL_SWEPT = "residual-swept"
"""``loans.close_reason`` of a loan closed by a payment's residual sweep (``runoff.app.payments``)."""

_PAID = {
    Component.PRINCIPAL.value: "principal_paid_fen",
    Component.INTEREST.value: "interest_paid_fen",
    Component.FEE.value: "fee_paid_fen",
    Component.PENALTY.value: "penalty_paid_fen",
}
_WAIVED = ("principal_waived_fen", "interest_waived_fen", "fee_waived_fen", "penalty_waived_fen")


@dataclass(frozen=True, slots=True)
class ReversalResult:
    """A payment (or recovery) reversed: what was undone, and the loan after.

    ``reposted_from``: the date the loan was re-allocated from (None for a recovery); ``reopened``: the loan
    was closed and is open again; ``sweep_undone``: the residual sweep taken back. ``loan_status`` and
    ``outstanding_principal`` are the loan's now. ``replayed``: the key was used before and this is that result.
    """

    payment_id: int
    loan_id: str
    kind: str
    amount: Decimal
    value_date: date
    reason: str
    idempotency_key: str
    entries_reversed: int
    allocations_reversed: int
    reposted_from: date | None
    reopened: bool
    sweep_undone: Decimal
    loan_status: str
    outstanding_principal: Decimal
    replayed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "loan_id": self.loan_id,
            "kind": self.kind,
            "amount": str(self.amount),
            "value_date": self.value_date.isoformat(),
            "reason": self.reason,
            "idempotency_key": self.idempotency_key,
            "entries_reversed": self.entries_reversed,
            "allocations_reversed": self.allocations_reversed,
            "reposted_from": self.reposted_from.isoformat() if self.reposted_from else None,
            "reopened": self.reopened,
            "sweep_undone": str(self.sweep_undone),
            "loan_status": self.loan_status,
            "outstanding_principal": str(self.outstanding_principal),
            "replayed": self.replayed,
        }


def reverse_payment(
    payment_id: int, *, reason: str, idempotency_key: str, actor: str, uow: UnitOfWork
) -> ReversalResult:
    """Reverse ``payment_id`` (a payment or a recovery), atomically and idempotently; refusals write nothing."""
    if isinstance(payment_id, bool) or not isinstance(payment_id, int) or payment_id < 1:
        raise InvalidInput(f"`payment`: {payment_id!r} is not a payment id; expected a whole number", field="payment")
    check_key(idempotency_key)
    check_reason(reason)
    return in_transaction(uow, lambda: _reverse(uow, payment_id, reason=reason, key=idempotency_key, actor=actor))


def _payment_row(uow: UnitOfWork, **where: Any) -> dict[str, Any] | None:
    query = select(payments)
    for name, value in where.items():
        query = query.where(payments.c[name] == value)
    row = uow.connection.execute(query).mappings().first()
    return None if row is None else dict(row)


def _reverse(uow: UnitOfWork, payment_id: int, *, reason: str, key: str, actor: str) -> ReversalResult:
    done = _payment_row(uow, reversal_key=key)
    if done is not None:
        if (done["id"], done["reversal_reason"]) != (payment_id, reason):
            raise IdempotencyConflict(
                f"`idempotency_key`: {key!r} was already used to reverse payment {done['id']} "
                f"({done['reversal_reason']}); this request reverses payment {payment_id} ({reason}). "
                "Use a new key for a different reversal",
                field="idempotency_key",
                details={"idempotency_key": key},
            )
        return _replay(uow, done)
    found = _payment_row(uow, id=payment_id)
    if found is None:
        raise NotFound(f"`payment`: no payment {payment_id} in the ledger", field="payment")
    record = uow.ledger.require_loan(found["loan_id"], lock=True)
    payment = _payment_row(uow, id=payment_id)  # again, under the loan's lock
    assert payment is not None
    if payment["status"] == PaymentStatus.REVERSED.value:
        raise Conflict(
            f"`payment`: {payment_id} was already reversed on {payment['reversed_at']:%Y-%m-%d} "
            f"(key {payment['reversal_key']!r}: {payment['reversal_reason']}); there is nothing left to reverse",
            field="payment",
        )
    if payment["kind"] == PaymentKind.RECOVERY.value:
        return _reverse_recovery(uow, payment, record, reason=reason, key=key, actor=actor)
    if record.status == LoanStatus.CHARGED_OFF.value:
        raise Conflict(
            f"`payment`: {payment_id} was received on loan {record.id} before it was charged off on "
            f"{record.closed_on}; reversing it would change what was written off. Only recoveries can be "
            "reversed on a charged-off loan: have finance book the bounced amount as a further loss "
            "(Dr write_offs, Cr cash_clearing) and pursue it with the rest of the debt",
            field="payment",
        )
    if payment["schedule_version"] != record.schedule_version:
        raise Conflict(
            f"`payment`: {payment_id} was allocated under schedule version {payment['schedule_version']} of loan "
            f"{record.id}, which has been re-scheduled since (version {record.schedule_version} is live); "
            "reverse the re-schedule first",
            field="payment",
        )
    return _reverse_on_open_loan(uow, payment, record, reason=reason, key=key, actor=actor)


# --- the parts both kinds share ---------------------------------------------------------------------------------------


def _standing_entries(uow: UnitOfWork, *, payment_id: int, kinds: tuple[EntryKind, ...]) -> list[int]:
    """Ids of ``payment_id``'s entries of ``kinds`` that no entry reverses yet, in id order."""
    je = journal_entries
    reversed_already = select(je.c.reverses_entry_id).where(
        je.c.payment_id == payment_id, je.c.reverses_entry_id.is_not(None)
    )
    return [
        int(i)
        for i in uow.connection.execute(
            select(je.c.id)
            .where(
                and_(
                    je.c.payment_id == payment_id,
                    je.c.kind.in_([k.value for k in kinds]),
                    not_(je.c.id.in_(reversed_already)),
                )
            )
            .order_by(je.c.id)
        ).scalars()
    ]


def _mirror(uow: UnitOfWork, entry_ids: list[int], *, memo: str, actor: str) -> int:
    originals = load_entries(uow.connection, entry_ids)
    mirrors = [
        reversal_of(entry_id, originals[entry_id], value_date=originals[entry_id].value_date, memo=memo)
        for entry_id in entry_ids
    ]
    post_entries(uow.connection, mirrors, actor=actor, posted_at=uow.now())
    return len(mirrors)


def _take_back_allocations(
    uow: UnitOfWork, payment: dict[str, Any], rows: dict[int, dict[str, Any]], *, ref: str
) -> tuple[int, int, set[int]]:
    """Mark the payment's standing allocations reversed and take them off ``rows`` (installment columns by number).

    Returns (allocations reversed, fen that was held as credit, installments touched).
    """
    conn = uow.connection
    standing = conn.execute(
        select(allocations.c.id, allocations.c.installment_number, allocations.c.component, allocations.c.amount_fen)
        .where(allocations.c.payment_id == payment["id"], allocations.c.reversed.is_(False))
        .order_by(allocations.c.id)
    ).all()
    credited = 0
    touched: set[int] = set()
    for a in standing:
        if a.component == AllocationComponent.CREDIT.value:
            credited += int(a.amount_fen)
            continue
        row = rows[int(a.installment_number)]
        row[_PAID[a.component]] -= int(a.amount_fen)
        row["settled_on"] = None
        touched.add(int(a.installment_number))
    if standing:
        conn.execute(
            update(allocations).where(allocations.c.id == bindparam("b_id")).values(reversed=True, reversal_ref=ref),
            [{"b_id": a.id} for a in standing],
        )
    return len(standing), credited, touched


def _mark_reversed(uow: UnitOfWork, payment_id: int, *, reason: str, key: str) -> None:
    uow.connection.execute(
        update(payments)
        .where(payments.c.id == payment_id)
        .values(status=PaymentStatus.REVERSED.value, reversed_at=uow.now(), reversal_reason=reason, reversal_key=key)
    )


def _row_dicts(uow: UnitOfWork, record: LoanRecord) -> dict[int, dict[str, Any]]:
    key = (record.id, record.schedule_version)
    return {r.number: r._asdict() for r in uow.ledger.installments_of([key])[key]}


def _write_rows(uow: UnitOfWork, rows: dict[int, dict[str, Any]], numbers: set[int]) -> None:
    uow.ledger.update_installments(
        [{k: v for k, v in rows[n].items() if k not in ("due_date", "accrual_start")} for n in sorted(numbers)]
    )


# --- a payment on an open (or closed) loan ----------------------------------------------------------------------------


def _reverse_on_open_loan(
    uow: UnitOfWork, payment: dict[str, Any], record: LoanRecord, *, reason: str, key: str, actor: str
) -> ReversalResult:
    ledger = uow.ledger
    payment_id = int(payment["id"])
    loan_id = record.id
    rows = _row_dicts(uow, record)
    touched: set[int] = set()
    memo = f"reverses payment {payment_id}: {reason}"[:200]

    # A loan closed by a residual sweep is not within the tolerance any more: the sweep is undone first.
    entries_reversed = 0
    sweep_undone = 0
    if record.status == LoanStatus.CLOSED.value and record.close_reason == RESIDUAL_SWEPT:
        sweep_undone, sweeper, waiver_entries = _undo_sweep(uow, record, rows)
        touched |= set(rows)
        entries_reversed += _mirror(uow, waiver_entries, memo=f"{memo} (residual sweep undone)", actor=actor)
        if sweeper != payment_id:
            uow.connection.execute(update(payments).where(payments.c.id == sweeper).values(waived_fen=0))

    if payment["prepaid_principal_fen"]:
        touched |= _restore_written_dues(uow, record, rows)
    n_allocations, credited, paid_back = _take_back_allocations(
        uow, payment, rows, ref=f"reversal of payment {payment_id}"
    )
    touched |= paid_back
    entries_reversed += _mirror(
        uow,
        _standing_entries(uow, payment_id=payment_id, kinds=(EntryKind.PAYMENT, EntryKind.WAIVER)),
        memo=memo,
        actor=actor,
    )
    _mark_reversed(uow, payment_id, reason=reason, key=key)
    _write_rows(uow, rows, touched)
    ledger.update_loans(
        [
            {
                "id": loan_id,
                "status": LoanStatus.OPEN.value,
                "closed_on": None,
                "close_reason": None,
                "credit_balance_fen": record.credit_balance_fen - credited,
                "last_value_date": last_value_date(uow.connection, loan_id),
                "updated_at": uow.now(),
            }
        ]
    )
    (repost,) = repost_loans(ledger, [loan_id], actor=actor, now=uow.now(), from_date=payment["value_date"])
    after = ledger.require_loan(loan_id)
    reopened = record.status == LoanStatus.CLOSED.value and after.status == LoanStatus.OPEN.value
    details = {
        "loan_id": loan_id,
        "kind": PaymentKind.PAYMENT.value,
        "amount": str(from_minor(payment["amount_fen"])),
        "value_date": payment["value_date"].isoformat(),
        "reason": reason,
        "idempotency_key": key,
        "entries_reversed": entries_reversed,
        "allocations_reversed": n_allocations,
        "reposted_from": repost.reposted_from.isoformat(),
        "reopened": reopened,
        "sweep_undone": str(from_minor(sweep_undone)),
    }
    audit = [audit_row(uow, actor, "payment.reversed", "payment", str(payment_id), details)]
    if reopened:
        audit.append(
            audit_row(
                uow,
                actor,
                "loan.reopened",
                "loan",
                loan_id,
                {"closed_on": record.closed_on.isoformat() if record.closed_on else None, "by_reversal_of": payment_id},
            )
        )
    ledger.append_audit(audit)
    return _result(details, payment, after, replayed=False)


def _undo_sweep(uow: UnitOfWork, record: LoanRecord, rows: dict[int, dict[str, Any]]) -> tuple[int, int, list[int]]:
    """Take back the residual sweep that closed ``record``: (fen un-waived, the sweeping payment, its waiver entries).

    The sweep waived everything left on every live installment; a closed loan is touched by nothing
    after, so the installments' waivers are the sweep's — unless the loan carried waivers from before
    (a bulk-loaded history), which the totals below detect: that case is refused, not guessed.
    """
    conn = uow.connection
    sweeper = conn.execute(
        select(payments.c.id, payments.c.waived_fen)
        .where(
            payments.c.loan_id == record.id,
            payments.c.schedule_version == record.schedule_version,
            payments.c.status == PaymentStatus.POSTED.value,
            payments.c.waived_fen > 0,
        )
        .order_by(payments.c.id.desc())
        .limit(1)
    ).first()
    if sweeper is None:
        raise Conflict(
            f"`loan`: {record.id} is closed by a residual sweep but no posted payment records it; "
            "it cannot be reopened automatically",
            field="loan",
        )
    entry_ids = _standing_entries(uow, payment_id=int(sweeper.id), kinds=(EntryKind.WAIVER,))
    booked = load_entries(conn, entry_ids)
    principal = sum(
        line.credit_fen for e in booked.values() for line in e.lines if line.account is LedgerAccount.LOANS_RECEIVABLE
    )
    penalty = sum(
        line.credit_fen for e in booked.values() for line in e.lines if line.account is LedgerAccount.PENALTY_RECEIVABLE
    )
    waived = {c: sum(row[c] for row in rows.values()) for c in _WAIVED}
    expected = {
        "principal": principal,
        "penalty": penalty,
        "interest and fee": int(sweeper.waived_fen) - principal - penalty,
    }
    actual = {
        "principal": waived["principal_waived_fen"],
        "penalty": waived["penalty_waived_fen"],
        "interest and fee": waived["interest_waived_fen"] + waived["fee_waived_fen"],
    }
    if expected != actual:
        raise Conflict(
            f"`loan`: {record.id}'s installments carry waivers besides its residual sweep ({actual} fen waived, "
            f"the sweep {expected}); the sweep cannot be told apart, so the loan cannot be reopened automatically",
            field="loan",
        )
    for row in rows.values():
        for c in _WAIVED:
            row[c] = 0
    return int(sweeper.waived_fen), int(sweeper.id), entry_ids


def _restore_written_dues(uow: UnitOfWork, record: LoanRecord, rows: dict[int, dict[str, Any]]) -> set[int]:
    """Put back the interest (and flat fee) a principal prepayment repriced away, from the schedule as written.

    The repost rebuilds them itself while a posted payment still prepays; once the only prepaying
    payment is reversed, nothing else would.
    """
    product = uow.ledger.product(record.product_id, record.product_version)
    if product.allocation.overpayment is not Overpayment.PREPAY_PRINCIPAL:
        return set()
    version = uow.ledger.schedule_version(record.id, record.schedule_version)
    assert version is not None
    schedule = build_schedule(
        product,
        principal=from_minor(version.principal_fen),
        term=version.term,
        start_date=version.start_date,
        annual_rate=Decimal(version.annual_rate) if version.annual_rate is not None else None,
        fee_rate=Decimal(version.fee_rate) if version.fee_rate is not None else None,
    )
    written = {i.number: i for i in schedule.installments}
    changed: set[int] = set()
    for number, row in rows.items():
        inst = written.get(number)
        if inst is None or inst.due_date != row["due_date"] or to_minor(inst.principal) != row["principal_due_fen"]:
            raise Conflict(
                f"`payment`: loan {record.id}'s schedule version {version.version} cannot be rebuilt to undo the "
                "payment's prepayment repricing; it cannot be reversed automatically",
                field="payment",
            )
        dues = {"interest_due_fen": to_minor(inst.interest), "fee_due_fen": to_minor(inst.fee)}
        if any(row[k] != v for k, v in dues.items()):
            row.update(dues)
            changed.add(number)
    return changed


# --- a recovery on a charged-off loan ---------------------------------------------------------------------------------


def _reverse_recovery(
    uow: UnitOfWork, payment: dict[str, Any], record: LoanRecord, *, reason: str, key: str, actor: str
) -> ReversalResult:
    payment_id = int(payment["id"])
    rows = _row_dicts(uow, record)
    n_allocations, _, touched = _take_back_allocations(uow, payment, rows, ref=f"reversal of payment {payment_id}")
    entries_reversed = _mirror(
        uow,
        _standing_entries(uow, payment_id=payment_id, kinds=(EntryKind.RECOVERY,)),
        memo=f"reverses recovery {payment_id}: {reason}"[:200],
        actor=actor,
    )
    _mark_reversed(uow, payment_id, reason=reason, key=key)
    _write_rows(uow, rows, touched)
    position = uow.ledger.positions([record])[record.id]
    write_charged_off_position(uow, record, position, touched=set())
    details = {
        "loan_id": record.id,
        "kind": PaymentKind.RECOVERY.value,
        "amount": str(from_minor(payment["amount_fen"])),
        "value_date": payment["value_date"].isoformat(),
        "reason": reason,
        "idempotency_key": key,
        "entries_reversed": entries_reversed,
        "allocations_reversed": n_allocations,
        "reposted_from": None,
        "reopened": False,
        "sweep_undone": "0.00",
    }
    uow.ledger.append_audit([audit_row(uow, actor, "payment.reversed", "payment", str(payment_id), details)])
    return _result(details, payment, uow.ledger.require_loan(record.id), replayed=False)


# --- results ----------------------------------------------------------------------------------------------------------


def _result(details: dict[str, Any], payment: dict[str, Any], loan: LoanRecord, *, replayed: bool) -> ReversalResult:
    reposted = details.get("reposted_from")
    return ReversalResult(
        payment_id=int(payment["id"]),
        loan_id=loan.id,
        kind=str(details["kind"]),
        amount=from_minor(payment["amount_fen"]),
        value_date=payment["value_date"],
        reason=str(details["reason"]),
        idempotency_key=str(details["idempotency_key"]),
        entries_reversed=int(details["entries_reversed"]),
        allocations_reversed=int(details["allocations_reversed"]),
        reposted_from=date.fromisoformat(reposted) if reposted else None,
        reopened=bool(details["reopened"]),
        sweep_undone=Decimal(str(details["sweep_undone"])),
        loan_status=loan.status,
        outstanding_principal=from_minor(loan.outstanding_principal_fen),
        replayed=replayed,
    )


def _replay(uow: UnitOfWork, payment: dict[str, Any]) -> ReversalResult:
    """The result of a reversal made by an earlier transaction, from its audit record."""
    details = uow.connection.execute(
        select(audit_log.c.details)
        .where(
            audit_log.c.object_type == "payment",
            audit_log.c.object_id == str(payment["id"]),
            audit_log.c.action == "payment.reversed",
        )
        .order_by(audit_log.c.id.desc())
        .limit(1)
    ).scalar_one()
    return _result(details, payment, uow.ledger.require_loan(payment["loan_id"]), replayed=True)


__all__ = ["ReversalResult", "reverse_payment"]
