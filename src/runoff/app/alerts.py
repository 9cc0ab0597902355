"""Early-warning alerts kept in the ledger with their lifecycle (open → acknowledged → resolved, who and when)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import Connection

from runoff.app.context import AppContext, build_context
from runoff.config import Settings
from runoff.errors import InvalidInput
from runoff.risk.alerts import ALERT_SCHEMA, AlertStatus, change_alert_status, empty_alerts, record_alerts
from runoff.risk.warning import (
    Alert,
)
from runoff.store.ledger.alerts import insert_alerts, lock_alerts, read_alerts, read_live_alerts, update_alerts
from runoff.store.ledger.repository import audit_entry
from runoff.store.workspace import Workspace

Progress = Callable[[int, int], None]

METRICS: tuple[str, ...] = ("delinquency", "vintages", "transitions", "concentration")
"""The whole-book analytics one pass computes (any subset)."""


RISK_DIR = "risk"

LEGACY_ALERTS_FILE = f"{RISK_DIR}/alerts.parquet"
"""Where a workspace kept its alerts before the ledger had them (moved into the ledger on first use)."""
ALERT_STATUSES = tuple(s.value for s in AlertStatus)
_REFRESHED = ("last_seen_on", "observed_on", "value", "message")


class AlertStore:
    """The early-warning alerts in the ledger (table ``alerts``) and their lifecycle (预警处置).

    Reads return Polars frames with :data:`~runoff.risk.alerts.ALERT_SCHEMA`. Each change is one ledger transaction
    under the alerts' writer lock, with its rows in the audit log (``alert.raised``, ``alert.refreshed``,
    ``alert.acknowledged``, ``alert.resolved``). The ledger is the workspace's (``ledger.db`` unless
    RUNOFF_DATABASE_URL names another), or that of ``context`` when one is given. Alerts a workspace kept in
    ``data/risk/alerts.parquet`` before are moved into the ledger on first use.
    """

    def __init__(self, workspace: Workspace, *, context: AppContext | None = None) -> None:
        self.workspace = workspace
        self.context = context
        self.legacy_path = workspace.data_dir / LEGACY_ALERTS_FILE

    @contextmanager
    def _ledger(self) -> Iterator[AppContext]:
        if self.context is not None:
            self._adopt_legacy_file(self.context)
            yield self.context
            return
        with build_context(Settings(workspace=self.workspace.root)) as ctx:
            self._adopt_legacy_file(ctx)
            yield ctx

    def _read(self, read: Callable[[Connection], list[dict[str, Any]]]) -> pl.DataFrame:
        with self._ledger() as ctx, ctx.uow(write=False) as uow:
            return _alert_frame(read(uow.connection))

    def all(self) -> pl.DataFrame:
        """Every alert, oldest first."""
        return self._read(read_alerts)

    def open(self) -> pl.DataFrame:
        """Alerts not resolved yet (open or acknowledged), most severe first."""
        return self._read(read_live_alerts)

    def with_status(self, status: str = "open") -> pl.DataFrame:
        """Alerts with ``status`` (``open`` also lists acknowledged ones; ``all`` lists every one)."""
        if status not in (*ALERT_STATUSES, "all"):
            raise InvalidInput(
                f"`--status`: {status!r} is not allowed; expected one of {', '.join((*ALERT_STATUSES, 'all'))}",
                field="status",
            )
        if status == "all":
            return self.all()
        if status == "open":
            return self.open()
        return self._read(lambda conn: read_alerts(conn, statuses=[status]))

    def record(self, alerts: Sequence[Alert], *, at: datetime, actor: str) -> tuple[pl.DataFrame, list[str], list[str]]:
        """Raise new alerts and refresh the live ones the same rules fire again, in one transaction.

        Returns the fired rules' alerts as they now are, the ids raised and the ids still firing."""
        if not alerts:
            return empty_alerts(), [], []
        with self._ledger() as ctx, ctx.uow() as uow:
            conn = uow.connection
            lock_alerts(conn)
            before = _alert_frame(read_alerts(conn, rule_ids={a.rule_id for a in alerts}))
            table, raised, updated = record_alerts(before, alerts, at=at, actor=actor)
            after = {r["alert_id"]: r for r in table.to_dicts()}
            was = {r["alert_id"]: r for r in before.to_dicts()}
            refreshed = [i for i in dict.fromkeys(updated) if any(after[i][c] != was[i][c] for c in _REFRESHED)]
            insert_alerts(conn, [{**after[i], "updated_at": at} for i in raised])
            update_alerts(
                conn, [{"alert_id": i, **{c: after[i][c] for c in _REFRESHED}, "updated_at": at} for i in refreshed]
            )
            uow.ledger.append_audit(
                [_alert_audit(at, actor, "alert.raised", after[i]) for i in raised]
                + [_alert_audit(at, actor, "alert.refreshed", after[i]) for i in refreshed]
            )
            uow.commit()
        return table, raised, updated

    def change(
        self, alert_id: str, to: AlertStatus | str, *, by: str, at: datetime, note: str | None = None
    ) -> dict[str, Any]:
        """Acknowledge or resolve one alert, recording who and when; returns the alert as it now is.

        A move the lifecycle does not allow (resolved → acknowledged, ...) is a :class:`~runoff.errors.Conflict`."""
        with self._ledger() as ctx, ctx.uow() as uow:
            conn = uow.connection
            lock_alerts(conn)
            current = _alert_frame(read_alerts(conn, alert_ids=[alert_id], lock=True))
            row = change_alert_status(current, alert_id, to, by=by, at=at, note=note).row(0, named=True)
            status = AlertStatus(row["status"])
            who, when = (
                ("acknowledged_by", "acknowledged_at")
                if status is AlertStatus.ACKNOWLEDGED
                else ("resolved_by", "resolved_at")
            )
            values = {"alert_id": alert_id, "status": status.value, who: by, when: at, "note": row["note"]}
            update_alerts(conn, [{**values, "updated_at": at}])
            details = {"from": current.row(0, named=True)["status"], "to": status.value, "note": note}
            uow.ledger.append_audit([_alert_audit(at, by, f"alert.{status.value}", row, details)])
            uow.commit()
        return row

    def _adopt_legacy_file(self, ctx: AppContext) -> None:
        """Move the alerts of ``data/risk/alerts.parquet`` into the ledger (those it lacks), then rename the file
        ``alerts.parquet.imported`` so it is read once."""
        try:
            legacy = pl.read_parquet(self.legacy_path) if self.legacy_path.is_file() else None
        except FileNotFoundError:  # another process moved it in meanwhile
            legacy = None
        if legacy is None:
            return
        legacy = pl.concat(
            [empty_alerts(), legacy.select([c for c in ALERT_SCHEMA if c in legacy.columns])], how="diagonal"
        )
        with ctx.uow() as uow:
            conn = uow.connection
            lock_alerts(conn)
            ids = legacy.get_column("alert_id").to_list()
            known = {r["alert_id"] for r in read_alerts(conn, alert_ids=ids)}
            rows = [r for r in legacy.to_dicts() if r["alert_id"] not in known]
            for r in rows:
                r["updated_at"] = max(r[c] for c in ("raised_at", "acknowledged_at", "resolved_at") if r[c] is not None)
            insert_alerts(conn, rows)
            moved = {"from": str(self.legacy_path)}
            uow.ledger.append_audit([_alert_audit(ctx.clock(), "runoff", "alert.imported", r, moved) for r in rows])
            uow.commit()
        with suppress(FileNotFoundError):
            self.legacy_path.rename(self.legacy_path.with_name(f"{self.legacy_path.name}.imported"))


def _alert_frame(rows: Sequence[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame([{c: r[c] for c in ALERT_SCHEMA} for r in rows], schema=ALERT_SCHEMA)


def _alert_audit(
    at: datetime, actor: str, action: str, alert: dict[str, Any], details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An audit-log row for one alert; details default to what the alert says now (JSON-safe)."""
    if details is None:
        details = {
            "rule_id": alert["rule_id"],
            "segment": alert["segment"],
            "severity": alert["severity"],
            "indicator": alert["indicator"],
            "value": _finite(alert["value"]),
            "threshold": _finite(alert["threshold"]),
            "last_seen_on": alert["last_seen_on"].isoformat(),
        }
    return audit_entry(at, actor, action, "alert", alert["alert_id"], {"alert_id": alert["alert_id"], **details})


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity."""
    return value if value is not None and math.isfinite(value) else None


# --- early warning ---------------------------------------------------------------------------------------------
