"""Set-based writes of many rows in one round trip: the ledger's hot path for batched postings and the daily close.

PostgreSQL: inserts go through ``COPY ... FROM STDIN`` and updates are one ``UPDATE ... FROM
unnest(array, array, ...)`` statement, so a chunk of a thousand payments costs a handful of
statements instead of tens of thousands of pipelined ones. SQLite: the driver's ``executemany``,
which runs in C inside one transaction and is already the fastest path there.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Connection, Date, DateTime, Integer, String, Table, bindparam, insert
from sqlalchemy import update as sa_update

# Below this many rows a plain INSERT / UPDATE is one round trip too and cheaper than COPY's protocol.
SET_BASED_FROM = 20


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts with the same keys) into ``table``; columns left out take their defaults."""
    if not rows:
        return
    if conn.dialect.name == "postgresql" and len(rows) >= SET_BASED_FROM:
        _copy_rows(conn, table, rows)
    else:
        conn.execute(insert(table), list(rows))


def update_rows(conn: Connection, table: Table, keys: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> None:
    """Update ``table`` rows matched on ``keys``; every row sets the same other columns."""
    if not rows:
        return
    columns = [c for c in rows[0] if c not in keys]
    if conn.dialect.name == "postgresql" and len(rows) >= SET_BASED_FROM:
        _update_from_arrays(conn, table, keys, columns, rows)
        return
    stmt = (
        sa_update(table)
        .where(*[table.c[k] == bindparam(f"k_{k}") for k in keys])
        .values({c: bindparam(f"v_{c}") for c in columns})
    )
    conn.execute(stmt, [{**{f"k_{k}": row[k] for k in keys}, **{f"v_{c}": row[c] for c in columns}} for row in rows])


def _pg_type(table: Table, column: str) -> str:
    kind = table.c[column].type
    if isinstance(kind, BigInteger):
        return "bigint"
    if isinstance(kind, Integer):
        return "integer"
    if isinstance(kind, DateTime):
        return "timestamptz"
    if isinstance(kind, Date):
        return "date"
    if isinstance(kind, Boolean):
        return "boolean"
    if isinstance(kind, JSON):
        return "jsonb"
    if isinstance(kind, String):
        return "text"
    raise TypeError(f"no array type for {table.name}.{column} ({kind!r})")  # pragma: no cover


def _copy_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    from psycopg.types.json import Jsonb

    columns = list(rows[0])
    json_cols = {i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)}
    raw: Any = conn.connection.dbapi_connection  # psycopg.Connection, inside the caller's transaction
    names = ", ".join(f'"{c}"' for c in columns)
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        if json_cols:
            for row in rows:
                copy.write_row(
                    [Jsonb(row[c]) if i in json_cols and row[c] is not None else row[c] for i, c in enumerate(columns)]
                )
        else:
            for row in rows:
                copy.write_row([row[c] for c in columns])


def _update_from_arrays(
    conn: Connection, table: Table, keys: Sequence[str], columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    everything = [*keys, *columns]
    arrays = ", ".join(f"%s::{_pg_type(table, c)}[]" for c in everything)
    alias = ", ".join(f'"{c}"' for c in everything)
    sets = ", ".join(f'"{c}" = u."{c}"' for c in columns)
    match = " AND ".join(f't."{k}" = u."{k}"' for k in keys)
    sql = f'UPDATE "{table.name}" AS t SET {sets} FROM unnest({arrays}) AS u({alias}) WHERE {match}'
    params = [[row[c] for row in rows] for c in everything]
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        cur.execute(sql, params)
