"""The alert lifecycle (预警处置): open → acknowledged → resolved, with who and when.

Pure transitions over a table of alerts (a Polars frame with :data:`ALERT_SCHEMA`); the store that
keeps the table lives in the application layer. A rule that keeps firing refreshes its open alert
instead of raising a new one; once resolved, the next firing raises a new alert.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import polars as pl

from runoff.errors import Conflict, InvalidInput, NotFound
from runoff.risk.delinquency import ALL
from runoff.risk.warning import Alert


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


ALERT_TRANSITIONS: dict[AlertStatus, frozenset[AlertStatus]] = {
    AlertStatus.OPEN: frozenset({AlertStatus.ACKNOWLEDGED, AlertStatus.RESOLVED}),
    AlertStatus.ACKNOWLEDGED: frozenset({AlertStatus.RESOLVED}),
    AlertStatus.RESOLVED: frozenset(),
}
"""The one transition table of an alert's lifecycle."""

ALERT_SCHEMA: dict[str, pl.DataType] = {
    "alert_id": pl.String(),
    "rule_id": pl.String(),
    "kind": pl.String(),
    "indicator": pl.String(),
    "segment": pl.String(),
    "severity": pl.String(),
    "status": pl.String(),
    "value": pl.Float64(),
    "threshold": pl.Float64(),
    "direction": pl.String(),
    "message": pl.String(),
    "first_seen_on": pl.Date(),
    "last_seen_on": pl.Date(),
    "observed_on": pl.Date(),
    "first_signal_on": pl.Date(),
    "raised_by": pl.String(),
    "raised_at": pl.Datetime("us", "UTC"),
    "acknowledged_by": pl.String(),
    "acknowledged_at": pl.Datetime("us", "UTC"),
    "resolved_by": pl.String(),
    "resolved_at": pl.Datetime("us", "UTC"),
    "note": pl.String(),
}


def empty_alerts() -> pl.DataFrame:
    return pl.DataFrame(schema=ALERT_SCHEMA)


def record_alerts(
    existing: pl.DataFrame, alerts: Sequence[Alert], *, at: datetime, actor: str
) -> tuple[pl.DataFrame, list[str], list[str]]:
    """Add fired alerts to the table: a rule already open (or acknowledged) for the same segment is updated
    (``last_seen_on``, value), otherwise a new open alert is raised. Returns (table, raised ids, updated ids)."""
    table = existing if existing.height else empty_alerts()
    raised: list[str] = []
    updated: list[str] = []
    new_rows: list[dict[str, Any]] = []
    ids = set(table.get_column("alert_id").to_list())
    for a in alerts:
        live = table.filter(
            (pl.col("rule_id") == a.rule_id)
            & (pl.col("segment") == a.segment)
            & (pl.col("status") != AlertStatus.RESOLVED.value)
        )
        if live.height:
            alert_id = live.get_column("alert_id")[0]
            newer = pl.col("last_seen_on") < a.as_of
            table = table.with_columns(
                *[
                    pl.when((pl.col("alert_id") == alert_id) & newer)
                    .then(pl.lit(v, dtype=ALERT_SCHEMA[c]))
                    .otherwise(pl.col(c))
                    .alias(c)
                    for c, v in (
                        ("last_seen_on", a.as_of),
                        ("observed_on", a.observed_on),
                        ("value", a.value),
                        ("message", a.message),
                    )
                ]
            )
            updated.append(alert_id)
            continue
        alert_id = f"{a.rule_id}@{a.as_of:%Y-%m}" + ("" if a.segment == ALL else f"/{a.segment}")
        suffix = 2
        base = alert_id
        while alert_id in ids:
            alert_id, suffix = f"{base}#{suffix}", suffix + 1
        ids.add(alert_id)
        raised.append(alert_id)
        new_rows.append(
            {
                **{c: None for c in ALERT_SCHEMA},
                "alert_id": alert_id, "rule_id": a.rule_id, "kind": a.kind, "indicator": a.indicator,
                "segment": a.segment, "severity": a.severity, "status": AlertStatus.OPEN.value, "value": a.value,
                "threshold": a.threshold, "direction": a.direction, "message": a.message, "first_seen_on": a.as_of,
                "last_seen_on": a.as_of, "observed_on": a.observed_on, "first_signal_on": a.first_signal_on,
                "raised_by": actor, "raised_at": at,
            }
        )  # fmt: skip
    if new_rows:
        table = pl.concat([table, pl.DataFrame(new_rows, schema=ALERT_SCHEMA)], how="vertical")
    return table, raised, updated


def change_alert_status(
    table: pl.DataFrame, alert_id: str, to: AlertStatus | str, *, by: str, at: datetime, note: str | None = None
) -> pl.DataFrame:
    """Move one alert along its lifecycle, recording who and when; a move the table does not allow is a :class:`Conflict`."""
    target = AlertStatus(to) if not isinstance(to, AlertStatus) else to
    if not by.strip():
        raise InvalidInput("`by`: expected the name of who acts on the alert, got an empty string", field="by")
    rows = table.filter(pl.col("alert_id") == alert_id)
    if rows.height == 0:
        raise NotFound(f"`alert_id`: {alert_id!r} is not an alert; list them with `runoff alerts`", field="alert_id")
    current = AlertStatus(rows.get_column("status")[0])
    if target not in ALERT_TRANSITIONS[current]:
        allowed = ", ".join(s.value for s in sorted(ALERT_TRANSITIONS[current])) or "nothing (it is final)"
        raise Conflict(
            f"alert {alert_id} is {current.value}; it can move to {allowed}, not {target.value}",
            code="warning.alert_transition",
            field="status",
        )
    who, when = (
        ("acknowledged_by", "acknowledged_at") if target is AlertStatus.ACKNOWLEDGED else ("resolved_by", "resolved_at")
    )
    mine = pl.col("alert_id") == alert_id
    updates = [("status", target.value), (who, by), (when, at)]
    if note is not None:
        updates.append(("note", note))
    return table.with_columns(
        [pl.when(mine).then(pl.lit(v, dtype=ALERT_SCHEMA[c])).otherwise(pl.col(c)).alias(c) for c, v in updates]
    )
