"""The repost (回溯重算) of one loan: a backdated payment re-allocates and re-accrues penalties from its value date.

A payment whose value date lies before the day penalties were accrued to is first allocated against
the position as it stood (``runoff.app.payments`` flags the loan with ``loans.repost_from``). The
repost makes the books what they would have been had the payment arrived on time, touching this
loan's rows only:

1. replay every payment of the live schedule version in value-date order with the pure
   :func:`~runoff.servicing.allocation.replay_payments` (credit spent on due dates, penalties
   brought to each value date), up to the day penalties were accrued to;
2. keep the allocations dated before the repost date (they come out the same), reverse the others
   and write the replayed ones; the repost date moves earlier by itself if the replay differs before it;
3. mirror the journal entries dated on or after the repost date (payments, credit applied, penalty
   accruals) on their own value dates and post the new ones, so a balance read as of any past date is
   what it would have been (penalty accruals are re-posted on every date that had one, plus each
   allocation's date, at :func:`~runoff.servicing.delinquency.penalty_due_to_date` of that day);
4. rewrite the installments' paid and penalty columns and the loan's denormalised position.

Amounts repaid before the ledger's history (an imported book: paid columns with no dated allocation)
stay paid on or before their due date, as servicing reads them. Reads and writes are set-based over the
loans given (a chunk of the daily close, or one loan from ``runoff ledger repost``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from runoff.errors import Conflict, NotFound
from runoff.money import from_minor, to_minor
from runoff.servicing.allocation import Allocation, FundingSource, replay_payments
from runoff.servicing.delinquency import bucket_of, days_past_due, penalty_due_to_date
from runoff.servicing.position import SCHEDULED_COMPONENTS, ZERO, InstallmentPosition, LoanPosition
from runoff.servicing.product import Component, Overpayment, Product
from runoff.servicing.schedule import build_schedule
from runoff.store.ledger.journal import JournalEntry, JournalLine, load_entries, post_entries, reversal_of
from runoff.store.ledger.models import (
    AllocationComponent,
    AllocationSource,
    EntryKind,
    LedgerAccount,
    LoanStatus,
    PaymentStatus,
    allocations,
    journal_entries,
    journal_lines,
    loans,
    payments,
)
from runoff.store.ledger.postings import allocation_entry, allocation_rows
from runoff.store.ledger.repository import (
    InstallmentRecord,
    LedgerRepository,
    LoanRecord,
    ScheduleVersionRecord,
    audit_entry,
)

# Entries a repost mirrors and re-posts: every one whose amounts follow from the allocations and penalty.
REPOSTED_KINDS = (EntryKind.PAYMENT, EntryKind.CREDIT_APPLIED, EntryKind.PENALTY_ACCRUAL)
LOANS_PER_QUERY = 500

_PAID_COLUMN = {
    Component.PRINCIPAL: "principal_paid_fen",
    Component.INTEREST: "interest_paid_fen",
    Component.FEE: "fee_paid_fen",
    Component.PENALTY: "penalty_paid_fen",
}


@dataclass(frozen=True, slots=True)
class RepostResult:
    """What one loan's repost changed: the dates, rows reversed and posted, and its penalty before and after."""

    loan_id: str
    requested_from: date
    reposted_from: date  # earlier than requested when the replay differs before it
    as_of: date  # penalties are accrued for every day before this date, as before the repost
    allocations_reversed: int
    allocations_posted: int
    entries_reversed: int
    entries_posted: int
    penalty_before_fen: int
    penalty_after_fen: int
    closed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "loan_id": self.loan_id,
            "requested_from": self.requested_from.isoformat(),
            "reposted_from": self.reposted_from.isoformat(),
            "as_of": self.as_of.isoformat(),
            "allocations_reversed": self.allocations_reversed,
            "allocations_posted": self.allocations_posted,
            "entries_reversed": self.entries_reversed,
            "entries_posted": self.entries_posted,
            "penalty_before": str(from_minor(self.penalty_before_fen)),
            "penalty_after": str(from_minor(self.penalty_after_fen)),
            "closed": self.closed,
        }


