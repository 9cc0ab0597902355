"""Charge-off (核销) of loans: atomic, idempotent by a caller's key, audited; one loan or the DPD policy in bulk.

**Write-off.** :func:`write_off` takes an open loan off the books as of a date, in one transaction:

1. refuse bad input before anything is written: an empty or over-128-character key, an empty reason,
   an unknown loan, a loan that is not open (saying what it is), a loan holding customer credit (spend
   or refund it first), and a date before the loan's start, before its last payment's value date or
   before the day its penalties are already accrued to (the last close): a charge-off is never backdated;
2. the idempotency key: seen before for the same loan, date and reason → the first result again
   (``replayed=True``); for anything else → :class:`~runoff.errors.IdempotencyConflict`;
3. a loan flagged by a backdated payment is **reposted first** (as the daily close would), so what is
   written off is what the loan really owes;
4. penalties are brought to the date (Dr penalty_receivable, Cr penalty_income), exactly what a daily
   close of that date would charge;
5. the ``write_off`` entry: Dr write_offs / Cr loans_receivable (outstanding principal) and Cr
   penalty_receivable (penalty accrued and unpaid). Interest and fee are income only when paid, so the
   unpaid ones move no booked balance and are not in the entry (as in the residual sweep);
6. the loan becomes ``charged-off`` (``closed_on`` = the date, ``close_reason`` ``charged-off``; DPD and
   bucket as of the date, then frozen: the daily close and the repost leave charged-off loans alone, so
   no more penalty accrues), a ``charge_offs`` row records what was written off and what is still owed
   by contract, and an audit record ``loan.charged_off``.

The installments are left as they were: the **contractual debt stays readable** (账销案存: the balance
leaves the books, the claim stays) — :func:`runoff.app.recoveries.contractual_debt`, ``runoff loan show``.

:func:`write_off_due` is the policy "charge off every open loan at least ``min_dpd`` days past due as of
D": the loans are found with one range of the ``(status, oldest_unpaid_due_date)`` index, then written
off set-based, a chunk per transaction, with keys derived from loan and date (:func:`write_off_key`), so
running it again writes nothing new. ``dry_run`` computes everything in the transaction and rolls it back.

Money received after the charge-off is a recovery (:mod:`runoff.app.recoveries`); a payment is reversed by
:mod:`runoff.app.reversals`. The key, reason and transaction helpers below are shared by the three.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import DBAPIError

from runoff.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound, RunoffError
from runoff.money import from_minor
from runoff.servicing.delinquency import accrue_penalties, days_past_due
from runoff.servicing.position import ZERO, LoanPosition
from runoff.servicing.product import Component
from runoff.store.ledger.journal import EntryBuilder, JournalEntry, post_entries
from runoff.store.ledger.models import (
    EntryKind,
    LedgerAccount,
    LoanStatus,
    PaymentStatus,
    charge_offs,
    journal_entries,
    loans,
    payments,
)
from runoff.store.ledger.repository import InstallmentRecord, LoanRecord, audit_entry, fen_of
from runoff.store.ledger.repost import loan_position_columns, penalty_entry, repost_loans
from runoff.store.ledger.rowsets import insert_rows
from runoff.store.ledger.sequences import reserve_id_blocks
from runoff.store.ledger.unit_of_work import UnitOfWork

MAX_KEY_LENGTH = 128
MAX_REASON_LENGTH = 200
DEFAULT_MIN_DPD = 180
DEFAULT_CHUNK = 1000
RETRIES = 5
CHARGED_OFF = "charged-off"
"""``loans.close_reason`` of a charged-off loan."""

T = TypeVar("T")


# --- shared by the adjustments (charge-off, recovery, reversal) --------------------------------------------------------


def check_key(key: object, *, field: str = "idempotency_key") -> str:
    """A caller's idempotency key: 1 to 128 characters."""
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"`{field}`: {key!r} is not allowed; expected 1 to {MAX_KEY_LENGTH} characters", field=field)
    return key


def check_reason(reason: object) -> str:
    """Why the adjustment is made (kept in the audit log and on the row): 1 to 200 characters."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(
            f"`reason`: {reason!r} is not allowed; expected 1 to {MAX_REASON_LENGTH} characters saying why",
            field="reason",
        )
    return reason


def _retryable(exc: DBAPIError) -> bool:
    """A lost race on a new key (unique violation), a PostgreSQL deadlock or SQLite's busy lock: run it again."""
    code = getattr(exc.orig, "sqlstate", None)
    if code in ("23505", "40P01", "40001"):
        return True
    text = str(exc.orig)
    return "UNIQUE constraint failed" in text or "database is locked" in text


