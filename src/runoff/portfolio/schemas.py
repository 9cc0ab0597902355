"""The book's tables (账簿数据表): the one schema definition per table.

The generator writes these tables, the tape importer loads into them and the analytics read them.
Amounts are integer fen (``Int64``, columns named ``*_fen``), dates are ``Date`` and enumerations are
strings from the vocabularies below. ``docs/book.md`` is generated from this module
(:func:`schemas_markdown`) and a test keeps the two equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from runoff.errors import InvalidInput

# --- vocabularies -------------------------------------------------------------------------------

CITY_TIERS: tuple[str, ...] = ("tier-1", "new-tier-1", "tier-2", "tier-3", "tier-4+")
"""China's city tiers (一线, 新一线, 二线, 三线, 四线及以下)."""

INCOME_BANDS: tuple[str, ...] = ("<3k", "3k-5k", "5k-8k", "8k-15k", "15k+")
"""Monthly income bands in yuan (月收入)."""

CHANNELS: tuple[str, ...] = ("checkout", "app", "referral", "partner", "offline")
"""Acquisition channel (获客渠道): the platform's checkout, its app, referral, partner merchants, offline stores."""

RISK_GRADES: tuple[str, ...] = ("A", "B", "C", "D", "E")
"""Latent risk grade (风险等级), A best. A generator truth: real tapes do not carry it."""

ACCOUNT_STATUSES: tuple[str, ...] = ("open", "frozen", "closed")

METHODS: tuple[str, ...] = ("equal-installment", "equal-principal", "flat-fee", "interest-only")
"""Schedule methods, as :class:`runoff.servicing.product.Method` values."""

BUCKETS: tuple[str, ...] = ("current", "M1", "M2", "M3", "M4+", "charged-off", "closed")
"""Delinquency bucket (账龄段) at a month end: current, M1 1–30, M2 31–60, M3 61–90, M4+ 90+ DPD;
``charged-off`` in the month of write-off (核销) and ``closed`` in the month a loan is repaid."""

LOAN_STATUSES: tuple[str, ...] = ("active", "paid-off", "early-settled", "charged-off")
"""A loan's status: active, repaid on schedule (结清), settled early (提前结清), written off (核销)."""

PAYMENT_KINDS: tuple[str, ...] = ("scheduled", "late", "partial", "prepayment", "settlement")
"""scheduled: an installment paid by its due date; late: paid after the due date (incl. cures);
partial: less than one installment; prepayment: principal of the last installments paid early
(提前还款); settlement: all remaining principal (提前结清)."""


@dataclass(frozen=True, slots=True)
class Column:
    """One column: name, Polars type, meaning, whether nulls are allowed and its vocabulary."""

    name: str
    dtype: pl.DataType
    description: str
    nullable: bool = False
    vocabulary: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class TableSchema:
    """One table of the book: its columns in order, its key and what a row is."""

    name: str
    row: str
    key: tuple[str, ...]
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def polars_schema(self) -> pl.Schema:
        return pl.Schema([(c.name, c.dtype) for c in self.columns])

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.polars_schema())

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise InvalidInput(f"`{name}` is not a column of {self.name}; expected one of {', '.join(self.names)}")

    def conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """``frame`` with exactly this table's columns, in order and cast to their types (strictly)."""
        missing = [n for n in self.names if n not in frame.columns]
        if missing:
            raise InvalidInput(f"table {self.name}: columns {missing} are missing; expected {list(self.names)}")
        return frame.select([pl.col(c.name).cast(c.dtype, strict=True) for c in self.columns])

    def violations(self, frame: pl.DataFrame) -> list[str]:
        """Every way ``frame`` breaks this schema (names, order, types, nulls, vocabularies); empty if none."""
        problems: list[str] = []
        if tuple(frame.columns) != self.names:
            problems.append(f"columns {list(frame.columns)} != {list(self.names)}")
        for c in self.columns:
            if c.name not in frame.columns:
                continue
            series = frame.get_column(c.name)
            if series.dtype != c.dtype:
                problems.append(f"`{c.name}` is {series.dtype}, expected {c.dtype}")
            if not c.nullable and series.null_count():
                problems.append(f"`{c.name}` has {series.null_count()} nulls")
            if c.vocabulary is not None:
                bad = series.drop_nulls().unique().filter(~series.drop_nulls().unique().is_in(list(c.vocabulary)))
                if bad.len():
                    problems.append(f"`{c.name}` has values {bad.to_list()[:5]} outside {list(c.vocabulary)}")
        if self.key and all(k in frame.columns for k in self.key) and frame.select(self.key).is_duplicated().any():
            problems.append(f"key {list(self.key)} is not unique")
        return problems


