"""The set-based daily close (日终批处理): days past due, buckets and penalty interest for every open loan.

The close of ``as_of`` states the book as of that day, as the servicing functions do with the same
``as_of``: days past due are :func:`~runoff.servicing.delinquency.days_past_due` (what is unpaid at
the end of ``as_of``), penalty is :func:`~runoff.servicing.delinquency.penalty_due_to_date` (every
day before ``as_of``), and ``loans.penalty_accrued_until`` becomes ``as_of``: a payment with value
date ``as_of`` that arrives after the close is not backdated; one dated earlier is.

Only loans that can change are read: loans with an installment overdue (``oldest_unpaid_due_date``
before ``as_of``, one index range), in pages of ``chunk_size``, each page three SELECTs pulling only
the columns needed, computed with NumPy, written back in bulk (executemany on SQLite; COPY into a
temporary table and one ``UPDATE ... FROM`` on PostgreSQL). Loans that are current need nothing,
except a reset when they were delinquent at the last close (one UPDATE). Credit balances are spent on
installments falling due (:func:`apply_credit_falling_due`), a handful of loans read as positions.

Penalty in closed form. For an installment whose penalty window opens on ``s`` (due date + grace days),
the exact penalty before day ``X`` is ``rate × Σ_{d=s}^{X−1} base(d)``; with ``base(d) = B − Σ a``
over the payments ``a`` dated on or before ``d`` (``B``: due less what was paid before the ledger's
history), the sum is ``n·B − Σ a·(X − max(t, s))⁺`` with ``n = (X − s)⁺``: two aggregates over the
installment's dated allocations. That is exactly what :func:`~runoff.servicing.delinquency.accrue_penalty_day`
earns run day by day, without carrying the exact earned amount from one close to the next, so a
catch-up over several days is one computation and equals the daily closes to the fen. Rounding and
the cap's cents trim go through ``accrue_penalty_day`` itself; a loan whose cap binds before ``X``
(the binding day is shared oldest first) is computed by ``penalty_due_to_date`` on its position.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
from sqlalchemy import (
    Connection,
    Date,
    Integer,
    String,
    Table,
    and_,
    any_,
    bindparam,
    cast,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from runoff.money import RoundingMode, to_minor
from runoff.servicing.allocation import apply_allocation, apply_credit
from runoff.servicing.delinquency import (
    BUCKETS,
    PENALTY_UNITS_PER_FEN,
    Bucket,
    accrue_penalties,
    accrue_penalty_day,
    buckets_of,
    penalty_due_to_date,
)
from runoff.servicing.position import ZERO
from runoff.servicing.product import PenaltyBase
from runoff.store.ledger.bulk import write_frame
from runoff.store.ledger.journal import JournalEntry, post_entries
from runoff.store.ledger.models import (
    EntryKind,
    LedgerAccount,
    LoanStatus,
    allocations,
    audit_log,
    installments,
    journal_entries,
    journal_lines,
    ledger_closes,
    loans,
    products,
    schedule_versions,
)
from runoff.store.ledger.postings import allocation_entry, allocation_rows
from runoff.store.ledger.repository import LedgerRepository
from runoff.store.ledger.repost import (
    installment_columns,
    loan_position_columns,
    penalty_entry,
)
from runoff.store.ledger.sequences import reserve_ids

DEFAULT_CHUNK = 20_000
MAX_KEYS_PER_QUERY = 30_000  # under SQLite's 32,766 bound parameters
PPB = 10**9
IntArray = npt.NDArray[np.int64]
Progress = Callable[[int], None]
"""Told how many more loans a step has finished."""


# --- the close's log row ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CloseRecord:
    """A row of ``ledger_closes``."""

    id: int
    as_of: date
    status: str
    loans_processed: int
    penalties_accrued_fen: int
    details: dict[str, Any]


def last_close(conn: Connection) -> CloseRecord | None:
    """The latest finished close (by date, then id), or None before the first."""
    c = ledger_closes
    row = (
        conn.execute(select(c).where(c.c.status == "done").order_by(c.c.as_of.desc(), c.c.id.desc()).limit(1))
        .mappings()
        .first()
    )
    if row is None:
        return None
    return CloseRecord(
        id=int(row["id"]),
        as_of=row["as_of"],
        status=row["status"],
        loans_processed=int(row["loans_processed"]),
        penalties_accrued_fen=int(row["penalties_accrued_fen"]),
        details=dict(row["details"] or {}),
    )


def start_close(conn: Connection, as_of: date, *, actor: str, now: datetime) -> int:
    """Write the close's ``running`` row (PostgreSQL: one close at a time, by an advisory lock); returns its id."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7237362105447310677)")  # "daily-close" lock
    result = conn.execute(
        insert(ledger_closes)
        .values(as_of=as_of, started_at=now, status="running", actor=actor)
        .returning(ledger_closes.c.id)
    )
    return int(result.scalar_one())


