"""The ledger's ``notices`` table (用户告知书): every notice sent, with its text, items, figures, findings and lifecycle.

Created by the migration ``0002_notices``; the use cases that render, check, send and track notices are in
:mod:`runoff.app.notices`. Defined here, on the ledger's metadata, so the ledger's schema is complete whether or
not those use cases are imported.
"""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Date, DateTime, Index, String, Table, Text, UniqueConstraint

from runoff.store.ledger.models import BigId, JsonDoc, Key, metadata

NOTICE_STATUSES = ("sent", "delivered", "acknowledged", "failed")

notices = Table(
    "notices",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("notice_key", Key(255), nullable=False),
    Column("plan_id", Key(64), nullable=False),
    Column("loan_id", Key(64)),
    Column("customer_id", Key(64)),
    Column("notice_type", String(32), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("language", String(8), nullable=False),
    Column("template", String(200), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("status", String(16), nullable=False, server_default="sent"),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("acknowledged_at", DateTime(timezone=True), nullable=True),
    Column("failed_at", DateTime(timezone=True), nullable=True),
    Column("failure_reason", String(500)),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("content_sha256", String(64), nullable=False),
    Column("items", JsonDoc, nullable=False),
    Column("figures", JsonDoc),
    Column("findings", JsonDoc),
    Column("actor", String(128), nullable=False),
    CheckConstraint("status IN ('sent', 'delivered', 'acknowledged', 'failed')", name="status"),
    UniqueConstraint("notice_key", name="uq_notices_notice_key"),
    Index("ix_notices_loan_id", "loan_id"),
    Index("ix_notices_plan_id", "plan_id", "as_of"),
)
"""One row per notice sent (the public announcement has no loan): text, items, figures, findings, lifecycle."""
