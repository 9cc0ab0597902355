"""Ids handed out before rows are written, so related rows (entry → lines, payment → allocations) go in one batch.

PostgreSQL draws them from the table's sequence (safe under concurrency); SQLite takes the next
ids after the largest, which is safe because every SQLite writer holds the database's write lock
(``BEGIN IMMEDIATE``) for its whole transaction.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, func, select, text


def reserve_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """``count`` fresh values of ``table.id`` for this transaction."""
    if count <= 0:
        return []
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text("SELECT nextval(pg_get_serial_sequence(:t, 'id')) FROM generate_series(1, :n)"),
            {"t": table.name, "n": count},
        )
        return [int(r[0]) for r in rows]
    start = int(conn.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()) + 1
    return list(range(start, start + count))
