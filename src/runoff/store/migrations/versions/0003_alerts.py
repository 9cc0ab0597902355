"""Early-warning alerts (预警) in the ledger: one row per alert with its lifecycle (open → acknowledged → resolved),
who moved it and when; they were a Parquet file in the workspace before.

Revision ID: 0003_alerts
Revises: 0002_notices
Create Date: 2026-12-01

Written out in full (not imported from the models) so this revision stays what it was; the table's model is
``runoff.store.ledger.alerts.alerts`` on the ledger's metadata.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_alerts"
down_revision: str | None = "0002_notices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _key(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.String(length, collation="C"), "postgresql")


def _at(name: str, *, nullable: bool = True) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("alert_id", _key(200), nullable=False),
        sa.Column("rule_id", _key(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("indicator", sa.String(64), nullable=False),
        sa.Column("segment", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), server_default="open", nullable=False),
        sa.Column("value", sa.Double()),
        sa.Column("threshold", sa.Double()),
        sa.Column("direction", sa.String(16)),
        sa.Column("message", sa.Text()),
        sa.Column("first_seen_on", sa.Date(), nullable=False),
        sa.Column("last_seen_on", sa.Date(), nullable=False),
        sa.Column("observed_on", sa.Date()),
        sa.Column("first_signal_on", sa.Date()),
        sa.Column("raised_by", sa.String(128), nullable=False),
        _at("raised_at", nullable=False),
        sa.Column("acknowledged_by", sa.String(128)),
        _at("acknowledged_at"),
        sa.Column("resolved_by", sa.String(128)),
        _at("resolved_at"),
        sa.Column("note", sa.Text()),
        _at("updated_at", nullable=False),
        sa.CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_alerts_status")),
        sa.CheckConstraint(
            "status <> 'acknowledged' OR (acknowledged_by IS NOT NULL AND acknowledged_at IS NOT NULL)",
            name=op.f("ck_alerts_acknowledged_who_when"),
        ),
        sa.CheckConstraint(
            "status <> 'resolved' OR (resolved_by IS NOT NULL AND resolved_at IS NOT NULL)",
            name=op.f("ck_alerts_resolved_who_when"),
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_alerts")),
    )
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.create_index("ix_alerts_last_seen_on", "alerts", ["last_seen_on"])
    op.create_index("ix_alerts_rule_id_segment", "alerts", ["rule_id", "segment"])


def downgrade() -> None:
    op.drop_index("ix_alerts_rule_id_segment", table_name="alerts")
    op.drop_index("ix_alerts_last_seen_on", table_name="alerts")
    op.drop_index("ix_alerts_status", table_name="alerts")
    op.drop_table("alerts")
