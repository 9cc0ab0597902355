"""Month-end performance snapshots from the ledger (月末表现快照): the book's ``performance`` table after go-live.

Before go-live the month ends come from the generator or the imported tape; once the wind-down runs on the
ledger, :func:`snapshot_month_end` appends one row per loan for each month end, read from the ledger with a
handful of set-based statements (never a query per loan) and written to the ``performance`` partition that
holds the loan, under the book's own ids, so the risk functions read the ledger's months together with the
book's earlier ones.

**As of the month end.** Every column is the loan's state at the end of ``as_of`` as the ledger knows it
now, whenever the snapshot runs: what was posted with a value date after ``as_of`` (a payment, the next
days' penalty, a write-off, a re-schedule) is taken back out, so running it again a week later gives the
same rows unless a backdated posting changed the month (then the rows say what the books now say):

* scheduled components unpaid per installment: due − waived − paid, plus the allocations dated after
  ``as_of`` (only loans with journal lines dated after ``as_of`` are read again with them);
* booked balances (principal, penalty): the loan's balance now plus the net credits its journal lines
  dated after ``as_of`` posted to ``loans_receivable`` / ``penalty_receivable``;
* flows of the month (paid by component, penalty charged): journal lines dated in the month of the
  entries that carry them (payment, credit applied, penalty accrual, and the reversals of those);
* the schedule version live at ``as_of``: the latest version not reversed that starts on or before it.

The columns, matching the generator's definitions (:mod:`runoff.portfolio.lifecycle`):

========================== =========================================================================================
``status``                 ``active`` while open at ``as_of``; ``charged-off``; ``paid-off``, or ``early-settled``
                           when the closing day's payment paid principal of an installment due after the
                           next due date (提前结清: more than the current installment ahead of schedule)
``bucket``                 from ``dpd`` (current, M1 1–30, M2 31–60, M3 61–90, M4+); ``closed`` / ``charged-off``
                           in the month the loan closed or was written off; earlier-closed loans have no row
``dpd``                    ``as_of`` − the due date of the oldest installment with principal, interest or fee
                           unpaid, when that date is before ``as_of`` (the daily close's convention); a
                           charged-off loan keeps counting from its charge-off DPD
``principal_balance_fen``  ``loans_receivable`` as of ``as_of`` (0 once closed or written off)
``overdue_principal_fen``  principal unpaid on installments due before ``as_of``
``overdue_amount_fen``     principal, interest and fee unpaid on those installments, plus penalty outstanding
``due_fen``                principal, interest and fee (net of waivers) of the installments due in the month
``paid_*_fen``             allocated to each component in the month, from payments and spent credit
                           (recoveries on charged-off loans are not repayments and are left out)
``penalty_charged_fen``    penalty accrued in the month, less what a repost took back
``charged_off_fen``        principal written off in the month (``charge_offs``)
``installments_remaining`` installments with principal, interest or fee unpaid (0 once closed)
``mob``                    months from the loan's start month to ``as_of``'s month
========================== =========================================================================================

Every column comes from the ledger; the customer id and the partition come from the book's ``loans``
table (the ledger keys loans by the book id written as text, :mod:`runoff.portfolio.tape.ids`). A ledger
loan that is not in the book (opened with ``runoff loan open`` under a text id) gets no row and is
counted in the result, never dropped silently.

**Refusals.** A date that is not the last day of its month (unless ``any_day``); a day the daily close
has not been run for (penalties are accrued to the close, so the month's penalty and overdue amounts
stand on it); a month the book's own rows (generated or imported) already hold, or one before them.

**Idempotent.** The months written from the ledger are listed in ``data/performance/ledger-months.json``
(kept in the table's folder, so regenerating the book drops it with the table). Running a month again
replaces that month's rows, partition by partition; a month holds one snapshot date (an ``any_day``
snapshot is replaced by the month's own end later).
"""

from __future__ import annotations

import calendar
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from sqlalchemy import Connection, Date, String, and_, any_, bindparam, case, func, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from runoff.errors import Conflict, InvalidInput, NotFound, RunoffError
from runoff.money import from_minor
from runoff.portfolio.schemas import BUCKETS as BOOK_BUCKETS
from runoff.portfolio.schemas import LOAN_STATUSES, PERFORMANCE
from runoff.servicing.delinquency import BUCKETS, buckets_of
from runoff.store.ledger.models import (
    EntryKind,
    LedgerAccount,
    LoanStatus,
    allocations,
    charge_offs,
    installments,
    journal_entries,
    journal_lines,
    ledger_closes,
    loans,
    schedule_versions,
)
from runoff.store.workspace import MARKER, Workspace

