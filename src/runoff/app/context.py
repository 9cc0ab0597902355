"""The composition root: the one place runoff builds its engine, units of work and clock from Settings.

Entry points (CLI, web) call :func:`build_context` once per process and pass the context to use
cases; nothing is built at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from runoff.app import clock as system_clock
from runoff.config import Settings
from runoff.errors import ConfigError
from runoff.store.ledger.database import create_ledger_engine, ensure_schema
from runoff.store.ledger.repository import ProductCache
from runoff.store.ledger.unit_of_work import UnitOfWork

Clock = Callable[[], datetime]


@dataclass
class AppContext:
    """What every use case needs: settings, the ledger engine, a unit-of-work factory and the clock."""

    settings: Settings
    engine: Engine
    clock: Clock = system_clock.now
    products: ProductCache = field(default_factory=ProductCache)

    def uow(self, *, write: bool = True) -> UnitOfWork:
        """A new unit of work (not started): ``with ctx.uow() as uow: ...; uow.commit()``."""
        return UnitOfWork(self.engine, clock=self.clock, write=write, products=self.products)

    def today(self) -> date:
        return self.clock().date()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> AppContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def unreachable(engine: Engine, exc: OperationalError) -> ConfigError:
    """The one message for a ledger database that cannot be opened (wrong URL, server down, bad path)."""
    where = engine.url.render_as_string(hide_password=True)
    reason = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    return ConfigError(f"cannot open the ledger at {where}: {reason}; check `database_url` / RUNOFF_DATABASE_URL")


def build_context(settings: Settings, *, clock: Clock | None = None, prepare_schema: bool = True) -> AppContext:
    """Build the application from ``settings``.

    ``prepare_schema`` checks the ledger's schema first: an embedded SQLite ledger is created or
    migrated on first use, a PostgreSQL one must already be current (``runoff ledger migrate``).
    """
    engine = create_ledger_engine(settings.ledger_url())
    if prepare_schema:
        try:
            ensure_schema(engine)
        except OperationalError as exc:
            engine.dispose()
            raise unreachable(engine, exc) from None
        except Exception:
            engine.dispose()
            raise
    return AppContext(settings=settings, engine=engine, clock=clock or system_clock.now)
