"""The ledger as of a month end (月末表现快照): every loan's row of the book's ``performance`` table, set-based.

:func:`ledger_month_end` reads, in a handful of statements and never a query per loan, each loan's state at
the end of ``as_of`` as the ledger knows it now, whenever it runs: what was posted with a value date after
``as_of`` (a payment, the next days' penalty, a write-off, a re-schedule) is taken back out, so reading it
again a week later gives the same rows unless a backdated posting changed the month (then the rows say what
the books now say):

* scheduled components unpaid per installment: due − waived − paid, plus the allocations dated after
  ``as_of``; only loans overdue at ``as_of``, moved after it (journal lines dated after it) or re-scheduled
  after it are read that way, by key; every other loan was current at ``as_of`` and has not moved since, so
  one pass over the installments of the loans shown gives what it needs (:func:`_book_totals`);
* booked balances (principal, penalty): the loan's balance now plus the net credits its journal lines dated
  after ``as_of`` posted to ``loans_receivable`` / ``penalty_receivable`` (the balances ``runoff ledger
  verify`` ties to the installments);
* flows of the month (paid by component, penalty charged): journal lines dated in the month, of the entries
  that carry them (payment, credit applied, penalty accrual, and the reversals of those: a reversal is dated
  as the entry it mirrors, so a reversed payment nets to nothing);
* the schedule version live at ``as_of``: the latest version not reversed that took effect by then
  (:func:`_versions_at`).

The columns, matching the generator's definitions (:mod:`runoff.portfolio.lifecycle`):

========================== =========================================================================================
``status``                 ``active`` while open at ``as_of``; ``charged-off``; ``paid-off``, or ``early-settled``
                           when the closing day's payment paid principal of an installment due after the
                           next due date (提前结清: more than the current installment ahead of schedule)
``bucket``                 from ``dpd`` (current, M1 1–30, M2 31–60, M3 61–90, M4+); ``closed`` / ``charged-off``
                           in the month the loan closed or was written off; loans closed before the month: no row
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

Rows are keyed by the ledger's loan id; :mod:`runoff.app.month_end` maps them to the book's ids and writes them.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Sequence
from datetime import date
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Connection, Date, String, and_, any_, bindparam, case, cast, func, literal, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from runoff.portfolio.schemas import PERFORMANCE
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
    loans,
    schedule_versions,
)

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
    """Loans re-scheduled at some point: the version live at ``as_of``, the latest not reversed that took effect by then.

    A version takes effect on the value date of its ``reschedule`` entry (展期 / 债务重组: haircut, capitalised or
    carried amounts, penalty waived), else on the due date of the arrears it carries (installment 0, due on the
    day it was applied), else on the day it was created. Its ``start_date`` is no guide: an extension's schedule
    starts on the last due date before it.
    """
    v, je, i = schedule_versions, journal_entries, installments
    standing = case((v.c.reversed_at.is_(None), 1), else_=literal(0))
    rescheduled = (
        select(je.c.loan_id, je.c.schedule_version, func.min(je.c.value_date).label("on"))
        .where(
            je.c.kind == EntryKind.RESCHEDULE.value,
            je.c.loan_id.in_(select(v.c.loan_id).where(v.c.version > 1)),
        )
        .group_by(je.c.loan_id, je.c.schedule_version)
        .subquery("rescheduled")
    )
    created = func.date(v.c.created_at) if conn.dialect.name == "sqlite" else cast(v.c.created_at, Date)
    query = (
        select(v.c.loan_id, v.c.version, standing, rescheduled.c.on, i.c.due_date, created)
        .select_from(
            v.outerjoin(
                rescheduled,
                and_(rescheduled.c.loan_id == v.c.loan_id, rescheduled.c.schedule_version == v.c.version),
            ).outerjoin(i, and_(i.c.loan_id == v.c.loan_id, i.c.schedule_version == v.c.version, i.c.number == 0))
        )
        .where(v.c.version > 1)
    )
    rows = _frame(
        conn,
        query,
        {
            "ledger_id": pl.String,
            "version": pl.Int64,
            "standing": pl.Int64,
            "rescheduled_on": pl.Date,
            "carried_due": pl.Date,
            "created_on": pl.Date,
        },
    )
    effective = pl.coalesce("rescheduled_on", "carried_due", "created_on")
    return (
        rows.filter((pl.col("standing") == 1) & (effective <= as_of))
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
