"""The ledger: customers, accounts, products, loans, schedule versions, installments, payments, allocations,
the double-entry journal with its chart of accounts, the append-only audit log and the daily-close log.

Revision ID: 0001
Revises:
Create Date: 2026-11-30

Foreign keys only on the tables written a row at a time (payments, allocations); the bulk tables are checked set-based by the loader and by ``runoff ledger verify``.

Written out in full (not imported from the models) so this revision stays what it was when later
revisions change the models; ``tests/store/test_migrations.py`` checks the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

CHART = (
    ("loans_receivable", "Loans receivable (应收贷款本金)", "asset"),
    ("interest_income", "Interest income (利息收入)", "income"),
    ("fee_income", "Fee income (手续费收入)", "income"),
    ("penalty_receivable", "Penalty receivable (应收罚息)", "asset"),
    ("penalty_income", "Penalty income (罚息收入)", "income"),
    ("cash_clearing", "Cash / clearing (清算)", "asset"),
    ("customer_credit", "Customer credit balances (客户溢缴款)", "liability"),
    ("waivers", "Waivers (减免)", "expense"),
    ("write_offs", "Write-offs (核销)", "expense"),
    ("recoveries", "Recoveries (核销后回收)", "income"),
)


def _key(length: int) -> sa.types.TypeEngine[str]:
    """Identifier columns compare byte-wise on PostgreSQL (COLLATE "C"): much faster to index than a locale."""
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _fen(name: str, *, nullable: bool = False, default: int | None = 0) -> sa.Column[int]:
    server_default = sa.text(str(default)) if default is not None else None
    return sa.Column(name, sa.BigInteger(), nullable=nullable, server_default=server_default)


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    chart = op.create_table(
        "chart_of_accounts",
        sa.Column("code", _key(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.CheckConstraint(
            "kind IN ('asset', 'liability', 'income', 'expense')", name=op.f("ck_chart_of_accounts_kind")
        ),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_chart_of_accounts")),
    )
    op.bulk_insert(chart, [{"code": c, "name": n, "kind": k} for c, n, k in CHART])

    op.create_table(
        "customers",
        sa.Column("id", _key(64), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("phone", sa.String(32)),
        sa.Column("region", sa.String(32)),
        _at("created_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_table(
        "accounts",
        sa.Column("id", _key(64), nullable=False),
        sa.Column("customer_id", _key(64), nullable=False),
        _fen("credit_limit_fen", nullable=True, default=None),
        sa.Column("status", sa.String(16), server_default="open", nullable=False),
        sa.Column("opened_on", sa.Date()),
        sa.Column("closed_on", sa.Date()),
        _at("created_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
    )
    op.create_index("ix_accounts_customer_id", "accounts", ["customer_id"])

    op.create_table(
        "products",
        sa.Column("id", _key(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("body", JSON_DOC, nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("penalty_base", sa.String(32), nullable=False),
        sa.Column("penalty_daily_rate_ppb", sa.BigInteger(), nullable=False),
        sa.Column("penalty_grace_days", sa.Integer(), nullable=False),
        sa.Column("penalty_cap_ppb", sa.BigInteger()),
        _fen("residual_tolerance_fen"),
        sa.Column("rounding_mode", sa.String(16), nullable=False),
        _at("created_at"),
        sa.PrimaryKeyConstraint("id", "version", name=op.f("pk_products")),
        sa.UniqueConstraint("id", "digest", name="uq_products_id_digest"),
    )

    op.create_table(
        "loans",
        sa.Column("id", _key(64), nullable=False),
        sa.Column("customer_id", _key(64)),
        sa.Column("account_id", _key(64)),
        sa.Column("product_id", _key(64), nullable=False),
        sa.Column("product_version", sa.Integer(), nullable=False),
        _fen("principal_fen", default=None),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("term", sa.Integer(), nullable=False),
        sa.Column("schedule_version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("status", sa.String(16), server_default="open", nullable=False),
        sa.Column("closed_on", sa.Date()),
        sa.Column("close_reason", sa.String(32)),
        _fen("credit_balance_fen"),
        _fen("outstanding_principal_fen"),
        _fen("opening_principal_paid_fen"),
        sa.Column("oldest_unpaid_due_date", sa.Date()),
        sa.Column("dpd", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("bucket", sa.String(8), server_default="current", nullable=False),
        _fen("overdue_principal_fen"),
        _fen("overdue_amount_fen"),
        _fen("penalty_charged_fen"),
        _fen("penalty_cap_fen", nullable=True, default=None),
        sa.Column("last_closed_on", sa.Date()),
        sa.Column("penalty_accrued_until", sa.Date()),
        sa.Column("last_value_date", sa.Date()),
        sa.Column("repost_from", sa.Date()),
        _at("created_at"),
        _at("updated_at"),
        sa.CheckConstraint("status IN ('open', 'closed', 'charged-off')", name=op.f("ck_loans_status")),
        sa.CheckConstraint("principal_fen > 0", name=op.f("ck_loans_principal_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loans")),
    )
    op.create_index("ix_loans_account_id", "loans", ["account_id"])
    op.create_index("ix_loans_customer_id", "loans", ["customer_id"])
    op.create_index("ix_loans_status_oldest_unpaid", "loans", ["status", "oldest_unpaid_due_date"])
    op.create_index("ix_loans_repost_from", "loans", ["repost_from"])

    op.create_table(
        "schedule_versions",
        sa.Column("loan_id", _key(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        _at("created_at"),
        sa.Column("created_by", sa.String(128), nullable=False),
        _at("archived_at", nullable=True),
        _at("reversed_at", nullable=True),
        sa.Column("idempotency_key", _key(128)),
        sa.Column("parent_version", sa.Integer()),
        _fen("principal_fen", default=None),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("term", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("annual_rate", sa.String(24)),
        sa.Column("fee_rate", sa.String(24)),
        sa.PrimaryKeyConstraint("loan_id", "version", name=op.f("pk_schedule_versions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_schedule_versions_idempotency_key")),
    )

    op.create_table(
        "installments",
        sa.Column("loan_id", _key(64), nullable=False),
        sa.Column("schedule_version", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("accrual_start", sa.Date()),
        *(
            _fen(f"{component}_{what}_fen")
            for component, what in (
                ("principal", "due"),
                ("interest", "due"),
                ("fee", "due"),
                ("principal", "paid"),
                ("interest", "paid"),
                ("fee", "paid"),
                ("principal", "waived"),
                ("interest", "waived"),
                ("fee", "waived"),
                ("penalty", "accrued"),
                ("penalty", "paid"),
                ("penalty", "waived"),
            )
        ),
        sa.Column("settled_on", sa.Date()),
        sa.CheckConstraint(
            "principal_due_fen >= 0 AND interest_due_fen >= 0 AND fee_due_fen >= 0"
            " AND principal_paid_fen >= 0 AND interest_paid_fen >= 0 AND fee_paid_fen >= 0"
            " AND penalty_accrued_fen >= 0 AND penalty_paid_fen >= 0 AND penalty_waived_fen >= 0",
            name=op.f("ck_installments_non_negative"),
        ),
        sa.PrimaryKeyConstraint("loan_id", "schedule_version", "number", name=op.f("pk_installments")),
    )
    op.create_index("ix_installments_due_date", "installments", ["due_date"])

    op.create_table(
        "payments",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("loan_id", _key(64), nullable=False),
        _fen("amount_fen", default=None),
        sa.Column("value_date", sa.Date(), nullable=False),
        _at("received_at"),
        sa.Column("idempotency_key", _key(128), nullable=False),
        sa.Column("status", sa.String(16), server_default="posted", nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("schedule_version", sa.Integer(), nullable=False),
        _fen("credited_fen"),
        _fen("prepaid_principal_fen"),
        _fen("waived_fen"),
        _fen("penalty_charged_fen"),
        _at("reversed_at", nullable=True),
        sa.Column("reversal_reason", sa.String(200)),
        sa.CheckConstraint("status IN ('posted', 'reversed')", name=op.f("ck_payments_status")),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_payments_amount_positive")),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], name=op.f("fk_payments_loan_id_loans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payments_idempotency_key")),
    )
    op.create_index("ix_payments_loan_id_value_date", "payments", ["loan_id", "value_date"])

    op.create_table(
        "allocations",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(8), server_default="payment", nullable=False),
        sa.Column("payment_id", sa.BigInteger()),
        sa.Column("loan_id", _key(64), nullable=False),
        sa.Column("schedule_version", sa.Integer(), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        sa.Column("installment_number", sa.Integer()),
        sa.Column("component", sa.String(16), nullable=False),
        _fen("amount_fen", default=None),
        sa.Column("reversed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("reversal_ref", sa.String(128)),
        sa.CheckConstraint(
            "component IN ('penalty', 'fee', 'interest', 'principal', 'credit')", name=op.f("ck_allocations_component")
        ),
        sa.CheckConstraint("amount_fen > 0", name=op.f("ck_allocations_amount_positive")),
        sa.CheckConstraint(
            "(source = 'payment' AND payment_id IS NOT NULL) OR (source = 'credit' AND payment_id IS NULL)",
            name=op.f("ck_allocations_source"),
        ),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], name=op.f("fk_allocations_loan_id_loans")),
        sa.ForeignKeyConstraint(["payment_id"], ["payments.id"], name=op.f("fk_allocations_payment_id_payments")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
    )
    op.create_index("ix_allocations_loan_version", "allocations", ["loan_id", "schedule_version"])
    op.create_index("ix_allocations_payment_id", "allocations", ["payment_id"])

    op.create_table(
        "ledger_closes",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        _at("started_at"),
        _at("finished_at", nullable=True),
        sa.Column("status", sa.String(16), server_default="running", nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("loans_processed", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        _fen("penalties_accrued_fen"),
        sa.Column("details", JSON_DOC),
        sa.CheckConstraint("status IN ('running', 'done', 'failed')", name=op.f("ck_ledger_closes_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_closes")),
    )
    op.create_index("ix_ledger_closes_as_of", "ledger_closes", ["as_of"])

    op.create_table(
        "journal_entries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("loan_id", _key(64)),
        sa.Column("value_date", sa.Date(), nullable=False),
        _at("posted_at"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payment_id", sa.BigInteger()),
        sa.Column("schedule_version", sa.Integer()),
        sa.Column("reverses_entry_id", sa.BigInteger()),
        sa.Column("close_id", sa.BigInteger()),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("memo", sa.String(200)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_entries")),
    )
    op.create_index("ix_journal_entries_loan_value_date", "journal_entries", ["loan_id", "value_date"])
    op.create_index("ix_journal_entries_payment_id", "journal_entries", ["payment_id"])

    op.create_table(
        "journal_lines",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("loan_id", _key(64)),
        sa.Column("account", _key(32), nullable=False),
        sa.Column("value_date", sa.Date(), nullable=False),
        _fen("debit_fen"),
        _fen("credit_fen"),
        sa.CheckConstraint(
            "debit_fen >= 0 AND credit_fen >= 0 AND (debit_fen = 0 OR credit_fen = 0) AND debit_fen + credit_fen > 0",
            name=op.f("ck_journal_lines_one_side"),
        ),
        sa.CheckConstraint(
            "account IN (" + ", ".join(f"'{code}'" for code, _, _ in CHART) + ")",
            name=op.f("ck_journal_lines_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_journal_lines")),
    )
    op.create_index("ix_journal_lines_account_date", "journal_lines", ["account", "value_date"])
    op.create_index("ix_journal_lines_entry_id", "journal_lines", ["entry_id"])
    op.create_index("ix_journal_lines_loan_account_date", "journal_lines", ["loan_id", "account", "value_date"])

    op.create_table(
        "audit_log",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        _at("at"),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("object_type", sa.String(32), nullable=False),
        sa.Column("object_id", _key(128), nullable=False),
        sa.Column("details", JSON_DOC),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_object", "audit_log", ["object_type", "object_id"])
    _make_audit_log_append_only()


def _make_audit_log_append_only() -> None:
    """The database itself refuses UPDATE and DELETE on the audit log (审计日志只增不改)."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    for table in (
        "audit_log",
        "journal_lines",
        "journal_entries",
        "ledger_closes",
        "allocations",
        "payments",
        "installments",
        "schedule_versions",
        "loans",
        "products",
        "accounts",
        "customers",
        "chart_of_accounts",
    ):
        op.drop_table(table)
