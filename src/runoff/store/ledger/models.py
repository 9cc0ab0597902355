"""The ledger's tables (SQLAlchemy Core): every amount an integer number of fen in a ``BigInteger``.

Designed for set-based work: the daily close (日终批处理) reads and updates the denormalised
delinquency columns of ``loans`` with a few SQL statements, never a query per loan; a backdated
payment's repost touches one loan's rows only. Every schedule version keeps its installments
(archived versions stay), and every journal line carries its loan and value date, so any balance
can be read as of a past date.

The migrations in ``runoff/store/migrations`` create these tables; a test checks they agree.

Foreign keys guard the tables written a row at a time by transactions (payments, allocations).
The high-volume tables a bulk load or the daily close writes by the million (customers, accounts,
loans, schedule versions, installments, journal entries and lines) carry none: a foreign-key check costs PostgreSQL about 10 µs a row, a million-loan load
would spend minutes on them. Their integrity is checked set-based instead, by the bulk loader
before it writes and by ``runoff ledger verify`` (orphan checks) after.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeEngine

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


def Key(length: int) -> TypeEngine[str]:
    """An identifier column: byte-order comparison on PostgreSQL (COLLATE "C"), several times faster to index
    than a locale collation and the right order for opaque ids."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


Fen = BigInteger


def _fen(name: str, *, nullable: bool = False, default: int | None = 0) -> Column[int]:
    """An amount in integer fen (分), zero by default."""
    server_default = text(str(default)) if default is not None else None
    return Column(name, Fen, nullable=nullable, server_default=server_default)


def _at(name: str, *, nullable: bool = False) -> Column[Any]:
    return Column(name, DateTime(timezone=True), nullable=nullable)


class LoanStatus(StrEnum):
    """Lifecycle of a loan in the ledger."""

    OPEN = "open"
    CLOSED = "closed"  # paid off (or residual swept)
    CHARGED_OFF = "charged-off"  # 核销


class PaymentStatus(StrEnum):
    POSTED = "posted"
    REVERSED = "reversed"


class PaymentKind(StrEnum):
    """What money a ``payments`` row records."""

    PAYMENT = "payment"  # 还款: on an open loan, allocated and booked to the receivables
    RECOVERY = "recovery"  # 核销后回收: on a charged-off loan, booked to recoveries (migration 0004)


class AllocationSource(StrEnum):
    """What funded an allocation."""

    PAYMENT = "payment"
    CREDIT = "credit"  # the loan's credit balance (溢缴款), spent when installments fall due


class AllocationComponent(StrEnum):
    """Where a cent of a payment went: an installment's component, or the customer's credit balance."""

    PENALTY = "penalty"
    FEE = "fee"
    INTEREST = "interest"
    PRINCIPAL = "principal"
    CREDIT = "credit"  # overpayment held as credit (no installment)


class LedgerAccount(StrEnum):
    """The small chart of accounts (科目表) every journal line posts to."""

    LOANS_RECEIVABLE = "loans_receivable"  # asset: principal owed by customers (应收贷款本金)
    INTEREST_INCOME = "interest_income"  # income, recognised when paid (利息收入)
    FEE_INCOME = "fee_income"  # income, recognised when paid (手续费收入)
    PENALTY_RECEIVABLE = "penalty_receivable"  # asset: penalty charged by the daily close, not yet paid (应收罚息)
    PENALTY_INCOME = "penalty_income"  # income, recognised when charged (罚息收入)
    CASH_CLEARING = "cash_clearing"  # asset: money received / paid out, before settlement with the bank (清算)
    CUSTOMER_CREDIT = "customer_credit"  # liability: overpayments held for the customer (客户溢缴款)
    WAIVERS = "waivers"  # expense: amounts forgiven (residual sweep, restructuring haircut) (减免)
    WRITE_OFFS = "write_offs"  # expense: balances charged off (核销)
    RECOVERIES = "recoveries"  # income: money received on charged-off loans (核销后回收)


ACCOUNT_KINDS: dict[LedgerAccount, str] = {
    LedgerAccount.LOANS_RECEIVABLE: "asset",
    LedgerAccount.INTEREST_INCOME: "income",
    LedgerAccount.FEE_INCOME: "income",
    LedgerAccount.PENALTY_RECEIVABLE: "asset",
    LedgerAccount.PENALTY_INCOME: "income",
    LedgerAccount.CASH_CLEARING: "asset",
    LedgerAccount.CUSTOMER_CREDIT: "liability",
    LedgerAccount.WAIVERS: "expense",
    LedgerAccount.WRITE_OFFS: "expense",
    LedgerAccount.RECOVERIES: "income",
}


