"""The ledger's engine and schema: SQLite (embedded default) or PostgreSQL via psycopg 3, migrated by Alembic.

SQLite runs in WAL mode with a busy timeout and foreign keys on; write transactions start with
``BEGIN IMMEDIATE`` so concurrent writers queue on the database lock instead of failing half-way.
PostgreSQL writers serialise per loan with ``SELECT ... FOR UPDATE`` (see the repository).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url

from runoff.errors import ConfigError

# Execution option a unit of work sets on a connection that will write (SQLite: BEGIN IMMEDIATE).
WRITE_OPTION = "runoff_write"
SQLITE_BUSY_TIMEOUT_MS = 60_000
# Advisory lock id that serialises concurrent migrations on PostgreSQL ("runoff" in ASCII).
PG_MIGRATION_LOCK = 0x72756E6F6666


def ledger_url(url: str | URL) -> URL:
    """Normalise a database URL: ``postgresql://`` means psycopg 3."""
    parsed = make_url(url) if isinstance(url, str) else url
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_sqlite(engine_or_conn: Engine | Connection) -> bool:
    return engine_or_conn.dialect.name == "sqlite"


def create_ledger_engine(url: str | URL, *, echo: bool = False) -> Engine:
    """An engine for the ledger at ``url`` with runoff's connection settings (nothing is created on disk yet)."""
    parsed = ledger_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, echo=echo)
    if parsed.get_backend_name() == "postgresql":
        # No pre-ping: it would cost a round trip per transaction; stale connections are recycled instead.
        return create_engine(parsed, echo=echo, pool_recycle=1800)
    raise ConfigError(
        f"`database_url`: {parsed.get_backend_name()!r} is not supported; expected a sqlite:/// or postgresql:// URL",
        field="database_url",
    )


def _sqlite_engine(url: URL, *, echo: bool) -> Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (and how).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        # a larger page cache keeps the installments and journal indexes in memory during bulk loads and closes
        cursor.execute("PRAGMA cache_size=-131072")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


# --- schema (Alembic) --------------------------------------------------------------------------------------------


def migrations_path() -> Path:
    """The Alembic script folder shipped inside the package (``runoff/store/migrations``)."""
    return Path(str(files("runoff.store") / "migrations"))


def alembic_config(url: str | URL | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_path()))
    if url is not None:
        rendered = url if isinstance(url, str) else url.render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships its migrations
        raise ConfigError(f"no migrations found in {migrations_path()}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(engine: Engine) -> tuple[str | None, str]:
    """Apply every pending migration in one transaction; returns (revision before, revision after).

    Concurrent callers are serialised (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock), so
    several processes opening a fresh ledger at once migrate it once.
    """
    cfg = alembic_config(engine.url)
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            before = MigrationContext.configure(conn).get_current_revision()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            after = MigrationContext.configure(conn).get_current_revision()
    return before, after or head_revision()


def ensure_schema(engine: Engine, *, auto_upgrade: bool | None = None) -> None:
    """Make sure the ledger's schema is current before a command uses it.

    SQLite (the embedded ledger) is migrated on first use; PostgreSQL is migrated only by
    ``runoff ledger migrate`` (a production database changes schema on purpose), so an out-of-date
    one is refused with the command to run.
    """
    upgrade = is_sqlite(engine) if auto_upgrade is None else auto_upgrade
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    if upgrade:
        upgrade_to_head(engine)
        return
    raise ConfigError(
        f"the ledger at {engine.url.render_as_string(hide_password=True)} is at schema "
        f"{current or '(empty)'}, expected {head}; run `runoff ledger migrate`"
    )