def in_transaction(uow: UnitOfWork, work: Callable[[], T], *, commit: bool = True) -> T:
    """Run ``work`` in one transaction of ``uow``, committed (or rolled back: ``commit=False``).

    A transaction that lost a race on a new key is rolled back and run again (at most 5 times in all):
    the retry finds the winner's row and replays or refuses, like payment posting.
    """
    for attempt in range(RETRIES):
        try:
            with uow:
                out = work()
                if commit:
                    uow.commit()
            return out
        except DBAPIError as exc:
            if attempt == RETRIES - 1 or not _retryable(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def audit_row(
    uow: UnitOfWork, actor: str, action: str, object_type: str, object_id: str, details: dict[str, Any]
) -> dict[str, Any]:
    """An ``audit_log`` row stamped with the unit of work's clock."""
    return audit_entry(uow.now(), actor, action, object_type, object_id, details)


def last_value_date(conn: Connection, loan_id: str) -> date | None:
    """The latest value date of a posted payment (or recovery) on ``loan_id``."""
    found: date | None = conn.execute(
        select(func.max(payments.c.value_date)).where(
            payments.c.loan_id == loan_id, payments.c.status == PaymentStatus.POSTED.value
        )
    ).scalar_one()
    return found


# --- write-off -------------------------------------------------------------------------------------------------------


def write_off_key(loan_id: str, as_of: date) -> str:
    """The key :func:`write_off_due` uses for ``loan_id`` on ``as_of``: the same loan and date, the same key."""
    return f"write-off:{loan_id}:{as_of.isoformat()}"


@dataclass(frozen=True, slots=True)
class WriteOffResult:
    """A loan charged off: what left the books and what the customer still owes by contract.

    ``principal`` and ``penalty`` are written off (the booked receivables); ``penalty_charged`` is the
    part of ``penalty`` the charge-off itself accrued to ``as_of``; ``interest_owed`` and ``fee_owed``
    are contractual only (never booked). ``replayed``: the key was used before and this is that result.
    """

    charge_off_id: int
    loan_id: str
    as_of: date
    reason: str
    idempotency_key: str
    days_past_due: int
    principal: Decimal
    penalty: Decimal
    penalty_charged: Decimal
    interest_owed: Decimal
    fee_owed: Decimal
    entry_id: int | None
    replayed: bool = False

    @property
    def written_off(self) -> Decimal:
        return self.principal + self.penalty

    @property
    def contractual_debt(self) -> Decimal:
        """What the customer owed by contract on the charge-off date: principal, interest, fee and penalty."""
        return self.principal + self.penalty + self.interest_owed + self.fee_owed

    def to_dict(self) -> dict[str, Any]:
        return {
            "charge_off_id": self.charge_off_id,
            "loan_id": self.loan_id,
            "as_of": self.as_of.isoformat(),
            "reason": self.reason,
            "idempotency_key": self.idempotency_key,
            "days_past_due": self.days_past_due,
            "principal_written_off": str(self.principal),
            "penalty_written_off": str(self.penalty),
            "written_off": str(self.written_off),
            "penalty_charged": str(self.penalty_charged),
            "interest_owed": str(self.interest_owed),
            "fee_owed": str(self.fee_owed),
            "contractual_debt": str(self.contractual_debt),
            "entry_id": self.entry_id,
            "replayed": self.replayed,
        }


@dataclass(frozen=True, slots=True)
class WriteOffRun:
    """What :func:`write_off_due` did (or, ``dry_run``, would do) as of ``as_of``.

    ``candidates``: open loans whose oldest unpaid installment is at least ``min_dpd`` days old;
    ``refused``: those not charged off, with why (nothing written for them); ``earlier``: loans
    charged off as of the same date before this run (a second run finds the first run's here).
    """

    as_of: date
    min_dpd: int
    dry_run: bool
    candidates: int
    written_off: tuple[WriteOffResult, ...]
    refused: tuple[tuple[str, RunoffError], ...]
    earlier: int

    @property
    def principal(self) -> Decimal:
        return sum((r.principal for r in self.written_off), ZERO)

    @property
    def penalty(self) -> Decimal:
        return sum((r.penalty for r in self.written_off), ZERO)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "min_dpd": self.min_dpd,
            "dry_run": self.dry_run,
            "candidates": self.candidates,
            "loans_written_off": len(self.written_off),
            "principal_written_off": str(self.principal),
            "penalty_written_off": str(self.penalty),
            "written_off": str(self.principal + self.penalty),
            "earlier": self.earlier,
            "loans": [r.to_dict() for r in self.written_off],
            "refused": [{"loan_id": loan_id, "error": err.to_dict()} for loan_id, err in self.refused],
        }