class EntryKind(StrEnum):
    """Why a journal entry was posted."""

    DISBURSEMENT = "disbursement"  # 放款: Dr loans_receivable, Cr cash_clearing
    OPENING = "opening"  # amounts repaid before the ledger's history (imported books)
    PAYMENT = "payment"  # 还款
    CREDIT_APPLIED = "credit_applied"  # credit balance spent on installments: Dr customer_credit
    CAPITALIZATION = "capitalization"  # interest added to principal in a capitalising grace period
    PENALTY_ACCRUAL = "penalty_accrual"  # daily close: Dr penalty_receivable, Cr penalty_income
    WAIVER = "waiver"  # residual sweep, penalty waiver
    RESCHEDULE = "reschedule"  # haircut or capitalisation when a new schedule version goes live
    WRITE_OFF = "write_off"
    RECOVERY = "recovery"
    REVERSAL = "reversal"  # mirror of an earlier entry (``reverses_entry_id``)


chart_of_accounts = Table(
    "chart_of_accounts",
    metadata,
    Column("code", Key(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    CheckConstraint("kind IN ('asset', 'liability', 'income', 'expense')", name="kind"),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Key(64), primary_key=True),
    Column("name", String(200)),
    Column("phone", String(32)),
    Column("region", String(32)),
    _at("created_at", nullable=True),
)

accounts = Table(
    "accounts",
    metadata,
    Column("id", Key(64), primary_key=True),
    Column("customer_id", Key(64), nullable=False),
    _fen("credit_limit_fen", nullable=True, default=None),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("opened_on", Date),
    Column("closed_on", Date),
    _at("created_at", nullable=True),
    Index("ix_accounts_customer_id", "customer_id"),
)

products = Table(
    "products",
    metadata,
    Column("id", Key(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("digest", String(64), nullable=False),  # sha256 of the canonical JSON body
    Column("body", JsonDoc, nullable=False),  # the validated Product as JSON (model_dump(mode="json"))
    Column("method", String(32), nullable=False),
    # Penalty rule as exact integers so the daily close can accrue in SQL without floats.
    Column("penalty_base", String(32), nullable=False),
    Column("penalty_daily_rate_ppb", BigInteger, nullable=False),  # daily rate × 10⁹
    Column("penalty_grace_days", Integer, nullable=False),
    Column("penalty_cap_ppb", BigInteger),  # cap as a fraction of principal × 10⁹; NULL: no cap
    _fen("residual_tolerance_fen"),
    Column("rounding_mode", String(16), nullable=False),
    _at("created_at"),
    UniqueConstraint("id", "digest", name="uq_products_id_digest"),
)

loans = Table(
    "loans",
    metadata,
    Column("id", Key(64), primary_key=True),
    Column("customer_id", Key(64)),
    Column("account_id", Key(64)),
    Column("product_id", Key(64), nullable=False),
    Column("product_version", Integer, nullable=False),
    _fen("principal_fen", default=None),  # amount lent
    Column("start_date", Date, nullable=False),
    Column("term", Integer, nullable=False),
    Column("schedule_version", Integer, nullable=False, server_default=text("1")),  # the live version
    Column("status", String(16), nullable=False, server_default=LoanStatus.OPEN.value),
    Column("closed_on", Date),
    Column("close_reason", String(32)),
    _fen("credit_balance_fen"),
    # Denormalised position, kept current by every posting and by the daily close.
    _fen("outstanding_principal_fen"),  # Σ live principal due − paid − waived
    _fen("opening_principal_paid_fen"),  # principal repaid before the ledger's history (bulk-loaded books)
    Column("oldest_unpaid_due_date", Date),  # due date of the oldest live installment not fully paid
    Column("dpd", Integer, nullable=False, server_default=text("0")),  # days past due as of last_closed_on
    Column("bucket", String(8), nullable=False, server_default="current"),
    _fen("overdue_principal_fen"),
    _fen("overdue_amount_fen"),  # principal + interest + fee overdue (base of overdue-amount penalties)
    _fen("penalty_charged_fen"),  # lifetime penalty charged, checked against the cap
    _fen("penalty_cap_fen", nullable=True, default=None),  # product cap × principal; NULL: no cap
    Column("last_closed_on", Date),  # as_of of the last daily close that processed this loan
    # Penalties of the live installments are accrued for every day before this date (exclusive);
    # moved forward by the daily close and by payment posting.
    Column("penalty_accrued_until", Date),
    Column("last_value_date", Date),  # latest value date of a posted payment
    # Earliest value date of a backdated payment (before penalty_accrued_until) not yet reposted.
    Column("repost_from", Date),
    _at("created_at"),
    _at("updated_at"),
    CheckConstraint("status IN ('open', 'closed', 'charged-off')", name="status"),
    CheckConstraint("principal_fen > 0", name="principal_positive"),
    Index("ix_loans_status_oldest_unpaid", "status", "oldest_unpaid_due_date"),
    Index("ix_loans_repost_from", "repost_from"),
    Index("ix_loans_customer_id", "customer_id"),
    Index("ix_loans_account_id", "account_id"),
)

schedule_versions = Table(
    "schedule_versions",
    metadata,
    Column("loan_id", Key(64), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("reason", String(64), nullable=False),  # origination, extension, restructure, ...
    _at("created_at"),
    Column("created_by", String(128), nullable=False),
    _at("archived_at", nullable=True),  # set when a later version went live
    _at("reversed_at", nullable=True),  # set when this version was reversed (its parent is live again)
    Column("idempotency_key", Key(128), unique=True),
    Column("parent_version", Integer),
    _fen("principal_fen", default=None),  # principal this version amortises
    Column("start_date", Date, nullable=False),
    Column("term", Integer, nullable=False),
    Column("method", String(32), nullable=False),
    Column("annual_rate", String(24)),  # Decimal as text; NULL for flat-fee
    Column("fee_rate", String(24)),
)

installments = Table(
    "installments",
    metadata,
    Column("loan_id", Key(64), primary_key=True),
    Column("schedule_version", Integer, primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("due_date", Date, nullable=False),
    Column("accrual_start", Date),
    _fen("principal_due_fen"),
    _fen("interest_due_fen"),
    _fen("fee_due_fen"),
    _fen("principal_paid_fen"),
    _fen("interest_paid_fen"),
    _fen("fee_paid_fen"),
    _fen("principal_waived_fen"),
    _fen("interest_waived_fen"),
    _fen("fee_waived_fen"),
    _fen("penalty_accrued_fen"),
    _fen("penalty_paid_fen"),
    _fen("penalty_waived_fen"),
    Column("settled_on", Date),  # value date on which nothing was left unpaid
    CheckConstraint(
        "principal_due_fen >= 0 AND interest_due_fen >= 0 AND fee_due_fen >= 0"
        " AND principal_paid_fen >= 0 AND interest_paid_fen >= 0 AND fee_paid_fen >= 0"
        " AND penalty_accrued_fen >= 0 AND penalty_paid_fen >= 0 AND penalty_waived_fen >= 0",
        name="non_negative",
    ),
    Index("ix_installments_due_date", "due_date"),
)

payments = Table(
    "payments",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("loan_id", Key(64), ForeignKey("loans.id"), nullable=False),
    _fen("amount_fen", default=None),
    Column("value_date", Date, nullable=False),
    _at("received_at"),
    Column("idempotency_key", Key(128), nullable=False, unique=True),
    Column("status", String(16), nullable=False, server_default=PaymentStatus.POSTED.value),
    Column("actor", String(128), nullable=False),
    Column("schedule_version", Integer, nullable=False),  # live version it was allocated under
    _fen("credited_fen"),  # part held as customer credit
    _fen("prepaid_principal_fen"),  # part prepaying principal not yet due
    _fen("waived_fen"),  # residual swept when this payment closed the loan
    _fen("penalty_charged_fen"),  # penalty accrued to the value date when it was posted
    _at("reversed_at", nullable=True),
    Column("reversal_reason", String(200)),
    Column("kind", String(16), nullable=False, server_default=PaymentKind.PAYMENT.value),
    Column("reversal_key", Key(128)),  # idempotency key of the reversal (冲正) that reversed it
    CheckConstraint("amount_fen > 0", name="amount_positive"),
    CheckConstraint("status IN ('posted', 'reversed')", name="status"),
    CheckConstraint("kind IN ('payment', 'recovery')", name="kind"),
    Index("ix_payments_loan_id_value_date", "loan_id", "value_date"),
    Index("ix_payments_reversal_key", "reversal_key", unique=True),
)

charge_offs = Table(
    "charge_offs",
    metadata,
    # One row per loan charged off (核销, migration 0004): what was written off from the books and what the
    # customer still owes by contract (账销案存: the claim stays when the balance leaves the books).
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("loan_id", Key(64), ForeignKey("loans.id"), nullable=False, unique=True),
    Column("idempotency_key", Key(128), nullable=False, unique=True),
    Column("as_of", Date, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("schedule_version", Integer, nullable=False),
    Column("dpd", Integer, nullable=False),  # days past due as of the charge-off date
    _fen("principal_fen"),  # booked principal written off (Cr loans_receivable)
    _fen("penalty_fen"),  # booked penalty written off (Cr penalty_receivable)
    _fen("interest_fen"),  # contractual interest still owed: never booked, so nothing to write off
    _fen("fee_fen"),  # contractual fee still owed, likewise
    _fen("penalty_charged_fen"),  # penalty brought to the charge-off date by the charge-off itself
    Column("entry_id", BigInteger),  # the write_off journal entry (NULL when nothing booked was left)
    Column("actor", String(128), nullable=False),
    _at("charged_off_at"),
    CheckConstraint(
        "principal_fen >= 0 AND penalty_fen >= 0 AND interest_fen >= 0 AND fee_fen >= 0", name="non_negative"
    ),
    Index("ix_charge_offs_as_of", "as_of"),
)

allocations = Table(
    "allocations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # What funded it: a payment (payment_id set), or the loan's credit balance (payment_id NULL).
    Column("source", String(8), nullable=False, server_default=AllocationSource.PAYMENT.value),
    Column("payment_id", BigInteger, ForeignKey("payments.id")),
    Column("loan_id", Key(64), ForeignKey("loans.id"), nullable=False),
    Column("schedule_version", Integer, nullable=False),
    Column("value_date", Date, nullable=False),
    Column("installment_number", Integer),  # NULL for credit
    Column("component", String(16), nullable=False),
    _fen("amount_fen", default=None),
    Column("reversed", Boolean, nullable=False, server_default=text("false")),
    Column("reversal_ref", String(128)),  # what reversed it (a repost run, a payment reversal)
    CheckConstraint("amount_fen > 0", name="amount_positive"),
    CheckConstraint("component IN ('penalty', 'fee', 'interest', 'principal', 'credit')", name="component"),
    CheckConstraint(
        "(source = 'payment' AND payment_id IS NOT NULL) OR (source = 'credit' AND payment_id IS NULL)", name="source"
    ),
    Index("ix_allocations_payment_id", "payment_id"),
    Index("ix_allocations_loan_version", "loan_id", "schedule_version"),
)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("loan_id", Key(64)),
    Column("value_date", Date, nullable=False),
    _at("posted_at"),
    Column("kind", String(32), nullable=False),
    Column("payment_id", BigInteger),
    Column("schedule_version", Integer),
    Column("reverses_entry_id", BigInteger),
    Column("close_id", BigInteger),  # the daily close that posted it
    Column("actor", String(128), nullable=False),
    Column("memo", String(200)),
    Index("ix_journal_entries_loan_value_date", "loan_id", "value_date"),
    Index("ix_journal_entries_payment_id", "payment_id"),
)

journal_lines = Table(
    "journal_lines",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("entry_id", BigInteger, nullable=False),
    Column("loan_id", Key(64)),
    Column("account", Key(32), nullable=False),
    Column("value_date", Date, nullable=False),
    _fen("debit_fen"),
    _fen("credit_fen"),
    CheckConstraint(
        "debit_fen >= 0 AND credit_fen >= 0 AND (debit_fen = 0 OR credit_fen = 0) AND debit_fen + credit_fen > 0",
        name="one_side",
    ),
    CheckConstraint(f"account IN ({', '.join(repr(a.value) for a in LedgerAccount)})", name="account"),
    Index("ix_journal_lines_entry_id", "entry_id"),
    Index("ix_journal_lines_loan_account_date", "loan_id", "account", "value_date"),
    Index("ix_journal_lines_account_date", "account", "value_date"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    _at("at"),
    Column("actor", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("object_type", String(32), nullable=False),
    Column("object_id", Key(128), nullable=False),
    Column("details", JsonDoc),
    Index("ix_audit_log_object", "object_type", "object_id"),
    Index("ix_audit_log_at", "at"),
)

ledger_closes = Table(
    "ledger_closes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("as_of", Date, nullable=False),
    _at("started_at"),
    _at("finished_at", nullable=True),
    Column("status", String(16), nullable=False, server_default="running"),
    Column("actor", String(128), nullable=False),
    Column("loans_processed", BigInteger, nullable=False, server_default=text("0")),
    _fen("penalties_accrued_fen"),
    Column("details", JsonDoc),
    CheckConstraint("status IN ('running', 'done', 'failed')", name="status"),
    Index("ix_ledger_closes_as_of", "as_of"),
)

# Tables in the order rows must be inserted (foreign keys point backwards); drop in reverse.
TABLES_IN_LOAD_ORDER = (
    chart_of_accounts,
    customers,
    accounts,
    products,
    loans,
    schedule_versions,
    installments,
    payments,
    charge_offs,
    allocations,
    ledger_closes,
    journal_entries,
    journal_lines,
    audit_log,
)

from runoff.store.ledger import alerts as _alerts, notices as _notices  # noqa: E402,F401,I001 - complete the metadata