if TYPE_CHECKING:
    from runoff.app.context import AppContext

TABLE = "performance"
MONTHS_FILE = "ledger-months.json"
"""The ledger's months of the performance table, beside its partitions (``data/performance/``)."""

MAX_KEYS_PER_QUERY = 30_000  # under SQLite's 32,766 bound parameters
PG_WORK_MEM = "256MB"

PRINCIPAL = LedgerAccount.LOANS_RECEIVABLE.value
INTEREST = LedgerAccount.INTEREST_INCOME.value
FEE = LedgerAccount.FEE_INCOME.value
PENALTY = LedgerAccount.PENALTY_RECEIVABLE.value
COMPONENT_ACCOUNTS = (PRINCIPAL, INTEREST, FEE, PENALTY)
"""The accounts an allocated component is credited to (:data:`runoff.store.ledger.postings.CREDIT_TO`)."""

REPAYMENT_KINDS = (EntryKind.PAYMENT.value, EntryKind.CREDIT_APPLIED.value)
PENALTY_KIND = EntryKind.PENALTY_ACCRUAL.value


def month_end_of(day: date) -> date:
    """The last day of ``day``'s month."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


# --- reading the ledger as of a day -----------------------------------------------------------------------------


def _frame(conn: Connection, query: Any, schema: dict[str, Any]) -> pl.DataFrame:
    """The rows of ``query`` as a frame of ``schema``: one statement, its rows taken from the driver's cursor as
    they come (SQLite returns dates as ISO text, parsed here), without building a result row object each."""
    result = conn.execute(query)
    try:
        rows = result.cursor.fetchall()
    finally:
        result.close()
    dates = [name for name, dtype in schema.items() if dtype == pl.Date]
    text = conn.dialect.name == "sqlite"
    raw = {name: (pl.String if text and name in dates else dtype) for name, dtype in schema.items()}
    frame = pl.DataFrame(rows, schema=raw, orient="row")
    if text and dates:
        frame = frame.with_columns(pl.col(dates).str.to_date("%Y-%m-%d"))
    return frame


def _among(conn: Connection, column: Any, keys: Sequence[str]) -> Any:
    """``column IN keys``: on PostgreSQL one array parameter (``= ANY``), not thousands of bound values."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(keys), type_=ARRAY(String)))
    return column.in_(keys)


def _chunks(conn: Connection, keys: Sequence[str]) -> list[Sequence[str]]:
    if conn.dialect.name == "postgresql":
        return [keys] if keys else []
    return [keys[k : k + MAX_KEYS_PER_QUERY] for k in range(0, len(keys), MAX_KEYS_PER_QUERY)]


_LOAN_SCHEMA = {
    "ledger_id": pl.String,
    "start_date": pl.Date,
    "status": pl.String,
    "closed_on": pl.Date,
    "live_version": pl.Int64,
    "outstanding_fen": pl.Int64,
    "oldest_unpaid_now": pl.Date,
}

_BOOK_TOTALS = {
    "ledger_id": pl.String,
    "version": pl.Int64,
    "remaining": pl.Int64,
    "due_in_month": pl.Int64,
    "penalty_open": pl.Int64,
}

_ARREARS = {
    "ledger_id": pl.String,
    "version": pl.Int64,
    "remaining": pl.Int64,
    "due_in_month": pl.Int64,
    "oldest_unpaid": pl.Date,
    "overdue_principal": pl.Int64,
    "overdue_scheduled": pl.Int64,
}


def _shown(as_of: date, first: date) -> ColumnElement[bool]:
    """Loans started by ``as_of`` that were open at it or closed in its month (closed later: open at it)."""
    ln = loans
    return and_(ln.c.start_date <= as_of, or_(ln.c.status == LoanStatus.OPEN.value, ln.c.closed_on >= first))


def _loans_at(conn: Connection, as_of: date, first: date) -> pl.DataFrame:
    ln = loans
    query = select(
        ln.c.id,
        ln.c.start_date,
        ln.c.status,
        ln.c.closed_on,
        ln.c.schedule_version,
        ln.c.outstanding_principal_fen,
        ln.c.oldest_unpaid_due_date,
    ).where(_shown(as_of, first))
    return _frame(conn, query, _LOAN_SCHEMA)


