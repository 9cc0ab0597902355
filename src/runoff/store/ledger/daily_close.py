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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Table, and_, bindparam, func, insert, or_, select, update

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
from runoff.store.ledger.journal import JournalEntry, post_entries
from runoff.store.ledger.models import (
    LoanStatus,
    allocations,
    audit_log,
    installments,
    ledger_closes,
    loans,
    products,
    schedule_versions,
)
from runoff.store.ledger.repository import LedgerRepository
from runoff.store.ledger.repost import (
    allocation_entry,
    allocation_rows,
    installment_columns,
    loan_position_columns,
    penalty_entry,
)

DEFAULT_CHUNK = 20_000
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
    by_bucket: dict[str, int] = field(default_factory=dict)


def delinquent_count(conn: Connection, as_of: date) -> int:
    """Open loans with something overdue at the end of ``as_of`` (the rows the aging step reads)."""
    return int(conn.execute(select(func.count()).select_from(loans).where(_delinquent(as_of))).scalar_one())


def _delinquent(as_of: date, after: str | None = None, upto: str | None = None) -> Any:
    clauses = [loans.c.status == LoanStatus.OPEN.value, loans.c.oldest_unpaid_due_date < as_of]
    if after is not None:
        clauses.append(loans.c.id > after)
    if upto is not None:
        clauses.append(loans.c.id <= upto)
    return and_(*clauses)


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
    """Days past due, bucket, overdue amounts and penalty for every open loan with something overdue, page by page."""
    conn = ledger.conn
    totals = AgingTotals()
    after: str | None = None
    while True:
        page = _page(conn, as_of, after, chunk_size)
        if not page:
            break
        _age_page(conn, page, as_of, after=after, close_id=close_id, actor=actor, now=now, ledger=ledger, totals=totals)
        after = page[-1].id
        totals.pages += 1
        if progress is not None:
            progress(len(page))
    return totals


def _page(conn: Connection, as_of: date, after: str | None, size: int) -> Sequence[Any]:
    ln, p, v = loans, products, schedule_versions
    query = (
        select(
            ln.c.id,
            ln.c.schedule_version,
            ln.c.product_id,
            ln.c.product_version,
            ln.c.oldest_unpaid_due_date,
            ln.c.penalty_charged_fen,
            ln.c.penalty_accrued_until,
            p.c.penalty_base,
            p.c.penalty_daily_rate_ppb,
            p.c.penalty_grace_days,
            p.c.penalty_cap_ppb,
            p.c.rounding_mode,
            v.c.principal_fen,
        )
        .join_from(ln, p, and_(p.c.id == ln.c.product_id, p.c.version == ln.c.product_version))
        .join(v, and_(v.c.loan_id == ln.c.id, v.c.version == ln.c.schedule_version))
        .where(_delinquent(as_of, after))
        .order_by(ln.c.id)
        .limit(size)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=ln)
    return conn.execute(query).all()


def _round_half(numerator: int, denominator: int, mode: RoundingMode) -> int:
    whole, rest = divmod(numerator, denominator)
    twice = 2 * rest
    if twice > denominator or (twice == denominator and (mode is RoundingMode.HALF_UP or whole % 2 == 1)):
        whole += 1
    return whole


