"""The unit of work: one database transaction that rolls back unless the use case commits it.

A use case receives a :class:`UnitOfWork` not yet started and runs ``with uow: ...; uow.commit()``;
it may enter the same object again for a retry (a fresh connection and transaction each time).
Inside, ``uow.ledger`` reads and writes the tables and ``uow.now()`` is the one clock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Self

from sqlalchemy import Connection, Engine

from runoff.errors import ConfigError
from runoff.store.ledger.database import WRITE_OPTION
from runoff.store.ledger.repository import LedgerRepository, ProductCache

Clock = Callable[[], datetime]


class UnitOfWork:
    """One transaction on the ledger (``write=True``: SQLite takes its write lock at BEGIN)."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock,
        write: bool = True,
        products: ProductCache | None = None,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._write = write
        self._products = products if products is not None else ProductCache()
        self._conn: Connection | None = None
        self._ledger: LedgerRepository | None = None
        self._committed = False

    def __enter__(self) -> Self:
        if self._conn is not None:
            raise ConfigError("this unit of work is already in progress; use one per transaction")
        conn = self._engine.connect()
        if self._write:
            conn.execution_options(**{WRITE_OPTION: True})
        conn.begin()
        self._conn = conn
        self._ledger = LedgerRepository(conn, products=self._products)
        self._committed = False
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        conn = self._conn
        self._conn = None
        self._ledger = None
        if conn is None:
            return
        try:
            if not self._committed and conn.in_transaction():
                conn.rollback()
        finally:
            conn.close()

    @property
    def connection(self) -> Connection:
        if self._conn is None:
            raise ConfigError("the unit of work is not started; use it in a `with` block")
        return self._conn

    @property
    def ledger(self) -> LedgerRepository:
        if self._ledger is None:
            raise ConfigError("the unit of work is not started; use it in a `with` block")
        return self._ledger

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def sibling(self) -> UnitOfWork:
        """Another unit of work on the same database, clock and product cache (its own connection)."""
        return UnitOfWork(self._engine, clock=self._clock, write=self._write, products=self._products)

    def now(self) -> datetime:
        return self._clock()

    def commit(self) -> None:
        self.connection.commit()
        self._committed = True

    def rollback(self) -> None:
        self.connection.rollback()


UnitOfWorkFactory = Callable[..., UnitOfWork]
