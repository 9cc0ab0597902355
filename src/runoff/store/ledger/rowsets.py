"""Set-based writes of many rows in one round trip: the ledger's hot path for batched postings and the daily close.

PostgreSQL: inserts go through ``COPY ... FROM STDIN``, and updates COPY the new values into a
temporary staging table and run one ``UPDATE ... FROM`` it, so a chunk of a thousand payments costs
a handful of statements instead of tens of thousands of pipelined ones. SQLite: the driver's ``executemany``,
which runs in C inside one transaction and is already the fastest path there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Table, bindparam, insert
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
        _update_from_copy(conn, table, keys, columns, rows)
        return
    stmt = (
        sa_update(table)
        .where(*[table.c[k] == bindparam(f"k_{k}") for k in keys])
        .values({c: bindparam(f"v_{c}") for c in columns})
    )
    conn.execute(stmt, [{**{f"k_{k}": row[k] for k in keys}, **{f"v_{c}": row[c] for c in columns}} for row in rows])


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


def _update_from_copy(
    conn: Connection, table: Table, keys: Sequence[str], columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """COPY the new values into a temporary table, then one ``UPDATE ... FROM`` it.

    COPY sends each row as it is; binding the same values as one array per column costs psycopg
    several times more (it quotes every text element), which made the arrays the slowest part of a chunk.
    The temporary table lives as long as the connection and is emptied at each commit.
    """
    everything = [*keys, *columns]
    staging = _staging_table(table, everything)
    raw: Any = conn.connection.dbapi_connection
    names = ", ".join(f'"{c}"' for c in everything)
    with raw.cursor() as cur:
        cur.execute(
            f'CREATE TEMPORARY TABLE IF NOT EXISTS "{staging}" ON COMMIT DELETE ROWS AS '
            f'SELECT {names} FROM "{table.name}" WITH NO DATA'
        )
        cur.execute(f'TRUNCATE "{staging}"')  # rows of an earlier statement in this same transaction
        with cur.copy(f'COPY "{staging}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row[c] for c in everything])
        sets = ", ".join(f'"{c}" = u."{c}"' for c in columns)
        match = " AND ".join(f't."{k}" = u."{k}"' for k in keys)
        cur.execute(f'UPDATE "{table.name}" AS t SET {sets} FROM "{staging}" AS u WHERE {match}')


def _staging_table(table: Table, columns: Sequence[str]) -> str:
    digest = hashlib.sha1("\x1f".join([table.name, *columns]).encode()).hexdigest()[:12]
    return f"staging_{table.name}_{digest}"
