"""The Alembic migrations create exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, select, text, update
from sqlalchemy.exc import DBAPIError

from runoff.errors import ConfigError
from runoff.store.ledger.database import (
    create_ledger_engine,
    current_revision,
    ensure_schema,
    head_revision,
    migrations_path,
    upgrade_to_head,
)
from runoff.store.ledger.models import LedgerAccount, audit_log, chart_of_accounts, metadata


@pytest.fixture
def engine(ledger_url):
    engine = create_ledger_engine(ledger_url)
    yield engine
    engine.dispose()


def test_migrations_ship_inside_the_package():
    assert (migrations_path() / "env.py").is_file()
    assert any(p.name.startswith("0001") for p in (migrations_path() / "versions").iterdir())


def test_the_models_alone_describe_every_ledger_table():
    """Importing the models (as the migrations and every ledger use do) is enough for a complete metadata,
    in a fresh interpreter where no use case has defined its tables yet."""
    code = "from runoff.store.ledger.models import metadata; print(' '.join(sorted(metadata.tables)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert {"notices", "audit_log", "loans"} <= set(out)


def test_upgrade_creates_every_table_and_matches_the_models(engine):
    assert current_revision(engine) is None
    before, after = upgrade_to_head(engine)
    assert (before, after) == (None, head_revision())
    tables = set(inspect(engine).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= tables
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_upgrade_twice_changes_nothing(engine):
    upgrade_to_head(engine)
    assert upgrade_to_head(engine) == (head_revision(), head_revision())


def test_chart_of_accounts_is_seeded(engine):
    upgrade_to_head(engine)
    with engine.connect() as conn:
        codes = set(conn.execute(select(chart_of_accounts.c.code)).scalars())
    assert codes == {a.value for a in LedgerAccount}


@pytest.mark.parametrize(
    "statement",
    [
        update(audit_log).values(actor="someone else"),
        audit_log.delete(),
    ],
    ids=["update", "delete"],
)
def test_the_database_refuses_to_change_the_audit_log(engine, statement):
    upgrade_to_head(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(audit_log).values(
                at=datetime(2024, 1, 1, tzinfo=UTC), actor="a", action="x", object_type="loan", object_id="L1"
            )
        )
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(statement)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT actor FROM audit_log")).scalar_one() == "a"


def test_sqlite_ledger_is_migrated_on_first_use(tmp_path):
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'new' / 'ledger.db'}")
    ensure_schema(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()


@pytest.mark.postgres
def test_postgres_ledger_must_be_migrated_on_purpose(postgres_url):
    engine = create_ledger_engine(postgres_url)
    with pytest.raises(ConfigError, match="runoff ledger migrate"):
        ensure_schema(engine)
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'ledger.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    engine.dispose()
