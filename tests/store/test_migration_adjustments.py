"""Migration 0004 (charge-offs, recoveries, reversals) upgrades a ledger holding payments and can be undone."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError

from runoff.store.ledger.database import WRITE_OPTION, alembic_config, create_ledger_engine


@pytest.fixture
def engine(ledger_url):
    engine = create_ledger_engine(ledger_url)
    yield engine
    engine.dispose()


def _migrate(engine, verb: str, revision: str) -> None:
    cfg = alembic_config(engine.url)
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            cfg.attributes["connection"] = conn
            getattr(command, verb)(cfg, revision)


def _payment_row(conn) -> None:
    now = datetime(2024, 1, 1, tzinfo=UTC)
    conn.execute(
        text(
            "INSERT INTO loans (id, product_id, product_version, principal_fen, start_date, term, created_at, "
            "updated_at) VALUES ('L1', 'p', 1, 100000, :d, 3, :now, :now)"
        ),
        {"d": date(2024, 1, 1), "now": now},
    )
    conn.execute(
        text(
            "INSERT INTO payments (loan_id, amount_fen, value_date, received_at, idempotency_key, actor, "
            "schedule_version) VALUES ('L1', 500, :d, :now, 'k1', 't', 1)"
        ),
        {"d": date(2024, 2, 1), "now": now},
    )


def test_existing_payments_become_kind_payment_and_the_new_columns_are_checked(engine):
    _migrate(engine, "upgrade", "0003_alerts")
    with engine.begin() as conn:
        _payment_row(conn)
    _migrate(engine, "upgrade", "0004_adjustments")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT kind, reversal_key FROM payments")).one() == ("payment", None)
    assert "charge_offs" in inspect(engine).get_table_names()
    with pytest.raises(DBAPIError, match=r"ck_payments_kind|CHECK"), engine.begin() as conn:
        conn.execute(text("UPDATE payments SET kind = 'refund'"))
    with engine.begin() as conn:
        conn.execute(text("UPDATE payments SET reversal_key = 'r1'"))
        conn.execute(
            text(
                "INSERT INTO payments (loan_id, amount_fen, value_date, received_at, idempotency_key, actor, "
                "schedule_version, kind) VALUES ('L1', 700, :d, :now, 'k2', 't', 1, 'recovery')"
            ),
            {"d": date(2024, 3, 1), "now": datetime(2024, 3, 1, tzinfo=UTC)},
        )
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("UPDATE payments SET reversal_key = 'r1' WHERE idempotency_key = 'k2'"))


def test_downgrade_drops_what_0004_added(engine):
    _migrate(engine, "upgrade", "head")
    _migrate(engine, "downgrade", "0003_alerts")
    inspector = inspect(engine)
    assert "charge_offs" not in inspector.get_table_names()
    assert {"kind", "reversal_key"}.isdisjoint({c["name"] for c in inspector.get_columns("payments")})
    _migrate(engine, "upgrade", "head")
    assert "charge_offs" in inspect(engine).get_table_names()
