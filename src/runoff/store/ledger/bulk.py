"""Bulk load of a whole book into the ledger (存量导入): customers, accounts, loans and installments from Polars.

The book importer and the synthetic book generator call :func:`load_book` to put 100,000 to
1,000,000 loans into the ledger in seconds: every table is written with the database's bulk path
(PostgreSQL ``COPY ... FROM STDIN``, SQLite ``executemany`` of plain tuples), never row by row
through the ORM. Everything derived (schedule version 1, the denormalised delinquency columns,
the journal) is computed column-wise in Polars.

Input frames use the ledger's own column names (integer fen for amounts, ``pl.Date`` for dates)::

    loans         required: id, product_id, principal_fen, start_date, term
                  optional: customer_id, account_id, product_version (default: the version of the
                            product passed in ``products``), status ('open'), closed_on, close_reason,
                            credit_balance_fen (0), dpd, last_closed_on, annual_rate, fee_rate (text)
    installments  required: loan_id, number, due_date, principal_due_fen, interest_due_fen, fee_due_fen
                  optional: accrual_start, principal_paid_fen, interest_paid_fen, fee_paid_fen,
                            principal_waived_fen, interest_waived_fen, fee_waived_fen,
                            penalty_accrued_fen, penalty_paid_fen, penalty_waived_fen, settled_on
    customers     required: id; optional: name, phone, region
    accounts      required: id, customer_id; optional: credit_limit_fen, status, opened_on, closed_on

The journal gets, per loan, the disbursement on its start date (Dr loans_receivable, Cr
cash_clearing) and, where the tape shows history, one *opening* entry on ``as_of`` (the cut-over
date) for what was repaid, waived, charged and held before the ledger's history began:
Dr cash_clearing (all money received), Dr waivers, Dr penalty_receivable (penalty owed);
Cr loans_receivable (principal repaid or waived, less interest capitalised into principal),
Cr interest_income, fee_income, penalty_income, customer_credit. Principal repaid this way is
kept in ``loans.opening_principal_paid_fen`` so ``runoff ledger verify`` reconciles it.

Use it inside one write transaction::

    with ctx.uow() as uow:
        result = load_book(uow.connection, loans=..., installments=..., products=[...], as_of=..., actor="import",
                           now=uow.now())
        uow.commit()
"""

from __future__ import annotations

import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Connection, Table

from runoff.errors import InvalidInput
from runoff.servicing.delinquency import BUCKETS, buckets_of
from runoff.servicing.product import Product
from runoff.store.ledger.models import (
    EntryKind,
    LedgerAccount,
    LoanStatus,
    accounts,
    audit_log,
    customers,
    installments,
    journal_entries,
    journal_lines,
    loans,
    schedule_versions,
)
from runoff.store.ledger.repository import LedgerRepository, rate_ppb
from runoff.store.ledger.sequences import reserve_ids

PPB = 1_000_000_000

LOAN_REQUIRED = ("id", "product_id", "principal_fen", "start_date", "term")
INSTALLMENT_REQUIRED = ("loan_id", "number", "due_date", "principal_due_fen", "interest_due_fen", "fee_due_fen")
INSTALLMENT_AMOUNTS = (
    "principal_paid_fen",
    "interest_paid_fen",
    "fee_paid_fen",
    "principal_waived_fen",
    "interest_waived_fen",
    "fee_waived_fen",
    "penalty_accrued_fen",
    "penalty_paid_fen",
    "penalty_waived_fen",
)


@dataclass(frozen=True, slots=True)
class BulkLoadResult:
    """Rows written per table, and the time it took."""

    customers: int
    accounts: int
    loans: int
    installments: int
    journal_entries: int
    journal_lines: int
    seconds: float