def _amounts(later_p: Any = 0, later_all: Any = 0) -> tuple[Any, Any, Any]:
    """Per installment: net due (due less waived), principal unpaid and principal, interest and fee unpaid.

    A component is never paid beyond what is due less waived (``runoff ledger verify``), so an installment's
    unpaid amount is the sum of its components' without clipping each (which SQLite pays for by the row).
    """
    i = installments
    net_principal = i.c.principal_due_fen - i.c.principal_waived_fen
    net_due = net_principal + i.c.interest_due_fen - i.c.interest_waived_fen + i.c.fee_due_fen - i.c.fee_waived_fen
    unpaid_p = net_principal - i.c.principal_paid_fen + later_p
    unpaid = net_due - i.c.principal_paid_fen - i.c.interest_paid_fen - i.c.fee_paid_fen + later_all
    return net_due, unpaid_p, unpaid


def _book_totals(conn: Connection, as_of: date, first: date) -> pl.DataFrame:
    """Every shown loan's installments in one pass, per loan and schedule version: how many are unpaid, what fell
    due in the month and the penalty outstanding, as they stand (the few loans whose installments moved after
    ``as_of`` are read again by :func:`_arrears`). Only three sums: SQLite spends about a second on each."""
    i = installments
    net_due, _, unpaid = _amounts()
    zero = literal(0)
    query = (
        select(
            i.c.loan_id,
            i.c.schedule_version,
            func.sum(case((unpaid > 0, 1), else_=zero)),
            func.sum(case((and_(i.c.due_date >= first, i.c.due_date <= as_of), net_due), else_=zero)),
            func.sum(i.c.penalty_accrued_fen - i.c.penalty_paid_fen - i.c.penalty_waived_fen),
        )
        .where(i.c.loan_id.in_(select(loans.c.id).where(_shown(as_of, first))))
        .group_by(i.c.loan_id, i.c.schedule_version)
    )
    return _frame(conn, query, _BOOK_TOTALS)


def _arrears(conn: Connection, as_of: date, first: date, loan_ids: Sequence[str]) -> pl.DataFrame:
    """For ``loan_ids`` (read by key, in chunks): per schedule version what was unpaid at the end of ``as_of`` —
    the installments as they stand plus the allocations dated after ``as_of`` — how many installments, the oldest
    one's due date, and the principal and the principal, interest and fee unpaid on those due before ``as_of``."""
    parts = [_frame(conn, _arrears_query(conn, as_of, first, chunk), _ARREARS) for chunk in _chunks(conn, loan_ids)]
    return pl.concat(parts) if parts else pl.DataFrame(schema=_ARREARS)


def _arrears_query(conn: Connection, as_of: date, first: date, loan_ids: Sequence[str]) -> Any:
    i, a = installments, allocations
    later = (
        select(
            a.c.loan_id,
            a.c.schedule_version,
            a.c.installment_number,
            func.sum(case((a.c.component == "principal", a.c.amount_fen), else_=literal(0))).label("p"),
            func.sum(a.c.amount_fen).label("pif"),
        )
        .where(
            _among(conn, a.c.loan_id, loan_ids),
            a.c.value_date > as_of,
            a.c.reversed.is_(False),
            a.c.installment_number.is_not(None),
            a.c.component.in_(("principal", "interest", "fee")),
        )
        .group_by(a.c.loan_id, a.c.schedule_version, a.c.installment_number)
        .subquery("later")
    )
    source = i.outerjoin(
        later,
        and_(
            later.c.loan_id == i.c.loan_id,
            later.c.schedule_version == i.c.schedule_version,
            later.c.installment_number == i.c.number,
        ),
    )
    net_due, unpaid_p, unpaid = _amounts(func.coalesce(later.c.p, 0), func.coalesce(later.c.pif, 0))
    overdue = i.c.due_date < as_of
    zero = literal(0)
    return (
        select(
            i.c.loan_id,
            i.c.schedule_version,
            func.sum(case((unpaid > 0, 1), else_=zero)),
            func.sum(case((and_(i.c.due_date >= first, i.c.due_date <= as_of), net_due), else_=zero)),
            func.min(case((unpaid > 0, i.c.due_date), else_=None), type_=Date),
            func.sum(case((overdue, unpaid_p), else_=zero)),
            func.sum(case((overdue, unpaid), else_=zero)),
        )
        .select_from(source)
        .where(_among(conn, i.c.loan_id, loan_ids))
        .group_by(i.c.loan_id, i.c.schedule_version)
    )


