"""The ledger's alerts table on SQLite and PostgreSQL: rows round-trip with their timestamps in UTC, live alerts
come most severe first, and the database itself refuses a status without who and when."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy.exc import IntegrityError

from runoff.store.ledger.alerts import (
    ALERT_COLUMNS,
    insert_alerts,
    lock_alerts,
    read_alerts,
    read_live_alerts,
    update_alerts,
)
from runoff.store.ledger.database import create_ledger_engine, upgrade_to_head

BEIJING = timezone(timedelta(hours=8))
RAISED = datetime(2025, 3, 3, 16, 0, tzinfo=BEIJING)  # 08:00 UTC


@pytest.fixture
def engine(ledger_url):
    engine = create_ledger_engine(ledger_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def alert_row(alert_id: str, *, severity: str = "high", status: str = "open", seen: date = date(2025, 2, 28)):
    return {
        **dict.fromkeys(ALERT_COLUMNS),
        "alert_id": alert_id, "rule_id": alert_id.split("@")[0], "kind": "threshold",
        "indicator": "m1plus_balance_rate", "segment": "all", "severity": severity, "status": status, "value": 0.091,
        "threshold": 0.08, "direction": "above", "message": "M1+ above 8 %", "first_seen_on": seen,
        "last_seen_on": seen, "observed_on": seen, "raised_by": "runoff warn", "raised_at": RAISED,
        "updated_at": RAISED,
    }  # fmt: skip


def test_alerts_round_trip_with_timestamps_in_utc(engine):
    row = alert_row("m1plus-high@2025-02")
    with engine.begin() as conn:
        insert_alerts(conn, [row])
    with engine.connect() as conn:
        (back,) = read_alerts(conn)
    assert back["raised_at"] == RAISED and back["raised_at"].tzinfo == UTC
    assert back["raised_at"].hour == 8
    assert {k: v for k, v in back.items() if not k.endswith("_at")} == {
        k: v for k, v in row.items() if not k.endswith("_at")
    }


def test_updates_write_only_the_columns_given(engine):
    with engine.begin() as conn:
        insert_alerts(conn, [alert_row("a@2025-01"), alert_row("b@2025-01")])
        lock_alerts(conn)
        later = RAISED + timedelta(days=1)
        update_alerts(
            conn,
            [
                {
                    "alert_id": "a@2025-01",
                    "status": "acknowledged",
                    "acknowledged_by": "li.wei",
                    "acknowledged_at": later,
                }
            ],
        )
    with engine.connect() as conn:
        a, b = read_alerts(conn)
        assert (a["status"], a["acknowledged_by"], a["acknowledged_at"]) == ("acknowledged", "li.wei", later)
        assert (a["message"], b["status"]) == ("M1+ above 8 %", "open")
        assert [r["alert_id"] for r in read_alerts(conn, statuses=["acknowledged"])] == ["a@2025-01"]


def test_live_alerts_come_most_severe_first_then_oldest(engine):
    rows = [
        alert_row("low@2025-01", severity="low", seen=date(2025, 1, 31)),
        alert_row("high-new@2025-02", severity="high"),
        alert_row("crit@2025-02", severity="critical"),
        alert_row("high-old@2025-01", severity="high", seen=date(2025, 1, 31)),
        {**alert_row("done@2025-01", severity="critical"), "status": "resolved", "resolved_by": "a",
         "resolved_at": RAISED},
    ]  # fmt: skip
    with engine.begin() as conn:
        insert_alerts(conn, rows)
    with engine.connect() as conn:
        live = [r["alert_id"] for r in read_live_alerts(conn)]
    assert live == ["crit@2025-02", "high-old@2025-01", "high-new@2025-02", "low@2025-01"]


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "acknowledged"},
        {"status": "resolved", "resolved_by": "li.wei"},
        {"status": "resolved", "resolved_at": RAISED},
        {"status": "closed"},
    ],
    ids=["acknowledged-by-nobody", "resolved-without-when", "resolved-by-nobody", "unknown-status"],
)
def test_the_database_refuses_a_status_without_who_and_when(engine, changes):
    with engine.begin() as conn:
        insert_alerts(conn, [alert_row("a@2025-01")])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        update_alerts(conn, [{"alert_id": "a@2025-01", **changes}])
    with engine.connect() as conn:
        assert read_alerts(conn)[0]["status"] == "open"