def load_book(
    conn: Connection,
    *,
    loans_df: pl.DataFrame,
    installments_df: pl.DataFrame,
    products: Sequence[Product] = (),
    customers_df: pl.DataFrame | None = None,
    accounts_df: pl.DataFrame | None = None,
    as_of: date,
    actor: str,
    now: datetime,
) -> BulkLoadResult:
    """Load a book (see the module docstring for the frames' columns) in the caller's write transaction."""
    started = time.perf_counter()
    repo = LedgerRepository(conn)
    versions = {p.id: repo.register_product(p, now=now) for p in products}
    loan_frame = _loans_frame(loans_df, versions)
    product_terms = _product_terms(repo, loan_frame)
    inst = _installments_frame(installments_df, loan_frame)
    totals = _totals_per_loan(inst, as_of)
    loan_rows = _loan_rows(loan_frame, totals, product_terms, as_of=as_of, now=now)
    version_rows = _version_rows(loan_rows, product_terms, loan_frame, actor=actor, now=now)
    entries, lines = _journal(conn, loan_rows, totals, as_of=as_of, actor=actor, now=now)

    n_customers = n_accounts = 0
    if customers_df is not None and customers_df.height:
        cust = _require(customers_df, ("id",), "customers").with_columns(pl.lit(now).alias("created_at"))
        n_customers = write_frame(conn, customers, cust)
    if accounts_df is not None and accounts_df.height:
        acc = _require(accounts_df, ("id", "customer_id"), "accounts").with_columns(pl.lit(now).alias("created_at"))
        n_accounts = write_frame(conn, accounts, acc)
    n_loans = write_frame(conn, loans, loan_rows)
    write_frame(conn, schedule_versions, version_rows)
    # Amount columns the tape did not give are left to their server default (0): less to ship and parse.
    given = [c for c in INSTALLMENT_AMOUNTS if c in installments_df.columns]
    optional = [c for c in ("accrual_start", "settled_on") if c in installments_df.columns]
    n_inst = write_frame(
        conn,
        installments,
        inst.drop([c for c in (*INSTALLMENT_AMOUNTS, "accrual_start", "settled_on") if c not in (*given, *optional)]),
    )
    n_entries = write_frame(conn, journal_entries, entries)
    n_lines = write_frame(conn, journal_lines, lines)
    conn.execute(
        audit_log.insert().values(
            at=now,
            actor=actor,
            action="book.loaded",
            object_type="book",
            object_id=as_of.isoformat(),
            details={"loans": n_loans, "installments": n_inst, "customers": n_customers, "accounts": n_accounts},
        )
    )
    return BulkLoadResult(
        customers=n_customers,
        accounts=n_accounts,
        loans=n_loans,
        installments=n_inst,
        journal_entries=n_entries,
        journal_lines=n_lines,
        seconds=time.perf_counter() - started,
    )


# --- frames --------------------------------------------------------------------------------------------------------


def _require(df: pl.DataFrame, required: Sequence[str], name: str) -> pl.DataFrame:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise InvalidInput(
            f"`{name}`: missing columns {', '.join(missing)}; expected at least {', '.join(required)}", field=name
        )
    return df


def _loans_frame(df: pl.DataFrame, versions: Mapping[str, int]) -> pl.DataFrame:
    _require(df, LOAN_REQUIRED, "loans")
    out = df.with_columns(
        pl.col("id").cast(pl.Utf8),
        pl.col("product_id").cast(pl.Utf8),
        pl.col("principal_fen").cast(pl.Int64),
        pl.col("start_date").cast(pl.Date),
        pl.col("term").cast(pl.Int32),
    )
    if "product_version" not in out.columns:
        unknown = sorted(set(out["product_id"].unique().to_list()) - set(versions))
        if unknown:
            raise InvalidInput(
                f"`loans.product_id`: {unknown[:5]} are not among the products given; pass them in `products` "
                "or give a product_version column",
                field="product_id",
            )
        out = out.with_columns(
            pl.col("product_id").replace_strict(dict(versions), return_dtype=pl.Int32).alias("product_version")
        )
    dupes = out.filter(pl.col("id").is_duplicated())["id"].unique().head(5).to_list()
    if dupes:
        raise InvalidInput(f"`loans.id`: duplicated ids {dupes}; expected one row per loan", field="id")
    bad = out.filter(pl.col("principal_fen") <= 0)["id"].head(5).to_list()
    if bad:
        raise InvalidInput(
            f"`loans.principal_fen`: loans {bad} lend nothing; expected more than 0", field="principal_fen"
        )
    return out