def _fen(name: str, description: str, *, nullable: bool = False) -> Column:
    return Column(name, pl.Int64(), f"{description} (fen)", nullable=nullable)


CUSTOMERS = TableSchema(
    name="customers",
    row="one customer (客户)",
    key=("customer_id",),
    columns=(
        Column("customer_id", pl.Int64(), "customer number, 1-based"),
        Column("age", pl.Int16(), "age in years on the book's first day"),
        Column("city_tier", pl.String(), "city tier of residence", vocabulary=CITY_TIERS),
        Column("income_band", pl.String(), "monthly income band (yuan)", vocabulary=INCOME_BANDS),
        _fen("monthly_income_fen", "declared monthly income"),
        Column("channel", pl.String(), "acquisition channel", vocabulary=CHANNELS),
        Column("onboarded_on", pl.Date(), "date the customer joined the platform"),
        Column("tenure_months", pl.Int16(), "months on the platform on the book's first day"),
        Column(
            "risk_grade",
            pl.String(),
            "latent risk grade (generator truth; null on imported tapes)",
            nullable=True,
            vocabulary=RISK_GRADES,
        ),
    ),
)

ACCOUNTS = TableSchema(
    name="accounts",
    row="one credit line (额度账户); one per customer in a generated book",
    key=("account_id",),
    columns=(
        Column("account_id", pl.Int64(), "account number (equal to the customer number in a generated book)"),
        Column("customer_id", pl.Int64(), "owner"),
        Column("opened_on", pl.Date(), "date the line was opened"),
        _fen("credit_limit_fen", "credit limit"),
        Column("status", pl.String(), "line status at the book's last month end", vocabulary=ACCOUNT_STATUSES),
    ),
)

LOANS = TableSchema(
    name="loans",
    row="one installment loan (分期订单)",
    key=("loan_id",),
    columns=(
        Column("loan_id", pl.Int64(), "loan number (customer_id × 1000 + the customer's loan sequence)"),
        Column("account_id", pl.Int64(), "credit line drawn"),
        Column("customer_id", pl.Int64(), "borrower"),
        Column("product_id", pl.String(), "product the loan is written on"),
        Column("method", pl.String(), "schedule method", vocabulary=METHODS),
        Column("term_months", pl.Int16(), "number of monthly installments"),
        Column(
            "annual_rate", pl.Float64(), "contract annual interest rate, a fraction (null for flat fee)", nullable=True
        ),
        Column(
            "fee_rate",
            pl.Float64(),
            "flat fee per month on the original principal, a fraction (null otherwise)",
            nullable=True,
        ),
        _fen("principal_fen", "amount lent"),
        Column("originated_on", pl.Date(), "drawing date (放款日期)"),
        Column("first_due_on", pl.Date(), "due date of installment 1"),
        Column("maturity_on", pl.Date(), "due date of the last scheduled installment"),
        Column("vintage", pl.String(), "origination month YYYY-MM (账龄组)"),
        Column("status", pl.String(), "status at the book's last month end", vocabulary=LOAN_STATUSES),
        Column("closed_on", pl.Date(), "date the loan was repaid, settled or written off", nullable=True),
    ),
)

