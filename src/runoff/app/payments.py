"""Posting payments (还款入账): atomic, idempotent, serialised per loan, one by one or in batches.

One payment, in one transaction:

1. refuse bad input before anything is written (unknown loan, amount not > 0 or not whole cents,
   value date before the loan's start, loan not open);
2. the idempotency key: seen before with the same loan, amount and value date → the first result
   again (``replayed=True``); with anything else → :class:`~runoff.errors.IdempotencyConflict`;
3. penalties brought to the value date (Dr penalty_receivable, Cr penalty_income);
4. the pure :func:`~runoff.servicing.allocation.allocate`, then the journal entry
   Dr cash_clearing / Cr loans_receivable (principal), interest_income, fee_income,
   penalty_receivable (penalty), customer_credit (overpayment held as credit);
5. credit already held is spent on what is due (:func:`~runoff.servicing.allocation.apply_credit`);
6. the residual sweep (see :func:`residual_to_sweep`) and, when nothing is left, the loan closes;
7. installments' paid columns, the loan's denormalised position and the audit log are updated.

Writers on the same loan are serialised (PostgreSQL: ``SELECT ... FOR UPDATE`` on the loan rows;
SQLite: ``BEGIN IMMEDIATE``). Two transactions racing on one new key: the loser's insert fails on
the unique key, its transaction rolls back and is retried, and the retry replays the winner's result.

:func:`post_payments` runs the same steps for a batch, one transaction per chunk, with set-based
reads and writes, for throughput.

A payment whose value date lies before the day penalties are accrued to (``loans.penalty_accrued_until``,
moved by the daily close) is *backdated*: it is allocated against the position as it stands, and the loan
is flagged (``loans.repost_from``) for the repost that re-allocates and re-accrues from that date.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import DBAPIError

from runoff.app.batches import Turn, post_chunks
from runoff.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound, RunoffError
from runoff.money import from_minor, parse_amount
from runoff.servicing.allocation import AllocationLine, allocate, apply_allocation, apply_credit
from runoff.servicing.delinquency import accrue_penalties, bucket_of, days_past_due
from runoff.servicing.position import SCHEDULED_COMPONENTS, ZERO, InstallmentPosition, LoanPosition
from runoff.servicing.product import Component
from runoff.store.ledger import postings
from runoff.store.ledger.journal import EntryBuilder, JournalEntry, post_entries
from runoff.store.ledger.models import (
    AllocationComponent,
    EntryKind,
    LedgerAccount,
    LoanStatus,
    PaymentKind,
    PaymentStatus,
    journal_entries,
    payments,
)
from runoff.store.ledger.postings import allocation_entry
from runoff.store.ledger.repository import (
    InstallmentRecord,
    LoanRecord,
    PaymentRecord,
    ScheduleVersionRecord,
    audit_entry,
    fen_of,
)
from runoff.store.ledger.sequences import reserve_id_blocks
from runoff.store.ledger.unit_of_work import UnitOfWork

MAX_KEY_LENGTH = 128
DEFAULT_CHUNK = 1000
RETRIES = 5

COMPONENTS: tuple[Component, ...] = tuple(Component)


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """A payment to post: ``amount`` on ``loan_id`` with value date (起息日) ``value_date``."""

    loan_id: str
    amount: Decimal
    value_date: date
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """Where a posted payment went. ``replayed``: this key was posted before and this is that result.

    ``loan_status`` and ``outstanding_principal`` are the loan's after this posting (for a replay
    from an earlier transaction: as they stand now).
    """

    payment_id: int
    loan_id: str
    amount: Decimal
    value_date: date
    idempotency_key: str
    lines: tuple[AllocationLine, ...]
    credited: Decimal
    prepaid_principal: Decimal
    waived: Decimal
    penalty_charged: Decimal
    loan_status: str
    outstanding_principal: Decimal
    replayed: bool = False
    backdated: bool = False

    def total_of(self, component: Component) -> Decimal:
        return sum((line.amount for line in self.lines if line.component is component), ZERO)

    def to_dict(self) -> dict[str, Any]:
        return {
            "payment_id": self.payment_id,
            "loan_id": self.loan_id,
            "amount": str(self.amount),
            "value_date": self.value_date.isoformat(),
            "idempotency_key": self.idempotency_key,
            "allocations": [line.to_dict() for line in self.lines],
            "credited": str(self.credited),
            "prepaid_principal": str(self.prepaid_principal),
            "waived": str(self.waived),
            "penalty_charged": str(self.penalty_charged),
            "loan_status": self.loan_status,
            "outstanding_principal": str(self.outstanding_principal),
            "replayed": self.replayed,
            "backdated": self.backdated,
        }


@dataclass(frozen=True, slots=True)
class PaymentOutcome:
    """One request of a batch: its result, or the error that refused it (nothing written for it)."""

    request: PaymentRequest
    result: PaymentResult | None = None
    error: RunoffError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def post_payment(
    loan_id: str,
    amount: Decimal | str | int,
    *,
    value_date: date,
    idempotency_key: str,
    actor: str,
    uow: UnitOfWork,
) -> PaymentResult:
    """Post one payment atomically and idempotently; raises the refusal (nothing written) as a RunoffError."""
    request = _request(loan_id, amount, value_date=value_date, idempotency_key=idempotency_key)
    (outcome,) = _post_with_retry([request], actor=actor, uow=uow)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.result is not None
    return outcome.result


def post_payments(
    batch: Sequence[PaymentRequest],
    *,
    actor: str,
    uow: UnitOfWork,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Callable[[int], None] | None = None,
    overlap: bool = True,
) -> list[PaymentOutcome]:
    """Post a batch: one transaction per ``chunk_size`` requests, set-based; one outcome per request, in order.

    A refused request (bad amount, unknown loan, key conflict, ...) gets its error and writes
    nothing; the others in its chunk post. Idempotency is the same as :func:`post_payment`,
    including keys repeated inside the batch. ``progress`` is called with the number of requests
    of each chunk once that chunk is committed. ``overlap`` (PostgreSQL): a second connection works on
    the next chunk while one commits (:mod:`runoff.app.batches`); ``False`` posts on one connection.
    """
    if chunk_size < 1:
        raise InvalidInput(f"`chunk_size`: {chunk_size} is not allowed; expected 1 or more", field="chunk_size")
    chunks = [batch[start : start + chunk_size] for start in range(0, len(batch), chunk_size)]

    def post_chunk(chunk: Sequence[PaymentRequest], unit: UnitOfWork, turn: Turn | None) -> list[PaymentOutcome]:
        return _post_with_retry(chunk, actor=actor, uow=unit, turn=turn)

    return post_chunks(chunks, post_chunk, uow=uow, progress=progress, overlap=overlap)


# --- request validation --------------------------------------------------------------------------------------------


def _request(loan_id: str, amount: Decimal | str | int, *, value_date: date, idempotency_key: str) -> PaymentRequest:
    amount = parse_amount(amount)
    return PaymentRequest(loan_id=loan_id, amount=amount, value_date=value_date, idempotency_key=idempotency_key)


def _check(request: PaymentRequest) -> None:
    key = request.idempotency_key
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            f"`idempotency_key`: {key!r} is not allowed; expected 1 to {MAX_KEY_LENGTH} printable characters",
            field="idempotency_key",
        )
    if not isinstance(request.loan_id, str) or not request.loan_id or not request.loan_id.isprintable():
        raise InvalidInput(f"`loan`: {request.loan_id!r} is not a loan id", field="loan")
    parse_amount(request.amount)
    if not isinstance(request.value_date, date):
        raise InvalidInput(f"`value_date`: {request.value_date!r} is not a date", field="value_date")


def _same_request(record: PaymentRecord, request: PaymentRequest) -> bool:
    return (
        record.kind == PaymentKind.PAYMENT.value
        and record.loan_id == request.loan_id
        and record.amount_fen == fen_of(request.amount)
        and record.value_date == request.value_date
    )


def _key_conflict(key: str, first: str, request: PaymentRequest) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"`idempotency_key`: {key!r} was already used for {first}; this request is "
        f"{request.amount} on loan {request.loan_id} value {request.value_date.isoformat()}. "
        "Use a new key for a different payment",
        field="idempotency_key",
        details={"idempotency_key": key},
    )


def _describe(loan_id: str, amount_fen: int, value_date: date, kind: str = "payment") -> str:
    what = "a recovery of " if kind == PaymentKind.RECOVERY.value else ""
    return f"{what}{from_minor(amount_fen)} on loan {loan_id} value {value_date.isoformat()}"


# --- transaction and retry -----------------------------------------------------------------------------------------


def _retryable(exc: DBAPIError) -> bool:
    """A lost race on a new key (unique violation) or a PostgreSQL deadlock: retry replays or re-serialises."""
    code = getattr(exc.orig, "sqlstate", None)
    if code in ("23505", "40P01", "40001"):
        return True
    text = str(exc.orig)
    return "UNIQUE constraint failed: payments.idempotency_key" in text or "database is locked" in text


def _post_with_retry(
    requests: Sequence[PaymentRequest], *, actor: str, uow: UnitOfWork, turn: Turn | None = None
) -> list[PaymentOutcome]:
    for attempt in range(RETRIES):
        try:
            with uow:
                outcomes = _post_chunk(uow, requests, actor=actor, turn=turn)
                uow.commit()
            return outcomes
        except DBAPIError as exc:
            if attempt == RETRIES - 1 or not _retryable(exc):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


# --- posting -------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _LoanState:
    """A loan being posted to in this chunk: its row, live installment rows and evolving position."""

    record: LoanRecord
    rows: dict[int, InstallmentRecord]
    position: LoanPosition
    initial: dict[int, InstallmentPosition]  # the positions as loaded, to write back only what changed
    waived: dict[tuple[int, Component], int] = field(default_factory=dict)  # fen waived in this chunk
    settled_on: dict[int, date] = field(default_factory=dict)
    penalty_accrued_until: date | None = None
    last_value_date: date | None = None
    repost_from: date | None = None
    status: str = LoanStatus.OPEN.value
    closed_on: date | None = None
    close_reason: str | None = None
    dpd_as_of: date | None = None
    touched: bool = False


@dataclass(slots=True)
class _Writes:
    """Rows a chunk will write, accumulated in memory then written set-based."""

    payments: list[dict[str, Any]] = field(default_factory=list)
    allocations: list[dict[str, Any]] = field(default_factory=list)
    entries: list[JournalEntry] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)


def _post_chunk(
    uow: UnitOfWork, requests: Sequence[PaymentRequest], *, actor: str, turn: Turn | None = None
) -> list[PaymentOutcome]:
    ledger = uow.ledger
    now = uow.now()
    outcomes: list[PaymentOutcome | None] = [None] * len(requests)
    valid: list[int] = []
    requests = list(requests)
    for idx, req in enumerate(requests):
        try:
            _check(req)
            requests[idx] = replace(req, amount=parse_amount(req.amount))
            valid.append(idx)
        except RunoffError as exc:
            outcomes[idx] = PaymentOutcome(req, error=exc)

    # Lock the loans first (PostgreSQL FOR UPDATE in id order; SQLite holds the write lock already), so
    # that the keys read next cannot be posted for these loans by another transaction meanwhile.
    if turn is not None:
        turn.before_locks()
    records, versions = ledger.loans_with_live_versions((requests[i].loan_id for i in valid), lock=True)
    if turn is not None:
        turn.after_locks()

    # Idempotency: keys posted before (by any transaction), and keys repeated inside this chunk.
    existing = ledger.payments_by_keys(requests[i].idempotency_key for i in valid)
    first_in_chunk: dict[str, int] = {}
    repeats: list[tuple[int, int]] = []  # (request, the first request with its key)
    earlier: list[tuple[int, PaymentRecord]] = []
    ready: list[int] = []
    for idx in valid:
        req = requests[idx]
        key = req.idempotency_key
        if key in existing:
            rec = existing[key]
            if _same_request(rec, req):
                earlier.append((idx, rec))
            else:
                described = _describe(rec.loan_id, rec.amount_fen, rec.value_date, rec.kind)
                outcomes[idx] = PaymentOutcome(req, error=_key_conflict(key, described, req))
        elif key in first_in_chunk:
            repeats.append((idx, first_in_chunk[key]))
        else:
            first_in_chunk[key] = idx
            try:
                _check_loan(records.get(req.loan_id), req)
                ready.append(idx)
            except RunoffError as exc:
                outcomes[idx] = PaymentOutcome(req, error=exc)

    states = _load_states(uow, [records[requests[i].loan_id] for i in ready], versions)
    # Payment ids, and up to four journal entries a payment (penalty, payment, credit spent, waiver): one round trip.
    ids = reserve_id_blocks(uow.connection, {payments: len(ready), journal_entries: 4 * len(ready)})
    payment_ids = ids[payments.name]
    entry_ids = ids[journal_entries.name]
    writes = _Writes()
    for idx, payment_id in zip(ready, payment_ids, strict=True):
        req = requests[idx]
        state = states[req.loan_id]
        try:
            if state.status != LoanStatus.OPEN.value:
                raise Conflict(
                    f"`loan`: {req.loan_id} was closed on {state.closed_on} by an earlier payment in this batch; "
                    "nothing more is owed",
                    field="loan",
                )
            result = _post_one(state, req, payment_id=payment_id, actor=actor, now=now, writes=writes)
            outcomes[idx] = PaymentOutcome(req, result=result)
        except RunoffError as exc:
            outcomes[idx] = PaymentOutcome(req, error=exc)

    if turn is not None:
        turn.before_writes()
    _write(uow, states, writes, actor=actor, now=now, entry_ids=entry_ids)

    for idx, first in repeats:
        first_outcome = outcomes[first]
        assert first_outcome is not None
        req = requests[idx]
        first_req = requests[first]
        if not _same_payload(first_req, req):
            described = _describe(first_req.loan_id, fen_of(first_req.amount), first_req.value_date)
            outcomes[idx] = PaymentOutcome(req, error=_key_conflict(req.idempotency_key, described, req))
        elif first_outcome.result is not None:
            outcomes[idx] = PaymentOutcome(req, result=replace(first_outcome.result, replayed=True))
        else:
            outcomes[idx] = PaymentOutcome(req, error=first_outcome.error)

    if earlier:
        replayed = _replays(uow, [rec for _, rec in earlier])
        for idx, rec in earlier:
            outcomes[idx] = PaymentOutcome(requests[idx], result=replayed[rec.id])

    done = [o for o in outcomes if o is not None]
    assert len(done) == len(requests)
    return done


def _same_payload(a: PaymentRequest, b: PaymentRequest) -> bool:
    return a.loan_id == b.loan_id and a.amount == b.amount and a.value_date == b.value_date


def _check_loan(record: LoanRecord | None, req: PaymentRequest) -> None:
    if record is None:
        raise NotFound(f"`loan`: no loan {req.loan_id!r} in the ledger", field="loan")
    if record.status == LoanStatus.CHARGED_OFF.value:
        raise Conflict(
            f"`loan`: {req.loan_id} is charged-off (since {record.closed_on}); money received on a charged-off "
            "loan is a recovery (核销后回收): post it with `runoff recover`",
            field="loan",
        )
    if record.status != LoanStatus.OPEN.value:
        raise Conflict(
            f"`loan`: {req.loan_id} is {record.status} (since {record.closed_on}); "
            "a payment can only be posted to an open loan",
            field="loan",
        )
    if req.value_date < record.start_date:
        raise InvalidInput(
            f"`value_date`: {req.value_date.isoformat()} is before loan {req.loan_id}'s start date "
            f"{record.start_date.isoformat()}; expected a date on or after it",
            field="value_date",
        )


def _load_states(
    uow: UnitOfWork, records: Sequence[LoanRecord], versions: Mapping[str, ScheduleVersionRecord]
) -> dict[str, _LoanState]:
    unique = {r.id: r for r in records}
    if not unique:
        return {}
    ledger = uow.ledger
    positions, rows = ledger.positions_and_rows(unique.values(), versions=versions)
    return {
        loan_id: _LoanState(
            record=rec,
            rows={row.number: row for row in rows[(loan_id, rec.schedule_version)]},
            position=positions[loan_id],
            initial={i.number: i for i in positions[loan_id].installments},
            penalty_accrued_until=rec.penalty_accrued_until,
            last_value_date=rec.last_value_date,
            repost_from=rec.repost_from,
            status=rec.status,
        )
        for loan_id, rec in unique.items()
    }


def residual_to_sweep(position: LoanPosition) -> Decimal:
    """What the residual sweep waives after a payment (0: nothing).

    Rule: when what is left on the loan (principal, interest, fee and penalty of every live
    installment, due or not) is more than zero and below the product's ``residual_tolerance``,
    and the loan holds no credit, the remainder is waived and the loan closes, rather than staying
    open for cents (尾差减免).
    """
    left = remaining(position)
    if position.credit_balance == 0 and ZERO < left < position.product.residual_tolerance:
        return left
    return ZERO


def remaining(position: LoanPosition) -> Decimal:
    """Everything still owed on the live installments (due or not): principal, interest, fee and penalty."""
    total = ZERO
    for i in position.installments:  # attribute arithmetic: this runs for every payment
        total += max(i.principal_due - i.principal_paid, ZERO) + max(i.interest_due - i.interest_paid, ZERO)
        total += max(i.fee_due - i.fee_paid, ZERO) + max(i.penalty_accrued - i.penalty_waived - i.penalty_paid, ZERO)
    return total


def _penalty_may_accrue(position: LoanPosition, until: date) -> bool:
    """Could any installment earn penalty on a day before ``until``? (Only one past due with something unpaid.)

    Penalty totals are a pure function of the position; when nothing is unpaid past its due date
    (plus grace) they cannot have moved since they were last accrued, so recomputing is skipped.
    """
    grace = position.product.penalty.grace_days
    for inst in position.installments:
        if (until - inst.due_date).days > grace and any(inst.outstanding(c) > 0 for c in SCHEDULED_COMPONENTS):
            return True
    return False


def _post_one(
    state: _LoanState,
    req: PaymentRequest,
    *,
    payment_id: int,
    actor: str,
    now: Any,
    writes: _Writes,
) -> PaymentResult:
    """Allocate and journal one payment on ``state`` (mutated only once everything succeeded)."""
    pos = state.position
    loan_id = req.loan_id
    version = pos.schedule_version
    value_date = req.value_date
    accrued_until = state.penalty_accrued_until
    backdated = accrued_until is not None and value_date < accrued_until
    entries: list[JournalEntry] = []
    allocation_rows: list[dict[str, Any]] = []

    penalty_charged = ZERO
    if not backdated:
        if _penalty_may_accrue(pos, value_date):
            before = sum((i.penalty_accrued for i in pos.installments), ZERO)
            pos = accrue_penalties(pos, value_date)
            penalty_charged = sum((i.penalty_accrued for i in pos.installments), ZERO) - before
        accrued_until = value_date
        if penalty_charged:
            entries.append(
                EntryBuilder(EntryKind.PENALTY_ACCRUAL, value_date, loan_id=loan_id, schedule_version=version)
                .debit(LedgerAccount.PENALTY_RECEIVABLE, fen_of(penalty_charged))
                .credit(LedgerAccount.PENALTY_INCOME, fen_of(penalty_charged))
                .build()
            )

    allocation = allocate(pos, req.amount, paid_on=value_date)
    pos = apply_allocation(pos, allocation)
    entries.append(allocation_entry(allocation, loan_id=loan_id, version=version, payment_id=payment_id))
    allocation_rows += postings.allocation_rows(allocation, loan_id=loan_id, version=version, payment_id=payment_id)

    spent = apply_credit(pos, value_date)
    if spent.amount > 0:
        pos = apply_allocation(pos, spent)
        entries.append(allocation_entry(spent, loan_id=loan_id, version=version, payment_id=None))
        allocation_rows += postings.allocation_rows(spent, loan_id=loan_id, version=version, payment_id=None)

    left = remaining(pos)
    waived_total = left if pos.credit_balance == 0 and ZERO < left < pos.product.residual_tolerance else ZERO
    waived: dict[tuple[int, Component], int] = {}
    if waived_total > 0:
        pos, waived = _sweep(pos)
        principal = sum(v for (_, c), v in waived.items() if c is Component.PRINCIPAL)
        penalty = sum(v for (_, c), v in waived.items() if c is Component.PENALTY)
        # Interest and fee are income only when paid, so waiving them moves no booked balance.
        if principal or penalty:
            entries.append(
                EntryBuilder(
                    EntryKind.WAIVER,
                    value_date,
                    loan_id=loan_id,
                    payment_id=payment_id,
                    schedule_version=version,
                    memo="residual sweep",
                )
                .debit(LedgerAccount.WAIVERS, principal + penalty)
                .credit(LedgerAccount.LOANS_RECEIVABLE, principal)
                .credit(LedgerAccount.PENALTY_RECEIVABLE, penalty)
                .build()
            )

    # Everything computed: commit the new state for this loan and queue the rows.
    closes = left <= 0 or waived_total > 0
    state.position = pos
    state.touched = True
    for k, v in waived.items():
        state.waived[k] = state.waived.get(k, 0) + v
    touched = {line.number for line in (*allocation.lines, *spent.lines)} | {n for n, _ in waived}
    for inst in pos.installments:
        number = inst.number
        fresh = number in touched and number not in state.settled_on and state.rows[number].settled_on is None
        if fresh and inst.is_settled:
            state.settled_on[number] = value_date
    state.penalty_accrued_until = accrued_until
    state.last_value_date = max(filter(None, (state.last_value_date, value_date)))
    if backdated:
        state.repost_from = min(filter(None, (state.repost_from, value_date)))
    state.dpd_as_of = max(filter(None, (state.dpd_as_of, value_date, state.record.last_closed_on)))
    if closes:
        state.status = LoanStatus.CLOSED.value
        state.closed_on = value_date
        state.close_reason = "residual-swept" if waived_total > 0 else "paid"

    writes.payments.append(
        {
            "id": payment_id,
            "loan_id": loan_id,
            "amount_fen": fen_of(req.amount),
            "value_date": value_date,
            "received_at": now,
            "idempotency_key": req.idempotency_key,
            "status": PaymentStatus.POSTED.value,
            "actor": actor,
            "schedule_version": version,
            "credited_fen": fen_of(allocation.credited),
            "prepaid_principal_fen": fen_of(allocation.prepaid_principal),
            "waived_fen": fen_of(waived_total),
            "penalty_charged_fen": fen_of(penalty_charged),
        }
    )
    writes.allocations.extend(allocation_rows)
    writes.entries.extend(entries)
    details: dict[str, Any] = {
        "loan_id": loan_id,
        "amount": str(req.amount),
        "value_date": value_date.isoformat(),
        "idempotency_key": req.idempotency_key,
        "credited": str(allocation.credited),
        "credit_spent": str(spent.amount),
        "penalty_charged": str(penalty_charged),
    }
    if allocation.repriced:
        details["repriced"] = [line.to_dict() for line in allocation.repriced]
    if waived_total:
        details["waived"] = str(waived_total)
    if backdated:
        details["backdated"] = True
    writes.audit.append(audit_entry(now, actor, "payment.posted", "payment", str(payment_id), details))
    if closes:
        writes.audit.append(
            audit_entry(
                now, actor, "loan.closed", "loan", loan_id, {"on": value_date.isoformat(), "reason": state.close_reason}
            )
        )

    return PaymentResult(
        payment_id=payment_id,
        loan_id=loan_id,
        amount=req.amount,
        value_date=value_date,
        idempotency_key=req.idempotency_key,
        lines=allocation.lines,
        credited=allocation.credited,
        prepaid_principal=allocation.prepaid_principal,
        waived=waived_total,
        penalty_charged=penalty_charged,
        loan_status=state.status,
        outstanding_principal=pos.outstanding_principal,
        backdated=backdated,
    )


def _sweep(position: LoanPosition) -> tuple[LoanPosition, dict[tuple[int, Component], int]]:
    """Waive everything left on every live installment; returns the new position and fen waived."""
    waived: dict[tuple[int, Component], int] = {}
    new: list[InstallmentPosition] = []
    for inst in position.installments:
        left = {c: max(inst.outstanding(c), ZERO) for c in Component}
        for c, v in left.items():
            if v > 0:
                waived[(inst.number, c)] = fen_of(v)
        new.append(
            replace(
                inst,
                principal_due=inst.principal_due - left[Component.PRINCIPAL],
                interest_due=inst.interest_due - left[Component.INTEREST],
                fee_due=inst.fee_due - left[Component.FEE],
                penalty_waived=inst.penalty_waived + left[Component.PENALTY],
            )
        )
    return replace(position, installments=tuple(new)), waived


def _write(
    uow: UnitOfWork, states: dict[str, _LoanState], writes: _Writes, *, actor: str, now: Any, entry_ids: list[int]
) -> None:
    """Write a chunk's rows set-based: payments, allocations, journal, installments, loans, audit."""
    ledger = uow.ledger
    ledger.insert_payments(writes.payments)
    ledger.insert_allocations(writes.allocations)
    post_entries(uow.connection, writes.entries, actor=actor, posted_at=now, ids=entry_ids)
    installment_rows: list[dict[str, Any]] = []
    loan_rows: list[dict[str, Any]] = []
    for state in states.values():
        if not state.touched:
            continue
        installment_rows.extend(_installment_updates(state))
        loan_rows.append(_loan_update(state, now=now))
    ledger.update_installments(installment_rows)
    ledger.update_loans(loan_rows)
    ledger.append_audit(writes.audit)