def _product_terms(repo: LedgerRepository, loan_frame: pl.DataFrame) -> pl.DataFrame:
    """Per (product_id, product_version): method, penalty cap (ppb) and the rates a version row records."""
    rows = []
    for pid, ver in loan_frame.select("product_id", "product_version").unique().iter_rows():
        product = repo.product(pid, int(ver))
        cap = product.penalty.cap_rate_of_principal
        rows.append(
            {
                "product_id": pid,
                "product_version": int(ver),
                "method": product.method.value,
                "cap_ppb": None if cap is None else rate_ppb(cap, field="penalty.cap_rate_of_principal"),
                "product_annual_rate": None if product.annual_rate is None else str(product.annual_rate),
                "product_fee_rate": None if product.fee_rate is None else str(product.fee_rate),
            }
        )
    return pl.DataFrame(
        rows,
        schema={
            "product_id": pl.Utf8,
            "product_version": pl.Int32,
            "method": pl.Utf8,
            "cap_ppb": pl.Int64,
            "product_annual_rate": pl.Utf8,
            "product_fee_rate": pl.Utf8,
        },
    )


def _installments_frame(df: pl.DataFrame, loan_frame: pl.DataFrame) -> pl.DataFrame:
    _require(df, INSTALLMENT_REQUIRED, "installments")
    cols: list[pl.Expr] = [
        pl.col("loan_id").cast(pl.Utf8),
        pl.lit(1, dtype=pl.Int32).alias("schedule_version"),
        pl.col("number").cast(pl.Int32),
        pl.col("due_date").cast(pl.Date),
        (pl.col("accrual_start").cast(pl.Date) if "accrual_start" in df.columns else pl.lit(None, dtype=pl.Date)).alias(
            "accrual_start"
        ),
        pl.col("principal_due_fen").cast(pl.Int64),
        pl.col("interest_due_fen").cast(pl.Int64),
        pl.col("fee_due_fen").cast(pl.Int64),
    ]
    for name in INSTALLMENT_AMOUNTS:
        cols.append(
            (pl.col(name).cast(pl.Int64).fill_null(0) if name in df.columns else pl.lit(0, dtype=pl.Int64)).alias(name)
        )
    cols.append(
        (pl.col("settled_on").cast(pl.Date) if "settled_on" in df.columns else pl.lit(None, dtype=pl.Date)).alias(
            "settled_on"
        )
    )
    out = df.select(cols)
    orphans = out.join(loan_frame.select(pl.col("id").alias("loan_id")), on="loan_id", how="anti")
    if orphans.height:
        raise InvalidInput(
            f"`installments.loan_id`: {orphans['loan_id'].unique().head(5).to_list()} are not in `loans`",
            field="loan_id",
        )
    without = loan_frame.select(pl.col("id").alias("loan_id")).join(
        out.select("loan_id").unique(), on="loan_id", how="anti"
    )
    if without.height:
        raise InvalidInput(
            f"`installments`: loans {without['loan_id'].head(5).to_list()} have no installments", field="installments"
        )
    return out


def _totals_per_loan(inst: pl.DataFrame, as_of: date) -> pl.DataFrame:
    scheduled_left = (
        pl.col("principal_due_fen")
        + pl.col("interest_due_fen")
        + pl.col("fee_due_fen")
        - pl.col("principal_paid_fen")
        - pl.col("interest_paid_fen")
        - pl.col("fee_paid_fen")
        - pl.col("principal_waived_fen")
        - pl.col("interest_waived_fen")
        - pl.col("fee_waived_fen")
    )
    principal_left = pl.col("principal_due_fen") - pl.col("principal_paid_fen") - pl.col("principal_waived_fen")
    overdue = pl.col("due_date") < as_of
    return inst.group_by("loan_id").agg(
        pl.col("principal_due_fen").sum().alias("scheduled_principal"),
        pl.col("principal_paid_fen").sum().alias("principal_paid"),
        pl.col("principal_waived_fen").sum().alias("principal_waived"),
        pl.col("interest_paid_fen").sum().alias("interest_paid"),
        pl.col("fee_paid_fen").sum().alias("fee_paid"),
        pl.col("penalty_accrued_fen").sum().alias("penalty_accrued"),
        pl.col("penalty_paid_fen").sum().alias("penalty_paid"),
        pl.col("penalty_waived_fen").sum().alias("penalty_waived"),
        principal_left.sum().alias("outstanding_principal"),
        pl.col("due_date").filter(scheduled_left > 0).min().alias("oldest_unpaid"),
        principal_left.filter(overdue).sum().alias("overdue_principal"),
        scheduled_left.filter(overdue).sum().alias("overdue_amount"),
    )


