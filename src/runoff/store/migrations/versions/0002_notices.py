"""Notices (用户告知书): every notice sent, with the text sent, the content items it carried, the figures it was
rendered from, the compliance findings it passed with, and its delivery and acknowledgement.

Revision ID: 0002_notices
Revises: 0001
Create Date: 2026-11-30

Written out in full (not imported from the models) so this revision stays what it was; the table's model is
``runoff.store.ledger.notices.notices`` on the ledger's metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_notices"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _key(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _at(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "notices",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("notice_key", _key(255), nullable=False),
        sa.Column("plan_id", _key(64), nullable=False),
        sa.Column("loan_id", _key(64)),
        sa.Column("customer_id", _key(64)),
        sa.Column("notice_type", sa.String(32), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("template", sa.String(200), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), server_default="sent", nullable=False),
        _at("sent_at"),
        _at("delivered_at", nullable=True),
        _at("acknowledged_at", nullable=True),
        _at("failed_at", nullable=True),
        sa.Column("failure_reason", sa.String(500)),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("items", JSON_DOC, nullable=False),
        sa.Column("figures", JSON_DOC),
        sa.Column("findings", JSON_DOC),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.CheckConstraint("status IN ('sent', 'delivered', 'acknowledged', 'failed')", name=op.f("ck_notices_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("notice_key", name="uq_notices_notice_key"),
    )
    op.create_index("ix_notices_loan_id", "notices", ["loan_id"])
    op.create_index("ix_notices_plan_id", "notices", ["plan_id", "as_of"])


def downgrade() -> None:
    op.drop_index("ix_notices_plan_id", table_name="notices")
    op.drop_index("ix_notices_loan_id", table_name="notices")
    op.drop_table("notices")
