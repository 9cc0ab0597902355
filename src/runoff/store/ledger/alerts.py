"""The ledger's early-warning alerts (预警): one row per alert with its lifecycle, open → acknowledged → resolved.

The lifecycle's rules are pure (:mod:`runoff.risk.alerts`); this module stores the rows and reads and writes them
set-based (one statement for a run's new alerts, one for its refreshed ones). Created by the migration
``0003_alerts``. Every timestamp is stored and returned in UTC (SQLite keeps no offset, so one is put back on read).

Writers of alerts serialise on one lock (:func:`lock_alerts`): on SQLite the write transaction's database lock
already does it, on PostgreSQL a transaction-scoped advisory lock, so two ``runoff warn`` runs or an
acknowledgement racing a run never raise the same alert twice or lose each other's changes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    Connection,
    Date,
    DateTime,
    Double,
    Index,
    RowMapping,
    String,
    Table,
    Text,
    bindparam,
    case,
    insert,
    select,
    text,
    update,
)

from runoff.store.ledger.models import Key, metadata

ALERT_STATUSES = ("open", "acknowledged", "resolved")
"""The lifecycle's states (:class:`runoff.risk.alerts.AlertStatus`), as stored."""

SEVERITY_ORDER = ("critical", "high", "medium", "low", "info")
"""Most severe first: the order open alerts are listed in."""

# Advisory lock id that serialises writers of alerts on PostgreSQL ("alerts" in ASCII).
PG_ALERTS_LOCK = 0x616C65727473

_AT_COLUMNS = ("raised_at", "acknowledged_at", "resolved_at", "updated_at")

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Key(200), primary_key=True),  # rule@YYYY-MM[/segment][#n], stable for users to quote
    Column("rule_id", Key(64), nullable=False),
    Column("kind", String(32), nullable=False),  # threshold, cusum, control-limits
    Column("indicator", String(64), nullable=False),
    Column("segment", String(200), nullable=False),  # "all" or dimension=value
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False, server_default="open"),
    Column("value", Double),  # the statistic compared when it last fired
    Column("threshold", Double),
    Column("direction", String(16)),
    Column("message", Text),
    Column("first_seen_on", Date, nullable=False),  # as-of date of the run that raised it
    Column("last_seen_on", Date, nullable=False),  # as-of date of the latest run it fired in
    Column("observed_on", Date),  # month end of the latest value used
    Column("first_signal_on", Date),  # change detection: when the drift began
    Column("raised_by", String(128), nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("acknowledged_by", String(128)),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("resolved_by", String(128)),
    Column("resolved_at", DateTime(timezone=True)),
    Column("note", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name="status"),
    CheckConstraint(
        "status <> 'acknowledged' OR (acknowledged_by IS NOT NULL AND acknowledged_at IS NOT NULL)",
        name="acknowledged_who_when",
    ),
    CheckConstraint(
        "status <> 'resolved' OR (resolved_by IS NOT NULL AND resolved_at IS NOT NULL)", name="resolved_who_when"
    ),
    Index("ix_alerts_status", "status"),
    Index("ix_alerts_last_seen_on", "last_seen_on"),
    Index("ix_alerts_rule_id_segment", "rule_id", "segment"),
)
"""One row per alert raised; a rule that keeps firing refreshes its live row instead of adding one."""

ALERT_COLUMNS: tuple[str, ...] = tuple(c.name for c in alerts.columns)


def lock_alerts(conn: Connection) -> None:
    """Take the alerts' writer lock for the rest of the transaction (PostgreSQL; SQLite's write lock suffices)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_ALERTS_LOCK})


def read_alerts(
    conn: Connection,
    *,
    statuses: Collection[str] | None = None,
    rule_ids: Collection[str] | None = None,
    alert_ids: Collection[str] | None = None,
    lock: bool = False,
) -> list[dict[str, Any]]:
    """Alerts matching every filter given (none: all), oldest first; ``lock`` takes their row locks (PostgreSQL)."""
    query = select(alerts)
    if statuses is not None:
        query = query.where(alerts.c.status.in_(sorted(set(statuses))))
    if rule_ids is not None:
        query = query.where(alerts.c.rule_id.in_(sorted(set(rule_ids))))
    if alert_ids is not None:
        query = query.where(alerts.c.alert_id.in_(sorted(set(alert_ids))))
    query = query.order_by(alerts.c.first_seen_on, alerts.c.alert_id)
    if lock:
        query = query.with_for_update()
    return [_from_row(row) for row in conn.execute(query).mappings()]


def read_live_alerts(conn: Connection) -> list[dict[str, Any]]:
    """Alerts not resolved yet (open or acknowledged), most severe first, then oldest."""
    rank = case({s: i for i, s in enumerate(SEVERITY_ORDER)}, value=alerts.c.severity, else_=len(SEVERITY_ORDER))
    query = (
        select(alerts).where(alerts.c.status != "resolved").order_by(rank, alerts.c.first_seen_on, alerts.c.alert_id)
    )
    return [_from_row(row) for row in conn.execute(query).mappings()]


def insert_alerts(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Add new alerts (dicts with every column) in one statement."""
    if rows:
        conn.execute(insert(alerts), [_to_row(r) for r in rows])


def update_alerts(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write the columns the rows carry (the same in every row) to the alerts named by their ``alert_id``."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != "alert_id"]
    unknown = [c for c in columns if c not in alerts.c]
    if unknown:
        raise KeyError(f"alerts has no column {', '.join(unknown)}")
    stmt = (
        update(alerts)
        .where(alerts.c.alert_id == bindparam("k_alert_id"))
        .values({c: bindparam(f"v_{c}") for c in columns})
    )
    written = [_to_row(r) for r in rows]
    conn.execute(stmt, [{"k_alert_id": r["alert_id"], **{f"v_{c}": r[c] for c in columns}} for r in written])


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _to_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as written: timestamps in UTC (a naive one is taken as UTC already)."""
    return {k: _utc(v) if k in _AT_COLUMNS else v for k, v in row.items()}


def _from_row(row: RowMapping) -> dict[str, Any]:
    return {k: _utc(row[k]) if k in _AT_COLUMNS else row[k] for k in ALERT_COLUMNS}