def finish_close(
    conn: Connection, close_id: int, *, loans_processed: int, penalties_fen: int, details: dict[str, Any], now: datetime
) -> None:
    conn.execute(
        update(ledger_closes)
        .where(ledger_closes.c.id == close_id)
        .values(
            status="done",
            finished_at=now,
            loans_processed=loans_processed,
            penalties_accrued_fen=penalties_fen,
            details=details,
        )
    )


def fail_close(conn: Connection, close_id: int, *, reason: str, now: datetime) -> None:
    """Mark a close ``failed`` with why (written after the failed close's own transaction rolled back)."""
    conn.execute(
        update(ledger_closes)
        .where(ledger_closes.c.id == close_id)
        .values(status="failed", finished_at=now, details={"error": reason[:2000]})
    )


def audit(
    conn: Connection,
    *,
    actor: str,
    now: datetime,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any],
) -> None:
    conn.execute(
        insert(audit_log).values(
            at=now, actor=actor, action=action, object_type=object_type, object_id=object_id, details=details
        )
    )


# --- credit balances spent on installments falling due --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CreditTotals:
    loans: int = 0
    spent_fen: int = 0
    penalty_fen: int = 0
    entries: int = 0
    closed: int = 0


def apply_credit_falling_due(
    ledger: LedgerRepository,
    as_of: date,
    *,
    close_id: int | None,
    actor: str,
    now: datetime,
    chunk_size: int = 500,
) -> CreditTotals:
    """Spend credit balances (溢缴款) on installments due on or before ``as_of``, on each due date, oldest first.

    As :func:`~runoff.servicing.allocation.replay_payments` does: on a due date, penalties are brought to
    that day, then the credit pays what is due in the product's order. A due date before the day the
    loan's penalties were accrued to is spent on that day instead (never backdated).
    """
    conn = ledger.conn
    ids = [
        str(r)
        for r in conn.execute(
            select(loans.c.id)
            .where(
                loans.c.status == LoanStatus.OPEN.value,
                loans.c.credit_balance_fen > 0,
                loans.c.oldest_unpaid_due_date <= as_of,
                or_(loans.c.penalty_accrued_until.is_(None), loans.c.penalty_accrued_until <= as_of),
            )
            .order_by(loans.c.id)
        ).scalars()
    ]
    repo = ledger
    n_loans = spent_total = penalty_total = n_entries = n_closed = 0
    for start in range(0, len(ids), chunk_size):
        records = repo.loans(ids[start : start + chunk_size], lock=True)
        positions = repo.positions(records.values())
        rows = repo.installments_of((r.id, r.schedule_version) for r in records.values())
        entries: list[JournalEntry] = []
        new_allocations: list[dict[str, Any]] = []
        installment_rows: list[dict[str, Any]] = []
        loan_rows: list[dict[str, Any]] = []
        for loan_id, rec in records.items():
            pos = positions[loan_id]
            version = rec.schedule_version
            until = rec.penalty_accrued_until
            due_dates = sorted(
                {i.due_date for i in pos.installments if i.due_date <= as_of and i.outstanding_scheduled > 0}
            )
            spent_here = 0
            for due in due_dates:
                if pos.credit_balance <= 0:
                    break
                day = max(due, until) if until is not None else due
                before = sum((i.penalty_accrued for i in pos.installments), ZERO)
                pos = accrue_penalties(pos, day)
                charged = to_minor(sum((i.penalty_accrued for i in pos.installments), ZERO) - before)
                until = day
                if charged:
                    entries.append(penalty_entry(loan_id, charged, value_date=day, version=version, close_id=close_id))
                    penalty_total += charged
                spend = apply_credit(pos, day)
                if spend.amount <= 0:
                    continue
                pos = apply_allocation(pos, spend)
                new_allocations += allocation_rows(spend, loan_id=loan_id, version=version, payment_id=None)
                entries.append(
                    allocation_entry(spend, loan_id=loan_id, version=version, payment_id=None, close_id=close_id)
                )
                spent_here += to_minor(spend.amount)
            if not spent_here and until == rec.penalty_accrued_until:
                continue
            n_loans += 1
            spent_total += spent_here
            by_number = {r.number: r for r in rows[(loan_id, version)]}
            for inst in pos.installments:
                values = installment_columns(by_number[inst.number], inst)
                if any(getattr(by_number[inst.number], k) != v for k, v in values.items()):
                    installment_rows.append(values)
            loan_row = {"id": loan_id, **loan_position_columns(pos, as_of=as_of), "penalty_accrued_until": until}
            closes = pos.is_settled
            loan_row |= {
                "status": LoanStatus.CLOSED.value if closes else rec.status,
                "closed_on": until if closes else rec.closed_on,
                "close_reason": "paid" if closes else rec.close_reason,
                "updated_at": now,
            }
            n_closed += closes
            loan_rows.append(loan_row)
        repo.insert_allocations(new_allocations)
        post_entries(conn, entries, actor=actor, posted_at=now)
        n_entries += len(entries)
        repo.update_installments(installment_rows)
        repo.update_loans(loan_rows)
    return CreditTotals(n_loans, spent_total, penalty_total, n_entries, n_closed)