# --- the loan's denormalised columns from a position (shared with the daily close) ---------------------------------


def loan_position_columns(position: LoanPosition, *, as_of: date) -> dict[str, Any]:
    """The ``loans`` columns that follow from ``position``, with days past due and bucket as of ``as_of``."""
    dpd = days_past_due(position, as_of)
    overdue = [i for i in position.installments if i.due_date < as_of]
    unpaid = [i.due_date for i in position.installments if i.outstanding_scheduled > 0]
    return {
        "credit_balance_fen": to_minor(position.credit_balance),
        "outstanding_principal_fen": to_minor(position.outstanding_principal),
        "oldest_unpaid_due_date": min(unpaid) if unpaid else None,
        "dpd": dpd,
        "bucket": bucket_of(dpd).value,
        "overdue_principal_fen": to_minor(sum((max(i.outstanding(Component.PRINCIPAL), ZERO) for i in overdue), ZERO)),
        "overdue_amount_fen": to_minor(
            sum((max(i.outstanding(c), ZERO) for i in overdue for c in SCHEDULED_COMPONENTS), ZERO)
        ),
        "penalty_charged_fen": to_minor(position.penalty_charged_total),
    }


def installment_columns(
    row: InstallmentRecord, inst: InstallmentPosition, *, undated: Mapping[Component, int] | None = None
) -> dict[str, Any]:
    """The ``installments`` row for ``inst`` (servicing's view: due net of waivers) with ``row``'s waivers put back.

    ``undated``: fen taken out of what is due and paid for a replay (paid before the ledger's history),
    added back here.
    """
    u = {c: 0 for c in Component} | dict(undated or {})
    settled_on = row.settled_on
    if inst.is_settled:
        dated = [p.paid_on for p in inst.dated_payments]
        settled_on = max(dated) if dated else settled_on
    else:
        settled_on = None
    return {
        "loan_id": row.loan_id,
        "schedule_version": row.schedule_version,
        "number": row.number,
        "principal_due_fen": to_minor(inst.principal_due) + u[Component.PRINCIPAL] + row.principal_waived_fen,
        "interest_due_fen": to_minor(inst.interest_due) + u[Component.INTEREST] + row.interest_waived_fen,
        "fee_due_fen": to_minor(inst.fee_due) + u[Component.FEE] + row.fee_waived_fen,
        "principal_paid_fen": to_minor(inst.principal_paid) + u[Component.PRINCIPAL],
        "interest_paid_fen": to_minor(inst.interest_paid) + u[Component.INTEREST],
        "fee_paid_fen": to_minor(inst.fee_paid) + u[Component.FEE],
        "penalty_accrued_fen": to_minor(inst.penalty_accrued),
        "penalty_paid_fen": to_minor(inst.penalty_paid) + u[Component.PENALTY],
        "penalty_waived_fen": to_minor(inst.penalty_waived) - u[Component.PENALTY],
        "settled_on": settled_on,
    }


def penalty_entry(
    loan_id: str,
    amount_fen: int,
    *,
    value_date: date,
    version: int,
    close_id: int | None = None,
    memo: str | None = None,
) -> JournalEntry:
    """Penalty charged (Dr penalty_receivable, Cr penalty_income); a negative amount takes it back."""
    dr, cr = (LedgerAccount.PENALTY_RECEIVABLE, LedgerAccount.PENALTY_INCOME)
    if amount_fen < 0:
        dr, cr = cr, dr
    amount = abs(amount_fen)
    return JournalEntry(
        kind=EntryKind.PENALTY_ACCRUAL,
        value_date=value_date,
        lines=(JournalLine(dr, debit_fen=amount), JournalLine(cr, credit_fen=amount)),
        loan_id=loan_id,
        schedule_version=version,
        close_id=close_id,
        memo=memo,
    )


# --- reading what a repost needs, for many loans at once -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _StoredAllocation:
    id: int
    source: str
    payment_id: int | None
    number: int | None
    component: str
    value_date: date
    amount_fen: int

    def key(self) -> tuple[Any, ...]:
        return (self.value_date, self.source, self.payment_id, self.number, self.component, self.amount_fen)