def _after(conn: Connection, as_of: date) -> pl.DataFrame:
    """Per loan: net credits its journal lines dated after ``as_of`` posted to the component accounts."""
    jl = journal_lines
    query = (
        select(jl.c.loan_id, jl.c.account, func.sum(jl.c.credit_fen - jl.c.debit_fen))
        .where(jl.c.account.in_(COMPONENT_ACCOUNTS), jl.c.value_date > as_of, jl.c.loan_id.is_not(None))
        .group_by(jl.c.loan_id, jl.c.account)
    )
    rows = _frame(conn, query, {"ledger_id": pl.String, "account": pl.String, "net": pl.Int64})
    return (
        rows.pivot(on="account", index="ledger_id", values="net").select(
            "ledger_id",
            *[
                (pl.col(a) if a in rows.get_column("account").unique().to_list() else pl.lit(0, pl.Int64))
                .fill_null(0)
                .alias(f"after_{a}")
                for a in (PRINCIPAL, PENALTY)
            ],
        )
        if rows.height
        else pl.DataFrame(schema={"ledger_id": pl.String, f"after_{PRINCIPAL}": pl.Int64, f"after_{PENALTY}": pl.Int64})
    )


def _flows(conn: Connection, as_of: date, first: date) -> pl.DataFrame:
    """Per loan: paid by component and penalty charged in the month, from the journal lines dated in it.

    A reversal (a repost's or a payment reversal's mirror, dated as the entry it mirrors) counts as the
    kind of entry it reverses, so a reversed payment nets to nothing.
    """
    jl, e = journal_lines, journal_entries
    r = journal_entries.alias("reversed_entry")
    kind = case((e.c.kind == EntryKind.REVERSAL.value, r.c.kind), else_=e.c.kind)
    repaid = kind.in_(REPAYMENT_KINDS)
    net = jl.c.credit_fen - jl.c.debit_fen
    zero = literal(0)

    def paid(account: str) -> Any:
        return func.sum(case((and_(jl.c.account == account, repaid), net), else_=zero))

    query = (
        select(
            jl.c.loan_id,
            paid(PRINCIPAL),
            paid(INTEREST),
            paid(FEE),
            paid(PENALTY),
            func.sum(case((and_(jl.c.account == PENALTY, kind == PENALTY_KIND), -net), else_=zero)),
        )
        .select_from(jl.join(e, e.c.id == jl.c.entry_id).outerjoin(r, r.c.id == e.c.reverses_entry_id))
        .where(
            jl.c.account.in_(COMPONENT_ACCOUNTS),
            jl.c.value_date >= first,
            jl.c.value_date <= as_of,
            jl.c.loan_id.is_not(None),
            e.c.kind.in_((*REPAYMENT_KINDS, PENALTY_KIND, EntryKind.REVERSAL.value)),
        )
        .group_by(jl.c.loan_id)
    )
    return _frame(
        conn,
        query,
        {
            "ledger_id": pl.String,
            "paid_principal_fen": pl.Int64,
            "paid_interest_fen": pl.Int64,
            "paid_fee_fen": pl.Int64,
            "paid_penalty_fen": pl.Int64,
            "penalty_charged_fen": pl.Int64,
        },
    )


def _versions_at(conn: Connection, as_of: date) -> pl.DataFrame:
    """Loans re-scheduled at some point: the version live at ``as_of`` (latest not reversed that started by then)."""
    v = schedule_versions
    query = select(v.c.loan_id, v.c.version, v.c.start_date, v.c.reversed_at.is_(None)).where(v.c.version > 1)
    rows = _frame(
        conn, query, {"ledger_id": pl.String, "version": pl.Int64, "start_date": pl.Date, "standing": pl.Boolean}
    )
    return (
        rows.filter(pl.col("standing") & (pl.col("start_date") <= as_of))
        .group_by("ledger_id")
        .agg(pl.col("version").max().alias("version_at"))
        .join(rows.select("ledger_id").unique(), on="ledger_id", how="right")
        .with_columns(pl.col("version_at").fill_null(1))
    )


def _closing_days(conn: Connection, as_of: date, first: date) -> pl.DataFrame:
    """Loans repaid in the month: the next due date on or after the day they closed, and the latest due date
    of an installment whose principal that day's allocations paid (after the next one: settled early)."""
    ln, i, a = loans, installments, allocations
    i2 = installments.alias("paid_installment")
    next_due = (
        select(func.min(i.c.due_date))
        .where(i.c.loan_id == ln.c.id, i.c.schedule_version == ln.c.schedule_version, i.c.due_date >= ln.c.closed_on)
        .scalar_subquery()
    )
    last_paid_due = (
        select(func.max(i2.c.due_date))
        .select_from(
            a.join(
                i2,
                and_(
                    i2.c.loan_id == a.c.loan_id,
                    i2.c.schedule_version == a.c.schedule_version,
                    i2.c.number == a.c.installment_number,
                ),
            )
        )
        .where(
            a.c.loan_id == ln.c.id,
            a.c.schedule_version == ln.c.schedule_version,
            a.c.value_date == ln.c.closed_on,
            a.c.component == "principal",
            a.c.reversed.is_(False),
        )
        .scalar_subquery()
    )
    query = select(ln.c.id, next_due, last_paid_due).where(
        ln.c.status == LoanStatus.CLOSED.value, ln.c.closed_on >= first, ln.c.closed_on <= as_of
    )
    return _frame(conn, query, {"ledger_id": pl.String, "next_due": pl.Date, "last_paid_due": pl.Date})


