"""Shared fixtures: a ledger on SQLite (a temporary file) and, when RUNOFF_TEST_POSTGRES_URL is set, on PostgreSQL.

Each PostgreSQL test gets its own freshly created schema (``search_path`` set through the URL's
``options``), dropped afterwards, so parallel pytest-xdist workers never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

POSTGRES_ENV = "RUNOFF_TEST_POSTGRES_URL"
FIXED_NOW = datetime(2024, 6, 30, 9, 0, tzinfo=UTC)


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def _with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


class PostgresSchema:
    """A throwaway schema on the test PostgreSQL server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.name = f"t_{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{self.name}"')
        return _with_search_path(self.admin_url, self.name)

    def __exit__(self, *exc: object) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.name}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty ledger database: a SQLite file, or a fresh PostgreSQL schema (skipped without one)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    with PostgresSchema(admin) as url:
        yield url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """An empty fresh PostgreSQL schema's URL (skipped without RUNOFF_TEST_POSTGRES_URL)."""
    admin = postgres_admin_url()
    if admin is None:
        pytest.skip(f"{POSTGRES_ENV} is not set")
    with PostgresSchema(admin) as url:
        yield url


@pytest.fixture
def fixed_clock() -> object:
    return lambda: FIXED_NOW


@pytest.fixture
def ledger(ledger_url: str, tmp_path: Path, fixed_clock: object) -> Iterator[object]:
    """An application context on a migrated, empty ledger (SQLite or PostgreSQL), with a fixed clock."""
    from runoff.app.context import build_context
    from runoff.config import Settings
    from runoff.store.ledger.database import create_ledger_engine, upgrade_to_head

    engine = create_ledger_engine(ledger_url)
    upgrade_to_head(engine)
    engine.dispose()
    ctx = build_context(Settings(workspace=tmp_path, database_url=ledger_url), clock=fixed_clock)  # type: ignore[arg-type]
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def equal_installment_product() -> object:
    """An 18 % equal-installment (等额本息) product for 3, 6 or 12 months, default penalty 0.05 %/day."""
    from runoff.servicing.product import parse_product

    return parse_product(
        {"id": "ei-18", "method": "equal-installment", "annual_rate": "0.18", "terms": [3, 6, 12]}, source="test"
    )


@pytest.fixture
def flat_fee_product() -> object:
    """A 0.6 %/month flat-fee (等本等费) product with principal prepayment of overpayments."""
    from runoff.servicing.product import parse_product

    return parse_product(
        {
            "id": "flat-06",
            "method": "flat-fee",
            "fee_rate": "0.006",
            "terms": [3, 6, 12],
            "allocation": {"overpayment": "prepay-principal"},
        },
        source="test",
    )