@dataclass(frozen=True, slots=True)
class _StoredEntry:
    id: int
    entry: JournalEntry

    @property
    def value_date(self) -> date:
        return self.entry.value_date

    @property
    def kind(self) -> EntryKind:
        return self.entry.kind


def _signature(entry: JournalEntry) -> tuple[Any, ...]:
    """What an entry moves (kind, date, payment, lines), its memo and close aside."""
    lines = sorted((line.account.value, line.debit_fen, line.credit_fen) for line in entry.lines)
    return (entry.kind.value, entry.value_date, entry.payment_id, tuple(lines))


@dataclass(slots=True)
class _LoanBooks:
    """One loan's rows a repost reads."""

    record: LoanRecord
    version: ScheduleVersionRecord
    rows: list[InstallmentRecord]
    allocations: list[_StoredAllocation] = field(default_factory=list)
    payments: list[tuple[int, date, int, int]] = field(default_factory=list)  # id, value date, amount, prepaid
    entries: list[_StoredEntry] = field(default_factory=list)  # reposted kinds, not reversed
    penalty_income: list[tuple[date, int]] = field(default_factory=list)  # (value date, credit − debit)


def _read_books(conn: Connection, records: Sequence[LoanRecord], repo: LedgerRepository) -> dict[str, _LoanBooks]:
    versions = repo.live_versions(r.id for r in records)
    rows = repo.installments_of((r.id, r.schedule_version) for r in records)
    books: dict[str, _LoanBooks] = {}
    for r in records:
        version = versions.get(r.id)
        if version is None:
            raise NotFound(f"loan {r.id!r} has no schedule version {r.schedule_version}", field="loan")
        books[r.id] = _LoanBooks(r, version, rows[(r.id, r.schedule_version)])
    live = {r.id: r.schedule_version for r in records}
    ids = sorted(live)
    for start in range(0, len(ids), LOANS_PER_QUERY):
        chunk = ids[start : start + LOANS_PER_QUERY]
        a = allocations
        for arow in conn.execute(
            select(
                a.c.id,
                a.c.loan_id,
                a.c.schedule_version,
                a.c.source,
                a.c.payment_id,
                a.c.installment_number,
                a.c.component,
                a.c.value_date,
                a.c.amount_fen,
            )
            .where(a.c.loan_id.in_(chunk), a.c.reversed.is_(False))
            .order_by(a.c.id)
        ):
            if arow.schedule_version == live[arow.loan_id]:
                books[arow.loan_id].allocations.append(
                    _StoredAllocation(
                        int(arow.id),
                        arow.source,
                        arow.payment_id,
                        arow.installment_number,
                        arow.component,
                        arow.value_date,
                        int(arow.amount_fen),
                    )
                )
        p = payments
        for prow in conn.execute(
            select(p.c.id, p.c.loan_id, p.c.schedule_version, p.c.value_date, p.c.amount_fen, p.c.prepaid_principal_fen)
            .where(p.c.loan_id.in_(chunk), p.c.status == PaymentStatus.POSTED.value)
            .order_by(p.c.value_date, p.c.id)
        ):
            if prow.schedule_version == live[prow.loan_id]:
                books[prow.loan_id].payments.append(
                    (int(prow.id), prow.value_date, int(prow.amount_fen), int(prow.prepaid_principal_fen))
                )
        je = journal_entries
        reversed_ids = set(
            conn.execute(
                select(je.c.reverses_entry_id).where(je.c.loan_id.in_(chunk), je.c.reverses_entry_id.is_not(None))
            ).scalars()
        )
        wanted = [
            int(erow.id)
            for erow in conn.execute(
                select(je.c.id, je.c.loan_id, je.c.schedule_version)
                .where(je.c.loan_id.in_(chunk), je.c.kind.in_([k.value for k in REPOSTED_KINDS]))
                .order_by(je.c.id)
            )
            if erow.schedule_version == live[erow.loan_id] and erow.id not in reversed_ids
        ]
        loaded = load_entries(conn, wanted)
        for entry_id in wanted:
            entry = loaded[entry_id]
            assert entry.loan_id is not None
            books[entry.loan_id].entries.append(_StoredEntry(entry_id, entry))
        jl = journal_lines
        for lrow in conn.execute(
            select(jl.c.loan_id, jl.c.value_date, je.c.schedule_version, jl.c.debit_fen, jl.c.credit_fen)
            .join(je, je.c.id == jl.c.entry_id)
            .where(jl.c.loan_id.in_(chunk), jl.c.account == LedgerAccount.PENALTY_INCOME.value)
        ):
            if lrow.schedule_version == live[lrow.loan_id]:
                books[lrow.loan_id].penalty_income.append((lrow.value_date, int(lrow.credit_fen) - int(lrow.debit_fen)))
    return books