def _installment_updates(state: _LoanState) -> list[dict[str, Any]]:
    """Rows for the installments whose position changed (paid, penalty, repriced, waived or settled)."""
    out: list[dict[str, Any]] = []
    for inst in state.position.installments:
        number = inst.number
        row = state.rows[number]
        initial = state.initial[number]
        if (inst is initial or inst == initial) and number not in state.settled_on:
            continue
        w = {c: row_waived + state.waived.get((number, c), 0) for c, row_waived in _row_waived(row).items()}
        out.append(
            {
                "loan_id": row.loan_id,
                "schedule_version": row.schedule_version,
                "number": number,
                "principal_due_fen": fen_of(inst.principal_due) + w[Component.PRINCIPAL],
                "interest_due_fen": fen_of(inst.interest_due) + w[Component.INTEREST],
                "fee_due_fen": fen_of(inst.fee_due) + w[Component.FEE],
                "principal_paid_fen": fen_of(inst.principal_paid),
                "interest_paid_fen": fen_of(inst.interest_paid),
                "fee_paid_fen": fen_of(inst.fee_paid),
                "principal_waived_fen": w[Component.PRINCIPAL],
                "interest_waived_fen": w[Component.INTEREST],
                "fee_waived_fen": w[Component.FEE],
                "penalty_accrued_fen": fen_of(inst.penalty_accrued),
                "penalty_paid_fen": fen_of(inst.penalty_paid),
                "penalty_waived_fen": fen_of(inst.penalty_waived),
                "settled_on": state.settled_on.get(number, row.settled_on),
            }
        )
    return out