@dataclass(frozen=True, slots=True)
class _WriteOffRequest:
    loan_id: str
    as_of: date
    reason: str
    idempotency_key: str
    min_dpd: int | None = None  # the bulk policy's threshold, checked again on the loan's position


@dataclass(slots=True)
class _WriteOffWrites:
    entries: list[JournalEntry] = field(default_factory=list)
    write_off_entry: dict[str, int] = field(default_factory=dict)  # loan → index in ``entries``
    charge_offs: list[dict[str, Any]] = field(default_factory=list)
    installments: list[dict[str, Any]] = field(default_factory=list)
    loans: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)


def write_off(
    loan_id: str,
    *,
    as_of: date,
    reason: str,
    idempotency_key: str,
    actor: str,
    uow: UnitOfWork,
) -> WriteOffResult:
    """Charge ``loan_id`` off as of ``as_of`` (核销), atomically and idempotently; refusals raise, writing nothing."""
    request = _WriteOffRequest(loan_id, as_of, reason, idempotency_key)
    _check_request(request)

    def work() -> WriteOffResult:
        ((_, outcome),) = _write_off_chunk(uow, [request], actor=actor)
        if isinstance(outcome, RunoffError):
            raise outcome  # inside the transaction: it rolls back whatever was done
        return outcome

    return in_transaction(uow, work)