# --- the repost of one loan, computed -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Writes:
    reverse_allocations: list[int] = field(default_factory=list)
    new_allocations: list[dict[str, Any]] = field(default_factory=list)
    reverse_entries: list[_StoredEntry] = field(default_factory=list)
    new_entries: list[JournalEntry] = field(default_factory=list)
    installments: list[dict[str, Any]] = field(default_factory=list)
    loans: list[dict[str, Any]] = field(default_factory=list)
    payments: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)


def _replay_base(books: _LoanBooks, product: Product) -> tuple[LoanPosition, dict[int, dict[Component, int]]]:
    """The live schedule with nothing paid, as replay_payments wants it, and the undated paid amounts per installment.

    Amounts paid with no dated allocation (before the ledger's history) come off what is due, so the
    replay sees them as paid on time; a prepayment's repricing is undone from the rebuilt schedule.
    """
    dated: dict[tuple[int, str], int] = defaultdict(int)
    for a in books.allocations:
        if a.number is not None:
            dated[(a.number, a.component)] += a.amount_fen
    original = _original_dues(books, product)
    undated: dict[int, dict[Component, int]] = {}
    installments = []
    for row in books.rows:
        paid = {c: getattr(row, _PAID_COLUMN[c]) for c in Component}
        u = {c: max(paid[c] - dated[(row.number, c.value)], 0) for c in Component}
        undated[row.number] = u
        interest_due, fee_due = original.get(row.number, (row.interest_due_fen, row.fee_due_fen))
        installments.append(
            InstallmentPosition(
                number=row.number,
                due_date=row.due_date,
                principal_due=from_minor(row.principal_due_fen - row.principal_waived_fen - u[Component.PRINCIPAL]),
                interest_due=from_minor(interest_due - row.interest_waived_fen - u[Component.INTEREST]),
                fee_due=from_minor(fee_due - row.fee_waived_fen - u[Component.FEE]),
                penalty_accrued=from_minor(row.penalty_accrued_fen),
                penalty_waived=from_minor(row.penalty_waived_fen + u[Component.PENALTY]),
                accrual_start=row.accrual_start,
            )
        )
    v = books.version
    position = LoanPosition(
        loan_id=books.record.id,
        product=product,
        principal=from_minor(v.principal_fen),
        start_date=v.start_date,
        installments=tuple(installments),
        schedule_version=books.record.schedule_version,
        penalty_charged_total=from_minor(books.record.penalty_charged_fen),
        annual_rate=Decimal(v.annual_rate) if v.annual_rate is not None else None,
        fee_rate=Decimal(v.fee_rate) if v.fee_rate is not None else None,
    )
    return position, undated