INSTALLMENTS = TableSchema(
    name="installments",
    row="one scheduled installment (还款计划) of a loan, as written at origination",
    key=("loan_id", "number"),
    columns=(
        Column("loan_id", pl.Int64(), "loan"),
        Column("number", pl.Int16(), "installment number, 1-based (期数)"),
        Column("due_on", pl.Date(), "due date"),
        _fen("principal_fen", "principal due"),
        _fen("interest_fen", "interest due"),
        _fen("fee_fen", "fee due"),
        _fen("balance_after_fen", "principal outstanding after this installment"),
    ),
)

PAYMENTS = TableSchema(
    name="payments",
    row="one payment received (还款流水), with its split by component",
    key=("payment_id",),
    columns=(
        Column("payment_id", pl.Int64(), "payment number (loan_id × 100 + the loan's payment sequence)"),
        Column("loan_id", pl.Int64(), "loan paid"),
        Column("customer_id", pl.Int64(), "payer"),
        Column("paid_on", pl.Date(), "value date"),
        Column("kind", pl.String(), "what the payment was", vocabulary=PAYMENT_KINDS),
        _fen("amount_fen", "amount received; equals the sum of the four components"),
        _fen("principal_fen", "to principal"),
        _fen("interest_fen", "to interest"),
        _fen("fee_fen", "to fees"),
        _fen("penalty_fen", "to penalty interest (罚息)"),
    ),
)

PERFORMANCE = TableSchema(
    name="performance",
    row="one loan at one month end (月末快照), from its origination month to the month it closes",
    key=("loan_id", "month_end"),
    columns=(
        Column("loan_id", pl.Int64(), "loan"),
        Column("customer_id", pl.Int64(), "borrower"),
        Column("month_end", pl.Date(), "last day of the month"),
        Column("mob", pl.Int16(), "months on book (账龄), 0 in the origination month"),
        Column("status", pl.String(), "loan status at this month end", vocabulary=LOAN_STATUSES),
        Column("bucket", pl.String(), "delinquency bucket at this month end", vocabulary=BUCKETS),
        Column("dpd", pl.Int32(), "days past the oldest unpaid due date (逾期天数), 0 when nothing is overdue"),
        _fen("principal_balance_fen", "principal outstanding, overdue included (0 once closed)"),
        _fen("overdue_principal_fen", "principal past due"),
        _fen("overdue_amount_fen", "principal, interest, fee and penalty past due"),
        _fen("due_fen", "amount that fell due in the month (scheduled installment)"),
        _fen("paid_principal_fen", "principal received in the month"),
        _fen("paid_interest_fen", "interest received in the month"),
        _fen("paid_fee_fen", "fees received in the month"),
        _fen("paid_penalty_fen", "penalty interest received in the month"),
        _fen("penalty_charged_fen", "penalty interest charged in the month"),
        _fen("charged_off_fen", "principal written off in the month (核销)"),
        Column("installments_remaining", pl.Int16(), "installments not yet fully paid, overdue included"),
    ),
)

TABLES: Mapping[str, TableSchema] = {
    t.name: t for t in (CUSTOMERS, ACCOUNTS, LOANS, INSTALLMENTS, PAYMENTS, PERFORMANCE)
}
"""Every table of the book, by name, in the order they are documented."""


def table_schema(name: str) -> TableSchema:
    """The schema of table ``name``; a clear error naming the tables that exist otherwise."""
    if name not in TABLES:
        raise InvalidInput(
            f"`table`: {name!r} is not a table of the book; expected one of {', '.join(TABLES)}", field="table"
        )
    return TABLES[name]


def schemas_markdown() -> str:
    """The tables as Markdown, the source of the schema section of ``docs/book.md``."""
    lines: list[str] = []
    for table in TABLES.values():
        lines += [f"### `{table.name}`", "", f"One row: {table.row}. Key: `{', '.join(table.key)}`.", ""]
        lines += ["| column | type | null | meaning |", "|---|---|---|---|"]
        for c in table.columns:
            meaning = c.description
            if c.vocabulary:
                meaning += ": " + ", ".join(f"`{v}`" for v in c.vocabulary)
            lines.append(f"| `{c.name}` | {c.dtype} | {'yes' if c.nullable else 'no'} | {meaning} |")
        lines.append("")
    return "\n".join(lines)