def _row_waived(row: InstallmentRecord) -> dict[Component, int]:
    return {
        Component.PRINCIPAL: row.principal_waived_fen,
        Component.INTEREST: row.interest_waived_fen,
        Component.FEE: row.fee_waived_fen,
    }


def _loan_update(state: _LoanState, *, now: Any) -> dict[str, Any]:
    pos = state.position
    as_of = state.dpd_as_of or state.record.start_date
    dpd = days_past_due(pos, as_of)
    outstanding_principal = overdue_principal = overdue_amount = ZERO
    oldest_unpaid: date | None = None
    for i in pos.installments:  # attribute arithmetic: this runs for every loan posted to
        principal = i.principal_due - i.principal_paid
        outstanding_principal += principal
        scheduled = principal + (i.interest_due - i.interest_paid) + (i.fee_due - i.fee_paid)
        if scheduled > 0 and (oldest_unpaid is None or i.due_date < oldest_unpaid):
            oldest_unpaid = i.due_date
        if i.due_date < as_of:
            overdue_principal += max(principal, ZERO)
            overdue_amount += max(scheduled, ZERO)
    return {
        "id": state.record.id,
        "status": state.status,
        "closed_on": state.closed_on,
        "close_reason": state.close_reason,
        "credit_balance_fen": fen_of(pos.credit_balance),
        "outstanding_principal_fen": fen_of(outstanding_principal),
        "oldest_unpaid_due_date": oldest_unpaid,
        "dpd": dpd,
        "bucket": bucket_of(dpd).value,
        "overdue_principal_fen": fen_of(overdue_principal),
        "overdue_amount_fen": fen_of(overdue_amount),
        "penalty_charged_fen": fen_of(pos.penalty_charged_total),
        "penalty_accrued_until": state.penalty_accrued_until,
        "last_value_date": state.last_value_date,
        "repost_from": state.repost_from,
        "updated_at": now,
    }