def _original_dues(books: _LoanBooks, product: Product) -> dict[int, tuple[int, int]]:
    """Interest and fee of each installment as the schedule was written, when a prepayment repriced them since."""
    if product.allocation.overpayment is not Overpayment.PREPAY_PRINCIPAL or not any(p[3] for p in books.payments):
        return {}
    v = books.version
    schedule = build_schedule(
        product,
        principal=from_minor(v.principal_fen),
        term=v.term,
        start_date=v.start_date,
        annual_rate=Decimal(v.annual_rate) if v.annual_rate is not None else None,
        fee_rate=Decimal(v.fee_rate) if v.fee_rate is not None else None,
    )
    written = {i.number: i for i in schedule.installments}
    for row in books.rows:
        inst = written.get(row.number)
        if inst is None or inst.due_date != row.due_date or to_minor(inst.principal) != row.principal_due_fen:
            raise Conflict(
                f"`loan`: {books.record.id}'s schedule version {v.version} cannot be rebuilt to undo a prepayment's "
                "repricing; it cannot be reposted automatically",
                field="loan",
            )
    return {n: (to_minor(i.interest), to_minor(i.fee)) for n, i in written.items()}


def _opening_credit(books: _LoanBooks) -> int:
    """Credit the loan held before its live schedule version's first allocation (carried over a re-schedule)."""
    credited = sum(a.amount_fen for a in books.allocations if a.component == AllocationComponent.CREDIT.value)
    spent = sum(a.amount_fen for a in books.allocations if a.source == AllocationSource.CREDIT.value)
    return books.record.credit_balance_fen - credited + spent