def _charge_offs(conn: Connection, as_of: date, first: date) -> pl.DataFrame:
    co = charge_offs
    query = select(co.c.loan_id, co.c.as_of, co.c.dpd, co.c.principal_fen).where(
        co.c.as_of >= first, co.c.as_of <= as_of
    )
    return _frame(
        conn,
        query,
        {"ledger_id": pl.String, "charged_off_on": pl.Date, "charge_off_dpd": pl.Int64, "charged_off_fen": pl.Int64},
    )


LEDGER_COLUMNS: tuple[str, ...] = ("ledger_id", *[n for n in PERFORMANCE.names if n not in ("loan_id", "customer_id")])
"""What :func:`ledger_month_end` returns: the ledger's loan id, then the performance columns it can give."""


def ledger_month_end(conn: Connection, as_of: date) -> tuple[pl.DataFrame, dict[str, float]]:
    """Every loan's performance row at the end of ``as_of`` (see the module docstring), keyed by ledger id.

    Returns the rows (:data:`LEDGER_COLUMNS`, sorted by ledger id) and the seconds each read took. Run it in
    one read transaction (a repeatable-read snapshot on PostgreSQL) so the statements see the same ledger.

    Most loans need one pass over their installments (:func:`_book_totals`); their oldest unpaid due date is
    the ledger's own ``loans.oldest_unpaid_due_date``. The loans that were overdue at ``as_of``, moved after it
    or were re-scheduled after it are read again by key with what was paid after ``as_of`` added back
    (:func:`_arrears`).
    """
    first = as_of.replace(day=1)
    if conn.dialect.name == "postgresql":
        # The per-loan sums group a million loans: in memory they hash, on the default 4 MB they sort on disk
        # (twice as long when the planner has no statistics yet, as right after a bulk load).
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[step] = seconds.get(step, 0.0) + now - clock
        clock = now

    book = _loans_at(conn, as_of, first)
    after = _after(conn, as_of)
    versions = _versions_at(conn, as_of)
    lap("loans")
    totals = _book_totals(conn, as_of, first)
    lap("installments")
    shown = book.join(versions, on="ledger_id", how="left").with_columns(
        pl.coalesce("version_at", "live_version").alias("version_at")
    )
    again = (
        shown.filter(
            (pl.col("oldest_unpaid_now") < as_of)
            | (pl.col("version_at") != pl.col("live_version"))
            | pl.col("ledger_id").is_in(after.get_column("ledger_id").implode())
        )
        .get_column("ledger_id")
        .sort()
        .to_list()
    )
    arrears = _arrears(conn, as_of, first, again)
    lap("arrears")
    flows = _flows(conn, as_of, first)
    lap("flows")
    closing = _closing_days(conn, as_of, first)
    written_off = _charge_offs(conn, as_of, first)
    lap("closings")
    rows = _assemble(shown, totals, arrears, after, flows, closing, written_off, as_of=as_of)
    lap("assemble")
    return rows, seconds


