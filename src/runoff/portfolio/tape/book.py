"""From tape to book (the ``loans`` rows and each loan's position) and back (example tapes, round trips)."""

from __future__ import annotations

from datetime import date

import polars as pl

from runoff.portfolio.schemas import LOANS
from runoff.portfolio.tape.fields import DTYPES, ID_DTYPE, TAPE_FIELDS, FieldKind, TapeStatus, row_date
from runoff.portfolio.tape.mapping import AmountUnit, RateScale, TapeMapping
from runoff.servicing.product import Method


def _months_after(day: pl.Expr, months: pl.Expr) -> pl.Expr:
    """``day`` plus ``months`` calendar months, clamped to month end (as ``runoff.calendar.add_months``)."""
    return day.dt.offset_by(pl.format("{}mo", months))


def book_loans(accepted: pl.DataFrame) -> pl.DataFrame:
    """The ``loans`` table rows (``runoff.portfolio.schemas.LOANS``) of accepted tape rows.

    What a tape leaves out is derived the way the book defines it: the account is the customer's
    one credit line (account id = customer id), the product is named after the method
    (``tape-<method>``), the first installment falls due a month after drawing and the last ``term``
    months after it (month-end clamp), the status follows the balance (0 → paid-off, else active).
    """
    c = pl.col
    frame = accepted.with_columns(
        c("account_id").fill_null(c("customer_id")),
        c("product_id").fill_null(pl.lit("tape-") + c("method")),
        c("first_due_on").fill_null(_months_after(c("originated_on"), pl.lit(1))),
        c("maturity_on").fill_null(_months_after(c("originated_on"), c("term_months"))),
        c("originated_on").dt.strftime("%Y-%m").alias("vintage"),
        _book_status().alias("status"),
    )
    return LOANS.conform(frame)


def _book_status() -> pl.Expr:
    """``loans.status`` from the tape's status, else from the balance (0 → paid-off), else active."""
    c = pl.col
    return pl.coalesce(
        c("status").replace_strict({s.value: s.book_status for s in TapeStatus}, default=None, return_dtype=pl.String),
        pl.when(c("principal_balance_fen") == 0).then(pl.lit("paid-off")),
        pl.lit("active"),
    )


POSITION_SCHEMA: dict[str, pl.DataType] = {
    "loan_id": ID_DTYPE,
    "as_of": pl.Date(),
    "status": pl.String(),
    "principal_balance_fen": pl.Int64(),
    "dpd": pl.Int32(),
    "oldest_unpaid_due_on": pl.Date(),
}


def tape_positions(accepted: pl.DataFrame, *, as_of: date | None) -> pl.DataFrame:
    """Each accepted loan's position on the tape's date: status, principal balance, DPD, oldest unpaid due date.

    A tape that gives no balance leaves it null (the ledger then keeps the schedule's); no DPD means 0
    unless an oldest unpaid due date says otherwise (DPD counts from it, 逾期天数).
    """
    c = pl.col
    tape_date = row_date(as_of)
    derived_dpd = pl.max_horizontal((tape_date - c("oldest_unpaid_due_on")).dt.total_days(), pl.lit(0))
    return accepted.select(
        c("loan_id"),
        tape_date.alias("as_of"),
        _book_status().alias("status"),
        c("principal_balance_fen"),
        pl.coalesce(c("dpd"), derived_dpd, pl.lit(0)).cast(pl.Int32).alias("dpd"),
        c("oldest_unpaid_due_on"),
    )


# --- from book to tape (the inverse: example tapes and round trips) --------------------------------------------

METHOD_NAMES_ZH: dict[str, str] = {
    Method.EQUAL_INSTALLMENT.value: "等额本息",
    Method.EQUAL_PRINCIPAL.value: "等额本金",
    Method.FLAT_FEE.value: "等本等费",
    Method.INTEREST_ONLY.value: "先息后本",
}
STATUS_NAMES_ZH: dict[str, str] = {
    TapeStatus.CURRENT.value: "正常",
    TapeStatus.OVERDUE.value: "逾期",
    TapeStatus.PAID_OFF.value: "结清",
    TapeStatus.EARLY_SETTLED.value: "提前结清",
    TapeStatus.CHARGED_OFF.value: "核销",
}


def tape_from_book(loans: pl.DataFrame, performance: pl.DataFrame, *, as_of: date) -> pl.DataFrame:
    """The loan tape a lender would cut from a book on ``as_of``: the ``loans`` columns plus each loan's
    latest month-end position (balance, DPD, status; 逾期 when active with DPD above 0), in tape fields."""
    c = pl.col
    latest = (
        performance.filter(c("month_end") <= as_of)
        .sort("loan_id", "month_end")
        .group_by("loan_id", maintain_order=True)
        .last()
        .select("loan_id", "principal_balance_fen", "dpd")
    )
    status = (
        pl.when(c("status") != "active")
        .then(c("status"))
        .when(c("dpd") > 0)
        .then(pl.lit(TapeStatus.OVERDUE.value))
        .otherwise(pl.lit(TapeStatus.CURRENT.value))
    )
    tape = (
        loans.filter(c("originated_on") <= as_of)
        .join(latest, on="loan_id", how="left")
        .with_columns(
            status.alias("status"),
            c("dpd").cast(pl.Int64),
            pl.lit(None, dtype=pl.Date).alias("oldest_unpaid_due_on"),
            pl.lit(as_of, dtype=pl.Date).alias("as_of"),
        )
    )
    return tape.select([c(f.name).cast(DTYPES[f.kind]) for f in TAPE_FIELDS])


def _yuan_text(fen: pl.Expr) -> pl.Expr:
    sign = pl.when(fen < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    whole = fen.abs() // 100
    cents = (fen.abs() % 100).cast(pl.String).str.zfill(2)
    return pl.format("{}{}.{}", sign, whole, cents)


def tape_in_source_columns(tape: pl.DataFrame, mapping: TapeMapping) -> pl.DataFrame:
    """A tape (tape fields) written the way ``mapping`` reads it: source headers, each column's first date
    format, amounts in its unit, rates in its scale, methods and statuses in Chinese. The inverse of
    :func:`convert_tape` for the columns the mapping names."""
    exprs: list[pl.Expr] = []
    for fld in TAPE_FIELDS:
        col = mapping.columns.get(fld.name)
        if col is None or fld.name not in tape.columns:
            continue
        value = pl.col(fld.name).cast(DTYPES[fld.kind])
        if fld.kind is FieldKind.DATE:
            text = value.dt.strftime(mapping.date_formats_of(fld.name)[0])
        elif fld.kind is FieldKind.AMOUNT:
            text = _yuan_text(value) if mapping.unit_of(fld.name) is AmountUnit.YUAN else value.cast(pl.String)
        elif fld.kind is FieldKind.RATE:
            scaled = value * 100 if mapping.scale_of(fld.name) is RateScale.PERCENT else value
            text = scaled.round(8).cast(pl.String)
        elif fld.kind is FieldKind.METHOD:
            text = value.replace_strict(METHOD_NAMES_ZH, default=value)
        elif fld.kind is FieldKind.STATUS:
            text = value.replace_strict(STATUS_NAMES_ZH, default=value)
        else:
            text = value.cast(pl.String)
        exprs.append(text.alias(col.source))
    return tape.select(exprs)