def write_off_due(
    *,
    as_of: date,
    actor: str,
    uow: UnitOfWork,
    min_dpd: int = DEFAULT_MIN_DPD,
    dry_run: bool = False,
    reason: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> WriteOffRun:
    """Charge off every open loan at least ``min_dpd`` days past due as of ``as_of`` (the charge-off policy).

    Keys are :func:`write_off_key` of each loan and date, so a second run (after a crash, or by mistake)
    charges off only what the first did not. A loan refused (credit held, paid after ``as_of``, DPD below
    the threshold once reposted, ...) is listed with why and the others go ahead. ``dry_run``: the same
    work in each chunk's transaction, rolled back. ``progress`` is called with (loans done, candidates)
    after each chunk.
    """
    if isinstance(min_dpd, bool) or not isinstance(min_dpd, int) or min_dpd < 1:
        raise InvalidInput(f"`min_dpd`: {min_dpd!r} is not allowed; expected 1 or more days past due", field="min_dpd")
    if chunk_size < 1:
        raise InvalidInput(f"`chunk_size`: {chunk_size} is not allowed; expected 1 or more", field="chunk_size")
    if not isinstance(as_of, date):
        raise InvalidInput(f"`as_of`: {as_of!r} is not a date", field="as_of")
    why = check_reason(reason if reason is not None else f"{min_dpd}+ days past due as of {as_of.isoformat()}")

    def find() -> tuple[list[str], int]:
        conn = uow.connection
        latest_due = as_of - timedelta(days=min_dpd)
        ids = conn.execute(
            select(loans.c.id)
            .where(loans.c.status == LoanStatus.OPEN.value, loans.c.oldest_unpaid_due_date <= latest_due)
            .order_by(loans.c.id)
        ).scalars()
        earlier = conn.execute(
            select(func.count()).select_from(charge_offs).where(charge_offs.c.as_of == as_of)
        ).scalar_one()
        return [str(i) for i in ids], int(earlier)

    candidates, earlier = in_transaction(uow, find, commit=False)
    done: list[WriteOffResult] = []
    refused: list[tuple[str, RunoffError]] = []
    for start in range(0, len(candidates), chunk_size):
        chunk = [
            _WriteOffRequest(loan_id, as_of, why, write_off_key(loan_id, as_of), min_dpd)
            for loan_id in candidates[start : start + chunk_size]
        ]
        outcomes = in_transaction(uow, _chunk_work(uow, chunk, actor=actor), commit=not dry_run)
        for request, outcome in outcomes:
            if isinstance(outcome, RunoffError):
                refused.append((request.loan_id, outcome))
            else:
                done.append(outcome)
        if progress is not None:
            progress(min(start + chunk_size, len(candidates)), len(candidates))
    return WriteOffRun(
        as_of=as_of,
        min_dpd=min_dpd,
        dry_run=dry_run,
        candidates=len(candidates),
        written_off=tuple(done),
        refused=tuple(refused),
        earlier=earlier,
    )


def _chunk_work(
    uow: UnitOfWork, chunk: Sequence[_WriteOffRequest], *, actor: str
) -> Callable[[], list[tuple[_WriteOffRequest, WriteOffResult | RunoffError]]]:
    return lambda: _write_off_chunk(uow, chunk, actor=actor)


def _check_request(request: _WriteOffRequest) -> None:
    check_key(request.idempotency_key)
    check_reason(request.reason)
    if not isinstance(request.loan_id, str) or not request.loan_id:
        raise InvalidInput(f"`loan`: {request.loan_id!r} is not a loan id", field="loan")
    if not isinstance(request.as_of, date):
        raise InvalidInput(f"`as_of`: {request.as_of!r} is not a date", field="as_of")


def _check_loan(record: LoanRecord | None, request: _WriteOffRequest, *, credit: bool = True) -> LoanRecord:
    """Refuse a loan that cannot be written off as requested (``credit``: check the credit it holds too)."""
    loan_id, as_of = request.loan_id, request.as_of
    if record is None:
        raise NotFound(f"`loan`: no loan {loan_id!r} in the ledger", field="loan")
    if record.status != LoanStatus.OPEN.value:
        since = f" since {record.closed_on.isoformat()}" if record.closed_on else ""
        raise Conflict(
            f"`loan`: {loan_id} is {record.status}{since}; only an open loan can be written off", field="loan"
        )
    for floor, what in (
        (record.start_date, "its start date"),
        (record.last_value_date, "the value date of its last payment"),
        (record.penalty_accrued_until, "the day its penalties are already accrued to (the last close)"),
    ):
        if floor is not None and as_of < floor:
            raise InvalidInput(
                f"`as_of`: {as_of.isoformat()} is before loan {loan_id}'s {what}, {floor.isoformat()}; "
                "a charge-off is never backdated: expected a date on or after it",
                field="as_of",
            )
    if credit and record.credit_balance_fen:
        raise Conflict(
            f"`loan`: {loan_id} holds {from_minor(record.credit_balance_fen)} of customer credit; "
            "spend or refund it before writing the loan off",
            field="loan",
        )
    return record


def _check_dpd(req: _WriteOffRequest, dpd: int) -> None:
    if req.min_dpd is not None and dpd < req.min_dpd:
        raise Conflict(
            f"`loan`: {req.loan_id} is {dpd} days past due as of {req.as_of.isoformat()}, below the {req.min_dpd} "
            "the policy writes off",
            field="loan",
        )


def _charge_off_rows(conn: Connection, column: Any, values: Sequence[Any]) -> dict[Any, dict[str, Any]]:
    if not values:
        return {}
    rows = conn.execute(select(charge_offs).where(column.in_(list(values)))).mappings()
    return {row[column.name]: dict(row) for row in rows}


def _result_of_row(row: dict[str, Any], *, replayed: bool) -> WriteOffResult:
    return WriteOffResult(
        charge_off_id=int(row["id"]),
        loan_id=row["loan_id"],
        as_of=row["as_of"],
        reason=row["reason"],
        idempotency_key=row["idempotency_key"],
        days_past_due=int(row["dpd"]),
        principal=from_minor(row["principal_fen"]),
        penalty=from_minor(row["penalty_fen"]),
        penalty_charged=from_minor(row["penalty_charged_fen"]),
        interest_owed=from_minor(row["interest_fen"]),
        fee_owed=from_minor(row["fee_fen"]),
        entry_id=None if row["entry_id"] is None else int(row["entry_id"]),
        replayed=replayed,
    )


def _write_off_chunk(
    uow: UnitOfWork, requests: Sequence[_WriteOffRequest], *, actor: str
) -> list[tuple[_WriteOffRequest, WriteOffResult | RunoffError]]:
    """Write off a chunk of loans in the caller's transaction: one outcome per request, in order."""
    ledger = uow.ledger
    conn = uow.connection
    now = uow.now()
    outcomes: dict[int, WriteOffResult | RunoffError] = {}
    records, versions = ledger.loans_with_live_versions((r.loan_id for r in requests), lock=True)
    existing = _charge_off_rows(conn, charge_offs.c.idempotency_key, [r.idempotency_key for r in requests])

    ready: list[int] = []
    seen_keys: set[str] = set()
    seen_loans: set[str] = set()
    for k, req in enumerate(requests):
        try:
            _check_request(req)
            row = existing.get(req.idempotency_key)
            if row is not None:
                if (row["loan_id"], row["as_of"], row["reason"]) != (req.loan_id, req.as_of, req.reason):
                    raise IdempotencyConflict(
                        f"`idempotency_key`: {req.idempotency_key!r} was already used to write off loan "
                        f"{row['loan_id']} as of {row['as_of'].isoformat()} ({row['reason']}); this request writes "
                        f"off loan {req.loan_id} as of {req.as_of.isoformat()} ({req.reason}). "
                        "Use a new key for a different write-off",
                        field="idempotency_key",
                        details={"idempotency_key": req.idempotency_key},
                    )
                outcomes[k] = _result_of_row(row, replayed=True)
                continue
            if req.idempotency_key in seen_keys or req.loan_id in seen_loans:
                raise Conflict(f"`loan`: {req.loan_id} appears twice in this batch of write-offs", field="loan")
            # A loan awaiting a repost holds what its replay says: its credit is checked after the repost.
            record = records.get(req.loan_id)
            _check_loan(record, req, credit=record is None or record.repost_from is None)
            seen_keys.add(req.idempotency_key)
            seen_loans.add(req.loan_id)
            ready.append(k)
        except RunoffError as exc:
            outcomes[k] = exc

    # A loan flagged by a backdated payment is reposted first, as the daily close would, under a savepoint: when
    # the reposted loan is refused (it closed, holds credit, or is below the policy's DPD), its repost goes too.
    for k in [k for k in ready if records[requests[k].loan_id].repost_from is not None]:
        req = requests[k]
        savepoint = conn.begin_nested()
        try:
            repost_loans(ledger, [req.loan_id], actor=actor, now=now)
            fresh, fresh_versions = ledger.loans_with_live_versions([req.loan_id], lock=True)
            record = _check_loan(fresh.get(req.loan_id), req)
            if req.min_dpd is not None:
                _check_dpd(req, days_past_due(ledger.positions([record])[req.loan_id], req.as_of))
            records.update(fresh)
            versions.update(fresh_versions)
            savepoint.commit()
        except RunoffError as exc:
            savepoint.rollback()
            outcomes[k] = exc
    ready = [k for k in ready if k not in outcomes]

    targets = [records[requests[k].loan_id] for k in ready]
    positions, rows = ledger.positions_and_rows(targets, versions=versions) if targets else ({}, {})
    writes = _WriteOffWrites()
    planned: dict[int, dict[str, Any]] = {}
    for k in ready:
        req = requests[k]
        record = records[req.loan_id]
        try:
            planned[k] = _plan_write_off(
                req,
                record,
                positions[req.loan_id],
                rows[(req.loan_id, record.schedule_version)],
                actor=actor,
                uow=uow,
                writes=writes,
            )
        except RunoffError as exc:
            outcomes[k] = exc

    if planned:
        ids = reserve_id_blocks(conn, {charge_offs: len(planned), journal_entries: len(writes.entries)})
        entry_ids = post_entries(conn, writes.entries, actor=actor, posted_at=now, ids=ids[journal_entries.name])
        for charge_off_id, (k, row) in zip(ids[charge_offs.name], planned.items(), strict=True):
            index = writes.write_off_entry.get(requests[k].loan_id)
            row["id"] = charge_off_id
            row["entry_id"] = None if index is None else entry_ids[index]
            writes.audit[row.pop("_audit")]["details"]["charge_off_id"] = charge_off_id
            outcomes[k] = _result_of_row(row, replayed=False)
        insert_rows(conn, charge_offs, list(planned.values()))
        ledger.update_installments(writes.installments)
        ledger.update_loans(writes.loans)
        ledger.append_audit(writes.audit)
    return [(req, outcomes[k]) for k, req in enumerate(requests)]


def _plan_write_off(
    req: _WriteOffRequest,
    record: LoanRecord,
    position: LoanPosition,
    rows: Sequence[InstallmentRecord],
    *,
    actor: str,
    uow: UnitOfWork,
    writes: _WriteOffWrites,
) -> dict[str, Any]:
    """One loan's charge-off: its entries, rows and audit queued on ``writes``; returns its ``charge_offs`` row."""
    loan_id, as_of = req.loan_id, req.as_of
    live = record.schedule_version
    before = sum((i.penalty_accrued for i in position.installments), ZERO)
    pos = position
    if record.penalty_accrued_until is None or record.penalty_accrued_until < as_of:
        pos = accrue_penalties(position, as_of)
    charged = fen_of(sum((i.penalty_accrued for i in pos.installments), ZERO) - before)
    dpd = days_past_due(pos, as_of)
    _check_dpd(req, dpd)
    principal = fen_of(pos.outstanding_principal)
    # The journal's penalty receivable is the net over the installments: one can hold more penalty paid than
    # accrued (a loaded book's penalty, paid before the ledger's history, re-priced by the first close), and
    # the write-off takes off the books what they hold, never more.
    penalty = fen_of(max(sum((i.outstanding(Component.PENALTY) for i in pos.installments), ZERO), ZERO))
    interest = fen_of(sum((max(i.outstanding(Component.INTEREST), ZERO) for i in pos.installments), ZERO))
    fee = fen_of(sum((max(i.outstanding(Component.FEE), ZERO) for i in pos.installments), ZERO))

    if charged:
        writes.entries.append(
            penalty_entry(loan_id, charged, value_date=as_of, version=live, memo="penalty to the charge-off date")
        )
    if principal or penalty:
        writes.write_off_entry[loan_id] = len(writes.entries)
        writes.entries.append(
            EntryBuilder(EntryKind.WRITE_OFF, as_of, loan_id=loan_id, schedule_version=live, memo=req.reason)
            .debit(LedgerAccount.WRITE_OFFS, principal + penalty)
            .credit(LedgerAccount.LOANS_RECEIVABLE, principal)
            .credit(LedgerAccount.PENALTY_RECEIVABLE, penalty)
            .build()
        )
    by_number = {r.number: r for r in rows}
    for inst in pos.installments:
        row = by_number[inst.number]
        if fen_of(inst.penalty_accrued) != row.penalty_accrued_fen:
            writes.installments.append(
                {
                    "loan_id": loan_id,
                    "schedule_version": live,
                    "number": inst.number,
                    "penalty_accrued_fen": fen_of(inst.penalty_accrued),
                }
            )
    columns = loan_position_columns(pos, as_of=as_of)
    writes.loans.append(
        {
            "id": loan_id,
            **columns,
            "status": LoanStatus.CHARGED_OFF.value,
            "closed_on": as_of,
            "close_reason": CHARGED_OFF,
            "penalty_accrued_until": max(filter(None, (record.penalty_accrued_until, as_of))),
            "repost_from": None,
            "updated_at": uow.now(),
        }
    )
    details = {
        "as_of": as_of.isoformat(),
        "reason": req.reason,
        "idempotency_key": req.idempotency_key,
        "days_past_due": dpd,
        "principal_written_off": str(from_minor(principal)),
        "penalty_written_off": str(from_minor(penalty)),
        "penalty_charged": str(from_minor(charged)),
        "interest_owed": str(from_minor(interest)),
        "fee_owed": str(from_minor(fee)),
        "reposted": record.repost_from is not None,
    }
    writes.audit.append(audit_row(uow, actor, "loan.charged_off", "loan", loan_id, details))
    return {
        "loan_id": loan_id,
        "idempotency_key": req.idempotency_key,
        "as_of": as_of,
        "reason": req.reason,
        "schedule_version": live,
        "dpd": dpd,
        "principal_fen": principal,
        "penalty_fen": penalty,
        "interest_fen": interest,
        "fee_fen": fee,
        "penalty_charged_fen": charged,
        "actor": actor,
        "charged_off_at": uow.now(),
        "_audit": len(writes.audit) - 1,
        "id": None,
        "entry_id": None,
    }