def _assemble(
    shown: pl.DataFrame,
    totals: pl.DataFrame,
    arrears: pl.DataFrame,
    after: pl.DataFrame,
    flows: pl.DataFrame,
    closing: pl.DataFrame,
    written_off: pl.DataFrame,
    *,
    as_of: date,
) -> pl.DataFrame:
    c = pl.col
    at_version = ["ledger_id", "version_at"]
    frame = (
        shown.join(totals.drop("penalty_open"), left_on=at_version, right_on=["ledger_id", "version"], how="left")
        .join(
            totals.select("ledger_id", "version", "penalty_open"),
            left_on=["ledger_id", "live_version"],
            right_on=["ledger_id", "version"],
            how="left",
        )
        .join(arrears, left_on=at_version, right_on=["ledger_id", "version"], how="left", suffix="_at")
        .with_columns(
            # Loans read again take their figures from that read; the others were current at ``as_of`` and
            # have not moved since, so their oldest unpaid installment is the ledger's, not yet due.
            pl.when(c("remaining_at").is_not_null())
            .then(c("remaining_at"))
            .otherwise(c("remaining"))
            .alias("remaining"),
            pl.when(c("remaining_at").is_not_null())
            .then(c("due_in_month_at"))
            .otherwise(c("due_in_month"))
            .alias("due_in_month"),
            pl.when(c("remaining_at").is_not_null())
            .then(c("oldest_unpaid"))
            .otherwise(c("oldest_unpaid_now"))
            .alias("oldest_unpaid"),
        )
        .join(after, on="ledger_id", how="left")
        .join(flows, on="ledger_id", how="left")
        .join(closing, on="ledger_id", how="left")
        .join(written_off, on="ledger_id", how="left")
        .with_columns(pl.col(pl.Int64).fill_null(0))
    )
    is_open_now = c("status") == LoanStatus.OPEN.value
    open_at = is_open_now | (c("closed_on") > as_of)
    charged = ~open_at & (c("status") == LoanStatus.CHARGED_OFF.value)
    early = c("last_paid_due").is_not_null() & c("next_due").is_not_null() & (c("last_paid_due") > c("next_due"))
    penalty_at = pl.when(is_open_now).then(c("penalty_open")).otherwise(0) + c(f"after_{PENALTY}")
    days_late = (pl.lit(as_of) - c("oldest_unpaid")).dt.total_days()
    dpd_open = pl.when(c("oldest_unpaid") < as_of).then(days_late).otherwise(0)
    dpd_charged = c("charge_off_dpd") + (pl.lit(as_of) - c("charged_off_on")).dt.total_days()
    start_month = c("start_date").dt.year().cast(pl.Int64) * 12 + c("start_date").dt.month().cast(pl.Int64)
    frame = frame.with_columns(
        (as_of.year * 12 + as_of.month - start_month).cast(pl.Int16).alias("mob"),
        pl.when(open_at)
        .then(pl.lit("active"))
        .when(charged)
        .then(pl.lit("charged-off"))
        .when(early)
        .then(pl.lit("early-settled"))
        .otherwise(pl.lit("paid-off"))
        .alias("status"),
        pl.when(open_at).then(dpd_open).when(charged).then(dpd_charged).otherwise(0).cast(pl.Int32).alias("dpd"),
        pl.when(open_at)
        .then(pl.when(is_open_now).then(c("outstanding_fen")).otherwise(0) + c(f"after_{PRINCIPAL}"))
        .otherwise(0)
        .alias("principal_balance_fen"),
        pl.when(open_at).then(c("overdue_principal")).otherwise(0).alias("overdue_principal_fen"),
        pl.when(open_at).then(c("overdue_scheduled") + penalty_at).otherwise(0).alias("overdue_amount_fen"),
        c("due_in_month").alias("due_fen"),
        pl.when(open_at).then(c("remaining")).otherwise(0).cast(pl.Int16).alias("installments_remaining"),
        pl.lit(as_of).alias("month_end"),
    )
    names = np.array([b.value for b in BUCKETS], dtype=object)
    by_dpd = pl.Series("by_dpd", names[buckets_of(frame.get_column("dpd").to_numpy())].tolist(), dtype=pl.String)
    frame = frame.with_columns(
        pl.when(c("status") == "active")
        .then(by_dpd)
        .when(c("status") == "charged-off")
        .then(pl.lit("charged-off"))
        .otherwise(pl.lit("closed"))
        .alias("bucket")
    )
    return frame.select(LEDGER_COLUMNS).sort("ledger_id")


# --- the use case: append the month to the workspace's performance table --------------------------------------------


@dataclass(frozen=True, slots=True)
class MonthEndResult:
    """What a snapshot wrote: rows for the month, what it replaced, the ledger loans the book does not hold."""

    as_of: date
    close_id: int
    rows: int
    replaced_rows: int
    partitions: tuple[int, ...]
    by_status: dict[str, int]
    by_bucket: dict[str, dict[str, int]]  # bucket → loans, principal_fen
    not_in_book: int
    not_in_book_sample: tuple[str, ...]
    seconds: float = 0.0
    seconds_by_step: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "month": _month_key(self.as_of),
            "close_id": self.close_id,
            "rows": self.rows,
            "replaced_rows": self.replaced_rows,
            "partitions": list(self.partitions),
            "by_status": self.by_status,
            "by_bucket": {
                b: {"loans": v["loans"], "principal": str(from_minor(v["principal_fen"]))}
                for b, v in self.by_bucket.items()
            },
            "not_in_book": self.not_in_book,
            "not_in_book_sample": list(self.not_in_book_sample),
            "seconds": round(self.seconds, 3),
            "seconds_by_step": {k: round(v, 3) for k, v in self.seconds_by_step.items()},
        }