# --- days past due, buckets and penalties of the delinquent loans --------------------------------------------------


@dataclass(slots=True)
class AgingTotals:
    """What the aging step did: loans read, penalties charged, rows written."""

    loans: int = 0
    loans_charged: int = 0
    installments_charged: int = 0
    penalty_fen: int = 0
    entries: int = 0
    capped_loans: int = 0  # computed on positions: the cap bound before the close date
    pages: int = 0
    by_bucket: dict[str, int] = field(default_factory=dict)  # overdue loans by bucket
    principal_by_bucket: dict[str, int] = field(default_factory=dict)  # their outstanding principal, fen
    seconds: dict[str, float] = field(default_factory=dict)  # read, compute, write

    def timed(self, part: str, since: float) -> float:
        now = time.perf_counter()
        self.seconds[part] = self.seconds.get(part, 0.0) + now - since
        return now


def delinquent_count(conn: Connection, as_of: date) -> int:
    """Open loans with something overdue at the end of ``as_of`` (the rows the aging step reads)."""
    return int(conn.execute(select(func.count()).select_from(loans).where(_delinquent(as_of))).scalar_one())


def _delinquent(as_of: date) -> Any:
    return and_(loans.c.status == LoanStatus.OPEN.value, loans.c.oldest_unpaid_due_date < as_of)