def _loan_rows(
    loan_frame: pl.DataFrame, totals: pl.DataFrame, terms: pl.DataFrame, *, as_of: date, now: datetime
) -> pl.DataFrame:
    df = loan_frame.join(totals, left_on="id", right_on="loan_id", how="left").join(
        terms, on=["product_id", "product_version"], how="left"
    )
    capitalized = df.filter(pl.col("scheduled_principal") < pl.col("principal_fen"))
    if capitalized.height:
        raise InvalidInput(
            f"`installments.principal_due_fen`: loans {capitalized['id'].head(5).to_list()} schedule less principal "
            "than they lend; expected the installments to repay the principal",
            field="principal_due_fen",
        )
    oldest = pl.col("oldest_unpaid")
    computed = pl.when(oldest.is_null() | (oldest >= as_of)).then(0).otherwise((pl.lit(as_of) - oldest).dt.total_days())
    given = pl.col("dpd").fill_null(computed) if "dpd" in df.columns else computed
    dpd = df.select(given.cast(pl.Int32).alias("dpd"))["dpd"]
    bucket_codes = buckets_of(dpd.to_numpy())
    bucket = pl.Series([b.value for b in BUCKETS])[bucket_codes.astype(np.int64)]

    def opt(name: str, dtype: Any, default: Any = None) -> pl.Expr:
        return (pl.col(name).cast(dtype) if name in df.columns else pl.lit(default, dtype=dtype)).alias(name)

    cap = (
        pl.when(pl.col("cap_ppb").is_null())
        .then(None)
        .otherwise((pl.col("principal_fen") * pl.col("cap_ppb") + PPB // 2) // PPB)
    )
    return df.select(
        pl.col("id"),
        opt("customer_id", pl.Utf8),
        opt("account_id", pl.Utf8),
        pl.col("product_id"),
        pl.col("product_version").cast(pl.Int32),
        pl.col("principal_fen"),
        pl.col("start_date"),
        pl.col("term"),
        pl.lit(1, dtype=pl.Int32).alias("schedule_version"),
        opt("status", pl.Utf8, LoanStatus.OPEN.value).fill_null(LoanStatus.OPEN.value),
        opt("closed_on", pl.Date),
        opt("close_reason", pl.Utf8),
        opt("credit_balance_fen", pl.Int64, 0).fill_null(0),
        pl.col("outstanding_principal").alias("outstanding_principal_fen"),
        pl.col("principal_paid").alias("opening_principal_paid_fen"),
        pl.col("oldest_unpaid").alias("oldest_unpaid_due_date"),
        dpd.alias("dpd"),
        bucket.alias("bucket"),
        pl.col("overdue_principal").alias("overdue_principal_fen"),
        pl.col("overdue_amount").alias("overdue_amount_fen"),
        pl.col("penalty_accrued").alias("penalty_charged_fen"),
        cap.cast(pl.Int64).alias("penalty_cap_fen"),
        opt("last_closed_on", pl.Date),
        pl.lit(as_of, dtype=pl.Date).alias("penalty_accrued_until"),
        pl.lit(None, dtype=pl.Date).alias("last_value_date"),
        pl.lit(None, dtype=pl.Date).alias("repost_from"),
        pl.lit(now).alias("created_at"),
        pl.lit(now).alias("updated_at"),
        # carried for the journal and version rows, dropped before writing
        pl.col("scheduled_principal"),
        pl.col("principal_waived"),
        pl.col("interest_paid"),
        pl.col("fee_paid"),
        pl.col("penalty_paid"),
        pl.col("penalty_waived"),
    )


def _version_rows(
    loan_rows: pl.DataFrame, terms: pl.DataFrame, loan_frame: pl.DataFrame, *, actor: str, now: datetime
) -> pl.DataFrame:
    df = loan_rows.select("id", "product_id", "product_version", "principal_fen", "start_date", "term").join(
        terms, on=["product_id", "product_version"], how="left"
    )
    rates = [c for c in ("annual_rate", "fee_rate") if c in loan_frame.columns]
    if rates:
        df = df.join(loan_frame.select("id", *[pl.col(c).cast(pl.Utf8) for c in rates]), on="id", how="left")
    return df.select(
        pl.col("id").alias("loan_id"),
        pl.lit(1, dtype=pl.Int32).alias("version"),
        pl.lit("import").alias("reason"),
        pl.lit(now).alias("created_at"),
        pl.lit(actor).alias("created_by"),
        pl.col("principal_fen"),
        pl.col("start_date"),
        pl.col("term"),
        pl.col("method"),
        (pl.col("annual_rate") if "annual_rate" in rates else pl.col("product_annual_rate")).alias("annual_rate"),
        (pl.col("fee_rate") if "fee_rate" in rates else pl.col("product_fee_rate")).alias("fee_rate"),
    )


def _journal(
    conn: Connection, loan_rows: pl.DataFrame, totals: pl.DataFrame, *, as_of: date, actor: str, now: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Disbursement entries (one per loan) and opening entries (loans with history), as entry and line frames."""
    df = loan_rows.with_columns(
        (pl.col("scheduled_principal") - pl.col("principal_fen")).alias("capitalized"),
        (pl.col("penalty_charged_fen") - pl.col("penalty_paid") - pl.col("penalty_waived")).alias("penalty_owed"),
    )
    opening = df.with_columns(
        # Signed amounts: debit > 0, credit < 0, per account.
        (
            pl.col("opening_principal_paid_fen")
            + pl.col("interest_paid")
            + pl.col("fee_paid")
            + pl.col("penalty_paid")
            + pl.col("credit_balance_fen")
        ).alias(LedgerAccount.CASH_CLEARING.value),
        (pl.col("principal_waived") + pl.col("penalty_waived")).alias(LedgerAccount.WAIVERS.value),
        pl.col("penalty_owed").alias(LedgerAccount.PENALTY_RECEIVABLE.value),
        (-(pl.col("opening_principal_paid_fen") + pl.col("principal_waived") - pl.col("capitalized"))).alias(
            LedgerAccount.LOANS_RECEIVABLE.value
        ),
        (-(pl.col("interest_paid") + pl.col("capitalized"))).alias(LedgerAccount.INTEREST_INCOME.value),
        (-pl.col("fee_paid")).alias(LedgerAccount.FEE_INCOME.value),
        (-pl.col("penalty_charged_fen")).alias(LedgerAccount.PENALTY_INCOME.value),
        (-pl.col("credit_balance_fen")).alias(LedgerAccount.CUSTOMER_CREDIT.value),
    )
    accounts_used = [
        LedgerAccount.CASH_CLEARING.value,
        LedgerAccount.WAIVERS.value,
        LedgerAccount.PENALTY_RECEIVABLE.value,
        LedgerAccount.LOANS_RECEIVABLE.value,
        LedgerAccount.INTEREST_INCOME.value,
        LedgerAccount.FEE_INCOME.value,
        LedgerAccount.PENALTY_INCOME.value,
        LedgerAccount.CUSTOMER_CREDIT.value,
    ]
    opening_lines = (
        opening.select(pl.col("id").alias("loan_id"), *accounts_used)
        .unpivot(index="loan_id", variable_name="account", value_name="signed")
        .filter(pl.col("signed") != 0)
    )
    opening_loans = opening_lines.select("loan_id").unique(maintain_order=True)
    n_disb = df.height
    ids = reserve_ids(conn, journal_entries, n_disb + opening_loans.height)
    disb_ids = pl.Series("entry_id", ids[:n_disb], dtype=pl.Int64)
    open_ids = pl.Series("entry_id", ids[n_disb:], dtype=pl.Int64)

    disb_entries = df.select(
        disb_ids,
        pl.col("id").alias("loan_id"),
        pl.col("start_date").alias("value_date"),
        pl.lit(EntryKind.DISBURSEMENT.value).alias("kind"),
    )
    open_entries = opening_loans.with_columns(open_ids).select(
        "entry_id",
        "loan_id",
        pl.lit(as_of, dtype=pl.Date).alias("value_date"),
        pl.lit(EntryKind.OPENING.value).alias("kind"),
    )
    entries = pl.concat([disb_entries, open_entries]).with_columns(
        pl.lit(now).alias("posted_at"),
        pl.lit(1, dtype=pl.Int32).alias("schedule_version"),
        pl.lit(actor).alias("actor"),
    )
    disb_lines = pl.concat(
        [
            disb_entries.join(df.select(pl.col("id").alias("loan_id"), "principal_fen"), on="loan_id").select(
                "entry_id",
                "loan_id",
                pl.lit(account).alias("account"),
                "value_date",
                (pl.col("principal_fen") if side == "debit" else pl.lit(0, dtype=pl.Int64)).alias("debit_fen"),
                (pl.col("principal_fen") if side == "credit" else pl.lit(0, dtype=pl.Int64)).alias("credit_fen"),
            )
            for account, side in (
                (LedgerAccount.LOANS_RECEIVABLE.value, "debit"),
                (LedgerAccount.CASH_CLEARING.value, "credit"),
            )
        ]
    )
    open_lines = opening_lines.join(open_entries.select("entry_id", "loan_id"), on="loan_id").select(
        "entry_id",
        "loan_id",
        "account",
        pl.lit(as_of, dtype=pl.Date).alias("value_date"),
        pl.col("signed").clip(lower_bound=0).alias("debit_fen"),
        (-pl.col("signed")).clip(lower_bound=0).alias("credit_fen"),
    )
    lines = pl.concat([disb_lines, open_lines])
    check = lines.group_by("entry_id").agg(pl.col("debit_fen").sum(), pl.col("credit_fen").sum())
    unbalanced = check.filter(pl.col("debit_fen") != pl.col("credit_fen"))
    if unbalanced.height:  # pragma: no cover - the columns above balance by construction
        raise InvalidInput(f"bulk journal does not balance for {unbalanced.height} entries")
    return entries.rename({"entry_id": "id"}), lines


# --- writing -------------------------------------------------------------------------------------------------------


def write_frame(conn: Connection, table: Table, df: pl.DataFrame) -> int:
    """Write ``df`` (columns named as ``table``'s; extra columns are dropped) with the database's bulk path."""
    columns = [c.name for c in table.columns if c.name in df.columns]
    frame = df.select(columns)
    if frame.height == 0:
        return 0
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, table, frame)
    else:
        _executemany_sqlite(conn, table, frame)
    return frame.height


def _copy_postgres(conn: Connection, table: Table, frame: pl.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.write_csv(buffer, include_header=False, null_value="", datetime_format="%Y-%m-%dT%H:%M:%S%.6f%z")
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    raw: Any = conn.connection.dbapi_connection  # psycopg.Connection
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN WITH (FORMAT csv)') as copy:
        view = buffer.getbuffer()
        step = 1 << 20
        for start in range(0, len(view), step):
            copy.write(view[start : start + step])


def _executemany_sqlite(conn: Connection, table: Table, frame: pl.DataFrame) -> None:
    # SQLAlchemy stores SQLite dates and datetimes as ISO text; write them the same way.
    casts = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Date:
            casts.append(pl.col(name).dt.strftime("%Y-%m-%d"))
        elif isinstance(dtype, pl.Datetime):
            casts.append(pl.col(name).dt.replace_time_zone(None).dt.strftime("%Y-%m-%d %H:%M:%S.%6f"))
        elif dtype == pl.Boolean:
            casts.append(pl.col(name).cast(pl.Int8))
    if casts:
        frame = frame.with_columns(casts)
    cols = ", ".join(f'"{c}"' for c in frame.columns)
    marks = ", ".join("?" for _ in frame.columns)
    sql = f'INSERT INTO "{table.name}" ({cols}) VALUES ({marks})'
    raw: Any = conn.connection.dbapi_connection  # sqlite3.Connection
    cursor = raw.cursor()
    try:
        step = 200_000
        for start in range(0, frame.height, step):
            cursor.executemany(sql, frame.slice(start, step).rows())
    finally:
        cursor.close()