def ledger_months(workspace: Workspace) -> dict[str, dict[str, Any]]:
    """The months of the performance table written from the ledger (``YYYY-MM`` → what the snapshot recorded)."""
    path = _months_path(workspace)
    if not path.is_file():
        return {}
    months: dict[str, dict[str, Any]] = json.loads(path.read_text(encoding="utf-8")).get("months", {})
    return months


def _months_path(workspace: Workspace) -> Path:
    return workspace.table_dir(TABLE) / MONTHS_FILE


def _write_months(workspace: Workspace, months: dict[str, dict[str, Any]]) -> None:
    path = _months_path(workspace)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    body = {"table": TABLE, "source": "ledger", "months": dict(sorted(months.items()))}
    tmp.write_text(json.dumps(body, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _book_index(workspace: Workspace) -> pl.DataFrame:
    """Every loan of the book with its customer and the partition that holds it."""
    parts = workspace.partitions("loans")
    if not parts:
        raise NotFound(
            f"no book in {workspace.data_dir}: the snapshot appends to the book's performance table and takes each "
            "loan's customer and partition from its loans table; run `runoff generate` or `runoff import` first",
            code="month_end.no_book",
        )
    return pl.concat(
        [
            workspace.scan("loans", p)
            .select(pl.col("loan_id").cast(pl.Int64), pl.col("customer_id").cast(pl.Int64))
            .with_columns(pl.lit(p, pl.Int64).alias("partition"))
            .collect()
            for p in parts
        ]
    )


def _months_by_partition(workspace: Workspace) -> dict[int, set[str]]:
    """The months (``YYYY-MM``) each performance partition holds rows for."""
    out: dict[int, set[str]] = {}
    for p in workspace.partitions(TABLE):
        ends = workspace.scan(TABLE, p).select(pl.col("month_end").unique()).collect().get_column("month_end")
        out[p] = {_month_key(d) for d in ends.to_list() if d is not None}
    return out


def _check_month(as_of: date, *, any_day: bool, held: dict[int, set[str]], from_ledger: set[str]) -> None:
    if not any_day and as_of != month_end_of(as_of):
        raise InvalidInput(
            f"`as_of`: {as_of.isoformat()} is not a month end; expected the last day of its month "
            f"({month_end_of(as_of).isoformat()}), or say any day will do (--any-day)",
            field="as_of",
            code="month_end.not_month_end",
        )
    book_months = set().union(*held.values()) - from_ledger if held else set()
    month = _month_key(as_of)
    if month in book_months:
        raise Conflict(
            f"`as_of`: the performance table already holds the book's own rows for {month} (generated or "
            f"imported); month ends from the ledger follow the book's last month, {max(book_months)}",
            field="as_of",
            code="month_end.book_month",
        )
    later = sorted(m for m in book_months if m > month)
    if later:
        raise Conflict(
            f"`as_of`: {month} is before the book's own months (up to {later[-1]}); month ends from the ledger "
            "follow the book's last month",
            field="as_of",
            code="month_end.book_month",
        )


def _close_of(conn: Connection, as_of: date) -> int:
    """The id of the finished daily close of ``as_of``; refused, naming the close that is missing, otherwise."""
    c = ledger_closes
    found = conn.execute(
        select(c.c.id).where(c.c.status == "done", c.c.as_of == as_of).order_by(c.c.id.desc()).limit(1)
    ).scalar()
    if found is not None:
        return int(found)
    last = conn.execute(select(func.max(c.c.as_of)).where(c.c.status == "done")).scalar()
    raise Conflict(
        f"`as_of`: the daily close of {as_of.isoformat()} has not been run (last close: "
        f"{last.isoformat() if last else 'none yet'}); the month end stands on that close's DPD and penalty — "
        f"run `runoff close-day --as-of {as_of.isoformat()}` first",
        field="as_of",
        code="month_end.close_missing",
        details={"missing_close": as_of.isoformat(), "last_close": last.isoformat() if last else None},
    )


def snapshot_month_end(workspace: Workspace, ctx: AppContext, *, as_of: date, any_day: bool = False) -> MonthEndResult:
    """Append the ledger's month end ``as_of`` to the workspace's ``performance`` table (see the module docstring).

    Refused, before anything is read from the ledger, for a day that is not a month end (unless ``any_day``) and
    for a month the book's own rows hold or precede; then for a day the daily close has not been run for. Running
    it again for the same month replaces that month's rows.
    """
    started = time.perf_counter()
    steps: dict[str, float] = {}
    held = _months_by_partition(workspace)
    months = ledger_months(workspace)
    _check_month(as_of, any_day=any_day, held=held, from_ledger=set(months))
    index = _book_index(workspace)
    steps["book"] = time.perf_counter() - started

    with ctx.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            close_id = _close_of(conn, as_of)
            rows, reads = ledger_month_end(conn, as_of)
    steps |= {f"read_{k}": v for k, v in reads.items()}

    clock = time.perf_counter()
    keyed = rows.with_columns(pl.col("ledger_id").cast(pl.Int64, strict=False).alias("loan_id"))
    matched = keyed.join(index, on="loan_id", how="inner")
    missing = keyed.join(index, on="loan_id", how="anti").get_column("ledger_id")
    new = matched.select("partition", *PERFORMANCE.names)
    month = _month_key(as_of)
    touched = sorted(set(new.get_column("partition").unique().to_list()) | {p for p, m in held.items() if month in m})
    months[month] = {"as_of": as_of.isoformat(), "status": "writing", "close_id": close_id}
    _write_months(workspace, months)
    replaced = 0
    first, last = as_of.replace(day=1), month_end_of(as_of)
    for p in touched:
        mine = new.filter(pl.col("partition") == p).drop("partition")
        if workspace.partition_path(TABLE, p).is_file():
            old = workspace.read_partition(TABLE, p)
            in_month = old.get_column("month_end").is_between(first, last)
            replaced += int(in_month.sum())
            mine = pl.concat([PERFORMANCE.conform(old.filter(~in_month)), PERFORMANCE.conform(mine)])
        workspace.write_partition(TABLE, p, mine.sort("loan_id", "month_end"))
    steps["write"] = time.perf_counter() - clock

    by_bucket = new.group_by("bucket").agg(
        pl.len().alias("loans"), pl.col("principal_balance_fen").sum().alias("principal_fen")
    )
    counts = {str(r["bucket"]): r for r in by_bucket.iter_rows(named=True)}
    statuses = dict(new.group_by("status").len().iter_rows())
    result = MonthEndResult(
        as_of=as_of,
        close_id=close_id,
        rows=new.height,
        replaced_rows=replaced,
        partitions=tuple(sorted(set(new.get_column("partition").to_list()))),
        by_status={s: int(statuses[s]) for s in LOAN_STATUSES if s in statuses},
        by_bucket={
            b: {"loans": int(counts[b]["loans"]), "principal_fen": int(counts[b]["principal_fen"])}
            for b in BOOK_BUCKETS
            if b in counts
        },
        not_in_book=missing.len(),
        not_in_book_sample=tuple(missing.head(5).to_list()),
        seconds=time.perf_counter() - started,
        seconds_by_step=steps,
    )
    months[month] = {
        "as_of": as_of.isoformat(),
        "status": "done",
        "close_id": close_id,
        "rows": result.rows,
        "not_in_book": result.not_in_book,
        "partitions": list(result.partitions),
        "written_at": ctx.clock().isoformat(),
    }
    _write_months(workspace, months)
    return result


# --- after the daily close of a month end ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AfterClose:
    """What the month-end close did about the snapshot: ``written``, ``skipped`` (and why) or ``failed`` (and why)."""

    status: str
    reason: str | None = None
    result: MonthEndResult | None = None
    error: RunoffError | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.reason is not None:
            out["reason"] = self.reason
        if self.result is not None:
            out |= self.result.to_dict()
        if self.error is not None:
            out["error"] = self.error.to_dict()
        return out


def snapshot_after_close(ctx: AppContext, *, as_of: date) -> AfterClose | None:
    """The month end's snapshot after its daily close, into the context's workspace; None when ``as_of`` is not one.

    Skipped when the workspace folder is not a workspace, holds no book, or the month is the book's own (the
    go-live month: the ledger was loaded from it). A refusal or a file error is returned, not raised: the close
    itself is done and committed; ``runoff snapshot --as-of`` writes the month once the cause is fixed.
    """
    if as_of != month_end_of(as_of):
        return None
    root = Path(ctx.settings.workspace)
    if not (root / MARKER).is_file():
        return AfterClose("skipped", reason=f"{root} is not a workspace (no {MARKER}): no performance table to extend")
    workspace = Workspace(root)
    if not workspace.has_table("loans"):
        return AfterClose("skipped", reason=f"the workspace {root} holds no book (no loans table)")
    try:
        return AfterClose("written", result=snapshot_month_end(workspace, ctx, as_of=as_of))
    except RunoffError as exc:
        if exc.code == "month_end.book_month":
            return AfterClose("skipped", reason=exc.message)
        return AfterClose("failed", reason=exc.message, error=exc)
    except OSError as exc:
        error = RunoffError(f"cannot write the month end to {workspace.table_dir(TABLE)}: {exc}", code="month_end.io")
        return AfterClose("failed", reason=error.message, error=error)