def _age_page(
    conn: Connection,
    page: Sequence[Any],
    as_of: date,
    *,
    after: str | None,
    close_id: int | None,
    actor: str,
    now: datetime,
    ledger: LedgerRepository,
    totals: AgingTotals,
) -> None:
    x = as_of.toordinal()
    ids = [r.id for r in page]
    code_of = {loan_id: k for k, loan_id in enumerate(ids)}
    n_loans = len(ids)
    upto = ids[-1]

    rate = np.array([r.penalty_daily_rate_ppb for r in page], dtype=np.int64)
    grace = np.array([r.penalty_grace_days for r in page], dtype=np.int64)
    on_amount = np.array([r.penalty_base == PenaltyBase.OVERDUE_AMOUNT.value for r in page], dtype=bool)
    half_even = np.array([r.rounding_mode == RoundingMode.HALF_EVEN.value for r in page], dtype=bool)
    oldest = np.array([r.oldest_unpaid_due_date.toordinal() for r in page], dtype=np.int64)
    charged = np.array([r.penalty_charged_fen for r in page], dtype=np.int64)
    # Penalties already accrued past the close date (a payment dated later, a close run backwards) stay.
    ahead = np.array(
        [r.penalty_accrued_until is not None and r.penalty_accrued_until > as_of for r in page], dtype=bool
    )
    cap_fen = np.array(
        [
            -1
            if r.penalty_cap_ppb is None
            else _round_half(int(r.penalty_cap_ppb) * int(r.principal_fen), PPB, RoundingMode(r.rounding_mode))
            for r in page
        ],
        dtype=np.int64,
    )

    i = installments
    ln = loans
    inst_rows = conn.execute(
        select(
            i.c.loan_id,
            i.c.number,
            i.c.due_date,
            i.c.principal_due_fen - i.c.principal_waived_fen,
            i.c.interest_due_fen - i.c.interest_waived_fen,
            i.c.fee_due_fen - i.c.fee_waived_fen,
            i.c.principal_paid_fen,
            i.c.interest_paid_fen,
            i.c.fee_paid_fen,
            i.c.penalty_accrued_fen,
        )
        .join_from(i, ln, and_(ln.c.id == i.c.loan_id, ln.c.schedule_version == i.c.schedule_version))
        .where(_delinquent(as_of, after, upto), i.c.due_date < as_of)
    ).all()
    n = len(inst_rows)
    code = np.fromiter((code_of[r[0]] for r in inst_rows), dtype=np.int64, count=n)
    number = np.fromiter((r[1] for r in inst_rows), dtype=np.int64, count=n)
    due = np.fromiter((r[2].toordinal() for r in inst_rows), dtype=np.int64, count=n)
    cols = np.array([r[3:] for r in inst_rows], dtype=np.int64).reshape(n, 7)
    order = np.lexsort((number, due, code))
    code, number, due, cols = code[order], number[order], due[order], cols[order]
    p_net, i_net, f_net, p_paid, i_paid, f_paid, stored = (cols[:, k] for k in range(7))

    amount_base = on_amount[code]
    net = np.where(amount_base, p_net + i_net + f_net, p_net)
    paid = np.where(amount_base, p_paid + i_paid + f_paid, p_paid)
    start = due + grace[code]
    days = np.maximum(x - start, 0)

    a = allocations
    alloc_rows = conn.execute(
        select(a.c.loan_id, a.c.installment_number, a.c.component, a.c.value_date, a.c.amount_fen)
        .join_from(a, ln, and_(ln.c.id == a.c.loan_id, ln.c.schedule_version == a.c.schedule_version))
        .where(
            _delinquent(as_of, after, upto),
            a.c.reversed.is_(False),
            a.c.installment_number.is_not(None),
            a.c.component.in_(("principal", "interest", "fee")),
        )
    ).all()
    dated_all = np.zeros(n, dtype=np.int64)
    reduction = np.zeros(n, dtype=np.int64)
    if alloc_rows and n:
        m = len(alloc_rows)
        a_code = np.fromiter((code_of[r[0]] for r in alloc_rows), dtype=np.int64, count=m)
        a_number = np.fromiter((r[1] for r in alloc_rows), dtype=np.int64, count=m)
        a_principal = np.fromiter((r[2] == "principal" for r in alloc_rows), dtype=bool, count=m)
        a_day = np.fromiter((r[3].toordinal() for r in alloc_rows), dtype=np.int64, count=m)
        a_amount = np.fromiter((r[4] for r in alloc_rows), dtype=np.int64, count=m)
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
    bucket_names = [b.value for b in BUCKETS]

    changed = np.flatnonzero(delta)
    installment_updates = [
        (ids[int(code[k])], int(page[int(code[k])].schedule_version), int(number[k]), int(new[k])) for k in changed
    ]
    loan_updates = [
        (
            ids[k],
            int(dpd[k]),
            bucket_names[int(bucket_codes[k])],
            int(overdue_principal[k]),
            int(overdue_amount[k]),
            int(charged[k] + loan_delta[k]),
            page[k].penalty_accrued_until if ahead[k] else as_of,
            as_of,
            now,
        )
        for k in range(n_loans)
    ]
    entries = [
        penalty_entry(
            ids[k], int(loan_delta[k]), value_date=as_of, version=int(page[int(k)].schedule_version), close_id=close_id
        )
        for k in np.flatnonzero(loan_delta)
    ]
    bulk_update(
        conn, installments, ("loan_id", "schedule_version", "number"), ("penalty_accrued_fen",), installment_updates
    )
    bulk_update(
        conn,
        loans,
        ("id",),
        (
            "dpd",
            "bucket",
            "overdue_principal_fen",
            "overdue_amount_fen",
            "penalty_charged_fen",
            "penalty_accrued_until",
            "last_closed_on",
            "updated_at",
        ),
        loan_updates,
    )
    post_entries(conn, entries, actor=actor, posted_at=now)

    totals.loans += n_loans
    totals.loans_charged += len(entries)
    totals.installments_charged += len(changed)
    totals.penalty_fen += int(loan_delta.sum())
    totals.entries += len(entries)
    for b, count in zip(*np.unique(bucket_codes, return_counts=True), strict=True):
        name = bucket_names[int(b)]
        totals.by_bucket[name] = totals.by_bucket.get(name, 0) + int(count)


