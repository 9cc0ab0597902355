"""From tape to book (the ``loans`` rows and each loan's position) and back (example tapes, round trips)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import numpy as np
import polars as pl

from runoff.portfolio.schemas import LOANS
from runoff.portfolio.tape.convert import RATE_DECIMALS
from runoff.portfolio.tape.fields import DTYPES, ID_DTYPE, REF_DTYPE, TAPE_FIELDS, FieldKind, TapeStatus, row_date
from runoff.portfolio.tape.mapping import AmountUnit, RateScale, TapeMapping
from runoff.servicing.product import Method, Product
from runoff.servicing.vectorized import METHOD_CODES, build_schedules, due_dates, rate_units


def _months_after(day: pl.Expr, months: pl.Expr) -> pl.Expr:
    """``day`` plus ``months`` calendar months, clamped to month end (as ``runoff.calendar.add_months``)."""
    return day.dt.offset_by(pl.format("{}mo", months))


def book_loans(accepted: pl.DataFrame) -> pl.DataFrame:
    """The ``loans`` table rows (``runoff.portfolio.schemas.LOANS``) of accepted tape rows given their
    book ids (:func:`runoff.portfolio.tape.ids.identify`).

    What a tape leaves out is derived the way the book defines it: the account is the customer's
    one credit line (account id = customer id), the product is named after the method
    (``tape-<method>``), the first installment falls due a month after drawing and the last ``term``
    months after it (month-end clamp), the status follows the balance (0 → paid-off, else active).
    """
    c = pl.col
    frame = accepted.with_columns(
        c("account_id").fill_null(c("customer_id")),
        c("product_id").fill_null(pl.lit("tape-") + c("method")),
        c("originated_on").dt.strftime("%Y-%m").alias("vintage"),
        _book_status().alias("status"),
    )
    frame = _filled(frame, "first_due_on", c("originated_on").dt.offset_by("1mo"))
    frame = _filled(frame, "maturity_on", _months_after(c("originated_on"), c("term_months")))
    return LOANS.conform(frame)


def _filled(frame: pl.DataFrame, name: str, derived: pl.Expr) -> pl.DataFrame:
    """``frame`` with the nulls of column ``name`` filled by ``derived``, computed for those rows only."""
    nulls = frame.get_column(name).null_count()
    if nulls == 0:
        return frame
    if nulls == frame.height:
        return frame.with_columns(derived.cast(frame.schema[name]).alias(name))
    rows = frame.select(pl.arg_where(pl.col(name).is_null())).to_series()
    values = frame[rows].select(derived.cast(frame.schema[name])).to_series()
    return frame.with_columns(frame.get_column(name).clone().scatter(rows, values))


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
    "loan_ref": REF_DTYPE,
    "customer_ref": REF_DTYPE,
    "account_ref": REF_DTYPE,
    "as_of": pl.Date(),
    "status": pl.String(),
    "principal_balance_fen": pl.Int64(),
    "dpd": pl.Int32(),
    "oldest_unpaid_due_on": pl.Date(),
}


def tape_positions(accepted: pl.DataFrame, *, as_of: date | None) -> pl.DataFrame:
    """Each accepted loan's position on the tape's date: status, principal balance, DPD, oldest unpaid due date,
    with the lender's references (借据号, 客户号, 额度账户号) beside the book's loan id.

    ``accepted`` carries the book's ids and the references (:func:`runoff.portfolio.tape.ids.identify`). A tape that gives no balance leaves it null (the ledger then keeps the schedule's); no DPD means 0
    unless an oldest unpaid due date says otherwise (DPD counts from it, 逾期天数).
    """
    c = pl.col
    tape_date = row_date(as_of)
    derived_dpd = pl.max_horizontal((tape_date - c("oldest_unpaid_due_on")).dt.total_days(), pl.lit(0))
    return accepted.select(
        c("loan_id").cast(ID_DTYPE),
        c("loan_ref"),
        c("customer_ref"),
        c("account_ref"),
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
    # The book's own ids stay Int64: whole-number references, which import back as the same ids.
    return tape.select([c(f.name).cast(ID_DTYPE if f.kind is FieldKind.ID else DTYPES[f.kind]) for f in TAPE_FIELDS])


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


# --- from tape to ledger (opening positions) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerOpening:
    """What the ledger's bulk loader needs for a tape's open loans, in its own vocabulary (ids as text)."""

    loans: pl.DataFrame  # id, customer_id, account_id, product_id, principal_fen, start_date, term, dpd, rates
    installments: pl.DataFrame  # loan_id, number, due_date, *_due_fen and *_paid_fen
    products: tuple[Product, ...]
    as_of: date | None


def tape_products(loans: pl.DataFrame) -> tuple[Product, ...]:
    """One product per product id of the tape, inferred from its loans: the most common method, the median
    rate (each loan keeps its own in its schedule version), the terms seen, default conventions."""
    c = pl.col
    summary = (
        loans.group_by("product_id")
        .agg(
            c("method").mode().first().alias("method"),
            c("annual_rate").median().alias("annual_rate"),
            c("fee_rate").median().alias("fee_rate"),
            c("term_months").unique().sort().alias("terms"),
        )
        .sort("product_id")
    )
    out = []
    for row in summary.iter_rows(named=True):
        method = Method(row["method"])
        price: dict[str, Decimal] = {}
        if method is Method.FLAT_FEE:
            price["fee_rate"] = min(_decimal(row["fee_rate"]), MAX_PRODUCT_FEE_RATE)
        else:
            price["annual_rate"] = _decimal(row["annual_rate"])
        out.append(
            Product(
                id=row["product_id"],
                name=f"{row['product_id']} (from the loan tape)",
                method=method,
                terms=tuple(int(t) for t in row["terms"]),
                **price,
            )
        )
    return tuple(out)


MAX_PRODUCT_FEE_RATE = Decimal("0.1")


def _decimal(rate: float | None) -> Decimal:
    return Decimal(repr(round(rate, RATE_DECIMALS))) if rate is not None else Decimal(0)


def ledger_opening(loans: pl.DataFrame, positions: pl.DataFrame) -> LedgerOpening:
    """The open loans of an import as the ledger's opening positions (存量头寸).

    Each open loan (status active) is scheduled by the vectorized engine from what the tape says
    (method, rate, term, principal; default conventions), its due dates monthly from its first due
    date. A tape holds one balance per loan, not a payment history, so the principal repaid
    (principal − balance) is taken oldest installment first, and an installment whose principal is
    repaid has its interest and fee paid too; without a balance, installments due before the oldest
    unpaid due date (or the tape date less the DPD) count as paid. The tape's DPD is kept as given.
    Closed and written-off loans stay in the book's tables only: the ledger services open positions.
    """
    c = pl.col
    book = loans.join(positions.select(pl.exclude("status")), on="loan_id", how="inner").filter(c("status") == "active")
    if book.is_empty():
        return LedgerOpening(loans=pl.DataFrame(), installments=pl.DataFrame(), products=(), as_of=None)
    book = book.sort("loan_id")
    annual = book.get_column("annual_rate").fill_null(0.0).to_numpy()
    fee = book.get_column("fee_rate").fill_null(0.0).to_numpy()
    codes = {m.value: METHOD_CODES[m] for m in Method}
    arrays = build_schedules(
        book.get_column("method").replace_strict(codes, return_dtype=pl.Int8).to_numpy(),
        principal_fen=book.get_column("principal_fen").to_numpy(),
        term=book.get_column("term_months").cast(pl.Int64).to_numpy(),
        annual_rate_units=rate_units(annual),
        fee_rate_units=rate_units(fee, field="fee_rate"),
    )
    mask = arrays.mask
    loan_index, period = np.nonzero(mask)  # loan by loan, installments in order
    p_due = arrays.principal_fen[mask]
    # Due dates keep the drawing day (31 Jan: 29 Feb, 31 Mar, ...) when the first one is a month after
    # drawing, else the first due date's day.
    terms = book.get_column("term_months").cast(pl.Int64).to_numpy()
    drawn = book.get_column("originated_on").to_numpy().astype("datetime64[D]")
    first_due = book.get_column("first_due_on").to_numpy().astype("datetime64[D]")
    from_drawing = due_dates(drawn, terms)
    from_first = np.concatenate([first_due[:, None], due_dates(first_due, terms)[:, :-1]], axis=1)
    on_drawing_day = from_drawing[:, 0] == first_due
    due = np.where(on_drawing_day[:, None], from_drawing, from_first)[:, : mask.shape[1]][mask]

    # Principal repaid: principal − balance; without a balance, what fell due before the cut-off.
    cut = (
        book.select(
            pl.coalesce(
                c("oldest_unpaid_due_on"),
                pl.when(c("dpd") > 0).then(c("as_of") - pl.duration(days=c("dpd"))),
                c("as_of"),
            )
        )
        .to_series()
        .to_numpy()
        .astype("datetime64[D]")
    )
    n_loans = book.height
    due_before_cut = np.bincount(loan_index, weights=np.where(due < cut[loan_index], p_due, 0), minlength=n_loans)
    balance = book.get_column("principal_balance_fen")
    principal = book.get_column("principal_fen").to_numpy()
    repaid = np.where(
        balance.is_null().to_numpy(), due_before_cut.astype(np.int64), principal - balance.fill_null(0).to_numpy()
    )
    # Filled oldest first: what is left of the repaid principal after the installments before this one.
    cum_before = np.cumsum(p_due) - p_due
    starts = np.flatnonzero(np.r_[True, loan_index[1:] != loan_index[:-1]])
    before = cum_before - cum_before[starts][loan_index]
    p_paid = np.clip(repaid[loan_index] - before, 0, p_due)
    settled = p_paid == p_due
    inst = pl.DataFrame(
        {
            "loan_id": book.get_column("loan_id").to_numpy()[loan_index],
            "number": (period + 1).astype(np.int32),
            "due_date": due,
            "principal_due_fen": p_due,
            "interest_due_fen": arrays.interest_fen[mask],
            "fee_due_fen": arrays.fee_fen[mask],
            "principal_paid_fen": p_paid,
            "interest_paid_fen": np.where(settled, arrays.interest_fen[mask], 0),
            "fee_paid_fen": np.where(settled, arrays.fee_fen[mask], 0),
        }
    )
    text = pl.String
    ledger_loans = book.select(
        c("loan_id").cast(text).alias("id"),
        c("customer_id").cast(text),
        c("account_id").cast(text),
        c("product_id"),
        c("principal_fen"),
        c("originated_on").alias("start_date"),
        c("term_months").cast(pl.Int32).alias("term"),
        c("dpd").cast(pl.Int32),
        c("annual_rate").round(RATE_DECIMALS).cast(text),
        c("fee_rate").round(RATE_DECIMALS).cast(text),
    )
    installments = inst.with_columns(c("loan_id").cast(text), c("due_date").cast(pl.Date))
    return LedgerOpening(
        loans=ledger_loans,
        installments=installments,
        products=tape_products(book),
        as_of=book.get_column("as_of").max(),  # type: ignore[arg-type]
    )
