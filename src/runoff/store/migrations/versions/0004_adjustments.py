"""Charge-offs (核销), recoveries (核销后回收) and payment reversals (冲正): the ``charge_offs`` table, and on
``payments`` the ``kind`` of money a row records (a payment, or a recovery on a charged-off loan) and the
idempotency key of the reversal that reversed it.

Revision ID: 0004_adjustments
Revises: 0003_alerts
Create Date: 2026-12-02

Written out in full (not imported from the models) so this revision stays what it was. Adding a column with a
constant default is instant on PostgreSQL 11+ and on SQLite; SQLite cannot add a constraint to an existing table,
so there the CHECK on ``kind`` is part of the column's definition (same rule, same name on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_adjustments"
down_revision: str | None = "0003_alerts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _key(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _fen(name: str) -> sa.Column[int]:
    return sa.Column(name, sa.BigInteger(), server_default=sa.text("0"), nullable=False)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute(
            "ALTER TABLE payments ADD COLUMN kind VARCHAR(16) DEFAULT 'payment' NOT NULL "
            "CONSTRAINT ck_payments_kind CHECK (kind IN ('payment', 'recovery'))"
        )
    else:
        op.add_column("payments", sa.Column("kind", sa.String(16), server_default="payment", nullable=False))
        op.create_check_constraint(op.f("ck_payments_kind"), "payments", "kind IN ('payment', 'recovery')")
    op.add_column("payments", sa.Column("reversal_key", _key(128)))
    op.create_index("ix_payments_reversal_key", "payments", ["reversal_key"], unique=True)

    op.create_table(
        "charge_offs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("loan_id", _key(64), nullable=False),
        sa.Column("idempotency_key", _key(128), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("schedule_version", sa.Integer(), nullable=False),
        sa.Column("dpd", sa.Integer(), nullable=False),
        _fen("principal_fen"),
        _fen("penalty_fen"),
        _fen("interest_fen"),
        _fen("fee_fen"),
        _fen("penalty_charged_fen"),
        sa.Column("entry_id", sa.BigInteger()),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("charged_off_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "principal_fen >= 0 AND penalty_fen >= 0 AND interest_fen >= 0 AND fee_fen >= 0",
            name=op.f("ck_charge_offs_non_negative"),
        ),
        sa.ForeignKeyConstraint(["loan_id"], ["loans.id"], name=op.f("fk_charge_offs_loan_id_loans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_charge_offs")),
        sa.UniqueConstraint("loan_id", name=op.f("uq_charge_offs_loan_id")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_charge_offs_idempotency_key")),
    )
    op.create_index("ix_charge_offs_as_of", "charge_offs", ["as_of"])


def downgrade() -> None:
    op.drop_index("ix_charge_offs_as_of", table_name="charge_offs")
    op.drop_table("charge_offs")
    op.drop_index("ix_payments_reversal_key", table_name="payments")
    with op.batch_alter_table("payments") as batch:
        batch.drop_column("reversal_key")
        batch.drop_constraint(op.f("ck_payments_kind"), type_="check")
        batch.drop_column("kind")