def reset_current(conn: Connection, as_of: date, *, now: datetime) -> int:
    """Loans with nothing overdue at the end of ``as_of`` that still show arrears: back to current (one UPDATE)."""
    ln = loans
    result = conn.execute(
        update(ln)
        .where(
            ln.c.status == LoanStatus.OPEN.value,
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


def book_by_bucket(conn: Connection) -> dict[str, dict[str, int]]:
    """Open loans and their outstanding principal by bucket, as the loans' columns say (after a close: as of it)."""
    ln = loans
    rows = conn.execute(
        select(ln.c.bucket, func.count(), func.coalesce(func.sum(ln.c.outstanding_principal_fen), 0))
        .where(ln.c.status == LoanStatus.OPEN.value)
        .group_by(ln.c.bucket)
    ).all()
    found = {r[0]: {"loans": int(r[1]), "principal_fen": int(r[2])} for r in rows}
    return {b.value: found.get(b.value, {"loans": 0, "principal_fen": 0}) for b in BUCKETS}


# --- bulk writes ------------------------------------------------------------------------------------------------------


def bulk_update(
    conn: Connection, table: Table, keys: Sequence[str], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Set ``columns`` on the rows of ``table`` matched by ``keys``; each row is the key values then the column values.

    PostgreSQL: COPY into a temporary table, then one ``UPDATE ... FROM``; SQLite: one executemany.
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        _copy_update(conn, table, keys, columns, rows)
        return
    stmt = (
        update(table)
        .where(*(table.c[k] == bindparam(f"k_{k}") for k in keys))
        .values({c: bindparam(f"v_{c}") for c in columns})
    )
    names = [f"k_{k}" for k in keys] + [f"v_{c}" for c in columns]
    conn.execute(stmt, [dict(zip(names, row, strict=True)) for row in rows])


def _copy_update(
    conn: Connection, table: Table, keys: Sequence[str], columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    temp = f"close_{table.name}"
    names = [*keys, *columns]
    spec = ", ".join(f"{c} {table.c[c].type.compile(dialect=conn.dialect)}" for c in names)
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {temp} ({spec}) ON COMMIT DROP")
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor() as cursor, cursor.copy(f"COPY {temp} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    sets = ", ".join(f"{c} = s.{c}" for c in columns)
    match = " AND ".join(f"t.{k} = s.{k}" for k in keys)
    conn.exec_driver_sql(f"UPDATE {table.name} AS t SET {sets} FROM {temp} AS s WHERE {match}")
    conn.exec_driver_sql(f"DROP TABLE {temp}")


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
    "reset_current",
    "start_close",
]