def _replays(uow: UnitOfWork, records: Sequence[PaymentRecord]) -> dict[int, PaymentResult]:
    """The results of payments posted by earlier transactions, rebuilt from their rows."""
    ledger = uow.ledger
    by_payment = ledger.allocations_of_payments(r.id for r in records)
    loans_now = ledger.loans({r.loan_id for r in records})
    out: dict[int, PaymentResult] = {}
    for rec in records:
        lines = tuple(
            AllocationLine(a.installment_number, Component(a.component), from_minor(a.amount_fen))
            for a in by_payment.get(rec.id, [])
            if a.installment_number is not None and a.component != AllocationComponent.CREDIT.value
        )
        loan = loans_now[rec.loan_id]
        out[rec.id] = PaymentResult(
            payment_id=rec.id,
            loan_id=rec.loan_id,
            amount=from_minor(rec.amount_fen),
            value_date=rec.value_date,
            idempotency_key=rec.idempotency_key,
            lines=lines,
            credited=from_minor(rec.credited_fen),
            prepaid_principal=from_minor(rec.prepaid_principal_fen),
            waived=from_minor(rec.waived_fen),
            penalty_charged=from_minor(rec.penalty_charged_fen),
            loan_status=loan.status,
            outstanding_principal=from_minor(loan.outstanding_principal_fen),
            replayed=True,
        )
    return out