def _plan_repost(
    books: _LoanBooks,
    product: Product,
    *,
    from_date: date,
    conn: Connection,
    actor: str,
    now: datetime,
    close_id: int | None,
    writes: _Writes,
) -> RepostResult:
    record = books.record
    loan_id, version = record.id, record.schedule_version
    if _opening_credit(books) != 0:
        raise Conflict(
            f"`loan`: {loan_id} holds credit from before its schedule version {version}; "
            "it cannot be reposted automatically",
            field="loan",
        )
    paid = [(value_date, from_minor(amount)) for _, value_date, amount, _ in books.payments]
    as_of = max(
        filter(None, (record.penalty_accrued_until, books.version.start_date, *(d for d, _ in paid))),
    )
    base, undated = _replay_base(books, product)
    final, replayed = replay_payments(base, paid, as_of=as_of)

    payment_ids = iter(p[0] for p in books.payments)
    new_rows: list[dict[str, Any]] = []
    new_allocs: list[tuple[Allocation, int | None]] = []
    for allocation in replayed:
        pid = next(payment_ids) if allocation.source is FundingSource.PAYMENT else None
        new_allocs.append((allocation, pid))
        new_rows += allocation_rows(allocation, loan_id=loan_id, version=version, payment_id=pid)

    stored_by_date: dict[date, Counter[tuple[Any, ...]]] = defaultdict(Counter)
    for a in books.allocations:
        stored_by_date[a.value_date][a.key()] += 1
    new_by_date: dict[date, Counter[tuple[Any, ...]]] = defaultdict(Counter)
    for r in new_rows:
        key = (r["value_date"], r["source"], r["payment_id"], r["installment_number"], r["component"], r["amount_fen"])
        new_by_date[r["value_date"]][key] += 1
    differs = [d for d in sorted(set(stored_by_date) | set(new_by_date)) if stored_by_date[d] != new_by_date[d]]
    start = min(from_date, differs[0]) if differs else from_date

    reversed_allocations = [a.id for a in books.allocations if a.value_date >= start]
    posted_rows = [r for r in new_rows if r["value_date"] >= start]
    reversed_entries = [e for e in books.entries if e.value_date >= start]

    # Penalty accrued as of each date that had an accrual or now has an allocation, from the replayed history.
    penalty_before = sum(income for day, income in books.penalty_income if day < start)
    points = sorted(
        {e.value_date for e in reversed_entries if e.kind is EntryKind.PENALTY_ACCRUAL}
        | {a.paid_on for a, _ in new_allocs if a.paid_on >= start}
        | {as_of}
    )
    entries: list[JournalEntry] = []
    allocations_by_date: dict[date, list[tuple[Allocation, int | None]]] = defaultdict(list)
    for allocation, pid in new_allocs:
        if allocation.paid_on >= start:
            allocations_by_date[allocation.paid_on].append((allocation, pid))
    charged = penalty_before
    memo = f"repost from {start.isoformat()}"
    for day in points:
        total = to_minor(sum((c.amount for c in penalty_due_to_date(final, day)), ZERO))
        if total != charged:
            entries.append(
                penalty_entry(loan_id, total - charged, value_date=day, version=version, close_id=close_id, memo=memo)
            )
            charged = total
        for allocation, pid in allocations_by_date.pop(day, []):
            if allocation.amount > 0:
                entries.append(allocation_entry(allocation, loan_id=loan_id, version=version, payment_id=pid))

    # Nothing moves (a second repost, or a backdated payment that changed nothing): write no reversals.
    same_entries = Counter(_signature(e.entry) for e in reversed_entries) == Counter(_signature(e) for e in entries)
    same_allocations = Counter(a.key() for a in books.allocations if a.value_date >= start) == Counter(
        (r["value_date"], r["source"], r["payment_id"], r["installment_number"], r["component"], r["amount_fen"])
        for r in posted_rows
    )
    if same_entries and same_allocations:
        reversed_allocations, posted_rows, reversed_entries, entries = [], [], [], []

    penalty_after = to_minor(sum((i.penalty_accrued for i in final.installments), ZERO))
    rows_by_number = {row.number: row for row in books.rows}
    for inst in final.installments:
        values = installment_columns(rows_by_number[inst.number], inst, undated=undated[inst.number])
        row = rows_by_number[inst.number]
        if any(getattr(row, k) != v for k, v in values.items()):
            writes.installments.append(values)
    restored = replace(
        final,
        installments=tuple(
            replace(
                i,
                principal_due=i.principal_due + from_minor(undated[i.number][Component.PRINCIPAL]),
                interest_due=i.interest_due + from_minor(undated[i.number][Component.INTEREST]),
                fee_due=i.fee_due + from_minor(undated[i.number][Component.FEE]),
                principal_paid=i.principal_paid + from_minor(undated[i.number][Component.PRINCIPAL]),
                interest_paid=i.interest_paid + from_minor(undated[i.number][Component.INTEREST]),
                fee_paid=i.fee_paid + from_minor(undated[i.number][Component.FEE]),
            )
            for i in final.installments
        ),
    )
    closes = restored.is_settled
    loan_row: dict[str, Any] = {
        "id": loan_id,
        **loan_position_columns(restored, as_of=record.last_closed_on or as_of),
        "penalty_accrued_until": as_of,
        "repost_from": None,
        "status": record.status,
        "closed_on": record.closed_on,
        "close_reason": record.close_reason,
        "updated_at": now,
    }
    if closes:
        last = max((a.paid_on for a, _ in new_allocs), default=as_of)
        loan_row |= {"status": LoanStatus.CLOSED.value, "closed_on": last, "close_reason": "paid"}
    writes.loans.append(loan_row)

    by_payment = {pid: a for a, pid in new_allocs if pid is not None}
    for pid, value_date, _, _ in books.payments:
        if value_date >= start and posted_rows:
            made = by_payment[pid]
            writes.payments.append(
                {
                    "id": pid,
                    "credited_fen": to_minor(made.credited),
                    "prepaid_principal_fen": to_minor(made.prepaid_principal),
                }
            )
    writes.reverse_allocations += reversed_allocations
    writes.new_allocations += posted_rows
    writes.reverse_entries += reversed_entries
    writes.new_entries += entries
    result = RepostResult(
        loan_id=loan_id,
        requested_from=from_date,
        reposted_from=start,
        as_of=as_of,
        allocations_reversed=len(reversed_allocations),
        allocations_posted=len(posted_rows),
        entries_reversed=len(reversed_entries),
        entries_posted=len(entries) + len(reversed_entries),
        penalty_before_fen=sum(r.penalty_accrued_fen for r in books.rows),
        penalty_after_fen=penalty_after,
        closed=closes,
    )
    details = result.to_dict() | {"close_id": close_id}
    writes.audit.append(audit_entry(now, actor, "loan.reposted", "loan", loan_id, details))
    if closes:
        closed = {"on": loan_row["closed_on"].isoformat(), "reason": "paid", "by": "repost"}
        writes.audit.append(audit_entry(now, actor, "loan.closed", "loan", loan_id, closed))
    return result