def age_and_accrue(
    ledger: LedgerRepository,
    as_of: date,
    *,
    close_id: int | None,
    actor: str,
    now: datetime,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> AgingTotals:
    """Days past due, bucket, overdue amounts and penalty for every open loan with something overdue, page by page.

    The loans are found once (one range of the (status, oldest unpaid) index); each page of
    ``chunk_size`` of them is then read by primary key: its loans, installments and allocations.
    """
    conn = ledger.conn
    totals = AgingTotals()
    started = time.perf_counter()
    ids = sorted(str(i) for i in conn.execute(select(loans.c.id).where(_delinquent(as_of))).scalars())
    terms = _penalty_terms(conn)
    totals.timed("read", started)
    size = min(chunk_size, MAX_KEYS_PER_QUERY)
    for begin in range(0, len(ids), size):
        started = time.perf_counter()
        page, principal = _page(conn, as_of, ids[begin : begin + size])
        totals.timed("read", started)
        if page:
            _age_page(
                conn,
                page,
                terms,
                as_of,
                principal=principal,
                close_id=close_id,
                actor=actor,
                now=now,
                ledger=ledger,
                totals=totals,
            )
        totals.pages += 1
        if progress is not None:
            progress(len(ids[begin : begin + size]))
    return totals


@dataclass(frozen=True, slots=True)
class _PenaltyTerms:
    """A product version's penalty rule as the products table stores it (exact integers)."""

    on_amount: bool
    rate_ppb: int
    grace_days: int
    cap_ppb: int | None
    mode: RoundingMode


def _penalty_terms(conn: Connection) -> dict[tuple[str, int], _PenaltyTerms]:
    p = products
    rows = conn.execute(
        select(
            p.c.id,
            p.c.version,
            p.c.penalty_base,
            p.c.penalty_daily_rate_ppb,
            p.c.penalty_grace_days,
            p.c.penalty_cap_ppb,
            p.c.rounding_mode,
        )
    )
    return {
        (r.id, int(r.version)): _PenaltyTerms(
            on_amount=r.penalty_base == PenaltyBase.OVERDUE_AMOUNT.value,
            rate_ppb=int(r.penalty_daily_rate_ppb),
            grace_days=int(r.penalty_grace_days),
            cap_ppb=None if r.penalty_cap_ppb is None else int(r.penalty_cap_ppb),
            mode=RoundingMode(r.rounding_mode),
        )
        for r in rows
    }


def _page(conn: Connection, as_of: date, ids: Sequence[str]) -> tuple[Sequence[Any], dict[str, int]]:
    """The loans ``ids`` still overdue (PostgreSQL: locked), and the principal of the re-scheduled ones' live version.

    A loan on its first schedule amortises what it lent; a re-scheduled one what its live version says
    (the base of its penalty cap).
    """
    ln = loans
    query = select(
        ln.c.id,
        ln.c.schedule_version,
        ln.c.product_id,
        ln.c.product_version,
        ln.c.principal_fen,
        ln.c.oldest_unpaid_due_date,
        ln.c.penalty_charged_fen,
        ln.c.penalty_accrued_until,
        ln.c.outstanding_principal_fen,
    ).where(
        _among(conn, ln.c.id, ids),
        # `status || ''`: look the page up by primary key, not by a second pass over the overdue index range.
        (ln.c.status + "") == LoanStatus.OPEN.value,
        ln.c.oldest_unpaid_due_date < as_of,
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    rows = sorted(conn.execute(query).all(), key=lambda r: str(r.id))
    live = {r.id: r.schedule_version for r in rows if r.schedule_version != 1}
    if not live:
        return rows, {}
    v = schedule_versions
    found = conn.execute(select(v.c.loan_id, v.c.version, v.c.principal_fen).where(v.c.loan_id.in_(list(live))))
    return rows, {r.loan_id: int(r.principal_fen) for r in found if live[r.loan_id] == r.version}


def _read_page(
    conn: Connection, ids: Sequence[str], live: IntArray, code_of: dict[str, int], as_of: date
) -> tuple[Sequence[Any], list[Any]]:
    """The installments due before ``as_of`` and the dated allocations of the loans ``ids`` (any schedule version)."""
    i = installments
    inst_rows = conn.execute(
        select(
            i.c.loan_id,
            i.c.schedule_version,
            i.c.number,
            _day_number(conn, i.c.due_date),
            i.c.principal_due_fen - i.c.principal_waived_fen,
            i.c.interest_due_fen - i.c.interest_waived_fen,
            i.c.fee_due_fen - i.c.fee_waived_fen,
            i.c.principal_paid_fen,
            i.c.interest_paid_fen,
            i.c.fee_paid_fen,
            i.c.penalty_accrued_fen,
            i.c.penalty_paid_fen + i.c.penalty_waived_fen,
        ).where(
            _among(conn, i.c.loan_id, ids),
            # coalesce() keeps SQLite on the primary key: given a long IN list it would otherwise range-scan
            # the due-date index over half the book (30 s on a million loans instead of 0.4 s).
            func.coalesce(i.c.due_date, None) < as_of,
        )
    ).all()
    a = allocations
    alloc_rows = [
        r
        for r in conn.execute(
            select(
                a.c.loan_id,
                a.c.schedule_version,
                a.c.installment_number,
                a.c.component,
                _day_number(conn, a.c.value_date),
                a.c.amount_fen,
            ).where(
                _among(conn, a.c.loan_id, ids),
                a.c.reversed.is_(False),
                a.c.installment_number.is_not(None),
                a.c.component.in_(("principal", "interest", "fee")),
            )
        )
        if r[1] == live[code_of[r[0]]]
    ]
    return inst_rows, alloc_rows


def _among(conn: Connection, column: Any, keys: Sequence[str]) -> Any:
    """``column IN keys``: on PostgreSQL one array parameter (``= ANY``), not thousands of bound values."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(keys), type_=ARRAY(String)))
    return column.in_(keys)


@contextmanager
def _by_key(conn: Connection) -> Iterator[None]:
    """PostgreSQL: look a page's rows up by key, not by a scan of the whole table.

    Given a long ``= ANY(...)`` list the planner expects a tenth of the installments and scans all
    twelve million in parallel (2 s a page); the index lookups it would otherwise skip take 0.5 s.
    """
    if conn.dialect.name != "postgresql":
        yield
        return
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    try:
        yield
    finally:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = on")


def _day_number(conn: Connection, column: Any) -> Any:
    """``column`` (a date) as its proleptic ordinal (:meth:`datetime.date.toordinal`), computed by the database."""
    if conn.dialect.name == "postgresql":
        return (column - literal(date(1, 1, 1), Date)) + 1
    return cast(func.julianday(column) - 1721424.5, Integer)


def _round_half(numerator: int, denominator: int, mode: RoundingMode) -> int:
    whole, rest = divmod(numerator, denominator)
    twice = 2 * rest
    if twice > denominator or (twice == denominator and (mode is RoundingMode.HALF_UP or whole % 2 == 1)):
        whole += 1
    return whole


def _age_page(
    conn: Connection,
    page: Sequence[Any],
    terms: dict[tuple[str, int], _PenaltyTerms],
    as_of: date,
    *,
    principal: dict[str, int],
    close_id: int | None,
    actor: str,
    now: datetime,
    ledger: LedgerRepository,
    totals: AgingTotals,
) -> None:
    clock = time.perf_counter()
    x = as_of.toordinal()
    ids = [r.id for r in page]
    code_of = {loan_id: k for k, loan_id in enumerate(ids)}
    live = np.array([r.schedule_version for r in page], dtype=np.int64)
    n_loans = len(ids)
    rules = [terms[(r.product_id, r.product_version)] for r in page]

    rate = np.array([t.rate_ppb for t in rules], dtype=np.int64)
    grace = np.array([t.grace_days for t in rules], dtype=np.int64)
    on_amount = np.array([t.on_amount for t in rules], dtype=bool)
    half_even = np.array([t.mode is RoundingMode.HALF_EVEN for t in rules], dtype=bool)
    oldest = np.array([r.oldest_unpaid_due_date.toordinal() for r in page], dtype=np.int64)
    charged = np.array([r.penalty_charged_fen for r in page], dtype=np.int64)
    # Penalties already accrued past the close date (a payment dated later, a close run backwards) stay.
    ahead = np.array(
        [r.penalty_accrued_until is not None and r.penalty_accrued_until > as_of for r in page], dtype=bool
    )
    cap_fen = np.array(
        [
            -1 if t.cap_ppb is None else _round_half(t.cap_ppb * principal.get(r.id, int(r.principal_fen)), PPB, t.mode)
            for r, t in zip(page, rules, strict=True)
        ],
        dtype=np.int64,
    )

    with _by_key(conn):
        inst_rows, alloc_rows = _read_page(conn, ids, live, code_of, as_of)
    table = np.array([r[1:] for r in inst_rows], dtype=np.int64).reshape(len(inst_rows), 11)
    codes = np.fromiter((code_of[r[0]] for r in inst_rows), dtype=np.int64, count=len(inst_rows))
    keep = table[:, 0] == live[codes]  # the live schedule version's installments only
    table, codes = table[keep], codes[keep]
    order = np.lexsort((table[:, 1], table[:, 2], codes))
    table, code = table[order], codes[order]
    n = len(code)
    number, due = table[:, 1], table[:, 2]
    p_net, i_net, f_net, p_paid, i_paid, f_paid, stored, settled_penalty = (table[:, k] for k in range(3, 11))

    amount_base = on_amount[code]
    net = np.where(amount_base, p_net + i_net + f_net, p_net)
    paid = np.where(amount_base, p_paid + i_paid + f_paid, p_paid)
    start = due + grace[code]
    days = np.maximum(x - start, 0)

    dated_all = np.zeros(n, dtype=np.int64)
    reduction = np.zeros(n, dtype=np.int64)
    if alloc_rows and n:
        m = len(alloc_rows)
        a_code = np.fromiter((code_of[r[0]] for r in alloc_rows), dtype=np.int64, count=m)
        a_number = np.fromiter((r[2] for r in alloc_rows), dtype=np.int64, count=m)
        a_principal = np.fromiter((r[3] == "principal" for r in alloc_rows), dtype=bool, count=m)
        a_day = np.fromiter((r[4] for r in alloc_rows), dtype=np.int64, count=m)
        a_amount = np.fromiter((r[5] for r in alloc_rows), dtype=np.int64, count=m)
        width = int(max(number.max(initial=0), a_number.max(initial=0))) + 1
        keys = code * width + number
        sorter = np.argsort(keys, kind="stable")
        a_keys = a_code * width + a_number
        pos = np.minimum(np.searchsorted(keys, a_keys, sorter=sorter), n - 1)
        counted = (keys[sorter[pos]] == a_keys) & (a_principal | on_amount[a_code])
        row = sorter[pos[counted]]
        amt = a_amount[counted]
        np.add.at(dated_all, row, amt)
        np.add.at(reduction, row, amt * np.maximum(x - np.maximum(a_day[counted], start[row]), 0))

    clock = totals.timed("read", clock)
    undated = np.maximum(paid - dated_all, 0)
    earned = rate[code] * np.maximum(days * (net - undated) - reduction, 0)

    live_accrued = np.zeros(n_loans, dtype=np.int64)
    np.add.at(live_accrued, code, stored)
    earlier = np.maximum(charged - live_accrued, 0)
    capacity = np.where(cap_fen >= 0, np.maximum(cap_fen - earlier, 0), -1)
    loan_earned = np.zeros(n_loans, dtype=np.int64)
    np.add.at(loan_earned, code, earned)
    binds = (capacity >= 0) & (loan_earned > capacity * PENALTY_UNITS_PER_FEN) & ~ahead

    new = stored.copy()
    for mode, use in ((RoundingMode.HALF_UP, ~half_even), (RoundingMode.HALF_EVEN, half_even)):
        rows = (use & ~ahead & ~binds)[code]
        if not rows.any():
            continue
        zeros = np.zeros(int(rows.sum()), dtype=np.int64)
        day = accrue_penalty_day(
            loan=code[rows],
            in_window=zeros.astype(bool),
            base_fen=zeros,
            rate_ppb=zeros,
            earned_units=earned[rows],
            capacity_fen=capacity[code[rows]],
            mode=mode,
        )
        new[rows] = day.accrued_fen
    if binds.any():
        bound = [ids[k] for k in np.flatnonzero(binds)]
        positions = ledger.positions(ledger.loans(bound).values())
        amounts = {
            (code_of[loan_id], c.number): to_minor(c.amount)
            for loan_id, position in positions.items()
            for c in penalty_due_to_date(position, as_of)
        }
        for k in np.flatnonzero(binds[code]):
            new[k] = amounts[(int(code[k]), int(number[k]))]
        totals.capped_loans += len(bound)

    # Never below the penalty already paid or waived (a loaded book's pre-history penalty; see accrue_penalties).
    new = np.maximum(new, settled_penalty)
    delta = new - stored
    loan_delta = np.zeros(n_loans, dtype=np.int64)
    np.add.at(loan_delta, code, delta)
    overdue_principal = np.zeros(n_loans, dtype=np.int64)
    np.add.at(overdue_principal, code, np.maximum(p_net - p_paid, 0))
    overdue_amount = np.zeros(n_loans, dtype=np.int64)
    np.add.at(
        overdue_amount,
        code,
        np.maximum(p_net - p_paid, 0) + np.maximum(i_net - i_paid, 0) + np.maximum(f_net - f_paid, 0),
    )
    dpd = x - oldest
    bucket_codes = buckets_of(dpd)

    clock = totals.timed("compute", clock)
    changed = np.flatnonzero(delta)
    id_array = np.array(ids, dtype=object)
    version = live
    bulk_update(
        conn,
        installments,
        ("loan_id", "schedule_version", "number"),
        pl.DataFrame(
            {
                "loan_id": id_array[code[changed]].tolist(),
                "schedule_version": version[code[changed]],
                "number": number[changed],
                "penalty_accrued_fen": new[changed],
            }
        ),
    )
    until = [r.penalty_accrued_until if a else as_of for r, a in zip(page, ahead.tolist(), strict=True)]
    bucket_names = np.array([b.value for b in BUCKETS], dtype=object)
    bulk_update(
        conn,
        loans,
        ("id",),
        pl.DataFrame(
            {
                "id": ids,
                "dpd": dpd,
                "bucket": bucket_names[bucket_codes].tolist(),
                "overdue_principal_fen": overdue_principal,
                "overdue_amount_fen": overdue_amount,
                "penalty_charged_fen": charged + loan_delta,
                "penalty_accrued_until": pl.Series(until, dtype=pl.Date),
                "last_closed_on": pl.Series([as_of] * n_loans, dtype=pl.Date),
                "updated_at": pl.Series([now] * n_loans),
            }
        ),
    )
    charged_rows = np.flatnonzero(loan_delta)
    post_penalty_entries(
        conn,
        loan_ids=id_array[charged_rows].tolist(),
        versions=version[charged_rows],
        amounts_fen=loan_delta[charged_rows],
        value_date=as_of,
        close_id=close_id,
        actor=actor,
        now=now,
    )

    totals.timed("write", clock)
    totals.loans += n_loans
    totals.loans_charged += len(charged_rows)
    totals.installments_charged += len(changed)
    totals.penalty_fen += int(loan_delta.sum())
    totals.entries += len(charged_rows)
    outstanding = np.array([r.outstanding_principal_fen for r in page], dtype=np.int64)
    for b in np.unique(bucket_codes):
        name = str(bucket_names[int(b)])
        mask = bucket_codes == b
        totals.by_bucket[name] = totals.by_bucket.get(name, 0) + int(mask.sum())
        totals.principal_by_bucket[name] = totals.principal_by_bucket.get(name, 0) + int(outstanding[mask].sum())


def reset_current(conn: Connection, as_of: date, *, now: datetime) -> int:
    """Loans with nothing overdue at the end of ``as_of`` that still show arrears: back to current (one UPDATE)."""
    ln = loans
    result = conn.execute(
        update(ln)
        .where(
            # `status || ''` keeps SQLite off the (status, oldest unpaid) index: nearly every open loan
            # matches the date range, and a table scan reads them six times faster than the index would.
            (ln.c.status + "") == LoanStatus.OPEN.value,
            or_(ln.c.oldest_unpaid_due_date.is_(None), ln.c.oldest_unpaid_due_date >= as_of),
            or_(
                ln.c.dpd != 0,
                ln.c.bucket != Bucket.CURRENT.value,
                ln.c.overdue_principal_fen != 0,
                ln.c.overdue_amount_fen != 0,
            ),
        )
        .values(
            dpd=0,
            bucket=Bucket.CURRENT.value,
            overdue_principal_fen=0,
            overdue_amount_fen=0,
            last_closed_on=as_of,
            updated_at=now,
        )
    )
    return int(result.rowcount or 0)


def open_loans(conn: Connection) -> int:
    """How many loans are open (an index-only count)."""
    return int(
        conn.execute(
            select(func.count()).select_from(loans).where(loans.c.status == LoanStatus.OPEN.value)
        ).scalar_one()
    )


def book_by_bucket(open_count: int, aging: AgingTotals) -> dict[str, dict[str, int | None]]:
    """Open loans by bucket after a close, and the outstanding principal of the overdue ones (fen).

    The overdue buckets come from the loans the close read; the rest of the open loans are current
    (their principal is not summed: that would read every open loan's row).
    """
    overdue = sum(aging.by_bucket.values())
    out: dict[str, dict[str, int | None]] = {
        Bucket.CURRENT.value: {"loans": open_count - overdue, "principal_fen": None}
    }
    for bucket in BUCKETS[1:]:
        out[bucket.value] = {
            "loans": aging.by_bucket.get(bucket.value, 0),
            "principal_fen": aging.principal_by_bucket.get(bucket.value, 0),
        }
    return out


# --- bulk writes ------------------------------------------------------------------------------------------------------


def post_penalty_entries(
    conn: Connection,
    *,
    loan_ids: Sequence[str],
    versions: npt.NDArray[np.int64],
    amounts_fen: IntArray,
    value_date: date,
    close_id: int | None,
    actor: str,
    now: datetime,
) -> int:
    """One penalty entry per loan (Dr penalty_receivable, Cr penalty_income; a negative amount the other way round).

    The set-based twin of :func:`~runoff.store.ledger.journal.post_entries` for the close's many two-line
    entries: balanced by construction, written with the ledger's bulk path.
    """
    n = len(loan_ids)
    if n == 0:
        return 0
    ids = np.array(reserve_ids(conn, journal_entries, n), dtype=np.int64)
    amount = np.abs(amounts_fen)
    positive = amounts_fen > 0
    heads = pl.DataFrame(
        {
            "id": ids,
            "loan_id": list(loan_ids),
            "value_date": pl.Series([value_date] * n, dtype=pl.Date),
            "posted_at": pl.Series([now] * n),
            "kind": [EntryKind.PENALTY_ACCRUAL.value] * n,
            "schedule_version": versions,
            "close_id": pl.Series([close_id] * n, dtype=pl.Int64),
            "actor": [actor] * n,
        }
    )
    receivable = LedgerAccount.PENALTY_RECEIVABLE.value
    income = LedgerAccount.PENALTY_INCOME.value
    lines = pl.DataFrame(
        {
            "entry_id": np.concatenate([ids, ids]),
            "loan_id": list(loan_ids) * 2,
            "account": [receivable] * n + [income] * n,
            "value_date": pl.Series([value_date] * (2 * n), dtype=pl.Date),
            "debit_fen": np.concatenate([np.where(positive, amount, 0), np.where(positive, 0, amount)]),
            "credit_fen": np.concatenate([np.where(positive, 0, amount), np.where(positive, amount, 0)]),
        }
    )
    write_frame(conn, journal_entries, heads)
    write_frame(conn, journal_lines, lines)
    return n


def bulk_update(conn: Connection, table: Table, keys: Sequence[str], frame: pl.DataFrame) -> None:
    """Set the columns of ``frame`` other than ``keys`` on the rows of ``table`` that ``keys`` match.

    PostgreSQL: COPY into a temporary table, then one ``UPDATE ... FROM``; SQLite: one executemany of
    plain tuples (dates and times as the ISO text SQLAlchemy stores there).
    """
    if frame.height == 0:
        return
    columns = [c for c in frame.columns if c not in keys]
    if conn.dialect.name == "postgresql":
        _copy_update(conn, table, keys, columns, frame)
        return
    frame = frame.select(*columns, *keys).with_columns(
        [
            pl.col(name).dt.strftime("%Y-%m-%d")
            if dtype == pl.Date
            else pl.col(name).dt.replace_time_zone(None).dt.strftime("%Y-%m-%d %H:%M:%S.%6f")
            for name, dtype in frame.schema.items()
            if dtype == pl.Date or isinstance(dtype, pl.Datetime)
        ]
    )
    sets = ", ".join(f'"{c}" = ?' for c in columns)
    match = " AND ".join(f'"{k}" = ?' for k in keys)
    raw: Any = conn.connection.dbapi_connection  # sqlite3.Connection, inside the unit of work's transaction
    cursor = raw.cursor()
    try:
        cursor.executemany(f'UPDATE "{table.name}" SET {sets} WHERE {match}', frame.iter_rows())
    finally:
        cursor.close()


def _copy_update(
    conn: Connection, table: Table, keys: Sequence[str], columns: Sequence[str], frame: pl.DataFrame
) -> None:
    temp = f"close_{table.name}"
    names = [*keys, *columns]
    spec = ", ".join(f'"{c}" {table.c[c].type.compile(dialect=conn.dialect)}' for c in names)
    conn.exec_driver_sql(f'CREATE TEMPORARY TABLE "{temp}" ({spec}) ON COMMIT DROP')
    buffer = io.BytesIO()
    frame.select(names).write_csv(
        buffer, include_header=False, null_value="", datetime_format="%Y-%m-%dT%H:%M:%S%.6f%z"
    )
    raw: Any = conn.connection.dbapi_connection  # psycopg.Connection, inside the unit of work's transaction
    quoted = ", ".join(f'"{c}"' for c in names)
    with raw.cursor() as cursor, cursor.copy(f'COPY "{temp}" ({quoted}) FROM STDIN WITH (FORMAT csv)') as copy:
        copy.write(buffer.getvalue())
    sets = ", ".join(f'"{c}" = s."{c}"' for c in columns)
    match = " AND ".join(f't."{k}" = s."{k}"' for k in keys)
    conn.exec_driver_sql(f'UPDATE "{table.name}" AS t SET {sets} FROM "{temp}" AS s WHERE {match}')
    conn.exec_driver_sql(f'DROP TABLE "{temp}"')


__all__ = [
    "DEFAULT_CHUNK",
    "AgingTotals",
    "CloseRecord",
    "CreditTotals",
    "age_and_accrue",
    "apply_credit_falling_due",
    "audit",
    "book_by_bucket",
    "bulk_update",
    "delinquent_count",
    "fail_close",
    "finish_close",
    "last_close",
    "open_loans",
    "post_penalty_entries",
    "reset_current",
    "start_close",
]