# --- entry points ---------------------------------------------------------------------------------------------------


def loans_to_repost(conn: Connection, *, as_of: date) -> list[str]:
    """Open loans flagged for a repost from a date on or before ``as_of``, in id order (one range of its index)."""
    query = select(loans.c.id, loans.c.status).where(loans.c.repost_from <= as_of)
    return sorted(str(r.id) for r in conn.execute(query) if r.status == LoanStatus.OPEN.value)


def repost_loans(
    ledger: LedgerRepository,
    loan_ids: Iterable[str],
    *,
    actor: str,
    now: datetime,
    from_date: date | None = None,
    close_id: int | None = None,
) -> list[RepostResult]:
    """Repost each loan from ``from_date`` (default: its ``repost_from``), set-based over the loans given.

    A loan with neither is reposted from its live schedule version's start. Only these loans' rows
    are read or written; their rows are locked first (PostgreSQL ``FOR UPDATE``).
    """
    repo = ledger
    conn = ledger.conn
    ids = sorted(set(loan_ids))
    results: list[RepostResult] = []
    for start in range(0, len(ids), LOANS_PER_QUERY):
        chunk = ids[start : start + LOANS_PER_QUERY]
        records = repo.loans(chunk, lock=True)
        for loan_id in chunk:
            rec = records.get(loan_id)
            if rec is None:
                raise NotFound(f"`loan`: no loan {loan_id!r} in the ledger", field="loan")
            if rec.status != LoanStatus.OPEN.value:
                raise Conflict(f"`loan`: {loan_id} is {rec.status}; only an open loan can be reposted", field="loan")
        books = _read_books(conn, [records[i] for i in chunk], repo)
        writes = _Writes()
        for loan_id in chunk:
            b = books[loan_id]
            begin = (
                min(filter(None, (from_date, b.record.repost_from))) if (from_date or b.record.repost_from) else None
            )
            results.append(
                _plan_repost(
                    b,
                    repo.product(b.record.product_id, b.record.product_version),
                    from_date=begin or b.version.start_date,
                    conn=conn,
                    actor=actor,
                    now=now,
                    close_id=close_id,
                    writes=writes,
                )
            )
        _write(conn, repo, writes, actor=actor, now=now)
    return results


def _write(conn: Connection, repo: LedgerRepository, writes: _Writes, *, actor: str, now: datetime) -> None:
    ref = f"repost@{now.isoformat()}"
    if writes.reverse_allocations:
        conn.execute(
            update(allocations).where(allocations.c.id == bindparam("b_id")).values(reversed=True, reversal_ref=ref),
            [{"b_id": i} for i in writes.reverse_allocations],
        )
    repo.insert_allocations(writes.new_allocations)
    mirrors = [
        reversal_of(e.id, e.entry, value_date=e.value_date, memo=f"repost: reverses entry {e.id}")
        for e in writes.reverse_entries
    ]
    post_entries(conn, [*mirrors, *writes.new_entries], actor=actor, posted_at=now)
    repo.update_installments(writes.installments)
    _update_rows(conn, writes.loans)
    if writes.payments:
        conn.execute(
            update(payments)
            .where(payments.c.id == bindparam("b_id"))
            .values(
                credited_fen=bindparam("b_credited_fen"), prepaid_principal_fen=bindparam("b_prepaid_principal_fen")
            ),
            [{f"b_{k}": v for k, v in row.items()} for row in writes.payments],
        )
    repo.append_audit(writes.audit)


def _update_rows(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Update loans whose rows may carry different column sets (grouped so each executemany is uniform)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    repo = LedgerRepository(conn)
    for group in groups.values():
        repo.update_loans(group)


__all__ = [
    "RepostResult",
    "installment_columns",
    "loan_position_columns",
    "loans_to_repost",
    "penalty_entry",
    "repost_loans",
]
